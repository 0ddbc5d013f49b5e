/* ebridge match: many events against many named rules, timed. */
#define _POSIX_C_SOURCE 200809L
#include <ebridge/pattern.h>

#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PREFETCH_AHEAD 8
#define PREFETCH_BYTES 512

typedef struct {
    char *name;
    size_t count;
} rule;

static const char *ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* End of the JSON value starting at p (the text is already validated). */
static const char *value_end(const char *p, const char *end)
{
    int depth = 0;
    do {
        char c = *p;
        if (c == '"') {
            p++;
            while (p < end && *p != '"') {
                if (*p == '\\')
                    p++;
                p++;
            }
            p++;
        } else if (c == '{' || c == '[') {
            depth++;
            p++;
        } else if (c == '}' || c == ']') {
            depth--;
            p++;
        } else if (depth == 0) {
            while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\t' &&
                   *p != '\r')
                p++;
        } else {
            p++;
        }
    } while (p < end && depth > 0);
    return p;
}

/* Compile every rule of RULES.json into m; keys are rule indexes. */
static rule *load_rules(const char *path, eb_machine *m, size_t *nrules)
{
    size_t len;
    char *text = cli_read_file(path, &len, 0);
    if (!text)
        return NULL;
    eb_error err;
    if (eb_json_check(text, len, 0, &err) != EB_OK) {
        fprintf(stderr, "ebridge: %s: %s\n", path, err.message);
        free(text);
        return NULL;
    }
    const char *p = ws(text, text + len), *end = text + len;
    if (p >= end || *p != '{') {
        fprintf(stderr, "ebridge: %s: must be a JSON object of name -> pattern\n", path);
        free(text);
        return NULL;
    }
    p = ws(p + 1, end);
    rule *rules = NULL;
    eb_pattern **pats = NULL;
    size_t n = 0, cap = 0;
    int ok = 1;
    while (p < end && *p != '}') {
        const char *ke = value_end(p, end);
        json_error_t jerr;
        json_t *key = json_loadb(p, (size_t)(ke - p), JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        p = ws(ke, end);
        p = ws(p + 1, end); /* ':' */
        const char *ve = value_end(p, end);
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            rule *nr = realloc(rules, cap * sizeof *nr);
            eb_pattern **np = nr ? realloc(pats, cap * sizeof *np) : NULL;
            if (nr)
                rules = nr;
            if (np)
                pats = np;
            if (!nr || !np) {
                json_decref(key);
                ok = 0;
                break;
            }
        }
        const char *name = key ? json_string_value(key) : "";
        pats[n] = NULL;
        if (eb_pattern_compile(p, (size_t)(ve - p), &pats[n], &err) != EB_OK) {
            fprintf(stderr, "ebridge: rule %s: %s\n", name ? name : "?", err.message);
            ok = 0;
        }
        rules[n].name = strdup(name ? name : "");
        rules[n].count = 0;
        n++;
        json_decref(key);
        p = ws(ve, end);
        if (p < end && *p == ',')
            p = ws(p + 1, end);
    }
    if (ok && n) {
        /* one batch: the machine is built once, not once per rule */
        uint64_t *keys = malloc(n * sizeof *keys);
        if (!keys) {
            ok = 0;
        } else {
            for (size_t i = 0; i < n; i++)
                keys[i] = i;
            if (eb_machine_add_batch(m, n, keys, (const eb_pattern *const *)pats) != EB_OK) {
                fputs("ebridge: out of memory\n", stderr);
                ok = 0;
            }
            free(keys);
        }
    }
    for (size_t i = 0; i < n; i++)
        eb_pattern_free(pats[i]);
    free(pats);
    free(text);
    if (!ok) {
        for (size_t i = 0; i < n; i++)
            free(rules[i].name);
        free(rules);
        return NULL;
    }
    *nrules = n;
    return rules;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int cmd_match(int argc, char **argv)
{
    const char *rules_path = NULL, *events_path = "-";
    int count = 0, validate = 0;
    unsigned max_depth = EB_DEFAULT_MAX_DEPTH;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rules") && i + 1 < argc)
            rules_path = argv[++i];
        else if (!strcmp(argv[i], "--count"))
            count = 1;
        else if (!strcmp(argv[i], "--validate"))
            validate = 1;
        else if (!strcmp(argv[i], "--max-depth") && i + 1 < argc)
            max_depth = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "ebridge match: unknown option %s\n", argv[i]);
            return 2;
        } else
            events_path = argv[i];
    }
    if (!rules_path) {
        fputs("usage: ebridge match --rules RULES.json [--count] [--validate] [EVENTS]\n", stderr);
        return 2;
    }
    eb_machine *m = eb_machine_new();
    eb_matcher *mt = eb_matcher_new();
    if (!m || !mt) {
        fputs("ebridge: out of memory\n", stderr);
        return 2;
    }
    eb_matcher_set_max_depth(mt, max_depth);
    size_t nrules = 0;
    rule *rules = load_rules(rules_path, m, &nrules);
    if (!rules) {
        eb_matcher_free(mt);
        eb_machine_free(m);
        return 2;
    }
    size_t len;
    char *data = cli_read_file(events_path, &len, 1);
    if (!data) {
        eb_matcher_free(mt);
        eb_machine_free(m);
        return 2;
    }
    /* split lines (outside the timing) */
    size_t nev = 0, cap = 1024;
    size_t *off = malloc(cap * sizeof *off), *lens = malloc(cap * sizeof *lens);
    for (size_t pos = 0; pos < len && off && lens;) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t e = nl ? (size_t)(nl - data) : len;
        size_t l = e - pos;
        if (l && data[pos + l - 1] == '\r')
            l--;
        int blank = 1;
        for (size_t k = 0; k < l && blank; k++)
            blank = data[pos + k] == ' ' || data[pos + k] == '\t';
        if (!blank) {
            if (nev == cap) {
                cap *= 2;
                size_t *no = realloc(off, cap * sizeof *no);
                size_t *nl2 = no ? realloc(lens, cap * sizeof *nl2) : NULL;
                if (!no || !nl2) {
                    free(no ? no : off);
                    off = NULL;
                    break;
                }
                off = no;
                lens = nl2;
            }
            off[nev] = pos;
            lens[nev] = l;
            nev++;
        }
        pos = e + 1;
    }
    if (!off || !lens) {
        fputs("ebridge: out of memory\n", stderr);
        return 2;
    }
    /* results: counts, or per-event key lists kept for printing later */
    uint64_t *res = NULL;
    size_t nres = 0, rescap = 0;
    size_t *res_off = count ? NULL : malloc((nev + 1) * sizeof *res_off);
    unsigned char *bad = calloc(nev ? nev : 1, 1);
    size_t nbad = 0, bytes = 0;
    eb_snapshot *s = eb_machine_snapshot(m);
    unsigned flags = validate ? 0 : EB_MATCH_TRUSTED;
    eb_error err;
    double t0 = now();
    for (size_t i = 0; i < nev; i++) {
        const uint64_t *keys;
        size_t nk;
        bytes += lens[i];
        if (i + PREFETCH_AHEAD < nev) {
            /* events are in memory but not in cache: ask for the start of an
             * event a few iterations before it is read */
            const char *ahead = data + off[i + PREFETCH_AHEAD];
            size_t al = lens[i + PREFETCH_AHEAD];
            for (size_t k = 0; k < al && k < PREFETCH_BYTES; k += 64)
                __builtin_prefetch(ahead + k);
        }
        if (!count)
            res_off[i] = nres;
        if (eb_match(mt, s, data + off[i], lens[i], flags, &keys, &nk, &err) != EB_OK) {
            bad[i] = 1;
            nbad++;
            continue;
        }
        if (count) {
            for (size_t k = 0; k < nk; k++)
                rules[keys[k]].count++;
        } else {
            if (nres + nk > rescap) {
                rescap = (nres + nk) * 2 + 1024;
                uint64_t *nr = realloc(res, rescap * sizeof *nr);
                if (!nr) {
                    fputs("ebridge: out of memory\n", stderr);
                    return 2;
                }
                res = nr;
            }
            memcpy(res + nres, keys, nk * sizeof *keys);
            nres += nk;
        }
    }
    double secs = now() - t0;
    if (!count)
        res_off[nev] = nres;
    /* report invalid events (outside the timing: the message is fetched by
     * matching the event again, so the timed loop copies nothing) */
    size_t line = 1, counted = 0; /* line number of data[counted] */
    for (size_t i = 0; i < nev && nbad; i++) {
        if (!bad[i])
            continue;
        eb_match(mt, s, data + off[i], lens[i], flags, &(const uint64_t *){0}, &(size_t){0}, &err);
        for (; counted < off[i]; counted++)
            line += data[counted] == '\n';
        fprintf(stderr, "ebridge: event on line %zu: %s\n", line, err.message);
    }
    static char obuf[1 << 16];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    if (count) {
        for (size_t r = 0; r < nrules; r++)
            printf("%s\t%zu\n", rules[r].name, rules[r].count);
    } else {
        for (size_t i = 0; i < nev; i++) {
            uint64_t *k = res + res_off[i];
            size_t nk = res_off[i + 1] - res_off[i];
            qsort(k, nk, sizeof *k, cmp_u64);
            for (size_t j = 0; j < nk; j++)
                printf(j ? " %s" : "%s", rules[k[j]].name);
            putchar('\n');
        }
    }
    fflush(stdout);
    fprintf(stderr, "events=%zu seconds=%.6f events_per_s=%.0f mb_per_s=%.1f mode=%s\n", nev, secs,
            secs > 0 ? (double)nev / secs : 0.0, secs > 0 ? (double)bytes / secs / 1e6 : 0.0,
            validate ? "validating" : "trusting");
    eb_snapshot_release(s);
    for (size_t r = 0; r < nrules; r++)
        free(rules[r].name);
    free(rules);
    free(res);
    free(res_off);
    free(bad);
    free(off);
    free(lens);
    free(data);
    eb_matcher_free(mt);
    eb_machine_free(m);
    return nbad ? 2 : 0;
}
