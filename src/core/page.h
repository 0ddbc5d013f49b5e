/* Pagination shared by the List operations of core.c and connections.c:
 * Limit (default 100), an optional name prefix, and NextToken = the
 * lower-case hex of the last name returned (names are listed in ascending
 * order, so the next page starts after it). */
#ifndef EB_PAGE_H
#define EB_PAGE_H

#include "core.h"

#include <jansson.h>
#include <stddef.h>

typedef struct {
    char after[2048]; /* the decoded NextToken */
    int has_after;
    size_t limit;
    const char *prefix; /* borrowed from the request */
} eb_page;

/* Read Limit, the prefix member (NULL: none) and NextToken of req; -1 with
 * AWS's ValidationException in *e for a token this server did not write. */
int eb_page_init(const json_t *req, const char *prefix_member, eb_page *pg, eb_core_error *e);
/* Does `name` belong on this page (prefix, after the token)? */
int eb_page_wants(const eb_page *pg, const char *name);
/* The page already holds its Limit of items: NextToken (in o) names the last
 * one returned, and the listing stops (1). Else 0. */
int eb_page_full(const eb_page *pg, const json_t *list, json_t *o, const char *last);

#endif
