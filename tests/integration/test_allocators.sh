# `mallet allocators` lists every descriptor in allocators/ with whether its library is
# installed and its version; broken descriptors get one clear line naming the file.
. "$(dirname "$0")/lib.sh"

"$MALLET" allocators --json > all.json; expect_eq "allocators --json status" 0 $?
names=$(python3 -c 'import json,sys; print(" ".join(a["name"] for a in json.load(open(sys.argv[1]))["allocators"]))' all.json)
expect_eq "the shipped backends" "bump glibc glibc-1arena jemalloc mimalloc pool tcmalloc" "$names"
for a in glibc glibc-1arena bump pool; do
    expect_eq "$a available" True "$(python3 -c 'import json,sys; print(next(a for a in json.load(open(sys.argv[1]))["allocators"] if a["name"] == sys.argv[2])["available"])' all.json "$a")"
done
# a Debian-packaged backend is available exactly when its package is installed, and its library
# then exists
python3 - all.json > pkgs.txt <<'PY'
import json, sys
for a in json.load(open(sys.argv[1]))["allocators"]:
    if a["package"] and a["library"] is not None or a["name"] in ("jemalloc", "tcmalloc", "mimalloc"):
        print(a["name"], a["package"], a["available"], a["library"], a["version"] or "-")
PY
while read -r name pkg avail lib version; do
    if dpkg -s "$pkg" > /dev/null 2>&1; then
        expect_eq "$name available ($pkg installed)" True "$avail"
        [ -f "$lib" ] && pass || fail "$name: library $lib does not exist"
        expect_eq "$name version" "$(dpkg-query -W -f='${Version}' "$pkg")" "$version"
    else
        expect_eq "$name unavailable ($pkg not installed)" False "$avail"
    fi
done < pkgs.txt
expect_eq "environment of glibc-1arena" 1 "$(python3 -c 'import json,sys; print(next(a for a in json.load(open(sys.argv[1]))["allocators"] if a["name"] == "glibc-1arena")["env"]["MALLOC_ARENA_MAX"])' all.json)"
"$MALLET" allocators > all.txt; expect_eq "text status" 0 $?
expect_eq "text rows" 8 "$(wc -l < all.txt)"

# broken descriptors: one line naming the file, exit 1
bad() { # NAME CONTENT REGEX
    rm -rf d && mkdir d
    cp "$SRC/allocators/glibc.json" d/
    printf '%s' "$2" > "d/$1.json"
    MALLET_ALLOCATORS="$WORK/d" "$MALLET" allocators > out.txt 2> err.txt
    expect_eq "$1: status" 1 $?
    expect_eq "$1: one line" 1 "$(wc -l < err.txt)"
    expect_match "$1: message" "^mallet: .*d/$3" "$(cat err.txt)"
}
bad syntax '{"name": "x", }' 'syntax.json: line 1'
bad notobject '[1, 2]' 'notobject.json: a descriptor is a JSON object'
bad noname '{"library": []}' 'noname.json: "name" must be'
bad badname '{"name": "a b"}' 'badname.json: "name" must be'
bad unknownkey '{"name": "x", "libary": []}' 'unknownkey.json: unknown key "libary"'
bad keynewline '{"name": "x", "a\nb": 1}' 'keynewline.json: unknown key "a\?b"'
bad envnewline '{"name": "x", "env": {"A\nB": 1}}' 'envnewline.json: "env" entry "A\?B"'
bad libtype '{"name": "x", "library": "libx.so"}' 'libtype.json: "library" must be an array'
bad libentry '{"name": "x", "library": [""]}' 'libentry.json: "library" entry 0'
bad envtype '{"name": "x", "env": {"A": 1}}' 'envtype.json: "env" entry "A"'
bad duplicate '{"name": "glibc"}' '(duplicate|glibc).json: allocator name "glibc" is also used by'
rm -rf d && mkdir d
MALLET_ALLOCATORS="$WORK/d" "$MALLET" allocators 2> err.txt; expect_eq "empty folder: status" 1 $?
expect_match "empty folder: message" 'no allocator descriptors' "$(cat err.txt)"
"$MALLET" allocators --bogus 2> /dev/null; expect_eq "usage error" 2 $?
finish
