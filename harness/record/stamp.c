/* The slow side of the recorder's timestamps (record.h, mallet_stamp): clock readings, and the
 * owner table that lets threads of a multi-threaded process carry their last reading.
 *
 * Why carrying is safe (docs/RECORDER.md has the prose): an event E needs a time later than any
 * event E' of another thread it depends on (E' made the block E frees, or freed the address E's
 * allocation gets back). E' touched addr's owner entry (owners.h) before it completed, E touches it
 * after. E carries a time only if the entry holds E's own thread's tag; then that thread claimed
 * the entry after E' touched it, and
 * - if E' claimed it, E's thread claimed later with a time past the one in the entry (claims only
 *   move an entry's time forward), and it never carries a time below its claim's;
 * - if E' carried its thread's last reading, or read the clock, that reading came before E' read
 *   the entry (readings are ordered, mallet_cycles_ordered), and E's thread read the clock after
 *   its claim was written.
 * The process's one thread does not use the table at all; when a second thread starts, a fence
 * on both (membarrier) hands the first thread's last reading to the new one (mallet_stamp_join). */
#define _GNU_SOURCE
#include "record.h"

/* The table: 128 KiB of .bss, touched only once a second thread records. */
_Atomic uint64_t mallet_owners[1u << MALLET_OWNER_BITS];

/* Claims are rare while each thread keeps to its own memory (one per 64 KiB it moves to), but
 * each costs a compare-and-swap on a line another core may have written and two ordered readings
 * (50-150 ns here), where a reading per event costs the hook 2-4 ns. A thread that claims for
 * more than one event in 16 (threads taking turns on the same memory) switches the process to a
 * reading per event. */
#define CLAIM_WINDOW 4096u
#define CLAIM_MAX (CLAIM_WINDOW / 16)

void mallet_stamp_set_serial(mallet_tstate_t *t, uint32_t serial)
{
    t->serial = serial;
    t->tag = serial < MALLET_TAG_ANON ? serial : MALLET_TAG_NONE;
}

/* A clock reading for t's event, now: it decides how many of the next events may carry it (all
 * of a window while the thread allocates fast). Times never go back within a thread. mask:
 * where nothing depends on the times (the process has one thread), a fast reading is rounded
 * down to a step (mallet_proc.step_mask), so that a fast phase's events carry one time a step
 * and the trace stores a time a step, not one a window: the reader spreads the events in
 * between (docs/TRACE_FORMAT.md, 9.3). A slow reading, after a pause, is kept as read, so that
 * a phase starts at its own time. */
static uint64_t reading(mallet_tstate_t *t, uint64_t now, uint64_t mask)
{
    uint64_t events = (uint64_t)t->window + 1; /* since the last reading, this one included */
    uint64_t last = t->last_read;
    int fast = now > last && now - last < events * mallet_proc.fast_event_cycles;
    t->last_read = now;
    t->window = fast ? mallet_proc.opts.stamp_every - 1 : 0;
    t->unstamped = t->window;
    if (fast) now &= ~mask;
    /* A pause ends a fast phase whose events since its last stored time carried that time: the
     * event before this one is given the last reading before the pause (a mark), or a reader
     * would spread them over the pause (a burst shorter than a step, then a millisecond idle:
     * lifetimes of a few hundred ns read as half a millisecond). */
    else if (mask && last > t->last_cycles && t->buf) mallet_tbuf_mark(t, last);
    if (now < t->last_cycles) now = t->last_cycles;
    return t->last_cycles = now;
}

static uint64_t thread_events(const mallet_tstate_t *t)
{
    if (!t->buf) return t->seq;
    return t->buf->seq_base + (atomic_load_explicit(&t->buf->pos, memory_order_relaxed) >> 32);
}

/* Sets MALLET_DENSE: from the next event of every thread on, each event reads the clock. Safe at
 * any time: an event that depends on one of this thread's later events sees the bit (it is set
 * before them) and does not carry. */
static void go_dense(void)
{
    atomic_fetch_or(&mallet_proc.attaches, MALLET_DENSE);
}

/* Takes addr's entry e (holding v) for t at a time later than the entry's, and reads the clock
 * once the claim is visible, for the events that will carry it. Returns the event's time: the
 * entry's new one. */
static uint64_t claim(mallet_tstate_t *t, _Atomic uint64_t *e, uint64_t v, uint64_t now)
{
    uint64_t n = thread_events(t);
    if (n - t->claims_from >= CLAIM_WINDOW) {
        t->claims_from = n;
        t->claims = 0;
    }
    if (++t->claims > CLAIM_MAX) {
        go_dense();
        t->unstamped = 0;
        return t->last_cycles = now > t->last_cycles ? now : t->last_cycles;
    }
    const uint32_t tag = t->tag == MALLET_TAG_NONE ? MALLET_TAG_ANON : t->tag;
    uint64_t when;
    do {
        when = now > t->last_cycles ? now : t->last_cycles;
        uint64_t prev = mallet_owner_time(v, now);
        if (prev >= when) when = prev + 1;
    } while (!atomic_compare_exchange_weak_explicit(e, &v, mallet_owner_entry(tag, when),
                                                    memory_order_relaxed, memory_order_relaxed));
    uint64_t after = mallet_cycles_ordered();
    reading(t, after > when ? after : when, 0);
    return when;
}

uint64_t mallet_stamp_slow(mallet_tstate_t *t, uintptr_t addr, int release)
{
    uint32_t a = atomic_load_explicit(&mallet_proc.attaches, memory_order_relaxed);
    if (a < 2) {
        /* not attached yet: a new thread, whose first event may depend on another's */
        if (!t->serial) return reading(t, mallet_stamp_exact(release), 0);
        uint64_t now = reading(t, mallet_cycles(), mallet_proc.step_mask);
        /* Published for a thread that starts now: either it sees this reading, or this load sees
         * its count (mallet_stamp_join's membarrier is the fence on both sides). */
        atomic_store_explicit(&mallet_proc.single_last, now, memory_order_relaxed);
        atomic_signal_fence(memory_order_seq_cst);
        a = atomic_load_explicit(&mallet_proc.attaches, memory_order_relaxed);
        if (a < 2) return now;
        /* a second thread has started: this event goes by the table already */
    }
    if (a >= MALLET_DENSE) { /* set since mallet_stamp looked */
        uint64_t now = mallet_stamp_exact(release);
        t->unstamped = 0;
        return t->last_cycles = now > t->last_cycles ? now : t->last_cycles;
    }
    uint64_t now = mallet_cycles_ordered(); /* before the entry is read (see the top) */
    if (!addr) return reading(t, now, 0);
    _Atomic uint64_t *e = &mallet_owners[mallet_owner_index(addr)];
    uint64_t v = atomic_load_explicit(e, memory_order_relaxed);
    if (v >> MALLET_TAG_SHIFT == t->tag) return reading(t, now, 0);
    return claim(t, e, v, now);
}

/* A fork is a point in time the child's trace refers to: it inherits the blocks its parent had
 * when the kernel copied its memory. The owner table orders events that touch the same block,
 * not a fork: another thread that carries a reading from before the fork (it was preempted in
 * a window, say) would date a free it makes after the copy before the fork, and the child's free
 * of its copy of that block read as a free of an unknown pointer (81 of 25,600 in a test of two
 * threads replacing blocks and 200 forks, with the fork's window already read right). So a process with threads goes dense at its first
 * fork: an event that looks at `attaches` after this reads the clock, and one that looked
 * before began before the fork's reading. */
void mallet_stamp_before_fork(void)
{
    uint32_t a = atomic_load_explicit(&mallet_proc.attaches, memory_order_relaxed);
    if (a >= 2 && a < MALLET_DENSE) go_dense();
}

void mallet_stamp_join(mallet_tstate_t *t, uint32_t attaches)
{
    if (attaches < 2 || attaches >= MALLET_DENSE) return;
    /* The first thread publishes each reading, then looks at the count, with no fence of its own
     * (mallet_stamp_slow): the membarrier is that fence. So either it saw this thread's count
     * before carrying a reading (and went by the table), or this load sees the reading, and this
     * thread's times start after it. */
    if (!mallet_proc.membarrier_ok || mallet_membarrier() != 0) {
        go_dense();
        return;
    }
    uint64_t first = atomic_load_explicit(&mallet_proc.single_last, memory_order_relaxed);
    if (t->last_cycles <= first) t->last_cycles = first + 1;
    t->unstamped = 0;
}
