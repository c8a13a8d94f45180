/* Test program for the recorder's sparse timestamps (record.h, mallet_stamp): a fast
 * single-threaded phase, where most events carry the time of an earlier one, then threads that
 * start at once and trade blocks with the main thread in both directions: they free blocks the
 * main thread allocated just before they were created, and the main thread frees blocks they
 * allocate and reuses addresses they freed (glibc hands a thread's frees of main-arena blocks back
 * to the main thread once the freeing thread's cache is full). If any event were ordered before
 * the event it depends on, `mallet check` would see a free of an unknown pointer or a block
 * allocated twice.
 * argv[1]: rounds of the fast single-threaded phase (default 200000). No stdio. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define WORKERS 2
#define HANDED 4000 /* blocks the main thread makes for the workers just before they start */
#define RING 256    /* blocks the workers make for the main thread, per worker */
#define TRADES 20000

static void *handed[HANDED];
static _Atomic(void *) ring[WORKERS][RING];

static void *worker(void *arg)
{
    long id = (long)arg;
    /* First thing: free the main thread's blocks (they went through its sparse stamps). */
    for (int i = (int)id; i < HANDED; i += WORKERS) free(handed[i]);
    for (int n = 0; n < TRADES; n++) {
        _Atomic(void *) *slot = &ring[id][n % RING];
        void *p = malloc(16 + (size_t)(n % 64) * 8);
        memset(p, (int)id, 16);
        while (atomic_load(slot) != NULL) { /* the main thread has not taken the last one yet */
        }
        atomic_store(slot, p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 200000;
    static void *slots[1024];
    unsigned x = 1;
    for (long i = 0; i < rounds; i++) { /* fast: most events skip the clock */
        x = x * 1103515245u + 12345u;
        void **s = &slots[(x >> 8) & 1023];
        if (*s) {
            free(*s);
            *s = NULL;
        } else {
            *s = malloc(8 + (x >> 22) % 500);
        }
    }
    for (int i = 0; i < 1024; i++) free(slots[i]);
    for (int i = 0; i < HANDED; i++) handed[i] = malloc(24 + (size_t)(i % 16) * 16);

    pthread_t th[WORKERS];
    for (long i = 0; i < WORKERS; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)i)) return 1;
    /* Take the workers' blocks as they come, and allocate meanwhile: these mallocs reuse
     * addresses the workers freed. */
    void *mine[64] = {0};
    for (int n = 0, taken = 0; taken < WORKERS * TRADES; n++) {
        _Atomic(void *) *slot = &ring[n % WORKERS][(n / WORKERS) % RING];
        void *p;
        while ((p = atomic_load(slot)) == NULL) {
        }
        atomic_store(slot, NULL);
        free(p);
        taken++;
        void **m = &mine[n % 64];
        free(*m);
        *m = malloc(24 + (size_t)(n % 16) * 16);
    }
    for (int i = 0; i < WORKERS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 64; i++) free(mine[i]);
    return 0;
}
