#!/usr/bin/env bash
# Recorder overhead, measured as ratios in one interleaved run (the machine is shared and noisy):
# each round times the command alone, then under `mallet record`, and the ratio of the two;
# the result is the median of the ratios. Also reports the trace size, and heaptrack's for the
# same command when heaptrack is installed.
# usage: bench/record_overhead.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
build=$(realpath "${1:-build}")
rounds=${2:-7}
work=$(mktemp -d /tmp/mallet-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"

now() { echo "${EPOCHREALTIME/./}"; } # microseconds, without starting a process
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

{
    echo "create table t(id integer primary key, name text, v real);"
    echo "begin;"
    for i in $(seq 1 3000); do echo "insert into t(name, v) values ('name-$i', $i.5);"; done
    echo "commit;"
} > ins.sql

measure() { # NAME CMD... (CMD reads nothing from stdin unless NAME is sqlite3)
    local name=$1
    shift
    local ratios=() base rec t0 t1 t2
    for r in $(seq 1 "$rounds"); do
        rm -f db.sqlite run.mtrace*
        sync # the last round's trace is written back before anything is timed
        t0=$(now)
        if [ "$name" = sqlite3 ]; then "$@" < ins.sql > /dev/null; else "$@" 2> /dev/null; fi
        t1=$(now)
        rm -f db.sqlite
        sync
        t2=$(now)
        if [ "$name" = sqlite3 ]; then
            "$build/mallet" record -q -o run.mtrace -- "$@" < ins.sql > /dev/null
        else
            "$build/mallet" record -q -o run.mtrace -- "$@" 2> /dev/null
        fi
        t3=$(now)
        ratios+=("$(awk -v a=$((t1 - t0)) -v b=$((t3 - t2)) 'BEGIN {printf "%.3f", b / a}')")
    done
    local size events
    size=$(cat run.mtrace* | wc -c)
    events=$("$build/mallet" stats --json run.mtrace* | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"])')
    printf '%-14s slowdown median %.2fx (rounds: %s)\n' "$name" \
        "$(printf '%s\n' "${ratios[@]}" | median)" "${ratios[*]}"
    printf '%-14s trace %d bytes for %d events (%.2f bytes/event)\n' "$name" "$size" "$events" \
        "$(awk -v s="$size" -v e="$events" 'BEGIN {print s / e}')"
    if command -v heaptrack > /dev/null; then
        rm -f db.sqlite ht.zst
        if [ "$name" = sqlite3 ]; then heaptrack -o ht "$@" < ins.sql > /dev/null 2>&1
        else heaptrack -o ht "$@" > /dev/null 2>&1; fi
        printf '%-14s heaptrack trace %d bytes\n' "$name" "$(wc -c < ht.zst)"
    fi
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
measure malloc_bench "$build/bench/malloc_bench"
measure malloc_bench_st "$build/bench/malloc_bench" 5000000 0 # one thread: sparse stamps
measure sqlite3 sqlite3 db.sqlite
