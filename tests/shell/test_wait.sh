#!/bin/sh
# ibkr-wait: 0 when the state is (or becomes) the one asked for, 1 on
# timeout, 2 on bad usage; a dead or stale brokerd counts as `stopped`.
. "$(dirname "$0")/lib.sh"
W=$CLIENTS/ibkr-wait
f=$T/status
t=$(now)

mkstatus "$f" authenticated "$t" $$ ""
expect_rc 0 "$W" -t 2 -f "$f"
BROKERD_STATUS_FILE=$f expect_rc 0 "$W" -t 2

mkstatus "$f" unauthenticated "$t" $$ ""
s=$(now)
expect_rc 1 "$W" -t 2 -i 0.2 -f "$f"
e=$(($(now) - s))
if [ "$e" -lt 1 ] || [ "$e" -gt 4 ]; then
	fail "timeout took $e s"
fi
contains "$T/err" "timed out"
expect_rc 0 "$W" -t 2 -f "$f" unauthenticated

# the state changes while waiting
(sleep 1; mkstatus "$f" authenticated "$(now)" $$ "") &
BG_PIDS="$BG_PIDS $!"
s=$(now)
expect_rc 0 "$W" -t 10 -i 0.2 -f "$f"
e=$(($(now) - s))
[ "$e" -le 3 ] || fail "took $e s to see the change"
expect_rc 1 "$W" -t 1 -i 0.2 -f "$f" unauthenticated

# no file yet, then one appears
rm -f "$f"
expect_rc 1 "$W" -t 1 -i 0.2 -f "$f"
(sleep 1; mkstatus "$f" authenticated "$(now)" $$ "") &
BG_PIDS="$BG_PIDS $!"
expect_rc 0 "$W" -t 10 -i 0.2 -f "$f"

# a dead brokerd or a stale file is not authenticated: it is stopped
mkstatus "$f" authenticated "$t" "$(dead_pid)" ""
expect_rc 1 "$W" -t 1 -i 0.2 -f "$f"
expect_rc 0 "$W" -t 1 -f "$f" stopped
mkstatus "$f" authenticated $((t - 100)) $$ ""
expect_rc 1 "$W" -t 1 -i 0.2 -f "$f"
expect_rc 0 "$W" -t 1 -f "$f" stopped
mkstatus "$f" authenticated "$t" $$ ""
expect_rc 1 "$W" -t 1 -i 0.2 -f "$f" stopped

# -t 0 waits for ever: still waiting after 2 s, done once the file changes
mkstatus "$f" unauthenticated "$(now)" $$ ""
"$W" -t 0 -i 0.2 -f "$f" >/dev/null 2>&1 &
wp=$!
BG_PIDS="$BG_PIDS $wp"
sleep 2
kill -0 "$wp" 2>/dev/null || fail "-t 0 gave up"
mkstatus "$f" authenticated "$(now)" $$ ""
i=0
while kill -0 "$wp" 2>/dev/null; do
	i=$((i + 1))
	[ "$i" -lt 30 ] || fail "-t 0 did not notice the change"
	sleep 0.1
done
wait "$wp" || fail "-t 0 exited $?"

# before the first check: starting, not stopped
mkstatus "$f" starting "''" $$ ""
expect_rc 0 "$W" -t 1 -f "$f" starting
expect_rc 1 "$W" -t 1 -i 0.2 -f "$f" stopped
mkstatus "$f" unauthenticated "''" $$ ""
expect_rc 0 "$W" -t 1 -f "$f" stopped

# usage
expect_rc 2 "$W" -f "$f" bogus_state
expect_rc 2 "$W" -t abc -f "$f"
expect_rc 2 "$W" -t -1 -f "$f"
expect_rc 2 "$W" -i 0 -f "$f"
expect_rc 2 "$W" -i x -f "$f"
expect_rc 2 "$W" -f "$f" authenticated extra
expect_rc 2 "$W" -Z
expect_rc 0 "$W" -h
contains "$T/out" usage
