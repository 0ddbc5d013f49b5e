/* Input transformation for delivery: JSONPath subset, value re-spelling,
 * InputTemplate parsing and substitution, and the per-target input modes.
 * See transform.h for the contract and the reference §6.2–6.4 for the rules.
 *
 * Design: the event is never parsed into a tree.  A JSONPath is followed over
 * the event *text* with a small scanner (skip_value, obj_next, arr_next), and
 * a selected value is a span of that text.  This keeps numbers exactly as
 * written (42.5, 1e3, 123456789012345678901234567890), is as fast as one
 * pass over the parts of the event on the way, and allocates nothing.
 *
 * The scanner trusts that the text is JSON (events were validated at
 * ingestion) but stays memory-safe on any bytes: every read is bounds
 * checked, every loop advances, nothing recurses on the document's depth.
 * Garbage in gives garbage (or -1) out, never a crash. */
#include "transform.h"

#include <ebridge/pattern.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAD ((size_t)-1)


/* Undo appends made since `start` (the eb_buf contract keeps p NUL-terminated). */
static void buf_truncate(eb_buf *b, size_t start)
{
    b->n = start;
    if (b->p)
        b->p[start] = 0;
}

/* ==== scanner over JSON text ============================================== */

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && is_ws(s[i]))
        i++;
    return i;
}

/* s[i] is the opening quote of a string: the index after its closing quote,
 * or BAD.  memchr finds candidate quotes; an odd run of backslashes before
 * one means it is escaped. */
static size_t str_end(const char *s, size_t n, size_t i)
{
    size_t body = i + 1;
    for (size_t j = body; j < n;) {
        const char *q = memchr(s + j, '"', n - j);
        if (!q)
            return BAD;
        size_t at = (size_t)(q - s), bs = 0;
        while (at - bs > body && s[at - bs - 1] == '\\')
            bs++;
        if (bs % 2 == 0)
            return at + 1;
        j = at + 1;
    }
    return BAD;
}

static int is_scalar_byte(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' || c == '-' ||
           c == '.';
}

/* Bytes that matter while skipping a container: quotes and brackets. */
static int is_struct_byte(char c)
{
    static const unsigned char tbl[256] = {['"'] = 1, ['{'] = 1, ['}'] = 1, ['['] = 1, [']'] = 1};
    return tbl[(unsigned char)c];
}

/* s[i] starts a value: the index just after it, or BAD.  Containers are
 * skipped by counting brackets outside strings (no recursion). */
static size_t skip_value(const char *s, size_t n, size_t i)
{
    if (i >= n)
        return BAD;
    char c = s[i];
    if (c == '"')
        return str_end(s, n, i);
    if (c == '{' || c == '[') {
        size_t depth = 0;
        while (i < n) {
            while (i < n && !is_struct_byte(s[i]))
                i++;
            if (i >= n)
                break;
            c = s[i];
            if (c == '"') {
                i = str_end(s, n, i);
                if (i == BAD)
                    return BAD;
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0)
                return i + 1;
            i++;
        }
        return BAD;
    }
    size_t j = i;
    while (j < n && is_scalar_byte(s[j]))
        j++;
    return j > i ? j : BAD;
}

/* Iteration over the members of an object or the elements of an array. */
typedef struct {
    const char *s;
    size_t n, i;
    int first;
} jiter;

static void jiter_init(jiter *it, const char *s, size_t n, size_t open)
{
    it->s = s;
    it->n = n;
    it->i = open + 1;
    it->first = 1;
}

/* Before an entry: the separator.  1 = an entry starts at it->i, 0 = the
 * container closed with `close`, -1 = malformed. */
static int jiter_sep(jiter *it, char close)
{
    size_t i = skip_ws(it->s, it->n, it->i);
    if (i >= it->n)
        return -1;
    if (it->s[i] == close) {
        it->i = i + 1;
        return 0;
    }
    if (!it->first) {
        if (it->s[i] != ',')
            return -1;
        i = skip_ws(it->s, it->n, i + 1);
    }
    it->first = 0;
    it->i = i;
    return 1;
}

/* Next object member: key span [k0,k1) with its quotes, value [v0,v1). */
static int obj_next(jiter *it, size_t *k0, size_t *k1, size_t *v0, size_t *v1)
{
    int r = jiter_sep(it, '}');
    if (r <= 0)
        return r;
    const char *s = it->s;
    size_t n = it->n, i = it->i;
    if (i >= n || s[i] != '"')
        return -1;
    *k0 = i;
    i = str_end(s, n, i);
    if (i == BAD)
        return -1;
    *k1 = i;
    i = skip_ws(s, n, i);
    if (i >= n || s[i] != ':')
        return -1;
    i = skip_ws(s, n, i + 1);
    *v0 = i;
    i = skip_value(s, n, i);
    if (i == BAD)
        return -1;
    *v1 = it->i = i;
    return 1;
}

static int arr_next(jiter *it, size_t *v0, size_t *v1)
{
    int r = jiter_sep(it, ']');
    if (r <= 0)
        return r;
    size_t i = skip_value(it->s, it->n, it->i);
    if (i == BAD)
        return -1;
    *v0 = it->i;
    *v1 = it->i = i;
    return 1;
}

/* ---- string bodies ------------------------------------------------------ */

static long hex4(const char *s, size_t i, size_t end)
{
    if (i + 4 > end)
        return -1;
    long v = 0;
    for (size_t k = 0; k < 4; k++) {
        int h = eb_hexval((unsigned char)s[i + k]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static size_t utf8_put(unsigned long cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decode one character of a string body s[*pi..end) into UTF-8 bytes.
 * Lone surrogates become U+FFFD; a malformed escape yields its letter. */
static size_t dec_char(const char *s, size_t end, size_t *pi, char out[4])
{
    size_t i = *pi;
    char c = s[i];
    if (c != '\\' || i + 1 >= end) {
        out[0] = c;
        *pi = i + 1;
        return 1;
    }
    char e = s[i + 1];
    *pi = i + 2;
    switch (e) {
    case 'b': out[0] = '\b'; return 1;
    case 'f': out[0] = '\f'; return 1;
    case 'n': out[0] = '\n'; return 1;
    case 'r': out[0] = '\r'; return 1;
    case 't': out[0] = '\t'; return 1;
    case 'u': break;
    default: out[0] = e; return 1;
    }
    long cp = hex4(s, i + 2, end);
    if (cp < 0) {
        out[0] = e;
        return 1;
    }
    *pi = i + 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        long lo = (i + 7 < end && s[i + 6] == '\\' && s[i + 7] == 'u') ? hex4(s, i + 8, end) : -1;
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            *pi = i + 12;
            return utf8_put(0x10000ul + (((unsigned long)cp - 0xD800ul) << 10) + ((unsigned long)lo - 0xDC00ul), out);
        }
        cp = 0xFFFD;
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        cp = 0xFFFD;
    }
    return utf8_put((unsigned long)cp, out);
}

/* Append the decoded body of the string s[k0..k1) (k0/k1-1 are its quotes). */
static int append_decoded(eb_buf *out, const char *s, size_t k0, size_t k1)
{
    size_t end = k1 - 1, i = k0 + 1;
    while (i < end) {
        const char *bs = memchr(s + i, '\\', end - i);
        size_t stop = bs ? (size_t)(bs - s) : end;
        if (eb_buf_append(out, s + i, stop - i))
            return -1;
        i = stop;
        if (i < end) {
            char u[4];
            size_t k = dec_char(s, end, &i, u);
            if (eb_buf_append(out, u, k))
                return -1;
        }
    }
    return 0;
}

/* Does the string s[k0..k1) decode to name[0..len)? */
static int key_equals(const char *s, size_t k0, size_t k1, const char *name, size_t len)
{
    size_t i = k0 + 1, end = k1 - 1;
    if (!memchr(s + i, '\\', end - i))
        return end - i == len && memcmp(s + i, name, len) == 0;
    size_t at = 0;
    while (i < end) {
        char u[4];
        size_t k = dec_char(s, end, &i, u);
        if (at + k > len || memcmp(name + at, u, k) != 0)
            return 0;
        at += k;
    }
    return at == len;
}

/* ==== JSON value text ====================================================== */

/* The value in v[0..n) with only blanks around it: [*b, *e), else -1. */
static int value_bounds(const char *v, size_t n, size_t *b, size_t *e)
{
    size_t i = skip_ws(v, n, 0);
    size_t j = skip_value(v, n, i);
    if (j == BAD || skip_ws(v, n, j) != n)
        return -1;
    *b = i;
    *e = j;
    return 0;
}

/* plain = 0: compact; plain = 1: AWS's in-string form. */
static int respell(eb_buf *out, const char *v, size_t n, int plain)
{
    size_t i, end, start = out->n;
    if (value_bounds(v, n, &i, &end))
        return -1;
    size_t run = i;
    while (i < end) {
        char c = v[i];
        if (is_ws(c)) {
            if (eb_buf_append(out, v + run, i - run))
                goto fail;
            while (i < end && is_ws(v[i]))
                i++;
            run = i;
        } else if (c == '"') {
            size_t j = str_end(v, end, i);
            if (j == BAD)
                goto fail;
            if (plain) {
                if (eb_buf_append(out, v + run, i - run) || append_decoded(out, v, i, j))
                    goto fail;
                run = j;
            }
            i = j;
        } else {
            i++;
        }
    }
    if (eb_buf_append(out, v + run, end - run))
        goto fail;
    return 0;
fail:
    buf_truncate(out, start);
    return -1;
}

int eb_jsontext_compact(eb_buf *out, const char *v, size_t n)
{
    return respell(out, v, n, 0);
}

int eb_jsontext_plain(eb_buf *out, const char *v, size_t n)
{
    return respell(out, v, n, 1);
}

/* ==== JSONPath ============================================================= */

enum { JP_NAME, JP_INDEX, JP_WILD };

typedef struct {
    int kind;
    long long index;  /* JP_INDEX */
    size_t off, len;  /* JP_NAME: the name in jp->text */
} jp_step;

struct eb_jsonpath {
    char *text;
    int multi;
    size_t nsteps;
    jp_step steps[];
};

static int name_byte(unsigned char c)
{
    return c > 0x20 && c != 0x7f && !strchr(".[]*'\"\\", c);
}

eb_jsonpath *eb_jsonpath_compile(const char *path, size_t len, char *err, size_t errlen)
{
    if (!path || len == 0 || path[0] != '$') {
        eb_set_err(err, errlen, "a JSON path must start with $");
        return NULL;
    }
    size_t cap = len / 2 + 1;
    if (cap > EB_JSONPATH_MAX_STEPS)
        cap = EB_JSONPATH_MAX_STEPS;
    eb_jsonpath *jp = calloc(1, sizeof *jp + cap * sizeof(jp_step));
    if (!jp || !(jp->text = malloc(len + 1))) {
        free(jp);
        eb_set_err(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(jp->text, path, len);
    jp->text[len] = 0;
    for (size_t i = 1; i < len;) {
        if (jp->nsteps == cap) {
            eb_set_err(err, errlen, "a JSON path may have at most %d steps", EB_JSONPATH_MAX_STEPS);
            goto fail;
        }
        jp_step *st = &jp->steps[jp->nsteps];
        if (path[i] == '.') {
            i++;
            if (i < len && path[i] == '*') {
                st->kind = JP_WILD;
                i++;
            } else {
                size_t b = i;
                while (i < len && name_byte((unsigned char)path[i]))
                    i++;
                if (i == b) {
                    eb_set_err(err, errlen, "a member name is expected at offset %zu of the JSON path", b);
                    goto fail;
                }
                st->kind = JP_NAME;
                st->off = b;
                st->len = i - b;
            }
        } else if (path[i] == '[') {
            i++;
            if (i + 1 < len && path[i] == '*' && path[i + 1] == ']') {
                st->kind = JP_WILD;
                i += 2;
            } else if (i < len && (path[i] == '\'' || path[i] == '"')) {
                const char *q = memchr(path + i + 1, path[i], len - i - 1);
                size_t e = q ? (size_t)(q - path) : len;
                if (e + 1 >= len || path[e + 1] != ']') {
                    eb_set_err(err, errlen, "unterminated bracketed name at offset %zu of the JSON path", i);
                    goto fail;
                }
                st->kind = JP_NAME;
                st->off = i + 1;
                st->len = e - i - 1;
                i = e + 2;
            } else {
                size_t b = i;
                int neg = i < len && path[i] == '-';
                if (neg)
                    i++;
                long long v = 0;
                size_t digits = 0;
                while (i < len && path[i] >= '0' && path[i] <= '9' && digits < 18) {
                    v = v * 10 + (path[i] - '0');
                    i++;
                    digits++;
                }
                if (!digits || i >= len || path[i] != ']') {
                    eb_set_err(err, errlen, "an array index, * or a quoted name is expected at offset %zu of the JSON path",
                           b);
                    goto fail;
                }
                i++;
                st->kind = JP_INDEX;
                st->index = neg ? -v : v;
            }
        } else {
            eb_set_err(err, errlen, "unexpected character at offset %zu of the JSON path", i);
            goto fail;
        }
        if (st->kind == JP_WILD)
            jp->multi = 1;
        jp->nsteps++;
    }
    return jp;
fail:
    eb_jsonpath_free(jp);
    return NULL;
}

void eb_jsonpath_free(eb_jsonpath *jp)
{
    if (!jp)
        return;
    free(jp->text);
    free(jp);
}

int eb_jsonpath_is_multi(const eb_jsonpath *jp)
{
    return jp->multi;
}

/* One name or index step from the value [v0..) : 1 with the child span,
 * 0 no such child, -1 malformed. */
static int step_child(const eb_jsonpath *jp, const jp_step *st, const char *s, size_t n, size_t v0, size_t *c0,
                      size_t *c1)
{
    jiter it;
    size_t a, b, k0, k1;
    int r, found = 0;
    if (st->kind == JP_NAME) {
        if (s[v0] != '{')
            return 0;
        jiter_init(&it, s, n, v0);
        /* the last duplicate wins, as with Jackson and jansson */
        while ((r = obj_next(&it, &k0, &k1, &a, &b)) > 0)
            if (key_equals(s, k0, k1, jp->text + st->off, st->len)) {
                *c0 = a;
                *c1 = b;
                found = 1;
            }
        return r < 0 ? -1 : found;
    }
    if (s[v0] != '[')
        return 0;
    long long want = st->index;
    if (want < 0) {
        long long count = 0;
        jiter_init(&it, s, n, v0);
        while ((r = arr_next(&it, &a, &b)) > 0)
            count++;
        if (r < 0)
            return -1;
        want += count;
        if (want < 0)
            return 0;
    }
    jiter_init(&it, s, n, v0);
    for (long long k = 0; (r = arr_next(&it, &a, &b)) > 0; k++)
        if (k == want) {
            *c0 = a;
            *c1 = b;
            return 1;
        }
    return r < 0 ? -1 : 0;
}

/* The root value span of the text, or -1. */
static int root_span(const char *s, size_t n, size_t *v0, size_t *v1)
{
    *v0 = skip_ws(s, n, 0);
    *v1 = skip_value(s, n, *v0);
    return *v1 == BAD ? -1 : 0;
}

int eb_jsonpath_find(const eb_jsonpath *jp, const char *json, size_t len, const char **val, size_t *vlen)
{
    size_t v0, v1;
    if (jp->multi || root_span(json, len, &v0, &v1))
        return -1;
    for (size_t k = 0; k < jp->nsteps; k++) {
        int r = step_child(jp, &jp->steps[k], json, len, v0, &v0, &v1);
        if (r <= 0)
            return r;
    }
    *val = json + v0;
    *vlen = v1 - v0;
    return 1;
}

/* Multi-path evaluation: every match from step k on below [v0,v1) is
 * appended to out, comma-separated.  Recursion happens only at wildcard
 * steps, so its depth is bounded by the number of steps. */
static int eval_multi(const eb_jsonpath *jp, size_t k, const char *s, size_t n, size_t v0, size_t v1, eb_buf *out,
                      size_t *count)
{
    for (; k < jp->nsteps; k++) {
        const jp_step *st = &jp->steps[k];
        if (st->kind == JP_WILD) {
            jiter it;
            size_t a, b, k0, k1;
            int r;
            if (s[v0] != '{' && s[v0] != '[')
                return 0;
            jiter_init(&it, s, n, v0);
            while ((r = s[v0] == '{' ? obj_next(&it, &k0, &k1, &a, &b) : arr_next(&it, &a, &b)) > 0)
                if (eval_multi(jp, k + 1, s, n, a, b, out, count))
                    return -1;
            return r < 0 ? -1 : 0;
        }
        int r = step_child(jp, st, s, n, v0, &v0, &v1);
        if (r <= 0)
            return r;
    }
    if ((*count && eb_buf_putc(out, ',')) || eb_jsontext_compact(out, s + v0, v1 - v0))
        return -1;
    ++*count;
    return 0;
}

int eb_jsonpath_eval(const eb_jsonpath *jp, const char *json, size_t len, eb_buf *out)
{
    if (!jp->multi) {
        const char *v;
        size_t vn;
        int r = eb_jsonpath_find(jp, json, len, &v, &vn);
        if (r <= 0)
            return r;
        return eb_jsontext_compact(out, v, vn) ? -1 : 1;
    }
    size_t v0, v1, count = 0, start = out->n;
    if (root_span(json, len, &v0, &v1) || eb_buf_putc(out, '[') ||
        eval_multi(jp, 0, json, len, v0, v1, out, &count) || eb_buf_putc(out, ']')) {
        buf_truncate(out, start);
        return -1;
    }
    return 1;
}

/* ==== InputTemplate ======================================================== */

static const char *const PREDEF[EB_TPL_NPREDEF] = {"aws.events.rule-arn", "aws.events.rule-name",
                                                    "aws.events.event.ingestion-time", "aws.events.event",
                                                    "aws.events.event.json"};

const char *eb_template_predefined_name(int k)
{
    return k >= 0 && k < EB_TPL_NPREDEF ? PREDEF[k] : NULL;
}

static int predef_index(const char *name, size_t n)
{
    for (int k = 0; k < EB_TPL_NPREDEF; k++)
        if (strlen(PREDEF[k]) == n && !memcmp(PREDEF[k], name, n))
            return k;
    return -1;
}

#define LITERAL ((size_t)-1)

typedef struct {
    size_t off, len; /* literal text in t->text */
    size_t var;      /* LITERAL, or the variable index */
    int in_str;      /* JSON template: the placeholder is inside a JSON string */
} tpl_seg;

struct eb_template {
    int json;
    char *text;
    size_t len, nseg, nvars;
    tpl_seg *segs;
    unsigned char *used;
};

void eb_template_free(eb_template *t)
{
    if (!t)
        return;
    free(t->text);
    free(t->segs);
    free(t->used);
    free(t);
}

int eb_template_is_json(const eb_template *t)
{
    return t->json;
}

int eb_template_uses(const eb_template *t, size_t v)
{
    return v < t->nvars && t->used[v];
}

static int placeholder_byte(char c)
{
    return c != '>' && c != '<' && c != ' ' && c != '\n' && c != '\t' && c != '"' && c != 0;
}

static int seg_add(eb_template *t, size_t *cap, size_t off, size_t len, size_t var, int in_str)
{
    if (var == LITERAL && len == 0)
        return 0;
    if (t->nseg == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        tpl_seg *ns = realloc(t->segs, nc * sizeof *ns);
        if (!ns)
            return -1;
        t->segs = ns;
        *cap = nc;
    }
    t->segs[t->nseg++] = (tpl_seg){off, len, var, in_str};
    return 0;
}

/* The variable index a placeholder name refers to, or LITERAL if unknown. */
static size_t lookup_var(const char *name, size_t n, const char *const *names, size_t nnames)
{
    int k = predef_index(name, n);
    if (k >= 0)
        return nnames + (size_t)k;
    for (size_t i = 0; i < nnames; i++)
        if (strlen(names[i]) == n && !memcmp(names[i], name, n))
            return i;
    return LITERAL;
}

/* Placeholder syntax shared with the CloudWatch Logs check: if tpl[i] opens
 * a placeholder, its closing '>' index, else 0. */
static size_t placeholder_end(const char *tpl, size_t len, size_t i)
{
    size_t q = i + 1;
    while (q < len && placeholder_byte(tpl[q]))
        q++;
    return q < len && tpl[q] == '>' && q > i + 1 ? q : 0;
}

static int first_is_brace(const char *tpl, size_t len)
{
    size_t i = skip_ws(tpl, len, 0);
    return i < len && tpl[i] == '{';
}

eb_template *eb_template_parse(const char *tpl, size_t len, const char *const *names, size_t nnames,
                               const char *target_id, char *err, size_t errlen)
{
    const char *id = target_id ? target_id : "";
    eb_template *t = calloc(1, sizeof *t);
    if (!t)
        goto oom;
    t->json = first_is_brace(tpl, len);
    t->len = len;
    t->nvars = nnames + EB_TPL_NPREDEF;
    t->text = malloc(len + 1);
    t->used = calloc(t->nvars, 1);
    if (!t->text || !t->used)
        goto oom;
    if (len)
        memcpy(t->text, tpl, len);
    t->text[len] = 0;
    size_t cap = 0, lit = 0;
    int in_str = 0;
    for (size_t i = 0; i < len;) {
        char c = tpl[i];
        size_t q = c == '<' ? placeholder_end(tpl, len, i) : 0;
        if (q) {
            size_t v = lookup_var(tpl + i + 1, q - i - 1, names, nnames);
            if (v == LITERAL) {
                eb_set_err(err, errlen, "InputTemplate for target %s contains invalid placeholder %.*s.", id,
                       (int)(q - i - 1), tpl + i + 1);
                goto fail;
            }
            if (!t->json && (v == nnames + EB_TPL_EVENT || v == nnames + EB_TPL_EVENT_JSON)) {
                eb_set_err(err, errlen, "InputTemplate for target %s contains placeholder %s valid only for JSON template.",
                       id, PREDEF[v - nnames]);
                goto fail;
            }
            if (seg_add(t, &cap, lit, i - lit, LITERAL, 0) || seg_add(t, &cap, 0, 0, v, in_str))
                goto oom;
            t->used[v] = 1;
            i = lit = q + 1;
            continue;
        }
        if (t->json && in_str && c == '\\') {
            /* an escaped quote does not end the string; an escaped '<' may
             * still open a placeholder (as the PutTargets check sees it) */
            i++;
            if (i < len && tpl[i] != '<')
                i++;
            continue;
        }
        if (t->json && c == '"')
            in_str = !in_str;
        i++;
    }
    if (seg_add(t, &cap, lit, len - lit, LITERAL, 0))
        goto oom;
    return t;
oom:
    eb_set_err(err, errlen, "out of memory");
fail:
    eb_template_free(t);
    return NULL;
}

/* One substitution (reference §6.4 table). */
static int put_value(const eb_template *t, const tpl_seg *sg, const eb_tpl_value *v, eb_buf *out)
{
    if (!v->json) /* path selected nothing */
        return t->json && !sg->in_str ? eb_buf_append(out, "\"\"", 2) : 0;
    size_t b, e;
    if (value_bounds(v->json, v->len, &b, &e))
        return -1;
    char c = v->json[b];
    if (c == '"' && (!t->json || sg->in_str))
        return append_decoded(out, v->json, b, e);
    if (!t->json && (c == '{' || c == '['))
        return eb_jsontext_plain(out, v->json, v->len);
    return eb_jsontext_compact(out, v->json, v->len);
}

int eb_template_render(const eb_template *t, const eb_tpl_value *vals, eb_buf *out)
{
    size_t start = out->n;
    for (size_t i = 0; i < t->nseg; i++) {
        const tpl_seg *sg = &t->segs[i];
        int r = sg->var == LITERAL ? eb_buf_append(out, t->text + sg->off, sg->len) : put_value(t, sg, &vals[sg->var], out);
        if (r || out->n - start > EB_INPUT_MAX_OUTPUT) {
            buf_truncate(out, start);
            return EB_INPUT_ERR;
        }
    }
    if (t->json && eb_json_check(out->p ? out->p + start : "", out->n - start, EB_DEFAULT_MAX_DEPTH, NULL) != EB_OK) {
        buf_truncate(out, start);
        return EB_INPUT_SKIP;
    }
    return EB_INPUT_OK;
}

/* ==== per-target input ===================================================== */

enum { MODE_EVENT, MODE_CONST, MODE_PATH, MODE_TEMPLATE };

struct eb_input {
    int mode;
    char *text; /* MODE_CONST */
    size_t len;
    eb_jsonpath *path;   /* MODE_PATH */
    eb_template *tpl;    /* MODE_TEMPLATE */
    size_t nnames;       /* InputPathsMap entries */
    eb_jsonpath **paths; /* their compiled paths, in map order */
};

void eb_input_free(eb_input *in)
{
    if (!in)
        return;
    free(in->text);
    eb_jsonpath_free(in->path);
    eb_template_free(in->tpl);
    for (size_t i = 0; i < in->nnames; i++)
        eb_jsonpath_free(in->paths[i]);
    free(in->paths);
    free(in);
}

/* A member that is present and not null. */
static const json_t *member(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return v && !json_is_null(v) ? v : NULL;
}

static int compile_transformer(eb_input *in, const json_t *tr, const char *id, char *err, size_t errlen)
{
    const json_t *map = member(tr, "InputPathsMap");
    const json_t *tpl = member(tr, "InputTemplate");
    if (!json_is_object(tr) || (map && !json_is_object(map))) {
        eb_set_err(err, errlen, "InputTransformer for target %s is not valid.", id);
        return -1;
    }
    if (!json_is_string(tpl)) {
        eb_set_err(err, errlen, "InputTemplate for target %s is missing.", id);
        return -1;
    }
    size_t n = json_object_size(map);
    const char **names = calloc(n ? n : 1, sizeof *names);
    in->paths = calloc(n ? n : 1, sizeof *in->paths);
    if (!names || !in->paths) {
        free(names);
        eb_set_err(err, errlen, "out of memory");
        return -1;
    }
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)map, k, v) {
        names[in->nnames] = k;
        if (!strncmp(k, "AWS.", 4) || predef_index(k, strlen(k)) >= 0) {
            eb_set_err(err, errlen, "InputPathsMap for target %s uses the reserved name %s.", id, k);
            goto fail;
        }
        char why[128];
        in->paths[in->nnames] =
            json_is_string(v) ? eb_jsonpath_compile(json_string_value(v), json_string_length(v), why, sizeof why) : NULL;
        if (!in->paths[in->nnames]) {
            eb_set_err(err, errlen, "InputPathsMap for target %s has an invalid JSON path for %s.", id, k);
            goto fail;
        }
        in->nnames++;
    }
    in->tpl = eb_template_parse(json_string_value(tpl), json_string_length(tpl), names, n, id, err, errlen);
    free(names);
    return in->tpl ? 0 : -1;
fail:
    free(names);
    return -1;
}

eb_input *eb_input_compile(const json_t *target, char *err, size_t errlen)
{
    const char *id = json_string_value(json_object_get(target, "Id"));
    if (!id)
        id = "";
    const json_t *input = member(target, "Input"), *path = member(target, "InputPath"),
                 *tr = member(target, "InputTransformer");
    if (!!input + !!path + !!tr > 1) {
        eb_set_err(err, errlen, "Only one of Input, InputPath, or InputTransformer must be provided for target %s.", id);
        return NULL;
    }
    eb_input *in = calloc(1, sizeof *in);
    if (!in) {
        eb_set_err(err, errlen, "out of memory");
        return NULL;
    }
    if (input) {
        in->mode = MODE_CONST;
        const char *s = json_string_value(input);
        size_t n = json_string_length(input);
        if (!s || eb_json_check(s, n, EB_DEFAULT_MAX_DEPTH, NULL) != EB_OK) {
            eb_set_err(err, errlen, "Input for target %s is not a valid JSON text.", id);
            goto fail;
        }
        if (!(in->text = malloc(n + 1))) {
            eb_set_err(err, errlen, "out of memory");
            goto fail;
        }
        memcpy(in->text, s, n);
        in->text[n] = 0;
        in->len = n;
    } else if (path) {
        in->mode = MODE_PATH;
        char why[128];
        in->path = json_is_string(path) ? eb_jsonpath_compile(json_string_value(path), json_string_length(path), why,
                                                               sizeof why)
                                        : NULL;
        if (!in->path) {
            eb_set_err(err, errlen, "InputPath for target %s is not a valid JSON path.", id);
            goto fail;
        }
    } else if (tr) {
        in->mode = MODE_TEMPLATE;
        if (compile_transformer(in, tr, id, err, errlen))
            goto fail;
    }
    return in;
fail:
    eb_input_free(in);
    return NULL;
}

int eb_input_validate(const json_t *target, char *err, size_t errlen)
{
    eb_input *in = eb_input_compile(target, err, errlen);
    if (!in)
        return -1;
    eb_input_free(in);
    return eb_input_check_log_template(target, err, errlen);
}

/* ---- predefined values ---------------------------------------------------- */

/* `YYYY-MM-DDThh:mm:ss.mmmZ` (UTC) as a JSON string. */
static int put_ingestion_time(eb_buf *b, int64_t ms)
{
    int64_t s = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        s--;
    }
    char base[21];
    eb_time_rfc3339(s, base);
    return eb_buf_printf(b, "\"%.19s.%03dZ\"", base, (int)frac);
}

/* aws.events.event: the envelope without detail, detail-type spelled
 * detailType, in the key order AWS was observed to use. */
static int put_event_summary(eb_buf *b, const char *s, size_t n)
{
    static const char *const in_keys[] = {"id", "account", "detail-type", "time", "source", "region", "resources",
                                          "version"};
    static const char *const out_keys[] = {"id", "account", "detailType", "time", "source", "region", "resources",
                                           "version"};
    enum { NK = sizeof in_keys / sizeof *in_keys };
    size_t v0[NK], v1[NK], r0, r1, k0, k1, a, c;
    int found[NK] = {0}, r;
    if (root_span(s, n, &r0, &r1) || s[r0] != '{')
        return -1;
    jiter it;
    jiter_init(&it, s, n, r0);
    while ((r = obj_next(&it, &k0, &k1, &a, &c)) > 0)
        for (size_t k = 0; k < NK; k++)
            if (key_equals(s, k0, k1, in_keys[k], strlen(in_keys[k]))) {
                v0[k] = a;
                v1[k] = c;
                found[k] = 1;
            }
    if (r < 0 || eb_buf_putc(b, '{'))
        return -1;
    int first = 1;
    for (size_t k = 0; k < NK; k++) {
        if (!found[k])
            continue;
        if (eb_buf_printf(b, "%s\"%s\":", first ? "" : ",", out_keys[k]) || eb_jsontext_compact(b, s + v0[k], v1[k] - v0[k]))
            return -1;
        first = 0;
    }
    return eb_buf_putc(b, '}');
}

static int render_template(const eb_input *in, const eb_input_ctx *ctx, eb_buf *out, char *why, size_t whylen)
{
    const char *ev = ctx->event;
    size_t evn = ctx->event_len, nv = in->nnames + EB_TPL_NPREDEF;
    eb_tpl_value *vals = calloc(nv, sizeof *vals);
    size_t *scratch_off = calloc(nv, sizeof *scratch_off); /* BAD: value is not in scratch */
    eb_buf scratch = {0};
    int rc = EB_INPUT_ERR;
    if (!vals || !scratch_off) {
        eb_set_err(why, whylen, "out of memory");
        goto done;
    }
    for (size_t v = 0; v < nv; v++) {
        scratch_off[v] = BAD;
        if (!eb_template_uses(in->tpl, v))
            continue;
        size_t at = scratch.n;
        int r = 1;
        if (v < in->nnames) {
            const eb_jsonpath *jp = in->paths[v];
            if (eb_jsonpath_is_multi(jp)) {
                r = eb_jsonpath_eval(jp, ev, evn, &scratch);
                scratch_off[v] = at;
            } else {
                r = eb_jsonpath_find(jp, ev, evn, &vals[v].json, &vals[v].len);
            }
        } else {
            switch ((int)(v - in->nnames)) {
            case EB_TPL_RULE_ARN:
            case EB_TPL_RULE_NAME: {
                const char *s = v - in->nnames == EB_TPL_RULE_ARN ? ctx->rule_arn : ctx->rule_name;
                r = eb_buf_json_str(&scratch, s ? s : "", s ? strlen(s) : 0) ? -1 : 1;
                break;
            }
            case EB_TPL_INGESTION_TIME: r = put_ingestion_time(&scratch, ctx->ingestion_ms) ? -1 : 1; break;
            case EB_TPL_EVENT: r = put_event_summary(&scratch, ev, evn) ? -1 : 1; break;
            default: {
                size_t r0, r1;
                r = root_span(ev, evn, &r0, &r1) ? -1 : 1;
                vals[v].json = ev + r0;
                vals[v].len = r1 - r0;
            }
            }
            if (v - in->nnames != EB_TPL_EVENT_JSON)
                scratch_off[v] = at;
        }
        if (r < 0) {
            eb_set_err(why, whylen, "the event is malformed or memory ran out");
            goto done;
        }
        if (r == 0) /* nothing selected */
            vals[v].json = NULL;
        else if (scratch_off[v] != BAD)
            vals[v].len = scratch.n - at;
    }
    /* scratch is complete: its values can be pointed at now */
    for (size_t v = 0; v < nv; v++)
        if (scratch_off[v] != BAD)
            vals[v].json = scratch.p + scratch_off[v];
    rc = eb_template_render(in->tpl, vals, out);
    if (rc == EB_INPUT_SKIP)
        eb_set_err(why, whylen, "the transformed input is not valid JSON");
    else if (rc == EB_INPUT_ERR)
        eb_set_err(why, whylen, "the transformed input is too large or memory ran out");
done:
    free(vals);
    free(scratch_off);
    eb_buf_free(&scratch);
    return rc;
}

int eb_input_render(const eb_input *in, const eb_input_ctx *ctx, eb_buf *out, char *why, size_t whylen)
{
    size_t start = out->n;
    switch (in->mode) {
    case MODE_CONST:
        if (eb_buf_append(out, in->text, in->len))
            break;
        return EB_INPUT_OK;
    case MODE_PATH: {
        int r = eb_jsonpath_eval(in->path, ctx->event, ctx->event_len, out);
        if (r > 0 && out->n - start > EB_INPUT_MAX_OUTPUT) {
            buf_truncate(out, start);
            eb_set_err(why, whylen, "the selected input is too large");
            return EB_INPUT_ERR;
        }
        if (r > 0)
            return EB_INPUT_OK;
        if (r == 0) {
            eb_set_err(why, whylen, "InputPath selects nothing in the event");
            return EB_INPUT_SKIP;
        }
        eb_set_err(why, whylen, "the event is malformed or memory ran out");
        return EB_INPUT_ERR;
    }
    case MODE_TEMPLATE: return render_template(in, ctx, out, why, whylen);
    default:
        if (eb_buf_append(out, ctx->event, ctx->event_len))
            break;
        return EB_INPUT_OK;
    }
    buf_truncate(out, start);
    eb_set_err(why, whylen, "out of memory");
    return EB_INPUT_ERR;
}

/* ---- HttpParameters dynamic values ---------------------------------------- */

/* s is a whole-value JSONPath ("$." or "$[" and a valid path): a new string
 * with its value in the event, else NULL (keep s). */
static json_t *dynamic_value(const char *s, size_t n, const char *ev, size_t evn)
{
    if (n < 2 || s[0] != '$' || (s[1] != '.' && s[1] != '['))
        return NULL;
    eb_jsonpath *jp = eb_jsonpath_compile(s, n, NULL, 0);
    if (!jp)
        return NULL;
    eb_buf b = {0};
    const char *v;
    size_t vn;
    if (eb_jsonpath_is_multi(jp)) {
        if (eb_jsonpath_eval(jp, ev, evn, &b) < 0)
            buf_truncate(&b, 0);
    } else if (eb_jsonpath_find(jp, ev, evn, &v, &vn) > 0) {
        size_t i = skip_ws(v, vn, 0);
        int r = v[i] == '"' ? append_decoded(&b, v, i, skip_value(v, vn, i)) : eb_jsontext_compact(&b, v, vn);
        if (r)
            buf_truncate(&b, 0);
    }
    json_t *j = b.n ? json_stringn(b.p, b.n) : json_string("");
    if (!j)
        j = json_string("");
    eb_buf_free(&b);
    eb_jsonpath_free(jp);
    return j;
}

static void dynamic_object(json_t *o, const char *ev, size_t evn)
{
    for (void *it = json_object_iter(o); it; it = json_object_iter_next(o, it)) {
        json_t *v = json_object_iter_value(it);
        json_t *nv = json_is_string(v) ? dynamic_value(json_string_value(v), json_string_length(v), ev, evn) : NULL;
        if (nv)
            json_object_iter_set_new(o, it, nv);
    }
}

json_t *eb_input_http_params(const json_t *http_params, const char *event, size_t event_len)
{
    if (!json_is_object(http_params))
        return NULL;
    json_t *o = json_deep_copy(http_params);
    if (!o)
        return NULL;
    json_t *pp = json_object_get(o, "PathParameterValues");
    for (size_t i = 0; json_is_array(pp) && i < json_array_size(pp); i++) {
        json_t *v = json_array_get(pp, i);
        json_t *nv = json_is_string(v) ? dynamic_value(json_string_value(v), json_string_length(v), event, event_len)
                                       : NULL;
        if (nv)
            json_array_set_new(pp, i, nv);
    }
    json_t *h = json_object_get(o, "HeaderParameters");
    if (json_is_object(h))
        dynamic_object(h, event, event_len);
    json_t *q = json_object_get(o, "QueryStringParameters");
    if (json_is_object(q))
        dynamic_object(q, event, event_len);
    return o;
}

/* ---- CloudWatch Logs template rule ----------------------------------------- */

static int is_logs_arn(const char *arn)
{
    if (!arn || strncmp(arn, "arn:", 4))
        return 0;
    const char *p = strchr(arn + 4, ':');
    return p && !strncmp(p + 1, "logs:", 5);
}

int eb_input_check_log_template(const json_t *target, char *err, size_t errlen)
{
    const json_t *tr = member(target, "InputTransformer");
    const json_t *tpl = json_is_object(tr) ? member(tr, "InputTemplate") : NULL;
    if (!is_logs_arn(json_string_value(json_object_get(target, "Arn"))) || !json_is_string(tpl))
        return 0;
    const char *s = json_string_value(tpl);
    size_t n = json_string_length(tpl);
    /* Probe: the template with each placeholder outside strings replaced by
     * 0, then parsed: it must be an object with exactly the two members. */
    eb_buf probe = {0};
    int in_str = 0, ok = 0;
    size_t lit = 0;
    for (size_t i = 0; i < n;) {
        size_t q = s[i] == '<' && !in_str ? placeholder_end(s, n, i) : 0;
        if (q) {
            if (eb_buf_append(&probe, s + lit, i - lit) || eb_buf_putc(&probe, '0'))
                goto done;
            i = lit = q + 1;
            continue;
        }
        if (in_str && s[i] == '\\')
            i++;
        else if (s[i] == '"')
            in_str = !in_str;
        i++;
    }
    if (eb_buf_append(&probe, s + lit, n - lit))
        goto done;
    json_t *j = probe.n ? json_loadb(probe.p, probe.n, 0, NULL) : NULL;
    ok = json_is_object(j) && json_object_size(j) == 2 && json_object_get(j, "timestamp") &&
         json_object_get(j, "message");
    json_decref(j);
done:
    eb_buf_free(&probe);
    if (ok)
        return 0;
    const char *id = json_string_value(json_object_get(target, "Id"));
    eb_set_err(err, errlen,
           "InputTemplate for target %s must be {\"timestamp\": <timestamp>, \"message\": <message>} "
           "for a CloudWatch Logs target.",
           id ? id : "");
    return -1;
}
