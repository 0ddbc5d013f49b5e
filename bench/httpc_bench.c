/* eb_httpc throughput and latency against a local keep-alive receiver.
 *
 *   cmake --build build --target httpc_bench
 *   build/httpc_bench [-n REQUESTS] [-c CONC[,CONC...]] [-b BODY_BYTES] [-t RECEIVER_THREADS] [-p]
 *
 * The receiver is libmicrohttpd on 127.0.0.1 (epoll, or poll with -p; a pool
 * of -t threads; keep-alive), answering every POST with 200 "ok" after
 * reading its body. (With epoll, MHD 0.9.75 sometimes stops reading all its
 * keep-alive connections: unread requests sit in the sockets while its
 * thread waits in epoll_wait for the 60 s connection timeout; the client then
 * reports timeouts. Seen with one receiver thread and 256 connections.)
 * For each concurrency C the client keeps exactly C requests in flight (each
 * callback submits the next one, on the client thread) with at most C
 * connections, after a warm-up of 1,000 requests. Latency is eb_http_result's
 * total_ms (submit to callback); newconn counts connections the receiver
 * accepted during the measured part; cli_cpu is the client loop thread's CPU
 * time over wall time. Prints one line per C. Not a ctest. */
#define _GNU_SOURCE
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deliver/httpc.h"
#include "util/util.h"

static atomic_int g_conns;
static atomic_int g_client_tid; /* the client loop thread, learnt in a callback */

/* CPU seconds used so far by thread tid of this process. */
static double thread_cpu_s(int tid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    /* after the command: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void on_conn(void *cls, struct MHD_Connection *c, void **socket_context, enum MHD_ConnectionNotificationCode code) {
    (void)cls;
    (void)c;
    (void)socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&g_conns, 1);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls) {
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;
    static int marker;
    if (*con_cls == NULL) {
        *con_cls = &marker;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* read and dropped */
        return MHD_YES;
    }
    static const char ok[] = "ok";
    struct MHD_Response *r = MHD_create_response_from_buffer(2, (void *)ok, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result rc = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return rc;
}

typedef struct {
    eb_httpc *c;
    eb_http_req req;
    long total, submitted;
    atomic_long done, failed;
    double *lat; /* per completed request */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} run;

static void on_done(void *ctx, const eb_http_result *r) {
    run *b = ctx;
    long i = atomic_fetch_add(&b->done, 1);
    if (i == 0)
        atomic_store(&g_client_tid, (int)gettid());
    if (r->outcome != EB_HTTP_RESPONSE || r->status != 200) {
        if (atomic_fetch_add(&b->failed, 1) < 3)
            fprintf(stderr, "request failed: %s, status %ld: %s (%.1f ms)\n", eb_http_outcome_name(r->outcome),
                    r->status, r->error, r->total_ms);
    }
    if (b->lat)
        b->lat[i] = r->total_ms;
    /* callbacks all run on the client thread: submitted needs no lock */
    if (b->submitted < b->total) {
        b->submitted++;
        if (eb_httpc_submit(b->c, &b->req, on_done, b))
            atomic_fetch_add(&b->failed, 1);
    }
    if (i + 1 == b->total) {
        pthread_mutex_lock(&b->mu);
        pthread_cond_signal(&b->cv);
        pthread_mutex_unlock(&b->mu);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* total requests, conc in flight; lat may be NULL (warm-up). Seconds taken. */
static double drive(eb_httpc *c, const eb_http_req *req, long total, long conc, double *lat, long *failed) {
    run b = {.c = c, .req = *req, .total = total, .lat = lat};
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    long first = conc < total ? conc : total;
    b.submitted = first;
    uint64_t t0 = eb_mono_ns();
    /* the first window is submitted from here; the callbacks may already run:
     * they only touch `submitted` once it is >= first, which is set above */
    for (long i = 0; i < first; i++)
        eb_httpc_submit(c, req, on_done, &b);
    pthread_mutex_lock(&b.mu);
    while (atomic_load(&b.done) < total)
        pthread_cond_wait(&b.cv, &b.mu);
    pthread_mutex_unlock(&b.mu);
    double s = (double)(eb_mono_ns() - t0) / 1e9;
    *failed = atomic_load(&b.failed);
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.cv);
    return s;
}

int main(int argc, char **argv) {
    long total = 100000, body = 256;
    unsigned threads = 2;
    int use_epoll = 1;
    const char *concs = "1,16,64,256";
    int opt;
    while ((opt = getopt(argc, argv, "n:c:b:t:p")) != -1) {
        switch (opt) {
        case 'n': total = atol(optarg); break;
        case 'c': concs = optarg; break;
        case 'b': body = atol(optarg); break;
        case 't': threads = (unsigned)atoi(optarg); break;
        case 'p': use_epoll = 0; break;
        default:
            fprintf(stderr, "usage: %s [-n REQUESTS] [-c CONC[,CONC...]] [-b BODY_BYTES] [-t RECEIVER_THREADS] [-p]\n",
                    argv[0]);
            return 2;
        }
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | (use_epoll ? MHD_USE_EPOLL : MHD_USE_POLL), 0, NULL, NULL, on_request, NULL, MHD_OPTION_THREAD_POOL_SIZE,
        threads > 1 ? threads : 0u, MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
        MHD_OPTION_NOTIFY_CONNECTION, on_conn, NULL, MHD_OPTION_SOCK_ADDR, NULL, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "cannot start the receiver\n");
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/events", (unsigned)info->port);
    char *payload = malloc((size_t)body + 1);
    memset(payload, 'e', (size_t)body);
    const char *hdrs[] = {"Content-Type: application/json", NULL};
    eb_http_req req = {.method = "POST", .url = url, .headers = hdrs, .body = payload, .body_len = (size_t)body,
                       .timeout_ms = 10000};
    printf("httpc_bench: %ld POSTs of %ld bytes per run, receiver: libmicrohttpd (%s), %u thread(s), loopback\n", total,
           body, use_epoll ? "epoll" : "poll", threads);
    printf("%6s %10s %9s %9s %9s %9s %7s %6s %8s\n", "conc", "req/s", "p50_ms", "p90_ms", "p99_ms", "max_ms",
           "newconn", "fail", "cli_cpu");
    double *lat = malloc((size_t)total * sizeof *lat);
    char *list = strdup(concs);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        long conc = atol(tok);
        if (conc < 1)
            continue;
        eb_httpc_opts o = {.max_host_connections = conc};
        eb_httpc *c = eb_httpc_new_opts(&o, NULL, 0);
        long failed = 0;
        drive(c, &req, 1000, conc, NULL, &failed); /* warm-up: connections opened */
        int conns0 = atomic_load(&g_conns);
        int tid = atomic_load(&g_client_tid);
        double cpu0 = thread_cpu_s(tid);
        double s = drive(c, &req, total, conc, lat, &failed);
        double cpu = thread_cpu_s(tid) - cpu0;
        int conns = atomic_load(&g_conns) - conns0;
        qsort(lat, (size_t)total, sizeof *lat, cmp_double);
        printf("%6ld %10.0f %9.3f %9.3f %9.3f %9.3f %7d %6ld %7.0f%%\n", conc, (double)total / s, lat[total / 2],
               lat[(long)(total * 0.90)], lat[(long)(total * 0.99)], lat[total - 1], conns, failed, 100.0 * cpu / s);
        fflush(stdout);
        eb_httpc_free(c);
    }
    free(list);
    free(lat);
    free(payload);
    MHD_stop_daemon(d);
    return 0;
}
