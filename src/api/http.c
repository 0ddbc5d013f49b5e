/* The HTTP front on libmicrohttpd (see http.h).
 *
 * Threads: MHD runs an internal thread pool (epoll); every callback below runs
 * on the pool thread that owns the connection, except eb_http_respond (any
 * thread) and eb_http_stop (the caller's thread).
 *
 * One request = one eb_http_request, created in the URI-log callback (which
 * sees the raw request target before MHD cuts off the query and unescapes the
 * path) and referenced by MHD's per-request context pointer. Its life:
 *
 *   READING     headers, then body chunks (stored up to max_body) on the MHD
 *               thread
 *   IN_HANDLER  the handler runs on the MHD thread; an eb_http_respond made
 *               now (from this or another thread) only stores the answer
 *   SUSPENDED   the handler returned without answering: the connection is
 *               suspended (no thread, no polling); eb_http_respond stores the
 *               answer and resumes it
 *   RESUMING    answered, waiting for MHD to call the access handler again
 *   DONE        the answer is queued; MHD sends it
 *
 * A body over max_body is never read: the handler is called at once, with
 * too_large set and an empty body ("early"). With a declared Content-Length
 * that is the first access-handler call, where MHD still takes a response:
 * queued there, MHD sends no 100 Continue, skips the body and closes the
 * connection after the answer. A chunked body is only found too large in the
 * middle, where MHD 0.9.75 refuses MHD_queue_response (it returns MHD_NO and
 * would read the whole upload first). There the answer is written to the
 * socket directly (with Connection: close, then a FIN), MHD is told nothing,
 * and the rest of the upload is read and dropped for at most LINGER_MS (a
 * client still sending when the socket closed would get a reset instead of the
 * answer; curl stops sending once it sees the answer) before the connection is
 * closed by returning MHD_NO. So an early request keeps a serialized copy of
 * its answer (raw) besides the MHD response. If its handler does not answer
 * before returning, the connection is suspended as usual; resumed in the middle
 * of the body, the answer goes out with the next body data (or normally, at
 * the end of the body).
 *
 * Ownership: a request has two references, the connection's (dropped in the
 * NOTIFY_COMPLETED callback, which MHD runs for every request once it is over,
 * answered or not, client gone or not) and, once the handler is called, the
 * application's (dropped by its one eb_http_respond). The last one frees it,
 * so an eb_http_respond after the connection died (or after the server
 * stopped) only finds the "gone" mark and returns -1. State, refs and the
 * stored answer are guarded by the request's mutex; MHD_suspend_connection /
 * MHD_resume_connection are called with that mutex held, so they are ordered
 * and the connection cannot be completed in between (lock order: server mu ->
 * request mu -> MHD's internal mutex; MHD never calls us holding its own).
 *
 * Stop: stop accepting (quiesce + shutdown of the listen socket), wait, up to
 * drain_ms, for the requests whose handler was called (in the handler,
 * suspended, or their answer being sent) to complete; connections still
 * reading headers or a body, or idle, are not waited for. Then every
 * still-unanswered request is answered 503 for the application (a handler
 * returning later, or called later, gets the same), given a short grace to go
 * out, and MHD is stopped, which closes the remaining connections (MHD refuses
 * to stop with suspended connections, so none may be left). */
#define _GNU_SOURCE
#include "api/http.h"

#include "util/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_BODY ((size_t)1 << 20)
#define DEFAULT_MAX_CONNS 1024u
#define DEFAULT_TIMEOUT_S 30u
#define MAX_THREADS 256u
/* After drain_ms, the time the 503 answers get to leave before MHD stops. */
#define ABANDON_GRACE_MS 250u
/* After an answer written in the middle of a body: how long the rest of the
 * upload is still read (and dropped) before the connection is closed. */
#define LINGER_MS 2000u
/* Upper bound for writing such an answer (it fits the socket buffer). */
#define RAW_SEND_MS 1000

enum req_state { RS_READING, RS_IN_HANDLER, RS_SUSPENDED, RS_RESUMING, RS_DONE };

struct eb_http_request {
    /* ---- shared between threads: guarded by mu ---- */
    pthread_mutex_t mu;
    int refs;                   /* connection's + application's */
    int app_ref;                /* the application still owes eb_http_respond */
    int conn_gone;              /* NOTIFY_COMPLETED ran; conn is invalid */
    int answered;               /* an answer was stored (resp may be NULL on OOM) */
    enum req_state state;
    struct MHD_Response *resp;  /* stored answer not yet handed to MHD */
    eb_buf raw;                 /* the same, serialized (early requests only) */
    unsigned status;
    struct MHD_Connection *conn;

    /* ---- MHD thread only (and the server list under srv->mu) ---- */
    eb_http_server *srv;
    eb_http_request *prev, *next; /* srv->head list, under srv->mu */
    int started;                  /* the access handler saw the headers */
    int handled;                  /* counted in srv->handled */
    int raw_sent;                 /* the answer was written early; dropping the rest */
    uint64_t linger_end_ns;

    /* ---- written on the MHD thread before the handler; read-only after ---- */
    char *target; /* raw request target, split in place into path and query */
    const char *path, *query;
    char *method;
    eb_http_header *hdrs;
    size_t nhdrs;
    char *hdr_mem;
    eb_buf body;
    size_t max_body;
    int too_large;
    int early; /* the handler is called before the body is complete */
    char peer[72];
};

struct eb_http_server {
    struct MHD_Daemon *d;
    eb_http_handler_fn fn;
    void *ctx;
    size_t max_body;
    unsigned port;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* signalled when handled drops */
    eb_http_request *head; /* requests created and not yet completed */
    size_t handled;        /* ... of which the handler was called (and not answered early) */
    int starting;
    char start_err[256];

    atomic_int stopping; /* answers carry Connection: close */
    atomic_int abandon;  /* drain time is over: unanswered requests get 503 */
};

static const char unavailable_body[] =
    "{\"__type\":\"ServiceUnavailableException\",\"message\":\"The server is shutting down.\"}";

/* ---- requests ------------------------------------------------------------------ */

static void req_free(eb_http_request *r)
{
    pthread_mutex_destroy(&r->mu);
    free(r->target);
    free(r->method);
    free(r->hdrs);
    free(r->hdr_mem);
    eb_buf_free(&r->body);
    eb_buf_free(&r->raw);
    free(r);
}

/* Drop one reference with r->mu held; unlocks, frees on the last one. */
static void req_unref_unlock(eb_http_request *r)
{
    int last = --r->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (last)
        req_free(r);
}

static struct MHD_Response *build_response(const char *content_type, const eb_http_header *extra, size_t nextra,
                                           const void *body, size_t len)
{
    if (!body)
        len = 0;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, len ? (void *)(uintptr_t)body : (void *)(uintptr_t) "",
                                        MHD_RESPMEM_MUST_COPY);
    if (!resp) {
        eb_log(EB_LOG_ERROR, "http: cannot create response", "len=%zu", len);
        return NULL;
    }
    if (content_type && *content_type &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES)
        eb_log(EB_LOG_ERROR, "http: bad response header", "name=Content-Type");
    for (size_t i = 0; i < nextra; i++) {
        if (!extra[i].name || !extra[i].value)
            continue;
        if (MHD_add_response_header(resp, extra[i].name, extra[i].value) != MHD_YES)
            eb_log(EB_LOG_ERROR, "http: bad response header", "name=\"%.64s\"", extra[i].name);
    }
    return resp;
}

static int header_ok(const char *s)
{
    return s && !strpbrk(s, "\r\n");
}

/* The answer as bytes on the wire, for writing it ourselves (early requests).
 * Returns -1 when out of memory. */
static int build_raw(eb_buf *out, const char *method, unsigned status, const char *content_type,
                     const eb_http_header *extra, size_t nextra, const void *body, size_t len)
{
    if (!body)
        len = 0;
    const char *reason = MHD_get_reason_phrase_for(status);
    char date[64];
    struct tm tm;
    time_t now = time(NULL);
    if (!gmtime_r(&now, &tm) || !strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm))
        date[0] = 0;
    int rc = eb_buf_printf(out, "HTTP/1.1 %u %s\r\n", status, reason && *reason ? reason : "Unknown");
    if (content_type && *content_type && header_ok(content_type))
        rc |= eb_buf_printf(out, "Content-Type: %s\r\n", content_type);
    for (size_t i = 0; i < nextra; i++)
        if (header_ok(extra[i].name) && *extra[i].name && header_ok(extra[i].value) &&
            strcasecmp(extra[i].name, "Connection") != 0 && strcasecmp(extra[i].name, "Content-Length") != 0)
            rc |= eb_buf_printf(out, "%s: %s\r\n", extra[i].name, extra[i].value);
    if (date[0])
        rc |= eb_buf_printf(out, "Date: %s\r\n", date);
    rc |= eb_buf_printf(out, "Content-Length: %zu\r\nConnection: close\r\n\r\n", len);
    if (len && strcasecmp(method ? method : "", "HEAD") != 0)
        rc |= eb_buf_append(out, body, len);
    if (rc != 0) {
        eb_buf_free(out);
        return -1;
    }
    return 0;
}

/* Store the server's 503 as the answer, with r->mu held. */
static void answer_unavailable_locked(eb_http_request *r)
{
    static const eb_http_header retry = {"Retry-After", "1"};
    r->resp = build_response("application/x-amz-json-1.1", &retry, 1, unavailable_body, sizeof unavailable_body - 1);
    if (r->early)
        build_raw(&r->raw, r->method, 503, "application/x-amz-json-1.1", &retry, 1, unavailable_body,
                  sizeof unavailable_body - 1);
    r->status = 503;
    r->answered = 1;
}

/* The request no longer counts for eb_http_stop. MHD thread. */
static void req_uncount(eb_http_server *s, eb_http_request *r)
{
    pthread_mutex_lock(&s->mu);
    if (r->handled) {
        r->handled = 0;
        s->handled--;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

/* Hand the stored answer to MHD. Called on the MHD thread with r->mu held;
 * unlocks. */
static enum MHD_Result queue_answer_unlock(eb_http_server *s, eb_http_request *r, struct MHD_Connection *conn)
{
    struct MHD_Response *resp = r->resp;
    unsigned status = r->status;
    r->resp = NULL;
    r->state = RS_DONE;
    pthread_mutex_unlock(&r->mu);
    if (!resp)
        return MHD_NO; /* could not build one: close the connection */
    if (atomic_load(&s->stopping))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    if (ok != MHD_YES)
        eb_log(EB_LOG_ERROR, "http: cannot queue response", "status=%u", status);
    return ok;
}

/* Write the stored answer to the socket ourselves, in the middle of the body
 * (where MHD takes no response). Called on the MHD thread with r->mu held;
 * unlocks. */
static enum MHD_Result send_raw_unlock(eb_http_server *s, eb_http_request *r, struct MHD_Connection *conn)
{
    eb_buf raw = r->raw;
    struct MHD_Response *resp = r->resp;
    memset(&r->raw, 0, sizeof r->raw);
    r->resp = NULL;
    r->state = RS_DONE;
    pthread_mutex_unlock(&r->mu);
    if (resp)
        MHD_destroy_response(resp);
    r->raw_sent = 1;
    r->linger_end_ns = eb_mono_ns() + (uint64_t)LINGER_MS * 1000000u;
    req_uncount(s, r);

    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!raw.p || !ci || ci->connect_fd == MHD_INVALID_SOCKET) {
        eb_buf_free(&raw);
        return MHD_NO;
    }
    int fd = ci->connect_fd;
    uint64_t end = eb_mono_ns() + (uint64_t)RAW_SEND_MS * 1000000u;
    size_t off = 0;
    while (off < raw.n) {
        ssize_t k = send(fd, raw.p + off, raw.n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0) {
            off += (size_t)k;
            continue;
        }
        uint64_t now = eb_mono_ns();
        if (k < 0 && errno == EINTR)
            continue;
        if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) || now >= end)
            break;
        struct pollfd p = {fd, POLLOUT, 0};
        poll(&p, 1, (int)((end - now) / 1000000u) + 1);
    }
    int ok = off == raw.n;
    eb_buf_free(&raw);
    if (!ok)
        return MHD_NO;
    shutdown(fd, SHUT_WR); /* the answer is complete; MHD writes nothing more here */
    return MHD_YES;
}

/* ---- MHD callbacks ---------------------------------------------------------------- */

/* Runs once per request, after the request line, before MHD splits off the
 * query and unescapes the path: the raw target is kept as is. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    eb_http_server *s = cls;
    eb_http_request *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->target = strdup(uri ? uri : "");
    if (!r->target || pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r->target);
        free(r);
        return NULL;
    }
    char *q = strchr(r->target, '?');
    if (q) {
        *q = 0;
        r->query = q + 1;
    } else {
        r->query = "";
    }
    r->path = r->target;
    r->refs = 1;
    r->state = RS_READING;
    r->conn = conn;
    r->srv = s;
    r->max_body = s->max_body;

    pthread_mutex_lock(&s->mu);
    r->next = s->head;
    if (s->head)
        s->head->prev = r;
    s->head = r;
    pthread_mutex_unlock(&s->mu);
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    eb_http_server *s = cls;
    eb_http_request *r = *con_cls;
    (void)conn;
    (void)toe;
    if (!r)
        return;
    *con_cls = NULL;

    pthread_mutex_lock(&s->mu);
    if (r->prev)
        r->prev->next = r->next;
    else
        s->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    if (r->handled)
        s->handled--;
    r->handled = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);

    pthread_mutex_lock(&r->mu);
    struct MHD_Response *resp = r->resp; /* answered but never queued */
    r->resp = NULL;
    r->conn_gone = 1;
    r->conn = NULL;
    req_unref_unlock(r);
    if (resp)
        MHD_destroy_response(resp);
}

struct hdr_walk {
    eb_http_header *h;
    char *mem;
    size_t n, bytes;
};

static enum MHD_Result hdr_measure(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct hdr_walk *w = cls;
    (void)kind;
    w->n++;
    w->bytes += strlen(key ? key : "") + strlen(value ? value : "") + 2;
    return MHD_YES;
}

static enum MHD_Result hdr_copy(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct hdr_walk *w = cls;
    (void)kind;
    size_t kl = strlen(key ? key : ""), vl = strlen(value ? value : "");
    if (w->bytes < kl + vl + 2)
        return MHD_NO; /* cannot happen: the headers do not change in between */
    memcpy(w->mem, key ? key : "", kl + 1);
    w->h[w->n].name = w->mem;
    w->mem += kl + 1;
    memcpy(w->mem, value ? value : "", vl + 1);
    w->h[w->n].value = w->mem;
    w->mem += vl + 1;
    w->bytes -= kl + vl + 2;
    w->n++;
    return MHD_YES;
}

static void format_peer(eb_http_request *r, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char ip[INET6_ADDRSTRLEN] = "?";
    if (!ci || !ci->client_addr) {
        snprintf(r->peer, sizeof r->peer, "?");
        return;
    }
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(r->peer, sizeof r->peer, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(r->peer, sizeof r->peer, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(r->peer, sizeof r->peer, "?");
    }
}

/* First access-handler call: the headers are complete. */
static int req_begin(eb_http_request *r, struct MHD_Connection *conn, const char *method)
{
    r->method = strdup(method ? method : "");
    if (!r->method)
        return -1;
    struct hdr_walk w = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, hdr_measure, &w);
    if (w.n) {
        r->hdrs = calloc(w.n, sizeof *r->hdrs);
        r->hdr_mem = malloc(w.bytes);
        if (!r->hdrs || !r->hdr_mem)
            return -1;
        struct hdr_walk c = {r->hdrs, r->hdr_mem, 0, w.bytes};
        MHD_get_connection_values(conn, MHD_HEADER_KIND, hdr_copy, &c);
        r->nhdrs = c.n;
    }
    format_peer(r, conn);

    /* A declared length over the limit: store nothing from the start. */
    const char *cl = eb_http_header_get(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && *cl) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if (errno == ERANGE || v > r->max_body)
            r->too_large = 1;
        else if (*end == 0 && v > 0) {
            /* Exactly the announced size (eb_buf_reserve would round up to
             * a power of two). */
            r->body.p = malloc((size_t)v + 1);
            if (!r->body.p)
                return -1;
            r->body.p[0] = 0;
            r->body.cap = (size_t)v + 1;
        }
    }
    return 0;
}

static void body_feed(eb_http_request *r, const char *data, size_t n)
{
    if (n > r->max_body - r->body.n) {
        r->too_large = 1;
        eb_buf_free(&r->body);
        return;
    }
    if (eb_buf_append(&r->body, data, n) != 0) {
        /* Out of memory: the handler sees it as a body it cannot have. */
        eb_log(EB_LOG_ERROR, "http: out of memory reading body", "len=%zu", r->body.n + n);
        r->too_large = 1;
        eb_buf_free(&r->body);
    }
}

/* Call the handler (MHD thread), then queue its answer, or write it ourselves
 * in the middle of a body (midbody), or suspend the connection until it
 * comes. */
static enum MHD_Result run_handler(eb_http_server *s, eb_http_request *r, struct MHD_Connection *conn, int midbody)
{
    pthread_mutex_lock(&r->mu);
    r->state = RS_IN_HANDLER;
    r->refs++;
    r->app_ref = 1;
    pthread_mutex_unlock(&r->mu);

    pthread_mutex_lock(&s->mu);
    r->handled = 1;
    s->handled++;
    pthread_mutex_unlock(&s->mu);

    s->fn(s->ctx, r);

    pthread_mutex_lock(&r->mu);
    if (!r->answered) {
        if (!atomic_load(&s->abandon)) {
            r->state = RS_SUSPENDED;
            MHD_suspend_connection(conn);
            pthread_mutex_unlock(&r->mu);
            return MHD_YES;
        }
        /* The server is stopping and done waiting: answer for the application
         * (its eb_http_respond will return -1). */
        answer_unavailable_locked(r);
    }
    if (midbody)
        return send_raw_unlock(s, r, conn);
    return queue_answer_unlock(s, r, conn);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    eb_http_server *s = cls;
    eb_http_request *r = *con_cls;
    (void)url;
    (void)version;
    if (!r) {
        eb_log(EB_LOG_ERROR, "http: out of memory starting request", NULL);
        return MHD_NO; /* close */
    }

    if (!r->started) {
        r->started = 1;
        if (req_begin(r, conn, method) != 0) {
            eb_log(EB_LOG_ERROR, "http: out of memory reading request", NULL);
            return MHD_NO;
        }
        if (!r->too_large)
            return MHD_YES;
        /* The declared length is over the limit: answer now. An answer queued
         * in this first call makes MHD skip the body (no 100 Continue) and
         * close the connection after it. */
        r->early = 1;
        return run_handler(s, r, conn, 0);
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->raw_sent) /* answered early: drop the rest for a while, then close */
            return eb_mono_ns() < r->linger_end_ns ? MHD_YES : MHD_NO;
        pthread_mutex_lock(&r->mu);
        enum req_state st = r->state;
        if (st == RS_RESUMING) /* an early answer that came later */
            return send_raw_unlock(s, r, conn);
        pthread_mutex_unlock(&r->mu);
        if (st == RS_DONE)
            return MHD_YES; /* answered in the first call: MHD drops the body */
        if (st != RS_READING)
            return MHD_NO; /* not expected from MHD */
        body_feed(r, upload_data, n);
        if (!r->too_large)
            return MHD_YES;
        /* Over the limit in the middle of a (chunked) body: answer now instead
         * of reading the rest. */
        r->early = 1;
        return run_handler(s, r, conn, 1);
    }

    /* The request is complete (first time) or was resumed. */
    if (r->raw_sent)
        return MHD_NO; /* the answer went out early: close */
    pthread_mutex_lock(&r->mu);
    if (r->state == RS_RESUMING)
        return queue_answer_unlock(s, r, conn);
    if (r->state != RS_READING) {
        pthread_mutex_unlock(&r->mu);
        return MHD_NO; /* not expected from MHD */
    }
    pthread_mutex_unlock(&r->mu);
    return run_handler(s, r, conn, 0);
}

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    eb_http_server *s = cls;
    char msg[256];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0)
        return;
    for (char *p = msg; *p; p++)
        if (*p == '"' || *p == '\n' || *p == '\r')
            *p = *p == '"' ? '\'' : ' ';
    for (size_t k = strlen(msg); k && msg[k - 1] == ' '; k--)
        msg[k - 1] = 0;
    /* Our MHD_NO answers: each such path logs for itself when it is a problem
     * (closing after an early answer is not one). */
    if (strstr(msg, "Application reported internal error"))
        return;
    pthread_mutex_lock(&s->mu);
    int starting = s->starting;
    if (starting)
        snprintf(s->start_err, sizeof s->start_err, "%s", msg);
    pthread_mutex_unlock(&s->mu);
    if (!starting)
        eb_log(EB_LOG_WARN, "http: libmicrohttpd", "detail=\"%s\"", msg);
}

/* ---- server ----------------------------------------------------------------------- */

static void deadline_after(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void server_free(eb_http_server *s)
{
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int eb_http_start(const eb_http_config *cfg, eb_http_handler_fn fn, void *ctx, eb_http_server **out, char *err,
                  size_t errlen)
{
    static const eb_http_config defaults = {0};
    char dummy[1];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = 0;
    if (out)
        *out = NULL;
    if (!fn || !out) {
        snprintf(err, errlen, "http: no handler or result pointer");
        return -1;
    }
    if (!cfg)
        cfg = &defaults;
    if (cfg->port > 65535) {
        snprintf(err, errlen, "http: port %u out of range", cfg->port);
        return -1;
    }

    const char *host = cfg->host && *cfg->host ? cfg->host : "0.0.0.0";
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
    if (getaddrinfo(host, NULL, &hints, &ai) != 0 || !ai || ai->ai_addrlen > sizeof ss ||
        (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)) {
        if (ai)
            freeaddrinfo(ai);
        snprintf(err, errlen, "http: listen address '%s' is not an IPv4 or IPv6 literal", host);
        return -1;
    }
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    int v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    if (v6)
        ((struct sockaddr_in6 *)(void *)&ss)->sin6_port = htons((uint16_t)cfg->port);
    else
        ((struct sockaddr_in *)(void *)&ss)->sin_port = htons((uint16_t)cfg->port);

    unsigned max_conns = cfg->max_conns ? cfg->max_conns : DEFAULT_MAX_CONNS;
    unsigned timeout = cfg->conn_timeout_s ? cfg->conn_timeout_s : DEFAULT_TIMEOUT_S;
    unsigned threads = cfg->threads;
    if (!threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)n : 1u;
    }
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if (threads > max_conns)
        threads = max_conns; /* MHD splits the connection limit among the pool */

    eb_http_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "http: out of memory");
        return -1;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    s->fn = fn;
    s->ctx = ctx;
    s->max_body = cfg->max_body ? cfg->max_body : DEFAULT_MAX_BODY;
    s->starting = 1;

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_AUTO;
    if (v6)
        flags |= MHD_USE_IPv6;
    /* The logger first: MHD reports problems with later options through it. A
     * pool of 1 is spelled 0 (MHD warns about 1). */
    s->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_access, s,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_THREAD_POOL_SIZE, threads > 1 ? threads : 0u,
                            MHD_OPTION_CONNECTION_LIMIT, max_conns,
                            MHD_OPTION_CONNECTION_TIMEOUT, timeout,
                            MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_END);
    pthread_mutex_lock(&s->mu);
    s->starting = 0;
    pthread_mutex_unlock(&s->mu);
    if (!s->d) {
        snprintf(err, errlen, "http: cannot listen on %s%s%s:%u: %s", v6 ? "[" : "", host, v6 ? "]" : "",
                 cfg->port, s->start_err[0] ? s->start_err : "libmicrohttpd failed to start");
        server_free(s);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    *out = s;
    return 0;
}

unsigned eb_http_port(const eb_http_server *s)
{
    return s ? s->port : 0;
}

void eb_http_stop(eb_http_server *s, unsigned drain_ms)
{
    if (!s)
        return;
    atomic_store(&s->stopping, 1);
    MHD_socket lfd = MHD_quiesce_daemon(s->d);
    /* MHD no longer accepts, but the kernel would keep queueing new clients
     * on the listen socket until it is closed (only allowed after
     * MHD_stop_daemon): shut it down so they are refused right away. */
    if (lfd != MHD_INVALID_SOCKET)
        shutdown(lfd, SHUT_RDWR);

    /* Wait for the requests the application has (in the handler, suspended,
     * or answered and being sent); connections still reading a request are
     * closed by MHD_stop_daemon below. */
    struct timespec dl;
    deadline_after(&dl, drain_ms);
    pthread_mutex_lock(&s->mu);
    while (s->handled > 0)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT)
            break;
    /* From now on a handler that returns without answering (including one
     * called from here on) gets the 503 at once instead of being suspended. */
    atomic_store(&s->abandon, 1);
    for (eb_http_request *r = s->head; r; r = r->next) {
        pthread_mutex_lock(&r->mu);
        if (r->state == RS_SUSPENDED && !r->answered && !r->conn_gone) {
            answer_unavailable_locked(r);
            r->state = RS_RESUMING;
            MHD_resume_connection(r->conn);
        }
        pthread_mutex_unlock(&r->mu);
    }
    deadline_after(&dl, ABANDON_GRACE_MS);
    while (s->handled > 0)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&s->mu);

    MHD_stop_daemon(s->d);
    if (lfd != MHD_INVALID_SOCKET)
        close(lfd);
    server_free(s);
}

/* ---- request accessors ---------------------------------------------------------------- */

const char *eb_http_method(const eb_http_request *r)
{
    return r->method ? r->method : "";
}

const char *eb_http_path(const eb_http_request *r)
{
    return r->path;
}

const char *eb_http_query(const eb_http_request *r)
{
    return r->query;
}

const char *eb_http_header_get(const eb_http_request *r, const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < r->nhdrs; i++)
        if (strcasecmp(r->hdrs[i].name, name) == 0)
            return r->hdrs[i].value;
    return NULL;
}

const eb_http_header *eb_http_headers(const eb_http_request *r, size_t *n)
{
    if (n)
        *n = r->nhdrs;
    return r->hdrs;
}

const char *eb_http_body(const eb_http_request *r, size_t *len)
{
    if (r->too_large || !r->body.p) {
        if (len)
            *len = 0;
        return "";
    }
    if (len)
        *len = r->body.n;
    return r->body.p;
}

int eb_http_body_too_large(const eb_http_request *r)
{
    return r->too_large;
}

const char *eb_http_peer(const eb_http_request *r)
{
    return r->peer;
}

int eb_http_respond(eb_http_request *r, unsigned status, const char *content_type, const eb_http_header *extra,
                    size_t nextra, const void *body, size_t len)
{
    if (!r)
        return -1;
    if (status < 100 || status > 999) {
        eb_log(EB_LOG_ERROR, "http: invalid status, answering 500", "status=%u", status);
        status = 500;
    }
    struct MHD_Response *resp = build_response(content_type, extra, nextra, body, len);

    pthread_mutex_lock(&r->mu);
    if (!r->app_ref) {
        /* A second eb_http_respond: a caller bug (and r may be gone already). */
        pthread_mutex_unlock(&r->mu);
        if (resp)
            MHD_destroy_response(resp);
        return -1;
    }
    r->app_ref = 0;
    int rc = 0;
    if (r->conn_gone || r->answered) {
        rc = -1; /* the client left, or the server answered 503 while stopping */
    } else {
        if (r->early && build_raw(&r->raw, r->method, status, content_type, extra, nextra, body, len) != 0)
            eb_log(EB_LOG_ERROR, "http: out of memory building an early answer", "len=%zu", len);
        r->resp = resp;
        resp = NULL;
        r->status = status;
        r->answered = 1;
        if (r->state == RS_SUSPENDED) {
            r->state = RS_RESUMING;
            MHD_resume_connection(r->conn);
        }
        /* RS_IN_HANDLER: the MHD thread queues it when the handler returns. */
    }
    req_unref_unlock(r);
    if (resp)
        MHD_destroy_response(resp);
    return rc;
}
