/* Unit test of the owner table's entry codec (harness/record/owners.h): a claim's time reads back
 * never earlier than the claim, within 16 cycles, across the 2^48-cycle wrap of the stored time;
 * an entry never claimed reads as no time, and one from a past period never as more than 2^32
 * cycles ahead; tags do not bleed into times; nearby addresses share an entry, arenas 64 MiB
 * apart do not. */
#include "check.h"
#include "record/owners.h"

static void test_round_trip(void)
{
    const uint64_t period = 1ull << 48; /* cycles the stored time covers before it wraps */
    const uint64_t claims[] = {16, 1000, 123456789, period - 5, period + 7, 5 * period + 12345,
                               (1ull << 62) + 3};
    for (unsigned i = 0; i < sizeof claims / sizeof claims[0]; i++) {
        uint64_t c = claims[i];
        for (uint32_t tag = 1; tag <= MALLET_TAG_ANON; tag += MALLET_TAG_ANON / 3) {
            uint64_t e = mallet_owner_entry(tag, c);
            CHECK_EQ(e >> MALLET_TAG_SHIFT, tag);
            /* read back right after the claim, a second later, and 14 hours later */
            const uint64_t laters[] = {c, c + 1, c + 3000000000ull, c + (period >> 1) - 64};
            for (unsigned j = 0; j < 4; j++) {
                uint64_t t = mallet_owner_time(e, laters[j]);
                CHECK(t >= c && t < c + 16);
            }
            /* a reader slightly behind the claim (another core's clock) still gets it */
            uint64_t t = mallet_owner_time(e, c - 1000);
            CHECK(c < 1000 || (t >= c && t < c + 16));
        }
    }
    CHECK_EQ(mallet_owner_time(0, 123456789), 0);
    /* an entry claimed a whole period (or more) before the reading is read back in the wrong
     * period: in the past, or less than 2^32 cycles ahead, never further */
    uint64_t e = mallet_owner_entry(7, period - 1000);
    CHECK(mallet_owner_time(e, 2 * period + 5000) <= 2 * period + 5000);
    e = mallet_owner_entry(7, 1000);
    CHECK(mallet_owner_time(e, period + 500) <= period + 500 + (1ull << 32));
    /* an entry whose time is ahead of the reading by more than a second is misread, not trusted */
    e = mallet_owner_entry(3, 10ull << 40);
    CHECK_EQ(mallet_owner_time(e, 9ull << 40), 0);
}

static void test_index(void)
{
    uintptr_t a = 0x7f1234560000u;
    CHECK_EQ(mallet_owner_index(a), mallet_owner_index(a + 0xfff0));
    CHECK(mallet_owner_index(a) < (1u << MALLET_OWNER_BITS));
    unsigned same = 0; /* 64 arenas 64 MiB apart: at most a few share an entry */
    for (unsigned i = 1; i < 64; i++)
        same += mallet_owner_index(a) == mallet_owner_index(a + ((uintptr_t)i << 26));
    CHECK(same <= 1);
}

int main(void)
{
    test_round_trip();
    test_index();
    return CHECK_DONE();
}
