/* The delivery benchmark's PutEvents load generator (bench/delivery/run.sh): one thread, epoll,
 * keep-alive HTTP/1.1 connections, open loop.
 *
 *   loadgen --port P [--host 127.0.0.1] --rate R --entries E --duration S [--conns C]
 *           [--detail-bytes B] [--timeline FILE] [--source S] [--kinds K]
 *
 * --rate R: events per second, paced: call k (E entries) is due at start + k*E/R (a timerfd
 * wakes the loop at the due time); a due call goes out on the next idle connection, whatever
 * the answers of earlier calls (open loop: a slow server does not slow the schedule; with no
 * idle connection the call waits and its lag -- send time minus due time -- is reported).
 * --rate 0: every connection keeps one call outstanding (closed loop, as fast as it goes).
 *
 * Each entry's Detail is {"ts":T,"seq":N,"pad":"xx..."} with T = CLOCK_REALTIME in µs when the
 * call is written (all entries of a call share it), padded to about B bytes (default 1000). The
 * receiver computes put->target latency as its receive time minus T. With --kinds K the Detail
 * starts with "kind":"k<N % K>" for the entry's sequence number N (bench/load/run.sh: K rules,
 * each matching one kind).
 *
 * An answer counts as acknowledged when it is 200 and contains "FailedEntryCount":0: E events.
 * A connection the server closes while idle (its idle timeout) is opened again (reconnects=);
 * one that breaks with a call in flight counts that call as an error (errors=, unanswered=).
 * --timeline FILE gets "second acked sent" (cumulative events) each time the realtime second
 * changes (sampled at least every 10 ms). At the end (after the duration, waiting up to 10 s
 * for outstanding answers) one line on stdout:
 *   RESULT calls=.. events_sent=.. acked=.. non200=.. failed=.. errors=.. unanswered=..
 *          reconnects=.. cpu_ms=.. (the generator's own CPU time) seconds=..
 *          put_p50_ms=.. put_p99_ms=.. put_max_ms=.. lag_p50_ms=.. lag_p99_ms=.. lag_max_ms=..
 * Exit status 0 when every call was acknowledged. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

typedef struct conn {
    int fd, busy, dead, want_out;
    char *out;
    size_t outlen, outoff, outcap;
    char *in;
    size_t inlen, incap;
    int64_t sent_ns;
    struct conn *next_idle;
} conn;

typedef struct {
    int32_t *v;
    size_t n, cap;
} samples;

static const char *host = "127.0.0.1", *source = "bench.delivery";
static int port, entries = 1, nconns = 16, detail_bytes = 1000;
static double rate, duration = 10;
static uint64_t calls, acked, non200, failed, errors, events_sent, seq;
static samples put_us, lag_us;
static conn *idle;
static char *pad;
static int kinds;

static void add_sample(samples *s, int64_t v)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 65536;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v)
            die("realloc");
    }
    s->v[s->n++] = v > INT32_MAX ? INT32_MAX : (int32_t)v;
}

static int cmp32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(samples *s, double p)
{
    if (!s->n)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(s->n - 1) + 0.5);
    return s->v[i] / 1000.0;
}

static void ensure(char **b, size_t *cap, size_t need)
{
    if (*cap >= need)
        return;
    size_t nc = *cap ? *cap : 4096;
    while (nc < need)
        nc *= 2;
    *b = realloc(*b, nc);
    if (!*b)
        die("realloc");
    *cap = nc;
}

static uint64_t reconnects;

static int connect_fd(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "bad host %s\n", host);
        exit(2);
    }
    if (connect(fd, (struct sockaddr *)&a, sizeof a))
        die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK))
        die("fcntl");
    return fd;
}

static conn *connect_one(int ep)
{
    int fd = connect_fd();
    conn *c = calloc(1, sizeof *c);
    if (!c)
        die("calloc");
    c->fd = fd;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
        die("epoll_ctl");
    return c;
}

static void set_out(int ep, conn *c, int want)
{
    if (c->want_out == want)
        return;
    c->want_out = want;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* The connection broke or the server closed it: a call in flight on it is lost (an error); an
 * idle one (the server's idle timeout) is just opened again. */
static void conn_dead(int ep, conn *c)
{
    if (c->dead)
        return;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->busy) {
        errors++;
        c->busy = 0;
        c->next_idle = idle;
        idle = c;
    }
    reconnects++;
    c->inlen = c->outlen = c->outoff = 0;
    c->want_out = 0;
    c->fd = connect_fd();
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev))
        die("epoll_ctl");
}

static int flush_out(int ep, conn *c)
{
    while (c->outoff < c->outlen) {
        ssize_t w = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out(ep, c, 1);
            return 0;
        }
        if (w <= 0)
            return -1;
        c->outoff += (size_t)w;
    }
    set_out(ep, c, 0);
    return 0;
}

/* Build and write one PutEvents call of `entries` entries on c. */
static void send_call(int ep, conn *c, int64_t due_ns)
{
    static char *body;
    static size_t bcap;
    size_t need = (size_t)entries * ((size_t)detail_bytes + 200) + 64;
    ensure(&body, &bcap, need);
    int64_t ts = realtime_us();
    size_t n = (size_t)snprintf(body, bcap, "{\"Entries\":[");
    for (int i = 0; i < entries; i++) {
        char kind[48] = "";
        if (kinds)
            snprintf(kind, sizeof kind, "\\\"kind\\\":\\\"k%llu\\\",", (unsigned long long)(seq % (uint64_t)kinds));
        n += (size_t)snprintf(body + n, bcap - n,
                              "%s{\"Source\":\"%s\",\"DetailType\":\"bench\",\"Detail\":"
                              "\"{%s\\\"ts\\\":%lld,\\\"seq\\\":%llu,\\\"pad\\\":\\\"%s\\\"}\"}",
                              i ? "," : "", source, kind, (long long)ts, (unsigned long long)seq++, pad);
    }
    n += (size_t)snprintf(body + n, bcap - n, "]}");
    ensure(&c->out, &c->outcap, n + 512);
    c->outlen = (size_t)snprintf(c->out, c->outcap,
                                 "POST / HTTP/1.1\r\nHost: %s:%d\r\nX-Amz-Target: AWSEvents.PutEvents\r\n"
                                 "Content-Type: application/x-amz-json-1.1\r\nContent-Length: %zu\r\n\r\n",
                                 host, port, n);
    memcpy(c->out + c->outlen, body, n);
    c->outlen += n;
    c->outoff = 0;
    c->busy = 1;
    c->sent_ns = mono_ns();
    if (due_ns)
        add_sample(&lag_us, (c->sent_ns - due_ns) / 1000);
    calls++;
    events_sent += (uint64_t)entries;
    if (flush_out(ep, c))
        conn_dead(ep, c);
}

/* Complete answers in c->in; returns -1 on a broken connection. */
static int on_answers(conn *c)
{
    for (;;) {
        char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
        if (!end)
            return 0;
        size_t hlen = (size_t)(end - c->in) + 4;
        long clen = -1;
        int status = 0;
        if (c->inlen < 12 || strncmp(c->in, "HTTP/1.1 ", 9))
            return -1;
        status = atoi(c->in + 9);
        for (char *l = c->in; l < end;) {
            char *eol = memmem(l, (size_t)(end - l) + 2, "\r\n", 2);
            if (!eol)
                break;
            if (eol - l > 15 && !strncasecmp(l, "Content-Length:", 15))
                clen = strtol(l + 15, NULL, 10);
            l = eol + 2;
        }
        if (clen < 0)
            return -1; /* the server always sends Content-Length */
        if (c->inlen < hlen + (size_t)clen)
            return 0;
        if (status != 200)
            non200++;
        else if (!memmem(c->in + hlen, (size_t)clen, "\"FailedEntryCount\":0", 20))
            failed++;
        else
            acked += (uint64_t)entries;
        add_sample(&put_us, (mono_ns() - c->sent_ns) / 1000);
        c->busy = 0;
        c->next_idle = idle;
        idle = c;
        memmove(c->in, c->in + hlen + clen, c->inlen - hlen - (size_t)clen);
        c->inlen -= hlen + (size_t)clen;
    }
}

static int on_readable(conn *c)
{
    for (;;) {
        ensure(&c->in, &c->incap, c->inlen + 16384);
        ssize_t r = read(c->fd, c->in + c->inlen, c->incap - c->inlen);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (r <= 0)
            return -1;
        c->inlen += (size_t)r;
        if (on_answers(c))
            return -1;
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen --port P [--host H] --rate EVENTS_PER_S (0: closed loop) --entries E --duration S "
                    "[--conns C] [--detail-bytes B] [--timeline FILE] [--source S] [--kinds K]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *tl_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (!strcmp(a, "--port"))
            port = atoi(v);
        else if (!strcmp(a, "--host"))
            host = v;
        else if (!strcmp(a, "--rate"))
            rate = atof(v);
        else if (!strcmp(a, "--entries"))
            entries = atoi(v);
        else if (!strcmp(a, "--duration"))
            duration = atof(v);
        else if (!strcmp(a, "--conns"))
            nconns = atoi(v);
        else if (!strcmp(a, "--detail-bytes"))
            detail_bytes = atoi(v);
        else if (!strcmp(a, "--timeline"))
            tl_path = v;
        else if (!strcmp(a, "--source"))
            source = v;
        else if (!strcmp(a, "--kinds"))
            kinds = atoi(v);
        else
            usage();
        i++;
    }
    if (!port || entries < 1 || entries > 10 || nconns < 1 || rate < 0 || duration <= 0 || kinds < 0)
        usage();
    signal(SIGPIPE, SIG_IGN);
    int padn = detail_bytes > 60 ? detail_bytes - 60 : 1;
    pad = malloc((size_t)padn + 1);
    memset(pad, 'x', (size_t)padn);
    pad[padn] = 0;
    FILE *tl = tl_path ? fopen(tl_path, "w") : NULL;
    if (tl_path && !tl)
        die("fopen timeline");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (ep < 0 || tfd < 0)
        die("epoll/timerfd");
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);
    conn **all = calloc((size_t)nconns, sizeof *all);
    for (int i = 0; i < nconns; i++) {
        all[i] = connect_one(ep);
        all[i]->next_idle = idle;
        idle = all[i];
    }
    int64_t t0 = mono_ns(), t_end = t0 + (int64_t)(duration * 1e9);
    int64_t interval = rate > 0 ? (int64_t)((double)entries * 1e9 / rate) : 0;
    uint64_t k = 0; /* calls scheduled so far */
    int64_t armed = -1, last_sec = 0;
    struct epoll_event evs[256];
    for (;;) {
        int64_t now = mono_ns();
        int sending = now < t_end;
        if (sending) {
            if (interval) {
                while (idle) {
                    int64_t due = t0 + (int64_t)k * interval;
                    if (due > now || due >= t_end)
                        break;
                    conn *c = idle;
                    idle = c->next_idle;
                    if (c->dead)
                        continue;
                    send_call(ep, c, due);
                    k++;
                }
            } else {
                while (idle) {
                    conn *c = idle;
                    idle = c->next_idle;
                    if (!c->dead)
                        send_call(ep, c, 0);
                }
            }
        }
        int outstanding = 0, alive = 0;
        for (int i = 0; i < nconns; i++) {
            outstanding += all[i]->busy && !all[i]->dead;
            alive += !all[i]->dead;
        }
        if (!alive)
            break;
        if (!sending && (!outstanding || now > t_end + 10 * 1000000000LL))
            break;
        int timeout = 10;
        if (sending && interval && idle) { /* no idle connection: the next answer wakes us */
            int64_t due = t0 + (int64_t)k * interval;
            if (due != armed && due < t_end) {
                struct itimerspec its = {.it_value = {.tv_sec = due / 1000000000, .tv_nsec = due % 1000000000}};
                timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
                armed = due;
            }
        }
        int n = epoll_wait(ep, evs, 256, timeout);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (!c) {
                uint64_t x;
                if (read(tfd, &x, sizeof x) < 0) { /* nothing: spurious */
                }
                armed = -1;
                continue;
            }
            if (c->dead)
                continue;
            int bad = 0;
            if (evs[i].events & EPOLLOUT)
                bad = flush_out(ep, c) != 0;
            if (!bad && (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
                bad = on_readable(c) != 0;
            if (bad)
                conn_dead(ep, c);
        }
        if (tl) {
            int64_t sec = realtime_us() / 1000000;
            if (sec != last_sec) {
                fprintf(tl, "%lld %llu %llu\n", (long long)sec, (unsigned long long)acked,
                        (unsigned long long)events_sent);
                fflush(tl);
                last_sec = sec;
            }
        }
    }
    double secs = (double)(mono_ns() - t0) / 1e9;
    if (tl) {
        fprintf(tl, "%lld %llu %llu\n", (long long)(realtime_us() / 1000000), (unsigned long long)acked,
                (unsigned long long)events_sent);
        fclose(tl);
    }
    qsort(put_us.v, put_us.n, sizeof *put_us.v, cmp32);
    qsort(lag_us.v, lag_us.n, sizeof *lag_us.v, cmp32);
    uint64_t lost = calls - put_us.n; /* sent, never answered */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long cpu_ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
    printf("RESULT calls=%llu events_sent=%llu acked=%llu non200=%llu failed=%llu errors=%llu unanswered=%llu "
           "reconnects=%llu cpu_ms=%ld "
           "seconds=%.2f put_p50_ms=%.3f put_p99_ms=%.3f put_max_ms=%.3f lag_p50_ms=%.3f lag_p99_ms=%.3f "
           "lag_max_ms=%.3f\n",
           (unsigned long long)calls, (unsigned long long)events_sent, (unsigned long long)acked,
           (unsigned long long)non200, (unsigned long long)failed, (unsigned long long)errors,
           (unsigned long long)lost, (unsigned long long)reconnects, cpu_ms, secs, pct(&put_us, 50), pct(&put_us, 99), pct(&put_us, 100), pct(&lag_us, 50),
           pct(&lag_us, 99), pct(&lag_us, 100));
    return acked == events_sent ? 0 : 1;
}
