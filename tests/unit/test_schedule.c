/* Unit tests for src/core/schedule.c: which rate()/cron() expressions AWS
 * accepts (every PutRule schedule case recorded in
 * $EB_SHARED/conformance/api-errors.jsonl plus the reference §8 examples) and
 * the next firing time for cron (all special characters) and rate. */
#define _GNU_SOURCE
#include "core/schedule.h"
#include "corpus.h"
#include "test.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int valid(const char *e)
{
    eb_schedule *s = eb_schedule_parse(e);
    eb_schedule_free(s);
    return s != NULL;
}

/* "YYYY-MM-DD hh:mm[:ss]" (UTC) -> epoch seconds */
static int64_t at(const char *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int n = sscanf(t, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                   &tm.tm_sec);
    if (n < 5)
        abort();
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

static char fmtbuf[64];
static const char *fmt(int64_t t)
{
    if (t < 0)
        return "none";
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(fmtbuf, sizeof fmtbuf, "%Y-%m-%d %H:%M:%S", &tm);
    return fmtbuf;
}

/* Next firing of expr strictly after `after`, formatted; "none" for -1. */
static char nextbuf[64];
static const char *next_of(const char *expr, const char *after)
{
    eb_schedule *s = eb_schedule_parse(expr);
    if (!s) {
        fprintf(stderr, "not parsed: %s\n", expr);
        return "unparsed";
    }
    int64_t t = eb_schedule_next(s, 0, at(after));
    eb_schedule_free(s);
    snprintf(nextbuf, sizeof nextbuf, "%s", fmt(t));
    return nextbuf;
}

#define NEXT(expr, after, want) CHECK_STR(next_of(expr, after), want)

/* ---- the recorded AWS answers ---------------------------------------------- */

static void test_conformance(void)
{
    json_t *lines = load_shared_jsonl("conformance/api-errors.jsonl");
    CHECK(lines != NULL);
    int n_valid = 0, n_invalid = 0, n_skipped = 0;
    size_t i;
    json_t *j;
    json_array_foreach(lines, i, j) {
        const char *op = json_string_value(json_object_get(j, "operation"));
        const char *expr =
            json_string_value(json_object_get(json_object_get(j, "request"), "ScheduleExpression"));
        const char *expect = json_string_value(json_object_get(j, "expect"));
        const char *msg = json_string_value(json_object_get(j, "error_message"));
        if (op && strcmp(op, "PutRule") == 0 && expr && expect) {
            if (strcmp(expect, "success") == 0) {
                n_valid++;
                if (!valid(expr))
                    fprintf(stderr, "should be valid: \"%s\"\n", expr);
                CHECK(valid(expr));
            } else if (msg && strcmp(msg, "Parameter ScheduleExpression is not valid.") == 0) {
                n_invalid++;
                if (valid(expr))
                    fprintf(stderr, "should be invalid: \"%s\"\n", expr);
                CHECK(!valid(expr));
            } else {
                n_skipped++; /* about the bus, not the expression */
            }
        }
    }
    json_decref(lines);
    printf("schedule conformance: %d valid, %d invalid checked, %d skipped\n", n_valid, n_invalid,
           n_skipped);
    CHECK(n_valid == 17);
    CHECK(n_invalid == 22);
    CHECK(n_skipped == 1);
}

/* ---- rate() ---------------------------------------------------------------- */

static void test_rate_syntax(void)
{
    const char *ok[] = {"rate(1 minute)", "rate(2 minutes)", "rate(1 hour)", "rate(5 hours)", "rate(1 day)",
                        "rate(10 days)", "rate(2147483647 minutes)", "rate(01 minute)", "rate(15 minutes)"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (!valid(ok[i]))
            fprintf(stderr, "should be valid: %s\n", ok[i]);
        CHECK(valid(ok[i]));
    }
    /* §8.2's observed invalid list, and more */
    const char *bad[] = {" rate(10 minutes)", "rate( 10 minutes )", "rate(10 MINUTES)", "rate(10)", "rate()",
                         "rate(0 minutes)", "rate(-10 minutes)", "rate(foo minutes)", "rate(10 seconds)",
                         "rate(10 years)", "rate(10 minutess)", "rate(1 minutes)", "rate(10 minute)",
                         "rate(1 hours)", "rate(10 hour)", "rate(1 days)", "rate(10 day)",
                         "rate(5 minutes) ", "rate(5  minutes)", "rate(5 minutes", "rate(5 minutes))",
                         "RATE(5 minutes)", "rate(+5 minutes)", "rate(2147483648 minutes)", "rate(1.5 hours)",
                         "rate(1 week)", "rate(1 Minute)", "", "rate", "rate(", "rate(5 minutes)x",
                         "rate(0 minute)", "rate(00 minutes)", "rate(5 minutes )", "rate(5\tminutes)"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (valid(bad[i]))
            fprintf(stderr, "should be invalid: \"%s\"\n", bad[i]);
        CHECK(!valid(bad[i]));
    }
    CHECK(eb_schedule_parse(NULL) == NULL);
}

static void test_rate_next(void)
{
    eb_schedule *s = eb_schedule_parse("rate(5 minutes)");
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(eb_schedule_next(s, 1000, 1000) == 1300);
    CHECK(eb_schedule_next(s, 1000, 1299) == 1300);
    CHECK(eb_schedule_next(s, 1000, 1300) == 1600);
    CHECK(eb_schedule_next(s, 1000, 1301) == 1600);
    CHECK(eb_schedule_next(s, 1000, 0) == 1300); /* before creation: the first firing */
    CHECK(eb_schedule_next(s, 1000, 1000 + 300 * 1000000 + 7) == 1000 + 300 * 1000001);
    CHECK(eb_schedule_next(s, -1000, -1000) == -700);
    CHECK(eb_schedule_next(s, 0, INT64_MAX) == -1);
    CHECK(eb_schedule_next(s, INT64_MAX - 10, INT64_MAX - 5) == -1);
    CHECK(eb_schedule_next(s, INT64_MIN, INT64_MAX) == -1);
    eb_schedule_free(s);

    s = eb_schedule_parse("rate(1 day)");
    CHECK(s != NULL);
    int64_t c = at("2024-02-28 13:37:11");
    CHECK_STR(fmt(eb_schedule_next(s, c, c)), "2024-02-29 13:37:11");
    CHECK_STR(fmt(eb_schedule_next(s, c, at("2024-03-01 13:37:11"))), "2024-03-02 13:37:11");
    eb_schedule_free(s);

    s = eb_schedule_parse("rate(2147483647 days)");
    CHECK(s != NULL);
    CHECK(eb_schedule_next(s, 0, 0) == (int64_t)2147483647 * 86400);
    eb_schedule_free(s);
}

/* ---- cron() syntax ---------------------------------------------------------- */

static void test_cron_syntax(void)
{
    const char *ok[] = {
        /* §8.3 observed accepted */
        "cron(0 10 * * ? *)", "cron(15 12 * * ? *)", "cron(0 18 ? * MON-FRI *)", "cron(0 8 1 * ? *)",
        "cron(0/15 * * * ? *)", "cron(0/10 * ? * MON-FRI *)", "cron(0/5 8-17 ? * MON-FRI *)",
        "cron(0/30 20-23 ? * MON-FRI *)", "cron(0 2 ? * SAT *)", "cron(0 2 ? * SAT#3 *)",
        "cron(* * ? * SAT#3 *)", "cron(5,35 14 * * ? *)", "cron(15 10 ? * 6L 2002-2005)",
        "cron(0/5 5 ? JAN 1-5 2022)",
        /* more */
        "cron(0 20-2 * * ? *)", "cron(0 0 ? * FRI-MON *)", "cron(0 0 1 NOV-FEB ? *)", "cron(0 0 L * ? *)",
        "cron(0 0 15W * ? *)", "cron(0 0 1W * ? *)", "cron(0 0 LW * ? *)", "cron(0 0 ? * L *)",
        "cron(0 0 ? * FRIL *)", "cron(0 0 ? * 1#5 *)", "cron(0 0 1 jan ? *)", "cron(0 0 ? * mon-fri *)",
        "cron(0 0 ? * Sat#1 *)", "cron(59 23 31 12 ? 2199)", "cron(0 0 1 1 ? 1970)", "cron(*/7 */3 */2 */5 ? */10)",
        "cron(1-59/2 0-23/6 1-31/10 1-12/3 ? 1970-2199/50)", "cron(0 0 ? 1/2 7 *)", "cron(0,15,30,45 * * * ? *)",
        "cron(00 05 01 01 ? 2024)", "cron(0 0 * * ? 2024,2026-2028)", "cron(0 0 ? * 1,3,5 *)",
        "cron(0 0 ? * SUN,TUE-THU *)", "cron(0/59 0/23 1/31 1/12 ? *)", "cron(5-5/2 * * * ? *)",
        "cron(0 0 31W * ? *)"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (!valid(ok[i]))
            fprintf(stderr, "should be valid: %s\n", ok[i]);
        CHECK(valid(ok[i]));
    }
    const char *bad[] = {
        /* recorded */
        "cron(0 1 * * * *)", "cron(7 20 * * NOT *)", "cron(INVALID)", "cron(0 dummy ? * MON-FRI *)",
        "cron(71 8 1 * ? *)",
        /* §8.3 */
        "cron(0 0 ? * 3#1,6#3 *)",
        /* more */
        "cron(0 10 ? * ? *)", "cron(0 10 * * ? * )", "cron( 0 10 * * ? *)", "cron(0  10 * * ? *)",
        "cron(0 10 * * ?)", "cron(0 10 * * ? * *)", "cron(0 10 * * ? 1969)", "cron(0 10 * * ? 2200)",
        "cron(60 * * * ? *)", "cron(0 24 * * ? *)", "cron(0 0 0 * ? *)", "cron(0 0 32 * ? *)",
        "cron(0 0 1 0 ? *)", "cron(0 0 1 13 ? *)", "cron(0 0 ? * 0 *)", "cron(0 0 ? * 8 *)",
        "cron(0 0 ? * 3#6 *)", "cron(0 0 ? * 3#0 *)", "cron(0 0 ? * 8#1 *)", "cron(0 0 L-3 * ? *)",
        "cron(0 0 ? * MON/2 *)", "cron(0/0 * * * ? *)", "cron(0/60 * * * ? *)", "cron(0 0/24 * * ? *)",
        "cron(0 0 1/32 * ? *)", "cron(0 0 1 1/13 ? *)", "cron(? 0 * * ? *)", "cron(0 ? * * ? *)",
        "cron(0 0 * ? ? *)", "cron(0 0 * * ? ?)", "cron(L 0 * * ? *)", "cron(0 0 32W * ? *)",
        "cron(0 0 0W * ? *)", "cron(0 0 W * ? *)", "cron(0 0 1,L * ? *)", "cron(0 0 1-15W * ? *)",
        "cron(0 0 ? * 1,6L *)", "cron(0 0 ? * #3 *)", "cron(0 0 ? * 3# *)", "cron(0 0 ? * L#2 *)",
        "cron(0 0 1 JANUARY ? *)", "cron(0 0 1 JA ? *)", "cron(0 0 ? * MONDAY *)", "cron(0 0 1 * MON *)",
        "cron(0 0 ? 1 SUN *", "cron(0 0 ? 1 SUN *))", "CRON(0 0 ? 1 SUN *)", "cron()", "cron(,0 0 * * ? *)",
        "cron(0, 0 * * ? *)", "cron(0,,1 0 * * ? *)", "cron(1- 0 * * ? *)", "cron(-1 0 * * ? *)",
        "cron(1-2-3 0 * * ? *)", "cron(*/ 0 * * ? *)", "cron(** 0 * * ? *)", "cron(*-5 0 * * ? *)",
        "cron(1/2/3 0 * * ? *)", "cron(00000 0 * * ? *)", "cron(0 0 * * ? 1970-2200)", "cron(0\t0 * * ? *)",
        "cron(0 0 ? * SAT#3x *)", "cron(0 0 1 FEB-JANX ? *)", "cron(0 0 ? * 6LL *)", "cron(0 0 LWW * ? *)",
        "cron(0 0 L * L *)"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (valid(bad[i]))
            fprintf(stderr, "should be invalid: \"%s\"\n", bad[i]);
        CHECK(!valid(bad[i]));
    }
}

/* ---- cron() next firing ---------------------------------------------------- */

static void test_cron_basic(void)
{
    NEXT("cron(0 10 * * ? *)", "2024-03-05 09:59:30", "2024-03-05 10:00:00");
    NEXT("cron(0 10 * * ? *)", "2024-03-05 10:00:00", "2024-03-06 10:00:00"); /* strictly after */
    NEXT("cron(0 10 * * ? *)", "2024-12-31 10:00:01", "2025-01-01 10:00:00");
    NEXT("cron(15 12 * * ? *)", "2024-03-05 12:14:59", "2024-03-05 12:15:00");
    NEXT("cron(0/15 * * * ? *)", "2024-03-05 10:07:00", "2024-03-05 10:15:00");
    NEXT("cron(0/15 * * * ? *)", "2024-03-05 10:45:00", "2024-03-05 11:00:00");
    NEXT("cron(0/15 * * * ? *)", "2023-12-31 23:50:00", "2024-01-01 00:00:00");
    NEXT("cron(5/15 * * * ? *)", "2024-03-05 10:51:00", "2024-03-05 11:05:00");
    NEXT("cron(* * * * ? *)", "2024-03-05 10:51:00", "2024-03-05 10:52:00");
    NEXT("cron(* * * * ? *)", "2024-03-05 10:51:59", "2024-03-05 10:52:00");
    NEXT("cron(5,35 14 * * ? *)", "2024-03-05 14:05:00", "2024-03-05 14:35:00");
    NEXT("cron(0 8 1 * ? *)", "2024-01-01 08:00:00", "2024-02-01 08:00:00");
    NEXT("cron(0 0 1 jan ? *)", "2024-01-01 00:00:00", "2025-01-01 00:00:00");
    NEXT("cron(30 6 * NOV-FEB ? *)", "2024-03-01 00:00:00", "2024-11-01 06:30:00");
    NEXT("cron(30 6 * NOV-FEB ? *)", "2024-02-29 06:30:00", "2024-11-01 06:30:00");
    NEXT("cron(5-5/2 * * * ? *)", "2024-03-05 10:06:00", "2024-03-05 11:05:00");
    NEXT("cron(*/20 */12 * * ? *)", "2024-03-05 00:40:00", "2024-03-05 12:00:00");
}

static void test_cron_wrap(void)
{
    NEXT("cron(0 22-2 * * ? *)", "2024-03-05 03:00:00", "2024-03-05 22:00:00");
    NEXT("cron(0 22-2 * * ? *)", "2024-03-05 23:30:00", "2024-03-06 00:00:00");
    NEXT("cron(0 22-2 * * ? *)", "2024-03-06 02:00:00", "2024-03-06 22:00:00");
    NEXT("cron(0 22-2/2 * * ? *)", "2024-03-05 22:00:00", "2024-03-06 00:00:00");
    NEXT("cron(0 22-2/2 * * ? *)", "2024-03-06 00:00:00", "2024-03-06 02:00:00");
    /* Friday..Monday; 2024-03-07 is a Thursday */
    NEXT("cron(0 0 ? * FRI-MON *)", "2024-03-05 00:00:00", "2024-03-08 00:00:00");
    NEXT("cron(0 0 ? * FRI-MON *)", "2024-03-11 00:00:00", "2024-03-15 00:00:00");
    NEXT("cron(0 0 ? * SAT-SUN *)", "2024-03-11 00:00:00", "2024-03-16 00:00:00");
}

static void test_cron_dow(void)
{
    /* 2024-03-08 is a Friday */
    NEXT("cron(0 18 ? * MON-FRI *)", "2024-03-08 18:00:00", "2024-03-11 18:00:00");
    NEXT("cron(0 18 ? * MON-FRI *)", "2024-03-08 17:00:00", "2024-03-08 18:00:00");
    NEXT("cron(0 18 ? * 2-6 *)", "2024-03-09 00:00:00", "2024-03-11 18:00:00");
    NEXT("cron(0 2 ? * SAT *)", "2024-03-05 00:00:00", "2024-03-09 02:00:00");
    NEXT("cron(0 2 ? * 7 *)", "2024-03-09 02:00:00", "2024-03-16 02:00:00");
    NEXT("cron(0 2 ? * 1 *)", "2024-03-09 02:00:00", "2024-03-10 02:00:00"); /* 1 = Sunday */
    NEXT("cron(0 2 ? * L *)", "2024-03-09 02:00:00", "2024-03-16 02:00:00"); /* L = Saturday */
    NEXT("cron(0 0 ? * * *)", "2024-03-09 02:00:00", "2024-03-10 00:00:00");
    /* n-th weekday: Saturdays of March 2024 are 2, 9, 16, 23, 30 */
    NEXT("cron(0 2 ? * SAT#3 *)", "2024-03-01 00:00:00", "2024-03-16 02:00:00");
    NEXT("cron(0 2 ? * SAT#3 *)", "2024-03-16 02:00:00", "2024-04-20 02:00:00");
    NEXT("cron(0 2 ? * 7#1 *)", "2024-03-02 02:00:00", "2024-04-06 02:00:00");
    NEXT("cron(* * ? * SAT#3 *)", "2024-03-16 23:59:00", "2024-04-20 00:00:00");
    NEXT("cron(* * ? * SAT#3 *)", "2024-03-16 12:34:56", "2024-03-16 12:35:00");
    /* fifth: only months that have one; Saturdays#5 2024: Mar 30, Jun 29, Aug 31, Nov 30 */
    NEXT("cron(0 0 ? * SAT#5 *)", "2024-03-30 00:00:00", "2024-06-29 00:00:00");
    NEXT("cron(0 0 ? * 3#2 *)", "2024-03-01 00:00:00", "2024-03-12 00:00:00"); /* 2nd Tuesday */
    /* last weekday d of the month: last Friday */
    NEXT("cron(15 10 ? * 6L *)", "2024-03-01 00:00:00", "2024-03-29 10:15:00");
    NEXT("cron(15 10 ? * 6L *)", "2024-02-01 00:00:00", "2024-02-23 10:15:00");
    NEXT("cron(15 10 ? * FRIL *)", "2024-03-29 10:15:00", "2024-04-26 10:15:00");
    NEXT("cron(0 0 ? * 5L *)", "2024-02-01 00:00:00", "2024-02-29 00:00:00"); /* last Thursday, leap */
    NEXT("cron(0 0 ? * 5L *)", "2023-02-01 00:00:00", "2023-02-23 00:00:00");
    /* years all in the past */
    NEXT("cron(15 10 ? * 6L 2002-2005)", "2024-03-01 00:00:00", "none");
    NEXT("cron(15 10 ? * 6L 2002-2005)", "2002-01-01 00:00:00", "2002-01-25 10:15:00");
    NEXT("cron(15 10 ? * 6L 2002-2005)", "2005-12-30 10:15:00", "none");
    NEXT("cron(0/5 5 ? JAN 1-5 2022)", "2021-06-01 00:00:00", "2022-01-02 05:00:00"); /* Sun Jan 2 */
    NEXT("cron(0/5 5 ? JAN 1-5 2022)", "2022-01-02 05:55:00", "2022-01-03 05:00:00");
}

static void test_cron_dom_special(void)
{
    /* L: the last day of the month, leap years */
    NEXT("cron(0 0 L * ? *)", "2024-02-01 00:00:00", "2024-02-29 00:00:00");
    NEXT("cron(0 0 L * ? *)", "2023-02-01 00:00:00", "2023-02-28 00:00:00");
    NEXT("cron(0 0 L * ? *)", "2100-02-01 00:00:00", "2100-02-28 00:00:00");
    NEXT("cron(0 0 L * ? *)", "2000-02-01 00:00:00", "2000-02-29 00:00:00");
    NEXT("cron(0 0 L * ? *)", "2024-04-01 00:00:00", "2024-04-30 00:00:00");
    NEXT("cron(0 0 L * ? *)", "2024-04-30 00:00:00", "2024-05-31 00:00:00");
    NEXT("cron(0 0 29 2 ? *)", "2024-03-01 00:00:00", "2028-02-29 00:00:00");
    NEXT("cron(0 0 29 2 ? *)", "2096-03-01 00:00:00", "2104-02-29 00:00:00"); /* 2100 is no leap year */
    NEXT("cron(0 0 31 * ? *)", "2024-03-31 00:00:00", "2024-05-31 00:00:00");
    NEXT("cron(0 0 30 2 ? *)", "2024-01-01 00:00:00", "none");
    /* W: nearest weekday */
    NEXT("cron(0 0 15W * ? *)", "2024-06-01 00:00:00", "2024-06-14 00:00:00"); /* Sat 15 -> Fri 14 */
    NEXT("cron(0 0 15W * ? *)", "2024-09-01 00:00:00", "2024-09-16 00:00:00"); /* Sun 15 -> Mon 16 */
    NEXT("cron(0 0 15W * ? *)", "2024-05-01 00:00:00", "2024-05-15 00:00:00"); /* Wed */
    NEXT("cron(0 0 1W * ? *)", "2024-05-31 00:00:00", "2024-06-03 00:00:00");  /* Sat 1 -> Mon 3 */
    NEXT("cron(0 0 1W * ? *)", "2024-08-31 00:00:00", "2024-09-02 00:00:00");  /* Sun 1 -> Mon 2 */
    NEXT("cron(0 0 31W * ? *)", "2024-03-01 00:00:00", "2024-03-29 00:00:00"); /* Sun 31 -> Fri 29 */
    NEXT("cron(0 0 31W * ? *)", "2024-04-01 00:00:00", "2024-05-31 00:00:00"); /* no 31 in April */
    NEXT("cron(0 0 30W * ? *)", "2024-11-01 00:00:00", "2024-11-29 00:00:00"); /* Sat 30 -> Fri 29 */
    /* LW: last weekday */
    NEXT("cron(0 12 LW * ? *)", "2024-08-01 00:00:00", "2024-08-30 12:00:00"); /* Sat 31 -> Fri 30 */
    NEXT("cron(0 12 LW * ? *)", "2024-03-01 00:00:00", "2024-03-29 12:00:00"); /* Sun 31 -> Fri 29 */
    NEXT("cron(0 12 LW * ? *)", "2024-04-01 00:00:00", "2024-04-30 12:00:00"); /* Tue */
}

static void test_cron_years(void)
{
    NEXT("cron(0 0 1 1 ? 1970)", "1960-01-01 00:00:00", "1970-01-01 00:00:00");
    NEXT("cron(0 0 1 1 ? 1970)", "1970-01-01 00:00:00", "none");
    NEXT("cron(59 23 31 12 ? 2199)", "2024-01-01 00:00:00", "2199-12-31 23:59:00");
    NEXT("cron(59 23 31 12 ? 2199)", "2199-12-31 23:59:00", "none");
    NEXT("cron(0 0 1 1 ? *)", "2199-06-01 00:00:00", "none");
    NEXT("cron(0 0 * * ? 2024,2026-2028)", "2024-12-31 00:00:00", "2026-01-01 00:00:00");
    NEXT("cron(0 0 1 1 ? */50)", "1970-01-01 00:00:00", "2020-01-01 00:00:00");
    NEXT("cron(0 0 1 1 ? 2190-1975)", "1975-01-01 00:00:00", "2190-01-01 00:00:00"); /* wraps */
    eb_schedule *s = eb_schedule_parse("cron(* * * * ? *)");
    CHECK(s != NULL);
    CHECK(eb_schedule_next(s, 0, INT64_MAX) == -1);
    CHECK(eb_schedule_next(s, 0, INT64_MIN) == 0);
    CHECK(eb_schedule_next(s, 0, -1) == 0);
    CHECK(eb_schedule_next(s, 0, 0) == 60);
    CHECK(eb_schedule_next(s, 0, 59) == 60);
    CHECK(eb_schedule_next(s, 0, at("2199-12-31 23:58:30")) == at("2199-12-31 23:59:00"));
    CHECK(eb_schedule_next(s, 0, at("2199-12-31 23:59:00")) == -1);
    eb_schedule_free(s);
    CHECK(eb_schedule_next(NULL, 0, 0) == -1);
}

/* Brute force: for a set of expressions, compare eb_schedule_next with a
 * minute-by-minute scan using gmtime (independent of the implementation's
 * calendar arithmetic). */
static int brute_match(const char *kind, const struct tm *tm)
{
    int wd = tm->tm_wday + 1, d = tm->tm_mday, m = tm->tm_mon + 1, y = tm->tm_year + 1900;
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int dim = dm[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
    if (strcmp(kind, "6L") == 0)
        return tm->tm_hour == 3 && tm->tm_min == 7 && wd == 6 && d + 7 > dim;
    if (strcmp(kind, "2#4") == 0)
        return tm->tm_hour == 3 && tm->tm_min == 7 && wd == 2 && d >= 22 && d <= 28;
    if (strcmp(kind, "L") == 0)
        return tm->tm_hour == 3 && tm->tm_min == 7 && d == dim;
    if (strcmp(kind, "wk") == 0)
        return tm->tm_min % 20 == 10 && tm->tm_hour >= 9 && tm->tm_hour <= 17 && wd >= 2 && wd <= 6 &&
               (m == 3 || m == 4);
    return 0;
}

static void test_cron_brute(void)
{
    static const struct {
        const char *expr, *kind;
    } cases[] = {{"cron(7 3 ? * 6L *)", "6L"},
                 {"cron(7 3 ? * MON#4 *)", "2#4"},
                 {"cron(7 3 L * ? *)", "L"},
                 {"cron(10/20 9-17 ? MAR-APR MON-FRI *)", "wk"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        eb_schedule *s = eb_schedule_parse(cases[c].expr);
        CHECK(s != NULL);
        if (!s)
            continue;
        int64_t t = at("2023-12-25 00:00:00");
        int checked = 0;
        for (int i = 0; i < 40 && t >= 0; i++) {
            int64_t got = eb_schedule_next(s, 0, t);
            /* scan forward minute by minute */
            int64_t want = -1;
            for (int64_t u = (t / 60 + 1) * 60; u < t + 400LL * 86400; u += 60) {
                time_t tt = (time_t)u;
                struct tm tm;
                gmtime_r(&tt, &tm);
                if (brute_match(cases[c].kind, &tm)) {
                    want = u;
                    break;
                }
            }
            if (got != want)
                fprintf(stderr, "%s after %lld: got %lld want %lld\n", cases[c].expr, (long long)t,
                        (long long)got, (long long)want);
            CHECK(got == want);
            checked++;
            t = got + 17;
        }
        CHECK(checked == 40);
        eb_schedule_free(s);
    }
}

int main(void)
{
    RUN(test_conformance);
    RUN(test_rate_syntax);
    RUN(test_rate_next);
    RUN(test_cron_syntax);
    RUN(test_cron_basic);
    RUN(test_cron_wrap);
    RUN(test_cron_dow);
    RUN(test_cron_dom_special);
    RUN(test_cron_years);
    RUN(test_cron_brute);
    return TEST_REPORT();
}
