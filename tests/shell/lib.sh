# Sourced by tests/shell/test_*.sh: paths, a private temporary folder removed
# at exit (with any child started through `bg_start`), assertions, and a
# status-file writer that quotes the way brokerd-status(5) promises.
set -eu
TESTS_SHELL=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$TESTS_SHELL/../.." && pwd)
# shellcheck disable=SC2034 # used by the tests that source this file
CLIENTS=$ROOT/clients/shell
T=$(mktemp -d "${TMPDIR:-/tmp}/brokerd-shell-test.XXXXXX")
BG_PIDS=
lib_cleanup() {
	for p in $BG_PIDS; do
		kill "$p" 2>/dev/null || :
		wait "$p" 2>/dev/null || :
	done
	rm -rf "$T"
}
trap lib_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

skip() {
	printf 'skip: %s\n' "$*"
	exit 77
}

fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}

# expect_rc WANT CMD...: run CMD, stdout to $T/out, stderr to $T/err.
expect_rc() {
	want=$1
	shift
	got=0
	"$@" >"$T/out" 2>"$T/err" || got=$?
	if [ "$got" != "$want" ]; then
		printf 'stdout: %s\nstderr: %s\n' "$(cat "$T/out")" "$(cat "$T/err")" >&2
		fail "$* exited $got, wanted $want"
	fi
}

quiet_run() {	# fail unless the last expect_rc printed nothing
	if [ -s "$T/out" ] || [ -s "$T/err" ]; then
		fail "printed something: $(cat "$T/out" "$T/err")"
	fi
}

contains() {	# FILE TEXT
	grep -qF -- "$2" "$1" || fail "$1 lacks '$2': $(cat "$1")"
}

now() {
	date +%s
}

# A value as brokerd writes it: bare when only [A-Za-z0-9_.:+-], else
# single-quoted with ' as '\''.
squote() {
	case $1 in
	'' | *[!A-Za-z0-9_.:+-]*)
		printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
		;;
	*) printf '%s' "$1" ;;
	esac
}

# mkstatus FILE STATE CHECKED_UNIX PID MESSAGE [EXTRA-LINE...]: written to a
# temporary name and renamed, like brokerd.
mkstatus() {
	f=$1 st=$2 ck=$3 pid=$4 msg=$5
	shift 5
	a=0
	[ "$st" = authenticated ] && a=1
	{
		printf 'BROKERD_STATE=%s\n' "$(squote "$st")"
		printf 'BROKERD_AUTHENTICATED=%s\n' "$a"
		printf 'BROKERD_CONNECTED=1\nBROKERD_COMPETING=0\n'
		printf 'BROKERD_SINCE=2026-11-25T06:00:00Z\n'
		printf 'BROKERD_CHECKED=2026-11-25T06:05:10Z\n'
		printf 'BROKERD_CHECKED_UNIX=%s\n' "$ck"
		printf 'BROKERD_SEQ=3\nBROKERD_PID=%s\n' "$pid"
		for l in "$@"; do
			printf '%s\n' "$l"
		done
		printf 'BROKERD_MESSAGE=%s\n' "$(squote "$msg")"
	} >"$f.tmp"
	mv -f "$f.tmp" "$f"
}

# A PID that certainly belongs to no process now.
dead_pid() {
	sh -c 'exit 0' &
	dp=$!
	wait "$dp" || :
	if kill -0 "$dp" 2>/dev/null; then
		fail "pid $dp still alive"
	fi
	printf '%s\n' "$dp"
}

# jq-less JSON checks: json_eval FILE 'JS expression over j' prints the value.
json_eval() {
	node -e 'const fs = require("fs");
const j = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
const v = (new Function("j", "return (" + process.argv[2] + ");"))(j);
process.stdout.write(typeof v === "string" ? v : JSON.stringify(v));' "$1" "$2"
}

# json_true FILE EXPR: fail unless EXPR is true for the JSON in FILE.
json_true() {
	v=$(json_eval "$1" "$2") || fail "$1 is not JSON: $(cat "$1")"
	[ "$v" = true ] || fail "not true: $2 over $(cat "$1")"
}

# server_start NAME: NAME-server.mjs on $T/NAME.sock and a TCP port, once
# it has printed its port; sets SERVER_SOCK, SERVER_PORT, SERVER_URL.
server_start() {
	SERVER_SOCK=$T/$1.sock
	node "$TESTS_SHELL/$1-server.mjs" "$SERVER_SOCK" >"$T/$1.out" 2>"$T/$1.err" &
	BG_PIDS="$BG_PIDS $!"
	i=0
	while ! grep -q port "$T/$1.out" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -lt 100 ] || fail "$1 server did not start: $(cat "$T/$1.err")"
		sleep 0.05
	done
	SERVER_PORT=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$T/$1.out")
	SERVER_URL=http://127.0.0.1:$SERVER_PORT
}

# echo_start: the echo server of echo-server.mjs; sets ECHO_SOCK, ECHO_PORT,
# ECHO_URL.
# shellcheck disable=SC2034
echo_start() {
	server_start echo
	ECHO_SOCK=$SERVER_SOCK
	ECHO_PORT=$SERVER_PORT
	ECHO_URL=$SERVER_URL
}
