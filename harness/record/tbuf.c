/* Per-thread event buffers: attach on a thread's first event, flush when full or old, release at
 * thread exit. Buffers live in a lock-free registry (a list that only grows; released buffers
 * are reused) so that a dying process can flush every thread's pending events. */
#define _GNU_SOURCE
#include "record.h"

#include "trace/chunk_write.h"

#include <errno.h>
#include <string.h>

enum { TBUF_FREE = 0, TBUF_ACTIVE = 1 };

static _Atomic(mallet_tbuf_t *) registry;

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause");
#endif
}

/* Arms the buffer's time checks from now: flush after the flush period, and wake up for the
 * next RSS sample, whichever comes first. */
static void tbuf_arm(mallet_tbuf_t *b, uint64_t now)
{
    b->first_cycles = now;
    b->flush_at = now + mallet_proc.flush_cycles;
    uint64_t rss = atomic_load_explicit(&mallet_proc.next_rss, memory_order_relaxed);
    b->deadline = rss < b->flush_at ? rss : b->flush_at;
}

static void tbuf_reset_for(mallet_tbuf_t *b, mallet_tstate_t *t)
{
    b->tid = (uint32_t)mallet_gettid();
    b->serial = atomic_fetch_add(&mallet_proc.next_serial, 1);
    b->seq_base = 0;
    memset(&b->st, 0, sizeof b->st);
    atomic_store(&b->pos, 0);
    tbuf_arm(b, mallet_cycles());
    t->buf = b;
    mallet_stamp_set_serial(t, b->serial);
    t->seq = 0;
}

mallet_tbuf_t *mallet_tbuf_attach(mallet_tstate_t *t)
{
    if (atomic_load_explicit(&mallet_ready, memory_order_acquire) != 1) return NULL;
    /* Before this thread's first event is published (mallet_stamp explains why). */
    uint32_t attaches = atomic_fetch_add(&mallet_proc.attaches, 1) + 1;
    for (mallet_tbuf_t *b = atomic_load(&registry); b; b = b->next) {
        int expect = TBUF_FREE;
        if (atomic_compare_exchange_strong(&b->state, &expect, TBUF_ACTIVE)) {
            tbuf_reset_for(b, t);
            mallet_thread_register(t);
            mallet_stamp_join(t, attaches);
            return b;
        }
    }
    size_t cap = mallet_proc.opts.buffer_bytes;
    /* + room for one event past cap (MALLET_EVENT_MAX_SIZE includes the bytes a varint's
     * 8-byte store writes past its end) */
    size_t size = sizeof(mallet_tbuf_t) + cap + MALLET_EVENT_MAX_SIZE;
    mallet_tbuf_t *b = mallet_map(size);
    if (!b) return NULL;
    b->cap = cap;
    atomic_store(&b->state, TBUF_ACTIVE);
    tbuf_reset_for(b, t);
    mallet_tbuf_t *head = atomic_load(&registry);
    do {
        b->next = head;
    } while (!atomic_compare_exchange_weak(&registry, &head, b));
    mallet_thread_register(t);
    mallet_stamp_join(t, attaches);
    return b;
}

/* Writes the buffer's events as one chunk. The owner (emergency == 0) then empties the buffer.
 * Another thread, or a signal handler (emergency != 0), only copies what is there: the owner may
 * still be appending, and a later chunk that repeats these events is de-duplicated by the reader
 * through first_seq. ended: the owner's thread ends at that time (else 0): the chunk says so
 * (THREAD_EXIT, its last_cycles the end), even with no events in it. */
static void tbuf_write(mallet_tbuf_t *b, int emergency, uint64_t ended)
{
    int saved_errno = errno;
    /* No signal handler runs on this thread while it holds the lock (mallet_output_guard_begin
     * says why), so only another thread can be holding it. */
    mallet_sigmask_t guard = mallet_output_guard_begin();
    if (emergency) {
        /* Bounded wait all the same: a dying process does not wait on a holder stuck in a
         * write to a hung disk, nor on one that faulted inside the recorder. */
        uint64_t give_up = 0;
        while (atomic_exchange_explicit(&b->lock, 1, memory_order_acquire)) {
            uint64_t now = mallet_now_ns();
            if (!give_up) give_up = now + 100 * 1000000ull;
            if (now > give_up) {
                mallet_output_guard_end(guard);
                errno = saved_errno;
                return;
            }
            cpu_relax();
        }
    } else {
        while (atomic_exchange_explicit(&b->lock, 1, memory_order_acquire))
            cpu_relax();
    }
    uint64_t pos = atomic_load_explicit(&b->pos, memory_order_acquire);
    uint32_t len = (uint32_t)pos, count = (uint32_t)(pos >> 32);
    if (count || ended) {
        mallet_chunk_header_t h = {0};
        h.type = MALLET_CHUNK_EVENTS;
        h.flags = emergency ? MALLET_CHUNK_F_EMERGENCY : 0;
        if (ended) h.flags |= MALLET_CHUNK_F_THREAD_EXIT;
        h.tid = b->tid;
        h.thread = b->serial;
        h.count = count;
        h.first_cycles = b->first_cycles;
        h.last_cycles = ended ? ended : b->st.cycles;
        h.first_seq = b->seq_base;
        /* Traces of real programs shrink 2-25x (the same calls in the same order, again and
         * again); a malloc-bound thread that picks its blocks at random shrinks by nothing, and
         * would pay for every try. So a chunk that shrank less than 2x makes the thread write
         * its next ZSKIP raw, and try again after (chunks rarely fall in between). */
        enum { ZSKIP = 31 };
        mallet_zslot_t *z = emergency || b->zskip ? NULL : mallet_zslot_get(len);
        int r = mallet_zslot_write(z, &h, b->data, len);
        if (z) {
            mallet_zslot_put(z);
            b->zskip = (uint64_t)h.disk_size * 2 > len ? ZSKIP : 0;
        } else if (b->zskip) {
            b->zskip--;
        }
        if (r && r != -EBADF) mallet_output_failed(-r);
    }
    if (!emergency) {
        /* The next event may carry the time of the last one (mallet_stamp): the new chunk
         * must not claim a later start. */
        uint64_t last = count ? b->st.cycles : b->first_cycles;
        b->seq_base += count;
        memset(&b->st, 0, sizeof b->st);
        atomic_store_explicit(&b->pos, 0, memory_order_release);
        tbuf_arm(b, last);
    }
    atomic_store_explicit(&b->lock, 0, memory_order_release);
    mallet_output_guard_end(guard);
    errno = saved_errno;
}

void mallet_tbuf_flush(mallet_tbuf_t *b, int emergency)
{
    tbuf_write(b, emergency, 0);
}

void mallet_tbuf_flush_all(mallet_tstate_t *self, int emergency)
{
    for (mallet_tbuf_t *b = atomic_load(&registry); b; b = b->next) {
        if (atomic_load(&b->state) != TBUF_ACTIVE) continue;
        mallet_tbuf_flush(b, b == self->buf ? emergency : 1);
    }
}

void mallet_tbuf_release(mallet_tstate_t *t, int thread_exit)
{
    mallet_tbuf_t *b = t->buf;
    if (!b) return;
    uint64_t ended = 0;
    if (thread_exit) { /* no earlier than the thread's events, carried times included */
        ended = mallet_cycles();
        if (ended < t->last_cycles) ended = t->last_cycles;
        if (ended < b->st.cycles) ended = b->st.cycles;
        if (ended < b->first_cycles) ended = b->first_cycles;
        ended += !ended; /* 0 says "not ending" */
    }
    tbuf_write(b, 0, ended);
    t->seq = b->seq_base;
    t->buf = NULL;
    atomic_store(&b->state, TBUF_FREE);
}

void mallet_tbuf_after_fork_child(mallet_tstate_t *self)
{
    /* Only the forking thread survives. Its pending events were the parent's (the parent writes
     * them); every other buffer belonged to a thread that does not exist here. */
    for (mallet_tbuf_t *b = atomic_load(&registry); b; b = b->next) {
        atomic_store(&b->lock, 0);
        if (b != self->buf) atomic_store(&b->state, TBUF_FREE);
    }
    if (self->buf) {
        atomic_store(&self->buf->state, TBUF_FREE);
        self->buf = NULL;
    }
    mallet_stamp_set_serial(self, 0);
    self->seq = 0;
}

/* Writes an EVENTS chunk of t's, h's other fields set, from outside t's buffer (raw). */
static void write_alone(mallet_tstate_t *t, mallet_chunk_header_t *h, const uint8_t *p, size_t len)
{
    h->type = MALLET_CHUNK_EVENTS;
    h->tid = (uint32_t)mallet_gettid();
    h->thread = t->serial;
    int saved_errno = errno;
    int r = mallet_zslot_write(NULL, h, p, len);
    if (r && r != -EBADF) mallet_output_failed(-r);
    errno = saved_errno;
}

void mallet_tbuf_dying(mallet_tstate_t *t)
{
    if (!mallet_output_is_open()) return; /* nothing recorded: no file to say it in */
    mallet_chunk_header_t h = {.flags = MALLET_CHUNK_F_EMERGENCY};
    h.first_cycles = h.last_cycles = mallet_cycles();
    write_alone(t, &h, NULL, 0);
}

/* Writes one event as its own chunk. */
static void write_single(mallet_tstate_t *t, mallet_event_t ev)
{
    if (atomic_load_explicit(&mallet_ready, memory_order_relaxed) != 1) return;
    uint8_t buf[MALLET_EVENT_MAX_SIZE + 8];
    mallet_enc_state_t st = {0};
    size_t len = (size_t)(mallet_encode_event(buf, &st, &ev) - buf);
    if (!t->serial) mallet_stamp_set_serial(t, atomic_fetch_add(&mallet_proc.next_serial, 1));
    mallet_chunk_header_t h = {.count = 1, .first_seq = t->seq++};
    h.first_cycles = mallet_event_start(&ev);
    h.last_cycles = ev.cycles;
    write_alone(t, &h, buf, len);
}

void mallet_rec_first(mallet_tstate_t *t, uint8_t op, uint8_t failed, uint64_t callsite,
                      uint64_t cycles, uint64_t size, uint64_t ptr, uint64_t old_ptr,
                      uint64_t nmemb, uint64_t align, uint64_t free_cycles, int32_t ret)
{
    mallet_event_t ev = {.op = op,
                         .failed = failed,
                         .callsite = callsite,
                         .cycles = cycles,
                         .size = size,
                         .ptr = ptr,
                         .old_ptr = old_ptr,
                         .nmemb = nmemb,
                         .align = align,
                         .free_cycles = free_cycles,
                         .ret = ret};
    if (t->exited || atomic_load_explicit(&mallet_proc.write_through, memory_order_relaxed)) {
        write_single(t, ev);
        return;
    }
    mallet_tbuf_t *b = mallet_tbuf_attach(t);
    if (!b) {
        /* No memory for a buffer (or no mapping left): recording stops with one line on
         * stderr, as when the disk is full, and the program runs on. Going on without this
         * thread's events would make its frees of other threads' blocks frees of unknown
         * pointers, silently; the file, with no end, says its last events are missing. */
        write_single(t, ev);
        mallet_output_failed(ENOMEM);
        return;
    }
    b->first_cycles = mallet_event_start(&ev); /* the stamp was taken before the attach */
    mallet_rec_event(t, &ev);
}

void mallet_tbuf_mark(mallet_tstate_t *t, uint64_t cycles)
{
    mallet_tbuf_t *b = t->buf;
    uint64_t pos = atomic_load_explicit(&b->pos, memory_order_relaxed);
    if (!(pos >> 32)) return; /* no event before it in this chunk */
    /* Room: the buffer is below cap before an event, and keeps MALLET_EVENT_MAX_SIZE past it for
     * one; a mark (10 bytes at most, and its varint's 8-byte store) and the event that follows
     * it (64) fit in that too. Not counted: a chunk's count is its calls. */
    uint8_t *end = mallet_encode_mark(b->data + (uint32_t)pos, &b->st, cycles);
    atomic_store_explicit(&b->pos, (pos >> 32) << 32 | (uint32_t)(end - b->data),
                          memory_order_release);
    t->last_cycles = cycles;
}

void mallet_tbuf_due(mallet_tstate_t *t, mallet_tbuf_t *b, uint64_t now)
{
    uint32_t len = (uint32_t)atomic_load_explicit(&b->pos, memory_order_relaxed);
    if (len >= b->cap && atomic_load_explicit(&mallet_proc.attaches, memory_order_relaxed) < 2) {
        /* A full buffer of the process's one thread ends its chunk at a reading taken now, the
         * time of its last event (which may have carried one from up to a step before): the
         * reader spreads the chunk's last run of carried times up to it (docs/TRACE_FORMAT.md,
         * 9.3), and the thread's next events carry it: published as its last reading, for a
         * thread that starts now (stamp.c, mallet_stamp_join). */
        uint64_t read = mallet_cycles();
        if (read > now) {
            b->st.cycles = t->last_cycles = now = read;
            atomic_store_explicit(&mallet_proc.single_last, read, memory_order_relaxed);
        }
    }
    if (len >= b->cap || now >= b->flush_at) mallet_tbuf_flush(b, 0);
    mallet_maybe_sample_rss(t, now); /* may append (and flush) again; it re-arms the deadline */
    if (t->buf == b) {
        uint64_t rss = atomic_load_explicit(&mallet_proc.next_rss, memory_order_relaxed);
        b->deadline = rss < b->flush_at ? rss : b->flush_at;
    }
}

void mallet_maybe_sample_rss(mallet_tstate_t *t, uint64_t now)
{
    uint64_t due = atomic_load_explicit(&mallet_proc.next_rss, memory_order_relaxed);
    if (now < due) return;
    /* One thread wins each period; the sample goes into its own buffer. */
    if (!atomic_compare_exchange_strong(&mallet_proc.next_rss, &due, now + mallet_proc.rss_cycles))
        return;
    int saved_errno = errno;
    mallet_event_t ev = {.op = MALLET_OP_RSS, .cycles = now};
    mallet_sigmask_t guard = mallet_output_guard_begin(); /* open and pread: cancellation points */
    ev.size = mallet_rss_bytes(mallet_statm_fd());
    mallet_output_guard_end(guard);
    errno = saved_errno;
    if (ev.size) mallet_rec_event(t, &ev);
}
