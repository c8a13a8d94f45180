/* Shared pieces of the format: op names, the chunk-header codec and the payload hash. */
#include "format.h"

#include <stdarg.h>
#include <stdio.h>

static const char *const op_names[MALLET_OP_COUNT_] = {
    [MALLET_OP_MALLOC] = "malloc",
    [MALLET_OP_CALLOC] = "calloc",
    [MALLET_OP_REALLOC] = "realloc",
    [MALLET_OP_REALLOCARRAY] = "reallocarray",
    [MALLET_OP_FREE] = "free",
    [MALLET_OP_POSIX_MEMALIGN] = "posix_memalign",
    [MALLET_OP_ALIGNED_ALLOC] = "aligned_alloc",
    [MALLET_OP_MEMALIGN] = "memalign",
    [MALLET_OP_VALLOC] = "valloc",
    [MALLET_OP_PVALLOC] = "pvalloc",
    [MALLET_OP_RSS] = "rss",
};

int mallet_errorf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

const char *mallet_op_name(unsigned op)
{
    return op < MALLET_OP_COUNT_ && op_names[op] ? op_names[op] : "?";
}

/* murmur3's 64-bit finalizer: every input bit reaches every output bit. */
static uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

uint32_t mallet_hash32(const void *data, size_t len)
{
    /* A Fletcher-style sum over 64-bit words: it runs over every chunk the recorder writes, so
     * it must cost far less than writing the bytes; it catches flipped, lost and swapped words,
     * which is what a damaged file looks like. Not a defence against deliberate forgery. */
    const uint8_t *p = data;
    uint64_t a = 0x9e3779b97f4a7c15ull ^ len, b = 0xc2b2ae3d27d4eb4full;
    while (len >= 8) {
        a += mallet_get_u64(p);
        b += a;
        p += 8;
        len -= 8;
    }
    uint64_t tail = 0;
    for (size_t i = 0; i < len; i++) tail |= (uint64_t)p[i] << (8 * i);
    a += tail;
    b += a;
    /* Mix a fully before b joins it: a flip in the top bits of a word moves a and b by the same
     * multiple of 2^63 (or 2^62...), so a linear combination of the two can cancel it. */
    return (uint32_t)fmix64(fmix64(a) ^ b);
}

void mallet_chunk_header_pack(uint8_t out[MALLET_CHUNK_HEADER_SIZE], const mallet_chunk_header_t *h)
{
    mallet_put_u32(out + 0, MALLET_CHUNK_MAGIC);
    out[4] = h->type;
    out[5] = h->codec;
    out[6] = (uint8_t)h->flags;
    out[7] = (uint8_t)(h->flags >> 8);
    mallet_put_u32(out + 8, h->tid);
    mallet_put_u32(out + 12, h->thread);
    mallet_put_u32(out + 16, h->disk_size);
    mallet_put_u32(out + 20, h->raw_size);
    mallet_put_u32(out + 24, h->count);
    mallet_put_u32(out + 28, 0);
    mallet_put_u64(out + 32, h->clock_cycles);
    mallet_put_u64(out + 40, h->clock_ns);
    mallet_put_u64(out + 48, h->first_cycles);
    mallet_put_u64(out + 56, h->last_cycles);
    mallet_put_u64(out + 64, h->first_seq);
    mallet_put_u32(out + 72, h->payload_hash);
    mallet_put_u32(out + 76, mallet_hash32(out, 76));
}

int mallet_chunk_header_unpack(const uint8_t in[MALLET_CHUNK_HEADER_SIZE], mallet_chunk_header_t *h)
{
    if (mallet_get_u32(in) != MALLET_CHUNK_MAGIC) return -1;
    if (mallet_get_u32(in + 76) != mallet_hash32(in, 76)) return -2;
    h->type = in[4];
    h->codec = in[5];
    h->flags = (uint16_t)(in[6] | in[7] << 8);
    h->tid = mallet_get_u32(in + 8);
    h->thread = mallet_get_u32(in + 12);
    h->disk_size = mallet_get_u32(in + 16);
    h->raw_size = mallet_get_u32(in + 20);
    h->count = mallet_get_u32(in + 24);
    h->clock_cycles = mallet_get_u64(in + 32);
    h->clock_ns = mallet_get_u64(in + 40);
    h->first_cycles = mallet_get_u64(in + 48);
    h->last_cycles = mallet_get_u64(in + 56);
    h->first_seq = mallet_get_u64(in + 64);
    h->payload_hash = mallet_get_u32(in + 72);
    if (h->disk_size > MALLET_CHUNK_MAX_SIZE || h->raw_size > MALLET_CHUNK_MAX_SIZE) return -3;
    if (h->codec > MALLET_CODEC_PACKED) return -3;
    if (h->codec == MALLET_CODEC_PACKED && h->type != MALLET_CHUNK_EVENTS) return -3;
    if (h->codec == MALLET_CODEC_RAW && h->disk_size != h->raw_size) return -3;
    if (h->count > h->raw_size) return -3;
    /* no events, no payload: a THREAD_EXIT chunk with nothing left to write is only a header */
    if (h->type == MALLET_CHUNK_EVENTS && !h->count && (h->raw_size || h->disk_size)) return -3;
    if (h->first_seq > UINT64_MAX - h->count) return -3;
    return 0;
}

void mallet_file_header_pack(uint8_t out[MALLET_FILE_HEADER_SIZE])
{
    memcpy(out, MALLET_TRACE_MAGIC, 8);
    mallet_put_u32(out + 8, MALLET_TRACE_VERSION);
    mallet_put_u32(out + 12, MALLET_FILE_HEADER_SIZE);
}
