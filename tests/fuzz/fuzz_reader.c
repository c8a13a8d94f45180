/* Fuzz target for the trace reader and the event decoder.
 *
 * Every input is used three ways:
 *   1. as an EVENTS payload: mallet_decode_event over the raw bytes, and every event it accepts
 *      must survive encode -> decode unchanged;
 *   2. as a trace file: open, read every record, close (through a memfd, so no temporary files);
 *   3. the same file with its chunk checksums recomputed, so that mutations reach the payload
 *      decoders instead of stopping at the checksums; read alone and merged with itself;
 *   4. each file that opens, through the analyses (`mallet stats` and `mallet check`), which
 *      must end as the reader did, with counts that agree.
 * Besides "no crash, no sanitizer report", it checks what the reader promises: records come in
 * non-decreasing time order, file indexes are in range, errors name the file.
 *
 * Builds:
 *   libFuzzer:  clang -fsanitize=fuzzer,address,undefined (see README.md)
 *   standalone: -DMALLET_FUZZ_STANDALONE gives a main() that mutates seed traces made by the
 *               writer (bit flips, byte values, truncation, insertion, deletion, splices, integer
 *               fields) for a number of iterations, or replays files given on the command line.
 *               It runs as a short ctest without libFuzzer. */
#define _GNU_SOURCE
#include "analyze/stats.h"
#include "fuzz.h"
#include "trace/pack.h"
#include "trace/reader.h"
#include "trace/writer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int ev_same(const mallet_event_t *a, const mallet_event_t *b)
{
    return a->op == b->op && a->failed == b->failed && a->cycles == b->cycles &&
           a->free_cycles == b->free_cycles && a->ptr == b->ptr && a->old_ptr == b->old_ptr &&
           a->size == b->size && a->nmemb == b->nmemb && a->align == b->align &&
           a->callsite == b->callsite && a->ret == b->ret;
}

/* 1: the decoder alone. */
static void decode_raw(const uint8_t *data, size_t size)
{
    mallet_enc_state_t st = {0}, est = {0}, dst = {0};
    const uint8_t *p = data, *end = data + size;
    mallet_event_t ev, back;
    uint8_t buf[MALLET_EVENT_MAX_SIZE];
    while (p < end) {
        const uint8_t *before = p;
        if (mallet_decode_event(&p, end, &st, &ev)) {
            FUZZ_ASSERT(p == before, "a failed decode moved the cursor");
            break;
        }
        FUZZ_ASSERT(p > before && p <= end, "decode consumed %td bytes", p - before);
        FUZZ_ASSERT(ev.op > 0 && ev.op < MALLET_OP_COUNT_, "op %u accepted", ev.op);
        /* Re-encode and decode again: the decoder accepts nothing the encoder cannot say. */
        uint8_t *q = mallet_encode_event(buf, &est, &ev);
        FUZZ_ASSERT(q - buf <= (ptrdiff_t)MALLET_EVENT_MAX_SIZE, "re-encoded to %td", q - buf);
        const uint8_t *r = buf;
        FUZZ_ASSERT(mallet_decode_event(&r, q, &dst, &back) == 0 && r == q,
                    "re-encoded event does not decode");
        FUZZ_ASSERT(ev_same(&ev, &back), "re-encoded %s event differs", mallet_op_name(ev.op));
    }
}

static uint64_t rec_key(const mallet_rec_t *r)
{
    return r->part == MALLET_PART_RELEASE ? r->ev.free_cycles : r->ev.cycles;
}

/* The message names the file, except for the path-less "out of memory". */
static void check_message(const char *msg)
{
    size_t pl = strlen(fuzz_path);
    FUZZ_ASSERT(!strncmp(msg, fuzz_path, pl) && msg[pl] == ':' ? 1 : !strcmp(msg, "out of memory"),
                "message \"%s\"", msg);
}

/* How deep the inputs got, for the standalone runner's summary. */
static unsigned long stat_opened, stat_read_to_end, stat_records;

/* 4: stats and check over what the reader read (read_ok: to its end); a process merged with
 * itself is a fork-free tree of two processes with the same pid. */
static void analyze_all(const char *const *paths, unsigned npaths, int read_ok)
{
    char err[512] = "";
    mallet_reader_t *r = mallet_reader_open(paths, npaths, err, sizeof err);
    FUZZ_ASSERT(r, "the analyses' open failed: %s", err);
    mallet_stats_t st;
    int rc = mallet_stats_compute(r, &st, err, sizeof err);
    mallet_reader_close(r);
    FUZZ_ASSERT((rc == 0) == read_ok || !strcmp(err, "out of memory"), "stats: %d, read %d: %s", rc,
                read_ok, err);
    if (rc == 0) {
        FUZZ_ASSERT(st.alloc_calls + st.free_calls == st.events, "calls do not add up");
        FUZZ_ASSERT(st.temporary_allocs <= st.blocks_freed &&
                        st.cross_thread_frees <= st.blocks_freed,
                    "more temporary or cross-thread blocks than blocks freed");
        uint64_t temporary = 0;
        for (size_t i = 0; i < st.ntop_sites; i++)
            temporary += st.top_sites[i].temporary;
        FUZZ_ASSERT(temporary <= st.temporary_allocs, "sites' temporaries exceed the total");
        json_t *j = mallet_stats_json(&st);
        FUZZ_ASSERT(j, "no JSON");
        json_decref(j);
        mallet_stats_free(&st);
    } else {
        check_message(err);
    }
    r = mallet_reader_open(paths, npaths, err, sizeof err);
    FUZZ_ASSERT(r, "the check's open failed: %s", err);
    mallet_check_t c;
    rc = mallet_check_compute(r, &c, err, sizeof err);
    mallet_reader_close(r);
    FUZZ_ASSERT((rc == 0) == read_ok || !strcmp(err, "out of memory"), "check: %d, read %d: %s", rc,
                read_ok, err);
    if (rc == 0) {
        FUZZ_ASSERT(c.nproblems <= c.problems_total && c.nproblems <= MALLET_CHECK_MAX_PROBLEMS,
                    "problems kept: %zu of %" PRIu64, c.nproblems, c.problems_total);
        mallet_check_free(&c);
    } else {
        check_message(err);
    }
}

/* 2 and 3: the reader over the memfd (npaths copies of it). */
static void read_all(unsigned npaths)
{
    const char *paths[2] = {fuzz_path, fuzz_path};
    char err[512] = "";
    mallet_reader_t *r = mallet_reader_open(paths, npaths, err, sizeof err);
    if (!r) {
        check_message(err);
        return;
    }
    uint64_t events = 0;
    stat_opened++;
    for (unsigned i = 0; i < npaths; i++) {
        const mallet_trace_info_t *in = mallet_reader_info(r, i);
        FUZZ_ASSERT(in && in->file_index == i && in->chunks > 0, "info of file %u", i);
        FUZZ_ASSERT(!in->cut || in->cut_bytes > 0, "cut without cut bytes");
        events += in->events;
        size_t nends;
        const mallet_thread_end_t *e = mallet_reader_thread_ends(r, i, &nends);
        FUZZ_ASSERT(nends == in->threads_exited, "file %u: %zu ends, %u counted", i, nends,
                    in->threads_exited);
        for (size_t k = 0; k < nends; k++)
            FUZZ_ASSERT(e[k].file == i && (k == 0 || e[k - 1].cycles <= e[k].cycles),
                        "file %u: end %zu out of place", i, k);
    }
    /* A second reader through next_run (prepare's entry point: runs of one thread's records,
     * the merge skipped within a run) must yield the same records and end the same way. */
    mallet_reader_t *r2 = mallet_reader_open(paths, npaths, err, sizeof err);
    FUZZ_ASSERT(r2, "the second open failed: %s", err);
    const mallet_rec_t *run = NULL;
    int rc2 = 0, at = 0; /* run[at..rc2) not compared yet */
    mallet_rec_t rec, prev = {0};
    uint64_t n = 0;
    int rc;
    while ((rc = mallet_reader_next(r, &rec)) == 1) {
        if (at == rc2) {
            at = 0;
            rc2 = mallet_reader_next_run(r2, &run);
            FUZZ_ASSERT(rc2 >= 1, "record %" PRIu64 ": next_run ended (%d)", n, rc2);
        }
        const mallet_rec_t *ref = &run[at++];
        FUZZ_ASSERT(ref->file == rec.file && ref->part == rec.part && ev_same(&ref->ev, &rec.ev) &&
                        ref->ev.seq == rec.ev.seq && ref->ev.thread == rec.ev.thread,
                    "record %" PRIu64 " differs in next_run", n);
        FUZZ_ASSERT(ref->file == run->file && ref->ev.thread == run->ev.thread,
                    "record %" PRIu64 ": a run of two threads", n);
        FUZZ_ASSERT(rec.file < npaths, "file %u", rec.file);
        FUZZ_ASSERT(rec.part <= MALLET_PART_ALLOC, "part %u", rec.part);
        if (n) FUZZ_ASSERT(rec_key(&rec) >= rec_key(&prev), "record %" PRIu64 " goes back", n);
        /* A realloc may come twice; nothing else, and nothing not announced by a header. */
        FUZZ_ASSERT(n < 2 * events, "%" PRIu64 " records from %" PRIu64 " events", n + 1, events);
        prev = rec;
        n++;
    }
    stat_records += n;
    /* next drops the record before a corrupt batch (its error comes when the merge moves past
     * it); next_run yields it and fails at the next call */
    int extra = rc2 - at;
    if (!extra && (rc2 = mallet_reader_next_run(r2, &run)) > 0) extra = rc2;
    if (extra) rc2 = mallet_reader_next_run(r2, &run);
    FUZZ_ASSERT(rc2 == rc && extra <= (rc < 0), "next_run ends with %d after %d more, next with %d",
                rc2, extra, rc);
    mallet_reader_close(r2);
    if (rc < 0)
        check_message(mallet_reader_error(r));
    else
        FUZZ_ASSERT(mallet_reader_next(r, &rec) == 0, "the end is not sticky");
    stat_read_to_end += rc == 0;
    mallet_reader_close(r);
    analyze_all(paths, npaths, rc == 0);
}

/* Recomputes every chunk's payload and header hashes in place. Returns 1 if any changed. */
static int fix_checksums(uint8_t *b, size_t size)
{
    int changed = 0;
    uint64_t off = size >= MALLET_FILE_HEADER_SIZE ? mallet_get_u32(b + 12) : size;
    if (off < MALLET_FILE_HEADER_SIZE) off = MALLET_FILE_HEADER_SIZE;
    while (off + MALLET_CHUNK_HEADER_SIZE <= size) {
        uint8_t *h = b + off;
        if (mallet_get_u32(h) != MALLET_CHUNK_MAGIC) break;
        uint32_t disk = mallet_get_u32(h + 16);
        uint64_t poff = off + MALLET_CHUNK_HEADER_SIZE;
        if (disk <= size - poff) {
            uint32_t ph = mallet_hash32(b + poff, disk);
            changed |= mallet_get_u32(h + 72) != ph;
            mallet_put_u32(h + 72, ph);
        }
        uint32_t hh = mallet_hash32(h, 76);
        changed |= mallet_get_u32(h + 76) != hh;
        mallet_put_u32(h + 76, hh);
        off = poff + disk;
    }
    return changed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_raw(data, size);
    fuzz_load(data, size);
    read_all(1);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    if (fix_checksums(copy, size)) {
        fuzz_load(copy, size);
        read_all(1);
    }
    read_all(2); /* a process merged with its own copy: every tie goes to file 0 */
    free(copy);
    return 0;
}

#ifdef MALLET_FUZZ_STANDALONE
/* ---- the standalone runner ------------------------------------------------------------------ */

static blob_t seeds[10];
static unsigned nseeds;

static void add_seed(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END)) exit(2);
    blob_t *sd = &seeds[nseeds++];
    sd->len = (size_t)ftell(f);
    rewind(f);
    sd->b = malloc(sd->len);
    if (!sd->b || fread(sd->b, 1, sd->len, f) != sd->len) exit(2);
    fclose(f);
    unlink(path);
}

/* Seed traces from the writer: raw and zstd, several threads, every op, a MAPS chunk, one
 * cut and one without END; two of them packed (mallet pack: trace/pack.h); two with one thread whose events carry one time for 100 events at a
 * time, in chunks of 150, a mark before each reading (runs longer than a decoding batch, runs
 * that end a chunk, marks: the reader's spreading, docs/TRACE_FORMAT.md 9.3). */
static void make_seeds(void)
{
    char dir[256];
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/mallet-fuzz-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(2);
    }
    for (unsigned s = 0; s < 7; s++) {
        const int one = s >= 5; /* one thread, long runs */
        char path[300];
        snprintf(path, sizeof path, "%s/seed%u.mtrace", dir, s);
        static const char argv0[] = "seed\0-x\0";
        mallet_meta_t m = {.pid = 100 + s,
                           .ppid = 1,
                           .cmdline = argv0,
                           .cmdline_len = sizeof argv0 - 1,
                           .exe = "/bin/seed",
                           .level = s & 1};
        if (s == 6) { /* a forked child of itself: merged with itself, each is the other's
                       * parent, through the fork's window (the analyses' inherited blocks) */
            m.forked = 1, m.ppid = m.pid;
            m.start_cycles = 999000, m.fork_end_cycles = 1000300;
        }
        char err[512];
        mallet_writer_t *w = mallet_writer_open(path, &m, s & 1 ? 3 : 0, err, sizeof err);
        if (!w) {
            fprintf(stderr, "fuzz_reader: %s\n", err);
            exit(2);
        }
        uint64_t now = 1000000;
        unsigned nev = 120 + 100 * s;
        for (unsigned i = 0; i < nev; i++) {
            now += one ? (i % 100 ? 0 : 1 + rnd() % 900) : rnd() % 9;
            mallet_event_t e = {.op = (uint8_t)(1 + rnd() % (MALLET_OP_COUNT_ - 1)),
                                .tid = 7 + (one ? 0 : (uint32_t)(rnd() % 3)),
                                .cycles = now,
                                .size = rnd() >> (rnd() % 64),
                                .nmemb = rnd() % 5,
                                .align = 1ull << (rnd() % 13),
                                .callsite = 0x400000 + rnd() % 512,
                                .ptr = rnd() % 4 ? 0x5555000000ull + 16 * (rnd() % 4096)
                                                 : 0xffff800000000000ull + rnd() % 4096};
            if (e.op == MALLET_OP_REALLOC || e.op == MALLET_OP_REALLOCARRAY) {
                e.old_ptr = rnd() % 3 ? 0x5555000000ull + 16 * (rnd() % 4096) : 0;
                e.free_cycles = now - rnd() % 4;
            }
            if (e.op == MALLET_OP_POSIX_MEMALIGN && rnd() % 3 == 0)
                e.failed = 1, e.ret = ENOMEM, e.ptr = 0;
            if (one && i % 100 == 0 && i && mallet_writer_mark(w, e.tid, now - 1)) exit(2);
            if (mallet_writer_event(w, &e)) exit(2);
            if (i % (one ? 150 : 37) == (one ? 149u : 36u) && mallet_writer_flush(w)) exit(2);
            if (i == 60 && mallet_writer_maps(w, "00400000-00401000 r-xp 0 0:0 0 /bin/seed\n", 41))
                exit(2);
        }
        if (mallet_writer_close(w, s != 2)) exit(2);
        if (s == 1 || s == 5) {
            char packed[320];
            snprintf(packed, sizeof packed, "%s.packed", path);
            int in = open(path, O_RDONLY), out = open(packed, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            mallet_pack_stats_t st;
            if (in < 0 || out < 0 || mallet_pack_file(in, path, out, packed, 3, &st, err, sizeof err)) {
                fprintf(stderr, "fuzz_reader: cannot pack a seed: %s\n", err);
                exit(2);
            }
            close(in);
            close(out);
            add_seed(packed);
        }
        add_seed(path);
        blob_t *sd = &seeds[nseeds - 1];
        if (s == 3) sd->len -= sd->len / 7; /* cut inside a chunk */
    }
    rmdir(dir);
}

static const uint64_t interesting[] = {
    0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0xffffffff, 64u << 20, (64u << 20) + 1, 80, 16};

/* Applies 1..4 random mutations to b (capacity cap); returns the new length. */
static size_t mutate(uint8_t *b, size_t len, size_t cap)
{
    unsigned k = 1 + (unsigned)below(4);
    while (k--) {
        if (len > cap) len = cap; /* never true; lets gcc bound the sizes below */
        switch (below(9)) {
        case 0: /* bit flip */
            if (len) b[below(len)] ^= (uint8_t)(1u << below(8));
            break;
        case 1: /* random byte */
            if (len) b[below(len)] = (uint8_t)rnd();
            break;
        case 2: /* interesting byte */
            if (len) b[below(len)] = (uint8_t)interesting[below(5)];
            break;
        case 3: /* truncate */
            len = below(len + 1);
            break;
        case 4: { /* insert random bytes */
            size_t n = 1 + below(16), at = below(len + 1), tail = len - at;
            if (n > cap - len) break;
            memmove(b + at + n, b + at, tail);
            for (size_t i = 0; i < n; i++)
                b[at + i] = (uint8_t)rnd();
            len += n;
            break;
        }
        case 5: { /* delete a range */
            if (!len) break;
            size_t at = below(len), n = 1 + below(len - at);
            if (at + n > len) break; /* cannot happen; tells the compiler so */
            memmove(b + at, b + at + n, len - at - n);
            len -= n;
            break;
        }
        case 6: { /* splice: our prefix, another seed's suffix */
            const blob_t *o = &seeds[below(nseeds)];
            size_t at = below(len + 1), from = below(o->len + 1);
            size_t n = o->len - from;
            if (at + n > cap) n = cap - at;
            memcpy(b + at, o->b + from, n);
            len = at + n;
            break;
        }
        case 7: { /* a 32-bit little-endian field set to an interesting value */
            if (len < 4) break;
            size_t at = below(len - 3);
            mallet_put_u32(
                b + at, (uint32_t)interesting[below(sizeof interesting / sizeof interesting[0])]);
            break;
        }
        case 8: { /* copy a range inside the input (repeats chunks, events) */
            if (!len) break;
            size_t from = below(len), n = 1 + below(len - from), at = below(len + 1);
            size_t tail = len - at;
            if (n > cap - len) break;
            memmove(b + at + n, b + at, tail);
            memmove(b + at, b + (from >= at ? from + n : from), n);
            len += n;
            break;
        }
        }
    }
    return len;
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return perror(path), 2;
    uint8_t *b = NULL;
    size_t len = 0, cap = 0, n;
    uint8_t tmp[65536];
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) {
        if (len + n > cap && !(b = realloc(b, cap = 2 * (len + n)))) return 2;
        memcpy(b + len, tmp, n);
        len += n;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(b, len);
    free(b);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: fuzz_reader [-n ITERATIONS] [-s SEED] [-t SECONDS] [-o CRASH_FILE]\n"
                    "       fuzz_reader --seeds DIR   (write the seed traces, for libFuzzer)\n"
                    "       fuzz_reader FILE...       (run these inputs once each)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    unsigned long iters = 2000;
    double seconds = 0;
    const char *crash = "fuzz_reader-crash.mtrace";
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i += 2) {
        if (i + 1 >= argc) usage();
        if (!strcmp(argv[i], "-n"))
            iters = strtoul(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "-s"))
            rng = strtoull(argv[i + 1], NULL, 0) | 1;
        else if (!strcmp(argv[i], "-t"))
            seconds = strtod(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "-o"))
            crash = argv[i + 1];
        else if (!strcmp(argv[i], "--seeds")) {
            make_seeds();
            for (unsigned s = 0; s < nseeds; s++) {
                char path[4096];
                snprintf(path, sizeof path, "%s/seed%u.mtrace", argv[i + 1], s);
                FILE *f = fopen(path, "wb");
                if (!f || fwrite(seeds[s].b, 1, seeds[s].len, f) != seeds[s].len || fclose(f))
                    return perror(path), 2;
            }
            return 0;
        } else
            usage();
    }
    if (i < argc) {
        for (; i < argc; i++)
            if (run_file(argv[i])) return 2;
        return 0;
    }
    make_seeds();
    for (unsigned s = 0; s < nseeds; s++)
        LLVMFuzzerTestOneInput(seeds[s].b, seeds[s].len);
    size_t cap = 1 << 20;
    uint8_t *b = malloc(cap), *keep = malloc(cap);
    if (!b || !keep) return 2;
    size_t keep_len = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long it;
    for (it = 0; it < iters; it++) {
        size_t len;
        if (keep_len && below(4) == 0) { /* keep mutating the last input a while */
            memcpy(b, keep, keep_len);
            len = keep_len;
        } else {
            const blob_t *s = &seeds[below(nseeds)];
            memcpy(b, s->b, s->len);
            len = s->len;
        }
        len = mutate(b, len, cap);
        memcpy(keep, b, len);
        keep_len = len;
        /* Saved before the run: if it crashes, the input is on disk to replay. */
        FILE *f = fopen(crash, "wb");
        if (f) {
            if (fwrite(b, 1, len, f) != len) perror(crash);
            fclose(f);
        }
        LLVMFuzzerTestOneInput(b, len);
        if (fuzz_time_up(it, &t0, seconds)) break;
    }
    unlink(crash);
    printf("fuzz_reader: %lu inputs, no failure (%lu opened, %lu read to the end, %lu records)\n",
           it < iters ? it + 1 : it, stat_opened, stat_read_to_end, stat_records);
    free(b);
    free(keep);
    for (unsigned s = 0; s < nseeds; s++)
        free(seeds[s].b);
    return 0;
}
#endif
