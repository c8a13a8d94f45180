/* `mallet pack [--level N] [-o OUT] TRACE...`: rewrites traces with packed EVENTS chunks (trace
 * format version 4, trace/pack.h), for keeping: every chunk is copied as it is but the events,
 * which are coded again with a model of each thread's heap. The packed file is read back and
 * compared with the original, event by event, before it replaces anything. */
#define _GNU_SOURCE
#include "cli.h"
#include "trace/pack.h"
#include "trace/reader.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void mallet_usage_pack(FILE *out)
{
    fprintf(
        out,
        "usage: mallet pack [--level N] [-o OUT] TRACE...\n\n"
        "Rewrite traces smaller, for keeping: each thread's events are coded again with a\n"
        "model of its heap (a free names its block by its rank among the thread's live\n"
        "blocks, an allocation the recently freed block it reuses) and an adaptive range\n"
        "coder, or by zstd where that is smaller. Every command reads a packed trace as it\n"
        "reads the original (trace format version 4; slower to read: docs/PERFORMANCE.md).\n"
        "Each packed file is read back and compared with its original, event by event,\n"
        "before it replaces the original (or is written to OUT). A TRACE may be a folder:\n"
        "its *.mtrace files (mallet record -o DIR/), each packed in its place.\n\n"
        "options:\n"
        "  --level N   zstd's level (1-19, default 19: the smallest; 3 is several times\n"
        "              faster where zstd wins, and packs CPython's traces ~20%% larger)\n"
        "  -o OUT      write the packed trace to OUT and keep TRACE (one file only)\n"
        "  -h, --help  show this help\n\n"
        "A trace without an end (its process may still be writing it) is packed only with -o.\n\n"
        "Exit status: 0 ok, 1 unreadable, corrupt or already packed trace, 2 usage error.\n");
}

/* Whether the packed file b reads as the original a (ra: a reader of a, not read yet): every
 * record of the merge, field by field. */
static int same_reading(mallet_reader_t *ra, const char *a, const char *b)
{
    const char *pb[] = {b};
    char err[512];
    mallet_reader_t *rb = mallet_reader_open(pb, 1, err, sizeof err);
    if (!rb) return mallet_err("pack: the packed file does not open: %s", err), 0;
    mallet_rec_t x, y;
    uint64_t n = 0;
    int ka, kb, same = 1;
    for (;; n++) {
        ka = mallet_reader_next(ra, &x);
        kb = mallet_reader_next(rb, &y);
        if (ka <= 0 || kb <= 0) break;
        const mallet_event_t *e = &x.ev, *f = &y.ev;
        if (e->op != f->op || e->failed != f->failed || e->tid != f->tid ||
            e->thread != f->thread || e->seq != f->seq || e->cycles != f->cycles ||
            e->free_cycles != f->free_cycles || e->ptr != f->ptr || e->old_ptr != f->old_ptr ||
            e->size != f->size || e->nmemb != f->nmemb || e->align != f->align ||
            e->callsite != f->callsite || e->ret != f->ret || x.part != y.part ||
            x.time_ns != y.time_ns) {
            same = 0;
            break;
        }
    }
    if (ka < 0) { /* the original does not read to its end: what the other commands say */
        mallet_err("%s", mallet_reader_error(ra));
        same = 0;
    } else if (same && ka != kb) {
        same = 0;
    }
    if (!same && ka >= 0) {
        const char *why = kb < 0 ? mallet_reader_error(rb) : "its events differ";
        mallet_err("pack: %s: the packed file does not read as the original at record %" PRIu64
                   " (%s): not written",
                   a, n, why);
    }
    mallet_reader_close(rb);
    return same;
}

/* The temporary file being written, for the handler of a signal that ends mallet (Ctrl-C): it
 * removes the file, then lets the signal end the process as it would have. */
static char *volatile tmp_path;

static void remove_tmp(int sig)
{
    char *p = tmp_path;
    if (p) unlink(p);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Packs in_path into out_path (NULL: in its place). 0, or -1 after saying why. */
static int pack_path(const char *in_path, const char *out_path, int level)
{
    const char *dest = out_path ? out_path : in_path;
    /* The reader checks the file first, so that a corrupt trace gets the reader's message; the
     * same reader then reads it to compare with the packed file. */
    const char *paths[] = {in_path};
    char err[512];
    mallet_reader_t *r = mallet_reader_open(paths, 1, err, sizeof err);
    if (!r) return mallet_err("%s", err), -1;
    const mallet_trace_info_t *info = mallet_reader_info(r, 0);
    int packed = info->version == MALLET_TRACE_VERSION_PACKED;
    /* A trace without an end may still be written by its process, whose recorder would go on
     * writing into the file it has open, which a packed copy put in its place would unlink. */
    int live = !info->ended_cleanly && !info->flushed_dying;
    size_t n = strlen(dest) + 16;
    char *tmp = packed || (live && !out_path) ? NULL : malloc(n);
    if (!tmp) {
        if (packed)
            mallet_err("%s: packed already", in_path);
        else if (live && !out_path)
            mallet_err("%s: no end: its process may still be writing it (pack it with -o, or "
                       "once the process has ended)",
                       in_path);
        else
            mallet_err("out of memory");
        mallet_reader_close(r);
        return -1;
    }
    snprintf(tmp, n, "%s.packXXXXXX", dest); /* beside dest: renamed over it */
    int in = open(in_path, O_RDONLY | O_CLOEXEC);
    int out = in < 0 ? -1 : mkostemp(tmp, O_CLOEXEC); /* 0600, as the recorder makes traces */
    if (out >= 0) tmp_path = tmp;
    mallet_pack_stats_t st;
    int rc = -1;
    if (in < 0)
        mallet_err("%s: %s", in_path, strerror(errno));
    else if (out < 0)
        mallet_err("pack: %s: %s", tmp, strerror(errno));
    else if (mallet_pack_file(in, in_path, out, dest, level, &st, err, sizeof err))
        mallet_err("%s", err);
    else if (fsync(out) && errno != EINVAL)
        mallet_err("pack: %s: %s", tmp, strerror(errno));
    else if (same_reading(r, in_path, tmp))
        rc = rename(tmp, dest) ? mallet_err("pack: %s: %s", dest, strerror(errno)), -1 : 0;
    if (out >= 0) {
        close(out);
        if (rc) unlink(tmp);
        tmp_path = NULL;
    }
    if (in >= 0) close(in);
    mallet_reader_close(r);
    free(tmp);
    if (!rc)
        printf("%s: %" PRIu64 " -> %" PRIu64 " bytes (%.2fx), %" PRIu64 " events packed%s%s\n",
               in_path, st.in_bytes, st.out_bytes,
               st.out_bytes ? (double)st.in_bytes / (double)st.out_bytes : 0.0, st.events,
               out_path ? " into " : "", out_path ? out_path : "");
    return rc;
}

int mallet_cmd_pack(int argc, char **argv)
{
    const char *level_s = NULL, *out = NULL;
    unsigned nlevel = 0, nout = 0, n = 0;
    const mallet_flag_t flags[] = {
        {.name = "--level", .values = &level_s, .count = &nlevel, .max = 1},
        {.name = "-o", .values = &out, .count = &nout, .max = 1},
        {.name = NULL}};
    int done = mallet_cli_parse_traces(argc, argv, "pack", mallet_usage_pack, flags, &n);
    if (done >= 0) return done;
    int level = 19;
    if (level_s) {
        char *end;
        long v = strtol(level_s, &end, 10);
        if (*end || v < 1 || v > 19)
            return mallet_usage_error("pack", "--level takes 1 to 19, not '%s'", level_s);
        level = (int)v;
    }
    /* A file-size limit (ulimit -f) makes a write fail with EFBIG, said as such, rather than
     * kill mallet with SIGXFSZ and leave the temporary file behind. */
    signal(SIGXFSZ, SIG_IGN);
    static const int ending[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < sizeof ending / sizeof *ending; i++)
        if (signal(ending[i], remove_tmp) == SIG_IGN) signal(ending[i], SIG_IGN); /* nohup */
    unsigned count;
    char **paths = mallet_cli_trace_paths(argv, n, &count);
    if (!paths) return MALLET_EXIT_FAIL;
    if (out && count != 1) {
        free(paths);
        return mallet_usage_error("pack", "-o takes one trace file, not %u", count);
    }
    int rc = MALLET_EXIT_OK;
    for (unsigned i = 0; i < count; i++)
        if (pack_path(paths[i], out, level)) rc = MALLET_EXIT_FAIL;
    free(paths);
    if (fflush(stdout)) rc = MALLET_EXIT_FAIL;
    return rc;
}
