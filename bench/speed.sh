#!/bin/sh
# bench/speed.sh: brokerd against the nginx bridge with a fast upstream
# (issue 14).  The Gateway is nginx serving fixed answers over TLS
# (bench/upstream.conf.in), so the front ends, not the simulator, are
# measured.  Both front ends check the same key and forward every request
# (Cache-Control: no-cache) over kept-alive TLS connections.
#
#   sh bench/speed.sh profile   instructions/request (callgrind) and system
#                               calls/request (strace -c) of both, small
#                               answer over TCP; under a minute
#                               (SPEED_CASES="small blob": the 64 KiB too)
#   sh bench/speed.sh [all]     that, plus the 64 KiB answer, CPU us/request
#                               (/proc/PID/stat), paired alternating rounds
#                               of req/s and p50/p99 over TCP (wrk) and the
#                               Unix socket (bench/unixload), RSS; a table,
#                               written to bench/results.md ("Speed" section)
#
# Environment: SPEED_REQUESTS (20000; 5000 in profile mode),
# SPEED_BLOB_REQUESTS (a tenth), SPEED_CASES (profile mode: small),
# SPEED_WARMUP (1000), SPEED_CONNS (16), SPEED_ROUNDS (11), SPEED_SECONDS (3),
# SPEED_TCP_LOAD (wrk; unixload measures TCP with the Unix socket's tool),
# SPEED_POOL (SPEED_CONNS: as many Gateway connections as the nginx
# bridge opens), SPEED_CIPHERS (empty: the client's order; else the
# upstream's ssl_ciphers, preferred by the server), BROKERD_BIN
# (build/brokerd), SPEED_KEEP (1 keeps the temporary folder), SPEED_RESULTS
# (bench/results.md; "-" only prints), SPEED_OUT (the folder for the
# profiles; default build/speed).
set -eu
umask 077

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=${1:-all}
case $MODE in
profile | all) ;;
*)
	echo "usage: sh bench/speed.sh [profile | all]" >&2
	exit 2
	;;
esac
if [ "$MODE" = profile ]; then
	REQS=${SPEED_REQUESTS:-5000}
else
	REQS=${SPEED_REQUESTS:-20000}
fi
# A 64 KiB answer costs 30 times a small one under callgrind: fewer.
BLOB_REQS=${SPEED_BLOB_REQUESTS:-$((REQS / 10))}
# N: the count of the fixed-count runs of the case at hand (count CASE)
N=$REQS
count() { if [ "$1" = blob ]; then N=$BLOB_REQS; else N=$REQS; fi; }
WARM=${SPEED_WARMUP:-1000}
CONNS=${SPEED_CONNS:-16}
ROUNDS=${SPEED_ROUNDS:-11}
SECS=${SPEED_SECONDS:-3}
POOL=${SPEED_POOL:-$CONNS}
CIPHERS=${SPEED_CIPHERS:-}
TCP_LOAD=${SPEED_TCP_LOAD:-wrk}
case $TCP_LOAD in
wrk | unixload) ;;
*)
	echo "SPEED_TCP_LOAD is wrk or unixload" >&2
	exit 2
	;;
esac
BIN=${BROKERD_BIN:-$ROOT/build/brokerd}
RESULTS=${SPEED_RESULTS:-$ROOT/bench/results.md}
OUT=${SPEED_OUT:-$ROOT/build/speed}
LOADGEN=$ROOT/build/bench/unixload
BLOB_BYTES=65536
SMALL=/iserver/accounts
BLOB="/iserver/__blob?bytes=$BLOB_BYTES"

say() { printf 'speed: %s\n' "$*" >&2; }
die() {
	say "$*"
	exit 1
}

# --- what it needs: Debian packages, like bench/run.sh ---------------------
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
deps() {
	bench_deps valgrind:valgrind strace:strace nginx-light:nginx wrk:wrk \
	    openssl:openssl curl:curl python3:python3
}
deps
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$BIN" ] || die "$BIN is not built (make all)"
# make rebuilds it when bench/unixload.c is newer
make -C "$ROOT" --no-print-directory build/bench/unixload >&2 ||
    die "could not build $LOADGEN"

# --- processes, stopped by PID ------------------------------------------------
T=
UP_PID=
BD_PID=
NX_PID=
ST_PID=

# valgrind writes its profile on the way out: give it time
stop_pid() { bench_stop "$1" 300; }

cleanup() {
	stop_pid "$ST_PID"
	stop_pid "$BD_PID"
	stop_pid "$NX_PID"
	stop_pid "$UP_PID"
	ST_PID='' BD_PID='' NX_PID='' UP_PID=''
	if [ -n "$T" ]; then
		if [ "${SPEED_KEEP:-0}" = 1 ]; then
			say "kept $T"
		else
			rm -rf "$T"
		fi
		T=
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# kv NAME LINE: a value from unixload's "name=value ..." line.
kv() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

T=$(mktemp -d "${TMPDIR:-/tmp}/brokerd-speed.XXXXXX")
mkdir -p "$T/up/www" "$T/bd" "$T/nx" "$T/wrk" "$T/prof"
KEY=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
printf '%s\n' "$KEY" >"$T/key"
START=$(date +%s)
LOAD=$(cut -d ' ' -f 1-3 /proc/loadavg 2>/dev/null || echo unknown)

# --- the fast upstream: nginx, TLS, fixed answers ------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
    -keyout "$T/up/key.pem" -out "$T/up/cert.pem" 2>"$T/up/openssl.err" ||
    die "openssl req failed: $(cat "$T/up/openssl.err")"
FP=$(openssl x509 -noout -fingerprint -sha256 -in "$T/up/cert.pem" |
    sed 's/^.*=//')
head -c "$BLOB_BYTES" /dev/zero | tr '\0' x >"$T/up/www/blob"
UP_PORT=$(free_port)
UP_STATUS=$(free_port)
if [ -n "$CIPHERS" ]; then
	ciph="ssl_ciphers $CIPHERS; ssl_prefer_server_ciphers on;"
else
	ciph=
fi
sed -e "s|@TMP@|$T/up|g" -e "s|@PORT@|$UP_PORT|g" \
    -e "s|@STATUSPORT@|$UP_STATUS|g" -e "s|@WORKERS@|1|g" \
    -e "s|^#@USER@$|master_process off;|" \
    -e "s|^\([[:space:]]*\)#@CIPHERS@$|\1$ciph|" \
    "$ROOT/bench/upstream.conf.in" >"$T/up/upstream.conf"
"$NGINX" -p "$T/up/" -c "$T/up/upstream.conf" -e "$T/up/error.log" \
    2>"$T/up/stderr" &
UP_PID=$!
up_ok() {
	curl -sf -o /dev/null "http://127.0.0.1:$UP_STATUS/status"
}
wait_until 5 up_ok || {
	cat "$T/up/stderr" "$T/up/error.log" >&2 2>/dev/null || true
	die "the fast upstream (nginx) did not start"
}
# up_count: requests the upstream has answered (stub_status; the status
# request itself counts one, subtracted by the caller).
up_count() {
	curl -sS "http://127.0.0.1:$UP_STATUS/status" |
	    awk 'NR == 3 { print $3 }'
}
say "fast upstream on 127.0.0.1:$UP_PORT (nginx, TLS, pin $FP)"

# --- the front ends: started, restarted with a wrapper (valgrind) ---------------
BD_PORT=$(free_port)
BD_SOCK=$T/bd/brokerd.sock
cp "$T/key" "$T/bd/key"
cat >"$T/bd/brokerd.yaml" <<EOF
listen:
  unix: { path: "$BD_SOCK", mode: "0600", group: null }
  tcp: 127.0.0.1:$BD_PORT
gateway:
  url: https://127.0.0.1:$UP_PORT
  tls: { pin_sha256: "$FP" }
  pool: $POOL
session:
  status_file: "$T/bd/status"
  check_interval_s: 3600
  tickle_interval_s: 300
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

NX_PORT=$(free_port)
NX_SOCK=$T/nx/nginx.sock
# One process (master_process off): the same PID for valgrind, strace and
# /proc/PID/stat; brokerd is one event loop too.
# The key goes in by a sed script file (printf is built in): never in argv.
printf 's|@KEY@|%s|g\n' "$KEY" >"$T/nx/key.sed"
sed -f "$T/nx/key.sed" -e "s|@TMP@|$T/nx|g" -e "s|@GWPORT@|$UP_PORT|g" \
    -e "s|@PORT@|$NX_PORT|g" -e "s|@WORKERS@|1|g" \
    -e "s|^#@USER@$|master_process off;|" \
    -e "s|^\([[:space:]]*\)#@UNIX@$|\1listen unix:$NX_SOCK;|" \
    "$ROOT/bench/nginx.conf.in" >"$T/nx/nginx.conf"

# load ARGS...: bench/unixload with the key and no-cache; prints its line.
load() {
	"$LOADGEN" -k "$T/key" -N "$@"
}
# probe NAME TRANSPORT-ARGS: a GET of each answer must come back 200.
probe() {
	name=$1
	shift
	# (sh has no locals: not "p", which the callers' loops use)
	for probe_path in "$SMALL" "$BLOB"; do
		r=$(load "$@" -c 1 -n 1 "$probe_path" 2>&1) || true
		if [ "$(kv requests "$r")" != 1 ] || [ "$(kv errors "$r")" != 0 ]; then
			say "$name: GET $probe_path: $r"
			return 1
		fi
	done
}

# suite NAME TRANSPORT-ARGS: the TLS suite the front end's upstream
# connection negotiated, from the upstream's log of /__suite.
suite() {
	name=$1
	shift
	load "$@" -c 1 -n 1 /iserver/__suite >/dev/null 2>&1 || true
	sleep 0.2
	s=$(tail -n 1 "$T/up/suite.log" 2>/dev/null)
	fig "suite/$name" "${s:-unknown}"
}

# start_bd [WRAPPER...]: brokerd, up, authenticated and forwarding.
start_bd() {
	rm -f "$T/bd/status"
	env -u IBKR_BRIDGE_KEY -u IBKR_BRIDGE_URL -u IBKR_GATEWAY_URL \
	    -u NOTIFY_SOCKET -u LISTEN_FDS -u LISTEN_PID -u LISTEN_FDNAMES \
	    "$@" "$BIN" -c "$T/bd/brokerd.yaml" -f 2>>"$T/bd/log" &
	BD_PID=$!
	bd_up() {
		kill -0 "$BD_PID" 2>/dev/null &&
		    curl -sf -o /dev/null "http://127.0.0.1:$BD_PORT/health"
	}
	wait_until 60 bd_up ||
	    die "brokerd did not start: $(tail -n 3 "$T/bd/log")"
	wait_until 60 has_line "$T/bd/status" 'BROKERD_STATE=authenticated' ||
	    die "brokerd: not authenticated: $(head -n 3 "$T/bd/status" 2>/dev/null)"
	if ! probe brokerd -t "127.0.0.1:$BD_PORT" ||
	    ! probe brokerd -u "$BD_SOCK"; then
		die "brokerd does not forward (see above)"
	fi
	suite brokerd -t "127.0.0.1:$BD_PORT"
}
start_nx() {
	"$@" "$NGINX" -p "$T/nx/" -c "$T/nx/nginx.conf" -e "$T/nx/error.log" \
	    2>>"$T/nx/stderr" &
	NX_PID=$!
	nx_up() {
		kill -0 "$NX_PID" 2>/dev/null &&
		    curl -s -o /dev/null "http://127.0.0.1:$NX_PORT/"
	}
	wait_until 60 nx_up || {
		cat "$T/nx/stderr" "$T/nx/error.log" >&2 2>/dev/null || true
		die "nginx did not start"
	}
	if ! probe nginx -t "127.0.0.1:$NX_PORT" ||
	    ! probe nginx -u "$NX_SOCK"; then
		die "nginx does not forward (see above)"
	fi
	suite nginx -t "127.0.0.1:$NX_PORT"
}
stop_bd() {
	stop_pid "$BD_PID"
	BD_PID=
}
stop_nx() {
	stop_pid "$NX_PID"
	NX_PID=
}
# addr, sock, pid_of NAME: the front end's TCP address, Unix socket, PID
addr() { if [ "$1" = brokerd ]; then echo "127.0.0.1:$BD_PORT"; else echo "127.0.0.1:$NX_PORT"; fi; }
sock() { if [ "$1" = brokerd ]; then echo "$BD_SOCK"; else echo "$NX_SOCK"; fi; }
pid_of() { if [ "$1" = brokerd ]; then echo "$BD_PID"; else echo "$NX_PID"; fi; }

FIG=$T/figures
: >"$FIG"
# fig KEY VALUE: one figure for the report
fig() { printf '%s\t%s\n' "$1" "$2" >>"$FIG"; }
get() { awk -F '\t' -v k="$1" '$1 == k { v = $2 } END { print v }' "$FIG"; }

# counted NAME PATH: N requests over TCP, checked against the upstream's
# count (each must have reached it: no cache, no coalescing).
counted() {
	u0=$(up_count)
	r=$(load -t "$(addr "$1")" -c "$CONNS" -n "$N" "$2")
	u1=$(up_count)
	n=$(kv requests "$r")
	e=$(kv errors "$r")
	reached=$((u1 - u0 - 1))
	if [ "$n" != "$N" ] || [ "$e" != 0 ]; then
		die "$1: $N requests asked, got: $r"
	fi
	if [ "$reached" -lt "$N" ]; then
		die "$1: only $reached of $N requests reached the upstream"
	fi
}

# --- instructions per request: callgrind, counters zeroed after a warm-up --------
# cg_top OPTION DUMP: the 15 biggest functions, without the frames that
# hold 100% (the stack when the counters were zeroed).
cg_top() {
	callgrind_annotate --threshold=100 "$1" "$2" 2>/dev/null |
	    awk '/^Ir +file:function/ { on = 1; getline; next }
	    on && /^ *[0-9,]+ \( *[0-9.]+%\)/ && !/\(100\.0%\)/ { print }' |
	    head -n 15
}
# callgrind NAME PATH CASE
callgrind() {
	cg=$T/prof/$1-$3.cg
	w="valgrind --tool=callgrind --callgrind-out-file=$cg --dump-instr=no"
	# shellcheck disable=SC2086
	if [ "$1" = brokerd ]; then start_bd $w; else start_nx $w; fi
	load -t "$(addr "$1")" -c "$CONNS" -n "$WARM" "$2" >/dev/null
	callgrind_control -z "$(pid_of "$1")" >"$T/prof/cgctl" 2>&1 ||
	    die "callgrind_control -z: $(cat "$T/prof/cgctl")"
	counted "$1" "$2"
	callgrind_control -d "$(pid_of "$1")" >"$T/prof/cgctl" 2>&1 ||
	    die "callgrind_control -d: $(cat "$T/prof/cgctl")"
	if [ "$1" = brokerd ]; then stop_bd; else stop_nx; fi
	# The dump after the zeroing is the first numbered one.
	dump=$(find "$T/prof" -name "$1-$3.cg.*" | sort | head -n 1)
	[ -n "$dump" ] || die "$1: no callgrind dump"
	ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p; s/^summary: *\([0-9]*\).*/\1/p' \
	    "$dump" | head -n 1)
	per=$(awk -v a="$ir" -v n="$N" 'BEGIN { printf "%.0f\n", a / n }')
	fig "ir/$1/$3" "$per"
	mkdir -p "$OUT"
	{
		echo "# $1, $3 answer: $N requests, $CONNS connections," \
		    "$per instructions/request"
		# After the zeroing, the frames that were on the stack (main,
		# the event loop) show the whole total as "self": left out.
		echo "## inclusive, top 15"
		cg_top --inclusive=yes "$dump"
		echo
		echo "## self, top 15"
		cg_top --inclusive=no "$dump"
	} >"$OUT/callgrind-$1-$3.txt"
	cp "$dump" "$OUT/callgrind.out.$1-$3"
	say "$(printf '%-8s %-5s %8s instructions/request' "$1" "$3" "$per")"
}

# --- system calls per request: strace -c -f on the running process ---------------
# strace_run NAME PATH CASE (the front end is running)
strace_run() {
	st=$T/prof/$1-$3.strace
	load -t "$(addr "$1")" -c "$CONNS" -n "$WARM" "$2" >/dev/null
	# a file of its own: an older one's "attached" must not be read
	err=$T/prof/$1-$3.strace.err
	strace -c -f -o "$st" -p "$(pid_of "$1")" 2>"$err" &
	ST_PID=$!
	# strace is attached once it has said so
	wait_until 10 has_line "$err" 'attached' ||
	    die "strace did not attach: $(cat "$err")"
	counted "$1" "$2"
	# TERM, not INT: a background job of sh may start with INT ignored;
	# stop_pid ends with KILL if it does not go.
	stop_pid "$ST_PID"
	ST_PID=
	[ -s "$st" ] || die "strace wrote no summary: $(cat "$err")"
	calls=$(awk '$NF == "total" { print $4 }' "$st")
	per=$(awk -v a="$calls" -v n="$N" 'BEGIN { printf "%.2f\n", a / n }')
	fig "sys/$1/$3" "$per"
	mkdir -p "$OUT"
	{
		echo "# $1, $3 answer: $N requests, $CONNS connections," \
		    "$per system calls/request"
		awk -v n="$N" '$4 ~ /^[0-9]+$/ && $NF != "total" {
		    printf "%-16s %8.2f\n", $NF, $4 / n }' "$st" | sort -k2 -rn
	} >"$OUT/strace-$1-$3.txt"
	fig "sysb/$1/$3" "$(awk -v n="$N" '$4 ~ /^[0-9]+$/ &&
	    $NF != "total" && $4 / n >= 0.05 {
	    printf "%s %.2f, ", $NF, $4 / n }' "$st" | sed 's/, $//')"
	say "$(printf '%-8s %-5s %8s system calls/request' "$1" "$3" "$per")"
}

# --- CPU microseconds per request: utime + stime from /proc/PID/stat ------------
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
cpu_run() {
	load -t "$(addr "$1")" -c "$CONNS" -n "$WARM" "$2" >/dev/null
	pid=$(pid_of "$1")
	t0=$(ticks "$pid")
	counted "$1" "$2"
	t1=$(ticks "$pid")
	hz=$(getconf CLK_TCK)
	per=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v n="$N" \
	    'BEGIN { printf "%.1f\n", (b - a) / hz * 1e6 / n }')
	fig "cpu/$1/$3" "$per"
	say "$(printf '%-8s %-5s %8s CPU us/request' "$1" "$3" "$per")"
}
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# of it, the process's own memory (heap, stacks, buffers); the rest is
# mapped files: libraries' pages, shared with every process that maps them
rss_anon() { awk '/^RssAnon:/ { print $2 }' "/proc/$1/status"; }

if [ "$MODE" = profile ]; then
	CASES=${SPEED_CASES:-small}
else
	CASES="small blob"
fi
# path_of CASE: the request path of a case
path_of() { if [ "$1" = small ]; then echo "$SMALL"; else echo "$BLOB"; fi; }
# each_case FN: FN FRONT PATH CASE for every case, brokerd then nginx
each_case() {
	for c in $CASES; do
		count "$c"
		for f in brokerd nginx; do
			"$1" "$f" "$(path_of "$c")" "$c"
		done
	done
}
each_case callgrind
start_bd
start_nx
each_case strace_run

if [ "$MODE" = profile ]; then
	for c in $CASES; do
		count "$c"
		if [ "$c" = small ]; then a="small answer"; else a="64 KiB answer"; fi
		echo
		printf '%-28s %10s %10s\n' "$a, $N requests" brokerd nginx
		printf '%-28s %10s %10s\n' "instructions/request" \
		    "$(get "ir/brokerd/$c")" "$(get "ir/nginx/$c")"
		printf '%-28s %10s %10s\n' "system calls/request" \
		    "$(get "sys/brokerd/$c")" "$(get "sys/nginx/$c")"
		echo "brokerd: $(get "sysb/brokerd/$c")"
		echo "nginx:   $(get "sysb/nginx/$c")"
	done
	echo "TLS to the upstream: brokerd $(get suite/brokerd), nginx $(get suite/nginx)"
	echo "profiles (callgrind_annotate top 15, strace per call) in $OUT"
	exit 0
fi

each_case cpu_run

# --- paired alternating rounds: req/s, p50, p99 -----------------------------------
printf 'wrk.headers["X-Bridge-Key"] = "%s"\n' "$KEY" >"$T/wrk/nocache.lua"
printf 'wrk.headers["Cache-Control"] = "no-cache"\n' >>"$T/wrk/nocache.lua"
to_ms() {
	awk '{ v = $1 + 0; u = $1; sub(/^[0-9.]+/, "", u);
	    if (u == "us") v /= 1000; else if (u == "s") v *= 1000;
	    else if (u == "m") v *= 60000;
	    printf "%.3f\n", v }'
}
ROWS=$T/rounds
: >"$ROWS"
# one ROUND NAME TRANSPORT CASE PATH: a line "round name transport case
# rps p50 p99 errors" in ROWS
one() {
	if [ "$3" = tcp ] && [ "$TCP_LOAD" = wrk ]; then
		o=$T/wrk/out
		timeout $((SECS + 30)) wrk -t1 -c"$CONNS" -d"${SECS}s" --latency \
		    -s "$T/wrk/nocache.lua" "http://$(addr "$2")$5" >"$o" 2>&1 ||
		    true
		rps=$(awk '/^Requests\/sec:/ { print $2 }' "$o")
		p50=$(awk '$1 == "50%" { print $2 }' "$o" | to_ms)
		p99=$(awk '$1 == "99%" { print $2 }' "$o" | to_ms)
		bad=$(awk '/Non-2xx or 3xx/ { n += $NF }
		    /Socket errors/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
		    END { print n + 0 }' "$o")
	else
		if [ "$3" = tcp ]; then
			r=$(load -t "$(addr "$2")" -c "$CONNS" -d "$SECS" "$5")
		else
			r=$(load -u "$(sock "$2")" -c "$CONNS" -d "$SECS" "$5")
		fi
		rps=$(kv rps "$r")
		p50=$(kv p50_ms "$r")
		p99=$(kv p99_ms "$r")
		bad=$(kv errors "$r")
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" \
	    "${rps:-0}" "${p50:--}" "${p99:--}" "${bad:-0}" >>"$ROWS"
	say "$(printf 'round %s %-7s %-4s %-5s %10s req/s  p50 %7s ms  p99 %7s ms  errors %s' \
	    "$1" "$2" "$3" "$4" "$rps" "$p50" "$p99" "$bad")"
}
# warm-up: a short run of each
for f in brokerd nginx; do
	load -t "$(addr "$f")" -c "$CONNS" -d 1 "$SMALL" >/dev/null
done
i=1
while [ "$i" -le "$ROUNDS" ]; do
	for t in tcp unix; do
		for c in small blob; do
			p=$(path_of "$c")
			one "$i" brokerd "$t" "$c" "$p"
			one "$i" nginx "$t" "$c" "$p"
		done
	done
	i=$((i + 1))
done
fig rss/brokerd "$(rss "$BD_PID")"
fig rss/nginx "$(rss "$NX_PID")"
fig rss_anon/brokerd "$(rss_anon "$BD_PID")"
fig rss_anon/nginx "$(rss_anon "$NX_PID")"
UP_TOTAL=$(up_count)

# summary TRANSPORT CASE: median and quartiles of brokerd/nginx req/s over
# the rounds, and each one's median req/s, p50 and p99; then the median of
# the rounds' brokerd/nginx p99 (paired as req/s is: a round that another
# program on the machine disturbed moves both of its figures).
summary() {
	awk -F '\t' -v t="$1" -v c="$2" '
	function sort(a, n,   i, j, x) {
		for (i = 2; i <= n; i++) {
			x = a[i]
			for (j = i - 1; j >= 1 && a[j] > x; j--)
				a[j + 1] = a[j]
			a[j + 1] = x
		}
	}
	# quantile of a sorted array, linear between ranks
	function q(a, n, p,   h, lo) {
		if (n == 0)
			return 0
		h = (n - 1) * p + 1
		lo = int(h)
		return lo >= n ? a[n] : a[lo] + (h - lo) * (a[lo + 1] - a[lo])
	}
	$3 == t && $4 == c {
		if ($2 == "brokerd") { br[$1] = $5; bp[$1] = $7; b50[++nb] = $6; b99[nb] = $7; brs[nb] = $5 }
		else { nr[$1] = $5; np[$1] = $7; n50[++nn] = $6; n99[nn] = $7; nrs[nn] = $5 }
	}
	END {
		k = 0
		m = 0
		for (r in br)
			if (r in nr && nr[r] > 0)
				ratio[++k] = br[r] / nr[r]
		for (r in bp)
			if (r in np && np[r] > 0)
				pr[++m] = bp[r] / np[r]
		sort(ratio, k); sort(brs, nb); sort(nrs, nn); sort(pr, m)
		sort(b50, nb); sort(b99, nb); sort(n50, nn); sort(n99, nn)
		printf "%.0f\t%.0f\t%.2f\t%.2f-%.2f\t%.3f\t%.3f\t%.3f\t%.3f\t%.2f\n",
		    q(brs, nb, .5), q(nrs, nn, .5), q(ratio, k, .5),
		    q(ratio, k, .25), q(ratio, k, .75), q(b50, nb, .5),
		    q(n50, nn, .5), q(b99, nb, .5), q(n99, nn, .5), q(pr, m, .5)
	}' "$ROWS"
}

report() {
	echo "## Speed (issue 14)"
	echo
	# Other work (builds, tests) moves req/s and CPU time, not the counts.
	if awk -v l="${LOAD%% *}" 'BEGIN { exit !(l + 0 >= 0.5) }'; then
		echo "**Noisy run**: the machine was busy (load average $LOAD before it):"
		echo "instructions and system calls per request hold; req/s, latency and CPU time are indicative."
		echo
	fi
	echo "\`sh bench/speed.sh\` (\`make bench\`): brokerd against the nginx bridge, with a"
	echo "fast upstream: nginx serving the simulator's fixed answers over TLS"
	echo "(bench/upstream.conf.in), so the front ends and not the Gateway are measured. Every"
	echo "request carries \`Cache-Control: no-cache\` and reached the upstream (checked with its"
	echo "stub_status count)."
	echo
	echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
	echo "- brokerd's code (brokerd/) as of commit $(git -C "$ROOT" log -1 --format=%h -- brokerd 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- brokerd 2>/dev/null || echo ' with local changes'); binary $(echo "$BIN" | sed "s|^$ROOT/||")"
	echo "- machine: nproc $(nproc), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(uname -srm)"
	echo "- versions: $("$BIN" -V 2>&1 | head -n 1); $("$NGINX" -v 2>&1 | sed 's/^nginx version: //')" \
	    "(one process); $(valgrind --version); $(strace -V | head -n 1)"
	echo "- load average before the run: $LOAD; after: $(cut -d ' ' -f 1-3 /proc/loadavg)" \
	    "(other work on the machine moves req/s, not instruction or system call counts)"
	echo "- TLS to the upstream (from its log): brokerd $(get suite/brokerd), nginx $(get suite/nginx)$(if [ -n "$CIPHERS" ]; then echo "; upstream ssl_ciphers $CIPHERS, server preferred"; else echo "; the client's order"; fi)"
	echo "- brokerd: \`gateway.pool: $POOL\`, \`limits.gateway_rate: off\`, routes with \`cache_ms: 0\`," \
	    "\`log.level: warn\`; nginx: bench/nginx.conf.in, \`master_process off\`, upstream \`keepalive 32\`"
	echo
	echo "### Per request ($REQS requests over TCP, 64 KiB: $BLOB_REQS; $CONNS connections; after $WARM warm-up requests)"
	echo
	echo "| | brokerd small | nginx small | brokerd 64 KiB | nginx 64 KiB |"
	echo "|---|---:|---:|---:|---:|"
	echo "| user-space instructions (callgrind) | $(get ir/brokerd/small) | $(get ir/nginx/small) | $(get ir/brokerd/blob) | $(get ir/nginx/blob) |"
	echo "| system calls (strace -c -f) | $(get sys/brokerd/small) | $(get sys/nginx/small) | $(get sys/brokerd/blob) | $(get sys/nginx/blob) |"
	echo "| CPU us (/proc/PID/stat utime+stime) | $(get cpu/brokerd/small) | $(get cpu/nginx/small) | $(get cpu/brokerd/blob) | $(get cpu/nginx/blob) |"
	echo
	echo "System calls per small request: brokerd $(get sysb/brokerd/small); nginx $(get sysb/nginx/small)."
	echo
	echo "### Paired rounds: $ROUNDS rounds of ${SECS} s, brokerd then nginx, $CONNS connections"
	echo
	if [ "$TCP_LOAD" = wrk ]; then
		echo "TCP: \`wrk -t1 -c$CONNS -d${SECS}s --latency -s nocache.lua\`; Unix socket:" \
		    "\`build/bench/unixload -u SOCK -c$CONNS -d$SECS -k key -N\` (bench/unixload.c)."
	else
		echo "TCP and Unix socket: \`build/bench/unixload -t ADDR|-u SOCK -c$CONNS -d$SECS -k key -N\`" \
		    "(bench/unixload.c)."
	fi
	echo
	echo "| transport | answer | brokerd req/s | nginx req/s | brokerd/nginx (median) | quartiles | p50 ms brokerd / nginx | p99 ms brokerd / nginx | p99 brokerd/nginx (median of rounds) |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
	for t in tcp unix; do
		for c in small blob; do
			if [ "$c" = small ]; then a="small (~240 B)"; else a="64 KiB"; fi
			summary "$t" "$c" | {
				IFS="$(printf '\t')" read -r br nr med iq b50 n50 b99 n99 p99r
				echo "| $t | $a | $br | $nr | $med | $iq | $b50 / $n50 | $b99 / $n99 | $p99r |"
			}
		done
	done
	echo
	echo "RSS after the rounds: brokerd $(get rss/brokerd) KiB, nginx $(get rss/nginx) KiB;" \
	    "of it anonymous (heap, buffers; the rest is mapped library files):" \
	    "brokerd $(get rss_anon/brokerd) KiB, nginx $(get rss_anon/nginx) KiB." \
	    "Upstream requests in the whole run: $UP_TOTAL."
	echo "Whole run: $(($(date +%s) - START)) s. Profiles (callgrind_annotate top 15," \
	    "strace per call) are kept in $(echo "$OUT" | sed "s|^$ROOT/||")."
}
report >"$T/report.md"
echo >&2
cat "$T/report.md"
mkdir -p "$OUT"
cp "$T/report.md" "$OUT/speed.md"
cp "$ROWS" "$OUT/rounds.tsv"
if [ "$RESULTS" != - ]; then
	# Replace the Speed section (up to the next "## ", so that notes kept
	# by hand follow under a heading of their own) or append it.
	if [ -f "$RESULTS" ]; then
		awk -v f="$T/report.md" '
		    /^## Speed \(issue 14\)/ { skip = 1; while ((getline l < f) > 0) print l; print ""; next }
		    skip && /^## / { skip = 0 }
		    !skip { print }' "$RESULTS" >"$T/results.md"
		if ! grep -q '^## Speed (issue 14)' "$RESULTS"; then
			{ echo; cat "$T/report.md"; } >>"$T/results.md"
		fi
	else
		cp "$T/report.md" "$T/results.md"
	fi
	cp "$T/results.md" "$RESULTS"
	chmod 644 "$RESULTS"
	say "written to $RESULTS"
fi
