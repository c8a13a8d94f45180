# (TSan builds only) A trace with heavy cross-thread frees replays under ThreadSanitizer without a
# race report and without deadlock, in every repetition: the worker's waits (spin, then futex on
# another thread's progress) are what orders a free after the allocation it frees.
. "$(dirname "$0")/lib.sh"
: "${TSAN_WORKER:?set by ctest in TSan builds}"
"$MALLET" record -q -o churn.mtrace -- "$PROGS/churn" > /dev/null
"$MALLET" replay --allocator glibc churn.mtrace > /dev/null; expect_eq "prepare and replay" 0 $?
[ -f churn.mtrace.replay ] && pass || fail "no prepared form"
events=$("$MALLET" stats --json churn.mtrace | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"])')
for rep in 1 2 3; do
    out=$(TSAN_OPTIONS="halt_on_error=1 exitcode=66" "$TSAN_WORKER" churn.mtrace.replay 2 2> tsan.err)
    st=$?
    expect_eq "repetition $rep: exit (66 = a race)" 0 $st
    [ $st -eq 66 ] && head -30 tsan.err >&2
    expect_match "repetition $rep: every op" "^ops=$events " "$out"
done
finish
