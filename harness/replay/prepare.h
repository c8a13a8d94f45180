/* Replay-ready form of one process's trace (issue 3): the events become one op stream per traced
 * thread, pointers become dense slot numbers, and a thread that frees (or reallocs) a block
 * another thread made first waits for the op that made it (a WAIT op in its stream). Ops that
 * cannot be replayed faithfully (a free of a pointer that is not live: a double free, or one the
 * trace never allocated) are skipped and counted, never executed.
 *
 * Slots are reused as blocks die, so the slot table follows the peak live block count, not the
 * event count. A slot freed by a thread goes back to that thread's own pool, so no thread ever
 * writes a slot another thread may still read without a dependency between them. New slots go to
 * a thread eight at a time (a cache line of the worker's slot table), so threads do not share
 * lines while they run.
 *
 * Streaming: the ops go to the replay file (rfile.h) as they are made, in per-thread chunks, so
 * prepare's memory is the live-block table, the slot pools, the per-thread buffers (bounded in
 * total) and the chunk index; never the event count. */
#ifndef MALLET_REPLAY_PREPARE_H
#define MALLET_REPLAY_PREPARE_H

#include "replay/rfile.h"
#include "trace/reader.h"

/* What prepare made: the counts that also go into the file's header. */
typedef mallet_prepared_info_t mallet_prepared_t;

/* Buffer sizes; tests make them tiny so that chunks and patches of flushed ops are exercised. */
typedef struct mallet_prepare_opts {
    uint32_t chunk_ops;  /* a thread's buffer is written as a chunk when it holds this many ops */
    uint64_t buffer_ops; /* all threads' buffers together: past this, every buffer is written */
    size_t patch_cap;    /* see mallet_rfile_set_patch_cap */
    uint64_t gap_ns;     /* the resume gap: 0 the default, MALLET_PREPARE_NO_GAP none */
} mallet_prepare_opts_t;

/* A thread that resumes (or ends) after this long without an allocation call waits, before it
 * goes on, for the last op another thread made before it resumed, so that the replay keeps the
 * order of a program's phases (docs/REPLAY_FILE.md, "Resumes"). The default; `mallet replay
 * --gap MS` sets another. */
#define MALLET_PREPARE_GAP_NS 1000000u
#define MALLET_PREPARE_NO_GAP UINT64_MAX /* no resume waits: threads run free between blocks */
/* The resume gap prepare uses with opts (NULL: the defaults), in ns, as the replay file's header
 * keeps it: 0 for none. */
uint64_t mallet_prepare_gap_ns(const mallet_prepare_opts_t *opts);

#define MALLET_PREPARE_CHUNK_OPS 16384u      /* 128 KiB, 256 with extensions */
#define MALLET_PREPARE_BUFFER_OPS (4u << 20) /* 32 MiB, 64 with extensions */

/* Prepares the events of trace file `file` of r (other files' events are passed over) into w,
 * and commits w (or discards it on failure: w is always consumed). The reader must be fresh
 * (nothing read yet). opts may be NULL (the defaults). Returns 0, or -1 with a message in err. */
int mallet_prepare(mallet_reader_t *r, unsigned file, mallet_rfile_writer_t *w,
                   const mallet_prepare_opts_t *opts, mallet_prepared_t *out, char *err,
                   size_t errlen);

#endif
