/* libFuzzer target: the request path, operation + body -> response.
 *
 * The API (eb_api_serve, src/api/api.h) runs on one core and SQLite store
 * opened once in a temporary directory with EB_SYNC_OFF, so state (buses,
 * rules, targets, tags, policies, stored events) carries over from input to
 * input, as in a running server.
 *
 * Input: one or more requests separated by a line "@@" ("\n@@\n"; at most
 * MAX_REQUESTS). Each request is
 *
 *     OP[\tAUTHORIZATION]\n BODY
 *
 * OP is the operation name after "AWSEvents." (any bytes: unknown names are
 * fine), or a single byte that selects one from ops[] by its value. When the
 * first line holds a tab, what follows it is sent as the Authorization header
 * (no credentials are configured, so only its parsing and the region of its
 * credential scope matter). The request is POST / with X-Amz-Target
 * "AWSEvents.OP" and Content-Type application/x-amz-json-1.1.
 *
 * Checked for every request: exactly one answer (PutEvents answers from the
 * store's committer thread: waited for with a mutex + condvar), status 200 or
 * 4xx/5xx, Content-Type application/x-amz-json-1.1, an x-amzn-RequestId
 * header, a body that is valid JSON (eb_json_check) holding an object;
 * errors carry string "__type" and "message" (and x-amzn-ErrorType). A 5xx
 * answer counts as a finding too: with a working store and enough memory
 * nothing a client sends should make the server fail. */
#define _GNU_SOURCE
#include "fuzz_common.h"

#include "api/api.h"
#include "core/core.h"
#include "store/store.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_REQUESTS 8
#define CT_JSON11 "application/x-amz-json-1.1"

static const char *const ops[] = {
    "PutEvents",        "PutRule",         "PutTargets",       "CreateEventBus",
    "DescribeEventBus", "ListEventBuses",  "UpdateEventBus",   "DeleteEventBus",
    "DescribeRule",     "ListRules",       "EnableRule",       "DisableRule",
    "DeleteRule",       "ListRuleNamesByTarget", "RemoveTargets", "ListTargetsByRule",
    "TestEventPattern", "TagResource",     "UntagResource",    "ListTagsForResource",
    "PutPermission",    "RemovePermission", "CreateArchive",   "NoSuchOperation",
};
#define NOPS (sizeof ops / sizeof ops[0])

static char tmpdir[64];
static eb_store *store;
static eb_core *core;
static eb_api *api;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void teardown(void)
{
    eb_api_free(api);
    eb_core_close(core);
    eb_store_close(store);
    api = NULL;
    core = NULL;
    store = NULL;
    if (tmpdir[0])
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A crashing run exits without teardown: remove the directories of runs
 * whose process is gone (named /tmp/eb-fuzz-request-<pid>-XXXXXX). */
static void remove_stale_dirs(void)
{
    DIR *d = opendir("/tmp");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long pid;
        char path[300];
        if (sscanf(e->d_name, "eb-fuzz-request-%ld-", &pid) != 1 || pid <= 0)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(path, sizeof path, "/tmp/%s", e->d_name);
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    closedir(d);
}

static void setup(void)
{
    if (api)
        return;
    remove_stale_dirs();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/eb-fuzz-request-%ld-XXXXXX", (long)getpid());
    FUZZ_ASSERT(mkdtemp(tmpdir) != NULL);
    char dir[96], err[512];
    snprintf(dir, sizeof dir, "%s/data", tmpdir);
    eb_log_set_level(EB_LOG_OFF); /* quiet: every rejected request logs a warning */
    eb_store_options so = {.sync = EB_SYNC_OFF};
    store = eb_store_open_sqlite(dir, &so, err, sizeof err);
    if (!store) {
        fprintf(stderr, "fuzz_request: cannot open the store: %s\n", err);
        abort();
    }
    eb_core_config cc;
    eb_core_config_defaults(&cc);
    core = eb_core_open(&cc, store, err, sizeof err);
    if (!core) {
        fprintf(stderr, "fuzz_request: cannot open the core: %s\n", err);
        abort();
    }
    static const eb_api_config ac = {.default_account = "000000000000",
                                     .default_region = "us-east-1",
                                     .max_body = 1u << 20};
    api = eb_api_new(&ac, core);
    FUZZ_ASSERT(api != NULL);
    atexit(teardown);
}

/* One request's answer; the reply may come from another thread. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    unsigned status;
} waiter;

static void check_reply(unsigned status, const char *ct, const eb_http_header *h, size_t nh, const char *body,
                        size_t len)
{
    FUZZ_ASSERT(status == 200 || (status >= 400 && status <= 599));
    if (status >= 500) {
        fprintf(stderr, "fuzz_request: status %u: %.*s\n", status, (int)(len > 2000 ? 2000 : len), body);
        abort();
    }
    FUZZ_ASSERT(ct != NULL && strcmp(ct, CT_JSON11) == 0);
    const char *rid = NULL, *etype = NULL;
    for (size_t i = 0; i < nh; i++) {
        FUZZ_ASSERT(h[i].name != NULL && h[i].value != NULL);
        if (!strcasecmp(h[i].name, "x-amzn-RequestId"))
            rid = h[i].value;
        else if (!strcasecmp(h[i].name, "x-amzn-ErrorType"))
            etype = h[i].value;
    }
    FUZZ_ASSERT(rid != NULL && strlen(rid) == 36);
    FUZZ_ASSERT(body != NULL || len == 0);
    eb_error err;
    if (eb_json_check(body ? body : "", len, EB_DEFAULT_MAX_DEPTH, &err) != EB_OK) {
        fprintf(stderr, "fuzz_request: status %u with a body that is not JSON (%s): %.*s\n", status, err.message,
                (int)(len > 2000 ? 2000 : len), body);
        abort();
    }
    FUZZ_ASSERT(fuzz_top_is_object((const uint8_t *)body, len));
    if (status == 200) {
        FUZZ_ASSERT(etype == NULL);
        return;
    }
    json_error_t je;
    json_t *doc = json_loadb(body, len, 0, &je);
    FUZZ_ASSERT(doc != NULL);
    const char *type = json_string_value(json_object_get(doc, "__type"));
    const char *msg = json_string_value(json_object_get(doc, "message"));
    if (!type || !*type || !msg || !etype || strcmp(type, etype) != 0) {
        fprintf(stderr, "fuzz_request: status %u error without __type/message/x-amzn-ErrorType: %.*s\n", status,
                (int)(len > 2000 ? 2000 : len), body);
        abort();
    }
    json_decref(doc);
}

static void on_reply(void *ctx, unsigned status, const char *ct, const eb_http_header *h, size_t nh,
                     const char *body, size_t len)
{
    waiter *w = ctx;
    check_reply(status, ct, h, nh, body, len);
    pthread_mutex_lock(&w->mu);
    w->calls++;
    w->status = status;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* One request from [d, d+n). */
static void one_request(const uint8_t *d, size_t n)
{
    const uint8_t *nl = memchr(d, '\n', n);
    size_t line = nl ? (size_t)(nl - d) : n;
    const uint8_t *b = nl ? nl + 1 : d + n;
    size_t blen = (size_t)(d + n - b);

    const uint8_t *tab = memchr(d, '\t', line);
    size_t oplen = tab ? (size_t)(tab - d) : line;
    char target[128];
    if (oplen == 1)
        snprintf(target, sizeof target, "AWSEvents.%s", ops[d[0] % NOPS]);
    else
        snprintf(target, sizeof target, "AWSEvents.%.*s", (int)(oplen > 100 ? 100 : oplen), (const char *)d);
    /* header values are C strings: a NUL in the input ends them */
    char *auth = NULL;
    if (tab) {
        size_t al = line - oplen - 1;
        auth = malloc(al + 1);
        FUZZ_ASSERT(auth != NULL);
        memcpy(auth, tab + 1, al);
        auth[al] = 0;
    }
    char *body = malloc(blen + 1); /* exact size: ASan sees over-reads */
    FUZZ_ASSERT(body != NULL);
    if (blen)
        memcpy(body, b, blen);
    body[blen] = 0;

    eb_http_header hdrs[4] = {{"Host", "127.0.0.1:4010"}, {"X-Amz-Target", target}, {"Content-Type", CT_JSON11}};
    size_t nh = 3;
    if (auth)
        hdrs[nh++] = (eb_http_header){"Authorization", auth};
    eb_api_request r = {.method = "POST",
                        .path = "/",
                        .query = "",
                        .hdrs = hdrs,
                        .nh = nh,
                        .body = body,
                        .len = blen,
                        .too_large = 0,
                        .peer = "fuzz"};
    waiter w = {.calls = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    eb_api_serve(api, &r, on_reply, &w);
    pthread_mutex_lock(&w.mu);
    while (w.calls == 0)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    free(body);
    free(auth);
    pthread_mutex_lock(&w.mu);
    FUZZ_ASSERT(w.calls == 1);
    pthread_mutex_unlock(&w.mu);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    static const uint8_t sep[] = "\n@@\n";
    const uint8_t *p = data, *end = data + size;
    for (int k = 0; k < MAX_REQUESTS; k++) {
        const uint8_t *q = memmem(p, (size_t)(end - p), sep, sizeof sep - 1);
        const uint8_t *stop = q ? q : end;
        one_request(p, (size_t)(stop - p));
        if (!q)
            break;
        p = q + sizeof sep - 1;
    }
    return 0;
}
