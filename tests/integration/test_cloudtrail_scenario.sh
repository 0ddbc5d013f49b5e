#!/usr/bin/env bash
# The README's CloudTrail scenario (examples/cloudtrail/demo.sh) against a real
# server and the example receiver, with the real AWS CLI v2; checks the exact
# transformed message that arrives.    usage: test_cloudtrail_scenario.sh EBRIDGE
set -uo pipefail
exe=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sport=$(free_port)
rport=$(free_port)
cleanup() { kill "$spid" "$rpid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
python3 "$root/examples/cloudtrail/receiver.py" "$rport" >"$tmp/recv.out" 2>&1 &
rpid=$!
"$exe" serve --listen "127.0.0.1:$sport" --data-dir "$tmp/data" >"$tmp/server.log" 2>&1 &
spid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$sport/health" >/dev/null && break; sleep 0.05; done
fail=0
if ! "$root/examples/cloudtrail/demo.sh" "http://127.0.0.1:$sport" "$rport" >"$tmp/demo.out" 2>&1; then
    echo "FAIL - demo.sh failed:"; cat "$tmp/demo.out"; fail=1
fi
grep -q '"FailedEntryCount": 0' "$tmp/demo.out" && echo "ok   - PutEvents accepted the CloudTrail event" ||
    { echo "FAIL - PutEvents answer"; cat "$tmp/demo.out"; fail=1; }
want='POST /audit x-api-key=s3cr3t {"text": "arn:aws:sts::111122223333:assumed-role/Admin/alice called CreateGroup (aws.resource-groups) on web-tier", "rule": "admin-api-calls"}'
got=""
for _ in $(seq 100); do got=$(cat "$tmp/recv.out"); [ -n "$got" ] && break; sleep 0.05; done
if [ "$got" = "$want" ]; then echo "ok   - the transformed message arrived at the HTTP endpoint"; else
    echo "FAIL - the receiver got:"; echo "$got"; echo "want:"; echo "$want"; fail=1; fi
kill "$spid"; wait "$spid"; rc=$?
[ "$rc" = 0 ] && echo "ok   - server stopped cleanly" || { echo "FAIL - server exit $rc"; cat "$tmp/server.log"; fail=1; }
exit $fail
