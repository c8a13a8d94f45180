/* Loaded by `leaky --late LIB` after the program has started: its leak must still be named, so
 * the recorder writes the memory map again at the end when libraries were loaded since the
 * start (and only then). */
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) void *late_leak(void)
{
    void *p = malloc(777);
    if (p) memset(p, 7, 777);
    return p;
}
