/* Matching one event against a snapshot: the event reader (reader_impl.h),
 * the per-path value matchers, and the sub-rule bookkeeping.
 *
 * Pass 1 reads the event once, sets per-sub-rule bitsets (which fields have
 * a value, at top level or inside arrays) and collects candidates.  Only a
 * candidate whose fields come from several array elements (or that has an
 * "exists: false" field seen only inside arrays) needs the array-consistency
 * check; then pass 2 re-reads the event recording where each value sat
 * (array ids and indices) and solves the check exactly (dp_solve). */
#include "box.h"
#include "casefold.h"
#include "keyidx.h"
#include "match.h"
#include "num.h"

#include <stdlib.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* ---- character classes ------------------------------------------------------ */
static unsigned char str_special_v[256]; /* '"', '\\', < 0x20, >= 0x80 */
static unsigned char scalar_end[256];    /* ',', '}', ']', whitespace */
static unsigned char num_char[256];      /* 0-9 + - . e E */

static void init_tables(void)
{
    for (int c = 0; c < 256; c++) {
        str_special_v[c] = (unsigned char)(c == '"' || c == '\\' || c < 0x20 || c >= 0x80);
        scalar_end[c] = (unsigned char)(c == ',' || c == '}' || c == ']' || c == ' ' || c == '\n' || c == '\r' ||
                                        c == '\t');
        num_char[c] = (unsigned char)((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.' || c == 'e' ||
                                      c == 'E');
    }
}

static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

/* ---- SIMD scanning (SSE2 is baseline on x86-64; scalar elsewhere) ----------- */

/* First byte in [p, end) that is '"' or '\\', or end. */
static inline const unsigned char *find_qb(const unsigned char *p, const unsigned char *end)
{
#ifdef __SSE2__
    const __m128i q = _mm_set1_epi8('"'), b = _mm_set1_epi8('\\');
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        int m = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(x, q), _mm_cmpeq_epi8(x, b)));
        if (m)
            return p + __builtin_ctz((unsigned)m);
        p += 16;
    }
#endif
    while (p < end && *p != '"' && *p != '\\')
        p++;
    return p;
}

/* Like find_qb, and *dot tells whether a '.' comes before the stop. */
static inline const unsigned char *find_qb_dot(const unsigned char *p, const unsigned char *end, int *dot)
{
    unsigned seen = 0;
#ifdef __SSE2__
    const __m128i q = _mm_set1_epi8('"'), b = _mm_set1_epi8('\\'), d = _mm_set1_epi8('.');
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(x, q), _mm_cmpeq_epi8(x, b)));
        unsigned dm = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, d));
        if (m) {
            unsigned at = (unsigned)__builtin_ctz(m);
            *dot = seen || (dm & ((1u << at) - 1)) != 0;
            return p + at;
        }
        seen |= dm;
        p += 16;
    }
#endif
    while (p < end && *p != '"' && *p != '\\') {
        seen |= *p == '.';
        p++;
    }
    *dot = seen != 0;
    return p;
}

/* First byte in [p, end) that is '"', '\\', a control byte or >= 0x80. */
static inline const unsigned char *find_qb_strict(const unsigned char *p, const unsigned char *end)
{
#ifdef __SSE2__
    const __m128i q = _mm_set1_epi8('"'), b = _mm_set1_epi8('\\'), sp = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* signed compare: bytes >= 0x80 are negative, so "< 0x20" catches them too */
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, q), _mm_cmpeq_epi8(x, b)), _mm_cmplt_epi8(x, sp));
        int mm = _mm_movemask_epi8(m);
        if (mm)
            return p + __builtin_ctz((unsigned)mm);
        p += 16;
    }
#endif
    while (p < end && !str_special_v[*p])
        p++;
    return p;
}

/* One byte of the scalar skipper: 1 when the outermost container closes,
 * -1 when nesting goes beyond `room`, else 0. */
static inline int skip_step(unsigned char ch, unsigned *in_str, unsigned *esc, unsigned *depth, unsigned *opened,
                            unsigned room)
{
    if (*esc) {
        *esc = 0;
    } else if (*in_str) {
        if (ch == '\\')
            *esc = 1;
        else if (ch == '"')
            *in_str = 0;
    } else if (ch == '"') {
        *in_str = 1;
    } else if (ch == '{' || ch == '[') {
        (*depth)++;
        if (++*opened > room)
            return -1;
    } else if (ch == '}' || ch == ']') {
        if (*opened)
            (*opened)--;
        if (--*depth == 0)
            return 1;
    }
    return 0;
}

/* Trusting-mode skip of container contents.  p is just inside a container
 * (after its '{' or '['), `depth` levels still open (>= 1).  Returns the
 * position just after the closing bracket that brings depth to 0, or NULL
 * (end of input, or nesting beyond `room` more levels).  Blocks of 16 bytes
 * without backslashes are handled with bit tricks: the quote mask's prefix
 * XOR marks string interiors, so brackets inside strings are ignored. */
static const unsigned char *skip_container(const unsigned char *p, const unsigned char *end, unsigned depth,
                                           unsigned room)
{
    unsigned in_str = 0, esc = 0, opened = 0;
#ifdef __SSE2__
    const __m128i q = _mm_set1_epi8('"'), b = _mm_set1_epi8('\\'), o = _mm_set1_epi8('{'), c = _mm_set1_epi8('}'),
                  lower = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned bs = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, b));
        if (bs || esc) {
            /* scalar over this block */
            for (int i = 0; i < 16; i++) {
                int st = skip_step(p[i], &in_str, &esc, &depth, &opened, room);
                if (st)
                    return st < 0 ? NULL : p + i + 1;
            }
            p += 16;
            continue;
        }
        unsigned qm = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, q));
        unsigned strmask = qm;
        strmask ^= strmask << 1;
        strmask ^= strmask << 2;
        strmask ^= strmask << 4;
        strmask ^= strmask << 8;
        strmask &= 0xFFFF;
        if (in_str)
            strmask ^= 0xFFFF;
        in_str = (in_str ^ (unsigned)__builtin_parity(qm)) & 1;
        __m128i xl = _mm_or_si128(x, lower);
        unsigned op = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(xl, o)) & ~strmask;
        unsigned cl = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(xl, c)) & ~strmask;
        unsigned all = op | cl;
        while (all) {
            unsigned i = (unsigned)__builtin_ctz(all);
            all &= all - 1;
            if (op & (1u << i)) {
                depth++;
                if (++opened > room)
                    return NULL;
            } else {
                if (opened)
                    opened--;
                if (--depth == 0)
                    return p + i + 1;
            }
        }
        p += 16;
    }
#endif
    for (; p < end; p++) {
        int st = skip_step(*p, &in_str, &esc, &depth, &opened, room);
        if (st)
            return st < 0 ? NULL : p + 1;
    }
    return NULL;
}

/* ---- scratch growth ------------------------------------------------------------ */
static int grow(void **buf, size_t *cap, size_t need, size_t isz)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need)
        nc *= 2;
    void *nb = realloc(*buf, nc * isz);
    if (!nb)
        return -1;
    *buf = nb;
    *cap = nc;
    return 0;
}

#define GROW(mt, field, capf, need) grow((void **)&(mt)->field, &(mt)->capf, (need), sizeof *(mt)->field)

static int vstack_set(eb_matcher *mt, size_t lvl, int is_obj)
{
    size_t w = lvl >> 6;
    if (w >= mt->vstack_words) {
        size_t nw = mt->vstack_words ? mt->vstack_words * 2 : 16;
        while (nw <= w)
            nw *= 2;
        uint64_t *ns = realloc(mt->vstack, nw * sizeof *ns);
        if (!ns)
            return -1;
        mt->vstack = ns;
        mt->vstack_words = nw;
    }
    uint64_t bit = (uint64_t)1 << (lvl & 63);
    if (is_obj)
        mt->vstack[w] |= bit;
    else
        mt->vstack[w] &= ~bit;
    return 0;
}

static inline int vstack_get(const eb_matcher *mt, size_t lvl)
{
    return (int)((mt->vstack[lvl >> 6] >> (lvl & 63)) & 1);
}

/* ---- array trail --------------------------------------------------------------- */
static inline int tpush(eb_matcher *mt)
{
    if (GROW(mt, tstack, tstack_cap, 2 * (mt->tdepth + 1)))
        return -1;
    mt->tstack[2 * mt->tdepth] = mt->next_array++;
    mt->tstack[2 * mt->tdepth + 1] = 0;
    mt->tdepth++;
    mt->trail_valid = 0;
    return 0;
}

static inline void tset(eb_matcher *mt, uint32_t idx)
{
    mt->tstack[2 * mt->tdepth - 1] = idx;
    mt->trail_valid = 0;
}

static inline void tpop(eb_matcher *mt)
{
    mt->tdepth--;
    mt->trail_valid = 0;
}

/* ---- strings ---------------------------------------------------------------------- */

/* Decode the escapes of s[..q) into mt->sbuf.  Tolerant (trusting mode may
 * pass anything): a bad escape is kept literally; lone surrogates become
 * U+FFFD, as in the pattern compiler. */
static int unescape(eb_matcher *mt, const unsigned char *s, const unsigned char *q, size_t *outlen)
{
    size_t cap_need = (size_t)(q - s) + 4;
    if (GROW(mt, sbuf, sbuf_cap, cap_need))
        return -1;
    unsigned char *o = mt->sbuf;
    size_t n = 0;
    while (s < q) {
        if (*s != '\\') {
            o[n++] = *s++;
            continue;
        }
        if (s + 1 >= q) {
            o[n++] = *s++;
            continue;
        }
        unsigned char e = s[1];
        switch (e) {
        case '"': o[n++] = '"'; s += 2; continue;
        case '\\': o[n++] = '\\'; s += 2; continue;
        case '/': o[n++] = '/'; s += 2; continue;
        case 'b': o[n++] = '\b'; s += 2; continue;
        case 'f': o[n++] = '\f'; s += 2; continue;
        case 'n': o[n++] = '\n'; s += 2; continue;
        case 'r': o[n++] = '\r'; s += 2; continue;
        case 't': o[n++] = '\t'; s += 2; continue;
        case 'u': {
            uint32_t cp;
            size_t used;
            if (!ebp_json_u_escape(s + 2, q, &cp, &used)) {
                s += 2 + used;
                n += ebp_utf8_put(o + n, cp); /* at most 4 bytes for 6..12 bytes of input */
                continue;
            }
            o[n++] = *s++;
            continue;
        }
        default:
            o[n++] = *s++;
            continue;
        }
    }
    *outlen = n;
    return 0;
}

/* The node reached by an event key that contains dots ("a.b" walks a then
 * b), or NULL.  Cheap for the common miss: with few edges, the key can only
 * lead somewhere if it starts with an edge's segment followed by a dot. */
static const node *dotted_child(const node *n, const unsigned char *k, size_t klen)
{
    if (n->nedges <= 8) {
        int may = 0;
        for (uint32_t i = 0; i < n->nedges && !may; i++) {
            const node_edge *e = &n->edges[i];
            may = klen > e->len && k[e->len] == '.' && !memcmp(k, e->seg, e->len);
        }
        if (!may)
            return NULL;
    } else if (!memchr(k, '.', klen)) {
        return NULL;
    }
    const node *child = n;
    const unsigned char *s = k, *kend = k + klen;
    for (;;) {
        const unsigned char *d = memchr(s, '.', (size_t)(kend - s));
        size_t sl = d ? (size_t)(d - s) : (size_t)(kend - s);
        child = node_child(child, (const char *)s, sl);
        if (!child || !d)
            return child;
        s = d + 1;
    }
}

/* ---- marks and candidates ------------------------------------------------------------ */
static int push_u32(uint32_t **a, size_t *n, size_t *cap, uint32_t v)
{
    if (*n == *cap && grow((void **)a, cap, *n + 1, sizeof **a))
        return -1;
    (*a)[(*n)++] = v;
    return 0;
}

static uint32_t cur_trail(eb_matcher *mt)
{
    if (!mt->trail_valid) {
        if (GROW(mt, trails, trails_cap, mt->ntrails + 2 * mt->tdepth)) {
            mt->oom = 1;
            return 0;
        }
        if (mt->tdepth)
            memcpy(mt->trails + mt->ntrails, mt->tstack, 2 * mt->tdepth * sizeof(uint32_t));
        mt->cur_trail_off = (uint32_t)mt->ntrails;
        mt->ntrails += 2 * mt->tdepth;
        mt->trail_valid = 1;
    }
    return mt->cur_trail_off;
}

/* pass 2: remember where a predicate held / a path had a value (the array
 * trail at toff, tlen (array id, index) pairs long) */
static void record_at(eb_matcher *mt, uint32_t *head, uint32_t toff, uint32_t tlen)
{
    if (GROW(mt, recs, recs_cap, mt->nrecs + 1)) {
        mt->oom = 1;
        return;
    }
    rec *h = &mt->recs[mt->nrecs];
    h->trail_off = toff;
    h->trail_len = tlen;
    h->next = *head;
    *head = (uint32_t)++mt->nrecs;
}

/* ... at the reader's current place */
static void record(eb_matcher *mt, uint32_t *head)
{
    uint32_t toff = cur_trail(mt);
    record_at(mt, head, toff, (uint32_t)mt->tdepth);
}

/* The bit of pred in the filter of predicates marked in this event. */
static inline uint32_t held_bit(uint32_t pred)
{
    return (pred * 0x9E3779B1u) >> 22; /* 10 bits: HELD_BITS */
}

static inline void held_set(eb_matcher *mt, uint32_t pred)
{
    uint32_t b = held_bit(pred);
    mt->held[b >> 6] |= (uint64_t)1 << (b & 63);
    mt->held_any = 1;
}

/* Whether pred may have been marked in this event (no: it surely was not). */
static inline int held_maybe(const eb_matcher *mt, uint32_t pred)
{
    uint32_t b = held_bit(pred);
    return (int)(mt->held[b >> 6] >> (b & 63)) & 1;
}

/* Whether pred was marked in this event (its mark is loaded only when the
 * filter says it may have been). */
static inline int held(const eb_matcher *mt, uint32_t pred)
{
    return held_maybe(mt, pred) && mt->preds[pred].epoch == mt->epoch;
}

/* The rule in `slot` matches: report its key once per event. */
static inline void add_rule(eb_matcher *mt, uint32_t slot, uint64_t key)
{
    if (mt->rule_epoch[slot] == mt->epoch)
        return;
    mt->rule_epoch[slot] = mt->epoch;
    if (mt->nout == mt->out_cap && grow((void **)&mt->out, &mt->out_cap, mt->nout + 1, sizeof *mt->out)) {
        mt->oom = 1;
        return;
    }
    mt->out[mt->nout++] = key;
}

static inline void wake(eb_matcher *mt, const ebp_target *t)
{
    if (IS_SINGLE(t->hint)) {
        /* a one-field sub-rule: the rule matches; its key is in the target */
        add_rule(mt, t->hint & ~HINT_SINGLE, t->aux);
        return;
    }
    if (mt->ncands == mt->cands_cap && GROW(mt, cands, cands_cap, mt->ncands + 1)) {
        mt->oom = 1;
        return;
    }
    mt->cands[mt->ncands++] = *t;
}

static void wake_grouped(eb_matcher *mt, const vm *v, const unit *u)
{
    const ebp_target *t = v->targets + u->t.g.off;
    for (uint32_t i = 0; i < u->t.g.ndirect; i++)
        wake(mt, &t[i]);
    if (GROW(mt, gunits, gunits_cap, mt->ngunits + 1) || GROW(mt, gvms, gvms_cap, mt->ngunits + 1)) {
        mt->oom = 1;
        return;
    }
    mt->gunits[mt->ngunits] = u;
    mt->gvms[mt->ngunits++] = v;
}

static inline void wake_all(eb_matcher *mt, const vm *v, const unit *u)
{
    if (u->grp) {
        wake_grouped(mt, v, u);
    } else if (u->n == 1) {
        wake(mt, &u->t.one);
    } else {
        const ebp_target *t = v->targets + u->t.off;
        for (uint32_t i = 0; i < u->n; i++)
            wake(mt, &t[i]);
    }
}

/* A predicate holds for the current value: mark it; the first time in this
 * event, wake the sub-rules it is the access predicate for.  A predicate
 * whose only users are one-field sub-rules needs no mark. */
static inline void unit_hit(eb_matcher *mt, const vm *v, const unit *u)
{
    if (!u->mark && !mt->record) {
        wake_all(mt, v, u);
        return;
    }
    mark_t *k = &mt->preds[u->pred];
    if (k->epoch == mt->epoch) {
        k->flags |= mt->tdepth ? 2u : 1u;
        if (mt->record && mt->tdepth)
            record(mt, &k->head);
        return;
    }
    k->epoch = mt->epoch;
    k->flags = mt->tdepth ? 2u : 1u;
    k->head = 0;
    held_set(mt, u->pred);
    if (mt->record) {
        if (mt->tdepth)
            record(mt, &k->head);
        return;
    }
    if ((u->mark & MARK_HINT) && push_u32(&mt->hints, &mt->nhints, &mt->hints_cap, u->pred))
        mt->oom = 1;
    wake_all(mt, v, u);
}

static inline void presence(eb_matcher *mt, uint32_t path)
{
    mark_t *k = &mt->paths[path];
    if (k->epoch != mt->epoch) {
        k->epoch = mt->epoch;
        k->flags = 0;
        k->head = 0;
    }
    k->flags |= mt->tdepth ? 2u : 1u;
    if (mt->record && mt->tdepth)
        record(mt, &k->head);
}

/* ---- value matchers ------------------------------------------------------------------ */
/* Look k up in h, hv being ebp_hash_bytes(k, n, tag). */
static inline const hm_entry *hm_get_h(const vm *v, const hmap *h, uint32_t tag, const void *k, size_t n,
                                       uint64_t hv)
{
    uint64_t k8 = ebp_load_head(k, n);
    const uint8_t want = (uint8_t)(0x80 | (hv >> 57));
    for (uint32_t i = (uint32_t)hv & h->mask;; i = (i + 1) & h->mask) {
        uint8_t t = h->tags[i];
        if (!t)
            return NULL;
        if (t != want)
            continue;
        const hm_entry *e = &h->slots[i];
        if (e->hash == (uint32_t)hv && e->klen == n && e->k8 == k8 && e->tag == tag &&
            (n <= 8 || !memcmp(v->keys + e->koff + 8, (const char *)k + 8, n - 8)))
            return e;
    }
}

static inline const hm_entry *hm_get(const vm *v, const hmap *h, uint32_t tag, const void *k, size_t n)
{
    if (!h->count)
        return NULL;
    return hm_get_h(v, h, tag, k, n, ebp_hash_bytes(k, n, tag));
}

/* Start loading the lines a lookup of hash hv in h will read. */
static inline void hm_prefetch(const hmap *h, uint64_t hv)
{
    uint32_t i = (uint32_t)hv & h->mask;
    __builtin_prefetch(&h->tags[i]);
    __builtin_prefetch(&h->slots[i]);
    __builtin_prefetch((const char *)&h->slots[i] + sizeof h->slots[i] - 1); /* it may span two lines */
}

static inline void walk_trie(eb_matcher *mt, const vm *v, const trie *t, const unsigned char *s, size_t n,
                             int reverse, const unsigned char *full, size_t fulln)
{
    if (!t->nnodes)
        return;
    uint32_t cur = 0;
    for (size_t i = 0;; i++) {
        const trie_node *nd = &t->nodes[cur];
        if (nd->has_u)
            unit_hit(mt, v, &nd->u);
        for (uint32_t k = 0; k < nd->nwc; k++) {
            const wc_entry *w = &v->wcs[nd->wc_off + k];
            if (wc_match(w, full, fulln))
                unit_hit(mt, v, &w->u);
        }
        if (i == n || !nd->nedges)
            return;
        unsigned char c = reverse ? s[n - 1 - i] : s[i];
        const trie_edge *e = t->edges + nd->first_edge;
        uint32_t next = UINT32_MAX;
        for (uint32_t k = 0; k < nd->nedges; k++) {
            if (e[k].byte == c) {
                next = e[k].child;
                break;
            }
            if (e[k].byte > c)
                break;
        }
        if (next == UINT32_MAX)
            return;
        cur = next;
    }
}

/* The prefixes (or suffixes) of s of the lengths kept in the affix map. */
static inline void affix_probe(eb_matcher *mt, const vm *v, int kind, const unsigned char *s, size_t n)
{
    for (uint32_t i = 0; i < v->affix_nlen[kind]; i++) {
        uint32_t l = v->affix_len[kind][i];
        if (l > n)
            return;
        const hm_entry *e = hm_get(v, &v->affix, (unsigned char)AFFIX_TAGS[kind], kind & 1 ? s + n - l : s, l);
        if (e)
            unit_hit(mt, v, &e->u);
    }
}

static int fold_value(eb_matcher *mt, const unsigned char *s, size_t n, size_t *outn)
{
    if (GROW(mt, fbuf, fbuf_cap, n + 1))
        return -1;
    /* ASCII: lower-case in one pass; anything else: full case folding */
    unsigned char hi = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        hi |= c;
        mt->fbuf[i] = (unsigned char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    if (!(hi & 0x80)) {
        *outn = n;
        return 0;
    }
    size_t need = ebp_casefold(s, n, NULL, 0);
    if (GROW(mt, fbuf, fbuf_cap, need + 1))
        return -1;
    ebp_casefold(s, n, mt->fbuf, need);
    *outn = need;
    return 0;
}

static int has_prefix(const unsigned char *s, size_t n, const ebp_str *p)
{
    return p->n <= n && !memcmp(s, p->s, p->n);
}

static int has_suffix(const unsigned char *s, size_t n, const ebp_str *p)
{
    return p->n <= n && !memcmp(s + n - p->n, p->s, p->n);
}

static int in_set(const unsigned char *s, size_t n, const ebp_cond *c)
{
    for (size_t i = 0; i < c->nv; i++)
        if (c->vs[i].n == n && !memcmp(c->vs[i].s, s, n))
            return 1;
    return 0;
}

/* anything-but against a string value */
static void ab_string(eb_matcher *mt, const vm *v, const unsigned char *s, size_t n, const unsigned char *f,
                      size_t fn)
{
    for (uint32_t i = 0; i < v->nabs; i++) {
        const ab_entry *a = &v->abs[i];
        const ebp_cond *c = a->cond;
        int excluded = 0;
        switch (c->kind) {
        case EBP_C_AB_STR: excluded = in_set(s, n, c); break;
        case EBP_C_AB_NUM: excluded = 0; break;
        case EBP_C_AB_EIC: excluded = in_set(f, fn, c); break;
        case EBP_C_AB_PREFIX:
            for (size_t k = 0; k < c->nv && !excluded; k++)
                excluded = has_prefix(s, n, &c->vs[k]);
            break;
        case EBP_C_AB_SUFFIX:
            for (size_t k = 0; k < c->nv && !excluded; k++)
                excluded = has_suffix(s, n, &c->vs[k]);
            break;
        case EBP_C_AB_WILDCARD:
            for (size_t k = 0; k < c->nv && !excluded; k++)
                excluded = ebp_glob_match(c->globs[k], s, n);
            break;
        default: break;
        }
        if (!excluded)
            unit_hit(mt, v, &a->u);
    }
}

/* hv: ebp_hash_bytes(s, n, 'S') when v->sops has SO_EXACT, else unused */
static void vm_str(eb_matcher *mt, const vm *v, const unsigned char *s, size_t n, uint64_t hv)
{
    const uint32_t o = v->sops;
    if (o & SO_EXISTS)
        unit_hit(mt, v, &v->u_exists);
    const hm_entry *e;
    ebp_ip ip;
    int is_ip = (o & SO_IP) && ebp_ip_parse((const char *)s, n, &ip);
    if (o & SO_EXACT) {
        if ((e = hm_get_h(v, &v->exact, 'S', s, n, hv)))
            unit_hit(mt, v, &e->u);
        if (is_ip) {
            unsigned char k[17];
            k[0] = ip.family;
            memcpy(k + 1, ip.addr, 16);
            if ((e = hm_get(v, &v->exact, 'I', k, 17)))
                unit_hit(mt, v, &e->u);
        }
    }
    if (o & SO_PREFIX)
        walk_trie(mt, v, &v->prefix, s, n, 0, s, n);
    if (o & SO_SUFFIX)
        walk_trie(mt, v, &v->suffix, s, n, 1, s, n);
    if (o & SO_AFFIX) {
        affix_probe(mt, v, AF_PREFIX, s, n);
        affix_probe(mt, v, AF_SUFFIX, s, n);
    }
    if (o & SO_WCU)
        for (uint32_t i = 0; i < v->nwc_unanchored; i++) {
            const wc_entry *w = &v->wcs[v->wc_unanchored_off + i];
            if (wc_match(w, s, n))
                unit_hit(mt, v, &w->u);
        }
    if (is_ip && (o & SO_CIDR))
        for (uint32_t i = 0; i < v->ncidrs; i++)
            if (ebp_cidr_contains(&v->cidrs[i].c, &ip))
                unit_hit(mt, v, &v->cidrs[i].u);
    const unsigned char *f = s;
    size_t fn = n;
    if (o & SO_FOLD) {
        if (fold_value(mt, s, n, &fn)) {
            mt->oom = 1;
            return;
        }
        f = mt->fbuf;
        if ((o & SO_EIC) && (e = hm_get(v, &v->eic, 'F', f, fn)))
            unit_hit(mt, v, &e->u);
        if (o & SO_PREFIX_EIC)
            walk_trie(mt, v, &v->prefix_eic, f, fn, 0, f, fn);
        if (o & SO_SUFFIX_EIC)
            walk_trie(mt, v, &v->suffix_eic, f, fn, 1, f, fn);
        if (o & SO_AFFIX) {
            affix_probe(mt, v, AF_PREFIX_EIC, f, fn);
            affix_probe(mt, v, AF_SUFFIX_EIC, f, fn);
        }
    }
    if (o & SO_ABS)
        ab_string(mt, v, s, n, f, fn);
}

static int range_match(const range_entry *r, double d)
{
    if (r->has_lo && (r->lo_open ? !(d > r->lo) : !(d >= r->lo)))
        return 0;
    if (r->has_hi && (r->hi_open ? !(d < r->hi) : !(d <= r->hi)))
        return 0;
    return 1;
}

/* Keep a number at a box side for the box lookups at the end of the pass. */
static void box_keep(eb_matcher *mt, uint32_t path, double d)
{
    if (GROW(mt, bvals, bvals_cap, mt->nbvals + 1)) {
        mt->oom = 1;
        return;
    }
    bval *b = &mt->bvals[mt->nbvals++];
    b->d = d;
    b->path = path;
    b->flag = mt->tdepth ? 2u : 1u;
    b->tlen = mt->record ? (uint32_t)mt->tdepth : 0;
    b->toff = b->tlen ? cur_trail(mt) : 0;
}

static void vm_num(eb_matcher *mt, const vm *v, uint32_t path, const unsigned char *s, size_t n)
{
    if (v->has_exists)
        unit_hit(mt, v, &v->u_exists);
    if (!(v->flags & VM_NUM)) {
        /* string-shaped anything-but still matches numbers */
        for (uint32_t i = 0; i < v->nabs; i++)
            unit_hit(mt, v, &v->abs[i].u);
        return;
    }
    double d;
    int finite = ebp_num_to_double((const char *)s, n, &d);
    if ((v->flags & VM_BOX) && finite)
        box_keep(mt, path, d);
    const hm_entry *e;
    if (v->exact.count) {
        if (finite)
            e = hm_get(v, &v->exact, 'N', &d, sizeof d);
        else
            e = hm_get(v, &v->exact, 'T', s, n);
        if (e)
            unit_hit(mt, v, &e->u);
    }
    if (finite && v->nranges) {
        if (v->nranges <= RANGE_LINEAR_MAX) {
            for (uint32_t i = 0; i < v->nranges; i++)
                if (range_match(&v->ranges[i], d))
                    unit_hit(mt, v, &v->ranges[i].u);
        } else {
            /* one-sided ranges: the matching ones are a prefix of the order */
            for (uint32_t i = 0; i < v->nlower; i++) {
                const range_entry *r = &v->ranges[v->lower_idx[i]];
                if (!(r->lo < d || (r->lo == d && !r->lo_open)))
                    break;
                unit_hit(mt, v, &r->u);
            }
            for (uint32_t i = 0; i < v->nupper; i++) {
                const range_entry *r = &v->ranges[v->upper_idx[i]];
                if (!(r->hi > d || (r->hi == d && !r->hi_open)))
                    break;
                unit_hit(mt, v, &r->u);
            }
            /* two-sided ranges: walk the interval tree */
            for (uint32_t ni = v->nitree ? 0 : UINT32_MAX; ni != UINT32_MAX;) {
                const itnode *nd = &v->itree[ni];
                const uint32_t *it = v->it_items + nd->off;
                if (d < nd->center) {
                    for (uint32_t k = 0; k < nd->n && v->ranges[it[k]].lo <= d; k++)
                        if (range_match(&v->ranges[it[k]], d))
                            unit_hit(mt, v, &v->ranges[it[k]].u);
                    ni = nd->left;
                } else if (d > nd->center) {
                    it += nd->n;
                    for (uint32_t k = 0; k < nd->n && v->ranges[it[k]].hi >= d; k++)
                        if (range_match(&v->ranges[it[k]], d))
                            unit_hit(mt, v, &v->ranges[it[k]].u);
                    ni = nd->right;
                } else {
                    for (uint32_t k = 0; k < nd->n; k++)
                        if (range_match(&v->ranges[it[k]], d))
                            unit_hit(mt, v, &v->ranges[it[k]].u);
                    break;
                }
            }
        }
    }
    for (uint32_t i = 0; i < v->nabs; i++) {
        const ab_entry *a = &v->abs[i];
        int excluded = 0;
        if (a->cond->kind == EBP_C_AB_NUM && finite)
            for (size_t k = 0; k < a->cond->nv && !excluded; k++)
                excluded = a->cond->ds[k] == d;
        if (!excluded)
            unit_hit(mt, v, &a->u);
    }
}

static void vm_lit(eb_matcher *mt, const vm *v, unsigned char c)
{
    if (v->has_exists)
        unit_hit(mt, v, &v->u_exists);
    if (c == 't' && v->has_true)
        unit_hit(mt, v, &v->u_true);
    else if (c == 'f' && v->has_false)
        unit_hit(mt, v, &v->u_false);
    else if (c == 'n' && v->has_null)
        unit_hit(mt, v, &v->u_null);
    for (uint32_t i = 0; i < v->nabs; i++)
        unit_hit(mt, v, &v->abs[i].u);
}

static inline uint64_t exact_hash(const vm *v, const unsigned char *s, size_t len)
{
    return (v->sops & SO_EXACT) ? ebp_hash_bytes(s, len, 'S') : 0;
}

/* Append len bytes to ibuf, which keeps them for the rest of the event;
 * *off is where they start.  -1: out of memory. */
static int ibuf_append(eb_matcher *mt, const unsigned char *b, size_t len, uint32_t *off)
{
    if (GROW(mt, ibuf, ibuf_cap, mt->ibuf_len + len + 1))
        return -1;
    memcpy(mt->ibuf + mt->ibuf_len, b, len);
    *off = (uint32_t)mt->ibuf_len;
    mt->ibuf_len += len;
    return 0;
}

/* A string kept past its read at *ks: if it is in sbuf (unescaped, and sbuf
 * is reused for the next string), copy it to ibuf and keep its offset there
 * instead (*ks NULL).  -1: out of memory. */
static inline int keep_bytes(eb_matcher *mt, const unsigned char **ks, uint32_t *off, size_t len)
{
    if (*ks != mt->sbuf)
        return 0;
    if (ibuf_append(mt, mt->sbuf, len, off))
        return -1;
    *ks = NULL;
    return 0;
}

/* Pass 1 keeps every string at a VM_KEYED path (see keyidx.h). */
static void keep_keyed(eb_matcher *mt, uint32_t path, const vm *v, const unsigned char *s, size_t len)
{
    uint32_t *e = &mt->kv[2 * path];
    if (e[0] == mt->epoch || mt->tdepth)
        mt->kfallback = 1;
    else {
        e[0] = mt->epoch;
        e[1] = (uint32_t)mt->nkcaps;
    }
    if (mt->kfallback && !v->kvm)
        return; /* needed neither for a key nor by a kvm */
    if (mt->nkcaps == mt->kcaps_cap && GROW(mt, kcaps, kcaps_cap, mt->nkcaps + 1)) {
        mt->oom = 1;
        return;
    }
    kcap *c = &mt->kcaps[mt->nkcaps++];
    *c = (kcap){v->kvm, s, 0, (uint32_t)len, mt->tdepth != 0, UINT32_MAX, 0};
    if (keep_bytes(mt, &c->s, &c->off, len))
        mt->oom = 1;
}

/* Pass 1 keeps a string at a VM_DEFER path for process_items (after the
 * read); pass 2 handles it at once (it needs the reader's array trail). */
static inline item *defer(eb_matcher *mt, const vm *v, const unsigned char *s, size_t len)
{
    if (mt->nitems == mt->items_cap && GROW(mt, items, items_cap, mt->nitems + 1)) {
        mt->oom = 1;
        return NULL;
    }
    item *it = &mt->items[mt->nitems++];
    it->v = v;
    it->s = s;
    it->off = 0;
    it->len = (uint32_t)len;
    it->arr = mt->tdepth != 0;
    it->hv = 0;
    return it;
}

static inline void leaf_str(eb_matcher *mt, const node *n, const unsigned char *s, size_t len)
{
    if (n->presence)
        presence(mt, n->path_id);
    const vm *v = n->vm;
    if (!v)
        return;
    if (v->flags & VM_KEYED) {
        if (!mt->record)
            keep_keyed(mt, n->path_id, v, s, len);
        else if (mt->kfallback && v->kvm)
            vm_str(mt, v->kvm, s, len, exact_hash(v->kvm, s, len));
    }
    if (!mt->defer || !(v->flags & VM_DEFER)) {
        if (v->sops) /* none: every predicate here is a keyed one (kvm) */
            vm_str(mt, v, s, len, exact_hash(v, s, len));
        return;
    }
    item *it = defer(mt, v, s, len);
    if (!it)
        return;
    if (keep_bytes(mt, &it->s, &it->off, len)) {
        mt->oom = 1;
        return;
    }
    if (v->sops & SO_EXACT) {
        it->hv = ebp_hash_bytes(s, len, 'S');
        hm_prefetch(&v->exact, it->hv);
    }
}

static inline void leaf_num(eb_matcher *mt, const node *n, const unsigned char *s, size_t len)
{
    if (n->presence)
        presence(mt, n->path_id);
    if (n->vm)
        vm_num(mt, n->vm, n->path_id, s, len);
}

static inline void leaf_lit(eb_matcher *mt, const node *n, unsigned char c)
{
    if (n->presence)
        presence(mt, n->path_id);
    if (n->vm)
        vm_lit(mt, n->vm, c);
}

/* Pass 1: the deferred strings, each with its array flag. */
static void process_items(eb_matcher *mt)
{
    for (size_t i = 0; i < mt->nitems; i++) {
        const item *it = &mt->items[i];
        mt->tdepth = it->arr; /* pass 1 reads only whether it is zero */
        vm_str(mt, it->v, it->s ? it->s : mt->ibuf + it->off, it->len, it->hv);
    }
    mt->tdepth = 0;
}

/* ---- key lookups (keyidx.h) ---------------------------------------------------------------- */
/* The bytes of kept string c, or of its case folding (NULL: out of memory). */
static const unsigned char *kcap_bytes(eb_matcher *mt, kcap *c, int fold, size_t *n)
{
    if (!fold) {
        *n = c->len;
        return c->s ? c->s : mt->ibuf + c->off;
    }
    if (c->foff == UINT32_MAX) {
        size_t fn;
        if (fold_value(mt, c->s ? c->s : mt->ibuf + c->off, c->len, &fn) || ibuf_append(mt, mt->fbuf, fn, &c->foff))
            return NULL;
        c->flen = (uint32_t)fn;
    }
    *n = c->flen;
    return mt->ibuf + c->foff;
}

/* memcpy for the short strings keys are made of (a call costs more than
 * the copy) */
static inline void copy_short(unsigned char *d, const unsigned char *s, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(d, &a, 4);
        memcpy(d + n - 4, &b, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++)
            d[i] = s[i];
    } else {
        memcpy(d, s, n);
    }
}

/* Pass 1, every keyed path had at most one value, at top level: make each
 * signature's key from the event and start loading its slot; key_finish
 * looks them up (a hit is a match), after other work has hidden the loads. */
static void key_prepare(eb_matcher *mt, const eb_snapshot *s)
{
    size_t kl = 0;
    if (GROW(mt, kprobes, kprobes_cap, s->nkidx)) {
        mt->oom = 1;
        return;
    }
    for (uint32_t x = 0; x < s->nkidx; x++) {
        const keyidx *K = s->kidx[x];
        const key_sig *g = &K->sig;
        size_t k0 = kl;
        uint32_t j;
        for (j = 0; j < g->k; j++) {
            const uint32_t *e = &mt->kv[2 * g->path[j]];
            if (e[0] != mt->epoch)
                break; /* no string there */
            uint8_t kind = g->kind[j];
            size_t n;
            const unsigned char *b =
                kcap_bytes(mt, &mt->kcaps[e[1]], kind == KK_EIC || kind == KK_PREFIX_EIC || kind == KK_SUFFIX_EIC, &n);
            if (!b || GROW(mt, kbuf, kbuf_cap, kl + 4 + n)) {
                mt->oom = 1;
                return;
            }
            if (kind >= KK_PREFIX) {
                if (n < g->len[j])
                    break; /* too short for the affix */
                if (kind == KK_SUFFIX || kind == KK_SUFFIX_EIC)
                    b += n - g->len[j];
                n = g->len[j];
            }
            uint32_t n32 = (uint32_t)n;
            memcpy(mt->kbuf + kl, &n32, 4);
            copy_short(mt->kbuf + kl + 4, b, n);
            kl += 4 + n;
        }
        if (j < g->k) {
            kl = k0;
            continue;
        }
        kprobe *p = &mt->kprobes[mt->nkprobes++];
        *p = (kprobe){K, ebp_hash_bytes(mt->kbuf + k0, kl - k0, 'K'), (uint32_t)k0, (uint32_t)(kl - k0)};
        __builtin_prefetch(&K->slots[p->h & K->mask]);
    }
}

static void key_finish(eb_matcher *mt)
{
    for (size_t i = 0; i < mt->nkprobes; i++) {
        const kprobe *p = &mt->kprobes[i];
        const key_slot *e = ebp_key_find(p->K, mt->kbuf + p->koff, p->klen, p->h);
        for (uint32_t q = 0; e && q < e->nt; q++)
            add_rule(mt, p->K->t[e->toff + q].slot, p->K->t[e->toff + q].key);
    }
}

/* Pass 1, the event cannot use the key indexes: its strings at keyed
 * paths go through those paths' kvms, as any other value would. */
static void key_fallback(eb_matcher *mt)
{
    for (size_t i = 0; i < mt->nkcaps; i++) {
        const kcap *c = &mt->kcaps[i];
        if (!c->kvm)
            continue;
        const unsigned char *b = c->s ? c->s : mt->ibuf + c->off;
        mt->tdepth = c->arr; /* pass 1 reads only whether it is zero */
        vm_str(mt, c->kvm, b, c->len, exact_hash(c->kvm, b, c->len));
    }
    mt->tdepth = 0;
}

/* ---- the reader, twice ------------------------------------------------------------------ */
typedef struct {
    const unsigned char *p, *end, *start;
    eb_matcher *mt;
    unsigned depth;
} rd;

#define RD_V 1
#define RD_SUFFIX v
#include "reader_impl.h"
#undef RD_V
#undef RD_SUFFIX
#define RD_V 0
#define RD_SUFFIX t
#include "reader_impl.h"
#undef RD_V
#undef RD_SUFFIX

/* ---- array-consistency check ------------------------------------------------------------- */
/* A Pareto set of (pos, neg) bitset pairs, each 2*nw words. */
typedef struct {
    uint64_t *w;
    size_t n, cap, nw;
} pset;

static int ps_add(pset *s, const uint64_t *pos, const uint64_t *neg)
{
    size_t nw = s->nw;
    for (size_t i = 0; i < s->n; i++) { /* dominated? (more pos, less neg is better) */
        const uint64_t *p = s->w + i * 2 * nw, *q = p + nw;
        int dom = 1;
        for (size_t k = 0; k < nw && dom; k++)
            dom = (pos[k] & ~p[k]) == 0 && (q[k] & ~neg[k]) == 0;
        if (dom)
            return 0;
    }
    size_t j = 0;
    for (size_t i = 0; i < s->n; i++) { /* drop what it dominates */
        uint64_t *p = s->w + i * 2 * nw, *q = p + nw;
        int dom = 1;
        for (size_t k = 0; k < nw && dom; k++)
            dom = (p[k] & ~pos[k]) == 0 && (neg[k] & ~q[k]) == 0;
        if (!dom) {
            if (i != j)
                memmove(s->w + j * 2 * nw, p, 2 * nw * sizeof(uint64_t));
            j++;
        }
    }
    s->n = j;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 4;
        uint64_t *nwp = realloc(s->w, nc * 2 * nw * sizeof(uint64_t));
        if (!nwp)
            return -1;
        s->w = nwp;
        s->cap = nc;
    }
    memcpy(s->w + s->n * 2 * nw, pos, nw * sizeof(uint64_t));
    memcpy(s->w + s->n * 2 * nw + nw, neg, nw * sizeof(uint64_t));
    s->n++;
    return 0;
}

typedef struct {
    uint32_t field;
    uint32_t presence;
    const rec *r;
} dhit;

typedef struct {
    eb_matcher *mt;
    size_t nw;
    int oom;
} dpctx;

static inline uint32_t tr_at(const dpctx *c, const dhit *h, size_t i)
{
    return c->mt->trails[h->r->trail_off + i];
}

static int dhit_cmp(const dpctx *c, const dhit *x, const dhit *y)
{
    size_t lx = 2 * x->r->trail_len, ly = 2 * y->r->trail_len, m = lx < ly ? lx : ly;
    for (size_t i = 0; i < m; i++) {
        uint32_t u = tr_at(c, x, i), v = tr_at(c, y, i);
        if (u != v)
            return u < v ? -1 : 1;
    }
    return (lx > ly) - (lx < ly);
}

static void sort_hits(dpctx *c, dhit *h, size_t n, dhit *tmp)
{
    if (n < 24) {
        for (size_t i = 1; i < n; i++) {
            dhit x = h[i];
            size_t j = i;
            while (j && dhit_cmp(c, &h[j - 1], &x) > 0) {
                h[j] = h[j - 1];
                j--;
            }
            h[j] = x;
        }
        return;
    }
    size_t mid = n / 2;
    sort_hits(c, h, mid, tmp);
    sort_hits(c, h + mid, n - mid, tmp);
    size_t i = 0, j = mid, k = 0;
    while (i < mid && j < n)
        tmp[k++] = dhit_cmp(c, &h[j], &h[i]) < 0 ? h[j++] : h[i++];
    while (i < mid)
        tmp[k++] = h[i++];
    while (j < n)
        tmp[k++] = h[j++];
    memcpy(h, tmp, n * sizeof *h);
}

/* Solve the subtree of hits h[0..n), all sharing a trail prefix of d pairs:
 * every Pareto-best (positive fields found, exists:false fields spoiled). */
static int dp_solve(dpctx *c, const dhit *h, size_t n, size_t d, const uint64_t *bpos, const uint64_t *bneg,
                    pset *out)
{
    size_t nw = c->nw;
    uint64_t *base = calloc(2 * nw, sizeof(uint64_t));
    if (!base)
        return -1;
    if (bpos)
        memcpy(base, bpos, nw * sizeof(uint64_t));
    if (bneg)
        memcpy(base + nw, bneg, nw * sizeof(uint64_t));
    size_t i = 0;
    while (i < n && h[i].r->trail_len == d) {
        base[(h[i].presence ? nw : 0) + (h[i].field >> 6)] |= (uint64_t)1 << (h[i].field & 63);
        i++;
    }
    pset acc = {.nw = nw};
    int rc = ps_add(&acc, base, base + nw);
    free(base);
    while (!rc && i < n) {
        /* one array: the hits whose pair d names the same array */
        uint32_t aid = tr_at(c, &h[i], 2 * d);
        size_t j = i;
        while (j < n && tr_at(c, &h[j], 2 * d) == aid)
            j++;
        pset opts = {.nw = nw};
        uint64_t *none = calloc(2 * nw, sizeof(uint64_t));
        if (!none) {
            rc = -1;
            break;
        }
        /* choosing no element: every value under it stays consistent */
        for (size_t k = i; k < j; k++)
            if (h[k].presence)
                none[nw + (h[k].field >> 6)] |= (uint64_t)1 << (h[k].field & 63);
        rc = ps_add(&opts, none, none + nw);
        free(none);
        size_t e = i;
        while (!rc && e < j) {
            uint32_t idx = tr_at(c, &h[e], 2 * d + 1);
            size_t f = e;
            while (f < j && tr_at(c, &h[f], 2 * d + 1) == idx)
                f++;
            pset sub = {.nw = nw};
            rc = dp_solve(c, h + e, f - e, d + 1, NULL, NULL, &sub);
            for (size_t s = 0; !rc && s < sub.n; s++)
                rc = ps_add(&opts, sub.w + s * 2 * nw, sub.w + s * 2 * nw + nw);
            free(sub.w);
            e = f;
        }
        pset nacc = {.nw = nw};
        uint64_t *tmp = rc ? NULL : malloc(2 * nw * sizeof(uint64_t));
        if (!rc && !tmp)
            rc = -1;
        for (size_t a = 0; !rc && a < acc.n; a++)
            for (size_t o = 0; !rc && o < opts.n; o++) {
                for (size_t k = 0; k < 2 * nw; k++)
                    tmp[k] = acc.w[a * 2 * nw + k] | opts.w[o * 2 * nw + k];
                rc = ps_add(&nacc, tmp, tmp + nw);
            }
        free(tmp);
        free(opts.w);
        free(acc.w);
        acc = nacc;
        i = j;
    }
    if (rc) {
        free(acc.w);
        return -1;
    }
    *out = acc;
    return 0;
}

static int final_ok(const sr_t *S, const uint64_t *pos, const uint64_t *neg)
{
    for (uint32_t f = 0; f < S->nfields; f++) {
        uint64_t bit = (uint64_t)1 << (f & 63);
        int p = (pos[f >> 6] & bit) != 0, q = (neg[f >> 6] & bit) != 0;
        switch (S->fields[f].kind) {
        case FK_POS:
            if (!p)
                return 0;
            break;
        case FK_NEG:
            if (q)
                return 0;
            break;
        default:
            if (!p && q)
                return 0;
        }
    }
    return 1;
}

static inline uint8_t pred_state(const eb_matcher *mt, uint32_t p)
{
    return mt->preds[p].epoch == mt->epoch ? (uint8_t)mt->preds[p].flags : 0;
}

static inline uint8_t path_state(const eb_matcher *mt, uint32_t p)
{
    return mt->paths[p].epoch == mt->epoch ? (uint8_t)mt->paths[p].flags : 0;
}

static int dp_check(eb_matcher *mt, const sr_t *S)
{
    size_t nw = ((size_t)S->nfields + 63) / 64;
    uint64_t *base = calloc(2 * nw, sizeof(uint64_t));
    ebp_vec hits;
    ebp_vec_init(&hits, sizeof(dhit));
    int ok = 0, fail = !base;
    for (uint32_t f = 0; f < S->nfields && !fail; f++) {
        const field_rec *fr = &S->fields[f];
        uint64_t bit = (uint64_t)1 << (f & 63);
        if (fr->kind != FK_NEG) {
            int root = 0;
            for (uint32_t k = 0; k < fr->npreds; k++)
                root |= pred_state(mt, fr->preds[k]) & 1;
            if (root) {
                base[f >> 6] |= bit;
            } else {
                for (uint32_t k = 0; k < fr->npreds && !fail; k++) {
                    uint32_t p = fr->preds[k];
                    if (mt->preds[p].epoch != mt->epoch)
                        continue;
                    for (uint32_t r = mt->preds[p].head; r && !fail; r = mt->recs[r - 1].next) {
                        dhit *h = ebp_vec_push(&hits);
                        if (!h)
                            fail = 1;
                        else
                            *h = (dhit){f, 0, &mt->recs[r - 1]};
                    }
                }
            }
        }
        if (fr->kind != FK_POS) {
            uint8_t ps = path_state(mt, fr->path_id);
            if (ps & 1)
                base[nw + (f >> 6)] |= bit;
            if (ps)
                for (uint32_t r = mt->paths[fr->path_id].head; r && !fail; r = mt->recs[r - 1].next) {
                    dhit *h = ebp_vec_push(&hits);
                    if (!h)
                        fail = 1;
                    else
                        *h = (dhit){f, 1, &mt->recs[r - 1]};
                }
        }
    }
    dpctx c = {.mt = mt, .nw = nw};
    dhit *tmp = fail ? NULL : malloc((hits.len ? hits.len : 1) * sizeof(dhit));
    pset res = {.nw = nw};
    if (!fail && tmp) {
        sort_hits(&c, hits.items, hits.len, tmp);
        if (!dp_solve(&c, hits.items, hits.len, 0, base, base + nw, &res)) {
            for (size_t i = 0; i < res.n && !ok; i++)
                ok = final_ok(S, res.w + i * 2 * nw, res.w + i * 2 * nw + nw);
        } else {
            mt->oom = 1;
        }
    } else {
        mt->oom = 1;
    }
    free(res.w);
    free(tmp);
    free(base);
    ebp_vec_free(&hits);
    return ok;
}

/* ---- evaluation ------------------------------------------------------------------------------ */
enum { EV_NO = 0, EV_YES = 1, EV_DP = 2 };

/* Check every field of a candidate sub-rule against the marks. */
static int evaluate(const eb_matcher *mt, const sr_t *S)
{
    unsigned arrays = 0;
    int qneed = 0;
    for (uint32_t f = 0; f < S->nfields; f++) {
        const field_rec *fr = &S->fields[f];
        uint8_t pos = 0;
        for (uint32_t k = 0; k < fr->npreds; k++)
            pos |= pred_state(mt, fr->preds[k]);
        int p = pos & 1, a = (pos & 2) && !p;
        switch (fr->kind) {
        case FK_POS:
            if (!p && !a)
                return EV_NO;
            if (!p)
                arrays++;
            break;
        case FK_NEG: {
            uint8_t ps = path_state(mt, fr->path_id);
            if (ps & 1)
                return EV_NO;
            if (ps & 2)
                qneed = 1;
            break;
        }
        default: { /* FK_MIX: a value meeting a condition, or no value at all */
            if (p)
                break;
            uint8_t ps = path_state(mt, fr->path_id);
            if (ps & 1) {
                if (!a)
                    return EV_NO;
                arrays++;
            } else if (ps & 2) {
                qneed = 1;
            }
        }
        }
    }
    if (!qneed && arrays <= 1)
        return EV_YES;
    return EV_DP;
}

/* ---- public API ----------------------------------------------------------------------------------- */
eb_matcher *eb_matcher_new(void)
{
    pthread_once(&tables_once, init_tables);
    eb_matcher *mt = calloc(1, sizeof *mt);
    if (mt)
        mt->max_depth = EB_DEFAULT_MAX_DEPTH;
    return mt;
}

void eb_matcher_free(eb_matcher *mt)
{
    if (!mt)
        return;
    free(mt->preds);
    free(mt->paths);
    free(mt->rule_epoch);
    free(mt->recs);
    free(mt->trails);
    free(mt->cands);
    free(mt->gunits);
    free(mt->gvms);
    free(mt->hints);
    free(mt->bvals);
    free(mt->bsel);
    free(mt->dp);
    free(mt->out);
    free(mt->tstack);
    free(mt->items);
    free(mt->kv);
    free(mt->kcaps);
    free(mt->kbuf);
    free(mt->kprobes);
    free(mt->ibuf);
    free(mt->sbuf);
    free(mt->fbuf);
    free(mt->vstack);
    free(mt);
}

void eb_matcher_set_max_depth(eb_matcher *mt, unsigned depth)
{
    if (depth < 1)
        depth = 1;
    if (depth > EB_MAX_MAX_DEPTH)
        depth = EB_MAX_MAX_DEPTH;
    mt->max_depth = depth;
}

static int grow_zero(void **p, size_t have, size_t want, size_t isz)
{
    void *n = realloc(*p, want * isz);
    if (!n)
        return -1;
    memset((char *)n + have * isz, 0, (want - have) * isz);
    *p = n;
    return 0;
}

static int prepare(eb_matcher *mt, const eb_snapshot *s)
{
    size_t np = s->npred_cap + 1, nh = s->npath_cap + 1;
    size_t nrules = (size_t)s->nrule_chunks * CHUNK;
    if (np > mt->preds_cap) {
        size_t want = np + np / 2;
        if (grow_zero((void **)&mt->preds, mt->preds_cap, want, sizeof(mark_t)))
            return -1;
        mt->preds_cap = want;
    }
    if (nh > mt->paths_cap) {
        size_t want = nh + nh / 2;
        if (grow_zero((void **)&mt->paths, mt->paths_cap, want, sizeof(mark_t)))
            return -1;
        mt->paths_cap = want;
    }
    if (s->nkidx && nh > mt->kv_cap) {
        size_t want = nh + nh / 2;
        if (grow_zero((void **)&mt->kv, 2 * mt->kv_cap, 2 * want, sizeof(uint32_t)))
            return -1;
        mt->kv_cap = want;
    }
    if (nrules > mt->rules_cap) {
        if (grow_zero((void **)&mt->rule_epoch, mt->rules_cap, nrules, sizeof(uint32_t)))
            return -1;
        mt->rules_cap = nrules;
    }
    return 0;
}

/* Per-event scratch that is not stamped with the epoch. */
static void scratch_reset(eb_matcher *mt)
{
    mt->nrecs = mt->ntrails = mt->ncands = mt->ngunits = mt->nhints = mt->nbvals = 0;
    mt->nitems = mt->ibuf_len = 0;
    mt->tdepth = 0;
    mt->next_array = 0;
    mt->trail_valid = 0;
}

static void next_epoch(eb_matcher *mt)
{
    if (++mt->epoch == 0) { /* wrapped: clear every stamp */
        memset(mt->preds, 0, mt->preds_cap * sizeof(mark_t));
        memset(mt->paths, 0, mt->paths_cap * sizeof(mark_t));
        memset(mt->rule_epoch, 0, mt->rules_cap * sizeof(uint32_t));
        if (mt->kv)
            memset(mt->kv, 0, 2 * mt->kv_cap * sizeof(uint32_t));
        mt->epoch = 1;
    }
    if (mt->held_any) {
        memset(mt->held, 0, sizeof mt->held);
        mt->held_any = 0;
    }
    scratch_reset(mt);
}

static int read_event(eb_matcher *mt, const char *json, size_t len, unsigned flags)
{
    rd r = {(const unsigned char *)json, (const unsigned char *)json + len, (const unsigned char *)json, mt, 0};
    const int trusted = (flags & EB_MATCH_TRUSTED) != 0;
    r.p = trusted ? ws_t(r.p, r.end) : ws_v(r.p, r.end);
    if (r.p >= r.end || *r.p != '{') {
        if (!trusted && r.p < r.end) {
            /* tell "not JSON" from "not an object" */
            rd r2 = r;
            if (skip_v(&r2) == 0) {
                const unsigned char *p = ws_v(r2.p, r2.end);
                if (p == r2.end) {
                    mt->err = "event is not a JSON object";
                    mt->err_off = 0;
                } else {
                    mt->err = "unexpected data after the JSON value";
                    mt->err_off = (size_t)(p - r.start);
                }
            }
            return -1; /* skip_v set the error otherwise */
        }
        mt->err = r.p >= r.end ? "empty event" : "event is not a JSON object";
        mt->err_off = (size_t)(r.p - r.start);
        return -1;
    }
    r.depth = 1;
    if (mt->max_depth < 1) {
        mt->err = "nesting depth exceeds the limit";
        return -1;
    }
    r.p++;
    const node *root = mt->snap->root;
    static const node empty_node = {0};
    if (!root)
        root = &empty_node;
    int rc = trusted ? object_t(&r, root, 1) : object_v(&r, root, 0);
    if (rc < 0)
        return -1;
    if (!trusted) {
        const unsigned char *p = ws_v(r.p, r.end);
        if (p != r.end) {
            mt->err = "unexpected data after the event object";
            mt->err_off = (size_t)(p - r.start);
            return -1;
        }
    }
    return 0;
}

/* `what` names the checked thing for the message: "Event is not valid" for
 * eb_match, "invalid JSON" for eb_json_check (any document). */
static eb_status set_err_as(eb_matcher *mt, eb_error *err, eb_status code, const char *what)
{
    if (err) {
        err->code = code;
        err->offset = mt->err_off;
        if (code == EB_ERR_NOMEM)
            ebp_errf(err->message, sizeof err->message, "out of memory");
        else
            ebp_errf(err->message, sizeof err->message, "%s: %s at byte %zu", what,
                     mt->err ? mt->err : "invalid JSON", mt->err_off);
    }
    return code;
}

static eb_status set_err(eb_matcher *mt, eb_error *err, eb_status code)
{
    return set_err_as(mt, err, code, "Event is not valid");
}

/* ---- box lookups (box.h) ---------------------------------------------------------------------- */
/* Beyond this many (x, y) pairs in one event, look the sides up one by one. */
#define BOX_PAIRS_MAX 64

/* A box side's range holds for the kept value b. */
static void box_mark(eb_matcher *mt, uint32_t pred, const bval *b)
{
    mark_t *k = &mt->preds[pred];
    if (k->epoch != mt->epoch) {
        k->epoch = mt->epoch;
        k->flags = 0;
        k->head = 0;
        held_set(mt, pred);
    }
    k->flags |= b->flag;
    if (mt->record && b->tlen)
        record_at(mt, &k->head, b->toff, b->tlen);
}

/* The boxes containing the point (x, y): one cell per class. */
static void box_point(eb_matcher *mt, const boxidx *b, const bval *x, const bval *y)
{
    for (uint32_t c = 0; c < b->ncls; c++) {
        const box_class *k = &b->cls[c];
        int64_t cx, cy;
        if (!ebp_box_cell(x->d, k->l[0], &cx) || !ebp_box_cell(y->d, k->l[1], &cy))
            continue;
        for (uint32_t h = ebp_box_hash(c, cx, cy) & b->cmask;; h = (h + 1) & b->cmask) {
            const box_cell *cl = &b->cells[h];
            if (cl->cls == UINT32_MAX)
                break;
            if (cl->cls != c || cl->c[0] != cx || cl->c[1] != cy)
                continue;
            for (uint32_t i = 0; i < cl->n; i++) {
                const box_entry *e = &b->ce[cl->off + i];
                if (ebp_box_side_has(e, 0, x->d) && ebp_box_side_has(e, 1, y->d)) {
                    box_mark(mt, e->pred[0], x);
                    box_mark(mt, e->pred[1], y);
                    if (!mt->record)
                        wake(mt, &e->t);
                }
            }
            break;
        }
    }
}

/* The boxes whose side `a` contains v (x sides also wake their sub-rules;
 * the sub-rule then checks the y side's mark). */
static void box_side(eb_matcher *mt, const boxidx *b, int a, const bval *v)
{
    for (uint32_t c = 0; c < b->ncls; c++) {
        const box_class *k = &b->cls[c];
        const uint32_t *srt = b->sorted[a] + k->off;
        /* a side is shorter than 2^l: a box containing v starts after v - 2^l
         * (2^(l+1) absorbs the rounding of the subtraction) */
        double from = v->d - ldexp(1.0, k->l[a] + 1);
        uint32_t lo = 0, hi = k->n;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (b->e[srt[mid]].lo[a] < from)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (uint32_t i = lo; i < k->n && b->e[srt[i]].lo[a] <= v->d; i++) {
            const box_entry *e = &b->e[srt[i]];
            if (!ebp_box_side_has(e, a, v->d))
                continue;
            box_mark(mt, e->pred[a], v);
            if (a == 0 && !mt->record)
                wake(mt, &e->t);
        }
    }
}

/* Start loading the cells box_point will probe for (x, y). */
static void box_point_prefetch(const boxidx *b, const bval *x, const bval *y)
{
    for (uint32_t c = 0; c < b->ncls; c++) {
        const box_class *k = &b->cls[c];
        int64_t cx, cy;
        if (ebp_box_cell(x->d, k->l[0], &cx) && ebp_box_cell(y->d, k->l[1], &cy))
            __builtin_prefetch(&b->cells[ebp_box_hash(c, cx, cy) & b->cmask]);
    }
}

/* End of a pass: look the kept numbers up in every box index (or, with
 * prefetch set, only start loading the cells that will take). */
static void box_lookups(eb_matcher *mt, const eb_snapshot *s, int prefetch)
{
    if (!mt->nbvals)
        return;
    if (GROW(mt, bsel, bsel_cap, mt->nbvals)) {
        mt->oom = 1;
        return;
    }
    for (uint32_t i = 0; i < s->nboxes; i++) {
        const boxidx *b = s->boxes[i];
        if (prefetch && b->ne < DEFER_MIN_ITEMS)
            continue; /* small: likely in cache */
        /* x values from the front of bsel, y values from the back */
        size_t nx = 0, ny = 0;
        for (size_t k = 0; k < mt->nbvals; k++) {
            if (mt->bvals[k].path == b->path[0])
                mt->bsel[nx++] = (uint32_t)k;
            else if (mt->bvals[k].path == b->path[1])
                mt->bsel[mt->nbvals - ++ny] = (uint32_t)k;
        }
        if (!nx || !ny)
            continue; /* a box needs both */
        const uint32_t *xs = mt->bsel, *ys = mt->bsel + mt->nbvals - ny;
        if (nx * ny <= BOX_PAIRS_MAX) {
            for (size_t p = 0; p < nx; p++)
                for (size_t q = 0; q < ny; q++) {
                    if (prefetch)
                        box_point_prefetch(b, &mt->bvals[xs[p]], &mt->bvals[ys[q]]);
                    else
                        box_point(mt, b, &mt->bvals[xs[p]], &mt->bvals[ys[q]]);
                }
        } else if (!prefetch) {
            for (size_t p = 0; p < nx; p++)
                box_side(mt, b, 0, &mt->bvals[xs[p]]);
            for (size_t q = 0; q < ny; q++)
                box_side(mt, b, 1, &mt->bvals[ys[q]]);
        }
    }
}

/* A grouped unit held: wake the groups whose hint held too.  Either look
 * each held hint up in the unit's groups (sorted by hint) or check each
 * group's hint.  A check is a bit test in the held filter (and a load only
 * when the bit is set), independent of the others; a binary search is lg
 * dependent loads: checking wins until the groups outnumber the search
 * steps about 4 to 1 (at 100,000 rules, before the filter, 4:1 ran 3%
 * faster than 1:1 and 16:1 was no better; with the filter, 1:1 to 64:1
 * differ by at most 1.5% in instructions per event under callgrind). */
static void wake_groups(eb_matcher *mt, const vm *v, const unit *u)
{
    const tgroup *g = v->groups + u->t.g.goff;
    uint32_t ng = u->t.g.ngroups;
    size_t lg = 1;
    while ((1u << lg) < ng)
        lg++;
    if ((size_t)ng <= 4 * mt->nhints * lg) {
        for (uint32_t i = 0; i < ng; i++)
            if (held(mt, g[i].hint))
                for (uint32_t k = 0; k < g[i].n; k++)
                    wake(mt, &v->targets[g[i].off + k]);
        return;
    }
    for (size_t h = 0; h < mt->nhints; h++) {
        uint32_t want = mt->hints[h], lo = 0, hi = ng;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (g[mid].hint < want)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < ng && g[lo].hint == want)
            for (uint32_t k = 0; k < g[lo].n; k++)
                wake(mt, &v->targets[g[lo].off + k]);
    }
}

static void consider(eb_matcher *mt, uint32_t sr, uint32_t gen)
{
    const sr_t *S = snap_sr(mt->snap, sr);
    if (!S->rule || S->gen != gen || mt->rule_epoch[S->slot] == mt->epoch)
        return;
    int ev = evaluate(mt, S);
    if (ev == EV_YES)
        add_rule(mt, S->slot, S->key);
    else if (ev == EV_DP && push_u32(&mt->dp, &mt->ndp, &mt->dp_cap, sr))
        mt->oom = 1;
}

eb_status eb_match(eb_matcher *mt, const eb_snapshot *s, const char *json, size_t len, unsigned flags,
                   const uint64_t **keys, size_t *nkeys, eb_error *err)
{
    *keys = NULL;
    *nkeys = 0;
    mt->snap = s;
    mt->oom = 0;
    mt->err = NULL;
    mt->nout = 0;
    mt->record = 0;
    if (prepare(mt, s))
        return set_err(mt, err, EB_ERR_NOMEM);
    next_epoch(mt);
    mt->nkcaps = 0;
    mt->kfallback = 0;
    mt->defer = 1;
    int rc = read_event(mt, json, len, flags);
    mt->defer = 0;
    if (rc)
        return set_err(mt, err, EB_ERR_EVENT);
    box_lookups(mt, s, 1);
    mt->nkprobes = 0;
    if (!mt->kfallback && mt->nkcaps)
        key_prepare(mt, s);
    process_items(mt);
    if (mt->kfallback)
        key_fallback(mt);
    else
        key_finish(mt);
    mt->ndp = 0;
    box_lookups(mt, s, 0);
    for (size_t i = 0; i < mt->ngunits; i++)
        wake_groups(mt, mt->gvms[i], mt->gunits[i]);
    /* in stages, each loading what the next one reads, so that the
     * candidates' cache misses overlap instead of coming one by one */
    size_t nk = 0;
    for (size_t i = 0; i < mt->ncands; i++) {
        const ebp_target *c = &mt->cands[i];
        if (c->hint != HINT_NONE && !held(mt, c->hint))
            continue; /* another field cannot hold: no need to look further */
        uint32_t h2 = (uint32_t)(c->aux >> 32);
        if (h2 != UINT32_MAX && !held(mt, h2))
            continue;
        __builtin_prefetch(snap_sr(s, c->sr));
        mt->cands[nk++] = *c;
    }
    for (size_t i = 0; i < nk; i++) {
        const sr_t *S = snap_sr(s, mt->cands[i].sr);
        __builtin_prefetch(S->fields);
        __builtin_prefetch(&mt->rule_epoch[S->slot]);
    }
    for (size_t i = 0; i < nk; i++)
        consider(mt, mt->cands[i].sr, (uint32_t)mt->cands[i].aux);
    for (uint32_t i = 0; i < s->nalways; i++)
        consider(mt, s->always[i], snap_sr(s, s->always[i])->gen);
    if (mt->ndp && !mt->oom) {
        /* pass 2: re-read recording where values sat, then solve exactly.
         * Same epoch: the marks are the same, and pass 1's rule stamps keep
         * its results from being reported twice. */
        scratch_reset(mt);
        mt->record = 1;
        rc = read_event(mt, json, len, flags);
        if (!rc)
            box_lookups(mt, s, 0);
        mt->record = 0;
        if (rc)
            return set_err(mt, err, EB_ERR_EVENT);
        for (size_t i = 0; i < mt->ndp; i++) {
            const sr_t *S = snap_sr(s, mt->dp[i]);
            if (mt->rule_epoch[S->slot] != mt->epoch && dp_check(mt, S))
                add_rule(mt, S->slot, S->key);
        }
    }
    if (mt->oom)
        return set_err(mt, err, EB_ERR_NOMEM);
    *keys = mt->out;
    *nkeys = mt->nout;
    return EB_OK;
}

eb_status eb_json_check(const char *json, size_t len, unsigned max_depth, eb_error *err)
{
    pthread_once(&tables_once, init_tables);
    eb_matcher mt;
    memset(&mt, 0, sizeof mt);
    mt.max_depth = max_depth ? max_depth : EB_DEFAULT_MAX_DEPTH;
    rd r = {(const unsigned char *)json, (const unsigned char *)json + len, (const unsigned char *)json, &mt, 0};
    int rc = skip_v(&r);
    if (rc == 0) {
        const unsigned char *p = ws_v(r.p, r.end);
        if (p != r.end) {
            mt.err = "unexpected data after the JSON value";
            mt.err_off = (size_t)(p - r.start);
            rc = -1;
        }
    }
    free(mt.vstack);
    if (rc)
        return set_err_as(&mt, err, EB_ERR_EVENT, "invalid JSON");
    return EB_OK;
}
