/* Unit tests for src/pattern/casefold.c (Unicode full case folding). */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "casefold.h"
#include "test.h"

/* ---- helpers ------------------------------------------------------------ */

/* Fold a NUL-terminated string; the input is copied into an exact-size heap
 * buffer so ASan catches any read past in[n). Result is NUL-terminated in a
 * static buffer. */
static const char *fold(const char *s)
{
    static char res[1024];
    size_t n = strlen(s);
    unsigned char *in = malloc(n ? n : 1);
    unsigned char out[sizeof res];
    memcpy(in, s, n);
    size_t r = ebp_casefold(in, n, out, sizeof out - 1);
    free(in);
    if (r >= sizeof res || r > EBP_CASEFOLD_MAX_GROWTH * n)
        return "<<bad length>>";
    memcpy(res, out, r);
    res[r] = '\0';
    return res;
}

/* Nonzero if fold(a) == fold(b). */
static int fold_eq(const char *a, const char *b)
{
    char fa[1024];
    strcpy(fa, fold(a));
    return strcmp(fa, fold(b)) == 0;
}

static size_t enc_utf8(uint32_t c, unsigned char *b)
{
    if (c < 0x80) {
        b[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        b[0] = (unsigned char)(0xC0 | (c >> 6));
        b[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (c >> 12));
        b[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    b[0] = (unsigned char)(0xF0 | (c >> 18));
    b[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    b[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    b[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

/* Strict UTF-8 validator (independent of the implementation under test). */
static int valid_utf8(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i + k] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint32_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return (uint32_t)(x >> 32);
}

/* ---- tests -------------------------------------------------------------- */

static void test_empty(void)
{
    CHECK(ebp_casefold(NULL, 0, NULL, 0) == 0);
    unsigned char out[4] = {0xAA, 0xAA, 0xAA, 0xAA};
    const unsigned char in[1] = {'A'};
    CHECK(ebp_casefold(in, 0, out, sizeof out) == 0);
    CHECK(out[0] == 0xAA);
    CHECK_STR(fold(""), "");
    CHECK(ebp_is_ascii(NULL, 0));
}

static void test_ascii(void)
{
    CHECK_STR(fold("Hello, WORLD! 0123"), "hello, world! 0123");
    /* Boundaries around A-Z and a-z must be untouched. */
    CHECK_STR(fold("@AZ[`az{"), "@az[`az{");
    CHECK_STR(fold("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), "abcdefghijklmnopqrstuvwxyz");
    CHECK_STR(fold("STRASSE"), "strasse");

    /* Every ASCII byte (including NUL and DEL), at every alignment/length, both
     * through the 8-byte path and the tail, against tolower(). */
    unsigned char all[128 + 16], want[128 + 16], got[3 * (128 + 16)];
    for (int off = 0; off < 16; off++) {
        for (int k = 0; k < 128 + 16; k++)
            all[k] = (unsigned char)((k + off * 7) & 0x7F);
        for (size_t n = 0; n <= sizeof all; n++) {
            for (size_t k = 0; k < n; k++)
                want[k] = (unsigned char)tolower(all[k]);
            size_t r = ebp_casefold(all, n, got, sizeof got);
            CHECK(r == n);
            CHECK(memcmp(got, want, n) == 0);
        }
    }

    /* Random ASCII strings vs tolower(). */
    for (int iter = 0; iter < 2000; iter++) {
        unsigned char in[80], out[80];
        size_t n = rng() % sizeof in;
        for (size_t k = 0; k < n; k++)
            in[k] = (unsigned char)(rng() & 0x7F);
        size_t r = ebp_casefold(in, n, out, sizeof out);
        CHECK(r == n);
        for (size_t k = 0; k < n && k < r; k++)
            CHECK(out[k] == (unsigned char)tolower(in[k]));
        CHECK(ebp_is_ascii(in, n));
    }
}

static void test_is_ascii(void)
{
    unsigned char buf[100];
    memset(buf, 'a', sizeof buf);
    for (size_t n = 0; n <= sizeof buf; n++) {
        CHECK(ebp_is_ascii(buf, n));
        for (size_t pos = 0; pos < n; pos++) {
            buf[pos] = 0x80;
            CHECK(!ebp_is_ascii(buf, n));
            buf[pos] = 0xFF;
            CHECK(!ebp_is_ascii(buf, n));
            buf[pos] = 0x7F;
            CHECK(ebp_is_ascii(buf, n));
            buf[pos] = 'a';
        }
        /* A non-ASCII byte just past n must be ignored. */
        if (n < sizeof buf) {
            buf[n] = 0xC3;
            CHECK(ebp_is_ascii(buf, n));
            buf[n] = 'a';
        }
    }
    CHECK(!ebp_is_ascii((const unsigned char *)"stra\xC3\x9F" "e", 7));
}

static void test_sharp_s(void)
{
    CHECK_STR(fold("\xC3\x9F"), "ss");                /* U+00DF ß */
    CHECK_STR(fold("stra\xC3\x9F" "e"), "strasse");
    CHECK(fold_eq("stra\xC3\x9F" "e", "STRASSE"));
    CHECK(fold_eq("stra\xC3\x9F" "e", "Strasse"));
    CHECK_STR(fold("\xE1\xBA\x9E"), "ss");            /* U+1E9E ẞ */
    CHECK(fold_eq("STRA\xE1\xBA\x9E" "E", "stra\xC3\x9F" "e"));
    CHECK_STR(fold("\xC5\xBF"), "s");                 /* U+017F ſ long s */
    CHECK(!fold_eq("stra\xC3\x9F" "e", "strase"));
}

static void test_sigma(void)
{
    /* Σ U+03A3, σ U+03C3, ς U+03C2 all fold to σ. */
    CHECK_STR(fold("\xCE\xA3"), "\xCF\x83");
    CHECK_STR(fold("\xCF\x82"), "\xCF\x83");
    CHECK_STR(fold("\xCF\x83"), "\xCF\x83");
    CHECK_STR(fold("\xCE\xA3\xCE\x91\xCE\xA3"), "\xCF\x83\xCE\xB1\xCF\x83"); /* ΣΑΣ */
    CHECK(fold_eq("\xCE\xA3\xCE\x91\xCE\xA3", "\xCF\x83\xCE\xB1\xCF\x82"));   /* ΣΑΣ ~ σας */
    CHECK(fold_eq("\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3",                        /* ΟΔΟΣ ~ οδος */
                  "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82"));
    /* Ω OHM SIGN U+2126 -> ω U+03C9; ΐ U+0390 -> ΐ (3 code points, 3x growth). */
    CHECK_STR(fold("\xE2\x84\xA6"), "\xCF\x89");
    CHECK_STR(fold("\xCE\x90"), "\xCE\xB9\xCC\x88\xCC\x81");
    CHECK_STR(fold("\xCE\xB0"), "\xCF\x85\xCC\x88\xCC\x81");
    /* ᾈ U+1F88 -> U+1F00 U+03B9 */
    CHECK_STR(fold("\xE1\xBE\x88"), "\xE1\xBC\x80\xCE\xB9");
}

static void test_turkish_i(void)
{
    /* Full folding (no T status): İ U+0130 -> "i" + U+0307 COMBINING DOT ABOVE. */
    CHECK_STR(fold("\xC4\xB0"), "i\xCC\x87");
    CHECK_STR(fold("\xC4\xB0STANBUL"), "i\xCC\x87stanbul");
    CHECK(!fold_eq("\xC4\xB0", "i"));
    /* ı U+0131 dotless i has no folding; I folds to i (not ı). */
    CHECK_STR(fold("\xC4\xB1"), "\xC4\xB1");
    CHECK_STR(fold("I"), "i");
}

static void test_ligatures(void)
{
    CHECK_STR(fold("\xEF\xAC\x80"), "ff");  /* U+FB00 ﬀ */
    CHECK_STR(fold("\xEF\xAC\x81"), "fi");  /* U+FB01 ﬁ */
    CHECK_STR(fold("\xEF\xAC\x83"), "ffi"); /* U+FB03 ﬃ */
    CHECK_STR(fold("\xEF\xAC\x86"), "st");  /* U+FB06 ﬆ */
    CHECK(fold_eq("e\xEF\xAC\x83" "cient", "EFFICIENT"));
    CHECK_STR(fold("\xC5\x89"), "\xCA\xBCn"); /* U+0149 ŉ -> U+02BC n */
    CHECK_STR(fold("\xE2\x84\xAA"), "k");    /* U+212A KELVIN SIGN */
    CHECK_STR(fold("\xC7\xB0"), "j\xCC\x8C"); /* U+01F0 ǰ */
}

static void test_cherokee(void)
{
    /* Cherokee folds to the *uppercase* letters (U+13A0..), for stability. */
    CHECK_STR(fold("\xE1\x8E\xA0"), "\xE1\x8E\xA0");       /* U+13A0 unchanged */
    CHECK_STR(fold("\xEA\xAD\xB0"), "\xE1\x8E\xA0");       /* U+AB70 -> U+13A0 */
    CHECK_STR(fold("\xEA\xAE\xBF"), "\xE1\x8F\xAF");       /* U+ABBF -> U+13EF */
    CHECK_STR(fold("\xE1\x8F\xB8"), "\xE1\x8F\xB0");       /* U+13F8 -> U+13F0 */
    CHECK_STR(fold("\xE1\x8F\xBD"), "\xE1\x8F\xB5");       /* U+13FD -> U+13F5 */
    CHECK_STR(fold("\xE1\x8F\xB0"), "\xE1\x8F\xB0");       /* U+13F0 unchanged */
}

static void test_other_scripts(void)
{
    CHECK_STR(fold("\xC3\x80\xC3\x89\xC3\x96"), "\xC3\xA0\xC3\xA9\xC3\xB6"); /* ÀÉÖ */
    CHECK_STR(fold("\xC3\x97"), "\xC3\x97");                                /* × */
    CHECK_STR(fold("\xD0\x9F\xD0\xA0\xD0\x98\xD0\x92\xD0\x95\xD0\xA2"),     /* ПРИВЕТ */
              "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82");
    CHECK_STR(fold("\xC2\xB5"), "\xCE\xBC");         /* µ MICRO SIGN -> μ */
    CHECK_STR(fold("\xE2\x92\xB6"), "\xE2\x93\x90"); /* Ⓐ -> ⓐ */
    CHECK_STR(fold("\xEF\xBC\xA1"), "\xEF\xBD\x81"); /* fullwidth Ａ -> ａ */
    CHECK_STR(fold("\xE6\x97\xA5\xE6\x9C\xAC"), "\xE6\x97\xA5\xE6\x9C\xAC"); /* 日本 */
    /* No normalisation: precomposed é != e + combining acute. */
    CHECK(!fold_eq("\xC3\xA9", "e\xCC\x81"));
}

static void test_supplementary(void)
{
    CHECK_STR(fold("\xF0\x90\x90\x80"), "\xF0\x90\x90\xA8"); /* Deseret U+10400 -> U+10428 */
    CHECK_STR(fold("\xF0\x90\x90\xA8"), "\xF0\x90\x90\xA8");
    CHECK_STR(fold("\xF0\x9E\xA4\x80"), "\xF0\x9E\xA4\xA2"); /* Adlam U+1E900 -> U+1E922 */
    CHECK_STR(fold("\xF0\x9E\xA4\xA1"), "\xF0\x9E\xA5\x83"); /* U+1E921 -> U+1E943 */
    CHECK_STR(fold("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80"); /* emoji unchanged */
    CHECK_STR(fold("\xF4\x8F\xBF\xBF"), "\xF4\x8F\xBF\xBF"); /* U+10FFFF */
    CHECK_STR(fold("A\xF0\x90\x90\x80Z"), "a\xF0\x90\x90\xA8z");
}

static void test_invalid_passthrough(void)
{
    static const char *const cases[] = {
        "\x80",                 /* lone continuation */
        "\xBF\x80",             /* two continuations */
        "\xC0\xAF",             /* overlong '/' */
        "\xC1\x81",             /* overlong 'A' -- must NOT become 'a' */
        "\xE0\x80\xAF",         /* overlong 3-byte */
        "\xE0\x9F\xBF",         /* overlong 3-byte (max) */
        "\xED\xA0\x80",         /* surrogate U+D800 */
        "\xED\xBF\xBF",         /* surrogate U+DFFF */
        "\xF0\x80\x80\xAF",     /* overlong 4-byte */
        "\xF0\x8F\xBF\xBF",     /* overlong 4-byte (max) */
        "\xF4\x90\x80\x80",     /* U+110000 */
        "\xF5\x80\x80\x80",     /* invalid lead */
        "\xF8\x88\x80\x80\x80", /* 5-byte form */
        "\xFE", "\xFF",
        "\xC3\x28",             /* lead + non-continuation */
        "\xE2\x28\xA1",
        "\xF0\x28\x8C\xBC",
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        CHECK_STR(fold(cases[k]), cases[k]);

    /* Invalid bytes do not disturb folding of the neighbours. */
    CHECK_STR(fold("A\x80" "B"), "a\x80" "b");
    CHECK_STR(fold("\xC3\x28" "ABC"), "\xC3\x28" "abc");
    CHECK_STR(fold("\xC3\xC3\x89"), "\xC3\xC3\xA9");             /* stray lead, then É */
    CHECK_STR(fold("\xE2\x84\xE2\x84\xAA"), "\xE2\x84k");        /* truncated, then K */
    CHECK_STR(fold("\xFF\xCE\xA3\xFF"), "\xFF\xCF\x83\xFF");
    CHECK_STR(fold("\xED\xA0\x80\xC3\x9F"), "\xED\xA0\x80ss");
    /* Overlong "A" (C1 81) is not folded to a: it is not the letter A. */
    CHECK(!fold_eq("\xC1\x81", "a"));
}

static void test_truncated_at_end(void)
{
    /* fold() copies into an exact-size heap buffer, so ASan flags over-reads. */
    CHECK_STR(fold("AB\xC3"), "ab\xC3");
    CHECK_STR(fold("AB\xE2"), "ab\xE2");
    CHECK_STR(fold("AB\xE2\x84"), "ab\xE2\x84");
    CHECK_STR(fold("\xF0"), "\xF0");
    CHECK_STR(fold("\xF0\x90"), "\xF0\x90");
    CHECK_STR(fold("\xF0\x90\x90"), "\xF0\x90\x90");
    CHECK_STR(fold("ABCDEFGH\xF0\x90\x90"), "abcdefgh\xF0\x90\x90");
    CHECK_STR(fold("ABCDEFG\xCE"), "abcdefg\xCE");

    /* Every prefix of a mixed string, in exact-size buffers. */
    const char *s = "Stra\xC3\x9F" "e \xCE\xA3 \xEF\xAC\x83 \xF0\x90\x90\x80 \xC4\xB0";
    size_t n = strlen(s);
    for (size_t len = 0; len <= n; len++) {
        unsigned char *in = malloc(len ? len : 1);
        memcpy(in, s, len);
        size_t cap = 3 * len;
        unsigned char *out = malloc(cap ? cap : 1);
        size_t r = ebp_casefold(in, len, out, cap);
        CHECK(r <= cap);
        free(in);
        free(out);
    }
}

/* For every cap from 0 to the needed size, the return value is the full size,
 * the written prefix matches, and nothing at or past cap is touched. */
static void check_caps(const unsigned char *in, size_t n)
{
    unsigned char full[512];
    size_t need = ebp_casefold(in, n, full, sizeof full);
    CHECK(need <= sizeof full);
    CHECK(need <= EBP_CASEFOLD_MAX_GROWTH * n);
    CHECK(ebp_casefold(in, n, NULL, 0) == need);
    for (size_t cap = 0; cap <= need + 1; cap++) {
        unsigned char *buf = malloc(cap + 16);
        memset(buf, 0xA5, cap + 16);
        size_t r = ebp_casefold(in, n, buf, cap);
        CHECK(r == need);
        size_t w = cap < need ? cap : need;
        CHECK(memcmp(buf, full, w) == 0);
        for (size_t k = w; k < cap + 16; k++)
            if (buf[k] != 0xA5) {
                CHECK(buf[k] == 0xA5);
                break;
            }
        free(buf);
        /* Also with an exact-size allocation (ASan catches over-writes). */
        unsigned char *ex = malloc(cap ? cap : 1);
        CHECK(ebp_casefold(in, n, cap ? ex : NULL, cap) == need);
        free(ex);
    }
}

static void test_cap_too_small(void)
{
    static const char *const cases[] = {
        "HELLO WORLD, THIS IS A LONG ASCII STRING",
        "\xC3\x9F\xC3\x9F\xC3\x9F",
        "\xCE\x90\xCE\x90",
        "ABCDEFGH\xEF\xAC\x83IJKLMNOP\xE1\xBA\x9EQRSTUVWX",
        "\xF0\x90\x90\x80\xF0\x90\x90\x81",
        "\x80\xC3\xE2\x84\xAA\xFF",
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        check_caps((const unsigned char *)cases[k], strlen(cases[k]));

    unsigned char one[1];
    CHECK(ebp_casefold((const unsigned char *)"\xC3\x9F", 2, one, 1) == 2);
    CHECK(one[0] == 's');
    CHECK(ebp_casefold((const unsigned char *)"\xCE\x90", 2, NULL, 0) == 6);
}

/* The bound is tight: a string of U+0390 folds to exactly 3x its length. */
static void test_bound_tight(void)
{
    unsigned char in[64], out[3 * 64];
    for (size_t k = 0; k < sizeof in; k += 2) {
        in[k] = 0xCE;
        in[k + 1] = 0x90;
    }
    CHECK(ebp_casefold(in, sizeof in, out, sizeof out) == 3 * sizeof in);
    CHECK(EBP_CASEFOLD_MAX_GROWTH == 3);
}

/* Every code point: folding stays within the bound, yields valid UTF-8, is
 * idempotent, and folding all code points concatenated equals the
 * concatenation of the individual foldings (no context dependence). */
static void test_all_code_points(void)
{
    unsigned char *big_in = malloc(4 * 0x110000);
    unsigned char *big_want = malloc(3 * 4 * 0x110000);
    size_t big_n = 0, want_n = 0;
    size_t changed = 0, bad = 0;

    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        unsigned char in[4], f1[12], f2[12];
        size_t n = enc_utf8(cp, in);
        size_t r1 = ebp_casefold(in, n, f1, sizeof f1);
        if (r1 > EBP_CASEFOLD_MAX_GROWTH * n || r1 > sizeof f1 || !valid_utf8(f1, r1)) {
            if (bad++ < 10)
                fprintf(stderr, "  U+%04X: bad fold length %zu or invalid UTF-8\n",
                        (unsigned)cp, r1);
            continue;
        }
        size_t r2 = ebp_casefold(f1, r1, f2, sizeof f2);
        if (r2 != r1 || memcmp(f1, f2, r1) != 0) {
            if (bad++ < 10)
                fprintf(stderr, "  U+%04X: folding not idempotent\n", (unsigned)cp);
        }
        if (r1 != n || memcmp(in, f1, n) != 0)
            changed++;
        /* ASCII folds exactly like tolower(). */
        if (cp < 0x80 && !(r1 == 1 && f1[0] == (unsigned char)tolower((int)cp)))
            bad++;
        memcpy(big_in + big_n, in, n);
        big_n += n;
        memcpy(big_want + want_n, f1, r1);
        want_n += r1;
    }
    CHECK(bad == 0);
    /* CaseFolding.txt 15.0 has 1530 C+F entries. */
    CHECK(changed >= 1400 && changed <= 1700);

    unsigned char *big_out = malloc(want_n);
    size_t r = ebp_casefold(big_in, big_n, big_out, want_n);
    CHECK(r == want_n);
    CHECK(r == want_n && memcmp(big_out, big_want, want_n) == 0);
    CHECK(r <= EBP_CASEFOLD_MAX_GROWTH * big_n);
    size_t r2 = ebp_casefold(big_out, want_n, big_want, 3 * 4 * 0x110000);
    CHECK(r2 == want_n && memcmp(big_out, big_want, want_n) == 0);
    free(big_in);
    free(big_want);
    free(big_out);
}

/* Random byte soup (mostly invalid UTF-8): bound holds, output length is
 * consistent across caps, folding is idempotent. */
static void test_random_bytes(void)
{
    static const unsigned char alphabet[] = {
        'A', 'z', 'S', 0x80, 0x90, 0xA8, 0xBF, 0xC3, 0x9F, 0xCE, 0xA3, 0xC4, 0xB0,
        0xE1, 0xBA, 0x9E, 0xE2, 0x84, 0xAA, 0xED, 0xF0, 0xF4, 0x8F, 0xFF, 0xEF, 0xAC,
    };
    for (int iter = 0; iter < 20000; iter++) {
        unsigned char in[40], f1[120], f2[120];
        size_t n = rng() % sizeof in;
        for (size_t k = 0; k < n; k++)
            in[k] = (rng() & 1) ? alphabet[rng() % sizeof alphabet] : (unsigned char)rng();
        size_t r1 = ebp_casefold(in, n, f1, sizeof f1);
        CHECK(r1 <= EBP_CASEFOLD_MAX_GROWTH * n);
        size_t r2 = ebp_casefold(f1, r1, f2, sizeof f2);
        CHECK(r2 == r1 && memcmp(f1, f2, r1) == 0);
        size_t cap = rng() % (r1 + 1);
        unsigned char *small = malloc(cap ? cap : 1);
        CHECK(ebp_casefold(in, n, small, cap) == r1);
        CHECK(memcmp(small, f1, cap) == 0);
        free(small);
        int ascii = 1;
        for (size_t k = 0; k < n; k++)
            if (in[k] & 0x80)
                ascii = 0;
        CHECK(!ebp_is_ascii(in, n) == !ascii);
    }
}

int main(void)
{
    RUN(test_empty);
    RUN(test_ascii);
    RUN(test_is_ascii);
    RUN(test_sharp_s);
    RUN(test_sigma);
    RUN(test_turkish_i);
    RUN(test_ligatures);
    RUN(test_cherokee);
    RUN(test_other_scripts);
    RUN(test_supplementary);
    RUN(test_invalid_passthrough);
    RUN(test_truncated_at_end);
    RUN(test_cap_too_small);
    RUN(test_bound_tight);
    RUN(test_all_code_points);
    RUN(test_random_bytes);
    return TEST_REPORT();
}
