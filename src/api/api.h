/* The AWS JSON 1.1 front: routing, SigV4, body parsing, the shape check, the
 * call into core/, and AWS-shaped answers (reference §1).
 *
 *   POST /  X-Amz-Target: AWSEvents.<Op>  -> the operation
 *   GET /health                          -> 200 {"status":"ok"}
 *   GET /metrics                         -> Prometheus text (when metrics_here; signed
 *                                           when credentials are configured, else 403)
 *
 * Transport-free: eb_api_serve takes a parsed request and answers through a
 * callback (possibly later, from the store's committer thread, for
 * PutEvents). api/server.c glues it to the HTTP server; fuzz/fuzz_request.c
 * calls it directly. */
#ifndef EB_API_H
#define EB_API_H

#include "../core/core.h"
#include "../util/metrics.h"
#include "http.h"

#include <stddef.h>

typedef struct {
    const char *access_key;
    const char *secret;
    const char *account;
} eb_credential;

typedef struct {
    const char *default_account; /* "000000000000" */
    const char *default_region;  /* "us-east-1" */
    const eb_credential *creds;  /* with any, signatures are verified */
    size_t ncreds;
    size_t max_body; /* request bodies above this are refused (413) */
    eb_metrics *metrics; /* PutEvents calls are counted here (NULL: not counted); must outlive the api */
    int metrics_here;    /* serve GET /metrics (needs metrics) */
} eb_api_config;

typedef struct eb_api eb_api;

/* The api keeps pointers into cfg's strings and creds: they must outlive it. */
eb_api *eb_api_new(const eb_api_config *cfg, eb_core *core);
void eb_api_free(eb_api *a);

typedef struct {
    const char *method, *path, *query;
    const eb_http_header *hdrs; /* all headers as received */
    size_t nh;
    const char *body; /* NUL-terminated */
    size_t len;
    int too_large;    /* the body was longer than the server reads */
    const char *peer; /* for logs */
} eb_api_request;

/* The answer: HTTP status, Content-Type, extra headers and the body. Called
 * exactly once per eb_api_serve, from the calling thread or later from
 * another one; the pointers are valid only during the call. */
typedef void (*eb_api_reply_fn)(void *ctx, unsigned status, const char *content_type, const eb_http_header *hdrs,
                                size_t nh, const char *body, size_t len);

void eb_api_serve(eb_api *a, const eb_api_request *req, eb_api_reply_fn reply, void *ctx);

/* The HTTP server's handler: ctx is the eb_api. */
void eb_api_http_handler(void *ctx, eb_http_request *r);

/* A metrics-only HTTP server's handler (serve --metrics-listen): ctx is the
 * eb_metrics. GET /metrics -> 200 with the rendering, unauthenticated; any
 * other path 404, another method 405 (plain text). */
void eb_api_metrics_http_handler(void *ctx, eb_http_request *r);

#endif
