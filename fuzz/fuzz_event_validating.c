/* libFuzzer target: eb_match in validating mode (flags 0) on arbitrary bytes
 * against a fixed machine (fuzz_rules.h).
 *
 * Oracle: eb_match succeeds iff eb_json_check accepts the bytes (same depth
 * limit) and the top-level value is an object.  Matched keys are rule keys,
 * each at most once, and matching is deterministic (a second call on another
 * matcher gives the same set, and so does the machine that looks strings up
 * after the read). */
#include "fuzz_rules.h"

static eb_matcher *mt1, *mt2;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const eb_snapshot *s = fuzz_rules_snapshot();
    if (!mt1) {
        mt1 = eb_matcher_new();
        mt2 = eb_matcher_new();
        FUZZ_ASSERT(mt1 && mt2);
    }
    const char *json = (const char *)data;

    eb_error cerr;
    eb_status cst = eb_json_check(json, size, EB_DEFAULT_MAX_DEPTH, &cerr);
    FUZZ_ASSERT(cst == EB_OK || cst == EB_ERR_EVENT);
    int want_ok = cst == EB_OK && fuzz_top_is_object(data, size);

    const uint64_t *keys = NULL;
    size_t n = 0;
    eb_error err;
    memset(&err, 0x55, sizeof err);
    eb_status st = eb_match(mt1, s, json, size, 0, &keys, &n, &err);
    if ((st == EB_OK) != want_ok) {
        fprintf(stderr, "eb_match -> %d (%s), eb_json_check -> %d (%s), top-level object: %d\n", (int)st,
                st == EB_OK ? "" : err.message, (int)cst, cst == EB_OK ? "" : cerr.message,
                fuzz_top_is_object(data, size));
        abort();
    }
    if (st != EB_OK) {
        FUZZ_ASSERT(st == EB_ERR_EVENT);
        FUZZ_ASSERT(fuzz_msg_ok(&err));
        FUZZ_ASSERT(err.offset <= size);
        return 0;
    }
    fuzz_check_keys(keys, n, FUZZ_NRULES, fuzz_rule_key_ok);

    uint64_t first[FUZZ_NRULES];
    if (n)
        memcpy(first, keys, n * sizeof *keys);
    size_t n1 = n;
    /* Determinism: a fresh matcher and a reused one agree. */
    FUZZ_ASSERT(eb_match(mt2, s, json, size, 0, &keys, &n, NULL) == EB_OK);
    FUZZ_ASSERT(n == n1);
    uint64_t second[FUZZ_NRULES];
    if (n)
        memcpy(second, keys, n * sizeof *keys);
    qsort(first, n1, sizeof *first, fuzz_cmp_u64);
    qsort(second, n, sizeof *second, fuzz_cmp_u64);
    FUZZ_ASSERT(n == 0 || memcmp(first, second, n * sizeof *first) == 0);
    /* Looking strings up after the read gives the same rules. */
    fuzz_same_keys(mt2, s, fuzz_rules_snapshot_deferred(), json, size, 0);

    /* Trusting mode must at least be memory-safe on valid input, too. */
    st = eb_match(mt2, s, json, size, EB_MATCH_TRUSTED, &keys, &n, NULL);
    if (st == EB_OK)
        fuzz_check_keys(keys, n, FUZZ_NRULES, fuzz_rule_key_ok);
    return 0;
}
