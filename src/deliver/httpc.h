/* Asynchronous HTTP client for the delivery engine: one event-loop thread per
 * client running a libcurl multi handle (curl_multi_poll, woken by
 * curl_multi_wakeup when another thread submits). No thread per request.
 *
 * - HTTP/1.1 only, keep-alive: connections are reused through the multi
 *   handle's connection cache; at most `max_host_connections` per host.
 * - Redirects are never followed (a 301 is reported as status 301).
 * - curl never adds `Expect: 100-continue` nor its default form Content-Type
 *   (the caller's headers are sent as given); a header line holding CR or LF
 *   fails the request (EB_HTTP_ERROR) instead of being sent; no signals
 *   (CURLOPT_NOSIGNAL); only http:// and https:// URLs; no proxy unless
 *   eb_httpc_opts.use_env_proxy.
 * - timeout_ms is enforced by the client thread from submit on, also for a
 *   request still waiting for a free connection (curl alone would not).
 * - Every callback runs exactly once, on the client's thread, for every
 *   request that eb_httpc_submit accepted (returned 0) — also when the client
 *   is freed first (EB_HTTP_CANCELLED). Callbacks must not block; they may
 *   call eb_httpc_submit (on the same or another client) but never
 *   eb_httpc_free on their own client.
 *
 * Ownership: eb_httpc_submit copies everything in the request; the caller's
 * request memory may be reused as soon as it returns. The result passed to a
 * callback (and its body) belongs to the client and is valid only during the
 * callback. */
#ifndef EB_DELIVER_HTTPC_H
#define EB_DELIVER_HTTPC_H

#include <stddef.h>
#include <stdint.h>

typedef struct eb_httpc eb_httpc;

typedef struct {
    const char *method;         /* "POST", "GET", "HEAD", "PUT", ... (required) */
    const char *url;            /* http:// or https:// (required) */
    const char *const *headers; /* NULL-terminated "Name: value" lines, may be NULL */
    const char *body;           /* copied; may be NULL when body_len == 0 */
    size_t body_len;
    long timeout_ms;            /* whole request, connect included; <= 0 means 5000; at most 24 h */
} eb_http_req;

typedef enum {
    EB_HTTP_RESPONSE = 0, /* got a status (any status, 1xx..5xx) */
    EB_HTTP_TIMEOUT,      /* timeout_ms passed (connecting or waiting) */
    EB_HTTP_REFUSED,      /* could not connect (refused, unreachable) */
    EB_HTTP_RESET,        /* reset / closed / other transport error mid-request */
    EB_HTTP_DNS,          /* host not resolvable */
    EB_HTTP_BADURL,       /* malformed URL or a scheme other than http/https */
    EB_HTTP_CANCELLED,    /* client shut down before the request completed */
    EB_HTTP_ERROR         /* anything else (TLS, out of memory, ...) */
} eb_http_outcome;

/* The result handed to the callback; valid only during the callback. */
typedef struct {
    eb_http_outcome outcome;
    long status;              /* HTTP status when outcome == EB_HTTP_RESPONSE, else 0 */
    int has_retry_after;      /* a parseable Retry-After header was in the response */
    int64_t retry_after_ms;   /* delta-seconds * 1000, or HTTP-date minus now; may be negative */
    const char *body;         /* first up to EB_HTTPC_BODY_MAX bytes of the response body */
    size_t body_len;          /* (NUL-terminated for convenience; may contain NULs) */
    char error[256];          /* human-readable cause ("" on RESPONSE); never holds request headers */
    double total_ms;          /* from submit to completion (includes queueing) */
} eb_http_result;

#define EB_HTTPC_BODY_MAX (64 * 1024)

typedef void (*eb_http_cb)(void *ctx, const eb_http_result *r);

typedef struct {
    long max_host_connections;  /* parallel connections per host; <= 0 means 64 */
    long max_total_connections; /* all hosts; <= 0 means no limit beyond per-host */
    int use_env_proxy;          /* honour http_proxy/https_proxy/no_proxy; default 0: never a proxy */
} eb_httpc_opts;

/* A client with default options (64 connections per host). NULL on failure
 * with a message in err (errlen bytes, may be 0). Free with eb_httpc_free. */
eb_httpc *eb_httpc_new(char *err, size_t errlen);
/* Same, with options (opts may be NULL). */
eb_httpc *eb_httpc_new_opts(const eb_httpc_opts *opts, char *err, size_t errlen);

/* Queue one request. Thread-safe; copies everything in req. On 0, cb(ctx, r)
 * will run exactly once on the client's thread. -1 (cb never runs) when
 * method/url/cb is NULL, memory runs out, or the client is shutting down.
 * Bad URLs are not refused here: they complete with EB_HTTP_BADURL. */
int eb_httpc_submit(eb_httpc *c, const eb_http_req *req, eb_http_cb cb, void *ctx);

/* Stops the thread and frees the client (NULL is fine). Requests not yet
 * completed complete with EB_HTTP_CANCELLED before this returns. Must not be
 * called from a callback of the same client; no eb_httpc_submit may start
 * after this has returned. */
void eb_httpc_free(eb_httpc *c);

/* "response", "timeout", ... for logs. */
const char *eb_http_outcome_name(eb_http_outcome o);

#endif
