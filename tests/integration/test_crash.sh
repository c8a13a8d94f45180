# A process that dies still leaves a readable trace: after exit, _exit, abort, SIGSEGV, SIGTERM
# every event is there; after SIGKILL the trace is readable and holds what was flushed.
. "$(dirname "$0")/lib.sh"
N=20000 # allocations by ender: N mallocs, N/2 frees

for how in exit _exit abort segv term fork-term; do
    (ulimit -c 0; "$MALLET" record -q -o "$how.mtrace" -- "$PROGS/ender" "$how" "$N" > /dev/null 2>&1)
    "$MALLET" stats --json "$how.mtrace" > "$how.json" 2> "$how.err"
    expect_eq "$how: stats status" 0 $?
    expect_eq "$how: nothing said (ended, or flushed by the signal's handler)" "" "$(cat "$how.err")"
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
"$MALLET" stats --json kill.mtrace > kill.json 2> kill.err; expect_eq "SIGKILL: trace readable" 0 $?
expect_eq "SIGKILL: said the process had not ended" \
    "mallet: kill.mtrace: no end: the process still runs, was killed, or stopped recording; events not yet written are missing" \
    "$(cat kill.err)"
m=$(json kill.json by_kind.malloc)
if [ "$m" -le $((N + 10)) ]; then pass; else fail "SIGKILL: $m mallocs, more than made"; fi
expect_eq "SIGKILL: not ended cleanly" False "$(json kill.json per_process.0.ended_cleanly)"

# A signal at any moment of a process's life, the recorder's file creation and last write
# included: every file is a readable trace, and after SIGTERM it holds every malloc that had
# returned (ender race-*: children killed after delays that sweep their lives; before the fix a
# third of the files were empty or held no events, and a python multiprocessing pool's worker
# ended by terminate() left an empty file). After SIGKILL: readable, nothing invented.
for sig in term kill; do
    "$MALLET" record -q -o "race-$sig/" -- "$PROGS/ender" "race-$sig" 200 > "race-$sig.txt"
    expect_eq "race-$sig: status" 0 $?
    out=$(python3 - "$MALLET" "race-$sig" << 'PY'
import json, os, subprocess, sys
mallet, name = sys.argv[1], sys.argv[2]
bad, files = [], 0
for line in open(name + ".txt"):
    pid, done = map(int, line.split())
    path = "%s/ender.%d.mtrace" % (name, pid)
    if not os.path.exists(path):
        if done and name == "race-term":
            bad.append("%d: no trace, %d mallocs made" % (pid, done))
        continue
    files += 1
    r = subprocess.run([mallet, "stats", "--json", path], capture_output=True, text=True)
    if r.returncode:
        bad.append("%d: %s" % (pid, r.stderr.strip()))
        continue
    m = json.loads(r.stdout)["by_kind"].get("malloc", 0)
    low = done if name == "race-term" else 0
    if not low <= m <= done + 1:
        bad.append("%d: %d mallocs recorded, %d made" % (pid, m, done))
print("%d files; %d bad: %s" % (files, len(bad), "; ".join(bad[:5])))
PY
)
    expect_match "race-$sig: every trace readable and whole" '^[0-9]+ files; 0 bad' "$out"
done

# Without /proc an unnamed file cannot be linked (its path is /proc/self/fd/N): the file is made
# by name, as on a file system without O_TMPFILE. Needs a mount namespace (root, as in CI).
mkdir noproc
if unshare --mount --propagation private true 2> /dev/null; then
    MALLET_OUTPUT="$WORK/noproc/" unshare --mount --propagation private sh -c \
        'umount -l /proc && LD_PRELOAD="$1" exec "$0" exit 100' "$PROGS/ender" "$MALLET_RECORD_LIB" \
        > /dev/null
    expect_eq "no /proc: status" 5 $?
    "$MALLET" stats --json noproc/*.mtrace > noproc.json; expect_eq "no /proc: readable" 0 $?
    expect_eq "no /proc: ended cleanly" True "$(json noproc.json per_process.0.ended_cleanly)"
else
    echo "skipped: no mount namespace (unshare)"
fi

# A program's signal handler that calls exit() while the recorder writes a buffer (small buffers:
# it often does): the program exits as it would alone. Before the fix, 6 of these 20 runs hung,
# the exit's flush waiting on the buffer the handler had interrupted.
for i in $(seq 1 20); do
    MALLET_BUFFER_KB=4 timeout 20 "$MALLET" record -q -o "alarm$i.mtrace" -- \
        "$PROGS/ender" alarm-exit $((5000 + i * 500))
    expect_eq "alarm-exit $i: status" 7 $?
done
"$MALLET" stats --json alarm*.mtrace > /dev/null
expect_eq "alarm-exit: traces readable" 0 $?

# Children of four allocating threads, small buffers (often writing), ended after 0.5-20 ms by
# SIGTERM, SIGINT, or SIGUSR1 whose handler calls exit(): none hangs, each ends as it would alone,
# every trace reads and has an end (a cut tail is allowed: a thread still allocating after exit()
# wrote its events one by one, and exit_group can stop a write half-way), and no child's trace
# has a double free or an unknown pointer.
MALLET_BUFFER_KB=4 "$MALLET" record -q -o chaos/ -- "$PROGS/ender" chaos 60 > chaos.txt
expect_eq "chaos: status" 0 $?
expect_eq "chaos: every child ended as alone" "hung 0 odd 0" "$(cat chaos.txt)"
"$MALLET" check chaos > chaos.check 2> chaos.err
expect_match "chaos: no double frees or unknown pointers" 'no double frees, no frees of unknown pointers' "$(tail -1 chaos.check)"
expect_eq "chaos: every trace readable, each with an end" "" "$(grep -v 'trace was cut' chaos.err)"

# Our SIGTERM handler on the program's alternate signal stack of 8 KiB (Rust's size), in a forked
# child whose file is made there: it died of SIGSEGV (a 20 KiB array on the stack; lazy binding
# of a libc function, whose resolver saves the AVX-512 state on the stack; zstd's histograms).
"$MALLET" record -q -o alt/ -- "$PROGS/ender" altstack 8192 > alt.txt
expect_eq "altstack: the child dies of SIGTERM" 15 "$(cat alt.txt)"
"$MALLET" stats --json alt/*.mtrace > /dev/null; expect_eq "altstack: traces readable" 0 $?

# A file cut by a crash in the middle of a chunk: all complete chunks are read, and it says so
size=$(stat -c %s exit.mtrace)
head -c $((size - 7)) exit.mtrace > cut.mtrace
"$MALLET" stats --json cut.mtrace > cut.json 2> cut.err; expect_eq "cut: status" 0 $?
expect_match "cut: warned" 'cut.mtrace.*cut' "$(cat cut.err)"
finish
