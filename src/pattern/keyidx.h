/* Key index: the sub-rules that are conjunctions of string equalities (or
 * fixed-length affixes) on two or more paths, such as
 * `STREET equals-ignore-case "x" and FROM_ST = "7" and TO_ST = "9"`.
 *
 * Reached one field at a time, such a sub-rule wakes from its access
 * predicate and is dropped for its other fields; with thousands of rules
 * sharing a street, that is thousands of checks per event.  A key index
 * instead joins the fields up front: the sub-rules of one *signature* (the
 * same paths, each with the same kind of condition and affix length) are
 * hashed by the concatenation of their literals, and an event whose values
 * at those paths are one string each (at top level) looks up the same
 * concatenation of its values, once per signature.  A hit is a match.
 *
 * An event with a value at such a path inside an array, or with two values
 * there, takes the general way instead: the predicates used only by keyed
 * sub-rules sit in a second vm of their path (vm.kvm), run for those events
 * only, and the keyed sub-rules keep their access targets there.
 *
 * A key is, per field in signature order, a 4-byte length and the bytes:
 * the value (exact), its case folding (equals-ignore-case), or its first or
 * last `len` bytes, folded or not (prefix, suffix and their ignore-case
 * forms).
 *
 * Immutable once built; shared between snapshots by reference count. */
#ifndef EBP_KEYIDX_H
#define EBP_KEYIDX_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define KEY_MAX_FIELDS 8

enum { KK_EXACT, KK_EIC, KK_PREFIX, KK_SUFFIX, KK_PREFIX_EIC, KK_SUFFIX_EIC };

typedef struct {
    uint32_t k;                       /* fields */
    uint32_t path[KEY_MAX_FIELDS];    /* path ids, ascending */
    uint8_t kind[KEY_MAX_FIELDS];     /* KK_* */
    uint32_t len[KEY_MAX_FIELDS];     /* affix length in bytes (0 for KK_EXACT, KK_EIC) */
} key_sig;

typedef struct {
    uint64_t h;            /* ebp_hash_bytes(key, klen, 'K') */
    uint32_t koff, klen;   /* key bytes in keys; klen UINT32_MAX: empty slot */
    uint32_t toff, nt;     /* the rules with this key in t */
} key_slot;

typedef struct {
    uint64_t key;  /* the rule's key */
    uint32_t slot; /* the rule's slot */
} key_target;

typedef struct keyidx {
    int refs;
    key_sig sig;
    key_slot *slots; /* open addressing, power-of-two size */
    uint32_t mask;
    unsigned char *keys;
    key_target *t;
    size_t mem;
} keyidx;

/* One sub-rule to index: its key and its rule. */
typedef struct {
    const unsigned char *key;
    uint32_t klen;
    uint32_t slot;
    uint64_t rkey;
} key_input;

keyidx *ebp_key_build(const key_sig *sig, const key_input *in, uint32_t n); /* NULL on OOM */
void ebp_key_release(keyidx *k);

/* The slot holding key (klen bytes, hash h), or NULL. */
static inline const key_slot *ebp_key_find(const keyidx *x, const unsigned char *key, uint32_t klen, uint64_t h)
{
    for (uint32_t i = (uint32_t)h & x->mask;; i = (i + 1) & x->mask) {
        const key_slot *e = &x->slots[i];
        if (e->klen == UINT32_MAX)
            return NULL;
        if (e->h == h && e->klen == klen && !memcmp(x->keys + e->koff, key, klen))
            return e;
    }
}

#endif
