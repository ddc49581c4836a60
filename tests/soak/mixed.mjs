#!/usr/bin/env node
/*
 * The mixed soak: reads, snapshots and orders through both listeners while
 * the Gateway simulator flaps authentication, stalls, restarts with the
 * same certificate and once with a new one, with SIGHUP reloads between.
 * It ends with an account of everything sent and a line `N passed, N failed`
 * over its checks:
 *   - every request sent got an HTTP answer (none lost, none left hanging);
 *   - every order is either at the simulator exactly once or was answered
 *     with an error to its client; no order reached the simulator twice;
 *   - the simulator answered no 429 and counted no pacing violation;
 *   - descriptors and heap at the end are what they were at the start.
 *
 *   node tests/soak/mixed.mjs [--seconds 30] [--clients 24]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startGwsim, startBrokerd, sleep, waitFor } from '../lib/harness.mjs';

const opt = { seconds: 30, clients: 24 };
for (let i = 2; i < process.argv.length; i += 2) {
	const k = process.argv[i].replace(/^--/, '');
	if (!(k in opt) || !/^\d+$/.test(process.argv[i + 1] || '')) {
		console.error('usage: mixed.mjs [--seconds N] [--clients N]');
		process.exit(64);
	}
	opt[k] = Number(process.argv[i + 1]);
}

const ACCT = 'DU123456';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'brokerd-soak-'));
const certA = path.join(work, 'gw-a');
const certB = path.join(work, 'gw-b');
fs.mkdirSync(certA);
fs.mkdirSync(certB);

/* What the simulators saw, summed over their lives (each restart is new). */
const seen = { orders: new Map(), rate_limited: 0, violations: {},
    requests: 0, lives: 0, max1s: 0 };
let gw = null;
let gwPort = 0;

async function gwStart(dir) {
	const g = await startGwsim({ port: gwPort, args: ['--cert-dir', dir] });
	gwPort = g.port;
	await g.state({ questions: 0 });
	await g.behaviour({ endpoint_limits: true, window_slack_ms: 0,
	    delay_ms: 5 });
	seen.lives++;
	return g;
}

async function gwCollect(g) {
	const c = await g.counters();
	for (const o of c.orders) {
		const id = String(o.cOID);
		seen.orders.set(id, (seen.orders.get(id) || 0) + 1);
	}
	seen.rate_limited += c.rate_limited;
	seen.max1s = Math.max(seen.max1s, c.max_per_1000ms || 0);
	seen.requests += c.total;
	for (const [k, v] of Object.entries(c.pacing_violations))
		seen.violations[k] = (seen.violations[k] || 0) + v;
}

async function gwRestart(dir) {
	await gwCollect(gw);
	await gw.stop();
	gw = await gwStart(dir);
}

function procFigures(pid) {
	const fds = fs.readdirSync(`/proc/${pid}/fd`).length;
	const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
	const rss = Number((st.match(/VmRSS:\s+(\d+)/) || [0, 0])[1]);
	return { fds, rss_kb: rss };
}

async function heapBytes(bd) {
	const r = await bd.request({ path: '/metrics' });
	const m = r.body.toString().match(/^brokerd_heap_bytes (\d+)/m);
	return m ? Number(m[1]) : null;
}

/* ---------- the load ---------- */

const tally = { sent: 0, answered: 0, lost: 0, byStatus: {}, byKind: {} };
const orders = new Map();	/* cOID -> {status, body} */
let running = true;
let nOrder = 0;

function pick(i, n) {
	const r = (i * 7919 + n * 104729) % 100;
	if (r < 45)
		return 'read';
	if (r < 80)
		return 'snapshot';
	return 'order';
}

async function one(bd, i, n) {
	const kind = pick(i, n);
	const tcp = (i + n) % 2 === 0;
	let o;
	if (kind === 'read') {
		const p = ['/iserver/accounts', '/portfolio/accounts',
		    `/portfolio/${ACCT}/summary`, '/iserver/account/orders'][n % 4];
		o = { path: p };
	} else if (kind === 'snapshot') {
		o = { path: `/iserver/marketdata/snapshot?conids=${1000 + i * 1000 +
		    n % 997}&fields=31,84`, headers: { 'cache-control': 'no-cache' } };
	} else {
		const cOID = `soak-${process.pid}-${nOrder++}`;
		o = { method: 'POST', path: `/iserver/account/${ACCT}/orders`,
		    body: { orders: [{ conid: 265598, orderType: 'LMT',
		    price: 100, side: 'BUY', quantity: 1, tif: 'DAY', cOID }] },
		    headers: { 'content-type': 'application/json' }, cOID };
	}
	tally.sent++;
	tally.byKind[kind] = (tally.byKind[kind] || 0) + 1;
	try {
		const r = await bd.request({ ...o, tcp, timeoutMs: 30000 });
		tally.answered++;
		tally.byStatus[r.status] = (tally.byStatus[r.status] || 0) + 1;
		if (o.cOID)
			orders.set(o.cOID, { status: r.status,
			    body: r.body.toString() });
	} catch (e) {
		tally.lost++;
		if (o.cOID)
			orders.set(o.cOID, { status: 0, body: String(e.code) });
		if (tally.lost <= 5)
			console.log(`lost: ${o.method || 'GET'} ${o.path} ` +
			    `(${tcp ? 'tcp' : 'unix'}): ${e.code || e.message}`);
	}
}

async function client(bd, i) {
	for (let n = 0; running; n++) {
		await one(bd, i, n);
		await sleep(20 + (i * 13 + n * 7) % 60);
	}
}

/* ---------- the faults ---------- */

const faults = [];
async function chaos(bd, end) {
	const steps = [
		['auth flap', async () => {
			await gw.state({ authenticated: false });
			await sleep(1500);
			await gw.state({ authenticated: true });
		}],
		['stall', async () => {
			await gw.behaviour({ silent: true });
			await sleep(1500);
			await gw.behaviour({ silent: false });
		}],
		['restart, same certificate', () => gwRestart(certA)],
		['SIGHUP', () => bd.reload(/reload/)],
	];
	let newCert = false;
	for (let k = 0; Date.now() < end - 4000; k++) {
		await sleep(2500);
		if (!newCert && Date.now() > end - (end - start) / 2) {
			newCert = true;
			faults.push('restart, new certificate');
			await gwRestart(certB);
			await sleep(2000);
			faults.push('restart, pinned certificate back');
			await gwRestart(certA);
			continue;
		}
		const [name, f] = steps[k % steps.length];
		faults.push(name);
		await f();
	}
}

/* ---------- run ---------- */

const checks = [];
function check(ok, what) {
	checks.push(ok);
	console.log(`${ok ? 'ok' : 'not ok'} - ${what}`);
}

gw = await gwStart(certA);
fs.mkdirSync(path.join(work, 'bd'));
const bd = await startBrokerd({ gwsim: gw, dir: path.join(work, 'bd'),
    keepDir: true, readyMs: 10000, config: {
	gateway: { timeout_ms: 3000 },
	journal: { file: path.join(work, 'journal.jsonl') },
    } });
await waitFor(async () => (await bd.request({
    path: '/gateway/auth-status' })).json().authenticated,
    { timeoutMs: 10000, what: 'authenticated' });
/* warm up: the pool and the caches exist before the first figures */
for (let i = 0; i < 8; i++)
	await one(bd, i, 0);
await sleep(1500);
const before = { ...procFigures(bd.pid), heap: await heapBytes(bd) };

const start = Date.now();
const end = start + opt.seconds * 1000;
const loops = [];
for (let i = 0; i < opt.clients; i++)
	loops.push(client(bd, i));
const chaosDone = chaos(bd, end);
await sleep(end - Date.now());
running = false;
await Promise.all(loops);
await chaosDone;
await gw.state({ authenticated: true });
await gw.behaviour({ silent: false });
await sleep(2000);
await gwCollect(gw);
const after = { ...procFigures(bd.pid), heap: await heapBytes(bd) };

console.log(`soak: ${opt.seconds} s, ${opt.clients} clients, ` +
    `faults: ${faults.length} (${[...new Set(faults)].join(', ')})`);
console.log(`requests: sent ${tally.sent}, answered ${tally.answered}, ` +
    `lost ${tally.lost}; by kind ${JSON.stringify(tally.byKind)}; ` +
    `by status ${JSON.stringify(tally.byStatus)}`);

let atSimOnce = 0, errored = 0, twice = 0, missing = 0, unaccounted = 0;
for (const [cOID, r] of orders) {
	const n = seen.orders.get(cOID) || 0;
	if (n > 1)
		twice++;
	if (n === 1)
		atSimOnce++;
	else if (r.status >= 400)
		errored++;
	else
		unaccounted++;
	if (r.status >= 200 && r.status < 300 && n !== 1)
		missing++;
}
let unknown = 0;
for (const id of seen.orders.keys())
	if (id.startsWith(`soak-${process.pid}-`) && !orders.has(id))
		unknown++;
console.log(`orders: ${orders.size} sent; at the simulator once ` +
    `${atSimOnce}, answered with an error and not placed ${errored}, ` +
    `twice ${twice}, placed but answered 2xx without being there ` +
    `${missing}, neither ${unaccounted}, placed but never sent ${unknown}`);
console.log(`simulator: ${seen.lives} lives, ${seen.requests} requests, ` +
    `429s ${seen.rate_limited}, most in any 1000 ms ${seen.max1s}, ` +
    `pacing violations ` +
    `${JSON.stringify(seen.violations)}`);
console.log(`brokerd: descriptors ${before.fds} -> ${after.fds}, ` +
    `heap ${before.heap ?? '?'} -> ${after.heap ?? '?'} bytes, ` +
    `RSS ${before.rss_kb} -> ${after.rss_kb} KiB`);

check(tally.lost === 0 && tally.sent === tally.answered,
    'every request sent got an answer');
check(twice === 0 && unaccounted === 0 && missing === 0 && unknown === 0,
    'every order at the simulator once or answered with an error, none twice');
check(seen.rate_limited === 0 &&
    Object.keys(seen.violations).length === 0,
    'no 429 and no pacing violation at the simulator');
/* the pool may hold more kept-alive Gateway connections at one moment
 * than at the other: at most gateway.pool (4) */
check(after.fds <= before.fds + 4, 'no descriptor growth beyond the pool');
check(before.heap !== null && after.heap <= before.heap + 256 * 1024,
    'no heap growth (256 KiB allowed for caches and the jar)');
check(faults.includes('restart, new certificate') &&
    faults.includes('SIGHUP'), 'every kind of fault happened');

await bd.stop();
await gw.stop();
fs.rmSync(work, { recursive: true, force: true });
const pass = checks.filter((c) => c).length;
console.log(`${pass} passed, ${checks.length - pass} failed`);
process.exit(checks.length === pass ? 0 : 1);
