/* Internal structures of a compiled machine (see include/ebridge/pattern.h).
 *
 *   snapshot ── trie of path segments (node) ── per-path value matcher (vm)
 *      │                                             │ emits targets (sub-rule, field)
 *      ├── sub-rule table (sr_t, chunked)  <─────────┘
 *      └── rule table (rule_rec*, chunked) ── pattern (refcounted)
 *
 * Everything reachable from a snapshot is immutable.  A rule change builds a
 * new snapshot that shares every unchanged node, vm and table chunk with the
 * old one (reference counts), so a change costs O(rules on the touched paths
 * + table size / 64), not O(all rules). */
#ifndef EBP_MACHINE_H
#define EBP_MACHINE_H

#include <ebridge/pattern.h>

#include "ast.h"
#include "internal.h"

#include <pthread.h>

/* ---- targets ------------------------------------------------------------- */
typedef struct {
    uint32_t sr;    /* sub-rule id */
    uint32_t field; /* field index within the sub-rule */
} ebp_target;

typedef struct {
    uint32_t off, n; /* slice of vm->targets */
} tlist;

/* ---- value matcher per path ---------------------------------------------- */
typedef struct {
    const ebp_cond *cond;
    ebp_target t;
    unsigned char presence; /* 1: this is the "presence" entry of a NEG/MIX field */
} ebp_pred;

typedef struct {
    uint64_t hash;       /* ebp_hash_bytes(key, klen, tag) */
    uint32_t koff, klen; /* key bytes in vm->keys; klen == UINT32_MAX: empty slot */
    uint32_t tag;        /* 'S' string, 'I' IP address, 'N' double bits, 'T' number text, 'F' folded */
    tlist t;
} hm_entry;

typedef struct {
    hm_entry *slots; /* power-of-two size, empty slot has t.n == 0 && klen == UINT32_MAX */
    uint32_t mask;
    uint32_t count;
} hmap;

typedef struct {
    uint32_t first_edge;
    uint16_t nedges;
    uint16_t nwc;       /* wildcards anchored here */
    uint32_t wc_off;    /* into vm->wcs */
    tlist t;            /* prefixes/suffixes ending here */
} trie_node;

typedef struct {
    unsigned char byte;
    uint32_t child;
} trie_edge;

typedef struct {
    trie_node *nodes;
    trie_edge *edges;
    uint32_t nnodes;
} trie;

typedef struct {
    const ebp_glob *g;
    tlist t;
} wc_entry;

typedef struct {
    double lo, hi;
    unsigned char has_lo, has_hi, lo_open, hi_open;
    tlist t;
} range_entry;

typedef struct {
    ebp_cidr c;
    tlist t;
} cidr_entry;

typedef struct {
    const ebp_cond *cond; /* an EBP_C_AB_* condition */
    tlist t;
} ab_entry;

enum {
    VM_NUM = 1,   /* needs the double value of numbers */
    VM_IP = 2,    /* has IP literals or cidr: try to parse strings as IPs */
    VM_FOLD = 4,  /* needs the case-folded string */
    VM_STR = 8,   /* has some string-shaped condition */
    VM_WC = 16    /* has unindexed wildcards */
};

typedef struct vm {
    int refs;
    unsigned flags;
    ebp_arena arena;
    ebp_target *targets;
    const char *keys;
    hmap exact;      /* tags 'S', 'I' (family+16 bytes), 'N' (double bits), 'T' (number text) */
    hmap eic;        /* folded string */
    tlist t_true, t_false, t_null, exists, presence;
    trie prefix, suffix, prefix_eic, suffix_eic;
    wc_entry *wcs;   /* anchored wildcards (by trie node) followed by unanchored */
    uint32_t wc_unanchored_off, nwc_unanchored;
    range_entry *ranges;
    uint32_t nranges;
    double *bounds;  /* elementary-interval index when nranges is large */
    tlist *slots;    /* 2*nbounds+1 */
    uint32_t nbounds;
    cidr_entry *cidrs;
    uint32_t ncidrs;
    ab_entry *abs;
    uint32_t nabs;
    /* the predicate list this vm was built from (kept for rebuilds) */
    ebp_pred *preds;
    uint32_t npreds;
    size_t mem;
} vm;

vm *ebp_vm_build(const ebp_pred *preds, uint32_t npreds); /* NULL on OOM */
void ebp_vm_release(vm *v);

/* ---- path trie ------------------------------------------------------------- */
typedef struct node node;
typedef struct {
    const char *seg; /* owned by the node (copied) */
    uint32_t len;
    uint64_t hash;
    node *child;
} node_edge;

struct node {
    int refs;
    uint32_t nedges;
    node_edge *edges;   /* sorted by (len, bytes) */
    uint32_t *index;    /* hash index into edges when nedges > 8: size idx_mask+1, UINT32_MAX empty */
    uint32_t idx_mask;
    vm *vm;             /* values at exactly this path, or NULL */
    size_t mem;
};

void ebp_node_release(node *n);

/* ---- sub-rules and rules ----------------------------------------------------- */
enum { FK_POS = 0, FK_NEG = 1, FK_MIX = 2 };

typedef struct {
    struct rule_rec *rule; /* NULL: free slot */
    const unsigned char *kinds; /* per field FK_*, owned by the rule */
    uint16_t nfields, npos;
    uint16_t nwords; /* 64-bit words per field bitset */
    uint16_t single; /* 1: exactly one field and it is FK_POS */
} sr_t;

typedef struct rule_rec {
    int refs;
    uint64_t key;
    uint32_t slot;
    const struct eb_pattern *pat;
    uint32_t nsub;
    uint32_t *sr_ids;       /* nsub */
    unsigned char **kinds;  /* nsub arrays */
} rule_rec;

#define CHUNK_BITS 6
#define CHUNK 64u

typedef struct {
    int refs;
    sr_t items[CHUNK];
} sr_chunk;

typedef struct {
    int refs;
    rule_rec *items[CHUNK];
} rule_chunk;

struct eb_snapshot {
    int refs;
    node *root;
    sr_chunk **srs;
    uint32_t nsr_chunks;
    rule_chunk **rules;
    uint32_t nrule_chunks;
    uint32_t *always; /* sub-rules with no positive field: evaluated on every event */
    uint32_t nalways;
    size_t nrules;
    uint16_t max_nwords;
    size_t mem;
};

static inline const sr_t *snap_sr(const struct eb_snapshot *s, uint32_t id)
{
    return &s->srs[id >> CHUNK_BITS]->items[id & (CHUNK - 1)];
}

static inline rule_rec *snap_rule(const struct eb_snapshot *s, uint32_t slot)
{
    return s->rules[slot >> CHUNK_BITS]->items[slot & (CHUNK - 1)];
}

/* Find the edge for one path segment, NULL if none. */
static inline node *node_child(const node *n, const char *seg, size_t len)
{
    if (n->nedges <= 8) {
        for (uint32_t i = 0; i < n->nedges; i++) {
            const node_edge *e = &n->edges[i];
            if (e->len == len && !memcmp(e->seg, seg, len))
                return e->child;
        }
        return NULL;
    }
    uint64_t h = ebp_hash_bytes(seg, len, 0);
    for (uint32_t i = (uint32_t)h & n->idx_mask;; i = (i + 1) & n->idx_mask) {
        uint32_t k = n->index[i];
        if (k == UINT32_MAX)
            return NULL;
        const node_edge *e = &n->edges[k];
        if (e->hash == h && e->len == len && !memcmp(e->seg, seg, len))
            return e->child;
    }
}

#endif
