#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs an MPI job whose ranks talk over a real, rate-limited TCP link on this one machine: every
# rank gets its own network namespace, joined by veth pairs to a bridge, with a `tc` token-bucket
# (tbf) limit on each rank's side of its link. mpirun treats each namespace as a host and starts
# its daemon there through an `ip netns exec` launch agent (instead of ssh), so Open MPI's
# TCP transport between the ranks crosses the limited links (shared memory cannot be used).
# Needs root (network namespaces). Used by docs/parallelism.md's slow-link measurements and by
# tests/mpi/slow_link_test.sh.
#
#   scripts/slow-link.sh [--ranks N] [--rate RATE] [--burst BYTES] -- PROGRAM ARGS...
#
# --ranks N   ranks, one per namespace (default 2)
# --rate R    tc rate of each rank's egress, e.g. 100mbit, 1gbit; "none": no limit (default 1gbit)
# --burst B   token-bucket size in bytes (default 3028: two full Ethernet frames, so the link
#             behaves like a wire of that rate; a larger bucket refills while the ranks compute
#             and lets the first B bytes of every message through at memory speed)
# Environment variables reach the ranks as they are here (the launch agent keeps them). The
# namespaces, links and temporary files are removed when the job ends, however it ends.
set -euo pipefail

ranks=2 rate=1gbit burst=""
while (($#)); do
  case "$1" in
    --ranks) ranks=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --burst) burst=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '3,19p' "$0"; exit 0 ;;
    *) echo "slow-link: unknown option '$1' (put the program after --)" >&2; exit 2 ;;
  esac
done
(($#)) || { echo "slow-link: no program given (scripts/slow-link.sh [options] -- PROGRAM ARGS...)" >&2; exit 2; }
[[ $ranks =~ ^[0-9]+$ ]] && ((ranks >= 1 && ranks <= 64)) || { echo "slow-link: --ranks must be 1..64, got '$ranks'" >&2; exit 2; }
[ "$rate" = none ] || [[ ${rate,,} =~ ^[0-9]+[kmg]?bit$ ]] || { echo "slow-link: --rate must look like 100mbit or 1gbit (or none), got '$rate'" >&2; exit 2; }
[ -z "$burst" ] || [[ $burst =~ ^[0-9]+$ ]] || { echo "slow-link: --burst must be a byte count, got '$burst'" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "slow-link: needs root (network namespaces)" >&2; exit 77; }
command -v ip >/dev/null && command -v tc >/dev/null || { echo "slow-link: needs ip and tc (Debian: iproute2)" >&2; exit 77; }
command -v mpirun >/dev/null || { echo "slow-link: needs mpirun (Debian: openmpi-bin)" >&2; exit 77; }

# Names and a /24 of our own, so that concurrent runs do not meet.
tag=$(printf '%x' $(($$ % 65536)))
net="10.$((200 + $$ % 50)).$((($$ / 50) % 250)).0"
prefix=${net%.0}
work=$(mktemp -d /tmp/slow-link.XXXXXX)
br="plbr$tag"
ns() { echo "plns$tag-$1"; }

cleanup() {
  for ((i = 0; i < ranks; i++)); do ip netns del "$(ns "$i")" 2>/dev/null || true; done
  ip link del "$br" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip link add "$br" type bridge
ip addr add "$prefix.254/24" dev "$br"
ip link set "$br" up
: >"$work/hosts"
{
  echo '#!/bin/sh'
  echo 'host=$1; shift'
  echo 'case $host in'
} >"$work/agent"
for ((i = 0; i < ranks; i++)); do
  n=$(ns "$i")
  ip netns add "$n"
  ip link add "plh$tag-$i" type veth peer name "plv$tag-$i"
  ip link set "plv$tag-$i" netns "$n"
  ip link set "plh$tag-$i" master "$br"
  ip link set "plh$tag-$i" up
  ip -n "$n" addr add "$prefix.$((i + 1))/24" dev "plv$tag-$i"
  ip -n "$n" link set lo up
  ip -n "$n" link set "plv$tag-$i" up
  if [ "$rate" != none ]; then
    b=${burst:-3028}
    ip netns exec "$n" tc qdisc add dev "plv$tag-$i" root tbf rate "$rate" burst "$b" latency 100ms
  fi
  echo "$prefix.$((i + 1)) slots=1" >>"$work/hosts"
  # Each daemon gets session directories of its own (see orte_tmpdir_base below): the agent
  # rewrites the folder that mpirun puts on the daemon's command line.
  mkdir -p "$work/d$i"
  echo "  $prefix.$((i + 1))) cmd=\$(printf '%s' \"\$*\" | sed 's|$work/hnp|$work/d$i|g'); exec ip netns exec $n sh -c \"\$cmd\" ;;" >>"$work/agent"
done
{
  echo '  *) echo "slow-link agent: unknown host $host" >&2; exit 1 ;;'
  echo 'esac'
} >>"$work/agent"
chmod +x "$work/agent"

echo "slow-link: $ranks ranks in namespaces $(ns 0)..$(ns $((ranks - 1))), $net/24, rate $rate${burst:+, burst $burst}" >&2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# More ranks than cores: waiting ranks must yield, or they busy-poll the cores away from the ranks
# that compute (docs/parallelism.md measured 3-4x slower runs).
if ((ranks > $(getconf _NPROCESSORS_ONLN))) && [ -z "${OMPI_MCA_mpi_yield_when_idle:-}" ]; then
  export OMPI_MCA_mpi_yield_when_idle=1
  echo "slow-link: $ranks ranks on $(getconf _NPROCESSORS_ONLN) cores: OMPI_MCA_mpi_yield_when_idle=1" >&2
fi
# --bind-to none: each namespace's daemon believes it has the whole machine and would bind its
# rank to core 0, putting every rank on one core. osc pt2pt: Open MPI 4.1's default window
# component (osc/rdma) cannot use the TCP BTL and fails MPI_Win_allocate (--tp-reduce rma).
# orte_tmpdir_base: session directories in our own folder, so that they cannot clash with another
# mpirun running beside it ("File exists"), and one folder per daemon: every daemon here has the
# same host name, so in one folder they all build the same tree, and one of them once failed to
# create its directory while another was setting it up ("orte_session_dir failed", CI
# 2026-12-01). mpirun passes the folder on each daemon's command line; the agent swaps in the
# daemon's own.
mkdir -p "$work/hnp"
mpirun --bind-to none --hostfile "$work/hosts" --mca plm_rsh_agent "$work/agent" --mca orte_tmpdir_base "$work/hnp" \
  --mca btl tcp,self --mca btl_tcp_if_include "$net/24" --mca oob_tcp_if_include "$net/24" --mca osc pt2pt \
  -np "$ranks" "$@"
