/* Unit test of analyze/symbols.c: resolves addresses of this very program (and of libc) through
 * its own /proc/self/maps, parses odd maps text, and feeds the ELF reader damaged copies of this
 * program's file, which must never crash it. */
#define _GNU_SOURCE
#include "analyze/symbols.h"
#include "check.h"

#include <fcntl.h>
#include <link.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* The function the test looks itself up by: non-static so it is in .symtab, and large enough
 * that an address a few bytes in is still inside it. */
__attribute__((noinline)) int mallet_test_symbol_target(int x)
{
    volatile int v = x;
    for (int i = 0; i < 8; i++)
        v = v * 31 + i;
    return v;
}

/* A C++ function's symbol, made in C with an assembler name: "mallet::test::target(int)". And a
 * name that starts like one but is not (the demangler gives up): shown as it is. */
int mallet_test_cxx_target(int x) __asm__("_ZN6mallet4test6targetEi");
__attribute__((noinline)) int mallet_test_cxx_target(int x)
{
    volatile int v = x;
    for (int i = 0; i < 8; i++)
        v = v * 17 + i;
    return v;
}
int mallet_test_not_cxx(int x) __asm__("_Z_not_a_mangled_name");
__attribute__((noinline)) int mallet_test_not_cxx(int x)
{
    volatile int v = x;
    for (int i = 0; i < 8; i++)
        v = v * 13 + i;
    return v;
}

static char *read_text(const char *path)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (!buf || fd < 0) return free(buf), NULL;
    for (;;) {
        if (len + 1 == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) return free(buf), close(fd), NULL;
            buf = nb;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = 0;
    return buf;
}

static int main_program_bias(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    *(uint64_t *)data = info->dlpi_addr; /* the first object reported is the program */
    return 1;
}

static void test_self(void)
{
    char *maps = read_text("/proc/self/maps");
    CHECK(maps != NULL);
    const char *spaces[1] = {maps};
    mallet_symbols_t *s = mallet_symbols_new(spaces, 1);
    free(maps); /* the resolver keeps its own copy of what it needs */
    CHECK(s != NULL);
    if (!s) return;

    uint64_t bias = 0;
    dl_iterate_phdr(main_program_bias, &bias);
    uint64_t addr = (uint64_t)(uintptr_t)&mallet_test_symbol_target + 4;
    mallet_sym_t sym;
    CHECK_EQ(mallet_symbols_lookup(s, 0, addr, &sym), 1);
    CHECK_STREQ(sym.func, "mallet_test_symbol_target");
    CHECK_STREQ(sym.module, "test_symbols");
    CHECK_EQ(sym.offset, addr - bias);
    CHECK_EQ(sym.func_offset, 4);

    char buf[256], want[256];
    snprintf(want, sizeof want, "mallet_test_symbol_target (test_symbols+0x%" PRIx64 ")",
             addr - bias);
    CHECK_STREQ(mallet_symbols_format(s, 0, addr, buf, sizeof buf), want);

    /* A return address just past the function's first byte still names it (lookup at addr-1). */
    addr = (uint64_t)(uintptr_t)&mallet_test_symbol_target + 1;
    CHECK_EQ(mallet_symbols_lookup(s, 0, addr, &sym), 1);
    CHECK_STREQ(sym.func, "mallet_test_symbol_target");

    /* C++ names demangled; a name the demangler rejects as it is. */
    addr = (uint64_t)(uintptr_t)&mallet_test_cxx_target + 4;
    CHECK_EQ(mallet_symbols_lookup(s, 0, addr, &sym), 1);
    CHECK_STREQ(sym.func, "mallet::test::target(int)");
    snprintf(want, sizeof want, "mallet::test::target(int) (test_symbols+0x%" PRIx64 ")",
             addr - bias);
    CHECK_STREQ(mallet_symbols_format(s, 0, addr, buf, sizeof buf), want);
    addr = (uint64_t)(uintptr_t)&mallet_test_not_cxx + 4;
    CHECK_EQ(mallet_symbols_lookup(s, 0, addr, &sym), 1);
    CHECK_STREQ(sym.func, "_Z_not_a_mangled_name");

    /* A function of a shared library, found through its .dynsym. */
    addr = (uint64_t)(uintptr_t)&getpid + 2;
    CHECK_EQ(mallet_symbols_lookup(s, 0, addr, &sym), 1);
    CHECK(sym.module && !strncmp(sym.module, "libc", 4));
    CHECK_STREQ(sym.func, "getpid");

    /* No mapping: the bare address; an unknown space: the same. */
    CHECK_STREQ(mallet_symbols_format(s, 0, 0x10, buf, sizeof buf), "0x10");
    CHECK_STREQ(mallet_symbols_format(s, 7, 0x1234, buf, sizeof buf), "0x1234");
    CHECK_EQ(mallet_symbols_lookup(s, 0, 0x10, &sym), 0);
    CHECK(sym.module == NULL && sym.func == NULL);
    /* Truncation keeps the NUL. */
    CHECK_STREQ(mallet_symbols_format(s, 0, 0xabcdef, buf, 5), "0xab");
    mallet_symbols_free(s);
}

static void test_maps_text(void)
{
    const char *text = "garbage line\n"
                       "\n"
                       "0-\n"
                       "2000-1000 r-xp 00000000 00:00 0 /backwards\n"
                       "1000-2000 r-xp 00000000 00:00 0     /no/such/dir/with space/lib.so\n"
                       "3000-4000 rw-p 00000000 00:00 0\n"
                       "5000-6000 r--p 00001000 00:00 0 [vdso]\n"
                       "7000-8000 r-xp 00002000 08:01 42 /no/such/prog (deleted)\n"
                       "fffffffffffffffff-1 r-xp 0 0 0 /too/long/number\n"
                       "9000-a000 r-xp 00000000 00:00 0 /dev/zero"; /* no final newline */
    const char *spaces[2] = {text, NULL};
    mallet_symbols_t *s = mallet_symbols_new(spaces, 2);
    CHECK(s != NULL);
    if (!s) return;
    char buf[256];
    CHECK_STREQ(mallet_symbols_format(s, 0, 0x1800, buf, sizeof buf), "lib.so+0x800");
    CHECK_STREQ(mallet_symbols_format(s, 0, 0x3800, buf, sizeof buf), "0x3800");
    CHECK_STREQ(mallet_symbols_format(s, 0, 0x5800, buf, sizeof buf), "[vdso]+0x1800");
    CHECK_STREQ(mallet_symbols_format(s, 0, 0x7010, buf, sizeof buf), "prog (deleted)+0x2010");
    CHECK_STREQ(mallet_symbols_format(s, 0, 0x9010, buf, sizeof buf), "zero+0x10");
    CHECK_STREQ(mallet_symbols_format(s, 0, 0x2000, buf, sizeof buf), "0x2000");
    CHECK_STREQ(mallet_symbols_format(s, 1, 0x1800, buf, sizeof buf), "0x1800");
    mallet_sym_t sym;
    CHECK_EQ(mallet_symbols_lookup(s, 0, 0x1800, &sym), 1);
    CHECK_STREQ(sym.path, "/no/such/dir/with space/lib.so");
    mallet_symbols_free(s);
    mallet_symbols_free(NULL);
}

/* Many distinct paths (the module index grows and rehashes several times), each named by two
 * lines in two address spaces: every address resolves to its own module, and both lines of a
 * path share one (its path string is the same object). */
static void test_many_modules(void)
{
    enum { N = 5000 };
    char *text = malloc((size_t)N * 2 * 64);
    CHECK(text != NULL);
    if (!text) return;
    char *p = text, *second = text;
    for (unsigned pass = 0; pass < 2; pass++) {
        if (pass == 1) second = p;
        for (unsigned i = 0; i < N; i++)
            p += sprintf(p, "%x-%x r-xp 00000000 00:00 0 /m/%u\n", 0x10000 * (2 * i + pass + 1),
                         0x10000 * (2 * i + pass + 1) + 0x1000, i);
    }
    const char *spaces[2] = {text, second}; /* all, and the second pass */
    mallet_symbols_t *s = mallet_symbols_new(spaces, 2);
    CHECK(s != NULL);
    if (!s) return free(text);
    unsigned bad = 0;
    for (unsigned i = 0; i < N; i++) {
        mallet_sym_t a, b, c;
        char want[32];
        snprintf(want, sizeof want, "/m/%u", i);
        int ok = mallet_symbols_lookup(s, 0, 0x10000 * (2 * i + 1) + 0x10, &a) == 1 &&
                 mallet_symbols_lookup(s, 0, 0x10000 * (2 * i + 2) + 0x10, &b) == 1 &&
                 mallet_symbols_lookup(s, 1, 0x10000 * (2 * i + 2) + 0x10, &c) == 1;
        bad += !ok || strcmp(a.path, want) || a.path != b.path || b.path != c.path;
    }
    CHECK_EQ(bad, 0);
    mallet_symbols_free(s);
    free(text);
}

/* Damaged copies of this program: random bytes written over the ELF header, the program and
 * section headers and the symbol tables. Each is resolved by a fresh resolver (no cache), and all
 * that is asked is that nothing crashes and the answer stays inside the mapping. */
static void test_damaged_elf(void)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    CHECK(n > 0);
    if (n <= 0) return;
    exe[n] = 0;
    int in = open(exe, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    CHECK(in >= 0 && !fstat(in, &sb));
    if (in < 0) return;
    size_t size = (size_t)sb.st_size;
    uint8_t *orig = malloc(size);
    CHECK(orig && read(in, orig, size) == (ssize_t)size);
    close(in);
    if (!orig) return;

    char path[] = "/tmp/mallet-test-elf-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return free(orig);
    char maps[4200];
    snprintf(maps, sizeof maps, "10000000-20000000 r-xp 00000000 00:00 0 %s\n", path);
    const char *spaces[1] = {maps};

    /* Regions worth damaging: the first 4 KiB (headers) and the last 64 KiB (section headers,
     * and in an unstripped program the symbol and string tables). */
    srand(12345);
    for (int iter = 0; iter < 400; iter++) {
        uint8_t *copy = malloc(size);
        if (!copy) break;
        memcpy(copy, orig, size);
        int edits = 1 + rand() % 8;
        for (int e = 0; e < edits; e++) {
            size_t pos = rand() % 2 ? (size_t)rand() % (size < 4096 ? size : 4096)
                                    : size - 1 - (size_t)rand() % (size < 65536 ? size : 65536);
            copy[pos] = (uint8_t)(rand() % 3 == 0 ? 0xff : rand());
        }
        if (iter % 50 == 49) size = size / 2 + 1; /* truncated files too */
        CHECK(ftruncate(fd, 0) == 0 && pwrite(fd, copy, size, 0) == (ssize_t)size);
        free(copy);
        mallet_symbols_t *s = mallet_symbols_new(spaces, 1);
        CHECK(s != NULL);
        if (!s) break;
        mallet_sym_t sym;
        for (uint64_t a = 0x10000000; a < 0x10000000 + size && a < 0x20000000; a += size / 7 + 1) {
            CHECK_EQ(mallet_symbols_lookup(s, 0, a, &sym), 1);
            CHECK(sym.module != NULL);
        }
        mallet_symbols_free(s);
    }
    close(fd);
    unlink(path);
    free(orig);
}

int main(void)
{
    test_self();
    test_maps_text();
    test_many_modules();
    test_damaged_elf();
    return CHECK_DONE();
}
