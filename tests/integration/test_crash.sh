# A process that dies still leaves a readable trace: after exit, _exit, abort, SIGSEGV, SIGTERM
# every event is there; after SIGKILL the trace is readable and holds what was flushed.
. "$(dirname "$0")/lib.sh"
N=20000 # allocations by ender: N mallocs, N/2 frees

for how in exit _exit abort segv term; do
    (ulimit -c 0; "$MALLET" record -q -o "$how.mtrace" -- "$PROGS/ender" "$how" "$N" > /dev/null 2>&1)
    "$MALLET" stats --json "$how.mtrace" > "$how.json" 2> "$how.err"
    expect_eq "$how: stats status" 0 $?
    # every malloc of the loop is there (libc adds a few of its own: stdout's buffer)
    m=$(json "$how.json" by_kind.malloc)
    if [ "$m" -ge "$N" ] && [ "$m" -le $((N + 10)) ]; then pass; else fail "$how: mallocs $m, expected $N..$((N + 10))"; fi
    f=$(json "$how.json" by_kind.free)
    if [ "$f" -ge $((N / 2)) ]; then pass; else fail "$how: frees $f < $((N / 2))"; fi
done
expect_eq "exit ends cleanly" True "$(json exit.json per_process.0.ended_cleanly)"
expect_eq "abort does not end cleanly" False "$(json abort.json per_process.0.ended_cleanly)"

# SIGKILL from outside, while the program waits: readable, nothing invented
"$PROGS/ender" hang "$N" > /dev/null & # warm the page cache for timing below
sleep 0.2; kill -9 $! 2>/dev/null; wait $! 2>/dev/null
mkfifo ready.fifo
"$MALLET" record -q -o kill.mtrace -- "$PROGS/ender" hang "$N" > ready.fifo &
rec=$!
read -r line < ready.fifo
expect_eq "ender ready" ready "$line"
pkill -KILL -f "ender hang $N" ; wait $rec
expect_eq "mallet record status after SIGKILL" 137 $?
"$MALLET" stats --json kill.mtrace > kill.json; expect_eq "SIGKILL: trace readable" 0 $?
m=$(json kill.json by_kind.malloc)
if [ "$m" -le $((N + 10)) ]; then pass; else fail "SIGKILL: $m mallocs, more than made"; fi
expect_eq "SIGKILL: not ended cleanly" False "$(json kill.json per_process.0.ended_cleanly)"

# A file cut by a crash in the middle of a chunk: all complete chunks are read, and it says so
size=$(stat -c %s exit.mtrace)
head -c $((size - 7)) exit.mtrace > cut.mtrace
"$MALLET" stats --json cut.mtrace > cut.json 2> cut.err; expect_eq "cut: status" 0 $?
expect_match "cut: warned" 'cut.mtrace.*cut' "$(cat cut.err)"
finish
