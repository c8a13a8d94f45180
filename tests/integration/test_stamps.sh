# The recorder's sparse timestamps (harness/record/record.h, mallet_stamp; stamp.c): while a
# thread allocates fast, one event in MALLET_STAMP_EVERY reads the clock and the others carry the
# last reading; with several threads, only events on memory the thread owns in the owner table
# may carry. Any event ordered before one it depends on would show up as a free of a pointer that
# is not live (a double free, or an unknown pointer) in check and stats. handover starts threads
# that trade blocks with the main thread in both directions right after a fast single-threaded
# phase; traders runs threads that keep to their own memory (solo), hand some blocks on (local),
# or take turns (pingpong). (Letting every event carry, the owner table ignored, handover shows
# 2,500-3,100 misordered frees per run.)
. "$(dirname "$0")/lib.sh"

for run in 1 2 3; do
    "$MALLET" record -q -o "h$run.mtrace" -- "$PROGS/handover"; expect_eq "record status" 0 $?
    "$MALLET" stats --json "h$run.mtrace" > "s$run.json"
    expect_eq "run $run: frees of pointers not live" 0 "$(json "s$run.json" unknown_frees)"
    expect_eq "run $run: reallocs of pointers not live" 0 "$(json "s$run.json" unknown_reallocs)"
    expect_eq "run $run: threads" 3 "$(json "s$run.json" threads)"
    cross=$(json "s$run.json" cross_thread_frees)
    [ "$cross" -ge 40000 ] && pass || fail "run $run: only $cross cross-thread frees"
    out=$("$MALLET" check "h$run.mtrace")
    expect_match "run $run: check" "no double frees, no frees of unknown pointers" "$out"
done

for mode in solo local pingpong; do
    for run in 1 2; do
        t="$mode$run.mtrace"
        "$MALLET" record -q -o "$t" -- "$PROGS/traders" "$mode" 100000
        expect_eq "traders $mode: record status" 0 $?
        "$MALLET" stats --json "$t" > "$t.json"
        expect_eq "traders $mode $run: frees of pointers not live" 0 "$(json "$t.json" unknown_frees)"
        out=$("$MALLET" check "$t")
        expect_match "traders $mode $run: check" "no double frees, no frees of unknown pointers" "$out"
    done
done
[ "$(json local1.mtrace.json cross_thread_frees)" -ge 1000 ] && pass || fail "traders local: few cross-thread frees"
expect_eq "traders pingpong: cross-thread frees" 200001 "$(json pingpong1.mtrace.json cross_thread_frees)"

# Where the stamps are sparse and where they are exact: distinct times among the main thread's
# events before the first other thread's, and among the later events of each thread, past its
# first 8192 (the owner table's first claims, the switch to a reading per event).
stamp_profile() { # TRACE -> "single_events single_distinct multi_events multi_distinct"
    "$MALLET" dump "$1" | python3 -c '
import sys
pid = None; first_other = False
single, multi = [], {}
for line in sys.stdin:
    f = line.split()
    if f[5] == "rss": continue
    if pid is None: pid = f[2]
    if f[4] != pid: first_other = True
    if not first_other: single.append(f[0])
    else: multi.setdefault(f[4], []).append(f[0])
later = [v[8192:] for v in multi.values()]
print(len(single), len(set(single)), sum(map(len, later)), sum(len(set(v)) for v in later))'
}

read -r se sd me md <<< "$(stamp_profile h1.mtrace)"
[ "$se" -ge 200000 ] && pass || fail "single-threaded phase has only $se events"
# One in 16 reads the clock while fast, and one time a step of 100 us is kept (MALLET_TIME_STEP_US:
# 2,000-5,000 of its events; the phase starts slowly, where each reading is kept)
[ $((sd * 500)) -le "$se" ] && pass || fail "time steps: $sd distinct times in $se events"
# Without steps, each reading is kept: one in 16 (and a few more)
MALLET_TIME_STEP_US=0 "$MALLET" record -q -o nostep.mtrace -- "$PROGS/handover"
read -r se sd me md <<< "$(stamp_profile nostep.mtrace)"
[ $((sd * 8)) -le "$se" ] && [ $((sd * 100)) -ge "$se" ] && pass ||
    fail "MALLET_TIME_STEP_US=0: $sd distinct times in $se events"
# Threads on their own memory carry too (two readings never give the same ns)
read -r se sd me md <<< "$(stamp_profile solo1.mtrace)"
[ "$me" -ge 300000 ] && [ $((md * 8)) -le "$me" ] && pass ||
    fail "traders solo: $md distinct times in $me events"
# Threads that take turns read the clock on every event
read -r se sd me md <<< "$(stamp_profile pingpong1.mtrace)"
[ "$me" -ge 300000 ] && [ $((md * 1000)) -ge $((me * 999)) ] && pass ||
    fail "traders pingpong: $md distinct times in $me events"

# One thread, bursts of 25 short-lived blocks with 500 us of computing after each (bursts.c): the
# events of a burst carry one time (shorter than a step); the reading after the pause leaves a
# mark with the last one before it, so a reader does not spread the burst over the pause. Most
# lifetimes are then under 16 us (each burst's last up to 15 events, read late, excepted); without
# marks almost none were (~1 in 200), and with MALLET_TIME_STEP_US=0 about 2 in 5.
short_lives() { # TRACE -> "SHORT ALL": blocks that lived 16 us or less, and all that died
    "$MALLET" stats --json "$1" | python3 -c '
import json, sys
h = json.load(sys.stdin)["lifetime_histogram"]
print(sum(b["count"] for b in h if b["le"] <= 16384), sum(b["count"] for b in h))'
}
"$MALLET" record -q -o bursts.mtrace -- "$PROGS/bursts"; expect_eq "bursts: record status" 0 $?
read -r short all <<< "$(short_lives bursts.mtrace)"
expect_eq "bursts: blocks freed" 5000 "$all"
[ $((short * 2)) -ge "$all" ] && pass || fail "bursts: only $short of $all lifetimes under 16 us"

MALLET_STAMP_EVERY=1 MALLET_TIME_STEP_US=0 "$MALLET" record -q -o every.mtrace -- "$PROGS/handover" 50000
read -r se sd me md <<< "$(stamp_profile every.mtrace)"
[ $((sd * 1000)) -ge $((se * 999)) ] && pass || fail "MALLET_STAMP_EVERY=1: $sd distinct times in $se events"
MALLET_STAMP_EVERY=1 "$MALLET" record -q -o every-solo.mtrace -- "$PROGS/traders" solo 50000
read -r se sd me md <<< "$(stamp_profile every-solo.mtrace)"
[ $((md * 1000)) -ge $((me * 999)) ] && pass || fail "MALLET_STAMP_EVERY=1, traders solo: $md distinct times in $me events"

finish
