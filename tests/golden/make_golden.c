/* Generator of the golden traces in tests/golden, and the check that the encoder still produces
 * them byte for byte.
 *
 *   make_golden DIR          writes DIR/basic.mtrace (raw chunks, ended cleanly),
 *                            DIR/basic-zstd.mtrace (the same events, zstd level 3) and
 *                            DIR/basic-cut.mtrace (raw, no END, cut in the middle of its last
 *                            chunk, as a crash leaves it), DIR/basic-packed.mtrace (basic.mtrace
 *                            packed: trace format version 4, docs/TRACE_FORMAT.md 13)
 *   make_golden --check DIR  regenerates the raw and packed traces in a temporary directory and
 *                            fails unless they equal DIR/basic.mtrace, DIR/basic-cut.mtrace and
 *                            DIR/basic-packed.mtrace byte for byte (the zstd one is not compared: its bytes belong to the zstd
 *                            version; golden_check still pins how it decodes)
 *
 * Regenerating on purpose (after a deliberate format change, with a version bump):
 *   build/make_golden tests/golden
 *   for t in basic basic-zstd basic-cut basic-packed; do
 *       build/golden_check --write tests/golden/$t.expected tests/golden/$t.mtrace; done
 *   build/golden_check --write tests/golden/merged.expected \
 *       tests/golden/basic.mtrace tests/golden/basic-zstd.mtrace
 * then review the diff of the .expected files: it is the change every reader of old traces sees.
 *
 * Determinism: the writer fills each chunk header's clock pair from the real clocks, so after
 * writing, every header's (clock_cycles, clock_ns) is replaced by a fixed pair (chunk i:
 * 10^10 + 2*10^6*(i+1) cycles at 5*10^9 + 10^6*(i+1) ns, i.e. 0.5 ns a cycle) and the header hash
 * recomputed. Everything else comes from the fixed script below.
 *
 * The script avoids two shapes whose reading depends on fixes proposed for the writer and the
 * reader (a chunk whose first event is a realloc of a live block; a thread whose clock steps back
 * across a chunk boundary), so that these files stay valid either way. test_format covers both. */
#define _GNU_SOURCE
#include "trace/pack.h"
#include "trace/reader.h"
#include "trace/writer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define BASE_CYCLES 10000000000ull
#define BASE_NS 5000000000ull

static void die(const char *what, const char *path)
{
    fprintf(stderr, "make_golden: %s: %s\n", path, what);
    exit(1);
}

/* ---- the script ------------------------------------------------------------------------------ */

static mallet_writer_t *w;
static uint64_t now = BASE_CYCLES + 1000;

static void ev(mallet_event_t e)
{
    if (mallet_writer_event(w, &e)) die("write failed", "event");
}

/* The script's threads. Each step advances `now` in its own statement: the expressions of one
 * initializer list are not sequenced, so `now` is never both changed and read inside one. */
#define T0 4242u
#define T1 4250u
#define T2 4251u

/* One call a line, like a table: not reflowed. */
/* clang-format off */
static void script(void)
{
    const uint64_t heap = 0x5555a0000000ull, wide = 0xffff900000001000ull;
    /* Thread 0: one of each allocation call, a realloc of a live block, frees. */
    now += 10;
    ev((mallet_event_t){.tid = T0, .op = MALLET_OP_MALLOC, .cycles = now, .size = 24,
                        .ptr = heap + 0x10, .callsite = 0x401100});
    now += 10;
    ev((mallet_event_t){.tid = T0, .op = MALLET_OP_CALLOC, .cycles = now, .nmemb = 4,
                        .size = 32, .ptr = heap + 0x30, .callsite = 0x401180});
    now += 20;
    ev((mallet_event_t){.tid = T0, .op = MALLET_OP_REALLOC, .cycles = now,
                        .free_cycles = now - 7, .old_ptr = heap + 0x10, .size = 100,
                        .ptr = heap + 0x100, .callsite = 0x4010f0}); /* callsite goes down */
    now += 10;
    ev((mallet_event_t){.tid = T0, .op = MALLET_OP_REALLOC, .cycles = now,
                        .free_cycles = now - 3, .old_ptr = 0, .size = 8, .ptr = heap + 0x200,
                        .callsite = 0x4011f0}); /* realloc(NULL, 8): one record */
    now += 10;
    ev((mallet_event_t){.tid = T0, .op = MALLET_OP_REALLOCARRAY, .cycles = now,
                        .free_cycles = now - 2, .old_ptr = heap + 0x200, .nmemb = 3, .size = 40,
                        .ptr = heap + 0x300, .callsite = 0x401200});
    now += 10;
    ev((mallet_event_t){.tid = T0, .op = MALLET_OP_POSIX_MEMALIGN, .cycles = now,
                        .align = 64, .size = 200, .ptr = heap + 0x400, .callsite = 0x401210});
    now += 10;
    ev((mallet_event_t){.tid = T0, .op = MALLET_OP_POSIX_MEMALIGN, .failed = 1,
                        .cycles = now, .align = 3, .size = 200, .ret = EINVAL,
                        .callsite = 0x401220});
    now += 10;
    ev((mallet_event_t){.tid = T0, .op = MALLET_OP_POSIX_MEMALIGN, .failed = 1,
                        .cycles = now, .align = 4096, .size = 1ull << 62, .ret = ENOMEM,
                        .callsite = 0x401230});
    now += 10;
    ev((mallet_event_t){.tid = T0, .op = MALLET_OP_ALIGNED_ALLOC, .cycles = now,
                        .align = 128, .size = 256, .ptr = heap + 0x600, .callsite = 0x401240});
    now += 10;
    ev((mallet_event_t){.tid = T0, .op = MALLET_OP_MEMALIGN, .cycles = now, .align = 32,
                        .size = 33, .ptr = heap + 0x800, .callsite = 0x401250});
    /* a mark (version 3): the memalign before it is given its time, now + 5 */
    if (mallet_writer_mark(w, T0, now + 5)) die("write failed", "mark");
    now += 10;
    ev((mallet_event_t){.tid = T0, .op = MALLET_OP_VALLOC, .cycles = now, .size = 5000,
                        .ptr = heap + 0x2000, .callsite = 0x401260});
    now += 10;
    ev((mallet_event_t){.tid = T0, .op = MALLET_OP_PVALLOC, .cycles = now, .size = 5000,
                        .ptr = heap + 0x4000, .callsite = 0x401270});
    /* Thread 1 starts at the same cycle count as thread 0's last event: a tie. */
    ev((mallet_event_t){.tid = T1, .op = MALLET_OP_MALLOC, .cycles = now, .size = 1ull << 40,
                        .failed = 1, .callsite = 0x402000}); /* a failed malloc */
    now += 5;
    ev((mallet_event_t){.tid = T1, .op = MALLET_OP_MALLOC, .cycles = now, .size = 64,
                        .ptr = wide, .callsite = 0x402010}); /* a WIDE pointer */
    now += 5;
    ev((mallet_event_t){.tid = T1, .op = MALLET_OP_FREE, .cycles = now, .ptr = heap + 0x30,
                        .callsite = 0x402020}); /* frees thread 0's calloc */
    ev((mallet_event_t){.tid = T1, .op = MALLET_OP_FREE, .cycles = now, .ptr = 0,
                        .callsite = 0x402020}); /* free(NULL), at the same time: SAME_TIME */
    now += 14;
    ev((mallet_event_t){.tid = T1, .op = MALLET_OP_REALLOC, .cycles = now,
                        .free_cycles = now - 4, .old_ptr = wide, .size = 128,
                        .ptr = heap + 0x5000, .callsite = 0x402030}); /* WIDE old pointer only */
    now += 5;
    ev((mallet_event_t){.tid = T1, .op = MALLET_OP_RSS, .cycles = now, .size = 3 << 20});
    if (mallet_writer_flush(w)) die("flush failed", "script");

    static const char maps[] =
        "555555554000-555555556000 r-xp 00000000 08:01 42 /usr/local/bin/prog\n"
        "7ffff7dd3000-7ffff7dfc000 r-xp 00000000 08:01 7 /lib/ld.so\n";
    if (mallet_writer_maps(w, maps, sizeof maps - 1)) die("maps failed", "script");

    /* Thread 2: its clock steps back inside one chunk (the reader clamps it). */
    now += 10;
    ev((mallet_event_t){.tid = T2, .op = MALLET_OP_MALLOC, .cycles = now, .size = 7,
                        .ptr = heap + 0x6000, .callsite = 0x403000});
    ev((mallet_event_t){.tid = T2, .op = MALLET_OP_MALLOC, .cycles = now - 6, .size = 9,
                        .ptr = heap + 0x6020, .callsite = 0x403000});
    now += 3;
    ev((mallet_event_t){.tid = T2, .op = MALLET_OP_FREE, .cycles = now, .ptr = heap + 0x6000,
                        .callsite = 0x403010});

    /* Filler from a fixed LCG: volume for zstd, several chunks per thread. */
    uint64_t x = 12345;
    uint64_t live[3][16] = {{0}};
    for (unsigned i = 0; i < 120; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        unsigned t = (unsigned)(x >> 60) % 3, slot = (unsigned)(x >> 50) % 16;
        uint32_t tid = t == 0 ? T0 : t == 1 ? T1 : T2;
        now += (x >> 40) % 4; /* steps of 0 make ties */
        uint64_t site = 0x404000 + ((x >> 20) % 8) * 0x10;
        if (live[t][slot]) {
            ev((mallet_event_t){.tid = tid, .op = MALLET_OP_FREE, .cycles = now,
                                .ptr = live[t][slot], .callsite = site});
            live[t][slot] = 0;
        } else {
            live[t][slot] = heap + 0x10000 + 0x1000 * (16 * t + slot) + 0x10 * (i % 7);
            ev((mallet_event_t){.tid = tid, .op = MALLET_OP_MALLOC, .cycles = now,
                                .size = 16 + (x >> 30) % 500, .ptr = live[t][slot],
                                .callsite = site});
        }
        if (i == 59) {
            if (mallet_writer_flush(w)) die("flush failed", "script");
        }
    }

    /* Thread ends: thread 2's with nothing left to write (an empty THREAD_EXIT chunk), then
     * thread 1's with its last events; thread 0 lives to the end of the process. */
    if (mallet_writer_flush(w)) die("flush failed", "script");
    now += 4;
    if (mallet_writer_thread_exit(w, T2, now)) die("thread exit failed", "script");
    now += 2;
    ev((mallet_event_t){.tid = T1, .op = MALLET_OP_MALLOC, .cycles = now, .size = 48,
                        .ptr = heap + 0x7000, .callsite = 0x402040});
    now += 2;
    ev((mallet_event_t){.tid = T1, .op = MALLET_OP_FREE, .cycles = now, .ptr = heap + 0x7000,
                        .callsite = 0x402050});
    now += 9; /* idle before it ends */
    if (mallet_writer_thread_exit(w, T1, now)) die("thread exit failed", "script");
}

/* clang-format on */

/* ---- writing, pinning the clocks, cutting ---------------------------------------------------- */

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) die(strerror(errno), path);
    if (fseek(f, 0, SEEK_END)) die("seek failed", path);
    long n = ftell(f);
    rewind(f);
    uint8_t *b = malloc((size_t)n + 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) die("read failed", path);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spit(const char *path, const uint8_t *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, len, f) != len || fclose(f)) die("write failed", path);
}

/* Rewrites every chunk header's clock pair to the fixed one; returns the offset of the last
 * chunk (for the cut). */
static size_t pin_clocks(uint8_t *b, size_t len, const char *path)
{
    size_t off = MALLET_FILE_HEADER_SIZE, last = off;
    for (unsigned i = 0; off < len; i++) {
        mallet_chunk_header_t h;
        if (len - off < MALLET_CHUNK_HEADER_SIZE || mallet_chunk_header_unpack(b + off, &h))
            die("the writer wrote a bad chunk header", path);
        h.clock_cycles = BASE_CYCLES + 2000000ull * (i + 1);
        h.clock_ns = BASE_NS + 1000000ull * (i + 1);
        mallet_chunk_header_pack(b + off, &h);
        last = off;
        off += MALLET_CHUNK_HEADER_SIZE + h.disk_size;
    }
    if (off != len) die("the writer wrote a cut file", path);
    return last;
}

static void generate(const char *dir, const char *name, int level, int clean_end, int cut)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    static const char argv0[] = "prog\0--size\0"
                                "128\0"; /* split: "\0128" is octal */
    mallet_meta_t meta = {.pid = 4242,
                          .ppid = 4241,
                          .start_realtime_ns = 1700000000123456789ull,
                          .start_ns = BASE_NS,
                          .start_cycles = BASE_CYCLES,
                          .cmdline = argv0,
                          .cmdline_len = sizeof argv0 - 1,
                          .exe = "/usr/local/bin/prog",
                          .forked = 0,
                          .level = level,
                          .thread_exits = 1};
    char err[512];
    now = BASE_CYCLES + 1000;
    w = mallet_writer_open(path, &meta, level, err, sizeof err);
    if (!w) die(err, path);
    script();
    if (mallet_writer_close(w, clean_end)) die("close failed", path);
    size_t len;
    uint8_t *b = slurp(path, &len);
    size_t last = pin_clocks(b, len, path);
    if (cut) { /* half of the last chunk's payload survives */
        mallet_chunk_header_t h;
        mallet_chunk_header_unpack(b + last, &h);
        len = last + MALLET_CHUNK_HEADER_SIZE + h.disk_size / 2;
    }
    spit(path, b, len);
    free(b);
}

/* basic-packed.mtrace: basic.mtrace packed (mallet pack). Its chunks all take the model's form,
 * none zstd's, so its bytes do not depend on zstd's version either. */
static void generate_packed(const char *dir)
{
    char in_path[4096], out_path[4096], err[512];
    snprintf(in_path, sizeof in_path, "%s/basic.mtrace", dir);
    snprintf(out_path, sizeof out_path, "%s/basic-packed.mtrace", dir);
    int in = open(in_path, O_RDONLY), out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    mallet_pack_stats_t st;
    if (in < 0 || out < 0) die(strerror(errno), out_path);
    if (mallet_pack_file(in, in_path, out, out_path, 3, &st, err, sizeof err)) die(err, out_path);
    close(in);
    close(out);
}

static void generate_all(const char *dir, int with_zstd)
{
    generate(dir, "basic.mtrace", 0, 1, 0);
    generate_packed(dir);
    generate(dir, "basic-cut.mtrace", 0, 0, 1);
    if (with_zstd) generate(dir, "basic-zstd.mtrace", 3, 1, 0);
}

static int compare(const char *want_dir, const char *got_dir, const char *name)
{
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/%s", want_dir, name);
    snprintf(b, sizeof b, "%s/%s", got_dir, name);
    size_t la, lb;
    uint8_t *x = slurp(a, &la), *y = slurp(b, &lb);
    size_t i = 0;
    while (i < la && i < lb && x[i] == y[i])
        i++;
    int same = la == lb && i == la;
    if (!same)
        fprintf(stderr,
                "FAIL: %s:%d: %s: the encoder now writes different bytes (first difference at "
                "offset %zu; %zu bytes checked in, %zu written). If the change is deliberate, "
                "bump the format version and regenerate (see make_golden.c).\n",
                __FILE__, __LINE__, a, i, la, lb);
    free(x);
    free(y);
    unlink(b);
    return same;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--check")) {
        const char *t = getenv("TMPDIR");
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s/mallet-golden-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmp)) die(strerror(errno), tmp);
        generate_all(tmp, 0);
        int ok = compare(argv[2], tmp, "basic.mtrace");
        ok &= compare(argv[2], tmp, "basic-cut.mtrace");
        ok &= compare(argv[2], tmp, "basic-packed.mtrace");
        rmdir(tmp);
        return ok ? 0 : 1;
    }
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: make_golden DIR | make_golden --check DIR\n");
        return 2;
    }
    generate_all(argv[1], 1);
    return 0;
}
