# `mallet pack`: traces of real programs (malloc_bench's two threads of random blocks, sqlite3's
# inserts, a shell pipeline's processes) packed, then read by every command exactly as the
# originals are (dump, stats, check, replay), smaller, and malloc_bench's no larger than
# heaptrack's file; in place and with -o, 0600; a cut trace stays cut, and a trace without an end
# is not packed in its place; a packed, a corrupt and a missing trace are refused with one line,
# leaving nothing behind, as does a pack over `ulimit -f` or ended by a signal
# (docs/TRACE_FORMAT.md 13).
. "$(dirname "$0")/lib.sh"
command -v sqlite3 > /dev/null || { fail "sqlite3 is not installed (scripts/setup.sh installs it)"; finish; }

version() { od -An -tu4 -j8 -N4 "$1" | tr -d ' '; }

# the same reading, command by command (stats: but for the file's own size)
same_reading() { # WHAT ORIGINAL PACKED
    "$MALLET" dump "$2" > a.dump 2> a.err; local sa=$?
    "$MALLET" dump "$3" > b.dump 2> b.err
    expect_eq "$1: dump status" "$sa" "$?"
    if cmp -s a.dump b.dump; then pass; else fail "$1: dump differs: $(diff a.dump b.dump | head -3)"; fi
    expect_eq "$1: dump's warnings" "$(sed "s#$2#T#" a.err)" "$(sed "s#$3#T#" b.err)"
    "$MALLET" stats --json "$2" 2> /dev/null | grep -v '"trace_bytes"\|"path"' > a.json
    "$MALLET" stats --json "$3" 2> /dev/null | grep -v '"trace_bytes"\|"path"' > b.json
    if cmp -s a.json b.json; then pass; else fail "$1: stats differ: $(diff a.json b.json | head -3)"; fi
    "$MALLET" check "$2" > a.check 2>&1; sa=$?
    "$MALLET" check "$3" > b.check 2>&1
    expect_eq "$1: check status" "$sa" "$?"
    expect_eq "$1: check report" "$(sed "s#$2#T#g" a.check)" "$(sed "s#$3#T#g" b.check)"
}

"$MALLET" record -q -o mb.mtrace -- "$BUILD/bench/malloc_bench" 200000; expect_eq "malloc_bench status" 0 $?
"$MALLET" pack mb.mtrace -o mbp.mtrace > pack.out; expect_eq "pack status" 0 $?
expect_match "pack's line" "^mb.mtrace: [0-9]+ -> [0-9]+ bytes \([0-9.]+x\), [0-9]+ events packed into mbp.mtrace$" "$(cat pack.out)"
expect_eq "packed version" 4 "$(version mbp.mtrace)"
expect_eq "packed file's mode" 600 "$(stat -c %a mbp.mtrace)"
same_reading malloc_bench mb.mtrace mbp.mtrace
a=$(wc -c < mb.mtrace) b=$(wc -c < mbp.mtrace)
# random traffic: ~5.1 bytes an event as recorded, ~1.8 packed (docs/PERFORMANCE.md)
if [ $((b * 5)) -lt $((a * 2)) ]; then pass; else fail "malloc_bench: $a bytes, $b packed"; fi
# the recorder issue's target: no larger than heaptrack's file for the same program (as recorded:
# 2.7x larger; packed: ~4% smaller, docs/PERFORMANCE.md "Packed traces")
command -v heaptrack > /dev/null || fail "heaptrack is not installed (scripts/setup.sh installs it)"
heaptrack -o "$WORK/ht" "$BUILD/bench/malloc_bench" 200000 > /dev/null 2>&1
h=$(wc -c < ht.zst)
if [ "$b" -le "$h" ]; then pass; else fail "malloc_bench: $b bytes packed, heaptrack's $h"; fi

sqlite_inserts 1000 > ins.sql
"$MALLET" record -q -o sq.mtrace -- sqlite3 sq.db < ins.sql > /dev/null; expect_eq "sqlite3 status" 0 $?
cp sq.mtrace sq0.mtrace
"$MALLET" pack sq.mtrace > /dev/null; expect_eq "pack in place: status" 0 $?
expect_eq "packed in place: version" 4 "$(version sq.mtrace)"
same_reading sqlite3 sq0.mtrace sq.mtrace
a=$(wc -c < sq0.mtrace) b=$(wc -c < sq.mtrace)
if [ "$b" -lt "$a" ]; then pass; else fail "sqlite3: $a bytes, $b packed"; fi
# replay reads packed traces as it reads the originals: the same calls replayed
"$MALLET" replay --allocator glibc --no-syscalls --json r0.json sq0.mtrace > /dev/null 2>&1
expect_eq "replay status" 0 $?
"$MALLET" replay --allocator glibc --no-syscalls --json r1.json sq.mtrace > /dev/null 2>&1
expect_eq "replay of packed: status" 0 $?
expect_eq "replayed calls, original and packed" "$(json r0.json runs.0.ops)" "$(json r1.json runs.0.ops)"

# packed again, corrupt, missing: one line naming the file, status 1, nothing left behind
"$MALLET" pack sq.mtrace 2> err; expect_eq "pack of a packed trace: status" 1 $?
expect_eq "its message" "mallet: sq.mtrace: packed already" "$(cat err)"
cp mb.mtrace bad.mtrace
printf '\x55' | dd of=bad.mtrace bs=1 seek=5000 conv=notrunc 2> /dev/null
"$MALLET" pack bad.mtrace -o badp.mtrace 2> err; expect_eq "corrupt trace: status" 1 $?
expect_match "its message" "^mallet: bad.mtrace: corrupt chunk at offset [0-9]+: payload checksum mismatch$" "$(cat err)"
"$MALLET" pack nosuch.mtrace 2> err; expect_eq "missing trace: status" 1 $?
expect_eq "its message" "mallet: nosuch.mtrace: No such file or directory" "$(cat err)"
(ulimit -f 100; "$MALLET" pack mb.mtrace -o big.mtrace 2> err); expect_eq "over ulimit -f: status" 1 $?
expect_eq "its message" "mallet: big.mtrace: File too large" "$(cat err)"
expect_eq "files left behind" "" "$(ls | grep -e pack[A-Za-z0-9] -e badp -e big)"
"$MALLET" pack a.mtrace b.mtrace -o c.mtrace 2> /dev/null; expect_eq "-o with two traces: status" 2 $?
# ended by a signal while it writes: its temporary file goes with it, and the signal ends it
"$MALLET" record -q -o big.mtrace -- "$BUILD/bench/malloc_bench" 2000000
"$MALLET" pack big.mtrace -o bigp.mtrace > /dev/null &
sleep 0.3
kill -TERM $!
wait $!; expect_eq "pack ended by SIGTERM: status" 143 $?
expect_eq "files left behind" "" "$(ls | grep -e pack[A-Za-z0-9] -e bigp)"

# a trace cut by a crash: the packed one is cut at the same event, and says so; not in place
# (a trace without an end may still be written by its process)
head -c $(( $(wc -c < mb.mtrace) * 2 / 3 )) mb.mtrace > cut.mtrace
"$MALLET" pack cut.mtrace 2> err; expect_eq "cut trace in place: status" 1 $?
expect_match "its message" "^mallet: cut.mtrace: no end: its process may still be writing it" "$(cat err)"
"$MALLET" pack cut.mtrace -o cutp.mtrace > /dev/null; expect_eq "cut trace: status" 0 $?
same_reading "cut trace" cut.mtrace cutp.mtrace
expect_match "cut trace's warning" "cut" "$(cat b.err)"

# every process of a pipeline: the folder stands for its traces, each packed in its place
"$MALLET" record -q -o tree/ -- sh -c 'seq 1 2000 | sort -r | head -3 > /dev/null'
cp -r tree orig
"$MALLET" pack tree/ > pack.out; expect_eq "pack of a folder: status" 0 $?
n=$(ls tree/*.mtrace | wc -l)
if [ "$n" -ge 3 ]; then pass; else fail "pipeline: $n traces"; fi
expect_eq "a line per trace" "$n" "$(wc -l < pack.out)"
for t in tree/*.mtrace; do expect_eq "$t: version" 4 "$(version "$t")"; done
"$MALLET" stats --json tree/ 2> /dev/null | grep -v '"trace_bytes"\|"path"' > a.json
"$MALLET" stats --json orig/ 2> /dev/null | grep -v '"trace_bytes"\|"path"' > b.json
if cmp -s a.json b.json; then pass; else fail "pipeline: stats differ: $(diff a.json b.json | head -3)"; fi
"$MALLET" pack -o x.mtrace orig/ 2> /dev/null; expect_eq "-o with a folder of traces: status" 2 $?
finish
