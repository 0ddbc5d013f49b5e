/* Unit tests for src/util/util.c: eb_time_rfc3339 against glibc's gmtime_r
 * (the formatter it replaced) on edge dates and a million seeded random
 * times, over the whole range gmtime_r represents. */
#define _GNU_SOURCE
#include "test.h"
#include "util/util.h"

#include <stdint.h>
#include <stdio.h>
#include <time.h>

static void reference(int64_t epoch_s, char out[21])
{
    time_t t = (time_t)epoch_s;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(out, 21, "1970-01-01T00:00:00Z");
        return;
    }
    snprintf(out, 21, "%04u-%02u-%02uT%02u:%02u:%02uZ", (uint32_t)((long long)tm.tm_year + 1900) % 10000u,
             (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u,
             (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u);
}

static int same(int64_t t)
{
    char a[21], b[21];
    eb_time_rfc3339(t, a);
    reference(t, b);
    if (strcmp(a, b) != 0) {
        fprintf(stderr, "  t=%lld: got %s, gmtime_r %s\n", (long long)t, a, b);
        return 0;
    }
    return 1;
}

static void test_rfc3339_edges(void)
{
    char out[21];
    eb_time_rfc3339(0, out);
    CHECK_STR(out, "1970-01-01T00:00:00Z");
    eb_time_rfc3339(1763740800, out);
    CHECK_STR(out, "2025-11-21T16:00:00Z");
    eb_time_rfc3339(951782400, out); /* a leap day in a year divisible by 400 */
    CHECK_STR(out, "2000-02-29T00:00:00Z");
    eb_time_rfc3339(-1, out);
    CHECK_STR(out, "1969-12-31T23:59:59Z");
    eb_time_rfc3339(253402300799, out);
    CHECK_STR(out, "9999-12-31T23:59:59Z");
    const int64_t edges[] = {0, 1, -1, 59, 60, 86399, 86400, -86400, -86401, 68169600, 951868799, 951868800,
                             4107542399, 4107542400, 253402300799, 253402300800, -62135596800, -62135596801,
                             -62167219200, -62167219201, 67768036191676799LL, 67768036191676800LL,
                             -67768040609740800LL, -67768040609740801LL, INT64_MAX, INT64_MIN};
    int bad = 0;
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        bad += !same(edges[i]);
    CHECK(bad == 0);
}

static void test_rfc3339_random(void)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int bad = 0;
    for (int i = 0; i < 1000000 && bad < 5; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t t;
        switch (i % 3) {
        case 0: t = (int64_t)(x % 8000000000ull) - 2000000000; break;   /* around now, both signs */
        case 1: t = (int64_t)(x % 600000000000ull) - 300000000000; break; /* years -7500..11500 */
        default: t = (int64_t)(x % 135536016843057600ull) - 67768040609740800LL; break; /* all of gmtime_r */
        }
        bad += !same(t);
    }
    CHECK(bad == 0);
}

int main(void)
{
    RUN(test_rfc3339_edges);
    RUN(test_rfc3339_random);
    return TEST_REPORT();
}
