/* Unit tests for src/pattern/wildcard.c (the EventBridge `wildcard` operator). */
#include "test.h"
#include "wildcard.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- helpers ------------------------------------------------------- */

static ebp_glob *P(const char *text)
{
    ebp_glob *g = NULL;
    char err[128];
    if (ebp_glob_parse(text, strlen(text), &g, err, sizeof err) != 0) {
        fprintf(stderr, "unexpected parse error for [%s]: %s\n", text, err);
        return NULL;
    }
    return g;
}

/* Parse error text for `text` ("" if it parsed). */
static const char *perr(const char *text)
{
    static char err[128];
    ebp_glob *g = (ebp_glob *)1;
    strcpy(err, "");
    int rc = ebp_glob_parse(text, strlen(text), &g, err, sizeof err);
    if (rc == 0) {
        ebp_glob_free(g);
        return "";
    }
    if (g != NULL)
        return "(out not cleared)";
    return err;
}

static int M(const char *glob, const char *value)
{
    ebp_glob *g = P(glob);
    if (!g)
        return -1;
    /* copy the value into an exact-size heap block so ASan catches overreads */
    size_t n = strlen(value);
    unsigned char *v = malloc(n ? n : 1);
    memcpy(v, value, n);
    int r = ebp_glob_match(g, n ? v : NULL, n);
    free(v);
    ebp_glob_free(g);
    return r;
}

static unsigned CX(int framed, int n, ...)
{
    ebp_glob *gs[64];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        gs[i] = P(va_arg(ap, const char *));
    va_end(ap);
    unsigned r = framed ? ebp_glob_complexity((const ebp_glob *const *)gs, (size_t)n)
                        : ebp_glob_complexity_unframed((const ebp_glob *const *)gs, (size_t)n);
    for (int i = 0; i < n; i++)
        ebp_glob_free(gs[i]);
    return r;
}

/* ---- parse errors -------------------------------------------------- */

static void test_errors(void)
{
    /* AWS's recorded case */
    CHECK_STR(perr("arn:aws:events:us-east-1:**:event-bus/*"), "Consecutive wildcard characters at pos 26");
    CHECK_STR(perr("**"), "Consecutive wildcard characters at pos 1");
    CHECK_STR(perr("***"), "Consecutive wildcard characters at pos 1");
    CHECK_STR(perr("a**"), "Consecutive wildcard characters at pos 2");
    CHECK_STR(perr("a*b**"), "Consecutive wildcard characters at pos 4");
    CHECK_STR(perr("\\**"), "");                                           /* \* then * */
    CHECK_STR(perr("\\***"), "Consecutive wildcard characters at pos 3");  /* \* then ** */
    CHECK_STR(perr("\\\\**"), "Consecutive wildcard characters at pos 3"); /* \\ then ** */
    CHECK_STR(perr("*\\**"), "");                                         /* * \* * */
    CHECK_STR(perr("*\\***"), "Consecutive wildcard characters at pos 4");

    CHECK_STR(perr("\\"), "Invalid escape character at pos 1");
    CHECK_STR(perr("a\\"), "Invalid escape character at pos 2"); /* trailing backslash */
    CHECK_STR(perr("*\\"), "Invalid escape character at pos 2");
    CHECK_STR(perr("\\a"), "Invalid escape character at pos 1");
    CHECK_STR(perr("ab\\?"), "Invalid escape character at pos 3");
    CHECK_STR(perr("a\\\\\\"), "Invalid escape character at pos 4"); /* a \\ \ */
    CHECK_STR(perr("\\\""), "Invalid escape character at pos 1");
    CHECK_STR(perr("\\n"), "Invalid escape character at pos 1");
    /* the first problem from the left wins */
    CHECK_STR(perr("a\\b**"), "Invalid escape character at pos 2");
    CHECK_STR(perr("a**\\b"), "Consecutive wildcard characters at pos 2");

    /* positions are UTF-8 byte offsets (+1 for event-ruler's opening quote),
       not UTF-16 or code point indexes */
    CHECK_STR(perr("\xc3\xa9**"), "Consecutive wildcard characters at pos 3");               /* é** */
    CHECK_STR(perr("\xe6\x97\xa5\xe6\x9c\xac\\x"), "Invalid escape character at pos 7");      /* 日本\x */
    CHECK_STR(perr("\xf0\x9f\x98\x80*\xf0\x9f\x98\x80**"), "Consecutive wildcard characters at pos 10"); /* 😀*😀** */

    /* valid ones */
    CHECK_STR(perr(""), "");
    CHECK_STR(perr("*"), "");
    CHECK_STR(perr("*a*"), "");
    CHECK_STR(perr("a\\*b"), "");
    CHECK_STR(perr("a\\\\b"), "");
    CHECK_STR(perr("?[]{}"), "");

    /* err buffer handling: truncation, NULL */
    char small[8];
    ebp_glob *g = NULL;
    CHECK(ebp_glob_parse("**", 2, &g, small, sizeof small) == -1);
    CHECK_STR(small, "Consecu");
    CHECK(g == NULL);
    CHECK(ebp_glob_parse("**", 2, &g, NULL, 0) == -1);
    CHECK(ebp_glob_parse(NULL, 0, &g, NULL, 0) == 0 && g != NULL);
    CHECK(ebp_glob_match(g, NULL, 0) == 1);
    ebp_glob_free(g);
    ebp_glob_free(NULL);

    /* not NUL-terminated input: only s[0..n) is read */
    char buf[4] = {'a', '*', '*', '*'};
    CHECK(ebp_glob_parse(buf, 2, &g, small, sizeof small) == 0);
    CHECK(ebp_glob_has_star(g));
    ebp_glob_free(g);
    char bs[1] = {'\\'};
    CHECK(ebp_glob_parse(bs, 1, &g, small, sizeof small) == -1);
}

/* ---- matching ------------------------------------------------------ */

static void test_basic(void)
{
    CHECK(M("", "") == 1);
    CHECK(M("", "a") == 0);
    CHECK(M("*", "") == 1);
    CHECK(M("*", "anything/at/all") == 1);
    CHECK(M("abc", "abc") == 1);
    CHECK(M("abc", "abcd") == 0);
    CHECK(M("abc", "ab") == 0);
    CHECK(M("a?c", "abc") == 0); /* '?' is literal */
    CHECK(M("a?c", "a?c") == 1);

    /* leading / trailing */
    CHECK(M("*.png", "a.png") == 1);
    CHECK(M("*.png", ".png") == 1);
    CHECK(M("*.png", "a.png.jpg") == 0);
    CHECK(M("img/*", "img/") == 1);
    CHECK(M("img/*", "img/a/b") == 1);
    CHECK(M("img/*", "im") == 0);
    CHECK(M("*mid*", "mid") == 1);
    CHECK(M("*mid*", "xxmidxx") == 1);
    CHECK(M("*mid*", "mi") == 0);
    CHECK(M("a*b", "ab") == 1);
    CHECK(M("a*b", "a/x/b") == 1);
    CHECK(M("a*b", "ba") == 0);
    CHECK(M("ab*ba", "aba") == 0); /* prefix and suffix may not overlap */
    CHECK(M("ab*ba", "abba") == 1);
    CHECK(M("a*a", "a") == 0);
    CHECK(M("a*a", "aa") == 1);

    /* overlapping middle segments */
    CHECK(M("*aa*aa*", "aaa") == 0);
    CHECK(M("*aa*aa*", "aaaa") == 1);
    CHECK(M("*aa*aa*", "aabaa") == 1);
    CHECK(M("*aa*aa*", "abaab") == 0);
    CHECK(M("*aab*ab*", "aaabab") == 1);
    CHECK(M("*abab*c", "ababac") == 1);
    CHECK(M("*abab*c", "abac") == 0);
    CHECK(M("*abab*c", "abaabc") == 0);
    CHECK(M("*abab*c", "abababc") == 1);
    CHECK(M("x*aba*aba*y", "xabababay") == 1);
    CHECK(M("x*aba*aba*y", "xababay") == 0);

    CHECK(M("arn:aws:events:us-east-1:*:event-bus/*", "arn:aws:events:us-east-1:123456789012:event-bus/default") == 1);
    CHECK(M("arn:aws:events:us-east-1:*:event-bus/*", "arn:aws:events:us-east-2:123456789012:event-bus/default") == 0);
    CHECK(M("*:*:*:*:*:event-bus/*", "arn:aws:events:us-east-1:123:event-bus/x") == 1);
}

static void test_escapes(void)
{
    /* a\*b : literal star */
    CHECK(M("a\\*b", "a*b") == 1);
    CHECK(M("a\\*b", "axb") == 0);
    CHECK(M("a\\*b", "ab") == 0);
    /* \\ : literal backslash */
    CHECK(M("a\\\\b", "a\\b") == 1);
    CHECK(M("a\\\\b", "ab") == 0);
    CHECK(M("\\\\\\\\", "\\\\") == 1);   /* \\\\ -> two backslashes */
    CHECK(M("\\\\\\\\", "\\") == 0);
    /* \\* : backslash then a real wildcard */
    CHECK(M("\\\\*", "\\") == 1);
    CHECK(M("\\\\*", "\\anything") == 1);
    CHECK(M("\\\\*", "x\\") == 0);
    /* \** : literal star then wildcard; *\* : wildcard then literal star */
    CHECK(M("\\**", "*") == 1);
    CHECK(M("\\**", "*abc") == 1);
    CHECK(M("\\**", "abc") == 0);
    CHECK(M("*\\*", "abc*") == 1);
    CHECK(M("*\\*", "abc") == 0);
    CHECK(M("\\*", "*") == 1);
    CHECK(M("\\*", "") == 0);

    ebp_glob *g = P("a\\*b");
    CHECK(g && !ebp_glob_has_star(g));
    const unsigned char *p;
    CHECK(g && ebp_glob_prefix(g, &p) == 3 && memcmp(p, "a*b", 3) == 0);
    CHECK(g && ebp_glob_suffix(g, &p) == 3 && memcmp(p, "a*b", 3) == 0);
    ebp_glob_free(g);
}

static void test_accessors(void)
{
    const unsigned char *p;
    ebp_glob *g = P("pre\\\\fix*mid*su\\*f");
    CHECK(g != NULL);
    if (!g)
        return;
    CHECK(ebp_glob_has_star(g));
    CHECK(ebp_glob_prefix(g, &p) == 7 && memcmp(p, "pre\\fix", 7) == 0);
    CHECK(ebp_glob_suffix(g, &p) == 4 && memcmp(p, "su*f", 4) == 0);
    ebp_glob_free(g);

    g = P("*");
    CHECK(g && ebp_glob_has_star(g) && ebp_glob_prefix(g, &p) == 0 && ebp_glob_suffix(g, &p) == 0);
    ebp_glob_free(g);
    g = P("");
    CHECK(g && !ebp_glob_has_star(g) && ebp_glob_prefix(g, &p) == 0 && ebp_glob_suffix(g, &p) == 0);
    ebp_glob_free(g);
    g = P("*tail");
    CHECK(g && ebp_glob_prefix(g, &p) == 0 && ebp_glob_suffix(g, &p) == 4);
    ebp_glob_free(g);
}

static void test_utf8(void)
{
    CHECK(M("*\xc3\xa9*", "caf\xc3\xa9!") == 1);                          /* *é* vs café! */
    CHECK(M("*\xc3\xa9*", "cafe\xcc\x81") == 0);                          /* decomposed é */
    CHECK(M("\xe6\x97\xa5*\xe8\xaa\x9e", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e") == 1); /* 日*語 vs 日本語 */
    CHECK(M("\xe6\x97\xa5*\xe8\xaa\x9e", "\xe6\x97\xa5\xe6\x9c\xac") == 0);
    CHECK(M("\xe6\x97\xa5*\xe8\xaa\x9e", "\xe6\x97\xa5\xe8\xaa\x9e") == 1);
    CHECK(M("*\xf0\x9f\x98\x80", "smile \xf0\x9f\x98\x80") == 1);
    CHECK(M("\xf0\x9f\x98\x80*\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80") == 0);
    /* bytes, not characters: a '*' between code points still matches whole ones here */
    CHECK(M("\xc3*\xa9", "\xc3\xa9") == 1);
}

/* A value that would make a backtracking matcher take quadratic or worse time. */
static void test_linear(void)
{
    size_t n = 1 << 20;
    unsigned char *v = malloc(n);
    memset(v, 'a', n);
    ebp_glob *g = P("*a*aa*aaa*aaaa*aaaaa*aaaaaaaaaaaaaaaaaaaaaaaaaaaab*");
    ebp_glob *h = P("*aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab");
    ebp_glob *k = P("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*");
    clock_t t0 = clock();
    CHECK(g && ebp_glob_match(g, v, n) == 0);
    CHECK(h && ebp_glob_match(h, v, n) == 0);
    CHECK(k && ebp_glob_match(k, v, n) == 1);
    v[n - 1] = 'b';
    CHECK(h && ebp_glob_match(h, v, n) == 1);
    CHECK(g && ebp_glob_match(g, v, n) == 1); /* the final '*' matches the empty string */
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(secs < 2.0);
    ebp_glob_free(g);
    ebp_glob_free(h);
    ebp_glob_free(k);
    free(v);
}

/* ---- complexity ---------------------------------------------------- */

static void test_complexity_examples(void)
{
    /* the AWS-observed pair: accepted / rejected */
    unsigned arn = CX(1, 1, "arn:aws:events:us-east-1:*:event-bus/*");
    unsigned bus = CX(1, 1, "*:*:*:*:*:event-bus/*");
    CHECK(arn == 3);
    CHECK(bus == 11);
    CHECK(arn <= EBP_GLOB_MAX_COMPLEXITY);
    CHECK(bus > EBP_GLOB_MAX_COMPLEXITY);
    /* the spec's boundary: 7 accepted, 11 rejected */
    CHECK(7 <= EBP_GLOB_MAX_COMPLEXITY && 11 > EBP_GLOB_MAX_COMPLEXITY);

    CHECK(CX(1, 1, "*") == 2);            /* '"' state + '*' state after the opening quote */
    CHECK(CX(0, 1, "*") == 1);
    CHECK(CX(1, 1, "a*b*c*d") == 4);
    CHECK(CX(1, 1, "*a*a*a*") == 7);
    CHECK(CX(1, 1, "*ab*ab*ab*") == 7);
    CHECK(CX(1, 1, "") == 1);             /* '"' then '"' */
    CHECK(CX(0, 1, "") == 0);
    CHECK(CX(1, 1, "abc") == 1);
    /* probes around the threshold: 9, 10 accepted; 11 rejected */
    CHECK(CX(1, 1, "*a*a*a*a*") == 9);
    CHECK(CX(1, 1, "*a*a*a*a*a") == 10);
    CHECK(CX(1, 1, "*a*a*a*a*a*") == 11);
    CHECK(CX(1, 1, "*:*:*:*:*:") == 10);

    /* numbers event-ruler's MachineComplexityEvaluatorTest asserts through JSON
       rules (so with the '"' framing) */
    CHECK(CX(1, 1, "*z*") == 3);
    CHECK(CX(1, 1, "abc*def") == 2);
    CHECK(CX(1, 1, "*a*a*a*a*a*a*") == 13);
    CHECK(CX(1, 1, "a*a*a*a*a*a*") == 11);

    /* sets: all the wildcard conditions of a field */
    CHECK(CX(1, 2, "ab*c", "ab*c") == 2); /* duplicates count once */
    CHECK(CX(1, 3, "*a", "*b", "*c") == 6); /* 3 x ('"' + '*') after the opening quote */
    CHECK(CX(0, 3, "*a", "*b", "*c") == 4);

    /* cap: stops early, never loops for long */
    CHECK(CX(1, 1, "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*") ==
          EBP_GLOB_COMPLEXITY_CAP);
    CHECK(CX(1, 0) == 0);
}

/* The numbers in event-ruler's MachineComplexityEvaluatorTest for raw
   ByteMachine patterns (no '"' framing). */
static void test_complexity_event_ruler_unframed(void)
{
    CHECK(CX(0, 1, "abc") == 1);
    CHECK(CX(0, 1, "*ab") == 2);
    CHECK(CX(0, 1, "*aa") == 3);
    CHECK(CX(0, 1, "a*b") == 2);
    CHECK(CX(0, 1, "aa*") == 2);
    CHECK(CX(0, 1, "a*bc") == 2);
    CHECK(CX(0, 1, "a*bb") == 3);
    CHECK(CX(0, 1, "a*bcb") == 3);
    CHECK(CX(0, 1, "a*bbb") == 4);
    CHECK(CX(0, 1, "*ab*ad") == 4);
    CHECK(CX(0, 1, "*ab*d") == 3);
    CHECK(CX(0, 1, "*aba*") == 4);
    CHECK(CX(0, 1, "a*b*bb") == 5);
    CHECK(CX(0, 1, "a*b*cb") == 4);
    CHECK(CX(0, 1, "a*b*cd") == 3);
    CHECK(CX(0, 1, "a*b*b") == 4);
    CHECK(CX(0, 1, "a*bb*") == 4);
    CHECK(CX(0, 1, "ab*b*") == 3);
    CHECK(CX(0, 1, "*ab*b*b*") == 7);
    CHECK(CX(0, 1, "*a*a*a*a*a*a*a*a*") == 17);
    CHECK(CX(0, 1, "1*2345") == 2);
    CHECK(CX(0, 1, "*123") == 2);
    CHECK(CX(0, 2, "*", "ab*c") == 3);
    CHECK(CX(0, 2, "ab*c", "x*xx") == 3);
    CHECK(CX(0, 2, "*abc", "*abcde") == 4);
    CHECK(CX(0, 2, "a*bcd", "ab*cd") == 4);
    CHECK(CX(0, 2, "a*bc", "a*bcde") == 4);
    CHECK(CX(0, 2, "a*aaa", "aa*aa") == 7);
    CHECK(CX(0, 2, "a*bc", "abc*d") == 4);
    CHECK(CX(0, 2, "a*aaa", "aaa*a") == 6);
    CHECK(CX(0, 2, "a*aax", "aaa*x") == 5);
    CHECK(CX(0, 2, "a*bc", "abc*") == 4);
    CHECK(CX(0, 2, "a*aa", "aaa*") == 5);
    CHECK(CX(0, 2, "abc*", "abcde*") == 3);
    CHECK(CX(0, 3, "ab*cd", "ab*wx", "ab*yz") == 6);
    CHECK(CX(0, 2, "ab*c", "ab*c") == 2);
    CHECK(CX(0, 3, "F*eatureFeature", "Fe*atureFeature", "Fea*tureFeature") == 10);
    CHECK(CX(0, 32, "aahed*", "aal*ii", "aargh*", "aarti*", "a*baca", "*abaci", "a*back", "ab*acs", "abaf*t",
             "*abaka", "ab*amp", "a*band", "*abase", "abash*", "abas*k", "ab*ate", "aba*ya", "abbas*", "abbed*",
             "ab*bes", "abbey*", "*abbot", "ab*cee", "abea*m", "abe*ar", "a*bele", "a*bers", "abet*s", "*abhor",
             "abi*de", "a*bies", "*abled") == 45);
}

/* Huge inputs terminate quickly (cap or work budget). */
static void test_complexity_budget(void)
{
    /* 10000 x "F*e*a*t*u*r*e*" like event-ruler's testEvaluateBeyondMaxComplexity */
    size_t reps = 10000, len = reps * 14;
    char *s = malloc(len + 1);
    for (size_t i = 0; i < reps; i++)
        memcpy(s + i * 14, "F*e*a*t*u*r*e*", 14);
    s[len] = 0;
    clock_t t0 = clock();
    ebp_glob *g = NULL;
    CHECK(ebp_glob_parse(s, len, &g, NULL, 0) == 0);
    const ebp_glob *one[1] = {g};
    CHECK(ebp_glob_complexity(one, 1) == EBP_GLOB_COMPLEXITY_CAP);
    ebp_glob_free(g);

    /* a long plain literal: exact, small */
    memset(s, 'x', len);
    CHECK(ebp_glob_parse(s, 4000, &g, NULL, 0) == 0);
    one[0] = g;
    CHECK(ebp_glob_complexity(one, 1) == 1);
    ebp_glob_free(g);

    /* 200 leading-star globs with distinct tails: many combinations */
    ebp_glob *gs[200];
    for (int i = 0; i < 200; i++) {
        char t[16];
        snprintf(t, sizeof t, "*%c%c", 'a' + i % 26, 'a' + (i / 26) % 26);
        gs[i] = P(t);
    }
    CHECK(ebp_glob_complexity((const ebp_glob *const *)gs, 200) == EBP_GLOB_COMPLEXITY_CAP);
    for (int i = 0; i < 200; i++)
        ebp_glob_free(gs[i]);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(secs < 5.0);
    free(s);
}

/* ---- randomized cross-checks ---------------------------------------- */

static uint64_t rng_state = 0x243f6a8885a308d3u;
static unsigned rnd(unsigned n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state % n);
}

#define STAR 256

/* Independent reference parser: tokens (0..255 literal, STAR), or error text. */
static int ref_parse(const char *s, size_t n, int *tok, size_t *ntok, char *err, size_t errcap)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '*') {
            if (i + 1 < n && s[i + 1] == '*') {
                snprintf(err, errcap, "Consecutive wildcard characters at pos %zu", i + 1);
                return -1;
            }
            tok[k++] = STAR;
        } else if (c == '\\') {
            if (i + 1 == n || (s[i + 1] != '*' && s[i + 1] != '\\')) {
                snprintf(err, errcap, "Invalid escape character at pos %zu", i + 1);
                return -1;
            }
            tok[k++] = (unsigned char)s[++i];
        } else {
            tok[k++] = c;
        }
    }
    *ntok = k;
    return 0;
}

/* Plain recursive matcher with memo (dp[i][j] = tok[i..] matches v[j..]). */
static int ref_match_rec(const int *tok, size_t nt, const unsigned char *v, size_t nv, size_t i, size_t j,
                         signed char *memo)
{
    signed char *m = &memo[i * (nv + 1) + j];
    if (*m >= 0)
        return *m;
    int r;
    if (i == nt)
        r = (j == nv);
    else if (tok[i] == STAR)
        r = ref_match_rec(tok, nt, v, nv, i + 1, j, memo) ||
            (j < nv && ref_match_rec(tok, nt, v, nv, i, j + 1, memo));
    else
        r = j < nv && v[j] == tok[i] && ref_match_rec(tok, nt, v, nv, i + 1, j + 1, memo);
    *m = (signed char)r;
    return r;
}

static int ref_match(const int *tok, size_t nt, const unsigned char *v, size_t nv)
{
    signed char memo[64 * 64];
    memset(memo, -1, (nt + 1) * (nv + 1));
    return ref_match_rec(tok, nt, v, nv, 0, 0, memo);
}

static void test_random_match(void)
{
    static const char *pieces[] = {"a", "b", "c", "a", "b", "c", "*", "*", "\\*", "\\\\", "\\x"};
    int failures = 0;
    for (int round = 0; round < 40000 && failures < 10; round++) {
        char pat[64];
        size_t pn = 0;
        int np = (int)rnd(9);
        for (int i = 0; i < np; i++) {
            /* invalid escapes and "**" only now and then */
            unsigned pick = rnd(100) < 3 ? 10 : rnd(10);
            const char *pc = pieces[pick];
            if (pick >= 6 && pick <= 7 && pn && pat[pn - 1] == '*' && (pn < 2 || pat[pn - 2] != '\\') && rnd(10))
                pc = "a";
            size_t l = strlen(pc);
            memcpy(pat + pn, pc, l);
            pn += l;
        }
        pat[pn] = 0;

        int tok[64];
        size_t nt = 0;
        char rerr[128], gerr[128];
        int rrc = ref_parse(pat, pn, tok, &nt, rerr, sizeof rerr);
        ebp_glob *g = NULL;
        int grc = ebp_glob_parse(pat, pn, &g, gerr, sizeof gerr);
        if (rrc != grc || (rrc != 0 && strcmp(rerr, gerr) != 0)) {
            fprintf(stderr, "parse mismatch on [%s]: ref %d %s, got %d %s\n", pat, rrc, rrc ? rerr : "",
                    grc, grc ? gerr : "");
            CHECK(0);
            failures++;
            ebp_glob_free(g);
            continue;
        }
        if (grc != 0)
            continue;

        for (int t = 0; t < 12; t++) {
            static const char alpha[] = "abcabcabc*\\";
            size_t nv = rnd(11);
            unsigned char *v = malloc(nv ? nv : 1);
            for (size_t i = 0; i < nv; i++)
                v[i] = (unsigned char)alpha[rnd(sizeof alpha - 1)];
            int want = ref_match(tok, nt, v, nv);
            int got = ebp_glob_match(g, nv ? v : NULL, nv);
            if (want != got) {
                fprintf(stderr, "match mismatch: glob [%s] value [%.*s]: want %d got %d\n", pat, (int)nv,
                        (const char *)v, want, got);
                CHECK(0);
                failures++;
            }
            free(v);
        }
        ebp_glob_free(g);
    }
}

/* Reference for the complexity measure: simulate the framed NFAs with plain
   arrays, breadth-first over the inputs (alphabet '"', 'a', 'b', 'x'), skipping
   inputs that lead to an already seen set of active states. */
typedef struct {
    int tok[16];
    size_t nt; /* framed tokens: '"', glob..., '"' */
} rglob;

typedef struct {
    unsigned char act[3][16]; /* act[g][i]: "matched through token i" is active */
    unsigned char at_start;   /* nothing read yet */
} bfset;

static unsigned bf_best(const rglob *gs, size_t ng)
{
    static bfset seen[20000];
    static const unsigned char alpha[] = {'"', 'a', 'b', 'x'};
    size_t nseen = 1, q = 0;
    unsigned best = 0;
    memset(&seen[0], 0, sizeof seen[0]);
    seen[0].at_start = 1;
    for (; q < nseen; q++) {
        for (size_t a = 0; a < sizeof alpha; a++) {
            bfset nx;
            memset(&nx, 0, sizeof nx);
            unsigned cnt = 0;
            for (size_t g = 0; g < ng; g++) {
                const rglob *r = &gs[g];
                if (seen[q].at_start && r->tok[0] == alpha[a])
                    nx.act[g][0] = 1;
                for (size_t i = 0; i < r->nt; i++) {
                    if (!seen[q].act[g][i])
                        continue;
                    if (r->tok[i] == STAR)
                        nx.act[g][i] = 1; /* the star eats the byte */
                    if (i + 1 < r->nt && r->tok[i + 1] != STAR && r->tok[i + 1] == alpha[a])
                        nx.act[g][i + 1] = 1;
                }
                /* a star right after an active literal state matches the empty string */
                for (size_t i = 0; i + 1 < r->nt; i++)
                    if (nx.act[g][i] && r->tok[i] != STAR && r->tok[i + 1] == STAR)
                        nx.act[g][i + 1] = 1;
                for (size_t i = 0; i < r->nt; i++)
                    cnt += nx.act[g][i];
            }
            if (cnt == 0)
                continue;
            if (cnt > best)
                best = cnt;
            int dup = 0;
            for (size_t k = 0; k < nseen && !dup; k++)
                dup = memcmp(&seen[k], &nx, sizeof nx) == 0;
            if (!dup && nseen < sizeof seen / sizeof seen[0])
                seen[nseen++] = nx;
        }
    }
    return best;
}

static void test_random_complexity(void)
{
    int failures = 0;
    for (int round = 0; round < 2000 && failures < 5; round++) {
        size_t ng = 1 + rnd(3);
        rglob rg[3];
        ebp_glob *gs[3];
        char texts[3][16];
        for (size_t g = 0; g < ng; g++) {
            size_t n = 0;
            int nt = 1 + (int)rnd(6);
            for (int i = 0; i < nt; i++) {
                char c = "ab*\""[rnd(4)];
                if (c == '*' && n && texts[g][n - 1] == '*')
                    c = 'a';
                texts[g][n++] = c;
            }
            texts[g][n] = 0;
            gs[g] = P(texts[g]);
            size_t k = 0;
            rg[g].tok[k++] = '"';
            for (size_t i = 0; i < n; i++)
                rg[g].tok[k++] = texts[g][i] == '*' ? STAR : (unsigned char)texts[g][i];
            rg[g].tok[k++] = '"';
            rg[g].nt = k;
        }
        /* drop duplicate globs, as the measure does */
        size_t nd = 0;
        rglob dd[3];
        for (size_t g = 0; g < ng; g++) {
            int dup = 0;
            for (size_t h = 0; h < g; h++)
                dup |= strcmp(texts[g], texts[h]) == 0;
            if (!dup)
                dd[nd++] = rg[g];
        }
        unsigned want = bf_best(dd, nd);
        unsigned got = ebp_glob_complexity((const ebp_glob *const *)gs, ng);
        if (got != want) {
            fprintf(stderr, "complexity mismatch: got %u brute %u for", got, want);
            for (size_t g = 0; g < ng; g++)
                fprintf(stderr, " [%s]", texts[g]);
            fprintf(stderr, "\n");
            CHECK(0);
            failures++;
        }
        for (size_t g = 0; g < ng; g++)
            ebp_glob_free(gs[g]);
    }
}

int main(void)
{
    RUN(test_errors);
    RUN(test_basic);
    RUN(test_escapes);
    RUN(test_accessors);
    RUN(test_utf8);
    RUN(test_linear);
    RUN(test_complexity_examples);
    RUN(test_complexity_event_ruler_unframed);
    RUN(test_complexity_budget);
    RUN(test_random_match);
    RUN(test_random_complexity);
    return TEST_REPORT();
}
