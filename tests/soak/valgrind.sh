#!/bin/sh
# make soak, valgrind part: the integration suite test_server (no timing
# assertions) against build/brokerd run under valgrind's memcheck.  Every
# daemon the suite starts writes its own valgrind log; one with errors
# (invalid reads or writes, uninitialised values, definite leaks), or one
# that did not exit 0 on SIGTERM (the harness notes it), is a failure.
# Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.." || exit 2
root=$(pwd)

if ! command -v valgrind >/dev/null 2>&1; then
	sh scripts/deps.sh valgrind || {
		echo "valgrind: not installed"
		echo "0 passed, 1 failed"
		exit 1
	}
fi
make --no-print-directory all build/integration/test_server >/dev/null || {
	echo "valgrind: build failed"
	echo "0 passed, 1 failed"
	exit 1
}

dir=$(mktemp -d "${TMPDIR:-/tmp}/brokerd-valgrind.XXXXXX") || exit 2
trap 'rm -rf "$dir"' EXIT
cat >"$dir/brokerd" <<WRAP
#!/bin/sh
exec valgrind --leak-check=full --error-exitcode=1 \\
    --errors-for-leak-kinds=definite --log-file="$dir/valgrind.%p.log" \\
    "$root/build/brokerd" "\$@"
WRAP
chmod 755 "$dir/brokerd"

out=build/test-logs/soak-valgrind.log
mkdir -p build/test-logs
BROKERD_BIN=$dir/brokerd BROKERD_TIMEOUT_SCALE=10 SANITIZER_LOG_DIR=$dir \
    build/integration/test_server --jobs=1 >"$out" 2>&1
line=$(grep 'Synthesis:' "$out" | tail -1)
p=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
f=$(echo "$line" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
c=$(echo "$line" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
[ -n "$p" ] || p=0
[ -n "$f" ] || f=1
[ -n "$c" ] || c=0
f=$((f + c))
[ "$f" -ne 0 ] && grep -E '\[(FAIL|----)\]' "$out" | head -30
echo "test_server under valgrind: ${line:-no synthesis}"

# Daemons with errors, and daemons that did not stop cleanly.
runs=0
bad=0
for log in "$dir"/valgrind.*.log; do
	[ -f "$log" ] || continue
	runs=$((runs + 1))
	if grep -q 'ERROR SUMMARY: [1-9]' "$log"; then
		bad=$((bad + 1))
		echo "valgrind errors in ${log##*/}:"
		head -60 "$log"
		cp "$log" build/test-logs/
	fi
done
for note in "$dir"/exit-*.log; do
	[ -f "$note" ] || continue
	# The wrapper execs valgrind: the same PID names both files.
	pid=${note##*/exit-}
	pid=${pid%.log}
	grep -q 'ERROR SUMMARY: [1-9]' "$dir/valgrind.$pid.log" 2>/dev/null &&
	    continue
	bad=$((bad + 1))
	cat "$note"
done
echo "valgrind: $runs daemon runs, $bad with errors or an unclean exit"
if [ "$runs" -eq 0 ]; then
	echo "valgrind: no daemon ran under valgrind"
	bad=1
fi
echo "$p passed, $((f + bad)) failed"
[ $((f + bad)) -eq 0 ]
