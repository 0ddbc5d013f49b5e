/* Input transformation for delivery (reference §6.2–6.4): what a target
 * receives for a matched event.
 *
 * A target has one of four input modes, compiled once into an eb_input:
 *   none              the event envelope text, unchanged
 *   Input             the constant JSON text, unchanged
 *   InputPath         the value at a JSONPath, as compact JSON (a string keeps its quotes)
 *   InputTransformer  InputTemplate with <placeholders> substituted (§6.4)
 *
 * Three layers, each usable alone (the fuzz targets drive them directly):
 *   eb_jsonpath_*   the JSONPath subset of §6.3, evaluated over JSON *text*: a
 *                   selected value is a span of the event, so numbers keep their
 *                   original spelling (42.5, 1e3, 12345678901234567890).
 *   eb_jsontext_*   re-spelling of one JSON value: compact, or AWS's in-string
 *                   form ({a:b,c:[x]}: no quotes at all).
 *   eb_template_*   the InputTemplate parser and renderer.
 *
 * Ownership: arguments are borrowed; every object returned is owned by the
 * caller and freed with its _free function (which accepts NULL).  Compiled
 * objects are immutable, so any number of threads may render with one
 * eb_input at once.  Output goes to a caller's eb_buf (appended; on failure
 * the buffer is truncated back to its length at entry).  Nothing here logs,
 * prints or exits.
 *
 * Unconfirmed AWS details and the choices made (see the reference §13):
 *   - a wildcard path yields a JSON array of every match in document order,
 *     flattened across several wildcards ([] when nothing matches);
 *   - an InputPath that selects nothing: EB_INPUT_SKIP;
 *   - aws.events.event.ingestion-time is written YYYY-MM-DDThh:mm:ss.mmmZ;
 *   - in a JSON template an object/array placeholder inside a string is
 *     inserted as JSON text, which normally breaks the JSON: EB_INPUT_SKIP;
 *   - CloudWatch Logs rule: the template must be a JSON object whose members
 *     are exactly "timestamp" and "message" (any order, any values).
 */
#ifndef EB_DELIVER_TRANSFORM_H
#define EB_DELIVER_TRANSFORM_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/util.h"

/* ==== compiled input mode of one target =================================== */

typedef struct eb_input eb_input; /* immutable, thread-safe to render concurrently */

/* Compile from the stored Target object (members Input, InputPath,
 * InputTransformer{InputPathsMap, InputTemplate}; absent or null members =
 * not set; none set = the matched event).  Applies every check of
 * eb_input_validate except the CloudWatch Logs one.  NULL + message in err on
 * failure (the message is the PutTargets ValidationException text). */
eb_input *eb_input_compile(const json_t *target, char *err, size_t errlen);
void eb_input_free(eb_input *in);

typedef struct {
    const char *event;
    size_t event_len;      /* envelope JSON text as stored (valid JSON object) */
    const char *rule_arn;  /* NULL = empty */
    const char *rule_name; /* NULL = empty */
    int64_t ingestion_ms;  /* ingestion time, ms since epoch */
} eb_input_ctx;

enum {
    EB_INPUT_OK = 0,
    EB_INPUT_SKIP = 1, /* AWS silently does not deliver (e.g. invalid JSON result) */
    EB_INPUT_ERR = -1  /* out of memory, output too large, or a malformed event */
};

/* Largest payload eb_input_render produces (bytes); beyond it: EB_INPUT_ERR. */
#define EB_INPUT_MAX_OUTPUT (8u * 1024u * 1024u)

/* Render the payload into out (appended).  For the default mode the event
 * text is copied unchanged.  On SKIP/ERR, out is as it was and why (if not
 * NULL) says why. */
int eb_input_render(const eb_input *in, const eb_input_ctx *ctx, eb_buf *out, char *why, size_t whylen);

/* PutTargets validation of one target's input settings (reference §6.1/6.4),
 * with AWS's ValidationException texts where they were recorded:
 *   "Only one of Input, InputPath, or InputTransformer must be provided for target <id>."
 *   "InputTemplate for target <id> contains invalid placeholder <name>."
 *   "InputTemplate for target <id> contains placeholder <name> valid only for JSON template."
 *   "Input for target <id> is not a valid JSON text."
 * and the CloudWatch Logs template rule (eb_input_check_log_template).
 * 0 when acceptable, else -1 with the message in err. */
int eb_input_validate(const json_t *target, char *err, size_t errlen);

/* Target HttpParameters with dynamic values: returns a new object with the
 * same members where each whole-value JSONPath string ("$.detail.x") in
 * PathParameterValues / HeaderParameters values / QueryStringParameters
 * values is replaced by the value at that path in the event (strings raw,
 * other values as compact JSON text; missing -> empty string).  NULL if
 * http_params is NULL (or not an object, or out of memory). */
json_t *eb_input_http_params(const json_t *http_params, const char *event, size_t event_len);

/* The §6.4 rule for CloudWatch Logs targets (Arn service "logs") with an
 * InputTransformer: 0 if the template is acceptable (or the rule does not
 * apply), else -1 with an AWS-like message. */
int eb_input_check_log_template(const json_t *target, char *err, size_t errlen);

/* ==== JSONPath subset (§6.3) ================================================
 * Grammar: `$` then any number of steps:
 *   .name        name = 1+ bytes, none of  . [ ] * ' " \  space or control
 *                (covers the documented letters, digits, - _ /)
 *   .*  [*]      wildcard: every member value of an object / element of an array
 *   [n]          array index, 0-based; negative counts from the end (-1 = last)
 *   ['name']  ["name"]   bracketed name (any bytes except that quote)
 * At most EB_JSONPATH_MAX_STEPS steps.  Duplicate object keys: a name step
 * sees the last occurrence (as Jackson and jansson do). */

#define EB_JSONPATH_MAX_STEPS 256

typedef struct eb_jsonpath eb_jsonpath;

/* Compile path[0..len).  NULL + message on a syntax error or out of memory. */
eb_jsonpath *eb_jsonpath_compile(const char *path, size_t len, char *err, size_t errlen);
void eb_jsonpath_free(eb_jsonpath *jp);
/* 1 when the path has a wildcard (its result is always an array), else 0. */
int eb_jsonpath_is_multi(const eb_jsonpath *jp);
/* Definite paths: 1 with *val and *vlen set to the selected value's text (a
 * span of json, spelled as in json), 0 when nothing is selected, -1 when the
 * path is multi or json is malformed along the way. */
int eb_jsonpath_find(const eb_jsonpath *jp, const char *json, size_t len, const char **val, size_t *vlen);
/* Append the compact JSON text of the result: the value (definite path) or
 * the array of all matches (multi path).  1 appended, 0 nothing selected
 * (definite paths only), -1 malformed json or out of memory (out unchanged). */
int eb_jsonpath_eval(const eb_jsonpath *jp, const char *json, size_t len, eb_buf *out);

/* ==== JSON value text ======================================================
 * Both take the text of one JSON value (e.g. a span from eb_jsonpath_find)
 * and append a re-spelling; 0, or -1 when the text is malformed or out of
 * memory (out unchanged).  Neither recurses, so depth is no concern. */

/* Insignificant whitespace removed; strings and numbers as written. */
int eb_jsontext_compact(eb_buf *out, const char *v, size_t n);
/* AWS's form for a value inside a string: strings decoded and unquoted,
 * everything else compact: {"a":"b","c":["x",1]} -> {a:b,c:[x,1]}. */
int eb_jsontext_plain(eb_buf *out, const char *v, size_t n);

/* ==== InputTemplate (§6.4) ==================================================
 * A template is a JSON template when its first non-blank byte is `{`, else a
 * string template.  A placeholder is `<name>` where name is 1+ bytes other
 * than < > " space tab newline NUL; it must be one of the caller's names or a
 * predefined variable.  In a JSON template each placeholder is "in a string"
 * or not, by the JSON string state of the template text before it. */

/* Predefined variables; their values come after the caller's ones. */
enum {
    EB_TPL_RULE_ARN = 0,   /* aws.events.rule-arn */
    EB_TPL_RULE_NAME,      /* aws.events.rule-name */
    EB_TPL_INGESTION_TIME, /* aws.events.event.ingestion-time */
    EB_TPL_EVENT,          /* aws.events.event       (JSON templates only) */
    EB_TPL_EVENT_JSON,     /* aws.events.event.json  (JSON templates only) */
    EB_TPL_NPREDEF
};
/* The name of predefined variable k (EB_TPL_RULE_ARN...), or NULL. */
const char *eb_template_predefined_name(int k);

typedef struct eb_template eb_template;

/* Parse tpl[0..len) with variables names[0..nnames) (NUL-terminated).
 * NULL + message on an unknown placeholder, a JSON-only variable in a string
 * template, or out of memory; target_id (may be NULL) is used in the message. */
eb_template *eb_template_parse(const char *tpl, size_t len, const char *const *names, size_t nnames,
                               const char *target_id, char *err, size_t errlen);
void eb_template_free(eb_template *t);
int eb_template_is_json(const eb_template *t);
/* Does the template use variable v (0..nnames+EB_TPL_NPREDEF)? */
int eb_template_uses(const eb_template *t, size_t v);

/* The value of one variable: the JSON text of the value, or json == NULL
 * when the path selected nothing. */
typedef struct {
    const char *json;
    size_t len;
} eb_tpl_value;

/* Substitute: vals has nnames + EB_TPL_NPREDEF entries (the caller's
 * variables, then the predefined ones in enum order); only used ones are
 * read.  EB_INPUT_OK, EB_INPUT_SKIP (a JSON template whose result is not
 * valid JSON), or EB_INPUT_ERR (out of memory, result larger than
 * EB_INPUT_MAX_OUTPUT, malformed value text).  out is unchanged unless OK. */
int eb_template_render(const eb_template *t, const eb_tpl_value *vals, eb_buf *out);

#endif
