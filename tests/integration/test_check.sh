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

# suppressions (docs/CHECK.md): suppressed leaks are listed apart, and are no problem
"$MALLET" check --suppress make_other_leak leak.mtrace > s1.txt; expect_eq "one suppressed: status" 1 $?
expect_eq "one suppressed: leak lines" 1 "$(grep -c '^leak:' s1.txt)"
expect_match "one suppressed: listed apart" \
    '^suppressed: 1 block, 4000 bytes by leak:make_other_leak \(--suppress\)$' "$(grep '^suppressed:.*--suppress' s1.txt)"
"$MALLET" check --suppress=make_other_leak leak.mtrace > s1b.txt
expect_eq "--suppress=PATTERN is the same" "$(cat s1.txt)" "$(cat s1b.txt)"
"$MALLET" check leak.mtrace --suppress > /dev/null 2>&1; expect_eq "--suppress without a pattern: usage" 2 $?
"$MALLET" check --no-builtin-suppressions=1 leak.mtrace > /dev/null 2>&1
expect_eq "a value to a flag: usage" 2 $?
printf '# the known ones\n\nleak:^make_leak$\n  leak:make_other*\n' > known.supp
"$MALLET" check --suppressions known.supp leak.mtrace > s2.txt; expect_eq "all suppressed: status" 0 $?
expect_match "all suppressed: summary" '^mallet check: no leaks \(4 blocks suppressed\)' "$(tail -1 s2.txt)"
expect_match "all suppressed: file and line" 'by leak:make_other\* \(known.supp:4\)$' "$(cat s2.txt)"
# a baseline: the leaks found, as a suppressions file that then passes the same trace
"$MALLET" check --gen-suppressions leak.mtrace > gen.supp; expect_eq "gen-suppressions: status" 0 $?
expect_eq "gen-suppressions: one exact pattern a site" \
    "leak:^make_leak\$ leak:^make_other_leak\$" "$(grep '^leak:' gen.supp | sort | tr '\n' ' ' | sed 's/ $//')"
"$MALLET" check --suppressions gen.supp leak.mtrace > /dev/null; expect_eq "baseline: passes" 0 $?
printf 'leak:ok\nleek:typo\n' > bad.supp
"$MALLET" check --suppressions bad.supp leak.mtrace > /dev/null 2> bad.err; expect_eq "bad suppressions: status" 1 $?
expect_eq "bad suppressions: one line naming file and line" \
    "mallet: bad.supp:2: not a leak:PATTERN line: leek:typo" "$(cat bad.err)"
# the built-in list: glibc's stdio buffer of a program that prints (to a file: fully buffered)
"$MALLET" record -q -o io.mtrace -- "$PROGS/procs" print > io.out; expect_eq "procs print status" 0 $?
"$MALLET" check io.mtrace > io.txt; expect_eq "stdio buffer: suppressed by default" 0 $?
expect_match "stdio buffer: listed apart" \
    '^suppressed: 1 block, [0-9]+ bytes by leak:\^_IO_file_doallocate\$ \(built-in\)$' "$(cat io.txt)"
"$MALLET" check --no-builtin-suppressions io.mtrace > io2.txt; expect_eq "no built-ins: status" 1 $?
expect_match "no built-ins: the buffer is a leak" '^leak: 1 block, [0-9]+ bytes allocated at _IO_file_doallocate ' "$(cat io2.txt)"
# the dynamic loader's: a joined thread's TLS stays with its cached stack
"$MALLET" record -q -o th.mtrace -- "$PROGS/handover" > /dev/null; expect_eq "handover status" 0 $?
"$MALLET" check th.mtrace > th.txt; expect_eq "thread TLS: suppressed by default" 0 $?
expect_match "thread TLS: by the loader's pattern" '^suppressed: .* by leak:ld-linux \(built-in\)$' "$(cat th.txt)"
"$MALLET" check --no-builtin-suppressions th.mtrace > th2.txt; expect_eq "no built-ins: a leak" 1 $?
expect_match "no built-ins: in the loader" '^leak: .*ld-linux' "$(cat th2.txt)"

(ulimit -c 0; "$MALLET" record -q -o df.mtrace -- "$PROGS/leaky" --double-free 2> df.err)
expect_eq "double free aborts" 134 $?
"$MALLET" check df.mtrace > df.txt; expect_eq "double free: check status" 1 $?
expect_match "double free named" '^double free: 0x[0-9a-f]+ freed at release_twice \(leaky\+0x[0-9a-f]+\), first freed at release_twice' "$(grep '^double free' df.txt)"
expect_eq "one double free" 1 "$(grep -c '^double free' df.txt)"
expect_eq "same leaks as without" 2 "$(grep -c '^leak:' df.txt)"
# the trace is complete: the abort happened inside the second free, which is recorded
"$MALLET" dump --no-time df.mtrace > df.dump
expect_eq "frees in the trace" 3 "$(grep -c 'free(0x' df.dump)"

# strdup and strndup allocate inside libc: their blocks are the caller's (the recorder does them)
"$MALLET" record -q -o dup.mtrace -- "$PROGS/procs" dup; expect_eq "procs dup status" 0 $?
"$MALLET" check dup.mtrace > dup.txt
expect_eq "strdup, strndup: the caller's leaks" 2 "$(grep -c '^leak: 1 block, 5 bytes allocated at dup_leak (procs+' dup.txt)"

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
