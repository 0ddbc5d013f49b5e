/* libFuzzer target: SigV4 parsing, verification and signing on arbitrary bytes.
 *
 * 1. The whole input as an Authorization header value: eb_sigv4_parse must
 *    return 0 or -1 with a consistent error (status, __type, NUL-terminated
 *    message); a parsed header has NUL-terminated fields of sane sizes.
 * 2. The input split on '\n' into: authorization, X-Amz-Date value, path,
 *    query, an extra header value, body.  The authorization is parsed and
 *    verified against a request made of the other parts.
 * 3. Round trip: the request of (2) signed with eb_sigv4_sign must parse and
 *    verify, and must stop verifying when the body changes.
 * No message may contain the secret (unless the input itself does). */
#include "fuzz_common.h"

#include "api/sigv4.h"

#define SECRET "fuzzSecretKey/EXAMPLE+abc="
#define T0 ((int64_t)1767225600) /* 2026-01-01T00:00:00Z */

/* Set per input: messages may quote client text, so the secret is only
 * forbidden in them when the input does not contain it. */
static int secret_in_input;

static int contains(const uint8_t *d, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(d + i, needle, m) == 0)
            return 1;
    return 0;
}

static void check_err(const eb_sigv4_error *err, int rc)
{
    FUZZ_ASSERT(memchr(err->message, 0, sizeof err->message) != NULL);
    FUZZ_ASSERT(err->code != NULL);
    if (rc == 0) {
        FUZZ_ASSERT(err->status == EB_SIGV4_OK);
        FUZZ_ASSERT(err->code[0] == '\0');
        return;
    }
    FUZZ_ASSERT(rc == -1);
    FUZZ_ASSERT(err->status != EB_SIGV4_OK);
    FUZZ_ASSERT(strcmp(err->code, eb_sigv4_code(err->status)) == 0);
    FUZZ_ASSERT(err->message[0] != '\0');
    FUZZ_ASSERT(secret_in_input || strstr(err->message, SECRET) == NULL);
    for (const char *p = err->message; *p; p++) /* printable ASCII only */
        FUZZ_ASSERT((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
}

static void check_auth(const eb_sigv4_auth *a)
{
    FUZZ_ASSERT(memchr(a->access_key, 0, sizeof a->access_key) && a->access_key[0] != '\0');
    FUZZ_ASSERT(memchr(a->date, 0, sizeof a->date));
    FUZZ_ASSERT(memchr(a->region, 0, sizeof a->region) && a->region[0] != '\0');
    FUZZ_ASSERT(memchr(a->service, 0, sizeof a->service));
    FUZZ_ASSERT(memchr(a->signed_headers, 0, sizeof a->signed_headers));
    size_t sl = strlen(a->signature);
    FUZZ_ASSERT(sl == 0 || sl == 64);
}

/* Next '\n'-terminated part of [*p, end) as a NUL-terminated copy. */
static char *next_part(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *s = *p;
    const uint8_t *nl = s < end ? memchr(s, '\n', (size_t)(end - s)) : NULL;
    const uint8_t *e = nl ? nl : end;
    size_t n = (size_t)(e - s);
    char *out = malloc(n + 1);
    FUZZ_ASSERT(out != NULL);
    if (n)
        memcpy(out, s, n);
    out[n] = '\0';
    *p = nl ? nl + 1 : end;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eb_sigv4_auth a;
    eb_sigv4_error err;
    secret_in_input = contains(data, size, SECRET);

    /* 1. Everything as one header value. */
    char *whole = malloc(size + 1);
    FUZZ_ASSERT(whole != NULL);
    if (size)
        memcpy(whole, data, size);
    whole[size] = '\0';
    memset(&err, 0x55, sizeof err);
    int rc = eb_sigv4_parse(whole, &a, &err);
    check_err(&err, rc);
    if (rc == 0)
        check_auth(&a);
    free(whole);

    /* 2. Split into request parts. */
    const uint8_t *p = data, *end = data + size;
    char *auth = next_part(&p, end);
    char *date = next_part(&p, end);
    char *path = next_part(&p, end);
    char *query = next_part(&p, end);
    char *extra = next_part(&p, end);
    const uint8_t *body = p;
    size_t blen = (size_t)(end - p);

    const eb_http_header hdrs[] = {
        {"Host", "127.0.0.1:4010"},
        {"X-Amz-Date", date},
        {"Content-Type", "application/x-amz-json-1.1"},
        {"X-Custom", extra},
        {"x-custom", "second"},
    };
    const size_t nh = sizeof hdrs / sizeof hdrs[0];

    memset(&err, 0x55, sizeof err);
    rc = eb_sigv4_parse(auth, &a, &err);
    check_err(&err, rc);
    if (rc == 0) {
        check_auth(&a);
        memset(&err, 0x55, sizeof err);
        rc = eb_sigv4_verify(&a, "events", "POST", path, query, hdrs, nh, body, blen, SECRET, T0, &err);
        check_err(&err, rc);
        /* The Date header alone. */
        const eb_http_header dh[] = {{"host", "h"}, {"Date", date}};
        memset(&err, 0x55, sizeof err);
        rc = eb_sigv4_verify(&a, "events", "POST", path, query, dh, 2, body, blen, SECRET, T0, &err);
        check_err(&err, rc);
    }

    /* 3. Sign the request made of the fuzzed parts, then verify it. */
    const eb_http_header sh[] = {
        {"Host", "127.0.0.1:4010"},
        {"X-Amz-Date", "20260101T000000Z"},
        {"X-Custom", extra},
        {"x-custom", date},
        {"Content-Type", "application/x-amz-json-1.1"},
    };
    const size_t nsh = sizeof sh / sizeof sh[0];
    char out[8192];
    const char *signed_list = (size & 1) ? NULL : "host;x-amz-date;x-custom";
    rc = eb_sigv4_sign("AKIDFUZZ", SECRET, "us-west-2", "events", "20260101T000000Z", "POST", path, query, sh, nsh,
                       signed_list, body, blen, out, sizeof out);
    FUZZ_ASSERT(rc == 0);
    FUZZ_ASSERT(strstr(out, SECRET) == NULL);
    memset(&err, 0x55, sizeof err);
    rc = eb_sigv4_parse(out, &a, &err);
    check_err(&err, rc);
    FUZZ_ASSERT(rc == 0);
    memset(&err, 0x55, sizeof err);
    rc = eb_sigv4_verify(&a, "events", "POST", path, query, sh, nsh, body, blen, SECRET, T0 + 60, &err);
    check_err(&err, rc);
    if (rc != 0) {
        fprintf(stderr, "round trip failed: %s\n", err.message);
        abort();
    }
    /* One changed byte of the body breaks it. */
    if (blen) {
        uint8_t *b2 = malloc(blen);
        FUZZ_ASSERT(b2 != NULL);
        memcpy(b2, body, blen);
        b2[0] ^= 1;
        rc = eb_sigv4_verify(&a, "events", "POST", path, query, sh, nsh, b2, blen, SECRET, T0, &err);
        check_err(&err, rc);
        FUZZ_ASSERT(rc == -1 && err.status == EB_SIGV4_MISMATCH);
        free(b2);
    }

    free(auth);
    free(date);
    free(path);
    free(query);
    free(extra);
    return 0;
}
