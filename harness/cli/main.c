#define _GNU_SOURCE
/* `mallet`: dispatches to one file per subcommand (cmd_*.c). */
#include "cli.h"

#include "analyze/symbols.h"
#include "backend/backend.h"
#include "trace/reader.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const mallet_cmd_t commands[] = {
    {"record", "run a program with the recorder preloaded, one trace file per process",
     mallet_cmd_record, mallet_usage_record},
    {"stats", "summarise traces: calls, threads, sizes, lifetimes, peak live bytes",
     mallet_cmd_stats, mallet_usage_stats},
    {"check", "find leaks, double frees and frees of unknown pointers, by callsite",
     mallet_cmd_check, mallet_usage_check},
    {"dump", "print one readable line per event", mallet_cmd_dump, mallet_usage_dump},
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

mallet_reader_t *mallet_cli_open_traces(char **paths, unsigned n)
{
    char err[512];
    mallet_reader_t *r = mallet_reader_open((const char *const *)paths, n, err, sizeof err);
    if (!r) {
        mallet_err("%s", err);
        return NULL;
    }
    for (unsigned i = 0; i < n; i++) {
        const mallet_trace_info_t *in = mallet_reader_info(r, i);
        if (in->cut)
            mallet_err("%s: trace was cut (%" PRIu64 " bytes of an incomplete chunk ignored)",
                       in->path, in->cut_bytes);
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
        printf("mallet %s (trace format v%u)\n", MALLET_VERSION, MALLET_TRACE_VERSION);
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
