/* See rss_sampler.h. The thread sleeps on a futex with a timeout, so ending the timeline does not
 * wait for the rest of an interval. */
#define _GNU_SOURCE
#include "rss_sampler.h"

#include "platform/platform.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { IDLE, SAMPLING, STOPPED };

struct mallet_rss_sampler {
    _Atomic uint32_t state;
    int statm_fd;
    uint64_t t0_ns, next_ns;
    pthread_t thread;
    mallet_rss_timeline_t tl;
};

static void sample(mallet_rss_sampler_t *s, uint64_t now)
{
    mallet_rss_timeline_t *tl = &s->tl;
    if (tl->n == MALLET_RSS_SAMPLES) { /* full: keep every other sample, at twice the interval */
        for (uint32_t i = 0; i < MALLET_RSS_SAMPLES / 2; i++) {
            tl->t_ns[i] = tl->t_ns[2 * i];
            tl->bytes[i] = tl->bytes[2 * i];
        }
        tl->n = MALLET_RSS_SAMPLES / 2;
        tl->interval_ns *= 2;
    }
    tl->t_ns[tl->n] = now - s->t0_ns;
    tl->bytes[tl->n] = mallet_rss_bytes(s->statm_fd);
    tl->n++;
}

static void wait_while(mallet_rss_sampler_t *s, uint32_t state, uint64_t timeout_ns)
{
    struct timespec ts = {(time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u)};
    syscall(SYS_futex, &s->state, FUTEX_WAIT_PRIVATE, state, timeout_ns ? &ts : NULL, NULL, 0);
}

static void *run(void *arg)
{
    mallet_rss_sampler_t *s = arg;
    while (atomic_load(&s->state) == IDLE) wait_while(s, IDLE, 0);
    for (;;) {
        uint64_t now = mallet_now_ns();
        if (now < s->next_ns) {
            if (atomic_load(&s->state) != SAMPLING) break;
            wait_while(s, SAMPLING, s->next_ns - now);
            continue;
        }
        if (atomic_load(&s->state) != SAMPLING) break;
        sample(s, now);
        /* the next sample is one interval after the last one kept, not after this wake-up */
        s->next_ns = s->t0_ns + s->tl.t_ns[s->tl.n - 1] + s->tl.interval_ns;
    }
    return NULL;
}

mallet_rss_sampler_t *mallet_rss_sampler_start(void)
{
    mallet_rss_sampler_t *s = mallet_map(sizeof *s);
    if (!s) return NULL;
    memset(s, 0, sizeof *s); /* touched now, so the timeline itself adds nothing while sampling */
    s->statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (s->statm_fd < 0 || pthread_create(&s->thread, NULL, run, s)) {
        if (s->statm_fd >= 0) close(s->statm_fd);
        mallet_unmap(s, sizeof *s);
        return NULL;
    }
    return s;
}

uint64_t mallet_rss_sampler_begin(mallet_rss_sampler_t *s, uint64_t t0_ns)
{
    s->t0_ns = t0_ns;
    s->tl.interval_ns = MALLET_RSS_FIRST_INTERVAL_NS;
    sample(s, t0_ns);
    uint64_t first = s->tl.bytes[0]; /* from now on the timeline is the sampler thread's */
    s->next_ns = t0_ns + s->tl.interval_ns;
    atomic_store(&s->state, SAMPLING);
    syscall(SYS_futex, &s->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    return first;
}

const mallet_rss_timeline_t *mallet_rss_sampler_end(mallet_rss_sampler_t *s)
{
    atomic_store(&s->state, STOPPED);
    syscall(SYS_futex, &s->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    pthread_join(s->thread, NULL);
    sample(s, mallet_now_ns());
    close(s->statm_fd);
    return &s->tl;
}
