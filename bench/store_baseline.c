/* The fsync'd SQLite baseline on this disk, and what the store's group commit
 * makes of it.
 *
 *  1. raw SQLite, one thread: 1 KB rows into a WAL database with
 *     synchronous=FULL (default auto-checkpoint), in transactions of 1, 100
 *     and 1000 rows, with 4 KiB pages (SQLite's default) and 16 KiB pages (the
 *     store's) (rows/s, commits/s);
 *  2. eb_store_append (EB_SYNC_FULL) from N concurrent threads, appends of
 *     E events of 1 KB with 1 job each:
 *       "wait"  -- each thread waits for its commit (eb_store_append_wait),
 *                  like an HTTP worker answering PutEvents (E up to 10);
 *       "async" -- each thread keeps up to 64 appends in flight;
 *     (events/s, commits/s, commits, appends, appends per commit).
 *
 * Build and run (from the repository root; the directory must be on the disk
 * to measure, it is created and emptied):
 *   gcc -std=c11 -O2 -Isrc bench/store_baseline.c src/store/store.c src/store/store_sqlite.c \
 *       src/util/util.c -lsqlite3 -lpthread -o /tmp/store_baseline
 *   /tmp/store_baseline [dir (default /tmp/eb_store_baseline)] [seconds per run (default 3)]
 */
#define _GNU_SOURCE
#include "store/store.h"
#include "util/util.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *dir = "/tmp/eb_store_baseline";
static double seconds = 3;
static char body[1024];

static double now_s(void)
{
    return (double)eb_mono_ns() / 1e9;
}

static void clean_dir(void)
{
    static const char *const files[] = {"ebridge.db", "ebridge.db-wal", "ebridge.db-shm",
                                        "raw.db",     "raw.db-wal",     "raw.db-shm"};
    char p[1024];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
}

static void die(sqlite3 *db, const char *what)
{
    fprintf(stderr, "%s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
    exit(1);
}

static void raw_sqlite(int per_txn, int page_size)
{
    clean_dir();
    mkdir(dir, 0700);
    char path[1024];
    snprintf(path, sizeof path, "%s/raw.db", dir);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        die(db, "open");
    char sql[256];
    snprintf(sql, sizeof sql,
             "PRAGMA page_size=%d; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
             "CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB NOT NULL);",
             page_size);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        die(db, "setup");
    sqlite3_stmt *ins, *begin, *commit;
    if (sqlite3_prepare_v2(db, "INSERT INTO t(body) VALUES (?1)", -1, &ins, NULL) ||
        sqlite3_prepare_v2(db, "BEGIN", -1, &begin, NULL) || sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL))
        die(db, "prepare");
    uint64_t rows = 0, commits = 0;
    double t0 = now_s(), t = t0;
    while (t - t0 < seconds) {
        sqlite3_step(begin);
        sqlite3_reset(begin);
        for (int i = 0; i < per_txn; i++) {
            sqlite3_bind_blob(ins, 1, body, sizeof body, SQLITE_STATIC);
            if (sqlite3_step(ins) != SQLITE_DONE)
                die(db, "insert");
            sqlite3_reset(ins);
        }
        if (sqlite3_step(commit) != SQLITE_DONE)
            die(db, "commit");
        sqlite3_reset(commit);
        rows += (uint64_t)per_txn;
        commits++;
        t = now_s();
    }
    double el = t - t0;
    printf("raw sqlite  synchronous=FULL page %5d  %4d rows/txn : %7.0f rows/s    %5.0f commits/s\n", page_size,
           per_txn, (double)rows / el, (double)commits / el);
    sqlite3_finalize(ins);
    sqlite3_finalize(begin);
    sqlite3_finalize(commit);
    sqlite3_close(db);
}

typedef struct {
    eb_store *s;
    int t, async, per;
    double stop_at;
    uint64_t n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inflight;
    atomic_int failed;
} worker;

#define WINDOW 64

static void done_async(void *ctx, int status)
{
    worker *w = ctx;
    if (status != EB_STORE_OK)
        atomic_fetch_add(&w->failed, 1);
    pthread_mutex_lock(&w->mu);
    w->inflight--;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void *run_worker(void *arg)
{
    worker *w = arg;
    char id[10][64];
    eb_store_job jobs[10];
    eb_store_event ev[10];
    for (int i = 0; i < 10; i++) {
        jobs[i] = (eb_store_job){.rule = "000000000000/us-east-1/default/rule-1", .target_id = "target-1"};
        ev[i] = (eb_store_event){.id = id[i],
                                 .account = "000000000000",
                                 .region = "us-east-1",
                                 .bus = "default",
                                 .body = body,
                                 .len = sizeof body,
                                 .first_job = (uint32_t)i,
                                 .njobs = 1};
    }
    size_t per = (size_t)w->per;
    while (now_s() < w->stop_at) {
        for (size_t i = 0; i < per; i++) {
            snprintf(id[i], sizeof id[i], "%d-%llu", w->t, (unsigned long long)(w->n + i));
            ev[i].time_ms = eb_now_ms();
        }
        if (w->async) {
            pthread_mutex_lock(&w->mu);
            while (w->inflight >= WINDOW)
                pthread_cond_wait(&w->cv, &w->mu);
            w->inflight++;
            pthread_mutex_unlock(&w->mu);
            if (eb_store_append(w->s, ev, per, jobs, per, done_async, w) != EB_STORE_OK) {
                atomic_fetch_add(&w->failed, 1);
                done_async(w, EB_STORE_OK);
            }
        } else if (eb_store_append_wait(w->s, ev, per, jobs, per) != EB_STORE_OK) {
            atomic_fetch_add(&w->failed, 1);
        }
        w->n += per;
    }
    pthread_mutex_lock(&w->mu);
    while (w->inflight > 0)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void store_run(int nthreads, int per, int async)
{
    clean_dir();
    eb_store_options o = {.sync = EB_SYNC_FULL, .retention_s = 0, .max_batch_events = 0};
    char err[256];
    eb_store *s = eb_store_open_sqlite(dir, &o, err, sizeof err);
    if (!s) {
        fprintf(stderr, "open: %s\n", err);
        exit(1);
    }
    worker *w = calloc((size_t)nthreads, sizeof *w);
    pthread_t *th = calloc((size_t)nthreads, sizeof *th);
    double t0 = now_s();
    for (int i = 0; i < nthreads; i++) {
        w[i].s = s;
        w[i].t = i;
        w[i].async = async;
        w[i].per = per;
        w[i].stop_at = t0 + seconds;
        pthread_mutex_init(&w[i].mu, NULL);
        pthread_cond_init(&w[i].cv, NULL);
        pthread_create(&th[i], NULL, run_worker, &w[i]);
    }
    uint64_t n = 0;
    int failed = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        n += w[i].n;
        failed += atomic_load(&w[i].failed);
    }
    double el = now_s() - t0;
    eb_store_stats st;
    eb_store_stats_get(s, &st);
    printf("eb_store_append %-5s %3d threads x %2d ev : %7.0f events/s  %5.0f commits/s  commits=%llu appends=%llu "
           "(%.1f appends/commit)%s\n",
           async ? "async" : "wait", nthreads, per, (double)n / el, (double)st.commits / el,
           (unsigned long long)st.commits, (unsigned long long)st.appends,
           st.commits ? (double)st.appends / (double)st.commits : 0.0, failed ? "  FAILURES" : "");
    double c0 = now_s();
    eb_store_close(s);
    double cl = now_s() - c0;
    if (cl > 0.5)
        printf("  (close took %.1f s)\n", cl);
    for (int i = 0; i < nthreads; i++) {
        pthread_mutex_destroy(&w[i].mu);
        pthread_cond_destroy(&w[i].cv);
    }
    free(w);
    free(th);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        dir = argv[1];
    if (argc > 2)
        seconds = atof(argv[2]);
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (char)('a' + i % 26);
    memcpy(body, "{\"id\":", 6);
    eb_log_set_level(EB_LOG_WARN);
    static const int raw_runs[][2] = {{1, 4096}, {100, 4096}, {1000, 4096}, {100, 16384}, {1000, 16384}};
    for (size_t i = 0; i < sizeof raw_runs / sizeof raw_runs[0]; i++)
        raw_sqlite(raw_runs[i][0], raw_runs[i][1]);
    static const int wait_runs[][2] = {{1, 1}, {8, 1}, {64, 1}, {256, 1}, {64, 10}};
    for (size_t i = 0; i < sizeof wait_runs / sizeof wait_runs[0]; i++)
        store_run(wait_runs[i][0], wait_runs[i][1], 0);
    static const int async_runs[][2] = {{1, 1}, {4, 1}, {16, 1}, {16, 10}};
    for (size_t i = 0; i < sizeof async_runs / sizeof async_runs[0]; i++)
        store_run(async_runs[i][0], async_runs[i][1], 1);
    clean_dir();
    rmdir(dir);
    return 0;
}
