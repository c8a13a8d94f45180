/* Shared pieces of the `mallet` command line: the subcommand table and error conventions.
 * Library code returns errors; only the CLI prints them, always as "mallet: WHAT: message". */
#ifndef MALLET_CLI_H
#define MALLET_CLI_H

#include <stdio.h>

/* Exit codes: 0 ok, 1 the command ran and found problems (check) or failed, 2 usage error. */
#define MALLET_EXIT_OK 0
#define MALLET_EXIT_FAIL 1
#define MALLET_EXIT_USAGE 2

typedef struct mallet_cmd {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
    void (*usage)(FILE *out);
} mallet_cmd_t;

int mallet_cmd_record(int argc, char **argv);
void mallet_usage_record(FILE *out);
int mallet_cmd_stats(int argc, char **argv);
void mallet_usage_stats(FILE *out);
int mallet_cmd_check(int argc, char **argv);
void mallet_usage_check(FILE *out);
int mallet_cmd_dump(int argc, char **argv);
void mallet_usage_dump(FILE *out);
int mallet_cmd_pack(int argc, char **argv);
void mallet_usage_pack(FILE *out);
int mallet_cmd_replay(int argc, char **argv);
void mallet_usage_replay(FILE *out);
int mallet_cmd_allocators(int argc, char **argv);
void mallet_usage_allocators(FILE *out);

/* Prints "mallet: " + the formatted message + newline to stderr. */
void mallet_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* For usage errors: prints the message and "try 'mallet CMD --help'", returns MALLET_EXIT_USAGE. */
int mallet_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An option of a trace-reading command: "--name" sets *set to 1; or, with values, "--name VALUE"
 * (or "--name=VALUE") appends VALUE to values, *count of them, at most max. */
typedef struct mallet_flag {
    const char *name;
    int *set;
    const char **values;
    unsigned *count, max;
} mallet_flag_t;

/* Parses "CMD [OPTIONS] TRACE..." (options anywhere, "--" ends them), moving the traces to the
 * front of argv and counting them in *ntraces. Returns -1 to go on, or the exit code to return
 * (0 after --help, 2 on a usage error, which it has reported). flags ends with {NULL, NULL}. */
int mallet_cli_parse_traces(int argc, char **argv, const char *cmd, void (*usage)(FILE *),
                            const mallet_flag_t *flags, unsigned *ntraces);
/* True for a trace's file name: NAME.mtrace (what a folder given for traces stands for). */
int mallet_cli_is_trace_name(const char *name);
/* The trace files paths stand for (a folder: its *.mtrace files, by name), each once: a list the
 * caller frees (not its strings), and its length in *count; NULL after saying what is wrong. */
char **mallet_cli_trace_paths(char **paths, unsigned n, unsigned *count);
/* Opens traces for a command; prints the reader's error (NULL) or one warning per cut file. */
struct mallet_reader;
struct mallet_reader *mallet_cli_open_traces(char **paths, unsigned n);
/* A symbol resolver over the memory maps of every trace r holds (NULL when out of memory). */
struct mallet_symbols;
struct mallet_symbols *mallet_cli_symbols(struct mallet_reader *r);
/* mallet's own library directory (libmallet_record.so and the in-tree allocators): beside the
 * executable in a build tree, ../lib/mallet when installed. Returns 0, or -1 if not found. */
int mallet_cli_libdir(char *out, size_t cap);
/* The directory of allocator descriptors: $MALLET_ALLOCATORS, ../share/mallet/allocators when
 * installed, else the source tree's allocators/. Returns 0, or -1 if none exists. */
int mallet_cli_allocators_dir(char *out, size_t cap);
/* A backend's version: mallet's for in-tree ones, its Debian package's, or "" if unknown. */
struct mallet_backend;
void mallet_cli_backend_version(const struct mallet_backend *b, char *out, size_t cap);
/* True if argv[i] is -h or --help. */
int mallet_is_help(const char *arg);

#endif
