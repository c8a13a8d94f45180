# Traces written through the trace writer with known answers (tests/programs/gen_trace.c) replay
# with exactly those answers on every available backend: op counts, peak live bytes; the
# allocator's peak RSS is at least the peak live bytes (every page of every block is written);
# bump never gives memory back (no munmap); a producer/consumer trace never deadlocks.
. "$(dirname "$0")/lib.sh"

avail=$("$MALLET" allocators --json | python3 -c 'import json,sys; print(sum(a["available"] for a in json.load(sys.stdin)["allocators"]))')
for t in prodcons big; do
    "$PROGS/gen_trace" $t $t.mtrace > $t.known; expect_eq "$t: generated" 0 $?
    "$MALLET" replay --repeat 2 --json $t.json $t.mtrace > $t.txt; expect_eq "$t: replay status" 0 $?
    python3 - $t.json $t.known "$avail" > $t.check <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["runs"]
known = json.load(open(sys.argv[2]))
print("runs", len(runs) == 2 * int(sys.argv[3]) and all("error" not in r for r in runs))
print("ops", sorted({r["ops"] for r in runs}) == [known["ops"]])
print("failed", all(r["failed_allocs"] == 0 for r in runs))
print("peak_live", all(r["peak_live_bytes"] == known["peak_live_bytes"] for r in runs))
print("bump_munmap", [r["syscalls"]["munmap"] for r in runs if r["allocator"] == "bump"] == [0, 0])
PY
    for k in runs ops failed peak_live bump_munmap; do
        expect_eq "$t: $k" True "$(grep "^$k " $t.check | cut -d' ' -f2-)"
    done
done
# the big trace holds 49 MiB at once: far above what the kernel's RSS counters can lag behind
python3 - big.json > big.rss <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["runs"]:
    if r["peak_rss_bytes"] < r["peak_live_bytes"]:
        print(r["allocator"], r["peak_rss_bytes"], "<", r["peak_live_bytes"])
PY
expect_eq "big: peak RSS >= peak live on every backend" "" "$(cat big.rss)"
# the trace's own RSS samples come with the results, to set beside the replays' timelines
expect_eq "big: the recorded RSS samples" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["recorded_rss"])' big.known)" \
    "$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["context"]["traces"][0]["recorded_rss"]["samples"]
print([b for t, b in s] if all(a[0] <= b[0] for a, b in zip(s, s[1:])) else "times go back")' big.json)"
# an allocator that refuses large requests: its failures are counted and said, the replay goes on
"$MALLET" replay --allocator "$PROGS/libstingy_alloc.so" --no-syscalls --json stingy.json big.mtrace > stingy.txt
expect_eq "stingy: replay status" 0 $?
# the big trace's mallocs above 100 000 bytes: every 16th block (256 KiB) that is not a calloc
expect_eq "stingy: failed allocations" \
    "$(python3 -c 'print(sum(1 for i in range(1536) if i % 16 == 15 and i % 5 != 0))')" "$(json stingy.json runs.0.failed_allocs)"
expect_match "stingy: said in the table" 'allocations failed' "$(cat stingy.txt)"
# and the stats of the generated traces agree with the generator (two independent counts)
"$MALLET" stats --json prodcons.mtrace > pc-stats.json
for k in alloc_calls free_calls cross_thread_frees peak_live_bytes threads; do
    expect_eq "prodcons: stats $k" "$(json prodcons.known $k)" "$(json pc-stats.json $k)"
done
# the benchmarks' random trace too (5 threads, a quarter of the frees by another thread)
"$PROGS/gen_trace" random rnd.mtrace 200000 5 25 > rnd.known; expect_eq "random: generated" 0 $?
"$MALLET" stats --json rnd.mtrace > rnd-stats.json
for k in alloc_calls free_calls cross_thread_frees peak_live_bytes threads; do
    expect_eq "random: stats $k" "$(json rnd.known $k)" "$(json rnd-stats.json $k)"
done
expect_eq "random: live at the end" "$(json rnd.known live_at_end)" "$(json rnd-stats.json leaked_bytes)"
finish
