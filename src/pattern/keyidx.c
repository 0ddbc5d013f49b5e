/* Key index (keyidx.h): built once from the sub-rules of one signature. */
#include "keyidx.h"

#include "internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const key_input *in;
    uint64_t h;
} kent;

static int kent_cmp(const void *a, const void *b)
{
    const kent *x = a, *y = b;
    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    if (x->in->klen != y->in->klen)
        return x->in->klen < y->in->klen ? -1 : 1;
    return memcmp(x->in->key, y->in->key, x->in->klen);
}

void ebp_key_release(keyidx *k)
{
    if (!k || __atomic_sub_fetch(&k->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    free(k->slots);
    free(k->keys);
    free(k->t);
    free(k);
}

keyidx *ebp_key_build(const key_sig *sig, const key_input *in, uint32_t n)
{
    keyidx *k = calloc(1, sizeof *k);
    kent *e = malloc((n ? n : 1) * sizeof *e);
    size_t kbytes = 0;
    for (uint32_t i = 0; i < n; i++)
        kbytes += in[i].klen;
    if (!k || !e)
        goto oom;
    k->refs = 1;
    k->sig = *sig;
    for (uint32_t i = 0; i < n; i++)
        e[i] = (kent){&in[i], ebp_hash_bytes(in[i].key, in[i].klen, 'K')};
    qsort(e, n, sizeof *e, kent_cmp);
    uint32_t distinct = 0;
    for (uint32_t i = 0; i < n; i++)
        distinct += i == 0 || kent_cmp(&e[i - 1], &e[i]) != 0;
    uint32_t size = 8;
    while (size < 2 * (size_t)distinct)
        size *= 2;
    k->mask = size - 1;
    k->slots = malloc(size * sizeof *k->slots);
    k->keys = malloc(kbytes ? kbytes : 1);
    k->t = malloc((n ? n : 1) * sizeof *k->t);
    if (!k->slots || !k->keys || !k->t)
        goto oom;
    for (uint32_t i = 0; i < size; i++)
        k->slots[i].klen = UINT32_MAX;
    uint32_t koff = 0;
    for (uint32_t i = 0; i < n;) {
        uint32_t j = i + 1;
        while (j < n && kent_cmp(&e[i], &e[j]) == 0)
            j++;
        uint32_t at = (uint32_t)e[i].h & k->mask;
        while (k->slots[at].klen != UINT32_MAX)
            at = (at + 1) & k->mask;
        memcpy(k->keys + koff, e[i].in->key, e[i].in->klen);
        k->slots[at] = (key_slot){e[i].h, koff, e[i].in->klen, i, j - i};
        koff += e[i].in->klen;
        for (uint32_t q = i; q < j; q++)
            k->t[q] = (key_target){e[q].in->rkey, e[q].in->slot};
        i = j;
    }
    k->mem = sizeof *k + size * sizeof *k->slots + kbytes + n * sizeof *k->t;
    free(e);
    return k;
oom:
    free(e);
    if (k) {
        free(k->slots);
        free(k->keys);
        free(k->t);
        free(k);
    }
    return NULL;
}
