#!/usr/bin/env bash
# The README's CloudTrail scenario, end to end, against a running server:
#   examples/cloudtrail/demo.sh [ENDPOINT_URL] [RECEIVER_PORT]
# (defaults http://127.0.0.1:4010 and 9000; the receiver must be running:
#  python3 examples/cloudtrail/receiver.py 9000)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
url=${1:-http://127.0.0.1:4010}
port=${2:-9000}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1} AWS_PAGER=""
eb() { /usr/bin/aws --endpoint-url "$url" events "$@"; }

# 1. a connection (API key auth) and an API destination pointing at the receiver
conn=$(eb create-connection --name local-audit --authorization-type API_KEY \
    --auth-parameters '{"ApiKeyAuthParameters": {"ApiKeyName": "x-api-key", "ApiKeyValue": "s3cr3t"}}' \
    --query ConnectionArn --output text)
dest=$(eb create-api-destination --name audit-log --connection-arn "$conn" \
    --invocation-endpoint "http://127.0.0.1:$port/audit" --http-method POST \
    --query ApiDestinationArn --output text)

# 2. a rule on the default bus: CloudTrail API calls made by the Admin role
eb put-rule --name admin-api-calls --event-pattern '{
  "detail-type": ["AWS API Call via CloudTrail"],
  "detail": {"userIdentity": {"sessionContext": {"sessionIssuer": {"userName": ["Admin"]}}}}
}' >/dev/null

# 3. the API destination as target, with a transformed message
eb put-targets --rule admin-api-calls --targets "$(cat <<EOF
[{"Id": "audit", "Arn": "$dest",
  "InputTransformer": {
    "InputPathsMap": {"who": "\$.detail.userIdentity.arn", "call": "\$.detail.eventName",
                      "service": "\$.source", "group": "\$.detail.requestParameters.Name"},
    "InputTemplate": "{\"text\": \"<who> called <call> (<service>) on <group>\", \"rule\": <aws.events.rule-name>}"}}]
EOF
)" >/dev/null

# 4. the CloudTrail event (reference §12.2) goes in through PutEvents
eb put-events --entries "file://$here/entries.json"
