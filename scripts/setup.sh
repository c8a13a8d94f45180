#!/usr/bin/env bash
# Installs what mallet needs to build and test on Debian 12, then builds it into build/.
# Safe to run again: packages already present are not reinstalled.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config libzstd-dev libjansson-dev libiberty-dev python3 sqlite3
          heaptrack clang strace procps time libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0)
# Wanted, not needed: libc's debug symbols name its internal functions (docs/CHECK.md); they
# must match the installed libc exactly, so a mirror out of step must not stop the setup.
optional=(libc6-dbg)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
updated=0
if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing packages: ${missing[*]} (run as root, or install them)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    updated=1
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for p in "${optional[@]}"; do
    if dpkg -s "$p" >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then continue; fi
    export DEBIAN_FRONTEND=noninteractive
    ((updated)) || { apt-get update -qq && updated=1; } || true
    apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 ||
        echo "setup: $p not installed (optional: libc's internal functions stay unnamed)" >&2
done

build_dir=${1:-build}
shift || true
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
