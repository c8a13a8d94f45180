/* The consumer's side of bench/ref_recorder.c: a launcher that makes the shared ring (a memfd the
 * command's libref_consumer32.so maps, named by REF_RING_FD), forks, and runs the command in the
 * child, as `mallet record` would if a consumer process encoded the events: the launcher, small
 * and static, forks before the exec, so the program has no copy-on-write pages. The parent then
 * reads the ring as it fills, looking every POLL_US microseconds (0: spinning), or never
 * ("none"), until the command ends; exits with its status.
 * usage: offcore_launch POLL_US|none CMD [ARGS...] */
#define _GNU_SOURCE
#include "ref_offcore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint64_t ref_consumed; /* not static: the reads must happen */

static int status_of(int st)
{
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    int fd = memfd_create("ref_ring", 0);
    if (fd < 0 || ftruncate(fd, sizeof(ref_shared_t))) return 1;
    ref_shared_t *s =
        mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (s == MAP_FAILED) return 1;
    s->unread = !strcmp(argv[1], "none");
    char num[16];
    snprintf(num, sizeof num, "%d", fd);
    setenv("REF_RING_FD", num, 1);
    pid_t kid = fork();
    if (kid < 0) return 1;
    if (kid == 0) {
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    close(fd);
    int st = 0;
    if (s->unread) {
        waitpid(kid, &st, 0);
        return status_of(st);
    }
    long poll_us = atol(argv[1]);
    struct timespec nap = {0, poll_us * 1000};
    uint64_t t = 0, sum = 0;
    for (unsigned idle = 0;; idle++) {
        uint64_t h = atomic_load_explicit(&s->head, memory_order_acquire);
        if (h == t) {
            if ((poll_us || idle % 1024 == 0) && waitpid(kid, &st, WNOHANG) == kid) break;
            if (poll_us)
                nanosleep(&nap, NULL);
            else
                for (int i = 0; i < 64; i++)
                    __builtin_ia32_pause();
            continue;
        }
        for (; t != h; t++) {
            const uint64_t *r = s->ring[t % REF_RING];
            sum += r[0] ^ r[1] ^ r[2] ^ r[3];
        }
        ref_consumed = sum;
        atomic_store_explicit(&s->tail, t, memory_order_release);
    }
    return status_of(st);
}
