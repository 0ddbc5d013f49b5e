/* Minimal unit-test helpers shared by every test in tests/unit.
 *
 * A test file defines functions `static void test_xxx(void)` and a main() that
 * calls RUN(test_xxx) for each, then `return TEST_REPORT();`.  Failures print
 * file:line and the expression; the process exits non-zero if any check failed.
 * The closing line has the form "N passed, N failed" so CI log readers see it. */
#ifndef EB_TEST_H
#define EB_TEST_H

#include <stdio.h>
#include <string.h>

static int test_checks_failed_;
static int test_tests_passed_;
static int test_tests_failed_;
static int test_cur_failed_;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            test_checks_failed_++;                                           \
            test_cur_failed_ = 1;                                            \
        }                                                                    \
    } while (0)

#define CHECK_STR(a, b)                                                         \
    do {                                                                        \
        const char *a_ = (a), *b_ = (b);                                        \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                \
            fprintf(stderr, "%s:%d: CHECK_STR failed: %s\n  got:  %s\n  want: %s\n", \
                    __FILE__, __LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
            test_checks_failed_++;                                              \
            test_cur_failed_ = 1;                                               \
        }                                                                       \
    } while (0)

#define RUN(fn)                                   \
    do {                                          \
        test_cur_failed_ = 0;                     \
        fn();                                     \
        if (test_cur_failed_) {                   \
            test_tests_failed_++;                 \
            fprintf(stderr, "FAIL %s\n", #fn);    \
        } else {                                  \
            test_tests_passed_++;                 \
        }                                         \
    } while (0)

#define TEST_REPORT()                                                      \
    (printf("%d passed, %d failed\n", test_tests_passed_, test_tests_failed_), \
     test_tests_failed_ ? 1 : 0)

#endif
