/* Tests for src/deliver/transform.c: the AWS-recorded transformer corpus
 * ($EB_SHARED/conformance/transformers.jsonl, every line), then JSONPath
 * forms, value spelling, templates, predefined variables, SKIP cases,
 * HttpParameters dynamic values, the CloudWatch Logs rule, malformed input
 * and concurrent rendering. */
#define _GNU_SOURCE
#include "corpus.h"
#include "deliver/transform.h"
#include "test.h"

#include <ebridge/pattern.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define INGEST_MS 1759921810123LL /* 2025-10-08T11:10:10.123Z */

static const char EVENT[] =
    "{\"version\":\"0\",\"id\":\"5f1c2a7e-8b3d-4e6f-9a01-2b3c4d5e6f70\",\"detail-type\":\"core.update\","
    "\"source\":\"my.app\",\"account\":\"123456789012\",\"time\":\"2025-10-08T11:10:10Z\",\"region\":\"us-east-1\","
    "\"resources\":[\"arn:a\",\"arn:b\"],\"detail\":{\"s\":\"abc\",\"n\":42.5,\"e\":1e3,"
    "\"big\":123456789012345678901234567890,\"t\":true,\"z\":null,\"o\":{\"k\":\"v\",\"a\":[1,\"x\"]},"
    "\"l\":[\"A\",\"B\"],\"items\":[{\"id\":1,\"p\":{\"q\":\"r\"}},{\"id\":2},{\"x\":3}]}}";

/* ---- helpers -------------------------------------------------------------- */

static eb_input_ctx ctx_for(const char *event)
{
    eb_input_ctx c = {event, strlen(event), "arn:aws:events:us-east-1:123456789012:rule/test-rule", "test-rule",
                      INGEST_MS};
    return c;
}

/* Compile target_json and render it for event: the payload (malloc'd) or
 * NULL; *rc gets the render result (or 99 when compiling failed, with the
 * message in cerr when given). */
static char *xform_ctx(const char *target_json, const eb_input_ctx *ctx, int *rc, char *cerr, size_t cerrlen)
{
    json_error_t jerr;
    json_t *t = json_loads(target_json, 0, &jerr);
    if (!t) {
        fprintf(stderr, "bad test target %s: %s\n", target_json, jerr.text);
        *rc = 98;
        return NULL;
    }
    char err[512] = "";
    eb_input *in = eb_input_compile(t, err, sizeof err);
    json_decref(t);
    if (cerr)
        snprintf(cerr, cerrlen, "%s", err);
    if (!in) {
        *rc = 99;
        return NULL;
    }
    eb_buf out = {0};
    eb_buf_puts(&out, "prefix|"); /* render appends */
    char why[256] = "";
    *rc = eb_input_render(in, ctx, &out, why, sizeof why);
    eb_input_free(in);
    char *res = NULL;
    if (*rc == EB_INPUT_OK)
        res = strdup(out.p + 7);
    else if (out.n != 7 || !why[0])
        *rc = 97; /* on SKIP/ERR the buffer must be as it was, with a reason */
    eb_buf_free(&out);
    return res;
}

static char *xform(const char *target_json, const char *event, int *rc)
{
    eb_input_ctx c = ctx_for(event);
    return xform_ctx(target_json, &c, rc, NULL, 0);
}

/* CHECK that target_json renders EVENT to exactly want. */
#define CHECK_XFORM(target_json, want)              \
    do {                                            \
        int rc_;                                    \
        char *got_ = xform(target_json, EVENT, &rc_); \
        CHECK(rc_ == EB_INPUT_OK);                  \
        CHECK_STR(got_, want);                      \
        free(got_);                                 \
    } while (0)

#define CHECK_SKIP(target_json)                      \
    do {                                             \
        int rc_;                                     \
        char *got_ = xform(target_json, EVENT, &rc_); \
        CHECK(rc_ == EB_INPUT_SKIP);                 \
        CHECK(got_ == NULL);                         \
        free(got_);                                  \
    } while (0)

/* A transformer target from a map (JSON object text) and a template. */
static char *tr_target(const char *map, const char *tpl)
{
    json_t *m = json_loads(map, 0, NULL);
    json_t *t = json_pack("{s:s, s:s, s:{s:o, s:s}}", "Id", "t1", "Arn", "arn:aws:sqs:us-east-1:123456789012:q",
                          "InputTransformer", "InputPathsMap", m, "InputTemplate", tpl);
    char *s = json_dumps(t, 0);
    json_decref(t);
    return s;
}

static char *tpl_render(const char *map, const char *tpl, const char *event, int *rc)
{
    char *target = tr_target(map, tpl);
    char *r = xform(target, event, rc);
    free(target);
    return r;
}

#define CHECK_TPL(map, tpl, want)                           \
    do {                                                    \
        int rc_;                                            \
        char *got_ = tpl_render(map, tpl, EVENT, &rc_);     \
        CHECK(rc_ == EB_INPUT_OK);                          \
        CHECK_STR(got_, want);                              \
        free(got_);                                         \
    } while (0)

#define CHECK_TPL_SKIP(map, tpl)                            \
    do {                                                    \
        int rc_;                                            \
        char *got_ = tpl_render(map, tpl, EVENT, &rc_);     \
        CHECK(rc_ == EB_INPUT_SKIP);                        \
        free(got_);                                         \
    } while (0)

/* Compile error for target_json: the message, in a static buffer. */
static const char *compile_error(const char *target_json)
{
    static char err[512];
    json_t *t = json_loads(target_json, 0, NULL);
    err[0] = 0;
    eb_input *in = eb_input_compile(t, err, sizeof err);
    if (in) {
        snprintf(err, sizeof err, "(compiled)");
        eb_input_free(in);
    }
    json_decref(t);
    return err;
}

/* eval path over json: compact result text, "(none)" or "(error)". */
static char *path_eval(const char *path, const char *json)
{
    char err[128];
    eb_jsonpath *jp = eb_jsonpath_compile(path, strlen(path), err, sizeof err);
    if (!jp)
        return strdup("(bad path)");
    eb_buf b = {0};
    int r = eb_jsonpath_eval(jp, json, strlen(json), &b);
    char *res = strdup(r > 0 ? (b.p ? b.p : "") : r == 0 ? "(none)" : "(error)");
    if (r <= 0)
        CHECK(b.n == 0);
    eb_buf_free(&b);
    eb_jsonpath_free(jp);
    return res;
}

#define CHECK_PATH(path, json, want)       \
    do {                                   \
        char *got_ = path_eval(path, json); \
        CHECK_STR(got_, want);             \
        free(got_);                        \
    } while (0)

static int is_iso8601_utc(const char *s, size_t n)
{
    /* YYYY-MM-DDThh:mm:ss[.f+]Z */
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    if (n < 20)
        return 0;
    for (size_t i = 0; i < 19; i++)
        if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i])
            return 0;
    size_t i = 19;
    if (s[i] == '.') {
        i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    return i + 1 == n && s[i] == 'Z';
}

#define WILD_TIME "<<INGESTION_TIME>>"

/* Structural equality where an expected string "<<INGESTION_TIME>>" matches
 * any ISO-8601 UTC string.  Numbers compare by value (both parsed as reals). */
static int json_equal_wild(const json_t *want, const json_t *got)
{
    if (json_is_string(want) && !strcmp(json_string_value(want), WILD_TIME))
        return json_is_string(got) && is_iso8601_utc(json_string_value(got), json_string_length(got));
    if (json_is_object(want)) {
        if (!json_is_object(got) || json_object_size(want) != json_object_size(got))
            return 0;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)want, k, v) if (!json_equal_wild(v, json_object_get(got, k))) return 0;
        return 1;
    }
    if (json_is_array(want)) {
        if (!json_is_array(got) || json_array_size(want) != json_array_size(got))
            return 0;
        for (size_t i = 0; i < json_array_size(want); i++)
            if (!json_equal_wild(json_array_get(want, i), json_array_get(got, i)))
                return 0;
        return 1;
    }
    return got && json_equal((json_t *)want, (json_t *)got);
}

/* Exact comparison with at most one <<INGESTION_TIME>> token in want. */
static int exact_wild(const char *want, const char *got)
{
    const char *w = strstr(want, WILD_TIME);
    if (!w)
        return !strcmp(want, got);
    size_t pre = (size_t)(w - want), tl = strlen(WILD_TIME);
    const char *suf = w + tl;
    size_t gl = strlen(got), sl = strlen(suf);
    if (gl < pre + sl || strncmp(got, want, pre) || strcmp(got + gl - sl, suf))
        return 0;
    return is_iso8601_utc(got + pre, gl - sl - pre);
}

/* ---- the AWS-recorded corpus ---------------------------------------------- */

static int corpus_case(const json_t *c, const char *event, int *outcome_checked)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    const char *expect = json_string_value(json_object_get(c, "expect"));
    const json_t *cx = json_object_get(c, "context");
    const char *tid = json_string_value(json_object_get(cx, "target_id"));
    json_t *target = json_pack("{s:s, s:s}", "Id", tid ? tid : "test-target", "Arn",
                               "arn:aws:sqs:us-east-1:123456789012:test-queue");
    if (json_object_get(c, "input"))
        json_object_set(target, "Input", json_object_get(c, "input"));
    if (json_object_get(c, "input_path"))
        json_object_set(target, "InputPath", json_object_get(c, "input_path"));
    if (json_object_get(c, "input_transformer"))
        json_object_set(target, "InputTransformer", json_object_get(c, "input_transformer"));
    int ok = 0;
    char err[512] = "";
    eb_input *in = eb_input_compile(target, err, sizeof err);
    if (!strcmp(expect, "rejected")) {
        const char *want = json_string_value(json_object_get(json_object_get(c, "aws_error"), "message"));
        char verr[512] = "";
        int v = eb_input_validate(target, verr, sizeof verr);
        ok = !in && v == -1 && want && !strcmp(err, want) && !strcmp(verr, want);
        if (!ok)
            fprintf(stderr, "  %s: compile %s, message \"%s\" / \"%s\", want \"%s\"\n", name, in ? "ok" : "failed", err,
                    verr, want ? want : "?");
        goto done;
    }
    if (!in || eb_input_validate(target, err, sizeof err)) {
        fprintf(stderr, "  %s: compile failed: %s\n", name, err);
        goto done;
    }
    const char *rarn = json_string_value(json_object_get(cx, "rule_arn"));
    const char *rname = json_string_value(json_object_get(cx, "rule_name"));
    eb_input_ctx ctx = {event, strlen(event), rarn ? rarn : "arn:aws:events:us-east-1:123456789012:rule/test-rule",
                        rname ? rname : "test-rule", INGEST_MS};
    eb_buf out = {0};
    char why[256] = "";
    int rc = eb_input_render(in, &ctx, &out, why, sizeof why);
    const char *got = out.p ? out.p : "";
    if (!strcmp(expect, "no-delivery")) {
        ok = rc == EB_INPUT_SKIP && out.n == 0;
        if (!ok)
            fprintf(stderr, "  %s: want no delivery, got rc %d: %s\n", name, rc, got);
    } else if (rc != EB_INPUT_OK) {
        fprintf(stderr, "  %s: rc %d (%s)\n", name, rc, why);
    } else {
        const char *want = json_string_value(json_object_get(c, "expect_payload"));
        const char *cmp = json_string_value(json_object_get(c, "compare"));
        if (!strcmp(cmp, "exact")) {
            ok = exact_wild(want, got);
        } else {
            json_t *w = json_loads(want, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
            json_t *g = json_loadb(got, out.n, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
            ok = w && g && json_equal_wild(w, g);
            json_decref(w);
            json_decref(g);
        }
        if (!ok)
            fprintf(stderr, "  %s (%s):\n    got:  %s\n    want: %s\n", name, cmp, got, want);
    }
    ++*outcome_checked;
    eb_buf_free(&out);
done:
    eb_input_free(in);
    json_decref(target);
    return ok;
}

static void test_corpus(void)
{
    json_t *all = load_shared_jsonl("conformance/transformers.jsonl");
    CHECK(all != NULL);
    if (!all)
        return;
    CHECK(json_array_size(all) == 38);
    size_t i, passed = 0, passed_raw = 0, raw_runs = 0;
    int rendered = 0;
    json_t *c;
    json_array_foreach(all, i, c) {
        /* the event as the store holds it: compact, in the recorded order */
        const char *raw = json_string_value(json_object_get(c, "event"));
        eb_buf stored = {0};
        CHECK(raw && eb_jsontext_compact(&stored, raw, strlen(raw)) == 0);
        passed += corpus_case(c, stored.p ? stored.p : "", &rendered);
        /* and the recorded text itself, spaces included, wherever the
         * payload does not depend on the event's spelling */
        int is_default = !json_object_get(c, "input") && !json_object_get(c, "input_path") &&
                         !json_object_get(c, "input_transformer");
        if (!is_default) {
            int dummy = 0;
            raw_runs++;
            passed_raw += corpus_case(c, raw, &dummy);
        }
        eb_buf_free(&stored);
    }
    printf("transformers corpus: %zu/%zu passed (stored form), %zu/%zu passed (recorded text), %d rendered\n", passed,
           json_array_size(all), passed_raw, raw_runs, rendered);
    CHECK(passed == 38);
    CHECK(passed_raw == raw_runs);
    CHECK(rendered == 36);
    json_decref(all);
}

/* ---- JSONPath ------------------------------------------------------------- */

static void test_path_forms(void)
{
    const char *doc = "{\"a\":{\"b-c\":{\"d_e\":1,\"f/g\":[10,20,{\"h\":\"x\"}]}},\"arr\":[[1,2],[3,4]],\"k\":\"v\","
                      "\"9\":\"nine\",\"sp ace\":\"s\",\"\":\"empty\"}";
    CHECK_PATH("$", doc, doc);
    CHECK_PATH("$.a.b-c.d_e", doc, "1");
    CHECK_PATH("$.a.b-c.f/g", doc, "[10,20,{\"h\":\"x\"}]");
    CHECK_PATH("$.a.b-c.f/g[1]", doc, "20");
    CHECK_PATH("$.a.b-c.f/g[2].h", doc, "\"x\"");
    CHECK_PATH("$.a.b-c.f/g[-1].h", doc, "\"x\"");
    CHECK_PATH("$.a.b-c.f/g[-3]", doc, "10");
    CHECK_PATH("$['a'][\"b-c\"].d_e", doc, "1");
    CHECK_PATH("$['sp ace']", doc, "\"s\"");
    CHECK_PATH("$['']", doc, "\"empty\"");
    CHECK_PATH("$.9", doc, "\"nine\"");
    CHECK_PATH("$.arr[1][0]", doc, "3");
    /* wildcards: a flat array of every match, in document order */
    CHECK_PATH("$.arr[*]", doc, "[[1,2],[3,4]]");
    CHECK_PATH("$.arr[*][0]", doc, "[1,3]");
    CHECK_PATH("$.arr[*][*]", doc, "[1,2,3,4]");
    CHECK_PATH("$.arr.*[1]", doc, "[2,4]");
    CHECK_PATH("$.a.*", doc, "[{\"d_e\":1,\"f/g\":[10,20,{\"h\":\"x\"}]}]");
    CHECK_PATH("$.a.*.f/g[*].h", doc, "[\"x\"]");
    CHECK_PATH("$.nope[*]", doc, "[]");
    CHECK_PATH("$.k[*]", doc, "[]");
    CHECK_PATH("$.*.nope", doc, "[]");
    /* nothing selected */
    CHECK_PATH("$.nope", doc, "(none)");
    CHECK_PATH("$.a[0]", doc, "(none)");
    CHECK_PATH("$.arr.x", doc, "(none)");
    CHECK_PATH("$.arr[2]", doc, "(none)");
    CHECK_PATH("$.arr[-3]", doc, "(none)");
    CHECK_PATH("$.k.x", doc, "(none)");
    CHECK_PATH("$.A", doc, "(none)"); /* names are case-sensitive */
    /* duplicate keys: the last one wins */
    CHECK_PATH("$.d", "{\"d\":1,\"x\":0,\"d\":2}", "2");
    /* whitespace in the document is not copied */
    CHECK_PATH("$.a", "{ \"a\" : { \"b\" : [ 1 , \"x y\" ] } }", "{\"b\":[1,\"x y\"]}");
    CHECK_PATH("$.a.b[*]", "{ \"a\" : { \"b\" : [ 1 , \"x y\" ] } }", "[1,\"x y\"]");
    /* scalar and non-object roots */
    CHECK_PATH("$", " 7 ", "7");
    CHECK_PATH("$[0]", "[\"q\"]", "\"q\"");

    /* syntax errors */
    const char *bad[] = {"", "a", "detail", "$.", "$..a", "$[", "$[]", "$[abc]", "$[1", "$.a b", "$['a", "$['a'",
                         "$.*x", "$[*", "$.a*", "$ .a", "$.a.", "$[1.5]", "$[--1]", "$[+1]", "$[\"a']", "$.a[0]x",
                         "$[1234567890123456789]", "$.a\\b", "$.\"a\""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[128] = "";
        eb_jsonpath *jp = eb_jsonpath_compile(bad[i], strlen(bad[i]), err, sizeof err);
        if (jp)
            fprintf(stderr, "path %s compiled\n", bad[i]);
        CHECK(jp == NULL);
        CHECK(err[0] != 0);
        eb_jsonpath_free(jp);
    }
    /* the step limit */
    eb_buf p = {0};
    eb_buf_putc(&p, '$');
    for (int i = 0; i < EB_JSONPATH_MAX_STEPS; i++)
        eb_buf_puts(&p, ".a");
    eb_jsonpath *jp = eb_jsonpath_compile(p.p, p.n, NULL, 0);
    CHECK(jp != NULL);
    eb_jsonpath_free(jp);
    eb_buf_puts(&p, ".a");
    jp = eb_jsonpath_compile(p.p, p.n, NULL, 0);
    CHECK(jp == NULL);
    eb_buf_free(&p);
    /* find vs eval, multi */
    jp = eb_jsonpath_compile("$.x[*]", 6, NULL, 0);
    const char *v;
    size_t vn;
    CHECK(jp && eb_jsonpath_is_multi(jp));
    CHECK(jp && eb_jsonpath_find(jp, "{}", 2, &v, &vn) == -1);
    eb_jsonpath_free(jp);
    jp = eb_jsonpath_compile("$.x", 3, NULL, 0);
    CHECK(jp && !eb_jsonpath_is_multi(jp));
    CHECK(jp && eb_jsonpath_find(jp, "{\"x\": 1.50 }", 12, &v, &vn) == 1 && vn == 4 && !memcmp(v, "1.50", 4));
    eb_jsonpath_free(jp);
}

static void test_deep_and_large(void)
{
    /* 200 nested objects and a 200-step path */
    eb_buf doc = {0}, path = {0};
    eb_buf_putc(&path, '$');
    for (int i = 0; i < 200; i++) {
        eb_buf_puts(&doc, "{\"a\":");
        eb_buf_puts(&path, ".a");
    }
    eb_buf_puts(&doc, "\"deep\"");
    for (int i = 0; i < 200; i++)
        eb_buf_putc(&doc, '}');
    char *got = path_eval(path.p, doc.p);
    CHECK_STR(got, "\"deep\"");
    free(got);
    eb_buf_puts(&path, ".b");
    got = path_eval(path.p, doc.p);
    CHECK_STR(got, "(none)");
    free(got);
    /* 100000 nested arrays: skipped without recursion */
    eb_buf_free(&doc);
    eb_buf_puts(&doc, "{\"x\":");
    for (int i = 0; i < 100000; i++)
        eb_buf_putc(&doc, '[');
    for (int i = 0; i < 100000; i++)
        eb_buf_putc(&doc, ']');
    eb_buf_puts(&doc, ",\"y\":5}");
    got = path_eval("$.y", doc.p);
    CHECK_STR(got, "5");
    free(got);
    got = path_eval("$.*", doc.p); /* the deep value compacted: no recursion either */
    CHECK(got && strlen(got) == 200000 + 4);
    free(got);
    eb_buf_free(&doc);
    eb_buf_free(&path);
    /* a 1 MB event: the last member is found */
    eb_buf_puts(&doc, "{\"detail\":{\"pad\":\"");
    for (int i = 0; i < 1 << 20; i++)
        eb_buf_putc(&doc, i % 97 == 0 ? ' ' : 'p');
    eb_buf_puts(&doc, "\",\"arr\":[");
    for (int i = 0; i < 10000; i++)
        eb_buf_printf(&doc, "%s{\"v\":%d}", i ? "," : "", i);
    eb_buf_puts(&doc, "],\"last\":\"L\"}}");
    got = path_eval("$.detail.last", doc.p);
    CHECK_STR(got, "\"L\"");
    free(got);
    got = path_eval("$.detail.arr[9999].v", doc.p);
    CHECK_STR(got, "9999");
    free(got);
    got = path_eval("$.detail.arr[*].v", doc.p);
    CHECK(got && got[0] == '[' && strstr(got, ",9998,9999]") != NULL);
    free(got);
    eb_buf_free(&doc);
}

/* ---- value spelling --------------------------------------------------------- */

static void test_jsontext(void)
{
    eb_buf b = {0};
    const char *sp = " { \"a\" : [ 1 , 2.50 , \"x  y\" ] , \"b\":{ } } ";
    CHECK(eb_jsontext_compact(&b, sp, strlen(sp)) == 0);
    CHECK_STR(b.p, "{\"a\":[1,2.50,\"x  y\"],\"b\":{}}");
    b.n = 0;
    const char *v = "{\"a\":\"b c\",\"d\":[\"x\",1,true,null,{\"e\":\"q\\\"uote\\u00e9\"}]}";
    CHECK(eb_jsontext_plain(&b, v, strlen(v)) == 0);
    CHECK_STR(b.p, "{a:b c,d:[x,1,true,null,{e:q\"uote\xc3\xa9}]}");
    b.n = 0;
    CHECK(eb_jsontext_plain(&b, "\"s\"", 3) == 0);
    CHECK_STR(b.p, "s");
    /* malformed: -1 and the buffer untouched */
    eb_buf_free(&b);
    eb_buf_puts(&b, "keep");
    const char *bad[] = {"", " ", "{\"a\":1", "\"abc", "[1,2", "{} x", "\"a\" \"b\"", "}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK(eb_jsontext_compact(&b, bad[i], strlen(bad[i])) == -1);
        CHECK(eb_jsontext_plain(&b, bad[i], strlen(bad[i])) == -1);
        CHECK(b.n == 4 && !strcmp(b.p, "keep"));
    }
    eb_buf_free(&b);
}

static void test_unicode_and_escapes(void)
{
    const char *ev = "{\"detail\":{\"s\":\"caf\\u00e9 \\\"q\\\" \\\\ tab\\t \\ud83d\\ude00 lone\\ud800 \\/ \xe2\x82\xac\","
                     "\"k\\u0065y\":5,\"nl\":\"a\\nb\",\"o\":{\"\\u00fc\":\"\\u00e4\"}}}";
    int rc;
    /* InputPath: the string literal as written (a valid JSON string) */
    char *got = xform("{\"Id\":\"t\",\"InputPath\":\"$.detail.s\"}", ev, &rc);
    CHECK(rc == EB_INPUT_OK);
    CHECK_STR(got, "\"caf\\u00e9 \\\"q\\\" \\\\ tab\\t \\ud83d\\ude00 lone\\ud800 \\/ \xe2\x82\xac\"");
    free(got);
    /* an escaped key is matched by its decoded name */
    got = xform("{\"Id\":\"t\",\"InputPath\":\"$.detail.key\"}", ev, &rc);
    CHECK_STR(got, "5");
    free(got);
    got = xform("{\"Id\":\"t\",\"InputPath\":\"$.detail.o['\xc3\xbc']\"}", ev, &rc);
    CHECK_STR(got, "\"\\u00e4\"");
    free(got);
    /* string template: decoded text, lone surrogate -> U+FFFD, no escaping */
    got = tpl_render("{\"s\":\"$.detail.s\"}", "\"[<s>]\"", ev, &rc);
    CHECK(rc == EB_INPUT_OK);
    CHECK_STR(got, "\"[caf\xc3\xa9 \"q\" \\ tab\t \xf0\x9f\x98\x80 lone\xef\xbf\xbd / \xe2\x82\xac]\"");
    free(got);
    got = tpl_render("{\"o\":\"$.detail.o\"}", "\"<o>\"", ev, &rc);
    CHECK_STR(got, "\"{\xc3\xbc:\xc3\xa4}\"");
    free(got);
    /* JSON template, unquoted: the literal as written, still valid JSON */
    got = tpl_render("{\"s\":\"$.detail.s\"}", "{\"v\": <s>}", ev, &rc);
    CHECK(rc == EB_INPUT_OK);
    CHECK_STR(got, "{\"v\": \"caf\\u00e9 \\\"q\\\" \\\\ tab\\t \\ud83d\\ude00 lone\\ud800 \\/ \xe2\x82\xac\"}");
    free(got);
    /* JSON template, quoted: the raw text breaks the JSON (documented) */
    got = tpl_render("{\"s\":\"$.detail.s\"}", "{\"v\": \"<s>\"}", ev, &rc);
    CHECK(rc == EB_INPUT_SKIP && got == NULL);
    got = tpl_render("{\"s\":\"$.detail.nl\"}", "{\"v\": \"<s>\"}", ev, &rc);
    CHECK(rc == EB_INPUT_SKIP && got == NULL); /* a raw newline inside a JSON string */
    got = tpl_render("{\"s\":\"$.detail.nl\"}", "{\"v\": <s>}", ev, &rc);
    CHECK_STR(got, "{\"v\": \"a\\nb\"}");
    free(got);
    /* escaped quotes in a string template stay as written */
    CHECK_TPL("{\"s\":\"$.detail.s\"}", "\"instance \\\"<s>\\\" is ok\"", "\"instance \\\"abc\\\" is ok\"");
    /* an escaped quote inside a JSON template string does not end it */
    CHECK_TPL("{\"s\":\"$.detail.s\"}", "{\"a\": \"say \\\"<s>\\\"\", \"b\": <s>}",
              "{\"a\": \"say \\\"abc\\\"\", \"b\": \"abc\"}");
}

static void test_numbers_keep_text(void)
{
    const char *ev = "{\"detail\":{\"a\":42.5,\"b\":1e3,\"c\":12345678901234567890123,\"d\":-0.0,\"e\":1E+2,"
                     "\"f\":0.1000,\"g\":[1.0, 2e-5]}}";
    const char *map = "{\"a\":\"$.detail.a\",\"b\":\"$.detail.b\",\"c\":\"$.detail.c\",\"d\":\"$.detail.d\","
                      "\"e\":\"$.detail.e\",\"f\":\"$.detail.f\",\"g\":\"$.detail.g\"}";
    int rc;
    char *got = tpl_render(map, "{\"a\":<a>,\"b\":<b>,\"c\":<c>,\"d\":<d>,\"e\":<e>,\"f\":<f>,\"g\":<g>}", ev, &rc);
    CHECK_STR(got, "{\"a\":42.5,\"b\":1e3,\"c\":12345678901234567890123,\"d\":-0.0,\"e\":1E+2,\"f\":0.1000,"
                   "\"g\":[1.0,2e-5]}");
    free(got);
    got = tpl_render(map, "\"<a> <b> <c> <d> <e> <f> <g>\"", ev, &rc);
    CHECK_STR(got, "\"42.5 1e3 12345678901234567890123 -0.0 1E+2 0.1000 [1.0,2e-5]\"");
    free(got);
    got = tpl_render(map, "{\"s\":\"n=<c>\"}", ev, &rc);
    CHECK_STR(got, "{\"s\":\"n=12345678901234567890123\"}");
    free(got);
    got = xform("{\"Id\":\"t\",\"InputPath\":\"$.detail.c\"}", ev, &rc);
    CHECK_STR(got, "12345678901234567890123");
    free(got);
    got = xform("{\"Id\":\"t\",\"InputPath\":\"$.detail.g[*]\"}", ev, &rc);
    CHECK_STR(got, "[1.0,2e-5]");
    free(got);
    /* the reference's own example (§6.4) */
    const char *ex = "{\"detail\":{\"orderId\":\"o-17\",\"total\":42.5,\"items\":[\"a\",\"b\"]}}";
    eb_input_ctx c = ctx_for(ex);
    c.rule_name = "orders";
    char *target = tr_target("{\"id\":\"$.detail.orderId\",\"amt\":\"$.detail.total\",\"items\":\"$.detail.items\"}",
                             "{\"order\": <id>, \"amount\": <amt>, \"lines\": <items>, \"rule\": "
                             "<aws.events.rule-name>, \"note\": \"order <id> received\"}");
    got = xform_ctx(target, &c, &rc, NULL, 0);
    CHECK_STR(got, "{\"order\": \"o-17\", \"amount\": 42.5, \"lines\": [\"a\",\"b\"], \"rule\": \"orders\", "
                   "\"note\": \"order o-17 received\"}");
    free(got);
    free(target);
}

/* ---- templates ------------------------------------------------------------------ */

static void test_substitution_table(void)
{
    const char *map = "{\"s\":\"$.detail.s\",\"n\":\"$.detail.n\",\"t\":\"$.detail.t\",\"z\":\"$.detail.z\","
                      "\"o\":\"$.detail.o\",\"l\":\"$.detail.l\",\"m\":\"$.detail.missing\",\"w\":\"$.detail.items[*].id\","
                      "\"ws\":\"$.detail.l[*]\"}";
    /* JSON template, unquoted */
    CHECK_TPL(map, "{\"s\":<s>,\"n\":<n>,\"t\":<t>,\"z\":<z>,\"o\":<o>,\"l\":<l>,\"m\":<m>,\"w\":<w>}",
              "{\"s\":\"abc\",\"n\":42.5,\"t\":true,\"z\":null,\"o\":{\"k\":\"v\",\"a\":[1,\"x\"]},\"l\":[\"A\",\"B\"],"
              "\"m\":\"\",\"w\":[1,2]}");
    /* JSON template, inside strings */
    CHECK_TPL(map, "{\"a\":\"<s>\",\"b\":\"x<n>y<t>z<z>\",\"c\":\"[<m>]\"}",
              "{\"a\":\"abc\",\"b\":\"x42.5ytrueznull\",\"c\":\"[]\"}");
    CHECK_TPL_SKIP(map, "{\"a\":\"<o>\"}");
    CHECK_TPL_SKIP(map, "{\"a\":\"<l>\"}");
    CHECK_TPL_SKIP(map, "{\"a\":\"ids <ws>\"}"); /* a wildcard result is an array too */
    /* the array is inserted as JSON text: when that happens to fit in a
     * string (no quotes inside), the result is valid and delivered */
    CHECK_TPL(map, "{\"a\":\"ids <w>\"}", "{\"a\":\"ids [1,2]\"}");
    /* string template: no quotes added, objects/arrays without any quotes */
    CHECK_TPL(map, "\"<s>|<n>|<t>|<z>|<o>|<l>|<m>|<w>\"", "\"abc|42.5|true|null|{k:v,a:[1,x]}|[A,B]||[1,2]\"");
    CHECK_TPL(map, "<s> and <o>", "abc and {k:v,a:[1,x]}"); /* unquoted string template */
    CHECK_TPL(map, "  [<s>, <l>]", "  [abc, [A,B]]");         /* only '{' makes a JSON template */
    /* placeholders inside nested structures, arrays, repeated */
    CHECK_TPL(map, "{\"x\":[<s>,\"h\"],\"y\":{\"z\":{\"w\":\"p/<s>/q/<s>\"}}}",
              "{\"x\":[\"abc\",\"h\"],\"y\":{\"z\":{\"w\":\"p/abc/q/abc\"}}}");
    CHECK_TPL(map, "\"<s><s> <s>-<s>\"", "\"abcabc abc-abc\"");
    /* text that only looks like a placeholder */
    CHECK_TPL(map, "\"a < b, c > d, <>, < s>, <s >, <s\"", "\"a < b, c > d, <>, < s>, <s >, <s\"");
    /* JSON template whose result is not JSON */
    CHECK_TPL_SKIP(map, "{\"a\":<s>} trailing");
    CHECK_TPL_SKIP(map, "{\"a\":<s>");
    CHECK_TPL_SKIP(map, "{<n>:1}"); /* placeholders cannot be keys */
    /* a template with no placeholders, and an empty one */
    CHECK_TPL("{}", "\"constant\"", "\"constant\"");
    CHECK_TPL("{}", "", "");
    /* leading blanks before '{' still make a JSON template */
    CHECK_TPL(map, " \n\t{\"a\": <n>}", " \n\t{\"a\": 42.5}");
}

static void test_hundred_entries(void)
{
    eb_buf ev = {0}, map = {0}, tpl = {0}, want = {0};
    eb_buf_puts(&ev, "{\"detail\":{");
    eb_buf_putc(&map, '{');
    eb_buf_putc(&tpl, '{');
    eb_buf_putc(&want, '{');
    for (int i = 0; i < 100; i++) {
        const char *sep = i ? "," : "";
        eb_buf_printf(&ev, "%s\"f%d\":%s", sep, i, i % 2 ? "\"s\"" : "7");
        eb_buf_printf(&map, "%s\"v%d\":\"$.detail.f%d\"", sep, i, i);
        eb_buf_printf(&tpl, "%s\"k%d\":<v%d>", sep, i, i);
        eb_buf_printf(&want, "%s\"k%d\":%s", sep, i, i % 2 ? "\"s\"" : "7");
    }
    eb_buf_puts(&ev, "}}");
    eb_buf_putc(&map, '}');
    eb_buf_putc(&tpl, '}');
    eb_buf_putc(&want, '}');
    int rc;
    char *got = tpl_render(map.p, tpl.p, ev.p, &rc);
    CHECK(rc == EB_INPUT_OK);
    CHECK_STR(got, want.p);
    free(got);
    eb_buf_free(&ev);
    eb_buf_free(&map);
    eb_buf_free(&tpl);
    eb_buf_free(&want);
}

static void test_predefined(void)
{
    int rc;
    eb_input_ctx c = ctx_for(EVENT);
    char *t = tr_target("{}", "\"<aws.events.rule-arn>|<aws.events.rule-name>|<aws.events.event.ingestion-time>\"");
    char *got = xform_ctx(t, &c, &rc, NULL, 0);
    CHECK_STR(got, "\"arn:aws:events:us-east-1:123456789012:rule/test-rule|test-rule|2025-10-08T11:10:10.123Z\"");
    free(got);
    free(t);
    /* JSON template: predefined strings become JSON strings */
    t = tr_target("{}", "{\"arn\":<aws.events.rule-arn>,\"at\":<aws.events.event.ingestion-time>}");
    c.ingestion_ms = 0;
    got = xform_ctx(t, &c, &rc, NULL, 0);
    CHECK_STR(got, "{\"arn\":\"arn:aws:events:us-east-1:123456789012:rule/test-rule\",\"at\":\"1970-01-01T00:00:00.000Z\"}");
    free(got);
    c.ingestion_ms = -1;
    got = xform_ctx(t, &c, &rc, NULL, 0);
    CHECK_STR(got, "{\"arn\":\"arn:aws:events:us-east-1:123456789012:rule/test-rule\",\"at\":\"1969-12-31T23:59:59.999Z\"}");
    free(got);
    c.rule_arn = NULL; /* unknown: empty */
    got = xform_ctx(t, &c, &rc, NULL, 0);
    CHECK_STR(got, "{\"arn\":\"\",\"at\":\"1969-12-31T23:59:59.999Z\"}");
    free(got);
    free(t);
    /* a rule name that needs escaping stays valid JSON */
    c = ctx_for(EVENT);
    c.rule_name = "we\"ird";
    t = tr_target("{}", "{\"r\":<aws.events.rule-name>}");
    got = xform_ctx(t, &c, &rc, NULL, 0);
    CHECK_STR(got, "{\"r\":\"we\\\"ird\"}");
    free(got);
    free(t);
    /* aws.events.event: no detail, detailType, AWS's key order; .json: the
     * whole envelope (compact even when the stored text is not) */
    const char *spaced = "{ \"version\": \"0\", \"id\": \"i\", \"detail-type\": \"dt\", \"source\": \"s\", "
                         "\"account\": \"1\", \"time\": \"t\", \"region\": \"r\", \"resources\": [ \"x\" ], "
                         "\"detail\": { \"a\": [ 1, 2 ] } }";
    c = ctx_for(spaced);
    t = tr_target("{}", "{\"e\": <aws.events.event>, \"j\": <aws.events.event.json>}");
    got = xform_ctx(t, &c, &rc, NULL, 0);
    CHECK_STR(got, "{\"e\": {\"id\":\"i\",\"account\":\"1\",\"detailType\":\"dt\",\"time\":\"t\",\"source\":\"s\","
                   "\"region\":\"r\",\"resources\":[\"x\"],\"version\":\"0\"}, \"j\": {\"version\":\"0\",\"id\":\"i\","
                   "\"detail-type\":\"dt\",\"source\":\"s\",\"account\":\"1\",\"time\":\"t\",\"region\":\"r\","
                   "\"resources\":[\"x\"],\"detail\":{\"a\":[1,2]}}}");
    free(got);
    free(t);
    /* only in JSON templates (PutTargets rejects the rest) */
    char err[256];
    t = tr_target("{}", "\"whole event: <aws.events.event.json>\"");
    got = xform_ctx(t, &c, &rc, err, sizeof err);
    CHECK(rc == 99);
    CHECK_STR(err, "InputTemplate for target t1 contains placeholder aws.events.event.json valid only for JSON template.");
    free(t);
    t = tr_target("{}", "[<aws.events.event>]");
    got = xform_ctx(t, &c, &rc, err, sizeof err);
    CHECK(rc == 99);
    CHECK_STR(err, "InputTemplate for target t1 contains placeholder aws.events.event valid only for JSON template.");
    free(t);
    /* ... and inside a string of a JSON template the event breaks the JSON */
    t = tr_target("{}", "{\"e\": \"<aws.events.event>\"}");
    got = xform_ctx(t, &c, &rc, NULL, 0);
    CHECK(rc == EB_INPUT_SKIP && got == NULL);
    free(t);
    /* a map entry may not use a reserved name */
    t = tr_target("{\"aws.events.rule-arn\":\"$.id\"}", "\"x\"");
    CHECK_STR(compile_error(t), "InputPathsMap for target t1 uses the reserved name aws.events.rule-arn.");
    free(t);
    t = tr_target("{\"AWS.x\":\"$.id\"}", "\"x\"");
    CHECK_STR(compile_error(t), "InputPathsMap for target t1 uses the reserved name AWS.x.");
    free(t);
    CHECK_STR(eb_template_predefined_name(EB_TPL_EVENT_JSON), "aws.events.event.json");
    CHECK(eb_template_predefined_name(EB_TPL_NPREDEF) == NULL);
}

static void test_modes(void)
{
    const char *spaced = "{ \"version\" : \"0\", \"detail\" : { \"x\" : [ 1 , 2 ] } }";
    int rc;
    /* default: the event text unchanged */
    char *got = xform("{\"Id\":\"t\",\"Arn\":\"arn:aws:sqs:r:1:q\"}", spaced, &rc);
    CHECK_STR(got, spaced);
    free(got);
    got = xform("{\"Id\":\"t\",\"Input\":null,\"InputPath\":null,\"InputTransformer\":null}", spaced, &rc);
    CHECK_STR(got, spaced); /* null members are not set */
    free(got);
    /* Input: the constant text exactly */
    got = xform("{\"Id\":\"t\",\"Input\":\"{ \\\"a\\\" :  1 }\"}", spaced, &rc);
    CHECK_STR(got, "{ \"a\" :  1 }");
    free(got);
    got = xform("{\"Id\":\"t\",\"Input\":\"\\\"just a string\\\"\"}", spaced, &rc);
    CHECK_STR(got, "\"just a string\"");
    free(got);
    /* InputPath: compact JSON of the value */
    got = xform("{\"Id\":\"t\",\"InputPath\":\"$\"}", spaced, &rc);
    CHECK_STR(got, "{\"version\":\"0\",\"detail\":{\"x\":[1,2]}}");
    free(got);
    got = xform("{\"Id\":\"t\",\"InputPath\":\"$.detail.x[1]\"}", spaced, &rc);
    CHECK_STR(got, "2");
    free(got);
    got = xform("{\"Id\":\"t\",\"InputPath\":\"$.detail.nothing\"}", spaced, &rc);
    CHECK(rc == EB_INPUT_SKIP && got == NULL);
    got = xform("{\"Id\":\"t\",\"InputPath\":\"$.detail.nothing[*]\"}", spaced, &rc);
    CHECK_STR(got, "[]");
    free(got);
    /* the transformer with no InputPathsMap */
    got = xform("{\"Id\":\"t\",\"InputTransformer\":{\"InputTemplate\":\"\\\"fixed\\\"\"}}", spaced, &rc);
    CHECK_STR(got, "\"fixed\"");
    free(got);
    /* unused map entries are not evaluated (a bad event region is never read) */
    CHECK_TPL("{\"a\":\"$.detail.s\",\"b\":\"$.detail.nope.deeper[3]\"}", "\"<a>\"", "\"abc\"");
}

static void test_validation_messages(void)
{
    /* the two recorded PutTargets rejections are in the corpus; the rest */
    CHECK_STR(compile_error("{\"Id\":\"t1\",\"Input\":\"{}\",\"InputPath\":\"$\"}"),
              "Only one of Input, InputPath, or InputTransformer must be provided for target t1.");
    CHECK_STR(compile_error("{\"Id\":\"t1\",\"Input\":\"{}\",\"InputTransformer\":{\"InputTemplate\":\"x\"}}"),
              "Only one of Input, InputPath, or InputTransformer must be provided for target t1.");
    CHECK_STR(compile_error("{\"Id\":\"t1\",\"Input\":\"{bad\"}"), "Input for target t1 is not a valid JSON text.");
    CHECK_STR(compile_error("{\"Id\":\"t1\",\"Input\":\"\"}"), "Input for target t1 is not a valid JSON text.");
    CHECK_STR(compile_error("{\"Id\":\"t1\",\"Input\":5}"), "Input for target t1 is not a valid JSON text.");
    CHECK_STR(compile_error("{\"Id\":\"t1\",\"InputPath\":\"detail\"}"), "InputPath for target t1 is not a valid JSON path.");
    CHECK_STR(compile_error("{\"Id\":\"t1\",\"InputPath\":[]}"), "InputPath for target t1 is not a valid JSON path.");
    CHECK_STR(compile_error("{\"Id\":\"t1\",\"InputTransformer\":\"x\"}"), "InputTransformer for target t1 is not valid.");
    CHECK_STR(compile_error("{\"Id\":\"t1\",\"InputTransformer\":{\"InputPathsMap\":[],\"InputTemplate\":\"x\"}}"),
              "InputTransformer for target t1 is not valid.");
    CHECK_STR(compile_error("{\"Id\":\"t1\",\"InputTransformer\":{\"InputPathsMap\":{}}}"),
              "InputTemplate for target t1 is missing.");
    CHECK_STR(compile_error("{\"Id\":\"t1\",\"InputTransformer\":{\"InputPathsMap\":{\"a\":\"$..x\"},\"InputTemplate\":\"x\"}}"),
              "InputPathsMap for target t1 has an invalid JSON path for a.");
    CHECK_STR(compile_error("{\"Id\":\"t1\",\"InputTransformer\":{\"InputPathsMap\":{\"a\":7},\"InputTemplate\":\"x\"}}"),
              "InputPathsMap for target t1 has an invalid JSON path for a.");
    CHECK_STR(compile_error("{\"Id\":\"t1\",\"InputTransformer\":{\"InputTemplate\":\"{\\\"a\\\": <b>}\"}}"),
              "InputTemplate for target t1 contains invalid placeholder b.");
    CHECK_STR(compile_error("{\"Id\":\"t1\",\"InputTransformer\":{\"InputTemplate\":\"<aws.events.rule-arn.x>\"}}"),
              "InputTemplate for target t1 contains invalid placeholder aws.events.rule-arn.x.");
    /* a placeholder with an odd name is still a placeholder (as PutTargets sees it) */
    CHECK_STR(compile_error("{\"Id\":\"t1\",\"InputTransformer\":{\"InputTemplate\":\"\\\"<b>bold</b>\\\"\"}}"),
              "InputTemplate for target t1 contains invalid placeholder b.");
    /* targets that are not objects, or no Id: no crash */
    CHECK_STR(compile_error("[]"), "(compiled)"); /* nothing set: the event */
    CHECK_STR(compile_error("{\"InputPath\":\"x\"}"), "InputPath for target  is not a valid JSON path.");
    eb_input *in = eb_input_compile(NULL, NULL, 0); /* NULL target: default mode */
    CHECK(in != NULL);
    eb_input_free(in);
    eb_input_free(NULL);
    /* a tiny error buffer is truncated, not overrun */
    char small[8];
    json_t *t = json_loads("{\"Id\":\"t1\",\"Input\":\"{\"}", 0, NULL);
    CHECK(eb_input_compile(t, small, sizeof small) == NULL && strlen(small) == 7);
    json_decref(t);
}

/* ---- SKIP, errors, malformed events --------------------------------------------- */

static void test_malformed_events(void)
{
    const char *map = "{\"a\":\"$.detail.a\",\"w\":\"$.detail[*]\"}";
    const char *bad[] = {"", "{", "{\"detail\":", "{\"detail\":{\"a\":\"unterminated}}", "{\"detail\":{\"a\" 1}}",
                         "{\"detail\":{\"a\":}}", "\"just a string", "{\"detail\":[1,2,}", "\x01\x02\x03",
                         "{\"detail\":{\"a\":1,,}}", "{\"detail\":{\"b\":[[[[[[[", "]]]]"};
    const char *targets[] = {"{\"Id\":\"t\",\"InputPath\":\"$.detail.a\"}", "{\"Id\":\"t\",\"InputPath\":\"$.detail[*]\"}",
                             "{\"Id\":\"t\",\"InputPath\":\"$\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc;
        for (size_t k = 0; k < sizeof targets / sizeof *targets; k++) {
            char *got = xform(targets[k], bad[i], &rc);
            CHECK(rc == EB_INPUT_ERR || rc == EB_INPUT_SKIP || rc == EB_INPUT_OK);
            free(got);
        }
        const char *tpls[] = {"{\"x\":<a>,\"w\":<w>}", "\"<a> <w>\"", "{\"e\":<aws.events.event>}",
                              "{\"e\":<aws.events.event.json>}"};
        for (size_t k = 0; k < sizeof tpls / sizeof *tpls; k++) {
            char *got = tpl_render(map, tpls[k], bad[i], &rc);
            CHECK(rc == EB_INPUT_ERR || rc == EB_INPUT_SKIP || rc == EB_INPUT_OK);
            if (rc == EB_INPUT_OK && tpls[k][0] == '{')
                CHECK(got && eb_json_check(got, strlen(got), 1000, NULL) == EB_OK);
            free(got);
        }
    }
    /* the selected value itself is cut off: an error, not a crash */
    int rc;
    char *got = xform("{\"Id\":\"t\",\"InputPath\":\"$.detail.a\"}", "{\"detail\":{\"a\":[1,2", &rc);
    CHECK(rc == EB_INPUT_ERR && got == NULL);
    got = tpl_render(map, "{\"x\":<a>}", "{\"detail\":{\"a\":{\"b\":\"c\"", &rc);
    CHECK(rc == EB_INPUT_ERR && got == NULL);
}

/* ---- HttpParameters ----------------------------------------------------------- */

static void test_http_params(void)
{
    CHECK(eb_input_http_params(NULL, EVENT, strlen(EVENT)) == NULL);
    json_t *hp = json_loads(
        "{\"PathParameterValues\":[\"$.detail.s\",\"literal\",\"$.detail.n\",\"$.detail.missing\",7],"
        "\"HeaderParameters\":{\"h-obj\":\"$.detail.o\",\"h-static\":\"static\",\"h-missing\":\"$.detail.nope\","
        "\"h-num\":\"$.detail.big\",\"h-bool\":\"$.detail.t\",\"h-partial\":\"id is $.detail.s\",\"h-dollar\":\"$5\","
        "\"h-root\":\"$\",\"h-badpath\":\"$.a b\"},"
        "\"QueryStringParameters\":{\"q\":\"$.detail.s\",\"arr\":\"$.detail.l\",\"wild\":\"$.detail.items[*].id\","
        "\"idx\":\"$['detail']['l'][1]\"},"
        "\"Other\":\"$.detail.s\"}",
        0, NULL);
    json_t *before = json_deep_copy(hp);
    json_t *r = eb_input_http_params(hp, EVENT, strlen(EVENT));
    CHECK(r != NULL);
    char *s = json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER);
    CHECK_STR(s, "{\"PathParameterValues\":[\"abc\",\"literal\",\"42.5\",\"\",7],"
                 "\"HeaderParameters\":{\"h-obj\":\"{\\\"k\\\":\\\"v\\\",\\\"a\\\":[1,\\\"x\\\"]}\","
                 "\"h-static\":\"static\",\"h-missing\":\"\",\"h-num\":\"123456789012345678901234567890\","
                 "\"h-bool\":\"true\",\"h-partial\":\"id is $.detail.s\",\"h-dollar\":\"$5\",\"h-root\":\"$\","
                 "\"h-badpath\":\"$.a b\"},"
                 "\"QueryStringParameters\":{\"q\":\"abc\",\"arr\":\"[\\\"A\\\",\\\"B\\\"]\",\"wild\":\"[1,2]\","
                 "\"idx\":\"B\"},\"Other\":\"$.detail.s\"}");
    free(s);
    CHECK(json_equal(hp, before)); /* the input is not modified */
    json_decref(r);
    /* decoded strings, escapes and all */
    const char *ev = "{\"detail\":{\"s\":\"a\\\"b\\u00e9\\ud800\"}}";
    r = eb_input_http_params(hp, ev, strlen(ev));
    CHECK_STR(json_string_value(json_array_get(json_object_get(r, "PathParameterValues"), 0)), "a\"b\xc3\xa9\xef\xbf\xbd");
    json_decref(r);
    /* a malformed event: values become empty, no crash */
    r = eb_input_http_params(hp, "{\"detail\":{\"s\":", 15);
    CHECK_STR(json_string_value(json_array_get(json_object_get(r, "PathParameterValues"), 0)), "");
    json_decref(r);
    /* members of the wrong type are left alone */
    json_t *odd = json_loads("{\"PathParameterValues\":\"$.detail.s\",\"HeaderParameters\":[\"$.detail.s\"]}", 0, NULL);
    r = eb_input_http_params(odd, EVENT, strlen(EVENT));
    CHECK(json_equal(r, odd));
    json_decref(r);
    json_decref(odd);
    json_decref(hp);
    json_decref(before);
}

/* ---- CloudWatch Logs rule ------------------------------------------------------ */

static int log_check(const char *arn, const char *tpl, char *err, size_t errlen)
{
    json_t *t = json_pack("{s:s, s:s, s:{s:{s:s, s:s}, s:s}}", "Id", "lt", "Arn", arn, "InputTransformer",
                          "InputPathsMap", "timestamp", "$.time", "message", "$.detail", "InputTemplate", tpl);
    int r = eb_input_check_log_template(t, err, errlen);
    char verr[256] = "";
    int v = eb_input_validate(t, verr, sizeof verr);
    if (v != r || (r && strcmp(verr, err)))
        r = 42; /* eb_input_validate applies the same rule */
    json_decref(t);
    return r;
}

static void test_log_template(void)
{
    const char *logs = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/events/x";
    char err[256] = "";
    CHECK(log_check(logs, "{\"timestamp\": <timestamp>, \"message\": <message>}", err, sizeof err) == 0);
    CHECK(log_check(logs, "{\"timestamp\":<timestamp>,\"message\":<message>}", err, sizeof err) == 0);
    CHECK(log_check(logs, " {\n  \"message\": <message>,\n  \"timestamp\": <timestamp>\n}\n", err, sizeof err) == 0);
    CHECK(log_check(logs, "{\"timestamp\": <timestamp>, \"message\": \"said <message>\"}", err, sizeof err) == 0);
    CHECK(log_check("arn:aws-cn:logs:cn-north-1:1:log-group:g", "{\"timestamp\": <timestamp>, \"message\": <message>}",
                    err, sizeof err) == 0);
    const char *bad[] = {"\"<message>\"", "{\"timestamp\": <timestamp>}", "{\"message\": <message>}",
                         "{\"timestamp\": <timestamp>, \"message\": <message>, \"x\": 1}",
                         "{\"time\": <timestamp>, \"message\": <message>}", "{\"timestamp\": <timestamp>, \"message\": }",
                         "[<timestamp>, <message>]", "{\"timestamp\": <timestamp> \"message\": <message>}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        CHECK(log_check(logs, bad[i], err, sizeof err) == -1);
        CHECK_STR(err, "InputTemplate for target lt must be {\"timestamp\": <timestamp>, \"message\": <message>} for a "
                       "CloudWatch Logs target.");
    }
    /* the rule applies to log groups only, and only with a transformer */
    CHECK(log_check("arn:aws:sqs:us-east-1:123456789012:q", "\"<message>\"", err, sizeof err) == 0);
    CHECK(log_check("arn:aws:lambda:us-east-1:1:function:logs:x", "\"<message>\"", err, sizeof err) == 0);
    json_t *t = json_loads("{\"Id\":\"lt\",\"Arn\":\"arn:aws:logs:us-east-1:1:log-group:g\",\"InputPath\":\"$.detail\"}",
                           0, NULL);
    CHECK(eb_input_check_log_template(t, err, sizeof err) == 0);
    json_decref(t);
    CHECK(eb_input_check_log_template(NULL, err, sizeof err) == 0);
}

/* ---- the template parser directly ------------------------------------------------ */

static void test_template_api(void)
{
    const char *names[] = {"a", "b"};
    char err[256];
    const char *src = "{\"x\": <a>, \"y\": \"<b><aws.events.rule-name>\"}";
    eb_template *t = eb_template_parse(src, strlen(src), names, 2, "id1", err, sizeof err);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK(eb_template_is_json(t));
    CHECK(eb_template_uses(t, 0) && eb_template_uses(t, 1) && eb_template_uses(t, 2 + EB_TPL_RULE_NAME));
    CHECK(!eb_template_uses(t, 2 + EB_TPL_RULE_ARN) && !eb_template_uses(t, 99));
    eb_tpl_value vals[2 + EB_TPL_NPREDEF] = {{"[1, 2]", 6}, {"\"B\"", 3}};
    vals[2 + EB_TPL_RULE_NAME] = (eb_tpl_value){"\"R\"", 3};
    eb_buf out = {0};
    CHECK(eb_template_render(t, vals, &out) == EB_INPUT_OK);
    CHECK_STR(out.p, "{\"x\": [1,2], \"y\": \"BR\"}");
    /* missing values */
    vals[0].json = NULL;
    vals[1].json = NULL;
    out.n = 0;
    CHECK(eb_template_render(t, vals, &out) == EB_INPUT_OK);
    CHECK_STR(out.p, "{\"x\": \"\", \"y\": \"R\"}");
    /* malformed value text: an error, out unchanged */
    vals[0] = (eb_tpl_value){"[1,", 3};
    out.n = 0;
    CHECK(eb_template_render(t, vals, &out) == EB_INPUT_ERR && out.n == 0);
    eb_buf_free(&out);
    eb_template_free(t);
    /* the binary-safe length: a NUL byte is ordinary text */
    t = eb_template_parse("\"a\0<a>\"", 7, names, 2, NULL, err, sizeof err);
    CHECK(t && !eb_template_is_json(t));
    vals[0] = (eb_tpl_value){"\"z\"", 3};
    CHECK(t && eb_template_render(t, vals, &out) == EB_INPUT_OK && out.n == 5 && !memcmp(out.p, "\"a\0z\"", 5));
    eb_template_free(t);
    eb_buf_free(&out);
    /* unknown placeholder, NULL target id */
    t = eb_template_parse("<c>", 3, names, 2, NULL, err, sizeof err);
    CHECK(t == NULL);
    CHECK_STR(err, "InputTemplate for target  contains invalid placeholder c.");
    eb_template_free(NULL);
    /* output cap: a huge value repeated */
    eb_buf big = {0};
    eb_buf_putc(&big, '"');
    for (int i = 0; i < 1 << 20; i++)
        eb_buf_putc(&big, 'x');
    eb_buf_putc(&big, '"');
    eb_buf tpl = {0};
    for (int i = 0; i < 9; i++)
        eb_buf_puts(&tpl, "<a>");
    t = eb_template_parse(tpl.p, tpl.n, names, 2, "t", err, sizeof err);
    vals[0] = (eb_tpl_value){big.p, big.n};
    CHECK(t && eb_template_render(t, vals, &out) == EB_INPUT_ERR && out.n == 0);
    eb_template_free(t);
    eb_buf_free(&big);
    eb_buf_free(&tpl);
    eb_buf_free(&out);
}

/* ---- concurrency: one compiled input, several threads ---------------------------- */

typedef struct {
    const eb_input *in;
    const char *want;
    int bad;
} thr_arg;

static void *render_loop(void *p)
{
    thr_arg *a = p;
    eb_input_ctx c = ctx_for(EVENT);
    for (int i = 0; i < 2000; i++) {
        eb_buf out = {0};
        if (eb_input_render(a->in, &c, &out, NULL, 0) != EB_INPUT_OK || strcmp(out.p, a->want))
            a->bad++;
        eb_buf_free(&out);
    }
    return NULL;
}

static void test_concurrent_render(void)
{
    char *target = tr_target("{\"s\":\"$.detail.s\",\"w\":\"$.detail.items[*].id\",\"o\":\"$.detail.o\"}",
                             "{\"s\":<s>,\"w\":<w>,\"o\":<o>,\"t\":\"<s>-<aws.events.rule-name>\",\"e\":<aws.events.event>}");
    json_t *t = json_loads(target, 0, NULL);
    eb_input *in = eb_input_compile(t, NULL, 0);
    CHECK(in != NULL);
    int rc;
    char *want = xform(target, EVENT, &rc);
    CHECK(want != NULL);
    pthread_t th[4];
    thr_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thr_arg){in, want ? want : "", 0};
        pthread_create(&th[i], NULL, render_loop, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].bad == 0);
    }
    free(want);
    eb_input_free(in);
    json_decref(t);
    free(target);
}

int main(void)
{
    /* default: the shared/ folder next to this source tree */
    if (!getenv("EB_SHARED")) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", __FILE__);
        char *slash = strrchr(dir, '/');
        if (slash)
            snprintf(slash, sizeof dir - (size_t)(slash - dir), "/../../../shared");
        setenv("EB_SHARED", dir, 0);
    }
    RUN(test_corpus);
    RUN(test_path_forms);
    RUN(test_deep_and_large);
    RUN(test_jsontext);
    RUN(test_unicode_and_escapes);
    RUN(test_numbers_keep_text);
    RUN(test_substitution_table);
    RUN(test_hundred_entries);
    RUN(test_predefined);
    RUN(test_modes);
    RUN(test_validation_messages);
    RUN(test_malformed_events);
    RUN(test_http_params);
    RUN(test_log_template);
    RUN(test_template_api);
    RUN(test_concurrent_render);
    return TEST_REPORT();
}
