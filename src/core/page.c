/* Pagination of the List operations (see page.h). */
#include "page.h"

#include "../util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* NextToken -> the name it was made from; -1 unless it is our encoding. */
static int token_decode(const char *tok, char *out, size_t n)
{
    size_t len = strlen(tok);
    if (len % 2 || len / 2 >= n)
        return -1;
    for (size_t i = 0; i < len; i += 2) {
        /* tokens are written in lower case (token_encode); nothing else is one */
        int hi = eb_hexval((unsigned char)tok[i]), lo = eb_hexval((unsigned char)tok[i + 1]);
        if (hi < 0 || lo < 0 || (hi | lo) == 0 || (tok[i] >= 'A' && tok[i] <= 'F') ||
            (tok[i + 1] >= 'A' && tok[i + 1] <= 'F'))
            return -1;
        out[i / 2] = (char)(hi << 4 | lo);
    }
    out[len / 2] = 0;
    return 0;
}

static json_t *token_encode(const char *name)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(name);
    char *t = malloc(2 * n + 1);
    if (!t)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        t[2 * i] = hex[(unsigned char)name[i] >> 4];
        t[2 * i + 1] = hex[(unsigned char)name[i] & 15];
    }
    t[2 * n] = 0;
    json_t *j = json_string(t);
    free(t);
    return j;
}

int eb_page_init(const json_t *req, const char *prefix_member, eb_page *pg, eb_core_error *e)
{
    memset(pg, 0, sizeof *pg);
    pg->limit = 100;
    const json_t *l = json_object_get(req, "Limit");
    if (json_is_integer(l) && json_integer_value(l) > 0)
        pg->limit = (size_t)json_integer_value(l);
    pg->prefix = prefix_member ? json_string_value(json_object_get(req, prefix_member)) : NULL;
    const char *tok = json_string_value(json_object_get(req, "NextToken"));
    if (tok) {
        if (token_decode(tok, pg->after, sizeof pg->after)) {
            e->type = "ValidationException";
            e->http = 400;
            snprintf(e->message, sizeof e->message, "The NextToken provided is not valid.");
            return -1;
        }
        pg->has_after = 1;
    }
    return 0;
}

int eb_page_wants(const eb_page *pg, const char *name)
{
    if (pg->prefix && strncmp(name, pg->prefix, strlen(pg->prefix)))
        return 0;
    if (pg->has_after && strcmp(name, pg->after) <= 0)
        return 0;
    return 1;
}

int eb_page_full(const eb_page *pg, const json_t *list, json_t *o, const char *last)
{
    if (json_array_size(list) < pg->limit)
        return 0;
    json_object_set_new(o, "NextToken", token_encode(last));
    return 1;
}
