/* ebridge serve: the EventBridge API server on the embedded SQLite store. */
#define _GNU_SOURCE
#include "../api/api.h"
#include "../api/http.h"
#include "../deliver/deliver.h"
#include "../store/store.h"
#include "../util/metrics.h"
#include "../util/util.h"
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    char host[256];
    unsigned port;
    char metrics_host[256]; /* --metrics-listen; "" = GET /metrics on the API port */
    unsigned metrics_port;
    const char *data_dir;
    const char *config;
    const char *region, *account;
    eb_log_level log_level;
    int insecure, strict_sources;
    eb_sync_mode sync;
    int64_t retention_s;
    unsigned threads;
    size_t max_entries_bytes;
    size_t max_body;
    eb_credential *creds;
    size_t ncreds;
    eb_function *functions;
    size_t nfunctions, capfunctions;
    char **fn_strs; /* strings made for functions from flags */
    size_t nfn_strs;
    long function_timeout_ms;
    unsigned function_concurrency;
    double time_scale;
    int no_delivery;
    json_t *config_doc; /* owns the strings of creds and of values read from the config */
} serve_opts;

static void serve_usage(FILE *out)
{
    fputs("usage: ebridge serve [--listen HOST:PORT] [--data-dir DIR] [--config FILE]\n"
          "                     [--region R] [--account 123456789012] [--log-level debug|info|warn|error]\n"
          "                     [--sync full|normal|off] [--retention SECONDS] [--threads N]\n"
          "                     [--strict-sources] [--insecure] [--metrics-listen HOST:PORT]\n"
          "                     [--function NAME=PROGRAM|URL]... [--function-timeout SECONDS]\n"
          "                     [--function-concurrency N] [--test-time-scale X] [--no-delivery]\n"
          "defaults: --listen 127.0.0.1:4010 --data-dir ./ebridge-data --region us-east-1\n"
          "          --account 000000000000 --sync full --retention 0 --log-level info\n",
          out);
}

static int parse_hostport(const char *s, char *host, size_t hostlen, unsigned *port)
{
    const char *colon;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        size_t n = (size_t)(close - s - 1);
        if (n >= hostlen)
            return -1;
        memcpy(host, s + 1, n);
        host[n] = 0;
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        size_t n = (size_t)(colon - s);
        if (n >= hostlen)
            return -1;
        memcpy(host, s, n);
        host[n] = 0;
        if (!n)
            snprintf(host, hostlen, "127.0.0.1");
    }
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || p < 0 || p > 65535 || end == colon + 1)
        return -1;
    *port = (unsigned)p;
    if (!strcmp(host, "localhost"))
        snprintf(host, hostlen, "127.0.0.1");
    return 0;
}

static int parse_listen(const char *s, serve_opts *o)
{
    return parse_hostport(s, o->host, sizeof o->host, &o->port);
}

static int parse_metrics_listen(const char *s, serve_opts *o)
{
    return parse_hostport(s, o->metrics_host, sizeof o->metrics_host, &o->metrics_port);
}

static int is_loopback(const char *host)
{
    return !strncmp(host, "127.", 4) || !strcmp(host, "::1");
}

static int valid_account(const char *s)
{
    if (strlen(s) != 12)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

static int parse_sync(const char *s, eb_sync_mode *m)
{
    if (!strcmp(s, "full"))
        *m = EB_SYNC_FULL;
    else if (!strcmp(s, "normal"))
        *m = EB_SYNC_NORMAL;
    else if (!strcmp(s, "off"))
        *m = EB_SYNC_OFF;
    else
        return -1;
    return 0;
}

/* One function target: NAME -> a program (run with /bin/sh -c) or an http(s) URL. */
static int add_function(serve_opts *o, const char *name, size_t nlen, const char *what)
{
    if (!nlen || nlen > 64 || !*what) {
        fprintf(stderr, "ebridge serve: a function needs NAME=PROGRAM or NAME=URL\n");
        return -1;
    }
    if (o->nfunctions == o->capfunctions) {
        size_t nc = o->capfunctions ? o->capfunctions * 2 : 4;
        eb_function *nf = realloc(o->functions, nc * sizeof *nf);
        char **ns = realloc(o->fn_strs, nc * sizeof *ns);
        if (nf)
            o->functions = nf;
        if (ns)
            o->fn_strs = ns;
        if (!nf || !ns)
            return -1;
        o->capfunctions = nc;
    }
    char *n = strndup(name, nlen);
    if (!n)
        return -1;
    o->fn_strs[o->nfn_strs++] = n;
    /* a later definition of the same name wins */
    for (size_t i = 0; i < o->nfunctions; i++)
        if (!strcmp(o->functions[i].name, n)) {
            o->functions[i] = o->functions[--o->nfunctions];
            break;
        }
    int url = !strncmp(what, "http://", 7) || !strncmp(what, "https://", 8);
    o->functions[o->nfunctions++] = (eb_function){n, url ? NULL : what, url ? what : NULL};
    return 0;
}

/* The config file (JSON): every option below is optional; flags win.
 * {"listen": "127.0.0.1:4010", "data_dir": "...", "region": "us-east-1",
 *  "account": "000000000000", "log_level": "info", "sync": "full",
 *  "retention_seconds": 0, "threads": 0, "strict_sources": false, "insecure": false,
 *  "max_entries_bytes": 262144, "metrics_listen": "127.0.0.1:9464",
 *  "credentials": [{"access_key_id": "AK...", "secret_access_key": "...", "account": "123456789012"}],
 *  "functions": {"NAME": "PROGRAM or http(s) URL"}, "function_timeout_seconds": 30,
 *  "function_concurrency": 8} */
static int load_config(serve_opts *o)
{
    json_error_t je;
    json_t *d = json_load_file(o->config, 0, &je);
    if (!json_is_object(d)) {
        fprintf(stderr, "ebridge serve: cannot read config %s: %s (line %d)\n", o->config, je.text, je.line);
        json_decref(d);
        return -1;
    }
    o->config_doc = d;
    const char *s;
    if ((s = json_string_value(json_object_get(d, "listen"))) && parse_listen(s, o)) {
        fprintf(stderr, "ebridge serve: config: bad listen address '%s'\n", s);
        return -1;
    }
    if ((s = json_string_value(json_object_get(d, "metrics_listen"))) && parse_metrics_listen(s, o)) {
        fprintf(stderr, "ebridge serve: config: bad metrics_listen address '%s'\n", s);
        return -1;
    }
    if ((s = json_string_value(json_object_get(d, "data_dir"))))
        o->data_dir = s;
    if ((s = json_string_value(json_object_get(d, "region"))))
        o->region = s;
    if ((s = json_string_value(json_object_get(d, "account"))))
        o->account = s;
    if ((s = json_string_value(json_object_get(d, "log_level"))) && eb_log_parse_level(s, &o->log_level)) {
        fprintf(stderr, "ebridge serve: config: bad log_level '%s'\n", s);
        return -1;
    }
    if ((s = json_string_value(json_object_get(d, "sync"))) && parse_sync(s, &o->sync)) {
        fprintf(stderr, "ebridge serve: config: bad sync '%s'\n", s);
        return -1;
    }
    json_t *v;
    if (json_is_integer(v = json_object_get(d, "retention_seconds")))
        o->retention_s = json_integer_value(v);
    if (json_is_integer(v = json_object_get(d, "threads")))
        o->threads = (unsigned)json_integer_value(v);
    if (json_is_integer(v = json_object_get(d, "max_entries_bytes")))
        o->max_entries_bytes = (size_t)json_integer_value(v);
    if (json_is_boolean(v = json_object_get(d, "strict_sources")))
        o->strict_sources = json_is_true(v);
    if (json_is_boolean(v = json_object_get(d, "insecure")))
        o->insecure = json_is_true(v);
    const char *fk;
    json_object_foreach(json_object_get(d, "functions"), fk, v) {
        if (!json_is_string(v) || add_function(o, fk, strlen(fk), json_string_value(v))) {
            fprintf(stderr, "ebridge serve: config: functions.%s must be a program or a URL\n", fk);
            return -1;
        }
    }
    if (json_is_number(v = json_object_get(d, "function_timeout_seconds")))
        o->function_timeout_ms = (long)(json_number_value(v) * 1000);
    if (json_is_integer(v = json_object_get(d, "function_concurrency")))
        o->function_concurrency = (unsigned)json_integer_value(v);
    json_t *creds = json_object_get(d, "credentials");
    size_t n = json_array_size(creds);
    if (n) {
        o->creds = calloc(n, sizeof *o->creds);
        if (!o->creds)
            return -1;
        size_t i;
        json_array_foreach(creds, i, v) {
            const char *ak = json_string_value(json_object_get(v, "access_key_id"));
            const char *sk = json_string_value(json_object_get(v, "secret_access_key"));
            const char *acct = json_string_value(json_object_get(v, "account"));
            if (!acct)
                acct = o->account;
            if (!ak || !sk || !valid_account(acct)) {
                fprintf(stderr, "ebridge serve: config: credentials[%zu] needs access_key_id, secret_access_key "
                                "and a 12-digit account\n",
                        i);
                return -1;
            }
            o->creds[o->ncreds++] = (eb_credential){ak, sk, acct};
        }
    }
    return 0;
}

static int parse_args(int argc, char **argv, serve_opts *o)
{
    /* the config file is read first so that flags override it */
    for (int i = 1; i < argc - 1; i++)
        if (!strcmp(argv[i], "--config"))
            o->config = argv[i + 1];
    if (o->config && load_config(o))
        return -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(a, "--listen") && val) {
            if (parse_listen(val, o)) {
                fprintf(stderr, "ebridge serve: bad --listen '%s' (HOST:PORT)\n", val);
                return -1;
            }
        } else if (!strcmp(a, "--metrics-listen") && val) {
            if (parse_metrics_listen(val, o)) {
                fprintf(stderr, "ebridge serve: bad --metrics-listen '%s' (HOST:PORT)\n", val);
                return -1;
            }
        } else if (!strcmp(a, "--data-dir") && val) {
            o->data_dir = val;
        } else if (!strcmp(a, "--config") && val) {
            /* read above */
        } else if (!strcmp(a, "--region") && val) {
            o->region = val;
        } else if (!strcmp(a, "--account") && val) {
            o->account = val;
        } else if (!strcmp(a, "--log-level") && val) {
            if (eb_log_parse_level(val, &o->log_level)) {
                fprintf(stderr, "ebridge serve: bad --log-level '%s'\n", val);
                return -1;
            }
        } else if (!strcmp(a, "--sync") && val) {
            if (parse_sync(val, &o->sync)) {
                fprintf(stderr, "ebridge serve: bad --sync '%s' (full|normal|off)\n", val);
                return -1;
            }
        } else if (!strcmp(a, "--retention") && val) {
            o->retention_s = strtoll(val, NULL, 10);
        } else if (!strcmp(a, "--threads") && val) {
            o->threads = (unsigned)strtoul(val, NULL, 10);
        } else if (!strcmp(a, "--strict-sources")) {
            o->strict_sources = 1;
            takes = 0;
        } else if (!strcmp(a, "--insecure")) {
            o->insecure = 1;
            takes = 0;
        } else if (!strcmp(a, "--function") && val) {
            const char *eq = strchr(val, '=');
            if (!eq || add_function(o, val, (size_t)(eq - val), eq + 1)) {
                fprintf(stderr, "ebridge serve: bad --function '%s' (NAME=PROGRAM or NAME=URL)\n", val);
                return -1;
            }
        } else if (!strcmp(a, "--function-timeout") && val) {
            o->function_timeout_ms = (long)(strtod(val, NULL) * 1000);
            if (o->function_timeout_ms <= 0) {
                fprintf(stderr, "ebridge serve: bad --function-timeout '%s'\n", val);
                return -1;
            }
        } else if (!strcmp(a, "--no-delivery")) {
            o->no_delivery = 1; /* ingest only: jobs wait in the store for a later start */
            takes = 0;
        } else if (!strcmp(a, "--function-concurrency") && val) {
            o->function_concurrency = (unsigned)strtoul(val, NULL, 10);
        } else if (!strcmp(a, "--test-time-scale") && val) {
            o->time_scale = strtod(val, NULL);
            if (!(o->time_scale >= 1 && o->time_scale <= 1e6)) {
                fprintf(stderr, "ebridge serve: bad --test-time-scale '%s' (1 to 1000000)\n", val);
                return -1;
            }
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            serve_usage(stdout);
            exit(0);
        } else {
            fprintf(stderr, "ebridge serve: unknown or incomplete option '%s'\n", a);
            serve_usage(stderr);
            return -1;
        }
        i += takes;
    }
    if (!valid_account(o->account)) {
        fprintf(stderr, "ebridge serve: the account must be 12 digits, not '%s'\n", o->account);
        return -1;
    }
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    uint64_t t0 = eb_mono_ns();
    serve_opts o = {.port = 4010,
                    .data_dir = "./ebridge-data",
                    .region = "us-east-1",
                    .account = "000000000000",
                    .log_level = EB_LOG_INFO,
                    .sync = EB_SYNC_FULL,
                    .max_entries_bytes = 262144,
                    .max_body = 4u << 20};
    snprintf(o.host, sizeof o.host, "127.0.0.1");
    int rc = 2;
    eb_store *store = NULL;
    eb_core *core = NULL;
    eb_api *api = NULL;
    eb_http_server *srv = NULL, *msrv = NULL;
    eb_metrics *metrics = NULL;
    eb_deliver *dlv = NULL;
    if (parse_args(argc, argv, &o))
        goto out;
    eb_log_set_level(o.log_level);
    if (!is_loopback(o.host) && !o.ncreds && !o.insecure) {
        fprintf(stderr,
                "ebridge serve: refusing to listen on %s without credentials: configure \"credentials\" in --config, "
                "or pass --insecure to accept unsigned requests from the network\n",
                o.host);
        goto out;
    }
    /* signals: handled by sigwait in this thread; every thread started below inherits the mask */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    metrics = eb_metrics_new();
    if (!metrics) {
        fprintf(stderr, "ebridge serve: out of memory\n");
        goto out;
    }
    eb_store_options so = {.sync = o.sync, .retention_s = o.retention_s};
    store = eb_store_open_sqlite(o.data_dir, &so, err, sizeof err);
    if (!store) {
        fprintf(stderr, "ebridge serve: cannot open the store in %s: %s\n", o.data_dir, err);
        goto out;
    }
    eb_core_config cc;
    eb_core_config_defaults(&cc);
    cc.strict_sources = o.strict_sources;
    cc.max_entries_bytes = o.max_entries_bytes;
    cc.metrics = metrics;
    core = eb_core_open(&cc, store, err, sizeof err);
    if (!core) {
        fprintf(stderr, "ebridge serve: %s\n", err);
        goto out;
    }
    eb_deliver_config dc;
    eb_deliver_config_defaults(&dc);
    dc.core = core;
    dc.store = store;
    dc.data_dir = o.data_dir;
    dc.metrics = metrics;
    dc.functions = o.functions;
    dc.nfunctions = o.nfunctions;
    if (o.function_timeout_ms > 0)
        dc.function_timeout_ms = o.function_timeout_ms;
    if (o.function_concurrency)
        dc.function_concurrency = o.function_concurrency;
    if (o.time_scale >= 1)
        dc.time_scale = o.time_scale;
    dlv = o.no_delivery ? NULL : eb_deliver_start(&dc, err, sizeof err);
    if (!dlv && !o.no_delivery) {
        fprintf(stderr, "ebridge serve: cannot start delivery: %s\n", err);
        goto out;
    }
    eb_api_config ac = {.default_account = o.account,
                        .default_region = o.region,
                        .creds = o.creds,
                        .ncreds = o.ncreds,
                        .max_body = o.max_body,
                        .metrics = metrics,
                        .metrics_here = !o.metrics_host[0]};
    api = eb_api_new(&ac, core);
    eb_http_config hc = {.host = o.host, .port = o.port, .threads = o.threads, .max_body = o.max_body};
    if (!api || eb_http_start(&hc, eb_api_http_handler, api, &srv, err, sizeof err)) {
        fprintf(stderr, "ebridge serve: cannot listen on %s:%u: %s\n", o.host, o.port, api ? err : "out of memory");
        goto out;
    }
    /* GET /metrics: on its own port without auth, or on the API's (signed when credentials are configured) */
    char metrics_at[300] = "api";
    if (o.metrics_host[0]) {
        eb_http_config mc = {.host = o.metrics_host, .port = o.metrics_port, .threads = 1, .max_body = 65536};
        if (eb_http_start(&mc, eb_api_metrics_http_handler, metrics, &msrv, err, sizeof err)) {
            fprintf(stderr, "ebridge serve: cannot listen on %s:%u for metrics: %s\n", o.metrics_host, o.metrics_port,
                    err);
            goto out;
        }
        snprintf(metrics_at, sizeof metrics_at, "%s:%u", o.metrics_host, eb_http_port(msrv));
    }
    eb_log(EB_LOG_INFO, "listening",
           "addr=%s:%u metrics=%s data_dir=%s region=%s account=%s auth=%s sync=%s start_ms=%.1f", o.host,
           eb_http_port(srv), metrics_at, o.data_dir, o.region, o.account, o.ncreds ? "sigv4" : "off",
           o.sync == EB_SYNC_FULL ? "full" : o.sync == EB_SYNC_NORMAL ? "normal" : "off",
           (double)(eb_mono_ns() - t0) / 1e6);
    int sig = 0;
    sigwait(&set, &sig);
    eb_log(EB_LOG_INFO, "shutting down", "signal=%d", sig);
    rc = 0;
out:
    if (srv)
        eb_http_stop(srv, 10000); /* drain in-flight requests; PutEvents waits for its commit */
    if (msrv)
        eb_http_stop(msrv, 1000);
    eb_api_free(api);
    eb_deliver_stop(dlv); /* attempts in flight are delivered again after the next start */
    eb_core_close(core);
    eb_store_close(store);
    eb_metrics_free(metrics); /* last: api, core and the store's callbacks count into it */
    free(o.creds);
    for (size_t i = 0; i < o.nfn_strs; i++)
        free(o.fn_strs[i]);
    free(o.fn_strs);
    free(o.functions);
    json_decref(o.config_doc);
    if (rc == 0)
        eb_log(EB_LOG_INFO, "stopped", NULL);
    return rc;
}
