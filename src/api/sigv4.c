/* AWS Signature Version 4 (AWS4-HMAC-SHA256): parsing, verification and
 * signing (reference §1.4). The canonical request is built exactly the way
 * botocore builds it (path normalised and URI-encoded, query pairs decoded,
 * re-encoded and sorted, header values trimmed with inner whitespace runs
 * collapsed, repeated headers joined with ','), so anything botocore signs
 * verifies here and eb_sigv4_sign produces botocore's header byte for byte.
 *
 * Error messages follow the texts AWS's JSON services return. The secret never
 * enters a message; the echoed Authorization header holds no secret. */
#define _POSIX_C_SOURCE 200809L
#include "sigv4.h"

#include "util/util.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALGORITHM "AWS4-HMAC-SHA256"
#define TERMINATOR "aws4_request"
#define SKEW_S (15 * 60)
#define ECHO_MAX 200 /* bytes of client text quoted in a message */

static const char MSG_MISMATCH[] = "The request signature we calculated does not match the signature you provided. "
                                   "Check your AWS Secret Access Key and signing method. Consult the service "
                                   "documentation for details.";

/* ---- errors ------------------------------------------------------------ */

const char *eb_sigv4_code(eb_sigv4_status st)
{
    switch (st) {
    case EB_SIGV4_OK: return "";
    case EB_SIGV4_INCOMPLETE: return "IncompleteSignatureException";
    case EB_SIGV4_MISMATCH:
    case EB_SIGV4_EXPIRED: return "InvalidSignatureException";
    case EB_SIGV4_UNKNOWN_KEY: return "UnrecognizedClientException";
    case EB_SIGV4_MISSING: return "MissingAuthenticationTokenException";
    case EB_SIGV4_INTERNAL: return "InternalFailure";
    }
    return "InternalFailure";
}

unsigned eb_sigv4_http_status(eb_sigv4_status st)
{
    if (st == EB_SIGV4_OK)
        return 200;
    return st == EB_SIGV4_INTERNAL ? 500 : 400;
}

static void err_set(eb_sigv4_error *err, eb_sigv4_status st)
{
    if (!err)
        return;
    err->status = st;
    err->code = eb_sigv4_code(st);
    err->message[0] = '\0';
}

static void err_add(eb_sigv4_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void err_add(eb_sigv4_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    size_t used = strnlen(err->message, sizeof err->message);
    if (used + 1 >= sizeof err->message)
        return;
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(err->message + used, sizeof err->message - used, fmt, ap);
    va_end(ap);
    (void)r;
}

/* Append client text: at most `max` bytes, control and non-ASCII bytes shown
 * as '?', "..." when cut. */
static void err_text(eb_sigv4_error *err, const char *s, size_t len, size_t max)
{
    if (!err)
        return;
    size_t used = strnlen(err->message, sizeof err->message);
    size_t cut = len > max;
    if (cut)
        len = max;
    for (size_t i = 0; i < len && used + 1 < sizeof err->message; i++) {
        unsigned char c = (unsigned char)s[i];
        err->message[used++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    err->message[used] = '\0';
    if (cut)
        err_add(err, "...");
}

static void fail(eb_sigv4_error *err, eb_sigv4_status st, const char *msg)
{
    err_set(err, st);
    err_add(err, "%s", msg);
}

void eb_sigv4_unknown_key(eb_sigv4_error *err)
{
    fail(err, EB_SIGV4_UNKNOWN_KEY, "The security token included in the request is invalid.");
}

/* ---- small string helpers ------------------------------------------------ */

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static int ieq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.' || c == '~';
}

static const char HEX_UP[] = "0123456789ABCDEF";
static const char HEX_LO[] = "0123456789abcdef";

static int uri_encode(eb_buf *b, const char *s, size_t len, int keep_slash)
{
    if (eb_buf_reserve(b, len * 3) != 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            b->p[b->n++] = (char)c;
        } else {
            b->p[b->n++] = '%';
            b->p[b->n++] = HEX_UP[c >> 4];
            b->p[b->n++] = HEX_UP[c & 15];
        }
    }
    b->p[b->n] = '\0';
    return 0;
}

/* Percent-decode then URI-encode (unreserved kept, everything else %XX). */
static int query_component(eb_buf *b, const char *s, size_t len)
{
    eb_buf tmp = {0};
    if (eb_buf_reserve(&tmp, len + 1) != 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int h, l;
        if (s[i] == '%' && i + 2 < len && (h = eb_hexval((unsigned char)s[i + 1])) >= 0 &&
            (l = eb_hexval((unsigned char)s[i + 2])) >= 0) {
            tmp.p[tmp.n++] = (char)(h * 16 + l);
            i += 2;
        } else {
            tmp.p[tmp.n++] = s[i];
        }
    }
    int rc = uri_encode(b, tmp.p, tmp.n, 0);
    eb_buf_free(&tmp);
    return rc;
}

static void to_hex(const unsigned char *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = HEX_LO[d[i] >> 4];
        out[2 * i + 1] = HEX_LO[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static int sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(data ? data : "", len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return -1;
    to_hex(md, 32, out);
    return 0;
}

static int hmac(const void *key, size_t klen, const void *msg, size_t mlen, unsigned char out[32])
{
    unsigned int outlen = 0;
    if (!HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &outlen) || outlen != 32)
        return -1;
    return 0;
}

/* ---- time ----------------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* `YYYYMMDDTHHMMSSZ` for epoch seconds; out needs 17 bytes. */
static void iso_basic(int64_t t, char out[17])
{
    eb_civil c;
    eb_civil_from_epoch(t, &c);
    if (c.year < 0 || c.year > 9999) {
        memcpy(out, "00000000T000000Z", 17);
        return;
    }
    snprintf(out, 17, "%04u%02u%02uT%02u%02u%02uZ", (unsigned)c.year % 10000u, c.month % 100u, c.day % 100u,
             c.hour % 100u, c.min, c.sec);
}

static int digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return 0;
}

static int valid_civil(unsigned y, unsigned mo, unsigned d, unsigned h, unsigned mi, unsigned s)
{
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || s > 59)
        return 0;
    if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 0;
    return 1;
}

/* ISO-8601 basic (`20260101T000000Z`) or, for the Date header, RFC 1123
 * (`Thu, 01 Jan 2026 00:00:00 GMT`). */
static int parse_http_date(const char *s, size_t n, int64_t *t)
{
    unsigned y, mo, d, h, mi, sec;
    if (n == 16 && s[8] == 'T' && s[15] == 'Z' && digits(s, 4, &y) == 0 && digits(s + 4, 2, &mo) == 0 &&
        digits(s + 6, 2, &d) == 0 && digits(s + 9, 2, &h) == 0 && digits(s + 11, 2, &mi) == 0 &&
        digits(s + 13, 2, &sec) == 0) {
        /* ok */
    } else if (n == 29 && s[3] == ',' && s[4] == ' ' && s[7] == ' ' && s[11] == ' ' && s[16] == ' ' &&
               s[19] == ':' && s[22] == ':' && s[25] == ' ' && memcmp(s + 26, "GMT", 3) == 0 &&
               digits(s + 5, 2, &d) == 0 && digits(s + 12, 4, &y) == 0 && digits(s + 17, 2, &h) == 0 &&
               digits(s + 20, 2, &mi) == 0 && digits(s + 23, 2, &sec) == 0) {
        static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
        mo = 0;
        for (unsigned i = 0; i < 12; i++)
            if (memcmp(s + 8, months + 3 * i, 3) == 0)
                mo = i + 1;
    } else {
        return -1;
    }
    if (!valid_civil(y, mo, d, h, mi, sec))
        return -1;
    *t = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + mi * 60 + sec;
    return 0;
}

/* ---- parsing the Authorization header ------------------------------------ */

static int is_sep(unsigned char c)
{
    return c == ',' || c == ' ' || c == '\t';
}

static void echo_header(eb_sigv4_error *err, const char *s, size_t n)
{
    err_text(err, s, n, ECHO_MAX);
}

static int copy_field(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        return -1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

static int valid_region(const char *s, size_t n)
{
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
    }
    return 1;
}

static int parse_credential(const char *cred, size_t clen, eb_sigv4_auth *out, eb_sigv4_error *err)
{
    size_t n = clen;
    while (n > 0 && cred[n - 1] == '/') /* trailing slashes are ignored */
        n--;
    const char *part[5];
    size_t plen[5];
    size_t np = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || cred[i] == '/') {
            if (np < 5) {
                part[np] = cred + start;
                plen[np] = i - start;
            }
            np++;
            start = i + 1;
        }
    }
    if (np != 5) {
        err_set(err, EB_SIGV4_INCOMPLETE);
        err_add(err, "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
                     "got '");
        err_text(err, cred, n, ECHO_MAX);
        err_add(err, "'");
        return -1;
    }
    if (plen[0] == 0 || copy_field(out->access_key, sizeof out->access_key, part[0], plen[0]) != 0) {
        eb_sigv4_unknown_key(err);
        return -1;
    }
    /* A date or service that cannot be right is left empty: verify then
     * reports the scope mismatch. */
    if (plen[1] != 8 || copy_field(out->date, sizeof out->date, part[1], plen[1]) != 0)
        out->date[0] = '\0';
    if (copy_field(out->service, sizeof out->service, part[3], plen[3]) != 0)
        out->service[0] = '\0';
    int bad_region = !valid_region(part[2], plen[2]);
    int bad_term = !(plen[4] == strlen(TERMINATOR) && memcmp(part[4], TERMINATOR, plen[4]) == 0);
    if (bad_region || bad_term) {
        err_set(err, EB_SIGV4_MISMATCH);
        if (bad_region) {
            err_add(err, "Credential should be scoped to a valid region, not '");
            err_text(err, part[2], plen[2], 70);
            err_add(err, "'.%s", bad_term ? " " : "");
        }
        if (bad_term) {
            err_add(err, "Credential should be scoped with a valid terminator: 'aws4_request', not '");
            err_text(err, part[4], plen[4], 70);
            err_add(err, "'.");
        }
        return -1;
    }
    copy_field(out->region, sizeof out->region, part[2], plen[2]);
    return 0;
}

int eb_sigv4_parse(const char *authorization, eb_sigv4_auth *out, eb_sigv4_error *err)
{
    memset(out, 0, sizeof *out);
    err_set(err, EB_SIGV4_OK);
    if (!authorization) {
        fail(err, EB_SIGV4_MISSING, "Missing Authentication Token");
        return -1;
    }
    const char *s = authorization;
    size_t n = strlen(s);
    while (n > 0 && is_space((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n > 0 && is_space((unsigned char)s[n - 1]))
        n--;
    if (n < 5 || memcmp(s, "AWS4-", 5) != 0) {
        fail(err, EB_SIGV4_MISSING, "Missing Authentication Token");
        return -1;
    }
    size_t alen = 0;
    while (alen < n && !is_sep((unsigned char)s[alen]))
        alen++;

    const char *cred = NULL, *sh = NULL, *sig = NULL;
    size_t cred_n = 0, sh_n = 0, sig_n = 0;
    int have_sh = 0;
    for (size_t i = alen; i < n;) {
        if (is_sep((unsigned char)s[i])) {
            i++;
            continue;
        }
        size_t t = i;
        while (i < n && !is_sep((unsigned char)s[i]))
            i++;
        const char *eq = memchr(s + t, '=', i - t);
        if (!eq) {
            err_set(err, EB_SIGV4_INCOMPLETE);
            err_add(err, "'");
            err_text(err, s + t, i - t, 100);
            err_add(err, "' not a valid key=value pair (missing equal-sign) in Authorization header: '");
            echo_header(err, s, n);
            err_add(err, "'.");
            return -1;
        }
        size_t klen = (size_t)(eq - (s + t));
        const char *v = eq + 1;
        size_t vlen = i - t - klen - 1;
        if (klen == 10 && memcmp(s + t, "Credential", 10) == 0) {
            cred = v;
            cred_n = vlen;
        } else if (klen == 13 && memcmp(s + t, "SignedHeaders", 13) == 0) {
            sh = v;
            sh_n = vlen;
            have_sh = 1;
        } else if (klen == 9 && memcmp(s + t, "Signature", 9) == 0) {
            sig = v;
            sig_n = vlen;
        }
    }
    if (cred_n == 0 || sig_n == 0 || !have_sh) {
        err_set(err, EB_SIGV4_INCOMPLETE);
        if (cred_n == 0)
            err_add(err, "Authorization header requires 'Credential' parameter. ");
        if (sig_n == 0)
            err_add(err, "Authorization header requires 'Signature' parameter. ");
        if (!have_sh)
            err_add(err, "Authorization header requires 'SignedHeaders' parameter. ");
        err_add(err, "Authorization=");
        echo_header(err, s, n);
        return -1;
    }
    if (!(alen == strlen(ALGORITHM) && memcmp(s, ALGORITHM, alen) == 0)) {
        err_set(err, EB_SIGV4_INCOMPLETE);
        err_add(err, "Unsupported AWS 'algorithm': '");
        err_text(err, s, alen, 100);
        err_add(err, "' (only AWS4-HMAC-SHA256 for now).");
        return -1;
    }
    if (parse_credential(cred, cred_n, out, err) != 0)
        return -1;
    if (copy_field(out->signed_headers, sizeof out->signed_headers, sh, sh_n) != 0) {
        fail(err, EB_SIGV4_INCOMPLETE, "Authorization header 'SignedHeaders' parameter is too long.");
        memset(out, 0, sizeof *out);
        return -1;
    }
    /* Anything but 64 lower-case hex digits cannot match: left empty, so
     * verify reports a signature mismatch as AWS does. */
    int sig_ok = sig_n == 64;
    for (size_t i = 0; sig_ok && i < sig_n; i++)
        sig_ok = (sig[i] >= '0' && sig[i] <= '9') || (sig[i] >= 'a' && sig[i] <= 'f');
    if (sig_ok)
        copy_field(out->signature, sizeof out->signature, sig, sig_n);
    return 0;
}

/* ---- the canonical request ------------------------------------------------- */

/* Append the values of every header called name (any case), each trimmed
 * with inner whitespace runs collapsed, joined by ','. Returns how many
 * headers matched, or -1 when out of memory. */
static int header_values(eb_buf *b, const eb_http_header *hdrs, size_t nh, const char *name, size_t nlen)
{
    int found = 0;
    for (size_t i = 0; i < nh; i++) {
        if (!hdrs[i].name)
            continue;
        if (!ieq(name, nlen, hdrs[i].name))
            continue;
        if (found && eb_buf_putc(b, ',') != 0)
            return -1;
        found++;
        const char *v = hdrs[i].value ? hdrs[i].value : "";
        int pending_space = 0, any = 0;
        for (; *v; v++) {
            unsigned char c = (unsigned char)*v;
            if (is_space(c)) {
                pending_space = any;
                continue;
            }
            if (pending_space && eb_buf_putc(b, ' ') != 0)
                return -1;
            pending_space = 0;
            any = 1;
            if (eb_buf_putc(b, (char)c) != 0)
                return -1;
        }
    }
    if (!b->p) { /* always a string, even if empty */
        if (eb_buf_reserve(b, 0) != 0)
            return -1;
        b->p[b->n] = '\0';
    }
    return found;
}

static int canonical_uri(eb_buf *b, const char *path)
{
    if (!path || !*path)
        return eb_buf_putc(b, '/');
    size_t n = strlen(path);
    /* RFC 3986 dot-segment removal, empty segments dropped (botocore). */
    size_t *seg = malloc((n / 2 + 2) * sizeof *seg * 2);
    if (!seg)
        return -1;
    size_t nseg = 0;
    for (size_t i = 0; i <= n;) {
        size_t j = i;
        while (j < n && path[j] != '/')
            j++;
        size_t len = j - i;
        if (len == 0 || (len == 1 && path[i] == '.')) {
            /* skip */
        } else if (len == 2 && path[i] == '.' && path[i + 1] == '.') {
            if (nseg)
                nseg--;
        } else {
            seg[2 * nseg] = i;
            seg[2 * nseg + 1] = len;
            nseg++;
        }
        i = j + 1;
    }
    int rc = 0;
    if (path[0] == '/')
        rc |= eb_buf_putc(b, '/');
    for (size_t k = 0; k < nseg && rc == 0; k++) {
        if (k)
            rc |= eb_buf_putc(b, '/');
        rc |= uri_encode(b, path + seg[2 * k], seg[2 * k + 1], 0);
    }
    if (rc == 0 && path[n - 1] == '/' && nseg)
        rc |= eb_buf_putc(b, '/');
    free(seg);
    return rc ? -1 : 0;
}

typedef struct {
    char *k, *v;
} qpair;

static int qpair_cmp(const void *a, const void *b)
{
    const qpair *x = a, *y = b;
    int c = strcmp(x->k, y->k);
    return c ? c : strcmp(x->v, y->v);
}

static int canonical_query(eb_buf *b, const char *query)
{
    if (!query || !*query)
        return 0;
    size_t n = strlen(query), cap = 1;
    for (size_t i = 0; i < n; i++)
        cap += query[i] == '&';
    qpair *pairs = calloc(cap, sizeof *pairs);
    if (!pairs)
        return -1;
    size_t np = 0;
    int rc = 0;
    for (size_t i = 0; i <= n && rc == 0;) {
        size_t j = i;
        while (j < n && query[j] != '&')
            j++;
        if (j > i) {
            const char *eq = memchr(query + i, '=', j - i);
            size_t klen = eq ? (size_t)(eq - (query + i)) : j - i;
            eb_buf k = {0}, v = {0};
            if (query_component(&k, query + i, klen) != 0 || eb_buf_reserve(&k, 1) != 0 ||
                query_component(&v, eq ? eq + 1 : "", eq ? (size_t)(query + j - eq - 1) : 0) != 0 ||
                eb_buf_reserve(&v, 1) != 0) {
                eb_buf_free(&k);
                eb_buf_free(&v);
                rc = -1;
                break;
            }
            pairs[np].k = k.p;
            pairs[np].v = v.p;
            np++;
        }
        i = j + 1;
    }
    if (rc == 0) {
        qsort(pairs, np, sizeof *pairs, qpair_cmp);
        for (size_t i = 0; i < np && rc == 0; i++) {
            if (i)
                rc |= eb_buf_putc(b, '&');
            rc |= eb_buf_puts(b, pairs[i].k);
            rc |= eb_buf_putc(b, '=');
            rc |= eb_buf_puts(b, pairs[i].v);
        }
    }
    for (size_t i = 0; i < np; i++) {
        free(pairs[i].k);
        free(pairs[i].v);
    }
    free(pairs);
    return rc ? -1 : 0;
}

/* Outcome of computing a signature. */
enum { SIG_OK = 0, SIG_NOMEM = -1, SIG_MISSING_HEADER = -2 };

/* Signature (64 hex + NUL) of a request. amz_date is the ISO-8601 basic
 * timestamp of the string to sign; its first 8 chars are the scope date. */
static int compute_signature(const char *secret, const char *amz_date, const char *region, const char *service,
                             const char *method, const char *path, const char *query, const eb_http_header *hdrs,
                             size_t nh, const char *signed_headers, const void *body, size_t blen, char out[65])
{
    eb_buf cr = {0};
    int rc = SIG_NOMEM;
    if (eb_buf_puts(&cr, method ? method : "") || eb_buf_putc(&cr, '\n') || canonical_uri(&cr, path) ||
        eb_buf_putc(&cr, '\n') || canonical_query(&cr, query) || eb_buf_putc(&cr, '\n'))
        goto out;
    for (const char *p = signed_headers;;) {
        const char *e = strchr(p, ';');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0) {
            rc = SIG_MISSING_HEADER;
            goto out;
        }
        if (eb_buf_reserve(&cr, len + 1) != 0)
            goto out;
        for (size_t i = 0; i < len; i++)
            cr.p[cr.n++] = (char)lower((unsigned char)p[i]);
        cr.p[cr.n++] = ':';
        cr.p[cr.n] = '\0';
        int found = header_values(&cr, hdrs, nh, p, len);
        if (found < 0)
            goto out;
        if (found == 0) {
            rc = SIG_MISSING_HEADER;
            goto out;
        }
        if (eb_buf_putc(&cr, '\n') != 0)
            goto out;
        if (!e)
            break;
        p = e + 1;
    }
    char body_hash[65];
    if (sha256_hex(body, blen, body_hash) != 0)
        goto out;
    if (eb_buf_putc(&cr, '\n') || eb_buf_puts(&cr, signed_headers) || eb_buf_putc(&cr, '\n') ||
        eb_buf_puts(&cr, body_hash))
        goto out;

    char cr_hash[65];
    if (sha256_hex(cr.p, cr.n, cr_hash) != 0)
        goto out;
    eb_buf sts = {0};
    if (eb_buf_printf(&sts, "%s\n%s\n%.8s/%s/%s/%s\n%s", ALGORITHM, amz_date, amz_date, region, service,
                      TERMINATOR, cr_hash) != 0)
        goto out;

    size_t slen = strlen(secret);
    unsigned char *key = malloc(slen + 4);
    if (!key) {
        eb_buf_free(&sts);
        goto out;
    }
    memcpy(key, "AWS4", 4);
    memcpy(key + 4, secret, slen);
    unsigned char k1[32], k2[32], sig[32];
    int bad = hmac(key, slen + 4, amz_date, 8, k1) || hmac(k1, 32, region, strlen(region), k2) ||
              hmac(k2, 32, service, strlen(service), k1) || hmac(k1, 32, TERMINATOR, strlen(TERMINATOR), k2) ||
              hmac(k2, 32, sts.p, sts.n, sig);
    OPENSSL_cleanse(key, slen + 4);
    OPENSSL_cleanse(k1, sizeof k1);
    OPENSSL_cleanse(k2, sizeof k2);
    free(key);
    eb_buf_free(&sts);
    if (bad)
        goto out;
    to_hex(sig, 32, out);
    rc = SIG_OK;
out:
    eb_buf_free(&cr);
    return rc;
}

/* ---- verification ------------------------------------------------------------ */

/* Is `name` (lower-case) one of the ';'-separated names (any case)? */
static int signed_has(const char *list, const char *name)
{
    for (const char *p = list;;) {
        const char *e = strchr(p, ';');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (ieq(p, len, name))
            return 1;
        if (!e)
            return 0;
        p = e + 1;
    }
}

static void echo_auth(eb_sigv4_error *err, const eb_sigv4_auth *a)
{
    err_add(err, "Authorization=" ALGORITHM " Credential=");
    err_text(err, a->access_key, strlen(a->access_key), 40);
    err_add(err, "/");
    err_text(err, a->date, strlen(a->date), 8);
    err_add(err, "/");
    err_text(err, a->region, strlen(a->region), 64);
    err_add(err, "/");
    err_text(err, a->service, strlen(a->service), 32);
    err_add(err, "/" TERMINATOR ", SignedHeaders=");
    err_text(err, a->signed_headers, strlen(a->signed_headers), 120);
    err_add(err, ", Signature=%s", a->signature);
}

int eb_sigv4_verify(const eb_sigv4_auth *a, const char *service, const char *method, const char *path,
                    const char *query, const eb_http_header *hdrs, size_t nh, const void *body, size_t blen,
                    const char *secret, int64_t now_s, eb_sigv4_error *err)
{
    err_set(err, EB_SIGV4_OK);
    if (!a || !secret || !service) {
        fail(err, EB_SIGV4_INTERNAL, "Internal error while verifying the request signature.");
        return -1;
    }

    /* The request time: X-Amz-Date, else Date. */
    eb_buf dv = {0};
    const char *date_name = "x-amz-date";
    int found = header_values(&dv, hdrs, nh, "x-amz-date", 10);
    if (found == 0) {
        date_name = "date";
        found = header_values(&dv, hdrs, nh, "date", 4);
    }
    if (found < 0) {
        eb_buf_free(&dv);
        fail(err, EB_SIGV4_INTERNAL, "Internal error while verifying the request signature.");
        return -1;
    }
    if (found == 0) {
        eb_buf_free(&dv);
        err_set(err, EB_SIGV4_INCOMPLETE);
        err_add(err, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ");
        echo_auth(err, a);
        return -1;
    }
    int64_t t = 0;
    if (parse_http_date(dv.p, dv.n, &t) != 0) {
        err_set(err, EB_SIGV4_INCOMPLETE);
        err_add(err, "Date must be in ISO-8601 'basic format'. Got '");
        err_text(err, dv.p, dv.n, 64);
        err_add(err, "'. See http://en.wikipedia.org/wiki/ISO_8601");
        eb_buf_free(&dv);
        return -1;
    }
    eb_buf_free(&dv);
    char req_iso[17], now_iso[17], lim_iso[17];
    iso_basic(t, req_iso);
    iso_basic(now_s, now_iso);
    if (t < now_s - SKEW_S) {
        iso_basic(now_s - SKEW_S, lim_iso);
        err_set(err, EB_SIGV4_EXPIRED);
        err_add(err, "Signature expired: %s is now earlier than %s (%s - 15 min.)", req_iso, lim_iso, now_iso);
        return -1;
    }
    if (t > now_s + SKEW_S) {
        iso_basic(now_s + SKEW_S, lim_iso);
        err_set(err, EB_SIGV4_EXPIRED);
        err_add(err, "Signature not yet current: %s is still later than %s (%s + 15 min.)", req_iso, lim_iso,
                now_iso);
        return -1;
    }
    if (!signed_has(a->signed_headers, "host")) {
        fail(err, EB_SIGV4_MISMATCH, "'Host' must be a 'SignedHeader' in the AWS Authorization.");
        return -1;
    }
    if (!signed_has(a->signed_headers, date_name)) {
        fail(err, EB_SIGV4_MISMATCH,
             date_name[0] == 'x' ? "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization."
                                 : "'Date' must be a 'SignedHeader' in the AWS Authorization.");
        return -1;
    }
    int bad_service = strcmp(a->service, service) != 0;
    int bad_date = strlen(a->date) != 8 || memcmp(a->date, req_iso, 8) != 0;
    if (bad_service || bad_date) {
        err_set(err, EB_SIGV4_MISMATCH);
        if (bad_service) {
            err_add(err, "Credential should be scoped to correct service: '");
            err_text(err, service, strlen(service), 32);
            err_add(err, "'.%s", bad_date ? " " : "");
        }
        if (bad_date) {
            err_add(err, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
                         "HTTP: '");
            err_text(err, a->date, strlen(a->date), 8);
            err_add(err, "' != '%.8s', from '%s'.", req_iso, req_iso);
        }
        return -1;
    }

    char expect[65];
    int rc = compute_signature(secret, req_iso, a->region, a->service, method, path, query, hdrs, nh,
                               a->signed_headers, body, blen, expect);
    if (rc == SIG_NOMEM) {
        fail(err, EB_SIGV4_INTERNAL, "Internal error while verifying the request signature.");
        return -1;
    }
    int ok = rc == SIG_OK && strlen(a->signature) == 64 && eb_ct_equal(expect, a->signature, 64);
    OPENSSL_cleanse(expect, sizeof expect);
    if (!ok) {
        fail(err, EB_SIGV4_MISMATCH, MSG_MISMATCH);
        return -1;
    }
    return 0;
}

/* ---- signing ------------------------------------------------------------------ */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* botocore's list: every header but a few hop-by-hop ones, lower-case, sorted, unique. */
static int derive_signed_headers(const eb_http_header *hdrs, size_t nh, eb_buf *out)
{
    static const char *const skip[] = {"connection", "expect", "keep-alive", "proxy-authenticate",
                                       "proxy-authorization", "te", "trailer", "transfer-encoding",
                                       "upgrade", "user-agent", "x-amzn-trace-id", "authorization"};
    char **names = calloc(nh ? nh : 1, sizeof *names);
    if (!names)
        return -1;
    size_t k = 0;
    int rc = 0;
    for (size_t i = 0; i < nh && rc == 0; i++) {
        if (!hdrs[i].name)
            continue;
        size_t len = strlen(hdrs[i].name);
        char *low = malloc(len + 1);
        if (!low) {
            rc = -1;
            break;
        }
        for (size_t j = 0; j < len; j++)
            low[j] = (char)lower((unsigned char)hdrs[i].name[j]);
        low[len] = '\0';
        int drop = 0;
        for (size_t j = 0; j < sizeof skip / sizeof skip[0]; j++)
            drop |= strcmp(low, skip[j]) == 0;
        if (drop)
            free(low);
        else
            names[k++] = low;
    }
    if (rc == 0) {
        qsort(names, k, sizeof *names, name_cmp);
        for (size_t i = 0; i < k && rc == 0; i++) {
            if (i && strcmp(names[i], names[i - 1]) == 0)
                continue;
            if (out->n)
                rc |= eb_buf_putc(out, ';');
            rc |= eb_buf_puts(out, names[i]);
        }
    }
    for (size_t i = 0; i < k; i++)
        free(names[i]);
    free(names);
    return rc ? -1 : 0;
}

int eb_sigv4_sign(const char *access_key, const char *secret, const char *region, const char *service,
                  const char *amz_date, const char *method, const char *path, const char *query,
                  const eb_http_header *hdrs, size_t nh, const char *signed_headers, const void *body, size_t blen,
                  char *authorization, size_t authlen)
{
    if (!access_key || !secret || !region || !service || !amz_date || strlen(amz_date) < 8 || !authorization ||
        authlen == 0)
        return -1;
    authorization[0] = '\0';
    eb_buf derived = {0};
    if (!signed_headers) {
        if (derive_signed_headers(hdrs, nh, &derived) != 0 || !derived.p) {
            eb_buf_free(&derived);
            return -1;
        }
        signed_headers = derived.p;
    }
    char sig[65];
    int rc = compute_signature(secret, amz_date, region, service, method, path, query, hdrs, nh, signed_headers,
                               body, blen, sig);
    if (rc == SIG_OK) {
        int w = snprintf(authorization, authlen, ALGORITHM " Credential=%s/%.8s/%s/%s/" TERMINATOR
                                                           ", SignedHeaders=%s, Signature=%s",
                         access_key, amz_date, region, service, signed_headers, sig);
        if (w < 0 || (size_t)w >= authlen) {
            authorization[0] = '\0';
            rc = -1;
        }
    }
    eb_buf_free(&derived);
    return rc == SIG_OK ? 0 : -1;
}
