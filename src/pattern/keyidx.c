/* Key index (keyidx.h): built once from the sub-rules of one signature. */
#include "keyidx.h"

#include "internal.h"

#include <stdlib.h>
#include <string.h>

void ebp_key_release(keyidx *k)
{
    if (!k || __atomic_sub_fetch(&k->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    free(k->slots);
    free(k->keys);
    free(k->t);
    free(k);
}

/* The slot of key in, or the empty slot where it goes. */
static uint32_t key_slot_of(const keyidx *k, const key_input *in, uint64_t h)
{
    uint32_t at = (uint32_t)h & k->mask;
    for (;; at = (at + 1) & k->mask) {
        const key_slot *e = &k->slots[at];
        if (e->klen == UINT32_MAX ||
            (e->h == h && e->klen == in->klen && !memcmp(k->keys + e->koff, in->key, in->klen)))
            return at;
    }
}

keyidx *ebp_key_build(const key_sig *sig, const key_input *in, uint32_t n)
{
    keyidx *k = calloc(1, sizeof *k);
    uint64_t *hs = malloc((n ? n : 1) * sizeof *hs);
    uint32_t *at = malloc((n ? n : 1) * sizeof *at);
    size_t kbytes = 0;
    for (uint32_t i = 0; i < n; i++)
        kbytes += in[i].klen;
    if (!k || !hs || !at)
        goto oom;
    k->refs = 1;
    k->sig = *sig;
    uint32_t size = 8;
    while (size < 2 * (size_t)n)
        size *= 2;
    k->mask = size - 1;
    k->slots = malloc(size * sizeof *k->slots);
    k->keys = malloc(kbytes ? kbytes : 1);
    k->t = malloc((n ? n : 1) * sizeof *k->t);
    if (!k->slots || !k->keys || !k->t)
        goto oom;
    for (uint32_t i = 0; i < size; i++)
        k->slots[i].klen = UINT32_MAX;
    /* place the distinct keys and count the rules of each ... */
    uint32_t koff = 0;
    for (uint32_t i = 0; i < n; i++) {
        hs[i] = ebp_hash_bytes(in[i].key, in[i].klen, 'K');
        at[i] = key_slot_of(k, &in[i], hs[i]);
        key_slot *e = &k->slots[at[i]];
        if (e->klen == UINT32_MAX) {
            memcpy(k->keys + koff, in[i].key, in[i].klen);
            *e = (key_slot){hs[i], koff, in[i].klen, 0, 0};
            koff += in[i].klen;
        }
        e->nt++;
    }
    /* ... then give each key its slice of targets */
    uint32_t off = 0;
    for (uint32_t i = 0; i < size; i++)
        if (k->slots[i].klen != UINT32_MAX) {
            k->slots[i].toff = off;
            off += k->slots[i].nt;
            k->slots[i].nt = 0;
        }
    for (uint32_t i = 0; i < n; i++) {
        key_slot *e = &k->slots[at[i]];
        k->t[e->toff + e->nt++] = (key_target){in[i].rkey, in[i].slot};
    }
    k->mem = sizeof *k + size * sizeof *k->slots + koff + n * sizeof *k->t;
    free(hs);
    free(at);
    return k;
oom:
    free(hs);
    free(at);
    if (k) {
        free(k->slots);
        free(k->keys);
        free(k->t);
        free(k);
    }
    return NULL;
}
