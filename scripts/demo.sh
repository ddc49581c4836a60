#!/bin/sh
# `make demo`: brokerd in front of the bundled Gateway simulator, showing it
# work over the Unix socket and TCP, the status file following the session,
# the shell and Node clients, and two stream subscribers sharing one Gateway
# subscription.  Everything runs in a temporary folder and
# is stopped at the end.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
KEY=demo-key-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
TMP=$(mktemp -d "${TMPDIR:-/tmp}/brokerd-demo.XXXXXX")
GW_PID=
BD_PID=

cleanup() {
	[ -n "$BD_PID" ] && kill "$BD_PID" 2>/dev/null && wait "$BD_PID" 2>/dev/null
	[ -n "$GW_PID" ] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }

step "Starting the Gateway simulator (tests/gwsim, HTTPS with a self-signed certificate)"
node tests/gwsim/gwsim.js >"$TMP/gwsim.json" 2>"$TMP/gwsim.log" &
GW_PID=$!
i=0
while [ ! -s "$TMP/gwsim.json" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
GW=$(cat "$TMP/gwsim.json")
jget() { printf '%s' "$GW" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[process.argv[1]]))' "$1"; }
GW_PORT=$(jget port)
GW_CTL=$(jget control)
PIN=$(build/brokerd gateway-fingerprint "https://127.0.0.1:$GW_PORT" 2>/dev/null)
echo "simulator on https://127.0.0.1:$GW_PORT; brokerd gateway-fingerprint says $PIN"

step "Starting brokerd (Unix socket $TMP/brokerd.sock, TCP on a free loopback port)"
umask 077
printf '%s\n' "$KEY" >"$TMP/key"
cat >"$TMP/brokerd.yaml" <<YAML
listen:
  unix: { path: $TMP/brokerd.sock, mode: "0660", group: null }
  tcp: 127.0.0.1:0
gateway:
  url: https://127.0.0.1:$GW_PORT
  tls: { pin_sha256: "$PIN" }
session:
  status_file: $TMP/status
  check_interval_s: 1
keys:
  - { name: demo, key_file: $TMP/key, scopes: [read, trade] }
trading: { halt_file: $TMP/halt }
YAML
umask 022
build/brokerd -t -c "$TMP/brokerd.yaml"
build/brokerd -f -c "$TMP/brokerd.yaml" 2>"$TMP/brokerd.log" &
BD_PID=$!
i=0
until grep -q 'brokerd: ready' "$TMP/brokerd.log" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$BD_PID" 2>/dev/null; then
		cat "$TMP/brokerd.log"; exit 1
	fi
	sleep 0.1
done
PORT=$(sed -n 's/.*listening on tcp 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/brokerd.log" | head -1)
sed 's/^/  log: /' "$TMP/brokerd.log"
SOCK=$TMP/brokerd.sock
printf 'X-Bridge-Key: %s\n' "$KEY" >"$TMP/hdr"

step "GET /health over the Unix socket and over TCP"
show "curl --unix-socket $SOCK http://localhost/health"
curl -sS --unix-socket "$SOCK" http://localhost/health; echo
show "curl http://127.0.0.1:$PORT/health"
curl -sS "http://127.0.0.1:$PORT/health"; echo

step "A forwarded call: GET /iserver/accounts through the socket (key from a file, never on argv)"
sleep 1
show "curl --unix-socket $SOCK -H @keyfile http://localhost/iserver/accounts"
curl -sS --unix-socket "$SOCK" -H @"$TMP/hdr" http://localhost/iserver/accounts; echo
show "curl (no key) http://localhost/iserver/accounts"
curl -sS --unix-socket "$SOCK" http://localhost/iserver/accounts; echo

step "The status file follows the Gateway session"
grep -E 'STATE|SEQ' "$TMP/status"
echo "-- the simulator's brokerage session drops (connected, not authenticated; re-auth refused)"
curl -sS -o /dev/null -X POST -d '{"authenticated":false,"reauth_works":false}' "http://127.0.0.1:$GW_CTL/state"
clients/shell/ibkr-wait -t 5 -f "$TMP/status" unauthenticated && grep -E 'STATE|SEQ' "$TMP/status"
show "ibkr-status -f status"; clients/shell/ibkr-status -f "$TMP/status" || true
echo "-- IBeam logs in again"
curl -sS -o /dev/null -X POST -d '{"authenticated":true,"reauth_works":true}' "http://127.0.0.1:$GW_CTL/state"
clients/shell/ibkr-wait -t 5 -f "$TMP/status" && grep -E 'STATE|SEQ' "$TMP/status"
show "ibkr-status -f status"; clients/shell/ibkr-status -f "$TMP/status"

step "ibkr-call (shell client)"
show "BROKERD_KEY=... ibkr-call -s $SOCK /portfolio/DU123456/positions/0"
BROKERD_KEY=$KEY clients/shell/ibkr-call -s "$SOCK" /portfolio/DU123456/positions/0; echo

step "brokerd-client (Node)"
BROKERD_SOCKET=$SOCK IBKR_BRIDGE_KEY=$KEY node --input-type=module -e "
import { Bridge } from '$ROOT/clients/node/index.js';
const b = new Bridge();
console.log('health     ', await b.health());
console.log('authStatus ', await b.authStatus());
console.log('accounts   ', JSON.stringify(await b.accounts()));
"

step "Streaming: two subscribers on one conid share ONE Gateway subscription"
curl -sS -o /dev/null -X POST -d '{"ws_tick_ms":500}' "http://127.0.0.1:$GW_CTL/behaviour"
show "ibkr-stream -s $SOCK -k keyfile -n 6 smd 265598 31,84   (over the Unix socket)"
show "ibkr-stream -u http://127.0.0.1:$PORT -k keyfile -n 6 smd 265598 31,84   (over TCP)"
clients/shell/ibkr-stream -s "$SOCK" -k "$TMP/key" -n 6 -m 20 smd 265598 31,84 >"$TMP/s1" &
S1=$!
clients/shell/ibkr-stream -u "http://127.0.0.1:$PORT" -k "$TMP/key" -n 6 -m 20 smd 265598 31,84 >"$TMP/s2" &
S2=$!
i=0
until [ "$(grep -c smd "$TMP/s1" 2>/dev/null)" -ge 2 ] && [ "$(grep -c smd "$TMP/s2" 2>/dev/null)" -ge 2 ]; do
	i=$((i + 1)); [ $i -gt 150 ] && break; sleep 0.1
done
echo "-- the simulator's counters while both are subscribed:"
# shellcheck disable=SC2016 # JavaScript, not the shell's
curl -sS "http://127.0.0.1:$GW_CTL/counters" | node -e '
let s = ""; process.stdin.on("data", (d) => s += d).on("end", () => {
	const c = JSON.parse(s);
	const smd = c.ws_subscriptions.filter((m) => m.msg.startsWith("smd+"));
	console.log(`  Gateway WebSockets opened: ${c.ws_connections}; smd subscriptions upstream: ${smd.length}`);
	for (const m of smd) console.log(`    ${m.msg}`);
});'
wait "$S1" "$S2" || true
echo "-- subscriber 1 (socket):"; sed 's/^/  /' "$TMP/s1"
echo "-- subscriber 2 (TCP):"; sed 's/^/  /' "$TMP/s2"
# shellcheck disable=SC2016 # JavaScript, not the shell's
node -e '
const fs = require("fs");
const read = (f) => fs.readFileSync(f, "utf8").split("\n").filter(Boolean).map(JSON.parse)
    .filter((m) => m.topic === "smd+265598");
const a = read(process.argv[1]), b = read(process.argv[2]);
const both = a.findLast((m) => b.some((n) => n._updated === m._updated && n["31"] === m["31"]));
console.log(both ? `-- one tick reached both: last ${both["31"]} at _updated ${both._updated}` :
    "-- no common tick seen");' "$TMP/s1" "$TMP/s2"

step "Done: stopping brokerd (SIGTERM) and the simulator"
kill "$BD_PID"; wait "$BD_PID" || true; BD_PID=
grep -E 'STATE' "$TMP/status"
