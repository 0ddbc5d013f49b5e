/* The EventBridge `wildcard` operator: parsing, matching, complexity.
 * See wildcard.h and docs/notes/wildcard.md. */
#include "wildcard.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ebp_glob {
    unsigned char *lit; /* literal bytes of all segments, back to back */
    size_t *off;        /* nseg + 1 offsets: segment k is lit[off[k] .. off[k+1]) */
    size_t *pi;         /* KMP prefix function, parallel to lit, per segment */
    size_t nseg;        /* number of '*' + 1 */
};

/* ------------------------------------------------------------------ */
/* parsing                                                             */

static int parse_fail(char *err, size_t errcap, const char *what, size_t pos)
{
    if (err && errcap) {
        if (pos == SIZE_MAX)
            snprintf(err, errcap, "%s", what);
        else
            snprintf(err, errcap, "%s at pos %zu", what, pos);
    }
    return -1;
}

void ebp_glob_free(ebp_glob *g)
{
    if (!g)
        return;
    free(g->lit);
    free(g->off);
    free(g->pi);
    free(g);
}

int ebp_glob_parse(const char *s, size_t n, ebp_glob **out, char *err, size_t errcap)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t stars = 0, lits = 0;

    *out = NULL;
    if (err && errcap)
        err[0] = '\0';

    /* Pass 1: validate like event-ruler's WildcardParser, which walks the UTF-8
     * bytes of '"' + text + '"': reported positions are our byte index + 1, and
     * the closing quote is what follows a trailing '*' or '\'. */
    for (size_t i = 0; i < n; i++) {
        if (u[i] == '*') {
            if (i + 1 < n && u[i + 1] == '*')
                return parse_fail(err, errcap, "Consecutive wildcard characters", i + 1);
            stars++;
        } else if (u[i] == '\\') {
            if (i + 1 < n && (u[i + 1] == '*' || u[i + 1] == '\\')) {
                lits++;
                i++;
            } else {
                return parse_fail(err, errcap, "Invalid escape character", i + 1);
            }
        } else {
            lits++;
        }
    }

    ebp_glob *g = calloc(1, sizeof *g);
    if (!g)
        return parse_fail(err, errcap, "Out of memory", SIZE_MAX);
    g->nseg = stars + 1;
    g->lit = malloc(lits ? lits : 1);
    g->pi = malloc((lits ? lits : 1) * sizeof *g->pi);
    g->off = malloc((g->nseg + 1) * sizeof *g->off);
    if (!g->lit || !g->pi || !g->off) {
        ebp_glob_free(g);
        return parse_fail(err, errcap, "Out of memory", SIZE_MAX);
    }

    /* Pass 2: resolve escapes, split at '*'. */
    size_t w = 0, k = 0;
    g->off[0] = 0;
    for (size_t i = 0; i < n; i++) {
        if (u[i] == '*') {
            g->off[++k] = w;
        } else if (u[i] == '\\') {
            g->lit[w++] = u[++i];
        } else {
            g->lit[w++] = u[i];
        }
    }
    g->off[++k] = w;

    /* KMP prefix function of every segment (only the middle ones are searched,
     * but computing all keeps the layout simple). */
    for (k = 0; k < g->nseg; k++) {
        const unsigned char *p = g->lit + g->off[k];
        size_t *pi = g->pi + g->off[k];
        size_t m = g->off[k + 1] - g->off[k];
        size_t b = 0;
        if (m)
            pi[0] = 0;
        for (size_t q = 1; q < m; q++) {
            while (b > 0 && p[q] != p[b])
                b = pi[b - 1];
            if (p[q] == p[b])
                b++;
            pi[q] = b;
        }
    }

    *out = g;
    return 0;
}

/* ------------------------------------------------------------------ */
/* accessors                                                           */

size_t ebp_glob_prefix(const ebp_glob *g, const unsigned char **p)
{
    *p = g->lit;
    return g->off[1] - g->off[0];
}

size_t ebp_glob_suffix(const ebp_glob *g, const unsigned char **p)
{
    *p = g->lit + g->off[g->nseg - 1];
    return g->off[g->nseg] - g->off[g->nseg - 1];
}

int ebp_glob_has_star(const ebp_glob *g) { return g->nseg > 1; }

size_t ebp_glob_stars(const ebp_glob *g) { return g->nseg - 1; }

/* ------------------------------------------------------------------ */
/* matching                                                            */

static int bytes_eq(const unsigned char *a, const unsigned char *b, size_t n)
{
    return n == 0 || memcmp(a, b, n) == 0;
}

/* Leftmost occurrence of pat[0..m) (m >= 1, prefix function pi) in t[0..n).
 * Linear in n: the text index never moves backwards. */
static int kmp_find(const unsigned char *pat, const size_t *pi, size_t m,
                    const unsigned char *t, size_t n, size_t *at)
{
    size_t i = 0, j = 0;
    while (i < n) {
        if (n - i < m - j)
            return 0; /* not enough text left to complete a match */
        if (j == 0) {
            const unsigned char *hit = memchr(t + i, pat[0], n - i);
            if (!hit)
                return 0;
            i = (size_t)(hit - t);
            if (n - i < m)
                return 0;
        }
        if (t[i] == pat[j]) {
            i++;
            if (++j == m) {
                *at = i - m;
                return 1;
            }
        } else {
            j = pi[j - 1]; /* j > 0 here: at j == 0, t[i] == pat[0] by memchr */
        }
    }
    return 0;
}

int ebp_glob_match(const ebp_glob *g, const unsigned char *v, size_t n)
{
    if (n == 0) /* v may be NULL: no pointer arithmetic on it */
        return g->off[g->nseg] == 0;
    const size_t plen = g->off[1];
    if (g->nseg == 1)
        return n == plen && bytes_eq(v, g->lit, plen);

    const size_t soff = g->off[g->nseg - 1];
    const size_t slen = g->off[g->nseg] - soff;
    if (n < plen || n - plen < slen)
        return 0;
    if (!bytes_eq(v, g->lit, plen) || !bytes_eq(v + n - slen, g->lit + soff, slen))
        return 0;

    /* Middle segments, in order, each at its leftmost position after the
     * previous one: taking the leftmost is never worse for what follows. */
    size_t pos = plen;
    const size_t end = n - slen;
    for (size_t k = 1; k + 1 < g->nseg; k++) {
        const size_t o = g->off[k], m = g->off[k + 1] - o;
        size_t at;
        if (m == 0)
            continue; /* cannot happen ("**" is rejected), harmless anyway */
        if (!kmp_find(g->lit + o, g->pi + o, m, v + pos, end - pos, &at))
            return 0;
        pos += at + m;
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* complexity                                                          */
/*
 * NFA: for every glob, one start pseudo-state followed by one state per token
 * (literal byte or '*').  Being in the state of token t means "the value read
 * so far matches the glob up to and including t".  A '*' state loops on every
 * byte; a state whose next token is '*' also activates that '*' state (the
 * star matching nothing).  That is event-ruler's ByteMachine for a wildcard
 * pattern (see ByteMachine.addTransitionNextStateForWildcard), and counting
 * the active non-start states is what MachineComplexityEvaluator.evaluate
 * counts.  We enumerate the reachable sets of active states (subset
 * construction).  Bytes that are not the next literal of any active state all
 * lead to the same set (only the looping '*' states survive), so per set we
 * try each distinct next literal plus one "other" byte.
 */

#define TOK_START (-1)
#define TOK_STAR 256

#define CX_MAX_SETS 65536u          /* distinct active sets explored */
#define CX_MAX_WORDS (1u << 21)      /* 16 MiB of stored sets */

typedef struct {
    size_t n;            /* states */
    size_t words;        /* 64-bit words per set */
    int *tok;            /* TOK_START, 0..255 or TOK_STAR */
    unsigned char *last; /* state is its glob's last one (no successor) */
    size_t *link;        /* scratch: per-byte bucket chains */

    uint64_t *sets;      /* explored sets, in BFS order */
    size_t nsets, capsets;
    uint32_t *slots;     /* hash table of set index + 1 */
    size_t nslots;       /* power of two */
    unsigned best;
    int gave_up;
} cx;

static unsigned popcount64(uint64_t x)
{
#if defined(__GNUC__)
    return (unsigned)__builtin_popcountll(x);
#else
    unsigned c = 0;
    while (x) {
        x &= x - 1;
        c++;
    }
    return c;
#endif
}

static unsigned ctz64(uint64_t x) /* x != 0 */
{
#if defined(__GNUC__)
    return (unsigned)__builtin_ctzll(x);
#else
    unsigned c = 0;
    while (!(x & 1)) {
        x >>= 1;
        c++;
    }
    return c;
#endif
}

static uint64_t set_hash(const uint64_t *s, size_t words)
{
    uint64_t h = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < words; i++) {
        h ^= s[i];
        h *= 0xff51afd7ed558ccdu;
        h ^= h >> 32;
    }
    return h;
}

static int glob_equal(const ebp_glob *a, const ebp_glob *b)
{
    if (a->nseg != b->nseg || a->off[a->nseg] != b->off[b->nseg])
        return 0;
    if (memcmp(a->off, b->off, (a->nseg + 1) * sizeof *a->off) != 0)
        return 0;
    return bytes_eq(a->lit, b->lit, a->off[a->nseg]);
}

/* Insert set s (already counted) if new.  0 ok, -1 budget exhausted / OOM. */
static int cx_insert(cx *c, const uint64_t *s)
{
    const size_t W = c->words;
    if (c->nsets * 2 >= c->nslots) {
        size_t ns = c->nslots ? c->nslots * 2 : 1024;
        uint32_t *sl = calloc(ns, sizeof *sl);
        if (!sl)
            return -1;
        for (size_t i = 0; i < c->nsets; i++) {
            size_t h = (size_t)set_hash(c->sets + i * W, W) & (ns - 1);
            while (sl[h])
                h = (h + 1) & (ns - 1);
            sl[h] = (uint32_t)(i + 1);
        }
        free(c->slots);
        c->slots = sl;
        c->nslots = ns;
    }
    size_t h = (size_t)set_hash(s, W) & (c->nslots - 1);
    while (c->slots[h]) {
        if (memcmp(c->sets + (c->slots[h] - 1) * W, s, W * sizeof *s) == 0)
            return 0; /* seen */
        h = (h + 1) & (c->nslots - 1);
    }
    if (c->nsets >= CX_MAX_SETS || (c->nsets + 1) * W > CX_MAX_WORDS)
        return -1;
    if (c->nsets == c->capsets) {
        size_t nc = c->capsets ? c->capsets * 2 : 64;
        if (nc > CX_MAX_SETS)
            nc = CX_MAX_SETS;
        uint64_t *ns = realloc(c->sets, nc * W * sizeof *ns);
        if (!ns)
            return -1;
        c->sets = ns;
        c->capsets = nc;
    }
    memcpy(c->sets + c->nsets * W, s, W * sizeof *s);
    c->slots[h] = (uint32_t)(c->nsets + 1);
    c->nsets++;
    return 0;
}

/* A set reached after reading at least one byte: count it, queue it. */
static void cx_visit(cx *c, const uint64_t *s)
{
    unsigned cnt = 0;
    for (size_t i = 0; i < c->words; i++)
        cnt += popcount64(s[i]);
    if (cnt == 0)
        return; /* everything died */
    if (cnt > c->best)
        c->best = cnt;
    if (c->best >= EBP_GLOB_COMPLEXITY_CAP)
        return;
    if (cx_insert(c, s) != 0)
        c->gave_up = 1;
}

#define SET_BIT(s, i) ((s)[(i) >> 6] |= (uint64_t)1 << ((i) & 63))

/* Activate state j (a literal state or a start) and, if a '*' follows, that '*'. */
static void cx_activate(const cx *c, uint64_t *s, size_t j)
{
    SET_BIT(s, j);
    if (!c->last[j] && c->tok[j + 1] == TOK_STAR)
        SET_BIT(s, j + 1);
}

static unsigned complexity(const ebp_glob *const *globs, size_t count, int framed)
{
    cx c;
    memset(&c, 0, sizeof c);
    unsigned result = EBP_GLOB_COMPLEXITY_CAP; /* on OOM: refuse rather than guess */
    uint64_t *cur = NULL, *base = NULL, *next = NULL;

    /* Size the NFA (identical globs count once, like event-ruler's equal Patterns). */
    for (size_t i = 0; i < count; i++) {
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++)
            dup = glob_equal(globs[i], globs[j]);
        if (dup)
            continue;
        const ebp_glob *g = globs[i];
        c.n += 1 + g->off[g->nseg] + (g->nseg - 1) + (framed ? 2 : 0);
    }
    if (c.n == 0)
        return 0;
    c.words = (c.n + 63) / 64;
    c.tok = malloc(c.n * sizeof *c.tok);
    c.last = malloc(c.n);
    c.link = malloc(c.n * sizeof *c.link);
    cur = calloc(c.words, sizeof *cur);
    base = calloc(c.words, sizeof *base);
    next = calloc(c.words, sizeof *next);
    if (!c.tok || !c.last || !c.link || !cur || !base || !next)
        goto out;

    /* Lay out the states; the initial set is every start plus the '*'s they
     * reach without reading anything. */
    size_t st = 0;
    for (size_t i = 0; i < count; i++) {
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++)
            dup = glob_equal(globs[i], globs[j]);
        if (dup)
            continue;
        const ebp_glob *g = globs[i];
        size_t first = st;
        c.tok[st++] = TOK_START;
        if (framed)
            c.tok[st++] = '"';
        for (size_t k = 0; k < g->nseg; k++) {
            if (k)
                c.tok[st++] = TOK_STAR;
            for (size_t b = g->off[k]; b < g->off[k + 1]; b++)
                c.tok[st++] = g->lit[b];
        }
        if (framed)
            c.tok[st++] = '"';
        for (size_t j = first; j < st; j++)
            c.last[j] = (j + 1 == st);
    }
    for (size_t j = 0; j < c.n; j++)
        if (c.tok[j] == TOK_START)
            cx_activate(&c, cur, j);
    if (cx_insert(&c, cur) != 0)
        goto out;

    /* Breadth-first over the reachable sets.  The initial set is not counted:
     * like event-ruler, only sets reached by reading at least one byte count
     * (start states are never re-entered, so they are never counted). */
    size_t head[256];
    for (int b = 0; b < 256; b++)
        head[b] = SIZE_MAX;
    unsigned char touched[256];

    for (size_t q = 0; q < c.nsets && !c.gave_up && c.best < EBP_GLOB_COMPLEXITY_CAP; q++) {
        memcpy(cur, c.sets + q * c.words, c.words * sizeof *cur);
        memset(base, 0, c.words * sizeof *base);
        size_t ntouched = 0;

        for (size_t w = 0; w < c.words; w++) {
            uint64_t x = cur[w];
            while (x) {
                size_t i = w * 64 + ctz64(x);
                x &= x - 1;
                if (c.tok[i] == TOK_STAR)
                    SET_BIT(base, i); /* '*' consumes any byte */
                if (!c.last[i] && c.tok[i + 1] >= 0 && c.tok[i + 1] < 256) {
                    /* literal successor: reached on that byte only */
                    unsigned b = (unsigned)c.tok[i + 1];
                    if (head[b] == SIZE_MAX)
                        touched[ntouched++] = (unsigned char)b;
                    c.link[i + 1] = head[b];
                    head[b] = i + 1;
                }
            }
        }

        /* Any byte that is nobody's next literal: only the '*' loops survive
         * (a '*' is never followed by '*', so nothing more to activate). */
        if (ntouched < 256)
            cx_visit(&c, base);

        for (size_t t = 0; t < ntouched; t++) {
            unsigned b = touched[t];
            memcpy(next, base, c.words * sizeof *next);
            for (size_t j = head[b]; j != SIZE_MAX; j = c.link[j])
                cx_activate(&c, next, j);
            head[b] = SIZE_MAX;
            if (!c.gave_up && c.best < EBP_GLOB_COMPLEXITY_CAP)
                cx_visit(&c, next);
        }
    }

    result = (c.gave_up || c.best > EBP_GLOB_COMPLEXITY_CAP) ? EBP_GLOB_COMPLEXITY_CAP : c.best;
out:
    free(c.tok);
    free(c.last);
    free(c.link);
    free(c.sets);
    free(c.slots);
    free(cur);
    free(base);
    free(next);
    return result;
}

unsigned ebp_glob_complexity(const ebp_glob *const *globs, size_t count)
{
    return complexity(globs, count, 1);
}

unsigned ebp_glob_complexity_unframed(const ebp_glob *const *globs, size_t count)
{
    return complexity(globs, count, 0);
}
