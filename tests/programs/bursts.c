/* Test program for the recorder's time steps and marks (stamp.c, reading): one thread makes
 * bursts of 25 blocks and frees them (lifetimes of a few hundred ns), then computes without
 * allocating for PAUSE_US. Without marks, a reader spread each burst's events over the pause
 * after it (lifetimes of ~PAUSE_US); test_stamps.sh checks the lifetimes `mallet stats` sees.
 * usage: bursts [ROUNDS [PAUSE_US]] (200, 500). No stdio. */
#define _GNU_SOURCE /* clock_gettime under -std=c11 */
#include <stdlib.h>
#include <time.h>

static long now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000L + t.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 200;
    long pause = argc > 2 ? atol(argv[2]) : 500;
    void *block[25];
    volatile long sum = 0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < 25; i++) {
            block[i] = malloc(32 + (size_t)i);
            if (!block[i]) return 1;
            ((volatile char *)block[i])[0] = (char)i;
        }
        for (int i = 0; i < 25; i++) {
            sum += ((volatile char *)block[i])[0];
            free(block[i]);
        }
        for (long t0 = now_us(); now_us() - t0 < pause;) sum++; /* compute: no allocation */
    }
    return sum < 0;
}
