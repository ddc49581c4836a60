#!/bin/sh
# brokerd usually runs as its own user: a reader that may not signal its PID
# (kill -0 fails with EPERM) must still count it as running.
. "$(dirname "$0")/lib.sh"
S=$CLIENTS/ibkr-status
f=$T/status
chmod 755 "$T"
mkstatus "$f" authenticated "$(now)" 1 ""
chmod 644 "$f"
if [ "$(id -u)" -ne 0 ]; then
	kill -0 1 2>/dev/null && skip "this user may signal pid 1"
	expect_rc 0 "$S" -f "$f"
elif command -v setpriv >/dev/null; then
	setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'kill -0 1' 2>/dev/null &&
	    fail "nobody may signal pid 1?"
	expect_rc 0 setpriv --reuid=65534 --regid=65534 --clear-groups "$S" -f "$f"
	mkstatus "$f" authenticated "$(now)" "$(dead_pid)" ""
	chmod 644 "$f"
	expect_rc 2 setpriv --reuid=65534 --regid=65534 --clear-groups "$S" -f "$f"
else
	skip "root without setpriv(1)"
fi
