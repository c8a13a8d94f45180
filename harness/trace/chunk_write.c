/* See chunk_write.h. No malloc here: the zstd context is caller-provided (the recorder builds
 * static ones in mmap'd memory). */
#include "chunk_write.h"

#include "../platform/platform.h"

#include <errno.h>
#include <zstd.h>

size_t mallet_chunk_scratch_size(size_t raw_len)
{
    return ZSTD_compressBound(raw_len);
}

int mallet_chunk_write(int fd, mallet_chunk_header_t *h, const uint8_t *raw, size_t raw_len,
                       ZSTD_CCtx *cctx, int level, uint8_t *scratch, size_t scratch_cap)
{
    const uint8_t *payload = raw;
    size_t disk = raw_len;
    h->codec = MALLET_CODEC_RAW;
    if (raw_len > MALLET_CHUNK_MAX_SIZE) return -EFBIG;
    if (cctx && scratch && raw_len >= 64) {
        size_t n = ZSTD_compressCCtx(cctx, scratch, scratch_cap, raw, raw_len, level);
        if (!ZSTD_isError(n) && n < raw_len) {
            payload = scratch;
            disk = n;
            h->codec = MALLET_CODEC_ZSTD;
        }
    }
    h->disk_size = (uint32_t)disk;
    h->raw_size = (uint32_t)raw_len;
    h->payload_hash = mallet_hash32(payload, disk);
    h->clock_cycles = mallet_cycles();
    h->clock_ns = mallet_now_ns();
    uint8_t hb[MALLET_CHUNK_HEADER_SIZE];
    mallet_chunk_header_pack(hb, h);
    return mallet_write2(fd, hb, sizeof hb, payload, disk);
}

static uint8_t *meta_put(uint8_t *p, uint8_t *end, uint8_t key, const void *val, size_t len)
{
    if (!p || (size_t)(end - p) < len + 11) return NULL;
    *p++ = key;
    p = mallet_put_varint(p, len);
    memcpy(p, val, len);
    return p + len;
}

static uint8_t *meta_put_num(uint8_t *p, uint8_t *end, uint8_t key, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = (size_t)(mallet_put_varint(tmp, v) - tmp);
    return meta_put(p, end, key, tmp, n);
}

size_t mallet_meta_encode(uint8_t *out, size_t cap, const mallet_meta_t *m)
{
    uint8_t *p = out, *end = out + cap;
    p = meta_put_num(p, end, MALLET_META_PID, m->pid);
    p = meta_put_num(p, end, MALLET_META_PPID, m->ppid);
    p = meta_put_num(p, end, MALLET_META_START_REALTIME_NS, m->start_realtime_ns);
    p = meta_put_num(p, end, MALLET_META_START_NS, m->start_ns);
    p = meta_put_num(p, end, MALLET_META_START_CYCLES, m->start_cycles);
    p = meta_put_num(p, end, MALLET_META_PARENT_TRACE, (uint64_t)m->forked);
    if (m->level >= 0)
        p = meta_put_num(p, end, MALLET_META_CODEC_LEVEL, (uint64_t)m->level);
    else
        p = meta_put_num(p, end, MALLET_META_CODEC_FAST_LEVEL, (uint64_t)(-(int64_t)m->level));
    if (m->cycles_per_sec) p = meta_put_num(p, end, MALLET_META_CYCLES_PER_SEC, m->cycles_per_sec);
    if (m->thread_exits) p = meta_put_num(p, end, MALLET_META_THREAD_EXITS, 1);
    if (m->fork_end_cycles) p = meta_put_num(p, end, MALLET_META_FORK_END_CYCLES, m->fork_end_cycles);
    if (m->cmdline) p = meta_put(p, end, MALLET_META_CMDLINE, m->cmdline, m->cmdline_len);
    if (m->exe) p = meta_put(p, end, MALLET_META_EXE, m->exe, strlen(m->exe));
    return p ? (size_t)(p - out) : 0;
}
