/* Packed EVENTS chunks (pack.h; docs/TRACE_FORMAT.md 13 is the format in prose). One routine,
 * code_event, serves the packer, both unpackers (range-coded and symbol streams) and the replay
 * through the model of a chunk stored otherwise: the coder's mode says whether a field is
 * written, read, or only passed through, so they cannot drift apart in what they do to the
 * model. */
#include "pack.h"

#include "encode.h"
#include "pack_coder.h"
#include "reader.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

/* ---- the model of a thread's heap ---------------------------------------------------------- */

#define DEPTH 8      /* recently freed blocks remembered per size class */
#define CLASSES 1024 /* classes of 16 bytes: blocks up to 16 KiB are predicted */
#define OP_CTX 17    /* op byte contexts: events since the last time field, 0-16 */

typedef struct probs {
    prob_t op[OP_CTX][256];
    prob_t hit[DEPTH + 1][16]; /* by how many blocks the class's list holds */
    num_model_t num[N_COLS];
} probs_t;

typedef struct live {
    uint64_t ptr, seq; /* seq: the block's allocation number in the thread (its age) */
    uint32_t cls;
    uint32_t used; /* 0 empty, 1 live, 2 deleted */
} live_t;

struct mallet_pack_model {
    probs_t pr;
    uint32_t ordinal; /* packed chunks of the thread coded so far */
    live_t *tab;      /* the live blocks, open addressing by address */
    size_t tab_cap, tab_used;
    /* allocation numbers [0, cap): a Fenwick tree of which are live, and their addresses (0:
     * not live). When next_seq reaches cap, the live ones are numbered again from 0 in order
     * (ranks do not change), so the arrays follow the live blocks, not the thread's history. */
    uint32_t *fen;
    uint64_t *seq_ptr;
    uint64_t cap, next_seq, nlive;
    uint64_t freed[CLASSES][DEPTH]; /* per class, the blocks freed last, newest first */
};

mallet_pack_model_t *mallet_pack_model_new(void)
{
    mallet_pack_model_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    prob_t *p = (prob_t *)&m->pr;
    for (size_t i = 0; i < sizeof m->pr / sizeof *p; i++)
        p[i] = PROB_INIT;
    return m;
}

void mallet_pack_model_free(mallet_pack_model_t *m)
{
    if (!m) return;
    free(m->tab);
    free(m->fen);
    free(m->seq_ptr);
    free(m);
}

static live_t *find(mallet_pack_model_t *m, uint64_t ptr, int insert)
{
    if (!m->tab_cap) return NULL;
    size_t i = (size_t)((ptr >> 4) * 0x9E3779B97F4A7C15ull >> 20) & (m->tab_cap - 1);
    live_t *tomb = NULL;
    for (;; i = (i + 1) & (m->tab_cap - 1)) {
        live_t *e = &m->tab[i];
        if (e->used == 1 && e->ptr == ptr) return e;
        if (e->used == 2 && !tomb) tomb = e;
        if (e->used == 0) return insert ? (tomb ? tomb : e) : NULL;
    }
}

static int grow_table(mallet_pack_model_t *m)
{
    size_t old_cap = m->tab_cap;
    live_t *old = m->tab;
    size_t cap = 1024;
    while (cap < 4 * (m->nlive + 1))
        cap *= 2;
    if (!(m->tab = calloc(cap, sizeof *m->tab))) return m->tab = old, -1;
    m->tab_cap = cap;
    m->tab_used = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].used == 1) *find(m, old[i].ptr, 1) = old[i], m->tab_used++;
    free(old);
    return 0;
}

static void fen_add(mallet_pack_model_t *m, uint64_t i, int v)
{
    for (i++; i <= m->cap; i += i & -i)
        m->fen[i - 1] += (uint32_t)v;
}

static uint64_t fen_sum(const mallet_pack_model_t *m, uint64_t i) /* live numbers below i */
{
    uint64_t s = 0;
    for (; i; i -= i & -i)
        s += m->fen[i - 1];
    return s;
}

static uint64_t fen_find(const mallet_pack_model_t *m, uint64_t k) /* the (k+1)-th live number */
{
    uint64_t pos = 0, rem = k + 1;
    for (uint64_t step = m->cap; step; step >>= 1)
        if (pos + step <= m->cap && m->fen[pos + step - 1] < rem) {
            pos += step;
            rem -= m->fen[pos - 1];
        }
    return pos;
}

/* Numbers the live blocks again from 0, in order, into arrays twice their count or more. */
static int renumber(mallet_pack_model_t *m)
{
    uint64_t n = 0;
    for (uint64_t s = 0; s < m->next_seq; s++)
        if (m->seq_ptr[s]) {
            find(m, m->seq_ptr[s], 0)->seq = n;
            m->seq_ptr[n++] = m->seq_ptr[s];
        }
    uint64_t cap = 1024;
    while (cap < 2 * n + 2)
        cap *= 2;
    uint64_t *sp = realloc(m->seq_ptr, cap * sizeof *sp);
    if (sp) m->seq_ptr = sp;
    uint32_t *f = realloc(m->fen, cap * sizeof *f);
    if (f) m->fen = f;
    if (!sp || !f) return -1;
    for (uint64_t i = 0; i < cap; i++) { /* the tree of n ones, built in place */
        if (i >= n) m->seq_ptr[i] = 0;
        m->fen[i] = i < n;
    }
    for (uint64_t i = 1; i <= cap; i++) {
        uint64_t j = i + (i & -i);
        if (j <= cap) m->fen[j - 1] += m->fen[i - 1];
    }
    m->cap = cap;
    m->next_seq = n;
    return 0;
}

static uint32_t size_class(uint64_t n)
{
    if (n >= (uint64_t)CLASSES << 4) return 0; /* not predicted */
    uint64_t c = (n + 8 + 15) >> 4;
    return c < 2 ? 2 : c >= CLASSES ? 0 : (uint32_t)c;
}

/* ptr (not 0) becomes a live block of class cls. */
static int model_alloc(mallet_pack_model_t *m, uint64_t ptr, uint32_t cls)
{
    if (m->next_seq == m->cap && renumber(m)) return -1;
    if ((m->tab_used + 1) * 2 > m->tab_cap && grow_table(m)) return -1;
    live_t *e = find(m, ptr, 1);
    if (e->used == 1) { /* live already: another thread freed it */
        fen_add(m, e->seq, -1);
        m->seq_ptr[e->seq] = 0;
        m->nlive--;
    } else if (e->used == 0) {
        m->tab_used++;
    }
    *e = (live_t){.ptr = ptr, .seq = m->next_seq, .cls = cls, .used = 1};
    m->seq_ptr[m->next_seq] = ptr;
    fen_add(m, m->next_seq++, 1);
    m->nlive++;
    return 0;
}

static void model_release(mallet_pack_model_t *m, live_t *e)
{
    fen_add(m, e->seq, -1);
    m->seq_ptr[e->seq] = 0;
    m->nlive--;
    if (e->cls) {
        memmove(&m->freed[e->cls][1], &m->freed[e->cls][0], (DEPTH - 1) * sizeof(uint64_t));
        m->freed[e->cls][0] = e->ptr;
    }
    e->used = 2;
}

/* ---- events -------------------------------------------------------------------------------- */

static uint64_t c_addr(coder_t *c, mallet_pack_model_t *m, uint64_t ptr, int *bad)
{
    uint64_t z = c_num(c, m->pr.num, N_ADDR, mallet_zigzag((int64_t)(ptr - c->last_addr)), bad);
    return c->last_addr += (uint64_t)mallet_unzigzag(z);
}

/* A pointer the event gives up (a free, a realloc's old block): 0 its address in full, 1 NULL,
 * 2 + its rank among the thread's live blocks, newest 0. release: the block dies here (not when
 * a realloc failed). */
static int c_release(coder_t *c, mallet_pack_model_t *m, uint64_t *ptr, int release)
{
    int bad = 0;
    live_t *e = NULL;
    uint64_t sym = 0;
    if (!decoding(c)) {
        if (!*ptr)
            sym = 1;
        else if ((e = find(m, *ptr, 0)))
            sym = 2 + (m->nlive - fen_sum(m, e->seq + 1));
    }
    sym = c_num(c, m->pr.num, N_RANK, sym, &bad);
    if (bad) return -1;
    if (sym == 0) {
        *ptr = c_addr(c, m, *ptr, &bad);
        return -bad;
    }
    if (sym == 1) {
        *ptr = 0;
        return 0;
    }
    if (decoding(c)) {
        if (sym - 2 >= m->nlive) return -1;
        e = find(m, m->seq_ptr[fen_find(m, m->nlive - 1 - (sym - 2))], 0);
        if (!e) return -1;
        *ptr = e->ptr;
    }
    if (release) model_release(m, e);
    return 0;
}

/* An allocation's result, given the size its class comes from: 0 its address in full, 1-8 the
 * block of its class freed last, or the one before..., 9 NULL. */
static int c_result(coder_t *c, mallet_pack_model_t *m, uint64_t *ptr, uint64_t size)
{
    uint32_t cls = size_class(size);
    unsigned sym = 0, held = 0;
    while (cls && held < DEPTH && m->freed[cls][held])
        held++;
    if (!decoding(c)) {
        if (!*ptr)
            sym = 9;
        else if (cls)
            for (unsigned d = 0; d < DEPTH && !sym; d++)
                if (m->freed[cls][d] == *ptr) sym = d + 1;
    }
    sym = c_tree(c, m->pr.hit[held], 4, sym);
    int bad = 0;
    if (sym == 9) {
        *ptr = 0;
        return 0;
    }
    if (sym == 0) {
        *ptr = c_addr(c, m, *ptr, &bad);
        if (bad) return -1;
    } else {
        if (sym > DEPTH || !cls || !m->freed[cls][sym - 1]) return -1;
        *ptr = m->freed[cls][sym - 1];
        memmove(&m->freed[cls][sym - 1], &m->freed[cls][sym], (DEPTH - sym) * sizeof(uint64_t));
        m->freed[cls][DEPTH - 1] = 0;
    }
    return *ptr ? model_alloc(m, *ptr, cls) : 0;
}

static uint64_t product(uint64_t a, uint64_t b)
{
    return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

/* The fields of ev after its op byte b, against st (the raw encoding's state before ev). */
static int code_event(coder_t *c, mallet_pack_model_t *m, const mallet_enc_state_t *st,
                      mallet_event_t *ev, unsigned b)
{
    num_model_t *num = m->pr.num;
    int bad = 0, r = 0;
    uint64_t z, cycles = ev->cycles, site = ev->callsite; /* as given (not when decoding) */
    unsigned op = b & MALLET_EV_OP_MASK;
    ev->op = (uint8_t)op;
    ev->failed = (b & MALLET_EV_FAIL) != 0;
    ev->cycles = st->cycles;
    if (!(b & MALLET_EV_SAME_TIME)) {
        z = c_num(c, num, N_TIME, mallet_zigzag((int64_t)(cycles - st->cycles - c->last_step)),
                  &bad);
        c->last_step += (uint64_t)mallet_unzigzag(z);
        ev->cycles = st->cycles + c->last_step;
    }
    switch (op) {
    case MALLET_OP_MALLOC:
    case MALLET_OP_VALLOC:
    case MALLET_OP_PVALLOC:
        ev->size = c_num(c, num, N_SIZE, ev->size, &bad);
        r = c_result(c, m, &ev->ptr, ev->size);
        break;
    case MALLET_OP_CALLOC:
        ev->nmemb = c_num(c, num, N_COUNT, ev->nmemb, &bad);
        ev->size = c_num(c, num, N_SIZE, ev->size, &bad);
        r = c_result(c, m, &ev->ptr, product(ev->nmemb, ev->size));
        break;
    case MALLET_OP_REALLOC:
    case MALLET_OP_REALLOCARRAY:
        r = c_release(c, m, &ev->old_ptr, !ev->failed);
        if (op == MALLET_OP_REALLOCARRAY) ev->nmemb = c_num(c, num, N_COUNT, ev->nmemb, &bad);
        ev->size = c_num(c, num, N_SIZE, ev->size, &bad);
        r |= r ? 0
               : c_result(c, m, &ev->ptr,
                          op == MALLET_OP_REALLOC ? ev->size : product(ev->nmemb, ev->size));
        z = c_num(c, num, N_DELAY, ev->cycles - ev->free_cycles, &bad);
        ev->free_cycles = ev->cycles - z;
        break;
    case MALLET_OP_FREE:
        r = c_release(c, m, &ev->ptr, 1);
        break;
    case MALLET_OP_POSIX_MEMALIGN:
    case MALLET_OP_ALIGNED_ALLOC:
    case MALLET_OP_MEMALIGN:
        ev->align = c_num(c, num, N_ALIGN, ev->align, &bad);
        ev->size = c_num(c, num, N_SIZE, ev->size, &bad);
        r = c_result(c, m, &ev->ptr, ev->size);
        if (op == MALLET_OP_POSIX_MEMALIGN && ev->failed) {
            z = c_num(c, num, N_RET, (uint64_t)(uint32_t)ev->ret, &bad);
            if (z > INT32_MAX) bad = 1;
            ev->ret = (int32_t)z;
        }
        break;
    case MALLET_OP_RSS:
        ev->size = c_num(c, num, N_RSS, ev->size, &bad);
        break;
    default:
        return -1;
    }
    ev->callsite = st->callsite[op];
    if (!(b & MALLET_EV_SAME_SITE)) {
        z = c_num(c, num, N_SITE, mallet_zigzag((int64_t)(site - st->callsite[op])), &bad);
        ev->callsite = st->callsite[op] + (uint64_t)mallet_unzigzag(z);
    }
    return r || bad ? -1 : 0;
}

/* ---- chunks -------------------------------------------------------------------------------- */

/* The next item of a raw payload: 1 a mark (*mark its time), 2 an event, 0 the end, -1
 * malformed. st: the decoding state, advanced past the item. */
static int next_item(const uint8_t **pp, const uint8_t *end, mallet_enc_state_t *st,
                     mallet_event_t *ev, uint64_t *mark)
{
    const uint8_t *p = *pp;
    if (p >= end) return 0;
    if (*p == MALLET_MARK) {
        uint64_t v;
        p++;
        if (mallet_get_short(&p, end, &v, 1)) return -1;
        *mark = st->cycles += (uint64_t)mallet_unzigzag(v);
        *pp = p;
        return 1;
    }
    if (mallet_decode_event(&p, end, st, ev)) return -1;
    *pp = p;
    return 2;
}

/* Codes the items of a chunk: from raw (ENCODE, WALK), or into out (DECODE, SYMBOLS), which has
 * raw_len + MALLET_EVENT_MAX_SIZE bytes. Each op byte is coded by how many events ago the
 * thread's time last changed (the recorder reads the clock one event in 16 while a thread
 * allocates fast); op byte 0 ends the chunk. 0, or -1: corrupt (or out of memory). */
static int code_items(coder_t *c, mallet_pack_model_t *m, const uint8_t *raw, uint8_t *out,
                      size_t raw_len, uint32_t count)
{
    mallet_enc_state_t st = {0}; /* the raw encoding's state before each item */
    const uint8_t *p = raw, *end = raw + raw_len;
    uint8_t *q = out;
    uint32_t n = 0;
    unsigned since = 0;
    for (;;) {
        mallet_event_t ev = {0};
        mallet_enc_state_t next = st;
        uint64_t mark = 0;
        int k = 0, bad = 0;
        unsigned b = 0;
        if (!decoding(c)) {
            const uint8_t *at = p;
            if ((k = next_item(&p, end, &next, &ev, &mark)) < 0) return -1;
            b = k == 0 ? 0u : k == 1 ? MALLET_MARK : *at;
        }
        b = c_tree(c, m->pr.op[since], 8, b);
        if (c->over) return -1;
        if (b == 0) break;
        if (b == MALLET_MARK) {
            uint64_t z =
                c_num(c, m->pr.num, N_MARK, mallet_zigzag((int64_t)(mark - st.cycles)), &bad);
            if (bad) return -1;
            mark = st.cycles + (uint64_t)mallet_unzigzag(z);
            if (decoding(c)) {
                if (q > out + raw_len) return -1;
                q = mallet_encode_mark(q, &st, mark);
            } else {
                st = next;
            }
            since = 0;
            continue;
        }
        if (n == count || code_event(c, m, &st, &ev, b)) return -1;
        n++;
        since = b & MALLET_EV_SAME_TIME ? since + (since < OP_CTX - 1) : 0;
        if (decoding(c)) {
            if (q > out + raw_len) return -1;
            q = mallet_encode_event(q, &st, &ev);
        } else {
            st = next;
        }
    }
    if (n != count || (decoding(c) && q != out + raw_len)) return -1;
    return 0;
}

/* Whether raw is exactly what the encoder writes for its items (count events): only such a
 * payload can be rebuilt from its items. */
static int canonical(const uint8_t *raw, size_t raw_len, uint32_t count)
{
    mallet_enc_state_t ds = {0}, es = {0};
    const uint8_t *p = raw, *end = raw + raw_len;
    uint8_t scratch[2 * MALLET_EVENT_MAX_SIZE];
    uint32_t n = 0;
    for (;;) {
        const uint8_t *at = p;
        mallet_event_t ev;
        uint64_t mark;
        int k = next_item(&p, end, &ds, &ev, &mark);
        if (k <= 0) return k == 0 && n == count;
        uint8_t *w = k == 1 ? mallet_encode_mark(scratch, &es, mark)
                            : mallet_encode_event(scratch, &es, &ev);
        if ((size_t)(w - scratch) != (size_t)(p - at) || memcmp(scratch, at, (size_t)(p - at)))
            return 0;
        n += k == 2;
    }
}

/* A packed payload starts with its form (PACK_*) and the chunk's ordinal among its thread's
 * packed chunks, a LEB128 number (the unpacker's check that none was skipped). */
enum { PACK_MODEL = 0, PACK_ZSTD = 1, PACK_RAW = 2, PACK_SYMBOLS = 3 };

/* The most a symbol stream of a chunk of raw_len bytes may hold: an item's symbols take at most
 * 7 times its raw bytes (a free of 2 raw bytes: its op byte in 2, an address in full in up to
 * 11), so a frame that says it holds more is not decompressed (and the packer, should one ever
 * hold more, keeps another form). */
static size_t sym_cap(size_t raw_len)
{
    return 8 * raw_len + 64;
}

static void put_head(mallet_pack_buf_t *out, uint8_t form, uint32_t ordinal)
{
    buf_put(out, form);
    put_leb(out, ordinal);
}

/* Appends a zstd frame of [p, p + n) to out; its size, or 0 (out of memory, or zstd failed). */
static size_t put_zstd(mallet_pack_buf_t *out, const uint8_t *p, size_t n, int zlevel)
{
    size_t bound = ZSTD_compressBound(n);
    uint8_t *z = malloc(bound);
    size_t zn = z ? ZSTD_compress(z, bound, p, n, zlevel) : 0;
    if (!z || ZSTD_isError(zn)) zn = 0;
    for (size_t i = 0; i < zn; i++)
        buf_put(out, z[i]);
    free(z);
    return zn;
}

/* The forms zstd makes at level zlevel, into alt[0] (the raw payload) and alt[1] (the symbol
 * streams of c, each as the length of its frame and the frame, none for an empty stream); 0 if
 * zstd failed. *fits: no stream holds more than the reader takes. */
static int zstd_forms(mallet_pack_buf_t alt[2], const uint8_t *raw, size_t raw_len,
                      const coder_t *c, uint32_t ordinal, int zlevel, int *fits)
{
    alt[0].len = alt[1].len = 0;
    put_head(&alt[0], PACK_ZSTD, ordinal);
    int ok = put_zstd(&alt[0], raw, raw_len, zlevel) != 0;
    put_head(&alt[1], PACK_SYMBOLS, ordinal);
    *fits = 1;
    for (int s = 0; s < S_COUNT && ok; s++) {
        mallet_pack_buf_t z = {0};
        ok = (!c->sym[s].len || put_zstd(&z, c->sym[s].p, c->sym[s].len, zlevel)) && !z.oom &&
             !c->sym[s].oom;
        put_leb(&alt[1], z.len);
        for (size_t i = 0; i < z.len; i++)
            buf_put(&alt[1], z.p[i]);
        *fits &= c->sym[s].len <= sym_cap(raw_len);
        free(z.p);
    }
    return ok;
}

int mallet_pack_chunk(mallet_pack_model_t *m, const uint8_t *raw, size_t raw_len, uint32_t count,
                      int zlevel, mallet_pack_buf_t *out)
{
    if (!count || !canonical(raw, raw_len, count)) return 0;
    probs_t *saved = malloc(sizeof *saved);
    if (!saved) return -1;
    memcpy(saved, &m->pr, sizeof *saved);
    size_t start = out->len;
    put_head(out, PACK_MODEL, m->ordinal);
    size_t head = out->len - start;
    coder_t c = {.mode = ENCODE, .range = 0xffffffffu, .cache_size = 1, .out = out};
    int rc = code_items(&c, m, raw, NULL, raw_len, count);
    for (int i = 0; i < 5; i++)
        rc_shift_low(&c);
    /* The model's coder packs what zstd cannot (random addresses and sizes); zstd finds what it
     * cannot (a program's repeated sequences of calls), in the raw payload, or better in the
     * model's symbols, where a block's rank and its reuse of a freed one repeat when the
     * program does, and its address does not; a few events may be smallest as they are. The
     * smallest is kept; the live blocks are as the model left them in every case. */
    mallet_pack_buf_t alt[2] = {{0}};
    /* zstd at level 19 packs ~10-20% smaller than at 3 and takes ~6x as long: it is tried where
     * level 3 comes within a quarter of the model's coder (CPython's chunks), not where the
     * coder wins by far (malloc_bench's: packed in a quarter of the time) */
    int fast = zlevel > 3 ? 3 : zlevel, sym_fits = 0;
    int ok = !rc && zstd_forms(alt, raw, raw_len, &c, m->ordinal, fast, &sym_fits);
    size_t model_len = out->len - start;
    if (ok && fast != zlevel &&
        4 * (alt[0].len < alt[1].len ? alt[0].len : alt[1].len) < 5 * model_len)
        ok = zstd_forms(alt, raw, raw_len, &c, m->ordinal, zlevel, &sym_fits);
    int oom = rc || out->oom || !ok || alt[0].oom || alt[1].oom;
    const mallet_pack_buf_t *best = NULL;
    size_t best_len = model_len;
    for (int i = 0; i < 2 && !oom; i++)
        if (alt[i].len < best_len && (i == 0 || sym_fits)) best = &alt[i], best_len = alt[i].len;
    int as_is = !oom && head + raw_len < best_len; /* the raw payload after the same head */
    if (!oom && (best || as_is)) {
        memcpy(&m->pr, saved, sizeof *saved);
        out->len = start;
        if (as_is) put_head(out, PACK_RAW, m->ordinal);
        const uint8_t *p = as_is ? raw : best->p;
        for (size_t i = 0, n = as_is ? raw_len : best->len; i < n; i++)
            buf_put(out, p[i]);
        oom = out->oom;
    }
    for (int i = 0; i < 2; i++)
        free(alt[i].p);
    for (int s = 0; s < S_COUNT; s++)
        free(c.sym[s].p);
    free(saved);
    if (oom) return -1;
    m->ordinal++;
    return 1;
}

/* A zstd frame of at most cap bytes, decompressed into a new buffer (*n bytes); NULL with *why. */
static uint8_t *get_zstd(ZSTD_DCtx *dctx, const uint8_t *p, size_t len, size_t cap, size_t *n,
                         const char **why)
{
    unsigned long long size = ZSTD_getFrameContentSize(p, len);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > cap)
        return *why = "zstd payload does not decompress", NULL;
    uint8_t *b = malloc(size ? (size_t)size : 1);
    if (!b) return *why = "out of memory", NULL;
    *n = ZSTD_decompressDCtx(dctx, b, (size_t)size, p, len);
    if (ZSTD_isError(*n) || *n != size)
        return free(b), *why = "zstd payload does not decompress", NULL;
    return b;
}

int mallet_unpack_chunk(mallet_pack_model_t *m, ZSTD_DCtx **dctx, const uint8_t *in, size_t in_len,
                        uint32_t count, uint8_t *out, size_t raw_len, const char **why)
{
    const uint8_t *p = in + 1, *end = in + in_len;
    uint64_t ordinal;
    if (!in_len || get_leb(&p, end, &ordinal)) return *why = "packed payload too short", -1;
    if (ordinal != m->ordinal) return *why = "packed chunk out of its thread's order", -1;
    coder_t c = {.mode = WALK, .range = 0xffffffffu, .in = p, .in_end = end};
    size_t n = (size_t)(end - p);
    uint8_t *sym[S_COUNT] = {NULL};
    if ((in[0] == PACK_ZSTD || in[0] == PACK_SYMBOLS) && !*dctx && !(*dctx = ZSTD_createDCtx()))
        return *why = "out of memory", -1;
    if (in[0] == PACK_MODEL) {
        c.mode = DECODE;
        for (int i = 0; i < 5; i++)
            c.code = c.code << 8 | rc_next_byte(&c);
    } else if (in[0] == PACK_ZSTD) {
        n = ZSTD_decompressDCtx(*dctx, out, raw_len, p, n);
        if (ZSTD_isError(n) || n != raw_len) return *why = "zstd payload does not decompress", -1;
    } else if (in[0] == PACK_RAW) {
        if (n != raw_len) return *why = "packed payload of the wrong size", -1;
        memcpy(out, p, n);
    } else if (in[0] == PACK_SYMBOLS) {
        c.mode = SYMBOLS;
        for (int s = 0; s < S_COUNT; s++) {
            uint64_t len;
            size_t got = 0;
            if (get_leb(&p, end, &len) || len > (size_t)(end - p)) {
                *why = "packed payload too short";
                goto bad;
            }
            if (len) { /* else the stream is empty: sym_at == sym_end == NULL */
                if (!(sym[s] = get_zstd(*dctx, p, (size_t)len, sym_cap(raw_len), &got, why)))
                    goto bad;
                c.sym_at[s] = sym[s], c.sym_end[s] = sym[s] + got;
                p += len;
            }
        }
        if (p != end) {
            *why = "packed payload too long";
            goto bad;
        }
    } else {
        return *why = "unknown packing", -1;
    }
    int r = code_items(&c, m, out, out, raw_len, count);
    for (int s = 0; s < S_COUNT; s++) {
        r |= c.mode == SYMBOLS && c.sym_at[s] != c.sym_end[s]; /* symbols left over */
        free(sym[s]);
    }
    if (r || c.over) return *why = "packed events do not decode", -1;
    m->ordinal++;
    return 0;
bad:
    for (int s = 0; s < S_COUNT; s++)
        free(sym[s]);
    return -1;
}
