/* The delivery benchmark's HTTP receiver (bench/delivery/run.sh): one thread, epoll, HTTP/1.1
 * keep-alive, non-blocking sockets.
 *
 *   receiver serve PORT RECORDS TIMELINE   answer every request 200 (Content-Length: 0) and
 *                                          record it: one line "recv_us sent_us id" per request
 *                                          in RECORDS, where recv_us is CLOCK_REALTIME (µs) when
 *                                          the whole request had been read, sent_us the "ts" of
 *                                          the event's detail (the load generator's send time,
 *                                          same clock; -1 if none) and id the envelope's "id".
 *                                          TIMELINE gets "second total" each time the realtime
 *                                          second changes (sampled at least every 10 ms).
 *   receiver hold PORT                     accept and read requests (counted), never answer (a
 *                                          target that hangs); connections stay open until the
 *                                          peer closes them
 *   receiver refuse PORT                   bind PORT without listening: connections to it are
 *                                          refused (and nobody else can take the port)
 *
 * PORT 0 picks a free port. "ready PORT" goes to stdout once the socket is bound. SIGTERM or
 * SIGINT: flush the files, print "received N bad M" (requests) to stdout, exit 0. Requests must carry
 * Content-Length (the engine's libcurl always sends it for POST bodies); chunked bodies are
 * counted as bad and the connection closed. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define MAX_EVENTS 256
#define MAX_HEADER 65536

typedef struct conn {
    int fd;
    char *buf;
    size_t len, cap;
    size_t out_pending; /* bytes of 200 answers not yet written */
    int want_out;       /* EPOLLOUT registered */
} conn;

static volatile sig_atomic_t stopping;
static uint64_t received, bad;
static FILE *records, *timeline;
static int hold_mode;

static const char OK[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

static void on_signal(int s)
{
    (void)s;
    stopping = 1;
}

static int bind_port(int port, int do_listen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    if (do_listen)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a))
        die("bind");
    if (do_listen && listen(fd, 1024))
        die("listen");
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    printf("ready %d\n", ntohs(a.sin_port));
    fflush(stdout);
    return fd;
}

/* memmem for a short needle */
static const char *find(const char *h, size_t hn, const char *n)
{
    return memmem(h, hn, n, strlen(n));
}

static void record(const char *body, size_t n, int64_t now)
{
    received++;
    const char *id = find(body, n, "\"id\":\"");
    const char *ts = find(body, n, "\"ts\":");
    int64_t sent = -1;
    if (ts) {
        ts += 5;
        int64_t v = 0;
        int digits = 0;
        while (ts < body + n && *ts >= '0' && *ts <= '9') {
            v = v * 10 + (*ts++ - '0');
            digits++;
        }
        if (digits)
            sent = v;
    }
    if (!id || id + 6 + 36 > body + n) {
        bad++;
        fprintf(records, "%lld %lld -\n", (long long)now, (long long)sent);
        return;
    }
    fprintf(records, "%lld %lld %.36s\n", (long long)now, (long long)sent, id + 6);
}

static void conn_close(int ep, conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->buf);
    free(c);
}

static int flush_out(conn *c)
{
    while (c->out_pending) {
        /* the pending bytes are always a tail of some number of OK answers */
        size_t off = (sizeof OK - 1) - (c->out_pending % (sizeof OK - 1));
        if (off == sizeof OK - 1)
            off = 0;
        size_t chunk = sizeof OK - 1 - off;
        ssize_t w = write(c->fd, OK + off, chunk);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (w <= 0)
            return -1;
        c->out_pending -= (size_t)w;
    }
    return 0;
}

/* Parse complete requests in c->buf; 0 ok, -1 close. */
static int process(conn *c)
{
    size_t off = 0;
    int64_t now = 0;
    for (;;) {
        char *p = c->buf + off;
        size_t avail = c->len - off;
        const char *end = find(p, avail, "\r\n\r\n");
        if (!end) {
            if (avail > MAX_HEADER)
                return -1;
            break;
        }
        size_t hlen = (size_t)(end - p) + 4;
        long clen = 0;
        int chunked = 0;
        for (const char *l = p; l < end;) {
            const char *eol = find(l, (size_t)(end - l) + 2, "\r\n");
            if (!eol)
                break;
            if ((size_t)(eol - l) > 15 && !strncasecmp(l, "Content-Length:", 15))
                clen = strtol(l + 15, NULL, 10);
            else if ((size_t)(eol - l) > 18 && !strncasecmp(l, "Transfer-Encoding:", 18))
                chunked = 1;
            l = eol + 2;
        }
        if (chunked || clen < 0) {
            bad++;
            return -1;
        }
        if (avail < hlen + (size_t)clen)
            break;
        if (hold_mode) {
            received++; /* counted, never answered */
        } else {
            if (!now)
                now = realtime_us();
            record(p + hlen, (size_t)clen, now);
            c->out_pending += sizeof OK - 1;
        }
        off += hlen + (size_t)clen;
    }
    if (off) {
        memmove(c->buf, c->buf + off, c->len - off);
        c->len -= off;
    }
    return hold_mode ? 0 : flush_out(c);
}

static int on_readable(conn *c)
{
    for (;;) {
        if (c->cap - c->len < 16384) {
            size_t nc = c->cap ? c->cap * 2 : 65536;
            char *nb = realloc(c->buf, nc);
            if (!nb)
                return -1;
            c->buf = nb;
            c->cap = nc;
        }
        ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (r <= 0)
            return -1;
        c->len += (size_t)r;
        if (process(c))
            return -1;
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: receiver serve PORT RECORDS TIMELINE | hold PORT | refuse PORT\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int port = atoi(argv[2]);
    if (!strcmp(argv[1], "refuse")) {
        int fd = bind_port(port, 0);
        while (!stopping)
            pause();
        close(fd);
        return 0;
    }
    hold_mode = !strcmp(argv[1], "hold");
    if (!hold_mode) {
        if (strcmp(argv[1], "serve") || argc != 5) {
            fprintf(stderr, "usage: receiver serve PORT RECORDS TIMELINE\n");
            return 2;
        }
        records = fopen(argv[3], "w");
        timeline = fopen(argv[4], "w");
        if (!records || !timeline)
            die("fopen");
        setvbuf(records, NULL, _IOFBF, 1 << 20);
    }
    int lfd = bind_port(port, 1);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event evs[MAX_EVENTS];
    int64_t last_sec = 0;
    while (!stopping) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, 10);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (!c) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn *nc = calloc(1, sizeof *nc);
                    if (!nc) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    struct epoll_event ce = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
                }
                continue;
            }
            int dead = 0;
            if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                dead = on_readable(c) != 0;
            if (!dead && (evs[i].events & EPOLLOUT))
                dead = flush_out(c) != 0;
            if (dead) {
                conn_close(ep, c);
                continue;
            }
            if (!!c->out_pending != c->want_out) {
                c->want_out = !!c->out_pending;
                struct epoll_event ce = {.events = EPOLLIN | EPOLLRDHUP | (c->want_out ? EPOLLOUT : 0), .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ce);
            }
        }
        if (timeline) {
            int64_t sec = realtime_us() / 1000000;
            if (sec != last_sec) {
                fprintf(timeline, "%lld %llu\n", (long long)sec, (unsigned long long)received);
                fflush(timeline);
                last_sec = sec;
            }
        }
    }
    if (records) {
        fclose(records);
        fprintf(timeline, "%lld %llu\n", (long long)(realtime_us() / 1000000), (unsigned long long)received);
        fclose(timeline);
    }
    printf("received %llu bad %llu\n", (unsigned long long)received, (unsigned long long)bad);
    return 0;
}
