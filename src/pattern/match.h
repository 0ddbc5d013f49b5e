/* Matcher state shared by match.c and the reader template (reader_impl.h). */
#ifndef EBP_MATCH_H
#define EBP_MATCH_H

#include "machine.h"

/* pass 2: one place (array trail) where a predicate held or a path had a value */
typedef struct {
    uint32_t trail_off;
    uint32_t trail_len; /* in (array id, index) pairs */
    uint32_t next;      /* index+1 of the next record of the same predicate/path */
} rec;

/* a number at a path that is a side of some box index (kept until the end of the pass) */
typedef struct {
    double d;
    uint32_t path;
    uint32_t flag;             /* 1: top level, 2: inside an array */
    uint32_t toff, tlen;       /* pass 2: its array trail (tlen 0 at top level) */
} bval;

/* pass 1: a string at a VM_DEFER path, looked up after the read (so the
 * table lines it needs, prefetched when it was read, are in cache by then) */
typedef struct {
    const struct vm *v;     /* the path's value matcher */
    const unsigned char *s; /* the value's bytes (NULL: at ibuf + off) */
    uint32_t off, len;
    uint32_t arr;           /* inside an array */
    uint64_t hv;            /* hash of the value for the exact table */
} item;

/* pass 1: a string at a VM_KEYED path, kept for the key lookups (or, when
 * the event cannot use them, for the path's kvm) */
typedef struct {
    const struct vm *kvm;   /* the path's vm of keyed-only predicates, or NULL */
    const unsigned char *s; /* the value's bytes (NULL: at ibuf + off) */
    uint32_t off, len;
    uint32_t arr;           /* inside an array */
    uint32_t foff, flen;    /* its case folding at ibuf + foff (UINT32_MAX: not yet) */
} kcap;

/* pass 1: one key to look up in a key index */
typedef struct {
    const struct keyidx *K;
    uint64_t h;
    uint32_t koff, klen; /* in kbuf */
} kprobe;

typedef struct {
    uint32_t epoch;
    uint32_t flags;
    uint32_t head; /* pass 2: records, index+1 */
} mark_t;

/* A Bloom filter (one hash) of the predicates marked in the current event,
 * in bits: checked before a mark, so that a predicate that did not hold
 * (most group hints and candidate hints) costs no load from the marks. */
#define HELD_BITS 1024

struct eb_matcher {
    const eb_snapshot *snap;
    uint32_t epoch;
    uint64_t held[HELD_BITS / 64];
    int held_any; /* a bit is set in held */
    /* per predicate / path / sub-rule / rule, valid when .epoch == epoch */
    mark_t *preds; /* flags 1: held for a top-level value, 2: for a value inside an array */
    size_t preds_cap;
    mark_t *paths; /* flags 1: a value at top level, 2: a value inside an array */
    size_t paths_cap;
    uint32_t *rule_epoch;
    size_t rules_cap;
    rec *recs;
    size_t nrecs, recs_cap;
    uint32_t *trails;
    size_t ntrails, trails_cap;
    ebp_target *cands;
    size_t ncands, cands_cap;
    const unit **gunits; /* grouped units that held (pass 1) ... */
    const vm **gvms;     /* ... and their vms */
    size_t ngunits, gunits_cap, gvms_cap;
    uint32_t *hints; /* MARK_HINT predicates that held (pass 1) */
    size_t nhints, hints_cap;
    bval *bvals;
    size_t nbvals, bvals_cap;
    uint32_t *bsel; /* scratch: the bvals of one box index's two paths */
    size_t bsel_cap;
    uint32_t *dp;
    size_t ndp, dp_cap;
    uint64_t *out;
    size_t nout, out_cap;
    /* reader */
    uint32_t *tstack; /* (array id, index) pairs */
    size_t tdepth, tstack_cap;
    uint32_t next_array;
    uint32_t cur_trail_off;
    int trail_valid;
    int record; /* pass 2 */
    int defer; /* pass 1: strings at VM_DEFER paths go to items */
    item *items;
    size_t nitems, items_cap;
    /* key lookups (keyidx.h): per path id, the epoch and index in kcaps of
     * its first string; kfallback: some keyed path had a value in an array
     * or two values, so this event uses the kvms instead */
    uint32_t *kv;
    size_t kv_cap; /* in paths */
    kcap *kcaps;
    size_t nkcaps, kcaps_cap;
    int kfallback;
    unsigned char *kbuf;
    size_t kbuf_cap;
    kprobe *kprobes;
    size_t nkprobes, kprobes_cap;
    unsigned char *ibuf; /* unescaped strings of items */
    size_t ibuf_len, ibuf_cap;
    unsigned char *sbuf;
    size_t sbuf_cap;
    unsigned char *fbuf;
    size_t fbuf_cap;
    uint64_t *vstack; /* validating skipper: container kinds, one bit per level */
    size_t vstack_words;
    unsigned max_depth;
    int oom;
    const char *err;
    size_t err_off;
};

#endif
