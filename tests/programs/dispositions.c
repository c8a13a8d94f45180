/* Prints the dispositions of a few fatal signals as the program reads them (sigaction, then
 * signal's return values), installs a handler for SIGTERM, puts SIG_DFL back, allocates, and
 * dies of SIGTERM: the same output and death whether the recorder (whose handlers for those
 * signals must stay invisible) is there or not. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static void on_term(int sig)
{
    (void)sig;
}

static const char *kind(void (*h)(int))
{
    return h == SIG_DFL ? "default" : h == SIG_IGN ? "ignored" : h == on_term ? "ours" : "other";
}

int main(void)
{
    const int sigs[] = {SIGINT, SIGTERM, SIGSEGV, SIGPIPE, SIGHUP};
    const char *names[] = {"INT", "TERM", "SEGV", "PIPE", "HUP"};
    for (int i = 0; i < 5; i++) {
        struct sigaction sa;
        sigaction(sigs[i], NULL, &sa);
        printf("%s %s%s\n", names[i], (sa.sa_flags & SA_SIGINFO) ? "siginfo " : "",
               kind(sa.sa_handler));
    }
    printf("signal(TERM, handler) was %s\n", kind(signal(SIGTERM, on_term)));
    printf("signal(TERM, SIG_DFL) was %s\n", kind(signal(SIGTERM, SIG_DFL)));
    struct sigaction sa;
    sigaction(SIGTERM, NULL, &sa);
    printf("TERM now %s\n", kind(sa.sa_handler));
    fflush(stdout);
    free(malloc(4242));
    raise(SIGTERM);
    return 0;
}
