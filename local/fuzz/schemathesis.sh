#!/usr/bin/env bash
# Fuzzes every operation of openapi.yaml with schemathesis against a running local stack, as a
# signed-in user: no response may be a 5xx, and every response must match the document.
#
# usage: local/fuzz/schemathesis.sh [API_URL]
#   With no API_URL it starts ./local/run on free ports (data in a temporary directory) and
#   stops it afterwards. SCHEMATHESIS_MAX_EXAMPLES (default 25) bounds the examples per
#   operation, so the run takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
ST="${ST:-$ROOT/.venv/bin/schemathesis}"
[ -x "$ST" ] || { echo "schemathesis is not installed in .venv (./local/test installs it)"; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

api="${1:-}"
stack_pid=""
tmp=$(mktemp -d)
cleanup() {
    if [ -n "$stack_pid" ] && kill -0 "$stack_pid" 2>/dev/null; then
        kill -INT -- "-$stack_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$stack_pid" 2>/dev/null || break; sleep 0.2; done
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

if [ -z "$api" ]; then
    data="$tmp/data"
    LOCAL_API_PORT=$(free_port) LOCAL_S3_PORT=$(free_port) LOCAL_DATA_DIR="$data" \
        setsid ./local/run >"$tmp/stack.log" 2>&1 &
    stack_pid=$!
    for _ in $(seq 1 1800); do
        [ -f "$data/stack.env" ] && break
        kill -0 "$stack_pid" 2>/dev/null || { cat "$tmp/stack.log"; echo "./local/run exited"; exit 1; }
        sleep 1
    done
    [ -f "$data/stack.env" ] || { cat "$tmp/stack.log"; echo "the stack did not come up"; exit 1; }
    api=$(grep '^API_URL=' "$data/stack.env" | cut -d= -f2-)
fi

email="fuzz-$(date +%s)-$RANDOM@example.com"
token=$(curl -sf -X POST "$api/auth/register" -H 'Content-Type: application/json' \
    -d "{\"email\": \"$email\", \"password\": \"correct horse battery\"}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

"$ST" run openapi.yaml \
    --url "$api" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" \
    --request-timeout 30 \
    --seed 7 \
    --no-color
