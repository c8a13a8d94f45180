/* MALLET_* environment variables. Read once at start, with getenv only (no allocation). */
#include "record.h"

#include <stdlib.h>
#include <string.h>

/* The decimal number s (at most max), or def if s is empty or not a number. */
static uint64_t parse_num(const char *s, uint64_t def, uint64_t max)
{
    if (!s || !*s) return def;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return def;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > max) return max;
    }
    return v;
}

static uint64_t env_num(const char *name, uint64_t def, uint64_t max)
{
    return parse_num(getenv(name), def, max);
}

/* A zstd level: "N" (0..19; 0: none) or "-N" (zstd's fast levels, down to -7); else def. */
static int env_level(const char *name, int def)
{
    const char *s = getenv(name);
    if (s && *s == '-') {
        uint64_t v = parse_num(s + 1, UINT64_MAX, 7);
        return v == UINT64_MAX ? def : -(int)v;
    }
    uint64_t v = parse_num(s, UINT64_MAX, 19);
    return v == UINT64_MAX ? def : (int)v;
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
    /* 100 us: a fast single-threaded phase stores a time about every 1,000 events instead of
     * every 16, and its trace is about half the size (sqlite3's: docs/PERFORMANCE.md) */
    o->time_step_us = (uint32_t)env_num("MALLET_TIME_STEP_US", 100, 1000000);
    o->disabled = env_num("MALLET_DISABLE", 0, 1) != 0;
}
