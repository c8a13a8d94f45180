/* Unit test of analyze/suppress.c: LeakSanitizer's pattern language case by case, suppressions
 * files (comments, blanks, spaces, CRLF) and their errors, and the tallies of the matches. */
#define _GNU_SOURCE
#include "analyze/suppress.h"
#include "check.h"

#include <stdlib.h>
#include <unistd.h>

static void test_patterns(void)
{
    static const struct {
        const char *pattern, *subject;
        int want;
    } cases[] = {
        {"leak_ints", "store::Pool::leak_ints(unsigned int)", 1}, /* anywhere */
        {"leak_intz", "store::Pool::leak_ints(unsigned int)", 0},
        {"^store::", "store::Pool::leak_ints(unsigned int)", 1},
        {"^Pool::", "store::Pool::leak_ints(unsigned int)", 0},
        {"(unsigned int)$", "store::Pool::leak_ints(unsigned int)", 1},
        {"leak_ints$", "store::Pool::leak_ints(unsigned int)", 0},
        {"^malloc$", "malloc", 1},
        {"^malloc$", "malloc2", 0},
        {"^malloc$", "xmalloc", 0},
        {"store::*(unsigned", "store::Pool::leak_ints(unsigned int)", 1},
        {"^store*Pool*ints(*)$", "store::Pool::leak_ints(unsigned int)", 1},
        {"^store*Pool*ints(*)$", "store::Pool::leak_ints(unsigned int) const", 0},
        {"Pool*store", "store::Pool::leak_ints", 0}, /* pieces in order */
        {"a*a", "a", 0},                             /* one occurrence cannot serve two pieces */
        {"a*a", "aa", 1},
        {"^ab*b$", "ab", 0},
        {"^ab*b$", "abb", 1},
        {"*", "anything", 1},
        {"*", "", 0}, /* an empty subject (no name) matches nothing */
        {"^*$", "x", 1},
        {"libstdc++", "libstdc++.so.6.0.30", 1},
        {"^/usr/lib/*/libc.so", "/usr/lib/x86_64-linux-gnu/libc.so.6", 1},
        {"^_IO_file_doallocate$", "_IO_file_doallocate", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int got = mallet_suppression_matches(cases[i].pattern, cases[i].subject);
        if (got != cases[i].want)
            fprintf(stderr, "pattern '%s' on '%s': %d, want %d\n", cases[i].pattern,
                    cases[i].subject, got, cases[i].want);
        CHECK_EQ(got, cases[i].want);
    }
    CHECK_EQ(mallet_suppression_matches("x", NULL), 0);
}

static char *write_file(const char *text, size_t len)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/mallet-test-supp-XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return NULL;
    CHECK((size_t)write(fd, text, len) == len);
    close(fd);
    return path;
}

static void test_files(void)
{
    mallet_suppressions_t s = {0};
    char err[256];
    static const char good[] = "# third-party code\n\n  leak:libfoo  \r\nleak:^bar::baz$\n";
    char *path = write_file(good, sizeof good - 1);
    if (!path) return;
    CHECK_EQ(mallet_suppressions_load(&s, path, err, sizeof err), 0);
    CHECK_EQ(s.n, 2);
    if (s.n == 2) {
        CHECK_STREQ(s.v[0].pattern, "libfoo");
        CHECK_STREQ(s.v[1].pattern, "^bar::baz$");
        char want[128];
        snprintf(want, sizeof want, "%s:4", path);
        CHECK_STREQ(s.v[1].origin, want);
    }
    unlink(path);

    /* the first pattern that matches any subject takes the leak */
    const char *subjects[] = {NULL, "libfoo.so.1", "/usr/lib/libfoo.so.1"};
    mallet_suppression_t *m = mallet_suppressions_match(&s, subjects, 3, 2, 300);
    CHECK(m == &s.v[0]);
    const char *bar[] = {"bar::baz", "app", "/bin/app"};
    CHECK(mallet_suppressions_match(&s, bar, 3, 1, 7) == &s.v[1]);
    const char *none[] = {"bar::bazz", "app", "/bin/app"};
    CHECK(mallet_suppressions_match(&s, none, 3, 1, 7) == NULL);
    CHECK(mallet_suppressions_match(&s, subjects, 3, 1, 10) == &s.v[0]);
    CHECK_EQ(s.v[0].blocks, 3);
    CHECK_EQ(s.v[0].bytes, 310);
    CHECK_EQ(s.v[1].blocks, 1);
    CHECK_EQ(s.v[1].bytes, 7);
    mallet_suppressions_free(&s);

    /* built-ins, then one from the command line */
    CHECK_EQ(mallet_suppressions_builtin(&s), 0);
    size_t builtins = s.n;
    CHECK(builtins > 0);
    CHECK_EQ(mallet_suppressions_add(&s, "mine", "--suppress"), 0);
    CHECK_STREQ(s.v[builtins].origin, "--suppress");
    const char *stdio[] = {"_IO_file_doallocate", "libc.so.6",
                           "/usr/lib/x86_64-linux-gnu/libc.so.6"};
    CHECK(mallet_suppressions_match(&s, stdio, 3, 1, 4096) != NULL);
    mallet_suppressions_free(&s);

    /* errors: one line naming the file (and the line), nothing kept from the bad line on */
    static const struct {
        const char *text;
        size_t len;
        const char *want;
    } bad[] = {
        {"leak:ok\nleek:typo\n", 18, ":2: not a leak:PATTERN line: leek:typo"},
        {"leak:\n", 6, ":1: empty pattern"},
        {"called_from_lib:libfoo.so\n", 26, ":1: not a leak:PATTERN line"},
        {"leak:a\0b\n", 9, ":1: a NUL byte in the line"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        path = write_file(bad[i].text, bad[i].len);
        if (!path) return;
        CHECK_EQ(mallet_suppressions_load(&s, path, err, sizeof err), -1);
        CHECK(!strncmp(err, path, strlen(path)) && strstr(err, bad[i].want));
        if (!strstr(err, bad[i].want)) fprintf(stderr, "got: %s\n", err);
        unlink(path);
        mallet_suppressions_free(&s);
    }
    CHECK_EQ(mallet_suppressions_load(&s, "/nonexistent/x.supp", err, sizeof err), -1);
    CHECK_STREQ(err, "/nonexistent/x.supp: No such file or directory");
    mallet_suppressions_free(&s);
}

int main(void)
{
    test_patterns();
    test_files();
    return mallet_test_failures ? 1 : 0;
}
