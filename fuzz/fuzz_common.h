/* Helpers shared by the libFuzzer targets in fuzz/ (header only: each
 * fuzz_*.c file is one executable).  Checks abort() so libFuzzer records the
 * input as a crash; messages go to stderr first. */
#ifndef EB_FUZZ_COMMON_H
#define EB_FUZZ_COMMON_H

#include <ebridge/pattern.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_ASSERT(cond)                                                                    \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: fuzz assertion failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

/* The message is NUL-terminated inside the buffer. */
static inline int fuzz_msg_ok(const eb_error *e)
{
    return memchr(e->message, 0, sizeof e->message) != NULL;
}

/* After json_check succeeded: is the top-level value an object?  (JSON
 * whitespace is space, tab, LF, CR.) */
static inline int fuzz_top_is_object(const uint8_t *d, size_t n)
{
    size_t i = 0;
    while (i < n && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r'))
        i++;
    return i < n && d[i] == '{';
}

/* keys[0..n) has no duplicates and every key passes ok(key). */
static inline void fuzz_check_keys(const uint64_t *keys, size_t n, size_t max, int (*ok)(uint64_t))
{
    FUZZ_ASSERT(n <= max);
    FUZZ_ASSERT(n == 0 || keys != NULL);
    for (size_t i = 0; i < n; i++) {
        FUZZ_ASSERT(ok(keys[i]));
        for (size_t j = 0; j < i; j++)
            FUZZ_ASSERT(keys[i] != keys[j]);
    }
}

#endif
