/* The HTTP front: libmicrohttpd with an internal thread pool and keep-alive.
 *
 * The server reads each request whole (up to max_body bytes), then calls the
 * handler once on a pool thread. A body over max_body is not read: as soon as
 * it is known to be too large (from Content-Length, before any of it is read;
 * for a chunked body, when the limit is passed) the handler is called with
 * eb_http_body_too_large() = 1 and an empty body, its answer is sent at once
 * and the connection is closed after it (no 100 Continue is sent). The handler answers with eb_http_respond,
 * either before it returns or later from any thread (for example the store's
 * committer after a group commit); until then the connection is suspended
 * and costs no thread. Exactly one eb_http_respond per request. */
#ifndef EB_HTTP_H
#define EB_HTTP_H

#include <stddef.h>

typedef struct eb_http_server eb_http_server;
typedef struct eb_http_request eb_http_request;

typedef struct {
    const char *name; /* as received (case preserved) */
    const char *value;
} eb_http_header;

typedef struct {
    const char *host;        /* listen address, e.g. "127.0.0.1" or "::1" or "0.0.0.0" */
    unsigned port;           /* 0 = any free port (see eb_http_port) */
    unsigned threads;        /* pool size (0 = number of CPUs) */
    unsigned max_conns;      /* concurrent connections (0 = 1024) */
    unsigned conn_timeout_s; /* idle / stalled connection timeout (0 = 30 s) */
    size_t max_body;         /* larger bodies are not read (0 = 1 MiB); see eb_http_body_too_large */
} eb_http_config;

/* Called once per complete request, on a pool thread (which serves nothing
 * else meanwhile: keep it short, hand slow work to another thread and answer
 * from there). `req` stays valid until eb_http_respond. */
typedef void (*eb_http_handler_fn)(void *ctx, eb_http_request *req);

/* Start listening. On failure returns -1 with a message in err. */
int eb_http_start(const eb_http_config *cfg, eb_http_handler_fn fn, void *ctx, eb_http_server **out, char *err,
                  size_t errlen);
/* The port actually bound. */
unsigned eb_http_port(const eb_http_server *s);
/* Stop accepting, let in-flight requests finish (those whose handler was
 * called: in the handler, suspended, or being answered; waiting up to
 * drain_ms), close all connections (those still sending a request are not
 * waited for) and free the server.
 * Requests still unanswered after drain_ms get a 503
 * ServiceUnavailableException JSON answer from the server; an eb_http_respond
 * for them (even after eb_http_stop returned) returns -1 and releases them. */
void eb_http_stop(eb_http_server *s, unsigned drain_ms);

/* ---- request accessors (valid until eb_http_respond) ---- */
const char *eb_http_method(const eb_http_request *r);
const char *eb_http_path(const eb_http_request *r);  /* without the query string; raw, as sent (not percent-decoded) */
const char *eb_http_query(const eb_http_request *r); /* raw query string after '?', or "" */
/* First value of a header, case-insensitive name; NULL if absent. */
const char *eb_http_header_get(const eb_http_request *r, const char *name);
/* Every header in received order (repeated headers appear repeatedly). */
const eb_http_header *eb_http_headers(const eb_http_request *r, size_t *n);
const char *eb_http_body(const eb_http_request *r, size_t *len); /* NUL-terminated copy */
/* 1 when the body was longer than max_body (then the body is empty). */
int eb_http_body_too_large(const eb_http_request *r);
/* Peer address as text ("127.0.0.1:5555", "[::1]:5555"). */
const char *eb_http_peer(const eb_http_request *r);

/* Send the answer (body copied; extra headers added as given). Returns 0, or
 * -1 if the connection is already gone (the request is released anyway).
 * Best effort: a client that left while its request was suspended is only
 * noticed when the answer is written, so that case may still return 0. */
int eb_http_respond(eb_http_request *r, unsigned status, const char *content_type, const eb_http_header *extra,
                    size_t nextra, const void *body, size_t len);

#endif
