/* Fuzz target for the conversion (harness/replay/prepare.c): whatever trace the reader accepts,
 * prepare must either say what is wrong in one line naming the trace, or make a replay file that
 * passes every check the worker makes before it runs (rfile.c: slots, kinds, extensions, waits
 * on published ops, no two threads waiting for each other, even with no more threads at once than
 * the file's concurrency) and whose calls add up to its header's. Each input is a trace (a memfd),
 * prepared with tiny buffers so that chunks, flushes and patches of ops already written happen in
 * small inputs. Unlike fuzz_rfile (damaged replay files must be refused), here a replay file that
 * fails a check is a bug in prepare.
 *
 * Builds as fuzz_reader.c does (README.md): libFuzzer, or -DMALLET_FUZZ_STANDALONE for a main()
 * that mutates traces made with the writer (fuzz_trace.h) and runs as a short ctest. */
#define _GNU_SOURCE
#include "fuzz.h"
#include "replay/prepare.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>

static unsigned long stat_prepared, stat_ops, stat_pooled;
static char replay_path[64];

/* Reads the replay file back as the worker does with every stream in memory; any failure is
 * prepare's. */
static void check_replay_file(uint64_t trace_ops)
{
    char err[1024];
    mallet_rfile_t rf;
    FUZZ_ASSERT(mallet_rfile_open(replay_path, &rf, err, sizeof err) == 0, "%s", err);
    FUZZ_ASSERT(rf.info.ops == trace_ops, "header: %" PRIu64 " calls, prepare said %" PRIu64,
                rf.info.ops, trace_ops);
    mallet_rop_t **ops = calloc(rf.nthreads + 1, sizeof *ops);
    mallet_rop_ext_t **exts = calloc(rf.nthreads + 1, sizeof *exts);
    FUZZ_ASSERT(ops && exts, "out of memory");
    uint64_t calls = 0;
    for (uint32_t t = 0; t < rf.nthreads; t++) {
        const mallet_rfile_thread_t *th = &rf.threads[t];
        ops[t] = malloc((th->nops + 1) * sizeof **ops);
        exts[t] = malloc((th->nexts + 1) * sizeof **exts);
        FUZZ_ASSERT(ops[t] && exts[t], "out of memory");
        for (uint64_t k = 0; k < th->nchunks; k++) {
            int64_t n = mallet_rfile_read_chunk(&rf, t, k, ops[t] + th->chunks[k].first,
                                                exts[t] + th->chunks[k].xfirst, err, sizeof err);
            FUZZ_ASSERT(n >= 0, "%s", err);
            calls += (uint64_t)n;
        }
    }
    FUZZ_ASSERT(calls == rf.info.ops, "%" PRIu64 " calls in the chunks, %" PRIu64 " in the header",
                calls, rf.info.ops);
    FUZZ_ASSERT(mallet_rfile_check_waits(&rf, (const mallet_rop_t *const *)ops,
                                         (const mallet_rop_ext_t *const *)exts, err,
                                         sizeof err) == 0,
                "%s", err);
    stat_ops += calls;
    stat_pooled += rf.info.concurrency < rf.nthreads; /* the waits ran with fewer at once */
    for (uint32_t t = 0; t < rf.nthreads; t++)
        free(ops[t]), free(exts[t]);
    free(ops);
    free(exts);
    mallet_rfile_close(&rf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!replay_path[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(replay_path, sizeof replay_path, "%s/mallet-fuzz-prepare-%d.replay",
                 t && *t && strlen(t) < 20 ? t : "/tmp", (int)getpid());
    }
    fuzz_load(data, size);
    char err[1024];
    const char *paths[] = {fuzz_path};
    mallet_reader_t *r = mallet_reader_open(paths, 1, err, sizeof err);
    if (!r) return 0; /* the reader's own fuzzer looks at its refusals */
    mallet_rfile_writer_t *w;
    FUZZ_ASSERT(mallet_rfile_create(replay_path, 1, 2, &w) == 0, "cannot create %s", replay_path);
    mallet_prepare_opts_t tiny = {.chunk_ops = 3, .buffer_ops = 8, .patch_cap = 2};
    mallet_prepared_t p;
    int rc = mallet_prepare(r, 0, w, size % 2 ? &tiny : NULL, &p, err, sizeof err);
    mallet_reader_close(r);
    if (rc) {
        FUZZ_ASSERT(!strncmp(err, fuzz_path, strlen(fuzz_path)) && !strchr(err, '\n'),
                    "prepare's error is not one line naming the trace: %s", err);
        return 0;
    }
    stat_prepared++;
    check_replay_file(p.ops);
    unlink(replay_path);
    return 0;
}

#ifdef MALLET_FUZZ_STANDALONE
#include "fuzz_trace.h"

int main(int argc, char **argv)
{
    fuzz_opts_t o;
    if (fuzz_args(argc, argv, "fuzz_prepare", 1, &o)) return 2;
    blob_t seeds[4];
    char dir[] = "/tmp/mallet-fuzz-prepare.XXXXXX", path[64];
    if (!mkdtemp(dir)) return 2;
    snprintf(path, sizeof path, "%s/t.mtrace", dir);
    for (int s = 0; s < 4; s++) { /* the trace's bytes */
        fuzz_write_trace(path, s);
        fuzz_read_file(path, &seeds[s]);
    }
    unlink(path);
    rmdir(dir);
    int rc = 0;
    if (o.seeds) {
        rc = fuzz_write_seeds(o.seeds, seeds, 4);
    } else {
        for (int s = 0; s < 4; s++)
            LLVMFuzzerTestOneInput(seeds[s].b, seeds[s].len);
        FUZZ_ASSERT(stat_prepared == 4, "%lu of the 4 seeds prepared", stat_prepared);
        unsigned long n = fuzz_loop(seeds, 4, o.iters, o.seconds);
        printf("fuzz_prepare: %lu inputs, no failure (%lu prepared, %lu of them with fewer threads "
               "at once than threads; %lu calls)\n",
               n, stat_prepared, stat_pooled, stat_ops);
    }
    for (int s = 0; s < 4; s++)
        free(seeds[s].b);
    return rc;
}
#endif
