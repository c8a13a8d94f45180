/* The RSS timeline of a replay: a thread of the worker reads the process's resident set every
 * interval while the replay runs. The interval starts at 1 ms; when the buffer is full every other
 * sample is dropped and the interval doubles, so any replay gets between MALLET_RSS_SAMPLES / 2
 * and MALLET_RSS_SAMPLES samples (or one per ms for short ones) in fixed memory.
 *
 * The sampler costs one /proc read (a few microseconds) per interval on whatever core is free. */
#ifndef MALLET_REPLAY_RSS_SAMPLER_H
#define MALLET_REPLAY_RSS_SAMPLER_H

#include <stdint.h>

#define MALLET_RSS_SAMPLES 512
#define MALLET_RSS_FIRST_INTERVAL_NS 1000000u

typedef struct mallet_rss_sampler mallet_rss_sampler_t;

/* The samples: t_ns from the start of the timed part, resident bytes of the whole process. */
typedef struct mallet_rss_timeline {
    uint32_t n;
    uint64_t interval_ns;
    uint64_t t_ns[MALLET_RSS_SAMPLES], bytes[MALLET_RSS_SAMPLES];
} mallet_rss_timeline_t;

/* Starts the (idle) sampler thread; its memory comes from mmap. NULL on failure. */
mallet_rss_sampler_t *mallet_rss_sampler_start(void);
/* Takes the first sample now and then one every interval, times counted from t0_ns
 * (mallet_now_ns()). Returns the first sample's bytes. */
uint64_t mallet_rss_sampler_begin(mallet_rss_sampler_t *s, uint64_t t0_ns);
/* Stops sampling, takes a last sample and ends the thread. The timeline stays valid until the
 * process ends. */
const mallet_rss_timeline_t *mallet_rss_sampler_end(mallet_rss_sampler_t *s);

#endif
