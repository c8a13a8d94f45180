# mallet replay runs real traces on every available backend, each run in its own process: the
# ops it replays are exactly the trace's calls (bad ones skipped and counted), threads with
# cross-thread frees never deadlock, and bad input gets one clear line.
. "$(dirname "$0")/lib.sh"

"$MALLET" record -q -o ee.mtrace -- "$PROGS/every_entry" truth.json
"$MALLET" stats --json ee.mtrace > ee.json
events=$(json ee.json events)
avail=$("$MALLET" allocators --json | python3 -c 'import json,sys; print(sum(a["available"] for a in json.load(sys.stdin)["allocators"]))')
"$MALLET" replay --repeat 2 --json ee-runs.json ee.mtrace > ee.txt; expect_eq "every_entry: replay status" 0 $?
python3 - ee-runs.json "$events" "$avail" "$(json ee.json peak_live_bytes)" > check.txt <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
runs = d["runs"]
events, avail = int(sys.argv[2]), int(sys.argv[3])
print("runs", len(runs) == 2 * avail)
print("all ok", all("error" not in r for r in runs))
print("ops", all(r["ops"] == events for r in runs))
print("failed", all(r["failed_allocs"] == 0 for r in runs))
print("timed", all(r["wall_ns"] > 0 and r["ops_per_sec"] > 0 for r in runs))
lat = [r["latency_ns"] for r in runs]
# one call in `latency_sample_every` timed, on average (a small trace: every 8th)
print("latency", all(r["latency_sample_every"] == 8 and events // 16 <= l["samples"] <= events // 4 and l["p50"] <= l["p90"] <= l["p99"] <= l["p999"] <= l["max"] and l["max"] > 0 for r, l in zip(runs, lat)))
print("peak", all(r["peak_live_bytes"] == int(sys.argv[4]) and r["fragmentation"] > 0 for r in runs))
print("bykind", all(sum(k["samples"] for k in l["by_kind"].values()) == l["samples"] for l in lat))
# memory: the allocator's share is what the process grew by from its baseline; the timeline
# starts at the baseline and its times go forward
print("rss", all(r["process_peak_rss_bytes"] == r["baseline_rss_bytes"] + r["peak_rss_bytes"] and r["baseline_rss_bytes"] > 0 for r in runs))
tl = [r["rss_timeline"] for r in runs]
print("timeline", all(len(t["samples"]) >= 2 and t["interval_ns"] >= 1000000 and t["samples"][0] == [0, r["baseline_rss_bytes"]]
      and all(a[0] < b[0] for a, b in zip(t["samples"], t["samples"][1:])) for t, r in zip(tl, runs)))
# syscalls: one counting run per backend, its counts on each of its runs
sc = ["mmap", "munmap", "mremap", "brk", "madvise", "mprotect"]
print("syscalls", d["schema_version"] == 1 and all(set(r["syscalls"]) == set(sc + ["total"]) and r["syscalls"]["total"] == sum(r["syscalls"][k] for k in sc) for r in runs))
print("same counts", all(a["syscalls"] == b["syscalls"] for a, b in zip(runs[0::2], runs[1::2])))
PY
# docs/RESULTS_SCHEMA.md lists exactly the keys written: the file's, the context's and a run's
# (with `error`, a failed run's); a trace's keys appear in its row
python3 - ee-runs.json "$SRC/docs/RESULTS_SCHEMA.md" >> check.txt <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
doc = open(sys.argv[2]).read()
def table(title): # the backticked keys of the first column, up to the next heading
    part = re.split(r"\n#", doc.split(title + "\n", 1)[1], 1)[0]
    rows = re.findall(r"^\| (.+?) \| (.*) \|$", part, re.M)
    return {k for first, _ in rows for k in re.findall(r"`(\w+)`", first)}, dict(rows)
top, _ = table("### The file")
ctx, ctx_rows = table("### `context`")
run, _ = table("### Each run")
trace_row = ctx_rows["`traces`"]
print("doc keys", top == set(d) and ctx == set(d["context"]) and run == set(d["runs"][0]) | {"error"}
      and all("`%s`" % k in trace_row for k in d["context"]["traces"][0]))
PY
for k in runs "all ok" ops failed timed latency bykind peak rss timeline syscalls "same counts" "doc keys"; do
    expect_eq "every_entry: $k" True "$(grep "^$k " check.txt | cut -d' ' -f2- | awk '{print $NF}')"
done
expect_eq "every_entry: a table row per backend" $((avail + 1)) "$(wc -l < ee.txt)"
# the context: host, kernel, every backend's version, the trace's size and digest (stable)
ctx=$(python3 -c 'import json,sys,os
d=json.load(open(sys.argv[1])); c=d["context"]
print(c["kernel"] == os.uname().release, c["cores"] == os.cpu_count(), len(c["allocators"]) == int(sys.argv[2]),
      c["traces"][0]["bytes"] == os.path.getsize("ee.mtrace"), len(c["traces"][0]["digest"]) == 16)' ee-runs.json "$avail")
expect_eq "every_entry: context" "True True True True True" "$ctx"
# the recorded run's own RSS samples (the recorder takes one at start), as `mallet stats` counts them
expect_eq "every_entry: recorded RSS samples" "$(grep -m1 '^rss ' <("$MALLET" stats ee.mtrace) | sed 's/.*, \([0-9]*\) samples.*/\1/')" \
    "$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["context"]["traces"][0]["recorded_rss"]["samples"]; print(len(s) if all(b > 0 for t, b in s) else "zero bytes")' ee-runs.json)"
"$MALLET" replay --allocator glibc --json again0.json ee.mtrace > /dev/null
expect_eq "trace digest is stable" "$(json ee-runs.json context.traces.0.digest)" "$(json again0.json context.traces.0.digest)"

# the replay-ready form is cached beside the trace, reused, and made again when the trace changes
[ -f ee.mtrace.replay ] && pass || fail "no ee.mtrace.replay after a replay"
before=$(stat -c %y ee.mtrace.replay)
sleep 0.05
"$MALLET" replay --allocator glibc ee.mtrace > /dev/null; expect_eq "cached: status" 0 $?
expect_eq "cache reused" "$before" "$(stat -c %y ee.mtrace.replay)"
touch -d '+1 minute' ee.mtrace
"$MALLET" replay --allocator glibc --json again.json ee.mtrace > /dev/null; expect_eq "changed trace: status" 0 $?
if [ "$before" != "$(stat -c %y ee.mtrace.replay)" ]; then pass; else fail "cache not remade for a changed trace"; fi
expect_eq "remade cache: same ops" "$events" "$(json again.json runs.0.ops)"
# a cache of another version (an older mallet's) is made again, never read
version=$(od -An -tu4 -j8 -N4 ee.mtrace.replay | tr -d ' ')
printf '\007\000\000\000' | dd of=ee.mtrace.replay bs=1 seek=8 conv=notrunc status=none
"$MALLET" replay --allocator glibc --json old.json ee.mtrace > /dev/null
expect_eq "old cache: status" 0 $?
expect_eq "old cache: made again" "$version" "$(od -An -tu4 -j8 -N4 ee.mtrace.replay | tr -d ' ')"
expect_eq "old cache: same ops" "$events" "$(json old.json runs.0.ops)"

# 200 threads passing blocks around: the waits on other threads' ops never deadlock
"$MALLET" record -q -o churn.mtrace -- "$PROGS/churn" > /dev/null
"$MALLET" stats --json churn.mtrace > churn.json
"$MALLET" replay --allocator glibc --allocator pool --allocator bump --json churn-runs.json churn.mtrace > /dev/null
expect_eq "churn: replay status" 0 $?
expect_eq "churn: ops on each backend" "$(json churn.json events) $(json churn.json events) $(json churn.json events)" \
    "$(python3 -c 'import json,sys; print(" ".join(str(r["ops"]) for r in json.load(open(sys.argv[1]))["runs"]))' churn-runs.json)"

# 2000 threads one after another, each freeing the block of the one before: replayed one or two
# at a time, as the program ran them (before, all 2000 were started at once, spinning, and the
# replay took minutes), on every backend, every call made; the timeout only catches a hang
"$MALLET" record -q -o relay.mtrace -- "$PROGS/relay" 2000 > relay.out
"$MALLET" stats --json relay.mtrace > relay.json
expect_eq "relay: threads" 2001 "$(json relay.json threads)"
timeout 300 "$MALLET" replay --no-syscalls --json relay-runs.json relay.mtrace > /dev/null
expect_eq "relay: replay status" 0 $?
expect_eq "relay: threads, and at once (the main thread and one task)" "2001 2" \
    "$(json relay-runs.json context.traces.0.threads) $(json relay-runs.json context.traces.0.threads_at_once)"
expect_eq "relay: ops on every backend" "$(json relay.json events)" \
    "$(python3 -c 'import json,sys; print(" ".join(sorted(set(str(r["ops"]) for r in json.load(open(sys.argv[1]))["runs"]))))' relay-runs.json)"

# threads that outlive their last allocation call: the recorder marks each thread's end, so the
# three idle threads are alive while the three others run one after another (five at once, where
# the calls alone say two), and the last thread, still running at exit, lives to the end; every
# call replayed on every backend
"$MALLET" record -q -o linger.mtrace -- "$PROGS/linger" 3 4 > linger.out
"$MALLET" stats --json linger.mtrace > linger.json
expect_eq "linger: threads, and ended before the process" "8 6" \
    "$(json linger.json threads) $(json linger.json per_process.0.threads_exited)"
# dump prints each end among the events, after the thread's last call, with the thread's id
"$MALLET" dump --no-time linger.mtrace > linger.dump
expect_eq "linger: ends in the dump, each after its thread's calls" "6 6" \
    "$(grep -c ' thread ended$' linger.dump) $(awk '{id = $4} / thread ended$/ {n += !seen_end[id]++ && (id in last) && last[id] < NR} {if ($0 !~ / thread ended$/) last[id] = NR} END {print n}' linger.dump)"
timeout 120 "$MALLET" replay --no-syscalls --json linger-runs.json linger.mtrace > /dev/null
expect_eq "linger: replay status" 0 $?
expect_eq "linger: threads at once (main, three idle, one passing)" 5 \
    "$(json linger-runs.json context.traces.0.threads_at_once)"
# the resume gap is the replay file's: another one makes it again, and the results say which
"$MALLET" replay --no-syscalls --allocator glibc --gap 0 --json linger-nogap.json linger.mtrace > /dev/null
"$MALLET" replay --no-syscalls --allocator glibc --gap 2.5 --json linger-gap.json linger.mtrace > /dev/null
expect_eq "linger: resume gaps (default, none, 2.5 ms)" "1000000 0 2500000" \
    "$(json linger-runs.json context.traces.0.resume_gap_ns) $(json linger-nogap.json context.traces.0.resume_gap_ns) $(json linger-gap.json context.traces.0.resume_gap_ns)"
"$MALLET" replay --gap -1 linger.mtrace > /dev/null 2> gap.err
expect_eq "bad --gap: usage error" 2 $?
expect_eq "linger: ops on every backend" "$(json linger.json events)" \
    "$(python3 -c 'import json,sys; print(" ".join(sorted(set(str(r["ops"]) for r in json.load(open(sys.argv[1]))["runs"]))))' linger-runs.json)"

# bump never reuses memory: it takes far more page faults and memory than glibc on the same trace
faults=$(python3 -c 'import json,sys
r={x["allocator"]: x for x in json.load(open(sys.argv[1]))["runs"]}
print(r["bump"]["page_faults"]["minor"] > 4 * r["glibc"]["page_faults"]["minor"], r["bump"]["peak_rss_bytes"] > r["glibc"]["peak_rss_bytes"])' churn-runs.json)
expect_eq "churn: bump faults and grows more than glibc" "True True" "$faults"

# threads that cannot be started (stacks smaller than pthreads accepts): one line, exit 1, no
# hang (the started ones replay nothing: they could wait for a thread that never runs). churn has
# 201 threads in waves of 8 (and the main thread): 9 or so at once.
MALLET_REPLAY_STACK_KB=4 timeout 120 "$MALLET" replay --allocator glibc --no-syscalls churn.mtrace \
    > nothreads.txt 2> nothreads.err
expect_eq "threads not started: status" 1 $?
expect_match "threads not started: said" \
    '^mallet-worker: cannot start 201 replay threads \([0-9]+ at once, stacks of 4 KiB\): Invalid argument$' \
    "$(cat nothreads.err)"
# stacks the address space cannot hold: twice the 600 MB allowed, over as many stacks as run at
# once (the recording's timing sets that count). Sanitized builds of the CLI need terabytes of
# address space, so only plain builds check this.
if ! ldd "$MALLET" | grep -Eq 'lib(a|t)san'; then
    stack_kb=$((1200000 / $(json churn-runs.json context.traces.0.threads_at_once) / 4 * 4))
    (ulimit -v 600000; MALLET_REPLAY_STACK_KB=$stack_kb timeout 120 "$MALLET" replay --allocator glibc \
        --no-syscalls churn.mtrace > nothreads.txt 2> nothreads.err)
    expect_eq "stacks not mapped: status" 1 $?
    expect_match "stacks not mapped: said" "out of address space for [0-9]+ thread stacks of $stack_kb KiB\$" \
        "$(cat nothreads.err)"
fi

# a double free is skipped and counted, never executed
(ulimit -c 0; "$MALLET" record -q -o df.mtrace -- "$PROGS/leaky" --double-free 2> /dev/null)
"$MALLET" stats --json df.mtrace > df.json
"$MALLET" replay --allocator glibc --json df-runs.json df.mtrace > /dev/null 2> df.err
expect_eq "double free: replay status" 0 $?
expect_match "double free: said" '1 frees or reallocs of pointers not live' "$(cat df.err)"
expect_eq "double free: ops" $(( $(json df.json events) - 1 )) "$(json df-runs.json runs.0.ops)"

# a library given by path
"$MALLET" replay --allocator "$MALLET_POOL" ee.mtrace > path.txt; expect_eq "library by path" 0 $?
expect_match "library by path: row" '^libmallet_pool.so +1 +[0-9]+' "$(sed -n 2p path.txt)"

# a backend that crashes is reported as such, and the others still run
"$MALLET" replay --allocator "$PROGS/libcrashy_alloc.so" --allocator glibc churn.mtrace > crash.txt 2> /dev/null
expect_eq "crashing backend: status" 1 $?
expect_match "crashing backend: reported" '^libcrashy_alloc.so +1 +crashed \(Segmentation fault\)' "$(grep crashy crash.txt)"
expect_match "crashing backend: glibc still ran" '^glibc +1 +[0-9]+' "$(grep '^glibc' crash.txt)"

# bad input
"$MALLET" replay --allocator nosuch ee.mtrace 2> err.txt; st=$?
if [ $st -ne 0 ]; then pass; else fail "unknown allocator: exit 0"; fi
expect_eq "unknown allocator: one line" 1 "$(wc -l < err.txt)"
expect_match "unknown allocator: message" "unknown allocator 'nosuch'" "$(cat err.txt)"
"$MALLET" replay --allocator ./nothere.so ee.mtrace 2> err.txt; expect_eq "missing library: status" 1 $?
expect_match "missing library: message" 'nothere.so' "$(cat err.txt)"
head -c 100 /dev/urandom > junk.mtrace
"$MALLET" replay --allocator glibc junk.mtrace 2> err.txt; expect_eq "corrupt trace: status" 1 $?
expect_match "corrupt trace: message" 'junk.mtrace: not a mallet trace' "$(cat err.txt)"
"$MALLET" replay 2> /dev/null; expect_eq "no trace: usage" 2 $?
finish
