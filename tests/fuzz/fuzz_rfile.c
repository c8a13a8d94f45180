/* Fuzz target for the replay-file loader (harness/replay/rfile.c): what the worker does with a
 * replay file before it runs anything. Every input is written to a memfd and opened; every chunk
 * of every thread is read (each op checked); when the streams are small they are also loaded
 * whole and their waits checked, as the worker does. Besides "no crash, no sanitizer report" it
 * checks the loader's promises: a rejected file gives one line that names it; an accepted one
 * has chunks inside the file, in op order, and calls that add up to what its header says or an
 * error saying they do not.
 *
 * Builds as fuzz_reader.c does (README.md): libFuzzer, or -DMALLET_FUZZ_STANDALONE for a main()
 * that mutates seed replay files made by prepare (a cross-thread trace in tiny chunks, every
 * call kind and form) and runs as a short ctest. */
#define _GNU_SOURCE
#include "fuzz.h"
#include "replay/prepare.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static unsigned long stat_opened, stat_read_all;

static void check_error(const char *err)
{
    FUZZ_ASSERT(!strncmp(err, fuzz_path, strlen(fuzz_path)), "error does not name the file: %s", err);
    FUZZ_ASSERT(!strchr(err, '\n'), "error is not one line: %s", err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_load(data, size);
    char err[1024];
    /* the RSS samples are read on their own (by the CLI): never more than the room there is */
    static mallet_rss_sample_t rss[MALLET_RFILE_RSS_MAX];
    uint32_t nrss = 0;
    int rss_ok = mallet_rfile_recorded_rss(fuzz_path, rss, &nrss) == 0;
    FUZZ_ASSERT(nrss <= MALLET_RFILE_RSS_MAX && (rss_ok || !nrss), "%u RSS samples", nrss);
    mallet_rfile_t rf;
    if (mallet_rfile_open(fuzz_path, &rf, err, sizeof err)) {
        check_error(err);
        return 0;
    }
    stat_opened++;
    uint64_t total = 0;
    for (uint32_t t = 0; t < rf.nthreads; t++) total += rf.threads[t].nops + rf.threads[t].nexts;
    FUZZ_ASSERT(total * sizeof(mallet_rop_t) <= size, "%" PRIu64 " ops and extensions in %zu bytes",
                total, size);
    /* a chunk's ops, then its extensions (at most one an op) */
    mallet_rop_t *buf = malloc(((size_t)rf.max_chunk_ops + 1) * 2 * sizeof *buf);
    mallet_rop_t **whole = calloc(rf.nthreads + 1, sizeof *whole);
    mallet_rop_ext_t **wexts = calloc(rf.nthreads + 1, sizeof *wexts);
    FUZZ_ASSERT(buf && whole && wexts, "out of memory");
    uint64_t calls = 0;
    int ok = 1;
    for (uint32_t t = 0; ok && t < rf.nthreads; t++) {
        const mallet_rfile_thread_t *th = &rf.threads[t];
        whole[t] = malloc((th->nops + 1) * sizeof(mallet_rop_t));
        wexts[t] = malloc((th->nexts + 1) * sizeof(mallet_rop_ext_t));
        FUZZ_ASSERT(whole[t] && wexts[t], "out of memory");
        uint64_t next = 0, xnext = 0;
        for (uint64_t k = 0; ok && k < th->nchunks; k++) {
            const mallet_rfile_chunk_t *c = &th->chunks[k];
            FUZZ_ASSERT(c->first == next && c->xfirst == xnext && c->nops <= rf.max_chunk_ops &&
                            c->nexts <= c->nops &&
                            c->offset + ((uint64_t)c->nops + c->nexts) * sizeof *buf <= size,
                        "chunk %" PRIu64 " of thread %u", k, t);
            next += c->nops;
            xnext += c->nexts;
            mallet_rop_ext_t *bx = (mallet_rop_ext_t *)(buf + c->nops);
            int64_t n = mallet_rfile_read_chunk(&rf, t, k, buf, bx, err, sizeof err);
            if (n < 0) {
                check_error(err);
                ok = 0;
                break;
            }
            FUZZ_ASSERT((uint64_t)n <= c->nops, "more calls than ops");
            uint32_t nx = 0;
            for (uint32_t i = 0; i < c->nops; i++) { /* what the worker relies on */
                const mallet_rop_t *o = &buf[i];
                const mallet_rop_ext_t *x = o->kind & MALLET_ROP_EXT ? &bx[nx++] : NULL;
                FUZZ_ASSERT(nx <= c->nexts, "more ops with EXT than extensions");
                FUZZ_ASSERT(x || o->kind == MALLET_OP_MALLOC || o->kind == MALLET_OP_FREE,
                            "kind %u without an extension", o->kind);
                if (mallet_rop_kind(o) == MALLET_ROP_WAIT)
                    FUZZ_ASSERT(x->aux < rf.nthreads && o->slot < rf.threads[x->aux].nops,
                                "a wait past its thread");
                else
                    FUZZ_ASSERT((o->slot == MALLET_NO_SLOT || o->slot < rf.nslots) &&
                                    (!x || mallet_rop_old_slot(o, x) == MALLET_NO_SLOT ||
                                     mallet_rop_old_slot(o, x) < rf.nslots),
                                "a slot past nslots");
            }
            FUZZ_ASSERT(nx == c->nexts, "extensions without an op");
            memcpy(whole[t] + c->first, buf, c->nops * sizeof *buf);
            memcpy(wexts[t] + c->xfirst, bx, c->nexts * sizeof *bx);
            calls += (uint64_t)n;
        }
        if (ok) FUZZ_ASSERT(next == th->nops && xnext == th->nexts, "chunks do not add up");
    }
    if (ok) {
        stat_read_all++;
        if (mallet_rfile_check_waits(&rf, (const mallet_rop_t *const *)whole,
                                     (const mallet_rop_ext_t *const *)wexts, err, sizeof err))
            check_error(err);
    }
    for (uint32_t t = 0; t < rf.nthreads; t++) {
        free(whole[t]);
        free(wexts[t]);
    }
    free(whole);
    free(wexts);
    free(buf);
    mallet_rfile_close(&rf);
    (void)calls;
    return 0;
}

#ifdef MALLET_FUZZ_STANDALONE
#include "fuzz_trace.h"

static blob_t seeds[3];

/* A trace made with the writer (fuzz_trace.h), prepared into a replay file, read back as bytes. */
static void make_seed(blob_t *out, int kind)
{
    char dir[] = "/tmp/mallet-fuzz-rfile.XXXXXX", trace[256], replay[300], err[512];
    if (!mkdtemp(dir)) exit(2);
    snprintf(trace, sizeof trace, "%s/t.mtrace", dir);
    snprintf(replay, sizeof replay, "%s/t.replay", dir);
    fuzz_write_trace(trace, kind);
    const char *paths[] = {trace};
    mallet_reader_t *r = mallet_reader_open(paths, 1, err, sizeof err);
    mallet_rfile_writer_t *rw;
    if (!r || mallet_rfile_create(replay, 1, 2, &rw)) exit(2);
    mallet_prepare_opts_t tiny = {.chunk_ops = 3 + (uint32_t)kind, .buffer_ops = 12, .patch_cap = 2};
    mallet_prepared_t p;
    if (mallet_prepare(r, 0, rw, kind == 1 ? &tiny : NULL, &p, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        exit(2);
    }
    mallet_reader_close(r);
    fuzz_read_file(replay, out);
    unlink(replay);
    unlink(trace);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    fuzz_opts_t o;
    if (fuzz_args(argc, argv, "fuzz_rfile", 0, &o)) return 2;
    for (int s = 0; s < 3; s++) make_seed(&seeds[s], s);
    for (int s = 0; s < 3; s++) {
        LLVMFuzzerTestOneInput(seeds[s].b, seeds[s].len);
        FUZZ_ASSERT(stat_read_all == (unsigned long)s + 1, "seed %d is not read whole", s);
    }
    unsigned long n = fuzz_loop(seeds, 3, o.iters, o.seconds);
    printf("fuzz_rfile: %lu inputs, no failure (%lu opened, %lu read whole)\n", n, stat_opened,
           stat_read_all);
    for (int s = 0; s < 3; s++) free(seeds[s].b);
    return 0;
}
#endif
