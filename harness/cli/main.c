#define _GNU_SOURCE
/* `mallet`: dispatches to one file per subcommand (cmd_*.c). */
#include "cli.h"

#include "analyze/symbols.h"
#include "backend/backend.h"
#include "trace/reader.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

static const mallet_cmd_t commands[] = {
    {"record", "run a program with the recorder preloaded, one trace file per process",
     mallet_cmd_record, mallet_usage_record},
    {"stats", "summarise traces: calls, threads, sizes, lifetimes, peak live bytes",
     mallet_cmd_stats, mallet_usage_stats},
    {"check", "find leaks, double frees and frees of unknown pointers, by callsite",
     mallet_cmd_check, mallet_usage_check},
    {"dump", "print one readable line per event", mallet_cmd_dump, mallet_usage_dump},
    {"pack", "rewrite traces smaller, for keeping (every command reads them)", mallet_cmd_pack,
     mallet_usage_pack},
    {"replay", "run traces against allocator backends and measure them", mallet_cmd_replay,
     mallet_usage_replay},
    {"allocators", "list the allocator backends, installed or not, with versions",
     mallet_cmd_allocators, mallet_usage_allocators},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

void mallet_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mallet: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int mallet_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mallet: ", stderr);
    if (cmd) fprintf(stderr, "%s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (try 'mallet %s%s--help')\n", cmd ? cmd : "", cmd ? " " : "");
    va_end(ap);
    return MALLET_EXIT_USAGE;
}

int mallet_cli_parse_traces(int argc, char **argv, const char *cmd, void (*usage)(FILE *),
                            const mallet_flag_t *flags, unsigned *ntraces)
{
    int only_paths = 0;
    unsigned n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_paths || a[0] != '-' || !a[1]) {
            argv[n++] = argv[i];
            continue;
        }
        if (!strcmp(a, "--")) {
            only_paths = 1;
            continue;
        }
        if (mallet_is_help(a)) {
            usage(stdout);
            return MALLET_EXIT_OK;
        }
        const mallet_flag_t *f = flags;
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        while (f->name && (strncmp(f->name, a, len) || f->name[len]))
            f++;
        if (!f->name || (eq && !f->values))
            return mallet_usage_error(cmd, "unknown option '%s'", a);
        if (!f->values) {
            *f->set = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!v || !*v) return mallet_usage_error(cmd, "%s needs a value", f->name);
        if (*f->count == f->max) return mallet_usage_error(cmd, "too many %s", f->name);
        f->values[(*f->count)++] = v;
    }
    if (n == 0) return mallet_usage_error(cmd, "no TRACE given");
    *ntraces = n;
    return -1;
}

/* The paths the folders given expanded to: they live as long as the command (the reader keeps
 * them), and go at exit. */
static char **folder_paths;
static size_t nfolder_paths;

static void free_folder_paths(void)
{
    for (size_t i = 0; i < nfolder_paths; i++)
        free(folder_paths[i]);
    free(folder_paths);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int mallet_cli_is_trace_name(const char *name)
{
    size_t n = strlen(name);
    return n > 7 && !strcmp(name + n - 7, ".mtrace");
}

static int push(char ***list, size_t *n, size_t *cap, char *p)
{
    if (*n == *cap) {
        char **v = realloc(*list, (*cap ? 2 * *cap : 16) * sizeof *v);
        if (!v) return mallet_err("out of memory"), -1;
        *list = v;
        *cap = *cap ? 2 * *cap : 16;
    }
    (*list)[(*n)++] = p;
    return 0;
}

/* Appends p to the list, or, for a folder (what `mallet record -o DIR/` writes), its *.mtrace
 * files in name order. 0, or -1 after saying why. */
static int add_path(char ***list, size_t *n, size_t *cap, char *p)
{
    struct stat sb;
    if (stat(p, &sb) || !S_ISDIR(sb.st_mode)) return push(list, n, cap, p); /* the reader says */
    DIR *d = opendir(p);
    if (!d) return mallet_err("%s: %s", p, strerror(errno)), -1;
    size_t first = nfolder_paths, len = strlen(p);
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (!mallet_cli_is_trace_name(e->d_name)) continue;
        size_t el = strlen(e->d_name);
        char *path = malloc(len + el + 2);
        char **v = realloc(folder_paths, (nfolder_paths + 1) * sizeof *v);
        if (v) folder_paths = v;
        if (!path || !v) {
            free(path);
            mallet_err("out of memory");
            rc = -1;
            break;
        }
        sprintf(path, "%s%s%s", p, len && p[len - 1] == '/' ? "" : "/", e->d_name);
        folder_paths[nfolder_paths++] = path;
    }
    closedir(d);
    if (rc) return rc;
    if (first == nfolder_paths) return mallet_err("%s: a folder with no .mtrace file", p), -1;
    qsort(folder_paths + first, nfolder_paths - first, sizeof *folder_paths, by_name);
    for (size_t i = first; i < nfolder_paths; i++)
        if (push(list, n, cap, folder_paths[i])) return -1;
    return 0;
}

typedef struct file_id {
    dev_t dev;
    ino_t ino;
    size_t i;
} file_id_t;

static int by_id(const void *a, const void *b)
{
    const file_id_t *x = a, *y = b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* A file given twice (a folder and one of its files, say) would count its process twice. */
static int check_once(char **list, size_t n)
{
    file_id_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) return mallet_err("out of memory"), -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        if (stat(list[i], &sb) == 0) ids[k++] = (file_id_t){sb.st_dev, sb.st_ino, i};
    }
    qsort(ids, k, sizeof *ids, by_id);
    int rc = 0;
    for (size_t i = 1; rc == 0 && i < k; i++)
        if (ids[i].dev == ids[i - 1].dev && ids[i].ino == ids[i - 1].ino) {
            const char *a = list[ids[i - 1].i], *b = list[ids[i].i];
            if (strcmp(a, b))
                mallet_err("%s: given twice (also as %s)", b, a);
            else
                mallet_err("%s: given twice", b);
            rc = -1;
        }
    free(ids);
    return rc;
}

/* The reader keeps every trace open (a merge in time order reads them all at once): a folder of
 * a build's processes can hold more than the usual soft limit of 1,024 descriptors, so it is
 * raised as far as the hard limit lets it, as tools that open many files do. */
static int room_for_files(size_t n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl)) return 0;
    rlim_t need = (rlim_t)n + 64; /* the standard streams, the suppressions file, ... */
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
            mallet_err("%zu traces: more than this process may open at once (%llu files: ulimit "
                       "-n)",
                       n, (unsigned long long)rl.rlim_cur);
            return -1;
        }
    }
    return 0;
}

char **mallet_cli_trace_paths(char **paths, unsigned n, unsigned *count)
{
    static int registered;
    if (!registered) registered = atexit(free_folder_paths) == 0;
    char **list = NULL;
    size_t k = 0, cap = 0;
    for (unsigned i = 0; i < n; i++)
        if (add_path(&list, &k, &cap, paths[i])) return free(list), NULL;
    if (k > UINT_MAX) return free(list), mallet_err("too many traces"), NULL;
    if (check_once(list, k)) return free(list), NULL;
    *count = (unsigned)k;
    return list;
}

mallet_reader_t *mallet_cli_open_traces(char **paths, unsigned n)
{
    unsigned count;
    char **list = mallet_cli_trace_paths(paths, n, &count);
    if (!list) return NULL;
    if (room_for_files(count)) return free(list), NULL;
    n = count;
    char err[512];
    mallet_reader_t *r = mallet_reader_open((const char *const *)list, n, err, sizeof err);
    free(list);
    if (!r) {
        mallet_err("%s", err);
        return NULL;
    }
    for (unsigned i = 0; i < n; i++) {
        const mallet_trace_info_t *in = mallet_reader_info(r, i);
        if (in->cut)
            mallet_err("%s: trace was cut (%" PRIu64 " bytes of an incomplete chunk ignored)",
                       in->path, in->cut_bytes);
        /* Neither an end nor a dying process's flush: the process is still running, was killed
         * (SIGKILL), or its recorder stopped (out of memory), and what its threads had not
         * written yet is not here: a block made there and freed by another thread that wrote
         * reads as a double free. */
        else if (!in->ended_cleanly && !in->flushed_dying)
            mallet_err("%s: no end: the process still runs, was killed, or stopped recording; "
                       "events not yet written are missing",
                       in->path);
    }
    return r;
}

mallet_symbols_t *mallet_cli_symbols(mallet_reader_t *r)
{
    unsigned n = mallet_reader_nfiles(r);
    const char **maps = calloc(n ? n : 1, sizeof *maps);
    if (!maps) return NULL;
    for (unsigned i = 0; i < n; i++)
        maps[i] = mallet_reader_info(r, i)->maps;
    mallet_symbols_t *syms = mallet_symbols_new(maps, n);
    free(maps);
    return syms;
}

/* The directory of this executable. */
static int exe_dir(char *out, size_t cap)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return -1;
    *slash = 0;
    return snprintf(out, cap, "%s", exe) < (int)cap ? 0 : -1;
}

/* The first of dir/rel... that exists, made absolute, into out. */
static int first_existing(const char *dir, const char *const *rels, size_t n, char *out, size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX], real[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, rels[i]) >= (int)sizeof path) continue;
        if (access(path, R_OK) == 0 && realpath(path, real) &&
            snprintf(out, cap, "%s", real) < (int)cap)
            return 0;
    }
    return -1;
}

int mallet_cli_libdir(char *out, size_t cap)
{
    char dir[PATH_MAX];
    static const char *const rels[] = {"libmallet_record.so", "../lib/mallet/libmallet_record.so",
                                       "../lib64/mallet/libmallet_record.so"};
    if (exe_dir(dir, sizeof dir) || first_existing(dir, rels, 3, out, cap)) return -1;
    *strrchr(out, '/') = 0; /* the directory holding it */
    return 0;
}

int mallet_cli_allocators_dir(char *out, size_t cap)
{
    const char *env = getenv("MALLET_ALLOCATORS");
    if (env && *env) return snprintf(out, cap, "%s", env) < (int)cap ? 0 : -1;
    char dir[PATH_MAX];
    static const char *const rels[] = {"../share/mallet/allocators",
                                       MALLET_SOURCE_DIR "/allocators"};
    if (exe_dir(dir, sizeof dir)) return -1;
    if (first_existing(dir, rels, 1, out, cap) == 0) return 0;
    return first_existing("", rels + 1, 1, out, cap);
}

/* The installed version of a Debian package, or "" (dpkg-query absent, package not installed). */
static void package_version(const char *pkg, char *out, size_t cap)
{
    out[0] = 0;
    for (const char *c = pkg; *c; c++) /* a Debian package name, nothing a shell would read */
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || strchr(".+-", *c))) return;
    char cmd[256];
    if (snprintf(cmd, sizeof cmd, "dpkg-query -W -f='${Version}' '%s' 2>/dev/null", pkg) >=
        (int)sizeof cmd)
        return;
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (!fgets(out, (int)cap, p)) out[0] = 0;
    out[strcspn(out, "\n")] = 0;
    pclose(p);
}

void mallet_cli_backend_version(const struct mallet_backend *b, char *out, size_t cap)
{
    out[0] = 0;
    if (!b->available) return;
    if (b->in_tree)
        snprintf(out, cap, "%s", MALLET_VERSION);
    else if (b->package)
        package_version(b->package, out, cap);
}

int mallet_is_help(const char *arg)
{
    return !strcmp(arg, "-h") || !strcmp(arg, "--help");
}

static void usage(FILE *out)
{
    fprintf(out, "usage: mallet [--version] [--help] COMMAND [ARGS...]\n\n"
                 "Record a program's allocations, then inspect them.\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'mallet COMMAND --help' describes one command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return MALLET_EXIT_USAGE;
    }
    if (mallet_is_help(argv[1]) || !strcmp(argv[1], "help")) {
        if (argc > 2 && strcmp(argv[1], "help") == 0) {
            for (size_t i = 0; i < NCOMMANDS; i++)
                if (!strcmp(argv[2], commands[i].name)) return commands[i].usage(stdout), 0;
        }
        usage(stdout);
        return MALLET_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("mallet %s (trace format v%u; packed traces v%u)\n", MALLET_VERSION,
               MALLET_TRACE_VERSION, MALLET_TRACE_VERSION_PACKED);
        return MALLET_EXIT_OK;
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        /* Each command parses its own options, --help included: only it knows where its
         * options end (record passes the traced command's arguments through untouched). */
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    }
    if (argv[1][0] == '-') return mallet_usage_error(NULL, "unknown option '%s'", argv[1]);
    return mallet_usage_error(NULL, "unknown command '%s'", argv[1]);
}
