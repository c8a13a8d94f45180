#!/usr/bin/env bash
# The main job: sets up and builds mallet, records a real program (sqlite3 running a few
# thousand inserts), and prints what it allocated. Traces go to traces/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh build

out=traces/demo
mkdir -p "$out"
rm -f "$out"/sqlite3.mtrace*
db=$(mktemp -u /tmp/mallet-demo.XXXXXX.db)
sql="create table t(id integer primary key, name text, v real);
begin; $(for i in $(seq 1 3000); do printf "insert into t(name, v) values ('name-%d', %d.5);" "$i" "$i"; done) commit;
select count(*), sum(v) from t;"
echo "== mallet record -- sqlite3 (3000 inserts)"
./build/mallet record -o "$out/sqlite3.mtrace" -- sqlite3 "$db" "$sql"
rm -f "$db"
echo
echo "== mallet stats $out/sqlite3.mtrace"
./build/mallet stats "$out"/sqlite3.mtrace*
echo
echo "== mallet check $out/sqlite3.mtrace (leaks are expected: sqlite3 exits without freeing)"
./build/mallet check "$out"/sqlite3.mtrace* | tail -n 5 || true
