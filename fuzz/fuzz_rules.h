/* The fixed rule set of the event fuzz targets: every operator, "$or",
 * nested objects and paths that cross arrays.  Rule i has key 100 + i. */
#ifndef EB_FUZZ_RULES_H
#define EB_FUZZ_RULES_H

#include "fuzz_common.h"

static const char *const fuzz_rules[] = {
    /* exact values: string, number, boolean, null, empty string */
    "{\"source\": [\"aws.ec2\", \"aws.s3\"], \"detail-type\": [\"EC2 Instance State-change Notification\"]}",
    "{\"detail\": {\"count\": [5, 1e2, -0.5], \"flag\": [true], \"none\": [null]}}",
    "{\"detail\": {\"e\": [\"\"], \"mix\": [\"str\", 1, null, false, {\"prefix\": \"p\"}, {\"numeric\": [\">=\", 10]}]}}",
    /* prefix / suffix, plain and case-insensitive */
    "{\"detail-type\": [{\"prefix\": \"EC2 \"}], \"region\": [{\"prefix\": {\"equals-ignore-case\": \"US-\"}}]}",
    "{\"detail\": {\"file\": [{\"suffix\": \".png\"}, {\"suffix\": {\"equals-ignore-case\": \".JPG\"}}]}}",
    /* equals-ignore-case, wildcard */
    "{\"detail\": {\"name\": [{\"equals-ignore-case\": \"\\u00c4bC stra\\u00dfe\"}, {\"equals-ignore-case\": \"k\"}]}}",
    "{\"detail\": {\"path\": [{\"wildcard\": \"*/dir/*.txt\"}, {\"wildcard\": \"a\\\\*b*\"}, {\"wildcard\": \"x*y*z\"}]}}",
    /* numeric: ranges, equality, big/small values */
    "{\"detail\": {\"n\": [{\"numeric\": [\">\", 0, \"<=\", 100]}, {\"numeric\": [\"<\", -1e9]}]}}",
    "{\"detail\": {\"n\": [{\"numeric\": [\"=\", 301.8]}], \"m\": [{\"numeric\": [\">=\", -5e-3, \"<\", 5e-3]}]}}",
    /* exists */
    "{\"detail\": {\"opt\": [{\"exists\": true}], \"missing\": [{\"exists\": false}]}}",
    /* anything-but: values, numbers, prefix, suffix, equals-ignore-case, wildcard */
    "{\"detail\": {\"state\": [{\"anything-but\": [\"stopped\", \"running\"]}]}}",
    "{\"detail\": {\"x\": [{\"anything-but\": [100, 200, 300]}], \"y\": [{\"anything-but\": \"one\"}]}}",
    "{\"detail\": {\"state\": [{\"anything-but\": {\"prefix\": \"init\"}}], \"file\": [{\"anything-but\": "
    "{\"suffix\": [\".tmp\", \".bak\"]}}]}}",
    "{\"detail\": {\"state\": [{\"anything-but\": {\"equals-ignore-case\": [\"STOPPED\", \"x\"]}}]}}",
    "{\"detail\": {\"file\": [{\"anything-but\": {\"wildcard\": \"*/tmp/*\"}}]}}",
    /* cidr, IPv4 and IPv6 */
    "{\"detail\": {\"ip\": [{\"cidr\": \"10.0.0.0/8\"}, {\"cidr\": \"192.168.1.0/24\"}]}}",
    "{\"detail\": {\"ip6\": [{\"cidr\": \"2001:db8::/32\"}], \"ip\": [{\"cidr\": \"fe80::/10\"}]}}",
    /* $or, nested */
    "{\"$or\": [{\"source\": [\"a\"]}, {\"detail\": {\"$or\": [{\"n\": [{\"numeric\": [\"<\", 0]}]}, "
    "{\"items\": {\"id\": [\"x\"]}}]}}]}",
    /* paths through arrays and deep nesting */
    "{\"detail\": {\"items\": {\"tags\": {\"k\": [\"v\"]}, \"id\": [{\"exists\": true}]}}}",
    "{\"resources\": [\"arn:1\", \"arn:2\"], \"detail\": {\"a\": {\"b\": {\"c\": {\"d\": [{\"prefix\": \"ab\"}]}}}}}",
    "{\"a\": {\"b\": [{\"exists\": true}]}, \"x\": [{\"exists\": false}]}",
    /* boxes: bounded numeric ranges on two paths (box index), at top level,
     * with a third field, and through an array of objects */
    "{\"detail\": {\"pos\": {\"x\": [{\"numeric\": [\">\", 0, \"<\", 10]}], \"y\": [{\"numeric\": [\">=\", -5, \"<=\", 5]}]}}}",
    "{\"detail\": {\"pos\": {\"x\": [{\"numeric\": [\">=\", -1e300, \"<\", 1e300]}], \"y\": [{\"numeric\": [\">\", 0.5, "
    "\"<\", 0.75]}], \"z\": [{\"exists\": true}]}}}",
    "{\"pts\": {\"x\": [{\"numeric\": [\">\", -1, \"<\", 1]}], \"y\": [{\"numeric\": [\">\", -1, \"<=\", 1]}]}}",
    /* keys that need escaping / unicode */
    "{\"k\\\"ey\": [\"\\\"v\\\\\"], \"\\u00e9\": [\"\\ud83d\\ude80\"], \"\": [\"\"]}",
};
#define FUZZ_NRULES (sizeof fuzz_rules / sizeof fuzz_rules[0])
#define FUZZ_KEY0 100u

static int fuzz_rule_key_ok(uint64_t k)
{
    return k >= FUZZ_KEY0 && k < FUZZ_KEY0 + FUZZ_NRULES;
}

/* The pattern library's threshold for looking strings up after the read
 * (src/pattern/machine.h); 0 makes every path with strings take that path. */
extern unsigned ebp_vm_defer_min;

static eb_snapshot *fuzz_rules_build(void)
{
    eb_snapshot *snap;
    eb_machine *m = eb_machine_new();
    FUZZ_ASSERT(m != NULL);
    for (size_t i = 0; i < FUZZ_NRULES; i++) {
        eb_pattern *p = NULL;
        eb_error err;
        if (eb_pattern_compile(fuzz_rules[i], strlen(fuzz_rules[i]), &p, &err) != EB_OK) {
            fprintf(stderr, "fuzz rule %zu does not compile: %s\n%s\n", i, err.message, fuzz_rules[i]);
            abort();
        }
        FUZZ_ASSERT(eb_machine_add(m, FUZZ_KEY0 + i, p) == EB_OK);
        eb_pattern_free(p);
    }
    snap = eb_machine_snapshot(m);
    FUZZ_ASSERT(eb_snapshot_rules(snap) == FUZZ_NRULES);
    eb_machine_free(m); /* the snapshot stays valid */
    return snap;
}

/* Build the machine once; abort (loudly) if a rule no longer compiles. */
static eb_snapshot *fuzz_rules_snapshot(void)
{
    static eb_snapshot *snap;
    if (!snap)
        snap = fuzz_rules_build();
    return snap;
}

/* The same rules with every string looked up after the read (the machine's
 * path for large tables): must match exactly what fuzz_rules_snapshot does. */
static eb_snapshot *fuzz_rules_snapshot_deferred(void)
{
    static eb_snapshot *snap;
    if (!snap) {
        unsigned keep = ebp_vm_defer_min;
        ebp_vm_defer_min = 0;
        snap = fuzz_rules_build();
        ebp_vm_defer_min = keep;
    }
    return snap;
}

static int fuzz_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Match json on s1 and on s2 (both OK) and check the two key sets are equal. */
static void fuzz_same_keys(eb_matcher *mt, const eb_snapshot *s1, const eb_snapshot *s2, const char *json,
                           size_t size, unsigned flags)
{
    const uint64_t *keys = NULL;
    size_t n1 = 0, n2 = 0;
    uint64_t a[FUZZ_NRULES], b[FUZZ_NRULES];
    FUZZ_ASSERT(eb_match(mt, s1, json, size, flags, &keys, &n1, NULL) == EB_OK);
    FUZZ_ASSERT(n1 <= FUZZ_NRULES);
    if (n1)
        memcpy(a, keys, n1 * sizeof *keys);
    FUZZ_ASSERT(eb_match(mt, s2, json, size, flags, &keys, &n2, NULL) == EB_OK);
    FUZZ_ASSERT(n2 == n1);
    if (n2)
        memcpy(b, keys, n2 * sizeof *keys);
    qsort(a, n1, sizeof *a, fuzz_cmp_u64);
    qsort(b, n2, sizeof *b, fuzz_cmp_u64);
    FUZZ_ASSERT(n1 == 0 || memcmp(a, b, n1 * sizeof *a) == 0);
}

#endif
