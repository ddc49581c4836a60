#!/bin/sh
# ibkr-status -j: one valid JSON object whatever the case, with the fields of
# the file and the exit code.
. "$(dirname "$0")/lib.sh"
S=$CLIENTS/ibkr-status
f=$T/status
t=$(now)

mkstatus "$f" authenticated "$t" $$ "ok" BROKERD_CHECK_INTERVAL=5
expect_rc 0 "$S" -j -f "$f"
json_true "$T/out" "j.state === 'authenticated' && j.exit === 0 && j.running === true &&
    j.stale === false && j.authenticated === true && j.connected === true &&
    j.competing === false && j.since === '2026-11-25T06:00:00Z' &&
    j.checked === '2026-11-25T06:05:10Z' && j.checked_unix === $t &&
    j.seq === 3 && j.pid === $$ && j.message === 'ok' && j.check_interval_s === 5 &&
    j.file === '$f'"

mkstatus "$f" competing "$t" $$ "competing session"
expect_rc 1 "$S" -j -f "$f"
json_true "$T/out" "j.state === 'competing' && j.exit === 1 && j.authenticated === false"

mkstatus "$f" authenticated $((t - 60)) $$ ""
expect_rc 2 "$S" -j -f "$f"
json_true "$T/out" "j.exit === 2 && j.stale === true && j.reason === 'stale' && j.age_s >= 60"

mkstatus "$f" authenticated "$t" "$(dead_pid)" ""
expect_rc 2 "$S" -j -f "$f"
json_true "$T/out" "j.exit === 2 && j.running === false && j.reason === 'pid_gone'"

# a file name that needs escaping
g="$T/odd \"name\" \\"
expect_rc 3 "$S" -j -f "$g"
json_true "$T/out" "j.exit === 3 && j.state === null && j.reason === 'no_file' && j.file === $(printf '%s' "$g" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.stringify(s)))')"
[ "$(wc -l <"$T/out")" -eq 1 ] || fail "JSON is not one line"
