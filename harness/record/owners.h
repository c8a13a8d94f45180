/* The owner table of the recorder's timestamps (docs/RECORDER.md, "Sparse timestamps with
 * several threads"): which thread last made or released a block in each 64 KiB of address space,
 * and the time it did. Pure functions, apart from the table itself (stamp.c), so that a unit test
 * can pin the entry codec.
 *
 * An entry is one 64-bit word, claimed with a compare-and-swap:
 *   bits 63..44  the thread's tag (its serial; 0: never claimed; MALLET_TAG_ANON: a thread past
 *                the tags, which nobody may trust as their own)
 *   bits 43..0   the claim's time, in units of 16 cycles rounded up, modulo 2^44 (2^48 cycles:
 *                28 hours at 2.8 GHz; the time is read back relative to a recent clock reading)
 * The time of every claim is later than the time in the entry it replaces, so the times in an
 * entry grow with every write, whatever the threads' clocks do. */
#ifndef MALLET_RECORD_OWNERS_H
#define MALLET_RECORD_OWNERS_H

#include <stdint.h>

#define MALLET_OWNER_BITS 14        /* 2^14 entries: 128 KiB */
#define MALLET_OWNER_SPAN_SHIFT 16  /* each covers 64 KiB of addresses, the whole arena of one
                                     * thread in a few entries */
#define MALLET_TAG_SHIFT 44
#define MALLET_TAG_ANON ((1u << 20) - 1) /* written by threads whose serial is past the tags */
#define MALLET_TAG_NONE (1u << 20)      /* their own tag: no entry holds it */
#define MALLET_OWNER_TIME_MASK ((1ull << MALLET_TAG_SHIFT) - 1)

/* Fibonacci hashing of the 64 KiB span: arenas of different threads (64 MiB apart in glibc)
 * land on different entries instead of aliasing. */
static inline uint32_t mallet_owner_index(uintptr_t addr)
{
    return (uint32_t)(((uint64_t)(addr >> MALLET_OWNER_SPAN_SHIFT) * 0x9e3779b97f4a7c15ull) >>
                      (64 - MALLET_OWNER_BITS));
}

/* The entry a thread tagged `tag` writes when it claims at time `cycles`. The time rounds up, so
 * that it is never earlier than the claim. */
static inline uint64_t mallet_owner_entry(uint32_t tag, uint64_t cycles)
{
    return (uint64_t)tag << MALLET_TAG_SHIFT | (((cycles + 15) >> 4) & MALLET_OWNER_TIME_MASK);
}

/* The time in entry e, in cycles, read back relative to `now` (a reading taken just before):
 * the value congruent to it within 2^47 cycles of now. 0 for an entry never claimed, and for a
 * time more than 2^32 cycles (about a second) ahead of now: entries only hold past claims (up to
 * the clocks' skew between cores), so that is an entry older than 14 hours, read back into the
 * wrong period. Such an entry can also read back less than 2^32 cycles ahead, or in the past:
 * the claim that replaces it then takes a time that much later than its own, or loses nothing. */
static inline uint64_t mallet_owner_time(uint64_t e, uint64_t now)
{
    const uint64_t period = 1ull << MALLET_TAG_SHIFT, half = period >> 1;
    if (!e) return 0;
    uint64_t nowq = now >> 4, t = (nowq & ~MALLET_OWNER_TIME_MASK) | (e & MALLET_OWNER_TIME_MASK);
    if (t > nowq + half) {
        if (t < period) return 0; /* before the counter's start: not a real claim */
        t -= period;
    } else if (t + half < nowq) {
        t += period;
    }
    t <<= 4;
    return t > now + (1ull << 32) ? 0 : t;
}

#endif
