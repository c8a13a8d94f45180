/* Threads cancelled (pthread_cancel, deferred) while they allocate: each makes and frees bursts
 * of blocks, with a cancellation point of its own (pthread_testcancel) between bursts, and is
 * cancelled at a moment that sweeps its life; a cleanup handler notes whether the cancellation
 * came at that point. malloc and free are not cancellation points: alone, every thread is
 * cancelled at its own point. Prints how many of 20 were cancelled elsewhere. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static volatile int at_own_point, elsewhere;

static void cleanup(void *arg)
{
    (void)arg;
    if (!at_own_point) elsewhere = 1;
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_cleanup_push(cleanup, NULL);
    for (;;) {
        void *keep[256];
        for (int i = 0; i < 256; i++)
            keep[i] = malloc(16 + (size_t)i);
        for (int i = 0; i < 256; i++)
            free(keep[i]);
        at_own_point = 1;
        pthread_testcancel();
        at_own_point = 0;
    }
    pthread_cleanup_pop(0);
    return NULL;
}

int main(void)
{
    int n = 0;
    for (int r = 0; r < 20; r++) {
        pthread_t t;
        if (pthread_create(&t, NULL, worker, NULL)) return 1;
        usleep(2000 + (useconds_t)r * 300);
        pthread_cancel(t);
        pthread_join(t, NULL);
        n += elsewhere;
        elsewhere = 0;
    }
    printf("cancelled elsewhere than at their own cancellation point: %d of 20\n", n);
    return 0;
}
