/* Leak suppressions for `mallet check`, in the format LeakSanitizer's and heaptrack's files use:
 * one `leak:PATTERN` a line; blank lines and lines starting with '#' are ignored. A PATTERN
 * matches a leak's allocation site when it is found in the site's function name (as printed:
 * C++ names demangled), its module's file name or its module's path: '*' matches any run of
 * characters, a leading '^' anchors it at the start and a trailing '$' at the end; otherwise it
 * may match anywhere ("leak:libfoo" suppresses every leak allocated in libfoo.so).
 *
 * A few leaks are the C runtime's own, made once and never freed by design; the built-in list
 * suppresses those (heaptrack's built-ins and glibc's stdio buffers). Library code: no output. */
#ifndef MALLET_ANALYZE_SUPPRESS_H
#define MALLET_ANALYZE_SUPPRESS_H

#include <stddef.h>
#include <stdint.h>

typedef struct mallet_suppression {
    char *pattern;          /* without "leak:" */
    char *origin;           /* "FILE:LINE", "--suppress" or "built-in" */
    uint64_t blocks, bytes; /* leaks it suppressed (mallet_suppressions_match) */
} mallet_suppression_t;

typedef struct mallet_suppressions {
    mallet_suppression_t *v;
    size_t n, cap;
} mallet_suppressions_t;

/* Appends the built-in list. Returns 0, or -1 when out of memory. */
int mallet_suppressions_builtin(mallet_suppressions_t *s);
/* Appends one pattern (without "leak:") from origin. Returns 0, or -1 when out of memory. */
int mallet_suppressions_add(mallet_suppressions_t *s, const char *pattern, const char *origin);
/* Appends the patterns of a suppressions file. Returns 0, or -1 with "PATH: ..." or
 * "PATH:LINE: ..." in err (unreadable, a line that is not `leak:PATTERN`, an empty pattern). */
int mallet_suppressions_load(mallet_suppressions_t *s, const char *path, char *err, size_t errlen);
/* The first suppression whose pattern matches one of the n subjects (NULL or "" ones are
 * skipped), its tally raised by blocks and bytes; NULL if none matches. */
mallet_suppression_t *mallet_suppressions_match(mallet_suppressions_t *s,
                                                const char *const *subjects, size_t n,
                                                uint64_t blocks, uint64_t bytes);
/* True if pattern (LeakSanitizer's template, above) matches subject. */
int mallet_suppression_matches(const char *pattern, const char *subject);
void mallet_suppressions_free(mallet_suppressions_t *s);

#endif
