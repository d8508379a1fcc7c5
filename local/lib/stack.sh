# Sourced by the scripts that drive a running local stack (local/fuzz, local/load).
#
# stack_up: with STACK_ENV set (the stack.env of a running ./local/run) it reads that stack;
# otherwise it starts ./local/run on free ports with its data in a temporary directory, and
# stack_down (call it from your EXIT trap) stops it. Either way it sets API_URL and DB_PATH.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

STACK_PID=""
STACK_TMP=""

stack_up() {
    local env_file="${STACK_ENV:-}"
    if [ -z "$env_file" ]; then
        STACK_TMP=$(mktemp -d)
        LOCAL_API_PORT=$(free_port) LOCAL_S3_PORT=$(free_port) LOCAL_DATA_DIR="$STACK_TMP/data" \
            setsid ./local/run >"$STACK_TMP/stack.log" 2>&1 &
        STACK_PID=$!
        env_file="$STACK_TMP/data/stack.env"
        for _ in $(seq 1 1800); do
            [ -f "$env_file" ] && break
            kill -0 "$STACK_PID" 2>/dev/null || { cat "$STACK_TMP/stack.log"; echo "./local/run exited"; return 1; }
            sleep 1
        done
        [ -f "$env_file" ] || { cat "$STACK_TMP/stack.log"; echo "the stack did not come up"; return 1; }
    fi
    API_URL=$(grep '^API_URL=' "$env_file" | cut -d= -f2-)
    DB_PATH=$(grep '^DATABASE_URL=' "$env_file" | cut -d= -f2- | sed 's/^file://')
}

stack_down() {
    if [ -n "$STACK_PID" ] && kill -0 "$STACK_PID" 2>/dev/null; then
        kill -TERM -- "-$STACK_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$STACK_PID" 2>/dev/null || break; sleep 0.2; done
    fi
    [ -n "$STACK_TMP" ] && rm -rf "$STACK_TMP"
    STACK_PID=""
    STACK_TMP=""
}

# Registers EMAIL on the stack; prints its bearer token.
new_user_token() {
    local email="$1"
    curl -sf -X POST "$API_URL/auth/register" -H 'Content-Type: application/json' \
        -d "{\"email\": \"$email\", \"password\": \"correct horse battery\"}" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}
