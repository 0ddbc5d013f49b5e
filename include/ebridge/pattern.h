/* ebridge pattern engine: the EventBridge event-pattern language, compiled.
 *
 *   eb_pattern   one validated pattern (immutable; share it freely across
 *                threads; free it with eb_pattern_free).
 *   eb_machine   the rules of one bus compiled into a single matching
 *                machine.  Adding or removing a rule builds a new immutable
 *                snapshot, sharing everything that did not change, and swaps
 *                it in atomically; writers are serialised inside the machine.
 *   eb_snapshot  one immutable version of a machine.  Matching reads only a
 *                snapshot, so it never waits for writers.  Reference counted.
 *   eb_matcher   per-thread scratch space for matching (not thread-safe:
 *                one per thread).  It owns the result arrays it returns.
 *
 * The library depends on libc only.  It never prints, never exits, and
 * allocates only inside the calls documented here (all with malloc).
 * Errors come back as values: an eb_status and, where a pointer to an
 * eb_error is given, a message.  Pattern errors carry AWS's text
 * ("Event pattern is not valid. Reason: ..."). */
#ifndef EBRIDGE_PATTERN_H
#define EBRIDGE_PATTERN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    EB_OK = 0,
    EB_ERR_PATTERN = 1, /* invalid event pattern (InvalidEventPatternException) */
    EB_ERR_EVENT = 2,   /* event is not valid JSON, not an object, or too deep */
    EB_ERR_NOMEM = 3,   /* out of memory; nothing was changed */
    EB_ERR_NOTFOUND = 4 /* eb_machine_remove: no rule with that key */
} eb_status;

typedef struct eb_error {
    eb_status code;
    size_t offset;      /* byte offset in the input where the problem was seen */
    char message[1024]; /* NUL-terminated, truncated if longer */
} eb_error;

/* ---- patterns --------------------------------------------------------- */

typedef struct eb_pattern eb_pattern;

/* Validate and compile the JSON text json[0..len) (need not be NUL-terminated).
 * On EB_OK, *out is a new pattern owned by the caller.  On EB_ERR_PATTERN,
 * err->message is "Event pattern is not valid. Reason: <AWS's reason>". */
eb_status eb_pattern_compile(const char *json, size_t len, eb_pattern **out, eb_error *err);
void eb_pattern_free(eb_pattern *p); /* NULL is fine */

/* Number of sub-rules after "$or" expansion (at most 1000). */
size_t eb_pattern_subrules(const eb_pattern *p);

/* ---- machines and snapshots ------------------------------------------ */

typedef struct eb_machine eb_machine;
typedef struct eb_snapshot eb_snapshot;

eb_machine *eb_machine_new(void); /* NULL on out-of-memory */
/* Frees the machine.  Snapshots obtained from it stay valid until released. */
void eb_machine_free(eb_machine *m);

/* Add the rule `key` (any caller-chosen 64-bit identifier) with pattern p;
 * an existing rule with the same key is replaced.  The machine copies what
 * it needs: p stays owned by the caller.  Thread-safe. */
eb_status eb_machine_add(eb_machine *m, uint64_t key, const eb_pattern *p);
/* Add (or replace) n rules in one change: far cheaper than n calls when
 * loading many rules.  A key given twice keeps its last pattern. */
eb_status eb_machine_add_batch(eb_machine *m, size_t n, const uint64_t *keys, const eb_pattern *const *pats);
/* Remove rule `key`: EB_OK, or EB_ERR_NOTFOUND.  Thread-safe. */
eb_status eb_machine_remove(eb_machine *m, uint64_t key);

/* A new reference to the current snapshot (never NULL once the machine
 * exists).  Release it with eb_snapshot_release; any thread may release. */
eb_snapshot *eb_machine_snapshot(eb_machine *m);
void eb_snapshot_release(eb_snapshot *s);
size_t eb_snapshot_rules(const eb_snapshot *s);

/* Bytes of memory held by the snapshot's own structures (for benchmarks). */
size_t eb_snapshot_memory(const eb_snapshot *s);

/* ---- matching ---------------------------------------------------------- */

typedef struct eb_matcher eb_matcher;

enum {
    /* The event bytes were already validated (e.g. at ingestion): skip
     * JSON/UTF-8 checks and stop reading as soon as no pattern can need
     * more.  Still memory-safe on any input; garbage in, unspecified (but
     * deterministic) matches out.  Duplicate object keys: only the first
     * occurrence of a key is guaranteed to be seen. */
    EB_MATCH_TRUSTED = 1
};

#define EB_DEFAULT_MAX_DEPTH 1000u
#define EB_MAX_MAX_DEPTH 100000u

eb_matcher *eb_matcher_new(void); /* NULL on out-of-memory */
void eb_matcher_free(eb_matcher *mt);
/* Nesting depth limit for events (default 1000; at most EB_MAX_MAX_DEPTH).
 * An event nested deeper is rejected with EB_ERR_EVENT. */
void eb_matcher_set_max_depth(eb_matcher *mt, unsigned depth);

/* Match the event json[0..len) (a JSON object) against snapshot s.
 * On EB_OK, *keys receives *nkeys rule keys (each matching rule once, in no
 * particular order); the array belongs to mt and stays valid until the next
 * call on mt.  On EB_ERR_EVENT, err (if not NULL) says why. */
eb_status eb_match(eb_matcher *mt, const eb_snapshot *s, const char *json, size_t len, unsigned flags,
                   const uint64_t **keys, size_t *nkeys, eb_error *err);

/* ---- JSON syntax -------------------------------------------------------- */

/* Full RFC 8259 check of json[0..len): grammar, UTF-8, nesting depth.  Any
 * top-level value is accepted (whether it must be an object is the caller's
 * check).  EB_OK or EB_ERR_EVENT with a message. */
eb_status eb_json_check(const char *json, size_t len, unsigned max_depth, eb_error *err);

#ifdef __cplusplus
}
#endif
#endif
