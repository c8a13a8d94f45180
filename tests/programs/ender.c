/* Test program: allocates N blocks (argv[2]) then ends the way argv[1] says: exit, _exit,
 * abort, segv, kill (SIGKILL to itself), term (SIGTERM to itself), or hang (waits to be killed).
 * Prints "ready" to stdout (after the allocations) so a test can kill it at the right moment. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    long n = atol(argv[2]);
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
    if (!strcmp(how, "hang")) {
        for (;;) pause();
    }
    exit(5);
}
