#!/bin/sh
# The shell clients' man pages and brokerd-status(5): mandoc -T lint clean,
# the sections users look for, every status key, every option.
. "$(dirname "$0")/lib.sh"
M=$ROOT/man
command -v mandoc >/dev/null || fail "mandoc is not installed"
for p in ibkr-status.1 ibkr-wait.1 ibkr-call.1 ibkr-stream.1 brokerd-status.5; do
	[ -f "$M/$p" ] || fail "missing man/$p"
	out=$(mandoc -T lint -W warning "$M/$p" 2>&1) || fail "$p: $out"
	[ -z "$out" ] || fail "$p: $out"
	for sec in NAME SYNOPSIS DESCRIPTION FILES EXAMPLES "SEE ALSO"; do
		grep -qx "\\.Sh $sec" "$M/$p" || fail "$p has no $sec"
	done
done
for p in ibkr-status.1 ibkr-wait.1 ibkr-call.1 ibkr-stream.1; do
	grep -qx '\.Sh EXIT STATUS' "$M/$p" || fail "$p has no EXIT STATUS"
done
grep -qF 'ibkr-wait && ./trade.sh' "$M/ibkr-wait.1" || fail "no ibkr-wait && ./trade.sh example"
for k in STATE AUTHENTICATED CONNECTED COMPETING SINCE CHECKED CHECKED_UNIX SEQ PID MESSAGE CHECK_INTERVAL; do
	grep -qx "\\.It Va BROKERD_$k" "$M/brokerd-status.5" || fail "brokerd-status.5 lacks BROKERD_$k"
done
for st in starting gateway_down unauthenticated authenticated competing stopped; do
	grep -qx "\\.It Cm $st" "$M/brokerd-status.5" || fail "brokerd-status.5 lacks state $st"
done
grep -q rename "$M/brokerd-status.5" || fail "brokerd-status.5 does not state the rename"
# every option in the usage text is in the page
for c in ibkr-status ibkr-wait ibkr-call ibkr-stream; do
	"$CLIENTS/$c" -h >"$T/usage" || fail "$c -h"
	for o in $(grep -o '^ *-[A-Za-z]' "$T/usage" | tr -d ' -'); do
		grep -q "^\\.It Fl $o" "$M/$c.1" || fail "$c.1 does not document -$o"
	done
done
