/* Writing one chunk: optional zstd compression, header packing, one writev. Shared by the
 * recorder (which calls it from hooks and signal handlers, so it never allocates) and by the
 * trace writer used by tools and tests. */
#ifndef MALLET_TRACE_CHUNK_WRITE_H
#define MALLET_TRACE_CHUNK_WRITE_H

#include "format.h"

typedef struct ZSTD_CCtx_s ZSTD_CCtx;

/* Writes header h (type, flags, tid, count, first/last cycles filled by the caller; sizes, hash
 * and clock pair filled here) and payload raw[0..raw_len). With cctx non-NULL the payload is
 * compressed into scratch (scratch_cap >= mallet_chunk_scratch_size(raw_len)) unless that does
 * not make it smaller. Returns 0 or -errno. */
int mallet_chunk_write(int fd, mallet_chunk_header_t *h, const uint8_t *raw, size_t raw_len,
                       ZSTD_CCtx *cctx, int level, uint8_t *scratch, size_t scratch_cap);
size_t mallet_chunk_scratch_size(size_t raw_len);



/* The process description written as the first chunk (MALLET_CHUNK_META). */
typedef struct mallet_meta {
    uint64_t pid, ppid;
    uint64_t start_realtime_ns, start_ns, start_cycles;
    const char *cmdline; /* argv, each NUL-terminated */
    size_t cmdline_len;
    const char *exe;
    int forked;
    int level;
    uint64_t cycles_per_sec; /* 0: not measured, not written */
    int thread_exits;        /* MALLET_META_THREAD_EXITS (0: not written) */
    uint64_t fork_end_cycles; /* MALLET_META_FORK_END_CYCLES (0: not written) */
} mallet_meta_t;

/* Encodes m into out (cap bytes); returns the length, or 0 if it does not fit. No allocation. */
size_t mallet_meta_encode(uint8_t *out, size_t cap, const mallet_meta_t *m);
#endif
