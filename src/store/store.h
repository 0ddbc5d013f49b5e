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
} eb_store_event;

/* One delivery job: deliver the event to one target of one rule. */
typedef struct {
    const char *rule;      /* rule key: account/region/bus/rule */
    const char *target_id; /* the target's Id */
} eb_store_job;

/* Called once per append, from the committer thread, after the batch was
 * committed (status EB_STORE_OK; durable as the sync mode says) or failed
 * (status < 0: nothing of this append is stored). Must not block long. */
typedef void (*eb_store_done_fn)(void *ctx, int status);

/* Called per document by doc_scan; return non-zero to stop. */
typedef int (*eb_store_doc_fn)(void *ctx, const char *key, const char *doc, size_t len);

/* Called per stored event by event_scan; return non-zero to stop. */
typedef int (*eb_store_event_fn)(void *ctx, const char *id, const char *body, size_t len, uint32_t pending_jobs);

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

#endif
