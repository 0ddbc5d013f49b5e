/* Small shared helpers: growable byte buffers, logging, UUIDs, time.
 * Used by store/, core/, api/ and cli/; depends on libc (+ getrandom). */
#ifndef EB_UTIL_H
#define EB_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---- byte buffer ------------------------------------------------------------
 * Owns p (malloc'd, always NUL-terminated when non-NULL). Zero-initialise
 * (`eb_buf b = {0};`) before use; release with eb_buf_free. Appends return 0,
 * or -1 when out of memory (the buffer is left as it was). */
typedef struct {
    char *p;
    size_t n, cap;
} eb_buf;

int eb_buf_reserve(eb_buf *b, size_t extra);
int eb_buf_append(eb_buf *b, const void *data, size_t len);
int eb_buf_puts(eb_buf *b, const char *s);
int eb_buf_putc(eb_buf *b, char c);
int eb_buf_printf(eb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal (quotes and escapes added; bytes that are
 * not valid UTF-8 become U+FFFD, so the result is always valid JSON). */
int eb_buf_json_str(eb_buf *b, const char *s, size_t len);
void eb_buf_free(eb_buf *b);

/* ---- logging ------------------------------------------------------------------
 * One line per call on stderr: `ts=... level=... msg="..." key=value ...`.
 * The level is checked before formatting. Thread-safe (one write(2) per line). */
typedef enum { EB_LOG_DEBUG = 0, EB_LOG_INFO, EB_LOG_WARN, EB_LOG_ERROR, EB_LOG_OFF } eb_log_level;

void eb_log_set_level(eb_log_level lvl);
eb_log_level eb_log_get_level(void);
/* "debug", "info", "warn", "error", "off" -> 0 with *out set; else -1. */
int eb_log_parse_level(const char *s, eb_log_level *out);
int eb_log_enabled(eb_log_level lvl);
/* msg is a short fixed text; fmt (may be NULL) appends `key=value` pairs. */
void eb_log(eb_log_level lvl, const char *msg, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- ids and time ---------------------------------------------------------------- */
/* A random version-4 UUID, lower-case, 36 chars + NUL. */
void eb_uuid4(char out[37]);
/* Wall clock in milliseconds since the Unix epoch. */
int64_t eb_now_ms(void);
/* Monotonic clock in nanoseconds. */
uint64_t eb_mono_ns(void);
/* `YYYY-MM-DDThh:mm:ssZ` for epoch seconds (UTC); out needs 21 bytes. */
void eb_time_rfc3339(int64_t epoch_s, char out[21]);
/* Epoch seconds to the proleptic Gregorian calendar in UTC (Howard Hinnant's
 * civil_from_days; any epoch_s whose year fits in int64). */
typedef struct {
    int64_t year;
    unsigned month, day, hour, min, sec; /* 1-12, 1-31, 0-23, 0-59, 0-59 */
} eb_civil;
void eb_civil_from_epoch(int64_t epoch_s, eb_civil *out);

/* Format an error message into err[errlen] (nothing when err is NULL or
 * errlen 0): the "char *err, size_t errlen" out-parameter of constructors. */
void eb_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* 64-bit FNV-1a of n bytes, continuing from h (EB_FNV1A_INIT to start). */
#define EB_FNV1A_INIT 0xcbf29ce484222325ull
static inline uint64_t eb_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* The value of one hexadecimal digit (either case), or -1. */
int eb_hexval(int c);

/* Constant-time comparison of two equal-length byte strings: 1 when equal. */
int eb_ct_equal(const void *a, const void *b, size_t n);

#endif
