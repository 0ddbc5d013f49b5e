/* The compiled form of one event pattern: after "$or" expansion, a list of
 * sub-rules; each sub-rule is a set of fields (a dotted path and the OR-list
 * of conditions the path's values must meet).  A pattern matches an event
 * when any sub-rule matches; a sub-rule matches when every field does, with
 * all values taken from consistent array elements.  Produced by compile.c,
 * read by the machine builder (machine.c) and by the reference interpreter
 * in the tests. */
#ifndef EBP_AST_H
#define EBP_AST_H

#include <stddef.h>

#include "internal.h"
#include "ip.h"
#include "wildcard.h"

typedef enum {
    EBP_C_STR,          /* exact string s (also "exactly") */
    EBP_C_IP,           /* string literal that is an IP address: equal addresses */
    EBP_C_NUM,          /* number literal: equal value (d) if finite, else same text (s) */
    EBP_C_TRUE,
    EBP_C_FALSE,
    EBP_C_NULL,
    EBP_C_PREFIX,       /* s */
    EBP_C_PREFIX_EIC,   /* s, case-folded */
    EBP_C_SUFFIX,       /* s */
    EBP_C_SUFFIX_EIC,   /* s, case-folded */
    EBP_C_EIC,          /* equals-ignore-case: s, case-folded */
    EBP_C_WILDCARD,     /* glob */
    EBP_C_RANGE,        /* numeric: lo/hi with open flags; has_lo/has_hi */
    EBP_C_CIDR,         /* cidr */
    EBP_C_EXISTS,       /* exists: true */
    EBP_C_ABSENT,       /* exists: false */
    EBP_C_AB_STR,       /* anything-but strings: vs[nv] */
    EBP_C_AB_NUM,       /* anything-but numbers: ds[nv] (finite doubles) */
    EBP_C_AB_EIC,       /* anything-but equals-ignore-case: vs[nv], case-folded */
    EBP_C_AB_PREFIX,    /* vs[nv] */
    EBP_C_AB_SUFFIX,    /* vs[nv] */
    EBP_C_AB_WILDCARD   /* globs[nv] */
} ebp_cond_kind;

typedef struct {
    const char *s;
    size_t n;
} ebp_str;

typedef struct ebp_cond {
    ebp_cond_kind kind;
    unsigned char has_lo, has_hi, lo_open, hi_open; /* EBP_C_RANGE */
    ebp_str s;
    double lo, hi;       /* EBP_C_RANGE */
    union {              /* by kind */
        struct {         /* EBP_C_NUM */
            double d;
            int finite;  /* d is meaningful */
        };
        ebp_ip ip;       /* EBP_C_IP */
        ebp_cidr cidr;   /* EBP_C_CIDR */
        ebp_glob *glob;  /* EBP_C_WILDCARD (owned by the pattern) */
        struct {         /* EBP_C_AB_*: the set */
            size_t nv;
            ebp_str *vs;
            double *ds;
            ebp_glob **globs; /* owned by the pattern */
        };
    };
} ebp_cond;

typedef struct ebp_field {
    ebp_str path;        /* dotted path, e.g. "detail.state" */
    size_t ncond;
    ebp_cond *conds;
} ebp_field;

typedef struct ebp_sub {
    size_t nfields;
    ebp_field **fields;  /* shared between sub-rules of one pattern */
} ebp_sub;

struct eb_pattern {
    int refs;            /* atomic reference count (caller + machines) */
    ebp_arena arena;     /* owns everything below except globs */
    size_t nsub;
    ebp_sub *subs;
    size_t nglobs;
    ebp_glob **all_globs;
};

/* Take another reference to an immutable pattern (machines keep one). */
void ebp_pattern_ref(const struct eb_pattern *p);

/* "$or" expansion limit (AWS: at most 1000 combinations). */
#define EBP_MAX_SUBRULES 1000
/* Nesting limit for pattern JSON (Jackson's default). */
#define EBP_PATTERN_MAX_DEPTH 1000

#define EBP_ERR_PREFIX "Event pattern is not valid. Reason: "

#endif
