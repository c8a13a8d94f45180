/* A trace file packed (pack.h): every chunk copied as it is, but the EVENTS chunks, which each
 * thread's model codes again, in file order (the order the reader unpacks them in). */
#define _GNU_SOURCE
#include "pack.h"

#include "platform/platform.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct thread_model {
    uint32_t thread;
    mallet_pack_model_t *m;
} thread_model_t;

typedef struct packer {
    const char *in_path, *out_path;
    int in, out;
    int level;
    thread_model_t *models;
    size_t nmodels;
    ZSTD_DCtx *dctx;
    mallet_pack_buf_t buf;
    mallet_pack_stats_t *st;
    char *err;
    size_t errlen;
} packer_t;

/* A write's result (0 or -errno, platform.h): 0, or -1 after saying why. */
static int written(packer_t *pk, int r)
{
    return r ? mallet_errorf(pk->err, pk->errlen, "%s: %s", pk->out_path, strerror(-r)) : 0;
}

static mallet_pack_model_t *model_of(packer_t *pk, uint32_t thread)
{
    for (size_t i = 0; i < pk->nmodels; i++)
        if (pk->models[i].thread == thread) return pk->models[i].m;
    thread_model_t *v = realloc(pk->models, (pk->nmodels + 1) * sizeof *v);
    if (!v) return NULL;
    pk->models = v;
    mallet_pack_model_t *m = mallet_pack_model_new();
    if (m) v[pk->nmodels++] = (thread_model_t){thread, m};
    return m;
}

/* Writes the chunk (header hb, unpacked into h; payload p) packed if it can be, else as it is.
 * 0, or -1 after saying why. */
static int pack_one(packer_t *pk, const uint8_t hb[MALLET_CHUNK_HEADER_SIZE],
                    mallet_chunk_header_t h, const uint8_t *p, uint64_t off)
{
    if (h.type == MALLET_CHUNK_EVENTS && h.count) {
        const uint8_t *raw = p;
        uint8_t *z = NULL;
        if (h.codec == MALLET_CODEC_ZSTD) {
            if (!pk->dctx && !(pk->dctx = ZSTD_createDCtx()))
                return mallet_errorf(pk->err, pk->errlen, "out of memory"), -1;
            z = malloc(h.raw_size ? h.raw_size : 1);
            size_t n = z ? ZSTD_decompressDCtx(pk->dctx, z, h.raw_size, p, h.disk_size) : 0;
            if (!z || ZSTD_isError(n) || n != h.raw_size) {
                free(z);
                return mallet_errorf(pk->err, pk->errlen,
                                     "%s: corrupt chunk at offset %" PRIu64
                                     ": zstd payload does not decompress",
                                     pk->in_path, off),
                       -1;
            }
            raw = z;
        }
        mallet_pack_model_t *m = model_of(pk, h.thread);
        pk->buf.len = 0;
        int k = m ? mallet_pack_chunk(m, raw, h.raw_size, h.count, pk->level, &pk->buf) : -1;
        free(z);
        if (k < 0) return mallet_errorf(pk->err, pk->errlen, "out of memory"), -1;
        if (k > 0) {
            uint8_t nh[MALLET_CHUNK_HEADER_SIZE];
            h.codec = MALLET_CODEC_PACKED;
            h.disk_size = (uint32_t)pk->buf.len;
            h.payload_hash = mallet_hash32(pk->buf.p, pk->buf.len);
            mallet_chunk_header_pack(nh, &h);
            pk->st->events += h.count;
            pk->st->out_bytes += sizeof nh + pk->buf.len;
            return written(pk, mallet_write2(pk->out, nh, sizeof nh, pk->buf.p, pk->buf.len));
        }
    }
    pk->st->out_bytes += MALLET_CHUNK_HEADER_SIZE + (uint64_t)h.disk_size;
    return written(pk, mallet_write2(pk->out, hb, MALLET_CHUNK_HEADER_SIZE, p, h.disk_size));
}

static int copy_chunks(packer_t *pk)
{
    struct stat sb;
    if (fstat(pk->in, &sb))
        return mallet_errorf(pk->err, pk->errlen, "%s: %s", pk->in_path, strerror(errno)), -1;
    uint64_t size = (uint64_t)sb.st_size, off = MALLET_FILE_HEADER_SIZE;
    uint8_t fh[MALLET_FILE_HEADER_SIZE];
    if (size < sizeof fh || mallet_pread_all(pk->in, fh, sizeof fh, 0) ||
        memcmp(fh, MALLET_TRACE_MAGIC, 8))
        return mallet_errorf(pk->err, pk->errlen, "%s: not a mallet trace", pk->in_path), -1;
    uint32_t version = mallet_get_u32(fh + 8), hsize = mallet_get_u32(fh + 12);
    if (version < MALLET_TRACE_VERSION_OLDEST || version > MALLET_TRACE_VERSION)
        return mallet_errorf(pk->err, pk->errlen, "%s: %s (version %u)", pk->in_path,
                             version == MALLET_TRACE_VERSION_PACKED ? "packed already"
                                                                    : "unsupported trace version",
                             version),
               -1;
    if (hsize != MALLET_FILE_HEADER_SIZE)
        return mallet_errorf(pk->err, pk->errlen, "%s: corrupt file header (header size %u)",
                             pk->in_path, hsize),
               -1;
    mallet_put_u32(fh + 8, MALLET_TRACE_VERSION_PACKED);
    pk->st->in_bytes = size;
    pk->st->out_bytes = sizeof fh;
    if (written(pk, mallet_write_all(pk->out, fh, sizeof fh))) return -1;
    uint8_t *payload = NULL;
    int rc = 0;
    while (!rc && size - off >= MALLET_CHUNK_HEADER_SIZE) {
        uint8_t hb[MALLET_CHUNK_HEADER_SIZE];
        mallet_chunk_header_t h;
        if (mallet_pread_all(pk->in, hb, sizeof hb, off) || mallet_chunk_header_unpack(hb, &h)) {
            rc = mallet_errorf(pk->err, pk->errlen, "%s: corrupt chunk header at offset %" PRIu64,
                               pk->in_path, off);
            break;
        }
        if (size - off - sizeof hb < h.disk_size) break; /* cut: copied below as it is */
        uint8_t *np = realloc(payload, h.disk_size ? h.disk_size : 1);
        if (!np) {
            rc = mallet_errorf(pk->err, pk->errlen, "out of memory");
            break;
        }
        payload = np;
        if (mallet_pread_all(pk->in, payload, h.disk_size, off + sizeof hb) ||
            mallet_hash32(payload, h.disk_size) != h.payload_hash) {
            rc = mallet_errorf(pk->err, pk->errlen,
                               "%s: corrupt chunk at offset %" PRIu64 ": payload checksum mismatch",
                               pk->in_path, off);
            break;
        }
        rc = pack_one(pk, hb, h, payload, off);
        off += sizeof hb + h.disk_size;
    }
    free(payload);
    /* The bytes of a chunk a crash cut: the packed file says it was cut, as the original does. */
    while (!rc && off < size) {
        uint8_t b[65536];
        size_t n = size - off < sizeof b ? (size_t)(size - off) : sizeof b;
        if (mallet_pread_all(pk->in, b, n, off))
            rc = mallet_errorf(pk->err, pk->errlen, "%s: read error", pk->in_path);
        else
            rc = written(pk, mallet_write_all(pk->out, b, n));
        off += n, pk->st->out_bytes += n;
    }
    return rc;
}

int mallet_pack_file(int in, const char *in_path, int out, const char *out_path, int level,
                     mallet_pack_stats_t *st, char *err, size_t errlen)
{
    packer_t pk = {.in_path = in_path,
                   .out_path = out_path,
                   .in = in,
                   .out = out,
                   .level = level,
                   .st = st,
                   .err = err,
                   .errlen = errlen};
    *st = (mallet_pack_stats_t){0};
    int rc = copy_chunks(&pk);
    for (size_t i = 0; i < pk.nmodels; i++)
        mallet_pack_model_free(pk.models[i].m);
    free(pk.models);
    free(pk.buf.p);
    ZSTD_freeDCtx(pk.dctx);
    return rc ? -1 : 0;
}
