#!/usr/bin/env bash
# Replay memory does not follow the trace length: for each size, records malloc_bench (2 threads,
# STEPS steps each: about 2 x STEPS events) or, with SOURCE=synth, writes a trace of SIZE events
# with `gen_trace random` (tests/programs/gen_trace.c: 8 threads, 10% of frees by another thread:
# waits and patched flags), then
# - prepare: bench/prepare_bench converts the trace to its replay file; its rate (events/s, one
#   core) and peak resident memory;
# - worker: mallet-worker replays the file on glibc (--touch none), with its ops held whole when
#   they fit the default budget, and streamed (MALLET_REPLAY_OPS_MEM=0); its peak resident memory
#   (/usr/bin/time), which also holds glibc's heap for the trace's live blocks (4096 per thread
#   at most here, about 2 MiB).
# usage: [SOURCE=record|synth] bench/prepare_scale.sh [BUILD_DIR] [SIZE...]
#        (default sizes: 5M 25M 50M steps = ~10/50/100 M events; synth: 10M 50M 100M events)
set -euo pipefail
build=$(realpath "${1:-build}")
shift || true
steps=("$@")
source=${SOURCE:-record}
if [ ${#steps[@]} -eq 0 ]; then
    if [ "$source" = synth ]; then steps=(10000000 50000000 100000000); else steps=(5000000 25000000 50000000); fi
fi
work=$(mktemp -d /tmp/mallet-pscale.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
printf '%12s %10s %10s %12s %10s %12s %12s\n' events trace replay "prepare M/s" "prep MiB" "worker MiB" "streamed MiB"
for s in "${steps[@]}"; do
    if [ "$source" = synth ]; then
        "$build/tests/programs/gen_trace" random "$work/t.mtrace" "$s" > /dev/null
    else
        "$build/mallet" record -q -o "$work/t.mtrace" -- "$build/bench/malloc_bench" "$s" 2> /dev/null
    fi
    /usr/bin/time -f "%M" -o "$work/time" "$build/bench/prepare_bench" "$work/t.mtrace" "$work/t.replay" > "$work/prep.txt"
    events=$(awk '{print $2}' "$work/prep.txt")
    rate=$(grep -o '[0-9.]* M events/s' "$work/prep.txt" | awk '{print $1}')
    prep_kib=$(tail -n 1 "$work/time")
    /usr/bin/time -f "%M" -o "$work/time" "$build/mallet-worker" "$work/t.replay" 0 > "$work/w.txt"
    whole_kib=$(tail -n 1 "$work/time")
    MALLET_REPLAY_OPS_MEM=0 /usr/bin/time -f "%M" -o "$work/time" "$build/mallet-worker" "$work/t.replay" 0 > "$work/w2.txt"
    stream_kib=$(tail -n 1 "$work/time")
    ops1=$(grep -o 'ops=[0-9]*' "$work/w.txt"); ops2=$(grep -o 'ops=[0-9]*' "$work/w2.txt")
    [ "$ops1" = "$ops2" ] || { echo "the two replays differ: $ops1 $ops2" >&2; exit 1; }
    printf '%12d %9dM %9dM %12s %10d %12d %12d\n' "$events" $(($(stat -c %s "$work/t.mtrace") >> 20)) \
        $(($(stat -c %s "$work/t.replay") >> 20)) "$rate" $((prep_kib / 1024)) $((whole_kib / 1024)) $((stream_kib / 1024))
    rm -f "$work/t.mtrace" "$work/t.replay"
done
