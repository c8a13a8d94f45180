/* Packed EVENTS chunks (trace/pack.h): a thread's chunks packed in turn unpack, in turn, to the
 * very bytes they came from, in each of the four forms (model, zstd, raw, symbols); a payload the
 * encoder would not write is left alone; a chunk out of its thread's order, a wrong size or
 * count, and damaged or cut packed bytes are refused (never a crash: this runs under ASan). */
#include "check.h"
#include "trace/encode.h"
#include "trace/pack.h"

#include <stdlib.h>

static uint64_t state = 0x7061636bull;
static uint64_t rnd(void)
{
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return state;
}

typedef struct chunk {
    uint8_t raw[1 << 16];
    size_t len;
    uint32_t count;
} chunk_t;

/* A heap of 300 slots, as malloc_bench's: each call frees a full slot or fills an empty one,
 * with every op now and then, marks, failures, NULL and foreign frees, RSS samples. repeat 1: the
 * same 8 calls over and over (what zstd packs better than the model); 2: the same 4 calls on
 * new blocks each time, at random times (what zstd packs best from the model's symbols, where
 * the blocks' ranks and the addresses' steps repeat). */
static uint64_t live[300];
static uint64_t next_addr = 0x555500000000ull, now = 1000;

static void make_chunk(chunk_t *c, unsigned n, int repeat)
{
    mallet_enc_state_t st = {0};
    uint8_t *p = c->raw;
    c->count = 0;
    for (unsigned i = 0; i < n; i++) {
        mallet_event_t e = {.callsite = 0x401000 + 16 * (rnd() % 3)};
        unsigned j = repeat ? i % 4 : (unsigned)(rnd() % 300);
        now += repeat == 1 ? 0 : repeat ? 1 + rnd() % 50 : i % 16 ? 0 : 300 + rnd() % 50;
        e.cycles = now;
        if (!repeat && rnd() % 50 == 0) p = mallet_encode_mark(p, &st, now += 5000);
        unsigned r = (unsigned)(rnd() % 100);
        if (repeat == 2) {
            static uint64_t pair[2];
            e.op = i % 4 < 2 ? MALLET_OP_MALLOC : MALLET_OP_FREE;
            e.callsite = 0x403000 + 16 * (i % 4);
            e.size = i % 4 ? 40 : 24;
            if (e.op == MALLET_OP_MALLOC)
                e.ptr = pair[i % 2] = (next_addr += 64);
            else
                e.ptr = pair[i % 2];
        } else if (repeat) {
            e.op = live[j] ? MALLET_OP_FREE : MALLET_OP_MALLOC;
            e.callsite = 0x402000;
            e.size = 24;
            e.ptr = live[j] ? live[j] : 0x7000 + 32 * j;
            live[j] = live[j] ? 0 : e.ptr;
        } else if (r < 2) {
            e.op = MALLET_OP_RSS, e.size = rnd() % (1u << 30), e.callsite = 0;
        } else if (r < 4) {
            e.op = MALLET_OP_FREE,
            e.ptr = r == 2 ? 0 : 0x9000 + 16 * (rnd() % 100); /* NULL, foreign */
        } else if (live[j]) {
            if (r < 20) { /* realloc: in place, moved, or failed */
                e.op = r < 8 ? MALLET_OP_REALLOCARRAY : MALLET_OP_REALLOC;
                e.old_ptr = live[j], e.size = 1 + rnd() % 600, e.nmemb = r < 8 ? 1 + rnd() % 4 : 0;
                e.free_cycles = now - rnd() % 3;
                e.failed = r == 19;
                e.ptr = e.failed ? 0 : r % 2 ? live[j] : (next_addr += 48);
                if (!e.failed) live[j] = e.ptr;
            } else {
                e.op = MALLET_OP_FREE, e.ptr = live[j], live[j] = 0;
            }
        } else {
            static const uint8_t ops[] = {MALLET_OP_CALLOC,        MALLET_OP_POSIX_MEMALIGN,
                                          MALLET_OP_ALIGNED_ALLOC, MALLET_OP_MEMALIGN,
                                          MALLET_OP_VALLOC,        MALLET_OP_PVALLOC};
            e.op = r < 30 ? ops[r % 6] : MALLET_OP_MALLOC;
            e.size = r == 99 ? 1ull << 40 : 8 + rnd() % 513;
            e.nmemb = e.op == MALLET_OP_CALLOC ? 1 + rnd() % 9 : 0;
            e.align = r < 30 && e.op != MALLET_OP_CALLOC ? 16u << (rnd() % 8) : 0;
            e.failed = r == 99;
            e.ret = e.failed && e.op == MALLET_OP_POSIX_MEMALIGN ? 12 : 0;
            /* reuse a block just freed now and then, as an allocator does */
            e.ptr = e.failed ? 0 : (next_addr += 16 * (1 + rnd() % 40));
            live[j] = e.ptr;
        }
        p = mallet_encode_event(p, &st, &e);
        c->count++;
    }
    c->len = (size_t)(p - c->raw);
}

static int forms[4];

/* Packs the chunks with one model, unpacks them with another: the same bytes. */
static void round_trip(chunk_t *cs, unsigned n, mallet_pack_buf_t *packed)
{
    mallet_pack_model_t *enc = mallet_pack_model_new(), *dec = mallet_pack_model_new();
    ZSTD_DCtx *dctx = NULL;
    for (unsigned i = 0; i < n; i++) {
        packed[i].len = 0;
        CHECK_EQ(mallet_pack_chunk(enc, cs[i].raw, cs[i].len, cs[i].count, 19, &packed[i]), 1);
        CHECK(packed[i].len > 1 && packed[i].p[0] <= 3);
        forms[packed[i].p[0] & 3]++;
        uint8_t *out = malloc(cs[i].len + MALLET_EVENT_MAX_SIZE);
        const char *why = NULL;
        CHECK_EQ(mallet_unpack_chunk(dec, &dctx, packed[i].p, packed[i].len, cs[i].count, out,
                                     cs[i].len, &why),
                 0);
        CHECK(!memcmp(out, cs[i].raw, cs[i].len));
        free(out);
    }
    mallet_pack_model_free(enc);
    mallet_pack_model_free(dec);
    ZSTD_freeDCtx(dctx);
}

/* Unpacks chunk 0 (with a fresh model) from in; returns the result, the output checked for
 * overruns by ASan. */
static int unpack_first(const chunk_t *c, const uint8_t *in, size_t len, const char **why)
{
    mallet_pack_model_t *m = mallet_pack_model_new();
    ZSTD_DCtx *dctx = NULL;
    uint8_t *out = malloc(c->len + MALLET_EVENT_MAX_SIZE);
    int r = mallet_unpack_chunk(m, &dctx, in, len, c->count, out, c->len, why);
    free(out);
    mallet_pack_model_free(m);
    ZSTD_freeDCtx(dctx);
    return r;
}

int main(void)
{
    static chunk_t cs[7];
    make_chunk(&cs[0], 3000, 0);
    make_chunk(&cs[1], 3000, 0); /* frees blocks of chunk 0: ranks across chunks */
    make_chunk(&cs[2], 4000, 1);
    make_chunk(&cs[3], 3, 0);
    make_chunk(&cs[4], 5000, 0);
    make_chunk(&cs[5], 1, 1);
    make_chunk(&cs[6], 4000, 2);
    mallet_pack_buf_t packed[7] = {{0}};
    round_trip(cs, 7, packed);
    CHECK(forms[0] >= 3); /* the random chunks: by the model */
    CHECK(forms[1] >= 1); /* the repeated calls: by zstd */
    CHECK(forms[2] >= 1); /* one event: as it is */
    CHECK(forms[3] >= 1); /* new blocks in a repeated pattern: the model's symbols by zstd */
    CHECK(packed[0].len * 2 < cs[0].len);

    /* Not as the encoder writes it (a size of 24 in the 4-byte form): not packed, and the model
     * is as it was (the next chunk gets ordinal 0: a fresh model unpacks it). */
    {
        chunk_t odd = {.count = 1};
        mallet_enc_state_t st = {0};
        mallet_event_t e = {.op = MALLET_OP_MALLOC, .size = 24, .ptr = 0x1000, .cycles = 5};
        odd.len = (size_t)(mallet_encode_event(odd.raw, &st, &e) - odd.raw);
        CHECK(odd.raw[3] == 48 && odd.raw[4] == 0); /* op, time (2), size 24 in 2 bytes */
        memmove(odd.raw + 5, odd.raw + 4, odd.len - 4);
        mallet_put_u32(odd.raw + 3, 24u << 2 | 1u);
        odd.len += 2;
        mallet_pack_model_t *m = mallet_pack_model_new();
        mallet_pack_buf_t b = {0};
        CHECK_EQ(mallet_pack_chunk(m, odd.raw, odd.len, 1, 3, &b), 0);
        CHECK_EQ(mallet_pack_chunk(m, odd.raw, odd.len, 2, 3, &b), 0); /* a wrong count too */
        CHECK_EQ(b.len, 0);
        CHECK_EQ(mallet_pack_chunk(m, cs[0].raw, cs[0].len, cs[0].count, 3, &b), 1);
        const char *why = NULL;
        CHECK_EQ(unpack_first(&cs[0], b.p, b.len, &why), 0);
        mallet_pack_model_free(m);
        free(b.p);
    }

    /* Out of order: chunk 1 before chunk 0. */
    {
        const char *why = NULL;
        mallet_pack_model_t *m = mallet_pack_model_new();
        ZSTD_DCtx *dctx = NULL;
        uint8_t *out = malloc(cs[1].len + MALLET_EVENT_MAX_SIZE);
        CHECK_EQ(mallet_unpack_chunk(m, &dctx, packed[1].p, packed[1].len, cs[1].count, out,
                                     cs[1].len, &why),
                 (uint64_t)-1);
        CHECK_STREQ(why, "packed chunk out of its thread's order");
        free(out);
        mallet_pack_model_free(m);
        ZSTD_freeDCtx(dctx);
    }

    /* The wrong count or size; then every cut and 2,000 damaged copies of a chunk in the model's
     * form and of one in the symbols' form: refused or unpacked to raw_len bytes, never past
     * them. */
    {
        const char *why = NULL;
        chunk_t c = cs[0];
        c.count++;
        CHECK_EQ(unpack_first(&c, packed[0].p, packed[0].len, &why), (uint64_t)-1);
        c = cs[0];
        c.len--;
        CHECK_EQ(unpack_first(&c, packed[0].p, packed[0].len, &why), (uint64_t)-1);
        mallet_pack_model_t *m = mallet_pack_model_new();
        mallet_pack_buf_t sym = {0};
        CHECK_EQ(mallet_pack_chunk(m, cs[6].raw, cs[6].len, cs[6].count, 19, &sym), 1);
        CHECK(sym.len > 0 && sym.p[0] == 3);
        mallet_pack_model_free(m);
        const mallet_pack_buf_t *which[2] = {&packed[0], &sym};
        const chunk_t *of[2] = {&cs[0], &cs[6]};
        for (int w = 0; w < 2; w++) {
            const mallet_pack_buf_t *b = which[w];
            int refused = 0;
            for (size_t n = 0; n < b->len; n += 1 + n / 64)
                refused += unpack_first(of[w], b->p, n, &why) != 0;
            CHECK(refused > 0);
            uint8_t *copy = malloc(b->len);
            unsigned wrong = 0;
            for (int i = 0; i < 2000; i++) {
                memcpy(copy, b->p, b->len);
                for (int k = 0; k <= i % 3; k++)
                    copy[rnd() % b->len] ^= (uint8_t)(1u << (rnd() % 8));
                wrong += unpack_first(of[w], copy, b->len, &why) != 0;
            }
            /* most damage is seen (1,999 and 1,128 when written); the rest decodes to other events
             * (zstd's literals have no check of their own: the chunk's checksum is the check
             * against damage by accident) */
            CHECK(wrong > (w ? 1000u : 1500u));
            free(copy);
        }
        free(sym.p);
    }
    for (int i = 0; i < 7; i++)
        free(packed[i].p);
    return mallet_test_failures != 0;
}
