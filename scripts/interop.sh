#!/usr/bin/env bash
# Interop: the official Diffusion clients against diffusion-test-server, at the session layer.
#
#   scripts/interop.sh [PEERS_DIR]
#
# Runs each scenario with the Python client (6.12.2: protocol 25, parameters as HTTP headers)
# and the JavaScript client (6.12.1: protocol 29, parameters in the query string), driven by
# the repository's scripts in interop/peers (py-session.py, js-session.js: JSON lines, exit
# status 0 when ok). Every run gets a fresh server, started here on 127.0.0.1 with --port 0 (the port is read
# from its first JSON line) and stopped afterwards. scripts/interop_check.py then checks the
# client's lines, its final `result` line and exit status, and the server's own log.
#
# Prints one PASS/FAIL line per scenario and client (a failure is followed by its reasons and
# the end of both logs), then `N passed, M failed`. Exit status 1 when anything failed.
#
# PEERS_DIR (or $INTEROP_PEERS_DIR): the writable folder the official clients are installed
# into from PyPI and npm with interop/peers/install.sh (a quick no-op when they are already
# there); default: a temporary folder, removed at exit.
# Environment:
#   INTEROP_LOGS      keep every run's logs in this folder (default: a temporary one, removed)
#   INTEROP_ONLY      run only the scenarios whose name matches this extended regex
#   INTEROP_PROFILE   cargo profile of the server build: dev (default; what `cargo test`
#                     already built) or release
#   PYTHON            the interpreter install.sh makes the venv with (see its README)
# Needs bash, python3, node, npm, timeout (coreutils), cargo; network access to PyPI and npm
# only when the clients are not installed yet.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS=$REPO/interop/peers
CHECK=$REPO/scripts/interop_check.py
CLIENT_TIMEOUT=90        # seconds; no scenario needs more than ~40
LISTEN_TIMEOUT=10        # seconds for the server's first line

TEMP=$(mktemp -d "${TMPDIR:-/tmp}/interop.XXXXXX")
SERVER_PID=
SERVER_STATUS=0
CLIENT_PID=
# Ends what this script started (by process id) and removes its temporary files.
cleanup() {
    if [ -n "$CLIENT_PID" ]; then
        kill -TERM "$CLIENT_PID" 2>/dev/null || true   # `timeout` passes it on to the client
    fi
    if [ -n "$SERVER_PID" ]; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$TEMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PEERS_DIR=${1:-${INTEROP_PEERS_DIR:-$TEMP/peers}}
LOGS=${INTEROP_LOGS:-$TEMP/logs}
mkdir -p "$PEERS_DIR" "$LOGS"
LOGS=$(cd "$LOGS" && pwd)

# --- the official clients ----------------------------------------------------------------
echo "interop: installing the official clients into $PEERS_DIR"
if ! bash "$PEERS/install.sh" "$PEERS_DIR" >"$TEMP/install.log" 2>&1; then
    cat "$TEMP/install.log"
    echo "interop: installing the official clients failed" >&2
    exit 1
fi
sed 's/^/  /' "$TEMP/install.log"
PEERS_DIR=$(cd "$PEERS_DIR" && pwd)
PY=$PEERS_DIR/py/bin/python

# --- the test server, built once -----------------------------------------------------------
build=(build -p diffusion-test-server --bin diffusion-test-server)
[ "${INTEROP_PROFILE:-dev}" = release ] && build+=(--release)
[ -n "${CI:-}" ] && build+=(--locked)    # as the rest of .ci/run
echo "interop: building diffusion-test-server (${INTEROP_PROFILE:-dev})"
SERVER=$(cd "$REPO" && cargo "${build[@]}" \
    --message-format=json-render-diagnostics |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "diffusion-test-server" \
            and m.get("executable"):
        print(m["executable"])') || {
    echo "interop: building diffusion-test-server failed" >&2
    exit 1
}
if [ ! -x "$SERVER" ]; then
    echo "interop: the diffusion-test-server binary was not built" >&2
    exit 1
fi

# --- one run -------------------------------------------------------------------------------
passed=0
failed=0

# Waits for the server's first line, {"event":"listening","port":N,"url":"ws://127.0.0.1:N"},
# and prints N.
wait_listening() {
    local log=$1 line deadline=$((SECONDS + LISTEN_TIMEOUT))
    while [ $SECONDS -lt $deadline ]; do
        # `read` fails until the line is complete (newline-terminated).
        if [ -f "$log" ] && IFS= read -r line <"$log"; then
            if [[ $line =~ \"event\":\"listening\" && $line =~ \"url\":\"ws://127\.0\.0\.1:([0-9]+)\" ]]; then
                echo "${BASH_REMATCH[1]}"
                return 0
            fi
            return 1
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# Stops the server (SIGTERM: it prints a shutdown line and exits 0); its exit status goes to
# SERVER_STATUS.
stop_server() {
    local pid=$SERVER_PID i
    SERVER_STATUS=0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || SERVER_STATUS=$?
    SERVER_PID=
}

# run NAME CLIENT "SERVER OPTIONS" -- CLIENT OPTIONS...
run() {
    local name=$1 client=$2 server_opts=$3
    shift 4
    if [ -n "${INTEROP_ONLY:-}" ] && ! [[ $name =~ $INTEROP_ONLY ]]; then
        return 0
    fi
    local dir=$LOGS/$name-$client
    rm -rf "$dir"
    mkdir -p "$dir"
    local started=$SECONDS port client_rc=0 verdict=0
    # shellcheck disable=SC2086  # the server options are plain words
    "$SERVER" --port 0 $server_opts >"$dir/server.jsonl" 2>"$dir/server.err" &
    SERVER_PID=$!
    if port=$(wait_listening "$dir/server.jsonl"); then
        local url=ws://127.0.0.1:$port cmd
        case $client in
            python) cmd=("$PY" "$PEERS/py-session.py" "$url" "$@") ;;
            js) cmd=(node "$PEERS/js-session.js" "$url" --js-dir "$PEERS_DIR/js" "$@") ;;
        esac
        # A client that hangs is killed, and reported as hung (status 124 or 137).
        timeout -k 5 "$CLIENT_TIMEOUT" "${cmd[@]}" >"$dir/client.jsonl" 2>"$dir/client.err" &
        CLIENT_PID=$!
        wait "$CLIENT_PID" || client_rc=$?
        CLIENT_PID=
        stop_server
        python3 "$CHECK" "$name" "$client" "$dir" "$client_rc" "$SERVER_STATUS" >"$dir/verdict" 2>&1 || verdict=$?
    else
        stop_server
        echo "the server did not print its listening line within ${LISTEN_TIMEOUT}s (status $SERVER_STATUS)" >"$dir/verdict"
        verdict=1
    fi
    local what
    what=$(python3 "$CHECK" --describe "$name")
    if [ "$verdict" -eq 0 ]; then
        passed=$((passed + 1))
        printf 'PASS  %-16s %-6s  %s (%ss)\n' "$name" "$client" "$what" $((SECONDS - started))
    else
        failed=$((failed + 1))
        printf 'FAIL  %-16s %-6s  %s (%ss)\n' "$name" "$client" "$what" $((SECONDS - started))
        sed 's/^/        /' "$dir/verdict"
        for f in client.jsonl client.err; do
            [ -s "$dir/$f" ] && { echo "      $f (last 25 lines):"; tail -n 25 "$dir/$f" | sed 's/^/        /'; }
        done
        echo "      server.jsonl (last 25 lines, messages left out):"
        { grep -av '"event":"message"' "$dir/server.jsonl" || true; } | tail -n 25 | sed 's/^/        /'
        [ -s "$dir/server.err" ] && { echo "      server.err:"; tail -n 25 "$dir/server.err" | sed 's/^/        /'; }
    fi
    return 0
}

# --- the scenarios, each with both clients -------------------------------------------------
echo "interop: scenarios (logs in ${INTEROP_LOGS:-a temporary folder})"
CLIENTS=(python js)

# 1. Anonymous: connect, 20 user pings, one system ping answered, close.
for client in "${CLIENTS[@]}"; do
    run anonymous "$client" "--ping-period-ms 1000" -- --pings 20 --system-ping-wait 5
done

# 2. A principal with its password and two session properties (one with a space and a
#    non-ASCII letter): connected, and the server saw both as sent.
for client in "${CLIENTS[@]}"; do
    run principal "$client" "--user admin:secret" -- \
        --principal admin --password secret -p Foo=bar -p "Region=eu west é" --pings 3
done

# 3. A wrong password: 116.
for client in "${CLIENTS[@]}"; do
    run wrong-password "$client" "--user admin:secret" -- \
        --principal admin --password wrong --pings 1 --expect-error 116
done

# 4. Rejections, each reported with its code.
for code in 113 115 119; do
    for client in "${CLIENTS[@]}"; do
        run "reject-$code" "$client" "--reject $code" -- --pings 1 --expect-error "$code"
    done
done

# 5. The server drops the connection (FIN) when the 5th message arrives, whose answer is
#    lost; the client reconnects to the same session (105) and its pings succeed.
for client in "${CLIENTS[@]}"; do
    run reconnect "$client" "--drop-after 5 --drop-kind fin" -- \
        --pings 20 --reconnect-delay-ms 200 --ping-retries 3 --ping-timeout 5 --reconnect-wait 10
done

# 6. Reconnection to a session the server no longer knows: 117, and the session ends closed.
for client in "${CLIENTS[@]}"; do
    run unknown-session "$client" "--drop-after 0 --drop-kind fin --reconnect-answer 117" -- \
        --pings 0 --hold 3 --reconnect-delay-ms 200
done

# 7. The server stalls after 3 messages: no answers, no system pings, no pongs, no close.
#    The JavaScript client closes the connection as idle after 2 x the 1 s ping period (its
#    WebSocket library then waits 30 s for the closing handshake before it reports the close);
#    the Python client has no idle detection: its pings time out.
run stall python "--stall-after 3 --ping-period-ms 1000" -- --pings 5 --ping-timeout 2 --no-close
run stall js "--stall-after 3 --ping-period-ms 1000" -- --pings 3 --hold 36 --no-reconnect

# 8. A truncated connection response (its first 20 bytes, then the close): each client
#    fails cleanly.
for client in "${CLIENTS[@]}"; do
    run malformed "$client" "--malformed truncated" -- --pings 2 --connect-timeout 5
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
