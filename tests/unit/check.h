/* A dependency-free check macro set for the unit tests: a test is a plain C program that runs
 * every check (a failure does not stop it, so one run shows all of them), prints
 * "FAIL: file:line: expr" for each failure and returns non-zero if any failed. */
#ifndef MALLET_TEST_CHECK_H
#define MALLET_TEST_CHECK_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int mallet_test_failures;

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        if (!(expr)) {                                                                             \
            fprintf(stderr, "FAIL: %s:%d: %s\n", __FILE__, __LINE__, #expr);                       \
            mallet_test_failures++;                                                                \
        }                                                                                          \
    } while (0)

/* Unsigned equality that shows both values when it fails. */
#define CHECK_EQ(got, want)                                                                        \
    do {                                                                                           \
        uint64_t got_ = (uint64_t)(got), want_ = (uint64_t)(want);                                 \
        if (got_ != want_) {                                                                       \
            fprintf(stderr, "FAIL: %s:%d: %s == %s (got %" PRIu64 ", want %" PRIu64 ")\n",         \
                    __FILE__, __LINE__, #got, #want, got_, want_);                                 \
            mallet_test_failures++;                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_STREQ(got, want)                                                                     \
    do {                                                                                           \
        const char *got_ = (got), *want_ = (want);                                                 \
        if (!got_ || !want_ || strcmp(got_, want_)) {                                              \
            fprintf(stderr, "FAIL: %s:%d: %s == %s (got \"%s\", want \"%s\")\n", __FILE__,         \
                    __LINE__, #got, #want, got_ ? got_ : "(null)", want_ ? want_ : "(null)");      \
            mallet_test_failures++;                                                                \
        }                                                                                          \
    } while (0)

/* The exit status of a test program. */
#define CHECK_DONE()                                                                               \
    (mallet_test_failures ? (fprintf(stderr, "%d check(s) failed\n", mallet_test_failures), 1) : 0)

#endif
