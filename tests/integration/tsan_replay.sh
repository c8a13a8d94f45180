# (TSan builds only) A trace with heavy cross-thread frees replays under ThreadSanitizer without a
# race report and without deadlock, in every repetition: the worker's waits (spin, then futex on
# another thread's progress) are what orders a free after the allocation it frees.
. "$(dirname "$0")/lib.sh"
: "${TSAN_WORKER:?set by ctest in TSan builds}"
# a recorded program (200 short-lived threads passing blocks around, with a fork) and a generated
# producer/consumer trace (4 producers, 4 consumers: every free waits for another thread),
"$MALLET" record -q -o churn.mtrace -- "$PROGS/churn" > /dev/null
"$PROGS/gen_trace" prodcons pc.mtrace > pc.json
# and threads that idle and end (thread ends, resume waits, the launcher starting threads)
"$MALLET" record -q -o linger.mtrace -- "$PROGS/linger" 3 4 > /dev/null
for t in churn pc linger; do
    "$MALLET" replay --allocator glibc --no-syscalls $t.mtrace > /dev/null; expect_eq "$t: prepare and replay" 0 $?
    [ -f $t.mtrace.replay ] && pass || fail "$t: no prepared form"
    events=$("$MALLET" stats --json $t.mtrace | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"])')
    for rep in 1 2 3; do
        out=$(TSAN_OPTIONS="halt_on_error=1 exitcode=66" "$TSAN_WORKER" $t.mtrace.replay 2 2> tsan.err)
        st=$?
        expect_eq "$t: repetition $rep: exit (66 = a race)" 0 $st
        [ $st -eq 66 ] && head -30 tsan.err >&2
        expect_match "$t: repetition $rep: every op" "^ops=$events " "$out"
    done
done
finish
