/* See replay_report.h. */
#define _GNU_SOURCE
#include "replay_report.h"

#include "analyze/stats.h"
#include "cli.h"
#include "trace/format.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

/* Where the numbers come from: host, kernel, CPU, the backends' versions, and each trace's size
 * and checksum (the same trace gives the same checksum on any machine). */
static json_t *context_json(const mallet_backend_t *bs, size_t nb, char **traces, int ntraces,
                            const mallet_replay_trace_t *tinfo)
{
    struct utsname u;
    char host[256] = "", cpu[256] = "", line[512];
    if (uname(&u) == 0) snprintf(host, sizeof host, "%s", u.nodename);
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
            cpu[strcspn(cpu, "\n")] = 0;
            break;
        }
    if (f) fclose(f);
    json_t *allocs = json_object(), *tr = json_array();
    for (size_t i = 0; allocs && i < nb; i++) {
        char v[128];
        mallet_cli_backend_version(&bs[i], v, sizeof v);
        json_object_set_new(allocs, bs[i].name,
                            json_pack("{s:s, s:s?}", "version", v, "library", bs[i].path));
    }
    for (int t = 0; tr && t < ntraces; t++) {
        /* a 64-bit digest of the whole file, in 1 MiB pieces (FNV-1a over the piece hashes) */
        uint64_t digest = 0xcbf29ce484222325ull, bytes = 0;
        FILE *in = fopen(traces[t], "rb");
        static uint8_t piece[1 << 20];
        size_t n;
        while (in && (n = fread(piece, 1, sizeof piece, in)) > 0) {
            digest = (digest ^ mallet_hash32(piece, n)) * 0x100000001b3ull;
            bytes += n;
        }
        if (in) fclose(in);
        char hex[24];
        snprintf(hex, sizeof hex, "%016" PRIx64, digest);
        /* the traced process's own RSS, to set beside the replays' timelines */
        json_t *samples = json_array();
        for (uint32_t i = 0; samples && i < tinfo[t].n; i++)
            json_array_append_new(samples, json_pack("[I, I]", (json_int_t)tinfo[t].s[i].t_ns,
                                                     (json_int_t)tinfo[t].s[i].bytes));
        json_array_append_new(tr, json_pack("{s:s, s:I, s:s, s:i, s:i, s:I, s:{s:o}}", "path",
                                            traces[t], "bytes", (json_int_t)bytes, "digest", hex,
                                            "threads", (int)tinfo[t].threads, "threads_at_once",
                                            (int)tinfo[t].at_once, "resume_gap_ns",
                                            (json_int_t)tinfo[t].gap_ns, "recorded_rss", "samples",
                                            samples ? samples : json_null()));
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:o, s:o}", "host", host, "kernel", u.release,
                     "machine", u.machine, "cpu", cpu, "cores", (int)sysconf(_SC_NPROCESSORS_ONLN),
                     "allocators", allocs ? allocs : json_null(), "traces", tr ? tr : json_null());
}

static json_t *latency_json(const mallet_latency_t *l)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "samples", (json_int_t)l->samples, "p50",
                     (json_int_t)l->p50_ns, "p90", (json_int_t)l->p90_ns, "p99",
                     (json_int_t)l->p99_ns, "p999", (json_int_t)l->p999_ns, "max",
                     (json_int_t)l->max_ns);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* One row per allocator and trace: medians over the repetitions (latency and memory: of the run
 * with the median wall time). Returns how many runs failed. */
int mallet_replay_print_table(const mallet_cli_run_t *runs, size_t nruns, int repeat)
{
    printf("%-14s %-4s %11s %10s %12s %7s %7s %10s %7s %8s  %s\n", "allocator", "runs", "ops",
           "wall ms", "ops/s", "p50 ns", "p99 ns", "peak RSS", "RSS/live", "syscalls", "trace");
    int problems = 0;
    for (size_t i = 0; i < nruns; i += (size_t)repeat) {
        uint64_t wall[1000];
        int ok = 0;
        for (int rep = 0; rep < repeat; rep++) {
            const mallet_cli_run_t *run = &runs[i + (size_t)rep];
            if (!run->ok) {
                printf("%-14s %-4d %s  %s\n", run->allocator, rep + 1, run->problem, run->trace);
                problems++;
                continue;
            }
            wall[ok++] = run->res.wall_ns;
        }
        if (!ok) continue;
        qsort(wall, (size_t)ok, sizeof *wall, cmp_u64);
        const mallet_cli_run_t *mid = NULL;
        for (int rep = 0; rep < repeat && !mid; rep++)
            if (runs[i + (size_t)rep].ok && runs[i + (size_t)rep].res.wall_ns == wall[ok / 2])
                mid = &runs[i + (size_t)rep];
        const mallet_replay_result_t *r = &mid->res;
        char rss[32], frag[32], sys[32] = "-";
        mallet_human_bytes(r->peak_rss_bytes, rss, sizeof rss);
        snprintf(frag, sizeof frag, "%.2f",
                 mid->peak_live_bytes ? (double)r->peak_rss_bytes / (double)mid->peak_live_bytes
                                      : 0.0);
        if (mid->counted) {
            uint64_t total = 0;
            for (unsigned k = 0; k < MALLET_SC_COUNT_; k++)
                total += mid->counted->res.syscalls[k];
            snprintf(sys, sizeof sys, "%" PRIu64, total);
        }
        printf("%-14s %-4d %11" PRIu64 " %10.3f %12.0f %7" PRIu64 " %7" PRIu64
               " %10s %7s %8s  %s\n",
               mid->allocator, ok, r->ops, (double)r->wall_ns / 1e6,
               r->wall_ns ? (double)r->ops * 1e9 / (double)r->wall_ns : 0.0, r->latency.p50_ns,
               r->latency.p99_ns, rss, frag, sys, mid->trace);
        if (r->failed)
            printf("%-14s      %" PRIu64 " allocations failed (returned NULL) in this run\n", "",
                   r->failed);
    }
    return problems;
}

/* A run as JSON (docs/RESULTS_SCHEMA.md). */
static json_t *run_json(const mallet_cli_run_t *run)
{
    if (!run->ok)
        return json_pack("{s:s, s:s, s:i, s:s}", "allocator", run->allocator, "trace", run->trace,
                         "repetition", run->repetition, "error", run->problem);
    const mallet_replay_result_t *r = &run->res;
    json_t *o = json_pack(
        "{s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:f, s:{s:I, s:I},"
        " s:i}",
        "allocator", run->allocator, "trace", run->trace, "repetition", run->repetition, "ops",
        (json_int_t)r->ops, "failed_allocs", (json_int_t)r->failed, "wall_ns",
        (json_int_t)r->wall_ns, "cpu_user_ns", (json_int_t)r->user_ns, "cpu_sys_ns",
        (json_int_t)r->sys_ns, "ops_per_sec",
        r->wall_ns ? (double)r->ops * 1e9 / (double)r->wall_ns : 0.0, "peak_rss_bytes",
        (json_int_t)r->peak_rss_bytes, "baseline_rss_bytes", (json_int_t)r->baseline_rss_bytes,
        "process_peak_rss_bytes", (json_int_t)r->process_peak_rss_bytes, "peak_live_bytes",
        (json_int_t)run->peak_live_bytes, "fragmentation",
        run->peak_live_bytes ? (double)r->peak_rss_bytes / (double)run->peak_live_bytes : 0.0,
        "page_faults", "minor", (json_int_t)r->minor_faults, "major", (json_int_t)r->major_faults,
        "latency_sample_every", (int)r->latency_every);
    json_t *lat = latency_json(&r->latency), *by = json_object(), *samples = json_array();
    for (unsigned k = 1; by && k < MALLET_OP_COUNT_; k++)
        if (r->latency_by_op[k].samples)
            json_object_set_new(by, mallet_op_name(k), latency_json(&r->latency_by_op[k]));
    for (uint32_t i = 0; samples && i < r->timeline->n; i++)
        json_array_append_new(samples, json_pack("[I, I]", (json_int_t)r->timeline->t_ns[i],
                                                 (json_int_t)r->timeline->bytes[i]));
    json_t *sys = json_null();
    if (run->counted) {
        uint64_t total = 0;
        sys = json_object();
        for (unsigned k = 0; sys && k < MALLET_SC_COUNT_; k++) {
            json_object_set_new(sys, mallet_sc_name(k),
                                json_integer((json_int_t)run->counted->res.syscalls[k]));
            total += run->counted->res.syscalls[k];
        }
        if (sys) json_object_set_new(sys, "total", json_integer((json_int_t)total));
    }
    if (!o || !lat || !by || !samples || !sys || json_object_set_new(lat, "by_kind", by) ||
        json_object_set_new(o, "latency_ns", lat) ||
        json_object_set_new(o, "rss_timeline",
                            json_pack("{s:I, s:o}", "interval_ns",
                                      (json_int_t)r->timeline->interval_ns, "samples", samples)) ||
        json_object_set_new(o, "syscalls", sys)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *mallet_replay_results(const mallet_cli_run_t *runs, size_t nruns,
                              const mallet_backend_t *bs, size_t nb, char **traces, int ntraces,
                              const mallet_replay_trace_t *tinfo, const char *touch, int syscalls)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < nruns; i++) {
        json_t *o = run_json(&runs[i]);
        if (!o || json_array_append_new(arr, o)) json_decref(arr), arr = NULL;
    }
    json_t *ctx = context_json(bs, nb, traces, ntraces, tinfo);
    if (!arr || !ctx) {
        json_decref(arr);
        json_decref(ctx);
        return NULL;
    }
    return json_pack("{s:i, s:s, s:s, s:s?, s:o, s:o}", "schema_version", MALLET_RESULTS_VERSION,
                     "mallet", MALLET_VERSION, "touch", touch, "syscalls_method",
                     syscalls ? "one counting run per allocator and trace (seccomp user "
                                "notifications)"
                              : NULL,
                     "context", ctx, "runs", arr);
}
