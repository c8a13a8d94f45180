#!/usr/bin/env bash
# Replay costs, on a recording of bench/malloc_bench (2 threads, STEPS steps each):
# - conversion: trace -> replay file (bench/prepare_bench), events per second on one core and
#   peak memory;
# - harness overhead per op: the bump backend with --touch none, as wall time per op, and less
#   the same calls made by the least code (bench/call_floor.c, interleaved round by round): what
#   the harness adds to the calls themselves;
# - replay vs program: glibc with --touch first (the program writes 8 bytes per block) against
#   the program's own run time, as the median of ratios over interleaved rounds.
# usage: bench/replay_overhead.sh [BUILD_DIR] [STEPS] [ROUNDS]
set -euo pipefail
build=$(realpath "${1:-build}")
steps=${2:-5000000}
rounds=${3:-5}
work=$(mktemp -d /tmp/mallet-rbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
now() { echo "${EPOCHREALTIME/./}"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

"$build/mallet" record -q -o mb.mtrace -- "$build/bench/malloc_bench" "$steps" 2> /dev/null

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
# the conversion alone, as `mallet replay` does it before its first run (bench/prepare_bench.c)
"$build/bench/prepare_bench" mb.mtrace mb.mtrace.replay | sed 's/^/conversion: /'

"$build/mallet" replay --allocator bump --touch none --no-syscalls mb.mtrace > /dev/null
bump=$("$build/mallet" allocators --json | python3 -c 'import json,sys
print(next(a["library"] for a in json.load(sys.stdin)["allocators"] if a["name"] == "bump"))')
per_op() { sed -n 's/^ops=\([0-9]*\).*wall_ns=\([0-9]*\).*/\1 \2/p' | awk '{printf "%.3f", $2 / $1}'; }
replay=() floor=() diff=()
for r in $(seq 1 "$rounds"); do
    a=$(LD_PRELOAD=$bump "$build/mallet-worker" mb.mtrace.replay 0 | per_op)
    b=$(LD_PRELOAD=$bump "$build/bench/call_floor" mb.mtrace.replay | per_op)
    replay+=("$a") floor+=("$b") diff+=("$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", a - b}')")
done
printf 'bump, --touch none: replay %.2f ns/op wall, the same calls alone %.2f ns/op: harness overhead %.2f ns/op (medians of %d interleaved rounds: %s)\n' \
    "$(printf '%s\n' "${replay[@]}" | median)" "$(printf '%s\n' "${floor[@]}" | median)" \
    "$(printf '%s\n' "${diff[@]}" | median)" "$rounds" "${diff[*]}"

ratios=()
for r in $(seq 1 "$rounds"); do
    t0=$(now); "$build/bench/malloc_bench" "$steps" 2> /dev/null; t1=$(now)
    "$build/mallet" replay --allocator glibc --touch first --json g.json mb.mtrace > /dev/null
    wall=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["runs"][0]["wall_ns"])' g.json)
    ratios+=("$(awk -v a=$((t1 - t0)) -v b="$wall" 'BEGIN {printf "%.3f", b / 1000 / a}')")
done
printf 'replay (glibc, --touch first) / program run time: median %.2fx (rounds: %s)\n' \
    "$(printf '%s\n' "${ratios[@]}" | median)" "${ratios[*]}"
