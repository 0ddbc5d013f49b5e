#define _POSIX_C_SOURCE 200809L
/* Runs ../shared/conformance/patterns.jsonl (AWS-recorded TestEventPattern
 * cases) through the compiled machine in both reader modes and through the
 * reference interpreter.  Invalid patterns must give AWS's exact first
 * message line (only the "Event pattern is not valid. Reason:" prefix for
 * the malformed-JSON cases, whose wording is Jackson's). */
#include <ebridge/pattern.h>

#include "refimpl.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static int machine_match(const eb_pattern *p, const char *ev, size_t elen, unsigned flags, int *out)
{
    eb_machine *m = eb_machine_new();
    eb_matcher *mt = eb_matcher_new();
    int rc = -1;
    if (m && mt && eb_machine_add(m, 7, p) == EB_OK) {
        eb_snapshot *s = eb_machine_snapshot(m);
        const uint64_t *keys;
        size_t n;
        eb_error err;
        if (eb_match(mt, s, ev, elen, flags, &keys, &n, &err) == EB_OK) {
            *out = n == 1 && keys[0] == 7;
            rc = 0;
        } else {
            fprintf(stderr, "  event error: %s\n", err.message);
        }
        eb_snapshot_release(s);
    }
    eb_matcher_free(mt);
    eb_machine_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s patterns.jsonl\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int passed = 0, failed = 0, exact_msgs = 0, prefix_msgs = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        json_error_t je;
        json_t *c = json_loadb(line, (size_t)len, 0, &je);
        if (!c) {
            fprintf(stderr, "bad corpus line: %s\n", je.text);
            failed++;
            continue;
        }
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *pat = json_string_value(json_object_get(c, "pattern"));
        size_t plen = json_string_length(json_object_get(c, "pattern"));
        const char *ev = json_string_value(json_object_get(c, "event"));
        size_t elen = json_string_length(json_object_get(c, "event"));
        const char *expect = json_string_value(json_object_get(c, "expect"));
        const char *aws_error = json_string_value(json_object_get(c, "aws_error"));
        eb_pattern *p = NULL;
        eb_error err;
        eb_status st = eb_pattern_compile(pat, plen, &p, &err);
        int ok = 1;
        if (!strcmp(expect, "invalid")) {
            if (st != EB_ERR_PATTERN) {
                fprintf(stderr, "FAIL %s: pattern accepted, AWS rejects it: %s\n", name, aws_error);
                ok = 0;
            } else if (!strcmp(err.message, aws_error)) {
                exact_msgs++;
            } else if (!strncmp(name, "invalid_json", 12) &&
                       !strncmp(err.message, "Event pattern is not valid. Reason: ", 36)) {
                prefix_msgs++;
            } else {
                fprintf(stderr, "FAIL %s: message\n  got:  %s\n  want: %s\n", name, err.message, aws_error);
                ok = 0;
            }
        } else if (st != EB_OK) {
            fprintf(stderr, "FAIL %s: pattern rejected: %s\n", name, err.message);
            ok = 0;
        } else {
            int want = !strcmp(expect, "match");
            int got_t = -1, got_v = -1;
            machine_match(p, ev, elen, EB_MATCH_TRUSTED, &got_t);
            machine_match(p, ev, elen, 0, &got_v);
            json_t *e = ref_parse(ev, elen);
            int got_r = e ? ref_match(p, e) : -1;
            json_decref(e);
            if (got_t != want || got_v != want || got_r != want) {
                fprintf(stderr, "FAIL %s: expected %s, trusting=%d validating=%d reference=%d\n", name, expect,
                        got_t, got_v, got_r);
                ok = 0;
            }
        }
        eb_pattern_free(p);
        json_decref(c);
        if (ok)
            passed++;
        else
            failed++;
    }
    free(line);
    fclose(f);
    printf("conformance patterns: %d invalid with AWS's exact message, %d malformed-JSON with the prefix\n",
           exact_msgs, prefix_msgs);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
