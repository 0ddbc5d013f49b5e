/* Request shapes of the AWS JSON 1.1 operations we serve: member types,
 * required members, lengths, enums and regular-expression patterns as in the
 * service model (reference §2.2, §2.3), checked the way AWS reports them.
 *
 *  - a member of the wrong JSON type -> SerializationException
 *  - constraint violations -> ValidationException with AWS's text:
 *    "1 validation error detected: Value 'x' at 'name' failed to satisfy
 *    constraint: Member must satisfy regular expression pattern: [...]",
 *    several joined with "; " after "N validation errors detected: ".
 * Unknown members are ignored; JSON null counts as absent. */
#ifndef EB_SHAPE_H
#define EB_SHAPE_H

#include "../util/util.h"

#include <jansson.h>

/* Is `op` (e.g. "PutRule") an operation with a shape here? */
int eb_shape_known(const char *op);

/* Check a request body (a JSON object) against op's input shape.
 * Returns 0 when it conforms; else 1 with *code set to the AWS error type
 * (static string) and the message appended to msg. */
int eb_shape_check(const char *op, const json_t *req, const char **code, eb_buf *msg);

/* Whole-string match of s[0..len) (UTF-8) against a regular expression in
 * the Java syntax subset the model's patterns use: 1 match, 0 no match, -1
 * unsupported pattern or out of memory. */
int eb_shape_regex_match(const char *pattern, const char *s, size_t len);

#endif
