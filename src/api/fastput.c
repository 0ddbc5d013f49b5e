/* The PutEvents fast path: decode a typical PutEvents body straight into
 * eb_put_entry values, without building a jansson document (which costs
 * more than everything else the server does per event).
 *
 * The body has already passed the full JSON syntax check. This reader
 * accepts only requests it is sure conform to the PutEvents input shape (1 to
 * 10 entries; string members; Resources a list of strings up to 2,048 bytes;
 * a plain bus name; a numeric Time; no EndpointId; no duplicate members; no
 * escaped member names; no \u0000 and no lone surrogates in strings).
 * Anything else returns 0 and the request takes the general path (jansson +
 * the shape check), which produces AWS's exact error for it. */
#define _GNU_SOURCE
#include "fastput.h"

#include "../util/util.h"

#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef struct {
    const char *p, *end;
    char *arena; /* decoded strings */
    size_t used, cap;
} rd;

static void ws(rd *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int expect(rd *r, char c)
{
    ws(r);
    if (r->p >= r->end || *r->p != c)
        return -1;
    r->p++;
    return 0;
}

static int hex4(const char *s, unsigned *v)
{
    unsigned x = 0;
    for (int i = 0; i < 4; i++) {
        int d = eb_hexval((unsigned char)s[i]);
        if (d < 0)
            return -1;
        x = x << 4 | (unsigned)d;
    }
    *v = x;
    return 0;
}

/* The first '"' or '\\' in [p, end), or end: 16 bytes at a time (a Detail
 * string is ~1 KB of mostly plain bytes). */
static const char *find_qb(const char *p, const char *end)
{
#ifdef __SSE2__
    const __m128i q = _mm_set1_epi8('"'), b = _mm_set1_epi8('\\');
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        int m = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(x, q), _mm_cmpeq_epi8(x, b)));
        if (m)
            return p + __builtin_ctz((unsigned)m);
        p += 16;
    }
#endif
    while (p < end && *p != '"' && *p != '\\')
        p++;
    return p;
}

/* A string at r->p (after ws): decoded into the arena. -1 = not for us. */
static int str(rd *r, eb_str *out)
{
    ws(r);
    if (r->p >= r->end || *r->p != '"')
        return -1;
    r->p++;
    char *o = r->arena + r->used;
    size_t n = 0;
    for (;;) {
        const char *q = find_qb(r->p, r->end);
        if (q >= r->end)
            return -1;
        memcpy(o + n, r->p, (size_t)(q - r->p));
        n += (size_t)(q - r->p);
        r->p = q;
        if (*q == '"') {
            r->p++;
            break;
        }
        if (r->end - q < 2)
            return -1;
        char e = q[1];
        r->p = q + 2;
        switch (e) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (r->end - r->p < 4 || hex4(r->p, &cp))
                return -1;
            r->p += 4;
            if (cp == 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
                return -1;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' || hex4(r->p + 2, &lo) || lo < 0xDC00 ||
                    lo > 0xDFFF)
                    return -1;
                r->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp < 0x80) {
                o[n++] = (char)cp;
            } else if (cp < 0x800) {
                o[n++] = (char)(0xC0 | (cp >> 6));
                o[n++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                o[n++] = (char)(0xE0 | (cp >> 12));
                o[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                o[n++] = (char)(0x80 | (cp & 0x3F));
            } else {
                o[n++] = (char)(0xF0 | (cp >> 18));
                o[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                o[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                o[n++] = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default:
            return -1;
        }
    }
    o[n] = 0;
    out->s = o;
    out->n = n;
    r->used += n + 1;
    return 0;
}

/* A member name without escapes: the raw bytes. */
static int key(rd *r, const char **k, size_t *n)
{
    ws(r);
    if (r->p >= r->end || *r->p != '"')
        return -1;
    const char *s = ++r->p;
    while (r->p < r->end && *r->p != '"' && *r->p != '\\')
        r->p++;
    if (r->p >= r->end || *r->p != '"')
        return -1;
    *k = s;
    *n = (size_t)(r->p - s);
    r->p++;
    return expect(r, ':');
}

static int is_null(rd *r)
{
    ws(r);
    if (r->end - r->p >= 4 && !memcmp(r->p, "null", 4)) {
        r->p += 4;
        return 1;
    }
    return 0;
}

/* Skip any (valid) JSON value. */
static int skip(rd *r)
{
    ws(r);
    if (r->p >= r->end)
        return -1;
    if (*r->p == '"') {
        r->p++;
        while (r->p < r->end && *r->p != '"')
            r->p += *r->p == '\\' ? 2 : 1;
        if (r->p >= r->end)
            return -1;
        r->p++;
        return 0;
    }
    if (*r->p == '{' || *r->p == '[') {
        int depth = 0;
        while (r->p < r->end) {
            char c = *r->p;
            if (c == '"') {
                if (skip(r))
                    return -1;
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0) {
                r->p++;
                return 0;
            }
            r->p++;
        }
        return -1;
    }
    while (r->p < r->end && !strchr(",}] \t\n\r", *r->p))
        r->p++;
    return 0;
}

static int number(rd *r, double *out)
{
    ws(r);
    const char *s = r->p;
    while (r->p < r->end && strchr("0123456789+-.eE", *r->p))
        r->p++;
    if (r->p == s || r->p - s > 64)
        return -1;
    char tmp[72];
    memcpy(tmp, s, (size_t)(r->p - s));
    tmp[r->p - s] = 0;
    char *end;
    *out = strtod(tmp, &end);
    return *end ? -1 : 0;
}

static int plain_bus_name(const eb_str *b)
{
    if (b->n < 1 || b->n > 1600)
        return 0;
    for (size_t i = 0; i < b->n; i++) {
        char c = b->s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
              c == '_'))
            return 0;
    }
    return 1;
}

#define KEYIS(k, n, lit) ((n) == sizeof(lit) - 1 && !memcmp((k), (lit), (n)))

static int entry(rd *r, eb_put_entry *en, eb_str *res, size_t *nres, size_t capres)
{
    memset(en, 0, sizeof *en);
    if (expect(r, '{'))
        return -1;
    ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return 0;
    }
    unsigned seen = 0;
    for (;;) {
        const char *k;
        size_t kn;
        if (key(r, &k, &kn))
            return -1;
        unsigned bit = 0;
        eb_str *target = NULL;
        if (KEYIS(k, kn, "Source"))
            bit = 1, target = &en->source;
        else if (KEYIS(k, kn, "DetailType"))
            bit = 2, target = &en->detail_type;
        else if (KEYIS(k, kn, "Detail"))
            bit = 4, target = &en->detail;
        else if (KEYIS(k, kn, "EventBusName"))
            bit = 8, target = &en->bus;
        else if (KEYIS(k, kn, "Resources"))
            bit = 16;
        else if (KEYIS(k, kn, "Time"))
            bit = 32;
        else if (KEYIS(k, kn, "TraceHeader"))
            bit = 64;
        if (bit & seen)
            return -1; /* duplicate member: the general path decides */
        seen |= bit;
        if (!bit) {
            if (skip(r))
                return -1;
        } else if (is_null(r)) {
            /* null = absent */
        } else if (target) {
            if (str(r, target))
                return -1;
            if (target == &en->bus && !plain_bus_name(target))
                return -1;
        } else if (bit == 16) {
            if (expect(r, '['))
                return -1;
            en->resources = res + *nres;
            ws(r);
            if (r->p < r->end && *r->p == ']') {
                r->p++;
            } else {
                for (;;) {
                    if (*nres == capres || str(r, &res[*nres]) || res[*nres].n > 2048)
                        return -1;
                    (*nres)++;
                    en->nresources++;
                    ws(r);
                    if (r->p < r->end && *r->p == ',') {
                        r->p++;
                        continue;
                    }
                    if (expect(r, ']'))
                        return -1;
                    break;
                }
            }
        } else if (bit == 32) {
            if (number(r, &en->time))
                return -1;
            en->has_time = 1;
        } else { /* TraceHeader: 1..500 characters (bytes here; longer goes the general way) */
            eb_str th;
            if (str(r, &th) || th.n < 1 || th.n > 500)
                return -1;
        }
        ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        return expect(r, '}');
    }
}

int eb_fastput_parse(const char *body, size_t len, eb_fastput *out)
{
    memset(out, 0, sizeof *out);
    rd r = {.p = body, .end = body + len, .cap = len + 64};
    r.arena = malloc(r.cap);
    if (!r.arena)
        return 0;
    out->arena = r.arena;
    if (expect(&r, '{'))
        goto no;
    int have_entries = 0;
    ws(&r);
    if (r.p < r.end && *r.p == '}')
        goto no;
    for (;;) {
        const char *k;
        size_t kn;
        if (key(&r, &k, &kn))
            goto no;
        if (KEYIS(k, kn, "Entries")) {
            if (have_entries || expect(&r, '['))
                goto no;
            have_entries = 1;
            for (;;) {
                if (out->n == EB_FASTPUT_MAX)
                    goto no;
                if (entry(&r, &out->entries[out->n], out->resources, &out->nresources, EB_FASTPUT_MAX_RESOURCES))
                    goto no;
                out->n++;
                ws(&r);
                if (r.p < r.end && *r.p == ',') {
                    r.p++;
                    continue;
                }
                if (expect(&r, ']'))
                    goto no;
                break;
            }
        } else if (KEYIS(k, kn, "EndpointId")) {
            goto no;
        } else if (skip(&r)) {
            goto no;
        }
        ws(&r);
        if (r.p < r.end && *r.p == ',') {
            r.p++;
            continue;
        }
        if (expect(&r, '}'))
            goto no;
        break;
    }
    ws(&r);
    if (r.p != r.end || !have_entries || out->n < 1)
        goto no;
    /* resources pointers were set while the array filled: they stay valid (fixed array) */
    return 1;
no:
    eb_fastput_free(out);
    return 0;
}

void eb_fastput_free(eb_fastput *f)
{
    free(f->arena);
    f->arena = NULL;
    f->n = 0;
}
