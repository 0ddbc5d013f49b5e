#!/usr/bin/env python3
"""Integration test with the image's newer boto3 (>= 1.34, whose model has UpdateEventBus and the
bus members Description / KmsKeyIdentifier / DeadLetterConfig / LogConfig / CreationTime).

usage: <python3> tests/integration/test_newer_sdk.py <path/to/ebridge>

Any python3 may start it: when the running interpreter lacks a new enough boto3, the script looks
for one (`python3` on PATH, then /root/.pyenv/versions/*/bin/python3) and re-executes itself there.
If none exists it fails with a clear message.
"""

import glob
import os
import shutil
import subprocess
import sys

MIN_VERSION = (1, 34)
PROBE = ("import boto3, botocore.session, sys; "
         "m = botocore.session.get_session().get_service_model('events'); "
         "sys.stdout.write(boto3.__version__ if 'UpdateEventBus' in m.operation_names else '')")


def version_tuple(v):
    out = []
    for p in v.split(".")[:2]:
        try:
            out.append(int(p))
        except ValueError:
            out.append(0)
    return tuple(out)


def current_ok():
    try:
        import boto3
        import botocore.session
        m = botocore.session.get_session().get_service_model("events")
        return version_tuple(boto3.__version__) >= MIN_VERSION and "UpdateEventBus" in m.operation_names
    except Exception:
        return False


def find_interpreter():
    cands = []
    p = shutil.which("python3")
    if p:
        cands.append(p)
    cands += sorted(glob.glob("/root/.pyenv/versions/*/bin/python3"), reverse=True)
    tried = []
    for cnd in cands:
        if os.path.realpath(cnd) == os.path.realpath(sys.executable) and cnd != p:
            continue
        try:
            r = subprocess.run([cnd, "-c", PROBE], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            tried.append("%s: %s" % (cnd, e))
            continue
        v = r.stdout.strip()
        if r.returncode == 0 and v and version_tuple(v) >= MIN_VERSION:
            return cnd, tried
        tried.append("%s: %s" % (cnd, ("boto3 " + v) if v else "no boto3 with UpdateEventBus"))
    return None, tried


if not current_ok():
    if os.environ.get("EBRIDGE_NEWER_SDK_REEXEC"):
        sys.exit("FAIL: re-executed interpreter %s still has no boto3 >= 1.34 with UpdateEventBus" % sys.executable)
    interp, tried = find_interpreter()
    if not interp:
        print("FAIL: no Python interpreter with boto3 >= %d.%d (UpdateEventBus) was found; tried:" % MIN_VERSION)
        for t in tried:
            print("  " + t)
        sys.exit(1)
    os.environ["EBRIDGE_NEWER_SDK_REEXEC"] = "1"
    os.execv(interp, [interp, os.path.abspath(__file__)] + sys.argv[1:])

# ---- from here on: a boto3 with UpdateEventBus ------------------------------------------------
import datetime  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Checker, Server, boto3_client  # noqa: E402

import boto3  # noqa: E402
import botocore  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

ACCOUNT = "123456789012"
DLQ = "arn:aws:sqs:us-east-1:%s:bus-dlq" % ACCOUNT
DLQ2 = "arn:aws:sqs:us-east-1:%s:bus-dlq-2" % ACCOUNT
KMS = "arn:aws:kms:us-east-1:%s:key/0a1b2c3d-1111-2222-3333-444455556666" % ACCOUNT


def md(r):
    return {k: v for k, v in r.items() if k != "ResponseMetadata"}


def main():
    binary = common.binary_from_argv()
    c = Checker("test_newer_sdk (boto3 %s, botocore %s, %s)" % (boto3.__version__, botocore.__version__,
                                                               sys.executable))
    print("using %s with boto3 %s" % (sys.executable, boto3.__version__))
    srv = Server(binary, account=ACCOUNT)
    try:
        srv.start()
        ev = boto3_client(srv)
        arn = "arn:aws:events:us-east-1:%s:event-bus/nb" % ACCOUNT

        c.section("CreateEventBus with the newer members")
        r = ev.create_event_bus(Name="nb", Description="first", KmsKeyIdentifier=KMS,
                                DeadLetterConfig={"Arn": DLQ},
                                LogConfig={"IncludeDetail": "FULL", "Level": "ERROR"})
        c.eq(md(r), {"EventBusArn": arn, "Description": "first", "KmsKeyIdentifier": KMS,
                     "DeadLetterConfig": {"Arn": DLQ}, "LogConfig": {"IncludeDetail": "FULL", "Level": "ERROR"}},
             "CreateEventBus echoes Description, KmsKeyIdentifier, DeadLetterConfig, LogConfig")
        d = ev.describe_event_bus(Name="nb")
        c.ok(isinstance(d.get("CreationTime"), datetime.datetime) and isinstance(d.get("LastModifiedTime"),
                                                                                   datetime.datetime),
             "DescribeEventBus: CreationTime and LastModifiedTime", repr(md(d)))
        created = d.get("CreationTime")
        lst = [b for b in ev.list_event_buses(NamePrefix="nb")["EventBuses"] if b["Name"] == "nb"]
        c.ok(lst and lst[0].get("Description") == "first" and "CreationTime" in lst[0],
             "ListEventBuses items carry Description and CreationTime", repr(lst))

        c.section("UpdateEventBus")
        r = ev.update_event_bus(Name="nb", Description="second")
        c.eq((r.get("Arn"), r.get("Name"), r.get("Description")), (arn, "nb", "second"),
             "UpdateEventBus Description: response Arn, Name, Description")
        d = ev.describe_event_bus(Name="nb")
        c.eq(d.get("Description"), "second", "DescribeEventBus after UpdateEventBus(Description)")
        # AWS does not document whether members omitted from UpdateEventBus are kept or reset: report only
        print("       info: members omitted from UpdateEventBus are %s (KmsKeyIdentifier=%r, DeadLetterConfig=%r)" %
              ("kept" if d.get("KmsKeyIdentifier") == KMS else "reset", d.get("KmsKeyIdentifier"),
               d.get("DeadLetterConfig")))
        c.ok(d.get("LastModifiedTime") and d["LastModifiedTime"] >= created, "LastModifiedTime not before CreationTime",
             repr(md(d)))
        r = ev.update_event_bus(Name="nb", DeadLetterConfig={"Arn": DLQ2})
        c.eq(r.get("DeadLetterConfig"), {"Arn": DLQ2}, "UpdateEventBus DeadLetterConfig echoed")
        c.eq(ev.describe_event_bus(Name="nb").get("DeadLetterConfig"), {"Arn": DLQ2},
             "DescribeEventBus shows the new DeadLetterConfig")
        kms2 = "alias/ebridge-it"
        r = ev.update_event_bus(Name="nb", KmsKeyIdentifier=kms2)
        c.eq(r.get("KmsKeyIdentifier"), kms2, "UpdateEventBus KmsKeyIdentifier echoed")
        d = ev.describe_event_bus(Name="nb")
        c.eq(d.get("KmsKeyIdentifier"), kms2, "DescribeEventBus after UpdateEventBus(KmsKeyIdentifier)")
        r = ev.update_event_bus(Name="nb", Description="third", KmsKeyIdentifier=KMS,
                                DeadLetterConfig={"Arn": DLQ}, LogConfig={"IncludeDetail": "NONE", "Level": "INFO"})
        d = ev.describe_event_bus(Name=arn)
        c.eq({k: d.get(k) for k in ("Name", "Description", "KmsKeyIdentifier", "DeadLetterConfig", "LogConfig")},
             {"Name": "nb", "Description": "third", "KmsKeyIdentifier": KMS, "DeadLetterConfig": {"Arn": DLQ},
              "LogConfig": {"IncludeDetail": "NONE", "Level": "INFO"}},
             "UpdateEventBus of all members at once; DescribeEventBus by ARN")
        r = ev.update_event_bus(Description="default bus")
        c.eq((r.get("Name"), r.get("Description")), ("default", "default bus"), "UpdateEventBus without Name = default")
        c.eq(ev.describe_event_bus().get("Description"), "default bus", "DescribeEventBus default after update")
        try:
            ev.update_event_bus(Name="no-such-bus", Description="x")
            c.ok(False, "UpdateEventBus of a missing bus -> ResourceNotFoundException", "accepted")
        except ClientError as e:
            c.eq((e.response["Error"]["Code"], e.response["Error"]["Message"],
                  e.response["ResponseMetadata"]["HTTPStatusCode"]),
                 ("ResourceNotFoundException", "Event bus no-such-bus does not exist.", 400),
                 "UpdateEventBus of a missing bus -> ResourceNotFoundException")

        c.section("restart")
        before = md(ev.describe_event_bus(Name="nb"))
        c.eq(srv.stop(), 0, "SIGTERM exit code 0")
        srv.start()
        c.eq(md(ev.describe_event_bus(Name="nb")), before, "UpdateEventBus changes survive a restart")
        c.eq(srv.stop(), 0, "SIGTERM exit code 0")
    finally:
        common.stop_all()
    sys.exit(c.finish())


if __name__ == "__main__":
    main()
