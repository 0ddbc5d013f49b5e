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

/* The n < 8 bytes at s as a little-endian word, zero padded: the same value
 * as memcpy into a zeroed uint64_t, but from at most two overlapping loads
 * (a byte-wise copy then a word load stalls on store forwarding). */
static inline uint64_t ebp_load_tail(const unsigned char *s, size_t n)
{
    uint32_t a, b;
    uint16_t c;
    if (n >= 4) {
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        return (uint64_t)a | (uint64_t)b << (8 * (n - 4));
    }
    if (n >= 2) {
        memcpy(&c, s, 2);
        return (uint64_t)c | (uint64_t)s[n - 1] << (8 * (n - 1));
    }
    return n ? s[0] : 0;
}

/* the first min(n, 8) bytes at s, zero padded */
static inline uint64_t ebp_load_head(const void *p, size_t n)
{
    uint64_t w;
    if (n >= 8) {
        memcpy(&w, p, 8);
        return w;
    }
    return ebp_load_tail((const unsigned char *)p, n);
}

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
        uint64_t w = ebp_load_tail(s, n);
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

/* ---- UTF-8 and JSON string escapes (patterns and events alike) -------- */

/* Length of one valid UTF-8 sequence at p (lead byte >= 0x80), or 0 when
 * invalid (overlong, UTF-16 surrogate, above U+10FFFF, truncated at end). */
static inline size_t ebp_utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t avail = (size_t)(end - p);
    if (c >= 0xC2 && c <= 0xDF)
        return avail >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (avail < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0))
            return 0; /* overlong, or a UTF-16 surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (avail < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))
            return 0; /* overlong, or above U+10FFFF */
        return 4;
    }
    return 0;
}

/* Encode code point cp (at most U+10FFFF) at o; returns 1 to 4. */
static inline size_t ebp_utf8_put(unsigned char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Four hex digits at p[0..4) (caller checked they are there): 0 and *out, or -1. */
static inline int ebp_hex4(const unsigned char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            v |= (c | 0x20) - 'a' + 10;
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* The \u escape whose hex digits start at p, within [p, end): its code point
 * in *cp (a surrogate pair "\uD83D\uDE80" combined; a lone surrogate read as
 * U+FFFD, in patterns and events alike) and the bytes used from p (4 or 10).
 * Returns -1 when p does not start with four hex digits. */
static inline int ebp_json_u_escape(const unsigned char *p, const unsigned char *end, uint32_t *cp, size_t *used)
{
    if (end - p < 4 || ebp_hex4(p, cp))
        return -1;
    *used = 4;
    if (*cp >= 0xD800 && *cp <= 0xDBFF) {
        uint32_t lo;
        if (end - p >= 10 && p[4] == '\\' && p[5] == 'u' && !ebp_hex4(p + 6, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
            *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
            *used = 10;
        } else {
            *cp = 0xFFFD;
        }
    } else if (*cp >= 0xDC00 && *cp <= 0xDFFF) {
        *cp = 0xFFFD;
    }
    return 0;
}

/* Bounded, always-NUL-terminated formatting into an error buffer. */
void ebp_errf(char *buf, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
