// A C++ library a C program (tests/programs/dl_host.c) loads with dlopen into a local scope, as
// `ar` loads its LTO plugin: libstdc++ comes in with it, after the recorder's start, and only the
// library sees it. Its constructor and its function allocate with new (tests/integration/
// test_cxx.sh).
#include <string>

static int *made_at_load;

struct Init {
    Init() { made_at_load = new int[16](); }
    ~Init() { delete[] made_at_load; }
} init;

extern "C" int plugin_work(int n)
{
    std::string s(static_cast<size_t>(n), 'x');
    int *p = new int[n];
    p[0] = static_cast<int>(s.size()) + made_at_load[0];
    int r = p[0];
    delete[] p;
    return r;
}
