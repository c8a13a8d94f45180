#!/usr/bin/env bash
# The main job: sets up and builds mallet, records a real program (sqlite3 running 3000 inserts
# in a transaction), and prints what it allocated and what it leaked. Traces go to traces/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== building (log in build/setup.log)"
mkdir -p build
bash scripts/setup.sh build > build/setup.log 2>&1 || { cat build/setup.log; exit 1; }

out=traces/demo
mkdir -p "$out"
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
echo "== mallet check $out/sqlite3.mtrace (sqlite3 exits without freeing everything)"
./build/mallet check "$out"/sqlite3.mtrace* | tail -n 6 || true
echo
echo "== mallet allocators (the backends a replay will compare; replay is the next stage)"
./build/mallet allocators
