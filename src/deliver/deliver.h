/* The delivery engine: takes delivery jobs from the store (handed over right
 * after their commit, or found by scanning the queue: on start, after a
 * crash, when memory was full, after a re-drive), delivers each to its
 * target with the target's input mode, retries with exponential backoff and
 * jitter within the target's RetryPolicy, dead-letters or drops what cannot
 * be delivered, and records each outcome in the store. Also fires scheduled
 * rules.
 *
 * Threads: one dispatcher thread owns every job in memory; HTTP runs on the
 * libcurl multi thread (httpc), programs on the process reactor (procs), log
 * groups on a writer thread; their completions come back to the dispatcher.
 * Per-target lanes (keyed by the target: function, API destination, bus,
 * log group) bound the attempts in flight, so a slow or dead target only
 * fills its own lane.
 *
 * Time: `time_scale` > 1 makes backoff delays, event ages and schedules run
 * that many times faster (tests); validation elsewhere keeps AWS's ranges.
 * That virtual clock starts at the first start on a data dir (its anchor is
 * kept in the store) and keeps running, scaled, while the server is down. */
#ifndef EB_DELIVER_H
#define EB_DELIVER_H

#include "../core/core.h"
#include "../store/store.h"
#include "../util/metrics.h"

#include <stddef.h>
#include <stdint.h>

typedef struct eb_deliver eb_deliver;

/* A function target `arn:aws:lambda:R:A:function:NAME`: a local program (run
 * with /bin/sh -c, the payload on stdin; exit 0 = success) or an http(s) URL
 * (POST). */
typedef struct {
    const char *name;
    const char *program; /* exactly one of program / url */
    const char *url;
} eb_function;

typedef struct {
    eb_core *core;
    eb_store *store;
    const char *data_dir;           /* log groups go to DATA_DIR/logs/ */
    eb_metrics *metrics;            /* may be NULL */
    double time_scale;              /* 1 = real time */
    const eb_function *functions;   /* copied */
    size_t nfunctions;
    unsigned function_concurrency;  /* programs running at once per function (8) */
    long function_timeout_ms;       /* per program run / function URL request (30,000) */
    unsigned lane_concurrency;      /* HTTP attempts in flight per target (64) */
    size_t max_jobs;                /* jobs kept in memory; the rest wait in the store (200,000) */
} eb_deliver_config;

void eb_deliver_config_defaults(eb_deliver_config *c);

/* Starts the threads and takes over the store's job sink. NULL + message on
 * failure. */
eb_deliver *eb_deliver_start(const eb_deliver_config *cfg, char *err, size_t errlen);

/* Stops everything; attempts in flight are abandoned (their jobs stay in the
 * store and are delivered after the next start). Call before closing the
 * store. NULL is ignored. */
void eb_deliver_stop(eb_deliver *d);

/* Jobs in memory / in flight, for tests and logs. */
typedef struct {
    uint64_t in_memory, in_flight, waiting_retry;
    uint64_t delivered, retried, dead_lettered, dropped;
} eb_deliver_stats;
void eb_deliver_stats_get(eb_deliver *d, eb_deliver_stats *out);

/* The backoff before retry number `attempt` (1 = the first retry), in ms,
 * before jitter: 1 s doubling, capped at 10 minutes. */
int64_t eb_deliver_backoff_ms(uint32_t attempt);

#endif
