/* The large-set indexes of a path's value matcher (numeric ranges beyond 8
 * per path: one-sided sorted lists, elementary intervals, the scan fallback;
 * many prefixes, suffixes and wildcards; many exact values) checked against
 * the reference interpreter, one rule per pattern, all in one machine. */
#include <ebridge/pattern.h>

#include "refimpl.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double pick_num(void)
{
    static const double vals[] = {-5, -1.5, -1, -0.5, 0, 0.25, 0.5, 1, 2, 2.5, 3, 7, 10, 100};
    return vals[next() % (sizeof vals / sizeof *vals)];
}

static void run(int nrules, int wide, int events)
{
    eb_machine *m = eb_machine_new();
    eb_pattern **pats = calloc((size_t)nrules, sizeof *pats);
    uint64_t *keys = calloc((size_t)nrules, sizeof *keys);
    static const char *ops_lo[] = {">", ">="}, *ops_hi[] = {"<", "<="};
    for (int i = 0; i < nrules; i++) {
        char buf[256];
        int kind = (int)(next() % 4);
        double a = pick_num(), b = pick_num();
        if (wide && kind == 3 && a == b)
            kind = 2;
        if (kind == 0) /* lower only */
            snprintf(buf, sizeof buf, "{\"n\": [{\"numeric\": [\"%s\", %g]}]}", ops_lo[next() % 2], a);
        else if (kind == 1) /* upper only */
            snprintf(buf, sizeof buf, "{\"n\": [{\"numeric\": [\"%s\", %g]}]}", ops_hi[next() % 2], a);
        else if (kind == 2) /* equality */
            snprintf(buf, sizeof buf, "{\"n\": [{\"numeric\": [\"=\", %g]}]}", a);
        else {
            double lo = a < b ? a : b, hi = a < b ? b : a;
            if (lo == hi)
                hi = lo + 1;
            snprintf(buf, sizeof buf, "{\"n\": [{\"numeric\": [\"%s\", %g, \"%s\", %g]}]}", ops_lo[next() % 2], lo,
                     ops_hi[next() % 2], hi);
        }
        eb_error err;
        CHECK(eb_pattern_compile(buf, strlen(buf), &pats[i], &err) == EB_OK);
        keys[i] = (uint64_t)i;
    }
    CHECK(eb_machine_add_batch(m, (size_t)nrules, keys, (const eb_pattern *const *)pats) == EB_OK);
    eb_snapshot *s = eb_machine_snapshot(m);
    eb_matcher *mt = eb_matcher_new();
    unsigned char *seen = calloc((size_t)nrules, 1);
    int bad = 0;
    for (int e = 0; e < events; e++) {
        char ev[128];
        double x = pick_num();
        if (next() % 3 == 0)
            x += 0.125;
        snprintf(ev, sizeof ev, "{\"n\": %g}", x);
        const uint64_t *got;
        size_t ng;
        eb_error err;
        CHECK(eb_match(mt, s, ev, strlen(ev), EB_MATCH_TRUSTED, &got, &ng, &err) == EB_OK);
        memset(seen, 0, (size_t)nrules);
        for (size_t k = 0; k < ng; k++)
            seen[got[k]] = 1;
        json_t *je = ref_parse(ev, strlen(ev));
        for (int i = 0; i < nrules; i++) {
            int want = ref_match(pats[i], je);
            if (want != seen[i] && bad++ < 5)
                fprintf(stderr, "rule %d on %s: machine %d, reference %d\n", i, ev, seen[i], want);
        }
        json_decref(je);
    }
    CHECK(bad == 0);
    free(seen);
    eb_matcher_free(mt);
    eb_snapshot_release(s);
    for (int i = 0; i < nrules; i++)
        eb_pattern_free(pats[i]);
    free(pats);
    free(keys);
    eb_machine_free(m);
}

static void test_ranges_small(void) { run(6, 0, 200); }
static void test_ranges_many(void) { run(300, 0, 400); }
static void test_ranges_many_wide(void) { run(3000, 1, 200); }

static void test_strings_many(void)
{
    /* prefixes, suffixes, anchored and unanchored wildcards, exact, EIC */
    eb_machine *m = eb_machine_new();
    enum { N = 600 };
    eb_pattern *pats[N];
    uint64_t keys[N];
    static const char *alpha = "abAB";
    for (int i = 0; i < N; i++) {
        char v[8], buf[200];
        int len = 1 + (int)(next() % 4);
        for (int k = 0; k < len; k++)
            v[k] = alpha[next() % 4];
        v[len] = 0;
        switch (next() % 7) {
        case 0: snprintf(buf, sizeof buf, "{\"s\": [{\"prefix\": \"%s\"}]}", v); break;
        case 1: snprintf(buf, sizeof buf, "{\"s\": [{\"suffix\": \"%s\"}]}", v); break;
        case 2: snprintf(buf, sizeof buf, "{\"s\": [{\"wildcard\": \"%s*%c\"}]}", v, alpha[next() % 4]); break;
        case 3: snprintf(buf, sizeof buf, "{\"s\": [{\"wildcard\": \"*%s*\"}]}", v); break;
        case 4: snprintf(buf, sizeof buf, "{\"s\": [\"%s\"]}", v); break;
        case 5: snprintf(buf, sizeof buf, "{\"s\": [{\"equals-ignore-case\": \"%s\"}]}", v); break;
        default: snprintf(buf, sizeof buf, "{\"s\": [{\"suffix\": {\"equals-ignore-case\": \"%s\"}}]}", v); break;
        }
        eb_error err;
        CHECK(eb_pattern_compile(buf, strlen(buf), &pats[i], &err) == EB_OK);
        keys[i] = (uint64_t)i;
    }
    CHECK(eb_machine_add_batch(m, N, keys, (const eb_pattern *const *)pats) == EB_OK);
    eb_snapshot *s = eb_machine_snapshot(m);
    eb_matcher *mt = eb_matcher_new();
    int bad = 0;
    for (int e = 0; e < 400; e++) {
        char v[8], ev[64];
        int len = (int)(next() % 6);
        for (int k = 0; k < len; k++)
            v[k] = alpha[next() % 4];
        v[len] = 0;
        snprintf(ev, sizeof ev, "{\"s\": \"%s\"}", v);
        const uint64_t *got;
        size_t ng;
        eb_error err;
        CHECK(eb_match(mt, s, ev, strlen(ev), 0, &got, &ng, &err) == EB_OK);
        unsigned char seen[N] = {0};
        for (size_t k = 0; k < ng; k++)
            seen[got[k]] = 1;
        json_t *je = ref_parse(ev, strlen(ev));
        for (int i = 0; i < N; i++)
            if (ref_match(pats[i], je) != seen[i] && bad++ < 5)
                fprintf(stderr, "rule %d on %s: machine %d\n", i, ev, seen[i]);
        json_decref(je);
    }
    CHECK(bad == 0);
    eb_matcher_free(mt);
    eb_snapshot_release(s);
    for (int i = 0; i < N; i++)
        eb_pattern_free(pats[i]);
    eb_machine_free(m);
}

int main(void)
{
    RUN(test_ranges_small);
    RUN(test_ranges_many);
    RUN(test_ranges_many_wide);
    RUN(test_strings_many);
    return TEST_REPORT();
}
