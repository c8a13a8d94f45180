/* The replay-ready form: slots follow the live blocks, each thread gets its own stream, an op on
 * a block another thread made waits for that op, and ops that cannot be replayed (double frees,
 * frees of unknown pointers, failed calls) are skipped and counted. Traces are built with the
 * trace writer, so every answer is known. */
#include "check.h"
#include "replay/prepare.h"
#include "trace/writer.h"

#include <stdlib.h>
#include <unistd.h>

static char path[256];
static mallet_writer_t *w;
static uint64_t clock_;

static void ev(uint32_t tid, uint8_t op, uint64_t ptr, uint64_t old, uint64_t size, int failed)
{
    mallet_event_t e = {.op = op, .tid = tid, .ptr = ptr, .old_ptr = old, .size = size,
                        .failed = (uint8_t)failed, .callsite = 0x400000 + op};
    clock_ += 100;
    e.free_cycles = clock_ - 10;
    e.cycles = clock_;
    CHECK(mallet_writer_event(w, &e) == 0);
}

static void begin(void)
{
    char err[256];
    const char *t = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/mallet-test-prepare-%d.mtrace", t && *t ? t : "/tmp", (int)getpid());
    w = mallet_writer_open(path, NULL, 0, err, sizeof err);
    CHECK(w != NULL);
    clock_ = 1000;
}

static int prepare(mallet_prepared_t *p)
{
    char err[512];
    CHECK(mallet_writer_close(w, 1) == 0);
    const char *paths[] = {path};
    mallet_reader_t *r = mallet_reader_open(paths, 1, err, sizeof err);
    CHECK(r != NULL);
    if (!r) return -1;
    int rc = mallet_prepare(r, 0, p, err, sizeof err);
    if (rc) fprintf(stderr, "prepare: %s\n", err);
    mallet_reader_close(r);
    unlink(path);
    return rc;
}

static void test_one_thread(void)
{
    begin();
    ev(1, MALLET_OP_MALLOC, 0xa0, 0, 10, 0);
    ev(1, MALLET_OP_MALLOC, 0xb0, 0, 20, 0);
    ev(1, MALLET_OP_FREE, 0xa0, 0, 0, 0);
    ev(1, MALLET_OP_MALLOC, 0xa0, 0, 30, 0); /* the address again: a new block */
    ev(1, MALLET_OP_FREE, 0xb0, 0, 0, 0);
    ev(1, MALLET_OP_FREE, 0xa0, 0, 0, 0);
    ev(1, MALLET_OP_FREE, 0, 0, 0, 0);       /* free(NULL): a call, replayed */
    ev(1, MALLET_OP_FREE, 0xdead, 0, 0, 0);  /* never allocated: skipped */
    ev(1, MALLET_OP_FREE, 0xb0, 0, 0, 0);    /* double free: skipped */
    ev(1, MALLET_OP_MALLOC, 0, 0, 1ull << 60, 1); /* failed: skipped */
    mallet_prepared_t p;
    if (prepare(&p)) return;
    CHECK_EQ(p.nthreads, 1);
    CHECK_EQ(p.ops, 7);
    CHECK_EQ(p.threads[0].nops, 7);
    CHECK_EQ(p.skipped, 2);
    CHECK_EQ(p.failed_allocs, 1);
    CHECK_EQ(p.deps, 0);
    CHECK_EQ(p.peak_live_blocks, 2);
    CHECK_EQ(p.nslots, 2);
    const mallet_rop_t *o = p.threads[0].ops;
    CHECK(o[0].kind == MALLET_OP_MALLOC && o[0].size == 10);
    CHECK(o[2].kind == MALLET_OP_FREE && o[2].slot == o[0].slot);
    CHECK(o[3].slot == o[0].slot);   /* the slot freed just before is reused */
    CHECK(o[4].slot == o[1].slot);
    CHECK(o[6].kind == MALLET_OP_FREE && o[6].slot == MALLET_NO_SLOT);
    for (int i = 0; i < 7; i++) CHECK(o[i].dep_thread == MALLET_NO_DEP);
    mallet_prepared_free(&p);
}

static void test_cross_thread(void)
{
    begin();
    ev(1, MALLET_OP_MALLOC, 0x100, 0, 8, 0);    /* T1 op 0 */
    ev(1, MALLET_OP_MALLOC, 0x200, 0, 8, 0);    /* T1 op 1 */
    ev(2, MALLET_OP_FREE, 0x100, 0, 0, 0);      /* T2 op 0: waits for T1 op 0 */
    ev(2, MALLET_OP_REALLOC, 0x300, 0x200, 64, 0); /* T2 op 1: waits for T1 op 1 */
    ev(1, MALLET_OP_FREE, 0x300, 0, 0, 0);      /* T1 op 2: waits for T2 op 1 */
    mallet_prepared_t p;
    if (prepare(&p)) return;
    CHECK_EQ(p.nthreads, 2);
    CHECK_EQ(p.ops, 5);
    CHECK_EQ(p.deps, 3);
    CHECK_EQ(p.skipped, 0);
    const mallet_rop_t *t1 = p.threads[0].ops, *t2 = p.threads[1].ops;
    CHECK(t2[0].kind == MALLET_OP_FREE && t2[0].dep_thread == 0 && t2[0].dep_op == 0);
    CHECK(t2[0].slot == t1[0].slot);
    CHECK(t2[1].kind == MALLET_OP_REALLOC && t2[1].dep_thread == 0 && t2[1].dep_op == 1);
    CHECK(t2[1].old_slot == t1[1].slot && t2[1].size == 64);
    CHECK(t1[2].dep_thread == 1 && t1[2].dep_op == 1 && t1[2].slot == t2[1].slot);
    /* a slot freed by T2 goes to T2's pool: no slot is shared by two threads without a wait */
    CHECK(t2[1].slot != t1[0].slot || t2[1].dep_thread != MALLET_NO_DEP);
    mallet_prepared_free(&p);
}

static void test_realloc_cases(void)
{
    begin();
    ev(1, MALLET_OP_MALLOC, 0x10, 0, 8, 0);
    ev(1, MALLET_OP_REALLOC, 0x10, 0x10, 16, 0);    /* in place */
    ev(1, MALLET_OP_REALLOC, 0x20, 0x10, 32, 0);    /* moves */
    ev(1, MALLET_OP_REALLOC, 0, 0x20, 1ull << 60, 1); /* fails: the block stays */
    ev(1, MALLET_OP_REALLOC, 0, 0x20, 0, 0);        /* realloc(p, 0): frees it */
    ev(1, MALLET_OP_REALLOC, 0x40, 0, 24, 0);       /* realloc(NULL, n): allocates */
    ev(1, MALLET_OP_REALLOC, 0x50, 0x999, 24, 0);   /* unknown pointer: allocates anew */
    ev(1, MALLET_OP_FREE, 0x40, 0, 0, 0);
    ev(1, MALLET_OP_FREE, 0x50, 0, 0, 0);
    mallet_prepared_t p;
    if (prepare(&p)) return;
    CHECK_EQ(p.ops, 8);
    CHECK_EQ(p.failed_allocs, 1);
    CHECK_EQ(p.skipped, 1);
    const mallet_rop_t *o = p.threads[0].ops;
    CHECK(o[1].kind == MALLET_OP_REALLOC && o[1].old_slot == o[0].slot && o[1].slot != o[0].slot);
    CHECK(o[2].old_slot == o[1].slot);
    CHECK(o[3].kind == MALLET_OP_REALLOC && o[3].old_slot == o[2].slot && o[3].slot == MALLET_NO_SLOT);
    CHECK(o[4].kind == MALLET_OP_REALLOC && o[4].old_slot == MALLET_NO_SLOT);
    CHECK(o[5].kind == MALLET_OP_MALLOC && o[5].size == 24);
    CHECK(o[6].slot == o[4].slot && o[7].slot == o[5].slot);
    CHECK(p.nslots <= 3);
    mallet_prepared_free(&p);
}

static void test_slots_follow_live_blocks(void)
{
    begin();
    /* 20000 blocks, never more than 3 live at once, at ever new addresses */
    for (uint64_t i = 0; i < 20000; i++) {
        ev(1, MALLET_OP_MALLOC, 0x100000 + 16 * i, 0, 16, 0);
        if (i >= 2) ev(1, MALLET_OP_FREE, 0x100000 + 16 * (i - 2), 0, 0, 0);
    }
    mallet_prepared_t p;
    if (prepare(&p)) return;
    CHECK_EQ(p.ops, 20000 + 19998);
    CHECK_EQ(p.peak_live_blocks, 3);
    CHECK_EQ(p.nslots, 3);
    mallet_prepared_free(&p);
}

int main(void)
{
    test_one_thread();
    test_cross_thread();
    test_realloc_cases();
    test_slots_follow_live_blocks();
    return CHECK_DONE();
}
