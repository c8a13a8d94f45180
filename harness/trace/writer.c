/* See writer.h. */
#define _GNU_SOURCE
#include "writer.h"

#include "../platform/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <zstd.h>

#define WRITER_CHUNK_BYTES (64u << 10)

typedef struct wthread {
    uint32_t tid, serial;
    uint64_t seq; /* events already flushed */
    uint8_t buf[WRITER_CHUNK_BYTES + MALLET_EVENT_MAX_SIZE];
    size_t len;
    uint32_t count;
    uint64_t first, last;
    int ended; /* mallet_writer_thread_exit: a later event of its tid is another thread's */
    mallet_enc_state_t st;
} wthread_t;

struct mallet_writer {
    int fd;
    int level;
    ZSTD_CCtx *cctx;
    uint8_t *scratch;
    size_t scratch_cap;
    wthread_t **threads;
    size_t nthreads;
};

/* ended: the thread ends at that time (a THREAD_EXIT chunk, even without events), else 0 */
static int flush_thread(mallet_writer_t *w, wthread_t *t, uint64_t ended)
{
    if (!t->count && !ended) return 0;
    mallet_chunk_header_t h = {0};
    h.type = MALLET_CHUNK_EVENTS;
    h.flags = ended ? MALLET_CHUNK_F_THREAD_EXIT : 0;
    h.tid = t->tid;
    h.thread = t->serial;
    h.first_seq = t->seq;
    h.count = t->count;
    h.first_cycles = t->first;
    h.last_cycles = ended ? ended : t->last;
    int r = mallet_chunk_write(w->fd, &h, t->buf, t->len, w->cctx, w->level, w->scratch,
                               w->scratch_cap);
    t->seq += t->count;
    t->len = 0;
    t->count = 0;
    memset(&t->st, 0, sizeof t->st);
    return r;
}

mallet_writer_t *mallet_writer_open(const char *path, const mallet_meta_t *meta, int zstd_level,
                                    char *err, size_t errlen)
{
    mallet_writer_t *w = calloc(1, sizeof *w);
    if (!w) return snprintf(err, errlen, "out of memory"), NULL;
    w->level = zstd_level;
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        free(w);
        return NULL;
    }
    if (zstd_level) {
        w->cctx = ZSTD_createCCtx();
        w->scratch_cap = mallet_chunk_scratch_size(WRITER_CHUNK_BYTES + MALLET_EVENT_MAX_SIZE);
        w->scratch = malloc(w->scratch_cap);
    }
    mallet_meta_t def = {.pid = 1};
    uint8_t fh[MALLET_FILE_HEADER_SIZE], mb[8192];
    mallet_file_header_pack(fh);
    size_t mlen = mallet_meta_encode(mb, sizeof mb, meta ? meta : &def);
    mallet_chunk_header_t h = {.type = MALLET_CHUNK_META};
    int r = mallet_write_all(w->fd, fh, sizeof fh);
    if (!r) r = mlen ? mallet_chunk_write(w->fd, &h, mb, mlen, NULL, 0, NULL, 0) : -E2BIG;
    if (r || (zstd_level && (!w->cctx || !w->scratch))) {
        snprintf(err, errlen, "%s: %s", path, r ? strerror(-r) : "out of memory");
        mallet_writer_close(w, 0);
        return NULL;
    }
    return w;
}

/* The buffer of thread tid (the thread that ended last, if a tid was reused), or a new one. */
static wthread_t *thread_of(mallet_writer_t *w, uint32_t tid, int create)
{
    for (size_t i = w->nthreads; i-- > 0;)
        if (w->threads[i]->tid == tid && !w->threads[i]->ended) return w->threads[i];
    if (!create) return NULL;
    wthread_t **nt = realloc(w->threads, (w->nthreads + 1) * sizeof *nt);
    if (!nt) return NULL;
    w->threads = nt;
    wthread_t *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->tid = tid;
    t->serial = (uint32_t)w->nthreads;
    w->threads[w->nthreads++] = t;
    return t;
}

int mallet_writer_event(mallet_writer_t *w, const mallet_event_t *ev)
{
    wthread_t *t = thread_of(w, ev->tid, 1);
    if (!t) return -ENOMEM;
    if (!t->count) t->first = mallet_event_start(ev);
    t->last = ev->cycles;
    t->len = (size_t)(mallet_encode_event(t->buf + t->len, &t->st, ev) - t->buf);
    t->count++;
    return t->len >= WRITER_CHUNK_BYTES ? flush_thread(w, t, 0) : 0;
}

int mallet_writer_mark(mallet_writer_t *w, uint32_t tid, uint64_t cycles)
{
    wthread_t *t = thread_of(w, tid, 0);
    if (!t) return -ENOENT;
    if (t->len + 16 > WRITER_CHUNK_BYTES) { /* keep the room one event needs after it */
        int r = flush_thread(w, t, 0);
        if (r) return r;
        if (t->len + 16 > WRITER_CHUNK_BYTES) return -ENOSPC; /* marks and no events */
    }
    t->len = (size_t)(mallet_encode_mark(t->buf + t->len, &t->st, cycles) - t->buf);
    if (cycles > t->last) t->last = cycles;
    return 0;
}

int mallet_writer_thread_exit(mallet_writer_t *w, uint32_t tid, uint64_t cycles)
{
    wthread_t *t = thread_of(w, tid, 0);
    if (!t) return -ENOENT;
    int r = flush_thread(w, t, cycles ? cycles : 1);
    t->ended = 1;
    return r;
}

int mallet_writer_maps(mallet_writer_t *w, const char *text, size_t len)
{
    mallet_chunk_header_t h = {.type = MALLET_CHUNK_MAPS};
    return mallet_chunk_write(w->fd, &h, (const uint8_t *)text, len, w->cctx, w->level, w->scratch,
                              w->scratch_cap);
}

int mallet_writer_flush(mallet_writer_t *w)
{
    int r = 0;
    for (size_t i = 0; i < w->nthreads; i++) {
        int e = flush_thread(w, w->threads[i], 0);
        if (!r) r = e;
    }
    return r;
}

int mallet_writer_close(mallet_writer_t *w, int clean_end)
{
    int r = w->fd >= 0 ? mallet_writer_flush(w) : -EBADF;
    if (!r && clean_end) {
        mallet_chunk_header_t h = {.type = MALLET_CHUNK_END};
        uint8_t why = MALLET_END_EXIT;
        r = mallet_chunk_write(w->fd, &h, &why, 1, NULL, 0, NULL, 0);
    }
    if (w->fd >= 0 && close(w->fd) && !r) r = -errno;
    for (size_t i = 0; i < w->nthreads; i++) free(w->threads[i]);
    free(w->threads);
    ZSTD_freeCCtx(w->cctx);
    free(w->scratch);
    free(w);
    return r;
}
