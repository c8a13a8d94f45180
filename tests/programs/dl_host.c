/* Loads the C++ library argv[1] (tests/programs/cxx_plugin.cpp) with dlopen(RTLD_LOCAL) and
 * calls it, checking dlerror() at each step as plugin loaders do: no error after a dlopen and a
 * dlsym that succeed, however the recorder finds the operators the library calls. With a second
 * argument "close", unloads it before exiting. Prints what it saw; exits 1 on an error it did not
 * expect. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static int expect_no_error(const char *after)
{
    const char *e = dlerror();
    if (e) printf("dlerror after %s: %s\n", after, e);
    return e != NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    dlerror();
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL); /* its constructor runs new inside */
    if (!h) return printf("dlopen: %s\n", dlerror()), 1;
    int bad = expect_no_error("dlopen");
    int (*work)(int) = (int (*)(int))dlsym(h, "plugin_work");
    bad |= expect_no_error("dlsym");
    if (!work) return 1;
    int r = work(40); /* its first new[] and std::string: the operators' first calls */
    bad |= expect_no_error("the library's first calls");
    if (!dlsym(h, "no_such_function") && !dlerror()) bad = 1, printf("a failed dlsym, no error\n");
    bad |= expect_no_error("dlerror");
    if (argc > 2 && !strcmp(argv[2], "close")) {
        dlclose(h);
        bad |= expect_no_error("dlclose");
    }
    printf("plugin_work %d, %s\n", r, bad ? "dlerror wrong" : "dlerror right");
    return bad;
}
