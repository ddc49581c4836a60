#!/bin/sh
# Run every tests/vtc/*.vtc with varnishtest against one brokerd (in front
# of the Gateway simulator), twice: over the loopback TCP listener and over
# the Unix socket.  Each file on each transport is one test, reported as
# tests/shell/run.sh does, for tests/run-suites.sh: `ok N name` /
# `not ok N name`, then `# pass N`, `# fail N`, `# skip N`.
# A case that needs one transport says so with `feature cmd` and is skipped
# on the other.  Arguments, if any, select files by name.
#
# Macros given to every case: ${brokerd} (where to connect: "127.0.0.1 PORT"
# or the socket's path), ${transport} (tcp or unix), ${gwctl} (the
# simulator's control port, "127.0.0.1 PORT").  No key is needed: TCP grants
# tcp_anonymous [read] and the socket trusts this user as a peer.
set -u
here=$(cd "$(dirname "$0")" && pwd)
HARNESS_ROOT=$(cd "$here/../.." && pwd)
# shellcheck source=../lib/harness.sh disable=SC1091
. "$HARNESS_ROOT/tests/lib/harness.sh"
trap cleanup EXIT
trap 'exit 1' INT TERM

if ! command -v varnishtest >/dev/null 2>&1; then
	echo "not ok 1 varnishtest"
	echo "#   varnishtest not found: make deps installs Debian's varnish"
	echo "1..1"
	echo "# pass 0"
	echo "# fail 1"
	exit 1
fi

fail_setup() {
	echo "not ok 1 setup"
	echo "#   $1"
	echo "1..1"
	echo "# pass 0"
	echo "# fail 1"
	exit 1
}

harness_tmp || fail_setup "no temporary folder"
extra=$HARNESS_TMP/extra.yaml
BROKERD_SOCK=$HARNESS_TMP/brokerd/brokerd.sock
cat >"$extra" <<EOT
listen:
  unix: { path: "$BROKERD_SOCK", mode: "0660", group: null }
  tcp: 127.0.0.1:0
  tcp_anonymous: [read]
peers:
  - { user: "$(id -un)", scopes: [read] }
EOT
gwsim_start --port 0 || fail_setup "the Gateway simulator did not start"
brokerd_start "$extra" || fail_setup "brokerd did not start"
[ -n "$BROKERD_PORT" ] || fail_setup "brokerd has no TCP port"
authenticated() { grep -q '^BROKERD_STATE=authenticated' "$BROKERD_STATUS"; }
wait_until 10 authenticated 2>/dev/null ||
    fail_setup "brokerd did not see an authenticated session"

n=0
pass=0
fail=0
skip=0
out=$HARNESS_TMP/vtc.log
for t in "$here"/*.vtc; do
	[ -f "$t" ] || continue
	name=${t##*/}
	name=${name%.vtc}
	if [ $# -gt 0 ]; then
		case " $* " in
		*" $name "* | *" $name.vtc "*) ;;
		*) continue ;;
		esac
	fi
	for transport in tcp unix; do
		if [ "$transport" = tcp ]; then
			addr="127.0.0.1 $BROKERD_PORT"
		else
			addr=$BROKERD_SOCK
		fi
		n=$((n + 1))
		rc=0
		varnishtest -t 30 -v -D brokerd="$addr" \
		    -D transport="$transport" \
		    -D gwctl="127.0.0.1 $GWSIM_CONTROL" "$t" \
		    >"$out" 2>&1 </dev/null || rc=$?
		if { [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ]; } &&
		    grep -q 'TEST .* skipped' "$out"; then
			skip=$((skip + 1))
			echo "ok $n $name ($transport) # SKIP not for $transport"
		elif [ "$rc" -eq 0 ]; then
			pass=$((pass + 1))
			echo "ok $n $name ($transport)"
		else
			fail=$((fail + 1))
			echo "not ok $n $name ($transport)"
			grep -v '^\*\*\*\*' "$out" | tail -40 | sed 's/^/#   /'
		fi
	done
done
if ! kill -0 "$BROKERD_PID" 2>/dev/null; then
	n=$((n + 1))
	fail=$((fail + 1))
	echo "not ok $n brokerd still running after the cases"
	tail -20 "$BROKERD_LOG" | sed 's/^/#   /'
fi
echo "1..$n"
echo "# pass $pass"
echo "# fail $fail"
echo "# skip $skip"
[ "$fail" -eq 0 ]
