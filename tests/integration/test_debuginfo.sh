# A stripped module's functions are named from its separate debug file, found by build ID under
# $MALLET_DEBUG_DIR (default /usr/lib/debug) as gdb and perf find it; a debug file of another
# build is not used. A library is built here with a static function that leaks, then stripped.
. "$(dirname "$0")/lib.sh"
command -v gcc > /dev/null && command -v objcopy > /dev/null ||
    { fail "gcc and objcopy are needed (build-essential: scripts/setup.sh)"; finish; }

cat > di.c << 'C'
#include <stdlib.h>
void *kept;
static __attribute__((noinline)) void *hidden_leak(size_t n) { return malloc(n); }
void make(void) { kept = hidden_leak(4321); }
C
printf 'void make(void);\nint main(void) { make(); return 0; }\n' > main.c
gcc -O1 -shared -fPIC -Wl,--build-id -o libdi.so di.c && gcc -o main main.c -L. -ldi -Wl,-rpath,"$WORK" ||
    { fail "the test library does not build"; finish; }
objcopy --only-keep-debug libdi.so libdi.debug && strip --strip-unneeded libdi.so
id=$(readelf -n libdi.so | sed -n 's/.*Build ID: \([0-9a-f]*\).*/\1/p')
expect_match "the library has a build ID" '^[0-9a-f]{40}$' "$id"
expect_eq "the library has no .symtab left" 0 "$(readelf -S libdi.so | grep -c '\.symtab')"
mkdir -p "dbg/.build-id/${id:0:2}" other
cp libdi.debug "dbg/.build-id/${id:0:2}/${id:2}.debug"

"$MALLET" record -q -o di.mtrace -- ./main; expect_eq "record status" 0 $?
MALLET_DEBUG_DIR="$WORK/other" "$MALLET" check di.mtrace > none.txt
expect_match "no debug file: module and offset" '^leak: 1 block, 4321 bytes allocated at libdi.so\+0x[0-9a-f]+$' \
    "$(grep 4321 none.txt)"
MALLET_DEBUG_DIR="$WORK/dbg" "$MALLET" check di.mtrace > named.txt
expect_match "debug file: the static function named" \
    '^leak: 1 block, 4321 bytes allocated at hidden_leak \(libdi.so\+0x[0-9a-f]+\)$' "$(grep 4321 named.txt)"
# a debug file of another build under this build ID: not used
sed 's/hidden_leak/other_leak/g' di.c > other.c
gcc -O1 -shared -fPIC -Wl,--build-id -o libother.so other.c && objcopy --only-keep-debug libother.so other.debug
mkdir -p "other/.build-id/${id:0:2}" && cp other.debug "other/.build-id/${id:0:2}/${id:2}.debug"
expect_eq "another build's debug file differs" 1 "$(cmp -s other.debug libdi.debug; echo $?)"
MALLET_DEBUG_DIR="$WORK/other" "$MALLET" check di.mtrace > stale.txt
expect_eq "another build's debug file: not used" "$(cat none.txt)" "$(cat stale.txt)"
finish
