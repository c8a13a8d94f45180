# Bad input gets one clear error line naming the file and a non-zero exit; never a crash (stats,
# check, dump and replay alike).
. "$(dirname "$0")/lib.sh"

"$MALLET" record -q -o good.mtrace -- "$PROGS/ender" exit 1000 > /dev/null

check_bad() { # NAME FILE REGEX
    for cmd in stats check dump "replay --allocator glibc --no-syscalls"; do
        "$MALLET" $cmd "$2" > out.txt 2> err.txt; st=$?
        if [ $st -ne 0 ] && [ $st -lt 128 ]; then pass; else fail "$1: mallet $cmd exit $st"; fi
        expect_eq "$1: mallet $cmd error lines" 1 "$(wc -l < err.txt)"
        expect_match "$1: mallet $cmd message" "^mallet: .*$2.*$3" "$(cat err.txt)"
    done
}

: > empty.mtrace
check_bad empty empty.mtrace 'empty'
head -c 4000 /dev/urandom > random.mtrace
check_bad random random.mtrace 'not a mallet trace'
check_bad missing nothere.mtrace 'No such file'
# wrong version: byte 8 of the file header is the version
cp good.mtrace v5.mtrace
printf '\x05' | dd of=v5.mtrace bs=1 seek=8 conv=notrunc 2>/dev/null
check_bad version v5.mtrace 'version 5'
# a flipped byte in the middle of a chunk payload
cp good.mtrace flip.mtrace
size=$(stat -c %s flip.mtrace)
off=$((size / 2))
b=$(od -An -tu1 -j $off -N1 flip.mtrace | tr -d ' ')
printf "\\x$(printf %02x $(((b + 1) % 256)))" | dd of=flip.mtrace bs=1 seek=$off conv=notrunc 2>/dev/null
check_bad corrupt flip.mtrace 'corrupt|checksum'
# only the file header
head -c 16 good.mtrace > header.mtrace
check_bad header-only header.mtrace 'nothing|no complete chunk'
# a file given twice (here also within its folder) would count its process twice
mkdir twice && cp good.mtrace twice/
mkdir nothing
for cmd in stats check dump; do
    "$MALLET" $cmd twice/good.mtrace twice > /dev/null 2> err.txt
    expect_eq "twice: mallet $cmd status" 1 $?
    expect_eq "twice: mallet $cmd message" "mallet: twice/good.mtrace: given twice" "$(cat err.txt)"
    "$MALLET" $cmd nothing > /dev/null 2> err.txt; expect_eq "empty folder: mallet $cmd status" 1 $?
    expect_eq "empty folder: mallet $cmd message" "mallet: nothing: a folder with no .mtrace file" "$(cat err.txt)"
done
"$MALLET" replay --allocator glibc --no-syscalls twice > /dev/null 2> err.txt
expect_eq "replay of a folder: status" 1 $?
expect_match "replay of a folder: message" '^mallet: twice: not a regular file' "$(cat err.txt)"

# usage errors exit 2
"$MALLET" stats 2> /dev/null; expect_eq "stats without trace" 2 $?
"$MALLET" frobnicate 2> /dev/null; expect_eq "unknown command" 2 $?
"$MALLET" record 2> /dev/null; expect_eq "record without command" 2 $?
"$MALLET" stats --bogus x 2> /dev/null; expect_eq "unknown option" 2 $?
"$MALLET" --version > /dev/null; expect_eq "--version" 0 $?
for c in record stats check dump; do
    "$MALLET" $c --help > help.txt; expect_eq "$c --help status" 0 $?
    expect_match "$c --help text" "usage: mallet $c" "$(cat help.txt)"
done
finish
