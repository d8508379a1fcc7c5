#!/usr/bin/env bash
# Load: wrk on POST /viral-clip/video/youtube and GET /viral-clip/videos at the same time
# (half of the connections each) for LOAD_SECONDS, while the worker drains the queue; then
# waits for every job the run created to complete. Fails on any failed request (socket error,
# timeout, non-2xx) and on any job that does not complete. Prints the figures as Markdown.
#
# usage: local/load/run.sh
#   Uses the stack of STACK_ENV (a running ./local/run's stack.env) or starts its own on free
#   ports. LOAD_SECONDS (30), LOAD_CONNECTIONS (16), DRAIN_TIMEOUT_SECONDS (600).
set -euo pipefail
cd "$(dirname "$0")/../.."
source local/lib/stack.sh
command -v wrk >/dev/null || { echo "wrk is needed (Debian: apt-get install wrk; ./local/test installs it)"; exit 1; }

tmp=$(mktemp -d)
cleanup() { stack_down; rm -rf "$tmp"; }
trap cleanup EXIT
stack_up

seconds="${LOAD_SECONDS:-30}"
connections="${LOAD_CONNECTIONS:-16}"
each=$((connections / 2))
email="load-$(date +%s)-$RANDOM@example.com"
TOKEN=$(new_user_token "$email")
LOAD_DIR="$PWD/local/load"
export TOKEN LOAD_DIR

echo "wrk: ${seconds} s, $each connections on POST youtube + $each on GET videos, against $API_URL"
wrk -t1 -c"$each" -d"${seconds}s" --timeout 30s -s local/load/post.lua \
    "$API_URL/viral-clip/video/youtube" >"$tmp/post.txt" &
post=$!
wrk -t1 -c"$each" -d"${seconds}s" --timeout 30s -s local/load/get.lua \
    "$API_URL/viral-clip/videos" >"$tmp/get.txt" &
get=$!
wait "$post"
wait "$get"

python3 local/load/check.py --db "$DB_PATH" --email "$email" --connections "$each" \
    --post "$tmp/post.txt" --get "$tmp/get.txt" --drain-timeout "${DRAIN_TIMEOUT_SECONDS:-600}"
