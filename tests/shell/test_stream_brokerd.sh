#!/bin/sh
# ibkr-stream against the real brokerd and the Gateway simulator
# (tests/lib/harness.sh): `ibkr-stream -n 5 smd CONID 31,84` prints five
# JSON lines (the Gateway's system and sts, then that conid's market data),
# over the socket and over TCP (ibkr-stream takes its options first).
. "$(dirname "$0")/lib.sh"
bin=${BROKERD_BIN:-$ROOT/build/brokerd}
[ -x "$bin" ] || skip "no $bin (run make)"
[ -d "$ROOT/tests/node_modules/ws" ] || skip "no tests/node_modules/ws (make deps)"
unset BROKERD_KEY IBKR_BRIDGE_KEY BROKERD_SOCKET IBKR_BRIDGE_URL
HARNESS_TMP=$T/harness
mkdir "$HARNESS_TMP"
# shellcheck source=../lib/harness.sh
. "$ROOT/tests/lib/harness.sh"
trap 'cleanup; lib_cleanup' EXIT
C=$CLIENTS/ibkr-stream

gwsim_start || fail "gwsim did not start"
gwsim_behaviour '{"ws_tick_ms":100}' >/dev/null
brokerd_start || fail "brokerd did not start"
(umask 077 && printf '%s\n' "$BROKERD_KEY" >"$T/key")
authed() { grep -q -- '-> authenticated' "$BROKERD_LOG"; }
wait_until 10 authed || fail "brokerd never authenticated: $(cat "$BROKERD_LOG")"

# smd CONID FIELDS -n 5: five JSON lines; the Gateway's system and sts
# messages go to every subscriber, the rest are that conid's, only its fields
for via in "-s $BROKERD_SOCK" "-u $BROKERD_URL"; do
	# shellcheck disable=SC2086 # the option and its value
	expect_rc 0 "$C" $via -k "$T/key" -m 20 -n 5 smd 265598 31,84
	[ "$(wc -l <"$T/out")" -eq 5 ] || fail "$via: not 5 lines: $(cat "$T/out")"
	i=1
	smd=0
	while [ "$i" -le 5 ]; do
		sed -n "${i}p" "$T/out" >"$T/line"
		if grep -q '"topic":"s[yt]s' "$T/line"; then
			json_true "$T/line" "j.topic === 'system' || j.topic === 'sts'"
		else
			json_true "$T/line" "j.topic === 'smd+265598' &&
			    j.conid === 265598 &&
			    Object.keys(j).filter((k) => /^[0-9]+\$/.test(k))
			    .every((k) => k === '31' || k === '84') &&
			    (j['31'] !== undefined || j['84'] !== undefined)"
			smd=$((smd + 1))
		fi
		i=$((i + 1))
	done
	[ "$smd" -ge 1 ] || fail "$via: no market data: $(cat "$T/out")"
	[ ! -s "$T/err" ] || fail "$via: stderr: $(cat "$T/err")"
done
# the values come from the Gateway's socket, not from a cache alone
n=$(gwsim_counters | grep -o '"msg":"smd+265598+[^"]*"' | wc -l)
[ "$n" -ge 1 ] || fail "no smd upstream"

# a wrong key: 401, one line on stderr, status 22
printf 'not-the-key\n' >"$T/badkey"
expect_rc 22 "$C" -s "$BROKERD_SOCK" -k "$T/badkey" -n 1 smd 265598 31
grep -q 401 "$T/err" || fail "no 401: $(cat "$T/err")"
echo ok
