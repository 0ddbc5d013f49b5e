/* The SQLite backend of the storage interface (store.h).
 *
 * Files: <dir>/ebridge.db and its -wal / -shm companions. The directory is
 * created 0700 when missing; the database file is created 0600 before SQLite
 * opens it (SQLite gives -wal and -shm the main file's mode) and all three are
 * chmod'ed 0600 after opening, whatever the umask.
 *
 * Schema (user_version 1):
 *   docs(kind, key, doc)       WITHOUT ROWID, primary key (kind, key):
 *                              the control plane; doc_scan walks the key order.
 *   events(rowid, id, account, region, bus, time_ms, pending, body)
 *                              one accepted event; `pending` = its jobs not
 *                              finished yet (set to njobs on insert). No index
 *                              on `id`: nothing looks an event up by id yet,
 *                              and a UUID index would cost a random b-tree
 *                              insert per event. Index events_done(time_ms)
 *                              WHERE pending = 0 feeds compaction.
 *   jobs(id, event, rule, target_id, state, attempts,
 *        next_attempt_ms)      one delivery job; `event` is events.rowid;
 *                              ids are never reused while the store is open;
 *                              the delivery engine pages through them by id
 *                              (no other index: each costs a b-tree insert
 *                              and delete per job).
 *   dlq(id, queue, ...)        dead letters, index dlq_queue(queue, id).
 *   A finished job (delivered, dropped or dead-lettered) is deleted and its
 *   event's `pending` decremented in the same transaction -- or, without
 *   retention, the event deleted right away when this was its last job (one
 *   row delete instead of an update, a partial-index entry and a compaction).
 *   So an event with pending = 0 has no job rows left, and compaction deletes
 *   events only (no jobs(event) index is needed).
 *
 * Retention choice: with retention_s == 0 (the default) events that matched
 * no target (njobs == 0) are never inserted -- they are not copied into the
 * queue either, but the append is acknowledged through the committer like any
 * other, in order. With retention_s > 0 every event is inserted. Either way the
 * committer compacts at most once a second (sooner while there is a backlog),
 * deleting at most COMPACT_LIMIT finished events (pending = 0) older than the
 * retention (any age with retention 0: those appear once delivery finishes
 * their jobs), as a single autocommit DELETE outside the append batches.
 *
 * Connections and threads (SQLite opened SQLITE_OPEN_NOMUTEX: we serialize
 * each connection ourselves):
 *   - `wdb`, the committer's connection: used only by the committer thread
 *     (and by open/close, before it starts / after it is joined);
 *   - `cdb`, the control connection: doc_put/doc_delete/doc_scan/event_scan,
 *     guarded by `cmu`. Callbacks of doc_scan/event_scan run with `cmu` held:
 *     they must not call back into this store.
 *   WAL lets `cdb` read while the committer writes; writes of the two
 *   connections serialize on SQLite's write lock (busy_timeout).
 *
 * Group commit: eb_store_append copies the events/jobs it will store into one
 * allocation, links it into a FIFO queue (mutex `qmu`) and signals the
 * committer. The committer takes every queued append (up to max_batch_events
 * stored events, at least one append), writes them in one BEGIN IMMEDIATE ..
 * COMMIT with prepared statements (bound SQLITE_STATIC from the queue copy, no
 * further allocation), then calls each done callback with EB_STORE_OK -- or,
 * when any statement or the COMMIT fails, rolls back and calls every done of
 * the batch with EB_STORE_ERR_IO. While it commits, new appends pile up and go
 * into the next transaction: one fsync covers them all. The queue is bounded
 * (QUEUE_BATCHES batches of events / QUEUE_APPENDS appends): appenders then
 * wait (except the committer thread itself, from a done callback). A queue
 * holding only job outcomes (eb_store_job_update) is left to gather for up to
 * UPDATE_LINGER_MS before it is committed (events end the wait at once).
 *
 * Checkpoints: auto-checkpointing is off on every connection. Once the WAL
 * holds CKPT_BYTES (and on the committer's once-a-second tick) a checkpointer
 * thread with its own connection copies WAL frames into the database while
 * commits go on. The WAL can only start over from its beginning after a
 * moment when every frame is copied and no commit came in between, which a
 * background pass racing a busy writer rarely sees; so once the WAL is past
 * RESTART_BYTES and the background pass has left at most FINAL_BYTES, the
 * committer copies the rest itself (a short stall, a few times a minute at
 * full load) and the next transaction restarts the WAL. Past CKPT_HARD_BYTES
 * (the background cannot keep up) the committer checkpoints everything.
 * journal_size_limit keeps the WAL file from staying large.
 *
 * Pages of 16 KiB (new databases): ~1 KB events waste less of a page than
 * with 4 KiB, and SQLite writes a WAL frame with two pwrite calls, so bigger
 * pages mean several times fewer system calls per event. */
#define _POSIX_C_SOURCE 200809L
#include "store.h"

#include "../util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DB_FILE "ebridge.db"
#define SCHEMA_VERSION 3
/* Job ids are derived from their event's rowid: (row << JOB_IDX_BITS) | index. An event's only job
 * is kept in the event's own row (job_rule, job_target, job_attempts, job_next: one insert and one
 * delete per event instead of two of each) and has the index JOB_INLINE; the jobs of an event with
 * several live in the jobs table with indexes 0, 1, ... Ids are thus unique, grow with the commit
 * order (event rowids are never reused while the store is open: ev_floor) and say where a job lives. */
#define JOB_IDX_BITS 20
#define JOB_INLINE ((int64_t)((1 << JOB_IDX_BITS) - 1))
/* the same in SQL text */
#define SQL_STR_(x) #x
#define SQL_STR(x) SQL_STR_(x)
#define SQL_IDX_BITS SQL_STR(JOB_IDX_BITS)
#define MAX_EVENT_JOBS ((uint32_t)JOB_INLINE) /* jobs of one event: indexes 0 .. JOB_INLINE-1 */
static int64_t job_id_of(int64_t row, int64_t idx)
{
    return (int64_t)((uint64_t)row << JOB_IDX_BITS) | idx;
}
static int job_inline(int64_t id)
{
    return (id & JOB_INLINE) == JOB_INLINE;
}
#ifndef EB_SQLITE_MAX_BATCH
#define EB_SQLITE_MAX_BATCH 5000u
#endif
#define DEFAULT_MAX_BATCH EB_SQLITE_MAX_BATCH
#define QUEUE_BATCHES 4u       /* queued stored events beyond this many batches make appenders wait */
#define QUEUE_APPENDS 65536u   /* ... and so do this many queued appends */
#define SYNC_QUEUE_MAX 4u      /* committed batches waiting for their fsync before the committer waits */
#define COMPACT_LIMIT 5000     /* events deleted per compaction at most */
#define COMPACT_INTERVAL_MS 1000
#define BUSY_TIMEOUT_MS 10000
#define JOB_READY 0
#ifndef EB_SQLITE_PAGE_SIZE /* -D overrides are for benchmarking */
#define EB_SQLITE_PAGE_SIZE 16384
#endif
#define CKPT_HARD_BYTES ((int64_t)512 * 1024 * 1024) /* the committer checkpoints itself */
#ifndef EB_SQLITE_CKPT_BYTES /* WAL size that triggers a checkpoint: pages written again and
                              * again (insert, then delete once delivered) are copied once per pass;
                              * 64 MB gave ~8% more PutEvents throughput than 16 MB in A/B runs */
#define EB_SQLITE_CKPT_BYTES (64 * 1024 * 1024)
#endif
#define PAGE_SIZE EB_SQLITE_PAGE_SIZE
#define CKPT_BYTES EB_SQLITE_CKPT_BYTES

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS docs("
    " kind TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,"
    " PRIMARY KEY (kind, key)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS events("
    " rowid INTEGER PRIMARY KEY, id TEXT NOT NULL, account TEXT NOT NULL, region TEXT NOT NULL,"
    " bus TEXT NOT NULL, time_ms INTEGER NOT NULL, pending INTEGER NOT NULL, body BLOB NOT NULL,"
    " hops INTEGER NOT NULL DEFAULT 0, job_rule TEXT, job_target TEXT, job_attempts INTEGER NOT NULL DEFAULT 0,"
    " job_next INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS events_done ON events(time_ms) WHERE pending = 0;"
    "CREATE TABLE IF NOT EXISTS jobs("
    " id INTEGER PRIMARY KEY, event INTEGER NOT NULL, rule TEXT NOT NULL,"
    " target_id TEXT NOT NULL, state INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS dlq("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, time_ms INTEGER NOT NULL, attrs TEXT NOT NULL,"
    " rule TEXT NOT NULL, target_id TEXT NOT NULL, event_id TEXT NOT NULL, body BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS dlq_queue ON dlq(queue, id);";

/* From schema version 1 (no hops, no dead letters). */
static const char MIGRATE_1_2[] = "ALTER TABLE events ADD COLUMN hops INTEGER NOT NULL DEFAULT 0;";
/* From schema version 2 (every job in the jobs table, ids from their own sequence): jobs keep
 * their order within their event and get derived ids. */
static const char MIGRATE_2_3[] =
    "ALTER TABLE events ADD COLUMN job_rule TEXT;"
    "ALTER TABLE events ADD COLUMN job_target TEXT;"
    "ALTER TABLE events ADD COLUMN job_attempts INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE events ADD COLUMN job_next INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE jobs3("
    " id INTEGER PRIMARY KEY, event INTEGER NOT NULL, rule TEXT NOT NULL,"
    " target_id TEXT NOT NULL, state INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt_ms INTEGER NOT NULL);"
    "INSERT INTO jobs3(id, event, rule, target_id, state, attempts, next_attempt_ms)"
    " SELECT (event << " SQL_IDX_BITS ") + row_number() OVER (PARTITION BY event ORDER BY id) - 1,"
    " event, rule, target_id, state, attempts, next_attempt_ms FROM jobs;"
    "DROP TABLE jobs;"
    "ALTER TABLE jobs3 RENAME TO jobs;";

/* ---- the queue ---------------------------------------------------------------- */

/* One event to store, pointing into its append's allocation. */
typedef struct {
    const char *id, *account, *region, *bus, *body;
    size_t id_n, account_n, region_n, bus_n, body_n;
    int64_t time_ms;
    size_t first_job, njobs; /* into the append's job array */
    uint32_t hops;
    int64_t row; /* its rowid, once inserted */
} qev;

typedef struct {
    const char *rule, *target;
    size_t rule_n, target_n;
    int64_t id; /* the job's id, once inserted */
} qjob;

/* One job outcome (eb_store_job_update), pointing into its request's allocation. */
typedef struct {
    int64_t job_id, event_row, next_attempt_ms, time_ms;
    eb_job_outcome outcome;
    uint32_t attempts;
    const char *dlq, *attrs, *rule, *target, *event_id, *body; /* dlq NULL = none */
    size_t dlq_n, attrs_n, rule_n, target_n, event_id_n, body_n;
} qupd;

/* One queued request: an append (events + jobs) or a job update (upd). */
typedef struct qappend {
    struct qappend *next;
    eb_store_done_fn done;
    void *ctx;
    size_t nev, njobs; /* stored ones */
    qev *ev;
    qjob *jobs;
    size_t nupd;
    qupd *upd;
    int status; /* set by the committer */
    uint64_t queued_ms; /* mono ms when enqueued */
} qappend;

/* Job outcomes alone are not waited for by anyone but the delivery engine (to forget a finished
 * job) and are not fsynced: the committer lets them gather for up to UPDATE_LINGER_MS, so that
 * a steady trickle of outcomes (retries of a failing target, deliveries at a moderate rate) costs
 * one transaction per few milliseconds instead of one each. Events end the wait at once. */
#define UPDATE_LINGER_MS 10u
static int lazy_append(const qappend *a)
{
    return a->nupd && !a->nev && !a->njobs;
}

typedef struct {
    eb_store base;
    eb_store_options opt;
    int keep_all; /* store events without jobs too (retention_s > 0) */
    int inl_scan; /* job_scan looks for jobs kept in event rows (none with retention, but from an earlier run) */

    sqlite3 *wdb; /* committer thread only */
    int wal_frames; /* frames in the WAL after the last commit (wal hook) */
    int page_size;
    sqlite3_stmt *w_begin, *w_commit, *w_rollback, *w_ins_event, *w_ins_job, *w_compact;

    pthread_mutex_t cmu; /* guards cdb and its statements */
    sqlite3 *cdb;
    sqlite3_stmt *c_put, *c_del, *c_scan, *c_evscan, *c_jobscan, *c_inlscan, *c_jobevent, *c_begin, *c_end;
    char *scanbuf; /* event_scan: NUL-terminated copy of a body */
    size_t scancap;

    /* checkpoints run on their own thread and connection, so a commit never
     * waits for one (the committer does one itself only past CKPT_HARD_BYTES) */
    sqlite3 *kdb;
    pthread_t checkpointer;
    int have_checkpointer;
    pthread_mutex_t kmu; /* guards ck_want, ck_stop */
    pthread_cond_t kcv;
    int ck_want, ck_stop;
    int ck_log, ck_done; /* frames in the WAL / copied, as of the last background pass */

    pthread_mutex_t qmu; /* guards everything below */
    pthread_cond_t qcv;     /* the committer waits for work */
    pthread_cond_t spacecv; /* appenders wait for room */
    qappend *head, **tail;
    size_t q_events, q_appends;
    size_t q_urgent; /* queued appends that are not lazy_append() */
    int closing;
    pthread_t committer;
    uint64_t n_events, n_jobs_pending, n_commits, n_appends;
    int64_t pending_max; /* the highest job id written by the committer (set before its COMMIT) */
    /* The next event rowid is at least this (sync_floor): rowids, and so job ids, are never reused
     * while the store is open, as the delivery engine may still hold a finished job's id. */
    _Atomic int64_t ev_floor;

    /* The syncer: committed batches wait here for their fsync (of the WAL,
     * through wal_fd), then go to the job sink and their done callbacks, while
     * the committer writes the next transaction. */
    sqlite3_stmt *w_fin, *w_dec, *w_evdel, *w_retry, *w_dead;
    /* an event's own job (JOB_INLINE): finish one / a run of consecutive events, retry one */
    sqlite3_stmt *w_fin_inl, *w_fin_inl_run, *w_retry_inl, *w_maxrow;
    int wal_fd; /* -1: SQLite syncs each commit itself (synchronous=FULL) */
    pthread_t syncer;
    int have_syncer;
    pthread_mutex_t smu; /* guards the fields below */
    pthread_cond_t scv, sspace;
    qappend *s_head, **s_tail;
    unsigned s_batches;
    int s_stop;
    int failed; /* an fsync failed: nothing more is acknowledged */
    int64_t handed_max; /* the highest job id handed to the sink */
    eb_store_jobs_fn sink;
    void *sink_ctx;
    eb_store_job_rec *recs; /* the syncer's scratch */
    size_t recs_cap;
} sq_store;


/* Event rowids come from ev_floor, raised at the start of every write
 * transaction past the table's last rowid (another process, the dead-letters
 * CLI, may have added rows; none can while the transaction holds the write
 * lock). st: MAX_ROW_SQL prepared on the transaction's connection, or NULL
 * to prepare it on db now. Returns an SQLite code. */
#define MAX_ROW_SQL "SELECT coalesce(max(rowid), 0) FROM events"
static int sync_floor(sq_store *s, sqlite3 *db, sqlite3_stmt *st)
{
    sqlite3_stmt *own = NULL;
    int rc = st ? SQLITE_OK : sqlite3_prepare_v2(db, MAX_ROW_SQL, -1, &own, NULL);
    if (!st)
        st = own;
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t row = sqlite3_column_int64(st, 0), f = atomic_load(&s->ev_floor);
        while (f <= row && !atomic_compare_exchange_weak(&s->ev_floor, &f, row + 1))
            ;
        rc = SQLITE_OK;
    }
    if (own)
        sqlite3_finalize(own);
    else if (st)
        sqlite3_reset(st);
    return rc;
}

static size_t slen(const char *s)
{
    return s ? strlen(s) : 0;
}

/* Copy n bytes of s (NULL = empty) and a NUL to *p; return where they went. */
static const char *put_str(char **p, const char *s, size_t n)
{
    char *d = *p;
    if (n)
        memcpy(d, s, n);
    d[n] = 0;
    *p = d + n + 1;
    return d;
}

static uint64_t mono_ms(void)
{
    return eb_mono_ns() / 1000000u;
}

/* ---- statements ------------------------------------------------------------------ */

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc != SQLITE_OK)
        eb_log(EB_LOG_ERROR, "store: prepare failed", "err=\"%s\"", sqlite3_errmsg(db));
    return rc;
}

/* Step a statement that returns no rows; reset it. SQLITE_DONE on success. */
static int step_reset(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    int rc2 = sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return rc;
    if (rc == SQLITE_ROW)
        return SQLITE_DONE;
    return rc2 != SQLITE_OK ? rc2 : rc;
}

static int exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        eb_log(EB_LOG_ERROR, "store: statement failed", "err=\"%s\"", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
    }
    return rc;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s, size_t n)
{
    return sqlite3_bind_text64(st, i, n ? s : "", n, SQLITE_STATIC, SQLITE_UTF8);
}

/* ---- control plane ------------------------------------------------------------------ */

static int io_error(sqlite3 *db, const char *msg, int rc)
{
    eb_log(EB_LOG_ERROR, msg, "rc=%d err=\"%s\"", rc, sqlite3_errmsg(db));
    return EB_STORE_ERR_IO;
}

static int sq_doc_put(eb_store *s_, const char *kind, const char *key, const char *doc, size_t len)
{
    sq_store *s = (sq_store *)s_;
    pthread_mutex_lock(&s->cmu);
    sqlite3_stmt *st = s->c_put;
    int rc = bind_text(st, 1, kind, slen(kind));
    if (rc == SQLITE_OK)
        rc = bind_text(st, 2, key, slen(key));
    if (rc == SQLITE_OK)
        rc = bind_text(st, 3, doc, doc ? len : 0);
    if (rc == SQLITE_OK)
        rc = step_reset(st);
    sqlite3_clear_bindings(st);
    int ret = rc == SQLITE_DONE ? EB_STORE_OK : io_error(s->cdb, "store: doc_put failed", rc);
    pthread_mutex_unlock(&s->cmu);
    return ret;
}

static int sq_doc_delete(eb_store *s_, const char *kind, const char *key)
{
    sq_store *s = (sq_store *)s_;
    pthread_mutex_lock(&s->cmu);
    sqlite3_stmt *st = s->c_del;
    int rc = bind_text(st, 1, kind, slen(kind));
    if (rc == SQLITE_OK)
        rc = bind_text(st, 2, key, slen(key));
    if (rc == SQLITE_OK)
        rc = step_reset(st);
    sqlite3_clear_bindings(st);
    int ret = rc == SQLITE_DONE ? EB_STORE_OK : io_error(s->cdb, "store: doc_delete failed", rc);
    pthread_mutex_unlock(&s->cmu);
    return ret;
}

static int sq_doc_scan(eb_store *s_, const char *kind, eb_store_doc_fn fn, void *ctx)
{
    sq_store *s = (sq_store *)s_;
    pthread_mutex_lock(&s->cmu);
    sqlite3_stmt *st = s->c_scan;
    int rc = bind_text(st, 1, kind, slen(kind));
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        const char *key = (const char *)sqlite3_column_text(st, 0);
        const char *doc = (const char *)sqlite3_column_text(st, 1);
        size_t n = (size_t)sqlite3_column_bytes(st, 1);
        if (!key || !doc) {
            rc = SQLITE_NOMEM;
            break;
        }
        if (fn(ctx, key, doc, n)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    int rc2 = sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE && rc2 != SQLITE_OK)
        rc = rc2;
    int ret = rc == SQLITE_DONE ? EB_STORE_OK
              : rc == SQLITE_NOMEM ? EB_STORE_ERR_NOMEM
                                   : io_error(s->cdb, "store: doc_scan failed", rc);
    pthread_mutex_unlock(&s->cmu);
    return ret;
}

static int sq_event_scan(eb_store *s_, eb_store_event_fn fn, void *ctx)
{
    sq_store *s = (sq_store *)s_;
    pthread_mutex_lock(&s->cmu);
    sqlite3_stmt *st = s->c_evscan;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        const void *body = sqlite3_column_blob(st, 1);
        size_t n = (size_t)sqlite3_column_bytes(st, 1);
        int64_t pending = sqlite3_column_int64(st, 2);
        if (!id) {
            rc = SQLITE_NOMEM;
            break;
        }
        if (n + 1 > s->scancap) { /* hand out a NUL-terminated body */
            size_t cap = s->scancap ? s->scancap : 4096;
            while (cap < n + 1)
                cap *= 2;
            char *nb = realloc(s->scanbuf, cap);
            if (!nb) {
                rc = SQLITE_NOMEM;
                break;
            }
            s->scanbuf = nb;
            s->scancap = cap;
        }
        if (n)
            memcpy(s->scanbuf, body, n);
        s->scanbuf[n] = 0;
        if (fn(ctx, id, s->scanbuf, n, pending < 0 ? 0 : pending > UINT32_MAX ? UINT32_MAX : (uint32_t)pending)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    int rc2 = sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc2 != SQLITE_OK)
        rc = rc2;
    int ret = rc == SQLITE_DONE ? EB_STORE_OK
              : rc == SQLITE_NOMEM ? EB_STORE_ERR_NOMEM
                                   : io_error(s->cdb, "store: event_scan failed", rc);
    pthread_mutex_unlock(&s->cmu);
    return ret;
}

static int sq_stats(eb_store *s_, eb_store_stats *out)
{
    sq_store *s = (sq_store *)s_;
    pthread_mutex_lock(&s->qmu);
    out->events = s->n_events;
    out->jobs_pending = s->n_jobs_pending;
    out->commits = s->n_commits;
    out->appends = s->n_appends;
    pthread_mutex_unlock(&s->qmu);
    return EB_STORE_OK;
}

/* ---- the delivery queue, dead letters ------------------------------------------------ */

static void sq_set_job_sink(eb_store *s_, eb_store_jobs_fn fn, void *ctx)
{
    sq_store *s = (sq_store *)s_;
    pthread_mutex_lock(&s->smu);
    s->sink = fn;
    s->sink_ctx = ctx;
    pthread_mutex_unlock(&s->smu);
}

/* One scanned job, its strings at offsets into the page's buffer. */
typedef struct {
    eb_store_job_rec r;
    size_t rule, target, event_id, body;
} scan_row;

/* Step one of job_scan's two sources: 1 = a row, 0 = done, < 0 = an SQLite error. */
static int scan_next(sqlite3_stmt *st, int *have)
{
    int rc = sqlite3_step(st);
    *have = rc == SQLITE_ROW;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int sq_job_scan(eb_store *s_, int64_t after, size_t limit, int64_t *last, int (*want)(void *ctx, int64_t job_id),
                       eb_store_jobs_fn fn, void *ctx)
{
    sq_store *s = (sq_store *)s_;
    eb_buf text = {0};
    scan_row *rows = NULL;
    size_t nrows = 0, examined = 0;
    int ret = EB_STORE_OK;
    *last = after;
    if (!limit)
        return 0;
    pthread_mutex_lock(&s->cmu);
    /* Two sources merged by id, in one read transaction: the jobs table, and
     * the jobs kept in their event's row (id > after <=> row > first_row). */
    sqlite3_stmt *st = s->c_jobscan, *il = s->inl_scan ? s->c_inlscan : NULL;
    int64_t first_row = after >= JOB_INLINE ? (int64_t)((uint64_t)(after - JOB_INLINE) >> JOB_IDX_BITS) : -1;
    sqlite3_int64 lim = (sqlite3_int64)(limit > INT32_MAX ? INT32_MAX : limit);
    int rc = step_reset(s->c_begin) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    int in_txn = rc == SQLITE_OK;
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 1, after);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, lim);
    if (rc == SQLITE_OK && il && (rc = sqlite3_bind_int64(il, 1, first_row)) == SQLITE_OK)
        rc = sqlite3_bind_int64(il, 2, lim);
    int have_j = 0, have_i = 0;
    if (rc == SQLITE_OK)
        rc = scan_next(st, &have_j);
    /* read after the snapshot began: see the header */
    pthread_mutex_lock(&s->smu);
    int64_t handed = s->handed_max, pending = s->pending_max;
    pthread_mutex_unlock(&s->smu);
    if (rc == SQLITE_OK && il)
        rc = scan_next(il, &have_i);
    size_t cap = limit > 4096 ? 4096 : limit;
    rows = rc == SQLITE_OK ? malloc(cap * sizeof *rows) : NULL;
    if (rc == SQLITE_OK && !rows)
        rc = SQLITE_NOMEM;
    while (rc == SQLITE_OK && (have_j || have_i) && examined < limit) {
        sqlite3_stmt *src = !have_i || (have_j && sqlite3_column_int64(st, 0) < sqlite3_column_int64(il, 0)) ? st : il;
        examined++;
        int64_t id = sqlite3_column_int64(src, 0);
        *last = id;
        if ((id > handed && id <= pending) || (want && !want(ctx, id))) {
            rc = scan_next(src, src == st ? &have_j : &have_i);
            continue; /* on its way to the sink, or not wanted */
        }
        if (nrows == cap) {
            scan_row *nr = realloc(rows, cap * 2 * sizeof *nr);
            if (!nr) {
                rc = SQLITE_NOMEM;
                break;
            }
            rows = nr;
            cap *= 2;
        }
        scan_row *w = &rows[nrows++];
        memset(w, 0, sizeof *w);
        w->r.job_id = id;
        w->r.event_row = sqlite3_column_int64(src, 1);
        w->r.attempts = (uint32_t)sqlite3_column_int64(src, 4);
        w->r.next_attempt_ms = sqlite3_column_int64(src, 5);
        sqlite3_stmt *ev = s->c_jobevent;
        if ((rc = sqlite3_bind_int64(ev, 1, w->r.event_row)) != SQLITE_OK)
            break;
        rc = sqlite3_step(ev);
        if (rc != SQLITE_ROW) { /* a job without its event: nothing to deliver */
            sqlite3_reset(ev);
            nrows--;
            rc = scan_next(src, src == st ? &have_j : &have_i);
            continue;
        }
        rc = SQLITE_OK;
        w->r.time_ms = sqlite3_column_int64(ev, 1);
        w->r.hops = (uint32_t)sqlite3_column_int64(ev, 2);
        sqlite3_stmt *from[4] = {src, src, ev, ev};
        const int cols[4] = {2, 3, 0, 3};
        size_t *offs[4] = {&w->rule, &w->target, &w->event_id, &w->body};
        for (int k = 0; k < 4; k++) {
            const void *v = sqlite3_column_blob(from[k], cols[k]);
            size_t n = (size_t)sqlite3_column_bytes(from[k], cols[k]);
            *offs[k] = text.n;
            if (eb_buf_append(&text, v ? v : "", n) || eb_buf_putc(&text, 0)) {
                rc = SQLITE_NOMEM;
                break;
            }
            if (k == 3)
                w->r.len = n;
        }
        sqlite3_reset(ev);
        if (rc == SQLITE_OK)
            rc = scan_next(src, src == st ? &have_j : &have_i);
    }
    int rc2 = sqlite3_reset(st);
    if (il && sqlite3_reset(il) != SQLITE_OK)
        rc2 = sqlite3_errcode(s->cdb);
    if (in_txn && step_reset(s->c_end) != SQLITE_DONE)
        rc2 = sqlite3_errcode(s->cdb);
    if (rc == SQLITE_OK && rc2 != SQLITE_OK)
        rc = rc2;
    if (rc != SQLITE_OK)
        ret = rc == SQLITE_NOMEM ? EB_STORE_ERR_NOMEM : io_error(s->cdb, "store: job_scan failed", rc);
    pthread_mutex_unlock(&s->cmu);
    if (ret == EB_STORE_OK) {
        eb_store_job_rec *recs = nrows ? malloc(nrows * sizeof *recs) : NULL;
        if (nrows && !recs) {
            ret = EB_STORE_ERR_NOMEM;
        } else {
            for (size_t i = 0; i < nrows; i++) {
                recs[i] = rows[i].r;
                recs[i].rule = text.p + rows[i].rule;
                recs[i].target_id = text.p + rows[i].target;
                recs[i].event_id = text.p + rows[i].event_id;
                recs[i].body = text.p + rows[i].body;
            }
            fn(ctx, recs, nrows);
            free(recs);
        }
    }
    free(rows);
    eb_buf_free(&text);
    return ret == EB_STORE_OK ? (int)(examined > INT32_MAX ? INT32_MAX : examined) : ret;
}

static int sq_dead_scan(eb_store *s_, const char *queue, eb_store_dead_fn fn, void *ctx)
{
    sq_store *s = (sq_store *)s_;
    pthread_mutex_lock(&s->cmu);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->cdb,
                                queue ? "SELECT id, queue, time_ms, attrs, rule, target_id, event_id, body FROM dlq"
                                        " WHERE queue = ?1 ORDER BY id"
                                      : "SELECT id, queue, time_ms, attrs, rule, target_id, event_id, body FROM dlq"
                                        " ORDER BY id",
                                -1, &st, NULL);
    if (rc == SQLITE_OK && queue)
        rc = bind_text(st, 1, queue, strlen(queue));
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        eb_store_dead d;
        d.id = sqlite3_column_int64(st, 0);
        d.queue = (const char *)sqlite3_column_text(st, 1);
        d.time_ms = sqlite3_column_int64(st, 2);
        d.attrs = (const char *)sqlite3_column_text(st, 3);
        d.rule = (const char *)sqlite3_column_text(st, 4);
        d.target_id = (const char *)sqlite3_column_text(st, 5);
        d.event_id = (const char *)sqlite3_column_text(st, 6);
        d.body = (const char *)sqlite3_column_text(st, 7);
        d.len = (size_t)sqlite3_column_bytes(st, 7);
        if (!d.queue || !d.attrs || !d.rule || !d.target_id || !d.event_id || !d.body) {
            rc = SQLITE_NOMEM;
            break;
        }
        if (fn(ctx, &d)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    int ret = rc == SQLITE_DONE ? EB_STORE_OK
              : rc == SQLITE_NOMEM ? EB_STORE_ERR_NOMEM
                                   : io_error(s->cdb, "store: dead_scan failed", rc);
    pthread_mutex_unlock(&s->cmu);
    return ret;
}

/* Run a few statements on cdb as one transaction (cmu held). */
static int c_exec_bound(sq_store *s, const char *sql, const int64_t *ints, int nints, sqlite3_stmt **keep)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->cdb, sql, -1, &st, NULL);
    for (int i = 0; rc == SQLITE_OK && i < nints; i++)
        rc = sqlite3_bind_int64(st, i + 1, ints[i]);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (keep && rc == SQLITE_ROW) {
        *keep = st;
        return rc;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

static int sq_dead_redrive(eb_store *s_, int64_t id, int64_t now_ms)
{
    sq_store *s = (sq_store *)s_;
    pthread_mutex_lock(&s->cmu);
    int ret = EB_STORE_OK;
    sqlite3_stmt *get = NULL, *ins = NULL;
    int rc = exec(s->cdb, "BEGIN IMMEDIATE");
    if (rc != SQLITE_OK) {
        ret = EB_STORE_ERR_IO;
        goto out;
    }
    int64_t args[1] = {id};
    rc = c_exec_bound(s, "SELECT rule, target_id, event_id, body FROM dlq WHERE id = ?1", args, 1, &get);
    if (rc != SQLITE_ROW) {
        ret = rc == SQLITE_DONE ? EB_STORE_ERR_NOTFOUND : EB_STORE_ERR_IO;
        goto rollback;
    }
    const char *rule = (const char *)sqlite3_column_text(get, 0);
    const char *target = (const char *)sqlite3_column_text(get, 1);
    const char *event_id = (const char *)sqlite3_column_text(get, 2);
    const void *body = sqlite3_column_blob(get, 3);
    int blen = sqlite3_column_bytes(get, 3);
    char acct[64] = "", region[64] = "", bus[300] = "";
    if (!rule || !target || !event_id ||
        sscanf(rule, "%63[^/]/%63[^/]/%299[^/]/", acct, region, bus) != 3) {
        ret = EB_STORE_ERR_IO;
        goto rollback;
    }
    int64_t row = 0;
    rc = sqlite3_prepare_v2(s->cdb,
                            "INSERT INTO events(rowid, id, account, region, bus, time_ms, pending, body, hops)"
                            " VALUES (?7,?1,?2,?3,?4,?5,1,?6,0)",
                            -1, &ins, NULL);
    if (rc == SQLITE_OK)
        rc = bind_text(ins, 1, event_id, strlen(event_id));
    if (rc == SQLITE_OK)
        rc = bind_text(ins, 2, acct, strlen(acct));
    if (rc == SQLITE_OK)
        rc = bind_text(ins, 3, region, strlen(region));
    if (rc == SQLITE_OK)
        rc = bind_text(ins, 4, bus, strlen(bus));
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(ins, 5, now_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob64(ins, 6, blen ? body : "", (sqlite3_uint64)blen, SQLITE_STATIC);
    if (rc == SQLITE_OK && (rc = sync_floor(s, s->cdb, NULL)) == SQLITE_OK)
        rc = sqlite3_bind_int64(ins, 7, row = atomic_fetch_add(&s->ev_floor, 1));
    if (rc == SQLITE_OK && sqlite3_step(ins) != SQLITE_DONE)
        rc = SQLITE_ERROR;
    sqlite3_finalize(ins);
    ins = NULL;
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(s->cdb,
                                "INSERT INTO jobs(id, event, rule, target_id, next_attempt_ms) VALUES (?5,?1,?2,?3,?4)",
                                -1, &ins, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(ins, 1, row);
        if (rc == SQLITE_OK)
            rc = bind_text(ins, 2, rule, strlen(rule));
        if (rc == SQLITE_OK)
            rc = bind_text(ins, 3, target, strlen(target));
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(ins, 4, now_ms);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(ins, 5, job_id_of(row, 0));
        if (rc == SQLITE_OK && sqlite3_step(ins) != SQLITE_DONE)
            rc = SQLITE_ERROR;
        sqlite3_finalize(ins);
    }
    sqlite3_finalize(get);
    get = NULL;
    if (rc == SQLITE_OK)
        rc = c_exec_bound(s, "DELETE FROM dlq WHERE id = ?1", args, 1, NULL);
    if (rc != SQLITE_DONE && rc != SQLITE_OK) {
        ret = io_error(s->cdb, "store: dead_redrive failed", rc);
        goto rollback;
    }
    if (exec(s->cdb, "COMMIT") != SQLITE_OK) {
        ret = EB_STORE_ERR_IO;
        goto rollback;
    }
    pthread_mutex_lock(&s->qmu);
    s->n_events++;
    s->n_jobs_pending++;
    pthread_mutex_unlock(&s->qmu);
    goto out;
rollback:
    sqlite3_finalize(get);
    exec(s->cdb, "ROLLBACK");
out:
    pthread_mutex_unlock(&s->cmu);
    return ret;
}

static int sq_dead_delete(eb_store *s_, int64_t id)
{
    sq_store *s = (sq_store *)s_;
    pthread_mutex_lock(&s->cmu);
    int64_t args[1] = {id};
    int rc = c_exec_bound(s, "DELETE FROM dlq WHERE id = ?1", args, 1, NULL);
    int ret = rc == SQLITE_DONE ? (sqlite3_changes(s->cdb) ? EB_STORE_OK : EB_STORE_ERR_NOTFOUND)
                                : io_error(s->cdb, "store: dead_delete failed", rc);
    pthread_mutex_unlock(&s->cmu);
    return ret;
}

/* ---- append ------------------------------------------------------------------------- */

static int enqueue(sq_store *s, qappend *a, size_t sev);

static int sq_append(eb_store *s_, const eb_store_event *ev, size_t nev, const eb_store_job *jobs, size_t njobs,
                     eb_store_done_fn done, void *ctx)
{
    sq_store *s = (sq_store *)s_;
    if (nev && !ev) {
        eb_log(EB_LOG_ERROR, "store: append without events", "nev=%zu", nev);
        return EB_STORE_ERR_IO;
    }
    /* Size the copy of what will be stored. */
    size_t sev = 0, sjobs = 0, bytes = 0;
    for (size_t i = 0; i < nev; i++) {
        const eb_store_event *e = &ev[i];
        if (e->first_job > njobs || e->njobs > njobs - e->first_job || (e->njobs && !jobs) || (e->len && !e->body) ||
            e->njobs >= MAX_EVENT_JOBS) {
            eb_log(EB_LOG_ERROR, "store: append with an invalid event", "first_job=%u njobs=%u jobs=%zu",
                   e->first_job, e->njobs, njobs);
            return EB_STORE_ERR_IO;
        }
        if (!e->njobs && !s->keep_all)
            continue;
        sev++;
        sjobs += e->njobs;
        bytes += slen(e->id) + slen(e->account) + slen(e->region) + slen(e->bus) + e->len + 5;
        for (uint32_t j = 0; j < e->njobs; j++)
            bytes += slen(jobs[e->first_job + j].rule) + slen(jobs[e->first_job + j].target_id) + 2;
    }
    size_t total = sizeof(qappend) + sev * sizeof(qev) + sjobs * sizeof(qjob) + bytes;
    qappend *a = malloc(total);
    if (!a)
        return EB_STORE_ERR_NOMEM;
    a->next = NULL;
    a->done = done;
    a->ctx = ctx;
    a->nev = sev;
    a->njobs = sjobs;
    a->ev = (qev *)(a + 1);
    a->jobs = (qjob *)(a->ev + sev);
    char *p = (char *)(a->jobs + sjobs);
    size_t k = 0, kj = 0;
    for (size_t i = 0; i < nev; i++) {
        const eb_store_event *e = &ev[i];
        if (!e->njobs && !s->keep_all)
            continue;
        qev *q = &a->ev[k++];
        q->id_n = slen(e->id);
        q->id = put_str(&p, e->id, q->id_n);
        q->account_n = slen(e->account);
        q->account = put_str(&p, e->account, q->account_n);
        q->region_n = slen(e->region);
        q->region = put_str(&p, e->region, q->region_n);
        q->bus_n = slen(e->bus);
        q->bus = put_str(&p, e->bus, q->bus_n);
        q->body_n = e->len;
        q->body = put_str(&p, e->body, e->len);
        q->time_ms = e->time_ms;
        q->hops = e->hops;
        q->row = 0;
        q->first_job = kj;
        q->njobs = e->njobs;
        for (uint32_t j = 0; j < e->njobs; j++) {
            const eb_store_job *src = &jobs[e->first_job + j];
            qjob *qj = &a->jobs[kj++];
            qj->rule_n = slen(src->rule);
            qj->rule = put_str(&p, src->rule, qj->rule_n);
            qj->target_n = slen(src->target_id);
            qj->target = put_str(&p, src->target_id, qj->target_n);
            qj->id = 0;
        }
    }
    a->nupd = 0;
    a->upd = NULL;
    a->status = 0;
    return enqueue(s, a, sev);
}

/* Link a request into the committer's queue, waiting for room (never on the
 * store's own threads, which are the ones that make room). Takes a. */
static int enqueue(sq_store *s, qappend *a, size_t sev)
{
    pthread_mutex_lock(&s->smu);
    int failed = s->failed;
    pthread_mutex_unlock(&s->smu);
    if (failed && sev) {
        free(a);
        return EB_STORE_ERR_IO;
    }
    size_t max_events = (size_t)s->opt.max_batch_events * QUEUE_BATCHES;
    pthread_mutex_lock(&s->qmu);
    /* Back-pressure: wait while the queue is full (never on the committer
     * thread, which is the one that empties it). */
    if (s->head && !s->closing && (s->q_events + sev > max_events || s->q_appends >= QUEUE_APPENDS) &&
        !pthread_equal(pthread_self(), s->committer) && !(s->have_syncer && pthread_equal(pthread_self(), s->syncer))) {
        while (s->head && !s->closing && (s->q_events + sev > max_events || s->q_appends >= QUEUE_APPENDS))
            pthread_cond_wait(&s->spacecv, &s->qmu);
    }
    if (s->closing) {
        pthread_mutex_unlock(&s->qmu);
        free(a);
        return EB_STORE_ERR_CLOSED;
    }
    int was_empty = !s->head;
    a->queued_ms = mono_ms();
    *s->tail = a;
    s->tail = &a->next;
    s->q_events += sev;
    s->q_appends++;
    if (!lazy_append(a))
        s->q_urgent++;
    if (was_empty || !lazy_append(a)) /* a lingering committer needs no wake-up per outcome */
        pthread_cond_signal(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    return EB_STORE_OK;
}

static int sq_job_update(eb_store *s_, const eb_job_update *u, size_t n, eb_store_done_fn done, void *ctx)
{
    sq_store *s = (sq_store *)s_;
    if (n && !u)
        return EB_STORE_ERR_IO;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        if (u[i].dlq)
            bytes += slen(u[i].dlq) + slen(u[i].dlq_attrs) + slen(u[i].rule) + slen(u[i].target_id) +
                     slen(u[i].event_id) + (u[i].body ? u[i].len : 0) + 6;
    qappend *a = malloc(sizeof(qappend) + n * sizeof(qupd) + bytes);
    if (!a)
        return EB_STORE_ERR_NOMEM;
    memset(a, 0, sizeof *a);
    a->done = done;
    a->ctx = ctx;
    a->nupd = n;
    a->upd = (qupd *)(a + 1);
    char *p = (char *)(a->upd + n);
    for (size_t i = 0; i < n; i++) {
        qupd *q = &a->upd[i];
        memset(q, 0, sizeof *q);
        q->job_id = u[i].job_id;
        q->event_row = u[i].event_row;
        q->outcome = u[i].outcome;
        q->attempts = u[i].attempts;
        q->next_attempt_ms = u[i].next_attempt_ms;
        q->time_ms = u[i].time_ms;
        if (u[i].dlq && u[i].outcome == EB_JOB_FINISHED) {
            q->dlq_n = slen(u[i].dlq);
            q->dlq = put_str(&p, u[i].dlq, q->dlq_n);
            q->attrs_n = slen(u[i].dlq_attrs);
            q->attrs = put_str(&p, u[i].dlq_attrs, q->attrs_n);
            q->rule_n = slen(u[i].rule);
            q->rule = put_str(&p, u[i].rule, q->rule_n);
            q->target_n = slen(u[i].target_id);
            q->target = put_str(&p, u[i].target_id, q->target_n);
            q->event_id_n = slen(u[i].event_id);
            q->event_id = put_str(&p, u[i].event_id, q->event_id_n);
            q->body_n = u[i].body ? u[i].len : 0;
            q->body = put_str(&p, u[i].body, q->body_n);
        }
    }
    return enqueue(s, a, 0);
}

/* ---- the committer -------------------------------------------------------------------- */

/* The event of a finished job: deleted at once when that was its last job
 * (without retention), else its pending count goes down. */
static int finish_event(sq_store *s, int64_t row, uint64_t *deleted)
{
    int rc, gone = 0;
    if (!s->keep_all) {
        if ((rc = sqlite3_bind_int64(s->w_evdel, 1, row)) != SQLITE_OK || (rc = step_reset(s->w_evdel)) != SQLITE_DONE)
            return rc;
        gone = sqlite3_changes(s->wdb) == 1;
        *deleted += (uint64_t)gone;
    }
    if (!gone && ((rc = sqlite3_bind_int64(s->w_dec, 1, row)) != SQLITE_OK || (rc = step_reset(s->w_dec)) != SQLITE_DONE))
        return rc;
    return SQLITE_OK;
}

/* Finished outcomes usually come in order: the own jobs of consecutive events.
 * Such a run is finished with one range statement instead of one per job. */
#define FINISH_RUN_MIN 4

static size_t finish_run_len(const qupd *u, size_t n)
{
    size_t k = 0;
    while (k < n && u[k].outcome == EB_JOB_FINISHED && !u[k].dlq && u[k].job_id == job_id_of(u[k].event_row, JOB_INLINE) &&
           (k == 0 || u[k].event_row == u[k - 1].event_row + 1))
        k++;
    return k;
}

/* Finish the own jobs of events [e0, e1] (those not finished before: a job
 * handed over twice): their events go, or stay as finished ones with retention. */
static int finish_inline(sq_store *s, sqlite3_stmt *st, int64_t e0, int64_t e1, uint64_t *finished, uint64_t *deleted)
{
    int rc;
    if ((rc = sqlite3_bind_int64(st, 1, e0)) != SQLITE_OK || (e1 >= 0 && (rc = sqlite3_bind_int64(st, 2, e1)) != SQLITE_OK) ||
        (rc = step_reset(st)) != SQLITE_DONE)
        return rc;
    uint64_t n = (uint64_t)sqlite3_changes(s->wdb);
    *finished += n;
    if (!s->keep_all)
        *deleted += n;
    return SQLITE_OK;
}

/* Write every event/job of the batch in one transaction. */
static int write_batch(sq_store *s, qappend *batch, size_t nev, uint64_t *finished, uint64_t *deleted)
{
    sqlite3 *db = s->wdb;
    const char *what = "begin";
    int64_t max_job = 0;
    *finished = *deleted = 0;
    if (!sqlite3_get_autocommit(db)) /* a failed ROLLBACK left a transaction open */
        step_reset(s->w_rollback);
    int rc = step_reset(s->w_begin);
    if (rc != SQLITE_DONE)
        goto fail;
    what = "max rowid";
    if (nev && (rc = sync_floor(s, db, s->w_maxrow)) != SQLITE_OK)
        goto fail;
    sqlite3_stmt *ie = s->w_ins_event, *ij = s->w_ins_job;
    for (qappend *a = batch; a; a = a->next) {
        for (size_t i = 0; i < a->nev; i++) {
            const qev *e = &a->ev[i];
            what = "insert event";
            /* an only job is kept in the event's row (without retention: with it, finished events
             * stay, and scans for such jobs would walk them) */
            const qjob *own = e->njobs == 1 && !s->keep_all ? &a->jobs[e->first_job] : NULL;
            int64_t row = atomic_fetch_add(&s->ev_floor, 1);
            if ((rc = sqlite3_bind_int64(ie, 9, row)) != SQLITE_OK ||
                (rc = own ? bind_text(ie, 10, own->rule, own->rule_n) : sqlite3_bind_null(ie, 10)) != SQLITE_OK ||
                (rc = own ? bind_text(ie, 11, own->target, own->target_n) : sqlite3_bind_null(ie, 11)) != SQLITE_OK ||
                (rc = bind_text(ie, 1, e->id, e->id_n)) != SQLITE_OK ||
                (rc = bind_text(ie, 2, e->account, e->account_n)) != SQLITE_OK ||
                (rc = bind_text(ie, 3, e->region, e->region_n)) != SQLITE_OK ||
                (rc = bind_text(ie, 4, e->bus, e->bus_n)) != SQLITE_OK ||
                (rc = sqlite3_bind_int64(ie, 5, e->time_ms)) != SQLITE_OK ||
                (rc = sqlite3_bind_int64(ie, 6, (sqlite3_int64)e->njobs)) != SQLITE_OK ||
                (rc = sqlite3_bind_blob64(ie, 7, e->body_n ? e->body : "", e->body_n, SQLITE_STATIC)) != SQLITE_OK ||
                (rc = sqlite3_bind_int64(ie, 8, (sqlite3_int64)e->hops)) != SQLITE_OK ||
                (rc = step_reset(ie)) != SQLITE_DONE)
                goto fail;
            a->ev[i].row = row;
            if (own) {
                a->jobs[e->first_job].id = max_job = job_id_of(row, JOB_INLINE);
                continue;
            }
            what = "insert job";
            for (size_t j = 0; j < e->njobs; j++) {
                qjob *q = &a->jobs[e->first_job + j];
                q->id = max_job = job_id_of(row, (int64_t)j);
                if ((rc = sqlite3_bind_int64(ij, 1, row)) != SQLITE_OK ||
                    (rc = bind_text(ij, 2, q->rule, q->rule_n)) != SQLITE_OK ||
                    (rc = bind_text(ij, 3, q->target, q->target_n)) != SQLITE_OK ||
                    (rc = sqlite3_bind_int64(ij, 4, e->time_ms)) != SQLITE_OK ||
                    (rc = sqlite3_bind_int64(ij, 5, q->id)) != SQLITE_OK || (rc = step_reset(ij)) != SQLITE_DONE)
                    goto fail;
            }
        }
        for (size_t i = 0; i < a->nupd; i++) {
            const qupd *u = &a->upd[i];
            what = "update job";
            int own = job_inline(u->job_id);
            if (u->outcome == EB_JOB_RETRY) {
                sqlite3_stmt *st = own ? s->w_retry_inl : s->w_retry;
                if ((rc = sqlite3_bind_int64(st, 1, own ? u->event_row : u->job_id)) != SQLITE_OK ||
                    (rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)u->attempts)) != SQLITE_OK ||
                    (rc = sqlite3_bind_int64(st, 3, u->next_attempt_ms)) != SQLITE_OK || (rc = step_reset(st)) != SQLITE_DONE)
                    goto fail;
                continue;
            }
            size_t run = finish_run_len(a->upd + i, a->nupd - i);
            if (run >= FINISH_RUN_MIN) {
                if ((rc = finish_inline(s, s->w_fin_inl_run, u->event_row, a->upd[i + run - 1].event_row, finished,
                                        deleted)) != SQLITE_OK)
                    goto fail;
                i += run - 1;
                continue;
            }
            uint64_t before = *finished;
            if (own) {
                if ((rc = finish_inline(s, s->w_fin_inl, u->event_row, -1, finished, deleted)) != SQLITE_OK)
                    goto fail;
            } else {
                if ((rc = sqlite3_bind_int64(s->w_fin, 1, u->job_id)) != SQLITE_OK ||
                    (rc = step_reset(s->w_fin)) != SQLITE_DONE)
                    goto fail;
                if (sqlite3_changes(db) == 1) {
                    (*finished)++;
                    if ((rc = finish_event(s, u->event_row, deleted)) != SQLITE_OK)
                        goto fail;
                }
            }
            if (*finished == before)
                continue; /* already finished (a job handed over twice) */
            if (u->dlq) {
                what = "insert dead letter";
                sqlite3_stmt *d = s->w_dead;
                if ((rc = bind_text(d, 1, u->dlq, u->dlq_n)) != SQLITE_OK ||
                    (rc = sqlite3_bind_int64(d, 2, u->time_ms)) != SQLITE_OK ||
                    (rc = bind_text(d, 3, u->attrs_n ? u->attrs : "{}", u->attrs_n ? u->attrs_n : 2)) != SQLITE_OK ||
                    (rc = bind_text(d, 4, u->rule, u->rule_n)) != SQLITE_OK ||
                    (rc = bind_text(d, 5, u->target, u->target_n)) != SQLITE_OK ||
                    (rc = bind_text(d, 6, u->event_id, u->event_id_n)) != SQLITE_OK ||
                    (rc = sqlite3_bind_blob64(d, 7, u->body_n ? u->body : "", u->body_n, SQLITE_STATIC)) != SQLITE_OK ||
                    (rc = step_reset(d)) != SQLITE_DONE)
                    goto fail;
            }
        }
    }
    if (max_job) { /* scans skip these until the syncer has handed them over */
        pthread_mutex_lock(&s->smu);
        if (max_job > s->pending_max)
            s->pending_max = max_job;
        pthread_mutex_unlock(&s->smu);
    }
    what = "commit";
    rc = step_reset(s->w_commit);
    if (rc != SQLITE_DONE)
        goto fail;
    return EB_STORE_OK;
fail:
    eb_log(EB_LOG_ERROR, "store: group commit failed", "step=\"%s\" rc=%d err=\"%s\" events=%zu", what, rc,
           sqlite3_errmsg(db), nev);
    sqlite3_reset(s->w_ins_event);
    sqlite3_reset(s->w_ins_job);
    sqlite3_reset(s->w_fin);
    sqlite3_reset(s->w_dec);
    sqlite3_reset(s->w_evdel);
    sqlite3_reset(s->w_fin_inl);
    sqlite3_reset(s->w_fin_inl_run);
    sqlite3_reset(s->w_retry_inl);
    sqlite3_reset(s->w_retry);
    sqlite3_reset(s->w_dead);
    *finished = *deleted = 0;
    if (!sqlite3_get_autocommit(db)) {
        int rr = step_reset(s->w_rollback);
        if (rr != SQLITE_DONE)
            eb_log(EB_LOG_ERROR, "store: rollback failed", "rc=%d err=\"%s\"", rr, sqlite3_errmsg(db));
    }
    return EB_STORE_ERR_IO;
}

/* Run the sink and the done callbacks of a finished chain and free it. */
static void finish_chain(sq_store *s, qappend *batch)
{
    /* The sink is called with smu held, so that eb_store_set_job_sink(NULL)
     * returns only once no hand-over is running. */
    int64_t handed = 0;
    pthread_mutex_lock(&s->smu);
    eb_store_jobs_fn sink = s->sink;
    void *sink_ctx = s->sink_ctx;
    for (qappend *a = batch; a; a = a->next) {
        if (a->status != EB_STORE_OK || !a->njobs)
            continue;
        for (size_t j = 0; j < a->njobs; j++)
            if (a->jobs[j].id > handed)
                handed = a->jobs[j].id;
        if (!sink)
            continue;
        if (a->njobs > s->recs_cap) {
            size_t cap = s->recs_cap ? s->recs_cap : 64;
            while (cap < a->njobs)
                cap *= 2;
            eb_store_job_rec *nr = realloc(s->recs, cap * sizeof *nr);
            if (!nr) { /* the engine's scan picks these jobs up later */
                eb_log(EB_LOG_WARN, "store: out of memory handing over jobs", "jobs=%zu", a->njobs);
                continue;
            }
            s->recs = nr;
            s->recs_cap = cap;
        }
        size_t k = 0;
        for (size_t i = 0; i < a->nev; i++) {
            const qev *e = &a->ev[i];
            for (size_t j = 0; j < e->njobs; j++) {
                const qjob *q = &a->jobs[e->first_job + j];
                eb_store_job_rec *r = &s->recs[k++];
                r->job_id = q->id;
                r->event_row = e->row;
                r->rule = q->rule; /* the queue copy's strings are NUL-terminated */
                r->target_id = q->target;
                r->event_id = e->id;
                r->body = e->body;
                r->len = e->body_n;
                r->time_ms = e->time_ms;
                r->attempts = 0;
                r->hops = e->hops;
                r->next_attempt_ms = 0;
            }
        }
        sink(sink_ctx, s->recs, k);
    }
    if (handed > s->handed_max)
        s->handed_max = handed;
    pthread_mutex_unlock(&s->smu);
    while (batch) {
        qappend *next = batch->next;
        if (batch->done)
            batch->done(batch->ctx, batch->status);
        free(batch);
        batch = next;
    }
}

static void commit_batch(sq_store *s, qappend *batch, size_t nappends)
{
    size_t nev = 0, njobs = 0, nupd = 0;
    for (qappend *a = batch; a; a = a->next) {
        nev += a->nev;
        njobs += a->njobs;
        nupd += a->nupd;
    }
    uint64_t finished = 0, deleted = 0;
    int status = nev || nupd ? write_batch(s, batch, nev, &finished, &deleted) : EB_STORE_OK;
    pthread_mutex_lock(&s->qmu);
    if (status == EB_STORE_OK) {
        if (nev)
            s->n_commits++;
        s->n_appends += nappends;
        s->n_events += nev;
        s->n_jobs_pending += njobs;
        s->n_jobs_pending -= finished <= s->n_jobs_pending ? finished : s->n_jobs_pending;
        s->n_events -= deleted <= s->n_events ? deleted : s->n_events;
    }
    pthread_mutex_unlock(&s->qmu);
    for (qappend *a = batch; a; a = a->next)
        a->status = status;
    if (!s->have_syncer) {
        finish_chain(s, batch);
        return;
    }
    /* Hand the batch to the syncer; wait while it is SYNC_QUEUE_MAX behind. */
    pthread_mutex_lock(&s->smu);
    while (s->s_batches >= SYNC_QUEUE_MAX && !s->s_stop)
        pthread_cond_wait(&s->sspace, &s->smu);
    *s->s_tail = batch;
    while (batch->next)
        batch = batch->next;
    s->s_tail = &batch->next;
    s->s_batches++;
    pthread_cond_signal(&s->scv);
    pthread_mutex_unlock(&s->smu);
}

/* The syncer: one fsync of the WAL covers every batch committed since the
 * last one; then the batches' jobs go to the sink and their callbacks run. */
static void *syncer_main(void *arg)
{
    prctl(PR_SET_NAME, "eb-syncer", 0, 0, 0); /* for top -H, perf */
    sq_store *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->smu);
        while (!s->s_head && !s->s_stop)
            pthread_cond_wait(&s->scv, &s->smu);
        qappend *chain = s->s_head;
        s->s_head = NULL;
        s->s_tail = &s->s_head;
        s->s_batches = 0;
        pthread_cond_broadcast(&s->sspace);
        int stop = s->s_stop;
        int failed = s->failed;
        pthread_mutex_unlock(&s->smu);
        if (!chain) {
            if (stop)
                return NULL;
            continue;
        }
        int need = 0;
        for (qappend *a = chain; a; a = a->next)
            if (a->status == EB_STORE_OK && a->nev)
                need = 1;
        if (need && !failed && s->wal_fd >= 0 && fdatasync(s->wal_fd) != 0) {
            eb_log(EB_LOG_ERROR, "store: fsync of the WAL failed; nothing more is acknowledged", "err=\"%s\"",
                   strerror(errno));
            pthread_mutex_lock(&s->smu);
            s->failed = failed = 1;
            pthread_mutex_unlock(&s->smu);
        }
        if (failed)
            for (qappend *a = chain; a; a = a->next)
                if (a->nev && a->status == EB_STORE_OK)
                    a->status = EB_STORE_ERR_IO;
        finish_chain(s, chain);
    }
}

/* Called by SQLite after each commit on wdb (committer thread). */
static int wal_hook(void *ctx, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    ((sq_store *)ctx)->wal_frames = frames;
    return SQLITE_OK;
}

static void checkpoint_on(sqlite3 *db, int *plog, int *pdone)
{
    int log = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        io_error(db, "store: checkpoint failed", rc);
    else if (done < log)
        eb_log(EB_LOG_DEBUG, "store: checkpoint incomplete", "wal_frames=%d copied=%d", log, done);
    if (plog) {
        *plog = log;
        *pdone = done;
    }
}

/* Checkpoints in two steps, so that commits do not wait for the bulk of the
 * copying: the checkpointer thread copies WAL frames into the database while
 * the committer goes on; the WAL can only start over once every frame is
 * copied with no commit in between, so when the background pass has left
 * little (FINAL_BYTES), the committer copies the rest itself (a short stall)
 * and the next transaction restarts the WAL. Past CKPT_HARD_BYTES, or without
 * the thread, the committer checkpoints everything itself. */
#define FINAL_BYTES ((int64_t)2 * 1024 * 1024)
#define RESTART_BYTES ((int64_t)128 * 1024 * 1024) /* let the WAL start over only past this: rare short stalls */
static void checkpoint(sq_store *s)
{
    int64_t frames = s->wal_frames;
    int ck_log, ck_done;
    pthread_mutex_lock(&s->kmu);
    ck_log = s->ck_log;
    ck_done = s->ck_done;
    pthread_mutex_unlock(&s->kmu);
    int caught_up = ck_log > 0 && ck_log <= frames && (frames - ck_done) * s->page_size <= FINAL_BYTES &&
                    frames * s->page_size >= RESTART_BYTES;
    if (!s->have_checkpointer || caught_up || frames * s->page_size >= CKPT_HARD_BYTES) {
        checkpoint_on(s->wdb, NULL, NULL);
        s->wal_frames = 0; /* the next commit's hook tells the truth again */
        pthread_mutex_lock(&s->kmu);
        s->ck_log = s->ck_done = 0;
        pthread_mutex_unlock(&s->kmu);
        return;
    }
    pthread_mutex_lock(&s->kmu);
    s->ck_want = 1;
    pthread_cond_signal(&s->kcv);
    pthread_mutex_unlock(&s->kmu);
}

static void *checkpointer_main(void *arg)
{
    prctl(PR_SET_NAME, "eb-checkpoint", 0, 0, 0); /* for top -H, perf */
    sq_store *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->kmu);
        while (!s->ck_want && !s->ck_stop)
            pthread_cond_wait(&s->kcv, &s->kmu);
        int stop = s->ck_stop;
        s->ck_want = 0;
        pthread_mutex_unlock(&s->kmu);
        if (stop)
            return NULL;
        int log = 0, done = 0;
        checkpoint_on(s->kdb, &log, &done);
        pthread_mutex_lock(&s->kmu);
        s->ck_log = log;
        s->ck_done = done;
        pthread_mutex_unlock(&s->kmu);
    }
}

/* Delete up to COMPACT_LIMIT finished events past retention; returns 1 when
 * the limit was reached (more may be left). */
static int compact(sq_store *s)
{
    int64_t cutoff = s->opt.retention_s > 0 ? eb_now_ms() - s->opt.retention_s * 1000 : INT64_MAX;
    sqlite3_stmt *st = s->w_compact;
    sqlite3_bind_int64(st, 1, cutoff);
    sqlite3_bind_int(st, 2, COMPACT_LIMIT);
    int rc = step_reset(st);
    if (rc != SQLITE_DONE) {
        io_error(s->wdb, "store: compaction failed", rc);
        return 0;
    }
    int n = sqlite3_changes(s->wdb);
    if (n > 0) {
        pthread_mutex_lock(&s->qmu);
        s->n_events -= (uint64_t)n <= s->n_events ? (uint64_t)n : s->n_events;
        pthread_mutex_unlock(&s->qmu);
    }
    return n >= COMPACT_LIMIT;
}

static void *committer_main(void *arg)
{
    prctl(PR_SET_NAME, "eb-committer", 0, 0, 0); /* for top -H, perf */
    sq_store *s = arg;
    uint64_t next_compact = mono_ms() + COMPACT_INTERVAL_MS;
    for (;;) {
        pthread_mutex_lock(&s->qmu);
        for (;;) {
            uint64_t now = mono_ms();
            int linger = s->head && !s->q_urgent && now < s->head->queued_ms + UPDATE_LINGER_MS &&
                         s->q_appends < QUEUE_APPENDS / 2;
            if ((s->head && !linger) || s->closing || now >= next_compact)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t wait = next_compact - now;
            if (linger && s->head->queued_ms + UPDATE_LINGER_MS - now < wait)
                wait = s->head->queued_ms + UPDATE_LINGER_MS - now;
            ts.tv_sec += (time_t)(wait / 1000);
            ts.tv_nsec += (long)(wait % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&s->qcv, &s->qmu, &ts);
        }
        /* Take appends up to max_batch_events stored events (at least one). */
        qappend *batch = s->head, *last = NULL;
        size_t nev = 0, napp = 0;
        for (qappend *a = s->head; a; a = a->next) {
            if (last && nev + a->nev > s->opt.max_batch_events)
                break;
            nev += a->nev;
            napp++;
            s->q_urgent -= !lazy_append(a);
            last = a;
        }
        if (last) {
            s->head = last->next;
            if (!s->head)
                s->tail = &s->head;
            last->next = NULL;
            s->q_events -= nev;
            s->q_appends -= napp;
            pthread_cond_broadcast(&s->spacecv);
        } else {
            batch = NULL;
        }
        int stop = !batch && s->closing;
        pthread_mutex_unlock(&s->qmu);

        if (batch)
            commit_batch(s, batch, napp);
        if (stop)
            break;
        uint64_t now = mono_ms();
        int tick = now >= next_compact;
        if (tick)
            next_compact = compact(s) ? now : now + COMPACT_INTERVAL_MS;
        if ((int64_t)s->wal_frames * s->page_size >= CKPT_BYTES || (tick && s->wal_frames > 0))
            checkpoint(s);
    }
    return NULL;
}

/* ---- open / close ---------------------------------------------------------------------- */

static void finalize_all(sq_store *s)
{
    sqlite3_stmt **all[] = {&s->w_begin, &s->w_commit, &s->w_rollback, &s->w_ins_event, &s->w_ins_job,
                            &s->w_compact, &s->c_put, &s->c_del, &s->c_scan, &s->c_evscan, &s->w_fin,
                            &s->w_dec, &s->w_evdel, &s->w_retry, &s->w_dead, &s->c_jobscan, &s->c_jobevent,
                            &s->w_fin_inl, &s->w_fin_inl_run, &s->w_retry_inl, &s->w_maxrow, &s->c_inlscan,
                            &s->c_begin, &s->c_end};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        sqlite3_finalize(*all[i]);
        *all[i] = NULL;
    }
}

static void close_dbs(sq_store *s)
{
    finalize_all(s);
    if (s->kdb && sqlite3_close(s->kdb) != SQLITE_OK)
        eb_log(EB_LOG_ERROR, "store: close failed", "err=\"%s\"", sqlite3_errmsg(s->kdb));
    s->kdb = NULL;
    /* The last connection to close checkpoints and removes the WAL. */
    if (s->cdb && sqlite3_close(s->cdb) != SQLITE_OK)
        eb_log(EB_LOG_ERROR, "store: close failed", "err=\"%s\"", sqlite3_errmsg(s->cdb));
    if (s->wdb && sqlite3_close(s->wdb) != SQLITE_OK)
        eb_log(EB_LOG_ERROR, "store: close failed", "err=\"%s\"", sqlite3_errmsg(s->wdb));
    s->cdb = s->wdb = NULL;
}

static void stop_checkpointer(sq_store *s)
{
    if (s->have_checkpointer) {
        pthread_mutex_lock(&s->kmu);
        s->ck_stop = 1;
        pthread_cond_signal(&s->kcv);
        pthread_mutex_unlock(&s->kmu);
        pthread_join(s->checkpointer, NULL);
        s->have_checkpointer = 0;
    }
}

static void stop_syncer(sq_store *s)
{
    if (s->have_syncer) {
        pthread_mutex_lock(&s->smu);
        s->s_stop = 1;
        pthread_cond_broadcast(&s->scv);
        pthread_cond_broadcast(&s->sspace);
        pthread_mutex_unlock(&s->smu);
        pthread_join(s->syncer, NULL); /* it finishes what is queued first */
        s->have_syncer = 0;
    }
}

static void sq_close(eb_store *s_)
{
    sq_store *s = (sq_store *)s_;
    pthread_mutex_lock(&s->qmu);
    s->closing = 1;
    pthread_cond_broadcast(&s->qcv);
    pthread_cond_broadcast(&s->spacecv);
    pthread_mutex_unlock(&s->qmu);
    pthread_join(s->committer, NULL); /* it commits what is queued first */
    stop_syncer(s);
    stop_checkpointer(s);
    close_dbs(s);
    if (s->wal_fd >= 0)
        close(s->wal_fd);
    free(s->recs);
    free(s->scanbuf);
    pthread_cond_destroy(&s->scv);
    pthread_cond_destroy(&s->sspace);
    pthread_mutex_destroy(&s->smu);
    pthread_cond_destroy(&s->spacecv);
    pthread_cond_destroy(&s->qcv);
    pthread_mutex_destroy(&s->qmu);
    pthread_mutex_destroy(&s->cmu);
    pthread_cond_destroy(&s->kcv);
    pthread_mutex_destroy(&s->kmu);
    free(s);
}

static const eb_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .doc_put = sq_doc_put,
    .doc_delete = sq_doc_delete,
    .doc_scan = sq_doc_scan,
    .append = sq_append,
    .event_scan = sq_event_scan,
    .stats = sq_stats,
    .set_job_sink = sq_set_job_sink,
    .job_scan = sq_job_scan,
    .job_update = sq_job_update,
    .dead_scan = sq_dead_scan,
    .dead_redrive = sq_dead_redrive,
    .dead_delete = sq_dead_delete,
};

/* mkdir -p, each created directory 0700 whatever the umask. */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
    size_t n = strlen(dir);
    char *p = malloc(n + 1);
    if (!p) {
        eb_set_err(err, errlen, "out of memory");
        return -1;
    }
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0)
            continue;
        char c = p[i];
        p[i] = 0;
        if (mkdir(p, 0700) == 0) {
            if (chmod(p, 0700) != 0) {
                eb_set_err(err, errlen, "chmod %s: %s", p, strerror(errno));
                free(p);
                return -1;
            }
        } else if (errno != EEXIST) {
            eb_set_err(err, errlen, "mkdir %s: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        p[i] = c;
    }
    free(p);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        eb_set_err(err, errlen, "%s: %s", dir, "not a directory");
        return -1;
    }
    if (st.st_mode & 077) /* an existing directory is left as it is */
        eb_log(EB_LOG_WARN, "store: data directory is accessible to others", "dir=\"%s\" mode=%o", dir,
               (unsigned)(st.st_mode & 07777));
    return 0;
}

/* Create the database file 0600 before SQLite does (it would use 0644 & ~umask). */
static int create_file(const char *path, const char *dir, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        eb_set_err(err, errlen, "open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fchmod(fd, 0600) != 0) {
        eb_set_err(err, errlen, "chmod %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* make the new entry durable */
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

static int chmod_companions(const char *path, char *err, size_t errlen)
{
    static const char *const sfx[] = {"", "-wal", "-shm"};
    size_t n = strlen(path);
    char *p = malloc(n + 5);
    if (!p)
        return -1;
    for (size_t i = 0; i < 3; i++) {
        memcpy(p, path, n);
        memcpy(p + n, sfx[i], strlen(sfx[i]) + 1);
        if (chmod(p, 0600) != 0 && errno != ENOENT) {
            eb_set_err(err, errlen, "chmod %s: %s", p, strerror(errno));
            free(p);
            return -1;
        }
    }
    free(p);
    return 0;
}

static int pragma(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && !strncmp(sql, "PRAGMA journal_mode", 19)) {
            const char *mode = (const char *)sqlite3_column_text(st, 0);
            if (!mode || strcmp(mode, "wal") != 0) {
                eb_set_err(err, errlen, "cannot use WAL journal mode (got %s)", mode ? mode : "?");
                sqlite3_finalize(st);
                return -1;
            }
        }
        if (rc == SQLITE_ROW || rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        eb_set_err(err, errlen, "%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : -1;
}

/* Settings of an open connection. */
static int open_conn(sqlite3 *db, const char *sync, char *err, size_t errlen)
{
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA synchronous=%s", sync);
    if (pragma(db, "PRAGMA journal_mode=WAL", err, errlen) || pragma(db, sql, err, errlen) ||
        pragma(db, "PRAGMA temp_store=MEMORY", err, errlen) ||
        pragma(db, "PRAGMA wal_autocheckpoint=0", err, errlen) ||
        pragma(db, "PRAGMA journal_size_limit=201326592", err, errlen))
        return -1;
    return 0;
}

static int count(sqlite3 *db, const char *sql, uint64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        sqlite3_int64 v = sqlite3_column_int64(st, 0);
        *out = v > 0 ? (uint64_t)v : 0;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

eb_store *eb_store_open_sqlite(const char *dir, const eb_store_options *opt, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!sqlite3_threadsafe()) {
        eb_set_err(err, errlen, "SQLite was built without thread support");
        return NULL;
    }
    if (!dir || !*dir) {
        eb_set_err(err, errlen, "no data directory");
        return NULL;
    }
    if (make_dirs(dir, err, errlen))
        return NULL;
    size_t dn = strlen(dir);
    char *path = malloc(dn + sizeof "/" DB_FILE);
    sq_store *s = calloc(1, sizeof *s);
    if (!path || !s) {
        free(path);
        free(s);
        eb_set_err(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(path, dir, dn);
    memcpy(path + dn, "/" DB_FILE, sizeof "/" DB_FILE);
    s->base.ops = &sqlite_ops;
    s->wal_fd = -1;
    if (opt)
        s->opt = *opt;
    if (!s->opt.max_batch_events)
        s->opt.max_batch_events = DEFAULT_MAX_BATCH;
    if (s->opt.retention_s < 0)
        s->opt.retention_s = 0;
    if (s->opt.retention_s > INT64_MAX / 4000) /* ~73 million years: forever */
        s->opt.retention_s = INT64_MAX / 4000;
    s->keep_all = s->opt.retention_s > 0;
    const char *wsync = s->opt.sync == EB_SYNC_FULL ? "FULL" : s->opt.sync == EB_SYNC_NORMAL ? "NORMAL" : "OFF";
    const char *csync = s->opt.sync == EB_SYNC_OFF ? "OFF" : "FULL"; /* documents: always durable */

    if (create_file(path, dir, err, errlen))
        goto fail;
    /* page_size must be set before the database has content */
    int rc = sqlite3_open_v2(path, &s->wdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        eb_set_err(err, errlen, "open %s: %s", path, s->wdb ? sqlite3_errmsg(s->wdb) : sqlite3_errstr(rc));
        goto fail;
    }
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA page_size=%d", PAGE_SIZE);
    uint64_t page_size = 0;
    if (pragma(s->wdb, sql, err, errlen) || open_conn(s->wdb, wsync, err, errlen) ||
        pragma(s->wdb, "PRAGMA cache_size=-16384", err, errlen) || /* a whole batch fits: no spilling */
        count(s->wdb, "PRAGMA page_size", &page_size) != SQLITE_OK)
        goto fail;
    s->page_size = page_size ? (int)page_size : PAGE_SIZE;
    uint64_t version = 0;
    if (count(s->wdb, "PRAGMA user_version", &version) != SQLITE_OK) {
        eb_set_err(err, errlen, "%s: %s", path, sqlite3_errmsg(s->wdb));
        goto fail;
    }
    if (version > SCHEMA_VERSION) {
        eb_set_err(err, errlen, "%s: %s", path, "made by a newer ebridge (schema version too high)");
        goto fail;
    }
    if (version < SCHEMA_VERSION) {
        if (exec(s->wdb, "BEGIN IMMEDIATE") != SQLITE_OK || (version == 1 && exec(s->wdb, MIGRATE_1_2) != SQLITE_OK) ||
            ((version == 1 || version == 2) && exec(s->wdb, MIGRATE_2_3) != SQLITE_OK) ||
            exec(s->wdb, SCHEMA) != SQLITE_OK || exec(s->wdb, "PRAGMA user_version=3") != SQLITE_OK ||
            exec(s->wdb, "COMMIT") != SQLITE_OK) {
            eb_set_err(err, errlen, "%s: cannot create the schema: %s", path, sqlite3_errmsg(s->wdb));
            goto fail;
        }
    }
    /* jobs_due(state, next_attempt_ms) of earlier databases: nothing reads it */
    if (exec(s->wdb, "DROP INDEX IF EXISTS jobs_due") != SQLITE_OK) {
        eb_set_err(err, errlen, "%s: %s", path, sqlite3_errmsg(s->wdb));
        goto fail;
    }
    if (chmod_companions(path, err, errlen))
        goto fail;
    rc = sqlite3_open_v2(path, &s->cdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        eb_set_err(err, errlen, "open %s: %s", path, s->cdb ? sqlite3_errmsg(s->cdb) : sqlite3_errstr(rc));
        goto fail;
    }
    if (open_conn(s->cdb, csync, err, errlen))
        goto fail;
    if (s->opt.sync == EB_SYNC_FULL) {
        /* Durable commits without waiting for them: the committer's
         * connection runs synchronous=NORMAL (WAL frames written, not synced)
         * and the syncer fsyncs the WAL through its own descriptor before a
         * batch is acknowledged, while the committer writes the next one.
         * SQLite still syncs the WAL header when it starts the WAL over and
         * around checkpoints, which keeps the file consistent. */
        size_t pn = strlen(path);
        char *wal = malloc(pn + 5);
        if (wal) {
            memcpy(wal, path, pn);
            memcpy(wal + pn, "-wal", 5);
            s->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
            free(wal);
        }
        if (s->wal_fd >= 0 && pragma(s->wdb, "PRAGMA synchronous=NORMAL", err, errlen)) {
            close(s->wal_fd);
            s->wal_fd = -1;
        }
        if (s->wal_fd < 0) {
            eb_log(EB_LOG_WARN, "store: cannot open the WAL; SQLite syncs each commit itself", NULL);
            if (err && errlen)
                err[0] = 0;
        }
    }
    sqlite3_wal_hook(s->wdb, wal_hook, s);
    if (prep(s->wdb, "BEGIN IMMEDIATE", &s->w_begin) || prep(s->wdb, "COMMIT", &s->w_commit) ||
        prep(s->wdb, "ROLLBACK", &s->w_rollback) ||
        prep(s->wdb,
             "INSERT INTO events(rowid, id, account, region, bus, time_ms, pending, body, hops, job_rule, job_target,"
             " job_next) VALUES (?9,?1,?2,?3,?4,?5,?6,?7,?8,?10,?11,?5)",
             &s->w_ins_event) ||
        prep(s->wdb, "DELETE FROM jobs WHERE id = ?1", &s->w_fin) ||
        prep(s->wdb, "UPDATE events SET pending = pending - 1 WHERE rowid = ?1", &s->w_dec) ||
        prep(s->wdb, "DELETE FROM events WHERE rowid = ?1 AND pending = 1", &s->w_evdel) ||
        prep(s->wdb,
             s->keep_all ? "UPDATE events SET job_rule = NULL, job_target = NULL, pending = 0"
                           " WHERE rowid = ?1 AND job_rule IS NOT NULL"
                         : "DELETE FROM events WHERE rowid = ?1 AND job_rule IS NOT NULL",
             &s->w_fin_inl) ||
        prep(s->wdb,
             s->keep_all ? "UPDATE events SET job_rule = NULL, job_target = NULL, pending = 0"
                           " WHERE rowid BETWEEN ?1 AND ?2 AND job_rule IS NOT NULL"
                         : "DELETE FROM events WHERE rowid BETWEEN ?1 AND ?2 AND job_rule IS NOT NULL",
             &s->w_fin_inl_run) ||
        prep(s->wdb, "UPDATE events SET job_attempts = ?2, job_next = ?3 WHERE rowid = ?1 AND job_rule IS NOT NULL",
             &s->w_retry_inl) ||
        prep(s->wdb, "UPDATE jobs SET attempts = ?2, next_attempt_ms = ?3 WHERE id = ?1", &s->w_retry) ||
        prep(s->wdb,
             "INSERT INTO dlq(queue, time_ms, attrs, rule, target_id, event_id, body) VALUES (?1,?2,?3,?4,?5,?6,?7)",
             &s->w_dead) ||
        prep(s->cdb,
             "SELECT id, event, rule, target_id, attempts, next_attempt_ms FROM jobs WHERE id > ?1 ORDER BY id LIMIT ?2",
             &s->c_jobscan) ||
        prep(s->cdb,
             "SELECT (rowid << " SQL_IDX_BITS ") | ((1 << " SQL_IDX_BITS ") - 1), rowid, job_rule, job_target,"
             " job_attempts, job_next FROM events"
             " WHERE rowid > ?1 AND job_rule IS NOT NULL ORDER BY rowid LIMIT ?2",
             &s->c_inlscan) ||
        prep(s->cdb, "BEGIN", &s->c_begin) || prep(s->wdb, MAX_ROW_SQL, &s->w_maxrow) || prep(s->cdb, "COMMIT", &s->c_end) ||
        prep(s->cdb, "SELECT id, time_ms, hops, body FROM events WHERE rowid = ?1", &s->c_jobevent) ||
        prep(s->wdb, "INSERT INTO jobs(id, event, rule, target_id, next_attempt_ms) VALUES (?5,?1,?2,?3,?4)",
             &s->w_ins_job) ||
        prep(s->wdb,
             "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE pending = 0 AND time_ms < ?1"
             " ORDER BY time_ms LIMIT ?2)",
             &s->w_compact) ||
        prep(s->cdb, "INSERT OR REPLACE INTO docs(kind, key, doc) VALUES (?1, ?2, ?3)", &s->c_put) ||
        prep(s->cdb, "DELETE FROM docs WHERE kind = ?1 AND key = ?2", &s->c_del) ||
        prep(s->cdb, "SELECT key, doc FROM docs WHERE kind = ?1 ORDER BY key", &s->c_scan) ||
        prep(s->cdb, "SELECT id, body, pending FROM events ORDER BY rowid", &s->c_evscan)) {
        eb_set_err(err, errlen, "%s: cannot prepare statements: %s", path, sqlite3_errmsg(s->wdb));
        goto fail;
    }
    uint64_t n_inl = 0, max_row = 0, max_job_row = 0;
    if (count(s->wdb, "SELECT count(*) FROM events", &s->n_events) != SQLITE_OK ||
        count(s->wdb, "SELECT count(*) FROM jobs", &s->n_jobs_pending) != SQLITE_OK ||
        count(s->wdb, "SELECT count(*) FROM events WHERE job_rule IS NOT NULL", &n_inl) != SQLITE_OK ||
        count(s->wdb, MAX_ROW_SQL, &max_row) != SQLITE_OK ||
        count(s->wdb, "SELECT coalesce(max(id), 0) >> " SQL_IDX_BITS " FROM jobs", &max_job_row) != SQLITE_OK) {
        eb_set_err(err, errlen, "%s: %s", path, sqlite3_errmsg(s->wdb));
        goto fail;
    }
    s->n_jobs_pending += n_inl;
    s->inl_scan = !s->keep_all || n_inl > 0;
    atomic_init(&s->ev_floor, (int64_t)(max_row > max_job_row ? max_row : max_job_row) + 1);

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->cmu, NULL);
    pthread_mutex_init(&s->qmu, NULL);
    pthread_cond_init(&s->qcv, &ca);
    pthread_cond_init(&s->spacecv, NULL);
    pthread_condattr_destroy(&ca);
    s->tail = &s->head;
    pthread_mutex_init(&s->kmu, NULL);
    pthread_cond_init(&s->kcv, NULL);
    pthread_mutex_init(&s->smu, NULL);
    pthread_cond_init(&s->scv, NULL);
    pthread_cond_init(&s->sspace, NULL);
    s->s_tail = &s->s_head;
    if (pthread_create(&s->syncer, NULL, syncer_main, s) == 0)
        s->have_syncer = 1;
    else if (s->wal_fd >= 0) { /* without the syncer nobody would fsync */
        pragma(s->wdb, "PRAGMA synchronous=FULL", err, errlen);
        close(s->wal_fd);
        s->wal_fd = -1;
    }
    if (sqlite3_open_v2(path, &s->kdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) == SQLITE_OK &&
        open_conn(s->kdb, wsync, err, errlen) == 0 &&
        pthread_create(&s->checkpointer, NULL, checkpointer_main, s) == 0) {
        s->have_checkpointer = 1;
    } else { /* not fatal: the committer checkpoints itself */
        eb_log(EB_LOG_WARN, "store: no checkpoint thread; commits will wait for checkpoints", NULL);
        if (err && errlen)
            err[0] = 0;
    }
    if (pthread_create(&s->committer, NULL, committer_main, s) != 0) {
        eb_set_err(err, errlen, "cannot start the committer thread");
        stop_syncer(s);
        pthread_cond_destroy(&s->scv);
        pthread_cond_destroy(&s->sspace);
        pthread_mutex_destroy(&s->smu);
        stop_checkpointer(s);
        pthread_cond_destroy(&s->kcv);
        pthread_mutex_destroy(&s->kmu);
        pthread_cond_destroy(&s->spacecv);
        pthread_cond_destroy(&s->qcv);
        pthread_mutex_destroy(&s->qmu);
        pthread_mutex_destroy(&s->cmu);
        goto fail;
    }
    eb_log(EB_LOG_INFO, "store: opened", "backend=sqlite path=\"%s\" events=%llu jobs=%llu", path,
           (unsigned long long)s->n_events, (unsigned long long)s->n_jobs_pending);
    free(path);
    return &s->base;
fail:
    eb_log(EB_LOG_ERROR, "store: open failed", "dir=\"%s\" err=\"%s\"", dir, err && errlen ? err : "");
    close_dbs(s);
    if (s->wal_fd >= 0)
        close(s->wal_fd);
    free(path);
    free(s);
    return NULL;
}
