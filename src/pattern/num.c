#define _GNU_SOURCE /* strtod_l, newlocale */
#include "num.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

size_t ebp_num_scan(const char *p, const char *end)
{
    const char *s = p;
    if (s < end && *s == '-')
        s++;
    if (s >= end)
        return 0;
    if (*s == '0') {
        s++;
    } else if (*s >= '1' && *s <= '9') {
        while (s < end && *s >= '0' && *s <= '9')
            s++;
    } else {
        return 0;
    }
    if (s < end && *s == '.') {
        s++;
        if (s >= end || *s < '0' || *s > '9')
            return 0;
        while (s < end && *s >= '0' && *s <= '9')
            s++;
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < end && (*s == '+' || *s == '-'))
            s++;
        if (s >= end || *s < '0' || *s > '9')
            return 0;
        while (s < end && *s >= '0' && *s <= '9')
            s++;
    }
    return (size_t)(s - p);
}

static const double pow10_exact[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static void make_c_locale(void) { c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

static int slow_path(const char *p, size_t n, double *out)
{
    char small[128];
    char *buf = small;
    if (n >= sizeof small) {
        buf = malloc(n + 1);
        if (!buf) { /* cannot happen in practice; degrade to a safe answer */
            *out = 0;
            return 0;
        }
    }
    memcpy(buf, p, n);
    buf[n] = 0;
    pthread_once(&c_locale_once, make_c_locale);
    double d = c_locale ? strtod_l(buf, NULL, c_locale) : strtod(buf, NULL);
    if (buf != small)
        free(buf);
    if (d == 0)
        d = 0; /* fold -0 */
    *out = d;
    return isfinite(d) ? 1 : 0;
}

int ebp_num_to_double(const char *p, size_t n, double *out)
{
    /* Clinger's fast path: up to 19 significant digits gathered into an
     * integer; exact when mantissa <= 2^53 and |exponent| <= 22. */
    const char *s = p, *end = p + n;
    int neg = 0;
    if (s < end && *s == '-') {
        neg = 1;
        s++;
    }
    uint64_t m = 0;
    int digits = 0, exp10 = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        if (m || *s != '0') {
            if (digits >= 19)
                return slow_path(p, n, out);
            m = m * 10 + (uint64_t)(*s - '0');
            digits++;
        }
        s++;
    }
    if (s < end && *s == '.') {
        s++;
        while (s < end && *s >= '0' && *s <= '9') {
            if (m || *s != '0') {
                if (digits >= 19)
                    return slow_path(p, n, out);
                m = m * 10 + (uint64_t)(*s - '0');
                digits++;
            }
            exp10--;
            s++;
        }
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        s++;
        int eneg = 0;
        if (s < end && (*s == '+' || *s == '-'))
            eneg = *s++ == '-';
        int e = 0;
        while (s < end && *s >= '0' && *s <= '9') {
            if (e < 100000)
                e = e * 10 + (*s - '0');
            s++;
        }
        exp10 += eneg ? -e : e;
    }
    if (s != end)
        return slow_path(p, n, out);
    if (m == 0) {
        *out = 0;
        return 1;
    }
    if (m <= ((uint64_t)1 << 53) && exp10 >= -22 && exp10 <= 22) {
        double d = (double)m;
        if (exp10 < 0)
            d /= pow10_exact[-exp10];
        else
            d *= pow10_exact[exp10];
        *out = neg ? -d : d;
        return 1;
    }
    return slow_path(p, n, out);
}
