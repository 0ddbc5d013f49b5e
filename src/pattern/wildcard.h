/* The EventBridge `wildcard` operator: {"wildcard": "text"}.
 *
 * Semantics (what AWS / event-ruler do):
 *   - '*' matches zero or more bytes (anything, '/' included); any number of
 *     '*' may appear but never two in a row.  Every other character is literal
 *     ('?' is not special).  "" matches only the empty string.
 *   - "\*" is a literal '*', "\\" a literal backslash; a backslash before
 *     anything else (or at the end) is an error.
 *   - Matching works on the UTF-8 bytes of the value, which for a '*'-only
 *     glob is the same as matching code points.
 *
 * Errors carry event-ruler's positions: event-ruler parses '"' + text + '"'
 * byte by byte (UTF-8), so "pos N" is the UTF-8 byte offset of the offending
 * '*' or '\' in the text plus one (for the opening quote).  It is neither a
 * UTF-16 nor a code point index: "é**" reports pos 3.
 *
 * See docs/notes/wildcard.md for the complexity measure and its threshold.
 */
#ifndef EBP_WILDCARD_H
#define EBP_WILDCARD_H

#include <stddef.h>

/* Compiled glob: the literal segments between the '*'s, escapes resolved. */
typedef struct ebp_glob ebp_glob;

/* Rules whose wildcard complexity (below) is larger than this are rejected with
 * "Rule is too complex - try using fewer wildcard characters or fewer repeating
 * character sequences after a wildcard character".  10 accepts AWS's accepted
 * example "arn:aws:events:us-east-1:*:event-bus/" + "*" (complexity 3) and rejects
 * its rejected example "*:*:*:*:*:event-bus/" + "*" (complexity 11). */
#define EBP_GLOB_MAX_COMPLEXITY 10u

/* ebp_glob_complexity() never returns more than this (it stops exploring once
 * it is reached, and also returns it when its work budget runs out). */
#define EBP_GLOB_COMPLEXITY_CAP 100u

/* Parse s[0..n) (the already JSON-unescaped pattern text; need not be
 * NUL-terminated; s may be NULL when n == 0).
 * Returns 0 and sets *out (free with ebp_glob_free), or -1 with *out = NULL and
 * AWS's reason in err[0..errcap) (NUL-terminated, truncated to fit; err may be
 * NULL when errcap == 0), without the "Event pattern is not valid. Reason: " prefix:
 *   "Invalid escape character at pos N"
 *   "Consecutive wildcard characters at pos N"
 * or "Out of memory" when allocation fails. */
int ebp_glob_parse(const char *s, size_t n, ebp_glob **out, char *err, size_t errcap);

void ebp_glob_free(ebp_glob *g); /* NULL is fine */

/* 1 if v[0..n) matches, else 0.  Reads only v[0..n) (v may be NULL when n == 0).
 * O(n + glob length): anchored first and last segments, the middle segments
 * found leftmost-first in order (KMP, no backtracking). */
int ebp_glob_match(const ebp_glob *g, const unsigned char *v, size_t n);

/* Literal text before the first '*' (*p set, length returned; may be 0). */
size_t ebp_glob_prefix(const ebp_glob *g, const unsigned char **p);
/* Literal text after the last '*'.  For a glob without '*' this is the whole
 * literal, same as the prefix. */
size_t ebp_glob_suffix(const ebp_glob *g, const unsigned char **p);
/* Nonzero if the glob contains at least one (unescaped) '*'. */
int ebp_glob_has_star(const ebp_glob *g);
/* The number of (unescaped) '*'. */
size_t ebp_glob_stars(const ebp_glob *g);

/* Wildcard complexity of a set of globs matched against the same field (all the
 * wildcard and anything-but/wildcard conditions of one field of one rule):
 * the largest number of NFA states that one value can keep simultaneously
 * active, over all possible values, counted the way event-ruler's
 * MachineComplexityEvaluator counts "matching wildcard rule prefixes"
 * (one state after every literal byte and one per '*', the glob framed by the
 * '"' bytes event-ruler adds; identical globs count once).  Exact (subset
 * construction) up to EBP_GLOB_COMPLEXITY_CAP; returns the cap when the
 * result reaches it or the work budget runs out.  count == 0 gives 0. */
unsigned ebp_glob_complexity(const ebp_glob *const *globs, size_t count);

/* Same measure without the '"' framing: what event-ruler's own unit tests
 * report for ByteMachine.addPattern(Patterns.wildcardMatch("...")) (for tests
 * and diagnostics; rule validation uses ebp_glob_complexity). */
unsigned ebp_glob_complexity_unframed(const ebp_glob *const *globs, size_t count);

#endif /* EBP_WILDCARD_H */
