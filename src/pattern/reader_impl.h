/* The event reader, instantiated twice by match.c:
 *   RD_V 1  validating: full RFC 8259 + UTF-8 checks, reads the whole event;
 *   RD_V 0  trusting: skips checks and stops once no pattern can need more,
 *           but never reads outside [start, end) whatever the bytes are.
 * It walks only the parts of the event that some pattern names (the path
 * trie), hands leaf values to the path's value matcher, and skips the rest.
 * Return values: 0 ok, 1 stop early (all needed fields seen), -1 error. */

#define RDF(name) RD_CAT(name, RD_SUFFIX)
#define RD_CAT(a, b) RD_CAT2(a, b)
#define RD_CAT2(a, b) a##b

static int RDF(fail_)(rd *r, const unsigned char *at, const char *msg)
{
    r->mt->err = msg;
    r->mt->err_off = (size_t)(at - r->start);
    return -1;
}

/* Skip a string whose opening quote is at p[-1]; returns the closing quote
 * or NULL.  *esc is set when the string holds a backslash. */
static const unsigned char *RDF(str_end_)(rd *r, const unsigned char *p, int *esc)
{
    const unsigned char *end = r->end;
    *esc = 0;
    for (;;) {
#if RD_V
        p = find_qb_strict(p, end);
#else
        p = find_qb(p, end);
#endif
        if (p >= end) {
            RDF(fail_)(r, p, "unterminated string");
            return NULL;
        }
        unsigned char c = *p;
        if (c == '"')
            return p;
        if (c == '\\') {
            *esc = 1;
            if (p + 1 >= end) {
                RDF(fail_)(r, p, "unterminated string");
                return NULL;
            }
#if RD_V
            unsigned char e = p[1];
            if (e == 'u') {
                uint32_t cp;
                if (end - p < 6 || ebp_hex4(p + 2, &cp)) {
                    RDF(fail_)(r, p, "invalid \\u escape in string");
                    return NULL;
                }
                p += 6;
                continue;
            }
            if (!(e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't')) {
                RDF(fail_)(r, p, "invalid escape in string");
                return NULL;
            }
#endif
            p += 2;
            continue;
        }
#if RD_V
        if (c < 0x20) {
            RDF(fail_)(r, p, "control character in string");
            return NULL;
        }
        /* c >= 0x80: validate one UTF-8 sequence */
        size_t n = ebp_utf8_len(p, end);
        if (!n) {
            RDF(fail_)(r, p, "invalid UTF-8 in string");
            return NULL;
        }
        p += n;
#else
        p++;
#endif
    }
}

static inline const unsigned char *RDF(ws_)(const unsigned char *p, const unsigned char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

#if RD_V
/* Validate and skip any value at r->p (iterative; depth checked). */
static int RDF(skip_)(rd *r)
{
    eb_matcher *mt = r->mt;
    const unsigned char *p = r->p, *end = r->end;
    unsigned base = r->depth, depth = r->depth;
    size_t lvl = 0; /* containers opened by this call */
    int esc;
value:
    p = RDF(ws_)(p, end);
    if (p >= end)
        return RDF(fail_)(r, p, "unexpected end of input, expected a value");
    switch (*p) {
    case '{':
        if (++depth > mt->max_depth)
            return RDF(fail_)(r, p, "nesting depth exceeds the limit");
        if (vstack_set(mt, lvl++, 1))
            return RDF(fail_)(r, p, "out of memory");
        p = RDF(ws_)(p + 1, end);
        if (p < end && *p == '}') {
            p++;
            lvl--;
            depth--;
            goto after;
        }
        goto key;
    case '[':
        if (++depth > mt->max_depth)
            return RDF(fail_)(r, p, "nesting depth exceeds the limit");
        if (vstack_set(mt, lvl++, 0))
            return RDF(fail_)(r, p, "out of memory");
        p = RDF(ws_)(p + 1, end);
        if (p < end && *p == ']') {
            p++;
            lvl--;
            depth--;
            goto after;
        }
        goto value;
    case '"':
        p = RDF(str_end_)(r, p + 1, &esc);
        if (!p)
            return -1;
        p++;
        goto after;
    case 't':
        if (end - p >= 4 && !memcmp(p, "true", 4)) {
            p += 4;
            goto after;
        }
        return RDF(fail_)(r, p, "invalid literal");
    case 'f':
        if (end - p >= 5 && !memcmp(p, "false", 5)) {
            p += 5;
            goto after;
        }
        return RDF(fail_)(r, p, "invalid literal");
    case 'n':
        if (end - p >= 4 && !memcmp(p, "null", 4)) {
            p += 4;
            goto after;
        }
        return RDF(fail_)(r, p, "invalid literal");
    default: {
        size_t n = ebp_num_scan((const char *)p, (const char *)end);
        if (!n)
            return RDF(fail_)(r, p, "unexpected character, expected a value");
        p += n;
        goto after;
    }
    }
key:
    p = RDF(ws_)(p, end);
    if (p >= end || *p != '"')
        return RDF(fail_)(r, p, "expected a string key");
    p = RDF(str_end_)(r, p + 1, &esc);
    if (!p)
        return -1;
    p = RDF(ws_)(p + 1, end);
    if (p >= end || *p != ':')
        return RDF(fail_)(r, p, "expected ':' after key");
    p++;
    goto value;
after:
    if (!lvl) {
        r->p = p;
        r->depth = base;
        return 0;
    }
    p = RDF(ws_)(p, end);
    if (p >= end)
        return RDF(fail_)(r, p, "unexpected end of input in container");
    {
        int is_obj = vstack_get(mt, lvl - 1);
        if (*p == ',') {
            p++;
            if (is_obj)
                goto key;
            goto value;
        }
        if (*p == (is_obj ? '}' : ']')) {
            p++;
            lvl--;
            depth--;
            goto after;
        }
    }
    return RDF(fail_)(r, p, "expected ',' or a closing bracket");
}
#else
/* Skip any value at r->p without validating it. */
static int RDF(skip_)(rd *r)
{
    const unsigned char *p = r->p, *end = r->end;
    if (p >= end)
        return RDF(fail_)(r, p, "unexpected end of input");
    unsigned char c = *p;
    if (c == '"') {
        int esc;
        p = RDF(str_end_)(r, p + 1, &esc);
        if (!p)
            return -1;
        r->p = p + 1;
        return 0;
    }
    if (c != '{' && c != '[') {
        while (p < end && !scalar_end[*p])
            p++;
        r->p = p;
        return 0;
    }
    unsigned room = r->mt->max_depth > r->depth ? r->mt->max_depth - r->depth : 0;
    const unsigned char *q = room ? skip_container(p + 1, end, 1, room - 1) : NULL;
    if (!q)
        return RDF(fail_)(r, p, room ? "unterminated container or nesting depth exceeds the limit"
                                     : "nesting depth exceeds the limit");
    r->p = q;
    return 0;
}

/* Skip the rest of an object whose members are no longer needed: r->p is
 * just after a member value; leaves r->p after the closing '}'. */
static int RDF(skip_rest_)(rd *r)
{
    unsigned room = r->mt->max_depth > r->depth ? r->mt->max_depth - r->depth : 0;
    const unsigned char *q = skip_container(r->p, r->end, 1, room);
    if (!q)
        return RDF(fail_)(r, r->p, "unterminated object or nesting depth exceeds the limit");
    r->p = q;
    return 0;
}
#endif

static int RDF(object_)(rd *r, const node *n, int last);

/* A value at r->p for the needed trie node n.  `last`: once this value is
 * read, nothing after it in the event can matter (trusting mode stops). */
static int RDF(value_)(rd *r, const node *n, int last)
{
    eb_matcher *mt = r->mt;
    const unsigned char *p = r->p, *end = r->end;
    if (p >= end)
        return RDF(fail_)(r, p, "unexpected end of input, expected a value");
    const int leaf = n->path_id != UINT32_MAX;
    unsigned char c = *p;
    switch (c) {
    case '"': {
        int esc;
        const unsigned char *q = RDF(str_end_)(r, p + 1, &esc);
        if (!q)
            return -1;
        r->p = q + 1;
        if (leaf) {
            if (!esc) {
                leaf_str(mt, n, p + 1, (size_t)(q - p - 1));
            } else {
                size_t len;
                if (unescape(mt, p + 1, q, &len))
                    return RDF(fail_)(r, p, "out of memory");
                leaf_str(mt, n, mt->sbuf, len);
            }
        }
        return 0;
    }
    case '{':
        if (++r->depth > mt->max_depth)
            return RDF(fail_)(r, p, "nesting depth exceeds the limit");
        r->p = p + 1;
        if (n->nedges) {
            int rc = RDF(object_)(r, n, last);
            r->depth--;
            return rc;
        }
        r->depth--;
        r->p = p;
        return RDF(skip_)(r);
    case '[': {
        /* Arrays nested in arrays are handled here with a loop, not by
         * recursion, so deep [[[...]]] costs no stack. */
        const unsigned base = r->depth;
    open:
        if (++r->depth > mt->max_depth)
            return RDF(fail_)(r, p, "nesting depth exceeds the limit");
        if (tpush(mt))
            return RDF(fail_)(r, p, "out of memory");
        p = RDF(ws_)(p + 1, end);
        if (p < end && *p == ']')
            goto close;
    element:
        if (p < end && *p == '[')
            goto open;
        r->p = p;
        {
            int rc = RDF(value_)(r, n, 0);
            if (rc < 0)
                return rc;
        }
        p = RDF(ws_)(r->p, end);
    after:
        if (p >= end)
            return RDF(fail_)(r, p, "unexpected end of input in array");
        if (*p == ',') {
            tset(mt, mt->tstack[2 * mt->tdepth - 1] + 1);
            p = RDF(ws_)(p + 1, end);
            goto element;
        }
        if (*p != ']')
            return RDF(fail_)(r, p, "expected ',' or ']' in array");
    close:
        tpop(mt);
        r->depth--;
        p = RDF(ws_)(p + 1, end);
        if (r->depth == base) {
            r->p = p;
            return 0;
        }
        goto after;
    }
    case 't':
    case 'f':
    case 'n': {
        const char *w = c == 't' ? "true" : c == 'f' ? "false" : "null";
        size_t wl = c == 'f' ? 5 : 4;
        if ((size_t)(end - p) < wl || memcmp(p, w, wl))
            return RDF(fail_)(r, p, "invalid literal");
        r->p = p + wl;
        if (leaf)
            leaf_lit(mt, n, c);
        return 0;
    }
    default: {
#if RD_V
        size_t len = ebp_num_scan((const char *)p, (const char *)end);
        if (!len)
            return RDF(fail_)(r, p, "unexpected character, expected a value");
#else
        const unsigned char *q = p;
        while (q < end && num_char[*q])
            q++;
        size_t len = (size_t)(q - p);
        if (!len)
            return RDF(fail_)(r, p, "unexpected character, expected a value");
#endif
        r->p = p + len;
        if (leaf)
            leaf_num(mt, n, p, len);
        return 0;
    }
    }
}

/* Members of an object for trie node n; r->p just after '{'.  Returns 1
 * (trusting mode) when every needed member was seen and `last` says nothing
 * after this object matters either: the caller stops reading. */
static int RDF(object_)(rd *r, const node *n, int last)
{
    eb_matcher *mt = r->mt;
    const unsigned char *p = r->p, *end = r->end;
    uint64_t seen = 0;
#if !RD_V
    const uint64_t all = n->nedges >= 64 ? 0 : (((uint64_t)1 << n->nedges) - 1);
#endif
    p = RDF(ws_)(p, end);
    if (p < end && *p == '}') {
        r->p = p + 1;
        return 0;
    }
    for (;;) {
        if (p >= end || *p != '"')
            return RDF(fail_)(r, p, "expected a string key");
        int esc = 0, dot = 1;
#if RD_V
        const unsigned char *q = RDF(str_end_)(r, p + 1, &esc);
#else
        /* fast path: no escape before the closing quote */
        const unsigned char *q = find_qb_dot(p + 1, end, &dot);
        if (q >= end || *q != '"') {
            q = RDF(str_end_)(r, p + 1, &esc);
            dot = 1;
        }
#endif
        if (!q)
            return -1;
        const unsigned char *k = p + 1;
        size_t klen = (size_t)(q - k);
        if (esc) {
            if (unescape(mt, k, q, &klen))
                return RDF(fail_)(r, p, "out of memory");
            k = mt->sbuf;
        }
        p = RDF(ws_)(q + 1, end);
        if (p >= end || *p != ':')
            return RDF(fail_)(r, p, "expected ':' after key");
        p = RDF(ws_)(p + 1, end);
        /* find the child; a key containing dots walks several segments
         * (segments never contain dots, so a direct hit needs no dot check) */
        uint32_t eidx = UINT32_MAX;
        const node *child = node_child_idx(n, (const char *)k, klen, &eidx);
        if (!child && dot && klen > 1)
            child = dotted_child(n, k, klen);
        r->p = p;
        int rc;
        if (child) {
#if RD_V
            rc = RDF(value_)(r, child, 0);
#else
            int child_last = last && eidx < 64 && (seen | ((uint64_t)1 << eidx)) == all;
            rc = RDF(value_)(r, child, child_last);
            if (rc)
                return rc; /* error, or stop */
            if (child_last)
                return 1;
#endif
            if (rc < 0)
                return rc;
        } else {
#if !RD_V
            if (p < end && *p == '"') { /* fast path: a string without escapes */
                const unsigned char *e = find_qb(p + 1, end);
                if (e < end && *e == '"') {
                    r->p = e + 1;
                    goto skipped;
                }
            }
#endif
            rc = RDF(skip_)(r);
            if (rc < 0)
                return rc;
        }
#if !RD_V
    skipped:
#endif
        p = RDF(ws_)(r->p, end);
#if !RD_V
        if (eidx < 64) {
            seen |= (uint64_t)1 << eidx;
            if (seen == all) {
                /* every needed member seen: the rest cannot matter */
                if (last)
                    return 1;
                r->p = p;
                rc = RDF(skip_rest_)(r);
                return rc < 0 ? rc : 0;
            }
        }
#else
        (void)seen;
        (void)eidx;
        (void)last;
#endif
        if (p >= end)
            return RDF(fail_)(r, p, "unexpected end of input in object");
        if (*p == ',') {
            p = RDF(ws_)(p + 1, end);
            continue;
        }
        if (*p == '}') {
            r->p = p + 1;
            return 0;
        }
        return RDF(fail_)(r, p, "expected ',' or '}' in object");
    }
}

#undef RDF
