/* `mallet replay`: runs traces against allocator backends, one fresh worker process per backend
 * and repetition (the backend preloaded, its environment set), and reports what each run measured
 * (replay_report.c). The worker is mallet-worker (replay/worker_main.c), from mallet's library
 * directory. */
#define _GNU_SOURCE
#include "backend/backend.h"
#include "cli.h"
#include "replay_report.h"
#include "replay/prepare.h"
#include "replay/worker.h"
#include "trace/format.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void mallet_usage_replay(FILE *out)
{
    fprintf(out,
            "usage: mallet replay [--allocator NAME_OR_PATH]... [--repeat N] [--touch MODE]\n"
            "                     [--gap MS] [--no-syscalls] [--json FILE] TRACE...\n\n"
            "Replays each trace (each process's file on its own) on each allocator backend, in a\n"
            "fresh process per run, one thread per traced thread, cross-thread frees waiting for\n"
            "the allocation they free. Prints a table, allocators as rows.\n\n"
            "  --allocator A  a backend from `mallet allocators`, or a path to a library that\n"
            "                 exports malloc and free (repeatable; default: every available one)\n"
            "  --repeat N     runs per backend and trace (default 1)\n"
            "  --touch MODE   none | first | pages (default: a write to every page of each new\n"
            "                 block) | all\n"
            "  --gap MS       a thread that allocates again after a pause of more than MS\n"
            "                 milliseconds first waits for what the other threads did meanwhile\n"
            "                 (default 1; 0: only frees wait for their blocks)\n"
            "  --no-syscalls  skip the counting run (one per backend and trace, after the timed\n"
            "                 ones) that counts mmap, munmap, mremap, brk, madvise, mprotect\n"
            "  --json FILE    also write every run as JSON (docs/RESULTS_SCHEMA.md)\n");
}

static const char *const touch_names[] = {"none", "first", "pages", "all"};

/* Reads the worker's rss_timeline line into tl. */
static void parse_timeline(const char *l, mallet_rss_timeline_t *tl)
{
    int used = 0;
    memset(tl, 0, sizeof *tl);
    if (sscanf(l, "%" SCNu64 "%n", &tl->interval_ns, &used) != 1) return;
    for (l += used; tl->n < MALLET_RSS_SAMPLES; l += used) {
        if (sscanf(l, " %" SCNu64 ":%" SCNu64 "%n", &tl->t_ns[tl->n], &tl->bytes[tl->n], &used) != 2)
            break;
        tl->n++;
    }
}

/* Starts a worker with backend b (a counting run with `count`) and reads its results. */
static void run_once(const char *worker, const mallet_backend_t *b, const char *prepared,
                     int touch, int count, mallet_cli_run_t *run)
{
    int out[2];
    run->ok = 0;
    if (pipe(out)) {
        snprintf(run->problem, sizeof run->problem, "pipe: %s", strerror(errno));
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(run->problem, sizeof run->problem, "fork: %s", strerror(errno));
        close(out[0]), close(out[1]);
        return;
    }
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]), close(out[1]);
        for (size_t i = 0; i < b->nenv; i++) putenv(b->env[i]);
        if (b->path)
            setenv("LD_PRELOAD", b->path, 1);
        else
            unsetenv("LD_PRELOAD"); /* the system allocator: nothing in between */
        char touch_arg[16];
        snprintf(touch_arg, sizeof touch_arg, "%d", touch);
        execl(worker, "mallet-worker", prepared, touch_arg, count ? "count" : (char *)NULL,
              (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    static char buf[1 << 16]; /* the timeline is the long line: 512 samples of ~30 bytes */
    size_t len = 0;
    ssize_t n;
    while (len < sizeof buf - 1 && (n = read(out[0], buf + len, sizeof buf - 1 - len)) != 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        len += (size_t)n;
    }
    buf[len] = 0;
    close(out[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status)) {
        snprintf(run->problem, sizeof run->problem, "crashed (%s)", strsignal(WTERMSIG(status)));
        return;
    }
    mallet_replay_result_t *r = &run->res;
    if (WEXITSTATUS(status) != 0 ||
        sscanf(buf,
               "ops=%" SCNu64 " failed=%" SCNu64 " wall_ns=%" SCNu64 " user_ns=%" SCNu64
               " sys_ns=%" SCNu64 " minflt=%" SCNu64 " majflt=%" SCNu64 " latency_every=%" SCNu32,
               &r->ops, &r->failed, &r->wall_ns, &r->user_ns, &r->sys_ns, &r->minor_faults,
               &r->major_faults, &r->latency_every) != 8 ||
        !strstr(buf, "\nrss ") ||
        sscanf(strstr(buf, "\nrss "), "\nrss baseline=%" SCNu64 " peak=%" SCNu64
                                       " process_peak=%" SCNu64,
               &r->baseline_rss_bytes, &r->peak_rss_bytes, &r->process_peak_rss_bytes) != 3) {
        snprintf(run->problem, sizeof run->problem, "the worker failed (exit %d)",
                 WEXITSTATUS(status));
        return;
    }
    const char *l = strstr(buf, "\nrss_timeline ");
    if (l) parse_timeline(l + 14, &run->timeline);
    r->timeline = &run->timeline;
    l = strstr(buf, "\nsys ");
    if (count && l) {
        r->syscalls_counted = 1;
        for (unsigned k = 0; k < MALLET_SC_COUNT_; k++) {
            char key[32];
            snprintf(key, sizeof key, " %s=", mallet_sc_name(k));
            const char *v = strstr(l, key);
            if (!v || sscanf(v + strlen(key), "%" SCNu64, &r->syscalls[k]) != 1)
                r->syscalls_counted = 0;
        }
    }
    if (count && !r->syscalls_counted) {
        snprintf(run->problem, sizeof run->problem, "the worker did not count syscalls");
        return;
    }
    for (l = strstr(buf, "\nlat "); l; l = strstr(l + 1, "\nlat ")) {
        char kind[32];
        mallet_latency_t lat;
        if (sscanf(l + 5, "%31s %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
                          " %" SCNu64,
                   kind, &lat.samples, &lat.p50_ns, &lat.p90_ns, &lat.p99_ns, &lat.p999_ns,
                   &lat.max_ns) != 7)
            continue;
        if (!strcmp(kind, "all")) r->latency = lat;
        for (unsigned k = 1; k < MALLET_OP_COUNT_; k++)
            if (!strcmp(kind, mallet_op_name(k))) r->latency_by_op[k] = lat;
    }
    run->ok = 1;
}

/* The replay-ready form of trace, in `prepared`: TRACE.replay beside it, made once and kept while
 * the trace's size and mtime and the resume gap (gap_ns: prepare.h's opts) stay the same; where
 * the trace's folder is not writable, a temporary file (temporary = 1). Says once what cannot be
 * replayed. Returns 0, or -1 after an error line. */
static int prepare_cached(const char *trace, uint64_t gap_ns, char *prepared, size_t cap,
                          int *temporary, mallet_prepared_info_t *info)
{
    const mallet_prepare_opts_t opts = {.gap_ns = gap_ns};
    struct stat sb;
    if (stat(trace, &sb)) {
        mallet_err("%s: %s", trace, strerror(errno));
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) { /* a folder of traces is for stats, check and dump */
        mallet_err("%s: not a regular file (replay takes one trace)", trace);
        return -1;
    }
    uint64_t mtime = (uint64_t)sb.st_mtim.tv_sec * 1000000000u + (uint64_t)sb.st_mtim.tv_nsec;
    *temporary = 0;
    if (snprintf(prepared, cap, "%s.replay", trace) < (int)cap &&
        mallet_prepared_peek(prepared, info) == 0 && info->trace_size == (uint64_t)sb.st_size &&
        info->trace_mtime_ns == mtime && info->gap_ns == mallet_prepare_gap_ns(&opts)) {
        if (info->skipped || info->failed_allocs)
            mallet_err("%s: %" PRIu64 " frees or reallocs of pointers not live and %" PRIu64
                       " failed calls are not replayed", trace, info->skipped, info->failed_allocs);
        return 0;
    }
    char err[PATH_MAX + 256];
    const char *paths[1] = {trace};
    mallet_reader_t *r = mallet_cli_open_traces((char **)paths, 1);
    if (!r) return -1;
    mallet_rfile_writer_t *w = NULL;
    int src = snprintf(prepared, cap, "%s.replay", trace) < (int)cap
                  ? mallet_rfile_create(prepared, (uint64_t)sb.st_size, mtime, &w)
                  : -ENAMETOOLONG;
    if (src) { /* the trace's folder is read-only (or the name too long): a temporary file */
        const char *tmp = getenv("TMPDIR");
        snprintf(prepared, cap, "%s/mallet-replay-%d.prep", tmp && *tmp ? tmp : "/tmp",
                 (int)getpid());
        *temporary = 1;
        src = mallet_rfile_create(prepared, (uint64_t)sb.st_size, mtime, &w);
    }
    if (src) {
        mallet_reader_close(r);
        mallet_err("replay: %s: %s", prepared, strerror(-src));
        return -1;
    }
    mallet_prepared_t p;
    int rc = mallet_prepare(r, 0, w, &opts, &p, err, sizeof err); /* consumes w */
    mallet_reader_close(r);
    if (rc) {
        mallet_err("%s", err);
        return -1;
    }
    if (p.skipped || p.failed_allocs)
        mallet_err("%s: %" PRIu64 " frees or reallocs of pointers not live and %" PRIu64
                   " failed calls are not replayed", trace, p.skipped, p.failed_allocs);
    if (mallet_prepared_peek(prepared, info)) {
        mallet_err("replay: %s: %s", prepared, strerror(EIO));
        return -1;
    }
    return 0;
}

/* Picks the backends: the named ones (unknown or missing: an error), else every available one. */
static int select_backends(char **names, int nnames, mallet_backend_t **out, size_t *nout)
{
    char dir[PATH_MAX], libdir[PATH_MAX], err[PATH_MAX + 256];
    mallet_backend_t *all = NULL;
    size_t nall = 0;
    if (mallet_cli_allocators_dir(dir, sizeof dir) ||
        mallet_backends_load(dir, mallet_cli_libdir(libdir, sizeof libdir) ? NULL : libdir, &all,
                             &nall, err, sizeof err)) {
        mallet_err("%s", nall || all ? err : "replay: no allocator descriptors found");
        return -1;
    }
    mallet_backend_t *sel = calloc(nnames ? (size_t)nnames : nall, sizeof *sel);
    size_t n = 0;
    int rc = sel ? 0 : -1;
    for (int i = 0; !rc && i < nnames; i++) {
        if (strchr(names[i], '/')) {
            if (mallet_backend_from_path(names[i], &sel[n], err, sizeof err)) {
                mallet_err("replay: allocator %s", err);
                rc = -1;
            } else {
                n++;
            }
            continue;
        }
        size_t k = 0, dup = 0;
        for (size_t j = 0; j < n; j++) dup |= !strcmp(sel[j].name, names[i]);
        if (dup) {
            mallet_err("replay: allocator '%s' given twice", names[i]);
            rc = -1;
            continue;
        }
        /* entries already taken are emptied (name NULL) */
        while (k < nall && (!all[k].name || strcmp(all[k].name, names[i]))) k++;
        if (k == nall) {
            mallet_err("replay: unknown allocator '%s' (see 'mallet allocators')", names[i]);
            rc = -1;
        } else if (!all[k].available) {
            mallet_err("replay: allocator '%s' is not installed: %s not found%s%s%s", names[i],
                       all[k].nlibrary ? all[k].library[0] : "its library",
                       all[k].package ? " (apt-get install " : "",
                       all[k].package ? all[k].package : "", all[k].package ? ")" : "");
            rc = -1;
        } else {
            sel[n++] = all[k];
            memset(&all[k], 0, sizeof all[k]);
        }
    }
    for (size_t k = 0; !rc && !nnames && k < nall; k++)
        if (all[k].available) {
            sel[n++] = all[k];
            memset(&all[k], 0, sizeof all[k]);
        }
    mallet_backends_free(all, nall);
    if (rc) {
        mallet_backends_free(sel, n);
        return -1;
    }
    *out = sel;
    *nout = n;
    return 0;
}

int mallet_cmd_replay(int argc, char **argv)
{
    char **names = calloc((size_t)argc, sizeof *names), **traces = calloc((size_t)argc, sizeof *traces);
    int nnames = 0, ntraces = 0, repeat = 1, touch = MALLET_TOUCH_PAGES, only = 0, syscalls = 1;
    uint64_t gap_ns = 0; /* prepare's default */
    const char *json_path = NULL;
    if (!names || !traces) return free(names), free(traces), MALLET_EXIT_FAIL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (only || a[0] != '-' || !a[1]) {
            traces[ntraces++] = argv[i];
        } else if (!strcmp(a, "--")) {
            only = 1;
        } else if (mallet_is_help(a)) {
            mallet_usage_replay(stdout);
            return free(names), free(traces), MALLET_EXIT_OK;
        } else if (!strcmp(a, "--allocator") && val) {
            names[nnames++] = argv[++i];
        } else if (!strcmp(a, "--repeat") && val) {
            char *end;
            long v = strtol(val, &end, 10);
            if (*end || v < 1 || v > 1000) {
                free(names), free(traces);
                return mallet_usage_error("replay", "--repeat takes 1..1000, not '%s'", val);
            }
            repeat = (int)v, i++;
        } else if (!strcmp(a, "--touch") && val) {
            touch = -1;
            for (int k = 0; k < 4; k++)
                if (!strcmp(val, touch_names[k])) touch = k;
            if (touch < 0) {
                free(names), free(traces);
                return mallet_usage_error("replay", "--touch takes none, first, pages or all");
            }
            i++;
        } else if (!strcmp(a, "--gap") && val) {
            char *end;
            double ms = strtod(val, &end);
            if (*end || end == val || !(ms >= 0 && ms <= 3.6e6)) {
                free(names), free(traces);
                return mallet_usage_error("replay",
                                          "--gap takes milliseconds, 0 to 3600000, not '%s'", val);
            }
            gap_ns = ms == 0 ? MALLET_PREPARE_NO_GAP : (uint64_t)(ms * 1e6 + 0.5);
            gap_ns += !gap_ns; /* below 1 ns: 1 ns, not the default */
            i++;
        } else if (!strcmp(a, "--no-syscalls")) {
            syscalls = 0;
        } else if (!strcmp(a, "--json") && val) {
            json_path = argv[++i];
        } else {
            free(names), free(traces);
            return mallet_usage_error("replay", "unknown option or missing value: '%s'", a);
        }
    }
    if (!ntraces) {
        free(names), free(traces);
        return mallet_usage_error("replay", "no TRACE given");
    }
    mallet_backend_t *bs = NULL;
    size_t nb = 0;
    int rc = MALLET_EXIT_FAIL;
    mallet_cli_run_t *runs = NULL, *counting = NULL;
    mallet_replay_trace_t *tinfo = calloc((size_t)ntraces, sizeof *tinfo);
    size_t nruns = 0;
    char worker[PATH_MAX];
    if (mallet_cli_libdir(worker, sizeof worker) ||
        strlen(worker) + sizeof "/mallet-worker" > sizeof worker) {
        mallet_err("replay: cannot find mallet's library directory (for mallet-worker)");
        goto out;
    }
    strcat(worker, "/mallet-worker");
    if (select_backends(names, nnames, &bs, &nb)) goto out;
    runs = calloc(nb * (size_t)ntraces * (size_t)repeat, sizeof *runs);
    counting = syscalls ? calloc(nb * (size_t)ntraces, sizeof *counting) : NULL;
    if (!runs || (syscalls && !counting) || !tinfo) goto out;
    for (int t = 0; t < ntraces; t++) {
        char prepared[PATH_MAX];
        int temporary = 0;
        mallet_prepared_info_t info;
        if (prepare_cached(traces[t], gap_ns, prepared, sizeof prepared, &temporary, &info))
            goto out;
        if (mallet_rfile_recorded_rss(prepared, tinfo[t].s, &tinfo[t].n)) tinfo[t].n = 0;
        tinfo[t].threads = info.nthreads;
        tinfo[t].at_once = info.concurrency;
        tinfo[t].gap_ns = info.gap_ns;
        for (size_t k = 0; k < nb; k++) {
            mallet_cli_run_t *first = &runs[nruns], *c = counting ? &counting[(size_t)t * nb + k] : NULL;
            for (int rep = 0; rep < repeat; rep++) {
                mallet_cli_run_t *run = &runs[nruns++];
                run->allocator = bs[k].name;
                run->trace = traces[t];
                run->repetition = rep;
                run->peak_live_bytes = info.peak_live_bytes;
                run_once(worker, &bs[k], prepared, touch, 0, run);
            }
            if (!c) continue;
            run_once(worker, &bs[k], prepared, touch, 1, c);
            if (!c->ok)
                mallet_err("replay: %s on %s: syscalls not counted: %s", bs[k].name, traces[t],
                           c->problem);
            for (int rep = 0; c->ok && rep < repeat; rep++) first[rep].counted = c;
        }
        if (temporary) unlink(prepared);
    }
    int problems = mallet_replay_print_table(runs, nruns, repeat);
    if (json_path) {
        json_t *doc = mallet_replay_results(runs, nruns, bs, nb, traces, ntraces, tinfo,
                                            touch_names[touch], syscalls);
        if (!doc || json_dump_file(doc, json_path, JSON_INDENT(2))) {
            mallet_err("replay: %s: cannot write the results", json_path);
            json_decref(doc);
            goto out;
        }
        json_decref(doc);
    }
    rc = problems ? MALLET_EXIT_FAIL : MALLET_EXIT_OK;
out:
    free(runs);
    free(counting);
    free(tinfo);
    mallet_backends_free(bs, nb);
    free(names);
    free(traces);
    return rc;
}
