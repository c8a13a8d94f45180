/* See suppress.h. */
#define _GNU_SOURCE
#include "suppress.h"

#include "trace/format.h" /* mallet_errorf */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The C runtime's own blocks, made once per process, kept in its statics and never freed by
 * design. heaptrack's built-in list (glibc's NSS modules, iconv configuration, atexit blocks,
 * time zone data, the dynamic loader's dlopen); then what glibc 2.36 showed here, named by its
 * debug symbols (libc6-dbg): the buffers it gives FILE streams at their first output, the locale
 * data setlocale and gettext load, its other NSS, time zone and iconv caches, getpwuid's result
 * buffer and setenv's environment array. Each names the function that called malloc, the one
 * frame mallet records (docs/CHECK.md). */
static const char *const builtin[] = {
    /* heaptrack's */
    "__nss_module_allocate",
    "__gconv_read_conf",
    "__new_exitfn",
    "tzset_internal",
    "dl_open_worker",
    /* stdio */
    "^_IO_file_doallocate$",
    /* locale and message catalogs */
    "^_nl_intern_locale_data$",
    "^_nl_make_l10nflist$",
    "^read_alias_file$",
    "^new_composite_name$",
    "^set_binding_values",
    "^__wcsmbs_load_conv$",
    /* NSS, time zones, iconv, passwd, environment */
    "^__nss_action_allocate$",
    "^global_state_allocate$",
    "^__tzfile_read$",
    "^__tzstring_len$",
    "^__gconv_lookup_cache$",
    "^getpwuid$",
    "^getpwnam$",
    "^getgrgid$",
    "^getgrnam$",
    "^__add_to_environ$",
    /* The dynamic loader's own blocks (any function of ld-linux*.so): the bookkeeping of the
     * libraries dlopen loaded and threads' TLS (allocate_dtv, kept with the thread's stack in
     * glibc's cache after a join); and dlerror's message, kept for the next call. Reachable
     * from the loader's and libc's statics, as LeakSanitizer treats them. */
    "ld-linux",
    "^_dlerror_run$",
    /* the C library's own strdup and strndup calls (setlocale's locale names): a program's come
     * to the recorder's, which records them as the caller's (harness/record/preload.c) */
    "^strdup$",
    "^strndup$",
};

int mallet_suppressions_add(mallet_suppressions_t *s, const char *pattern, const char *origin)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        mallet_suppression_t *v = realloc(s->v, cap * sizeof *v);
        if (!v) return -1;
        s->v = v;
        s->cap = cap;
    }
    mallet_suppression_t *e = &s->v[s->n];
    memset(e, 0, sizeof *e);
    e->pattern = strdup(pattern);
    e->origin = strdup(origin);
    if (!e->pattern || !e->origin) {
        free(e->pattern);
        free(e->origin);
        return -1;
    }
    s->n++;
    return 0;
}

int mallet_suppressions_builtin(mallet_suppressions_t *s)
{
    for (size_t i = 0; i < sizeof builtin / sizeof *builtin; i++)
        if (mallet_suppressions_add(s, builtin[i], "built-in")) return -1;
    return 0;
}

int mallet_suppressions_load(mallet_suppressions_t *s, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) return mallet_errorf(err, errlen, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned no = 0;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        no++;
        char *p = line, *end = line + len;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        while (end > p && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
            end--;
        *end = 0;
        if (p == end || *p == '#') continue;
        if (strlen(p) != (size_t)(end - p)) {
            rc = mallet_errorf(err, errlen, "%s:%u: a NUL byte in the line", path, no);
        } else if (strncmp(p, "leak:", 5)) {
            rc = mallet_errorf(err, errlen, "%s:%u: not a leak:PATTERN line: %.60s", path, no, p);
        } else if (!p[5]) {
            rc = mallet_errorf(err, errlen, "%s:%u: empty pattern", path, no);
        } else {
            char origin[4200];
            snprintf(origin, sizeof origin, "%s:%u", path, no);
            if (mallet_suppressions_add(s, p + 5, origin))
                rc = mallet_errorf(err, errlen, "out of memory");
        }
    }
    if (rc == 0 && ferror(f)) rc = mallet_errorf(err, errlen, "%s: read error", path);
    free(line);
    fclose(f);
    return rc;
}

/* The last occurrence would do as well as the first for every piece but the last; the first is
 * taken so that later pieces have the most room. */
int mallet_suppression_matches(const char *pattern, const char *subject)
{
    if (!subject || !*subject) return 0;
    const char *t = pattern;
    size_t tl = strlen(t);
    int at_start = tl && t[0] == '^';
    if (at_start) t++, tl--;
    int at_end = tl && t[tl - 1] == '$';
    if (at_end) tl--;
    const char *s = subject, *t_end = t + tl;
    size_t sl = strlen(s);
    for (int first = 1;; first = 0) {
        const char *star = memchr(t, '*', (size_t)(t_end - t));
        const char *piece_end = star ? star : t_end;
        size_t n = (size_t)(piece_end - t);
        int last = !star;
        if (last && at_end) { /* the last piece ends the subject */
            if (n > sl || memcmp(s + sl - n, t, n)) return 0;
            return !(first && at_start) || sl == n;
        }
        if (n) {
            const char *hit =
                first && at_start ? (strncmp(s, t, n) ? NULL : s) : memmem(s, sl, t, n);
            if (!hit) return 0;
            sl -= (size_t)(hit - s) + n;
            s = hit + n;
        }
        if (last) return 1;
        t = star + 1;
    }
}

mallet_suppression_t *mallet_suppressions_match(mallet_suppressions_t *s,
                                                const char *const *subjects, size_t n,
                                                uint64_t blocks, uint64_t bytes)
{
    for (size_t i = 0; i < s->n; i++)
        for (size_t k = 0; k < n; k++)
            if (mallet_suppression_matches(s->v[i].pattern, subjects[k])) {
                s->v[i].blocks += blocks;
                s->v[i].bytes += bytes;
                return &s->v[i];
            }
    return NULL;
}

void mallet_suppressions_free(mallet_suppressions_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].pattern);
        free(s->v[i].origin);
    }
    free(s->v);
    memset(s, 0, sizeof *s);
}
