/* The model and the operations (see core.h). Control-plane documents:
 *   kind "bus",  key ACCOUNT/REGION/BUS        -> the bus (Describe fields, Tags, Policy)
 *   kind "rule", key ACCOUNT/REGION/BUS/RULE   -> the rule (Describe fields, Tags, Targets)
 * Times are kept as integer milliseconds ("CreationTimeMs", ...). */
#define _GNU_SOURCE
#include "core.h"

#include "../deliver/transform.h" /* pure: input-mode validation shared with delivery */
#include "../util/util.h"
#include "connections.h"
#include "page.h"
#include "schedule.h"

#include <ebridge/pattern.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bus bus;
typedef struct region region;

typedef struct rule {
    char *name; /* first member: see named */
    json_t *doc;
    bus *bus;
    int in_machine;
} rule;

struct bus {
    char *name;
    json_t *doc;
    rule **rules;
    size_t nrules, caprules;
    eb_machine *m;
    region *reg;
};

struct region {
    char *name; /* "ACCOUNT/REGION" */
    char *account, *region;
    bus **buses;
    size_t nbuses, capbuses;
};

typedef struct {
    char *name;
} named;

struct eb_core {
    eb_core_config cfg;
    eb_store *store;
    pthread_rwlock_t lock;
    region **regions;
    size_t nregions, capregions;
    pthread_mutex_t pool_mu;
    eb_matcher **pool;
    size_t npool, cappool;
    eb_conns *conns; /* connections and API destinations: own lock (connections.c) */
    _Atomic uint64_t gen; /* eb_core_generation */
};

static const char *const PREDEFINED[] = {"aws.events.rule-arn", "aws.events.rule-name",
                                         "aws.events.event.ingestion-time", "aws.events.event",
                                         "aws.events.event.json"};

/* ---- errors ------------------------------------------------------------------ */
__attribute__((format(printf, 3, 4))) static json_t *fail(eb_core_error *e, const char *type, const char *fmt, ...)
{
    e->type = type;
    e->http = (!strcmp(type, "InternalException") || !strcmp(type, "InternalFailure")) ? 500 : 400;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return NULL;
}

static json_t *fail_store(eb_core_error *e)
{
    return fail(e, "InternalException", "The server could not write to its store; nothing was changed.");
}

/* ---- small helpers ------------------------------------------------------------ */
static const char *sget(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int bget(const json_t *o, const char *k)
{
    return json_is_true(json_object_get(o, k));
}

static void copy_member(json_t *dst, const json_t *src, const char *k)
{
    json_t *v = json_object_get(src, k);
    if (v && !json_is_null(v))
        json_object_set(dst, k, v);
}

static json_t *epoch_json(json_int_t ms)
{
    if (ms % 1000 == 0)
        return json_integer(ms / 1000);
    return json_real((double)ms / 1000.0);
}

/* binary search over arrays of pointers to structs whose first member is the name */
static size_t find_named(void *const *arr, size_t n, const char *name, int *found)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(((const named *)arr[mid])->name, name);
        if (!c) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static int insert_at(void ***arr, size_t *n, size_t *cap, size_t at, void *item)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        void **na = realloc(*arr, nc * sizeof *na);
        if (!na)
            return -1;
        *arr = na;
        *cap = nc;
    }
    memmove(*arr + at + 1, *arr + at, (*n - at) * sizeof **arr);
    (*arr)[at] = item;
    (*n)++;
    return 0;
}

static void remove_at(void **arr, size_t *n, size_t at)
{
    memmove(arr + at, arr + at + 1, (*n - at - 1) * sizeof *arr);
    (*n)--;
}

/* ---- ARNs and names ------------------------------------------------------------- */
static void bus_arn(const eb_core *c, const region *r, const char *name, char *out, size_t n)
{
    snprintf(out, n, "arn:%s:events:%s:%s:event-bus/%s", c->cfg.partition, r->region, r->account, name);
}

static void rule_arn(const eb_core *c, const region *r, const char *busname, const char *name, char *out, size_t n)
{
    if (!strcmp(busname, "default"))
        snprintf(out, n, "arn:%s:events:%s:%s:rule/%s", c->cfg.partition, r->region, r->account, name);
    else
        snprintf(out, n, "arn:%s:events:%s:%s:rule/%s/%s", c->cfg.partition, r->region, r->account, busname, name);
}

/* An ARN split into its parts; resource is everything after the 5th ':'. */
typedef struct {
    char partition[32], service[32], region[64], account[32];
    const char *resource;
} arn_parts;

static int parse_arn(const char *s, arn_parts *a)
{
    if (strncmp(s, "arn:", 4))
        return -1;
    const char *p = s + 4;
    char *fields[4] = {a->partition, a->service, a->region, a->account};
    size_t sizes[4] = {sizeof a->partition, sizeof a->service, sizeof a->region, sizeof a->account};
    for (int i = 0; i < 4; i++) {
        const char *colon = strchr(p, ':');
        if (!colon || (size_t)(colon - p) >= sizes[i])
            return -1;
        memcpy(fields[i], p, (size_t)(colon - p));
        fields[i][colon - p] = 0;
        p = colon + 1;
    }
    a->resource = p;
    return 0;
}

/* EventBusName that is a name or a bus ARN -> the name (into out). -1 when
 * the ARN belongs to another account/region or is not a bus ARN. */
static int bus_name_of(const eb_caller *who, const char *s, char *out, size_t n)
{
    if (!s)
        s = "default";
    if (strncmp(s, "arn:", 4)) {
        snprintf(out, n, "%s", s);
        return 0;
    }
    arn_parts a;
    if (parse_arn(s, &a) || strcmp(a.service, "events") || strncmp(a.resource, "event-bus/", 10))
        return -1;
    snprintf(out, n, "%s", a.resource + 10);
    if (strcmp(a.account, who->account) || strcmp(a.region, who->region))
        return -1;
    return 0;
}

/* ---- regions, buses, rules in memory --------------------------------------------------- */
static void *named_get(void *const *arr, size_t n, const char *name)
{
    int found;
    size_t at = find_named(arr, n, name, &found);
    return found ? arr[at] : NULL;
}

static region *region_find(eb_core *c, const eb_caller *who)
{
    char key[128];
    snprintf(key, sizeof key, "%s/%s", who->account, who->region);
    return named_get((void *const *)c->regions, c->nregions, key);
}

static bus *bus_find(const region *r, const char *name)
{
    return r ? named_get((void *const *)r->buses, r->nbuses, name) : NULL;
}

static rule *rule_find(const bus *b, const char *name)
{
    return b ? named_get((void *const *)b->rules, b->nrules, name) : NULL;
}

static void rule_free(rule *r)
{
    if (!r)
        return;
    free(r->name);
    json_decref(r->doc);
    free(r);
}

static void bus_free(bus *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->nrules; i++)
        rule_free(b->rules[i]);
    free(b->rules);
    eb_machine_free(b->m);
    json_decref(b->doc);
    free(b->name);
    free(b);
}

static void region_free(region *r)
{
    for (size_t i = 0; i < r->nbuses; i++)
        bus_free(r->buses[i]);
    free(r->buses);
    free(r->name);
    free(r->account);
    free(r->region);
    free(r);
}

static bus *bus_attach(region *r, const char *name, json_t *doc)
{
    bus *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->name = strdup(name);
    b->m = eb_machine_new();
    int found;
    size_t at = find_named((void *const *)r->buses, r->nbuses, name, &found);
    if (!b->name || !b->m || found || insert_at((void ***)&r->buses, &r->nbuses, &r->capbuses, at, b)) {
        eb_machine_free(b->m);
        free(b->name);
        free(b);
        return NULL;
    }
    b->doc = json_incref(doc);
    b->reg = r;
    return b;
}

static region *region_attach(eb_core *c, const char *account, const char *rname)
{
    char key[128];
    snprintf(key, sizeof key, "%s/%s", account, rname);
    int found;
    size_t at = find_named((void *const *)c->regions, c->nregions, key, &found);
    if (found)
        return c->regions[at];
    region *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->name = strdup(key);
    r->account = strdup(account);
    r->region = strdup(rname);
    if (!r->name || !r->account || !r->region ||
        insert_at((void ***)&c->regions, &c->nregions, &c->capregions, at, r)) {
        region_free(r);
        return NULL;
    }
    return r;
}

static int store_bus(eb_core *c, const region *r, const char *name, const json_t *doc)
{
    char key[512];
    snprintf(key, sizeof key, "%s/%s", r->name, name);
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text)
        return -1;
    int rc = eb_store_doc_put(c->store, "bus", key, text, strlen(text));
    free(text);
    return rc;
}

static int store_rule(eb_core *c, const rule *ru, const json_t *doc)
{
    char key[512];
    snprintf(key, sizeof key, "%s/%s/%s", ru->bus->reg->name, ru->bus->name, ru->name);
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text)
        return -1;
    int rc = eb_store_doc_put(c->store, "rule", key, text, strlen(text));
    free(text);
    return rc;
}

/* Write a changed document durably, then make it the one in memory (the
 * doc's reference passes to the bus/rule, or is dropped on failure). */
static int bus_set_doc(eb_core *c, bus *b, json_t *doc, eb_core_error *e)
{
    if (store_bus(c, b->reg, b->name, doc)) {
        json_decref(doc);
        fail_store(e);
        return -1;
    }
    json_decref(b->doc);
    b->doc = doc;
    return 0;
}

static int rule_set_doc(eb_core *c, rule *ru, json_t *doc, eb_core_error *e)
{
    if (store_rule(c, ru, doc)) {
        json_decref(doc);
        fail_store(e);
        return -1;
    }
    json_decref(ru->doc);
    ru->doc = doc;
    return 0;
}

static int unstore(eb_core *c, const char *kind, const char *k1, const char *k2, const char *k3)
{
    char key[512];
    if (k3)
        snprintf(key, sizeof key, "%s/%s/%s", k1, k2, k3);
    else
        snprintf(key, sizeof key, "%s/%s", k1, k2);
    return eb_store_doc_delete(c->store, kind, key);
}

static json_t *new_bus_doc(const eb_core *c, const region *r, const char *name)
{
    char arn[2048];
    bus_arn(c, r, name, arn, sizeof arn);
    json_int_t now = eb_now_ms();
    return json_pack("{s:s, s:s, s:I, s:I, s:[]}", "Name", name, "Arn", arn, "CreationTimeMs", now,
                     "LastModifiedTimeMs", now, "Tags");
}

/* The caller's region, created with its default bus on first use. */
static region *region_get(eb_core *c, const eb_caller *who, eb_core_error *e)
{
    region *r = region_find(c, who);
    if (r)
        return r;
    r = region_attach(c, who->account, who->region);
    if (!r) {
        fail(e, "InternalException", "Out of memory.");
        return NULL;
    }
    json_t *doc = new_bus_doc(c, r, "default");
    if (!doc || store_bus(c, r, "default", doc) || !bus_attach(r, "default", doc)) {
        json_decref(doc);
        fail_store(e);
        return NULL;
    }
    json_decref(doc);
    return r;
}

/* Add/remove a rule in its bus's machine according to its state and pattern.
 * The pattern was validated when the rule was written. */
static int rule_sync_machine(rule *ru)
{
    const char *pat = sget(ru->doc, "EventPattern");
    const char *state = sget(ru->doc, "State");
    int want = pat && (!state || strcmp(state, "DISABLED"));
    uint64_t key = (uint64_t)(uintptr_t)ru;
    if (!want) {
        if (ru->in_machine)
            eb_machine_remove(ru->bus->m, key);
        ru->in_machine = 0;
        return 0;
    }
    eb_pattern *p = NULL;
    eb_error err;
    if (eb_pattern_compile(pat, strlen(pat), &p, &err) != EB_OK) {
        if (ru->in_machine)
            eb_machine_remove(ru->bus->m, key);
        ru->in_machine = 0;
        return -1;
    }
    eb_status st = eb_machine_add(ru->bus->m, key, p);
    eb_pattern_free(p);
    if (st != EB_OK)
        return -1;
    ru->in_machine = 1;
    return 0;
}

static rule *rule_attach(bus *b, const char *name, json_t *doc)
{
    rule *ru = calloc(1, sizeof *ru);
    if (!ru)
        return NULL;
    ru->name = strdup(name);
    int found;
    size_t at = find_named((void *const *)b->rules, b->nrules, name, &found);
    if (!ru->name || found || insert_at((void ***)&b->rules, &b->nrules, &b->caprules, at, ru)) {
        free(ru->name);
        free(ru);
        return NULL;
    }
    ru->doc = json_incref(doc);
    ru->bus = b;
    return ru;
}

static void rule_detach(rule *ru)
{
    bus *b = ru->bus;
    if (ru->in_machine)
        eb_machine_remove(b->m, (uint64_t)(uintptr_t)ru);
    int found;
    size_t at = find_named((void *const *)b->rules, b->nrules, ru->name, &found);
    if (found)
        remove_at((void **)b->rules, &b->nrules, at);
    rule_free(ru);
}

/* ---- loading --------------------------------------------------------------------------- */
static int split_key(const char *key, char parts[][257], int want)
{
    int n = 0;
    const char *p = key;
    while (n < want) {
        const char *slash = n == want - 1 ? NULL : strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len > 256)
            return -1;
        memcpy(parts[n], p, len);
        parts[n][len] = 0;
        n++;
        if (!slash)
            break;
        p = slash + 1;
    }
    return n == want ? 0 : -1;
}

static int load_bus(void *ctx, const char *key, const char *doc, size_t len)
{
    eb_core *c = ctx;
    char parts[3][257];
    json_t *d = json_loadb(doc, len, 0, NULL);
    if (split_key(key, parts, 3) || !json_is_object(d)) {
        eb_log(EB_LOG_ERROR, "store: unreadable bus document skipped", "key=%s", key);
        json_decref(d);
        return 0;
    }
    region *r = region_attach(c, parts[0], parts[1]);
    if (!r || !bus_attach(r, parts[2], d)) {
        json_decref(d);
        return 1;
    }
    json_decref(d);
    return 0;
}

static int load_rule(void *ctx, const char *key, const char *doc, size_t len)
{
    eb_core *c = ctx;
    char parts[4][257];
    json_t *d = json_loadb(doc, len, 0, NULL);
    eb_caller who = {parts[0], parts[1]};
    if (split_key(key, parts, 4) || !json_is_object(d)) {
        eb_log(EB_LOG_ERROR, "store: unreadable rule document skipped", "key=%s", key);
        json_decref(d);
        return 0;
    }
    bus *b = bus_find(region_find(c, &who), parts[2]);
    if (!b) {
        eb_log(EB_LOG_ERROR, "store: rule of a missing bus skipped", "key=%s", key);
        json_decref(d);
        return 0;
    }
    rule *ru = rule_attach(b, parts[3], d);
    json_decref(d);
    if (!ru)
        return 1;
    if (rule_sync_machine(ru))
        eb_log(EB_LOG_ERROR, "store: rule pattern no longer compiles; rule not matching", "key=%s", key);
    return 0;
}

void eb_core_config_defaults(eb_core_config *c)
{
    c->partition = "aws";
    c->strict_sources = 0;
    c->max_entries_bytes = 262144;
    c->max_pattern_chars = 4096;
    c->max_buses = 100;
    c->max_rules_per_bus = 300;
    c->max_targets_per_rule = 5;
    c->max_event_depth = EB_DEFAULT_MAX_DEPTH;
    c->max_connections = 3000;
    c->max_api_destinations = 3000;
    c->metrics = NULL;
}

eb_core *eb_core_open(const eb_core_config *cfg, eb_store *store, char *err, size_t errlen)
{
    eb_core *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    c->store = store;
    pthread_rwlock_init(&c->lock, NULL);
    pthread_mutex_init(&c->pool_mu, NULL);
    if (eb_store_doc_scan(store, "bus", load_bus, c) || eb_store_doc_scan(store, "rule", load_rule, c)) {
        snprintf(err, errlen, "could not load the model from the store");
        eb_core_close(c);
        return NULL;
    }
    eb_conns_config ccfg = {cfg->partition, cfg->max_connections, cfg->max_api_destinations};
    c->conns = eb_conns_open(&ccfg, store, err, errlen);
    if (!c->conns) {
        eb_core_close(c);
        return NULL;
    }
    return c;
}

eb_conns *eb_core_conns(eb_core *c)
{
    return c->conns;
}

void eb_core_close(eb_core *c)
{
    if (!c)
        return;
    eb_conns_close(c->conns);
    for (size_t i = 0; i < c->nregions; i++)
        region_free(c->regions[i]);
    free(c->regions);
    for (size_t i = 0; i < c->npool; i++)
        eb_matcher_free(c->pool[i]);
    free(c->pool);
    pthread_mutex_destroy(&c->pool_mu);
    pthread_rwlock_destroy(&c->lock);
    free(c);
}

/* ---- tags -------------------------------------------------------------------------------- */
static int tags_check(const json_t *tags, eb_core_error *e)
{
    size_t i, j;
    json_t *t, *u;
    json_array_foreach(tags, i, t) {
        json_array_foreach(tags, j, u) {
            if (j < i && !strcmp(sget(t, "Key"), sget(u, "Key"))) {
                fail(e, "ValidationException", "Invalid parameter: Duplicated keys are not allowed.");
                return -1;
            }
        }
    }
    return 0;
}

/* Merge `add` into the doc's Tags (existing keys overwritten). */
static int tags_merge(json_t *doc, const json_t *add, eb_core_error *e)
{
    json_t *tags = json_object_get(doc, "Tags");
    if (!json_is_array(tags)) {
        tags = json_array();
        json_object_set_new(doc, "Tags", tags);
    }
    size_t i;
    json_t *t;
    json_array_foreach(add, i, t) {
        const char *k = sget(t, "Key");
        const char *v = sget(t, "Value");
        size_t j;
        json_t *u;
        int done = 0;
        json_array_foreach(tags, j, u) {
            if (!strcmp(sget(u, "Key"), k)) {
                json_object_set_new(u, "Value", json_string(v ? v : ""));
                done = 1;
                break;
            }
        }
        if (!done)
            json_array_append_new(tags, json_pack("{s:s, s:s}", "Key", k, "Value", v ? v : ""));
    }
    if (json_array_size(tags) > 50) {
        fail(e, "ValidationException", "The number of tags on the resource would exceed the limit of 50.");
        return -1;
    }
    return 0;
}

/* ---- event buses ------------------------------------------------------------------------- */
static json_t *bus_policy_string(const bus *b)
{
    json_t *pol = json_object_get(b->doc, "Policy");
    if (!json_is_object(pol))
        return NULL;
    json_t *st = json_object_get(pol, "Statement");
    if (json_is_array(st) && json_array_size(st) == 0)
        return NULL;
    char *s = json_dumps(pol, JSON_COMPACT);
    json_t *j = s ? json_string(s) : NULL;
    free(s);
    return j;
}

static json_t *bus_view(const bus *b, int full)
{
    json_t *o = json_object();
    copy_member(o, b->doc, "Name");
    copy_member(o, b->doc, "Arn");
    copy_member(o, b->doc, "Description");
    if (full) {
        copy_member(o, b->doc, "KmsKeyIdentifier");
        copy_member(o, b->doc, "DeadLetterConfig");
    }
    json_t *pol = bus_policy_string(b);
    if (pol)
        json_object_set_new(o, "Policy", pol);
    if (full)
        copy_member(o, b->doc, "LogConfig");
    json_object_set_new(o, "CreationTime", epoch_json(json_integer_value(json_object_get(b->doc, "CreationTimeMs"))));
    json_object_set_new(o, "LastModifiedTime",
                        epoch_json(json_integer_value(json_object_get(b->doc, "LastModifiedTimeMs"))));
    return o;
}

static json_t *op_create_event_bus(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    const char *name = sget(req, "Name");
    const char *src = sget(req, "EventSourceName");
    region *r = region_get(c, who, e);
    if (!r)
        return NULL;
    if (bus_find(r, name))
        return fail(e, "ResourceAlreadyExistsException", "Event bus %s already exists.", name);
    if (src || strchr(name, '/')) {
        if (!src)
            return fail(e, "ValidationException", "Event bus name must not contain '/'.");
        return fail(e, "ResourceNotFoundException", "Event source %s does not exist.", src);
    }
    if (r->nbuses >= c->cfg.max_buses)
        return fail(e, "LimitExceededException", "The requested resource exceeds the maximum number allowed.");
    const json_t *tags = json_object_get(req, "Tags");
    if (tags && tags_check(tags, e))
        return NULL;
    json_t *doc = new_bus_doc(c, r, name);
    copy_member(doc, req, "Description");
    copy_member(doc, req, "KmsKeyIdentifier");
    copy_member(doc, req, "DeadLetterConfig");
    copy_member(doc, req, "LogConfig");
    if (tags && tags_merge(doc, tags, e)) {
        json_decref(doc);
        return NULL;
    }
    if (store_bus(c, r, name, doc)) {
        json_decref(doc);
        return fail_store(e);
    }
    bus *b = bus_attach(r, name, doc);
    json_decref(doc);
    if (!b)
        return fail(e, "InternalException", "Out of memory.");
    json_t *o = json_object();
    json_object_set(o, "EventBusArn", json_object_get(b->doc, "Arn"));
    copy_member(o, b->doc, "Description");
    copy_member(o, b->doc, "KmsKeyIdentifier");
    copy_member(o, b->doc, "DeadLetterConfig");
    copy_member(o, b->doc, "LogConfig");
    return o;
}

static bus *bus_for(eb_core *c, const eb_caller *who, const char *name_or_arn, eb_core_error *e)
{
    char name[2048];
    int bad = bus_name_of(who, name_or_arn, name, sizeof name);
    region *r = region_get(c, who, e);
    if (!r)
        return NULL;
    bus *b = bad ? NULL : bus_find(r, name);
    if (!b)
        fail(e, "ResourceNotFoundException", "Event bus %s does not exist.", name);
    return b;
}

static json_t *op_describe_event_bus(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    bus *b = bus_for(c, who, sget(req, "Name"), e);
    return b ? bus_view(b, 1) : NULL;
}

static json_t *op_list_event_buses(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    eb_page pg;
    if (eb_page_init(req, "NamePrefix", &pg, e))
        return NULL;
    region *r = region_get(c, who, e);
    if (!r)
        return NULL;
    json_t *list = json_array();
    json_t *o = json_pack("{s:o}", "EventBuses", list);
    const char *last = NULL;
    for (size_t i = 0; i < r->nbuses; i++) {
        if (!eb_page_wants(&pg, r->buses[i]->name))
            continue;
        if (eb_page_full(&pg, list, o, last))
            break;
        json_array_append_new(list, bus_view(r->buses[i], 0));
        last = r->buses[i]->name;
    }
    return o;
}

static json_t *op_update_event_bus(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    bus *b = bus_for(c, who, sget(req, "Name"), e);
    if (!b)
        return NULL;
    json_t *doc = json_deep_copy(b->doc);
    static const char *const members[] = {"Description", "KmsKeyIdentifier", "DeadLetterConfig", "LogConfig"};
    for (size_t i = 0; i < sizeof members / sizeof *members; i++) {
        json_t *v = json_object_get(req, members[i]);
        if (v && !json_is_null(v))
            json_object_set(doc, members[i], v);
    }
    json_object_set_new(doc, "LastModifiedTimeMs", json_integer(eb_now_ms()));
    if (bus_set_doc(c, b, doc, e))
        return NULL;
    json_t *o = json_object();
    copy_member(o, doc, "Arn");
    copy_member(o, doc, "Name");
    copy_member(o, doc, "KmsKeyIdentifier");
    copy_member(o, doc, "Description");
    copy_member(o, doc, "DeadLetterConfig");
    copy_member(o, doc, "LogConfig");
    return o;
}

static json_t *op_delete_event_bus(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    const char *name = sget(req, "Name");
    if (!strcmp(name, "default"))
        return fail(e, "ValidationException", "Cannot delete event bus default.");
    region *r = region_get(c, who, e);
    if (!r)
        return NULL;
    int found;
    size_t at = find_named((void *const *)r->buses, r->nbuses, name, &found);
    if (!found)
        return json_object();
    bus *b = r->buses[at];
    if (b->nrules)
        return fail(e, "ValidationException", "Cannot delete event bus %s because it still has rules.", name);
    if (unstore(c, "bus", r->name, name, NULL))
        return fail_store(e);
    remove_at((void **)r->buses, &r->nbuses, at);
    eb_metrics_forget_bus(c->cfg.metrics, b->name);
    bus_free(b);
    return json_object();
}

/* ---- rules ---------------------------------------------------------------------------------- */
static json_t *rule_view(const rule *ru, int describe)
{
    json_t *o = json_object();
    static const char *const members[] = {"Name",        "Arn",     "EventPattern", "ScheduleExpression", "State",
                                          "Description", "RoleArn", "ManagedBy",    "EventBusName",       "CreatedBy"};
    for (size_t i = 0; i < sizeof members / sizeof *members; i++)
        if (describe || strcmp(members[i], "CreatedBy"))
            copy_member(o, ru->doc, members[i]);
    return o;
}

static bus *bus_for_rules(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    return bus_for(c, who, sget(req, "EventBusName"), e);
}

static json_t *rule_missing(eb_core_error *e, const char *name, const bus *b)
{
    return fail(e, "ResourceNotFoundException", "Rule %s does not exist on EventBus %s.", name, b->name);
}

static json_t *op_put_rule(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    const char *name = sget(req, "Name");
    const char *pattern = sget(req, "EventPattern");
    const char *sched = sget(req, "ScheduleExpression");
    bus *b = bus_for_rules(c, who, req, e);
    if (!b)
        return NULL;
    if (!pattern && !sched)
        return fail(e, "ValidationException", "Parameter(s) EventPattern or ScheduleExpression must be specified.");
    if (sched) {
        if (strcmp(b->name, "default"))
            return fail(e, "ValidationException", "ScheduleExpression is supported only on the default event bus.");
        eb_schedule *s = eb_schedule_parse(sched);
        if (!s)
            return fail(e, "ValidationException", "Parameter ScheduleExpression is not valid.");
        eb_schedule_free(s);
    }
    if (pattern) {
        size_t chars = 0;
        for (const unsigned char *p = (const unsigned char *)pattern; *p; p++)
            chars += (*p & 0xC0) != 0x80;
        if (chars > c->cfg.max_pattern_chars)
            return fail(e, "InvalidEventPatternException",
                        "Event pattern is not valid. Reason: the pattern is longer than %zu characters.",
                        c->cfg.max_pattern_chars);
        eb_pattern *p = NULL;
        eb_error err;
        if (eb_pattern_compile(pattern, strlen(pattern), &p, &err) != EB_OK)
            return fail(e, "InvalidEventPatternException", "%s", err.message);
        eb_pattern_free(p);
    }
    rule *old = rule_find(b, name);
    if (old && json_object_get(old->doc, "ManagedBy"))
        return fail(e, "ManagedRuleException", "Rule %s is managed by an AWS service.", name);
    if (!old && b->nrules >= c->cfg.max_rules_per_bus)
        return fail(e, "LimitExceededException", "The requested resource exceeds the maximum number allowed.");
    const json_t *tags = json_object_get(req, "Tags");
    if (!old && tags && tags_check(tags, e))
        return NULL;
    char arn[2048];
    rule_arn(c, b->reg, b->name, name, arn, sizeof arn);
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s}", "Name", name, "Arn", arn, "EventBusName", b->name, "State",
                            sget(req, "State") ? sget(req, "State") : "ENABLED");
    copy_member(doc, req, "EventPattern");
    copy_member(doc, req, "ScheduleExpression");
    copy_member(doc, req, "Description");
    copy_member(doc, req, "RoleArn");
    if (old) {
        copy_member(doc, old->doc, "CreatedBy");
        copy_member(doc, old->doc, "Tags");
        copy_member(doc, old->doc, "Targets");
        copy_member(doc, old->doc, "CreationTimeMs");
    } else {
        json_object_set_new(doc, "CreatedBy", json_string(who->account));
        json_object_set_new(doc, "Targets", json_array());
        json_object_set_new(doc, "Tags", json_array());
        json_object_set_new(doc, "CreationTimeMs", json_integer(eb_now_ms()));
        if (tags && tags_merge(doc, tags, e)) {
            json_decref(doc);
            return NULL;
        }
    }
    rule tmp = {.name = (char *)name, .bus = b};
    if (store_rule(c, &tmp, doc)) {
        json_decref(doc);
        return fail_store(e);
    }
    rule *ru = old;
    if (ru) {
        json_decref(ru->doc);
        ru->doc = doc;
    } else {
        ru = rule_attach(b, name, doc);
        json_decref(doc);
        if (!ru)
            return fail(e, "InternalException", "Out of memory.");
    }
    if (rule_sync_machine(ru))
        return fail(e, "InternalException", "Out of memory.");
    return json_pack("{s:s}", "RuleArn", arn);
}

static json_t *op_describe_rule(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    bus *b = bus_for_rules(c, who, req, e);
    if (!b)
        return NULL;
    rule *ru = rule_find(b, sget(req, "Name"));
    return ru ? rule_view(ru, 1) : rule_missing(e, sget(req, "Name"), b);
}

static json_t *op_list_rules(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    eb_page pg;
    if (eb_page_init(req, "NamePrefix", &pg, e))
        return NULL;
    bus *b = bus_for_rules(c, who, req, e);
    if (!b)
        return NULL;
    json_t *list = json_array();
    json_t *o = json_pack("{s:o}", "Rules", list);
    const char *last = NULL;
    for (size_t i = 0; i < b->nrules; i++) {
        if (!eb_page_wants(&pg, b->rules[i]->name))
            continue;
        if (eb_page_full(&pg, list, o, last))
            break;
        json_array_append_new(list, rule_view(b->rules[i], 0));
        last = b->rules[i]->name;
    }
    return o;
}

static json_t *set_state(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e, const char *state)
{
    bus *b = bus_for_rules(c, who, req, e);
    if (!b)
        return NULL;
    rule *ru = rule_find(b, sget(req, "Name"));
    if (!ru)
        return rule_missing(e, sget(req, "Name"), b);
    if (json_object_get(ru->doc, "ManagedBy"))
        return fail(e, "ManagedRuleException", "Rule %s is managed by an AWS service.", ru->name);
    json_t *doc = json_deep_copy(ru->doc);
    json_object_set_new(doc, "State", json_string(state));
    if (rule_set_doc(c, ru, doc, e))
        return NULL;
    if (rule_sync_machine(ru))
        return fail(e, "InternalException", "Out of memory.");
    return json_object();
}

static json_t *op_enable_rule(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    return set_state(c, who, req, e, "ENABLED");
}

static json_t *op_disable_rule(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    return set_state(c, who, req, e, "DISABLED");
}

static json_t *op_delete_rule(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    bus *b = bus_for_rules(c, who, req, e);
    if (!b)
        return NULL;
    rule *ru = rule_find(b, sget(req, "Name"));
    if (!ru)
        return json_object();
    if (json_object_get(ru->doc, "ManagedBy") && !bget(req, "Force"))
        return fail(e, "ManagedRuleException", "Rule %s is managed by an AWS service; use Force.", ru->name);
    if (json_array_size(json_object_get(ru->doc, "Targets")))
        return fail(e, "ValidationException", "Rule can't be deleted since it has targets.");
    if (unstore(c, "rule", b->reg->name, b->name, ru->name))
        return fail_store(e);
    eb_metrics_forget_rule(c->cfg.metrics, b->name, ru->name);
    rule_detach(ru);
    return json_object();
}

static json_t *op_list_rule_names_by_target(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    eb_page pg;
    if (eb_page_init(req, NULL, &pg, e))
        return NULL;
    bus *b = bus_for_rules(c, who, req, e);
    if (!b)
        return NULL;
    const char *arn = sget(req, "TargetArn");
    json_t *list = json_array();
    json_t *o = json_pack("{s:o}", "RuleNames", list);
    const char *last = NULL;
    for (size_t i = 0; i < b->nrules; i++) {
        rule *ru = b->rules[i];
        if (!eb_page_wants(&pg, ru->name))
            continue;
        int has = 0;
        size_t k;
        json_t *t;
        json_array_foreach(json_object_get(ru->doc, "Targets"), k, t) has |= !strcmp(sget(t, "Arn"), arn);
        if (!has)
            continue;
        if (eb_page_full(&pg, list, o, last))
            break;
        json_array_append_new(list, json_string(ru->name));
        last = ru->name;
    }
    return o;
}

/* ---- targets ------------------------------------------------------------------------------------ */
static int is_predefined(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof PREDEFINED / sizeof *PREDEFINED; i++)
        if (strlen(PREDEFINED[i]) == n && !memcmp(PREDEFINED[i], name, n))
            return 1;
    return 0;
}

/* Input-mode checks of reference §6 for one target. */
static int check_target(const json_t *t, eb_core_error *e)
{
    const char *id = sget(t, "Id");
    const char *tarn = sget(t, "Arn");
    arn_parts ap;
    if (!tarn || parse_arn(tarn, &ap) || !ap.partition[0] || !ap.service[0] || !ap.resource[0]) {
        fail(e, "ValidationException", "Parameter %s is not valid. Reason: Provided Arn is not in correct format.",
             tarn ? tarn : "Arn");
        return -1;
    }
    const json_t *input = json_object_get(t, "Input");
    const json_t *path = json_object_get(t, "InputPath");
    const json_t *tr = json_object_get(t, "InputTransformer");
    int modes = (input && !json_is_null(input)) + (path && !json_is_null(path)) + (tr && !json_is_null(tr));
    if (modes > 1) {
        fail(e, "ValidationException", "Only one of Input, InputPath, or InputTransformer must be provided for target %s.",
             id);
        return -1;
    }
    if (json_is_string(input)) {
        const char *s = json_string_value(input);
        eb_error err;
        if (eb_json_check(s, strlen(s), EB_DEFAULT_MAX_DEPTH, &err) != EB_OK) {
            fail(e, "ValidationException", "Input for target %s is not valid JSON text.", id);
            return -1;
        }
    }
    if (json_is_string(path) && json_string_value(path)[0] != '$') {
        fail(e, "ValidationException", "InputPath for target %s is not a valid JSON path.", id);
        return -1;
    }
    if (json_is_object(tr)) {
        const json_t *map = json_object_get(tr, "InputPathsMap");
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)map, k, v) {
            if (!strncmp(k, "AWS.", 4) || is_predefined(k, strlen(k))) {
                fail(e, "ValidationException", "InputPathsMap for target %s uses the reserved name %s.", id, k);
                return -1;
            }
            if (json_is_string(v) && json_string_value(v)[0] != '$') {
                fail(e, "ValidationException", "InputPathsMap for target %s has an invalid JSON path for %s.", id, k);
                return -1;
            }
        }
        const char *tpl = sget(tr, "InputTemplate");
        for (const char *p = tpl ? strchr(tpl, '<') : NULL; p; p = strchr(p + 1, '<')) {
            const char *q = p + 1;
            while (*q && *q != '>' && *q != '<' && *q != ' ' && *q != '\n' && *q != '\t' && *q != '"')
                q++;
            if (*q != '>' || q == p + 1)
                continue;
            size_t n = (size_t)(q - p - 1);
            int known = is_predefined(p + 1, n);
            if (!known && map) {
                char name[300];
                if (n < sizeof name) {
                    memcpy(name, p + 1, n);
                    name[n] = 0;
                    known = json_object_get(map, name) != NULL;
                }
            }
            if (!known) {
                fail(e, "ValidationException", "InputTemplate for target %s contains invalid placeholder %.*s.", id,
                     (int)n, p + 1);
                return -1;
            }
        }
    }
    /* the transformer compiles (paths, template), and CloudWatch Logs targets
     * take only the {"timestamp": ..., "message": ...} template (reference §6.4) */
    char why[sizeof e->message];
    if (eb_input_validate(t, why, sizeof why) ||
        (!strcmp(ap.service, "logs") && eb_input_check_log_template(t, why, sizeof why))) {
        fail(e, "ValidationException", "%s", why);
        return -1;
    }
    int delivered = (!strcmp(ap.service, "lambda") && !strncmp(ap.resource, "function:", 9)) ||
                    (!strcmp(ap.service, "events") &&
                     (!strncmp(ap.resource, "event-bus/", 10) || !strncmp(ap.resource, "api-destination/", 16))) ||
                    (!strcmp(ap.service, "logs") && !strncmp(ap.resource, "log-group:", 10));
    if (!delivered)
        eb_log(EB_LOG_WARN, "PutTargets: this target kind is stored but not delivered by this server (NO_RESOURCE)",
               "target=\"%s\" arn=\"%s\"", id, tarn);
    return 0;
}

static rule *rule_for_targets(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    bus *b = bus_for_rules(c, who, req, e);
    if (!b)
        return NULL;
    rule *ru = rule_find(b, sget(req, "Rule"));
    if (!ru)
        rule_missing(e, sget(req, "Rule"), b);
    return ru;
}

static json_t *op_put_targets(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    rule *ru = rule_for_targets(c, who, req, e);
    if (!ru)
        return NULL;
    if (json_object_get(ru->doc, "ManagedBy"))
        return fail(e, "ManagedRuleException", "Rule %s is managed by an AWS service.", ru->name);
    const json_t *targets = json_object_get(req, "Targets");
    size_t i;
    json_t *t;
    json_array_foreach(targets, i, t) if (check_target(t, e)) return NULL;
    json_t *list = json_deep_copy(json_object_get(ru->doc, "Targets"));
    if (!json_is_array(list)) {
        json_decref(list);
        list = json_array();
    }
    json_array_foreach(targets, i, t) {
        json_t *clean = json_object();
        const char *k;
        json_t *v;
        json_object_foreach(t, k, v) if (!json_is_null(v)) json_object_set(clean, k, v);
        size_t j;
        json_t *u;
        int replaced = 0;
        json_array_foreach(list, j, u) {
            if (!strcmp(sget(u, "Id"), sget(t, "Id"))) {
                json_array_set(list, j, clean);
                replaced = 1;
                break;
            }
        }
        if (!replaced)
            json_array_append(list, clean);
        json_decref(clean);
    }
    if (json_array_size(list) > c->cfg.max_targets_per_rule) {
        json_decref(list);
        return fail(e, "LimitExceededException", "The requested resource exceeds the maximum number allowed.");
    }
    json_t *doc = json_deep_copy(ru->doc);
    json_object_set_new(doc, "Targets", list);
    if (rule_set_doc(c, ru, doc, e))
        return NULL;
    return json_pack("{s:i, s:[]}", "FailedEntryCount", 0, "FailedEntries");
}

static json_t *op_remove_targets(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    rule *ru = rule_for_targets(c, who, req, e);
    if (!ru)
        return NULL;
    if (json_object_get(ru->doc, "ManagedBy") && !bget(req, "Force"))
        return fail(e, "ManagedRuleException", "Rule %s is managed by an AWS service; use Force.", ru->name);
    json_t *doc = json_deep_copy(ru->doc);
    json_t *list = json_object_get(doc, "Targets");
    size_t i;
    json_t *id;
    json_array_foreach(json_object_get(req, "Ids"), i, id) {
        for (size_t j = 0; j < json_array_size(list); j++)
            if (!strcmp(sget(json_array_get(list, j), "Id"), json_string_value(id))) {
                json_array_remove(list, j);
                break;
            }
    }
    if (rule_set_doc(c, ru, doc, e))
        return NULL;
    return json_pack("{s:i, s:[]}", "FailedEntryCount", 0, "FailedEntries");
}

static json_t *op_list_targets_by_rule(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    eb_page pg;
    if (eb_page_init(req, NULL, &pg, e))
        return NULL;
    rule *ru = rule_for_targets(c, who, req, e);
    if (!ru)
        return NULL;
    /* targets are listed in Id order so that the token (last Id) pages stably */
    json_t *all = json_object_get(ru->doc, "Targets");
    size_t n = json_array_size(all);
    const json_t **sorted = calloc(n ? n : 1, sizeof *sorted);
    if (!sorted)
        return fail(e, "InternalException", "Out of memory.");
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(all, i);
        size_t j = i;
        while (j > 0 && strcmp(sget(sorted[j - 1], "Id"), sget(t, "Id")) > 0) {
            sorted[j] = sorted[j - 1];
            j--;
        }
        sorted[j] = t;
    }
    json_t *list = json_array();
    json_t *o = json_pack("{s:o}", "Targets", list);
    const char *last = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *id = sget(sorted[i], "Id");
        if (!eb_page_wants(&pg, id))
            continue;
        if (eb_page_full(&pg, list, o, last))
            break;
        json_array_append(list, (json_t *)sorted[i]);
        last = id;
    }
    free(sorted);
    return o;
}

/* ---- tags on resources ----------------------------------------------------------------------------- */
/* Resolve a bus or rule ARN to its document holder. */
static json_t *tag_target(eb_core *c, const eb_caller *who, const char *arn, bus **ob, rule **orule, eb_core_error *e)
{
    *ob = NULL;
    *orule = NULL;
    arn_parts a;
    if (parse_arn(arn, &a) || strcmp(a.service, "events"))
        return fail(e, "ValidationException", "Parameter ResourceARN is not valid.");
    region *r = region_get(c, who, e);
    if (!r)
        return NULL;
    int here = !strcmp(a.account, who->account) && !strcmp(a.region, who->region);
    if (!strncmp(a.resource, "event-bus/", 10)) {
        const char *name = a.resource + 10;
        bus *b = here ? bus_find(r, name) : NULL;
        if (!b)
            return fail(e, "ResourceNotFoundException", "Event bus %s does not exist.", name);
        *ob = b;
        return b->doc;
    }
    if (!strncmp(a.resource, "rule/", 5)) {
        const char *rest = a.resource + 5;
        const char *slash = strrchr(rest, '/');
        char busname[300] = "default";
        const char *rname = rest;
        if (slash) {
            size_t n = (size_t)(slash - rest);
            if (n >= sizeof busname)
                n = sizeof busname - 1;
            memcpy(busname, rest, n);
            busname[n] = 0;
            rname = slash + 1;
        }
        bus *b = here ? bus_find(r, busname) : NULL;
        if (!b)
            return fail(e, "ResourceNotFoundException", "Rule %s does not exist on EventBus %s.", rname, busname);
        rule *ru = rule_find(b, rname);
        if (!ru)
            return fail(e, "ResourceNotFoundException", "Rule %s does not exist on EventBus %s.", rname, busname);
        *orule = ru;
        return ru->doc;
    }
    return fail(e, "ResourceNotFoundException", "Resource %s does not exist.", arn);
}

static json_t *tags_write(eb_core *c, bus *b, rule *ru, json_t *doc, eb_core_error *e)
{
    int rc = b ? bus_set_doc(c, b, doc, e) : rule_set_doc(c, ru, doc, e);
    return rc ? NULL : json_object();
}

static json_t *op_tag_resource(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    bus *b;
    rule *ru;
    json_t *cur = tag_target(c, who, sget(req, "ResourceARN"), &b, &ru, e);
    if (!cur)
        return NULL;
    if (ru && json_object_get(ru->doc, "ManagedBy"))
        return fail(e, "ManagedRuleException", "Rule %s is managed by an AWS service.", ru->name);
    const json_t *tags = json_object_get(req, "Tags");
    if (tags_check(tags, e))
        return NULL;
    json_t *doc = json_deep_copy(cur);
    if (tags_merge(doc, tags, e)) {
        json_decref(doc);
        return NULL;
    }
    return tags_write(c, b, ru, doc, e);
}

static json_t *op_untag_resource(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    bus *b;
    rule *ru;
    json_t *cur = tag_target(c, who, sget(req, "ResourceARN"), &b, &ru, e);
    if (!cur)
        return NULL;
    if (ru && json_object_get(ru->doc, "ManagedBy"))
        return fail(e, "ManagedRuleException", "Rule %s is managed by an AWS service.", ru->name);
    json_t *doc = json_deep_copy(cur);
    json_t *tags = json_object_get(doc, "Tags");
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(req, "TagKeys"), i, k) {
        for (size_t j = 0; j < json_array_size(tags); j++)
            if (!strcmp(sget(json_array_get(tags, j), "Key"), json_string_value(k))) {
                json_array_remove(tags, j);
                break;
            }
    }
    return tags_write(c, b, ru, doc, e);
}

static json_t *op_list_tags_for_resource(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    bus *b;
    rule *ru;
    json_t *cur = tag_target(c, who, sget(req, "ResourceARN"), &b, &ru, e);
    if (!cur)
        return NULL;
    json_t *tags = json_object_get(cur, "Tags");
    return json_pack("{s:O}", "Tags", json_is_array(tags) ? tags : json_array());
}

/* ---- permissions -------------------------------------------------------------------------------------- */
static json_t *op_put_permission(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    bus *b = bus_for(c, who, sget(req, "EventBusName"), e);
    if (!b)
        return NULL;
    json_t *doc = json_deep_copy(b->doc);
    const char *policy = sget(req, "Policy");
    if (policy) {
        if (strlen(policy) > 10240) {
            json_decref(doc);
            return fail(e, "PolicyLengthExceededException", "Event bus policy exceeds the maximum size.");
        }
        json_t *p = json_loads(policy, 0, NULL);
        if (!json_is_object(p)) {
            json_decref(p);
            json_decref(doc);
            return fail(e, "ValidationException", "Parameter Policy is not valid.");
        }
        json_object_set_new(doc, "Policy", p);
    } else {
        const char *action = sget(req, "Action"), *principal = sget(req, "Principal"), *sid = sget(req, "StatementId");
        if (!action || !principal || !sid) {
            json_decref(doc);
            return fail(e, "ValidationException",
                        "Parameter(s) Action, Principal and StatementId must be specified when Policy is not given.");
        }
        json_t *pol = json_object_get(doc, "Policy");
        if (!json_is_object(pol)) {
            pol = json_pack("{s:s, s:[]}", "Version", "2012-10-17", "Statement");
            json_object_set_new(doc, "Policy", pol);
        }
        json_t *stmts = json_object_get(pol, "Statement");
        if (!json_is_array(stmts)) {
            stmts = json_array();
            json_object_set_new(pol, "Statement", stmts);
        }
        size_t i;
        json_t *s;
        json_array_foreach(stmts, i, s) {
            if (json_is_string(json_object_get(s, "Sid")) && !strcmp(sget(s, "Sid"), sid)) {
                json_decref(doc);
                return fail(e, "ResourceAlreadyExistsException", "Statement with the provided id already exists.");
            }
        }
        json_t *prin;
        if (!strcmp(principal, "*")) {
            prin = json_string("*");
        } else {
            char iam[128];
            snprintf(iam, sizeof iam, "arn:%s:iam::%s:root", c->cfg.partition, principal);
            prin = json_pack("{s:s}", "AWS", iam);
        }
        json_t *st = json_pack("{s:s, s:s, s:o, s:s, s:O}", "Sid", sid, "Effect", "Allow", "Principal", prin, "Action",
                               action, "Resource", json_object_get(b->doc, "Arn"));
        const json_t *cond = json_object_get(req, "Condition");
        if (json_is_object(cond)) {
            if (strcmp(sget(cond, "Type"), "StringEquals") || strcmp(sget(cond, "Key"), "aws:PrincipalOrgID")) {
                json_decref(st);
                json_decref(doc);
                return fail(e, "ValidationException",
                            "Condition must have Type StringEquals and Key aws:PrincipalOrgID.");
            }
            json_object_set_new(st, "Condition", json_pack("{s:{s:s}}", "StringEquals", "aws:PrincipalOrgID",
                                                           sget(cond, "Value")));
        }
        json_array_append_new(stmts, st);
        char *text = json_dumps(pol, JSON_COMPACT);
        size_t len = text ? strlen(text) : 0;
        free(text);
        if (len > 10240) {
            json_decref(doc);
            return fail(e, "PolicyLengthExceededException", "Event bus policy exceeds the maximum size.");
        }
    }
    json_object_set_new(doc, "LastModifiedTimeMs", json_integer(eb_now_ms()));
    if (bus_set_doc(c, b, doc, e))
        return NULL;
    return json_object();
}

static json_t *op_remove_permission(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    bus *b = bus_for(c, who, sget(req, "EventBusName"), e);
    if (!b)
        return NULL;
    const char *sid = sget(req, "StatementId");
    int all = bget(req, "RemoveAllPermissions");
    if (!sid && !all)
        return fail(e, "ValidationException", "Parameter StatementId is required.");
    json_t *doc = json_deep_copy(b->doc);
    if (all) {
        json_object_del(doc, "Policy");
    } else {
        json_t *stmts = json_object_get(json_object_get(doc, "Policy"), "Statement");
        size_t i, n = json_array_size(stmts);
        for (i = 0; i < n; i++) {
            const char *s = sget(json_array_get(stmts, i), "Sid");
            if (s && !strcmp(s, sid))
                break;
        }
        if (i == n) {
            json_decref(doc);
            return fail(e, "ResourceNotFoundException", "Statement with the provided id does not exist.");
        }
        json_array_remove(stmts, i);
    }
    json_object_set_new(doc, "LastModifiedTimeMs", json_integer(eb_now_ms()));
    if (bus_set_doc(c, b, doc, e))
        return NULL;
    return json_object();
}

/* ---- matchers ---------------------------------------------------------------------------------------------- */
static eb_matcher *matcher_get(eb_core *c)
{
    eb_matcher *mt = NULL;
    pthread_mutex_lock(&c->pool_mu);
    if (c->npool)
        mt = c->pool[--c->npool];
    pthread_mutex_unlock(&c->pool_mu);
    if (!mt) {
        mt = eb_matcher_new();
        if (mt)
            eb_matcher_set_max_depth(mt, c->cfg.max_event_depth + 8);
    }
    return mt;
}

static void matcher_put(eb_core *c, eb_matcher *mt)
{
    if (!mt)
        return;
    pthread_mutex_lock(&c->pool_mu);
    if (c->npool == c->cappool) {
        size_t nc = c->cappool ? c->cappool * 2 : 16;
        eb_matcher **np = realloc(c->pool, nc * sizeof *np);
        if (!np) {
            pthread_mutex_unlock(&c->pool_mu);
            eb_matcher_free(mt);
            return;
        }
        c->pool = np;
        c->cappool = nc;
    }
    c->pool[c->npool++] = mt;
    pthread_mutex_unlock(&c->pool_mu);
}

/* ---- TestEventPattern ------------------------------------------------------------------------------------- */
static json_t *op_test_event_pattern(eb_core *c, const eb_caller *who, json_t *req, eb_core_error *e)
{
    (void)who;
    const char *pattern = sget(req, "EventPattern");
    const char *event = sget(req, "Event");
    eb_pattern *p = NULL;
    eb_error err;
    if (eb_pattern_compile(pattern, strlen(pattern), &p, &err) != EB_OK)
        return fail(e, "InvalidEventPatternException", "%s", err.message);
    json_t *ev = json_loads(event, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    static const char *const required[] = {"id", "account", "source", "time", "region", "detail-type"};
    int ok = eb_json_check(event, strlen(event), c->cfg.max_event_depth, &err) == EB_OK && json_is_object(ev);
    for (size_t i = 0; ok && i < sizeof required / sizeof *required; i++)
        ok = json_object_get(ev, required[i]) != NULL;
    json_decref(ev);
    if (!ok) {
        eb_pattern_free(p);
        return fail(e, "ValidationException", "Parameter Event is not valid.");
    }
    eb_machine *m = eb_machine_new();
    eb_matcher *mt = matcher_get(c);
    json_t *out = NULL;
    if (m && mt && eb_machine_add(m, 1, p) == EB_OK) {
        eb_snapshot *s = eb_machine_snapshot(m);
        const uint64_t *keys;
        size_t n;
        if (eb_match(mt, s, event, strlen(event), 0, &keys, &n, &err) == EB_OK)
            out = json_pack("{s:b}", "Result", n > 0);
        else
            fail(e, "ValidationException", "Parameter Event is not valid.");
        eb_snapshot_release(s);
    } else {
        fail(e, "InternalException", "Out of memory.");
    }
    matcher_put(c, mt);
    eb_machine_free(m);
    eb_pattern_free(p);
    return out;
}

/* ---- the operation table ------------------------------------------------------------------------------------- */
typedef json_t *(*op_fn)(eb_core *, const eb_caller *, json_t *, eb_core_error *);
static const struct {
    const char *name;
    op_fn fn;
} OPS[] = {
    {"CreateEventBus", op_create_event_bus},
    {"DescribeEventBus", op_describe_event_bus},
    {"ListEventBuses", op_list_event_buses},
    {"UpdateEventBus", op_update_event_bus},
    {"DeleteEventBus", op_delete_event_bus},
    {"PutRule", op_put_rule},
    {"DescribeRule", op_describe_rule},
    {"ListRules", op_list_rules},
    {"EnableRule", op_enable_rule},
    {"DisableRule", op_disable_rule},
    {"DeleteRule", op_delete_rule},
    {"ListRuleNamesByTarget", op_list_rule_names_by_target},
    {"PutTargets", op_put_targets},
    {"RemoveTargets", op_remove_targets},
    {"ListTargetsByRule", op_list_targets_by_rule},
    {"TestEventPattern", op_test_event_pattern},
    {"TagResource", op_tag_resource},
    {"UntagResource", op_untag_resource},
    {"ListTagsForResource", op_list_tags_for_resource},
    {"PutPermission", op_put_permission},
    {"RemovePermission", op_remove_permission},
};

int eb_core_has_op(const char *op)
{
    if (!strcmp(op, "PutEvents") || eb_conns_has_op(op))
        return 1;
    for (size_t i = 0; i < sizeof OPS / sizeof *OPS; i++)
        if (!strcmp(OPS[i].name, op))
            return 1;
    return 0;
}

json_t *eb_core_call(eb_core *c, const eb_caller *who, const char *op, json_t *req, eb_core_error *e)
{
    if (eb_conns_has_op(op))
        return eb_conns_call(c->conns, who, op, req, e);
    for (size_t i = 0; i < sizeof OPS / sizeof *OPS; i++) {
        if (strcmp(OPS[i].name, op))
            continue;
        pthread_rwlock_wrlock(&c->lock);
        json_t *out = OPS[i].fn(c, who, req, e);
        atomic_fetch_add(&c->gen, 1);
        pthread_rwlock_unlock(&c->lock);
        return out;
    }
    return fail(e, "UnknownOperationException", "Unknown operation %s.", op);
}

/* ---- PutEvents ----------------------------------------------------------------------------------------------- */
/* Sum of entry sizes as reference §4.3.1 counts them. */
static size_t entry_size(const eb_put_entry *en)
{
    size_t n = (en->has_time ? 14 : 0) + en->source.n + en->detail_type.n + en->detail.n;
    for (size_t i = 0; i < en->nresources; i++)
        n += en->resources[i].n;
    return n;
}

/* Append Detail (validated JSON) without insignificant whitespace; -1 when an
 * integer lies outside the signed 64-bit range (AWS rejects those). One pass,
 * straight into the buffer (the output is never longer than the input). */
static int compact_detail(eb_buf *out, const char *s, size_t n)
{
    static const char *const LIMIT_POS = "9223372036854775807", *const LIMIT_NEG = "9223372036854775808";
    if (eb_buf_reserve(out, n))
        return -1;
    char *o = out->p + out->n;
    size_t i = 0;
    while (i < n) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"') {
            size_t j = i + 1;
            for (;;) {
                const char *q = memchr(s + j, '"', n - j);
                if (!q) {
                    j = n - 1;
                    break;
                }
                j = (size_t)(q - s);
                size_t b = 0;
                while (j - b - 1 > i && s[j - b - 1] == '\\')
                    b++;
                if (!(b & 1))
                    break;
                j++;
            }
            memcpy(o, s + i, j + 1 - i);
            o += j + 1 - i;
            i = j + 1;
            continue;
        }
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
            i++;
            continue;
        }
        if (ch == '-' || (ch >= '0' && ch <= '9')) {
            size_t j = i + (ch == '-');
            while (j < n && s[j] >= '0' && s[j] <= '9')
                j++;
            size_t digits = j - i - (ch == '-');
            int integer = !(j < n && (s[j] == '.' || s[j] == 'e' || s[j] == 'E'));
            while (j < n && ((s[j] >= '0' && s[j] <= '9') || s[j] == '.' || s[j] == 'e' || s[j] == 'E' ||
                             s[j] == '+' || s[j] == '-'))
                j++;
            if (integer && digits >= 19) {
                const char *d = s + i + (ch == '-');
                if (digits > 19 || memcmp(d, ch == '-' ? LIMIT_NEG : LIMIT_POS, 19) > 0)
                    return -1;
            }
            memcpy(o, s + i, j - i);
            o += j - i;
            i = j;
            continue;
        }
        *o++ = (char)ch;
        i++;
    }
    out->n = (size_t)(o - out->p);
    out->p[out->n] = 0;
    return 0;
}

static int detail_ok(const eb_core *c, const char *d, size_t n)
{
    size_t i = 0;
    while (i < n && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r'))
        i++;
    if (i == n || d[i] != '{')
        return 0;
    eb_error err;
    return eb_json_check(d, n, c->cfg.max_event_depth, &err) == EB_OK;
}

/* One entry's result: an event id, or an error code and message (static). */
typedef struct {
    char id[37];
    const char *code, *msg;
} pe_result;

typedef struct {
    eb_core_done_fn done;
    void *ctx;
    pe_result res[16];
    size_t n;
    eb_buf text; /* the answer as JSON, rendered before the commit */
    size_t stored[16];
    size_t nstored;
} pe_wait;

static int pe_render(pe_wait *w)
{
    size_t failed = 0;
    for (size_t i = 0; i < w->n; i++)
        failed += w->res[i].code != NULL;
    eb_buf *b = &w->text;
    b->n = 0;
    int rc = eb_buf_printf(b, "{\"FailedEntryCount\":%zu,\"Entries\":[", failed);
    for (size_t i = 0; i < w->n; i++) {
        const pe_result *r = &w->res[i];
        if (i)
            rc |= eb_buf_putc(b, ',');
        if (r->code) {
            rc |= eb_buf_puts(b, "{\"ErrorCode\":");
            rc |= eb_buf_json_str(b, r->code, strlen(r->code));
            rc |= eb_buf_puts(b, ",\"ErrorMessage\":");
            rc |= eb_buf_json_str(b, r->msg, strlen(r->msg));
            rc |= eb_buf_putc(b, '}');
        } else {
            rc |= eb_buf_puts(b, "{\"EventId\":\"");
            rc |= eb_buf_append(b, r->id, 36);
            rc |= eb_buf_puts(b, "\"}");
        }
    }
    rc |= eb_buf_puts(b, "]}");
    if (rc)
        eb_buf_free(b); /* no half answers */
    return rc ? -1 : 0;
}

static void pe_finish(pe_wait *w, int status)
{
    int rc = w->text.p ? 0 : -1;
    if (status != EB_STORE_OK && w->nstored) {
        for (size_t i = 0; i < w->nstored; i++) {
            w->res[w->stored[i]].code = "InternalFailure";
            w->res[w->stored[i]].msg = "The event could not be stored; it was not accepted.";
        }
        eb_log(EB_LOG_ERROR, "PutEvents: store commit failed; entries answered InternalFailure", "entries=%zu",
               w->nstored);
        rc = pe_render(w);
    }
    if (!rc) {
        w->done(w->ctx, w->text.p, w->text.n, NULL);
    } else {
        eb_core_error e = {0};
        fail(&e, "InternalException", "Out of memory.");
        w->done(w->ctx, NULL, 0, &e);
    }
    eb_buf_free(&w->text);
    free(w);
}

static void pe_committed(void *ctx, int status)
{
    pe_finish(ctx, status);
}

static void entry_error(pe_result *r, const char *code, const char *msg)
{
    r->code = code;
    r->msg = msg;
}

static eb_str jstr(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? (eb_str){json_string_value(v), json_string_length(v)} : (eb_str){NULL, 0};
}

void eb_core_put_events(eb_core *c, const eb_caller *who, json_t *req, eb_core_done_fn done, void *ctx)
{
    const json_t *entries = json_object_get(req, "Entries");
    size_t n = json_array_size(entries);
    eb_put_entry en[16];
    eb_str res[16 * 8];
    eb_str *heap = NULL;
    size_t nres = 0;
    for (size_t i = 0; i < n; i++)
        nres += json_array_size(json_object_get(json_array_get(entries, i), "Resources"));
    eb_str *rs = res;
    if (nres > sizeof res / sizeof *res)
        rs = heap = malloc(nres * sizeof *heap);
    if (n > 16 || !rs) {
        eb_core_error e = {0};
        free(heap);
        fail(&e, "InternalException", "Out of memory.");
        done(ctx, NULL, 0, &e);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(entries, i);
        const json_t *t = json_object_get(o, "Time");
        en[i] = (eb_put_entry){.source = jstr(o, "Source"),
                               .detail_type = jstr(o, "DetailType"),
                               .detail = jstr(o, "Detail"),
                               .bus = jstr(o, "EventBusName"),
                               .resources = rs + k,
                               .has_time = json_is_number(t),
                               .time = json_is_number(t) ? json_number_value(t) : 0};
        size_t ri;
        json_t *r;
        json_array_foreach(json_object_get(o, "Resources"), ri, r) {
            if (json_is_string(r))
                rs[k + en[i].nresources++] = (eb_str){json_string_value(r), json_string_length(r)};
        }
        k += en[i].nresources;
    }
    eb_core_put_entries(c, who, en, n, done, ctx);
    free(heap);
}

/* Metrics of one event that matched nm rules of bus b and created njobs
 * invocations (docs/metrics.md). Called under the model lock, so rule names are valid. */
static void count_matches(eb_metrics *m, const bus *b, const uint64_t *matched, size_t nm, size_t njobs)
{
    if (!m || !nm)
        return;
    eb_counter_add(eb_metrics_counter(m, EB_M_MATCHED_EVENTS, b->name, NULL), 1);
    eb_counter_add(eb_metrics_counter(m, EB_M_TRIGGERED_RULES, b->name, NULL), nm);
    eb_counter_add(eb_metrics_counter(m, EB_M_TRIGGERED_RULES, NULL, NULL), nm);
    eb_counter_add(eb_metrics_counter(m, EB_M_INVOCATIONS_CREATED, NULL, NULL), njobs);
    for (size_t i = 0; i < nm; i++) {
        const rule *ru = (const rule *)(uintptr_t)matched[i];
        eb_counter_add(eb_metrics_counter(m, EB_M_MATCHED_EVENTS, b->name, ru->name), 1);
        eb_counter_add(eb_metrics_counter(m, EB_M_TRIGGERED_RULES, b->name, ru->name), 1);
    }
}

void eb_core_put_entries(eb_core *c, const eb_caller *who, const eb_put_entry *entries, size_t n,
                         eb_core_done_fn done, void *ctx)
{
    eb_core_error e = {0};
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += entry_size(&entries[i]);
    if (total >= c->cfg.max_entries_bytes) {
        fail(&e, "ValidationException", "Total size of the entries in the request is over the limit.");
        done(ctx, NULL, 0, &e);
        return;
    }
    pe_wait *w = calloc(1, sizeof *w);
    if (!w || n > sizeof w->stored / sizeof *w->stored) {
        free(w);
        fail(&e, "InternalException", "Out of memory.");
        done(ctx, NULL, 0, &e);
        return;
    }
    w->done = done;
    w->ctx = ctx;
    w->n = n;

    eb_buf bodies = {0}, keys = {0};
    struct {
        size_t off, len;
        char id[37];
        const char *bus;
        uint32_t first_job, njobs;
    } ev[16];
    typedef struct {
        size_t rule_off, target_off;
    } job_ref;
    job_ref *jobs = NULL;
    size_t njobs = 0, capjobs = 0, nev = 0;
    int oom = 0;
    int64_t now_ms = eb_now_ms();
    eb_matcher *mt = matcher_get(c);

    pthread_rwlock_rdlock(&c->lock);
    region *r = region_find(c, who);
    for (size_t i = 0; i < n; i++) {
        const eb_put_entry *en = &entries[i];
        pe_result *res = &w->res[i];
        if (!en->source.s || !en->source.n)
            entry_error(res, "InvalidArgument", "Parameter Source is not valid. Reason: Source is a required argument.");
        else if (!en->detail_type.s || !en->detail_type.n)
            entry_error(res, "InvalidArgument",
                              "Parameter DetailType is not valid. Reason: DetailType is a required argument.");
        else if (!en->detail.s)
            entry_error(res, "InvalidArgument", "Parameter Detail is not valid. Reason: Detail is a required argument.");
        else if (!detail_ok(c, en->detail.s, en->detail.n))
            entry_error(res, "MalformedDetail", "Detail is malformed.");
        else if (en->has_time && !(en->time >= 0 && en->time < 253402300800.0))
            entry_error(res, "InvalidArgument", "Parameter Time is not valid. Reason: Time is out of range.");
        else if (c->cfg.strict_sources && en->source.n >= 4 && !memcmp(en->source.s, "aws.", 4))
            entry_error(res, "NotAuthorizedForSourceException", "Not authorized for the source.");
        if (res->code)
            continue;
        char id[37];
        eb_uuid4(id);
        /* the envelope */
        size_t off = bodies.n;
        char tbuf[21];
        int64_t secs = en->has_time ? (int64_t)en->time : now_ms / 1000;
        eb_time_rfc3339(secs, tbuf);
        eb_buf_reserve(&bodies, en->detail.n + en->source.n + en->detail_type.n + 256);
        eb_buf_puts(&bodies, "{\"version\":\"0\",\"id\":\"");
        eb_buf_append(&bodies, id, 36);
        eb_buf_puts(&bodies, "\",\"detail-type\":");
        eb_buf_json_str(&bodies, en->detail_type.s, en->detail_type.n);
        eb_buf_puts(&bodies, ",\"source\":");
        eb_buf_json_str(&bodies, en->source.s, en->source.n);
        eb_buf_puts(&bodies, ",\"account\":\"");
        eb_buf_puts(&bodies, who->account);
        eb_buf_puts(&bodies, "\",\"time\":\"");
        eb_buf_append(&bodies, tbuf, 20);
        eb_buf_puts(&bodies, "\",\"region\":");
        eb_buf_json_str(&bodies, who->region, strlen(who->region));
        eb_buf_puts(&bodies, ",\"resources\":[");
        for (size_t k = 0; k < en->nresources; k++) {
            if (k)
                eb_buf_putc(&bodies, ',');
            eb_buf_json_str(&bodies, en->resources[k].s, en->resources[k].n);
        }
        eb_buf_puts(&bodies, "],\"detail\":");
        if (compact_detail(&bodies, en->detail.s, en->detail.n)) {
            bodies.n = off;
            entry_error(res, "MalformedDetail", "Detail is malformed.");
            continue;
        }
        if (eb_buf_putc(&bodies, '}')) {
            oom = 1;
            break;
        }
        memcpy(res->id, id, sizeof id);
        /* the bus: unknown buses accept the event and drop it, as AWS does */
        char bname[2048], given[2048];
        bus *b = NULL;
        const char *bn = NULL;
        if (en->bus.s && en->bus.n < sizeof given) {
            memcpy(given, en->bus.s, en->bus.n);
            given[en->bus.n] = 0;
            bn = given;
        }
        if ((bn || !en->bus.s) && !bus_name_of(who, bn, bname, sizeof bname))
            b = bus_find(r, bname);
        if (!b) {
            bodies.n = off;
            continue;
        }
        ev[nev].off = off;
        ev[nev].len = bodies.n - off;
        memcpy(ev[nev].id, id, sizeof id);
        ev[nev].bus = b->name;
        ev[nev].first_job = (uint32_t)njobs;
        ev[nev].njobs = 0;
        if (b->nrules && mt) {
            eb_snapshot *snap = eb_machine_snapshot(b->m);
            const uint64_t *matched;
            size_t nm = 0;
            eb_error err;
            if (eb_match(mt, snap, bodies.p + off, bodies.n - off, EB_MATCH_TRUSTED, &matched, &nm, &err) != EB_OK)
                nm = 0;
            size_t jobs_before = njobs;
            for (size_t m = 0; m < nm; m++) {
                const rule *ru = (const rule *)(uintptr_t)matched[m];
                size_t ti;
                json_t *t;
                json_array_foreach(json_object_get(ru->doc, "Targets"), ti, t) {
                    if (njobs == capjobs) {
                        size_t nc = capjobs ? capjobs * 2 : 16;
                        job_ref *nj = realloc(jobs, nc * sizeof *nj);
                        if (!nj) {
                            oom = 1;
                            break;
                        }
                        jobs = nj;
                        capjobs = nc;
                    }
                    jobs[njobs].rule_off = keys.n;
                    eb_buf_puts(&keys, r->name);
                    eb_buf_putc(&keys, '/');
                    eb_buf_puts(&keys, b->name);
                    eb_buf_putc(&keys, '/');
                    eb_buf_puts(&keys, ru->name);
                    eb_buf_putc(&keys, 0);
                    jobs[njobs].target_off = keys.n;
                    eb_buf_puts(&keys, sget(t, "Id"));
                    if (eb_buf_putc(&keys, 0))
                        oom = 1;
                    njobs++;
                    ev[nev].njobs++;
                }
            }
            count_matches(c->cfg.metrics, b, matched, nm, njobs - jobs_before);
            eb_snapshot_release(snap);
        }
        w->stored[w->nstored++] = i;
        nev++;
    }
    /* bus names must stay valid until the store copied them: copy them out */
    eb_buf busnames = {0};
    size_t busoff[16];
    for (size_t i = 0; i < nev; i++) {
        busoff[i] = busnames.n;
        eb_buf_puts(&busnames, ev[i].bus);
        if (eb_buf_putc(&busnames, 0))
            oom = 1;
    }
    pthread_rwlock_unlock(&c->lock);
    matcher_put(c, mt);

    if (oom || !mt) {
        free(jobs);
        eb_buf_free(&bodies);
        eb_buf_free(&keys);
        eb_buf_free(&busnames);
        free(w);
        fail(&e, "InternalException", "Out of memory.");
        done(ctx, NULL, 0, &e);
        return;
    }
    pe_render(w); /* here, not on the committer thread */
    if (!nev) {
        free(jobs);
        eb_buf_free(&bodies);
        eb_buf_free(&keys);
        eb_buf_free(&busnames);
        pe_finish(w, EB_STORE_OK);
        return;
    }
    eb_store_event sev[16];
    eb_store_job *sjobs = njobs ? calloc(njobs, sizeof *sjobs) : NULL;
    for (size_t i = 0; i < nev; i++) {
        sev[i] = (eb_store_event){.id = ev[i].id,
                                  .account = who->account,
                                  .region = who->region,
                                  .bus = busnames.p + busoff[i],
                                  .time_ms = now_ms,
                                  .body = bodies.p + ev[i].off,
                                  .len = ev[i].len,
                                  .first_job = ev[i].first_job,
                                  .njobs = ev[i].njobs};
    }
    int rc = EB_STORE_ERR_NOMEM;
    if (!njobs || sjobs) {
        for (size_t j = 0; j < njobs; j++)
            sjobs[j] = (eb_store_job){.rule = keys.p + jobs[j].rule_off, .target_id = keys.p + jobs[j].target_off};
        rc = eb_store_append(c->store, sev, nev, sjobs, njobs, pe_committed, w);
    }
    free(sjobs);
    free(jobs);
    eb_buf_free(&bodies);
    eb_buf_free(&keys);
    eb_buf_free(&busnames);
    if (rc != EB_STORE_OK)
        pe_finish(w, rc);
}

/* ---- for the delivery engine ------------------------------------------------------------------------------- */
eb_store *eb_core_store(eb_core *c)
{
    return c->store;
}

/* The rule of a key ACCOUNT/REGION/BUS/RULE (lock held). */
static rule *rule_by_key(eb_core *c, const char *key)
{
    char parts[4][257];
    if (split_key(key, parts, 4))
        return NULL;
    eb_caller who = {parts[0], parts[1]};
    return rule_find(bus_find(region_find(c, &who), parts[2]), parts[3]);
}

void eb_target_info_free(eb_target_info *t)
{
    if (!t)
        return;
    free(t->account); /* one allocation holds all five strings */
    json_decref(t->target);
    memset(t, 0, sizeof *t);
}

uint64_t eb_core_generation(eb_core *c)
{
    return atomic_load(&c->gen);
}

/* Fill *out with copies of the five strings (NULL = ""; one allocation,
 * account first, as eb_target_info_free expects), enabled and another
 * reference to target. -1 (out cleared) when out of memory. */
static int target_info_set(eb_target_info *out, const char *const strs[5], int enabled, json_t *target)
{
    memset(out, 0, sizeof *out);
    size_t lens[5], total = 0;
    for (int k = 0; k < 5; k++)
        total += (lens[k] = strs[k] ? strlen(strs[k]) + 1 : 1);
    char *p = malloc(total);
    if (!p)
        return -1;
    char **dst[5] = {&out->account, &out->region, &out->bus, &out->rule, &out->rule_arn};
    for (int k = 0; k < 5; k++) {
        memcpy(p, strs[k] ? strs[k] : "", lens[k]);
        *dst[k] = p;
        p += lens[k];
    }
    out->enabled = enabled;
    out->target = json_incref(target);
    return 0;
}

int eb_target_info_copy(eb_target_info *dst, const eb_target_info *src)
{
    const char *const strs[5] = {src->account, src->region, src->bus, src->rule, src->rule_arn};
    return target_info_set(dst, strs, src->enabled, src->target);
}

int eb_core_target_get(eb_core *c, const char *rule_key, const char *target_id, eb_target_info *out)
{
    memset(out, 0, sizeof *out);
    int ret = -1;
    pthread_rwlock_rdlock(&c->lock);
    rule *ru = rule_by_key(c, rule_key);
    json_t *t, *found = NULL;
    size_t i;
    if (ru)
        json_array_foreach(json_object_get(ru->doc, "Targets"), i, t) if (!strcmp(sget(t, "Id"), target_id)) {
            found = t;
            break;
        }
    if (found) {
        const region *r = ru->bus->reg;
        const char *const strs[5] = {r->account, r->region, ru->bus->name, ru->name, sget(ru->doc, "Arn")};
        const char *state = sget(ru->doc, "State");
        ret = target_info_set(out, strs, !state || strcmp(state, "DISABLED") != 0, found);
    }
    pthread_rwlock_unlock(&c->lock);
    return ret;
}

/* Matched jobs of one event on one bus (lock held): rule keys and target ids
 * into keys (NUL-separated pairs); returns the number of jobs or -1. */
static long bus_jobs(eb_core *c, const region *r, const bus *b, const char *ev, size_t len, eb_buf *keys)
{
    if (!b->nrules)
        return 0;
    eb_matcher *mt = matcher_get(c);
    if (!mt)
        return -1;
    eb_snapshot *snap = eb_machine_snapshot(b->m);
    const uint64_t *matched;
    size_t nm = 0;
    eb_error err;
    long n = 0;
    int oom = 0;
    if (eb_match(mt, snap, ev, len, 0 /* validating: bytes from the store */, &matched, &nm, &err) != EB_OK)
        nm = 0;
    for (size_t m = 0; m < nm; m++) {
        const rule *ru = (const rule *)(uintptr_t)matched[m];
        size_t ti;
        json_t *t;
        json_array_foreach(json_object_get(ru->doc, "Targets"), ti, t) {
            oom |= eb_buf_printf(keys, "%s/%s/%s", r->name, b->name, ru->name) || eb_buf_putc(keys, 0) ||
                   eb_buf_puts(keys, sget(t, "Id")) || eb_buf_putc(keys, 0);
            n++;
        }
    }
    if (!oom) /* the target bus's rules ran, as for PutEvents */
        count_matches(c->cfg.metrics, b, matched, nm, (size_t)n);
    eb_snapshot_release(snap);
    matcher_put(c, mt);
    return oom ? -1 : n;
}

/* Store one event with the jobs in keys (pairs); lock not held. */
static int store_event_jobs(eb_core *c, const char *id, const char *account, const char *regname, const char *busname,
                            const char *body, size_t len, uint32_t hops, const eb_buf *keys, long njobs,
                            eb_store_done_fn done, void *ctx)
{
    eb_store_job *jobs = calloc((size_t)njobs, sizeof *jobs);
    if (!jobs)
        return EB_FWD_ERROR;
    const char *p = keys->p;
    for (long j = 0; j < njobs; j++) {
        jobs[j].rule = p;
        p += strlen(p) + 1;
        jobs[j].target_id = p;
        p += strlen(p) + 1;
    }
    eb_store_event ev = {.id = id,
                         .account = account,
                         .region = regname,
                         .bus = busname,
                         .time_ms = eb_now_ms(),
                         .body = body,
                         .len = len,
                         .first_job = 0,
                         .njobs = (uint32_t)njobs,
                         .hops = hops};
    int rc = eb_store_append(c->store, &ev, 1, jobs, (size_t)njobs, done, ctx);
    free(jobs);
    return rc == EB_STORE_OK ? EB_FWD_QUEUED : EB_FWD_ERROR;
}

int eb_core_forward(eb_core *c, const char *bus_arn, const char *event, size_t len, uint32_t hops,
                    eb_store_done_fn done, void *ctx)
{
    arn_parts a;
    if (parse_arn(bus_arn, &a) || strcmp(a.service, "events") || strncmp(a.resource, "event-bus/", 10))
        return EB_FWD_NO_BUS;
    if (hops + 1 > EB_MAX_HOPS)
        return EB_FWD_LOOP;
    /* the envelope: same id within a region, a new one across regions */
    json_t *env = json_loadb(event, len, 0, NULL);
    if (!json_is_object(env)) {
        json_decref(env);
        return EB_FWD_ERROR;
    }
    char id[37];
    const char *evregion = sget(env, "region");
    const char *evid = sget(env, "id");
    char *body = NULL;
    size_t blen = len;
    if (evregion && evid && !strcmp(evregion, a.region) && strlen(evid) < sizeof id) {
        snprintf(id, sizeof id, "%s", evid);
    } else {
        eb_uuid4(id);
        json_object_set_new(env, "id", json_string(id));
        body = json_dumps(env, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!body) {
            json_decref(env);
            return EB_FWD_ERROR;
        }
        blen = strlen(body);
    }
    json_decref(env);
    eb_buf keys = {0};
    long njobs;
    char account[32], regname[64], busname[257];
    pthread_rwlock_rdlock(&c->lock);
    eb_caller who = {a.account, a.region};
    region *r = region_find(c, &who);
    bus *b = bus_find(r, a.resource + 10);
    if (!b) {
        pthread_rwlock_unlock(&c->lock);
        free(body);
        return EB_FWD_NO_BUS;
    }
    snprintf(account, sizeof account, "%s", r->account);
    snprintf(regname, sizeof regname, "%s", r->region);
    snprintf(busname, sizeof busname, "%s", b->name);
    njobs = bus_jobs(c, r, b, body ? body : event, blen, &keys);
    pthread_rwlock_unlock(&c->lock);
    int ret;
    if (njobs < 0)
        ret = EB_FWD_ERROR;
    else if (njobs == 0)
        ret = EB_FWD_DELIVERED;
    else
        ret = store_event_jobs(c, id, account, regname, busname, body ? body : event, blen, hops + 1, &keys, njobs,
                               done, ctx);
    eb_buf_free(&keys);
    free(body);
    return ret;
}

void eb_core_schedules(eb_core *c, eb_sched_fn fn, void *ctx)
{
    char key[1024];
    pthread_rwlock_rdlock(&c->lock);
    for (size_t i = 0; i < c->nregions; i++) {
        const region *r = c->regions[i];
        for (size_t j = 0; j < r->nbuses; j++) {
            const bus *b = r->buses[j];
            for (size_t k = 0; k < b->nrules; k++) {
                const rule *ru = b->rules[k];
                const char *expr = sget(ru->doc, "ScheduleExpression");
                if (!expr)
                    continue;
                const char *state = sget(ru->doc, "State");
                snprintf(key, sizeof key, "%s/%s/%s", r->name, b->name, ru->name);
                eb_sched_rule sr = {.rule_key = key,
                                    .expr = expr,
                                    .rule_arn = sget(ru->doc, "Arn"),
                                    .created_ms = json_integer_value(json_object_get(ru->doc, "CreationTimeMs")),
                                    .enabled = !state || strcmp(state, "DISABLED") != 0};
                fn(ctx, &sr);
            }
        }
    }
    pthread_rwlock_unlock(&c->lock);
}

int eb_core_fire_schedule(eb_core *c, const char *rule_key, int64_t at_s, eb_store_done_fn done, void *ctx)
{
    eb_buf keys = {0}, body = {0};
    char id[37], tbuf[21], account[32], regname[64], busname[257];
    long njobs = 0;
    eb_uuid4(id);
    eb_time_rfc3339(at_s, tbuf);
    pthread_rwlock_rdlock(&c->lock);
    rule *ru = rule_by_key(c, rule_key);
    if (!ru) {
        pthread_rwlock_unlock(&c->lock);
        return EB_FWD_NO_BUS;
    }
    const region *r = ru->bus->reg;
    snprintf(account, sizeof account, "%s", r->account);
    snprintf(regname, sizeof regname, "%s", r->region);
    snprintf(busname, sizeof busname, "%s", ru->bus->name);
    int oom = eb_buf_puts(&body, "{\"version\":\"0\",\"id\":\"") || eb_buf_puts(&body, id) ||
              eb_buf_puts(&body, "\",\"detail-type\":\"Scheduled Event\",\"source\":\"aws.events\",\"account\":\"") ||
              eb_buf_puts(&body, r->account) || eb_buf_puts(&body, "\",\"time\":\"") || eb_buf_puts(&body, tbuf) ||
              eb_buf_puts(&body, "\",\"region\":") || eb_buf_json_str(&body, r->region, strlen(r->region)) ||
              eb_buf_puts(&body, ",\"resources\":[");
    const char *arn = sget(ru->doc, "Arn");
    oom |= eb_buf_json_str(&body, arn ? arn : "", arn ? strlen(arn) : 0) || eb_buf_puts(&body, "],\"detail\":{}}");
    size_t ti;
    json_t *t;
    json_array_foreach(json_object_get(ru->doc, "Targets"), ti, t) {
        oom |= eb_buf_puts(&keys, rule_key) || eb_buf_putc(&keys, 0) || eb_buf_puts(&keys, sget(t, "Id")) ||
               eb_buf_putc(&keys, 0);
        njobs++;
    }
    pthread_rwlock_unlock(&c->lock);
    int ret = oom ? EB_FWD_ERROR
              : !njobs ? EB_FWD_DELIVERED
                       : store_event_jobs(c, id, account, regname, busname, body.p, body.n, 0, &keys, njobs, done, ctx);
    eb_buf_free(&keys);
    eb_buf_free(&body);
    return ret;
}
