/* Test program for process trees: `procs fork` forks a child that allocates and exits;
 * `procs inherit` allocates fast (the recorder's sparse stamps), forks, and both processes free
 * the three blocks made just before the fork: the parent its first one at once, before the child
 * has run (a child's start is not the fork: the fork is), its second right after the child has
 * started, so that only a clock reading after the fork tells the child's frees of them apart from
 * frees of unknown pointers;
 * `procs exec` forks a child that execs this program again with `leaf`; `procs leaf` allocates
 * and exits; `procs print` prints a line with stdio (its buffer, glibc's, is never freed);
 * `procs dup` keeps a strdup and a strndup to the end (leaks made by dup_leak);
 * `procs closeall` allocates, forks, closes every descriptor from 3 up (as daemons do), makes
 * its own descriptors 700 and 701 (the recorder's numbers), forks a child that checks they are
 * its own, allocates again for 30 ms, and checks that they are still its own;
 * `procs threads-fork N` has two threads replace blocks on shelves of their own at full speed
 * while the main thread forks N children one after the other, each of which frees every block
 * it finds on the shelves: blocks the threads made or freed around the fork, in its window. Every
 * process allocates a block of a size that names it (1001 parent, 2002 child, 3003 leaf), so the
 * traces can be told apart. Before its exec the child also holds a 4004-byte block that only the
 * exec releases. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void touch(size_t n)
{
    void *p = malloc(n);
    memset(p, 1, n);
    free(p);
}

#define SHELF 64
static void *volatile shelves[2][SHELF];
static volatile int stop;
static _Atomic int filled;

static void *replace(void *arg)
{
    long k = (long)arg;
    unsigned s = (unsigned)k + 1;
    for (int i = 0; i < SHELF; i++)
        shelves[k][i] = malloc(16);
    filled++;
    while (!stop) {
        s = s * 1103515245u + 12345u;
        unsigned i = (s >> 8) % SHELF;
        void *old = shelves[k][i];
        shelves[k][i] = malloc(16 + s % 64);
        free(old);
    }
    return NULL;
}

static int threads_fork(int n)
{
    pthread_t t[2];
    for (long k = 0; k < 2; k++)
        if (pthread_create(&t[k], NULL, replace, (void *)k)) return 1;
    while (filled < 2) /* every shelf holds a block: each child frees 128 */
        ;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid == 0) {
            for (int k = 0; k < 2; k++)
                for (int j = 0; j < SHELF; j++)
                    free(shelves[k][j]);
            _exit(0);
        }
        int st;
        bad |= waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st);
    }
    stop = 1;
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < SHELF; j++)
            free(shelves[k][j]);
    return bad;
}

static int inherit(void)
{
    static void *slots[256];
    for (unsigned i = 0; i < 100000; i++) { /* fast enough for sparse stamps */
        void **s = &slots[(i * 7919u) % 256];
        free(*s);
        *s = malloc(16 + i % 200);
    }
    for (int i = 0; i < 256; i++)
        free(slots[i]);
    void *x = malloc(5005), *y = malloc(6006), *z = malloc(7007);
    int ready[2];
    if (pipe(ready)) return 1;
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        char c = 1;
        if (write(ready[1], &c, 1) != 1) _exit(1);
        free(x);
        free(y);
        free(z);
        _exit(0);
    }
    free(z);
    char c;
    if (read(ready[0], &c, 1) != 1) return 1;
    free(x);
    int st;
    waitpid(pid, &st, 0);
    free(y);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

static char *kept[2];

__attribute__((noinline)) static int dup_leak(void)
{
    kept[0] = strdup("kept");
    kept[1] = strndup("kept too", 4);
    return !kept[0] || !kept[1] || strcmp(kept[1], "kept");
}

/* Is descriptor b the same open file as a? */
static int same_file(int a, int b)
{
    struct stat sa, sb;
    return !fstat(a, &sa) && !fstat(b, &sb) && sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev;
}

/* pid: fork()'s result. The child checks that 700 and 701 are the same file as 3 (closeall's
 * /dev/null), allocates and exits; the parent waits: 1 if the child found them so. */
static int wait_child(pid_t pid)
{
    if (pid == 0) {
        touch(64);
        _exit(same_file(3, 700) && same_file(3, 701) ? 0 : 3);
    }
    int st;
    return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "leaf";
    if (!strcmp(mode, "leaf")) {
        touch(3003);
        return 0;
    }
    if (!strcmp(mode, "inherit")) return inherit();
    if (!strcmp(mode, "threads-fork")) return threads_fork(argc > 2 ? atoi(argv[2]) : 100);
    if (!strcmp(mode, "print")) return printf("printed\n") < 0;
    if (!strcmp(mode, "dup")) return dup_leak();
    if (!strcmp(mode, "closeall")) {
        touch(8008);
        /* A fork writes the buffer: the one below finds nothing to write, so its child's
         * recorder sees the parent's descriptors as they were left. */
        pid_t first = fork();
        if (first == 0) _exit(0);
        if (first < 0 || waitpid(first, NULL, 0) != first) return 4;
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        /* its own files at the recorder's numbers (700 statm, 701 the trace) */
        int nul = open("/dev/null", O_WRONLY);
        if (nul < 0 || dup2(nul, 700) != 700 || dup2(nul, 701) != 701) return 1;
        if (!wait_child(fork())) return 2; /* the child finds them its own */
        touch(9009);
        /* 30 ms more of allocating: RSS samples are due (the recorder's statm is gone) */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do {
            touch(64);
            clock_gettime(CLOCK_MONOTONIC, &t1);
        } while ((t1.tv_sec - t0.tv_sec) * 1000000000L + t1.tv_nsec - t0.tv_nsec < 30000000L);
        return !same_file(nul, 700) || !same_file(nul, 701);
    }
    touch(1001);
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        touch(2002);
        if (!strcmp(mode, "exec")) {
            volatile char *held = malloc(4004);
            held[0] = 1;
            execl("/proc/self/exe", argv[0], "leaf", (char *)NULL);
            _exit(127);
        }
        exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    touch(1001);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
