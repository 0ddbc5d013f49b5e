/* The HTTP front (src/api/http.c) against real clients: libcurl (easy and
 * multi) and raw sockets, on 127.0.0.1 with an ephemeral port.
 *
 * Test handler routes (by path prefix):
 *   /sync   answers at once: what it saw (method, path, query, headers, peer)
 *   /echo   answers at once: body length, too_large flag, body pattern check
 *   /async  a worker thread answers after ms=N (query) or 200 ms
 *   /race   a fresh thread answers at once, racing the handler's return
 *   /hold   parks the request; the test answers it (or not) itself */
#define _GNU_SOURCE
#include "api/http.h"
#include "util/util.h"

#include "test.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ASYNC_DEFAULT_MS 200u
#define MAX_PENDING 1024
#define MAX_HELD 16

/* ---- test handler ------------------------------------------------------------------ */

typedef struct {
    eb_http_request *r;
    uint64_t due_ns;
} pending_t;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pending_t pending[MAX_PENDING];
    size_t npending;
    int quit;
    eb_http_request *held[MAX_HELD];
    size_t nheld;
    atomic_int handled;
} T = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {{0, 0}}, 0, 0, {0}, 0, 0};

static const eb_http_header json_ids[] = {{"x-amzn-RequestId", "req-123"}, {"X-Extra", "a"}, {"X-Extra", "b"}};

static unsigned query_ms(const char *q)
{
    const char *p = strstr(q, "ms=");
    return p ? (unsigned)strtoul(p + 3, NULL, 10) : ASYNC_DEFAULT_MS;
}

static void answer_sync(eb_http_request *r)
{
    eb_buf b = {0};
    size_t n = 0, blen = 0;
    const eb_http_header *h = eb_http_headers(r, &n);
    eb_http_body(r, &blen);
    eb_buf_printf(&b, "method=%s path=%s query=%s peer=%s body=%zu rep=", eb_http_method(r), eb_http_path(r),
                  eb_http_query(r), eb_http_peer(r), blen);
    int first = 1;
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(h[i].name, "x-rep") == 0) {
            eb_buf_printf(&b, "%s%s", first ? "" : "|", h[i].value);
            first = 0;
        }
    const char *f = eb_http_header_get(r, "X-REP");
    eb_buf_printf(&b, " first=%s order=", f ? f : "(none)");
    first = 1;
    for (size_t i = 0; i < n; i++)
        if (strncasecmp(h[i].name, "x-", 2) == 0) {
            eb_buf_printf(&b, "%s%s", first ? "" : ",", h[i].name);
            first = 0;
        }
    eb_http_respond(r, 200, "application/x-amz-json-1.1", json_ids, 3, b.p, b.n);
    eb_buf_free(&b);
}

static void answer_echo(eb_http_request *r)
{
    size_t len = 0;
    const char *body = eb_http_body(r, &len);
    int ok = body[len] == 0;
    for (size_t i = 0; i < len && ok; i++)
        ok = body[i] == (char)('a' + i % 26);
    char out[128];
    int too = eb_http_body_too_large(r);
    int k = snprintf(out, sizeof out, "len=%zu too_large=%d ok=%d", len, too, ok);
    eb_http_respond(r, too ? 413 : 200, "text/plain", NULL, 0, out, (size_t)k);
}

static void *race_thread(void *arg)
{
    eb_http_request *r = arg;
    char out[64];
    int k = snprintf(out, sizeof out, "race %s", eb_http_query(r));
    eb_http_respond(r, 200, "text/plain", NULL, 0, out, (size_t)k);
    return NULL;
}

static void handler(void *ctx, eb_http_request *r)
{
    (void)ctx;
    atomic_fetch_add(&T.handled, 1);
    const char *p = eb_http_path(r);
    if (strncmp(p, "/sync", 5) == 0) {
        answer_sync(r);
    } else if (strcmp(p, "/echo") == 0) {
        answer_echo(r);
    } else if (strcmp(p, "/async") == 0) {
        pthread_mutex_lock(&T.mu);
        if (T.npending < MAX_PENDING) {
            T.pending[T.npending].r = r;
            T.pending[T.npending].due_ns = eb_mono_ns() + (uint64_t)query_ms(eb_http_query(r)) * 1000000u;
            T.npending++;
            r = NULL;
            pthread_cond_broadcast(&T.cv);
        }
        pthread_mutex_unlock(&T.mu);
        if (r)
            eb_http_respond(r, 500, "text/plain", NULL, 0, "full", 4);
    } else if (strcmp(p, "/race") == 0) {
        pthread_t t;
        int slow = strstr(eb_http_query(r), "slow") != NULL;
        if (pthread_create(&t, NULL, race_thread, r) == 0) {
            pthread_detach(t); /* r belongs to that thread now */
            if (slow)
                usleep(1000);
        } else {
            eb_http_respond(r, 500, "text/plain", NULL, 0, "thread", 6);
        }
    } else if (strcmp(p, "/hold") == 0) {
        pthread_mutex_lock(&T.mu);
        if (T.nheld < MAX_HELD) {
            T.held[T.nheld++] = r;
            r = NULL;
        }
        pthread_cond_broadcast(&T.cv);
        pthread_mutex_unlock(&T.mu);
        if (r)
            eb_http_respond(r, 500, "text/plain", NULL, 0, "full", 4);
    } else {
        eb_http_respond(r, 404, "text/plain", NULL, 0, "no route", 8);
    }
}

/* Answers /async requests when due. */
static void *async_worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&T.mu);
    for (;;) {
        if (T.quit && T.npending == 0)
            break;
        if (T.npending == 0) {
            pthread_cond_wait(&T.cv, &T.mu);
            continue;
        }
        size_t best = 0;
        for (size_t i = 1; i < T.npending; i++)
            if (T.pending[i].due_ns < T.pending[best].due_ns)
                best = i;
        uint64_t now = eb_mono_ns();
        if (T.pending[best].due_ns > now) {
            uint64_t wait = T.pending[best].due_ns - now;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)(wait / 1000000000u);
            ts.tv_nsec += (long)(wait % 1000000000u);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&T.cv, &T.mu, &ts);
            continue;
        }
        eb_http_request *r = T.pending[best].r;
        T.pending[best] = T.pending[--T.npending];
        pthread_mutex_unlock(&T.mu);
        char out[160];
        int k = snprintf(out, sizeof out, "async query=%s", eb_http_query(r));
        static const eb_http_header id = {"x-amzn-RequestId", "async-1"};
        eb_http_respond(r, 200, "application/x-amz-json-1.1", &id, 1, out, (size_t)k);
        pthread_mutex_lock(&T.mu);
    }
    pthread_mutex_unlock(&T.mu);
    return NULL;
}

/* Wait until `want` requests are parked on /hold (or 5 s). */
static size_t wait_held(size_t want)
{
    uint64_t end = eb_mono_ns() + 5000000000ull;
    pthread_mutex_lock(&T.mu);
    while (T.nheld < want && eb_mono_ns() < end) {
        pthread_mutex_unlock(&T.mu);
        usleep(2000);
        pthread_mutex_lock(&T.mu);
    }
    size_t n = T.nheld;
    pthread_mutex_unlock(&T.mu);
    return n;
}

static eb_http_request *take_held(void)
{
    pthread_mutex_lock(&T.mu);
    eb_http_request *r = T.nheld ? T.held[--T.nheld] : NULL;
    pthread_mutex_unlock(&T.mu);
    return r;
}

/* ---- helpers ------------------------------------------------------------------------- */

static eb_http_server *start(unsigned threads, unsigned timeout_s, size_t max_body)
{
    eb_http_config cfg = {"127.0.0.1", 0, threads, 256, timeout_s, max_body};
    eb_http_server *s = NULL;
    char err[256];
    int rc = eb_http_start(&cfg, handler, NULL, &s, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "start failed: %s\n", err);
    return rc == 0 ? s : NULL;
}

typedef struct {
    long status;
    eb_buf body, hdrs;
    long connects;
    double secs;
    curl_off_t uploaded;
} resp_t;

static size_t wr_cb(char *p, size_t sz, size_t n, void *ud)
{
    eb_buf_append(ud, p, sz * n);
    return sz * n;
}

static void resp_free(resp_t *r)
{
    eb_buf_free(&r->body);
    eb_buf_free(&r->hdrs);
    memset(r, 0, sizeof *r);
}

static void easy_setup(CURL *c, const char *url, resp_t *out)
{
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, wr_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, wr_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &out->hdrs);
}

static void easy_finish(CURL *c, CURLcode rc, resp_t *out)
{
    if (rc != CURLE_OK) {
        fprintf(stderr, "curl: %s\n", curl_easy_strerror(rc));
        out->status = -1;
        return;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &out->connects);
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &out->secs);
    curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &out->uploaded);
}

static void get(unsigned port, const char *path, struct curl_slist *hdrs, resp_t *out)
{
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    CURL *c = curl_easy_init();
    easy_setup(c, url, out);
    if (hdrs)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    easy_finish(c, curl_easy_perform(c), out);
    curl_easy_cleanup(c);
}

typedef struct {
    size_t total, sent;
} upload_t;

static size_t rd_cb(char *buf, size_t sz, size_t n, void *ud)
{
    upload_t *u = ud;
    size_t k = sz * n;
    if (k > u->total - u->sent)
        k = u->total - u->sent;
    for (size_t i = 0; i < k; i++)
        buf[i] = (char)('a' + (u->sent + i) % 26);
    u->sent += k;
    return k;
}

/* POST `total` pattern bytes to /echo, with Content-Length or chunked. */
static void post_echo(unsigned port, size_t total, int chunked, resp_t *out)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/echo", port);
    upload_t u = {total, 0};
    CURL *c = curl_easy_init();
    easy_setup(c, url, out);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, rd_cb);
    curl_easy_setopt(c, CURLOPT_READDATA, &u);
    struct curl_slist *h = NULL;
    if (chunked)
        h = curl_slist_append(h, "Transfer-Encoding: chunked");
    else
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)total);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    easy_finish(c, curl_easy_perform(c), out);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
}

static long vm_hwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

static int raw_connect(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k <= 0)
            return -1;
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

static double since_s(uint64_t t0)
{
    return (double)(eb_mono_ns() - t0) / 1e9;
}

/* Read into out until the peer closes (returns 1; a reset counts) or timeout_ms
 * pass (returns 0). */
static int read_until_close(int fd, eb_buf *out, int timeout_ms)
{
    uint64_t end = eb_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        uint64_t now = eb_mono_ns();
        if (now >= end)
            return 0;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)((end - now) / 1000000u) + 1) <= 0)
            continue;
        char buf[4096];
        ssize_t k = recv(fd, buf, sizeof buf, 0);
        if (k > 0) {
            eb_buf_append(out, buf, (size_t)k);
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        return 1;
    }
}

static int readable(int fd, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, timeout_ms) == 1;
}

/* Send up to `total` body bytes (raw, or as 64 KiB chunks), stopping when the
 * server stops taking data and, unless blind, as soon as an answer is
 * readable. Returns the body bytes sent. */
static size_t send_body(int fd, size_t total, int chunked, int blind)
{
    static char block[65536];
    memset(block, 'a', sizeof block);
    size_t sent = 0;
    while (sent < total) {
        if (!blind && readable(fd, 0))
            break;
        size_t n = total - sent < sizeof block ? total - sent : sizeof block;
        char head[32];
        if (chunked) {
            snprintf(head, sizeof head, "%zx\r\n", n);
            if (send_all(fd, head) != 0)
                break;
        }
        size_t off = 0;
        while (off < n) {
            struct pollfd p = {fd, POLLOUT | (blind ? 0 : POLLIN), 0};
            if (poll(&p, 1, 2000) != 1 || (p.revents & (POLLIN | POLLERR | POLLHUP)))
                return sent + off;
            ssize_t k = send(fd, block + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (k < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (k <= 0)
                return sent + off;
            off += (size_t)k;
        }
        sent += n;
        if (chunked && send_all(fd, "\r\n") != 0)
            break;
    }
    return sent;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_start_errors(void)
{
    eb_http_server *s = NULL;
    char err[256] = "";
    eb_http_config bad = {"not-an-ip", 0, 1, 0, 0, 0};
    CHECK(eb_http_start(&bad, handler, NULL, &s, err, sizeof err) == -1);
    CHECK(s == NULL && err[0] != 0);
    eb_http_config badport = {"127.0.0.1", 70000, 1, 0, 0, 0};
    CHECK(eb_http_start(&badport, handler, NULL, &s, err, sizeof err) == -1);

    /* A port already taken: a clear error, not a shared port. */
    eb_http_server *a = start(1, 0, 0);
    CHECK(a != NULL);
    if (!a)
        return;
    eb_http_config same = {"127.0.0.1", eb_http_port(a), 1, 0, 0, 0};
    err[0] = 0;
    CHECK(eb_http_start(&same, handler, NULL, &s, err, sizeof err) == -1);
    CHECK(strstr(err, "cannot listen") != NULL);
    eb_http_stop(a, 0);
}

static void test_sync_headers_query(void)
{
    eb_http_server *s = start(2, 0, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    unsigned port = eb_http_port(s);
    CHECK(port > 0);

    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "X-Rep: one");
    h = curl_slist_append(h, "X-Other: z");
    h = curl_slist_append(h, "X-Rep: two");
    resp_t r = {0};
    get(port, "/sync/a%20b?a=1&b=x%20y&a=2&flag&e=", h, &r);
    curl_slist_free_all(h);
    CHECK(r.status == 200);
    CHECK(r.body.p && strstr(r.body.p, "method=GET path=/sync/a%20b query=a=1&b=x%20y&a=2&flag&e= ") != NULL);
    CHECK(r.body.p && strstr(r.body.p, " rep=one|two first=one order=X-Rep,X-Other,X-Rep") != NULL);
    CHECK(r.body.p && strstr(r.body.p, "peer=127.0.0.1:") != NULL);
    CHECK(r.hdrs.p && strstr(r.hdrs.p, "x-amzn-RequestId: req-123\r\n") != NULL);
    CHECK(r.hdrs.p && strstr(r.hdrs.p, "X-Extra: a\r\n") && strstr(r.hdrs.p, "X-Extra: b\r\n"));
    CHECK(r.hdrs.p && strcasestr(r.hdrs.p, "Content-Type: application/x-amz-json-1.1\r\n") != NULL);
    if (r.status != 200 || !r.body.p || !strstr(r.body.p, "order="))
        fprintf(stderr, "body: %s\nheaders: %s\n", r.body.p ? r.body.p : "", r.hdrs.p ? r.hdrs.p : "");
    resp_free(&r);

    /* No query at all; a POST body is seen. */
    get(port, "/sync", NULL, &r);
    CHECK(r.status == 200 && r.body.p && strstr(r.body.p, "path=/sync query= peer=") != NULL);
    resp_free(&r);

    get(port, "/nowhere", NULL, &r);
    CHECK(r.status == 404);
    resp_free(&r);

    eb_http_stop(s, 1000);
}

/* 64 keep-alive connections, 4 requests each, half of them answered 200 ms
 * later by another thread: everything completes in about 4 x 200 ms, the
 * immediate answers never wait for the delayed ones, connections are reused. */
static void test_async_parallel(void)
{
    enum { NH = 64, PER = 4 };
    eb_http_server *s = start(4, 0, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    unsigned port = eb_http_port(s);

    CURLM *m = curl_multi_init();
    CURL *e[NH];
    resp_t rs[NH];
    int done[NH];
    uint64_t t_start[NH];
    char url[NH][128];
    memset(rs, 0, sizeof rs);
    memset(done, 0, sizeof done);
    int bad = 0, completed = 0;
    long connects = 0;
    double max_sync = 0, min_async = 1e9;

    for (int i = 0; i < NH; i++) {
        e[i] = curl_easy_init();
        snprintf(url[i], sizeof url[i], "http://127.0.0.1:%u/async?i=%d&k=0", port, i);
        easy_setup(e[i], url[i], &rs[i]);
        curl_easy_setopt(e[i], CURLOPT_PRIVATE, (void *)(intptr_t)i);
        t_start[i] = eb_mono_ns();
        curl_multi_add_handle(m, e[i]);
    }
    uint64_t t0 = eb_mono_ns();
    int running = 1;
    while (completed < NH * PER && since_s(t0) < 15) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *c = msg->easy_handle;
            void *priv = NULL;
            curl_easy_getinfo(c, CURLINFO_PRIVATE, &priv);
            int i = (int)(intptr_t)priv;
            CURLcode rc = msg->data.result;
            curl_multi_remove_handle(m, c);
            easy_finish(c, rc, &rs[i]);
            double lat = since_s(t_start[i]);
            int k = done[i];
            int async = (k % 2) == 0;
            char want[96];
            snprintf(want, sizeof want, "query=i=%d&k=%d", i, k);
            if (rs[i].status != 200 || !rs[i].body.p || !strstr(rs[i].body.p, want) ||
                (async && strncmp(rs[i].body.p, "async ", 6) != 0)) {
                if (bad++ < 3)
                    fprintf(stderr, "bad answer %d/%d: %ld %s\n", i, k, rs[i].status,
                            rs[i].body.p ? rs[i].body.p : "");
            }
            if (async && lat < min_async)
                min_async = lat;
            if (!async && lat > max_sync)
                max_sync = lat;
            connects += rs[i].connects;
            completed++;
            resp_free(&rs[i]);
            if (++done[i] < PER) {
                k = done[i];
                snprintf(url[i], sizeof url[i], "http://127.0.0.1:%u/%s?i=%d&k=%d", port, k % 2 ? "sync" : "async",
                         i, k);
                curl_easy_setopt(c, CURLOPT_URL, url[i]);
                t_start[i] = eb_mono_ns();
                curl_multi_add_handle(m, c);
            }
        }
        curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    double total = since_s(t0);
    CHECK(completed == NH * PER);
    CHECK(bad == 0);
    CHECK(min_async >= 0.19);
    CHECK(max_sync < 0.19); /* never queued behind a suspended request */
    CHECK(total < 3.0);     /* serial would be 64 * 2 * 0.2 = 25.6 s */
    CHECK(connects <= NH + 8);
    printf("  parallel: %d requests in %.2f s, %ld connections, slowest immediate %.0f ms\n", completed, total,
           connects, max_sync * 1000);
    for (int i = 0; i < NH; i++) {
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
        resp_free(&rs[i]);
    }
    curl_multi_cleanup(m);
    eb_http_stop(s, 1000);
}

/* eb_http_respond from another thread racing the handler's return. */
static void test_respond_race(void)
{
    enum { NH = 16, PER = 25 };
    eb_http_server *s = start(4, 0, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    unsigned port = eb_http_port(s);
    CURLM *m = curl_multi_init();
    CURL *e[NH];
    resp_t rs[NH];
    int done[NH];
    char url[NH][128];
    memset(rs, 0, sizeof rs);
    memset(done, 0, sizeof done);
    int completed = 0, bad = 0;
    for (int i = 0; i < NH; i++) {
        e[i] = curl_easy_init();
        snprintf(url[i], sizeof url[i], "http://127.0.0.1:%u/race?i=%d&k=0", port, i);
        easy_setup(e[i], url[i], &rs[i]);
        curl_easy_setopt(e[i], CURLOPT_PRIVATE, (void *)(intptr_t)i);
        curl_multi_add_handle(m, e[i]);
    }
    uint64_t t0 = eb_mono_ns();
    int running;
    while (completed < NH * PER && since_s(t0) < 15) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *c = msg->easy_handle;
            void *priv = NULL;
            curl_easy_getinfo(c, CURLINFO_PRIVATE, &priv);
            int i = (int)(intptr_t)priv;
            CURLcode rc = msg->data.result;
            curl_multi_remove_handle(m, c);
            easy_finish(c, rc, &rs[i]);
            char want[64];
            snprintf(want, sizeof want, "race i=%d&k=%d", i, done[i]);
            if (rs[i].status != 200 || !rs[i].body.p || strncmp(rs[i].body.p, want, strlen(want)) != 0)
                bad++;
            resp_free(&rs[i]);
            completed++;
            if (++done[i] < PER) {
                int k = done[i];
                snprintf(url[i], sizeof url[i], "http://127.0.0.1:%u/race?i=%d&k=%d%s", port, i, k,
                         k % 3 ? "" : "&slow");
                curl_easy_setopt(c, CURLOPT_URL, url[i]);
                curl_multi_add_handle(m, c);
            }
        }
        curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    CHECK(completed == NH * PER);
    CHECK(bad == 0);
    for (int i = 0; i < NH; i++) {
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
        resp_free(&rs[i]);
    }
    curl_multi_cleanup(m);
    eb_http_stop(s, 1000);
}

static void test_body_limits(void)
{
    eb_http_server *s = start(2, 0, 0); /* max_body 0 = 1 MiB */
    CHECK(s != NULL);
    if (!s)
        return;
    unsigned port = eb_http_port(s);
    resp_t r = {0};

    post_echo(port, 1u << 20, 0, &r); /* exactly the limit */
    CHECK(r.status == 200 && r.body.p && strcmp(r.body.p, "len=1048576 too_large=0 ok=1") == 0);
    resp_free(&r);
    post_echo(port, 1u << 20, 1, &r); /* same, chunked */
    CHECK(r.status == 200 && r.body.p && strcmp(r.body.p, "len=1048576 too_large=0 ok=1") == 0);
    resp_free(&r);
    post_echo(port, 12345, 0, &r);
    CHECK(r.status == 200 && r.body.p && strcmp(r.body.p, "len=12345 too_large=0 ok=1") == 0);
    resp_free(&r);

    /* 20 MB against 1 MiB: the handler answers, nothing is buffered. */
    long hwm0 = vm_hwm_kb();
    post_echo(port, 20u << 20, 0, &r);
    CHECK(r.status == 413 && r.body.p && strcmp(r.body.p, "len=0 too_large=1 ok=1") == 0);
    CHECK(r.uploaded < (16 << 20)); /* answered before the body was read */
    resp_free(&r);
    post_echo(port, (1u << 20) + 1, 0, &r); /* one byte over */
    CHECK(r.status == 413 && r.body.p && strcmp(r.body.p, "len=0 too_large=1 ok=1") == 0);
    resp_free(&r);
    post_echo(port, 20u << 20, 1, &r); /* chunked: no length to judge up front */
    CHECK(r.status == 413 && r.body.p && strcmp(r.body.p, "len=0 too_large=1 ok=1") == 0);
    CHECK(r.uploaded < (16 << 20)); /* answered once the limit was passed */
    resp_free(&r);
    long hwm1 = vm_hwm_kb();
    printf("  peak RSS growth over two 20 MB uploads: %ld kB\n", hwm1 - hwm0);
    CHECK(hwm0 > 0 && hwm1 - hwm0 < 8 * 1024);

    /* The connection stays usable after a discarded body. */
    get(port, "/sync", NULL, &r);
    CHECK(r.status == 200);
    resp_free(&r);
    eb_http_stop(s, 1000);

    /* A small limit, both sides of it. */
    s = start(1, 0, 16);
    CHECK(s != NULL);
    if (!s)
        return;
    port = eb_http_port(s);
    post_echo(port, 16, 0, &r);
    CHECK(r.status == 200 && r.body.p && strcmp(r.body.p, "len=16 too_large=0 ok=1") == 0);
    resp_free(&r);
    post_echo(port, 17, 1, &r);
    CHECK(r.status == 413 && r.body.p && strcmp(r.body.p, "len=0 too_large=1 ok=1") == 0);
    resp_free(&r);
    eb_http_stop(s, 1000);
}

/* A body over max_body is not read: with a declared Content-Length the
 * handler answers before any of it is read (no 100 Continue), chunked bodies
 * are answered as soon as the limit is passed; the connection is closed after
 * the answer. The handler may also answer such a request later. */
static void test_early_refusal(void)
{
    eb_http_server *s = start(2, 0, 0); /* 1 MiB */
    CHECK(s != NULL);
    if (!s)
        return;
    unsigned port = eb_http_port(s);
    const char *want_body = "\r\n\r\nlen=0 too_large=1 ok=1";

    /* Expect: 100-continue and no body at all. */
    int fd = raw_connect(port);
    CHECK(fd >= 0);
    uint64_t t0 = eb_mono_ns();
    eb_buf in = {0};
    CHECK(send_all(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 20971520\r\n"
                       "Expect: 100-continue\r\n\r\n") == 0);
    CHECK(read_until_close(fd, &in, 3000) == 1);
    double took = since_s(t0);
    CHECK(in.p && strncmp(in.p, "HTTP/1.1 413 ", 13) == 0);
    CHECK(in.p && !strstr(in.p, "100 Continue"));
    CHECK(in.p && strstr(in.p, want_body) && strcmp(strstr(in.p, want_body), want_body) == 0);
    CHECK(took < 1.0);
    if (!in.p || strncmp(in.p, "HTTP/1.1 413 ", 13) != 0)
        fprintf(stderr, "got: %s\n", in.p ? in.p : "(nothing)");
    eb_buf_free(&in);
    close(fd);

    /* No Expect: the client sends 1 MB of the declared 20 MB and finds the
     * answer waiting. */
    fd = raw_connect(port);
    CHECK(fd >= 0);
    t0 = eb_mono_ns();
    CHECK(send_all(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 20971520\r\n\r\n") == 0);
    size_t sent = send_body(fd, 1u << 20, 0, 1);
    CHECK(read_until_close(fd, &in, 3000) == 1);
    took = since_s(t0);
    CHECK(in.p && strncmp(in.p, "HTTP/1.1 413 ", 13) == 0);
    CHECK(in.p && strstr(in.p, want_body) != NULL);
    CHECK(took < 1.0);
    printf("  declared 20 MB: answered after %zu body bytes sent, %.3f s\n", sent, took);
    eb_buf_free(&in);
    close(fd);

    /* Chunked: answered once the limit is passed, not after 20 MB. */
    fd = raw_connect(port);
    CHECK(fd >= 0);
    t0 = eb_mono_ns();
    CHECK(send_all(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n") == 0);
    sent = send_body(fd, 20u << 20, 1, 0);
    CHECK(read_until_close(fd, &in, 3000) == 1);
    took = since_s(t0);
    CHECK(sent >= 1u << 20 && sent < 16u << 20); /* socket buffers hold a few MB */
    CHECK(in.p && strncmp(in.p, "HTTP/1.1 413 ", 13) == 0);
    CHECK(in.p && strcasestr(in.p, "\r\nContent-Type: text/plain\r\n") != NULL);
    CHECK(in.p && strcasestr(in.p, "\r\nConnection: close\r\n") != NULL);
    CHECK(in.p && strstr(in.p, "\r\nContent-Length: 22\r\n") != NULL);
    CHECK(in.p && strstr(in.p, want_body) && strcmp(strstr(in.p, want_body), want_body) == 0);
    CHECK(took < 1.0);
    printf("  chunked: answered after %zu body bytes sent, %.3f s\n", sent, took);
    eb_buf_free(&in);
    close(fd);

    /* The handler answers later, from another thread: declared length ... */
    fd = raw_connect(port);
    CHECK(fd >= 0);
    CHECK(send_all(fd, "POST /hold HTTP/1.1\r\nHost: x\r\nContent-Length: 20971520\r\n"
                       "Expect: 100-continue\r\n\r\n") == 0);
    CHECK(wait_held(1) == 1);
    eb_http_request *r = take_held();
    CHECK(r != NULL);
    if (r) {
        size_t blen = 1;
        eb_http_body(r, &blen);
        CHECK(eb_http_body_too_large(r) == 1 && blen == 0);
        CHECK(eb_http_respond(r, 413, "text/plain", NULL, 0, "later", 5) == 0);
    }
    CHECK(read_until_close(fd, &in, 3000) == 1);
    CHECK(in.p && strncmp(in.p, "HTTP/1.1 413 ", 13) == 0 && !strstr(in.p, "100 Continue"));
    CHECK(in.p && strstr(in.p, "\r\n\r\nlater") != NULL);
    eb_buf_free(&in);
    close(fd);

    /* ... and chunked (the answer leaves with the next body data). */
    fd = raw_connect(port);
    CHECK(fd >= 0);
    CHECK(send_all(fd, "POST /hold HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n") == 0);
    sent = send_body(fd, (1u << 20) + 65536, 1, 0);
    CHECK(wait_held(1) == 1);
    r = take_held();
    CHECK(r != NULL);
    if (r) {
        CHECK(eb_http_body_too_large(r) == 1);
        CHECK(eb_http_respond(r, 413, "text/plain", NULL, 0, "later", 5) == 0);
    }
    sent += send_body(fd, 4u << 20, 1, 0);
    CHECK(read_until_close(fd, &in, 3000) == 1);
    CHECK(sent < 16u << 20);
    CHECK(in.p && strncmp(in.p, "HTTP/1.1 413 ", 13) == 0);
    CHECK(in.p && strstr(in.p, "\r\n\r\nlater") != NULL);
    eb_buf_free(&in);
    close(fd);

    /* The server still serves. */
    resp_t a = {0};
    get(port, "/sync", NULL, &a);
    CHECK(a.status == 200);
    resp_free(&a);
    eb_http_stop(s, 1000);
}

/* A client sending half its headers is dropped after the timeout; others are
 * served meanwhile (on the same single pool thread); a request suspended
 * longer than the timeout still gets its answer. */
static void test_stalled_client(void)
{
    eb_http_server *s = start(1, 1, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    unsigned port = eb_http_port(s);
    int fd = raw_connect(port);
    CHECK(fd >= 0);
    if (fd < 0) {
        eb_http_stop(s, 0);
        return;
    }
    uint64_t t0 = eb_mono_ns();
    CHECK(send_all(fd, "GET /sync HTTP/1.1\r\nHost: x\r\nX-Half: ") == 0);

    resp_t r = {0};
    for (int i = 0; i < 5; i++) {
        get(port, "/sync?during=stall", NULL, &r);
        CHECK(r.status == 200 && r.secs < 0.5);
        resp_free(&r);
    }

    struct pollfd p = {fd, POLLIN, 0};
    int pr = poll(&p, 1, 5000);
    double waited = since_s(t0);
    char buf[256];
    ssize_t k = pr > 0 ? recv(fd, buf, sizeof buf, 0) : -2;
    CHECK(pr == 1);
    CHECK(k == 0 || (k < 0 && errno == ECONNRESET)); /* closed, nothing sent */
    CHECK(waited > 0.9 && waited < 3.5);
    printf("  stalled client dropped after %.2f s\n", waited);
    close(fd);

    /* Suspended for 2.5 s with a 1 s timeout: the answer still arrives. */
    get(port, "/async?ms=2500", NULL, &r);
    CHECK(r.status == 200 && r.body.p && strncmp(r.body.p, "async ", 6) == 0);
    CHECK(r.secs > 2.4);
    resp_free(&r);
    eb_http_stop(s, 1000);
}

/* The client goes away while its request is suspended; the late answer is
 * harmless, and the server keeps serving. */
static void test_disconnect_while_suspended(void)
{
    eb_http_server *s = start(2, 0, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    unsigned port = eb_http_port(s);
    int fd = raw_connect(port);
    CHECK(fd >= 0 && send_all(fd, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
    CHECK(wait_held(1) == 1);
    close(fd);
    usleep(100000);
    eb_http_request *r = take_held();
    CHECK(r != NULL);
    if (r) {
        int rc = eb_http_respond(r, 200, "text/plain", json_ids, 1, "late", 4);
        CHECK(rc == 0 || rc == -1);
    }
    resp_t a = {0};
    get(port, "/sync", NULL, &a);
    CHECK(a.status == 200);
    resp_free(&a);

    /* Same, but the server stops before the answer: the request outlives it. */
    fd = raw_connect(port);
    CHECK(fd >= 0 && send_all(fd, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
    CHECK(wait_held(1) == 1);
    close(fd);
    eb_http_stop(s, 100);
    r = take_held();
    CHECK(r != NULL);
    if (r)
        CHECK(eb_http_respond(r, 200, "text/plain", NULL, 0, "too late", 8) == -1);
}

typedef struct {
    unsigned port;
    const char *path;
    resp_t r;
} client_arg;

static void *client_thread(void *arg)
{
    client_arg *a = arg;
    get(a->port, a->path, NULL, &a->r);
    return NULL;
}

static void *late_responder(void *arg)
{
    (void)arg;
    usleep(300000);
    eb_http_request *r = take_held();
    if (r)
        eb_http_respond(r, 200, "text/plain", NULL, 0, "drained", 7);
    return NULL;
}

/* eb_http_stop waits for a suspended request's answer to go out; after the
 * drain time it answers 503 itself, and the late eb_http_respond gets -1. */
static void test_stop_drains(void)
{
    eb_http_server *s = start(2, 0, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    client_arg ca = {eb_http_port(s), "/hold", {0}};
    pthread_t ct, rt;
    pthread_create(&ct, NULL, client_thread, &ca);
    CHECK(wait_held(1) == 1);
    pthread_create(&rt, NULL, late_responder, NULL);
    uint64_t t0 = eb_mono_ns();
    eb_http_stop(s, 5000);
    double took = since_s(t0);
    pthread_join(rt, NULL);
    pthread_join(ct, NULL);
    CHECK(ca.r.status == 200 && ca.r.body.p && strcmp(ca.r.body.p, "drained") == 0);
    CHECK(took > 0.25 && took < 3.0);
    printf("  stop drained a suspended request in %.2f s\n", took);
    resp_free(&ca.r);

    /* Nobody answers: 503 after the drain time. */
    s = start(2, 0, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    client_arg cb = {eb_http_port(s), "/hold", {0}};
    pthread_create(&ct, NULL, client_thread, &cb);
    CHECK(wait_held(1) == 1);
    t0 = eb_mono_ns();
    eb_http_stop(s, 200);
    took = since_s(t0);
    pthread_join(ct, NULL);
    CHECK(cb.r.status == 503 && cb.r.body.p && strstr(cb.r.body.p, "ServiceUnavailable") != NULL);
    CHECK(took >= 0.19 && took < 2.0);
    resp_free(&cb.r);
    eb_http_request *r = take_held();
    CHECK(r != NULL);
    if (r)
        CHECK(eb_http_respond(r, 200, "text/plain", NULL, 0, "too late", 8) == -1);

    /* Stopping with idle keep-alive connections and nothing in flight is quick. */
    s = start(2, 0, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/sync", eb_http_port(s));
    resp_t k = {0};
    easy_setup(c, url, &k);
    easy_finish(c, curl_easy_perform(c), &k);
    CHECK(k.status == 200);
    t0 = eb_mono_ns();
    eb_http_stop(s, 5000);
    CHECK(since_s(t0) < 1.0);
    curl_easy_cleanup(c);
    resp_free(&k);
}

/* Clients still sending their request (half the headers, half a body) do not
 * hold up eb_http_stop; a suspended request is still answered first. */
static void test_stop_ignores_stalled(void)
{
    for (int round = 0; round < 2; round++) {
        eb_http_server *s = start(2, 0, 0);
        CHECK(s != NULL);
        if (!s)
            return;
        unsigned port = eb_http_port(s);
        int hdr = raw_connect(port), body = raw_connect(port);
        CHECK(hdr >= 0 && body >= 0);
        CHECK(send_all(hdr, "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Tar") == 0);
        CHECK(send_all(body, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789") == 0);
        client_arg ca = {port, "/hold", {0}};
        pthread_t ct, rt;
        if (round == 1) {
            pthread_create(&ct, NULL, client_thread, &ca);
            CHECK(wait_held(1) == 1);
            pthread_create(&rt, NULL, late_responder, NULL);
        } else {
            usleep(100000); /* the stalled requests have reached the server */
        }
        uint64_t t0 = eb_mono_ns();
        eb_http_stop(s, 10000);
        double took = since_s(t0);
        if (round == 1) {
            pthread_join(rt, NULL);
            pthread_join(ct, NULL);
            CHECK(ca.r.status == 200 && ca.r.body.p && strcmp(ca.r.body.p, "drained") == 0);
            CHECK(took > 0.25 && took < 1.5);
            resp_free(&ca.r);
        } else {
            CHECK(took < 0.5);
        }
        printf("  stop with stalled clients%s: %.3f s\n", round ? " and a suspended request" : "", took);
        eb_buf in = {0};
        CHECK(read_until_close(hdr, &in, 2000) == 1 && in.n == 0);
        CHECK(read_until_close(body, &in, 2000) == 1 && in.n == 0);
        eb_buf_free(&in);
        close(hdr);
        close(body);
    }
}

static void test_ipv6(void)
{
    eb_http_config cfg = {"::1", 0, 1, 0, 0, 0};
    eb_http_server *s = NULL;
    char err[256];
    if (eb_http_start(&cfg, handler, NULL, &s, err, sizeof err) != 0) {
        printf("  ipv6 skipped: %s\n", err);
        return;
    }
    char url[128];
    snprintf(url, sizeof url, "http://[::1]:%u/sync?v=6", eb_http_port(s));
    CURL *c = curl_easy_init();
    resp_t r = {0};
    easy_setup(c, url, &r);
    easy_finish(c, curl_easy_perform(c), &r);
    CHECK(r.status == 200 && r.body.p && strstr(r.body.p, "query=v=6 peer=[::1]:") != NULL);
    curl_easy_cleanup(c);
    resp_free(&r);
    eb_http_stop(s, 1000);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    eb_log_set_level(EB_LOG_ERROR);
    pthread_t worker;
    pthread_create(&worker, NULL, async_worker, NULL);

    RUN(test_start_errors);
    RUN(test_sync_headers_query);
    RUN(test_async_parallel);
    RUN(test_respond_race);
    RUN(test_body_limits);
    RUN(test_early_refusal);
    RUN(test_stalled_client);
    RUN(test_disconnect_while_suspended);
    RUN(test_stop_drains);
    RUN(test_stop_ignores_stalled);
    RUN(test_ipv6);

    pthread_mutex_lock(&T.mu);
    T.quit = 1;
    pthread_cond_broadcast(&T.cv);
    pthread_mutex_unlock(&T.mu);
    pthread_join(worker, NULL);
    curl_global_cleanup();
    printf("handled %d requests\n", atomic_load(&T.handled));
    return TEST_REPORT();
}
