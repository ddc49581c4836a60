#!/bin/sh
# Run every suite (C unit, C unit under ASan+UBSan, C integration, Node,
# shell, varnishtest, man lint, example config), even after a failure, and
# end with one line that sums them all.  Exit non-zero if anything failed.
set -u
cd "$(dirname "$0")/.." || exit 2
total_pass=0
total_fail=0
summary=""
log=build/test-logs
mkdir -p "$log"

add() {	# suite passed failed
	total_pass=$((total_pass + $2))
	total_fail=$((total_fail + $3))
	summary="$summary
  $1: $2 passed, $3 failed"
}

# Criterion: "Synthesis: Tested: N | Passing: N | Failing: N | Crashing: N"
criterion() {	# suite binary...
	suite=$1
	shift
	p=0
	f=0
	for bin in "$@"; do
		[ -x "$bin" ] || continue
		name=${bin##*/}
		out="$log/$suite-$name.log"
		"$bin" --jobs=2 >"$out" 2>&1
		rc=$?
		line=$(grep 'Synthesis:' "$out" | tail -1)
		if [ -z "$line" ]; then
			echo "$suite/$name: no synthesis (exit $rc)"
			tail -20 "$out"
			f=$((f + 1))
			continue
		fi
		tp=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
		tf=$(echo "$line" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
		tc=$(echo "$line" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
		p=$((p + tp))
		f=$((f + tf + tc))
		if [ $((tf + tc)) -ne 0 ] || [ $rc -ne 0 ]; then
			grep -E '\[(FAIL|----)\]|Assertion|CRASH|ERROR|runtime error|Sanitizer' "$out" | head -30
			[ $((tf + tc)) -eq 0 ] && f=$((f + 1))
		fi
		echo "$line  ($suite/$name)"
	done
	add "$suite" $p $f
}

echo "== C unit tests"
criterion unit build/unit/test_*
echo "== C unit tests under AddressSanitizer + UBSan"
criterion unit-asan build/unit-asan/test_*
echo "== C integration tests (real brokerd, real TLS simulator)"
criterion integration build/integration/test_*

echo "== C integration tests against brokerd built with ASan + UBSan"
if [ -x build/brokerd-asan ]; then
	rm -f "$log"/sanitizer-*.log
	BROKERD_BIN=$(pwd)/build/brokerd-asan
	SANITIZER_LOG_DIR=$(pwd)/$log
	export BROKERD_BIN SANITIZER_LOG_DIR
	criterion integration-asan build/integration/test_*
	unset BROKERD_BIN SANITIZER_LOG_DIR
	# the harness keeps the log of any daemon the sanitizers spoke about
	n=$(find "$log" -name 'sanitizer-*.log' | wc -l)
	if [ "$n" -gt 0 ]; then
		echo "sanitizer reports from brokerd: $n"
		head -40 "$log"/sanitizer-*.log
		add sanitizer-reports 0 "$n"
	fi
fi

echo "== Node tests"
nodefiles=$(ls clients/node/test/*.test.js tests/node/*.test.mjs 2>/dev/null)
if [ -n "$nodefiles" ]; then
	# shellcheck disable=SC2086
	node --test --test-concurrency=2 $nodefiles >"$log/node.log" 2>&1
	p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log/node.log" | tail -1)
	f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log/node.log" | tail -1)
	[ -n "$p" ] || p=0
	[ -n "$f" ] || f=1
	[ "$f" -ne 0 ] && grep -E '^not ok|error:|expected|actual' "$log/node.log" | head -40
	echo "node: $p passed, $f failed"
	add node "$p" "$f"
fi

echo "== Mixed soak, 30 s (tests/soak/mixed.mjs; make soak runs it longer)"
if [ -x build/brokerd ]; then
	node tests/soak/mixed.mjs --seconds 30 >"$log/soak.log" 2>&1
	grep -E '^(soak|requests|orders|simulator|brokerd|not ok)' "$log/soak.log"
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log/soak.log" | tail -1)
	if [ -n "$line" ]; then
		p=${line%% passed*}
		f=${line#*passed, }
		f=${f%% failed}
	else
		tail -20 "$log/soak.log"
		p=0
		f=1
	fi
	add soak "$p" "$f"
fi

echo "== Node client type check"
if [ -d clients/node/node_modules/typescript ]; then
	if (cd clients/node && npx --no-install tsc --noEmit -p .) >"$log/tsc.log" 2>&1; then
		add typecheck 1 0
	else
		cat "$log/tsc.log"
		add typecheck 0 1
	fi
fi

# A suite that prints "# pass N" and "# fail N" (tests/shell, tests/vtc).
tap_suite() {	# suite script context-lines
	sh "$2" >"$log/$1.log" 2>&1
	p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log/$1.log" | tail -1)
	f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log/$1.log" | tail -1)
	[ -n "$p" ] || p=0
	[ -n "$f" ] || f=1
	[ "$f" -ne 0 ] && grep -A"$3" '^not ok' "$log/$1.log" | head -40
	echo "$1: $p passed, $f failed"
	add "$1" "$p" "$f"
}

echo "== Shell tests"
[ -f tests/shell/run.sh ] && tap_suite shell tests/shell/run.sh 5

echo "== Debian package and systemd units (tests/deploy)"
[ -f tests/deploy/run.sh ] && tap_suite deploy tests/deploy/run.sh 12

echo "== Raw-HTTP conformance (varnishtest, tests/vtc)"
[ -f tests/vtc/run.sh ] && tap_suite vtc tests/vtc/run.sh 12

echo "== Man pages (mandoc -T lint)"
p=0
f=0
for m in man/*.[158]; do
	[ -f "$m" ] || continue
	if out=$(mandoc -T lint -W warning "$m" 2>&1) && [ -z "$out" ]; then
		p=$((p + 1))
	else
		echo "$out"
		f=$((f + 1))
	fi
done
add man $p $f

echo "== Static checks (shellcheck, cppcheck)"
p=0
f=0
if shellcheck -s sh clients/shell/* scripts/*.sh tests/run-suites.sh \
    tests/deploy/run.sh pkg/debian/postinst pkg/debian/prerm \
    pkg/debian/postrm tests/vtc/run.sh bench/run.sh bench/speed.sh \
    bench/lib.sh tests/soak/*.sh >"$log/shellcheck.log" 2>&1; then
	p=$((p + 1))
else
	head -30 "$log/shellcheck.log"
	f=$((f + 1))
fi
if ! command -v cppcheck >/dev/null 2>&1; then
	:
elif cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
    -D_GNU_SOURCE brokerd bench/unixload.c >"$log/cppcheck.log" 2>&1; then
	p=$((p + 1))
else
	head -30 "$log/cppcheck.log"
	f=$((f + 1))
fi
add lint $p $f

echo "== Example configuration and unit file"
p=0
f=0
if build/brokerd -t -c config/brokerd.yaml >"$log/conf.log" 2>&1 &&
    grep -q 'configuration config/brokerd.yaml is ok' "$log/conf.log"; then
	p=$((p + 1))
else
	cat "$log/conf.log"
	f=$((f + 1))
fi
# The unit's hardening, scored without a running systemd (lower is better).
if command -v systemd-analyze >/dev/null 2>&1; then
	score=$(systemd-analyze security --offline=yes config/brokerd.service \
	    2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s < 2.0) }'; then
		echo "config/brokerd.service: exposure $score"
		p=$((p + 1))
	else
		echo "config/brokerd.service: exposure '$score' (want < 2.0)"
		f=$((f + 1))
	fi
fi
add config $p $f

echo "== Summary$summary"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
