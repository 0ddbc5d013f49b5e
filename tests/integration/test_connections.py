#!/usr/bin/python3
"""Integration test: connections and API destinations through Debian's boto3 (python3-boto3, whose
model has all eleven operations) and raw HTTP.

usage: /usr/bin/python3 tests/integration/test_connections.py <path/to/ebridge>

A real server (log level debug) on a loopback port with a fresh data dir: every operation, the
states (AUTHORIZED / AUTHORIZING / DEAUTHORIZED, ACTIVE / INACTIVE), the error codes and texts,
pagination and filters, per-region separation, restart with the same data dir, and the 3,000
quotas (a second server). Secrets (passwords, API key values, client secrets, parameter values
marked IsValueSecret) must never come back: every response body of the run and every server log
line are searched for each of them; the store files must hold them (that is where they live) and
be private (0700 dir, 0600 files).
"""

import concurrent.futures
import datetime
import json
import os
import re
import stat
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Checker, Server, boto3_client, raw_call  # noqa: E402

import boto3  # noqa: E402
import botocore  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

ACCOUNT = "123456789012"
CONN_ARN_RE = re.compile(r"^arn:aws:events:(?P<r>[a-z0-9-]+):%s:connection/(?P<n>[.\-_A-Za-z0-9]+)/"
                         r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$" % ACCOUNT)
DEST_ARN_RE = re.compile(r"^arn:aws:events:(?P<r>[a-z0-9-]+):%s:api-destination/(?P<n>[.\-_A-Za-z0-9]+)/"
                         r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$" % ACCOUNT)
SECRET_ARN_RE = re.compile(r"^arn:aws:secretsmanager:(?P<r>[a-z0-9-]+):%s:secret:events!connection/"
                           r"(?P<n>[.\-_A-Za-z0-9]+)/[0-9a-f-]{36}-[0-9A-Za-z]{6}$" % ACCOUNT)


def secret(tag):
    return "%s-SECRET-%s" % (tag, uuid.uuid4().hex)


# every secret value handed to the server; none may ever come back
SECRETS = {k: secret(k) for k in ("basic-pass", "apikey-value", "client-secret", "inv-header", "inv-query",
                                  "inv-body", "oauth-header", "oauth-body", "new-pass", "new-client-secret",
                                  "eu-pass", "reauth-pass", "retype-apikey", "raw-pass")}
BODIES = []  # every response body of the run (SDK and raw)


def record(cl):
    def after_call(http_response, **kw):
        BODIES.append(http_response.content.decode("utf-8", "replace") if http_response.content else "")
    cl.meta.events.register("after-call.events", after_call)
    return cl


def client(server, region="us-east-1"):
    return record(boto3_client(server, region=region))


def raw(url, op, body):
    st, hd, parsed, rawb = raw_call(url, op, body)
    BODIES.append(rawb.decode("utf-8", "replace"))
    return st, parsed


def md(r):
    return {k: v for k, v in r.items() if k != "ResponseMetadata"} if isinstance(r, dict) else r


def err_of(fn):
    """(code, message, HTTP status) of the ClientError fn() raises; None when it succeeds."""
    try:
        fn()
    except ClientError as e:
        return (e.response["Error"].get("Code"), e.response["Error"].get("Message"),
                e.response["ResponseMetadata"].get("HTTPStatusCode"))
    return None


def expect_err(c, what, fn, code, message=None, contains=None):
    got = err_of(fn)
    ok = got is not None and got[0] == code and got[2] == 400
    if ok and message is not None:
        ok = got[1] == message
    if ok and contains is not None:
        ok = contains in (got[1] or "")
    want = (code, message if message is not None else ("...%s..." % contains if contains else "*"), 400)
    return c.ok(ok, what, "got:  %r\nwant: %r" % (got, want))


def conn_missing(name):
    return "Failed to describe the connection(s). Connection '%s' does not exist." % name


def dest_missing(name):
    return "Failed to describe the api-destination(s). An api-destination '%s' does not exist." % name


def http_params(tag):
    return {"HeaderParameters": [{"Key": "X-Secret", "Value": SECRETS[tag + "-header"], "IsValueSecret": True},
                                 {"Key": "X-Plain", "Value": "plain-header", "IsValueSecret": False}],
            "QueryStringParameters": [{"Key": "q", "Value": SECRETS["inv-query"], "IsValueSecret": True},
                                      {"Key": "p", "Value": "plain-query"}] if tag == "inv" else [],
            "BodyParameters": [{"Key": "b", "Value": SECRETS[tag + "-body"], "IsValueSecret": True}]}


def http_params_view(tag):
    return {"HeaderParameters": [{"Key": "X-Secret", "IsValueSecret": True},
                                 {"Key": "X-Plain", "Value": "plain-header", "IsValueSecret": False}],
            "QueryStringParameters": [{"Key": "q", "IsValueSecret": True},
                                      {"Key": "p", "Value": "plain-query", "IsValueSecret": False}]
            if tag == "inv" else [],
            "BodyParameters": [{"Key": "b", "IsValueSecret": True}]}


class Ctx:
    pass


# =====================================================================================
def t_create(c, x):
    ev = x.ev
    t0 = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
    r = ev.create_connection(Name="basic-conn", Description="basic one", AuthorizationType="BASIC",
                             AuthParameters={"BasicAuthParameters": {"Username": "alice",
                                                                     "Password": SECRETS["basic-pass"]},
                                             "InvocationHttpParameters": http_params("inv")})
    t1 = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
    r = md(r)
    c.eq(sorted(r), ["ConnectionArn", "ConnectionState", "CreationTime", "LastModifiedTime"],
         "CreateConnection answers ConnectionArn, ConnectionState, CreationTime, LastModifiedTime")
    m = CONN_ARN_RE.match(r["ConnectionArn"])
    c.ok(m and m.group("r") == "us-east-1" and m.group("n") == "basic-conn",
         "connection ARN arn:aws:events:us-east-1:ACCOUNT:connection/basic-conn/UUID", r["ConnectionArn"])
    c.eq(r["ConnectionState"], "AUTHORIZED", "BASIC connection is AUTHORIZED at once")
    c.ok(t0 <= r["CreationTime"] <= t1 and r["LastModifiedTime"] == r["CreationTime"],
         "CreationTime is now and equals LastModifiedTime", repr(r))
    x.basic_arn = r["ConnectionArn"]

    r = md(ev.create_connection(Name="apikey-conn", AuthorizationType="API_KEY",
                                AuthParameters={"ApiKeyAuthParameters": {"ApiKeyName": "X-Api-Key",
                                                                         "ApiKeyValue": SECRETS["apikey-value"]}}))
    c.eq(r["ConnectionState"], "AUTHORIZED", "API_KEY connection is AUTHORIZED at once")
    x.apikey_arn = r["ConnectionArn"]

    r = md(ev.create_connection(
        Name="oauth-conn", AuthorizationType="OAUTH_CLIENT_CREDENTIALS",
        AuthParameters={"OAuthParameters": {"ClientParameters": {"ClientID": "client-1",
                                                                 "ClientSecret": SECRETS["client-secret"]},
                                            "AuthorizationEndpoint": "http://127.0.0.1:9/token",
                                            "HttpMethod": "POST", "OAuthHttpParameters": http_params("oauth")}}))
    c.eq(r["ConnectionState"], "AUTHORIZING", "OAUTH_CLIENT_CREDENTIALS connection is AUTHORIZING (http:// "
         "AuthorizationEndpoint accepted)")
    x.oauth_arn = r["ConnectionArn"]

    d = md(ev.describe_connection(Name="basic-conn"))
    c.eq(sorted(d), ["AuthParameters", "AuthorizationType", "ConnectionArn", "ConnectionState", "CreationTime",
                     "Description", "LastAuthorizedTime", "LastModifiedTime", "Name", "SecretArn"],
         "DescribeConnection members (BASIC)")
    c.eq(d["AuthParameters"], {"BasicAuthParameters": {"Username": "alice"},
                               "InvocationHttpParameters": http_params_view("inv")},
         "Describe shows Username only, and parameter values not marked IsValueSecret")
    c.eq((d["Name"], d["Description"], d["AuthorizationType"], d["ConnectionState"], d["ConnectionArn"]),
         ("basic-conn", "basic one", "BASIC", "AUTHORIZED", x.basic_arn), "Describe: name, description, type, state")
    sm = SECRET_ARN_RE.match(d.get("SecretArn", ""))
    c.ok(sm and sm.group("n") == "basic-conn" and sm.group("r") == "us-east-1",
         "SecretArn arn:aws:secretsmanager:R:A:secret:events!connection/NAME/UUID-xxxxxx", d.get("SecretArn"))
    c.eq(d["LastAuthorizedTime"], d["CreationTime"], "LastAuthorizedTime = CreationTime for BASIC")

    d = md(ev.describe_connection(Name="apikey-conn"))
    c.eq(d["AuthParameters"], {"ApiKeyAuthParameters": {"ApiKeyName": "X-Api-Key"}},
         "Describe shows ApiKeyName only (no InvocationHttpParameters when none were given)")
    c.ok("Description" not in d, "no Description when none was given", repr(d))

    d = md(ev.describe_connection(Name="oauth-conn"))
    c.eq(d["AuthParameters"], {"OAuthParameters": {"ClientParameters": {"ClientID": "client-1"},
                                                   "AuthorizationEndpoint": "http://127.0.0.1:9/token",
                                                   "HttpMethod": "POST",
                                                   "OAuthHttpParameters": http_params_view("oauth")}},
         "Describe shows ClientID, AuthorizationEndpoint, HttpMethod, OAuthHttpParameters without secret values")
    c.eq((d["AuthorizationType"], d["ConnectionState"]), ("OAUTH_CLIENT_CREDENTIALS", "AUTHORIZING"),
         "Describe: OAuth type and state")


def t_connection_errors(c, x):
    ev, url = x.ev, x.srv.url
    expect_err(c, "CreateConnection of an existing name: ResourceAlreadyExistsException",
               lambda: ev.create_connection(Name="basic-conn", AuthorizationType="BASIC",
                                            AuthParameters={"BasicAuthParameters": {"Username": "a",
                                                                                    "Password": "b"}}),
               "ResourceAlreadyExistsException", "Connection basic-conn already exists.")
    for op in ("describe_connection", "delete_connection", "deauthorize_connection"):
        expect_err(c, "%s of a missing connection: ResourceNotFoundException (AWS text)" % op,
                   lambda op=op: getattr(ev, op)(Name="nope"), "ResourceNotFoundException", conn_missing("nope"))
    expect_err(c, "UpdateConnection of a missing connection: ResourceNotFoundException",
               lambda: ev.update_connection(Name="nope", Description="d"), "ResourceNotFoundException",
               conn_missing("nope"))
    expect_err(c, "BASIC without BasicAuthParameters: ValidationException",
               lambda: ev.create_connection(Name="x1", AuthorizationType="BASIC", AuthParameters={}),
               "ValidationException",
               "Failed to create the connection(s). BasicAuthParameters are required for AuthorizationType BASIC.")
    expect_err(c, "API_KEY with BasicAuthParameters: ValidationException",
               lambda: ev.create_connection(Name="x1", AuthorizationType="API_KEY", AuthParameters={
                   "BasicAuthParameters": {"Username": "a", "Password": "b"},
                   "ApiKeyAuthParameters": {"ApiKeyName": "k", "ApiKeyValue": "v"}}),
               "ValidationException", contains="BasicAuthParameters cannot be used with AuthorizationType API_KEY")
    expect_err(c, "AuthorizationEndpoint with another scheme: ValidationException",
               lambda: ev.create_connection(Name="x1", AuthorizationType="OAUTH_CLIENT_CREDENTIALS", AuthParameters={
                   "OAuthParameters": {"ClientParameters": {"ClientID": "i", "ClientSecret": "s"},
                                       "AuthorizationEndpoint": "ftp://example.com/t", "HttpMethod": "GET"}}),
               "ValidationException", contains="Parameter AuthorizationEndpoint is not valid")
    c.eq(err_of(lambda: ev.describe_connection(Name="x1"))[0], "ResourceNotFoundException",
         "refused creates left nothing behind")
    # private connections: not in this boto3's model, so raw HTTP
    st, b = raw(url, "CreateConnection", {
        "Name": "priv", "AuthorizationType": "BASIC",
        "AuthParameters": {"BasicAuthParameters": {"Username": "u", "Password": SECRETS["raw-pass"]}},
        "InvocationConnectivityParameters": {"ResourceParameters": {
            "ResourceConfigurationArn": "arn:aws:vpc-lattice:us-east-1:123456789012:resourceconfiguration/"
                                        "rcfg-0123456789abcdef0"}}})
    c.ok(st == 400 and b and b.get("__type") == "ValidationException" and "not supported" in b.get("message", ""),
         "InvocationConnectivityParameters (private connection): ValidationException", repr((st, b)))
    # the model's constraints, with AWS's message format; sensitive values are not echoed
    st, b = raw(url, "UpdateConnection", {"Name": "basic-conn", "AuthParameters": {"BasicAuthParameters": {
        "Password": SECRETS["raw-pass"] + "\u0001"}}})
    c.eq((st, (b or {}).get("__type"), (b or {}).get("message")),
         (400, "ValidationException", "1 validation error detected: Value at "
          "'authParameters.basicAuthParameters.password' failed to satisfy constraint: Member must satisfy "
          "regular expression pattern: ^[ \\t]*[^\\x00-\\x1F:\\x7F]+([ \\t]+[^\\x00-\\x1F:\\x7F]+)*[ \\t]*$"),
         "a bad Password: ValidationException naming the member, not its value")
    hp = [{"Key": "k%d" % i, "Value": SECRETS["raw-pass"], "IsValueSecret": True} for i in range(101)]
    st, b = raw(url, "CreateConnection", {"Name": "x2", "AuthorizationType": "API_KEY", "AuthParameters": {
        "ApiKeyAuthParameters": {"ApiKeyName": "k", "ApiKeyValue": SECRETS["raw-pass"]},
        "InvocationHttpParameters": {"HeaderParameters": hp}}})
    c.ok(st == 400 and (b or {}).get("message", "").startswith("1 validation error detected: Value '[") and
         (b or {}).get("message", "").endswith("' at 'authParameters.invocationHttpParameters.headerParameters' "
                                               "failed to satisfy constraint: Member must have length less than "
                                               "or equal to 100"),
         "101 HeaderParameters: ValidationException (the echoed list redacts the values)", repr((st, b))[:300])
    st, b = raw(url, "ListConnections", {"ConnectionState": "SLEEPING", "Limit": 0})
    c.eq((st, (b or {}).get("__type"), (b or {}).get("message")),
         (400, "ValidationException", "2 validation errors detected: Value 'SLEEPING' at 'connectionState' failed "
          "to satisfy constraint: Member must satisfy enum value set: [CREATING, UPDATING, DELETING, AUTHORIZED, "
          "DEAUTHORIZED, AUTHORIZING, DEAUTHORIZING, ACTIVE, FAILED_CONNECTIVITY]; Value '0' at 'limit' failed to "
          "satisfy constraint: Member must have value greater than or equal to 1"),
         "ListConnections: bad ConnectionState and Limit -> one ValidationException listing both")
    for op in ("DescribeConnection", "DeleteConnection", "DeauthorizeConnection", "DescribeApiDestination",
               "DeleteApiDestination"):
        st, b = raw(url, op, {"Name": "bad name!"})
        c.eq((st, (b or {}).get("message")),
             (400, "1 validation error detected: Value 'bad name!' at 'name' failed to satisfy constraint: Member "
              "must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+"), "%s checks the Name pattern" % op)


def t_list_connections(c, x):
    ev = x.ev
    for i in range(7):
        ev.create_connection(Name="page-%d" % i, AuthorizationType="API_KEY",
                             AuthParameters={"ApiKeyAuthParameters": {"ApiKeyName": "k", "ApiKeyValue": "v%d" % i}})
    names, tok, pages = [], None, 0
    while True:
        kw = {"NamePrefix": "page-", "Limit": 3}
        if tok:
            kw["NextToken"] = tok
        r = ev.list_connections(**kw)
        pages += 1
        names += [x_["Name"] for x_ in r["Connections"]]
        tok = r.get("NextToken")
        if not tok or pages > 10:
            break
    c.eq((names, pages), (["page-%d" % i for i in range(7)], 3), "ListConnections NamePrefix + Limit 3: 7 in 3 pages")
    allr = ev.list_connections()["Connections"]
    c.eq([x_["Name"] for x_ in allr],
         sorted(["apikey-conn", "basic-conn", "oauth-conn"] + ["page-%d" % i for i in range(7)]),
         "ListConnections: all, in name order, no NextToken")
    e = next(x_ for x_ in allr if x_["Name"] == "basic-conn")
    c.eq(sorted(e), ["AuthorizationType", "ConnectionArn", "ConnectionState", "CreationTime", "LastAuthorizedTime",
                     "LastModifiedTime", "Name"], "a ListConnections entry has the Connection members, no secrets")
    r = ev.list_connections(ConnectionState="AUTHORIZING")
    c.eq([x_["Name"] for x_ in r["Connections"]], ["oauth-conn"], "ListConnections ConnectionState=AUTHORIZING")
    c.eq(ev.list_connections(NamePrefix="zzz")["Connections"], [], "ListConnections: unknown prefix -> []")
    expect_err(c, "ListConnections with a bad NextToken: ValidationException",
               lambda: ev.list_connections(NextToken="not-a-token"), "ValidationException",
               "The NextToken provided is not valid.")


def t_api_destinations(c, x):
    ev = x.ev
    t0 = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
    r = md(ev.create_api_destination(Name="dest-basic", Description="to the sink", ConnectionArn=x.basic_arn,
                                     InvocationEndpoint="http://127.0.0.1:8080/hook/*", HttpMethod="POST"))
    c.eq(sorted(r), ["ApiDestinationArn", "ApiDestinationState", "CreationTime", "LastModifiedTime"],
         "CreateApiDestination answers ApiDestinationArn, ApiDestinationState, CreationTime, LastModifiedTime")
    m = DEST_ARN_RE.match(r["ApiDestinationArn"])
    c.ok(m and m.group("n") == "dest-basic", "API destination ARN ...:api-destination/dest-basic/UUID",
         r["ApiDestinationArn"])
    c.eq(r["ApiDestinationState"], "ACTIVE", "API destination on an AUTHORIZED connection is ACTIVE (http:// "
         "endpoint accepted)")
    c.ok(r["CreationTime"] >= t0 and r["CreationTime"] == r["LastModifiedTime"], "creation times", repr(r))
    x.dest_basic = r["ApiDestinationArn"]
    d = md(ev.describe_api_destination(Name="dest-basic"))
    c.eq({k: v for k, v in d.items() if k not in ("CreationTime", "LastModifiedTime")},
         {"ApiDestinationArn": x.dest_basic, "Name": "dest-basic", "Description": "to the sink",
          "ApiDestinationState": "ACTIVE", "ConnectionArn": x.basic_arn,
          "InvocationEndpoint": "http://127.0.0.1:8080/hook/*", "HttpMethod": "POST",
          "InvocationRateLimitPerSecond": 300}, "DescribeApiDestination (InvocationRateLimitPerSecond default 300)")

    r = md(ev.create_api_destination(Name="dest-oauth", ConnectionArn=x.oauth_arn,
                                     InvocationEndpoint="https://example.com/api", HttpMethod="PUT",
                                     InvocationRateLimitPerSecond=7))
    c.eq(r["ApiDestinationState"], "INACTIVE", "API destination on an AUTHORIZING connection is INACTIVE")
    r = md(ev.create_api_destination(Name="dest-apikey", ConnectionArn=x.apikey_arn,
                                     InvocationEndpoint="example.com/no-scheme", HttpMethod="GET"))
    c.eq(r["ApiDestinationState"], "ACTIVE", "an endpoint without a scheme is accepted (https)")

    expect_err(c, "CreateApiDestination of an existing name: ResourceAlreadyExistsException",
               lambda: ev.create_api_destination(Name="dest-basic", ConnectionArn=x.basic_arn,
                                                 InvocationEndpoint="https://e.com", HttpMethod="GET"),
               "ResourceAlreadyExistsException",
               "Failed to create the api-destination(s). An api-destination 'dest-basic' already exists.")
    ghost = "arn:aws:events:us-east-1:%s:connection/ghost/00000000-0000-0000-0000-000000000000" % ACCOUNT
    expect_err(c, "CreateApiDestination on a missing connection: ResourceNotFoundException (AWS text)",
               lambda: ev.create_api_destination(Name="d-x", ConnectionArn=ghost, InvocationEndpoint="https://e.com",
                                                 HttpMethod="GET"), "ResourceNotFoundException", conn_missing("ghost"))
    wrong_id = x.basic_arn.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    expect_err(c, "CreateApiDestination on an existing name with another id: ResourceNotFoundException",
               lambda: ev.create_api_destination(Name="d-x", ConnectionArn=wrong_id,
                                                 InvocationEndpoint="https://e.com", HttpMethod="GET"),
               "ResourceNotFoundException", conn_missing("basic-conn"))
    expect_err(c, "InvocationEndpoint ftp://...: ValidationException",
               lambda: ev.create_api_destination(Name="d-x", ConnectionArn=x.basic_arn,
                                                 InvocationEndpoint="ftp://e.com/x", HttpMethod="GET"),
               "ValidationException", contains="Parameter InvocationEndpoint is not valid")
    expect_err(c, "InvocationEndpoint with '*' in the host: ValidationException",
               lambda: ev.create_api_destination(Name="d-x", ConnectionArn=x.basic_arn,
                                                 InvocationEndpoint="https://*.e.com/x", HttpMethod="GET"),
               "ValidationException", contains="Parameter InvocationEndpoint is not valid")
    for op in ("describe_api_destination", "delete_api_destination"):
        expect_err(c, "%s of a missing API destination: ResourceNotFoundException (AWS text)" % op,
                   lambda op=op: getattr(ev, op)(Name="nope"), "ResourceNotFoundException", dest_missing("nope"))
    expect_err(c, "UpdateApiDestination of a missing one: ResourceNotFoundException",
               lambda: ev.update_api_destination(Name="nope", HttpMethod="GET"), "ResourceNotFoundException",
               dest_missing("nope"))
    st, b = raw(x.srv.url, "UpdateApiDestination", {"Name": "dest-basic", "InvocationRateLimitPerSecond": 0,
                                                     "HttpMethod": "TRACE"})
    c.eq((st, (b or {}).get("message")),
         (400, "2 validation errors detected: Value 'TRACE' at 'httpMethod' failed to satisfy constraint: Member "
          "must satisfy enum value set: [HEAD, POST, PATCH, DELETE, PUT, GET, OPTIONS]; Value '0' at "
          "'invocationRateLimitPerSecond' failed to satisfy constraint: Member must have value greater than or "
          "equal to 1"), "UpdateApiDestination: bad method and rate -> ValidationException")

    # pagination and filters
    for i in range(5):
        ev.create_api_destination(Name="pd-%d" % i, ConnectionArn=x.apikey_arn if i % 2 else x.basic_arn,
                                  InvocationEndpoint="https://e.com/%d" % i, HttpMethod="POST")
    names, tok, pages = [], None, 0
    while pages < 10:
        kw = {"Limit": 2, "NamePrefix": "pd-"}
        if tok:
            kw["NextToken"] = tok
        r = ev.list_api_destinations(**kw)
        pages += 1
        names += [d_["Name"] for d_ in r["ApiDestinations"]]
        tok = r.get("NextToken")
        if not tok:
            break
    c.eq((names, pages), (["pd-%d" % i for i in range(5)], 3), "ListApiDestinations NamePrefix + Limit 2")
    r = ev.list_api_destinations(ConnectionArn=x.apikey_arn)["ApiDestinations"]
    c.eq([d_["Name"] for d_ in r], ["dest-apikey", "pd-1", "pd-3"], "ListApiDestinations ConnectionArn filter")
    r = ev.list_api_destinations(ConnectionArn=x.basic_arn, NamePrefix="pd-")["ApiDestinations"]
    c.eq([d_["Name"] for d_ in r], ["pd-0", "pd-2", "pd-4"], "ListApiDestinations: both filters together")
    e = ev.list_api_destinations(NamePrefix="dest-basic")["ApiDestinations"]
    c.eq(sorted(e[0]) if e else None, ["ApiDestinationArn", "ApiDestinationState", "ConnectionArn", "CreationTime",
                                       "HttpMethod", "InvocationEndpoint", "InvocationRateLimitPerSecond",
                                       "LastModifiedTime", "Name"], "a ListApiDestinations entry (no Description)")

    # update
    before = md(ev.describe_api_destination(Name="pd-0"))
    time.sleep(0.01)
    r = md(ev.update_api_destination(Name="pd-0", ConnectionArn=x.oauth_arn, InvocationEndpoint="https://e.com/v2",
                                     HttpMethod="PATCH", InvocationRateLimitPerSecond=5, Description="now"))
    c.eq(r["ApiDestinationState"], "INACTIVE", "UpdateApiDestination to an AUTHORIZING connection -> INACTIVE")
    c.ok(r["LastModifiedTime"] > before["LastModifiedTime"] and r["CreationTime"] == before["CreationTime"],
         "UpdateApiDestination moves LastModifiedTime only", repr((before, r)))
    d = md(ev.describe_api_destination(Name="pd-0"))
    c.eq((d["ConnectionArn"], d["InvocationEndpoint"], d["HttpMethod"], d["InvocationRateLimitPerSecond"],
          d["Description"], d["ApiDestinationArn"]),
         (x.oauth_arn, "https://e.com/v2", "PATCH", 5, "now", before["ApiDestinationArn"]),
         "UpdateApiDestination changed what was given, kept the ARN")
    ev.update_api_destination(Name="pd-0", HttpMethod="DELETE")
    d = md(ev.describe_api_destination(Name="pd-0"))
    c.eq((d["HttpMethod"], d["InvocationEndpoint"], d["InvocationRateLimitPerSecond"]), ("DELETE", "https://e.com/v2", 5),
         "UpdateApiDestination with one member keeps the others")
    expect_err(c, "UpdateApiDestination to a missing connection: ResourceNotFoundException",
               lambda: ev.update_api_destination(Name="pd-0", ConnectionArn=ghost), "ResourceNotFoundException",
               conn_missing("ghost"))

    # delete
    r = md(ev.delete_api_destination(Name="pd-4"))
    c.eq(r, {}, "DeleteApiDestination answers {}")
    expect_err(c, "DescribeApiDestination after delete: ResourceNotFoundException (AWS text)",
               lambda: ev.describe_api_destination(Name="pd-4"), "ResourceNotFoundException", dest_missing("pd-4"))


def t_update_and_deauthorize(c, x):
    ev = x.ev
    before = md(ev.describe_connection(Name="basic-conn"))
    time.sleep(0.01)
    r = md(ev.update_connection(Name="basic-conn", AuthParameters={"BasicAuthParameters": {
        "Password": SECRETS["new-pass"]}}))
    c.eq(sorted(r), ["ConnectionArn", "ConnectionState", "CreationTime", "LastAuthorizedTime", "LastModifiedTime"],
         "UpdateConnection answer members")
    c.eq(r["ConnectionState"], "AUTHORIZED", "new password: AUTHORIZED")
    d = md(ev.describe_connection(Name="basic-conn"))
    c.eq(d["AuthParameters"]["BasicAuthParameters"], {"Username": "alice"}, "Password alone changed: Username kept")
    c.eq(d["AuthParameters"].get("InvocationHttpParameters"), http_params_view("inv"),
         "InvocationHttpParameters kept when not given")
    c.ok(d["LastModifiedTime"] > before["LastModifiedTime"] and d["LastAuthorizedTime"] > before["LastAuthorizedTime"]
         and d["CreationTime"] == before["CreationTime"] and d["SecretArn"] == before["SecretArn"],
         "LastModifiedTime and LastAuthorizedTime move; CreationTime and SecretArn stay", repr((before, d)))
    ev.update_connection(Name="basic-conn", Description="renamed description",
                         AuthParameters={"InvocationHttpParameters": {"HeaderParameters": [
                             {"Key": "X-Only", "Value": "v"}]}})
    d = md(ev.describe_connection(Name="basic-conn"))
    c.eq((d["Description"], d["AuthParameters"]["InvocationHttpParameters"]),
         ("renamed description", {"HeaderParameters": [{"Key": "X-Only", "Value": "v", "IsValueSecret": False}]}),
         "UpdateConnection replaces Description and InvocationHttpParameters")
    ev.update_connection(Name="basic-conn", AuthParameters={"InvocationHttpParameters": http_params("inv")})

    expect_err(c, "UpdateConnection to another type without its parameters: ValidationException",
               lambda: ev.update_connection(Name="apikey-conn", AuthorizationType="BASIC"), "ValidationException",
               "Failed to update the connection(s). BasicAuthParameters are required to change AuthorizationType "
               "to BASIC.")
    expect_err(c, "UpdateConnection to another type with an incomplete block: ValidationException",
               lambda: ev.update_connection(Name="apikey-conn", AuthorizationType="BASIC",
                                            AuthParameters={"BasicAuthParameters": {"Username": "u"}}),
               "ValidationException", "Failed to update the connection(s). BasicAuthParameters.Password is required "
               "for AuthorizationType BASIC.")
    expect_err(c, "UpdateConnection with a block of another type: ValidationException",
               lambda: ev.update_connection(Name="apikey-conn", AuthParameters={
                   "BasicAuthParameters": {"Username": "u", "Password": "p"}}), "ValidationException",
               contains="BasicAuthParameters cannot be used with AuthorizationType API_KEY")
    # retype: page-6 API_KEY -> BASIC
    r = md(ev.update_connection(Name="page-6", AuthorizationType="BASIC", AuthParameters={
        "BasicAuthParameters": {"Username": "bob", "Password": SECRETS["retype-apikey"]}}))
    d = md(ev.describe_connection(Name="page-6"))
    c.eq((r["ConnectionState"], d["AuthorizationType"], d["AuthParameters"]),
         ("AUTHORIZED", "BASIC", {"BasicAuthParameters": {"Username": "bob"}}),
         "UpdateConnection API_KEY -> BASIC replaces the credentials")

    # OAuth: new client secret -> AUTHORIZING again; ClientID kept
    r = md(ev.update_connection(Name="oauth-conn", AuthParameters={"OAuthParameters": {
        "ClientParameters": {"ClientSecret": SECRETS["new-client-secret"]}}}))
    d = md(ev.describe_connection(Name="oauth-conn"))
    c.eq((r["ConnectionState"], d["AuthParameters"]["OAuthParameters"]["ClientParameters"],
          d["AuthParameters"]["OAuthParameters"]["AuthorizationEndpoint"]),
         ("AUTHORIZING", {"ClientID": "client-1"}, "http://127.0.0.1:9/token"),
         "OAuth ClientSecret update: AUTHORIZING, ClientID and endpoint kept")

    # deauthorize the API_KEY connection used by dest-apikey
    c.eq(md(ev.describe_api_destination(Name="dest-apikey"))["ApiDestinationState"], "ACTIVE",
         "dest-apikey ACTIVE before DeauthorizeConnection")
    r = md(ev.deauthorize_connection(Name="apikey-conn"))
    c.eq(sorted(r), ["ConnectionArn", "ConnectionState", "CreationTime", "LastAuthorizedTime", "LastModifiedTime"],
         "DeauthorizeConnection answer members")
    c.eq(r["ConnectionState"], "DEAUTHORIZING", "DeauthorizeConnection answers DEAUTHORIZING")
    d = md(ev.describe_connection(Name="apikey-conn"))
    c.ok(d["ConnectionState"] == "DEAUTHORIZED" and "AuthParameters" not in d and "SecretArn" not in d
         and d.get("StateReason"), "then DEAUTHORIZED, no AuthParameters, no SecretArn, a StateReason", repr(d))
    c.eq(md(ev.describe_api_destination(Name="dest-apikey"))["ApiDestinationState"], "INACTIVE",
         "its API destination is INACTIVE")
    c.eq([x_["Name"] for x_ in ev.list_connections(ConnectionState="DEAUTHORIZED")["Connections"]], ["apikey-conn"],
         "ListConnections ConnectionState=DEAUTHORIZED")
    c.eq(md(ev.deauthorize_connection(Name="apikey-conn"))["ConnectionState"], "DEAUTHORIZED",
         "DeauthorizeConnection again: DEAUTHORIZED, nothing else")
    expect_err(c, "UpdateConnection of a DEAUTHORIZED connection with half the credentials: ValidationException",
               lambda: ev.update_connection(Name="apikey-conn", AuthParameters={"ApiKeyAuthParameters": {
                   "ApiKeyValue": "v"}}), "ValidationException",
               "Failed to update the connection(s). ApiKeyAuthParameters.ApiKeyName is required for "
               "AuthorizationType API_KEY.")
    r = md(ev.update_connection(Name="apikey-conn", AuthParameters={"ApiKeyAuthParameters": {
        "ApiKeyName": "X-Key-2", "ApiKeyValue": SECRETS["reauth-pass"]}}))
    d = md(ev.describe_connection(Name="apikey-conn"))
    c.ok(r["ConnectionState"] == "AUTHORIZED" and d["ConnectionState"] == "AUTHORIZED" and "StateReason" not in d
         and SECRET_ARN_RE.match(d.get("SecretArn", "")) and d["AuthParameters"] ==
         {"ApiKeyAuthParameters": {"ApiKeyName": "X-Key-2"}},
         "UpdateConnection with new credentials authorizes again (new SecretArn)", repr(d))
    c.eq(md(ev.describe_api_destination(Name="dest-apikey"))["ApiDestinationState"], "ACTIVE",
         "and its API destination is ACTIVE again")


def t_delete_connection(c, x):
    ev = x.ev
    expect_err(c, "DeleteConnection of a connection API destinations use: ValidationException",
               lambda: ev.delete_connection(Name="apikey-conn"), "ValidationException",
               "Failed to delete the connection(s). Connection 'apikey-conn' is used by 3 api-destination(s) "
               "(first: 'dest-apikey'); delete them or point them at another connection first.")
    c.eq(md(ev.describe_connection(Name="apikey-conn"))["ConnectionState"], "AUTHORIZED", "and it is still there")
    before = md(ev.describe_connection(Name="page-0"))
    r = md(ev.delete_connection(Name="page-0"))
    c.eq(r, {"ConnectionArn": before["ConnectionArn"], "ConnectionState": "DELETING",
             "CreationTime": before["CreationTime"], "LastModifiedTime": before["LastModifiedTime"],
             "LastAuthorizedTime": before["LastAuthorizedTime"]}, "DeleteConnection answers DELETING and the times")
    expect_err(c, "DescribeConnection after delete: ResourceNotFoundException (AWS text)",
               lambda: ev.describe_connection(Name="page-0"), "ResourceNotFoundException", conn_missing("page-0"))
    c.ok("page-0" not in [x_["Name"] for x_ in ev.list_connections()["Connections"]], "and not listed")
    r = md(ev.create_connection(Name="page-0", AuthorizationType="API_KEY", AuthParameters={
        "ApiKeyAuthParameters": {"ApiKeyName": "k", "ApiKeyValue": "v"}}))
    c.ok(r["ConnectionArn"] != before["ConnectionArn"], "the name can be used again (new id)", repr(r))


def t_regions(c, x):
    ev, eu = x.ev, x.eu
    c.eq(eu.list_connections()["Connections"], [], "eu-west-1 has no connections")
    c.eq(eu.list_api_destinations()["ApiDestinations"], [], "eu-west-1 has no API destinations")
    expect_err(c, "eu-west-1: DescribeConnection basic-conn -> ResourceNotFoundException",
               lambda: eu.describe_connection(Name="basic-conn"), "ResourceNotFoundException",
               conn_missing("basic-conn"))
    expect_err(c, "eu-west-1: DescribeApiDestination dest-basic -> ResourceNotFoundException",
               lambda: eu.describe_api_destination(Name="dest-basic"), "ResourceNotFoundException",
               dest_missing("dest-basic"))
    expect_err(c, "eu-west-1: CreateApiDestination with a us-east-1 connection ARN -> ResourceNotFoundException",
               lambda: eu.create_api_destination(Name="dest-basic", ConnectionArn=x.basic_arn,
                                                 InvocationEndpoint="https://e.com", HttpMethod="GET"),
               "ResourceNotFoundException", conn_missing("basic-conn"))
    r = md(eu.create_connection(Name="basic-conn", AuthorizationType="BASIC", AuthParameters={
        "BasicAuthParameters": {"Username": "eu", "Password": SECRETS["eu-pass"]}}))
    m = CONN_ARN_RE.match(r["ConnectionArn"])
    c.ok(m and m.group("r") == "eu-west-1", "the same name in eu-west-1: its own connection", r["ConnectionArn"])
    x.eu_arn = r["ConnectionArn"]
    eu.create_api_destination(Name="dest-basic", ConnectionArn=x.eu_arn, InvocationEndpoint="https://eu.e.com",
                              HttpMethod="GET")
    c.eq(md(ev.describe_connection(Name="basic-conn"))["AuthParameters"]["BasicAuthParameters"], {"Username": "alice"},
         "us-east-1 basic-conn unchanged")
    c.eq(md(ev.describe_api_destination(Name="dest-basic"))["InvocationEndpoint"], "http://127.0.0.1:8080/hook/*",
         "us-east-1 dest-basic unchanged")
    c.eq([x_["Name"] for x_ in eu.list_connections()["Connections"]], ["basic-conn"], "eu-west-1 lists its one")


def snapshot(x):
    out = {}
    for name, cl in (("us", x.ev), ("eu", x.eu)):
        for conn in cl.list_connections()["Connections"]:
            out[(name, "c", conn["Name"])] = md(cl.describe_connection(Name=conn["Name"]))
        for d in cl.list_api_destinations()["ApiDestinations"]:
            out[(name, "d", d["Name"])] = md(cl.describe_api_destination(Name=d["Name"]))
    return out


def t_restart(c, x):
    before = snapshot(x)
    x.srv.restart()
    after = snapshot(x)
    c.ok(len(before) >= 15 and before == after, "after a restart on the same data dir every connection and API "
         "destination describes the same (%d)" % len(before),
         "differences: %r" % [k for k in set(before) | set(after) if before.get(k) != after.get(k)][:10])
    # the credentials survived too: updating only the non-secret half works only if the secret half was kept
    ev = x.ev
    r = md(ev.update_connection(Name="basic-conn", AuthParameters={"BasicAuthParameters": {"Username": "carol"}}))
    c.eq(r["ConnectionState"], "AUTHORIZED", "after restart: Username alone updates (the Password was kept)")
    ev.deauthorize_connection(Name="page-1")
    expect_err(c, "after restart, a DEAUTHORIZED connection still needs both halves (nothing resurrected)",
               lambda: ev.update_connection(Name="page-1", AuthParameters={"ApiKeyAuthParameters": {
                   "ApiKeyName": "k"}}), "ValidationException", contains="ApiKeyValue is required")
    x.srv.restart()
    c.eq(md(ev.describe_connection(Name="page-1"))["ConnectionState"], "DEAUTHORIZED",
         "DEAUTHORIZED survives a restart")
    c.eq(md(ev.describe_connection(Name="basic-conn"))["AuthParameters"]["BasicAuthParameters"],
         {"Username": "carol"}, "the update survives a restart")


def t_secrets(c, x):
    stopped = x.srv.stop()
    c.eq(stopped, 0, "server stops with exit code 0")
    logs = ""
    for i in range(1, x.srv.nstarts + 1):
        with open(os.path.join(x.srv.tmp, "server-%d.log" % i), "rb") as f:
            logs += f.read().decode("utf-8", "replace")
    c.ok("op=CreateConnection" in logs and "op=DescribeConnection" in logs,
         "the debug log has the request lines (%d bytes of log)" % len(logs))
    text = "\n".join(BODIES)
    c.ok(len(BODIES) > 150, "%d response bodies recorded" % len(BODIES))
    leaked = [k for k, v in SECRETS.items() if v in text]
    c.eq(leaked, [], "no secret value appears in any response body")
    leaked = [k for k, v in SECRETS.items() if v in logs]
    c.eq(leaked, [], "no secret value appears in the server log (debug level, %d starts)" % x.srv.nstarts)
    c.ok("SECRET" not in text and "SECRET" not in logs, "not even a fragment of one")
    dd = x.srv.data_dir
    mode = stat.S_IMODE(os.stat(dd).st_mode)
    files = [f for f in os.listdir(dd) if os.path.isfile(os.path.join(dd, f))]
    fmodes = {f: oct(stat.S_IMODE(os.stat(os.path.join(dd, f)).st_mode)) for f in files}
    c.ok(mode == 0o700 and files and all(m == "0o600" for m in fmodes.values()),
         "data dir 0700, store files 0600", "dir %s, files %r" % (oct(mode), fmodes))
    blob = b"".join(open(os.path.join(dd, f), "rb").read() for f in files)
    present = [k for k in ("new-pass", "new-client-secret", "eu-pass", "reauth-pass", "retype-apikey", "inv-header", "inv-query",
                           "inv-body", "oauth-header", "oauth-body") if SECRETS[k].encode() in blob]
    c.eq(len(present), 10, "the current credentials are in the store (that is where they live): %r" % present)


def t_quota(c, binary):
    srv = Server(binary, account=ACCOUNT)
    srv.start()
    try:
        url = srv.url
        body = {"AuthorizationType": "API_KEY", "AuthParameters": {"ApiKeyAuthParameters": {
            "ApiKeyName": "k", "ApiKeyValue": "v"}}}

        def mk(i):
            st, _, b, _ = raw_call(url, "CreateConnection", dict(body, Name="q-%04d" % i))
            return st
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            sts = list(pool.map(mk, range(3000)))
        c.eq(sts.count(200), 3000, "3,000 connections created (%.1f s)" % (time.monotonic() - t0))
        st, _, b, _ = raw_call(url, "CreateConnection", dict(body, Name="q-one-more"))
        c.eq((st, (b or {}).get("__type")), (400, "LimitExceededException"), "the 3,001st: LimitExceededException")
        st, _, b, _ = raw_call(url, "CreateConnection", dict(body, Name="q-one-more"), headers={
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/eu-west-1/events/aws4_request, "
                             "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64})
        c.eq(st, 200, "the quota is per region: eu-west-1 still takes one")
        arn = raw_call(url, "DescribeConnection", {"Name": "q-0000"})[2]["ConnectionArn"]

        def mkd(i):
            st, _, b, _ = raw_call(url, "CreateApiDestination", {"Name": "qd-%04d" % i, "ConnectionArn": arn,
                                                                 "InvocationEndpoint": "https://e.com",
                                                                 "HttpMethod": "POST"})
            return st
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            sts = list(pool.map(mkd, range(3000)))
        c.eq(sts.count(200), 3000, "3,000 API destinations created (%.1f s)" % (time.monotonic() - t0))
        st, _, b, _ = raw_call(url, "CreateApiDestination", {"Name": "qd-more", "ConnectionArn": arn,
                                                             "InvocationEndpoint": "https://e.com",
                                                             "HttpMethod": "POST"})
        c.eq((st, (b or {}).get("__type")), (400, "LimitExceededException"), "the 3,001st: LimitExceededException")
        raw_call(url, "DeleteApiDestination", {"Name": "qd-0000"})
        st = raw_call(url, "CreateApiDestination", {"Name": "qd-more", "ConnectionArn": arn,
                                                    "InvocationEndpoint": "https://e.com", "HttpMethod": "POST"})[0]
        c.eq(st, 200, "after one delete there is room for one more")
        c.eq(srv.stop(), 0, "quota server: SIGTERM exit code 0")
    finally:
        srv.cleanup()


def main():
    binary = common.binary_from_argv()
    c = Checker("test_connections (boto3 %s, botocore %s, %s)" % (boto3.__version__, botocore.__version__,
                                                                   sys.executable))
    x = Ctx()
    x.srv = Server(binary, account=ACCOUNT, log_level="debug")
    try:
        x.srv.start()
        x.ev = client(x.srv)
        x.eu = client(x.srv, region="eu-west-1")
        c.run("create and describe connections", t_create, c, x)
        c.run("connection errors", t_connection_errors, c, x)
        c.run("ListConnections", t_list_connections, c, x)
        c.run("API destinations", t_api_destinations, c, x)
        c.run("UpdateConnection and DeauthorizeConnection", t_update_and_deauthorize, c, x)
        c.run("DeleteConnection", t_delete_connection, c, x)
        c.run("per-region separation", t_regions, c, x)
        c.run("restart with the same data dir", t_restart, c, x)
        c.run("secrets", t_secrets, c, x)
        c.run("quotas (3,000 each)", t_quota, c, binary)
    finally:
        common.stop_all()
    sys.exit(c.finish())


if __name__ == "__main__":
    main()
