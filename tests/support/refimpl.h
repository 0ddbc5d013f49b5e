/* The reference interpreter: a small, obviously correct tree walk over an
 * event parsed by jansson, evaluating a compiled pattern's AST directly.
 * Used to check the compiled machine (differential test) and on the
 * conformance corpus.  Slow on purpose: no indexes, brute-force search. */
#ifndef EB_REFIMPL_H
#define EB_REFIMPL_H

#include <ebridge/pattern.h>
#include <jansson.h>

/* 1 if the event (a JSON object) matches the pattern, else 0. */
int ref_match(const eb_pattern *p, json_t *event);

/* Parse JSON text as the reference sees events (numbers as doubles). */
json_t *ref_parse(const char *text, size_t len);

#endif
