/* Box index: the sub-rules that have bounded numeric ranges on two paths
 * ("x in [a, b] and y in [c, d]", e.g. a point in a rectangle).
 *
 * Indexed one range at a time, such a sub-rule would make every x range
 * containing the event's x a candidate, to be dropped at once for its y.  A
 * box index instead finds the boxes containing the point (x, y) directly:
 * boxes are put in classes by the size of their sides, and in each class in
 * a hash of grid cells at least as long as any side in the class, so a box
 * covers at most 2 x 2 cells and a point is looked up in one cell per class.
 * A class spans sides from 2^(l-4) to 2^l long per axis (a cell then holds
 * the boxes near it, up to 16 x 16 times smaller), so boxes of similar size
 * make one class and one lookup.  A cell's boxes are stored together.
 *
 * When an event has so many values on the two paths that trying every
 * (x, y) pair would cost more than the ranges one by one, the index also
 * answers per axis: per class, the boxes sorted by the low end of each side
 * (a side is at most the class's cell size long, so the boxes containing v
 * start in [v - cell, v]).
 *
 * Immutable once built; shared between snapshots by reference count. */
#ifndef EBP_BOX_H
#define EBP_BOX_H

#include "ast.h"
#include "machine.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    double lo[2], hi[2];        /* per axis (0 = x, 1 = y) */
    unsigned char lo_open[2], hi_open[2];
    uint32_t pred[2];           /* the predicates of the two ranges */
    ebp_target t;               /* the sub-rule, woken when the point is in the box */
} box_entry;

typedef struct {
    int l[2];          /* cells are 2^l[0] by 2^l[1] */
    uint32_t off, n;   /* this class's boxes in sorted[axis] */
} box_class;

typedef struct {
    int64_t c[2];
    uint32_t cls; /* UINT32_MAX: empty slot */
    uint32_t off, n; /* the cell's boxes in ce */
} box_cell;

/* Per axis, the sides of a class are 2^(l - CLASS_LEVELS) .. 2^l long. */
#define BOX_CLASS_LEVELS 4

typedef struct boxidx {
    int refs;
    uint32_t path[2]; /* path ids, path[0] < path[1] */
    box_entry *e;
    uint32_t ne;
    box_class *cls;
    uint32_t ncls;
    box_cell *cells;  /* open addressing by (class, cell) */
    uint32_t cmask;
    box_entry *ce;    /* copies of the boxes, cell by cell */
    uint32_t *sorted[2]; /* box indexes per class, by lo[axis] ascending */
    size_t mem;
} boxidx;

/* One sub-rule to index. */
typedef struct {
    const ebp_cond *r[2]; /* EBP_C_RANGE with both bounds */
    uint32_t pred[2];
    ebp_target t;
} box_input;

/* Whether a condition can be a side of a box. */
int ebp_box_side_ok(const ebp_cond *c);

boxidx *ebp_box_build(uint32_t px, uint32_t py, const box_input *in, uint32_t n); /* NULL on OOM */
void ebp_box_release(boxidx *b);

/* The cell of v for cells 2^l long; 0 if beyond any box's cells. */
static inline int ebp_box_cell(double v, int l, int64_t *c)
{
    double q;
    if (l >= -1023 && l <= 1022) {
        /* 2^-l is a normal double: multiplying by it is exact (or rounds
         * exactly as ldexp does) and needs no library call */
        uint64_t bits = (uint64_t)(1023 - l) << 52;
        double scale;
        memcpy(&scale, &bits, sizeof scale);
        q = floor(v * scale);
    } else {
        q = floor(ldexp(v, -l));
    }
    if (!(q > -0x1p62 && q < 0x1p62))
        return 0;
    *c = (int64_t)q;
    return 1;
}

static inline uint32_t ebp_box_hash(uint32_t cls, int64_t cx, int64_t cy)
{
    uint64_t h = (uint64_t)cx * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)cy + 0x632BE59BD9B4E019ULL) * 0xC2B2AE3D27D4EB4FULL;
    h ^= (uint64_t)cls * 0x165667B19E3779F9ULL;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ULL;
    return (uint32_t)(h ^ (h >> 32));
}

static inline int ebp_box_side_has(const box_entry *e, int a, double d)
{
    if (e->lo_open[a] ? !(d > e->lo[a]) : !(d >= e->lo[a]))
        return 0;
    return e->hi_open[a] ? d < e->hi[a] : d <= e->hi[a];
}

#endif
