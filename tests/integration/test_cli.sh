#!/usr/bin/env bash
# Integration test: the real AWS CLI v2 (/usr/bin/aws, Debian's awscli) against `ebridge serve`.
# usage: bash tests/integration/test_cli.sh <path/to/ebridge>
# Starts a server on a free loopback port with a fresh temp data dir, runs CLI commands, checks
# their JSON output (parsed with python3, no jq), exit codes and error messages; stops the server
# with SIGTERM (exit code 0 expected), restarts it on the same data dir. Exit status 1 if any
# check fails. The CLI needs about 1 s of CPU per call, so independent calls run side by side.
set -u

EBRIDGE=${1:?usage: test_cli.sh <path/to/ebridge>}
EBRIDGE=$(cd "$(dirname "$EBRIDGE")" && pwd)/$(basename "$EBRIDGE")
AWS=/usr/bin/aws
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
ACCOUNT=123456789012
SQS=arn:aws:sqs:us-east-1:$ACCOUNT:cli-queue
T0=$(date +%s)

PASS=0
FAIL=0
FAILED=()
ok() { PASS=$((PASS + 1)); echo "ok   - $1"; }
bad() {
    FAIL=$((FAIL + 1)); FAILED+=("$1"); echo "FAIL - $1"
    [ -n "${2:-}" ] && printf '%s\n' "$2" | head -20 | sed 's/^/       /'
    return 0
}
check() { # check "description" <condition command...>
    local what=$1; shift
    if "$@"; then ok "$what"; else bad "$what" "rc=$RC stdout=$OUT stderr=$ERR"; fi
}

TMP=$(mktemp -d /tmp/ebridge-cli-it.XXXXXX)
PID=
BGPIDS=()
cleanup() {
    local p
    for p in "${BGPIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -9 "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# hermetic client environment
export AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=cli-test-secret AWS_DEFAULT_REGION=us-east-1
export AWS_MAX_ATTEMPTS=1 AWS_RETRY_MODE=standard AWS_PAGER="" AWS_CONFIG_FILE=/dev/null
export AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true NO_PROXY=127.0.0.1,localhost
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL HTTP_PROXY HTTPS_PROXY http_proxy https_proxy

echo "== test_cli.sh ($EBRIDGE)"
V=$("$AWS" --version 2>&1)
case "$V" in
    aws-cli/2.*) ok "AWS CLI v2: $V" ;;
    *) bad "AWS CLI v2 expected at $AWS" "$V"; echo "== test_cli.sh: cannot run without AWS CLI v2"; exit 1 ;;
esac

PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
URL=http://127.0.0.1:$PORT
LOG=$TMP/server.log
start_server() {
    "$EBRIDGE" serve --listen 127.0.0.1:"$PORT" --data-dir "$TMP/data" --sync normal --account $ACCOUNT \
        --log-level debug >>"$LOG" 2>&1 &
    PID=$!
    if ! "$PY" - "$URL" "$PID" <<'PYEOF'
import os, sys, time, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
for _ in range(500):
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        time.sleep(0.02)
sys.exit(1)
PYEOF
    then
        echo "server did not start:"; cat "$LOG"; exit 1
    fi
}
start_server
ok "server answers /health on $URL"

# ev <args...>: run `aws events <args>`; sets RC, OUT, ERR
ev() {
    OUT=$("$AWS" --endpoint-url "$URL" --output json --no-cli-pager events "$@" 2>"$TMP/err")
    RC=$?
    ERR=$(cat "$TMP/err")
}
# bg NAME args... : start `aws events args` in the background; fin: wait for all of them;
# use NAME: load RC/OUT/ERR of that call
bg() {
    local n=$1; shift
    ( "$AWS" --endpoint-url "$URL" --output json --no-cli-pager events "$@" >"$TMP/$n.out" 2>"$TMP/$n.err"
      echo $? >"$TMP/$n.rc" ) &
    BGPIDS+=($!)
}
fin() { local p; for p in "${BGPIDS[@]}"; do wait "$p"; done; BGPIDS=(); }
use() { OUT=$(cat "$TMP/$1.out"); ERR=$(cat "$TMP/$1.err"); RC=$(cat "$TMP/$1.rc"); }
# j 'python expression over d' : evaluate against the JSON in $OUT
j() { printf '%s' "$OUT" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); v=eval(sys.argv[1]); print(json.dumps(v) if not isinstance(v,str) else v)' "$1" 2>/dev/null; }
is() { [ "$(j "$1")" = "$2" ]; } # is 'expr' 'expected text'
rc0() { [ "$RC" = 0 ]; }
svc_err() { # svc_err CODE 'message' : the CLI failed with a service error (exit 254) naming CODE and message
    [ "$RC" = 254 ] && [[ "$ERR" == *"($1)"* ]] && [[ "$ERR" == *"$2"* ]]
}
nreq() { grep -c "op=$1 " "$LOG"; } # requests of an operation seen by the server so far
# raw OP JSON [OP JSON...] : setup calls over plain HTTP (unsigned); each must answer 200
raw() {
    "$PY" - "$URL" "$@" <<'PYEOF'
import sys, urllib.request
url, args = sys.argv[1], sys.argv[2:]
for op, body in zip(args[::2], args[1::2]):
    req = urllib.request.Request(url + "/", data=body.encode(), method="POST", headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSEvents." + op})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200, (op, body, r.status)
PYEOF
}

echo "-- event buses"
ev create-event-bus --name cli-bus --tags Key=team,Value=cli
check "create-event-bus" is 'd["EventBusArn"]' "arn:aws:events:us-east-1:$ACCOUNT:event-bus/cli-bus"
bg d1 describe-event-bus --name cli-bus
bg d2 list-event-buses
bg d3 create-event-bus --name cli-bus
bg d4 describe-event-bus --name nope-bus
fin
use d1; check "describe-event-bus" is '(d["Name"], d["Arn"])' "[\"cli-bus\", \"arn:aws:events:us-east-1:$ACCOUNT:event-bus/cli-bus\"]"
use d2; check "list-event-buses lists default and cli-bus" is 'sorted(b["Name"] for b in d["EventBuses"])' '["cli-bus", "default"]'
use d3; check "create-event-bus again -> ResourceAlreadyExistsException (exit 254)" svc_err ResourceAlreadyExistsException "Event bus cli-bus already exists."
use d4; check "describe-event-bus of a missing bus -> ResourceNotFoundException" svc_err ResourceNotFoundException "Event bus nope-bus does not exist."

echo "-- rules"
PAT='{"source": ["cli.test"]}'
PATJ=$("$PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$PAT")
ev put-rule --name cli-rule --event-bus-name cli-bus --event-pattern "$PAT" --description "from the cli"
check "put-rule on cli-bus" is 'd["RuleArn"]' "arn:aws:events:us-east-1:$ACCOUNT:rule/cli-bus/cli-rule"
ev put-rule --name cli-sched --schedule-expression "rate(15 minutes)"
check "put-rule with a schedule on the default bus" is 'd["RuleArn"]' "arn:aws:events:us-east-1:$ACCOUNT:rule/cli-sched"
bg r1 describe-rule --name cli-rule --event-bus-name cli-bus
bg r2 describe-rule --name nope
bg r3 put-rule --name cli-sched2 --schedule-expression "rate(1 minutes)"
bg r4 put-rule --name cli-sched3 --event-bus-name cli-bus --schedule-expression "rate(1 minute)"
bg r5 put-rule --name cli-bad --event-pattern '{"resources": []}'
fin
use r1; check "describe-rule" is '(d["State"], d["EventPattern"], d["Description"], d["EventBusName"])' "[\"ENABLED\", $PATJ, \"from the cli\", \"cli-bus\"]"
use r2; check "describe-rule of a missing rule prints ResourceNotFoundException (exit 254)" svc_err ResourceNotFoundException "Rule nope does not exist on EventBus default."
use r3; check "put-rule with an invalid schedule -> ValidationException" svc_err ValidationException "Parameter ScheduleExpression is not valid."
use r4; check "put-rule schedule on a custom bus -> ValidationException" svc_err ValidationException "ScheduleExpression is supported only on the default event bus."
use r5; check "put-rule with an invalid pattern -> InvalidEventPatternException" svc_err InvalidEventPatternException "Event pattern is not valid. Reason: Empty arrays are not allowed"
ev disable-rule --name cli-rule --event-bus-name cli-bus
check "disable-rule" rc0
ev describe-rule --name cli-rule --event-bus-name cli-bus
check "describe-rule after disable-rule: DISABLED" is 'd["State"]' DISABLED
ev enable-rule --name cli-rule --event-bus-name cli-bus
check "enable-rule" rc0

echo "-- targets"
ev put-targets --rule cli-rule --event-bus-name cli-bus --targets "Id=t1,Arn=$SQS"
check "put-targets (shorthand)" is '(d["FailedEntryCount"], d["FailedEntries"])' '[0, []]'
ev put-targets --rule cli-rule --event-bus-name cli-bus --targets "[{\"Id\": \"t2\", \"Arn\": \"$SQS\", \"InputTransformer\": {\"InputPathsMap\": {\"s\": \"\$.source\"}, \"InputTemplate\": \"\\\"from <s>\\\"\"}}]"
check "put-targets (JSON, InputTransformer)" is 'd["FailedEntryCount"]' 0
bg t1 list-targets-by-rule --rule cli-rule --event-bus-name cli-bus
bg t2 put-targets --rule cli-rule --event-bus-name cli-bus --targets "[{\"Id\": \"t3\", \"Arn\": \"$SQS\", \"Input\": \"{}\", \"InputPath\": \"\$.detail\"}]"
bg t3 put-targets --rule cli-rule --event-bus-name cli-bus --targets "Id=t3,Arn=$SQS" "Id=t4,Arn=$SQS" "Id=t5,Arn=$SQS" "Id=t6,Arn=$SQS"
bg t4 list-rule-names-by-target --target-arn "$SQS" --event-bus-name cli-bus
bg t5 describe-rule --name cli-rule --event-bus-name cli-bus
fin
use t1; check "list-targets-by-rule" is '([t["Id"] for t in d["Targets"]], d["Targets"][1]["InputTransformer"]["InputTemplate"])' '[["t1", "t2"], "\"from <s>\""]'
use t2; check "put-targets with Input and InputPath -> ValidationException" svc_err ValidationException "Only one of Input, InputPath, or InputTransformer must be provided for target t3."
use t3; check "put-targets beyond 5 per rule -> LimitExceededException" svc_err LimitExceededException "The requested resource exceeds the maximum number allowed."
use t4; check "list-rule-names-by-target" is 'd["RuleNames"]' '["cli-rule"]'
use t5; check "describe-rule after enable-rule: ENABLED" is 'd["State"]' ENABLED

echo "-- put-events, test-event-pattern"
ENTRIES=$("$PY" -c 'import json; print(json.dumps([{"Source":"cli.test","DetailType":"t","Detail":"{}"}]*11))')
EVENT='{"version": "0", "id": "1", "detail-type": "t", "source": "cli.test", "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {"n": 5}}'
bg e1 put-events --entries "[{\"Source\": \"cli.test\", \"DetailType\": \"t\", \"Detail\": \"{\\\"a\\\": 1}\", \"EventBusName\": \"cli-bus\"}, {\"Source\": \"cli.test\", \"DetailType\": \"t\", \"Detail\": \"[]\", \"EventBusName\": \"cli-bus\"}, {\"DetailType\": \"t\", \"Detail\": \"{}\"}]"
bg e2 put-events --entries '[{"Source": "cli.test", "DetailType": "t", "Detail": "{}", "EventBusName": "no-such-bus"}]'
bg e3 put-events --entries "$ENTRIES"
bg p1 test-event-pattern --event-pattern '{"source": ["cli.test"], "detail": {"n": [{"numeric": [">", 3]}]}}' --event "$EVENT"
bg p2 test-event-pattern --event-pattern '{"source": ["cli.test"], "detail": {"n": [{"numeric": [">", 9]}]}}' --event "$EVENT"
bg p3 test-event-pattern --event-pattern '{"source": "cli.test"}' --event "$EVENT"
bg p4 test-event-pattern --event-pattern '{"source": ["cli.test"]}' --event '{"source": "cli.test"}'
fin
use e1; check "put-events: partial failure reported per entry" is '(d["FailedEntryCount"], len(d["Entries"][0]["EventId"]), d["Entries"][1], d["Entries"][2]["ErrorCode"])' '[2, 36, {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}, "InvalidArgument"]'
use e2; check "put-events to a missing bus is accepted" is '(d["FailedEntryCount"], "EventId" in d["Entries"][0])' '[0, true]'
use e3; check "put-events with 11 entries -> ValidationException" svc_err ValidationException "Member must have length less than or equal to 10"
use p1; check "test-event-pattern: true" is 'd["Result"]' true
use p2; check "test-event-pattern: false" is 'd["Result"]' false
use p3; check "test-event-pattern with a bad pattern -> InvalidEventPatternException" svc_err InvalidEventPatternException "Event pattern is not valid. Reason: "
use p4; check "test-event-pattern with an incomplete event -> ValidationException" svc_err ValidationException "Parameter Event is not valid."

echo "-- tags, permissions"
BUS_ARN=arn:aws:events:us-east-1:$ACCOUNT:event-bus/cli-bus
RULE_ARN=arn:aws:events:us-east-1:$ACCOUNT:rule/cli-bus/cli-rule
bg g1 tag-resource --resource-arn "$RULE_ARN" --tags Key=env,Value=test Key=owner,Value=me
bg g2 put-permission --event-bus-name cli-bus --action events:PutEvents --principal 111122223333 --statement-id cli-sid
fin
use g1; check "tag-resource on a rule" rc0
use g2; check "put-permission" rc0
ev untag-resource --resource-arn "$RULE_ARN" --tag-keys env
check "untag-resource" rc0
bg g3 list-tags-for-resource --resource-arn "$RULE_ARN"
bg g4 list-tags-for-resource --resource-arn "$BUS_ARN"
bg g5 list-tags-for-resource --resource-arn "arn:aws:events:us-east-1:$ACCOUNT:rule/abc123"
bg g6 describe-event-bus --name cli-bus
bg g7 remove-permission --event-bus-name cli-bus --statement-id nope
fin
use g3; check "list-tags-for-resource (rule): tag-resource then untag-resource" is 'd["Tags"]' '[{"Key": "owner", "Value": "me"}]'
use g4; check "list-tags-for-resource (bus, tags from create-event-bus)" is 'd["Tags"]' '[{"Key": "team", "Value": "cli"}]'
use g5; check "list-tags-for-resource of a missing rule -> ResourceNotFoundException" svc_err ResourceNotFoundException "Rule abc123 does not exist on EventBus default."
use g6; check "describe-event-bus shows the policy (a JSON string)" is 'json.loads(d["Policy"])["Statement"][0]["Principal"]' '{"AWS": "arn:aws:iam::111122223333:root"}'
use g7; check "remove-permission of an unknown statement -> ResourceNotFoundException" svc_err ResourceNotFoundException "Statement with the provided id does not exist."
ev remove-permission --event-bus-name cli-bus --statement-id cli-sid
check "remove-permission" rc0

echo "-- pagination"
ARGS=()
for i in 0 1 2 3 4 5 6; do ARGS+=(PutRule "{\"Name\": \"pg-$i\", \"EventPattern\": \"{\\\"source\\\": [\\\"pg\\\"]}\"}"); done
TGTS=
for t in a b c d e; do TGTS="$TGTS${TGTS:+, }{\"Id\": \"$t\", \"Arn\": \"$SQS\"}"; done
ARGS+=(PutTargets "{\"Rule\": \"pg-0\", \"Targets\": [$TGTS]}")
raw "${ARGS[@]}" || bad "pagination setup (7 rules, 5 targets over raw HTTP)"
ev list-rules --name-prefix pg- --max-items 3
check "list-rules --max-items 3: first 3 rules and a NextToken" is '([r["Name"] for r in d["Rules"]], bool(d.get("NextToken")))' '[["pg-0", "pg-1", "pg-2"], true]'
TOKEN=$(j 'd["NextToken"]')
ev list-rules --name-prefix pg- --max-items 3 --starting-token "$TOKEN"
check "list-rules --starting-token: the next 3" is '[r["Name"] for r in d["Rules"]]' '["pg-3", "pg-4", "pg-5"]'
TOKEN=$(j 'd["NextToken"]')
ev list-rules --name-prefix pg- --max-items 3 --starting-token "$TOKEN"
check "list-rules last page: 1 rule, no NextToken" is '([r["Name"] for r in d["Rules"]], "NextToken" in d)' '[["pg-6"], false]'
N0=$(nreq ListRules)
bg q1 list-rules --name-prefix pg- --page-size 2
bg q2 list-targets-by-rule --rule pg-0 --max-items 2
bg q3 list-targets-by-rule --rule pg-0 --page-size 2
bg q4 list-rule-names-by-target --target-arn "$SQS" --page-size 1
OUT=$("$AWS" --endpoint-url "$URL" --region eu-west-1 --output json events list-event-buses 2>"$TMP/err"); RC=$?; ERR=$(cat "$TMP/err")
check "--region eu-west-1: its own default bus only" is '[(b["Name"], b["Arn"]) for b in d["EventBuses"]]' "[[\"default\", \"arn:aws:events:eu-west-1:$ACCOUNT:event-bus/default\"]]"
fin
N1=$(nreq ListRules)
use q1; check "list-rules --page-size 2: all 7 rules" is '[r["Name"] for r in d["Rules"]]' '["pg-0", "pg-1", "pg-2", "pg-3", "pg-4", "pg-5", "pg-6"]'
if [ $((N1 - N0)) = 4 ]; then ok "list-rules --page-size 2 made 4 ListRules calls (server log)"; else bad "list-rules --page-size 2 made 4 ListRules calls" "server saw $((N1 - N0))"; fi
use q2; check "list-targets-by-rule --max-items 2" is '([t["Id"] for t in d["Targets"]], bool(d.get("NextToken")))' '[["a", "b"], true]'
use q3; check "list-targets-by-rule --page-size 2: all 5" is '[t["Id"] for t in d["Targets"]]' '["a", "b", "c", "d", "e"]'
use q4; check "list-rule-names-by-target --page-size 1" is 'd["RuleNames"]' '["pg-0"]'

echo "-- delete"
bg x1 delete-rule --name cli-rule --event-bus-name cli-bus
bg x2 delete-event-bus --name cli-bus
bg x3 delete-event-bus --name default
bg x4 delete-event-bus --name never-existed
fin
use x1; check "delete-rule with targets -> ValidationException" svc_err ValidationException "Rule can't be deleted since it has targets."
use x2; check "delete-event-bus with rules -> ValidationException" svc_err ValidationException ""
use x3; check "delete-event-bus default -> ValidationException" svc_err ValidationException "Cannot delete event bus default."
use x4; check "delete-event-bus of a missing bus succeeds" rc0
ev remove-targets --rule cli-rule --event-bus-name cli-bus --ids t1 t2
check "remove-targets" is 'd["FailedEntryCount"]' 0
ev delete-rule --name cli-rule --event-bus-name cli-bus
check "delete-rule" rc0
ev delete-event-bus --name cli-bus
check "delete-event-bus" rc0
ev describe-event-bus --name cli-bus
check "describe-event-bus after delete -> ResourceNotFoundException" svc_err ResourceNotFoundException "Event bus cli-bus does not exist."

echo "-- restart"
kill -TERM "$PID"; wait "$PID"; SRC=$?; PID=
if [ "$SRC" = 0 ]; then ok "SIGTERM: server exits 0"; else bad "SIGTERM: server exits 0" "exit $SRC"; fi
start_server
bg s1 describe-rule --name cli-sched
bg s2 list-targets-by-rule --rule pg-0
fin
use s1; check "after restart: describe-rule cli-sched" is 'd["ScheduleExpression"]' "rate(15 minutes)"
use s2; check "after restart: targets of pg-0" is 'len(d["Targets"])' 5
kill -TERM "$PID"; wait "$PID"; SRC=$?; PID=
if [ "$SRC" = 0 ]; then ok "SIGTERM: server exits 0"; else bad "SIGTERM: server exits 0" "exit $SRC"; fi

echo "== test_cli.sh: $PASS passed, $FAIL failed ($(( $(date +%s) - T0 )) s)"
if [ "$FAIL" -gt 0 ]; then
    printf '  - %s\n' "${FAILED[@]}"
    exit 1
fi
exit 0
