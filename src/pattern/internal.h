/* Internal helpers shared by the pattern library: bump arenas, growable
 * vectors and hashing.  Nothing here is part of the public API. */
#ifndef EBP_INTERNAL_H
#define EBP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define EBP_LIKELY(x) __builtin_expect(!!(x), 1)
#define EBP_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define EBP_INLINE static inline __attribute__((always_inline))
#else
#define EBP_LIKELY(x) (x)
#define EBP_UNLIKELY(x) (x)
#define EBP_INLINE static inline
#endif

/* ---- arena: many small allocations freed together ------------------- */
typedef struct ebp_arena_chunk {
    struct ebp_arena_chunk *next;
    size_t used, cap;
    max_align_t data[];
} ebp_arena_chunk;

typedef struct {
    ebp_arena_chunk *head;
    size_t total; /* bytes obtained from malloc, for memory accounting */
} ebp_arena;

void ebp_arena_init(ebp_arena *a);
void ebp_arena_free(ebp_arena *a);
/* Forget every allocation but keep the largest chunk for reuse. */
void ebp_arena_reset(ebp_arena *a);
/* NULL on out-of-memory.  Memory is 16-byte aligned and uninitialised. */
void *ebp_arena_alloc(ebp_arena *a, size_t n);
void *ebp_arena_memdup(ebp_arena *a, const void *p, size_t n); /* adds a NUL byte */

/* ---- growable array of fixed-size items (malloc-backed) ------------- */
typedef struct {
    void *items;
    size_t len, cap, isz;
} ebp_vec;

static inline void ebp_vec_init(ebp_vec *v, size_t isz)
{
    v->items = NULL;
    v->len = v->cap = 0;
    v->isz = isz;
}
static inline void ebp_vec_free(ebp_vec *v)
{
    free(v->items);
    v->items = NULL;
    v->len = v->cap = 0;
}
/* Returns a pointer to the new (uninitialised) last item, NULL on OOM. */
void *ebp_vec_push(ebp_vec *v);
int ebp_vec_reserve(ebp_vec *v, size_t n);
#define EBP_VEC_AT(v, T, i) (((T *)(v)->items)[i])

/* ---- hashing --------------------------------------------------------- */
static inline uint64_t ebp_hash_bytes(const void *p, size_t n, uint64_t seed)
{
    /* wyhash-style multiply-mix over 8-byte words; good enough for tables
     * keyed by short strings, and fast. */
    const unsigned char *s = (const unsigned char *)p;
    uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, s, n);
        h = (h ^ w ^ ((uint64_t)n << 56)) * 0x94D049BB133111EBull;
    }
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return h;
}

static inline uint64_t ebp_hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Bounded, always-NUL-terminated formatting into an error buffer. */
void ebp_errf(char *buf, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
