/* The model: per (account, region) the event buses, their rules and targets,
 * tags and bus policies; one pattern machine per bus; PutEvents = validate ->
 * envelope -> match -> append to the store (group commit).
 *
 * Requests come in as jansson objects that already passed the shape check
 * (api/shape.c): types, required members, lengths and patterns hold. Answers
 * are new jansson objects (the caller owns them) or an error value.
 *
 * Every control-plane change is written to the store before it is applied in
 * memory; on open the model is rebuilt from the store. One reader/writer lock
 * guards the model: changes take it exclusively, PutEvents shares it. */
#ifndef EB_CORE_H
#define EB_CORE_H

#include "../store/store.h"
#include "../util/metrics.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct eb_core eb_core;

typedef struct {
    const char *partition;          /* "aws" */
    int strict_sources;             /* reject PutEvents sources starting with "aws." as AWS does */
    size_t max_entries_bytes;       /* PutEvents total entry size must be below this (262,144) */
    size_t max_pattern_chars;       /* EventPattern length limit (4,096, the model's) */
    unsigned max_buses;             /* per account/region, default bus included (100) */
    unsigned max_rules_per_bus;     /* (300) */
    unsigned max_targets_per_rule;  /* (5, hard in AWS) */
    unsigned max_event_depth;       /* Detail nesting limit (1,000) */
    unsigned max_connections;       /* per account/region (3,000) */
    unsigned max_api_destinations;  /* per account/region (3,000) */
    eb_metrics *metrics;            /* PutEvents matching is counted here (NULL: not counted); outlives the core */
} eb_core_config;

void eb_core_config_defaults(eb_core_config *c);

/* Who is calling: the account (from the access key) and region (from the
 * SigV4 scope). */
typedef struct {
    const char *account;
    const char *region;
} eb_caller;

/* An AWS error: __type, message and HTTP status. */
typedef struct {
    const char *type; /* static string, e.g. "ResourceNotFoundException" */
    unsigned http;    /* 400, 500, ... */
    char message[4096]; /* room for the longest names AWS allows (1,600 characters) */
} eb_core_error;

/* Open the model on a store (which it does not own): loads every bus and rule.
 * NULL with a message on failure. */
eb_core *eb_core_open(const eb_core_config *cfg, eb_store *store, char *err, size_t errlen);
void eb_core_close(eb_core *c);

/* Run one synchronous operation (everything but PutEvents). Returns the
 * response object (new reference) or NULL with *e filled. `op` is the name
 * after "AWSEvents.". Unknown op: NULL with UnknownOperationException. */
json_t *eb_core_call(eb_core *c, const eb_caller *who, const char *op, json_t *req, eb_core_error *e);

/* PutEvents: validates, matches and queues the accepted events for the next
 * group commit. `done` is called exactly once — possibly before this returns
 * (request-level errors, nothing to store) or later from the store's
 * committer thread — with the response as JSON text (valid during the call;
 * built before the commit, so the committer only hands it over) or NULL and
 * the error. */
typedef void (*eb_core_done_fn)(void *ctx, const char *resp, size_t len, const eb_core_error *e);
void eb_core_put_events(eb_core *c, const eb_caller *who, json_t *req, eb_core_done_fn done, void *ctx);

/* PutEvents from already-decoded entries (the API's fast path): strings are
 * UTF-8, not NUL-terminated necessarily; NULL = member absent. They need to
 * stay valid only until the call returns. Otherwise as eb_core_put_events. */
typedef struct {
    const char *s;
    size_t n;
} eb_str;

typedef struct {
    eb_str source, detail_type, detail, bus; /* bus: name or ARN; absent = default */
    const eb_str *resources;
    size_t nresources;
    int has_time;
    double time; /* epoch seconds */
} eb_put_entry;

void eb_core_put_entries(eb_core *c, const eb_caller *who, const eb_put_entry *entries, size_t n,
                         eb_core_done_fn done, void *ctx);

/* Is `op` an operation this server implements? */
int eb_core_has_op(const char *op);

/* ---- for the delivery engine ------------------------------------------------------------
 * A delivery job names its rule by key (ACCOUNT/REGION/BUS/RULE) and its
 * target by Id; every attempt looks the target up again, so changes apply to
 * retries and removed targets/rules/buses are noticed. */
typedef struct {
    char *account, *region, *bus, *rule, *rule_arn; /* owned (eb_target_info_free) */
    int enabled;      /* the rule's State */
    json_t *target;   /* the stored Target object: a reference, never modified */
} eb_target_info;

/* 0 with *out filled, -1 when the rule or target no longer exists. */
int eb_core_target_get(eb_core *c, const char *rule_key, const char *target_id, eb_target_info *out);
void eb_target_info_free(eb_target_info *t);
/* *dst = a copy of src (its own strings, another reference to the target); -1 when out of memory. */
int eb_target_info_copy(eb_target_info *dst, const eb_target_info *src);

/* Goes up with every control-plane call (before its lock is released): a
 * target looked up after reading generation g is current while the
 * generation is still g (the delivery engine caches lookups on it). */
uint64_t eb_core_generation(eb_core *c);

/* Bus-to-bus delivery (reference §4.5): the event is matched against the
 * enabled rules of the bus `bus_arn` and stored with their jobs, envelope
 * kept (a new id when the region changes); `hops` = forwards behind the
 * event so far. Returns EB_FWD_QUEUED (done(ctx, status) follows once
 * stored), or without calling done: EB_FWD_DELIVERED (no rule matched:
 * nothing to store), EB_FWD_NO_BUS, EB_FWD_LOOP (past max_hops), EB_FWD_ERROR. */
enum { EB_FWD_QUEUED = 0, EB_FWD_DELIVERED, EB_FWD_NO_BUS, EB_FWD_LOOP, EB_FWD_ERROR };
#define EB_MAX_HOPS 4
int eb_core_forward(eb_core *c, const char *bus_arn, const char *event, size_t len, uint32_t hops,
                    eb_store_done_fn done, void *ctx);

/* Scheduled rules (ScheduleExpression set), each under the model's read lock:
 * fn must not call back into the core. */
typedef struct {
    const char *rule_key, *expr, *rule_arn;
    int64_t created_ms;
    int enabled;
} eb_sched_rule;
typedef void (*eb_sched_fn)(void *ctx, const eb_sched_rule *r);
void eb_core_schedules(eb_core *c, eb_sched_fn fn, void *ctx);

/* Fire a scheduled rule for its time at_s (epoch seconds): AWS's "Scheduled
 * Event" (reference §8.4) with one job per target of the rule, stored like
 * PutEvents' events. As eb_core_forward: EB_FWD_QUEUED (done follows),
 * EB_FWD_DELIVERED (no targets), EB_FWD_NO_BUS (rule gone), EB_FWD_ERROR. */
int eb_core_fire_schedule(eb_core *c, const char *rule_key, int64_t at_s, eb_store_done_fn done, void *ctx);

/* Documents the delivery engine keeps (schedule state): thin pass-through to
 * the store, so deliver/ needs no other store handle for them. */
eb_store *eb_core_store(eb_core *c);

#endif
