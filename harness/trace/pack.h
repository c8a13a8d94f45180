/* Packed EVENTS chunks (trace format version 4, docs/TRACE_FORMAT.md 13): `mallet pack`'s second
 * pass over a recorded trace, for traces kept for later. The recorder cannot afford to say which
 * of the live blocks a free releases other than by its address (a few bytes of noise a call on a
 * busy heap); off line, a model of the thread's heap can: a free names the block by its rank
 * among the thread's live blocks by age, an allocation the recently freed block of its size class
 * it reuses, and an adaptive binary range coder (LZMA's kind) codes every field with the
 * probabilities it has learnt so far; or zstd packs the model's symbols, where a program that
 * repeats its calls repeats them too. The model lives across the chunks of a thread: a packed
 * chunk can only be unpacked after every packed chunk of its thread before it, in file order,
 * which is the order the reader activates them in (reader.c).
 *
 * A packed chunk unpacks to exactly the bytes of the raw payload it came from, so everything
 * after the unpacking (the decoder, the merge, the spreading of times) is the reader's usual
 * path. */
#ifndef MALLET_TRACE_PACK_H
#define MALLET_TRACE_PACK_H

#include "format.h"

#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

typedef struct mallet_pack_model mallet_pack_model_t; /* one per thread of a file */

mallet_pack_model_t *mallet_pack_model_new(void); /* NULL: out of memory */
void mallet_pack_model_free(mallet_pack_model_t *m);

/* A growable output buffer (the packer's). */
typedef struct mallet_pack_buf {
    uint8_t *p;
    size_t len, cap;
    int oom;
} mallet_pack_buf_t;

/* Packs one EVENTS chunk's raw payload (count events) with m, appending the packed payload to
 * out, in the smallest of its forms (zstd's at level zlevel). Returns 1
 * packed, 0 not packed (the payload is not as the recorder's encoder writes it, or holds no
 * event: keep the chunk as it is; m is unchanged), -1 out of memory. */
int mallet_pack_chunk(mallet_pack_model_t *m, const uint8_t *raw, size_t raw_len, uint32_t count,
                      int zlevel, mallet_pack_buf_t *out);

/* Unpacks a packed payload [in, in + in_len) of a chunk holding count events whose raw payload
 * is raw_len bytes, with m (its thread's model), into out (raw_len + MALLET_EVENT_MAX_SIZE bytes).
 * dctx: a zstd decompression context kept by the caller (made here at first need). Returns 0, or
 * -1 with *why saying what is wrong: the input is never trusted. */
int mallet_unpack_chunk(mallet_pack_model_t *m, ZSTD_DCtx **dctx, const uint8_t *in, size_t in_len,
                        uint32_t count, uint8_t *out, size_t raw_len, const char **why);

/* What mallet_pack_file did: the file's bytes before and after, and the events it packed. */
typedef struct mallet_pack_stats {
    uint64_t in_bytes, out_bytes, events;
} mallet_pack_stats_t;

/* Writes the trace read from in to out (in_path and out_path: their names in messages), its
 * EVENTS chunks packed,
 * every other chunk (and the bytes of a chunk cut by a crash) as it is; zlevel as for
 * mallet_pack_chunk. 0, or -1 with a message in err. Not a check of the trace: a chunk that
 * does not decode is kept as it is, for the reader to report (the CLI reads both files back). */
int mallet_pack_file(int in, const char *in_path, int out, const char *out_path, int zlevel,
                     mallet_pack_stats_t *st, char *err, size_t errlen);

#endif
