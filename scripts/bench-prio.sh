#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs a command (a benchmark) ahead of everything else on a shared machine: in a new session
# whose scheduler autogroup has nice -15, and at nice -15 itself. With autogroups (Linux's default,
# /proc/sys/kernel/sched_autogroup_enabled = 1) a plain `nice` only ranks processes inside one
# session, so builds in other sessions still take half the cores; the autogroup's own nice ranks
# the whole session. Needs root (negative nice). Everything the command starts inherits both.
#
#   scripts/bench-prio.sh build/bin/parallama bench ...
set -euo pipefail
(($#)) || { echo "usage: scripts/bench-prio.sh COMMAND [ARGS...]" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "bench-prio: needs root (negative nice); running the command as it is" >&2; exec "$@"; }
exec setsid --wait bash -c 'echo -15 > /proc/$$/autogroup 2>/dev/null || echo "bench-prio: no autogroup here; nice only" >&2; exec nice -n -15 "$@"' bench-prio "$@"
