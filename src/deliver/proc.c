/* Local programs run asynchronously by one reactor thread (see proc.h).
 *
 * eb_procs_run (any thread) copies program and payload into one block, puts it
 * in the inbox under the mutex and, when the inbox was empty, writes the
 * eventfd. The reactor thread owns everything else:
 *
 *   loop: take the inbox -> posix_spawn each (failures complete at once)
 *         poll: the eventfd; per run its stdin pipe (POLLOUT while payload
 *         remains), its output pipe (POLLIN) and its pidfd (POLLIN until the
 *         shell is reaped); the timeout is the nearest deadline
 *         then write / read / waitpid(pid, WNOHANG) / kill the group at the
 *         deadline, and complete the runs that are done
 *
 * Without pidfd_open (Linux < 5.3) the reactor falls back to waitpid(WNOHANG)
 * every 10 ms while some shell is running.
 *
 * The reactor thread blocks every signal: a write to a stdin pipe whose reader
 * is gone fails with EPIPE instead of raising SIGPIPE in the server (the
 * pending SIGPIPE is consumed with sigtimedwait). */
#define _GNU_SOURCE
#include "deliver/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

extern char **environ;

#define DEFAULT_TIMEOUT_MS 30000L
#define MAX_TIMEOUT_MS (24L * 3600 * 1000)
#define NO_PIDFD_POLL_MS 10
#define READS_PER_WAKE 16

typedef struct run {
    struct run *next, *prev; /* the inbox (next only), then the active list */
    const char *program;     /* into the block */
    const char *payload;
    size_t len, off;          /* payload bytes, bytes written so far */
    long timeout_ms;
    eb_proc_cb cb;
    void *ctx;
    uint64_t start_ns, deadline_ns;
    pid_t pid;
    int pidfd, in_fd, out_fd;
    int exited, status, killed;
    int pi_in, pi_out, pi_pid; /* indexes in the poll array, -1 when not polled */
    eb_buf out;
    int truncated;
} run;

struct eb_procs {
    pthread_t thread;
    pthread_mutex_t mu;
    int wake_fd;
    run *inbox, *inbox_tail; /* under mu */
    int stopping;            /* under mu */
    /* reactor only: */
    run *active;
    struct pollfd *pfd;
    size_t npfd_cap;
};

const char *eb_proc_outcome_name(eb_proc_outcome o) {
    switch (o) {
    case EB_PROC_EXITED: return "exited";
    case EB_PROC_SIGNALED: return "signaled";
    case EB_PROC_TIMEOUT: return "timeout";
    case EB_PROC_SPAWN_FAILED: return "spawn_failed";
    case EB_PROC_CANCELLED: return "cancelled";
    }
    return "unknown";
}

/* ---- submit (any thread) ------------------------------------------------------ */

int eb_procs_run(eb_procs *p, const char *program, const char *payload, size_t len, long timeout_ms, eb_proc_cb cb,
                 void *ctx) {
    if (!p || !program || !cb || (len && !payload))
        return -1;
    size_t lp = strlen(program) + 1;
    run *r = calloc(1, sizeof *r + lp + len);
    if (!r)
        return -1;
    char *b = (char *)(r + 1);
    memcpy(b, program, lp);
    r->program = b;
    if (len)
        memcpy(b + lp, payload, len);
    r->payload = b + lp;
    r->len = len;
    r->timeout_ms = timeout_ms <= 0 ? DEFAULT_TIMEOUT_MS : timeout_ms > MAX_TIMEOUT_MS ? MAX_TIMEOUT_MS : timeout_ms;
    r->cb = cb;
    r->ctx = ctx;
    r->start_ns = eb_mono_ns();
    r->deadline_ns = r->start_ns + (uint64_t)r->timeout_ms * 1000000u;
    r->pidfd = r->in_fd = r->out_fd = -1;
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        free(r);
        return -1;
    }
    int was_empty = p->inbox == NULL;
    if (p->inbox_tail)
        p->inbox_tail->next = r;
    else
        p->inbox = r;
    p->inbox_tail = r;
    if (was_empty) {
        uint64_t one = 1;
        ssize_t w = write(p->wake_fd, &one, sizeof one);
        (void)w; /* EAGAIN: the counter is already non-zero, the reactor wakes anyway */
    }
    pthread_mutex_unlock(&p->mu);
    return 0;
}

/* ---- the reactor thread --------------------------------------------------------- */

static void close_fd(int *fd) {
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void finish(run *r, eb_proc_outcome o, int code, const char *error) {
    eb_proc_result res;
    memset(&res, 0, sizeof res);
    res.outcome = o;
    res.code = code;
    res.pid = r->pid;
    res.output = r->out.p ? r->out.p : "";
    res.output_len = r->out.n;
    res.output_truncated = r->truncated;
    res.total_ms = (double)(eb_mono_ns() - r->start_ns) / 1e6;
    if (error)
        snprintf(res.error, sizeof res.error, "%s", error);
    r->cb(r->ctx, &res);
    close_fd(&r->in_fd);
    close_fd(&r->out_fd);
    close_fd(&r->pidfd);
    eb_buf_free(&r->out);
    free(r);
}

static void unlink_active(eb_procs *p, run *r) {
    if (r->prev)
        r->prev->next = r->next;
    else
        p->active = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

/* fds 0..2 of the server (if closed) could be handed out by pipe2; keep ours
 * above them so dup2 onto 0/1/2 in the child is never a no-op. */
static int lift_fd(int fd) {
    if (fd > 2)
        return fd;
    int n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return n;
}

static int make_pipe(int fds[2]) {
    if (pipe2(fds, O_CLOEXEC))
        return -1;
    fds[0] = lift_fd(fds[0]);
    fds[1] = lift_fd(fds[1]);
    if (fds[0] < 0 || fds[1] < 0) {
        int e = errno;
        close_fd(&fds[0]);
        close_fd(&fds[1]);
        errno = e;
        return -1;
    }
    return 0;
}

static int set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Start r's shell; 0, or -1 with errno (nothing left open). */
static int spawn(run *r) {
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int have_fa = 0, have_at = 0, rc;
    if (make_pipe(in) || make_pipe(out))
        goto fail_errno;
    if ((rc = posix_spawn_file_actions_init(&fa)))
        goto fail_rc;
    have_fa = 1;
    if ((rc = posix_spawn_file_actions_adddup2(&fa, in[0], 0)) || (rc = posix_spawn_file_actions_adddup2(&fa, out[1], 1)) ||
        (rc = posix_spawn_file_actions_adddup2(&fa, out[1], 2)) ||
        /* nothing of the server but 0/1/2, whether or not its fds are close-on-exec */
        (rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3)))
        goto fail_rc;
    if ((rc = posix_spawnattr_init(&at)))
        goto fail_rc;
    have_at = 1;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    if ((rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) ||
        (rc = posix_spawnattr_setpgroup(&at, 0)) || (rc = posix_spawnattr_setsigmask(&at, &none)) ||
        (rc = posix_spawnattr_setsigdefault(&at, &all)))
        goto fail_rc;
    char *argv[] = {"sh", "-c", (char *)r->program, NULL};
    if ((rc = posix_spawn(&r->pid, "/bin/sh", &fa, &at, argv, environ)))
        goto fail_rc;
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(in[0]);
    close(out[1]);
    r->in_fd = in[1];
    r->out_fd = out[0];
    set_nonblock(r->in_fd);
    set_nonblock(r->out_fd);
#ifdef SYS_pidfd_open
    r->pidfd = (int)syscall(SYS_pidfd_open, r->pid, 0); /* close-on-exec by definition */
#endif
    if (r->len == 0)
        close_fd(&r->in_fd);
    return 0;
fail_errno:
    rc = errno;
fail_rc:
    if (have_fa)
        posix_spawn_file_actions_destroy(&fa);
    if (have_at)
        posix_spawnattr_destroy(&at);
    close_fd(&in[0]);
    close_fd(&in[1]);
    close_fd(&out[0]);
    close_fd(&out[1]);
    r->pid = 0;
    errno = rc;
    return -1;
}

static void consume_sigpipe(void) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&s, NULL, &zero) > 0) {
    }
}

static void do_write(run *r) {
    while (r->off < r->len) {
        ssize_t w = write(r->in_fd, r->payload + r->off, r->len - r->off);
        if (w > 0) {
            r->off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return;
        if (w < 0 && errno == EPIPE)
            consume_sigpipe();
        break; /* the program closed its stdin: the rest is dropped */
    }
    close_fd(&r->in_fd);
}

static void do_read(run *r) {
    char buf[16384];
    for (int i = 0; i < READS_PER_WAKE; i++) {
        ssize_t n = read(r->out_fd, buf, sizeof buf);
        if (n > 0) {
            size_t keep = 0;
            if (r->out.n < EB_PROC_OUTPUT_MAX) {
                keep = EB_PROC_OUTPUT_MAX - r->out.n;
                if (keep > (size_t)n)
                    keep = (size_t)n;
                if (eb_buf_append(&r->out, buf, keep))
                    keep = 0; /* out of memory: count it as dropped */
            }
            if (keep < (size_t)n)
                r->truncated = 1;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        close_fd(&r->out_fd); /* EOF (or an error: nothing more to read) */
        return;
    }
}

static void do_reap(run *r, int block) {
    int st;
    pid_t w;
    do
        w = waitpid(r->pid, &st, block ? 0 : WNOHANG);
    while (w < 0 && errno == EINTR);
    if (w == r->pid) {
        r->exited = 1;
        r->status = st;
        close_fd(&r->pidfd);
    } else if (w < 0) {
        /* ECHILD: reaped elsewhere (SIGCHLD ignored, or waitpid(-1) in the server) */
        r->exited = 1;
        r->status = -1;
        close_fd(&r->pidfd);
    }
}

static void finish_exited(run *r, const char *note) {
    if (r->status == -1)
        finish(r, EB_PROC_EXITED, -1, "exit status unknown: the child was reaped elsewhere");
    else if (WIFSIGNALED(r->status))
        finish(r, EB_PROC_SIGNALED, WTERMSIG(r->status), note);
    else
        finish(r, EB_PROC_EXITED, WEXITSTATUS(r->status), note);
}

/* After the poll: move r along; 1 when it completed (and was freed). */
static int step(eb_procs *p, run *r, uint64_t now) {
    struct pollfd *pfd = p->pfd;
    if (r->pi_in >= 0 && pfd[r->pi_in].revents)
        do_write(r);
    if (r->pi_out >= 0 && pfd[r->pi_out].revents)
        do_read(r);
    if (!r->exited && (r->pidfd < 0 || (r->pi_pid >= 0 && pfd[r->pi_pid].revents)))
        do_reap(r, 0);
    if (r->exited && (r->out_fd < 0 || r->killed)) {
        unlink_active(p, r);
        if (r->killed && r->out_fd >= 0)
            do_read(r);
        if (r->killed == 1)
            finish(r, EB_PROC_TIMEOUT, SIGKILL, "timed out: process group killed");
        else
            finish_exited(r, NULL);
        return 1;
    }
    if (now >= r->deadline_ns && !r->killed) {
        kill(-r->pid, SIGKILL);
        close_fd(&r->in_fd);
        if (r->exited) {
            /* the shell is done but something it started holds the output open */
            unlink_active(p, r);
            do_read(r);
            finish_exited(r, "output still open at the deadline: process group killed");
            return 1;
        }
        r->killed = 1; /* completes as TIMEOUT once the shell is reaped */
    }
    return 0;
}

static int grow_pfd(eb_procs *p, size_t need) {
    if (need <= p->npfd_cap)
        return 0;
    size_t cap = p->npfd_cap ? p->npfd_cap * 2 : 64;
    while (cap < need)
        cap *= 2;
    struct pollfd *n = realloc(p->pfd, cap * sizeof *n);
    if (!n)
        return -1;
    p->pfd = n;
    p->npfd_cap = cap;
    return 0;
}

static void *reactor(void *arg) {
    prctl(PR_SET_NAME, "eb-procs", 0, 0, 0); /* for top -H, perf */
    eb_procs *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        run *in = p->inbox;
        p->inbox = p->inbox_tail = NULL;
        int stopping = p->stopping;
        pthread_mutex_unlock(&p->mu);
        while (in) {
            run *r = in;
            in = in->next;
            r->next = NULL;
            if (stopping) {
                finish(r, EB_PROC_CANCELLED, 0, "shut down before start");
            } else if (spawn(r)) {
                int e = errno;
                char msg[200];
                snprintf(msg, sizeof msg, "cannot start /bin/sh: %s", strerror(e));
                finish(r, EB_PROC_SPAWN_FAILED, e, msg);
            } else {
                r->next = p->active;
                if (p->active)
                    p->active->prev = r;
                p->active = r;
            }
        }
        if (stopping)
            break;

        size_t nruns = 0;
        for (run *r = p->active; r; r = r->next)
            nruns++;
        if (grow_pfd(p, 1 + 3 * nruns)) {
            /* out of memory for the poll array: wait a little and retry */
            struct timespec ts = {0, 10 * 1000000};
            nanosleep(&ts, NULL);
            continue;
        }
        size_t n = 0;
        p->pfd[n++] = (struct pollfd){.fd = p->wake_fd, .events = POLLIN};
        uint64_t now = eb_mono_ns();
        int timeout = -1;
        for (run *r = p->active; r; r = r->next) {
            r->pi_in = r->pi_out = r->pi_pid = -1;
            if (r->in_fd >= 0) {
                r->pi_in = (int)n;
                p->pfd[n++] = (struct pollfd){.fd = r->in_fd, .events = POLLOUT};
            }
            if (r->out_fd >= 0) {
                r->pi_out = (int)n;
                p->pfd[n++] = (struct pollfd){.fd = r->out_fd, .events = POLLIN};
            }
            if (!r->exited && r->pidfd >= 0) {
                r->pi_pid = (int)n;
                p->pfd[n++] = (struct pollfd){.fd = r->pidfd, .events = POLLIN};
            }
            int t = 0;
            if (!r->killed)
                t = r->deadline_ns > now ? (int)((r->deadline_ns - now + 999999) / 1000000) : 0;
            else if (r->pidfd < 0)
                t = NO_PIDFD_POLL_MS;
            else
                t = -1; /* killed: the pidfd tells */
            if (!r->exited && r->pidfd < 0 && (t < 0 || t > NO_PIDFD_POLL_MS))
                t = NO_PIDFD_POLL_MS;
            if (t >= 0 && (timeout < 0 || t < timeout))
                timeout = t;
        }
        int rc = poll(p->pfd, n, timeout);
        if (rc < 0 && errno != EINTR) {
            struct timespec ts = {0, 10 * 1000000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (rc < 0)
            continue;
        if (p->pfd[0].revents) {
            uint64_t v;
            ssize_t rd = read(p->wake_fd, &v, sizeof v);
            (void)rd;
        }
        now = eb_mono_ns();
        for (run *r = p->active, *next; r; r = next) {
            next = r->next;
            step(p, r, now);
        }
    }
    /* shutdown: kill, reap and cancel every run still going */
    while (p->active) {
        run *r = p->active;
        unlink_active(p, r);
        if (!r->exited) {
            kill(-r->pid, SIGKILL);
            do_reap(r, 1);
        } else {
            kill(-r->pid, SIGKILL); /* whatever still holds its output */
        }
        finish(r, EB_PROC_CANCELLED, 0, "shut down: process group killed");
    }
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------------- */


eb_procs *eb_procs_new(char *err, size_t errlen) {
    eb_procs *p = calloc(1, sizeof *p);
    if (!p) {
        eb_set_err(err, errlen, "out of memory");
        return NULL;
    }
    p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->wake_fd < 0) {
        eb_set_err(err, errlen, "eventfd failed");
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&p->thread, NULL, reactor, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        eb_set_err(err, errlen, "cannot start the process reactor thread");
        close(p->wake_fd);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    return p;
}

void eb_procs_free(eb_procs *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    uint64_t one = 1;
    ssize_t w = write(p->wake_fd, &one, sizeof one);
    (void)w;
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    close(p->wake_fd);
    free(p->pfd);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
