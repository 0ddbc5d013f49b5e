#include <ebridge/pattern.h>

#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

int cmd_test_pattern(int argc, char **argv)
{
    if (argc != 3) {
        fputs("usage: ebridge test-pattern PATTERN EVENT   (each a JSON text or @file)\n", stderr);
        return 2;
    }
    size_t plen, elen;
    char *pat = cli_arg_text(argv[1], &plen);
    char *ev = pat ? cli_arg_text(argv[2], &elen) : NULL;
    if (!pat || !ev) {
        free(pat);
        return 2;
    }
    int rc = 2;
    eb_error err;
    eb_pattern *p = NULL;
    eb_machine *m = NULL;
    eb_snapshot *s = NULL;
    eb_matcher *mt = NULL;
    if (eb_pattern_compile(pat, plen, &p, &err) != EB_OK) {
        fprintf(stderr, "%s\n", err.message);
        goto out;
    }
    m = eb_machine_new();
    mt = eb_matcher_new();
    if (!m || !mt || eb_machine_add(m, 1, p) != EB_OK) {
        fputs("ebridge: out of memory\n", stderr);
        goto out;
    }
    s = eb_machine_snapshot(m);
    const uint64_t *keys;
    size_t n;
    if (eb_match(mt, s, ev, elen, 0, &keys, &n, &err) != EB_OK) {
        fprintf(stderr, "%s\n", err.message);
        goto out;
    }
    puts(n ? "true" : "false");
    rc = n ? 0 : 1;
out:
    eb_snapshot_release(s);
    eb_matcher_free(mt);
    eb_machine_free(m);
    eb_pattern_free(p);
    free(pat);
    free(ev);
    return rc;
}
