/* eb_procs with real programs through /bin/sh: exit codes, signals, timeouts
 * (the whole process group goes), stdin that is never read, output past the
 * cap, concurrency, spawn failures, fd and signal hygiene, shutdown. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "deliver/proc.h"
#include "test.h"
#include "util/util.h"

typedef struct {
    eb_proc_result r;
    char *out; /* copy, NUL-terminated */
    int done;
    pthread_t thread;
} slot;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ndone;

static void collect(void *ctx, const eb_proc_result *r) {
    slot *s = ctx;
    char *o = malloc(r->output_len + 1);
    memcpy(o, r->output, r->output_len);
    o[r->output_len] = '\0';
    pthread_mutex_lock(&mu);
    s->r = *r;
    s->r.output = NULL;
    s->out = o;
    s->done++;
    s->thread = pthread_self();
    ndone++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void reset_done(void) {
    pthread_mutex_lock(&mu);
    ndone = 0;
    pthread_mutex_unlock(&mu);
}

static int wait_done(int n, int ms) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&mu);
    while (ndone < n)
        if (pthread_cond_timedwait(&cv, &mu, &dl) == ETIMEDOUT)
            break;
    int ok = ndone >= n;
    pthread_mutex_unlock(&mu);
    return ok;
}

static eb_procs *P;

static void run1(const char *prog, const char *payload, size_t len, long timeout_ms, slot *s) {
    memset(s, 0, sizeof *s);
    reset_done();
    CHECK(eb_procs_run(P, prog, payload, len, timeout_ms, collect, s) == 0);
    CHECK(wait_done(1, 20000));
    CHECK(s->done == 1);
}

/* Live (non-zombie) processes whose process group is pgid, found in /proc. */
static int live_in_group(pid_t pgid) {
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t k = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[k] = '\0';
        char *rp = strrchr(buf, ')'); /* the command may hold spaces and parens */
        char state;
        int ppid, pgrp;
        if (rp && sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid && state != 'Z' &&
            state != 'X')
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* Wait (up to 2 s) until nothing of the group is alive; 1 when gone. */
static int group_gone(pid_t pgid) {
    for (int i = 0; i < 200; i++) {
        if (live_in_group(pgid) == 0)
            return 1;
        usleep(10 * 1000);
    }
    return 0;
}

static void test_exit_zero_and_stdin(void) {
    slot s;
    run1("cat", "hello", 5, 5000, &s);
    CHECK(s.r.outcome == EB_PROC_EXITED && s.r.code == 0);
    CHECK_STR(s.out, "hello");
    CHECK(s.r.error[0] == '\0');
    CHECK(s.r.pid > 0);
    CHECK(!pthread_equal(s.thread, pthread_self()));
    free(s.out);

    /* binary payload arrives exactly (through cat and od) */
    char payload[4096];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (char)((i * 131u) & 0xff);
    run1("cat", payload, sizeof payload, 5000, &s);
    CHECK(s.r.outcome == EB_PROC_EXITED && s.r.code == 0);
    CHECK(s.r.output_len == sizeof payload && memcmp(s.out, payload, sizeof payload) == 0);
    free(s.out);

    /* no payload: stdin is at EOF at once */
    run1("cat; echo end", NULL, 0, 5000, &s);
    CHECK(s.r.outcome == EB_PROC_EXITED && s.r.code == 0);
    CHECK_STR(s.out, "end\n");
    free(s.out);
}

static void test_exit_code_and_stderr(void) {
    slot s;
    run1("echo out; echo err >&2; exit 3", "x", 1, 5000, &s);
    CHECK(s.r.outcome == EB_PROC_EXITED && s.r.code == 3);
    CHECK_STR(s.out, "out\nerr\n");
    free(s.out);
}

static void test_signaled(void) {
    slot s;
    run1("kill -TERM $$", NULL, 0, 5000, &s);
    CHECK(s.r.outcome == EB_PROC_SIGNALED && s.r.code == SIGTERM);
    free(s.out);
    run1("kill -KILL $$", NULL, 0, 5000, &s);
    CHECK(s.r.outcome == EB_PROC_SIGNALED && s.r.code == SIGKILL);
    free(s.out);
}

static void test_timeout_kills_group(void) {
    slot s;
    uint64_t t0 = eb_mono_ns();
    /* the shell, two sleeps and a subshell: all in one group */
    run1("sleep 10 | sleep 10 & (sleep 10); echo never", NULL, 0, 200, &s);
    double ms = (double)(eb_mono_ns() - t0) / 1e6;
    CHECK(s.r.outcome == EB_PROC_TIMEOUT && s.r.code == SIGKILL);
    CHECK(ms >= 195 && ms < 700);
    CHECK(strstr(s.out, "never") == NULL);
    CHECK(s.r.pid > 0);
    uint64_t g0 = eb_mono_ns();
    CHECK(group_gone(s.r.pid));
    printf("timeout 200 ms: completed after %.1f ms; process group gone %.1f ms later\n", ms,
           (double)(eb_mono_ns() - g0) / 1e6);
    free(s.out);
}

static void test_output_held_open_after_exit(void) {
    /* the shell exits at once, but a background sleep keeps the output open */
    slot s;
    uint64_t t0 = eb_mono_ns();
    run1("sleep 10 & echo started", NULL, 0, 300, &s);
    double ms = (double)(eb_mono_ns() - t0) / 1e6;
    CHECK(s.r.outcome == EB_PROC_EXITED && s.r.code == 0);
    CHECK_STR(s.out, "started\n");
    CHECK(strstr(s.r.error, "output still open") != NULL);
    CHECK(ms >= 295 && ms < 800);
    CHECK(group_gone(s.r.pid));
    free(s.out);
}

static void test_ignored_stdin(void) {
    size_t n = 1024 * 1024;
    char *big = malloc(n);
    memset(big, 'p', n);
    slot s;
    uint64_t t0 = eb_mono_ns();
    run1("echo done", big, n, 5000, &s);
    double ms = (double)(eb_mono_ns() - t0) / 1e6;
    CHECK(s.r.outcome == EB_PROC_EXITED && s.r.code == 0);
    CHECK_STR(s.out, "done\n");
    CHECK(ms < 1000);
    free(s.out);
    /* one that waits before exiting without reading: the full pipe blocks nothing */
    t0 = eb_mono_ns();
    run1("sleep 0.3; echo late", big, n, 5000, &s);
    ms = (double)(eb_mono_ns() - t0) / 1e6;
    CHECK(s.r.outcome == EB_PROC_EXITED && s.r.code == 0);
    CHECK_STR(s.out, "late\n");
    CHECK(ms >= 290 && ms < 1500);
    free(s.out);
    /* and one that reads it all */
    run1("wc -c", big, n, 5000, &s);
    CHECK(s.r.outcome == EB_PROC_EXITED && s.r.code == 0);
    CHECK(atol(s.out) == (long)n);
    free(s.out);
    free(big);
}

static void test_big_output_truncated(void) {
    slot s;
    uint64_t t0 = eb_mono_ns();
    run1("head -c 1000000 /dev/zero | tr '\\0' x; echo tail >&2", NULL, 0, 10000, &s);
    double ms = (double)(eb_mono_ns() - t0) / 1e6;
    CHECK(s.r.outcome == EB_PROC_EXITED && s.r.code == 0);
    CHECK(s.r.output_len == EB_PROC_OUTPUT_MAX);
    CHECK(s.r.output_truncated == 1);
    int ok = 1;
    for (size_t i = 0; i < s.r.output_len; i++)
        ok &= s.out[i] == 'x';
    CHECK(ok);
    printf("1 MB of output: kept %zu bytes, %.1f ms\n", s.r.output_len, ms);
    free(s.out);
    run1("head -c 65536 /dev/zero", NULL, 0, 10000, &s);
    CHECK(s.r.output_len == EB_PROC_OUTPUT_MAX && s.r.output_truncated == 0);
    free(s.out);
}

static void test_concurrent(void) {
    enum { N = 50 };
    slot *s = calloc(N, sizeof *s);
    char payload[N][16];
    reset_done();
    uint64_t t0 = eb_mono_ns();
    for (int i = 0; i < N; i++) {
        int n = snprintf(payload[i], sizeof payload[i], "run-%d", i);
        CHECK(eb_procs_run(P, "sleep 0.5; cat; exit $(( $$ % 7 ))", payload[i], (size_t)n, 10000, collect, &s[i]) ==
              0);
    }
    CHECK(wait_done(N, 20000));
    double ms = (double)(eb_mono_ns() - t0) / 1e6;
    int ok = 0;
    for (int i = 0; i < N; i++)
        ok += s[i].done == 1 && s[i].r.outcome == EB_PROC_EXITED && s[i].r.code == s[i].r.pid % 7 && s[i].out &&
              strcmp(s[i].out, payload[i]) == 0;
    CHECK(ok == N);
    /* 50 x 0.5 s in parallel, not one after another */
    CHECK(ms < 5000);
    printf("50 concurrent runs of 0.5 s: %d ok in %.0f ms\n", ok, ms);
    for (int i = 0; i < N; i++)
        free(s[i].out);
    free(s);
}

static void test_nonexistent_program(void) {
    slot s;
    run1("no_such_program_ebridge_xyz --flag", "x", 1, 5000, &s);
    CHECK(s.r.outcome == EB_PROC_EXITED && s.r.code == 127);
    CHECK(strstr(s.out, "not found") != NULL);
    free(s.out);
    char path[] = "/tmp/eb_test_proc_XXXXXX";
    int fd = mkstemp(path); /* mode 0600: exists, not executable */
    CHECK(fd >= 0);
    CHECK(write(fd, "echo hi\n", 8) == 8);
    close(fd);
    run1(path, NULL, 0, 5000, &s);
    unlink(path);
    CHECK(s.r.outcome == EB_PROC_EXITED && s.r.code == 126);
    free(s.out);
}

static void test_spawn_failure(void) {
    /* no fd left for the pipes: reported, not crashed */
    struct rlimit old, low;
    getrlimit(RLIMIT_NOFILE, &old);
    int lowest = dup(0);
    close(lowest);
    low = old;
    low.rlim_cur = (rlim_t)lowest;
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
    slot s;
    run1("echo hi", "x", 1, 5000, &s);
    setrlimit(RLIMIT_NOFILE, &old);
    CHECK(s.r.outcome == EB_PROC_SPAWN_FAILED);
    CHECK(s.r.code == EMFILE);
    CHECK(s.r.pid == 0);
    CHECK(strstr(s.r.error, "cannot start") != NULL);
    printf("spawn failure: %s\n", s.r.error);
    free(s.out);
    /* and the reactor goes on */
    run1("echo hi", NULL, 0, 5000, &s);
    CHECK(s.r.outcome == EB_PROC_EXITED && s.r.code == 0);
    CHECK_STR(s.out, "hi\n");
    free(s.out);
    CHECK(eb_procs_run(P, NULL, NULL, 0, 0, collect, &s) == -1);
    CHECK(eb_procs_run(P, "true", NULL, 0, 0, NULL, NULL) == -1);
    CHECK(eb_procs_run(P, "true", NULL, 5, 0, collect, &s) == -1);
}

static void test_fd_and_signal_hygiene(void) {
    /* fds the server left inheritable (no close-on-exec) must not reach the program */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    int pf[2];
    CHECK(pipe(pf) == 0);
    slot s;
    /* ls lists its own fds: what the shell inherited, plus the directory it reads */
    run1("ls /proc/self/fd", NULL, 0, 5000, &s);
    CHECK(s.r.outcome == EB_PROC_EXITED && s.r.code == 0);
    CHECK_STR(s.out, "0\n1\n2\n3\n");
    printf("fds of the program: 0 1 2 3 (the test holds fds %d %d %d %d, not close-on-exec)\n", sv[0], sv[1], pf[0],
           pf[1]);
    free(s.out);
    close(sv[0]);
    close(sv[1]);
    close(pf[0]);
    close(pf[1]);

    /* the server ignores SIGPIPE and blocks signals; the program gets defaults */
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    sigset_t set, oldset;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &oldset);
    run1("exec grep -E '^Sig(Ign|Blk)' /proc/self/status", NULL, 0, 5000, &s);
    CHECK(s.r.outcome == EB_PROC_EXITED && s.r.code == 0);
    CHECK(strstr(s.out, "SigBlk:\t0000000000000000") != NULL);
    /* nothing ignored (SIGPIPE included) but glibc's internal signals 32 and
     * 33, which posix_spawn leaves ignored and glibc programs cannot see */
    const char *ign = strstr(s.out, "SigIgn:\t");
    CHECK(ign != NULL);
    unsigned long long mask = ign ? strtoull(ign + 8, NULL, 16) : ~0ull;
    CHECK((mask & ~((1ull << 31) | (1ull << 32))) == 0);
    free(s.out);
    /* a reader that goes away: `head -c 1` then exit; the writer gets EPIPE, not a signal */
    size_t n = 1024 * 1024;
    char *big = malloc(n);
    memset(big, 'q', n);
    signal(SIGPIPE, SIG_DFL); /* would kill this process if SIGPIPE reached it */
    run1("head -c 1", big, n, 5000, &s);
    CHECK(s.r.outcome == EB_PROC_EXITED && s.r.code == 0);
    CHECK_STR(s.out, "q");
    free(s.out);
    free(big);
    signal(SIGPIPE, old);
    pthread_sigmask(SIG_SETMASK, &oldset, NULL);
}

static void test_free_with_pending(void) {
    eb_procs *p = eb_procs_new(NULL, 0);
    CHECK(p != NULL);
    enum { N = 20 };
    slot *s = calloc(N, sizeof *s);
    reset_done();
    for (int i = 0; i < N; i++)
        CHECK(eb_procs_run(p, "sleep 10 | sleep 10", "z", 1, 60000, collect, &s[i]) == 0);
    usleep(300 * 1000); /* let them start */
    uint64_t t0 = eb_mono_ns();
    eb_procs_free(p);
    double ms = (double)(eb_mono_ns() - t0) / 1e6;
    pthread_mutex_lock(&mu);
    int done = ndone;
    pthread_mutex_unlock(&mu);
    CHECK(done == N);
    int cancelled = 0, gone = 0;
    for (int i = 0; i < N; i++) {
        cancelled += s[i].done == 1 && s[i].r.outcome == EB_PROC_CANCELLED;
        gone += s[i].r.pid > 0 && group_gone(s[i].r.pid);
        free(s[i].out);
    }
    CHECK(cancelled == N);
    CHECK(gone == N);
    CHECK(ms < 2000);
    printf("free with %d running: %d cancelled, %d groups gone, free took %.1f ms\n", N, cancelled, gone, ms);
    free(s);

    /* runs queued but not started yet are cancelled too (no process) */
    p = eb_procs_new(NULL, 0);
    s = calloc(N, sizeof *s);
    reset_done();
    for (int i = 0; i < N; i++)
        CHECK(eb_procs_run(p, "sleep 10", NULL, 0, 60000, collect, &s[i]) == 0);
    eb_procs_free(p);
    pthread_mutex_lock(&mu);
    done = ndone;
    pthread_mutex_unlock(&mu);
    CHECK(done == N);
    cancelled = 0;
    for (int i = 0; i < N; i++) {
        cancelled += s[i].r.outcome == EB_PROC_CANCELLED && (s[i].r.pid == 0 || group_gone(s[i].r.pid));
        free(s[i].out);
    }
    CHECK(cancelled == N);
    free(s);
    eb_procs_free(NULL);
}

int main(void) {
    char err[256];
    P = eb_procs_new(err, sizeof err);
    if (!P) {
        fprintf(stderr, "eb_procs_new: %s\n", err);
        return 1;
    }
    RUN(test_exit_zero_and_stdin);
    RUN(test_exit_code_and_stderr);
    RUN(test_signaled);
    RUN(test_timeout_kills_group);
    RUN(test_output_held_open_after_exit);
    RUN(test_ignored_stdin);
    RUN(test_big_output_truncated);
    RUN(test_concurrent);
    RUN(test_nonexistent_program);
    RUN(test_spawn_failure);
    RUN(test_fd_and_signal_hygiene);
    RUN(test_free_with_pending);
    eb_procs_free(P);
    return TEST_REPORT();
}
