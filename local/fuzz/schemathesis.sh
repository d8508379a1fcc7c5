#!/usr/bin/env bash
# Fuzzes every operation of openapi.yaml with schemathesis against a running local stack, as a
# signed-in user: no response may be a 5xx, and every response must match the document.
#
# usage: local/fuzz/schemathesis.sh
#   Uses the stack of STACK_ENV (a running ./local/run's stack.env) or starts its own on free
#   ports. SCHEMATHESIS_MAX_EXAMPLES (default 100) bounds the examples per operation, so the run
#   takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
ST="${ST:-$ROOT/.venv/bin/schemathesis}"
[ -x "$ST" ] || { echo "schemathesis is not installed in .venv (./local/test installs it)"; exit 1; }
source local/lib/stack.sh

tmp=$(mktemp -d)
cleanup() {
    stack_down
    rm -rf "$tmp"
}
trap cleanup EXIT
stack_up

token=$(new_user_token "fuzz-$(date +%s)-$RANDOM@example.com")

# from the temporary directory: schemathesis keeps its example database (.hypothesis/) in the
# working directory, and nothing should write into the checkout
(cd "$tmp" && "$ST" run "$ROOT/openapi.yaml" \
    --url "$API_URL" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-100}" \
    --request-timeout 30 \
    --seed 7 \
    --no-color)
