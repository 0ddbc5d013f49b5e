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
} eb_sigv4_status;

typedef struct {
    eb_sigv4_status status;
    const char *code; /* the AWS __type for the status ("" for OK) */
    char message[512];
} eb_sigv4_error;

/* Parse `AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/SERVICE/aws4_request,
 * SignedHeaders=a;b, Signature=hex`. Returns 0, or -1 with err filled
 * (INCOMPLETE). Accepts optional spaces after commas. */
int eb_sigv4_parse(const char *authorization, eb_sigv4_auth *out, eb_sigv4_error *err);

/* Verify a parsed request. `hdrs` are all request headers as received (the
 * signed ones are looked up case-insensitively, repeated values joined by
 * ','); `secret` is the access key's secret; now_s the server's clock.
 * Checks: service "events"... (the caller passes the expected service),
 * scope date = first 8 chars of X-Amz-Date, X-Amz-Date (or Date) within 15
 * minutes of now, `host` and `x-amz-date` signed, signature (constant time).
 * Returns 0 or -1 with err filled. Never logs the secret. */
int eb_sigv4_verify(const eb_sigv4_auth *a, const char *service, const char *method, const char *path,
                    const char *query, const eb_http_header *hdrs, size_t nh, const void *body, size_t blen,
                    const char *secret, int64_t now_s, eb_sigv4_error *err);

/* Sign a request the way botocore does (for tests and benchmarks): fills
 * `authorization` (the header value) for the given headers, which must
 * include host and x-amz-date; signed_headers is "a;b;c" (sorted, lower). */
int eb_sigv4_sign(const char *access_key, const char *secret, const char *region, const char *service,
                  const char *amz_date, const char *method, const char *path, const char *query,
                  const eb_http_header *hdrs, size_t nh, const char *signed_headers, const void *body, size_t blen,
                  char *authorization, size_t authlen);

#endif
