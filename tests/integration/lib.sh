# Shared helpers for the integration tests. Each test sources this file, uses $WORK as its
# scratch directory (removed at exit), and calls fail/expect_* on problems.
set -u
: "${MALLET:?set by ctest}" "${PROGS:?set by ctest}" "${SRC:?set by ctest}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mallet-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1
failures=0
checks=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

pass() {
    checks=$((checks + 1))
}

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
    if [ "$2" = "$3" ]; then pass; else fail "$1: expected '$2', got '$3'"; fi
}

# expect_match WHAT REGEX TEXT
expect_match() {
    if printf '%s\n' "$3" | grep -Eq -- "$2"; then pass; else fail "$1: '$3' does not match /$2/"; fi
}

# json FILE KEY[.KEY...]: prints a value from a JSON file
json() {
    python3 -c 'import json,sys
v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v=v[int(k)] if isinstance(v,list) else v[k]
print(v)' "$1" "$2"
}

# sqlite_inserts N: the sqlite3 workload's SQL (the recorder issue's "a few thousand inserts"): a
# table, N inserts in one transaction, then what went in ("N|sum")
sqlite_inserts() {
    echo "create table t(id integer primary key, name text, v real);"
    echo "begin;"
    for i in $(seq 1 "$1"); do echo "insert into t(name, v) values ('name-$i', $i.5);"; done
    echo "commit;"
    echo "select count(*), sum(v) from t;"
}

finish() {
    echo "$checks checks, $failures failures"
    [ "$failures" -eq 0 ]
    exit $?
}
