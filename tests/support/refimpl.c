#define _POSIX_C_SOURCE 200809L
#include "refimpl.h"

#include "ast.h"
#include "casefold.h"
#include "ip.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    json_t *arr;
    size_t idx;
} step;

#define REF_MAX_ARRAYS 1100

typedef struct {
    char *path;
    json_t *v;
    step *trail;
    size_t ntrail;
} leaf;

typedef struct {
    leaf *l;
    size_t n, cap;
} leaves;

static void add_leaf(leaves *ls, const char *path, json_t *v, const step *tr, size_t ntr)
{
    if (ls->n == ls->cap) {
        ls->cap = ls->cap ? ls->cap * 2 : 16;
        ls->l = realloc(ls->l, ls->cap * sizeof *ls->l);
    }
    leaf *l = &ls->l[ls->n++];
    l->path = strdup(path);
    l->v = v;
    l->ntrail = ntr;
    l->trail = malloc((ntr ? ntr : 1) * sizeof *tr);
    memcpy(l->trail, tr, ntr * sizeof *tr);
}

/* Every leaf (string, number, true, false, null) with its dotted path and
 * the array elements it sits in.  Arrays are transparent to paths. */
static void flatten(leaves *ls, json_t *v, const char *path, step *tr, size_t ntr)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        json_object_foreach(v, k, c)
        {
            size_t pl = strlen(path), kl = strlen(k);
            char *np = malloc(pl + kl + 2);
            memcpy(np, path, pl);
            np[pl] = '.';
            memcpy(np + pl + 1, k, kl + 1);
            flatten(ls, c, np, tr, ntr);
            free(np);
        }
    } else if (json_is_array(v)) {
        if (ntr >= REF_MAX_ARRAYS)
            return; /* deeper than any test event; the caller's limit is 1100 */
        for (size_t i = 0; i < json_array_size(v); i++) {
            tr[ntr].arr = v;
            tr[ntr].idx = i;
            flatten(ls, json_array_get(v, i), path, tr, ntr + 1);
        }
    } else {
        add_leaf(ls, path, v, tr, ntr);
    }
}

/* The top-level object's keys start paths without a leading dot, but an
 * empty key is a real segment: "" at top level is path "", {"":{"":1}} is ".". */
static void flatten_root(leaves *ls, json_t *ev)
{
    step tr[REF_MAX_ARRAYS];
    const char *k;
    json_t *c;
    json_object_foreach(ev, k, c) { flatten(ls, c, k, tr, 0); }
}

static int consistent(const leaf *a, const leaf *b)
{
    size_t n = a->ntrail < b->ntrail ? a->ntrail : b->ntrail;
    for (size_t i = 0; i < n; i++) {
        if (a->trail[i].arr != b->trail[i].arr)
            return 1;
        if (a->trail[i].idx != b->trail[i].idx)
            return 0;
    }
    return 1;
}

static char *fold(const char *s, size_t n, size_t *outn)
{
    size_t need = ebp_casefold((const unsigned char *)s, n, NULL, 0);
    char *o = malloc(need + 1);
    ebp_casefold((const unsigned char *)s, n, (unsigned char *)o, need);
    *outn = need;
    return o;
}

/* glob with '*' and escapes \* \\ , straightforward recursion */
static int glob(const char *p, size_t pn, const char *s, size_t sn)
{
    if (!pn)
        return sn == 0;
    if (p[0] == '*') {
        for (size_t i = 0; i <= sn; i++)
            if (glob(p + 1, pn - 1, s + i, sn - i))
                return 1;
        return 0;
    }
    char lit = p[0];
    size_t adv = 1;
    if (p[0] == '\\' && pn > 1) {
        lit = p[1];
        adv = 2;
    }
    return sn && s[0] == lit && glob(p + adv, pn - adv, s + 1, sn - 1);
}

static int sv(json_t *v, const char **s, size_t *n)
{
    if (!json_is_string(v))
        return 0;
    *s = json_string_value(v);
    *n = json_string_length(v);
    return 1;
}

static int cond_ok(const ebp_cond *c, json_t *v)
{
    const char *s = "";
    size_t n = 0;
    int is_s = sv(v, &s, &n);
    double d = json_is_number(v) ? json_number_value(v) : 0;
    int is_n = json_is_number(v);
    switch (c->kind) {
    case EBP_C_STR: return is_s && n == c->s.n && !memcmp(s, c->s.s, n);
    case EBP_C_IP: {
        ebp_ip ip;
        return is_s && ebp_ip_parse(s, n, &ip) && ebp_ip_equal(&ip, &c->ip);
    }
    case EBP_C_NUM: return is_n && c->finite && d == c->d;
    case EBP_C_TRUE: return json_is_true(v);
    case EBP_C_FALSE: return json_is_false(v);
    case EBP_C_NULL: return json_is_null(v);
    case EBP_C_PREFIX: return is_s && n >= c->s.n && !memcmp(s, c->s.s, c->s.n);
    case EBP_C_SUFFIX: return is_s && n >= c->s.n && !memcmp(s + n - c->s.n, c->s.s, c->s.n);
    case EBP_C_EIC:
    case EBP_C_PREFIX_EIC:
    case EBP_C_SUFFIX_EIC: {
        if (!is_s)
            return 0;
        size_t fn;
        char *f = fold(s, n, &fn);
        int ok;
        if (c->kind == EBP_C_EIC)
            ok = fn == c->s.n && !memcmp(f, c->s.s, fn);
        else if (c->kind == EBP_C_PREFIX_EIC)
            ok = fn >= c->s.n && !memcmp(f, c->s.s, c->s.n);
        else
            ok = fn >= c->s.n && !memcmp(f + fn - c->s.n, c->s.s, c->s.n);
        free(f);
        return ok;
    }
    case EBP_C_WILDCARD: return is_s && glob(c->s.s, c->s.n, s, n);
    case EBP_C_RANGE:
        if (!is_n)
            return 0;
        if (c->has_lo && (c->lo_open ? !(d > c->lo) : !(d >= c->lo)))
            return 0;
        if (c->has_hi && (c->hi_open ? !(d < c->hi) : !(d <= c->hi)))
            return 0;
        return 1;
    case EBP_C_CIDR: {
        ebp_ip ip;
        return is_s && ebp_ip_parse(s, n, &ip) && ebp_cidr_contains(&c->cidr, &ip);
    }
    case EBP_C_EXISTS: return 1;
    case EBP_C_ABSENT: return 0;
    case EBP_C_AB_STR:
        if (is_s)
            for (size_t i = 0; i < c->nv; i++)
                if (c->vs[i].n == n && !memcmp(c->vs[i].s, s, n))
                    return 0;
        return 1;
    case EBP_C_AB_NUM:
        if (is_n)
            for (size_t i = 0; i < c->nv; i++)
                if (c->ds[i] == d)
                    return 0;
        return 1;
    case EBP_C_AB_EIC: {
        if (!is_s)
            return 1;
        size_t fn;
        char *f = fold(s, n, &fn);
        int ex = 0;
        for (size_t i = 0; i < c->nv; i++)
            if (c->vs[i].n == fn && !memcmp(c->vs[i].s, f, fn))
                ex = 1;
        free(f);
        return !ex;
    }
    case EBP_C_AB_PREFIX:
        if (is_s)
            for (size_t i = 0; i < c->nv; i++)
                if (n >= c->vs[i].n && !memcmp(s, c->vs[i].s, c->vs[i].n))
                    return 0;
        return 1;
    case EBP_C_AB_SUFFIX:
        if (is_s)
            for (size_t i = 0; i < c->nv; i++)
                if (n >= c->vs[i].n && !memcmp(s + n - c->vs[i].n, c->vs[i].s, c->vs[i].n))
                    return 0;
        return 1;
    case EBP_C_AB_WILDCARD:
        if (is_s)
            for (size_t i = 0; i < c->nv; i++)
                if (glob(c->vs[i].s, c->vs[i].n, s, n))
                    return 0;
        return 1;
    }
    return 0;
}

typedef struct {
    const ebp_sub *sub;
    size_t nf;
    size_t **cand;  /* per field: indexes of leaves satisfying a positive condition */
    size_t *ncand;
    size_t **pres;  /* per field: indexes of all leaves at the path */
    size_t *npres;
    int *neg, *pos; /* field has an exists:false / some other condition */
    const leaves *ls;
    size_t *chosen; /* per field: leaf index, or SIZE_MAX for "no value" */
} search;

static int chosen_consistent(const search *s, size_t upto, size_t li)
{
    for (size_t f = 0; f < upto; f++)
        if (s->chosen[f] != SIZE_MAX && !consistent(&s->ls->l[s->chosen[f]], &s->ls->l[li]))
            return 0;
    return 1;
}

static int negs_hold(const search *s)
{
    for (size_t f = 0; f < s->nf; f++) {
        if (s->chosen[f] != SIZE_MAX || !s->neg[f])
            continue;
        /* field satisfied by absence: no value consistent with every choice */
        for (size_t k = 0; k < s->npres[f]; k++)
            if (chosen_consistent(s, s->nf, s->pres[f][k]))
                return 0;
    }
    return 1;
}

static int dfs(search *s, size_t f)
{
    if (f == s->nf)
        return negs_hold(s);
    if (s->neg[f]) { /* try "absent" */
        s->chosen[f] = SIZE_MAX;
        if (dfs(s, f + 1))
            return 1;
    }
    if (s->pos[f]) {
        for (size_t k = 0; k < s->ncand[f]; k++) {
            size_t li = s->cand[f][k];
            if (!chosen_consistent(s, f, li))
                continue;
            s->chosen[f] = li;
            if (dfs(s, f + 1))
                return 1;
        }
    }
    s->chosen[f] = SIZE_MAX;
    return 0;
}

static int sub_match(const ebp_sub *sub, const leaves *ls)
{
    search s = {.sub = sub, .nf = sub->nfields, .ls = ls};
    size_t nf = sub->nfields;
    s.cand = calloc(nf, sizeof *s.cand);
    s.ncand = calloc(nf, sizeof *s.ncand);
    s.pres = calloc(nf, sizeof *s.pres);
    s.npres = calloc(nf, sizeof *s.npres);
    s.neg = calloc(nf, sizeof *s.neg);
    s.pos = calloc(nf, sizeof *s.pos);
    s.chosen = calloc(nf, sizeof *s.chosen);
    for (size_t f = 0; f < nf; f++) {
        const ebp_field *fd = sub->fields[f];
        for (size_t k = 0; k < fd->ncond; k++) {
            if (fd->conds[k].kind == EBP_C_ABSENT)
                s.neg[f] = 1;
            else
                s.pos[f] = 1;
        }
        s.cand[f] = malloc((ls->n ? ls->n : 1) * sizeof(size_t));
        s.pres[f] = malloc((ls->n ? ls->n : 1) * sizeof(size_t));
        for (size_t i = 0; i < ls->n; i++) {
            const leaf *l = &ls->l[i];
            if (strlen(l->path) != fd->path.n || memcmp(l->path, fd->path.s, fd->path.n))
                continue;
            s.pres[f][s.npres[f]++] = i;
            for (size_t k = 0; k < fd->ncond; k++)
                if (cond_ok(&fd->conds[k], l->v)) {
                    s.cand[f][s.ncand[f]++] = i;
                    break;
                }
        }
    }
    int ok = dfs(&s, 0);
    for (size_t f = 0; f < nf; f++) {
        free(s.cand[f]);
        free(s.pres[f]);
    }
    free(s.cand);
    free(s.ncand);
    free(s.pres);
    free(s.npres);
    free(s.neg);
    free(s.pos);
    free(s.chosen);
    return ok;
}

int ref_match(const eb_pattern *p, json_t *event)
{
    if (!json_is_object(event))
        return 0;
    leaves ls = {0};
    flatten_root(&ls, event);
    int ok = 0;
    for (size_t i = 0; i < p->nsub && !ok; i++)
        ok = sub_match(&p->subs[i], &ls);
    for (size_t i = 0; i < ls.n; i++) {
        free(ls.l[i].path);
        free(ls.l[i].trail);
    }
    free(ls.l);
    return ok;
}

json_t *ref_parse(const char *text, size_t len)
{
    json_error_t e;
    return json_loadb(text, len, JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);
}
