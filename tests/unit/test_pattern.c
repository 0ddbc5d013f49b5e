/* Unit tests for the pattern engine's public API (include/ebridge/pattern.h):
 * every operator and form, the semantics we pinned (see the comments at each
 * test_pinned_* function), every validation message the compiler produces,
 * machine add/replace/remove with snapshots, and the event depth limit.
 *
 * Match checks go through one helper (expect_) that compiles the pattern,
 * adds it to a fresh machine, matches the event in BOTH reader modes
 * (validating: flags 0; trusting: EB_MATCH_TRUSTED) and also asks the
 * reference interpreter (tests/support/refimpl.c); all three must give the
 * expected answer. */
#define _POSIX_C_SOURCE 200809L
#include <ebridge/pattern.h>

#include "refimpl.h"
#include "test.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PFX "Event pattern is not valid. Reason: "

/* ---- helpers ------------------------------------------------------------ */

/* Match one event against a one-rule machine; -1 on event error. */
static int machine_one(const eb_pattern *p, const char *ev, unsigned flags, eb_error *err)
{
    eb_machine *m = eb_machine_new();
    eb_matcher *mt = eb_matcher_new();
    int r = -1;
    if (m && mt && eb_machine_add(m, 42, p) == EB_OK) {
        eb_snapshot *s = eb_machine_snapshot(m);
        const uint64_t *keys;
        size_t n;
        /* exact-size heap copy so ASan catches reads past the end */
        size_t len = strlen(ev);
        char *buf = malloc(len ? len : 1);
        memcpy(buf, ev, len);
        if (eb_match(mt, s, buf, len, flags, &keys, &n, err) == EB_OK)
            r = n == 1 && keys[0] == 42;
        free(buf);
        eb_snapshot_release(s);
    }
    eb_matcher_free(mt);
    eb_machine_free(m);
    return r;
}

static void expect_(const char *pat, const char *ev, int want, int line)
{
    eb_pattern *p = NULL;
    eb_error err;
    if (eb_pattern_compile(pat, strlen(pat), &p, &err) != EB_OK) {
        fprintf(stderr, "%s:%d: pattern %s did not compile: %s\n", __FILE__, line, pat, err.message);
        test_checks_failed_++;
        test_cur_failed_ = 1;
        return;
    }
    eb_error e1, e2;
    int v = machine_one(p, ev, 0, &e1);
    int t = machine_one(p, ev, EB_MATCH_TRUSTED, &e2);
    json_t *j = ref_parse(ev, strlen(ev));
    int r = j ? ref_match(p, j) : -1;
    json_decref(j);
    if (v != want || t != want || r != want) {
        fprintf(stderr, "%s:%d: pattern %s event %s: want %d, validating %d, trusting %d, reference %d\n", __FILE__,
                line, pat, ev, want, v, t, r);
        if (v < 0)
            fprintf(stderr, "  validating error: %s\n", e1.message);
        if (t < 0)
            fprintf(stderr, "  trusting error: %s\n", e2.message);
        test_checks_failed_++;
        test_cur_failed_ = 1;
    }
    eb_pattern_free(p);
}

#define YES(pat, ev) expect_((pat), (ev), 1, __LINE__)
#define NO(pat, ev) expect_((pat), (ev), 0, __LINE__)

/* The compile error message for pat ("" if it compiled). */
static const char *cerr(const char *pat)
{
    static eb_error err;
    eb_pattern *p = NULL;
    eb_status st = eb_pattern_compile(pat, strlen(pat), &p, &err);
    if (st == EB_OK) {
        eb_pattern_free(p);
        return "";
    }
    if (st != EB_ERR_PATTERN || err.code != EB_ERR_PATTERN || p != NULL)
        return "(wrong status)";
    return err.message;
}

#define ERR(pat, reason) CHECK_STR(cerr(pat), PFX reason)
#define VALID(pat) CHECK_STR(cerr(pat), "")

/* ---- exact literals --------------------------------------------------------- */

static void test_exact_string(void)
{
    YES("{\"a\":[\"x\"]}", "{\"a\":\"x\"}");
    NO("{\"a\":[\"x\"]}", "{\"a\":\"X\"}");
    NO("{\"a\":[\"x\"]}", "{\"a\":\"x \"}");
    NO("{\"a\":[\"x\"]}", "{\"b\":\"x\"}");
    NO("{\"a\":[\"x\"]}", "{\"a\":null}");
    NO("{\"a\":[\"1\"]}", "{\"a\":1}");
    NO("{\"a\":[\"true\"]}", "{\"a\":true}");
    NO("{\"a\":[\"null\"]}", "{\"a\":null}");
    YES("{\"a\":[\"\"]}", "{\"a\":\"\"}");
    NO("{\"a\":[\"\"]}", "{\"a\":null}");
    NO("{\"a\":[\"\"]}", "{}");
    NO("{\"a\":[\"\"]}", "{\"a\":[]}");
    YES("{\"a\":[\"x\",\"y\"]}", "{\"a\":\"y\"}");
    /* escapes: the same string spelled differently in pattern and event */
    YES("{\"a\":[\"\\u00e9\"]}", "{\"a\":\"\xc3\xa9\"}");
    YES("{\"a\":[\"\xc3\xa9\"]}", "{\"a\":\"\\u00E9\"}");
    YES("{\"a\":[\"q\\\"b\\\\s\"]}", "{\"a\":\"q\\u0022b\\u005cs\"}");
    YES("{\"a\":[\"\\ud83d\\ude00\"]}", "{\"a\":\"\xf0\x9f\x98\x80\"}");
    YES("{\"a\":[\"\xf0\x9f\x98\x80\"]}", "{\"a\":\"\\uD83D\\uDE00\"}");
    NO("{\"a\":[\"\xc3\xa9\"]}", "{\"a\":\"e\\u0301\"}"); /* no normalisation */
    /* "exactly" is the explicit form */
    YES("{\"a\":[{\"exactly\":\"x\"}]}", "{\"a\":\"x\"}");
    NO("{\"a\":[{\"exactly\":\"x\"}]}", "{\"a\":\"xx\"}");
    /* arrays: any element */
    YES("{\"a\":[\"x\"]}", "{\"a\":[\"y\",\"x\"]}");
    NO("{\"a\":[\"x\"]}", "{\"a\":[\"y\",\"z\"]}");
    YES("{\"a\":[\"x\"]}", "{\"a\":[[\"y\"],[[\"x\"]]]}");
    /* an object-valued field never equals a literal */
    NO("{\"a\":[\"x\"]}", "{\"a\":{\"b\":\"x\"}}");
    /* several fields: AND */
    YES("{\"a\":[\"x\"],\"b\":[\"y\"]}", "{\"b\":\"y\",\"a\":\"x\"}");
    NO("{\"a\":[\"x\"],\"b\":[\"y\"]}", "{\"a\":\"x\"}");
    /* nested */
    YES("{\"d\":{\"s\":[\"on\"]}}", "{\"d\":{\"t\":1,\"s\":\"on\"}}");
    NO("{\"d\":{\"s\":[\"on\"]}}", "{\"d\":\"on\"}");
    NO("{\"d\":{\"s\":[\"on\"]}}", "{\"s\":\"on\"}");
    /* key names are case-sensitive */
    NO("{\"MY_KEY\":[\"x\"]}", "{\"my_key\":\"x\"}");
    /* empty key is a real path segment */
    YES("{\"\":[\"x\"]}", "{\"\":\"x\"}");
}

/* Pinned: numbers compare by double value; -0 == 0. */
static void test_exact_number(void)
{
    YES("{\"a\":[300]}", "{\"a\":300}");
    YES("{\"a\":[300]}", "{\"a\":300.0}");
    YES("{\"a\":[300]}", "{\"a\":3e2}");
    YES("{\"a\":[300]}", "{\"a\":3.00E+2}");
    YES("{\"a\":[300]}", "{\"a\":30000e-2}");
    YES("{\"a\":[3e2]}", "{\"a\":300}");
    YES("{\"a\":[300.000]}", "{\"a\":300}");
    NO("{\"a\":[300]}", "{\"a\":\"300\"}");
    NO("{\"a\":[300]}", "{\"a\":300.0000001}");
    NO("{\"a\":[300]}", "{\"a\":-300}");
    YES("{\"a\":[0]}", "{\"a\":-0}");
    YES("{\"a\":[-0]}", "{\"a\":0}");
    YES("{\"a\":[-0.0]}", "{\"a\":0e10}");
    YES("{\"a\":[0.1]}", "{\"a\":1e-1}");
    NO("{\"a\":[0.3]}", "{\"a\":0.30000000000000004}");
    YES("{\"a\":[5e-324]}", "{\"a\":4.9406564584124654e-324}");
    NO("{\"a\":[5e-324]}", "{\"a\":0}");
    YES("{\"a\":[1.7976931348623157e308]}", "{\"a\":1.7976931348623157E+308}");
    YES("{\"a\":[-1.7976931348623157e308]}", "{\"a\":-1.7976931348623157e308}");
    YES("{\"a\":[9007199254740993]}", "{\"a\":9007199254740992}"); /* same double */
    YES("{\"a\":[1,2,3]}", "{\"a\":[7,3]}");
    NO("{\"a\":[1]}", "{\"a\":true}");
    NO("{\"a\":[0]}", "{\"a\":false}");
    NO("{\"a\":[0]}", "{\"a\":null}");
    YES("{\"a\":[1]}", "{\"a\":[[1]]}");
}

static void test_exact_bool_null(void)
{
    YES("{\"a\":[true]}", "{\"a\":true}");
    NO("{\"a\":[true]}", "{\"a\":\"true\"}");
    NO("{\"a\":[true]}", "{\"a\":1}");
    NO("{\"a\":[true]}", "{\"a\":false}");
    YES("{\"a\":[false]}", "{\"a\":false}");
    NO("{\"a\":[false]}", "{\"a\":null}");
    NO("{\"a\":[false]}", "{\"a\":0}");
    YES("{\"a\":[null]}", "{\"a\":null}");
    NO("{\"a\":[null]}", "{\"a\":\"\"}");
    NO("{\"a\":[null]}", "{\"a\":\"null\"}");
    NO("{\"a\":[null]}", "{}");
    NO("{\"a\":[null]}", "{\"a\":[]}");
    NO("{\"a\":[null]}", "{\"a\":{}}");
    YES("{\"a\":[null]}", "{\"a\":[1,null]}");
    YES("{\"a\":[null,true,\"x\",5]}", "{\"a\":5.0}");
}

/* ---- string operators --------------------------------------------------------- */

static void test_prefix(void)
{
    YES("{\"a\":[{\"prefix\":\"ab\"}]}", "{\"a\":\"abc\"}");
    YES("{\"a\":[{\"prefix\":\"ab\"}]}", "{\"a\":\"ab\"}");
    NO("{\"a\":[{\"prefix\":\"ab\"}]}", "{\"a\":\"a\"}");
    NO("{\"a\":[{\"prefix\":\"ab\"}]}", "{\"a\":\"Abc\"}");
    NO("{\"a\":[{\"prefix\":\"ab\"}]}", "{\"a\":\"xab\"}");
    NO("{\"a\":[{\"prefix\":\"1\"}]}", "{\"a\":12}");
    YES("{\"a\":[{\"prefix\":\"\\u00e9\"}]}", "{\"a\":\"\xc3\xa9t\xc3\xa9\"}");
    /* pinned: prefix "" matches any string, never a non-string */
    YES("{\"a\":[{\"prefix\":\"\"}]}", "{\"a\":\"\"}");
    YES("{\"a\":[{\"prefix\":\"\"}]}", "{\"a\":\"zzz\"}");
    NO("{\"a\":[{\"prefix\":\"\"}]}", "{\"a\":null}");
    NO("{\"a\":[{\"prefix\":\"\"}]}", "{\"a\":1}");
    NO("{\"a\":[{\"prefix\":\"\"}]}", "{\"a\":true}");
    NO("{\"a\":[{\"prefix\":\"\"}]}", "{\"a\":[]}");
    NO("{\"a\":[{\"prefix\":\"\"}]}", "{\"a\":{}}");
    NO("{\"a\":[{\"prefix\":\"\"}]}", "{}");
    YES("{\"a\":[{\"prefix\":\"x\"},{\"prefix\":\"y\"}]}", "{\"a\":\"yes\"}");
}

static void test_suffix(void)
{
    YES("{\"a\":[{\"suffix\":\".png\"}]}", "{\"a\":\"image.png\"}");
    NO("{\"a\":[{\"suffix\":\".PNG\"}]}", "{\"a\":\"image.png\"}");
    NO("{\"a\":[{\"suffix\":\".png\"}]}", "{\"a\":\"png\"}");
    YES("{\"a\":[{\"suffix\":\"png\"}]}", "{\"a\":\"png\"}");
    NO("{\"a\":[{\"suffix\":\"0\"}]}", "{\"a\":10}");
    YES("{\"a\":[{\"suffix\":\"\\u00e9\"}]}", "{\"a\":\"caf\xc3\xa9\"}");
    YES("{\"a\":[{\"suffix\":\"\"}]}", "{\"a\":\"\"}");
    YES("{\"a\":[{\"suffix\":\"\"}]}", "{\"a\":\"abc\"}");
    NO("{\"a\":[{\"suffix\":\"\"}]}", "{\"a\":null}");
    NO("{\"a\":[{\"suffix\":\"\"}]}", "{\"a\":0}");
    NO("{\"a\":[{\"suffix\":\"\"}]}", "{\"a\":false}");
}

/* Pinned: equals-ignore-case and prefix/suffix EIC use Unicode full case
 * folding on both sides (straße ~ STRASSE). */
static void test_equals_ignore_case(void)
{
    YES("{\"a\":[{\"equals-ignore-case\":\"abc\"}]}", "{\"a\":\"ABC\"}");
    YES("{\"a\":[{\"equals-ignore-case\":\"ABC\"}]}", "{\"a\":\"aBc\"}");
    NO("{\"a\":[{\"equals-ignore-case\":\"abc\"}]}", "{\"a\":\"abcd\"}");
    YES("{\"a\":[{\"equals-ignore-case\":\"\"}]}", "{\"a\":\"\"}");
    NO("{\"a\":[{\"equals-ignore-case\":\"\"}]}", "{\"a\":\"x\"}");
    NO("{\"a\":[{\"equals-ignore-case\":\"1\"}]}", "{\"a\":1}");
    NO("{\"a\":[{\"equals-ignore-case\":\"true\"}]}", "{\"a\":true}");
    NO("{\"a\":[{\"equals-ignore-case\":\"null\"}]}", "{\"a\":null}");
    YES("{\"a\":[{\"equals-ignore-case\":\"stra\xc3\x9f" "e\"}]}", "{\"a\":\"STRASSE\"}");
    YES("{\"a\":[{\"equals-ignore-case\":\"STRASSE\"}]}", "{\"a\":\"stra\xc3\x9f" "e\"}");
    YES("{\"a\":[{\"equals-ignore-case\":\"stra\\u00dfe\"}]}", "{\"a\":\"STRA\xe1\xba\x9e" "E\"}"); /* ẞ */
    YES("{\"a\":[{\"equals-ignore-case\":\"\xce\xa3\xce\xb1\xcf\x82\"}]}", "{\"a\":\"\xcf\x83\xce\x91\xce\xa3\"}"); /* Σας ~ σΑΣ */
    YES("{\"a\":[{\"equals-ignore-case\":\"\xc3\xa9t\xc3\xa9\"}]}", "{\"a\":\"\xc3\x89T\xc3\x89\"}");
    NO("{\"a\":[{\"equals-ignore-case\":\"\xc3\xa9\"}]}", "{\"a\":\"E\"}");
    YES("{\"a\":[{\"equals-ignore-case\":\"abc\"}]}", "{\"a\":[1,\"x\",\"AbC\"]}");
}

static void test_prefix_suffix_eic(void)
{
    YES("{\"a\":[{\"prefix\":{\"equals-ignore-case\":\"ab\"}}]}", "{\"a\":\"ABc\"}");
    NO("{\"a\":[{\"prefix\":{\"equals-ignore-case\":\"ab\"}}]}", "{\"a\":\"xAB\"}");
    YES("{\"a\":[{\"prefix\":{\"equals-ignore-case\":\"stra\xc3\x9f\"}}]}", "{\"a\":\"STRASSE\"}");
    YES("{\"a\":[{\"prefix\":{\"equals-ignore-case\":\"STRASS\"}}]}", "{\"a\":\"stra\xc3\x9f" "e\"}");
    YES("{\"a\":[{\"prefix\":{\"equals-ignore-case\":\"\"}}]}", "{\"a\":\"x\"}");
    NO("{\"a\":[{\"prefix\":{\"equals-ignore-case\":\"\"}}]}", "{\"a\":null}");
    NO("{\"a\":[{\"prefix\":{\"equals-ignore-case\":\"1\"}}]}", "{\"a\":12}");
    YES("{\"a\":[{\"suffix\":{\"equals-ignore-case\":\".png\"}}]}", "{\"a\":\"image.PNG\"}");
    NO("{\"a\":[{\"suffix\":{\"equals-ignore-case\":\".png\"}}]}", "{\"a\":\"image.PNGx\"}");
    YES("{\"a\":[{\"suffix\":{\"equals-ignore-case\":\"SSE\"}}]}", "{\"a\":\"stra\xc3\x9f" "e\"}");
    YES("{\"a\":[{\"suffix\":{\"equals-ignore-case\":\"\xcf\x83\"}}]}", "{\"a\":\"\xce\xa3\xce\xa3\"}");
    YES("{\"a\":[{\"suffix\":{\"equals-ignore-case\":\"\"}}]}", "{\"a\":\"\"}");
    NO("{\"a\":[{\"suffix\":{\"equals-ignore-case\":\"\"}}]}", "{\"a\":false}");
}

/* wildcard: '*' any run; \* and \\ escapes (written \\* and \\\\ in JSON). */
static void test_wildcard(void)
{
    YES("{\"a\":[{\"wildcard\":\"a*c\"}]}", "{\"a\":\"abbbc\"}");
    YES("{\"a\":[{\"wildcard\":\"a*c\"}]}", "{\"a\":\"ac\"}");
    NO("{\"a\":[{\"wildcard\":\"a*c\"}]}", "{\"a\":\"acb\"}");
    YES("{\"a\":[{\"wildcard\":\"*/lib/*\"}]}", "{\"a\":\"/usr/lib/x\"}");
    YES("{\"a\":[{\"wildcard\":\"a?c\"}]}", "{\"a\":\"a?c\"}");
    NO("{\"a\":[{\"wildcard\":\"a?c\"}]}", "{\"a\":\"abc\"}");
    YES("{\"a\":[{\"wildcard\":\"\"}]}", "{\"a\":\"\"}");
    NO("{\"a\":[{\"wildcard\":\"\"}]}", "{\"a\":\"x\"}");
    /* pinned: "*" matches any string, never a non-string */
    YES("{\"a\":[{\"wildcard\":\"*\"}]}", "{\"a\":\"\"}");
    YES("{\"a\":[{\"wildcard\":\"*\"}]}", "{\"a\":\"anything\"}");
    NO("{\"a\":[{\"wildcard\":\"*\"}]}", "{\"a\":null}");
    NO("{\"a\":[{\"wildcard\":\"*\"}]}", "{\"a\":3}");
    NO("{\"a\":[{\"wildcard\":\"*\"}]}", "{\"a\":true}");
    NO("{\"a\":[{\"wildcard\":\"*\"}]}", "{\"a\":[]}");
    /* escapes */
    YES("{\"a\":[{\"wildcard\":\"a\\\\*b\"}]}", "{\"a\":\"a*b\"}");
    NO("{\"a\":[{\"wildcard\":\"a\\\\*b\"}]}", "{\"a\":\"axb\"}");
    YES("{\"a\":[{\"wildcard\":\"a\\\\\\\\b\"}]}", "{\"a\":\"a\\\\b\"}");
    YES("{\"a\":[{\"wildcard\":\"a\\\\\\\\*\"}]}", "{\"a\":\"a\\\\xyz\"}");
    YES("{\"a\":[{\"wildcard\":\"\\\\**\"}]}", "{\"a\":\"*abc\"}");
    NO("{\"a\":[{\"wildcard\":\"\\\\**\"}]}", "{\"a\":\"abc\"}");
    YES("{\"a\":[{\"wildcard\":\"*\\u00e9*\"}]}", "{\"a\":\"caf\xc3\xa9s\"}");
    YES("{\"a\":[{\"wildcard\":\"ab*ab*\"}]}", "{\"a\":\"ababab\"}");
    NO("{\"a\":[{\"wildcard\":\"ab*ab\"}]}", "{\"a\":\"aba\"}");
    YES("{\"a\":[{\"wildcard\":\"arn:aws:events:us-east-1:*:event-bus/*\"}]}",
        "{\"a\":\"arn:aws:events:us-east-1:123:event-bus/default\"}");
    /* one star, sides of up to 8 bytes (matched without the glob), and
     * longer ones (with it): lengths 0, 1, 7, 8 and 9 on either side */
    YES("{\"a\":[{\"wildcard\":\"12345678*abcdefgh\"}]}", "{\"a\":\"12345678abcdefgh\"}");
    YES("{\"a\":[{\"wildcard\":\"12345678*abcdefgh\"}]}", "{\"a\":\"12345678-abcdefgh\"}");
    NO("{\"a\":[{\"wildcard\":\"12345678*abcdefgh\"}]}", "{\"a\":\"12345678abcdefg\"}");
    NO("{\"a\":[{\"wildcard\":\"12345678*abcdefgh\"}]}", "{\"a\":\"1234567-abcdefgh\"}");
    NO("{\"a\":[{\"wildcard\":\"12345678*abcdefgh\"}]}", "{\"a\":\"12345678-xbcdefgh\"}");
    NO("{\"a\":[{\"wildcard\":\"12345678*abcdefgh\"}]}", "{\"a\":\"x2345678-abcdefgh\"}");
    YES("{\"a\":[{\"wildcard\":\"123456789*abcdefghi\"}]}", "{\"a\":\"123456789--abcdefghi\"}");
    NO("{\"a\":[{\"wildcard\":\"123456789*abcdefghi\"}]}", "{\"a\":\"123456789--bbcdefghi\"}");
    YES("{\"a\":[{\"wildcard\":\"1234567*x\"}]}", "{\"a\":\"1234567x\"}");
    NO("{\"a\":[{\"wildcard\":\"1234567*x\"}]}", "{\"a\":\"1234567\"}");
    NO("{\"a\":[{\"wildcard\":\"1234567*x\"}]}", "{\"a\":\"1234568x\"}");
    YES("{\"a\":[{\"wildcard\":\"*abcdefgh\"}]}", "{\"a\":\"abcdefgh\"}");
    NO("{\"a\":[{\"wildcard\":\"*abcdefgh\"}]}", "{\"a\":\"abcdefg\"}");
    YES("{\"a\":[{\"wildcard\":\"x*\"}]}", "{\"a\":\"x\"}");
    NO("{\"a\":[{\"wildcard\":\"x*\"}]}", "{\"a\":\"\"}");
    NO("{\"a\":[{\"wildcard\":\"ab*ba\"}]}", "{\"a\":\"aba\"}");
    YES("{\"a\":[{\"wildcard\":\"ab*ba\"}]}", "{\"a\":\"abba\"}");
    YES("{\"a\":[{\"wildcard\":\"a\\\\\\\\*\\\\\\\\b\"}]}", "{\"a\":\"a\\\\\\\\b\"}");
    NO("{\"a\":[{\"wildcard\":\"a\\\\\\\\*\\\\\\\\b\"}]}", "{\"a\":\"a\\\\b\"}");
    YES("{\"a\":[{\"wildcard\":\"\\\\*\\\\**\\\\*\"}]}", "{\"a\":\"**x*\"}");
    NO("{\"a\":[{\"wildcard\":\"\\\\*\\\\**\\\\*\"}]}", "{\"a\":\"**\"}");
}

/* Pinned: anything-but (every form) matches null, booleans, numbers for
 * the string forms; never a missing field or empty array. */
static void test_anything_but(void)
{
    const char *p = "{\"a\":[{\"anything-but\":\"x\"}]}";
    YES(p, "{\"a\":\"y\"}");
    YES(p, "{\"a\":\"\"}");
    NO(p, "{\"a\":\"x\"}");
    YES(p, "{\"a\":null}");
    YES(p, "{\"a\":true}");
    YES(p, "{\"a\":false}");
    YES(p, "{\"a\":5}");
    NO(p, "{}");
    NO(p, "{\"a\":[]}");
    NO(p, "{\"a\":{}}");
    NO(p, "{\"a\":{\"b\":\"y\"}}");
    YES(p, "{\"a\":[\"x\",\"y\"]}");
    NO(p, "{\"a\":[\"x\",\"x\"]}");

    p = "{\"a\":[{\"anything-but\":[\"x\",\"y\"]}]}";
    YES(p, "{\"a\":\"z\"}");
    NO(p, "{\"a\":\"y\"}");
    YES(p, "{\"a\":null}");
    YES(p, "{\"a\":0}");

    p = "{\"a\":[{\"anything-but\":5}]}";
    NO(p, "{\"a\":5}");
    NO(p, "{\"a\":5.0}");
    NO(p, "{\"a\":5e0}");
    YES(p, "{\"a\":\"5\"}");
    YES(p, "{\"a\":6}");
    YES(p, "{\"a\":null}");
    YES(p, "{\"a\":true}");
    NO(p, "{}");
    NO(p, "{\"a\":[]}");
    YES(p, "{\"a\":[5,6]}");
    NO(p, "{\"a\":[5,[5.0]]}");
    YES("{\"a\":[{\"anything-but\":0}]}", "{\"a\":789}");
    NO("{\"a\":[{\"anything-but\":0}]}", "{\"a\":-0}");

    p = "{\"a\":[{\"anything-but\":[100,200]}]}";
    NO(p, "{\"a\":200}");
    YES(p, "{\"a\":300}");
    YES(p, "{\"a\":\"100\"}");

    p = "{\"a\":[{\"anything-but\":{\"prefix\":\"init\"}}]}";
    NO(p, "{\"a\":\"initializing\"}");
    YES(p, "{\"a\":\"running\"}");
    YES(p, "{\"a\":\"ini\"}");
    YES(p, "{\"a\":null}");
    YES(p, "{\"a\":42}");
    YES(p, "{\"a\":false}");
    NO(p, "{}");
    NO(p, "{\"a\":[]}");
    p = "{\"a\":[{\"anything-but\":{\"prefix\":[\"init\",\"test\"]}}]}";
    NO(p, "{\"a\":\"testing\"}");
    YES(p, "{\"a\":\"prod\"}");

    p = "{\"a\":[{\"anything-but\":{\"suffix\":\".txt\"}}]}";
    NO(p, "{\"a\":\"a.txt\"}");
    YES(p, "{\"a\":\"a.TXT\"}");
    YES(p, "{\"a\":null}");
    YES(p, "{\"a\":1}");
    NO(p, "{}");
    p = "{\"a\":[{\"anything-but\":{\"suffix\":[\".txt\",\".md\"]}}]}";
    NO(p, "{\"a\":\"r.md\"}");
    YES(p, "{\"a\":\"r.c\"}");

    p = "{\"a\":[{\"anything-but\":{\"equals-ignore-case\":\"stopped\"}}]}";
    NO(p, "{\"a\":\"STOPPED\"}");
    YES(p, "{\"a\":\"running\"}");
    YES(p, "{\"a\":null}");
    YES(p, "{\"a\":true}");
    YES(p, "{\"a\":7}");
    NO(p, "{}");
    NO(p, "{\"a\":[]}");
    p = "{\"a\":[{\"anything-but\":{\"equals-ignore-case\":[\"stra\xc3\x9f" "e\",\"x\"]}}]}";
    NO(p, "{\"a\":\"STRASSE\"}");
    NO(p, "{\"a\":\"X\"}");
    YES(p, "{\"a\":\"y\"}");

    p = "{\"a\":[{\"anything-but\":{\"wildcard\":\"*/lib/*\"}}]}";
    NO(p, "{\"a\":\"/usr/lib/x\"}");
    YES(p, "{\"a\":\"/usr/bin/x\"}");
    YES(p, "{\"a\":null}");
    YES(p, "{\"a\":12}");
    NO(p, "{}");
    NO(p, "{\"a\":[]}");
    p = "{\"a\":[{\"anything-but\":{\"wildcard\":[\"a*\",\"*z\"]}}]}";
    NO(p, "{\"a\":\"abc\"}");
    NO(p, "{\"a\":\"xyz\"}");
    YES(p, "{\"a\":\"xyy\"}");
    YES(p, "{\"a\":[\"abc\",\"m\"]}");
    p = "{\"a\":[{\"anything-but\":{\"wildcard\":\"\"}}]}";
    NO(p, "{\"a\":\"\"}");
    YES(p, "{\"a\":\"x\"}");
    p = "{\"a\":[{\"anything-but\":{\"wildcard\":\"*\"}}]}";
    NO(p, "{\"a\":\"\"}");
    NO(p, "{\"a\":\"x\"}");
    YES(p, "{\"a\":null}");
}

/* numeric: double comparison with every operator, ranges, edge values. */
static void test_numeric(void)
{
    YES("{\"a\":[{\"numeric\":[\">\",100]}]}", "{\"a\":101.0}");
    NO("{\"a\":[{\"numeric\":[\">\",100]}]}", "{\"a\":100}");
    NO("{\"a\":[{\"numeric\":[\">\",100]}]}", "{\"a\":\"300\"}");
    NO("{\"a\":[{\"numeric\":[\">\",100]}]}", "{\"a\":null}");
    NO("{\"a\":[{\"numeric\":[\">\",100]}]}", "{\"a\":true}");
    YES("{\"a\":[{\"numeric\":[\">=\",100]}]}", "{\"a\":100}");
    NO("{\"a\":[{\"numeric\":[\">=\",100]}]}", "{\"a\":99.99999999}");
    YES("{\"a\":[{\"numeric\":[\"<\",100]}]}", "{\"a\":-1e300}");
    NO("{\"a\":[{\"numeric\":[\"<\",100]}]}", "{\"a\":1e2}");
    YES("{\"a\":[{\"numeric\":[\"<=\",100]}]}", "{\"a\":1e2}");
    NO("{\"a\":[{\"numeric\":[\"<=\",100]}]}", "{\"a\":100.00000000001}");
    YES("{\"a\":[{\"numeric\":[\"=\",100]}]}", "{\"a\":100.0}");
    NO("{\"a\":[{\"numeric\":[\"=\",100]}]}", "{\"a\":101}");
    /* ranges, both open/closed combinations */
    YES("{\"a\":[{\"numeric\":[\">\",0,\"<\",5]}]}", "{\"a\":2.5}");
    NO("{\"a\":[{\"numeric\":[\">\",0,\"<\",5]}]}", "{\"a\":0}");
    NO("{\"a\":[{\"numeric\":[\">\",0,\"<\",5]}]}", "{\"a\":5}");
    YES("{\"a\":[{\"numeric\":[\">=\",0,\"<=\",5]}]}", "{\"a\":0}");
    YES("{\"a\":[{\"numeric\":[\">=\",0,\"<=\",5]}]}", "{\"a\":5}");
    NO("{\"a\":[{\"numeric\":[\">=\",0,\"<=\",5]}]}", "{\"a\":5.000001}");
    YES("{\"a\":[{\"numeric\":[\">\",0,\"<=\",5]}]}", "{\"a\":5}");
    YES("{\"a\":[{\"numeric\":[\">=\",0,\"<\",5]}]}", "{\"a\":-0}");
    /* -0 == 0 */
    YES("{\"a\":[{\"numeric\":[\"=\",0]}]}", "{\"a\":-0.0}");
    YES("{\"a\":[{\"numeric\":[\"=\",-0]}]}", "{\"a\":0}");
    NO("{\"a\":[{\"numeric\":[\">\",-0]}]}", "{\"a\":0}");
    NO("{\"a\":[{\"numeric\":[\"<\",0]}]}", "{\"a\":-0}");
    /* subnormals and the extremes */
    YES("{\"a\":[{\"numeric\":[\">\",0]}]}", "{\"a\":5e-324}");
    NO("{\"a\":[{\"numeric\":[\">\",5e-324]}]}", "{\"a\":4.9406564584124654e-324}");
    YES("{\"a\":[{\"numeric\":[\"=\",5e-324]}]}", "{\"a\":4.9406564584124654e-324}");
    YES("{\"a\":[{\"numeric\":[\"<\",0]}]}", "{\"a\":-5e-324}");
    YES("{\"a\":[{\"numeric\":[\">\",0,\"<\",1e-323]}]}", "{\"a\":5e-324}");
    NO("{\"a\":[{\"numeric\":[\"<\",1.7976931348623157e308]}]}", "{\"a\":1.7976931348623157e308}");
    YES("{\"a\":[{\"numeric\":[\"<=\",1.7976931348623157e308]}]}", "{\"a\":1.7976931348623157e308}");
    YES("{\"a\":[{\"numeric\":[\">\",1e308]}]}", "{\"a\":1.7976931348623157e308}");
    YES("{\"a\":[{\"numeric\":[\">=\",-1.7976931348623157e308]}]}", "{\"a\":-1.7976931348623157e308}");
    NO("{\"a\":[{\"numeric\":[\">\",-1.7976931348623157e308]}]}", "{\"a\":-1.7976931348623157e308}");
    /* beyond AWS's documented +-5e9: still compared exactly */
    YES("{\"a\":[{\"numeric\":[\">\",5e9]}]}", "{\"a\":5000000000.5}");
    YES("{\"a\":[{\"numeric\":[\"=\",0.1]}]}", "{\"a\":0.1}");
    NO("{\"a\":[{\"numeric\":[\"=\",0.3]}]}", "{\"a\":0.30000000000000004}");
    YES("{\"a\":[{\"numeric\":[\">\",9007199254740992]}]}", "{\"a\":9007199254740994}");
    /* OR of numeric conditions; arrays */
    YES("{\"a\":[{\"numeric\":[\"<\",0]},{\"numeric\":[\">\",10]}]}", "{\"a\":11}");
    NO("{\"a\":[{\"numeric\":[\"<\",0]},{\"numeric\":[\">\",10]}]}", "{\"a\":5}");
    YES("{\"a\":[{\"numeric\":[\">\",0,\"<\",5]}]}", "{\"a\":[9,\"3\",3]}");
    NO("{\"a\":[{\"numeric\":[\">\",0,\"<\",5]}]}", "{\"a\":[9,\"3\",-3]}");
}

/* cidr: inclusive ranges, v4 and v6, boundaries. */
static void test_cidr(void)
{
    const char *p = "{\"a\":[{\"cidr\":\"10.0.0.0/24\"}]}";
    YES(p, "{\"a\":\"10.0.0.0\"}");
    YES(p, "{\"a\":\"10.0.0.255\"}");
    YES(p, "{\"a\":\"10.0.0.17\"}");
    NO(p, "{\"a\":\"10.0.1.0\"}");
    NO(p, "{\"a\":\"9.255.255.255\"}");
    NO(p, "{\"a\":\"10.0.0.256\"}");
    NO(p, "{\"a\":\"10.0.0\"}");
    NO(p, "{\"a\":\" 10.0.0.1\"}");
    NO(p, "{\"a\":10}");
    NO(p, "{\"a\":null}");
    YES(p, "{\"a\":\"010.000.000.001\"}"); /* leading zeros read as decimal */
    YES(p, "{\"a\":\"::ffff:a00:1\"}");    /* IPv4-mapped IPv6 is the IPv4 address */
    NO(p, "{\"a\":\"::a00:1\"}");
    YES("{\"a\":[{\"cidr\":\"10.0.0.5/24\"}]}", "{\"a\":\"10.0.0.200\"}"); /* host bits ignored */
    YES("{\"a\":[{\"cidr\":\"10.0.0.5/31\"}]}", "{\"a\":\"10.0.0.4\"}");
    NO("{\"a\":[{\"cidr\":\"10.0.0.5/31\"}]}", "{\"a\":\"10.0.0.6\"}");
    YES("{\"a\":[{\"cidr\":\"0.0.0.0/0\"}]}", "{\"a\":\"255.255.255.255\"}");
    NO("{\"a\":[{\"cidr\":\"0.0.0.0/0\"}]}", "{\"a\":\"2001:db8::1\"}");
    YES("{\"a\":[{\"cidr\":\"128.0.0.0/1\"}]}", "{\"a\":\"128.0.0.0\"}");
    NO("{\"a\":[{\"cidr\":\"128.0.0.0/1\"}]}", "{\"a\":\"127.255.255.255\"}");

    p = "{\"a\":[{\"cidr\":\"2001:db8:1234:1a00::/64\"}]}";
    YES(p, "{\"a\":\"2001:0db8:1234:1a00:0000:0000:0000:0000\"}");
    YES(p, "{\"a\":\"2001:db8:1234:1a00:ffff:ffff:ffff:ffff\"}");
    YES(p, "{\"a\":\"2001:DB8:1234:1A00::1\"}");
    NO(p, "{\"a\":\"2001:db8:1234:1a01::\"}");
    NO(p, "{\"a\":\"2001:db8:1234:19ff:ffff:ffff:ffff:ffff\"}");
    NO(p, "{\"a\":\"10.0.0.1\"}");
    NO(p, "{\"a\":\"2001:db8:1234:1a00::1%eth0\"}");
    YES("{\"a\":[{\"cidr\":\"::/0\"}]}", "{\"a\":\"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\"}");
    YES("{\"a\":[{\"cidr\":\"2001:db8::/127\"}]}", "{\"a\":\"2001:db8::1\"}");
    NO("{\"a\":[{\"cidr\":\"2001:db8::/127\"}]}", "{\"a\":\"2001:db8::2\"}");
    YES("{\"a\":[{\"cidr\":\"10.0.0.0/8\"},{\"cidr\":\"fc00::/7\"}]}", "{\"a\":[\"8.8.8.8\",\"fd00::1\"]}");
}

/* Pinned: string literals that are IP addresses compare as addresses. */
static void test_ip_literal(void)
{
    YES("{\"a\":[\"2001:db8::1\"]}", "{\"a\":\"2001:0DB8:0:0:0:0:0:1\"}");
    YES("{\"a\":[\"2001:0DB8:0:0:0:0:0:1\"]}", "{\"a\":\"2001:db8::1\"}");
    NO("{\"a\":[\"2001:db8::1\"]}", "{\"a\":\"2001:db8::2\"}");
    YES("{\"a\":[\"10.0.0.1\"]}", "{\"a\":\"10.0.0.1\"}");
    YES("{\"a\":[\"10.0.0.1\"]}", "{\"a\":\"010.0.0.001\"}");
    YES("{\"a\":[\"10.0.0.1\"]}", "{\"a\":\"::ffff:a00:1\"}");
    NO("{\"a\":[\"10.0.0.1\"]}", "{\"a\":\"10.0.0.2\"}");
    NO("{\"a\":[\"10.0.0.1\"]}", "{\"a\":\"10.0.0.1 \"}");
    /* not an address: plain string comparison */
    YES("{\"a\":[\"10.0.0.256\"]}", "{\"a\":\"10.0.0.256\"}");
    NO("{\"a\":[\"10.0.0.256\"]}", "{\"a\":\"010.0.0.256\"}");
    /* a non-IP prefix/wildcard is still textual */
    NO("{\"a\":[{\"prefix\":\"2001:db8::\"}]}", "{\"a\":\"2001:0db8::1\"}");
}

static void test_exists(void)
{
    const char *t = "{\"a\":[{\"exists\":true}]}", *f = "{\"a\":[{\"exists\":false}]}";
    /* 5.5 table */
    YES(t, "{\"a\":null}");
    YES(t, "{\"a\":\"\"}");
    YES(t, "{\"a\":\"x\"}");
    YES(t, "{\"a\":0}");
    YES(t, "{\"a\":false}");
    NO(t, "{\"a\":[]}");
    NO(t, "{}");
    NO(t, "{\"a\":{}}");
    NO(t, "{\"a\":{\"S\":\"x\"}}");
    YES(t, "{\"a\":[[],[null]]}");
    NO(t, "{\"a\":[[],[{}]]}");
    NO(f, "{\"a\":null}");
    NO(f, "{\"a\":\"\"}");
    NO(f, "{\"a\":\"x\"}");
    YES(f, "{\"a\":[]}");
    YES(f, "{}");
    YES(f, "{\"a\":{}}");
    YES(f, "{\"a\":{\"S\":\"x\"}}");
    YES(f, "{\"b\":1}");
    /* an ancestor missing or scalar */
    YES("{\"l1\":{\"l2\":{\"l3\":[{\"exists\":false}]}}}", "{\"l1\":{\"l2\":\"str\"}}");
    NO("{\"l1\":{\"l2\":{\"l3\":[{\"exists\":false}]}}}", "{\"l1\":{\"l2\":{\"l3\":1}}}");
    YES("{\"l1\":{\"l2\":{\"l3\":[{\"exists\":true}]}}}", "{\"l1\":[{\"l2\":{\"l3\":1}}]}");
    /* combined with other fields */
    YES("{\"a\":[\"x\"],\"b\":[{\"exists\":false}]}", "{\"a\":\"x\"}");
    NO("{\"a\":[\"x\"],\"b\":[{\"exists\":false}]}", "{\"a\":\"x\",\"b\":null}");
    YES("{\"a\":[{\"exists\":false}],\"b\":[{\"exists\":false}]}", "{}");
}

static void test_or(void)
{
    const char *p = "{\"$or\":[{\"a\":[1]},{\"b\":[2]}]}";
    YES(p, "{\"a\":1}");
    YES(p, "{\"b\":2}");
    YES(p, "{\"a\":1,\"b\":2}");
    NO(p, "{\"a\":2,\"b\":1}");
    /* siblings ANDed with $or */
    p = "{\"s\":[\"x\"],\"$or\":[{\"a\":[1]},{\"b\":[2]}]}";
    YES(p, "{\"s\":\"x\",\"b\":2}");
    NO(p, "{\"s\":\"y\",\"b\":2}");
    NO(p, "{\"s\":\"x\"}");
    /* nested $or */
    p = "{\"$or\":[{\"a\":[1]},{\"$or\":[{\"b\":[2]},{\"c\":{\"d\":[3]}}]}]}";
    YES(p, "{\"c\":{\"d\":3}}");
    YES(p, "{\"b\":2}");
    NO(p, "{\"c\":3}");
    /* $or below a key, and two $or ANDed */
    p = "{\"d\":{\"$or\":[{\"x\":[1]},{\"y\":[1]}]},\"$or\":[{\"p\":[1]},{\"q\":[1]}]}";
    YES(p, "{\"d\":{\"y\":1},\"q\":1}");
    NO(p, "{\"d\":{\"y\":1}}");
    NO(p, "{\"q\":1,\"y\":1}");
    /* operators inside $or members */
    p = "{\"$or\":[{\"a\":[{\"numeric\":[\">\",5]}]},{\"a\":[{\"prefix\":\"z\"}]}]}";
    YES(p, "{\"a\":\"zz\"}");
    YES(p, "{\"a\":6}");
    NO(p, "{\"a\":5}");
    p = "{\"$or\":[{\"a\":[{\"exists\":false}]},{\"b\":[{\"exists\":false}]}]}";
    YES(p, "{\"a\":1}");
    NO(p, "{\"a\":1,\"b\":1}");
    /* 10 x 10 x 10 = 1000 sub-rules is the limit */
    char buf[8192];
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "{");
    for (int k = 0; k < 3; k++) {
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\"k%d\":{\"$or\":[", k ? "," : "", k);
        for (int i = 0; i < 10; i++)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s{\"f%d\":[%d]}", i ? "," : "", i, i);
        n += (size_t)snprintf(buf + n, sizeof buf - n, "]}");
    }
    n += (size_t)snprintf(buf + n, sizeof buf - n, "}");
    eb_pattern *pp = NULL;
    eb_error err;
    CHECK(eb_pattern_compile(buf, n, &pp, &err) == EB_OK);
    if (pp) {
        CHECK(eb_pattern_subrules(pp) == 1000);
        eb_pattern_free(pp);
    }
    YES(buf, "{\"k0\":{\"f3\":3},\"k1\":{\"f9\":9},\"k2\":{\"f0\":0}}");
    NO(buf, "{\"k0\":{\"f3\":3},\"k1\":{\"f9\":8},\"k2\":{\"f0\":0}}");
}

/* Pinned: dotted keys and nesting name the same path in patterns and events. */
static void test_dotted_keys(void)
{
    YES("{\"a.b\":[\"x\"]}", "{\"a\":{\"b\":\"x\"}}");
    YES("{\"a\":{\"b\":[\"x\"]}}", "{\"a.b\":\"x\"}");
    YES("{\"a.b\":[\"x\"]}", "{\"a.b\":\"x\"}");
    YES("{\"d\":{\"s.t\":[\"r\"]}}", "{\"d\":{\"s\":{\"t\":\"r\"}}}");
    YES("{\"d\":{\"s\":{\"t\":[\"r\"]}}}", "{\"d.s\":{\"t\":\"r\"}}");
    YES("{\"d\":{\"s\":{\"t\":[\"r\"]}}}", "{\"d\":{\"s.t\":\"r\"}}");
    NO("{\"a.b\":[\"x\"]}", "{\"a\":{\"b\":\"y\"}}");
    YES("{\"a.b\":[{\"exists\":false}]}", "{\"a\":{\"c\":1}}");
    NO("{\"a.b\":[{\"exists\":false}]}", "{\"a.b\":1}");
    YES("{\"a.b\":[\"x\"]}", "{\"a\":[{\"b\":\"y\"},{\"b\":\"x\"}]}");
}

/* ---- pinned semantics ------------------------------------------------------------ */

/* Pinned: fields under objects in one event array must come from the same
 * element (array-consistent). */
static void test_pinned_array_consistency(void)
{
    const char *p = "{\"e\":{\"f\":[\"Anna\"],\"l\":[\"Jones\"]}}";
    NO(p, "{\"e\":[{\"f\":\"Anna\",\"l\":\"Smith\"},{\"f\":\"Peter\",\"l\":\"Jones\"}]}");
    YES(p, "{\"e\":[{\"f\":\"Anna\",\"l\":\"Smith\"},{\"f\":\"Anna\",\"l\":\"Jones\"}]}");
    YES(p, "{\"e\":{\"f\":\"Anna\",\"l\":\"Jones\"}}");
    /* values in scalar arrays of one element are fine */
    YES(p, "{\"e\":[{\"f\":[\"Bob\",\"Anna\"],\"l\":\"Jones\"}]}");
    /* nested arrays: consistency at every level */
    p = "{\"o\":{\"i\":{\"x\":[1],\"y\":[2]}}}";
    YES(p, "{\"o\":[{\"i\":[{\"x\":1,\"y\":0},{\"x\":1,\"y\":2}]}]}");
    NO(p, "{\"o\":[{\"i\":[{\"x\":1},{\"y\":2}]}]}");
    NO(p, "{\"o\":[{\"i\":{\"x\":1}},{\"i\":{\"y\":2}}]}");
    /* field outside the array combines with any element */
    p = "{\"t\":[\"k\"],\"e\":{\"f\":[\"Anna\"]}}";
    YES(p, "{\"t\":\"k\",\"e\":[{\"f\":\"Bob\"},{\"f\":\"Anna\"}]}");
    /* different arrays are independent */
    p = "{\"a\":{\"x\":[1]},\"b\":{\"y\":[2]}}";
    YES(p, "{\"a\":[{\"x\":0},{\"x\":1}],\"b\":[{\"y\":2},{\"y\":3}]}");
    /* fields inside a $or branch are also consistent */
    p = "{\"$or\":[{\"e\":{\"f\":[\"A\"],\"l\":[\"B\"]}},{\"z\":[1]}]}";
    NO(p, "{\"e\":[{\"f\":\"A\"},{\"l\":\"B\"}]}");
}

/* Pinned: exists:true matches any leaf incl. null but not [] {} or objects;
 * exists:false holds when no leaf at the path is consistent with the values
 * chosen for the other fields (judged per element in arrays of objects). */
static void test_pinned_exists(void)
{
    const char *p = "{\"e\":{\"f\":[\"Anna\"],\"l\":[{\"exists\":false}]}}";
    NO(p, "{\"e\":[{\"f\":\"Anna\",\"l\":\"x\"},{\"f\":\"Bob\"}]}");
    YES(p, "{\"e\":[{\"f\":\"Anna\"},{\"f\":\"Bob\",\"l\":\"x\"}]}");
    YES(p, "{\"e\":[{\"f\":\"Anna\",\"l\":[]},{\"f\":\"Bob\",\"l\":\"x\"}]}");
    NO(p, "{\"e\":[{\"f\":\"Anna\",\"l\":null}]}");
    YES(p, "{\"e\":{\"f\":\"Anna\",\"l\":{}}}");
    p = "{\"e\":{\"f\":[\"Anna\"],\"l\":[{\"exists\":true}]}}";
    NO(p, "{\"e\":[{\"f\":\"Anna\"},{\"f\":\"Bob\",\"l\":\"x\"}]}");
    YES(p, "{\"e\":[{\"f\":\"Anna\",\"l\":null}]}");
    NO(p, "{\"e\":[{\"f\":\"Anna\",\"l\":[]}]}");
    NO(p, "{\"e\":[{\"f\":\"Anna\",\"l\":{\"m\":1}}]}");
    /* exists:false outside the array: any leaf anywhere breaks it */
    p = "{\"e\":{\"f\":[\"Anna\"]},\"g\":[{\"exists\":false}]}";
    NO(p, "{\"e\":[{\"f\":\"Anna\"}],\"g\":[[],[null]]}");
    YES(p, "{\"e\":[{\"f\":\"Anna\"}],\"g\":[[],{}]}");
}

/* Pinned: a field whose OR-list mixes exists:false with other conditions is
 * satisfied by either. */
static void test_pinned_mixed_exists(void)
{
    const char *p = "{\"a\":[{\"exists\":false},\"x\"]}";
    YES(p, "{}");
    YES(p, "{\"a\":\"x\"}");
    NO(p, "{\"a\":\"y\"}");
    YES(p, "{\"a\":[\"y\",\"x\"]}");
    YES(p, "{\"a\":[]}");
    YES(p, "{\"a\":{\"b\":1}}");
    p = "{\"a\":[{\"prefix\":\"p\"},{\"exists\":false}]}";
    YES(p, "{\"a\":\"pq\"}");
    NO(p, "{\"a\":null}");
    p = "{\"a\":[{\"exists\":true},{\"exists\":false}]}";
    YES(p, "{}");
    YES(p, "{\"a\":1}");
    /* inside an array of objects, per element */
    p = "{\"e\":{\"f\":[\"A\"],\"l\":[{\"exists\":false},\"J\"]}}";
    YES(p, "{\"e\":[{\"f\":\"A\",\"l\":\"J\"}]}");
    YES(p, "{\"e\":[{\"f\":\"A\"},{\"l\":\"K\"}]}");
    NO(p, "{\"e\":[{\"f\":\"A\",\"l\":\"K\"},{\"l\":\"J\"}]}");
}

/* Pinned: last duplicate key wins in patterns (also across dotted/nested). */
static void test_pinned_duplicate_keys(void)
{
    const char *p = "{\"a\":[\"x\"],\"a\":[\"y\"]}";
    YES(p, "{\"a\":\"y\"}");
    NO(p, "{\"a\":\"x\"}");
    p = "{\"a\":{\"b\":[\"x\"]},\"a.b\":[\"y\"]}";
    YES(p, "{\"a\":{\"b\":\"y\"}}");
    NO(p, "{\"a\":{\"b\":\"x\"}}");
    p = "{\"a.b\":[\"y\"],\"a\":{\"b\":[\"x\"]}}";
    YES(p, "{\"a\":{\"b\":\"x\"}}");
    NO(p, "{\"a\":{\"b\":\"y\"}}");
    p = "{\"a\":[{\"exists\":false}],\"a\":[1]}";
    NO(p, "{}");
    YES(p, "{\"a\":1}");
}

/* ---- validation errors: every reason text the compiler produces ------------------- */

static void test_errors_structure(void)
{
    ERR("[1]", "Filter is not an object");
    ERR("\"x\"", "Filter is not an object");
    ERR("null", "Filter is not an object");
    ERR("{\"a\":\"x\"}", "\"a\" must be an object or an array");
    ERR("{\"a\":null}", "\"a\" must be an object or an array");
    ERR("{\"d\":{\"k\":1}}", "\"k\" must be an object or an array");
    ERR("{}", "Empty objects are not allowed");
    ERR("{\"a\":{}}", "Empty objects are not allowed");
    ERR("{\"a\":[]}", "Empty arrays are not allowed");
    ERR("{\"a\":[[1]]}", "Match value must be String, number, true, false, or null");
    ERR("{\"a\":[\"x\",[1]]}", "Match value must be String, number, true, false, or null");
    ERR("{\"a\":[{\"NUMERIC\":[\">\",1]}]}", "Unrecognized match type NUMERIC");
    ERR("{\"a\":[{\"regex\":\"x\"}]}", "Unrecognized match type regex");
    ERR("{\"a\":[{\"prefix\":\"x\",\"suffix\":\"y\"}]}", "Only one key allowed in match expression");
    ERR("{\"a\":[{\"exists\":true,\"x\":1}]}", "Only one key allowed in match expression");
    ERR("{\"a\":[{}]}", "Match expression name not found");
    ERR("{\"a\":[{\"exactly\":1}]}", "exact match pattern must be a string");
    /* not JSON: Jackson's wording; at least the prefix and the status */
    const char *m = cerr("this");
    CHECK(!strncmp(m, PFX, strlen(PFX)));
    m = cerr("{'a':[1]}");
    CHECK(!strncmp(m, PFX, strlen(PFX)));
    m = cerr("{\"a\":[1]} x");
    CHECK(!strncmp(m, PFX, strlen(PFX)));
    m = cerr("{\"a\":[1]");
    CHECK(!strncmp(m, PFX, strlen(PFX)));
    m = cerr("");
    CHECK(!strncmp(m, PFX, strlen(PFX)));
    ERR("this", "Unrecognized token 'this': was expecting (JSON String, Number, Array, Object or token 'null', "
                "'true' or 'false')");
    ERR("{'a':[1]}", "Unexpected character (''' (code 39)): was expecting double-quote to start field name");
}

static void test_errors_string_ops(void)
{
    ERR("{\"a\":[{\"prefix\":[\"x\"]}]}", "prefix match pattern must be a string");
    ERR("{\"a\":[{\"prefix\":1}]}", "prefix match pattern must be a string");
    ERR("{\"a\":[{\"prefix\":{\"foo\":\"x\"}}]}", "Unsupported prefix pattern: foo");
    ERR("{\"a\":[{\"prefix\":{\"equals-ignore-case\":1}}]}", "equals-ignore-case match pattern must be a string");
    ERR("{\"a\":[{\"suffix\":[\"x\"]}]}", "suffix match pattern must be a string");
    ERR("{\"a\":[{\"suffix\":2}]}", "suffix match pattern must be a string");
    ERR("{\"a\":[{\"suffix\":{\"bar\":\"x\"}}]}", "Unsupported suffix pattern: bar");
    ERR("{\"a\":[{\"equals-ignore-case\":[\"x\"]}]}", "equals-ignore-case match pattern must be a string");
    ERR("{\"a\":[{\"equals-ignore-case\":{\"x\":1}}]}", "equals-ignore-case match pattern must be a string");
    ERR("{\"a\":[{\"wildcard\":[\"x\"]}]}", "wildcard match pattern must be a string");
    ERR("{\"a\":[{\"wildcard\":3}]}", "wildcard match pattern must be a string");
    ERR("{\"a\":[{\"wildcard\":\"a\\\\b\"}]}", "Invalid escape character at pos 2");
    ERR("{\"a\":[{\"wildcard\":\"ab\\\\?\"}]}", "Invalid escape character at pos 3");
    ERR("{\"a\":[{\"wildcard\":\"a**\"}]}", "Consecutive wildcard characters at pos 2");
    ERR("{\"a\":[{\"wildcard\":\"arn:aws:events:us-east-1:**:event-bus/*\"}]}",
        "Consecutive wildcard characters at pos 26");
    ERR("{\"a\":[{\"wildcard\":\"*:*:*:*:*:event-bus/*\"}]}",
        "Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after "
        "a wildcard character");
    VALID("{\"a\":[{\"wildcard\":\"arn:aws:events:us-east-1:*:event-bus/*\"}]}");
    VALID("{\"a\":[{\"prefix\":\"\"}]}");
    VALID("{\"a\":[{\"wildcard\":\"\"}]}");
    VALID("{\"a\":[{\"wildcard\":\"\\\\**\"}]}");
}

static void test_errors_anything_but(void)
{
    ERR("{\"a\":[{\"anything-but\":[\"a\",1]}]}",
        "Inside anything but list, either all values are number or string, mixed type is not supported");
    ERR("{\"a\":[{\"anything-but\":[null]}]}", "Inside anything but list, start|null|boolean is not supported.");
    ERR("{\"a\":[{\"anything-but\":[true]}]}", "Inside anything but list, start|null|boolean is not supported.");
    ERR("{\"a\":[{\"anything-but\":[[\"x\"]]}]}", "Inside anything but list, start|null|boolean is not supported.");
    ERR("{\"a\":[{\"anything-but\":null}]}", "Value of anything-but must be an array or single string/number value.");
    ERR("{\"a\":[{\"anything-but\":true}]}", "Value of anything-but must be an array or single string/number value.");
    ERR("{\"a\":[{\"anything-but\":{\"prefix\":{\"equals-ignore-case\":\"x\"}}}]}",
        "Value of anything-but must be an array or single string/number value.");
    ERR("{\"a\":[{\"anything-but\":{\"suffix\":{\"equals-ignore-case\":\"x\"}}}]}",
        "Value of anything-but must be an array or single string/number value.");
    ERR("{\"a\":[{\"anything-but\":{\"foo\":\"x\"}}]}", "Unsupported anything-but pattern: foo");
    ERR("{\"a\":[{\"anything-but\":{\"numeric\":[\">\",1]}}]}", "Unsupported anything-but pattern: numeric");
    ERR("{\"a\":[{\"anything-but\":{}}]}", "Anything-But expression name not found");
    ERR("{\"a\":[{\"anything-but\":{\"prefix\":\"\"}}]}", "Null prefix/suffix not allowed");
    ERR("{\"a\":[{\"anything-but\":{\"suffix\":[\"x\",\"\"]}}]}", "Null prefix/suffix not allowed");
    ERR("{\"a\":[{\"anything-but\":{\"prefix\":1}}]}", "prefix/suffix match pattern must be a string");
    ERR("{\"a\":[{\"anything-but\":{\"suffix\":[1]}}]}", "prefix/suffix match pattern must be a string");
    ERR("{\"a\":[{\"anything-but\":{\"equals-ignore-case\":[1]}}]}",
        "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported.");
    ERR("{\"a\":[{\"anything-but\":{\"equals-ignore-case\":null}}]}",
        "Value of anything-but must be an array or single string/number value.");
    ERR("{\"a\":[{\"anything-but\":{\"wildcard\":1}}]}", "wildcard match pattern must be a string");
    ERR("{\"a\":[{\"anything-but\":{\"wildcard\":[1]}}]}", "wildcard match pattern must be a string");
    ERR("{\"a\":[{\"anything-but\":{\"wildcard\":\"a**\"}}]}", "Consecutive wildcard characters at pos 2");
    VALID("{\"a\":[{\"anything-but\":{\"wildcard\":\"\"}}]}");
    VALID("{\"a\":[{\"anything-but\":{\"prefix\":[\"a\",\"b\"]}}]}");
    VALID("{\"a\":[{\"anything-but\":[1,2.5,-3e4]}]}");
}

static void test_errors_numeric(void)
{
    ERR("{\"a\":[{\"numeric\":\">\"}]}", "Value of numeric must be an array.");
    ERR("{\"a\":[{\"numeric\":5}]}", "Value of numeric must be an array.");
    ERR("{\"a\":[{\"numeric\":[\">\",0,\">\",0]}]}", "Bad numeric range operator: >");
    ERR("{\"a\":[{\"numeric\":[\">\",0,\"=\",5]}]}", "Bad numeric range operator: =");
    ERR("{\"a\":[{\"numeric\":[\">\",0,\"<\"]}]}", "Value of < must be numeric");
    ERR("{\"a\":[{\"numeric\":[\">\",0,\"<=\",\"5\"]}]}", "Value of <= must be numeric");
    ERR("{\"a\":[{\"numeric\":[\"!=\",1]}]}", "Unrecognized numeric range operator: !=");
    ERR("{\"a\":[{\"numeric\":[1,\">\"]}]}", "Invalid member in numeric match: 1");
    ERR("{\"a\":[{\"numeric\":[\"=\",1,2]}]}", "Too many elements in numeric expression");
    ERR("{\"a\":[{\"numeric\":[\"<\",1,2]}]}", "Too many elements in numeric expression");
    ERR("{\"a\":[{\"numeric\":[\">\",0,\"<\",5,6]}]}", "Too many terms in numeric range expression");
    ERR("{\"a\":[{\"numeric\":[\"=\",\"x\"]}]}", "Value of equals must be numeric");
    ERR("{\"a\":[{\"numeric\":[\">\",\"x\"]}]}", "Value of > must be numeric");
    ERR("{\"a\":[{\"numeric\":[\">=\",null]}]}", "Value of >= must be numeric");
    ERR("{\"a\":[{\"numeric\":[\"<\",true]}]}", "Value of < must be numeric");
    ERR("{\"a\":[{\"numeric\":[\">=\",5,\"<=\",5]}]}", "Bottom must be less than top");
    ERR("{\"a\":[{\"numeric\":[\">\",6,\"<\",5]}]}", "Bottom must be less than top");
    VALID("{\"a\":[{\"numeric\":[\">\",-0.0,\"<\",5e-324]}]}");
    VALID("{\"a\":[{\"numeric\":[\"=\",1.7976931348623157e308]}]}");
}

static void test_errors_misc(void)
{
    ERR("{\"a\":[{\"exists\":\"true\"}]}", "exists match pattern must be either true or false.");
    ERR("{\"a\":[{\"exists\":1}]}", "exists match pattern must be either true or false.");
    ERR("{\"a\":[{\"exists\":null}]}", "exists match pattern must be either true or false.");
    ERR("{\"a\":[{\"cidr\":\"10.0.0.0\"}]}", "Malformed CIDR, one '/' required");
    ERR("{\"a\":[{\"cidr\":\"10.0.0.0/8/8\"}]}", "Malformed CIDR, one '/' required");
    ERR("{\"a\":[{\"cidr\":\"10.0.0.0/x\"}]}", "Malformed CIDR, mask bits must be an integer");
    ERR("{\"a\":[{\"cidr\":\"10.0.0.0/-1\"}]}", "Malformed CIDR, mask bits must not be negative");
    ERR("{\"a\":[{\"cidr\":\"foo/8\"}]}", "Nonstandard IP address: foo");
    ERR("{\"a\":[{\"cidr\":\"10.0.0.256/8\"}]}", "Invalid IP address: 10.0.0.256");
    ERR("{\"a\":[{\"cidr\":\"10.0.0.0/32\"}]}", "IPv4 mask bits must be < 32");
    ERR("{\"a\":[{\"cidr\":\"::/128\"}]}", "IPv6 mask bits must be < 128");
    ERR("{\"a\":[{\"cidr\":1}]}", "prefix match pattern must be a string");
    VALID("{\"a\":[{\"cidr\":\"10.0.0.0/31\"}]}");
    VALID("{\"a\":[{\"cidr\":\"::/127\"}]}");
    ERR("{\"$or\":{\"a\":[1]}}", "It must be an Array followed with $or.");
    ERR("{\"$or\":[{\"a\":[1]}]}", "There must have at least 2 Objects in $or relationship.");
    ERR("{\"$or\":[]}", "There must have at least 2 Objects in $or relationship.");
    ERR("{\"$or\":[{\"a\":[1]},1]}", "Only JSON object is allowed in array of $or relationship.");
    ERR("{\"$or\":[{\"a\":[1]},[1]]}", "Only JSON object is allowed in array of $or relationship.");
    ERR("{\"$or\":[{\"prefix\":[1]},{\"b\":[1]}]}", "prefix is Ruler reserved fieldName which cannot be used inside $or.");
    ERR("{\"$or\":[{\"a\":[1]},{\"numeric\":[1]}]}",
        "numeric is Ruler reserved fieldName which cannot be used inside $or.");
    ERR("{\"$or\":[{\"a\":[1]},{\"b\":{\">=\":[1]}}]}", ">= is Ruler reserved fieldName which cannot be used inside $or.");
    VALID("{\"prefix\":[1]}"); /* reserved names are fine outside $or */
    /* more than 1000 $or combinations: 11^3 */
    char buf[8192];
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "{");
    for (int k = 0; k < 3; k++) {
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\"k%d\":{\"$or\":[", k ? "," : "", k);
        for (int i = 0; i < 11; i++)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s{\"f%d\":[%d]}", i ? "," : "", i, i);
        n += (size_t)snprintf(buf + n, sizeof buf - n, "]}");
    }
    n += (size_t)snprintf(buf + n, sizeof buf - n, "}");
    ERR(buf, "The rule has too many combinations of $or: more than 1000");
    /* a number that is not a finite double */
    ERR("{\"a\":[{\"numeric\":[\">\",1e400]}]}", "Cannot compare number : 1e400");
    ERR("{\"a\":[{\"anything-but\":1e400}]}", "Cannot compare number : 1e400");
    /* the error carries the status too */
    eb_pattern *p = (eb_pattern *)1;
    eb_error err;
    CHECK(eb_pattern_compile("{}", 2, &p, &err) == EB_ERR_PATTERN);
    CHECK(p == NULL);
    CHECK(err.code == EB_ERR_PATTERN);
    /* not NUL-terminated input: only len bytes are read */
    CHECK(eb_pattern_compile("{\"a\":[1]}xyz", 9, &p, &err) == EB_OK);
    eb_pattern_free(p);
    CHECK(eb_pattern_compile("{\"a\":[1]}", 2, &p, NULL) == EB_ERR_PATTERN);
}

/* ---- machines ---------------------------------------------------------------- */

static eb_pattern *comp(const char *s)
{
    eb_pattern *p = NULL;
    eb_error err;
    if (eb_pattern_compile(s, strlen(s), &p, &err) != EB_OK)
        fprintf(stderr, "compile %s: %s\n", s, err.message);
    return p;
}

/* bitmask of keys 0..63 that match ev; -1 on error */
static long long keyset(eb_matcher *mt, const eb_snapshot *s, const char *ev, unsigned flags)
{
    const uint64_t *keys;
    size_t n;
    eb_error err;
    if (eb_match(mt, s, ev, strlen(ev), flags, &keys, &n, &err) != EB_OK)
        return -1;
    long long m = 0;
    for (size_t i = 0; i < n; i++) {
        if (keys[i] >= 63 || (m >> keys[i] & 1))
            return -2; /* out of range or reported twice */
        m |= 1LL << keys[i];
    }
    return m;
}

static void check_keys(eb_matcher *mt, const eb_snapshot *s, const char *ev, long long want, int line)
{
    long long v = keyset(mt, s, ev, 0), t = keyset(mt, s, ev, EB_MATCH_TRUSTED);
    if (v != want || t != want) {
        fprintf(stderr, "%s:%d: event %s: want keys %llx, validating %llx, trusting %llx\n", __FILE__, line, ev, want,
                v, t);
        test_checks_failed_++;
        test_cur_failed_ = 1;
    }
}
#define KEYS(s, ev, want) check_keys(mt, (s), (ev), (want), __LINE__)

static void test_machine(void)
{
    eb_machine *m = eb_machine_new();
    eb_matcher *mt = eb_matcher_new();
    eb_pattern *pa = comp("{\"a\":[\"x\"]}"), *pb = comp("{\"b\":[{\"exists\":true}]}"),
               *pc = comp("{\"a\":[{\"prefix\":\"y\"}]}"), *pall = comp("{\"z\":[{\"exists\":false}]}");
    CHECK(m && mt && pa && pb && pc && pall);

    eb_snapshot *s0 = eb_machine_snapshot(m);
    CHECK(s0 != NULL);
    CHECK(eb_snapshot_rules(s0) == 0);
    KEYS(s0, "{\"a\":\"x\"}", 0);

    CHECK(eb_machine_add(m, 1, pa) == EB_OK);
    CHECK(eb_machine_add(m, 2, pb) == EB_OK);
    eb_snapshot *s1 = eb_machine_snapshot(m);
    CHECK(eb_snapshot_rules(s1) == 2);
    KEYS(s1, "{\"a\":\"x\",\"b\":1}", 0x6);
    KEYS(s1, "{\"a\":\"x\"}", 0x2);
    KEYS(s1, "{\"a\":\"y\"}", 0);

    /* patterns stay owned by the caller: freeing them leaves the machine intact */
    eb_pattern_free(pb);
    pb = NULL;
    KEYS(s1, "{\"b\":null}", 0x4);

    /* replace key 1: same key, new pattern */
    CHECK(eb_machine_add(m, 1, pc) == EB_OK);
    eb_snapshot *s2 = eb_machine_snapshot(m);
    CHECK(eb_snapshot_rules(s2) == 2);
    KEYS(s2, "{\"a\":\"x\"}", 0);
    KEYS(s2, "{\"a\":\"yes\"}", 0x2);
    /* the old snapshot still answers the old way */
    KEYS(s1, "{\"a\":\"x\"}", 0x2);
    KEYS(s1, "{\"a\":\"yes\"}", 0);
    KEYS(s0, "{\"a\":\"x\"}", 0);

    /* remove */
    CHECK(eb_machine_remove(m, 2) == EB_OK);
    CHECK(eb_machine_remove(m, 2) == EB_ERR_NOTFOUND);
    CHECK(eb_machine_remove(m, 99) == EB_ERR_NOTFOUND);
    eb_snapshot *s3 = eb_machine_snapshot(m);
    CHECK(eb_snapshot_rules(s3) == 1);
    KEYS(s3, "{\"a\":\"yes\",\"b\":1}", 0x2);
    KEYS(s2, "{\"a\":\"yes\",\"b\":1}", 0x6);

    /* the same pattern under several keys; a rule with no required field */
    CHECK(eb_machine_add(m, 5, pa) == EB_OK);
    CHECK(eb_machine_add(m, 6, pa) == EB_OK);
    CHECK(eb_machine_add(m, 7, pall) == EB_OK);
    eb_snapshot *s4 = eb_machine_snapshot(m);
    CHECK(eb_snapshot_rules(s4) == 4);
    KEYS(s4, "{\"a\":\"x\"}", 0xE0);
    KEYS(s4, "{\"a\":\"yx\",\"z\":1}", 0x2);
    CHECK(eb_machine_remove(m, 1) == EB_OK);
    CHECK(eb_machine_remove(m, 5) == EB_OK);
    CHECK(eb_machine_remove(m, 6) == EB_OK);
    CHECK(eb_machine_remove(m, 7) == EB_OK);
    eb_snapshot *s5 = eb_machine_snapshot(m);
    CHECK(eb_snapshot_rules(s5) == 0);
    KEYS(s5, "{\"a\":\"x\"}", 0);
    /* re-adding after remove */
    CHECK(eb_machine_add(m, 1, pa) == EB_OK);
    eb_snapshot *s6 = eb_machine_snapshot(m);
    KEYS(s6, "{\"a\":\"x\"}", 0x2);
    KEYS(s4, "{\"a\":\"x\"}", 0xE0);

    /* snapshots outlive the machine */
    eb_machine_free(m);
    KEYS(s6, "{\"a\":\"x\"}", 0x2);
    KEYS(s1, "{\"a\":\"x\",\"b\":1}", 0x6);

    /* a key with a $or pattern is reported once */
    eb_machine *m2 = eb_machine_new();
    eb_pattern *por = comp("{\"$or\":[{\"a\":[\"x\"]},{\"b\":[1]}]}");
    CHECK(eb_machine_add(m2, 3, por) == EB_OK);
    eb_snapshot *t = eb_machine_snapshot(m2);
    KEYS(t, "{\"a\":\"x\",\"b\":1}", 0x8);
    /* large keys round-trip */
    CHECK(eb_machine_add(m2, UINT64_MAX, pa) == EB_OK);
    eb_snapshot *t2 = eb_machine_snapshot(m2);
    const uint64_t *keys;
    size_t n;
    CHECK(eb_match(mt, t2, "{\"a\":\"x\"}", 9, 0, &keys, &n, NULL) == EB_OK);
    CHECK(n == 2 && (keys[0] == UINT64_MAX || keys[1] == UINT64_MAX) && (keys[0] == 3 || keys[1] == 3));
    /* bad events */
    eb_error err;
    CHECK(eb_match(mt, t2, "{\"a\":", 5, 0, &keys, &n, &err) == EB_ERR_EVENT);
    CHECK(err.code == EB_ERR_EVENT);
    CHECK(eb_match(mt, t2, "[1]", 3, 0, &keys, &n, &err) == EB_ERR_EVENT);
    CHECK(eb_match(mt, t2, "[1]", 3, EB_MATCH_TRUSTED, &keys, &n, &err) == EB_ERR_EVENT);
    CHECK(eb_match(mt, t2, "", 0, 0, &keys, &n, &err) == EB_ERR_EVENT);
    CHECK(eb_match(mt, t2, "", 0, EB_MATCH_TRUSTED, &keys, &n, &err) == EB_ERR_EVENT);
    CHECK(eb_match(mt, t2, "{\"a\":\"x\"} 1", 11, 0, &keys, &n, &err) == EB_ERR_EVENT);
    CHECK(eb_match(mt, t2, "{\"a\":\"\xff\"}", 7, 0, &keys, &n, &err) == EB_ERR_EVENT);
    /* the matcher is usable after an error */
    CHECK(eb_match(mt, t2, "{\"a\":\"x\"}", 9, 0, &keys, &n, NULL) == EB_OK && n == 2);

    eb_snapshot_release(t);
    eb_snapshot_release(t2);
    eb_machine_free(m2);
    eb_pattern_free(por);
    eb_snapshot_release(s0);
    eb_snapshot_release(s1);
    eb_snapshot_release(s2);
    eb_snapshot_release(s3);
    eb_snapshot_release(s4);
    eb_snapshot_release(s5);
    eb_snapshot_release(s6);
    eb_pattern_free(pa);
    eb_pattern_free(pc);
    eb_pattern_free(pall);
    eb_matcher_free(mt);
}

/* Whether a path holds a value is recorded only at paths where a field
 * reads it (exists:false, alone or with other conditions); that follows
 * rules as they come and go. */
static void test_machine_presence(void)
{
    eb_machine *m = eb_machine_new();
    eb_matcher *mt = eb_matcher_new();
    eb_pattern *pa = comp("{\"a\":[\"x\"]}"), *pneg = comp("{\"a\":[{\"exists\":false}],\"b\":[1]}"),
               *pmix = comp("{\"a\":[{\"exists\":false},\"y\"],\"b\":[1]}");
    CHECK(m && mt && pa && pneg && pmix);
    CHECK(eb_machine_add(m, 1, pa) == EB_OK);
    eb_snapshot *s1 = eb_machine_snapshot(m);
    KEYS(s1, "{\"a\":\"x\",\"b\":1}", 0x2);
    /* exists:false arrives at a path only positive fields used */
    CHECK(eb_machine_add(m, 2, pneg) == EB_OK);
    eb_snapshot *s2 = eb_machine_snapshot(m);
    KEYS(s2, "{\"a\":\"x\",\"b\":1}", 0x2);
    KEYS(s2, "{\"a\":\"q\",\"b\":1}", 0);
    KEYS(s2, "{\"a\":7,\"b\":1}", 0);
    KEYS(s2, "{\"a\":null,\"b\":1}", 0);
    KEYS(s2, "{\"b\":1}", 0x4);
    /* the mixed form next to it; then the pure one goes */
    CHECK(eb_machine_add(m, 3, pmix) == EB_OK);
    CHECK(eb_machine_remove(m, 2) == EB_OK);
    eb_snapshot *s3 = eb_machine_snapshot(m);
    KEYS(s3, "{\"a\":\"q\",\"b\":1}", 0);
    KEYS(s3, "{\"a\":\"y\",\"b\":1}", 0x8);
    KEYS(s3, "{\"a\":[\"q\",\"y\"],\"b\":1}", 0x8);
    KEYS(s3, "{\"b\":1}", 0x8);
    /* the last reader of a's presence goes, then comes back */
    CHECK(eb_machine_remove(m, 3) == EB_OK);
    eb_snapshot *s4 = eb_machine_snapshot(m);
    KEYS(s4, "{\"a\":\"x\",\"b\":1}", 0x2);
    KEYS(s4, "{\"b\":1}", 0);
    CHECK(eb_machine_add(m, 2, pneg) == EB_OK);
    eb_snapshot *s5 = eb_machine_snapshot(m);
    KEYS(s5, "{\"a\":\"q\",\"b\":1}", 0);
    KEYS(s5, "{\"b\":1}", 0x4);
    /* older snapshots keep their own answers */
    KEYS(s2, "{\"a\":\"q\",\"b\":1}", 0);
    KEYS(s1, "{\"b\":1}", 0);
    eb_snapshot_release(s1);
    eb_snapshot_release(s2);
    eb_snapshot_release(s3);
    eb_snapshot_release(s4);
    eb_snapshot_release(s5);
    eb_machine_free(m);
    eb_matcher_free(mt);
    eb_pattern_free(pa);
    eb_pattern_free(pneg);
    eb_pattern_free(pmix);
}

/* Objects whose members patterns read from 1 to 12 names (the reader finds
 * a name by scanning, by a bucket table, or by a hash index): one rule per
 * name; an event holding every name, names no pattern reads and near misses
 * (same first 8 bytes, other length, other tail). */
static void test_machine_many_names(void)
{
    /* BLKLOT and ODD_EVEN share a bucket, so do MAPBLKLOT and type */
    static const char *names[] = {"a", "MAPBLKLOT", "BLKLOT", "ODD_EVEN", "BLOCK_NUM", "LOT_NUM", "FROM_ST",
                                  "STREET_NAME_LONG", "TO_ST", "b", "STREET_NAME_LONGER", "type"};
    for (size_t n = 1; n <= 12; n++) {
        eb_machine *m = eb_machine_new();
        eb_matcher *mt = eb_matcher_new();
        CHECK(m && mt);
        char buf[256], ev[2048] = "{\"o\":{\"zz\":1,\"STREET_NAME_LONGx\":\"v\",\"MAPBLKLOTS\":\"v\",\"TYPE\":\"v\"";
        for (size_t i = 0; i < n; i++) {
            snprintf(buf, sizeof buf, "{\"o\":{\"%s\":[\"v%zu\"]}}", names[i], i);
            eb_pattern *p = comp(buf);
            CHECK(p && eb_machine_add(m, i, p) == EB_OK);
            eb_pattern_free(p);
            snprintf(ev + strlen(ev), sizeof ev - strlen(ev), ",\"%s\":\"v%zu\",\"%s_\":\"v%zu\"", names[i], i,
                     names[i], i);
        }
        strcat(ev, "}}");
        eb_snapshot *s = eb_machine_snapshot(m);
        KEYS(s, ev, (1LL << n) - 1);
        KEYS(s, "{\"o\":{\"STREET_NAME_LONGx\":\"v7\",\"MAPBLKLOTS\":\"v1\",\"TYPE\":\"v11\",\"a_\":\"v0\"}}", 0);
        if (n > 7) {
            /* one name alone, among others no pattern reads */
            KEYS(s, "{\"o\":{\"x\":1,\"STREET_NAME_LONG\":\"v7\",\"y\":[2]}}", 1LL << 7);
        }
        eb_snapshot_release(s);
        eb_machine_free(m);
        eb_matcher_free(mt);
    }
}

/* ---- event depth limit ------------------------------------------------------------ */

/* An event nested `depth` deep (the root object is depth 1):
 * {"a":{"a":...{"a":1}...},"z":"x"} with depth '{' in total.  The "z" field
 * comes after the deep part, so a reader has to get past it. */
static char *deep_event(size_t depth, size_t *len)
{
    char *b = malloc(depth * 6 + 32), *p = b;
    *p++ = '{';
    for (size_t i = 1; i < depth; i++) {
        memcpy(p, "\"a\":{", 5);
        p += 5;
    }
    memcpy(p, "\"a\":1", 5);
    p += 5;
    for (size_t i = 1; i < depth; i++)
        *p++ = '}';
    memcpy(p, ",\"z\":\"x\"}", 9);
    p += 9;
    *len = (size_t)(p - b);
    return b;
}

/* Same depth, built from arrays below the root: {"z":"x","a":[[[...1...]]]}
 * ("z" first this time). */
static char *deep_array_event(size_t depth, size_t *len)
{
    char *b = malloc(depth * 2 + 32), *p = b;
    memcpy(p, "{\"z\":\"x\",\"a\":", 13);
    p += 13;
    for (size_t i = 1; i < depth; i++)
        *p++ = '[';
    *p++ = '1';
    for (size_t i = 1; i < depth; i++)
        *p++ = ']';
    *p++ = '}';
    *len = (size_t)(p - b);
    return b;
}

/* -1 on EB_ERR_EVENT, else whether rule 1 matched */
static int depth_match(eb_matcher *mt, const eb_snapshot *s, const char *ev, size_t len, unsigned flags)
{
    const uint64_t *keys;
    size_t n;
    eb_error err;
    eb_status st = eb_match(mt, s, ev, len, flags, &keys, &n, &err);
    if (st == EB_ERR_EVENT)
        return -1;
    if (st != EB_OK)
        return -2;
    return n == 1;
}

static void test_depth_limit(void)
{
    static const char *pats[] = {"{\"z\":[\"x\"]}", "{\"q\":[{\"exists\":false}]}", "{\"a\":[1]}"};
    static const size_t depths[] = {999, 1000, 1001, 100000};
    for (size_t pi = 0; pi < sizeof pats / sizeof *pats; pi++) {
        eb_machine *m = eb_machine_new();
        eb_pattern *p = comp(pats[pi]);
        CHECK(eb_machine_add(m, 1, p) == EB_OK);
        eb_snapshot *s = eb_machine_snapshot(m);
        eb_matcher *mt = eb_matcher_new();
        for (int arr = 0; arr < 2; arr++) {
            for (size_t di = 0; di < 4; di++) {
                size_t d = depths[di], len;
                char *ev = arr ? deep_array_event(d, &len) : deep_event(d, &len);
                /* "a":1 is only at path "a" in the array shape */
                int want = d <= 1000 ? (pi == 2 ? arr : 1) : -1;
                for (unsigned fl = 0; fl <= EB_MATCH_TRUSTED; fl++) {
                    int got = depth_match(mt, s, ev, len, fl);
                    /* Trusting mode may stop reading once no pattern needs
                     * more (here: "z" comes first and is all {"z":["x"]}
                     * needs), so it need not see the too-deep part. */
                    int early = fl && arr && pi == 0 && want == -1 && got == 1;
                    if (got != want && !early) {
                        fprintf(stderr, "depth %zu (%s) pattern %s flags %u: want %d got %d\n", d,
                                arr ? "arrays" : "objects", pats[pi], fl, want, got);
                        CHECK(got == want);
                    }
                }
                if (d <= 1001 && pi < 2) { /* the reference agrees below the limit */
                    json_t *j = ref_parse(ev, len);
                    CHECK(j != NULL);
                    if (j && d <= 1000)
                        CHECK(ref_match(p, j) == want);
                    json_decref(j);
                }
                eb_error err;
                eb_status cs = eb_json_check(ev, len, 1000, &err);
                CHECK(cs == (d <= 1000 ? EB_OK : EB_ERR_EVENT));
                CHECK(eb_json_check(ev, len, 0, &err) == cs); /* 0 = the default */
                CHECK(eb_json_check(ev, len, (unsigned)d, &err) == EB_OK);
                CHECK(eb_json_check(ev, len, (unsigned)d - 1, &err) == EB_ERR_EVENT);
                free(ev);
            }
        }
        /* eb_matcher_set_max_depth: exact boundary for a few limits */
        static const unsigned limits[] = {1, 2, 10, 999, 1000, 1001, 5000, 100000};
        for (size_t li = 0; li < sizeof limits / sizeof *limits; li++) {
            unsigned lim = limits[li];
            eb_matcher_set_max_depth(mt, lim);
            size_t tests[] = {lim - 1, lim, lim + 1};
            for (size_t k = 0; k < 3; k++) {
                size_t d = tests[k], len;
                if (d < 1)
                    continue;
                for (int arr = 0; arr < 2; arr++) {
                    if (arr && d < 2)
                        continue;
                    char *ev = arr ? deep_array_event(d, &len) : deep_event(d, &len);
                    int want = d <= lim ? (pi == 2 ? (arr || d == 1) : 1) : -1;
                    if (d >= 50000) /* if this crashes, the reader recursed per nesting level */
                        fprintf(stderr, "(matching a %zu-deep %s event, limit %u, pattern %s)\n", d,
                                arr ? "array" : "object", lim, pats[pi]);
                    for (unsigned fl = 0; fl <= EB_MATCH_TRUSTED; fl++) {
                        int got = depth_match(mt, s, ev, len, fl);
                        /* Trusting mode may stop reading once no pattern needs
                         * more (here: "z" comes first and is all {"z":["x"]}
                         * needs), so it need not see the too-deep part. */
                        int early = fl && arr && pi == 0 && want == -1 && got == 1;
                        if (got != want && !early) {
                            fprintf(stderr, "limit %u depth %zu (%s) pattern %s flags %u: want %d got %d\n", lim, d,
                                    arr ? "arrays" : "objects", pats[pi], fl, want, got);
                            CHECK(got == want);
                        }
                    }
                    free(ev);
                }
            }
        }
        /* above EB_MAX_MAX_DEPTH is clamped: 100,001 deep is still rejected */
        eb_matcher_set_max_depth(mt, EB_MAX_MAX_DEPTH + 50);
        size_t len;
        char *ev = deep_event(EB_MAX_MAX_DEPTH + 1, &len);
        CHECK(depth_match(mt, s, ev, len, 0) == -1);
        CHECK(depth_match(mt, s, ev, len, EB_MATCH_TRUSTED) == -1);
        free(ev);
        eb_matcher_free(mt);
        eb_snapshot_release(s);
        eb_machine_free(m);
        eb_pattern_free(p);
    }
}

int main(void)
{
    RUN(test_exact_string);
    RUN(test_exact_number);
    RUN(test_exact_bool_null);
    RUN(test_prefix);
    RUN(test_suffix);
    RUN(test_equals_ignore_case);
    RUN(test_prefix_suffix_eic);
    RUN(test_wildcard);
    RUN(test_anything_but);
    RUN(test_numeric);
    RUN(test_cidr);
    RUN(test_ip_literal);
    RUN(test_exists);
    RUN(test_or);
    RUN(test_dotted_keys);
    RUN(test_pinned_array_consistency);
    RUN(test_pinned_exists);
    RUN(test_pinned_mixed_exists);
    RUN(test_pinned_duplicate_keys);
    RUN(test_errors_structure);
    RUN(test_errors_string_ops);
    RUN(test_errors_anything_but);
    RUN(test_errors_numeric);
    RUN(test_errors_misc);
    RUN(test_machine);
    RUN(test_machine_presence);
    RUN(test_machine_many_names);
    RUN(test_depth_limit);
    return TEST_REPORT();
}
