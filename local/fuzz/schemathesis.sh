#!/usr/bin/env bash
# Fuzzes every operation of openapi.yaml with schemathesis against a running local stack, as a
# signed-in user: no response may be a 5xx, and every response must match the document.
# Requests go through local/fuzz/front.py, which stands where API Gateway stands (see there why).
#
# usage: local/fuzz/schemathesis.sh
#   Uses the stack of STACK_ENV (a running ./local/run's stack.env) or starts its own on free
#   ports. SCHEMATHESIS_MAX_EXAMPLES (default 25) bounds the examples per operation, so the run
#   takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
ST="${ST:-$ROOT/.venv/bin/schemathesis}"
[ -x "$ST" ] || { echo "schemathesis is not installed in .venv (./local/test installs it)"; exit 1; }
source local/lib/stack.sh

front_pid=""
tmp=$(mktemp -d)
cleanup() {
    if [ -n "$front_pid" ] && kill -0 "$front_pid" 2>/dev/null; then
        kill -TERM "$front_pid" 2>/dev/null || true
        wait "$front_pid" 2>/dev/null || true
    fi
    stack_down
    rm -rf "$tmp"
}
trap cleanup EXIT
stack_up

python3 local/fuzz/front.py "$API_URL" "$tmp/front.port" &
front_pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/front.port" ] && break; sleep 0.1; done
[ -s "$tmp/front.port" ] || { echo "the front did not start"; exit 1; }

token=$(new_user_token "fuzz-$(date +%s)-$RANDOM@example.com")

# from the temporary directory: schemathesis keeps its example database (.hypothesis/) in the
# working directory, and nothing should write into the checkout
(cd "$tmp" && "$ST" run "$ROOT/openapi.yaml" \
    --url "http://127.0.0.1:$(cat "$tmp/front.port")" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" \
    --request-timeout 30 \
    --seed 7 \
    --no-color)
