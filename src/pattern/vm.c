/* Building the per-path value matcher (vm) from its predicate list.
 * Evaluation is in match.c, next to the event reader, so it inlines. */
#include "casefold.h"
#include "machine.h"

#include <math.h>
#include <stdlib.h>

/* ---- helpers: (key, target) lists grouped into tlists -------------------- */

typedef struct {
    const unsigned char *k;
    uint32_t n;
    uint32_t tag;
    ebp_target t;
    const ebp_glob *g; /* trie entries: anchored wildcard instead of a target list entry */
} kv;

typedef struct {
    vm *v;
    ebp_vec targets; /* ebp_target */
    ebp_arena tmp;
    int oom;
} builder;

static int kv_cmp(const void *a, const void *b)
{
    const kv *x = a, *y = b;
    if (x->tag != y->tag)
        return x->tag < y->tag ? -1 : 1;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = m ? memcmp(x->k, y->k, m) : 0;
    if (c)
        return c;
    return (x->n > y->n) - (x->n < y->n);
}

static tlist add_targets(builder *b, const ebp_target *ts, size_t n)
{
    tlist l = {(uint32_t)b->targets.len, (uint32_t)n};
    if (ebp_vec_reserve(&b->targets, b->targets.len + n)) {
        b->oom = 1;
        return (tlist){0, 0};
    }
    if (n)
        memcpy((ebp_target *)b->targets.items + b->targets.len, ts, n * sizeof *ts);
    b->targets.len += n;
    return l;
}

static tlist add_one(builder *b, tlist l, ebp_target t)
{
    /* only valid while l is the last list added */
    if (!l.n)
        l.off = (uint32_t)b->targets.len;
    ebp_target *p = ebp_vec_push(&b->targets);
    if (!p) {
        b->oom = 1;
        return l;
    }
    *p = t;
    l.n++;
    return l;
}

/* ---- hash map --------------------------------------------------------------- */

static void hmap_build(builder *b, hmap *h, kv *items, size_t n, ebp_vec *keybuf)
{
    h->slots = NULL;
    h->mask = 0;
    h->count = 0;
    if (!n)
        return;
    qsort(items, n, sizeof *items, kv_cmp); /* n > 0 here */
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++)
        if (!i || kv_cmp(&items[i - 1], &items[i]))
            distinct++;
    uint32_t size = 8;
    while (size < distinct * 2)
        size *= 2;
    h->slots = ebp_arena_alloc(&b->v->arena, size * sizeof *h->slots);
    if (!h->slots) {
        b->oom = 1;
        return;
    }
    for (uint32_t i = 0; i < size; i++) {
        h->slots[i].klen = UINT32_MAX;
        h->slots[i].t.n = 0;
    }
    h->mask = size - 1;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && !kv_cmp(&items[i], &items[j]))
            j++;
        /* targets i..j */
        tlist l = {(uint32_t)b->targets.len, 0};
        for (size_t k = i; k < j; k++)
            l = add_one(b, l, items[k].t);
        uint32_t koff = (uint32_t)keybuf->len;
        if (ebp_vec_reserve(keybuf, keybuf->len + items[i].n + 1)) {
            b->oom = 1;
            return;
        }
        memcpy((char *)keybuf->items + keybuf->len, items[i].k, items[i].n);
        keybuf->len += items[i].n;
        uint64_t hv = ebp_hash_bytes(items[i].k, items[i].n, items[i].tag);
        uint32_t s = (uint32_t)hv & h->mask;
        while (h->slots[s].klen != UINT32_MAX)
            s = (s + 1) & h->mask;
        h->slots[s].hash = hv;
        h->slots[s].koff = koff;
        h->slots[s].klen = items[i].n;
        h->slots[s].tag = items[i].tag;
        h->slots[s].t = l;
        h->count++;
        i = j;
    }
}

/* ---- tries --------------------------------------------------------------------- */

typedef struct {
    uint32_t first_child, next_sibling;
    unsigned char byte;
    ebp_vec targets; /* ebp_target */
    ebp_vec wcs;     /* const ebp_glob* with target: wc_entry (t.off = index into wc_targets) */
} tb_node;

typedef struct {
    const ebp_glob *g;
    ebp_target t;
} tb_wc;

typedef struct {
    ebp_vec nodes; /* tb_node */
} tbuild;

static uint32_t tb_new(builder *b, tbuild *tb, unsigned char byte)
{
    tb_node *n = ebp_vec_push(&tb->nodes);
    if (!n) {
        b->oom = 1;
        return 0;
    }
    n->first_child = n->next_sibling = 0;
    n->byte = byte;
    ebp_vec_init(&n->targets, sizeof(ebp_target));
    ebp_vec_init(&n->wcs, sizeof(tb_wc));
    return (uint32_t)(tb->nodes.len - 1);
}

static uint32_t tb_insert(builder *b, tbuild *tb, const unsigned char *s, size_t n, int reverse)
{
    if (!tb->nodes.len)
        tb_new(b, tb, 0);
    uint32_t cur = 0;
    for (size_t i = 0; i < n && !b->oom; i++) {
        unsigned char c = reverse ? s[n - 1 - i] : s[i];
        tb_node *nodes = tb->nodes.items;
        uint32_t ch = nodes[cur].first_child, prev = 0;
        while (ch && nodes[ch].byte < c) {
            prev = ch;
            ch = nodes[ch].next_sibling;
        }
        if (ch && nodes[ch].byte == c) {
            cur = ch;
            continue;
        }
        uint32_t nn = tb_new(b, tb, c);
        if (b->oom)
            return 0;
        nodes = tb->nodes.items;
        nodes[nn].next_sibling = ch;
        if (prev)
            nodes[prev].next_sibling = nn;
        else
            nodes[cur].first_child = nn;
        cur = nn;
    }
    return cur;
}

static void tb_free(tbuild *tb)
{
    for (size_t i = 0; i < tb->nodes.len; i++) {
        tb_node *n = &EBP_VEC_AT(&tb->nodes, tb_node, i);
        ebp_vec_free(&n->targets);
        ebp_vec_free(&n->wcs);
    }
    ebp_vec_free(&tb->nodes);
}

/* Flatten; anchored wildcards are appended to wcs (a vector of wc_entry). */
static void tb_flatten(builder *b, tbuild *tb, trie *t, ebp_vec *wcs)
{
    t->nodes = NULL;
    t->edges = NULL;
    t->nnodes = 0;
    if (!tb->nodes.len || b->oom)
        return;
    size_t nn = tb->nodes.len;
    t->nodes = ebp_arena_alloc(&b->v->arena, nn * sizeof(trie_node));
    t->edges = ebp_arena_alloc(&b->v->arena, nn * sizeof(trie_edge));
    if (!t->nodes || !t->edges) {
        b->oom = 1;
        return;
    }
    t->nnodes = (uint32_t)nn;
    /* Node ids stay as in the builder (root = 0).  Edges of each node are
     * laid out contiguously in byte order. */
    uint32_t ne = 0;
    tb_node *nodes = tb->nodes.items;
    for (size_t i = 0; i < nn; i++) {
        trie_node *o = &t->nodes[i];
        o->first_edge = ne;
        o->nedges = 0;
        for (uint32_t ch = nodes[i].first_child; ch; ch = nodes[ch].next_sibling) {
            t->edges[ne].byte = nodes[ch].byte;
            t->edges[ne].child = ch;
            ne++;
            o->nedges++;
        }
        o->t = add_targets(b, nodes[i].targets.items, nodes[i].targets.len);
        o->wc_off = (uint32_t)wcs->len;
        o->nwc = (uint16_t)nodes[i].wcs.len;
        for (size_t k = 0; k < nodes[i].wcs.len; k++) {
            tb_wc *w = &EBP_VEC_AT(&nodes[i].wcs, tb_wc, k);
            wc_entry *e = ebp_vec_push(wcs);
            if (!e) {
                b->oom = 1;
                return;
            }
            e->g = w->g;
            e->t = add_targets(b, &w->t, 1);
        }
    }
}

static void tb_add_target(builder *b, tbuild *tb, uint32_t nid, ebp_target t)
{
    if (b->oom)
        return;
    tb_node *n = &EBP_VEC_AT(&tb->nodes, tb_node, nid);
    ebp_target *p = ebp_vec_push(&n->targets);
    if (!p)
        b->oom = 1;
    else
        *p = t;
}

static void tb_add_wc(builder *b, tbuild *tb, uint32_t nid, const ebp_glob *g, ebp_target t)
{
    if (b->oom)
        return;
    tb_node *n = &EBP_VEC_AT(&tb->nodes, tb_node, nid);
    if (n->wcs.len >= 65535) { /* keep nwc in 16 bits: spill to the unanchored list */
        b->oom = 2;
        return;
    }
    tb_wc *p = ebp_vec_push(&n->wcs);
    if (!p)
        b->oom = 1;
    else {
        p->g = g;
        p->t = t;
    }
}

/* ---- ranges ------------------------------------------------------------------------- */

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int range_has(const range_entry *r, double v)
{
    if (r->has_lo && (r->lo_open ? !(v > r->lo) : !(v >= r->lo)))
        return 0;
    if (r->has_hi && (r->hi_open ? !(v < r->hi) : !(v <= r->hi)))
        return 0;
    return 1;
}

#define RANGE_LINEAR_MAX 8

static void build_range_index(builder *b, vm *v, ebp_vec *rtargets)
{
    /* rtargets: per range entry i, its target is at index i */
    uint32_t n = v->nranges;
    double *bs = malloc((size_t)n * 2 * sizeof *bs);
    if (!bs) {
        b->oom = 1;
        return;
    }
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (v->ranges[i].has_lo)
            bs[m++] = v->ranges[i].lo;
        if (v->ranges[i].has_hi)
            bs[m++] = v->ranges[i].hi;
    }
    qsort(bs, m, sizeof *bs, dbl_cmp);
    uint32_t d = 0;
    for (uint32_t i = 0; i < m; i++)
        if (!d || bs[d - 1] != bs[i])
            bs[d++] = bs[i];
    v->nbounds = d;
    v->bounds = ebp_arena_alloc(&v->arena, (d ? d : 1) * sizeof(double));
    v->slots = ebp_arena_alloc(&v->arena, (2 * (size_t)d + 1) * sizeof(tlist));
    if (!v->bounds || !v->slots) {
        free(bs);
        b->oom = 1;
        return;
    }
    memcpy(v->bounds, bs, d * sizeof(double));
    free(bs);
    /* slot 2i+1 is the point bounds[i]; slot 2i the open interval below it;
     * slot 2d the interval above the last bound.  Each slot gets the targets
     * of every range containing it (a representative point decides). */
    for (uint32_t s = 0; s <= 2 * d && !b->oom; s++) {
        double rep;
        if (s & 1)
            rep = v->bounds[s / 2];
        else if (d == 0)
            rep = 0;
        else if (s == 0)
            rep = -INFINITY;
        else if (s == 2 * d)
            rep = INFINITY;
        else
            rep = v->bounds[s / 2 - 1] + (v->bounds[s / 2] - v->bounds[s / 2 - 1]) / 2;
        tlist l = {(uint32_t)b->targets.len, 0};
        for (uint32_t i = 0; i < n; i++) {
            const range_entry *r = &v->ranges[i];
            int in;
            if (s & 1 || (s > 0 && s < 2 * d))
                in = range_has(r, rep);
            else if (s == 0) /* below every bound: only ranges without a lower bound */
                in = !r->has_lo;
            else
                in = !r->has_hi;
            if (in) {
                const ebp_target *ts = (const ebp_target *)b->targets.items + r->t.off;
                for (uint32_t k = 0; k < r->t.n; k++)
                    l = add_one(b, l, ts[k]);
            }
        }
        v->slots[s] = l;
    }
    (void)rtargets;
}

/* ---- build ------------------------------------------------------------------------ */

static void push_kv(builder *b, ebp_vec *vec, uint32_t tag, const void *k, size_t n, ebp_target t)
{
    kv *e = ebp_vec_push(vec);
    if (!e) {
        b->oom = 1;
        return;
    }
    e->tag = tag;
    e->k = k;
    e->n = (uint32_t)n;
    e->t = t;
    e->g = NULL;
}

static const unsigned char *tmp_copy(builder *b, const void *p, size_t n)
{
    unsigned char *k = ebp_arena_alloc(&b->tmp, n);
    if (!k) {
        b->oom = 1;
        return (const unsigned char *)"";
    }
    memcpy(k, p, n);
    return k;
}

static void free_vm(vm *v)
{
    free(v->preds);
    ebp_arena_free(&v->arena);
    free(v);
}

vm *ebp_vm_build(const ebp_pred *preds, uint32_t npreds)
{
    vm *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->refs = 1;
    ebp_arena_init(&v->arena);
    v->preds = malloc((npreds ? npreds : 1) * sizeof *preds);
    if (!v->preds) {
        free(v);
        return NULL;
    }
    if (npreds)
        memcpy(v->preds, preds, npreds * sizeof *preds);
    v->npreds = npreds;

    builder b = {.v = v};
    ebp_vec_init(&b.targets, sizeof(ebp_target));
    ebp_arena_init(&b.tmp);
    ebp_vec exact, eic, keybuf, wcs, ranges, cidrs, abs, unanch;
    ebp_vec_init(&exact, sizeof(kv));
    ebp_vec_init(&eic, sizeof(kv));
    ebp_vec_init(&keybuf, 1);
    ebp_vec_init(&wcs, sizeof(wc_entry));
    ebp_vec_init(&ranges, sizeof(range_entry));
    ebp_vec_init(&cidrs, sizeof(cidr_entry));
    ebp_vec_init(&abs, sizeof(ab_entry));
    ebp_vec_init(&unanch, sizeof(tb_wc));
    tbuild tp, ts, tpe, tse;
    ebp_vec_init(&tp.nodes, sizeof(tb_node));
    ebp_vec_init(&ts.nodes, sizeof(tb_node));
    ebp_vec_init(&tpe.nodes, sizeof(tb_node));
    ebp_vec_init(&tse.nodes, sizeof(tb_node));
    ebp_vec exists_t, presence_t, true_t, false_t, null_t;
    ebp_vec_init(&exists_t, sizeof(ebp_target));
    ebp_vec_init(&presence_t, sizeof(ebp_target));
    ebp_vec_init(&true_t, sizeof(ebp_target));
    ebp_vec_init(&false_t, sizeof(ebp_target));
    ebp_vec_init(&null_t, sizeof(ebp_target));

    for (uint32_t i = 0; i < npreds && !b.oom; i++) {
        const ebp_pred *pr = &preds[i];
        const ebp_cond *c = pr->cond;
        ebp_target t = pr->t;
        ebp_target *tp_;
        if (pr->presence) {
            if ((tp_ = ebp_vec_push(&presence_t)))
                *tp_ = t;
            else
                b.oom = 1;
            continue;
        }
        switch (c->kind) {
        case EBP_C_STR:
            push_kv(&b, &exact, 'S', c->s.s, c->s.n, t);
            v->flags |= VM_STR;
            break;
        case EBP_C_IP: {
            unsigned char k[17];
            k[0] = c->ip.family;
            memcpy(k + 1, c->ip.addr, 16);
            push_kv(&b, &exact, 'I', tmp_copy(&b, k, 17), 17, t);
            v->flags |= VM_IP | VM_STR;
            break;
        }
        case EBP_C_NUM:
            if (c->finite) {
                double d = c->d == 0 ? 0 : c->d;
                push_kv(&b, &exact, 'N', tmp_copy(&b, &d, sizeof d), sizeof d, t);
            } else {
                push_kv(&b, &exact, 'T', c->s.s, c->s.n, t);
            }
            v->flags |= VM_NUM;
            break;
        case EBP_C_TRUE:
            if ((tp_ = ebp_vec_push(&true_t)))
                *tp_ = t;
            else
                b.oom = 1;
            break;
        case EBP_C_FALSE:
            if ((tp_ = ebp_vec_push(&false_t)))
                *tp_ = t;
            else
                b.oom = 1;
            break;
        case EBP_C_NULL:
            if ((tp_ = ebp_vec_push(&null_t)))
                *tp_ = t;
            else
                b.oom = 1;
            break;
        case EBP_C_EXISTS:
            if ((tp_ = ebp_vec_push(&exists_t)))
                *tp_ = t;
            else
                b.oom = 1;
            break;
        case EBP_C_ABSENT:
            break; /* handled through the presence entry */
        case EBP_C_PREFIX:
            tb_add_target(&b, &tp, tb_insert(&b, &tp, (const unsigned char *)c->s.s, c->s.n, 0), t);
            v->flags |= VM_STR;
            break;
        case EBP_C_SUFFIX:
            tb_add_target(&b, &ts, tb_insert(&b, &ts, (const unsigned char *)c->s.s, c->s.n, 1), t);
            v->flags |= VM_STR;
            break;
        case EBP_C_PREFIX_EIC:
            tb_add_target(&b, &tpe, tb_insert(&b, &tpe, (const unsigned char *)c->s.s, c->s.n, 0), t);
            v->flags |= VM_STR | VM_FOLD;
            break;
        case EBP_C_SUFFIX_EIC:
            tb_add_target(&b, &tse, tb_insert(&b, &tse, (const unsigned char *)c->s.s, c->s.n, 1), t);
            v->flags |= VM_STR | VM_FOLD;
            break;
        case EBP_C_EIC:
            push_kv(&b, &eic, 'F', c->s.s, c->s.n, t);
            v->flags |= VM_STR | VM_FOLD;
            break;
        case EBP_C_WILDCARD: {
            const unsigned char *pre, *suf;
            size_t np = ebp_glob_prefix(c->glob, &pre), ns = ebp_glob_suffix(c->glob, &suf);
            v->flags |= VM_STR;
            if (!ebp_glob_has_star(c->glob)) {
                /* no star: an exact string */
                push_kv(&b, &exact, 'S', pre, np, t);
            } else if (np) {
                tb_add_wc(&b, &tp, tb_insert(&b, &tp, pre, np, 0), c->glob, t);
            } else if (ns) {
                tb_add_wc(&b, &ts, tb_insert(&b, &ts, suf, ns, 1), c->glob, t);
            } else {
                tb_wc *w = ebp_vec_push(&unanch);
                if (!w)
                    b.oom = 1;
                else {
                    w->g = c->glob;
                    w->t = t;
                }
                v->flags |= VM_WC;
            }
            if (b.oom == 2) { /* too many on one node: keep it unanchored */
                b.oom = 0;
                tb_wc *w = ebp_vec_push(&unanch);
                if (!w)
                    b.oom = 1;
                else {
                    w->g = c->glob;
                    w->t = t;
                }
                v->flags |= VM_WC;
            }
            break;
        }
        case EBP_C_RANGE: {
            range_entry *r = ebp_vec_push(&ranges);
            if (!r) {
                b.oom = 1;
                break;
            }
            r->lo = c->lo;
            r->hi = c->hi;
            r->has_lo = c->has_lo;
            r->has_hi = c->has_hi;
            r->lo_open = c->lo_open;
            r->hi_open = c->hi_open;
            r->t = add_targets(&b, &t, 1);
            v->flags |= VM_NUM;
            break;
        }
        case EBP_C_CIDR: {
            cidr_entry *e = ebp_vec_push(&cidrs);
            if (!e) {
                b.oom = 1;
                break;
            }
            e->c = c->cidr;
            e->t = add_targets(&b, &t, 1);
            v->flags |= VM_IP | VM_STR;
            break;
        }
        case EBP_C_AB_STR:
        case EBP_C_AB_NUM:
        case EBP_C_AB_EIC:
        case EBP_C_AB_PREFIX:
        case EBP_C_AB_SUFFIX:
        case EBP_C_AB_WILDCARD: {
            ab_entry *e = ebp_vec_push(&abs);
            if (!e) {
                b.oom = 1;
                break;
            }
            e->cond = c;
            e->t = add_targets(&b, &t, 1);
            if (c->kind == EBP_C_AB_NUM)
                v->flags |= VM_NUM;
            if (c->kind == EBP_C_AB_EIC)
                v->flags |= VM_FOLD;
            v->flags |= VM_STR;
            break;
        }
        }
    }

    if (!b.oom) {
        v->exists = add_targets(&b, exists_t.items, exists_t.len);
        v->presence = add_targets(&b, presence_t.items, presence_t.len);
        v->t_true = add_targets(&b, true_t.items, true_t.len);
        v->t_false = add_targets(&b, false_t.items, false_t.len);
        v->t_null = add_targets(&b, null_t.items, null_t.len);
        hmap_build(&b, &v->exact, exact.items, exact.len, &keybuf);
        hmap_build(&b, &v->eic, eic.items, eic.len, &keybuf);
        tb_flatten(&b, &tp, &v->prefix, &wcs);
        tb_flatten(&b, &ts, &v->suffix, &wcs);
        tb_flatten(&b, &tpe, &v->prefix_eic, &wcs);
        tb_flatten(&b, &tse, &v->suffix_eic, &wcs);
        v->wc_unanchored_off = (uint32_t)wcs.len;
        v->nwc_unanchored = (uint32_t)unanch.len;
        for (size_t i = 0; i < unanch.len && !b.oom; i++) {
            tb_wc *w = &EBP_VEC_AT(&unanch, tb_wc, i);
            wc_entry *e = ebp_vec_push(&wcs);
            if (!e) {
                b.oom = 1;
                break;
            }
            e->g = w->g;
            e->t = add_targets(&b, &w->t, 1);
        }
    }
    if (!b.oom) {
        v->nranges = (uint32_t)ranges.len;
        v->ranges = ebp_arena_alloc(&v->arena, (ranges.len ? ranges.len : 1) * sizeof(range_entry));
        v->ncidrs = (uint32_t)cidrs.len;
        v->cidrs = ebp_arena_alloc(&v->arena, (cidrs.len ? cidrs.len : 1) * sizeof(cidr_entry));
        v->nabs = (uint32_t)abs.len;
        v->abs = ebp_arena_alloc(&v->arena, (abs.len ? abs.len : 1) * sizeof(ab_entry));
        v->wcs = ebp_arena_alloc(&v->arena, (wcs.len ? wcs.len : 1) * sizeof(wc_entry));
        char *keys = ebp_arena_alloc(&v->arena, keybuf.len + 1);
        if (!v->ranges || !v->cidrs || !v->abs || !v->wcs || !keys) {
            b.oom = 1;
        } else {
            if (ranges.len)
                memcpy(v->ranges, ranges.items, ranges.len * sizeof(range_entry));
            if (cidrs.len)
                memcpy(v->cidrs, cidrs.items, cidrs.len * sizeof(cidr_entry));
            if (abs.len)
                memcpy(v->abs, abs.items, abs.len * sizeof(ab_entry));
            if (wcs.len)
                memcpy(v->wcs, wcs.items, wcs.len * sizeof(wc_entry));
            if (keybuf.len)
                memcpy(keys, keybuf.items, keybuf.len);
            v->keys = keys;
            if (v->nranges > RANGE_LINEAR_MAX)
                build_range_index(&b, v, NULL);
        }
    }
    if (!b.oom) {
        v->targets = ebp_arena_alloc(&v->arena, (b.targets.len ? b.targets.len : 1) * sizeof(ebp_target));
        if (!v->targets)
            b.oom = 1;
        else if (b.targets.len)
            memcpy(v->targets, b.targets.items, b.targets.len * sizeof(ebp_target));
    }
    v->mem = v->arena.total + sizeof *v + npreds * sizeof *preds;

    tb_free(&tp);
    tb_free(&ts);
    tb_free(&tpe);
    tb_free(&tse);
    ebp_vec_free(&exact);
    ebp_vec_free(&eic);
    ebp_vec_free(&keybuf);
    ebp_vec_free(&wcs);
    ebp_vec_free(&ranges);
    ebp_vec_free(&cidrs);
    ebp_vec_free(&abs);
    ebp_vec_free(&unanch);
    ebp_vec_free(&exists_t);
    ebp_vec_free(&presence_t);
    ebp_vec_free(&true_t);
    ebp_vec_free(&false_t);
    ebp_vec_free(&null_t);
    ebp_vec_free(&b.targets);
    ebp_arena_free(&b.tmp);
    if (b.oom) {
        free_vm(v);
        return NULL;
    }
    return v;
}

void ebp_vm_release(vm *v)
{
    if (v && __atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free_vm(v);
}
