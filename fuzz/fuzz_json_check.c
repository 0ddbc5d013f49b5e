/* libFuzzer target: eb_json_check on arbitrary bytes.  Checks the result is
 * a valid status with a terminated message, and that the depth limit is
 * monotonic (accepted with a low limit => accepted with a higher one). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *json = (const char *)data;
    eb_error err;
    memset(&err, 0x55, sizeof err);
    eb_status st = eb_json_check(json, size, EB_DEFAULT_MAX_DEPTH, &err);
    FUZZ_ASSERT(st == EB_OK || st == EB_ERR_EVENT);
    if (st != EB_OK) {
        FUZZ_ASSERT(fuzz_msg_ok(&err));
        FUZZ_ASSERT(err.offset <= size);
    }
    eb_status st2 = eb_json_check(json, size, 2, NULL);
    FUZZ_ASSERT(st2 == EB_OK || st2 == EB_ERR_EVENT);
    if (st2 == EB_OK)
        FUZZ_ASSERT(st == EB_OK);
    eb_status st3 = eb_json_check(json, size, EB_MAX_MAX_DEPTH, NULL);
    if (st == EB_OK)
        FUZZ_ASSERT(st3 == EB_OK);
    return 0;
}
