/* The PutEvents fast path (see fastput.c). */
#ifndef EB_FASTPUT_H
#define EB_FASTPUT_H

#include "../core/core.h"

#include <stddef.h>

#define EB_FASTPUT_MAX 10
#define EB_FASTPUT_MAX_RESOURCES 256

typedef struct {
    eb_put_entry entries[EB_FASTPUT_MAX];
    size_t n;
    eb_str resources[EB_FASTPUT_MAX_RESOURCES];
    size_t nresources;
    char *arena; /* owns the decoded strings */
} eb_fastput;

/* 1 when body[0..len) (valid JSON) is a PutEvents request the fast path is
 * sure conforms to the input shape; then release with eb_fastput_free. 0 when
 * the general path must handle it (nothing to free). */
int eb_fastput_parse(const char *body, size_t len, eb_fastput *out);
void eb_fastput_free(eb_fastput *f);

#endif
