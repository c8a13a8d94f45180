# C++ programs: operator new and delete are hooked (harness/record/cxx.c), so an allocation's
# site is the function that said `new`, not libstdc++'s operator new. tests/programs/cxx_new.cpp,
# built here with the system's g++: every form of new it uses recorded once, a failing throwing
# new caught by the program (recording goes on after it), a failing nothrow new, a leak named by
# its C++ function, demangled; built with -DOWN_NEW, the program's own operator new stays the one
# it calls.
. "$(dirname "$0")/lib.sh"
command -v g++ > /dev/null || { fail "g++ is not installed (build-essential: scripts/setup.sh)"; finish; }

g++ -O1 -g -fno-omit-frame-pointer -o cxx_new "$SRC/tests/programs/cxx_new.cpp" ||
    { fail "cxx_new.cpp does not build"; finish; }
want="rounds 1100 caught 1 nothrow null leaked 1 own -1"
expect_eq "cxx_new alone" "$want" "$(./cxx_new)"
out=$("$MALLET" record -q -o c.mtrace -- ./cxx_new); expect_eq "cxx_new status" 0 $?
expect_eq "cxx_new recorded" "$want" "$out"
"$MALLET" stats --json c.mtrace > c.json; expect_eq "stats status" 0 $?
site_key() { # NAME KEY -> KEY of the top sites whose name (up to a space) is NAME
    python3 -c 'import json, sys
d = json.load(open("c.json"))
print(sum(s[sys.argv[2]] for s in d["top_sites"] if s["site"].split(" ")[0] == sys.argv[1]))' "$1" "$2"
}
expect_eq "new int[] sites: make_ints" 1100 "$(site_key make_ints calls)"
# every block but the leak is deleted by the next call after its new: temporary allocations
expect_eq "temporary allocations" 1103 "$(json c.json temporary_allocs)"
expect_eq "make_ints: all 1100 temporary" 1100 "$(site_key make_ints temporary)"
expect_eq "make_ints: none live at the peak" 0 "$(site_key make_ints peak_bytes)"
expect_eq "the leak: live at the peak" 20 "$(site_key 'store::Pool::leak_ints(unsigned' peak_bytes)"
expect_eq "aligned new site: make_wide" 1 "$(site_key make_wide calls)"
expect_eq "new long site: make_long" 1 "$(site_key make_long calls)"
expect_eq "no site inside operator new" 0 "$(python3 -c 'import json
print(sum(s["calls"] for s in json.load(open("c.json"))["top_sites"]
          if s["site"].startswith("operator new")))')"
expect_eq "aligned new recorded as aligned_alloc" 1 "$(json c.json by_kind.aligned_alloc)"
expect_eq "the two failing news" 2 "$(json c.json failed_calls)"
# frees: 1100 arrays, the aligned block, the long, the bad_alloc exception object
expect_eq "every delete recorded once" 1103 "$(json c.json free_calls)"
"$MALLET" check c.mtrace > check.txt
expect_eq "check: the leak, named (demangled)" 1 \
    "$(grep -c '^leak: 1 block, 20 bytes allocated at store::Pool::leak_ints(unsigned int) (cxx_new+' check.txt)"
expect_match "check: no double free, no unknown pointer" "no double frees, no frees of unknown pointers" "$(tail -1 check.txt)"
"$MALLET" replay --allocator glibc --allocator bump --json r.json c.mtrace > /dev/null 2>&1
expect_eq "replay status" 0 $?
calls=$(($(json c.json alloc_calls) - 2 + 1103)) # the failed calls are not replayed
expect_eq "replayed calls, glibc and bump" "$calls $calls" \
    "$(python3 -c 'import json; print(*[r["ops"] for r in json.load(open("r.json"))["runs"]])')"

# a C program that loads a C++ library into a local scope (as ar its LTO plugin): the operators
# are found there, and the program's dlerror() state is its own (the recorder once looked them
# up with dlsym inside its hooks: its failures became the program's dlerror(), and the error
# strings, freed by the program's next dl call, frees of unknown pointers)
g++ -O1 -g -shared -fPIC -o libplugin.so "$SRC/tests/programs/cxx_plugin.cpp" &&
    gcc -O1 -g -o dl_host "$SRC/tests/programs/dl_host.c" -ldl || { fail "the plugin test does not build"; finish; }
want=$(./dl_host ./libplugin.so)
expect_eq "plugin host alone" "plugin_work 40, dlerror right" "$want"
expect_eq "plugin host recorded" "$want" "$("$MALLET" record -q -o pl.mtrace -- ./dl_host ./libplugin.so)"
"$MALLET" check pl.mtrace > pl.txt
expect_match "plugin host: no double free, no unknown pointer" \
    "no double frees, no frees of unknown pointers" "$(tail -1 pl.txt)"
"$MALLET" dump --symbols pl.mtrace > pl.dump
expect_eq "plugin: the constructor's new[] recorded there" 1 "$(grep -c 'malloc(64) .*(libplugin.so+' pl.dump)"
expect_eq "plugin: plugin_work's new[] recorded there" 1 "$(grep -c 'malloc(160) .*plugin_work (libplugin.so' pl.dump)"
# unloaded before the end: its callsites are named still (a MAPS chunk before the dlclose)
expect_eq "plugin host, unloading" "$want" "$("$MALLET" record -q -o pc.mtrace -- ./dl_host ./libplugin.so close)"
"$MALLET" dump --symbols pc.mtrace > pc.dump
expect_eq "unloaded plugin: plugin_work named" 1 "$(grep -c 'malloc(160) .*plugin_work (libplugin.so' pc.dump)"
expect_eq "unloaded plugin: its destructor named" 1 "$(grep -c 'free(.*Init::~Init() (libplugin.so' pc.dump)"

g++ -O1 -g -DOWN_NEW -o own_new "$SRC/tests/programs/cxx_new.cpp" || { fail "-DOWN_NEW does not build"; finish; }
own=$(./own_new)
expect_match "own operator new called" "own 1104" "$own"
expect_eq "own operator new, recorded" "$own" "$("$MALLET" record -q -o o.mtrace -- ./own_new)"
finish
