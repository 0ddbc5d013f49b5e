#!/usr/bin/env python3
"""Delivery integration test for `ebridge serve` (reference §4.5, §6, §7, §8, §10, §12).

    /usr/bin/python3 tests/integration/test_delivery.py path/to/ebridge

Everything is real: two ebridge servers on loopback (--test-time-scale 60, so
backoff delays, event ages and schedules run 60 times faster: rate(1 minute)
fires every second, MaximumEventAgeInSeconds=60 lasts one real second), HTTP
receivers in this process (http.server on threads, one per behaviour: healthy,
flaky 503s, 429 + Retry-After, slow, connection reset, 301, 400, 500, an OAuth
token endpoint and a destination refusing a stale token), shell programs as
functions, and boto3 (Debian's) driving the API. The dead letters are read and
re-driven with `ebridge dead-letters`.

Scenarios run on threads, each with its own rules, buses, receivers and dead-
letter queue, so that their waits overlap; every wait polls with a deadline.
Covered:
  * target kinds: function program (stdin = the exact envelope), function URL,
    API destinations (BASIC, API_KEY, OAuth client credentials with the token
    request, the refresh on 401 and the connection becoming AUTHORIZED; header
    precedence connection > target; `*` path parameters; query parameters;
    dynamic JSONPath HttpParameters; the fixed headers; GET without a body),
    bus to bus (same id within a region, a new id across regions, the envelope
    kept), the hop limit (a bus targeting itself, A -> B -> A), log groups
    (the NDJSON lines), an unknown function and an SQS target (dead letters
    with ERROR_CODE NO_RESOURCE);
  * input modes: the matched event, Input, InputPath (object and string),
    InputTransformer (string and JSON templates, predefined variables, a
    missing path) and a result AWS does not deliver;
  * retries: 503s then success, 429 + Retry-After (the gap is measured),
    timeout / reset / refused retried, 301 / 400 final, MaximumRetryAttempts
    and MaximumEventAgeInSeconds exhausted, no DLQ (dropped, counted);
    programs failing, timing out and failing for good;
  * dead letters: their attributes, `dead-letters list`, `redrive` to a
    receiver that was fixed meanwhile (delivered, the dead letter gone);
  * InvocationRateLimitPerSecond=5 with 30 events (spread and throttling);
  * control-plane changes while a job waits to retry: Arn changed (the next
    attempt goes to the new target), RemoveTargets and DeleteRule (dropped),
    a disabled rule (no jobs);
  * schedules: rate() and cron() firings with AWS's Scheduled Event text,
    stop + restart after several missed periods (one firing for the latest,
    ebridge_schedule_skipped_total counts the rest), a disabled schedule;
  * a stream of 600 events from 4 threads: each delivered once, promptly;
  * the delivery metrics of every rule above, exactly, and their aggregates.

Exit status 0 when every check passed.
"""

import base64
import datetime
import glob
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Checker, Server, binary_from_argv, boto3_client, free_port  # noqa: E402

ACCOUNT = "000000000000"
REGION = "us-east-1"
WEST = "us-west-2"
SCALE = 60
EVENT_TIME = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
EVENT_TIME_S = "2024-01-02T03:04:05Z"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SLOW = 1.0  # deadline factor: 2 for sanitizer builds (set in main)


# ---- checks from several threads -------------------------------------------------------------
class TChecker(Checker):
    """Checker whose checks may come from several scenario threads at once."""

    def __init__(self, title):
        super().__init__(title)
        self.lock = threading.RLock()

    def ok(self, cond, what, detail=""):
        with self.lock:
            return super().ok(cond, what, detail)


class Scoped:
    """The checks of one scenario, prefixed with its name."""

    def __init__(self, c, name):
        self.c, self.name = c, name

    def ok(self, cond, what, detail=""):
        return self.c.ok(cond, "[%s] %s" % (self.name, what), detail)

    def eq(self, got, want, what):
        return self.ok(got == want, what, "got:  %r\nwant: %r" % (got, want))


# ---- HTTP receivers ------------------------------------------------------------------------------
def reply(status=200, body=b'{"ok":true}', headers=None):
    return {"status": status, "body": body, "headers": headers or {}}


class Receiver:
    """One HTTP server on 127.0.0.1 on its own thread. `behaviour(n, req)` (n = 1 for the first request)
    returns reply(...), "reset" (RST: SO_LINGER 0 then close), or {"sleep": s, **reply}. Every request is
    recorded first: dict t (monotonic), method, path, query, headers [(name, value)], body."""

    def __init__(self, name, behaviour=None):
        self.name = name
        self.behaviour = behaviour or (lambda n, r: reply())
        self.requests = []
        self.cv = threading.Condition()
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                u = urllib.parse.urlsplit(self.path)
                r = {"t": time.monotonic(), "method": self.command, "path": u.path, "query": u.query,
                     "headers": list(self.headers.items()), "body": body}
                with rec.cv:
                    rec.requests.append(r)
                    k = len(rec.requests)
                    rec.cv.notify_all()
                act = rec.behaviour(k, r)
                if act == "reset":
                    self.close_connection = True
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.rfile.close()
                    self.connection.close()
                    return
                if "sleep" in act:
                    time.sleep(act["sleep"])
                try:
                    self.send_response(act["status"])
                    for k2, v in act["headers"].items():
                        self.send_header(k2, v)
                    self.send_header("Content-Length", str(len(act["body"])))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(act["body"])
                except OSError:
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = any

        class Srv(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False
            request_queue_size = 256  # the engine opens up to 64 connections at once (listen backlog 5: SYN retries)

            def handle_error(self, request, client_address):
                pass

        self.srv = Srv(("127.0.0.1", 0), Handler)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def count(self):
        with self.cv:
            return len(self.requests)

    def wait(self, n, timeout, path=None):
        """The first n requests (to `path` if given) once there are that many, or what there is at the deadline."""
        deadline = time.monotonic() + timeout * SLOW
        with self.cv:
            while True:
                got = [r for r in self.requests if path is None or r["path"] == path]
                left = deadline - time.monotonic()
                if len(got) >= n or left <= 0:
                    return got[:n] if len(got) >= n else got
                self.cv.wait(min(left, 0.2))

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def hdrs(req, name):
    return [v for k, v in req["headers"] if k.lower() == name.lower()]


def hdr(req, name):
    v = hdrs(req, name)
    return v[0] if len(v) == 1 else (v or None)


# ---- helpers -------------------------------------------------------------------------------------
class Ctx:
    pass


class Spawner:
    """Runs calls on one long-lived thread. A server restarted by a scenario thread must be started here:
    common.Server asks Linux (PR_SET_PDEATHSIG) to kill it when the *thread* that forked it ends."""

    def __init__(self):
        self.lock = threading.Lock()
        self.req = None
        self.cv = threading.Condition(self.lock)
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            with self.cv:
                while self.req is None or self.req[1] is not None:
                    self.cv.wait()
                fn = self.req[0]
            try:
                res = ("ok", fn())
            except Exception as e:  # noqa: BLE001 - handed to the caller
                res = ("err", e)
            with self.cv:
                self.req[1] = res
                self.cv.notify_all()

    def call(self, fn):
        with self.cv:
            while self.req is not None:
                self.cv.wait()
            self.req = [fn, None]
            self.cv.notify_all()
            while self.req[1] is None:
                self.cv.wait()
            kind, v = self.req[1]
            self.req = None
            self.cv.notify_all()
        if kind == "err":
            raise v
        return v


def poll(fn, timeout, step=0.05):
    """fn() until truthy or the deadline; returns its last value."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def fn_arn(name, region=REGION):
    return "arn:aws:lambda:%s:%s:function:%s" % (region, ACCOUNT, name)


def bus_arn(name, region=REGION):
    return "arn:aws:events:%s:%s:event-bus/%s" % (region, ACCOUNT, name)


def log_arn(group):
    return "arn:aws:logs:%s:%s:log-group:%s" % (REGION, ACCOUNT, group)


def dlq_arn(name):
    return "arn:aws:sqs:%s:%s:%s" % (REGION, ACCOUNT, name)


def log_file(data_dir, group):
    esc = "".join(ch if re.match(r"[A-Za-z0-9._-]", ch) else "%%%02X" % ord(ch)
                  for ch in "%s:%s:%s" % (ACCOUNT, REGION, group))
    return os.path.join(data_dir, "logs", esc + ".ndjson")


def read_lines(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    return [json.loads(ln) for ln in data.split(b"\n") if ln.strip()]


def envelope(eid, source, detail, dt="Dtest Event", resources=(), region=REGION, time_s=EVENT_TIME_S):
    """The event text as delivered without transformation (reference §4.1)."""
    c = lambda v: json.dumps(v, separators=(",", ":"))  # noqa: E731
    return ('{"version":"0","id":%s,"detail-type":%s,"source":%s,"account":%s,"time":%s,"region":%s,'
            '"resources":%s,"detail":%s}' % (c(eid), c(dt), c(source), c(ACCOUNT), c(time_s), c(region),
                                             c(list(resources)), c(detail)))


def put(ev, source, detail, n=1, bus=None, dt="Dtest Event", resources=(), region=REGION):
    """PutEvents n entries (10 per call); returns [(event id, expected envelope text)]."""
    out = []
    entries = []
    for i in range(n):
        e = {"Source": source, "DetailType": dt, "Detail": json.dumps(detail), "Time": EVENT_TIME,
             "Resources": list(resources)}
        if bus:
            e["EventBusName"] = bus
        entries.append(e)
    for k in range(0, n, 10):
        r = ev.put_events(Entries=entries[k:k + 10])
        if r["FailedEntryCount"]:
            raise RuntimeError("PutEvents failed: %r" % r)
        for res in r["Entries"]:
            out.append((res["EventId"], envelope(res["EventId"], source, detail, dt, resources, region)))
    return out


def make_rule(ev, name, targets, bus=None, pattern=None, schedule=None):
    kw = {"Name": name}
    if bus:
        kw["EventBusName"] = bus
    if schedule:
        kw["ScheduleExpression"] = schedule
    else:
        kw["EventPattern"] = json.dumps(pattern or {"source": ["dtest." + name]})
    arn = ev.put_rule(**kw)["RuleArn"]
    kw = {"Rule": name, "Targets": targets}
    if bus:
        kw["EventBusName"] = bus
    r = ev.put_targets(**kw)
    if r["FailedEntryCount"]:
        raise RuntimeError("PutTargets failed: %r" % r)
    return arn


class DeadLetters:
    """`ebridge dead-letters list` of a data dir, at most one run per 0.25 s (shared by threads)."""

    def __init__(self, binary, data_dir):
        self.binary, self.data_dir = binary, data_dir
        self.lock = threading.Lock()
        self.at = 0.0
        self.cache = []

    def cli(self, *args):
        p = subprocess.run([self.binary, "dead-letters", "--data-dir", self.data_dir] + list(args),
                           capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr

    def list(self, fresh=False):
        with self.lock:
            if fresh or time.monotonic() - self.at > 0.25:
                rc, out, err = self.cli("list")
                if rc != 0:
                    raise RuntimeError("dead-letters list failed (%d): %s" % (rc, err))
                self.cache = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
                self.at = time.monotonic()
            return list(self.cache)

    def find(self, event_id, target_id=None):
        return [d for d in self.list() if d["event_id"] == event_id and (target_id is None or
                                                                          d["target_id"] == target_id)]

    def wait(self, event_id, target_id, timeout):
        return poll(lambda: self.find(event_id, target_id), timeout, 0.1)


ATTR_KEYS = ("RULE_ARN", "TARGET_ARN", "ERROR_CODE", "EXHAUSTED_RETRY_CONDITION", "RETRY_ATTEMPTS")


def check_dead(c, x, what, eid, env, target_id, *, rule, rule_arn, target_arn, queue, code, exhausted, retries,
               message=None, timeout=20):
    """The dead letter of (event, target): every attribute exact, the event kept."""
    got = x.dl.wait(eid, target_id, timeout)
    if not c.ok(len(got) == 1, "%s: exactly one dead letter" % what, repr(got)):
        return None
    d = got[0]
    a = d["attributes"]
    c.eq({k: a.get(k) for k in ATTR_KEYS},
         {"RULE_ARN": rule_arn, "TARGET_ARN": target_arn, "ERROR_CODE": code, "EXHAUSTED_RETRY_CONDITION": exhausted,
          "RETRY_ATTEMPTS": str(retries) if retries is not None else a.get("RETRY_ATTEMPTS")},
         "%s: dead-letter attributes (ERROR_CODE %s%s)" % (what, code, ", " + exhausted if exhausted else ""))
    if message is not None:
        c.eq(a.get("ERROR_MESSAGE"), message, "%s: ERROR_MESSAGE" % what)
    else:
        c.ok(isinstance(a.get("ERROR_MESSAGE"), str) and a["ERROR_MESSAGE"], "%s: ERROR_MESSAGE is set" % what,
             repr(a))
    c.eq((d["queue"], d["rule"], d["target_id"], d["event"], sorted(a)),
         ("%s/%s/%s" % (ACCOUNT, REGION, queue), "%s/%s/default/%s" % (ACCOUNT, REGION, rule), target_id,
          json.loads(env), sorted(k for k in ATTR_KEYS + ("ERROR_MESSAGE",) if k != "EXHAUSTED_RETRY_CONDITION" or
                                  exhausted)),
         "%s: dead letter's queue, rule key, target, event and attribute names" % what)
    return d


def expect(x, rule, bus="default", **counts):
    """Exact delivery counters of a rule, checked at the end (missing = 0)."""
    with x.lock:
        x.expect[(bus, rule)] = counts


# metric keyword -> exported counter
METRICS = {"inv": "ebridge_invocations_total", "failed": "ebridge_failed_invocations_total",
           "dli": "ebridge_dead_letter_invocations_total", "att": "ebridge_invocation_attempts_total",
           "okatt": "ebridge_successful_invocation_attempts_total",
           "retry": "ebridge_retry_invocation_attempts_total", "dlq": "ebridge_invocations_sent_to_dlq_total",
           "dlqfail": "ebridge_invocations_failed_to_be_sent_to_dlq_total",
           "throttled": "ebridge_throttled_rules_total", "triggered": "ebridge_triggered_rules_total",
           "matched": "ebridge_matched_events_total", "skipped": "ebridge_schedule_skipped_total"}
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(server):
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise RuntimeError("unparseable metrics line %r" % line)
        labels = tuple(sorted(LABEL_RE.findall(m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def mval(samples, name, bus=None, rule=None):
    labels = []
    if bus is not None:
        labels.append(("event_bus", bus))
    if rule is not None:
        labels.append(("rule", rule))
    return samples.get((name, tuple(sorted(labels))), 0.0)


# ---- programs used as functions ----------------------------------------------------------------
def write_programs(d):
    progs = {
        # every payload into its own file in $1
        "ok.sh": 'f=$(mktemp "$1/part.XXXXXX") || exit 1\ncat > "$f" || exit 1\nmv "$f" "$1/in.${f##*.}.json"\n',
        # fails ($2) times first (exit 3), then stores the payload like ok.sh
        "flaky.sh": ('f=$(mktemp "$1/part.XXXXXX") || exit 1\ncat > "$f"\necho x >> "$1/attempts"\n'
                     'if [ "$(wc -l < "$1/attempts")" -le "$2" ]; then rm -f "$f"; echo failing >&2; exit 3; fi\n'
                     'mv "$f" "$1/in.${f##*.}.json"\n'),
        # records its start, then sleeps past --function-timeout
        "slow.sh": 'cat > /dev/null\ndate +%s.%N >> "$1/starts"\nexec sleep 30\n',
        # always exits 7
        "fail.sh": 'cat > /dev/null\necho x >> "$1/attempts"\nexit 7\n',
    }
    for name, text in progs.items():
        with open(os.path.join(d, name), "w") as f:
            f.write("#!/bin/sh\n" + text)


def files_in(d):
    return sorted(glob.glob(os.path.join(d, "in.*.json")))


def lines_of(path):
    try:
        with open(path) as f:
            return [ln for ln in f.read().splitlines() if ln]
    except OSError:
        return []


# =====================================================================================
# scenarios (each on its own thread; x is shared, read-only apart from x.expect)
# =====================================================================================
def sc_functions(c, x):
    """Function programs and function URLs; program retries, timeouts and failures."""
    ev = x.ev
    make_rule(ev, "fn-kinds", [{"Id": "prog", "Arn": fn_arn("ok")}, {"Id": "url", "Arn": fn_arn("urlfn")}])
    [(eid, env)] = put(ev, "dtest.fn-kinds", {"k": "v", "n": 1})
    got = poll(lambda: files_in(x.pd["ok"]), 20)
    c.eq([open(f).read() for f in got], [env], "function program: stdin is the exact envelope text")
    reqs = x.R["fnurl"].wait(1, 20)
    c.eq([(r["method"], r["path"], hdr(r, "Content-Type"), r["body"].decode()) for r in reqs],
         [("POST", "/fn", "application/json", env)], "function URL: POST, Content-Type application/json, the envelope")
    expect(x, "fn-kinds", inv=2, att=2, okatt=2, triggered=1, matched=1)

    # a program failing twice, then succeeding
    make_rule(ev, "fn-flaky", [{"Id": "p", "Arn": fn_arn("flakyprog")}])
    # a program sleeping past --function-timeout (2 s), one retry, then the DLQ
    rs = make_rule(ev, "fn-slow", [{"Id": "p", "Arn": fn_arn("slowprog"), "RetryPolicy": {"MaximumRetryAttempts": 1},
                                    "DeadLetterConfig": {"Arn": dlq_arn("dtest-fn")}}])
    # a program failing every time: two retries, then the DLQ
    rf = make_rule(ev, "fn-fail", [{"Id": "p", "Arn": fn_arn("failprog"), "RetryPolicy": {"MaximumRetryAttempts": 2},
                                    "DeadLetterConfig": {"Arn": dlq_arn("dtest-fn")}}])
    [(e1, env1)] = put(ev, "dtest.fn-flaky", {"try": "again"})
    [(e2, env2)] = put(ev, "dtest.fn-slow", {"sleep": True})
    [(e3, env3)] = put(ev, "dtest.fn-fail", {"fail": True})
    got = poll(lambda: files_in(x.pd["flaky"]), 20)
    c.eq([open(f).read() for f in got], [env1], "program exiting 3 twice: the third run gets the envelope")
    c.eq(len(lines_of(os.path.join(x.pd["flaky"], "attempts"))), 3, "program exiting 3 twice: run 3 times")
    expect(x, "fn-flaky", inv=1, att=3, okatt=1, retry=2)

    check_dead(c, x, "program timing out", e2, env2, "p", rule="fn-slow", rule_arn=rs,
               target_arn=fn_arn("slowprog"), queue="dtest-fn", code="TIMEOUT", exhausted="MaximumRetryAttempts",
               retries=1, message="the function timed out", timeout=30)
    starts = [float(v) for v in lines_of(os.path.join(x.pd["slow"], "starts"))]
    c.ok(len(starts) == 2 and 1.8 <= starts[1] - starts[0] <= 2.0 + 3.0 * SLOW,
         "program timing out: started twice, the second start >= --function-timeout (2 s) after the first",
         repr(starts))
    expect(x, "fn-slow", inv=1, att=2, retry=1, failed=1, dlq=1)

    check_dead(c, x, "program failing for good", e3, env3, "p", rule="fn-fail", rule_arn=rf,
               target_arn=fn_arn("failprog"), queue="dtest-fn", code="INTERNAL_ERROR",
               exhausted="MaximumRetryAttempts", retries=2, message="the function exited with status 7")
    c.eq(len(lines_of(os.path.join(x.pd["fail"], "attempts"))), 3, "program failing for good: run 3 times")
    expect(x, "fn-fail", inv=1, att=3, retry=2, failed=1, dlq=1)


def sc_no_resource(c, x):
    """An unknown function and an SQS target: final at once, NO_RESOURCE."""
    ev = x.ev
    ra = make_rule(ev, "no-res", [
        {"Id": "nofn", "Arn": fn_arn("not-registered"), "DeadLetterConfig": {"Arn": dlq_arn("dtest-nores")}},
        {"Id": "sqs", "Arn": "arn:aws:sqs:%s:%s:some-queue" % (REGION, ACCOUNT),
         "DeadLetterConfig": {"Arn": dlq_arn("dtest-nores")}}])
    [(eid, env)] = put(ev, "dtest.no-res", {"x": 1})
    check_dead(c, x, "unknown function", eid, env, "nofn", rule="no-res", rule_arn=ra,
               target_arn=fn_arn("not-registered"), queue="dtest-nores", code="NO_RESOURCE", exhausted=None,
               retries=0, message="the function is not registered with this server")
    check_dead(c, x, "SQS target", eid, env, "sqs", rule="no-res", rule_arn=ra,
               target_arn="arn:aws:sqs:%s:%s:some-queue" % (REGION, ACCOUNT), queue="dtest-nores",
               code="NO_RESOURCE", exhausted=None, retries=0,
               message="the target kind is not delivered by this server")
    rc, out, err = x.dl.cli("list", "--queue", dlq_arn("dtest-nores"))
    rows = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    c.eq((rc, sorted(r["target_id"] for r in rows)), (0, ["nofn", "sqs"]),
         "dead-letters list --queue ARN lists exactly this queue's two dead letters")
    rc, out2, err = x.dl.cli("list", "--queue", "dtest-nores")
    c.eq((rc, out2), (0, out), "dead-letters list --queue NAME gives the same lines")
    rc, out3, err = x.dl.cli("delete", "--queue", "dtest-nores")
    c.eq((rc, out3), (0, "deleted 2 dead letters\n"), "dead-letters delete --queue NAME")
    rc, out4, err = x.dl.cli("list", "--queue", "dtest-nores")
    c.eq((rc, out4), (0, ""), "... the queue is empty afterwards")
    expect(x, "no-res", inv=2, att=2, failed=2, dlq=2)


def sc_input_modes(c, x):
    ev = x.ev
    R = x.R["im"]
    tstr = '"Event <dt> from <src> for rule <aws.events.rule-name>: \\"<id>\\" <items> <missing>"'
    tjson = ('{"order": <id>, "amount": <amt>, "lines": <items>, "rule": <aws.events.rule-name>, '
             '"note": "order <id> received", "missing": <missing>, "flag": <flag>, "obj": <obj>}')
    paths = {"id": "$.detail.orderId", "amt": "$.detail.total", "items": "$.detail.items", "missing": "$.detail.nope",
             "dt": "$.detail-type", "src": "$.source", "flag": "$.detail.flag", "obj": "$.detail.obj"}
    make_rule(ev, "im-a", [
        {"Id": "event", "Arn": fn_arn("im_event")},
        {"Id": "input", "Arn": fn_arn("im_input"), "Input": '{"const": [1, 2], "s": "x y"}'},
        {"Id": "pobj", "Arn": fn_arn("im_pobj"), "InputPath": "$.detail.obj"},
        {"Id": "pstr", "Arn": fn_arn("im_pstr"), "InputPath": "$.detail.orderId"},
        {"Id": "tstr", "Arn": fn_arn("im_tstr"),
         "InputTransformer": {"InputPathsMap": paths, "InputTemplate": tstr}}], pattern={"source": ["dtest.im"]})
    predef = ('{"arn": <aws.events.rule-arn>, "name": <aws.events.rule-name>, '
              '"t": <aws.events.event.ingestion-time>, "ev": <aws.events.event>, "full": <aws.events.event.json>}')
    rb = make_rule(ev, "im-b", [
        {"Id": "tjson", "Arn": fn_arn("im_tjson"), "InputTransformer": {"InputPathsMap": paths, "InputTemplate": tjson}},
        {"Id": "predef", "Arn": fn_arn("im_predef"), "InputTransformer": {"InputTemplate": predef}},
        # an array placeholder inside a JSON string: invalid JSON, AWS silently delivers nothing
        {"Id": "skip", "Arn": fn_arn("im_skip"),
         "InputTransformer": {"InputPathsMap": {"items": "$.detail.items"}, "InputTemplate": '{"p": "<items>"}'}}],
        pattern={"source": ["dtest.im"]})
    detail = {"orderId": "o-17", "total": 42.5, "items": ["a", "b"], "flag": True, "obj": {"k": "v", "n": [1, 2]}}
    t0 = time.time()
    [(eid, env)] = put(ev, "dtest.im", detail, dt="Order Placed")
    t1 = time.time()
    want = {
        "/im/event": env,
        "/im/input": '{"const": [1, 2], "s": "x y"}',
        "/im/pobj": '{"k":"v","n":[1,2]}',
        "/im/pstr": '"o-17"',
        "/im/tstr": '"Event Order Placed from dtest.im for rule im-a: \\"o-17\\" [a,b] "',
        "/im/tjson": ('{"order": "o-17", "amount": 42.5, "lines": ["a","b"], "rule": "im-b", '
                      '"note": "order o-17 received", "missing": "", "flag": true, "obj": {"k":"v","n":[1,2]}}'),
    }
    for path, body in want.items():
        got = R.wait(1, 20, path=path)
        c.eq([g["body"].decode() for g in got], [body], "%s: exactly %s" % (path, body[:60]))
    got = R.wait(1, 20, path="/im/predef")
    if c.ok(len(got) == 1, "predefined variables: delivered"):
        p = json.loads(got[0]["body"])
        full = json.loads(env)
        c.eq((p["arn"], p["name"], p["full"]), (rb, "im-b", full),
             "aws.events.rule-arn, aws.events.rule-name, aws.events.event.json (the whole event)")
        c.eq(p["ev"], {"version": "0", "id": eid, "detailType": "Order Placed", "source": "dtest.im",
                       "account": ACCOUNT, "time": EVENT_TIME_S, "region": REGION, "resources": []},
             "aws.events.event: the event without detail, detailType in camelCase")
        m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z$", p["t"])
        ts = (datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=datetime.timezone.utc).timestamp() + int(m.group(2)) / 1000) if m else 0
        c.ok(m and t0 - 1 <= ts <= t1 + 1, "aws.events.event.ingestion-time: YYYY-MM-DDThh:mm:ss.mmmZ, the "
             "ingestion time", repr(p["t"]))
    time.sleep(1.0 * SLOW)  # the skipped one had as long as the others (they went in the same pass)
    c.eq(R.wait(1, 0, path="/im/skip"), [], "transformer result that is not valid JSON: not delivered")
    c.ok(re.search(r'msg="deliver: not delivered" rule="[^"]*im-b" target="skip" event=%s' % eid, x.s1.log()),
         "the server logs the target it did not deliver to")
    expect(x, "im-a", inv=5, att=5, okatt=5)
    expect(x, "im-b", inv=3, att=2, okatt=2, failed=1)


def sc_api_destinations(c, x):
    ev = x.ev
    R = x.R["api"]
    # BASIC, with connection header/query parameters; POST to a path with two '*'
    conn = ev.create_connection(
        Name="dt-basic", AuthorizationType="BASIC",
        AuthParameters={"BasicAuthParameters": {"Username": "alice", "Password": "s3cret pw"},
                        "InvocationHttpParameters": {
                            "HeaderParameters": [{"Key": "X-Shared", "Value": "from-conn", "IsValueSecret": False},
                                                 {"Key": "X-Conn-Only", "Value": "c1", "IsValueSecret": True}],
                            "QueryStringParameters": [{"Key": "cq", "Value": "c v/1", "IsValueSecret": False}]}})
    c.eq(conn["ConnectionState"], "AUTHORIZED", "BASIC connection AUTHORIZED")
    d = ev.create_api_destination(Name="dt-basic", ConnectionArn=conn["ConnectionArn"],
                                  InvocationEndpoint=R.url("/orders/*/items/*"), HttpMethod="POST")
    make_rule(ev, "api-basic", [{
        "Id": "dest", "Arn": d["ApiDestinationArn"], "RoleArn": "arn:aws:iam::%s:role/x" % ACCOUNT,
        "HttpParameters": {"PathParameterValues": ["$.detail.orderId", "fixed"],
                           "HeaderParameters": {"x-shared": "from-target", "X-Dyn": "$.detail.orderId",
                                                "X-Static": "s1"},
                           "QueryStringParameters": {"tq": "$.detail.total", "t2": "a&b=c"}}}])
    # API_KEY, GET: no body; the target's own spelling of the key header is overridden
    conn2 = ev.create_connection(Name="dt-apikey", AuthorizationType="API_KEY",
                                 AuthParameters={"ApiKeyAuthParameters": {"ApiKeyName": "x-api-key",
                                                                          "ApiKeyValue": "k-123"}})
    d2 = ev.create_api_destination(Name="dt-get", ConnectionArn=conn2["ConnectionArn"],
                                   InvocationEndpoint=R.url("/get-it"), HttpMethod="GET")
    make_rule(ev, "api-get", [{"Id": "dest", "Arn": d2["ApiDestinationArn"],
                               "HttpParameters": {"HeaderParameters": {"X-API-KEY": "from-target"},
                                                  "QueryStringParameters": {"q": "1"}}}])
    detail = {"orderId": "o-17", "total": 42.5}
    [(e1, env1)] = put(ev, "dtest.api-basic", detail)
    [(e2, env2)] = put(ev, "dtest.api-get", {"g": 1})

    got = R.wait(1, 20, path="/orders/o-17/items/fixed")
    if c.ok(len(got) == 1, "BASIC: one request to /orders/o-17/items/fixed ('*' from PathParameterValues, the "
            "first a JSONPath)", repr([r["path"] for r in R.requests])):
        r = got[0]
        c.eq((r["method"], r["body"].decode()), ("POST", env1), "BASIC: POST with the envelope as body")
        q = urllib.parse.parse_qs(r["query"], keep_blank_values=True)
        c.eq(q, {"tq": ["42.5"], "t2": ["a&b=c"], "cq": ["c v/1"]},
             "query: the target's (tq dynamic from $.detail.total) and the connection's, URL-encoded")
        c.eq(hdr(r, "Authorization"), "Basic " + base64.b64encode(b"alice:s3cret pw").decode(),
             "Authorization: Basic base64(user:password)")
        c.eq(hdrs(r, "X-Shared"), ["from-conn"], "header precedence: the connection's value wins (once)")
        c.eq((hdr(r, "X-Conn-Only"), hdr(r, "X-Dyn"), hdr(r, "X-Static")), ("c1", "o-17", "s1"),
             "connection header (secret value), dynamic header from $.detail.orderId, fixed target header")
        c.eq({k: hdr(r, k) for k in ("User-Agent", "Content-Type", "Range", "Accept-Encoding", "Connection",
                                     "Content-Length", "Host")},
             {"User-Agent": "Amazon/EventBridge/ApiDestinations", "Content-Type": "application/json; charset=utf-8",
              "Range": "bytes=0-1048575", "Accept-Encoding": "gzip,deflate", "Connection": "close",
              "Content-Length": str(len(env1)), "Host": "127.0.0.1:%d" % R.port},
             "fixed headers of §10.3 (User-Agent, Content-Type, Range, Accept-Encoding, Connection, Content-Length, "
             "Host)")
    got = R.wait(1, 20, path="/get-it")
    if c.ok(len(got) == 1, "API_KEY GET: one request"):
        r = got[0]
        c.eq((r["method"], r["query"], r["body"], hdr(r, "Content-Length") in (None, "0")),
             ("GET", "q=1", b"", True), "GET: query parameter, no body")
        c.eq(hdrs(r, "x-api-key"), ["k-123"], "API_KEY: the key header once, with the connection's value")
    expect(x, "api-basic", inv=1, att=1, okatt=1)
    expect(x, "api-get", inv=1, att=1, okatt=1)

    # OAuth client credentials: token fetch, 401 with the first (stale) token, refresh, AUTHORIZED
    T, D = x.R["token"], x.R["oauth"]
    conn3 = ev.create_connection(
        Name="dt-oauth", AuthorizationType="OAUTH_CLIENT_CREDENTIALS",
        AuthParameters={"OAuthParameters": {
            "ClientParameters": {"ClientID": "cid", "ClientSecret": "csecret"},
            "AuthorizationEndpoint": T.url("/oauth/token"), "HttpMethod": "POST",
            "OAuthHttpParameters": {"BodyParameters": [{"Key": "scope", "Value": "events", "IsValueSecret": False}],
                                    "HeaderParameters": [{"Key": "X-Tok-Hdr", "Value": "h", "IsValueSecret": False}],
                                    "QueryStringParameters": [{"Key": "aud", "Value": "dtest",
                                                               "IsValueSecret": False}]}}})
    c.eq(conn3["ConnectionState"], "AUTHORIZING", "OAuth connection AUTHORIZING before any token")
    d3 = ev.create_api_destination(Name="dt-oauth", ConnectionArn=conn3["ConnectionArn"],
                                   InvocationEndpoint=D.url("/hook"), HttpMethod="PUT")
    make_rule(ev, "api-oauth", [{"Id": "dest", "Arn": d3["ApiDestinationArn"]}])
    c.eq(ev.describe_connection(Name="dt-oauth")["ConnectionState"], "AUTHORIZING",
         "still AUTHORIZING until a delivery needs a token")
    [(e3, env3)] = put(ev, "dtest.api-oauth", {"o": 1})
    got = D.wait(2, 20)
    c.eq([(r["method"], hdr(r, "Authorization"), r["body"].decode()) for r in got],
         [("PUT", "Bearer tok-1", env3), ("PUT", "Bearer tok-2", env3)],
         "destination: 401 for the stale token, the event sent again at once with a fresh one")
    toks = T.wait(2, 5)
    c.eq(len(toks), 2, "two token requests (the first, the refresh after 401)")
    for i, r in enumerate(toks):
        form = urllib.parse.parse_qs(r["body"].decode(), keep_blank_values=True)
        c.eq((r["method"], r["path"], r["query"], form, hdr(r, "Authorization"), hdr(r, "Content-Type"),
              hdr(r, "X-Tok-Hdr")),
             ("POST", "/oauth/token", "aud=dtest", {"grant_type": ["client_credentials"], "scope": ["events"]},
              "Basic " + base64.b64encode(b"cid:csecret").decode(), "application/x-www-form-urlencoded", "h"),
             "token request %d: POST form grant_type=client_credentials + body parameter, Basic client auth, "
             "query and header parameters" % (i + 1))
    st = poll(lambda: ev.describe_connection(Name="dt-oauth")["ConnectionState"] == "AUTHORIZED", 5)
    c.ok(st, "the connection is AUTHORIZED once a token was obtained")
    [(e4, env4)] = put(ev, "dtest.api-oauth", {"o": 2})
    got = D.wait(3, 20)
    c.eq([(hdr(r, "Authorization"), r["body"].decode()) for r in got[2:]], [("Bearer tok-2", env4)],
         "the next event uses the token kept")
    c.eq(T.count(), 2, "no further token request")
    expect(x, "api-oauth", inv=2, att=3, okatt=2, throttled=(0, 2))  # fresh lanes start without tokens


def sc_buses(c, x):
    ev, evw = x.ev, x.evw
    R = x.R["bus"]
    for b in ("dt-a", "dt-b", "dt-loop", "dt-pa", "dt-pb"):
        ev.create_event_bus(Name=b)
    evw.create_event_bus(Name="dt-west")
    make_rule(ev, "fwd-a", [{"Id": "to-b", "Arn": bus_arn("dt-b")}, {"Id": "to-west", "Arn": bus_arn("dt-west", WEST)},
                            # the input mode of a bus target is ignored: the event itself goes on
                            {"Id": "to-b2", "Arn": bus_arn("dt-b"), "Input": '{"ignored": true}'}],
              bus="dt-a", pattern={"source": ["dtest.fwd"]})
    make_rule(ev, "fwd-b", [{"Id": "r", "Arn": fn_arn("bus_b")}], bus="dt-b", pattern={"source": ["dtest.fwd"]})
    evw.put_rule(Name="fwd-west", EventBusName="dt-west", EventPattern=json.dumps({"source": ["dtest.fwd"]}))
    evw.put_targets(Rule="fwd-west", EventBusName="dt-west", Targets=[{"Id": "r", "Arn": fn_arn("bus_west", WEST)}])
    # a bus targeting itself, and A -> B -> A
    make_rule(ev, "loop-self", [{"Id": "self", "Arn": bus_arn("dt-loop")}, {"Id": "r", "Arn": fn_arn("bus_loop")}],
              bus="dt-loop", pattern={"source": ["dtest.loop"]})
    make_rule(ev, "pp-a", [{"Id": "to-b", "Arn": bus_arn("dt-pb")}], bus="dt-pa", pattern={"source": ["dtest.pp"]})
    make_rule(ev, "pp-b", [{"Id": "to-a", "Arn": bus_arn("dt-pa")}, {"Id": "r", "Arn": fn_arn("bus_pp")}],
              bus="dt-pb", pattern={"source": ["dtest.pp"]})

    detail = {"hop": "x", "n": 3}
    [(e1, env1)] = put(ev, "dtest.fwd", detail, bus="dt-a", resources=["arn:aws:x:::r1"])
    got = R.wait(2, 20, path="/bus/b")
    c.eq([g["body"].decode() for g in got], [env1, env1],
         "bus -> bus (same region): the envelope text unchanged, same id (twice: the Input of one target ignored)")
    got = R.wait(1, 20, path="/bus/west")
    if c.ok(len(got) == 1, "bus -> bus across regions: delivered by the other region's rule"):
        w = json.loads(got[0]["body"])
        c.ok(w["id"] != e1 and UUID_RE.match(w["id"]), "cross-region forward: a new UUIDv4 id", w["id"])
        c.eq(got[0]["body"].decode(), env1.replace(e1, w["id"]),
             "cross-region forward: otherwise the same text (account and region of the original kept)")
    expect(x, "fwd-a", bus="dt-a", inv=3, att=3, okatt=3)
    expect(x, "fwd-b", bus="dt-b", inv=2, att=2, okatt=2, triggered=2, matched=2)

    [(e2, env2)] = put(ev, "dtest.loop", {"loop": 1}, bus="dt-loop")
    [(e3, env3)] = put(ev, "dtest.pp", {"pp": 1}, bus="dt-pa")
    R.wait(5, 20, path="/bus/loop")
    R.wait(2, 20, path="/bus/pp")
    time.sleep(0.5 * SLOW)  # nothing more comes
    got = R.wait(99, 0, path="/bus/loop")
    c.eq([g["body"].decode() for g in got], [env2] * 5,
         "bus targeting itself: its other target gets the event 5 times (hops 0..4), then the hop limit stops it")
    got = R.wait(99, 0, path="/bus/pp")
    c.eq([g["body"].decode() for g in got], [env3] * 2, "A -> B -> A: B's receiver gets it twice before the limit")
    c.ok(re.search(r'msg="deliver: bus loop; dropped" rule="[^"]*/dt-loop/loop-self" target="self" event=%s hops=4'
                   % e2, x.s1.log()), "the loop guard logs the dropped forward (hops=4)")
    expect(x, "loop-self", bus="dt-loop", inv=9, att=9, okatt=9, dli=1, triggered=5, matched=5)
    expect(x, "pp-a", bus="dt-pa", inv=2, att=2, okatt=2, dli=1, triggered=3, matched=3)
    expect(x, "pp-b", bus="dt-pb", inv=4, att=4, okatt=4, triggered=2, matched=2)
    x.bus_west_expect = {"inv": 1, "att": 1, "okatt": 1}


def sc_log_groups(c, x):
    ev = x.ev
    make_rule(ev, "logs", [
        {"Id": "plain", "Arn": log_arn("/aws/events/dtest")},
        {"Id": "tpl", "Arn": log_arn("/aws/events/dtest-t") + ":*",
         "InputTransformer": {"InputPathsMap": {"timestamp": "$.time", "message": "$.detail.msg"},
                              "InputTemplate": '{"timestamp": <timestamp>, "message": <message>}'}}])
    t0 = int(time.time() * 1000)
    evs = put(ev, "dtest.logs", {"msg": "hello \"log\""}, n=2)
    t1 = int(time.time() * 1000)
    f1 = log_file(x.s1.data_dir, "/aws/events/dtest")
    c.eq(os.path.basename(f1), "000000000000%3Aus-east-1%3A%2Faws%2Fevents%2Fdtest.ndjson", "log file name")
    lines = poll(lambda: len(read_lines(f1)) >= 2 and read_lines(f1), 20) or read_lines(f1)
    c.eq(sorted(ln["message"] for ln in lines), sorted(env for _, env in evs),
         "log group: one line per event, message = the envelope text")
    c.ok(all(sorted(ln) == ["message", "timestamp"] and t0 - 1000 <= ln["timestamp"] <= t1 + 1000 for ln in lines),
         "log group line: {timestamp: ingestion ms, message}", repr(lines))
    with open(f1, "rb") as f:
        raw = f.read()
    c.ok(raw.startswith(b'{"timestamp":') and raw.endswith(b"}\n") and raw.count(b"\n") == 2,
         "NDJSON: compact objects, one per line", raw[:200])
    f2 = log_file(x.s1.data_dir, "/aws/events/dtest-t")
    lines = poll(lambda: len(lines_of(f2)) >= 2 and lines_of(f2), 20) or lines_of(f2)
    c.eq(lines, ['{"timestamp":"%s","message":"hello \\"log\\""}' % EVENT_TIME_S] * 2,
         "log group with an InputTransformer: the rendered object is the line (ARN's ':*' dropped)")
    expect(x, "logs", inv=4, att=4, okatt=4, triggered=2, matched=2)


def sc_retries(c, x):
    """HTTP outcomes on API destinations: retried, final, exhausted; all in flight at once."""
    ev = x.ev
    conn = ev.create_connection(Name="dt-plain", AuthorizationType="API_KEY",
                                AuthParameters={"ApiKeyAuthParameters": {"ApiKeyName": "x-k", "ApiKeyValue": "v"}})
    dests = {}

    def dest(name, url):
        dests[name] = ev.create_api_destination(Name="dt-" + name, ConnectionArn=conn["ConnectionArn"],
                                                InvocationEndpoint=url, HttpMethod="POST")["ApiDestinationArn"]
        return dests[name]

    Q = "dtest-retry"
    cases = {
        # name: (receiver, RetryPolicy or None, with DLQ)
        "r-flaky": ("flaky", None, True),
        "r-429": ("ra429", None, True),
        "r-timeout": ("slow", {"MaximumRetryAttempts": 1}, True),
        "r-reset": ("reset", None, True),
        "r-refused": (None, {"MaximumRetryAttempts": 2}, True),
        "r-301": ("r301", None, True),
        "r-400": ("r400", None, True),
        "r-500": ("r500", {"MaximumRetryAttempts": 3}, True),
        "r-age": ("r503", {"MaximumEventAgeInSeconds": 60}, True),
        "r-age-ok": ("flaky2", {"MaximumEventAgeInSeconds": 60}, True),
        "r-nodlq": ("r400b", None, False),
    }
    arns, evs = {}, {}
    for name, (rname, rp, withdlq) in cases.items():
        url = x.R[rname].url("/" + name) if rname else "http://127.0.0.1:%d/refused" % x.refused_port
        t = {"Id": "d", "Arn": dest(name, url)}
        if rp:
            t["RetryPolicy"] = rp
        if withdlq:
            t["DeadLetterConfig"] = {"Arn": dlq_arn(Q)}
        arns[name] = make_rule(ev, name, [t])
    # event ages count from ingestion, whenever the server started: put a few seconds into its run
    while time.monotonic() - x.t_started < 3.0:
        time.sleep(0.05)
    t_put = {}
    for name in cases:
        t_put[name] = time.monotonic()
        [evs[name]] = put(ev, "dtest." + name, {"case": name})

    def dead(name, code, exhausted, retries, message=None, timeout=20):
        eid, env = evs[name]
        return check_dead(c, x, name, eid, env, "d", rule=name, rule_arn=arns[name], target_arn=dests[name],
                          queue=Q, code=code, exhausted=exhausted, retries=retries, message=message, timeout=timeout)

    # 503, 503, 200
    got = x.R["flaky"].wait(3, 20)
    c.eq([g["body"].decode() for g in got], [evs["r-flaky"][1]] * 3, "503 twice then 200: three attempts, same body")
    gaps = [b["t"] - a["t"] for a, b in zip(got, got[1:])]
    c.ok(len(gaps) == 2 and all(g < 1.0 * SLOW for g in gaps), "backoff at time scale 60: retries within a second",
         repr(gaps))
    expect(x, "r-flaky", inv=1, att=3, okatt=1, retry=2)
    # 429 + Retry-After: 120 (two real seconds at scale 60), then 200
    got = x.R["ra429"].wait(2, 20)
    gap = got[1]["t"] - got[0]["t"] if len(got) == 2 else None
    c.ok(gap is not None and 120 / SCALE * 0.95 <= gap <= 120 / SCALE + 1.5 * SLOW,
         "429 with Retry-After: 120 -> the retry waits 120 virtual s (%.1f real s), not the ~1 s backoff"
         % (120 / SCALE), "gap %r" % gap)
    expect(x, "r-429", inv=1, att=2, okatt=1, retry=1)
    # connection reset twice, then 200
    got = x.R["reset"].wait(3, 20)
    c.eq([g["body"].decode() for g in got], [evs["r-reset"][1]] * 3, "connection reset twice (RST), then 200")
    expect(x, "r-reset", inv=1, att=3, okatt=1, retry=2)
    # MaximumEventAgeInSeconds=60 with two 503s first: delivered within the age
    got = x.R["flaky2"].wait(3, 20)
    c.eq(len(got), 3, "MaximumEventAgeInSeconds=60, 503 twice then 200: delivered (the age counts from ingestion)")
    c.eq(x.dl.find(evs["r-age-ok"][0]), [], "... and no dead letter")
    expect(x, "r-age-ok", inv=1, att=3, okatt=1, retry=2)
    # final at once
    dead("r-301", "SDK_CLIENT_ERROR", None, 0, "HTTP status 301 (redirects are not followed)")
    c.eq(x.R["r301"].count(), 1, "301: one attempt, not followed")
    dead("r-400", "SDK_CLIENT_ERROR", None, 0, "HTTP status 400")
    c.eq(x.R["r400"].count(), 1, "400: one attempt")
    expect(x, "r-301", inv=1, att=1, failed=1, dlq=1)
    expect(x, "r-400", inv=1, att=1, failed=1, dlq=1)
    # refused: retried twice, then the DLQ
    dead("r-refused", "CONNECTION_FAILURE", "MaximumRetryAttempts", 2)
    expect(x, "r-refused", inv=1, att=3, retry=2, failed=1, dlq=1)
    # 500 always, MaximumRetryAttempts 3
    dead("r-500", "INTERNAL_ERROR", "MaximumRetryAttempts", 3, "HTTP status 500")
    c.eq(x.R["r500"].count(), 4, "500 always, MaximumRetryAttempts 3: four attempts")
    expect(x, "r-500", inv=1, att=4, retry=3, failed=1, dlq=1)
    # 503 always, MaximumEventAgeInSeconds 60 (one real second)
    d = dead("r-age", "INTERNAL_ERROR", "MaximumEventAgeInSeconds", None, "HTTP status 503")
    if d:
        n = int(d["attributes"]["RETRY_ATTEMPTS"])
        reqs = x.R["r503"].wait(99, 0)
        span = reqs[-1]["t"] - t_put["r-age"] if reqs else -1
        c.ok(n >= 2 and len(reqs) == n + 1 and span <= 60 / SCALE + 1.0 * SLOW,
             "MaximumEventAgeInSeconds=60: retried (%d) until the next retry would pass 60 virtual s" % n,
             "retries %d, requests %d, last one %.2f s after PutEvents" % (n, len(reqs), span))
        expect(x, "r-age", inv=1, att=n + 1, retry=n, failed=1, dlq=1)
    # no DLQ: dropped and counted as failed
    got = x.R["r400b"].wait(1, 20)
    c.eq(len(got), 1, "no DLQ: one attempt (400)")
    ok = poll(lambda: re.search(r'msg="deliver: dropped" rule="[^"]*/r-nodlq" target="d" event=%s code=SDK_CLIENT_ERROR'
                                % evs["r-nodlq"][0], x.s1.log()), 10)
    c.ok(ok, "no DLQ: the invocation is dropped (logged)")
    c.eq(x.dl.find(evs["r-nodlq"][0]), [], "no DLQ: no dead letter anywhere")
    expect(x, "r-nodlq", inv=1, att=1, failed=1)
    # timeout (the receiver sleeps 7 s, API destinations time out after 5 s): retried once, then the DLQ
    dead("r-timeout", "TIMEOUT", "MaximumRetryAttempts", 1, timeout=30)
    got = x.R["slow"].wait(2, 0)
    gap = got[1]["t"] - got[0]["t"] if len(got) == 2 else None
    # (arrival times: the first request may be read a little after curl's clock started)
    c.ok(gap is not None and 4.5 <= gap <= 5.0 + 2.0 * SLOW, "timeout: the second attempt after the 5 s timeout",
         repr(gap))
    expect(x, "r-timeout", inv=1, att=2, retry=1, failed=1, dlq=1)


def sc_redrive(c, x):
    ev = x.ev
    R = x.R["fixable"]
    conn = ev.create_connection(Name="dt-redrive", AuthorizationType="BASIC",
                                AuthParameters={"BasicAuthParameters": {"Username": "u", "Password": "p"}})
    d = ev.create_api_destination(Name="dt-redrive", ConnectionArn=conn["ConnectionArn"],
                                  InvocationEndpoint=R.url("/fixable"), HttpMethod="POST")["ApiDestinationArn"]
    ra = make_rule(ev, "redrive", [{"Id": "d", "Arn": d, "DeadLetterConfig": {"Arn": dlq_arn("dtest-redrive")}}])
    evs = put(ev, "dtest.redrive", {"r": 1}, n=2)
    for eid, env in evs:
        check_dead(c, x, "redrive: 400", eid, env, "d", rule="redrive", rule_arn=ra, target_arn=d,
                   queue="dtest-redrive", code="SDK_CLIENT_ERROR", exhausted=None, retries=0, message="HTTP status 400")
    c.eq(R.count(), 2, "redrive: two attempts answered 400")
    x.fixed.set()  # the receiver answers 200 from now on
    ids = sorted(dd["id"] for dd in x.dl.list(fresh=True) if dd["target_id"] == "d" and
                 dd["event_id"] in [e for e, _ in evs])
    # re-drive one by --id, the other by --queue
    rc, out, err = x.dl.cli("redrive", "--id", str(ids[0]))
    c.eq((rc, out), (0, "re-drove 1 dead letter\n"), "dead-letters redrive --id N")
    rc, out, err = x.dl.cli("redrive", "--queue", "dtest-redrive")
    c.eq((rc, out), (0, "re-drove 1 dead letter\n"), "dead-letters redrive --queue NAME: the other one")
    t0 = time.monotonic()
    got = R.wait(4, 15)
    c.eq(sorted(g["body"].decode() for g in got[2:]), sorted(env for _, env in evs),
         "after the re-drive the fixed receiver gets both events (the server's queue scan runs every 5 s)")
    c.ok(time.monotonic() - t0 <= 5.0 + 3.0 * SLOW, "... within the 5 s scan period", time.monotonic() - t0)
    c.eq([dd for dd in x.dl.list(fresh=True) if dd["queue"].endswith("/dtest-redrive")], [],
         "the re-driven dead letters are gone")
    rc, out, err = x.dl.cli("redrive", "--id", str(ids[0]))
    c.eq((rc, out), (0, "re-drove 0 dead letters\n"), "re-driving it again: nothing to do")
    # throttled: a new API destination lane starts without tokens, the second of two events at once may wait
    expect(x, "redrive", inv=4, att=4, okatt=2, failed=2, dlq=2, throttled=(0, 1))


def sc_rate_limit(c, x):
    ev = x.ev
    R = x.R["rate"]
    conn = ev.create_connection(Name="dt-rate", AuthorizationType="API_KEY",
                                AuthParameters={"ApiKeyAuthParameters": {"ApiKeyName": "x-k", "ApiKeyValue": "v"}})
    d = ev.create_api_destination(Name="dt-rate", ConnectionArn=conn["ConnectionArn"], InvocationEndpoint=R.url("/r"),
                                  HttpMethod="POST", InvocationRateLimitPerSecond=5)
    make_rule(ev, "rate", [{"Id": "d", "Arn": d["ApiDestinationArn"]}])
    evs = put(ev, "dtest.rate", {"n": 1}, n=30)
    got = R.wait(30, 30)
    c.eq(sorted(g["body"].decode() for g in got), sorted(env for _, env in evs), "rate limit 5/s: all 30 delivered")
    if len(got) == 30:
        ts = [g["t"] for g in got]
        spread = ts[-1] - ts[0]
        c.ok(spread >= 4.8, "rate limit 5/s: 30 deliveries spread over >= ~5 s", "%.2f s" % spread)
        win = max(sum(1 for t in ts if a <= t < a + 1.0) for a in ts)
        c.ok(win <= 10, "rate limit 5/s: at most 10 in any 1 s window (a bucket of 5 refilled at 5/s)",
             "max %d" % win)
    # ThrottledRules: once per delayed invocation (the first one finds the lane without a rate yet;
    # a stalled dispatcher may find two tokens at once)
    expect(x, "rate", inv=30, att=30, okatt=30, throttled=(15, 29))


def sc_cp_arn_change(c, x):
    """A job waiting for its retry follows a change of its target's Arn."""
    ev = x.ev
    make_rule(ev, "cp-arn", [{"Id": "t", "Arn": fn_arn("cp_old")}])
    [(eid, env)] = put(ev, "dtest.cp-arn", {"cp": "arn"})
    got = x.R["cp_old"].wait(1, 20)
    t_first = got[0]["t"] if got else time.monotonic()
    ev.put_targets(Rule="cp-arn", Targets=[{"Id": "t", "Arn": fn_arn("cp_new")}])
    got = x.R["cp_new"].wait(1, 20)
    c.eq([g["body"].decode() for g in got], [env],
         "Arn changed while the job waited for its retry (Retry-After 180 = 3 s): the next attempt goes to the "
         "new target")
    c.ok(got and got[0]["t"] - t_first >= 180 / SCALE * 0.95, "... after the Retry-After delay",
         got and got[0]["t"] - t_first)
    c.eq(x.R["cp_old"].count(), 1, "the old target got only the first attempt")
    expect(x, "cp-arn", inv=1, att=2, okatt=1, retry=1)


def sc_cp_remove(c, x):
    ev = x.ev
    make_rule(ev, "cp-remove", [{"Id": "t", "Arn": fn_arn("cp_remove"),
                                 "DeadLetterConfig": {"Arn": dlq_arn("dtest-cp")}}])
    [(eid, env)] = put(ev, "dtest.cp-remove", {"cp": "remove"})
    got = x.R["cp_remove"].wait(1, 20)
    ev.remove_targets(Rule="cp-remove", Ids=["t"])
    ok = poll(lambda: re.search(r'msg="deliver: target gone; dropped" rule="[^"]*/cp-remove" target="t" event=%s'
                                % eid, x.s1.log()), 10)
    c.ok(len(got) == 1 and ok, "RemoveTargets while the job waits to retry: dropped when it is due")
    time.sleep(0.3)
    c.eq((x.R["cp_remove"].count(), x.dl.find(eid)), (1, []), "... no further attempt, no dead letter")
    # the failed attempt counts unless its outcome came back after RemoveTargets (then: dropped)
    expect(x, "cp-remove", att=(0, 1), retry=(0, 1))


def sc_cp_delete(c, x):
    ev = x.ev
    make_rule(ev, "cp-delete", [{"Id": "t", "Arn": fn_arn("cp_delete"),
                                 "DeadLetterConfig": {"Arn": dlq_arn("dtest-cp")}}])
    [(eid, env)] = put(ev, "dtest.cp-delete", {"cp": "delete"})
    got = x.R["cp_delete"].wait(1, 20)
    ev.remove_targets(Rule="cp-delete", Ids=["t"])
    ev.delete_rule(Name="cp-delete")
    ok = poll(lambda: re.search(r'msg="deliver: target gone; dropped" rule="[^"]*/cp-delete" target="t" event=%s'
                                % eid, x.s1.log()), 10)
    c.ok(len(got) == 1 and ok, "DeleteRule while the job waits to retry: dropped when it is due")
    time.sleep(0.3)
    c.eq((x.R["cp_delete"].count(), x.dl.find(eid)), (1, []), "... no further attempt, no dead letter")
    with x.lock:
        x.deleted_rules.append(("default", "cp-delete"))
        # counted in the aggregates if the failed attempt's outcome came back before DeleteRule (a
        # later one finds the rule gone: dropped, not counted), so the sums allow either
        x.deleted_counts = {"att": 1, "retry": 1}


def sc_cp_disabled(c, x):
    ev = x.ev
    make_rule(ev, "cp-disabled", [{"Id": "t", "Arn": fn_arn("cp_disabled")}])
    ev.disable_rule(Name="cp-disabled")
    put(ev, "dtest.cp-disabled", {"state": "disabled"}, n=3)
    time.sleep(1.0 * SLOW)
    c.eq(x.R["cp_disabled"].count(), 0, "a disabled rule: no delivery")
    ev.enable_rule(Name="cp-disabled")
    [(eid, env)] = put(ev, "dtest.cp-disabled", {"state": "enabled"})
    x.R["cp_disabled"].wait(1, 20)
    time.sleep(0.3)
    c.eq([g["body"].decode() for g in x.R["cp_disabled"].wait(99, 0)], [env],
         "enabled again: only the event put after EnableRule is delivered")
    expect(x, "cp-disabled", inv=1, att=1, okatt=1, triggered=1, matched=1)


def sc_stream(c, x):
    """A stream from 4 threads: every event reaches its target promptly (not only through the 5 s queue scan,
    e.g. when the store reuses the id of a job that just finished)."""
    ev = x.ev
    R = x.R["stream"]
    make_rule(ev, "stream", [{"Id": "t", "Arn": fn_arn("stream")}])
    n, answered = 600, {}

    def worker(k):
        for i in range(k, n, 4):
            r = ev.put_events(Entries=[{"Source": "dtest.stream", "DetailType": "s", "Detail": json.dumps({"i": i})}])
            answered[i] = (time.monotonic(), r["Entries"][0]["EventId"])

    ths = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    got = R.wait(n, 30)
    by_i = {}
    for g in got:
        b = json.loads(g["body"])
        by_i.setdefault(b["detail"]["i"], (g["t"], b["id"]))
    c.eq(sorted(by_i), list(range(n)), "stream of %d events from 4 threads: each delivered" % n)
    c.eq(len(got), n, "... once")
    late = sorted((round(by_i[i][0] - answered[i][0], 3), i) for i in by_i if i in answered)[-3:]
    c.ok(late and late[-1][0] < 2.0 * SLOW, "... each within 2 s of its PutEvents answer (slowest: %s)" % late,
         late)
    c.ok(all(by_i[i][1] == answered[i][1] for i in by_i if i in answered), "... with the EventId PutEvents gave")
    expect(x, "stream", inv=n, att=n, okatt=n)


SCHED_TEXT = ('{"version":"0","id":"%s","detail-type":"Scheduled Event","source":"aws.events","account":"%s",'
              '"time":"%s","region":"%s","resources":["%s"],"detail":{}}')


def sc_schedules(c, x):
    s2 = x.s2
    ev = x.ev2
    ra = ev.put_rule(Name="every-minute", ScheduleExpression="rate(1 minute)")["RuleArn"]
    ev.put_targets(Rule="every-minute", Targets=[{"Id": "log", "Arn": log_arn("/sched/rate")}])
    rc_ = ev.put_rule(Name="even-minutes", ScheduleExpression="cron(0/2 * * * ? *)")["RuleArn"]
    ev.put_targets(Rule="even-minutes", Targets=[{"Id": "log", "Arn": log_arn("/sched/cron")}])
    fr, fc = log_file(s2.data_dir, "/sched/rate"), log_file(s2.data_dir, "/sched/cron")

    def firings(path, arn):
        """{id: (time, message text)} of the firings logged so far."""
        out = {}
        for ln in read_lines(path):
            m = json.loads(ln["message"])
            out[m["id"]] = (m["time"], ln["message"])
        return out

    def secs(t):
        return int(datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp())

    r1 = poll(lambda: len(firings(fr, ra)) >= 3 and firings(fr, ra), 20) or firings(fr, ra)
    c1 = poll(lambda: len(firings(fc, rc_)) >= 2 and firings(fc, rc_), 20) or firings(fc, rc_)
    c.ok(len(r1) >= 3 and len(c1) >= 2, "rate(1 minute) and cron(0/2 * * * ? *) fire about every 1 s / 2 s at scale "
         "60", (len(r1), len(c1)))
    for name, arn, fs in (("rate", ra, r1), ("cron", rc_, c1)):
        c.ok(all(UUID_RE.match(i) and TIME_RE.match(t) and text == SCHED_TEXT % (i, ACCOUNT, t, REGION, arn)
                 for i, (t, text) in fs.items()),
             "%s: AWS's Scheduled Event, exactly (source aws.events, detail-type, resources [rule ARN], detail {})"
             % name, repr(list(fs.values())[:2]))
    ct = sorted(secs(t) for t, _ in c1.values())
    c.ok(all(t % 120 == 0 for t in ct), "cron(0/2 ...): at second 0 of even minutes", repr(ct))

    rc = s2.stop()
    c.eq(rc, 0, "schedule server stops cleanly")
    down = 6.0  # six virtual minutes at scale 60
    time.sleep(down)
    x.spawner.call(lambda: s2.start(timeout=30))
    # wait for the catch-up firing and two regular ones after it

    def settled(path, arn, period, extra):
        fs = firings(path, arn)
        ts = sorted(secs(t) for t, _ in fs.values())
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        big = [g for g in gaps if g != period]
        return fs if big and gaps.index(big[0]) + 1 + extra <= len(ts) - 1 else None

    fr2 = poll(lambda: settled(fr, ra, 60, 2), 20) or firings(fr, ra)
    fc2 = poll(lambda: settled(fc, rc_, 120, 1), 20) or firings(fc, rc_)
    m = scrape(s2)
    for name, rule, fs, period in (("rate", "every-minute", fr2, 60), ("cron", "even-minutes", fc2, 120)):
        ts = sorted(secs(t) for t, _ in fs.values())
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        odd = [g for g in gaps if g != period]
        skipped = mval(m, METRICS["skipped"], "default", rule)
        c.ok(len(odd) == 1 and odd[0] % period == 0 and odd[0] // period - 1 >= 2,
             "%s: after %.0f s down (%.0f periods) one firing for the latest missed time, the others skipped; every "
             "other gap one period" % (name, down, down * SCALE / period), repr(gaps))
        if odd:
            c.eq(skipped, float(odd[0] // period - 1), "%s: ebridge_schedule_skipped_total = missed periods - 1" % name)
    c.ok(all(UUID_RE.match(i) and text == SCHED_TEXT % (i, ACCOUNT, t, REGION, ra) for i, (t, text) in fr2.items()),
         "rate: the firings after the restart are Scheduled Events too")
    # a disabled schedule does not fire
    ev.disable_rule(Name="even-minutes")
    time.sleep(0.3)
    n0 = len(firings(fc, rc_))
    time.sleep(4.5 * SLOW)
    c.eq(len(firings(fc, rc_)), n0, "a disabled schedule does not fire")
    x.s2_metrics = m


# =====================================================================================
def main():
    global SLOW
    binary = binary_from_argv()
    if "asan" in binary or "san" in os.environ.get("EB_DTEST_SLOW", ""):
        SLOW = 2.0
    c = TChecker("ebridge delivery")
    x = Ctx()
    x.lock = threading.Lock()
    x.expect = {}
    x.deleted_rules = []
    x.tmp = tempfile.mkdtemp(prefix="ebridge-dtest-")
    x.fixed = threading.Event()
    pdir = os.path.join(x.tmp, "progs")
    os.makedirs(pdir)
    write_programs(pdir)
    x.pd = {}
    for k in ("ok", "flaky", "slow", "fail"):
        x.pd[k] = os.path.join(x.tmp, "out-" + k)
        os.makedirs(x.pd[k])

    def flaky(n, status=503, headers=None):
        return lambda k, r: reply(status, b"busy", headers) if k <= n else reply()

    def oauth_token(k, r):
        return reply(200, json.dumps({"access_token": "tok-%d" % k, "token_type": "Bearer",
                                      "expires_in": 3600}).encode(), {"Content-Type": "application/json"})

    def oauth_dest(k, r):
        a = hdr(r, "Authorization") or ""
        return reply(200) if a.startswith("Bearer tok-") and a != "Bearer tok-1" else reply(401, b"stale token")

    R = x.R = {
        "fnurl": Receiver("fnurl"), "im": Receiver("im"), "api": Receiver("api"), "bus": Receiver("bus"),
        "token": Receiver("token", oauth_token), "oauth": Receiver("oauth", oauth_dest),
        "flaky": Receiver("flaky", flaky(2)), "flaky2": Receiver("flaky2", flaky(2)),
        "ra429": Receiver("ra429", flaky(1, 429, {"Retry-After": "120"})),
        "slow": Receiver("slow", lambda k, r: dict(reply(), sleep=7.0)),
        "reset": Receiver("reset", lambda k, r: "reset" if k <= 2 else reply()),
        "r301": Receiver("r301", lambda k, r: reply(301, b"", {"Location": "http://127.0.0.1:9/elsewhere"})),
        "r400": Receiver("r400", lambda k, r: reply(400, b"bad")),
        "r400b": Receiver("r400b", lambda k, r: reply(400, b"bad")),
        "r500": Receiver("r500", lambda k, r: reply(500, b"oops")),
        "r503": Receiver("r503", lambda k, r: reply(503, b"down")),
        "fixable": Receiver("fixable", lambda k, r: reply() if x.fixed.is_set() else reply(400, b"not yet")),
        "rate": Receiver("rate"),
        "cp_old": Receiver("cp_old", lambda k, r: reply(503, b"later", {"Retry-After": "180"})),
        "cp_new": Receiver("cp_new"),
        "cp_remove": Receiver("cp_remove", lambda k, r: reply(503, b"later", {"Retry-After": "180"})),
        "cp_delete": Receiver("cp_delete", lambda k, r: reply(503, b"later", {"Retry-After": "180"})),
        "cp_disabled": Receiver("cp_disabled"), "stream": Receiver("stream"),
    }
    x.refused_port = free_port()
    funcs = {
        "ok": "sh %s/ok.sh %s" % (pdir, x.pd["ok"]),
        "flakyprog": "sh %s/flaky.sh %s 2" % (pdir, x.pd["flaky"]),
        "slowprog": "sh %s/slow.sh %s" % (pdir, x.pd["slow"]),
        "failprog": "sh %s/fail.sh %s" % (pdir, x.pd["fail"]),
        "urlfn": R["fnurl"].url("/fn"),
        "bus_b": R["bus"].url("/bus/b"), "bus_west": R["bus"].url("/bus/west"),
        "bus_loop": R["bus"].url("/bus/loop"), "bus_pp": R["bus"].url("/bus/pp"),
        "stream": R["stream"].url("/stream"),
    }
    for k in ("event", "input", "pobj", "pstr", "tstr", "tjson", "predef", "skip"):
        funcs["im_" + k] = R["im"].url("/im/" + k)
    for k in ("cp_old", "cp_new", "cp_remove", "cp_delete", "cp_disabled"):
        funcs[k] = R[k].url("/" + k)
    args = ["--test-time-scale", str(SCALE), "--function-timeout", "2"]
    for k, v in funcs.items():
        args += ["--function", "%s=%s" % (k, v)]
    x.s1 = Server(binary, log_level="debug", extra_args=args)
    x.s2 = Server(binary, extra_args=["--test-time-scale", str(SCALE)])
    try:
        x.spawner = Spawner()
        x.spawner.call(lambda: x.s1.start(timeout=30))
        x.spawner.call(lambda: x.s2.start(timeout=30))
        x.t_started = time.monotonic()
        x.ev = boto3_client(x.s1)
        x.evw = boto3_client(x.s1, region=WEST)
        x.ev2 = boto3_client(x.s2)
        x.dl = DeadLetters(binary, x.s1.data_dir)
        scenarios = [sc_schedules, sc_retries, sc_functions, sc_no_resource, sc_input_modes, sc_api_destinations,
                     sc_buses, sc_log_groups, sc_redrive, sc_rate_limit, sc_cp_arn_change, sc_cp_remove,
                     sc_cp_delete, sc_cp_disabled, sc_stream]
        times = {}

        def run(fn):
            name = fn.__name__[3:]
            t0 = time.monotonic()
            try:
                fn(Scoped(c, name), x)
            except Exception as e:  # noqa: BLE001 - one failure, the others go on
                c.ok(False, "[%s] unexpected exception %r" % (name, e), traceback.format_exc())
            times[name] = time.monotonic() - t0

        threads = [threading.Thread(target=run, args=(fn,), daemon=True) for fn in scenarios]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 200
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        c.ok(not any(t.is_alive() for t in threads), "every scenario finished within 200 s")
        print("scenario times: " + ", ".join("%s %.1fs" % kv for kv in sorted(times.items(), key=lambda kv: -kv[1])),
              flush=True)

        c.section("metrics (GET /metrics) of every rule")
        time.sleep(0.3)
        m = scrape(x.s1)
        for (bus, rule), want in sorted(x.expect.items()):
            got = {k: mval(m, METRICS[k], bus, rule) for k in
                   ("inv", "failed", "dli", "att", "okatt", "retry", "dlq", "dlqfail", "throttled")}
            w = {}
            for k in got:  # a (lo, hi) expectation is a range
                v = want.get(k, 0)
                if isinstance(v, tuple):
                    c.ok(v[0] <= got[k] <= v[1], "%s/%s: %s in [%d, %d]" % (bus, rule, METRICS[k], v[0], v[1]),
                         got[k])
                    v = got[k]
                w[k] = float(v)
            c.eq(got, w, "%s/%s: invocation counters" % (bus, rule))
            for k in ("triggered", "matched"):
                if k in want:
                    c.eq(mval(m, METRICS[k], bus, rule), float(want[k]), "%s/%s: %s" % (bus, rule, METRICS[k]))
        wx = getattr(x, "bus_west_expect", {})
        c.eq({k: mval(m, METRICS[k], "dt-west", "fwd-west") for k in wx}, {k: float(v) for k, v in wx.items()},
             "dt-west/fwd-west (us-west-2): invocation counters")
        for bus, rule in x.deleted_rules:
            c.eq([k for k in m if ("rule", rule) in k[1]], [], "%s/%s: a deleted rule has no series" % (bus, rule))
        # aggregates: the unlabelled series is the sum over every rule; the bus series over the bus's rules
        for k in ("inv", "failed", "dli", "att", "okatt", "retry", "dlq"):
            name = METRICS[k]
            per_rule = sum(v for (n, labels), v in m.items() if n == name and len(labels) == 2)
            extra = getattr(x, "deleted_counts", {}).get(k, 0)
            got = m.get((name, ()), None)
            c.ok(got in (per_rule, per_rule + extra), "%s{} = the sum of its per-rule series" % name,
                 "got %r, per-rule sum %r (+%r of the deleted rule)" % (got, per_rule, extra))
        for k in ("att", "okatt", "retry"):
            name = METRICS[k]
            for bus in ("default", "dt-loop"):
                per_rule = sum(v for (n, labels), v in m.items()
                               if n == name and len(labels) == 2 and ("event_bus", bus) in labels)
                extra = getattr(x, "deleted_counts", {}).get(k, 0) if bus == "default" else 0
                got = m.get((name, (("event_bus", bus),)), 0.0)
                c.ok(got in (per_rule, per_rule + extra),
                     "%s{event_bus=%s} = the sum of the bus's per-rule series" % (name, bus),
                     "got %r, per-rule sum %r (+%r of the deleted rule)" % (got, per_rule, extra))
        rc = x.s1.stop()
        c.eq(rc, 0, "main server stops cleanly (exit 0)")
        rc = x.s2.stop()
        c.eq(rc, 0, "schedule server stops cleanly (exit 0)")
    except Exception as e:  # noqa: BLE001
        c.ok(False, "unexpected exception %r" % e, traceback.format_exc())
    finally:
        failed = bool(c.failures)
        if failed:
            for s in (x.s1, x.s2):
                print("---- server log tail (%s) ----\n%s" % (s.data_dir, s.log()[-6000:]))
        for r in R.values():
            r.stop()
        x.s1.cleanup()
        x.s2.cleanup()
        shutil.rmtree(x.tmp, ignore_errors=True)
    sys.exit(c.finish())


if __name__ == "__main__":
    main()
