/* The coder of packed EVENTS chunks (pack.c, docs/TRACE_FORMAT.md 13.2 and 13.3): an LZMA-style
 * adaptive binary range coder, and the symbol streams that stand for it in the symbols form.
 * One coder_t codes one chunk; its mode says whether each value the model gives it is written
 * (to both), read (from either) or only passed through. For pack.c alone. */
#ifndef MALLET_TRACE_PACK_CODER_H
#define MALLET_TRACE_PACK_CODER_H

#include "pack.h"

#include <stdint.h>
#include <stdlib.h>

/* ---- the range coder (LZMA's binary adaptive coder) ----------------------------------------- */

/* A bit's model: the probability of a 0 in 1/65536 (low 16 bits; 12 of them code) and how many
 * bits it has seen (high 16). It learns fast at first and then settles: each bit moves it 1/16
 * of the way, 1/32 after 16 bits, 1/64 after 64, 1/128 after 256 (with a fixed 1/32, the
 * estimates' noise cost ~0.02 bits a coded bit: a tenth of a packed malloc_bench). */
#define PROB_BITS 12
#define PROB_ONE (1u << PROB_BITS)
#define PROB_INIT 0x8000u
#define RC_TOP (1u << 24)

typedef uint32_t prob_t;

/* The kinds of number, each with its own models and symbol stream (TRACE_FORMAT.md 13.4). */
enum num_col {
    N_TIME,
    N_MARK,
    N_SIZE,
    N_COUNT,
    N_ALIGN,
    N_RANK,
    N_ADDR,
    N_DELAY,
    N_RET,
    N_RSS,
    N_SITE,
    N_COLS
};

/* ENCODE codes each value with the range coder and also writes it to the symbol streams;
 * DECODE reads it from the range coder, SYMBOLS from the symbol streams; WALK only passes it on
 * (the model's updates only). */
enum coder_mode { ENCODE, DECODE, SYMBOLS, WALK };

/* The symbol streams (form PACK_SYMBOLS): every value the model codes, as a LEB128 number, in a
 * stream of its kind (tree symbols: op bytes and results; then one for each kind of number):
 * what zstd packs best when a program repeats its calls, each stream repeating on its own. */
#define S_TREES 0
#define S_COUNT (1 + N_COLS)

typedef struct coder {
    int mode;
    /* encoder */
    uint64_t low, cache_size;
    uint8_t cache;
    mallet_pack_buf_t *out;
    /* decoder */
    uint32_t code;
    const uint8_t *in, *in_end;
    int over; /* bytes read past the input's end, or a value out of range: the input is corrupt */
    uint32_t range;
    mallet_pack_buf_t sym[S_COUNT];                    /* ENCODE: written */
    const uint8_t *sym_at[S_COUNT], *sym_end[S_COUNT]; /* SYMBOLS: read */
    uint64_t last_addr; /* an address coded in full is a difference to the last one */
    uint64_t last_step; /* a time is coded as the difference of its step to the last step */
} coder_t;

static inline void buf_put(mallet_pack_buf_t *b, uint8_t v)
{
    if (b->len == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 4096;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
    b->p[b->len++] = v;
}

static inline void rc_shift_low(coder_t *c)
{
    if ((uint32_t)c->low < 0xff000000u || (c->low >> 32) != 0) {
        uint8_t carry = (uint8_t)(c->low >> 32), b = c->cache;
        do {
            buf_put(c->out, (uint8_t)(b + carry));
            b = 0xff;
        } while (--c->cache_size != 0);
        c->cache = (uint8_t)(c->low >> 24);
    }
    c->cache_size++;
    c->low = (c->low & 0x00ffffffu) << 8;
}

static inline uint8_t rc_next_byte(coder_t *c)
{
    if (c->in < c->in_end) return *c->in++;
    c->over = 1;
    return 0;
}

#define PACK_HOT static inline __attribute__((always_inline))

PACK_HOT void rc_normalize(coder_t *c)
{
    while (c->range < RC_TOP) {
        c->range <<= 8;
        if (c->mode == ENCODE)
            rc_shift_low(c);
        else
            c->code = c->code << 8 | rc_next_byte(c);
    }
}

PACK_HOT unsigned rc_bit(coder_t *c, prob_t *p, unsigned bit)
{
    uint32_t q = (*p & 0xffffu) >> (16 - PROB_BITS), n = *p >> 16;
    q = q < 1 ? 1 : q > PROB_ONE - 1 ? PROB_ONE - 1 : q;
    uint32_t bound = (c->range >> PROB_BITS) * q;
    unsigned shift = 4 + (n >= 16) + (n >= 64) + (n >= 256);
    uint32_t v = *p & 0xffffu;
    if (c->mode == DECODE) bit = c->code >= bound;
    if (!bit) {
        c->range = bound;
        v += (0x10000u - v) >> shift;
    } else {
        if (c->mode == ENCODE)
            c->low += bound;
        else
            c->code -= bound;
        c->range -= bound;
        v -= v >> shift;
    }
    *p = (n < 0xffffu ? n + 1 : n) << 16 | (v > 0xffffu ? 0xffffu : v);
    rc_normalize(c);
    return bit;
}

/* n bits of v at even odds (the low bits of a number: no model would learn them) */
static inline uint64_t rc_direct(coder_t *c, uint64_t v, unsigned n)
{
    uint64_t r = 0;
    while (n--) {
        c->range >>= 1;
        unsigned bit = (unsigned)(v >> n) & 1;
        if (c->mode == DECODE) {
            bit = c->code >= c->range;
            if (bit) c->code -= c->range;
        } else if (bit) {
            c->low += c->range;
        }
        r = r << 1 | bit;
        rc_normalize(c);
    }
    return r;
}

/* The values come from the input (and the raw payload is made from them). */
static inline int decoding(const coder_t *c)
{
    return c->mode == DECODE || c->mode == SYMBOLS;
}

static inline void put_leb(mallet_pack_buf_t *out, uint64_t v)
{
    do {
        buf_put(out, (uint8_t)((v & 127) | (v > 127 ? 128 : 0)));
        v >>= 7;
    } while (v);
}

/* 0, or -1: the number runs past end or past 64 bits. */
static inline int get_leb(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 64 && *pp < end; shift += 7) {
        uint8_t b = *(*pp)++;
        *v |= (uint64_t)(b & 127) << shift;
        if (!(b & 128)) return 0;
    }
    return -1;
}

static inline uint64_t sym_get(coder_t *c, int s)
{
    uint64_t v;
    if (get_leb(&c->sym_at[s], c->sym_end[s], &v)) c->over = 1;
    return v;
}

/* A symbol of nbits bits by the range coder, most significant first, each bit's probability by
 * the bits above it (probs: 1 << nbits entries). */
PACK_HOT unsigned rc_tree(coder_t *c, prob_t *probs, unsigned nbits, unsigned sym)
{
    unsigned m = 1;
    for (unsigned i = nbits; i-- > 0;)
        m = m << 1 | rc_bit(c, &probs[m], (sym >> i) & 1);
    return m - (1u << nbits);
}

/* A symbol of nbits bits, in the coder's mode. */
PACK_HOT unsigned c_tree(coder_t *c, prob_t *probs, unsigned nbits, unsigned sym)
{
    if (c->mode == WALK) return sym;
    if (c->mode == SYMBOLS) {
        uint64_t v = sym_get(c, S_TREES);
        if (v >> nbits) c->over = 1;
        return (unsigned)v & ((1u << nbits) - 1);
    }
    if (c->mode == ENCODE) put_leb(&c->sym[S_TREES], sym);
    return rc_tree(c, probs, nbits, sym);
}

/* A number: its bit length (0-64) by a tree, the 4 bits below its top bit by a tree of that
 * length, the rest at even odds. */
#define NUM_HI 4
typedef struct num_model {
    prob_t len[128];
    prob_t hi[65][1u << NUM_HI];
} num_model_t;

/* A number of kind col, by its models in num. Returns the number (decoded, or v); UINT64_MAX with
 * *bad set if a decoded length is > 64. */
static inline uint64_t c_num(coder_t *c, num_model_t *num, int col, uint64_t v, int *bad)
{
    num_model_t *nm = &num[col];
    int s = 1 + col;
    if (c->mode == WALK) return v;
    if (c->mode == SYMBOLS) return sym_get(c, s);
    if (c->mode == ENCODE) put_leb(&c->sym[s], v);
    unsigned len = rc_tree(c, nm->len, 7, v ? 64u - (unsigned)__builtin_clzll(v) : 0u);
    if (len > 64) return *bad = 1, UINT64_MAX;
    if (len <= 1) return len;
    unsigned rest = len - 1, h = rest < NUM_HI ? rest : NUM_HI;
    uint64_t hi = rc_tree(c, nm->hi[len], h, (unsigned)(v >> (rest - h)) & ((1u << h) - 1));
    uint64_t lo = rc_direct(c, v, rest - h);
    return 1ull << rest | hi << (rest - h) | lo;
}

#endif
