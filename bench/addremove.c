/* bench/addremove.c: memory per rule and add/remove latency of the pattern
 * engine, through the public API only (include/ebridge/pattern.h).
 *
 *   addremove PATTERNS.jsonl N [OPS]
 *
 * PATTERNS.jsonl holds one event pattern per line.  The first N lines are
 * compiled and added to a fresh machine in one eb_machine_add_batch (key =
 * line index), then it prints
 *
 *   rules=N load_s=S snapshot_bytes=B rss_delta_bytes=R
 *
 * (snapshot_bytes = eb_snapshot_memory() of the resulting snapshot;
 * rss_delta_bytes = resident set growth over the adds, from /proc/self/statm).
 *
 * With OPS > 0 it then times OPS rule changes at size N, each op with the
 * pattern compiled before the clock starts (eb_pattern_compile is outside the
 * timing; only eb_machine_add / eb_machine_remove are inside):
 *   phase "fresh":    add line N+i (a rule not in the machine) as key N+i,
 *                     then remove key N+i again       (needs N+OPS lines)
 *   phase "existing": remove a random existing key k (seeded), then add it
 *                     back with its original pattern
 * and prints one line per (phase, op) with median, p99, mean and max in
 * microseconds.  The machine holds N or N+1 rules throughout. */
#define _POSIX_C_SOURCE 200809L
#include <ebridge/pattern.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * sysconf(_SC_PAGESIZE);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *phase, const char *op, double *t, size_t n)
{
    qsort(t, n, sizeof *t, cmp_d);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += t[i];
    size_t p99 = (size_t)((double)n * 0.99);
    if (p99 >= n)
        p99 = n - 1;
    printf("phase=%s op=%s n=%zu median_us=%.2f p99_us=%.2f mean_us=%.2f max_us=%.2f\n", phase, op, n,
           t[n / 2] * 1e6, t[p99] * 1e6, sum / (double)n * 1e6, t[n - 1] * 1e6);
}

static eb_pattern *compile(const char *text, size_t lineno)
{
    eb_pattern *p = NULL;
    eb_error err;
    if (eb_pattern_compile(text, strlen(text), &p, &err) != EB_OK) {
        fprintf(stderr, "addremove: line %zu: %s\n", lineno + 1, err.message);
        exit(2);
    }
    return p;
}

static void add(eb_machine *m, uint64_t key, const eb_pattern *p)
{
    eb_status st = eb_machine_add(m, key, p);
    if (st != EB_OK) {
        fprintf(stderr, "addremove: eb_machine_add(%llu) failed: %d\n", (unsigned long long)key, (int)st);
        exit(2);
    }
}

static void del(eb_machine *m, uint64_t key)
{
    eb_status st = eb_machine_remove(m, key);
    if (st != EB_OK) {
        fprintf(stderr, "addremove: eb_machine_remove(%llu) failed: %d\n", (unsigned long long)key, (int)st);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fputs("usage: addremove PATTERNS.jsonl N [OPS]\n", stderr);
        return 2;
    }
    size_t n = strtoul(argv[2], NULL, 10), ops = argc > 3 ? strtoul(argv[3], NULL, 10) : 0;
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    size_t need = n + ops, nl = 0;
    char **lines = calloc(need ? need : 1, sizeof *lines);
    char *buf = NULL;
    size_t cap = 0;
    ssize_t got;
    while (nl < need && (got = getline(&buf, &cap, f)) > 0) {
        while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
            buf[--got] = 0;
        lines[nl++] = strdup(buf);
    }
    free(buf);
    fclose(f);
    if (nl < need) {
        fprintf(stderr, "addremove: need %zu lines, %s has %zu\n", need, argv[1], nl);
        return 2;
    }

    eb_machine *m = eb_machine_new();
    long rss0 = rss_bytes();
    double t0 = now();
    /* load in one batch (as the CLI and a bus restore do) */
    eb_pattern **pats = malloc((n ? n : 1) * sizeof *pats);
    uint64_t *keys = malloc((n ? n : 1) * sizeof *keys);
    for (size_t i = 0; i < n; i++) {
        pats[i] = compile(lines[i], i);
        keys[i] = i;
    }
    if (eb_machine_add_batch(m, n, keys, (const eb_pattern *const *)pats) != EB_OK) {
        fputs("addremove: eb_machine_add_batch failed\n", stderr);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        eb_pattern_free(pats[i]);
    free(pats);
    free(keys);
    double load = now() - t0;
    long rss1 = rss_bytes();
    eb_snapshot *s = eb_machine_snapshot(m);
    printf("rules=%zu load_s=%.3f snapshot_bytes=%zu rss_delta_bytes=%ld snapshot_rules=%zu\n", n, load,
           eb_snapshot_memory(s), rss1 - rss0, eb_snapshot_rules(s));
    eb_snapshot_release(s);

    if (ops) {
        double *ta = malloc(ops * sizeof *ta), *tr = malloc(ops * sizeof *tr);
        /* phase fresh: add a new rule, remove it again */
        for (size_t i = 0; i < ops; i++) {
            eb_pattern *p = compile(lines[n + i], n + i);
            double a = now();
            add(m, n + i, p);
            double b = now();
            del(m, n + i);
            double c = now();
            ta[i] = b - a;
            tr[i] = c - b;
            eb_pattern_free(p);
        }
        report("fresh", "add", ta, ops);
        report("fresh", "remove", tr, ops);
        /* phase existing: remove a random existing rule, add it back */
        unsigned long long x = 88172645463325252ULL; /* xorshift64, fixed seed */
        for (size_t i = 0; i < ops; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            size_t k = (size_t)(x % n);
            eb_pattern *p = compile(lines[k], k);
            double a = now();
            del(m, k);
            double b = now();
            add(m, k, p);
            double c = now();
            tr[i] = b - a;
            ta[i] = c - b;
            eb_pattern_free(p);
        }
        report("existing", "remove", tr, ops);
        report("existing", "add", ta, ops);
        free(ta);
        free(tr);
        s = eb_machine_snapshot(m);
        printf("after_ops rules=%zu snapshot_bytes=%zu\n", eb_snapshot_rules(s), eb_snapshot_memory(s));
        eb_snapshot_release(s);
    }
    eb_machine_free(m);
    for (size_t i = 0; i < nl; i++)
        free(lines[i]);
    free(lines);
    return 0;
}
