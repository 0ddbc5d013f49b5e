#!/bin/bash
# CLI contract tests for test-pattern and match.
set -u
EB=${1:?usage: test_cli.sh path/to/ebridge}
pass=0; fail=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
check() { # name expected actual
    if [ "$2" == "$3" ]; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL $1: expected [$2] got [$3]" >&2; fi
}
out=$("$EB" test-pattern '{"a":["x"]}' '{"a":"x"}'); rc=$?
check "match prints true" "true" "$out"; check "match exits 0" 0 $rc
out=$("$EB" test-pattern '{"a":["x"]}' '{"a":"y"}'); rc=$?
check "no match prints false" "false" "$out"; check "no match exits 1" 1 $rc
out=$("$EB" test-pattern '{"a":"x"}' '{"a":"y"}' 2>"$tmp/err"); rc=$?
check "invalid pattern exits 2" 2 $rc
check "invalid pattern message" 'Event pattern is not valid. Reason: "a" must be an object or an array' "$(cat "$tmp/err")"
check "invalid pattern prints nothing" "" "$out"
"$EB" test-pattern '{"a":["x"]}' '[1]' >/dev/null 2>&1; check "non-object event exits 2" 2 $?
"$EB" test-pattern '{"a":["x"]}' '{"a":' >/dev/null 2>&1; check "broken event exits 2" 2 $?
echo '{"detail":{"n":[{"numeric":[">",5]}]}}' > "$tmp/p.json"
echo '{"detail":{"n":7}}' > "$tmp/e.json"
out=$("$EB" test-pattern @"$tmp/p.json" @"$tmp/e.json"); check "@file" "true" "$out"

cat > "$tmp/rules.json" <<'J'
{"r1": {"a": ["x"]}, "r2": {"b": [{"prefix": "p"}]}, "zero": {"c": [1]}, "r3": {"a": [{"exists": true}]}}
J
printf '{"a":"x","b":"pq"}\n{"a":"y"}\n{"b":"zz"}\n' > "$tmp/ev.ndjson"
out=$("$EB" match --rules "$tmp/rules.json" "$tmp/ev.ndjson" 2>"$tmp/err")
check "match lines" $'r1 r2 r3\nr3\n' "$out"$'\n'
check "stderr last line" "1" "$(tail -n1 "$tmp/err" | grep -c '^events=3 seconds=[0-9.]* events_per_s=[0-9]* mb_per_s=[0-9.]* mode=trusting$')"
out=$("$EB" match --rules "$tmp/rules.json" --count < "$tmp/ev.ndjson" 2>/dev/null)
check "count lines" $'r1\t1\nr2\t1\nzero\t0\nr3\t2' "$out"
gzip -c "$tmp/ev.ndjson" > "$tmp/ev.ndjson.gz"
out=$("$EB" match --rules "$tmp/rules.json" --count --validate "$tmp/ev.ndjson.gz" 2>"$tmp/err")
check "count gz validating" $'r1\t1\nr2\t1\nzero\t0\nr3\t2' "$out"
check "validating mode line" "1" "$(tail -n1 "$tmp/err" | grep -c 'mode=validating$')"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
