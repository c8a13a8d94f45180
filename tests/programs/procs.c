/* Test program for process trees: `procs fork` forks a child that allocates and exits;
 * `procs exec` forks a child that execs this program again with `leaf`; `procs leaf` allocates
 * and exits. Every process allocates a block of a size that names it (1001 parent, 2002 child,
 * 3003 leaf), so the traces can be told apart. Before its exec the child also holds a 4004-byte
 * block that only the exec releases. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void touch(size_t n)
{
    void *p = malloc(n);
    memset(p, 1, n);
    free(p);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "leaf";
    if (!strcmp(mode, "leaf")) {
        touch(3003);
        return 0;
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
