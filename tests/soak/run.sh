#!/bin/sh
# make soak: run every part, tests/soak/*.sh (this file aside), one after
# the other, even after a failure.  Each part ends its output with a line
# "N passed, N failed"; the last line here sums them.  Exit non-zero if
# anything failed.  Parts take build/ as `make soak` leaves it.
set -u
cd "$(dirname "$0")/../.." || exit 2
total_pass=0
total_fail=0
log=build/soak-logs
mkdir -p "$log"

for part in tests/soak/*.sh; do
	[ "$part" = tests/soak/run.sh ] && continue
	name=${part##*/}
	name=${name%.sh}
	echo "== soak: $name"
	sh "$part" 2>&1 | tee "$log/$name.log"
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log/$name.log" |
	    tail -1)
	if [ -z "$line" ]; then
		echo "soak $name: no summary line"
		total_fail=$((total_fail + 1))
		continue
	fi
	p=${line%% passed*}
	f=${line#*passed, }
	f=${f%% failed}
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
done
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
