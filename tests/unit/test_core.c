/* core/: the model on a real SQLite store in a temp dir — operations, PutEvents
 * jobs (rules x targets), disabled rules, reload after reopen, and error shapes. */
#define _GNU_SOURCE
#include "core/connections.h"
#include "core/core.h"
#include "store/store.h"
#include "test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];
static const eb_caller WHO = {"123456789012", "us-east-1"};
static const eb_caller OTHER = {"123456789012", "eu-west-1"};

static eb_store *open_store(void)
{
    char err[256];
    eb_store_options o = {.sync = EB_SYNC_OFF};
    eb_store *s = eb_store_open_sqlite(dir, &o, err, sizeof err);
    if (!s)
        fprintf(stderr, "store: %s\n", err);
    return s;
}

static eb_core *open_core(eb_store *s)
{
    eb_core_config cc;
    eb_core_config_defaults(&cc);
    char err[256];
    eb_core *c = eb_core_open(&cc, s, err, sizeof err);
    if (!c)
        fprintf(stderr, "core: %s\n", err);
    return c;
}

/* call an op with a JSON text; returns the response (or NULL) */
static json_t *call(eb_core *c, const eb_caller *who, const char *op, const char *req, eb_core_error *e)
{
    json_t *r = json_loads(req, 0, NULL);
    if (!r) {
        fprintf(stderr, "bad test JSON: %s\n", req);
        return NULL;
    }
    memset(e, 0, sizeof *e);
    json_t *out = eb_core_call(c, who, op, r, e);
    json_decref(r);
    return out;
}

static int ok(eb_core *c, const eb_caller *who, const char *op, const char *req)
{
    eb_core_error e;
    json_t *o = call(c, who, op, req, &e);
    if (!o)
        fprintf(stderr, "%s %s -> %s: %s\n", op, req, e.type, e.message);
    json_decref(o);
    return o != NULL;
}

static int err_is(eb_core *c, const eb_caller *who, const char *op, const char *req, const char *type,
                  const char *msg)
{
    eb_core_error e;
    json_t *o = call(c, who, op, req, &e);
    json_decref(o);
    if (o || strcmp(e.type, type) || (msg && strcmp(e.message, msg))) {
        fprintf(stderr, "%s %s -> %s: %s (wanted %s: %s)\n", op, req, o ? "success" : e.type, o ? "" : e.message,
                type, msg ? msg : "*");
        return 0;
    }
    return 1;
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    json_t *resp;
    eb_core_error e;
} waiter;

static void pe_done(void *ctx, const char *resp, size_t len, const eb_core_error *e)
{
    waiter *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->resp = resp ? json_loadb(resp, len, 0, NULL) : NULL;
    if (e)
        w->e = *e;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static json_t *put_events(eb_core *c, const char *req, eb_core_error *e)
{
    waiter w = {.done = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    json_t *r = json_loads(req, 0, NULL);
    eb_core_put_events(c, &WHO, r, pe_done, &w);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    json_decref(r);
    if (e)
        *e = w.e;
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return w.resp;
}

static void test_buses_rules_targets(void)
{
    eb_store *s = open_store();
    eb_core *c = open_core(s);
    CHECK(s && c);
    CHECK(ok(c, &WHO, "CreateEventBus", "{\"Name\":\"orders\",\"Tags\":[{\"Key\":\"k\",\"Value\":\"v\"}]}"));
    CHECK(err_is(c, &WHO, "CreateEventBus", "{\"Name\":\"orders\"}", "ResourceAlreadyExistsException",
                 "Event bus orders already exists."));
    CHECK(err_is(c, &WHO, "DescribeEventBus", "{\"Name\":\"nope\"}", "ResourceNotFoundException",
                 "Event bus nope does not exist."));
    CHECK(err_is(c, &WHO, "DeleteEventBus", "{\"Name\":\"default\"}", "ValidationException",
                 "Cannot delete event bus default."));
    CHECK(ok(c, &WHO, "DeleteEventBus", "{\"Name\":\"nope\"}"));
    CHECK(ok(c, &WHO, "PutRule", "{\"Name\":\"r1\",\"EventBusName\":\"orders\",\"EventPattern\":\"{\\\"source\\\":[\\\"shop\\\"]}\"}"));
    CHECK(err_is(c, &WHO, "PutRule", "{\"Name\":\"r2\",\"EventBusName\":\"orders\",\"ScheduleExpression\":\"rate(1 minute)\"}",
                 "ValidationException", "ScheduleExpression is supported only on the default event bus."));
    CHECK(err_is(c, &WHO, "PutRule", "{\"Name\":\"r2\",\"ScheduleExpression\":\"rate(1 minutes)\"}",
                 "ValidationException", "Parameter ScheduleExpression is not valid."));
    CHECK(err_is(c, &WHO, "PutRule", "{\"Name\":\"r2\",\"EventPattern\":\"{\\\"a\\\":1}\"}",
                 "InvalidEventPatternException", NULL));
    CHECK(err_is(c, &WHO, "DeleteEventBus", "{\"Name\":\"orders\"}", "ValidationException", NULL));
    CHECK(ok(c, &WHO, "PutTargets",
             "{\"Rule\":\"r1\",\"EventBusName\":\"orders\",\"Targets\":[{\"Id\":\"t1\",\"Arn\":\"arn:aws:sqs:us-east-1:123456789012:q\"},"
             "{\"Id\":\"t2\",\"Arn\":\"arn:aws:sqs:us-east-1:123456789012:q2\"}]}"));
    CHECK(err_is(c, &WHO, "PutTargets",
                 "{\"Rule\":\"r1\",\"EventBusName\":\"orders\",\"Targets\":[{\"Id\":\"a\",\"Arn\":\"arn:aws:sqs:us-east-1:123456789012:x\"},{\"Id\":\"b\",\"Arn\":\"arn:aws:sqs:us-east-1:123456789012:x\"},"
                 "{\"Id\":\"c\",\"Arn\":\"arn:aws:sqs:us-east-1:123456789012:x\"},{\"Id\":\"d\",\"Arn\":\"arn:aws:sqs:us-east-1:123456789012:x\"}]}",
                 "LimitExceededException", "The requested resource exceeds the maximum number allowed."));
    CHECK(err_is(c, &WHO, "PutTargets",
                 "{\"Rule\":\"r1\",\"EventBusName\":\"orders\",\"Targets\":[{\"Id\":\"a\",\"Arn\":\"arn:aws:sqs:us-east-1:123456789012:x\",\"Input\":\"{}\",\"InputPath\":\"$.a\"}]}",
                 "ValidationException", "Only one of Input, InputPath, or InputTransformer must be provided for target a."));
    CHECK(err_is(c, &WHO, "PutTargets",
                 "{\"Rule\":\"r1\",\"EventBusName\":\"orders\",\"Targets\":[{\"Id\":\"a\",\"Arn\":\"arn:aws:sqs:us-east-1:123456789012:x\",\"InputTransformer\":"
                 "{\"InputPathsMap\":{\"x\":\"$.a\"},\"InputTemplate\":\"\\\"<x> <y> <aws.events.rule-name>\\\"\"}}]}",
                 "ValidationException", "InputTemplate for target a contains invalid placeholder y."));
    CHECK(err_is(c, &WHO, "PutTargets", "{\"Rule\":\"r1\",\"EventBusName\":\"orders\",\"Targets\":[{\"Id\":\"a\",\"Arn\":\"not-an-arn\"}]}",
                 "ValidationException", "Parameter not-an-arn is not valid. Reason: Provided Arn is not in correct format."));
    CHECK(err_is(c, &WHO, "DeleteRule", "{\"Name\":\"r1\",\"EventBusName\":\"orders\"}", "ValidationException",
                 "Rule can't be deleted since it has targets."));
    CHECK(err_is(c, &WHO, "DescribeRule", "{\"Name\":\"zz\"}", "ResourceNotFoundException",
                 "Rule zz does not exist on EventBus default."));
    CHECK(err_is(c, &WHO, "ListTagsForResource", "{\"ResourceARN\":\"arn:aws:events:us-east-1:123456789012:rule/abc\"}",
                 "ResourceNotFoundException", "Rule abc does not exist on EventBus default."));
    CHECK(ok(c, &WHO, "TagResource",
             "{\"ResourceARN\":\"arn:aws:events:us-east-1:123456789012:rule/orders/r1\",\"Tags\":[{\"Key\":\"a\",\"Value\":\"1\"}]}"));
    eb_core_error e;
    json_t *t = call(c, &WHO, "ListTagsForResource",
                     "{\"ResourceARN\":\"arn:aws:events:us-east-1:123456789012:rule/orders/r1\"}", &e);
    CHECK(t && json_array_size(json_object_get(t, "Tags")) == 1);
    json_decref(t);
    /* per region: eu-west-1 has only its default bus */
    t = call(c, &OTHER, "ListEventBuses", "{}", &e);
    CHECK(t && json_array_size(json_object_get(t, "EventBuses")) == 1);
    json_decref(t);
    /* PutEvents: one matching event -> 2 jobs; a non-matching one -> none; a bad entry */
    json_t *r = put_events(c,
                           "{\"Entries\":[{\"Source\":\"shop\",\"DetailType\":\"d\",\"Detail\":\"{ \\\"a\\\" : 1 }\",\"EventBusName\":\"orders\"},"
                           "{\"Source\":\"other\",\"DetailType\":\"d\",\"Detail\":\"{}\",\"EventBusName\":\"orders\"},"
                           "{\"Source\":\"shop\",\"DetailType\":\"d\",\"Detail\":\"[]\",\"EventBusName\":\"orders\"},"
                           "{\"Source\":\"shop\",\"DetailType\":\"d\",\"Detail\":\"{\\\"n\\\":99999999999999999999}\"},"
                           "{\"Source\":\"shop\",\"DetailType\":\"d\",\"Detail\":\"{}\",\"EventBusName\":\"nope\"}]}",
                           &e);
    CHECK(r && json_integer_value(json_object_get(r, "FailedEntryCount")) == 2);
    json_t *en = json_object_get(r, "Entries");
    CHECK(json_array_size(en) == 5);
    CHECK(json_object_get(json_array_get(en, 0), "EventId"));
    CHECK_STR(json_string_value(json_object_get(json_array_get(en, 2), "ErrorCode")), "MalformedDetail");
    CHECK_STR(json_string_value(json_object_get(json_array_get(en, 3), "ErrorCode")), "MalformedDetail");
    CHECK(json_object_get(json_array_get(en, 4), "EventId"));
    json_decref(r);
    eb_store_stats st;
    CHECK(eb_store_stats_get(s, &st) == 0);
    CHECK(st.jobs_pending == 2);
    /* disable the rule: no more jobs */
    CHECK(ok(c, &WHO, "DisableRule", "{\"Name\":\"r1\",\"EventBusName\":\"orders\"}"));
    r = put_events(c, "{\"Entries\":[{\"Source\":\"shop\",\"DetailType\":\"d\",\"Detail\":\"{}\",\"EventBusName\":\"orders\"}]}",
                   &e);
    CHECK(r && json_integer_value(json_object_get(r, "FailedEntryCount")) == 0);
    json_decref(r);
    CHECK(eb_store_stats_get(s, &st) == 0 && st.jobs_pending == 2);
    CHECK(ok(c, &WHO, "EnableRule", "{\"Name\":\"r1\",\"EventBusName\":\"orders\"}"));
    /* size limit */
    char *big = malloc(300000);
    strcpy(big, "{\"Entries\":[{\"Source\":\"s\",\"DetailType\":\"d\",\"Detail\":\"{\\\"p\\\":\\\"");
    size_t n = strlen(big);
    memset(big + n, 'p', 262144);
    strcpy(big + n + 262144, "\\\"}\"}]}");
    r = put_events(c, big, &e);
    CHECK(!r && !strcmp(e.type, "ValidationException"));
    free(big);
    eb_core_close(c);
    eb_store_close(s);

    /* reopen: everything is back, and matching works again */
    s = open_store();
    c = open_core(s);
    CHECK(s && c);
    t = call(c, &WHO, "ListTargetsByRule", "{\"Rule\":\"r1\",\"EventBusName\":\"orders\"}", &e);
    CHECK(t && json_array_size(json_object_get(t, "Targets")) == 2);
    json_decref(t);
    t = call(c, &WHO, "DescribeEventBus", "{\"Name\":\"orders\"}", &e);
    CHECK(t && json_object_get(t, "CreationTime"));
    json_decref(t);
    r = put_events(c, "{\"Entries\":[{\"Source\":\"shop\",\"DetailType\":\"d\",\"Detail\":\"{}\",\"EventBusName\":\"orders\"}]}",
                   &e);
    json_decref(r);
    CHECK(eb_store_stats_get(s, &st) == 0 && st.jobs_pending == 4);
    eb_core_close(c);
    eb_store_close(s);
}

typedef struct {
    const char *want;
    int found;
} finder;

static int find_detail(void *ctx, const char *id, const char *body, size_t len, uint32_t pending)
{
    (void)id;
    (void)pending;
    finder *f = ctx;
    char *copy = strndup(body, len);
    f->found |= copy && strstr(copy, f->want) != NULL;
    free(copy);
    return f->found; /* stop at the first hit */
}

static void test_envelope(void)
{
    eb_store *s = open_store();
    eb_core *c = open_core(s);
    CHECK(s && c);
    eb_core_error e;
    json_t *r = put_events(c,
                           "{\"Entries\":[{\"Source\":\"shop\",\"DetailType\":\"t \\\"q\\\"\",\"EventBusName\":\"orders\","
                           "\"Resources\":[\"arn:x\"],\"Time\":1704164645,"
                           "\"Detail\":\"{ \\\"s\\\" : \\\"a \\\\\\\" b \\\\\\\\\\\" , \\\"n\\\" : [ 1 , -2.5e3, 9223372036854775807 ] ,\\n \\\"e\\\":\\\"\\\"}\"}]}",
                           &e);
    CHECK(r && json_integer_value(json_object_get(r, "FailedEntryCount")) == 0);
    json_decref(r);
    const char *want = "\"detail-type\":\"t \\\"q\\\"\",\"source\":\"shop\",\"account\":\"123456789012\","
                       "\"time\":\"2024-01-02T03:04:05Z\",\"region\":\"us-east-1\",\"resources\":[\"arn:x\"],"
                       "\"detail\":{\"s\":\"a \\\" b \\\\\",\"n\":[1,-2.5e3,9223372036854775807],\"e\":\"\"}}";
    finder f = {want, 0};
    CHECK(eb_store_event_scan(s, find_detail, &f) == 0 && f.found);
    eb_core_close(c);
    eb_store_close(s);
}

static void test_pagination_and_permissions(void)
{
    eb_store *s = open_store();
    eb_core *c = open_core(s);
    CHECK(s && c);
    char req[1024];
    for (int i = 0; i < 25; i++) {
        snprintf(req, sizeof req, "{\"Name\":\"p%02d\",\"EventPattern\":\"{\\\"source\\\":[\\\"x\\\"]}\"}", i);
        CHECK(ok(c, &WHO, "PutRule", req));
    }
    eb_core_error e;
    int seen = 0, pages = 0;
    char token[512] = "";
    do {
        if (token[0])
            snprintf(req, sizeof req, "{\"NamePrefix\":\"p\",\"Limit\":10,\"NextToken\":\"%s\"}", token);
        else
            snprintf(req, sizeof req, "{\"NamePrefix\":\"p\",\"Limit\":10}");
        json_t *o = call(c, &WHO, "ListRules", req, &e);
        CHECK(o != NULL);
        if (!o)
            break;
        seen += (int)json_array_size(json_object_get(o, "Rules"));
        const char *nt = json_string_value(json_object_get(o, "NextToken"));
        snprintf(token, sizeof token, "%s", nt ? nt : "");
        json_decref(o);
        pages++;
    } while (token[0] && pages < 10);
    CHECK(seen == 25 && pages == 3);
    CHECK(err_is(c, &WHO, "ListRules", "{\"NextToken\":\"zz\"}", "ValidationException", NULL));
    CHECK(err_is(c, &WHO, "RemovePermission", "{\"StatementId\":\"nope\"}", "ResourceNotFoundException",
                 "Statement with the provided id does not exist."));
    CHECK(ok(c, &WHO, "PutPermission", "{\"Action\":\"events:PutEvents\",\"Principal\":\"111122223333\",\"StatementId\":\"s1\"}"));
    json_t *o = call(c, &WHO, "DescribeEventBus", "{}", &e);
    const char *pol = json_string_value(json_object_get(o, "Policy"));
    CHECK(pol && strstr(pol, "arn:aws:iam::111122223333:root") && strstr(pol, "\"Sid\":\"s1\""));
    json_decref(o);
    CHECK(ok(c, &WHO, "RemovePermission", "{\"StatementId\":\"s1\"}"));
    o = call(c, &WHO, "DescribeEventBus", "{}", &e);
    CHECK(o && !json_object_get(o, "Policy"));
    json_decref(o);
    eb_core_close(c);
    eb_store_close(s);
}

static void test_test_event_pattern(void)
{
    eb_store *s = open_store();
    eb_core *c = open_core(s);
    eb_core_error e;
    json_t *o = call(c, &WHO, "TestEventPattern",
                     "{\"EventPattern\":\"{\\\"source\\\":[\\\"a\\\"]}\",\"Event\":\"{\\\"id\\\":\\\"1\\\",\\\"account\\\":\\\"1\\\","
                     "\\\"source\\\":\\\"a\\\",\\\"time\\\":\\\"t\\\",\\\"region\\\":\\\"r\\\",\\\"detail-type\\\":\\\"d\\\"}\"}",
                     &e);
    CHECK(o && json_is_true(json_object_get(o, "Result")));
    json_decref(o);
    CHECK(err_is(c, &WHO, "TestEventPattern", "{\"EventPattern\":\"{\\\"source\\\":[\\\"a\\\"]}\",\"Event\":\"{\\\"testEvent\\\":\\\"value\\\"}\"}",
                 "ValidationException", "Parameter Event is not valid."));
    CHECK(err_is(c, &WHO, "TestEventPattern", "{\"EventPattern\":\"{\\\"source\\\":[\\\"a\\\"]}\",\"Event\":\"plain string\"}", "ValidationException",
                 "Parameter Event is not valid."));
    eb_core_close(c);
    eb_store_close(s);
}

/* connections.h's delivery side: lookup, set_state, persistence, quotas */
static void test_connections_delivery(void)
{
    static const eb_caller AP = {"123456789012", "ap-south-1"};
    eb_store *s = open_store();
    eb_core_config cc;
    eb_core_config_defaults(&cc);
    cc.max_connections = 2;
    cc.max_api_destinations = 1;
    char err[256];
    eb_core *c = eb_core_open(&cc, s, err, sizeof err);
    CHECK(c != NULL);
    if (!c)
        return;
    eb_core_error e;
    json_t *o = call(c, &AP, "CreateConnection",
                     "{\"Name\":\"oc\",\"AuthorizationType\":\"OAUTH_CLIENT_CREDENTIALS\",\"AuthParameters\":{"
                     "\"OAuthParameters\":{\"ClientParameters\":{\"ClientID\":\"id1\",\"ClientSecret\":\"cs1\"},"
                     "\"AuthorizationEndpoint\":\"auth.example.com/token\",\"HttpMethod\":\"POST\","
                     "\"OAuthHttpParameters\":{\"BodyParameters\":[{\"Key\":\"aud\",\"Value\":\"x\",\"IsValueSecret\":true}]}},"
                     "\"InvocationHttpParameters\":{\"HeaderParameters\":[{\"Key\":\"K\",\"Value\":\"hv\",\"IsValueSecret\":true}]}}}",
                     &e);
    CHECK(o && !strcmp(json_string_value(json_object_get(o, "ConnectionState")), "AUTHORIZING"));
    char carn[256] = "", darn[256] = "", req[512];
    snprintf(carn, sizeof carn, "%s", o ? json_string_value(json_object_get(o, "ConnectionArn")) : "");
    json_decref(o);
    snprintf(req, sizeof req,
             "{\"Name\":\"od\",\"ConnectionArn\":\"%s\",\"InvocationEndpoint\":\"api.example.com/v1/*\",\"HttpMethod\":\"PUT\"}",
             carn);
    o = call(c, &AP, "CreateApiDestination", req, &e);
    CHECK(o && !strcmp(json_string_value(json_object_get(o, "ApiDestinationState")), "INACTIVE"));
    snprintf(darn, sizeof darn, "%s", o ? json_string_value(json_object_get(o, "ApiDestinationArn")) : "");
    json_decref(o);
    req[10] = '2'; /* "od" -> "o2" */
    CHECK(err_is(c, &AP, "CreateApiDestination", req, "LimitExceededException", NULL));

    eb_apidest_info in;
    CHECK(eb_core_apidest_lookup(c, darn, &in) == 0);
    CHECK_STR(in.arn, darn);
    CHECK_STR(in.endpoint, "https://api.example.com/v1/*");
    CHECK_STR(in.method, "PUT");
    CHECK(in.rate_per_s == 300);
    CHECK_STR(in.conn_arn, carn);
    CHECK_STR(in.conn_state, "AUTHORIZING");
    CHECK_STR(in.auth_type, "OAUTH_CLIENT_CREDENTIALS");
    CHECK_STR(in.oauth_endpoint, "https://auth.example.com/token");
    CHECK_STR(in.oauth_method, "POST");
    CHECK_STR(in.client_id, "id1");
    CHECK_STR(in.client_secret, "cs1");
    CHECK(!in.basic_user && !in.basic_pass && !in.api_key_name && !in.api_key_value);
    CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(in.invocation_params, "HeaderParameters"), 0), "Value")), "hv");
    CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(in.oauth_params, "BodyParameters"), 0), "Value")), "x");
    eb_apidest_info_free(&in);
    eb_apidest_info_free(NULL);

    char other[256];
    snprintf(other, sizeof other, "%.*s00000000-0000-0000-0000-000000000000", (int)(strrchr(darn, '/') + 1 - darn), darn);
    CHECK(eb_core_apidest_lookup(c, other, &in) == -1 && !in.arn);
    CHECK(eb_core_apidest_lookup(c, "not an arn", &in) == -1);
    snprintf(other, sizeof other, "%.*s00000000-0000-0000-0000-000000000000", (int)(strrchr(carn, '/') + 1 - carn), carn);
    CHECK(eb_core_connection_set_state(c, other, NULL, "AUTHORIZED", NULL) == -1);
    CHECK(eb_core_connection_set_state(c, carn, NULL, "DELETING", NULL) == -1);
    CHECK(eb_core_connection_set_state(c, carn, NULL, "SLEEPING", NULL) == -1);
    CHECK(eb_core_connection_set_state(c, carn, "AUTHORIZED", "DEAUTHORIZED", NULL) == 1);
    CHECK(eb_core_connection_set_state(c, carn, "AUTHORIZING", "AUTHORIZED", NULL) == 0);
    o = call(c, &AP, "DescribeApiDestination", "{\"Name\":\"od\"}", &e);
    CHECK(o && !strcmp(json_string_value(json_object_get(o, "ApiDestinationState")), "ACTIVE"));
    json_decref(o);
    CHECK(eb_core_connection_set_state(c, carn, NULL, "DEAUTHORIZED", "the token endpoint answered 401") == 0);

    /* reopen: the state and reason were stored; deauthorize drops the credentials;
     * documents missing members are skipped, not trusted */
    static const char bad[] = "{\"Name\":\"bad\",\"Arn\":\"x\"}";
    CHECK(eb_store_doc_put(s, "apidest", "123456789012/ap-south-1/bad", bad, sizeof bad - 1) == 0);
    CHECK(eb_store_doc_put(s, "connection", "123456789012/ap-south-1/bad", bad, sizeof bad - 1) == 0);
    CHECK(eb_store_doc_put(s, "connection", "no-slashes", bad, sizeof bad - 1) == 0);
    eb_core_close(c);
    c = eb_core_open(&cc, s, err, sizeof err);
    CHECK(c != NULL);
    if (!c)
        return;
    o = call(c, &AP, "DescribeConnection", "{\"Name\":\"oc\"}", &e);
    CHECK(o && !strcmp(json_string_value(json_object_get(o, "ConnectionState")), "DEAUTHORIZED"));
    CHECK(o && !strcmp(json_string_value(json_object_get(o, "StateReason")), "the token endpoint answered 401"));
    json_decref(o);
    CHECK(err_is(c, &AP, "DescribeApiDestination", "{\"Name\":\"bad\"}", "ResourceNotFoundException", NULL));
    CHECK(err_is(c, &AP, "DescribeConnection", "{\"Name\":\"bad\"}", "ResourceNotFoundException", NULL));
    CHECK(ok(c, &AP, "DeauthorizeConnection", "{\"Name\":\"oc\"}"));
    CHECK(eb_core_apidest_lookup(c, darn, &in) == 0);
    CHECK_STR(in.conn_state, "DEAUTHORIZED");
    CHECK(!in.client_id && !in.client_secret && !in.oauth_endpoint && !in.invocation_params && !in.oauth_params);
    eb_apidest_info_free(&in);
    CHECK(ok(c, &AP, "CreateConnection",
             "{\"Name\":\"b\",\"AuthorizationType\":\"BASIC\",\"AuthParameters\":{\"BasicAuthParameters\":{\"Username\":\"u\",\"Password\":\"p\"}}}"));
    CHECK(err_is(c, &AP, "CreateConnection",
                 "{\"Name\":\"b2\",\"AuthorizationType\":\"BASIC\",\"AuthParameters\":{\"BasicAuthParameters\":{\"Username\":\"u\",\"Password\":\"p\"}}}",
                 "LimitExceededException", "The requested resource exceeds the maximum number allowed."));
    CHECK(ok(c, &WHO, "CreateConnection",
             "{\"Name\":\"b2\",\"AuthorizationType\":\"BASIC\",\"AuthParameters\":{\"BasicAuthParameters\":{\"Username\":\"u\",\"Password\":\"p\"}}}"));
    eb_core_close(c);
    eb_store_close(s);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/eb_test_core_%d", (int)getpid());
    RUN(test_buses_rules_targets);
    RUN(test_envelope);
    RUN(test_pagination_and_permissions);
    RUN(test_test_event_pattern);
    RUN(test_connections_delivery);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (getenv("KEEP")) return TEST_REPORT();
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return TEST_REPORT();
}
