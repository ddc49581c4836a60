#!/bin/sh
# bench/run.sh: brokerd against nginx and a Python bridge, in the same run.
#
# Starts the Gateway simulator (tests/gwsim/gwsim.js) with its pacing off,
# then three front ends on loopback ports, each forwarding to it over TLS
# with kept-alive connections:
#   brokerd   build/brokerd, limits.gateway_rate: off, no route cache, pool 4
#   nginx     reverse proxy, upstream keepalive, proxy_ssl_verify off
#   python    bench/bridge.py (ThreadingHTTPServer + http.client)
# Then, one after another: a warm-up and `wrk -t2 -c32 -d5s` on each, for a
# small JSON answer (/iserver/accounts) and a 64 KiB one (/iserver/__blob),
# brokerd twice (as is, and with `Cache-Control: no-cache`, which skips its
# coalescing of identical GETs); and the median of 50 single curl calls.
# Then bench/stream.mjs: the stream fan-out over WebSocket and SSE.
# Then bench/speed.sh: brokerd against nginx with a fast upstream
# (instructions, system calls, CPU time per request; paired rounds).
# Prints a table and writes it to bench/results.md (sections whose
# heading says "by hand" are kept, after it).
#
# Environment: BENCH_DURATION (5s), BENCH_WARMUP (1s), BENCH_THREADS (2),
# BENCH_CONNECTIONS (32), BENCH_CURLS (50), NGINX_WORKERS (1),
# BROKERD_POOL (4), BROKERD_BIN (build/brokerd), BENCH_RESULTS (bench/results.md; "-": none),
# BENCH_STREAM (1; 0 skips the stream part; its own variables are in bench/stream.mjs),
# BENCH_SPEED (1; 0 skips the speed part; its own variables are in bench/speed.sh).
# Keys are never on a command line: wrk reads its headers from a Lua
# script, curl from a header file, both mode 0600 in the temporary folder.
set -eu
umask 077

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${BENCH_DURATION:-5s}
WARMUP=${BENCH_WARMUP:-1s}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-32}
CURLS=${BENCH_CURLS:-50}
WORKERS=${NGINX_WORKERS:-1}
POOL=${BROKERD_POOL:-4}
BIN=${BROKERD_BIN:-$ROOT/build/brokerd}
RESULTS=${BENCH_RESULTS:-$ROOT/bench/results.md}
BLOB_BYTES=65536
SMALL=/iserver/accounts
BLOB="/iserver/__blob?bytes=$BLOB_BYTES"

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# --- what it needs: Debian packages only, like scripts/deps.sh -----------
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
deps() {
	command -v node >/dev/null 2>&1 ||
	    die "node is missing: run make deps first"
	bench_deps wrk:wrk nginx-light:nginx python3:python3 curl:curl
}
deps
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# --- processes, stopped by PID ---------------------------------------------
T=
GW_PID=
BD_PID=
NX_PID=
PY_PID=

stop_pid() { bench_stop "$1" 30; }

cleanup() {
	stop_pid "$BD_PID"
	stop_pid "$NX_PID"
	stop_pid "$PY_PID"
	stop_pid "$GW_PID"
	BD_PID=''
	NX_PID=''
	PY_PID=''
	GW_PID=''
	if [ -n "$T" ]; then
		rm -rf "$T"
		T=
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

json_field() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",}]*\).*/\1/p" "$2" | head -n 1; }
# gw_counter NAME: a top-level number from the simulator's GET /counters.
gw_counter() {
	curl -sS "http://127.0.0.1:$GW_CTL/counters" | python3 -c \
	    'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

T=$(mktemp -d "${TMPDIR:-/tmp}/brokerd-bench.XXXXXX")
mkdir -p "$T/gw" "$T/bd" "$T/nginx" "$T/py" "$T/wrk"
KEY=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
printf '%s\n' "$KEY" >"$T/key"
printf 'X-Bridge-Key: %s\n' "$KEY" >"$T/key.header"
START=$(date +%s)
LOAD=$(cut -d ' ' -f 1-3 /proc/loadavg 2>/dev/null || echo unknown)

# --- the Gateway simulator, pacing off ---------------------------------------
node "$ROOT/tests/gwsim/gwsim.js" --dir "$T/gw/dir" \
    >"$T/gw/out" 2>"$T/gw/err" &
GW_PID=$!
wait_until 15 has_line "$T/gw/out" '}' || {
	cat "$T/gw/err" >&2
	die "the Gateway simulator did not start"
}
GW_PORT=$(json_field port "$T/gw/out")
GW_CTL=$(json_field control "$T/gw/out")
GW_FP=$(json_field fingerprint "$T/gw/out")
curl -sS -X POST -H 'Content-Type: application/json' \
    --data-binary '{"rate_per_s":0}' "http://127.0.0.1:$GW_CTL/behaviour" \
    >"$T/gw/behaviour"
grep -q '"rate_per_s":0' "$T/gw/behaviour" ||
    die "could not turn the simulator's pacing off: $(cat "$T/gw/behaviour")"
say "gwsim on 127.0.0.1:$GW_PORT (control $GW_CTL), rate_per_s 0"

# probe NAME CURL-ARGS... URL: one GET must answer 200 with the right size.
probe() {
	name=$1
	shift
	code=$(curl -sS -o "$T/probe" -w '%{http_code}' -H @"$T/key.header" \
	    "$@" 2>"$T/probe.err") || code=000
	size=$(wc -c <"$T/probe" 2>/dev/null | tr -d ' ') || size=0
	case $* in
	*__blob*) want=$BLOB_BYTES ;;
	*) want= ;;
	esac
	if [ "$code" != 200 ] || { [ -n "$want" ] && [ "$size" != "$want" ]; }; then
		say "$name: GET answered $code with $size bytes: $(head -c 200 "$T/probe" 2>/dev/null) $(cat "$T/probe.err")"
		return 1
	fi
}

# --- 1. brokerd ----------------------------------------------------------------
BD_OK=0
BD_WHY=
BD_PORT=
bd_up() {
	kill -0 "$BD_PID" 2>/dev/null &&
	    curl -sf -o /dev/null "http://127.0.0.1:$BD_PORT/health"
}
start_brokerd() {
	if ! [ -x "$BIN" ]; then
		BD_WHY="$BIN is not built"
		return 1
	fi
	cp "$T/key" "$T/bd/key"
	BD_PORT=$(free_port)
	# Log level warn: at info brokerd writes an access-log line for each
	# request, and nginx and bridge.py keep no access log here either.
	cat >"$T/bd/brokerd.yaml" <<EOF
listen:
  unix: { path: "$T/bd/brokerd.sock", mode: "0600", group: null }
  tcp: 127.0.0.1:$BD_PORT
gateway:
  url: https://127.0.0.1:$GW_PORT
  tls: { pin_sha256: "$GW_FP" }
  pool: $POOL
session:
  status_file: "$T/bd/status"
  check_interval_s: 10
  tickle_interval_s: 60
keys:
  - { name: bench, key_file: "$T/bd/key", scopes: [read] }
routes:
  - { prefix: /iserver/, to: /v1/api/iserver/, methods: { GET: read }, cache_ms: 0 }
  - { prefix: /portfolio/, to: /v1/api/portfolio/, methods: { GET: read }, cache_ms: 0 }
limits:
  gateway_rate: off
log: { level: warn }
trading: { halt_file: "$T/bd/halt" }
EOF
	env -u IBKR_BRIDGE_KEY -u IBKR_BRIDGE_URL -u IBKR_GATEWAY_URL \
	    -u NOTIFY_SOCKET -u LISTEN_FDS -u LISTEN_PID -u LISTEN_FDNAMES \
	    "$BIN" -c "$T/bd/brokerd.yaml" -f 2>"$T/bd/log" &
	BD_PID=$!
	if ! wait_until 5 bd_up; then
		BD_WHY="did not start: $(tail -n 3 "$T/bd/log" | tr '\n' ' ')"
		return 1
	fi
	# The watcher's first check must be done before the Gateway is asked.
	if ! wait_until 5 has_line "$T/bd/status" 'BROKERD_STATE=authenticated'; then
		BD_WHY="not authenticated: $(head -n 1 "$T/bd/status" 2>/dev/null)"
		return 1
	fi
	if ! probe brokerd "http://127.0.0.1:$BD_PORT$SMALL" ||
	    ! probe brokerd "http://127.0.0.1:$BD_PORT$BLOB" ||
	    ! probe brokerd --unix-socket "$T/bd/brokerd.sock" "http://localhost$SMALL"; then
		BD_WHY="does not forward yet (see above)"
		return 1
	fi
}
if start_brokerd; then
	BD_OK=1
	say "brokerd on 127.0.0.1:$BD_PORT and $T/bd/brokerd.sock"
else
	say "brokerd left out: $BD_WHY"
	stop_pid "$BD_PID"
	BD_PID=
fi

# --- 2. nginx --------------------------------------------------------------------
NX_PORT=$(free_port)
nx_user=
if [ "$(id -u)" -eq 0 ]; then
	# Workers drop to nobody; they must reach their temporary paths.
	nx_user="user nobody nogroup;"
	chmod 711 "$T" "$T/nginx"
fi
# The key goes in by a sed script file (printf is built in): never in argv.
printf 's|@KEY@|%s|g\n' "$KEY" >"$T/nginx/key.sed"
sed -f "$T/nginx/key.sed" -e "s|@TMP@|$T/nginx|g" -e "s|@GWPORT@|$GW_PORT|g" \
    -e "s|@PORT@|$NX_PORT|g" \
    -e "s|@WORKERS@|$WORKERS|g" -e "s|^#@USER@$|$nx_user|" \
    "$ROOT/bench/nginx.conf.in" >"$T/nginx/nginx.conf"
"$NGINX" -p "$T/nginx/" -c "$T/nginx/nginx.conf" -e "$T/nginx/error.log" \
    2>"$T/nginx/stderr" &
NX_PID=$!
nx_up() { kill -0 "$NX_PID" 2>/dev/null && curl -s -o /dev/null "http://127.0.0.1:$NX_PORT/"; }
wait_until 5 nx_up || {
	cat "$T/nginx/stderr" "$T/nginx/error.log" >&2 2>/dev/null || true
	die "nginx did not start"
}
if ! probe nginx "http://127.0.0.1:$NX_PORT$SMALL" ||
    ! probe nginx "http://127.0.0.1:$NX_PORT$BLOB"; then
	die "nginx does not forward"
fi
say "nginx on 127.0.0.1:$NX_PORT ($WORKERS worker)"

# --- 3. the Python bridge ------------------------------------------------------
python3 "$ROOT/bench/bridge.py" --upstream "127.0.0.1:$GW_PORT" \
    --key-file "$T/key" >"$T/py/out" 2>"$T/py/err" &
PY_PID=$!
wait_until 10 has_line "$T/py/out" '}' || {
	cat "$T/py/err" >&2
	die "bridge.py did not start"
}
PY_PORT=$(json_field port "$T/py/out")
if ! probe python "http://127.0.0.1:$PY_PORT$SMALL" ||
    ! probe python "http://127.0.0.1:$PY_PORT$BLOB"; then
	die "bridge.py does not forward"
fi
say "bridge.py on 127.0.0.1:$PY_PORT"

# --- wrk ---------------------------------------------------------------------------
# wrk's headers come from a Lua script, so the key stays off the command line.
printf 'wrk.headers["X-Bridge-Key"] = "%s"\n' "$KEY" >"$T/wrk/key.lua"
{
	cat "$T/wrk/key.lua"
	printf 'wrk.headers["Cache-Control"] = "no-cache"\n'
} >"$T/wrk/nocache.lua"

# to_ms: wrk's 1.23us / 4.56ms / 1.02s / 1.5m, in milliseconds.
to_ms() {
	awk '{ v = $1 + 0; u = $1; sub(/^[0-9.]+/, "", u);
	    if (u == "us") v /= 1000; else if (u == "s") v *= 1000;
	    else if (u == "m") v *= 60000;
	    printf "%.2f\n", v }'
}

ROWS=$T/rows
: >"$ROWS"
: >"$T/commands"
# bench CASE FRONT-END SCRIPT URL
bench() {
	out=$T/wrk/$1-$2.out
	# shellcheck disable=SC2016
	printf '`wrk -t%s -c%s -d%s --latency -s %s.lua %s`\n' "$THREADS" \
	    "$CONNS" "$DURATION" "${3%.lua}" "$4" |
	    sed "s|$T/wrk/||" >>"$T/commands"
	timeout 30 wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "$T/wrk/$3" \
	    "$4" >/dev/null 2>&1 || true
	g0=$(gw_counter total)
	timeout 60 wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency \
	    -s "$T/wrk/$3" "$4" >"$out" 2>&1 || true
	g1=$(gw_counter total)
	# Gateway requests per answered request: below 1 when coalesced.
	n=$(awk '/ requests in / { print $1 }' "$out")
	per=$(awk -v a="$g0" -v b="$g1" -v n="$n" 'BEGIN {
	    if (n + 0 > 0 && a != "" && b != "") printf "%.2f\n", (b - a) / n;
	    else print "-" }')
	rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
	p50=$(awk '$1 == "50%" { print $2 }' "$out" | to_ms)
	p99=$(awk '$1 == "99%" { print $2 }' "$out" | to_ms)
	bad=$(awk '/Non-2xx or 3xx/ { n += $NF }
	    /Socket errors/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
	    END { print n + 0 }' "$out")
	if [ -z "$rps" ]; then
		say "$2 $1: wrk gave no figures:"
		cat "$out" >&2
		rps=0 p50=- p99=-
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$rps" "$p50" "$p99" \
	    "$bad" "$per" >>"$ROWS"
	say "$(printf '%-6s %-16s %9s req/s  p50 %6s ms  p99 %6s ms  errors %s  gw/req %s' \
	    "$1" "$2" "$rps" "$p50" "$p99" "$bad" "$per")"
}

for c in small blob; do
	if [ "$c" = small ]; then p=$SMALL; else p=$BLOB; fi
	if [ "$BD_OK" = 1 ]; then
		bench "$c" brokerd key.lua "http://127.0.0.1:$BD_PORT$p"
		bench "$c" brokerd-nocache nocache.lua "http://127.0.0.1:$BD_PORT$p"
		if ! kill -0 "$BD_PID" 2>/dev/null; then
			BD_OK=0
			BD_WHY="exited during the run: $(tail -n 2 "$T/bd/log" | tr '\n' ' ')"
			say "brokerd $BD_WHY"
		fi
	fi
	bench "$c" nginx key.lua "http://127.0.0.1:$NX_PORT$p"
	bench "$c" python key.lua "http://127.0.0.1:$PY_PORT$p"
done

# --- one call at a time: median of CURLS curl -w %{time_total} ---------------------
# median_ms CURL-ARGS...
median_ms() {
	i=0
	while [ "$i" -lt "$CURLS" ]; do
		curl -sS -o /dev/null -w '%{time_total}\n' -H @"$T/key.header" "$@" ||
		    echo 999
		i=$((i + 1))
	done | sort -n | awk '{ a[NR] = $1 }
	    END { m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
	    printf "%.2f\t%.2f\n", m * 1000, a[1] * 1000 }'
}
LAT=$T/latency
: >"$LAT"
if [ "$BD_OK" = 1 ]; then
	printf 'brokerd (Unix socket)\t%s\n' "$(median_ms \
	    --unix-socket "$T/bd/brokerd.sock" "http://localhost$SMALL")" >>"$LAT"
	printf 'brokerd (TCP)\t%s\n' "$(median_ms \
	    "http://127.0.0.1:$BD_PORT$SMALL")" >>"$LAT"
fi
printf 'nginx (TCP)\t%s\n' "$(median_ms "http://127.0.0.1:$NX_PORT$SMALL")" >>"$LAT"
printf 'python (TCP)\t%s\n' "$(median_ms "http://127.0.0.1:$PY_PORT$SMALL")" >>"$LAT"
RATE_LIMITED=$(gw_counter rate_limited)
HANDSHAKES=$(gw_counter handshakes)
GW_TOTAL=$(gw_counter total)

# --- the report -----------------------------------------------------------------------
fig() { awk -F '\t' -v c="$1" -v f="$2" -v k="$3" '$1 == c && $2 == f { print $k }' "$ROWS"; }
ratio() {	# CASE A B COLUMN
	a=$(fig "$1" "$2" "$4")
	b=$(fig "$1" "$3" "$4")
	awk -v a="$a" -v b="$b" 'BEGIN { if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) print "n/a";
	    else printf "%.2f\n", a / b }'
}
label() { if [ "$1" = small ]; then echo "GET $SMALL"; else echo "GET $BLOB"; fi; }

report() {
	echo "# brokerd benchmark"
	echo
	echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "- machine: nproc $(nproc), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(uname -srm)"
	echo "- versions: $("$BIN" -V 2>&1 | head -n 1)$(if [ "$BD_OK" != 1 ]; then echo " (left out: $BD_WHY)"; fi);" \
	    "$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')" \
	    "($WORKERS worker); $(python3 --version 2>&1); node $(node --version);" \
	    "$(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }')"
	echo "- Gateway: tests/gwsim/gwsim.js (Node, TLS 1.3), \`POST /behaviour {\"rate_per_s\":0}\`;" \
	    "after the run: $GW_TOTAL requests, $HANDSHAKES TLS handshakes, $RATE_LIMITED answered 429"
	echo "- every front end, wrk, curl and the simulator share the same $(nproc) CPUs;" \
	    "load average before the run: $LOAD (other work on the machine moves the figures)"
	echo
	echo "## Throughput: \`wrk -t$THREADS -c$CONNS -d$DURATION\` each, one after another (after a $WARMUP warm-up)"
	echo
	echo "| request | front end | requests/s | p50 ms | p99 ms | errors | Gateway requests per request |"
	echo "|---|---|---:|---:|---:|---:|---:|"
	while IFS="$(printf '\t')" read -r c f rps p50 p99 bad per; do
		case $f in
		brokerd) f="brokerd (as is: identical GETs coalesced)" ;;
		brokerd-nocache) f="brokerd (Cache-Control: no-cache: one Gateway request each)" ;;
		python) f="Python bridge (bridge.py)" ;;
		esac
		echo "| $(label "$c") | $f | $rps | $p50 | $p99 | $bad | $per |"
	done <"$ROWS"
	echo
	echo "## Ratios (requests/s; p50 latency)"
	echo
	echo "| request | brokerd | brokerd/nginx req/s | brokerd/python req/s | brokerd/nginx p50 | brokerd/python p50 |"
	echo "|---|---|---:|---:|---:|---:|"
	for c in small blob; do
		for b in brokerd brokerd-nocache; do
			if [ "$b" = brokerd ]; then n="as is"; else n="no-cache"; fi
			echo "| $(label "$c") | $n | $(ratio "$c" "$b" nginx 3) |" \
			    "$(ratio "$c" "$b" python 3) | $(ratio "$c" "$b" nginx 4) |" \
			    "$(ratio "$c" "$b" python 4) |"
		done
	done
	echo
	echo "## One call at a time: median of $CURLS \`curl -w %{time_total}\` (new connection each, GET $SMALL)"
	echo
	echo "| front end | median ms | fastest ms |"
	echo "|---|---:|---:|"
	while IFS="$(printf '\t')" read -r f ms min; do
		echo "| $f | $ms | $min |"
	done <"$LAT"
	echo
	echo "## Commands"
	echo
	echo "Ports were chosen at run time; \`key.lua\` sets \`X-Bridge-Key\`, \`nocache.lua\` also"
	echo "\`Cache-Control: no-cache\`. Each was preceded by the same command with \`-d$WARMUP\`."
	echo
	sed 's/^/- /' "$T/commands"
	printf '%s\n' "- \`curl -sS -o /dev/null -w '%{time_total}\\n' -H @key.header --unix-socket brokerd.sock http://localhost$SMALL\` ($CURLS times; the TCP rows use http://127.0.0.1:PORT$SMALL)"
	echo "- brokerd: \`build/brokerd -c brokerd.yaml -f\` with \`limits.gateway_rate: off\`, \`gateway.pool: $POOL\`," \
	    "routes \`/iserver/\` and \`/portfolio/\` with \`cache_ms: 0\`, \`pin_sha256\` from the simulator"
	echo "- nginx: \`nginx -p TMP/ -c TMP/nginx.conf -e TMP/error.log\` from bench/nginx.conf.in"
	echo "- Python: \`python3 bench/bridge.py --upstream 127.0.0.1:PORT --key-file KEY\`"
	echo
	echo "Whole run: $(($(date +%s) - START)) s (\`sh bench/run.sh\`, or \`make bench\`)."
}
report >"$T/report.md"
# The second part: stream fan-out (bench/stream.mjs starts its own simulator
# and brokerd); BENCH_STREAM=0 leaves it out.
if [ "${BENCH_STREAM:-1}" != 0 ]; then
	say "stream fan-out: node bench/stream.mjs"
	echo >>"$T/report.md"
	if ! BROKERD_BIN=$BIN node "$ROOT/bench/stream.mjs" >"$T/stream.md"; then
		echo "## Streaming fan-out: bench/stream.mjs failed" >"$T/stream.md"
	fi
	cat "$T/stream.md" >>"$T/report.md"
fi
# The third part: instructions, system calls and req/s against a fast
# upstream (bench/speed.sh starts its own upstream, brokerd and nginx);
# BENCH_SPEED=0 leaves it out.  This part's processes are idle by now:
# stopped, so that they hold no memory or CPU during it.
if [ "${BENCH_SPEED:-1}" != 0 ]; then
	stop_pid "$BD_PID"
	stop_pid "$NX_PID"
	stop_pid "$PY_PID"
	stop_pid "$GW_PID"
	BD_PID='' NX_PID='' PY_PID='' GW_PID=''
	say "speed: sh bench/speed.sh"
	echo >>"$T/report.md"
	if ! BROKERD_BIN=$BIN SPEED_RESULTS=- sh "$ROOT/bench/speed.sh" \
	    >"$T/speed.md"; then
		echo "## Speed (issue 14): bench/speed.sh failed" >"$T/speed.md"
	fi
	cat "$T/speed.md" >>"$T/report.md"
fi
echo
cat "$T/report.md"
if [ "$RESULTS" != - ]; then
	# Sections kept by hand ("## " headings that say "by hand") outlive
	# the run: they follow the new report.
	if [ -f "$RESULTS" ]; then
		awk '/^## / { keep = tolower($0) ~ /by hand/ }
		    keep { print }' "$RESULTS" >"$T/hand.md"
		if [ -s "$T/hand.md" ]; then
			echo >>"$T/report.md"
			cat "$T/hand.md" >>"$T/report.md"
		fi
	fi
	cp "$T/report.md" "$RESULTS"
	chmod 644 "$RESULTS"
	say "written to $RESULTS"
fi
