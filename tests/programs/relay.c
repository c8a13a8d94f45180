/* Test program for replaying programs that start threads one after another (a thread per task):
 * N threads (argv[1], default 2000), each started after the one before has ended, each making a
 * few blocks and freeing the block the thread before it left (a free of a block made by a thread
 * that no longer exists). Prints the number of allocation calls it made. A replay that started
 * every thread at once would run thousands of threads side by side; mallet's runs as many at
 * once as the program did (prepare.h: concurrency). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCKS 8

static void *handed; /* the block the last thread left */

static void *task(void *arg)
{
    (void)arg;
    void *p[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        p[i] = malloc(24 + 40 * (size_t)i);
        memset(p[i], 1, 8);
    }
    for (int i = 1; i < BLOCKS; i++)
        free(p[i]);
    free(handed);
    handed = p[0];
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    for (int i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, task, NULL) || pthread_join(t, NULL)) return 1;
    }
    free(handed);
    printf("%d\n", n * (2 * BLOCKS) + 1);
    return 0;
}
