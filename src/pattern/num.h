/* JSON number text: grammar check and conversion to binary64. */
#ifndef EBP_NUM_H
#define EBP_NUM_H

#include <stddef.h>

/* Length of the JSON number (RFC 8259 grammar) starting at p, or 0 if the
 * text at p is not a well-formed number.  Never reads at or past end. */
size_t ebp_num_scan(const char *p, const char *end);

/* Convert number text (as accepted by ebp_num_scan) to the nearest double
 * (round-to-nearest-even, as strtod in the "C" locale).  Returns 1 when the
 * result is finite, 0 on overflow to infinity (then *out is +-HUGE_VAL).
 * Negative zero is returned as +0 so that equal values compare equal. */
int ebp_num_to_double(const char *p, size_t n, double *out);

#endif
