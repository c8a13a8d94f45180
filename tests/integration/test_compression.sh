# The recorder compresses EVENTS chunks by default (zstd's fast level -1, MALLET_ZSTD_LEVEL; a
# process that never fills a buffer writes raw ones): a real program's trace (sqlite3's inserts:
# the same calls again and again) shrinks many times over and reads the same; a thread whose
# chunks do not shrink (malloc_bench: random slots and sizes) writes them raw, and tries again one
# chunk in 32 (harness/record/tbuf.c).
. "$(dirname "$0")/lib.sh"
command -v sqlite3 > /dev/null || { fail "sqlite3 is not installed (scripts/setup.sh installs it)"; finish; }

codecs() { # TRACE -> "RAW ZSTD BIG MRAW MZSTD": its EVENTS chunks by codec (docs/TRACE_FORMAT.md
    # 4.1), the raw ones of 8 KiB or more (smaller ones make no zstd context:
    # harness/record/zpool.c), and its MAPS chunks by codec
    python3 - "$1" << 'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
off, n, big, m = struct.unpack_from("<I", d, 12)[0], [0, 0], 0, [0, 0]
while off + 80 <= len(d):
    magic, typ, codec, _, _, _, disk = struct.unpack_from("<IBBHIII", d, off)
    if magic != 0x4B48434D: sys.exit("bad chunk at %d" % off)
    if typ == 3: n[codec] += 1
    if typ == 2: m[codec] += 1
    if typ == 3 and codec == 0 and disk >= 8192: big += 1
    off += 80 + disk
print(n[0], n[1], big, m[0], m[1])
PY
}

sqlite_inserts 3000 > ins.sql
"$MALLET" record -q -o z.mtrace -- sqlite3 z.db < ins.sql > /dev/null; expect_eq "sqlite3 status" 0 $?
MALLET_ZSTD_LEVEL=0 "$MALLET" record -q -o r.mtrace -- sqlite3 r.db < ins.sql > /dev/null
read -r raw zst big mraw mzst <<< "$(codecs z.mtrace)"
if [ "$zst" -ge 1 ] && [ "$big" -eq 0 ]; then pass
else fail "sqlite3: $raw raw ($big of 8 KiB or more), $zst zstd chunks"; fi
# its memory map (~6 KB, too small to make a context of its own) is written with its first
# events, by the context they made
expect_eq "sqlite3: MAPS chunks raw and zstd" "0 1" "$mraw $mzst"
# a process that writes no EVENTS chunk before its end still has its map, raw
"$MALLET" record -q -o t.mtrace -- true
expect_eq "true: EVENTS raw, zstd; MAPS raw, zstd" "0 0 0 1 0" "$(codecs t.mtrace)"
expect_eq "MALLET_ZSTD_LEVEL=0: no zstd chunk" 0 "$(codecs r.mtrace | cut -d' ' -f2)"
zb=$(wc -c < z.mtrace) rb=$(wc -c < r.mtrace)
if [ $((zb * 5)) -lt "$rb" ]; then pass; else fail "sqlite3: $zb bytes compressed, $rb raw"; fi
"$MALLET" stats --json z.mtrace > z.json; expect_eq "stats status" 0 $?
"$MALLET" stats --json r.mtrace > r.json
for k in events alloc_calls free_calls peak_live_bytes leaked_bytes leaked_blocks; do
    expect_eq "sqlite3 $k, compressed and raw" "$(json r.json $k)" "$(json z.json $k)"
done
"$MALLET" check z.mtrace > z.check; zc=$?
"$MALLET" check r.mtrace > r.check
expect_eq "check status, compressed and raw" "$?" "$zc"
expect_eq "check summary, compressed and raw" "$(tail -1 r.check)" "$(tail -1 z.check)"

# one thread, random blocks: one chunk tried, the next 31 raw, tried again. At level 1 zstd
# shrinks such a chunk a little (its literals are entropy-coded, at -1 not at all), so a chunk
# that was tried is a zstd one.
MALLET_ZSTD_LEVEL=1 "$MALLET" record -q -o mb.mtrace -- "$BUILD/bench/malloc_bench" 1000000 0 \
    > /dev/null 2>&1
read -r raw zst big _ <<< "$(codecs mb.mtrace)"
all=$((raw + zst))
if [ "$all" -ge 40 ] && [ "$zst" -ge 1 ] && [ "$zst" -le $(((all + 31) / 32)) ]; then pass
else fail "malloc_bench: $raw raw and $zst zstd chunks (at most one in 32 tried)"; fi
"$MALLET" stats --json mb.mtrace > mb.json
expect_eq "malloc_bench events (4,096 mallocs, then 10^6 steps)" 1004096 "$(json mb.json events)"
# the level, as the CLI and the trace's META say it (key 9 for 0..19, key 12 for a fast one)
meta_level() { # TRACE -> "KEY VALUE" of its codec level
    python3 - "$1" << 'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
off = struct.unpack_from("<I", d, 12)[0]
_, typ, _, _, _, _, disk = struct.unpack_from("<IBBHIII", d, off)
p, end = off + 80, off + 80 + disk
def varint(p):  # docs/TRACE_FORMAT.md 2: a prefix varint
    if d[p] == 0xFF: return int.from_bytes(d[p + 1:p + 9], "little"), p + 9
    n = 1
    while d[p] >> (n - 1) & 1: n += 1
    return int.from_bytes(d[p:p + n], "little") >> n, p + n
while typ == 1 and p < end:
    key = d[p]; n, p = varint(p + 1)
    if key in (9, 12): print(key, varint(p)[0])
    p += n
PY
}
"$MALLET" record -q --zstd-level -3 -o f.mtrace -- true; expect_eq "--zstd-level -3 status" 0 $?
expect_eq "--zstd-level -3 in META" "12 3" "$(meta_level f.mtrace)"
"$MALLET" record -q -o d.mtrace -- true
expect_eq "the default in META" "12 1" "$(meta_level d.mtrace)"
"$MALLET" record -q --zstd-level 0 -o r0.mtrace -- true
expect_eq "--zstd-level 0 in META" "9 0" "$(meta_level r0.mtrace)"
"$MALLET" record -q --zstd-level -8 -- true 2> err.txt; expect_eq "--zstd-level -8 status" 2 $?
expect_match "--zstd-level -8 message" "takes -7..19, not '-8'" "$(cat err.txt)"
finish
