/* Building box indexes (see box.h); lookups are in match.c. */
#include "box.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

int ebp_box_side_ok(const ebp_cond *c)
{
    return c->kind == EBP_C_RANGE && c->has_lo && c->has_hi && isfinite(c->lo) && isfinite(c->hi) && c->lo < c->hi;
}

/* The smallest l with hi - lo < 2^l: the side then touches at most 2 cells. */
static int side_level(double lo, double hi)
{
    double w = hi - lo;
    if (!(w < INFINITY))
        return 1024;
    if (!(w > 0))
        w = DBL_MIN;
    int e;
    frexp(w, &e); /* w < 2^e */
    return e;
}

typedef struct {
    int l[2];
    double lo;
    uint32_t i;
} ord_t;

static int int_desc(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return x > y ? -1 : x < y;
}

/* Per axis, raise each box's level to its class's: the highest level of a
 * band of BOX_CLASS_LEVELS levels, bands taken from the top down. */
static int band_levels(ord_t *ord, uint32_t n)
{
    int *lv = malloc((n ? n : 1) * sizeof *lv);
    int *top = malloc((n ? n : 1) * sizeof *top);
    if (!lv || !top) {
        free(lv);
        free(top);
        return -1;
    }
    for (int a = 0; a < 2; a++) {
        for (uint32_t i = 0; i < n; i++)
            lv[i] = ord[i].l[a];
        qsort(lv, n, sizeof *lv, int_desc);
        uint32_t nd = 0;
        for (uint32_t i = 0; i < n; i++)
            if (!nd || lv[nd - 1] != lv[i])
                lv[nd++] = lv[i];
        /* top[k]: the band level of distinct level lv[k] */
        for (uint32_t k = 0; k < nd; k++)
            top[k] = k && lv[k] > top[k - 1] - BOX_CLASS_LEVELS ? top[k - 1] : lv[k];
        for (uint32_t i = 0; i < n; i++) {
            uint32_t lo = 0, hi = nd; /* lv is descending */
            while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (lv[mid] > ord[i].l[a])
                    lo = mid + 1;
                else
                    hi = mid;
            }
            ord[i].l[a] = top[lo];
        }
    }
    free(lv);
    free(top);
    return 0;
}

static int ord_cmp(const void *a, const void *b)
{
    const ord_t *x = a, *y = b;
    for (int k = 0; k < 2; k++)
        if (x->l[k] != y->l[k])
            return x->l[k] < y->l[k] ? -1 : 1;
    if (x->lo != y->lo)
        return x->lo < y->lo ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

typedef struct {
    uint32_t cls;
    int64_t c[2];
    uint32_t i;
} cellkey;

static int cell_cmp(const void *a, const void *b)
{
    const cellkey *x = a, *y = b;
    if (x->cls != y->cls)
        return x->cls < y->cls ? -1 : 1;
    for (int k = 0; k < 2; k++)
        if (x->c[k] != y->c[k])
            return x->c[k] < y->c[k] ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

void ebp_box_release(boxidx *b)
{
    if (!b || __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    free(b->e);
    free(b->cls);
    free(b->cells);
    free(b->ce);
    free(b->sorted[0]);
    free(b->sorted[1]);
    free(b);
}

boxidx *ebp_box_build(uint32_t px, uint32_t py, const box_input *in, uint32_t n)
{
    boxidx *b = calloc(1, sizeof *b);
    ord_t *ord = malloc((n ? n : 1) * sizeof *ord);
    cellkey *ck = malloc((n ? 4 * (size_t)n : 1) * sizeof *ck);
    if (!b || !ord || !ck)
        goto fail;
    b->refs = 1;
    b->path[0] = px;
    b->path[1] = py;
    b->ne = n;
    b->e = malloc((n ? n : 1) * sizeof *b->e);
    b->sorted[0] = malloc((n ? n : 1) * sizeof(uint32_t));
    b->sorted[1] = malloc((n ? n : 1) * sizeof(uint32_t));
    b->cls = malloc((n ? n : 1) * sizeof *b->cls);
    if (!b->e || !b->sorted[0] || !b->sorted[1] || !b->cls)
        goto fail;
    for (uint32_t i = 0; i < n; i++) {
        box_entry *e = &b->e[i];
        memset(e, 0, sizeof *e);
        for (int a = 0; a < 2; a++) {
            const ebp_cond *c = in[i].r[a];
            e->lo[a] = c->lo;
            e->hi[a] = c->hi;
            e->lo_open[a] = c->lo_open;
            e->hi_open[a] = c->hi_open;
            e->pred[a] = in[i].pred[a];
            ord[i].l[a] = side_level(c->lo, c->hi);
        }
        e->t = in[i].t;
        ord[i].lo = e->lo[0];
        ord[i].i = i;
    }
    /* classes; per class the boxes by lo[0], and by lo[1] */
    if (band_levels(ord, n))
        goto fail;
    qsort(ord, n, sizeof *ord, ord_cmp);
    size_t nck = 0;
    for (uint32_t i = 0; i < n;) {
        uint32_t j = i;
        while (j < n && ord[j].l[0] == ord[i].l[0] && ord[j].l[1] == ord[i].l[1])
            j++;
        box_class *c = &b->cls[b->ncls];
        c->l[0] = ord[i].l[0];
        c->l[1] = ord[i].l[1];
        c->off = i;
        c->n = j - i;
        for (uint32_t k = i; k < j; k++) {
            b->sorted[0][k] = ord[k].i;
            ord[k].lo = b->e[ord[k].i].lo[1];
            /* the cells the box touches */
            const box_entry *e = &b->e[ord[k].i];
            int64_t lo[2], hi[2];
            for (int a = 0; a < 2; a++) {
                /* cannot fail: a side's ends are within 2^53 cells of 0 */
                if (!ebp_box_cell(e->lo[a], c->l[a], &lo[a]) || !ebp_box_cell(e->hi[a], c->l[a], &hi[a]))
                    lo[a] = hi[a] = 0;
            }
            for (int64_t x = lo[0]; x <= hi[0]; x++)
                for (int64_t y = lo[1]; y <= hi[1]; y++)
                    ck[nck++] = (cellkey){b->ncls, {x, y}, ord[k].i};
        }
        qsort(ord + i, j - i, sizeof *ord, ord_cmp);
        for (uint32_t k = i; k < j; k++)
            b->sorted[1][k] = ord[k].i;
        b->ncls++;
        i = j;
    }
    /* cells: runs of equal (class, cell) in sorted order */
    qsort(ck, nck, sizeof *ck, cell_cmp);
    b->ce = malloc((nck ? nck : 1) * sizeof *b->ce);
    size_t ncells = 0;
    for (size_t i = 0; i < nck; i++)
        ncells += !i || ck[i].cls != ck[i - 1].cls || ck[i].c[0] != ck[i - 1].c[0] || ck[i].c[1] != ck[i - 1].c[1];
    uint32_t cap = 8;
    while (cap < 2 * ncells)
        cap *= 2;
    b->cells = malloc(cap * sizeof *b->cells);
    if (!b->ce || !b->cells)
        goto fail;
    b->cmask = cap - 1;
    for (uint32_t i = 0; i < cap; i++)
        b->cells[i].cls = UINT32_MAX;
    for (size_t i = 0; i < nck;) {
        size_t j = i;
        while (j < nck && ck[j].cls == ck[i].cls && ck[j].c[0] == ck[i].c[0] && ck[j].c[1] == ck[i].c[1]) {
            b->ce[j] = b->e[ck[j].i];
            j++;
        }
        uint32_t h = ebp_box_hash(ck[i].cls, ck[i].c[0], ck[i].c[1]) & b->cmask;
        while (b->cells[h].cls != UINT32_MAX)
            h = (h + 1) & b->cmask;
        b->cells[h] = (box_cell){{ck[i].c[0], ck[i].c[1]}, ck[i].cls, (uint32_t)i, (uint32_t)(j - i)};
        i = j;
    }
    b->mem = sizeof *b + n * (sizeof *b->e + 2 * sizeof(uint32_t)) + b->ncls * sizeof *b->cls +
             cap * sizeof *b->cells + nck * sizeof *b->ce;
    free(ord);
    free(ck);
    return b;
fail:
    free(ord);
    free(ck);
    if (b) {
        b->refs = 1;
        ebp_box_release(b);
    }
    return NULL;
}
