/* What the recorder's clock readings cost on this machine (harness/platform/platform.h): each of
 * the three readings in a loop of N, back to back, in ns a reading. The recorder reads the clock
 * once in MALLET_STAMP_EVERY events at most while threads keep to their own memory
 * (docs/RECORDER.md), so this cost, against the machine's malloc (bench/malloc_bench), is much
 * of why the recorder's slowdown differs from one VM to the next (docs/PERFORMANCE.md).
 * usage: clock_cost [N] */
#include "platform/platform.h"

#include <stdio.h>
#include <stdlib.h>

#define LOOP(read)                                                                                 \
    do {                                                                                           \
        uint64_t t0 = mallet_now_ns();                                                             \
        for (long i = 0; i < n; i++)                                                               \
            sum += read();                                                                         \
        printf("%-28s %6.1f ns\n", #read, (double)(mallet_now_ns() - t0) / (double)n);             \
    } while (0)

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000000;
    if (n <= 0) {
        fprintf(stderr, "usage: clock_cost [N > 0]\n");
        return 2;
    }
    volatile uint64_t sum = 0; /* keeps the readings */
    LOOP(mallet_cycles);
    LOOP(mallet_cycles_after_loads);
    LOOP(mallet_cycles_ordered);
    LOOP(mallet_now_ns);
    return 0;
}
