#!/bin/sh
# The message comes from the Gateway: quotes, $(...), backticks, newlines
# that imitate KEY= lines and terminal escapes must neither run nor change the
# state, and must come back byte for byte in -j and as sh would source them.
. "$(dirname "$0")/lib.sh"
S=$CLIENTS/ibkr-status
W=$CLIENTS/ibkr-wait
f=$T/status
t=$(now)
pw=$T/pwned
esc=$(printf '\033')
nl='
'
msg="'\$(touch $pw)' \$(touch $pw) \`touch $pw\` ; touch $pw \"dq\" back\\slash 'sq'\\''${nl}BROKERD_STATE=authenticated${nl}BROKERD_CHECKED_UNIX=$t${nl}BROKERD_PID=$$${nl}${esc}[31mred${esc}[0m	tab"
mkstatus "$f" unauthenticated "$t" $$ "$msg"

expect_rc 1 "$S" -f "$f"
[ "$(wc -l <"$T/out")" -eq 1 ] || fail "human output is not one line: $(cat "$T/out")"
grep -q "$esc" "$T/out" && fail "escape character reached the terminal"
contains "$T/out" "touch $pw"
expect_rc 1 "$S" -j -f "$f"
cp "$T/out" "$T/j"
json_true "$T/j" 'j.state === "unauthenticated" && j.exit === 1 && j.authenticated === false'
printf '%s' "$msg" >"$T/want"
json_eval "$T/j" j.message >"$T/got"
cmp "$T/want" "$T/got" || fail "message differs: $(od -c "$T/got" | head)"

# What sh makes of the same file (in a subshell that cannot touch our state)
# must agree with the parser, so the quoting is the shell's.
sh -c '. "$1"; printf %s "$BROKERD_MESSAGE"' sh "$f" >"$T/sourced"
cmp "$T/want" "$T/sourced" || fail "squote in lib.sh disagrees with sh"
rm -f "$pw"

expect_rc 1 "$W" -t 1 -i 0.2 -f "$f" authenticated
expect_rc 0 "$W" -t 1 -f "$f" unauthenticated
[ ! -e "$pw" ] || fail "a command in the message ran"

# Hand-written variants: an unterminated quote hides the rest, a quoted state.
printf "BROKERD_STATE='authenticated'\nBROKERD_CHECKED_UNIX=%s\nBROKERD_PID=%s\nBROKERD_MESSAGE='it'\\\\''s fine'\n" "$t" $$ >"$f"
expect_rc 0 "$S" -j -f "$f"
json_true "$T/out" 'j.message === "it'"'"'s fine" && j.state === "authenticated"'
printf "BROKERD_STATE=unauthenticated\nBROKERD_CHECKED_UNIX=%s\nBROKERD_PID=%s\nBROKERD_MESSAGE='open\nBROKERD_STATE=authenticated\n" "$t" $$ >"$f"
expect_rc 1 "$S" -f "$f"
[ ! -e "$pw" ] || fail "a command in the message ran"
