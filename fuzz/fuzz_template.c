/* libFuzzer target: InputTransformer targets of src/deliver/transform.c on
 * arbitrary bytes (template parser, compile, render), plus the Input and
 * InputPath modes, HttpParameters dynamic values and the CloudWatch Logs
 * template rule.
 *
 * Input: MAP 0xFF TEMPLATE [0xFF EVENT]; without 0xFF the whole input is the
 * template.  MAP is '\n'-separated `name=path` lines (a line without '='
 * maps name to $.detail).  Checks:
 *   - compile and validate agree (same message when both fail);
 *   - render is deterministic, returns OK/SKIP/ERR, leaves the buffer as it
 *     was (with a reason) unless OK, and a JSON template's output is valid
 *     JSON; on a valid event object it never returns ERR;
 *   - the template parser alone accepts what compile accepted, and renders
 *     synthetic values of every JSON type (and missing ones);
 *   - Input is delivered byte for byte; InputPath output is valid JSON. */
#include "fuzz_common.h"

#include "deliver/transform.h"

static const char *const events[] = {
    "{\"version\":\"0\",\"id\":\"5f1c2a7e-8b3d-4e6f-9a01-2b3c4d5e6f70\",\"detail-type\":\"core.update\","
    "\"source\":\"my.app\",\"account\":\"123456789012\",\"time\":\"2025-10-08T11:10:10Z\",\"region\":\"us-east-1\","
    "\"resources\":[\"arn:a\"],\"detail\":{\"s\":\"abc\",\"q\":\"a\\\"b\\nc\",\"n\":42.5,\"e\":1e3,\"t\":true,"
    "\"z\":null,\"o\":{\"k\":\"v\",\"a\":[1,\"x\"]},\"l\":[\"A\",\"B\"],\"items\":[{\"id\":1},{\"id\":\"2\"}]}}",
    "{ \"detail\" : { \"s\" : \"\\u00e9\\ud83d\\ude00\" , \"l\" : [ ] , \"o\" : { } } , \"id\" : 5 }",
    "{}",
};
#define NEVENTS (sizeof events / sizeof events[0])

/* Synthetic values for the template API, cycled over the variables. */
static const char *const values[] = {"\"s\"", "{\"a\":[1,\"b\"]}", "[\"x\"]", "12.50", "true", "null", NULL,
                                     "\"q\\\"uote\"", "[]", " { } "};
#define NVALUES (sizeof values / sizeof values[0])

static int first_is_brace(const char *s, size_t n)
{
    return fuzz_top_is_object((const uint8_t *)s, n);
}

static void check_render(const eb_input *in, const char *ev, size_t evn, int json_tpl)
{
    eb_input_ctx ctx = {ev, evn, "arn:aws:events:us-east-1:123456789012:rule/r", "r", 1759921810123LL};
    eb_buf a = {0}, b = {0};
    eb_buf_puts(&a, "pre");
    char why[128] = "";
    int r1 = eb_input_render(in, &ctx, &a, why, sizeof why);
    int r2 = eb_input_render(in, &ctx, &b, NULL, 0);
    FUZZ_ASSERT(r1 == EB_INPUT_OK || r1 == EB_INPUT_SKIP || r1 == EB_INPUT_ERR);
    FUZZ_ASSERT(r1 == r2);
    if (r1 != EB_INPUT_OK) {
        FUZZ_ASSERT(a.n == 3 && !memcmp(a.p, "pre", 4) && b.n == 0);
        FUZZ_ASSERT(why[0] && memchr(why, 0, sizeof why));
    } else {
        FUZZ_ASSERT(a.n - 3 == b.n && (b.n == 0 || !memcmp(a.p + 3, b.p, b.n)));
        if (json_tpl)
            FUZZ_ASSERT(eb_json_check(b.p, b.n, EB_MAX_MAX_DEPTH, NULL) == EB_OK);
    }
    if (r1 == EB_INPUT_ERR && eb_json_check(ev, evn, EB_DEFAULT_MAX_DEPTH, NULL) == EB_OK &&
        fuzz_top_is_object((const uint8_t *)ev, evn))
        FUZZ_ASSERT(strstr(why, "too large") != NULL);
    eb_buf_free(&a);
    eb_buf_free(&b);
}

static void check_template_api(const json_t *map, const char *tpl, size_t tn, int must_parse)
{
    size_t n = json_object_size(map);
    const char **names = calloc(n ? n : 1, sizeof *names);
    const char *k;
    json_t *v;
    size_t i = 0;
    json_object_foreach((json_t *)map, k, v) names[i++] = k;
    char err[256];
    eb_template *t = eb_template_parse(tpl, tn, names, n, "fz", err, sizeof err);
    if (must_parse)
        FUZZ_ASSERT(t != NULL);
    if (t) {
        FUZZ_ASSERT(eb_template_is_json(t) == first_is_brace(tpl, tn));
        eb_tpl_value *vals = calloc(n + EB_TPL_NPREDEF, sizeof *vals);
        for (size_t rot = 0; rot < 3; rot++) {
            for (size_t j = 0; j < n + EB_TPL_NPREDEF; j++) {
                const char *s = values[(j + rot * 3) % NVALUES];
                vals[j] = (eb_tpl_value){s, s ? strlen(s) : 0};
            }
            eb_buf out = {0};
            int r = eb_template_render(t, vals, &out);
            FUZZ_ASSERT(r == EB_INPUT_OK || r == EB_INPUT_SKIP || r == EB_INPUT_ERR);
            if (r != EB_INPUT_OK)
                FUZZ_ASSERT(out.n == 0);
            else if (eb_template_is_json(t))
                FUZZ_ASSERT(eb_json_check(out.p, out.n, EB_MAX_MAX_DEPTH, NULL) == EB_OK);
            if (r == EB_INPUT_ERR) /* the values are valid: only the size cap */
                FUZZ_ASSERT(tn > 1000);
            eb_buf_free(&out);
        }
        free(vals);
    } else {
        FUZZ_ASSERT(memchr(err, 0, sizeof err) && !strncmp(err, "InputTemplate for target fz contains ", 37));
    }
    eb_template_free(t);
    free(names);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *sep1 = memchr(in, 0xFF, size);
    const char *map_s = in, *tpl = in, *ev = NULL;
    size_t map_n = 0, tpl_n = size, ev_n = 0;
    if (sep1) {
        map_n = (size_t)(sep1 - in);
        tpl = sep1 + 1;
        tpl_n = size - map_n - 1;
        const char *sep2 = memchr(tpl, 0xFF, tpl_n);
        if (sep2) {
            ev = sep2 + 1;
            ev_n = tpl_n - (size_t)(sep2 - tpl) - 1;
            tpl_n = (size_t)(sep2 - tpl);
        }
    }
    json_t *map = json_object();
    for (size_t i = 0; i < map_n;) {
        const char *nl = memchr(map_s + i, '\n', map_n - i);
        size_t e = nl ? (size_t)(nl - map_s) : map_n;
        const char *eq = memchr(map_s + i, '=', e - i);
        size_t kn = eq ? (size_t)(eq - map_s) - i : e - i;
        json_t *path = eq ? json_stringn_nocheck(eq + 1, e - (size_t)(eq - map_s) - 1) : json_string("$.detail");
        json_object_setn_nocheck(map, map_s + i, kn, path);
        json_decref(path);
        i = e + 1;
    }
    json_t *target = json_pack("{s:s, s:s, s:{s:O, s:o}}", "Id", "fz", "Arn", "arn:aws:sqs:us-east-1:1:q",
                               "InputTransformer", "InputPathsMap", map, "InputTemplate",
                               json_stringn_nocheck(tpl, tpl_n));
    FUZZ_ASSERT(target);

    /* compile vs validate */
    char err[512] = "", verr[512] = "";
    eb_input *xin = eb_input_compile(target, err, sizeof err);
    int v = eb_input_validate(target, verr, sizeof verr);
    if (!xin) {
        FUZZ_ASSERT(v == -1 && err[0] && !strcmp(err, verr));
    } else {
        FUZZ_ASSERT(v == 0);
        int json_tpl = first_is_brace(tpl, tpl_n);
        for (size_t i = 0; i < NEVENTS; i++)
            check_render(xin, events[i], strlen(events[i]), json_tpl);
        if (ev)
            check_render(xin, ev, ev_n, json_tpl);
    }
    check_template_api(map, tpl, tpl_n, xin != NULL);
    eb_input_free(xin);

    /* the CloudWatch Logs rule on the same transformer */
    json_object_set_new(target, "Arn", json_string("arn:aws:logs:us-east-1:1:log-group:g"));
    int lr = eb_input_check_log_template(target, err, sizeof err);
    FUZZ_ASSERT(lr == 0 || (lr == -1 && err[0]));

    /* HttpParameters: every map path as a dynamic value */
    json_t *hp = json_pack("{s:[], s:{}, s:{s:o}}", "PathParameterValues", "HeaderParameters",
                           "QueryStringParameters", "t", json_stringn_nocheck(tpl, tpl_n));
    const char *k;
    json_t *pv;
    json_object_foreach(map, k, pv) {
        json_array_append(json_object_get(hp, "PathParameterValues"), pv);
        json_object_set(json_object_get(hp, "HeaderParameters"), k, pv);
    }
    for (size_t i = 0; i <= NEVENTS; i++) {
        const char *e = i < NEVENTS ? events[i] : ev;
        if (!e)
            continue;
        json_t *r = eb_input_http_params(hp, e, i < NEVENTS ? strlen(e) : ev_n);
        FUZZ_ASSERT(r && json_array_size(json_object_get(r, "PathParameterValues")) == json_object_size(map));
        json_decref(r);
    }
    json_decref(hp);

    /* Input and InputPath modes with the template bytes */
    json_t *t2 = json_pack("{s:s, s:o}", "Id", "fz", "Input", json_stringn_nocheck(tpl, tpl_n));
    eb_input *cin = eb_input_compile(t2, err, sizeof err);
    FUZZ_ASSERT(!cin == (eb_json_check(tpl, tpl_n, EB_DEFAULT_MAX_DEPTH, NULL) != EB_OK));
    if (cin) {
        eb_input_ctx ctx = {events[0], strlen(events[0]), NULL, NULL, 0};
        eb_buf out = {0};
        FUZZ_ASSERT(eb_input_render(cin, &ctx, &out, NULL, 0) == EB_INPUT_OK);
        FUZZ_ASSERT(out.n == tpl_n && (tpl_n == 0 || !memcmp(out.p, tpl, tpl_n)));
        eb_buf_free(&out);
    }
    eb_input_free(cin);
    json_decref(t2);
    t2 = json_pack("{s:s, s:o}", "Id", "fz", "InputPath", json_stringn_nocheck(tpl, tpl_n));
    cin = eb_input_compile(t2, err, sizeof err);
    if (cin) {
        for (size_t i = 0; i < NEVENTS; i++) {
            eb_input_ctx ctx = {events[i], strlen(events[i]), NULL, NULL, 0};
            eb_buf out = {0};
            int r = eb_input_render(cin, &ctx, &out, NULL, 0);
            FUZZ_ASSERT(r == EB_INPUT_OK || r == EB_INPUT_SKIP);
            if (r == EB_INPUT_OK)
                FUZZ_ASSERT(eb_json_check(out.p, out.n, EB_MAX_MAX_DEPTH, NULL) == EB_OK);
            eb_buf_free(&out);
        }
    }
    eb_input_free(cin);
    json_decref(t2);

    json_decref(map);
    json_decref(target);
    return 0;
}
