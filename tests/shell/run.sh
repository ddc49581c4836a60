#!/bin/sh
# Run every tests/shell/test_*.sh (POSIX sh, exit 0 = pass) and report in the
# form tests/run-suites.sh reads: `ok N name` / `not ok N name`, then
# `# pass N` and `# fail N`.  A failing test's output follows, `# `-prefixed.
# A test that exits 77 was skipped (its last line says why): reported as
# `ok N name # SKIP ...`, counted in `# skip N`, neither passed nor failed.
# Exit status 1 if any test failed.  Arguments, if any, select tests by name.
set -u
here=$(cd "$(dirname "$0")" && pwd)
n=0
pass=0
fail=0
skip=0
out=$(mktemp "${TMPDIR:-/tmp}/shell-tests.XXXXXX")
trap 'rm -f "$out"' EXIT
for t in "$here"/test_*.sh; do
	[ -f "$t" ] || continue
	name=${t##*/}
	name=${name%.sh}
	if [ $# -gt 0 ]; then
		case " $* " in
		*" $name "* | *" $name.sh "*) ;;
		*) continue ;;
		esac
	fi
	n=$((n + 1))
	rc=0
	sh "$t" >"$out" 2>&1 </dev/null || rc=$?
	if [ "$rc" -eq 0 ]; then
		pass=$((pass + 1))
		echo "ok $n $name"
		grep '^skip' "$out" | sed 's/^/# /'
	elif [ "$rc" -eq 77 ]; then
		skip=$((skip + 1))
		echo "ok $n $name # SKIP $(tail -n 1 "$out")"
	else
		fail=$((fail + 1))
		echo "not ok $n $name"
		sed 's/^/#   /' "$out" | tail -40
	fi
done
echo "1..$n"
echo "# pass $pass"
echo "# fail $fail"
echo "# skip $skip"
[ "$fail" -eq 0 ]
