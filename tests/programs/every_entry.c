/* Test program: calls every hooked entry point from several threads, with cross-thread frees,
 * and writes what it did (its own call counts and the peak of its own live bytes) as JSON to
 * the file named by argv[1]. The peak is made deterministic: workers are joined before main
 * allocates the large final set. No stdio before the end, so libc itself allocates little. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NTHREADS 4
#define PER_THREAD 200

enum { MALLOC, CALLOC, REALLOC, REALLOCARRAY, FREE, POSIX_MEMALIGN, ALIGNED_ALLOC, MEMALIGN,
       VALLOC, PVALLOC, NKINDS };
static const char *names[NKINDS] = {"malloc", "calloc", "realloc", "reallocarray", "free",
                                    "posix_memalign", "aligned_alloc", "memalign", "valloc",
                                    "pvalloc"};
static long counts[NTHREADS + 1][NKINDS];
static void *handoff[NTHREADS][PER_THREAD]; /* made by thread i, freed by thread i+1 */
static pthread_barrier_t barrier;
static unsigned long cross_frees;

static void *worker(void *arg)
{
    long id = (long)arg;
    long *c = counts[id];
    for (int i = 0; i < PER_THREAD; i++) {
        size_t n = 16 + (size_t)(id * 7 + i) % 200;
        void *p = malloc(n); c[MALLOC]++;
        memset(p, 1, n);
        p = realloc(p, n * 2); c[REALLOC]++;
        void *q = calloc(3, n); c[CALLOC]++;
        q = reallocarray(q, 4, n); c[REALLOCARRAY]++;
        void *r = NULL;
        posix_memalign(&r, 64, n); c[POSIX_MEMALIGN]++;
        void *s = aligned_alloc(32, 64); c[ALIGNED_ALLOC]++;
        void *t = memalign(128, n); c[MEMALIGN]++;
        free(q); c[FREE]++;
        free(r); c[FREE]++;
        free(s); c[FREE]++;
        free(t); c[FREE]++;
        handoff[id - 1][i] = p; /* freed by the next thread */
    }
    void *v = valloc(100); c[VALLOC]++;
    void *w = pvalloc(100); c[PVALLOC]++;
    free(v); c[FREE]++;
    free(w); c[FREE]++;
    pthread_barrier_wait(&barrier);
    long from = (id % NTHREADS); /* thread id+1's blocks, wrapping to thread 1 */
    for (int i = 0; i < PER_THREAD; i++) {
        free(handoff[from][i]); c[FREE]++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) return 2;
    pthread_barrier_init(&barrier, NULL, NTHREADS);
    pthread_t th[NTHREADS];
    for (long i = 0; i < NTHREADS; i++) pthread_create(&th[i], NULL, worker, (void *)(i + 1));
    for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
    cross_frees = NTHREADS * PER_THREAD;

    /* The peak: 64 blocks of 64 KiB + 1..64 bytes, all live at once, far above anything the
     * workers (or libc) ever held. */
    long *c = counts[0];
    void *big[64];
    size_t peak = 0;
    for (int i = 0; i < 64; i++) {
        size_t n = 65536 + (size_t)i + 1;
        big[i] = malloc(n); c[MALLOC]++;
        memset(big[i], 2, n);
        peak += n;
    }
    for (int i = 0; i < 64; i++) {
        free(big[i]); c[FREE]++;
    }
    free(NULL); c[FREE]++;

    long total[NKINDS] = {0};
    for (int t = 0; t <= NTHREADS; t++)
        for (int k = 0; k < NKINDS; k++) total[k] += counts[t][k];
    FILE *f = fopen(argv[1], "w");
    if (!f) return 1;
    fprintf(f, "{\"threads\": %d, \"peak_own_bytes\": %zu, \"cross_thread_frees\": %lu", NTHREADS + 1,
            peak, cross_frees);
    for (int k = 0; k < NKINDS; k++) fprintf(f, ", \"%s\": %ld", names[k], total[k]);
    fprintf(f, "}\n");
    return fclose(f) ? 1 : 0;
}
