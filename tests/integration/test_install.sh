# `cmake --install` gives bin/mallet and the recorder under lib/; the installed mallet finds its
# recorder without help.
. "$(dirname "$0")/lib.sh"
: "${BUILD:?set by ctest}"
cmake --install "$BUILD" --prefix "$WORK/prefix" > install.log 2>&1; expect_eq "install status" 0 $?
[ -x "$WORK/prefix/bin/mallet" ] && pass || fail "no bin/mallet"
[ -f "$WORK/prefix/lib/mallet/libmallet_record.so" ] && pass || fail "no lib/mallet/libmallet_record.so"
env -u MALLET_RECORD_LIB "$WORK/prefix/bin/mallet" record -q -o inst.mtrace -- "$PROGS/ender" exit 100 > /dev/null
expect_eq "installed record status" 5 $?
env -u MALLET_RECORD_LIB "$WORK/prefix/bin/mallet" stats --json inst.mtrace > inst.json
expect_eq "installed stats status" 0 $?
m=$(json inst.json by_kind.malloc)
if [ "$m" -ge 100 ]; then pass; else fail "installed: $m mallocs"; fi
# the installed mallet finds the descriptors and the in-tree allocators
env -u MALLET_RECORD_LIB "$WORK/prefix/bin/mallet" allocators --json > alloc.json
expect_eq "installed allocators status" 0 $?
expect_eq "installed bump library" "$WORK/prefix/lib/mallet/libmallet_bump.so" "$(python3 -c 'import json,sys; print(next(a for a in json.load(open(sys.argv[1]))["allocators"] if a["name"] == "bump")["library"])' alloc.json)"
expect_match "installed descriptors" "^$WORK/prefix/share/mallet/allocators/" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["allocators"][0]["descriptor"])' alloc.json)"
# ... and the replay worker
"$MALLET" record -q -o w.mtrace -- "$PROGS/ender" exit 100 > /dev/null
env -u MALLET_RECORD_LIB "$WORK/prefix/bin/mallet" replay --allocator glibc --allocator bump w.mtrace > w.txt
expect_eq "installed replay status" 0 $?
expect_eq "installed replay rows" 3 "$(wc -l < w.txt)"
# the build tree's mallet finds the library beside it, also without MALLET_RECORD_LIB
env -u MALLET_RECORD_LIB "$MALLET" record -q -o bt.mtrace -- "$PROGS/ender" exit 100 > /dev/null
expect_eq "build-tree record status" 5 $?
finish
