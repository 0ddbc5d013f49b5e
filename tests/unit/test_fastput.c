/* api/fastput.c: the PutEvents fast path accepts the common shape, decodes
 * strings exactly, and hands everything unusual to the general path. */
#define _GNU_SOURCE
#include "api/fastput.h"
#include "test.h"

#include <string.h>

static int fast(const char *body, eb_fastput *f)
{
    return eb_fastput_parse(body, strlen(body), f);
}

static void test_accepts_common_shape(void)
{
    eb_fastput f;
    const char *b = "{ \"Entries\" : [ {\"Source\":\"shop\",\"DetailType\":\"order \\\"x\\\"\",\"Detail\":\"{\\\"a\\\": 1}\","
                    "\"Resources\":[\"r1\",\"r\\u00e9\\ud83d\\ude00\"],\"Time\":1704164645.5,\"EventBusName\":\"orders\","
                    "\"TraceHeader\":\"Root=1\",\"Unknown\":{\"x\":[1,\"]\"]}},"
                    "{\"Source\":null,\"Detail\":\"{}\"} ], \"Other\": 3 }";
    CHECK(fast(b, &f) == 1);
    CHECK(f.n == 2);
    CHECK_STR(f.entries[0].source.s, "shop");
    CHECK_STR(f.entries[0].detail_type.s, "order \"x\"");
    CHECK_STR(f.entries[0].detail.s, "{\"a\": 1}");
    CHECK(f.entries[0].detail.n == 8);
    CHECK_STR(f.entries[0].bus.s, "orders");
    CHECK(f.entries[0].nresources == 2);
    CHECK_STR(f.entries[0].resources[1].s, "r\xc3\xa9\xf0\x9f\x98\x80");
    CHECK(f.entries[0].has_time && f.entries[0].time == 1704164645.5);
    CHECK(f.entries[1].source.s == NULL && f.entries[1].detail_type.s == NULL);
    CHECK(f.entries[1].nresources == 0 && !f.entries[1].has_time);
    eb_fastput_free(&f);
}

static void test_declines_the_unusual(void)
{
    static const char *const bodies[] = {
        "{}",
        "{\"Entries\":[]}",
        "{\"Entries\":null}",
        "{\"Entries\":[{}],\"EndpointId\":\"a.b\"}",
        "{\"Entries\":[{}],\"Entries\":[{}]}",
        "{\"Entries\":[{\"Source\":\"a\",\"Source\":\"b\"}]}",
        "{\"Entries\":[{\"Source\":1}]}",
        "{\"Entries\":[{\"Resources\":\"x\"}]}",
        "{\"Entries\":[{\"Resources\":[1]}]}",
        "{\"Entries\":[{\"Time\":\"2024\"}]}",
        "{\"Entries\":[{\"EventBusName\":\"arn:aws:events:us-east-1:123456789012:event-bus/x\"}]}",
        "{\"Entries\":[{\"EventBusName\":\"\"}]}",
        "{\"Entries\":[{\"EventBusName\":\"a b\"}]}",
        "{\"Entries\":[{\"TraceHeader\":\"\"}]}",
        "{\"Entries\":[{\"Detail\":\"\\u0000\"}]}",
        "{\"Entries\":[{\"Detail\":\"\\ud800\"}]}",
        "{\"Entries\":[{\"Detail\":\"\\udc00x\"}]}",
        "{\"Entr\\u0069es\":[{}]}",
        "{\"Entries\":[{},{},{},{},{},{},{},{},{},{},{}]}",
        "[]",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        eb_fastput f;
        int got = fast(bodies[i], &f);
        if (got) {
            fprintf(stderr, "fast path took: %s\n", bodies[i]);
            eb_fastput_free(&f);
        }
        CHECK(got == 0);
    }
    eb_fastput f;
    CHECK(fast("{\"Entries\":[{},{},{},{},{},{},{},{},{},{}]}", &f) == 1 && f.n == 10);
    eb_fastput_free(&f);
}

int main(void)
{
    RUN(test_accepts_common_shape);
    RUN(test_declines_the_unusual);
    return TEST_REPORT();
}
