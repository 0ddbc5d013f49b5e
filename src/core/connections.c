/* Connections and API destinations (see connections.h for the contract, the
 * store documents and the states).
 *
 * Layout: one `creg` per (account, region), created on the first write,
 * holding two name-sorted tables of {name, doc}. The doc is the stored JSON
 * document itself:
 *   connection: Name, Arn, AuthorizationType, State, [StateReason],
 *               [Description], [KmsKeyIdentifier], [SecretArn],
 *               [AuthParameters] (as the client sent them, secrets included,
 *               JSON nulls dropped), CreationTimeMs, LastModifiedTimeMs,
 *               LastAuthorizedTimeMs
 *   apidest:    Name, Arn, [Description], ConnectionArn, InvocationEndpoint,
 *               HttpMethod, InvocationRateLimitPerSecond, CreationTimeMs,
 *               LastModifiedTimeMs
 * A change builds a new doc, writes it to the store, then swaps it in; a
 * failed write changes nothing.
 *
 * Answers and errors (observed AWS texts where the reference records them,
 * our reconstruction elsewhere; docs/api-choices.md lists the choices):
 *  - missing connection: "Failed to describe the connection(s). Connection
 *    'NAME' does not exist." for every operation (observed for Describe and
 *    for CreateApiDestination's ConnectionArn);
 *  - missing API destination: "Failed to describe the api-destination(s). An
 *    api-destination 'NAME' does not exist." (observed for Describe);
 *  - DeleteConnection answers DELETING and the connection is gone at once;
 *    DeauthorizeConnection answers DEAUTHORIZING and is DEAUTHORIZED at once;
 *  - a connection still named by API destinations cannot be deleted
 *    (ValidationException; the reference does not record AWS's behaviour);
 *  - private connections (InvocationConnectivityParameters,
 *    ConnectivityParameters) are refused: nothing here can reach a VPC
 *    Lattice resource;
 *  - endpoints: http:// and https:// (AWS: https only); none = https.
 * Times are integer milliseconds in the docs, epoch seconds on the wire. */
#define _GNU_SOURCE
#include "connections.h"
#include "page.h"

#include "../util/util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    char *name;
    json_t *doc;
} item;

/* Items sorted by name (strcmp). */
typedef struct {
    item *v;
    size_t n, cap;
} table;

typedef struct {
    char *key; /* "ACCOUNT/REGION" */
    char *account, *region;
    table conns, dests;
} creg;

struct eb_conns {
    eb_conns_config cfg;
    char *partition;
    eb_store *store;
    pthread_rwlock_t lock;
    creg **regs; /* sorted by key */
    size_t nregs, capregs;
};

#define OAUTH "OAUTH_CLIENT_CREDENTIALS"
#define DEFAULT_RATE 300

/* The credentials block each AuthorizationType takes, and its members that
 * must be known before the connection can be used. */
static const struct {
    const char *type, *block;
    const char *need[2];
} AUTH[] = {
    {"BASIC", "BasicAuthParameters", {"Username", "Password"}},
    {"API_KEY", "ApiKeyAuthParameters", {"ApiKeyName", "ApiKeyValue"}},
    {OAUTH, "OAuthParameters", {"AuthorizationEndpoint", "HttpMethod"}},
};
#define NAUTH (sizeof AUTH / sizeof AUTH[0])

static const char *const CONN_STATES[] = {"CREATING",   "UPDATING",     "DELETING",      "AUTHORIZED",
                                          "DEAUTHORIZED", "AUTHORIZING", "DEAUTHORIZING", "ACTIVE",
                                          "FAILED_CONNECTIVITY"};

/* ---- small helpers -------------------------------------------------------------- */
__attribute__((format(printf, 3, 4))) static json_t *fail(eb_core_error *e, const char *type, const char *fmt, ...)
{
    e->type = type;
    e->http = strcmp(type, "InternalException") ? 400 : 500;
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

static json_t *fail_oom(eb_core_error *e)
{
    return fail(e, "InternalException", "Out of memory.");
}

static json_t *conn_missing(eb_core_error *e, const char *name)
{
    return fail(e, "ResourceNotFoundException", "Failed to describe the connection(s). Connection '%s' does not exist.",
                name);
}

static json_t *dest_missing(eb_core_error *e, const char *name)
{
    return fail(e, "ResourceNotFoundException",
                "Failed to describe the api-destination(s). An api-destination '%s' does not exist.", name);
}

static const char *sget(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A member that is present and not JSON null. */
static json_t *mget(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return v && !json_is_null(v) ? v : NULL;
}

static void copy_member(json_t *dst, const json_t *src, const char *k)
{
    json_t *v = mget(src, k);
    if (v)
        json_object_set(dst, k, v);
}

static json_t *epoch_json(json_int_t ms)
{
    if (ms % 1000 == 0)
        return json_integer(ms / 1000);
    return json_real((double)ms / 1000.0);
}

static void put_time(json_t *o, const char *wire, const json_t *doc, const char *stored)
{
    const json_t *v = json_object_get(doc, stored);
    if (json_is_integer(v))
        json_object_set_new(o, wire, epoch_json(json_integer_value(v)));
}

/* A deep copy without JSON nulls (the API treats null as absent). */
static json_t *copy_clean(const json_t *v)
{
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            if (!json_is_null(x))
                json_object_set_new(o, k, copy_clean(x));
        }
        return o;
    }
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            if (!json_is_null(x))
                json_array_append_new(a, copy_clean(x));
        }
        return a;
    }
    return json_deep_copy(v);
}

static int in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        if (!strcmp(s, list[i]))
            return 1;
    return 0;
}

/* ---- tables and regions ---------------------------------------------------------- */
static size_t table_find(const table *t, const char *name, int *found)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(t->v[mid].name, name);
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

static item *table_get(const table *t, const char *name)
{
    int found;
    size_t at = table_find(t, name, &found);
    return found ? &t->v[at] : NULL;
}

/* Insert (name, doc); the table takes a new reference to doc. -1: exists or
 * out of memory. */
static int table_insert(table *t, const char *name, json_t *doc)
{
    int found;
    size_t at = table_find(t, name, &found);
    if (found)
        return -1;
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 8;
        item *nv = realloc(t->v, nc * sizeof *nv);
        if (!nv)
            return -1;
        t->v = nv;
        t->cap = nc;
    }
    char *nm = strdup(name);
    if (!nm)
        return -1;
    memmove(t->v + at + 1, t->v + at, (t->n - at) * sizeof *t->v);
    t->v[at] = (item){nm, json_incref(doc)};
    t->n++;
    return 0;
}

static void table_remove(table *t, const char *name)
{
    int found;
    size_t at = table_find(t, name, &found);
    if (!found)
        return;
    free(t->v[at].name);
    json_decref(t->v[at].doc);
    memmove(t->v + at, t->v + at + 1, (t->n - at - 1) * sizeof *t->v);
    t->n--;
}

static void table_free(table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].name);
        json_decref(t->v[i].doc);
    }
    free(t->v);
}

/* Swap in a new doc (the item takes the reference). */
static void item_set_doc(item *it, json_t *doc)
{
    json_decref(it->doc);
    it->doc = doc;
}

static void creg_free(creg *r)
{
    if (!r)
        return;
    table_free(&r->conns);
    table_free(&r->dests);
    free(r->key);
    free(r->account);
    free(r->region);
    free(r);
}

static size_t reg_find(const eb_conns *cs, const char *key, int *found)
{
    size_t lo = 0, hi = cs->nregs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(cs->regs[mid]->key, key);
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

static creg *reg_lookup(const eb_conns *cs, const char *account, const char *region)
{
    char key[256];
    snprintf(key, sizeof key, "%s/%s", account, region);
    int found;
    size_t at = reg_find(cs, key, &found);
    return found ? cs->regs[at] : NULL;
}

/* The (account, region), created when missing; NULL when out of memory. */
static creg *reg_get(eb_conns *cs, const char *account, const char *region)
{
    char key[256];
    snprintf(key, sizeof key, "%s/%s", account, region);
    int found;
    size_t at = reg_find(cs, key, &found);
    if (found)
        return cs->regs[at];
    if (cs->nregs == cs->capregs) {
        size_t nc = cs->capregs ? cs->capregs * 2 : 8;
        creg **nr = realloc(cs->regs, nc * sizeof *nr);
        if (!nr)
            return NULL;
        cs->regs = nr;
        cs->capregs = nc;
    }
    creg *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->key = strdup(key);
    r->account = strdup(account);
    r->region = strdup(region);
    if (!r->key || !r->account || !r->region) {
        creg_free(r);
        return NULL;
    }
    memmove(cs->regs + at + 1, cs->regs + at, (cs->nregs - at) * sizeof *cs->regs);
    cs->regs[at] = r;
    cs->nregs++;
    return r;
}

/* ---- store --------------------------------------------------------------------------- */
static int store_put(eb_conns *cs, const char *kind, const creg *r, const char *name, const json_t *doc)
{
    char key[512];
    snprintf(key, sizeof key, "%s/%s", r->key, name);
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text)
        return -1;
    int rc = eb_store_doc_put(cs->store, kind, key, text, strlen(text));
    /* the text may hold credentials: do not leave them in freed memory */
    explicit_bzero(text, strlen(text));
    free(text);
    return rc;
}

static int store_delete(eb_conns *cs, const char *kind, const creg *r, const char *name)
{
    char key[512];
    snprintf(key, sizeof key, "%s/%s", r->key, name);
    return eb_store_doc_delete(cs->store, kind, key);
}

/* key "ACCOUNT/REGION/NAME" -> its three parts (NAME is the rest). */
static int split_key(const char *key, char *account, char *region, char *name, size_t n)
{
    const char *a = strchr(key, '/');
    const char *b = a ? strchr(a + 1, '/') : NULL;
    if (!a || !b || a == key || b == a + 1 || !b[1] || (size_t)(a - key) >= n || (size_t)(b - a - 1) >= n ||
        strlen(b + 1) >= n || strchr(b + 1, '/'))
        return -1;
    memcpy(account, key, (size_t)(a - key));
    account[a - key] = 0;
    memcpy(region, a + 1, (size_t)(b - a - 1));
    region[b - a - 1] = 0;
    snprintf(name, n, "%s", b + 1);
    return 0;
}

typedef struct {
    eb_conns *cs;
    int dests;
} load_ctx;

static int load_doc(void *ctx, const char *key, const char *doc, size_t len)
{
    load_ctx *lc = ctx;
    char account[256], region[256], name[256];
    json_t *d = json_loadb(doc, len, 0, NULL);
    static const char *const conn_need[] = {"Name", "Arn", "State", "AuthorizationType"};
    static const char *const dest_need[] = {"Name", "Arn", "ConnectionArn", "InvocationEndpoint", "HttpMethod"};
    const char *const *need = lc->dests ? dest_need : conn_need;
    size_t nneed = lc->dests ? sizeof dest_need / sizeof *dest_need : sizeof conn_need / sizeof *conn_need;
    int bad = split_key(key, account, region, name, sizeof name) || !json_is_object(d);
    for (size_t i = 0; !bad && i < nneed; i++)
        bad = !sget(d, need[i]);
    if (bad) {
        eb_log(EB_LOG_ERROR, "store: unreadable connection/api-destination document skipped", "kind=%s key=%s",
               lc->dests ? "apidest" : "connection", key);
        json_decref(d);
        return 0;
    }
    creg *r = reg_get(lc->cs, account, region);
    int rc = r ? table_insert(lc->dests ? &r->dests : &r->conns, name, d) : -1;
    json_decref(d);
    return rc ? 1 : 0;
}

eb_conns *eb_conns_open(const eb_conns_config *cfg, eb_store *store, char *err, size_t errlen)
{
    eb_conns *cs = calloc(1, sizeof *cs);
    if (!cs) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    cs->cfg = *cfg;
    cs->partition = strdup(cfg->partition ? cfg->partition : "aws");
    cs->cfg.partition = cs->partition;
    cs->store = store;
    pthread_rwlock_init(&cs->lock, NULL);
    load_ctx lc = {cs, 0}, ld = {cs, 1};
    if (!cs->partition || eb_store_doc_scan(store, "connection", load_doc, &lc) ||
        eb_store_doc_scan(store, "apidest", load_doc, &ld)) {
        snprintf(err, errlen, "could not load the connections and API destinations from the store");
        eb_conns_close(cs);
        return NULL;
    }
    return cs;
}

void eb_conns_close(eb_conns *cs)
{
    if (!cs)
        return;
    for (size_t i = 0; i < cs->nregs; i++)
        creg_free(cs->regs[i]);
    free(cs->regs);
    free(cs->partition);
    pthread_rwlock_destroy(&cs->lock);
    free(cs);
}

/* ---- ARNs ------------------------------------------------------------------------------ */
static json_t *new_arn(const eb_conns *cs, const creg *r, const char *kind, const char *name)
{
    char id[37];
    eb_uuid4(id);
    char arn[512];
    snprintf(arn, sizeof arn, "arn:%s:events:%s:%s:%s/%s/%s", cs->partition, r->region, r->account, kind, name, id);
    return json_string(arn);
}

/* arn:aws:secretsmanager:REGION:ACCOUNT:secret:events!connection/NAME/UUID-xxxxxx */
static json_t *new_secret_arn(const eb_conns *cs, const creg *r, const char *name)
{
    char id[37], tail[37];
    eb_uuid4(id);
    eb_uuid4(tail);
    char arn[512];
    snprintf(arn, sizeof arn, "arn:%s:secretsmanager:%s:%s:secret:events!connection/%s/%s-%.6s", cs->partition,
             r->region, r->account, name, id, tail);
    return json_string(arn);
}

/* arn:PARTITION:events:REGION:ACCOUNT:KIND/NAME/ID -> region, account, name. */
static int parse_arn(const char *arn, const char *kind, char *region, char *account, char *name, size_t n)
{
    if (!arn || strncmp(arn, "arn:", 4))
        return -1;
    const char *p = strchr(arn + 4, ':'); /* after the partition */
    if (!p || strncmp(p, ":events:", 8))
        return -1;
    p += 8;
    const char *c = strchr(p, ':');
    if (!c || (size_t)(c - p) >= n)
        return -1;
    memcpy(region, p, (size_t)(c - p));
    region[c - p] = 0;
    p = c + 1;
    c = strchr(p, ':');
    if (!c || (size_t)(c - p) >= n)
        return -1;
    memcpy(account, p, (size_t)(c - p));
    account[c - p] = 0;
    p = c + 1;
    size_t kl = strlen(kind);
    if (strncmp(p, kind, kl) || p[kl] != '/')
        return -1;
    p += kl + 1;
    c = strchr(p, '/');
    if (!c || c == p || (size_t)(c - p) >= n || !c[1])
        return -1;
    memcpy(name, p, (size_t)(c - p));
    name[c - p] = 0;
    return 0;
}

/* The connection an ARN names in this registry (exact ARN match). */
static item *conn_by_arn(const eb_conns *cs, const char *arn)
{
    char region[256], account[256], name[256];
    if (parse_arn(arn, "connection", region, account, name, sizeof name))
        return NULL;
    creg *r = reg_lookup(cs, account, region);
    item *it = r ? table_get(&r->conns, name) : NULL;
    return it && !strcmp(sget(it->doc, "Arn"), arn) ? it : NULL;
}

/* The name in a connection ARN, for messages (the whole ARN when it has none). */
static void arn_name(const char *arn, const char *kind, char *out, size_t n)
{
    char region[256], account[256];
    if (parse_arn(arn, kind, region, account, out, n))
        snprintf(out, n, "%s", arn);
}

/* ---- endpoints ---------------------------------------------------------------------------- */
/* An http:// or https:// URL, or one without a scheme (then https), with a
 * host that is neither empty nor holds '*' or user info. The shape check
 * already restricted the characters. */
static int endpoint_ok(const char *s)
{
    const char *p = s;
    if (!strncasecmp(p, "https://", 8))
        p += 8;
    else if (!strncasecmp(p, "http://", 7))
        p += 7;
    else if (strstr(p, "://"))
        return 0;
    size_t h = strcspn(p, "/?#");
    if (!h || p[0] == ':')
        return 0;
    for (size_t i = 0; i < h; i++)
        if (p[i] == '*' || p[i] == '@')
            return 0;
    return 1;
}

static char *endpoint_url(const char *s)
{
    if (!s)
        return NULL;
    if (!strncasecmp(s, "https://", 8) || !strncasecmp(s, "http://", 7))
        return strdup(s);
    char *u = NULL;
    return asprintf(&u, "https://%s", s) < 0 ? NULL : u;
}

/* ---- connection views ---------------------------------------------------------------------- */
/* ConnectionHttpParameters without the values marked IsValueSecret. */
static json_t *http_params_view(const json_t *p)
{
    static const char *const lists[] = {"HeaderParameters", "QueryStringParameters", "BodyParameters"};
    json_t *o = json_object();
    for (size_t i = 0; i < 3; i++) {
        json_t *l = json_object_get(p, lists[i]);
        if (!json_is_array(l))
            continue;
        json_t *out = json_array();
        size_t j;
        json_t *it;
        json_array_foreach(l, j, it) {
            int secret = json_is_true(json_object_get(it, "IsValueSecret"));
            json_t *x = json_object();
            copy_member(x, it, "Key");
            if (!secret)
                copy_member(x, it, "Value");
            json_object_set_new(x, "IsValueSecret", json_boolean(secret));
            json_array_append_new(out, x);
        }
        json_object_set_new(o, lists[i], out);
    }
    return o;
}

/* AuthParameters as Describe shows them: built from the public members only
 * (a whitelist, so that no secret can slip through). */
static json_t *auth_view(const json_t *ap)
{
    json_t *o = json_object();
    json_t *b = json_object_get(ap, "BasicAuthParameters");
    if (json_is_object(b)) {
        json_t *x = json_object();
        copy_member(x, b, "Username");
        json_object_set_new(o, "BasicAuthParameters", x);
    }
    json_t *k = json_object_get(ap, "ApiKeyAuthParameters");
    if (json_is_object(k)) {
        json_t *x = json_object();
        copy_member(x, k, "ApiKeyName");
        json_object_set_new(o, "ApiKeyAuthParameters", x);
    }
    json_t *oa = json_object_get(ap, "OAuthParameters");
    if (json_is_object(oa)) {
        json_t *x = json_object();
        json_t *cp = json_object();
        copy_member(cp, json_object_get(oa, "ClientParameters"), "ClientID");
        json_object_set_new(x, "ClientParameters", cp);
        copy_member(x, oa, "AuthorizationEndpoint");
        copy_member(x, oa, "HttpMethod");
        json_t *hp = json_object_get(oa, "OAuthHttpParameters");
        if (json_is_object(hp))
            json_object_set_new(x, "OAuthHttpParameters", http_params_view(hp));
        json_object_set_new(o, "OAuthParameters", x);
    }
    json_t *ip = json_object_get(ap, "InvocationHttpParameters");
    if (json_is_object(ip))
        json_object_set_new(o, "InvocationHttpParameters", http_params_view(ip));
    return o;
}

/* Describe (full) or a ListConnections entry. */
static json_t *conn_view(const json_t *doc, int full)
{
    json_t *o = json_object();
    json_object_set(o, "ConnectionArn", json_object_get(doc, "Arn"));
    copy_member(o, doc, "Name");
    if (full)
        copy_member(o, doc, "Description");
    json_object_set(o, "ConnectionState", json_object_get(doc, "State"));
    copy_member(o, doc, "StateReason");
    copy_member(o, doc, "AuthorizationType");
    if (full) {
        copy_member(o, doc, "SecretArn");
        copy_member(o, doc, "KmsKeyIdentifier");
        json_t *ap = json_object_get(doc, "AuthParameters");
        if (json_is_object(ap))
            json_object_set_new(o, "AuthParameters", auth_view(ap));
    }
    put_time(o, "CreationTime", doc, "CreationTimeMs");
    put_time(o, "LastModifiedTime", doc, "LastModifiedTimeMs");
    put_time(o, "LastAuthorizedTime", doc, "LastAuthorizedTimeMs");
    return o;
}

/* The answer of Update/Deauthorize/Delete (and Create, without the last). */
static json_t *conn_answer(const json_t *doc, const char *state, int authorized_time)
{
    json_t *o = json_object();
    json_object_set(o, "ConnectionArn", json_object_get(doc, "Arn"));
    json_object_set_new(o, "ConnectionState", json_string(state));
    put_time(o, "CreationTime", doc, "CreationTimeMs");
    put_time(o, "LastModifiedTime", doc, "LastModifiedTimeMs");
    if (authorized_time)
        put_time(o, "LastAuthorizedTime", doc, "LastAuthorizedTimeMs");
    return o;
}

/* ---- connection checks --------------------------------------------------------------------- */
static int private_refused(const json_t *req, const char *action, eb_core_error *e)
{
    if (mget(req, "InvocationConnectivityParameters") ||
        mget(mget(req, "AuthParameters"), "ConnectivityParameters")) {
        fail(e, "ValidationException",
             "Failed to %s the connection(s). Private connections (InvocationConnectivityParameters, "
             "ConnectivityParameters) are not supported by this server.",
             action);
        return -1;
    }
    return 0;
}

static int auth_index(const char *type)
{
    for (size_t i = 0; i < NAUTH; i++)
        if (type && !strcmp(AUTH[i].type, type))
            return (int)i;
    return -1;
}

/* No credentials block of another type than `type` in ap. */
static int other_blocks_refused(const json_t *ap, const char *type, const char *action, eb_core_error *e)
{
    for (size_t i = 0; i < NAUTH; i++) {
        if (strcmp(AUTH[i].type, type) && mget(ap, AUTH[i].block)) {
            fail(e, "ValidationException",
                 "Failed to %s the connection(s). %s cannot be used with AuthorizationType %s; give %s.", action,
                 AUTH[i].block, type, AUTH[auth_index(type)].block);
            return -1;
        }
    }
    return 0;
}

/* A complete credentials block for AUTH[ai]: NULL, or the member missing. */
static const char *block_missing(size_t ai, const json_t *blk)
{
    for (size_t i = 0; i < 2; i++)
        if (!sget(blk, AUTH[ai].need[i]))
            return AUTH[ai].need[i];
    if (!strcmp(AUTH[ai].type, OAUTH)) {
        const json_t *cp = json_object_get(blk, "ClientParameters");
        if (!sget(cp, "ClientID"))
            return "ClientParameters.ClientID";
        if (!sget(cp, "ClientSecret"))
            return "ClientParameters.ClientSecret";
    }
    return NULL;
}

static int oauth_endpoint_refused(const json_t *blk, const char *action, eb_core_error *e)
{
    const char *ep = sget(blk, "AuthorizationEndpoint");
    if (ep && !endpoint_ok(ep)) {
        fail(e, "ValidationException",
             "Failed to %s the connection(s). Parameter AuthorizationEndpoint is not valid. Reason: Endpoint '%s' "
             "is not an http:// or https:// URL with a host.",
             action, ep);
        return -1;
    }
    return 0;
}

/* Give a (re)authorized connection its state and times. */
static void set_authorized(json_t *doc, const creg *r, const eb_conns *cs, const char *name, json_int_t now)
{
    const char *type = sget(doc, "AuthorizationType");
    int oauth = type && !strcmp(type, OAUTH);
    json_object_set_new(doc, "State", json_string(oauth ? "AUTHORIZING" : "AUTHORIZED"));
    json_object_del(doc, "StateReason");
    json_object_set_new(doc, "LastAuthorizedTimeMs", json_integer(now));
    if (!json_object_get(doc, "SecretArn"))
        json_object_set_new(doc, "SecretArn", new_secret_arn(cs, r, name));
}

/* ---- connection operations ----------------------------------------------------------------- */
static json_t *op_create_connection(eb_conns *cs, const eb_caller *who, json_t *req, eb_core_error *e)
{
    const char *name = sget(req, "Name");
    const char *type = sget(req, "AuthorizationType");
    const json_t *ap = mget(req, "AuthParameters");
    int ai = auth_index(type);
    if (ai < 0)
        return fail(e, "ValidationException", "Failed to create the connection(s). Unknown AuthorizationType.");
    if (private_refused(req, "create", e) || other_blocks_refused(ap, type, "create", e))
        return NULL;
    const json_t *blk = mget(ap, AUTH[ai].block);
    if (!blk)
        return fail(e, "ValidationException",
                    "Failed to create the connection(s). %s are required for AuthorizationType %s.", AUTH[ai].block,
                    type);
    const char *miss = block_missing((size_t)ai, blk);
    if (miss)
        return fail(e, "ValidationException",
                    "Failed to create the connection(s). %s.%s is required for AuthorizationType %s.",
                    AUTH[ai].block, miss, type);
    if (oauth_endpoint_refused(blk, "create", e))
        return NULL;
    creg *r = reg_get(cs, who->account, who->region);
    if (!r)
        return fail_oom(e);
    if (table_get(&r->conns, name))
        return fail(e, "ResourceAlreadyExistsException", "Connection %s already exists.", name);
    if (r->conns.n >= cs->cfg.max_connections)
        return fail(e, "LimitExceededException", "The requested resource exceeds the maximum number allowed.");

    json_int_t now = eb_now_ms();
    json_t *doc = json_object();
    json_object_set_new(doc, "Name", json_string(name));
    json_object_set_new(doc, "Arn", new_arn(cs, r, "connection", name));
    json_object_set_new(doc, "AuthorizationType", json_string(type));
    copy_member(doc, req, "Description");
    copy_member(doc, req, "KmsKeyIdentifier");
    json_t *sap = json_object();
    json_object_set_new(sap, AUTH[ai].block, copy_clean(blk));
    json_t *ip = mget(ap, "InvocationHttpParameters");
    if (ip)
        json_object_set_new(sap, "InvocationHttpParameters", copy_clean(ip));
    json_object_set_new(doc, "AuthParameters", sap);
    json_object_set_new(doc, "CreationTimeMs", json_integer(now));
    json_object_set_new(doc, "LastModifiedTimeMs", json_integer(now));
    set_authorized(doc, r, cs, name, now);
    if (store_put(cs, "connection", r, name, doc)) {
        json_decref(doc);
        return fail_store(e);
    }
    if (table_insert(&r->conns, name, doc)) {
        json_decref(doc);
        return fail_oom(e);
    }
    json_t *o = conn_answer(doc, sget(doc, "State"), 0);
    json_decref(doc);
    return o;
}

static json_t *op_describe_connection(eb_conns *cs, const eb_caller *who, json_t *req, eb_core_error *e)
{
    const char *name = sget(req, "Name");
    creg *r = reg_lookup(cs, who->account, who->region);
    item *it = r ? table_get(&r->conns, name) : NULL;
    return it ? conn_view(it->doc, 1) : conn_missing(e, name);
}

/* One page of ListConnections / ListApiDestinations over `t` (NULL: none in
 * the region): the items whose doc field `doc_field` equals the request's
 * `req_field` when that is given, under `out_key`, each as `view` shows it. */
typedef json_t *(*list_view_fn)(const eb_conns *cs, const json_t *doc);

static json_t *list_page(const eb_conns *cs, const table *t, json_t *req, const char *req_field,
                         const char *doc_field, const char *out_key, list_view_fn view, eb_core_error *e)
{
    eb_page pg;
    if (eb_page_init(req, "NamePrefix", &pg, e))
        return NULL;
    const char *want = sget(req, req_field);
    json_t *list = json_array();
    json_t *o = json_pack("{s:o}", out_key, list);
    const char *last = NULL;
    for (size_t i = 0; t && i < t->n; i++) {
        const item *it = &t->v[i];
        if (!eb_page_wants(&pg, it->name) || (want && strcmp(want, sget(it->doc, doc_field))))
            continue;
        if (eb_page_full(&pg, list, o, last))
            break;
        json_array_append_new(list, view(cs, it->doc));
        last = it->name;
    }
    return o;
}

static json_t *conn_list_view(const eb_conns *cs, const json_t *doc)
{
    (void)cs;
    return conn_view(doc, 0);
}

static json_t *op_list_connections(eb_conns *cs, const eb_caller *who, json_t *req, eb_core_error *e)
{
    creg *r = reg_lookup(cs, who->account, who->region);
    return list_page(cs, r ? &r->conns : NULL, req, "ConnectionState", "State", "Connections", conn_list_view, e);
}

static void merge_block(json_t *dst, const json_t *given)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)given, k, v) {
        if (json_is_null(v))
            continue;
        json_t *cur = json_object_get(dst, k);
        if (!strcmp(k, "ClientParameters") && json_is_object(cur) && json_is_object(v))
            merge_block(cur, v);
        else
            json_object_set_new(dst, k, copy_clean(v));
    }
}

static json_t *op_update_connection(eb_conns *cs, const eb_caller *who, json_t *req, eb_core_error *e)
{
    const char *name = sget(req, "Name");
    creg *r = reg_lookup(cs, who->account, who->region);
    item *it = r ? table_get(&r->conns, name) : NULL;
    if (!it)
        return conn_missing(e, name);
    if (private_refused(req, "update", e))
        return NULL;
    const char *oldtype = sget(it->doc, "AuthorizationType");
    const char *type = sget(req, "AuthorizationType") ? sget(req, "AuthorizationType") : oldtype;
    int ai = auth_index(type);
    if (ai < 0)
        return fail(e, "ValidationException", "Failed to update the connection(s). Unknown AuthorizationType.");
    const json_t *ap = mget(req, "AuthParameters");
    if (other_blocks_refused(ap, type, "update", e))
        return NULL;
    const json_t *given = mget(ap, AUTH[ai].block);
    int retype = strcmp(type, oldtype) != 0;
    if (retype && !given)
        return fail(e, "ValidationException",
                    "Failed to update the connection(s). %s are required to change AuthorizationType to %s.",
                    AUTH[ai].block, type);

    json_int_t now = eb_now_ms();
    json_t *doc = json_deep_copy(it->doc);
    json_t *sap = json_object_get(doc, "AuthParameters");
    if (!json_is_object(sap)) {
        sap = json_object();
        json_object_set_new(doc, "AuthParameters", sap);
    }
    if (given) {
        json_t *cur = retype ? NULL : json_object_get(sap, AUTH[ai].block);
        json_t *blk = json_is_object(cur) ? json_deep_copy(cur) : json_object();
        merge_block(blk, given);
        const char *miss = block_missing((size_t)ai, blk);
        if (miss || oauth_endpoint_refused(blk, "update", e)) {
            if (miss)
                fail(e, "ValidationException",
                     "Failed to update the connection(s). %s.%s is required for AuthorizationType %s.",
                     AUTH[ai].block, miss, type);
            json_decref(blk);
            json_decref(doc);
            return NULL;
        }
        for (size_t i = 0; i < NAUTH; i++)
            json_object_del(sap, AUTH[i].block);
        json_object_set_new(sap, AUTH[ai].block, blk);
        json_object_set_new(doc, "AuthorizationType", json_string(type));
        set_authorized(doc, r, cs, name, now);
    }
    json_t *ip = mget(ap, "InvocationHttpParameters");
    if (ip)
        json_object_set_new(sap, "InvocationHttpParameters", copy_clean(ip));
    if (json_object_size(sap) == 0)
        json_object_del(doc, "AuthParameters");
    copy_member(doc, req, "Description");
    copy_member(doc, req, "KmsKeyIdentifier");
    json_object_set_new(doc, "LastModifiedTimeMs", json_integer(now));
    if (store_put(cs, "connection", r, name, doc)) {
        json_decref(doc);
        return fail_store(e);
    }
    item_set_doc(it, doc);
    return conn_answer(doc, sget(doc, "State"), 1);
}

static json_t *op_deauthorize_connection(eb_conns *cs, const eb_caller *who, json_t *req, eb_core_error *e)
{
    const char *name = sget(req, "Name");
    creg *r = reg_lookup(cs, who->account, who->region);
    item *it = r ? table_get(&r->conns, name) : NULL;
    if (!it)
        return conn_missing(e, name);
    /* already without credentials (a DEAUTHORIZED set by the delivery engine
     * after a refused token request still holds them: those go now) */
    if (!strcmp(sget(it->doc, "State"), "DEAUTHORIZED") && !json_object_get(it->doc, "AuthParameters"))
        return conn_answer(it->doc, "DEAUTHORIZED", 1);
    json_t *doc = json_deep_copy(it->doc);
    json_object_del(doc, "AuthParameters");
    json_object_del(doc, "SecretArn");
    json_object_set_new(doc, "State", json_string("DEAUTHORIZED"));
    json_object_set_new(doc, "StateReason",
                        json_string("DeauthorizeConnection removed the authorization parameters."));
    json_object_set_new(doc, "LastModifiedTimeMs", json_integer(eb_now_ms()));
    if (store_put(cs, "connection", r, name, doc)) {
        json_decref(doc);
        return fail_store(e);
    }
    item_set_doc(it, doc);
    return conn_answer(doc, "DEAUTHORIZING", 1);
}

static json_t *op_delete_connection(eb_conns *cs, const eb_caller *who, json_t *req, eb_core_error *e)
{
    const char *name = sget(req, "Name");
    creg *r = reg_lookup(cs, who->account, who->region);
    item *it = r ? table_get(&r->conns, name) : NULL;
    if (!it)
        return conn_missing(e, name);
    const char *arn = sget(it->doc, "Arn");
    size_t users = 0;
    const char *first = NULL;
    for (size_t i = 0; i < r->dests.n; i++) {
        if (!strcmp(sget(r->dests.v[i].doc, "ConnectionArn"), arn)) {
            if (!users++)
                first = r->dests.v[i].name;
        }
    }
    if (users)
        return fail(e, "ValidationException",
                    "Failed to delete the connection(s). Connection '%s' is used by %zu api-destination(s) "
                    "(first: '%s'); delete them or point them at another connection first.",
                    name, users, first);
    if (store_delete(cs, "connection", r, name))
        return fail_store(e);
    json_t *o = conn_answer(it->doc, "DELETING", 1);
    table_remove(&r->conns, name);
    return o;
}

/* ---- API destination operations ------------------------------------------------------------- */
static const char *dest_state(const eb_conns *cs, const json_t *doc)
{
    const item *c = conn_by_arn(cs, sget(doc, "ConnectionArn"));
    return c && !strcmp(sget(c->doc, "State"), "AUTHORIZED") ? "ACTIVE" : "INACTIVE";
}

static json_t *dest_view(const eb_conns *cs, const json_t *doc, int full)
{
    json_t *o = json_object();
    json_object_set(o, "ApiDestinationArn", json_object_get(doc, "Arn"));
    copy_member(o, doc, "Name");
    if (full)
        copy_member(o, doc, "Description");
    json_object_set_new(o, "ApiDestinationState", json_string(dest_state(cs, doc)));
    copy_member(o, doc, "ConnectionArn");
    copy_member(o, doc, "InvocationEndpoint");
    copy_member(o, doc, "HttpMethod");
    copy_member(o, doc, "InvocationRateLimitPerSecond");
    put_time(o, "CreationTime", doc, "CreationTimeMs");
    put_time(o, "LastModifiedTime", doc, "LastModifiedTimeMs");
    return o;
}

static json_t *dest_answer(const eb_conns *cs, const json_t *doc)
{
    json_t *o = json_object();
    json_object_set(o, "ApiDestinationArn", json_object_get(doc, "Arn"));
    json_object_set_new(o, "ApiDestinationState", json_string(dest_state(cs, doc)));
    put_time(o, "CreationTime", doc, "CreationTimeMs");
    put_time(o, "LastModifiedTime", doc, "LastModifiedTimeMs");
    return o;
}

/* ConnectionArn must name an existing connection of the caller. */
static int dest_conn_refused(const eb_conns *cs, const eb_caller *who, const char *arn, eb_core_error *e)
{
    char region[256], account[256], name[256];
    const item *c = conn_by_arn(cs, arn);
    if (c && !parse_arn(arn, "connection", region, account, name, sizeof name) && !strcmp(account, who->account) &&
        !strcmp(region, who->region))
        return 0;
    arn_name(arn, "connection", name, sizeof name);
    conn_missing(e, name);
    return -1;
}

static int dest_endpoint_refused(const json_t *req, const char *action, eb_core_error *e)
{
    const char *ep = sget(req, "InvocationEndpoint");
    if (ep && !endpoint_ok(ep)) {
        fail(e, "ValidationException",
             "Failed to %s the api-destination(s). Parameter InvocationEndpoint is not valid. Reason: Endpoint '%s' "
             "is not an http:// or https:// URL with a host.",
             action, ep);
        return -1;
    }
    return 0;
}

static json_t *op_create_api_destination(eb_conns *cs, const eb_caller *who, json_t *req, eb_core_error *e)
{
    const char *name = sget(req, "Name");
    if (dest_endpoint_refused(req, "create", e))
        return NULL;
    creg *r = reg_get(cs, who->account, who->region);
    if (!r)
        return fail_oom(e);
    if (table_get(&r->dests, name))
        return fail(e, "ResourceAlreadyExistsException",
                    "Failed to create the api-destination(s). An api-destination '%s' already exists.", name);
    if (dest_conn_refused(cs, who, sget(req, "ConnectionArn"), e))
        return NULL;
    if (r->dests.n >= cs->cfg.max_api_destinations)
        return fail(e, "LimitExceededException", "The requested resource exceeds the maximum number allowed.");
    json_int_t now = eb_now_ms();
    json_t *doc = json_object();
    json_object_set_new(doc, "Name", json_string(name));
    json_object_set_new(doc, "Arn", new_arn(cs, r, "api-destination", name));
    copy_member(doc, req, "Description");
    copy_member(doc, req, "ConnectionArn");
    copy_member(doc, req, "InvocationEndpoint");
    copy_member(doc, req, "HttpMethod");
    const json_t *rate = json_object_get(req, "InvocationRateLimitPerSecond");
    json_object_set_new(doc, "InvocationRateLimitPerSecond",
                        json_integer(json_is_integer(rate) ? json_integer_value(rate) : DEFAULT_RATE));
    json_object_set_new(doc, "CreationTimeMs", json_integer(now));
    json_object_set_new(doc, "LastModifiedTimeMs", json_integer(now));
    if (store_put(cs, "apidest", r, name, doc)) {
        json_decref(doc);
        return fail_store(e);
    }
    if (table_insert(&r->dests, name, doc)) {
        json_decref(doc);
        return fail_oom(e);
    }
    json_t *o = dest_answer(cs, doc);
    json_decref(doc);
    return o;
}

static json_t *op_describe_api_destination(eb_conns *cs, const eb_caller *who, json_t *req, eb_core_error *e)
{
    const char *name = sget(req, "Name");
    creg *r = reg_lookup(cs, who->account, who->region);
    item *it = r ? table_get(&r->dests, name) : NULL;
    return it ? dest_view(cs, it->doc, 1) : dest_missing(e, name);
}

static json_t *dest_list_view(const eb_conns *cs, const json_t *doc)
{
    return dest_view(cs, doc, 0);
}

static json_t *op_list_api_destinations(eb_conns *cs, const eb_caller *who, json_t *req, eb_core_error *e)
{
    creg *r = reg_lookup(cs, who->account, who->region);
    return list_page(cs, r ? &r->dests : NULL, req, "ConnectionArn", "ConnectionArn", "ApiDestinations",
                     dest_list_view, e);
}

static json_t *op_update_api_destination(eb_conns *cs, const eb_caller *who, json_t *req, eb_core_error *e)
{
    const char *name = sget(req, "Name");
    creg *r = reg_lookup(cs, who->account, who->region);
    item *it = r ? table_get(&r->dests, name) : NULL;
    if (!it)
        return dest_missing(e, name);
    if (dest_endpoint_refused(req, "update", e))
        return NULL;
    const char *conn = sget(req, "ConnectionArn");
    if (conn && dest_conn_refused(cs, who, conn, e))
        return NULL;
    json_t *doc = json_deep_copy(it->doc);
    static const char *const members[] = {"Description", "ConnectionArn", "InvocationEndpoint", "HttpMethod",
                                          "InvocationRateLimitPerSecond"};
    for (size_t i = 0; i < sizeof members / sizeof *members; i++)
        copy_member(doc, req, members[i]);
    json_object_set_new(doc, "LastModifiedTimeMs", json_integer(eb_now_ms()));
    if (store_put(cs, "apidest", r, name, doc)) {
        json_decref(doc);
        return fail_store(e);
    }
    item_set_doc(it, doc);
    return dest_answer(cs, doc);
}

static json_t *op_delete_api_destination(eb_conns *cs, const eb_caller *who, json_t *req, eb_core_error *e)
{
    const char *name = sget(req, "Name");
    creg *r = reg_lookup(cs, who->account, who->region);
    if (!r || !table_get(&r->dests, name))
        return dest_missing(e, name);
    if (store_delete(cs, "apidest", r, name))
        return fail_store(e);
    table_remove(&r->dests, name);
    return json_object();
}

/* ---- dispatch ----------------------------------------------------------------------------------- */
typedef json_t *(*op_fn)(eb_conns *, const eb_caller *, json_t *, eb_core_error *);
static const struct {
    const char *name;
    op_fn fn;
    int writes;
} OPS[] = {
    {"CreateConnection", op_create_connection, 1},
    {"DescribeConnection", op_describe_connection, 0},
    {"ListConnections", op_list_connections, 0},
    {"UpdateConnection", op_update_connection, 1},
    {"DeauthorizeConnection", op_deauthorize_connection, 1},
    {"DeleteConnection", op_delete_connection, 1},
    {"CreateApiDestination", op_create_api_destination, 1},
    {"DescribeApiDestination", op_describe_api_destination, 0},
    {"ListApiDestinations", op_list_api_destinations, 0},
    {"UpdateApiDestination", op_update_api_destination, 1},
    {"DeleteApiDestination", op_delete_api_destination, 1},
};

int eb_conns_has_op(const char *op)
{
    for (size_t i = 0; op && i < sizeof OPS / sizeof *OPS; i++)
        if (!strcmp(OPS[i].name, op))
            return 1;
    return 0;
}

json_t *eb_conns_call(eb_conns *cs, const eb_caller *who, const char *op, json_t *req, eb_core_error *e)
{
    for (size_t i = 0; i < sizeof OPS / sizeof *OPS; i++) {
        if (strcmp(OPS[i].name, op))
            continue;
        if (OPS[i].writes)
            pthread_rwlock_wrlock(&cs->lock);
        else
            pthread_rwlock_rdlock(&cs->lock);
        json_t *out = OPS[i].fn(cs, who, req, e);
        pthread_rwlock_unlock(&cs->lock);
        if (!out && !e->type)
            fail_oom(e);
        return out;
    }
    return fail(e, "UnknownOperationException", "Unknown operation %s.", op);
}

/* ---- for the delivery engine --------------------------------------------------------------------- */
static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void eb_apidest_info_free(eb_apidest_info *i)
{
    if (!i)
        return;
    free(i->arn);
    free(i->endpoint);
    free(i->method);
    free(i->conn_arn);
    free(i->conn_state);
    free(i->auth_type);
    free(i->basic_user);
    wipe_free(i->basic_pass);
    free(i->api_key_name);
    wipe_free(i->api_key_value);
    free(i->oauth_endpoint);
    free(i->oauth_method);
    free(i->client_id);
    wipe_free(i->client_secret);
    json_decref(i->invocation_params);
    json_decref(i->oauth_params);
    memset(i, 0, sizeof *i);
}

int eb_core_apidest_lookup(eb_core *c, const char *arn, eb_apidest_info *out)
{
    memset(out, 0, sizeof *out);
    eb_conns *cs = eb_core_conns(c);
    char region[256], account[256], name[256];
    if (!cs || parse_arn(arn, "api-destination", region, account, name, sizeof name))
        return -1;
    pthread_rwlock_rdlock(&cs->lock);
    creg *r = reg_lookup(cs, account, region);
    const item *d = r ? table_get(&r->dests, name) : NULL;
    const item *cn = d && !strcmp(sget(d->doc, "Arn"), arn) ? conn_by_arn(cs, sget(d->doc, "ConnectionArn")) : NULL;
    int rc = -1;
    if (cn) {
        const json_t *dd = d->doc, *cd = cn->doc;
        const json_t *ap = json_object_get(cd, "AuthParameters");
        const json_t *b = json_object_get(ap, "BasicAuthParameters");
        const json_t *k = json_object_get(ap, "ApiKeyAuthParameters");
        const json_t *oa = json_object_get(ap, "OAuthParameters");
        const json_t *cp = json_object_get(oa, "ClientParameters");
        json_int_t rate = json_integer_value(json_object_get(dd, "InvocationRateLimitPerSecond"));
        out->arn = dup_or_null(sget(dd, "Arn"));
        out->endpoint = endpoint_url(sget(dd, "InvocationEndpoint"));
        out->method = dup_or_null(sget(dd, "HttpMethod"));
        out->rate_per_s = rate > 0 && rate < (json_int_t)(unsigned)-1 ? (unsigned)rate : DEFAULT_RATE;
        out->conn_arn = dup_or_null(sget(cd, "Arn"));
        out->conn_state = dup_or_null(sget(cd, "State"));
        out->auth_type = dup_or_null(sget(cd, "AuthorizationType"));
        out->basic_user = dup_or_null(sget(b, "Username"));
        out->basic_pass = dup_or_null(sget(b, "Password"));
        out->api_key_name = dup_or_null(sget(k, "ApiKeyName"));
        out->api_key_value = dup_or_null(sget(k, "ApiKeyValue"));
        out->oauth_endpoint = endpoint_url(sget(oa, "AuthorizationEndpoint"));
        out->oauth_method = dup_or_null(sget(oa, "HttpMethod"));
        out->client_id = dup_or_null(sget(cp, "ClientID"));
        out->client_secret = dup_or_null(sget(cp, "ClientSecret"));
        json_t *ip = json_object_get(ap, "InvocationHttpParameters");
        json_t *op = json_object_get(oa, "OAuthHttpParameters");
        out->invocation_params = ip ? json_deep_copy(ip) : NULL;
        out->oauth_params = op ? json_deep_copy(op) : NULL;
        int oom = !out->arn || !out->endpoint || !out->method || !out->conn_arn || !out->conn_state ||
                  !out->auth_type || (b && (!out->basic_user || !out->basic_pass)) ||
                  (k && (!out->api_key_name || !out->api_key_value)) ||
                  (oa && (!out->oauth_endpoint || !out->oauth_method || !out->client_id || !out->client_secret)) ||
                  (ip && !out->invocation_params) || (op && !out->oauth_params);
        rc = oom ? -1 : 0;
    }
    pthread_rwlock_unlock(&cs->lock);
    if (rc)
        eb_apidest_info_free(out);
    return rc;
}

int eb_core_connection_set_state(eb_core *c, const char *conn_arn, const char *expect, const char *state,
                                 const char *reason)
{
    eb_conns *cs = eb_core_conns(c);
    if (!cs || !in_list(state, CONN_STATES, sizeof CONN_STATES / sizeof *CONN_STATES) || !strcmp(state, "DELETING"))
        return -1;
    char region[256], account[256], name[256];
    if (parse_arn(conn_arn, "connection", region, account, name, sizeof name))
        return -1;
    pthread_rwlock_wrlock(&cs->lock);
    creg *r = reg_lookup(cs, account, region);
    item *it = r ? table_get(&r->conns, name) : NULL;
    int rc = -1;
    if (it && !strcmp(sget(it->doc, "Arn"), conn_arn)) {
        if (expect && strcmp(expect, sget(it->doc, "State"))) {
            rc = 1;
        } else {
            json_t *doc = json_deep_copy(it->doc);
            json_object_set_new(doc, "State", json_string(state));
            if (reason) {
                /* at most 512 characters, cut at a character boundary */
                size_t n = 0, chars = 0;
                while (reason[n] && chars < 512) {
                    n++;
                    while (((unsigned char)reason[n] & 0xC0) == 0x80)
                        n++;
                    chars++;
                }
                json_object_set_new(doc, "StateReason", json_stringn(reason, n));
            } else {
                json_object_del(doc, "StateReason");
            }
            if (!strcmp(state, "AUTHORIZED"))
                json_object_set_new(doc, "LastAuthorizedTimeMs", json_integer(eb_now_ms()));
            if (store_put(cs, "connection", r, name, doc)) {
                json_decref(doc);
            } else {
                item_set_doc(it, doc);
                rc = 0;
            }
        }
    }
    pthread_rwlock_unlock(&cs->lock);
    return rc;
}
