/* Concurrency stress test for machines and snapshots (meant for TSan:
 * `make test-tsan` builds it with -fsanitize=thread; it also runs, briefly,
 * as an ordinary ctest).
 *
 * 3 matcher threads, each with its own eb_matcher, repeatedly take a
 * snapshot, match a fixed set of events, check the answers against what the
 * snapshot may contain, and release it (sometimes handing the snapshot to
 * another thread, which releases it).  1 writer thread adds, replaces and
 * removes rules thousands of times.
 *
 *   - rules 0..NFIXED-1 are never touched by the writer: on every snapshot
 *     their matches must be exactly those of a machine holding only them;
 *   - dynamic rules DYN0..DYN0+NDYN-1 come and go and change patterns: on one
 *     snapshot, the set of events a dynamic key matches must be the empty set
 *     (absent) or exactly the set of one of its candidate patterns (no torn
 *     snapshots), and the snapshot's rule count must be in range;
 *   - matching the same event twice on one snapshot gives the same answer.
 *
 * Runtime: EB_STRESS_SECONDS (default 2 s; 8 s under TSan). */
#define _POSIX_C_SOURCE 200809L
#include <ebridge/pattern.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRESS_TSAN 1
#endif
#endif
#if !defined(STRESS_TSAN) && defined(__SANITIZE_THREAD__)
#define STRESS_TSAN 1
#endif

#define NMATCHERS 3
#define MIN_WRITER_OPS 3000

static const char *const fixed_patterns[] = {
    "{\"source\": [\"aws.ec2\"]}",
    "{\"detail\": {\"state\": [\"running\", \"pending\"]}}",
    "{\"detail\": {\"n\": [{\"numeric\": [\">\", 10, \"<=\", 100]}]}}",
    "{\"detail-type\": [{\"prefix\": \"EC2 \"}]}",
    "{\"detail\": {\"file\": [{\"suffix\": \".png\"}]}}",
    "{\"detail\": {\"name\": [{\"equals-ignore-case\": \"ALICE\"}]}}",
    "{\"detail\": {\"path\": [{\"wildcard\": \"*/dir/*\"}]}}",
    "{\"detail\": {\"ip\": [{\"cidr\": \"10.0.0.0/8\"}]}}",
    "{\"detail\": {\"state\": [{\"anything-but\": [\"running\"]}]}}",
    "{\"detail\": {\"opt\": [{\"exists\": false}]}}",
    "{\"$or\": [{\"source\": [\"aws.s3\"]}, {\"detail\": {\"n\": [5]}}]}",
    "{\"detail\": {\"items\": {\"id\": [\"x\"]}}}",
};
#define NFIXED (sizeof fixed_patterns / sizeof fixed_patterns[0])

/* Candidates for the dynamic keys (the writer picks any for any key). */
static const char *const dyn_patterns[] = {
    "{\"source\": [\"aws.ec2\", \"aws.s3\"]}",
    "{\"detail\": {\"state\": [{\"prefix\": \"run\"}]}}",
    "{\"detail\": {\"n\": [{\"numeric\": [\">=\", 42, \"<\", 1000]}]}}",
    "{\"detail\": {\"name\": [{\"anything-but\": {\"equals-ignore-case\": \"alice\"}}]}}",
    "{\"detail\": {\"ip\": [{\"cidr\": \"192.168.0.0/16\"}], \"opt\": [{\"exists\": true}]}}",
    "{\"detail\": {\"items\": {\"id\": [{\"exists\": true}]}}}",
    "{\"source\": [{\"prefix\": \"oth\"}]}",
};
#define NDYNPAT (sizeof dyn_patterns / sizeof dyn_patterns[0])
#define DYN0 1000u
#define NDYN 24u

static const char *const events[] = {
    "{\"source\": \"aws.ec2\", \"detail-type\": \"EC2 Instance State-change Notification\", "
    "\"detail\": {\"state\": \"running\", \"n\": 42, \"ip\": \"10.1.2.3\"}}",
    "{\"source\": \"aws.s3\", \"detail\": {\"state\": \"stopped\", \"file\": \"a.png\", \"n\": 5, "
    "\"opt\": 1, \"ip\": \"192.168.3.4\"}}",
    "{\"detail\": {\"name\": \"alice\", \"path\": \"/x/dir/y\", \"items\": [{\"id\": \"y\"}, {\"id\": \"x\"}]}}",
    "{\"detail\": {\"name\": \"bob\", \"n\": 500, \"state\": \"pending\", \"items\": {\"id\": \"z\"}}}",
    "{\"source\": \"other\"}",
    "{}",
};
#define NEVENTS (sizeof events / sizeof events[0])

typedef uint32_t evmask; /* bit e: event e matched */

static evmask fixed_mask[NFIXED];  /* expected events for each fixed rule */
static evmask dyn_mask[NDYNPAT];   /* events matched by each dynamic pattern */
static eb_pattern *fixed_p[NFIXED];
static eb_pattern *dyn_p[NDYNPAT];

static eb_machine *machine;
static atomic_int stop_flag;
static atomic_int thread_failures;
static atomic_long snapshots_checked;
static _Atomic(eb_snapshot *) handoff; /* a snapshot passed between threads */
static double run_seconds;

#define TCHECK(cond)                                                                  \
    do {                                                                              \
        if (!(cond)) {                                                                \
            if (atomic_fetch_add(&thread_failures, 1) < 20)                           \
                fprintf(stderr, "%s:%d: thread CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                             \
    } while (0)

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static eb_pattern *compile_or_die(const char *text)
{
    eb_pattern *p = NULL;
    eb_error err;
    if (eb_pattern_compile(text, strlen(text), &p, &err) != EB_OK) {
        fprintf(stderr, "cannot compile %s: %s\n", text, err.message);
        exit(1);
    }
    return p;
}

/* Match every event on s; masks[k] gets the events matched by key k (fixed
 * keys index 0..NFIXED-1, dynamic keys NFIXED + (key - DYN0)).  Returns 0 if
 * something unexpected was returned. */
static int match_masks(eb_matcher *mt, const eb_snapshot *s, evmask *masks)
{
    memset(masks, 0, sizeof(evmask) * (NFIXED + NDYN));
    int ok = 1;
    for (size_t e = 0; e < NEVENTS; e++) {
        const uint64_t *keys = NULL;
        size_t n = 0;
        eb_error err;
        if (eb_match(mt, s, events[e], strlen(events[e]), 0, &keys, &n, &err) != EB_OK) {
            fprintf(stderr, "eb_match failed: %s\n", err.message);
            return 0;
        }
        for (size_t i = 0; i < n; i++) {
            size_t slot;
            if (keys[i] < NFIXED)
                slot = (size_t)keys[i];
            else if (keys[i] >= DYN0 && keys[i] < DYN0 + NDYN)
                slot = NFIXED + (size_t)(keys[i] - DYN0);
            else {
                ok = 0; /* a key nobody added */
                continue;
            }
            if (masks[slot] & (1u << e))
                ok = 0; /* the same key twice for one event */
            masks[slot] |= 1u << e;
        }
    }
    return ok;
}

static void check_snapshot(eb_matcher *mt, const eb_snapshot *s)
{
    evmask masks[NFIXED + NDYN], again[NFIXED + NDYN];
    size_t nrules = eb_snapshot_rules(s);
    TCHECK(nrules >= NFIXED && nrules <= NFIXED + NDYN);
    TCHECK(match_masks(mt, s, masks));
    for (size_t k = 0; k < NFIXED; k++)
        TCHECK(masks[k] == fixed_mask[k]);
    for (size_t d = 0; d < NDYN; d++) {
        evmask m = masks[NFIXED + d];
        int plausible = m == 0;
        for (size_t p = 0; p < NDYNPAT && !plausible; p++)
            plausible = m == dyn_mask[p];
        TCHECK(plausible);
    }
    /* The snapshot is immutable: the same answers a second time. */
    TCHECK(match_masks(mt, s, again));
    TCHECK(memcmp(masks, again, sizeof masks) == 0);
    TCHECK(eb_snapshot_rules(s) == nrules);
}

static void *matcher_main(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    eb_matcher *mt = eb_matcher_new();
    TCHECK(mt != NULL);
    if (!mt)
        return NULL;
    while (!atomic_load(&stop_flag)) {
        eb_snapshot *s = eb_machine_snapshot(machine);
        TCHECK(s != NULL);
        check_snapshot(mt, s);
        atomic_fetch_add(&snapshots_checked, 1);
        seed = seed * 1103515245u + 12345u;
        if ((seed >> 16) % 4 == 0) {
            /* Hand it over: whoever takes it next (maybe another thread)
             * checks and releases it. */
            eb_snapshot *prev = atomic_exchange(&handoff, s);
            if (prev) {
                check_snapshot(mt, prev);
                eb_snapshot_release(prev);
            }
        } else {
            eb_snapshot_release(s);
        }
    }
    eb_matcher_free(mt);
    return NULL;
}

static long writer_ops;

static void *writer_main(void *arg)
{
    (void)arg;
    unsigned seed = 12345;
    int present[NDYN] = {0};
    size_t npresent = 0;
    double deadline = now_seconds() + run_seconds;
    long ops = 0;
    while (ops < MIN_WRITER_OPS || now_seconds() < deadline) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = seed >> 8;
        unsigned d = r % NDYN;
        uint64_t key = DYN0 + d;
        if ((r / NDYN) % 3 == 0) {
            eb_status st = eb_machine_remove(machine, key);
            TCHECK(st == (present[d] ? EB_OK : EB_ERR_NOTFOUND));
            if (present[d]) {
                present[d] = 0;
                npresent--;
            }
        } else {
            const eb_pattern *p = dyn_p[(r / NDYN / 3) % NDYNPAT];
            TCHECK(eb_machine_add(machine, key, p) == EB_OK); /* maybe a replacement */
            if (!present[d]) {
                present[d] = 1;
                npresent++;
            }
        }
        /* The writer is the only mutator: the current snapshot reflects its
         * last operation. */
        if (ops % 16 == 0) {
            eb_snapshot *s = eb_machine_snapshot(machine);
            TCHECK(eb_snapshot_rules(s) == NFIXED + npresent);
            eb_snapshot_release(s);
        }
        ops++;
    }
    writer_ops = ops;
    atomic_store(&stop_flag, 1);
    return NULL;
}

static void test_stress_snapshots(void)
{
    /* Expected answers, single-threaded, on machines of their own. */
    eb_matcher *mt = eb_matcher_new();
    CHECK(mt != NULL);
    evmask masks[NFIXED + NDYN];
    eb_machine *ref = eb_machine_new();
    for (size_t k = 0; k < NFIXED; k++) {
        fixed_p[k] = compile_or_die(fixed_patterns[k]);
        CHECK(eb_machine_add(ref, k, fixed_p[k]) == EB_OK);
    }
    eb_snapshot *s = eb_machine_snapshot(ref);
    CHECK(match_masks(mt, s, masks));
    for (size_t k = 0; k < NFIXED; k++) {
        fixed_mask[k] = masks[k];
        CHECK(fixed_mask[k] != 0); /* every fixed rule matches something */
    }
    eb_snapshot_release(s);
    eb_machine_free(ref);
    for (size_t p = 0; p < NDYNPAT; p++) {
        dyn_p[p] = compile_or_die(dyn_patterns[p]);
        ref = eb_machine_new();
        CHECK(eb_machine_add(ref, DYN0, dyn_p[p]) == EB_OK);
        s = eb_machine_snapshot(ref);
        CHECK(match_masks(mt, s, masks));
        dyn_mask[p] = masks[NFIXED];
        eb_snapshot_release(s);
        eb_machine_free(ref);
    }
    /* Candidate masks must be distinct and non-empty, or a torn snapshot
     * could go unnoticed. */
    for (size_t p = 0; p < NDYNPAT; p++) {
        if (getenv("EB_STRESS_VERBOSE"))
            printf("dynamic pattern %zu matches events 0x%x\n", p, (unsigned)dyn_mask[p]);
        CHECK(dyn_mask[p] != 0);
        for (size_t q = 0; q < p; q++)
            CHECK(dyn_mask[p] != dyn_mask[q]);
    }

    machine = eb_machine_new();
    CHECK(machine != NULL);
    for (size_t k = 0; k < NFIXED; k++)
        CHECK(eb_machine_add(machine, k, fixed_p[k]) == EB_OK);

    pthread_t th[NMATCHERS + 1];
    double t0 = now_seconds();
    for (uintptr_t i = 0; i < NMATCHERS; i++)
        CHECK(pthread_create(&th[i], NULL, matcher_main, (void *)(i + 1)) == 0);
    CHECK(pthread_create(&th[NMATCHERS], NULL, writer_main, NULL) == 0);
    for (int i = 0; i <= NMATCHERS; i++)
        pthread_join(th[i], NULL);
    double elapsed = now_seconds() - t0;

    /* The handed-off snapshot outlives the machine. */
    eb_snapshot *last = eb_machine_snapshot(machine);
    eb_machine_free(machine);
    machine = NULL;
    check_snapshot(mt, last);
    eb_snapshot_release(last);
    eb_snapshot *held = atomic_exchange(&handoff, NULL);
    if (held) {
        check_snapshot(mt, held);
        eb_snapshot_release(held);
    }

    printf("stress: %.1f s, %ld writer ops, %ld snapshots checked by %d matchers\n", elapsed, writer_ops,
           (long)atomic_load(&snapshots_checked), NMATCHERS);
    CHECK(writer_ops >= MIN_WRITER_OPS);
    CHECK(atomic_load(&snapshots_checked) > 0);
    CHECK(atomic_load(&thread_failures) == 0);

    for (size_t k = 0; k < NFIXED; k++)
        eb_pattern_free(fixed_p[k]);
    for (size_t p = 0; p < NDYNPAT; p++)
        eb_pattern_free(dyn_p[p]);
    eb_matcher_free(mt);
}

int main(void)
{
#ifdef STRESS_TSAN
    run_seconds = 8;
#else
    run_seconds = 2;
#endif
    const char *env = getenv("EB_STRESS_SECONDS");
    if (env && *env)
        run_seconds = atof(env);
    RUN(test_stress_snapshots);
    return TEST_REPORT();
}
