// C++ allocations through operator new and delete, made by named functions, for the recorder's
// C++ hooks (tests/integration/test_cxx.sh): every form of new the program uses, an aligned type,
// a leak, a throwing new that fails and is caught (recording goes on after it), a nothrow new
// that fails. Prints what it did. Built with -DOWN_NEW it defines its own operator new and
// delete, which must stay the ones it calls.
#include <cstdio>
#include <cstdlib>
#include <new>

#ifdef OWN_NEW
static int own_news;
void *operator new(size_t n)
{
    own_news++;
    if (void *p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void *p) noexcept
{
    std::free(p);
}
void operator delete(void *p, size_t) noexcept
{
    std::free(p);
}
#else
static const int own_news = -1;
#endif

struct alignas(64) Wide {
    char b[64];
};

extern "C" {
__attribute__((noinline)) int *make_ints(int n)
{
    return new int[n];
}
__attribute__((noinline)) void drop_ints(int *p)
{
    delete[] p;
}
__attribute__((noinline)) Wide *make_wide()
{
    return new Wide;
}
__attribute__((noinline)) void drop_wide(Wide *w)
{
    delete w;
}
__attribute__((noinline)) long *make_long()
{
    return new long(7);
}
__attribute__((noinline)) void drop_long(long *p)
{
    delete p;
}
__attribute__((noinline)) void *huge_nothrow()
{
    return ::operator new(size_t(1) << 62, std::nothrow);
}
__attribute__((noinline)) void *huge()
{
    return ::operator new(size_t(1) << 62);
}
}

// The leak is made by a C++ function (not extern "C"): its name is mangled in the symbol table,
// and `mallet check` must print it demangled.
namespace store {
struct Pool {
    __attribute__((noinline)) static int *leak_ints(unsigned n)
    {
        return new int[n];
    }
};
} // namespace store

int main()
{
    int rounds = 0, caught = 0;
    for (int i = 0; i < 1000; i++, rounds++)
        drop_ints(make_ints(10));
    drop_wide(make_wide());
    drop_long(make_long());
    int *leaked = store::Pool::leak_ints(5);
    void *none = huge_nothrow();
    try {
        huge();
    } catch (const std::bad_alloc &) {
        caught++;
    }
    for (int i = 0; i < 100; i++, rounds++)
        drop_ints(make_ints(3)); // recorded after the throw
    std::printf("rounds %d caught %d nothrow %s leaked %d own %d\n", rounds, caught,
                none ? "block" : "null", leaked != nullptr, own_news);
    return 0;
}
