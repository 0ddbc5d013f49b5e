/* Schedule expressions of scheduled rules (reference §8): rate(...) and
 * cron(...), validated exactly as AWS accepts them, plus the next firing time
 * (used by the scheduler of the delivery issue). Pure functions, libc only. */
#ifndef EB_SCHEDULE_H
#define EB_SCHEDULE_H

#include <stdint.h>

typedef struct eb_schedule eb_schedule;

/* Parse; NULL when the expression is invalid (AWS then answers
 * ValidationException "Parameter ScheduleExpression is not valid."). */
eb_schedule *eb_schedule_parse(const char *expr);
void eb_schedule_free(eb_schedule *s);

/* The first firing time strictly after `after_s` (epoch seconds, UTC), for a
 * rate() schedule counted from `created_s`; -1 when there is none (a cron
 * whose years are all past). */
int64_t eb_schedule_next(const eb_schedule *s, int64_t created_s, int64_t after_s);

#endif
