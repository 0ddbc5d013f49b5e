/* Unit tests for src/api/shape.c: the request shapes of the operations we
 * serve, AWS's ValidationException / SerializationException texts, the
 * regular-expression matcher, and every validation message recorded in
 * $EB_SHARED/conformance/api-errors.jsonl. */
#define _GNU_SOURCE
#include "api/shape.h"
#include "corpus.h"
#include "test.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Runs op on the JSON text; returns eb_shape_check's result, the code in
 * last_code and the message in last_msg. */
static const char *last_code;
static char *last_msg;

static int run(const char *op, const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &err);
    if (!j) {
        fprintf(stderr, "bad test JSON: %s: %s\n", text, err.text);
        abort();
    }
    eb_buf msg = {0};
    last_code = NULL;
    int rc = eb_shape_check(op, j, &last_code, &msg);
    json_decref(j);
    free(last_msg);
    last_msg = msg.p ? msg.p : strdup("");
    return rc;
}

#define OK(op, text)                                                                         \
    do {                                                                                     \
        int rc_ = run(op, text);                                                             \
        if (rc_)                                                                             \
            fprintf(stderr, "%s:%d: unexpected %s: %s\n", __FILE__, __LINE__, last_code,     \
                    last_msg);                                                               \
        CHECK(rc_ == 0);                                                                     \
    } while (0)

#define ERR(op, text, code, msg)        \
    do {                                \
        CHECK(run(op, text) == 1);      \
        CHECK_STR(last_code, code);     \
        CHECK_STR(last_msg, msg);       \
    } while (0)

#define VAL(op, text, msg) ERR(op, text, "ValidationException", msg)
#define SER(op, text, msg) ERR(op, text, "SerializationException", msg)

#define RX(pat, s, want) CHECK(eb_shape_regex_match(pat, s, strlen(s)) == (want))

/* ---- regular expressions ----------------------------------------------------- */

static void test_regex(void)
{
    const char *name = "[\\.\\-_A-Za-z0-9]+";
    RX(name, "my-rule_1.x", 1);
    RX(name, "", 0);
    RX(name, "a b", 0);
    RX(name, "!@#$@!#$", 0);
    RX(name, "a/b", 0);
    RX("[/\\.\\-_A-Za-z0-9]+", "aws.partner/x/y", 1);
    /* EventBusNameOrArn */
    const char *bus = "(arn:aws[\\w-]*:events:[a-z]+-[a-z]+-[\\w-]+:[0-9]{12}:event-bus\\/)?[/\\.\\-_A-Za-z0-9]+";
    RX(bus, "default", 1);
    RX(bus, "arn:aws:events:us-east-1:123456789012:event-bus/my-bus", 1);
    RX(bus, "arn:aws-cn:events:cn-north-1:123456789012:event-bus/aws.partner/a/b", 1);
    RX(bus, "arn:aws:events:us-east-1:12345678901:event-bus/b", 0); /* 11 digits */
    RX(bus, "arn:aws:events:local:123456789012:event-bus/b", 0);
    /* partner source: {2,} */
    const char *partner = "aws\\.partner(/[\\.\\-_A-Za-z0-9]+){2,}";
    RX(partner, "aws.partner/example.com/123", 1);
    RX(partner, "aws.partner/example.com/123/src", 1);
    RX(partner, "aws.partner/example.com", 0);
    RX(partner, "awsXpartner/a/b", 0);
    /* '-' after a range is a literal */
    RX("[a-zA-Z0-9-_]+", "a-_Z9", 1);
    RX("[a-zA-Z0-9-_]+", "a.b", 0);
    RX("[a-zA-Z0-9-_]+", "[", 0); /* not a 9.._ range */
    RX("[a-z0-9-.]+", "us-east-1.x", 1);
    RX("[\\w_-]+", "a_b-c", 1);
    /* alternation, \d, anchors */
    RX("(\\d{12}|\\*)", "123456789012", 1);
    RX("(\\d{12}|\\*)", "*", 1);
    RX("(\\d{12}|\\*)", "12345678901", 0);
    RX("(\\d{12}|\\*)", "1234567890123", 0);
    RX("(\\d{12}|\\*)", "**", 0);
    RX("events:[a-zA-Z]+", "events:PutEvents", 1);
    RX("events:[a-zA-Z]+", "events:", 0);
    RX("^[a-zA-Z0-9_\\-/:]*$", "", 1);
    RX("^[a-zA-Z0-9_\\-/:]*$", "alias/my-key", 1);
    RX("^[a-zA-Z0-9_\\-/:]*$", "a b", 0);
    RX("^[a-zA-Z0-9_\\-/:]*$", "ab\n", 0); /* $ before a final newline, but matches() needs it all */
    RX("^[A-Za-z0-9\\-]+[\\.][A-Za-z0-9\\-]+$", "abc.def", 1);
    RX("^[A-Za-z0-9\\-]+[\\.][A-Za-z0-9\\-]+$", "abcdef", 0);
    /* lookahead */
    const char *path = "^(?!\\s*$).+";
    RX(path, "a", 1);
    RX(path, " a ", 1);
    RX(path, "", 0);
    RX(path, "   ", 0);
    RX(path, " \t\n", 0);
    RX(path, "a\nb", 0); /* . stops at line terminators */
    /* header key: `+-.` is a range (+ , - .); ^ and | literal */
    const char *hk = "^[!#$%&'*+-.^_`|~0-9a-zA-Z]+$";
    RX(hk, "X-Custom-Header", 1);
    RX(hk, "a,b.c^d|e~f`g", 1);
    RX(hk, "a b", 0);
    RX(hk, "a:b", 0);
    RX(hk, "a/b", 0);
    /* header value, no exponential backtracking */
    const char *hv = "^[ \\t]*[\\x20-\\x7E]+([ \\t]+[\\x20-\\x7E]+)*[ \\t]*$";
    RX(hv, "Bearer abc", 1);
    RX(hv, "  x  ", 1);
    RX(hv, "a\x01", 0);
    {
        char big[2100];
        for (int i = 0; i < 2048; i++)
            big[i] = i % 2 ? ' ' : 'a';
        big[2048] = '\x7f';
        big[2049] = 0;
        RX(hv, big, 0);
        big[2048] = 0;
        RX(hv, big, 1);
    }
    /* \x escapes, negated classes, multi-byte input */
    RX("[^\\x00-\\x1F\\x7F]+", "k\xc3\xa9y", 1);
    RX("[^\\x00-\\x1F\\x7F]+", "a\tb", 0);
    RX("[^\\x00-\\x09\\x0B\\x0C\\x0E-\\x1F\\x7F]+", "a\r\nb", 1);
    RX("[^\\x00-\\x09\\x0B\\x0C\\x0E-\\x1F\\x7F]+", "a\tb", 0);
    const char *auth = "^[ \\t]*[^\\x00-\\x1F:\\x7F]+([ \\t]+[^\\x00-\\x1F:\\x7F]+)*[ \\t]*$";
    RX(auth, "user", 1);
    RX(auth, "us:er", 0);
    /* https endpoint with \x26 */
    const char *https = "^((%[0-9A-Fa-f]{2}|[-()_.!~*';/?:@\\x26=+$,A-Za-z0-9])+)([).!';/?:,])?$";
    RX(https, "https://example.com/api?a=1&b=%20", 1);
    RX(https, "invalid-endpoint", 1);
    RX(https, "https://exa mple.com", 0);
    RX(https, "https://x/%2", 0);
    /* secrets-manager ARN or JSON path */
    const char *sm =
        "(^arn:aws([a-z]|\\-)*:secretsmanager:[a-z0-9-.]+:.*)|(\\$(\\.[\\w_-]+(\\[(\\d+|\\*)\\])*)*)";
    RX(sm, "arn:aws:secretsmanager:us-east-1:123456789012:secret:x", 1);
    RX(sm, "$.detail.secret", 1);
    RX(sm, "$.a[0][*].b", 1);
    RX(sm, "$", 1);
    RX(sm, "foo", 0);
    RX(sm, "$.a[x]", 0);
    /* connection ARN, vpc-lattice with (?:...|^$) */
    const char *conn = "^arn:aws([a-z]|\\-)*:events:([a-z]|\\d|\\-)*:([0-9]{12})?:connection\\/[\\.\\-_A-Za-z0-9]+\\/"
                       "[\\-A-Za-z0-9]+$";
    RX(conn, "arn:aws:events:us-east-1:123456789012:connection/conn-x/00000000-0000-0000-0000-000000000000", 1);
    RX(conn, "arn:aws:events:us-east-1::connection/c/1", 1);
    RX(conn, "invalid-connection-arn", 0);
    const char *rc = "^(?:^arn:[a-z0-9\\-]+:vpc-lattice:[a-zA-Z0-9\\-]+:\\d{12}:resourceconfiguration/rcfg-[0-9a-z]{17}$|^$)";
    RX(rc, "", 1);
    RX(rc, "arn:aws:vpc-lattice:us-east-1:123456789012:resourceconfiguration/rcfg-0123456789abcdef0", 1);
    RX(rc, "arn:aws:vpc-lattice:us-east-1:123456789012:resourceconfiguration/rcfg-0123456789abcdef", 0);
    /* SageMaker name */
    RX("^[a-zA-Z0-9](-*[a-zA-Z0-9])*$", "a--b-c", 1);
    RX("^[a-zA-Z0-9](-*[a-zA-Z0-9])*$", "a-", 0);
    RX("^[a-zA-Z0-9](-*[a-zA-Z0-9])*$", "-a", 0);
    /* \p classes (approximate L and N) */
    const char *rck = "^[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*$";
    RX(rck, "tag:Name", 1);
    RX(rck, "InstanceIds", 1);
    RX(rck, "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xd9\xa1\xd9\xa2", 1); /* café 日本 ١٢ */
    RX(rck, "a\xc2\xa0" "b", 1);                                       /* NBSP is Z */
    RX(rck, "a#b", 0);
    RX(rck, "a\tb", 0);
    RX(rck, "\xe2\x80\x94", 0); /* em dash is punctuation */
    /* ".*" stops at newlines (Description patterns) */
    RX(".*", "", 1);
    RX(".*", "abc", 1);
    RX(".*", "a\nb", 0);
    /* $ before a final line terminator */
    RX("a$\\n", "a\n", 1);
    RX("a$\\n", "a\nb", 0);
    /* quantifiers */
    RX("a{2,3}", "a", 0);
    RX("a{2,3}", "aa", 1);
    RX("a{2,3}", "aaa", 1);
    RX("a{2,3}", "aaaa", 0);
    RX("(ab)?c", "c", 1);
    RX("(ab)?c", "abc", 1);
    RX("(a|b)*c+?", "ababcc", 1);
    RX("\\u00e9", "\xc3\xa9", 1);
    /* unsupported or broken patterns */
    CHECK(eb_shape_regex_match("(", "", 0) == -1);
    CHECK(eb_shape_regex_match("a)", "", 0) == -1);
    CHECK(eb_shape_regex_match("[a", "", 0) == -1);
    CHECK(eb_shape_regex_match("a{2", "", 0) == -1);
    CHECK(eb_shape_regex_match("\\b", "", 0) == -1);
    CHECK(eb_shape_regex_match("*", "", 0) == -1);
    CHECK(eb_shape_regex_match("a++", "", 0) == -1);
    CHECK(eb_shape_regex_match("(?<x>a)", "a", 1) == -1);
    CHECK(eb_shape_regex_match("\\p{Lu}", "A", 1) == -1);
    /* embedded NUL in the subject */
    CHECK(eb_shape_regex_match(name, "a\0b", 3) == 0);
}

/* ---- every operation accepts a valid request --------------------------------- */

static void test_valid_requests(void)
{
    OK("CreateEventBus", "{\"Name\":\"my-bus\"}");
    OK("CreateEventBus", "{\"Name\":\"aws.partner/example.com/123/src\",\"EventSourceName\":"
                         "\"aws.partner/example.com/123/src\",\"Description\":\"d\",\"KmsKeyIdentifier\":"
                         "\"arn:aws:kms:us-east-1:123456789012:key/abc\",\"DeadLetterConfig\":{\"Arn\":"
                         "\"arn:aws:sqs:us-east-1:123456789012:dlq\"},\"LogConfig\":{\"IncludeDetail\":\"FULL\","
                         "\"Level\":\"TRACE\"},\"Tags\":[{\"Key\":\"k\",\"Value\":\"\"}]}");
    OK("DescribeEventBus", "{}");
    OK("DescribeEventBus", "{\"Name\":\"arn:aws:events:us-east-1:123456789012:event-bus/my-bus\"}");
    OK("ListEventBuses", "{\"NamePrefix\":\"my\",\"NextToken\":\"t\",\"Limit\":100}");
    OK("UpdateEventBus", "{\"Name\":\"my-bus\",\"KmsKeyIdentifier\":\"\",\"Description\":\"x\","
                         "\"DeadLetterConfig\":{},\"LogConfig\":{\"Level\":\"OFF\"}}");
    OK("DeleteEventBus", "{\"Name\":\"my-bus\"}");
    OK("PutRule", "{\"Name\":\"r\",\"ScheduleExpression\":\"rate(5 minutes)\",\"EventPattern\":"
                  "\"{\\\"source\\\":[\\\"a\\\"]}\",\"State\":\"ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS\","
                  "\"Description\":\"\",\"RoleArn\":\"arn:aws:iam::123456789012:role/r\",\"Tags\":[],"
                  "\"EventBusName\":\"default\"}");
    OK("DescribeRule", "{\"Name\":\"r\",\"EventBusName\":\"b\"}");
    OK("ListRules", "{\"NamePrefix\":\"r\",\"EventBusName\":\"b\",\"NextToken\":\"x\",\"Limit\":1}");
    OK("EnableRule", "{\"Name\":\"r\"}");
    OK("DisableRule", "{\"Name\":\"r\"}");
    OK("DeleteRule", "{\"Name\":\"r\",\"Force\":true}");
    OK("ListRuleNamesByTarget", "{\"TargetArn\":\"arn:aws:sqs:us-east-1:123456789012:q\",\"Limit\":5}");
    OK("ListTargetsByRule", "{\"Rule\":\"r\",\"EventBusName\":\"b\",\"NextToken\":\"n\",\"Limit\":10}");
    OK("RemoveTargets", "{\"Rule\":\"r\",\"Ids\":[\"a\",\"b.c\"],\"Force\":false}");
    OK("PutEvents", "{\"Entries\":[{\"Time\":1704164645,\"Source\":\"s\",\"Resources\":[\"arn:x\"],"
                    "\"DetailType\":\"t\",\"Detail\":\"{}\",\"EventBusName\":\"default\",\"TraceHeader\":\"h\"},"
                    "{\"Time\":1.704164645E9},{}],\"EndpointId\":\"abc.def\"}");
    OK("TestEventPattern", "{\"EventPattern\":\"{}\",\"Event\":\"{}\"}");
    OK("TagResource", "{\"ResourceARN\":\"arn:aws:events:us-east-1:1:rule/r\",\"Tags\":[{\"Key\":\"a\","
                      "\"Value\":\"b\"}]}");
    OK("UntagResource", "{\"ResourceARN\":\"arn\",\"TagKeys\":[\"a\",\"b\"]}");
    OK("ListTagsForResource", "{\"ResourceARN\":\"arn\"}");
    OK("PutPermission", "{\"EventBusName\":\"default\",\"Action\":\"events:PutEvents\",\"Principal\":\"*\","
                        "\"StatementId\":\"s-1_x\",\"Condition\":{\"Type\":\"StringEquals\",\"Key\":"
                        "\"aws:PrincipalOrgID\",\"Value\":\"o-1234567890\"}}");
    OK("PutPermission", "{\"Policy\":\"{}\"}");
    OK("RemovePermission", "{\"StatementId\":\"s\",\"RemoveAllPermissions\":false,\"EventBusName\":\"b\"}");
    OK("RemovePermission", "{}");
    /* every target parameter structure at once */
    OK("PutTargets",
       "{\"Rule\":\"r\",\"EventBusName\":\"default\",\"Targets\":[{\"Id\":\"t1\",\"Arn\":\"arn:aws:sqs:x\","
       "\"RoleArn\":\"arn:role\",\"Input\":\"{}\",\"InputPath\":\"$.detail\",\"InputTransformer\":{"
       "\"InputPathsMap\":{\"a_b-1\":\"$.detail.a\"},\"InputTemplate\":\"<a_b-1>\"},\"KinesisParameters\":{"
       "\"PartitionKeyPath\":\"$.id\"},\"RunCommandParameters\":{\"RunCommandTargets\":[{\"Key\":\"tag:Name\","
       "\"Values\":[\"v1\",\"v2\"]}]},\"EcsParameters\":{\"TaskDefinitionArn\":\"arn:td\",\"TaskCount\":2,"
       "\"LaunchType\":\"FARGATE\",\"NetworkConfiguration\":{\"awsvpcConfiguration\":{\"Subnets\":[\"s1\"],"
       "\"SecurityGroups\":[\"g\"],\"AssignPublicIp\":\"ENABLED\"}},\"PlatformVersion\":\"LATEST\",\"Group\":"
       "\"g\",\"CapacityProviderStrategy\":[{\"capacityProvider\":\"cp\",\"weight\":1000,\"base\":100000}],"
       "\"EnableECSManagedTags\":true,\"EnableExecuteCommand\":false,\"PlacementConstraints\":[{\"type\":"
       "\"memberOf\",\"expression\":\"e\"}],\"PlacementStrategy\":[{\"type\":\"binpack\",\"field\":\"cpu\"}],"
       "\"PropagateTags\":\"TASK_DEFINITION\",\"ReferenceId\":\"ref\",\"Tags\":[{\"Key\":\"k\",\"Value\":\"v\"}]},"
       "\"BatchParameters\":{\"JobDefinition\":\"jd\",\"JobName\":\"jn\",\"ArrayProperties\":{\"Size\":10},"
       "\"RetryStrategy\":{\"Attempts\":3}},\"SqsParameters\":{\"MessageGroupId\":\"g\"},\"HttpParameters\":{"
       "\"PathParameterValues\":[\"p\"],\"HeaderParameters\":{\"X-H\":\"v v\"},\"QueryStringParameters\":{"
       "\"q\":\"v\"}},\"RedshiftDataParameters\":{\"SecretManagerArn\":\"$.detail.secret\",\"Database\":\"db\","
       "\"DbUser\":\"u\",\"Sql\":\"select 1\",\"StatementName\":\"s\",\"WithEvent\":true,\"Sqls\":[\"select 2\"]},"
       "\"SageMakerPipelineParameters\":{\"PipelineParameterList\":[{\"Name\":\"a-b\",\"Value\":\"v\"}]},"
       "\"DeadLetterConfig\":{\"Arn\":\"arn:dlq\"},\"RetryPolicy\":{\"MaximumRetryAttempts\":0,"
       "\"MaximumEventAgeInSeconds\":86400},\"AppSyncParameters\":{\"GraphQLOperation\":\"query{x}\"}}]}");
    OK("CreateConnection",
       "{\"Name\":\"c\",\"Description\":\"d\",\"AuthorizationType\":\"OAUTH_CLIENT_CREDENTIALS\",\"AuthParameters\":"
       "{\"OAuthParameters\":{\"ClientParameters\":{\"ClientID\":\"id\",\"ClientSecret\":\"s\"},"
       "\"AuthorizationEndpoint\":\"https://auth.example.com/token\",\"HttpMethod\":\"POST\","
       "\"OAuthHttpParameters\":{\"HeaderParameters\":[{\"Key\":\"X-A\",\"Value\":\"b\",\"IsValueSecret\":true}],"
       "\"QueryStringParameters\":[{\"Key\":\"q\",\"Value\":\"v\"}],\"BodyParameters\":[{\"Key\":\"k\","
       "\"Value\":\"v\"}]}},\"ConnectivityParameters\":{\"ResourceParameters\":{\"ResourceConfigurationArn\":"
       "\"\"}}},\"KmsKeyIdentifier\":\"k\"}");
    OK("CreateApiDestination", "{\"Name\":\"d\",\"ConnectionArn\":\"arn:aws:events:us-east-1:123456789012:"
                               "connection/c/abc-1\",\"InvocationEndpoint\":\"https://example.com/x\","
                               "\"HttpMethod\":\"GET\",\"InvocationRateLimitPerSecond\":300}");
    /* unknown members ignored; null = absent */
    OK("DeleteRule", "{\"Name\":\"r\",\"Whatever\":[1,2,{}],\"EventBusName\":null,\"Force\":null}");
    OK("PutTargets", "{\"Rule\":\"r\",\"Targets\":[{\"Id\":\"t\",\"Arn\":\"a\",\"InputTransformer\":null,"
                     "\"Unknown\":5}]}");
    /* boundaries */
    OK("ListRules", "{\"Limit\":1}");
    OK("ListRules", "{\"Limit\":100}");
    OK("ListRules", "{\"Limit\":5.0}");
    /* 64 code points of 2-byte characters are not too long... but fail the pattern; lengths in code points */
    OK("TagResource", "{\"ResourceARN\":\"a\",\"Tags\":[{\"Key\":\"\\u00e9\\u00e9\",\"Value\":\"\"}]}");
    {
        /* a 128-code-point key of 2-byte chars: 256 bytes but within the limit */
        char buf[2048];
        int n = snprintf(buf, sizeof buf, "{\"ResourceARN\":\"a\",\"TagKeys\":[\"");
        for (int i = 0; i < 128; i++)
            n += snprintf(buf + n, sizeof buf - (size_t)n, "\xc3\xa9");
        snprintf(buf + n, sizeof buf - (size_t)n, "\"]}");
        OK("UntagResource", buf);
    }
    CHECK(eb_shape_known("PutRule"));
    CHECK(eb_shape_known("RemovePermission"));
    CHECK(!eb_shape_known("CreateArchive"));
    CHECK(!eb_shape_known("putrule"));
    CHECK(!eb_shape_known(NULL));
    /* unknown operation: nothing to check (but the body is still an object) */
    OK("CreateArchive", "{\"ArchiveName\":5}");
    SER("CreateArchive", "[]", "Start of list found where not expected.");
}

/* ---- each constraint kind ---------------------------------------------------- */

static void test_constraints(void)
{
    /* required */
    VAL("DeleteRule", "{}",
        "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null");
    VAL("DeleteRule", "{\"Name\":null}",
        "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null");
    /* pattern */
    VAL("DescribeRule", "{\"Name\":\"a b\"}",
        "1 validation error detected: Value 'a b' at 'name' failed to satisfy constraint: Member must satisfy "
        "regular expression pattern: [\\.\\-_A-Za-z0-9]+");
    /* max length */
    VAL("DescribeRule", "{\"Name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
        "1 validation error detected: Value 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' at "
        "'name' failed to satisfy constraint: Member must have length less than or equal to 64");
    /* min length: empty string also fails the pattern (pattern first) */
    VAL("DescribeRule", "{\"Name\":\"\"}",
        "2 validation errors detected: Value '' at 'name' failed to satisfy constraint: Member must satisfy "
        "regular expression pattern: [\\.\\-_A-Za-z0-9]+; Value '' at 'name' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1");
    VAL("ListTagsForResource", "{\"ResourceARN\":\"\"}",
        "1 validation error detected: Value '' at 'resourceARN' failed to satisfy constraint: Member must have "
        "length greater than or equal to 1");
    /* enum */
    VAL("PutRule", "{\"Name\":\"r\",\"State\":\"enabled\"}",
        "1 validation error detected: Value 'enabled' at 'state' failed to satisfy constraint: Member must "
        "satisfy enum value set: [ENABLED, DISABLED, ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS]");
    /* int range */
    VAL("ListRules", "{\"Limit\":0}",
        "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must have value "
        "greater than or equal to 1");
    VAL("ListEventBuses", "{\"Limit\":101}",
        "1 validation error detected: Value '101' at 'limit' failed to satisfy constraint: Member must have value "
        "less than or equal to 100");
    VAL("ListEventBuses", "{\"Limit\":-3.7}",
        "1 validation error detected: Value '-3' at 'limit' failed to satisfy constraint: Member must have value "
        "greater than or equal to 1");
    /* list length */
    VAL("PutTargets", "{\"Rule\":\"r\",\"Targets\":[]}",
        "1 validation error detected: Value '[]' at 'targets' failed to satisfy constraint: Member must have "
        "length greater than or equal to 1");
    VAL("PutEvents", "{\"Entries\":[]}",
        "1 validation error detected: Value '[]' at 'entries' failed to satisfy constraint: Member must have "
        "length greater than or equal to 1");
    /* nested structure in a list: 1-based .member paths */
    VAL("PutTargets", "{\"Rule\":\"r\",\"Targets\":[{\"Id\":\"ok\",\"Arn\":\"a\"},{\"Id\":\"x\"}]}",
        "1 validation error detected: Value null at 'targets.2.member.arn' failed to satisfy constraint: Member "
        "must not be null");
    VAL("PutTargets",
        "{\"Rule\":\"r\",\"Targets\":[{\"Id\":\"t\",\"Arn\":\"a\",\"RetryPolicy\":{\"MaximumRetryAttempts\":186,"
        "\"MaximumEventAgeInSeconds\":59},\"InputTransformer\":{}}]}",
        "3 validation errors detected: Value null at 'targets.1.member.inputTransformer.inputTemplate' failed to "
        "satisfy constraint: Member must not be null; Value '186' at "
        "'targets.1.member.retryPolicy.maximumRetryAttempts' failed to satisfy constraint: Member must have value "
        "less than or equal to 185; Value '59' at 'targets.1.member.retryPolicy.maximumEventAgeInSeconds' failed "
        "to satisfy constraint: Member must have value greater than or equal to 60");
    VAL("PutTargets",
        "{\"Rule\":\"r\",\"Targets\":[{\"Id\":\"t\",\"Arn\":\"a\",\"EcsParameters\":{\"TaskDefinitionArn\":\"x\","
        "\"NetworkConfiguration\":{\"awsvpcConfiguration\":{\"AssignPublicIp\":\"YES\"}}}}]}",
        "2 validation errors detected: Value null at "
        "'targets.1.member.ecsParameters.networkConfiguration.awsvpcConfiguration.subnets' failed to satisfy "
        "constraint: Member must not be null; Value 'YES' at "
        "'targets.1.member.ecsParameters.networkConfiguration.awsvpcConfiguration.assignPublicIp' failed to "
        "satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED]");
    VAL("CreateEventBus", "{\"Name\":\"b\",\"Tags\":[{\"Key\":\"k\"},{\"Value\":\"v\"}]}",
        "2 validation errors detected: Value null at 'tags.1.member.value' failed to satisfy constraint: Member "
        "must not be null; Value null at 'tags.2.member.key' failed to satisfy constraint: Member must not be "
        "null");
    VAL("CreateEventBus", "{\"Name\":\"b\",\"Tags\":[null]}",
        "1 validation error detected: Value null at 'tags.1.member' failed to satisfy constraint: Member must not "
        "be null");
    VAL("CreateEventBus", "{\"Name\":\"b\",\"LogConfig\":{\"IncludeDetail\":\"ALL\"}}",
        "1 validation error detected: Value 'ALL' at 'logConfig.includeDetail' failed to satisfy constraint: "
        "Member must satisfy enum value set: [NONE, FULL]");
    /* list of scalars: one violation for the list */
    VAL("RemoveTargets", "{\"Rule\":\"r\",\"Ids\":[\"ok\",\"not ok\",\"\"]}",
        "1 validation error detected: Value '[ok, not ok, ]' at 'ids' failed to satisfy constraint: Member must "
        "satisfy constraint: [Member must have length less than or equal to 64, Member must have length greater "
        "than or equal to 1, Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+]");
    VAL("UntagResource", "{\"ResourceARN\":\"a\",\"TagKeys\":[\"\"]}",
        "1 validation error detected: Value '[]' at 'tagKeys' failed to satisfy constraint: Member must satisfy "
        "constraint: [Member must have length less than or equal to 128, Member must have length greater than or "
        "equal to 1]");
    VAL("UntagResource", "{\"ResourceARN\":\"a\",\"TagKeys\":[\"a\",null]}",
        "1 validation error detected: Value null at 'tagKeys.2.member' failed to satisfy constraint: Member must "
        "not be null");
    /* maps */
    VAL("PutTargets",
        "{\"Rule\":\"r\",\"Targets\":[{\"Id\":\"t\",\"Arn\":\"a\",\"InputTransformer\":{\"InputPathsMap\":{"
        "\"bad key\":\"$.a\"},\"InputTemplate\":\"x\"}}]}",
        "1 validation error detected: Value '{bad key=$.a}' at 'targets.1.member.inputTransformer.inputPathsMap' "
        "failed to satisfy constraint: Map keys must satisfy constraint: [Member must have length less than or "
        "equal to 256, Member must have length greater than or equal to 1, Member must satisfy regular expression "
        "pattern: [A-Za-z0-9\\_\\-]+]");
    VAL("PutTargets",
        "{\"Rule\":\"r\",\"Targets\":[{\"Id\":\"t\",\"Arn\":\"a\",\"HttpParameters\":{\"HeaderParameters\":{"
        "\"ok\":\"\\u0001\"},\"PathParameterValues\":[\" \"]}}]}",
        "2 validation errors detected: Value '[ ]' at 'targets.1.member.httpParameters.pathParameterValues' "
        "failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy regular expression "
        "pattern: ^(?!\\s*$).+]; Value '{ok=\001}' at 'targets.1.member.httpParameters.headerParameters' failed "
        "to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to "
        "512, Member must satisfy regular expression pattern: ^[ \\t]*[\\x20-\\x7E]+([ \\t]+[\\x20-\\x7E]+)*[ "
        "\\t]*$]");
    {
        /* map entry count: 101 InputPathsMap entries */
        eb_buf b = {0};
        eb_buf_puts(&b, "{\"Rule\":\"r\",\"Targets\":[{\"Id\":\"t\",\"Arn\":\"a\",\"InputTransformer\":{"
                        "\"InputTemplate\":\"x\",\"InputPathsMap\":{");
        for (int i = 0; i < 101; i++)
            eb_buf_printf(&b, "%s\"k%d\":\"$\"", i ? "," : "", i);
        eb_buf_puts(&b, "}}}]}");
        CHECK(run("PutTargets", b.p) == 1);
        CHECK_STR(last_code, "ValidationException");
        const char *tail = "' at 'targets.1.member.inputTransformer.inputPathsMap' failed to satisfy constraint: "
                           "Member must have length less than or equal to 100";
        size_t lm = strlen(last_msg), lt = strlen(tail);
        CHECK(lm > lt && strcmp(last_msg + lm - lt, tail) == 0);
        CHECK(strncmp(last_msg, "1 validation error detected: Value '{k0=$, k1=$, ", 49) == 0);
        eb_buf_free(&b);
    }
    /* sensitive members print no value */
    VAL("CreateConnection",
        "{\"Name\":\"c\",\"AuthorizationType\":\"BASIC\",\"AuthParameters\":{\"BasicAuthParameters\":{"
        "\"Username\":\"u:x\",\"Password\":\"p:w\"}}}",
        "2 validation errors detected: Value 'u:x' at 'authParameters.basicAuthParameters.username' failed to "
        "satisfy constraint: Member must satisfy regular expression pattern: "
        "^[ \\t]*[^\\x00-\\x1F:\\x7F]+([ \\t]+[^\\x00-\\x1F:\\x7F]+)*[ \\t]*$; Value at "
        "'authParameters.basicAuthParameters.password' failed to satisfy constraint: Member must satisfy regular "
        "expression pattern: ^[ \\t]*[^\\x00-\\x1F:\\x7F]+([ \\t]+[^\\x00-\\x1F:\\x7F]+)*[ \\t]*$");
    /* length in code points: 65 x 'é' is 65 characters */
    {
        eb_buf b = {0};
        eb_buf_puts(&b, "{\"Name\":\"");
        for (int i = 0; i < 65; i++)
            eb_buf_puts(&b, "\\u00e9");
        eb_buf_puts(&b, "\"}");
        CHECK(run("EnableRule", b.p) == 1);
        CHECK(strstr(last_msg, "2 validation errors detected: ") == last_msg);
        CHECK(strstr(last_msg, "Member must have length less than or equal to 64") != NULL);
        eb_buf_free(&b);
    }
    /* timestamps render like java.util.Date in the Entries list */
    {
        eb_buf b = {0};
        eb_buf_puts(&b, "{\"Entries\":[");
        for (int i = 0; i < 11; i++)
            eb_buf_printf(&b, "%s{\"Time\":1704164645.5,\"Resources\":[\"r1\",\"r2\"],\"Source\":\"s\"}",
                          i ? "," : "");
        eb_buf_puts(&b, "]}");
        CHECK(run("PutEvents", b.p) == 1);
        CHECK(strncmp(last_msg,
                      "1 validation error detected: Value '[PutEventsRequestEntry(time=Tue Jan 02 03:04:05 UTC 2024, "
                      "source=s, resources=[r1, r2], detailType=null, detail=null, eventBusName=null, "
                      "traceHeader=null, kmsKeyIdentifier=null, internalMetadata=null), PutEventsRequestEntry(",
                      260) == 0);
        eb_buf_free(&b);
    }
    /* EndpointId, PutEvents entry bus pattern (no '/') */
    VAL("PutEvents", "{\"Entries\":[{\"EventBusName\":\"a/b\"}],\"EndpointId\":\"nodot\"}",
        "2 validation errors detected: Value 'a/b' at 'entries.1.member.eventBusName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
        "(arn:aws[\\w-]*:events:[a-z]+-[a-z]+-[\\w-]+:[0-9]{12}:event-bus\\/)?[\\.\\-_A-Za-z0-9]+; Value 'nodot' "
        "at 'endpointId' failed to satisfy constraint: Member must satisfy regular expression pattern: "
        "^[A-Za-z0-9\\-]+[\\.][A-Za-z0-9\\-]+$");
    VAL("PutPermission", "{\"Principal\":\"1234567890123\",\"Action\":\"sqs:Send\"}",
        "3 validation errors detected: Value 'sqs:Send' at 'action' failed to satisfy constraint: Member must "
        "satisfy regular expression pattern: events:[a-zA-Z]+; Value '1234567890123' at 'principal' failed to "
        "satisfy constraint: Member must satisfy regular expression pattern: (\\d{12}|\\*); Value '1234567890123' "
        "at 'principal' failed to satisfy constraint: Member must have length less than or equal to 12");
    VAL("PutPermission", "{\"Condition\":{\"Type\":\"StringEquals\"}}",
        "2 validation errors detected: Value null at 'condition.key' failed to satisfy constraint: Member must not "
        "be null; Value null at 'condition.value' failed to satisfy constraint: Member must not be null");
}

/* ---- several errors, document order ----------------------------------------- */

static void test_multiple(void)
{
    VAL("PutRule",
        "{\"EventBusName\":\"bad bus\",\"State\":\"ON\",\"Tags\":[{\"Key\":\"\",\"Value\":\"v\"}],"
        "\"Name\":\"bad name!\"}",
        "4 validation errors detected: Value 'bad name!' at 'name' failed to satisfy constraint: Member must "
        "satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+; Value 'ON' at 'state' failed to satisfy "
        "constraint: Member must satisfy enum value set: [ENABLED, DISABLED, "
        "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS]; Value '' at 'tags.1.member.key' failed to satisfy "
        "constraint: Member must have length greater than or equal to 1; Value 'bad bus' at 'eventBusName' failed "
        "to satisfy constraint: Member must satisfy regular expression pattern: "
        "(arn:aws[\\w-]*:events:[a-z]+-[a-z]+-[\\w-]+:[0-9]{12}:event-bus\\/)?[/\\.\\-_A-Za-z0-9]+");
    VAL("TestEventPattern", "{}",
        "2 validation errors detected: Value null at 'eventPattern' failed to satisfy constraint: Member must not "
        "be null; Value null at 'event' failed to satisfy constraint: Member must not be null");
    VAL("PutTargets", "{}",
        "2 validation errors detected: Value null at 'rule' failed to satisfy constraint: Member must not be "
        "null; Value null at 'targets' failed to satisfy constraint: Member must not be null");
}

/* ---- wrong JSON types -------------------------------------------------------- */

static void test_types(void)
{
    SER("DescribeRule", "{\"Name\":5}", "NUMBER_VALUE can not be converted to a String");
    SER("DescribeRule", "{\"Name\":1.5}", "NUMBER_VALUE can not be converted to a String");
    SER("DescribeRule", "{\"Name\":true}", "TRUE_VALUE can not be converted to a String");
    SER("DescribeRule", "{\"Name\":{}}", "Start of structure or map found where not expected.");
    SER("DescribeRule", "{\"Name\":[\"r\"]}", "Start of list found where not expected.");
    SER("ListRules", "{\"Limit\":\"10\"}", "STRING_VALUE can not be converted to an Integer");
    SER("ListRules", "{\"Limit\":false}", "FALSE_VALUE can not be converted to an Integer");
    SER("ListRules", "{\"Limit\":4294967296}", "NUMBER_VALUE can not be converted to an Integer");
    SER("ListRules", "{\"Limit\":1e10}", "NUMBER_VALUE can not be converted to an Integer");
    SER("DeleteRule", "{\"Name\":\"r\",\"Force\":\"true\"}", "STRING_VALUE can not be converted to a Boolean");
    SER("DeleteRule", "{\"Name\":\"r\",\"Force\":1}", "NUMBER_VALUE can not be converted to a Boolean");
    SER("PutEvents", "{\"Entries\":[{\"Time\":\"2024-01-01\"}]}", "STRING_VALUE can not be converted to a Timestamp");
    SER("PutEvents", "{\"Entries\":{}}", "Start of structure or map found where not expected.");
    SER("PutEvents", "{\"Entries\":\"x\"}", "STRING_VALUE can not be converted to a List");
    SER("PutEvents", "{\"Entries\":[[]]}", "Start of list found where not expected.");
    SER("PutEvents", "{\"Entries\":[5]}", "NUMBER_VALUE can not be converted to a Structure");
    SER("RemoveTargets", "{\"Rule\":\"r\",\"Ids\":[\"a\",{}]}", "Start of structure or map found where not expected.");
    SER("RemoveTargets", "{\"Rule\":\"r\",\"Ids\":[\"a\",7]}", "NUMBER_VALUE can not be converted to a String");
    SER("CreateEventBus", "{\"Name\":\"b\",\"DeadLetterConfig\":[]}", "Start of list found where not expected.");
    SER("CreateEventBus", "{\"Name\":\"b\",\"DeadLetterConfig\":\"arn\"}",
        "STRING_VALUE can not be converted to a Structure");
    SER("PutTargets",
        "{\"Rule\":\"r\",\"Targets\":[{\"Id\":\"t\",\"Arn\":\"a\",\"InputTransformer\":{\"InputTemplate\":\"x\","
        "\"InputPathsMap\":{\"a\":1}}}]}",
        "NUMBER_VALUE can not be converted to a String");
    SER("PutTargets",
        "{\"Rule\":\"r\",\"Targets\":[{\"Id\":\"t\",\"Arn\":\"a\",\"InputTransformer\":{\"InputTemplate\":\"x\","
        "\"InputPathsMap\":[]}}]}",
        "Start of list found where not expected.");
    /* a wrong type wins over validation errors found before it */
    SER("PutRule", "{\"Name\":\"bad name\",\"State\":\"X\",\"Description\":7}",
        "NUMBER_VALUE can not be converted to a String");
    SER("PutTargets", "{\"Targets\":[{\"Id\":\"bad id\"},{\"Id\":\"t\",\"Arn\":[]}]}",
        "Start of list found where not expected.");
    /* the body */
    SER("PutRule", "[]", "Start of list found where not expected.");
    SER("PutRule", "\"x\"", "STRING_VALUE can not be converted to a Structure");
    SER("PutRule", "null", "NULL_VALUE can not be converted to a Structure");
    SER("ListEventBuses", "7", "NUMBER_VALUE can not be converted to a Structure");
    {
        eb_buf m = {0};
        const char *code = NULL;
        CHECK(eb_shape_check("ListEventBuses", NULL, &code, &m) == 1);
        CHECK_STR(code, "SerializationException");
        eb_buf_free(&m);
    }
}

/* ---- the recorded AWS answers -------------------------------------------------- */

static int starts_validation(const char *m)
{
    if (strncmp(m, "1 validation error detected: ", 29) == 0)
        return 1;
    const char *p = m;
    while (*p >= '0' && *p <= '9')
        p++;
    return p > m && strncmp(p, " validation errors detected: ", 29) == 0;
}

static void test_conformance(void)
{
    json_t *lines = load_shared_jsonl("conformance/api-errors.jsonl");
    CHECK(lines != NULL);
    int n_validation = 0, n_pass = 0;
    size_t i;
    json_t *j;
    json_array_foreach(lines, i, j) {
        const char *name = json_string_value(json_object_get(j, "name"));
        const char *op = json_string_value(json_object_get(j, "operation"));
        const char *msg = json_string_value(json_object_get(j, "error_message"));
        const char *want_code = json_string_value(json_object_get(j, "error_code"));
        json_t *req = json_object_get(j, "request");
        eb_buf m = {0};
        const char *code = NULL;
        if (msg && starts_validation(msg)) {
            n_validation++;
            CHECK(eb_shape_known(op));
            int rc = eb_shape_check(op, req, &code, &m);
            CHECK(rc == 1);
            CHECK_STR(code, want_code);
            if (!m.p || strcmp(m.p, msg) != 0)
                fprintf(stderr, "%s:\n  got:  %s\n  want: %s\n", name, m.p ? m.p : "(none)", msg);
            CHECK(m.p && strcmp(m.p, msg) == 0);
        } else if (op && eb_shape_known(op)) {
            /* everything else is about state or semantics: the shape must pass */
            n_pass++;
            int rc = eb_shape_check(op, req, &code, &m);
            if (rc)
                fprintf(stderr, "%s: unexpected %s: %s\n", name, code, m.p);
            CHECK(rc == 0);
        }
        eb_buf_free(&m);
    }
    json_decref(lines);
    printf("shape conformance: %d validation messages compared, %d requests passed unchanged\n", n_validation,
           n_pass);
    CHECK(n_validation == 9);
    CHECK(n_pass >= 60);
}

int main(void)
{
    RUN(test_regex);
    RUN(test_valid_requests);
    RUN(test_constraints);
    RUN(test_multiple);
    RUN(test_types);
    RUN(test_conformance);
    free(last_msg);
    return TEST_REPORT();
}
