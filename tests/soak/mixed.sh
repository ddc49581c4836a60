#!/bin/sh
# make soak, the mixed part: reads, snapshots and orders through both
# listeners while the simulator flaps, stalls, restarts (same certificate,
# then once a new one) and brokerd reloads; SOAK_SECONDS long (default 180).
# make test runs a 30-second form of it (tests/run-suites.sh).
set -u
cd "$(dirname "$0")/../.." || exit 2
[ -x build/brokerd ] || make --no-print-directory all >/dev/null || exit 2
exec node tests/soak/mixed.mjs --seconds "${SOAK_SECONDS:-180}" \
    --clients "${SOAK_CLIENTS:-24}"
