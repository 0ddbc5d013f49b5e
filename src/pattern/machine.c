/* Machines and snapshots: adding and removing rules by building a new
 * immutable snapshot that shares everything unchanged with the previous one. */
#include "machine.h"

#include <stdlib.h>

/* ---- reference counting helpers -------------------------------------------- */
static void incref(int *r) { __atomic_add_fetch(r, 1, __ATOMIC_RELAXED); }
static int decref(int *r) { return __atomic_sub_fetch(r, 1, __ATOMIC_ACQ_REL) == 0; }

/* ---- rules ----------------------------------------------------------------- */
static void rule_release(rule_rec *r)
{
    if (!r || !decref(&r->refs))
        return;
    for (uint32_t i = 0; i < r->nsub; i++)
        free(r->kinds[i]);
    free(r->kinds);
    free(r->sr_ids);
    eb_pattern_free((eb_pattern *)r->pat);
    free(r);
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
    if (n->nedges <= 8)
        return 0;
    uint32_t size = 16;
    while (size < n->nedges * 2)
        size *= 2;
    n->index = malloc(size * sizeof *n->index);
    if (!n->index)
        return -1;
    memset(n->index, 0xff, size * sizeof *n->index);
    n->idx_mask = size - 1;
    for (uint32_t i = 0; i < n->nedges; i++) {
        uint32_t s = (uint32_t)n->edges[i].hash & n->idx_mask;
        while (n->index[s] != UINT32_MAX)
            s = (s + 1) & n->idx_mask;
        n->index[s] = i;
    }
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
                      int *empty)
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
        node *nc = node_set(at == UINT32_MAX ? NULL : c->edges[at].child, path, sl, rest, rl, v, &child_empty);
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
            c->nedges++;
        }
        if (node_reindex(c)) {
            ebp_node_release(c);
            return NULL;
        }
    }
    if (!c->vm && !c->nedges) {
        ebp_node_release(c);
        *empty = 1;
        return NULL;
    }
    return c;
}

static const node *node_find(const node *n, const char *path, size_t plen)
{
    while (n) {
        const char *dot = memchr(path, '.', plen);
        size_t sl = dot ? (size_t)(dot - path) : plen;
        n = node_child(n, path, sl);
        if (!dot)
            return n;
        path = dot + 1;
        plen -= sl + 1;
    }
    return NULL;
}

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
    for (uint32_t c = 0; c < s->nrule_chunks; c++)
        for (unsigned i = 0; i < CHUNK; i++) {
            const rule_rec *r = s->rules[c]->items[i];
            if (!r)
                continue;
            m += sizeof *r + r->nsub * (sizeof(uint32_t) + sizeof(void *));
            for (uint32_t k = 0; k < r->nsub; k++)
                m += r->pat->subs[k].nfields;
            m += r->pat->arena.total + sizeof *r->pat;
        }
    return m;
}

/* ---- machine ------------------------------------------------------------------- */

typedef struct {
    uint64_t key;
    rule_rec *rule; /* NULL = empty */
} keyslot;

struct eb_machine {
    pthread_mutex_t wlock; /* writers */
    pthread_mutex_t slock; /* the `cur` pointer */
    eb_snapshot *cur;
    keyslot *keys;
    uint32_t kmask, kcount;
    uint32_t *free_sr, nfree_sr, cap_free_sr, next_sr;
    uint32_t *free_slot, nfree_slot, cap_free_slot, next_slot;
};

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
    if (!m->cur || !m->keys) {
        free(m->cur);
        free(m->keys);
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
    free(m->keys);
    free(m->free_sr);
    free(m->free_slot);
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
    /* backward-shift deletion for linear probing */
    uint32_t i = (uint32_t)(ks - m->keys);
    m->keys[i].rule = NULL;
    for (uint32_t j = (i + 1) & m->kmask; m->keys[j].rule; j = (j + 1) & m->kmask) {
        uint32_t home = (uint32_t)ebp_hash_u64(m->keys[j].key) & m->kmask;
        /* can the entry at j move to i? yes if home is not in (i, j] cyclically */
        int in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            m->keys[i] = m->keys[j];
            m->keys[j].rule = NULL;
            i = j;
        }
    }
    m->kcount--;
}

static int push_free(uint32_t **arr, uint32_t *n, uint32_t *cap, uint32_t v)
{
    if (*n == *cap) {
        uint32_t nc = *cap ? *cap * 2 : 64;
        uint32_t *na = realloc(*arr, nc * sizeof *na);
        if (!na)
            return -1;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = v;
    return 0;
}

/* ---- building a new snapshot ------------------------------------------------------ */

typedef struct {
    const char *path;
    size_t plen;
} path_ref;

typedef struct {
    eb_machine *m;
    const eb_snapshot *old;
    eb_snapshot *s;
    /* chunks already cloned in this change (so they are cloned once) */
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
    s->nsr_chunks = nsc;
    s->nrule_chunks = nrc;
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

/* Collect the distinct paths touched by a rule. */
static int rule_paths(const rule_rec *r, ebp_vec *paths)
{
    for (uint32_t i = 0; i < r->nsub; i++) {
        const ebp_sub *sub = &r->pat->subs[i];
        for (size_t j = 0; j < sub->nfields; j++) {
            const ebp_str *p = &sub->fields[j]->path;
            int dup = 0;
            for (size_t k = 0; k < paths->len && !dup; k++) {
                path_ref *q = &EBP_VEC_AT(paths, path_ref, k);
                dup = q->plen == p->n && !memcmp(q->path, p->s, p->n);
            }
            if (dup)
                continue;
            path_ref *q = ebp_vec_push(paths);
            if (!q)
                return -1;
            q->path = p->s;
            q->plen = p->n;
        }
    }
    return 0;
}

/* Append the predicates rule r contributes at path to preds. */
static int rule_preds_at(const rule_rec *r, const char *path, size_t plen, ebp_vec *preds)
{
    for (uint32_t i = 0; i < r->nsub; i++) {
        const ebp_sub *sub = &r->pat->subs[i];
        for (size_t j = 0; j < sub->nfields; j++) {
            const ebp_field *f = sub->fields[j];
            if (f->path.n != plen || memcmp(f->path.s, path, plen))
                continue;
            ebp_target t = {r->sr_ids[i], (uint32_t)j};
            int has_abs = 0;
            for (size_t k = 0; k < f->ncond; k++) {
                if (f->conds[k].kind == EBP_C_ABSENT) {
                    if (!has_abs) {
                        ebp_pred *p = ebp_vec_push(preds);
                        if (!p)
                            return -1;
                        p->cond = &f->conds[k];
                        p->t = t;
                        p->presence = 1;
                    }
                    has_abs = 1;
                    continue;
                }
                ebp_pred *p = ebp_vec_push(preds);
                if (!p)
                    return -1;
                p->cond = &f->conds[k];
                p->t = t;
                p->presence = 0;
            }
        }
    }
    return 0;
}

static int sr_in_rule(const rule_rec *r, uint32_t sr)
{
    for (uint32_t i = 0; i < r->nsub; i++)
        if (r->sr_ids[i] == sr)
            return 1;
    return 0;
}

/* Rebuild the vms on the given paths: drop predicates of `gone`, add those of `added`. */
static int rebuild_paths(change *ch, const ebp_vec *paths, const rule_rec *gone, const rule_rec *added)
{
    ebp_vec preds;
    ebp_vec_init(&preds, sizeof(ebp_pred));
    int rc = 0;
    for (size_t i = 0; i < paths->len && !rc; i++) {
        const path_ref *pr = &EBP_VEC_AT(paths, path_ref, i);
        preds.len = 0;
        const node *old = node_find(ch->s->root, pr->path, pr->plen);
        if (old && old->vm) {
            for (uint32_t k = 0; k < old->vm->npreds; k++) {
                const ebp_pred *p = &old->vm->preds[k];
                if (gone && sr_in_rule(gone, p->t.sr))
                    continue;
                ebp_pred *q = ebp_vec_push(&preds);
                if (!q) {
                    rc = -1;
                    break;
                }
                *q = *p;
            }
        }
        if (!rc && added && rule_preds_at(added, pr->path, pr->plen, &preds))
            rc = -1;
        if (rc)
            break;
        vm *v = NULL;
        if (preds.len) {
            v = ebp_vm_build(preds.items, (uint32_t)preds.len);
            if (!v) {
                rc = -1;
                break;
            }
        }
        int empty;
        node *nr = node_set(ch->s->root, "", 0, pr->path, pr->plen, v, &empty);
        if (v)
            ebp_vm_release(v); /* node_set took its own reference */
        if (!nr && !empty) {
            rc = -1;
            break;
        }
        ebp_node_release(ch->s->root);
        ch->s->root = nr;
    }
    ebp_vec_free(&preds);
    return rc;
}

static int rebuild_always(change *ch, const rule_rec *gone, const rule_rec *added)
{
    const eb_snapshot *o = ch->old;
    uint32_t extra = 0;
    if (added)
        for (uint32_t i = 0; i < added->nsub; i++)
            extra++;
    uint32_t *a = malloc((o->nalways + extra + 1) * sizeof *a);
    if (!a)
        return -1;
    uint32_t n = 0;
    for (uint32_t i = 0; i < o->nalways; i++)
        if (!gone || !sr_in_rule(gone, o->always[i]))
            a[n++] = o->always[i];
    if (added)
        for (uint32_t i = 0; i < added->nsub; i++) {
            const ebp_sub *sub = &added->pat->subs[i];
            uint32_t npos = 0;
            for (size_t j = 0; j < sub->nfields; j++)
                npos += added->kinds[i][j] == FK_POS;
            if (!npos)
                a[n++] = added->sr_ids[i];
        }
    ch->s->always = a;
    ch->s->nalways = n;
    return 0;
}

static rule_rec *make_rule(eb_machine *m, uint64_t key, const eb_pattern *p)
{
    rule_rec *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->refs = 1;
    r->key = key;
    r->nsub = (uint32_t)p->nsub;
    r->sr_ids = calloc(r->nsub ? r->nsub : 1, sizeof *r->sr_ids);
    r->kinds = calloc(r->nsub ? r->nsub : 1, sizeof *r->kinds);
    if (!r->sr_ids || !r->kinds)
        goto fail;
    for (uint32_t i = 0; i < r->nsub; i++) {
        const ebp_sub *sub = &p->subs[i];
        r->kinds[i] = malloc(sub->nfields ? sub->nfields : 1);
        if (!r->kinds[i])
            goto fail;
        for (size_t j = 0; j < sub->nfields; j++)
            r->kinds[i][j] = field_kind(sub->fields[j]);
    }
    /* ids: reuse freed ones first */
    for (uint32_t i = 0; i < r->nsub; i++)
        r->sr_ids[i] = m->nfree_sr ? m->free_sr[--m->nfree_sr] : m->next_sr++;
    r->slot = m->nfree_slot ? m->free_slot[--m->nfree_slot] : m->next_slot++;
    ebp_pattern_ref(p);
    r->pat = p;
    return r;
fail:
    if (r->kinds)
        for (uint32_t i = 0; i < r->nsub; i++)
            free(r->kinds[i]);
    free(r->kinds);
    free(r->sr_ids);
    free(r);
    return NULL;
}

/* Give back the ids of a rule that never made it into a snapshot. */
static void unmake_rule(eb_machine *m, rule_rec *r)
{
    for (uint32_t i = 0; i < r->nsub; i++)
        push_free(&m->free_sr, &m->nfree_sr, &m->cap_free_sr, r->sr_ids[i]);
    push_free(&m->free_slot, &m->nfree_slot, &m->cap_free_slot, r->slot);
    rule_release(r);
}

/* One change: remove `gone` (may be NULL) and add `added` (may be NULL). */
static int apply(eb_machine *m, rule_rec *gone, rule_rec *added)
{
    change ch = {.m = m, .old = m->cur};
    eb_snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    s->refs = 1;
    ch.s = s;
    s->root = ch.old->root;
    if (s->root)
        incref(&s->root->refs);
    s->nrules = ch.old->nrules;
    s->max_nwords = ch.old->max_nwords;
    ebp_vec paths;
    ebp_vec_init(&paths, sizeof(path_ref));
    int rc = tables_init(&ch, m->next_sr, m->next_slot);
    if (!rc && gone)
        rc = rule_paths(gone, &paths);
    if (!rc && added)
        rc = rule_paths(added, &paths);
    if (!rc)
        rc = rebuild_paths(&ch, &paths, gone, added);
    if (!rc)
        rc = rebuild_always(&ch, gone, added);
    if (!rc && gone) {
        for (uint32_t i = 0; i < gone->nsub && !rc; i++) {
            sr_t *t = sr_mut(&ch, gone->sr_ids[i]);
            if (!t)
                rc = -1;
            else
                memset(t, 0, sizeof *t);
        }
        rule_rec **slot = rc ? NULL : rule_mut(&ch, gone->slot);
        if (!slot)
            rc = -1;
        else {
            rule_release(*slot);
            *slot = NULL;
            s->nrules--;
        }
    }
    if (!rc && added) {
        for (uint32_t i = 0; i < added->nsub && !rc; i++) {
            sr_t *t = sr_mut(&ch, added->sr_ids[i]);
            if (!t) {
                rc = -1;
                break;
            }
            const ebp_sub *sub = &added->pat->subs[i];
            t->rule = added;
            t->kinds = added->kinds[i];
            t->nfields = (uint16_t)sub->nfields;
            t->npos = 0;
            for (size_t j = 0; j < sub->nfields; j++)
                t->npos = (uint16_t)(t->npos + (added->kinds[i][j] == FK_POS));
            t->nwords = (uint16_t)((sub->nfields + 63) / 64);
            if (t->nwords > s->max_nwords)
                s->max_nwords = t->nwords;
            t->single = sub->nfields == 1 && t->npos == 1;
        }
        rule_rec **slot = rc ? NULL : rule_mut(&ch, added->slot);
        if (!slot)
            rc = -1;
        else {
            incref(&added->refs);
            *slot = added;
            s->nrules++;
        }
    }
    ebp_vec_free(&paths);
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

eb_status eb_machine_add(eb_machine *m, uint64_t key, const eb_pattern *p)
{
    if (p->nsub > 65535)
        return EB_ERR_NOMEM;
    for (size_t i = 0; i < p->nsub; i++)
        if (p->subs[i].nfields > 65535)
            return EB_ERR_NOMEM;
    pthread_mutex_lock(&m->wlock);
    eb_status st = EB_OK;
    if ((m->kcount + 1) * 2 > m->kmask + 1 && key_grow(m)) {
        pthread_mutex_unlock(&m->wlock);
        return EB_ERR_NOMEM;
    }
    keyslot *ks = key_find(m, key);
    rule_rec *gone = ks->rule;
    /* apply() may free `gone` (with the snapshot that held it): keep its ids */
    uint32_t gone_nsub = gone ? gone->nsub : 0, gone_slot = gone ? gone->slot : 0;
    uint32_t *gone_ids = gone ? malloc((gone_nsub ? gone_nsub : 1) * sizeof *gone_ids) : NULL;
    if (gone && !gone_ids) {
        pthread_mutex_unlock(&m->wlock);
        return EB_ERR_NOMEM;
    }
    if (gone)
        memcpy(gone_ids, gone->sr_ids, gone_nsub * sizeof *gone_ids);
    rule_rec *r = make_rule(m, key, p);
    if (!r) {
        st = EB_ERR_NOMEM;
    } else if (apply(m, gone, r)) {
        unmake_rule(m, r);
        st = EB_ERR_NOMEM;
    } else {
        if (gone) {
            for (uint32_t i = 0; i < gone_nsub; i++)
                push_free(&m->free_sr, &m->nfree_sr, &m->cap_free_sr, gone_ids[i]);
            push_free(&m->free_slot, &m->nfree_slot, &m->cap_free_slot, gone_slot);
        } else {
            m->kcount++;
        }
        ks->key = key;
        ks->rule = r; /* the snapshot holds the reference; the index borrows it */
        rule_release(r); /* drop make_rule's reference: snapshot tables own it now */
    }
    free(gone_ids);
    pthread_mutex_unlock(&m->wlock);
    return st;
}

eb_status eb_machine_remove(eb_machine *m, uint64_t key)
{
    pthread_mutex_lock(&m->wlock);
    keyslot *ks = key_find(m, key);
    eb_status st = EB_OK;
    if (!ks->rule) {
        st = EB_ERR_NOTFOUND;
    } else {
        rule_rec *gone = ks->rule;
        uint32_t nsub = gone->nsub, slot = gone->slot;
        uint32_t *ids = malloc((nsub ? nsub : 1) * sizeof *ids);
        if (!ids) {
            st = EB_ERR_NOMEM;
        } else {
            memcpy(ids, gone->sr_ids, nsub * sizeof *ids);
            if (apply(m, gone, NULL)) {
                st = EB_ERR_NOMEM;
            } else {
                for (uint32_t i = 0; i < nsub; i++)
                    push_free(&m->free_sr, &m->nfree_sr, &m->cap_free_sr, ids[i]);
                push_free(&m->free_slot, &m->nfree_slot, &m->cap_free_slot, slot);
                key_delete(m, ks);
            }
            free(ids);
        }
    }
    pthread_mutex_unlock(&m->wlock);
    return st;
}
