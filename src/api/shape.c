/* Request shapes of the operations we serve (reference §2.2, §2.3; values
 * from the service model, botocore 1.43.11) and the checks AWS applies to
 * them before an operation runs.  See shape.h for the contract.
 * Operations: the bus, rule, target, event, tag and permission operations,
 * and the connection and API destination operations (the recorded
 * CreateConnection / CreateApiDestination validation messages in
 * api-errors.jsonl pin down the message format). The HttpsEndpoint pattern
 * does not look at the scheme: http:// URLs pass it as in AWS, whose HTTPS
 * rule is a separate check (core/connections.c makes ours: http or https).
 *
 * Checking order and message format (reference §1.3.3, api-errors.jsonl):
 *  - a wrong JSON type anywhere -> SerializationException (the first one
 *    found, in document order of the shape), no validation messages;
 *  - otherwise every violation, members in the order of the shape, nested
 *    structures depth first:
 *      missing required member   Value null at 'p' ...: Member must not be null
 *      string                    pattern, then max length, then min length
 *                                (the recorded CreateConnection message has
 *                                the pattern before the length), or enum
 *      integer                   Member must have value less/greater than or equal to n
 *      list / map                Member must have length ... (entry count),
 *                                then the elements
 *      list of structures        paths `targets.1.member.id` (1-based)
 *      list of scalars           one violation for the whole list when an
 *                                element fails: "Member must satisfy
 *                                constraint: [<all element constraints>]"
 *      map keys / values         "Map keys must satisfy constraint: [...]",
 *                                "Map value must satisfy constraint: [...]"
 *    Values print like AWS's Java: strings raw, lists `[a, b]`, maps
 *    `{k=v}`, structures `Name(field=value, ...)` (all modelled fields, absent
 *    ones `null`, plus the unmodelled trailing fields AWS prints for
 *    PutEventsRequestEntry), timestamps like java.util.Date
 *    (`Tue Jan 02 03:04:05 UTC 2024`).  Sensitive members (per the model)
 *    omit the value: "Value at 'p' failed ...".
 *    Lengths count Unicode code points.  Integers given as JSON reals are
 *    truncated (Jackson's default coercion); beyond 32 bits they are a
 *    SerializationException.  A null element inside a list is reported as
 *    "Value null at 'p.N.member' ...: Member must not be null"; null map
 *    values are ignored.
 *  - The bracketed constraint lists, the Java renderings other than the
 *    recorded PutEventsRequestEntry one, the order of constraints inside one
 *    member other than pattern-before-length, and all SerializationException
 *    texts are our best reconstruction, not recorded AWS output.
 *
 * Regular expressions: a small Java-syntax subset compiled to an NFA and run
 * as a Pike VM (linear in the input, no backtracking blow-up on patterns
 * like `[ \t]*[\x20-\x7E]+([ \t]+[\x20-\x7E]+)*`).  Whole-string match like
 * Java's Pattern.matches.  Supported: literals, `.`, classes with ranges,
 * negation and escapes (\d \w \s \D \W \S \xhh \uhhhh \t \n \r \f \p{L}
 * \p{Z} \p{N}), groups `( )` and `(?: )`, alternation, `* + ? {n} {n,}
 * {n,m}` (lazy `?` suffix accepted), `^` (start of input), `$` (end of input
 * or before a final line terminator, as in Java), and the negative
 * lookahead `(?! )` (evaluated exactly, by a nested run).
 * Approximations: \p{Z} is exact (all Zs/Zl/Zp code points); \p{N} covers
 * ASCII digits, Latin-1 digits/fractions, the common decimal-digit blocks
 * and number forms, not every Unicode N code point; \p{L} is ASCII letters,
 * ª µ º, and every code point from U+00C0 up that is not \p{Z}, not in our
 * \p{N} set, and not in a punctuation/symbol/mark/private-use block we
 * exclude (so a few non-letters above U+00C0 count as letters). */
#define _POSIX_C_SOURCE 200809L
#include "shape.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ==== the table ============================================================ */

typedef enum { SK_STRING, SK_INT, SK_BOOL, SK_TIMESTAMP, SK_LIST, SK_MAP, SK_STRUCT } sh_kind;

typedef struct sh_shape sh_shape;

typedef struct {
    const char *name; /* wire name */
    const sh_shape *shape;
    int required;
} sh_member;

struct sh_shape {
    const char *name; /* model shape name (printed for structures) */
    sh_kind kind;
    long long min, max;       /* length (string, list, map) or value (int); NA = none */
    const char *pattern;      /* string: model regex */
    const char *const *enums; /* string: allowed values, NULL-terminated, in AWS's print order */
    const sh_shape *member;   /* list element / map value */
    const sh_shape *key;      /* map key */
    const sh_member *members; /* structure */
    size_t nmembers;
    const char *extra; /* structure: printed after the modelled fields */
    int sensitive;
};

#define NA (-1LL)
#define NOPAT NULL
#define REQ 1
#define OPT 0

#define STR(n, lo, hi, pat) \
    static const sh_shape S_##n = {.name = #n, .kind = SK_STRING, .min = lo, .max = hi, .pattern = pat}
#define STRS(n, lo, hi, pat)                                                                               \
    static const sh_shape S_##n = {                                                                        \
        .name = #n, .kind = SK_STRING, .min = lo, .max = hi, .pattern = pat, .sensitive = 1}
#define ENUM(n, ...)                                                  \
    static const sh_shape S_##n = {.name = #n, .kind = SK_STRING, .min = NA, .max = NA, \
                                   .enums = (const char *const[]){__VA_ARGS__, NULL}}
#define INT(n, lo, hi) static const sh_shape S_##n = {.name = #n, .kind = SK_INT, .min = lo, .max = hi}
#define BOOL(n) static const sh_shape S_##n = {.name = #n, .kind = SK_BOOL, .min = NA, .max = NA}
#define TIMESTAMP(n) static const sh_shape S_##n = {.name = #n, .kind = SK_TIMESTAMP, .min = NA, .max = NA}
#define LIST(n, lo, hi, el) \
    static const sh_shape S_##n = {.name = #n, .kind = SK_LIST, .min = lo, .max = hi, .member = &S_##el}
#define LISTS(n, lo, hi, el)                                                                        \
    static const sh_shape S_##n = {                                                                 \
        .name = #n, .kind = SK_LIST, .min = lo, .max = hi, .member = &S_##el, .sensitive = 1}
#define MAP(n, lo, hi, k, v)                                                                         \
    static const sh_shape S_##n = {                                                                  \
        .name = #n, .kind = SK_MAP, .min = lo, .max = hi, .key = &S_##k, .member = &S_##v}
#define STRUCTX(n, ex, ...)                                                                         \
    static const sh_member M_##n[] = {__VA_ARGS__};                                                 \
    static const sh_shape S_##n = {.name = #n, .kind = SK_STRUCT, .min = NA, .max = NA,             \
                                   .members = M_##n, .nmembers = sizeof M_##n / sizeof M_##n[0], \
                                   .extra = ex}
#define STRUCT(n, ...) STRUCTX(n, NULL, __VA_ARGS__)

/* Generated from the model's input shapes (dependency order). Enum values in
 * the model's order, except ApiDestinationHttpMethod, which uses the order of
 * the recorded AWS message. */
STR(EventBusName, 1, 256, "[/\\.\\-_A-Za-z0-9]+");
STR(EventSourceName, 1, 256, "aws\\.partner(/[\\.\\-_A-Za-z0-9]+){2,}");
STR(EventBusDescription, NA, 512, NOPAT);
STR(KmsKeyIdentifier, NA, 2048, "^[a-zA-Z0-9_\\-/:]*$");
STR(ResourceArn, 1, 1600, NOPAT);
STRUCT(DeadLetterConfig, {"Arn", &S_ResourceArn, OPT});
ENUM(IncludeDetail, "NONE", "FULL");
ENUM(Level, "OFF", "ERROR", "INFO", "TRACE");
STRUCT(LogConfig, {"IncludeDetail", &S_IncludeDetail, OPT}, {"Level", &S_Level, OPT});
STR(TagKey, 1, 128, NOPAT);
STR(TagValue, 0, 256, NOPAT);
STRUCT(Tag, {"Key", &S_TagKey, REQ}, {"Value", &S_TagValue, REQ});
LIST(TagList, NA, NA, Tag);
STRUCT(CreateEventBusRequest,
       {"Name", &S_EventBusName, REQ},
       {"EventSourceName", &S_EventSourceName, OPT},
       {"Description", &S_EventBusDescription, OPT},
       {"KmsKeyIdentifier", &S_KmsKeyIdentifier, OPT},
       {"DeadLetterConfig", &S_DeadLetterConfig, OPT},
       {"LogConfig", &S_LogConfig, OPT},
       {"Tags", &S_TagList, OPT});
STR(EventBusNameOrArn, 1, 1600, "(arn:aws[\\w-]*:events:[a-z]+-[a-z]+-[\\w-]+:[0-9]{12}:event-bus\\/)?[/\\.\\-_A-Za-z0-9]+");
STRUCT(DescribeEventBusRequest, {"Name", &S_EventBusNameOrArn, OPT});
STR(NextToken, 1, 2048, NOPAT);
INT(LimitMax100, 1, 100);
STRUCT(ListEventBusesRequest,
       {"NamePrefix", &S_EventBusName, OPT},
       {"NextToken", &S_NextToken, OPT},
       {"Limit", &S_LimitMax100, OPT});
STRUCT(UpdateEventBusRequest,
       {"Name", &S_EventBusName, OPT},
       {"KmsKeyIdentifier", &S_KmsKeyIdentifier, OPT},
       {"Description", &S_EventBusDescription, OPT},
       {"DeadLetterConfig", &S_DeadLetterConfig, OPT},
       {"LogConfig", &S_LogConfig, OPT});
STRUCT(DeleteEventBusRequest, {"Name", &S_EventBusName, REQ});
STR(RuleName, 1, 64, "[\\.\\-_A-Za-z0-9]+");
STR(ScheduleExpression, NA, 256, NOPAT);
STR(EventPattern, NA, 4096, NOPAT);
ENUM(RuleState, "ENABLED", "DISABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS");
STR(RuleDescription, NA, 512, NOPAT);
STR(RoleArn, 1, 1600, NOPAT);
STRUCT(PutRuleRequest,
       {"Name", &S_RuleName, REQ},
       {"ScheduleExpression", &S_ScheduleExpression, OPT},
       {"EventPattern", &S_EventPattern, OPT},
       {"State", &S_RuleState, OPT},
       {"Description", &S_RuleDescription, OPT},
       {"RoleArn", &S_RoleArn, OPT},
       {"Tags", &S_TagList, OPT},
       {"EventBusName", &S_EventBusNameOrArn, OPT});
STRUCT(DescribeRuleRequest, {"Name", &S_RuleName, REQ}, {"EventBusName", &S_EventBusNameOrArn, OPT});
STRUCT(ListRulesRequest,
       {"NamePrefix", &S_RuleName, OPT},
       {"EventBusName", &S_EventBusNameOrArn, OPT},
       {"NextToken", &S_NextToken, OPT},
       {"Limit", &S_LimitMax100, OPT});
STRUCT(EnableRuleRequest, {"Name", &S_RuleName, REQ}, {"EventBusName", &S_EventBusNameOrArn, OPT});
STRUCT(DisableRuleRequest, {"Name", &S_RuleName, REQ}, {"EventBusName", &S_EventBusNameOrArn, OPT});
BOOL(Boolean);
STRUCT(DeleteRuleRequest,
       {"Name", &S_RuleName, REQ},
       {"EventBusName", &S_EventBusNameOrArn, OPT},
       {"Force", &S_Boolean, OPT});
STR(TargetArn, 1, 1600, NOPAT);
STRUCT(ListRuleNamesByTargetRequest,
       {"TargetArn", &S_TargetArn, REQ},
       {"EventBusName", &S_EventBusNameOrArn, OPT},
       {"NextToken", &S_NextToken, OPT},
       {"Limit", &S_LimitMax100, OPT});
STR(TargetId, 1, 64, "[\\.\\-_A-Za-z0-9]+");
STR(TargetInput, NA, 8192, NOPAT);
STR(TargetInputPath, NA, 256, NOPAT);
STR(InputTransformerPathKey, 1, 256, "[A-Za-z0-9\\_\\-]+");
MAP(TransformerPaths, NA, 100, InputTransformerPathKey, TargetInputPath);
STR(TransformerInput, 1, 8192, NOPAT);
STRUCT(InputTransformer,
       {"InputPathsMap", &S_TransformerPaths, OPT},
       {"InputTemplate", &S_TransformerInput, REQ});
STR(TargetPartitionKeyPath, NA, 256, NOPAT);
STRUCT(KinesisParameters, {"PartitionKeyPath", &S_TargetPartitionKeyPath, REQ});
STR(RunCommandTargetKey, 1, 128, "^[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*$");
STR(RunCommandTargetValue, 1, 256, NOPAT);
LIST(RunCommandTargetValues, 1, 50, RunCommandTargetValue);
STRUCT(RunCommandTarget, {"Key", &S_RunCommandTargetKey, REQ}, {"Values", &S_RunCommandTargetValues, REQ});
LIST(RunCommandTargets, 1, 5, RunCommandTarget);
STRUCT(RunCommandParameters, {"RunCommandTargets", &S_RunCommandTargets, REQ});
STR(Arn, 1, 1600, NOPAT);
INT(LimitMin1, 1, NA);
ENUM(LaunchType, "EC2", "FARGATE", "EXTERNAL");
STR(String, NA, NA, NOPAT);
LIST(StringList, NA, NA, String);
ENUM(AssignPublicIp, "ENABLED", "DISABLED");
STRUCT(AwsVpcConfiguration,
       {"Subnets", &S_StringList, REQ},
       {"SecurityGroups", &S_StringList, OPT},
       {"AssignPublicIp", &S_AssignPublicIp, OPT});
STRUCT(NetworkConfiguration, {"awsvpcConfiguration", &S_AwsVpcConfiguration, OPT});
STR(CapacityProvider, 1, 255, NOPAT);
INT(CapacityProviderStrategyItemWeight, 0, 1000);
INT(CapacityProviderStrategyItemBase, 0, 100000);
STRUCT(CapacityProviderStrategyItem,
       {"capacityProvider", &S_CapacityProvider, REQ},
       {"weight", &S_CapacityProviderStrategyItemWeight, OPT},
       {"base", &S_CapacityProviderStrategyItemBase, OPT});
LIST(CapacityProviderStrategy, NA, 6, CapacityProviderStrategyItem);
ENUM(PlacementConstraintType, "distinctInstance", "memberOf");
STR(PlacementConstraintExpression, NA, 2000, NOPAT);
STRUCT(PlacementConstraint,
       {"type", &S_PlacementConstraintType, OPT},
       {"expression", &S_PlacementConstraintExpression, OPT});
LIST(PlacementConstraints, NA, 10, PlacementConstraint);
ENUM(PlacementStrategyType, "random", "spread", "binpack");
STR(PlacementStrategyField, NA, 255, NOPAT);
STRUCT(PlacementStrategy, {"type", &S_PlacementStrategyType, OPT}, {"field", &S_PlacementStrategyField, OPT});
LIST(PlacementStrategies, NA, 5, PlacementStrategy);
ENUM(PropagateTags, "TASK_DEFINITION");
STR(ReferenceId, NA, 1024, NOPAT);
STRUCT(EcsParameters,
       {"TaskDefinitionArn", &S_Arn, REQ},
       {"TaskCount", &S_LimitMin1, OPT},
       {"LaunchType", &S_LaunchType, OPT},
       {"NetworkConfiguration", &S_NetworkConfiguration, OPT},
       {"PlatformVersion", &S_String, OPT},
       {"Group", &S_String, OPT},
       {"CapacityProviderStrategy", &S_CapacityProviderStrategy, OPT},
       {"EnableECSManagedTags", &S_Boolean, OPT},
       {"EnableExecuteCommand", &S_Boolean, OPT},
       {"PlacementConstraints", &S_PlacementConstraints, OPT},
       {"PlacementStrategy", &S_PlacementStrategies, OPT},
       {"PropagateTags", &S_PropagateTags, OPT},
       {"ReferenceId", &S_ReferenceId, OPT},
       {"Tags", &S_TagList, OPT});
INT(Integer, NA, NA);
STRUCT(BatchArrayProperties, {"Size", &S_Integer, OPT});
STRUCT(BatchRetryStrategy, {"Attempts", &S_Integer, OPT});
STRUCT(BatchParameters,
       {"JobDefinition", &S_String, REQ},
       {"JobName", &S_String, REQ},
       {"ArrayProperties", &S_BatchArrayProperties, OPT},
       {"RetryStrategy", &S_BatchRetryStrategy, OPT});
STR(MessageGroupId, NA, 100, NOPAT);
STRUCT(SqsParameters, {"MessageGroupId", &S_MessageGroupId, OPT});
STR(PathParameter, NA, NA, "^(?!\\s*$).+");
LIST(PathParameterList, NA, NA, PathParameter);
STR(HeaderKey, NA, 512, "^[!#$%&'*+-.^_`|~0-9a-zA-Z]+$");
STR(HeaderValue, NA, 512, "^[ \\t]*[\\x20-\\x7E]+([ \\t]+[\\x20-\\x7E]+)*[ \\t]*$");
MAP(HeaderParametersMap, NA, NA, HeaderKey, HeaderValue);
STR(QueryStringKey, NA, 512, "[^\\x00-\\x1F\\x7F]+");
STR(QueryStringValue, NA, 512, "[^\\x00-\\x09\\x0B\\x0C\\x0E-\\x1F\\x7F]+");
MAP(QueryStringParametersMap, NA, NA, QueryStringKey, QueryStringValue);
STRUCT(HttpParameters,
       {"PathParameterValues", &S_PathParameterList, OPT},
       {"HeaderParameters", &S_HeaderParametersMap, OPT},
       {"QueryStringParameters", &S_QueryStringParametersMap, OPT});
STR(RedshiftSecretManagerArn, 1, 1600, "(^arn:aws([a-z]|\\-)*:secretsmanager:[a-z0-9-.]+:.*)|(\\$(\\.[\\w_-]+(\\[(\\d+|\\*)\\])*)*)");
STR(Database, 1, 64, NOPAT);
STR(DbUser, 1, 128, NOPAT);
STRS(Sql, 1, 100000, NOPAT);
STR(StatementName, 1, 500, NOPAT);
LISTS(Sqls, 0, 40, Sql);
STRUCT(RedshiftDataParameters,
       {"SecretManagerArn", &S_RedshiftSecretManagerArn, OPT},
       {"Database", &S_Database, REQ},
       {"DbUser", &S_DbUser, OPT},
       {"Sql", &S_Sql, OPT},
       {"StatementName", &S_StatementName, OPT},
       {"WithEvent", &S_Boolean, OPT},
       {"Sqls", &S_Sqls, OPT});
STR(SageMakerPipelineParameterName, 1, 256, "^[a-zA-Z0-9](-*[a-zA-Z0-9])*$");
STR(SageMakerPipelineParameterValue, NA, 1024, NOPAT);
STRUCT(SageMakerPipelineParameter,
       {"Name", &S_SageMakerPipelineParameterName, REQ},
       {"Value", &S_SageMakerPipelineParameterValue, REQ});
LIST(SageMakerPipelineParameterList, 0, 200, SageMakerPipelineParameter);
STRUCT(SageMakerPipelineParameters, {"PipelineParameterList", &S_SageMakerPipelineParameterList, OPT});
INT(MaximumRetryAttempts, 0, 185);
INT(MaximumEventAgeInSeconds, 60, 86400);
STRUCT(RetryPolicy,
       {"MaximumRetryAttempts", &S_MaximumRetryAttempts, OPT},
       {"MaximumEventAgeInSeconds", &S_MaximumEventAgeInSeconds, OPT});
STRS(GraphQLOperation, 1, 1048576, NOPAT);
STRUCT(AppSyncParameters, {"GraphQLOperation", &S_GraphQLOperation, OPT});
STRUCT(Target,
       {"Id", &S_TargetId, REQ},
       {"Arn", &S_TargetArn, REQ},
       {"RoleArn", &S_RoleArn, OPT},
       {"Input", &S_TargetInput, OPT},
       {"InputPath", &S_TargetInputPath, OPT},
       {"InputTransformer", &S_InputTransformer, OPT},
       {"KinesisParameters", &S_KinesisParameters, OPT},
       {"RunCommandParameters", &S_RunCommandParameters, OPT},
       {"EcsParameters", &S_EcsParameters, OPT},
       {"BatchParameters", &S_BatchParameters, OPT},
       {"SqsParameters", &S_SqsParameters, OPT},
       {"HttpParameters", &S_HttpParameters, OPT},
       {"RedshiftDataParameters", &S_RedshiftDataParameters, OPT},
       {"SageMakerPipelineParameters", &S_SageMakerPipelineParameters, OPT},
       {"DeadLetterConfig", &S_DeadLetterConfig, OPT},
       {"RetryPolicy", &S_RetryPolicy, OPT},
       {"AppSyncParameters", &S_AppSyncParameters, OPT});
LIST(TargetList, 1, 100, Target);
STRUCT(PutTargetsRequest,
       {"Rule", &S_RuleName, REQ},
       {"EventBusName", &S_EventBusNameOrArn, OPT},
       {"Targets", &S_TargetList, REQ});
LIST(TargetIdList, 1, 100, TargetId);
STRUCT(RemoveTargetsRequest,
       {"Rule", &S_RuleName, REQ},
       {"EventBusName", &S_EventBusNameOrArn, OPT},
       {"Ids", &S_TargetIdList, REQ},
       {"Force", &S_Boolean, OPT});
STRUCT(ListTargetsByRuleRequest,
       {"Rule", &S_RuleName, REQ},
       {"EventBusName", &S_EventBusNameOrArn, OPT},
       {"NextToken", &S_NextToken, OPT},
       {"Limit", &S_LimitMax100, OPT});
TIMESTAMP(EventTime);
STR(EventResource, NA, 2048, NOPAT);
LIST(EventResourceList, NA, NA, EventResource);
STR(NonPartnerEventBusNameOrArn, 1, 1600, "(arn:aws[\\w-]*:events:[a-z]+-[a-z]+-[\\w-]+:[0-9]{12}:event-bus\\/)?[\\.\\-_A-Za-z0-9]+");
STR(TraceHeader, 1, 500, NOPAT);
STRUCTX(PutEventsRequestEntry, ", kmsKeyIdentifier=null, internalMetadata=null",
       {"Time", &S_EventTime, OPT},
       {"Source", &S_String, OPT},
       {"Resources", &S_EventResourceList, OPT},
       {"DetailType", &S_String, OPT},
       {"Detail", &S_String, OPT},
       {"EventBusName", &S_NonPartnerEventBusNameOrArn, OPT},
       {"TraceHeader", &S_TraceHeader, OPT});
LIST(PutEventsRequestEntryList, 1, 10, PutEventsRequestEntry);
STR(EndpointId, 1, 50, "^[A-Za-z0-9\\-]+[\\.][A-Za-z0-9\\-]+$");
STRUCT(PutEventsRequest, {"Entries", &S_PutEventsRequestEntryList, REQ}, {"EndpointId", &S_EndpointId, OPT});
STRUCT(TestEventPatternRequest, {"EventPattern", &S_EventPattern, REQ}, {"Event", &S_String, REQ});
STRUCT(TagResourceRequest, {"ResourceARN", &S_Arn, REQ}, {"Tags", &S_TagList, REQ});
LIST(TagKeyList, NA, NA, TagKey);
STRUCT(UntagResourceRequest, {"ResourceARN", &S_Arn, REQ}, {"TagKeys", &S_TagKeyList, REQ});
STRUCT(ListTagsForResourceRequest, {"ResourceARN", &S_Arn, REQ});
STR(NonPartnerEventBusName, 1, 256, "[\\.\\-_A-Za-z0-9]+");
STR(Action, 1, 64, "events:[a-zA-Z]+");
STR(Principal, 1, 12, "(\\d{12}|\\*)");
STR(StatementId, 1, 64, "[a-zA-Z0-9-_]+");
STRUCT(Condition, {"Type", &S_String, REQ}, {"Key", &S_String, REQ}, {"Value", &S_String, REQ});
STRUCT(PutPermissionRequest,
       {"EventBusName", &S_NonPartnerEventBusName, OPT},
       {"Action", &S_Action, OPT},
       {"Principal", &S_Principal, OPT},
       {"StatementId", &S_StatementId, OPT},
       {"Condition", &S_Condition, OPT},
       {"Policy", &S_String, OPT});
STRUCT(RemovePermissionRequest,
       {"StatementId", &S_StatementId, OPT},
       {"RemoveAllPermissions", &S_Boolean, OPT},
       {"EventBusName", &S_NonPartnerEventBusName, OPT});
STR(ConnectionName, 1, 64, "[\\.\\-_A-Za-z0-9]+");
STR(ConnectionDescription, NA, 512, ".*");
ENUM(ConnectionAuthorizationType, "BASIC", "OAUTH_CLIENT_CREDENTIALS", "API_KEY");
STR(AuthHeaderParameters, 1, 512, "^[ \\t]*[^\\x00-\\x1F:\\x7F]+([ \\t]+[^\\x00-\\x1F:\\x7F]+)*[ \\t]*$");
STRS(AuthHeaderParametersSensitive, 1, 512, "^[ \\t]*[^\\x00-\\x1F:\\x7F]+([ \\t]+[^\\x00-\\x1F:\\x7F]+)*[ \\t]*$");
STRUCT(CreateConnectionBasicAuthRequestParameters,
       {"Username", &S_AuthHeaderParameters, REQ},
       {"Password", &S_AuthHeaderParametersSensitive, REQ});
STRUCT(CreateConnectionOAuthClientRequestParameters,
       {"ClientID", &S_AuthHeaderParameters, REQ},
       {"ClientSecret", &S_AuthHeaderParametersSensitive, REQ});
STR(HttpsEndpoint, 1, 2048, "^((%[0-9A-Fa-f]{2}|[-()_.!~*';/?:@\\x26=+$,A-Za-z0-9])+)([).!';/?:,])?$");
ENUM(ConnectionOAuthHttpMethod, "GET", "POST", "PUT");
STRS(HeaderValueSensitive, NA, 512, "^[ \\t]*[\\x20-\\x7E]+([ \\t]+[\\x20-\\x7E]+)*[ \\t]*$");
STRUCT(ConnectionHeaderParameter,
       {"Key", &S_HeaderKey, OPT},
       {"Value", &S_HeaderValueSensitive, OPT},
       {"IsValueSecret", &S_Boolean, OPT});
LIST(ConnectionHeaderParametersList, 0, 100, ConnectionHeaderParameter);
STRS(QueryStringValueSensitive, NA, 512, "[^\\x00-\\x09\\x0B\\x0C\\x0E-\\x1F\\x7F]+");
STRUCT(ConnectionQueryStringParameter,
       {"Key", &S_QueryStringKey, OPT},
       {"Value", &S_QueryStringValueSensitive, OPT},
       {"IsValueSecret", &S_Boolean, OPT});
LIST(ConnectionQueryStringParametersList, 0, 100, ConnectionQueryStringParameter);
STRS(SensitiveString, NA, NA, NOPAT);
STRUCT(ConnectionBodyParameter,
       {"Key", &S_String, OPT},
       {"Value", &S_SensitiveString, OPT},
       {"IsValueSecret", &S_Boolean, OPT});
LIST(ConnectionBodyParametersList, 0, 100, ConnectionBodyParameter);
STRUCT(ConnectionHttpParameters,
       {"HeaderParameters", &S_ConnectionHeaderParametersList, OPT},
       {"QueryStringParameters", &S_ConnectionQueryStringParametersList, OPT},
       {"BodyParameters", &S_ConnectionBodyParametersList, OPT});
STRUCT(CreateConnectionOAuthRequestParameters,
       {"ClientParameters", &S_CreateConnectionOAuthClientRequestParameters, REQ},
       {"AuthorizationEndpoint", &S_HttpsEndpoint, REQ},
       {"HttpMethod", &S_ConnectionOAuthHttpMethod, REQ},
       {"OAuthHttpParameters", &S_ConnectionHttpParameters, OPT});
STRUCT(CreateConnectionApiKeyAuthRequestParameters,
       {"ApiKeyName", &S_AuthHeaderParameters, REQ},
       {"ApiKeyValue", &S_AuthHeaderParametersSensitive, REQ});
STR(ResourceConfigurationArn, 0, 2048, "^(?:^arn:[a-z0-9\\-]+:vpc-lattice:[a-zA-Z0-9\\-]+:\\d{12}:resourceconfiguration/rcfg-[0-9a-z]{17}$|^$)");
STRUCT(ConnectivityResourceConfigurationArn, {"ResourceConfigurationArn", &S_ResourceConfigurationArn, REQ});
STRUCT(ConnectivityResourceParameters, {"ResourceParameters", &S_ConnectivityResourceConfigurationArn, REQ});
STRUCT(CreateConnectionAuthRequestParameters,
       {"BasicAuthParameters", &S_CreateConnectionBasicAuthRequestParameters, OPT},
       {"OAuthParameters", &S_CreateConnectionOAuthRequestParameters, OPT},
       {"ApiKeyAuthParameters", &S_CreateConnectionApiKeyAuthRequestParameters, OPT},
       {"InvocationHttpParameters", &S_ConnectionHttpParameters, OPT},
       {"ConnectivityParameters", &S_ConnectivityResourceParameters, OPT});
STRUCT(CreateConnectionRequest,
       {"Name", &S_ConnectionName, REQ},
       {"Description", &S_ConnectionDescription, OPT},
       {"AuthorizationType", &S_ConnectionAuthorizationType, REQ},
       {"AuthParameters", &S_CreateConnectionAuthRequestParameters, REQ},
       {"InvocationConnectivityParameters", &S_ConnectivityResourceParameters, OPT},
       {"KmsKeyIdentifier", &S_KmsKeyIdentifier, OPT});
STR(ApiDestinationName, 1, 64, "[\\.\\-_A-Za-z0-9]+");
STR(ApiDestinationDescription, NA, 512, ".*");
STR(ConnectionArn, 1, 1600, "^arn:aws([a-z]|\\-)*:events:([a-z]|\\d|\\-)*:([0-9]{12})?:connection\\/[\\.\\-_A-Za-z0-9]+\\/[\\-A-Za-z0-9]+$");
ENUM(ApiDestinationHttpMethod, "HEAD", "POST", "PATCH", "DELETE", "PUT", "GET", "OPTIONS");
INT(ApiDestinationInvocationRateLimitPerSecond, 1, NA);
STRUCT(CreateApiDestinationRequest,
       {"Name", &S_ApiDestinationName, REQ},
       {"Description", &S_ApiDestinationDescription, OPT},
       {"ConnectionArn", &S_ConnectionArn, REQ},
       {"InvocationEndpoint", &S_HttpsEndpoint, REQ},
       {"HttpMethod", &S_ApiDestinationHttpMethod, REQ},
       {"InvocationRateLimitPerSecond", &S_ApiDestinationInvocationRateLimitPerSecond, OPT});

STRUCT(DescribeConnectionRequest, {"Name", &S_ConnectionName, REQ});
ENUM(ConnectionState, "CREATING", "UPDATING", "DELETING", "AUTHORIZED", "DEAUTHORIZED", "AUTHORIZING",
     "DEAUTHORIZING", "ACTIVE", "FAILED_CONNECTIVITY");
STRUCT(ListConnectionsRequest,
       {"NamePrefix", &S_ConnectionName, OPT},
       {"ConnectionState", &S_ConnectionState, OPT},
       {"NextToken", &S_NextToken, OPT},
       {"Limit", &S_LimitMax100, OPT});
STRUCT(UpdateConnectionBasicAuthRequestParameters,
       {"Username", &S_AuthHeaderParameters, OPT},
       {"Password", &S_AuthHeaderParametersSensitive, OPT});
STRUCT(UpdateConnectionOAuthClientRequestParameters,
       {"ClientID", &S_AuthHeaderParameters, OPT},
       {"ClientSecret", &S_AuthHeaderParametersSensitive, OPT});
STRUCT(UpdateConnectionOAuthRequestParameters,
       {"ClientParameters", &S_UpdateConnectionOAuthClientRequestParameters, OPT},
       {"AuthorizationEndpoint", &S_HttpsEndpoint, OPT},
       {"HttpMethod", &S_ConnectionOAuthHttpMethod, OPT},
       {"OAuthHttpParameters", &S_ConnectionHttpParameters, OPT});
STRUCT(UpdateConnectionApiKeyAuthRequestParameters,
       {"ApiKeyName", &S_AuthHeaderParameters, OPT},
       {"ApiKeyValue", &S_AuthHeaderParametersSensitive, OPT});
STRUCT(UpdateConnectionAuthRequestParameters,
       {"BasicAuthParameters", &S_UpdateConnectionBasicAuthRequestParameters, OPT},
       {"OAuthParameters", &S_UpdateConnectionOAuthRequestParameters, OPT},
       {"ApiKeyAuthParameters", &S_UpdateConnectionApiKeyAuthRequestParameters, OPT},
       {"InvocationHttpParameters", &S_ConnectionHttpParameters, OPT},
       {"ConnectivityParameters", &S_ConnectivityResourceParameters, OPT});
STRUCT(UpdateConnectionRequest,
       {"Name", &S_ConnectionName, REQ},
       {"Description", &S_ConnectionDescription, OPT},
       {"AuthorizationType", &S_ConnectionAuthorizationType, OPT},
       {"AuthParameters", &S_UpdateConnectionAuthRequestParameters, OPT},
       {"InvocationConnectivityParameters", &S_ConnectivityResourceParameters, OPT},
       {"KmsKeyIdentifier", &S_KmsKeyIdentifier, OPT});
STRUCT(DeauthorizeConnectionRequest, {"Name", &S_ConnectionName, REQ});
STRUCT(DeleteConnectionRequest, {"Name", &S_ConnectionName, REQ});
STRUCT(DescribeApiDestinationRequest, {"Name", &S_ApiDestinationName, REQ});
STRUCT(ListApiDestinationsRequest,
       {"NamePrefix", &S_ApiDestinationName, OPT},
       {"ConnectionArn", &S_ConnectionArn, OPT},
       {"NextToken", &S_NextToken, OPT},
       {"Limit", &S_LimitMax100, OPT});
STRUCT(UpdateApiDestinationRequest,
       {"Name", &S_ApiDestinationName, REQ},
       {"Description", &S_ApiDestinationDescription, OPT},
       {"ConnectionArn", &S_ConnectionArn, OPT},
       {"InvocationEndpoint", &S_HttpsEndpoint, OPT},
       {"HttpMethod", &S_ApiDestinationHttpMethod, OPT},
       {"InvocationRateLimitPerSecond", &S_ApiDestinationInvocationRateLimitPerSecond, OPT});
STRUCT(DeleteApiDestinationRequest, {"Name", &S_ApiDestinationName, REQ});

static const struct {
    const char *op;
    const sh_shape *input;
} sh_ops[] = {
    {"CreateEventBus", &S_CreateEventBusRequest},
    {"DescribeEventBus", &S_DescribeEventBusRequest},
    {"ListEventBuses", &S_ListEventBusesRequest},
    {"UpdateEventBus", &S_UpdateEventBusRequest},
    {"DeleteEventBus", &S_DeleteEventBusRequest},
    {"PutRule", &S_PutRuleRequest},
    {"DescribeRule", &S_DescribeRuleRequest},
    {"ListRules", &S_ListRulesRequest},
    {"EnableRule", &S_EnableRuleRequest},
    {"DisableRule", &S_DisableRuleRequest},
    {"DeleteRule", &S_DeleteRuleRequest},
    {"ListRuleNamesByTarget", &S_ListRuleNamesByTargetRequest},
    {"PutTargets", &S_PutTargetsRequest},
    {"RemoveTargets", &S_RemoveTargetsRequest},
    {"ListTargetsByRule", &S_ListTargetsByRuleRequest},
    {"PutEvents", &S_PutEventsRequest},
    {"TestEventPattern", &S_TestEventPatternRequest},
    {"TagResource", &S_TagResourceRequest},
    {"UntagResource", &S_UntagResourceRequest},
    {"ListTagsForResource", &S_ListTagsForResourceRequest},
    {"PutPermission", &S_PutPermissionRequest},
    {"RemovePermission", &S_RemovePermissionRequest},
    {"CreateConnection", &S_CreateConnectionRequest},
    {"DescribeConnection", &S_DescribeConnectionRequest},
    {"ListConnections", &S_ListConnectionsRequest},
    {"UpdateConnection", &S_UpdateConnectionRequest},
    {"DeauthorizeConnection", &S_DeauthorizeConnectionRequest},
    {"DeleteConnection", &S_DeleteConnectionRequest},
    {"CreateApiDestination", &S_CreateApiDestinationRequest},
    {"DescribeApiDestination", &S_DescribeApiDestinationRequest},
    {"ListApiDestinations", &S_ListApiDestinationsRequest},
    {"UpdateApiDestination", &S_UpdateApiDestinationRequest},
    {"DeleteApiDestination", &S_DeleteApiDestinationRequest},
};

/* ==== regular expressions ================================================= */

#define RX_MAX_NODES 512
#define RX_MAX_CLASSES 48
#define RX_MAX_RANGES 24
#define RX_MAX_INSTS 1024

enum { PROP_L = 1, PROP_Z = 2, PROP_N = 4 };

typedef struct {
    uint32_t lo[RX_MAX_RANGES], hi[RX_MAX_RANGES];
    int nr;
    unsigned props;
    int neg;
} rx_class;

enum { N_EMPTY, N_CHAR, N_CLASS, N_ANY, N_BOL, N_EOL, N_CAT, N_ALT, N_REP, N_NLA };
typedef struct {
    int type, a, b, min, max; /* children; N_REP: min/max (max -1 = unbounded); N_CLASS: a = class; N_CHAR: a = code point */
} rx_node;

enum { I_CHAR, I_CLASS, I_ANY, I_BOL, I_EOL, I_SPLIT, I_JMP, I_NLA, I_MATCH };
typedef struct {
    int op, x, y;
} rx_inst;

typedef struct {
    const char *p; /* pattern */
    size_t pos, len;
    int err;
    rx_node nodes[RX_MAX_NODES];
    int nnodes;
    rx_class cls[RX_MAX_CLASSES];
    int ncls;
    rx_inst prog[RX_MAX_INSTS];
    int ninst;
} rx;

static int rx_node_new(rx *r, int type, int a, int b)
{
    if (r->nnodes >= RX_MAX_NODES) {
        r->err = 1;
        return 0;
    }
    rx_node *n = &r->nodes[r->nnodes];
    n->type = type;
    n->a = a;
    n->b = b;
    n->min = n->max = 0;
    return r->nnodes++;
}

static rx_class *rx_class_new(rx *r, int *idx)
{
    if (r->ncls >= RX_MAX_CLASSES) {
        r->err = 1;
        *idx = 0;
        return &r->cls[0];
    }
    *idx = r->ncls;
    rx_class *c = &r->cls[r->ncls++];
    memset(c, 0, sizeof *c);
    return c;
}

static void rx_add_range(rx *r, rx_class *c, uint32_t lo, uint32_t hi)
{
    if (c->nr >= RX_MAX_RANGES || lo > hi) {
        r->err = 1;
        return;
    }
    c->lo[c->nr] = lo;
    c->hi[c->nr] = hi;
    c->nr++;
}

/* One UTF-8 code point from s[*i..n) (invalid bytes -> U+FFFD, one byte). */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *i)
{
    unsigned char c = s[*i];
    uint32_t cp;
    size_t k;
    if (c < 0x80) {
        (*i)++;
        return c;
    } else if (c >= 0xC2 && c < 0xE0) {
        cp = c & 0x1F;
        k = 1;
    } else if (c >= 0xE0 && c < 0xF0) {
        cp = c & 0x0F;
        k = 2;
    } else if (c >= 0xF0 && c < 0xF5) {
        cp = c & 0x07;
        k = 3;
    } else {
        (*i)++;
        return 0xFFFD;
    }
    if (*i + k >= n) {
        (*i)++;
        return 0xFFFD;
    }
    for (size_t j = 1; j <= k; j++) {
        unsigned char d = s[*i + j];
        if ((d & 0xC0) != 0x80) {
            (*i)++;
            return 0xFFFD;
        }
        cp = (cp << 6) | (d & 0x3F);
    }
    *i += k + 1;
    return cp;
}


/* Predefined classes added to c (negated forms only outside brackets, where
 * c is fresh). */
static void rx_add_predef(rx *r, rx_class *c, char e)
{
    switch (e) {
    case 'd':
    case 'D':
        rx_add_range(r, c, '0', '9');
        break;
    case 'w':
    case 'W':
        rx_add_range(r, c, 'a', 'z');
        rx_add_range(r, c, 'A', 'Z');
        rx_add_range(r, c, '0', '9');
        rx_add_range(r, c, '_', '_');
        break;
    default: /* s, S */
        rx_add_range(r, c, ' ', ' ');
        rx_add_range(r, c, '\t', '\r'); /* \t \n \x0B \f \r */
        break;
    }
}

/* After a backslash: a single code point (returns 1, *cp), a predefined
 * class letter (returns 2, *pre), or \p{X} (returns 3, *prop). */
static int rx_escape(rx *r, uint32_t *cp, char *pre, unsigned *prop)
{
    if (r->pos >= r->len) {
        r->err = 1;
        return 0;
    }
    char e = r->p[r->pos++];
    switch (e) {
    case 'd':
    case 'D':
    case 'w':
    case 'W':
    case 's':
    case 'S':
        *pre = e;
        return 2;
    case 'p':
        if (r->pos + 3 <= r->len && r->p[r->pos] == '{' && r->p[r->pos + 2] == '}') {
            char k = r->p[r->pos + 1];
            r->pos += 3;
            *prop = k == 'L' ? PROP_L : k == 'Z' ? PROP_Z : k == 'N' ? PROP_N : 0;
            if (!*prop)
                r->err = 1;
            return 3;
        }
        r->err = 1;
        return 0;
    case 't':
        *cp = '\t';
        return 1;
    case 'n':
        *cp = '\n';
        return 1;
    case 'r':
        *cp = '\r';
        return 1;
    case 'f':
        *cp = '\f';
        return 1;
    case 'x':
    case 'u': {
        int nd = e == 'x' ? 2 : 4;
        uint32_t v = 0;
        for (int i = 0; i < nd; i++) {
            int h = r->pos < r->len ? eb_hexval((unsigned char)r->p[r->pos]) : -1;
            if (h < 0) {
                r->err = 1;
                return 0;
            }
            v = v * 16 + (uint32_t)h;
            r->pos++;
        }
        *cp = v;
        return 1;
    }
    default:
        if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9')) {
            r->err = 1; /* unsupported escape (\b, \Q, backreferences, ...) */
            return 0;
        }
        *cp = (unsigned char)e; /* escaped punctuation */
        return 1;
    }
}

static uint32_t rx_literal(rx *r)
{
    return utf8_next((const unsigned char *)r->p, r->len, &r->pos);
}

static int rx_parse_bracket(rx *r)
{
    int idx;
    rx_class *c = rx_class_new(r, &idx);
    if (r->pos < r->len && r->p[r->pos] == '^') {
        c->neg = 1;
        r->pos++;
    }
    int first = 1;
    while (!r->err) {
        if (r->pos >= r->len) {
            r->err = 1;
            break;
        }
        char ch = r->p[r->pos];
        if (ch == ']' && !first) {
            r->pos++;
            break;
        }
        if (ch == '[' || (ch == '&' && r->pos + 1 < r->len && r->p[r->pos + 1] == '&')) {
            r->err = 1; /* nested classes / intersections: not needed */
            break;
        }
        first = 0;
        uint32_t lo;
        if (ch == '\\') {
            r->pos++;
            char pre = 0;
            unsigned prop = 0;
            int k = rx_escape(r, &lo, &pre, &prop);
            if (k == 2) {
                if (pre == 'D' || pre == 'W' || pre == 'S')
                    r->err = 1;
                else
                    rx_add_predef(r, c, pre);
                continue;
            }
            if (k == 3) {
                c->props |= prop;
                continue;
            }
            if (k != 1)
                break;
        } else {
            lo = rx_literal(r);
        }
        /* a range lo-hi unless '-' is last before ']' */
        if (r->pos + 1 < r->len && r->p[r->pos] == '-' && r->p[r->pos + 1] != ']') {
            r->pos++;
            uint32_t hi;
            if (r->p[r->pos] == '\\') {
                r->pos++;
                char pre = 0;
                unsigned prop = 0;
                if (rx_escape(r, &hi, &pre, &prop) != 1) {
                    r->err = 1;
                    break;
                }
            } else {
                hi = rx_literal(r);
            }
            rx_add_range(r, c, lo, hi);
        } else {
            rx_add_range(r, c, lo, lo);
        }
    }
    return rx_node_new(r, N_CLASS, idx, 0);
}

static int rx_parse_alt(rx *r);

static int rx_parse_atom(rx *r)
{
    char ch = r->p[r->pos];
    if (ch == '(') {
        r->pos++;
        int look = 0;
        if (r->pos + 1 < r->len && r->p[r->pos] == '?') {
            if (r->p[r->pos + 1] == '!')
                look = 1;
            else if (r->p[r->pos + 1] != ':')
                r->err = 1;
            r->pos += 2;
        }
        int sub = rx_parse_alt(r);
        if (r->pos >= r->len || r->p[r->pos] != ')') {
            r->err = 1;
            return sub;
        }
        r->pos++;
        return look ? rx_node_new(r, N_NLA, sub, 0) : sub;
    }
    if (ch == '[') {
        r->pos++;
        return rx_parse_bracket(r);
    }
    if (ch == '.') {
        r->pos++;
        return rx_node_new(r, N_ANY, 0, 0);
    }
    if (ch == '^') {
        r->pos++;
        return rx_node_new(r, N_BOL, 0, 0);
    }
    if (ch == '$') {
        r->pos++;
        return rx_node_new(r, N_EOL, 0, 0);
    }
    if (ch == '*' || ch == '+' || ch == '?' || ch == '{' || ch == ')' || ch == '|') {
        r->err = 1;
        r->pos++;
        return 0;
    }
    uint32_t cp = 0;
    if (ch != '\\')
        return rx_node_new(r, N_CHAR, (int)rx_literal(r), 0);
    r->pos++;
    char pre = 0;
    unsigned prop = 0;
    int k = rx_escape(r, &cp, &pre, &prop);
    if (k == 1)
        return rx_node_new(r, N_CHAR, (int)cp, 0);
    int idx;
    rx_class *c = rx_class_new(r, &idx);
    if (k == 2) {
        rx_add_predef(r, c, pre);
        c->neg = pre == 'D' || pre == 'W' || pre == 'S';
    } else if (k == 3) {
        c->props = prop;
    }
    return rx_node_new(r, N_CLASS, idx, 0);
}

static int rx_number(rx *r)
{
    int v = 0, nd = 0;
    while (r->pos < r->len && r->p[r->pos] >= '0' && r->p[r->pos] <= '9') {
        v = v * 10 + (r->p[r->pos++] - '0');
        if (++nd > 4) {
            r->err = 1;
            return 0;
        }
    }
    if (!nd)
        r->err = 1;
    return v;
}

static int rx_parse_repeat(rx *r)
{
    int a = rx_parse_atom(r);
    while (!r->err && r->pos < r->len) {
        char ch = r->p[r->pos];
        int min, max;
        if (ch == '*') {
            min = 0;
            max = -1;
            r->pos++;
        } else if (ch == '+') {
            min = 1;
            max = -1;
            r->pos++;
        } else if (ch == '?') {
            min = 0;
            max = 1;
            r->pos++;
        } else if (ch == '{') {
            r->pos++;
            min = max = rx_number(r);
            if (r->pos < r->len && r->p[r->pos] == ',') {
                r->pos++;
                max = r->pos < r->len && r->p[r->pos] == '}' ? -1 : rx_number(r);
            }
            if (r->pos >= r->len || r->p[r->pos] != '}' || (max >= 0 && max < min) || min > 100 || max > 100) {
                r->err = 1;
                return a;
            }
            r->pos++;
        } else {
            break;
        }
        if (r->pos < r->len && r->p[r->pos] == '?')
            r->pos++; /* lazy: same language */
        else if (r->pos < r->len && r->p[r->pos] == '+')
            r->err = 1; /* possessive: not supported */
        int n = rx_node_new(r, N_REP, a, 0);
        r->nodes[n].min = min;
        r->nodes[n].max = max;
        a = n;
    }
    return a;
}

static int rx_parse_cat(rx *r)
{
    int node = rx_node_new(r, N_EMPTY, 0, 0);
    while (!r->err && r->pos < r->len && r->p[r->pos] != '|' && r->p[r->pos] != ')')
        node = rx_node_new(r, N_CAT, node, rx_parse_repeat(r));
    return node;
}

static int rx_parse_alt(rx *r)
{
    int node = rx_parse_cat(r);
    while (!r->err && r->pos < r->len && r->p[r->pos] == '|') {
        r->pos++;
        node = rx_node_new(r, N_ALT, node, rx_parse_cat(r));
    }
    return node;
}

static int rx_emit(rx *r, int op, int x, int y)
{
    if (r->ninst >= RX_MAX_INSTS) {
        r->err = 1;
        return 0;
    }
    r->prog[r->ninst] = (rx_inst){op, x, y};
    return r->ninst++;
}

static void rx_gen(rx *r, int ni, int depth)
{
    if (r->err || depth > 200) {
        r->err = 1;
        return;
    }
    const rx_node *n = &r->nodes[ni];
    switch (n->type) {
    case N_EMPTY:
        break;
    case N_CHAR:
        rx_emit(r, I_CHAR, n->a, 0);
        break;
    case N_CLASS:
        rx_emit(r, I_CLASS, n->a, 0);
        break;
    case N_ANY:
        rx_emit(r, I_ANY, 0, 0);
        break;
    case N_BOL:
        rx_emit(r, I_BOL, 0, 0);
        break;
    case N_EOL:
        rx_emit(r, I_EOL, 0, 0);
        break;
    case N_CAT:
        rx_gen(r, n->a, depth + 1);
        rx_gen(r, n->b, depth + 1);
        break;
    case N_ALT: {
        int split = rx_emit(r, I_SPLIT, 0, 0);
        r->prog[split].x = r->ninst;
        rx_gen(r, n->a, depth + 1);
        int jmp = rx_emit(r, I_JMP, 0, 0);
        r->prog[split].y = r->ninst;
        rx_gen(r, n->b, depth + 1);
        r->prog[jmp].x = r->ninst;
        break;
    }
    case N_REP: {
        int a = n->a, min = n->min, max = n->max;
        for (int i = 0; i < min && !r->err; i++)
            rx_gen(r, a, depth + 1);
        if (max < 0) {
            int split = rx_emit(r, I_SPLIT, 0, 0);
            r->prog[split].x = r->ninst;
            rx_gen(r, a, depth + 1);
            rx_emit(r, I_JMP, split, 0);
            r->prog[split].y = r->ninst;
        } else {
            int splits[101], ns = 0;
            for (int i = min; i < max && !r->err; i++) {
                int split = rx_emit(r, I_SPLIT, 0, 0);
                splits[ns++] = split;
                r->prog[split].x = r->ninst;
                rx_gen(r, a, depth + 1);
            }
            for (int i = 0; i < ns; i++)
                r->prog[splits[i]].y = r->ninst;
        }
        break;
    }
    case N_NLA: {
        int la = rx_emit(r, I_NLA, 0, 0);
        r->prog[la].x = r->ninst;
        rx_gen(r, n->a, depth + 1);
        rx_emit(r, I_MATCH, 0, 0);
        r->prog[la].y = r->ninst;
        break;
    }
    }
}

/* Compile; 0 on success. */
static int rx_compile(rx *r, const char *pattern)
{
    r->p = pattern;
    r->len = strlen(pattern);
    r->pos = 0;
    r->err = 0;
    r->nnodes = r->ncls = r->ninst = 0;
    int root = rx_parse_alt(r);
    if (!r->err && r->pos != r->len)
        r->err = 1; /* unbalanced ')' */
    if (!r->err) {
        rx_gen(r, root, 0);
        rx_emit(r, I_MATCH, 0, 0);
    }
    return r->err ? -1 : 0;
}

static int in_ranges(uint32_t c, const uint32_t *t, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        if (c >= t[i] && c <= t[i + 1])
            return 1;
    return 0;
}

static int prop_z(uint32_t c)
{
    static const uint32_t t[] = {0x20,   0x20,   0xA0,   0xA0,   0x1680, 0x1680, 0x2000, 0x200A,
                                 0x2028, 0x2029, 0x202F, 0x202F, 0x205F, 0x205F, 0x3000, 0x3000};
    return in_ranges(c, t, sizeof t / sizeof t[0]);
}

static int prop_n(uint32_t c)
{
    static const uint32_t t[] = {
        '0',    '9',    0xB2,   0xB3,   0xB9,   0xB9,   0xBC,   0xBE,   0x660,  0x669,  0x6F0,  0x6F9,
        0x7C0,  0x7C9,  0x966,  0x96F,  0x9E6,  0x9EF,  0xA66,  0xA6F,  0xAE6,  0xAEF,  0xB66,  0xB6F,
        0xBE6,  0xBF2,  0xC66,  0xC6F,  0xCE6,  0xCEF,  0xD66,  0xD78,  0xDE6,  0xDEF,  0xE50,  0xE59,
        0xED0,  0xED9,  0xF20,  0xF33,  0x1040, 0x1049, 0x1090, 0x1099, 0x1369, 0x137C, 0x17E0, 0x17E9,
        0x1810, 0x1819, 0x1946, 0x194F, 0x19D0, 0x19DA, 0x2070, 0x2070, 0x2074, 0x2079, 0x2080, 0x2089,
        0x2150, 0x2182, 0x2185, 0x2189, 0x2460, 0x249B, 0x24EA, 0x24FF, 0x2776, 0x2793, 0x3007, 0x3007,
        0x3021, 0x3029, 0x3038, 0x303A, 0x3192, 0x3195, 0x3220, 0x3229, 0x3248, 0x324F, 0x3251, 0x325F,
        0x3280, 0x3289, 0x32B1, 0x32BF, 0xFF10, 0xFF19};
    return in_ranges(c, t, sizeof t / sizeof t[0]);
}

static int prop_l(uint32_t c)
{
    if (c < 0x80)
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    if (c < 0xC0)
        return c == 0xAA || c == 0xB5 || c == 0xBA;
    static const uint32_t not_l[] = {
        0xD7,    0xD7,    0xF7,    0xF7,    0x2C2,   0x2C5,   0x2D2,   0x2DF,   0x2E5,   0x2EB,
        0x2ED,   0x2ED,   0x2EF,   0x36F,   0x375,   0x375,   0x37E,   0x37E,   0x384,   0x385,
        0x387,   0x387,   0x3F6,   0x3F6,   0x482,   0x489,   0x55A,   0x55F,   0x589,   0x5CF,
        0x600,   0x61F,   0x64B,   0x65F,   0x66A,   0x66D,   0x6D4,   0x6D4,   0x6D6,   0x6E4,
        0x6E7,   0x6ED,   0x900,   0x903,   0x93A,   0x94F,   0x964,   0x965,   0x2000,  0x2BFF,
        0x2E00,  0x2E7F,  0x3000,  0x3004,  0x3008,  0x3020,  0x3030,  0x3030,  0x303D,  0x303F,
        0xD800,  0xF8FF,  0xFE00,  0xFE6F,  0xFEFF,  0xFEFF,  0xFF01,  0xFF20,  0xFF3B,  0xFF40,
        0xFF5B,  0xFF65,  0xFFE0,  0xFFFF,  0x1F000, 0x1FAFF, 0xE0000, 0x10FFFF};
    return !prop_z(c) && !prop_n(c) && !in_ranges(c, not_l, sizeof not_l / sizeof not_l[0]);
}

static int rx_class_has(const rx_class *c, uint32_t cp)
{
    int in = 0;
    for (int i = 0; i < c->nr && !in; i++)
        in = cp >= c->lo[i] && cp <= c->hi[i];
    if (!in && c->props)
        in = ((c->props & PROP_L) && prop_l(cp)) || ((c->props & PROP_Z) && prop_z(cp)) ||
             ((c->props & PROP_N) && prop_n(cp));
    return c->neg ? !in : in;
}

static int is_line_term(uint32_t c)
{
    return c == '\n' || c == '\r' || c == 0x85 || c == 0x2028 || c == 0x2029;
}

/* Java's `$` without MULTILINE: end of input, or before a final line
 * terminator (\r\n counting as one). */
static int rx_at_eol(const uint32_t *cp, size_t n, size_t i)
{
    if (i == n)
        return 1;
    if (i + 1 == n && is_line_term(cp[i]))
        return !(cp[i] == '\n' && i > 0 && cp[i - 1] == '\r'); /* between \r and \n: no */
    if (i + 2 == n && cp[i] == '\r' && cp[i + 1] == '\n')
        return 1;
    return 0;
}

typedef struct {
    int *pcs;
    int n;
} rx_list;

typedef struct {
    const rx *r;
    const uint32_t *cp;
    size_t n;
    unsigned *mark; /* per pc: stamp of the list it is in */
    int nomem;
} rx_vm;

static int rx_run(rx_vm *vm, int pc0, size_t i0, int full);

static void rx_add(rx_vm *vm, rx_list *l, int pc, size_t i, unsigned stamp)
{
    if (vm->mark[pc] == stamp)
        return;
    vm->mark[pc] = stamp;
    const rx_inst *in = &vm->r->prog[pc];
    switch (in->op) {
    case I_JMP:
        rx_add(vm, l, in->x, i, stamp);
        break;
    case I_SPLIT:
        rx_add(vm, l, in->x, i, stamp);
        rx_add(vm, l, in->y, i, stamp);
        break;
    case I_BOL:
        if (i == 0)
            rx_add(vm, l, pc + 1, i, stamp);
        break;
    case I_EOL:
        if (rx_at_eol(vm->cp, vm->n, i))
            rx_add(vm, l, pc + 1, i, stamp);
        break;
    case I_NLA:
        if (!rx_run(vm, in->x, i, 0))
            rx_add(vm, l, in->y, i, stamp);
        break;
    default:
        l->pcs[l->n++] = pc;
        break;
    }
}

/* Does the program from pc0 match cp[i0..]?  full: must end at the end of
 * the input; otherwise any prefix (lookahead bodies). */
static int rx_run(rx_vm *vm, int pc0, size_t i0, int full)
{
    int ni = vm->r->ninst;
    unsigned *saved = vm->mark;
    int *buf = malloc(sizeof(int) * 2 * (size_t)ni);
    unsigned *mark = calloc((size_t)ni, sizeof *mark);
    if (!buf || !mark) {
        free(buf);
        free(mark);
        vm->nomem = 1;
        return 0;
    }
    vm->mark = mark;
    rx_list cl = {buf, 0}, nl = {buf + ni, 0};
    unsigned stamp = 1;
    int matched = 0;
    rx_add(vm, &cl, pc0, i0, stamp);
    for (size_t i = i0;; i++) {
        nl.n = 0;
        stamp++;
        for (int k = 0; k < cl.n && !matched; k++) {
            const rx_inst *in = &vm->r->prog[cl.pcs[k]];
            if (in->op == I_MATCH) {
                if (!full || i == vm->n)
                    matched = 1;
                continue;
            }
            if (i >= vm->n)
                continue;
            uint32_t c = vm->cp[i];
            int ok = in->op == I_CHAR  ? c == (uint32_t)in->x
                     : in->op == I_ANY ? !is_line_term(c)
                                       : rx_class_has(&vm->r->cls[in->x], c);
            if (ok)
                rx_add(vm, &nl, cl.pcs[k] + 1, i + 1, stamp);
        }
        if (matched || i >= vm->n || nl.n == 0)
            break;
        rx_list t = cl;
        cl = nl;
        nl = t;
    }
    free(buf);
    free(mark);
    vm->mark = saved;
    return matched;
}

static int rx_match_compiled(const rx *r, const char *s, size_t len)
{
    uint32_t *cp = malloc(sizeof(uint32_t) * (len ? len : 1));
    if (!cp)
        return -1;
    size_t n = 0, i = 0;
    while (i < len)
        cp[n++] = utf8_next((const unsigned char *)s, len, &i);
    rx_vm vm = {r, cp, n, NULL, 0};
    int m = rx_run(&vm, 0, 0, 1);
    free(cp);
    return vm.nomem ? -1 : m;
}

int eb_shape_regex_match(const char *pattern, const char *s, size_t len)
{
    rx *r = malloc(sizeof *r);
    if (!r)
        return -1;
    int m = rx_compile(r, pattern) ? -1 : rx_match_compiled(r, s, len);
    free(r);
    return m;
}

/* ==== checking ============================================================= */

typedef struct {
    eb_buf *errs; /* violations, "; "-joined */
    int nerr;
    const char *ser;       /* first SerializationException text (static) */
    char ser_buf[96];      /* ... or composed here */
    eb_buf path;
    int oom;
} ck;

static void ck_oom(ck *c, int rc)
{
    if (rc)
        c->oom = 1;
}

static size_t cp_count(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

static const char *json_token(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "START_OBJECT";
    case JSON_ARRAY:
        return "START_ARRAY";
    case JSON_STRING:
        return "STRING_VALUE";
    case JSON_INTEGER:
    case JSON_REAL:
        return "NUMBER_VALUE";
    case JSON_TRUE:
        return "TRUE_VALUE";
    case JSON_FALSE:
        return "FALSE_VALUE";
    default:
        return "NULL_VALUE";
    }
}

static void ck_ser(ck *c, const json_t *v, const char *want)
{
    if (c->ser)
        return;
    if (json_is_object(v)) {
        c->ser = "Start of structure or map found where not expected.";
    } else if (json_is_array(v)) {
        c->ser = "Start of list found where not expected.";
    } else {
        snprintf(c->ser_buf, sizeof c->ser_buf, "%s can not be converted to %s", json_token(v), want);
        c->ser = c->ser_buf;
    }
}

/* java.util.Date#toString in UTC */
static void put_date(eb_buf *b, double secs)
{
    static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (!(secs > -1e15 && secs < 1e15)) {
        eb_buf_printf(b, "%.17g", secs);
        return;
    }
    long long s = (long long)secs;
    if ((double)s > secs)
        s--;
    time_t t = (time_t)s;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        eb_buf_printf(b, "%lld", s);
        return;
    }
    eb_buf_printf(b, "%s %s %02d %02d:%02d:%02d UTC %d", wd[tm.tm_wday], mo[tm.tm_mon], tm.tm_mday, tm.tm_hour,
                  tm.tm_min, tm.tm_sec, tm.tm_year + 1900);
}

static long long int_of(const json_t *v)
{
    if (json_is_integer(v))
        return (long long)json_integer_value(v);
    return (long long)json_real_value(v); /* range checked by the type pass */
}

/* Java-style rendering of a value already known to have the shape's types. */
static void render(eb_buf *b, const sh_shape *sh, const json_t *v)
{
    if (!v || json_is_null(v)) {
        eb_buf_puts(b, "null");
        return;
    }
    if (sh->sensitive) {
        eb_buf_puts(b, "*** Sensitive Data Redacted ***");
        return;
    }
    switch (sh->kind) {
    case SK_STRING:
        eb_buf_append(b, json_string_value(v), json_string_length(v));
        break;
    case SK_INT:
        eb_buf_printf(b, "%lld", int_of(v));
        break;
    case SK_BOOL:
        eb_buf_puts(b, json_is_true(v) ? "true" : "false");
        break;
    case SK_TIMESTAMP:
        put_date(b, json_number_value(v));
        break;
    case SK_LIST: {
        eb_buf_putc(b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                eb_buf_puts(b, ", ");
            render(b, sh->member, json_array_get(v, i));
        }
        eb_buf_putc(b, ']');
        break;
    }
    case SK_MAP: {
        const char *k;
        const json_t *x;
        int first = 1;
        eb_buf_putc(b, '{');
        json_object_foreach((json_t *)v, k, x)
        {
            if (!first)
                eb_buf_puts(b, ", ");
            first = 0;
            eb_buf_puts(b, k);
            eb_buf_putc(b, '=');
            render(b, sh->member, x);
        }
        eb_buf_putc(b, '}');
        break;
    }
    case SK_STRUCT:
        eb_buf_puts(b, sh->name);
        eb_buf_putc(b, '(');
        for (size_t i = 0; i < sh->nmembers; i++) {
            const char *nm = sh->members[i].name;
            if (i)
                eb_buf_puts(b, ", ");
            eb_buf_putc(b, (char)(nm[0] >= 'A' && nm[0] <= 'Z' ? nm[0] - 'A' + 'a' : nm[0]));
            eb_buf_puts(b, nm + 1);
            eb_buf_putc(b, '=');
            render(b, sh->members[i].shape, json_object_get(v, nm));
        }
        if (sh->extra)
            eb_buf_puts(b, sh->extra);
        eb_buf_putc(b, ')');
        break;
    }
}

/* "Value '<v>' at '<path>' failed to satisfy constraint: " (or "Value null"
 * / "Value at" for sensitive members), then the caller appends the rule. */
static eb_buf *ck_begin(ck *c, const sh_shape *sh, const json_t *v)
{
    eb_buf *b = c->errs;
    int rc = 0;
    if (c->nerr++)
        rc |= eb_buf_puts(b, "; ");
    if (!v)
        rc |= eb_buf_puts(b, "Value null at '");
    else if (sh->sensitive)
        rc |= eb_buf_puts(b, "Value at '");
    else {
        rc |= eb_buf_puts(b, "Value '");
        render(b, sh, v);
        rc |= eb_buf_puts(b, "' at '");
    }
    rc |= eb_buf_append(b, c->path.p, c->path.n);
    rc |= eb_buf_puts(b, "' failed to satisfy constraint: ");
    ck_oom(c, rc);
    return b;
}

static void put_enum(eb_buf *b, const char *const *e)
{
    eb_buf_puts(b, "Member must satisfy enum value set: [");
    for (size_t i = 0; e[i]; i++) {
        if (i)
            eb_buf_puts(b, ", ");
        eb_buf_puts(b, e[i]);
    }
    eb_buf_putc(b, ']');
}

/* Does a scalar (type already checked) satisfy its shape's constraints?
 * With report set, each failing constraint is added as a violation. */
static int scalar_ok(ck *c, const sh_shape *sh, const json_t *v, int report)
{
    int ok = 1;
    if (sh->kind == SK_STRING) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (sh->enums) {
            int found = 0;
            for (size_t i = 0; sh->enums[i] && !found; i++)
                found = strlen(sh->enums[i]) == n && memcmp(sh->enums[i], s, n) == 0;
            if (!found) {
                ok = 0;
                if (report)
                    put_enum(ck_begin(c, sh, v), sh->enums);
            }
        }
        if (sh->pattern) {
            int m = eb_shape_regex_match(sh->pattern, s, n);
            if (m < 0)
                c->oom = 1;
            if (m == 0) {
                ok = 0;
                if (report)
                    eb_buf_printf(ck_begin(c, sh, v), "Member must satisfy regular expression pattern: %s",
                                  sh->pattern);
            }
        }
        size_t len = cp_count(s, n);
        if (sh->max >= 0 && len > (size_t)sh->max) {
            ok = 0;
            if (report)
                eb_buf_printf(ck_begin(c, sh, v), "Member must have length less than or equal to %lld", sh->max);
        }
        if (sh->min >= 0 && len < (size_t)sh->min) {
            ok = 0;
            if (report)
                eb_buf_printf(ck_begin(c, sh, v), "Member must have length greater than or equal to %lld",
                              sh->min);
        }
    } else if (sh->kind == SK_INT) {
        long long x = int_of(v);
        if (sh->max >= 0 && x > sh->max) {
            ok = 0;
            if (report)
                eb_buf_printf(ck_begin(c, sh, v), "Member must have value less than or equal to %lld", sh->max);
        }
        if (sh->min >= 0 && x < sh->min) {
            ok = 0;
            if (report)
                eb_buf_printf(ck_begin(c, sh, v), "Member must have value greater than or equal to %lld",
                              sh->min);
        }
    }
    return ok;
}

/* "[Member must have length less than or equal to 64, ...]": every
 * constraint of an element shape (used for list elements and map keys and
 * values). */
static int put_constraints(eb_buf *b, const sh_shape *sh)
{
    int k = 0;
    eb_buf_putc(b, '[');
    if (sh->kind == SK_STRING) {
        if (sh->max >= 0)
            eb_buf_printf(b, "%sMember must have length less than or equal to %lld", k++ ? ", " : "", sh->max);
        if (sh->min >= 0)
            eb_buf_printf(b, "%sMember must have length greater than or equal to %lld", k++ ? ", " : "",
                          sh->min);
        if (sh->pattern)
            eb_buf_printf(b, "%sMember must satisfy regular expression pattern: %s", k++ ? ", " : "",
                          sh->pattern);
        if (sh->enums) {
            if (k++)
                eb_buf_puts(b, ", ");
            put_enum(b, sh->enums);
        }
    } else if (sh->kind == SK_INT) {
        if (sh->max >= 0)
            eb_buf_printf(b, "%sMember must have value less than or equal to %lld", k++ ? ", " : "", sh->max);
        if (sh->min >= 0)
            eb_buf_printf(b, "%sMember must have value greater than or equal to %lld", k++ ? ", " : "", sh->min);
    }
    eb_buf_putc(b, ']');
    return k;
}

static int has_constraints(const sh_shape *sh)
{
    return sh->min >= 0 || sh->max >= 0 || sh->pattern || sh->enums;
}

/* Type check of a non-null value; 0 when the type is right. */
static int type_ok(ck *c, const sh_shape *sh, const json_t *v)
{
    switch (sh->kind) {
    case SK_STRING:
        if (json_is_string(v))
            return 0;
        ck_ser(c, v, "a String");
        return -1;
    case SK_INT:
        if (json_is_integer(v)) {
            json_int_t x = json_integer_value(v);
            if (x >= INT32_MIN && x <= INT32_MAX)
                return 0;
        } else if (json_is_real(v)) {
            double x = json_real_value(v);
            if (x > (double)INT32_MIN - 1 && x < (double)INT32_MAX + 1)
                return 0;
        }
        if (json_is_number(v)) {
            c->ser = "NUMBER_VALUE can not be converted to an Integer";
            return -1;
        }
        ck_ser(c, v, "an Integer");
        return -1;
    case SK_BOOL:
        if (json_is_boolean(v))
            return 0;
        ck_ser(c, v, "a Boolean");
        return -1;
    case SK_TIMESTAMP:
        if (json_is_number(v))
            return 0;
        ck_ser(c, v, "a Timestamp");
        return -1;
    case SK_LIST:
        if (json_is_array(v))
            return 0;
        if (json_is_object(v))
            c->ser = "Start of structure or map found where not expected.";
        else
            ck_ser(c, v, "a List");
        return -1;
    case SK_MAP:
    case SK_STRUCT:
        if (json_is_object(v))
            return 0;
        if (json_is_array(v))
            c->ser = "Start of list found where not expected.";
        else
            ck_ser(c, v, sh->kind == SK_MAP ? "a Map" : "a Structure");
        return -1;
    }
    return -1;
}

static void path_push(ck *c, size_t *mark, const char *seg, int lower)
{
    *mark = c->path.n;
    int rc = 0;
    if (c->path.n)
        rc |= eb_buf_putc(&c->path, '.');
    if (lower && seg[0] >= 'A' && seg[0] <= 'Z') {
        rc |= eb_buf_putc(&c->path, (char)(seg[0] - 'A' + 'a'));
        seg++;
    }
    rc |= eb_buf_puts(&c->path, seg);
    ck_oom(c, rc);
}

static void path_pop(ck *c, size_t mark)
{
    c->path.n = mark;
    if (c->path.p)
        c->path.p[mark] = 0;
}

static void check_value(ck *c, const sh_shape *sh, const json_t *v, int depth);

static void check_struct(ck *c, const sh_shape *sh, const json_t *obj, int depth)
{
    for (size_t i = 0; i < sh->nmembers && !c->ser; i++) {
        const sh_member *m = &sh->members[i];
        const json_t *v = json_object_get(obj, m->name);
        size_t mark;
        path_push(c, &mark, m->name, 1);
        if (!v || json_is_null(v)) {
            if (m->required)
                eb_buf_puts(ck_begin(c, m->shape, NULL), "Member must not be null");
        } else {
            check_value(c, m->shape, v, depth + 1);
        }
        path_pop(c, mark);
    }
}

static void check_value(ck *c, const sh_shape *sh, const json_t *v, int depth)
{
    if (c->ser || type_ok(c, sh, v))
        return;
    if (depth > 32)
        return; /* our shapes nest 6 deep at most */
    switch (sh->kind) {
    case SK_STRING:
    case SK_INT:
        scalar_ok(c, sh, v, 1);
        break;
    case SK_BOOL:
    case SK_TIMESTAMP:
        break;
    case SK_LIST: {
        size_t n = json_array_size(v);
        /* element types first: a wrong type anywhere wins */
        for (size_t i = 0; i < n && !c->ser; i++) {
            const json_t *e = json_array_get(v, i);
            if (!json_is_null(e) && sh->member->kind != SK_STRUCT)
                type_ok(c, sh->member, e);
        }
        if (c->ser)
            return;
        if (sh->max >= 0 && n > (size_t)sh->max)
            eb_buf_printf(ck_begin(c, sh, v), "Member must have length less than or equal to %lld", sh->max);
        if (sh->min >= 0 && n < (size_t)sh->min)
            eb_buf_printf(ck_begin(c, sh, v), "Member must have length greater than or equal to %lld", sh->min);
        int scalar = sh->member->kind != SK_STRUCT && sh->member->kind != SK_LIST && sh->member->kind != SK_MAP;
        int bad = 0;
        for (size_t i = 0; i < n && !c->ser; i++) {
            const json_t *e = json_array_get(v, i);
            if (json_is_null(e) || !scalar) {
                char seg[32];
                size_t mark;
                snprintf(seg, sizeof seg, "%zu.member", i + 1);
                path_push(c, &mark, seg, 0);
                if (json_is_null(e))
                    eb_buf_puts(ck_begin(c, sh->member, NULL), "Member must not be null");
                else
                    check_value(c, sh->member, e, depth + 1);
                path_pop(c, mark);
            } else if (!bad && has_constraints(sh->member) && !scalar_ok(c, sh->member, e, 0)) {
                bad = 1;
            }
        }
        if (bad && !c->ser) {
            eb_buf *b = ck_begin(c, sh, v);
            eb_buf_puts(b, "Member must satisfy constraint: ");
            put_constraints(b, sh->member);
        }
        break;
    }
    case SK_MAP: {
        const char *k;
        const json_t *x;
        size_t n = json_object_size(v);
        json_object_foreach((json_t *)v, k, x)
        {
            if (!json_is_null(x) && type_ok(c, sh->member, x))
                return;
        }
        if (sh->max >= 0 && n > (size_t)sh->max)
            eb_buf_printf(ck_begin(c, sh, v), "Member must have length less than or equal to %lld", sh->max);
        if (sh->min >= 0 && n < (size_t)sh->min)
            eb_buf_printf(ck_begin(c, sh, v), "Member must have length greater than or equal to %lld", sh->min);
        int bad_key = 0, bad_val = 0;
        json_object_foreach((json_t *)v, k, x)
        {
            json_t *ks = json_string(k);
            if (!ks) {
                c->oom = 1;
                return;
            }
            if (!bad_key && has_constraints(sh->key) && !scalar_ok(c, sh->key, ks, 0))
                bad_key = 1;
            json_decref(ks);
            if (!bad_val && !json_is_null(x) && has_constraints(sh->member) && !scalar_ok(c, sh->member, x, 0))
                bad_val = 1;
        }
        if (bad_key) {
            eb_buf *b = ck_begin(c, sh, v);
            eb_buf_puts(b, "Map keys must satisfy constraint: ");
            put_constraints(b, sh->key);
        }
        if (bad_val) {
            eb_buf *b = ck_begin(c, sh, v);
            eb_buf_puts(b, "Map value must satisfy constraint: ");
            put_constraints(b, sh->member);
        }
        break;
    }
    case SK_STRUCT:
        check_struct(c, sh, v, depth);
        break;
    }
}

static const sh_shape *find_op(const char *op)
{
    if (!op)
        return NULL;
    for (size_t i = 0; i < sizeof sh_ops / sizeof sh_ops[0]; i++)
        if (strcmp(sh_ops[i].op, op) == 0)
            return sh_ops[i].input;
    return NULL;
}

int eb_shape_known(const char *op)
{
    return find_op(op) != NULL;
}

int eb_shape_check(const char *op, const json_t *req, const char **code, eb_buf *msg)
{
    static const char ser_code[] = "SerializationException";
    if (!req || !json_is_object(req)) {
        *code = ser_code;
        if (!req || json_is_null(req))
            eb_buf_puts(msg, "NULL_VALUE can not be converted to a Structure");
        else if (json_is_array(req))
            eb_buf_puts(msg, "Start of list found where not expected.");
        else
            eb_buf_printf(msg, "%s can not be converted to a Structure", json_token(req));
        return 1;
    }
    const sh_shape *sh = find_op(op);
    if (!sh)
        return 0;
    eb_buf errs = {0};
    ck c;
    memset(&c, 0, sizeof c);
    c.errs = &errs;
    check_struct(&c, sh, req, 0);
    int rc = 0;
    if (c.ser) {
        *code = ser_code;
        eb_buf_puts(msg, c.ser);
        rc = 1;
    } else if (c.oom) {
        *code = "InternalException";
        eb_buf_puts(msg, "out of memory");
        rc = 1;
    } else if (c.nerr) {
        *code = "ValidationException";
        if (c.nerr == 1)
            eb_buf_puts(msg, "1 validation error detected: ");
        else
            eb_buf_printf(msg, "%d validation errors detected: ", c.nerr);
        eb_buf_append(msg, errs.p, errs.n);
        rc = 1;
    }
    eb_buf_free(&errs);
    eb_buf_free(&c.path);
    return rc;
}
