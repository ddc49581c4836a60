#!/bin/sh
# ibkr-stream against a small SSE server (sse-server.mjs, brokerd's /stream
# format): the query each topic makes, one JSON line per message with its
# topic, the key header from a file or the environment and never in argv,
# Unix socket and TCP, -n and -m, HTTP errors and curl errors as one line.
. "$(dirname "$0")/lib.sh"
C=$CLIENTS/ibkr-stream
unset BROKERD_KEY IBKR_BRIDGE_KEY BROKERD_SOCKET IBKR_BRIDGE_URL
export TMPDIR="$T/tmp"
mkdir "$TMPDIR"

server_start sse
SSE_SOCK=$SERVER_SOCK
SSE_URL=$SERVER_URL

# line N of $T/out as its own file, for json_true
line() {
	sed -n "${1}p" "$T/out" >"$T/line"
	printf '%s\n' "$T/line"
}

printf 'k-file\r\n' >"$T/key"
expect_rc 0 "$C" -s "$SSE_SOCK" -k "$T/key" smd 265598 31,84 smd 8314 31 sor
[ "$(wc -l <"$T/out")" -eq 4 ] || fail "not 4 lines: $(cat "$T/out")"
json_true "$(line 1)" "j.topic === 'system' && j.query === '?smd=265598:31,84&smd=8314:31&sor=1' &&
    j.key === 'k-file' && j.accept === 'text/event-stream' && j.via === 'unix'"
# data without a topic gets the event's name; two data lines make one line
json_true "$(line 2)" "j.topic === 'smd+265598' && j.conid === 265598 && j['31'] === '31.5' &&
    j['84'] === '84.5'"
json_true "$(line 3)" "j.topic === 'smd+8314' && j['31'] === '31.5'"
json_true "$(line 4)" "j.topic === 'sor' && j.args[0].orderId === 7"
[ ! -s "$T/err" ] || fail "stderr: $(cat "$T/err")"

# every topic's query word; the key from the environment, over TCP
for t in "sor:sor=1" "str:str=1" "spl:spl=1" "ssd U1234567:ssd=U1234567" "sld DU1.x:sld=DU1.x"; do
	words=${t%%:*}
	q=${t#*:}
	# shellcheck disable=SC2086 # the topic and its argument
	BROKERD_KEY=k-env expect_rc 0 "$C" -u "$SSE_URL" -n 1 $words
	json_true "$T/out" "j.query === '?$q' && j.key === 'k-env' && j.via === 'tcp'"
done
IBKR_BRIDGE_KEY=k-env2 BROKERD_SOCKET=$SSE_SOCK expect_rc 0 "$C" -n 1 str
json_true "$T/out" "j.key === 'k-env2' && j.via === 'unix'"
IBKR_BRIDGE_URL=$SSE_URL expect_rc 0 "$C" -n 1 str
json_true "$T/out" "j.key === null && j.via === 'tcp'"

# -n stops a stream that goes on; -m too, with status 0
expect_rc 0 "$C" -s "$SSE_SOCK" -n 4 spl
[ "$(wc -l <"$T/out")" -eq 4 ] || fail "-n 4 gave: $(cat "$T/out")"
json_true "$(line 4)" "j.topic === 'spl' && j.args['U1.Core'].dpl === 2"
expect_rc 0 "$C" -s "$SSE_SOCK" -m 1 spl
n=$(grep -c '"topic":"spl"' "$T/out") || :
[ "$n" -ge 2 ] || fail "-m 1 gave $n spl lines: $(cat "$T/out")"
# a reader that stops reading: no curl is left behind
"$C" -s "$SSE_SOCK" -k "$T/key" spl | head -n 2 >"$T/out"
[ "$(wc -l <"$T/out")" -eq 2 ] || fail "| head -n 2 gave: $(cat "$T/out")"
sleep 0.3
if pgrep -f "curl.*$SSE_SOCK" >/dev/null; then
	fail "curl still running after the reader left"
fi

# the key is never an argument: look at curl's command line while it runs
"$C" -s "$SSE_SOCK" -k "$T/key" spl >"$T/bg.out" 2>&1 &
spid=$!
i=0
while ! grep -q '"spl"' "$T/bg.out" 2>/dev/null; do
	i=$((i + 1))
	[ "$i" -lt 100 ] || fail "no spl message: $(cat "$T/bg.out")"
	sleep 0.05
done
ps -eo args >"$T/ps"
kill "$spid"
wait "$spid" || :
grep -q "curl.*$SSE_SOCK" "$T/ps" || fail "curl not seen in ps"
if grep -q k-file "$T/ps"; then
	fail "the key shows in ps"
fi

# HTTP errors: exit 22, nothing on stdout, one line on stderr
for code in 401 403 429 503; do
	expect_rc 22 "$C" -s "$SSE_SOCK" ssd "ERR$code"
	[ ! -s "$T/out" ] || fail "stdout not empty on $code"
	[ "$(wc -l <"$T/err")" -eq 1 ] || fail "not one line: $(cat "$T/err")"
	contains "$T/err" "ibkr-stream: unix socket $SSE_SOCK: HTTP $code: {\"error\":\"forced_$code\""
done
expect_rc 22 "$C" -u "$SSE_URL" ssd RAW
contains "$T/err" "HTTP 200: not an event stream (text/plain): plain"

# curl errors pass through with one line
expect_rc 7 "$C" -s "$T/no.sock" sor
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "not one line: $(cat "$T/err")"
contains "$T/err" "ibkr-stream: unix socket $T/no.sock"

# usage: each wrong word is refused before anything is sent
expect_rc 2 "$C" -s "$SSE_SOCK"
expect_rc 2 "$C" -s "$SSE_SOCK" smd 265598
expect_rc 2 "$C" -s "$SSE_SOCK" smd 26x 31
expect_rc 2 "$C" -s "$SSE_SOCK" smd 265598 '31&sor=1'
expect_rc 2 "$C" -s "$SSE_SOCK" smd 265598 31,
expect_rc 2 "$C" -s "$SSE_SOCK" ssd
expect_rc 2 "$C" -s "$SSE_SOCK" ssd 'U1&x=1'
expect_rc 2 "$C" -s "$SSE_SOCK" xyz
expect_rc 2 "$C" -s "$SSE_SOCK" -u "$SSE_URL" sor
expect_rc 2 "$C" -s "$SSE_SOCK" -n 0 sor
expect_rc 2 "$C" -k "$T/missing" -s "$SSE_SOCK" sor
contains "$T/err" "ibkr-stream: cannot read key file"
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "not one line: $(cat "$T/err")"
BROKERD_KEY="k1
X-Admin: 1" expect_rc 2 "$C" -s "$SSE_SOCK" sor
expect_rc 0 "$C" -h
contains "$T/out" usage

# every temporary file is gone
[ -z "$(ls -A "$TMPDIR")" ] || fail "left behind: $(ls -A "$TMPDIR")"
