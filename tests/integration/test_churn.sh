# Many short-lived threads passing blocks to each other, and a fork among them: the trace is
# complete and its order consistent (no block is freed before it exists or freed twice), and
# thread buffers are reused as threads come and go.
. "$(dirname "$0")/lib.sh"
for round in 1 2 3; do
    out=$("$MALLET" record -q -o "churn$round.mtrace" -- "$PROGS/churn"); expect_eq "churn status" 0 $?
    expect_eq "churn mallocs" $((25 * 8 * 2000)) "$out"
    "$MALLET" check "churn$round.mtrace" > check.txt
    expect_match "round $round: consistent order" 'no double frees, no frees of unknown pointers' "$(tail -1 check.txt)"
    # libc keeps stdout's buffer and the thread vectors; the program itself frees everything
    expect_eq "round $round: no leak of the program's own" 0 "$(grep -c '^leak: .*(churn+' check.txt)"
    "$MALLET" stats --json "churn$round.mtrace" > s.json
    expect_eq "round $round: threads" 201 "$(json s.json threads)"
    m=$(json s.json by_kind.malloc)
    if [ "$m" -ge $((25 * 8 * 2000)) ] && [ "$m" -le $((25 * 8 * 2000 + 400)) ]; then pass; else fail "round $round: $m mallocs"; fi
    c=$(json s.json cross_thread_frees)
    if [ "$c" -gt 20000 ]; then pass; else fail "round $round: only $c cross-thread frees"; fi
    expect_eq "round $round: the forked child's trace" 1 "$(ls churn$round.mtrace.* 2>/dev/null | wc -l)"
done
finish
