#!/usr/bin/env python3
"""GET /metrics integration test for `ebridge serve` (docs/metrics.md).

    python3 tests/integration/test_metrics.py path/to/ebridge

Real servers on free loopback ports, driven by boto3 (Debian's, /usr/bin/python3):

  * no credentials, no --metrics-listen: rules on the default bus and on a
    custom bus (one without targets, one disabled), PutEvents through the fast
    path and through the general path (a bus ARN), with accepted, failed and
    dropped entries, plus PutEvents requests refused as a whole. The scrape
    must be valid text format 0.0.4 (a strict parser below) and every value of
    the PutEvents family, MatchedEvents, TriggeredRules and InvocationsCreated
    is checked exactly (request sizes from the bodies botocore sent). Deleting
    a rule removes its series; re-creating it starts them from zero.
  * credentials in --config: an unsigned scrape, a scrape signed with a wrong
    secret and one with an unknown key are refused with AWS-shaped 403 JSON
    errors; a scrape signed with botocore's SigV4Auth (service "events") is
    served.
  * --metrics-listen (flag, and "metrics_listen" in --config), with
    credentials: /metrics is served there unsigned and not on the API port;
    other paths/methods on the metrics port are refused.

Exit status 0 when every check passed.
"""

import json
import math
import os
import re
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (Checker, Server, binary_from_argv, boto3_client, free_port, raw_call,  # noqa: E402
                    write_config)

ACCOUNT = "000000000000"
CT_METRICS = "text/plain; version=0.0.4"
FAMILIES = 24  # metrics in src/util/metrics.h

# ---- a strict reader of the text exposition format 0.0.4 ---------------------------------------
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"'
SAMPLE = re.compile(r"^(%s)(\{(?:%s)(?:,%s)*\})? (\S+)$" % (NAME, LABEL, LABEL))


class FormatError(Exception):
    pass


def unescape(v):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], v)


def parse_metrics(text):
    """-> (types {family: type}, helps {family: text}, samples {(name, ((label, value), ...)): float}).
    Raises FormatError on anything the format does not allow."""
    if not text.endswith("\n"):
        raise FormatError("the text does not end with a line feed")
    types, helps, samples = {}, {}, {}
    current = None
    for ln, line in enumerate(text[:-1].split("\n"), 1):
        if line.startswith("# HELP "):
            name, _, h = line[7:].partition(" ")
            if not re.fullmatch(NAME, name) or name in helps:
                raise FormatError("line %d: bad or repeated HELP: %r" % (ln, line))
            if re.search(r"\\[^\\n]", h.replace("\\\\", "")):
                raise FormatError("line %d: bad escape in HELP" % ln)
            helps[name] = h
            continue
        if line.startswith("# TYPE "):
            parts = line[7:].split(" ")
            if len(parts) != 2 or parts[1] not in ("counter", "gauge", "histogram", "summary", "untyped") or \
                    parts[0] in types:
                raise FormatError("line %d: bad or repeated TYPE: %r" % (ln, line))
            types[parts[0]] = parts[1]
            current = parts[0]
            continue
        if line.startswith("#") or not line:
            raise FormatError("line %d: unexpected line %r" % (ln, line))
        m = SAMPLE.match(line)
        if not m:
            raise FormatError("line %d: not a sample: %r" % (ln, line))
        name, labels_txt, value = m.group(1), m.group(2) or "", m.group(m.lastindex)
        labels = tuple((k, unescape(v)) for k, v in re.findall(LABEL, labels_txt))
        if len(set(k for k, _ in labels)) != len(labels):
            raise FormatError("line %d: repeated label" % ln)
        fam = name
        if current and types[current] == "histogram" and name in (current + "_bucket", current + "_sum",
                                                                    current + "_count"):
            fam = current
        if fam != current:
            raise FormatError("line %d: sample %s outside its family's TYPE block" % (ln, name))
        try:
            v = float(value)
        except ValueError:
            raise FormatError("line %d: bad value %r" % (ln, value))
        key = (name, labels)
        if key in samples:
            raise FormatError("line %d: repeated series %r" % (ln, key))
        samples[key] = v
    # histograms: cumulative buckets, +Inf = _count
    for fam, t in types.items():
        if t != "histogram":
            continue
        series = {}
        for (name, labels), v in samples.items():
            if name == fam + "_bucket":
                le = dict(labels)["le"]
                rest = tuple(x for x in labels if x[0] != "le")
                series.setdefault(rest, []).append((math.inf if le == "+Inf" else float(le), v))
        for rest, buckets in series.items():
            buckets.sort()
            counts = [v for _, v in buckets]
            if counts != sorted(counts) or buckets[-1][0] != math.inf:
                raise FormatError("%s%r: buckets not cumulative or no +Inf" % (fam, rest))
            if samples.get((fam + "_count", rest)) != counts[-1] or (fam + "_sum", rest) not in samples:
                raise FormatError("%s%r: _count differs from the +Inf bucket, or no _sum" % (fam, rest))
    return types, helps, samples


# ---- HTTP helpers ------------------------------------------------------------------------------------
def http_get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {}, method="GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def signed_headers(url, key, secret, region="us-east-1"):
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    req = AWSRequest(method="GET", url=url)
    botocore.auth.SigV4Auth(Credentials(key, secret), "events", region).add_auth(req)
    return dict(req.headers.items())


def scrape(c, url, what, headers=None):
    st, h, body = http_get(url, headers)
    c.eq(st, 200, what + ": 200")
    c.ok(h.get("content-type", "").startswith(CT_METRICS), what + ": Content-Type " + CT_METRICS,
         h.get("content-type"))
    try:
        types, helps, samples = parse_metrics(body.decode())
    except (FormatError, UnicodeDecodeError) as e:
        c.ok(False, what + ": valid text format 0.0.4", str(e))
        return {}
    c.ok(len(types) == FAMILIES and set(types) == set(helps),
         what + ": valid text format 0.0.4 with HELP and TYPE for all %d metrics" % FAMILIES, sorted(types))
    return samples


def val(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items(), key=lambda kv: ["event_bus", "rule", "le"].index(kv[0])))))


def aws_error(c, status, headers, body, want_status, want_type, what):
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    c.ok(status == want_status and isinstance(doc, dict) and doc.get("__type") == want_type and
         isinstance(doc.get("message"), str) and headers.get("content-type") == "application/x-amz-json-1.1" and
         re.fullmatch(r"[0-9a-f-]{36}", headers.get("x-amzn-requestid", "")),
         what, "status %s headers %r body %r" % (status, headers, body[:300]))


# ---- the checks ---------------------------------------------------------------------------------------
def t_counts(c, binary):
    with Server(binary) as s:
        ev = boto3_client(s)
        sizes = []
        ev.meta.events.register("before-send.events.PutEvents", lambda request, **kw: sizes.append(len(request.body)))

        url = s.url + "/metrics"
        m0 = scrape(c, url, "fresh server")
        zero = ["ebridge_put_events_approximate_call_total", "ebridge_invocations_created_total",
                "ebridge_triggered_rules_total", "ebridge_invocations_total"]
        c.ok(all(val(m0, n) == 0 for n in zero), "fresh server: unlabelled counters are there, at 0",
             {n: val(m0, n) for n in zero})
        c.eq(val(m0, "ebridge_put_events_latency_seconds_count"), 0, "fresh server: latency histogram empty")

        ev.create_event_bus(Name="orders")
        shop = json.dumps({"source": ["shop"]})
        ev.put_rule(Name="r-all", EventPattern=shop)
        ev.put_targets(Rule="r-all", Targets=[{"Id": "a", "Arn": "arn:aws:sqs:us-east-1:%s:qa" % ACCOUNT},
                                             {"Id": "b", "Arn": "arn:aws:sqs:us-east-1:%s:qb" % ACCOUNT}])
        ev.put_rule(Name="r-big", EventPattern=json.dumps({"source": ["shop"], "detail": {"n": [{"numeric": [">", 5]}]}}))
        ev.put_targets(Rule="r-big", Targets=[{"Id": "c", "Arn": "arn:aws:sqs:us-east-1:%s:qc" % ACCOUNT}])
        ev.put_rule(Name="r-none", EventPattern=shop)  # no targets: triggered, creates no invocation
        ev.put_rule(Name="r-off", EventPattern=shop, State="DISABLED")
        ev.put_targets(Rule="r-off", Targets=[{"Id": "d", "Arn": "arn:aws:sqs:us-east-1:%s:qd" % ACCOUNT}])
        ev.put_rule(Name="r-orders", EventBusName="orders", EventPattern=shop)
        ev.put_targets(Rule="r-orders", EventBusName="orders",
                       Targets=[{"Id": "e", "Arn": "arn:aws:sqs:us-east-1:%s:qe" % ACCOUNT}])

        # call 1 (fast path): shop n=1 -> r-all, r-none; shop n=10 -> r-all, r-big, r-none; other -> nothing
        r1 = ev.put_events(Entries=[{"Source": "shop", "DetailType": "t", "Detail": json.dumps({"n": 1})},
                                    {"Source": "shop", "DetailType": "t", "Detail": json.dumps({"n": 10})},
                                    {"Source": "other", "DetailType": "t", "Detail": "{}"}])
        c.eq(r1["FailedEntryCount"], 0, "PutEvents 1 accepted")
        # call 2 (general path: a bus ARN): shop on orders -> r-orders; a malformed Detail fails; an unknown
        # bus accepts and drops
        orders_arn = "arn:aws:events:us-east-1:%s:event-bus/orders" % ACCOUNT
        r2 = ev.put_events(Entries=[{"Source": "shop", "DetailType": "t", "Detail": "{}", "EventBusName": orders_arn},
                                    {"Source": "shop", "DetailType": "t", "Detail": "[1,", "EventBusName": "orders"},
                                    {"Source": "shop", "DetailType": "t", "Detail": "{}", "EventBusName": "nobody"}])
        c.eq(r2["FailedEntryCount"], 1, "PutEvents 2: one failed entry")
        # calls 3 and 4: refused as a whole (400)
        st3, _, _, raw3 = raw_call(s.url, "PutEvents", b'{"Entries": [')
        st4, _, doc4, raw4 = raw_call(s.url, "PutEvents", {"Entries": [{"Source": "s", "DetailType": "t",
                                                                        "Detail": "{}"}] * 11})
        c.ok(st3 == 400 and st4 == 400, "PutEvents 3 and 4 refused (400)", (st3, st4, doc4))
        sizes += [len(b'{"Entries": ['), len(json.dumps({"Entries": [{"Source": "s", "DetailType": "t",
                                                                       "Detail": "{}"}] * 11}))]
        # another operation is not a PutEvents call
        ev.list_rules()

        m = scrape(c, url, "after 4 PutEvents calls")
        want = {
            ("ebridge_put_events_approximate_call_total", ()): 4,
            ("ebridge_put_events_approximate_success_total", ()): 2,
            ("ebridge_put_events_approximate_failed_total", ()): 2,
            ("ebridge_put_events_approximate_throttled_total", ()): 0,
            ("ebridge_put_events_entries_total", ()): 6,
            ("ebridge_put_events_failed_entries_total", ()): 1,
            ("ebridge_put_events_latency_seconds_count", ()): 4,
            ("ebridge_put_events_request_size_bytes_count", ()): 4,
            ("ebridge_put_events_request_size_bytes_sum", ()): sum(sizes),
            ("ebridge_matched_events_total", (("event_bus", "default"),)): 2,
            ("ebridge_matched_events_total", (("event_bus", "default"), ("rule", "r-all"))): 2,
            ("ebridge_matched_events_total", (("event_bus", "default"), ("rule", "r-big"))): 1,
            ("ebridge_matched_events_total", (("event_bus", "default"), ("rule", "r-none"))): 2,
            ("ebridge_matched_events_total", (("event_bus", "orders"),)): 1,
            ("ebridge_matched_events_total", (("event_bus", "orders"), ("rule", "r-orders"))): 1,
            ("ebridge_triggered_rules_total", ()): 6,
            ("ebridge_triggered_rules_total", (("event_bus", "default"),)): 5,
            ("ebridge_triggered_rules_total", (("event_bus", "orders"),)): 1,
            ("ebridge_triggered_rules_total", (("event_bus", "default"), ("rule", "r-all"))): 2,
            ("ebridge_triggered_rules_total", (("event_bus", "default"), ("rule", "r-big"))): 1,
            ("ebridge_triggered_rules_total", (("event_bus", "default"), ("rule", "r-none"))): 2,
            ("ebridge_triggered_rules_total", (("event_bus", "orders"), ("rule", "r-orders"))): 1,
            ("ebridge_invocations_created_total", ()): 6,  # 2 + (2 + 1) + 1
        }
        got = {k: m.get(k) for k in want}
        bad = {k: (got[k], v) for k, v in want.items() if got[k] != v}
        c.ok(not bad, "PutEvents family, MatchedEvents, TriggeredRules, InvocationsCreated exact", bad)
        c.ok(len(sizes) == 4 and all(x > 0 for x in sizes), "4 request sizes recorded", sizes)
        stray = [k for k in m if k[0] in ("ebridge_matched_events_total", "ebridge_triggered_rules_total")
                 and k not in want]
        c.eq(stray, [], "no other MatchedEvents/TriggeredRules series (the disabled rule has none)")
        lat = sum(v for (n, l), v in m.items() if n == "ebridge_put_events_latency_seconds_sum")
        c.ok(0 < lat < 30, "PutEvents latency sum is plausible (%.6f s)" % lat)

        # deleting a rule removes its series; the bus's stay
        ev.remove_targets(Rule="r-big", Ids=["c"])
        ev.delete_rule(Name="r-big")
        m = scrape(c, url, "after DeleteRule r-big")
        c.ok(not [k for k in m if ("rule", "r-big") in k[1]], "DeleteRule: the rule's series are gone")
        c.eq(val(m, "ebridge_matched_events_total", event_bus="default"), 2, "DeleteRule: the bus's series stay")
        # re-created: from zero
        ev.put_rule(Name="r-big", EventPattern=json.dumps({"source": ["shop"]}))
        ev.put_events(Entries=[{"Source": "shop", "DetailType": "t", "Detail": "{}"}])
        m = scrape(c, url, "after re-creating r-big")
        c.eq((val(m, "ebridge_matched_events_total", event_bus="default", rule="r-big"),
              val(m, "ebridge_matched_events_total", event_bus="default", rule="r-all"),
              val(m, "ebridge_put_events_approximate_call_total")),
             (1, 3, 5), "a re-created rule's series restart from zero; others go on")
        # DeleteEventBus forgets the bus
        ev.remove_targets(Rule="r-orders", EventBusName="orders", Ids=["e"])
        ev.delete_rule(Name="r-orders", EventBusName="orders")
        ev.delete_event_bus(Name="orders")
        m = scrape(c, url, "after DeleteEventBus orders")
        c.ok(not [k for k in m if ("event_bus", "orders") in k[1]], "DeleteEventBus: the bus's series are gone")
        # a method other than GET
        st, h, body = http_get(url.replace("/metrics", "/metrics"), None)
        req = urllib.request.Request(url, data=b"", method="POST")
        try:
            urllib.request.urlopen(req, timeout=10)
            st = 200
        except urllib.error.HTTPError as e:
            st, h, body = e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()
        aws_error(c, st, h, body, 405, "UnknownOperationException", "POST /metrics: 405 AWS-shaped error")
        c.eq(s.stop(), 0, "server stops cleanly")


def t_auth(c, binary):
    creds = [("AKIDMETRICS", "metrics-secret", "111122223333")]
    with Server(binary, credentials=creds) as s:
        url = s.url + "/metrics"
        st, h, body = http_get(url)
        aws_error(c, st, h, body, 403, "MissingAuthenticationTokenException", "unsigned scrape: 403 AWS-shaped error")
        st, h, body = http_get(url, signed_headers(url, "AKIDMETRICS", "wrong-secret"))
        aws_error(c, st, h, body, 403, "InvalidSignatureException", "scrape signed with a wrong secret: 403")
        st, h, body = http_get(url, signed_headers(url, "AKIDNOBODY", "metrics-secret"))
        aws_error(c, st, h, body, 403, "UnrecognizedClientException", "scrape signed with an unknown key: 403")
        st, h, body = http_get(url, {"Authorization": "AWS4-HMAC-SHA256 Credential=garbage"})
        aws_error(c, st, h, body, 403, "IncompleteSignatureException", "malformed Authorization: 403")

        ev = boto3_client(s, key="AKIDMETRICS", secret="metrics-secret")
        ev.put_events(Entries=[{"Source": "x", "DetailType": "t", "Detail": "{}"}])
        m = scrape(c, url, "signed scrape", signed_headers(url, "AKIDMETRICS", "metrics-secret"))
        c.eq((val(m, "ebridge_put_events_approximate_call_total"), val(m, "ebridge_put_events_entries_total")),
             (1, 1), "signed scrape shows the signed PutEvents")
        # the API itself still answers 400 for unsigned calls (unchanged)
        st, _, doc, _ = raw_call(s.url, "ListEventBuses", {})
        c.ok(st == 400 and doc and doc.get("__type") == "MissingAuthenticationTokenException",
             "unsigned API call still 400 MissingAuthenticationTokenException", (st, doc))
        c.eq(s.stop(), 0, "server stops cleanly")


def t_listen(c, binary):
    creds = [("AKIDMETRICS", "metrics-secret", "111122223333")]
    for how in ("flag", "config"):
        mport = free_port()
        s = Server(binary, credentials=creds)
        if how == "flag":
            s.extra_args = ["--metrics-listen", "127.0.0.1:%d" % mport]
        else:
            s.config = write_config(os.path.join(s.tmp, "config2.json"), creds,
                                    metrics_listen="127.0.0.1:%d" % mport)
        with s:
            murl = "http://127.0.0.1:%d/metrics" % mport
            ev = boto3_client(s, key="AKIDMETRICS", secret="metrics-secret")
            ev.put_events(Entries=[{"Source": "x", "DetailType": "t", "Detail": "{}"}] * 3)
            m = scrape(c, murl, "--metrics-listen (%s), unsigned" % how)
            c.eq((val(m, "ebridge_put_events_approximate_call_total"), val(m, "ebridge_put_events_entries_total")),
                 (1, 3), "metrics port (%s) shows the API port's PutEvents" % how)
            url = s.url + "/metrics"
            st, h, body = http_get(url, signed_headers(url, "AKIDMETRICS", "metrics-secret"))
            aws_error(c, st, h, body, 404, "UnknownOperationException",
                      "with --metrics-listen (%s), the API port has no /metrics (even signed)" % how)
            st, _, _ = http_get("http://127.0.0.1:%d/health" % mport)
            c.eq(st, 404, "metrics port (%s): other paths 404" % how)
            req = urllib.request.Request(murl, data=b"x", method="POST")
            try:
                urllib.request.urlopen(req, timeout=10)
                st = 200
            except urllib.error.HTTPError as e:
                st = e.code
            c.eq(st, 405, "metrics port (%s): POST 405" % how)
            c.ok(re.search(r'msg=listening .*metrics=127\.0\.0\.1:%d' % mport, s.log()) or
                 ("metrics=127.0.0.1:%d" % mport) in s.log(), "the listening log line names the metrics address")
            c.eq(s.stop(), 0, "server (%s) stops cleanly" % how)


def main():
    binary = binary_from_argv()
    c = Checker("GET /metrics")
    c.run("counts", t_counts, c, binary)
    c.run("auth on the API port", t_auth, c, binary)
    c.run("--metrics-listen", t_listen, c, binary)
    sys.exit(c.finish())


if __name__ == "__main__":
    main()
