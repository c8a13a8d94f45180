/* MALLET_* environment variables. Read once at start, with getenv only (no allocation). */
#include "record.h"

#include <stdlib.h>
#include <string.h>

static uint64_t env_num(const char *name, uint64_t def, uint64_t max)
{
    const char *s = getenv(name);
    if (!s || !*s) return def;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return def;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > max) return max;
    }
    return v;
}

/* A zstd level: "N" (0..19; 0: none) or "-N" (zstd's fast levels, down to -7); else def. */
static int env_level(const char *name, int def)
{
    const char *s = getenv(name);
    if (!s || !*s) return def;
    int neg = *s == '-', v = 0;
    const char *p = s + neg;
    if (!*p) return def;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return def;
        if (v < 100) v = v * 10 + (*p - '0');
    }
    if (neg) return v > 7 ? -7 : -v;
    return v > 19 ? 19 : v;
}

void mallet_opts_read(mallet_opts_t *o)
{
    const char *out = getenv("MALLET_OUTPUT");
    memset(o, 0, sizeof *o);
    if (out && strlen(out) < sizeof o->output) strcpy(o->output, out);
    o->root_ppid = (long)env_num("MALLET_ROOT_PPID", 0, 1u << 30);
    /* Default -1, zstd's fastest level but one: real programs' traces shrink 2-20x for no cost
     * that shows (level 1 shrinks them a little more and costs sqlite3 1% more), and a thread
     * whose chunks do not shrink writes raw ones for a while (tbuf.c). 0: every chunk raw. */
    o->level = env_level("MALLET_ZSTD_LEVEL", -1);
    /* 4 KiB .. 1 MiB: the reader's chunk limit is far above, the recorder stays below it. */
    uint64_t kb = env_num("MALLET_BUFFER_KB", 64, 1024);
    o->buffer_bytes = (size_t)(kb < 4 ? 4 : kb) << 10;
    o->flush_ms = env_num("MALLET_FLUSH_MS", 100, 1000000);
    o->rss_ms = env_num("MALLET_RSS_MS", 10, 1000000);
    /* 16: in a fast single-threaded phase the clock then costs ~1 ns per event instead of
     * ~12, and times are exact to within 16 events (~16 us at most). */
    o->stamp_every = (uint32_t)env_num("MALLET_STAMP_EVERY", 16, 1u << 20);
    if (o->stamp_every == 0) o->stamp_every = 1;
    o->disabled = env_num("MALLET_DISABLE", 0, 1) != 0;
}
