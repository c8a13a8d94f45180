# The syscall counts of a replay agree with strace's. mallet counts in a counting run of its own
# (seccomp user notifications; docs/RESULTS_SCHEMA.md), which marks its counting window with two
# failing writes; strace -f of the same `mallet replay` sees every syscall, and the ones between
# the marks must be exactly what the JSON reports, kind by kind, on every available backend.
. "$(dirname "$0")/lib.sh"
command -v strace > /dev/null || { echo "strace is not installed (scripts/setup.sh installs it)" >&2; exit 1; }

"$PROGS/gen_trace" prodcons pc.mtrace > /dev/null
"$PROGS/gen_trace" big big.mtrace > /dev/null
"$MALLET" replay --allocator glibc pc.mtrace big.mtrace > /dev/null # prepare both once
for a in $("$MALLET" allocators --json | python3 -c 'import json,sys; print(" ".join(a["name"] for a in json.load(sys.stdin)["allocators"] if a["available"]))'); do
    for t in pc big; do
        # (LeakSanitizer cannot run under ptrace: off for the sanitized CLI, the worker has none)
        ASAN_OPTIONS=detect_leaks=0 strace -f -qq -o st.log "$MALLET" replay --allocator "$a" --json "$a-$t.json" $t.mtrace > /dev/null
        expect_eq "$a $t: replay under strace" 0 $?
        got=$(python3 - st.log "$a-$t.json" <<'PY'
import collections, json, re, sys
kinds = ["mmap", "munmap", "mremap", "brk", "madvise", "mprotect"]
seen, inside, windows = collections.Counter(), False, 0
for line in open(sys.argv[1]):
    if 'write(-1, "mallet: counting starts"' in line:
        inside, windows = True, windows + 1
    elif 'write(-1, "mallet: counting ends"' in line:
        inside = False
    else:
        # a call strace saw start ("<unfinished ...>" lines included, "resumed" ones not)
        m = re.match(r"^\d+\s+(\w+)\(", line)
        if inside and m and m.group(1) in kinds:
            seen[m.group(1)] += 1
mine = json.load(open(sys.argv[2]))["runs"][0]["syscalls"]
print(windows, " ".join(f"{k}={seen[k]}/{mine[k]}" for k in kinds if seen[k] or mine[k]) or "none")
PY
)
        expect_match "$a $t: one counting window" "^1 " "$got"
        bad=$(echo "$got" | tr ' ' '\n' | awk -F'[=/]' 'NF == 3 && $2 != $3')
        expect_eq "$a $t: strace's counts = mallet's ($got)" "" "$bad"
    done
done
# the counts are not all zero: on the big trace (49 MiB, blocks up to 512 KiB) glibc maps its
# largest blocks one by one
expect_match "glibc big: mmaps counted" '^[1-9]' "$(json glibc-big.json runs.0.syscalls.mmap)"
finish
