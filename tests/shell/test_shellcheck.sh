#!/bin/sh
# The shell clients and these tests are POSIX sh and shellcheck clean.
. "$(dirname "$0")/lib.sh"
command -v shellcheck >/dev/null || fail "shellcheck is not installed"
for f in "$CLIENTS"/ibkr-status "$CLIENTS"/ibkr-wait "$CLIENTS"/ibkr-call "$CLIENTS"/ibkr-stream; do
	[ -f "$f" ] || fail "missing $f"
	[ -x "$f" ] || fail "$f is not executable"
	head -1 "$f" | grep -qx '#!/bin/sh' || fail "$f is not #!/bin/sh"
done
shellcheck -s sh "$CLIENTS"/* || fail "shellcheck clients/shell"
shellcheck -s sh -x -e SC1091 "$TESTS_SHELL"/run.sh "$TESTS_SHELL"/lib.sh \
    "$TESTS_SHELL"/test_*.sh || fail "shellcheck tests/shell"
