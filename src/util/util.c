#define _GNU_SOURCE
#include "util.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- byte buffer ---------------------------------------------------------------- */
int eb_buf_reserve(eb_buf *b, size_t extra)
{
    size_t need = b->n + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < need) {
        if (nc > SIZE_MAX / 2)
            return -1;
        nc *= 2;
    }
    char *np = realloc(b->p, nc);
    if (!np)
        return -1;
    b->p = np;
    b->cap = nc;
    return 0;
}

int eb_buf_append(eb_buf *b, const void *data, size_t len)
{
    if (eb_buf_reserve(b, len))
        return -1;
    if (len)
        memcpy(b->p + b->n, data, len);
    b->n += len;
    b->p[b->n] = 0;
    return 0;
}

int eb_buf_puts(eb_buf *b, const char *s)
{
    return eb_buf_append(b, s, strlen(s));
}

int eb_buf_putc(eb_buf *b, char c)
{
    return eb_buf_append(b, &c, 1);
}

int eb_buf_printf(eb_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    va_list ap2;
    va_copy(ap2, ap);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    int rc = 0;
    if (k < 0) {
        rc = -1;
    } else if ((size_t)k < sizeof tmp) {
        rc = eb_buf_append(b, tmp, (size_t)k);
    } else if (eb_buf_reserve(b, (size_t)k)) {
        rc = -1;
    } else {
        vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap2);
        b->n += (size_t)k;
    }
    va_end(ap2);
    return rc;
}

/* Length of the valid UTF-8 sequence at s[0..n) (shortest form, no
 * surrogates, at most U+10FFFF), or 0 when it is not valid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    unsigned cp = c & (0x7Fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

int eb_buf_json_str(eb_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (eb_buf_reserve(b, len + 2))
        return -1;
    b->p[b->n++] = '"';
    size_t run = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t k = utf8_seq((const unsigned char *)s + i, len - i);
            if (k) {
                i += k;
                continue;
            }
            /* not UTF-8: the output must stay valid JSON text */
            if (eb_buf_append(b, s + run, i - run) || eb_buf_append(b, "\\ufffd", 6))
                return -1;
            run = ++i;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (eb_buf_append(b, s + run, i - run))
            return -1;
        run = ++i;
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t el = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
        }
        if (eb_buf_append(b, esc, el))
            return -1;
    }
    if (eb_buf_append(b, s + run, len - run))
        return -1;
    return eb_buf_putc(b, '"');
}

void eb_buf_free(eb_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ---- logging ---------------------------------------------------------------------- */
static _Atomic int log_level = EB_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void eb_log_set_level(eb_log_level lvl)
{
    atomic_store(&log_level, (int)lvl);
}

eb_log_level eb_log_get_level(void)
{
    return (eb_log_level)atomic_load(&log_level);
}

int eb_log_parse_level(const char *s, eb_log_level *out)
{
    for (int i = 0; i <= EB_LOG_OFF; i++)
        if (!strcmp(s, level_names[i])) {
            *out = (eb_log_level)i;
            return 0;
        }
    return -1;
}

int eb_log_enabled(eb_log_level lvl)
{
    return lvl != EB_LOG_OFF && (int)lvl >= atomic_load(&log_level);
}

void eb_log(eb_log_level lvl, const char *msg, const char *fmt, ...)
{
    if (!eb_log_enabled(lvl))
        return;
    int saved = errno;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=\"%s\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[lvl], msg);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof line - 2)
        n = (int)sizeof line - 2;
    if (fmt && *fmt) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
        va_end(ap);
        if (k > 0)
            n += k;
        if ((size_t)n >= sizeof line - 1)
            n = (int)sizeof line - 2;
    }
    /* one line, no embedded newlines */
    for (int i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
    errno = saved;
}

/* ---- ids and time ---------------------------------------------------------------- */
/* Random bytes from the kernel, fetched 512 at a time per thread (one
 * getrandom(2) per 32 UUIDs instead of one each). */
static _Thread_local unsigned char rnd_pool[512];
static _Thread_local size_t rnd_left;

static size_t random_bytes(unsigned char *out, size_t n)
{
    size_t got = 0;
    while (got < n) {
        if (!rnd_left) {
            size_t filled = 0;
            while (filled < sizeof rnd_pool) {
                ssize_t k = getrandom(rnd_pool + filled, sizeof rnd_pool - filled, 0);
                if (k > 0)
                    filled += (size_t)k;
                else if (k < 0 && errno != EINTR)
                    return got;
            }
            rnd_left = sizeof rnd_pool;
        }
        size_t take = n - got < rnd_left ? n - got : rnd_left;
        memcpy(out + got, rnd_pool + sizeof rnd_pool - rnd_left, take);
        memset(rnd_pool + sizeof rnd_pool - rnd_left, 0, take); /* used bytes are not kept */
        rnd_left -= take;
        got += take;
    }
    return got;
}

void eb_uuid4(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[16];
    size_t got = random_bytes(r, sizeof r);
    if (got < sizeof r) { /* no entropy source: fall back to time-seeded bytes */
        uint64_t x = (uint64_t)eb_mono_ns() ^ ((uint64_t)getpid() << 32);
        for (size_t i = got; i < sizeof r; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            r[i] = (unsigned char)x;
        }
    }
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[r[i] >> 4];
        out[o++] = hex[r[i] & 15];
    }
    out[o] = 0;
}

int64_t eb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t eb_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void eb_civil_from_epoch(int64_t epoch_s, eb_civil *out)
{
    int64_t z = epoch_s / 86400, secs = epoch_s % 86400;
    if (secs < 0) {
        secs += 86400;
        z--;
    }
    out->hour = (unsigned)(secs / 3600);
    out->min = (unsigned)(secs / 60 % 60);
    out->sec = (unsigned)(secs % 60);
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    out->day = doy - (153 * mp + 2) / 5 + 1;
    out->month = mp < 10 ? mp + 3 : mp - 9;
    out->year = (int64_t)yoe + era * 400 + (out->month <= 2);
}

static void two_digits(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
}

/* Without gmtime_r, whose glibc version takes the time-zone lock (PutEvents
 * formats a time for every event, on every request thread). */
void eb_time_rfc3339(int64_t epoch_s, char out[21])
{
    /* what gmtime_r can represent (a year in an int), as before */
    if (epoch_s < -67768040609740800LL || epoch_s > 67768036191676799LL) {
        memcpy(out, "1970-01-01T00:00:00Z", 21);
        return;
    }
    eb_civil c;
    eb_civil_from_epoch(epoch_s, &c);
    unsigned yy = (uint32_t)c.year % 10000u; /* four digits, as the format always had */
    two_digits(out, yy / 100);
    two_digits(out + 2, yy % 100);
    out[4] = '-';
    two_digits(out + 5, c.month);
    out[7] = '-';
    two_digits(out + 8, c.day);
    out[10] = 'T';
    two_digits(out + 11, c.hour);
    out[13] = ':';
    two_digits(out + 14, c.min);
    out[16] = ':';
    two_digits(out + 17, c.sec);
    out[19] = 'Z';
    out[20] = 0;
}

int eb_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int eb_ct_equal(const void *a, const void *b, size_t n)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(x[i] ^ y[i]);
    return d == 0;
}

void eb_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
