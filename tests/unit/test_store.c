/* Unit tests for src/store/ with the SQLite backend (store_sqlite.c):
 * documents (put/replace/delete/scan order), append + event_scan, group
 * commit under concurrent appends, reopen, file permissions, retention and
 * compaction, close with appends in flight, and failure paths.
 *
 * Failure paths covered: invalid append arguments (error, done not called);
 * an unusable data directory (open fails with a message); commits that fail
 * with a real write error -- RLIMIT_FSIZE makes writes past a small offset
 * fail with EFBIG (like a full disk; works as root, unlike chmod), so the
 * batch's COMMIT fails, every append of it gets EB_STORE_ERR_IO, nothing of
 * it is stored, and the store keeps working once the limit is lifted. */
#define _GNU_SOURCE
#include "store/store.h"
#include "test.h"
#include "util/util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------ */

static char root[256];

static void setup_root(void)
{
    snprintf(root, sizeof root, "/tmp/eb_test_store.XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        exit(2);
    }
}

static void rm_store_dir(const char *dir)
{
    static const char *const files[] = {"ebridge.db", "ebridge.db-wal", "ebridge.db-shm"};
    char p[512];
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void subdir(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", root, name);
}

static eb_store *open_dir(const char *dir, eb_sync_mode sync, int64_t retention_s)
{
    eb_store_options o = {.sync = sync, .retention_s = retention_s, .max_batch_events = 0};
    char err[256] = "";
    eb_store *s = eb_store_open_sqlite(dir, &o, err, sizeof err);
    if (!s)
        fprintf(stderr, "open %s: %s\n", dir, err);
    return s;
}

/* Collects documents of a scan. */
typedef struct {
    char keys[16][64];
    char docs[16][128];
    int n, stop_after;
} doc_list;

static int collect_doc(void *ctx, const char *key, const char *doc, size_t len)
{
    doc_list *l = ctx;
    if (l->n < 16) {
        snprintf(l->keys[l->n], sizeof l->keys[0], "%s", key);
        snprintf(l->docs[l->n], sizeof l->docs[0], "%.*s", (int)len, doc);
    }
    l->n++;
    return l->stop_after && l->n >= l->stop_after;
}

/* Event scan: counts, checks ids are "t<thread>-<i>" style and bodies match ids. */
typedef struct {
    size_t n;
    uint64_t pending;
    unsigned char *seen; /* optional: seen[idx] for ids "e<idx>" */
    size_t seen_n;
    int bad, dup;
    char last_id[64];
    char last_body[256];
} ev_list;

static int collect_event(void *ctx, const char *id, const char *body, size_t len, uint32_t pending)
{
    ev_list *l = ctx;
    l->n++;
    l->pending += pending;
    snprintf(l->last_id, sizeof l->last_id, "%s", id);
    snprintf(l->last_body, sizeof l->last_body, "%.*s", (int)(len < 200 ? len : 200), body);
    if (body[len] != 0)
        l->bad++;
    if (l->seen) {
        unsigned long idx;
        if (sscanf(id, "e%lu", &idx) != 1 || idx >= l->seen_n) {
            l->bad++;
        } else {
            if (l->seen[idx])
                l->dup++;
            l->seen[idx] = 1;
            /* body is {"id":"e<idx>",...} */
            char want[64];
            int k = snprintf(want, sizeof want, "{\"id\":\"%s\"", id);
            if (len < (size_t)k || memcmp(body, want, (size_t)k) != 0)
                l->bad++;
        }
    }
    return 0;
}

/* Builds one event "e<idx>" with a body of about body_len bytes and njobs jobs. */
typedef struct {
    char id[32];
    char body[2048];
    eb_store_event ev;
    eb_store_job jobs[4];
} one_event;

static void make_event(one_event *e, unsigned long idx, size_t body_len, uint32_t njobs)
{
    snprintf(e->id, sizeof e->id, "e%lu", idx);
    int k = snprintf(e->body, sizeof e->body, "{\"id\":\"%s\",\"detail\":\"", e->id);
    size_t n = (size_t)k;
    while (n + 2 < body_len && n + 3 < sizeof e->body) {
        e->body[n] = (char)('a' + (idx + n) % 26);
        n++;
    }
    e->body[n++] = '"';
    e->body[n++] = '}';
    e->body[n] = 0;
    for (uint32_t j = 0; j < njobs && j < 4; j++) {
        e->jobs[j].rule = j % 2 ? "000000000000/us-east-1/default/r2" : "000000000000/us-east-1/default/r1";
        e->jobs[j].target_id = j % 2 ? "t2" : "t1";
    }
    e->ev = (eb_store_event){.id = e->id,
                             .account = "000000000000",
                             .region = "us-east-1",
                             .bus = "default",
                             .time_ms = eb_now_ms(),
                             .body = e->body,
                             .len = n,
                             .first_job = 0,
                             .njobs = njobs};
}

typedef struct {
    atomic_uint ok, failed, calls;
} done_count;

static void count_done(void *ctx, int status)
{
    done_count *c = ctx;
    atomic_fetch_add(&c->calls, 1);
    if (status == EB_STORE_OK)
        atomic_fetch_add(&c->ok, 1);
    else
        atomic_fetch_add(&c->failed, 1);
}

static void wait_calls(done_count *c, unsigned want)
{
    for (int i = 0; i < 20000 && atomic_load(&c->calls) < want; i++)
        usleep(1000);
}

/* ---- documents --------------------------------------------------------------------- */

static void test_docs(void)
{
    char dir[300];
    subdir(dir, sizeof dir, "docs");
    eb_store *s = open_dir(dir, EB_SYNC_FULL, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(eb_store_doc_put(s, "rule", "b", "{\"v\":1}", 7) == EB_STORE_OK);
    CHECK(eb_store_doc_put(s, "rule", "a", "{\"v\":2}", 7) == EB_STORE_OK);
    CHECK(eb_store_doc_put(s, "rule", "c/x", "{\"v\":3}", 7) == EB_STORE_OK);
    CHECK(eb_store_doc_put(s, "bus", "a", "{\"bus\":true}", 12) == EB_STORE_OK);
    CHECK(eb_store_doc_put(s, "rule", "b", "{\"v\":\"replaced\"}", 16) == EB_STORE_OK); /* replace */
    /* len is honoured: only the first 7 bytes are stored */
    CHECK(eb_store_doc_put(s, "rule", "d", "{\"v\":4}trailing", 7) == EB_STORE_OK);

    doc_list l = {0};
    CHECK(eb_store_doc_scan(s, "rule", collect_doc, &l) == EB_STORE_OK);
    CHECK(l.n == 4);
    CHECK_STR(l.keys[0], "a");
    CHECK_STR(l.docs[0], "{\"v\":2}");
    CHECK_STR(l.keys[1], "b");
    CHECK_STR(l.docs[1], "{\"v\":\"replaced\"}");
    CHECK_STR(l.keys[2], "c/x");
    CHECK_STR(l.keys[3], "d");
    CHECK_STR(l.docs[3], "{\"v\":4}");

    CHECK(eb_store_doc_delete(s, "rule", "b") == EB_STORE_OK);
    CHECK(eb_store_doc_delete(s, "rule", "missing") == EB_STORE_OK); /* not an error */
    CHECK(eb_store_doc_delete(s, "bus", "b") == EB_STORE_OK);
    memset(&l, 0, sizeof l);
    CHECK(eb_store_doc_scan(s, "rule", collect_doc, &l) == EB_STORE_OK);
    CHECK(l.n == 3);
    CHECK_STR(l.keys[0], "a");
    CHECK_STR(l.keys[1], "c/x");

    /* the callback can stop the scan */
    memset(&l, 0, sizeof l);
    l.stop_after = 1;
    CHECK(eb_store_doc_scan(s, "rule", collect_doc, &l) == EB_STORE_OK);
    CHECK(l.n == 1);

    memset(&l, 0, sizeof l);
    CHECK(eb_store_doc_scan(s, "bus", collect_doc, &l) == EB_STORE_OK);
    CHECK(l.n == 1);
    CHECK_STR(l.docs[0], "{\"bus\":true}");
    memset(&l, 0, sizeof l);
    CHECK(eb_store_doc_scan(s, "nothing", collect_doc, &l) == EB_STORE_OK);
    CHECK(l.n == 0);
    eb_store_close(s);

    /* durable: reopen and find them */
    s = open_dir(dir, EB_SYNC_FULL, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    memset(&l, 0, sizeof l);
    CHECK(eb_store_doc_scan(s, "rule", collect_doc, &l) == EB_STORE_OK);
    CHECK(l.n == 3);
    CHECK_STR(l.keys[2], "d");
    eb_store_close(s);
    rm_store_dir(dir);
}

/* ---- append + event_scan ------------------------------------------------------------- */

static void test_append_scan(void)
{
    char dir[300];
    subdir(dir, sizeof dir, "append");
    eb_store *s = open_dir(dir, EB_SYNC_FULL, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    /* One append of three events: e0 with 2 jobs, e1 with none (retention 0:
     * acknowledged, not kept), e2 with 1 job. */
    one_event a, b, c;
    make_event(&a, 0, 300, 2);
    make_event(&b, 1, 100, 0);
    make_event(&c, 2, 1000, 1);
    eb_store_event evs[3] = {a.ev, b.ev, c.ev};
    eb_store_job jobs[3] = {a.jobs[0], a.jobs[1], c.jobs[0]};
    evs[0].first_job = 0;
    evs[2].first_job = 2;
    CHECK(eb_store_append_wait(s, evs, 3, jobs, 3) == EB_STORE_OK);
    /* nothing at all to store: still acknowledged */
    CHECK(eb_store_append_wait(s, &b.ev, 1, NULL, 0) == EB_STORE_OK);
    CHECK(eb_store_append_wait(s, NULL, 0, NULL, 0) == EB_STORE_OK);

    unsigned char seen[8] = {0};
    ev_list l = {.seen = seen, .seen_n = 8};
    CHECK(eb_store_event_scan(s, collect_event, &l) == EB_STORE_OK);
    CHECK(l.n == 2);
    CHECK(seen[0] && !seen[1] && seen[2]);
    CHECK(l.pending == 3);
    CHECK(l.bad == 0 && l.dup == 0);
    CHECK_STR(l.last_id, "e2");

    eb_store_stats st;
    CHECK(eb_store_stats_get(s, &st) == EB_STORE_OK);
    CHECK(st.events == 2);
    CHECK(st.jobs_pending == 3);
    CHECK(st.appends == 3);
    CHECK(st.commits == 1); /* the appends with nothing to store need no transaction */

    /* invalid job ranges are refused; done is not called */
    eb_log_set_level(EB_LOG_OFF); /* the expected error lines */
    done_count dc = {0};
    eb_store_event bad = a.ev;
    bad.first_job = 2;
    bad.njobs = 2;
    CHECK(eb_store_append(s, &bad, 1, jobs, 3, count_done, &dc) != EB_STORE_OK);
    bad.first_job = 4;
    bad.njobs = 0;
    CHECK(eb_store_append(s, &bad, 1, jobs, 3, count_done, &dc) != EB_STORE_OK);
    CHECK(atomic_load(&dc.calls) == 0);
    eb_log_set_level(EB_LOG_WARN);

    /* NULL done: fire and forget */
    one_event d;
    make_event(&d, 3, 50, 1);
    CHECK(eb_store_append(s, &d.ev, 1, d.jobs, 1, NULL, NULL) == EB_STORE_OK);
    eb_store_close(s);

    s = open_dir(dir, EB_SYNC_FULL, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    memset(seen, 0, sizeof seen);
    memset(&l, 0, sizeof l);
    l.seen = seen;
    l.seen_n = 8;
    CHECK(eb_store_event_scan(s, collect_event, &l) == EB_STORE_OK);
    CHECK(l.n == 3 && seen[3]);
    CHECK(eb_store_stats_get(s, &st) == EB_STORE_OK);
    CHECK(st.events == 3 && st.jobs_pending == 4 && st.commits == 0 && st.appends == 0);
    eb_store_close(s);
    rm_store_dir(dir);
}

/* ---- job ids: never reused while the store is open --------------------------------------- */

typedef struct {
    pthread_mutex_t mu;
    int64_t ids[8], rows[8];
    int n;
} job_sink;

static void sink_job_ids(void *ctx, const eb_store_job_rec *r, size_t n)
{
    job_sink *k = ctx;
    pthread_mutex_lock(&k->mu);
    for (size_t i = 0; i < n; i++)
        if (k->n < 8) {
            k->ids[k->n] = r[i].job_id;
            k->rows[k->n++] = r[i].event_row;
        }
    pthread_mutex_unlock(&k->mu);
}

/* The delivery engine keeps a finished job (by id) until its outcome's commit comes back; a new
 * job must not get that id meanwhile (SQLite's rowid would be max + 1 = the deleted job's id). */
static void test_job_ids_not_reused(void)
{
    char dir[300];
    subdir(dir, sizeof dir, "jobids");
    eb_store *s = open_dir(dir, EB_SYNC_NORMAL, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    job_sink k = {.mu = PTHREAD_MUTEX_INITIALIZER};
    eb_store_set_job_sink(s, sink_job_ids, &k);
    one_event e;
    for (unsigned long i = 0; i < 3; i++) {
        make_event(&e, i, 100, 1);
        CHECK(eb_store_append_wait(s, &e.ev, 1, e.jobs, 1) == EB_STORE_OK); /* the sink ran before done */
        pthread_mutex_lock(&k.mu);
        int n = k.n;
        eb_job_update u = {.job_id = n ? k.ids[n - 1] : 0, .event_row = n ? k.rows[n - 1] : 0,
                           .outcome = EB_JOB_FINISHED, .time_ms = eb_now_ms()};
        pthread_mutex_unlock(&k.mu);
        CHECK(n == (int)i + 1);
        if (n != (int)i + 1)
            break;
        /* the job is finished: its row goes, the table is empty again */
        done_count dc = {0};
        CHECK(eb_store_job_update(s, &u, 1, count_done, &dc) == EB_STORE_OK);
        wait_calls(&dc, 1);
        CHECK(atomic_load(&dc.ok) == 1);
    }
    eb_store_stats st;
    CHECK(eb_store_stats_get(s, &st) == EB_STORE_OK && st.jobs_pending == 0);
    CHECK(k.n == 3 && k.ids[0] < k.ids[1] && k.ids[1] < k.ids[2]);
    eb_store_set_job_sink(s, NULL, NULL);
    eb_store_close(s);
    rm_store_dir(dir);
}

/* ---- concurrency: group commit --------------------------------------------------------- */

#define NTHREADS 8
#define PER_THREAD 2000

typedef struct {
    eb_store *s;
    int t;
    int async; /* odd threads: append + callback, even: append_wait */
    int errors;
    done_count dc;
} worker;

static void *append_worker(void *arg)
{
    worker *w = arg;
    one_event e;
    for (int i = 0; i < PER_THREAD; i++) {
        unsigned long idx = (unsigned long)w->t * PER_THREAD + (unsigned long)i;
        make_event(&e, idx, 200 + (size_t)(idx % 800), 1 + (uint32_t)(idx % 3));
        int rc = w->async ? eb_store_append(w->s, &e.ev, 1, e.jobs, e.ev.njobs, count_done, &w->dc)
                          : eb_store_append_wait(w->s, &e.ev, 1, e.jobs, e.ev.njobs);
        if (rc != EB_STORE_OK)
            w->errors++;
    }
    if (w->async)
        wait_calls(&w->dc, PER_THREAD);
    return NULL;
}

static void test_concurrent(void)
{
    char dir[300];
    subdir(dir, sizeof dir, "concurrent");
    eb_store *s = open_dir(dir, EB_SYNC_FULL, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    worker w[NTHREADS];
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        w[t] = (worker){.s = s, .t = t, .async = t % 2};
        pthread_create(&th[t], NULL, append_worker, &w[t]);
    }
    /* documents are written while the committer runs */
    char key[32];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "k%02d", i);
        CHECK(eb_store_doc_put(s, "rule", key, "{}", 2) == EB_STORE_OK);
    }
    for (int t = 0; t < NTHREADS; t++) {
        pthread_join(th[t], NULL);
        CHECK(w[t].errors == 0);
        if (w[t].async) {
            CHECK(atomic_load(&w[t].dc.ok) == PER_THREAD);
            CHECK(atomic_load(&w[t].dc.failed) == 0);
        }
    }
    eb_store_stats st;
    CHECK(eb_store_stats_get(s, &st) == EB_STORE_OK);
    printf("concurrent: %d threads x %d appends: %llu commits for %llu appends\n", NTHREADS, PER_THREAD,
           (unsigned long long)st.commits, (unsigned long long)st.appends);
    CHECK(st.appends == NTHREADS * PER_THREAD);
    CHECK(st.events == NTHREADS * PER_THREAD);
    CHECK(st.commits > 0 && st.commits < st.appends); /* group commit happened */

    size_t total = NTHREADS * PER_THREAD;
    unsigned char *seen = calloc(total, 1);
    ev_list l = {.seen = seen, .seen_n = total};
    CHECK(eb_store_event_scan(s, collect_event, &l) == EB_STORE_OK);
    CHECK(l.n == total);
    CHECK(l.bad == 0 && l.dup == 0);
    size_t missing = 0;
    for (size_t i = 0; i < total; i++)
        missing += !seen[i];
    CHECK(missing == 0);
    eb_store_close(s);

    /* reopen the same directory: everything is there */
    s = open_dir(dir, EB_SYNC_FULL, 0);
    CHECK(s != NULL);
    if (s) {
        memset(seen, 0, total);
        memset(&l, 0, sizeof l);
        l.seen = seen;
        l.seen_n = total;
        CHECK(eb_store_event_scan(s, collect_event, &l) == EB_STORE_OK);
        CHECK(l.n == total && l.bad == 0 && l.dup == 0);
        CHECK(eb_store_stats_get(s, &st) == EB_STORE_OK);
        CHECK(st.events == total);
        doc_list dl = {0};
        CHECK(eb_store_doc_scan(s, "rule", collect_doc, &dl) == EB_STORE_OK);
        CHECK(dl.n == 20);
        eb_store_close(s);
    }
    free(seen);
    rm_store_dir(dir);
}

/* ---- permissions ----------------------------------------------------------------------- */

static void test_permissions(void)
{
    char parent[300], dir[400], p[512];
    subdir(parent, sizeof parent, "perm");
    snprintf(dir, sizeof dir, "%s/data", parent);
    mode_t old = umask(0); /* permissions must not depend on the umask */
    eb_store *s = open_dir(dir, EB_SYNC_FULL, 0);
    CHECK(s != NULL);
    if (s) {
        one_event e;
        make_event(&e, 0, 100, 1);
        CHECK(eb_store_append_wait(s, &e.ev, 1, e.jobs, 1) == EB_STORE_OK);
        CHECK(eb_store_doc_put(s, "bus", "x", "{}", 2) == EB_STORE_OK);
        struct stat st;
        CHECK(stat(parent, &st) == 0 && (st.st_mode & 07777) == 0700);
        CHECK(stat(dir, &st) == 0 && (st.st_mode & 07777) == 0700);
        static const char *const files[] = {"ebridge.db", "ebridge.db-wal", "ebridge.db-shm"};
        for (int i = 0; i < 3; i++) {
            snprintf(p, sizeof p, "%s/%s", dir, files[i]);
            int r = stat(p, &st);
            CHECK(r == 0);
            if (r == 0 && (st.st_mode & 07777) != 0600) {
                fprintf(stderr, "%s: mode %o\n", p, (unsigned)(st.st_mode & 07777));
                CHECK(0);
            }
        }
        eb_store_close(s);
    }
    umask(old);
    rm_store_dir(dir);
    rmdir(parent);
}

/* ---- retention --------------------------------------------------------------------------- */

static void test_retention(void)
{
    char dir[300];
    subdir(dir, sizeof dir, "retention");
    eb_store *s = open_dir(dir, EB_SYNC_OFF, 2);
    CHECK(s != NULL);
    if (!s)
        return;
    /* with retention, events without jobs are kept ... */
    one_event old1, old2, fresh, withjob;
    make_event(&old1, 0, 100, 0);
    make_event(&old2, 1, 100, 0);
    make_event(&fresh, 2, 100, 0);
    make_event(&withjob, 3, 100, 1);
    old1.ev.time_ms -= 60000;
    old2.ev.time_ms -= 60000;
    withjob.ev.time_ms -= 60000;
    eb_store_event evs[4] = {old1.ev, old2.ev, fresh.ev, withjob.ev};
    CHECK(eb_store_append_wait(s, evs, 4, withjob.jobs, 1) == EB_STORE_OK);
    eb_store_stats st;
    CHECK(eb_store_stats_get(s, &st) == EB_STORE_OK);
    CHECK(st.events == 4);
    /* ... until they are older than the retention (compaction runs about once
     * a second): the old finished ones go, the fresh one and the one with a
     * pending job stay. */
    for (int i = 0; i < 50 && st.events != 2; i++) {
        usleep(100000);
        eb_store_stats_get(s, &st);
    }
    CHECK(st.events == 2);
    unsigned char seen[8] = {0};
    ev_list l = {.seen = seen, .seen_n = 8};
    CHECK(eb_store_event_scan(s, collect_event, &l) == EB_STORE_OK);
    CHECK(l.n == 2 && seen[2] && seen[3] && !seen[0] && !seen[1]);
    eb_store_close(s);
    rm_store_dir(dir);
}

/* ---- close with appends in flight ------------------------------------------------------- */

typedef struct {
    eb_store *s;
    atomic_int entered, release;
    int extra_ok, closed_seen;
    done_count extra;
    int gate_status;
} gate;

/* The first done callback holds the committer until close has begun: it
 * appends (from the committer thread) until append answers ERR_CLOSED. */
static void gate_done(void *ctx, int status)
{
    gate *g = ctx;
    g->gate_status = status;
    atomic_store(&g->entered, 1);
    while (!atomic_load(&g->release))
        usleep(1000);
    one_event e;
    for (int i = 0; i < 10000; i++) {
        make_event(&e, 900000 + (unsigned long)i, 100, 1);
        int rc = eb_store_append(g->s, &e.ev, 1, e.jobs, 1, count_done, &g->extra);
        if (rc == EB_STORE_ERR_CLOSED) {
            g->closed_seen = 1;
            break;
        }
        if (rc == EB_STORE_OK)
            g->extra_ok++;
        usleep(1000);
    }
}

static void *closer(void *arg)
{
    eb_store_close(arg);
    return NULL;
}

static void test_close_in_flight(void)
{
    char dir[300];
    subdir(dir, sizeof dir, "close");
    eb_store *s = open_dir(dir, EB_SYNC_FULL, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    gate *g = calloc(1, sizeof *g);
    g->s = s;
    one_event e;
    make_event(&e, 0, 100, 1);
    CHECK(eb_store_append(s, &e.ev, 1, e.jobs, 1, gate_done, g) == EB_STORE_OK);
    while (!atomic_load(&g->entered))
        usleep(1000);
    /* the committer is held: these queue up */
    enum { N = 1000 };
    done_count dc = {0};
    for (int i = 1; i <= N; i++) {
        make_event(&e, (unsigned long)i, 300, 1);
        CHECK(eb_store_append(s, &e.ev, 1, e.jobs, 1, count_done, &dc) == EB_STORE_OK);
    }
    atomic_store(&g->release, 1);
    pthread_t th;
    pthread_create(&th, NULL, closer, s);
    pthread_join(th, NULL); /* close returned: every done callback has run */
    CHECK(g->gate_status == EB_STORE_OK);
    CHECK(g->closed_seen);
    CHECK(atomic_load(&dc.ok) == N && atomic_load(&dc.calls) == N);
    CHECK(atomic_load(&g->extra.ok) == (unsigned)g->extra_ok && atomic_load(&g->extra.failed) == 0);

    s = open_dir(dir, EB_SYNC_FULL, 0);
    CHECK(s != NULL);
    if (s) {
        ev_list l = {0};
        CHECK(eb_store_event_scan(s, collect_event, &l) == EB_STORE_OK);
        CHECK(l.n == (size_t)(1 + N + g->extra_ok));
        eb_store_close(s);
    }
    free(g);
    rm_store_dir(dir);
}

/* ---- failures ------------------------------------------------------------------------------ */

static void test_open_failure(void)
{
    char file[300], dir[400], gdir[300], gfile[400];
    subdir(file, sizeof file, "plainfile");
    FILE *f = fopen(file, "w");
    CHECK(f != NULL);
    if (f)
        fclose(f);
    char err[256] = "";
    eb_store_options o = {0};
    eb_log_set_level(EB_LOG_OFF);
    /* the data dir is a regular file / below a regular file */
    CHECK(eb_store_open_sqlite(file, &o, err, sizeof err) == NULL);
    CHECK(err[0] != 0);
    snprintf(dir, sizeof dir, "%s/sub", file);
    err[0] = 0;
    CHECK(eb_store_open_sqlite(dir, NULL, err, sizeof err) == NULL);
    CHECK(err[0] != 0);
    eb_log_set_level(EB_LOG_WARN);
    unlink(file);
    /* not a database */
    subdir(gdir, sizeof gdir, "garbage");
    mkdir(gdir, 0700);
    snprintf(gfile, sizeof gfile, "%s/ebridge.db", gdir);
    f = fopen(gfile, "w");
    if (f) {
        for (int i = 0; i < 1000; i++)
            fputs("this is not an SQLite database. ", f);
        fclose(f);
    }
    err[0] = 0;
    eb_log_set_level(EB_LOG_OFF);
    CHECK(eb_store_open_sqlite(gdir, NULL, err, sizeof err) == NULL);
    eb_log_set_level(EB_LOG_WARN);
    CHECK(err[0] != 0);
    rm_store_dir(gdir);
}

static void test_commit_failure(void)
{
    char dir[300];
    subdir(dir, sizeof dir, "fail");
    eb_store *s = open_dir(dir, EB_SYNC_FULL, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    one_event e;
    make_event(&e, 0, 100, 1);
    CHECK(eb_store_append_wait(s, &e.ev, 1, e.jobs, 1) == EB_STORE_OK);

    /* Writes past 64 KiB now fail with EFBIG, like a full disk. One append of
     * many 1.9 KB events needs more than that in the WAL. */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    enum { N = 200 };
    one_event *big = calloc(N, sizeof *big);
    eb_store_event evs[N];
    for (int i = 0; i < N; i++) {
        make_event(&big[i], 100 + (unsigned long)i, 1900, 1);
        evs[i] = big[i].ev;
    }
    /* each event's job is jobs[i] */
    eb_store_job jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = big[i].jobs[0];
        evs[i].first_job = (uint32_t)i;
    }
    eb_log_level lvl = eb_log_get_level();
    eb_log_set_level(EB_LOG_OFF); /* the expected error lines */
    int rc = eb_store_append_wait(s, evs, N, jobs, N);
    /* a second append queued behind it fails or succeeds as a whole */
    eb_log_set_level(lvl);
    CHECK(rc == EB_STORE_ERR_IO);
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
    signal(SIGXFSZ, oldsig);

    eb_store_stats st;
    CHECK(eb_store_stats_get(s, &st) == EB_STORE_OK);
    CHECK(st.events == 1 && st.appends == 1);
    ev_list l = {0};
    CHECK(eb_store_event_scan(s, collect_event, &l) == EB_STORE_OK);
    CHECK(l.n == 1); /* nothing of the failed batch */

    /* the store recovers once writes work again */
    CHECK(eb_store_append_wait(s, evs, N, jobs, N) == EB_STORE_OK);
    CHECK(eb_store_doc_put(s, "bus", "after", "{}", 2) == EB_STORE_OK);
    memset(&l, 0, sizeof l);
    CHECK(eb_store_event_scan(s, collect_event, &l) == EB_STORE_OK);
    CHECK(l.n == 1 + N);
    eb_store_close(s);

    s = open_dir(dir, EB_SYNC_FULL, 0);
    CHECK(s != NULL);
    if (s) {
        memset(&l, 0, sizeof l);
        CHECK(eb_store_event_scan(s, collect_event, &l) == EB_STORE_OK);
        CHECK(l.n == 1 + N);
        eb_store_close(s);
    }
    free(big);
    rm_store_dir(dir);
}

/* ---- kill -9: every acknowledged event is on disk -------------------------------------- *
 * A child process (this binary again, told by the environment) appends from
 * four threads and reports each acknowledged event id on a pipe; the parent
 * kills it with SIGKILL mid-stream, reopens the store and looks for every id
 * it was told about. (A process crash: the page cache survives, so this checks
 * that done comes after the commit, not power-loss durability.) */

#define CRASH_THREADS 4
#define CRASH_MAX_IDS (1u << 22)

static atomic_ulong crash_next;
static int crash_fd;
static eb_store *crash_store;

static void *crash_worker(void *arg)
{
    (void)arg;
    one_event e;
    for (;;) {
        unsigned long idx = atomic_fetch_add(&crash_next, 1);
        if (idx >= CRASH_MAX_IDS)
            break;
        make_event(&e, idx, 200 + idx % 900, 1);
        if (eb_store_append_wait(crash_store, &e.ev, 1, e.jobs, 1) == EB_STORE_OK) {
            uint32_t v = (uint32_t)idx;
            if (write(crash_fd, &v, sizeof v) != (ssize_t)sizeof v)
                _exit(3);
        }
    }
    return NULL;
}

static int crash_child(const char *dir, int fd)
{
    crash_fd = fd;
    eb_log_set_level(EB_LOG_WARN);
    crash_store = open_dir(dir, EB_SYNC_FULL, 0);
    if (!crash_store)
        return 2;
    pthread_t th[CRASH_THREADS];
    for (int i = 0; i < CRASH_THREADS; i++)
        pthread_create(&th[i], NULL, crash_worker, NULL);
    for (int i = 0; i < CRASH_THREADS; i++)
        pthread_join(th[i], NULL);
    pause(); /* wait for the kill */
    return 0;
}

static void test_kill9(void)
{
    char dir[300];
    subdir(dir, sizeof dir, "kill9");
    int p[2];
    CHECK(pipe(p) == 0);
    char env_dir[400], env_fd[64];
    snprintf(env_dir, sizeof env_dir, "EB_TEST_STORE_CRASH_DIR=%s", dir);
    snprintf(env_fd, sizeof env_fd, "EB_TEST_STORE_CRASH_FD=%d", p[1]);
    char *envp[] = {env_dir, env_fd, NULL};
    char *argv[] = {"test_store", NULL};
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        execve("/proc/self/exe", argv, envp);
        _exit(127);
    }
    CHECK(pid > 0);
    close(p[1]);
    if (pid <= 0)
        return;
    unsigned char *acked = calloc(CRASH_MAX_IDS, 1);
    size_t nacked = 0;
    uint64_t first = 0;
    uint32_t buf[1024];
    int killed = 0;
    for (;;) {
        if (!killed && first && eb_mono_ns() - first > 700000000u) {
            kill(pid, SIGKILL);
            killed = 1;
        }
        ssize_t k = read(p[0], buf, sizeof buf); /* blocks; EOF once the child is gone */
        if (k <= 0)
            break;
        if (!first)
            first = eb_mono_ns();
        for (size_t i = 0; i < (size_t)k / sizeof buf[0]; i++)
            if (buf[i] < CRASH_MAX_IDS && !acked[buf[i]]) {
                acked[buf[i]] = 1;
                nacked++;
            }
    }
    close(p[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(killed && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK(nacked > 0);

    eb_store *s = open_dir(dir, EB_SYNC_FULL, 0);
    CHECK(s != NULL);
    if (s) {
        unsigned char *seen = calloc(CRASH_MAX_IDS, 1);
        ev_list l = {.seen = seen, .seen_n = CRASH_MAX_IDS};
        CHECK(eb_store_event_scan(s, collect_event, &l) == EB_STORE_OK);
        size_t lost = 0;
        for (size_t i = 0; i < CRASH_MAX_IDS; i++)
            lost += acked[i] && !seen[i];
        printf("kill -9: %zu events acknowledged, %zu on disk, %zu acknowledged but missing\n", nacked, l.n,
               lost);
        CHECK(lost == 0);
        CHECK(l.n >= nacked && l.bad == 0 && l.dup == 0);
        free(seen);
        eb_store_close(s);
    }
    free(acked);
    rm_store_dir(dir);
}

/* ---- the delivery queue: job sink, job scan, outcomes, dead letters ------------------------- */

/* What the sink or a scan handed over (copied). */
typedef struct {
    int64_t id, event_row, time_ms, next;
    uint32_t attempts, hops;
    char rule[96], target[32], event_id[32], body[256];
} job_copy;

typedef struct {
    pthread_mutex_t mu;
    job_copy j[64];
    size_t n, calls;
    atomic_uint seq, sink_seq, done_seq; /* order of the sink and the done callback */
    int64_t skip;                        /* want_not: the job id not wanted */
} job_list;

static void copy_jobs(job_list *l, const eb_store_job_rec *r, size_t n)
{
    pthread_mutex_lock(&l->mu);
    l->calls++;
    for (size_t i = 0; i < n && l->n < 64; i++) {
        job_copy *c = &l->j[l->n++];
        c->id = r[i].job_id;
        c->event_row = r[i].event_row;
        c->time_ms = r[i].time_ms;
        c->next = r[i].next_attempt_ms;
        c->attempts = r[i].attempts;
        c->hops = r[i].hops;
        snprintf(c->rule, sizeof c->rule, "%s", r[i].rule);
        snprintf(c->target, sizeof c->target, "%s", r[i].target_id);
        snprintf(c->event_id, sizeof c->event_id, "%s", r[i].event_id);
        snprintf(c->body, sizeof c->body, "%.*s", (int)r[i].len, r[i].body);
    }
    pthread_mutex_unlock(&l->mu);
}

static void sink_jobs(void *ctx, const eb_store_job_rec *r, size_t n)
{
    job_list *l = ctx;
    atomic_store(&l->sink_seq, atomic_fetch_add(&l->seq, 1) + 1);
    copy_jobs(l, r, n);
}

static void sink_done(void *ctx, int status)
{
    job_list *l = ctx;
    if (status == EB_STORE_OK)
        atomic_store(&l->done_seq, atomic_fetch_add(&l->seq, 1) + 1);
}

/* A scan's want and fn share their ctx: the job_list. */
static int want_not(void *ctx, int64_t id)
{
    return id != ((const job_list *)ctx)->skip;
}

/* Scan every pending job (pages of `page`) into l; returns the pages' examined total. */
static int scan_all(eb_store *s, size_t page, int (*want)(void *, int64_t), job_list *l)
{
    int64_t after = 0, last = 0;
    int total = 0;
    for (;;) {
        int n = eb_store_job_scan(s, after, page, &last, want, (eb_store_jobs_fn)copy_jobs, l);
        if (n < 0)
            return n;
        total += n;
        if ((size_t)n < page)
            return total;
        after = last;
    }
}

typedef struct {
    int64_t id, time_ms;
    char queue[64], attrs[256], rule[96], target[32], event_id[32], body[256];
} dead_copy;

typedef struct {
    dead_copy d[16];
    int n;
} dead_list;

static int collect_dead(void *ctx, const eb_store_dead *d)
{
    dead_list *l = ctx;
    if (l->n < 16) {
        dead_copy *c = &l->d[l->n];
        c->id = d->id;
        c->time_ms = d->time_ms;
        snprintf(c->queue, sizeof c->queue, "%s", d->queue);
        snprintf(c->attrs, sizeof c->attrs, "%s", d->attrs);
        snprintf(c->rule, sizeof c->rule, "%s", d->rule);
        snprintf(c->target, sizeof c->target, "%s", d->target_id);
        snprintf(c->event_id, sizeof c->event_id, "%s", d->event_id);
        snprintf(c->body, sizeof c->body, "%.*s", (int)d->len, d->body);
    }
    l->n++;
    return 0;
}

static void job_list_reset(job_list *l)
{
    pthread_mutex_lock(&l->mu);
    l->n = 0;
    l->calls = 0;
    pthread_mutex_unlock(&l->mu);
}

static void test_job_queue(void)
{
    char dir[300];
    subdir(dir, sizeof dir, "queue");
    eb_store *s = open_dir(dir, EB_SYNC_FULL, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    static job_list sunk, scanned;
    pthread_mutex_init(&sunk.mu, NULL);
    pthread_mutex_init(&scanned.mu, NULL);
    eb_store_set_job_sink(s, sink_jobs, &sunk);

    /* e0: two jobs, e1: none (not kept), e2: one job, 3 hops behind it */
    one_event a, b, c;
    make_event(&a, 0, 100, 2);
    make_event(&b, 1, 100, 0);
    make_event(&c, 2, 120, 1);
    c.ev.hops = 3;
    c.ev.time_ms = 1234567;
    eb_store_event evs[3] = {a.ev, b.ev, c.ev};
    eb_store_job jobs[3] = {a.jobs[0], a.jobs[1], c.jobs[0]};
    evs[2].first_job = 2;
    CHECK(eb_store_append(s, evs, 3, jobs, 3, sink_done, &sunk) == EB_STORE_OK);
    for (int i = 0; i < 5000 && !atomic_load(&sunk.done_seq); i++)
        usleep(1000);
    /* the sink got every job of the append once it was committed, before its done callback */
    CHECK(atomic_load(&sunk.sink_seq) == 1 && atomic_load(&sunk.done_seq) == 2);
    CHECK(sunk.calls == 1 && sunk.n == 3);
    if (sunk.n != 3)
        return;
    CHECK(sunk.j[0].id > 0 && sunk.j[1].id > sunk.j[0].id && sunk.j[2].id > sunk.j[1].id);
    CHECK(sunk.j[0].event_row == sunk.j[1].event_row && sunk.j[2].event_row != sunk.j[0].event_row);
    CHECK_STR(sunk.j[0].rule, "000000000000/us-east-1/default/r1");
    CHECK_STR(sunk.j[1].target, "t2");
    CHECK_STR(sunk.j[2].event_id, "e2");
    CHECK_STR(sunk.j[2].body, c.body);
    CHECK(sunk.j[2].hops == 3 && sunk.j[0].hops == 0 && sunk.j[2].time_ms == 1234567);
    CHECK(sunk.j[0].attempts == 0 && sunk.j[0].next == 0);
    int64_t id0 = sunk.j[0].id, id1 = sunk.j[1].id, id2 = sunk.j[2].id, row0 = sunk.j[0].event_row;

    /* a scan hands over every pending job that is wanted, read in full */
    CHECK(scan_all(s, 10, NULL, &scanned) == 3);
    CHECK(scanned.n == 3 && scanned.j[2].id == id2 && scanned.j[2].hops == 3);
    CHECK(scanned.j[2].time_ms == 1234567 && scanned.j[2].next == 1234567); /* next attempt starts at the event's time */
    CHECK_STR(scanned.j[2].body, c.body);
    CHECK_STR(scanned.j[1].rule, "000000000000/us-east-1/default/r2");
    /* want() filters (those not wanted are examined but not read) */
    job_list_reset(&scanned);
    scanned.skip = id1;
    CHECK(scan_all(s, 10, want_not, &scanned) == 3);
    CHECK(scanned.n == 2 && scanned.j[0].id == id0 && scanned.j[1].id == id2);
    /* pages: limit 2 examines 2 and says where it stopped */
    job_list_reset(&scanned);
    int64_t last = -1;
    CHECK(eb_store_job_scan(s, 0, 2, &last, NULL, (eb_store_jobs_fn)copy_jobs, &scanned) == 2);
    CHECK(last == id1 && scanned.n == 2);
    CHECK(eb_store_job_scan(s, last, 2, &last, NULL, (eb_store_jobs_fn)copy_jobs, &scanned) == 1);
    CHECK(last == id2 && scanned.n == 3);
    CHECK(eb_store_job_scan(s, last, 2, &last, NULL, (eb_store_jobs_fn)copy_jobs, &scanned) == 0);
    CHECK(last == id2 && scanned.calls == 3);

    /* outcomes: a retry is recorded; a finished job goes and its event's pending count drops */
    done_count dc = {0};
    eb_job_update u = {.job_id = id1, .event_row = row0, .outcome = EB_JOB_RETRY, .attempts = 2,
                       .next_attempt_ms = 987654321};
    CHECK(eb_store_job_update(s, &u, 1, count_done, &dc) == EB_STORE_OK);
    eb_job_update f = {.job_id = id0, .event_row = row0, .outcome = EB_JOB_FINISHED};
    CHECK(eb_store_job_update(s, &f, 1, count_done, &dc) == EB_STORE_OK);
    wait_calls(&dc, 2);
    CHECK(atomic_load(&dc.ok) == 2);
    job_list_reset(&scanned);
    CHECK(scan_all(s, 10, NULL, &scanned) == 2);
    CHECK(scanned.n == 2 && scanned.j[0].id == id1 && scanned.j[0].attempts == 2 &&
          scanned.j[0].next == 987654321);
    eb_store_stats st;
    CHECK(eb_store_stats_get(s, &st) == EB_STORE_OK && st.jobs_pending == 2);
    ev_list el = {0};
    CHECK(eb_store_event_scan(s, collect_event, &el) == EB_STORE_OK);
    CHECK(el.n == 2 && el.pending == 2);

    /* finished into a dead-letter queue: the dead letter is written in the same transaction */
    const char *attrs = "{\"ERROR_CODE\":\"NO_RESOURCE\",\"RETRY_ATTEMPTS\":\"2\"}";
    eb_job_update dl = {.job_id = id1, .event_row = row0, .outcome = EB_JOB_FINISHED,
                        .dlq = "000000000000/us-east-1/dlq1", .dlq_attrs = attrs,
                        .rule = "000000000000/us-east-1/default/r2", .target_id = "t2", .event_id = "e0",
                        .body = a.body, .len = strlen(a.body), .time_ms = 5555};
    CHECK(eb_store_job_update(s, &dl, 1, count_done, &dc) == EB_STORE_OK);
    /* the same job finished twice (handed over twice): no second dead letter, pending not decremented again */
    CHECK(eb_store_job_update(s, &dl, 1, count_done, &dc) == EB_STORE_OK);
    wait_calls(&dc, 4);
    CHECK(atomic_load(&dc.ok) == 4);
    dead_list dd = {0};
    CHECK(eb_store_dead_scan(s, NULL, collect_dead, &dd) == EB_STORE_OK);
    CHECK(dd.n == 1);
    CHECK_STR(dd.d[0].queue, "000000000000/us-east-1/dlq1");
    CHECK_STR(dd.d[0].attrs, attrs);
    CHECK_STR(dd.d[0].rule, "000000000000/us-east-1/default/r2");
    CHECK_STR(dd.d[0].target, "t2");
    CHECK_STR(dd.d[0].event_id, "e0");
    CHECK_STR(dd.d[0].body, a.body);
    CHECK(dd.d[0].time_ms == 5555);
    memset(&dd, 0, sizeof dd);
    CHECK(eb_store_dead_scan(s, "000000000000/us-east-1/other", collect_dead, &dd) == EB_STORE_OK && dd.n == 0);
    CHECK(eb_store_dead_scan(s, "000000000000/us-east-1/dlq1", collect_dead, &dd) == EB_STORE_OK && dd.n == 1);
    memset(&el, 0, sizeof el);
    CHECK(eb_store_event_scan(s, collect_event, &el) == EB_STORE_OK);
    CHECK(el.pending == 1); /* e0 done (deleted by compaction or at 0), e2 pending */
    CHECK(eb_store_stats_get(s, &st) == EB_STORE_OK && st.jobs_pending == 1);

    /* re-drive: a fresh pending job for the same rule/target and event; the dead letter goes */
    int64_t dead_id = dd.d[0].id;
    CHECK(eb_store_dead_redrive(s, dead_id, 777) == EB_STORE_OK);
    CHECK(eb_store_dead_redrive(s, dead_id, 777) == EB_STORE_ERR_NOTFOUND);
    memset(&dd, 0, sizeof dd);
    CHECK(eb_store_dead_scan(s, NULL, collect_dead, &dd) == EB_STORE_OK && dd.n == 0);
    job_list_reset(&scanned);
    CHECK(scan_all(s, 10, NULL, &scanned) == 2);
    CHECK(scanned.n == 2 && scanned.j[0].id == id2);
    if (scanned.n == 2) {
        job_copy *r = &scanned.j[1];
        CHECK(r->id != id0 && r->id != id2 && r->attempts == 0 && r->next == 777 && r->hops == 0);
        CHECK(r->time_ms == 777);
        CHECK_STR(r->rule, "000000000000/us-east-1/default/r2");
        CHECK_STR(r->target, "t2");
        CHECK_STR(r->event_id, "e0");
        CHECK_STR(r->body, a.body);
    }
    CHECK(eb_store_stats_get(s, &st) == EB_STORE_OK && st.jobs_pending == 2);

    /* delete: a dead letter goes without a trace */
    dl.job_id = id2;
    dl.event_row = sunk.j[2].event_row;
    dl.dlq = "000000000000/us-east-1/dlq2";
    CHECK(eb_store_job_update(s, &dl, 1, count_done, &dc) == EB_STORE_OK);
    wait_calls(&dc, 5);
    memset(&dd, 0, sizeof dd);
    CHECK(eb_store_dead_scan(s, NULL, collect_dead, &dd) == EB_STORE_OK && dd.n == 1);
    CHECK(eb_store_dead_delete(s, dd.d[0].id) == EB_STORE_OK);
    CHECK(eb_store_dead_delete(s, dd.d[0].id) == EB_STORE_ERR_NOTFOUND);
    memset(&dd, 0, sizeof dd);
    CHECK(eb_store_dead_scan(s, NULL, collect_dead, &dd) == EB_STORE_OK && dd.n == 0);
    eb_store_set_job_sink(s, NULL, NULL);
    eb_store_close(s);

    /* durable: the re-driven job is still pending after a reopen */
    s = open_dir(dir, EB_SYNC_FULL, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    job_list_reset(&scanned);
    CHECK(scan_all(s, 10, NULL, &scanned) == 1);
    CHECK(scanned.n == 1 && scanned.j[0].next == 777);
    CHECK_STR(scanned.j[0].event_id, "e0");
    eb_store_close(s);
    rm_store_dir(dir);
}

/* ---- scans never take a job the sink has yet to hand over ------------------------------------ */

#define RACE_EVENTS 3000

typedef struct {
    pthread_mutex_t mu;
    unsigned char *sunk, *scanned; /* by job id */
    size_t cap;
    int dup, out_of_range;
    atomic_int stop;
    eb_store *s;
} race;

/* Every event here has one job, kept in its row: job id = row << 20 | 0xFFFFF. */
static int64_t race_key(int64_t job_id)
{
    return (job_id & 0xFFFFF) == 0xFFFFF ? job_id >> 20 : -1;
}

static void race_mark(race *r, unsigned char *set, const eb_store_job_rec *j, size_t n)
{
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < n; i++) {
        int64_t k = race_key(j[i].job_id);
        if (k <= 0 || (size_t)k >= r->cap) {
            r->out_of_range++;
            continue;
        }
        if (set[k])
            r->dup++;
        set[k] = 1;
    }
    pthread_mutex_unlock(&r->mu);
}

static void race_sink(void *ctx, const eb_store_job_rec *j, size_t n)
{
    race *r = ctx;
    race_mark(r, r->sunk, j, n);
}

static void race_scanned(void *ctx, const eb_store_job_rec *j, size_t n)
{
    race *r = ctx;
    race_mark(r, r->scanned, j, n);
}

/* Like the engine's: wanted unless the sink has handed it over. Runs with the
 * store's lock held: only our own mutex here. */
static int race_want(void *ctx, int64_t id)
{
    race *r = ctx;
    pthread_mutex_lock(&r->mu);
    int64_t k = race_key(id);
    int w = k > 0 && (size_t)k < r->cap && !r->sunk[k];
    pthread_mutex_unlock(&r->mu);
    return w;
}

static void *race_scanner(void *arg)
{
    race *r = arg;
    while (!atomic_load(&r->stop)) {
        int64_t after = 0, last = 0;
        for (;;) {
            int n = eb_store_job_scan(r->s, after, 64, &last, race_want, race_scanned, r);
            if (n < 64)
                break;
            after = last;
        }
    }
    return NULL;
}

static void test_job_scan_vs_sink(void)
{
    char dir[300];
    subdir(dir, sizeof dir, "scanrace");
    eb_store *s = open_dir(dir, EB_SYNC_FULL, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    race r = {.cap = RACE_EVENTS + 16, .s = s};
    pthread_mutex_init(&r.mu, NULL);
    r.sunk = calloc(r.cap, 1);
    r.scanned = calloc(r.cap, 1);
    eb_store_set_job_sink(s, race_sink, &r);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, race_scanner, &r);
    /* appends in many small group commits while two threads scan */
    done_count dc = {0};
    unsigned sent = 0;
    for (unsigned i = 0; i < RACE_EVENTS; i++) {
        one_event e;
        make_event(&e, i, 64, 1);
        if (eb_store_append(s, &e.ev, 1, e.jobs, 1, count_done, &dc) == EB_STORE_OK)
            sent++;
        if (i % 50 == 49)
            usleep(500);
    }
    wait_calls(&dc, sent);
    atomic_store(&r.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    size_t nsunk = 0, nscanned = 0;
    for (size_t i = 0; i < r.cap; i++) {
        nsunk += r.sunk[i];
        nscanned += r.scanned[i];
    }
    CHECK(sent == RACE_EVENTS && atomic_load(&dc.ok) == RACE_EVENTS);
    CHECK(nsunk == RACE_EVENTS);   /* every job handed over by the sink, once */
    CHECK(r.dup == 0 && r.out_of_range == 0);
    CHECK(nscanned == 0);          /* and none by a scan, which skips (handed, pending] */
    if (nscanned)
        fprintf(stderr, "test_job_scan_vs_sink: %zu jobs scanned before the sink had them\n", nscanned);
    /* with the sink gone, a scan sees them all */
    eb_store_set_job_sink(s, NULL, NULL);
    memset(r.sunk, 0, r.cap);
    int64_t last = 0;
    CHECK(eb_store_job_scan(s, 0, RACE_EVENTS + 10, &last, race_want, race_scanned, &r) == RACE_EVENTS);
    nscanned = 0;
    for (size_t i = 0; i < r.cap; i++)
        nscanned += r.scanned[i];
    CHECK(nscanned == RACE_EVENTS && r.dup == 0);
    eb_store_close(s);
    free(r.sunk);
    free(r.scanned);
    pthread_mutex_destroy(&r.mu);
    rm_store_dir(dir);
}

/* ---- schema v1 (before the queue) is migrated on open ----------------------------------------- */

/* A store file written by an older ebridge: dir/ebridge.db made by `sql`. */
static void write_old_store(const char *dir, char *path, size_t pathlen, const char *sql, const char *what)
{
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(path, pathlen, "%s/ebridge.db", dir);
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    char *msg = NULL;
    CHECK(sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK);
    if (msg)
        fprintf(stderr, "%s schema: %s\n", what, msg);
    sqlite3_free(msg);
    sqlite3_close(db);
}

static void test_schema_v1(void)
{
    char dir[300], path[400];
    subdir(dir, sizeof dir, "v1");
    /* the v1 schema, as ebridge wrote it before the delivery queue */
    const char *v1 =
        "CREATE TABLE docs(kind TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,"
        " PRIMARY KEY (kind, key)) WITHOUT ROWID;"
        "CREATE TABLE events(rowid INTEGER PRIMARY KEY, id TEXT NOT NULL, account TEXT NOT NULL,"
        " region TEXT NOT NULL, bus TEXT NOT NULL, time_ms INTEGER NOT NULL, pending INTEGER NOT NULL,"
        " body BLOB NOT NULL);"
        "CREATE INDEX events_done ON events(time_ms) WHERE pending = 0;"
        "CREATE TABLE jobs(id INTEGER PRIMARY KEY, event INTEGER NOT NULL, rule TEXT NOT NULL,"
        " target_id TEXT NOT NULL, state INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
        " next_attempt_ms INTEGER NOT NULL);"
        "CREATE INDEX jobs_due ON jobs(state, next_attempt_ms);"
        "INSERT INTO docs VALUES ('bus', '000000000000/us-east-1/old', '{\"v1\":true}');"
        "INSERT INTO events VALUES (7, 'old-1', '000000000000', 'us-east-1', 'default', 42, 1, '{\"id\":\"old-1\"}');"
        "INSERT INTO jobs(id, event, rule, target_id, next_attempt_ms) VALUES"
        " (5, 7, '000000000000/us-east-1/default/r', 't', 42);"
        "PRAGMA user_version=1;";
    write_old_store(dir, path, sizeof path, v1, "v1");
    sqlite3 *db = NULL;

    eb_store *s = open_dir(dir, EB_SYNC_FULL, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    doc_list dl = {0};
    CHECK(eb_store_doc_scan(s, "bus", collect_doc, &dl) == EB_STORE_OK && dl.n == 1);
    CHECK_STR(dl.docs[0], "{\"v1\":true}");
    static job_list l;
    pthread_mutex_init(&l.mu, NULL);
    CHECK(scan_all(s, 10, NULL, &l) == 1);
    /* the job's id is derived from its event's row now (schema 3): the first job of row 7 */
    CHECK(l.n == 1 && l.j[0].id == (7 << 20) && l.j[0].event_row == 7 && l.j[0].hops == 0 && l.j[0].time_ms == 42);
    CHECK_STR(l.j[0].body, "{\"id\":\"old-1\"}");
    CHECK_STR(l.j[0].event_id, "old-1");
    /* the new parts work: hops on new events, dead letters */
    one_event e;
    make_event(&e, 9, 64, 1);
    e.ev.hops = 2;
    CHECK(eb_store_append_wait(s, &e.ev, 1, e.jobs, 1) == EB_STORE_OK);
    eb_job_update u = {.job_id = 7 << 20, .event_row = 7, .outcome = EB_JOB_FINISHED, .dlq = "000000000000/us-east-1/q",
                       .dlq_attrs = "{}", .rule = "000000000000/us-east-1/default/r", .target_id = "t",
                       .event_id = "old-1", .body = "{\"id\":\"old-1\"}", .len = 14, .time_ms = 1};
    done_count dc = {0};
    CHECK(eb_store_job_update(s, &u, 1, count_done, &dc) == EB_STORE_OK);
    wait_calls(&dc, 1);
    CHECK(atomic_load(&dc.ok) == 1);
    dead_list dd = {0};
    CHECK(eb_store_dead_scan(s, NULL, collect_dead, &dd) == EB_STORE_OK && dd.n == 1);
    CHECK_STR(dd.d[0].body, "{\"id\":\"old-1\"}");
    job_list_reset(&l);
    CHECK(scan_all(s, 10, NULL, &l) == 1);
    CHECK(l.n == 1 && l.j[0].hops == 2);
    eb_store_close(s);

    /* the file says version 3 now */
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    sqlite3_stmt *st = NULL;
    CHECK(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 3);
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* a version newer than this ebridge knows is refused */
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "PRAGMA user_version=4", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    eb_store_options o = {.sync = EB_SYNC_FULL};
    char err[256] = "";
    eb_log_set_level(EB_LOG_OFF);
    s = eb_store_open_sqlite(dir, &o, err, sizeof err);
    eb_log_set_level(EB_LOG_WARN);
    CHECK(s == NULL && strstr(err, "newer ebridge") != NULL);
    eb_store_close(s);
    rm_store_dir(dir);
}

/* Finished outcomes in runs of consecutive job ids and event rows take the
 * store's range path; a job in the run finished before (handed over twice), an
 * event with a second job, and retention must come out as one by one. */
static void finish_all(eb_store *s, const job_list *jl, const size_t *which, size_t n, done_count *dc, unsigned *calls)
{
    eb_job_update u[16];
    for (size_t i = 0; i < n; i++)
        u[i] = (eb_job_update){.job_id = jl->j[which[i]].id, .event_row = jl->j[which[i]].event_row,
                               .outcome = EB_JOB_FINISHED};
    CHECK(eb_store_job_update(s, u, n, count_done, dc) == EB_STORE_OK);
    wait_calls(dc, ++*calls);
}

static void count_events(eb_store *s, size_t want_n, uint64_t want_pending, uint64_t want_jobs)
{
    ev_list el = {0};
    CHECK(eb_store_event_scan(s, collect_event, &el) == EB_STORE_OK);
    CHECK(el.n == want_n && el.pending == want_pending);
    eb_store_stats st;
    CHECK(eb_store_stats_get(s, &st) == EB_STORE_OK && st.jobs_pending == want_jobs);
    if (el.n != want_n || el.pending != want_pending || st.jobs_pending != want_jobs)
        fprintf(stderr, "  events %zu (want %zu), pending %llu (want %llu), jobs %llu (want %llu)\n", el.n, want_n,
                (unsigned long long)el.pending, (unsigned long long)want_pending,
                (unsigned long long)st.jobs_pending, (unsigned long long)want_jobs);
}

static void test_finish_runs(void)
{
    for (int keep = 0; keep < 2; keep++) {
        char dir[300];
        subdir(dir, sizeof dir, keep ? "runs-keep" : "runs");
        eb_store *s = open_dir(dir, EB_SYNC_FULL, keep ? 3600 : 0);
        CHECK(s != NULL);
        if (!s)
            return;
        static job_list jl;
        memset(&jl, 0, sizeof jl);
        pthread_mutex_init(&jl.mu, NULL);
        eb_store_set_job_sink(s, sink_jobs, &jl);
        /* e0..e9 one job each, e10 two jobs, e11 one job: 13 jobs */
        static one_event e[12];
        eb_store_event evs[12];
        eb_store_job jobs[13];
        size_t nj = 0;
        for (unsigned long i = 0; i < 12; i++) {
            make_event(&e[i], i, 80, i == 10 ? 2 : 1);
            evs[i] = e[i].ev;
            evs[i].first_job = nj;
            for (uint32_t j = 0; j < e[i].ev.njobs; j++)
                jobs[nj++] = e[i].jobs[j];
        }
        CHECK(eb_store_append(s, evs, 12, jobs, nj, sink_done, &jl) == EB_STORE_OK);
        for (int i = 0; i < 5000 && !atomic_load(&jl.done_seq); i++)
            usleep(1000);
        CHECK(jl.n == 13);
        if (jl.n != 13) {
            eb_store_close(s);
            return;
        }
        /* rows consecutive but for e10's second job; ids derived from them: an event's only job is
         * kept in its row (index 0xFFFFF) unless retention keeps finished events, e10's two jobs
         * (in the jobs table) have indexes 0 and 1 */
        for (size_t i = 0; i < 13; i++) {
            int64_t idx = i == 11 ? 1 : i == 10 || keep ? 0 : 0xFFFFF;
            CHECK(jl.j[i].id == ((jl.j[i].event_row << 20) | idx));
            CHECK(i == 0 || jl.j[i].event_row == jl.j[i - 1].event_row + (i == 11 ? 0 : 1));
        }
        done_count dc = {0};
        unsigned calls = 0;
        count_events(s, 12, 13, 13);
        /* e2's job alone, then e0..e5 as a run (e2's job already gone) */
        finish_all(s, &jl, (size_t[]){2}, 1, &dc, &calls);
        finish_all(s, &jl, (size_t[]){0, 1, 2, 3, 4, 5}, 6, &dc, &calls);
        count_events(s, keep ? 12 : 6, 7, 7);
        /* e6..e9 and e10's first job: a run of five; e10 keeps one pending job */
        finish_all(s, &jl, (size_t[]){6, 7, 8, 9, 10}, 5, &dc, &calls);
        count_events(s, keep ? 12 : 2, 2, 2);
        /* the same run again: nothing changes */
        finish_all(s, &jl, (size_t[]){6, 7, 8, 9, 10}, 5, &dc, &calls);
        count_events(s, keep ? 12 : 2, 2, 2);
        /* e10's second job and e11's, one by one */
        finish_all(s, &jl, (size_t[]){11, 12}, 2, &dc, &calls);
        count_events(s, keep ? 12 : 0, 0, 0);
        CHECK(atomic_load(&dc.ok) == calls);
        eb_store_set_job_sink(s, NULL, NULL);
        eb_store_close(s);
        /* and so after a reopen */
        s = open_dir(dir, EB_SYNC_FULL, keep ? 3600 : 0);
        CHECK(s != NULL);
        if (s) {
            count_events(s, keep ? 12 : 0, 0, 0);
            eb_store_close(s);
        }
        rm_store_dir(dir);
    }
}

/* A version-2 store (every job in the jobs table, ids from their own
 * sequence) opens with derived job ids, in their order within each event;
 * new events get their only job kept in their own row; scans merge both,
 * in pages smaller than the queue, and outcomes reach both kinds. */
static void test_schema_v2(void)
{
    char dir[300], path[400];
    subdir(dir, sizeof dir, "v2");
    const char *v2 =
        "PRAGMA page_size=16384;"
        "CREATE TABLE docs(kind TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,"
        " PRIMARY KEY (kind, key)) WITHOUT ROWID;"
        "CREATE TABLE events(rowid INTEGER PRIMARY KEY, id TEXT NOT NULL, account TEXT NOT NULL,"
        " region TEXT NOT NULL, bus TEXT NOT NULL, time_ms INTEGER NOT NULL, pending INTEGER NOT NULL,"
        " body BLOB NOT NULL, hops INTEGER NOT NULL DEFAULT 0);"
        "CREATE INDEX events_done ON events(time_ms) WHERE pending = 0;"
        "CREATE TABLE jobs(id INTEGER PRIMARY KEY, event INTEGER NOT NULL, rule TEXT NOT NULL,"
        " target_id TEXT NOT NULL, state INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
        " next_attempt_ms INTEGER NOT NULL);"
        "CREATE TABLE dlq(id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, time_ms INTEGER NOT NULL,"
        " attrs TEXT NOT NULL, rule TEXT NOT NULL, target_id TEXT NOT NULL, event_id TEXT NOT NULL, body BLOB NOT NULL);"
        "INSERT INTO events VALUES (3, 'a', '000000000000', 'us-east-1', 'default', 40, 2, '{\"id\":\"a\"}', 0);"
        "INSERT INTO events VALUES (9, 'b', '000000000000', 'us-east-1', 'default', 41, 1, '{\"id\":\"b\"}', 1);"
        "INSERT INTO jobs(id, event, rule, target_id, attempts, next_attempt_ms) VALUES"
        " (11, 3, '000000000000/us-east-1/default/r', 't1', 0, 40),"
        " (12, 9, '000000000000/us-east-1/default/r', 't1', 2, 99),"
        " (14, 3, '000000000000/us-east-1/default/r', 't2', 0, 40);"
        "PRAGMA user_version=2;";
    write_old_store(dir, path, sizeof path, v2, "v2");

    eb_store *s = open_dir(dir, EB_SYNC_FULL, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    /* two new events after the old ones: one job (kept in its row), two jobs */
    one_event n1, n2;
    make_event(&n1, 20, 64, 1);
    make_event(&n2, 21, 64, 2);
    CHECK(eb_store_append_wait(s, &n1.ev, 1, n1.jobs, 1) == EB_STORE_OK);
    CHECK(eb_store_append_wait(s, &n2.ev, 1, n2.jobs, 2) == EB_STORE_OK);
    eb_store_stats st;
    CHECK(eb_store_stats_get(s, &st) == EB_STORE_OK && st.jobs_pending == 6 && st.events == 4);
    static job_list l;
    memset(&l, 0, sizeof l);
    pthread_mutex_init(&l.mu, NULL);
    CHECK(scan_all(s, 2, NULL, &l) == 6); /* pages of 2: 2 + 2 + 2 (+ 0) */
    CHECK(l.n == 6);
    if (l.n != 6) {
        eb_store_close(s);
        return;
    }
    int64_t r1 = l.j[3].event_row, r2 = l.j[4].event_row;
    CHECK(l.j[0].id == (3 << 20) && l.j[1].id == ((3 << 20) | 1) && l.j[2].id == (9 << 20));
    CHECK_STR(l.j[0].target, "t1");
    CHECK_STR(l.j[1].target, "t2");
    CHECK(l.j[2].attempts == 2 && l.j[2].next == 99 && l.j[2].hops == 1);
    CHECK_STR(l.j[2].body, "{\"id\":\"b\"}");
    CHECK(r1 > 9 && r2 == r1 + 1);
    CHECK(l.j[3].id == ((r1 << 20) | 0xFFFFF) && l.j[4].id == (r2 << 20) && l.j[5].id == ((r2 << 20) | 1));
    CHECK_STR(l.j[3].body, n1.body);
    CHECK(l.j[3].next == n1.ev.time_ms && l.j[3].attempts == 0);
    /* a retry of the in-row job is kept; want() and after skip as before */
    done_count dc = {0};
    eb_job_update u = {.job_id = l.j[3].id, .event_row = r1, .outcome = EB_JOB_RETRY, .attempts = 3,
                       .next_attempt_ms = 777};
    CHECK(eb_store_job_update(s, &u, 1, count_done, &dc) == EB_STORE_OK);
    wait_calls(&dc, 1);
    int64_t id_in_row = l.j[3].id;
    memset(&l, 0, sizeof l);
    pthread_mutex_init(&l.mu, NULL);
    int64_t last = 0;
    CHECK(eb_store_job_scan(s, (9 << 20), 10, &last, NULL, (eb_store_jobs_fn)copy_jobs, &l) == 3);
    CHECK(l.n == 3 && l.j[0].id == id_in_row && l.j[0].attempts == 3 && l.j[0].next == 777);
    CHECK(last == ((r2 << 20) | 1));
    /* finish everything: old jobs, the in-row one, the new table ones */
    int64_t ids[6] = {3 << 20, (3 << 20) | 1, 9 << 20, id_in_row, r2 << 20, (r2 << 20) | 1};
    int64_t rows[6] = {3, 3, 9, r1, r2, r2};
    eb_job_update f[6];
    for (int i = 0; i < 6; i++)
        f[i] = (eb_job_update){.job_id = ids[i], .event_row = rows[i], .outcome = EB_JOB_FINISHED};
    CHECK(eb_store_job_update(s, f, 6, count_done, &dc) == EB_STORE_OK);
    wait_calls(&dc, 2);
    CHECK(eb_store_stats_get(s, &st) == EB_STORE_OK && st.jobs_pending == 0 && st.events == 0);
    eb_store_close(s);
    s = open_dir(dir, EB_SYNC_FULL, 0);
    CHECK(s != NULL);
    if (s) {
        CHECK(eb_store_stats_get(s, &st) == EB_STORE_OK && st.jobs_pending == 0 && st.events == 0);
        eb_store_close(s);
    }
    rm_store_dir(dir);
}

int main(void)
{
    const char *crash_dir = getenv("EB_TEST_STORE_CRASH_DIR"), *crash_fd_s = getenv("EB_TEST_STORE_CRASH_FD");
    if (crash_dir && crash_fd_s)
        return crash_child(crash_dir, atoi(crash_fd_s));
    setup_root();
    eb_log_set_level(EB_LOG_WARN);
    RUN(test_docs);
    RUN(test_append_scan);
    RUN(test_job_ids_not_reused);
    RUN(test_concurrent);
    RUN(test_permissions);
    RUN(test_retention);
    RUN(test_close_in_flight);
    RUN(test_open_failure);
    RUN(test_commit_failure);
    RUN(test_kill9);
    RUN(test_job_queue);
    RUN(test_job_scan_vs_sink);
    RUN(test_finish_runs);
    RUN(test_schema_v1);
    RUN(test_schema_v2);
    rmdir(root);
    return TEST_REPORT();
}
