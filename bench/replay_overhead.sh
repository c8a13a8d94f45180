#!/usr/bin/env bash
# Replay costs, on a recording of bench/malloc_bench (2 threads, STEPS steps each):
# - conversion: trace -> replay-ready form, events per second (the first `mallet replay`, less
#   the same command once the form is cached);
# - harness overhead per op: the bump backend with --touch none (bump's own work is a pointer
#   increment, so what remains is the harness);
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
events=$("$build/mallet" stats --json mb.mtrace | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"])')

t0=$(now); "$build/mallet" replay --allocator bump --touch none mb.mtrace > /dev/null 2>&1; t1=$(now)
"$build/mallet" replay --allocator bump --touch none mb.mtrace > /dev/null 2>&1; t2=$(now)
prep_us=$(( (t1 - t0) - (t2 - t1) ))
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
printf 'conversion: %d events in %.3f s: %.1f M events/s (one core)\n' "$events" \
    "$(awk -v u=$prep_us 'BEGIN {print u / 1e6}')" "$(awk -v e=$events -v u=$prep_us 'BEGIN {print e / u}')"

"$build/mallet" replay --allocator bump --touch none --repeat "$rounds" --json bump.json mb.mtrace > /dev/null
python3 - bump.json <<'PY'
import json, sys, statistics
runs = json.load(open(sys.argv[1]))["runs"]
ns = statistics.median(r["wall_ns"] / r["ops"] for r in runs)
print(f"harness overhead (bump, --touch none): {ns:.2f} ns/op wall, 2 threads, median of {len(runs)}")
PY

ratios=()
for r in $(seq 1 "$rounds"); do
    t0=$(now); "$build/bench/malloc_bench" "$steps" 2> /dev/null; t1=$(now)
    "$build/mallet" replay --allocator glibc --touch first --json g.json mb.mtrace > /dev/null
    wall=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["runs"][0]["wall_ns"])' g.json)
    ratios+=("$(awk -v a=$((t1 - t0)) -v b="$wall" 'BEGIN {printf "%.3f", b / 1000 / a}')")
done
printf 'replay (glibc, --touch first) / program run time: median %.2fx (rounds: %s)\n' \
    "$(printf '%s\n' "${ratios[@]}" | median)" "${ratios[*]}"
