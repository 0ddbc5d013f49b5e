/* Helpers shared by the delivery benchmark's standalone programs (loadgen.c,
 * receiver.c), each built with a plain `cc` by bench/delivery/run.sh and
 * bench/load/run.sh. */
#ifndef EB_BENCH_UTIL_H
#define EB_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CLOCK_REALTIME in µs: the generator stamps each Detail, the receiver subtracts. */
static inline int64_t realtime_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline void die(const char *what)
{
    perror(what);
    exit(2);
}

#endif
