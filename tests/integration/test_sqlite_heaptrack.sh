# A real program from Debian: sqlite3 running 3000 inserts, recorded end to end. Its
# allocation-call count agrees with heaptrack's "calls to allocation functions", and its trace is
# no larger than heaptrack's. heaptrack's own
# preload library adds allocations of its own (libstdc++'s emergency pool), so heaptrack's offset
# is first measured on a program that makes exactly one malloc, and the sqlite3 counts must differ
# by exactly that offset.
. "$(dirname "$0")/lib.sh"
command -v sqlite3 > /dev/null || { fail "sqlite3 is not installed (scripts/setup.sh installs it)"; finish; }
command -v heaptrack > /dev/null || { fail "heaptrack is not installed (scripts/setup.sh installs it)"; finish; }

heaptrack_calls() { # ZST -> the number on heaptrack_print's "calls to allocation functions" line
    heaptrack_print "$1" 2>/dev/null | sed -n 's/^calls to allocation functions: \([0-9]*\).*/\1/p'
}

sqlite_inserts 3000 > ins.sql

# heaptrack's offset, on a program that allocates once
heaptrack -o "$WORK/leaf-ht" "$PROGS/procs" leaf > /dev/null 2>&1
"$MALLET" record -q -o leaf.mtrace -- "$PROGS/procs" leaf
"$MALLET" stats --json leaf.mtrace > leaf.json
expect_eq "leaf: mallet alloc calls" 1 "$(json leaf.json alloc_calls)"
offset=$(( $(heaptrack_calls leaf-ht.zst) - $(json leaf.json alloc_calls) ))

heaptrack -o "$WORK/sq-ht" sqlite3 ht.db < ins.sql > ht.out 2>&1
"$MALLET" record -q -o sq.mtrace -- sqlite3 m.db < ins.sql > m.out; expect_eq "sqlite3 status" 0 $?
expect_eq "sqlite3 output" "3000|4503000.0" "$(cat m.out)"
"$MALLET" stats --json sq.mtrace > sq.json; expect_eq "stats status" 0 $?
ours=$(json sq.json alloc_calls)
theirs=$(heaptrack_calls sq-ht.zst)
if [ "$ours" -gt 50000 ]; then pass; else fail "sqlite3: only $ours allocation calls"; fi
# heaptrack hooks neither reallocarray nor pvalloc; sqlite3 uses neither
expect_eq "sqlite3 reallocarray calls" 0 "$(json sq.json by_kind.reallocarray)"
expect_eq "sqlite3 allocation calls: heaptrack - mallet = heaptrack's own ($offset)" "$theirs" $((ours + offset))
expect_eq "frees balance" "$(json sq.json free_calls)" "$(json sq.json by_kind.free)"
# the trace is no larger than heaptrack's for the same run (issue 2's size target; ~11 KB against
# ~14 KB: a single-threaded process stores a time a 100 us step, docs/PERFORMANCE.md "Time steps")
ours=$(wc -c < sq.mtrace) theirs=$(wc -c < sq-ht.zst)
if [ "$ours" -le "$theirs" ]; then pass; else fail "sqlite3: trace $ours bytes, heaptrack's $theirs"; fi
finish
