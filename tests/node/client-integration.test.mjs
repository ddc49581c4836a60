/*
 * brokerd-client against the real brokerd (build/brokerd) and the Gateway
 * simulator, over the Unix socket and over TCP: every method, the order
 * reply chain, the snapshot pre-flight, cOID, error codes, timeout, abort,
 * the Next.js handlers, and a Gateway-style client moved to brokerd.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGwsim, startBrokerd, brokerdBuilt, waitFor } from '../lib/harness.mjs';
import { Bridge, BridgeError } from '../../clients/node/index.js';
import { createHandlers } from '../../clients/node/examples/nextjs/src/lib/ibkr-handlers.js';

const ACCT = 'DU123456';
const skip = brokerdBuilt() ? false : 'build/brokerd is not built';
const order = (extra = {}) => ({ conid: 265598, side: 'BUY', orderType: 'LMT',
    price: 150, quantity: 1, tif: 'DAY', ...extra });

describe('brokerd-client against brokerd and the Gateway simulator', { skip }, () => {
	let gw;
	let bd;
	let unix;
	let tcp;

	before(async () => {
		gw = await startGwsim();
		// 8/s: the simulator, like IBKR, counts 10 in any second by arrival
		// time; this suite tests the client, not pacing at the very edge.
		bd = await startBrokerd({ gwsim: gw,
		    config: { gateway: { timeout_ms: 3000 }, limits: { gateway_rate: '8/s' } } });
		unix = new Bridge({ socketPath: bd.socket, key: bd.key, timeoutMs: 5000, env: {} });
		tcp = new Bridge({ url: bd.url, key: bd.key, timeoutMs: 5000, env: {} });
		await unix.waitForAuth({ timeoutMs: 10000, intervalMs: 100 });
	});
	after(async () => {
		unix?.close();
		tcp?.close();
		await bd?.stop();
		await gw?.stop();
	});

	const via = () => [['unix', unix], ['tcp', tcp]];

	test('the environment picks the socket over the URL', async () => {
		const b = new Bridge({ env: { BROKERD_SOCKET: bd.socket, IBKR_BRIDGE_URL: 'http://127.0.0.1:1',
		    IBKR_BRIDGE_KEY: bd.key } });
		assert.deepEqual(await b.accounts().then((a) => a.accounts), [ACCT]);
		b.close();
	});

	test('health and authStatus, over both listeners', async () => {
		assert.notEqual(bd.url, null, 'brokerd has a TCP listener');
		for (const [name, b] of via()) {
			const h = await b.health();
			assert.equal(h.status, 'ok', name);
			const s = await b.authStatus();
			assert.equal(s.authenticated, true, name);
			assert.equal(s.state, 'authenticated', name);
		}
	});

	test('accounts, positions, summary, history', async () => {
		for (const [name, b] of via()) {
			const a = await b.accounts();
			assert.deepEqual(a.accounts, [ACCT], name);
			const p = await b.positions(ACCT);
			assert.ok(Array.isArray(p) && p.length === 3, name);
			assert.ok(p.every((x) => typeof x.conid === 'number'), name);
			const s = await b.summary(ACCT);
			assert.equal(s.netliquidation.amount, 100000, name);
			const h = await b.history(265598, { period: '1d', bar: '1h' });
			assert.ok(Array.isArray(h.data) && h.data.length > 0, name);
		}
		const log = (await gw.counters()).log.filter((x) => x.path.endsWith('/marketdata/history'));
		assert.match(log.at(-1).query, /conid=265598/);
	});

	test('placeOrder follows the two-question chain when confirmed, over both listeners', async () => {
		for (const [name, b] of via()) {
			const before = (await gw.counters()).orders.length;
			const seen = [];
			const res = await b.placeOrder(ACCT, order(), { confirm: (messages, q) => {
				seen.push(...q.messageIds);
				return messages.length > 0;
			} });
			assert.equal(res[0].order_status, 'Submitted', name);
			assert.match(res[0].order_id, /^\d+$/, name);
			assert.deepEqual(seen, ['o163', 'o354'], name);
			const c = await gw.counters();
			assert.equal(c.orders.length, before + 1, name);
			const sent = c.orders.at(-1);
			assert.equal(typeof sent.cOID, 'string', name);
			assert.ok(sent.cOID.length > 0 && sent.cOID.length <= 40, name);
		}
		const ids = (await gw.counters()).orders.map((o) => o.cOID);
		assert.equal(new Set(ids).size, ids.length, 'every cOID differs');
	});

	test('placeOrder sends nothing more when confirm refuses', async () => {
		const before = await gw.counters();
		const e = await unix.placeOrder(ACCT, order(), { confirm: () => false }).catch((x) => x);
		assert.ok(e instanceof BridgeError);
		assert.equal(e.code, 'order_not_confirmed');
		assert.deepEqual(e.question.messageIds, ['o163']);
		const after = await gw.counters();
		assert.equal(after.orders.length, before.orders.length);
		const replies = (c) => Object.entries(c.by_route)
		    .filter(([k]) => k.includes('/iserver/reply/')).reduce((n, [, v]) => n + v, 0);
		assert.equal(replies(after), replies(before));
	});

	test('a reused cOID is refused by the Gateway, not placed twice', async () => {
		const cOID = `it-${process.pid}-${Date.now()}`;
		await unix.placeOrder(ACCT, order({ cOID }), { confirm: () => true });
		const n = (await gw.counters()).orders.length;
		const e = await unix.placeOrder(ACCT, order({ cOID }), { confirm: () => true }).catch((x) => x);
		assert.ok(e instanceof BridgeError);
		assert.equal(e.status, 400);
		assert.equal(e.code, 'gateway_error');
		assert.match(e.message, /already registered/);
		assert.equal(e.cOID, cOID);
		assert.equal((await gw.counters()).orders.length, n);
	});

	test('orders lists what was placed; cancelOrder cancels', async () => {
		const res = await unix.placeOrder(ACCT, order({ cOID: `cx-${Date.now()}` }), { confirm: () => true });
		const id = res[0].order_id;
		const list = await unix.orders();
		assert.ok(list.orders.some((o) => String(o.orderId) === id));
		const c = await unix.cancelOrder(ACCT, id);
		assert.equal(String(c.order_id), id);
		assert.match(c.msg, /submitted/i);
	});

	test('snapshot repeats the pre-flight until the fields arrive', async () => {
		const conid = 400000 + (process.pid % 1000);
		const before = (await gw.counters()).by_route['GET /v1/api/iserver/marketdata/snapshot'] ?? 0;
		const rows = await unix.snapshot([conid], [31, 84], { delayMs: 150 });
		assert.equal(rows.length, 1);
		assert.match(rows[0]['31'], /^\d+\.\d\d$/);
		assert.match(rows[0]['84'], /^\d+\.\d\d$/);
		const after = (await gw.counters()).by_route['GET /v1/api/iserver/marketdata/snapshot'];
		assert.ok(after - before >= 2, `${after - before} calls`);
		// warmed up: one call is enough now
		await unix.snapshot([conid], [31], { delayMs: 150 });
		const again = (await gw.counters()).by_route['GET /v1/api/iserver/marketdata/snapshot'];
		assert.equal(again - after, 1);
	});

	test('brokerd error codes: wrong key, unknown route, request()', async () => {
		const bad = new Bridge({ socketPath: bd.socket, key: 'f'.repeat(32), env: {} });
		const e = await bad.accounts().catch((x) => x);
		assert.equal(e.status, 401);
		assert.equal(e.code, 'unauthorized');
		assert.ok(!e.message.includes('f'.repeat(32)));
		bad.close();
		const nr = await unix.request('GET', '/no/such/route').catch((x) => x);
		assert.equal(nr.status, 404);
		assert.equal(nr.code, 'no_route');
		const st = await unix.request('GET', '/trsrv/stocks', { query: { symbols: 'AAPL' } });
		assert.equal(st.AAPL[0].contracts[0].conid, 265598);
	});

	test('timeout and abort while the Gateway is silent', async () => {
		await gw.behaviour({ silent: true, paths: ['/v1/api/portfolio/'] });
		try {
			let t0 = Date.now();
			const e = await unix.summary(ACCT, { timeoutMs: 300 }).catch((x) => x);
			assert.equal(e.code, 'timeout');
			assert.ok(Date.now() - t0 < 2000);
			const ac = new AbortController();
			setTimeout(() => ac.abort(), 100);
			t0 = Date.now();
			const a = await tcp.positions(ACCT, 0, { signal: ac.signal }).catch((x) => x);
			assert.equal(a.code, 'aborted');
			assert.ok(Date.now() - t0 < 2000);
		} finally {
			await gw.behaviour({ silent: false, paths: null });
		}
		// brokerd keeps serving; its own upstream call gives up after
		// gateway.timeout_ms, and an identical GET meanwhile would share it
		assert.equal((await unix.health()).status, 'ok');
		await waitFor(async () => (await unix.summary(ACCT).catch(() => null)) !== null &&
		    (await unix.positions(ACCT, 0).catch(() => null)) !== null,
		    { timeoutMs: 8000, intervalMs: 200, what: 'summary and positions to answer again' });
	});

	test('the Next.js handlers as plain functions', async () => {
		const h = createHandlers(unix);
		const base = 'http://localhost:3000/api/ibkr';
		const call = async (fn, req) => {
			const r = await fn(req);
			const j = await r.json();
			return { status: r.status, j, why: `${req.method} ${req.url}: ${r.status} ${JSON.stringify(j)}` };
		};
		let r = await call(h.status, new Request(`${base}/status`));
		assert.equal(r.status, 200, r.why);
		assert.deepEqual(r.j, { ok: true, gateway: { authenticated: true } });
		r = await call(h.positions, new Request(`${base}/positions`));
		assert.equal(r.j.accountId, ACCT, r.why);
		assert.equal(r.j.positions?.length, 3, r.why);
		r = await call(h.account, new Request(`${base}/account?accountId=${ACCT}`));
		assert.equal(r.j.summary?.netliquidation?.amount, 100000, r.why);
		r = await call(h.marketdata, new Request(`${base}/marketdata?conids=265598&fields=31,84`));
		assert.match(String(r.j.snapshot?.[0]?.['31']), /^\d+\.\d\d$/, r.why);
		const post = (body) => new Request(`${base}/trade`, { method: 'POST',
		    headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
		r = await call(h.trade, post({ order: order() }));
		assert.equal(r.status, 409, r.why);
		assert.deepEqual(r.j.question?.messageIds, ['o163'], r.why);
		r = await call(h.trade, post({ order: order(), accept: ['o163', 'o354'] }));
		assert.equal(r.status, 200, r.why);
		assert.equal(r.j.result?.[0]?.order_status, 'Submitted', r.why);
	});

	test('a Gateway-style client works by changing its base URL', async () => {
		// what an axios/fetch client written for https://localhost:5000/v1/api does
		const api = (p, init = {}) => fetch(`${bd.url}/v1/api${p}`, { ...init,
		    headers: { authorization: `Bearer ${bd.key}`, ...(init.headers ?? {}) } });
		const r = await api('/iserver/accounts');
		assert.equal(r.status, 200);
		assert.deepEqual((await r.json()).accounts, [ACCT]);
		const p = await api(`/portfolio/${ACCT}/positions/0`);
		assert.equal((await p.json()).length, 3);
	});

	test('not authenticated: fail fast with not_authenticated, then recover', async () => {
		await gw.state({ authenticated: false, reauth_works: false });
		try {
			await waitFor(async () => (await unix.authStatus()).authenticated === false,
			    { timeoutMs: 5000, what: 'brokerd to see the lost session' });
			const e = await unix.accounts().catch((x) => x);
			assert.ok(e instanceof BridgeError);
			assert.equal(e.status, 503);
			assert.equal(e.code, 'not_authenticated');
			const w = await unix.waitForAuth({ timeoutMs: 300, intervalMs: 50 }).catch((x) => x);
			assert.equal(w.code, 'timeout');
			const h = await createHandlers(unix).status(new Request('http://x/api/ibkr/status'));
			assert.equal(h.status, 503);
			assert.equal((await h.json()).ok, false);
		} finally {
			await gw.state({ reauth_works: true });
		}
		// brokerd spaces its own ssodh/init tries (30 s) and forced ones
		// (1 s: a second ask within it is a 429 with Retry-After 1)
		let s = null;
		for (let i = 0; i < 8 && !s; i++) {
			await unix.request('POST', '/gateway/reauthenticate').catch((e) => {
				if (e.code !== 'rate_limited')
					throw e;
			});
			s = await unix.waitForAuth({ timeoutMs: 1200, intervalMs: 100 }).catch(() => null);
		}
		assert.equal(s?.authenticated, true);
	});
});
