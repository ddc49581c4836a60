#!/bin/sh
# While curl runs, the key must not show in any process's arguments
# (ps -eo args), whether it came from the environment or from -k FILE.
. "$(dirname "$0")/lib.sh"
C=$CLIENTS/ibkr-call
echo_start
unset BROKERD_KEY IBKR_BRIDGE_KEY BROKERD_SOCKET IBKR_BRIDGE_URL
key=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
[ ${#key} -eq 32 ] || fail "no random key"
printf '%s\n' "$key" >"$T/key"

# watch CMD...: run CMD (slow answer) in the background and look at ps.
watch() {
	"$@" >"$T/call.out" 2>"$T/call.err" &
	cp=$!
	BG_PIDS="$BG_PIDS $cp"
	seen_curl=0
	while kill -0 "$cp" 2>/dev/null; do
		ps -eo args >"$T/ps" || fail "ps failed"
		grep -qF -- "$key" "$T/ps" && fail "key visible in ps: $(grep -F -- "$key" "$T/ps")"
		grep -q "^curl .*$ECHO_SOCK" "$T/ps" && seen_curl=1
		sleep 0.05
	done
	wait "$cp" || fail "ibkr-call exited $?: $(cat "$T/call.err")"
	[ "$seen_curl" = 1 ] || fail "never saw curl running"
	json_true "$T/call.out" "j.headers['x-bridge-key'] === '$key'"
}

BROKERD_KEY=$key watch "$C" -s "$ECHO_SOCK" /slow/1500
watch "$C" -k "$T/key" -s "$ECHO_SOCK" -d '{"a":1}' /slow/1500
