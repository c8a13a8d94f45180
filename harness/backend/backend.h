/* Allocator backends: what a replay can run a trace against. A backend is data, read from a JSON
 * descriptor (allocators/NAME.json, docs in allocators/README.md):
 *
 *   {"name": "jemalloc", "description": "...", "library": ["libjemalloc.so.2"],
 *    "env": {"MALLOC_CONF": "..."}, "package": "libjemalloc2"}
 *
 * "library" lists candidates in order: a path, a soname looked up in the system's library
 * directories, or "@mallet/FILE" for a library built with mallet (found beside mallet's own).
 * An empty list means the system allocator: nothing is preloaded. Nothing in mallet treats a
 * backend differently by its name. Library code: errors are returned as "FILE: what is wrong". */
#ifndef MALLET_BACKEND_H
#define MALLET_BACKEND_H

#include <stddef.h>

typedef struct mallet_backend {
    char *name;
    char *description; /* "" if none */
    char *package;     /* Debian package that provides it, or NULL */
    char **library;    /* candidates as written */
    size_t nlibrary;
    char **env; /* "KEY=VALUE", set for the replay process */
    size_t nenv;
    char *path;    /* the library to preload: resolved candidate, or NULL (system allocator) */
    int available; /* the system allocator, or a candidate exists */
    int in_tree;   /* its library is one of mallet's own (@mallet/) */
    char *source;  /* the descriptor file, or the library path given by the user */
} mallet_backend_t;

/* Loads every *.json in dir, sorted by name; mallet_dir resolves "@mallet/". Names must be
 * unique. Returns 0, or -1 with the first problem in err. */
int mallet_backends_load(const char *dir, const char *mallet_dir, mallet_backend_t **out,
                         size_t *n, char *err, size_t errlen);
/* Parses one descriptor file. */
int mallet_backend_load_file(const char *file, const char *mallet_dir, mallet_backend_t *b,
                             char *err, size_t errlen);
/* A backend for a library the user names by path ("./libmine.so"); it must exist. */
int mallet_backend_from_path(const char *path, mallet_backend_t *b, char *err, size_t errlen);
void mallet_backend_clear(mallet_backend_t *b);
void mallet_backends_free(mallet_backend_t *b, size_t n);

#endif
