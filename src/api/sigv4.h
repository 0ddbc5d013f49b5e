/* AWS Signature Version 4 (AWS4-HMAC-SHA256): parsing the Authorization
 * header and verifying a request's signature (reference §1.4).
 * Pure functions over their arguments; OpenSSL for SHA-256/HMAC. */
#ifndef EB_SIGV4_H
#define EB_SIGV4_H

#include "http.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char access_key[129];
    char date[9];    /* YYYYMMDD from the credential scope */
    char region[65]; /* from the credential scope */
    char service[33];
    char signed_headers[2049]; /* lower-case names joined by ';' as sent */
    char signature[65];        /* 64 lower-case hex digits */
} eb_sigv4_auth;

/* The outcome of a check: an AWS error code and message, or EB_SIGV4_OK. */
typedef enum {
    EB_SIGV4_OK = 0,
    EB_SIGV4_INCOMPLETE,    /* IncompleteSignatureException: malformed header or missing parts */
    EB_SIGV4_MISMATCH,      /* InvalidSignatureException: signature does not verify */
    EB_SIGV4_EXPIRED,       /* InvalidSignatureException: "Signature expired: ..." / "not yet current" */
    EB_SIGV4_UNKNOWN_KEY,   /* UnrecognizedClientException (decided by the caller) */
    EB_SIGV4_MISSING,       /* MissingAuthenticationTokenException: no Authorization header */
    EB_SIGV4_INTERNAL,      /* InternalFailure (HTTP 500): out of memory while verifying */
} eb_sigv4_status;

/* The __type for a status ("" for OK) and its HTTP status (400, 500 for
 * EB_SIGV4_INTERNAL, 200 for OK). Note: some statuses carry more than one
 * kind of failure; err.code is always the right __type. */
const char *eb_sigv4_code(eb_sigv4_status st);
unsigned eb_sigv4_http_status(eb_sigv4_status st);

typedef struct {
    eb_sigv4_status status;
    const char *code; /* the AWS __type for the status ("" for OK) */
    char message[512];
} eb_sigv4_error;

/* Parse `AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/SERVICE/aws4_request,
 * SignedHeaders=a;b, Signature=hex`. Returns 0, or -1 with err filled
 * (err may be NULL). Accepts optional spaces after commas. Failures:
 * MISSING (NULL, empty, or not starting with "AWS4-"), INCOMPLETE (malformed,
 * missing parts, other algorithm), MISMATCH (InvalidSignatureException: bad
 * region or terminator in the scope), UNKNOWN_KEY (empty or > 128-char key).
 * A scope date that is not 8 chars, a service too long, or a signature that is
 * not 64 lower-case hex digits parse as "" so that verify reports them. */
int eb_sigv4_parse(const char *authorization, eb_sigv4_auth *out, eb_sigv4_error *err);

/* Fill err for an access key the caller does not know (UnrecognizedClientException,
 * "The security token included in the request is invalid."). */
void eb_sigv4_unknown_key(eb_sigv4_error *err);

/* Verify a parsed request. `hdrs` are all request headers as received (the
 * signed ones are looked up case-insensitively, repeated values joined by
 * ','); `secret` is the access key's secret; now_s the server's clock.
 * `path` is the path as sent on the wire (still percent-encoded; it is
 * normalised and encoded again, like botocore); `query` the raw query string
 * without '?' (NULL or "" for none). The body hash is always computed from
 * `body` (a client's X-Amz-Content-Sha256 is not trusted).
 * Checks, in AWS's order: X-Amz-Date (else Date) present and well-formed,
 * within 15 minutes of now, `host` and the date header signed, scope service
 * = `service` and scope date = first 8 chars of the date, then the signature
 * (constant time). Returns 0 or -1 with err filled. Never logs the secret. */
int eb_sigv4_verify(const eb_sigv4_auth *a, const char *service, const char *method, const char *path,
                    const char *query, const eb_http_header *hdrs, size_t nh, const void *body, size_t blen,
                    const char *secret, int64_t now_s, eb_sigv4_error *err);

/* Sign a request the way botocore does (for tests and benchmarks): fills
 * `authorization` (the header value) for the given headers, which must
 * include host and x-amz-date (amz_date is that header's value). If
 * signed_headers is NULL it is derived like botocore: every header but
 * connection, expect, keep-alive, proxy-*, te, trailer, transfer-encoding,
 * upgrade, user-agent, x-amzn-trace-id and authorization, lower-case, sorted.
 * Returns 0, or -1 (a signed header missing, out of memory, authlen too small). */
int eb_sigv4_sign(const char *access_key, const char *secret, const char *region, const char *service,
                  const char *amz_date, const char *method, const char *path, const char *query,
                  const eb_http_header *hdrs, size_t nh, const char *signed_headers, const void *body, size_t blen,
                  char *authorization, size_t authlen);

#endif
