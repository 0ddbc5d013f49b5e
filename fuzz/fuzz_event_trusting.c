/* libFuzzer target: eb_match with EB_MATCH_TRUSTED on arbitrary bytes against
 * a fixed machine (fuzz_rules.h).  Garbage in may give any matches out, but
 * the call must be memory-safe, return rule keys at most once each, and be
 * deterministic, and the same whether strings are looked up during or after
 * the read.  A low depth limit is exercised too. */
#include "fuzz_rules.h"

static eb_matcher *mt, *mt_shallow;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const eb_snapshot *s = fuzz_rules_snapshot();
    if (!mt) {
        mt = eb_matcher_new();
        mt_shallow = eb_matcher_new();
        FUZZ_ASSERT(mt && mt_shallow);
        eb_matcher_set_max_depth(mt_shallow, 3);
    }
    const char *json = (const char *)data;
    const uint64_t *keys = NULL;
    size_t n = 0;
    eb_error err;
    memset(&err, 0x55, sizeof err);
    eb_status st = eb_match(mt, s, json, size, EB_MATCH_TRUSTED, &keys, &n, &err);
    FUZZ_ASSERT(st == EB_OK || st == EB_ERR_EVENT || st == EB_ERR_NOMEM);
    if (st == EB_OK) {
        fuzz_check_keys(keys, n, FUZZ_NRULES, fuzz_rule_key_ok);
        uint64_t first[FUZZ_NRULES];
        if (n)
            memcpy(first, keys, n * sizeof *keys);
        size_t n1 = n;
        /* Deterministic: the same call again gives the same answer. */
        FUZZ_ASSERT(eb_match(mt, s, json, size, EB_MATCH_TRUSTED, &keys, &n, NULL) == EB_OK);
        FUZZ_ASSERT(n == n1 && (n == 0 || memcmp(first, keys, n * sizeof *keys) == 0));
        /* Looking strings up after the read gives the same rules. */
        fuzz_same_keys(mt, s, fuzz_rules_snapshot_deferred(), json, size, EB_MATCH_TRUSTED);
    } else {
        FUZZ_ASSERT(fuzz_msg_ok(&err));
    }

    st = eb_match(mt_shallow, s, json, size, EB_MATCH_TRUSTED, &keys, &n, NULL);
    FUZZ_ASSERT(st == EB_OK || st == EB_ERR_EVENT || st == EB_ERR_NOMEM);
    if (st == EB_OK)
        fuzz_check_keys(keys, n, FUZZ_NRULES, fuzz_rule_key_ok);
    return 0;
}
