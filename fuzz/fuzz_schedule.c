/* libFuzzer target: eb_schedule_parse on arbitrary bytes (NUL-terminated
 * copy), then eb_schedule_next from a few instants derived from the input.
 *
 * Invariants: an accepted expression starts with "rate(" or "cron(" and ends
 * with ')'; a next time is -1 or strictly after `after`; cron times are whole
 * minutes in 1970..2199 and are fixed points (next(t - 1) == t); rate times are
 * created + k*period with k >= 1 and consecutive ones are one period apart. */
#include "core/schedule.h"
#include "fuzz_common.h"

static int64_t rd64(const uint8_t *d, size_t n, size_t at)
{
    uint64_t v = 0;
    for (size_t i = 0; i < 8; i++)
        v = (v << 8) | (n ? d[(at + i) % n] : 0);
    return (int64_t)v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    FUZZ_ASSERT(s != NULL);
    memcpy(s, data, size);
    s[size] = '\0';
    eb_schedule *sc = eb_schedule_parse(s);
    if (!sc) {
        free(s);
        return 0;
    }
    size_t len = strlen(s);
    int rate = strncmp(s, "rate(", 5) == 0;
    FUZZ_ASSERT(rate || strncmp(s, "cron(", 5) == 0);
    FUZZ_ASSERT(len > 6 && s[len - 1] == ')');

    static const int64_t fixed[] = {0, -1, 1, 59, 60, 1704164645, 4102444800 /* 2100 */,
                                    7258118399 /* 2199-12-31 23:59:59 */, INT64_MAX, INT64_MIN};
    int64_t afters[14];
    size_t na = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        afters[na++] = fixed[i];
    afters[na++] = rd64(data, size, 0) % 8000000000LL;           /* roughly 1716..2223 */
    afters[na++] = rd64(data, size, 3) % 8000000000LL;
    afters[na++] = rd64(data, size, 5);
    afters[na++] = (int64_t)((uint64_t)rd64(data, size, 7) >> 32); /* 1970..2106 */

    int64_t created = 1700000000;
    for (size_t i = 0; i < na; i++) {
        int64_t after = afters[i];
        int64_t t = eb_schedule_next(sc, created, after);
        if (t == -1)
            continue;
        FUZZ_ASSERT(t > after);
        if (rate) {
            FUZZ_ASSERT(t > created);
            int64_t p = eb_schedule_next(sc, created, created); /* created + period */
            FUZZ_ASSERT(p > created);
            int64_t period = p - created;
            FUZZ_ASSERT((t - created) % period == 0);
            FUZZ_ASSERT(after < created || t - after <= period);
            int64_t t2 = eb_schedule_next(sc, created, t);
            FUZZ_ASSERT(t2 == -1 || t2 == t + period);
        } else {
            FUZZ_ASSERT(t % 60 == 0);
            FUZZ_ASSERT(t >= 0 && t < 7258118400LL); /* < 2200-01-01 */
            FUZZ_ASSERT(eb_schedule_next(sc, created, t - 1) == t);
            int64_t t2 = eb_schedule_next(sc, created, t);
            FUZZ_ASSERT(t2 == -1 || t2 > t);
            /* nothing fires in (after, t): check the minute right after `after` */
            if (after >= 0 && after / 60 + 1 < t / 60)
                FUZZ_ASSERT(eb_schedule_next(sc, created, (after / 60 + 1) * 60) == t);
        }
    }
    /* Re-parsing is deterministic. */
    eb_schedule *again = eb_schedule_parse(s);
    FUZZ_ASSERT(again != NULL);
    FUZZ_ASSERT(eb_schedule_next(again, created, 1704164645) == eb_schedule_next(sc, created, 1704164645));
    eb_schedule_free(again);
    eb_schedule_free(sc);
    free(s);
    return 0;
}
