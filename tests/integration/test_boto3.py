#!/usr/bin/python3
"""Integration test: every operation of the API server through Debian's boto3 (python3-boto3).

usage: /usr/bin/python3 tests/integration/test_boto3.py <path/to/ebridge>

Starts real servers on free loopback ports (fresh temp data dirs) and drives them with boto3:
buses, rules, targets, PutEvents, TestEventPattern, tags, permissions, pagination, partial
failures, per-region state, restart with the same data dir, kill -9 durability, delivery jobs
of disabled rules, --strict-sources, SigV4 verification and the non-loopback listen guard.
"""

import datetime
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Checker, Server, boto3_client, raw_call  # noqa: E402

import boto3  # noqa: E402
import botocore  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

ACCOUNT = "123456789012"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SQS = "arn:aws:sqs:us-east-1:%s:it-queue" % ACCOUNT
SQS2 = "arn:aws:sqs:us-east-1:%s:it-queue-2" % ACCOUNT
LAMBDA = "arn:aws:lambda:us-east-1:%s:function:it-fn" % ACCOUNT


def bus_arn(name, region="us-east-1", account=ACCOUNT):
    return "arn:aws:events:%s:%s:event-bus/%s" % (region, account, name)


def rule_arn(name, bus="default", region="us-east-1", account=ACCOUNT):
    if bus == "default":
        return "arn:aws:events:%s:%s:rule/%s" % (region, account, name)
    return "arn:aws:events:%s:%s:rule/%s/%s" % (region, account, bus, name)


def envelope(source="it.orders", detail_type="OrderPlaced", detail=None, **over):
    ev = {"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": detail_type,
          "source": source, "account": ACCOUNT, "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
          "resources": [], "detail": detail if detail is not None else {"a": 1}}
    ev.update(over)
    return json.dumps(ev)


class Recorder:
    """Keeps the last request/response of a client (for failure reports) and checks that every
    response carries x-amzn-RequestId."""

    def __init__(self, client):
        self.req = None
        self.resp = None
        self.responses = 0
        self.missing_ids = []
        client.meta.events.register("before-send.events", self._before_send)
        client.meta.events.register("after-call.events", self._after_call)

    def _before_send(self, request, **kw):
        body = request.body
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        self.req = (request.headers.get("X-Amz-Target"), body)

    def _after_call(self, http_response, parsed, model, **kw):
        self.responses += 1
        rid = http_response.headers.get("x-amzn-RequestId")
        if not rid or not UUID_RE.match(rid):
            self.missing_ids.append(model.name)
        body = http_response.content.decode("utf-8", "replace") if http_response.content else ""
        self.resp = (http_response.status_code, body)

    def last(self):
        def cut(s):
            s = s or ""
            return s if len(s) < 1500 else s[:1500] + "...(%d bytes)" % len(s)
        t, b = self.req or (None, None)
        st, rb = self.resp or (None, None)
        return "request:  %s %s\nresponse: %s %s" % (t, cut(b), st, cut(rb))


RECORDERS = []


def client(server, region="us-east-1", **kw):
    cl = boto3_client(server, region=region, **kw)
    rec = Recorder(cl)
    RECORDERS.append(rec)
    cl._it_rec = rec
    return cl


def expect_error(c, cl, what, fn, code, message=None, status=400, prefix=None, suffix=None, contains=None,
                 codes=None):
    """fn() must raise ClientError with `code` (or one of `codes`), HTTP `status`, and the message
    (exact / prefix / suffix / substring when given); RequestId present."""
    try:
        r = fn()
    except ClientError as e:
        err = e.response.get("Error", {})
        md = e.response.get("ResponseMetadata", {})
        got_code, got_msg, got_status = err.get("Code"), err.get("Message"), md.get("HTTPStatusCode")
        problems = []
        if codes:
            if got_code not in codes:
                problems.append("code %r not in %r" % (got_code, codes))
        elif got_code != code:
            problems.append("code %r != %r" % (got_code, code))
        if status is not None and got_status != status:
            problems.append("HTTP status %r != %r" % (got_status, status))
        if message is not None and got_msg != message:
            problems.append("message %r != %r" % (got_msg, message))
        if prefix is not None and not (got_msg or "").startswith(prefix):
            problems.append("message %r does not start with %r" % (got_msg, prefix))
        if suffix is not None and not (got_msg or "").endswith(suffix):
            problems.append("message %r does not end with %r" % (got_msg, suffix))
        if contains is not None and contains.lower() not in (got_msg or "").lower():
            problems.append("message %r does not contain %r" % (got_msg, contains))
        if not md.get("RequestId"):
            problems.append("no RequestId")
        return c.ok(not problems, what, "; ".join(problems) + "\n" + cl._it_rec.last())
    except botocore.exceptions.ParamValidationError as e:
        return c.ok(False, what, "client-side validation refused the call: %s" % e)
    return c.ok(False, what, "no error; response %r\n%s" % (strip_md(r), cl._it_rec.last()))


def strip_md(r):
    if isinstance(r, dict):
        return {k: v for k, v in r.items() if k != "ResponseMetadata"}
    return r


def call_ok(c, cl, what, fn):
    """fn() must succeed; returns its response (or None after reporting the failure)."""
    try:
        r = fn()
    except ClientError as e:
        c.ok(False, what, "%s: %s\n%s" % (e.response.get("Error", {}).get("Code"),
                                          e.response.get("Error", {}).get("Message"), cl._it_rec.last()))
        return None
    except botocore.exceptions.ParamValidationError as e:
        c.ok(False, what, "client-side validation refused the call: %s" % e)
        return None
    ok = bool(r.get("ResponseMetadata", {}).get("RequestId"))
    c.ok(ok, what, "" if ok else "no RequestId\n" + cl._it_rec.last())
    return r


def tagdict(tags):
    return {t["Key"]: t["Value"] for t in tags}


# =====================================================================================
def t_buses(c, ev):
    # (botocore 1.29's model has no Description/KmsKeyIdentifier/DeadLetterConfig for buses:
    #  those are covered by test_newer_sdk.py)
    r = call_ok(c, ev, "CreateEventBus orders (with Tags)",
                lambda: ev.create_event_bus(Name="orders", Tags=[{"Key": "team", "Value": "shop"}]))
    if r:
        c.eq(r.get("EventBusArn"), bus_arn("orders"), "CreateEventBus returns the bus ARN")
    expect_error(c, ev, "CreateEventBus of an existing name -> ResourceAlreadyExistsException",
                 lambda: ev.create_event_bus(Name="orders"), "ResourceAlreadyExistsException",
                 "Event bus orders already exists.")
    expect_error(c, ev, "CreateEventBus named default -> ResourceAlreadyExistsException",
                 lambda: ev.create_event_bus(Name="default"), "ResourceAlreadyExistsException",
                 "Event bus default already exists.")
    d = call_ok(c, ev, "DescribeEventBus orders", lambda: ev.describe_event_bus(Name="orders"))
    if d:
        c.eq((d.get("Name"), d.get("Arn")), ("orders", bus_arn("orders")), "DescribeEventBus: Name, Arn")
        # botocore 1.29 does not model CreationTime/LastModifiedTime: look at the wire
        st, _, raw, _ = raw_call(ev.meta.endpoint_url, "DescribeEventBus", {"Name": "orders"})
        c.ok(st == 200 and isinstance((raw or {}).get("CreationTime"), (int, float)) and
             isinstance(raw.get("LastModifiedTime"), (int, float)) and abs(raw["CreationTime"] - time.time()) < 600,
             "DescribeEventBus (raw): CreationTime and LastModifiedTime are epoch seconds", repr(raw))
        c.ok("Policy" not in d, "DescribeEventBus: no Policy before PutPermission", repr(d))
    d = call_ok(c, ev, "DescribeEventBus by ARN", lambda: ev.describe_event_bus(Name=bus_arn("orders")))
    if d:
        c.eq(d.get("Name"), "orders", "DescribeEventBus by ARN names the bus")
    d = call_ok(c, ev, "DescribeEventBus without Name", lambda: ev.describe_event_bus())
    if d:
        c.eq((d.get("Name"), d.get("Arn")), ("default", bus_arn("default")), "DescribeEventBus without Name = default")
    expect_error(c, ev, "DescribeEventBus of a missing bus -> ResourceNotFoundException",
                 lambda: ev.describe_event_bus(Name="no-such-bus"), "ResourceNotFoundException",
                 "Event bus no-such-bus does not exist.")
    for i in range(5):
        ev.create_event_bus(Name="lb-%02d" % i)
    r = call_ok(c, ev, "ListEventBuses", lambda: ev.list_event_buses())
    if r:
        names = [b["Name"] for b in r.get("EventBuses", [])]
        c.ok({"default", "orders", "lb-00", "lb-04"} <= set(names), "ListEventBuses lists default and custom buses",
             repr(names))
        c.eq(names, sorted(names), "ListEventBuses is in ascending name order")
        dflt = [b for b in r["EventBuses"] if b["Name"] == "default"]
        c.ok(dflt and dflt[0].get("Arn") == bus_arn("default"), "ListEventBuses items carry Name, Arn", repr(dflt))
        c.ok("NextToken" not in r, "ListEventBuses: no NextToken when everything fits", repr(strip_md(r)))
    r = call_ok(c, ev, "ListEventBuses NamePrefix=lb-", lambda: ev.list_event_buses(NamePrefix="lb-"))
    if r:
        c.eq([b["Name"] for b in r["EventBuses"]], ["lb-%02d" % i for i in range(5)], "NamePrefix filters buses")
    pages, tok = [], None
    for _ in range(10):
        kw = {"NamePrefix": "lb-", "Limit": 2}
        if tok:
            kw["NextToken"] = tok
        r = ev.list_event_buses(**kw)
        pages.append([b["Name"] for b in r["EventBuses"]])
        tok = r.get("NextToken")
        if not tok:
            break
    c.eq(pages, [["lb-00", "lb-01"], ["lb-02", "lb-03"], ["lb-04"]], "ListEventBuses Limit=2 pages with NextToken")
    for i in range(5):
        ev.delete_event_bus(Name="lb-%02d" % i)

    # DeleteEventBus
    ev.create_event_bus(Name="doomed")
    ev.put_rule(Name="keeps-bus", EventBusName="doomed", EventPattern='{"source": ["x"]}')
    expect_error(c, ev, "DeleteEventBus refused while the bus has rules (ValidationException)",
                 lambda: ev.delete_event_bus(Name="doomed"), "ValidationException")
    call_ok(c, ev, "DescribeEventBus: the refused bus is still there", lambda: ev.describe_event_bus(Name="doomed"))
    ev.delete_rule(Name="keeps-bus", EventBusName="doomed")
    call_ok(c, ev, "DeleteEventBus once its rules are gone", lambda: ev.delete_event_bus(Name="doomed"))
    expect_error(c, ev, "DescribeEventBus after DeleteEventBus -> ResourceNotFoundException",
                 lambda: ev.describe_event_bus(Name="doomed"), "ResourceNotFoundException",
                 "Event bus doomed does not exist.")
    call_ok(c, ev, "DeleteEventBus of a missing bus succeeds", lambda: ev.delete_event_bus(Name="never-existed"))
    expect_error(c, ev, "DeleteEventBus default -> ValidationException",
                 lambda: ev.delete_event_bus(Name="default"), "ValidationException",
                 "Cannot delete event bus default.")


def t_rules(c, ev):
    pat = '{"source": ["it.orders"], "detail-type": ["OrderPlaced"]}'
    r = call_ok(c, ev, "PutRule with EventPattern on the default bus",
                lambda: ev.put_rule(Name="r-pattern", EventPattern=pat, Description="orders placed"))
    if r:
        c.eq(r.get("RuleArn"), rule_arn("r-pattern"), "PutRule RuleArn on the default bus")
    r = call_ok(c, ev, "PutRule on custom bus orders",
                lambda: ev.put_rule(Name="r1", EventBusName="orders", EventPattern=pat))
    if r:
        c.eq(r.get("RuleArn"), rule_arn("r1", "orders"), "PutRule RuleArn on a custom bus is rule/BUS/NAME")
    r = call_ok(c, ev, "PutRule on a custom bus given by ARN",
                lambda: ev.put_rule(Name="r2", EventBusName=bus_arn("orders"), EventPattern=pat))
    if r:
        c.eq(r.get("RuleArn"), rule_arn("r2", "orders"), "PutRule with EventBusName ARN")
    d = call_ok(c, ev, "DescribeRule r-pattern", lambda: ev.describe_rule(Name="r-pattern"))
    if d:
        want = {"Name": "r-pattern", "Arn": rule_arn("r-pattern"), "EventPattern": pat, "State": "ENABLED",
                "Description": "orders placed", "EventBusName": "default", "CreatedBy": ACCOUNT}
        c.eq({k: d.get(k) for k in want}, want, "DescribeRule fields (pattern stored verbatim, State ENABLED)")
        c.ok("ManagedBy" not in d and "ScheduleExpression" not in d, "DescribeRule: no ManagedBy/ScheduleExpression",
             repr(strip_md(d)))
    d = call_ok(c, ev, "DescribeRule on a custom bus", lambda: ev.describe_rule(Name="r1", EventBusName="orders"))
    if d:
        c.eq((d.get("EventBusName"), d.get("Arn")), ("orders", rule_arn("r1", "orders")),
             "DescribeRule on a custom bus: EventBusName and Arn")
    expect_error(c, ev, "DescribeRule of a missing rule -> ResourceNotFoundException",
                 lambda: ev.describe_rule(Name="nope"), "ResourceNotFoundException",
                 "Rule nope does not exist on EventBus default.")
    expect_error(c, ev, "DescribeRule of a missing rule on a custom bus",
                 lambda: ev.describe_rule(Name="nope", EventBusName="orders"), "ResourceNotFoundException",
                 "Rule nope does not exist on EventBus orders.")
    expect_error(c, ev, "DescribeRule on a missing bus -> ResourceNotFoundException",
                 lambda: ev.describe_rule(Name="r1", EventBusName="no-bus"), "ResourceNotFoundException",
                 "Event bus no-bus does not exist.")

    # schedules
    r = call_ok(c, ev, "PutRule with ScheduleExpression rate(5 minutes)",
                lambda: ev.put_rule(Name="r-sched", ScheduleExpression="rate(5 minutes)"))
    d = ev.describe_rule(Name="r-sched")
    c.ok(d.get("ScheduleExpression") == "rate(5 minutes)" and "EventPattern" not in d,
         "DescribeRule shows the schedule", repr(strip_md(d)))
    call_ok(c, ev, "PutRule with both EventPattern and cron() schedule",
            lambda: ev.put_rule(Name="r-both", ScheduleExpression="cron(0 12 * * ? *)", EventPattern=pat))
    d = ev.describe_rule(Name="r-both")
    c.ok(d.get("ScheduleExpression") == "cron(0 12 * * ? *)" and d.get("EventPattern") == pat,
         "DescribeRule shows pattern and schedule", repr(strip_md(d)))
    expect_error(c, ev, "PutRule with an invalid schedule -> ValidationException",
                 lambda: ev.put_rule(Name="r-bad", ScheduleExpression="rate(5 minute)"), "ValidationException",
                 "Parameter ScheduleExpression is not valid.")
    expect_error(c, ev, "PutRule with cron(0 1 * * * *) -> ValidationException",
                 lambda: ev.put_rule(Name="r-bad", ScheduleExpression="cron(0 1 * * * *)"), "ValidationException",
                 "Parameter ScheduleExpression is not valid.")
    expect_error(c, ev, "PutRule schedule on a custom bus -> ValidationException",
                 lambda: ev.put_rule(Name="r-bad", EventBusName="orders", ScheduleExpression="rate(1 minute)"),
                 "ValidationException", "ScheduleExpression is supported only on the default event bus.")
    expect_error(c, ev, "PutRule without pattern and schedule -> ValidationException",
                 lambda: ev.put_rule(Name="r-bad"), "ValidationException")
    expect_error(c, ev, "PutRule on a missing bus -> ResourceNotFoundException",
                 lambda: ev.put_rule(Name="r-bad", EventBusName="no-bus", EventPattern=pat),
                 "ResourceNotFoundException", "Event bus no-bus does not exist.")

    # invalid patterns: AWS's messages (first line; from shared/conformance/patterns.jsonl)
    for p, msg in [('{"resources": []}', "Event pattern is not valid. Reason: Empty arrays are not allowed"),
                   ('{"detail": {"sourceIPAddress": [{"cidr": "bad-filter"}]}}',
                    "Event pattern is not valid. Reason: Malformed CIDR, one '/' required"),
                   ('{"detail": {"state": [{"anything-but": {"prefix": 123}}]}}',
                    "Event pattern is not valid. Reason: prefix/suffix match pattern must be a string")]:
        try:
            ev.put_rule(Name="r-badpat", EventPattern=p)
            c.ok(False, "PutRule invalid pattern %s -> InvalidEventPatternException" % p,
                 "accepted\n" + ev._it_rec.last())
        except ClientError as e:
            got = (e.response["Error"]["Code"], e.response["Error"]["Message"].split("\n")[0],
                   e.response["ResponseMetadata"]["HTTPStatusCode"])
            c.eq(got, ("InvalidEventPatternException", msg, 400),
                 "PutRule invalid pattern %s -> InvalidEventPatternException with AWS's message" % p)
    expect_error(c, ev, "PutRule with a non-JSON pattern -> InvalidEventPatternException",
                 lambda: ev.put_rule(Name="r-badpat", EventPattern="{not json"), "InvalidEventPatternException",
                 prefix="Event pattern is not valid. Reason: ")
    expect_error(c, ev, "DescribeRule: the rejected rule was not created",
                 lambda: ev.describe_rule(Name="r-badpat"), "ResourceNotFoundException")

    # replace semantics
    ev.put_rule(Name="r-repl", EventPattern=pat, Description="first", RoleArn="arn:aws:iam::%s:role/it" % ACCOUNT,
                State="DISABLED", Tags=[{"Key": "k1", "Value": "v1"}])
    ev.put_targets(Rule="r-repl", Targets=[{"Id": "t1", "Arn": SQS}])
    d = ev.describe_rule(Name="r-repl")
    c.ok(d.get("State") == "DISABLED" and d.get("Description") == "first" and d.get("RoleArn"),
         "PutRule with State DISABLED, Description, RoleArn", repr(strip_md(d)))
    pat2 = '{"source": ["it.other"]}'
    r = call_ok(c, ev, "PutRule again on the same name (replace)",
                lambda: ev.put_rule(Name="r-repl", EventPattern=pat2, Tags=[{"Key": "k2", "Value": "v2"}]))
    d = ev.describe_rule(Name="r-repl")
    c.eq({k: d.get(k) for k in ("EventPattern", "State", "Description", "RoleArn")},
         {"EventPattern": pat2, "State": "ENABLED", "Description": None, "RoleArn": None},
         "PutRule replace: omitted Description/RoleArn/State are reset")
    tags = ev.list_tags_for_resource(ResourceARN=rule_arn("r-repl"))["Tags"]
    c.eq(tagdict(tags), {"k1": "v1"}, "PutRule replace: Tags only apply at creation")
    t = ev.list_targets_by_rule(Rule="r-repl")["Targets"]
    c.eq([x["Id"] for x in t], ["t1"], "PutRule replace keeps the rule's targets")
    ev.remove_targets(Rule="r-repl", Ids=["t1"])
    ev.delete_rule(Name="r-repl")

    # Enable / Disable
    call_ok(c, ev, "DisableRule", lambda: ev.disable_rule(Name="r-pattern"))
    c.eq(ev.describe_rule(Name="r-pattern")["State"], "DISABLED", "DisableRule sets State DISABLED")
    call_ok(c, ev, "EnableRule", lambda: ev.enable_rule(Name="r-pattern"))
    c.eq(ev.describe_rule(Name="r-pattern")["State"], "ENABLED", "EnableRule sets State ENABLED")
    call_ok(c, ev, "DisableRule on a custom bus", lambda: ev.disable_rule(Name="r1", EventBusName="orders"))
    c.eq(ev.describe_rule(Name="r1", EventBusName="orders")["State"], "DISABLED", "custom-bus rule disabled")
    ev.enable_rule(Name="r1", EventBusName="orders")
    expect_error(c, ev, "EnableRule of a missing rule -> ResourceNotFoundException",
                 lambda: ev.enable_rule(Name="nope"), "ResourceNotFoundException",
                 "Rule nope does not exist on EventBus default.")
    expect_error(c, ev, "DisableRule of a missing rule -> ResourceNotFoundException",
                 lambda: ev.disable_rule(Name="nope"), "ResourceNotFoundException",
                 "Rule nope does not exist on EventBus default.")

    # DeleteRule
    ev.put_rule(Name="r-del", EventPattern=pat)
    ev.put_targets(Rule="r-del", Targets=[{"Id": "t1", "Arn": SQS}])
    expect_error(c, ev, "DeleteRule refused while targets remain",
                 lambda: ev.delete_rule(Name="r-del"), "ValidationException",
                 "Rule can't be deleted since it has targets.")
    call_ok(c, ev, "DescribeRule: the refused rule is still there", lambda: ev.describe_rule(Name="r-del"))
    ev.remove_targets(Rule="r-del", Ids=["t1"])
    call_ok(c, ev, "DeleteRule after RemoveTargets", lambda: ev.delete_rule(Name="r-del"))
    expect_error(c, ev, "DescribeRule after DeleteRule -> ResourceNotFoundException",
                 lambda: ev.describe_rule(Name="r-del"), "ResourceNotFoundException",
                 "Rule r-del does not exist on EventBus default.")
    call_ok(c, ev, "DeleteRule of a missing rule succeeds", lambda: ev.delete_rule(Name="r-del"))
    expect_error(c, ev, "DeleteRule on a missing bus -> ResourceNotFoundException",
                 lambda: ev.delete_rule(Name="x", EventBusName="no-bus"), "ResourceNotFoundException",
                 "Event bus no-bus does not exist.")


def t_list_rules(c, ev):
    ev.create_event_bus(Name="pages")
    names = ["page-%02d" % i for i in range(25)]
    for n in names:
        ev.put_rule(Name=n, EventBusName="pages", EventPattern='{"source": ["%s"]}' % n)
    ev.put_rule(Name="other", EventBusName="pages", EventPattern='{"source": ["o"]}')
    pages, tok = [], None
    for _ in range(10):
        kw = {"EventBusName": "pages", "NamePrefix": "page-", "Limit": 10}
        if tok:
            kw["NextToken"] = tok
        r = ev.list_rules(**kw)
        pages.append([x["Name"] for x in r["Rules"]])
        tok = r.get("NextToken")
        if not tok:
            break
    c.eq([len(p) for p in pages], [10, 10, 5], "ListRules Limit=10 over 25 rules: pages of 10, 10, 5")
    c.eq(sum(pages, []), names, "ListRules pages: every rule once, ascending")
    r = ev.list_rules(EventBusName="pages", NamePrefix="page-1")
    c.eq([x["Name"] for x in r["Rules"]], ["page-1%d" % i for i in range(10)], "ListRules NamePrefix=page-1")
    item = r["Rules"][0]
    want = {"Name": "page-10", "Arn": rule_arn("page-10", "pages"), "EventPattern": '{"source": ["page-10"]}',
            "State": "ENABLED", "EventBusName": "pages"}
    c.eq({k: item.get(k) for k in want}, want, "ListRules items: Name, Arn, EventPattern, State, EventBusName")
    r = ev.list_rules(EventBusName="pages")
    c.eq(len(r["Rules"]), 26, "ListRules without Limit returns all 26")
    pg = ev.get_paginator("list_rules")
    got = []
    npages = 0
    for page in pg.paginate(EventBusName="pages", NamePrefix="page-", PaginationConfig={"PageSize": 10}):
        npages += 1
        got += [x["Name"] for x in page["Rules"]]
    c.eq((npages, got), (3, names), "botocore ListRules paginator (PageSize 10): 3 pages, 25 rules")
    res = pg.paginate(EventBusName="pages", NamePrefix="page-",
                      PaginationConfig={"PageSize": 10, "MaxItems": 12}).build_full_result()
    c.ok(len(res["Rules"]) == 12 and res.get("NextToken"), "paginator MaxItems 12: 12 rules and a resume token",
         repr({k: v for k, v in res.items() if k != "Rules"}))
    expect_error(c, ev, "ListRules on a missing bus -> ResourceNotFoundException",
                 lambda: ev.list_rules(EventBusName="no-bus"), "ResourceNotFoundException",
                 "Event bus no-bus does not exist.")
    try:
        ev.list_rules(EventBusName="pages", NextToken="!!not-a-token!!")
        c.ok(False, "ListRules with a forged NextToken is rejected", ev._it_rec.last())
    except ClientError as e:
        c.ok(e.response["ResponseMetadata"]["HTTPStatusCode"] == 400,
             "ListRules with a forged NextToken is rejected with HTTP 400 (%s)" % e.response["Error"]["Code"],
             ev._it_rec.last())
    for n in names + ["other"]:
        ev.delete_rule(Name=n, EventBusName="pages")
    ev.delete_event_bus(Name="pages")


def t_rule_names_by_target(c, ev):
    for n, arn in [("lr-a", SQS), ("lr-b", SQS2), ("lr-c", SQS), ("lr-d", SQS)]:
        ev.put_rule(Name=n, EventPattern='{"source": ["lr"]}')
        ev.put_targets(Rule=n, Targets=[{"Id": "t", "Arn": arn}])
    ev.put_rule(Name="lr-x", EventBusName="orders", EventPattern='{"source": ["lr"]}')
    ev.put_targets(Rule="lr-x", EventBusName="orders", Targets=[{"Id": "t", "Arn": SQS}])
    r = call_ok(c, ev, "ListRuleNamesByTarget", lambda: ev.list_rule_names_by_target(TargetArn=SQS))
    if r:
        got = [n for n in r["RuleNames"] if n.startswith("lr-")]
        c.eq(got, ["lr-a", "lr-c", "lr-d"], "ListRuleNamesByTarget: rules of the default bus targeting the ARN")
    r = ev.list_rule_names_by_target(TargetArn=SQS, EventBusName="orders")
    c.eq(r["RuleNames"], ["lr-x"], "ListRuleNamesByTarget with EventBusName")
    r = ev.list_rule_names_by_target(TargetArn="arn:aws:sqs:us-east-1:%s:nobody" % ACCOUNT)
    c.eq(r["RuleNames"], [], "ListRuleNamesByTarget: empty list for an unused ARN")
    pages, tok = [], None
    for _ in range(10):
        kw = {"TargetArn": SQS2, "Limit": 1}
        if tok:
            kw["NextToken"] = tok
        r = ev.list_rule_names_by_target(**kw)
        pages.append(r["RuleNames"])
        tok = r.get("NextToken")
        if not tok:
            break
    c.eq(pages, [["lr-b"]], "ListRuleNamesByTarget Limit=1 single page without NextToken")
    got = []
    for page in ev.get_paginator("list_rule_names_by_target").paginate(TargetArn=SQS,
                                                                       PaginationConfig={"PageSize": 1}):
        got += page["RuleNames"]
    c.eq([n for n in got if n.startswith("lr-")], ["lr-a", "lr-c", "lr-d"],
         "botocore ListRuleNamesByTarget paginator (PageSize 1)")
    expect_error(c, ev, "ListRuleNamesByTarget on a missing bus -> ResourceNotFoundException",
                 lambda: ev.list_rule_names_by_target(TargetArn=SQS, EventBusName="no-bus"),
                 "ResourceNotFoundException", "Event bus no-bus does not exist.")
    for n in ["lr-a", "lr-b", "lr-c", "lr-d"]:
        ev.remove_targets(Rule=n, Ids=["t"])
        ev.delete_rule(Name=n)
    ev.remove_targets(Rule="lr-x", EventBusName="orders", Ids=["t"])
    ev.delete_rule(Name="lr-x", EventBusName="orders")


def t_targets(c, ev):
    ev.put_rule(Name="t-rule", EventPattern='{"source": ["it.t"]}')
    five = [{"Id": "t%d" % i, "Arn": SQS} for i in range(5)]
    r = call_ok(c, ev, "PutTargets with 5 targets", lambda: ev.put_targets(Rule="t-rule", Targets=five))
    if r:
        c.eq((r.get("FailedEntryCount"), r.get("FailedEntries")), (0, []),
             "PutTargets: FailedEntryCount 0, FailedEntries []")
    expect_error(c, ev, "PutTargets: a 6th target -> LimitExceededException",
                 lambda: ev.put_targets(Rule="t-rule", Targets=[{"Id": "t5", "Arn": SQS}]),
                 "LimitExceededException", "The requested resource exceeds the maximum number allowed.")
    c.eq(len(ev.list_targets_by_rule(Rule="t-rule")["Targets"]), 5, "the refused PutTargets changed nothing")
    r = call_ok(c, ev, "PutTargets reusing Id t0 (replace)",
                lambda: ev.put_targets(Rule="t-rule", Targets=[{"Id": "t0", "Arn": LAMBDA, "Input": '{"k": 1}'}]))
    ts = ev.list_targets_by_rule(Rule="t-rule")["Targets"]
    t0 = [t for t in ts if t["Id"] == "t0"]
    c.ok(len(ts) == 5 and t0 and t0[0] == {"Id": "t0", "Arn": LAMBDA, "Input": '{"k": 1}'},
         "PutTargets replace by Id: same count, new Arn and Input", repr(ts))
    # pagination
    pages, tok = [], None
    for _ in range(10):
        kw = {"Rule": "t-rule", "Limit": 2}
        if tok:
            kw["NextToken"] = tok
        r = ev.list_targets_by_rule(**kw)
        pages.append([t["Id"] for t in r["Targets"]])
        tok = r.get("NextToken")
        if not tok:
            break
    c.eq(pages, [["t0", "t1"], ["t2", "t3"], ["t4"]], "ListTargetsByRule Limit=2 pages with NextToken")
    got = []
    for page in ev.get_paginator("list_targets_by_rule").paginate(Rule="t-rule", PaginationConfig={"PageSize": 2}):
        got += [t["Id"] for t in page["Targets"]]
    c.eq(got, ["t0", "t1", "t2", "t3", "t4"], "botocore ListTargetsByRule paginator (PageSize 2)")
    # RemoveTargets
    r = call_ok(c, ev, "RemoveTargets t1 and an unknown Id",
                lambda: ev.remove_targets(Rule="t-rule", Ids=["t1", "no-such-id"]))
    if r:
        c.eq(r.get("FailedEntryCount"), 0, "RemoveTargets: unknown Ids are ignored (FailedEntryCount 0)")
    c.eq([t["Id"] for t in ev.list_targets_by_rule(Rule="t-rule")["Targets"]], ["t0", "t2", "t3", "t4"],
         "RemoveTargets removed t1 only")
    expect_error(c, ev, "RemoveTargets on a missing rule -> ResourceNotFoundException",
                 lambda: ev.remove_targets(Rule="nope", Ids=["t0"]), "ResourceNotFoundException",
                 "Rule nope does not exist on EventBus default.")
    expect_error(c, ev, "PutTargets on a missing rule -> ResourceNotFoundException",
                 lambda: ev.put_targets(Rule="nope", Targets=[{"Id": "a", "Arn": SQS}]), "ResourceNotFoundException",
                 "Rule nope does not exist on EventBus default.")
    expect_error(c, ev, "ListTargetsByRule on a missing rule -> ResourceNotFoundException",
                 lambda: ev.list_targets_by_rule(Rule="nope"), "ResourceNotFoundException",
                 "Rule nope does not exist on EventBus default.")
    # input modes
    expect_error(c, ev, "PutTargets with Input and InputPath -> ValidationException",
                 lambda: ev.put_targets(Rule="t-rule", Targets=[{"Id": "bad1", "Arn": SQS, "Input": "{}",
                                                                  "InputPath": "$.detail"}]),
                 "ValidationException", "Only one of Input, InputPath, or InputTransformer must be provided for "
                 "target bad1.")
    expect_error(c, ev, "PutTargets with InputPath and InputTransformer -> ValidationException",
                 lambda: ev.put_targets(Rule="t-rule", Targets=[
                     {"Id": "bad2", "Arn": SQS, "InputPath": "$.detail",
                      "InputTransformer": {"InputPathsMap": {"s": "$.source"}, "InputTemplate": "<s>"}}]),
                 "ValidationException", "Only one of Input, InputPath, or InputTransformer must be provided for "
                 "target bad2.")
    expect_error(c, ev, "PutTargets: InputTemplate placeholder missing from InputPathsMap -> ValidationException",
                 lambda: ev.put_targets(Rule="t-rule", Targets=[
                     {"Id": "bad3", "Arn": SQS, "InputTransformer": {
                         "InputPathsMap": {"s": "$.source"}, "InputTemplate": '"from <s> to <nope>"'}}]),
                 "ValidationException", "InputTemplate for target bad3 contains invalid placeholder nope.")
    expect_error(c, ev, "PutTargets: Input that is not JSON -> ValidationException",
                 lambda: ev.put_targets(Rule="t-rule", Targets=[{"Id": "bad4", "Arn": SQS, "Input": "{nope"}]),
                 "ValidationException")
    c.eq([t["Id"] for t in ev.list_targets_by_rule(Rule="t-rule")["Targets"]], ["t0", "t2", "t3", "t4"],
         "refused PutTargets calls stored nothing")
    tr = {"InputPathsMap": {"src": "$.source", "id": "$.detail.id"},
          "InputTemplate": '{"src": <src>, "id": <id>, "rule": <aws.events.rule-name>, "ev": <aws.events.event.json>}'}
    full = {"Id": "t1", "Arn": SQS2, "RoleArn": "arn:aws:iam::%s:role/it" % ACCOUNT, "InputTransformer": tr,
            "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 600},
            "DeadLetterConfig": {"Arn": "arn:aws:sqs:us-east-1:%s:dlq" % ACCOUNT},
            "SqsParameters": {"MessageGroupId": "g1"}}
    call_ok(c, ev, "PutTargets with InputTransformer (predefined placeholders), RetryPolicy, DeadLetterConfig",
            lambda: ev.put_targets(Rule="t-rule", Targets=[full]))
    t1 = [t for t in ev.list_targets_by_rule(Rule="t-rule")["Targets"] if t["Id"] == "t1"]
    c.eq(t1[0] if t1 else None, full, "ListTargetsByRule echoes every target member")
    ev.remove_targets(Rule="t-rule", Ids=["t0", "t1", "t2", "t3", "t4"])
    c.eq(ev.list_targets_by_rule(Rule="t-rule")["Targets"], [], "ListTargetsByRule of a rule without targets: []")
    ev.delete_rule(Name="t-rule")


def t_put_events(c, ev):
    ev.put_rule(Name="pe-rule", EventPattern='{"source": ["it.pe"]}')
    ev.put_targets(Rule="pe-rule", Targets=[{"Id": "t", "Arn": SQS}])
    entries = [
        {"Source": "it.pe", "DetailType": "X", "Detail": '{"n": 1}'},
        {"Source": "it.pe", "DetailType": "X"},
        {"Source": "it.pe", "DetailType": "X", "Detail": "[]"},
        {"DetailType": "X", "Detail": "{}"},
        {"Source": "it.pe", "DetailType": "", "Detail": "{}"},
        {"Source": "it.pe", "DetailType": "X", "Detail": "not json"},
        {"Source": "it.pe", "DetailType": "X", "Detail": '"a string"'},
        {"Source": "it.pe", "DetailType": "X", "Detail": '{"n": 2}', "Resources": ["arn:aws:s3:::b"],
         "Time": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)},
    ]
    r = call_ok(c, ev, "PutEvents with partial failures", lambda: ev.put_events(Entries=entries))
    if r:
        es = r.get("Entries", [])
        c.eq(r.get("FailedEntryCount"), 6, "PutEvents: FailedEntryCount counts the failed entries")
        c.eq(len(es), len(entries), "PutEvents: one result per entry")
        if len(es) == len(entries):
            ok0 = set(es[0]) == {"EventId"} and UUID_RE.match(es[0]["EventId"])
            c.ok(ok0 and set(es[7]) == {"EventId"}, "PutEvents: accepted entries carry only an EventId (UUID)",
                 repr(es))
            want = [
                ("InvalidArgument", "Parameter Detail is not valid. Reason: Detail is a required argument."),
                ("MalformedDetail", "Detail is malformed."),
                ("InvalidArgument", "Parameter Source is not valid. Reason: Source is a required argument."),
                ("InvalidArgument", "Parameter DetailType is not valid. Reason: DetailType is a required argument."),
                ("MalformedDetail", "Detail is malformed."),
                ("MalformedDetail", "Detail is malformed."),
            ]
            got = [(e.get("ErrorCode"), e.get("ErrorMessage")) for e in es[1:7]]
            c.eq(got, want, "PutEvents: per-entry ErrorCode/ErrorMessage as AWS")
            c.ok(all("EventId" not in e for e in es[1:7]), "PutEvents: failed entries have no EventId", repr(es))
    ten = [{"Source": "it.pe", "DetailType": "X", "Detail": '{"i": %d}' % i} for i in range(10)]
    r = call_ok(c, ev, "PutEvents with 10 entries", lambda: ev.put_events(Entries=ten))
    if r:
        c.ok(r.get("FailedEntryCount") == 0 and len(r.get("Entries", [])) == 10 and
             len({e.get("EventId") for e in r["Entries"]}) == 10, "PutEvents 10 entries: 10 distinct EventIds",
             repr(strip_md(r)))
    expect_error(c, ev, "PutEvents with 11 entries -> ValidationException",
                 lambda: ev.put_events(Entries=ten + ten[:1]), "ValidationException",
                 prefix="1 validation error detected: Value '",
                 suffix="' at 'entries' failed to satisfy constraint: Member must have length less than or equal to 10")
    # sizes (reference 4.3.1): Source + DetailType + Detail (+ Resources, + 14 for Time); total < 262144
    base = len("it.pe") + len("X")
    just = [{"Source": "it.pe", "DetailType": "X", "Detail": '{"p": "%s"}' % ("a" * (262143 - base - 9))}]
    c.eq(len(just[0]["Detail"]) + base, 262143, "(size of the just-under-limit entry is 262143)")
    r = call_ok(c, ev, "PutEvents with a total size of 262143 bytes is accepted", lambda: ev.put_events(Entries=just))
    if r:
        c.eq(r.get("FailedEntryCount"), 0, "262143-byte entry accepted")
    at = [{"Source": "it.pe", "DetailType": "X", "Detail": '{"p": "%s"}' % ("a" * (262144 - base - 9))}]
    expect_error(c, ev, "PutEvents with a total size of 262144 bytes -> ValidationException",
                 lambda: ev.put_events(Entries=at), "ValidationException",
                 "Total size of the entries in the request is over the limit.")
    two = [{"Source": "it.pe", "DetailType": "X", "Detail": '{"p": "%s"}' % ("a" * 140000)}] * 2
    expect_error(c, ev, "PutEvents: the limit applies to the sum over entries",
                 lambda: ev.put_events(Entries=two), "ValidationException",
                 "Total size of the entries in the request is over the limit.")
    res = [{"Source": "it.pe", "DetailType": "X", "Detail": '{"p": "%s"}' % ("a" * (262100 - base - 9)),
            "Resources": ["r" * 50]}]
    expect_error(c, ev, "PutEvents: Resources count towards the size",
                 lambda: ev.put_events(Entries=res), "ValidationException",
                 "Total size of the entries in the request is over the limit.")
    tm = [{"Source": "it.pe", "DetailType": "X", "Detail": '{"p": "%s"}' % ("a" * (262135 - base - 9)),
           "Time": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)}]
    expect_error(c, ev, "PutEvents: Time counts 14 bytes towards the size",
                 lambda: ev.put_events(Entries=tm), "ValidationException",
                 "Total size of the entries in the request is over the limit.")
    # unknown bus
    r = call_ok(c, ev, "PutEvents to a bus that does not exist is accepted",
                lambda: ev.put_events(Entries=[{"Source": "it.pe", "DetailType": "X", "Detail": "{}",
                                                "EventBusName": "no-such-bus"}]))
    if r:
        c.ok(r.get("FailedEntryCount") == 0 and UUID_RE.match(r["Entries"][0].get("EventId", "")),
             "PutEvents unknown bus: EventId returned, FailedEntryCount 0", repr(strip_md(r)))
    expect_error(c, ev, "... and the bus still does not exist", lambda: ev.describe_event_bus(Name="no-such-bus"),
                 "ResourceNotFoundException", "Event bus no-such-bus does not exist.")
    r = call_ok(c, ev, "PutEvents to a custom bus by ARN",
                lambda: ev.put_events(Entries=[{"Source": "it.pe", "DetailType": "X", "Detail": "{}",
                                                "EventBusName": bus_arn("orders")}]))
    if r:
        c.eq(r.get("FailedEntryCount"), 0, "PutEvents custom bus ARN accepted")
    r = call_ok(c, ev, "PutEvents with an aws.* source (accepted without --strict-sources)",
                lambda: ev.put_events(Entries=[{"Source": "aws.ec2", "DetailType": "X", "Detail": "{}"}]))
    if r:
        c.eq(r.get("FailedEntryCount"), 0, "aws.ec2 source accepted by default")
    ev.remove_targets(Rule="pe-rule", Ids=["t"])
    ev.delete_rule(Name="pe-rule")


def t_test_event_pattern(c, ev):
    pat = '{"source": ["it.orders"], "detail": {"amount": [{"numeric": [">", 100]}]}}'
    r = call_ok(c, ev, "TestEventPattern (match)",
                lambda: ev.test_event_pattern(EventPattern=pat, Event=envelope(detail={"amount": 150})))
    if r:
        c.eq(r.get("Result"), True, "TestEventPattern Result true")
    r = call_ok(c, ev, "TestEventPattern (no match)",
                lambda: ev.test_event_pattern(EventPattern=pat, Event=envelope(detail={"amount": 50})))
    if r:
        c.eq(r.get("Result"), False, "TestEventPattern Result false")
    r = ev.test_event_pattern(EventPattern=pat, Event=envelope(source="other", detail={"amount": 150}))
    c.eq(r.get("Result"), False, "TestEventPattern: other source does not match")
    expect_error(c, ev, "TestEventPattern with a bad pattern -> InvalidEventPatternException",
                 lambda: ev.test_event_pattern(EventPattern='{"source": "not-an-array"}', Event=envelope()),
                 "InvalidEventPatternException", prefix="Event pattern is not valid. Reason: ")
    expect_error(c, ev, "TestEventPattern with an empty-array pattern -> AWS's message",
                 lambda: ev.test_event_pattern(EventPattern='{"resources": []}', Event=envelope()),
                 "InvalidEventPatternException", prefix="Event pattern is not valid. Reason: Empty arrays are "
                 "not allowed")
    expect_error(c, ev, "TestEventPattern with a non-JSON event -> ValidationException",
                 lambda: ev.test_event_pattern(EventPattern=pat, Event="plain string"), "ValidationException",
                 "Parameter Event is not valid.")
    ev_noid = json.loads(envelope())
    del ev_noid["id"]
    expect_error(c, ev, "TestEventPattern with an event lacking id -> ValidationException",
                 lambda: ev.test_event_pattern(EventPattern=pat, Event=json.dumps(ev_noid)), "ValidationException",
                 "Parameter Event is not valid.")
    expect_error(c, ev, "TestEventPattern with an array event -> ValidationException",
                 lambda: ev.test_event_pattern(EventPattern=pat, Event="[1]"), "ValidationException",
                 "Parameter Event is not valid.")


def t_tags(c, ev):
    arn = bus_arn("orders")
    c.eq(tagdict(ev.list_tags_for_resource(ResourceARN=arn)["Tags"]), {"team": "shop"},
         "ListTagsForResource shows the tags given to CreateEventBus")
    call_ok(c, ev, "TagResource on a bus", lambda: ev.tag_resource(
        ResourceARN=arn, Tags=[{"Key": "env", "Value": "test"}, {"Key": "team", "Value": "ops"}]))
    c.eq(tagdict(ev.list_tags_for_resource(ResourceARN=arn)["Tags"]), {"team": "ops", "env": "test"},
         "TagResource adds keys and overwrites existing values")
    call_ok(c, ev, "UntagResource on a bus", lambda: ev.untag_resource(ResourceARN=arn, TagKeys=["team"]))
    c.eq(tagdict(ev.list_tags_for_resource(ResourceARN=arn)["Tags"]), {"env": "test"}, "UntagResource removed team")
    call_ok(c, ev, "UntagResource of an absent key succeeds",
            lambda: ev.untag_resource(ResourceARN=arn, TagKeys=["not-there"]))
    ev.put_rule(Name="tag-rule", EventPattern='{"source": ["x"]}', Tags=[{"Key": "a", "Value": "1"}])
    ra = rule_arn("tag-rule")
    c.eq(tagdict(ev.list_tags_for_resource(ResourceARN=ra)["Tags"]), {"a": "1"}, "PutRule Tags are listed")
    call_ok(c, ev, "TagResource on a default-bus rule", lambda: ev.tag_resource(
        ResourceARN=ra, Tags=[{"Key": "b", "Value": ""}]))
    c.eq(tagdict(ev.list_tags_for_resource(ResourceARN=ra)["Tags"]), {"a": "1", "b": ""},
         "rule tags (empty value allowed)")
    call_ok(c, ev, "UntagResource on a rule", lambda: ev.untag_resource(ResourceARN=ra, TagKeys=["a", "b"]))
    c.eq(ev.list_tags_for_resource(ResourceARN=ra)["Tags"], [], "all rule tags removed: Tags []")
    cra = rule_arn("r1", "orders")
    call_ok(c, ev, "TagResource on a custom-bus rule ARN", lambda: ev.tag_resource(
        ResourceARN=cra, Tags=[{"Key": "c", "Value": "3"}]))
    c.eq(tagdict(ev.list_tags_for_resource(ResourceARN=cra)["Tags"]), {"c": "3"}, "custom-bus rule tags")
    call_ok(c, ev, "TagResource on the default bus", lambda: ev.tag_resource(
        ResourceARN=bus_arn("default"), Tags=[{"Key": "d", "Value": "4"}]))
    c.eq(tagdict(ev.list_tags_for_resource(ResourceARN=bus_arn("default"))["Tags"]), {"d": "4"}, "default bus tags")
    for op, fn in [("TagResource", lambda a: ev.tag_resource(ResourceARN=a, Tags=[{"Key": "k", "Value": "v"}])),
                   ("UntagResource", lambda a: ev.untag_resource(ResourceARN=a, TagKeys=["k"])),
                   ("ListTagsForResource", lambda a: ev.list_tags_for_resource(ResourceARN=a))]:
        expect_error(c, ev, "%s on a missing bus -> ResourceNotFoundException" % op,
                     lambda: fn(bus_arn("abc123")), "ResourceNotFoundException", "Event bus abc123 does not exist.")
        expect_error(c, ev, "%s on a missing rule -> ResourceNotFoundException" % op,
                     lambda: fn(rule_arn("abc123")), "ResourceNotFoundException",
                     "Rule abc123 does not exist on EventBus default.")
    expect_error(c, ev, "ListTagsForResource on a missing custom-bus rule",
                 lambda: ev.list_tags_for_resource(ResourceARN=rule_arn("abc123", "orders")),
                 "ResourceNotFoundException", "Rule abc123 does not exist on EventBus orders.")
    expect_error(c, ev, "TagResource with duplicate keys -> ValidationException",
                 lambda: ev.tag_resource(ResourceARN=arn, Tags=[{"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}]),
                 "ValidationException")
    ev.delete_rule(Name="tag-rule")


def policy_of(ev, bus=None):
    d = ev.describe_event_bus(**({"Name": bus} if bus else {}))
    p = d.get("Policy")
    return json.loads(p) if isinstance(p, str) else p


def t_permissions(c, ev):
    ev.create_event_bus(Name="perm-bus")
    ba = bus_arn("perm-bus")
    call_ok(c, ev, "PutPermission (account principal)", lambda: ev.put_permission(
        EventBusName="perm-bus", Action="events:PutEvents", Principal="111122223333", StatementId="s1"))
    d = ev.describe_event_bus(Name="perm-bus")
    c.ok(isinstance(d.get("Policy"), str), "DescribeEventBus Policy is a JSON string", repr(d.get("Policy")))
    want1 = {"Sid": "s1", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
             "Action": "events:PutEvents", "Resource": ba}
    p = policy_of(ev, "perm-bus")
    c.eq(p, {"Version": "2012-10-17", "Statement": [want1]}, "policy document after PutPermission")
    call_ok(c, ev, "PutPermission (principal *, with Condition)", lambda: ev.put_permission(
        EventBusName="perm-bus", Action="events:PutEvents", Principal="*", StatementId="s2",
        Condition={"Type": "StringEquals", "Key": "aws:PrincipalOrgID", "Value": "o-1234567890"}))
    want2 = {"Sid": "s2", "Effect": "Allow", "Principal": "*", "Action": "events:PutEvents", "Resource": ba,
             "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-1234567890"}}}
    c.eq(policy_of(ev, "perm-bus"), {"Version": "2012-10-17", "Statement": [want1, want2]},
         "second statement appended (Principal *, Condition rendered)")
    lb = [b for b in ev.list_event_buses(NamePrefix="perm-bus")["EventBuses"] if b["Name"] == "perm-bus"]
    c.ok(lb and isinstance(lb[0].get("Policy"), str) and json.loads(lb[0]["Policy"])["Statement"][0]["Sid"] == "s1",
         "ListEventBuses shows the Policy too", repr(lb))
    expect_error(c, ev, "RemovePermission of an unknown statement -> ResourceNotFoundException",
                 lambda: ev.remove_permission(EventBusName="perm-bus", StatementId="nope"),
                 "ResourceNotFoundException", "Statement with the provided id does not exist.")
    call_ok(c, ev, "RemovePermission s1", lambda: ev.remove_permission(EventBusName="perm-bus", StatementId="s1"))
    c.eq(policy_of(ev, "perm-bus"), {"Version": "2012-10-17", "Statement": [want2]}, "s1 removed, s2 kept")
    call_ok(c, ev, "RemovePermission RemoveAllPermissions",
            lambda: ev.remove_permission(EventBusName="perm-bus", RemoveAllPermissions=True))
    c.ok("Policy" not in ev.describe_event_bus(Name="perm-bus"), "no Policy after RemoveAllPermissions")
    doc = {"Version": "2012-10-17", "Statement": [{"Sid": "full", "Effect": "Allow", "Principal": {"AWS": "*"},
                                                   "Action": "events:PutEvents", "Resource": ba}]}
    call_ok(c, ev, "PutPermission with a full Policy document",
            lambda: ev.put_permission(EventBusName="perm-bus", Policy=json.dumps(doc)))
    c.eq(policy_of(ev, "perm-bus"), doc, "DescribeEventBus returns the stored policy document")
    call_ok(c, ev, "PutPermission on the default bus (no EventBusName)", lambda: ev.put_permission(
        Action="events:PutEvents", Principal="111122223333", StatementId="dflt"))
    p = policy_of(ev)
    c.ok(p and p["Statement"][0]["Sid"] == "dflt" and p["Statement"][0]["Resource"] == bus_arn("default"),
         "default bus policy", repr(p))
    expect_error(c, ev, "PutPermission on a missing bus -> ResourceNotFoundException",
                 lambda: ev.put_permission(EventBusName="non-existing-bus", Action="events:PutEvents", Principal="*",
                                           StatementId="x"),
                 "ResourceNotFoundException", "Event bus non-existing-bus does not exist.")
    expect_error(c, ev, "RemovePermission on a missing bus -> ResourceNotFoundException",
                 lambda: ev.remove_permission(EventBusName="non-existing-bus", StatementId="x"),
                 "ResourceNotFoundException", "Event bus non-existing-bus does not exist.")


def t_regions(c, ev, ev_eu):
    r = call_ok(c, ev_eu, "CreateEventBus regional in eu-west-1", lambda: ev_eu.create_event_bus(Name="regional"))
    if r:
        c.eq(r.get("EventBusArn"), bus_arn("regional", "eu-west-1"), "eu-west-1 bus ARN carries the region")
    expect_error(c, ev, "us-east-1 does not see the eu-west-1 bus", lambda: ev.describe_event_bus(Name="regional"),
                 "ResourceNotFoundException", "Event bus regional does not exist.")
    us = {b["Name"] for b in ev.list_event_buses()["EventBuses"]}
    eu = ev_eu.list_event_buses()["EventBuses"]
    c.ok("regional" not in us and "orders" in us, "us-east-1 ListEventBuses: own buses only", repr(sorted(us)))
    c.eq(sorted((b["Name"], b["Arn"]) for b in eu),
         [("default", bus_arn("default", "eu-west-1")), ("regional", bus_arn("regional", "eu-west-1"))],
         "eu-west-1 ListEventBuses: its own default bus and regional")
    ev_eu.put_rule(Name="r-pattern", EventPattern='{"source": ["eu"]}')
    c.eq(ev_eu.describe_rule(Name="r-pattern")["Arn"], rule_arn("r-pattern", region="eu-west-1"),
         "same rule name in eu-west-1: its own ARN")
    c.ok(ev.describe_rule(Name="r-pattern")["EventPattern"] != '{"source": ["eu"]}',
         "the us-east-1 rule of the same name is untouched")
    r = ev_eu.put_events(Entries=[{"Source": "eu", "DetailType": "X", "Detail": "{}"}])
    c.eq(r.get("FailedEntryCount"), 0, "PutEvents in eu-west-1")
    st, hd, body, _ = raw_call(ev.meta.endpoint_url, "ListEventBuses", {})
    c.ok(st == 200 and body and any(b["Arn"] == bus_arn("default") for b in body["EventBuses"]) and
         hd.get("x-amzn-requestid"), "an unsigned request is accepted and uses region us-east-1", repr((st, body)))


def t_wire(c, srv):
    tok = client(srv, token="FQoGZXIvYXdzEXAMPLESESSIONTOKEN")
    call_ok(c, tok, "a session token (X-Amz-Security-Token) is accepted when no credentials are configured",
            lambda: tok.list_event_buses())
    st, hd, body, raw = raw_call(srv.url, "ListEventBuses", {},
                                 {"Content-Type": "application/x-amz-json-1.1; charset=utf-8"})
    c.ok(st == 200, "Content-Type with a charset parameter is accepted", repr((st, raw[:300])))
    st, hd, body, raw = raw_call(srv.url, "DescribeRule", {"Name": "nope"})
    c.ok(st == 400 and body == {"__type": "ResourceNotFoundException",
                                "message": "Rule nope does not exist on EventBus default."} and
         hd.get("content-type", "").startswith("application/x-amz-json-1.1") and
         UUID_RE.match(hd.get("x-amzn-requestid", "")),
         "error body is {__type, message} with Content-Type application/x-amz-json-1.1 and x-amzn-RequestId",
         repr((st, hd, raw[:300])))
    st, hd, body, raw = raw_call(srv.url, "NoSuchOperation", {})
    c.ok(st == 400 and (body or {}).get("__type") == "UnknownOperationException" and hd.get("x-amzn-requestid"),
         "an unknown X-Amz-Target -> UnknownOperationException", repr((st, raw[:300])))
    st, hd, body, raw = raw_call(srv.url, "ListRules", "{not json")
    c.ok(st == 400 and (body or {}).get("__type") == "SerializationException" and hd.get("x-amzn-requestid"),
         "a body that is not JSON -> SerializationException", repr((st, raw[:300])))


def snapshot(ev):
    """Everything the control plane holds for one region (for the restart comparison)."""
    out = {}
    for b in ev.list_event_buses()["EventBuses"]:
        name = b["Name"]
        d = strip_md(ev.describe_event_bus(Name=name))
        tags = sorted(tagdict(ev.list_tags_for_resource(ResourceARN=d["Arn"])["Tags"]).items())
        rules = {}
        for ru in ev.get_paginator("list_rules").paginate(EventBusName=name).build_full_result()["Rules"]:
            rd = strip_md(ev.describe_rule(Name=ru["Name"], EventBusName=name))
            rt = ev.list_targets_by_rule(Rule=ru["Name"], EventBusName=name)["Targets"]
            rtags = sorted(tagdict(ev.list_tags_for_resource(ResourceARN=rd["Arn"])["Tags"]).items())
            rules[ru["Name"]] = {"describe": rd, "targets": rt, "tags": rtags}
        out[name] = {"describe": d, "tags": tags, "rules": rules}
    return out


def t_restart(c, srv, ev, ev_eu):
    # a rule with everything on it, so that the comparison covers it
    ev.put_rule(Name="persist", EventBusName="orders", EventPattern='{"source": ["p"]}', Description="d",
                State="DISABLED", RoleArn="arn:aws:iam::%s:role/it" % ACCOUNT, Tags=[{"Key": "p", "Value": "1"}])
    ev.put_targets(Rule="persist", EventBusName="orders", Targets=[
        {"Id": "a", "Arn": SQS, "InputTransformer": {"InputPathsMap": {"s": "$.source"}, "InputTemplate": '"<s>"'}},
        {"Id": "b", "Arn": LAMBDA, "Input": '{"x": 1}'}])
    ev.put_permission(EventBusName="orders", Action="events:PutEvents", Principal="111122223333", StatementId="keep")
    before_us, before_eu = snapshot(ev), snapshot(ev_eu)
    c.ok(before_us["orders"]["rules"]["persist"]["targets"] and before_us["orders"]["describe"].get("Policy"),
         "(state before restart includes targets and a policy)")
    rc = srv.stop()
    c.eq(rc, 0, "SIGTERM: ebridge serve exits 0")
    c.ok("stopped" in srv.log(), "SIGTERM: the server logs that it stopped", srv.log()[-500:])
    srv.start()
    after_us, after_eu = snapshot(ev), snapshot(ev_eu)
    c.eq(after_us, before_us, "after restart on the same data dir: us-east-1 buses, rules, targets, tags, policies")
    c.eq(after_eu, before_eu, "after restart: eu-west-1 state")
    r = ev.put_events(Entries=[{"Source": "p", "DetailType": "X", "Detail": "{}", "EventBusName": "orders"}])
    c.eq(r.get("FailedEntryCount"), 0, "PutEvents works after the restart")


def t_durability(c, binary):
    """kill -9 with --sync full: acknowledged events/jobs and the control plane survive (ingest only:
    --no-delivery keeps the jobs in the store to count them)."""
    with Server(binary, sync="full", account=ACCOUNT, extra_args=["--no-delivery"]) as s:
        ev = client(s)
        ev.create_event_bus(Name="dur")
        ev.put_rule(Name="dr", EventBusName="dur", EventPattern='{"source": ["dur"]}')
        ev.put_targets(Rule="dr", EventBusName="dur", Targets=[{"Id": "t", "Arn": SQS}])
        acked = 0
        for i in range(5):
            r = ev.put_events(Entries=[{"Source": "dur", "DetailType": "X", "Detail": '{"i": %d}' % i,
                                        "EventBusName": "dur"}] * 2)
            acked += 2 - r["FailedEntryCount"]
        s.kill9()
        s.start()
        c.ok(s.store_counts() == (10, 10) and acked == 10,
             "kill -9 (--sync full): the 10 acknowledged events and their 10 jobs are in the store after restart",
             "acked=%d store=%r" % (acked, s.store_counts()))
        call_ok(c, ev, "kill -9: the bus is still there", lambda: ev.describe_event_bus(Name="dur"))
        t = ev.list_targets_by_rule(Rule="dr", EventBusName="dur")["Targets"]
        c.eq([x["Id"] for x in t], ["t"], "kill -9: rule and target still there")


def t_jobs_and_strict(c, binary):
    """Delivery jobs per matching (enabled rule, target); --strict-sources."""
    with Server(binary, account=ACCOUNT, extra_args=["--strict-sources", "--no-delivery"]) as s:
        ev = client(s)
        pat = '{"source": ["jobs"]}'
        ev.put_rule(Name="en", EventPattern=pat)
        ev.put_targets(Rule="en", Targets=[{"Id": "t", "Arn": SQS}])
        ev.put_rule(Name="dis", EventPattern=pat, State="DISABLED")
        ev.put_targets(Rule="dis", Targets=[{"Id": "t", "Arn": SQS}, {"Id": "u", "Arn": SQS2}])
        ev.put_rule(Name="nomatch", EventPattern='{"source": ["other"]}')
        ev.put_targets(Rule="nomatch", Targets=[{"Id": "t", "Arn": SQS}])
        entry = {"Source": "jobs", "DetailType": "X", "Detail": "{}"}
        r = ev.put_events(Entries=[entry] * 3)
        c.eq(r["FailedEntryCount"], 0, "3 events matching one enabled and one disabled rule")
        s.restart()
        c.eq(s.store_counts(), (3, 3), "a disabled rule creates no delivery jobs (3 events, 3 jobs)")
        ev.enable_rule(Name="dis")
        ev.put_events(Entries=[entry])
        s.restart()
        c.eq(s.store_counts(), (4, 6), "after EnableRule the event gets a job per target of both rules (+3)")
        ev.disable_rule(Name="en")
        ev.disable_rule(Name="dis")
        ev.put_events(Entries=[entry] * 2)
        s.restart()
        c.eq(s.store_counts(), (4, 6), "events matching only disabled rules create no jobs")
        r = ev.put_events(Entries=[{"Source": "aws.ec2", "DetailType": "X", "Detail": "{}"},
                                   {"Source": "com.example", "DetailType": "X", "Detail": "{}"}])
        es = r["Entries"]
        c.ok(r["FailedEntryCount"] == 1 and es[0].get("ErrorCode") == "NotAuthorizedForSourceException" and
             "EventId" in es[1], "--strict-sources: an aws.* Source fails its entry, others pass", repr(es))


def sign_raw(url, op, body, key, secret, region="us-east-1", when=None):
    """Sign a request with botocore's SigV4Auth, optionally at another time; returns the headers."""
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    data = json.dumps(body).encode()
    req = AWSRequest(method="POST", url=url + "/", data=data,
                     headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSEvents." + op})
    real_dt = botocore.auth.datetime
    dtmod = datetime
    if when is not None:
        class _FakeDT(datetime.datetime):
            @classmethod
            def utcnow(cls):
                return when.replace(tzinfo=None)

            @classmethod
            def now(cls, tz=None):
                return when if tz else when.replace(tzinfo=None)

        class _Mod:
            datetime = _FakeDT
            timezone = dtmod.timezone
            timedelta = dtmod.timedelta
        botocore.auth.datetime = _Mod
    try:
        botocore.auth.SigV4Auth(Credentials(key, secret), "events", region).add_auth(req)
    finally:
        botocore.auth.datetime = real_dt
    return data, dict(req.headers.items())


def t_sigv4(c, binary):
    creds = [("AKIDITEST", "it-secret-1", "111122223333"), ("AKIDITEST2", "it-secret-2", "444455556666")]
    with Server(binary, credentials=creds) as s:
        ok = client(s, key="AKIDITEST", secret="it-secret-1")
        r = call_ok(c, ok, "SigV4: the SDK's signed request is accepted", lambda: ok.list_event_buses())
        if r:
            c.eq(r["EventBuses"][0]["Arn"], bus_arn("default", account="111122223333"),
                 "SigV4: the account is the one mapped to the access key")
        ok2 = client(s, key="AKIDITEST2", secret="it-secret-2", region="ap-southeast-2")
        r = call_ok(c, ok2, "SigV4: second key, region ap-southeast-2", lambda: ok2.describe_event_bus())
        if r:
            c.eq(r.get("Arn"), bus_arn("default", "ap-southeast-2", "444455556666"),
                 "SigV4: account of the second key, region from the credential scope")
        call_ok(c, ok, "SigV4: signed CreateEventBus + PutEvents", lambda: (
            ok.create_event_bus(Name="signed"),
            ok.put_events(Entries=[{"Source": "s", "DetailType": "X", "Detail": "{}", "EventBusName": "signed"}]))[1])
        unk = client(s, key="AKIDUNKNOWN", secret="it-secret-1")
        expect_error(c, unk, "SigV4: an unknown access key -> UnrecognizedClientException",
                     lambda: unk.list_event_buses(), "UnrecognizedClientException")
        bad = client(s, key="AKIDITEST", secret="wrong-secret")
        expect_error(c, bad, "SigV4: a wrong secret -> InvalidSignatureException (signature mismatch)",
                     lambda: bad.list_event_buses(), "InvalidSignatureException", contains="signature")
        now = datetime.datetime.now(datetime.timezone.utc)
        for label, when, want in [("now", now, 200),
                                  ("20 minutes in the past", now - datetime.timedelta(minutes=20), 400),
                                  ("20 minutes in the future", now + datetime.timedelta(minutes=20), 400),
                                  ("14 minutes in the past", now - datetime.timedelta(minutes=14), 200)]:
            data, hdrs = sign_raw(s.url, "ListEventBuses", {}, "AKIDITEST", "it-secret-1", when=when)
            st, hd, body, raw = raw_call(s.url, "ListEventBuses", data, hdrs)
            if want == 200:
                c.ok(st == 200 and hd.get("x-amzn-requestid"), "SigV4: a request signed %s (X-Amz-Date %s, built "
                     "with botocore.auth.SigV4Auth, sent with urllib) is accepted" % (label, hdrs.get("X-Amz-Date")),
                     repr((st, raw[:300])))
            else:
                code = (body or {}).get("__type")
                c.ok(st == 400 and code in ("InvalidSignatureException", "RequestExpired") and
                     ("expired" in (body or {}).get("message", "").lower() or
                      "not yet current" in (body or {}).get("message", "").lower()),
                     "SigV4: a request signed %s is rejected: %s %r" % (label, code, (body or {}).get("message")),
                     "X-Amz-Date %s -> %r %r" % (hdrs.get("X-Amz-Date"), st, raw[:300]))
        data, hdrs = sign_raw(s.url, "CreateEventBus", {"Name": "forged-a"}, "AKIDITEST", "it-secret-1")
        st, hd, body, raw = raw_call(s.url, "CreateEventBus", json.dumps({"Name": "forged-b"}), hdrs)
        c.ok(st == 400 and (body or {}).get("__type") == "InvalidSignatureException",
             "SigV4: a body changed after signing -> InvalidSignatureException", repr((st, raw[:300])))
        expect_error(c, ok, "... and the forged CreateEventBus did not happen",
                     lambda: ok.describe_event_bus(Name="forged-b"), "ResourceNotFoundException")
        st, hd, body, raw = raw_call(s.url, "ListEventBuses", {})
        c.ok(st == 400 and (body or {}).get("__type") == "MissingAuthenticationTokenException" and
             hd.get("x-amzn-requestid"),
             "SigV4: a request without Authorization -> MissingAuthenticationTokenException", repr((st, raw[:300])))
        log = s.log()
        c.ok("it-secret-1" not in log and "it-secret-2" not in log and "wrong-secret" not in log,
             "secrets never appear in the server log")


def t_listen_guard(c, binary):
    import tempfile
    port = common.free_port()
    with tempfile.TemporaryDirectory(prefix="ebridge-it-") as d:
        p = subprocess.run([binary, "serve", "--listen", "0.0.0.0:%d" % port, "--data-dir", d + "/data",
                            "--sync", "normal"], capture_output=True, text=True, timeout=20)
        c.ok(p.returncode != 0 and "credentials" in p.stderr and "--insecure" in p.stderr,
             "serve --listen 0.0.0.0 without credentials or --insecure refuses to start (exit %d)" % p.returncode,
             p.stderr)
        print("       message: %s" % p.stderr.strip().splitlines()[0] if p.stderr.strip() else "       (no message)")
    with Server(binary, host="0.0.0.0", extra_args=["--insecure"]) as s:
        c.ok(s.running(), "serve --listen 0.0.0.0 --insecure starts")
        c.eq(s.stop(), 0, "... and stops with exit code 0")
    with Server(binary, host="0.0.0.0", credentials=[("AKIDG", "guard-secret", ACCOUNT)]) as s:
        ev = client(s, key="AKIDG", secret="guard-secret")
        c.ok(s.running() and ev.list_event_buses()["EventBuses"], "serve --listen 0.0.0.0 with credentials starts")


def main():
    binary = common.binary_from_argv()
    c = Checker("test_boto3 (boto3 %s, botocore %s, %s)" % (boto3.__version__, botocore.__version__, sys.executable))
    c.ok(boto3.__file__.startswith("/usr/lib/python3/dist-packages/"),
         "boto3 is Debian's python3-boto3 (%s)" % boto3.__file__)
    srv = Server(binary, account=ACCOUNT)
    try:
        srv.start()
        ev = client(srv)
        ev_eu = client(srv, region="eu-west-1")
        c.run("event buses", t_buses, c, ev)
        c.run("rules", t_rules, c, ev)
        c.run("ListRules pagination", t_list_rules, c, ev)
        c.run("ListRuleNamesByTarget", t_rule_names_by_target, c, ev)
        c.run("targets", t_targets, c, ev)
        c.run("PutEvents", t_put_events, c, ev)
        c.run("TestEventPattern", t_test_event_pattern, c, ev)
        c.run("tags", t_tags, c, ev)
        c.run("permissions", t_permissions, c, ev)
        c.run("per-region state", t_regions, c, ev, ev_eu)
        c.run("wire details", t_wire, c, srv)
        c.run("restart with the same data dir", t_restart, c, srv, ev, ev_eu)
        c.run("kill -9 durability", t_durability, c, binary)
        c.run("delivery jobs and --strict-sources", t_jobs_and_strict, c, binary)
        c.run("SigV4", t_sigv4, c, binary)
        c.run("listen guard", t_listen_guard, c, binary)
        c.section("request ids")
        total = sum(r.responses for r in RECORDERS)
        missing = sum((r.missing_ids for r in RECORDERS), [])
        c.ok(total > 100 and not missing, "x-amzn-RequestId (UUID) on all %d SDK responses" % total,
             "missing on: %r" % missing[:20])
        if srv.running():
            c.eq(srv.stop(), 0, "main server: SIGTERM exit code 0")
    finally:
        common.stop_all()
    sys.exit(c.finish())


if __name__ == "__main__":
    main()
