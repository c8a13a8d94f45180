/* Test program for thread ends: threads that live on after their last allocation call.
 *   linger [N [BLOCKS]]   (defaults 1 and 1)
 * N idle threads each make BLOCKS blocks of 1 KiB, free all but the first (what an allocator
 * caches for the thread stays cached) and then idle until N more threads, run one after another,
 * have done the same and ended. Then the idle ones end, and a last thread makes a block and is
 * still running when the process exits. The recorder marks the ends of all but the last: N + 2
 * threads are alive at once here (the main thread, the idle ones, one of the others), where their
 * allocation calls alone would say two; the last lives to the end. The threads hand each other
 * the turn through pipes (no allocation). Prints the number of allocation calls it made itself
 * (thread starts add some of their own). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_IDLE 256

static int made[2], go[2], never[2];
static int blocks = 1;
static void *kept[2 * MAX_IDLE];

static void take(int fd)
{
    char c;
    while (read(fd, &c, 1) != 1) {
    }
}

static void give(int fd)
{
    while (write(fd, "x", 1) != 1) {
    }
}

/* BLOCKS blocks made, all but the first freed; the first goes to *keep. */
static void churn(void **keep)
{
    char *first = NULL;
    for (int i = 0; i < blocks; i++) { /* a list through the blocks: no array to allocate */
        char *b = malloc(1024);
        memset(b, 1, 1024);
        memcpy(b, &first, sizeof first);
        first = b;
    }
    /* the list runs from the last block made to the first: keep the first made, free the rest */
    char *b = first;
    while (b) {
        char *next;
        memcpy(&next, b, sizeof next);
        if (next)
            free(b);
        else
            *keep = b;
        b = next;
    }
}

static void *idle(void *arg)
{
    churn(arg);
    give(made[1]);
    take(go[0]); /* no allocation call until it ends */
    return NULL;
}

static void *passing(void *arg)
{
    churn(arg);
    return NULL;
}

static void *last(void *arg)
{
    (void)arg;
    void *p = malloc(100);
    memset(p, 3, 8);
    give(made[1]);
    take(never[0]); /* still here when the process exits */
    return p;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1;
    blocks = argc > 2 ? atoi(argv[2]) : 1;
    if (n < 1 || n > MAX_IDLE || blocks < 1) return 2;
    pthread_t idlers[MAX_IDLE], t;
    if (pipe(made) || pipe(go) || pipe(never)) return 1;
    void *keep = malloc(200);
    for (int i = 0; i < n; i++) {
        if (pthread_create(&idlers[i], NULL, idle, &kept[i])) return 1;
        take(made[0]);
    }
    for (int i = 0; i < n; i++)
        if (pthread_create(&t, NULL, passing, &kept[MAX_IDLE + i]) || pthread_join(t, NULL))
            return 1;
    for (int i = 0; i < n; i++) give(go[1]);
    for (int i = 0; i < n; i++)
        if (pthread_join(idlers[i], NULL)) return 1;
    if (pthread_create(&t, NULL, last, NULL)) return 1;
    take(made[0]);
    for (int i = 0; i < n; i++) free(kept[i]), free(kept[MAX_IDLE + i]);
    free(keep);
    printf("%d\n", 3 + 2 * n * 2 * blocks); /* each churn frees what it made */
    fflush(stdout);
    exit(0); /* the last thread still blocked */
}
