#!/bin/sh
# ibkr-status exit codes: 0 authenticated, 1 not, 2 stopped / PID gone /
# stale, 3 no file; -q prints nothing; the default file comes from
# BROKERD_STATUS_FILE.
. "$(dirname "$0")/lib.sh"
S=$CLIENTS/ibkr-status
f=$T/status
t=$(now)

mkstatus "$f" authenticated "$t" $$ ""
expect_rc 0 "$S" -f "$f"
contains "$T/out" "authenticated since 2026-11-25T06:00:00Z"
contains "$T/out" "checked 2026-11-25T06:05:10Z"
[ "$(wc -l <"$T/out")" -eq 1 ] || fail "more than one line: $(cat "$T/out")"
BROKERD_STATUS_FILE=$f expect_rc 0 "$S"

for st in unauthenticated competing gateway_down starting; do
	mkstatus "$f" "$st" "$t" $$ "Gateway says $st"
	expect_rc 1 "$S" -f "$f"
	contains "$T/out" "$st since"
	contains "$T/out" "Gateway says $st"
done

mkstatus "$f" stopped "$t" $$ ""
expect_rc 2 "$S" -f "$f"
contains "$T/out" stopped

# brokerd gone while the file still says authenticated
mkstatus "$f" authenticated "$t" "$(dead_pid)" ""
expect_rc 2 "$S" -f "$f"
contains "$T/out" "not running"

# stale: default interval 10 s, so older than 30 s
mkstatus "$f" authenticated $((t - 45)) $$ ""
expect_rc 2 "$S" -f "$f"
contains "$T/out" stale
mkstatus "$f" authenticated $((t - 20)) $$ ""
expect_rc 0 "$S" -f "$f"
# BROKERD_CHECK_INTERVAL from the file decides
mkstatus "$f" authenticated $((t - 10)) $$ "" BROKERD_CHECK_INTERVAL=1
expect_rc 2 "$S" -f "$f"
mkstatus "$f" authenticated $((t - 100)) $$ "" BROKERD_CHECK_INTERVAL=60
expect_rc 0 "$S" -f "$f"
# no check time at all cannot be trusted, except before the first check
mkstatus "$f" authenticated "" $$ ""
expect_rc 2 "$S" -f "$f"
mkstatus "$f" starting "''" $$ ""
expect_rc 1 "$S" -f "$f"
contains "$T/out" starting

rm -f "$f"
expect_rc 3 "$S" -f "$f"
contains "$T/err" "no status file"
BROKERD_STATUS_FILE=$f expect_rc 3 "$S"

# -q: exit status only
quiet() {	# STATE CHECKED_UNIX WANT
	mkstatus "$f" "$1" "$2" $$ "some text"
	expect_rc "$3" "$S" -q -f "$f"
	quiet_run
}
quiet authenticated "$t" 0
quiet unauthenticated "$t" 1
quiet stopped "$t" 2
quiet authenticated $((t - 99)) 2
rm -f "$f"
expect_rc 3 "$S" -q -f "$f"
quiet_run

expect_rc 0 "$S" -h
contains "$T/out" usage
expect_rc 64 "$S" -Z
expect_rc 64 "$S" extra-arg
