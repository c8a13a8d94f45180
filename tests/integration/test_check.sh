# mallet check reports exactly a program's leaks and double free, naming the functions; the
# double free aborts the program and its trace is still complete. A clean program passes.
. "$(dirname "$0")/lib.sh"

"$MALLET" record -q -o clean.mtrace -- "$PROGS/procs" leaf
"$MALLET" check clean.mtrace > clean.txt; expect_eq "clean program: check status" 0 $?

"$MALLET" record -q -o leak.mtrace -- "$PROGS/leaky"; expect_eq "leaky status" 0 $?
"$MALLET" check leak.mtrace > leak.txt; expect_eq "leaks: check status" 1 $?
expect_eq "leak lines" 2 "$(grep -c '^leak:' leak.txt)"
expect_match "leak from make_leak" '^leak: 3 blocks, 300 bytes allocated at make_leak \(leaky\+0x[0-9a-f]+\)$' "$(grep make_leak leak.txt)"
expect_match "leak from make_other_leak" '^leak: 1 block, 4000 bytes allocated at make_other_leak \(leaky\+0x[0-9a-f]+\)$' "$(grep make_other_leak leak.txt)"
expect_eq "no double free reported" 0 "$(grep -c '^double free' leak.txt)"

(ulimit -c 0; "$MALLET" record -q -o df.mtrace -- "$PROGS/leaky" --double-free 2> df.err)
expect_eq "double free aborts" 134 $?
"$MALLET" check df.mtrace > df.txt; expect_eq "double free: check status" 1 $?
expect_match "double free named" '^double free: 0x[0-9a-f]+ freed at release_twice \(leaky\+0x[0-9a-f]+\), first freed at release_twice' "$(grep '^double free' df.txt)"
expect_eq "one double free" 1 "$(grep -c '^double free' df.txt)"
expect_eq "same leaks as without" 2 "$(grep -c '^leak:' df.txt)"
# the trace is complete: the abort happened inside the second free, which is recorded
"$MALLET" dump --no-time df.mtrace > df.dump
expect_eq "frees in the trace" 3 "$(grep -c 'free(0x' df.dump)"

# a leak from a library loaded after the start is named too (the memory map is written again)
"$MALLET" record -q -o late.mtrace -- "$PROGS/leaky" --late "$PROGS/liblate_lib.so"
expect_eq "late library: status" 0 $?
"$MALLET" check late.mtrace > late.txt
expect_match "late library: leak named" '^leak: 1 block, 777 bytes allocated at late_leak \(liblate_lib.so\+0x[0-9a-f]+\)$' "$(grep late_leak late.txt)"

# a block still held when its image execs is released by the exec, not leaked
"$MALLET" record -q -o ex.mtrace -- "$PROGS/procs" exec; expect_eq "procs exec status" 0 $?
"$MALLET" check ex.mtrace* > ex.txt; expect_eq "exec: check status" 0 $?
expect_match "exec: held block counted, not leaked" 'no leaks.*1 block live at an exec' "$(cat ex.txt)"
finish
