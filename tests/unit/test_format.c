/* Trace format tests: varints, the event codec, chunk headers, and writer -> reader round trips
 * (one file and several, raw and zstd), checked field by field.
 *
 * Usage: test_format [SEED]   (SEED changes the random events; the default is fixed so a failure
 * reproduces). Exits 0 on success; prints "FAIL: file:line: what" and exits 1 on the first
 * failure. Temporary traces go to a private directory under $TMPDIR (or /tmp), removed at exit. */
#define _GNU_SOURCE
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

/* ---- test scaffolding ------------------------------------------------------------------------ */

static uint64_t seed = 0x6d616c6c6574ull;

#define MALLET_TEST_CONTEXT() fprintf(stderr, " (seed %" PRIu64 ")", seed)
#include "format_test.h"


static uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static const char *ev_str(const mallet_event_t *e, char *buf, size_t len)
{
    snprintf(buf, len,
             "{%s failed=%u tid=%" PRIu32 " thread=%" PRIu32 " seq=%" PRIu64 " cycles=%" PRIu64
             " free_cycles=%" PRIu64 " ptr=%#" PRIx64 " old=%#" PRIx64 " size=%" PRIu64
             " nmemb=%" PRIu64 " align=%" PRIu64 " callsite=%#" PRIx64 " ret=%" PRId32 "}",
             mallet_op_name(e->op), e->failed, e->tid, e->thread, e->seq, e->cycles, e->free_cycles,
             e->ptr, e->old_ptr, e->size, e->nmemb, e->align, e->callsite, e->ret);
    return buf;
}

#define CHECK_EV(got, want)                                                                        \
    do {                                                                                           \
        char b1_[400], b2_[400];                                                                   \
        CHECKF(ev_equal(got, want), "event differs: got %s want %s", ev_str(got, b1_, 400),        \
               ev_str(want, b2_, 400));                                                            \
    } while (0)

/* ---- varints and zigzag -------------------------------------------------------------------- */

static size_t varint_len(uint64_t v)
{
    uint8_t b[16]; /* the encoder stores 8 bytes whatever the length */
    return (size_t)(mallet_put_varint(b, v) - b);
}

/* Encodes v as the size of an RSS event (a plain varint field) and decodes it back: the reader's
 * varint decoder is internal, so it is reached through the public event decoder. */
static uint64_t varint_via_decoder(uint64_t v)
{
    mallet_event_t e = {.op = MALLET_OP_RSS, .size = v}, d;
    uint8_t buf[MALLET_EVENT_MAX_SIZE];
    mallet_enc_state_t es = {0}, ds = {0};
    uint8_t *end = mallet_encode_event(buf, &es, &e);
    const uint8_t *p = buf;
    CHECKF(mallet_decode_event(&p, end, &ds, &d) == 0, "decode of varint %" PRIu64, v);
    CHECK(p == end);
    return d.size;
}

/* Bytes of the shortest prefix varint of v, as format.h defines it: 1..8 bytes for v < 2^56
 * (the trailing one bits of the first byte count the extra bytes), else 0xff + 8 bytes. */
static unsigned varint_size_expected(uint64_t v)
{
    if (v >> 56) return 9;
    unsigned bits = 1;
    while (bits < 64 && v >> bits)
        bits++;
    return (bits + 6) / 7;
}

static void test_varint(void)
{
    static const struct {
        uint64_t v;
        unsigned n;
        uint8_t bytes[9];
    } known[] = {
        {0, 1, {0x00}},
        {1, 1, {0x02}},
        {127, 1, {0xfe}},
        {128, 2, {0x01, 0x02}},
        {300, 2, {0xb1, 0x04}},
        {16383, 2, {0xfd, 0xff}},
        {16384, 3, {0x03, 0x00, 0x02}},
        {(1ull << 56) - 1, 8, {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
        {1ull << 56, 9, {0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01}},
        {1ull << 63, 9, {0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80}},
        {UINT64_MAX, 9, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        uint8_t buf[16]; /* the encoder stores 8 bytes whatever the length */
        size_t n = (size_t)(mallet_put_varint(buf, known[i].v) - buf);
        CHECKF(n == known[i].n && !memcmp(buf, known[i].bytes, n), "varint bytes of %" PRIu64,
               known[i].v);
        CHECK(varint_via_decoder(known[i].v) == known[i].v);
    }
    for (int sh = 0; sh < 64; sh++) { /* every length boundary, and every power of two */
        uint64_t v = 1ull << sh;
        for (int d = -1; d <= 1; d++) {
            uint64_t x = v + (uint64_t)(int64_t)d;
            CHECK(varint_via_decoder(x) == x);
            CHECKF(varint_len(x) == varint_size_expected(x), "length of varint %" PRIu64, x);
        }
    }
    for (int i = 0; i < 10000; i++) {
        uint64_t v = rnd() >> rnd_below(64);
        CHECK(varint_via_decoder(v) == v);
        CHECK(varint_len(v) == varint_size_expected(v));
    }

    static const struct {
        int64_t s;
        uint64_t z;
    } zz[] = {{0, 0},
              {-1, 1},
              {1, 2},
              {-2, 3},
              {63, 126},
              {-64, 127},
              {64, 128},
              {INT64_MAX, UINT64_MAX - 1},
              {INT64_MIN, UINT64_MAX}};
    for (size_t i = 0; i < sizeof zz / sizeof zz[0]; i++) {
        CHECKF(mallet_zigzag(zz[i].s) == zz[i].z, "zigzag(%" PRId64 ")", zz[i].s);
        CHECKF(mallet_unzigzag(zz[i].z) == zz[i].s, "unzigzag(%" PRIu64 ")", zz[i].z);
    }
    for (int i = 0; i < 10000; i++) {
        int64_t s = (int64_t)(rnd() >> rnd_below(64));
        if (rnd() & 1) s = -s;
        CHECK(mallet_unzigzag(mallet_zigzag(s)) == s);
    }

    /* Malformed varints (as an RSS event's timestamp): the 9-byte form holding a value that has
     * a shorter form, and lengths that run past the end. */
    static const struct {
        size_t len;
        uint8_t b[12];
    } bad[] = {
        {12, {MALLET_OP_RSS, 0xff, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00}},
        {12, {MALLET_OP_RSS, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00}},
        {3, {MALLET_OP_RSS, 0x03, 0x00}},             /* says 3 bytes, has 2 */
        {8, {MALLET_OP_RSS, 0xff, 0, 0, 0, 0, 0, 0}}, /* says 9 bytes, has 7 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mallet_enc_state_t st = {0};
        mallet_event_t e;
        const uint8_t *p = bad[i].b;
        CHECKF(mallet_decode_event(&p, bad[i].b + bad[i].len, &st, &e) == -1, "bad varint %zu", i);
        CHECK(p == bad[i].b); /* a failed decode does not advance */
    }
}

/* ---- the event codec ----------------------------------------------------------------------- */

static const uint8_t all_ops[] = {
    MALLET_OP_MALLOC, MALLET_OP_CALLOC,         MALLET_OP_REALLOC,       MALLET_OP_REALLOCARRAY,
    MALLET_OP_FREE,   MALLET_OP_POSIX_MEMALIGN, MALLET_OP_ALIGNED_ALLOC, MALLET_OP_MEMALIGN,
    MALLET_OP_VALLOC, MALLET_OP_PVALLOC,        MALLET_OP_RSS,
};
#define NOPS (sizeof all_ops / sizeof all_ops[0])

static int is_realloc(uint8_t op)
{
    return op == MALLET_OP_REALLOC || op == MALLET_OP_REALLOCARRAY;
}

/* Fills the fields op uses (others stay 0, as the decoder leaves them). A realloc's free_cycles
 * defaults to cycles; callers change it. */
static mallet_event_t make_event(uint8_t op, int failed, uint64_t cycles, uint64_t ptr,
                                 uint64_t old_ptr, uint64_t a, uint64_t b, uint64_t callsite,
                                 int32_t ret)
{
    mallet_event_t e = {
        .op = op, .failed = (uint8_t)(failed != 0), .cycles = cycles, .callsite = callsite};
    switch (op) {
    case MALLET_OP_MALLOC:
    case MALLET_OP_VALLOC:
    case MALLET_OP_PVALLOC:
        e.size = a, e.ptr = ptr;
        break;
    case MALLET_OP_CALLOC:
        e.nmemb = a, e.size = b, e.ptr = ptr;
        break;
    case MALLET_OP_REALLOC:
        e.old_ptr = old_ptr, e.size = a, e.ptr = ptr, e.free_cycles = cycles;
        break;
    case MALLET_OP_REALLOCARRAY:
        e.old_ptr = old_ptr, e.nmemb = a, e.size = b, e.ptr = ptr, e.free_cycles = cycles;
        break;
    case MALLET_OP_FREE:
        e.ptr = ptr;
        break;
    case MALLET_OP_POSIX_MEMALIGN:
    case MALLET_OP_ALIGNED_ALLOC:
    case MALLET_OP_MEMALIGN:
        e.align = a, e.size = b, e.ptr = ptr;
        if (op == MALLET_OP_POSIX_MEMALIGN && failed) e.ret = ret;
        break;
    case MALLET_OP_RSS:
        e.size = a;
        break;
    }
    return e;
}

/* Encodes evs[0..n) as one chunk payload into a heap buffer of exactly the encoded size (so
 * AddressSanitizer sees any read past the end), decodes it back and compares. Also checks the
 * encoder never writes past MALLET_EVENT_MAX_SIZE for any event. */
static void codec_roundtrip(const mallet_event_t *evs, size_t n)
{
    uint8_t *buf = malloc(n * MALLET_EVENT_MAX_SIZE + 1);
    CHECK(buf);
    size_t *ends = malloc((n + 1) * sizeof *ends);
    CHECK(ends);
    mallet_enc_state_t es = {0};
    uint8_t *p = buf;
    ends[0] = 0;
    for (size_t i = 0; i < n; i++) {
        /* Poison the event's whole allowance plus one byte: the byte after it must survive. */
        memset(p, 0xa5, MALLET_EVENT_MAX_SIZE + 1);
        uint8_t *q = mallet_encode_event(p, &es, &evs[i]);
        CHECKF(q > p && q - p <= (ptrdiff_t)MALLET_EVENT_MAX_SIZE, "event %zu encodes to %td", i,
               q - p);
        CHECKF(p[MALLET_EVENT_MAX_SIZE] == 0xa5, "event %zu wrote past MALLET_EVENT_MAX_SIZE", i);
        p = q;
        ends[i + 1] = (size_t)(p - buf);
    }
    size_t len = (size_t)(p - buf);
    uint8_t *exact = malloc(len ? len : 1);
    CHECK(exact);
    memcpy(exact, buf, len);

    mallet_enc_state_t ds = {0};
    const uint8_t *r = exact;
    for (size_t i = 0; i < n; i++) {
        mallet_event_t d;
        /* Every proper prefix of the event is rejected without advancing. */
        if (i < 64) {
            for (size_t cut = ends[i]; cut < ends[i + 1]; cut++) {
                mallet_enc_state_t tmp = ds;
                const uint8_t *q = r;
                CHECKF(mallet_decode_event(&q, exact + cut, &tmp, &d) == -1,
                       "event %zu decoded from %zu of its %zu bytes", i, cut - ends[i],
                       ends[i + 1] - ends[i]);
                CHECK(q == r);
            }
        }
        CHECKF(mallet_decode_event(&r, exact + len, &ds, &d) == 0, "decode event %zu", i);
        CHECKF((size_t)(r - exact) == ends[i + 1], "event %zu: decoder consumed %td, encoder %zu",
               i, r - exact, ends[i + 1]);
        CHECK_EV(&d, &evs[i]);
    }
    CHECK(r == exact + len);
    free(exact);
    free(ends);
    free(buf);
}

/* An event at the previous event's time has SAME_TIME and no time field; any other time has the
 * field (the recorder's sparse stamps make most events of a single-threaded process the first). */
static void test_same_time(void)
{
    mallet_enc_state_t st = {0};
    uint8_t buf[3 * MALLET_EVENT_MAX_SIZE];
    mallet_event_t e = make_event(MALLET_OP_FREE, 0, 5000, 0x1000, 0, 0, 0, 0x401000, 0);
    uint8_t *a = mallet_encode_event(buf, &st, &e);
    uint8_t *b = mallet_encode_event(a, &st, &e); /* same time, same site, same pointer */
    e.cycles = 5001;
    uint8_t *c = mallet_encode_event(b, &st, &e);
    CHECKF(!(buf[0] & MALLET_EV_SAME_TIME) && (a[0] & MALLET_EV_SAME_TIME) &&
               !(b[0] & MALLET_EV_SAME_TIME),
           "flags %#x %#x %#x", buf[0], a[0], b[0]);
    CHECKF(b - a == 2 && c - b == 4, "sizes %td %td", b - a, c - b); /* op + P(0) | + short */
    mallet_enc_state_t ds = {0};
    const uint8_t *r = buf;
    uint64_t want[] = {5000, 5000, 5001};
    for (int i = 0; i < 3; i++) {
        mallet_event_t d;
        CHECK(mallet_decode_event(&r, c, &ds, &d) == 0);
        CHECKF(d.cycles == want[i], "event %d: cycles %" PRIu64, i, d.cycles);
    }
    CHECK(r == c);
}

static void test_codec(void)
{
    static const uint64_t ptrs[] = {
        0,
        0x10,
        0x7f0000001000ull,
        0xffffffffffffull,     /* the top of a 48-bit address space */
        0x1000000000000ull,    /* 2^48 */
        0xffff800000001000ull, /* kernel-half style address */
        UINT64_MAX,
    };
    static const uint64_t nums[] = {0, 1, 127, 128, 4096, 1ull << 32, 1ull << 63, UINT64_MAX};
    static const uint64_t stamps[] = {0, 1000, 999, UINT64_MAX, 0, 1ull << 63, 5, 5, 4};
    static const uint64_t sites[] = {0x401000, 0x400ff0, 0, UINT64_MAX, 0x7f00deadbeefull, 1};
    enum { N = 16384 };
    mallet_event_t *evs = malloc(N * sizeof *evs);
    CHECK(evs);
    size_t n = 0;
    /* Systematic: every op x failed x pointer pair x a few numbers; cycles and callsites walk
     * through values that go backwards, wrap, and repeat. */
    unsigned k = 0;
    for (size_t o = 0; o < NOPS; o++)
        for (int f = 0; f < 2; f++)
            for (size_t pi = 0; pi < sizeof ptrs / sizeof ptrs[0]; pi++)
                for (size_t qi = 0; qi < sizeof ptrs / sizeof ptrs[0]; qi += 2)
                    for (size_t ni = 0; ni < sizeof nums / sizeof nums[0]; ni += 3, k++) {
                        CHECK(n < N);
                        int32_t ret = (k & 1) ? ENOMEM : EINVAL;
                        if (k % 7 == 0) ret = INT32_MAX;
                        evs[n] = make_event(all_ops[o], f, stamps[k % 9], ptrs[pi], ptrs[qi],
                                            nums[ni], nums[(ni + k) % 8], sites[k % 6], ret);
                        /* free_cycles is stored as cycles - free_cycles: any value round-trips,
                         * even one after cycles (the difference wraps) */
                        if (is_realloc(all_ops[o])) evs[n].free_cycles = stamps[(k + 3) % 9];
                        n++;
                    }
    codec_roundtrip(evs, n);

    /* Specific shapes named in the format. */
    mallet_event_t special[] = {
        /* pointers above 2^48, alone or with a small one (the deltas span the whole range) */
        make_event(MALLET_OP_REALLOC, 0, 10, 0x1000, 0x1000000000000ull, 64, 0, 0x400000, 0),
        make_event(MALLET_OP_REALLOCARRAY, 0, 20, 0x1000000000000ull, 0x20, 3, 8, 0x3ff000, 0),
        /* realloc(NULL, n), and a failed realloc that kept its block */
        make_event(MALLET_OP_REALLOC, 0, 30, 0x2000, 0, 64, 0, 0x400000, 0),
        make_event(MALLET_OP_REALLOC, 1, 40, 0, 0x2000, UINT64_MAX, 0, 0x400000, 0),
        /* failed posix_memalign carries its return code; a failed memalign does not */
        make_event(MALLET_OP_POSIX_MEMALIGN, 1, 15, 0, 0, 3, 100, 0x3ff000, EINVAL),
        make_event(MALLET_OP_POSIX_MEMALIGN, 1, 15, 0, 0, 4096, UINT64_MAX, 0x3ff000, ENOMEM),
        make_event(MALLET_OP_POSIX_MEMALIGN, 0, 16, 0x5000, 0, 64, 100, 0x3ff000, 0),
        make_event(MALLET_OP_MEMALIGN, 1, 17, 0, 0, 64, 1ull << 62, 0x3ff000, 0),
        make_event(MALLET_OP_MALLOC, 1, 3, 0, 0, UINT64_MAX, 0, 0x3ff000, 0),
        make_event(MALLET_OP_CALLOC, 1, 2, 0, 0, 1ull << 62, 1ull << 62, 0x1, 0),
        make_event(MALLET_OP_RSS, 0, 1ull << 40, 0, 0, 123456789, 0, 0, 0),
        make_event(MALLET_OP_FREE, 0, 0, 0, 0, 0, 0, 0, 0), /* free(NULL) */
    };
    special[0].free_cycles = 3;          /* 7 cycles inside realloc */
    special[1].free_cycles = 0;          /* the whole range */
    special[3].free_cycles = UINT64_MAX; /* after cycles: the stored difference wraps */
    codec_roundtrip(special, sizeof special / sizeof special[0]);

    /* The compact forms the format promises: a pointer is a delta to the chunk's previous
     * pointer (a free of the block just allocated costs one byte), and a callsite equal to the
     * previous callsite of the same op is a flag, not a field. */
    {
        uint8_t b[4 * MALLET_EVENT_MAX_SIZE], *p = b, *q;
        mallet_enc_state_t st = {0};
        mallet_event_t m1 =
            make_event(MALLET_OP_MALLOC, 0, 100, 0x7f0000001000ull, 0, 24, 0, 0x401000, 0);
        mallet_event_t f1 =
            make_event(MALLET_OP_FREE, 0, 101, 0x7f0000001000ull, 0, 0, 0, 0x402000, 0);
        mallet_event_t m2 =
            make_event(MALLET_OP_MALLOC, 0, 102, 0x7f0000001040ull, 0, 24, 0, 0x401000, 0);
        q = mallet_encode_event(p, &st, &m1);
        CHECK(p[0] == MALLET_OP_MALLOC); /* first callsite of the chunk: a field */
        p = q;
        q = mallet_encode_event(p, &st, &f1);
        /* op, cycles delta 1 (a 2-byte short varint), pointer delta 0 (a 1-byte prefix varint),
         * callsite delta of its own op (free): 0x402000 zigzagged needs the 4-byte short form */
        uint8_t one[16];
        mallet_put_short(one, mallet_zigzag(1));
        CHECK(p[0] == MALLET_OP_FREE && p[1] == one[0] && p[2] == one[1] && p[3] == 0 &&
              (size_t)(q - p) == 4 + 4);
        p = q;
        q = mallet_encode_event(p, &st, &m2);
        /* same callsite as the previous malloc, though a free came between: no callsite field;
         * op, cycles delta (2), size (2), pointer delta +0x40 (prefix varint) */
        CHECKF(p[0] == (MALLET_OP_MALLOC | MALLET_EV_SAME_SITE) &&
                   (size_t)(q - p) == 5 + varint_len(mallet_zigzag(0x40)),
               "second malloc: byte 0 %#x, %td bytes", p[0], q - p);
        mallet_event_t in[3] = {m1, f1, m2};
        codec_roundtrip(in, 3);
        /* callsite 0 is the initial "previous callsite": an RSS sample never stores one */
        mallet_event_t rss = make_event(MALLET_OP_RSS, 0, 5, 0, 0, 4096, 0, 0, 0);
        st = (mallet_enc_state_t){0};
        q = mallet_encode_event(b, &st, &rss);
        CHECK(b[0] == (MALLET_OP_RSS | MALLET_EV_SAME_SITE) && q - b == 1 + 2 + 2);
    }

    /* Random sequences. */
    for (int round = 0; round < 20; round++) {
        for (n = 0; n < 1000; n++) {
            uint8_t op = all_ops[rnd_below(NOPS)];
            uint64_t ptr = rnd() >> (rnd_below(4) ? 16 : rnd_below(64));
            evs[n] =
                make_event(op, (int)rnd_below(2), rnd() >> rnd_below(64), ptr,
                           rnd() >> rnd_below(64), rnd() >> rnd_below(64), rnd() >> rnd_below(64),
                           rnd() >> rnd_below(64), (int32_t)rnd_below((uint64_t)INT32_MAX + 1));
            if (is_realloc(op)) evs[n].free_cycles = rnd() >> rnd_below(64);
        }
        codec_roundtrip(evs, n);
    }
    free(evs);

    /* Bytes the decoder must refuse: op 0, unknown ops, a mark with no event after it. */
    static const struct {
        size_t len;
        uint8_t b[8];
    } rej[] = {
        {3, {0x00, 0x00, 0x00}},
        {3, {MALLET_OP_COUNT_ + 1, 0x00, 0x00}},
        {3, {MALLET_EV_OP_MASK, 0x00, 0x00}},
        {3, {MALLET_MARK, 0x00, 0x00}},
    };
    for (size_t i = 0; i < sizeof rej / sizeof rej[0]; i++) {
        mallet_enc_state_t st = {0};
        mallet_event_t d;
        const uint8_t *p = rej[i].b;
        CHECKF(mallet_decode_event(&p, rej[i].b + rej[i].len, &st, &d) == -1, "rejects %zu", i);
        CHECK(p == rej[i].b);
    }
    /* A posix_memalign return code must fit an int32_t: 2^31 - 1 is read, 2^31 refused. */
    for (int over = 0; over < 2; over++) {
        uint8_t b[64], *q = b;
        *q++ = MALLET_OP_POSIX_MEMALIGN | MALLET_EV_FAIL | MALLET_EV_SAME_SITE;
        q = mallet_put_short(q, 0);  /* cycles */
        q = mallet_put_short(q, 8);  /* align */
        q = mallet_put_short(q, 8);  /* size */
        q = mallet_put_varint(q, 0); /* result: pointers are prefix varints */
        q = mallet_put_short(q, (uint64_t)INT32_MAX + (uint64_t)over);
        mallet_enc_state_t st = {0};
        mallet_event_t d;
        const uint8_t *p = b;
        int rc = mallet_decode_event(&p, q, &st, &d);
        if (!over)
            CHECK(rc == 0 && p == q && d.ret == INT32_MAX && d.failed == 1);
        else
            CHECK(rc == -1);
    }
}

/* ---- chunk headers ------------------------------------------------------------------------- */

static mallet_chunk_header_t random_header(void)
{
    mallet_chunk_header_t h = {0};
    h.type = (uint8_t)rnd();
    h.codec = (uint8_t)rnd_below(2);
    h.flags = (uint16_t)rnd();
    h.tid = (uint32_t)rnd();
    h.thread = (uint32_t)rnd();
    h.raw_size = (uint32_t)rnd_below(MALLET_CHUNK_MAX_SIZE + 1);
    h.disk_size =
        h.codec == MALLET_CODEC_RAW ? h.raw_size : (uint32_t)rnd_below(MALLET_CHUNK_MAX_SIZE + 1);
    h.count = (uint32_t)rnd_below((uint64_t)h.raw_size + 1);
    h.clock_cycles = rnd();
    h.clock_ns = rnd();
    h.first_cycles = rnd();
    h.last_cycles = rnd();
    h.first_seq = rnd() >> 1;
    h.payload_hash = (uint32_t)rnd();
    return h;
}

static int header_equal(const mallet_chunk_header_t *a, const mallet_chunk_header_t *b)
{
    return a->type == b->type && a->codec == b->codec && a->flags == b->flags && a->tid == b->tid &&
           a->thread == b->thread && a->disk_size == b->disk_size && a->raw_size == b->raw_size &&
           a->count == b->count && a->clock_cycles == b->clock_cycles &&
           a->clock_ns == b->clock_ns && a->first_cycles == b->first_cycles &&
           a->last_cycles == b->last_cycles && a->first_seq == b->first_seq &&
           a->payload_hash == b->payload_hash;
}

static void test_chunk_header(void)
{
    /* The documented layout, byte by byte (docs/TRACE_FORMAT.md has the same table). */
    CHECK(MALLET_CHUNK_HEADER_SIZE == 80 && MALLET_FILE_HEADER_SIZE == 16);
    mallet_chunk_header_t h = {.type = MALLET_CHUNK_EVENTS,
                               .codec = MALLET_CODEC_ZSTD,
                               .flags = 0x0201,
                               .tid = 0x11223344,
                               .thread = 0x55667788,
                               .disk_size = 0x100,
                               .raw_size = 0x200,
                               .count = 0x10,
                               .clock_cycles = 0x0102030405060708ull,
                               .clock_ns = 0x1112131415161718ull,
                               .first_cycles = 0x2122232425262728ull,
                               .last_cycles = 0x3132333435363738ull,
                               .first_seq = 0x4142434445464748ull,
                               .payload_hash = 0xcafef00d};
    uint8_t b[MALLET_CHUNK_HEADER_SIZE];
    memset(b, 0xee, sizeof b);
    mallet_chunk_header_pack(b, &h);
    CHECK(!memcmp(b, "MCHK", 4));
    CHECK(b[4] == MALLET_CHUNK_EVENTS && b[5] == MALLET_CODEC_ZSTD && b[6] == 0x01 && b[7] == 0x02);
    CHECK(mallet_get_u32(b + 8) == h.tid && mallet_get_u32(b + 12) == h.thread);
    CHECK(mallet_get_u32(b + 16) == h.disk_size && mallet_get_u32(b + 20) == h.raw_size);
    CHECK(mallet_get_u32(b + 24) == h.count && mallet_get_u32(b + 28) == 0);
    CHECK(mallet_get_u64(b + 32) == h.clock_cycles && mallet_get_u64(b + 40) == h.clock_ns);
    CHECK(mallet_get_u64(b + 48) == h.first_cycles && mallet_get_u64(b + 56) == h.last_cycles);
    CHECK(mallet_get_u64(b + 64) == h.first_seq && mallet_get_u32(b + 72) == h.payload_hash);
    CHECK(mallet_get_u32(b + 76) == mallet_hash32(b, 76));
    mallet_chunk_header_t u;
    CHECK(mallet_chunk_header_unpack(b, &u) == 0 && header_equal(&u, &h));

    /* The file header. */
    uint8_t fh[MALLET_FILE_HEADER_SIZE];
    mallet_file_header_pack(fh);
    CHECK(!memcmp(fh, "MALLETTR", 8) && mallet_get_u32(fh + 8) == MALLET_TRACE_VERSION &&
          mallet_get_u32(fh + 12) == 16);

    for (int i = 0; i < 200; i++) {
        h = random_header();
        mallet_chunk_header_pack(b, &h);
        memset(&u, 0, sizeof u);
        CHECKF(mallet_chunk_header_unpack(b, &u) == 0, "unpack of random header %d", i);
        CHECK(header_equal(&u, &h));
        /* Every single flipped bit is caught: by the magic, else by the header hash. */
        for (unsigned bit = 0; bit < 8 * MALLET_CHUNK_HEADER_SIZE; bit++) {
            uint8_t c[MALLET_CHUNK_HEADER_SIZE];
            memcpy(c, b, sizeof c);
            c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            int rc = mallet_chunk_header_unpack(c, &u);
            CHECKF(rc == (bit < 32 ? -1 : -2), "bit %u flipped: unpack returned %d", bit, rc);
        }
    }

    /* Fields out of range are refused even with a good hash (-3). */
    enum { NBAD = 7 };
    mallet_chunk_header_t bad[NBAD];
    for (int i = 0; i < NBAD; i++) {
        bad[i] = (mallet_chunk_header_t){
            .type = MALLET_CHUNK_EVENTS, .disk_size = 100, .raw_size = 100, .count = 10};
    }
    bad[0].disk_size = bad[0].raw_size = MALLET_CHUNK_MAX_SIZE + 1;
    bad[1].codec = MALLET_CODEC_ZSTD, bad[1].raw_size = MALLET_CHUNK_MAX_SIZE + 1;
    bad[2].codec = 3;
    bad[3].disk_size = 99;             /* raw codec but sizes differ */
    bad[4].count = 101;                /* more events than bytes */
    bad[5].first_seq = UINT64_MAX - 5; /* sequence numbers would wrap */
    bad[6].type = MALLET_CHUNK_META, bad[6].codec = MALLET_CODEC_PACKED; /* EVENTS only */
    for (int i = 0; i < NBAD; i++) {
        mallet_chunk_header_pack(b, &bad[i]);
        CHECKF(mallet_chunk_header_unpack(b, &u) == -3, "bad header %d accepted", i);
    }
    /* The limits themselves are accepted. */
    h = (mallet_chunk_header_t){.codec = MALLET_CODEC_ZSTD,
                                .disk_size = MALLET_CHUNK_MAX_SIZE,
                                .raw_size = MALLET_CHUNK_MAX_SIZE,
                                .count = MALLET_CHUNK_MAX_SIZE,
                                .first_seq = UINT64_MAX - MALLET_CHUNK_MAX_SIZE};
    mallet_chunk_header_pack(b, &h);
    CHECK(mallet_chunk_header_unpack(b, &u) == 0);

    /* The hash covers the length, not only the bytes. */
    CHECK(mallet_hash32("", 0) != mallet_hash32("\0", 1));
    uint8_t zeros[16] = {0};
    CHECK(mallet_hash32(zeros, 8) != mallet_hash32(zeros, 9));
}

/* ---- writer -> reader ---------------------------------------------------------------------- */

/* Expected identity of the threads of one file, as the writer numbers them. */
typedef struct gen_thread {
    uint32_t tid, serial;
    uint64_t seq, last;
} gen_thread_t;

typedef struct gen {
    gen_thread_t t[16];
    unsigned n;
} gen_t;

/* A plausible event of thread tid at time cycles: pointers from a heap-like range (sometimes
 * >= 2^48), realistic sizes, reallocs whose old block is given up between the thread's previous
 * event and this one. thread and seq are what the writer will assign. */
static mallet_event_t random_event(gen_t *g, uint32_t tid, uint64_t cycles)
{
    gen_thread_t *th = NULL;
    for (unsigned i = 0; i < g->n; i++)
        if (g->t[i].tid == tid) th = &g->t[i];
    if (!th) {
        CHECK(g->n < 16);
        th = &g->t[g->n];
        *th = (gen_thread_t){.tid = tid, .serial = g->n, .last = cycles};
        g->n++;
    }
    uint8_t op = all_ops[rnd_below(NOPS)];
    int failed = rnd_below(50) == 0 && op != MALLET_OP_FREE && op != MALLET_OP_RSS;
    uint64_t ptr = 0x5555550000ull + (rnd_below(1u << 20) << 4);
    if (rnd_below(20) == 0) ptr |= 0xffff000000000000ull;
    uint64_t old = rnd_below(8) ? 0x5555550000ull + (rnd_below(1u << 20) << 4) : 0;
    uint64_t a = rnd_below(8) ? rnd_below(4096) : rnd() >> rnd_below(64);
    uint64_t b = rnd_below(1u << 16);
    if (op == MALLET_OP_POSIX_MEMALIGN || op == MALLET_OP_MEMALIGN || op == MALLET_OP_ALIGNED_ALLOC)
        a = 1ull << rnd_below(16);
    /* Half the calls come from four sites, so SAME_SITE is common; the others are scattered. */
    uint64_t site = op == MALLET_OP_RSS ? 0 : 0x400000 + 0x10 * rnd_below(rnd_below(2) ? 4 : 4096);
    mallet_event_t e = make_event(op, failed, cycles, failed ? 0 : ptr, old, a, b, site,
                                  rnd_below(2) ? ENOMEM : EINVAL);
    if (is_realloc(op)) e.free_cycles = th->last + rnd_below(cycles - th->last + 1);
    e.tid = tid;
    e.thread = th->serial;
    e.seq = th->seq++;
    th->last = cycles;
    return e;
}

static const char cmdline[] = "prog\0--flag\0two words\0"; /* argv, each NUL-terminated */

static mallet_meta_t test_meta(uint64_t pid, int level)
{
    mallet_meta_t m = {.pid = pid,
                       .ppid = 77,
                       .start_realtime_ns = 1700000000000000001ull,
                       .start_ns = 123456789,
                       .start_cycles = 987654321,
                       .cmdline = cmdline,
                       .cmdline_len = sizeof cmdline - 1,
                       .exe = "/usr/bin/prog",
                       .forked = 1,
                       .fork_end_cycles = 987654999,
                       .level = level};
    return m;
}

/* Counts the chunks of a file by codec, walking the headers (checks the writer compressed). */
static void count_codecs(const char *path, unsigned *raw, unsigned *zstd)
{
    FILE *f = fopen(path, "rb");
    CHECK(f);
    uint8_t b[MALLET_CHUNK_HEADER_SIZE];
    *raw = *zstd = 0;
    CHECK(fseek(f, MALLET_FILE_HEADER_SIZE, SEEK_SET) == 0);
    while (fread(b, 1, sizeof b, f) == sizeof b) {
        mallet_chunk_header_t h;
        CHECK(mallet_chunk_header_unpack(b, &h) == 0);
        if (h.codec == MALLET_CODEC_ZSTD)
            ++*zstd;
        else
            ++*raw;
        CHECK(fseek(f, h.disk_size, SEEK_CUR) == 0);
    }
    fclose(f);
}

/* The records one (file, thread) must yield, in order: each event once, and a realloc with an
 * old block twice (RELEASE then ALLOC). */
typedef struct expect_thread {
    unsigned file;
    uint32_t thread;
    size_t *idx;
    uint8_t *part;
    size_t n, pos;
} expect_thread_t;

static expect_thread_t *find_thread(expect_thread_t *t, size_t nt, unsigned file, uint32_t thread)
{
    for (size_t i = 0; i < nt; i++)
        if (t[i].file == file && t[i].thread == thread) return &t[i];
    return NULL;
}

static uint64_t rec_key(const mallet_rec_t *r)
{
    return r->part == MALLET_PART_RELEASE ? r->ev.free_cycles : r->ev.cycles;
}

/* Reads paths and checks the merged stream against evs/files: global time order, per-thread
 * order, every field. Returns the reader (still open) for info checks. */
static mallet_reader_t *read_and_compare(const char *const *paths, unsigned npaths,
                                         const mallet_event_t *evs, const unsigned *files, size_t n)
{
    expect_thread_t th[64];
    size_t nth = 0;
    for (size_t i = 0; i < n; i++) {
        expect_thread_t *t = find_thread(th, nth, files[i], evs[i].thread);
        if (!t) {
            CHECK(nth < 64);
            t = &th[nth++];
            *t = (expect_thread_t){.file = files[i], .thread = evs[i].thread};
            t->idx = malloc(2 * n * sizeof *t->idx);
            t->part = malloc(2 * n);
            CHECK(t->idx && t->part);
        }
        if (is_realloc(evs[i].op) && evs[i].old_ptr) {
            t->idx[t->n] = i, t->part[t->n++] = MALLET_PART_RELEASE;
            t->idx[t->n] = i, t->part[t->n++] = MALLET_PART_ALLOC;
        } else {
            t->idx[t->n] = i, t->part[t->n++] = MALLET_PART_WHOLE;
        }
    }
    char err[512] = "";
    mallet_reader_t *r = mallet_reader_open(paths, npaths, err, sizeof err);
    CHECKF(r, "open: %s", err);
    CHECK(mallet_reader_nfiles(r) == npaths);
    mallet_rec_t rec, prev = {0};
    size_t got = 0, want = 0;
    for (size_t i = 0; i < nth; i++)
        want += th[i].n;
    int rc;
    while ((rc = mallet_reader_next(r, &rec)) == 1) {
        CHECKF(rec.file < npaths, "record %zu: file %u", got, rec.file);
        expect_thread_t *t = find_thread(th, nth, rec.file, rec.ev.thread);
        CHECKF(t, "record %zu: unexpected file %u thread %" PRIu32, got, rec.file, rec.ev.thread);
        CHECKF(t->pos < t->n, "record %zu: too many events for thread %" PRIu32, got,
               rec.ev.thread);
        CHECK_EV(&rec.ev, &evs[t->idx[t->pos]]);
        CHECKF(rec.part == t->part[t->pos], "record %zu: part %u, want %u", got, rec.part,
               t->part[t->pos]);
        t->pos++;
        if (got) {
            CHECKF(rec_key(&rec) >= rec_key(&prev), "record %zu goes back in time", got);
            CHECKF(rec.time_ns >= prev.time_ns, "record %zu: time_ns goes back", got);
            /* Ties between processes go to the earlier file. */
            if (rec_key(&rec) == rec_key(&prev)) CHECK(rec.file >= prev.file);
        }
        prev = rec;
        got++;
    }
    CHECKF(rc == 0, "next failed: %s", mallet_reader_error(r));
    CHECK(mallet_reader_next(r, &rec) == 0); /* the end is sticky */
    CHECKF(got == want, "read %zu records, want %zu", got, want);
    for (size_t i = 0; i < nth; i++)
        free(th[i].idx), free(th[i].part);
    return r;
}

static void check_info(const mallet_trace_info_t *in, const char *path, unsigned index,
                       uint64_t pid, uint64_t events, uint32_t threads)
{
    struct stat sb;
    CHECK(stat(path, &sb) == 0);
    CHECK(in->path == path || !strcmp(in->path, path));
    CHECK(in->file_index == index);
    CHECK(in->version == MALLET_TRACE_VERSION);
    CHECK(in->pid == (int64_t)pid && in->ppid == 77);
    CHECK(in->forked == 1);
    CHECK(in->start_realtime_ns == 1700000000000000001ull);
    CHECK(in->start_ns == 123456789 && in->start_cycles == 987654321);
    CHECK(in->fork_end_cycles == 987654999);
    CHECKF(in->cmdline && !strcmp(in->cmdline, "prog --flag two words"), "cmdline '%s'",
           in->cmdline ? in->cmdline : "(null)");
    CHECK(in->exe && !strcmp(in->exe, "/usr/bin/prog"));
    CHECKF(in->events == events, "info events %" PRIu64 " want %" PRIu64, in->events, events);
    CHECKF(in->threads == threads, "info threads %" PRIu32 " want %" PRIu32, in->threads, threads);
    CHECK(in->ended_cleanly == 1 && in->end_reason == MALLET_END_EXIT);
    CHECK(in->cut == 0 && in->cut_bytes == 0);
    CHECK(in->file_bytes == (uint64_t)sb.st_size);
    CHECK(in->chunks >= 3); /* META, events, END at least */
    CHECK(in->ns_per_cycle > 0);
}

static void test_roundtrip(int level)
{
    enum { N = 120000, T = 5 };
    const char *path = tmp_path(level ? "rt-zstd.mtrace" : "rt-raw.mtrace");
    mallet_meta_t meta = test_meta(4242, level);
    char err[512] = "";
    mallet_writer_t *w = mallet_writer_open(path, &meta, level, err, sizeof err);
    CHECKF(w, "writer_open: %s", err);

    mallet_event_t *evs = malloc(N * sizeof *evs);
    unsigned *files = calloc(N, sizeof *files);
    CHECK(evs && files);
    gen_t g = {0};
    /* Start at the real counter so the reader's cycles->ns line stays in range; steps of 0 make
     * ties between threads. */
    uint64_t t = mallet_cycles();
    static const char maps1[] = "00400000-00401000 r-xp 00000000 08:01 1 /usr/bin/prog\n";
    static const char maps2[] = "00400000-00402000 r-xp 00000000 08:01 1 /usr/bin/prog\n"
                                "7f0000000000-7f0000001000 r-xp 00000000 08:01 2 /lib/libc.so\n";
    for (size_t i = 0; i < N; i++) {
        t += rnd_below(4) ? rnd_below(40) : 0;
        /* Uneven weights: the first threads fill many chunks, the last holds a few hundred
         * events in one chunk. tids are not 0..T-1, so tid and serial differ. */
        uint32_t tid = 100 + (uint32_t)(rnd_below(1000) < 998 ? rnd_below(T - 1) : T - 1);
        evs[i] = random_event(&g, tid, t);
        CHECK(mallet_writer_event(w, &evs[i]) == 0);
        if (i == N / 3) CHECK(mallet_writer_maps(w, maps1, sizeof maps1 - 1) == 0);
        if (i == N / 2) CHECK(mallet_writer_flush(w) == 0); /* a chunk boundary for every thread */
        if (i == 2 * N / 3) CHECK(mallet_writer_maps(w, maps2, sizeof maps2 - 1) == 0);
    }
    CHECK(mallet_writer_close(w, 1) == 0);

    unsigned nraw, nzstd;
    count_codecs(path, &nraw, &nzstd);
    if (level)
        CHECKF(nzstd >= 10, "only %u zstd chunks", nzstd);
    else
        CHECK(nzstd == 0);

    const char *paths[] = {path};
    mallet_reader_t *r = read_and_compare(paths, 1, evs, files, N);
    const mallet_trace_info_t *in = mallet_reader_info(r, 0);
    CHECK(in && mallet_reader_info(r, 1) == NULL);
    check_info(in, path, 0, 4242, N, T);
    char both[sizeof maps1 + sizeof maps2 + 2]; /* every snapshot, newest first */
    snprintf(both, sizeof both, "%s\n\n%s", maps2, maps1);
    CHECKF(in->maps && !strcmp(in->maps, both), "maps text: %s", in->maps ? in->maps : "NULL");
    mallet_reader_close(r);
    check_next_run(paths, 1); /* five threads, many chunks, every op */
    free(evs);
    free(files);
}

/* Two threads taking turns at random, often at the same time stamp, in many chunks: next_run
 * chooses between two cursors with masks (reader.c, next_of_two), and must give the same order
 * as next, chunk boundaries and ties included. */
static void test_two_threads(void)
{
    enum { N = 50000 };
    const char *path = tmp_path("two.mtrace");
    mallet_meta_t meta = test_meta(4343, 0);
    char err[512] = "";
    mallet_writer_t *w = mallet_writer_open(path, &meta, 0, err, sizeof err);
    CHECKF(w, "writer_open: %s", err);
    mallet_event_t *evs = malloc(N * sizeof *evs);
    unsigned *files = calloc(N, sizeof *files);
    CHECK(evs && files);
    gen_t g = {0};
    uint64_t t = mallet_cycles();
    for (size_t i = 0; i < N; i++) {
        t += rnd_below(2) ? rnd_below(10) : 0;
        evs[i] = random_event(&g, 4343 + (uint32_t)rnd_below(2), t);
        CHECK(mallet_writer_event(w, &evs[i]) == 0);
        if (i % 7919 == 0) CHECK(mallet_writer_flush(w) == 0); /* chunk boundaries */
    }
    CHECK(mallet_writer_close(w, 1) == 0);
    const char *paths[] = {path};
    mallet_reader_t *r = read_and_compare(paths, 1, evs, files, N);
    check_info(mallet_reader_info(r, 0), path, 0, 4343, N, 2);
    mallet_reader_close(r);
    check_next_run(paths, 1);
    free(evs);
    free(files);
}

/* Two processes recorded at the same time: their events interleave, and both use tid 1. */
static void test_merge(void)
{
    enum { N = 60000 };
    const char *pa = tmp_path("merge-a.mtrace"), *pb = tmp_path("merge-b.mtrace");
    mallet_meta_t ma = test_meta(500, 0), mb = test_meta(501, 1);
    char err[512] = "";
    mallet_writer_t *w[2];
    w[0] = mallet_writer_open(pa, &ma, 0, err, sizeof err);
    CHECKF(w[0], "%s", err);
    w[1] = mallet_writer_open(pb, &mb, 1, err, sizeof err);
    CHECKF(w[1], "%s", err);
    mallet_event_t *evs = malloc(N * sizeof *evs);
    unsigned *files = malloc(N * sizeof *files);
    CHECK(evs && files);
    gen_t g[2];
    memset(g, 0, sizeof g);
    uint64_t t = mallet_cycles();
    size_t count[2] = {0};
    for (size_t i = 0; i < N; i++) {
        t += rnd_below(3) ? rnd_below(20) : 0;
        unsigned f = (unsigned)rnd_below(2);
        uint32_t tid = f == 0 ? (uint32_t)(1 + rnd_below(2)) : (uint32_t)(1 + 2 * rnd_below(2));
        files[i] = f;
        evs[i] = random_event(&g[f], tid, t);
        CHECK(mallet_writer_event(w[f], &evs[i]) == 0);
        count[f]++;
    }
    CHECK(mallet_writer_close(w[0], 1) == 0 && mallet_writer_close(w[1], 1) == 0);

    const char *paths[] = {pa, pb};
    mallet_reader_t *r = read_and_compare(paths, 2, evs, files, N);
    check_info(mallet_reader_info(r, 0), pa, 0, 500, count[0], 2);
    check_info(mallet_reader_info(r, 1), pb, 1, 501, count[1], 2);
    CHECK(mallet_reader_info(r, 0)->maps == NULL);
    mallet_reader_close(r);
    check_next_run(paths, 2); /* two files: one merge over both */

    /* The same files in the other order: indexes follow the argument order. */
    const char *rev[] = {pb, pa};
    for (size_t i = 0; i < N; i++)
        files[i] ^= 1;
    r = read_and_compare(rev, 2, evs, files, N);
    CHECK(mallet_reader_info(r, 0)->pid == 501 && mallet_reader_info(r, 1)->pid == 500);
    mallet_reader_close(r);
    free(evs);
    free(files);
}

/* ---- hand-built files: what the writer does not produce ------------------------------------ */

static int hand_open(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    CHECKF(fd >= 0, "%s: %s", path, strerror(errno));
    uint8_t fh[MALLET_FILE_HEADER_SIZE], mb[512];
    mallet_file_header_pack(fh);
    CHECK(write(fd, fh, sizeof fh) == (ssize_t)sizeof fh);
    mallet_meta_t m = test_meta(9, 0);
    size_t n = mallet_meta_encode(mb, sizeof mb, &m);
    CHECK(n > 0);
    mallet_chunk_header_t h = {.type = MALLET_CHUNK_META};
    CHECK(mallet_chunk_write(fd, &h, mb, n, NULL, 0, NULL, 0) == 0);
    return fd;
}

static void hand_chunk(int fd, uint8_t type, const void *payload, size_t len)
{
    mallet_chunk_header_t h = {.type = type};
    CHECK(mallet_chunk_write(fd, &h, payload, len, NULL, 0, NULL, 0) == 0);
}

/* One EVENTS chunk holding evs[first..first+n) of one thread, as the recorder writes it. */
static void hand_events(int fd, const mallet_event_t *evs, uint64_t first, uint32_t n,
                        uint16_t flags)
{
    uint8_t buf[64 * MALLET_EVENT_MAX_SIZE], *p = buf;
    mallet_enc_state_t st = {0};
    CHECK(n > 0 && n <= 64);
    for (uint32_t i = 0; i < n; i++)
        p = mallet_encode_event(p, &st, &evs[first + i]);
    /* first_cycles is the first event's earliest time: a realloc's release comes first. */
    const mallet_event_t *e0 = &evs[first];
    uint64_t start = is_realloc(e0->op) && e0->old_ptr && e0->free_cycles < e0->cycles
                         ? e0->free_cycles
                         : e0->cycles;
    mallet_chunk_header_t h = {.type = MALLET_CHUNK_EVENTS,
                               .flags = flags,
                               .tid = evs[first].tid,
                               .thread = evs[first].thread,
                               .count = n,
                               .first_cycles = start,
                               .last_cycles = evs[first + n - 1].cycles,
                               .first_seq = first};
    CHECK(mallet_chunk_write(fd, &h, buf, (size_t)(p - buf), NULL, 0, NULL, 0) == 0);
}

/* A META with unknown keys, an unknown chunk type, an END with a reason: defaults apply and the
 * unknown parts are skipped (the forward-compatibility rule). */
static void test_defaults_and_unknowns(void)
{
    const char *path = tmp_path("unknown.mtrace");
    char err[512] = "";
    mallet_writer_t *w = mallet_writer_open(path, NULL, 0, err, sizeof err);
    CHECKF(w, "%s", err);
    mallet_event_t e = make_event(MALLET_OP_MALLOC, 0, 1000, 0x1000, 0, 16, 0, 0x400000, 0);
    e.tid = 9;
    CHECK(mallet_writer_event(w, &e) == 0);
    CHECK(mallet_writer_close(w, 0) == 0);

    /* Before the reopen, the writer's defaults: pid 1, nothing else. */
    const char *paths[] = {path};
    mallet_reader_t *r = mallet_reader_open(paths, 1, err, sizeof err);
    CHECKF(r, "%s", err);
    const mallet_trace_info_t *in = mallet_reader_info(r, 0);
    CHECK(in->pid == 1 && in->ppid == 0 && in->forked == 0 && in->start_ns == 0);
    CHECK(in->exe == NULL || !strcmp(in->exe, ""));
    CHECK(in->cmdline == NULL || !strcmp(in->cmdline, ""));
    CHECK(in->maps == NULL && in->ended_cleanly == 0 && in->cut == 0);
    mallet_reader_close(r);

    /* Append: an unknown chunk type; a second META with an unknown key (200), an unknown key 99
     * whose value is not a varint, and a new pid; an END saying the image exec'd. */
    int fd = open(path, O_WRONLY | O_APPEND);
    CHECK(fd >= 0);
    const uint8_t junk[] = "future chunk payload";
    hand_chunk(fd, 77, junk, sizeof junk);
    uint8_t meta[64], *m = meta;
    *m++ = 200;
    m = mallet_put_varint(m, 3);
    memcpy(m, "abc", 3), m += 3;
    *m++ = 99;
    m = mallet_put_varint(m, 2);
    *m++ = 0xff, *m++ = 0xff;
    uint8_t num[16];
    size_t nl = (size_t)(mallet_put_varint(num, 33) - num);
    *m++ = MALLET_META_PID;
    m = mallet_put_varint(m, nl);
    memcpy(m, num, nl), m += nl;
    hand_chunk(fd, MALLET_CHUNK_META, meta, (size_t)(m - meta));
    const uint8_t why = MALLET_END_EXEC;
    hand_chunk(fd, MALLET_CHUNK_END, &why, 1);
    CHECK(close(fd) == 0);

    r = mallet_reader_open(paths, 1, err, sizeof err);
    CHECKF(r, "unknown chunk type or META key refused: %s", err);
    in = mallet_reader_info(r, 0);
    CHECK(in->pid == 33); /* the later META wins */
    CHECK(in->ended_cleanly == 1 && in->end_reason == MALLET_END_EXEC && in->cut == 0);
    CHECK(in->events == 1 && in->threads == 1 && in->chunks == 5);
    mallet_rec_t rec;
    CHECK(mallet_reader_next(r, &rec) == 1);
    CHECK_EV(&rec.ev, &e);
    CHECK(rec.part == MALLET_PART_WHOLE && rec.file == 0);
    CHECK(mallet_reader_next(r, &rec) == 0);
    mallet_reader_close(r);
}

/* A dying process copies other threads' buffers as they are, so a later chunk of the same thread
 * may repeat events (same first_seq): the reader yields each (thread, seq) once. */
static void test_repeats(void)
{
    enum { N7 = 15, N8 = 8 };
    mallet_event_t t7[N7], t8[N8];
    for (unsigned i = 0; i < N7; i++) {
        t7[i] = make_event(i % 3 == 1 ? MALLET_OP_REALLOC : MALLET_OP_MALLOC, 0, 100 + 10 * i,
                           0x1000 + 16 * i, 0x900 + i, i, 0, 0x400000 + i, 0);
        if (i % 3 == 1) t7[i].free_cycles = t7[i].cycles - 5;
        t7[i].tid = 700, t7[i].thread = 7, t7[i].seq = i;
    }
    for (unsigned i = 0; i < N8; i++) {
        t8[i] = make_event(MALLET_OP_FREE, 0, 105 + 10 * i, 0x2000 + 16 * i, 0, 0, 0, 0x401000, 0);
        t8[i].tid = 800, t8[i].thread = 8, t8[i].seq = i;
    }
    const char *path = tmp_path("repeats.mtrace");
    int fd = hand_open(path);
    hand_events(fd, t7, 0, 5, MALLET_CHUNK_F_EMERGENCY); /* copy of 0..4 */
    hand_events(fd, t8, 0, 6, 0);
    hand_events(fd, t7, 0, 10, 0); /* the owner's flush: 0..9 */
    hand_events(fd, t7, 10, 5, 0);
    hand_events(fd, t8, 6, 2, MALLET_CHUNK_F_EMERGENCY);  /* 8 died: its last two, once */
    hand_events(fd, t7, 12, 3, MALLET_CHUNK_F_EMERGENCY); /* a late copy of 12..14 */
    CHECK(close(fd) == 0);

    const char *paths[] = {path};
    char err[512] = "";
    mallet_reader_t *r = mallet_reader_open(paths, 1, err, sizeof err);
    CHECKF(r, "%s", err);
    CHECK(mallet_reader_info(r, 0)->threads == 2);
    mallet_rec_t rec, prev = {0};
    unsigned next7 = 0, next8 = 0, n = 0;
    int rc, release_pending = 0;
    while ((rc = mallet_reader_next(r, &rec)) == 1) {
        if (n++) CHECK(rec_key(&rec) >= rec_key(&prev));
        prev = rec;
        if (rec.ev.thread == 8) {
            CHECKF(next8 < N8, "thread 8: extra record seq %" PRIu64, rec.ev.seq);
            CHECK_EV(&rec.ev, &t8[next8]);
            next8++;
            continue;
        }
        CHECKF(rec.ev.thread == 7 && next7 < N7,
               "unexpected record thread %" PRIu32 " seq %" PRIu64, rec.ev.thread, rec.ev.seq);
        CHECK_EV(&rec.ev, &t7[next7]);
        if (t7[next7].op == MALLET_OP_REALLOC) { /* twice: RELEASE then ALLOC */
            CHECK(rec.part == (release_pending ? MALLET_PART_ALLOC : MALLET_PART_RELEASE));
            release_pending = !release_pending;
            if (release_pending) continue;
        } else {
            CHECK(rec.part == MALLET_PART_WHOLE);
        }
        next7++;
    }
    CHECKF(rc == 0, "%s", mallet_reader_error(r));
    CHECKF(next7 == N7 && next8 == N8, "yielded %u of %u and %u of %u", next7, N7, next8, N8);
    mallet_reader_close(r);
    CHECK(check_next_run(paths, 1) == N7 + N8 + N7 / 3); /* reallocs come in two parts */
}

/* A thread whose counter goes backwards (say a migration between cores whose counters differ),
 * inside a chunk and across a chunk boundary: the reader clamps the times so that the stream
 * never goes back, keeps the thread's own order, and loses nothing. */
static void test_backwards_clock(void)
{
    const char *path = tmp_path("backwards.mtrace");
    char err[512] = "";
    mallet_writer_t *w = mallet_writer_open(path, NULL, 0, err, sizeof err);
    CHECKF(w, "%s", err);
    static const uint64_t t1[] = {1000, 2000, 1500, 3000, /* flush */ 2500, 2600, 5000};
    static const uint64_t t2[] = {1200, 2700, 2800, 4000};
    mallet_event_t e = make_event(MALLET_OP_MALLOC, 0, 0, 0x1000, 0, 1, 0, 0x400000, 0);
    for (size_t i = 0; i < 7; i++) {
        e.tid = 1, e.cycles = t1[i], e.size = i;
        CHECK(mallet_writer_event(w, &e) == 0);
        if (i < 4) {
            e.tid = 2, e.cycles = t2[i], e.size = 100 + i;
            CHECK(mallet_writer_event(w, &e) == 0);
        }
        if (i == 3) CHECK(mallet_writer_flush(w) == 0);
    }
    CHECK(mallet_writer_close(w, 1) == 0);
    const char *paths[] = {path};
    mallet_reader_t *r = mallet_reader_open(paths, 1, err, sizeof err);
    CHECKF(r, "%s", err);
    mallet_rec_t rec;
    uint64_t prev = 0, next1 = 0, next2 = 100;
    int rc;
    while ((rc = mallet_reader_next(r, &rec)) == 1) {
        CHECKF(rec.ev.cycles >= prev, "goes back in time: %" PRIu64 " after %" PRIu64,
               rec.ev.cycles, prev);
        prev = rec.ev.cycles;
        if (rec.ev.tid == 1)
            CHECKF(rec.ev.size == next1++, "thread 1: event %" PRIu64 " where %" PRIu64 " was due",
                   rec.ev.size, next1 - 1);
        else
            CHECKF(rec.ev.size == next2++, "thread 2: event %" PRIu64 " where %" PRIu64 " was due",
                   rec.ev.size, next2 - 1);
    }
    CHECKF(rc == 0, "%s", mallet_reader_error(r));
    CHECKF(next1 == 7 && next2 == 104, "yielded %" PRIu64 " of 7 and %" PRIu64 " of 4", next1,
           next2 - 100);
    mallet_reader_close(r);
}

/* Sparse stamps: in a file with one thread, events that carry the previous reading's time are
 * spread evenly up to the next reading, also when the run crosses the reader's decoding batches;
 * a run that ends a chunk keeps its time (the next reading is in another chunk), and so do all
 * runs in a file with two threads. */
static uint64_t spread_case(int two_threads, const uint64_t *t, size_t n, size_t flush_after,
                            uint64_t end_at, uint64_t *out)
{
    const char *path = tmp_path(two_threads ? "spread2.mtrace" : "spread1.mtrace");
    char err[512] = "";
    mallet_writer_t *w = mallet_writer_open(path, NULL, 0, err, sizeof err);
    CHECKF(w, "%s", err);
    mallet_event_t e = make_event(MALLET_OP_MALLOC, 0, 0, 0x1000, 0, 1, 0, 0x400000, 0);
    for (size_t i = 0; i < n; i++) {
        e.tid = 1, e.cycles = t[i], e.size = i, e.ptr = 0x1000 + 16 * i;
        if (i == 33) { /* a realloc whose two stamps were both carried */
            e.op = MALLET_OP_REALLOC, e.old_ptr = 0x1000 + 16 * 32, e.free_cycles = t[i];
        } else {
            e.op = MALLET_OP_MALLOC, e.old_ptr = 0, e.free_cycles = 0;
        }
        CHECK(mallet_writer_event(w, &e) == 0);
        if (i + 1 == flush_after) CHECK(mallet_writer_flush(w) == 0);
    }
    if (two_threads) {
        e = make_event(MALLET_OP_MALLOC, 0, t[n - 1] + 1, 0x9000, 0, 2, 0, 0x400000, 0);
        e.tid = 2;
        CHECK(mallet_writer_event(w, &e) == 0);
    }
    CHECK(mallet_writer_close(w, 1) == 0);
    if (end_at) { /* the first chunk ends at a later reading, as a full buffer's (tbuf.c) */
        size_t len;
        uint8_t *b = get_file(path, &len);
        mallet_chunk_header_t h;
        uint64_t off = MALLET_FILE_HEADER_SIZE;
        for (; off + MALLET_CHUNK_HEADER_SIZE <= len; off += MALLET_CHUNK_HEADER_SIZE + h.disk_size) {
            CHECK(mallet_chunk_header_unpack(b + off, &h) == 0);
            if (h.type == MALLET_CHUNK_EVENTS) break;
        }
        CHECK(off + MALLET_CHUNK_HEADER_SIZE <= len);
        h.last_cycles = end_at;
        mallet_chunk_header_pack(b + off, &h);
        put_file(path, b, len);
        free(b);
    }
    const char *paths[] = {path};
    mallet_reader_t *r = mallet_reader_open(paths, 1, err, sizeof err);
    CHECKF(r, "%s", err);
    mallet_rec_t rec;
    uint64_t got = 0;
    int rc;
    while ((rc = mallet_reader_next(r, &rec)) == 1) {
        if (rec.ev.tid != 1 || rec.part == MALLET_PART_RELEASE) continue;
        if (rec.ev.op == MALLET_OP_REALLOC)
            CHECKF(rec.ev.free_cycles == rec.ev.cycles, "realloc: free_cycles %" PRIu64
                   " cycles %" PRIu64, rec.ev.free_cycles, rec.ev.cycles);
        if (got < n) out[got] = rec.ev.cycles;
        got++;
    }
    CHECKF(rc == 0, "%s", mallet_reader_error(r));
    mallet_reader_close(r);
    check_next_run(paths, 1); /* a one-thread run, and batches held back for spreading */
    return got;
}

static void test_spread(void)
{
    /* 30 readings, then a run of 7 carried crossing the first 32-event batch, a reading, then a
     * run of 3 that ends its chunk, then (next chunk) a run ended by a reading. */
    enum { N = 48 };
    uint64_t t[N], want[N], got[N];
    size_t i = 0;
    for (; i < 30; i++) t[i] = want[i] = 1000 + 100 * i; /* ..3900 */
    for (size_t j = 0; j < 8; j++, i++) t[i] = 4000, want[i] = 4000 + 100 * j; /* 4000..4700 */
    t[i] = want[i] = 4800, i++;
    for (size_t j = 0; j < 3; j++, i++) t[i] = want[i] = 5000;    /* ends the chunk: stays */
    size_t flush_after = i;
    for (size_t j = 0; j < 5; j++, i++) t[i] = 6000, want[i] = 6000 + 200 * j; /* 6000..6800 */
    t[i] = want[i] = 7000, i++;
    CHECK(i == N);
    CHECK(spread_case(0, t, N, flush_after, 0, got) == N);
    for (i = 0; i < N; i++) CHECKF(got[i] == want[i], "one thread, event %zu: %" PRIu64
                                   " where %" PRIu64 " was due", i, got[i], want[i]);
    CHECK(spread_case(1, t, N, flush_after, 0, got) == N);
    for (i = 0; i < N; i++) CHECKF(got[i] == t[i], "two threads, event %zu: %" PRIu64
                                   " where %" PRIu64 " was recorded", i, got[i], t[i]);
}

/* Runs far longer than a decoding batch (a single-threaded process keeps one time a 100 us step:
 * ~1,000 events), spread whole up to the reader's SPREAD_MAX (8192 events); a longer run keeps
 * its time but for its last batch's part. A run that ends its chunk is spread up to the chunk's
 * last_cycles where that is later than the run's time (a full buffer's chunk ends at a reading). */
static void test_spread_long(void)
{
    enum { LONG = 2001, HUGE = 9001 };
    static uint64_t t[HUGE], got[HUGE];
    for (size_t i = 0; i < LONG; i++) t[i] = 1000;
    t[LONG - 1] = 1000 + 10 * (LONG - 1);
    CHECK(spread_case(0, t, LONG, LONG, 0, got) == LONG);
    for (size_t i = 0; i < LONG; i++)
        CHECKF(got[i] == 1000 + 10 * i, "run of %d, event %zu: %" PRIu64, LONG - 1, i, got[i]);
    CHECK(spread_case(1, t, LONG, LONG, 0, got) == LONG);
    for (size_t i = 0; i < LONG; i++)
        CHECKF(got[i] == t[i], "two threads, event %zu: %" PRIu64, i, got[i]);

    for (size_t i = 0; i < HUGE; i++) t[i] = 1000;
    t[HUGE - 1] = 1000 + 10 * (HUGE - 1);
    CHECK(spread_case(0, t, HUGE, HUGE, 0, got) == HUGE);
    for (size_t i = 0; i < 8192; i++)
        CHECKF(got[i] == 1000, "run of %d, event %zu: %" PRIu64 " (kept)", HUGE - 1, i, got[i]);
    for (size_t i = 8193; i < HUGE; i++)
        CHECKF(got[i] > got[i - 1], "run of %d, event %zu: %" PRIu64 " after %" PRIu64, HUGE - 1,
               i, got[i], got[i - 1]);

    /* 100 events carrying 1000 end the first chunk; the next one starts at 5000 */
    for (size_t i = 0; i < 101; i++) t[i] = i < 100 ? 1000 : 5000;
    CHECK(spread_case(0, t, 101, 100, 1990, got) == 101);
    for (size_t i = 0; i < 101; i++)
        CHECKF(got[i] == (i < 100 ? 1000 + 10 * i : 5000), "chunk's last run, event %zu: %" PRIu64,
               i, got[i]);
    CHECK(spread_case(0, t, 101, 100, 0, got) == 101); /* last_cycles its last event's: kept */
    for (size_t i = 0; i < 101; i++)
        CHECKF(got[i] == t[i], "chunk's last run kept, event %zu: %" PRIu64, i, got[i]);
}

/* Marks (version 3): the time of a mark goes to the event before it, so that a run of carried
 * times that a pause ends is spread up to the mark, not over the pause; a mark that opens a chunk
 * or ends one (nothing to give its time to) is read past. One thread: readings at 1000 and 9000,
 * nine events carrying 1000 between them, a mark at 1900 before the last; the first chunk ends
 * with a mark, the second opens with one. */
static void test_marks(void)
{
    const char *path = tmp_path("marks.mtrace");
    char err[512] = "";
    mallet_writer_t *w = mallet_writer_open(path, NULL, 0, err, sizeof err);
    CHECKF(w, "%s", err);
    static const uint64_t t[] = {1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 9000};
    for (size_t i = 0; i < 11; i++) {
        mallet_event_t e = make_event(MALLET_OP_MALLOC, 0, t[i], 0x1000 + 16 * i, 0, 8, 0, 0x400000, 0);
        e.tid = 1;
        if (i == 10) CHECK(mallet_writer_mark(w, 1, 1900) == 0);
        CHECK(mallet_writer_event(w, &e) == 0);
    }
    CHECK(mallet_writer_mark(w, 1, 9100) == 0); /* ends the chunk */
    CHECK(mallet_writer_flush(w) == 0);
    CHECK(mallet_writer_mark(w, 1, 9200) == 0); /* opens the next one */
    mallet_event_t e = make_event(MALLET_OP_FREE, 0, 9300, 0x1000, 0, 0, 0, 0x400100, 0);
    e.tid = 1;
    CHECK(mallet_writer_event(w, &e) == 0);
    CHECK(mallet_writer_close(w, 1) == 0);
    const char *paths[] = {path};
    mallet_reader_t *r = mallet_reader_open(paths, 1, err, sizeof err);
    CHECKF(r, "%s", err);
    CHECK(mallet_reader_info(r, 0)->events == 12); /* marks are not events */
    static const uint64_t want[] = {1000, 1100, 1200, 1300, 1400, 1500, 1600, 1700, 1800, 1900,
                                    9000, 9300};
    mallet_rec_t rec;
    size_t n = 0;
    int rc;
    while ((rc = mallet_reader_next(r, &rec)) == 1) {
        CHECKF(n < 12 && rec.ev.cycles == want[n], "record %zu at %" PRIu64 " where %" PRIu64
               " was due", n, rec.ev.cycles, n < 12 ? want[n] : 0);
        n++;
    }
    CHECKF(rc == 0 && n == 12, "%zu records, rc %d: %s", n, rc, mallet_reader_error(r));
    mallet_reader_close(r);
    check_next_run(paths, 1);

    /* A mark before a realloc gives the event before no later time than the realloc's release
     * (found by the fuzzer: the release went back in time): malloc at 1000, a mark at 1500, a
     * realloc released at 1200 and returned at 2000. */
    w = mallet_writer_open(path, NULL, 0, err, sizeof err);
    CHECKF(w, "%s", err);
    e = make_event(MALLET_OP_MALLOC, 0, 1000, 0x1000, 0, 8, 0, 0x400000, 0);
    e.tid = 1;
    CHECK(mallet_writer_event(w, &e) == 0);
    CHECK(mallet_writer_mark(w, 1, 1500) == 0);
    e = make_event(MALLET_OP_REALLOC, 0, 2000, 0x2000, 0x1000, 32, 0, 0x400000, 0);
    e.tid = 1, e.free_cycles = 1200;
    CHECK(mallet_writer_event(w, &e) == 0);
    CHECK(mallet_writer_close(w, 1) == 0);
    r = mallet_reader_open(paths, 1, err, sizeof err);
    CHECKF(r, "%s", err);
    static const uint64_t want2[] = {1200, 1200, 2000}; /* malloc; the realloc's two parts */
    n = 0;
    while ((rc = mallet_reader_next(r, &rec)) == 1) {
        uint64_t key = rec.part == MALLET_PART_RELEASE ? rec.ev.free_cycles : rec.ev.cycles;
        CHECKF(n < 3 && key == want2[n], "realloc case, record %zu at %" PRIu64, n, key);
        n++;
    }
    CHECKF(rc == 0 && n == 3, "realloc case: %zu records, rc %d", n, rc);
    mallet_reader_close(r);
}

/* A run of carried times ended by a realloc: its release comes before its allocation, so the
 * run is spread up to the release (found by the fuzzer: the spread times went past a release
 * that had carried the run's time, and the records went back in time). Each case: a reading at
 * 1000, two carried events, the realloc (release at `rel`, allocation read at 1400), a malloc
 * at 1500; want: the spread times, the release's time. */
static void test_spread_realloc(void)
{
    static const struct {
        uint64_t rel, want1, want2, want_rel;
    } cases[] = {
        {1000, 1100, 1200, 1300}, /* the release carried too: the run's last member */
        {1300, 1100, 1200, 1300}, /* the release read the clock: the run stops there */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *path = tmp_path("spread-realloc.mtrace");
        char err[512] = "";
        mallet_writer_t *w = mallet_writer_open(path, NULL, 0, err, sizeof err);
        CHECKF(w, "%s", err);
        static const uint64_t t[] = {1000, 1000, 1000, 1400, 1500};
        for (size_t i = 0; i < 5; i++) {
            mallet_event_t e =
                make_event(MALLET_OP_MALLOC, 0, t[i], 0x1000 + 16 * i, 0, 8, 0, 0x400000, 0);
            if (i == 3) {
                e = make_event(MALLET_OP_REALLOC, 0, t[i], 0x2000, 0x1000, 32, 0, 0x400000, 0);
                e.free_cycles = cases[c].rel;
            }
            e.tid = 1;
            CHECK(mallet_writer_event(w, &e) == 0);
        }
        CHECK(mallet_writer_close(w, 1) == 0);
        const char *paths[] = {path};
        mallet_reader_t *r = mallet_reader_open(paths, 1, err, sizeof err);
        CHECKF(r, "%s", err);
        static const uint8_t parts[] = {MALLET_PART_WHOLE,   MALLET_PART_WHOLE, MALLET_PART_WHOLE,
                                        MALLET_PART_RELEASE, MALLET_PART_ALLOC, MALLET_PART_WHOLE};
        const uint64_t want[] = {1000, cases[c].want1, cases[c].want2, cases[c].want_rel, 1400,
                                 1500};
        mallet_rec_t rec;
        size_t n = 0;
        int rc;
        while ((rc = mallet_reader_next(r, &rec)) == 1) {
            uint64_t key = rec.part == MALLET_PART_RELEASE ? rec.ev.free_cycles : rec.ev.cycles;
            CHECKF(n < 6 && rec.part == parts[n] && key == want[n],
                   "case %zu, record %zu: part %u at %" PRIu64 " where %" PRIu64 " was due", c, n,
                   rec.part, key, n < 6 ? want[n] : 0);
            n++;
        }
        CHECKF(rc == 0 && n == 6, "case %zu: %zu records, rc %d", c, n, rc);
        mallet_reader_close(r);
        check_next_run(paths, 1);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1) seed = strtoull(argv[1], NULL, 0);
    rng_state = seed ? seed : 1;
    test_varint();
    test_codec();
    test_same_time();
    test_chunk_header();
    test_roundtrip(0);
    test_roundtrip(3);
    test_two_threads();
    test_merge();
    test_defaults_and_unknowns();
    test_repeats();
    test_backwards_clock();
    test_spread();
    test_spread_long();
    test_marks();
    test_spread_realloc();
    printf("test_format: ok\n");
    return 0;
}
