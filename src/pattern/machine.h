/* Internal structures of a compiled machine (see include/ebridge/pattern.h).
 *
 * A rule's pattern is a set of sub-rules; a sub-rule is a set of fields; a
 * field is a path and an OR-list of conditions.  Every distinct (path,
 * condition) is a *predicate* with a machine-wide id, shared by all fields
 * that use it.  Each path with conditions has a value matcher (vm) that
 * maps a value to the predicates it satisfies.
 *
 * Matching an event: the reader walks the paths some rule needs; for each
 * value the path's vm marks the satisfied predicates (and the path's
 * presence) in per-event scratch.  Each sub-rule has one *access* field,
 * its most selective positive field: only predicates of access fields carry
 * targets (sub-rule ids), so a predicate shared by thousands of rules but
 * selective for none (say `geometry.type = Polygon`) costs one mark, not
 * thousands of hits.  A sub-rule reached through its access field becomes a
 * candidate; at the end of the event each candidate checks all its fields
 * against the marks.  Sub-rules without a positive field (only
 * `exists: false`) are checked on every event.
 *
 * A candidate carries up to two *hints*: predicates of other fields of its
 * sub-rule that must hold, checked before the sub-rule is looked at.  A
 * predicate that is the access of many hinted sub-rules ("STREET = X" for
 * hundreds of rules that also name a FROM_ST) is *grouped*: its targets are
 * sorted by hint, and only the groups whose hint held in the event wake.
 * Whether a hint held is asked first of a small Bloom filter of the
 * predicates marked in the event, so the many hints that did not hold cost
 * a bit test each, not a load from the marks (megabytes at 100,000 rules).
 *
 * Prefixes and suffixes are kept in tries (walked byte by byte), except on a
 * path with many of them and few distinct lengths: then they are looked up
 * by their bytes, once per length.
 *
 * Sub-rules with bounded numeric ranges on two paths are reached through a
 * box index instead (box.h): the event's numbers at those paths are kept,
 * and after reading the boxes containing each (x, y) mark both ranges and
 * wake the sub-rule.
 *
 * Sub-rules whose fields are all string equalities or affixes on two or
 * more paths are also in a key index of their signature (keyidx.h): an
 * event whose values there are single and at top level looks the joined
 * values up once, and a hit is a match; other events use the predicates
 * that only such sub-rules have, kept in a second vm of the path (kvm).
 *
 * On paths with large hash tables (VM_DEFER) the first pass keeps each
 * string, with its hash computed and its table lines prefetched, and looks
 * it up after the read, so the lookups of an event run together and their
 * cache misses overlap with the reading.
 *
 *   snapshot ── trie of path segments (node) ── vm per path
 *      ├── box indexes (per pair of paths)
 *      ├── key indexes (per signature)
 *      ├── sub-rule table (sr_t, chunked, copy-on-write)
 *      └── rule table (rule_rec*, chunked) ── pattern (refcounted)
 *
 * Everything reachable from a snapshot is immutable.  A rule change builds a
 * new snapshot sharing every unchanged node, vm and table chunk. */
#ifndef EBP_MACHINE_H
#define EBP_MACHINE_H

#include <ebridge/pattern.h>

#include "ast.h"
#include "internal.h"

#include <pthread.h>

/* ---- targets ------------------------------------------------------------- */
#define HINT_NONE UINT32_MAX   /* no quick check */
#define HINT_SINGLE 0x80000000u /* | rule slot: the sub-rule has this one field only */
#define IS_SINGLE(h) (((h) & HINT_SINGLE) && (h) != HINT_NONE)
#define IS_PRED_HINT(h) (!((h) & HINT_SINGLE)) /* the hint is a predicate id */

typedef struct {
    uint32_t sr;   /* sub-rule id */
    uint32_t hint; /* HINT_SINGLE|slot, HINT_NONE, or a predicate another field
                    * of the sub-rule needs: a candidate whose hint predicate
                    * did not hold is dropped without looking at the sub-rule */
    uint64_t aux;  /* single: the rule's key (matching needs nothing else);
                    * otherwise the sub-rule id's generation (low 32 bits)
                    * and a second hint (high 32 bits, UINT32_MAX: none) */
} ebp_target;


/* One predicate in a vm: its id and the sub-rules it is the access for
 * (one target inline; more in vm->targets). */
/* unit.mark bits */
#define MARK_READ 1u /* other fields read this predicate: record it per event */
#define MARK_HINT 2u /* it is some sub-rule's hint: list it per event for grouped units */

/* A unit with many targets that have hints is *grouped*: when it holds, the
 * targets without a hint wake at once, and the others only for the hints
 * that held in the event, found in the unit's groups (sorted by hint). */
#define GROUP_MIN 8

typedef struct {
    uint32_t hint; /* the predicate every target of the group has as hint */
    uint32_t off;  /* slice of vm->targets */
    uint32_t n;
} tgroup;

typedef struct {
    uint32_t pred;
    uint16_t mark; /* MARK_* */
    uint16_t grp;  /* grouped: use t.g */
    uint32_t n;    /* number of targets */
    union {
        ebp_target one; /* n == 1 */
        uint32_t off;   /* n > 1: slice of vm->targets */
        struct {
            uint32_t off, ndirect; /* targets that wake at once: slice of vm->targets */
            uint32_t goff, ngroups; /* slice of vm->groups */
        } g;
    } t;
} unit;

/* ---- value matcher per path ---------------------------------------------- */
typedef struct {
    uint64_t k8;         /* the key's first 8 bytes, zero padded */
    uint32_t hash;       /* low bits of ebp_hash_bytes(key, klen, tag) */
    uint32_t klen;       /* UINT32_MAX: empty slot */
    uint32_t koff;       /* key bytes in vm->keys (read only when klen > 8) */
    uint32_t tag;        /* 'S' string, 'I' IP address, 'N' double bits, 'T' number text, 'F' folded */
    unit u;
} hm_entry;

typedef struct {
    hm_entry *slots; /* power-of-two size */
    uint8_t *tags;   /* per slot: 0 empty, else 0x80 | top bits of the hash (a
                      * small array probed first, so a miss rarely touches slots) */
    uint32_t mask;
    uint32_t count;
} hmap;

typedef struct {
    uint32_t first_edge;
    uint16_t nedges;
    uint16_t nwc;    /* wildcards anchored here */
    uint32_t wc_off; /* into vm->wcs */
    uint32_t has_u;  /* a prefix/suffix predicate ends here */
    unit u;
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
    unit u;
    /* simple: the glob is prefix*suffix, each at most 8 bytes, and matches
     * here (wc_match) without the glob: at least plen + slen bytes, the
     * first plen of them pfx and the last slen sfx (zero-padded words) */
    uint64_t pfx, sfx;
    uint8_t plen, slen, simple;
} wc_entry;

static inline int wc_match(const wc_entry *w, const unsigned char *v, size_t n)
{
    if (!w->simple)
        return ebp_glob_match(w->g, v, n);
    if (n < (size_t)w->plen + w->slen)
        return 0;
    if (!n)
        return 1; /* the glob is "*" (v may be NULL) */
    return ebp_load_head(v, w->plen) == w->pfx && ebp_load_head(v + n - w->slen, w->slen) == w->sfx;
}

typedef struct {
    double lo, hi;
    unsigned char has_lo, has_hi, lo_open, hi_open;
    unit u;
} range_entry;

typedef struct {
    ebp_cidr c;
    unit u;
} cidr_entry;

/* interval tree node: the ranges containing `center` (inclusive), listed
 * twice in it_items (by lo ascending at off, by hi descending at off+n);
 * left/right: subtrees of the ranges wholly below / above (UINT32_MAX: none) */
typedef struct itnode {
    double center;
    uint32_t off, n;
    uint32_t left, right;
} itnode;

typedef struct {
    const ebp_cond *cond; /* an EBP_C_AB_* condition */
    unit u;
} ab_entry;

enum {
    VM_NUM = 1,  /* needs the double value of numbers */
    VM_IP = 2,   /* has IP literals or cidr: try to parse strings as IPs */
    VM_FOLD = 4, /* needs the case-folded string */
    VM_STR = 8,  /* has some string-shaped condition */
    VM_BOX = 16, /* a side of some box index: keep the event's numbers here for it */
    VM_DEFER = 32, /* hash tables large enough to miss the cache: pass 1 looks
                    * strings up after the read, their lines prefetched */
    VM_KEYED = 64  /* a path of some key index (keyidx.h): keep its strings */
};

/* affix kinds */
enum { AF_PREFIX = 0, AF_SUFFIX = 1, AF_PREFIX_EIC = 2, AF_SUFFIX_EIC = 3 };
#define AFFIX_MAX_LENGTHS 4
#define AFFIX_MIN_ITEMS 32
#define AFFIX_TAGS "PXQY"

/* A vm whose hash tables hold at least this many entries in all gets VM_DEFER
 * (ebp_vm_defer_min: tests set it to 0 to take the deferred path with small
 * machines; it is read when a vm is built). */
#define DEFER_MIN_ITEMS 1024
extern unsigned ebp_vm_defer_min;

/* Up to this many numeric ranges on a path are scanned; more get an index. */
#define RANGE_LINEAR_MAX 8

/* What a vm is built from: one entry per predicate at the path. */
typedef struct {
    uint32_t pred;
    uint32_t mark; /* MARK_* bits, see unit.mark */
    const ebp_cond *cond;
    const struct eb_pattern *pat; /* owns cond */
    const ebp_target *targets;
    uint32_t ntargets;
} vm_input;

/* vm.sops bits: what vm_str has to do for a string (one word to test, so a
 * string touches only the lines of the tables it needs) */
enum {
    SO_EXISTS = 1,
    SO_EXACT = 2,
    SO_IP = 4,
    SO_PREFIX = 8,
    SO_SUFFIX = 16,
    SO_AFFIX = 32,
    SO_WCU = 64, /* unanchored wildcards */
    SO_CIDR = 128,
    SO_FOLD = 256,
    SO_EIC = 512,
    SO_PREFIX_EIC = 1024,
    SO_SUFFIX_EIC = 2048,
    SO_ABS = 4096
};

/* Fields in the order matching reads them: the first line has what every
 * string needs. */
typedef struct vm {
    int refs;
    unsigned flags;
    uint32_t sops; /* SO_* */
    hmap exact; /* tags 'S', 'I' (family+16 bytes), 'N' (double bits), 'T' (number text) */
    const char *keys;
    ebp_target *targets;
    tgroup *groups;
    hmap eic;   /* folded string */
    /* prefix/suffix predicates of few distinct lengths are not in the tries
     * but here, by their bytes (tags AFFIX_TAGS[kind]); a value is looked
     * up once per length instead of walking a trie byte by byte */
    hmap affix;
    uint8_t affix_nlen[4];
    uint32_t affix_len[4][AFFIX_MAX_LENGTHS]; /* per kind (AF_*): the lengths, ascending */
    trie prefix, suffix, prefix_eic, suffix_eic;
    wc_entry *wcs; /* anchored wildcards (by trie node) followed by unanchored */
    uint32_t wc_unanchored_off, nwc_unanchored;
    unit u_true, u_false, u_null, u_exists;
    uint32_t has_true, has_false, has_null, has_exists;
    range_entry *ranges;
    uint32_t nranges;
    /* index, when nranges is large: one-sided ranges sorted so the matches
     * are a prefix; two-sided ranges in a centered interval tree */
    uint32_t *lower_idx, nlower; /* ">"/">=" only, by lo ascending, closed first */
    uint32_t *upper_idx, nupper; /* "<"/"<=" only, by hi descending, closed first */
    struct itnode *itree;        /* root is itree[0] when nitree > 0 */
    uint32_t nitree;
    uint32_t *it_items;          /* range indexes, per node: by lo ascending, then by hi descending */
    cidr_entry *cidrs;
    uint32_t ncidrs;
    ab_entry *abs;
    uint32_t nabs;
    const struct eb_pattern **pats; /* patterns whose conditions we point into (referenced) */
    uint32_t npats;
    /* VM_KEYED: the predicates only keyed sub-rules use, for the events
     * that cannot use the key indexes (owned; NULL: none) */
    struct vm *kvm;
    ebp_arena arena;
    size_t mem;
} vm;

vm *ebp_vm_build(const vm_input *in, uint32_t n, unsigned flags); /* flags: VM_BOX or 0; NULL on OOM */
void ebp_vm_release(vm *v);

/* ---- path trie ------------------------------------------------------------- */
typedef struct node node;
typedef struct {
    const char *seg; /* points at the child's own name */
    uint32_t len;
    uint64_t hash;
    uint64_t k8; /* ebp_load_head(seg, len): most names are told apart by it alone */
    node *child;
} node_edge;

struct node {
    int refs;
    uint32_t nedges;
    node_edge *edges; /* sorted by (len, bytes) */
    uint32_t *index;  /* hash index into edges when nedges > 8 */
    /* 4 <= nedges <= 8: per node_bucket() of a name, 0 no edge, 1 + i
     * edge i, NB_SEVERAL more than one (then the edges are scanned) */
    uint8_t buckets[16];
    uint32_t idx_mask;
    uint32_t path_id; /* UINT32_MAX: no field uses exactly this path */
    int presence;     /* a field here reads whether the path holds a value (exists:false, or it with others) */
    vm *vm;           /* values at exactly this path, or NULL */
};

void ebp_node_release(node *n);

/* ---- sub-rules and rules ----------------------------------------------------- */
enum { FK_POS = 0, FK_NEG = 1, FK_MIX = 2 };

typedef struct {
    uint8_t kind;      /* FK_* */
    uint32_t path_id;
    uint32_t npreds;   /* predicates of the non-"exists: false" conditions */
    uint32_t *preds;
} field_rec;

typedef struct {
    struct rule_rec *rule; /* NULL: free slot */
    const field_rec *fields;
    uint64_t key;          /* the rule's key and slot, copied here for matching */
    uint32_t slot;
    uint32_t gen;
    uint32_t nfields;
} sr_t;

typedef struct rule_rec {
    int refs;
    uint32_t slot;
    uint32_t nsub;
    uint64_t key;
    const struct eb_pattern *pat;
    uint32_t *sr_ids;       /* 4 * nsub: the sub-rule ids, then RR_GENS, RR_HINTS, RR_HINTS2 */
    uint16_t *access;       /* 2 * nsub: access field index (a box: its x side), then RR_BOX2 */
    field_rec **fields;     /* nsub arrays of nfields */
} rule_rec;

/* per sub-rule arrays that follow sr_ids / access (no pointers of their own:
 * a rule record stays small, see the memory target per rule) */
#define RR_GENS(r) ((r)->sr_ids + (r)->nsub)       /* generation of each sub-rule id */
#define RR_HINTS(r) ((r)->sr_ids + 2 * (r)->nsub)  /* ebp_target.hint */
#define RR_HINTS2(r) ((r)->sr_ids + 3 * (r)->nsub) /* the second hint, UINT32_MAX: none */
#define RR_BOX2(r) ((r)->access + (r)->nsub)       /* a box's y side field index, UINT16_MAX: not a box */

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
    struct boxidx **boxes; /* box indexes, one per pair of paths (box.h) */
    uint32_t nboxes;
    struct keyidx **kidx; /* key indexes, one per signature (keyidx.h) */
    uint32_t nkidx;
    uint32_t npred_cap; /* predicate ids are < npred_cap */
    uint32_t npath_cap; /* path ids are < npath_cap */
};

static inline const sr_t *snap_sr(const struct eb_snapshot *s, uint32_t id)
{
    return &s->srs[id >> CHUNK_BITS]->items[id & (CHUNK - 1)];
}

static inline int seg_eq(const char *a, const char *b, size_t n)
{
    /* segments are short: compare inline, first byte first */
    if (n && a[0] != b[0])
        return 0;
    for (size_t i = 1; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

#define NB_SEVERAL 0xFF

/* The bucket of a name (k8 = ebp_load_head(name, len)) in node.buckets. */
static inline unsigned node_bucket(uint64_t k8, size_t len)
{
    return (unsigned)(((k8 ^ len) * 0x9E3779B97F4A7C15ull) >> 60);
}

/* node_child_idx for nodes with more than 8 edges (hash index) */
node *ebp_node_child_hashed(const node *n, const char *seg, size_t len, uint32_t *idx);

/* The child for one path segment (and its edge index in *idx), NULL if none. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline node *node_child_idx(const node *n, const char *seg, size_t len, uint32_t *idx)
{
    if (n->nedges <= 8) {
        const uint64_t k8 = ebp_load_head(seg, len);
        const unsigned b = n->nedges >= 4 ? n->buckets[node_bucket(k8, len)] : NB_SEVERAL;
        if (b != NB_SEVERAL) {
            /* at most one edge has this bucket: most names an event holds
             * and no pattern reads stop here */
            const node_edge *e = &n->edges[b - 1];
            if (b && e->len == len && e->k8 == k8 && (len <= 8 || seg_eq(e->seg + 8, seg + 8, len - 8))) {
                *idx = b - 1;
                return e->child;
            }
            return NULL;
        }
        for (uint32_t i = 0; i < n->nedges; i++) {
            const node_edge *e = &n->edges[i];
            if (e->len == len && e->k8 == k8 && (len <= 8 || seg_eq(e->seg + 8, seg + 8, len - 8))) {
                *idx = i;
                return e->child;
            }
        }
        return NULL;
    }
    return ebp_node_child_hashed(n, seg, len, idx);
}

static inline node *node_child(const node *n, const char *seg, size_t len)
{
    uint32_t idx;
    return node_child_idx(n, seg, len, &idx);
}

#endif
