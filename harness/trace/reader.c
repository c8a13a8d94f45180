/* Trace reader: header index pass, payload decoding and the time-ordered k-way merge.
 * See reader.h for the contract. Every value read from a file is checked before use. */
#define _GNU_SOURCE
#include "reader.h"

#include "pack.h"
#include "platform/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

typedef struct chunk_ref {
    unsigned file;
    uint32_t tid, thread;
    uint32_t tindex; /* dense index of (file, thread) across the reader, for de-duplication */
    uint64_t first_seq;
    uint8_t codec;
    uint32_t disk_size, raw_size, count, payload_hash;
    uint64_t offset; /* of the payload */
    uint64_t first;  /* first event time, clamped so a thread's chunks never go back in time */
    uint64_t seq;    /* position in the index, the final tie-breaker */
    uint64_t limit;  /* start of the thread's next chunk with later events: no event goes past */
    uint64_t last;   /* last_cycles: its last event's time, or a later reading (spread_times) */
} chunk_ref_t;

#define CURSOR_BATCH 32
/* In a file with one thread, a batch that is one run of carried times grows to reach the run's
 * next reading (spread_times), up to this many events (~900 KiB): the recorder's step of time
 * (100 us, MALLET_TIME_STEP_US) is ~1,100 of sqlite3's events. A longer run keeps the time of
 * its first reading but for its last batch's part. */
#define SPREAD_MAX 8192

typedef struct cursor {
    const chunk_ref_t *chunk;
    uint8_t *raw;
    const uint8_t *pos, *end;
    mallet_enc_state_t st;
    uint32_t left; /* events not yet decoded */
    uint64_t seq;  /* sequence number of ev */
    uint64_t last; /* time of the previous event of this chunk's thread (monotonic clamp) */
    uint64_t key;  /* merge key: the time of the part about to be yielded */
    int release_fresh; /* the RELEASE half was yielded (not a repeat), so the ALLOC half is too */
    uint64_t *next_seq; /* the reader's next_seq of its chunk's thread (one load less a step) */
    mallet_rec_t *rec; /* the part about to be yielded (time_ns is set only when it is) */
    /* Events are decoded a batch at a time, in a tight loop (one call per event took a third of
     * the reader's time); an error is reported when the merge reaches the event that failed. */
    unsigned next, nbatch; /* batch[next] follows rec; batch[nbatch] is past the yieldable ones */
    unsigned held;         /* decoded events after nbatch, kept for the next batch (spread_times) */
    int bad;               /* the event after the batch does not decode */
    int spread;            /* the file has one thread: carried times are spread (spread_times) */
    unsigned cap;          /* batch's size: CURSOR_BATCH, or more for a long run (SPREAD_MAX) */
    mallet_rec_t *batch;   /* small, or a larger block of cap records */
    mallet_rec_t small[CURSOR_BATCH];
} cursor_t;

/* A heap entry carries its cursor's merge key, so that the sift compares without following
 * pointers (with many threads' chunks open, the sift is a good part of the reader's time). */
typedef struct heap_ent {
    uint64_t key, seq; /* the cursor's key and its chunk's seq */
    cursor_t *c;
} heap_ent_t;

struct mallet_reader {
    unsigned nfiles;
    mallet_trace_info_t *info;
    int *fds;
    chunk_ref_t *chunks;
    size_t nchunks, next_chunk;
    mallet_thread_end_t *ends;
    size_t nends;
    uint64_t next_first; /* chunks[next_chunk].first, or UINT64_MAX past the last chunk */
    heap_ent_t *heap;
    size_t heap_len;
    size_t top2;    /* with two cursors, next_one's top is heap[top2] (heap_order puts it first) */
    cursor_t *held; /* next_one's last yield (with its run): the merge moves past it next call */
    uint64_t run_end; /* held's events with keys below this come before any other's (run_end) */
    uint64_t *next_seq; /* per tindex: the next event sequence number not yet yielded */
    mallet_reader_ahead_fn *ahead; /* see mallet_reader_set_ahead */
    void *ahead_arg;
    size_t nthreads;
    double ns_per_cycle;
    uint64_t base_cycles, base_ns;
    ZSTD_DCtx *dctx; /* load_payload's */
    mallet_pack_model_t **models; /* per tindex: a packed file's threads' models (activate) */
    uint32_t *packed_left;        /* per tindex: its packed chunks not yet unpacked */
    char err[512];
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The decoders run for every field of every event: always inlined (as calls they took a fifth
 * of the reader's time). Each takes `checked`, a constant where it is inlined: 0 where the caller
 * knows that MALLET_EVENT_MAX_SIZE bytes remain (most events of a chunk), so the bounds are not
 * checked field by field; what makes a field malformed is checked either way. */
#define HOT static inline __attribute__((always_inline))

/* Prefix varint (format.h). */
HOT int get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out, int checked)
{
    const uint8_t *p = *pp;
    if (checked && p >= end) return -1;
    unsigned len = (unsigned)__builtin_ctz(~(unsigned)p[0]) + 1; /* 1..9 */
    if (len == 9) {
        if (checked && end - p < 9) return -1;
        uint64_t v = mallet_get_u64(p + 1);
        if (v >> 56 == 0) return -1; /* not the shortest form: a corrupt byte */
        *out = v;
        *pp = p + 9;
        return 0;
    }
    if (checked && (size_t)(end - p) < len) return -1;
    uint64_t w;
    if (!checked || end - p >= 8) { /* one load, the bytes past the varint masked off */
        static const uint64_t keep[9] = {0, 0xff, 0xffff, 0xffffff, 0xffffffff, 0xffffffffffull,
                                         0xffffffffffffull, 0xffffffffffffffull, ~0ull};
        w = (mallet_get_u64(p) & keep[len]) >> len;
    } else {
        w = 0;
        for (unsigned i = 0; i < len; i++) w |= (uint64_t)p[i] << (8 * i);
        w >>= len;
    }
    *out = w;
    *pp = p + len;
    return 0;
}

HOT int get_ptr(const uint8_t **pp, const uint8_t *end, mallet_enc_state_t *st, uint64_t *out,
                int checked)
{
    uint64_t v;
    if (get_varint(pp, end, &v, checked)) return -1;
    *out = st->ptr + (uint64_t)mallet_unzigzag(v);
    st->ptr = *out;
    return 0;
}

HOT int decode_event(const uint8_t **pp, const uint8_t *end, mallet_enc_state_t *st,
                     mallet_event_t *ev, int checked)
{
    const uint8_t *p = *pp;
    uint64_t v, tmp = 0;
    if (checked && p >= end) return -1;
    uint8_t b = *p++;
    /* Field by field: gcc makes a memset of the 96-byte event a `rep stos`, whose start-up
     * cost was half of the decoder's time. Only the fields an op may not set: op, failed,
     * cycles and callsite are set below, tid, thread and seq by the caller (the decoder does
     * not know them; mallet_decode_event zeroes them). */
    ev->free_cycles = ev->ptr = ev->old_ptr = ev->size = ev->nmemb = ev->align = 0;
    ev->ret = 0;
    ev->op = b & MALLET_EV_OP_MASK;
    ev->failed = (b & MALLET_EV_FAIL) != 0;
    if (ev->op >= MALLET_OP_COUNT_) return -1;
    if (b & MALLET_EV_SAME_TIME) {
        ev->cycles = st->cycles;
    } else {
        if (mallet_get_short(&p, end, &v, checked)) return -1;
        ev->cycles = st->cycles + (uint64_t)mallet_unzigzag(v);
    }
    int r = 0;
    if (!checked && (ev->op == MALLET_OP_MALLOC || ev->op == MALLET_OP_FREE)) {
        /* The two most common events, one after the other in no order a branch predicts (a
         * switch mispredicted on half of them): decoded by the same instructions, malloc's size
         * read as a short varint whatever the bytes, then kept (and passed over) or not. */
        uint64_t is_malloc = ev->op == MALLET_OP_MALLOC;
        /* by the low two bits (format.h): the length, what to keep of the first 8 bytes and the
         * shift; the 9-byte form's value is the 8 bytes after the first (masks: no branch) */
        static const uint8_t len_of[4] = {2, 4, 2, 9}, shift_of[4] = {1, 2, 1, 0};
        static const uint64_t keep[4] = {0xffff, 0xffffffff, 0xffff, 0};
        unsigned form = p[0] & 3u;
        uint64_t nine = -(uint64_t)(form == 3);
        uint64_t size = (mallet_get_u64(p) & keep[form]) >> shift_of[form];
        size |= mallet_get_u64(p + 1) & nine;
        if (is_malloc & nine & (p[0] != 3)) return -1;
        ev->size = size & -is_malloc;
        p += len_of[form] & -is_malloc;
        r |= get_ptr(&p, end, st, &ev->ptr, checked);
    } else {
        switch (ev->op) {
        case MALLET_OP_MALLOC:
        case MALLET_OP_VALLOC:
        case MALLET_OP_PVALLOC:
            r |= mallet_get_short(&p, end, &ev->size, checked);
            r |= r ? 0 : get_ptr(&p, end, st, &ev->ptr, checked);
            break;
        case MALLET_OP_CALLOC:
            r |= mallet_get_short(&p, end, &ev->nmemb, checked);
            r |= r ? 0 : mallet_get_short(&p, end, &ev->size, checked);
            r |= r ? 0 : get_ptr(&p, end, st, &ev->ptr, checked);
            break;
        case MALLET_OP_REALLOC:
            r |= get_ptr(&p, end, st, &ev->old_ptr, checked);
            r |= r ? 0 : mallet_get_short(&p, end, &ev->size, checked);
            r |= r ? 0 : get_ptr(&p, end, st, &ev->ptr, checked);
            r |= r ? 0 : mallet_get_short(&p, end, &tmp, checked);
            ev->free_cycles = ev->cycles - tmp;
            break;
        case MALLET_OP_REALLOCARRAY:
            r |= get_ptr(&p, end, st, &ev->old_ptr, checked);
            r |= r ? 0 : mallet_get_short(&p, end, &ev->nmemb, checked);
            r |= r ? 0 : mallet_get_short(&p, end, &ev->size, checked);
            r |= r ? 0 : get_ptr(&p, end, st, &ev->ptr, checked);
            r |= r ? 0 : mallet_get_short(&p, end, &tmp, checked);
            ev->free_cycles = ev->cycles - tmp;
            break;
        case MALLET_OP_FREE:
            r |= get_ptr(&p, end, st, &ev->ptr, checked);
            break;
        case MALLET_OP_POSIX_MEMALIGN:
        case MALLET_OP_ALIGNED_ALLOC:
        case MALLET_OP_MEMALIGN:
            r |= mallet_get_short(&p, end, &ev->align, checked);
            r |= r ? 0 : mallet_get_short(&p, end, &ev->size, checked);
            r |= r ? 0 : get_ptr(&p, end, st, &ev->ptr, checked);
            if (!r && ev->op == MALLET_OP_POSIX_MEMALIGN && ev->failed) {
                r |= mallet_get_short(&p, end, &tmp, checked);
                if (!r && tmp > INT32_MAX) r = -1;
                ev->ret = (int32_t)tmp;
            }
            break;
        case MALLET_OP_RSS:
            r |= mallet_get_short(&p, end, &ev->size, checked);
            break;
        default:
            return -1;
        }
    }
    if (r) return -1;
    if (b & MALLET_EV_SAME_SITE) {
        ev->callsite = st->callsite[ev->op];
    } else {
        if (mallet_get_short(&p, end, &v, checked)) return -1;
        ev->callsite = st->callsite[ev->op] + (uint64_t)mallet_unzigzag(v);
        st->callsite[ev->op] = ev->callsite;
    }
    st->cycles = ev->cycles;
    *pp = p;
    return 0;
}

/* Takes the marks at *pp (format.h, MALLET_MARK): st->cycles and st->mark become the last one's
 * time. -1 if one does not decode. */
static int take_marks(const uint8_t **pp, const uint8_t *end, mallet_enc_state_t *st)
{
    const uint8_t *p = *pp;
    while (p < end && *p == MALLET_MARK) {
        uint64_t v;
        p++;
        if (mallet_get_short(&p, end, &v, 1)) return -1;
        st->cycles += (uint64_t)mallet_unzigzag(v);
        st->mark = st->cycles | !st->cycles; /* 0 means none */
    }
    *pp = p;
    return 0;
}

/* An event takes at most MALLET_EVENT_MAX_SIZE bytes: the checked decoder only near the end.
 * Marks before it are taken first (st->mark says there were). */
HOT int decode_next(const uint8_t **pp, const uint8_t *end, mallet_enc_state_t *st,
                    mallet_event_t *ev)
{
    const uint8_t *p = *pp;
    if (__builtin_expect(p < end && *p == MALLET_MARK, 0) && take_marks(&p, end, st)) return -1;
    int r = end - p >= MALLET_EVENT_MAX_SIZE ? decode_event(&p, end, st, ev, 0)
                                             : decode_event(&p, end, st, ev, 1);
    if (!r) *pp = p;
    return r;
}

int mallet_decode_event(const uint8_t **pp, const uint8_t *end, mallet_enc_state_t *st,
                        mallet_event_t *ev)
{
    ev->tid = ev->thread = 0, ev->seq = 0;
    return decode_next(pp, end, st, ev);
}

/* ---- META ---------------------------------------------------------------------------------- */

/* Every MAPS snapshot of a file, newest first, an empty line between (reader.h): past 64 MiB of
 * them the older ones are dropped. Takes now (NULL: out of memory, the older ones are kept). */
static void add_maps(mallet_trace_info_t *info, char *now)
{
    if (!now) return;
    size_t a = strlen(now), b = info->maps ? strlen(info->maps) : 0;
    char *both = b && a + b < (64u << 20) ? malloc(a + 2 + b + 1) : NULL;
    if (both) {
        memcpy(both, now, a);
        memcpy(both + a, "\n\n", 2);
        memcpy(both + a + 2, info->maps, b + 1);
        free(now);
        now = both;
    }
    free(info->maps);
    info->maps = now;
}

static char *dup_bytes(const uint8_t *p, size_t n, int nul_to_space)
{
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, p, n);
    s[n] = 0;
    if (nul_to_space) {
        while (n > 0 && s[n - 1] == 0) n--; /* drop the terminators at the end */
        s[n] = 0;
        for (size_t i = 0; i < n; i++)
            if (s[i] == 0) s[i] = ' ';
    }
    return s;
}

static int parse_meta(mallet_trace_info_t *info, const uint8_t *p, const uint8_t *end)
{
    while (p < end) {
        uint8_t key = *p++;
        uint64_t len;
        if (get_varint(&p, end, &len, 1) || len > (uint64_t)(end - p)) return -1;
        const uint8_t *val = p, *vend = p + len;
        uint64_t num = 0;
        int is_num = key != MALLET_META_CMDLINE && key != MALLET_META_EXE;
        if (is_num && ((key >= MALLET_META_PID && key <= MALLET_META_THREAD_EXITS) ||
                       key == MALLET_META_FORK_END_CYCLES)) {
            const uint8_t *q = val;
            if (get_varint(&q, vend, &num, 1) || q != vend) return -1;
        }
        switch (key) {
        case MALLET_META_PID: info->pid = (int64_t)num; break;
        case MALLET_META_PPID: info->ppid = (int64_t)num; break;
        case MALLET_META_START_REALTIME_NS: info->start_realtime_ns = num; break;
        case MALLET_META_START_NS: info->start_ns = num; break;
        case MALLET_META_START_CYCLES: info->start_cycles = num; break;
        case MALLET_META_PARENT_TRACE: info->forked = num != 0; break;
        case MALLET_META_CYCLES_PER_SEC: info->cycles_per_sec = num; break;
        case MALLET_META_THREAD_EXITS: info->thread_exits = num != 0; break;
        case MALLET_META_FORK_END_CYCLES: info->fork_end_cycles = num; break;
        case MALLET_META_CMDLINE:
            free(info->cmdline);
            if (!(info->cmdline = dup_bytes(val, len, 1))) return -2;
            break;
        case MALLET_META_EXE:
            free(info->exe);
            if (!(info->exe = dup_bytes(val, len, 0))) return -2;
            break;
        default: break; /* unknown keys are skipped by design */
        }
        p = vend;
    }
    return 0;
}

/* ---- opening: the header pass -------------------------------------------------------------- */

/* Reads and checks a payload; decompresses it. Returns a malloc'd buffer of raw_size bytes. */
/* dctx: the reader's one decompression context, made at the first zstd payload (ZSTD_decompress
 * made and freed one per call: ~160 KiB, mmap'd and faulted in again for every chunk). */
static uint8_t *load_payload(ZSTD_DCtx **dctx, int fd, uint64_t off, uint8_t codec, uint32_t disk,
                             uint32_t raw, uint32_t hash, const char **why)
{
    uint8_t *d = malloc(disk ? disk : 1);
    if (!d) return *why = "out of memory", NULL;
    if (mallet_pread_all(fd, d, disk, off)) return free(d), *why = "read error", NULL;
    if (mallet_hash32(d, disk) != hash) return free(d), *why = "payload checksum mismatch", NULL;
    if (codec == MALLET_CODEC_RAW) return d;
    uint8_t *r = malloc(raw ? raw : 1);
    if (!r) return free(d), *why = "out of memory", NULL;
    if (!*dctx && !(*dctx = ZSTD_createDCtx()))
        return free(d), free(r), *why = "out of memory", NULL;
    size_t n = ZSTD_decompressDCtx(*dctx, r, raw, d, disk);
    free(d);
    if (ZSTD_isError(n) || n != raw) return free(r), *why = "zstd payload does not decompress", NULL;
    return r;
}

typedef struct clock_fit {
    uint64_t c0, n0, c1, n1;
    int have;
} clock_fit_t;

static void fit_add(clock_fit_t *f, uint64_t c, uint64_t n)
{
    if (!c && !n) return;
    if (!f->have) {
        f->c0 = f->c1 = c;
        f->n0 = f->n1 = n;
        f->have = 1;
        return;
    }
    if (c < f->c0) f->c0 = c, f->n0 = n;
    if (c > f->c1) f->c1 = c, f->n1 = n;
}

/* arr, holding n elements of `size` bytes in room for a multiple of step, with room for one
 * more: arr itself, or arr grown by step (realloc); NULL when out of memory (arr stays). */
static void *room_for_one(void *arr, size_t n, size_t step, size_t size)
{
    return n % step ? arr : realloc(arr, (n + step) * size);
}

static int index_file(mallet_reader_t *r, unsigned fi, clock_fit_t *fit, char *err, size_t errlen)
{
    mallet_trace_info_t *info = &r->info[fi];
    const char *path = info->path;
    int fd = r->fds[fi];
    struct stat sb;
    if (fstat(fd, &sb)) return set_err(err, errlen, "%s: %s", path, strerror(errno)), -1;
    if (!S_ISREG(sb.st_mode)) return set_err(err, errlen, "%s: not a regular file", path), -1;
    uint64_t size = (uint64_t)sb.st_size;
    info->file_bytes = size;
    uint8_t fh[MALLET_FILE_HEADER_SIZE];
    if (size == 0) return set_err(err, errlen, "%s: empty file, not a mallet trace", path), -1;
    if (size < 8 || mallet_pread_all(fd, fh, size < sizeof fh ? (size_t)size : sizeof fh, 0) ||
        memcmp(fh, MALLET_TRACE_MAGIC, 8))
        return set_err(err, errlen, "%s: not a mallet trace (bad magic)", path), -1;
    if (size < sizeof fh)
        return set_err(err, errlen, "%s: truncated file header (%" PRIu64 " bytes)", path, size),
               -1;
    info->version = mallet_get_u32(fh + 8);
    if (info->version < MALLET_TRACE_VERSION_OLDEST || info->version > MALLET_TRACE_VERSION_PACKED)
        return set_err(err, errlen,
                       "%s: unsupported trace version %u (this mallet reads versions %u to %u)", path,
                       info->version, MALLET_TRACE_VERSION_OLDEST, MALLET_TRACE_VERSION_PACKED),
               -1;
    uint32_t hsize = mallet_get_u32(fh + 12);
    if (hsize < MALLET_FILE_HEADER_SIZE || hsize > size)
        return set_err(err, errlen, "%s: corrupt file header (header size %u)", path, hsize), -1;

    uint32_t *tids = NULL; /* distinct thread ids with events, for info->threads */
    size_t ntids = 0, captids = 0;
    uint64_t off = hsize;
    int rc = 0;
    while (off < size) {
        uint8_t hb[MALLET_CHUNK_HEADER_SIZE];
        mallet_chunk_header_t h;
        if (size - off < MALLET_CHUNK_HEADER_SIZE) {
            info->cut = 1, info->cut_bytes = size - off;
            break;
        }
        if (mallet_pread_all(fd, hb, sizeof hb, off)) {
            set_err(err, errlen, "%s: read error at offset %" PRIu64, path, off);
            rc = -1;
            break;
        }
        int u = mallet_chunk_header_unpack(hb, &h);
        if (u) {
            set_err(err, errlen, "%s: corrupt chunk header at offset %" PRIu64 " (%s)", path, off,
                    u == -1 ? "bad magic" : u == -2 ? "checksum mismatch" : "field out of range");
            rc = -1;
            break;
        }
        uint64_t poff = off + MALLET_CHUNK_HEADER_SIZE;
        if (h.codec == MALLET_CODEC_PACKED && info->version < MALLET_TRACE_VERSION_PACKED) {
            set_err(err, errlen, "%s: packed chunk at offset %" PRIu64 " in a version %u file",
                    path, off, info->version);
            rc = -1;
            break;
        }
        if (size - poff < h.disk_size) {
            info->cut = 1, info->cut_bytes = size - off;
            break;
        }
        fit_add(fit, h.clock_cycles, h.clock_ns);
        info->chunks++;
        int exits = h.type == MALLET_CHUNK_EVENTS && (h.flags & MALLET_CHUNK_F_THREAD_EXIT);
        int events = h.type == MALLET_CHUNK_EVENTS && h.count;
        void *ends = exits ? room_for_one(r->ends, r->nends, 64, sizeof *r->ends) : r->ends;
        if (ends) r->ends = ends;
        void *chunks = events ? room_for_one(r->chunks, r->nchunks, 256, sizeof *r->chunks)
                              : r->chunks;
        if (chunks) r->chunks = chunks;
        if ((exits && !ends) || (events && !chunks)) {
            set_err(err, errlen, "%s: out of memory", path);
            rc = -1;
            break;
        }
        if (exits) {
            r->ends[r->nends++] = (mallet_thread_end_t){fi, h.thread, h.tid, h.last_cycles};
            info->threads_exited++;
        }
        if (h.flags & MALLET_CHUNK_F_EMERGENCY) info->flushed_dying = 1;
        if (events) {
            chunk_ref_t *c = &r->chunks[r->nchunks];
            c->file = fi, c->tid = h.tid, c->thread = h.thread, c->codec = h.codec;
            c->first_seq = h.first_seq;
            c->disk_size = h.disk_size, c->raw_size = h.raw_size, c->count = h.count;
            c->payload_hash = h.payload_hash, c->offset = poff, c->first = h.first_cycles;
            c->last = h.last_cycles;
            c->seq = r->nchunks++;
            info->events += h.count;
            size_t i = 0;
            while (i < ntids && tids[i] != h.thread) i++;
            if (i == ntids) {
                if (ntids == captids) {
                    captids = captids ? 2 * captids : 16;
                    uint32_t *nt = realloc(tids, captids * sizeof *nt);
                    if (!nt) {
                        set_err(err, errlen, "%s: out of memory", path);
                        rc = -1;
                        break;
                    }
                    tids = nt;
                }
                tids[ntids++] = h.thread;
            }
        } else if (h.type == MALLET_CHUNK_META || h.type == MALLET_CHUNK_MAPS) {
            const char *why = NULL;
            uint8_t *pl = load_payload(&r->dctx, fd, poff, h.codec, h.disk_size, h.raw_size,
                                       h.payload_hash, &why);
            if (!pl) {
                set_err(err, errlen, "%s: corrupt chunk at offset %" PRIu64 ": %s", path, off, why);
                rc = -1;
                break;
            }
            if (h.type == MALLET_CHUNK_META) {
                int m = parse_meta(info, pl, pl + h.raw_size);
                if (m) {
                    set_err(err, errlen, "%s: corrupt process description at offset %" PRIu64,
                            path, off);
                    free(pl);
                    rc = -1;
                    break;
                }
                free(pl);
            } else {
                add_maps(info, dup_bytes(pl, h.raw_size, 0));
                free(pl);
            }
        } else if (h.type == MALLET_CHUNK_END) {
            uint8_t why = 0;
            if (h.raw_size == 1 && h.codec == MALLET_CODEC_RAW && !mallet_pread_all(fd, &why, 1, poff) &&
                mallet_hash32(&why, 1) == h.payload_hash)
                info->end_reason = why;
            else
                info->end_reason = MALLET_END_EXIT;
            info->ended_cleanly = 1;
        } /* unknown chunk types are skipped: later versions may add some */
        off = poff + h.disk_size;
    }
    info->threads = (uint32_t)ntids;
    free(tids);
    if (!rc && !info->chunks)
        set_err(err, errlen, "%s: no complete chunk: the trace holds nothing", path), rc = -1;
    return rc;
}

/* ---- the merge ----------------------------------------------------------------------------- */

static int cmp_thread_order(const void *a, const void *b)
{
    const chunk_ref_t *x = a, *y = b;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    if (x->thread != y->thread) return x->thread < y->thread ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Ends by time (ties by file, then thread): the order mallet_reader_thread_ends gives a file's. */
int mallet_thread_end_cmp(const void *a, const void *b)
{
    const mallet_thread_end_t *x = a, *y = b;
    if (x->cycles != y->cycles) return x->cycles < y->cycles ? -1 : 1;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    return (x->thread > y->thread) - (x->thread < y->thread);
}

/* Files first: each file's ends together, in time order. */
static int cmp_file_end(const void *a, const void *b)
{
    const mallet_thread_end_t *x = a, *y = b;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    return mallet_thread_end_cmp(a, b);
}

/* The first entry of r->ends (by file, then time) of file or a later one. */
static size_t ends_from(const mallet_reader_t *r, unsigned file)
{
    size_t lo = 0, hi = r->nends;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->ends[mid].file < file)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const mallet_thread_end_t *mallet_reader_thread_ends(const mallet_reader_t *r, unsigned file,
                                                     size_t *n)
{
    size_t from = ends_from(r, file), to = ends_from(r, file + 1);
    *n = to - from;
    return *n ? r->ends + from : NULL;
}

static int cmp_time_order(const void *a, const void *b)
{
    const chunk_ref_t *x = a, *y = b;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int ent_less(const heap_ent_t *a, const heap_ent_t *b)
{
    if (a->key != b->key) return a->key < b->key;
    return a->seq < b->seq;
}

static void heap_push(mallet_reader_t *r, cursor_t *c)
{
    size_t i = r->heap_len++;
    heap_ent_t e = {c->key, c->chunk->seq, c};
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ent_less(&e, &r->heap[p])) break;
        r->heap[i] = r->heap[p];
        i = p;
    }
    r->heap[i] = e;
}

/* Restores the heap after the top's key grew (or the top was replaced). */
static void heap_sift_top(mallet_reader_t *r)
{
    heap_ent_t e = r->heap[0];
    e.key = e.c->key;
    size_t i = 0, n = r->heap_len;
    if (n == 2) {
        /* Two cursors (a two-thread process, one chunk each at a time) is the common case, and
         * which of them is next is a coin toss when the threads run at once: selected with
         * masks, not a branch the CPU would mispredict every other event. */
        heap_ent_t o = r->heap[1];
        uint64_t m = -(uint64_t)((o.key < e.key) | ((o.key == e.key) & (o.seq < e.seq)));
        uintptr_t mp = (uintptr_t)m;
        r->heap[0].key = (o.key & m) | (e.key & ~m);
        r->heap[0].seq = (o.seq & m) | (e.seq & ~m);
        r->heap[0].c = (cursor_t *)(((uintptr_t)o.c & mp) | ((uintptr_t)e.c & ~mp));
        r->heap[1].key = (e.key & m) | (o.key & ~m);
        r->heap[1].seq = (e.seq & m) | (o.seq & ~m);
        r->heap[1].c = (cursor_t *)(((uintptr_t)e.c & mp) | ((uintptr_t)o.c & ~mp));
        return;
    }
    for (;;) {
        size_t l = 2 * i + 1, m;
        if (l >= n) break;
        m = l + 1 < n && ent_less(&r->heap[l + 1], &r->heap[l]) ? l + 1 : l;
        if (!ent_less(&r->heap[m], &e)) break;
        r->heap[i] = r->heap[m];
        i = m;
    }
    r->heap[i] = e;
}

static void heap_drop_top(mallet_reader_t *r)
{
    r->heap[0] = r->heap[--r->heap_len];
    heap_sift_top(r);
}

static void cursor_free(cursor_t *c)
{
    if (!c) return;
    if (c->batch != c->small) free(c->batch);
    free(c->raw), free(c);
}

/* The time k of `steps` even steps from t0 to t1. */
static inline uint64_t spmallet_pread_all(uint64_t t0, uint64_t t1, unsigned steps, unsigned k)
{
    return t0 + (uint64_t)((double)(t1 - t0) / (double)steps * (double)k);
}

/* Events from+1..until-1 carried the time of batch[from] (a clock reading): they get times
 * spread evenly from it toward t1, which is `steps` steps from batch[from]. */
static void spread_between(mallet_rec_t *b, unsigned from, unsigned until, uint64_t t1,
                           unsigned steps)
{
    uint64_t t0 = b[from].ev.cycles;
    for (unsigned i = from + 1; i < until; i++) {
        mallet_event_t *ev = &b[i].ev;
        uint64_t t = spmallet_pread_all(t0, t1, steps, i - from);
        if (ev->free_cycles == ev->cycles) ev->free_cycles = t; /* a realloc: both carried */
        ev->cycles = t;
    }
}

/* Events from...until-1 carried the time of batch[from]; batch[until] holds the next reading:
 * spread them evenly in between. A realloc's release comes before its allocation, so where
 * batch[until] is one, the run ends at its release: a release that carried the run's time is
 * the run's last member (spread like the others, up to the allocation's reading), one with a
 * reading of its own is where the run's times stop. */
static void spread_run(mallet_rec_t *b, unsigned from, unsigned until)
{
    uint64_t t0 = b[from].ev.cycles;
    mallet_event_t *next = &b[until].ev;
    uint64_t t1 = next->cycles;
    unsigned steps = until - from;
    int release_in_run = next->old_ptr && next->free_cycles == t0;
    if (release_in_run)
        steps++;
    else if (next->old_ptr)
        t1 = next->free_cycles;
    spread_between(b, from, until, t1, steps);
    if (release_in_run) next->free_cycles = spmallet_pread_all(t0, t1, steps, until - from);
}

/* A single-threaded process reads the clock on one event in 16 while it allocates fast, gives
 * the others its last reading, and keeps one time a step (100 us) of a fast phase
 * (docs/RECORDER.md, "Sparse timestamps"). In a file with one thread, those carried times are
 * spread evenly up to the next reading, so that lifetimes and the time of the peak keep their
 * resolution; nothing else can depend on them there (a fork ends the forking thread's chunk, and
 * runs are never spread across chunks). In a file with several threads they stay: there they
 * are what orders the threads safely. A run still open at the end of the batch waits for the
 * next batch, where its next reading is (cursor_fill grows a batch that is one run), unless the
 * chunk ends: then it is spread up to the chunk's last_cycles, the reading a full buffer ends
 * at, where that is later (else it keeps its time). */
static void spread_times(cursor_t *c)
{
    mallet_rec_t *b = c->batch;
    unsigned n = c->nbatch, from = 0;
    for (unsigned i = 1; i < n; i++) {
        if (b[i].ev.cycles == b[from].ev.cycles) continue;
        if (i > from + 1) spread_run(b, from, i);
        from = i;
    }
    if (from + 1 >= n || c->bad) return;
    if (c->left > 0) {
        if (from > 0) c->held = n - from, c->nbatch = from;
        return;
    }
    uint64_t end = c->chunk->last < c->chunk->limit ? c->chunk->last : c->chunk->limit;
    if (end > b[from].ev.cycles) spread_between(b, from, n, end, n - 1 - from);
}

/* Decodes the chunk's next events into c->batch from index i, up to its size; returns the new
 * end. Each is clamped in time. */
static unsigned cursor_decode(cursor_t *c, const chunk_ref_t *k, unsigned i)
{
    unsigned n = i + (c->left < c->cap - i ? c->left : c->cap - i), first = i;
    for (; i < n; i++) {
        mallet_rec_t *rec = &c->batch[i];
        mallet_event_t *ev = &rec->ev;
        if (decode_next(&c->pos, c->end, &c->st, ev)) {
            c->bad = 1;
            break;
        }
        ev->tid = k->tid;
        ev->thread = k->thread;
        ev->seq = c->seq++;
        if (ev->cycles < c->last) ev->cycles = c->last; /* a thread never goes back in time */
        if (ev->cycles > k->limit) ev->cycles = k->limit; /* ... even across its chunks */
        rec->part = MALLET_PART_WHOLE;
        rec->file = k->file;
        if (ev->old_ptr) { /* a realloc's (or reallocarray's): no other event has one */
            if (ev->free_cycles > ev->cycles) ev->free_cycles = ev->cycles;
            if (ev->free_cycles < c->last) ev->free_cycles = c->last;
            rec->part = MALLET_PART_RELEASE;
        }
        if (__builtin_expect(c->st.mark != 0, 0)) { /* a mark came before ev */
            if (i > 0) { /* its time goes to the event before (format.h, MALLET_MARK) */
                mallet_event_t *prev = &c->batch[i - 1].ev;
                uint64_t start = ev->old_ptr ? ev->free_cycles : ev->cycles; /* no later */
                uint64_t m = c->st.mark < start ? c->st.mark : start;
                if (m > prev->cycles) prev->cycles = m;
            }
            c->st.mark = 0;
        }
        c->last = ev->cycles;
    }
    c->left -= i - first;
    return i;
}

/* The batch is one run of carried times that the chunk's next events may end (spread_times):
 * doubles it, up to SPREAD_MAX events. 0 if it is not, or cannot grow. */
static int grow_for_run(cursor_t *c, unsigned n)
{
    if (!c->spread || n < c->cap || c->left == 0 || c->bad || c->cap >= SPREAD_MAX) return 0;
    for (unsigned i = 1; i < n; i++)
        if (c->batch[i].ev.cycles != c->batch[0].ev.cycles) return 0;
    unsigned cap = c->cap * 2;
    mallet_rec_t *b = c->batch == c->small ? malloc(cap * sizeof *b)
                                           : realloc(c->batch, cap * sizeof *b);
    if (!b) return 0; /* the run keeps its time, as one longer than SPREAD_MAX */
    if (c->batch == c->small) memcpy(b, c->small, sizeof c->small);
    c->batch = b;
    c->cap = cap;
    return 1;
}

/* Fills c->batch after the events held from the last batch: up to its size, and on past it
 * while the batch is one run of carried times (grow_for_run). */
static void cursor_fill(const mallet_reader_t *r, cursor_t *c)
{
    const chunk_ref_t *k = c->chunk;
    unsigned i = c->held, first = i;
    if (i) memmove(c->batch, c->batch + c->nbatch, i * sizeof c->batch[0]);
    c->held = 0;
    do {
        i = cursor_decode(c, k, i);
    } while (grow_for_run(c, i));
    c->next = 0;
    c->nbatch = i;
    if (r->ahead && i > first) r->ahead(r->ahead_arg, c->batch + first, i - first);
    if (c->spread) spread_times(c);
}

/* Moves the cursor to its next event. 1 ok, 0 chunk exhausted, -1 corrupt. */
HOT int cursor_step(mallet_reader_t *r, cursor_t *c)
{
    if (c->next == c->nbatch) {
        /* marks after the last event (a chunk copied by a signal handler between a mark and its
         * event): they have no event left to give their time to */
        if (c->left == 0 && c->pos != c->end && !c->bad && take_marks(&c->pos, c->end, &c->st))
            c->bad = 1;
        if (c->bad || (c->left == 0 && c->pos != c->end)) goto corrupt; /* held: left > 0 */
        if (c->left == 0) return 0;
        cursor_fill(r, c);
        if (c->nbatch == 0) goto corrupt;
    }
    c->rec = &c->batch[c->next++];
    c->key = c->rec->part == MALLET_PART_RELEASE ? c->rec->ev.free_cycles : c->rec->ev.cycles;
    return 1;
corrupt:
    set_err(r->err, sizeof r->err, "%s: corrupt events in chunk at offset %" PRIu64,
            r->info[c->chunk->file].path, c->chunk->offset - MALLET_CHUNK_HEADER_SIZE);
    return -1;
}

/* A packed chunk's raw payload, unpacked with its thread's model: the merge activates a thread's
 * chunks in file order (cmp_thread_order, then time order with the index as tie-breaker, the
 * starts clamped so that they never go back), which is the order they were packed in. */
static uint8_t *load_packed(mallet_reader_t *r, const chunk_ref_t *k, const char **why)
{
    if (!r->models) {
        r->models = calloc(r->nthreads, sizeof *r->models);
        r->packed_left = calloc(r->nthreads, sizeof *r->packed_left);
        if (!r->models || !r->packed_left) return *why = "out of memory", NULL;
        for (size_t i = 0; i < r->nchunks; i++)
            r->packed_left[r->chunks[i].tindex] += r->chunks[i].codec == MALLET_CODEC_PACKED;
    }
    mallet_pack_model_t **m = &r->models[k->tindex];
    if (!*m && !(*m = mallet_pack_model_new())) return *why = "out of memory", NULL;
    uint8_t *in = load_payload(&r->dctx, r->fds[k->file], k->offset, MALLET_CODEC_RAW,
                               k->disk_size, k->disk_size, k->payload_hash, why);
    uint8_t *out = in ? malloc((size_t)k->raw_size + MALLET_EVENT_MAX_SIZE) : NULL;
    if (in && !out) *why = "out of memory";
    if (out && mallet_unpack_chunk(*m, &r->dctx, in, k->disk_size, k->count, out, k->raw_size, why))
        free(out), out = NULL;
    free(in);
    /* The thread's last packed chunk: its model (~140 KiB, and its live blocks) goes, so that a
     * folder of a build's thousands of processes holds only those being read. */
    if (out && --r->packed_left[k->tindex] == 0) {
        mallet_pack_model_free(*m);
        *m = NULL;
    }
    return out;
}

static int activate(mallet_reader_t *r, const chunk_ref_t *k)
{
    const char *why = NULL;
    cursor_t *c = calloc(1, sizeof *c);
    if (!c) return set_err(r->err, sizeof r->err, "out of memory"), -1;
    c->chunk = k;
    c->batch = c->small;
    c->cap = CURSOR_BATCH;
    c->raw = k->codec == MALLET_CODEC_PACKED
                 ? load_packed(r, k, &why)
                 : load_payload(&r->dctx, r->fds[k->file], k->offset, k->codec, k->disk_size,
                                k->raw_size, k->payload_hash, &why);
    if (!c->raw) {
        set_err(r->err, sizeof r->err, "%s: corrupt chunk at offset %" PRIu64 ": %s",
                r->info[k->file].path, k->offset - MALLET_CHUNK_HEADER_SIZE, why);
        free(c);
        return -1;
    }
    c->pos = c->raw;
    c->end = c->raw + k->raw_size;
    c->left = k->count;
    c->last = k->first;
    c->seq = k->first_seq;
    c->next_seq = &r->next_seq[k->tindex];
    c->spread = r->info[k->file].threads == 1;
    int s = cursor_step(r, c);
    if (s <= 0) {
        cursor_free(c);
        return s;
    }
    heap_push(r, c);
    return 0;
}

mallet_reader_t *mallet_reader_open(const char *const *paths, unsigned npaths, char *err,
                                    size_t errlen)
{
    mallet_reader_t *r = calloc(1, sizeof *r);
    if (!r) return set_err(err, errlen, "out of memory"), NULL;
    r->nfiles = npaths;
    r->info = calloc(npaths ? npaths : 1, sizeof *r->info);
    r->fds = malloc((npaths ? npaths : 1) * sizeof *r->fds);
    if (!r->info || !r->fds) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < npaths; i++) r->fds[i] = -1;
    clock_fit_t fit = {0};
    for (unsigned i = 0; i < npaths; i++) {
        r->info[i].path = paths[i];
        r->info[i].file_index = i;
        r->fds[i] = open(paths[i], O_RDONLY | O_CLOEXEC);
        if (r->fds[i] < 0) {
            set_err(err, errlen, "%s: %s", paths[i], strerror(errno));
            goto fail;
        }
        if (index_file(r, i, &fit, err, errlen)) goto fail;
    }
    /* One cycles->ns line for all files: they come from one machine's counter. */
    /* Clock pairs a millisecond or more apart fit the rate to better than 0.01%; closer ones
     * (a very short trace) defer to the rate the recorder measured at its start. */
    r->ns_per_cycle = 1.0;
    for (unsigned i = 0; i < npaths; i++)
        if (r->info[i].cycles_per_sec) {
            r->ns_per_cycle = 1e9 / (double)r->info[i].cycles_per_sec;
            break;
        }
    if (fit.have && fit.c1 > fit.c0 && fit.n1 > fit.n0 + 1000000)
        r->ns_per_cycle = (double)(fit.n1 - fit.n0) / (double)(fit.c1 - fit.c0);
    r->base_cycles = fit.c0;
    r->base_ns = fit.n0;
    for (unsigned i = 0; i < npaths; i++) r->info[i].ns_per_cycle = r->ns_per_cycle;

    if (r->nends) qsort(r->ends, r->nends, sizeof *r->ends, cmp_file_end);
    /* Clamp each thread's chunk start times so they never go backwards, then sort by time. */
    if (r->nchunks) qsort(r->chunks, r->nchunks, sizeof *r->chunks, cmp_thread_order);
    for (size_t i = 0; i < r->nchunks; i++) {
        chunk_ref_t *b = &r->chunks[i], *a = i ? &r->chunks[i - 1] : NULL;
        if (a && a->file == b->file && a->thread == b->thread) {
            b->tindex = a->tindex;
            if (b->first < a->first) b->first = a->first;
        } else {
            b->tindex = (uint32_t)r->nthreads++;
        }
    }
    /* If a thread's counter stepped back across a chunk boundary, the next chunk may start
     * before this one ends; its events would then overtake this chunk's, and the seq
     * de-duplication would drop the overtaken ones. So no event goes past the start of the
     * thread's next chunk holding later events (repeats of this chunk's events do not count). */
    for (size_t i = r->nchunks; i-- > 0;) {
        chunk_ref_t *a = &r->chunks[i];
        a->limit = UINT64_MAX;
        for (size_t j = i + 1; j < r->nchunks && r->chunks[j].tindex == a->tindex; j++) {
            if (r->chunks[j].first_seq >= a->first_seq + a->count) {
                a->limit = r->chunks[j].first;
                break;
            }
        }
    }
    r->next_seq = calloc(r->nthreads ? r->nthreads : 1, sizeof *r->next_seq);
    if (r->nchunks) qsort(r->chunks, r->nchunks, sizeof *r->chunks, cmp_time_order);
    r->next_first = r->nchunks ? r->chunks[0].first : UINT64_MAX;
    r->heap = malloc((r->nchunks ? r->nchunks : 1) * sizeof *r->heap);
    if (!r->heap || !r->next_seq) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    return r;
fail:
    mallet_reader_close(r);
    return NULL;
}

/* ns = base_ns + (cycles - base_cycles) * ns_per_cycle, saturating at 0 and UINT64_MAX: the
 * clock pairs come from the file, and a damaged one must neither make the float-to-integer
 * conversion undefined nor let the result wrap (time_ns never goes back when cycles go on). */
static uint64_t cycles_to_ns(const mallet_reader_t *r, uint64_t cycles)
{
    double d = cycles >= r->base_cycles ? (double)(cycles - r->base_cycles)
                                        : -(double)(r->base_cycles - cycles);
    double x = d * r->ns_per_cycle;
    if (x >= 0) {
        if (x >= 18446744073709549568.0) return UINT64_MAX; /* the largest double < 2^64 */
        uint64_t add = (uint64_t)x;
        return add > UINT64_MAX - r->base_ns ? UINT64_MAX : r->base_ns + add;
    }
    if (-x >= 18446744073709549568.0) return 0;
    uint64_t sub = (uint64_t)-x;
    return sub > r->base_ns ? 0 : r->base_ns - sub;
}

/* Moves the merge past the top cursor's part: to a realloc's ALLOC half, or to the cursor's next
 * event (the cursor leaves the merge at the end of its chunk). fresh: the part was yielded. */
HOT int merge_pop(mallet_reader_t *r, cursor_t *c, int fresh)
{
    if (c->rec->part == MALLET_PART_RELEASE) { /* the ALLOC half follows at the call's end */
        c->release_fresh = fresh;
        c->rec->part = MALLET_PART_ALLOC;
        c->key = c->rec->ev.cycles;
        heap_sift_top(r);
        return 0;
    }
    int s = cursor_step(r, c);
    if (s <= 0) {
        heap_drop_top(r);
        cursor_free(c);
        return s;
    }
    heap_sift_top(r);
    return 0;
}

/* Leaves the next part to yield at the top of the heap: 1 (*out is its cursor), 0 at the end,
 * -1 on a corrupt payload. */
HOT int merge_top(mallet_reader_t *r, cursor_t **out)
{
    for (;;) {
        /* Bring in every chunk that may hold an event at or before the earliest pending one. */
        while (r->next_chunk < r->nchunks &&
               (r->heap_len == 0 || r->chunks[r->next_chunk].first <= r->heap[0].key)) {
            int a = activate(r, &r->chunks[r->next_chunk++]);
            r->next_first =
                r->next_chunk < r->nchunks ? r->chunks[r->next_chunk].first : UINT64_MAX;
            if (a < 0) return -1;
        }
        if (r->heap_len == 0) return 0;
        /* The top stays in place while it is used and then sifts down once: a pop and a push
         * per event would walk the heap twice. */
        cursor_t *c = r->heap[0].c;
        /* A chunk may repeat events of an earlier one (see first_seq in format.h): keep each
         * (thread, seq) once. Repeats come out of the heap next to their twin. */
        uint64_t *next = c->next_seq;
        int fresh = c->rec->part == MALLET_PART_ALLOC ? c->release_fresh : c->rec->ev.seq >= *next;
        if (fresh) {
            *next = c->rec->ev.seq + 1;
            *out = c;
            return 1;
        }
        if (merge_pop(r, c, 0) < 0) return -1;
    }
}

int mallet_reader_next(mallet_reader_t *r, mallet_rec_t *out)
{
    cursor_t *c;
    int k = merge_top(r, &c);
    if (k <= 0) return k;
    *out = *c->rec;
    out->time_ns = cycles_to_ns(r, c->key);
    return merge_pop(r, c, 1) < 0 ? -1 : 1;
}

void mallet_reader_set_ahead(mallet_reader_t *r, mallet_reader_ahead_fn *fn, void *arg)
{
    r->ahead = fn;
    r->ahead_arg = arg;
}

uint64_t mallet_reader_time_ns(const mallet_reader_t *r, uint64_t cycles)
{
    return cycles_to_ns(r, cycles);
}

/* Up to where the top cursor's events come next without a look at the heap: the earliest key of
 * another cursor (just past it if the top wins the tie: its chunk is earlier in the index) or of
 * a chunk not brought in yet. The runner-up is one of the top's two children. */
static uint64_t run_end(const mallet_reader_t *r)
{
    uint64_t end = r->next_first;
    uint64_t seq = r->heap[0].seq;
    for (size_t i = 1; i < 3 && i < r->heap_len; i++) {
        uint64_t e = r->heap[i].key + (seq < r->heap[i].seq);
        end = e < end ? e : end;
    }
    return end;
}

/* Puts next_one's top of two cursors back at heap[0], where the rest of the merge has it. */
static void heap_order(mallet_reader_t *r)
{
    if (!r->top2) return;
    heap_ent_t e = r->heap[0];
    r->heap[0] = r->heap[1];
    r->heap[1] = e;
    r->top2 = 0;
}

/* The next event with two cursors (a two-thread process), the held cursor c (the top) just
 * stepped to its next event: c's while it comes before run_end (its run goes on), else the other
 * cursor o's, which becomes the top. Which of them comes next is a coin toss when the threads run
 * at once: the top is an index (top2) flipped with a mask, not a branch the CPU would mispredict
 * every other event, nor a swap of the entries. Returns 1 with the event, or 0 (merge_top takes
 * over, the heap in order) when a chunk not brought in yet might come before o, or o's event is
 * a repeat. */
HOT int next_of_two(mallet_reader_t *r, cursor_t *c, const mallet_rec_t **out)
{
    size_t top = r->top2;
    heap_ent_t o = r->heap[top ^ 1];
    uint64_t first = r->next_first;
    uint64_t swap = c->key >= r->run_end; /* run_end: o's key (ties settled) or first */
    r->heap[top].key = c->key;
    if (swap & (first <= o.key)) {
        heap_order(r);
        heap_sift_top(r);
        return 0;
    }
    uint64_t m = -swap;
    top ^= swap;
    r->top2 = top;
    cursor_t *n = r->heap[top].c;
    /* c's event follows its last one, fresh; o's may repeat an earlier chunk's */
    const mallet_rec_t *rec = n->rec;
    uint64_t *next = n->next_seq;
    if (rec->part == MALLET_PART_ALLOC ? !n->release_fresh : rec->ev.seq < *next) {
        heap_order(r);
        return 0;
    }
    *next = rec->ev.seq + 1;
    uint64_t end = c->key + (o.seq < c->chunk->seq);
    end = end < first ? end : first;
    r->run_end = (end & m) | (r->run_end & ~m);
    r->held = n;
    *out = rec;
    return 1;
}

/* The next record, as mallet_reader_next_run's first; r->held is its cursor, r->run_end how far
 * that cursor's events come next. */
HOT int next_one(mallet_reader_t *r, const mallet_rec_t **out)
{
    if (r->held) {
        cursor_t *c = r->held;
        r->held = NULL;
        /* The held cursor's next event, decoded and a whole call: the step merge_pop would make,
         * inline. It comes next if it is before every other cursor's and every chunk still out,
         * as one thread's events often are (a one-thread file, a program under a global lock):
         * a run, yielded without a sift. Its sequence number follows the last one's, which was
         * fresh; the heap's copy of its key is refreshed at the sift that ends the run. */
        mallet_rec_t *rec = c->rec + 1; /* batch[next]: rec is batch[next - 1] */
        if (c->next < c->nbatch && c->rec->part != MALLET_PART_RELEASE &&
            rec->part == MALLET_PART_WHOLE) {
            c->next++;
            c->rec = rec;
            c->key = rec->ev.cycles;
            if (r->heap_len == 2) {
                if (next_of_two(r, c, out)) return 1;
            } else if (rec->ev.cycles < r->run_end) {
                *c->next_seq = rec->ev.seq + 1;
                r->held = c;
                *out = rec;
                return 1;
            } else {
                heap_sift_top(r);
            }
        } else {
            heap_order(r);
            if (merge_pop(r, c, 1) < 0) return -1;
        }
    }
    int k = merge_top(r, &r->held);
    if (k <= 0) return k;
    r->run_end = run_end(r);
    *out = r->held->rec;
    return 1;
}

int mallet_reader_next_run(mallet_reader_t *r, const mallet_rec_t **out)
{
    int k = next_one(r, out);
    if (k <= 0) return k;
    /* The records after it in its cursor's batch that come before every other cursor's and every
     * chunk still out: whole events (a realloc's halves go through the merge) below run_end.
     * Yielded with it, they cost the merge nothing each (a call and the checks above were a
     * third of the reader's time a record on recorded malloc_bench, whose runs are ~16 long:
     * a thread's events between two clock readings carry one time). */
    cursor_t *c = r->held;
    const mallet_rec_t *b = c->batch;
    unsigned i = c->next, n = c->nbatch, first = i;
    uint64_t end = r->run_end;
    /* the test that ends most runs first (threads that take turns make runs of one) */
    if (i == n || b[i].ev.cycles >= end || c->rec->part == MALLET_PART_RELEASE) return 1;
    while (i < n && b[i].part == MALLET_PART_WHOLE && b[i].ev.cycles < end)
        i++;
    if (i == first) return 1;
    k = (int)(i - first) + 1;
    c->next = i;
    c->rec = &c->batch[i - 1];
    c->key = c->rec->ev.cycles;
    *c->next_seq = c->rec->ev.seq + 1;
    return k;
}

unsigned mallet_reader_nfiles(const mallet_reader_t *r)
{
    return r->nfiles;
}

const mallet_trace_info_t *mallet_reader_info(const mallet_reader_t *r, unsigned file)
{
    return file < r->nfiles ? &r->info[file] : NULL;
}

const char *mallet_reader_error(const mallet_reader_t *r)
{
    return r->err;
}

void mallet_reader_close(mallet_reader_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->heap_len; i++) cursor_free(r->heap[i].c);
    free(r->heap);
    for (unsigned i = 0; r->info && i < r->nfiles; i++) {
        if (r->fds && r->fds[i] >= 0) close(r->fds[i]);
        free(r->info[i].cmdline);
        free(r->info[i].exe);
        free(r->info[i].maps);
    }
    free(r->fds);
    free(r->info);
    free(r->chunks);
    free(r->ends);
    free(r->next_seq);
    for (size_t i = 0; r->models && i < r->nthreads; i++) mallet_pack_model_free(r->models[i]);
    free(r->models);
    free(r->packed_left);
    ZSTD_freeDCtx(r->dctx);
    free(r);
}
