/* Unicode full case folding of UTF-8 text.  See casefold.h.
 *
 * ASCII is folded without the table, 8 bytes at a time (SWAR) where possible.
 * Other code points go through the two-level table generated into
 * casefold_table.h by tools/gen_casefold.py. */
#include "casefold.h"

#include <stdint.h>
#include <string.h>

#include "casefold_table.h"

_Static_assert(EBP_CF_MAX_GROWTH <= EBP_CASEFOLD_MAX_GROWTH,
               "generated table exceeds the documented output-size bound");
_Static_assert(EBP_CF_MAX_CP_OUT <= 8, "single-code-point folding too long");
_Static_assert(EBP_CF_FULL_WIDTH >= 2 && EBP_CF_FULL_WIDTH <= 8, "bad full-entry width");

#define EBP_CF_ONES UINT64_C(0x0101010101010101)
#define EBP_CF_HI8 UINT64_C(0x8080808080808080)

static inline uint64_t cf_load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Lower-case 8 ASCII bytes (every byte < 0x80) in one go.  No byte sum can
 * exceed 0xFF, so there are no carries between bytes and byte order does not
 * matter. */
static inline uint64_t cf_ascii_lower8(uint64_t v)
{
    uint64_t ge_a = v + EBP_CF_ONES * (0x80u - 'A');     /* bit 7 set iff byte >= 'A' */
    uint64_t gt_z = v + EBP_CF_ONES * (0x80u - 'Z' - 1); /* bit 7 set iff byte >  'Z' */
    uint64_t upper = ge_a & ~gt_z & EBP_CF_HI8;
    return v | (upper >> 2); /* 0x80 >> 2 == 0x20 */
}

/* Copy src[0..len) to out at offset o, writing nothing at or beyond cap. */
static inline void cf_put(unsigned char *out, size_t cap, size_t o,
                          const unsigned char *src, size_t len)
{
    if (o < cap) {
        size_t room = cap - o;
        memcpy(out + o, src, len <= room ? len : room);
    }
}

static inline size_t cf_encode(uint32_t c, unsigned char *b)
{
    if (c < 0x80u) {
        b[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800u) {
        b[0] = (unsigned char)(0xC0u | (c >> 6));
        b[1] = (unsigned char)(0x80u | (c & 0x3Fu));
        return 2;
    }
    if (c < 0x10000u) {
        b[0] = (unsigned char)(0xE0u | (c >> 12));
        b[1] = (unsigned char)(0x80u | ((c >> 6) & 0x3Fu));
        b[2] = (unsigned char)(0x80u | (c & 0x3Fu));
        return 3;
    }
    b[0] = (unsigned char)(0xF0u | (c >> 18));
    b[1] = (unsigned char)(0x80u | ((c >> 12) & 0x3Fu));
    b[2] = (unsigned char)(0x80u | ((c >> 6) & 0x3Fu));
    b[3] = (unsigned char)(0x80u | (c & 0x3Fu));
    return 4;
}

static inline int cf_cont(unsigned char b)
{
    return (b & 0xC0u) == 0x80u;
}

/* Decode one well-formed UTF-8 sequence (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF) starting at p[0] (p[0] >= 0x80) with
 * rem >= 1 bytes available.  Returns its length (2..4) and sets *cp, or 0 if
 * p[0] does not start a well-formed sequence within p[0..rem). */
static inline size_t cf_decode(const unsigned char *p, size_t rem, uint32_t *cp)
{
    unsigned c = p[0];
    if (c < 0xC2u)
        return 0; /* continuation byte or overlong 2-byte lead */
    if (c < 0xE0u) {
        if (rem < 2 || !cf_cont(p[1]))
            return 0;
        *cp = ((uint32_t)(c & 0x1Fu) << 6) | (uint32_t)(p[1] & 0x3Fu);
        return 2;
    }
    if (c < 0xF0u) {
        if (rem < 3)
            return 0;
        unsigned b1 = p[1];
        unsigned lo = (c == 0xE0u) ? 0xA0u : 0x80u; /* no overlongs */
        unsigned hi = (c == 0xEDu) ? 0x9Fu : 0xBFu; /* no surrogates */
        if (b1 < lo || b1 > hi || !cf_cont(p[2]))
            return 0;
        *cp = ((uint32_t)(c & 0x0Fu) << 12) | ((uint32_t)(b1 & 0x3Fu) << 6) |
              (uint32_t)(p[2] & 0x3Fu);
        return 3;
    }
    if (c < 0xF5u) {
        if (rem < 4)
            return 0;
        unsigned b1 = p[1];
        unsigned lo = (c == 0xF0u) ? 0x90u : 0x80u; /* no overlongs */
        unsigned hi = (c == 0xF4u) ? 0x8Fu : 0xBFu; /* <= U+10FFFF */
        if (b1 < lo || b1 > hi || !cf_cont(p[2]) || !cf_cont(p[3]))
            return 0;
        *cp = ((uint32_t)(c & 0x07u) << 18) | ((uint32_t)(b1 & 0x3Fu) << 12) |
              ((uint32_t)(p[2] & 0x3Fu) << 6) | (uint32_t)(p[3] & 0x3Fu);
        return 4;
    }
    return 0;
}

size_t ebp_casefold(const unsigned char *in, size_t n, unsigned char *out, size_t cap)
{
    size_t i = 0, o = 0;

    while (i < n) {
        /* ASCII fast path: 8 bytes per step while the next 8 are all ASCII. */
        while (n - i >= 8) {
            uint64_t v = cf_load64(in + i);
            if (v & EBP_CF_HI8)
                break;
            v = cf_ascii_lower8(v);
            if (o < cap && cap - o >= 8) {
                memcpy(out + o, &v, 8);
            } else {
                unsigned char tmp[8];
                memcpy(tmp, &v, 8);
                cf_put(out, cap, o, tmp, 8);
            }
            i += 8;
            o += 8;
        }
        if (i >= n)
            break;

        unsigned char c = in[i];
        if (c < 0x80u) {
            if (o < cap)
                out[o] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
            i++;
            o++;
            continue;
        }

        uint32_t cp = 0;
        size_t len = cf_decode(in + i, n - i, &cp);
        if (len == 0) {
            /* Invalid or truncated: pass one byte through unchanged. */
            if (o < cap)
                out[o] = c;
            i++;
            o++;
            continue;
        }

        if (cp < EBP_CF_LIMIT) {
            unsigned v = ebp_cf_stage2[((size_t)ebp_cf_stage1[cp >> EBP_CF_SHIFT]
                                        << EBP_CF_SHIFT) |
                                       (cp & EBP_CF_MASK)];
            if (v != 0) {
                if (v < EBP_CF_FULL_BASE) {
                    unsigned char buf[4];
                    uint32_t f = (uint32_t)((int32_t)cp + ebp_cf_delta[v]);
                    size_t flen = cf_encode(f, buf);
                    cf_put(out, cap, o, buf, flen);
                    o += flen;
                } else {
                    const uint8_t *e = ebp_cf_full[v - EBP_CF_FULL_BASE];
                    cf_put(out, cap, o, e + 1, e[0]);
                    o += e[0];
                }
                i += len;
                continue;
            }
        }
        /* Folds to itself: copy the original bytes. */
        cf_put(out, cap, o, in + i, len);
        i += len;
        o += len;
    }
    return o;
}

int ebp_is_ascii(const unsigned char *in, size_t n)
{
    size_t i = 0;
    uint64_t acc = 0;

    for (; n - i >= 32; i += 32) {
        acc = cf_load64(in + i) | cf_load64(in + i + 8) | cf_load64(in + i + 16) |
              cf_load64(in + i + 24);
        if (acc & EBP_CF_HI8)
            return 0;
    }
    for (; n - i >= 8; i += 8)
        acc |= cf_load64(in + i);
    unsigned tail = 0;
    for (; i < n; i++)
        tail |= in[i];
    return !(acc & EBP_CF_HI8) && !(tail & 0x80u);
}
