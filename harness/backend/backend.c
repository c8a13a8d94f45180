/* See backend.h. Descriptors are small, so each is read whole with jansson and checked field by
 * field; the first problem is reported with the file name (and jansson's line for bad JSON). */
#define _GNU_SOURCE
#include "backend.h"

#include "platform/platform.h"
#include "trace/format.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void mallet_backend_clear(mallet_backend_t *b)
{
    free(b->name);
    free(b->description);
    free(b->package);
    for (size_t i = 0; i < b->nlibrary; i++) free(b->library[i]);
    free(b->library);
    for (size_t i = 0; i < b->nenv; i++) free(b->env[i]);
    free(b->env);
    free(b->path);
    free(b->source);
    memset(b, 0, sizeof *b);
}

void mallet_backends_free(mallet_backend_t *b, size_t n)
{
    for (size_t i = 0; b && i < n; i++) mallet_backend_clear(&b[i]);
    free(b);
}

/* A backend name becomes part of file names and JSON keys: keep it plain. */
static int valid_name(const char *s)
{
    if (!*s || strlen(s) > 64) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

/* Text from the file (a key, jansson's message quoting it) as it may go into a one-line error:
 * control characters shown as '?', at most 120 bytes. Returns buf. */
static const char *printable(const char *s, char buf[128])
{
    size_t n = 0;
    for (; s[n] && n < 120; n++)
        buf[n] = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? '?' : s[n];
    if (s[n]) memcpy(buf + n, "...", 3), n += 3;
    buf[n] = 0;
    return buf;
}

static char *resolve(const char *cand, const char *mallet_dir, int *in_tree)
{
    char buf[PATH_MAX];
    *in_tree = 0;
    if (!strncmp(cand, "@mallet/", 8)) {
        *in_tree = 1;
        if (!mallet_dir || snprintf(buf, sizeof buf, "%s/%s", mallet_dir, cand + 8) >= (int)sizeof buf)
            return NULL;
        return access(buf, R_OK) == 0 ? realpath(buf, NULL) : NULL;
    }
    if (strchr(cand, '/')) return access(cand, R_OK) == 0 ? realpath(cand, NULL) : NULL;
    return mallet_find_library(cand, buf, sizeof buf) == 0 ? strdup(buf) : NULL;
}

int mallet_backend_load_file(const char *file, const char *mallet_dir, mallet_backend_t *b,
                             char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    json_error_t je;
    json_t *root = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
    char shown[128];
    if (!root) {
        if (je.line > 0)
            return mallet_errorf(err, errlen, "%s: line %d: %s", file, je.line,
                                 printable(je.text, shown));
        return mallet_errorf(err, errlen, "%s: %s", file, printable(je.text, shown));
    }
    int rc = -1;
    const char *key;
    json_t *v;
    if (!json_is_object(root)) {
        mallet_errorf(err, errlen, "%s: a descriptor is a JSON object", file);
        goto out;
    }
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "name") && strcmp(key, "description") && strcmp(key, "library") &&
            strcmp(key, "env") && strcmp(key, "package")) {
            mallet_errorf(
                err, errlen,
                "%s: unknown key \"%s\" (known: name, description, library, env, package)", file,
                printable(key, shown));
            goto out;
        }
    }
    json_t *name = json_object_get(root, "name"), *desc = json_object_get(root, "description");
    json_t *lib = json_object_get(root, "library"), *env = json_object_get(root, "env");
    json_t *pkg = json_object_get(root, "package");
    if (!json_is_string(name) || !valid_name(json_string_value(name))) {
        mallet_errorf(err, errlen, "%s: \"name\" must be a string of letters, digits, '-', '_' or '.'", file);
        goto out;
    }
    if ((desc && !json_is_string(desc)) || (pkg && !json_is_string(pkg))) {
        mallet_errorf(err, errlen, "%s: \"description\" and \"package\" must be strings", file);
        goto out;
    }
    if (lib && !json_is_array(lib)) {
        mallet_errorf(err, errlen, "%s: \"library\" must be an array of strings", file);
        goto out;
    }
    if (env && !json_is_object(env)) {
        mallet_errorf(err, errlen, "%s: \"env\" must be an object of strings", file);
        goto out;
    }
    b->name = strdup(json_string_value(name));
    b->description = strdup(desc ? json_string_value(desc) : "");
    b->package = pkg ? strdup(json_string_value(pkg)) : NULL;
    b->source = strdup(file);
    size_t nl = lib ? json_array_size(lib) : 0, ne = env ? json_object_size(env) : 0;
    b->library = calloc(nl ? nl : 1, sizeof *b->library);
    b->env = calloc(ne ? ne : 1, sizeof *b->env);
    if (!b->name || !b->description || (pkg && !b->package) || !b->source || !b->library || !b->env) {
        mallet_errorf(err, errlen, "%s: out of memory", file);
        goto out;
    }
    for (size_t i = 0; i < nl; i++) {
        json_t *c = json_array_get(lib, i);
        if (!json_is_string(c) || !*json_string_value(c)) {
            mallet_errorf(err, errlen, "%s: \"library\" entry %zu must be a non-empty string", file, i);
            goto out;
        }
        if (!(b->library[b->nlibrary++] = strdup(json_string_value(c)))) goto oom;
    }
    json_object_foreach(env, key, v)
    {
        if (!json_is_string(v) || !*key || strchr(key, '=')) {
            mallet_errorf(err, errlen,
                          "%s: \"env\" entry \"%s\" must be a string, its name without '='", file,
                          printable(key, shown));
            goto out;
        }
        if (asprintf(&b->env[b->nenv], "%s=%s", key, json_string_value(v)) < 0) {
            b->env[b->nenv] = NULL;
            goto oom;
        }
        b->nenv++;
    }
    b->available = b->nlibrary == 0;
    for (size_t i = 0; i < b->nlibrary && !b->path; i++) {
        int in_tree;
        b->path = resolve(b->library[i], mallet_dir, &in_tree);
        b->in_tree |= in_tree;
    }
    if (b->path) b->available = 1;
    rc = 0;
    goto out;
oom:
    mallet_errorf(err, errlen, "%s: out of memory", file);
out:
    json_decref(root);
    if (rc) mallet_backend_clear(b);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const mallet_backend_t *)a)->name, ((const mallet_backend_t *)b)->name);
}

int mallet_backends_load(const char *dir, const char *mallet_dir, mallet_backend_t **out,
                         size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return mallet_errorf(err, errlen, "%s: %s", dir, strerror(errno));
    mallet_backend_t *bs = NULL;
    size_t nb = 0;
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") || e->d_name[0] == '.') continue;
        char file[PATH_MAX];
        if (snprintf(file, sizeof file, "%s/%s", dir, e->d_name) >= (int)sizeof file) continue;
        mallet_backend_t *nbs = realloc(bs, (nb + 1) * sizeof *bs);
        if (!nbs) {
            rc = mallet_errorf(err, errlen, "%s: out of memory", file);
            break;
        }
        bs = nbs;
        if ((rc = mallet_backend_load_file(file, mallet_dir, &bs[nb], err, errlen))) break;
        nb++;
    }
    closedir(d);
    if (!rc && nb == 0) rc = mallet_errorf(err, errlen, "%s: no allocator descriptors (*.json)", dir);
    if (!rc) {
        qsort(bs, nb, sizeof *bs, by_name);
        for (size_t i = 1; i < nb && !rc; i++)
            if (!strcmp(bs[i - 1].name, bs[i].name))
                rc = mallet_errorf(err, errlen, "%s: allocator name \"%s\" is also used by %s", bs[i].source,
                          bs[i].name, bs[i - 1].source);
    }
    if (rc) {
        mallet_backends_free(bs, nb);
        return -1;
    }
    *out = bs;
    *n = nb;
    return 0;
}

int mallet_backend_from_path(const char *path, mallet_backend_t *b, char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    char *real = realpath(path, NULL);
    if (!real) return mallet_errorf(err, errlen, "%s: %s", path, strerror(errno));
    const char *base = strrchr(real, '/') ? strrchr(real, '/') + 1 : real;
    b->name = strdup(base);
    b->description = strdup("a library given by path");
    b->library = calloc(1, sizeof *b->library);
    b->env = calloc(1, sizeof *b->env);
    b->source = strdup(path);
    if (!b->name || !b->description || !b->library || !b->env || !b->source ||
        !(b->library[0] = strdup(path))) {
        free(real);
        mallet_backend_clear(b);
        return mallet_errorf(err, errlen, "%s: out of memory", path);
    }
    b->nlibrary = 1;
    b->path = real;
    b->available = 1;
    return 0;
}
