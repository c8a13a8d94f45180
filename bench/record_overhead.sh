#!/usr/bin/env bash
# Recorder overhead, measured as ratios in one interleaved run (the machine is shared and noisy):
# each round times the command alone, then under `mallet record`, and the ratio of the two;
# the result is the median of the ratios. Each round also times the command under
# bench/exec_floor (a static launcher that only execs: what the extra exec of any launcher costs,
# the floor under `mallet record`), the command with the recorder preloaded but recording off
# (MALLET_DISABLE=1: what interposing alone costs), the issue's two reference points under the
# same launcher (bench/ref_recorder.c: pure interposition, and a 16-byte record per call into a
# thread-local buffer, the floor under any recorder), for the single-threaded workloads the hooks'
# part of a recorder that would encode off the program's core (bench/ref_recorder.c), and, given
# a second build, that build's
# `mallet record` too, so that two versions are compared in the same rounds. Also reports the
# trace size, the same trace packed (`mallet pack`, and how long that and reading it back take),
# and heaptrack's for the same command when heaptrack is installed.
# usage: bench/record_overhead.sh [BUILD_DIR] [ROUNDS] [BASE_BUILD_DIR]
set -euo pipefail
build=$(realpath "${1:-build}")
rounds=${2:-7}
base=${3:+$(realpath "$3")}
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

# One timed run of CMD... in microseconds; sqlite3 reads the inserts on stdin. The database and
# the traces of the last run are removed, and the disk synced, first.
timed() {
    rm -rf db.sqlite run.mtrace*
    sync
    local t0 t1
    t0=$(now)
    if [ "$name" = sqlite3 ]; then "$@" < ins.sql > /dev/null; else "$@" 2> /dev/null; fi
    t1=$(now)
    echo $((t1 - t0))
}

measure() { # NAME CMD...
    name=$1
    shift
    local rec=() floor=() off=() refi=() ref16=() old=() alone t
    local raw32=() shm32=() poll32=() spin32=() ol="$build/bench/offcore_launch"
    for r in $(seq 1 "$rounds"); do
        alone=$(timed "$@")
        t=$(timed "$build/bench/exec_floor" "$@")
        floor+=("$(awk -v a="$alone" -v b="$t" 'BEGIN {printf "%.3f", b / a}')")
        t=$(MALLET_DISABLE=1 LD_PRELOAD="$build/libmallet_record.so" timed "$@")
        off+=("$(awk -v a="$alone" -v b="$t" 'BEGIN {printf "%.3f", b / a}')")
        t=$(LD_PRELOAD="$build/bench/libref_interpose.so" timed "$build/bench/exec_floor" "$@")
        refi+=("$(awk -v a="$alone" -v b="$t" 'BEGIN {printf "%.3f", b / a}')")
        t=$(LD_PRELOAD="$build/bench/libref_record16.so" timed "$build/bench/exec_floor" "$@")
        ref16+=("$(awk -v a="$alone" -v b="$t" 'BEGIN {printf "%.3f", b / a}')")
        if [ "$name" != malloc_bench ]; then # one thread: the off-core floor (ref_recorder.c)
            t=$(LD_PRELOAD="$build/bench/libref_raw32.so" timed "$build/bench/exec_floor" "$@")
            raw32+=("$(awk -v a="$alone" -v b="$t" 'BEGIN {printf "%.3f", b / a}')")
            t=$(LD_PRELOAD="$build/bench/libref_consumer32.so" timed "$ol" none "$@")
            shm32+=("$(awk -v a="$alone" -v b="$t" 'BEGIN {printf "%.3f", b / a}')")
            t=$(LD_PRELOAD="$build/bench/libref_consumer32.so" timed "$ol" 20 "$@")
            poll32+=("$(awk -v a="$alone" -v b="$t" 'BEGIN {printf "%.3f", b / a}')")
            t=$(LD_PRELOAD="$build/bench/libref_consumer32.so" timed "$ol" 0 "$@")
            spin32+=("$(awk -v a="$alone" -v b="$t" 'BEGIN {printf "%.3f", b / a}')")
        fi
        if [ -n "$base" ]; then
            t=$(timed "$base/mallet" record -q -o run.mtrace -- "$@")
            old+=("$(awk -v a="$alone" -v b="$t" 'BEGIN {printf "%.3f", b / a}')")
        fi
        t=$(timed "$build/mallet" record -q -o run.mtrace -- "$@")
        rec+=("$(awk -v a="$alone" -v b="$t" 'BEGIN {printf "%.3f", b / a}')")
    done
    local size events
    size=$(cat run.mtrace* | wc -c)
    events=$("$build/mallet" stats --json run.mtrace* | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"])')
    printf '%-16s slowdown median %.2fx (rounds: %s)\n' "$name" \
        "$(printf '%s\n' "${rec[@]}" | median)" "${rec[*]}"
    printf '%-16s exec_floor alone: median %.3fx\n' "$name" "$(printf '%s\n' "${floor[@]}" | median)"
    printf '%-16s preloaded, recording off: median %.3fx\n' "$name" \
        "$(printf '%s\n' "${off[@]}" | median)"
    printf '%-16s exec_floor + pure interposition: median %.3fx\n' "$name" \
        "$(printf '%s\n' "${refi[@]}" | median)"
    printf '%-16s exec_floor + a 16-byte record per call: median %.3fx\n' "$name" \
        "$(printf '%s\n' "${ref16[@]}" | median)"
    if [ "${#raw32[@]}" -gt 0 ]; then
        printf '%-16s exec_floor + a 32-byte record per call (callsite, time): median %.3fx\n' \
            "$name" "$(printf '%s\n' "${raw32[@]}" | median)"
        printf '%-16s   the same in shared memory from the launcher, never read: %.3fx\n' \
            "$name" "$(printf '%s\n' "${shm32[@]}" | median)"
        printf '%-16s   the launcher reads it, polling every 20 us: %.3fx; spinning: %.3fx\n' \
            "$name" "$(printf '%s\n' "${poll32[@]}" | median)" \
            "$(printf '%s\n' "${spin32[@]}" | median)"
    fi
    [ -n "$base" ] && printf '%-16s base build %s: median %.2fx (rounds: %s)\n' "$name" "$base" \
        "$(printf '%s\n' "${old[@]}" | median)" "${old[*]}"
    printf '%-16s trace %d bytes for %d events (%.2f bytes/event)\n' "$name" "$size" "$events" \
        "$(awk -v s="$size" -v e="$events" 'BEGIN {print s / e}')"
    local t0 t1 t2 t3 psize=0
    t0=$(now)
    for f in run.mtrace*; do "$build/mallet" pack -o "packed-$f" "$f" > /dev/null; done
    t1=$(now)
    "$build/mallet" stats run.mtrace* > /dev/null
    t2=$(now)
    "$build/mallet" stats packed-run.mtrace* > /dev/null
    t3=$(now)
    for f in packed-run.mtrace*; do psize=$((psize + $(wc -c < "$f"))); done
    rm -f packed-run.mtrace*
    printf '%-16s packed %d bytes (%.2f bytes/event) in %.2f s; mallet stats %.2f s, packed %.2f s\n' \
        "$name" "$psize" "$(awk -v s="$psize" -v e="$events" 'BEGIN {print s / e}')" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print (b - a) / 1e6}')" \
        "$(awk -v a="$t1" -v b="$t2" 'BEGIN {print (b - a) / 1e6}')" \
        "$(awk -v a="$t2" -v b="$t3" 'BEGIN {print (b - a) / 1e6}')"
    if command -v heaptrack > /dev/null; then
        rm -f db.sqlite ht.zst
        if [ "$name" = sqlite3 ]; then heaptrack -o ht "$@" < ins.sql > /dev/null 2>&1
        else heaptrack -o ht "$@" > /dev/null 2>&1; fi
        printf '%-16s heaptrack trace %d bytes\n' "$name" "$(wc -c < ht.zst)"
    fi
}

# What a process start and end cost the recorder: an empty program (true), alone and with the
# recorder preloaded (this build's, and the base build's if given), in turns, each a subshell
# that execs it; the median difference in microseconds, the recorder's loading included.
start_cost() {
    local d=() o=() e=() t0 t1 t2 t3
    for r in $(seq 1 $((rounds * 20))); do
        rm -rf run.mtrace*
        t0=$(now)
        (exec true)
        t1=$(now)
        (export MALLET_OUTPUT=run.mtrace LD_PRELOAD="$build/libmallet_record.so"; exec true)
        t2=$(now)
        d+=($(((t2 - t1) - (t1 - t0))))
        (export MALLET_DISABLE=1 LD_PRELOAD="$build/libmallet_record.so"; exec true)
        t3=$(now)
        o+=($(((t3 - t2) - (t1 - t0))))
        [ -n "$base" ] || continue
        rm -rf run.mtrace*
        t2=$(now)
        (export MALLET_OUTPUT=run.mtrace LD_PRELOAD="$base/libmallet_record.so"; exec true)
        t3=$(now)
        e+=($(((t3 - t2) - (t1 - t0))))
    done
    printf '%-16s a process start and end: median %.0f us more recorded (%d rounds)\n' \
        true "$(printf '%s\n' "${d[@]}" | median)" "${#d[@]}"
    printf '%-16s the same preloaded with recording off: median %.0f us more\n' true \
        "$(printf '%s\n' "${o[@]}" | median)"
    [ -n "$base" ] && printf '%-16s the same with the base build: median %.0f us\n' true \
        "$(printf '%s\n' "${e[@]}" | median)"
    return 0
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
start_cost
measure malloc_bench "$build/bench/malloc_bench"
measure malloc_bench_st "$build/bench/malloc_bench" 5000000 0 # one thread: sparse stamps
measure sqlite3 sqlite3 db.sqlite
