/* Test program for the recorder's sparse timestamps with several threads (record.h,
 * mallet_stamp; stamp.c). Any event ordered before one it depends on shows as a free of a pointer
 * that is not live in `mallet check`.
 * - `traders solo`: THREADS threads churn blocks over their own slots, fast, and never share one:
 *   after their first claims, their events may all carry their thread's last clock reading;
 * - `traders local`: the same, and one new block in 64 goes to the next thread, which frees it
 *   (glibc keeps a freed block in the freeing thread's cache and hands it out again there, so
 *   the threads also reuse each other's addresses);
 * - `traders pingpong`: two threads take turns: each frees the block the other just made, and
 *   makes one for it. Almost every event depends on the other thread's last one, so the recorder
 *   switches to a clock reading per event.
 * usage: traders solo|local|pingpong [STEPS]. No stdio. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define SLOTS 512
#define RING 1024 /* a power of two */

/* One single-producer single-consumer ring per thread: its inbox, filled by the thread before. */
typedef struct inbox {
    _Atomic(void *) slot[RING];
    _Atomic unsigned long head; /* written by the consumer */
    char pad[64];
    _Atomic unsigned long tail; /* written by the producer */
} inbox_t;

static inbox_t inbox[THREADS];
static long steps = 200000;
static unsigned every = 64; /* 0: never */
static _Atomic int producing = THREADS;

static void drain(inbox_t *in)
{
    unsigned long h = atomic_load(&in->head), t = atomic_load(&in->tail);
    for (; h != t; h++) free(atomic_load(&in->slot[h % RING]));
    atomic_store(&in->head, h);
}

static void hand(inbox_t *to, inbox_t *mine, void *p)
{
    unsigned long t = atomic_load(&to->tail);
    while (t - atomic_load(&to->head) == RING) drain(mine); /* full: make progress meanwhile */
    atomic_store(&to->slot[t % RING], p);
    atomic_store(&to->tail, t + 1);
}

static void *trader(void *arg)
{
    long id = (long)arg;
    inbox_t *mine = &inbox[id], *next = &inbox[(id + 1) % THREADS];
    void *slot[SLOTS] = {0};
    unsigned long long x = (unsigned long long)id * 0x9e3779b97f4a7c15ull + 1;
    for (long i = 0; i < steps; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        void **s = &slot[x % SLOTS];
        if (*s) {
            free(*s);
            *s = NULL;
            continue;
        }
        void *p = malloc(16 + (x >> 40) % 256);
        memset(p, 1, 16);
        if (every && (x >> 20) % every == 0) hand(next, mine, p);
        else *s = p;
        if (i % 16 == 0) drain(mine);
    }
    for (int i = 0; i < SLOTS; i++) free(slot[i]);
    atomic_fetch_sub(&producing, 1);
    while (atomic_load(&producing) > 0) drain(mine);
    drain(mine);
    return NULL;
}

static _Atomic(void *) mailbox[2];

static void *pinger(void *arg)
{
    long id = (long)arg;
    for (long i = 0; i < steps; i++) {
        void *p;
        while (!(p = atomic_load(&mailbox[id]))) { /* the other thread's turn */
        }
        atomic_store(&mailbox[id], NULL);
        free(p);
        p = malloc(48);
        memset(p, 2, 16);
        atomic_store(&mailbox[1 - id], p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    if (argc > 2) steps = atol(argv[2]);
    if (!strcmp(argv[1], "pingpong")) {
        atomic_store(&mailbox[0], malloc(48));
        pthread_t a, b;
        if (pthread_create(&a, NULL, pinger, (void *)0) ||
            pthread_create(&b, NULL, pinger, (void *)1))
            return 1;
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        free(atomic_load(&mailbox[0]));
        return 0;
    }
    if (!strcmp(argv[1], "solo")) every = 0;
    else if (strcmp(argv[1], "local")) return 2;
    pthread_t th[THREADS];
    for (long i = 0; i < THREADS; i++)
        if (pthread_create(&th[i], NULL, trader, (void *)i)) return 1;
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    return 0;
}
