/* Dispatch from the store interface to the backend's operations. */
#include "store.h"

#include <pthread.h>

void eb_store_close(eb_store *s)
{
    if (s)
        s->ops->close(s);
}

int eb_store_doc_put(eb_store *s, const char *kind, const char *key, const char *doc, size_t len)
{
    return s->ops->doc_put(s, kind, key, doc, len);
}

int eb_store_doc_delete(eb_store *s, const char *kind, const char *key)
{
    return s->ops->doc_delete(s, kind, key);
}

int eb_store_doc_scan(eb_store *s, const char *kind, eb_store_doc_fn fn, void *ctx)
{
    return s->ops->doc_scan(s, kind, fn, ctx);
}

int eb_store_append(eb_store *s, const eb_store_event *ev, size_t nev, const eb_store_job *jobs, size_t njobs,
                    eb_store_done_fn done, void *ctx)
{
    return s->ops->append(s, ev, nev, jobs, njobs, done, ctx);
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, status;
} waiter;

static void wake_waiter(void *ctx, int status)
{
    waiter *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->status = status;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int eb_store_append_wait(eb_store *s, const eb_store_event *ev, size_t nev, const eb_store_job *jobs, size_t njobs)
{
    waiter w = {.done = 0, .status = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    int rc = s->ops->append(s, ev, nev, jobs, njobs, wake_waiter, &w);
    if (rc == EB_STORE_OK) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rc = w.status;
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}

int eb_store_event_scan(eb_store *s, eb_store_event_fn fn, void *ctx)
{
    return s->ops->event_scan(s, fn, ctx);
}

int eb_store_stats_get(eb_store *s, eb_store_stats *out)
{
    return s->ops->stats(s, out);
}

void eb_store_set_job_sink(eb_store *s, eb_store_jobs_fn fn, void *ctx)
{
    s->ops->set_job_sink(s, fn, ctx);
}

int eb_store_job_scan(eb_store *s, int64_t after, size_t limit, int64_t *last, int (*want)(void *ctx, int64_t job_id),
                      eb_store_jobs_fn fn, void *ctx)
{
    return s->ops->job_scan(s, after, limit, last, want, fn, ctx);
}

int eb_store_job_update(eb_store *s, const eb_job_update *u, size_t n, eb_store_done_fn done, void *ctx)
{
    return s->ops->job_update(s, u, n, done, ctx);
}

int eb_store_dead_scan(eb_store *s, const char *queue, eb_store_dead_fn fn, void *ctx)
{
    return s->ops->dead_scan(s, queue, fn, ctx);
}

int eb_store_dead_redrive(eb_store *s, int64_t id, int64_t now_ms)
{
    return s->ops->dead_redrive(s, id, now_ms);
}

int eb_store_dead_delete(eb_store *s, int64_t id)
{
    return s->ops->dead_delete(s, id);
}
