/* Runs local programs ("functions") for the delivery engine, asynchronously:
 * one reactor thread per eb_procs polls every child's pipes and pidfd; no
 * thread per run.
 *
 * A run: `/bin/sh -c PROGRAM` in a new process group (pgid = its pid), with
 * default signal dispositions and an empty signal mask, the environment and
 * working directory of the server, and no fd of the server but 0/1/2: stdin
 * is a pipe the payload is written to (non-blocking on our side, then
 * closed), stdout and stderr share one pipe whose first EB_PROC_OUTPUT_MAX
 * bytes are kept (the rest is read and dropped, so the program never blocks
 * on output). A program that never reads stdin blocks nothing.
 *
 * The run ends when the shell has exited and the output pipe is at EOF, or at
 * the deadline: then the whole process group gets SIGKILL; the outcome is
 * EB_PROC_TIMEOUT if the shell was still running, else EB_PROC_EXITED /
 * EB_PROC_SIGNALED (with a note in error: something it started kept the
 * output open and was killed).
 *
 * Callbacks run exactly once per accepted run, on the reactor thread; they
 * must not block; they may call eb_procs_run but not eb_procs_free. The
 * result (and output) is valid only during the callback.
 *
 * Children are reaped by pid (waitpid on that pid only): the server must not
 * reap with waitpid(-1) elsewhere, nor set SIGCHLD to SIG_IGN (a run would
 * then report code -1 with an error). */
#ifndef EB_DELIVER_PROC_H
#define EB_DELIVER_PROC_H

#include <stddef.h>
#include <sys/types.h>

typedef struct eb_procs eb_procs;

typedef enum {
    EB_PROC_EXITED = 0,   /* code = exit status (sh: 127 = program not found, 126 = not executable) */
    EB_PROC_SIGNALED,     /* code = the signal that ended the shell */
    EB_PROC_TIMEOUT,      /* deadline passed; the process group was killed (code = SIGKILL) */
    EB_PROC_SPAWN_FAILED, /* no process could be started (error says why); code = errno */
    EB_PROC_CANCELLED     /* eb_procs_free before the end; the process group was killed */
} eb_proc_outcome;

#define EB_PROC_OUTPUT_MAX (64 * 1024)

typedef struct {
    eb_proc_outcome outcome;
    int code;              /* exit code, signal number or errno, per outcome */
    pid_t pid;             /* the shell's pid = the process group id; 0 if none was started */
    const char *output;    /* stdout+stderr interleaved, first EB_PROC_OUTPUT_MAX bytes, NUL-terminated */
    size_t output_len;
    int output_truncated;  /* more output was produced (and dropped) */
    double total_ms;       /* from eb_procs_run to completion */
    char error[256];       /* "" for a clean EXITED/SIGNALED; otherwise the cause */
} eb_proc_result;

typedef void (*eb_proc_cb)(void *ctx, const eb_proc_result *r);

/* A reactor with its thread. NULL on failure with a message in err. */
eb_procs *eb_procs_new(char *err, size_t errlen);

/* Start `/bin/sh -c program` with payload (len bytes, copied; may be NULL when
 * len is 0) on its stdin. timeout_ms <= 0 means 30000 (at most 24 h). Thread-safe. 0: cb
 * will run exactly once (spawn failures included). -1 (cb never runs): NULL
 * program/cb, out of memory, or shutting down. */
int eb_procs_run(eb_procs *p, const char *program, const char *payload, size_t len, long timeout_ms, eb_proc_cb cb,
                 void *ctx);

/* Kills every running program's process group, completes every run not yet
 * completed with EB_PROC_CANCELLED (after reaping it), stops the thread and
 * frees p (NULL is fine). Not from a callback; no eb_procs_run may start after
 * this has returned. */
void eb_procs_free(eb_procs *p);

const char *eb_proc_outcome_name(eb_proc_outcome o);

#endif
