/* Pattern compiler: JSON text -> ebp_sub list (see ast.h).
 *
 * Mirrors the order in which AWS's streaming compiler (event-ruler's
 * JsonRuleCompiler) meets problems, so that the first error reported is the
 * one AWS reports, with AWS's wording.  Semantics kept from there:
 *  - "$or" arrays fork the sub-rules built so far (cartesian product);
 *  - a path set twice in one sub-rule keeps the last value (dotted keys and
 *    nesting name the same path);
 *  - string literals that are IP addresses become address matches. */
#include <ebridge/pattern.h>

#include "ast.h"
#include "casefold.h"
#include "internal.h"
#include "jtok.h"
#include "num.h"

#include <math.h>
#include <setjmp.h>
#include <stdio.h>

#define MSG_TOO_COMPLEX                                                                              \
    "Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences " \
    "after a wildcard character"

typedef struct {
    ebp_field **f;
    size_t n, cap;
} subb;

typedef struct {
    subb *v;
    size_t n, cap;
} rulelist;

typedef struct {
    jtok t;
    struct eb_pattern *p;
    ebp_vec globs;
    ebp_vec path; /* char: current dotted prefix */
    size_t pdepth; /* segments in path */
    ebp_vec lists; /* rulelist* to free on error */
    ebp_vec conds; /* ebp_cond: the value list being read (write_rules) */
    ebp_vec ab_vals, ab_nums; /* anything-but set being read */
    jmp_buf jb;
    char reason[768];
    int nomem;
} cctx;

static _Noreturn void barf(cctx *c, const char *reason)
{
    ebp_errf(c->reason, sizeof c->reason, "%s", reason);
    longjmp(c->jb, 1);
}

static _Noreturn void barf_tok(cctx *c) { barf(c, c->t.err); }

static _Noreturn void oom(cctx *c)
{
    c->nomem = 1;
    barf(c, "out of memory");
}

static void *aalloc(cctx *c, size_t n)
{
    void *p = ebp_arena_alloc(&c->p->arena, n ? n : 1);
    if (!p)
        oom(c);
    return p;
}

static ebp_str adup(cctx *c, const char *s, size_t n)
{
    char *d = ebp_arena_memdup(&c->p->arena, s, n);
    if (!d)
        oom(c);
    return (ebp_str){d, n};
}

static ebp_str afold(cctx *c, const char *s, size_t n)
{
    size_t need = ebp_casefold((const unsigned char *)s, n, NULL, 0);
    char *d = aalloc(c, need + 1);
    ebp_casefold((const unsigned char *)s, n, (unsigned char *)d, need);
    d[need] = 0;
    return (ebp_str){d, need};
}

static jt_type next(cctx *c)
{
    jt_type ty = jtok_next(&c->t);
    if (ty == JT_ERROR)
        barf_tok(c);
    return ty;
}

/* ---- rule lists --------------------------------------------------------- */

static rulelist *rl_new(cctx *c)
{
    rulelist *r = calloc(1, sizeof *r);
    if (!r)
        oom(c);
    rulelist **slot = ebp_vec_push(&c->lists);
    if (!slot) {
        free(r);
        oom(c);
    }
    *slot = r;
    return r;
}

static void rl_clear(rulelist *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].f);
    r->n = 0;
}

static void rl_destroy(rulelist *r)
{
    if (!r)
        return;
    rl_clear(r);
    free(r->v);
    r->v = NULL;
    r->cap = 0;
}

static subb *rl_add(cctx *c, rulelist *r)
{
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 4;
        subb *nv = realloc(r->v, nc * sizeof *nv);
        if (!nv)
            oom(c);
        r->v = nv;
        r->cap = nc;
    }
    subb *s = &r->v[r->n++];
    s->f = NULL;
    s->n = s->cap = 0;
    return s;
}

static void sub_copy(cctx *c, subb *dst, const subb *src)
{
    dst->f = NULL;
    dst->n = dst->cap = 0;
    if (!src->n)
        return;
    dst->f = malloc(src->n * sizeof *dst->f);
    if (!dst->f)
        oom(c);
    memcpy(dst->f, src->f, src->n * sizeof *dst->f);
    dst->n = dst->cap = src->n;
}

static void rl_append_copy(cctx *c, rulelist *dst, const rulelist *src)
{
    for (size_t i = 0; i < src->n; i++) {
        subb *s = rl_add(c, dst);
        sub_copy(c, s, &src->v[i]);
    }
}

static void sub_put(cctx *c, subb *s, ebp_field *f)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->f[i]->path.n == f->path.n && !memcmp(s->f[i]->path.s, f->path.s, f->path.n)) {
            s->f[i] = f; /* last one wins */
            return;
        }
    }
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 4;
        ebp_field **nf = realloc(s->f, nc * sizeof *nf);
        if (!nf)
            oom(c);
        s->f = nf;
        s->cap = nc;
    }
    s->f[s->n++] = f;
}

/* ---- paths ----------------------------------------------------------------- */

static size_t path_push(cctx *c, const char *name, size_t n)
{
    size_t mark = c->path.len;
    if (ebp_vec_reserve(&c->path, c->path.len + n + 1))
        oom(c);
    char *b = c->path.items;
    if (c->pdepth++)
        b[c->path.len++] = '.';
    memcpy(b + c->path.len, name, n);
    c->path.len += n;
    return mark;
}

/* ---- match expressions ---------------------------------------------------- */

static int is_reserved_in_or(const char *name)
{
    static const char *const reserved[] = {"anything-but", "exists", "prefix", "suffix", "equals-ignore-case",
                                           "wildcard", "numeric", "cidr", "exactly", "=", "<", "<=", ">",
                                           ">=", "regex", NULL};
    for (int i = 0; reserved[i]; i++)
        if (!strcmp(name, reserved[i]))
            return 1;
    return 0;
}

static double num_value(cctx *c, int *finite)
{
    double d;
    *finite = ebp_num_to_double(c->t.num, c->t.nlen, &d);
    return d;
}

static double range_bound(cctx *c)
{
    int finite;
    double d = num_value(c, &finite);
    if (!finite) {
        char msg[300];
        snprintf(msg, sizeof msg, "Cannot compare number : %.*s", (int)(c->t.nlen > 200 ? 200 : c->t.nlen), c->t.num);
        barf(c, msg);
    }
    return d;
}

static void expect_obj_end(cctx *c, const char *msg)
{
    if (next(c) != JT_OBJ_END)
        barf(c, msg);
}

static ebp_glob *parse_glob(cctx *c, const char *s, size_t n)
{
    ebp_glob *g = NULL;
    char err[256];
    if (ebp_glob_parse(s, n, &g, err, sizeof err))
        barf(c, err);
    ebp_glob **slot = ebp_vec_push(&c->globs);
    if (!slot) {
        ebp_glob_free(g);
        oom(c);
    }
    *slot = g;
    return g;
}

static void numeric_expr(cctx *c, ebp_cond *k)
{
    /* after '[' of "numeric" */
    k->kind = EBP_C_RANGE;
    jt_type ty = next(c);
    if (ty != JT_STRING) {
        char msg[300];
        snprintf(msg, sizeof msg, "Invalid member in numeric match: %.200s", jtok_text(&c->t));
        barf(c, msg);
    }
    char op[4] = {0};
    int opok = c->t.slen <= 2;
    if (opok)
        memcpy(op, c->t.str, c->t.slen);
    char opfull[300];
    snprintf(opfull, sizeof opfull, "%.200s", c->t.str);
    ty = next(c);
    if (opok && !strcmp(op, "=")) {
        if (ty != JT_NUMBER)
            barf(c, "Value of equals must be numeric");
        double v = range_bound(c);
        if (next(c) != JT_ARR_END)
            barf(c, "Too many elements in numeric expression");
        k->has_lo = k->has_hi = 1;
        k->lo = k->hi = v;
        return;
    }
    if (opok && (!strcmp(op, ">=") || !strcmp(op, ">"))) {
        if (ty != JT_NUMBER) {
            char msg[64];
            snprintf(msg, sizeof msg, "Value of %s must be numeric", op);
            barf(c, msg);
        }
        k->has_lo = 1;
        k->lo = range_bound(c);
        k->lo_open = op[1] == 0;
        ty = next(c);
        if (ty == JT_ARR_END)
            return;
        if (ty != JT_STRING) {
            char msg[300];
            snprintf(msg, sizeof msg, "Bad value in numeric range: %.200s", jtok_text(&c->t));
            barf(c, msg);
        }
        int lt = !strcmp(c->t.str, "<"), le = !strcmp(c->t.str, "<=");
        if (!lt && !le) {
            char msg[300];
            snprintf(msg, sizeof msg, "Bad numeric range operator: %.200s", c->t.str);
            barf(c, msg);
        }
        if (next(c) != JT_NUMBER)
            barf(c, lt ? "Value of < must be numeric" : "Value of <= must be numeric");
        k->has_hi = 1;
        k->hi = range_bound(c);
        k->hi_open = (unsigned char)lt;
        if (next(c) != JT_ARR_END)
            barf(c, "Too many terms in numeric range expression");
        if (!(k->lo < k->hi))
            barf(c, "Bottom must be less than top");
        return;
    }
    if (opok && (!strcmp(op, "<=") || !strcmp(op, "<"))) {
        if (ty != JT_NUMBER) {
            char msg[64];
            snprintf(msg, sizeof msg, "Value of %s must be numeric", op);
            barf(c, msg);
        }
        k->has_hi = 1;
        k->hi = range_bound(c);
        k->hi_open = op[1] == 0;
        if (next(c) != JT_ARR_END)
            barf(c, "Too many elements in numeric expression");
        return;
    }
    char msg[340];
    snprintf(msg, sizeof msg, "Unrecognized numeric range operator: %s", opfull);
    barf(c, msg);
}

typedef enum { AB_PLAIN, AB_EIC, AB_PREFIX, AB_SUFFIX, AB_WILDCARD } ab_type;

static void ab_add_str(cctx *c, ebp_vec *vals, ab_type at)
{
    if ((at == AB_PREFIX || at == AB_SUFFIX) && c->t.slen == 0)
        barf(c, "Null prefix/suffix not allowed");
    ebp_str *s = ebp_vec_push(vals);
    if (!s)
        oom(c);
    if (at == AB_EIC)
        *s = afold(c, c->t.str, c->t.slen);
    else
        *s = adup(c, c->t.str, c->t.slen);
}

static _Noreturn void ab_type_error(cctx *c, ab_type at)
{
    if (at == AB_EIC)
        barf(c, "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported.");
    if (at == AB_WILDCARD)
        barf(c, "wildcard match pattern must be a string");
    barf(c, "prefix/suffix match pattern must be a string");
}

static void anything_but(cctx *c, ebp_cond *k)
{
    ab_type at = AB_PLAIN;
    jt_type ty = next(c);
    if (ty == JT_OBJ_START) {
        if (next(c) != JT_FIELD)
            barf(c, "Anything-But expression name not found");
        const char *op = c->t.str;
        if (!strcmp(op, "equals-ignore-case"))
            at = AB_EIC;
        else if (!strcmp(op, "prefix"))
            at = AB_PREFIX;
        else if (!strcmp(op, "suffix"))
            at = AB_SUFFIX;
        else if (!strcmp(op, "wildcard"))
            at = AB_WILDCARD;
        else {
            char msg[300];
            snprintf(msg, sizeof msg, "Unsupported anything-but pattern: %.200s", op);
            barf(c, msg);
        }
        ty = next(c);
    }
    if (ty != JT_ARR_START && ty != JT_STRING && ty != JT_NUMBER)
        barf(c, "Value of anything-but must be an array or single string/number value.");

    ebp_vec *vals = &c->ab_vals, *nums = &c->ab_nums;
    vals->len = nums->len = 0;
    int has_num = 0, has_str = 0;
    int is_list = ty == JT_ARR_START;
    for (;;) {
        jt_type e = ty;
        if (is_list) {
            e = next(c);
            if (e == JT_ARR_END)
                break;
        }
        if (at == AB_PLAIN) {
            if (e == JT_STRING) {
                has_str = 1;
                ebp_str *s = ebp_vec_push(vals);
                if (!s)
                    oom(c);
                *s = adup(c, c->t.str, c->t.slen);
            } else if (e == JT_NUMBER) {
                has_num = 1;
                int fin;
                double d = num_value(c, &fin);
                if (!fin) {
                    char msg[300];
                    snprintf(msg, sizeof msg, "Cannot compare number : %.200s", jtok_text(&c->t));
                    barf(c, msg);
                }
                double *dp = ebp_vec_push(nums);
                if (!dp)
                    oom(c);
                *dp = d;
            } else {
                barf(c, "Inside anything but list, start|null|boolean is not supported.");
            }
        } else {
            if (e != JT_STRING)
                ab_type_error(c, at);
            ab_add_str(c, vals, at);
            has_str = 1;
        }
        if (!is_list)
            break;
    }
    if (is_list && at == AB_PLAIN && has_num == has_str)
        barf(c, "Inside anything but list, either all values are number or string, mixed type is not "
                "supported");
    if (is_list && at != AB_PLAIN && !has_str) {
        /* an empty set excludes nothing; event-ruler accepts it */
    }

    k->nv = has_num ? nums->len : vals->len;
    if (has_num) {
        k->ds = aalloc(c, nums->len * sizeof(double));
        memcpy(k->ds, nums->items, nums->len * sizeof(double));
    } else {
        k->vs = aalloc(c, vals->len * sizeof(ebp_str));
        if (vals->len)
            memcpy(k->vs, vals->items, vals->len * sizeof(ebp_str));
    }
    switch (at) {
    case AB_PLAIN: k->kind = has_num ? EBP_C_AB_NUM : EBP_C_AB_STR; break;
    case AB_EIC: k->kind = EBP_C_AB_EIC; break;
    case AB_PREFIX: k->kind = EBP_C_AB_PREFIX; break;
    case AB_SUFFIX: k->kind = EBP_C_AB_SUFFIX; break;
    case AB_WILDCARD:
        k->kind = EBP_C_AB_WILDCARD;
        k->globs = aalloc(c, k->nv * sizeof(ebp_glob *));
        for (size_t i = 0; i < k->nv; i++)
            k->globs[i] = parse_glob(c, k->vs[i].s, k->vs[i].n);
        break;
    }
    if (next(c) != JT_OBJ_END)
        barf(c, "Too many elements in numeric expression");
    if (at != AB_PLAIN && next(c) != JT_OBJ_END)
        barf(c, "Too many elements in numeric expression");
}

static void affix_eic(cctx *c, ebp_cond *k, int is_prefix)
{
    /* after '{' following "prefix"/"suffix" */
    if (next(c) != JT_FIELD)
        barf(c, is_prefix ? "Prefix expression name not found" : "Suffix expression name not found");
    if (strcmp(c->t.str, "equals-ignore-case")) {
        char msg[300];
        snprintf(msg, sizeof msg, "Unsupported %s pattern: %.200s", is_prefix ? "prefix" : "suffix", c->t.str);
        barf(c, msg);
    }
    if (next(c) != JT_STRING)
        barf(c, "equals-ignore-case match pattern must be a string");
    k->kind = is_prefix ? EBP_C_PREFIX_EIC : EBP_C_SUFFIX_EIC;
    k->s = afold(c, c->t.str, c->t.slen);
    expect_obj_end(c, "Only one key allowed in match expression");
    expect_obj_end(c, "Only one key allowed in match expression");
}

static void match_expression(cctx *c, ebp_cond *k)
{
    /* after '{' inside a value list */
    jt_type ty = next(c);
    if (ty != JT_FIELD)
        barf(c, "Match expression name not found");
    char name[32];
    int known = c->t.slen < sizeof name;
    if (known)
        memcpy(name, c->t.str, c->t.slen + 1);
    else
        name[0] = 0;
    if (known && !strcmp(name, "exactly")) {
        if (next(c) != JT_STRING)
            barf(c, "exact match pattern must be a string");
        k->kind = EBP_C_STR;
        k->s = adup(c, c->t.str, c->t.slen);
        expect_obj_end(c, "Only one key allowed in match expression");
    } else if (known && (!strcmp(name, "prefix") || !strcmp(name, "suffix"))) {
        int is_prefix = name[0] == 'p';
        ty = next(c);
        if (ty == JT_OBJ_START) {
            affix_eic(c, k, is_prefix);
            return;
        }
        if (ty != JT_STRING)
            barf(c, is_prefix ? "prefix match pattern must be a string" : "suffix match pattern must be a string");
        k->kind = is_prefix ? EBP_C_PREFIX : EBP_C_SUFFIX;
        k->s = adup(c, c->t.str, c->t.slen);
        expect_obj_end(c, "Only one key allowed in match expression");
    } else if (known && !strcmp(name, "numeric")) {
        if (next(c) != JT_ARR_START)
            barf(c, "Value of numeric must be an array.");
        numeric_expr(c, k);
        expect_obj_end(c, "Too many elements in numeric expression");
    } else if (known && !strcmp(name, "anything-but")) {
        anything_but(c, k);
    } else if (known && !strcmp(name, "exists")) {
        ty = next(c);
        if (ty == JT_TRUE)
            k->kind = EBP_C_EXISTS;
        else if (ty == JT_FALSE)
            k->kind = EBP_C_ABSENT;
        else
            barf(c, "exists match pattern must be either true or false.");
        expect_obj_end(c, "Only one key allowed in match expression");
    } else if (known && !strcmp(name, "cidr")) {
        if (next(c) != JT_STRING)
            barf(c, "prefix match pattern must be a string");
        char err[256];
        k->kind = EBP_C_CIDR;
        if (ebp_cidr_parse(c->t.str, c->t.slen, &k->cidr, err, sizeof err))
            barf(c, err);
        expect_obj_end(c, "Only one key allowed in match expression");
    } else if (known && !strcmp(name, "equals-ignore-case")) {
        if (next(c) != JT_STRING)
            barf(c, "equals-ignore-case match pattern must be a string");
        k->kind = EBP_C_EIC;
        k->s = afold(c, c->t.str, c->t.slen);
        expect_obj_end(c, "Only one key allowed in match expression");
    } else if (known && !strcmp(name, "wildcard")) {
        if (next(c) != JT_STRING)
            barf(c, "wildcard match pattern must be a string");
        k->kind = EBP_C_WILDCARD;
        k->s = adup(c, c->t.str, c->t.slen);
        k->glob = parse_glob(c, k->s.s, k->s.n);
        expect_obj_end(c, "Only one key allowed in match expression");
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "Unrecognized match type %.200s", c->t.str);
        barf(c, msg);
    }
}

static void write_rules(cctx *c, rulelist *rules, const char *path, size_t plen)
{
    ebp_vec *conds = &c->conds;
    conds->len = 0;
    for (;;) {
        jt_type ty = next(c);
        if (ty == JT_ARR_END)
            break;
        ebp_cond *k = ebp_vec_push(conds);
        if (!k)
            oom(c);
        memset(k, 0, sizeof *k);
        switch (ty) {
        case JT_OBJ_START:
            match_expression(c, k);
            break;
        case JT_STRING:
            k->kind = ebp_ip_parse(c->t.str, c->t.slen, &k->ip) ? EBP_C_IP : EBP_C_STR;
            k->s = adup(c, c->t.str, c->t.slen);
            break;
        case JT_NUMBER:
            k->kind = EBP_C_NUM;
            k->finite = ebp_num_to_double(c->t.num, c->t.nlen, &k->d);
            k->s = adup(c, c->t.num, c->t.nlen);
            break;
        case JT_TRUE: k->kind = EBP_C_TRUE; break;
        case JT_FALSE: k->kind = EBP_C_FALSE; break;
        case JT_NULL: k->kind = EBP_C_NULL; break;
        default:
            barf(c, "Match value must be String, number, true, false, or null");
        }
    }
    if (!conds->len)
        barf(c, "Empty arrays are not allowed");
    ebp_field *f = aalloc(c, sizeof *f);
    f->conds = aalloc(c, conds->len * sizeof(ebp_cond));
    memcpy(f->conds, conds->items, conds->len * sizeof(ebp_cond));
    f->ncond = conds->len;
    conds->len = 0;
    f->path = adup(c, path, plen);
    if (!rules->n)
        rl_add(c, rules);
    for (size_t i = 0; i < rules->n; i++)
        sub_put(c, &rules->v[i], f);
}

static void parse_object(cctx *c, rulelist *rules, int in_or);

static void parse_or(cctx *c, rulelist *rules)
{
    rulelist *current = rl_new(c);
    rl_append_copy(c, current, rules);
    rl_clear(rules);
    if (next(c) != JT_ARR_START)
        barf(c, "It must be an Array followed with $or.");
    int count = 0;
    for (;;) {
        jt_type ty = next(c);
        if (ty == JT_ARR_END)
            break;
        count++;
        if (ty != JT_OBJ_START)
            barf(c, "Only JSON object is allowed in array of $or relationship.");
        rulelist *nr = rl_new(c);
        rl_append_copy(c, nr, current);
        if (!nr->n)
            rl_add(c, nr);
        parse_object(c, nr, 1);
        /* move nr's sub-rules into rules */
        for (size_t i = 0; i < nr->n; i++) {
            subb *s = rl_add(c, rules);
            *s = nr->v[i];
        }
        nr->n = 0;
        if (rules->n > EBP_MAX_SUBRULES) {
            char msg[200];
            snprintf(msg, sizeof msg,
                     "The rule has too many combinations of $or: more than %d", EBP_MAX_SUBRULES);
            barf(c, msg);
        }
    }
    if (count < 2)
        barf(c, "There must have at least 2 Objects in $or relationship.");
}

static void parse_object(cctx *c, rulelist *rules, int in_or)
{
    int fields_present = 0;
    for (;;) {
        jt_type ty = next(c);
        if (ty == JT_OBJ_END)
            break;
        fields_present = 1;
        /* ty == JT_FIELD */
        if (c->t.slen == 3 && !memcmp(c->t.str, "$or", 3)) {
            parse_or(c, rules);
            continue;
        }
        if (in_or && is_reserved_in_or(c->t.str)) {
            char msg[300];
            snprintf(msg, sizeof msg, "%.200s is Ruler reserved fieldName which cannot be used inside $or.",
                     c->t.str);
            barf(c, msg);
        }
        size_t mark = path_push(c, c->t.str, c->t.slen);
        char keymsg[300];
        snprintf(keymsg, sizeof keymsg, "\"%.200s\" must be an object or an array", c->t.str);
        ty = next(c);
        if (ty == JT_OBJ_START) {
            parse_object(c, rules, in_or);
        } else if (ty == JT_ARR_START) {
            write_rules(c, rules, c->path.items, c->path.len);
        } else {
            barf(c, keymsg);
        }
        c->path.len = mark;
        c->pdepth--;
    }
    if (!fields_present)
        barf(c, "Empty objects are not allowed");
}

static void check_complexity(cctx *c, const ebp_sub *subs, size_t nsub)
{
    /* Per field: all wildcard conditions (plain and anything-but) together. */
    const ebp_glob *gs[256];
    for (size_t i = 0; i < nsub; i++) {
        for (size_t j = 0; j < subs[i].nfields; j++) {
            const ebp_field *f = subs[i].fields[j];
            size_t n = 0;
            for (size_t k = 0; k < f->ncond && n < 256; k++) {
                if (f->conds[k].kind == EBP_C_WILDCARD)
                    gs[n++] = f->conds[k].glob;
                else if (f->conds[k].kind == EBP_C_AB_WILDCARD)
                    for (size_t v = 0; v < f->conds[k].nv && n < 256; v++)
                        gs[n++] = f->conds[k].globs[v];
            }
            if (n && ebp_glob_complexity_unframed(gs, n) > EBP_GLOB_MAX_COMPLEXITY)
                barf(c, MSG_TOO_COMPLEX);
        }
    }
}

void ebp_pattern_ref(const struct eb_pattern *p)
{
    __atomic_add_fetch(&((struct eb_pattern *)p)->refs, 1, __ATOMIC_RELAXED);
}

void eb_pattern_free(eb_pattern *p)
{
    if (!p)
        return;
    if (__atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < p->nglobs; i++)
        ebp_glob_free(p->all_globs[i]);
    free(p->all_globs);
    ebp_arena_free(&p->arena);
    free(p);
}

size_t eb_pattern_subrules(const eb_pattern *p) { return p->nsub; }

eb_status eb_pattern_compile(const char *json, size_t len, eb_pattern **out, eb_error *err)
{
    *out = NULL;
    cctx *c = calloc(1, sizeof *c);
    struct eb_pattern *p = calloc(1, sizeof *p);
    if (!c || !p) {
        free(c);
        free(p);
        if (err) {
            err->code = EB_ERR_NOMEM;
            err->offset = 0;
            ebp_errf(err->message, sizeof err->message, "out of memory");
        }
        return EB_ERR_NOMEM;
    }
    p->refs = 1;
    ebp_arena_init(&p->arena);
    c->p = p;
    ebp_vec_init(&c->globs, sizeof(ebp_glob *));
    ebp_vec_init(&c->path, 1);
    ebp_vec_init(&c->lists, sizeof(rulelist *));
    ebp_vec_init(&c->conds, sizeof(ebp_cond));
    ebp_vec_init(&c->ab_vals, sizeof(ebp_str));
    ebp_vec_init(&c->ab_nums, sizeof(double));
    jtok_init(&c->t, json, len, EBP_PATTERN_MAX_DEPTH);

    eb_status st = EB_OK;
    if (setjmp(c->jb)) {
        st = c->nomem ? EB_ERR_NOMEM : EB_ERR_PATTERN;
        if (err) {
            err->code = st;
            err->offset = (size_t)(c->t.p - json);
            if (c->nomem)
                ebp_errf(err->message, sizeof err->message, "out of memory");
            else
                ebp_errf(err->message, sizeof err->message, "%s%s", EBP_ERR_PREFIX, c->reason);
        }
        for (size_t i = 0; i < c->globs.len; i++)
            ebp_glob_free(EBP_VEC_AT(&c->globs, ebp_glob *, i));
        p->nglobs = 0;
        eb_pattern_free(p);
        p = NULL;
    } else {
        rulelist *rules = rl_new(c);
        jt_type ty = next(c);
        if (ty != JT_OBJ_START)
            barf(c, "Filter is not an object");
        parse_object(c, rules, 0);
        if (jtok_finish(&c->t) == JT_ERROR)
            barf_tok(c);
        if (rules->n > EBP_MAX_SUBRULES) {
            char msg[200];
            snprintf(msg, sizeof msg, "The rule has too many combinations of $or: more than %d", EBP_MAX_SUBRULES);
            barf(c, msg);
        }
        /* freeze sub-rules into the arena */
        p->nsub = rules->n;
        p->subs = aalloc(c, rules->n * sizeof(ebp_sub));
        for (size_t i = 0; i < rules->n; i++) {
            p->subs[i].nfields = rules->v[i].n;
            p->subs[i].fields = aalloc(c, rules->v[i].n * sizeof(ebp_field *));
            memcpy(p->subs[i].fields, rules->v[i].f, rules->v[i].n * sizeof(ebp_field *));
        }
        check_complexity(c, p->subs, p->nsub);
        p->nglobs = c->globs.len;
        p->all_globs = c->globs.items; /* ownership moves to the pattern */
        ebp_vec_init(&c->globs, sizeof(ebp_glob *));
        *out = p;
    }
    for (size_t i = 0; i < c->lists.len; i++) {
        rulelist *r = EBP_VEC_AT(&c->lists, rulelist *, i);
        rl_destroy(r);
        free(r);
    }
    ebp_vec_free(&c->lists);
    ebp_vec_free(&c->conds);
    ebp_vec_free(&c->ab_vals);
    ebp_vec_free(&c->ab_nums);
    ebp_vec_free(&c->globs);
    ebp_vec_free(&c->path);
    jtok_free(&c->t);
    free(c);
    return st;
}
