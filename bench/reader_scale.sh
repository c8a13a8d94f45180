#!/usr/bin/env bash
# How the reader scales: records malloc_bench with STEPS steps per thread (2 threads), then
# times `mallet stats` and `mallet check` over the trace and reports their peak memory. The
# reader streams: its memory follows the live blocks, not the trace length.
# usage: bench/reader_scale.sh [BUILD_DIR] [STEPS]
set -euo pipefail
build=$(realpath "${1:-build}")
steps=${2:-25000000}
work=$(mktemp -d /tmp/mallet-scale.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$build/mallet" record -q -o "$work/big.mtrace" -- "$build/bench/malloc_bench" "$steps" 2> /dev/null
size=$(stat -c %s "$work/big.mtrace")
for cmd in stats check; do
    /usr/bin/time -f "%e s %M KiB" -o "$work/time.txt" "$build/mallet" $cmd "$work/big.mtrace" > "$work/out.txt" || true
    read -r secs _ kib _ < <(tail -n 1 "$work/time.txt") # time says first if the exit was not 0
    [ "$cmd" = stats ] && events=$(grep -m1 '^events' "$work/out.txt" | awk '{print $2}')
    printf 'mallet %-5s %d bytes of trace, %s events: %s s, %.1f M events/s, peak memory %d MiB\n' \
        "$cmd" "$size" "$events" "$secs" "$(awk -v e="$events" -v s="$secs" 'BEGIN {print e / s / 1e6}')" $((kib / 1024))
done
