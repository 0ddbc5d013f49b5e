/* A pull tokenizer for pattern JSON, modelled on Jackson's JsonParser so that
 * the pattern compiler can validate in the same order as AWS (event-ruler is
 * a streaming compiler: the first problem met in document order is the one
 * reported) and give Jackson's wording for syntax errors. */
#ifndef EBP_JTOK_H
#define EBP_JTOK_H

#include <stddef.h>

typedef enum {
    JT_ERROR = -1,
    JT_EOF = 0,
    JT_OBJ_START,
    JT_OBJ_END,
    JT_ARR_START,
    JT_ARR_END,
    JT_FIELD,  /* object key: str/slen */
    JT_STRING, /* str/slen (decoded UTF-8, NUL-terminated) */
    JT_NUMBER, /* num/nlen (raw text); is_int */
    JT_TRUE,
    JT_FALSE,
    JT_NULL
} jt_type;

typedef struct {
    const char *p, *end;
    unsigned char *stack; /* 1 = object, 0 = array */
    size_t depth, stack_cap, max_depth;
    int state;
    jt_type type;
    char *str;
    size_t slen, str_cap;
    const char *num;
    size_t nlen;
    int is_int;
    char err[512];
} jtok;

void jtok_init(jtok *t, const char *text, size_t len, size_t max_depth);
void jtok_free(jtok *t);
/* Next token; JT_ERROR with t->err set (Jackson-style reason text). */
jt_type jtok_next(jtok *t);
/* After the root value: JT_EOF if only whitespace remains, else JT_ERROR. */
jt_type jtok_finish(jtok *t);
/* The current token's text as Jackson's getText() would show it. */
const char *jtok_text(jtok *t);

#endif
