/* Unit tests for src/util/metrics.c: exact sums under concurrent increments
 * and concurrent series creation (8 threads), histogram buckets/sum/count,
 * the whole rendered text for one registry state (golden), label escaping,
 * forget_rule/forget_bus (handles stay valid, hidden series come back at 0),
 * NULL tolerance. Also prints the cost of a lookup + increment. */
#define _GNU_SOURCE
#include "test.h"
#include "util/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *render(eb_metrics *m)
{
    eb_buf b = {0};
    CHECK(eb_metrics_render(m, &b) == 0);
    return b.p ? b.p : strdup("");
}

/* 1 when `line` (without its \n) is a whole line of text */
static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return 1;
    return 0;
}

/* ---- concurrency ---- */
#define NTHREADS 8
#define ITERS 200000
#define NRULES 50
#define NOWN 300 /* series each thread creates for itself: the index grows while others read it */

typedef struct {
    eb_metrics *m;
    int t;
    eb_counter *held;
    eb_histogram *hist;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    char rule[32], own[32];
    for (int i = 0; i < ITERS; i++) {
        eb_counter_add(a->held, 1);
        snprintf(rule, sizeof rule, "rule-%d", i % NRULES);
        eb_counter_add(eb_metrics_counter(a->m, EB_M_TRIGGERED_RULES, "bus", rule), 1);
        if (i % 97 == 0)
            eb_histogram_observe(a->hist, (double)(i % 7)); /* integral ms: exact sum */
        if (i < NOWN) {
            snprintf(own, sizeof own, "t%d-%d", a->t, i);
            eb_counter_add(eb_metrics_counter(a->m, EB_M_INVOCATIONS, "own", own), (uint64_t)i);
        }
    }
    return NULL;
}

static void test_concurrent_increments(void)
{
    eb_metrics *m = eb_metrics_new();
    CHECK(m != NULL);
    eb_counter *held = eb_metrics_counter(m, EB_M_PUT_EVENTS_ENTRIES, NULL, NULL);
    eb_histogram *hist = eb_metrics_histogram(m, EB_M_PUT_EVENTS_LATENCY, NULL, NULL);
    pthread_t th[NTHREADS];
    worker_arg args[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        args[t] = (worker_arg){m, t, held, hist};
        CHECK(pthread_create(&th[t], NULL, worker, &args[t]) == 0);
    }
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);

    CHECK(eb_counter_value(held) == (uint64_t)NTHREADS * ITERS);
    CHECK(eb_metrics_counter(m, EB_M_PUT_EVENTS_ENTRIES, NULL, NULL) == held); /* one series, one handle */
    char rule[32], own[32];
    uint64_t total = 0;
    for (int r = 0; r < NRULES; r++) {
        snprintf(rule, sizeof rule, "rule-%d", r);
        uint64_t v = eb_counter_value(eb_metrics_counter(m, EB_M_TRIGGERED_RULES, "bus", rule));
        CHECK(v == (uint64_t)NTHREADS * ITERS / NRULES);
        total += v;
    }
    CHECK(total == (uint64_t)NTHREADS * ITERS);
    int own_ok = 1;
    for (int t = 0; t < NTHREADS; t++)
        for (int i = 0; i < NOWN; i++) {
            snprintf(own, sizeof own, "t%d-%d", t, i);
            own_ok &= eb_counter_value(eb_metrics_counter(m, EB_M_INVOCATIONS, "own", own)) == (uint64_t)i;
        }
    CHECK(own_ok);

    /* histogram: per thread, i = 0, 97, 194, ... < ITERS observe i % 7 ms */
    uint64_t n = 0, sum_ms = 0, le1 = 0;
    for (int i = 0; i < ITERS; i += 97) {
        n++;
        sum_ms += (uint64_t)(i % 7);
        le1 += i % 7 <= 1;
    }
    char *text = render(m);
    char want[256];
    snprintf(want, sizeof want, "ebridge_put_events_latency_seconds_count %llu",
             (unsigned long long)(n * NTHREADS));
    CHECK(has_line(text, want));
    snprintf(want, sizeof want, "ebridge_put_events_latency_seconds_bucket{le=\"+Inf\"} %llu",
             (unsigned long long)(n * NTHREADS));
    CHECK(has_line(text, want));
    snprintf(want, sizeof want, "ebridge_put_events_latency_seconds_bucket{le=\"0.001\"} %llu",
             (unsigned long long)(le1 * NTHREADS));
    CHECK(has_line(text, want));
    /* sum in seconds: sum_ms * 8 / 1000, exact decimal */
    uint64_t s = sum_ms * NTHREADS;
    if (s % 1000)
        snprintf(want, sizeof want, "ebridge_put_events_latency_seconds_sum %llu.%03llu", (unsigned long long)(s / 1000),
                 (unsigned long long)(s % 1000));
    else
        snprintf(want, sizeof want, "ebridge_put_events_latency_seconds_sum %llu", (unsigned long long)(s / 1000));
    while (want[strlen(want) - 1] == '0' && strchr(want, '.'))
        want[strlen(want) - 1] = 0;
    CHECK(has_line(text, want));
    if (!has_line(text, want))
        fprintf(stderr, "wanted %s\n", want);
    CHECK(has_line(text, "ebridge_triggered_rules_total{event_bus=\"bus\",rule=\"rule-49\"} 32000"));
    free(text);
    eb_metrics_free(m);
}

/* ---- histograms ---- */
static void test_histogram_buckets(void)
{
    eb_metrics *m = eb_metrics_new();
    eb_histogram *h = eb_metrics_histogram(m, EB_M_INGESTION_TO_INVOCATION_SUCCESS_LATENCY, "b", NULL);
    CHECK(h != NULL);
    /* upper bounds are inclusive: 1 ms goes to le=0.001, 1.001 ms to le=0.002 */
    const double obs[] = {0, 1, 1.001, 2, 2.5, 60000, 60000.5, -3, 1e30};
    for (size_t i = 0; i < sizeof obs / sizeof *obs; i++)
        eb_histogram_observe(h, obs[i]);
    eb_histogram_observe(h, 0.0 / 0.0); /* NaN counts as 0 */
    char *t = render(m);
#define L(le, n) "ebridge_ingestion_to_invocation_success_latency_seconds_bucket{event_bus=\"b\",le=\"" le "\"} " #n
    CHECK(has_line(t, L("0.001", 4))); /* 0, 1, -3, NaN */
    CHECK(has_line(t, L("0.002", 6))); /* + 1.001, 2 */
    CHECK(has_line(t, L("0.005", 7))); /* + 2.5 */
    CHECK(has_line(t, L("30", 7)));
    CHECK(has_line(t, L("60", 8))); /* + 60000 */
    CHECK(has_line(t, L("+Inf", 10))); /* + 60000.5, 1e30 */
#undef L
    CHECK(has_line(t, "ebridge_ingestion_to_invocation_success_latency_seconds_count{event_bus=\"b\"} 10"));
    /* sum: 1e30 ms is clamped to 1.8e16 ms (1.8e19 units of 1/1000 ms); the rest is
     * 1 + 1.001 + 2 + 2.5 + 60000 + 60000.5 = 120007.001 ms */
    CHECK(has_line(t, "ebridge_ingestion_to_invocation_success_latency_seconds_sum{event_bus=\"b\"} "
                      "18000000000120.007001"));
    free(t);

    /* bytes */
    eb_histogram *sz = eb_metrics_histogram(m, EB_M_PUT_EVENTS_REQUEST_SIZE, NULL, NULL);
    eb_histogram_observe(sz, 256);
    eb_histogram_observe(sz, 257);
    eb_histogram_observe(sz, 5000000);
    t = render(m);
    CHECK(has_line(t, "ebridge_put_events_request_size_bytes_bucket{le=\"256\"} 1"));
    CHECK(has_line(t, "ebridge_put_events_request_size_bytes_bucket{le=\"1024\"} 2"));
    CHECK(has_line(t, "ebridge_put_events_request_size_bytes_bucket{le=\"4194304\"} 2"));
    CHECK(has_line(t, "ebridge_put_events_request_size_bytes_bucket{le=\"+Inf\"} 3"));
    CHECK(has_line(t, "ebridge_put_events_request_size_bytes_sum 5000513"));
    CHECK(has_line(t, "ebridge_put_events_request_size_bytes_count 3"));
    free(t);

    /* a counter id asked as a histogram (and the reverse, and ids out of range) gives NULL */
    CHECK(eb_metrics_histogram(m, EB_M_INVOCATIONS, NULL, NULL) == NULL);
    CHECK(eb_metrics_counter(m, EB_M_PUT_EVENTS_LATENCY, NULL, NULL) == NULL);
    CHECK(eb_metrics_counter(m, EB_M_COUNT, NULL, NULL) == NULL);
    CHECK(eb_metrics_counter(m, (eb_metric_id)-1, NULL, NULL) == NULL);
    eb_metrics_free(m);
}

/* ---- the whole text ---- */
static const char GOLDEN[] =
    "# HELP ebridge_dead_letter_invocations_total Times a target was not invoked in response to an event (e.g. loop suppression). (AWS: DeadLetterInvocations)\n"
    "# TYPE ebridge_dead_letter_invocations_total counter\n"
    "ebridge_dead_letter_invocations_total 0\n"
    "# HELP ebridge_failed_invocations_total Invocations that failed permanently (retries exhausted or not retryable). (AWS: FailedInvocations)\n"
    "# TYPE ebridge_failed_invocations_total counter\n"
    "ebridge_failed_invocations_total 0\n"
    "# HELP ebridge_ingestion_to_invocation_complete_latency_seconds Time from ingestion to the end of the first invocation attempt. (AWS: IngestiontoInvocationCompleteLatency)\n"
    "# TYPE ebridge_ingestion_to_invocation_complete_latency_seconds histogram\n"
    "ebridge_ingestion_to_invocation_complete_latency_seconds_bucket{le=\"0.001\"} 0\n"
    "ebridge_ingestion_to_invocation_complete_latency_seconds_bucket{le=\"0.002\"} 0\n"
    "ebridge_ingestion_to_invocation_complete_latency_seconds_bucket{le=\"0.005\"} 0\n"
    "ebridge_ingestion_to_invocation_complete_latency_seconds_bucket{le=\"0.01\"} 0\n"
    "ebridge_ingestion_to_invocation_complete_latency_seconds_bucket{le=\"0.025\"} 0\n"
    "ebridge_ingestion_to_invocation_complete_latency_seconds_bucket{le=\"0.05\"} 0\n"
    "ebridge_ingestion_to_invocation_complete_latency_seconds_bucket{le=\"0.1\"} 0\n"
    "ebridge_ingestion_to_invocation_complete_latency_seconds_bucket{le=\"0.25\"} 0\n"
    "ebridge_ingestion_to_invocation_complete_latency_seconds_bucket{le=\"0.5\"} 0\n"
    "ebridge_ingestion_to_invocation_complete_latency_seconds_bucket{le=\"1\"} 0\n"
    "ebridge_ingestion_to_invocation_complete_latency_seconds_bucket{le=\"2.5\"} 0\n"
    "ebridge_ingestion_to_invocation_complete_latency_seconds_bucket{le=\"5\"} 0\n"
    "ebridge_ingestion_to_invocation_complete_latency_seconds_bucket{le=\"10\"} 0\n"
    "ebridge_ingestion_to_invocation_complete_latency_seconds_bucket{le=\"30\"} 0\n"
    "ebridge_ingestion_to_invocation_complete_latency_seconds_bucket{le=\"60\"} 0\n"
    "ebridge_ingestion_to_invocation_complete_latency_seconds_bucket{le=\"+Inf\"} 0\n"
    "ebridge_ingestion_to_invocation_complete_latency_seconds_sum 0\n"
    "ebridge_ingestion_to_invocation_complete_latency_seconds_count 0\n"
    "# HELP ebridge_ingestion_to_invocation_start_latency_seconds Time from ingestion to the start of the first invocation attempt. (AWS: IngestiontoInvocationStartLatency)\n"
    "# TYPE ebridge_ingestion_to_invocation_start_latency_seconds histogram\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{le=\"0.001\"} 0\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{le=\"0.002\"} 0\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{le=\"0.005\"} 0\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{le=\"0.01\"} 0\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{le=\"0.025\"} 0\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{le=\"0.05\"} 0\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{le=\"0.1\"} 0\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{le=\"0.25\"} 0\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{le=\"0.5\"} 0\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{le=\"1\"} 0\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{le=\"2.5\"} 0\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{le=\"5\"} 0\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{le=\"10\"} 0\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{le=\"30\"} 0\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{le=\"60\"} 0\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{le=\"+Inf\"} 0\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_sum 0\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_count 0\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{event_bus=\"orders\",rule=\"big\",le=\"0.001\"} 1\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{event_bus=\"orders\",rule=\"big\",le=\"0.002\"} 2\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{event_bus=\"orders\",rule=\"big\",le=\"0.005\"} 2\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{event_bus=\"orders\",rule=\"big\",le=\"0.01\"} 2\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{event_bus=\"orders\",rule=\"big\",le=\"0.025\"} 2\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{event_bus=\"orders\",rule=\"big\",le=\"0.05\"} 2\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{event_bus=\"orders\",rule=\"big\",le=\"0.1\"} 2\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{event_bus=\"orders\",rule=\"big\",le=\"0.25\"} 2\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{event_bus=\"orders\",rule=\"big\",le=\"0.5\"} 2\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{event_bus=\"orders\",rule=\"big\",le=\"1\"} 2\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{event_bus=\"orders\",rule=\"big\",le=\"2.5\"} 2\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{event_bus=\"orders\",rule=\"big\",le=\"5\"} 2\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{event_bus=\"orders\",rule=\"big\",le=\"10\"} 2\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{event_bus=\"orders\",rule=\"big\",le=\"30\"} 2\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{event_bus=\"orders\",rule=\"big\",le=\"60\"} 2\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{event_bus=\"orders\",rule=\"big\",le=\"+Inf\"} 3\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_sum{event_bus=\"orders\",rule=\"big\"} 70.0025\n"
    "ebridge_ingestion_to_invocation_start_latency_seconds_count{event_bus=\"orders\",rule=\"big\"} 3\n"
    "# HELP ebridge_ingestion_to_invocation_success_latency_seconds Time from ingestion to the successful delivery. (AWS: IngestionToInvocationSuccessLatency)\n"
    "# TYPE ebridge_ingestion_to_invocation_success_latency_seconds histogram\n"
    "ebridge_ingestion_to_invocation_success_latency_seconds_bucket{le=\"0.001\"} 0\n"
    "ebridge_ingestion_to_invocation_success_latency_seconds_bucket{le=\"0.002\"} 0\n"
    "ebridge_ingestion_to_invocation_success_latency_seconds_bucket{le=\"0.005\"} 0\n"
    "ebridge_ingestion_to_invocation_success_latency_seconds_bucket{le=\"0.01\"} 0\n"
    "ebridge_ingestion_to_invocation_success_latency_seconds_bucket{le=\"0.025\"} 0\n"
    "ebridge_ingestion_to_invocation_success_latency_seconds_bucket{le=\"0.05\"} 0\n"
    "ebridge_ingestion_to_invocation_success_latency_seconds_bucket{le=\"0.1\"} 0\n"
    "ebridge_ingestion_to_invocation_success_latency_seconds_bucket{le=\"0.25\"} 0\n"
    "ebridge_ingestion_to_invocation_success_latency_seconds_bucket{le=\"0.5\"} 0\n"
    "ebridge_ingestion_to_invocation_success_latency_seconds_bucket{le=\"1\"} 0\n"
    "ebridge_ingestion_to_invocation_success_latency_seconds_bucket{le=\"2.5\"} 0\n"
    "ebridge_ingestion_to_invocation_success_latency_seconds_bucket{le=\"5\"} 0\n"
    "ebridge_ingestion_to_invocation_success_latency_seconds_bucket{le=\"10\"} 0\n"
    "ebridge_ingestion_to_invocation_success_latency_seconds_bucket{le=\"30\"} 0\n"
    "ebridge_ingestion_to_invocation_success_latency_seconds_bucket{le=\"60\"} 0\n"
    "ebridge_ingestion_to_invocation_success_latency_seconds_bucket{le=\"+Inf\"} 0\n"
    "ebridge_ingestion_to_invocation_success_latency_seconds_sum 0\n"
    "ebridge_ingestion_to_invocation_success_latency_seconds_count 0\n"
    "# HELP ebridge_invocation_attempts_total Attempts to invoke a target, retries included. (AWS: InvocationAttempts)\n"
    "# TYPE ebridge_invocation_attempts_total counter\n"
    "ebridge_invocation_attempts_total 0\n"
    "# HELP ebridge_invocations_created_total Invocations created by PutEvents: one per (accepted event, matching rule, target). (AWS: InvocationsCreated)\n"
    "# TYPE ebridge_invocations_created_total counter\n"
    "ebridge_invocations_created_total 0\n"
    "# HELP ebridge_invocations_failed_to_be_sent_to_dlq_total Invocations that could not be moved to the dead-letter queue. (AWS: InvocationsFailedToBeSentToDlq)\n"
    "# TYPE ebridge_invocations_failed_to_be_sent_to_dlq_total counter\n"
    "ebridge_invocations_failed_to_be_sent_to_dlq_total 0\n"
    "# HELP ebridge_invocations_sent_to_dlq_total Invocations moved to the target's dead-letter queue. (AWS: InvocationsSentToDlq)\n"
    "# TYPE ebridge_invocations_sent_to_dlq_total counter\n"
    "ebridge_invocations_sent_to_dlq_total 0\n"
    "# HELP ebridge_invocations_total Target invocations that reached a final outcome (success or permanent failure). (AWS: Invocations)\n"
    "# TYPE ebridge_invocations_total counter\n"
    "ebridge_invocations_total 0\n"
    "# HELP ebridge_matched_events_total Events that matched: {event_bus} counts events matching at least one rule of the bus, {event_bus,rule} events matching that rule. (AWS: MatchedEvents)\n"
    "# TYPE ebridge_matched_events_total counter\n"
    "ebridge_matched_events_total{event_bus=\"default\",rule=\"all\"} 5\n"
    "ebridge_matched_events_total{event_bus=\"orders\"} 3\n"
    "ebridge_matched_events_total{event_bus=\"orders\",rule=\"big\"} 2\n"
    "# HELP ebridge_put_events_approximate_call_total PutEvents requests received. (AWS: PutEventsApproximateCallCount)\n"
    "# TYPE ebridge_put_events_approximate_call_total counter\n"
    "ebridge_put_events_approximate_call_total 7\n"
    "# HELP ebridge_put_events_approximate_failed_total PutEvents requests answered with an error other than throttling. (AWS: PutEventsApproximateFailedCount)\n"
    "# TYPE ebridge_put_events_approximate_failed_total counter\n"
    "ebridge_put_events_approximate_failed_total 0\n"
    "# HELP ebridge_put_events_approximate_success_total PutEvents requests answered 200 (entries may still have failed one by one). (AWS: PutEventsApproximateSuccessCount)\n"
    "# TYPE ebridge_put_events_approximate_success_total counter\n"
    "ebridge_put_events_approximate_success_total 0\n"
    "# HELP ebridge_put_events_approximate_throttled_total PutEvents requests answered ThrottlingException. (AWS: PutEventsApproximateThrottledCount)\n"
    "# TYPE ebridge_put_events_approximate_throttled_total counter\n"
    "ebridge_put_events_approximate_throttled_total 0\n"
    "# HELP ebridge_put_events_entries_total Entries of the PutEvents requests answered 200. (AWS: PutEventsEntriesCount)\n"
    "# TYPE ebridge_put_events_entries_total counter\n"
    "ebridge_put_events_entries_total 0\n"
    "# HELP ebridge_put_events_failed_entries_total Entries answered with an ErrorCode (the answers' FailedEntryCount). (AWS: PutEventsFailedEntriesCount)\n"
    "# TYPE ebridge_put_events_failed_entries_total counter\n"
    "ebridge_put_events_failed_entries_total 0\n"
    "# HELP ebridge_put_events_latency_seconds Time from receiving a whole PutEvents request to sending its answer. (AWS: PutEventsLatency)\n"
    "# TYPE ebridge_put_events_latency_seconds histogram\n"
    "ebridge_put_events_latency_seconds_bucket{le=\"0.0001\"} 0\n"
    "ebridge_put_events_latency_seconds_bucket{le=\"0.00025\"} 1\n"
    "ebridge_put_events_latency_seconds_bucket{le=\"0.0005\"} 1\n"
    "ebridge_put_events_latency_seconds_bucket{le=\"0.001\"} 1\n"
    "ebridge_put_events_latency_seconds_bucket{le=\"0.002\"} 1\n"
    "ebridge_put_events_latency_seconds_bucket{le=\"0.005\"} 1\n"
    "ebridge_put_events_latency_seconds_bucket{le=\"0.01\"} 1\n"
    "ebridge_put_events_latency_seconds_bucket{le=\"0.025\"} 1\n"
    "ebridge_put_events_latency_seconds_bucket{le=\"0.05\"} 1\n"
    "ebridge_put_events_latency_seconds_bucket{le=\"0.1\"} 1\n"
    "ebridge_put_events_latency_seconds_bucket{le=\"0.25\"} 1\n"
    "ebridge_put_events_latency_seconds_bucket{le=\"0.5\"} 1\n"
    "ebridge_put_events_latency_seconds_bucket{le=\"1\"} 1\n"
    "ebridge_put_events_latency_seconds_bucket{le=\"2.5\"} 1\n"
    "ebridge_put_events_latency_seconds_bucket{le=\"5\"} 1\n"
    "ebridge_put_events_latency_seconds_bucket{le=\"10\"} 1\n"
    "ebridge_put_events_latency_seconds_bucket{le=\"30\"} 1\n"
    "ebridge_put_events_latency_seconds_bucket{le=\"60\"} 1\n"
    "ebridge_put_events_latency_seconds_bucket{le=\"+Inf\"} 1\n"
    "ebridge_put_events_latency_seconds_sum 0.00025\n"
    "ebridge_put_events_latency_seconds_count 1\n"
    "# HELP ebridge_put_events_request_size_bytes PutEvents request body sizes. (AWS: PutEventsRequestSize)\n"
    "# TYPE ebridge_put_events_request_size_bytes histogram\n"
    "ebridge_put_events_request_size_bytes_bucket{le=\"256\"} 0\n"
    "ebridge_put_events_request_size_bytes_bucket{le=\"1024\"} 1\n"
    "ebridge_put_events_request_size_bytes_bucket{le=\"4096\"} 1\n"
    "ebridge_put_events_request_size_bytes_bucket{le=\"16384\"} 1\n"
    "ebridge_put_events_request_size_bytes_bucket{le=\"65536\"} 1\n"
    "ebridge_put_events_request_size_bytes_bucket{le=\"262144\"} 1\n"
    "ebridge_put_events_request_size_bytes_bucket{le=\"1048576\"} 1\n"
    "ebridge_put_events_request_size_bytes_bucket{le=\"4194304\"} 1\n"
    "ebridge_put_events_request_size_bytes_bucket{le=\"+Inf\"} 1\n"
    "ebridge_put_events_request_size_bytes_sum 300\n"
    "ebridge_put_events_request_size_bytes_count 1\n"
    "# HELP ebridge_retry_invocation_attempts_total Invocation attempts that were retries. (AWS: RetryInvocationAttempts)\n"
    "# TYPE ebridge_retry_invocation_attempts_total counter\n"
    "ebridge_retry_invocation_attempts_total 0\n"
    "# HELP ebridge_schedule_skipped_total Scheduled times a rule missed while the server was down (it fired once, for the latest).\n"
    "# TYPE ebridge_schedule_skipped_total counter\n"
    "# HELP ebridge_successful_invocation_attempts_total Invocation attempts that succeeded. (AWS: SuccessfulInvocationAttempts)\n"
    "# TYPE ebridge_successful_invocation_attempts_total counter\n"
    "ebridge_successful_invocation_attempts_total 0\n"
    "# HELP ebridge_throttled_rules_total Rule executions delayed by the invocation throttle. (AWS: ThrottledRules)\n"
    "# TYPE ebridge_throttled_rules_total counter\n"
    "ebridge_throttled_rules_total 0\n"
    "# HELP ebridge_triggered_rules_total Rule executions: one per (event, matching rule). (AWS: TriggeredRules)\n"
    "# TYPE ebridge_triggered_rules_total counter\n"
    "ebridge_triggered_rules_total 0\n"
    "ebridge_triggered_rules_total{event_bus=\"orders\",rule=\"big\"} 2\n"
;

static void test_render_golden(void)
{
    eb_metrics *m = eb_metrics_new();
    eb_counter_add(eb_metrics_counter(m, EB_M_PUT_EVENTS_CALLS, NULL, NULL), 7);
    eb_counter_add(eb_metrics_counter(m, EB_M_MATCHED_EVENTS, "orders", NULL), 3);
    eb_counter_add(eb_metrics_counter(m, EB_M_MATCHED_EVENTS, "orders", "big"), 2);
    eb_counter_add(eb_metrics_counter(m, EB_M_MATCHED_EVENTS, "default", "all"), 5);
    eb_counter_add(eb_metrics_counter(m, EB_M_TRIGGERED_RULES, "orders", "big"), 2);
    eb_histogram *h = eb_metrics_histogram(m, EB_M_INGESTION_TO_INVOCATION_START_LATENCY, "orders", "big");
    eb_histogram_observe(h, 1);
    eb_histogram_observe(h, 1.5);
    eb_histogram_observe(h, 70000);
    eb_histogram_observe(eb_metrics_histogram(m, EB_M_PUT_EVENTS_LATENCY, NULL, NULL), 0.25);
    eb_histogram_observe(eb_metrics_histogram(m, EB_M_PUT_EVENTS_REQUEST_SIZE, NULL, NULL), 300);
    char *t = render(m);
    CHECK_STR(t, GOLDEN);
    /* rendering appends */
    eb_buf b = {0};
    eb_buf_puts(&b, "x\n");
    CHECK(eb_metrics_render(m, &b) == 0);
    CHECK(b.n == 2 + strlen(GOLDEN) && !strncmp(b.p, "x\n", 2) && !strcmp(b.p + 2, GOLDEN));
    eb_buf_free(&b);
    free(t);
    eb_metrics_free(m);
}

static void test_table(void)
{
    /* names follow the conventions documented in docs/metrics.md */
    for (int id = 0; id < EB_M_COUNT; id++) {
        const eb_metric_def *d = eb_metric_info((eb_metric_id)id);
        CHECK(d && d->name && d->help && (d->aws_name || id == EB_M_SCHEDULE_SKIPPED));
        CHECK(!strncmp(d->name, "ebridge_", 8));
        size_t n = strlen(d->name);
        if (d->type == EB_MT_COUNTER)
            CHECK(n > 6 && !strcmp(d->name + n - 6, "_total"));
        else
            CHECK((n > 8 && !strcmp(d->name + n - 8, "_seconds")) || (n > 6 && !strcmp(d->name + n - 6, "_bytes")));
        for (const char *p = d->name; *p; p++)
            CHECK((*p >= 'a' && *p <= 'z') || *p == '_');
    }
    CHECK(eb_metric_info(EB_M_COUNT) == NULL);
    CHECK(!strcmp(eb_metric_info(EB_M_INVOCATIONS)->name, "ebridge_invocations_total"));
}

/* ---- escaping ---- */
static void test_escaping(void)
{
    eb_metrics *m = eb_metrics_new();
    eb_counter_add(eb_metrics_counter(m, EB_M_TRIGGERED_RULES, "a\"b\\c\nd", "r\\\"\n"), 4);
    eb_counter_add(eb_metrics_counter(m, EB_M_TRIGGERED_RULES, "", ""), 1); /* empty values are labels too */
    eb_histogram_observe(eb_metrics_histogram(m, EB_M_INGESTION_TO_INVOCATION_START_LATENCY, "q\"", NULL), 3);
    char *t = render(m);
    CHECK(has_line(t, "ebridge_triggered_rules_total{event_bus=\"a\\\"b\\\\c\\nd\",rule=\"r\\\\\\\"\\n\"} 4"));
    CHECK(has_line(t, "ebridge_triggered_rules_total{event_bus=\"\",rule=\"\"} 1"));
    CHECK(has_line(t, "ebridge_ingestion_to_invocation_start_latency_seconds_bucket{event_bus=\"q\\\"\",le=\"0.005\"} 1"));
    CHECK(has_line(t, "ebridge_ingestion_to_invocation_start_latency_seconds_sum{event_bus=\"q\\\"\"} 0.003"));
    /* no raw line feed inside a sample: every line starts with '#' or "ebridge_" */
    int lines_ok = 1;
    for (const char *p = t; *p; p = strchr(p, '\n') + 1)
        lines_ok &= *p == '#' || !strncmp(p, "ebridge_", 8);
    CHECK(lines_ok);
    /* "" and NULL are different label sets */
    CHECK(eb_metrics_counter(m, EB_M_TRIGGERED_RULES, "", NULL) != eb_metrics_counter(m, EB_M_TRIGGERED_RULES, "", ""));
    CHECK(eb_metrics_counter(m, EB_M_TRIGGERED_RULES, NULL, NULL) !=
          eb_metrics_counter(m, EB_M_TRIGGERED_RULES, "", NULL));
    free(t);
    eb_metrics_free(m);
}

/* ---- forgetting ---- */
static void test_forget(void)
{
    eb_metrics *m = eb_metrics_new();
    eb_counter *keep = eb_metrics_counter(m, EB_M_MATCHED_EVENTS, "b1", "keep");
    eb_counter *gone = eb_metrics_counter(m, EB_M_MATCHED_EVENTS, "b1", "gone");
    eb_counter *gone_t = eb_metrics_counter(m, EB_M_TRIGGERED_RULES, "b1", "gone");
    eb_counter *bus = eb_metrics_counter(m, EB_M_MATCHED_EVENTS, "b1", NULL);
    eb_counter *other = eb_metrics_counter(m, EB_M_MATCHED_EVENTS, "b2", "gone");
    eb_histogram *gh = eb_metrics_histogram(m, EB_M_INGESTION_TO_INVOCATION_START_LATENCY, "b1", "gone");
    eb_counter_add(keep, 1);
    eb_counter_add(gone, 2);
    eb_counter_add(gone_t, 3);
    eb_counter_add(bus, 4);
    eb_counter_add(other, 5);
    eb_histogram_observe(gh, 10);

    eb_metrics_forget_rule(m, "b1", "gone");
    char *t = render(m);
    CHECK(has_line(t, "ebridge_matched_events_total{event_bus=\"b1\",rule=\"keep\"} 1"));
    CHECK(has_line(t, "ebridge_matched_events_total{event_bus=\"b1\"} 4"));
    CHECK(has_line(t, "ebridge_matched_events_total{event_bus=\"b2\",rule=\"gone\"} 5"));
    CHECK(!strstr(t, "rule=\"gone\"} 2"));
    CHECK(!strstr(t, "event_bus=\"b1\",rule=\"gone\""));
    CHECK(strstr(t, "# TYPE ebridge_ingestion_to_invocation_start_latency_seconds histogram") != NULL);
    free(t);

    /* handles held elsewhere stay usable; their increments are not shown */
    eb_counter_add(gone, 100);
    eb_histogram_observe(gh, 10);
    t = render(m);
    CHECK(!strstr(t, "event_bus=\"b1\",rule=\"gone\""));
    free(t);

    /* asking again shows the series again, from zero, with the same handle */
    CHECK(eb_metrics_counter(m, EB_M_MATCHED_EVENTS, "b1", "gone") == gone);
    CHECK(eb_counter_value(gone) == 0);
    eb_counter_add(gone, 1);
    t = render(m);
    CHECK(has_line(t, "ebridge_matched_events_total{event_bus=\"b1\",rule=\"gone\"} 1"));
    CHECK(!strstr(t, "ebridge_triggered_rules_total{event_bus=\"b1\",rule=\"gone\"}")); /* still hidden */
    free(t);
    CHECK(eb_metrics_histogram(m, EB_M_INGESTION_TO_INVOCATION_START_LATENCY, "b1", "gone") == gh);
    t = render(m);
    CHECK(has_line(t, "ebridge_ingestion_to_invocation_start_latency_seconds_count{event_bus=\"b1\",rule=\"gone\"} 0"));
    CHECK(has_line(t, "ebridge_ingestion_to_invocation_start_latency_seconds_sum{event_bus=\"b1\",rule=\"gone\"} 0"));
    free(t);

    /* forgetting a bus hides its bus-level and rule-level series, nothing else */
    eb_metrics_forget_bus(m, "b1");
    t = render(m);
    CHECK(!strstr(t, "event_bus=\"b1\""));
    CHECK(has_line(t, "ebridge_matched_events_total{event_bus=\"b2\",rule=\"gone\"} 5"));
    CHECK(has_line(t, "ebridge_triggered_rules_total 0"));
    free(t);

    /* unknown names, NULL arguments, NULL registry, NULL handles: nothing happens */
    eb_metrics_forget_rule(m, "nope", "nope");
    eb_metrics_forget_rule(m, NULL, "x");
    eb_metrics_forget_rule(m, "b2", NULL);
    eb_metrics_forget_bus(m, NULL);
    eb_metrics_forget_rule(NULL, "b", "r");
    eb_metrics_forget_bus(NULL, "b");
    CHECK(eb_metrics_counter(NULL, EB_M_INVOCATIONS, NULL, NULL) == NULL);
    CHECK(eb_metrics_histogram(NULL, EB_M_PUT_EVENTS_LATENCY, NULL, NULL) == NULL);
    eb_counter_add(NULL, 1);
    eb_histogram_observe(NULL, 1);
    CHECK(eb_counter_value(NULL) == 0);
    eb_buf b = {0};
    CHECK(eb_metrics_render(NULL, &b) == 0 && b.n == 0);
    t = render(m);
    CHECK(has_line(t, "ebridge_matched_events_total{event_bus=\"b2\",rule=\"gone\"} 5"));
    free(t);
    eb_metrics_free(m);
    eb_metrics_free(NULL);
}

/* ---- cost (printed, not asserted) ---- */
static void test_cost(void)
{
    eb_metrics *m = eb_metrics_new();
    char rule[32];
    for (int r = 0; r < 300; r++) {
        snprintf(rule, sizeof rule, "rule-%d", r);
        eb_metrics_counter(m, EB_M_MATCHED_EVENTS, "orders", rule);
    }
    const int n = 2000000;
    uint64_t t0 = eb_mono_ns();
    for (int i = 0; i < n; i++)
        eb_counter_add(eb_metrics_counter(m, EB_M_MATCHED_EVENTS, "orders", "rule-123"), 1);
    uint64_t t1 = eb_mono_ns();
    eb_counter *c = eb_metrics_counter(m, EB_M_MATCHED_EVENTS, "orders", "rule-123");
    for (int i = 0; i < n; i++)
        eb_counter_add(c, 1);
    uint64_t t2 = eb_mono_ns();
    eb_histogram *h = eb_metrics_histogram(m, EB_M_PUT_EVENTS_LATENCY, NULL, NULL);
    for (int i = 0; i < n; i++)
        eb_histogram_observe(h, (double)(i & 1023) / 10.0);
    uint64_t t3 = eb_mono_ns();
    CHECK(eb_counter_value(c) == 2u * (uint64_t)n);
    printf("cost: lookup+add %.1f ns, add on a held handle %.1f ns, histogram observe %.1f ns (300 series)\n",
           (double)(t1 - t0) / n, (double)(t2 - t1) / n, (double)(t3 - t2) / n);
    eb_metrics_free(m);
}

int main(void)
{
    RUN(test_table);
    RUN(test_concurrent_increments);
    RUN(test_histogram_buckets);
    RUN(test_render_golden);
    RUN(test_escaping);
    RUN(test_forget);
    RUN(test_cost);
    return TEST_REPORT();
}
