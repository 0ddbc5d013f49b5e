/* Machines and snapshots: adding and removing rules by building a new
 * immutable snapshot that shares everything unchanged with the previous one.
 *
 * Writer-side bookkeeping (not visible to matchers) lives in the machine:
 * a registry of paths and of predicates (distinct conditions per path, with
 * the sub-rules each is the access predicate for), and free lists of ids. */
#include "box.h"
#include "keyidx.h"
#include "machine.h"

#include <stdlib.h>

static void incref(int *r) { __atomic_add_fetch(r, 1, __ATOMIC_RELAXED); }
static int decref(int *r) { return __atomic_sub_fetch(r, 1, __ATOMIC_ACQ_REL) == 0; }

node *ebp_node_child_hashed(const node *n, const char *seg, size_t len, uint32_t *idx)
{
    uint64_t h = ebp_hash_bytes(seg, len, 0);
    for (uint32_t i = (uint32_t)h & n->idx_mask;; i = (i + 1) & n->idx_mask) {
        uint32_t k = n->index[i];
        if (k == UINT32_MAX)
            return NULL;
        const node_edge *e = &n->edges[k];
        if (e->hash == h && e->len == len && seg_eq(e->seg, seg, len)) {
            *idx = k;
            return e->child;
        }
    }
}

/* An open-addressing index of n items (UINT32_MAX = empty), at least twice
 * n and at least min slots; *mask receives size - 1. */
static uint32_t *index_new(uint32_t n, uint32_t min, uint32_t *mask)
{
    uint32_t size = min;
    while (size < n * 2)
        size *= 2;
    uint32_t *idx = malloc(size * sizeof *idx);
    if (!idx)
        return NULL;
    memset(idx, 0xff, size * sizeof *idx);
    *mask = size - 1;
    return idx;
}

static void index_put(uint32_t *idx, uint32_t mask, uint64_t hash, uint32_t item)
{
    uint32_t s = (uint32_t)hash & mask;
    while (idx[s] != UINT32_MAX)
        s = (s + 1) & mask;
    idx[s] = item;
}

/* ---- rules ----------------------------------------------------------------- */
/* A rule_rec and all its arrays are one allocation (see make_rule). */
static void rule_free(rule_rec *r)
{
    eb_pattern_free((eb_pattern *)r->pat);
    free(r);
}

static void rule_release(rule_rec *r)
{
    if (r && decref(&r->refs))
        rule_free(r);
}

static void sr_chunk_release(sr_chunk *c)
{
    if (c && decref(&c->refs))
        free(c);
}

static void rule_chunk_release(rule_chunk *c)
{
    if (!c || !decref(&c->refs))
        return;
    for (unsigned i = 0; i < CHUNK; i++)
        rule_release(c->items[i]);
    free(c);
}

/* ---- trie nodes ---------------------------------------------------------------- */
typedef struct {
    node n;
    char name[]; /* this node's own segment (the parent's edge points here) */
} named_node;

void ebp_node_release(node *n)
{
    if (!n || !decref(&n->refs))
        return;
    for (uint32_t i = 0; i < n->nedges; i++)
        ebp_node_release(n->edges[i].child);
    free(n->edges);
    free(n->index);
    if (n->vm)
        ebp_vm_release(n->vm);
    free(n);
}

static const char *node_name(node *n) { return ((named_node *)n)->name; }

static node *node_alloc(const char *seg, size_t len)
{
    named_node *nn = calloc(1, sizeof *nn + len + 1);
    if (!nn)
        return NULL;
    memcpy(nn->name, seg, len);
    nn->name[len] = 0;
    nn->n.refs = 1;
    nn->n.path_id = UINT32_MAX;
    return &nn->n;
}

static int edge_cmp(const void *a, const void *b)
{
    const node_edge *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->seg, y->seg, x->len);
}

static int node_reindex(node *n)
{
    free(n->index);
    n->index = NULL;
    n->idx_mask = 0;
    if (n->nedges > 1)
        qsort(n->edges, n->nedges, sizeof *n->edges, edge_cmp);
    if (n->nedges <= 8) {
        memset(n->buckets, 0, sizeof n->buckets);
        for (uint32_t i = 0; i < n->nedges; i++) {
            uint8_t *b = &n->buckets[node_bucket(n->edges[i].k8, n->edges[i].len)];
            *b = *b ? NB_SEVERAL : (uint8_t)(i + 1);
        }
        return 0;
    }
    n->index = index_new(n->nedges, 16, &n->idx_mask);
    if (!n->index)
        return -1;
    for (uint32_t i = 0; i < n->nedges; i++)
        index_put(n->index, n->idx_mask, n->edges[i].hash, i);
    return 0;
}

/* Copy of n (or a fresh node if n is NULL) sharing children and vm. */
static node *node_clone(const node *n, const char *seg, size_t len)
{
    node *c = node_alloc(seg, len);
    if (!c)
        return NULL;
    if (!n)
        return c;
    if (n->nedges) {
        c->edges = malloc((n->nedges + 1) * sizeof *c->edges);
        if (!c->edges) {
            free(c);
            return NULL;
        }
        memcpy(c->edges, n->edges, n->nedges * sizeof *c->edges);
        c->nedges = n->nedges;
        for (uint32_t i = 0; i < n->nedges; i++)
            incref(&c->edges[i].child->refs);
    }
    if (n->vm) {
        c->vm = n->vm;
        incref(&c->vm->refs);
    }
    c->path_id = n->path_id;
    c->presence = n->presence;
    if (node_reindex(c)) {
        ebp_node_release(c);
        return NULL;
    }
    return c;
}

/* New version of the subtree at n with the vm at segs[k..] replaced by v
 * (v may be NULL: remove).  Takes a reference to v on success.  Returns the
 * new node (NULL with *empty=1 when the subtree became empty), NULL with
 * *empty=0 on out-of-memory. */
static node *node_set(const node *n, const char *seg, size_t seglen, const char *path, size_t plen, vm *v,
                      uint32_t path_id, int presence, int *empty)
{
    *empty = 0;
    node *c = node_clone(n, seg, seglen);
    if (!c)
        return NULL;
    if (!path) { /* this is the target node */
        if (c->vm)
            ebp_vm_release(c->vm);
        c->vm = v;
        if (v)
            incref(&v->refs);
        c->path_id = path_id;
        c->presence = presence && path_id != UINT32_MAX;
    } else {
        const char *dot = memchr(path, '.', plen);
        size_t sl = dot ? (size_t)(dot - path) : plen;
        const char *rest = dot ? dot + 1 : NULL;
        size_t rl = dot ? plen - sl - 1 : 0;
        uint32_t at = UINT32_MAX;
        for (uint32_t i = 0; i < c->nedges; i++)
            if (c->edges[i].len == sl && !memcmp(c->edges[i].seg, path, sl))
                at = i;
        int child_empty;
        node *nc =
            node_set(at == UINT32_MAX ? NULL : c->edges[at].child, path, sl, rest, rl, v, path_id, presence,
                     &child_empty);
        if (!nc && !child_empty) {
            ebp_node_release(c);
            return NULL;
        }
        if (at != UINT32_MAX) {
            ebp_node_release(c->edges[at].child);
            if (nc) {
                c->edges[at].child = nc;
                c->edges[at].seg = node_name(nc);
            } else {
                c->edges[at] = c->edges[--c->nedges];
            }
        } else if (nc) {
            node_edge *ne = realloc(c->edges, (c->nedges + 1) * sizeof *ne);
            if (!ne) {
                ebp_node_release(nc);
                ebp_node_release(c);
                return NULL;
            }
            c->edges = ne;
            ne[c->nedges].child = nc;
            ne[c->nedges].seg = node_name(nc);
            ne[c->nedges].len = (uint32_t)sl;
            ne[c->nedges].hash = ebp_hash_bytes(path, sl, 0);
            ne[c->nedges].k8 = ebp_load_head(path, sl);
            c->nedges++;
        }
        if (node_reindex(c)) {
            ebp_node_release(c);
            return NULL;
        }
    }
    if (!c->vm && c->path_id == UINT32_MAX && !c->nedges) {
        ebp_node_release(c);
        *empty = 1;
        return NULL;
    }
    return c;
}

/* ---- snapshots ------------------------------------------------------------------- */
/* ---- snapshots ------------------------------------------------------------------- */

void eb_snapshot_release(eb_snapshot *s)
{
    if (!s || !decref(&s->refs))
        return;
    ebp_node_release(s->root);
    for (uint32_t i = 0; i < s->nsr_chunks; i++)
        sr_chunk_release(s->srs[i]);
    for (uint32_t i = 0; i < s->nrule_chunks; i++)
        rule_chunk_release(s->rules[i]);
    free(s->srs);
    free(s->rules);
    free(s->always);
    for (uint32_t i = 0; i < s->nboxes; i++)
        ebp_box_release(s->boxes[i]);
    free(s->boxes);
    for (uint32_t i = 0; i < s->nkidx; i++)
        ebp_key_release(s->kidx[i]);
    free(s->kidx);
    free(s);
}

size_t eb_snapshot_rules(const eb_snapshot *s) { return s->nrules; }

static size_t node_mem(const node *n)
{
    if (!n)
        return 0;
    size_t m = sizeof(named_node) + 16 + n->nedges * sizeof(node_edge) + (n->index ? (n->idx_mask + 1) * 4 : 0);
    if (n->vm)
        m += n->vm->mem;
    for (uint32_t i = 0; i < n->nedges; i++)
        m += node_mem(n->edges[i].child);
    return m;
}

size_t eb_snapshot_memory(const eb_snapshot *s)
{
    size_t m = sizeof *s + node_mem(s->root);
    m += s->nsr_chunks * (sizeof(sr_chunk) + sizeof(void *));
    m += s->nrule_chunks * (sizeof(rule_chunk) + sizeof(void *));
    m += s->nalways * sizeof(uint32_t);
    for (uint32_t i = 0; i < s->nboxes; i++)
        m += s->boxes[i]->mem + sizeof(void *);
    for (uint32_t i = 0; i < s->nkidx; i++)
        m += s->kidx[i]->mem + sizeof(void *);
    for (uint32_t c = 0; c < s->nrule_chunks; c++)
        for (unsigned i = 0; i < CHUNK; i++) {
            const rule_rec *r = s->rules[c]->items[i];
            if (!r)
                continue;
            m += sizeof *r + r->nsub * (4 * sizeof(uint32_t) + 2 * sizeof(uint16_t) + sizeof(void *));
            for (uint32_t k = 0; k < r->nsub; k++)
                for (size_t j = 0; j < r->pat->subs[k].nfields; j++)
                    m += sizeof(field_rec) + r->fields[k][j].npreds * sizeof(uint32_t);
            m += r->pat->arena.total + sizeof *r->pat;
        }
    return m;
}

/* ---- the writer's registry ------------------------------------------------------- */

typedef struct pred_rec {
    uint32_t id;
    uint32_t refs;                /* fields using this predicate */
    const ebp_cond *cond;         /* representative condition ... */
    const struct eb_pattern *pat; /* ... and its pattern (referenced) */
    ebp_target *acc;              /* sub-rules this is the access predicate for */
    uint32_t nacc, cap;
    uint32_t nsingle; /* of those, single-field sub-rules */
    uint32_t nhint;   /* sub-rules with this as their hint */
    uint32_t nbox;    /* fields using this as a side of a box (also in refs) */
    uint32_t nkeyed;  /* fields of keyed sub-rules using it (also in refs) */
    char *key; /* canonical form of the condition */
    uint32_t klen;
} pred_rec;

typedef struct path_rec {
    char *path;
    uint32_t plen;
    uint32_t id;
    uint32_t refs; /* fields at this path */
    uint32_t nbox; /* of those, box sides */
    uint32_t nkeyed; /* of those, fields of keyed sub-rules */
    uint32_t nneg;   /* of those, fields that read whether it holds a value (FK_NEG, FK_MIX) */
    pred_rec **preds;
    uint32_t npreds, cap;
    uint32_t *pidx; /* hash index over preds by key (size pmask+1), UINT32_MAX empty */
    uint32_t pmask;
    int dirty;
} path_rec;

typedef struct {
    uint64_t key;
    rule_rec *rule; /* NULL = empty */
} keyslot;

typedef struct {
    uint32_t *v;
    uint32_t n, cap;
} idlist;

/* The boxes of one pair of paths, and their index in the current snapshot. */
typedef struct {
    uint32_t path[2];
    box_input *in;
    uint32_t n, cap;
    int dirty;
    boxidx *built; /* NULL: none (no boxes) */
} boxreg;

/* The keyed sub-rules of one signature, and their index in the current
 * snapshot. */
typedef struct {
    const rule_rec *r;
    uint32_t i;                       /* sub-rule */
    uint16_t order[KEY_MAX_FIELDS];   /* its field index per signature field */
} kinput;

typedef struct {
    key_sig sig;
    kinput *in;
    uint32_t n, cap;
    int dirty;
    keyidx *built; /* NULL: none */
} keyreg;

struct eb_machine {
    pthread_mutex_t wlock; /* writers */
    pthread_mutex_t slock; /* the `cur` pointer */
    eb_snapshot *cur;
    keyslot *keys;
    uint32_t kmask, kcount;
    path_rec **paths; /* open addressing by path string */
    uint32_t pmask, npaths;
    idlist free_sr, free_slot, free_pred, free_path;
    uint32_t next_sr, next_slot, next_pred, next_path;
    uint32_t *sr_gen; /* current generation per sub-rule id */
    uint32_t sr_gen_cap;
    pred_rec **pred_tab; /* by predicate id */
    uint32_t pred_tab_cap;
    boxreg *bregs;
    uint32_t nbregs, bregs_cap;
    keyreg *kregs;
    uint32_t nkregs, kregs_cap;
};

static int id_push(idlist *l, uint32_t v)
{
    if (l->n == l->cap) {
        uint32_t nc = l->cap ? l->cap * 2 : 64;
        uint32_t *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv)
            return -1;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = v;
    return 0;
}

static uint32_t id_take(idlist *l, uint32_t *next) { return l->n ? l->v[--l->n] : (*next)++; }

/* canonical bytes of a condition (the predicate's identity at its path) */
static char *cond_key(const ebp_cond *c, uint32_t *len)
{
    size_t n = 1 + 64 + c->s.n;
    int is_set = c->kind == EBP_C_AB_STR || c->kind == EBP_C_AB_NUM || c->kind == EBP_C_AB_EIC ||
                 c->kind == EBP_C_AB_PREFIX || c->kind == EBP_C_AB_SUFFIX || c->kind == EBP_C_AB_WILDCARD;
    for (size_t i = 0; is_set && i < c->nv; i++)
        n += 8 + (c->vs ? c->vs[i].n : 0);
    char *k = malloc(n);
    if (!k)
        return NULL;
    size_t o = 0;
    ebp_cond_kind kind = c->kind;
    if (kind == EBP_C_WILDCARD && !ebp_glob_has_star(c->glob))
        kind = EBP_C_STR; /* a wildcard without a star is an exact string */
    k[o++] = (char)kind;
#define PUT(p, sz)                     \
    do {                               \
        if (sz)                        \
            memcpy(k + o, (p), (sz));  \
        o += (sz);                     \
    } while (0)
    switch (kind) {
    case EBP_C_STR:
        if (c->kind == EBP_C_WILDCARD) {
            const unsigned char *pre;
            size_t np = ebp_glob_prefix(c->glob, &pre);
            PUT(pre, np);
        } else {
            PUT(c->s.s, c->s.n);
        }
        break;
    case EBP_C_IP:
        PUT(&c->ip.family, 1);
        PUT(c->ip.addr, 16);
        break;
    case EBP_C_NUM:
        if (c->finite) {
            double d = c->d == 0 ? 0 : c->d;
            k[o++] = 'N';
            PUT(&d, sizeof d);
        } else {
            k[o++] = 'T';
            PUT(c->s.s, c->s.n);
        }
        break;
    case EBP_C_RANGE: {
        unsigned char f[4] = {c->has_lo, c->has_hi, c->lo_open, c->hi_open};
        PUT(f, 4);
        double lo = c->has_lo ? c->lo : 0, hi = c->has_hi ? c->hi : 0;
        PUT(&lo, sizeof lo);
        PUT(&hi, sizeof hi);
        break;
    }
    case EBP_C_CIDR:
        PUT(&c->cidr.family, 1);
        PUT(c->cidr.lo, 16);
        PUT(c->cidr.hi, 16);
        break;
    case EBP_C_AB_NUM:
        for (size_t i = 0; i < c->nv; i++) {
            double d = c->ds[i] == 0 ? 0 : c->ds[i];
            PUT(&d, sizeof d);
        }
        break;
    case EBP_C_AB_STR:
    case EBP_C_AB_EIC:
    case EBP_C_AB_PREFIX:
    case EBP_C_AB_SUFFIX:
    case EBP_C_AB_WILDCARD:
        for (size_t i = 0; i < c->nv; i++) {
            uint32_t l = (uint32_t)c->vs[i].n;
            PUT(&l, sizeof l);
            PUT(c->vs[i].s, l);
        }
        break;
    default: /* prefix, suffix, EIC forms, wildcard: the string; true/false/null/exists: nothing */
        PUT(c->s.s, c->s.n);
        break;
    }
#undef PUT
    *len = (uint32_t)o;
    return k;
}

static uint32_t path_hash_slot(const eb_machine *m, const char *p, size_t n)
{
    return (uint32_t)ebp_hash_bytes(p, n, 7) & m->pmask;
}

static path_rec **path_lookup(eb_machine *m, const char *p, size_t n)
{
    for (uint32_t i = path_hash_slot(m, p, n);; i = (i + 1) & m->pmask) {
        path_rec *r = m->paths[i];
        if (!r || (r->plen == n && !memcmp(r->path, p, n)))
            return &m->paths[i];
    }
}

static int paths_grow(eb_machine *m)
{
    uint32_t nsize = (m->pmask + 1) * 2;
    path_rec **np = calloc(nsize, sizeof *np), **old = m->paths;
    if (!np)
        return -1;
    uint32_t osize = m->pmask + 1;
    m->paths = np;
    m->pmask = nsize - 1;
    for (uint32_t i = 0; i < osize; i++)
        if (old[i])
            *path_lookup(m, old[i]->path, old[i]->plen) = old[i];
    free(old);
    return 0;
}

static void paths_delete(eb_machine *m, path_rec **slot)
{
    uint32_t i = (uint32_t)(slot - m->paths);
    m->paths[i] = NULL;
    for (uint32_t j = (i + 1) & m->pmask; m->paths[j]; j = (j + 1) & m->pmask) {
        uint32_t home = path_hash_slot(m, m->paths[j]->path, m->paths[j]->plen);
        int in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            m->paths[i] = m->paths[j];
            m->paths[j] = NULL;
            i = j;
        }
    }
    m->npaths--;
}

static path_rec *path_get(eb_machine *m, const char *p, size_t n)
{
    if ((m->npaths + 1) * 2 > m->pmask + 1 && paths_grow(m))
        return NULL;
    path_rec **slot = path_lookup(m, p, n);
    if (*slot)
        return *slot;
    path_rec *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->path = malloc(n + 1);
    if (!r->path) {
        free(r);
        return NULL;
    }
    memcpy(r->path, p, n);
    r->path[n] = 0;
    r->plen = (uint32_t)n;
    r->id = id_take(&m->free_path, &m->next_path);
    *slot = r;
    m->npaths++;
    return r;
}

static pred_rec **pred_slot(path_rec *pr, const char *key, uint32_t klen, uint32_t *hslot)
{
    if (!pr->pidx) {
        for (uint32_t i = 0; i < pr->npreds; i++)
            if (pr->preds[i]->klen == klen && !memcmp(pr->preds[i]->key, key, klen))
                return &pr->preds[i];
        return NULL;
    }
    for (uint32_t i = (uint32_t)ebp_hash_bytes(key, klen, 3) & pr->pmask;; i = (i + 1) & pr->pmask) {
        uint32_t k = pr->pidx[i];
        if (k == UINT32_MAX) {
            *hslot = i;
            return NULL;
        }
        if (pr->preds[k]->klen == klen && !memcmp(pr->preds[k]->key, key, klen))
            return &pr->preds[k];
    }
}

static int path_reindex(path_rec *pr)
{
    free(pr->pidx);
    pr->pidx = NULL;
    if (pr->npreds <= 16)
        return 0;
    pr->pidx = index_new(pr->npreds, 64, &pr->pmask);
    if (!pr->pidx)
        return -1;
    for (uint32_t k = 0; k < pr->npreds; k++)
        index_put(pr->pidx, pr->pmask, ebp_hash_bytes(pr->preds[k]->key, pr->preds[k]->klen, 3), k);
    return 0;
}

/* The predicate for condition c at path pr, created if new; refs++. */
static pred_rec *pred_get(eb_machine *m, path_rec *pr, const ebp_cond *c, const struct eb_pattern *pat)
{
    uint32_t klen, hslot = 0;
    char *key = cond_key(c, &klen);
    if (!key)
        return NULL;
    pred_rec **slot = pred_slot(pr, key, klen, &hslot);
    if (slot) {
        free(key);
        (*slot)->refs++;
        return *slot;
    }
    pred_rec *p = calloc(1, sizeof *p);
    if (!p) {
        free(key);
        return NULL;
    }
    if (pr->npreds == pr->cap) {
        uint32_t nc = pr->cap ? pr->cap * 2 : 4;
        pred_rec **np = realloc(pr->preds, nc * sizeof *np);
        if (!np) {
            free(key);
            free(p);
            return NULL;
        }
        pr->preds = np;
        pr->cap = nc;
    }
    p->id = id_take(&m->free_pred, &m->next_pred);
    if (p->id >= m->pred_tab_cap) {
        uint32_t nc = m->pred_tab_cap ? m->pred_tab_cap * 2 : 256;
        while (nc <= p->id)
            nc *= 2;
        pred_rec **nt = realloc(m->pred_tab, nc * sizeof *nt);
        if (!nt) {
            id_push(&m->free_pred, p->id);
            free(key);
            free(p);
            return NULL;
        }
        memset(nt + m->pred_tab_cap, 0, (nc - m->pred_tab_cap) * sizeof *nt);
        m->pred_tab = nt;
        m->pred_tab_cap = nc;
    }
    m->pred_tab[p->id] = p;
    p->refs = 1;
    p->cond = c;
    p->pat = pat;
    ebp_pattern_ref(pat);
    p->key = key;
    p->klen = klen;
    pr->preds[pr->npreds++] = p;
    if (pr->pidx && (pr->npreds * 2 <= pr->pmask + 1)) {
        pr->pidx[hslot] = pr->npreds - 1;
    } else if (path_reindex(pr)) {
        /* index optional for correctness only when small; retry later */
        free(pr->pidx);
        pr->pidx = NULL;
    }
    return p;
}

static void pred_free(pred_rec *p)
{
    eb_pattern_free((eb_pattern *)p->pat);
    free(p->acc);
    free(p->key);
    free(p);
}

/* Drop dead predicates of a path (refs == 0) and give their ids back. */
static void path_compact(eb_machine *m, path_rec *pr)
{
    uint32_t j = 0;
    int changed = 0;
    for (uint32_t i = 0; i < pr->npreds; i++) {
        pred_rec *p = pr->preds[i];
        if (p->refs) {
            pr->preds[j++] = p;
        } else {
            m->pred_tab[p->id] = NULL;
            id_push(&m->free_pred, p->id);
            pred_free(p);
            changed = 1;
        }
    }
    pr->npreds = j;
    if (changed && path_reindex(pr)) {
        free(pr->pidx);
        pr->pidx = NULL;
    }
}

static int acc_add(pred_rec *p, ebp_target t, int single)
{
    p->nsingle += single != 0;
    if (p->nacc == p->cap) {
        uint32_t nc = p->cap ? p->cap * 2 : 2;
        ebp_target *na = realloc(p->acc, nc * sizeof *na);
        if (!na)
            return -1;
        p->acc = na;
        p->cap = nc;
    }
    p->acc[p->nacc++] = t;
    return 0;
}

static void acc_remove(pred_rec *p, uint32_t sr, int single)
{
    for (uint32_t i = 0; i < p->nacc; i++)
        if (p->acc[i].sr == sr) {
            p->acc[i] = p->acc[--p->nacc];
            p->nsingle -= single != 0;
            return;
        }
}

/* ---- machine ------------------------------------------------------------------------ */

static eb_snapshot *empty_snapshot(void)
{
    eb_snapshot *s = calloc(1, sizeof *s);
    if (s)
        s->refs = 1;
    return s;
}

eb_machine *eb_machine_new(void)
{
    eb_machine *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cur = empty_snapshot();
    m->kmask = 63;
    m->keys = calloc(64, sizeof *m->keys);
    m->pmask = 63;
    m->paths = calloc(64, sizeof *m->paths);
    if (!m->cur || !m->keys || !m->paths) {
        free(m->cur);
        free(m->keys);
        free(m->paths);
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->wlock, NULL);
    pthread_mutex_init(&m->slock, NULL);
    return m;
}

void eb_machine_free(eb_machine *m)
{
    if (!m)
        return;
    eb_snapshot_release(m->cur);
    for (uint32_t i = 0; i <= m->pmask; i++) {
        path_rec *pr = m->paths[i];
        if (!pr)
            continue;
        for (uint32_t k = 0; k < pr->npreds; k++)
            pred_free(pr->preds[k]);
        free(pr->preds);
        free(pr->pidx);
        free(pr->path);
        free(pr);
    }
    free(m->paths);
    free(m->keys);
    free(m->free_sr.v);
    free(m->free_slot.v);
    free(m->free_pred.v);
    free(m->free_path.v);
    free(m->sr_gen);
    free(m->pred_tab);
    for (uint32_t i = 0; i < m->nbregs; i++) {
        free(m->bregs[i].in);
        ebp_box_release(m->bregs[i].built);
    }
    free(m->bregs);
    for (uint32_t i = 0; i < m->nkregs; i++) {
        free(m->kregs[i].in);
        ebp_key_release(m->kregs[i].built);
    }
    free(m->kregs);
    pthread_mutex_destroy(&m->wlock);
    pthread_mutex_destroy(&m->slock);
    free(m);
}

eb_snapshot *eb_machine_snapshot(eb_machine *m)
{
    pthread_mutex_lock(&m->slock);
    eb_snapshot *s = m->cur;
    incref(&s->refs);
    pthread_mutex_unlock(&m->slock);
    return s;
}

static keyslot *key_find(eb_machine *m, uint64_t key)
{
    for (uint32_t i = (uint32_t)ebp_hash_u64(key) & m->kmask;; i = (i + 1) & m->kmask) {
        if (!m->keys[i].rule || m->keys[i].key == key)
            return &m->keys[i];
    }
}

static int key_grow(eb_machine *m)
{
    uint32_t nsize = (m->kmask + 1) * 2;
    keyslot *nk = calloc(nsize, sizeof *nk);
    if (!nk)
        return -1;
    keyslot *old = m->keys;
    uint32_t osize = m->kmask + 1;
    m->keys = nk;
    m->kmask = nsize - 1;
    for (uint32_t i = 0; i < osize; i++)
        if (old[i].rule)
            *key_find(m, old[i].key) = old[i];
    free(old);
    return 0;
}

static void key_delete(eb_machine *m, keyslot *ks)
{
    uint32_t i = (uint32_t)(ks - m->keys);
    m->keys[i].rule = NULL;
    for (uint32_t j = (i + 1) & m->kmask; m->keys[j].rule; j = (j + 1) & m->kmask) {
        uint32_t home = (uint32_t)ebp_hash_u64(m->keys[j].key) & m->kmask;
        int in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            m->keys[i] = m->keys[j];
            m->keys[j].rule = NULL;
            i = j;
        }
    }
    m->kcount--;
}

/* ---- rule bookkeeping ------------------------------------------------------------------ */

static unsigned char field_kind(const ebp_field *f)
{
    int neg = 0, pos = 0;
    for (size_t i = 0; i < f->ncond; i++) {
        if (f->conds[i].kind == EBP_C_ABSENT)
            neg = 1;
        else
            pos = 1;
    }
    return neg ? (pos ? FK_MIX : FK_NEG) : FK_POS;
}

static double kind_weight(ebp_cond_kind k)
{
    switch (k) {
    case EBP_C_STR:
    case EBP_C_IP:
    case EBP_C_NUM:
    case EBP_C_EIC: return 1;
    case EBP_C_PREFIX:
    case EBP_C_SUFFIX:
    case EBP_C_PREFIX_EIC:
    case EBP_C_SUFFIX_EIC:
    case EBP_C_WILDCARD:
    case EBP_C_RANGE:
    case EBP_C_CIDR: return 8;
    case EBP_C_TRUE:
    case EBP_C_FALSE:
    case EBP_C_NULL: return 32;
    default: return 256; /* exists, anything-but: satisfied by most values */
    }
}

/* Pick the access field of sub-rule i: the positive field whose conditions
 * look most selective (exact values on paths with many distinct values,
 * shared by few other sub-rules as their access). */
static uint16_t choose_access(const eb_machine *m, const rule_rec *r, uint32_t i, path_rec *const *prs)
{
    const ebp_sub *sub = &r->pat->subs[i];
    double best = 0;
    uint16_t bi = 0;
    int have = 0;
    for (size_t j = 0; j < sub->nfields; j++) {
        const field_rec *f = &r->fields[i][j];
        if (f->kind != FK_POS)
            continue;
        const ebp_field *ef = sub->fields[j];
        double cost = 0;
        for (size_t k = 0; k < ef->ncond; k++)
            cost += kind_weight(ef->conds[k].kind);
        /* sharing: existing access targets on these predicates */
        double share = 0;
        const path_rec *pr = prs[j];
        for (uint32_t k = 0; k < f->npreds; k++)
            share += m->pred_tab[f->preds[k]]->nacc;
        cost *= (1 + share) / (1.0 + (double)pr->npreds);
        if (!have || cost < best) {
            best = cost;
            bi = (uint16_t)j;
            have = 1;
        }
    }
    return bi;
}



static ebp_target target_for(const rule_rec *r, uint32_t i)
{
    ebp_target t = {r->sr_ids[i], RR_HINTS(r)[i], RR_GENS(r)[i] | (uint64_t)RR_HINTS2(r)[i] << 32};
    if (IS_SINGLE(t.hint))
        t.aux = r->key;
    return t;
}

/* A sub-rule's hint predicate gains or loses one user (nhint: MARK_HINT). */
static void count_hint(eb_machine *m, uint32_t hint, int d)
{
    if (!IS_PRED_HINT(hint) || !m->pred_tab[hint])
        return;
    if (d > 0)
        m->pred_tab[hint]->nhint++;
    else
        m->pred_tab[hint]->nhint--;
}

/* ---- boxes ------------------------------------------------------------------------- */

/* Whether sub-rule `sub` is a box: two positive fields at different paths,
 * each one bounded numeric range.  *x, *y: their field indexes, x's path id
 * below y's. */
static int find_box(const ebp_sub *sub, const field_rec *fr, uint16_t *x, uint16_t *y)
{
    int have = 0;
    uint16_t a = 0;
    for (size_t j = 0; j < sub->nfields; j++) {
        const ebp_field *f = sub->fields[j];
        if (fr[j].kind != FK_POS || fr[j].npreds != 1 || f->ncond != 1 || !ebp_box_side_ok(&f->conds[0]))
            continue;
        if (!have) {
            a = (uint16_t)j;
            have = 1;
        } else if (fr[j].path_id != fr[a].path_id) {
            int lt = fr[a].path_id < fr[j].path_id;
            *x = lt ? a : (uint16_t)j;
            *y = lt ? (uint16_t)j : a;
            return 1;
        }
    }
    return 0;
}

static boxreg *breg_get(eb_machine *m, uint32_t px, uint32_t py, int create)
{
    for (uint32_t i = 0; i < m->nbregs; i++)
        if (m->bregs[i].path[0] == px && m->bregs[i].path[1] == py)
            return &m->bregs[i];
    if (!create)
        return NULL;
    if (m->nbregs == m->bregs_cap) {
        uint32_t nc = m->bregs_cap ? 2 * m->bregs_cap : 4;
        boxreg *nr = realloc(m->bregs, nc * sizeof *nr);
        if (!nr)
            return NULL;
        m->bregs = nr;
        m->bregs_cap = nc;
    }
    boxreg *g = &m->bregs[m->nbregs++];
    memset(g, 0, sizeof *g);
    g->path[0] = px;
    g->path[1] = py;
    return g;
}

static ebp_target target_for(const rule_rec *r, uint32_t i);

/* Index box sub-rule i of r (its access and box2 fields are set). */
static int box_register(eb_machine *m, const rule_rec *r, uint32_t i, path_rec *px, path_rec *py)
{
    const ebp_sub *sub = &r->pat->subs[i];
    const field_rec *fr = r->fields[i];
    uint16_t x = r->access[i], y = RR_BOX2(r)[i];
    boxreg *g = breg_get(m, px->id, py->id, 1);
    if (!g)
        return -1;
    if (g->n == g->cap) {
        uint32_t nc = g->cap ? 2 * g->cap : 8;
        box_input *ni = realloc(g->in, nc * sizeof *ni);
        if (!ni)
            return -1;
        g->in = ni;
        g->cap = nc;
    }
    g->in[g->n++] = (box_input){{&sub->fields[x]->conds[0], &sub->fields[y]->conds[0]},
                                {fr[x].preds[0], fr[y].preds[0]},
                                target_for(r, i)};
    g->dirty = 1;
    m->pred_tab[fr[x].preds[0]]->nbox++;
    m->pred_tab[fr[y].preds[0]]->nbox++;
    px->nbox++;
    py->nbox++;
    return 0;
}

static void box_unregister(eb_machine *m, const rule_rec *r, uint32_t i)
{
    const ebp_sub *sub = &r->pat->subs[i];
    const field_rec *fr = r->fields[i];
    uint16_t x = r->access[i], y = RR_BOX2(r)[i];
    path_rec *px = *path_lookup(m, sub->fields[x]->path.s, sub->fields[x]->path.n);
    path_rec *py = *path_lookup(m, sub->fields[y]->path.s, sub->fields[y]->path.n);
    boxreg *g = px && py ? breg_get(m, px->id, py->id, 0) : NULL;
    for (uint32_t k = 0; g && k < g->n; k++)
        if (g->in[k].t.sr == r->sr_ids[i]) {
            g->in[k] = g->in[--g->n];
            g->dirty = 1;
            m->pred_tab[fr[x].preds[0]]->nbox--;
            m->pred_tab[fr[y].preds[0]]->nbox--;
            px->nbox--;
            py->nbox--;
            return;
        }
}

/* ---- keyed sub-rules (keyidx.h) ---------------------------------------------------- */

static int key_kind(const ebp_cond *c, uint8_t *kind, uint32_t *len)
{
    switch (c->kind) {
    case EBP_C_STR: *kind = KK_EXACT; *len = 0; return 1;
    case EBP_C_EIC: *kind = KK_EIC; *len = 0; return 1;
    case EBP_C_PREFIX: *kind = KK_PREFIX; break;
    case EBP_C_SUFFIX: *kind = KK_SUFFIX; break;
    case EBP_C_PREFIX_EIC: *kind = KK_PREFIX_EIC; break;
    case EBP_C_SUFFIX_EIC: *kind = KK_SUFFIX_EIC; break;
    default: return 0;
    }
    if (c->s.n >= UINT32_MAX)
        return 0;
    *len = (uint32_t)c->s.n;
    return 1;
}

/* Whether sub-rule i of r is keyed: 2 to KEY_MAX_FIELDS positive fields at
 * different paths, each one string equality or affix.  Fills its signature
 * and, per signature field, the sub-rule's field index. */
static int key_fields(const rule_rec *r, uint32_t i, key_sig *sig, uint16_t *order)
{
    const ebp_sub *sub = &r->pat->subs[i];
    const field_rec *fr = r->fields[i];
    if (sub->nfields < 2 || sub->nfields > KEY_MAX_FIELDS || RR_BOX2(r)[i] != UINT16_MAX)
        return 0;
    memset(sig, 0, sizeof *sig);
    sig->k = (uint32_t)sub->nfields;
    for (uint32_t j = 0; j < sig->k; j++) {
        if (fr[j].kind != FK_POS || fr[j].npreds != 1)
            return 0;
        uint8_t kind;
        uint32_t len;
        if (!key_kind(&sub->fields[j]->conds[0], &kind, &len))
            return 0;
        /* insert by path id */
        uint32_t at = j;
        while (at > 0 && sig->path[at - 1] > fr[j].path_id) {
            sig->path[at] = sig->path[at - 1];
            sig->kind[at] = sig->kind[at - 1];
            sig->len[at] = sig->len[at - 1];
            order[at] = order[at - 1];
            at--;
        }
        if (at > 0 && sig->path[at - 1] == fr[j].path_id)
            return 0;
        sig->path[at] = fr[j].path_id;
        sig->kind[at] = kind;
        sig->len[at] = len;
        order[at] = (uint16_t)j;
    }
    return 1;
}

static int sig_eq(const key_sig *a, const key_sig *b)
{
    if (a->k != b->k)
        return 0;
    for (uint32_t j = 0; j < a->k; j++)
        if (a->path[j] != b->path[j] || a->kind[j] != b->kind[j] || a->len[j] != b->len[j])
            return 0;
    return 1;
}

static keyreg *kreg_get(eb_machine *m, const key_sig *sig, int create)
{
    for (uint32_t i = 0; i < m->nkregs; i++)
        if (sig_eq(&m->kregs[i].sig, sig))
            return &m->kregs[i];
    if (!create)
        return NULL;
    if (m->nkregs == m->kregs_cap) {
        uint32_t nc = m->kregs_cap ? 2 * m->kregs_cap : 4;
        keyreg *nr = realloc(m->kregs, nc * sizeof *nr);
        if (!nr)
            return NULL;
        m->kregs = nr;
        m->kregs_cap = nc;
    }
    keyreg *g = &m->kregs[m->nkregs++];
    memset(g, 0, sizeof *g);
    g->sig = *sig;
    return g;
}

/* Count sub-rule i's fields as keyed (d = 1) or not any more (d = -1). */
static void key_count(eb_machine *m, const rule_rec *r, uint32_t i, int d)
{
    const ebp_sub *sub = &r->pat->subs[i];
    for (size_t j = 0; j < sub->nfields; j++) {
        const field_rec *f = &r->fields[i][j];
        pred_rec *pd = m->pred_tab[f->preds[0]];
        path_rec **slot = path_lookup(m, sub->fields[j]->path.s, sub->fields[j]->path.n);
        if (pd)
            pd->nkeyed += (uint32_t)d;
        if (*slot)
            (*slot)->nkeyed += (uint32_t)d;
    }
}

/* Index sub-rule i of r if it is keyed (0: done or not keyed, -1: OOM). */
static int key_register(eb_machine *m, const rule_rec *r, uint32_t i)
{
    key_sig sig;
    uint16_t order[KEY_MAX_FIELDS];
    if (!key_fields(r, i, &sig, order))
        return 0;
    keyreg *g = kreg_get(m, &sig, 1);
    if (!g)
        return -1;
    if (g->n == g->cap) {
        uint32_t nc = g->cap ? 2 * g->cap : 8;
        kinput *ni = realloc(g->in, nc * sizeof *ni);
        if (!ni)
            return -1;
        g->in = ni;
        g->cap = nc;
    }
    kinput *ki = &g->in[g->n++];
    ki->r = r;
    ki->i = i;
    memcpy(ki->order, order, sizeof order);
    g->dirty = 1;
    key_count(m, r, i, 1);
    return 0;
}

static void key_unregister(eb_machine *m, const rule_rec *r, uint32_t i)
{
    key_sig sig;
    uint16_t order[KEY_MAX_FIELDS];
    if (!key_fields(r, i, &sig, order))
        return;
    keyreg *g = kreg_get(m, &sig, 0);
    for (uint32_t k = 0; g && k < g->n; k++)
        if (g->in[k].r == r && g->in[k].i == i) {
            g->in[k] = g->in[--g->n];
            g->dirty = 1;
            key_count(m, r, i, -1);
            return;
        }
}

/* The key of a keyed sub-rule of k fields into buf (grown as needed). */
static int key_bytes(const kinput *ki, uint32_t k, ebp_vec *buf)
{
    for (uint32_t j = 0; j < k; j++) {
        const ebp_cond *c = &ki->r->pat->subs[ki->i].fields[ki->order[j]]->conds[0];
        uint32_t n = (uint32_t)c->s.n;
        if (ebp_vec_reserve(buf, buf->len + 4 + n))
            return -1;
        unsigned char *d = (unsigned char *)buf->items + buf->len;
        memcpy(d, &n, 4);
        memcpy(d + 4, c->s.s, n);
        buf->len += 4 + n;
    }
    return 0;
}

/* Register an added rule: ids, paths, predicates, access targets. */
static int rule_register(eb_machine *m, rule_rec *r)
{
    const struct eb_pattern *p = r->pat;
    for (uint32_t i = 0; i < r->nsub; i++) {
        const ebp_sub *sub = &p->subs[i];
        field_rec *fr = r->fields[i];
        path_rec **prs = calloc(sub->nfields ? sub->nfields : 1, sizeof *prs);
        if (!prs)
            return -1;
        uint32_t sr = id_take(&m->free_sr, &m->next_sr);
        if (sr >= m->sr_gen_cap) {
            uint32_t nc = m->sr_gen_cap ? m->sr_gen_cap * 2 : 256;
            while (nc <= sr)
                nc *= 2;
            uint32_t *ng = realloc(m->sr_gen, nc * sizeof *ng);
            if (!ng) {
                free(prs);
                return -1;
            }
            memset(ng + m->sr_gen_cap, 0, (nc - m->sr_gen_cap) * sizeof *ng);
            m->sr_gen = ng;
            m->sr_gen_cap = nc;
        }
        r->sr_ids[i] = sr;
        RR_GENS(r)[i] = ++m->sr_gen[sr];
        int npos = 0;
        for (size_t j = 0; j < sub->nfields; j++) {
            const ebp_field *f = sub->fields[j];
            path_rec *pr = path_get(m, f->path.s, f->path.n);
            if (!pr) {
                free(prs);
                return -1;
            }
            prs[j] = pr;
            pr->refs++;
            pr->dirty = 1;
            fr[j].kind = field_kind(f);
            fr[j].path_id = pr->id;
            pr->nneg += fr[j].kind != FK_POS;
            npos += fr[j].kind == FK_POS;
            for (size_t k = 0; k < f->ncond; k++) {
                if (f->conds[k].kind == EBP_C_ABSENT)
                    continue;
                pred_rec *pd = pred_get(m, pr, &f->conds[k], p);
                if (!pd) {
                    free(prs);
                    return -1;
                }
                /* the same condition twice in one list counts once */
                uint32_t dup = 0;
                for (uint32_t q = 0; q < fr[j].npreds; q++)
                    dup |= fr[j].preds[q] == pd->id;
                if (dup)
                    pd->refs--;
                else
                    fr[j].preds[fr[j].npreds++] = pd->id;
            }
        }
        uint16_t bx = 0, by = 0;
        int boxed = find_box(sub, fr, &bx, &by);
        r->access[i] = boxed ? bx : npos ? choose_access(m, r, i, prs) : UINT16_MAX;
        RR_BOX2(r)[i] = boxed ? by : UINT16_MAX;
        /* hint: a one-predicate positive field besides the access field
         * (and a box's other side), the least shared one */
        RR_HINTS(r)[i] = sub->nfields == 1 ? (HINT_SINGLE | r->slot) : HINT_NONE;
        if (npos && sub->nfields > 1) {
            /* and a second hint, the next least shared, checked before the
             * sub-rule is looked at */
            uint32_t best = UINT32_MAX, second = UINT32_MAX;
            for (size_t j = 0; j < sub->nfields; j++) {
                if (j == r->access[i] || j == RR_BOX2(r)[i] || fr[j].kind != FK_POS || fr[j].npreds != 1)
                    continue;
                const pred_rec *pd = m->pred_tab[fr[j].preds[0]];
                if (pd->id == best || pd->id == second)
                    continue;
                if (best == UINT32_MAX || pd->refs < m->pred_tab[best]->refs) {
                    second = best;
                    best = pd->id;
                } else if (second == UINT32_MAX || pd->refs < m->pred_tab[second]->refs) {
                    second = pd->id;
                }
            }
            if (best != UINT32_MAX) {
                RR_HINTS(r)[i] = best;
                RR_HINTS2(r)[i] = second;
                count_hint(m, best, 1);
            }
        }
        if (boxed) {
            if (box_register(m, r, i, prs[bx], prs[by])) {
                free(prs);
                return -1;
            }
        } else if (npos) {
            const field_rec *af = &fr[r->access[i]];
            for (uint32_t k = 0; k < af->npreds; k++)
                if (acc_add(m->pred_tab[af->preds[k]], target_for(r, i), sub->nfields == 1)) {
                    free(prs);
                    return -1;
                }
            if (key_register(m, r, i)) {
                free(prs);
                return -1;
            }
        }
        free(prs);
    }
    return 0;
}

/* Unregister a removed rule (the inverse of rule_register; frees nothing). */
static void rule_unregister(eb_machine *m, rule_rec *r)
{
    const struct eb_pattern *p = r->pat;
    for (uint32_t i = 0; i < r->nsub; i++) {
        const ebp_sub *sub = &p->subs[i];
        count_hint(m, RR_HINTS(r)[i], -1);
        if (RR_BOX2(r)[i] != UINT16_MAX)
            box_unregister(m, r, i);
        key_unregister(m, r, i);
        for (size_t j = 0; j < sub->nfields; j++) {
            path_rec **slot = path_lookup(m, sub->fields[j]->path.s, sub->fields[j]->path.n);
            path_rec *pr = *slot;
            if (!pr)
                continue;
            pr->refs--;
            pr->dirty = 1;
            const field_rec *f = &r->fields[i][j];
            pr->nneg -= f->kind != FK_POS;
            for (uint32_t k = 0; k < f->npreds; k++) {
                pred_rec *pd = m->pred_tab[f->preds[k]];
                if (!pd)
                    continue;
                if (j == r->access[i] && RR_BOX2(r)[i] == UINT16_MAX)
                    acc_remove(pd, r->sr_ids[i], sub->nfields == 1);
                pd->refs--;
            }
        }
    }
}

static rule_rec *make_rule(eb_machine *m, uint64_t key, const eb_pattern *p)
{
    /* one block: the record, per-sub-rule arrays, field records, predicate ids */
    size_t nsub = p->nsub, nfields = 0, nconds = 0;
    for (size_t i = 0; i < nsub; i++) {
        nfields += p->subs[i].nfields;
        for (size_t j = 0; j < p->subs[i].nfields; j++)
            nconds += p->subs[i].fields[j]->ncond;
    }
    size_t size = sizeof(rule_rec);
    size_t o_ids = size; /* ids, gens, hints, hints2 */
    size += 4 * nsub * sizeof(uint32_t);
    size = (size + 7) & ~(size_t)7;
    size_t o_fptr = size;
    size += nsub * sizeof(field_rec *);
    size_t o_frec = size;
    size += nfields * sizeof(field_rec);
    size_t o_preds = size;
    size += nconds * sizeof(uint32_t);
    size_t o_access = size; /* access, box2 */
    size += 2 * nsub * sizeof(uint16_t);
    char *blk = calloc(1, size);
    if (!blk)
        return NULL;
    rule_rec *r = (rule_rec *)(void *)blk;
    r->refs = 1;
    r->key = key;
    r->nsub = (uint32_t)nsub;
    r->sr_ids = (uint32_t *)(void *)(blk + o_ids);
    r->fields = (field_rec **)(void *)(blk + o_fptr);
    r->access = (uint16_t *)(void *)(blk + o_access);
    field_rec *fr = (field_rec *)(void *)(blk + o_frec);
    uint32_t *pr = (uint32_t *)(void *)(blk + o_preds);
    for (size_t i = 0; i < nsub; i++) {
        RR_HINTS(r)[i] = HINT_NONE; /* until registered: no hint to count, no box */
        RR_HINTS2(r)[i] = UINT32_MAX;
        RR_BOX2(r)[i] = UINT16_MAX;
        r->fields[i] = fr;
        for (size_t j = 0; j < p->subs[i].nfields; j++) {
            fr[j].preds = pr;
            pr += p->subs[i].fields[j]->ncond;
        }
        fr += p->subs[i].nfields;
    }
    ebp_pattern_ref(p);
    r->pat = p;
    r->slot = id_take(&m->free_slot, &m->next_slot);
    if (r->slot >= 0x7FFFFFFFu) { /* slots must fit beside HINT_SINGLE */
        id_push(&m->free_slot, r->slot);
        eb_pattern_free((eb_pattern *)r->pat);
        free(blk);
        return NULL;
    }
    return r;
}

/* ---- building a new snapshot ---------------------------------------------------------- */

typedef struct {
    const eb_snapshot *old;
    eb_snapshot *s;
    unsigned char *sr_fresh, *rule_fresh;
} change;

static int tables_init(change *ch, uint32_t nsr, uint32_t nslot)
{
    const eb_snapshot *o = ch->old;
    eb_snapshot *s = ch->s;
    uint32_t nsc = (nsr + CHUNK - 1) / CHUNK, nrc = (nslot + CHUNK - 1) / CHUNK;
    if (nsc < o->nsr_chunks)
        nsc = o->nsr_chunks;
    if (nrc < o->nrule_chunks)
        nrc = o->nrule_chunks;
    s->srs = calloc(nsc ? nsc : 1, sizeof *s->srs);
    s->rules = calloc(nrc ? nrc : 1, sizeof *s->rules);
    ch->sr_fresh = calloc(nsc ? nsc : 1, 1);
    ch->rule_fresh = calloc(nrc ? nrc : 1, 1);
    if (!s->srs || !s->rules || !ch->sr_fresh || !ch->rule_fresh)
        return -1;
    for (uint32_t i = 0; i < nsc; i++) {
        if (i < o->nsr_chunks) {
            s->srs[i] = o->srs[i];
            incref(&s->srs[i]->refs);
        } else {
            s->srs[i] = calloc(1, sizeof(sr_chunk));
            if (!s->srs[i])
                return -1;
            s->srs[i]->refs = 1;
            ch->sr_fresh[i] = 1;
        }
        s->nsr_chunks = i + 1;
    }
    for (uint32_t i = 0; i < nrc; i++) {
        if (i < o->nrule_chunks) {
            s->rules[i] = o->rules[i];
            incref(&s->rules[i]->refs);
        } else {
            s->rules[i] = calloc(1, sizeof(rule_chunk));
            if (!s->rules[i])
                return -1;
            s->rules[i]->refs = 1;
            ch->rule_fresh[i] = 1;
        }
        s->nrule_chunks = i + 1;
    }
    return 0;
}

static sr_t *sr_mut(change *ch, uint32_t id)
{
    uint32_t c = id >> CHUNK_BITS;
    if (!ch->sr_fresh[c]) {
        sr_chunk *n = malloc(sizeof *n);
        if (!n)
            return NULL;
        memcpy(n->items, ch->s->srs[c]->items, sizeof n->items);
        n->refs = 1;
        sr_chunk_release(ch->s->srs[c]);
        ch->s->srs[c] = n;
        ch->sr_fresh[c] = 1;
    }
    return &ch->s->srs[c]->items[id & (CHUNK - 1)];
}

static rule_rec **rule_mut(change *ch, uint32_t slot)
{
    uint32_t c = slot >> CHUNK_BITS;
    if (!ch->rule_fresh[c]) {
        rule_chunk *n = malloc(sizeof *n);
        if (!n)
            return NULL;
        memcpy(n->items, ch->s->rules[c]->items, sizeof n->items);
        n->refs = 1;
        for (unsigned i = 0; i < CHUNK; i++)
            if (n->items[i])
                incref(&n->items[i]->refs);
        rule_chunk_release(ch->s->rules[c]);
        ch->s->rules[c] = n;
        ch->rule_fresh[c] = 1;
    }
    return &ch->s->rules[c]->items[slot & (CHUNK - 1)];
}

/* Rebuild the vm of every dirty path; drop paths nobody uses. */
static int rebuild_paths(eb_machine *m, change *ch, ebp_vec *dead_paths)
{
    ebp_vec in, kin;
    ebp_vec_init(&in, sizeof(vm_input));
    ebp_vec_init(&kin, sizeof(vm_input));
    int rc = 0;
    for (uint32_t i = 0; i <= m->pmask && !rc; i++) {
        path_rec *pr = m->paths[i];
        if (!pr || !pr->dirty)
            continue;
        pr->dirty = 0;
        path_compact(m, pr);
        vm *v = NULL;
        in.len = kin.len = 0;
        if (ebp_vec_reserve(&in, pr->npreds ? pr->npreds : 1) || ebp_vec_reserve(&kin, pr->npreds ? pr->npreds : 1)) {
            rc = -1;
            break;
        }
        for (uint32_t k = 0; k < pr->npreds; k++) {
            const pred_rec *p = pr->preds[k];
            if (p->nbox && p->refs == p->nbox)
                continue; /* only boxes use it: their index finds it */
            /* only single-field sub-rules reach it through access targets: no
             * field reads its mark, so matching need not record it */
            uint32_t mark = (p->refs > p->nsingle ? MARK_READ : 0) | (p->nhint ? MARK_HINT : 0);
            /* only keyed sub-rules use it: the key indexes find it, and
             * the path's second vm for the events they cannot take */
            ebp_vec *to = p->nkeyed == p->refs ? &kin : &in;
            ((vm_input *)to->items)[to->len++] = (vm_input){p->id, mark, p->cond, p->pat, p->acc, p->nacc};
        }
        if (in.len || pr->nbox || pr->nkeyed) {
            v = ebp_vm_build(in.items, (uint32_t)in.len, pr->nbox ? VM_BOX : 0);
            if (!v) {
                rc = -1;
                break;
            }
            if (pr->nkeyed)
                v->flags |= VM_KEYED;
            if (kin.len && !(v->kvm = ebp_vm_build(kin.items, (uint32_t)kin.len, 0))) {
                ebp_vm_release(v);
                rc = -1;
                break;
            }
            if (v->kvm)
                v->mem += v->kvm->mem;
        }
        int empty;
        node *nr = node_set(ch->s->root, "", 0, pr->path, pr->plen, v, pr->refs ? pr->id : UINT32_MAX, pr->nneg != 0,
                             &empty);
        if (v)
            ebp_vm_release(v);
        if (!nr && !empty) {
            rc = -1;
            break;
        }
        ebp_node_release(ch->s->root);
        ch->s->root = nr;
        if (!pr->refs) {
            path_rec **slot = ebp_vec_push(dead_paths);
            if (!slot)
                rc = -1;
            else
                *slot = pr;
        }
    }
    ebp_vec_free(&in);
    ebp_vec_free(&kin);
    return rc;
}

/* Rebuild the key index of every signature whose sub-rules changed; the
 * snapshot lists the index of every signature that has sub-rules. */
static int rebuild_keys(eb_machine *m, change *ch)
{
    keyidx **fresh = calloc(m->nkregs ? m->nkregs : 1, sizeof *fresh);
    keyidx **list = malloc((m->nkregs ? m->nkregs : 1) * sizeof *list);
    ebp_vec bytes, in;
    ebp_vec_init(&bytes, 1);
    ebp_vec_init(&in, sizeof(key_input));
    int rc = !fresh || !list;
    for (uint32_t k = 0; k < m->nkregs && !rc; k++) {
        keyreg *g = &m->kregs[k];
        if (!g->dirty || !g->n)
            continue;
        bytes.len = in.len = 0;
        size_t *offs = malloc(g->n * sizeof *offs);
        rc = !offs || ebp_vec_reserve(&in, g->n);
        for (uint32_t q = 0; q < g->n && !rc; q++) {
            offs[q] = bytes.len;
            rc = key_bytes(&g->in[q], g->sig.k, &bytes);
        }
        for (uint32_t q = 0; q < g->n && !rc; q++) {
            size_t end = q + 1 < g->n ? offs[q + 1] : bytes.len;
            const rule_rec *r = g->in[q].r;
            ((key_input *)in.items)[q] =
                (key_input){(const unsigned char *)bytes.items + offs[q], (uint32_t)(end - offs[q]), r->slot, r->key};
        }
        free(offs);
        if (!rc && !(fresh[k] = ebp_key_build(&g->sig, in.items, g->n)))
            rc = -1;
    }
    ebp_vec_free(&bytes);
    ebp_vec_free(&in);
    if (rc) {
        for (uint32_t k = 0; fresh && k < m->nkregs; k++)
            ebp_key_release(fresh[k]);
        free(fresh);
        free(list);
        return -1;
    }
    uint32_t n = 0, keep = 0;
    for (uint32_t k = 0; k < m->nkregs; k++) {
        keyreg *g = &m->kregs[k];
        if (g->dirty) {
            ebp_key_release(g->built);
            g->built = fresh[k];
            g->dirty = 0;
        }
        if (g->built) {
            incref(&g->built->refs);
            list[n++] = g->built;
        }
        if (g->n || g->built)
            m->kregs[keep++] = *g;
        else
            free(g->in);
    }
    m->nkregs = keep;
    free(fresh);
    ch->s->kidx = list;
    ch->s->nkidx = n;
    return 0;
}

/* Rebuild the box index of every pair of paths whose boxes changed; the
 * snapshot lists the index of every pair that has boxes. */
static int rebuild_boxes(eb_machine *m, change *ch)
{
    boxidx **fresh = calloc(m->nbregs ? m->nbregs : 1, sizeof *fresh);
    boxidx **list = malloc((m->nbregs ? m->nbregs : 1) * sizeof *list);
    int rc = !fresh || !list;
    for (uint32_t k = 0; k < m->nbregs && !rc; k++) {
        boxreg *g = &m->bregs[k];
        if (g->dirty && g->n && !(fresh[k] = ebp_box_build(g->path[0], g->path[1], g->in, g->n)))
            rc = -1;
    }
    if (rc) {
        for (uint32_t k = 0; fresh && k < m->nbregs; k++)
            ebp_box_release(fresh[k]);
        free(fresh);
        free(list);
        return -1;
    }
    uint32_t n = 0, keep = 0;
    for (uint32_t k = 0; k < m->nbregs; k++) {
        boxreg *g = &m->bregs[k];
        if (g->dirty) {
            ebp_box_release(g->built);
            g->built = fresh[k];
            g->dirty = 0;
        }
        if (g->built) {
            incref(&g->built->refs);
            list[n++] = g->built;
        }
        if (g->n || g->built)
            m->bregs[keep++] = *g;
        else
            free(g->in);
    }
    m->nbregs = keep;
    free(fresh);
    ch->s->boxes = list;
    ch->s->nboxes = n;
    return 0;
}

static int rebuild_always(change *ch, rule_rec *const *gone, size_t ngone, rule_rec *const *added, size_t nadded)
{
    const eb_snapshot *o = ch->old;
    size_t extra = 0;
    for (size_t k = 0; k < nadded; k++)
        extra += added[k]->nsub;
    uint32_t *a = malloc((o->nalways + extra + 1) * sizeof *a);
    if (!a)
        return -1;
    uint32_t n = 0;
    for (uint32_t i = 0; i < o->nalways; i++) {
        const sr_t *S = snap_sr(ch->s, o->always[i]);
        int dead = 0;
        for (size_t k = 0; k < ngone && !dead; k++)
            dead = S->rule == gone[k];
        if (!dead)
            a[n++] = o->always[i];
    }
    for (size_t k = 0; k < nadded; k++)
        for (uint32_t i = 0; i < added[k]->nsub; i++)
            if (added[k]->access[i] == UINT16_MAX)
                a[n++] = added[k]->sr_ids[i];
    ch->s->always = a;
    ch->s->nalways = n;
    return 0;
}

/* One change: remove the rules `gone` and add the rules `added` (already
 * registered / unregistered in the registry). */
static int publish(eb_machine *m, rule_rec *const *gone, size_t ngone, rule_rec *const *added, size_t nadded,
                   ebp_vec *dead_paths)
{
    change ch = {.old = m->cur};
    eb_snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    s->refs = 1;
    ch.s = s;
    s->root = ch.old->root;
    if (s->root)
        incref(&s->root->refs);
    s->nrules = ch.old->nrules;
    int rc = tables_init(&ch, m->next_sr, m->next_slot);
    if (!rc)
        rc = rebuild_always(&ch, gone, ngone, added, nadded);
    for (size_t k = 0; k < ngone && !rc; k++) {
        const rule_rec *g = gone[k];
        for (uint32_t i = 0; i < g->nsub && !rc; i++) {
            sr_t *t = sr_mut(&ch, g->sr_ids[i]);
            if (!t)
                rc = -1;
            else if (t->rule == g)
                memset(t, 0, sizeof *t);
        }
        rule_rec **slot = rc ? NULL : rule_mut(&ch, g->slot);
        if (!slot) {
            rc = -1;
        } else if (*slot == g) {
            rule_release(*slot);
            *slot = NULL;
            s->nrules--;
        }
    }
    for (size_t k = 0; k < nadded && !rc; k++) {
        rule_rec *r = added[k];
        for (uint32_t i = 0; i < r->nsub && !rc; i++) {
            sr_t *t = sr_mut(&ch, r->sr_ids[i]);
            if (!t) {
                rc = -1;
                break;
            }
            const ebp_sub *sub = &r->pat->subs[i];
            t->rule = r;
            t->fields = r->fields[i];
            t->key = r->key;
            t->slot = r->slot;
            t->gen = RR_GENS(r)[i];
            t->nfields = (uint32_t)sub->nfields;
        }
        rule_rec **slot = rc ? NULL : rule_mut(&ch, r->slot);
        if (!slot) {
            rc = -1;
        } else {
            incref(&r->refs);
            rule_release(*slot);
            *slot = r;
            s->nrules++;
        }
    }
    if (!rc)
        rc = rebuild_paths(m, &ch, dead_paths);
    if (!rc)
        rc = rebuild_boxes(m, &ch);
    if (!rc)
        rc = rebuild_keys(m, &ch);
    s->npred_cap = m->next_pred;
    s->npath_cap = m->next_path;
    free(ch.sr_fresh);
    free(ch.rule_fresh);
    if (rc) {
        eb_snapshot_release(s);
        return -1;
    }
    pthread_mutex_lock(&m->slock);
    eb_snapshot *old = m->cur;
    m->cur = s;
    pthread_mutex_unlock(&m->slock);
    eb_snapshot_release(old);
    return 0;
}

static void release_ids(eb_machine *m, const rule_rec *r)
{
    for (uint32_t i = 0; i < r->nsub; i++)
        id_push(&m->free_sr, r->sr_ids[i]);
    id_push(&m->free_slot, r->slot);
}

static void drop_dead_paths(eb_machine *m, ebp_vec *dead)
{
    for (size_t i = 0; i < dead->len; i++) {
        path_rec *pr = EBP_VEC_AT(dead, path_rec *, i);
        if (pr->refs)
            continue;
        path_rec **slot = path_lookup(m, pr->path, pr->plen);
        if (*slot == pr)
            paths_delete(m, slot);
        id_push(&m->free_path, pr->id);
        for (uint32_t k = 0; k < pr->npreds; k++)
            pred_free(pr->preds[k]);
        free(pr->preds);
        free(pr->pidx);
        free(pr->path);
        free(pr);
    }
}

/* Add (replace) n rules, or remove them when pats is NULL, in one change. */
static eb_status change_rules(eb_machine *m, size_t n, const uint64_t *keys, const eb_pattern *const *pats)
{
    for (size_t k = 0; pats && k < n; k++) {
        if (pats[k]->nsub > 65535)
            return EB_ERR_NOMEM;
        for (size_t i = 0; i < pats[k]->nsub; i++)
            if (pats[k]->subs[i].nfields > 65535)
                return EB_ERR_NOMEM;
    }
    pthread_mutex_lock(&m->wlock);
    eb_status st = EB_OK;
    rule_rec **gone = calloc(n ? n : 1, sizeof *gone), **added = calloc(n ? n : 1, sizeof *added);
    size_t ngone = 0, nadded = 0;
    ebp_vec dead_paths;
    ebp_vec_init(&dead_paths, sizeof(path_rec *));
    if (!gone || !added) {
        st = EB_ERR_NOMEM;
        goto out;
    }
    while ((m->kcount + n) * 2 > m->kmask + 1)
        if (key_grow(m)) {
            st = EB_ERR_NOMEM;
            goto out;
        }
    /* what goes */
    for (size_t k = 0; k < n; k++) {
        keyslot *ks = key_find(m, keys[k]);
        if (!ks->rule) {
            if (!pats)
                st = EB_ERR_NOTFOUND;
            continue;
        }
        int dup = 0;
        for (size_t q = 0; q < ngone && !dup; q++)
            dup = gone[q] == ks->rule;
        if (!dup) {
            /* hold it: publishing releases the snapshot that owned it */
            incref(&ks->rule->refs);
            gone[ngone++] = ks->rule;
        }
    }
    if (st != EB_OK)
        goto out;
    for (size_t q = 0; q < ngone; q++)
        rule_unregister(m, gone[q]);
    /* what comes (a key given twice: the last wins) */
    for (size_t k = 0; pats && k < n; k++) {
        int later = 0;
        for (size_t q = k + 1; q < n && !later; q++)
            later = keys[q] == keys[k];
        if (later)
            continue;
        rule_rec *r = make_rule(m, keys[k], pats[k]);
        if (!r || rule_register(m, r)) {
            if (r) {
                added[nadded++] = r; /* so it is unregistered below */
            }
            st = EB_ERR_NOMEM;
            break;
        }
        added[nadded++] = r;
    }
    if (st == EB_OK && publish(m, gone, ngone, added, nadded, &dead_paths))
        st = EB_ERR_NOMEM;
    if (st != EB_OK) {
        /* undo: take the new rules out, put the old ones back */
        for (size_t q = 0; q < nadded; q++) {
            rule_unregister(m, added[q]);
            release_ids(m, added[q]);
            rule_release(added[q]);
        }
        nadded = 0;
        for (size_t q = 0; q < ngone; q++) {
            /* re-registering allocates nothing new for rules that were registered */
            rule_rec *g = gone[q];
            for (uint32_t i = 0; i < g->nsub; i++) {
                const ebp_sub *sub = &g->pat->subs[i];
                count_hint(m, RR_HINTS(g)[i], 1);
                for (size_t j = 0; j < sub->nfields; j++) {
                    path_rec *pr = *path_lookup(m, sub->fields[j]->path.s, sub->fields[j]->path.n);
                    if (!pr)
                        continue;
                    pr->refs++;
                    const field_rec *f = &g->fields[i][j];
                    pr->nneg += f->kind != FK_POS;
                    for (uint32_t k2 = 0; k2 < f->npreds; k2++) {
                        pred_rec *pd = m->pred_tab[f->preds[k2]];
                        if (!pd)
                            continue;
                        pd->refs++;
                        if (j == g->access[i] && RR_BOX2(g)[i] == UINT16_MAX)
                            acc_add(pd, target_for(g, i), sub->nfields == 1);
                    }
                }
                if (RR_BOX2(g)[i] != UINT16_MAX) {
                    const ebp_field *fx = sub->fields[g->access[i]], *fy = sub->fields[RR_BOX2(g)[i]];
                    box_register(m, g, i, *path_lookup(m, fx->path.s, fx->path.n),
                                 *path_lookup(m, fy->path.s, fy->path.n));
                }
                key_register(m, g, i);
            }
        }
        for (uint32_t i = 0; i <= m->pmask; i++)
            if (m->paths[i])
                m->paths[i]->dirty = 0;
        for (uint32_t i = 0; i < m->nbregs; i++)
            m->bregs[i].dirty = 0; /* as in the current snapshot again */
        goto out;
    }
    /* committed */
    for (size_t q = 0; q < ngone; q++) {
        keyslot *ks = key_find(m, gone[q]->key);
        if (ks->rule == gone[q])
            key_delete(m, ks);
        release_ids(m, gone[q]);
    }
    for (size_t q = 0; q < nadded; q++) {
        keyslot *ks = key_find(m, added[q]->key);
        if (!ks->rule)
            m->kcount++;
        ks->key = added[q]->key;
        ks->rule = added[q];   /* borrowed: the snapshot's table holds the reference */
        rule_release(added[q]); /* drop make_rule's reference */
    }
    drop_dead_paths(m, &dead_paths);
out:
    for (size_t q = 0; q < ngone; q++)
        rule_release(gone[q]);
    ebp_vec_free(&dead_paths);
    free(gone);
    free(added);
    pthread_mutex_unlock(&m->wlock);
    return st;
}

eb_status eb_machine_add(eb_machine *m, uint64_t key, const eb_pattern *p)
{
    return change_rules(m, 1, &key, &p);
}

eb_status eb_machine_add_batch(eb_machine *m, size_t n, const uint64_t *keys, const eb_pattern *const *pats)
{
    return change_rules(m, n, keys, pats);
}

eb_status eb_machine_remove(eb_machine *m, uint64_t key)
{
    return change_rules(m, 1, &key, NULL);
}
