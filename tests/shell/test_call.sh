#!/bin/sh
# ibkr-call against a server that echoes what it got: method, path, body,
# Content-Type, the key header from each source and its precedence, Unix
# socket and TCP, exit 22 with the error on stderr, curl errors.
. "$(dirname "$0")/lib.sh"
C=$CLIENTS/ibkr-call
echo_start
unset BROKERD_KEY IBKR_BRIDGE_KEY BROKERD_SOCKET IBKR_BRIDGE_URL
export TMPDIR="$T/tmp"
mkdir "$TMPDIR"

expect_rc 0 "$C" -s "$ECHO_SOCK" '/iserver/accounts?x=[1]&y=2'
json_true "$T/out" "j.method === 'GET' && j.url === '/iserver/accounts?x=[1]&y=2' &&
    j.via === 'unix' && !('x-bridge-key' in j.headers) && j.body === ''"

BROKERD_KEY=k-env1 expect_rc 0 "$C" -s "$ECHO_SOCK" portfolio/accounts
json_true "$T/out" "j.url === '/portfolio/accounts' && j.headers['x-bridge-key'] === 'k-env1'"
IBKR_BRIDGE_KEY=k-env2 expect_rc 0 "$C" -s "$ECHO_SOCK" /a
json_true "$T/out" "j.headers['x-bridge-key'] === 'k-env2'"
BROKERD_KEY=k-env1 IBKR_BRIDGE_KEY=k-env2 expect_rc 0 "$C" -s "$ECHO_SOCK" /a
json_true "$T/out" "j.headers['x-bridge-key'] === 'k-env1'"
printf 'k-file\r\n' >"$T/key"
BROKERD_KEY=k-env1 expect_rc 0 "$C" -k "$T/key" -s "$ECHO_SOCK" /a
json_true "$T/out" "j.headers['x-bridge-key'] === 'k-file'"
printf 'k-nonl' >"$T/key2"
expect_rc 0 "$C" -k "$T/key2" -s "$ECHO_SOCK" /a
json_true "$T/out" "j.headers['x-bridge-key'] === 'k-nonl'"

# TCP, body, JSON Content-Type, method from -X
expect_rc 0 "$C" -u "$ECHO_URL" -k "$T/key" -d '{"orders":[{"side":"BUY"}]}' /iserver/account/U1/orders
json_true "$T/out" "j.method === 'POST' && j.via === 'tcp' &&
    j.headers['content-type'] === 'application/json' &&
    j.body === '{\"orders\":[{\"side\":\"BUY\"}]}' && j.headers['x-bridge-key'] === 'k-file'"
expect_rc 0 "$C" -u "$ECHO_URL/" -X delete /iserver/account/U1/order/7
json_true "$T/out" "j.method === 'DELETE' && j.url === '/iserver/account/U1/order/7'"
printf '{"confirmed":true}\nsecond line\n' >"$T/body"
expect_rc 0 "$C" -u "$ECHO_URL" -X PUT -d "@$T/body" -H 'Content-Type: text/plain' -H 'X-Extra: 1' /r
json_true "$T/out" "j.method === 'PUT' && j.body === '{\"confirmed\":true}\\nsecond line\\n' &&
    j.headers['content-type'] === 'text/plain' && j.headers['x-extra'] === '1'"
printf 'from stdin' | "$C" -u "$ECHO_URL" -d @- /in >"$T/out" || fail "-d @- failed"
json_true "$T/out" "j.body === 'from stdin'"
# a bodyless POST still says Content-Length: 0 (brokerd and the Gateway want it)
expect_rc 0 "$C" -s "$ECHO_SOCK" -X POST /gateway/reauthenticate
json_true "$T/out" "j.method === 'POST' && j.headers['content-length'] === '0'"

# the environment picks the transport: socket first, then URL
BROKERD_SOCKET=$ECHO_SOCK IBKR_BRIDGE_URL=$ECHO_URL expect_rc 0 "$C" /a
json_true "$T/out" "j.via === 'unix'"
IBKR_BRIDGE_URL=$ECHO_URL expect_rc 0 "$C" /a
json_true "$T/out" "j.via === 'tcp'"

# a non-JSON body passes through byte for byte
expect_rc 0 "$C" -s "$ECHO_SOCK" '/raw/plain%20text'
[ "$(cat "$T/out")" = "plain text" ] || fail "raw body: $(cat "$T/out")"

# HTTP errors: exit 22, nothing on stdout, brokerd's JSON error on stderr
for code in 400 401 403 404 429 503; do
	expect_rc 22 "$C" -s "$ECHO_SOCK" "/status/$code"
	[ ! -s "$T/out" ] || fail "stdout not empty on $code"
	json_true "$T/err" "j.error === 'forced_$code'"
done
expect_rc 0 "$C" -s "$ECHO_SOCK" /status/204

# curl errors pass through with one line
expect_rc 7 "$C" -s "$T/no.sock" /a
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "not one line: $(cat "$T/err")"
contains "$T/err" "ibkr-call: unix socket $T/no.sock"
expect_rc 28 "$C" -s "$ECHO_SOCK" -m 1 /slow/3000

# usage
expect_rc 2 "$C" -s "$ECHO_SOCK" -u "$ECHO_URL" /a
expect_rc 2 "$C" -s "$ECHO_SOCK"
expect_rc 2 "$C" -s "$ECHO_SOCK" -d @"$T/missing" /a
expect_rc 2 "$C" -k "$T/missing" -s "$ECHO_SOCK" /a
expect_rc 2 "$C" -u ftp://x /a
expect_rc 2 "$C" -s "$ECHO_SOCK" -H 'no colon' /a
BROKERD_KEY="k1
X-Admin: 1" expect_rc 2 "$C" -s "$ECHO_SOCK" /a
expect_rc 0 "$C" -h
contains "$T/out" usage

# every temporary file is gone
[ -z "$(ls -A "$TMPDIR")" ] || fail "left behind: $(ls -A "$TMPDIR")"
