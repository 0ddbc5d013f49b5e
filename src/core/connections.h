/* Connections and API destinations (reference §2.2.7, §2.2.8, §2.3.3, §10):
 * their control plane per (account, region), and what the delivery engine
 * needs to invoke an API destination. Private to core/ and deliver/.
 *
 * The registry (eb_conns) has its own reader/writer lock and its own store
 * documents; core.c only opens it with the model (eb_core_open), frees it
 * (eb_core_close) and routes the eleven operations to eb_conns_call without
 * taking the model's lock.
 *
 * Store documents (written before the change is applied in memory):
 *   kind "connection", key ACCOUNT/REGION/NAME: the connection, its
 *       credentials included (Password, ApiKeyValue, ClientSecret and the
 *       values of parameters marked IsValueSecret). The data directory is
 *       0700 and its files 0600 (store.h); nothing else holds them.
 *   kind "apidest", key ACCOUNT/REGION/NAME: the API destination.
 * Secrets never leave through the API (Describe/List build their answers from
 * a whitelist of public members) and are never logged.
 *
 * States: BASIC and API_KEY connections are AUTHORIZED when created or given
 * new credentials; OAUTH_CLIENT_CREDENTIALS ones are AUTHORIZING until the
 * delivery engine has fetched a token and calls eb_core_connection_set_state.
 * DeauthorizeConnection drops the credentials (DEAUTHORIZED; UpdateConnection
 * with a complete set of credentials authorizes again). An API destination is
 * ACTIVE exactly when its connection (that very ARN: same name and id) exists
 * and is AUTHORIZED; the state is computed when asked, never stored. */
#ifndef EB_CONNECTIONS_H
#define EB_CONNECTIONS_H

#include "core.h"

#include <jansson.h>
#include <stddef.h>

typedef struct eb_conns eb_conns;

typedef struct {
    const char *partition;         /* "aws"; copied */
    unsigned max_connections;      /* per account/region (3,000); more: LimitExceededException */
    unsigned max_api_destinations; /* per account/region (3,000) */
} eb_conns_config;

/* Open the registry on a store it does not own, loading every "connection"
 * and "apidest" document. NULL with a message in err on failure. */
eb_conns *eb_conns_open(const eb_conns_config *cfg, eb_store *store, char *err, size_t errlen);
/* NULL is ignored. */
void eb_conns_close(eb_conns *cs);

/* Is op one of CreateConnection, DescribeConnection, ListConnections,
 * UpdateConnection, DeauthorizeConnection, DeleteConnection,
 * CreateApiDestination, DescribeApiDestination, ListApiDestinations,
 * UpdateApiDestination, DeleteApiDestination? */
int eb_conns_has_op(const char *op);

/* Run one of those operations; the request already passed the shape check.
 * Same contract as eb_core_call: a new response object, or NULL with *e
 * filled. Takes the registry's lock itself. */
json_t *eb_conns_call(eb_conns *cs, const eb_caller *who, const char *op, json_t *req, eb_core_error *e);

/* The core's registry (defined in core.c). */
eb_conns *eb_core_conns(eb_core *c);

/* ---- for the delivery engine ------------------------------------------------ */

/* Everything needed to invoke one API destination, copied out of the
 * registry: the caller owns it all and releases it with
 * eb_apidest_info_free. Strings are NUL-terminated; members that do not
 * apply are NULL (e.g. basic_user unless auth_type is "BASIC", and every
 * credential of a DEAUTHORIZED connection). */
typedef struct {
    char *arn;      /* the API destination's ARN */
    char *endpoint; /* InvocationEndpoint with its scheme: one given without
                       a scheme gets "https://" in front; may hold '*' path
                       wildcards (reference §10.3) */
    char *method;   /* HttpMethod: POST, GET, HEAD, OPTIONS, PUT, PATCH, DELETE */
    unsigned rate_per_s; /* InvocationRateLimitPerSecond (300 unless set) */
    char *conn_arn;
    char *conn_state; /* AUTHORIZED, AUTHORIZING, DEAUTHORIZED, ... */
    char *auth_type;  /* BASIC, API_KEY or OAUTH_CLIENT_CREDENTIALS */
    char *basic_user, *basic_pass;
    char *api_key_name, *api_key_value;
    char *oauth_endpoint; /* AuthorizationEndpoint, with its scheme as endpoint */
    char *oauth_method;   /* GET, POST or PUT */
    char *client_id, *client_secret;
    /* The connection's InvocationHttpParameters / OAuthParameters.
     * OAuthHttpParameters as given, secret values included: objects with
     * optional arrays HeaderParameters, QueryStringParameters,
     * BodyParameters of {"Key", "Value", "IsValueSecret"}; NULL when absent.
     * Owned references (json_decref'd by eb_apidest_info_free). */
    json_t *invocation_params;
    json_t *oauth_params;
} eb_apidest_info;

/* Fill *out for the API destination with this ARN. 0 on success; -1 when no
 * such API destination exists (another id under the same name counts as
 * missing), when its connection is gone, or when out of memory (then *out is
 * left zeroed). Thread-safe; takes the registry's read lock briefly. */
int eb_core_apidest_lookup(eb_core *c, const char *arn, eb_apidest_info *out);

/* Free what eb_core_apidest_lookup copied and zero *i. NULL is ignored. */
void eb_apidest_info_free(eb_apidest_info *i);

/* Set a connection's ConnectionState, e.g. AUTHORIZED after the OAuth token
 * was fetched, or DEAUTHORIZED with a reason when the authorization endpoint
 * refused the client. Only when the current state is `expect` (NULL: any
 * state), so that a token fetch that raced with DeauthorizeConnection or
 * DeleteConnection cannot authorize the connection again. `state` must be one
 * of the model's ConnectionState values other than DELETING. `reason` becomes
 * StateReason (NULL removes it; at most 512 characters are kept). AUTHORIZED
 * also sets LastAuthorizedTime to now. The change is written to the store.
 * Returns 0 when changed, 1 when the current state is not `expect` (nothing
 * changed), -1 when there is no connection with this ARN, the state is not
 * valid, or the store could not be written. */
int eb_core_connection_set_state(eb_core *c, const char *conn_arn, const char *expect, const char *state,
                                 const char *reason);

#endif
