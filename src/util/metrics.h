/* The metrics registry: EventBridge's CloudWatch metrics (reference §7.4) as
 * Prometheus counters and histograms, rendered for GET /metrics.
 *
 * A *series* is one metric (an eb_metric_id) with one label set: no labels,
 * {event_bus}, or {event_bus, rule}. Hot paths get a handle once, or look it
 * up per use, and increment it:
 *
 *     eb_counter *c = eb_metrics_counter(reg, EB_M_INVOCATIONS, bus, rule);
 *     eb_counter_add(c, 1);                       // one relaxed atomic add
 *     eb_histogram_observe(eb_metrics_histogram(reg, EB_M_PUT_EVENTS_LATENCY, NULL, NULL), ms);
 *
 * Cost. An increment is one relaxed atomic add (inline). A lookup of an
 * existing series takes no lock: a hash of (metric, bus, rule) probes an
 * open-addressing index whose slots are published with release stores and
 * never removed (a grown index replaces the old one, which is kept until
 * eb_metrics_free). Only creating a series takes the registry's mutex.
 *
 * Lifetime of handles. Series are never freed before eb_metrics_free, so a
 * handle stays valid (and safe to increment) for the registry's whole life,
 * whatever happens to the rule or bus it names. eb_metrics_forget_rule /
 * _forget_bus only *hide* series: a hidden series is not rendered and its
 * further increments are not shown. The next eb_metrics_counter/_histogram
 * for the same (metric, labels) shows it again, restarted from zero (a
 * re-created rule of the same name starts a fresh counter, which Prometheus
 * reads as a counter reset). Memory therefore grows with the number of
 * distinct (metric, labels) ever used, not with churn of the same names.
 *
 * NULL handles. eb_metrics_counter/_histogram return NULL when reg is NULL,
 * the id is out of range or of the other type, or memory runs out; the
 * increment functions accept NULL and do nothing, so callers never check.
 *
 * Units. Latency histograms are observed in milliseconds (AWS's unit) and
 * exported in seconds (Prometheus' base unit); byte histograms in bytes. See
 * docs/metrics.md for the name mapping and every metric's meaning.
 *
 * Thread safety: every function may be called from any thread, concurrently,
 * except eb_metrics_free (no other call may be running or follow). */
#ifndef EB_METRICS_H
#define EB_METRICS_H

#include "util.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { EB_MT_COUNTER, EB_MT_HISTOGRAM } eb_metric_type;

/* Label sets a metric is meant to be used with (documentation, and the
 * unlabelled series of metrics with EB_LS_NONE is rendered from the start,
 * as 0). The registry itself accepts any label set for any metric. */
enum { EB_LS_NONE = 1, EB_LS_BUS = 2, EB_LS_RULE = 4 };

/* Histogram bucket sets (upper bounds in the observing unit; +Inf implied):
 *   LATENCY  ms: 1 2 5 10 25 50 100 250 500 1000 2500 5000 10000 30000 60000
 *   REQUEST  ms: 0.1 0.25 0.5, then LATENCY's (PutEvents answers in < 1 ms without fsync)
 *   BYTES    B:  256 1024 4096 16384 65536 262144 1048576 4194304 */
typedef enum { EB_HB_NONE, EB_HB_LATENCY, EB_HB_REQUEST, EB_HB_BYTES } eb_hist_buckets;

/* X(id, exported name, type, buckets, label sets, AWS name, help) */
#define EB_METRICS_TABLE(X)                                                                                            \
    X(EB_M_INVOCATIONS, "ebridge_invocations_total", EB_MT_COUNTER, EB_HB_NONE, EB_LS_NONE | EB_LS_RULE,               \
      "Invocations", "Target invocations that reached a final outcome (success or permanent failure).")                \
    X(EB_M_FAILED_INVOCATIONS, "ebridge_failed_invocations_total", EB_MT_COUNTER, EB_HB_NONE, EB_LS_NONE | EB_LS_RULE, \
      "FailedInvocations", "Invocations that failed permanently (retries exhausted or not retryable).")                 \
    X(EB_M_DEAD_LETTER_INVOCATIONS, "ebridge_dead_letter_invocations_total", EB_MT_COUNTER, EB_HB_NONE,                \
      EB_LS_NONE | EB_LS_RULE, "DeadLetterInvocations",                                                                \
      "Times a target was not invoked in response to an event (e.g. loop suppression).")                               \
    X(EB_M_INVOCATION_ATTEMPTS, "ebridge_invocation_attempts_total", EB_MT_COUNTER, EB_HB_NONE,                        \
      EB_LS_NONE | EB_LS_BUS | EB_LS_RULE, "InvocationAttempts", "Attempts to invoke a target, retries included.")     \
    X(EB_M_SUCCESSFUL_INVOCATION_ATTEMPTS, "ebridge_successful_invocation_attempts_total", EB_MT_COUNTER, EB_HB_NONE,  \
      EB_LS_NONE | EB_LS_BUS | EB_LS_RULE, "SuccessfulInvocationAttempts", "Invocation attempts that succeeded.")      \
    X(EB_M_RETRY_INVOCATION_ATTEMPTS, "ebridge_retry_invocation_attempts_total", EB_MT_COUNTER, EB_HB_NONE,            \
      EB_LS_NONE | EB_LS_BUS | EB_LS_RULE, "RetryInvocationAttempts", "Invocation attempts that were retries.")        \
    X(EB_M_INVOCATIONS_CREATED, "ebridge_invocations_created_total", EB_MT_COUNTER, EB_HB_NONE, EB_LS_NONE,            \
      "InvocationsCreated", "Invocations created by PutEvents: one per (accepted event, matching rule, target).")       \
    X(EB_M_INVOCATIONS_SENT_TO_DLQ, "ebridge_invocations_sent_to_dlq_total", EB_MT_COUNTER, EB_HB_NONE,                \
      EB_LS_NONE | EB_LS_RULE, "InvocationsSentToDlq", "Invocations moved to the target's dead-letter queue.")          \
    X(EB_M_INVOCATIONS_FAILED_TO_BE_SENT_TO_DLQ, "ebridge_invocations_failed_to_be_sent_to_dlq_total", EB_MT_COUNTER,  \
      EB_HB_NONE, EB_LS_NONE | EB_LS_RULE, "InvocationsFailedToBeSentToDlq",                                           \
      "Invocations that could not be moved to the dead-letter queue.")                                                 \
    X(EB_M_MATCHED_EVENTS, "ebridge_matched_events_total", EB_MT_COUNTER, EB_HB_NONE, EB_LS_BUS | EB_LS_RULE,          \
      "MatchedEvents",                                                                                                 \
      "Events that matched: {event_bus} counts events matching at least one rule of the bus, {event_bus,rule} "       \
      "events matching that rule.")                                                                                    \
    X(EB_M_TRIGGERED_RULES, "ebridge_triggered_rules_total", EB_MT_COUNTER, EB_HB_NONE,                                \
      EB_LS_NONE | EB_LS_BUS | EB_LS_RULE, "TriggeredRules", "Rule executions: one per (event, matching rule).")        \
    X(EB_M_THROTTLED_RULES, "ebridge_throttled_rules_total", EB_MT_COUNTER, EB_HB_NONE,                                \
      EB_LS_NONE | EB_LS_BUS | EB_LS_RULE, "ThrottledRules", "Rule executions delayed by the invocation throttle.")     \
    X(EB_M_SCHEDULE_SKIPPED, "ebridge_schedule_skipped_total", EB_MT_COUNTER, EB_HB_NONE, EB_LS_BUS | EB_LS_RULE,      \
      NULL, "Scheduled times a rule missed while the server was down (it fired once, for the latest).")          \
    X(EB_M_INGESTION_TO_INVOCATION_START_LATENCY, "ebridge_ingestion_to_invocation_start_latency_seconds",             \
      EB_MT_HISTOGRAM, EB_HB_LATENCY, EB_LS_NONE | EB_LS_BUS | EB_LS_RULE, "IngestiontoInvocationStartLatency",        \
      "Time from ingestion to the start of the first invocation attempt.")                                            \
    X(EB_M_INGESTION_TO_INVOCATION_COMPLETE_LATENCY, "ebridge_ingestion_to_invocation_complete_latency_seconds",       \
      EB_MT_HISTOGRAM, EB_HB_LATENCY, EB_LS_NONE | EB_LS_BUS | EB_LS_RULE, "IngestiontoInvocationCompleteLatency",     \
      "Time from ingestion to the end of the first invocation attempt.")                                              \
    X(EB_M_INGESTION_TO_INVOCATION_SUCCESS_LATENCY, "ebridge_ingestion_to_invocation_success_latency_seconds",         \
      EB_MT_HISTOGRAM, EB_HB_LATENCY, EB_LS_NONE | EB_LS_BUS | EB_LS_RULE, "IngestionToInvocationSuccessLatency",      \
      "Time from ingestion to the successful delivery.")                                                               \
    X(EB_M_PUT_EVENTS_CALLS, "ebridge_put_events_approximate_call_total", EB_MT_COUNTER, EB_HB_NONE, EB_LS_NONE,       \
      "PutEventsApproximateCallCount", "PutEvents requests received.")                                                 \
    X(EB_M_PUT_EVENTS_SUCCESSES, "ebridge_put_events_approximate_success_total", EB_MT_COUNTER, EB_HB_NONE,            \
      EB_LS_NONE, "PutEventsApproximateSuccessCount",                                                                  \
      "PutEvents requests answered 200 (entries may still have failed one by one).")                                  \
    X(EB_M_PUT_EVENTS_FAILURES, "ebridge_put_events_approximate_failed_total", EB_MT_COUNTER, EB_HB_NONE, EB_LS_NONE,  \
      "PutEventsApproximateFailedCount", "PutEvents requests answered with an error other than throttling.")           \
    X(EB_M_PUT_EVENTS_THROTTLED, "ebridge_put_events_approximate_throttled_total", EB_MT_COUNTER, EB_HB_NONE,          \
      EB_LS_NONE, "PutEventsApproximateThrottledCount", "PutEvents requests answered ThrottlingException.")            \
    X(EB_M_PUT_EVENTS_ENTRIES, "ebridge_put_events_entries_total", EB_MT_COUNTER, EB_HB_NONE, EB_LS_NONE,              \
      "PutEventsEntriesCount", "Entries of the PutEvents requests answered 200.")                                      \
    X(EB_M_PUT_EVENTS_FAILED_ENTRIES, "ebridge_put_events_failed_entries_total", EB_MT_COUNTER, EB_HB_NONE,            \
      EB_LS_NONE, "PutEventsFailedEntriesCount", "Entries answered with an ErrorCode (the answers' FailedEntryCount).") \
    X(EB_M_PUT_EVENTS_LATENCY, "ebridge_put_events_latency_seconds", EB_MT_HISTOGRAM, EB_HB_REQUEST, EB_LS_NONE,       \
      "PutEventsLatency", "Time from receiving a whole PutEvents request to sending its answer.")                       \
    X(EB_M_PUT_EVENTS_REQUEST_SIZE, "ebridge_put_events_request_size_bytes", EB_MT_HISTOGRAM, EB_HB_BYTES, EB_LS_NONE, \
      "PutEventsRequestSize", "PutEvents request body sizes.")

typedef enum {
#define EB_METRIC_ENUM_(id, name, type, buckets, labels, aws, help) id,
    EB_METRICS_TABLE(EB_METRIC_ENUM_)
#undef EB_METRIC_ENUM_
        EB_M_COUNT
} eb_metric_id;

/* The table row of a metric (static strings). NULL for an id out of range. */
typedef struct {
    const char *name; /* exported name, e.g. "ebridge_invocations_total" */
    eb_metric_type type;
    eb_hist_buckets buckets;
    unsigned label_sets; /* EB_LS_* */
    const char *aws_name; /* e.g. "Invocations" */
    const char *help;
} eb_metric_def;

const eb_metric_def *eb_metric_info(eb_metric_id id);

typedef struct eb_metrics eb_metrics;
typedef struct eb_histogram eb_histogram;

/* A counter handle (see "Lifetime of handles" above). */
typedef struct {
    _Atomic uint64_t v;
} eb_counter;

/* A new, empty registry (NULL when out of memory). Free with eb_metrics_free. */
eb_metrics *eb_metrics_new(void);
/* Frees the registry and every series: all handles become invalid. Accepts NULL. */
void eb_metrics_free(eb_metrics *reg);

/* The series of a counter metric with labels {event_bus=bus, rule=rule}: a
 * label is absent when its argument is NULL (normally rule != NULL only with
 * bus != NULL). Created at 0 when new; shown again from 0 when it had been
 * forgotten. The strings are copied. NULL: see "NULL handles" above. */
eb_counter *eb_metrics_counter(eb_metrics *reg, eb_metric_id id, const char *bus, const char *rule);
/* The same for a histogram metric. */
eb_histogram *eb_metrics_histogram(eb_metrics *reg, eb_metric_id id, const char *bus, const char *rule);

static inline void eb_counter_add(eb_counter *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

static inline uint64_t eb_counter_value(eb_counter *c)
{
    return c ? atomic_load_explicit(&c->v, memory_order_relaxed) : 0;
}

/* Record one observation in the metric's unit (ms or bytes). Negative and
 * NaN values count as 0. The sum keeps 1/1000 of the unit (µs for ms). */
void eb_histogram_observe(eb_histogram *h, double v);

/* Hide every series labelled {event_bus=bus, rule=rule} / every series
 * labelled event_bus=bus (with or without a rule). See "Lifetime of handles"
 * above: handles stay valid. reg NULL: nothing happens. */
void eb_metrics_forget_rule(eb_metrics *reg, const char *bus, const char *rule);
void eb_metrics_forget_bus(eb_metrics *reg, const char *bus);

/* Append the Prometheus text exposition (format 0.0.4) of every visible
 * series to out: families sorted by name, each with # HELP and # TYPE (also
 * when it has no series yet), then its series sorted by labels (none first,
 * then by event_bus, then by rule, bytewise). Values are read without
 * stopping writers, so series are each consistent in themselves (a
 * histogram's _count equals its +Inf bucket) but not with each other.
 * Returns 0, or -1 when out of memory (out may hold part of the text). */
int eb_metrics_render(eb_metrics *reg, eb_buf *out);

/* The Content-Type of that text. */
#define EB_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
