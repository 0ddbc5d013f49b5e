/* Building the per-path value matcher (vm) from its predicates.
 * Evaluation is in match.c, next to the event reader, so it inlines. */
#include "casefold.h"
#include "machine.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    vm *v;
    ebp_vec targets; /* ebp_target */
    ebp_vec groups;  /* tgroup */
    ebp_arena tmp;
    int oom;
} builder;

static int by_hint(const void *a, const void *b)
{
    const ebp_target *x = a, *y = b;
    if (x->hint != y->hint)
        return x->hint < y->hint ? -1 : 1;
    return x->sr < y->sr ? -1 : x->sr > y->sr;
}

/* A unit whose targets mostly wait for a hint: direct targets first, then
 * the hinted ones sorted by hint, one group per hint. */
static int make_grouped(builder *b, unit *u, const vm_input *in)
{
    size_t base = b->targets.len, n = in->ntargets;
    if (ebp_vec_reserve(&b->targets, base + n))
        return -1;
    ebp_target *t = (ebp_target *)b->targets.items + base;
    size_t nd = 0, nh = n;
    for (size_t i = 0; i < n; i++)
        if (IS_PRED_HINT(in->targets[i].hint))
            t[--nh] = in->targets[i];
        else
            t[nd++] = in->targets[i];
    qsort(t + nd, n - nd, sizeof *t, by_hint);
    b->targets.len = base + n;
    u->grp = 1;
    u->t.g.off = (uint32_t)base;
    u->t.g.ndirect = (uint32_t)nd;
    u->t.g.goff = (uint32_t)b->groups.len;
    for (size_t i = nd; i < n;) {
        size_t j = i;
        while (j < n && t[j].hint == t[i].hint)
            j++;
        tgroup *g = ebp_vec_push(&b->groups);
        if (!g)
            return -1;
        *g = (tgroup){t[i].hint, (uint32_t)(base + i), (uint32_t)(j - i)};
        i = j;
    }
    u->t.g.ngroups = (uint32_t)b->groups.len - u->t.g.goff;
    return 0;
}

static unit make_unit(builder *b, const vm_input *in)
{
    unit u;
    memset(&u, 0, sizeof u);
    u.pred = in->pred;
    u.mark = (uint16_t)in->mark;
    u.n = in->ntargets;
    size_t hinted = 0;
    if (in->ntargets >= GROUP_MIN)
        for (uint32_t i = 0; i < in->ntargets; i++)
            hinted += IS_PRED_HINT(in->targets[i].hint);
    if (hinted >= GROUP_MIN / 2) {
        if (make_grouped(b, &u, in)) {
            b->oom = 1;
            u.n = 0;
            u.grp = 0;
        }
    } else if (in->ntargets == 1) {
        u.t.one = in->targets[0];
    } else if (in->ntargets > 1) {
        u.t.off = (uint32_t)b->targets.len;
        if (ebp_vec_reserve(&b->targets, b->targets.len + in->ntargets)) {
            b->oom = 1;
            u.n = 0;
            return u;
        }
        memcpy((ebp_target *)b->targets.items + b->targets.len, in->targets, in->ntargets * sizeof(ebp_target));
        b->targets.len += in->ntargets;
    }
    return u;
}

/* A wildcard entry for glob g, with wc_match's fast form when g has one. */
static void wc_init(wc_entry *w, const ebp_glob *g, unit u)
{
    const unsigned char *p, *q;
    size_t pl = ebp_glob_prefix(g, &p), sl = ebp_glob_suffix(g, &q);
    memset(w, 0, sizeof *w);
    w->g = g;
    w->u = u;
    if (ebp_glob_stars(g) == 1 && pl <= 8 && sl <= 8) {
        w->simple = 1;
        w->plen = (uint8_t)pl;
        w->slen = (uint8_t)sl;
        w->pfx = ebp_load_head(p, pl);
        w->sfx = ebp_load_head(q, sl);
    }
}

/* ---- hash maps ---------------------------------------------------------------- */
typedef struct {
    uint32_t tag;
    const unsigned char *k;
    uint32_t n;
    const vm_input *in;
} hkey;

static void hmap_build(builder *b, hmap *h, const hkey *items, size_t n, ebp_vec *keybuf)
{
    h->slots = NULL;
    h->mask = 0;
    h->count = 0;
    if (!n || b->oom)
        return;
    uint32_t size = 8;
    while (size < n * 2)
        size *= 2;
    h->slots = ebp_arena_alloc(&b->v->arena, size * sizeof *h->slots);
    h->tags = ebp_arena_alloc(&b->v->arena, size);
    if (!h->slots || !h->tags) {
        b->oom = 1;
        return;
    }
    memset(h->tags, 0, size);
    for (uint32_t i = 0; i < size; i++)
        h->slots[i].klen = UINT32_MAX;
    h->mask = size - 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t koff = (uint32_t)keybuf->len;
        if (ebp_vec_reserve(keybuf, keybuf->len + items[i].n + 1)) {
            b->oom = 1;
            return;
        }
        if (items[i].n)
            memcpy((char *)keybuf->items + keybuf->len, items[i].k, items[i].n);
        keybuf->len += items[i].n;
        uint64_t hv = ebp_hash_bytes(items[i].k, items[i].n, items[i].tag);
        uint32_t s = (uint32_t)hv & h->mask;
        while (h->slots[s].klen != UINT32_MAX)
            s = (s + 1) & h->mask;
        h->tags[s] = (uint8_t)(0x80 | (hv >> 57));
        hm_entry *e = &h->slots[s];
        e->hash = (uint32_t)hv;
        e->k8 = ebp_load_head(items[i].k, items[i].n);
        e->koff = koff;
        e->klen = items[i].n;
        e->tag = items[i].tag;
        e->u = make_unit(b, items[i].in);
        h->count++;
    }
}

/* ---- tries, built from sorted strings without recursion --------------------------- */
typedef struct {
    const unsigned char *s; /* already reversed for suffix tries */
    uint32_t n;
    const vm_input *in;
    const ebp_glob *g; /* anchored wildcard, else NULL (a prefix/suffix predicate) */
} titem;

static int titem_cmp(const void *a, const void *b)
{
    const titem *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = m ? memcmp(x->s, y->s, m) : 0;
    if (c)
        return c;
    if (x->n != y->n)
        return x->n < y->n ? -1 : 1;
    return (x->g != NULL) - (y->g != NULL); /* the plain predicate first */
}

typedef struct {
    uint32_t node, lo, hi, depth;
} ttask;

static void trie_build(builder *b, trie *t, titem *items, size_t n, ebp_vec *wcs)
{
    t->nodes = NULL;
    t->edges = NULL;
    t->nnodes = 0;
    if (!n || b->oom)
        return;
    qsort(items, n, sizeof *items, titem_cmp);
    size_t maxnodes = 1;
    for (size_t i = 0; i < n; i++)
        maxnodes += items[i].n;
    t->nodes = ebp_arena_alloc(&b->v->arena, maxnodes * sizeof(trie_node));
    t->edges = ebp_arena_alloc(&b->v->arena, maxnodes * sizeof(trie_edge));
    ttask *stack = malloc(maxnodes * sizeof *stack);
    if (!t->nodes || !t->edges || !stack) {
        free(stack);
        b->oom = 1;
        return;
    }
    uint32_t nn = 1, ne = 0;
    size_t sp = 0;
    stack[sp++] = (ttask){0, 0, (uint32_t)n, 0};
    while (sp && !b->oom) {
        ttask k = stack[--sp];
        trie_node *nd = &t->nodes[k.node];
        memset(nd, 0, sizeof *nd);
        uint32_t i = k.lo;
        nd->wc_off = (uint32_t)wcs->len;
        while (i < k.hi && items[i].n == k.depth) {
            if (!items[i].g) {
                nd->has_u = 1;
                nd->u = make_unit(b, items[i].in);
            } else if (nd->nwc < 65535) {
                wc_entry *w = ebp_vec_push(wcs);
                if (!w) {
                    b->oom = 1;
                    break;
                }
                wc_init(w, items[i].g, make_unit(b, items[i].in));
                nd->nwc++;
            } /* else: cannot happen in practice (65535 identical anchors) */
            i++;
        }
        /* children, one per distinct next byte */
        uint32_t ngroups = 0;
        for (uint32_t j = i; j < k.hi; ngroups++) {
            unsigned char c = items[j].s[k.depth];
            while (j < k.hi && items[j].s[k.depth] == c)
                j++;
        }
        nd->first_edge = ne;
        nd->nedges = (uint16_t)ngroups;
        uint32_t first_child = nn;
        nn += ngroups;
        ne += ngroups;
        uint32_t g = 0;
        for (uint32_t j = i; j < k.hi; g++) {
            unsigned char c = items[j].s[k.depth];
            uint32_t a = j;
            while (j < k.hi && items[j].s[k.depth] == c)
                j++;
            t->edges[nd->first_edge + g] = (trie_edge){c, first_child + g};
            stack[sp++] = (ttask){first_child + g, a, j, k.depth + 1};
        }
    }
    free(stack);
    t->nnodes = nn;
}

/* ---- ranges ------------------------------------------------------------------------- */
static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}


static const range_entry *sort_ranges;

static int lower_cmp(const void *a, const void *b)
{
    const range_entry *x = &sort_ranges[*(const uint32_t *)a], *y = &sort_ranges[*(const uint32_t *)b];
    if (x->lo != y->lo)
        return x->lo < y->lo ? -1 : 1;
    return (int)x->lo_open - (int)y->lo_open;
}

static int upper_cmp(const void *a, const void *b)
{
    const range_entry *x = &sort_ranges[*(const uint32_t *)a], *y = &sort_ranges[*(const uint32_t *)b];
    if (x->hi != y->hi)
        return x->hi > y->hi ? -1 : 1;
    return (int)x->hi_open - (int)y->hi_open;
}

static int lo_cmp_idx(const void *a, const void *b)
{
    const range_entry *x = &sort_ranges[*(const uint32_t *)a], *y = &sort_ranges[*(const uint32_t *)b];
    return (x->lo > y->lo) - (x->lo < y->lo);
}

static int hi_cmp_idx_desc(const void *a, const void *b)
{
    const range_entry *x = &sort_ranges[*(const uint32_t *)a], *y = &sort_ranges[*(const uint32_t *)b];
    return (x->hi < y->hi) - (x->hi > y->hi);
}

typedef struct {
    ebp_vec nodes; /* itnode */
    ebp_vec items; /* uint32_t */
    int oom;
} itb;

/* Build the subtree for ranges idx[0..n) (scratch may be reordered);
 * returns its node index. */
static uint32_t it_build(itb *t, const range_entry *rs, uint32_t *idx, uint32_t n, double *tmp)
{
    if (!n || t->oom)
        return UINT32_MAX;
    /* center: median of all endpoints */
    for (uint32_t i = 0; i < n; i++) {
        tmp[2 * i] = rs[idx[i]].lo;
        tmp[2 * i + 1] = rs[idx[i]].hi;
    }
    qsort(tmp, 2 * (size_t)n, sizeof *tmp, dbl_cmp);
    double c = tmp[n];
    /* partition: below | containing | above */
    uint32_t nb = 0, na = 0, nc = 0;
    uint32_t *below = malloc(n * sizeof *below), *above = malloc(n * sizeof *above), *mid = malloc(n * sizeof *mid);
    if (!below || !above || !mid) {
        free(below);
        free(above);
        free(mid);
        t->oom = 1;
        return UINT32_MAX;
    }
    for (uint32_t i = 0; i < n; i++) {
        const range_entry *r = &rs[idx[i]];
        if (r->hi < c)
            below[nb++] = idx[i];
        else if (r->lo > c)
            above[na++] = idx[i];
        else
            mid[nc++] = idx[i];
    }
    itnode *nd = ebp_vec_push(&t->nodes);
    uint32_t id = (uint32_t)(t->nodes.len - 1);
    if (!nd || ebp_vec_reserve(&t->items, t->items.len + 2 * (size_t)nc)) {
        t->oom = 1;
    } else {
        nd->center = c;
        nd->off = (uint32_t)t->items.len;
        nd->n = nc;
        uint32_t *it = (uint32_t *)t->items.items + t->items.len;
        memcpy(it, mid, nc * sizeof *mid);
        memcpy(it + nc, mid, nc * sizeof *mid);
        qsort(it, nc, sizeof *it, lo_cmp_idx);
        qsort(it + nc, nc, sizeof *it, hi_cmp_idx_desc);
        t->items.len += 2 * (size_t)nc;
        /* children (nd may move when the vector grows: write through the index) */
        uint32_t l = it_build(t, rs, below, nb, tmp);
        uint32_t r = it_build(t, rs, above, na, tmp);
        if (!t->oom) {
            ((itnode *)t->nodes.items)[id].left = l;
            ((itnode *)t->nodes.items)[id].right = r;
        }
    }
    free(below);
    free(above);
    free(mid);
    return id;
}

static uint32_t *arena_u32(builder *b, size_t n)
{
    uint32_t *p = ebp_arena_alloc(&b->v->arena, (n ? n : 1) * sizeof(uint32_t));
    if (!p)
        b->oom = 1;
    return p;
}

static void build_range_index(builder *b, vm *v)
{
    uint32_t n = v->nranges, nl = 0, nu = 0, nt = 0;
    for (uint32_t i = 0; i < n; i++) {
        const range_entry *r = &v->ranges[i];
        if (r->has_lo && r->has_hi)
            nt++;
        else if (r->has_lo)
            nl++;
        else
            nu++;
    }
    v->lower_idx = arena_u32(b, nl);
    v->upper_idx = arena_u32(b, nu);
    uint32_t *two = malloc((nt ? nt : 1) * sizeof *two);
    double *tmp = malloc((2 * (size_t)nt + 1) * sizeof *tmp);
    if (b->oom || !two || !tmp) {
        free(two);
        free(tmp);
        b->oom = 1;
        return;
    }
    nt = 0;
    for (uint32_t i = 0; i < n; i++) {
        const range_entry *r = &v->ranges[i];
        if (r->has_lo && r->has_hi)
            two[nt++] = i;
        else if (r->has_lo)
            v->lower_idx[v->nlower++] = i;
        else
            v->upper_idx[v->nupper++] = i;
    }
    sort_ranges = v->ranges; /* builders run under the machine's writer lock */
    if (v->nlower > 1)
        qsort(v->lower_idx, v->nlower, sizeof(uint32_t), lower_cmp);
    if (v->nupper > 1)
        qsort(v->upper_idx, v->nupper, sizeof(uint32_t), upper_cmp);
    itb t;
    ebp_vec_init(&t.nodes, sizeof(itnode));
    ebp_vec_init(&t.items, sizeof(uint32_t));
    t.oom = 0;
    it_build(&t, v->ranges, two, nt, tmp);
    if (t.oom) {
        b->oom = 1;
    } else {
        v->nitree = (uint32_t)t.nodes.len;
        v->itree = ebp_arena_alloc(&v->arena, (t.nodes.len ? t.nodes.len : 1) * sizeof(itnode));
        v->it_items = arena_u32(b, t.items.len);
        if (!v->itree)
            b->oom = 1;
        else if (!b->oom) {
            if (t.nodes.len)
                memcpy(v->itree, t.nodes.items, t.nodes.len * sizeof(itnode));
            if (t.items.len)
                memcpy(v->it_items, t.items.items, t.items.len * sizeof(uint32_t));
        }
    }
    ebp_vec_free(&t.nodes);
    ebp_vec_free(&t.items);
    free(two);
    free(tmp);
}

/* ---- build ------------------------------------------------------------------------ */
static void *copy_vec(builder *b, const ebp_vec *src)
{
    void *p = ebp_arena_alloc(&b->v->arena, src->len ? src->len * src->isz : 1);
    if (!p)
        b->oom = 1;
    else if (src->len)
        memcpy(p, src->items, src->len * src->isz);
    return p;
}

static void free_vm(vm *v)
{
    ebp_vm_release(v->kvm);
    for (uint32_t i = 0; i < v->npats; i++)
        eb_pattern_free((eb_pattern *)v->pats[i]);
    free(v->pats);
    ebp_arena_free(&v->arena);
    free(v);
}

static void push_hkey(builder *b, ebp_vec *vec, uint32_t tag, const void *k, size_t n, const vm_input *in)
{
    hkey *e = ebp_vec_push(vec);
    if (!e) {
        b->oom = 1;
        return;
    }
    *e = (hkey){tag, k, (uint32_t)n, in};
}

static void push_titem(builder *b, ebp_vec *vec, const unsigned char *s, size_t n, int reverse, const vm_input *in,
                       const ebp_glob *g)
{
    titem *e = ebp_vec_push(vec);
    if (!e) {
        b->oom = 1;
        return;
    }
    if (reverse && n) {
        unsigned char *r = ebp_arena_alloc(&b->tmp, n);
        if (!r) {
            b->oom = 1;
            return;
        }
        for (size_t i = 0; i < n; i++)
            r[i] = s[n - 1 - i];
        s = r;
    }
    *e = (titem){s, (uint32_t)n, in, g};
}

/* If trie vector `t` is large (AFFIX_MIN_ITEMS) and its plain (not
 * wildcard) items have at most AFFIX_MAX_LENGTHS distinct lengths, move them to `affix` (keyed by the
 * condition's own bytes, not reversed) and note the lengths in the vm. */
static void affix_split(builder *b, vm *v, int kind, ebp_vec *t, ebp_vec *affix)
{
    uint32_t lens[AFFIX_MAX_LENGTHS];
    uint32_t nl = 0;
    for (size_t i = 0; i < t->len; i++) {
        const titem *it = &EBP_VEC_AT(t, titem, i);
        if (it->g)
            continue;
        uint32_t k = 0;
        while (k < nl && lens[k] != it->n)
            k++;
        if (k < nl)
            continue;
        if (nl == AFFIX_MAX_LENGTHS)
            return; /* too many lengths: the trie is better */
        lens[nl++] = it->n;
    }
    if (!nl || t->len < AFFIX_MIN_ITEMS)
        return; /* a small trie stays in cache: walking it is cheaper */
    size_t keep = 0;
    for (size_t i = 0; i < t->len; i++) {
        const titem *it = &EBP_VEC_AT(t, titem, i);
        if (it->g) {
            EBP_VEC_AT(t, titem, keep++) = *it;
            continue;
        }
        const ebp_cond *c = it->in->cond;
        push_hkey(b, affix, (uint32_t)(unsigned char)AFFIX_TAGS[kind], (const unsigned char *)c->s.s, c->s.n, it->in);
    }
    t->len = keep;
    /* ascending, so a lookup can stop at the first length beyond the value */
    for (uint32_t i = 1; i < nl; i++)
        for (uint32_t j = i; j > 0 && lens[j - 1] > lens[j]; j--) {
            uint32_t x = lens[j];
            lens[j] = lens[j - 1];
            lens[j - 1] = x;
        }
    memcpy(v->affix_len[kind], lens, nl * sizeof *lens);
    v->affix_nlen[kind] = (uint8_t)nl;
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

unsigned ebp_vm_defer_min = DEFER_MIN_ITEMS;

vm *ebp_vm_build(const vm_input *in, uint32_t n, unsigned flags)
{
    vm *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    if (flags & VM_BOX)
        v->flags |= VM_BOX | VM_NUM;
    v->refs = 1;
    ebp_arena_init(&v->arena);
    builder b = {.v = v};
    ebp_vec_init(&b.targets, sizeof(ebp_target));
    ebp_vec_init(&b.groups, sizeof(tgroup));
    ebp_arena_init(&b.tmp);
    ebp_vec exact, eic, keybuf, wcs, ranges, cidrs, abs, tp, ts, tpe, tse, pats;
    ebp_vec_init(&exact, sizeof(hkey));
    ebp_vec_init(&eic, sizeof(hkey));
    ebp_vec_init(&keybuf, 1);
    ebp_vec_init(&wcs, sizeof(wc_entry));
    ebp_vec_init(&ranges, sizeof(range_entry));
    ebp_vec_init(&cidrs, sizeof(cidr_entry));
    ebp_vec_init(&abs, sizeof(ab_entry));
    ebp_vec_init(&tp, sizeof(titem));
    ebp_vec_init(&ts, sizeof(titem));
    ebp_vec_init(&tpe, sizeof(titem));
    ebp_vec_init(&tse, sizeof(titem));
    ebp_vec_init(&pats, sizeof(const vm_input *));
    ebp_vec unanch;
    ebp_vec_init(&unanch, sizeof(const vm_input *));

    for (uint32_t i = 0; i < n && !b.oom; i++) {
        const vm_input *x = &in[i];
        const ebp_cond *c = x->cond;
        switch (c->kind) {
        case EBP_C_STR:
            push_hkey(&b, &exact, 'S', c->s.s, c->s.n, x);
            v->flags |= VM_STR;
            break;
        case EBP_C_IP: {
            unsigned char k[17];
            k[0] = c->ip.family;
            memcpy(k + 1, c->ip.addr, 16);
            push_hkey(&b, &exact, 'I', tmp_copy(&b, k, 17), 17, x);
            v->flags |= VM_IP | VM_STR;
            break;
        }
        case EBP_C_NUM:
            if (c->finite) {
                double d = c->d == 0 ? 0 : c->d;
                push_hkey(&b, &exact, 'N', tmp_copy(&b, &d, sizeof d), sizeof d, x);
            } else {
                push_hkey(&b, &exact, 'T', c->s.s, c->s.n, x);
            }
            v->flags |= VM_NUM;
            break;
        case EBP_C_TRUE:
            v->has_true = 1;
            v->u_true = make_unit(&b, x);
            break;
        case EBP_C_FALSE:
            v->has_false = 1;
            v->u_false = make_unit(&b, x);
            break;
        case EBP_C_NULL:
            v->has_null = 1;
            v->u_null = make_unit(&b, x);
            break;
        case EBP_C_EXISTS:
            v->has_exists = 1;
            v->u_exists = make_unit(&b, x);
            break;
        case EBP_C_ABSENT:
            break; /* not a predicate: presence is tracked per path */
        case EBP_C_PREFIX:
            push_titem(&b, &tp, (const unsigned char *)c->s.s, c->s.n, 0, x, NULL);
            v->flags |= VM_STR;
            break;
        case EBP_C_SUFFIX:
            push_titem(&b, &ts, (const unsigned char *)c->s.s, c->s.n, 1, x, NULL);
            v->flags |= VM_STR;
            break;
        case EBP_C_PREFIX_EIC:
            push_titem(&b, &tpe, (const unsigned char *)c->s.s, c->s.n, 0, x, NULL);
            v->flags |= VM_STR | VM_FOLD;
            break;
        case EBP_C_SUFFIX_EIC:
            push_titem(&b, &tse, (const unsigned char *)c->s.s, c->s.n, 1, x, NULL);
            v->flags |= VM_STR | VM_FOLD;
            break;
        case EBP_C_EIC:
            push_hkey(&b, &eic, 'F', c->s.s, c->s.n, x);
            v->flags |= VM_STR | VM_FOLD;
            break;
        case EBP_C_WILDCARD: {
            const unsigned char *pre, *suf;
            size_t np = ebp_glob_prefix(c->glob, &pre), ns = ebp_glob_suffix(c->glob, &suf);
            v->flags |= VM_STR;
            if (!ebp_glob_has_star(c->glob)) {
                push_hkey(&b, &exact, 'S', pre, np, x); /* no star: an exact string */
                break;
            }
            const vm_input **pp = ebp_vec_push(&pats);
            if (!pp) {
                b.oom = 1;
                break;
            }
            *pp = x;
            if (np) {
                push_titem(&b, &tp, pre, np, 0, x, c->glob);
            } else if (ns) {
                push_titem(&b, &ts, suf, ns, 1, x, c->glob);
            } else {
                const vm_input **up = ebp_vec_push(&unanch);
                if (!up)
                    b.oom = 1;
                else
                    *up = x;
            }
            break;
        }
        case EBP_C_RANGE: {
            range_entry *r = ebp_vec_push(&ranges);
            if (!r) {
                b.oom = 1;
                break;
            }
            *r = (range_entry){c->lo, c->hi, c->has_lo, c->has_hi, c->lo_open, c->hi_open, make_unit(&b, x)};
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
            e->u = make_unit(&b, x);
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
            const vm_input **pp = ebp_vec_push(&pats);
            if (!e || !pp) {
                b.oom = 1;
                break;
            }
            *pp = x;
            e->cond = c;
            e->u = make_unit(&b, x);
            if (c->kind == EBP_C_AB_NUM)
                v->flags |= VM_NUM;
            if (c->kind == EBP_C_AB_EIC)
                v->flags |= VM_FOLD;
            v->flags |= VM_STR;
            break;
        }
        }
    }

    /* plain prefixes/suffixes of few lengths: out of the tries, into affix */
    ebp_vec *tv[4] = {&tp, &ts, &tpe, &tse};
    ebp_vec affix;
    ebp_vec_init(&affix, sizeof(hkey));
    for (int k = 0; k < 4 && !b.oom; k++)
        affix_split(&b, v, k, tv[k], &affix);
    hmap_build(&b, &v->affix, affix.items, affix.len, &keybuf);
    ebp_vec_free(&affix);
    hmap_build(&b, &v->exact, exact.items, exact.len, &keybuf);
    hmap_build(&b, &v->eic, eic.items, eic.len, &keybuf);
    if ((size_t)v->exact.count + v->eic.count + v->affix.count >= ebp_vm_defer_min)
        v->flags |= VM_DEFER;
    trie_build(&b, &v->prefix, tp.items, tp.len, &wcs);
    trie_build(&b, &v->suffix, ts.items, ts.len, &wcs);
    trie_build(&b, &v->prefix_eic, tpe.items, tpe.len, &wcs);
    trie_build(&b, &v->suffix_eic, tse.items, tse.len, &wcs);
    v->wc_unanchored_off = (uint32_t)wcs.len;
    v->nwc_unanchored = (uint32_t)unanch.len;
    for (size_t i = 0; i < unanch.len && !b.oom; i++) {
        const vm_input *x = EBP_VEC_AT(&unanch, const vm_input *, i);
        wc_entry *e = ebp_vec_push(&wcs);
        if (!e) {
            b.oom = 1;
            break;
        }
        wc_init(e, x->cond->glob, make_unit(&b, x));
    }
    v->nranges = (uint32_t)ranges.len;
    v->ranges = copy_vec(&b, &ranges);
    v->ncidrs = (uint32_t)cidrs.len;
    v->cidrs = copy_vec(&b, &cidrs);
    v->nabs = (uint32_t)abs.len;
    v->abs = copy_vec(&b, &abs);
    v->wcs = copy_vec(&b, &wcs);
    v->keys = copy_vec(&b, &keybuf);
    if (!b.oom && v->nranges > RANGE_LINEAR_MAX)
        build_range_index(&b, v);
    v->targets = copy_vec(&b, &b.targets);
    v->groups = copy_vec(&b, &b.groups);
    v->sops = (v->has_exists ? SO_EXISTS : 0) | (v->exact.count ? SO_EXACT : 0) | (v->flags & VM_IP ? SO_IP : 0) |
              (v->prefix.nnodes ? SO_PREFIX : 0) | (v->suffix.nnodes ? SO_SUFFIX : 0) |
              (v->affix.count ? SO_AFFIX : 0) | (v->nwc_unanchored ? SO_WCU : 0) | (v->ncidrs ? SO_CIDR : 0) |
              (v->flags & VM_FOLD ? SO_FOLD : 0) | (v->eic.count ? SO_EIC : 0) |
              (v->prefix_eic.nnodes ? SO_PREFIX_EIC : 0) | (v->suffix_eic.nnodes ? SO_SUFFIX_EIC : 0) |
              (v->nabs ? SO_ABS : 0);
    if (!(v->flags & VM_STR))
        v->sops &= SO_EXISTS;
    /* keep the patterns alive whose conditions (globs, anything-but sets) we point into */
    if (!b.oom && pats.len) {
        v->pats = malloc(pats.len * sizeof *v->pats);
        if (!v->pats) {
            b.oom = 1;
        } else {
            for (size_t i = 0; i < pats.len; i++) {
                const vm_input *x = EBP_VEC_AT(&pats, const vm_input *, i);
                v->pats[i] = x->pat;
                ebp_pattern_ref(x->pat);
            }
            v->npats = (uint32_t)pats.len;
        }
    }
    v->mem = v->arena.total + sizeof *v + v->npats * sizeof(void *);

    ebp_vec_free(&exact);
    ebp_vec_free(&eic);
    ebp_vec_free(&keybuf);
    ebp_vec_free(&wcs);
    ebp_vec_free(&ranges);
    ebp_vec_free(&cidrs);
    ebp_vec_free(&abs);
    ebp_vec_free(&tp);
    ebp_vec_free(&ts);
    ebp_vec_free(&tpe);
    ebp_vec_free(&tse);
    ebp_vec_free(&pats);
    ebp_vec_free(&unanch);
    ebp_vec_free(&b.targets);
    ebp_vec_free(&b.groups);
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
