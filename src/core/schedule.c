/* Schedule expressions (reference §8): rate(...) and cron(...).
 *
 * rate(<n> <unit>): exact form only — no spaces other than the single one
 * between value and unit, lowercase unit, n a positive decimal integer that
 * fits a Java int (leading zeros allowed, so "01" is 1), singular unit for
 * n == 1 and plural otherwise (reference §8.2 and the recorded AWS answers).
 *
 * cron(<min> <hour> <day-of-month> <month> <day-of-week> <year>): six fields
 * separated by single spaces, nothing before/after them inside the
 * parentheses (strict, like rate(); AWS's handling of extra blanks is
 * unrecorded).  Per field, a comma-separated list of items, each `*`, a value
 * or a range `a-b` (a > b wraps around: hours 20-2 = 20..23,0..2), optionally
 * followed by `/step` (`a/step` runs from a to the field's maximum).  Month
 * and day-of-week accept three-letter names in any case.  `/` is allowed in
 * every field but day-of-week (§8.3 table).  Steps are 1.. the field's
 * maximum (59/23/31/12; year 1..229), as in Quartz.
 * Day-of-month extras: `?`, `L` (last day), `<n>W` (weekday nearest to n,
 * never leaving the month), `LW` (last weekday of the month) — each the whole
 * field.  Day-of-week extras: `?`, `L` (= 7, Saturday, as in Quartz), `<d>L`
 * (last weekday d of the month), `<d>#<n>` (n-th weekday d, n 1..5) — each the
 * whole field.  Exactly one of the two day fields is `?`.
 * Not accepted (undocumented by AWS): `L-<n>` offsets, `W`/`L` inside lists
 * or ranges, `/` in day-of-week.
 *
 * Next firing time: UTC, minute granularity; cron firings are at second 0 of
 * the minute; rate firings are created + k*period for k >= 1 (the first one
 * one period after creation).  Pure libc, no time-zone functions. */
#include "schedule.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { SCH_RATE = 1, SCH_CRON = 2 };
enum { DOM_ANY = 0, DOM_SET, DOM_LAST, DOM_NEAREST_W, DOM_LAST_W };
enum { DOW_ANY = 0, DOW_SET, DOW_LAST_OF, DOW_NTH };

#define YEAR_MIN 1970
#define YEAR_MAX 2199
#define NYEARS (YEAR_MAX - YEAR_MIN + 1)

struct eb_schedule {
    int kind;
    int64_t period; /* rate: seconds */
    /* cron */
    uint64_t min, hour, dom, mon, dow; /* bit v set = value v allowed */
    uint64_t year[(NYEARS + 63) / 64];  /* bit y-1970 */
    int dom_mode, dom_n;                /* DOM_NEAREST_W: n */
    int dow_mode, dow_d, dow_n;         /* DOW_LAST_OF: d; DOW_NTH: d, n */
};

/* ---- rate ------------------------------------------------------------------ */

static eb_schedule *parse_rate(const char *p)
{
    /* p points after "rate(" */
    const char *q = p;
    int64_t v = 0;
    while (*q >= '0' && *q <= '9') {
        v = v * 10 + (*q - '0');
        if (v > INT_MAX)
            return NULL;
        q++;
    }
    if (q == p || v < 1 || *q != ' ')
        return NULL;
    q++;
    static const struct {
        const char *one, *many;
        int64_t secs;
    } units[] = {{"minute", "minutes", 60}, {"hour", "hours", 3600}, {"day", "days", 86400}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        const char *u = v == 1 ? units[i].one : units[i].many;
        size_t ul = strlen(u);
        if (strncmp(q, u, ul) == 0 && q[ul] == ')' && q[ul + 1] == '\0') {
            eb_schedule *s = calloc(1, sizeof *s);
            if (!s)
                return NULL;
            s->kind = SCH_RATE;
            s->period = v * units[i].secs;
            return s;
        }
    }
    return NULL;
}

/* ---- cron ------------------------------------------------------------------ */

enum { F_MIN = 0, F_HOUR, F_DOM, F_MON, F_DOW, F_YEAR };

static const int fmin_[6] = {0, 0, 1, 1, 1, YEAR_MIN};
static const int fmax_[6] = {59, 23, 31, 12, 7, YEAR_MAX};
static const int fstep_[6] = {59, 23, 31, 12, 7, NYEARS - 1};

static const char *const month_names[12] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                            "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const day_names[7] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

static int up(char c)
{
    return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c;
}

/* A number (at most 4 digits) or, for month/day-of-week, a 3-letter name.
 * Advances *pp; -1 when there is none or it is out of the field's range. */
static int parse_value(const char **pp, const char *end, int f)
{
    const char *p = *pp;
    if (p < end && *p >= '0' && *p <= '9') {
        int v = 0, nd = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (++nd > 4)
                return -1;
            v = v * 10 + (*p - '0');
            p++;
        }
        if (v < fmin_[f] || v > fmax_[f])
            return -1;
        *pp = p;
        return v;
    }
    if ((f == F_MON || f == F_DOW) && end - p >= 3) {
        const char *const *names = f == F_MON ? month_names : day_names;
        int n = f == F_MON ? 12 : 7;
        for (int i = 0; i < n; i++) {
            if (up(p[0]) == names[i][0] && up(p[1]) == names[i][1] && up(p[2]) == names[i][2]) {
                *pp = p + 3;
                return i + 1;
            }
        }
    }
    return -1;
}

/* A small decimal number (step, #n, W day): 1..max; -1 otherwise. */
static int parse_small(const char **pp, const char *end, int max)
{
    const char *p = *pp;
    int v = 0, nd = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (++nd > 4)
            return -1;
        v = v * 10 + (*p - '0');
        p++;
    }
    if (nd == 0 || v < 1 || v > max)
        return -1;
    *pp = p;
    return v;
}

static void set_bit(eb_schedule *s, int f, uint64_t *bits, int v)
{
    if (f == F_YEAR)
        s->year[(v - YEAR_MIN) / 64] |= (uint64_t)1 << ((v - YEAR_MIN) % 64);
    else
        *bits |= (uint64_t)1 << v;
}

/* One list item: `*`, `v`, `a-b`, each optionally `/step`. */
static int parse_item(eb_schedule *s, int f, uint64_t *bits, const char *p, const char *end)
{
    int lo = fmin_[f], hi = fmax_[f];
    int a, b, step = 1, ranged = 0;
    if (p < end && *p == '*') {
        a = lo;
        b = hi;
        ranged = 1;
        p++;
    } else {
        a = parse_value(&p, end, f);
        if (a < 0)
            return -1;
        b = a;
        if (p < end && *p == '-') {
            p++;
            b = parse_value(&p, end, f);
            if (b < 0)
                return -1;
            ranged = 1;
        }
    }
    if (p < end && *p == '/') {
        if (f == F_DOW)
            return -1;
        p++;
        step = parse_small(&p, end, fstep_[f]);
        if (step < 0)
            return -1;
        if (!ranged)
            b = hi; /* a/step: from a to the end of the field */
        ranged = 1;
    }
    if (p != end)
        return -1;
    if (!ranged) {
        set_bit(s, f, bits, a);
        return 0;
    }
    /* Walk from a to b (wrapping past hi to lo when a > b). */
    int span = hi - lo + 1;
    int count = (b - a + span) % span; /* steps from a to b */
    for (int k = 0; k <= count; k += step) {
        int v = a + k;
        if (v > hi)
            v -= span;
        set_bit(s, f, bits, v);
    }
    return 0;
}

static int parse_list(eb_schedule *s, int f, uint64_t *bits, const char *p, const char *end)
{
    if (p == end)
        return -1;
    while (1) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *e = c ? c : end;
        if (parse_item(s, f, bits, p, e))
            return -1;
        if (!c)
            return 0;
        p = c + 1;
    }
}

static int parse_dom(eb_schedule *s, const char *p, const char *end)
{
    size_t n = (size_t)(end - p);
    if (n == 1 && *p == '?') {
        s->dom_mode = DOM_ANY;
        return 0;
    }
    if (n == 1 && up(*p) == 'L') {
        s->dom_mode = DOM_LAST;
        return 0;
    }
    if (n == 2 && up(p[0]) == 'L' && up(p[1]) == 'W') {
        s->dom_mode = DOM_LAST_W;
        return 0;
    }
    if (n >= 2 && up(end[-1]) == 'W') {
        const char *q = p;
        int d = parse_small(&q, end - 1, 31);
        if (d < 0 || q != end - 1)
            return -1;
        s->dom_mode = DOM_NEAREST_W;
        s->dom_n = d;
        return 0;
    }
    s->dom_mode = DOM_SET;
    return parse_list(s, F_DOM, &s->dom, p, end);
}

static int parse_dow(eb_schedule *s, const char *p, const char *end)
{
    size_t n = (size_t)(end - p);
    if (n == 1 && *p == '?') {
        s->dow_mode = DOW_ANY;
        return 0;
    }
    if (n == 1 && up(*p) == 'L') {
        s->dow_mode = DOW_SET;
        s->dow = (uint64_t)1 << 7;
        return 0;
    }
    const char *hash = memchr(p, '#', n);
    if (hash) {
        const char *q = p;
        int d = parse_value(&q, hash, F_DOW);
        if (d < 0 || q != hash)
            return -1;
        q = hash + 1;
        int k = parse_small(&q, end, 5);
        if (k < 0 || q != end)
            return -1;
        s->dow_mode = DOW_NTH;
        s->dow_d = d;
        s->dow_n = k;
        return 0;
    }
    if (n >= 2 && up(end[-1]) == 'L') {
        const char *q = p;
        int d = parse_value(&q, end - 1, F_DOW);
        if (d < 0 || q != end - 1)
            return -1;
        s->dow_mode = DOW_LAST_OF;
        s->dow_d = d;
        return 0;
    }
    s->dow_mode = DOW_SET;
    return parse_list(s, F_DOW, &s->dow, p, end);
}

static eb_schedule *parse_cron(const char *p)
{
    /* p points after "cron(" */
    size_t len = strlen(p);
    if (len < 1 || p[len - 1] != ')')
        return NULL;
    const char *end = p + len - 1;
    const char *fs[6], *fe[6];
    int nf = 0;
    const char *q = p;
    while (1) {
        const char *sp = memchr(q, ' ', (size_t)(end - q));
        const char *e = sp ? sp : end;
        if (e == q || nf == 6)
            return NULL; /* empty field (double/leading/trailing space) or too many */
        fs[nf] = q;
        fe[nf] = e;
        nf++;
        if (!sp)
            break;
        q = sp + 1;
    }
    if (nf != 6)
        return NULL;
    eb_schedule *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->kind = SCH_CRON;
    if (parse_list(s, F_MIN, &s->min, fs[0], fe[0]) || parse_list(s, F_HOUR, &s->hour, fs[1], fe[1]) ||
        parse_dom(s, fs[2], fe[2]) || parse_list(s, F_MON, &s->mon, fs[3], fe[3]) ||
        parse_dow(s, fs[4], fe[4]) || parse_list(s, F_YEAR, NULL, fs[5], fe[5]) ||
        (s->dom_mode == DOM_ANY) == (s->dow_mode == DOW_ANY)) {
        free(s);
        return NULL;
    }
    return s;
}

eb_schedule *eb_schedule_parse(const char *expr)
{
    if (!expr)
        return NULL;
    if (strncmp(expr, "rate(", 5) == 0)
        return parse_rate(expr + 5);
    if (strncmp(expr, "cron(", 5) == 0)
        return parse_cron(expr + 5);
    return NULL;
}

void eb_schedule_free(eb_schedule *s)
{
    free(s);
}

/* ---- next firing time ---------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* Days since 1970-01-01 <-> civil date (proleptic Gregorian; H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

/* 1 = Sunday .. 7 = Saturday */
static int weekday(int64_t y, int m, int d)
{
    int64_t z = days_from_civil(y, m, d);
    return (int)(((z + 4) % 7 + 7) % 7) + 1; /* 1970-01-01 was a Thursday */
}

static int day_matches(const eb_schedule *s, int64_t y, int m, int d, int dim)
{
    switch (s->dom_mode) {
    case DOM_SET:
        return (s->dom >> d) & 1;
    case DOM_LAST:
        return d == dim;
    case DOM_NEAREST_W: {
        int n = s->dom_n;
        if (n > dim)
            return 0;
        int wd = weekday(y, m, n), t = n;
        if (wd == 7) /* Saturday -> Friday, or Monday the 3rd if n is the 1st */
            t = n == 1 ? n + 2 : n - 1;
        else if (wd == 1) /* Sunday -> Monday, or Friday if n is the last day */
            t = n == dim ? n - 2 : n + 1;
        return d == t;
    }
    case DOM_LAST_W: {
        int wd = weekday(y, m, dim), t = dim;
        if (wd == 7)
            t = dim - 1;
        else if (wd == 1)
            t = dim - 2;
        return d == t;
    }
    default:
        break;
    }
    int wd = weekday(y, m, d);
    switch (s->dow_mode) {
    case DOW_SET:
        return (s->dow >> wd) & 1;
    case DOW_LAST_OF:
        return wd == s->dow_d && d + 7 > dim;
    case DOW_NTH:
        return wd == s->dow_d && (d - 1) / 7 + 1 == s->dow_n;
    default:
        return 0;
    }
}

static int year_set(const eb_schedule *s, int64_t y)
{
    int64_t i = y - YEAR_MIN;
    return (s->year[i / 64] >> (i % 64)) & 1;
}

static int64_t next_cron(const eb_schedule *s, int64_t after_s)
{
    /* First whole minute strictly after after_s (1970-01-01 00:00 when
     * after_s is before the epoch: no year before 1970 is allowed). */
    int64_t y = YEAR_MIN;
    int m = 1, d = 1, h = 0, mi = 0;
    if (after_s >= 0) {
        int64_t days = after_s / 86400;
        if (days > 1000000)
            return -1; /* far beyond 2199 */
        int64_t t = (after_s / 60 + 1) * 60;
        days = t / 86400;
        int64_t rem = t - days * 86400;
        h = (int)(rem / 3600);
        mi = (int)(rem % 3600 / 60);
        civil_from_days(days, &y, &m, &d);
    }
    for (; y <= YEAR_MAX; y++, m = 1, d = 1, h = 0, mi = 0) {
        if (!year_set(s, y))
            continue;
        for (; m <= 12; m++, d = 1, h = 0, mi = 0) {
            if (!((s->mon >> m) & 1))
                continue;
            int dim = days_in_month(y, m);
            for (; d <= dim; d++, h = 0, mi = 0) {
                if (!day_matches(s, y, m, d, dim))
                    continue;
                for (; h < 24; h++, mi = 0) {
                    if (!((s->hour >> h) & 1))
                        continue;
                    for (; mi < 60; mi++)
                        if ((s->min >> mi) & 1)
                            return days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60;
                }
            }
        }
    }
    return -1;
}

static int64_t next_rate(const eb_schedule *s, int64_t created_s, int64_t after_s)
{
    int64_t p = s->period;
    if (after_s < created_s)
        return created_s > INT64_MAX - p ? -1 : created_s + p;
    /* after - created without overflow: both fit, after >= created */
    uint64_t diff = (uint64_t)after_s - (uint64_t)created_s;
    uint64_t k = diff / (uint64_t)p + 1;
    if (k > (uint64_t)INT64_MAX / (uint64_t)p)
        return -1;
    uint64_t off = k * (uint64_t)p;
    if (created_s > 0 && off > (uint64_t)(INT64_MAX - created_s))
        return -1;
    return (int64_t)((uint64_t)created_s + off);
}

int64_t eb_schedule_next(const eb_schedule *s, int64_t created_s, int64_t after_s)
{
    if (!s)
        return -1;
    if (s->kind == SCH_RATE)
        return next_rate(s, created_s, after_s);
    return next_cron(s, after_s);
}
