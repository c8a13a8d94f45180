/* Golden test: reads checked-in traces with the current reader and compares a text rendering of
 * everything it yields (file info, then every record in merge order) with a checked-in expected
 * file. If the on-disk encoding or its reading changes, the rendering changes and this fails.
 *
 *   golden_check EXPECTED TRACE...          compare (exit 0 same, 1 different)
 *   golden_check --write EXPECTED TRACE...  regenerate EXPECTED on purpose (see make_golden.c)
 *   golden_check - TRACE...                 print the rendering to stdout
 *
 * The rendering names files by their basename only, so it does not depend on where the source
 * tree is. One "key value" per line for the info, one line per record: a diff shows exactly which
 * field of which record moved. */
#define _GNU_SOURCE
#include "trace/reader.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct buf {
    char *s;
    size_t len, cap;
} buf_t;

static void put(buf_t *b, const char *fmt, ...)
{
    if (!b->s && !(b->s = malloc(b->cap = 4096))) exit(2);
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) exit(2);
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = 2 * b->cap + (size_t)n + 1;
        if (!(b->s = realloc(b->s, b->cap))) exit(2);
    }
}

/* A C-escaped, quoted string, or (null). */
static void put_str(buf_t *b, const char *s)
{
    if (!s) {
        put(b, "(null)");
        return;
    }
    put(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            put(b, "\\%c", c);
        else if (c == '\n')
            put(b, "\\n");
        else if (c < 0x20 || c >= 0x7f)
            put(b, "\\x%02x", c);
        else
            put(b, "%c", c);
    }
    put(b, "\"");
}

static const char *base(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Replaces each full path in msg by its basename. */
static void put_msg(buf_t *b, const char *msg, const char *const *paths, unsigned n)
{
    while (*msg) {
        unsigned i;
        for (i = 0; i < n; i++) {
            size_t l = strlen(paths[i]);
            if (!strncmp(msg, paths[i], l)) {
                put(b, "%s", base(paths[i]));
                msg += l;
                break;
            }
        }
        if (i == n) put(b, "%c", *msg++);
    }
}

static const char *part_name(unsigned p)
{
    return p == MALLET_PART_WHOLE ? "whole" : p == MALLET_PART_RELEASE ? "release" : "alloc";
}

static void render(buf_t *b, const char *const *paths, unsigned n)
{
    put(b, "# mallet golden rendering 1; regenerate with golden_check --write (make_golden.c)\n");
    char err[512] = "";
    mallet_reader_t *r = mallet_reader_open(paths, n, err, sizeof err);
    if (!r) {
        put(b, "open-error ");
        put_msg(b, err, paths, n);
        put(b, "\n");
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        const mallet_trace_info_t *in = mallet_reader_info(r, i);
        put(b, "file %u %s\n", in->file_index, base(in->path));
        put(b, "  version %" PRIu32 "\n", in->version);
        put(b, "  pid %" PRId64 "\n  ppid %" PRId64 "\n  forked %d\n", in->pid, in->ppid,
            in->forked);
        put(b,
            "  start_realtime_ns %" PRIu64 "\n  start_ns %" PRIu64 "\n  start_cycles %" PRIu64 "\n",
            in->start_realtime_ns, in->start_ns, in->start_cycles);
        put(b, "  cmdline "), put_str(b, in->cmdline), put(b, "\n");
        put(b, "  exe "), put_str(b, in->exe), put(b, "\n");
        put(b, "  maps "), put_str(b, in->maps), put(b, "\n");
        put(b, "  events %" PRIu64 "\n  chunks %" PRIu64 "\n  threads %" PRIu32 "\n", in->events,
            in->chunks, in->threads);
        put(b, "  thread_exits %d\n  threads_exited %" PRIu32 "\n", in->thread_exits,
            in->threads_exited);
        size_t nends;
        const mallet_thread_end_t *e = mallet_reader_thread_ends(r, i, &nends);
        for (size_t k = 0; k < nends; k++)
            put(b, "  thread %" PRIu32 " ended %" PRIu64 "\n", e[k].thread, e[k].cycles);
        put(b, "  ended_cleanly %d\n  end_reason %d\n", in->ended_cleanly, in->end_reason);
        put(b, "  cut %d\n  cut_bytes %" PRIu64 "\n", in->cut, in->cut_bytes);
        put(b, "  ns_per_cycle %.9g\n  file_bytes %" PRIu64 "\n", in->ns_per_cycle, in->file_bytes);
    }
    mallet_rec_t rec;
    int rc;
    for (uint64_t k = 0; (rc = mallet_reader_next(r, &rec)) == 1; k++) {
        const mallet_event_t *e = &rec.ev;
        put(b,
            "rec %" PRIu64 " file %u %s t_ns %" PRIu64 " %s failed %u tid %" PRIu32
            " thread %" PRIu32 " seq %" PRIu64 " cycles %" PRIu64 " free_cycles %" PRIu64
            " ptr %#" PRIx64 " old_ptr %#" PRIx64 " size %" PRIu64 " nmemb %" PRIu64
            " align %" PRIu64 " callsite %#" PRIx64 " ret %" PRId32 "\n",
            k, rec.file, part_name(rec.part), rec.time_ns, mallet_op_name(e->op), e->failed, e->tid,
            e->thread, e->seq, e->cycles, e->free_cycles, e->ptr, e->old_ptr, e->size, e->nmemb,
            e->align, e->callsite, e->ret);
    }
    if (rc < 0) {
        put(b, "read-error ");
        put_msg(b, mallet_reader_error(r), paths, n);
        put(b, "\n");
    } else {
        put(b, "end\n");
    }
    mallet_reader_close(r);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    buf_t b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        put(&b, "%.*s", (int)n, chunk);
    fclose(f);
    put(&b, "%s", ""); /* an empty file still gets a buffer */
    *len = b.len;
    return b.s;
}

/* Prints the first differing line of both texts. */
static void report(const char *expected, const char *want, const char *got)
{
    unsigned line = 1;
    const char *w = want, *g = got;
    while (*w && *w == *g) {
        if (*w == '\n') line++, want = w + 1, got = g + 1;
        w++, g++;
    }
    int wl = (int)strcspn(want, "\n"), gl = (int)strcspn(got, "\n");
    fprintf(stderr,
            "FAIL: %s:%d: the decoded traces differ from %s at line %u\n  expected: %.*s\n"
            "  actual:   %.*s\n"
            "(if the format changed on purpose, bump its version and regenerate: see "
            "make_golden.c)\n",
            __FILE__, __LINE__, expected, line, wl, want, gl, got);
}

int main(int argc, char **argv)
{
    int write = argc > 1 && !strcmp(argv[1], "--write");
    if (argc - write < 3) {
        fprintf(stderr, "usage: golden_check [--write] EXPECTED|- TRACE...\n");
        return 2;
    }
    const char *expected = argv[1 + write];
    const char *const *paths = (const char *const *)argv + 2 + write;
    unsigned n = (unsigned)(argc - 2 - write);
    buf_t b = {0};
    render(&b, paths, n);
    if (!strcmp(expected, "-")) return fwrite(b.s, 1, b.len, stdout) == b.len ? 0 : 2;
    if (write) {
        FILE *f = fopen(expected, "wb");
        if (!f || fwrite(b.s, 1, b.len, f) != b.len || fclose(f)) {
            fprintf(stderr, "golden_check: cannot write %s\n", expected);
            return 2;
        }
        return 0;
    }
    size_t len;
    char *want = slurp(expected, &len);
    if (!want) {
        fprintf(stderr, "FAIL: %s:%d: cannot read %s\n", __FILE__, __LINE__, expected);
        return 1;
    }
    if (len != b.len || memcmp(want, b.s, len)) {
        report(expected, want, b.s);
        return 1;
    }
    free(want);
    free(b.s);
    return 0;
}
