#!/usr/bin/env bash
# Conversion speed of two builds on one trace, run in turns (A, B, A, B, ...) so that a shared,
# noisy machine slows both alike. Per build: the median and the best of the wall rate
# (prepare_bench's own) and of the CPU rate (events per second of task-clock, from perf stat when
# it is there: another tenant's load shows less in it than in the wall time).
# With --read, only the reader (prepare_bench --read: records per second).
# usage: bench/prepare_compare.sh BUILD_A BUILD_B TRACE [ROUNDS] [--read]
set -euo pipefail
a=$(realpath "$1")
b=$(realpath "$2")
trace=$3
rounds=${4:-7}
mode=${5:-}
work=$(mktemp -d /tmp/mallet-pcmp.XXXXXX)
trap 'rm -rf "$work"' EXIT
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
best() { sort -g | tail -1; }
have_perf=0
perf stat -x, -e task-clock true 2>/dev/null && have_perf=1
one() { # BUILD TAG -> "wall_rate cpu_rate"
    # each build replaces its own replay file: unlinking the old one (its page cache freed) is
    # part of the time, and the other build's file may be another size
    local args=("$work/out.$2.replay")
    [ "$mode" = --read ] && args=()
    local cmd=("$1/bench/prepare_bench" ${mode:+"$mode"} "$trace" "${args[@]}")
    local out ms n wall
    if [ $have_perf = 1 ]; then
        out=$(perf stat -x, -e task-clock -o "$work/stat" "${cmd[@]}")
        ms=$(grep task-clock "$work/stat" | cut -d, -f1)
    else
        out=$("${cmd[@]}")
        ms=0
    fi
    if [ "$mode" = --read ]; then
        n=$(sed 's/^read \([0-9]*\) .*/\1/' <<<"$out")
        wall=$(sed 's/.*s, \([0-9.]*\) M\/s.*/\1/' <<<"$out")
    else
        n=$(sed 's/^events \([0-9]*\) .*/\1/' <<<"$out")
        wall=$(sed 's/.*s, \([0-9.]*\) M events.*/\1/' <<<"$out")
    fi
    echo "$wall $(awk -v n="$n" -v ms="$ms" 'BEGIN {printf "%.2f", (ms > 0 ? n / ms / 1e3 : 0)}')"
}
for _ in $(seq "$rounds"); do
    one "$a" a >>"$work/a"
    one "$b" b >>"$work/b"
done
for x in a b; do
    dir=$a
    [ $x = b ] && dir=$b
    echo "$dir: wall M/s median $(cut -d' ' -f1 "$work/$x" | median) best $(cut -d' ' -f1 "$work/$x" | best);" \
         "CPU M/s median $(cut -d' ' -f2 "$work/$x" | median) best $(cut -d' ' -f2 "$work/$x" | best)"
done
