/* The malloc-bound microbenchmark of the recorder issue: THREADS threads (default 2), each
 * STEPS steps (default 5 M) over its own 4096 slots; a step frees a full slot, or fills an empty
 * one with malloc of 8-520 bytes and an 8-byte memset. Prints ns per call (wall time over the
 * calls of one thread, the threads running in parallel) on stderr.
 * THREADS 0: one thread, the main one (a single-threaded process: the recorder's sparse stamps).
 * usage: malloc_bench [STEPS [THREADS]] */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#define SLOTS 4096
static long steps = 5000000;
static void *run(void *arg) {
  uint64_t x = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
  void *slot[SLOTS] = {0};
  for (long i = 0; i < steps; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    unsigned s = x % SLOTS;
    if (slot[s]) { free(slot[s]); slot[s] = 0; }
    else { size_t n = 8 + (x >> 32) % 513; slot[s] = malloc(n); memset(slot[s], 1, 8); }
  }
  for (int s = 0; s < SLOTS; s++) free(slot[s]);
  return 0;
}
int main(int argc, char **argv) {
  int nt = 2; if (argc > 1) steps = atol(argv[1]); if (argc > 2) nt = atoi(argv[2]);
  struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a);
  if (nt > 64) nt = 64;
  pthread_t t[64]; for (int i = 0; i < nt; i++) pthread_create(&t[i], 0, run, (void *)(uintptr_t)(i + 1));
  for (int i = 0; i < nt; i++) pthread_join(t[i], 0);
  if (nt == 0) run((void *)(uintptr_t)1);
  clock_gettime(CLOCK_MONOTONIC, &b);
  double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
  fprintf(stderr, "%.2f ns/call\n", ns / (steps + SLOTS/2));
  return 0;
}
