/* Trace reader: opens one or more trace files and streams their events in global time order.
 *
 * Opening reads only the chunk headers (one pass that seeks over payloads), checks them, and
 * builds a small index; events are then decoded chunk by chunk while a k-way merge orders the
 * threads (and the processes) by timestamp. Memory is bounded by the chunks whose time ranges
 * overlap, never by the trace's length. Nothing read from the file is trusted: every length,
 * count and varint is bounds-checked, and the first problem found is reported as a message that
 * names the file. */
#ifndef MALLET_TRACE_READER_H
#define MALLET_TRACE_READER_H

#include "encode.h"

#include <stdio.h>

/* What a trace file says about its process. Filled in by mallet_reader_open. */
typedef struct mallet_trace_info {
    const char *path;
    unsigned file_index; /* position among the files given to mallet_reader_open */
    uint32_t version;
    int64_t pid, ppid;
    int forked;                 /* process was forked from a traced parent */
    uint64_t start_realtime_ns; /* wall clock when recording started */
    uint64_t start_cycles, start_ns;
    uint64_t fork_end_cycles; /* a forked child: read by it just after the fork, 0 if unknown */
    uint64_t cycles_per_sec; /* the recorder's own measurement at start, 0 if absent */
    char *cmdline; /* argv joined by spaces, or NULL if the trace does not say */
    char *exe;     /* or NULL */
    char *maps;          /* the MAPS chunks' texts, newest first, an empty line between each
                          * (NUL-terminated), or NULL: what analyze/symbols.h takes */
    uint64_t events;     /* records in EVENTS chunks, from the headers (RSS samples and events a
                          * dying process wrote twice included: the merge yields each once) */
    uint64_t chunks;
    uint32_t threads;    /* distinct threads (recorder serials) with events */
    /* The recorder marks each thread's end (MALLET_META_THREAD_EXITS): a thread without a mark
     * lived as long as the process. Older recorders do not, and then nothing is known. */
    int thread_exits;
    uint32_t threads_exited; /* threads with a THREAD_EXIT chunk */
    int ended_cleanly;   /* an END chunk was seen */
    int end_reason;      /* its mallet_end_reason */
    int cut;             /* the file ends inside a chunk (the process died mid-write) */
    int flushed_dying;   /* it has a chunk written by a dying process (a fatal signal's handler) */
    uint64_t cut_bytes;  /* bytes of that incomplete chunk, ignored */
    double ns_per_cycle; /* fitted from the chunk clock pairs */
    uint64_t file_bytes;
} mallet_trace_info_t;

/* A realloc gives up its old block before the call and gets the new one after it, and another
 * thread may reuse the old address in between; so the merge yields a realloc whose old pointer is
 * not NULL twice: first the RELEASE half at ev.free_cycles (only the old block dies), then the
 * ALLOC half at ev.cycles (only the new block is born, and the call is counted). Every other event
 * comes once, as WHOLE. */
enum mallet_part { MALLET_PART_WHOLE = 0, MALLET_PART_RELEASE = 1, MALLET_PART_ALLOC = 2 };

/* An event as the merge yields it: the decoded event plus where it came from. */
typedef struct mallet_rec {
    mallet_event_t ev;
    uint8_t part;     /* enum mallet_part */
    unsigned file;    /* index into the files given to open */
    uint64_t time_ns; /* the part's timestamp converted to CLOCK_MONOTONIC ns */
} mallet_rec_t;

typedef struct mallet_reader mallet_reader_t;

/* Opens the files. On failure returns NULL and writes "PATH: what is wrong" into err. */
mallet_reader_t *mallet_reader_open(const char *const *paths, unsigned npaths, char *err,
                                    size_t errlen);
unsigned mallet_reader_nfiles(const mallet_reader_t *r);
const mallet_trace_info_t *mallet_reader_info(const mallet_reader_t *r, unsigned file);

/* Next event in time order (ties: file, then thread order). Returns 1 with *out filled, 0 at the
 * end, -1 on a corrupt payload (message in mallet_reader_error). RSS samples are yielded too
 * (op MALLET_OP_RSS); callers that count calls skip them. */
int mallet_reader_next(mallet_reader_t *r, mallet_rec_t *out);
/* The same order for consumers that use neither the time in ns nor a copy (prepare), a run at a
 * time: returns n >= 1 with (*out)[0..n) the next n records (one thread's, in order), 0 at the
 * end, -1 on a corrupt payload. The records point into the reader until the next call, and their
 * time_ns is not set. The merge moves past them at the next call, so a corrupt payload right
 * after the run shows then. Do not mix with mallet_reader_next on one reader. */
int mallet_reader_next_run(mallet_reader_t *r, const mallet_rec_t **out);
/* Called with each batch of events the reader decodes, before the merge yields any of them
 * (they come out within the next few hundred records, interleaved with other threads'): a
 * consumer that looks events up in a large table prefetches their entries here, so that the
 * lookups do not each wait on a cache miss (prepare's live-block table). The records are valid
 * only during the call, and their times may still be adjusted. fn NULL: none. */
typedef void mallet_reader_ahead_fn(void *arg, const mallet_rec_t *recs, unsigned n);
void mallet_reader_set_ahead(mallet_reader_t *r, mallet_reader_ahead_fn *fn, void *arg);
/* A thread's end as a THREAD_EXIT chunk marks it (docs/TRACE_FORMAT.md 4.4). */
typedef struct mallet_thread_end {
    unsigned file;
    uint32_t thread; /* the recorder's serial (mallet_event_t.thread) */
    uint32_t tid;    /* its OS thread id (display only) */
    uint64_t cycles; /* when it ended, as the file says */
} mallet_thread_end_t;
/* The thread ends file marks, *n of them, in time order (a damaged file may mark one twice; the
 * recorder's end is never before the thread's events, a damaged file's may be); NULL when there
 * are none. A thread of a file without an end lived to the process's end if the file's info says
 * thread_exits, else nothing is known. */
const mallet_thread_end_t *mallet_reader_thread_ends(const mallet_reader_t *r, unsigned file,
                                                     size_t *n);
/* qsort's order of thread ends: by time, ties by file, then thread (several files' ends merged). */
int mallet_thread_end_cmp(const void *a, const void *b);
/* A timestamp (an event's cycles) in CLOCK_MONOTONIC ns, as mallet_reader_next sets time_ns. */
uint64_t mallet_reader_time_ns(const mallet_reader_t *r, uint64_t cycles);
const char *mallet_reader_error(const mallet_reader_t *r);
void mallet_reader_close(mallet_reader_t *r);

/* Decodes one event from [*p, end); advances *p. Returns 0, or -1 if the bytes are malformed.
 * Exposed for the fuzzers and the golden tests. */
int mallet_decode_event(const uint8_t **p, const uint8_t *end, mallet_enc_state_t *st,
                        mallet_event_t *ev);

#endif
