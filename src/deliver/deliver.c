/* The delivery engine (see deliver.h).
 *
 * A job's life on the dispatcher thread:
 *   arrives (sink / scan) -> in `jobs` (by id); due later -> the timer heap
 *   due -> route(): the target is looked up again (gone -> dropped) and the
 *          job joins its lane's queue
 *   lane has room (and rate tokens) -> start(): payload rendered, attempt
 *          handed to httpc / procs / the log writer / the store (bus)
 *   completion -> outcome: success, retry (timer heap), or final (DLQ or
 *          drop); the outcome goes to the store; the job stays in `jobs`
 *          (FINISHING) until the store has committed it, so a scan running
 *          meanwhile cannot bring it back.
 *
 * ERROR_CODE of dead letters (AWS publishes only a sample list; ours):
 *   NO_RESOURCE        unknown function, target kind not delivered here, API
 *                      destination / connection / bus missing, host not
 *                      resolvable, HTTP 404/410
 *   NO_PERMISSIONS     HTTP 401/403/407 (after a token refresh for OAuth),
 *                      connection not authorized
 *   THROTTLING         HTTP 429
 *   TIMEOUT            HTTP or program timeout
 *   CONNECTION_FAILURE refused or reset connections
 *   SDK_CLIENT_ERROR   other HTTP 4xx, 3xx (redirects are not followed), bad URL
 *   INTERNAL_ERROR     HTTP 5xx, program exit != 0 or killed, log write failure
 * Retried: 429, 5xx, timeouts, refused/reset connections, program failures,
 * log write failures. Final at once: everything else. */
#define _GNU_SOURCE
#include "deliver.h"

#include "../core/connections.h"
#include "../core/schedule.h"
#include "../util/util.h"
#include "httpc.h"
#include "proc.h"
#include "transform.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCAN_PAGE 512
#define SCAN_IDLE_MS 5000    /* a full pass over the queue this often (real ms) */
#define SCHED_REFRESH_MS 1000 /* re-read the scheduled rules (virtual ms) */
#define BACKOFF_BASE_MS 1000
#define BACKOFF_CAP_MS 600000
#define LOG_LANE_MAX 1024
#define BREAKER_FAILS 5
#define BREAKER_PROBE_MS 1000
#define BUS_LANE_MAX 256

/* ---- jobs, lanes ---------------------------------------------------------------------- */

enum { J_NEW = 0, J_WAITING, J_QUEUED, J_INFLIGHT, J_FINISHING };

enum { K_NONE = 0, K_FUNC_PROGRAM, K_FUNC_URL, K_APIDEST, K_BUS, K_LOG };

typedef struct lane lane;

typedef struct job {
    int64_t id, event_row, time_ms;
    char *rule, *target_id, *event_id, *body; /* one allocation: rule */
    size_t len;
    uint32_t attempts, hops;
    int64_t due_v; /* virtual ms */
    int state;
    size_t heap_at;
    struct job *hnext; /* hash chain */
    struct job *qnext; /* lane queue */
    lane *lane;
    eb_target_info ti; /* while queued / in flight */
    int64_t started_v;  /* first attempt start, for latency */
    int64_t started_mono_ms;
    int first_done;
    int refreshed; /* retried once with a fresh OAuth token */
    lane *wlane;   /* the lane whose `waiting` counts this job (retry timer) */
    int throttled;  /* this attempt waited for the lane's rate (ThrottledRules counted) */
} job;

struct lane {
    char *key;
    int kind;
    unsigned max, inflight;
    job *qhead, *qtail;
    size_t qlen;
    double rate, tokens; /* API destinations: invocations per second */
    int64_t refill_mono_ms;
    int throttled;
    struct lane *hnext;
    /* OAuth (API destinations): the token of this lane's connection */
    char *token;
    int fetching;
    char *conn_arn; /* the connection the token is for */
    /* A circuit breaker for targets that refuse connections: after
     * BREAKER_FAILS refusals in a row, attempts fail at once (as
     * CONNECTION_FAILURE, following their backoff) except one probe per
     * BREAKER_PROBE_MS, so a dead endpoint costs no sockets and little CPU. */
    unsigned refusals;
    int breaker_open;
    int64_t probe_at_ms; /* real mono ms */
    /* jobs this lane holds in memory: queued + waiting for a retry (held_max:
     * past it, further due jobs stay in the store until a later scan) */
    size_t waiting;
    int spilling;
};

/* A finished attempt, from an executor thread to the dispatcher. */
typedef enum { OUT_OK = 0, OUT_RETRY, OUT_FINAL, OUT_DROP, OUT_LOOP, OUT_SKIP } rclass;

typedef struct compl {
    struct compl *next;
    job *j;          /* NULL: a token fetch (lane) or a committed outcome (ids) */
    lane *token_lane;
    rclass cls;
    char code[32];
    char msg[256];
    int has_retry_after;
    int64_t retry_after_ms;
    int refresh_token;
    int http_seen;   /* an HTTP attempt really went out (not failed fast by the breaker) */
    int refused;     /* ... and its connection was refused */
    int not_tried;   /* failed at once, right after the target was looked up (by the breaker, or
                      * no lane: a target kind ebridge does not deliver): no second lookup */
    /* token fetch result */
    char *token;
    /* committed outcomes: jobs to forget, as (job id, event row) pairs */
    int64_t *ids;
    size_t nids;
} compl;

typedef struct {
    char *key; /* rule key */
    char *expr;
    char *rule_arn;
    int64_t created_ms;
    int enabled, seen;
    int64_t next_s; /* next firing, virtual epoch seconds; -1 none */
    int64_t last_s; /* last fired (persisted) */
} sched;

/* The log writer: lines queued per job, written in batches. */
typedef struct logline {
    struct logline *next;
    job *j;
    char *file; /* path */
    char *line;
    size_t len;
} logline;

struct eb_deliver {
    eb_deliver_config cfg;
    eb_function *funcs;
    char *data_dir, *log_dir;
    int64_t wall0_ms;   /* virtual time at start */
    uint64_t mono0_ns;
    int64_t anchor_ms;  /* real wall time at which virtual time = real time (time_scale != 1) */

    pthread_t thread;
    pthread_mutex_t mu; /* guards the inbox and stop */
    pthread_cond_t cv;
    job *fresh_head, **fresh_tail;
    size_t fresh_n;
    int fresh_dropped;
    compl *done_head, **done_tail;
    int stop;
    unsigned store_cbs; /* store callbacks still to come (they post here) */
    eb_deliver_stats stats; /* under mu */

    /* dispatcher thread only */
    job **buckets;
    size_t nbuckets, njobs;
    job **heap;
    size_t nheap, capheap;
    lane **lanes;
    size_t nlanes_b, nlanes;
    lane **throttled;
    size_t nthrottled, capthrottled;
    int scanning;
    int64_t scan_cursor;
    int64_t next_scan_ms; /* real mono ms */
    int overflow;
    sched *scheds;
    size_t nscheds, capscheds;
    int64_t next_sched_refresh_v;
    int64_t next_summary_ms;      /* real mono ms: an info line with the counts, when they changed */
    size_t lane_hold_max;         /* jobs one lane may hold in memory (max_jobs / 8) */
    eb_job_update *ub;            /* this round's outcomes (record / flush_outcomes) */
    int64_t *ub_ids;              /* ... the finished jobs among them: (job id, event row) pairs */
    char **ub_strs;               /* ... strings they own */
    size_t nub, nub_ids, nub_strs, capub;
    eb_deliver_stats last_summary;
    struct tcent **tc; /* target lookups of core generation tc_gen (tc_lookup) */
    size_t ntc_b, ntc;
    uint64_t tc_gen;
    json_t *sched_state; /* rule key -> last fired seconds (as loaded) */

    eb_httpc *http;
    eb_procs *procs;
    unsigned *func_running; /* per function */

    pthread_t logger;
    int have_logger;
    pthread_mutex_t lmu;
    pthread_cond_t lcv;
    logline *lhead, **ltail;
    int lstop;
};

/* ---- target lookups -------------------------------------------------------------------- */

/* One cached eb_core_target_get answer (dispatcher thread only): key is
 * "RULE_KEY\0TARGET_ID". Every attempt still sees the target as it is now:
 * the whole cache goes when the core's generation moves (any control-plane
 * call). Only targets found are kept (a failed lookup may also be out of
 * memory). */
typedef struct tcent {
    struct tcent *next;
    uint64_t h;
    eb_target_info ti;
    size_t rn, tn;
    char key[];
} tcent;

#define TC_MAX 65536 /* entries; past it the cache starts over */

static uint64_t tc_hash(const char *rule, size_t rn, const char *target, size_t tn)
{
    return eb_fnv1a(eb_fnv1a(EB_FNV1A_INIT, rule, rn + 1 /* and its NUL */), target, tn);
}

static void tc_clear(eb_deliver *d)
{
    for (size_t b = 0; b < d->ntc_b; b++)
        for (tcent *e = d->tc[b], *n; e; e = n) {
            n = e->next;
            eb_target_info_free(&e->ti);
            free(e);
        }
    free(d->tc);
    d->tc = NULL;
    d->ntc_b = d->ntc = 0;
}

/* eb_core_target_get through the cache: 0 with *out filled (the caller's own
 * copy), -1 when the rule or target does not exist (or out of memory). */
static int tc_lookup(eb_deliver *d, const char *rule, const char *target, eb_target_info *out)
{
    uint64_t gen = eb_core_generation(d->cfg.core); /* before the lookup: see eb_core_generation */
    if (gen != d->tc_gen || d->ntc >= TC_MAX) {
        tc_clear(d);
        d->tc_gen = gen;
    }
    size_t rn = strlen(rule), tn = strlen(target);
    uint64_t h = tc_hash(rule, rn, target, tn);
    if (d->ntc_b)
        for (tcent *e = d->tc[h & (d->ntc_b - 1)]; e; e = e->next)
            if (e->h == h && e->rn == rn && e->tn == tn && !memcmp(e->key, rule, rn) &&
                !memcmp(e->key + rn + 1, target, tn))
                return eb_target_info_copy(out, &e->ti);
    int rc = eb_core_target_get(d->cfg.core, rule, target, out);
    if (rc)
        return rc;
    if (d->ntc + 1 > d->ntc_b) { /* grow (or start) the table */
        size_t nb = d->ntc_b ? d->ntc_b * 2 : 64;
        tcent **t = calloc(nb, sizeof *t);
        if (!t)
            return rc;
        for (size_t b = 0; b < d->ntc_b; b++)
            for (tcent *e = d->tc[b], *n; e; e = n) {
                n = e->next;
                e->next = t[e->h & (nb - 1)];
                t[e->h & (nb - 1)] = e;
            }
        free(d->tc);
        d->tc = t;
        d->ntc_b = nb;
    }
    tcent *e = malloc(sizeof *e + rn + tn + 2);
    if (!e)
        return rc;
    e->h = h;
    e->rn = rn;
    e->tn = tn;
    memcpy(e->key, rule, rn + 1);
    memcpy(e->key + rn + 1, target, tn + 1);
    if (eb_target_info_copy(&e->ti, out)) {
        free(e);
        return rc;
    }
    e->next = d->tc[h & (d->ntc_b - 1)];
    d->tc[h & (d->ntc_b - 1)] = e;
    d->ntc++;
    return rc;
}

/* ---- time --------------------------------------------------------------------------- */

static int64_t mono_ms(void)
{
    return (int64_t)(eb_mono_ns() / 1000000u);
}

/* The engine's clock: virtual time at start + elapsed real time x time_scale.
 * With a time scale, virtual time runs that much faster from an anchor kept
 * in the store (the first start on the data dir), also while the server is
 * down: a restart continues the same clock, so persisted virtual times (retry
 * due times, the schedules' last firings) stay meaningful. */
static int64_t vnow_ms(const eb_deliver *d)
{
    double el = (double)(eb_mono_ns() - d->mono0_ns) / 1e6;
    return d->wall0_ms + (int64_t)(el * d->cfg.time_scale);
}

/* A real wall time (e.g. an event's ingestion time) on the virtual clock. */
static int64_t v_of_real(const eb_deliver *d, int64_t real_ms)
{
    return d->anchor_ms + (int64_t)((double)(real_ms - d->anchor_ms) * d->cfg.time_scale);
}

/* Virtual ms from now -> real ms. */
static int64_t real_delay(const eb_deliver *d, int64_t v)
{
    if (v <= 0)
        return 0;
    double r = (double)v / d->cfg.time_scale;
    return r > 1e12 ? (int64_t)1e12 : (int64_t)ceil(r);
}

int64_t eb_deliver_backoff_ms(uint32_t attempt)
{
    if (attempt == 0)
        return 0;
    int64_t d = BACKOFF_BASE_MS;
    for (uint32_t i = 1; i < attempt && d < BACKOFF_CAP_MS; i++)
        d *= 2;
    return d < BACKOFF_CAP_MS ? d : BACKOFF_CAP_MS;
}

static uint64_t rnd64(void)
{
    static __thread uint64_t x;
    if (!x) {
        char u[37];
        eb_uuid4(u);
        for (int i = 0; u[i]; i++)
            x = x * 131 + (unsigned char)u[i];
        x |= 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

/* ---- metrics ---------------------------------------------------------------------------- */

/* A rule's series {event_bus, rule} of metric m and the aggregates the
 * metric has (docs/metrics.md): {event_bus} and the unlabelled one. */
static void count_rule(eb_deliver *d, eb_metric_id m, const char *bus, const char *rule, uint64_t n)
{
    const eb_metric_def *def = eb_metric_info(m);
    if (!d->cfg.metrics || !def)
        return;
    if (def->label_sets & EB_LS_RULE)
        eb_counter_add(eb_metrics_counter(d->cfg.metrics, m, bus, rule), n);
    if (def->label_sets & EB_LS_BUS)
        eb_counter_add(eb_metrics_counter(d->cfg.metrics, m, bus, NULL), n);
    if (def->label_sets & EB_LS_NONE)
        eb_counter_add(eb_metrics_counter(d->cfg.metrics, m, NULL, NULL), n);
}

static void count(eb_deliver *d, eb_metric_id m, const job *j, uint64_t n)
{
    if (j && j->ti.bus)
        count_rule(d, m, j->ti.bus, j->ti.rule, n);
}

static void observe(eb_deliver *d, eb_metric_id m, const job *j, double v)
{
    const eb_metric_def *def = eb_metric_info(m);
    if (!d->cfg.metrics || !def || !j || !j->ti.bus)
        return;
    if (def->label_sets & EB_LS_RULE)
        eb_histogram_observe(eb_metrics_histogram(d->cfg.metrics, m, j->ti.bus, j->ti.rule), v);
    if (def->label_sets & EB_LS_BUS)
        eb_histogram_observe(eb_metrics_histogram(d->cfg.metrics, m, j->ti.bus, NULL), v);
    if (def->label_sets & EB_LS_NONE)
        eb_histogram_observe(eb_metrics_histogram(d->cfg.metrics, m, NULL, NULL), v);
}

/* ---- the job table --------------------------------------------------------------------------- */

static size_t hslot(const eb_deliver *d, int64_t id)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 20) & (d->nbuckets - 1);
}

static job *job_find(const eb_deliver *d, int64_t id)
{
    for (job *j = d->buckets[hslot(d, id)]; j; j = j->hnext)
        if (j->id == id)
            return j;
    return NULL;
}

static void job_insert(eb_deliver *d, job *j)
{
    if (d->njobs + 1 > d->nbuckets) {
        size_t nb = d->nbuckets * 2;
        job **b = calloc(nb, sizeof *b);
        if (b) {
            job **old = d->buckets;
            size_t on = d->nbuckets;
            d->buckets = b;
            d->nbuckets = nb;
            for (size_t i = 0; i < on; i++)
                for (job *x = old[i], *nx; x; x = nx) {
                    nx = x->hnext;
                    size_t s = hslot(d, x->id);
                    x->hnext = b[s];
                    b[s] = x;
                }
            free(old);
        }
    }
    size_t s = hslot(d, j->id);
    j->hnext = d->buckets[s];
    d->buckets[s] = j;
    d->njobs++;
}

static void job_free(job *j)
{
    if (!j)
        return;
    eb_target_info_free(&j->ti);
    free(j->rule);
    free(j);
}

static void job_remove(eb_deliver *d, job *j)
{
    if (j->wlane && j->wlane->waiting)
        j->wlane->waiting--;
    job **pp = &d->buckets[hslot(d, j->id)];
    while (*pp && *pp != j)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = j->hnext;
        d->njobs--;
    }
    job_free(j);
}

static job *job_new(const eb_store_job_rec *r)
{
    size_t rn = strlen(r->rule) + 1, tn = strlen(r->target_id) + 1, en = strlen(r->event_id) + 1;
    job *j = calloc(1, sizeof *j);
    char *mem = malloc(rn + tn + en + r->len + 1);
    if (!j || !mem) {
        free(j);
        free(mem);
        return NULL;
    }
    j->rule = mem;
    memcpy(j->rule, r->rule, rn);
    j->target_id = mem + rn;
    memcpy(j->target_id, r->target_id, tn);
    j->event_id = j->target_id + tn;
    memcpy(j->event_id, r->event_id, en);
    j->body = j->event_id + en;
    if (r->len)
        memcpy(j->body, r->body, r->len);
    j->body[r->len] = 0;
    j->len = r->len;
    j->id = r->job_id;
    j->event_row = r->event_row;
    j->time_ms = r->time_ms;
    j->attempts = r->attempts;
    j->hops = r->hops;
    j->due_v = r->next_attempt_ms;
    j->heap_at = (size_t)-1;
    return j;
}

/* ---- the timer heap (by due_v) ------------------------------------------------------------ */

static void heap_swap(eb_deliver *d, size_t a, size_t b)
{
    job *t = d->heap[a];
    d->heap[a] = d->heap[b];
    d->heap[b] = t;
    d->heap[a]->heap_at = a;
    d->heap[b]->heap_at = b;
}

static void heap_up(eb_deliver *d, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (d->heap[p]->due_v <= d->heap[i]->due_v)
            break;
        heap_swap(d, p, i);
        i = p;
    }
}

static void heap_down(eb_deliver *d, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < d->nheap && d->heap[l]->due_v < d->heap[m]->due_v)
            m = l;
        if (r < d->nheap && d->heap[r]->due_v < d->heap[m]->due_v)
            m = r;
        if (m == i)
            break;
        heap_swap(d, i, m);
        i = m;
    }
}

static int heap_push(eb_deliver *d, job *j)
{
    if (d->nheap == d->capheap) {
        size_t nc = d->capheap ? d->capheap * 2 : 256;
        job **nh = realloc(d->heap, nc * sizeof *nh);
        if (!nh)
            return -1;
        d->heap = nh;
        d->capheap = nc;
    }
    j->heap_at = d->nheap;
    d->heap[d->nheap++] = j;
    heap_up(d, j->heap_at);
    return 0;
}

static job *heap_pop(eb_deliver *d)
{
    job *top = d->heap[0];
    d->nheap--;
    if (d->nheap) {
        d->heap[0] = d->heap[d->nheap];
        d->heap[0]->heap_at = 0;
        heap_down(d, 0);
    }
    top->heap_at = (size_t)-1;
    return top;
}

/* ---- lanes ---------------------------------------------------------------------------------- */

static size_t lslot(const eb_deliver *d, const char *key)
{
    return (size_t)eb_fnv1a(EB_FNV1A_INIT, key, strlen(key)) & (d->nlanes_b - 1);
}

static lane *lane_get(eb_deliver *d, const char *key, int kind, unsigned max)
{
    size_t s = lslot(d, key);
    for (lane *l = d->lanes[s]; l; l = l->hnext)
        if (!strcmp(l->key, key)) {
            l->max = max;
            return l;
        }
    lane *l = calloc(1, sizeof *l);
    if (!l || !(l->key = strdup(key))) {
        free(l);
        return NULL;
    }
    l->kind = kind;
    l->max = max;
    l->refill_mono_ms = mono_ms();
    l->hnext = d->lanes[s];
    d->lanes[s] = l;
    d->nlanes++;
    return l;
}

/* A lane's queue: jobs waiting for room (FIFO; a parked attempt goes back to
 * the front). */
static job *lane_pop(lane *l)
{
    job *j = l->qhead;
    l->qhead = j->qnext;
    if (!l->qhead)
        l->qtail = NULL;
    l->qlen--;
    j->qnext = NULL;
    return j;
}

/* An attempt in flight goes back to the front of its lane's queue. */
static void lane_requeue_front(lane *l, job *j)
{
    if (l->inflight)
        l->inflight--;
    j->state = J_QUEUED;
    j->qnext = l->qhead;
    l->qhead = j;
    if (!l->qtail)
        l->qtail = j;
    l->qlen++;
}

/* ---- the inbox ---------------------------------------------------------------------------- */

static void post(eb_deliver *d, compl *c)
{
    pthread_mutex_lock(&d->mu);
    c->next = NULL;
    *d->done_tail = c;
    d->done_tail = &c->next;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static compl *compl_new(job *j, rclass cls, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static compl *compl_new(job *j, rclass cls, const char *code, const char *fmt, ...)
{
    compl *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->j = j;
    c->cls = cls;
    snprintf(c->code, sizeof c->code, "%s", code ? code : "");
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->msg, sizeof c->msg, fmt, ap);
        va_end(ap);
    }
    return c;
}

/* Executors' completions. Out of memory: the job is left in flight; it is
 * delivered again after a restart. */
static void complete(eb_deliver *d, job *j, rclass cls, const char *code, const char *msg)
{
    compl *c = compl_new(j, cls, code, "%s", msg ? msg : "");
    if (c)
        post(d, c);
    else
        eb_log(EB_LOG_ERROR, "deliver: out of memory; an attempt's outcome is lost", "job=%lld", (long long)j->id);
}

/* The store's sink: fresh jobs right after their commit (store thread). */
static void on_jobs(void *ctx, const eb_store_job_rec *recs, size_t n)
{
    eb_deliver *d = ctx;
    job *first = NULL, **tail = &first;
    size_t k = 0;
    pthread_mutex_lock(&d->mu);
    size_t room = d->cfg.max_jobs > d->stats.in_memory + d->fresh_n ? d->cfg.max_jobs - d->stats.in_memory - d->fresh_n : 0;
    pthread_mutex_unlock(&d->mu);
    int dropped = 0;
    for (size_t i = 0; i < n; i++) {
        job *j = k < room ? job_new(&recs[i]) : NULL;
        if (!j) {
            dropped = 1; /* stays in the store: the next scan finds it */
            continue;
        }
        *tail = j;
        tail = &j->qnext;
        k++;
    }
    pthread_mutex_lock(&d->mu);
    if (first) {
        *d->fresh_tail = first;
        d->fresh_tail = tail;
        d->fresh_n += k;
    }
    d->fresh_dropped |= dropped;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

/* ---- outcomes --------------------------------------------------------------------------------- */

/* A store callback is expected / arrived with its completion. */
static void store_cb_expect(eb_deliver *d)
{
    pthread_mutex_lock(&d->mu);
    d->store_cbs++;
    pthread_mutex_unlock(&d->mu);
}

static void store_cb_post(eb_deliver *d, compl *c)
{
    pthread_mutex_lock(&d->mu);
    if (c) {
        c->next = NULL;
        *d->done_tail = c;
        d->done_tail = &c->next;
    }
    d->store_cbs--;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

typedef struct {
    eb_deliver *d;
    compl *c;
} committed_ctx;

/* The store has committed outcomes: forget those jobs (store thread). A
 * failed commit leaves them pending in the store: a scan brings them back. */
static void on_committed(void *ctx, int status)
{
    committed_ctx *cc = ctx;
    (void)status;
    store_cb_post(cc->d, cc->c);
    free(cc);
}

/* Queue the outcome of j to the store; j becomes FINISHING (finished) or
 * WAITING (retry) until the commit. */
static void record(eb_deliver *d, job *j, eb_job_outcome oc, const char *dlq, const char *attrs)
{
    /* Outcomes are gathered during a dispatcher round and go to the store as
     * one request (flush_outcomes): one queue entry and one callback for
     * many jobs. The jobs' strings stay valid until then (finished jobs are
     * kept, FINISHING, until their commit comes back). */
    if (d->nub == d->capub) {
        size_t nc = d->capub ? d->capub * 2 : 256;
        eb_job_update *nu = realloc(d->ub, nc * sizeof *nu);
        if (nu)
            d->ub = nu;
        int64_t *ni = nu ? realloc(d->ub_ids, 2 * nc * sizeof *ni) : NULL; /* (job id, event row) pairs */
        if (ni)
            d->ub_ids = ni;
        char **ns = ni ? realloc(d->ub_strs, 2 * nc * sizeof *ns) : NULL; /* two strings per outcome at most */
        if (ns)
            d->ub_strs = ns;
        if (!ns) { /* out of memory: the job stays pending in the store; a scan brings it back */
            if (oc != EB_JOB_RETRY)
                job_remove(d, j);
            return;
        }
        d->capub = nc;
    }
    /* dlq and attrs may live on the caller's stack: copied */
    char *a = attrs ? strdup(attrs) : NULL;
    char *q = dlq ? strdup(dlq) : NULL;
    if ((attrs && !a) || (dlq && !q)) {
        free(a);
        free(q);
        if (oc != EB_JOB_RETRY)
            job_remove(d, j);
        return;
    }
    if (a)
        d->ub_strs[d->nub_strs++] = a;
    if (q)
        d->ub_strs[d->nub_strs++] = q;
    d->ub[d->nub++] = (eb_job_update){.job_id = j->id,
                                      .event_row = j->event_row,
                                      .outcome = oc,
                                      .attempts = j->attempts,
                                      .next_attempt_ms = j->due_v,
                                      .dlq = q,
                                      .dlq_attrs = a,
                                      .rule = j->rule,
                                      .target_id = j->target_id,
                                      .event_id = j->event_id,
                                      .body = j->body,
                                      .len = j->len,
                                      .time_ms = eb_now_ms()};
    if (oc == EB_JOB_RETRY)
        return; /* not waited for: the job stays in memory with its timer */
    d->ub_ids[2 * d->nub_ids] = j->id;
    d->ub_ids[2 * d->nub_ids + 1] = j->event_row;
    d->nub_ids++;
    j->state = J_FINISHING;
    eb_target_info_free(&j->ti);
}

/* Send the round's outcomes to the store (dispatcher thread). */
static void flush_outcomes(eb_deliver *d)
{
    if (!d->nub)
        return;
    compl *c = NULL;
    committed_ctx *cc = NULL;
    int64_t *ids = NULL;
    if (d->nub_ids) {
        c = calloc(1, sizeof *c);
        ids = c ? malloc(2 * d->nub_ids * sizeof *ids) : NULL;
        cc = ids ? malloc(sizeof *cc) : NULL;
    }
    int rc;
    if (d->nub_ids && cc) {
        memcpy(ids, d->ub_ids, 2 * d->nub_ids * sizeof *ids);
        c->ids = ids;
        c->nids = d->nub_ids;
        cc->d = d;
        cc->c = c;
        store_cb_expect(d);
        rc = eb_store_job_update(d->cfg.store, d->ub, d->nub, on_committed, cc);
        if (rc != EB_STORE_OK) {
            store_cb_post(d, NULL);
            free(cc);
            cc = NULL;
        }
    } else {
        rc = eb_store_job_update(d->cfg.store, d->ub, d->nub, NULL, NULL);
    }
    if (!cc) {
        /* not queued, or no memory to hear back: forget the finished jobs
         * here (a failed request leaves them pending in the store, and a
         * scan brings them back) */
        for (size_t i = 0; i < d->nub_ids; i++) {
            job *j = job_find(d, d->ub_ids[2 * i]);
            if (j && j->state == J_FINISHING && j->event_row == d->ub_ids[2 * i + 1])
                job_remove(d, j);
        }
        free(ids);
        free(c);
    }
    (void)rc;
    for (size_t i = 0; i < d->nub_strs; i++)
        free(d->ub_strs[i]);
    d->nub = d->nub_ids = d->nub_strs = 0;
}

static void stat_add(eb_deliver *d, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&d->mu);
    *field += n;
    pthread_mutex_unlock(&d->mu);
}

static void json_attr(eb_buf *b, const char *k, const char *v, int first)
{
    if (!first)
        eb_buf_putc(b, ',');
    eb_buf_json_str(b, k, strlen(k));
    eb_buf_putc(b, ':');
    eb_buf_json_str(b, v, strlen(v));
}

/* Final failure: the dead-letter queue if the target has one, else dropped. */
static void dead_letter(eb_deliver *d, job *j, const char *code, const char *msg, const char *exhausted)
{
    const json_t *dlc = json_object_get(j->ti.target, "DeadLetterConfig");
    const char *dlq_arn = json_string_value(json_object_get(dlc, "Arn"));
    /* a permanent failure, whether dead-lettered or dropped (AWS counts DLQ'd
     * invocations in FailedInvocations; DeadLetterInvocations is for events
     * a target is never invoked with, e.g. loops) */
    count(d, EB_M_INVOCATIONS, j, 1);
    count(d, EB_M_FAILED_INVOCATIONS, j, 1);
    if (!dlq_arn) {
        stat_add(d, &d->stats.dropped, 1);
        eb_log(EB_LOG_DEBUG, "deliver: dropped", "rule=\"%s\" target=\"%s\" event=%s code=%s err=\"%s\"", j->rule,
               j->target_id, j->event_id, code, msg);
        record(d, j, EB_JOB_FINISHED, NULL, NULL);
        return;
    }
    /* arn:aws:sqs:REGION:ACCOUNT:NAME */
    char part[4][257];
    const char *p = dlq_arn;
    int ok = !strncmp(p, "arn:", 4);
    p += 4;
    for (int i = 0; ok && i < 4; i++) {
        const char *colon = strchr(p, ':');
        if (!colon || (size_t)(colon - p) >= sizeof part[i]) {
            ok = 0;
            break;
        }
        memcpy(part[i], p, (size_t)(colon - p));
        part[i][colon - p] = 0;
        p = colon + 1;
    }
    ok = ok && !strcmp(part[1], "sqs") && *p && !strchr(p, ':') && !strchr(p, '/') && strlen(p) <= 80;
    if (!ok) {
        count(d, EB_M_INVOCATIONS_FAILED_TO_BE_SENT_TO_DLQ, j, 1);
        stat_add(d, &d->stats.dropped, 1);
        eb_log(EB_LOG_WARN, "deliver: dead-letter queue ARN not usable; dropped", "dlq=\"%s\" rule=\"%s\"", dlq_arn,
               j->rule);
        record(d, j, EB_JOB_FINISHED, NULL, NULL);
        return;
    }
    char queue[700];
    snprintf(queue, sizeof queue, "%s/%s/%s", part[3], part[2], p);
    eb_buf a = {0};
    char n[24];
    snprintf(n, sizeof n, "%u", j->attempts);
    eb_buf_putc(&a, '{');
    json_attr(&a, "RULE_ARN", j->ti.rule_arn, 1);
    json_attr(&a, "TARGET_ARN", json_string_value(json_object_get(j->ti.target, "Arn")), 0);
    json_attr(&a, "ERROR_CODE", code, 0);
    json_attr(&a, "ERROR_MESSAGE", msg, 0);
    if (exhausted)
        json_attr(&a, "EXHAUSTED_RETRY_CONDITION", exhausted, 0);
    json_attr(&a, "RETRY_ATTEMPTS", n, 0);
    if (eb_buf_putc(&a, '}')) {
        eb_buf_free(&a);
        count(d, EB_M_INVOCATIONS_FAILED_TO_BE_SENT_TO_DLQ, j, 1);
        record(d, j, EB_JOB_FINISHED, NULL, NULL);
        return;
    }
    count(d, EB_M_INVOCATIONS_SENT_TO_DLQ, j, 1);
    stat_add(d, &d->stats.dead_lettered, 1);
    eb_log(EB_LOG_DEBUG, "deliver: dead-lettered", "queue=\"%s\" rule=\"%s\" target=\"%s\" event=%s code=%s", queue,
           j->rule, j->target_id, j->event_id, code);
    record(d, j, EB_JOB_FINISHED, queue, a.p);
    eb_buf_free(&a);
}

/* Retry policy of the target: attempts and age. */
static void retry_policy(const job *j, int64_t *max_attempts, int64_t *max_age_s)
{
    const json_t *rp = json_object_get(j->ti.target, "RetryPolicy");
    const json_t *a = json_object_get(rp, "MaximumRetryAttempts");
    const json_t *g = json_object_get(rp, "MaximumEventAgeInSeconds");
    *max_attempts = json_is_integer(a) ? json_integer_value(a) : 185;
    *max_age_s = json_is_integer(g) ? json_integer_value(g) : 86400;
}

static void lane_pump(eb_deliver *d, lane *l);
static void route(eb_deliver *d, job *j);

static void outcome(eb_deliver *d, compl *c)
{
    job *j = c->j;
    lane *l = j->lane;
    if (l && j->state == J_INFLIGHT && l->inflight)
        l->inflight--;
    j->lane = NULL;
    int64_t now_v = vnow_ms(d);
    if ((c->cls == OUT_RETRY || c->cls == OUT_FINAL) && !c->not_tried) {
        /* a failed attempt whose target, rule or bus was removed meanwhile:
         * dropped now (and not counted for a rule that no longer exists) */
        eb_target_info now;
        if (eb_core_target_get(d->cfg.core, j->rule, j->target_id, &now))
            c->cls = OUT_DROP;
        else
            eb_target_info_free(&now);
    }
    if (c->cls != OUT_DROP && c->cls != OUT_LOOP && c->cls != OUT_SKIP && j->ti.bus) {
        count(d, EB_M_INVOCATION_ATTEMPTS, j, 1);
        if (!j->first_done) {
            j->first_done = 1;
            observe(d, EB_M_INGESTION_TO_INVOCATION_COMPLETE_LATENCY, j, (double)(eb_now_ms() - j->time_ms));
        }
    }
    switch (c->cls) {
    case OUT_OK:
        count(d, EB_M_SUCCESSFUL_INVOCATION_ATTEMPTS, j, 1);
        count(d, EB_M_INVOCATIONS, j, 1);
        observe(d, EB_M_INGESTION_TO_INVOCATION_SUCCESS_LATENCY, j, (double)(eb_now_ms() - j->time_ms));
        stat_add(d, &d->stats.delivered, 1);
        record(d, j, EB_JOB_FINISHED, NULL, NULL);
        break;
    case OUT_SKIP: /* AWS silently does not deliver */
        count(d, EB_M_INVOCATIONS, j, 1);
        count(d, EB_M_FAILED_INVOCATIONS, j, 1);
        stat_add(d, &d->stats.dropped, 1);
        eb_log(EB_LOG_DEBUG, "deliver: not delivered", "rule=\"%s\" target=\"%s\" event=%s why=\"%s\"", j->rule,
               j->target_id, j->event_id, c->msg);
        record(d, j, EB_JOB_FINISHED, NULL, NULL);
        break;
    case OUT_DROP: /* the target, rule or bus is gone */
        stat_add(d, &d->stats.dropped, 1);
        eb_log(EB_LOG_DEBUG, "deliver: target gone; dropped", "rule=\"%s\" target=\"%s\" event=%s", j->rule,
               j->target_id, j->event_id);
        record(d, j, EB_JOB_FINISHED, NULL, NULL);
        break;
    case OUT_LOOP:
        count(d, EB_M_DEAD_LETTER_INVOCATIONS, j, 1);
        stat_add(d, &d->stats.dropped, 1);
        eb_log(EB_LOG_DEBUG, "deliver: bus loop; dropped", "rule=\"%s\" target=\"%s\" event=%s hops=%u", j->rule,
               j->target_id, j->event_id, j->hops);
        record(d, j, EB_JOB_FINISHED, NULL, NULL);
        break;
    case OUT_FINAL:
        dead_letter(d, j, c->code, c->msg, NULL);
        break;
    case OUT_RETRY: {
        int64_t max_attempts, max_age_s;
        retry_policy(j, &max_attempts, &max_age_s);
        int64_t age_ms = now_v - v_of_real(d, j->time_ms);
        if (c->has_retry_after && c->retry_after_ms < 0) {
            dead_letter(d, j, c->code, c->msg, NULL); /* a negative Retry-After stops retries */
            break;
        }
        if ((int64_t)j->attempts >= max_attempts) {
            dead_letter(d, j, c->code, c->msg, "MaximumRetryAttempts");
            break;
        }
        int64_t delay = eb_deliver_backoff_ms(j->attempts + 1);
        delay = delay / 2 + (int64_t)(rnd64() % (uint64_t)(delay / 2 + 1)); /* jitter: [d/2, d] */
        if (c->has_retry_after && c->retry_after_ms > delay)
            delay = c->retry_after_ms;
        if (age_ms + delay > max_age_s * 1000) {
            dead_letter(d, j, c->code, c->msg, "MaximumEventAgeInSeconds");
            break;
        }
        j->attempts++;
        j->due_v = now_v + delay;
        count(d, EB_M_RETRY_INVOCATION_ATTEMPTS, j, 1);
        stat_add(d, &d->stats.retried, 1);
        eb_log(EB_LOG_DEBUG, "deliver: retry", "rule=\"%s\" target=\"%s\" event=%s attempt=%u delay_ms=%lld code=%s",
               j->rule, j->target_id, j->event_id, j->attempts, (long long)delay, c->code);
        eb_target_info_free(&j->ti);
        j->state = J_WAITING;
        record(d, j, EB_JOB_RETRY, NULL, NULL);
        if (heap_push(d, j)) {
            job_remove(d, j); /* out of memory: the store's record brings it back */
        } else if (l) {
            l->waiting++;
            j->wlane = l;
        }
        break;
    }
    }
    if (l)
        lane_pump(d, l);
}

/* ---- executors ----------------------------------------------------------------------------- */

typedef struct {
    eb_deliver *d;
    job *j;
    int kind;
    lane *l;
} attempt;

static rclass http_class(const eb_http_result *r, const char **code, char *msg, size_t n)
{
    switch (r->outcome) {
    case EB_HTTP_RESPONSE:
        if (r->status >= 200 && r->status < 300)
            return OUT_OK;
        snprintf(msg, n, "HTTP status %ld", r->status);
        if (r->status == 429) {
            *code = "THROTTLING";
            return OUT_RETRY;
        }
        if (r->status >= 500) {
            *code = "INTERNAL_ERROR";
            return OUT_RETRY;
        }
        if (r->status == 401 || r->status == 403 || r->status == 407)
            *code = "NO_PERMISSIONS";
        else if (r->status == 404 || r->status == 410)
            *code = "NO_RESOURCE";
        else
            *code = "SDK_CLIENT_ERROR";
        if (r->status >= 300 && r->status < 400)
            snprintf(msg, n, "HTTP status %ld (redirects are not followed)", r->status);
        return OUT_FINAL;
    case EB_HTTP_TIMEOUT:
        *code = "TIMEOUT";
        snprintf(msg, n, "%s", r->error[0] ? r->error : "timed out");
        return OUT_RETRY;
    case EB_HTTP_REFUSED:
    case EB_HTTP_RESET:
        *code = "CONNECTION_FAILURE";
        snprintf(msg, n, "%s", r->error[0] ? r->error : "connection failed");
        return OUT_RETRY;
    case EB_HTTP_DNS:
        *code = "NO_RESOURCE";
        snprintf(msg, n, "%s", r->error[0] ? r->error : "host not resolvable");
        return OUT_FINAL;
    case EB_HTTP_BADURL:
        *code = "SDK_CLIENT_ERROR";
        snprintf(msg, n, "%s", r->error[0] ? r->error : "bad URL");
        return OUT_FINAL;
    case EB_HTTP_CANCELLED:
        *code = "INTERNAL_ERROR";
        snprintf(msg, n, "cancelled");
        return OUT_RETRY;
    default:
        *code = "CONNECTION_FAILURE";
        snprintf(msg, n, "%s", r->error[0] ? r->error : "transport error");
        return OUT_RETRY;
    }
}

static void on_http(void *ctx, const eb_http_result *r)
{
    attempt *a = ctx;
    const char *code = "";
    char msg[256] = "";
    rclass cls = http_class(r, &code, msg, sizeof msg);
    compl *c = compl_new(a->j, cls, code, "%s", msg);
    if (c) {
        c->has_retry_after = r->has_retry_after && cls == OUT_RETRY;
        c->retry_after_ms = r->retry_after_ms;
        c->refresh_token = a->kind == K_APIDEST && r->outcome == EB_HTTP_RESPONSE &&
                           (r->status == 401 || r->status == 407);
        c->http_seen = 1;
        c->refused = r->outcome == EB_HTTP_REFUSED;
        post(a->d, c);
    }
    free(a);
}

static void on_proc(void *ctx, const eb_proc_result *r)
{
    attempt *a = ctx;
    if (r->output_len)
        eb_log(EB_LOG_DEBUG, "deliver: function output", "target=\"%s\" event=%s output=\"%.*s\"", a->j->target_id,
               a->j->event_id, (int)(r->output_len > 2000 ? 2000 : r->output_len), r->output);
    switch (r->outcome) {
    case EB_PROC_EXITED:
        if (r->code == 0)
            complete(a->d, a->j, OUT_OK, NULL, NULL);
        else {
            char m[64];
            snprintf(m, sizeof m, "the function exited with status %d", r->code);
            complete(a->d, a->j, OUT_RETRY, "INTERNAL_ERROR", m);
        }
        break;
    case EB_PROC_SIGNALED: {
        char m[64];
        snprintf(m, sizeof m, "the function was killed by signal %d", r->code);
        complete(a->d, a->j, OUT_RETRY, "INTERNAL_ERROR", m);
        break;
    }
    case EB_PROC_TIMEOUT:
        complete(a->d, a->j, OUT_RETRY, "TIMEOUT", "the function timed out");
        break;
    case EB_PROC_SPAWN_FAILED:
        complete(a->d, a->j, OUT_RETRY, "INTERNAL_ERROR", r->error[0] ? r->error : "cannot start the function");
        break;
    default:
        complete(a->d, a->j, OUT_RETRY, "INTERNAL_ERROR", "cancelled");
        break;
    }
    free(a);
}

static void on_forwarded(void *ctx, int status)
{
    attempt *a = ctx;
    compl *c = status == EB_STORE_OK
                   ? compl_new(a->j, OUT_OK, NULL, NULL)
                   : compl_new(a->j, OUT_RETRY, "INTERNAL_ERROR", "the event could not be stored on the target bus");
    store_cb_post(a->d, c);
    free(a);
}

/* ---- log groups ---------------------------------------------------------------------------- */

/* A log group name as one flat file name: [A-Za-z0-9._-] kept, everything
 * else (also '/', '#', '.' at the start) as %XX. */
static int log_file(const eb_deliver *d, const char *group, eb_buf *out)
{
    int rc = eb_buf_puts(out, d->log_dir) | eb_buf_putc(out, '/');
    for (const unsigned char *p = (const unsigned char *)group; *p; p++) {
        int keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                   *p == '_' || (*p == '.' && p != (const unsigned char *)group);
        rc |= keep ? eb_buf_putc(out, (char)*p) : eb_buf_printf(out, "%%%02X", *p);
    }
    rc |= eb_buf_puts(out, ".ndjson");
    return rc;
}

static void *logger_main(void *arg)
{
    prctl(PR_SET_NAME, "eb-logwriter", 0, 0, 0); /* for top -H, perf */
    eb_deliver *d = arg;
    for (;;) {
        pthread_mutex_lock(&d->lmu);
        while (!d->lhead && !d->lstop)
            pthread_cond_wait(&d->lcv, &d->lmu);
        logline *batch = d->lhead;
        d->lhead = NULL;
        d->ltail = &d->lhead;
        int stop = d->lstop;
        pthread_mutex_unlock(&d->lmu);
        if (!batch && stop)
            return NULL;
        /* group by file: one open/write/fdatasync per file per batch */
        while (batch) {
            const char *file = batch->file;
            logline *mine = NULL, **mt = &mine, *rest = NULL, **rt = &rest;
            for (logline *x = batch, *nx; x; x = nx) {
                nx = x->next;
                x->next = NULL;
                if (!strcmp(x->file, file)) {
                    *mt = x;
                    mt = &x->next;
                } else {
                    *rt = x;
                    rt = &x->next;
                }
            }
            int ok = 0;
            int fd = open(mine->file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
            if (fd >= 0) {
                ok = 1;
                for (logline *x = mine; x && ok; x = x->next) {
                    size_t off = 0;
                    while (off < x->len) {
                        ssize_t w = write(fd, x->line + off, x->len - off);
                        if (w < 0 && errno == EINTR)
                            continue;
                        if (w <= 0) {
                            ok = 0;
                            break;
                        }
                        off += (size_t)w;
                    }
                }
                if (ok && fdatasync(fd) != 0)
                    ok = 0;
                close(fd);
            }
            if (!ok)
                eb_log(EB_LOG_ERROR, "deliver: cannot write a log group file", "file=\"%s\" err=\"%s\"", mine->file,
                       strerror(errno));
            for (logline *x = mine, *nx; x; x = nx) {
                nx = x->next;
                if (ok)
                    complete(d, x->j, OUT_OK, NULL, NULL);
                else
                    complete(d, x->j, OUT_RETRY, "INTERNAL_ERROR", "the log group file could not be written");
                free(x->file);
                free(x->line);
                free(x);
            }
            batch = rest;
        }
    }
}

/* ---- starting an attempt --------------------------------------------------------------------- */

/* Which function NAME is (index), or -1. */
static int func_index(const eb_deliver *d, const char *name)
{
    for (size_t i = 0; i < d->cfg.nfunctions; i++)
        if (!strcmp(d->funcs[i].name, name))
            return (int)i;
    return -1;
}

/* ARN parts: service and resource (after the 5th ':'). */
static int arn_split(const char *arn, char *service, size_t sn, char *region, size_t rn, char *account, size_t an,
                     const char **resource)
{
    if (!arn || strncmp(arn, "arn:", 4))
        return -1;
    const char *p = strchr(arn + 4, ':');
    if (!p)
        return -1;
    p++;
    char *outs[3] = {service, region, account};
    size_t ns[3] = {sn, rn, an};
    for (int i = 0; i < 3; i++) {
        const char *c = strchr(p, ':');
        if (!c || (size_t)(c - p) >= ns[i])
            return -1;
        memcpy(outs[i], p, (size_t)(c - p));
        outs[i][c - p] = 0;
        p = c + 1;
    }
    *resource = p;
    return 0;
}

/* Decide the lane of a job from its (fresh) target. 0, or -1 with the job
 * completed (gone / not deliverable). */
static lane *lane_for(eb_deliver *d, job *j, const char **code, const char **msg)
{
    const char *arn = json_string_value(json_object_get(j->ti.target, "Arn"));
    char service[64], region[64], account[64], key[2200];
    const char *res;
    *code = "NO_RESOURCE";
    *msg = "the target kind is not delivered by this server";
    if (arn_split(arn, service, sizeof service, region, sizeof region, account, sizeof account, &res))
        return NULL;
    if (!strcmp(service, "lambda") && !strncmp(res, "function:", 9)) {
        char name[256];
        const char *n = res + 9;
        size_t len = strcspn(n, ":"); /* function:NAME[:QUALIFIER] */
        if (len >= sizeof name)
            len = sizeof name - 1;
        memcpy(name, n, len);
        name[len] = 0;
        int fi = func_index(d, name);
        if (fi < 0) {
            *msg = "the function is not registered with this server";
            return NULL;
        }
        snprintf(key, sizeof key, "fn:%s", name);
        int prog = d->funcs[fi].program != NULL;
        return lane_get(d, key, prog ? K_FUNC_PROGRAM : K_FUNC_URL,
                        prog ? d->cfg.function_concurrency : d->cfg.lane_concurrency);
    }
    if (!strcmp(service, "events") && !strncmp(res, "api-destination/", 16)) {
        snprintf(key, sizeof key, "api:%s", arn);
        return lane_get(d, key, K_APIDEST, d->cfg.lane_concurrency);
    }
    if (!strcmp(service, "events") && !strncmp(res, "event-bus/", 10)) {
        snprintf(key, sizeof key, "bus:%s", arn);
        return lane_get(d, key, K_BUS, BUS_LANE_MAX);
    }
    if (!strcmp(service, "logs") && !strncmp(res, "log-group:", 10)) {
        snprintf(key, sizeof key, "log:%s:%s:%s", account, region, res + 10);
        size_t kl = strlen(key);
        if (kl > 2 && !strcmp(key + kl - 2, ":*"))
            key[kl - 2] = 0;
        return lane_get(d, key, K_LOG, LOG_LANE_MAX);
    }
    return NULL;
}

static void start_http(eb_deliver *d, job *j, lane *l, const char *url, const char *method, const char *const *headers,
                       const char *body, size_t len, long timeout_ms)
{
    attempt *a = malloc(sizeof *a);
    if (!a) {
        complete(d, j, OUT_RETRY, "INTERNAL_ERROR", "out of memory");
        return;
    }
    *a = (attempt){d, j, l->kind, l};
    eb_http_req req = {.method = method,
                       .url = url,
                       .headers = headers,
                       .body = body,
                       .body_len = len,
                       .timeout_ms = timeout_ms};
    if (eb_httpc_submit(d->http, &req, on_http, a)) {
        free(a);
        complete(d, j, OUT_RETRY, "INTERNAL_ERROR", "the HTTP client refused the request");
    }
}

/* Append "k=v" URL-encoded query parameters of a JSON object. */
static void query_params(eb_buf *url, const json_t *params, int *first)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)params, k, v) {
        const char *s = json_string_value(v);
        if (!s)
            continue;
        eb_buf_putc(url, *first ? (strchr(url->p, '?') ? '&' : '?') : '&');
        *first = 0;
        const char *parts[2] = {k, s};
        for (int i = 0; i < 2; i++) {
            if (i)
                eb_buf_putc(url, '=');
            for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++) {
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                    *p == '_' || *p == '.' || *p == '~')
                    eb_buf_putc(url, (char)*p);
                else
                    eb_buf_printf(url, "%%%02X", *p);
            }
        }
    }
}

static int token_fetch(eb_deliver *d, lane *l, const eb_apidest_info *info);

/* Free a buffer that held a secret, wiping it first. */
static void buf_wipe(eb_buf *b)
{
    if (b->p)
        memset(b->p, 0, b->cap);
    eb_buf_free(b);
}

/* Append "Authorization: Basic base64(user:pass)" and a NUL to lines. */
static void basic_auth_line(eb_buf *lines, const char *user, const char *pass)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    eb_buf up = {0}, enc = {0};
    eb_buf_printf(&up, "%s:%s", user ? user : "", pass ? pass : "");
    for (size_t q = 0; q < up.n; q += 3) {
        unsigned x = (unsigned char)up.p[q] << 16;
        if (q + 1 < up.n)
            x |= (unsigned char)up.p[q + 1] << 8;
        if (q + 2 < up.n)
            x |= (unsigned char)up.p[q + 2];
        eb_buf_putc(&enc, b64[(x >> 18) & 63]);
        eb_buf_putc(&enc, b64[(x >> 12) & 63]);
        eb_buf_putc(&enc, q + 1 < up.n ? b64[(x >> 6) & 63] : '=');
        eb_buf_putc(&enc, q + 2 < up.n ? b64[x & 63] : '=');
    }
    eb_buf_printf(lines, "Authorization: Basic %s", enc.p ? enc.p : "");
    eb_buf_putc(lines, 0);
    buf_wipe(&up);
    buf_wipe(&enc);
}

/* API destination invocation, reference §10.3. */
static void start_apidest(eb_deliver *d, job *j, lane *l, const char *payload, size_t plen)
{
    const char *arn = json_string_value(json_object_get(j->ti.target, "Arn"));
    eb_apidest_info info;
    if (eb_core_apidest_lookup(d->cfg.core, arn, &info)) {
        complete(d, j, OUT_FINAL, "NO_RESOURCE", "the API destination or its connection does not exist");
        return;
    }
    l->rate = info.rate_per_s ? info.rate_per_s : 300;
    if (info.conn_state && strcmp(info.conn_state, "AUTHORIZED") && strcmp(info.conn_state, "AUTHORIZING")) {
        complete(d, j, OUT_FINAL, "NO_PERMISSIONS", "the connection is not authorized");
        eb_apidest_info_free(&info);
        return;
    }
    int oauth = info.auth_type && !strcmp(info.auth_type, "OAUTH_CLIENT_CREDENTIALS");
    if (oauth && !l->token) {
        /* park: the job goes back to the front of the lane once a token is there */
        lane_requeue_front(l, j);
        if (!l->fetching && token_fetch(d, l, &info)) {
            /* cannot even ask: this attempt fails (retried with backoff) */
            lane_pop(l);
            l->inflight++;
            j->state = J_INFLIGHT;
            complete(d, j, OUT_RETRY, "NO_PERMISSIONS", "no OAuth token endpoint to ask");
        }
        eb_apidest_info_free(&info);
        return;
    }
    json_t *hp = eb_input_http_params(json_object_get(j->ti.target, "HttpParameters"), j->body, j->len);
    /* URL: '*' segments filled from PathParameterValues in order */
    eb_buf url = {0};
    const json_t *ppv = json_object_get(hp, "PathParameterValues");
    size_t pi = 0;
    for (const char *p = info.endpoint; p && *p; p++) {
        if (*p == '*') {
            const char *v = json_string_value(json_array_get(ppv, pi++));
            eb_buf_puts(&url, v ? v : "");
        } else {
            eb_buf_putc(&url, *p);
        }
    }
    int first = 1;
    query_params(&url, json_object_get(hp, "QueryStringParameters"), &first);
    const json_t *inv = info.invocation_params;
    json_t *cq = json_object();
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(inv, "QueryStringParameters"), i, it) {
        const char *k = json_string_value(json_object_get(it, "Key"));
        const json_t *v = json_object_get(it, "Value");
        if (k && json_is_string(v))
            json_object_set(cq, k, (json_t *)v);
    }
    query_params(&url, cq, &first);
    json_decref(cq);
    /* headers: the connection's win over the target's; then auth and fixed ones */
    json_t *hdr = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(hp, "HeaderParameters"), k, v) if (json_is_string(v)) json_object_set(hdr, k, v);
    json_array_foreach(json_object_get(inv, "HeaderParameters"), i, it) {
        const char *hk = json_string_value(json_object_get(it, "Key"));
        const json_t *hv = json_object_get(it, "Value");
        if (hk && json_is_string(hv)) {
            /* header names are case-insensitive: drop the target's spelling */
            const char *ok;
            json_t *ov;
            void *tmp;
            json_object_foreach_safe(hdr, tmp, ok, ov) if (!strcasecmp(ok, hk)) json_object_del(hdr, ok);
            json_object_set(hdr, hk, (json_t *)hv);
        }
    }
    static const char *const fixed[] = {"User-Agent", "Content-Type", "Range", "Accept-Encoding", "Connection",
                                        "Authorization", "Host", "Content-Length"};
    eb_buf lines = {0};
    size_t nh = 0;
    json_object_foreach(hdr, k, v) {
        int skip = 0;
        for (size_t f = 0; f < sizeof fixed / sizeof *fixed; f++)
            skip |= !strcasecmp(k, fixed[f]);
        if (info.api_key_name && !strcasecmp(k, info.api_key_name))
            skip = 1;
        if (skip)
            continue;
        eb_buf_printf(&lines, "%s: %s", k, json_string_value(v));
        eb_buf_putc(&lines, 0);
        nh++;
    }
    json_decref(hdr);
    if (info.auth_type && !strcmp(info.auth_type, "BASIC")) {
        basic_auth_line(&lines, info.basic_user, info.basic_pass);
        nh++;
    } else if (info.auth_type && !strcmp(info.auth_type, "API_KEY") && info.api_key_name) {
        eb_buf_printf(&lines, "%s: %s", info.api_key_name, info.api_key_value ? info.api_key_value : "");
        eb_buf_putc(&lines, 0);
        nh++;
    } else if (oauth) {
        eb_buf_printf(&lines, "Authorization: Bearer %s", l->token);
        eb_buf_putc(&lines, 0);
        nh++;
    }
    static const char *const fixed_lines[] = {"User-Agent: Amazon/EventBridge/ApiDestinations",
                                              "Content-Type: application/json; charset=utf-8",
                                              "Range: bytes=0-1048575", "Accept-Encoding: gzip,deflate",
                                              "Connection: close"};
    for (size_t f = 0; f < sizeof fixed_lines / sizeof *fixed_lines; f++) {
        eb_buf_puts(&lines, fixed_lines[f]);
        eb_buf_putc(&lines, 0);
        nh++;
    }
    const char **hv = calloc(nh + 1, sizeof *hv);
    /* body: the payload, with the connection's BodyParameters merged into a JSON object */
    char *merged = NULL;
    const json_t *bps = json_object_get(inv, "BodyParameters");
    if (json_array_size(bps)) {
        json_t *obj = json_loadb(payload, plen, 0, NULL);
        if (json_is_object(obj)) {
            json_array_foreach(bps, i, it) {
                const char *bk = json_string_value(json_object_get(it, "Key"));
                const json_t *bv = json_object_get(it, "Value");
                if (bk && json_is_string(bv))
                    json_object_set(obj, bk, (json_t *)bv);
            }
            merged = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
        }
        json_decref(obj);
    }
    if (!hv || !url.p || !lines.p) {
        complete(d, j, OUT_RETRY, "INTERNAL_ERROR", "out of memory");
    } else {
        const char *p = lines.p;
        for (size_t h = 0; h < nh; h++) {
            hv[h] = p;
            p += strlen(p) + 1;
        }
        const char *method = info.method ? info.method : "POST";
        int nobody = !strcmp(method, "GET") || !strcmp(method, "HEAD");
        start_http(d, j, l, url.p, method, hv, nobody ? NULL : merged ? merged : payload,
                   nobody ? 0 : merged ? strlen(merged) : plen, 5000);
    }
    free(merged);
    free(hv);
    buf_wipe(&lines); /* auth headers */
    eb_buf_free(&url);
    json_decref(hp);
    eb_apidest_info_free(&info);
}

static void on_token(void *ctx, const eb_http_result *r)
{
    attempt *a = ctx;
    compl *c = calloc(1, sizeof *c);
    if (c) {
        c->token_lane = a->l;
        if (r->outcome == EB_HTTP_RESPONSE && r->status >= 200 && r->status < 300 && r->body) {
            json_t *o = json_loadb(r->body, r->body_len, 0, NULL);
            const char *t = json_string_value(json_object_get(o, "access_token"));
            if (t)
                c->token = strdup(t);
            json_decref(o);
        }
        if (!c->token)
            snprintf(c->msg, sizeof c->msg, "the OAuth token request failed (%s %ld)",
                     r->outcome == EB_HTTP_RESPONSE ? "HTTP status" : "transport error",
                     r->outcome == EB_HTTP_RESPONSE ? r->status : (long)r->outcome);
        post(a->d, c);
    }
    free(a);
}

/* OAuth client credentials: HTTP Basic client authentication, a form body
 * with grant_type=client_credentials plus the connection's OAuth body
 * parameters, its header and query parameters; access_token from JSON. */
static int token_fetch(eb_deliver *d, lane *l, const eb_apidest_info *info)
{
    attempt *a = malloc(sizeof *a);
    if (!a || !info->oauth_endpoint) {
        free(a);
        return -1;
    }
    *a = (attempt){d, NULL, K_APIDEST, l};
    eb_buf url = {0}, body = {0}, lines = {0};
    eb_buf_puts(&url, info->oauth_endpoint);
    const json_t *op = info->oauth_params;
    size_t i;
    json_t *it;
    json_t *q = json_object();
    json_array_foreach(json_object_get(op, "QueryStringParameters"), i, it) {
        const char *k = json_string_value(json_object_get(it, "Key"));
        json_t *v = json_object_get(it, "Value");
        if (k && json_is_string(v))
            json_object_set(q, k, v);
    }
    int first = 1;
    query_params(&url, q, &first);
    json_decref(q);
    json_t *b = json_object();
    json_object_set_new(b, "grant_type", json_string("client_credentials"));
    json_array_foreach(json_object_get(op, "BodyParameters"), i, it) {
        const char *k = json_string_value(json_object_get(it, "Key"));
        json_t *v = json_object_get(it, "Value");
        if (k && json_is_string(v))
            json_object_set(b, k, v);
    }
    eb_buf_puts(&body, "x");
    first = 1;
    query_params(&body, b, &first); /* "x?k=v&..." */
    json_decref(b);
    size_t nh = 0;
    json_array_foreach(json_object_get(op, "HeaderParameters"), i, it) {
        const char *k = json_string_value(json_object_get(it, "Key"));
        const char *v = json_string_value(json_object_get(it, "Value"));
        if (k && v) {
            eb_buf_printf(&lines, "%s: %s", k, v);
            eb_buf_putc(&lines, 0);
            nh++;
        }
    }
    basic_auth_line(&lines, info->client_id, info->client_secret);
    eb_buf_puts(&lines, "Content-Type: application/x-www-form-urlencoded");
    eb_buf_putc(&lines, 0);
    eb_buf_puts(&lines, "Accept: application/json");
    eb_buf_putc(&lines, 0);
    nh += 3;
    const char **hv = calloc(nh + 1, sizeof *hv);
    if (hv && url.p && body.p && lines.p) {
        const char *p = lines.p;
        for (size_t h = 0; h < nh; h++) {
            hv[h] = p;
            p += strlen(p) + 1;
        }
        const char *method = info->oauth_method ? info->oauth_method : "POST";
        int get = !strcmp(method, "GET");
        eb_http_req req = {.method = method,
                           .url = url.p,
                           .headers = hv,
                           .body = get ? NULL : body.p + 2,
                           .body_len = get ? 0 : body.n - 2,
                           .timeout_ms = 5000};
        l->fetching = 1;
        free(l->conn_arn);
        l->conn_arn = info->conn_arn ? strdup(info->conn_arn) : NULL;
        if (eb_httpc_submit(d->http, &req, on_token, a)) {
            l->fetching = 0;
            free(a);
        }
    } else {
        free(a);
    }
    free(hv);
    eb_buf_free(&url);
    eb_buf_free(&body);
    buf_wipe(&lines);
    return l->fetching ? 0 : -1;
}

/* A token fetch finished (dispatcher thread). */
static void token_done(eb_deliver *d, compl *c)
{
    lane *l = c->token_lane;
    l->fetching = 0;
    if (c->token) {
        free(l->token);
        l->token = c->token;
        c->token = NULL;
        /* AWS shows an OAuth connection AUTHORIZED once it has a token (a
         * Deauthorize meanwhile wins: only AUTHORIZING moves) */
        if (l->conn_arn)
            eb_core_connection_set_state(d->cfg.core, l->conn_arn, "AUTHORIZING", "AUTHORIZED", NULL);
        lane_pump(d, l);
        return;
    }
    if (l->conn_arn)
        eb_core_connection_set_state(d->cfg.core, l->conn_arn, "AUTHORIZING", "AUTHORIZING", c->msg);
    eb_log(EB_LOG_WARN, "deliver: OAuth token fetch failed", "lane=\"%s\" err=\"%s\"", l->key, c->msg);
    /* the waiting jobs fail this attempt (retried with backoff) */
    while (l->qhead) {
        job *j = lane_pop(l);
        j->state = J_INFLIGHT;
        j->lane = NULL;
        compl o = {.j = j, .cls = OUT_RETRY};
        snprintf(o.code, sizeof o.code, "NO_PERMISSIONS");
        snprintf(o.msg, sizeof o.msg, "%s", c->msg);
        outcome(d, &o);
    }
}

static void start(eb_deliver *d, job *j, lane *l)
{
    j->state = J_INFLIGHT;
    j->lane = l;
    l->inflight++;
    if (!j->started_v) {
        j->started_v = vnow_ms(d);
        observe(d, EB_M_INGESTION_TO_INVOCATION_START_LATENCY, j, (double)(eb_now_ms() - j->time_ms));
    }
    if (l->kind == K_BUS) {
        attempt *a = malloc(sizeof *a);
        if (!a) {
            complete(d, j, OUT_RETRY, "INTERNAL_ERROR", "out of memory");
            return;
        }
        *a = (attempt){d, j, K_BUS, l};
        store_cb_expect(d);
        int rc = eb_core_forward(d->cfg.core, json_string_value(json_object_get(j->ti.target, "Arn")), j->body, j->len,
                                 j->hops, on_forwarded, a);
        if (rc == EB_FWD_QUEUED)
            return;
        store_cb_post(d, NULL);
        free(a);
        if (rc == EB_FWD_DELIVERED)
            complete(d, j, OUT_OK, NULL, NULL);
        else if (rc == EB_FWD_NO_BUS)
            complete(d, j, OUT_FINAL, "NO_RESOURCE", "the target event bus does not exist");
        else if (rc == EB_FWD_LOOP)
            complete(d, j, OUT_LOOP, NULL, "hop limit");
        else
            complete(d, j, OUT_RETRY, "INTERNAL_ERROR", "the event could not be forwarded");
        return;
    }
    if ((l->kind == K_FUNC_URL || l->kind == K_APIDEST) && l->breaker_open) {
        int64_t now = mono_ms();
        if (now < l->probe_at_ms) {
            compl *c = compl_new(j, OUT_RETRY, "CONNECTION_FAILURE", "%s",
                                 "the target refused its recent connections (circuit open: not tried)");
            if (c) {
                c->not_tried = 1;
                post(d, c);
            }
            return;
        }
        l->probe_at_ms = now + BREAKER_PROBE_MS; /* this attempt is the probe */
    }
    /* the payload */
    char why[256] = "";
    eb_input *in = eb_input_compile(j->ti.target, why, sizeof why);
    eb_buf payload = {0};
    int rc = in ? EB_INPUT_OK : EB_INPUT_ERR;
    if (in) {
        eb_input_ctx ictx = {.event = j->body,
                             .event_len = j->len,
                             .rule_arn = j->ti.rule_arn,
                             .rule_name = j->ti.rule,
                             .ingestion_ms = j->time_ms};
        rc = eb_input_render(in, &ictx, &payload, why, sizeof why);
        eb_input_free(in);
    }
    if (rc == EB_INPUT_OK && !payload.p)
        rc = eb_buf_puts(&payload, "") ? EB_INPUT_ERR : EB_INPUT_OK;
    if (rc != EB_INPUT_OK) {
        complete(d, j, OUT_SKIP, NULL, why[0] ? why : "the input transformation gave nothing to deliver");
        eb_buf_free(&payload);
        return;
    }
    const char *arn = json_string_value(json_object_get(j->ti.target, "Arn"));
    switch (l->kind) {
    case K_FUNC_PROGRAM:
    case K_FUNC_URL: {
        const char *name = l->key + 3;
        int fi = func_index(d, name);
        if (fi < 0) {
            complete(d, j, OUT_FINAL, "NO_RESOURCE", "the function is not registered with this server");
            break;
        }
        if (l->kind == K_FUNC_PROGRAM) {
            attempt *a = malloc(sizeof *a);
            if (!a) {
                complete(d, j, OUT_RETRY, "INTERNAL_ERROR", "out of memory");
                break;
            }
            *a = (attempt){d, j, K_FUNC_PROGRAM, l};
            if (eb_procs_run(d->procs, d->funcs[fi].program, payload.p, payload.n, d->cfg.function_timeout_ms, on_proc,
                             a)) {
                free(a);
                complete(d, j, OUT_RETRY, "INTERNAL_ERROR", "cannot start the function");
            }
        } else {
            static const char *const hdr[] = {"Content-Type: application/json", NULL};
            start_http(d, j, l, d->funcs[fi].url, "POST", hdr, payload.p, payload.n, d->cfg.function_timeout_ms);
        }
        break;
    }
    case K_APIDEST:
        start_apidest(d, j, l, payload.p, payload.n);
        break;
    case K_LOG: {
        /* one NDJSON line {"timestamp": ms, "message": "..."}; with an
         * InputTransformer the template ({"timestamp": <t>, "message": <m>},
         * checked at PutTargets) is the line itself */
        eb_buf line = {0}, file = {0};
        int templ = json_object_get(j->ti.target, "InputTransformer") != NULL;
        if (templ) {
            json_t *o = json_loadb(payload.p, payload.n, 0, NULL);
            char *s = json_is_object(o) ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
            if (s)
                eb_buf_puts(&line, s);
            free(s);
            json_decref(o);
        }
        if (!line.n) {
            eb_buf_printf(&line, "{\"timestamp\":%lld,\"message\":", (long long)j->time_ms);
            eb_buf_json_str(&line, payload.p, payload.n);
            eb_buf_putc(&line, '}');
        }
        int bad = eb_buf_putc(&line, '\n') || log_file(d, l->key + 4, &file);
        logline *ll = bad ? NULL : calloc(1, sizeof *ll);
        if (!ll) {
            eb_buf_free(&line);
            eb_buf_free(&file);
            complete(d, j, OUT_RETRY, "INTERNAL_ERROR", "out of memory");
            break;
        }
        (void)arn;
        ll->j = j;
        ll->line = line.p;
        ll->len = line.n;
        ll->file = file.p;
        pthread_mutex_lock(&d->lmu);
        *d->ltail = ll;
        d->ltail = &ll->next;
        pthread_cond_signal(&d->lcv);
        pthread_mutex_unlock(&d->lmu);
        break;
    }
    default:
        complete(d, j, OUT_FINAL, "NO_RESOURCE", "the target kind is not delivered by this server");
    }
    eb_buf_free(&payload);
}

/* Start queued jobs while the lane has room (and tokens). */
static void lane_pump(eb_deliver *d, lane *l)
{
    while (l->qhead && l->inflight < l->max) {
        if (l->kind == K_APIDEST && l->fetching)
            return;
        if (l->kind == K_APIDEST && l->rate > 0) {
            int64_t now = mono_ms();
            l->tokens += (double)(now - l->refill_mono_ms) * l->rate / 1000.0;
            l->refill_mono_ms = now;
            if (l->tokens > l->rate)
                l->tokens = l->rate;
            if (l->tokens < 1.0) {
                if (!l->qhead->throttled) { /* once per delayed invocation attempt */
                    l->qhead->throttled = 1;
                    count(d, EB_M_THROTTLED_RULES, l->qhead, 1);
                }
                if (!l->throttled) {
                    l->throttled = 1;
                    if (d->nthrottled == d->capthrottled) {
                        size_t nc = d->capthrottled ? d->capthrottled * 2 : 8;
                        lane **nt = realloc(d->throttled, nc * sizeof *nt);
                        if (!nt)
                            return;
                        d->throttled = nt;
                        d->capthrottled = nc;
                    }
                    d->throttled[d->nthrottled++] = l;
                }
                return;
            }
            l->tokens -= 1.0;
        }
        start(d, lane_pop(l), l);
    }
}

/* A due job: look its target up again and queue it on its lane. */
static void route(eb_deliver *d, job *j)
{
    eb_target_info_free(&j->ti);
    if (tc_lookup(d, j->rule, j->target_id, &j->ti)) {
        j->state = J_INFLIGHT;
        compl o = {.j = j, .cls = OUT_DROP};
        outcome(d, &o);
        return;
    }
    const char *code, *msg;
    lane *l = lane_for(d, j, &code, &msg);
    if (!l) {
        j->state = J_INFLIGHT;
        compl o = {.j = j, .cls = OUT_FINAL, .not_tried = 1};
        snprintf(o.code, sizeof o.code, "%s", code);
        snprintf(o.msg, sizeof o.msg, "%s", msg);
        outcome(d, &o); /* counts the attempt */
        return;
    }
    if (l->qlen + l->waiting >= d->lane_hold_max && l->inflight >= l->max) {
        /* this target holds its share of memory (a dead or slow target
         * piling up): the job stays in the store, where a later scan of the
         * queue finds it; other targets keep their room */
        if (!l->spilling)
            eb_log(EB_LOG_WARN, "deliver: a target's backlog is over its memory share; the rest waits in the store",
                   "lane=\"%s\" queued=%zu waiting_retry=%zu", l->key, l->qlen, l->waiting);
        l->spilling = 1;
        eb_target_info_free(&j->ti);
        job_remove(d, j);
        return;
    }
    l->spilling = 0;
    j->state = J_QUEUED;
    j->qnext = NULL;
    j->throttled = 0;
    if (l->qtail)
        l->qtail->qnext = j;
    else
        l->qhead = j;
    l->qtail = j;
    l->qlen++;
    lane_pump(d, l);
}

/* A job from the sink or a scan. */
static void adopt(eb_deliver *d, job *j)
{
    job *old = job_find(d, j->id);
    if (old && old->state == J_FINISHING && old->event_row != j->event_row) {
        /* The store reuses the id of a deleted job row: old's deletion is
         * committed (the new row came after it), its callback just has not
         * reached us yet. old is done; without this the new job would wait
         * for the next scan. */
        eb_log(EB_LOG_DEBUG, "deliver: job id reused", "job=%lld", (long long)j->id);
        job_remove(d, old);
        old = NULL;
    }
    if (old) { /* already known (handed over twice) */
        job_free(j);
        return;
    }
    job_insert(d, j);
    if (j->due_v > vnow_ms(d)) {
        j->state = J_WAITING;
        if (heap_push(d, j))
            job_remove(d, j);
        return;
    }
    route(d, j);
}

/* ---- scanning the queue ---------------------------------------------------------------------- */

static int scan_want(void *ctx, int64_t id)
{
    return job_find(ctx, id) == NULL;
}

static void scan_got(void *ctx, const eb_store_job_rec *recs, size_t n)
{
    eb_deliver *d = ctx;
    for (size_t i = 0; i < n; i++) {
        if (d->njobs >= d->cfg.max_jobs) {
            d->overflow = 1;
            break;
        }
        job *j = job_new(&recs[i]);
        if (j)
            adopt(d, j);
    }
}

static void scan_step(eb_deliver *d)
{
    if (d->njobs >= d->cfg.max_jobs) {
        d->overflow = 1;
        return;
    }
    int64_t last = d->scan_cursor;
    int n = eb_store_job_scan(d->cfg.store, d->scan_cursor, SCAN_PAGE, &last, scan_want, scan_got, d);
    if (n < 0) {
        eb_log(EB_LOG_WARN, "deliver: scanning the queue failed", NULL);
        d->scanning = 0;
        d->next_scan_ms = mono_ms() + SCAN_IDLE_MS;
        return;
    }
    d->scan_cursor = last;
    if (n < SCAN_PAGE && !d->overflow) {
        d->scanning = 0;
        d->scan_cursor = 0;
        d->next_scan_ms = mono_ms() + SCAN_IDLE_MS;
    } else if (n < SCAN_PAGE) { /* overflowed during this pass: another pass once there is room */
        d->scanning = 0;
        d->scan_cursor = 0;
        d->next_scan_ms = mono_ms() + 200;
        d->overflow = 0;
    }
}

/* ---- schedules ------------------------------------------------------------------------------ */

static void sched_collect(void *ctx, const eb_sched_rule *r)
{
    eb_deliver *d = ctx;
    sched *s = NULL;
    for (size_t i = 0; i < d->nscheds; i++)
        if (!strcmp(d->scheds[i].key, r->rule_key)) {
            s = &d->scheds[i];
            break;
        }
    if (!s) {
        if (d->nscheds == d->capscheds) {
            size_t nc = d->capscheds ? d->capscheds * 2 : 8;
            sched *ns = realloc(d->scheds, nc * sizeof *ns);
            if (!ns)
                return;
            d->scheds = ns;
            d->capscheds = nc;
        }
        s = &d->scheds[d->nscheds++];
        memset(s, 0, sizeof *s);
        s->key = strdup(r->rule_key);
        s->next_s = -2; /* not computed */
        const json_t *last = json_object_get(d->sched_state, r->rule_key);
        s->last_s = json_is_integer(last) ? json_integer_value(last) : -1;
    }
    if (!s->expr || strcmp(s->expr, r->expr)) {
        free(s->expr);
        s->expr = strdup(r->expr);
        s->next_s = -2;
    }
    free(s->rule_arn);
    s->rule_arn = r->rule_arn ? strdup(r->rule_arn) : NULL;
    s->created_ms = r->created_ms;
    if (r->enabled && !s->enabled)
        s->next_s = -2; /* (re-)enabled: counted from now, no catching up on the disabled time */
    s->enabled = r->enabled;
    s->seen = 1;
}

static void sched_fired(void *ctx, int status)
{
    (void)ctx;
    if (status != EB_STORE_OK)
        eb_log(EB_LOG_ERROR, "deliver: a scheduled event could not be stored", NULL);
}

static void sched_fire(eb_deliver *d, sched *s, int64_t at_s, uint64_t skipped)
{
    int rc = eb_core_fire_schedule(d->cfg.core, s->key, at_s, sched_fired, NULL);
    eb_log(EB_LOG_INFO, "deliver: scheduled rule fired", "rule=\"%s\" time=%lld skipped=%llu rc=%d", s->key,
           (long long)at_s, (unsigned long long)skipped, rc);
    if (d->cfg.metrics) {
        char parts[4][257];
        if (sscanf(s->key, "%256[^/]/%256[^/]/%256[^/]/%256s", parts[0], parts[1], parts[2], parts[3]) == 4) {
            if (skipped)
                count_rule(d, EB_M_SCHEDULE_SKIPPED, parts[2], parts[3], skipped);
            count_rule(d, EB_M_TRIGGERED_RULES, parts[2], parts[3], 1);
        }
    }
    s->last_s = at_s;
    char doc[64];
    snprintf(doc, sizeof doc, "{\"last\":%lld}", (long long)at_s);
    if (eb_store_doc_put(d->cfg.store, "schedule", s->key, doc, strlen(doc)) != EB_STORE_OK)
        eb_log(EB_LOG_WARN, "deliver: cannot record a schedule's firing", "rule=\"%s\"", s->key);
    json_object_set_new(d->sched_state, s->key, json_integer(at_s));
}

/* Compute a rule's next firing; after downtime fire once for the most
 * recent missed time and count the others as skipped. */
static void sched_plan(eb_deliver *d, sched *s, int64_t now_s)
{
    eb_schedule *sc = eb_schedule_parse(s->expr);
    if (!sc) {
        s->next_s = -1;
        return;
    }
    int64_t created_s = s->created_ms / 1000;
    if (s->last_s >= 0 && s->next_s == -2) {
        /* missed times in (last, now] */
        uint64_t missed = 0;
        int64_t t = s->last_s, latest = -1;
        for (int i = 0; i < 1000000; i++) {
            int64_t nx = eb_schedule_next(sc, created_s, t);
            if (nx < 0 || nx > now_s)
                break;
            latest = nx;
            missed++;
            t = nx;
        }
        if (latest >= 0 && s->enabled)
            sched_fire(d, s, latest, missed - 1);
    }
    s->next_s = eb_schedule_next(sc, created_s, now_s);
    eb_schedule_free(sc);
}

static void sched_tick(eb_deliver *d)
{
    int64_t now_v = vnow_ms(d);
    if (now_v >= d->next_sched_refresh_v) {
        for (size_t i = 0; i < d->nscheds; i++)
            d->scheds[i].seen = 0;
        eb_core_schedules(d->cfg.core, sched_collect, d);
        for (size_t i = 0; i < d->nscheds;) { /* rules gone */
            if (!d->scheds[i].seen) {
                free(d->scheds[i].key);
                free(d->scheds[i].expr);
                free(d->scheds[i].rule_arn);
                d->scheds[i] = d->scheds[--d->nscheds];
            } else {
                i++;
            }
        }
        d->next_sched_refresh_v = now_v + SCHED_REFRESH_MS;
    }
    int64_t now_s = now_v / 1000;
    for (size_t i = 0; i < d->nscheds; i++) {
        sched *s = &d->scheds[i];
        if (!s->enabled)
            continue;
        if (s->next_s == -2)
            sched_plan(d, s, now_s);
        if (s->next_s >= 0 && s->next_s <= now_s) {
            sched_fire(d, s, s->next_s, 0);
            eb_schedule *sc = eb_schedule_parse(s->expr);
            s->next_s = sc ? eb_schedule_next(sc, s->created_ms / 1000, now_s) : -1;
            eb_schedule_free(sc);
        }
    }
}

static int64_t sched_wait_ms(const eb_deliver *d)
{
    int64_t now_v = vnow_ms(d), w = d->next_sched_refresh_v - now_v;
    for (size_t i = 0; i < d->nscheds; i++) {
        const sched *s = &d->scheds[i];
        if (s->enabled && s->next_s >= 0) {
            int64_t x = s->next_s * 1000 - now_v;
            if (x < w)
                w = x;
        }
    }
    return real_delay(d, w);
}

static int load_sched_state(void *ctx, const char *key, const char *doc, size_t len)
{
    eb_deliver *d = ctx;
    json_t *o = json_loadb(doc, len, 0, NULL);
    const json_t *last = json_object_get(o, "last");
    if (json_is_integer(last))
        json_object_set(d->sched_state, key, (json_t *)last);
    json_decref(o);
    return 0;
}

static int load_anchor(void *ctx, const char *key, const char *doc, size_t len)
{
    int64_t *anchor = ctx;
    json_t *o = json_loadb(doc, len, 0, NULL);
    const json_t *a = json_object_get(o, "anchor_ms");
    if (!strcmp(key, "anchor") && json_is_integer(a))
        *anchor = json_integer_value(a);
    json_decref(o);
    return 0;
}

/* ---- the dispatcher ------------------------------------------------------------------------------ */

static void *dispatcher_main(void *arg)
{
    prctl(PR_SET_NAME, "eb-dispatch", 0, 0, 0); /* for top -H, perf */
    eb_deliver *d = arg;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        job *fresh = d->fresh_head;
        d->fresh_head = NULL;
        d->fresh_tail = &d->fresh_head;
        d->fresh_n = 0;
        if (d->fresh_dropped) {
            d->fresh_dropped = 0;
            d->overflow = 1;
        }
        compl *done = d->done_head;
        d->done_head = NULL;
        d->done_tail = &d->done_head;
        int stop = d->stop;
        pthread_mutex_unlock(&d->mu);
        if (stop) {
            while (fresh) {
                job *nx = fresh->qnext;
                job_free(fresh);
                fresh = nx;
            }
            for (compl *c = done, *nx; c; c = nx) {
                nx = c->next;
                free(c->ids);
                free(c->token);
                free(c);
            }
            flush_outcomes(d); /* the last round's outcomes */
            return NULL;       /* jobs in memory are freed by eb_deliver_stop */
        }
        for (compl *c = done, *nx; c; c = nx) {
            nx = c->next;
            if (c->ids) {
                for (size_t i = 0; i < c->nids; i++) {
                    job *j = job_find(d, c->ids[2 * i]);
                    if (j && j->state == J_FINISHING && j->event_row == c->ids[2 * i + 1])
                        job_remove(d, j); /* (not a newer job that reuses the id, see adopt) */
                }
                free(c->ids);
            } else if (c->token_lane) {
                token_done(d, c);
            } else if (c->j) {
                lane *l = c->j->lane;
                if (l && c->http_seen) {
                    if (c->refused) {
                        if (++l->refusals >= BREAKER_FAILS && !l->breaker_open) {
                            l->breaker_open = 1;
                            l->probe_at_ms = mono_ms() + BREAKER_PROBE_MS;
                            eb_log(EB_LOG_WARN, "deliver: target refuses connections; one probe a second until it answers",
                                   "lane=\"%s\" refusals=%u", l->key, l->refusals);
                        }
                    } else {
                        if (l->breaker_open)
                            eb_log(EB_LOG_INFO, "deliver: target answers again", "lane=\"%s\"", l->key);
                        l->refusals = 0;
                        l->breaker_open = 0;
                    }
                }
                if (c->refresh_token && l && l->token) {
                    /* OAuth: the token may have expired; fetch a new one and
                     * try this event once more at once */
                    free(l->token);
                    l->token = NULL;
                    if (!c->j->refreshed) {
                        job *j = c->j;
                        j->refreshed = 1;
                        lane_requeue_front(l, j);
                        count(d, EB_M_INVOCATION_ATTEMPTS, j, 1);
                        lane_pump(d, l);
                        free(c->token);
                        free(c);
                        continue;
                    }
                }
                outcome(d, c);
            }
            free(c->token);
            free(c);
        }
        while (fresh) {
            job *nx = fresh->qnext;
            fresh->qnext = NULL;
            adopt(d, fresh);
            fresh = nx;
        }
        /* due retries */
        int64_t now_v = vnow_ms(d);
        while (d->nheap && d->heap[0]->due_v <= now_v) {
            job *j = heap_pop(d);
            if (j->wlane) {
                if (j->wlane->waiting)
                    j->wlane->waiting--;
                j->wlane = NULL;
            }
            route(d, j);
        }
        /* throttled lanes: try again (lane_pump re-adds those still short of tokens) */
        size_t nt = d->nthrottled;
        lane *tl[64];
        if (nt > 64)
            nt = 64;
        for (size_t i = 0; i < nt; i++) {
            tl[i] = d->throttled[i];
            tl[i]->throttled = 0;
        }
        if (nt) /* d->throttled is NULL until a lane was throttled */
            memmove(d->throttled, d->throttled + nt, (d->nthrottled - nt) * sizeof *d->throttled);
        d->nthrottled -= nt;
        for (size_t i = 0; i < nt; i++)
            lane_pump(d, tl[i]);
        sched_tick(d);
        int64_t nowm = mono_ms();
        if (nowm >= d->next_summary_ms) {
            /* per-event outcomes are logged at debug level; this line sums them up */
            d->next_summary_ms = nowm + 10000;
            eb_deliver_stats st;
            pthread_mutex_lock(&d->mu);
            st = d->stats;
            pthread_mutex_unlock(&d->mu);
            if (st.delivered != d->last_summary.delivered || st.retried != d->last_summary.retried ||
                st.dead_lettered != d->last_summary.dead_lettered || st.dropped != d->last_summary.dropped)
                eb_log(EB_LOG_INFO, "deliver: progress",
                       "delivered=%llu retried=%llu dead_lettered=%llu dropped=%llu in_memory=%zu waiting_retry=%zu",
                       (unsigned long long)st.delivered, (unsigned long long)st.retried,
                       (unsigned long long)st.dead_lettered, (unsigned long long)st.dropped, d->njobs, d->nheap);
            d->last_summary = st;
        }
        if (!d->scanning && nowm >= d->next_scan_ms) {
            d->scanning = 1;
            d->scan_cursor = 0;
        }
        if (d->scanning)
            scan_step(d);
        flush_outcomes(d);
        /* statistics */
        uint64_t inflight = 0, waiting = d->nheap;
        for (size_t b = 0; b < d->nlanes_b; b++)
            for (lane *l = d->lanes[b]; l; l = l->hnext)
                inflight += l->inflight;
        /* wait for work or the next timer */
        int64_t wait = d->scanning ? 0 : d->next_scan_ms - mono_ms();
        if (d->nheap) {
            int64_t w = real_delay(d, d->heap[0]->due_v - vnow_ms(d));
            if (w < wait)
                wait = w;
        }
        if (d->nthrottled && wait > 20)
            wait = 20;
        int64_t sw = sched_wait_ms(d);
        if (sw < wait)
            wait = sw;
        pthread_mutex_lock(&d->mu);
        d->stats.in_memory = d->njobs;
        d->stats.in_flight = inflight;
        d->stats.waiting_retry = waiting;
        if (!d->fresh_head && !d->done_head && !d->stop && wait > 0) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += (time_t)(wait / 1000);
            ts.tv_nsec += (long)(wait % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&d->cv, &d->mu, &ts);
        }
        pthread_mutex_unlock(&d->mu);
    }
}

/* ---- start / stop ---------------------------------------------------------------------------------- */

void eb_deliver_config_defaults(eb_deliver_config *c)
{
    memset(c, 0, sizeof *c);
    c->time_scale = 1.0;
    c->function_concurrency = 8;
    c->function_timeout_ms = 30000;
    c->lane_concurrency = 64;
    c->max_jobs = 200000;
}

static void free_all(eb_deliver *d)
{
    for (size_t b = 0; b < d->nbuckets; b++)
        for (job *j = d->buckets[b], *nx; j; j = nx) {
            nx = j->hnext;
            job_free(j);
        }
    free(d->buckets);
    tc_clear(d);
    free(d->heap);
    for (size_t b = 0; b < d->nlanes_b; b++)
        for (lane *l = d->lanes[b], *nx; l; l = nx) {
            nx = l->hnext;
            free(l->key);
            free(l->token);
            free(l->conn_arn);
            free(l);
        }
    free(d->lanes);
    free(d->throttled);
    free(d->ub);
    free(d->ub_ids);
    free(d->ub_strs);
    for (size_t i = 0; i < d->nscheds; i++) {
        free(d->scheds[i].key);
        free(d->scheds[i].expr);
        free(d->scheds[i].rule_arn);
    }
    free(d->scheds);
    json_decref(d->sched_state);
    for (size_t i = 0; i < d->cfg.nfunctions; i++) {
        free((char *)d->funcs[i].name);
        free((char *)d->funcs[i].program);
        free((char *)d->funcs[i].url);
    }
    free(d->funcs);
    free(d->func_running);
    free(d->data_dir);
    free(d->log_dir);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->lmu);
    pthread_cond_destroy(&d->lcv);
    free(d);
}

eb_deliver *eb_deliver_start(const eb_deliver_config *cfg, char *err, size_t errlen)
{
    eb_deliver *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->cfg = *cfg;
    if (d->cfg.time_scale <= 0)
        d->cfg.time_scale = 1.0;
    if (!d->cfg.function_concurrency)
        d->cfg.function_concurrency = 8;
    if (d->cfg.function_timeout_ms <= 0)
        d->cfg.function_timeout_ms = 30000;
    if (!d->cfg.lane_concurrency)
        d->cfg.lane_concurrency = 64;
    if (!d->cfg.max_jobs)
        d->cfg.max_jobs = 200000;
    d->lane_hold_max = d->cfg.max_jobs / 8 > 1000 ? d->cfg.max_jobs / 8 : 1000;
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&d->lmu, NULL);
    pthread_cond_init(&d->lcv, NULL);
    d->fresh_tail = &d->fresh_head;
    d->done_tail = &d->done_head;
    d->ltail = &d->lhead;
    d->wall0_ms = d->anchor_ms = eb_now_ms();
    d->mono0_ns = eb_mono_ns();
    d->nbuckets = 1024;
    d->buckets = calloc(d->nbuckets, sizeof *d->buckets);
    d->nlanes_b = 256;
    d->lanes = calloc(d->nlanes_b, sizeof *d->lanes);
    d->sched_state = json_object();
    d->funcs = calloc(cfg->nfunctions + 1, sizeof *d->funcs);
    d->func_running = calloc(cfg->nfunctions + 1, sizeof *d->func_running);
    d->data_dir = strdup(cfg->data_dir ? cfg->data_dir : ".");
    if (d->data_dir) {
        size_t n = strlen(d->data_dir) + 6;
        d->log_dir = malloc(n);
        if (d->log_dir)
            snprintf(d->log_dir, n, "%s/logs", d->data_dir);
    }
    d->cfg.data_dir = d->data_dir;
    int oom = !d->buckets || !d->lanes || !d->sched_state || !d->funcs || !d->func_running || !d->log_dir;
    for (size_t i = 0; !oom && i < cfg->nfunctions; i++) {
        d->funcs[i].name = strdup(cfg->functions[i].name);
        d->funcs[i].program = cfg->functions[i].program ? strdup(cfg->functions[i].program) : NULL;
        d->funcs[i].url = cfg->functions[i].url ? strdup(cfg->functions[i].url) : NULL;
        oom = !d->funcs[i].name || (!d->funcs[i].program && !d->funcs[i].url);
    }
    d->cfg.functions = d->funcs;
    if (oom) {
        snprintf(err, errlen, "out of memory");
        free_all(d);
        return NULL;
    }
    if (mkdir(d->log_dir, 0700) && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", d->log_dir, strerror(errno));
        free_all(d);
        return NULL;
    }
    eb_store_doc_scan(cfg->store, "schedule", load_sched_state, d);
    if (d->cfg.time_scale != 1.0) {
        int64_t anchor = -1;
        eb_store_doc_scan(cfg->store, "clock", load_anchor, &anchor);
        if (anchor < 0 || anchor > d->anchor_ms) {
            char doc[64];
            snprintf(doc, sizeof doc, "{\"anchor_ms\":%lld}", (long long)d->anchor_ms);
            if (eb_store_doc_put(cfg->store, "clock", "anchor", doc, strlen(doc)) != EB_STORE_OK)
                eb_log(EB_LOG_WARN, "deliver: cannot record the test clock's anchor", NULL);
        } else {
            d->anchor_ms = anchor;
        }
        d->wall0_ms = v_of_real(d, d->wall0_ms);
    }
    d->http = eb_httpc_new(err, errlen);
    d->procs = d->http ? eb_procs_new(err, errlen) : NULL;
    if (!d->http || !d->procs) {
        eb_httpc_free(d->http);
        free_all(d);
        return NULL;
    }
    if (pthread_create(&d->logger, NULL, logger_main, d) == 0)
        d->have_logger = 1;
    d->scanning = 1; /* the first pass picks up what was pending at the last stop */
    if (!d->have_logger || pthread_create(&d->thread, NULL, dispatcher_main, d) != 0) {
        snprintf(err, errlen, "cannot start the delivery threads");
        if (d->have_logger) {
            pthread_mutex_lock(&d->lmu);
            d->lstop = 1;
            pthread_cond_signal(&d->lcv);
            pthread_mutex_unlock(&d->lmu);
            pthread_join(d->logger, NULL);
        }
        eb_procs_free(d->procs);
        eb_httpc_free(d->http);
        free_all(d);
        return NULL;
    }
    eb_store_set_job_sink(cfg->store, on_jobs, d);
    eb_log(EB_LOG_INFO, "deliver: started", "functions=%zu time_scale=%g", cfg->nfunctions, d->cfg.time_scale);
    return d;
}

void eb_deliver_stop(eb_deliver *d)
{
    if (!d)
        return;
    eb_store_set_job_sink(d->cfg.store, NULL, NULL); /* returns once no hand-over runs */
    /* the dispatcher first (nothing new starts), then the executors: their
     * completions land in the inbox and are discarded below */
    pthread_mutex_lock(&d->mu);
    d->stop = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    eb_httpc_free(d->http);
    d->http = NULL;
    eb_procs_free(d->procs);
    d->procs = NULL;
    pthread_mutex_lock(&d->lmu);
    d->lstop = 1;
    pthread_cond_signal(&d->lcv);
    pthread_mutex_unlock(&d->lmu);
    pthread_join(d->logger, NULL);
    /* the store's callbacks (forwards, recorded outcomes) still to come */
    pthread_mutex_lock(&d->mu);
    while (d->store_cbs)
        pthread_cond_wait(&d->cv, &d->mu);
    compl *c = d->done_head;
    d->done_head = NULL;
    d->done_tail = &d->done_head;
    job *f = d->fresh_head;
    d->fresh_head = NULL;
    pthread_mutex_unlock(&d->mu);
    for (compl *nx; c; c = nx) {
        nx = c->next;
        free(c->ids);
        free(c->token);
        free(c);
    }
    for (job *nx; f; f = nx) {
        nx = f->qnext;
        job_free(f);
    }
    free_all(d);
}

void eb_deliver_stats_get(eb_deliver *d, eb_deliver_stats *out)
{
    pthread_mutex_lock(&d->mu);
    *out = d->stats;
    pthread_mutex_unlock(&d->mu);
}
