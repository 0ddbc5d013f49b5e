/* libFuzzer target: eb_pattern_compile on arbitrary bytes.
 *
 * On success the pattern is added to a fresh machine (also replaced and
 * removed) and matched against a few fixed events, in validating and trusting
 * mode, plus the input itself as an event.  On failure the error must be
 * EB_ERR_PATTERN with AWS's prefix, or EB_ERR_NOMEM with "out of memory". */
#include "fuzz_common.h"

static const char *const events[] = {
    "{}",
    "{\"source\":\"aws.ec2\",\"detail-type\":\"EC2 Instance State-change Notification\",\"account\":"
    "\"123456789012\",\"region\":\"us-east-1\",\"resources\":[\"arn:aws:ec2:us-east-1:1:instance/i-1\"],"
    "\"detail\":{\"state\":\"running\",\"instance-id\":\"i-1\",\"count\":5,\"n\":-1.5e3,\"flag\":true,"
    "\"none\":null,\"ip\":\"10.1.2.3\",\"ip6\":\"2001:db8::1\",\"file\":\"/a/dir/b.txt\",\"e\":\"\"}}",
    "{\"a\":[1,\"x\",null,true,false,{\"b\":[{\"c\":\"d\"},{\"c\":[\"e\",2.5]}]}],\"b\":{\"c\":{\"d\":{\"e\":"
    "\"f\"}}},\"x\":\"\\u00e9\\ud83d\\ude80\",\"y\":0,\"z\":-0.0,\"w\":1e-7,\"v\":12345678901234567890}",
    "{\"detail\":[{\"state\":\"stopped\"},{\"state\":\"Pending\",\"count\":[1,2,3]}],\"source\":[\"a\",\"b\"],"
    "\"c-count\":3,\"d-count\":9,\"x-limit\":301.8,\"FileName\":\"/Users/me/dir/doc.txt\"}",
    "{\"k\":\"\\\"quoted\\\\*\",\"\":\"empty key\",\"s\":\"STRASSE\",\"t\":\"stra\\u00dfe\",\"u\":\"\\u0130\"}",
};
#define NEVENTS (sizeof events / sizeof events[0])

static void match_all(eb_matcher *mt, const eb_snapshot *s, const char *ev, size_t len, unsigned flags,
                      size_t max_keys)
{
    const uint64_t *keys = NULL;
    size_t n = 0;
    eb_error err;
    memset(&err, 0, sizeof err);
    eb_status st = eb_match(mt, s, ev, len, flags, &keys, &n, &err);
    FUZZ_ASSERT(st == EB_OK || st == EB_ERR_EVENT || st == EB_ERR_NOMEM);
    if (st == EB_OK) {
        FUZZ_ASSERT(n <= max_keys);
        for (size_t i = 0; i < n; i++)
            FUZZ_ASSERT(keys[i] == 7 || keys[i] == 8);
        if (n == 2)
            FUZZ_ASSERT(keys[0] != keys[1]);
    } else {
        FUZZ_ASSERT(fuzz_msg_ok(&err));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eb_pattern *p = NULL;
    eb_error err;
    memset(&err, 0x55, sizeof err); /* make sure the library writes the message */
    eb_status st = eb_pattern_compile((const char *)data, size, &p, &err);
    if (st != EB_OK) {
        FUZZ_ASSERT(p == NULL || st == EB_OK); /* nothing handed out on error */
        FUZZ_ASSERT(fuzz_msg_ok(&err));
        if (st == EB_ERR_PATTERN) {
            static const char prefix[] = "Event pattern is not valid. Reason: ";
            if (strncmp(err.message, prefix, sizeof prefix - 1) != 0) {
                fprintf(stderr, "bad message: \"%s\"\n", err.message);
                abort();
            }
            FUZZ_ASSERT(err.offset <= size);
        } else {
            FUZZ_ASSERT(st == EB_ERR_NOMEM);
            FUZZ_ASSERT(strcmp(err.message, "out of memory") == 0);
        }
        return 0;
    }
    FUZZ_ASSERT(p != NULL);
    size_t sub = eb_pattern_subrules(p);
    FUZZ_ASSERT(sub >= 1 && sub <= 1000);

    eb_machine *m = eb_machine_new();
    eb_matcher *mt = eb_matcher_new();
    FUZZ_ASSERT(m && mt);
    if (eb_machine_add(m, 7, p) != EB_OK)
        goto out;
    if (eb_machine_add(m, 7, p) != EB_OK) /* replace with itself */
        goto out;
    if (eb_machine_add(m, 8, p) != EB_OK) /* two rules, same pattern */
        goto out;
    eb_snapshot *s = eb_machine_snapshot(m);
    FUZZ_ASSERT(s != NULL && eb_snapshot_rules(s) == 2);
    (void)eb_snapshot_memory(s);
    for (size_t i = 0; i < NEVENTS; i++) {
        size_t len = strlen(events[i]);
        const uint64_t *keys = NULL;
        size_t n = 0;
        eb_status ms = eb_match(mt, s, events[i], len, 0, &keys, &n, NULL);
        FUZZ_ASSERT(ms == EB_OK || ms == EB_ERR_NOMEM);
        /* Both rules have the same pattern: both match or neither. */
        FUZZ_ASSERT(ms != EB_OK || n == 0 || n == 2);
        match_all(mt, s, events[i], len, 0, 2);
        match_all(mt, s, events[i], len, EB_MATCH_TRUSTED, 2);
    }
    /* The pattern text itself as an event (it is a JSON object). */
    match_all(mt, s, (const char *)data, size, 0, 2);
    match_all(mt, s, (const char *)data, size, EB_MATCH_TRUSTED, 2);

    FUZZ_ASSERT(eb_machine_remove(m, 7) == EB_OK);
    FUZZ_ASSERT(eb_machine_remove(m, 7) == EB_ERR_NOTFOUND);
    eb_snapshot *s2 = eb_machine_snapshot(m);
    FUZZ_ASSERT(eb_snapshot_rules(s2) == 1);
    FUZZ_ASSERT(eb_snapshot_rules(s) == 2); /* old snapshot unchanged */
    match_all(mt, s2, events[1], strlen(events[1]), 0, 1);
    eb_snapshot_release(s2);
    eb_machine_free(m); /* s outlives its machine */
    m = NULL;
    match_all(mt, s, events[2], strlen(events[2]), 0, 2);
    eb_snapshot_release(s);
out:
    eb_machine_free(m);
    eb_matcher_free(mt);
    eb_pattern_free(p);
    return 0;
}
