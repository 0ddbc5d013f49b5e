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
 *   jobs(id AUTOINCREMENT, event, rule, target_id, state, attempts,
 *        next_attempt_ms)      one delivery job; `event` is events.rowid;
 *                              state 0 = ready (JOB_READY; the delivery code
 *                              defines the others); next_attempt_ms starts at
 *                              the event's time. Index jobs_due(state,
 *                              next_attempt_ms) for claiming due jobs.
 *   Contract for the delivery code: a job that is finished (delivered or
 *   dead-lettered) is deleted and its event's `pending` decremented in the same
 *   transaction. So an event with pending = 0 has no job rows left, and
 *   compaction deletes events only (no jobs(event) index is needed).
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
 * wait (except the committer thread itself, from a done callback).
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
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DB_FILE "ebridge.db"
#define SCHEMA_VERSION 1
#ifndef EB_SQLITE_MAX_BATCH
#define EB_SQLITE_MAX_BATCH 5000u
#endif
#define DEFAULT_MAX_BATCH EB_SQLITE_MAX_BATCH
#define QUEUE_BATCHES 4u       /* queued stored events beyond this many batches make appenders wait */
#define QUEUE_APPENDS 65536u   /* ... and so do this many queued appends */
#define COMPACT_LIMIT 5000     /* events deleted per compaction at most */
#define COMPACT_INTERVAL_MS 1000
#define BUSY_TIMEOUT_MS 10000
#define JOB_READY 0
#ifndef EB_SQLITE_PAGE_SIZE /* -D overrides are for benchmarking */
#define EB_SQLITE_PAGE_SIZE 16384
#endif
#define CKPT_HARD_BYTES ((int64_t)512 * 1024 * 1024) /* the committer checkpoints itself */
#ifndef EB_SQLITE_CKPT_BYTES /* WAL size that triggers a checkpoint */
#define EB_SQLITE_CKPT_BYTES (16 * 1024 * 1024)
#endif
#define PAGE_SIZE EB_SQLITE_PAGE_SIZE
#define CKPT_BYTES EB_SQLITE_CKPT_BYTES

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS docs("
    " kind TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,"
    " PRIMARY KEY (kind, key)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS events("
    " rowid INTEGER PRIMARY KEY, id TEXT NOT NULL, account TEXT NOT NULL, region TEXT NOT NULL,"
    " bus TEXT NOT NULL, time_ms INTEGER NOT NULL, pending INTEGER NOT NULL, body BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS events_done ON events(time_ms) WHERE pending = 0;"
    "CREATE TABLE IF NOT EXISTS jobs("
    " id INTEGER PRIMARY KEY, event INTEGER NOT NULL, rule TEXT NOT NULL,"
    " target_id TEXT NOT NULL, state INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS jobs_due ON jobs(state, next_attempt_ms);";

/* ---- the queue ---------------------------------------------------------------- */

/* One event to store, pointing into its append's allocation. */
typedef struct {
    const char *id, *account, *region, *bus, *body;
    size_t id_n, account_n, region_n, bus_n, body_n;
    int64_t time_ms;
    size_t first_job, njobs; /* into the append's job array */
} qev;

typedef struct {
    const char *rule, *target;
    size_t rule_n, target_n;
} qjob;

typedef struct qappend {
    struct qappend *next;
    eb_store_done_fn done;
    void *ctx;
    size_t nev, njobs; /* stored ones */
    qev *ev;
    qjob *jobs;
} qappend;

typedef struct {
    eb_store base;
    eb_store_options opt;
    int keep_all; /* store events without jobs too (retention_s > 0) */

    sqlite3 *wdb; /* committer thread only */
    int wal_frames; /* frames in the WAL after the last commit (wal hook) */
    int page_size;
    sqlite3_stmt *w_begin, *w_commit, *w_rollback, *w_ins_event, *w_ins_job, *w_compact;

    pthread_mutex_t cmu; /* guards cdb and its statements */
    sqlite3 *cdb;
    sqlite3_stmt *c_put, *c_del, *c_scan, *c_evscan;
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
    int closing;
    pthread_t committer;
    uint64_t n_events, n_jobs_pending, n_commits, n_appends;
} sq_store;

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static size_t slen(const char *s)
{
    return s ? strlen(s) : 0;
}

/* Copy n bytes of s (NULL = empty) to *p and return where they went. */
static const char *put_str(char **p, const char *s, size_t n)
{
    char *d = *p;
    if (n)
        memcpy(d, s, n);
    *p = d + n;
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

/* ---- append ------------------------------------------------------------------------- */

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
        if (e->first_job > njobs || e->njobs > njobs - e->first_job || (e->njobs && !jobs) || (e->len && !e->body)) {
            eb_log(EB_LOG_ERROR, "store: append with an invalid event", "first_job=%u njobs=%u jobs=%zu",
                   e->first_job, e->njobs, njobs);
            return EB_STORE_ERR_IO;
        }
        if (!e->njobs && !s->keep_all)
            continue;
        sev++;
        sjobs += e->njobs;
        bytes += slen(e->id) + slen(e->account) + slen(e->region) + slen(e->bus) + e->len;
        for (uint32_t j = 0; j < e->njobs; j++)
            bytes += slen(jobs[e->first_job + j].rule) + slen(jobs[e->first_job + j].target_id);
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
        q->first_job = kj;
        q->njobs = e->njobs;
        for (uint32_t j = 0; j < e->njobs; j++) {
            const eb_store_job *src = &jobs[e->first_job + j];
            qjob *qj = &a->jobs[kj++];
            qj->rule_n = slen(src->rule);
            qj->rule = put_str(&p, src->rule, qj->rule_n);
            qj->target_n = slen(src->target_id);
            qj->target = put_str(&p, src->target_id, qj->target_n);
        }
    }

    size_t max_events = (size_t)s->opt.max_batch_events * QUEUE_BATCHES;
    pthread_mutex_lock(&s->qmu);
    /* Back-pressure: wait while the queue is full (never on the committer
     * thread, which is the one that empties it). */
    if (s->head && !s->closing && (s->q_events + sev > max_events || s->q_appends >= QUEUE_APPENDS) &&
        !pthread_equal(pthread_self(), s->committer)) {
        while (s->head && !s->closing && (s->q_events + sev > max_events || s->q_appends >= QUEUE_APPENDS))
            pthread_cond_wait(&s->spacecv, &s->qmu);
    }
    if (s->closing) {
        pthread_mutex_unlock(&s->qmu);
        free(a);
        return EB_STORE_ERR_CLOSED;
    }
    *s->tail = a;
    s->tail = &a->next;
    s->q_events += sev;
    s->q_appends++;
    pthread_cond_signal(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    return EB_STORE_OK;
}

/* ---- the committer -------------------------------------------------------------------- */

/* Write every event/job of the batch in one transaction. */
static int write_batch(sq_store *s, qappend *batch, size_t nev)
{
    sqlite3 *db = s->wdb;
    const char *what = "begin";
    if (!sqlite3_get_autocommit(db)) /* a failed ROLLBACK left a transaction open */
        step_reset(s->w_rollback);
    int rc = step_reset(s->w_begin);
    if (rc != SQLITE_DONE)
        goto fail;
    sqlite3_stmt *ie = s->w_ins_event, *ij = s->w_ins_job;
    for (qappend *a = batch; a; a = a->next) {
        for (size_t i = 0; i < a->nev; i++) {
            const qev *e = &a->ev[i];
            what = "insert event";
            if ((rc = bind_text(ie, 1, e->id, e->id_n)) != SQLITE_OK ||
                (rc = bind_text(ie, 2, e->account, e->account_n)) != SQLITE_OK ||
                (rc = bind_text(ie, 3, e->region, e->region_n)) != SQLITE_OK ||
                (rc = bind_text(ie, 4, e->bus, e->bus_n)) != SQLITE_OK ||
                (rc = sqlite3_bind_int64(ie, 5, e->time_ms)) != SQLITE_OK ||
                (rc = sqlite3_bind_int64(ie, 6, (sqlite3_int64)e->njobs)) != SQLITE_OK ||
                (rc = sqlite3_bind_blob64(ie, 7, e->body_n ? e->body : "", e->body_n, SQLITE_STATIC)) != SQLITE_OK ||
                (rc = step_reset(ie)) != SQLITE_DONE)
                goto fail;
            sqlite3_int64 rowid = sqlite3_last_insert_rowid(db);
            what = "insert job";
            for (size_t j = 0; j < e->njobs; j++) {
                const qjob *q = &a->jobs[e->first_job + j];
                if ((rc = sqlite3_bind_int64(ij, 1, rowid)) != SQLITE_OK ||
                    (rc = bind_text(ij, 2, q->rule, q->rule_n)) != SQLITE_OK ||
                    (rc = bind_text(ij, 3, q->target, q->target_n)) != SQLITE_OK ||
                    (rc = sqlite3_bind_int64(ij, 4, e->time_ms)) != SQLITE_OK || (rc = step_reset(ij)) != SQLITE_DONE)
                    goto fail;
            }
        }
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
    if (!sqlite3_get_autocommit(db)) {
        int rr = step_reset(s->w_rollback);
        if (rr != SQLITE_DONE)
            eb_log(EB_LOG_ERROR, "store: rollback failed", "rc=%d err=\"%s\"", rr, sqlite3_errmsg(db));
    }
    return EB_STORE_ERR_IO;
}

static void commit_batch(sq_store *s, qappend *batch, size_t nappends)
{
    size_t nev = 0, njobs = 0;
    for (qappend *a = batch; a; a = a->next) {
        nev += a->nev;
        njobs += a->njobs;
    }
    int status = nev ? write_batch(s, batch, nev) : EB_STORE_OK;
    pthread_mutex_lock(&s->qmu);
    if (status == EB_STORE_OK) {
        if (nev)
            s->n_commits++;
        s->n_appends += nappends;
        s->n_events += nev;
        s->n_jobs_pending += njobs;
    }
    pthread_mutex_unlock(&s->qmu);
    while (batch) {
        qappend *next = batch->next;
        if (batch->done)
            batch->done(batch->ctx, status);
        free(batch);
        batch = next;
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
    sq_store *s = arg;
    uint64_t next_compact = mono_ms() + COMPACT_INTERVAL_MS;
    for (;;) {
        pthread_mutex_lock(&s->qmu);
        while (!s->head && !s->closing) {
            uint64_t now = mono_ms();
            if (now >= next_compact)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t wait = next_compact - now;
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
                            &s->w_compact, &s->c_put, &s->c_del, &s->c_scan, &s->c_evscan};
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

static void sq_close(eb_store *s_)
{
    sq_store *s = (sq_store *)s_;
    pthread_mutex_lock(&s->qmu);
    s->closing = 1;
    pthread_cond_broadcast(&s->qcv);
    pthread_cond_broadcast(&s->spacecv);
    pthread_mutex_unlock(&s->qmu);
    pthread_join(s->committer, NULL); /* it commits what is queued first */
    stop_checkpointer(s);
    close_dbs(s);
    free(s->scanbuf);
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
};

/* mkdir -p, each created directory 0700 whatever the umask. */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
    size_t n = strlen(dir);
    char *p = malloc(n + 1);
    if (!p) {
        set_err(err, errlen, "out of memory");
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
                set_err(err, errlen, "chmod %s: %s", p, strerror(errno));
                free(p);
                return -1;
            }
        } else if (errno != EEXIST) {
            set_err(err, errlen, "mkdir %s: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        p[i] = c;
    }
    free(p);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "%s: %s", dir, "not a directory");
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
        set_err(err, errlen, "open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fchmod(fd, 0600) != 0) {
        set_err(err, errlen, "chmod %s: %s", path, strerror(errno));
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
            set_err(err, errlen, "chmod %s: %s", p, strerror(errno));
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
                set_err(err, errlen, "cannot use WAL journal mode (got %s)", mode ? mode : "?");
                sqlite3_finalize(st);
                return -1;
            }
        }
        if (rc == SQLITE_ROW || rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        set_err(err, errlen, "%s: %s", sql, sqlite3_errmsg(db));
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
        set_err(err, errlen, "SQLite was built without thread support");
        return NULL;
    }
    if (!dir || !*dir) {
        set_err(err, errlen, "no data directory");
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
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(path, dir, dn);
    memcpy(path + dn, "/" DB_FILE, sizeof "/" DB_FILE);
    s->base.ops = &sqlite_ops;
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
        set_err(err, errlen, "open %s: %s", path, s->wdb ? sqlite3_errmsg(s->wdb) : sqlite3_errstr(rc));
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
        set_err(err, errlen, "%s: %s", path, sqlite3_errmsg(s->wdb));
        goto fail;
    }
    if (version > SCHEMA_VERSION) {
        set_err(err, errlen, "%s: %s", path, "made by a newer ebridge (schema version too high)");
        goto fail;
    }
    if (version < SCHEMA_VERSION) {
        if (exec(s->wdb, "BEGIN IMMEDIATE") != SQLITE_OK || exec(s->wdb, SCHEMA) != SQLITE_OK ||
            exec(s->wdb, "PRAGMA user_version=1") != SQLITE_OK || exec(s->wdb, "COMMIT") != SQLITE_OK) {
            set_err(err, errlen, "%s: cannot create the schema: %s", path, sqlite3_errmsg(s->wdb));
            goto fail;
        }
    }
    if (chmod_companions(path, err, errlen))
        goto fail;
    rc = sqlite3_open_v2(path, &s->cdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        set_err(err, errlen, "open %s: %s", path, s->cdb ? sqlite3_errmsg(s->cdb) : sqlite3_errstr(rc));
        goto fail;
    }
    if (open_conn(s->cdb, csync, err, errlen))
        goto fail;
    sqlite3_wal_hook(s->wdb, wal_hook, s);
    if (prep(s->wdb, "BEGIN IMMEDIATE", &s->w_begin) || prep(s->wdb, "COMMIT", &s->w_commit) ||
        prep(s->wdb, "ROLLBACK", &s->w_rollback) ||
        prep(s->wdb,
             "INSERT INTO events(id, account, region, bus, time_ms, pending, body) VALUES (?1,?2,?3,?4,?5,?6,?7)",
             &s->w_ins_event) ||
        prep(s->wdb, "INSERT INTO jobs(event, rule, target_id, next_attempt_ms) VALUES (?1,?2,?3,?4)",
             &s->w_ins_job) ||
        prep(s->wdb,
             "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE pending = 0 AND time_ms < ?1"
             " ORDER BY time_ms LIMIT ?2)",
             &s->w_compact) ||
        prep(s->cdb, "INSERT OR REPLACE INTO docs(kind, key, doc) VALUES (?1, ?2, ?3)", &s->c_put) ||
        prep(s->cdb, "DELETE FROM docs WHERE kind = ?1 AND key = ?2", &s->c_del) ||
        prep(s->cdb, "SELECT key, doc FROM docs WHERE kind = ?1 ORDER BY key", &s->c_scan) ||
        prep(s->cdb, "SELECT id, body, pending FROM events ORDER BY rowid", &s->c_evscan)) {
        set_err(err, errlen, "%s: cannot prepare statements: %s", path, sqlite3_errmsg(s->wdb));
        goto fail;
    }
    if (count(s->wdb, "SELECT count(*) FROM events", &s->n_events) != SQLITE_OK ||
        count(s->wdb, "SELECT count(*) FROM jobs", &s->n_jobs_pending) != SQLITE_OK) {
        set_err(err, errlen, "%s: %s", path, sqlite3_errmsg(s->wdb));
        goto fail;
    }

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
        set_err(err, errlen, "cannot start the committer thread");
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
    free(path);
    free(s);
    return NULL;
}
