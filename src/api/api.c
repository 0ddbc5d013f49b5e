/* AWS JSON 1.1 request handling (see api.h). */
#define _GNU_SOURCE
#include "api.h"

#include "../util/metrics.h"
#include "../util/util.h"
#include "fastput.h"
#include "shape.h"
#include "sigv4.h"

#include <ebridge/pattern.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CT_JSON11 "application/x-amz-json-1.1"

/* The PutEvents metrics, looked up once (see put_events_metrics). */
typedef struct {
    eb_counter *calls, *successes, *failures, *throttled, *entries, *failed_entries;
    eb_histogram *latency, *size;
} pe_metrics;

struct eb_api {
    eb_api_config cfg;
    eb_core *core;
    pe_metrics pm;
};

eb_api *eb_api_new(const eb_api_config *cfg, eb_core *core)
{
    eb_api *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->cfg = *cfg;
    a->core = core;
    eb_metrics *m = cfg->metrics; /* NULL: every handle NULL, counting does nothing */
    a->pm = (pe_metrics){eb_metrics_counter(m, EB_M_PUT_EVENTS_CALLS, NULL, NULL),
                         eb_metrics_counter(m, EB_M_PUT_EVENTS_SUCCESSES, NULL, NULL),
                         eb_metrics_counter(m, EB_M_PUT_EVENTS_FAILURES, NULL, NULL),
                         eb_metrics_counter(m, EB_M_PUT_EVENTS_THROTTLED, NULL, NULL),
                         eb_metrics_counter(m, EB_M_PUT_EVENTS_ENTRIES, NULL, NULL),
                         eb_metrics_counter(m, EB_M_PUT_EVENTS_FAILED_ENTRIES, NULL, NULL),
                         eb_metrics_histogram(m, EB_M_PUT_EVENTS_LATENCY, NULL, NULL),
                         eb_metrics_histogram(m, EB_M_PUT_EVENTS_REQUEST_SIZE, NULL, NULL)};
    return a;
}

void eb_api_free(eb_api *a)
{
    free(a);
}

/* One request in flight: what the reply and the log line need. */
typedef struct {
    eb_api_reply_fn reply;
    void *ctx;
    char request_id[37];
    char op[64];
    char peer[64];
    uint64_t t0;
    const pe_metrics *pm; /* set for PutEvents requests: counted when answered */
    size_t body_bytes;
    size_t entries; /* of a PutEvents request that reached core */
} call;

/* Every PutEvents answer passes here once (from answer). Success = HTTP 200,
 * even when entries failed; entries and failed entries are counted for those. */
static void put_events_metrics(const call *cl, unsigned status, const char *body, size_t len, const char *err_type)
{
    const pe_metrics *pm = cl->pm;
    eb_counter_add(pm->calls, 1);
    if (status == 200) {
        eb_counter_add(pm->successes, 1);
        eb_counter_add(pm->entries, cl->entries);
        static const char key[] = "{\"FailedEntryCount\":"; /* how core renders the answer */
        if (len > sizeof key - 1 && !memcmp(body, key, sizeof key - 1))
            eb_counter_add(pm->failed_entries, strtoull(body + sizeof key - 1, NULL, 10));
    } else if (err_type && !strcmp(err_type, "ThrottlingException")) {
        eb_counter_add(pm->throttled, 1);
    } else {
        eb_counter_add(pm->failures, 1);
    }
    eb_histogram_observe(pm->latency, (double)(eb_mono_ns() - cl->t0) / 1e6);
    eb_histogram_observe(pm->size, (double)cl->body_bytes);
}

static void answer(call *cl, unsigned status, const char *body, size_t len, const char *err_type)
{
    eb_http_header h[2] = {{"x-amzn-RequestId", cl->request_id}, {"x-amzn-ErrorType", err_type}};
    if (cl->pm)
        put_events_metrics(cl, status, body, len, err_type);
    cl->reply(cl->ctx, status, CT_JSON11, h, err_type ? 2 : 1, body, len);
    double ms = (double)(eb_mono_ns() - cl->t0) / 1e6;
    eb_log_level lvl = status >= 500 ? EB_LOG_ERROR : status >= 400 ? EB_LOG_WARN : EB_LOG_DEBUG;
    if (eb_log_enabled(lvl))
        eb_log(lvl, "request", "op=%s status=%u ms=%.3f request_id=%s peer=%s%s%s", cl->op[0] ? cl->op : "-", status,
               ms, cl->request_id, cl->peer, err_type ? " error=" : "", err_type ? err_type : "");
}

static void answer_error(call *cl, unsigned status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void answer_error(call *cl, unsigned status, const char *type, const char *fmt, ...)
{
    /* messages can be long (AWS echoes whole request members): no fixed buffer */
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    int k = vasprintf(&msg, fmt, ap);
    va_end(ap);
    eb_buf b = {0};
    eb_buf_puts(&b, "{\"__type\":");
    eb_buf_json_str(&b, type, strlen(type));
    eb_buf_puts(&b, ",\"message\":");
    if (k >= 0)
        eb_buf_json_str(&b, msg, (size_t)k);
    else
        eb_buf_puts(&b, "\"\"");
    eb_buf_putc(&b, '}');
    free(msg);
    if (b.p)
        answer(cl, status, b.p, b.n, type);
    else
        answer(cl, 500, "{\"__type\":\"InternalFailure\"}", 28, "InternalFailure");
    eb_buf_free(&b);
}

static void answer_json(call *cl, json_t *resp)
{
    char *text = json_dumps(resp, JSON_COMPACT | JSON_REAL_PRECISION(13));
    if (!text) {
        answer_error(cl, 500, "InternalFailure", "Out of memory.");
        return;
    }
    answer(cl, 200, text, strlen(text), NULL);
    free(text);
}

static void answer_core_error(call *cl, const eb_core_error *e)
{
    answer_error(cl, e->http ? e->http : 400, e->type, "%s", e->message);
}

static const char *header(const eb_api_request *r, const char *name)
{
    for (size_t i = 0; i < r->nh; i++)
        if (!strcasecmp(r->hdrs[i].name, name))
            return r->hdrs[i].value;
    return NULL;
}

static unsigned deny(eb_sigv4_status st, unsigned deny_status)
{
    unsigned http = eb_sigv4_http_status(st);
    return deny_status && http < 500 ? deny_status : http;
}

/* SigV4: who is calling. Returns 0, or -1 after answering with the error
 * (with HTTP status deny_status when not 0, except for internal failures). */
static int authenticate(eb_api *a, const eb_api_request *r, call *cl, char *account, size_t alen, char *region,
                        size_t rlen, unsigned deny_status)
{
    snprintf(account, alen, "%s", a->cfg.default_account);
    snprintf(region, rlen, "%s", a->cfg.default_region);
    const char *auth = header(r, "Authorization");
    if (!auth) {
        if (a->cfg.ncreds) {
            answer_error(cl, deny_status ? deny_status : 400, "MissingAuthenticationTokenException",
                         "Missing Authentication Token");
            return -1;
        }
        return 0;
    }
    eb_sigv4_auth sa;
    eb_sigv4_error se;
    if (eb_sigv4_parse(auth, &sa, &se)) {
        answer_error(cl, deny(se.status, deny_status), se.code, "%s", se.message);
        return -1;
    }
    snprintf(region, rlen, "%s", sa.region);
    if (!a->cfg.ncreds)
        return 0;
    const eb_credential *cred = NULL;
    for (size_t i = 0; i < a->cfg.ncreds; i++)
        if (!strcmp(a->cfg.creds[i].access_key, sa.access_key))
            cred = &a->cfg.creds[i];
    if (!cred || header(r, "X-Amz-Security-Token")) {
        answer_error(cl, deny_status ? deny_status : 400, "UnrecognizedClientException",
                     "The security token included in the request is invalid.");
        return -1;
    }
    if (eb_sigv4_verify(&sa, "events", r->method, r->path, r->query ? r->query : "", r->hdrs, r->nh, r->body, r->len,
                        cred->secret, (int64_t)time(NULL), &se)) {
        answer_error(cl, deny(se.status, deny_status), se.code, "%s", se.message);
        return -1;
    }
    snprintf(account, alen, "%s", cred->account);
    return 0;
}

static void put_events_done(void *ctx, const char *resp, size_t len, const eb_core_error *e)
{
    call *cl = ctx;
    if (resp) {
        answer(cl, 200, resp, len, NULL);
    } else {
        answer_core_error(cl, e);
    }
    free(cl);
}

/* GET /metrics on the API's port: signed like any call when credentials are
 * configured (refused with 403 otherwise), open when not. */
static void serve_metrics(eb_api *a, const eb_api_request *r, call *cl)
{
    snprintf(cl->op, sizeof cl->op, "GET /metrics");
    if (strcmp(r->method, "GET")) {
        answer_error(cl, 405, "UnknownOperationException", "Metrics are read with GET /metrics, not %s.", r->method);
        return;
    }
    char account[64], region[80];
    if (a->cfg.ncreds && authenticate(a, r, cl, account, sizeof account, region, sizeof region, 403))
        return;
    eb_buf b = {0};
    if (eb_metrics_render(a->cfg.metrics, &b)) {
        eb_buf_free(&b);
        answer_error(cl, 500, "InternalFailure", "Out of memory.");
        return;
    }
    eb_http_header h = {"x-amzn-RequestId", cl->request_id};
    cl->reply(cl->ctx, 200, EB_METRICS_CONTENT_TYPE, &h, 1, b.p, b.n);
    eb_buf_free(&b);
}

void eb_api_serve(eb_api *a, const eb_api_request *r, eb_api_reply_fn reply, void *ctx)
{
    call local = {.reply = reply, .ctx = ctx, .t0 = eb_mono_ns()};
    call *cl = &local;
    eb_uuid4(cl->request_id);
    snprintf(cl->peer, sizeof cl->peer, "%s", r->peer ? r->peer : "-");

    if (!strcmp(r->method, "GET") && !strcmp(r->path, "/health")) {
        static const char ok[] = "{\"status\":\"ok\"}";
        eb_http_header h = {"x-amzn-RequestId", cl->request_id};
        reply(ctx, 200, "application/json", &h, 1, ok, sizeof ok - 1);
        return;
    }
    if (!strcmp(r->path, "/metrics") && a->cfg.metrics && a->cfg.metrics_here) {
        serve_metrics(a, r, cl);
        return;
    }
    if (strcmp(r->path, "/")) {
        answer_error(cl, 404, "UnknownOperationException", "No operation at %s %s.", r->method, r->path);
        return;
    }
    if (strcmp(r->method, "POST")) {
        answer_error(cl, 405, "UnknownOperationException", "Operations are called with POST /, not %s.", r->method);
        return;
    }
    const char *target = header(r, "X-Amz-Target");
    if (!target || strncmp(target, "AWSEvents.", 10) || !eb_core_has_op(target + 10) || strlen(target + 10) >= 64) {
        answer_error(cl, 400, "UnknownOperationException", "Unknown operation %s.", target ? target : "(no X-Amz-Target)");
        return;
    }
    snprintf(cl->op, sizeof cl->op, "%s", target + 10);
    if (!strcmp(cl->op, "PutEvents")) {
        cl->pm = &a->pm;
        cl->body_bytes = r->len;
    }
    const char *ct = header(r, "Content-Type");
    size_t ctl = ct ? strcspn(ct, ";") : 0;
    while (ctl && (ct[ctl - 1] == ' ' || ct[ctl - 1] == '\t'))
        ctl--;
    if (!ct || !((ctl == sizeof CT_JSON11 - 1 && !strncasecmp(ct, CT_JSON11, ctl)) ||
                 (ctl == 16 && !strncasecmp(ct, "application/json", 16)))) {
        answer_error(cl, 400, "SerializationException", "Unsupported Content-Type '%s'; use %s.", ct ? ct : "",
                     CT_JSON11);
        return;
    }
    if (r->too_large) {
        answer_error(cl, 413, "SerializationException", "The request body is larger than %zu bytes.",
                     a->cfg.max_body);
        return;
    }
    char account[64], region[80];
    if (authenticate(a, r, cl, account, sizeof account, region, sizeof region, 0))
        return;
    eb_error jerr;
    if (eb_json_check(r->body, r->len, EB_DEFAULT_MAX_DEPTH, &jerr) != EB_OK) {
        answer_error(cl, 400, "SerializationException", "Could not read the request body: %s", jerr.message);
        return;
    }
    eb_caller who = {account, region};
    if (!strcmp(cl->op, "PutEvents")) {
        /* the common PutEvents shape is read without building a document */
        eb_fastput *fp = malloc(sizeof *fp);
        if (fp && eb_fastput_parse(r->body, r->len, fp)) {
            call *heap = malloc(sizeof *heap);
            if (heap) {
                cl->entries = fp->n;
                *heap = *cl;
                eb_core_put_entries(a->core, &who, fp->entries, fp->n, put_events_done, heap);
            } else {
                answer_error(cl, 500, "InternalFailure", "Out of memory.");
            }
            eb_fastput_free(fp);
            free(fp);
            return;
        }
        free(fp);
    }
    json_error_t je;
    json_t *req = json_loadb(r->body, r->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!json_is_object(req)) {
        json_decref(req);
        answer_error(cl, 400, "SerializationException",
                     req ? "The request body must be a JSON object." : "The request body could not be read: %s",
                     je.text);
        return;
    }
    const char *code = NULL;
    eb_buf msg = {0};
    if (eb_shape_check(cl->op, req, &code, &msg)) {
        answer_error(cl, strcmp(code, "InternalException") ? 400 : 500, code, "%s", msg.p ? msg.p : "Invalid request.");
        eb_buf_free(&msg);
        json_decref(req);
        return;
    }
    eb_buf_free(&msg);
    if (!strcmp(cl->op, "PutEvents")) {
        call *heap = malloc(sizeof *heap);
        if (!heap) {
            json_decref(req);
            answer_error(cl, 500, "InternalFailure", "Out of memory.");
            return;
        }
        cl->entries = json_array_size(json_object_get(req, "Entries"));
        *heap = *cl;
        eb_core_put_events(a->core, &who, req, put_events_done, heap);
        json_decref(req);
        return;
    }
    eb_core_error e = {0};
    json_t *resp = eb_core_call(a->core, &who, cl->op, req, &e);
    json_decref(req);
    if (!resp) {
        answer_core_error(cl, &e);
        return;
    }
    answer_json(cl, resp);
    json_decref(resp);
}

/* ---- glue to the HTTP server ---- */
static void http_reply(void *ctx, unsigned status, const char *content_type, const eb_http_header *hdrs, size_t nh,
                       const char *body, size_t len)
{
    eb_http_respond(ctx, status, content_type, hdrs, nh, body, len);
}

void eb_api_http_handler(void *ctx, eb_http_request *hr)
{
    eb_api_request r = {0};
    r.method = eb_http_method(hr);
    r.path = eb_http_path(hr);
    r.query = eb_http_query(hr);
    r.hdrs = eb_http_headers(hr, &r.nh);
    r.body = eb_http_body(hr, &r.len);
    r.too_large = eb_http_body_too_large(hr);
    r.peer = eb_http_peer(hr);
    eb_api_serve(ctx, &r, http_reply, hr);
}

/* The metrics-only listener (--metrics-listen): GET /metrics, no auth. */
void eb_api_metrics_http_handler(void *ctx, eb_http_request *hr)
{
    static const char CT_TEXT[] = "text/plain; charset=utf-8";
    const char *method = eb_http_method(hr);
    if (strcmp(eb_http_path(hr), "/metrics")) {
        static const char msg[] = "Not found: this port serves GET /metrics only.\n";
        eb_http_respond(hr, 404, CT_TEXT, NULL, 0, msg, sizeof msg - 1);
        return;
    }
    if (strcmp(method, "GET")) {
        static const char msg[] = "Method not allowed: use GET /metrics.\n";
        eb_http_header allow = {"Allow", "GET"};
        eb_http_respond(hr, 405, CT_TEXT, &allow, 1, msg, sizeof msg - 1);
        return;
    }
    eb_buf b = {0};
    if (eb_metrics_render(ctx, &b)) {
        static const char msg[] = "Out of memory.\n";
        eb_http_respond(hr, 500, CT_TEXT, NULL, 0, msg, sizeof msg - 1);
    } else {
        eb_http_respond(hr, 200, EB_METRICS_CONTENT_TYPE, NULL, 0, b.p, b.n);
    }
    eb_buf_free(&b);
}
