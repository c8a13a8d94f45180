# The recorder's sparse timestamps (harness/record/record.h, mallet_stamp): while a process has
# one thread and allocates fast, one event in MALLET_STAMP_EVERY reads the clock and the others
# carry the last reading; once a second thread records, every event reads it. handover starts
# threads that trade blocks with the main thread in both directions right after a fast phase:
# any event ordered before one it depends on would show up as a free of a pointer that is not
# live (a double free, or an unknown pointer) in check and stats. (With the switch to exact
# stamps disabled, this program shows ~700 of them per run.)
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

# Where the stamps are sparse and where they are exact: distinct times among the main thread's
# events before the first other thread's, and among every later event of each thread.
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
m_events = sum(len(v) for v in multi.values())
m_distinct = sum(len(set(v)) for v in multi.values())
print(len(single), len(set(single)), m_events, m_distinct)'
}

read -r se sd me md <<< "$(stamp_profile h1.mtrace)"
[ "$se" -ge 200000 ] && pass || fail "single-threaded phase has only $se events"
# One in 16 reads the clock while fast (the phase starts slowly: a few more)
[ $((sd * 8)) -le "$se" ] && pass || fail "sparse stamps: $sd distinct times in $se events"
# After the second thread: every event its own reading (two readings never give the same ns)
[ $((md * 1000)) -ge $((me * 999)) ] && pass || fail "exact stamps: $md distinct times in $me events"

MALLET_STAMP_EVERY=1 "$MALLET" record -q -o every.mtrace -- "$PROGS/handover" 50000
read -r se sd me md <<< "$(stamp_profile every.mtrace)"
[ $((sd * 1000)) -ge $((se * 999)) ] && pass || fail "MALLET_STAMP_EVERY=1: $sd distinct times in $se events"

finish
