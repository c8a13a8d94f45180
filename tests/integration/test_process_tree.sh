# Every process of a tree gets its own readable trace: fork, fork+exec, a shell pipeline,
# make -j2.
. "$(dirname "$0")/lib.sh"

# fork: the parent's and the child's traces, with the child's ppid pointing at the parent
"$MALLET" record -q -o fork.mtrace -- "$PROGS/procs" fork; expect_eq "procs fork status" 0 $?
files=(fork.mtrace*)
expect_eq "fork: trace files" 2 "${#files[@]}"
"$MALLET" stats --json fork.mtrace* > fork.json; expect_eq "fork: stats status" 0 $?
expect_eq "fork: processes" 2 "$(json fork.json processes)"
parent=$(json fork.json per_process.0.pid)
child_ppid=$(json fork.json per_process.1.ppid)
expect_eq "fork: child's parent" "$parent" "$child_ppid"
# the child's trace holds its own 2002-byte block and not the parent's blocks
"$MALLET" dump --no-time fork.mtrace > /dev/null; expect_eq "fork: dump parent" 0 $?
for f in fork.mtrace.*; do
    d=$("$MALLET" dump --no-time "$f")
    expect_match "fork: child has its block" 'malloc\(2002\)' "$d"
    if printf '%s\n' "$d" | grep -q 'malloc(1001)'; then fail "child trace holds the parent's events"; else pass; fi
done
expect_eq "fork: parent mallocs of 1001" 2 "$("$MALLET" dump --no-time fork.mtrace | grep -c 'malloc(1001)')"

# fork after a fast single-threaded phase (sparse stamps): the child's frees of the three blocks
# the parent made just before forking are inherited, never unknown, however the parent's events
# around the fork were stamped (the parent frees one of them before the child runs, one while it
# runs)
for run in 1 2 3; do
    rm -f inh.mtrace*
    "$MALLET" record -q -o inh.mtrace -- "$PROGS/procs" inherit; expect_eq "procs inherit status" 0 $?
    "$MALLET" stats --json inh.mtrace* > inh.json
    expect_eq "inherit run $run: inherited frees" 3 "$(json inh.json inherited_frees)"
    expect_eq "inherit run $run: unknown frees" 0 "$(json inh.json unknown_frees)"
done

# fork while other threads allocate and free at full speed: a child's frees of the blocks it
# finds are all inherited, whether the threads made them just before the fork (in its window:
# META FORK_END_CYCLES) or freed them just after it, with a reading carried from before (the
# process goes dense at its first fork). Before both: 1,671 of 12,800 frees read as unknown.
"$MALLET" record -q -o tf/ -- "$PROGS/procs" threads-fork 100; expect_eq "threads-fork status" 0 $?
"$MALLET" stats --json tf > tf.json; expect_eq "threads-fork: stats" 0 $?
expect_eq "threads-fork: no unknown frees" 0 "$(json tf.json unknown_frees)"
expect_eq "threads-fork: every child's frees inherited" $((100 * 128)) "$(json tf.json inherited_frees)"

# a program that closes every descriptor (a daemon's start), then takes the recorder's number for
# a file of its own: recording goes on in a descriptor reopened elsewhere, the program's is left
"$MALLET" record -q -o ca.mtrace -- "$PROGS/procs" closeall 2> ca.err; expect_eq "closeall: status" 0 $?
expect_eq "closeall: nothing said" "" "$(cat ca.err)"
expect_eq "closeall: events after the close recorded" 1 "$("$MALLET" dump --no-time ca.mtrace | grep -c 'malloc(9009)')"
expect_eq "closeall: the trace ends cleanly" true "$("$MALLET" stats --json ca.mtrace | python3 -c 'import json,sys; print(str(json.load(sys.stdin)["per_process"][0]["ended_cleanly"]).lower())')"
# RSS samples go on (statm opened again: before, they read the program's /dev/null, and none
# came), and a forked child's recorder leaves the program's 700 and 701 alone (before, it closed
# them: the parent's statm and trace descriptors had those numbers; status 2)
expect_match "closeall: RSS sampled after the close" '^rss [1-9][0-9]{5,}$' "$("$MALLET" dump --no-time ca.mtrace | sed -n '/malloc(9009)/,$p' | grep -o 'rss [0-9]*' | tail -1)"
expect_eq "closeall: two processes" 2 "$(ls ca.mtrace* | wc -l)"

# a relative -o names one place for every process, whatever directory it changes to
mkdir -p sub
"$MALLET" record -q -o rel/ -- sh -c "cd sub && '$PROGS/procs' fork"; expect_eq "relative -o: status" 0 $?
expect_eq "relative -o: every trace in rel/" 3 "$(ls rel | wc -l)"
expect_eq "relative -o: nothing under sub/" 0 "$(ls sub | wc -l)"
"$MALLET" record -q -o rel.mtrace -- sh -c "cd sub && '$PROGS/procs' fork"
expect_eq "relative -o FILE: every trace beside it" 3 "$(ls rel.mtrace* | wc -l)"

# -o /dev/null (recording measured without its files): every process writes into the device,
# and no file is made beside it (before: /dev/null.PID files in /dev)
before=$(ls -d /dev/null.* 2> /dev/null | wc -l)
"$MALLET" record -q -o /dev/null -- "$PROGS/procs" exec > /dev/null 2> devnull.err
expect_eq "-o /dev/null: status" 0 $?
expect_eq "-o /dev/null: nothing said" "" "$(cat devnull.err)"
expect_eq "-o /dev/null: no file beside it" "$before" "$(ls -d /dev/null.* 2> /dev/null | wc -l)"
[ -c /dev/null ] && pass || fail "/dev/null is not a character device any more"
"$MALLET" record -o /dev/null -- true 2> devnull.err
expect_match "-o /dev/null: said where" '^mallet: record: tracing true into /dev/null \(a device: every process writes into it\)$' "$(cat devnull.err)"

# fork + exec: three images (parent, forked child, exec'd leaf)
"$MALLET" record -q -o exec.mtrace -- "$PROGS/procs" exec; expect_eq "procs exec status" 0 $?
all=$("$MALLET" dump --no-time exec.mtrace*)
expect_match "exec: leaf traced" 'malloc\(3003\)' "$all"
expect_match "exec: child traced" 'malloc\(2002\)' "$all"
expect_eq "exec: parent traced" 2 "$(printf '%s\n' "$all" | grep -c 'malloc(1001)')"

# a shell pipeline: sh, and each side of the pipe
mkdir pipe
"$MALLET" record -q -o pipe/ -- sh -c 'ls / | sort -r | head -n 3 > /dev/null'
expect_eq "pipeline status" 0 $?
n=$(ls pipe/*.mtrace | wc -l)
if [ "$n" -ge 3 ]; then pass; else fail "pipeline: expected >= 3 traces (sh ls sort head), got $n"; fi
for prog in ls sort head; do
    if ls pipe/ | grep -q "^$prog\."; then pass; else fail "pipeline: no trace of $prog"; fi
done
"$MALLET" stats --json pipe/*.mtrace > pipe.json; expect_eq "pipeline: stats over all" 0 $?
expect_eq "pipeline: processes" "$n" "$(json pipe.json processes)"
# the folder itself stands for its traces
"$MALLET" stats --json pipe > pipe-dir.json; expect_eq "pipeline: stats of the folder" 0 $?
expect_eq "pipeline: the folder is its traces" "$(cat pipe.json)" "$(cat pipe-dir.json)"
expect_eq "pipeline: check of the folder" "$("$MALLET" check pipe/*.mtrace)" "$("$MALLET" check pipe)"
# more traces than the soft limit of open files (a build's processes): the reader holds them all
# open, so mallet raises the limit as far as the hard one lets it, and says so past that
"$MALLET" record -q -o many/ -- sh -c 'for i in $(seq 300); do /bin/true; done'
n=$(ls many | wc -l) # the 300 trues, sh, and seq (and its subshell)
if [ "$n" -gt 300 ]; then pass; else fail "many: $n traces"; fi
(ulimit -Sn 128; "$MALLET" stats --json many > many.json); expect_eq "many: stats under ulimit -Sn 128" 0 $?
expect_eq "many: processes" "$n" "$(json many.json processes)"
(ulimit -n 128; "$MALLET" stats many > /dev/null 2> many.err); expect_eq "many: hard limit" 1 $?
expect_eq "many: hard limit said" \
    "mallet: $n traces: more than this process may open at once (128 files: ulimit -n)" "$(cat many.err)"

# a recording to the same folder replaces that one's traces (only them)
echo notes > pipe/notes.txt
"$MALLET" record -q -o pipe/ -- "$PROGS/procs" leaf; expect_eq "again: status" 0 $?
expect_eq "again: only the new recording's trace" "procs" "$(ls pipe/*.mtrace | sed 's|.*/||; s|\..*||')"
expect_eq "again: other files kept" notes "$(cat pipe/notes.txt)"

# make -j2 with two compile jobs
if command -v make > /dev/null && command -v cc > /dev/null; then
    mkdir mk && cd mk
    printf 'int a(void){return 1;}\n' > a.c
    printf 'int b(void){return 2;}\n' > b.c
    printf 'all: a.o b.o\n%%.o: %%.c\n\tcc -c $< -o $@\n' > Makefile
    "$MALLET" record -q -o ../make/ -- make -s -j2; expect_eq "make status" 0 $?
    cd ..
    expect_eq "make built" "a.o b.o" "$(cd mk && echo *.o)"
    n=$(ls make/*.mtrace | wc -l)
    if [ "$n" -ge 5 ]; then pass; else fail "make -j2: expected >= 5 traces (make, cc x2, cc1 x2...), got $n"; fi
    "$MALLET" stats --json make/*.mtrace > make.json; expect_eq "make: all traces readable" 0 $?
fi
finish
