/* ebridge dead-letters: list, re-drive and delete the dead letters of the
 * store in a data directory (the server may be running: SQLite's WAL lets
 * both use the store, and the server's delivery engine picks re-driven jobs
 * up on its next scan of the queue, within seconds). */
#define _GNU_SOURCE
#include "../store/store.h"
#include "../util/util.h"
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void dl_usage(FILE *out)
{
    fputs("usage: ebridge dead-letters [--data-dir DIR] list [--queue QUEUE]\n"
          "       ebridge dead-letters [--data-dir DIR] redrive [--queue QUEUE] [--id N]...\n"
          "       ebridge dead-letters [--data-dir DIR] delete [--queue QUEUE] [--id N]...\n"
          "QUEUE: the dead-letter queue's ARN (arn:aws:sqs:REGION:ACCOUNT:NAME) or its NAME.\n"
          "list prints one JSON object per dead letter: id, queue, time, attributes (RULE_ARN,\n"
          "TARGET_ARN, ERROR_CODE, ERROR_MESSAGE, EXHAUSTED_RETRY_CONDITION, RETRY_ATTEMPTS),\n"
          "rule, target_id, event_id and the event. redrive makes each selected dead letter's\n"
          "event pending again for its rule's target (fresh retries) and removes the dead letter;\n"
          "with neither --queue nor --id it takes every dead letter. Default --data-dir ./ebridge-data\n",
          out);
}

typedef struct {
    const char *queue_key;  /* ACCOUNT/REGION/NAME, or NULL */
    const char *queue_name; /* NAME (any account/region), or NULL */
    const int64_t *ids;
    size_t nids;
    int64_t *picked;
    size_t npicked, cap;
    int list;
} dl_sel;

static int dl_selected(const dl_sel *s, const eb_store_dead *d)
{
    if (s->queue_name) {
        const char *slash = strrchr(d->queue, '/');
        if (!slash || strcmp(slash + 1, s->queue_name))
            return 0;
    }
    if (s->nids) {
        for (size_t i = 0; i < s->nids; i++)
            if (s->ids[i] == d->id)
                return 1;
        return 0;
    }
    return 1;
}

static int dl_visit(void *ctx, const eb_store_dead *d)
{
    dl_sel *s = ctx;
    if (!dl_selected(s, d))
        return 0;
    if (s->list) {
        json_t *attrs = json_loads(d->attrs, 0, NULL);
        json_t *ev = json_loadb(d->body, d->len, 0, NULL);
        char t[21];
        eb_time_rfc3339(d->time_ms / 1000, t);
        json_t *o = json_pack("{s:I, s:s, s:s, s:o, s:s, s:s, s:s, s:o}", "id", (json_int_t)d->id, "queue", d->queue,
                              "time", t, "attributes", attrs ? attrs : json_object(), "rule", d->rule, "target_id",
                              d->target_id, "event_id", d->event_id, "event", ev ? ev : json_stringn(d->body, d->len));
        char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        if (line)
            printf("%s\n", line);
        free(line);
        json_decref(o);
        return 0;
    }
    if (s->npicked == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        int64_t *np = realloc(s->picked, nc * sizeof *np);
        if (!np)
            return 1;
        s->picked = np;
        s->cap = nc;
    }
    s->picked[s->npicked++] = d->id;
    return 0;
}

int cmd_dead_letters(int argc, char **argv)
{
    const char *dir = "./ebridge-data", *action = NULL, *queue = NULL;
    int64_t *ids = calloc((size_t)argc + 1, sizeof *ids);
    size_t nids = 0;
    if (!ids)
        return 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--data-dir") && val) {
            dir = val;
            i++;
        } else if (!strcmp(a, "--queue") && val) {
            queue = val;
            i++;
        } else if (!strcmp(a, "--id") && val) {
            char *end;
            long long v = strtoll(val, &end, 10);
            if (*end || v <= 0) {
                fprintf(stderr, "ebridge dead-letters: bad --id '%s'\n", val);
                free(ids);
                return 2;
            }
            ids[nids++] = v;
            i++;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            dl_usage(stdout);
            free(ids);
            return 0;
        } else if (!action && (!strcmp(a, "list") || !strcmp(a, "redrive") || !strcmp(a, "delete"))) {
            action = a;
        } else {
            fprintf(stderr, "ebridge dead-letters: unknown or incomplete option '%s'\n", a);
            dl_usage(stderr);
            free(ids);
            return 2;
        }
    }
    if (!action) {
        dl_usage(stderr);
        free(ids);
        return 2;
    }
    char key[800];
    dl_sel sel = {.ids = ids, .nids = nids, .list = !strcmp(action, "list")};
    if (queue && !strncmp(queue, "arn:", 4)) {
        char part[5][257];
        if (sscanf(queue, "arn:%256[^:]:%256[^:]:%256[^:]:%256[^:]:%256s", part[0], part[1], part[2], part[3],
                   part[4]) != 5 ||
            strcmp(part[1], "sqs")) {
            fprintf(stderr, "ebridge dead-letters: --queue '%s' is not an SQS queue ARN\n", queue);
            free(ids);
            return 2;
        }
        snprintf(key, sizeof key, "%s/%s/%s", part[3], part[2], part[4]);
        sel.queue_key = key;
    } else if (queue) {
        sel.queue_name = queue;
    }
    eb_log_set_level(EB_LOG_WARN);
    char err[512];
    eb_store_options so = {.sync = EB_SYNC_FULL};
    eb_store *st = eb_store_open_sqlite(dir, &so, err, sizeof err);
    if (!st) {
        fprintf(stderr, "ebridge dead-letters: cannot open the store in %s: %s\n", dir, err);
        free(ids);
        return 2;
    }
    int rc = eb_store_dead_scan(st, sel.queue_key, dl_visit, &sel) == EB_STORE_OK ? 0 : 2;
    size_t done = 0;
    for (size_t i = 0; rc == 0 && i < sel.npicked; i++) {
        int r = !strcmp(action, "redrive") ? eb_store_dead_redrive(st, sel.picked[i], eb_now_ms())
                                           : eb_store_dead_delete(st, sel.picked[i]);
        if (r == EB_STORE_OK)
            done++;
        else if (r != EB_STORE_ERR_NOTFOUND)
            rc = 2;
    }
    if (!sel.list)
        printf("%s %zu dead letter%s\n", !strcmp(action, "redrive") ? "re-drove" : "deleted", done,
               done == 1 ? "" : "s");
    if (rc)
        fprintf(stderr, "ebridge dead-letters: the store failed (see the log above)\n");
    eb_store_close(st);
    free(sel.picked);
    free(ids);
    return rc;
}
