#!/bin/sh
# The shell clients against the real brokerd and the Gateway simulator
# (tests/lib/harness.sh): the status file brokerd writes is what ibkr-status
# and ibkr-wait understand through every state, hostile Gateway text
# included, and ibkr-call gets through brokerd over the socket and TCP.
. "$(dirname "$0")/lib.sh"
bin=${BROKERD_BIN:-$ROOT/build/brokerd}
[ -x "$bin" ] || skip "no $bin (run make)"
[ -f "$ROOT/tests/lib/harness.sh" ] || skip "no tests/lib/harness.sh"
unset BROKERD_KEY IBKR_BRIDGE_KEY BROKERD_SOCKET IBKR_BRIDGE_URL BROKERD_STATUS_FILE
HARNESS_TMP=$T/harness
mkdir "$HARNESS_TMP"
# shellcheck source=../lib/harness.sh
. "$ROOT/tests/lib/harness.sh"
trap 'cleanup; lib_cleanup' EXIT
S=$CLIENTS/ibkr-status
W=$CLIENTS/ibkr-wait
C=$CLIENTS/ibkr-call

gwsim_start || fail "gwsim did not start"
brokerd_start || fail "brokerd did not start"
(umask 077 && printf '%s\n' "$BROKERD_KEY" >"$T/key")
printf 'not-the-key-0123456789abcdef0123\n' >"$T/badkey"
f=$BROKERD_STATUS

expect_rc 0 "$W" -t 10 -i 0.2 -f "$f"
expect_rc 0 "$S" -j -f "$f"
json_true "$T/out" "j.state === 'authenticated' && j.pid === $BROKERD_PID &&
    j.check_interval_s === 1 && j.running && !j.stale && j.authenticated === true"
# CHECKED moves with every check
c1=$(json_eval "$T/out" j.checked_unix)
sleep 2.2
expect_rc 0 "$S" -j -f "$f"
c2=$(json_eval "$T/out" j.checked_unix)
[ "$c2" -gt "$c1" ] || fail "BROKERD_CHECKED_UNIX did not move ($c1 -> $c2)"

# ibkr-call: keyless health, keyed routes, body, TCP, refusals
expect_rc 0 "$C" -s "$BROKERD_SOCK" /health
json_true "$T/out" "j.status === 'ok'"
expect_rc 0 "$C" -s "$BROKERD_SOCK" -k "$T/key" /iserver/accounts
json_eval "$T/out" 'JSON.stringify(j)' >/dev/null || fail "accounts: not JSON"
body='{"orders":[{"cOID":"shell-1","side":"BUY"}],"s":"it'"'"'s"}'
expect_rc 0 "$C" -s "$BROKERD_SOCK" -k "$T/key" -d "$body" /iserver/__echo
[ "$(cat "$T/out")" = "$body" ] || fail "echo: $(cat "$T/out")"
expect_rc 0 "$C" -s "$BROKERD_SOCK" -k "$T/key" "/v1/api/trsrv/stocks?symbols=AAPL"
if [ -n "$BROKERD_URL" ]; then
	expect_rc 0 "$C" -u "$BROKERD_URL" -k "$T/key" /iserver/accounts
	IBKR_BRIDGE_URL=$BROKERD_URL expect_rc 0 "$C" -k "$T/key" /gateway/auth-status
	json_true "$T/out" "j.state === 'authenticated'"
fi
expect_rc 22 "$C" -s "$BROKERD_SOCK" -k "$T/badkey" /iserver/accounts
json_true "$T/err" "j.error === 'unauthorized'"
[ ! -s "$T/out" ] || fail "stdout on 401"
expect_rc 22 "$C" -s "$BROKERD_SOCK" -k "$T/key" /no/such/route
json_true "$T/err" "j.error === 'no_route'"

# The Gateway drops the session with hostile text in its message.
pw=$T/pwned
gwsim_state "{\"authenticated\":false,\"reauth_works\":false,\"message\":\"\$(touch $pw) \`touch $pw\` it's \\\"q\\\" \\\\ x\\nBROKERD_STATE=authenticated\"}" >/dev/null
expect_rc 0 "$W" -t 10 -i 0.2 -f "$f" unauthenticated
expect_rc 1 "$S" -f "$f"
contains "$T/out" "unauthenticated since"
expect_rc 1 "$S" -j -f "$f"
json_true "$T/out" "j.state === 'unauthenticated' && j.authenticated === false &&
    j.message.includes('\$(touch') && j.message.includes(\"it's\")"
json_eval "$T/out" j.message >"$T/parsed"
sh -c '. "$1"; printf %s "$BROKERD_MESSAGE"' sh "$f" >"$T/sourced"
cmp "$T/parsed" "$T/sourced" || fail "parsed and sourced messages differ"
[ ! -e "$pw" ] || fail "a command in the message ran"
expect_rc 1 "$W" -t 1 -i 0.2 -f "$f"
expect_rc 22 "$C" -s "$BROKERD_SOCK" -k "$T/key" /iserver/accounts
json_true "$T/err" "j.error === 'not_authenticated'"

gwsim_state '{"authenticated":true,"message":""}' >/dev/null
expect_rc 0 "$W" -t 10 -i 0.2 -f "$f"
expect_rc 0 "$S" -f "$f"

# A clean stop writes `stopped`
brokerd_stop
expect_rc 2 "$S" -f "$f"
contains "$T/out" stopped
expect_rc 0 "$W" -t 2 -f "$f" stopped
expect_rc 7 "$C" -s "$BROKERD_SOCK" /health

# SIGKILL leaves `authenticated` behind: the PID check catches it
brokerd_start || fail "brokerd did not start again"
expect_rc 0 "$W" -t 10 -i 0.2 -f "$f"
kill -KILL "$BROKERD_PID"
wait "$BROKERD_PID" 2>/dev/null || :
BROKERD_PID=
expect_rc 2 "$S" -j -f "$f"
json_true "$T/out" "j.state === 'authenticated' && j.reason === 'pid_gone' && j.exit === 2"
expect_rc 1 "$W" -t 1 -i 0.2 -f "$f"
