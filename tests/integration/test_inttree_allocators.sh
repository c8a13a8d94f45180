# The in-tree allocators (allocators/bump, allocators/pool) keep every promise of the C
# allocation API and run real programs, threaded ones included, to the same output as glibc.
. "$(dirname "$0")/lib.sh"
: "${MALLET_BUMP:?set by ctest}" "${MALLET_POOL:?set by ctest}"
{
    cat "$SRC/README.md"
    seq 1 2000
} > words.txt
{
    echo "create table t(id integer primary key, name text, v real);"
    echo "begin;"
    for i in $(seq 1 2000); do echo "insert into t(name, v) values ('n$i', $i.5);"; done
    echo "commit;"
    echo "select count(*), sum(v), max(name) from t;"
} > ins.sql
want_sort=$(sort words.txt | md5sum)
want_sql=$(sqlite3 glibc.db < ins.sql)
for lib in "$MALLET_BUMP" "$MALLET_POOL"; do
    name=$(basename "$lib" .so)
    expect_eq "$name: API contract" ok "$(LD_PRELOAD=$lib "$PROGS/alloc_contract")"
    expect_eq "$name: churn (200 threads, cross-thread frees)" 400000 "$(LD_PRELOAD=$lib "$PROGS/churn")"
    expect_eq "$name: sort" "$want_sort" "$(LD_PRELOAD=$lib sort words.txt | md5sum)"
    expect_eq "$name: sqlite3" "$want_sql" "$(LD_PRELOAD=$lib sqlite3 "$name.db" < ins.sql)"
    expect_eq "$name: python3" 6177790 "$(LD_PRELOAD=$lib python3 -c 'import json; print(len(json.dumps({i: str(i) * 10 for i in range(100000)})))')"
done
finish
