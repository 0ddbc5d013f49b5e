/* Differential test: the compiled machine (validating AND trusting reader)
 * against the reference interpreter (tests/support/refimpl.c) on random
 * patterns and events.
 *
 * A seeded PRNG (EB_DIFF_SEED, default below; EB_DIFF_CASES overrides the
 * case count) draws patterns and events from a small shared vocabulary of
 * keys and values so that matches are frequent.  Every operator and form is
 * generated: literals (strings with escapes \" \\ \u00e9 and surrogate pairs,
 * numbers with equal values written differently, true/false/null, "exactly"),
 * prefix/suffix (+ equals-ignore-case), equals-ignore-case (non-ASCII ß/ẞ/Σ/ς),
 * wildcard (escaped stars and backslashes), anything-but (every form), numeric
 * (every operator, ranges), exists true/false, cidr, IP literals, nested $or,
 * dotted keys, several fields per rule and several conditions per field.
 * Events have nested objects, arrays of scalars, arrays of objects (array
 * consistency), nested arrays, empty arrays/objects, nulls, missing fields,
 * randomly escaped strings and dotted keys.  Events never have duplicate keys
 * nor both a dotted and a nested spelling of one path (the trusting reader
 * sees only the first spelling, by design).
 *
 * Values at the pattern's paths are "hinted": drawn from values that satisfy
 * or nearly satisfy the pattern's conditions.  Per operator the test counts
 * match / no-match outcomes and fails if either side is under 10%, or on any
 * disagreement (the first few are printed with pattern, event and the three
 * answers).  Every ~100 cases a machine with ~50 random rules is checked too:
 * its set of matching keys must equal the set the reference computes, and
 * every ~100 cases a machine of 60 rules from one of the "families" below
 * (rules sharing predicates: grouped access units, box indexes). */
#define _POSIX_C_SOURCE 200809L
#include <ebridge/pattern.h>

#include "refimpl.h"
#include "test.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__)
#define EB_DIFF_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EB_DIFF_SANITIZED 1
#endif
#endif
#ifndef EB_DIFF_SANITIZED
#define EB_DIFF_SANITIZED 0
#endif

/* The pattern library's threshold for looking strings up after the read
 * instead of during it (src/pattern/machine.h).  Half the machines here are
 * built with 0, so that path, otherwise taken only by large tables, is
 * checked against the reference as much as the other. */
extern unsigned ebp_vm_defer_min;

#define DEFAULT_SEED 20240611ULL
#define DEFAULT_CASES (EB_DIFF_SANITIZED ? 30000L : 300000L)

/* ---- PRNG (splitmix64) ----------------------------------------------------- */

static uint64_t rng_state;
static uint64_t rnd64(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static unsigned rn(unsigned n) { return (unsigned)(rnd64() % n); }
static int chance(unsigned pct) { return rn(100) < pct; }
#define PICK(arr) (arr[rn((unsigned)(sizeof(arr) / sizeof(arr[0])))])

/* ---- string buffer ------------------------------------------------------------ */

typedef struct {
    char *b;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *s, const char *p, size_t n)
{
    if (s->n + n + 1 > s->cap) {
        s->cap = (s->n + n + 1) * 2;
        s->b = realloc(s->b, s->cap);
    }
    memcpy(s->b + s->n, p, n);
    s->n += n;
    s->b[s->n] = 0;
}
static void sb_puts(sbuf *s, const char *p) { sb_put(s, p, strlen(p)); }
static void sb_printf(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *s, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(s, tmp, (size_t)n);
}

static void sb_u(sbuf *o, unsigned cp, int upper)
{
    if (upper)
        sb_printf(o, "\\u%04X", cp);
    else
        sb_printf(o, "\\u%04x", cp);
}

/* Emit the logical UTF-8 string s as JSON string content (no quotes),
 * escaping randomly: non-ASCII as \uXXXX (surrogate pairs above U+FFFF),
 * sometimes ASCII as \u00XX, '/' as \/, '"' and '\' always escaped. */
static void sb_json_chars(sbuf *o, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p, cp, len;
        if (c < 0x80) {
            cp = c;
            len = 1;
        } else if (c < 0xE0) {
            cp = ((c & 0x1F) << 6) | (p[1] & 0x3F);
            len = 2;
        } else if (c < 0xF0) {
            cp = ((c & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
            len = 3;
        } else {
            cp = ((c & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
            len = 4;
        }
        int up = chance(50);
        if (c == '"' || c == '\\') {
            if (chance(70)) {
                char e[2] = {'\\', (char)c};
                sb_put(o, e, 2);
            } else {
                sb_u(o, cp, up);
            }
        } else if (c == '/' && chance(30)) {
            sb_puts(o, "\\/");
        } else if (cp < 0x80 && !chance(5)) {
            sb_put(o, (const char *)p, 1);
        } else if (cp >= 0x80 && chance(50)) {
            sb_put(o, (const char *)p, len);
        } else if (cp >= 0x10000) {
            unsigned v = cp - 0x10000;
            sb_u(o, 0xD800 + (v >> 10), up);
            sb_u(o, 0xDC00 + (v & 0x3FF), up);
        } else {
            sb_u(o, cp, up);
        }
        p += len;
    }
}
static void sb_json_str(sbuf *o, const char *s)
{
    sb_puts(o, "\"");
    sb_json_chars(o, s);
    sb_puts(o, "\"");
}

/* ---- vocabulary ------------------------------------------------------------------ */

static const char *const KEYS[] = {"a", "b", "c", "d", "\xc3\xa9", "ab", "bb",
                                   "a_long_key_with_\"quotes\"_and_\\_past_16_bytes"}; /* "é" */

/* strings (logical UTF-8) */
static const char *const STRS[] = {
    "x", "X", "xy", "abc", "ABC", "aBc", "", "stra\xc3\x9f" "e", "STRASSE", "strasse", "STRA\xe1\xba\x9e" "E",
    "\xce\xa3\xce\xb1\xcf\x82", "\xcf\x83\xce\xb1\xcf\x82", "\xce\xa3\xce\x91\xce\xa3", "\xc3\xa9", "\xc3\x89",
    "caf\xc3\xa9", "CAF\xc3\x89", "\xf0\x9f\x98\x80", "a\xf0\x9f\x98\x80" "b", "a*b", "a\\b", "q\"t", "image.png",
    "image.PNG", "5", "300", "true", "null", "arn:aws:x/y", "x/lib/y", "ab", "abab", "\xc3\x9f", "\xe1\xba\x9e",
    "ss", "SS", "10.0.0.1", "2001:db8::1"};

/* IP-ish strings: each group holds spellings of one address */
static const char *const IPS[][4] = {
    {"10.0.0.1", "010.0.0.1", "::ffff:a00:1", "10.0.0.01"},
    {"10.0.0.0", NULL},
    {"10.0.0.255", "::ffff:a00:ff", NULL},
    {"10.0.1.0", NULL},
    {"9.255.255.255", NULL},
    {"255.255.255.255", NULL},
    {"2001:db8::1", "2001:0DB8:0:0:0:0:0:1", "2001:db8:0:0::1", NULL},
    {"2001:db8::", "2001:DB8:0::0", NULL},
    {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
    {"2001:db9::", NULL},
    {"::1", "0:0:0:0:0:0:0:1", NULL},
    {"10.0.0.256", NULL},
    {"1.2.3", NULL},
};
#define NIPS (sizeof IPS / sizeof IPS[0])

/* numbers: each group holds spellings of one double */
static const char *const NUMS[][5] = {
    {"300", "300.0", "3e2", "3.00E+2", "30000e-2"},
    {"0", "-0", "0.0", "-0.0", "0e5"},
    {"1", "1.0", "1e0", "10e-1", NULL},
    {"5", "5.0", "5e0", "0.5e1", NULL},
    {"0.1", "1e-1", "0.10", NULL},
    {"5e-324", "4.9406564584124654e-324", NULL},
    {"1.7976931348623157e308", "1.7976931348623157E+308", NULL},
    {"-1.7976931348623157e308", NULL},
    {"2.5", "25e-1", NULL},
    {"100", "1e2", "100.000", NULL},
    {"99.999", NULL},
    {"-1", "-1.0", "-1E0", NULL},
    {"9007199254740993", "9007199254740992", NULL},
    {"1e9", "1000000000", NULL},
    {"0.30000000000000004", NULL},
    {"0.3", NULL},
    {"-2.5e-3", NULL},
};
#define NNUMS (sizeof NUMS / sizeof NUMS[0])

static const char *const PREFIXES[] = {"", "a", "ab", "x", "X", "st", "STR", "stra", "stra\xc3\x9f", "ca", "CA",
                                       "\xc3\xa9", "ima", "10.", "2001:", "\xcf\x83", "\xce\xa3", "\xf0\x9f\x98\x80",
                                       "a*", "q\"", "a\\", "arn:"};
static const char *const SUFFIXES[] = {"", "b", "c", ".png", ".PNG", "e", "SSE", "\xc3\x9f" "e", "\xc3\xa9",
                                       "\xc3\x89", "as", "\xcf\x82", "\xce\xa3", "\xf0\x9f\x98\x80", "*b", "\\b",
                                       "1", "0", "/y"};
/* wildcard globs (logical text, with \* and \\ escapes) */
static const char *const GLOBS[] = {"*", "a*", "*b", "a*b", "*a*", "x*y", "a\\*b", "a\\\\b", "*\\\\*", "\\**",
                                    "image.*", "*.png", "*\xc3\x9f*", "str*e", "arn:*/y", "*/lib/*", "", "x",
                                    "*\xf0\x9f\x98\x80*", "q\"*", "ab*ab", "*\xc3\xa9", "S*S"};
static const char *const CIDRS[] = {"10.0.0.0/24",   "10.0.0.0/8",      "10.0.0.1/31", "0.0.0.0/0",
                                    "2001:db8::/32", "2001:db8::1/127", "::/0",        "10.0.0.255/30",
                                    "10.0.0.5/24",   "2001:db8::/64"};
static const char *const TAILS[] = {"", "x", "\xc3\xa9", "SS", "ab", "*", "\\", "\xf0\x9f\x98\x80"};

/* A short tail (sometimes a long one) to append/prepend in hints. */
static const char *tail(void)
{
    static const char *const PIECES[] = {"x", "\"", "\\", "\xc3\xa9", "\xf0\x9f\x98\x80", "0123456789", "abcdefgh"};
    static char buf[128];
    if (!chance(15))
        return PICK(TAILS);
    size_t n = 0;
    unsigned k = 1 + rn(10);
    for (unsigned i = 0; i < k; i++) {
        const char *p = PICK(PIECES);
        size_t l = strlen(p);
        if (n + l >= sizeof buf)
            break;
        memcpy(buf + n, p, l);
        n += l;
    }
    buf[n] = 0;
    return buf;
}

/* Random JSON whitespace, now and then. */
static void sb_ws(sbuf *o)
{
    static const char *const WS[] = {" ", "\n", "\t", "\r\n", "    ", "                    "};
    if (chance(6))
        sb_puts(o, PICK(WS));
}

static const char *num_any(void)
{
    const char *const *g = NUMS[rn(NNUMS)];
    unsigned n = 0;
    while (n < 5 && g[n])
        n++;
    return g[rn(n)];
}
/* another spelling of the same number */
static const char *num_same(const char *t)
{
    for (unsigned i = 0; i < NNUMS; i++)
        for (unsigned j = 0; j < 5 && NUMS[i][j]; j++)
            if (!strcmp(NUMS[i][j], t)) {
                unsigned n = 0;
                while (n < 5 && NUMS[i][n])
                    n++;
                return NUMS[i][rn(n)];
            }
    return t;
}
static const char *ip_any(void)
{
    const char *const *g = IPS[rn(NIPS)];
    unsigned n = 0;
    while (n < 4 && g[n])
        n++;
    return g[rn(n)];
}
static const char *ip_same(const char *t)
{
    for (unsigned i = 0; i < NIPS; i++)
        for (unsigned j = 0; j < 4 && IPS[i][j]; j++)
            if (!strcmp(IPS[i][j], t)) {
                unsigned n = 0;
                while (n < 4 && IPS[i][n])
                    n++;
                return IPS[i][rn(n)];
            }
    return t;
}

/* A case variant of s under full case folding: ASCII letters flip at
 * random; ß/ẞ/ss, σ/Σ/ς, é/É swap among their equivalents. */
static void vary_case(sbuf *o, const char *s)
{
    static const char *const SS[] = {"\xc3\x9f", "\xe1\xba\x9e", "ss", "SS", "sS", "Ss"};
    static const char *const SIG[] = {"\xcf\x83", "\xce\xa3", "\xcf\x82"};
    static const char *const EA[] = {"\xc3\xa9", "\xc3\x89"};
    while (*s) {
        if (!strncmp(s, "\xc3\x9f", 2) || !strncmp(s, "\xe1\xba\x9e", 3)) {
            sb_puts(o, PICK(SS));
            s += (unsigned char)*s == 0xc3 ? 2 : 3;
        } else if (!strncmp(s, "\xcf\x83", 2) || !strncmp(s, "\xce\xa3", 2) || !strncmp(s, "\xcf\x82", 2)) {
            sb_puts(o, PICK(SIG));
            s += 2;
        } else if (!strncmp(s, "\xc3\xa9", 2) || !strncmp(s, "\xc3\x89", 2)) {
            sb_puts(o, PICK(EA));
            s += 2;
        } else if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')) {
            char c = chance(50) ? (char)(*s ^ 0x20) : *s;
            sb_put(o, &c, 1);
            s++;
        } else {
            sb_put(o, s, 1);
            s++;
        }
    }
}

/* A string matching glob g (escapes resolved, stars filled). */
static void glob_instance(sbuf *o, const char *g)
{
    for (; *g; g++) {
        if (*g == '\\' && g[1]) {
            g++;
            sb_put(o, g, 1);
        } else if (*g == '*') {
            if (!chance(30))
                sb_puts(o, tail());
        } else {
            sb_put(o, g, 1);
        }
    }
}

/* ---- scalars -------------------------------------------------------------------- */

typedef struct {
    int is_str; /* logical string in s, else raw JSON text in s */
    char s[96];
} scalar;

static void sc_str(scalar *v, const char *s)
{
    v->is_str = 1;
    snprintf(v->s, sizeof v->s, "%s", s);
}
static void sc_raw(scalar *v, const char *s)
{
    v->is_str = 0;
    snprintf(v->s, sizeof v->s, "%s", s);
}

/* A long string (up to ~90 bytes) from random pieces: exercises 16-byte
 * scanning with quotes, backslashes and escapes at every offset. */
static void long_string(scalar *v, const char *start)
{
    static const char *const PIECES[] = {"x", "ab", "\"", "\\", "\xc3\xa9", "\xf0\x9f\x98\x80", "0123456789",
                                         "/", " ", "SS", "*", "\xc3\x9f", "abcdefghijklmnop"};
    sbuf t = {0};
    sb_puts(&t, start);
    unsigned n = rn(16);
    for (unsigned i = 0; i < n && t.n < 80; i++)
        sb_puts(&t, PICK(PIECES));
    sc_str(v, t.b ? t.b : "");
    free(t.b);
}

static void random_scalar(scalar *v)
{
    unsigned r = rn(100);
    if (r < 8)
        long_string(v, "");
    else if (r < 45)
        sc_str(v, PICK(STRS));
    else if (r < 70)
        sc_raw(v, num_any());
    else if (r < 82)
        sc_str(v, ip_any());
    else if (r < 88)
        sc_raw(v, "null");
    else if (r < 94)
        sc_raw(v, "true");
    else
        sc_raw(v, "false");
}

/* ---- operator categories -------------------------------------------------------------- */

enum {
    K_STR, K_EXACTLY, K_IP, K_NUM, K_TRUE, K_FALSE, K_NULL, K_PREFIX, K_PREFIX_EIC, K_SUFFIX, K_SUFFIX_EIC, K_EIC,
    K_WILDCARD, K_NUM_EQ, K_NUM_LT, K_NUM_LE, K_NUM_GT, K_NUM_GE, K_NUM_RANGE, K_CIDR, K_EXISTS, K_ABSENT,
    K_AB_STR, K_AB_STRS, K_AB_NUM, K_AB_NUMS, K_AB_PREFIX, K_AB_PREFIXES, K_AB_SUFFIX, K_AB_SUFFIXES, K_AB_EIC,
    K_AB_EICS, K_AB_WILDCARD, K_AB_WILDCARDS, K_OR, K_NESTED_OR, K_DOTTED, K_MULTI_FIELD, K_MULTI_COND, K_N
};
static const char *const KNAMES[K_N] = {
    "string literal", "exactly", "IP literal", "number literal", "true", "false", "null", "prefix",
    "prefix eic", "suffix", "suffix eic", "equals-ignore-case", "wildcard", "numeric =", "numeric <",
    "numeric <=", "numeric >", "numeric >=", "numeric range", "cidr", "exists true", "exists false",
    "a-b string", "a-b string list", "a-b number", "a-b number list", "a-b prefix", "a-b prefix list",
    "a-b suffix", "a-b suffix list", "a-b eic", "a-b eic list", "a-b wildcard", "a-b wildcard list", "$or",
    "nested $or", "dotted key", "several fields", "several conditions"};

/* ---- pattern generation ------------------------------------------------------------------ */

#define MAXHINT 4
typedef struct {
    int kind;
    char json[600];
    scalar hint[MAXHINT]; /* event values that satisfy (or nearly) this condition */
    int nhint;
} gcond;

typedef struct {
    const char *seg[3];
    int nseg;
    gcond c[3];
    int nc;
} gfield;

/* pattern tree: object members */
typedef struct pnode pnode;
typedef struct {
    char key[64];    /* logical key (may contain dots) */
    int type;        /* 0 leaf, 1 object, 2 $or */
    gfield *f;       /* leaf */
    pnode *obj;      /* object */
    pnode *alts[3];  /* $or */
    int nalts;
} pmember;
struct pnode {
    pmember m[8];
    int n;
};

typedef struct {
    pnode nodes[64];
    int nnodes;
    gfield fields[16];
    int nfields;
    uint64_t kinds; /* bitmask of K_* in this pattern */
} gpattern;

static pnode *new_node(gpattern *p)
{
    if (p->nnodes == 64)
        return NULL;
    pnode *n = &p->nodes[p->nnodes++];
    n->n = 0;
    return n;
}

static void add_hint_str(gcond *c, const char *s)
{
    if (c->nhint < MAXHINT)
        sc_str(&c->hint[c->nhint++], s);
}
static void add_hint_raw(gcond *c, const char *s)
{
    if (c->nhint < MAXHINT)
        sc_raw(&c->hint[c->nhint++], s);
}
static void add_hint_sb(gcond *c, sbuf *t)
{
    add_hint_str(c, t->b ? t->b : "");
    t->n = 0;
    if (t->b)
        t->b[0] = 0;
}

/* Builds one condition: its JSON text and a few hint values. */
static void gen_cond(gcond *c)
{
    sbuf j = {0}, t = {0};
    c->nhint = 0;
    unsigned r = rn(100);
    const char *s, *s2;
    if (r < 8) { /* string literal */
        c->kind = K_STR;
        s = PICK(STRS);
        sb_json_str(&j, s);
        add_hint_str(c, s);
        vary_case(&t, s);
        add_hint_sb(c, &t);
    } else if (r < 10) {
        c->kind = K_EXACTLY;
        s = PICK(STRS);
        sb_puts(&j, "{\"exactly\":");
        sb_json_str(&j, s);
        sb_puts(&j, "}");
        add_hint_str(c, s);
    } else if (r < 14) {
        c->kind = K_IP;
        s = ip_any();
        sb_json_str(&j, s);
        add_hint_str(c, ip_same(s));
        add_hint_str(c, ip_same(s));
    } else if (r < 19) {
        c->kind = K_NUM;
        s = num_any();
        sb_puts(&j, s);
        add_hint_raw(c, num_same(s));
        add_hint_raw(c, num_same(s));
        add_hint_str(c, s);
    } else if (r < 21) {
        c->kind = K_TRUE;
        sb_puts(&j, "true");
        add_hint_raw(c, "true");
        add_hint_str(c, "true");
    } else if (r < 23) {
        c->kind = K_FALSE;
        sb_puts(&j, "false");
        add_hint_raw(c, "false");
    } else if (r < 25) {
        c->kind = K_NULL;
        sb_puts(&j, "null");
        add_hint_raw(c, "null");
        add_hint_str(c, "null");
    } else if (r < 29 || (r >= 29 && r < 32)) {
        int eic = r >= 29;
        c->kind = eic ? K_PREFIX_EIC : K_PREFIX;
        s = PICK(PREFIXES);
        sb_puts(&j, eic ? "{\"prefix\":{\"equals-ignore-case\":" : "{\"prefix\":");
        sb_json_str(&j, s);
        sb_puts(&j, eic ? "}}" : "}");
        for (int k = 0; k < 2; k++) {
            if (eic)
                vary_case(&t, s);
            else
                sb_puts(&t, s);
            sb_puts(&t, tail());
            add_hint_sb(c, &t);
        }
        add_hint_raw(c, num_any());
    } else if (r < 39) {
        int eic = r >= 36;
        c->kind = eic ? K_SUFFIX_EIC : K_SUFFIX;
        s = PICK(SUFFIXES);
        sb_puts(&j, eic ? "{\"suffix\":{\"equals-ignore-case\":" : "{\"suffix\":");
        sb_json_str(&j, s);
        sb_puts(&j, eic ? "}}" : "}");
        for (int k = 0; k < 2; k++) {
            sb_puts(&t, tail());
            if (eic)
                vary_case(&t, s);
            else
                sb_puts(&t, s);
            add_hint_sb(c, &t);
        }
        add_hint_raw(c, num_any());
    } else if (r < 43) {
        c->kind = K_EIC;
        s = PICK(STRS);
        sb_puts(&j, "{\"equals-ignore-case\":");
        sb_json_str(&j, s);
        sb_puts(&j, "}");
        vary_case(&t, s);
        add_hint_sb(c, &t);
        vary_case(&t, s);
        add_hint_sb(c, &t);
        add_hint_str(c, s);
    } else if (r < 48) {
        c->kind = K_WILDCARD;
        s = PICK(GLOBS);
        sb_puts(&j, "{\"wildcard\":");
        sb_json_str(&j, s);
        sb_puts(&j, "}");
        glob_instance(&t, s);
        add_hint_sb(c, &t);
        glob_instance(&t, s);
        add_hint_sb(c, &t);
        add_hint_str(c, s);
    } else if (r < 60) {
        static const char *const OPS[] = {"=", "<", "<=", ">", ">="};
        int op = (int)rn(6);
        sb_puts(&j, "{\"numeric\":[");
        if (op < 5) {
            c->kind = K_NUM_EQ + op;
            s = num_any();
            sb_printf(&j, "\"%s\",%s", OPS[op], s);
            add_hint_raw(c, num_same(s));
        } else {
            c->kind = K_NUM_RANGE;
            s = num_any();
            s2 = num_any();
            for (int k = 0; k < 4 && strtod(s, NULL) == strtod(s2, NULL); k++)
                s2 = num_any();
            if (strtod(s, NULL) > strtod(s2, NULL)) {
                const char *x = s;
                s = s2;
                s2 = x;
            }
            sb_printf(&j, "\"%s\",%s,\"%s\",%s", chance(50) ? ">" : ">=", s, chance(50) ? "<" : "<=", s2);
            add_hint_raw(c, num_same(s));
            add_hint_raw(c, num_same(s2));
        }
        sb_puts(&j, "]}");
        add_hint_raw(c, num_any());
        add_hint_raw(c, num_any());
    } else if (r < 66) {
        c->kind = K_CIDR;
        s = PICK(CIDRS);
        sb_puts(&j, "{\"cidr\":");
        sb_json_str(&j, s);
        sb_puts(&j, "}");
        for (int k = 0; k < 3; k++)
            add_hint_str(c, ip_any());
    } else if (r < 71) {
        c->kind = K_EXISTS;
        sb_puts(&j, "{\"exists\":true}");
        scalar v;
        random_scalar(&v);
        c->hint[c->nhint++] = v;
    } else if (r < 76) {
        c->kind = K_ABSENT;
        sb_puts(&j, "{\"exists\":false}");
        scalar v;
        random_scalar(&v);
        c->hint[c->nhint++] = v;
    } else {
        /* anything-but: every form, single and list */
        int form = (int)rn(5), list = chance(50);
        sb_puts(&j, "{\"anything-but\":");
        const char *inner = NULL;
        if (form == 1)
            inner = "prefix";
        else if (form == 2)
            inner = "suffix";
        else if (form == 3)
            inner = "equals-ignore-case";
        else if (form == 4)
            inner = "wildcard";
        int numeric = form == 0 && chance(40);
        if (form == 0)
            c->kind = numeric ? (list ? K_AB_NUMS : K_AB_NUM) : (list ? K_AB_STRS : K_AB_STR);
        else
            c->kind = (form == 1 ? K_AB_PREFIX : form == 2 ? K_AB_SUFFIX : form == 3 ? K_AB_EIC : K_AB_WILDCARD) + list;
        if (inner)
            sb_printf(&j, "{\"%s\":", inner);
        int n = list ? 1 + (int)rn(3) : 1;
        if (list)
            sb_puts(&j, "[");
        for (int k = 0; k < n; k++) {
            if (k)
                sb_puts(&j, ",");
            if (numeric) {
                s = num_any();
                sb_puts(&j, s);
                add_hint_raw(c, num_same(s));
                add_hint_str(c, s);
                continue;
            }
            switch (form) {
            case 0: s = PICK(STRS); break;
            case 1:
                do
                    s = PICK(PREFIXES);
                while (!*s);
                break;
            case 2:
                do
                    s = PICK(SUFFIXES);
                while (!*s);
                break;
            case 3: s = PICK(STRS); break;
            default: s = PICK(GLOBS); break;
            }
            sb_json_str(&j, s);
            switch (form) {
            case 0: add_hint_str(c, s); break;
            case 1:
                sb_puts(&t, s);
                sb_puts(&t, tail());
                add_hint_sb(c, &t);
                break;
            case 2:
                sb_puts(&t, tail());
                sb_puts(&t, s);
                add_hint_sb(c, &t);
                break;
            case 3:
                vary_case(&t, s);
                add_hint_sb(c, &t);
                break;
            default:
                glob_instance(&t, s);
                add_hint_sb(c, &t);
                break;
            }
        }
        if (list)
            sb_puts(&j, "]");
        if (inner)
            sb_puts(&j, "}");
        sb_puts(&j, "}");
        if (chance(30)) {
            scalar v;
            random_scalar(&v);
            if (c->nhint < MAXHINT)
                c->hint[c->nhint++] = v;
        }
    }
    snprintf(c->json, sizeof c->json, "%s", j.b ? j.b : "");
    free(j.b);
    free(t.b);
}

static gfield *gen_field(gpattern *p)
{
    if (p->nfields == 16)
        return NULL;
    gfield *f = &p->fields[p->nfields++];
    static const char *const FIRST[] = {"a", "a", "b", "\xc3\xa9", "c"};
    static const char *const NEXT[] = {"b", "c", "d", "a"};
    f->nseg = 1 + (int)rn(100) / 45; /* 1..3, mostly short */
    f->seg[0] = PICK(FIRST);
    for (int i = 1; i < f->nseg; i++)
        f->seg[i] = PICK(NEXT);
    f->nc = chance(80) ? 1 : 2 + (int)rn(2);
    for (int i = 0; i < f->nc; i++) {
        gen_cond(&f->c[i]);
        p->kinds |= 1ULL << f->c[i].kind;
    }
    if (f->nc > 1)
        p->kinds |= 1ULL << K_MULTI_COND;
    return f;
}

/* Put field f into node n, spelling a random run of its segments dotted. */
static void insert_field(gpattern *p, pnode *n, gfield *f, int from)
{
    int j = from + 1;
    while (j < f->nseg && chance(25))
        j++;
    char key[64] = "";
    for (int i = from; i < j; i++) {
        if (i > from)
            strcat(key, ".");
        strcat(key, f->seg[i]);
    }
    if (j - from > 1)
        p->kinds |= 1ULL << K_DOTTED;
    if (j == f->nseg) {
        if (n->n < 8) {
            pmember *m = &n->m[n->n++];
            snprintf(m->key, sizeof m->key, "%s", key);
            m->type = 0;
            m->f = f;
        }
        return;
    }
    for (int i = 0; i < n->n; i++)
        if (n->m[i].type == 1 && !strcmp(n->m[i].key, key)) {
            insert_field(p, n->m[i].obj, f, j);
            return;
        }
    pnode *c = new_node(p);
    if (!c || n->n == 8)
        return;
    pmember *m = &n->m[n->n++];
    snprintf(m->key, sizeof m->key, "%s", key);
    m->type = 1;
    m->obj = c;
    insert_field(p, c, f, j);
}

static void fill_node(gpattern *p, pnode *n, int depth, int nfields)
{
    for (int i = 0; i < nfields; i++) {
        gfield *f = gen_field(p);
        if (f)
            insert_field(p, n, f, 0);
    }
    if (depth < 2 && n->n < 8 && chance(depth ? 20 : 18)) {
        pmember *m = &n->m[n->n++];
        strcpy(m->key, "$or");
        m->type = 2;
        m->nalts = 2 + (int)chance(30);
        p->kinds |= 1ULL << (depth ? K_NESTED_OR : K_OR);
        for (int a = 0; a < m->nalts; a++) {
            m->alts[a] = new_node(p);
            if (!m->alts[a]) {
                m->nalts = a;
                break;
            }
            fill_node(p, m->alts[a], depth + 1, 1 + (int)chance(25));
        }
    }
}

static void ser_pnode(sbuf *o, const pnode *n)
{
    sb_puts(o, "{");
    for (int i = 0; i < n->n; i++) {
        const pmember *m = &n->m[i];
        if (i)
            sb_puts(o, ",");
        sb_json_str(o, m->key);
        sb_puts(o, ":");
        if (m->type == 0) {
            sb_puts(o, "[");
            for (int k = 0; k < m->f->nc; k++) {
                if (k)
                    sb_puts(o, ",");
                sb_puts(o, m->f->c[k].json);
            }
            sb_puts(o, "]");
        } else if (m->type == 1) {
            ser_pnode(o, m->obj);
        } else {
            sb_puts(o, "[");
            for (int a = 0; a < m->nalts; a++) {
                if (a)
                    sb_puts(o, ",");
                ser_pnode(o, m->alts[a]);
            }
            sb_puts(o, "]");
        }
    }
    sb_puts(o, "}");
}

static void gen_pattern(gpattern *p, sbuf *out)
{
    p->nnodes = 0;
    p->nfields = 0;
    p->kinds = 0;
    pnode *root = new_node(p);
    int nf = chance(55) ? 1 : 2 + (int)rn(2);
    fill_node(p, root, 0, nf);
    if (p->nfields > 1)
        p->kinds |= 1ULL << K_MULTI_FIELD;
    out->n = 0;
    ser_pnode(out, root);
}

/* ---- events ------------------------------------------------------------------------------- */

enum { E_OBJ, E_ARR, E_SCALAR };
typedef struct enode {
    int type;
    scalar v;
    int n;
    const char *keys[8];
    struct enode *kids[8];
} enode;

static enode epool[4096];
static int nepool;

static enode *en_new(int type)
{
    if (nepool == (int)(sizeof epool / sizeof *epool))
        return NULL;
    enode *e = &epool[nepool++];
    e->type = type;
    e->n = 0;
    return e;
}

static enode *gen_value(int depth)
{
    unsigned r = rn(100);
    if (depth >= 3 || r < 55) {
        enode *e = en_new(E_SCALAR);
        if (e)
            random_scalar(&e->v);
        return e;
    }
    if (r < 70) { /* object */
        enode *e = en_new(E_OBJ);
        if (!e)
            return NULL;
        int n = (int)rn(4);
        for (int i = 0; i < n; i++) {
            const char *k = PICK(KEYS);
            int dup = 0;
            for (int q = 0; q < e->n; q++)
                dup |= !strcmp(e->keys[q], k);
            if (dup)
                continue;
            enode *v = gen_value(depth + 1);
            if (!v)
                break;
            e->keys[e->n] = k;
            e->kids[e->n++] = v;
        }
        return e;
    }
    enode *e = en_new(E_ARR);
    if (!e)
        return NULL;
    int n = (int)rn(4);
    for (int i = 0; i < n; i++) {
        enode *v;
        if (r < 82) { /* array of scalars */
            v = en_new(E_SCALAR);
            if (v)
                random_scalar(&v->v);
        } else if (r < 95) { /* array of objects */
            v = gen_value(depth + 1);
        } else { /* nested arrays */
            v = gen_value(depth + 2);
        }
        if (!v)
            break;
        e->kids[e->n++] = v;
    }
    return e;
}

static int obj_find(const enode *o, const char *k)
{
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->keys[i], k))
            return i;
    return -1;
}

/* Put value v at field path f inside object o. */
static void inject(enode *o, const gfield *f, int seg, const scalar *v)
{
    const char *k = f->seg[seg];
    int i = obj_find(o, k);
    if (seg == f->nseg - 1) { /* leaf */
        enode *s = en_new(E_SCALAR);
        if (!s)
            return;
        s->v = *v;
        if (i < 0) {
            if (o->n == 8)
                return;
            enode *put = s;
            if (chance(15)) {
                enode *a = en_new(E_ARR);
                if (a) {
                    a->kids[a->n++] = s;
                    if (chance(30)) {
                        enode *x = en_new(E_SCALAR);
                        if (x) {
                            random_scalar(&x->v);
                            a->kids[a->n++] = x;
                        }
                    }
                    put = a;
                }
            }
            o->keys[o->n] = k;
            o->kids[o->n++] = put;
            return;
        }
        enode *cur = o->kids[i];
        if (cur->type == E_SCALAR) {
            enode *a = en_new(E_ARR);
            if (!a)
                return;
            a->kids[a->n++] = cur;
            a->kids[a->n++] = s;
            o->kids[i] = a;
        } else if (cur->type == E_ARR) {
            if (cur->n < 8)
                cur->kids[cur->n++] = s;
        } else if (chance(50)) {
            o->kids[i] = s;
        }
        return;
    }
    /* intermediate */
    enode *next = NULL;
    if (i < 0) {
        if (o->n == 8)
            return;
        enode *obj = en_new(E_OBJ);
        if (!obj)
            return;
        next = obj;
        enode *put = obj;
        if (chance(30)) { /* an array of objects */
            enode *a = en_new(E_ARR);
            if (a) {
                int n = 1 + (int)rn(3), pick = (int)rn((unsigned)n);
                for (int q = 0; q < n; q++) {
                    enode *x = q == pick ? obj : gen_value(1);
                    if (x && x->type != E_OBJ && chance(50)) {
                        enode *y = en_new(E_OBJ);
                        if (y)
                            x = y;
                    }
                    if (x)
                        a->kids[a->n++] = x;
                }
                put = a;
            }
        }
        o->keys[o->n] = k;
        o->kids[o->n++] = put;
    } else {
        enode *cur = o->kids[i];
        if (cur->type == E_OBJ) {
            next = cur;
        } else if (cur->type == E_ARR) {
            int objs[8], no = 0;
            for (int q = 0; q < cur->n; q++)
                if (cur->kids[q]->type == E_OBJ)
                    objs[no++] = q;
            if (no && chance(75)) {
                next = cur->kids[objs[rn((unsigned)no)]];
            } else if (cur->n < 8) {
                next = en_new(E_OBJ);
                if (next)
                    cur->kids[cur->n++] = next;
            }
        } else if (chance(50)) { /* leave the scalar: the path is blocked */
            next = en_new(E_OBJ);
            if (next)
                o->kids[i] = next;
        }
    }
    if (next)
        inject(next, f, seg + 1, v);
}

static void ser_scalar(sbuf *o, const scalar *v)
{
    if (v->is_str)
        sb_json_str(o, v->s);
    else
        sb_puts(o, v->s);
}

static void ser_enode(sbuf *o, const enode *e);

/* Members of object e, keys prefixed with `prefix` (JSON text); `first`
 * tracks the comma.  A non-empty object member may be spelled with dotted
 * keys instead of nesting (never both for one path). */
static void ser_members(sbuf *o, const enode *e, const char *prefix, int *first)
{
    for (int i = 0; i < e->n; i++) {
        sbuf k = {0};
        sb_puts(&k, prefix);
        sb_json_chars(&k, e->keys[i]);
        const enode *v = e->kids[i];
        if (v->type == E_OBJ && v->n > 0 && chance(20)) {
            sb_puts(&k, ".");
            ser_members(o, v, k.b, first);
        } else {
            if (!*first)
                sb_puts(o, ",");
            *first = 0;
            sb_ws(o);
            sb_puts(o, "\"");
            sb_puts(o, k.b);
            sb_puts(o, "\"");
            sb_ws(o);
            sb_puts(o, ":");
            sb_ws(o);
            ser_enode(o, v);
            sb_ws(o);
        }
        free(k.b);
    }
}

static void ser_enode(sbuf *o, const enode *e)
{
    if (e->type == E_SCALAR) {
        ser_scalar(o, &e->v);
    } else if (e->type == E_ARR) {
        sb_puts(o, "[");
        for (int i = 0; i < e->n; i++) {
            if (i)
                sb_puts(o, chance(10) ? " , " : ",");
            sb_ws(o);
            ser_enode(o, e->kids[i]);
            sb_ws(o);
        }
        sb_puts(o, "]");
    } else {
        sb_puts(o, chance(10) ? "{ " : "{");
        int first = 1;
        ser_members(o, e, "", &first);
        sb_ws(o);
        sb_puts(o, "}");
    }
}

/* An event for the fields of the given patterns. */
static void gen_event(gpattern **ps, int np, sbuf *out)
{
    nepool = 0;
    enode *root = en_new(E_OBJ);
    int nb = (int)rn(3);
    for (int i = 0; i < nb; i++) {
        const char *k = PICK(KEYS);
        if (obj_find(root, k) >= 0)
            continue;
        enode *v = gen_value(1);
        if (!v)
            break;
        root->keys[root->n] = k;
        root->kids[root->n++] = v;
    }
    for (int pi = 0; pi < np; pi++) {
        gpattern *p = ps[pi];
        for (int fi = 0; fi < p->nfields; fi++) {
            const gfield *f = &p->fields[fi];
            int tries = chance(70) ? 1 + (int)chance(20) : 0;
            for (int t = 0; t < tries; t++) {
                const gcond *c = &f->c[rn((unsigned)f->nc)];
                scalar v;
                if (c->nhint && chance(80))
                    v = c->hint[rn((unsigned)c->nhint)];
                else
                    random_scalar(&v);
                inject(root, f, 0, &v);
            }
        }
    }
    out->n = 0;
    sb_ws(out);
    ser_enode(out, root);
    sb_ws(out);
}

/* ---- running ------------------------------------------------------------------------------------- */

static long n_disagree;
static long stats[K_N][2];

static void report(const char *what, const char *pat, const char *ev, int want, int v, int t, const char *err)
{
    n_disagree++;
    if (n_disagree <= 8) {
        fprintf(stderr, "DISAGREEMENT (%s)\n  pattern: %s\n  event:   %s\n  reference %d, validating %d, trusting %d%s%s\n",
                what, pat, ev, want, v, t, err ? "\n  error: " : "", err ? err : "");
    }
}

static int match_one(eb_matcher *mt, const eb_snapshot *s, const char *ev, size_t len, unsigned flags, char *errbuf)
{
    const uint64_t *keys;
    size_t n;
    eb_error err;
    if (eb_match(mt, s, ev, len, flags, &keys, &n, &err) != EB_OK) {
        snprintf(errbuf, 256, "%.200s", err.message);
        return -1;
    }
    return n == 1 && keys[0] == 1;
}

/* key sets as sorted arrays -> compare via bitmask over 64 keys */
static int keyset(eb_matcher *mt, const eb_snapshot *s, const char *ev, size_t len, unsigned flags, uint64_t *mask)
{
    const uint64_t *keys;
    size_t n;
    *mask = 0;
    if (eb_match(mt, s, ev, len, flags, &keys, &n, NULL) != EB_OK)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (keys[i] >= 64 || (*mask >> keys[i] & 1))
            return -2;
        *mask |= 1ULL << keys[i];
    }
    return 0;
}

static long multi_checks, multi_matches;

/* Both readers' key sets for the event against the reference's `want`;
 * on a difference, report the rules that differ. */
static void check_keys(eb_matcher *mt, const eb_snapshot *s, const sbuf *ev, uint64_t want, const char *what,
                       int nrules, char *const *pjs)
{
    uint64_t v, t;
    int rv = keyset(mt, s, ev->b, ev->n, 0, &v);
    int rt = keyset(mt, s, ev->b, ev->n, EB_MATCH_TRUSTED, &t);
    if (!rv && !rt && v == want && t == want)
        return;
    if (++n_disagree > 8)
        return;
    fprintf(stderr, "DISAGREEMENT (%s, %d rules)\n  event: %s\n  reference %016llx validating %016llx (rc %d) trusting %016llx (rc %d)\n",
            what, nrules, ev->b, (unsigned long long)want, (unsigned long long)v, rv, (unsigned long long)t, rt);
    uint64_t diff = (want ^ v) | (want ^ t);
    for (int r = 0; r < nrules; r++)
        if (diff >> r & 1)
            fprintf(stderr, "  differing rule %d: %s\n", r, pjs[r]);
}

/* The reference's key set for the event over rules ps (all but `gone`);
 * -1 (reported) if jansson rejects the event. */
static int ref_keys(eb_pattern *const *ps, int n, int gone, const sbuf *ev, const char *what, uint64_t *want)
{
    json_t *j = ref_parse(ev->b, ev->n);
    if (!j) {
        report(what, "", ev->b, 0, 0, 0, "jansson rejects the event");
        return -1;
    }
    *want = 0;
    for (int r = 0; r < n; r++)
        if (r != gone && ref_match(ps[r], j))
            *want |= 1ULL << r;
    json_decref(j);
    return 0;
}

static void free_rules(eb_pattern **ps, char **pjs, int n)
{
    for (int r = 0; r < n; r++) {
        eb_pattern_free(ps[r]);
        free(pjs[r]);
    }
}

static void many_rules(eb_matcher *mt)
{
    enum { NR = 50 };
    static gpattern gps[NR];
    gpattern *ptrs[NR];
    eb_pattern *ps[NR];
    char *pjs[NR];
    sbuf pj = {0}, ej = {0};
    eb_machine *m = eb_machine_new();
    int n = 0;
    while (n < NR) {
        gen_pattern(&gps[n], &pj);
        eb_error err;
        if (eb_pattern_compile(pj.b, pj.n, &ps[n], &err) != EB_OK)
            continue;
        ptrs[n] = &gps[n];
        pjs[n] = strdup(pj.b);
        if (eb_machine_add(m, (uint64_t)n, ps[n]) != EB_OK) {
            report("many rules: add failed", pj.b, "", 0, 0, 0, NULL);
            eb_pattern_free(ps[n]);
            free(pjs[n]);
            break;
        }
        n++;
    }
    /* replace a few keys with new patterns (the machine must forget the old) */
    for (int r = 0; r < 3; r++) {
        int k = (int)rn((unsigned)n);
        gpattern g;
        gen_pattern(&g, &pj);
        eb_pattern *np;
        eb_error err;
        if (eb_pattern_compile(pj.b, pj.n, &np, &err) != EB_OK)
            continue;
        if (eb_machine_add(m, (uint64_t)k, np) == EB_OK) {
            eb_pattern_free(ps[k]);
            ps[k] = np;
            gps[k] = g;
            free(pjs[k]);
            pjs[k] = strdup(pj.b);
        } else {
            eb_pattern_free(np);
        }
    }
    eb_snapshot *s = eb_machine_snapshot(m);
    for (int e = 0; e < 6; e++) {
        gpattern *sel[3];
        for (int q = 0; q < 3; q++)
            sel[q] = ptrs[rn((unsigned)n)];
        gen_event(sel, 3, &ej);
        uint64_t want;
        if (ref_keys(ps, n, -1, &ej, "many rules", &want))
            continue;
        multi_checks++;
        if (want)
            multi_matches++;
        check_keys(mt, s, &ej, want, "random rules", n, pjs);
    }
    eb_snapshot_release(s);
    eb_machine_free(m);
    free_rules(ps, pjs, n);
    free(pj.b);
    free(ej.b);
}

/* ---- rule families: many rules sharing predicates -----------------------------------
 * Random rules rarely share predicates, so two structures the machine builds
 * only for shared ones get their own families here:
 * - "grouped" access units: an exact value that is the access of many
 *   sub-rules which differ in another field (their hint);
 * - box indexes: sub-rules with bounded numeric ranges on two paths;
 * - prefix/suffix lookups by their bytes: many affixes of few lengths at
 *   one path (plus a few wildcards, which stay in the tries);
 * - key indexes: sub-rules that are string equalities and affixes on two
 *   or more paths (keyidx.h), whose events take the key lookups when their
 *   values there are single and at top level, and the kvms otherwise.
 * Fields sit at top level or inside an array of objects ("o"), so the
 * array-consistency rules apply; the events repeat and nest values. */
static long fam_checks, fam_matches;

static const char *const FAM_A[] = {"\"x\"", "\"y\""};
static const char *const FAM_B[] = {"\"1\"", "\"2\"", "\"3\"", "1", "2"};
static const char *const FAM_NUMS[] = {"0", "1", "2", "2.5", "3", "3.0", "3e0", "4", "5", "7", "10", "-1",
                                       "-2.5", "1e300", "-1e300", "0.0001", "100"};

static double fam_num(void)
{
    static const double v[] = {0, 1, 2, 2.5, 3, 4, 5, 7, 10, -1, -2.5, 1e300, -1e300, 0.0001, 100};
    return v[rn(sizeof v / sizeof v[0])];
}

static void fam_range(sbuf *o)
{
    double a = fam_num(), b = fam_num();
    while (a == b) /* AWS: "Bottom must be less than top" */
        b = fam_num();
    if (a > b) {
        double t = a;
        a = b;
        b = t;
    }
    sb_printf(o, "[{\"numeric\": [\"%s\", %.17g, \"%s\", %.17g]}]", chance(50) ? ">" : ">=", a,
              chance(50) ? "<" : "<=", b);
}

static int fam_afx_op; /* per machine: which affix operator the affix family uses */

/* Affixes are ASCII, so their byte lengths are few (1..4) and they are
 * looked up by their bytes; values may also hold "\u00df" (folds to "ss"). */
static void fam_afx_str(sbuf *o, int minlen, int maxlen, int in_value)
{
    static const char *const A[] = {"a", "b", "A", "B", "s", "S", "\u00df"};
    int n = minlen + (int)rn((unsigned)(maxlen - minlen) + 1);
    for (int i = 0; i < n; i++)
        sb_puts(o, A[rn(in_value ? 7 : 6)]);
}

static void fam_pattern(sbuf *o, int kind, int in_arr)
{
    o->n = 0;
    const char *pre = in_arr ? "o." : "";
    sb_puts(o, "{");
    if (kind == 0) { /* grouped: a (few values) + b (few values) [+ c] */
        sb_printf(o, "\"%sa\": [%s], \"%sb\": [%s]", pre, PICK(FAM_A), pre, PICK(FAM_B));
        if (chance(30))
            sb_printf(o, ", \"%sc\": [%s]", pre, chance(50) ? "{\"exists\": true}" : "\"c1\"");
        if (chance(15))
            sb_printf(o, ", \"%sd\": [{\"exists\": false}]", pre);
    } else if (kind == 3) { /* affix: one operator at "s" [+ a wildcard] [+ a] */
        sb_printf(o, "\"%ss\": [", pre);
        int eic = fam_afx_op >= 2;
        const char *op = fam_afx_op & 1 ? "suffix" : "prefix";
        if (eic)
            sb_printf(o, "{\"%s\": {\"equals-ignore-case\": \"", op);
        else
            sb_printf(o, "{\"%s\": \"", op);
        fam_afx_str(o, 1, 4, 0);
        sb_puts(o, eic ? "\"}}" : "\"}");
        if (chance(10)) {
            sb_puts(o, ", {\"wildcard\": \"");
            fam_afx_str(o, 0, 2, 0);
            sb_puts(o, "*");
            fam_afx_str(o, 0, 1, 0);
            sb_puts(o, "\"}");
        }
        sb_puts(o, "]");
        if (chance(20))
            sb_printf(o, ", \"%sa\": [%s]", pre, PICK(FAM_A));
    } else if (kind == 4) { /* keyed: a (exact or ignoring case) + s (an affix or exact) [+ b] [+ c] */
        if (chance(50))
            sb_printf(o, "\"%sa\": [%s]", pre, PICK(FAM_A));
        else
            sb_printf(o, "\"%sa\": [{\"equals-ignore-case\": \"%s\"}]", pre, chance(50) ? "X" : "y");
        static const char *const OPS[] = {"prefix", "suffix", "prefix-eic", "suffix-eic", "exact"};
        int op = (int)rn(5);
        sb_printf(o, ", \"%ss\": [", pre);
        if (op == 4)
            sb_puts(o, "\"");
        else if (op >= 2)
            sb_printf(o, "{\"%s\": {\"equals-ignore-case\": \"", op == 2 ? "prefix" : "suffix");
        else
            sb_printf(o, "{\"%s\": \"", OPS[op]);
        fam_afx_str(o, op == 4 ? 0 : 1, 3, op == 4 || op >= 2);
        sb_puts(o, op == 4 ? "\"]" : op >= 2 ? "\"}}]" : "\"}]");
        if (chance(40))
            sb_printf(o, ", \"%sb\": [\"%d\"]", pre, 1 + (int)rn(3));
        if (chance(20))
            sb_printf(o, ", \"%sc\": [\"c1\"]", pre);
    } else { /* box: x and y ranges [+ z range] [+ a] */
        sb_printf(o, "\"%sx\": ", pre);
        fam_range(o);
        sb_printf(o, ", \"%sy\": ", pre);
        fam_range(o);
        if (chance(25)) {
            sb_printf(o, ", \"%sz\": ", pre);
            fam_range(o);
        }
        if (chance(25))
            sb_printf(o, ", \"%sa\": [%s]", pre, PICK(FAM_A));
    }
    sb_puts(o, "}");
}

static void fam_value(sbuf *o, const char *key)
{
    int many = chance(20);
    int n = many ? 1 + (int)rn(12) : 1;
    if (many)
        sb_puts(o, "[");
    for (int i = 0; i < n; i++) {
        if (i)
            sb_puts(o, ",");
        if (key[0] == 'a') {
            sb_puts(o, PICK(FAM_A));
        } else if (key[0] == 's') {
            sb_puts(o, "\"");
            fam_afx_str(o, 0, 6, 1);
            sb_puts(o, "\"");
        }
        else if (key[0] == 'b')
            sb_puts(o, PICK(FAM_B));
        else if (key[0] == 'c')
            sb_puts(o, chance(50) ? "\"c1\"" : "\"c2\"");
        else if (key[0] == 'd')
            sb_puts(o, "null");
        else
            sb_puts(o, chance(8) ? "\"3\"" : PICK(FAM_NUMS));
    }
    if (many)
        sb_puts(o, "]");
}

static void fam_object(sbuf *o)
{
    static const char *const K[] = {"a", "b", "c", "d", "x", "y", "z", "s"};
    sb_puts(o, "{");
    int first = 1;
    for (size_t k = 0; k < sizeof K / sizeof K[0]; k++) {
        if (chance(15))
            continue;
        sb_printf(o, "%s\"%s\": ", first ? "" : ", ", K[k]);
        first = 0;
        fam_value(o, K[k]);
    }
    sb_puts(o, "}");
}

static void fam_event(sbuf *o)
{
    o->n = 0;
    fam_object(o);
    o->n--; /* reopen */
    sb_puts(o, o->n > 1 ? ", \"o\": [" : "\"o\": [");
    int n = (int)rn(5);
    for (int i = 0; i < n; i++) {
        if (i)
            sb_puts(o, ", ");
        fam_object(o);
    }
    sb_puts(o, "]}");
}

static void families(eb_matcher *mt)
{
    enum { NR = 60 };
    eb_pattern *ps[NR];
    char *pjs[NR];
    sbuf pj = {0}, ej = {0};
    eb_machine *m = eb_machine_new();
    int kind = (int)rn(5); /* 0 grouped, 1 boxes, 2 both, 3 affixes, 4 keyed */
    int in_arr = chance(30);
    fam_afx_op = (int)rn(4);
    int n = 0;
    while (n < NR) {
        fam_pattern(&pj, kind == 2 ? (int)rn(2) : kind, in_arr || (kind != 3 && kind != 4 && chance(10)));
        eb_error err;
        if (eb_pattern_compile(pj.b, pj.n, &ps[n], &err) != EB_OK) {
            report("families: pattern rejected", pj.b, "", 0, 0, 0, err.message);
            break;
        }
        pjs[n] = strdup(pj.b);
        n++;
    }
    /* add in two batches, then remove and re-add a few (incremental changes) */
    uint64_t keys[NR];
    for (int i = 0; i < n; i++)
        keys[i] = (uint64_t)i;
    int half = n / 2;
    if (eb_machine_add_batch(m, (size_t)half, keys, (const eb_pattern *const *)ps) != EB_OK)
        report("families: add failed", "", "", 0, 0, 0, NULL);
    for (int i = half; i < n; i++)
        if (eb_machine_add(m, keys[i], ps[i]) != EB_OK)
            report("families: add failed", pjs[i], "", 0, 0, 0, NULL);
    for (int r = 0; r < 5; r++) {
        int k = (int)rn((unsigned)n);
        if (eb_machine_remove(m, keys[k]) != EB_OK || eb_machine_add(m, keys[k], ps[k]) != EB_OK)
            report("families: remove/add failed", pjs[k], "", 0, 0, 0, NULL);
    }
    int gone = chance(50) ? (int)rn((unsigned)n) : -1;
    if (gone >= 0 && eb_machine_remove(m, keys[gone]) != EB_OK)
        report("families: remove failed", pjs[gone], "", 0, 0, 0, NULL);
    eb_snapshot *s = eb_machine_snapshot(m);
    for (int e = 0; e < 20; e++) {
        fam_event(&ej);
        uint64_t want;
        if (ref_keys(ps, n, gone, &ej, "families", &want))
            continue;
        fam_checks++;
        fam_matches += want != 0;
        static const char *const names[] = {"family: grouped", "family: boxes", "family: grouped+boxes",
                                            "family: affixes", "family: keyed"};
        check_keys(mt, s, &ej, want, names[kind], n, pjs);
    }
    eb_snapshot_release(s);
    eb_machine_free(m);
    free_rules(ps, pjs, n);
    free(pj.b);
    free(ej.b);
}

static void test_differential(void)
{
    uint64_t seed = DEFAULT_SEED;
    long cases = DEFAULT_CASES;
    const char *e;
    if ((e = getenv("EB_DIFF_SEED")) && *e)
        seed = strtoull(e, NULL, 0);
    if ((e = getenv("EB_DIFF_CASES")) && *e)
        cases = strtol(e, NULL, 0);
    rng_state = seed;
    printf("differential: seed %llu, %ld cases%s\n", (unsigned long long)seed, cases,
           EB_DIFF_SANITIZED ? " (sanitizer build: fewer cases)" : "");

    eb_machine *m = eb_machine_new();
    eb_matcher *mt = eb_matcher_new();
    sbuf pj = {0}, ej = {0};
    long invalid = 0, valid = 0, matched = 0;
    gpattern g;
    clock_t t0 = clock();
    const unsigned defer_default = ebp_vm_defer_min;
    for (long i = 0; i < cases; i++) {
        /* single-rule cases alternate; families and many_rules every other time */
        ebp_vm_defer_min = ((i % 2) ^ ((i / 100) % 2)) ? 0 : defer_default;
        if (i % 100 == 99) {
            many_rules(mt);
            continue;
        }
        if (i % 100 == 49) {
            families(mt);
            continue;
        }
        gen_pattern(&g, &pj);
        eb_pattern *p = NULL;
        eb_error err;
        if (eb_pattern_compile(pj.b, pj.n, &p, &err) != EB_OK) {
            invalid++;
            continue;
        }
        valid++;
        gpattern *gp = &g;
        gen_event(&gp, 1, &ej);
        json_t *j = ref_parse(ej.b, ej.n);
        if (!j) {
            report("jansson rejects the event", pj.b, ej.b, -1, -1, -1, NULL);
            eb_pattern_free(p);
            continue;
        }
        int want = ref_match(p, j);
        json_decref(j);
        /* key 1 is replaced on every case */
        if (eb_machine_add(m, 1, p) != EB_OK) {
            report("add failed", pj.b, ej.b, want, -1, -1, NULL);
            eb_pattern_free(p);
            continue;
        }
        eb_snapshot *s = eb_machine_snapshot(m);
        /* exact-size copy so ASan sees over-reads */
        char *ev = malloc(ej.n ? ej.n : 1);
        memcpy(ev, ej.b, ej.n);
        char e1[256] = "", e2[256] = "";
        int v = match_one(mt, s, ev, ej.n, 0, e1);
        int t = match_one(mt, s, ev, ej.n, EB_MATCH_TRUSTED, e2);
        free(ev);
        eb_snapshot_release(s);
        if (v != want || t != want)
            report("single rule", pj.b, ej.b, want, v, t, v < 0 ? e1 : t < 0 ? e2 : NULL);
        matched += want;
        for (int k = 0; k < K_N; k++)
            if (g.kinds >> k & 1)
                stats[k][want]++;
        eb_pattern_free(p);
    }
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    printf("%ld valid patterns (%ld matched), %ld invalid skipped, %ld many-rule checks (%ld with matches), "
           "%ld family checks (%ld with matches), %.1f s\n",
           valid, matched, invalid, multi_checks, multi_matches, fam_checks, fam_matches, secs);
    printf("%-20s %9s %9s %6s\n", "operator", "match", "no-match", "match%");
    int skewed = 0;
    for (int k = 0; k < K_N; k++) {
        long a = stats[k][1], b = stats[k][0];
        double pct = a + b ? 100.0 * (double)a / (double)(a + b) : 0;
        int bad = a + b == 0 || pct < 10 || pct > 90;
        printf("%-20s %9ld %9ld %5.1f%%%s\n", KNAMES[k], a, b, pct, bad ? "  <-- under 10% on one side" : "");
        skewed |= bad;
    }
    if (n_disagree)
        fprintf(stderr, "%ld disagreements (seed %llu)\n", n_disagree, (unsigned long long)seed);
    CHECK(n_disagree == 0);
    CHECK(!skewed);
    ebp_vm_defer_min = defer_default;
    eb_matcher_free(mt);
    eb_machine_free(m);
    free(pj.b);
    free(ej.b);
}

int main(void)
{
    RUN(test_differential);
    return TEST_REPORT();
}
