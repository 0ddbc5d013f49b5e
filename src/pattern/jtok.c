#include "jtok.h"

#include "internal.h"
#include "num.h"

#include <stdint.h>
#include <stdio.h>

enum {
    ST_ROOT,        /* expecting the root value */
    ST_ROOT_DONE,   /* root value complete */
    ST_OBJ_FIRST,   /* just after '{': key or '}' */
    ST_OBJ_COLON,   /* after key: ':' then value */
    ST_OBJ_NEXT,    /* after a member value: ',' or '}' */
    ST_ARR_FIRST,   /* just after '[': value or ']' */
    ST_ARR_NEXT     /* after an element: ',' or ']' */
};

void jtok_init(jtok *t, const char *text, size_t len, size_t max_depth)
{
    memset(t, 0, sizeof *t);
    t->p = text;
    t->end = text + len;
    t->max_depth = max_depth;
    t->state = ST_ROOT;
}

void jtok_free(jtok *t)
{
    free(t->stack);
    free(t->str);
    t->stack = NULL;
    t->str = NULL;
}

static void skip_ws(jtok *t)
{
    while (t->p < t->end && (*t->p == ' ' || *t->p == '\t' || *t->p == '\n' || *t->p == '\r'))
        t->p++;
}

static void char_desc(char *buf, size_t cap, unsigned c)
{
    if (c < 0x20)
        snprintf(buf, cap, "(CTRL-CHAR, code %u)", c);
    else if (c < 0x80)
        snprintf(buf, cap, "'%c' (code %u)", (char)c, c);
    else
        snprintf(buf, cap, "(code %u / 0x%x)", c, c);
}

static jt_type fail(jtok *t, const char *msg)
{
    ebp_errf(t->err, sizeof t->err, "%s", msg);
    t->type = JT_ERROR;
    return JT_ERROR;
}

static jt_type unexpected(jtok *t, const char *what)
{
    char d[48], msg[160];
    char_desc(d, sizeof d, (unsigned char)*t->p);
    snprintf(msg, sizeof msg, "Unexpected character (%s): %s", d, what);
    return fail(t, msg);
}

static jt_type eof_error(jtok *t)
{
    if (t->depth && t->stack[t->depth - 1])
        return fail(t, "Unexpected end-of-input: expected close marker for Object");
    if (t->depth)
        return fail(t, "Unexpected end-of-input: expected close marker for Array");
    return fail(t, "Unexpected end-of-input");
}

static int push(jtok *t, unsigned char is_obj)
{
    if (t->depth >= t->max_depth) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "Document nesting depth (%zu) exceeds the maximum allowed (%zu, from "
                 "`StreamReadConstraints.getMaxNestingDepth()`)",
                 t->depth + 1, t->max_depth);
        fail(t, msg);
        return -1;
    }
    if (t->depth == t->stack_cap) {
        size_t nc = t->stack_cap ? t->stack_cap * 2 : 32;
        unsigned char *ns = realloc(t->stack, nc);
        if (!ns) {
            fail(t, "out of memory");
            return -1;
        }
        t->stack = ns;
        t->stack_cap = nc;
    }
    t->stack[t->depth++] = is_obj;
    return 0;
}

static int str_put(jtok *t, const char *s, size_t n)
{
    if (t->slen + n + 1 > t->str_cap) {
        size_t nc = t->str_cap ? t->str_cap : 64;
        while (nc < t->slen + n + 1)
            nc *= 2;
        char *ns = realloc(t->str, nc);
        if (!ns)
            return -1;
        t->str = ns;
        t->str_cap = nc;
    }
    memcpy(t->str + t->slen, s, n);
    t->slen += n;
    t->str[t->slen] = 0;
    return 0;
}



/* Length of a valid UTF-8 sequence at p (multi-byte lead), 0 if invalid. */

/* Parse a string starting after the opening quote. */
static int read_string(jtok *t)
{
    t->slen = 0;
    if (str_put(t, "", 0))
        return fail(t, "out of memory"), -1;
    const char *p = t->p;
    for (;;) {
        const char *run = p;
        while (p < t->end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x80)
            p++;
        if (p > run && str_put(t, run, (size_t)(p - run)))
            return fail(t, "out of memory"), -1;
        if (p >= t->end) {
            t->p = p;
            fail(t, "Unexpected end-of-input: was expecting closing quote for a string value");
            return -1;
        }
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            t->p = p + 1;
            return 0;
        }
        if (c < 0x20) {
            char d[48], msg[200];
            char_desc(d, sizeof d, c);
            snprintf(msg, sizeof msg,
                     "Illegal unquoted character (%s): has to be escaped using backslash to be "
                     "included in string value",
                     d);
            t->p = p;
            fail(t, msg);
            return -1;
        }
        if (c >= 0x80) {
            size_t n = ebp_utf8_len((const unsigned char *)p, (const unsigned char *)t->end);
            if (!n) {
                char msg[64];
                snprintf(msg, sizeof msg, "Invalid UTF-8 start byte 0x%x", c);
                t->p = p;
                fail(t, msg);
                return -1;
            }
            if (str_put(t, p, n))
                return fail(t, "out of memory"), -1;
            p += n;
            continue;
        }
        /* backslash */
        p++;
        if (p >= t->end) {
            t->p = p;
            fail(t, "Unexpected end-of-input in character escape sequence");
            return -1;
        }
        char e = *p++;
        char out;
        switch (e) {
        case '"': out = '"'; break;
        case '\\': out = '\\'; break;
        case '/': out = '/'; break;
        case 'b': out = '\b'; break;
        case 'f': out = '\f'; break;
        case 'n': out = '\n'; break;
        case 'r': out = '\r'; break;
        case 't': out = '\t'; break;
        case 'u': {
            uint32_t cp;
            size_t used;
            if (ebp_json_u_escape((const unsigned char *)p, (const unsigned char *)t->end, &cp, &used)) {
                t->p = p;
                fail(t, "Unexpected character in Unicode escape: expected a hex-digit");
                return -1;
            }
            p += used;
            unsigned char b[4];
            if (str_put(t, (const char *)b, ebp_utf8_put(b, cp)))
                return fail(t, "out of memory"), -1;
            continue;
        }
        default: {
            char d[48], msg[120];
            char_desc(d, sizeof d, (unsigned char)e);
            snprintf(msg, sizeof msg, "Unrecognized character escape %s", d);
            t->p = p - 1;
            fail(t, msg);
            return -1;
        }
        }
        if (str_put(t, &out, 1))
            return fail(t, "out of memory"), -1;
    }
}

static int is_tok_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$' || c >= 0x80;
}

static jt_type bad_token(jtok *t)
{
    const char *s = t->p;
    while (s < t->end && is_tok_char((unsigned char)*s) && s - t->p < 256)
        s++;
    if (s == t->p)
        return unexpected(t, "expected a value");
    char msg[400];
    snprintf(msg, sizeof msg,
             "Unrecognized token '%.*s': was expecting (JSON String, Number, Array, Object or token "
             "'null', 'true' or 'false')",
             (int)(s - t->p), t->p);
    return fail(t, msg);
}

static jt_type read_value(jtok *t)
{
    skip_ws(t);
    if (t->p >= t->end)
        return eof_error(t);
    char c = *t->p;
    switch (c) {
    case '{':
        t->p++;
        if (push(t, 1))
            return JT_ERROR;
        t->state = ST_OBJ_FIRST;
        return t->type = JT_OBJ_START;
    case '[':
        t->p++;
        if (push(t, 0))
            return JT_ERROR;
        t->state = ST_ARR_FIRST;
        return t->type = JT_ARR_START;
    case '"':
        t->p++;
        if (read_string(t))
            return JT_ERROR;
        t->type = JT_STRING;
        break;
    case 't':
    case 'f':
    case 'n': {
        const char *w = c == 't' ? "true" : c == 'f' ? "false" : "null";
        size_t wl = strlen(w);
        if ((size_t)(t->end - t->p) >= wl && !memcmp(t->p, w, wl) &&
            (t->p + wl == t->end || !is_tok_char((unsigned char)t->p[wl]))) {
            t->p += wl;
            t->type = c == 't' ? JT_TRUE : c == 'f' ? JT_FALSE : JT_NULL;
            break;
        }
        return bad_token(t);
    }
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            size_t n = ebp_num_scan(t->p, t->end);
            if (!n) {
                if (c == '-' && (t->p + 1 >= t->end || t->p[1] < '0' || t->p[1] > '9'))
                    return fail(t,
                                "Unexpected character: expected digit (0-9) to follow minus sign, for valid "
                                "numeric value");
                return fail(t, "Invalid numeric value");
            }
            const char *after = t->p + n;
            if (after < t->end && (*after >= '0' && *after <= '9'))
                return fail(t, "Invalid numeric value: Leading zeroes not allowed");
            if (after < t->end && is_tok_char((unsigned char)*after)) {
                char d[48], msg[160];
                char_desc(d, sizeof d, (unsigned char)*after);
                snprintf(msg, sizeof msg,
                         "Unexpected character (%s) in numeric value: Decimal point, exponent or digit expected", d);
                return fail(t, msg);
            }
            t->num = t->p;
            t->nlen = n;
            t->is_int = 1;
            for (size_t i = 0; i < n; i++)
                if (t->p[i] == '.' || t->p[i] == 'e' || t->p[i] == 'E')
                    t->is_int = 0;
            t->p += n;
            t->type = JT_NUMBER;
            break;
        }
        return bad_token(t);
    }
    /* a scalar completed */
    if (!t->depth)
        t->state = ST_ROOT_DONE;
    else
        t->state = t->stack[t->depth - 1] ? ST_OBJ_NEXT : ST_ARR_NEXT;
    return t->type;
}

static jt_type close_container(jtok *t, int is_obj)
{
    t->p++;
    t->depth--;
    if (!t->depth)
        t->state = ST_ROOT_DONE;
    else
        t->state = t->stack[t->depth - 1] ? ST_OBJ_NEXT : ST_ARR_NEXT;
    return t->type = is_obj ? JT_OBJ_END : JT_ARR_END;
}

static jt_type read_key(jtok *t)
{
    /* t->p at the opening quote */
    t->p++;
    if (read_string(t))
        return JT_ERROR;
    t->state = ST_OBJ_COLON;
    return t->type = JT_FIELD;
}

jt_type jtok_next(jtok *t)
{
    if (t->type == JT_ERROR)
        return JT_ERROR;
    skip_ws(t);
    switch (t->state) {
    case ST_ROOT:
        if (t->p >= t->end)
            return t->type = JT_EOF;
        return read_value(t);
    case ST_ROOT_DONE:
        return t->type = JT_EOF;
    case ST_OBJ_FIRST:
        if (t->p >= t->end)
            return eof_error(t);
        if (*t->p == '}')
            return close_container(t, 1);
        if (*t->p != '"')
            return unexpected(t, "was expecting double-quote to start field name");
        return read_key(t);
    case ST_OBJ_NEXT:
        if (t->p >= t->end)
            return eof_error(t);
        if (*t->p == '}')
            return close_container(t, 1);
        if (*t->p == ']')
            return fail(t, "Unexpected close marker ']': expected '}'");
        if (*t->p != ',')
            return unexpected(t, "was expecting comma to separate Object entries");
        t->p++;
        skip_ws(t);
        if (t->p >= t->end)
            return eof_error(t);
        if (*t->p != '"')
            return unexpected(t, "was expecting double-quote to start field name");
        return read_key(t);
    case ST_OBJ_COLON:
        if (t->p >= t->end)
            return eof_error(t);
        if (*t->p != ':')
            return unexpected(t, "was expecting a colon to separate field name and value");
        t->p++;
        return read_value(t);
    case ST_ARR_FIRST:
        if (t->p >= t->end)
            return eof_error(t);
        if (*t->p == ']')
            return close_container(t, 0);
        return read_value(t);
    case ST_ARR_NEXT:
        if (t->p >= t->end)
            return eof_error(t);
        if (*t->p == ']')
            return close_container(t, 0);
        if (*t->p == '}')
            return fail(t, "Unexpected close marker '}': expected ']'");
        if (*t->p != ',')
            return unexpected(t, "was expecting comma to separate Array entries");
        t->p++;
        skip_ws(t);
        if (t->p < t->end && *t->p == ']')
            return unexpected(t, "expected a value");
        return read_value(t);
    }
    return fail(t, "internal tokenizer state");
}

jt_type jtok_finish(jtok *t)
{
    if (t->type == JT_ERROR)
        return JT_ERROR;
    skip_ws(t);
    if (t->p < t->end)
        return unexpected(t, "expected end-of-input after the pattern object");
    return JT_EOF;
}

const char *jtok_text(jtok *t)
{
    static const char *const names[] = {"", "{", "}", "[", "]"};
    switch (t->type) {
    case JT_FIELD:
    case JT_STRING:
        return t->str;
    case JT_NUMBER:
        /* copy into str so the caller gets a NUL-terminated text */
        t->slen = 0;
        if (str_put(t, t->num, t->nlen))
            return "";
        return t->str;
    case JT_TRUE:
        return "true";
    case JT_FALSE:
        return "false";
    case JT_NULL:
        return "null";
    case JT_OBJ_START:
    case JT_OBJ_END:
    case JT_ARR_START:
    case JT_ARR_END:
        return names[t->type];
    default:
        return "";
    }
}
