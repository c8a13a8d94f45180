/* Trace writer for tools and tests: builds a valid trace file from events given one by one,
 * buffering per thread exactly as the recorder does. (The recorder has its own malloc-free
 * buffering; both share the event encoder and mallet_chunk_write.) */
#ifndef MALLET_TRACE_WRITER_H
#define MALLET_TRACE_WRITER_H

#include "chunk_write.h"
#include "encode.h"

typedef struct mallet_writer mallet_writer_t;

/* Creates path (0600, truncating) and writes the file header and a META chunk from meta
 * (NULL: pid 1, no command line). zstd_level 0 writes raw chunks. NULL + err on failure. */
mallet_writer_t *mallet_writer_open(const char *path, const mallet_meta_t *meta, int zstd_level,
                                    char *err, size_t errlen);
/* Appends ev to the buffer of thread ev->tid; flushes that thread's chunk when full. */
int mallet_writer_event(mallet_writer_t *w, const mallet_event_t *ev);
/* Appends a mark (TRACE_FORMAT.md 7.1) of time cycles to thread tid's buffer, as the recorder
 * writes one after a pause: the event before it is given that time. -ENOENT if tid has no
 * events. Not counted as an event; the buffer keeps room for it past its chunk size. */
int mallet_writer_mark(mallet_writer_t *w, uint32_t tid, uint64_t cycles);
/* Thread tid ends at cycles: its buffer is flushed as a THREAD_EXIT chunk (TRACE_FORMAT.md),
 * and a later event of that tid starts a new thread, as when the OS reuses a tid. -ENOENT if tid
 * has no events. */
int mallet_writer_thread_exit(mallet_writer_t *w, uint32_t tid, uint64_t cycles);
/* Writes a MAPS chunk (text of /proc/PID/maps). */
int mallet_writer_maps(mallet_writer_t *w, const char *text, size_t len);
/* Flushes every thread's buffer. */
int mallet_writer_flush(mallet_writer_t *w);
/* Flushes, writes an END chunk if clean_end, closes and frees. Returns 0 or -errno. */
int mallet_writer_close(mallet_writer_t *w, int clean_end);

#endif
