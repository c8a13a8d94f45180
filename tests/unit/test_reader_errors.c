/* Reader robustness: every bad input is refused with a message that starts with the file's path
 * and says what is wrong, and nothing crashes. A trace cut at any byte (a crash mid-write) yields
 * exactly the events of its complete chunks and says it was cut.
 *
 * Usage: test_reader_errors. Exits 0 on success; prints "FAIL: file:line: what" and exits 1 on
 * the first failure. Files go to a private directory under $TMPDIR (or /tmp), removed at exit. */
#define _GNU_SOURCE
#include "trace/pack.h"
#include "trace/reader.h"
#include "trace/writer.h"
#include "platform/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- scaffolding ----------------------------------------------------------------------------- */

#include "format_test.h"

/* The message must start with "PATH: " and contain what. */
static void check_msg(const char *msg, const char *path, const char *what, int line)
{
    size_t pl = strlen(path);
    if (strncmp(msg, path, pl) || strncmp(msg + pl, ": ", 2) || !strstr(msg + pl, what)) {
        fprintf(stderr, "FAIL: %s:%d: message \"%s\" should be \"%s: ...%s...\"\n", __FILE__, line,
                msg, path, what);
        exit(1);
    }
}

/* Opening must fail with a message about path that contains what. */
static void open_fails_at(const char *const *paths, unsigned n, const char *path, const char *what,
                          int line)
{
    char err[512];
    memset(err, 0, sizeof err);
    mallet_reader_t *r = mallet_reader_open(paths, n, err, sizeof err);
    if (r) {
        fprintf(stderr, "FAIL: %s:%d: %s opened, expected \"%s\"\n", __FILE__, line, path, what);
        mallet_reader_close(r); /* no leak report on top of the failure */
        exit(1);
    }
    check_msg(err, path, what, line);
}
#define OPEN_FAILS(path, what)                                                                     \
    do {                                                                                           \
        const char *p_[] = {path};                                                                 \
        open_fails_at(p_, 1, path, what, __LINE__);                                                \
    } while (0)

/* Opening succeeds, then reading must fail (-1) with a message about path containing what. */
static void read_fails_at(const char *path, const char *what, int line)
{
    char err[512] = "";
    const char *paths[] = {path};
    mallet_reader_t *r = mallet_reader_open(paths, 1, err, sizeof err);
    if (!r) {
        fprintf(stderr, "FAIL: %s:%d: open failed (%s), expected a read error \"%s\"\n", __FILE__,
                line, err, what);
        exit(1);
    }
    mallet_rec_t rec;
    int rc;
    while ((rc = mallet_reader_next(r, &rec)) == 1)
        continue;
    if (rc != -1) {
        fprintf(stderr, "FAIL: %s:%d: %s read to the end, expected \"%s\"\n", __FILE__, line, path,
                what);
        exit(1);
    }
    check_msg(mallet_reader_error(r), path, what, line);
    mallet_reader_close(r);
}
#define READ_FAILS(path, what) read_fails_at(path, what, __LINE__)

/* ---- a multi-chunk trace and its map --------------------------------------------------------- */

typedef struct chunk_span {
    uint64_t start, end; /* of the whole chunk, header included */
    mallet_chunk_header_t h;
} chunk_span_t;

/* Walks the chunk headers of a valid file. */
static size_t map_chunks(const uint8_t *b, size_t len, chunk_span_t *out, size_t cap)
{
    size_t n = 0;
    uint64_t off = MALLET_FILE_HEADER_SIZE;
    while (off < len) {
        CHECK(n < cap && len - off >= MALLET_CHUNK_HEADER_SIZE);
        out[n].start = off;
        CHECK(mallet_chunk_header_unpack(b + off, &out[n].h) == 0);
        off += MALLET_CHUNK_HEADER_SIZE + out[n].h.disk_size;
        CHECK(off <= len);
        out[n].end = off;
        n++;
    }
    return n;
}

static const char cmdline[] = "victim\0-v\0";
static const char maps[] = "00400000-00401000 r-xp 00000000 08:01 1 /usr/bin/victim\n";

/* A small trace with many chunks: 3 threads flushed every 60 events, a MAPS chunk in the
 * middle, an END. All ops appear, reallocs included (they are yielded in two parts). The events
 * are regular enough for zstd to shrink most EVENTS chunks at level 3. */
static void make_trace(const char *path, int level, int clean_end)
{
    mallet_meta_t m = {.pid = 321,
                       .ppid = 1,
                       .cmdline = cmdline,
                       .cmdline_len = sizeof cmdline - 1,
                       .exe = "/usr/bin/victim",
                       .level = level};
    char err[512] = "";
    mallet_writer_t *w = mallet_writer_open(path, &m, level, err, sizeof err);
    CHECKF(w, "%s", err);
    uint64_t t = 1000000;
    for (unsigned i = 0; i < 480; i++) {
        t += 1 + rnd() % 7;
        mallet_event_t e = {.op = (uint8_t)(1 + i % 11),
                            .tid = 50 + (uint32_t)(rnd() % 3),
                            .cycles = t,
                            .size = 16 + 16 * (i % 8),
                            .ptr = 0x10000 + 32 * i,
                            .callsite = 0x400000 + 0x10 * (i % 4)};
        switch (e.op) {
        case MALLET_OP_REALLOC:
        case MALLET_OP_REALLOCARRAY:
            e.old_ptr = 0x10000 + 32 * (i / 2);
            e.free_cycles = t;
            e.nmemb = e.op == MALLET_OP_REALLOCARRAY ? 3 : 0;
            break;
        case MALLET_OP_CALLOC:
            e.nmemb = 2;
            break;
        case MALLET_OP_POSIX_MEMALIGN:
        case MALLET_OP_MEMALIGN:
        case MALLET_OP_ALIGNED_ALLOC:
            e.align = 64;
            break;
        case MALLET_OP_RSS:
            e.ptr = 0, e.callsite = 0;
            break;
        default:
            break;
        }
        CHECK(mallet_writer_event(w, &e) == 0);
        if (i % 60 == 59) CHECK(mallet_writer_flush(w) == 0);
        if (i == 200) CHECK(mallet_writer_maps(w, maps, sizeof maps - 1) == 0);
    }
    CHECK(mallet_writer_close(w, clean_end) == 0);
}

/* ---- the cases ------------------------------------------------------------------------------- */

static void test_not_traces(void)
{
    OPEN_FAILS(tmp_path("does-not-exist.mtrace"), strerror(ENOENT));

    const char *empty = tmp_path("empty.mtrace");
    put_file(empty, "", 0);
    OPEN_FAILS(empty, "empty file");

    const char *dir = tmp_path("a-directory.mtrace");
    CHECK(mkdir(dir, 0700) == 0);
    OPEN_FAILS(dir, "not a regular file");

    const char *rnd_path = tmp_path("random.mtrace");
    uint8_t junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)rnd();
    put_file(rnd_path, junk, sizeof junk);
    OPEN_FAILS(rnd_path, "not a mallet trace");

    /* A text file, and every prefix of a file header. */
    const char *text = tmp_path("text.mtrace");
    put_file(text, "hello, world\n", 13);
    OPEN_FAILS(text, "not a mallet trace");
    uint8_t fh[MALLET_FILE_HEADER_SIZE];
    mallet_file_header_pack(fh);
    const char *pre = tmp_path("prefix.mtrace");
    for (size_t n = 1; n < sizeof fh; n++) {
        put_file(pre, fh, n);
        OPEN_FAILS(pre, n < 8 ? "not a mallet trace" : "truncated file header");
    }
    /* A file header and nothing else: a process that died before its first chunk. */
    put_file(pre, fh, sizeof fh);
    OPEN_FAILS(pre, "no complete chunk");
}

static void test_header_fields(void)
{
    const char *good = tmp_path("good.mtrace");
    make_trace(good, 0, 1);
    size_t len;
    uint8_t *b = get_file(good, &len);
    const char *bad = tmp_path("bad-header.mtrace");

    mallet_put_u32(b + 8, MALLET_TRACE_VERSION_PACKED + 1);
    put_file(bad, b, len);
    OPEN_FAILS(bad, "version 5");
    mallet_put_u32(b + 8, 0);
    put_file(bad, b, len);
    OPEN_FAILS(bad, "version 0");
    mallet_put_u32(b + 8, MALLET_TRACE_VERSION);

    mallet_put_u32(b + 12, 8); /* a header smaller than the header */
    put_file(bad, b, len);
    OPEN_FAILS(bad, "corrupt file header");
    mallet_put_u32(b + 12, (uint32_t)len + 1); /* past the end of the file */
    put_file(bad, b, len);
    OPEN_FAILS(bad, "corrupt file header");
    mallet_put_u32(b + 12, MALLET_FILE_HEADER_SIZE);

    b[3] ^= 0x20; /* "MALlETTR" */
    put_file(bad, b, len);
    OPEN_FAILS(bad, "not a mallet trace");
    free(b);
}

/* Flipped bytes in chunk headers and payloads. */
/* Makes the standard trace at path and maps its chunks (up to 64) into ch. */
static uint8_t *trace_with_chunks(const char *path, int level, size_t *len, chunk_span_t *ch,
                                  size_t *n)
{
    make_trace(path, level, 1);
    uint8_t *b = get_file(path, len);
    *n = map_chunks(b, *len, ch, 64);
    return b;
}

static void test_corrupt_chunks(int level)
{
    const char *good = tmp_path("good.mtrace");
    size_t len, n;
    chunk_span_t ch[64];
    uint8_t *b = trace_with_chunks(good, level, &len, ch, &n);
    CHECK(n >= 10);
    const char *bad = tmp_path("corrupt.mtrace");

    /* Every byte of every chunk header, one at a time: the header pass refuses the file (a
     * flipped byte is never taken for a cut, even in the last chunk). */
    put_file(bad, b, len);
    int fd = open(bad, O_WRONLY);
    CHECK(fd >= 0);
    for (size_t c = 0; c < n; c++) {
        for (unsigned i = 0; i < MALLET_CHUNK_HEADER_SIZE; i++) {
            off_t at = (off_t)(ch[c].start + i);
            uint8_t x = b[at] ^ (uint8_t)(1u << (i % 8));
            CHECK(pwrite(fd, &x, 1, at) == 1);
            OPEN_FAILS(bad, "corrupt chunk header");
            CHECK(pwrite(fd, &b[at], 1, at) == 1);
        }
    }
    CHECK(close(fd) == 0);

    /* A payload byte: META and MAPS are read at open, EVENTS while reading. */
    int saw_events = 0, saw_zstd = 0;
    for (size_t c = 0; c < n; c++) {
        if (ch[c].h.disk_size == 0) continue;
        uint64_t at = ch[c].start + MALLET_CHUNK_HEADER_SIZE + rnd() % ch[c].h.disk_size;
        b[at] ^= 0x10;
        put_file(bad, b, len);
        if (ch[c].h.type == MALLET_CHUNK_EVENTS) {
            READ_FAILS(bad, "checksum");
            const char *paths[] = {bad};
            check_next_run(paths, 1); /* fails the same way, after the same records */
            saw_events = 1;
            saw_zstd |= ch[c].h.codec == MALLET_CODEC_ZSTD;
        } else if (ch[c].h.type == MALLET_CHUNK_META || ch[c].h.type == MALLET_CHUNK_MAPS) {
            OPEN_FAILS(bad, "checksum");
        }
        b[at] ^= 0x10;
    }
    CHECK(saw_events && saw_zstd == (level != 0));

    /* The second of two files is bad: its path is the one named. */
    const char *two[] = {good, bad};
    b[ch[0].start + MALLET_CHUNK_HEADER_SIZE] ^= 1;
    put_file(bad, b, len);
    open_fails_at(two, 2, bad, "checksum", __LINE__);
    free(b);
}

/* Chunks whose checksums are right but whose contents are wrong (a writer bug, not a disk
 * error): the reader still refuses them cleanly. */
static void test_bad_contents(void)
{
    const char *path = tmp_path("contents.mtrace");
    uint8_t fh[MALLET_FILE_HEADER_SIZE], meta[64];
    mallet_file_header_pack(fh);
    mallet_meta_t m = {.pid = 5};
    size_t mlen = mallet_meta_encode(meta, sizeof meta, &m);
    CHECK(mlen > 0);

    /* Three events: malloc, free, rss. */
    uint8_t ev[3 * MALLET_EVENT_MAX_SIZE], *p = ev;
    size_t at[3];
    mallet_enc_state_t st = {0};
    const mallet_event_t evs[3] = {
        {.op = MALLET_OP_MALLOC, .cycles = 10, .size = 8, .ptr = 0x1000, .callsite = 0x400000},
        {.op = MALLET_OP_FREE, .cycles = 20, .ptr = 0x1000, .callsite = 0x400010},
        {.op = MALLET_OP_RSS, .cycles = 30, .size = 1 << 20},
    };
    for (int i = 0; i < 3; i++) {
        at[i] = (size_t)(p - ev);
        p = mallet_encode_event(p, &st, &evs[i]);
    }
    size_t evlen = (size_t)(p - ev);

    static const struct {
        const char *what;
        uint32_t count;
        int mangle; /* 0 none, 1 op 0 in the 3rd event, 2 bad zstd, 3 bad META */
        int at_open;
    } cases[] = {
        {"corrupt events", 4, 0, 0},              /* more events announced than stored */
        {"corrupt events", 2, 0, 0},              /* bytes left over after the last event */
        {"corrupt events", 3, 1, 0},              /* an op that does not exist */
        {"decompress", 3, 2, 0},                  /* a zstd payload that is not zstd */
        {"corrupt process description", 3, 3, 1}, /* a META record longer than its chunk */
        {"field out of range", 0, 0, 1},          /* no events, yet a payload */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
        CHECK(fd >= 0);
        CHECK(write(fd, fh, sizeof fh) == (ssize_t)sizeof fh);
        mallet_chunk_header_t h = {.type = MALLET_CHUNK_META};
        uint8_t mbad[] = {MALLET_META_PID, 5, 1};
        if (cases[i].mangle == 3)
            CHECK(mallet_chunk_write(fd, &h, mbad, sizeof mbad, NULL, 0, NULL, 0) == 0);
        else
            CHECK(mallet_chunk_write(fd, &h, meta, mlen, NULL, 0, NULL, 0) == 0);
        uint8_t payload[sizeof ev];
        memcpy(payload, ev, evlen);
        if (cases[i].mangle == 1) payload[at[2]] = 0;
        /* Write the header by hand: mallet_chunk_write would pick the codec itself. */
        uint8_t hb[MALLET_CHUNK_HEADER_SIZE];
        h = (mallet_chunk_header_t){.type = MALLET_CHUNK_EVENTS,
                                    .tid = 1,
                                    .count = cases[i].count,
                                    .disk_size = (uint32_t)evlen,
                                    .raw_size = (uint32_t)evlen,
                                    .first_cycles = 10,
                                    .last_cycles = 30};
        if (cases[i].mangle == 2) h.codec = MALLET_CODEC_ZSTD, h.raw_size = 4 * (uint32_t)evlen;
        h.payload_hash = mallet_hash32(payload, evlen);
        mallet_chunk_header_pack(hb, &h);
        CHECK(write(fd, hb, sizeof hb) == (ssize_t)sizeof hb);
        CHECK(write(fd, payload, evlen) == (ssize_t)evlen);
        CHECK(close(fd) == 0);
        if (cases[i].at_open)
            OPEN_FAILS(path, cases[i].what);
        else
            READ_FAILS(path, cases[i].what);
    }
}

/* Packed chunks (trace/pack.h): not in a version 3 file; in a packed one, a chunk whose ordinal
 * is not its thread's next, or whose form is unknown, is refused when read (the payload's
 * checksum made to match). */
static void test_packed(void)
{
    const char *good = tmp_path("good.mtrace"), *packed = tmp_path("packed.mtrace"),
               *bad = tmp_path("bad-packed.mtrace");
    size_t len, n, plen;
    chunk_span_t ch[64], pch[64];
    uint8_t *b = trace_with_chunks(good, 0, &len, ch, &n);
    size_t e = 0;
    while (e < n && !(ch[e].h.type == MALLET_CHUNK_EVENTS && ch[e].h.count))
        e++;
    CHECK(e < n);
    mallet_chunk_header_t h = ch[e].h;
    h.codec = MALLET_CODEC_PACKED;
    mallet_chunk_header_pack(b + ch[e].start, &h);
    put_file(bad, b, len);
    OPEN_FAILS(bad, "packed chunk at offset");
    free(b);

    int in = open(good, O_RDONLY), out = open(packed, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    mallet_pack_stats_t st;
    char err[512];
    CHECK(in >= 0 && out >= 0 && !mallet_pack_file(in, good, out, packed, 3, &st, err, sizeof err));
    close(in);
    close(out);
    CHECK(st.events > 0);
    b = get_file(packed, &plen);
    size_t pn = map_chunks(b, plen, pch, 64), second = 0, seen = 0;
    for (size_t i = 0; i < pn && !second; i++)
        if (pch[i].h.codec == MALLET_CODEC_PACKED && pch[i].h.thread == h.thread && seen++)
            second = i;
    CHECK(second > 0);
    static const struct {
        size_t at;
        uint8_t value;
        const char *what;
    } cases[] = {{1, 0, "out of its thread's order"}, {0, 7, "unknown packing"}};
    for (size_t i = 0; i < 2; i++) {
        uint8_t *c = malloc(plen);
        memcpy(c, b, plen);
        uint8_t *pl = c + pch[second].start + MALLET_CHUNK_HEADER_SIZE;
        pl[cases[i].at] = cases[i].value;
        mallet_chunk_header_t ph = pch[second].h;
        ph.payload_hash = mallet_hash32(pl, ph.disk_size);
        mallet_chunk_header_pack(c + pch[second].start, &ph);
        put_file(bad, c, plen);
        READ_FAILS(bad, cases[i].what);
        free(c);
    }
    free(b);
}

/* Clock pairs that fit an absurd cycles->ns line (a damaged header whose checksum still
 * matches, or a broken counter): the reader reads on, its time conversion stays defined (a
 * sanitizer build catches an out-of-range float-to-integer conversion) and monotonic. */
static void test_absurd_clocks(void)
{
    static const struct {
        uint64_t c0, n0, c1, n1; /* pairs of the first chunk and of all later ones */
    } cases[] = {
        {1, 1, 2, 1ull << 62},                   /* 2^62 ns per cycle */
        {1, 1ull << 62, UINT64_MAX, UINT64_MAX}, /* a line through the top of the ranges */
        {1000, 5000, 2000, 4000},                /* time running backwards: no fit */
        {UINT64_MAX, 1, 0, 0},                   /* one pair only */
    };
    const char *path = tmp_path("clocks.mtrace");
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char err[512] = "";
        mallet_writer_t *w = mallet_writer_open(path, NULL, 0, err, sizeof err);
        CHECKF(w, "%s", err);
        static const uint64_t at[] = {0, 1, 1ull << 40, 1ull << 63, UINT64_MAX - 1};
        for (unsigned i = 0; i < 5; i++) {
            mallet_event_t e = {.op = MALLET_OP_MALLOC,
                                .tid = 1,
                                .cycles = at[i],
                                .size = i,
                                .ptr = 0x1000 + 16 * i};
            CHECK(mallet_writer_event(w, &e) == 0);
            if (i == 2) CHECK(mallet_writer_flush(w) == 0);
        }
        CHECK(mallet_writer_close(w, 1) == 0);
        size_t len;
        uint8_t *b = get_file(path, &len);
        chunk_span_t ch[8];
        size_t n = map_chunks(b, len, ch, 8);
        for (size_t i = 0; i < n; i++) {
            ch[i].h.clock_cycles = i ? cases[k].c1 : cases[k].c0;
            ch[i].h.clock_ns = i ? cases[k].n1 : cases[k].n0;
            mallet_chunk_header_pack(b + ch[i].start, &ch[i].h);
        }
        put_file(path, b, len);
        free(b);
        const char *paths[] = {path};
        mallet_reader_t *r = mallet_reader_open(paths, 1, err, sizeof err);
        CHECKF(r, "case %zu: %s", k, err);
        mallet_rec_t rec;
        uint64_t prev = 0, got = 0;
        int rc;
        while ((rc = mallet_reader_next(r, &rec)) == 1) {
            CHECKF(!got || rec.time_ns >= prev, "case %zu: time_ns %" PRIu64 " after %" PRIu64, k,
                   rec.time_ns, prev);
            prev = rec.time_ns;
            got++;
        }
        CHECKF(rc == 0 && got == 5, "case %zu: %" PRIu64 " records, %s", k, got,
               mallet_reader_error(r));
        mallet_reader_close(r);
    }
}

/* ---- truncation at every byte ---------------------------------------------------------------- */

typedef struct clean_rec {
    uint32_t thread;
    uint64_t seq;
    uint8_t part;
    mallet_event_t ev;
} clean_rec_t;

/* mallet_reader_set_ahead: every decoded event is announced once, before the merge yields it. */
static void count_ahead(void *arg, const mallet_rec_t *recs, unsigned n)
{
    CHECK(n > 0);
    for (unsigned i = 0; i < n; i++)
        CHECK(recs[i].ev.op < MALLET_OP_COUNT_);
    *(uint64_t *)arg += n;
}

static void test_truncation(int level)
{
    const char *full = tmp_path("full.mtrace");
    size_t len, n;
    chunk_span_t ch[64];
    uint8_t *b = trace_with_chunks(full, level, &len, ch, &n);
    CHECK(n >= 10 && ch[0].h.type == MALLET_CHUNK_META && ch[n - 1].h.type == MALLET_CHUNK_END);

    /* The clean read: what every cut must yield a prefix of, thread by thread. */
    clean_rec_t *clean = malloc(1000 * sizeof *clean);
    CHECK(clean);
    size_t nclean = 0;
    {
        const char *paths[] = {full};
        char err[512] = "";
        mallet_reader_t *r = mallet_reader_open(paths, 1, err, sizeof err);
        CHECKF(r, "%s", err);
        uint64_t announced = 0;
        mallet_reader_set_ahead(r, count_ahead, &announced);
        mallet_rec_t rec;
        int rc;
        uint64_t wholes = 0; /* one per event: a realloc's ALLOC half is its second part */
        while ((rc = mallet_reader_next(r, &rec)) == 1) {
            CHECK(nclean < 1000);
            wholes += rec.part != MALLET_PART_ALLOC;
            CHECK(announced >= wholes); /* announced before it comes */
            clean[nclean++] = (clean_rec_t){rec.ev.thread, rec.ev.seq, rec.part, rec.ev};
        }
        CHECKF(rc == 0, "%s", mallet_reader_error(r));
        CHECK(announced == wholes && announced == mallet_reader_info(r, 0)->events);
        mallet_reader_close(r);
    }

    /* From the full size down, so each cut is one ftruncate of the same file. */
    const char *cut = tmp_path("cut.mtrace");
    put_file(cut, b, len);
    int cfd = open(cut, O_WRONLY);
    CHECK(cfd >= 0);
    size_t *pos = calloc(16, sizeof *pos);
    CHECK(pos);
    for (size_t c = len; c >= MALLET_FILE_HEADER_SIZE; c--) {
        CHECK(ftruncate(cfd, (off_t)c) == 0);
        /* Expected from the map: the chunks wholly before c, and whether c falls inside one. */
        size_t complete = 0;
        uint64_t last_end = MALLET_FILE_HEADER_SIZE, events = 0, per_thread[16] = {0};
        int ended = 0, has_maps = 0;
        while (complete < n && ch[complete].end <= c) {
            const mallet_chunk_header_t *h = &ch[complete].h;
            if (h->type == MALLET_CHUNK_EVENTS) {
                CHECK(h->thread < 16);
                events += h->count;
                per_thread[h->thread] += h->count;
            }
            ended |= h->type == MALLET_CHUNK_END;
            has_maps |= h->type == MALLET_CHUNK_MAPS;
            last_end = ch[complete++].end;
        }
        if (complete == 0) {
            OPEN_FAILS(cut, "no complete chunk");
            continue;
        }
        const char *paths[] = {cut};
        char err[512] = "";
        mallet_reader_t *r = mallet_reader_open(paths, 1, err, sizeof err);
        CHECKF(r, "cut at %zu of %zu: %s", c, len, err);
        const mallet_trace_info_t *in = mallet_reader_info(r, 0);
        CHECKF(in->cut == (c != last_end), "cut at %zu: info->cut %d", c, in->cut);
        CHECKF(in->cut_bytes == c - last_end, "cut at %zu: cut_bytes %" PRIu64, c, in->cut_bytes);
        CHECKF(in->chunks == complete, "cut at %zu: %" PRIu64 " chunks, want %zu", c, in->chunks,
               complete);
        CHECKF(in->events == events, "cut at %zu: %" PRIu64 " events, want %" PRIu64, c, in->events,
               events);
        CHECK(in->ended_cleanly == ended);
        CHECK((in->maps != NULL) == has_maps);
        CHECK(in->pid == 321 && in->file_bytes == c);

        /* Thread by thread, the records are the clean read's records of the first
         * per_thread[t] events, in the same order. */
        memset(pos, 0, 16 * sizeof *pos);
        mallet_rec_t rec;
        int rc;
        while ((rc = mallet_reader_next(r, &rec)) == 1) {
            uint32_t t = rec.ev.thread;
            CHECKF(t < 16 && rec.ev.seq < per_thread[t],
                   "cut at %zu: thread %" PRIu32 " seq %" PRIu64 " is not in a complete chunk", c,
                   t, rec.ev.seq);
            size_t k = pos[t];
            while (k < nclean && clean[k].thread != t)
                k++;
            CHECKF(k < nclean && clean[k].seq == rec.ev.seq && clean[k].part == rec.part &&
                       ev_equal(&clean[k].ev, &rec.ev),
                   "cut at %zu: thread %" PRIu32 " seq %" PRIu64 " differs from the clean read", c,
                   t, rec.ev.seq);
            pos[t] = k + 1;
        }
        CHECKF(rc == 0, "cut at %zu: %s", c, mallet_reader_error(r));
        /* Nothing of the complete chunks is missing. */
        for (uint32_t t = 0; t < 16; t++) {
            size_t k = pos[t];
            while (k < nclean && !(clean[k].thread == t && clean[k].seq < per_thread[t]))
                k++;
            CHECKF(k == nclean, "cut at %zu: thread %" PRIu32 " seq %" PRIu64 " missing", c, t,
                   clean[k].seq);
        }
        mallet_reader_close(r);
    }
    CHECK(close(cfd) == 0);
    free(pos);
    free(clean);
    free(b);
}

int main(void)
{
    test_not_traces();
    test_header_fields();
    test_corrupt_chunks(0);
    test_corrupt_chunks(3);
    test_bad_contents();
    test_packed();
    test_absurd_clocks();
    test_truncation(0);
    test_truncation(3);
    printf("test_reader_errors: ok\n");
    return 0;
}
