#!/usr/bin/env python3
"""Runs shared/conformance/api-errors.jsonl against a real `ebridge serve`.

usage: python3 tests/conformance/api_errors.py <path/to/ebridge> [path/to/api-errors.jsonl]
       (default corpus: $EB_SHARED/conformance/api-errors.jsonl, else ../shared relative to the repo,
        else /work/shared/conformance/api-errors.jsonl)

For every line whose operation this server implements, a fresh server (account 123456789012,
region us-east-1, --sync normal, no credentials: requests go unsigned) gets the state the line's
`setup` describes, then the request is POSTed exactly as recorded (raw JSON body, X-Amz-Target
AWSEvents.<op>, Content-Type application/x-amz-json-1.1; no SDK, so no client-side validation),
and the answer is compared:
  error         HTTP status, __type and message, exactly (the two PutEvents 11-entry lines, whose
                recorded message embeds a Java toString of the entries, compare the code and the
                message's trailing constraint text only);
  entry-errors  HTTP 200, FailedEntryCount and every entry's ErrorCode/ErrorMessage (no EventId);
  success       HTTP 200 and, where the line records a result, that result (plus a follow-up call
                where the line's note says what must hold afterwards).
Every answer must carry x-amzn-RequestId.  Lines of operations built by later issues are listed
at the end as LATER.  Exit status 1 if any in-scope line fails.
"""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import common  # noqa: E402
from common import Server, raw_call  # noqa: E402

ACCOUNT = "123456789012"
REGION = "us-east-1"
EXPECTED_IN_SCOPE = 89
LATER_OPS = {"StartReplay", "CreateArchive", "DescribeArchive", "ListArchives", "UpdateArchive", "DeleteArchive",
             "DescribeReplay"}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SQS = "arn:aws:sqs:us-east-1:%s:q" % ACCOUNT
TEN_SUFFIX = "' at 'entries' failed to satisfy constraint: Member must have length less than or equal to 10"
PATTERN_CORE = json.dumps({"source": ["core.update-account-command"], "detail-type": ["core.update-account-command"]})


class SetupError(Exception):
    pass


class Api:
    def __init__(self, url):
        self.url = url

    def __call__(self, op, body):
        """A setup/follow-up call that must succeed."""
        st, hd, parsed, raw = raw_call(self.url, op, body)
        if st != 200:
            raise SetupError("%s %s -> HTTP %s %s" % (op, json.dumps(body), st, raw[:300].decode("utf-8", "replace")))
        return parsed

    def raw(self, op, body):
        return raw_call(self.url, op, body)


# ---- setups: the state each line's `setup` text describes (by line name) ----------------------
def rule_on(api, bus=None, name="test-rule"):
    body = {"Name": name, "EventPattern": PATTERN_CORE}
    if bus:
        body["EventBusName"] = bus
    api("PutRule", body)


def s_delivery_failure(api):
    # "default bus has a rule matching source/detail-type whose only target is an SQS queue that was deleted"
    rule_on(api)
    api("PutTargets", {"Rule": "test-rule", "Targets": [
        {"Id": "test-target", "Arn": "arn:aws:sqs:us-east-1:%s:deleted-queue" % ACCOUNT}]})


def s_policy(bus):
    def f(api):
        if bus != "default":
            api("CreateEventBus", {"Name": bus})
        # "the bus has a policy with one other statement"
        api("PutPermission", {"EventBusName": bus, "Action": "events:PutEvents", "Principal": "111122223333",
                              "StatementId": "other-sid"})
    return f


def s_bus(name):
    return lambda api: api("CreateEventBus", {"Name": name})


def s_rule_with_target(api):
    rule_on(api)
    api("PutTargets", {"Rule": "test-rule", "Targets": [{"Id": "test-target", "Arn": SQS}]})


def s_rule_t1(api):
    rule_on(api)
    api("PutTargets", {"Rule": "test-rule", "Targets": [{"Id": "t1", "Arn": SQS, "InputPath": "$.detail"}]})


def s_bus_and_rule(api):
    api("CreateEventBus", {"Name": "test-bus"})
    rule_on(api, bus="test-bus")


def s_deleted_rule_custom_bus(api):
    api("CreateEventBus", {"Name": "test_bus-1"})
    api("PutRule", {"Name": "test_rule-1", "EventBusName": "test_bus-1", "EventPattern": PATTERN_CORE})
    api("DeleteRule", {"Name": "test_rule-1", "EventBusName": "test_bus-1"})


def s_deleted_bus(api):
    api("CreateEventBus", {"Name": "test_bus-1"})
    api("DeleteEventBus", {"Name": "test_bus-1"})


def connection(api, name="conn-x"):
    return api("CreateConnection", {"Name": name, "AuthorizationType": "API_KEY", "AuthParameters": {
        "ApiKeyAuthParameters": {"ApiKeyName": "ApiKey", "ApiKeyValue": "secret"}}})["ConnectionArn"]


def s_deleted_connection(api):
    connection(api)
    api("DeleteConnection", {"Name": "conn-x"})


def s_deleted_api_destination(api):
    arn = connection(api)
    api("CreateApiDestination", {"Name": "dest-x", "ConnectionArn": arn, "HttpMethod": "POST",
                                 "InvocationEndpoint": "https://example.com/api"})
    api("DeleteApiDestination", {"Name": "dest-x"})


SETUPS = {
    "put_events_target_delivery_failure_is_not_reported": s_delivery_failure,
    "create_event_bus_duplicate": s_bus("test-bus-dup"),
    "remove_permission_unknown_sid_custom_bus_with_policy": s_policy("test-bus-perm"),
    "remove_permission_unknown_sid_default_bus_with_policy": s_policy("default"),
    "remove_permission_unknown_sid_custom_bus_without_policy": s_bus("test-bus-perm"),
    "remove_permission_unknown_sid_default_bus_without_policy": lambda api: None,
    "delete_rule_with_targets": s_rule_with_target,
    "put_rule_schedule_on_custom_bus": s_bus("test-bus"),
    # PutTargets lines name rule test-rule (on the default bus unless EventBusName says otherwise); the
    # validation lines carry no setup text but the rule must exist for the request to be meaningful
    "put_targets_more_than_5": lambda api: rule_on(api),
    "put_targets_invalid_id_chars": lambda api: rule_on(api),
    "put_targets_id_too_long": lambda api: rule_on(api),
    "put_targets_valid_id_chars": lambda api: rule_on(api),
    "put_targets_same_id_overwrites": s_rule_t1,
    "put_targets_input_path_and_transformer": s_bus_and_rule,
    "put_targets_template_placeholder_not_in_map": s_bus_and_rule,
    "list_tags_deleted_rule_custom_bus": s_deleted_rule_custom_bus,
    "list_tags_deleted_event_bus": s_deleted_bus,
    "describe_connection_deleted": s_deleted_connection,
    "describe_api_destination_deleted": s_deleted_api_destination,
    "create_api_destination_invalid_name": lambda api: connection(api),
}


# ---- request placeholders ---------------------------------------------------------------------------
def materialise(line):
    req = json.loads(json.dumps(line["request"]))
    if line["name"] == "put_events_total_size_over_limit":
        # note: Detail is exactly 262144 characters: '{"payload": ["' + 'p' * 262127 + '"]}'
        detail = '{"payload": ["' + "p" * 262127 + '"]}'
        assert len(detail) == 262144
        req["Entries"][0]["Detail"] = detail
    return req


# ---- follow-up checks for success lines ------------------------------------------------------------
def after_success(line, api, resp):
    """Returns a list of problems."""
    name, op, want = line["name"], line["operation"], line.get("response") or {}
    req = line["request"]
    problems = []
    if op == "PutEvents":
        ents = (resp or {}).get("Entries")
        if not isinstance(ents, list) or len(ents) != len(want.get("Entries", [])):
            problems.append("Entries %r, want %d entries" % (ents, len(want.get("Entries", []))))
        else:
            for i, (g, w) in enumerate(zip(ents, want["Entries"])):
                if w.get("EventId") == "<uuid>" and not (set(g) == {"EventId"} and UUID_RE.match(g["EventId"])):
                    problems.append("entry %d: %r, want only an EventId (UUID)" % (i, g))
        if (resp or {}).get("FailedEntryCount") != want.get("FailedEntryCount"):
            problems.append("FailedEntryCount %r, want %r" % ((resp or {}).get("FailedEntryCount"),
                                                                want.get("FailedEntryCount")))
        if name == "put_events_nonexistent_bus_is_accepted":
            st, hd, body, raw = api.raw("DescribeEventBus", {"Name": "event-bus-doesnotexist"})
            got = (st, (body or {}).get("__type"), (body or {}).get("message"))
            exp = (400, "ResourceNotFoundException", "Event bus event-bus-doesnotexist does not exist.")
            if got != exp:
                problems.append("afterwards DescribeEventBus event-bus-doesnotexist -> %r, want %r" % (got, exp))
    elif op == "PutRule":
        bus = req.get("EventBusName", "default")
        arn = "arn:aws:events:%s:%s:rule/%s" % (REGION, ACCOUNT, req["Name"] if bus == "default"
                                                else bus + "/" + req["Name"])
        if (resp or {}).get("RuleArn") != arn:
            problems.append("RuleArn %r, want %r" % ((resp or {}).get("RuleArn"), arn))
        d = api("DescribeRule", {"Name": req["Name"]})
        if d.get("ScheduleExpression") != req.get("ScheduleExpression") or d.get("EventBusName") != "default":
            problems.append("afterwards DescribeRule -> %r" % d)
    elif op == "PutTargets":
        if (resp or {}).get("FailedEntryCount") != 0 or (resp or {}).get("FailedEntries") != []:
            problems.append("PutTargets answer %r, want FailedEntryCount 0, FailedEntries []" % resp)
        listed = api("ListTargetsByRule", {"Rule": req["Rule"], **({"EventBusName": req["EventBusName"]}
                                                                   if "EventBusName" in req else {})})
        if "ListTargetsByRule" in want:
            if listed != want["ListTargetsByRule"]:
                problems.append("afterwards ListTargetsByRule -> %r, want %r" % (listed, want["ListTargetsByRule"]))
        elif listed.get("Targets") != req["Targets"]:
            problems.append("afterwards ListTargetsByRule -> %r, want the request's targets" % listed)
    elif op == "UntagResource":
        lt = api("ListTagsForResource", {"ResourceARN": req["ResourceARN"]})
        if any(t.get("Key") in req["TagKeys"] for t in lt.get("Tags", [])):
            problems.append("afterwards ListTagsForResource -> %r" % lt)
    return problems


# ---- one line ----------------------------------------------------------------------------------------
def run_line(binary, line):
    """Returns (passed, detail, note)."""
    note = ""
    with Server(binary, account=ACCOUNT, region=REGION) as srv:
        api = Api(srv.url)
        setup = SETUPS.get(line["name"])
        if setup is None and line.get("setup"):
            return False, "no setup written for %r" % line["setup"], note
        try:
            if setup:
                setup(api)
        except SetupError as e:
            return False, "setup failed: %s" % e, note
        req = materialise(line)
        st, hd, body, raw = api.raw(line["operation"], req)
        problems = []
        if not UUID_RE.match(hd.get("x-amzn-requestid", "")):
            problems.append("no x-amzn-RequestId header")
        if st != line["http_status"]:
            problems.append("HTTP %s, want %s" % (st, line["http_status"]))
        exp = line["expect"]
        if exp == "error":
            got_type, got_msg = (body or {}).get("__type"), (body or {}).get("message")
            if got_type != line["error_code"]:
                problems.append("__type %r, want %r" % (got_type, line["error_code"]))
            want_msg = line["error_message"]
            if line["operation"] == "PutEvents" and len(req.get("Entries", [])) > 10:
                note = " (message: code + trailing constraint text compared; AWS's embeds a Java toString%s)" % (
                    "; it matches exactly too" if got_msg == want_msg else "")
                if not (isinstance(got_msg, str) and got_msg.startswith("1 validation error detected: Value '") and
                        got_msg.endswith(TEN_SUFFIX)):
                    problems.append("message %r, want '1 validation error detected: Value '...%s'" %
                                    (got_msg if not got_msg or len(got_msg) < 400 else got_msg[:400] + "...",
                                     TEN_SUFFIX))
            elif got_msg != want_msg:
                problems.append("message %r, want %r" % (got_msg, want_msg))
        elif exp == "entry-errors":
            want = line["response"]
            got_entries = (body or {}).get("Entries")
            if (body or {}).get("FailedEntryCount") != want["FailedEntryCount"]:
                problems.append("FailedEntryCount %r, want %r" % ((body or {}).get("FailedEntryCount"),
                                                                    want["FailedEntryCount"]))
            if got_entries != want["Entries"]:
                problems.append("Entries %r, want %r" % (got_entries, want["Entries"]))
        elif exp == "success":
            if st == 200:
                try:
                    problems += after_success(line, api, body)
                except SetupError as e:
                    problems.append("follow-up call failed: %s" % e)
        else:
            problems.append("unknown expect %r" % exp)
        if problems:
            shown = json.dumps(req)
            if len(shown) > 600:
                shown = shown[:600] + "...(%d bytes)" % len(shown)
            rb = raw.decode("utf-8", "replace")
            if len(rb) > 600:
                rb = rb[:600] + "...(%d bytes)" % len(rb)
            return False, "; ".join(problems) + "\n       request:  %s %s\n       response: %s %s" % (
                line["operation"], shown, st, rb), note
        return True, "", note


def default_corpus():
    cands = []
    if os.environ.get("EB_SHARED"):
        cands.append(os.path.join(os.environ["EB_SHARED"], "conformance", "api-errors.jsonl"))
    cands.append(os.path.join(HERE, "..", "..", "..", "shared", "conformance", "api-errors.jsonl"))
    cands.append("/work/shared/conformance/api-errors.jsonl")
    for p in cands:
        if os.path.isfile(p):
            return p
    return cands[-1]


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: %s <path/to/ebridge> [api-errors.jsonl]" % sys.argv[0])
    binary = os.path.abspath(sys.argv[1])
    corpus = sys.argv[2] if len(sys.argv) > 2 else default_corpus()
    with open(corpus, encoding="utf-8") as f:
        lines = [json.loads(l) for l in f if l.strip()]
    print("api-errors: %s (%d lines) against %s" % (corpus, len(lines), binary))
    passed = failed = 0
    later = []
    try:
        for line in lines:
            if line["operation"] in LATER_OPS:
                later.append(line)
                continue
            try:
                ok, detail, note = run_line(binary, line)
            except Exception as e:  # noqa: BLE001 - a crash of one case is a failure of that case
                ok, detail, note = False, "runner error: %r" % e, ""
            if ok:
                passed += 1
                print("PASS  %s  [%s]%s" % (line["name"], line["operation"], note), flush=True)
            else:
                failed += 1
                print("FAIL  %s  [%s]%s\n       %s" % (line["name"], line["operation"], note, detail), flush=True)
        for line in later:
            print("LATER %s  [%s] belongs to a later issue" % (line["name"], line["operation"]))
    finally:
        common.stop_all()
    in_scope = passed + failed
    if in_scope != EXPECTED_IN_SCOPE:
        print("note: %d lines in scope, %d expected" % (in_scope, EXPECTED_IN_SCOPE))
    print("api-errors: %d passed, %d failed, %d belong to later issues (of %d)" % (passed, failed, len(later),
                                                                                    len(lines)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
