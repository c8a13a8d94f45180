/* Trace analysis behind `mallet stats` and `mallet check`: one pass over the reader's
 * time-ordered event stream that replays the heap's life.
 *
 * The heap model (shared by both analyses) tracks every live block by (trace file, pointer) -- one
 * trace file is one process, one address space -- in an open-addressing hash table that grows, so
 * millions of live blocks cost memory, not time. Its rules follow glibc:
 *   - malloc/calloc/posix_memalign/aligned_alloc/memalign/valloc/pvalloc returning p != 0 give
 *     birth to block p of the requested size (calloc and reallocarray: nmemb * size, saturating);
 *   - free(0) does nothing; free(p) kills block p;
 *   - realloc(old, size) returning new kills old if old != 0 and (new != 0 or size == 0)
 *     (realloc(p, 0) returning NULL freed p), and gives birth to new if new != 0; a failed
 *     realloc (new == 0, size != 0) leaves old alive. The old block dies at the realloc's
 *     RELEASE half (when the call began), the new one is born at its end (reader.h);
 *   - an allocation that returns a pointer that is still live means a free was not recorded: the
 *     old block is dropped (counted in missed_frees) and the new one replaces it;
 *   - in a process forked from a traced parent (its trace says so and the parent's trace is among
 *     the files given), a free of a pointer the child never allocated but its parent (or an older
 *     ancestor) allocated before the fork and had not freed by then is of a block inherited
 *     across fork(): counted as inherited, not as a problem. (The fork time is the child's
 *     START_CYCLES, which the recorder reads in the parent just before the fork. The parent's
 *     freed entries are kept for this, and when it reuses an address, the block's life before,
 *     if a child was forked during it.)
 * A call "failed" if it returned no block when one was due: NULL, except realloc/reallocarray of
 * size 0 where NULL is the documented result.
 *
 * The compute functions consume the reader's stream (give them a freshly opened reader) and copy
 * what they keep, so the results outlive the reader. Nothing here prints except the *_write_text
 * emitters, which write to the stream they are given. */
#ifndef MALLET_ANALYZE_STATS_H
#define MALLET_ANALYZE_STATS_H

#include "sites.h"
#include "trace/reader.h"

#include <jansson.h>
#include <stdio.h>

/* Power-of-two histogram: bucket 0 counts values <= 1, bucket k (1..64) values in
 * (2^(k-1), 2^k]. Its upper bound ("le") is 2^k; bucket 64's, 2^64, is given as UINT64_MAX. */
#define MALLET_HIST_BUCKETS 65
typedef struct mallet_hist {
    uint64_t count[MALLET_HIST_BUCKETS];
} mallet_hist_t;

unsigned mallet_hist_bucket(uint64_t v);
uint64_t mallet_hist_le(unsigned bucket);

/* One trace file (one process). */
typedef struct mallet_proc_stats {
    int64_t pid, ppid;
    char *cmdline;           /* argv joined by spaces; invalid UTF-8 and control bytes as '?' */
    int forked;              /* forked from a traced parent */
    uint64_t events;         /* allocation-API calls (RSS samples excluded) */
    uint64_t threads;        /* distinct threads making allocation-API calls */
    int thread_exits;        /* the recorder marked threads' ends: threads_exited is known */
    uint64_t threads_exited; /* threads that ended before the process */
    int ended_cleanly;       /* the trace has an END chunk */
    int end_reason;          /* its enum mallet_end_reason (exit, exec, _exit) */
    int cut;                 /* the trace ends inside a chunk */
    uint64_t cut_bytes;      /* bytes of that incomplete chunk, ignored */
    uint64_t peak_live_bytes;
    uint64_t leaked_bytes, leaked_blocks; /* live at the end of the trace */
    uint64_t rss_samples, peak_rss_bytes;
    uint64_t trace_bytes; /* the trace file's size */
} mallet_proc_stats_t;

typedef struct mallet_stats {
    uint64_t events;                    /* allocation-API calls; RSS samples are not events */
    uint64_t by_kind[MALLET_OP_COUNT_]; /* calls by op (index MALLET_OP_RSS stays 0) */
    uint64_t alloc_calls; /* every call of malloc, calloc, realloc, reallocarray, memalign family */
    uint64_t failed_calls;     /* of those, the ones that returned no block when one was due */
    uint64_t free_calls;       /* every call of free, free(NULL) included */
    uint64_t null_frees;       /* free(NULL) */
    uint64_t unknown_frees;    /* free(p) of a p that was not live (double or never allocated) */
    uint64_t unknown_reallocs; /* realloc of a non-NULL old pointer that was not live */
    uint64_t inherited_frees;  /* frees/reallocs in a forked child of blocks from its parent */
    uint64_t missed_frees;     /* an allocation returned a pointer that was still live */
    uint64_t threads, processes;
    uint64_t bytes_requested;    /* sum of the sizes of the blocks born (saturating) */
    mallet_hist_t size_hist;     /* sizes of the blocks born */
    mallet_hist_t lifetime_hist; /* ns from birth to death of the blocks that died */
    uint64_t blocks_freed;       /* blocks that died (free or realloc) */
    uint64_t cross_thread_frees; /* of those, killed by a thread other than the allocating one
                                  * (threads are told apart by the recorder's serial, as OS
                                  * thread ids are reused) */
    uint64_t temporary_allocs;   /* of those, killed by their thread's very next call after the
                                  * one that made them (heaptrack's temporary allocations) */
    uint64_t peak_live_bytes;    /* max over time of the live requested bytes, all processes */
    uint64_t peak_live_blocks;   /* blocks live at that moment */
    uint64_t peak_live_time_ns;  /* when it was first reached, ns since origin_ns */
    uint64_t leaked_bytes, leaked_blocks; /* live at the end */
    uint64_t rss_samples, peak_rss_bytes; /* peak: largest single sample of any process */
    uint64_t origin_ns;         /* CLOCK_MONOTONIC of the earliest process start (or first event) */
    uint64_t duration_ns;       /* from origin_ns to the last event */
    uint64_t trace_bytes;       /* the trace files' sizes, summed */
    mallet_proc_stats_t *procs; /* one per trace file, in the order given */
    unsigned nprocs;
    uint64_t sites;           /* distinct (process, callsite) pairs that allocated */
    mallet_site_t *top_sites; /* the MALLET_TOP_SITES with most calls, most bytes, most bytes
                               * live at the peak, most temporary blocks (sites.h) */
    size_t ntop_sites;
} mallet_stats_t;

#define MALLET_TOP_SITES 10

/* Fills st (which it zeroes first) from the whole stream. Returns 0, or -1 with a message in
 * err ("PATH: what is wrong" for a corrupt trace, or "out of memory"); st is then empty. */
int mallet_stats_compute(mallet_reader_t *r, mallet_stats_t *st, char *err, size_t errlen);
void mallet_stats_free(mallet_stats_t *st);
/* The JSON document of `mallet stats --json` (keys in a fixed order). NULL when out of memory. */
json_t *mallet_stats_json(const mallet_stats_t *st);
/* "1.5 MiB", "12 B": a readable companion to an exact byte count. Returns buf. */
const char *mallet_human_bytes(uint64_t v, char *buf, size_t len);

/* The human summary of `mallet stats`. Returns 0, or -1 on a write error. */
int mallet_stats_write_text(const mallet_stats_t *st, FILE *out);

/* ---- check --------------------------------------------------------------------------------- */

enum mallet_problem_kind {
    MALLET_PROBLEM_DOUBLE_FREE = 1,    /* free(p): p was allocated, freed, not reallocated since */
    MALLET_PROBLEM_UNKNOWN_FREE = 2,   /* free(p): p was never allocated in this process */
    MALLET_PROBLEM_REALLOC_FREED = 3,  /* realloc(p, ..): p already freed */
    MALLET_PROBLEM_REALLOC_UNKNOWN = 4 /* realloc(p, ..): p never allocated */
};

typedef struct mallet_problem {
    int kind;
    uint8_t op; /* MALLET_OP_FREE, _REALLOC or _REALLOCARRAY */
    unsigned file;
    uint32_t tid;     /* OS thread id of the call */
    uint64_t time_ns; /* ns since the check's origin_ns */
    uint64_t ptr;
    uint64_t callsite;
    /* Double free / realloc of a freed pointer: the call that first freed it. */
    uint64_t first_callsite, first_time_ns;
} mallet_problem_t;

/* Blocks still live at the end, grouped by the (process, callsite) that allocated them. */
typedef struct mallet_leak {
    unsigned file;
    uint64_t callsite;
    uint64_t blocks, bytes;
} mallet_leak_t;

/* Problems beyond this many are counted but not kept: a program that double-frees in a loop
 * must not make the report (or the memory) grow without bound. */
#define MALLET_CHECK_MAX_PROBLEMS 10000u

typedef struct mallet_check {
    mallet_leak_t *leaks; /* by bytes descending, then blocks, file, callsite */
    size_t nleaks;
    uint64_t leaked_bytes, leaked_blocks;
    mallet_problem_t *problems; /* in time order; the first MALLET_CHECK_MAX_PROBLEMS */
    size_t nproblems;
    uint64_t problems_total; /* all problems, kept or not */
    uint64_t double_frees, unknown_frees, realloc_freed, realloc_unknown;
    uint64_t inherited_frees; /* not problems; see the header comment */
    /* Blocks live when their image was replaced by exec: the exec released them, so they are
     * not leaks (not problems either, only counted). */
    uint64_t exec_blocks, exec_bytes;
    uint64_t origin_ns;
} mallet_check_t;

/* Fills c from the whole stream. Returns 0, or -1 with a message in err; c is then empty. */
int mallet_check_compute(mallet_reader_t *r, mallet_check_t *c, char *err, size_t errlen);
void mallet_check_free(mallet_check_t *c);

/* The common time origin of the traces opened in r: the earliest recorded process start
 * (CLOCK_MONOTONIC), or UINT64_MAX if no trace records one. Tools that print times take the
 * smaller of this and the first event's time, as stats and check do. */
uint64_t mallet_trace_origin(const mallet_reader_t *r);

#endif
