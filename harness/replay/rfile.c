/* See rfile.h and docs/REPLAY_FILE.md. Native byte order: the file is a cache made and read by
 * the same mallet on the same machine; the version and op size in the header reject any other. */
#define _GNU_SOURCE
#include "rfile.h"

#include "platform/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SAVE_MAGIC "MALLETRP"
#define SAVE_VERSION 11u

typedef struct save_header {
    char magic[8];
    uint32_t version, op_size; /* op_size: sizeof(mallet_rop_t) of the writer (and of an
                                * extension) */
    uint32_t nthreads, nslots;
    uint64_t ops, waits, skipped, failed_allocs;
    uint64_t trace_size, trace_mtime_ns;
    uint64_t peak_live_bytes, peak_live_blocks;
    uint64_t nchunks, patches;
    uint64_t index_offset; /* the thread table, the chunk table, the RSS samples; to the end */
    uint32_t rss_n;        /* the traced process's RSS samples, at the end of the index */
    uint32_t concurrency;  /* the most threads the worker runs at once (prepare.h) */
    uint64_t gap_ns;       /* prepare's resume gap (prepare.h), 0: none */
} save_header_t;

typedef struct save_thread {
    uint32_t tid, flags;
    uint64_t nops, nchunks; /* its chunks follow the previous thread's in the chunk table */
} save_thread_t;

typedef struct save_chunk {
    uint64_t offset;
    uint32_t nops, nexts;
} save_chunk_t;

_Static_assert(sizeof(mallet_rop_t) == 8, "mallet_rop_t is 8 bytes on disk");
_Static_assert(sizeof(mallet_rop_ext_t) == sizeof(mallet_rop_t),
               "an extension is as long as an op: a chunk is a whole number of ops' lengths");
_Static_assert(sizeof(save_header_t) == 128, "save_header_t has no padding");
_Static_assert(sizeof(mallet_rss_sample_t) == 16, "an RSS sample is 16 bytes on disk");

/* pread/pwrite of all len bytes at off (EINTR retried; a short read at the end is an error). */
static int io_at(int fd, void *buf, size_t len, uint64_t off, int write)
{
    char *p = buf;
    while (len) {
        ssize_t n = write ? pwrite(fd, p, len, (off_t)off) : pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_at(int fd, const void *buf, size_t len, uint64_t off)
{
    return io_at(fd, (void *)buf, len, off, 1);
}

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
    return io_at(fd, buf, len, off, 0);
}

static int header_ok(const save_header_t *h)
{
    return !memcmp(h->magic, SAVE_MAGIC, 8) && h->version == SAVE_VERSION &&
           h->op_size == sizeof(mallet_rop_t) && h->rss_n <= MALLET_RFILE_RSS_MAX;
}

/* Reads fd's header and checks it is one of this mallet's; *size: the file's. 0 or -1. */
static int read_header(int fd, save_header_t *h, uint64_t *size)
{
    struct stat sb;
    if (fstat(fd, &sb) || (uint64_t)sb.st_size < sizeof *h || read_at(fd, h, sizeof *h, 0) ||
        !header_ok(h))
        return -1;
    *size = (uint64_t)sb.st_size;
    return 0;
}

static void header_info(const save_header_t *h, mallet_prepared_info_t *info)
{
    info->trace_size = h->trace_size;
    info->trace_mtime_ns = h->trace_mtime_ns;
    info->ops = h->ops;
    info->waits = h->waits;
    info->skipped = h->skipped;
    info->failed_allocs = h->failed_allocs;
    info->peak_live_bytes = h->peak_live_bytes;
    info->peak_live_blocks = h->peak_live_blocks;
    info->chunks = h->nchunks;
    info->patches = h->patches;
    info->nthreads = h->nthreads;
    info->nslots = h->nslots;
    info->concurrency = h->concurrency;
    info->gap_ns = h->gap_ns;
}

int mallet_rfile_recorded_rss(const char *path, mallet_rss_sample_t *out, uint32_t *n)
{
    save_header_t h;
    uint64_t size;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    /* the samples end the file */
    int bad = read_header(fd, &h, &size) || size < h.rss_n * sizeof *out ||
              read_at(fd, out, h.rss_n * sizeof *out, size - h.rss_n * sizeof *out);
    close(fd);
    *n = bad ? 0 : h.rss_n;
    return bad ? -1 : 0;
}

int mallet_prepared_peek(const char *path, mallet_prepared_info_t *info)
{
    save_header_t h;
    uint64_t size;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int bad = read_header(fd, &h, &size);
    close(fd);
    if (bad) return -1;
    header_info(&h, info);
    return 0;
}

/* ---- writing ------------------------------------------------------------------------------- */

typedef struct wchunk {
    uint64_t offset, first;
    uint32_t nops, nexts;
} wchunk_t;

typedef struct wthread {
    wchunk_t *chunks;
    size_t n, cap;
    uint64_t nops;
} wthread_t;

/* An op flagged AWAITED after its chunk was written is patched in the file, by writing its flags
 * byte: a patch list for the worker to apply instead would cost it memory in proportion to the
 * waits, or a sort at load time; a one-byte pwrite costs a syscall, and only for ops that were
 * flushed before another thread freed their block (prepare keeps recent ops in memory, where
 * flagging is free). Patches are collected and applied sorted by offset, so that they walk the
 * file once per batch; the batch is bounded (patch_cap), so is the memory. */
#define PATCH_CAP_DEFAULT (1u << 18) /* 2 MiB of offsets */

struct mallet_rfile_writer {
    int fd;
    char path[PATH_MAX], tmp[PATH_MAX];
    uint64_t trace_size, trace_mtime_ns;
    uint64_t off; /* the end of what is written */
    wthread_t *threads;
    uint32_t nthreads;
    uint64_t nchunks;
    uint64_t *patches; /* file offsets of flags bytes to set */
    size_t npatches, patch_cap;
    uint64_t patched;
    uint64_t rss_seen, rss_stride; /* sample k is kept when k % rss_stride == 0 */
    uint32_t rss_n;
    mallet_rss_sample_t rss[MALLET_RFILE_RSS_MAX];
};

int mallet_rfile_create(const char *path, uint64_t trace_size, uint64_t trace_mtime_ns,
                        mallet_rfile_writer_t **out)
{
    *out = NULL;
    mallet_rfile_writer_t *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    if (snprintf(w->path, sizeof w->path, "%s", path) >= (int)sizeof w->path ||
        snprintf(w->tmp, sizeof w->tmp, "%s.%d.tmp", path, (int)getpid()) >= (int)sizeof w->tmp) {
        free(w);
        return -ENAMETOOLONG;
    }
    w->fd = open(w->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        int e = errno;
        free(w);
        return -e;
    }
    w->trace_size = trace_size;
    w->trace_mtime_ns = trace_mtime_ns;
    w->patch_cap = PATCH_CAP_DEFAULT;
    w->rss_stride = 1;
    w->off = sizeof(save_header_t); /* the header is written last, at commit */
    *out = w;
    return 0;
}

void mallet_rfile_add_rss(mallet_rfile_writer_t *w, uint64_t t_ns, uint64_t bytes)
{
    uint64_t k = w->rss_seen++;
    if (k % w->rss_stride) return;
    if (w->rss_n == MALLET_RFILE_RSS_MAX) { /* full: every other one, at twice the stride */
        for (uint32_t i = 0; i < MALLET_RFILE_RSS_MAX / 2; i++) w->rss[i] = w->rss[2 * i];
        w->rss_n = MALLET_RFILE_RSS_MAX / 2;
        w->rss_stride *= 2;
        if (k % w->rss_stride) return;
    }
    w->rss[w->rss_n++] = (mallet_rss_sample_t){t_ns, bytes};
}

void mallet_rfile_set_patch_cap(mallet_rfile_writer_t *w, size_t cap)
{
    if (cap && cap < w->patch_cap && !w->npatches) w->patch_cap = cap;
}

static int errno_or_eio(void)
{
    return errno ? -errno : -EIO;
}

int mallet_rfile_append(mallet_rfile_writer_t *w, uint32_t thread, const mallet_rop_t *ops,
                        uint32_t n, const mallet_rop_ext_t *exts, uint32_t nx)
{
    if (!n || n > MALLET_RFILE_CHUNK_MAX || nx > n) return -EINVAL;
    if (thread >= w->nthreads) {
        uint32_t nt = thread + 16;
        wthread_t *t = realloc(w->threads, nt * sizeof *t);
        if (!t) return -ENOMEM;
        memset(t + w->nthreads, 0, (nt - w->nthreads) * sizeof *t);
        w->threads = t;
        w->nthreads = nt;
    }
    wthread_t *t = &w->threads[thread];
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        wchunk_t *c = realloc(t->chunks, cap * sizeof *c);
        if (!c) return -ENOMEM;
        t->chunks = c;
        t->cap = cap;
    }
    size_t len = (size_t)n * sizeof *ops, xlen = (size_t)nx * sizeof *exts;
    /* two writes only for chunks with extensions: malloc and free alone need none */
    if (write_at(w->fd, ops, len, w->off) || (nx && write_at(w->fd, exts, xlen, w->off + len)))
        return errno_or_eio();
    t->chunks[t->n++] = (wchunk_t){w->off, t->nops, n, nx};
    t->nops += n;
    w->off += len + xlen;
    w->nchunks++;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Patches closer together than PATCH_GAP bytes are applied as one read, change and write of
 * their span (at most PATCH_SPAN bytes): a one-byte pwrite costs about a microsecond, copying a
 * KiB there and back a fifth of that (with 8 threads freeing each other's blocks, a patch every
 * 1-2 KiB and the one-byte writes were a tenth of the conversion). */
#define PATCH_GAP 4096u
#define PATCH_SPAN (64u << 10)

static int apply_patches(mallet_rfile_writer_t *w)
{
    if (!w->npatches) return 0;
    qsort(w->patches, w->npatches, sizeof *w->patches, cmp_u64);
    const uint8_t flag = MALLET_ROP_AWAITED; /* the flags byte holds nothing else */
    uint8_t *span = NULL;
    int rc = 0;
    for (size_t i = 0, j; !rc && i < w->npatches; i = j) {
        uint64_t start = w->patches[i];
        size_t distinct = 1;
        for (j = i + 1; j < w->npatches && w->patches[j] - w->patches[j - 1] <= PATCH_GAP &&
                        w->patches[j] - start < PATCH_SPAN;
             j++)
            distinct += w->patches[j] != w->patches[j - 1];
        w->patched += distinct;
        if (distinct == 1) {
            if (write_at(w->fd, &flag, 1, start)) rc = errno_or_eio();
            continue;
        }
        if (!span && !(span = malloc(PATCH_SPAN))) {
            rc = -ENOMEM;
            break;
        }
        size_t len = (size_t)(w->patches[j - 1] - start) + 1;
        if (read_at(w->fd, span, len, start)) {
            rc = errno_or_eio();
            break;
        }
        for (size_t k = i; k < j; k++) span[w->patches[k] - start] = flag;
        if (write_at(w->fd, span, len, start)) rc = errno_or_eio();
    }
    free(span);
    w->npatches = 0;
    return rc;
}

int mallet_rfile_mark_awaited(mallet_rfile_writer_t *w, uint32_t thread, uint64_t op)
{
    if (thread >= w->nthreads || op >= w->threads[thread].nops) return -EINVAL;
    const wthread_t *t = &w->threads[thread];
    size_t lo = 0, hi = t->n; /* the last chunk whose first op is <= op */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->chunks[mid].first <= op)
            lo = mid;
        else
            hi = mid;
    }
    const wchunk_t *c = &t->chunks[lo];
    if (!w->patches) {
        w->patches = malloc(w->patch_cap * sizeof *w->patches);
        if (!w->patches) return -ENOMEM;
    }
    if (w->npatches == w->patch_cap) {
        int rc = apply_patches(w);
        if (rc) return rc;
    }
    w->patches[w->npatches++] =
        c->offset + (op - c->first) * sizeof(mallet_rop_t) + offsetof(mallet_rop_t, flags);
    return 0;
}

uint64_t mallet_rfile_patches(const mallet_rfile_writer_t *w)
{
    return w->patched + w->npatches;
}

static void writer_free(mallet_rfile_writer_t *w)
{
    for (uint32_t i = 0; i < w->nthreads; i++)
        free(w->threads[i].chunks);
    free(w->threads);
    free(w->patches);
    free(w);
}

void mallet_rfile_discard(mallet_rfile_writer_t *w)
{
    if (!w) return;
    close(w->fd);
    unlink(w->tmp);
    writer_free(w);
}

int mallet_rfile_commit(mallet_rfile_writer_t *w, const mallet_prepared_info_t *info,
                        const uint32_t *tids, const uint32_t *tflags)
{
    int rc = apply_patches(w);
    if (!rc && info->nthreads > w->nthreads) { /* threads with no op: still listed */
        wthread_t *t = realloc(w->threads, info->nthreads * sizeof *t);
        if (!t)
            rc = -ENOMEM;
        else {
            memset(t + w->nthreads, 0, (info->nthreads - w->nthreads) * sizeof *t);
            w->threads = t;
            w->nthreads = info->nthreads;
        }
    }
    save_header_t h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, SAVE_MAGIC, 8);
    h.version = SAVE_VERSION;
    h.op_size = sizeof(mallet_rop_t);
    h.nthreads = info->nthreads;
    h.nslots = info->nslots;
    h.ops = info->ops;
    h.waits = info->waits;
    h.skipped = info->skipped;
    h.failed_allocs = info->failed_allocs;
    h.trace_size = w->trace_size;
    h.trace_mtime_ns = w->trace_mtime_ns;
    h.peak_live_bytes = info->peak_live_bytes;
    h.peak_live_blocks = info->peak_live_blocks;
    h.nchunks = w->nchunks;
    h.patches = w->patched;
    h.index_offset = w->off;
    h.rss_n = w->rss_n;
    h.concurrency = info->concurrency;
    h.gap_ns = info->gap_ns;
    /* the index, in pieces of up to 4096 entries through one small buffer */
    union {
        save_thread_t t[4096];
        save_chunk_t c[4096];
    } buf;
    for (uint32_t i = 0; !rc && i < info->nthreads;) {
        uint32_t n = 0;
        for (; n < 4096 && i < info->nthreads; n++, i++)
            buf.t[n] = (save_thread_t){tids[i], tflags ? tflags[i] : 0, w->threads[i].nops,
                                       w->threads[i].n};
        if (write_at(w->fd, buf.t, n * sizeof buf.t[0], w->off)) rc = errno_or_eio();
        w->off += n * sizeof buf.t[0];
    }
    for (uint32_t i = 0; !rc && i < info->nthreads; i++) {
        const wthread_t *t = &w->threads[i];
        for (size_t k = 0; !rc && k < t->n;) {
            size_t n = 0;
            for (; n < 4096 && k < t->n; n++, k++)
                buf.c[n] = (save_chunk_t){t->chunks[k].offset, t->chunks[k].nops,
                                          t->chunks[k].nexts};
            if (write_at(w->fd, buf.c, n * sizeof buf.c[0], w->off)) rc = errno_or_eio();
            w->off += n * sizeof buf.c[0];
        }
    }
    if (!rc && write_at(w->fd, w->rss, w->rss_n * sizeof w->rss[0], w->off)) rc = errno_or_eio();
    w->off += w->rss_n * sizeof w->rss[0];
    if (!rc && write_at(w->fd, &h, sizeof h, 0)) rc = errno_or_eio();
    if (close(w->fd) && !rc) rc = errno_or_eio();
    /* The old file goes first: renamed over an existing file, ext4 writes the new one's data
     * back before the rename returns (auto_da_alloc), which a cache does not need (measured:
     * 0.15 s of a 1 s conversion of 10 M events). */
    if (!rc) unlink(w->path);
    if (!rc && rename(w->tmp, w->path)) rc = errno_or_eio();
    if (rc) unlink(w->tmp);
    writer_free(w);
    return rc;
}

/* ---- reading ------------------------------------------------------------------------------- */

void mallet_rfile_close(mallet_rfile_t *rf)
{
    mallet_unmap(rf->map, rf->map_len);
    if (rf->fd >= 0) close(rf->fd);
    memset(rf, 0, sizeof *rf);
    rf->fd = -1;
}

int mallet_rfile_open(const char *path, mallet_rfile_t *rf, char *err, size_t errlen)
{
    memset(rf, 0, sizeof *rf);
    rf->path = path;
    rf->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (rf->fd < 0) return mallet_errorf(err, errlen, "%s: %s", path, strerror(errno));
    save_header_t h;
    uint64_t size;
    if (read_header(rf->fd, &h, &size)) {
        mallet_rfile_close(rf);
        return mallet_errorf(err, errlen, "%s: not a prepared replay of this mallet", path);
    }
    const char *why = NULL;
    uint64_t ilen = size - h.index_offset;
    if (h.index_offset < sizeof h || h.index_offset > size ||
        h.nthreads > ilen / sizeof(save_thread_t) || h.nchunks > ilen / sizeof(save_chunk_t) ||
        ilen != h.nthreads * sizeof(save_thread_t) + h.nchunks * sizeof(save_chunk_t) +
                    h.rss_n * sizeof(mallet_rss_sample_t)) {
        why = "its index does not fit the file";
        goto bad;
    }
    /* one mapping: the threads and chunks as used, then the index as read from the file */
    size_t tlen = h.nthreads * sizeof(mallet_rfile_thread_t);
    size_t clen = h.nchunks * sizeof(mallet_rfile_chunk_t);
    rf->map_len = tlen + clen + ilen ? tlen + clen + ilen : 1;
    rf->map = mallet_map(rf->map_len);
    if (!rf->map) {
        mallet_rfile_close(rf);
        return mallet_errorf(err, errlen, "%s: out of memory for its index", path);
    }
    uint8_t *raw = (uint8_t *)rf->map + tlen + clen;
    if (read_at(rf->fd, raw, ilen, h.index_offset)) {
        why = "read error in its index";
        goto bad;
    }
    rf->threads = rf->map;
    mallet_rfile_chunk_t *chunks = (mallet_rfile_chunk_t *)((uint8_t *)rf->map + tlen);
    const save_chunk_t *sc = (const save_chunk_t *)(raw + h.nthreads * sizeof(save_thread_t));
    uint64_t k = 0;
    for (uint32_t i = 0; i < h.nthreads; i++) {
        save_thread_t st;
        memcpy(&st, raw + i * sizeof st, sizeof st);
        mallet_rfile_thread_t *t = &rf->threads[i];
        t->tid = st.tid;
        t->flags = st.flags;
        t->nops = st.nops;
        t->nexts = 0;
        t->chunks = chunks + k;
        t->nchunks = st.nchunks;
        if (st.flags & ~(MALLET_RFILE_T_EXITS | MALLET_RFILE_T_STAYS) ||
            st.flags == (MALLET_RFILE_T_EXITS | MALLET_RFILE_T_STAYS)) {
            why = "a thread has unknown flags";
            goto bad;
        }
        if (st.nops > UINT32_MAX) { /* the replay's progress counters are 32-bit */
            why = "a thread has more than 2^32 - 1 ops";
            goto bad;
        }
        if (st.nchunks > h.nchunks - k) {
            why = "a thread's chunks do not add up";
            goto bad;
        }
        uint64_t first = 0;
        for (uint64_t c = 0; c < st.nchunks; c++, k++) {
            save_chunk_t s = sc[k];
            if (!s.nops || s.nops > MALLET_RFILE_CHUNK_MAX || s.nexts > s.nops ||
                s.offset < sizeof h || s.offset > h.index_offset ||
                (uint64_t)s.nops + s.nexts > (h.index_offset - s.offset) / sizeof(mallet_rop_t)) {
                why = "a chunk lies outside the ops";
                goto bad;
            }
            chunks[k] = (mallet_rfile_chunk_t){s.offset, first, t->nexts, s.nops, s.nexts};
            first += s.nops;
            t->nexts += s.nexts;
            if (s.nops > rf->max_chunk_ops) rf->max_chunk_ops = s.nops;
        }
        if (first != st.nops) {
            why = "a thread's chunks do not add up";
            goto bad;
        }
    }
    /* chunks never overlap in a file prepare wrote: all ops and extensions together fit between
     * header and index (so a small damaged file cannot make a reader load far more than its
     * size) */
    uint64_t all = 0;
    for (uint32_t i = 0; i < h.nthreads; i++) all += rf->threads[i].nops + rf->threads[i].nexts;
    if (all > (h.index_offset - sizeof h) / sizeof(mallet_rop_t)) {
        why = "its chunks overlap";
        goto bad;
    }
    if (k != h.nchunks) {
        why = "a thread's chunks do not add up";
        goto bad;
    }
    if (h.nthreads ? h.concurrency < 1 || h.concurrency > h.nthreads : h.concurrency != 0) {
        why = "its thread concurrency is out of range";
        goto bad;
    }
    header_info(&h, &rf->info);
    rf->nthreads = h.nthreads;
    rf->nslots = h.nslots;
    return 0;
bad:
    mallet_rfile_close(rf);
    return mallet_errorf(err, errlen, "%s: corrupt replay file: %s", path, why);
}

int64_t mallet_rfile_read_chunk(const mallet_rfile_t *rf, uint32_t t, uint64_t k, mallet_rop_t *ops,
                                mallet_rop_ext_t *exts, char *err, size_t errlen)
{
    if (t >= rf->nthreads || k >= rf->threads[t].nchunks)
        return mallet_errorf(err, errlen, "%s: no chunk %" PRIu64 " in thread %u", rf->path, k, t);
    const mallet_rfile_chunk_t *c = &rf->threads[t].chunks[k];
    size_t len = (size_t)c->nops * sizeof *ops;
    if (read_at(rf->fd, ops, len, c->offset) ||
        (c->nexts && read_at(rf->fd, exts, (size_t)c->nexts * sizeof *exts, c->offset + len)))
        return mallet_errorf(err, errlen, "%s: read error at offset %" PRIu64, rf->path, c->offset);
    int64_t calls = 0;
    const uint32_t nslots = rf->nslots;
    uint32_t nx = 0;
    for (uint32_t i = 0; i < c->nops; i++) {
        const mallet_rop_t *o = &ops[i];
        uint8_t kind = mallet_rop_kind(o);
        int ok, ext = (o->kind & MALLET_ROP_EXT) != 0;
        /* only malloc has both forms; free has no extension, every other op one of its own */
        int form = ext ? kind != MALLET_OP_FREE && nx < c->nexts
                       : kind == MALLET_OP_MALLOC || kind == MALLET_OP_FREE;
        if (!form) {
            ok = 0;
        } else if (kind == MALLET_ROP_WAIT) {
            const mallet_rop_ext_t *x = &exts[nx];
            ok = x->aux < rf->nthreads && o->slot < rf->threads[x->aux].nops &&
                 (x->aux != t || o->slot < c->first + i) && !(o->flags & ~MALLET_ROP_AWAITED);
        } else {
            const mallet_rop_ext_t *x = ext ? &exts[nx] : NULL;
            int alt = ext && (o->size & MALLET_ROP_ALT);
            ok = kind && kind < MALLET_OP_RSS && !(o->flags & ~MALLET_ROP_AWAITED) &&
                 (o->slot == MALLET_NO_SLOT || o->slot < nslots) &&
                 (!mallet_rop_resizes(kind) || x->aux == MALLET_NO_SLOT || x->aux < nslots) &&
                 (!alt || kind == MALLET_OP_CALLOC || (mallet_rop_aligns(kind) && x->aux < 64));
            calls++;
        }
        if (!ok)
            return mallet_errorf(err, errlen,
                                 "%s: corrupt replay file: thread %u op %" PRIu64
                                 " names a slot or op that does not exist",
                                 rf->path, t, c->first + i);
        nx += (uint32_t)ext;
    }
    if (nx != c->nexts)
        return mallet_errorf(err, errlen,
                             "%s: corrupt replay file: thread %u: a chunk has %u extensions for %u"
                             " ops with one",
                             rf->path, t, c->nexts, nx);
    return calls;
}

/* One thread of deadlocks()'s run of the waits: how far it got, its next extension, and the
 * next thread in the list of those blocked on the same thread as it. */
typedef struct sim {
    uint64_t pos;
    const mallet_rop_ext_t *x;
    uint32_t next_waiter;
} sim_t;
#define NO_THREAD UINT32_MAX

/* Runs the waits alone: each thread goes through its ops in order, a wait holding it until the
 * op it names has gone. The streams deadlock when some thread cannot reach its end that way (a
 * wait for an op that comes after a wait, in turn, for the first thread: only a damaged file
 * has one, since prepare's waits all point back in the trace's time order). As in the worker, at
 * most the file's concurrency of threads run at once, started in index order, one more each time
 * one reaches its end. A thread blocked on another is queued on it and run again when that one
 * moves. Returns the first thread that
 * cannot finish, NO_THREAD if none, or another value with *oom set. Its memory comes from
 * mmap: the worker runs this with the allocator under test loaded. */
static uint32_t deadlocks(const mallet_rfile_t *rf, const mallet_rop_t *const *ops,
                          const mallet_rop_ext_t *const *exts, uint64_t *stuck_op, int *oom)
{
    uint32_t n = rf->nthreads;
    size_t len = n * (sizeof(sim_t) + 2 * sizeof(uint32_t));
    sim_t *sim = mallet_map(len);
    *oom = !sim;
    if (!sim) return 0;
    uint32_t *blocked_on_me = (uint32_t *)(sim + n), *runnable = blocked_on_me + n, nrun = 0;
    uint32_t started = rf->info.concurrency < n ? rf->info.concurrency : n;
    for (uint32_t t = 0; t < n; t++) {
        sim[t] = (sim_t){0, exts[t], NO_THREAD};
        blocked_on_me[t] = NO_THREAD;
    }
    for (uint32_t t = 0; t < started; t++)
        runnable[nrun++] = started - 1 - t; /* thread 0 first */
    while (nrun) {
        uint32_t t = runnable[--nrun];
        sim_t *s = &sim[t];
        uint64_t from = s->pos;
        for (; s->pos < rf->threads[t].nops; s->pos++) {
            const mallet_rop_t *o = &ops[t][s->pos];
            if (!(o->kind & MALLET_ROP_EXT)) continue;
            uint32_t u = s->x->aux; /* read_chunk checked the thread and the op exist */
            if (mallet_rop_kind(o) == MALLET_ROP_WAIT && u != t && sim[u].pos <= o->slot) {
                s->next_waiter = blocked_on_me[u];
                blocked_on_me[u] = t;
                break;
            }
            s->x++;
        }
        /* at its end (reached now: a thread ends once, and is queued nowhere after), its slot
         * goes to the next thread, unless it stays to the end of the replay */
        if (s->pos == rf->threads[t].nops && !(rf->threads[t].flags & MALLET_RFILE_T_STAYS) &&
            started < n)
            runnable[nrun++] = started++;
        if (s->pos == from) continue;
        for (uint32_t w = blocked_on_me[t]; w != NO_THREAD; w = sim[w].next_waiter)
            runnable[nrun++] = w;
        blocked_on_me[t] = NO_THREAD;
    }
    uint32_t stuck = NO_THREAD;
    for (uint32_t t = 0; t < n && stuck == NO_THREAD; t++)
        if (sim[t].pos < rf->threads[t].nops) stuck = t, *stuck_op = sim[t].pos;
    mallet_unmap(sim, len);
    return stuck;
}

int mallet_rfile_check_waits(const mallet_rfile_t *rf, const mallet_rop_t *const *ops,
                             const mallet_rop_ext_t *const *exts, char *err, size_t errlen)
{
    for (uint32_t t = 0; t < rf->nthreads; t++) {
        const mallet_rop_ext_t *x = exts[t];
        for (uint64_t i = 0; i < rf->threads[t].nops; i++) {
            const mallet_rop_t *o = &ops[t][i];
            if (!(o->kind & MALLET_ROP_EXT)) continue;
            /* read_chunk checked the thread and the op exist */
            if (mallet_rop_kind(o) == MALLET_ROP_WAIT &&
                !(ops[x->aux][o->slot].flags & MALLET_ROP_AWAITED))
                return mallet_errorf(err, errlen,
                                     "%s: corrupt replay file: thread %u op %" PRIu64
                                     " waits for an op that is never published",
                                     rf->path, t, i);
            x++;
        }
    }
    uint64_t op = 0;
    int oom;
    uint32_t t = deadlocks(rf, ops, exts, &op, &oom);
    if (oom) return mallet_errorf(err, errlen, "out of memory for the replay's waits");
    if (t != NO_THREAD)
        return mallet_errorf(err, errlen,
                             "%s: corrupt replay file: threads wait for each other (a "
                             "deadlock): thread %u stops at op %" PRIu64,
                             rf->path, t, op);
    return 0;
}
