#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what parallama needs to build (Debian packages) and, with --test, the test-only Python
# tools. Idempotent: installs only what is missing. Needs root (or sudo) when something is missing.
set -euo pipefail

want_test=0
for a in "$@"; do
  case "$a" in
    --test) want_test=1 ;;
    -h|--help) echo "usage: scripts/setup.sh [--test]"; exit 0 ;;
    *) echo "setup.sh: unknown option '$a'" >&2; exit 2 ;;
  esac
done

pkgs=(build-essential cmake ninja-build pkg-config g++ libgtest-dev libgmock-dev libbenchmark-dev
      libfmt-dev libcli11-dev nlohmann-json3-dev libcpp-httplib-dev libpcre2-dev python3 python3-pip
      gnuplot-nox openmpi-bin libopenmpi-dev iproute2)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ((want_test)); then
  root=$(cd "$(dirname "$0")/.." && pwd)
  python3 -m pip install -q --disable-pip-version-check -r "$root/tests/requirements.txt"
fi
