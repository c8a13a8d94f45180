/* Test program for the recorder under churn: waves of short-lived threads pass blocks to each
 * other through a shared queue (so addresses are freed and reused across threads all the time),
 * and one thread forks while the others run. Prints the number of mallocs it made. A trace whose
 * order were wrong would show frees of unknown pointers or double frees in `mallet check`. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAVES 25
#define PER_WAVE 8
#define STEPS 2000
#define QSIZE 256

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *queue[QSIZE];
static int qlen;
static long mallocs;

static void *worker(void *arg)
{
    unsigned x = (unsigned)(long)arg * 2654435761u + 1;
    long mine = 0;
    for (int i = 0; i < STEPS; i++) {
        x = x * 1103515245u + 12345u;
        void *p = malloc(16 + (x >> 16) % 300);
        mine++;
        memset(p, 3, 16);
        void *out = NULL;
        pthread_mutex_lock(&lock);
        if (qlen == QSIZE || (x & 1)) {
            int k = (int)((x >> 8) % (unsigned)(qlen ? qlen : 1));
            if (qlen) {
                out = queue[k];
                queue[k] = queue[--qlen];
            }
        }
        if (qlen < QSIZE) queue[qlen++] = p;
        else out = out ? (free(out), p) : p;
        pthread_mutex_unlock(&lock);
        free(out); /* a block most likely made by another thread */
    }
    if ((long)arg == 3 * PER_WAVE + 1) { /* one thread forks while its wave runs */
        pid_t pid = fork();
        if (pid == 0) {
            void *c = malloc(777);
            free(c);
            _exit(0);
        }
        waitpid(pid, NULL, 0);
    }
    pthread_mutex_lock(&lock);
    mallocs += mine;
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(void)
{
    for (int w = 0; w < WAVES; w++) {
        pthread_t t[PER_WAVE];
        for (int i = 0; i < PER_WAVE; i++)
            pthread_create(&t[i], NULL, worker, (void *)(long)(w * PER_WAVE + i + 1));
        for (int i = 0; i < PER_WAVE; i++) pthread_join(t[i], NULL);
    }
    while (qlen) free(queue[--qlen]);
    printf("%ld\n", mallocs);
    return 0;
}
