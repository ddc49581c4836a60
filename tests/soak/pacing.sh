#!/bin/sh
# Soak part 1, pacing (issue 10): ten runs of 60-100 clients sending
# distinct no-cache snapshot requests through brokerd for 10 s against the
# strict Gateway simulator (first-byte stamps, no slack), quiet, then ten
# beside two CPU burners.  One line per run: requests, local 429s, the
# simulator's 429s and the most arrivals in any strict 1000 ms window.
# A run fails on any simulator 429 (or any failed assertion of the test).
set -u
cd "$(dirname "$0")/../.." || exit 2
bin=build/integration/test_pacing
runs=${SOAK_PACING_RUNS:-10}
secs=${SOAK_PACING_SECONDS:-10}
pass=0
fail=0
if [ ! -x "$bin" ]; then
	echo "pacing: $bin is missing (make integration)"
	echo "0 passed, 1 failed"
	exit 1
fi
out=$(mktemp) || exit 2
trap 'rm -f "$out"' EXIT

for kind in quiet burners; do
	i=1
	while [ "$i" -le "$runs" ]; do
		clients=$((60 + (i - 1) % 5 * 10))
		PACING_LOAD_S=$secs PACING_LOAD_CLIENTS=$clients "$bin" \
		    --jobs=1 --filter="pacing/snapshot_load_strict_$kind" \
		    >"$out" 2>&1
		rc=$?
		fig=$(grep '^FIGURES' "$out" | tail -1)
		req=$(echo "$fig" | sed -n 's/.*requests \([0-9]*\).*/\1/p')
		loc=$(echo "$fig" | sed -n 's/.*local 429: \([0-9]*\).*/\1/p')
		gw=$(echo "$fig" | sed -n 's/.*its 429s \([0-9]*\).*/\1/p')
		win=$(echo "$fig" |
		    sed -n 's/.*strict 1000 ms \([0-9]*\).*/\1/p')
		ok=$(echo "$fig" | sed -n 's/.*(200: \([0-9]*\).*/\1/p')
		if [ "$rc" -eq 0 ] && [ "${gw:-x}" = 0 ]; then
			verdict=ok
			pass=$((pass + 1))
		else
			verdict=FAIL
			fail=$((fail + 1))
			grep -E 'FAIL|Assert|expression|error' "$out" | head -5
		fi
		printf '%-7s run %2d: %3d clients %ss: requests %s (200: %s, ' \
		    "$kind" "$i" "$clients" "$secs" "${req:-?}" "${ok:-?}"
		printf 'local 429: %s), simulator 429s %s, max in 1000 ms %s: %s\n' \
		    "${loc:-?}" "${gw:-?}" "${win:-?}" "$verdict"
		i=$((i + 1))
	done
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
