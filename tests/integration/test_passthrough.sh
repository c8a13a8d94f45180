# The recorder never changes what the traced program does: same stdout, stderr, exit status and
# death by signal, with `mallet record` and with a plain LD_PRELOAD; an unwritable output says
# so once and the program runs on.
. "$(dirname "$0")/lib.sh"

# Output and status of a real program, recorded and not.
printf 'b\na\nc\n' > in.txt
sort in.txt > plain.out 2> plain.err; plain=$?
"$MALLET" record -q -o sort.mtrace -- sort in.txt > rec.out 2> rec.err; rec=$?
expect_eq "sort status" "$plain" "$rec"
cmp -s plain.out rec.out && pass || fail "sort stdout differs under mallet record"
cmp -s plain.err rec.err && pass || fail "sort stderr differs under mallet record"

# stdin passes through
out=$(printf 'hello\n' | "$MALLET" record -q -o cat.mtrace -- cat)
expect_eq "stdin passes through" "hello" "$out"

# exit status
"$MALLET" record -q -o ender.mtrace -- "$PROGS/ender" exit 10 > /dev/null; expect_eq "exit status" 5 $?
"$MALLET" record -q -o ender.mtrace -- "$PROGS/ender" _exit 10 > /dev/null; expect_eq "_exit status" 3 $?

# death by signal: mallet record dies the same way
"$PROGS/ender" term 10 > /dev/null; plain=$?
"$MALLET" record -q -o term.mtrace -- "$PROGS/ender" term 10 > /dev/null; rec=$?
expect_eq "SIGTERM status" "$plain" "$rec"
(ulimit -c 0; "$PROGS/ender" segv 10 > /dev/null); plain=$?
(ulimit -c 0; "$MALLET" record -q -o segv.mtrace -- "$PROGS/ender" segv 10 > /dev/null); rec=$?
expect_eq "SIGSEGV status" "$plain" "$rec"

# plain LD_PRELOAD, no CLI: same output, a trace appears
mkdir pre
LD_PRELOAD="$MALLET_RECORD_LIB" MALLET_OUTPUT="$WORK/pre/" sort in.txt > pre.out; expect_eq "LD_PRELOAD status" 0 $?
cmp -s plain.out pre.out && pass || fail "sort stdout differs under LD_PRELOAD"
n=$(ls pre/*.mtrace 2>/dev/null | wc -l)
expect_eq "LD_PRELOAD trace files" 1 "$n"

# MALLET_DISABLE=1: every call passes through, no trace, nothing on stderr, same output
mkdir off
LD_PRELOAD="$MALLET_RECORD_LIB" MALLET_DISABLE=1 MALLET_OUTPUT="$WORK/off/" sort in.txt > off.out 2> off.err
expect_eq "status with recording off" 0 $?
cmp -s plain.out off.out && pass || fail "sort stdout differs with recording off"
expect_eq "no trace with recording off" 0 "$(ls off | wc -l)"
expect_eq "nothing on stderr with recording off" 0 "$(wc -c < off.err)"
LD_PRELOAD="$MALLET_RECORD_LIB" MALLET_DISABLE=1 "$PROGS/ender" exit 10 > /dev/null
expect_eq "exit status with recording off" 5 $?

# unwritable output: one message on stderr, the program's own output and status unchanged
LD_PRELOAD="$MALLET_RECORD_LIB" MALLET_OUTPUT=/nonexistent/dir/x.mtrace sort in.txt > bad.out 2> bad.err
expect_eq "status with unwritable output" 0 $?
cmp -s plain.out bad.out && pass || fail "stdout changed when the trace cannot be written"
expect_eq "one line of complaint" 1 "$(grep -c '^mallet: cannot write trace' bad.err)"
expect_match "complaint names the file" '/nonexistent/dir/x.mtrace' "$(cat bad.err)"

# a file-size limit: our write fails (no SIGXFSZ kills the program), said once, program unchanged
(ulimit -f 8; LD_PRELOAD="$MALLET_RECORD_LIB" MALLET_OUTPUT="$WORK/fsize.mtrace" "$PROGS/ender" exit 300000 > fsize.out 2> fsize.err)
expect_eq "status under a file-size limit" 5 $?
expect_eq "stdout under a file-size limit" ready "$(cat fsize.out)"
expect_eq "one complaint under a file-size limit" 1 "$(grep -c '^mallet: cannot write trace .*fsize.mtrace: File too large' fsize.err)"
expect_eq "nothing else on stderr" 1 "$(wc -l < fsize.err)"
"$MALLET" stats fsize.mtrace > /dev/null 2>&1; expect_eq "trace readable up to the limit" 0 $?

# no memory for a thread's buffer (tests/programs/mapless.c refuses the second one): one line on
# stderr, recording stops, the program's output and status are its own, the trace says it has no
# end. Before, that thread's events were dropped silently.
"$PROGS/handover" > ml-alone.out; alone=$?
MALLET_BUFFER_KB=4 MAPLESS_AFTER=1 MALLET_OUTPUT="$WORK/ml.mtrace" \
    LD_PRELOAD="$MALLET_RECORD_LIB $PROGS/libmapless.so" "$PROGS/handover" > ml.out 2> ml.err
expect_eq "no buffer: status" "$alone" $?
expect_eq "no buffer: output" "$(cat ml-alone.out)" "$(cat ml.out)"
expect_match "no buffer: one line" \
    '^mallet: cannot write trace .*ml.mtrace: Cannot allocate memory; recording stopped, the program continues$' \
    "$(cat ml.err)"
"$MALLET" stats ml.mtrace > /dev/null 2> ml-stats.err; expect_eq "no buffer: trace readable" 0 $?
expect_match "no buffer: the trace says it has no end" 'ml.mtrace: no end' "$(cat ml-stats.err)"

# a set-user-ID program that changes the user: the loader ignores LD_PRELOAD for it, and `mallet
# record` says so rather than record nothing silently (as root: a copy owned by nobody)
cp "$PROGS/procs" suid-procs
if chown nobody suid-procs 2> /dev/null && chmod u+s suid-procs &&
    ! findmnt -no OPTIONS -T . | grep -q nosuid; then
    "$MALLET" record -q -o suid/ -- ./suid-procs leaf 2> suid.err; expect_eq "suid: status" 0 $?
    expect_match "suid: said" '^mallet: record: ./suid-procs is set-user-ID or set-group-ID: the loader ignores LD_PRELOAD' "$(cat suid.err)"
    expect_eq "suid: indeed nothing recorded" 0 "$(ls suid | wc -l)"
else
    echo "skipped: cannot make a set-user-ID file here"
fi

# a statically linked program: no dynamic loader, so no preload; said, not silently nothing
if printf 'int main(void){return 3;}\n' | cc -static -x c - -o static-prog 2> /dev/null; then
    "$MALLET" record -q -o static/ -- ./static-prog 2> static.err; expect_eq "static: status" 3 $?
    expect_match "static: said" '^mallet: record: ./static-prog is statically linked: LD_PRELOAD cannot reach it' "$(cat static.err)"
    "$MALLET" record -q -o dyn.mtrace -- "$PROGS/procs" leaf 2> dyn.err
    expect_eq "dynamic: nothing said" "" "$(cat dyn.err)"
else
    echo "skipped: no static C library (cc -static)"
fi

# the recorder's own descriptors (the trace, /proc/self/statm) stay clear of the low ones: a
# program's first open() gets 3 as without the recorder (before: statm took 3, and sh's first
# file here got 4); above 699 is the recorder's, and a forked child's reopened statm too
# (the child: a subshell, forked, whose glob reads its own /proc/self)
fds() { tr ' ' '\n' | sed 's#.*/##' | sort -n | awk -v above="$1" '($1 >= 700) == above'; }
sh -c 'ls /proc/$$/fd; (echo /proc/self/fd/* > child-alone.txt)' > fds-alone.txt
"$MALLET" record -q -o fds/ -- sh -c 'ls /proc/$$/fd; (echo /proc/self/fd/* > child-rec.txt)' > fds-rec.txt
expect_eq "descriptors: the program's, unchanged" "$(fds 0 < fds-alone.txt)" "$(fds 0 < fds-rec.txt)"
expect_eq "descriptors: the recorder's, high" 2 "$(fds 1 < fds-rec.txt | wc -l)"
expect_eq "descriptors: a forked child's, unchanged" "$(fds 0 < child-alone.txt)" "$(fds 0 < child-rec.txt)"
# under a descriptor limit of 700 or less (ulimit -n 64) the recorder's go to its top (56, 57)
lowfds() { sed 's#.*/##' | sort -n | awk '$1 < 50'; }
(ulimit -n 64 && sh -c 'ls /proc/$$/fd') > fds64-alone.txt
(ulimit -n 64 && "$MALLET" record -q -o fds64/ -- sh -c 'ls /proc/$$/fd') > fds64-rec.txt
expect_eq "descriptors under ulimit -n 64: the program's, unchanged" "$(lowfds < fds64-alone.txt)" "$(lowfds < fds64-rec.txt)"
expect_eq "descriptors under ulimit -n 64: the recorder's, at the top" "56 57" "$(sed 's#.*/##' fds64-rec.txt | sort -n | awk '$1 >= 50 && $1 < 64' | tr '\n' ' ' | sed 's/ $//')"

# the recorder's handlers for fatal signals are invisible: the program reads SIG_DFL where it
# would alone (sigaction, signal), and SIG_DFL put back on one still flushes at death. Before:
# a recorded CPython saw SIGINT taken, did not install its KeyboardInterrupt handler, and died
# of a Ctrl-C that it catches alone.
"$PROGS/dispositions" > disp-alone.out 2> /dev/null; alone=$?
"$MALLET" record -q -o disp.mtrace -- "$PROGS/dispositions" > disp-rec.out 2> /dev/null
expect_eq "dispositions: status" "$alone" $?
expect_eq "dispositions: as alone" "$(cat disp-alone.out)" "$(cat disp-rec.out)"
"$MALLET" stats disp.mtrace > /dev/null 2> disp-stats.err
expect_eq "dispositions: died flushed after SIG_DFL" "" "$(cat disp-stats.err)"
cat > sigint.py << 'EOF'
import os, signal
print(signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
try:
    os.kill(os.getpid(), signal.SIGINT)
    signal.pause()
except KeyboardInterrupt:
    print("caught KeyboardInterrupt")
os.kill(os.getpid(), signal.SIGINT)
signal.pause()
EOF
python3 sigint.py > py-alone.out 2> py-alone.err; alone=$?
"$MALLET" record -q -o py.mtrace -- python3 sigint.py > py-rec.out 2> py-rec.err
expect_eq "python SIGINT: status" "$alone" $?
expect_eq "python SIGINT: output" "$(cat py-alone.out)" "$(cat py-rec.out)"
expect_eq "python SIGINT: traceback" "$(cat py-alone.err)" "$(cat py-rec.err)"
"$MALLET" stats py.mtrace > /dev/null 2> py-stats.err
expect_eq "python SIGINT: died flushed" "" "$(cat py-stats.err)"

# threads cancelled while they allocate (pthread_cancel, deferred): malloc and free are not
# cancellation points, and must not become ones under the recorder (before: a thread cancelled
# at the recorder's write unwound with its buffer locked, and the process hung at the join)
"$PROGS/cancelled" > cancel-alone.out
MALLET_BUFFER_KB=4 timeout 60 "$MALLET" record -q -o cancel.mtrace -- "$PROGS/cancelled" > cancel-rec.out
expect_eq "cancelled threads: status" 0 $?
expect_eq "cancelled threads: as alone" "$(cat cancel-alone.out)" "$(cat cancel-rec.out)"
"$MALLET" check cancel.mtrace > /dev/null
expect_eq "cancelled threads: trace clean" 0 $?

# a 32-bit program: its loader cannot take the 64-bit recorder (it skips it with a line of its
# own, for a dynamic one); said, not silently nothing. A hand-made static i386 executable (an ELF
# header, one loadable segment, and `exit(3)` by int 0x80), since the 32-bit C library may be
# missing.
{
    printf '\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00' # 32-bit, little-endian
    printf '\x02\x00\x03\x00\x01\x00\x00\x00\x54\x80\x04\x08'         # EXEC, i386, entry
    printf '\x34\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'         # phoff 52, no sections
    printf '\x34\x00\x20\x00\x01\x00\x00\x00\x00\x00\x00\x00'         # sizes, one segment
    printf '\x01\x00\x00\x00\x00\x00\x00\x00\x00\x80\x04\x08\x00\x80\x04\x08' # LOAD at 0x8048000
    printf '\x60\x00\x00\x00\x60\x00\x00\x00\x05\x00\x00\x00\x00\x10\x00\x00' # 96 bytes, r-x
    printf '\xbb\x03\x00\x00\x00\xb8\x01\x00\x00\x00\xcd\x80'         # exit(3)
} > elf32-prog
chmod +x elf32-prog
./elf32-prog 2> /dev/null; alone=$?
"$MALLET" record -q -o elf32/ -- ./elf32-prog 2> elf32.err; recorded=$?
# (a kernel without 32-bit support: bash says 126, execvp hands the file to sh; not compared)
[ "$alone" = 3 ] && expect_eq "32-bit: status" 3 "$recorded"
expect_match "32-bit: said" '^mallet: record: ./elf32-prog is a 32-bit i386 program, the recorder library .*libmallet_record.so is 64-bit x86-64: it cannot be loaded there' "$(cat elf32.err)"
expect_eq "32-bit: said once" 1 "$(grep -c "^mallet:" elf32.err)"

# a library loaded with RTLD_DEEPBIND calls the C library's malloc, not the recorder's: the
# host's frees of its blocks are frees of pointers the trace never saw. Said once, naming the
# library, at the end; the same library loaded plainly is recorded, and nothing is said.
"$MALLET" record -q -o plugin.mtrace -- "$PROGS/deep_host" "$PROGS/liblate_lib.so" > plugin.out 2> plugin.err
expect_eq "plain plugin: status" 0 $?
expect_eq "plain plugin: nothing said" "" "$(cat plugin.err)"
"$MALLET" check plugin.mtrace > plugin.check
expect_eq "plain plugin: clean" 0 $?
"$MALLET" record -q -o deep.mtrace -- "$PROGS/deep_host" "$PROGS/liblate_lib.so" deep > deep.out 2> deep.err
expect_eq "deep plugin: status" 0 $?
expect_eq "deep plugin: output" "freed 3 blocks of a deep-bound library" "$(cat deep.out)"
expect_match "deep plugin: said" "^mallet: .*liblate_lib.so calls the C library's allocator directly, not through the recorder \(loaded with RTLD_DEEPBIND\?\)" "$(cat deep.err)"
expect_eq "deep plugin: one line" 1 "$(wc -l < deep.err)"
"$MALLET" check deep.mtrace > deep.check
expect_eq "deep plugin: what the line explains" 3 "$(grep -c '^free of unknown pointer' deep.check)"

# a program with a malloc of its own (found before the recorder's): one line says nothing of it is
# recorded, and the recorder's strdup takes its blocks from that malloc as the C library's would
# (before: strdup gave a glibc block, the program's free aborted, status 134)
"$PROGS/own_malloc" > own-alone.out; expect_eq "own malloc: alone" 0 $?
"$MALLET" record -q -o own/ -- "$PROGS/own_malloc" > own.out 2> own.err
expect_eq "own malloc: status" 0 $?
expect_eq "own malloc: output" "$(cat own-alone.out)" "$(cat own.out)"
expect_match "own malloc: said" "^mallet: malloc here is .*own_malloc's own, found before the recorder's" "$(cat own.err)"

# an executable (not PIE) that takes malloc's address has a symbol for its PLT entry, which is
# not a malloc of its own: recorded, nothing said (node is one)
if printf '#include <stdlib.h>\nvoid *(*volatile f)(size_t);\nint main(void){f = malloc; free(f(4242)); return 0;}\n' |
    cc -no-pie -fno-pic -fno-builtin -x c - -o plt-prog 2> /dev/null; then
    "$MALLET" record -q -o plt.mtrace -- ./plt-prog 2> plt.err; expect_eq "malloc's address: status" 0 $?
    expect_eq "malloc's address: nothing said" "" "$(cat plt.err)"
    expect_eq "malloc's address: recorded" 1 "$("$MALLET" dump --no-time plt.mtrace | grep -c 'malloc(4242)')"
else
    echo "skipped: cc -no-pie"
fi

# a full disk (a tiny tmpfs, where this machine lets us mount one)
mkdir full
if mount -t tmpfs -o size=64k tmpfs full 2> /dev/null; then
    # raw chunks, so that its trace is sure to fill the 64 KiB
    LD_PRELOAD="$MALLET_RECORD_LIB" MALLET_ZSTD_LEVEL=0 MALLET_OUTPUT="$WORK/full/x.mtrace" \
        "$PROGS/ender" exit 300000 > full.out 2> full.err
    expect_eq "status on a full disk" 5 $?
    expect_eq "one complaint on a full disk" 1 "$(grep -c 'No space left on device' full.err)"
    "$MALLET" stats full/x.mtrace > /dev/null 2>&1; expect_eq "trace readable on a full disk" 0 $?
    umount full
else
    echo "note: cannot mount a tmpfs here; the full-disk case is not run"
fi

# trace files are private
"$MALLET" record -q -o mode.mtrace -- "$PROGS/ender" exit 10 > /dev/null
expect_eq "trace file mode" 600 "$(stat -c %a mode.mtrace)"

# the command cannot be found: 127 like a shell, one message
"$MALLET" record -q -- /nonexistent/cmd 2> nf.err; expect_eq "missing command status" 127 $?
expect_match "missing command message" 'mallet: record: /nonexistent/cmd' "$(cat nf.err)"
finish
