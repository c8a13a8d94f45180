# mallet stats equals what a program did, exactly: every_entry calls every entry point from
# five threads, with cross-thread frees, and writes its own counts. libc allocates a little on
# its own (thread descriptors, stdio), so the program's share is counted by callsite through
# `mallet dump --symbols`, and the whole is recomputed independently from the dump.
. "$(dirname "$0")/lib.sh"

t0=${EPOCHREALTIME/./}
"$MALLET" record -q -o ee.mtrace -- "$PROGS/every_entry" truth.json; expect_eq "record status" 0 $?
t1=${EPOCHREALTIME/./}
"$MALLET" stats --json ee.mtrace > stats.json; expect_eq "stats status" 0 $?
expect_eq "trace_bytes: the file's size" "$(stat -c %s ee.mtrace)" "$(json stats.json trace_bytes)"
expect_eq "per_process trace_bytes" "$(stat -c %s ee.mtrace)" "$(json stats.json per_process.0.trace_bytes)"
"$MALLET" dump --symbols --no-time ee.mtrace > dump.txt; expect_eq "dump status" 0 $?

python3 - truth.json stats.json dump.txt > oracle.txt <<'PY'
import json, re, sys
truth = json.load(open(sys.argv[1]))
stats = json.load(open(sys.argv[2]))
line_re = re.compile(r'^pid (\d+) tid (\d+) (\w+)\((.*?)\)(?: = (0x[0-9a-f]+|\(nil\)|0|-?\d+))?.*\[(.*)\]$')
own, total = {}, {}
live, owner, own_blocks = {}, {}, set()
cur = peak = own_live = own_peak = 0
own_cross = 0
for line in open(sys.argv[3]):
    line = line.rstrip('\n')
    m = line_re.match(line)
    if not m:
        if ' rss ' in line or line.endswith(' thread ended'): continue
        print('unparsed', line); continue
    tid, op, args, res, site = m.group(2), m.group(3), m.group(4), m.group(5), m.group(6)
    mine = '(every_entry+' in site
    total[op] = total.get(op, 0) + 1
    if mine: own[op] = own.get(op, 0) + 1
    a = [x.strip() for x in args.split(',')] if args else []
    def die(p):
        global cur, own_live, own_cross
        if p in live:
            cur -= live.pop(p)
            if p in own_blocks:
                own_live -= own_sizes.pop(p)
                own_blocks.discard(p)
                if owner[p] != tid: own_cross += 1
    def born(p, n):
        global cur, own_live
        live[p] = n; owner[p] = tid; cur += n
        if mine:
            own_blocks.add(p); own_sizes[p] = n; own_live += n
    if 'own_sizes' not in globals(): own_sizes = {}
    r = int(res, 16) if res and res.startswith('0x') else 0
    if op == 'free':
        die(int(a[0], 16) if a[0].startswith('0x') else 0)
    elif op in ('realloc', 'reallocarray'):
        old = int(a[0], 16) if a[0].startswith('0x') else 0
        n = int(a[1]) if op == 'realloc' else int(a[1]) * int(a[2])
        if old and (r or n == 0): die(old)
        if r: born(r, n)
    elif r:
        n = {'calloc': lambda: int(a[0]) * int(a[1]), 'posix_memalign': lambda: int(a[1]),
             'aligned_alloc': lambda: int(a[1]), 'memalign': lambda: int(a[1])}.get(op, lambda: int(a[0]))()
        born(r, n)
    if cur > peak: peak = cur
    if own_live > own_peak: own_peak = own_live
print('own', json.dumps(own, sort_keys=True))
print('total', json.dumps(total, sort_keys=True))
print('peak', peak)
print('own_peak', own_peak)
print('own_cross', own_cross)
print('leaked', cur, len(live))
PY
cat oracle.txt | grep unparsed && fail "dump lines the oracle could not parse"
own=$(grep '^own ' oracle.txt | cut -d' ' -f2-)
for k in malloc calloc realloc reallocarray free posix_memalign aligned_alloc memalign valloc pvalloc; do
    want=$(json truth.json "$k")
    got=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], 0))' "$own" "$k")
    expect_eq "program's own $k calls (by callsite)" "$want" "$got"
    all=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], 0))' "$(grep '^total ' oracle.txt | cut -d' ' -f2-)" "$k")
    expect_eq "stats by_kind.$k equals the dump's" "$all" "$(json stats.json by_kind.$k)"
done
expect_eq "threads" "$(json truth.json threads)" "$(json stats.json threads)"
expect_eq "processes" 1 "$(json stats.json processes)"
expect_eq "program's own peak (independent)" "$(json truth.json peak_own_bytes)" "$(grep '^own_peak ' oracle.txt | cut -d' ' -f2)"
expect_eq "peak live bytes (stats vs independent)" "$(grep '^peak ' oracle.txt | cut -d' ' -f2)" "$(json stats.json peak_live_bytes)"
expect_eq "program's cross-thread frees" "$(json truth.json cross_thread_frees)" "$(grep '^own_cross ' oracle.txt | cut -d' ' -f2)"
leaked=$(grep '^leaked ' oracle.txt)
expect_eq "leaked bytes" "$(echo "$leaked" | cut -d' ' -f2)" "$(json stats.json leaked_bytes)"
expect_eq "leaked blocks" "$(echo "$leaked" | cut -d' ' -f3)" "$(json stats.json leaked_blocks)"
events=$(json stats.json events)
sum=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(d["by_kind"].values()))' stats.json)
expect_eq "events = sum by kind" "$sum" "$events"
# allocation sites, named: the worker's seven allocating calls each ran 4 x 200 times, and main's
# 64 large blocks lead by bytes
sites=$(python3 -c 'import json,sys,re
d=json.load(open(sys.argv[1]))
w=[t for t in d["top_sites"] if re.match(r"worker \(every_entry\+0x[0-9a-f]+\)$", t["site"]) and t["calls"] == 800]
m=[t for t in d["top_sites"] if t["site"].startswith("main (every_entry+") and t["calls"] == 64]
print(len(w), len(m), max(d["top_sites"], key=lambda t: t["bytes"])["site"].split(" ")[0])' stats.json)
expect_eq "top sites: worker x7, main x1, most bytes from main" "7 1 main" "$sites"
# times are converted with the recorded clock rate: the trace spans less than the run
d=$(json stats.json duration_ns)
if [ "$d" -gt 0 ] && [ "$d" -le $(( (t1 - t0) * 1000 )) ]; then pass; else fail "duration $d ns outside (0, $(( (t1 - t0) * 1000 ))]"; fi
# RSS is sampled at the first event and then every 10 ms
rss=$(json stats.json rss_samples)
if [ "$rss" -ge 1 ] && [ "$(json stats.json peak_rss_bytes)" -gt 0 ]; then pass; else fail "no RSS samples ($rss)"; fi
expect_eq "alloc_calls + free_calls = events" "$events" $(( $(json stats.json alloc_calls) + $(json stats.json free_calls) ))

# docs/STATS_JSON.md lists exactly the keys written, at the top level and per process
keys=$(python3 - stats.json "$SRC/docs/STATS_JSON.md" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
doc = open(sys.argv[2]).read()
top, per = doc.split('## `per_process`')
def documented(text):
    return {k for row in re.findall(r'^\| ([^|]+) \|', text, re.M) for k in re.findall(r'`(\w+)`', row)}
print(sorted(documented(top)) == sorted(d), sorted(documented(per)) == sorted(d['per_process'][0]))
PY
)
expect_eq "docs/STATS_JSON.md: the keys written, no more" "True True" "$keys"

# The same program recorded with zstd-compressed chunks gives the same counts
"$MALLET" record -q --zstd-level 3 -o z.mtrace -- "$PROGS/every_entry" truth2.json; expect_eq "zstd record status" 0 $?
"$MALLET" stats --json z.mtrace > z.json; expect_eq "zstd stats status" 0 $?
for k in malloc calloc realloc reallocarray free posix_memalign aligned_alloc memalign valloc pvalloc; do
    expect_eq "zstd: by_kind.$k" "$(json stats.json by_kind.$k)" "$(json z.json by_kind.$k)"
done
expect_eq "zstd: peak" "$(json stats.json peak_live_bytes)" "$(json z.json peak_live_bytes)"
"$MALLET" record -q --zstd-level 0 -o raw.mtrace -- "$PROGS/every_entry" truth3.json
if [ "$(stat -c %s z.mtrace)" -lt "$(stat -c %s raw.mtrace)" ]; then pass; else fail "zstd trace is not smaller than the raw one"; fi
finish
