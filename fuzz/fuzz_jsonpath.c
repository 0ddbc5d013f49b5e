/* libFuzzer target: the JSONPath subset and the value re-spellings of
 * src/deliver/transform.c on arbitrary bytes.
 *
 * Input: PATH, then optionally '\n' and a JSON document (without one, a fixed
 * event is used).  The path is compiled; if that works it is evaluated on the
 * document.  Checks:
 *   - results are in range, buffers are untouched on failure, messages are
 *     terminated;
 *   - on a valid document: evaluation succeeds, its output is valid JSON,
 *     find and eval agree, a multi path always yields an array;
 *   - second oracle: the same path walked over jansson's tree of the
 *     document (when jansson takes it without duplicates) gives an equal
 *     value;
 *   - eb_jsontext_compact of a valid document is valid and equal to it;
 *     eb_jsontext_plain never fails on one. */
#include "fuzz_common.h"

#include "deliver/transform.h"

static const char fixed_event[] =
    "{\"version\":\"0\",\"id\":\"5f1c2a7e-8b3d-4e6f-9a01-2b3c4d5e6f70\",\"detail-type\":\"t\",\"source\":\"s\","
    "\"account\":\"123456789012\",\"time\":\"2025-10-08T11:10:10Z\",\"region\":\"us-east-1\",\"resources\":[\"r\"],"
    "\"detail\":{\"a\":{\"b\":[1,{\"c\":\"d\"},[2,3]]},\"n\":42.5,\"s\":\"x\\u00e9\\\"\",\"l\":[\"A\",\"B\"],"
    "\"k\\u0065y\":true,\"\":null,\"sp ace\":{\"z\":0}}}";

#define JFLAGS (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL)

/* Reference walk over a jansson tree; the path is known to be well formed
 * (it compiled).  Matches are appended to acc (multi) or returned. */
static void ref_walk(const char *p, size_t n, size_t i, json_t *v, json_t *acc, json_t **one)
{
    while (i < n) {
        if (p[i] == '.' && i + 1 < n && p[i + 1] == '*')
            goto wild;
        if (p[i] == '[' && i + 1 < n && p[i + 1] == '*') {
            i++;
        wild:
            i += 2;
            if (json_is_object(v)) {
                const char *k;
                json_t *c;
                json_object_foreach(v, k, c) ref_walk(p, n, i, c, acc, one);
            } else if (json_is_array(v)) {
                size_t k;
                json_t *c;
                json_array_foreach(v, k, c) ref_walk(p, n, i, c, acc, one);
            }
            return;
        }
        if (p[i] == '.') {
            size_t b = ++i;
            while (i < n && p[i] != '.' && p[i] != '[')
                i++;
            v = json_is_object(v) ? json_object_getn(v, p + b, i - b) : NULL;
        } else if (p[i + 1] == '\'' || p[i + 1] == '"') {
            size_t b = i + 2;
            const char *q = memchr(p + b, p[i + 1], n - b);
            size_t e = (size_t)(q - p);
            v = json_is_object(v) ? json_object_getn(v, p + b, e - b) : NULL;
            i = e + 2;
        } else {
            int neg = p[++i] == '-';
            long long x = 0;
            for (i += (size_t)neg; p[i] != ']'; i++)
                x = x * 10 + (p[i] - '0');
            i++;
            x = neg ? -x : x;
            if (x < 0)
                x += (long long)json_array_size(v);
            v = json_is_array(v) && x >= 0 ? json_array_get(v, (size_t)x) : NULL;
        }
        if (!v)
            return;
    }
    if (acc)
        json_array_append(acc, v);
    else
        *one = v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    size_t plen = nl ? (size_t)(nl - in) : size;
    const char *doc = nl ? nl + 1 : fixed_event;
    size_t dlen = nl ? size - plen - 1 : sizeof fixed_event - 1;
    int doc_ok = eb_json_check(doc, dlen, EB_DEFAULT_MAX_DEPTH, NULL) == EB_OK;

    /* the re-spellings of the whole document */
    eb_buf b = {0};
    eb_buf_puts(&b, "x");
    int rc = eb_jsontext_compact(&b, doc, dlen);
    FUZZ_ASSERT(rc == 0 || (rc == -1 && b.n == 1));
    if (doc_ok) {
        FUZZ_ASSERT(rc == 0);
        FUZZ_ASSERT(eb_json_check(b.p + 1, b.n - 1, EB_MAX_MAX_DEPTH, NULL) == EB_OK);
        json_t *a = json_loadb(doc, dlen, JFLAGS, NULL), *c = json_loadb(b.p + 1, b.n - 1, JFLAGS, NULL);
        FUZZ_ASSERT(!a == !c);
        FUZZ_ASSERT(!a || json_equal(a, c));
        json_decref(a);
        json_decref(c);
    }
    b.n = 0;
    rc = eb_jsontext_plain(&b, doc, dlen);
    FUZZ_ASSERT(rc == 0 || (rc == -1 && b.n == 0));
    if (doc_ok)
        FUZZ_ASSERT(rc == 0);

    char err[96];
    memset(err, 0x55, sizeof err);
    eb_jsonpath *jp = eb_jsonpath_compile(in, plen, err, sizeof err);
    if (!jp) {
        FUZZ_ASSERT(memchr(err, 0, sizeof err) != NULL && err[0]);
        eb_buf_free(&b);
        return 0;
    }
    FUZZ_ASSERT(plen > 0 && in[0] == '$');
    int multi = eb_jsonpath_is_multi(jp);
    b.n = 0;
    eb_buf_puts(&b, "x");
    int r = eb_jsonpath_eval(jp, doc, dlen, &b);
    FUZZ_ASSERT(r >= -1 && r <= 1);
    if (r <= 0)
        FUZZ_ASSERT(b.n == 1);
    if (multi)
        FUZZ_ASSERT(r != 0);
    const char *v = NULL;
    size_t vn = 0;
    int f = eb_jsonpath_find(jp, doc, dlen, &v, &vn);
    if (multi) {
        FUZZ_ASSERT(f == -1);
    } else {
        FUZZ_ASSERT(f == r);
        if (f == 1) {
            FUZZ_ASSERT(v >= doc && vn > 0 && v + vn <= doc + dlen);
            eb_buf c = {0};
            FUZZ_ASSERT(eb_jsontext_compact(&c, v, vn) == 0);
            FUZZ_ASSERT(c.n == b.n - 1 && !memcmp(c.p, b.p + 1, c.n));
            eb_buf_free(&c);
        }
    }
    if (doc_ok && r != -1) {
        if (r == 1) {
            FUZZ_ASSERT(eb_json_check(b.p + 1, b.n - 1, EB_MAX_MAX_DEPTH, NULL) == EB_OK);
            if (multi)
                FUZZ_ASSERT(b.p[1] == '[' && b.p[b.n - 1] == ']');
        }
        json_t *tree = json_loadb(doc, dlen, JFLAGS, NULL);
        if (tree) {
            json_t *acc = multi ? json_array() : NULL, *one = NULL;
            ref_walk(in, plen, 1, tree, acc, &one);
            json_t *got = r == 1 ? json_loadb(b.p + 1, b.n - 1, JFLAGS, NULL) : NULL;
            if (multi) {
                FUZZ_ASSERT(got && json_equal(got, acc));
            } else {
                FUZZ_ASSERT((one != NULL) == (r == 1));
                FUZZ_ASSERT(!one || (got && json_equal(got, one)));
            }
            json_decref(got);
            json_decref(acc);
            json_decref(tree);
        }
    }
    if (doc_ok)
        FUZZ_ASSERT(r != -1);
    eb_jsonpath_free(jp);
    eb_buf_free(&b);
    return 0;
}
