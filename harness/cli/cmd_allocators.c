/* `mallet allocators [--json]`: the allocator backends a replay can use, from the descriptors in
 * allocators/ (backend/backend.h), with whether each is installed and its version. */
#define _GNU_SOURCE
#include "backend/backend.h"
#include "cli.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mallet_usage_allocators(FILE *out)
{
    fprintf(out, "usage: mallet allocators [--json]\n\n"
                 "Lists the allocator backends described in allocators/*.json ($MALLET_ALLOCATORS\n"
                 "overrides the folder): name, whether its library is installed, its version (from\n"
                 "its Debian package, or mallet's for the in-tree ones), its library and the\n"
                 "environment it runs with.\n");
}

int mallet_cmd_allocators(int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (mallet_is_help(argv[i])) return mallet_usage_allocators(stdout), MALLET_EXIT_OK;
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else
            return mallet_usage_error("allocators", "unknown argument '%s'", argv[i]);
    }
    char dir[PATH_MAX], libdir[PATH_MAX], err[PATH_MAX + 256];
    if (mallet_cli_allocators_dir(dir, sizeof dir)) {
        mallet_err("allocators: no allocator descriptors found (set MALLET_ALLOCATORS)");
        return MALLET_EXIT_FAIL;
    }
    mallet_backend_t *bs;
    size_t n;
    if (mallet_backends_load(dir, mallet_cli_libdir(libdir, sizeof libdir) ? NULL : libdir, &bs, &n,
                             err, sizeof err)) {
        mallet_err("%s", err);
        return MALLET_EXIT_FAIL;
    }
    json_t *list = json ? json_array() : NULL;
    if (!json) printf("%-14s %-10s %-22s %s\n", "NAME", "AVAILABLE", "VERSION", "LIBRARY, ENVIRONMENT");
    for (size_t i = 0; i < n; i++) {
        const mallet_backend_t *b = &bs[i];
        char version[128];
        mallet_cli_backend_version(b, version, sizeof version);
        if (json) {
            json_t *env = json_object();
            for (size_t k = 0; env && k < b->nenv; k++) {
                char *eq = strchr(b->env[k], '=');
                *eq = 0;
                json_object_set_new(env, b->env[k], json_string(eq + 1));
                *eq = '=';
            }
            json_t *o = json_pack("{s:s, s:b, s:s?, s:s, s:s?, s:o, s:s, s:s}", "name", b->name,
                                  "available", b->available, "library", b->path, "version",
                                  version, "package", b->package, "env", env, "description",
                                  b->description, "descriptor", b->source);
            if (!o || json_array_append_new(list, o)) {
                mallet_err("allocators: out of memory");
                json_decref(list);
                mallet_backends_free(bs, n);
                return MALLET_EXIT_FAIL;
            }
            continue;
        }
        char avail[64];
        if (b->available)
            snprintf(avail, sizeof avail, "yes");
        else
            snprintf(avail, sizeof avail, "no");
        printf("%-14s %-10s %-22s %s", b->name, avail, version[0] ? version : "-",
               b->path ? b->path : b->nlibrary ? b->library[0] : "(the system's)");
        for (size_t k = 0; k < b->nenv; k++) printf(" %s", b->env[k]);
        if (!b->available && b->package) printf("  (apt-get install %s)", b->package);
        putchar('\n');
    }
    int rc = 0;
    if (json) {
        json_t *doc = json_pack("{s:o}", "allocators", list);
        rc = !doc || json_dumpf(doc, stdout, JSON_INDENT(2)) || fputc('\n', stdout) == EOF;
        json_decref(doc);
    }
    mallet_backends_free(bs, n);
    if (rc || fflush(stdout)) {
        mallet_err("allocators: cannot write the list");
        return MALLET_EXIT_FAIL;
    }
    return MALLET_EXIT_OK;
}
