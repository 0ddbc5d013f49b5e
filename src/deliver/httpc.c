/* Asynchronous HTTP client on the libcurl multi interface (see httpc.h).
 *
 * Threads: eb_httpc_submit (any thread) copies the request into one block,
 * appends it to the client's inbox under the mutex and, when the inbox was
 * empty, wakes the loop with curl_multi_wakeup (still under the mutex, so a
 * concurrent eb_httpc_free never sees a half-done wakeup). Everything else —
 * easy handles, the multi handle, callbacks — lives on the loop thread:
 *
 *   loop: take the inbox -> set up an easy handle per request, add it
 *         curl_multi_perform, then curl_multi_info_read -> callbacks
 *         curl_multi_poll (woken by sockets, curl's timers or a submit)
 *
 * On shutdown the loop cancels the inbox and every transfer still in the
 * multi handle (EB_HTTP_CANCELLED) before it returns.
 *
 * Easy handles are kept in a small free list (curl_easy_reset between uses)
 * so steady traffic allocates little; connections and the DNS cache belong to
 * the multi handle, so they are shared by every request of the client. */
#define _GNU_SOURCE
#include "deliver/httpc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/util.h"

#define DEFAULT_TIMEOUT_MS 5000L
#define MAX_TIMEOUT_MS (24L * 3600 * 1000)
#define DEFAULT_HOST_CONNS 64L
#define EASY_POOL_MAX 256

/* One request, from submit to callback. Allocated as one block: the struct,
 * then method, url, header lines and body (the strings point into it). */
typedef struct xfer {
    struct xfer *next; /* the inbox */
    size_t heap_idx;   /* in the deadline heap, while in the multi handle */
    CURL *easy;
    struct curl_slist *hdrs;
    const char *method, *url, *body;
    size_t body_len;
    char **hdr_lines; /* NULL-terminated, into the block */
    long timeout_ms;
    eb_http_cb cb;
    void *ctx;
    uint64_t start_ns, deadline_ns;
    eb_buf resp;      /* first EB_HTTPC_BODY_MAX bytes of the body */
    char errbuf[CURL_ERROR_SIZE];
} xfer;

struct eb_httpc {
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t mu;
    xfer *inbox, *inbox_tail; /* under mu */
    int stopping;             /* under mu */
    /* loop thread only: */
    /* every transfer in the multi handle, a min-heap on deadline_ns: curl
     * applies no timeout to a transfer queued for a free connection (the
     * per-host limit), so the loop enforces every deadline itself */
    xfer **heap;
    size_t nheap, heap_cap;
    CURL *pool[EASY_POOL_MAX];
    int npool;
    int use_env_proxy;
};

/* the client whose loop runs on this thread (NULL elsewhere) */
static _Thread_local eb_httpc *loop_client;

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

const char *eb_http_outcome_name(eb_http_outcome o) {
    switch (o) {
    case EB_HTTP_RESPONSE: return "response";
    case EB_HTTP_TIMEOUT: return "timeout";
    case EB_HTTP_REFUSED: return "refused";
    case EB_HTTP_RESET: return "reset";
    case EB_HTTP_DNS: return "dns";
    case EB_HTTP_BADURL: return "badurl";
    case EB_HTTP_CANCELLED: return "cancelled";
    case EB_HTTP_ERROR: return "error";
    }
    return "unknown";
}

static eb_http_outcome classify(CURLcode rc) {
    switch (rc) {
    case CURLE_OK: return EB_HTTP_RESPONSE;
    case CURLE_OPERATION_TIMEDOUT: return EB_HTTP_TIMEOUT;
    case CURLE_COULDNT_CONNECT: return EB_HTTP_REFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return EB_HTTP_DNS;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return EB_HTTP_RESET;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return EB_HTTP_BADURL;
    default: return EB_HTTP_ERROR;
    }
}

/* ---- submit (any thread) ------------------------------------------------------ */

static int has_header(const char *const *h, const char *name) {
    size_t n = strlen(name);
    for (; h && *h; h++)
        if (strncasecmp(*h, name, n) == 0 && (*h)[n] == ':')
            return 1;
    return 0;
}

static xfer *xfer_new(const eb_http_req *req) {
    size_t nh = 0, sz = sizeof(xfer);
    size_t lm = strlen(req->method) + 1, lu = strlen(req->url) + 1;
    sz += lm + lu + req->body_len + 1;
    for (const char *const *h = req->headers; h && *h; h++, nh++)
        sz += strlen(*h) + 1;
    sz += (nh + 1) * sizeof(char *);
    xfer *x = calloc(1, sz);
    if (!x)
        return NULL;
    char *p = (char *)(x + 1);
    /* the pointer array first (aligned: xfer's size is a multiple of its alignment) */
    x->hdr_lines = (char **)p;
    p += (nh + 1) * sizeof(char *);
    memcpy(p, req->method, lm);
    x->method = p;
    p += lm;
    memcpy(p, req->url, lu);
    x->url = p;
    p += lu;
    size_t i = 0;
    for (const char *const *h = req->headers; h && *h; h++) {
        size_t l = strlen(*h) + 1;
        memcpy(p, *h, l);
        x->hdr_lines[i++] = p;
        p += l;
    }
    x->hdr_lines[i] = NULL;
    if (req->body_len)
        memcpy(p, req->body, req->body_len);
    x->body = p;
    x->body_len = req->body_len;
    x->timeout_ms = req->timeout_ms <= 0 ? DEFAULT_TIMEOUT_MS : req->timeout_ms > MAX_TIMEOUT_MS ? MAX_TIMEOUT_MS
                                                                                               : req->timeout_ms;
    return x;
}

int eb_httpc_submit(eb_httpc *c, const eb_http_req *req, eb_http_cb cb, void *ctx) {
    if (!c || !req || !req->method || !req->url || !cb || (req->body_len && !req->body))
        return -1;
    xfer *x = xfer_new(req);
    if (!x)
        return -1;
    x->cb = cb;
    x->ctx = ctx;
    x->start_ns = eb_mono_ns();
    x->deadline_ns = x->start_ns + (uint64_t)x->timeout_ms * 1000000u;
    pthread_mutex_lock(&c->mu);
    if (c->stopping) {
        pthread_mutex_unlock(&c->mu);
        free(x);
        return -1;
    }
    int was_empty = c->inbox == NULL;
    if (c->inbox_tail)
        c->inbox_tail->next = x;
    else
        c->inbox = x;
    c->inbox_tail = x;
    /* from a callback, the loop takes the inbox before it polls again */
    if (was_empty && loop_client != c)
        curl_multi_wakeup(c->multi);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* ---- the loop thread -------------------------------------------------------------- */

static void finish(eb_httpc *c, xfer *x, eb_http_result *r) {
    r->body = x->resp.p ? x->resp.p : "";
    r->body_len = x->resp.n;
    r->total_ms = (double)(eb_mono_ns() - x->start_ns) / 1e6;
    x->cb(x->ctx, r);
    if (x->easy) {
        if (c->npool < EASY_POOL_MAX) {
            curl_easy_reset(x->easy);
            c->pool[c->npool++] = x->easy;
        } else {
            curl_easy_cleanup(x->easy);
        }
    }
    curl_slist_free_all(x->hdrs);
    eb_buf_free(&x->resp);
    free(x);
}

static void finish_simple(eb_httpc *c, xfer *x, eb_http_outcome o, const char *msg) {
    eb_http_result r;
    memset(&r, 0, sizeof r);
    r.outcome = o;
    snprintf(r.error, sizeof r.error, "%s", msg);
    finish(c, x, &r);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
    xfer *x = ud;
    size_t n = size * nmemb;
    if (x->resp.n < EB_HTTPC_BODY_MAX) {
        size_t take = EB_HTTPC_BODY_MAX - x->resp.n;
        if (take > n)
            take = n;
        if (eb_buf_append(&x->resp, data, take))
            return 0; /* out of memory: fail the transfer (CURLE_WRITE_ERROR) */
    }
    return n; /* the rest is read and dropped, so the connection stays reusable */
}

/* Retry-After: delta-seconds (a leading '-' is accepted and gives a negative
 * value) or an HTTP-date (relative to now; negative when in the past). */
static int parse_retry_after(const char *v, int64_t *ms) {
    while (*v == ' ' || *v == '\t')
        v++;
    const char *p = v;
    int neg = 0;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (*p >= '0' && *p <= '9') {
        int64_t s = 0;
        while (*p >= '0' && *p <= '9') {
            if (s < INT64_MAX / 10000)
                s = s * 10 + (*p - '0');
            p++;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0') {
            *ms = (neg ? -s : s) * 1000;
            return 0;
        }
    }
    time_t t = curl_getdate(v, NULL);
    if (t == (time_t)-1)
        return -1;
    *ms = (int64_t)t * 1000 - eb_now_ms();
    return 0;
}

static void complete(eb_httpc *c, xfer *x, CURLcode rc) {
    eb_http_result r;
    memset(&r, 0, sizeof r);
    r.outcome = classify(rc);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r.status);
        struct curl_header *h = NULL;
        if (curl_easy_header(x->easy, "Retry-After", 0, CURLH_HEADER, -1, &h) == CURLHE_OK && h && h->value)
            r.has_retry_after = parse_retry_after(h->value, &r.retry_after_ms) == 0;
    } else {
        /* curl's own text names host and port at most, never request headers */
        snprintf(r.error, sizeof r.error, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
        size_t l = strlen(r.error);
        while (l && (r.error[l - 1] == '\n' || r.error[l - 1] == '\r'))
            r.error[--l] = '\0';
    }
    finish(c, x, &r);
}

/* ---- the deadline heap ---- */

static void heap_set(eb_httpc *c, size_t i, xfer *x) {
    c->heap[i] = x;
    x->heap_idx = i;
}

static void heap_up(eb_httpc *c, size_t i) {
    xfer *x = c->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (c->heap[parent]->deadline_ns <= x->deadline_ns)
            break;
        heap_set(c, i, c->heap[parent]);
        i = parent;
    }
    heap_set(c, i, x);
}

static void heap_down(eb_httpc *c, size_t i) {
    xfer *x = c->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        uint64_t best = x->deadline_ns;
        if (l < c->nheap && c->heap[l]->deadline_ns < best)
            m = l, best = c->heap[l]->deadline_ns;
        if (l + 1 < c->nheap && c->heap[l + 1]->deadline_ns < best)
            m = l + 1;
        if (m == i)
            break;
        heap_set(c, i, c->heap[m]);
        i = m;
    }
    heap_set(c, i, x);
}

static int heap_push(eb_httpc *c, xfer *x) {
    if (c->nheap == c->heap_cap) {
        size_t cap = c->heap_cap ? c->heap_cap * 2 : 256;
        xfer **n = realloc(c->heap, cap * sizeof *n);
        if (!n)
            return -1;
        c->heap = n;
        c->heap_cap = cap;
    }
    heap_set(c, c->nheap++, x);
    heap_up(c, c->nheap - 1);
    return 0;
}

static void heap_remove(eb_httpc *c, xfer *x) {
    size_t i = x->heap_idx;
    xfer *last = c->heap[--c->nheap];
    if (i == c->nheap)
        return;
    heap_set(c, i, last);
    heap_up(c, i);
    heap_down(c, last->heap_idx);
}

/* Set up x's easy handle; on failure x is completed (and freed) here. */
static int start(eb_httpc *c, xfer *x) {
    CURL *e = c->npool ? c->pool[--c->npool] : curl_easy_init();
    if (!e) {
        finish_simple(c, x, EB_HTTP_ERROR, "out of memory (curl_easy_init)");
        return -1;
    }
    x->easy = e;
    /* caller's headers, then ours to turn off curl's additions */
    for (char **h = x->hdr_lines; *h; h++) {
        if (strpbrk(*h, "\r\n")) {
            finish_simple(c, x, EB_HTTP_ERROR, "a request header line contains CR or LF");
            return -1;
        }
        struct curl_slist *n = curl_slist_append(x->hdrs, *h);
        if (!n)
            goto oom;
        x->hdrs = n;
    }
    const char *const *given = (const char *const *)x->hdr_lines;
    static const char *const suppress[] = {"Expect", "Content-Type"};
    for (size_t i = 0; i < sizeof suppress / sizeof *suppress; i++) {
        if (has_header(given, suppress[i]))
            continue;
        char line[32];
        snprintf(line, sizeof line, "%s:", suppress[i]);
        struct curl_slist *n = curl_slist_append(x->hdrs, line);
        if (!n)
            goto oom;
        x->hdrs = n;
    }
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, x->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, x->timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (!c->use_env_proxy)
        curl_easy_setopt(e, CURLOPT_PROXY, ""); /* "" = no proxy, http_proxy & co. ignored */
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    if (curl_easy_setopt(e, CURLOPT_URL, x->url) != CURLE_OK) {
        finish_simple(c, x, EB_HTTP_BADURL, "bad URL");
        return -1;
    }
    const char *m = x->method;
    if (strcmp(m, "GET") == 0 && !x->body_len) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(m, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        /* a body (possibly empty, for POST/PUT/PATCH: Content-Length: 0) */
        int wants_body = x->body_len || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
        if (wants_body) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
        }
        if (strcmp(m, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    }
    if (heap_push(c, x))
        goto oom;
    CURLMcode mc = curl_multi_add_handle(c->multi, e);
    if (mc != CURLM_OK) {
        heap_remove(c, x);
        finish_simple(c, x, EB_HTTP_ERROR, curl_multi_strerror(mc));
        return -1;
    }
    return 0;
oom:
    finish_simple(c, x, EB_HTTP_ERROR, "out of memory (headers)");
    return -1;
}

static void drain_done(eb_httpc *c) {
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result;
        xfer *x = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(c->multi, e);
        heap_remove(c, x);
        complete(c, x, rc);
    }
}

/* Complete the transfers whose deadline has passed (curl's own timeout
 * usually got there first; a transfer still waiting for a connection has
 * none); the milliseconds until the next deadline, at most 1000. */
static int expire(eb_httpc *c) {
    uint64_t now = eb_mono_ns();
    while (c->nheap && c->heap[0]->deadline_ns <= now) {
        xfer *x = c->heap[0];
        curl_off_t connect_us = 0, first_byte_us = 0;
        curl_easy_getinfo(x->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
        curl_easy_getinfo(x->easy, CURLINFO_STARTTRANSFER_TIME_T, &first_byte_us);
        curl_multi_remove_handle(c->multi, x->easy);
        heap_remove(c, x);
        char msg[128];
        snprintf(msg, sizeof msg, "timed out after %ld ms %s", x->timeout_ms,
                 !connect_us ? "before a connection was made" : !first_byte_us ? "waiting for the response"
                                                                                : "while receiving the response");
        finish_simple(c, x, EB_HTTP_TIMEOUT, msg);
    }
    if (!c->nheap)
        return 1000;
    uint64_t ms = (c->heap[0]->deadline_ns - now + 999999) / 1000000;
    return ms < 1000 ? (int)ms : 1000;
}

static void *loop(void *arg) {
    prctl(PR_SET_NAME, "eb-httpc", 0, 0, 0); /* for top -H, perf */
    eb_httpc *c = arg;
    loop_client = c;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        xfer *in = c->inbox;
        c->inbox = c->inbox_tail = NULL;
        int stopping = c->stopping;
        pthread_mutex_unlock(&c->mu);
        while (in) {
            xfer *x = in;
            in = in->next;
            x->next = NULL;
            if (stopping)
                finish_simple(c, x, EB_HTTP_CANCELLED, "client shut down");
            else
                start(c, x);
        }
        if (stopping)
            break;
        int running = 0;
        curl_multi_perform(c->multi, &running);
        drain_done(c);
        int wait_ms = expire(c);
        /* callbacks may have submitted (without a wakeup): no wait then */
        pthread_mutex_lock(&c->mu);
        if (c->inbox)
            wait_ms = 0;
        pthread_mutex_unlock(&c->mu);
        curl_multi_poll(c->multi, NULL, 0, wait_ms, NULL);
    }
    /* cancel whatever is still in the multi handle */
    while (c->nheap) {
        xfer *x = c->heap[c->nheap - 1];
        curl_multi_remove_handle(c->multi, x->easy);
        heap_remove(c, x);
        finish_simple(c, x, EB_HTTP_CANCELLED, "client shut down");
    }
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------------- */


eb_httpc *eb_httpc_new_opts(const eb_httpc_opts *opts, char *err, size_t errlen) {
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        eb_set_err(err, errlen, "curl_global_init failed");
        return NULL;
    }
    eb_httpc *c = calloc(1, sizeof *c);
    if (!c) {
        eb_set_err(err, errlen, "out of memory");
        return NULL;
    }
    long per_host = opts && opts->max_host_connections > 0 ? opts->max_host_connections : DEFAULT_HOST_CONNS;
    long total = opts && opts->max_total_connections > 0 ? opts->max_total_connections : 0;
    c->use_env_proxy = opts && opts->use_env_proxy;
    c->multi = curl_multi_init();
    if (!c->multi) {
        eb_set_err(err, errlen, "curl_multi_init failed");
        free(c);
        return NULL;
    }
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, per_host);
    if (total)
        curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, total);
    /* keep every idle connection we may have opened (curl's default is 4 per
     * added handle, which shrinks when the load drops) */
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, total ? total : per_host * 4);
    curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    pthread_mutex_init(&c->mu, NULL);
    /* the loop thread takes no asynchronous signals (SIGPIPE from a TLS write
     * stays pending on it and the write fails with EPIPE instead) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&c->thread, NULL, loop, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        eb_set_err(err, errlen, "cannot start the HTTP client thread");
        curl_multi_cleanup(c->multi);
        pthread_mutex_destroy(&c->mu);
        free(c);
        return NULL;
    }
    return c;
}

eb_httpc *eb_httpc_new(char *err, size_t errlen) { return eb_httpc_new_opts(NULL, err, errlen); }

void eb_httpc_free(eb_httpc *c) {
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    curl_multi_wakeup(c->multi);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    for (int i = 0; i < c->npool; i++)
        curl_easy_cleanup(c->pool[i]);
    free(c->heap);
    curl_multi_cleanup(c->multi);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
