/* The storage interface: everything ebridge keeps on disk goes through here.
 *
 * Three parts:
 *  - control plane: JSON documents by (kind, key), e.g. kind "bus" key
 *    "000000000000/us-east-1/orders"; written durably one at a time;
 *  - event log: accepted events (the envelope JSON) with their delivery jobs,
 *    appended in batches; concurrent appends share one transaction and one
 *    fsync (group commit) on the backend's committer thread;
 *  - delivery queue: the jobs (one per matched rule x target).
 *
 * SQL (or any backend detail) never leaves a backend. The first backend is
 * SQLite (store_sqlite.c); a NATS JetStream backend comes later behind the
 * same table of operations.
 *
 * Threads: every function may be called from any thread. Strings passed in
 * are copied before the call returns; callers keep ownership of theirs. */
#ifndef EB_STORE_H
#define EB_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct eb_store eb_store;

enum {
    EB_STORE_OK = 0,
    EB_STORE_ERR_IO = -1,       /* the backend could not read/commit (disk full, I/O error, ...) */
    EB_STORE_ERR_NOMEM = -2,
    EB_STORE_ERR_CLOSED = -3,   /* the store is shutting down */
    EB_STORE_ERR_NOTFOUND = -4, /* doc_get: no such document */
};

typedef enum {
    EB_SYNC_FULL = 0, /* fsync every commit: acknowledged events survive power loss (default) */
    EB_SYNC_NORMAL,   /* WAL without fsync per commit: survives a process crash, not power loss */
    EB_SYNC_OFF,      /* no syncing at all (tests, benchmarks) */
} eb_sync_mode;

typedef struct {
    eb_sync_mode sync;
    /* Finished events (all jobs done, or none) are deleted once older than
     * this many seconds; 0 = not kept at all (the default). */
    int64_t retention_s;
    /* Upper bound on events per group commit (0 = backend default). */
    unsigned max_batch_events;
} eb_store_options;

/* One accepted event. jobs[first_job .. first_job+njobs) belong to it. */
typedef struct {
    const char *id;      /* the event id (UUID), unique */
    const char *account; /* 12 digits */
    const char *region;
    const char *bus;      /* bus name */
    int64_t time_ms;      /* ingestion time, ms since the epoch */
    const char *body;     /* the envelope JSON as delivered without transformation */
    size_t len;
    uint32_t first_job, njobs;
    uint32_t hops;        /* bus-to-bus forwards behind this event (0 = put directly) */
} eb_store_event;

/* One delivery job: deliver the event to one target of one rule. */
typedef struct {
    const char *rule;      /* rule key: account/region/bus/rule */
    const char *target_id; /* the target's Id */
} eb_store_job;

/* Called once per append, from the store's thread, after the batch was
 * committed (status EB_STORE_OK; durable as the sync mode says) or failed
 * (status < 0: nothing of this append is stored). Must not block long. */
typedef void (*eb_store_done_fn)(void *ctx, int status);

/* Called per document by doc_scan; return non-zero to stop. */
typedef int (*eb_store_doc_fn)(void *ctx, const char *key, const char *doc, size_t len);

/* Called per stored event by event_scan; return non-zero to stop. */
typedef int (*eb_store_event_fn)(void *ctx, const char *id, const char *body, size_t len, uint32_t pending_jobs);

/* A delivery job as the delivery engine sees it: strings and body are valid
 * during the callback only. */
typedef struct {
    int64_t job_id;        /* unique among pending jobs */
    int64_t event_row;     /* the stored event's handle */
    const char *rule;      /* rule key: account/region/bus/rule */
    const char *target_id;
    const char *event_id;
    const char *body;      /* the event envelope */
    size_t len;
    int64_t time_ms;       /* ingestion time */
    uint32_t attempts;     /* attempts made so far */
    uint32_t hops;
    int64_t next_attempt_ms; /* not before (0 = now) */
} eb_store_job_rec;

/* Jobs handed to the delivery engine (fresh ones after their commit, or a
 * page of a scan). */
typedef void (*eb_store_jobs_fn)(void *ctx, const eb_store_job_rec *jobs, size_t n);

/* What became of one job; queued for the committer's next transaction (not
 * acknowledged: after a crash an unrecorded outcome means the job is
 * delivered again, which at-least-once allows). */
typedef enum {
    EB_JOB_FINISHED = 0, /* delivered, dropped or dead-lettered: the job goes */
    EB_JOB_RETRY,        /* failed, to be retried: attempts / next_attempt_ms recorded */
} eb_job_outcome;

typedef struct {
    int64_t job_id, event_row;
    eb_job_outcome outcome;
    uint32_t attempts;
    int64_t next_attempt_ms;
    /* EB_JOB_FINISHED into a dead-letter queue: dlq = queue key
     * "account/region/name" (NULL = none) in the same transaction. */
    const char *dlq;
    const char *dlq_attrs; /* JSON object text: the message attributes */
    const char *rule, *target_id, *event_id;
    const char *body;      /* the message (the event) */
    size_t len;
    int64_t time_ms;
} eb_job_update;

/* One dead letter. */
typedef struct {
    int64_t id;
    const char *queue;     /* "account/region/name" */
    int64_t time_ms;       /* when it was dead-lettered */
    const char *attrs;     /* JSON object text */
    const char *rule, *target_id, *event_id;
    const char *body;
    size_t len;
} eb_store_dead;

typedef int (*eb_store_dead_fn)(void *ctx, const eb_store_dead *d);

typedef struct {
    uint64_t events;       /* events stored */
    uint64_t jobs_pending; /* jobs not finished */
    uint64_t commits;      /* group commits done since open */
    uint64_t appends;      /* appends committed since open */
} eb_store_stats;

/* The operations a backend provides. */
typedef struct {
    const char *name;
    void (*close)(eb_store *s);
    int (*doc_put)(eb_store *s, const char *kind, const char *key, const char *doc, size_t len);
    int (*doc_delete)(eb_store *s, const char *kind, const char *key);
    int (*doc_scan)(eb_store *s, const char *kind, eb_store_doc_fn fn, void *ctx);
    int (*append)(eb_store *s, const eb_store_event *ev, size_t nev, const eb_store_job *jobs, size_t njobs,
                  eb_store_done_fn done, void *ctx);
    int (*event_scan)(eb_store *s, eb_store_event_fn fn, void *ctx);
    int (*stats)(eb_store *s, eb_store_stats *out);
    void (*set_job_sink)(eb_store *s, eb_store_jobs_fn fn, void *ctx);
    int (*job_scan)(eb_store *s, int64_t after, size_t limit, int64_t *last, int (*want)(void *ctx, int64_t job_id),
                    eb_store_jobs_fn fn, void *ctx);
    int (*job_update)(eb_store *s, const eb_job_update *u, size_t n, eb_store_done_fn done, void *ctx);
    int (*dead_scan)(eb_store *s, const char *queue, eb_store_dead_fn fn, void *ctx);
    int (*dead_redrive)(eb_store *s, int64_t id, int64_t now_ms);
    int (*dead_delete)(eb_store *s, int64_t id);
} eb_store_ops;

/* Every backend's handle starts with this. */
struct eb_store {
    const eb_store_ops *ops;
};

/* Open (creating if needed) the SQLite store in directory dir (created 0700;
 * files 0600). On failure returns NULL with a message in err. */
eb_store *eb_store_open_sqlite(const char *dir, const eb_store_options *opt, char *err, size_t errlen);

/* Flush pending appends (their done callbacks run), stop the committer and
 * close. NULL is ignored. */
void eb_store_close(eb_store *s);

/* Durably write (insert or replace) / delete one control-plane document.
 * Deleting a missing document is not an error. */
int eb_store_doc_put(eb_store *s, const char *kind, const char *key, const char *doc, size_t len);
int eb_store_doc_delete(eb_store *s, const char *kind, const char *key);
/* Every document of a kind, in ascending key order. */
int eb_store_doc_scan(eb_store *s, const char *kind, eb_store_doc_fn fn, void *ctx);

/* Queue events + jobs for the next group commit; `done` runs when it is
 * committed or failed. Returns EB_STORE_OK when queued (done will be called
 * exactly once), else an error (done is not called). nev may be 0. */
int eb_store_append(eb_store *s, const eb_store_event *ev, size_t nev, const eb_store_job *jobs, size_t njobs,
                    eb_store_done_fn done, void *ctx);
/* The same, waiting for the commit; returns its status. */
int eb_store_append_wait(eb_store *s, const eb_store_event *ev, size_t nev, const eb_store_job *jobs, size_t njobs);

int eb_store_event_scan(eb_store *s, eb_store_event_fn fn, void *ctx);
int eb_store_stats_get(eb_store *s, eb_store_stats *out);

/* ---- the delivery queue --------------------------------------------------------------
 * Set once, before events flow: fn receives the jobs of every append right
 * after its commit is durable (and before the append's done callback), on the
 * store's thread; it must copy what it keeps and not block long. */
void eb_store_set_job_sink(eb_store *s, eb_store_jobs_fn fn, void *ctx);
/* Pending jobs with job_id > after, ascending: examines at most limit of them
 * and hands those not on their way to the sink (committed, not yet handed
 * over) for which want(ctx, id) is non-zero (want NULL: all) to fn in one call
 * (n may be 0); only those are read in full. want runs with the store's lock
 * held: it must be quick and not call the store. Returns how many were
 * examined (fewer than limit: the end was reached) with *last = the highest
 * id examined, or an error < 0. The engine pages through them on start (jobs
 * pending or in flight at a crash) and to pick up jobs it did not keep. */
int eb_store_job_scan(eb_store *s, int64_t after, size_t limit, int64_t *last, int (*want)(void *ctx, int64_t job_id),
                      eb_store_jobs_fn fn, void *ctx);
/* Record outcomes (copied; asynchronous, see eb_job_update). `done`
 * (may be NULL) runs once they are committed or failed, on the store's
 * thread. Until then a scan may still return the job: the engine keeps
 * finished jobs marked until `done`. Returns EB_STORE_OK when queued. */
int eb_store_job_update(eb_store *s, const eb_job_update *u, size_t n, eb_store_done_fn done, void *ctx);

/* ---- dead letters --------------------------------------------------------------------
 * Dead letters of one queue (NULL = all), oldest first. */
int eb_store_dead_scan(eb_store *s, const char *queue, eb_store_dead_fn fn, void *ctx);
/* Re-drive one: its event becomes pending again for its (rule, target) with
 * fresh attempts, and the dead letter goes, in one transaction. A running
 * server picks the job up on its next scan. EB_STORE_ERR_NOTFOUND if absent. */
int eb_store_dead_redrive(eb_store *s, int64_t id, int64_t now_ms);
int eb_store_dead_delete(eb_store *s, int64_t id);

#endif
