#!/usr/bin/env bash
# The main job: sets up and builds mallet, records a real program (sqlite3 running 3000 inserts
# in a transaction), prints what it allocated and leaked, and replays it on every available
# allocator. Traces go to traces/demo/, replay results to results/demo-replay.json.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== building (log in build/setup.log)"
mkdir -p build
bash scripts/setup.sh build > build/setup.log 2>&1 || { cat build/setup.log; exit 1; }

out=traces/demo
mkdir -p "$out"
rm -f "$out"/sqlite3.mtrace* # an earlier run's traces and replay cache (TRACE.replay)
db=$(mktemp -u /tmp/mallet-demo.XXXXXX.db)
{
    echo "create table t(id integer primary key, name text, v real);"
    echo "begin;"
    for i in $(seq 1 3000); do echo "insert into t(name, v) values ('name-$i', $i.5);"; done
    echo "commit;"
    echo "select count(*), sum(v) from t;"
} > "$out/inserts.sql"
echo "== mallet record -o $out/sqlite3.mtrace -- sqlite3 DB < $out/inserts.sql"
./build/mallet record -o "$out/sqlite3.mtrace" -- sqlite3 "$db" < "$out/inserts.sql"
rm -f "$db"
echo
echo "== mallet stats $out/sqlite3.mtrace"
./build/mallet stats "$out"/sqlite3.mtrace*
echo
echo "== mallet check $out/sqlite3.mtrace (leaks by site; the C runtime's own never-freed blocks are suppressed)"
./build/mallet check "$out"/sqlite3.mtrace* | tail -n 6 || true
echo
echo "== mallet allocators"
./build/mallet allocators
echo
mkdir -p results
echo "== mallet replay --repeat 3 --json results/demo-replay.json $out/sqlite3.mtrace"
./build/mallet replay --repeat 3 --json results/demo-replay.json "$out/sqlite3.mtrace"
