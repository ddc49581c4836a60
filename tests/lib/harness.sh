# shellcheck shell=sh
# shellcheck disable=SC2034
#
# Shared shell test harness (POSIX sh).  Source it, then:
#
#	. "$ROOT/tests/lib/harness.sh"
#	trap cleanup EXIT INT TERM
#	gwsim_start                     # [--cert-mode expired|ca] [--no-tickets]
#	brokerd_start                   # [FILE with extra YAML]
#	bd_curl "$(bd_url /iserver/accounts)"
#	gwsim_state '{"authenticated":false}'
#	gwsim_counters | json_get by_route "GET /v1/api/iserver/accounts"
#
# Sets: HARNESS_ROOT HARNESS_TMP; GWSIM_PORT GWSIM_CONTROL GWSIM_PID
# GWSIM_FINGERPRINT GWSIM_CERT GWSIM_CA_FILE GWSIM_URL; BROKERD_DIR
# BROKERD_SOCK BROKERD_PORT BROKERD_URL BROKERD_PID BROKERD_KEY
# BROKERD_HEADER_FILE BROKERD_STATUS BROKERD_HISTORY BROKERD_HALT
# BROKERD_CONFIG BROKERD_LOG.
# The key is never put on a command line: curl reads it from
# BROKERD_HEADER_FILE (mode 0600, "X-Bridge-Key: ...").
# Children are stopped by PID; cleanup removes HARNESS_TMP.

harness_find_root() {
	for _h_d in "${HARNESS_ROOT:-}" "$(dirname -- "$0")/../.." \
	    "$(git rev-parse --show-toplevel 2>/dev/null || true)" "$(pwd)"; do
		if [ -n "$_h_d" ] && [ -f "$_h_d/tests/gwsim/gwsim.js" ]; then
			(cd "$_h_d" && pwd)
			return 0
		fi
	done
	echo "harness: cannot find the brokerd checkout" >&2
	return 1
}

HARNESS_ROOT=$(harness_find_root) || exit 1
BROKERD_BIN=${BROKERD_BIN:-$HARNESS_ROOT/build/brokerd}
HARNESS_TMP=${HARNESS_TMP:-}
GWSIM_PID=
BROKERD_PID=

harness_tmp() {
	if [ -z "$HARNESS_TMP" ]; then
		HARNESS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/harness.XXXXXX") ||
		    return 1
	else
		mkdir -p "$HARNESS_TMP" || return 1
	fi
}

# wait_until SECONDS COMMAND...: run COMMAND every 0.1 s until it succeeds.
wait_until() {
	_h_n=$(($1 * 10))
	shift
	while [ "$_h_n" -gt 0 ]; do
		if "$@"; then
			return 0
		fi
		sleep 0.1
		_h_n=$((_h_n - 1))
	done
	return 1
}

# json_get KEY...: read JSON on stdin, print the value at KEY/KEY/...
# (strings bare, numbers and booleans as text, objects as JSON; empty if absent).
json_get() {
	node -e '
let s = "";
process.stdin.on("data", (d) => { s += d; }).on("end", () => {
	let v = JSON.parse(s);
	for (const k of process.argv.slice(1))
		v = v === undefined || v === null ? undefined : v[k];
	if (v === undefined)
		v = "";
	process.stdout.write((typeof v === "object" && v !== null) ?
	    JSON.stringify(v) : String(v));
	process.stdout.write("\n");
});' "$@"
}

# Kill a child by PID: SIGTERM, SIGKILL after 3 s, reap it.
harness_stop_pid() {
	_h_pid=$1
	if [ -z "$_h_pid" ]; then
		return 0
	fi
	if kill -TERM "$_h_pid" 2>/dev/null; then
		_h_n=30
		while [ "$_h_n" -gt 0 ] && kill -0 "$_h_pid" 2>/dev/null; do
			sleep 0.1
			_h_n=$((_h_n - 1))
		done
		kill -KILL "$_h_pid" 2>/dev/null || true
	fi
	_h_rc=0
	wait "$_h_pid" 2>/dev/null || _h_rc=$?
	return "$_h_rc"
}

_gwsim_ready() {
	[ -s "$HARNESS_TMP/gwsim.out" ] && grep -q '}' "$HARNESS_TMP/gwsim.out"
}

_json_field() {	# name file: a top-level number or string from one JSON line
	sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" "$2"
}

# gwsim_start [gwsim.js arguments]
gwsim_start() {
	harness_tmp || return 1
	node "$HARNESS_ROOT/tests/gwsim/gwsim.js" --dir "$HARNESS_TMP/gwsim" \
	    "$@" >"$HARNESS_TMP/gwsim.out" 2>"$HARNESS_TMP/gwsim.err" &
	GWSIM_PID=$!
	if ! wait_until 15 _gwsim_ready; then
		echo "harness: gwsim did not start:" >&2
		cat "$HARNESS_TMP/gwsim.err" >&2
		harness_stop_pid "$GWSIM_PID" || true
		GWSIM_PID=
		return 1
	fi
	_h_f=$HARNESS_TMP/gwsim.out
	GWSIM_PORT=$(_json_field port "$_h_f")
	GWSIM_CONTROL=$(_json_field control "$_h_f")
	GWSIM_FINGERPRINT=$(_json_field fingerprint "$_h_f")
	GWSIM_CERT=$(_json_field cert "$_h_f")
	GWSIM_CA_FILE=$(_json_field ca_file "$_h_f")
	if [ "$GWSIM_CA_FILE" = null ]; then
		GWSIM_CA_FILE=
	fi
	GWSIM_URL=https://127.0.0.1:$GWSIM_PORT
}

gwsim_stop() {
	harness_stop_pid "$GWSIM_PID" || true
	GWSIM_PID=
}

_gwsim_ctl() {	# method path [json]
	if [ $# -ge 3 ]; then
		curl -sS -X "$1" -H 'Content-Type: application/json' \
		    --data-binary "$3" "http://127.0.0.1:$GWSIM_CONTROL$2"
	else
		curl -sS -X "$1" "http://127.0.0.1:$GWSIM_CONTROL$2"
	fi
	echo
}

# gwsim_state [JSON]; gwsim_behaviour [JSON]: print (and merge) the value.
gwsim_state() {
	if [ $# -ge 1 ]; then _gwsim_ctl POST /state "$1"
	else _gwsim_ctl GET /state; fi
}
gwsim_behaviour() {
	if [ $# -ge 1 ]; then _gwsim_ctl POST /behaviour "$1"
	else _gwsim_ctl GET /behaviour; fi
}
gwsim_counters() { _gwsim_ctl GET /counters; }
gwsim_reset() { _gwsim_ctl POST /reset '{}'; }

# gwsim_gw METHOD PATH [curl args]: one request straight to the simulator.
gwsim_gw() {
	_h_m=$1
	_h_p=$2
	shift 2
	curl -sSk -X "$_h_m" "$@" "$GWSIM_URL$_h_p"
}

_brokerd_section() {	# name: print one base section unless $1 overrides it
	if [ -n "$_h_extra" ] && grep -q "^$1[[:space:]]*:" "$_h_extra"; then
		return 0
	fi
	case $1 in
	listen)
		printf 'listen:\n  unix: { path: "%s", mode: "0660", group: null }\n' \
		    "$BROKERD_SOCK"
		printf '  tcp: 127.0.0.1:0\n' ;;
	gateway)
		if [ -n "${GWSIM_PORT:-}" ]; then
			printf 'gateway:\n  url: https://127.0.0.1:%s\n' "$GWSIM_PORT"
			printf '  tls: { pin_sha256: "%s" }\n' "$GWSIM_FINGERPRINT"
		else
			printf 'gateway:\n  url: https://127.0.0.1:1\n'
			printf '  tls: { insecure: true }\n'
		fi ;;
	session)
		printf 'session:\n  status_file: "%s"\n' "$BROKERD_STATUS"
		printf '  history_file: "%s"\n' "$BROKERD_HISTORY"
		printf '  check_interval_s: 1\n  tickle_interval_s: 60\n' ;;
	keys)
		printf 'keys:\n  - { name: test, key: "%s", scopes: [read, trade, admin] }\n' \
		    "$BROKERD_KEY" ;;
	trading)
		printf 'trading: { halt_file: "%s" }\n' "$BROKERD_HALT" ;;
	esac
}

_brokerd_ready() {
	if grep -q 'brokerd: ready' "$BROKERD_LOG" 2>/dev/null; then
		return 0
	fi
	if ! kill -0 "$BROKERD_PID" 2>/dev/null; then
		_h_dead=1
		return 0
	fi
	return 1
}

# brokerd_start [FILE]: FILE holds extra YAML; its top-level sections replace
# the test configuration's.  Waits up to 5 s for "brokerd: ready".
brokerd_start() {
	harness_tmp || return 1
	_h_extra=${1:-}
	BROKERD_DIR=$HARNESS_TMP/brokerd
	mkdir -p "$BROKERD_DIR" || return 1
	BROKERD_SOCK=$BROKERD_DIR/brokerd.sock
	BROKERD_STATUS=$BROKERD_DIR/status
	BROKERD_HISTORY=$BROKERD_DIR/history.jsonl
	BROKERD_HALT=$BROKERD_DIR/halt
	BROKERD_CONFIG=$BROKERD_DIR/brokerd.yaml
	BROKERD_LOG=$BROKERD_DIR/stderr.log
	BROKERD_HEADER_FILE=$BROKERD_DIR/key.header
	if [ -z "${BROKERD_KEY:-}" ]; then
		BROKERD_KEY=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
	fi
	(
		umask 077
		for _h_s in listen gateway session keys trading; do
			_brokerd_section "$_h_s"
		done >"$BROKERD_CONFIG"
		if [ -n "$_h_extra" ]; then
			cat "$_h_extra" >>"$BROKERD_CONFIG"
		fi
		printf 'X-Bridge-Key: %s\n' "$BROKERD_KEY" >"$BROKERD_HEADER_FILE"
	) || return 1
	: >"$BROKERD_LOG"
	if [ -n "${HARNESS_KEEP_ENV:-}" ]; then
		"$BROKERD_BIN" -c "$BROKERD_CONFIG" -f 2>"$BROKERD_LOG" &
	else
		env -u IBKR_BRIDGE_KEY -u IBKR_BRIDGE_URL -u IBKR_GATEWAY_URL \
		    -u NOTIFY_SOCKET -u LISTEN_FDS -u LISTEN_PID \
		    -u LISTEN_FDNAMES "$BROKERD_BIN" -c "$BROKERD_CONFIG" -f \
		    2>"$BROKERD_LOG" &
	fi
	BROKERD_PID=$!
	_h_dead=0
	if ! wait_until 5 _brokerd_ready || [ "$_h_dead" = 1 ]; then
		echo "harness: brokerd did not become ready:" >&2
		cat "$BROKERD_LOG" >&2
		harness_stop_pid "$BROKERD_PID" || true
		BROKERD_PID=
		return 1
	fi
	BROKERD_PORT=$(sed -n \
	    's/.*listening on tcp 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' \
	    "$BROKERD_LOG" | head -n 1)
	if [ -n "$BROKERD_PORT" ]; then
		BROKERD_URL=http://127.0.0.1:$BROKERD_PORT
	else
		BROKERD_URL=
	fi
}

# brokerd_stop: SIGTERM, wait (SIGKILL after 3 s); BROKERD_EXIT = its status.
brokerd_stop() {
	BROKERD_EXIT=0
	harness_stop_pid "$BROKERD_PID" || BROKERD_EXIT=$?
	BROKERD_PID=
	return 0
}

brokerd_reload() { kill -HUP "$BROKERD_PID"; }

# bd_url PATH: the URL for curl --unix-socket; bd_curl ARGS: curl through
# brokerd's socket with the test key (from a file, not the command line).
bd_url() { printf 'http://localhost%s\n' "$1"; }
bd_curl() {
	curl -sS --unix-socket "$BROKERD_SOCK" -H @"$BROKERD_HEADER_FILE" "$@"
}

cleanup() {
	brokerd_stop
	gwsim_stop
	if [ -n "$HARNESS_TMP" ]; then
		rm -rf "$HARNESS_TMP"
		HARNESS_TMP=
	fi
}
