/* Test program: allocates N blocks (argv[2]) then ends the way argv[1] says: exit, _exit,
 * abort, segv, kill (SIGKILL to itself), term (SIGTERM to itself), fork-term (forks a child that
 * exits, waits for it, then SIGTERM to itself: the fork wrote its buffer, so it dies with
 * nothing left to write), or hang (waits to be killed).
 * Prints "ready" to stdout (after the allocations) so a test can kill it at the right moment.
 *
 * race-term / race-kill: forks N children that each make 200 malloc-free pairs and _exit, and
 * sends each SIGTERM / SIGKILL after a delay that sweeps 0-400 us: the signal lands anywhere in
 * a child's life, the recorder's file creation and final write included. Prints a line "PID
 * MALLOCS" per child, MALLOCS the mallocs that had returned to it when it died.
 *
 * alarm-exit: allocates until a timer's signal, argv[2] us away, runs a handler that calls
 * exit(7), as many programs do (though exit is not async-signal-safe).
 *
 * chaos: forks N children of four threads that allocate without end, and ends each after a
 * delay that sweeps 0.5-20 ms with SIGTERM, SIGINT, or SIGUSR1, whose handler calls exit(9);
 * prints "hung H odd O": children still alive 3 s after their signal (then SIGKILLed), and those
 * that ended otherwise than by their signal or exit(9).
 *
 * altstack: a forked child sets up an alternate signal stack of argv[2] bytes, with a guard page
 * below it (as Rust's runtime does, 8 KiB), allocates, and sends itself SIGTERM; prints the
 * signal the child died of. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000L + t.tv_nsec / 1000;
}

static void *volatile sink; /* keeps the compiler from eliding a malloc-free pair */

static int race(long n, int sig)
{
    volatile long *done =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (done == MAP_FAILED) return 1;
    for (long i = 0; i < n; i++) {
        *done = 0;
        pid_t p = fork();
        if (p < 0) return 1;
        if (p == 0) {
            for (int k = 0; k < 200; k++) {
                sink = malloc(16 + (size_t)k);
                ++*done;
                free(sink);
            }
            _exit(0);
        }
        for (long t0 = now_us(), d = i * 397 % 400; now_us() - t0 < d;)
            ;
        kill(p, sig);
        if (waitpid(p, NULL, 0) != p) return 1;
        printf("%d %ld\n", (int)p, *done);
    }
    return 0;
}

static void exit_7(int sig)
{
    (void)sig;
    exit(7);
}

static _Noreturn void alarm_exit(long us)
{
    signal(SIGALRM, exit_7);
    struct itimerval it = {{0, 0}, {us / 1000000, us % 1000000}};
    setitimer(ITIMER_REAL, &it, NULL);
    for (;;) {
        sink = malloc(100);
        free(sink);
    }
}

static void exit_9(int sig)
{
    (void)sig;
    exit(9);
}

static void *allocate_on(void *arg)
{
    for (;;) {
        void *p = malloc(16 + 40 * (size_t)(long)arg);
        sink = p;
        free(p);
    }
    return NULL;
}

static int chaos(long n)
{
    int hung = 0, odd = 0;
    for (long i = 0; i < n; i++) {
        pid_t p = fork();
        if (p < 0) return 1;
        if (p == 0) {
            signal(SIGUSR1, exit_9);
            pthread_t t;
            for (long k = 0; k < 3; k++)
                if (pthread_create(&t, NULL, allocate_on, (void *)k)) _exit(1);
            allocate_on((void *)3);
        }
        for (long t0 = now_us(), d = 500 + i * 7919 % 20000; now_us() - t0 < d;)
            ;
        int sig = i % 3 == 0 ? SIGTERM : i % 3 == 1 ? SIGUSR1 : SIGINT, st = 0;
        kill(p, sig);
        pid_t r;
        for (long w0 = now_us(); (r = waitpid(p, &st, WNOHANG)) == 0 && now_us() - w0 < 3000000;)
            usleep(1000);
        if (r == 0) {
            hung++;
            kill(p, SIGKILL);
            waitpid(p, &st, 0);
        } else if (!(WIFSIGNALED(st) && WTERMSIG(st) == sig) &&
                   !(WIFEXITED(st) && WEXITSTATUS(st) == 9)) {
            odd++;
        }
    }
    printf("hung %d odd %d\n", hung, odd);
    return 0;
}

static int altstack(long size)
{
    pid_t p = fork();
    if (p < 0) return 1;
    if (p == 0) {
        char *m = mmap(NULL, 4096 + (size_t)size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED || mprotect(m, 4096, PROT_NONE)) _exit(1);
        stack_t ss = {.ss_sp = m + 4096, .ss_size = (size_t)size, .ss_flags = 0};
        if (sigaltstack(&ss, NULL)) _exit(1);
        for (int k = 0; k < 100; k++) {
            sink = malloc(32);
            free(sink);
        }
        raise(SIGTERM);
        _exit(0);
    }
    int st;
    if (waitpid(p, &st, 0) != p) return 1;
    printf("%d\n", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    long n = atol(argv[2]);
    if (!strcmp(argv[1], "alarm-exit")) alarm_exit(n);
    if (!strcmp(argv[1], "altstack")) return altstack(n);
    if (!strcmp(argv[1], "chaos")) return chaos(n);
    if (!strcmp(argv[1], "race-term")) return race(n, SIGTERM);
    if (!strcmp(argv[1], "race-kill")) return race(n, SIGKILL);
    for (long i = 0; i < n; i++) {
        void *p = malloc(24 + (size_t)(i % 100));
        if (i % 2) free(p);
    }
    printf("ready\n");
    fflush(stdout);
    const char *how = argv[1];
    if (!strcmp(how, "_exit")) _exit(3);
    if (!strcmp(how, "abort")) abort();
    if (!strcmp(how, "segv")) {
        volatile int *bad = (int *)16;
        return *bad;
    }
    if (!strcmp(how, "kill")) raise(SIGKILL);
    if (!strcmp(how, "term")) raise(SIGTERM);
    if (!strcmp(how, "fork-term")) {
        pid_t child = fork();
        if (child == 0) _exit(0);
        if (child < 0 || waitpid(child, NULL, 0) != child) return 1;
        raise(SIGTERM);
    }
    if (!strcmp(how, "hang")) {
        for (;;)
            pause();
    }
    exit(5);
}
