/* The metrics registry (see metrics.h).
 *
 * Layout. Every series is a heap object that lives until eb_metrics_free; it
 * is on the registry's list of all series (for rendering, guarded by mu) and
 * in the index, an open-addressing hash table of series pointers:
 *
 *   reg->index --> tab { cap = 2^k, slot[0..cap) }   slot = NULL or a series
 *
 * Readers (eb_metrics_counter / _histogram) take no lock: load the table
 * (acquire), probe linearly from hash & (cap-1) with acquire loads until the
 * series or an empty slot. Writers hold mu: a new series is fully built, then
 * stored into its slot with a release store. Slots are never cleared. When
 * the table would pass half full, a table of twice the size is filled and
 * published (release); the old one stays readable (a reader still probing it
 * finds what it held, and a miss sends the reader to the locked path, which
 * looks again in the current table) and is freed with the registry.
 *
 * Forgetting clears `visible` (under mu); lookups that find a hidden series
 * take the locked path, which zeroes it and makes it visible again. */
#define _GNU_SOURCE
#include "metrics.h"

#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- the metric table ---- */
static const eb_metric_def DEFS[EB_M_COUNT] = {
#define EB_METRIC_DEF_(id, name, type, buckets, labels, aws, help) [id] = {name, type, buckets, labels, aws, help},
    EB_METRICS_TABLE(EB_METRIC_DEF_)
#undef EB_METRIC_DEF_
};

const eb_metric_def *eb_metric_info(eb_metric_id id)
{
    return (unsigned)id < EB_M_COUNT ? &DEFS[id] : NULL;
}

/* ---- bucket sets ---- */
#define MAX_BOUNDS 18 /* finite bounds of the largest set */

typedef struct {
    size_t n;                   /* finite bounds; bucket n is +Inf */
    double le[MAX_BOUNDS];      /* in the observing unit */
    const char *text[MAX_BOUNDS]; /* as exported (seconds for ms) */
    unsigned sum_div_pow10;     /* exported sum = stored sum / 10^this (stored: unit/1000) */
} bucket_set;

static const bucket_set BUCKETS[] = {
    [EB_HB_NONE] = {0, {0}, {0}, 0},
    [EB_HB_LATENCY] = {15,
                       {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000},
                       {"0.001", "0.002", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
                        "10", "30", "60"},
                       6},
    [EB_HB_REQUEST] = {18,
                       {0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000},
                       {"0.0001", "0.00025", "0.0005", "0.001", "0.002", "0.005", "0.01", "0.025", "0.05", "0.1",
                        "0.25", "0.5", "1", "2.5", "5", "10", "30", "60"},
                       6},
    [EB_HB_BYTES] = {8,
                     {256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304},
                     {"256", "1024", "4096", "16384", "65536", "262144", "1048576", "4194304"},
                     3},
};

struct eb_histogram {
    const bucket_set *bs;
    _Atomic uint64_t sum;                  /* in 1/1000 of the observing unit */
    _Atomic uint64_t count[MAX_BOUNDS + 1]; /* per bucket, not cumulative; [bs->n] = +Inf */
};

typedef struct series {
    struct series *next; /* the list of all series, newest first (mu) */
    uint64_t hash;
    eb_metric_id id;
    char *bus, *rule; /* owned; NULL = label absent */
    atomic_int visible;
    union {
        eb_counter c;
        struct eb_histogram h;
    } v;
} series;

typedef struct tab {
    struct tab *retired; /* older tables, kept for readers until eb_metrics_free */
    size_t cap;          /* power of two */
    size_t used;
    _Atomic(series *) slot[];
} tab;

struct eb_metrics {
    pthread_mutex_t mu;
    series *all;
    size_t nseries;
    _Atomic(tab *) index;
};

/* ---- hashing and lookup ---- */
static uint64_t mix_str(uint64_t h, const char *s)
{
    /* FNV-1a; a presence byte keeps NULL and "" apart */
    unsigned char present = s ? 1u : 2u;
    h = eb_fnv1a(h, &present, 1);
    return s ? eb_fnv1a(h, s, strlen(s)) : h;
}

static uint64_t series_hash(eb_metric_id id, const char *bus, const char *rule)
{
    _Static_assert(EB_M_COUNT <= 256, "metric ids hash as one byte");
    unsigned char idb = (unsigned char)id;
    uint64_t h = eb_fnv1a(EB_FNV1A_INIT, &idb, 1);
    h = mix_str(h, bus);
    h = mix_str(h, rule);
    return h ^ (h >> 29);
}

static int same_str(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

static int series_is(const series *s, uint64_t h, eb_metric_id id, const char *bus, const char *rule)
{
    return s->hash == h && s->id == id && same_str(s->bus, bus) && same_str(s->rule, rule);
}

/* The series in t, or NULL. */
static series *tab_find(tab *t, uint64_t h, eb_metric_id id, const char *bus, const char *rule)
{
    size_t mask = t->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        series *s = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        if (!s || series_is(s, h, id, bus, rule))
            return s;
    }
}

static tab *tab_new(size_t cap)
{
    tab *t = calloc(1, sizeof *t + cap * sizeof t->slot[0]);
    if (t)
        t->cap = cap;
    return t;
}

/* Under mu: put s (not yet in t) into t. */
static void tab_put(tab *t, series *s)
{
    size_t mask = t->cap - 1;
    size_t i = (size_t)s->hash & mask;
    while (atomic_load_explicit(&t->slot[i], memory_order_relaxed))
        i = (i + 1) & mask;
    atomic_store_explicit(&t->slot[i], s, memory_order_release);
    t->used++;
}

/* Under mu: make room for one more series (keep the table at most half full). */
static int index_reserve(eb_metrics *reg)
{
    tab *t = atomic_load_explicit(&reg->index, memory_order_relaxed);
    if ((t->used + 1) * 2 <= t->cap)
        return 0;
    tab *nt = tab_new(t->cap * 2);
    if (!nt)
        return -1;
    for (series *s = reg->all; s; s = s->next)
        tab_put(nt, s);
    nt->retired = t;
    atomic_store_explicit(&reg->index, nt, memory_order_release);
    return 0;
}

/* ---- registry ---- */
static void series_zero(series *s)
{
    if (DEFS[s->id].type == EB_MT_COUNTER) {
        atomic_store_explicit(&s->v.c.v, 0, memory_order_relaxed);
        return;
    }
    atomic_store_explicit(&s->v.h.sum, 0, memory_order_relaxed);
    for (size_t i = 0; i <= MAX_BOUNDS; i++)
        atomic_store_explicit(&s->v.h.count[i], 0, memory_order_relaxed);
}

static void series_free(series *s)
{
    free(s->bus);
    free(s->rule);
    free(s);
}

/* Under mu: the series, created (or shown again) if need be; NULL when out of memory. */
static series *get_locked(eb_metrics *reg, uint64_t h, eb_metric_id id, const char *bus, const char *rule)
{
    series *s = tab_find(atomic_load_explicit(&reg->index, memory_order_relaxed), h, id, bus, rule);
    if (s) {
        if (!atomic_load_explicit(&s->visible, memory_order_relaxed)) {
            series_zero(s);
            atomic_store_explicit(&s->visible, 1, memory_order_release);
        }
        return s;
    }
    if (index_reserve(reg))
        return NULL;
    s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->hash = h;
    s->id = id;
    s->bus = bus ? strdup(bus) : NULL;
    s->rule = rule ? strdup(rule) : NULL;
    if ((bus && !s->bus) || (rule && !s->rule)) {
        series_free(s);
        return NULL;
    }
    if (DEFS[id].type == EB_MT_HISTOGRAM)
        s->v.h.bs = &BUCKETS[DEFS[id].buckets];
    atomic_init(&s->visible, 1);
    s->next = reg->all;
    reg->all = s;
    reg->nseries++;
    tab_put(atomic_load_explicit(&reg->index, memory_order_relaxed), s);
    return s;
}

static series *get(eb_metrics *reg, eb_metric_id id, eb_metric_type type, const char *bus, const char *rule)
{
    if (!reg || (unsigned)id >= EB_M_COUNT || DEFS[id].type != type)
        return NULL;
    uint64_t h = series_hash(id, bus, rule);
    series *s = tab_find(atomic_load_explicit(&reg->index, memory_order_acquire), h, id, bus, rule);
    if (s && atomic_load_explicit(&s->visible, memory_order_relaxed))
        return s;
    pthread_mutex_lock(&reg->mu);
    s = get_locked(reg, h, id, bus, rule);
    pthread_mutex_unlock(&reg->mu);
    return s;
}

eb_counter *eb_metrics_counter(eb_metrics *reg, eb_metric_id id, const char *bus, const char *rule)
{
    series *s = get(reg, id, EB_MT_COUNTER, bus, rule);
    return s ? &s->v.c : NULL;
}

eb_histogram *eb_metrics_histogram(eb_metrics *reg, eb_metric_id id, const char *bus, const char *rule)
{
    series *s = get(reg, id, EB_MT_HISTOGRAM, bus, rule);
    return s ? &s->v.h : NULL;
}

eb_metrics *eb_metrics_new(void)
{
    eb_metrics *reg = calloc(1, sizeof *reg);
    tab *t = tab_new(64);
    if (!reg || !t) {
        free(reg);
        free(t);
        return NULL;
    }
    pthread_mutex_init(&reg->mu, NULL);
    atomic_init(&reg->index, t);
    /* metrics with an unlabelled series show it from the start */
    for (int id = 0; id < EB_M_COUNT; id++) {
        if ((DEFS[id].label_sets & EB_LS_NONE) && !get(reg, (eb_metric_id)id, DEFS[id].type, NULL, NULL)) {
            eb_metrics_free(reg);
            return NULL;
        }
    }
    return reg;
}

void eb_metrics_free(eb_metrics *reg)
{
    if (!reg)
        return;
    for (series *s = reg->all, *next; s; s = next) {
        next = s->next;
        series_free(s);
    }
    for (tab *t = atomic_load(&reg->index), *older; t; t = older) {
        older = t->retired;
        free(t);
    }
    pthread_mutex_destroy(&reg->mu);
    free(reg);
}

void eb_histogram_observe(eb_histogram *h, double v)
{
    if (!h)
        return;
    if (!(v > 0)) /* negative, zero, NaN */
        v = 0;
    const bucket_set *bs = h->bs;
    size_t i = 0;
    while (i < bs->n && v > bs->le[i])
        i++;
    atomic_fetch_add_explicit(&h->count[i], 1, memory_order_relaxed);
    double milli = v * 1000.0 + 0.5;
    uint64_t add = milli >= 1.8e19 ? (uint64_t)1.8e19 : (uint64_t)milli;
    atomic_fetch_add_explicit(&h->sum, add, memory_order_relaxed);
}

static void forget(eb_metrics *reg, const char *bus, const char *rule, int any_rule)
{
    if (!reg || !bus)
        return;
    pthread_mutex_lock(&reg->mu);
    for (series *s = reg->all; s; s = s->next)
        if (s->bus && !strcmp(s->bus, bus) && (any_rule || same_str(s->rule, rule)))
            atomic_store_explicit(&s->visible, 0, memory_order_relaxed);
    pthread_mutex_unlock(&reg->mu);
}

void eb_metrics_forget_rule(eb_metrics *reg, const char *bus, const char *rule)
{
    if (rule)
        forget(reg, bus, rule, 0);
}

void eb_metrics_forget_bus(eb_metrics *reg, const char *bus)
{
    forget(reg, bus, NULL, 1);
}

/* ---- rendering ---- */
static int cmp_label(const char *a, const char *b)
{
    if (!a || !b)
        return (a != NULL) - (b != NULL); /* absent first */
    return strcmp(a, b);
}

static int cmp_series(const void *pa, const void *pb)
{
    const series *a = *(const series *const *)pa, *b = *(const series *const *)pb;
    int c = strcmp(DEFS[a->id].name, DEFS[b->id].name);
    if (!c)
        c = cmp_label(a->bus, b->bus);
    if (!c)
        c = cmp_label(a->rule, b->rule);
    return c;
}

static int cmp_id(const void *pa, const void *pb)
{
    return strcmp(DEFS[*(const int *)pa].name, DEFS[*(const int *)pb].name);
}

/* Output: every append ORs its status into err (appends fail only when out of memory). */
typedef struct {
    eb_buf *b;
    int err;
} wr;

static void w_puts(wr *w, const char *s)
{
    w->err |= eb_buf_puts(w->b, s);
}

static void w_putc(wr *w, char c)
{
    w->err |= eb_buf_putc(w->b, c);
}

static void w_u64(wr *w, uint64_t v)
{
    w->err |= eb_buf_printf(w->b, "%llu", (unsigned long long)v);
}

/* Escaped text: backslash and line feed always, double quote when quote is set
 * (HELP text escapes the first two, label values all three). */
static void w_escaped(wr *w, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            w_puts(w, "\\\\");
        else if (*s == '\n')
            w_puts(w, "\\n");
        else if (*s == '"' && quote)
            w_puts(w, "\\\"");
        else
            w_putc(w, *s);
    }
}

/* `{event_bus="..",rule="..",le=".."}`, or nothing when there is no label. */
static void w_labels(wr *w, const series *s, const char *le)
{
    if (!s->bus && !s->rule && !le)
        return;
    const char *sep = "{";
    if (s->bus) {
        w_puts(w, "{event_bus=\"");
        w_escaped(w, s->bus, 1);
        w_putc(w, '"');
        sep = ",";
    }
    if (s->rule) {
        w_puts(w, sep);
        w_puts(w, "rule=\"");
        w_escaped(w, s->rule, 1);
        w_putc(w, '"');
        sep = ",";
    }
    if (le) {
        w_puts(w, sep);
        w_puts(w, "le=\"");
        w_puts(w, le);
        w_putc(w, '"');
    }
    w_putc(w, '}');
}

/* v / 10^pow10 as an exact decimal, trailing zeros dropped. */
static void w_scaled(wr *w, uint64_t v, unsigned pow10)
{
    uint64_t div = 1;
    for (unsigned i = 0; i < pow10; i++)
        div *= 10;
    w_u64(w, v / div);
    uint64_t frac = v % div;
    if (!frac)
        return;
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%0*llu", (int)pow10, (unsigned long long)frac);
    while (n > 0 && digits[n - 1] == '0')
        n--;
    digits[n] = 0;
    w_putc(w, '.');
    w_puts(w, digits);
}

/* One sample line: NAME SUFFIX LABELS VALUE */
static void w_sample(wr *w, const series *s, const char *suffix, const char *le, uint64_t v, unsigned pow10)
{
    w_puts(w, DEFS[s->id].name);
    w_puts(w, suffix);
    w_labels(w, s, le);
    w_putc(w, ' ');
    w_scaled(w, v, pow10);
    w_putc(w, '\n');
}

static void w_series(wr *w, const series *s)
{
    if (DEFS[s->id].type == EB_MT_COUNTER) {
        w_sample(w, s, "", NULL, atomic_load_explicit(&s->v.c.v, memory_order_relaxed), 0);
        return;
    }
    const struct eb_histogram *h = &s->v.h;
    /* the buckets are read once: _count is their sum, so it always equals the +Inf bucket */
    uint64_t cum = 0;
    for (size_t i = 0; i <= h->bs->n; i++) {
        cum += atomic_load_explicit(&h->count[i], memory_order_relaxed);
        w_sample(w, s, "_bucket", i < h->bs->n ? h->bs->text[i] : "+Inf", cum, 0);
    }
    w_sample(w, s, "_sum", NULL, atomic_load_explicit(&h->sum, memory_order_relaxed), h->bs->sum_div_pow10);
    w_sample(w, s, "_count", NULL, cum, 0);
}

int eb_metrics_render(eb_metrics *reg, eb_buf *out)
{
    if (!reg)
        return 0;
    int ids[EB_M_COUNT];
    for (int i = 0; i < EB_M_COUNT; i++)
        ids[i] = i;
    qsort(ids, EB_M_COUNT, sizeof ids[0], cmp_id);

    wr w = {out, 0};
    pthread_mutex_lock(&reg->mu);
    series **v = malloc((reg->nseries ? reg->nseries : 1) * sizeof *v);
    size_t n = 0;
    if (v) {
        for (series *s = reg->all; s; s = s->next)
            if (atomic_load_explicit(&s->visible, memory_order_relaxed))
                v[n++] = s;
        qsort(v, n, sizeof *v, cmp_series);
        size_t k = 0;
        for (int i = 0; i < EB_M_COUNT; i++) {
            const eb_metric_def *d = &DEFS[ids[i]];
            w_puts(&w, "# HELP ");
            w_puts(&w, d->name);
            w_putc(&w, ' ');
            w_escaped(&w, d->help, 0);
            if (d->aws_name) { /* NULL: ebridge's own metric */
                w_puts(&w, " (AWS: ");
                w_puts(&w, d->aws_name);
                w_putc(&w, ')');
            }
            w_puts(&w, "\n# TYPE ");
            w_puts(&w, d->name);
            w_puts(&w, d->type == EB_MT_COUNTER ? " counter\n" : " histogram\n");
            for (; k < n && v[k]->id == (eb_metric_id)ids[i]; k++)
                w_series(&w, v[k]);
        }
    }
    pthread_mutex_unlock(&reg->mu);
    free(v);
    return v && !w.err ? 0 : -1;
}
