/*
 * Tests of the Gateway simulator itself (tests/gwsim/gwsim.js), through the
 * shared harness: the other suites trust it, so it is checked against the
 * contract in tests/gwsim/README.md with an independent client (node:https,
 * raw node:tls sockets, the openssl command line).
 */
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import tls from 'node:tls';
import fs from 'node:fs';
import crypto from 'node:crypto';
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { startGwsim, startBrokerd, request, sleep, waitFor, brokerdBuilt,
    ROOT } from '../lib/harness.mjs';
import WebSocket from 'ws';

let gw;

before(async () => {
	gw = await startGwsim();
});
after(async () => {
	if (gw)
		await gw.stop();
});
beforeEach(async () => {
	await gw.reset();
});

/* One request to the simulator's HTTPS port; a fresh connection each time. */
function gwReq(p, o = {}) {
	return request({ https: true, port: gw.port, path: `/v1/api${p}`, ...o });
}

/* Raw bytes over TLS; resolves everything the server sent until it closes. */
function rawTls(port, bytes, { waitMs = 1500 } = {}) {
	return new Promise((resolve, reject) => {
		const s = tls.connect({ port, host: '127.0.0.1',
		    rejectUnauthorized: false }, () => s.write(bytes));
		const chunks = [];
		s.on('data', (c) => {
			chunks.push(c);
			s.end();
		});
		s.on('error', reject);
		s.on('close', () => resolve(Buffer.concat(chunks).toString()));
		setTimeout(() => s.destroy(), waitMs);
	});
}

test('start-up line: ports, pid, pin matching openssl and the live cert',
    async () => {
	assert.ok(gw.port > 0 && gw.control > 0 && gw.pid > 0);
	assert.equal(gw.ca_file, null);
	const out = execFileSync('openssl', ['x509', '-in', gw.cert, '-noout',
	    '-fingerprint', '-sha256']).toString();
	assert.equal(out.trim().split('=')[1], gw.fingerprint);
	assert.match(gw.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
	const peer = await new Promise((resolve, reject) => {
		const s = tls.connect({ port: gw.port, host: '127.0.0.1',
		    rejectUnauthorized: false }, () => {
			const c = s.getPeerCertificate();
			s.destroy();
			resolve(c);
		});
		s.on('error', reject);
	});
	assert.equal(peer.fingerprint256, gw.fingerprint);
});

test('authenticated by default: auth status, accounts, portfolio', async () => {
	await gw.behaviour({ rate_per_s: 0 });
	const st = (await gwReq('/iserver/auth/status')).json();
	assert.equal(st.authenticated, true);
	assert.equal(st.connected, true);
	assert.equal(st.competing, false);
	assert.equal(typeof st.serverInfo.serverName, 'string');
	const post = await gwReq('/iserver/auth/status', { method: 'POST',
	    body: '' });
	assert.equal(post.status, 200);
	const acc = await gwReq('/iserver/accounts');
	assert.equal(acc.status, 200);
	assert.deepEqual(acc.json().accounts, ['DU123456']);
	assert.match(acc.headers['content-type'], /^application\/json/);
	const pa = await gwReq('/portfolio/accounts');
	assert.equal(pa.json()[0].id, 'DU123456');
	for (const p of ['/portfolio/subaccounts',
	    '/portfolio/DU123456/summary', '/iserver/account/orders',
	    '/iserver/account/trades', '/iserver/account/pnl/partitioned',
	    '/trsrv/stocks?symbols=AAPL,MSFT',
	    '/iserver/marketdata/history?conid=265598&period=1d&bar=1h']) {
		const r = await gwReq(p);
		assert.equal(r.status, 200, p);
		r.json();
	}
	const stk = (await gwReq('/trsrv/stocks?symbols=AAPL')).json();
	assert.equal(stk.AAPL[0].contracts[0].conid, 265598);
	const h = (await gwReq('/iserver/marketdata/history?conid=265598' +
	    '&period=1d&bar=1h')).json();
	assert.equal(h.data.length, 24);
	assert.equal((await gwReq('/no/such/thing')).status, 404);
});

test('positions are paged 30 at a time', async () => {
	await gw.state({ positions: 45 });
	const p0 = (await gwReq('/portfolio/DU123456/positions/0')).json();
	const p1 = (await gwReq('/portfolio/DU123456/positions/1')).json();
	const p2 = (await gwReq('/portfolio/DU123456/positions/2')).json();
	assert.equal(p0.length, 30);
	assert.equal(p1.length, 15);
	assert.equal(p2.length, 0);
	assert.equal(p0[0].conid, 265598);
});

test('no brokerage session: /iserver is 400 no bridge, the rest works',
    async () => {
	const s = await gw.state({ authenticated: false });
	assert.equal(s.authenticated, false);
	const st = (await gwReq('/iserver/auth/status')).json();
	assert.equal(st.authenticated, false);
	assert.equal(st.connected, true);
	const r = await gwReq('/iserver/accounts');
	assert.equal(r.status, 400);
	assert.deepEqual(r.json().error, 'Bad Request: no bridge');
	assert.equal((await gwReq('/iserver/__echo', { method: 'POST',
	    body: 'x' })).status, 400);
	assert.equal((await gwReq('/portfolio/accounts')).status, 200);
	const t = (await gwReq('/tickle', { method: 'POST', body: '' })).json();
	assert.equal(t.iserver.authStatus.authenticated, false);
});

test('ssodh/init: publish required, reopens the session, honours ' +
    'reauth_works and connected', async () => {
	await gw.state({ authenticated: false });
	const bad = await gwReq('/iserver/auth/ssodh/init', { method: 'POST',
	    body: { publish: false } });
	assert.equal(bad.status, 500);
	const nobody = await gwReq('/iserver/auth/ssodh/init', {
	    method: 'POST', body: '' });
	assert.equal(nobody.status, 500);

	await gw.state({ reauth_works: false });
	let r = await gwReq('/iserver/auth/ssodh/init', { method: 'POST',
	    body: { publish: true, compete: false } });
	assert.equal(r.status, 200);
	assert.equal(r.json().authenticated, false);

	await gw.state({ reauth_works: true, connected: false });
	r = await gwReq('/iserver/auth/ssodh/init', { method: 'POST',
	    body: { publish: true, compete: false } });
	assert.equal(r.json().authenticated, false);
	assert.equal((await gwReq('/iserver/accounts')).status, 400);

	await gw.state({ connected: true });
	r = await gwReq('/iserver/auth/ssodh/init', { method: 'POST',
	    body: { publish: true, compete: false } });
	assert.equal(r.json().authenticated, true);
	assert.equal((await gw.state()).authenticated, true);
	assert.equal((await gwReq('/iserver/accounts')).status, 200);
});

test('competing is reported and cleared by compete:true', async () => {
	await gw.state({ competing: true, message: 'another session' });
	const st = (await gwReq('/iserver/auth/status')).json();
	assert.equal(st.competing, true);
	assert.equal(st.message, 'another session');
	await gwReq('/iserver/auth/ssodh/init', { method: 'POST',
	    body: { publish: true, compete: true } });
	assert.equal((await gw.state()).competing, false);
});

test('no read-only session: 401 everywhere but auth status and tickle',
    async () => {
	await gw.state({ session: false });
	for (const p of ['/iserver/accounts', '/portfolio/accounts',
	    '/trsrv/stocks?symbols=AAPL', '/portfolio/__echo'])
		assert.equal((await gwReq(p)).status, 401, p);
	assert.equal((await gwReq('/iserver/auth/ssodh/init', {
	    method: 'POST', body: { publish: true } })).status, 401);
	const st = await gwReq('/iserver/auth/status');
	assert.equal(st.status, 200);
	assert.equal(st.json().connected, false);
	assert.equal(st.json().authenticated, false);
	const t = await gwReq('/tickle', { method: 'POST', body: '' });
	assert.equal(t.status, 200);
	assert.equal(t.json().iserver.authStatus.connected, false);
	assert.equal(t.headers['set-cookie'], undefined);
	await gw.state({ session: true });
	assert.equal((await gwReq('/portfolio/accounts')).status, 200);
});

test('tickle: session id, cookie, hmds no bridge; new session new cookie',
    async () => {
	const r = await gwReq('/tickle', { method: 'POST', body: '' });
	const t = r.json();
	assert.match(t.session, /^[0-9a-f]{32}$/);
	assert.equal(t.collission, false);
	assert.deepEqual(t.hmds, { error: 'no bridge' });
	assert.equal(t.iserver.authStatus.authenticated, true);
	assert.ok(t.ssoExpires > 0);
	const c = r.headers['set-cookie'][0];
	assert.match(c, /^x-sess-uuid=[^;]+; Path=\/; Secure; HttpOnly$/);
	assert.equal((await gwReq('/tickle')).status, 200);
	await gw.state({ session: false });
	await gw.state({ session: true });
	const r2 = await gwReq('/tickle', { method: 'POST', body: '' });
	assert.notEqual(r2.json().session, t.session);
	assert.notEqual(r2.headers['set-cookie'][0], c);
});

test('429 beyond rate_per_s in a 1 s sliding window, with Retry-After',
    async () => {
	const rs = await Promise.all(Array.from({ length: 15 }, () =>
	    gwReq('/portfolio/accounts')));
	const codes = rs.map((r) => r.status);
	assert.equal(codes.filter((c) => c === 200).length, 10);
	assert.equal(codes.filter((c) => c === 429).length, 5);
	const limited = rs.find((r) => r.status === 429);
	assert.equal(limited.headers['retry-after'], '60');
	assert.equal((await gw.counters()).rate_limited, 5);

	/* Sliding, not fixed: 3 now, 0.6 s later the 4th of the window fails. */
	await gw.reset();
	await gw.behaviour({ rate_per_s: 3, retry_after_s: 7 });
	for (let i = 0; i < 3; i++)
		assert.equal((await gwReq('/portfolio/accounts')).status, 200);
	await sleep(600);
	const r4 = await gwReq('/portfolio/accounts');
	assert.equal(r4.status, 429);
	assert.equal(r4.headers['retry-after'], '7');
	await sleep(500);
	assert.equal((await gwReq('/portfolio/accounts')).status, 200);

	await gw.behaviour({ rate_per_s: 0 });
	const many = await Promise.all(Array.from({ length: 20 }, () =>
	    gwReq('/portfolio/accounts')));
	assert.ok(many.every((r) => r.status === 200));
});

/*
 * A request is stamped at its first byte: one whose head trickles in over
 * 400 ms is counted before a request that arrived whole in the meantime,
 * and max_per_1000ms counts every arrival in a strict window.
 */
test('first-byte stamps, strict windows, max_per_1000ms', async () => {
	await gw.behaviour({ window_slack_ms: 0, rate_per_s: 3 });
	const s = tls.connect({ port: gw.port, host: '127.0.0.1',
	    rejectUnauthorized: false });
	await new Promise((resolve) => s.once('secureConnect', resolve));
	let got = '';
	s.on('data', (d) => { got += d; });
	s.write('GET /v1/api/iserver/accounts HTTP/1.1\r\n');
	await sleep(200);
	assert.equal((await gwReq('/portfolio/accounts')).status, 200);
	await sleep(200);
	s.write('Host: 127.0.0.1\r\nConnection: close\r\n\r\n');
	await new Promise((resolve) => s.on('close', resolve));
	assert.match(got, /^HTTP\/1.1 200/);
	const cnt = await gw.counters();
	const slow = cnt.log.find((e) => e.path === '/v1/api/iserver/accounts');
	const whole = cnt.log.find((e) => e.path === '/v1/api/portfolio/accounts');
	assert.ok(slow.t_ms < whole.t_ms - 100, `${slow.t_ms} ${whole.t_ms}`);
	assert.equal(cnt.max_per_1000ms, 2);
	/* strict: the 4th arrival within 1000 ms is over, the 5th too */
	const rs = await Promise.all(Array.from({ length: 3 }, () =>
	    gwReq('/trsrv/stocks?symbols=AAPL')));
	assert.equal(rs.filter((r) => r.status === 429).length, 2);
	assert.equal((await gw.counters()).max_per_1000ms, 5);
});

test('per-endpoint limits: counted always, refused with endpoint_limits',
    async () => {
	for (let i = 0; i < 2; i++)
		assert.equal((await gwReq('/tickle', { method: 'POST',
		    body: '' })).status, 200);
	assert.equal((await gwReq('/iserver/account/orders')).status, 200);
	let cnt = await gw.counters();
	assert.deepEqual(cnt.pacing_violations, { 'ANY /v1/api/tickle': 1 });
	assert.equal(cnt.rate_limited, 0);
	await gw.behaviour({ endpoint_limits: true });
	const r = await gwReq('/iserver/account/orders');
	assert.equal(r.status, 429);
	assert.equal(r.headers['retry-after'], '60');
	assert.equal((await gwReq('/iserver/account/trades')).status, 200);
	cnt = await gw.counters();
	assert.equal(cnt.rate_limited, 1);
	assert.equal(cnt.pacing_violations[
	    'GET /v1/api/iserver/account/orders'], 1);
});

test('411 on POST without Content-Length; chunked POST is fine', async () => {
	const noLen = await rawTls(gw.port, 'POST /v1/api/tickle HTTP/1.1\r\n' +
	    'Host: 127.0.0.1\r\nConnection: close\r\n\r\n');
	assert.match(noLen, /^HTTP\/1\.1 411 /);
	const put = await rawTls(gw.port, 'PUT /v1/api/portfolio/__echo ' +
	    'HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
	assert.match(put, /^HTTP\/1\.1 411 /);
	const chunked = await rawTls(gw.port, 'POST /v1/api/portfolio/__echo ' +
	    'HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n' +
	    'Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
	assert.match(chunked, /^HTTP\/1\.1 200 /);
	assert.match(chunked, /\r\n\r\nabc$/);
	const get = await rawTls(gw.port, 'GET /v1/api/portfolio/accounts ' +
	    'HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
	assert.match(get, /^HTTP\/1\.1 200 /);
});

const ORDER = { conid: 265598, side: 'BUY', orderType: 'LMT', price: 1.5,
    quantity: 1, tif: 'DAY' };

test('order reply chain: two questions, then Submitted; ids single-use',
    async () => {
	const o = { ...ORDER, cOID: 'c-1' };
	const q1 = await gwReq('/iserver/account/DU123456/orders',
	    { method: 'POST', body: { orders: [o] } });
	assert.equal(q1.status, 200);
	const [a] = q1.json();
	assert.match(a.id, /^[0-9a-f-]{36}$/);
	assert.equal(a.isSuppressed, false);
	assert.deepEqual(a.messageIds, ['o163']);
	assert.equal(typeof a.message[0], 'string');
	assert.equal((await gw.counters()).orders.length, 0);

	const q2 = await gwReq(`/iserver/reply/${a.id}`, { method: 'POST',
	    body: { confirmed: true } });
	const [b] = q2.json();
	assert.notEqual(b.id, a.id);
	assert.deepEqual(b.messageIds, ['o354']);

	const gone = await gwReq(`/iserver/reply/${a.id}`, { method: 'POST',
	    body: { confirmed: true } });
	assert.equal(gone.status, 400);
	assert.equal(gone.json().error, `reply id not found: '${a.id}'`);

	const done = await gwReq(`/iserver/reply/${b.id}`, { method: 'POST',
	    body: { confirmed: true } });
	const [c] = done.json();
	assert.equal(c.order_status, 'Submitted');
	assert.equal(c.encrypt_message, '1');
	assert.match(c.order_id, /^\d+$/);
	const cnt = await gw.counters();
	assert.deepEqual(cnt.orders, [o]);

	const live = (await gwReq('/iserver/account/orders')).json();
	assert.equal(String(live.orders[0].orderId), c.order_id);

	const dup = await gwReq('/iserver/account/DU123456/orders',
	    { method: 'POST', body: { orders: [o] } });
	assert.equal(dup.status, 400);
	assert.equal(dup.json().error, 'Order couldn\'t be submitted: Local ' +
	    'order ID=c-1 is already registered.');

	const del = await gwReq(`/iserver/account/DU123456/order/${c.order_id}`,
	    { method: 'DELETE' });
	assert.equal(del.status, 200);
	assert.deepEqual(del.json(), { msg: 'Request was submitted',
	    order_id: Number(c.order_id), conid: 265598, account: 'DU123456' });
});

test('order reply chain: confirmed:false discards; unknown id is 400',
    async () => {
	const o = { ...ORDER, cOID: 'c-2' };
	const [a] = (await gwReq('/iserver/account/DU123456/orders',
	    { method: 'POST', body: { orders: [o] } })).json();
	const no = await gwReq(`/iserver/reply/${a.id}`, { method: 'POST',
	    body: { confirmed: false } });
	assert.equal(no.status, 200);
	assert.equal((await gw.counters()).orders.length, 0);
	/* discarded: the cOID is free again */
	const again = await gwReq('/iserver/account/DU123456/orders',
	    { method: 'POST', body: { orders: [o] } });
	assert.equal(again.status, 200);
	const bogus = await gwReq('/iserver/reply/nope', { method: 'POST',
	    body: { confirmed: true } });
	assert.equal(bogus.status, 400);
	assert.equal(bogus.json().error, 'reply id not found: \'nope\'');
	const bad = await gwReq('/iserver/account/DU123456/orders',
	    { method: 'POST', body: { nope: 1 } });
	assert.equal(bad.status, 400);
});

test('suppressed questions and questions:0 skip the chain', async () => {
	await gwReq('/iserver/questions/suppress', { method: 'POST',
	    body: { messageIds: ['o163'] } });
	const [a] = (await gwReq('/iserver/account/DU123456/orders',
	    { method: 'POST', body: { orders: [ORDER] } })).json();
	assert.deepEqual(a.messageIds, ['o354']);
	await gw.state({ questions: 0 });
	const [b] = (await gwReq('/iserver/account/DU123456/orders',
	    { method: 'POST', body: { orders: [ORDER] } })).json();
	assert.equal(b.order_status, 'Submitted');
	assert.equal((await gw.counters()).orders.length, 1);
});

test('snapshot pre-flight: first call conid only, then fields; ' +
    'reset by a new brokerage session', async () => {
	const p = '/iserver/marketdata/snapshot?conids=265598,8314&fields=31,84';
	const first = (await gwReq(p)).json();
	assert.deepEqual(first, [{ conid: 265598, conidEx: '265598' },
	    { conid: 8314, conidEx: '8314' }]);
	const second = (await gwReq(p)).json();
	assert.equal(second.length, 2);
	assert.match(second[0]['31'], /^\d+\.\d\d$/);
	assert.match(second[0]['84'], /^\d+\.\d\d$/);
	assert.equal(second[1].conid, 8314);
	/* a new conid in the same call is pre-flighted alone */
	const mixed = (await gwReq('/iserver/marketdata/snapshot?' +
	    'conids=265598,272093&fields=31')).json();
	assert.ok('31' in mixed[0]);
	assert.ok(!('31' in mixed[1]));
	await gw.state({ authenticated: false });
	await gw.state({ authenticated: true });
	assert.deepEqual((await gwReq(p)).json()[0],
	    { conid: 265598, conidEx: '265598' });
});

test('__echo is binary-safe and keeps Content-Type', async () => {
	const bytes = Buffer.concat([Buffer.from(Array.from({ length: 256 },
	    (_, i) => i)), crypto.randomBytes(70000), Buffer.from('\r\n\0')]);
	const r = await gwReq('/iserver/__echo', { method: 'POST', body: bytes,
	    headers: { 'content-type': 'image/x-test; q=1' } });
	assert.equal(r.status, 200);
	assert.equal(r.headers['content-type'], 'image/x-test; q=1');
	assert.ok(r.body.equals(bytes));
	const d = await gwReq('/portfolio/__echo', { method: 'PUT',
	    body: Buffer.from([0, 255]) });
	assert.equal(d.headers['content-type'], 'application/octet-stream');
	assert.ok(d.body.equals(Buffer.from([0, 255])));
	const g = await gwReq('/iserver/__echo');
	assert.equal(g.status, 200);
	assert.equal(g.body.length, 0);
	const log = (await gw.counters()).log;
	assert.equal(log[0].body_len, bytes.length);
	assert.equal(log[0].headers['content-type'], 'image/x-test; q=1');
});

function pattern(n) {
	const b = Buffer.alloc(n);
	for (let i = 0; i < n; i++)
		b[i] = i % 251;
	return b;
}

test('__blob: N deterministic bytes, Content-Length or chunked', async () => {
	const n = 1000003;
	const r = await gwReq(`/portfolio/__blob?bytes=${n}`);
	assert.equal(r.headers['content-length'], String(n));
	assert.ok(r.body.equals(pattern(n)));
	const c = await gwReq('/iserver/__blob?bytes=70000&chunked=1');
	assert.equal(c.headers['transfer-encoding'], 'chunked');
	assert.equal(c.headers['content-length'], undefined);
	assert.ok(c.body.equals(pattern(70000)));
	const z = await gwReq('/iserver/__blob?bytes=0');
	assert.equal(z.body.length, 0);
});

test('silent: accepted, logged, never answered', async () => {
	await gw.behaviour({ silent: true });
	await assert.rejects(gwReq('/portfolio/accounts', { timeoutMs: 400 }),
	    { code: 'ETIMEDOUT' });
	const cnt = await gw.counters();
	assert.equal(cnt.by_route['GET /v1/api/portfolio/accounts'], 1);
	await gw.behaviour({ silent: false });
	assert.equal((await gwReq('/portfolio/accounts')).status, 200);
});

test('reset_mid_body: headers and half the body, then the socket dies',
    async () => {
	await gw.behaviour({ reset_mid_body: true });
	const err = await gwReq('/portfolio/__blob?bytes=10000').then(
	    () => null, (e) => e);
	assert.ok(err, 'the response must fail');
	assert.equal(err.status, 200);
	assert.equal(err.headers['content-length'], '10000');
	assert.equal(err.partial.length, 5000);
	assert.ok(err.partial.equals(pattern(5000)));
	const j = await gwReq('/portfolio/accounts').then(() => null, (e) => e);
	assert.ok(j && j.partial.length < Number(j.headers['content-length']));
	const c = await gwReq('/portfolio/__blob?bytes=10000&chunked=1').then(
	    () => null, (e) => e);
	assert.ok(c && c.partial.length === 5000);
});

test('delay_ms and force_status honour paths', async () => {
	await gw.behaviour({ delay_ms: 800, force_status: 503,
	    paths: ['/portfolio/'] });
	let t = Date.now();
	const r = await gwReq('/portfolio/accounts');
	assert.ok(Date.now() - t >= 790);
	assert.equal(r.status, 503);
	assert.equal(r.json().statusCode, 503);
	t = Date.now();
	const ok = await gwReq('/iserver/accounts');
	assert.equal(ok.status, 200);
	assert.ok(Date.now() - t < 700);
	await gw.behaviour({ paths: ['/v1/api/iserver/accounts'],
	    force_status: 500, force_body: 'boom', delay_ms: 0 });
	const b = await gwReq('/iserver/accounts');
	assert.equal(b.status, 500);
	assert.equal(b.text(), 'boom');
	await assert.rejects(gw.behaviour({ nope: 1 }), /unknown key: nope/);
	await assert.rejects(gw.state({ session: 'yes' }), /boolean/);
});

test('counters: connections, keep-alive, full and resumed handshakes, log',
    async () => {
	const agent = new https.Agent({ keepAlive: true, maxSockets: 1,
	    rejectUnauthorized: false });
	for (let i = 0; i < 3; i++)
		await gwReq('/portfolio/accounts', { agent, headers:
		    { cookie: 'a=b' } });
	let cnt = await gw.counters();
	assert.equal(cnt.connections, 1);
	assert.equal(cnt.handshakes, 1);
	assert.equal(cnt.resumed, 0);
	assert.equal(cnt.total, 3);
	assert.equal(cnt.by_route['GET /v1/api/portfolio/accounts'], 3);
	assert.equal(cnt.log.length, 3);
	assert.equal(cnt.log[2].headers.cookie, 'a=b');
	assert.equal(cnt.log[2].conn, cnt.log[0].conn);
	assert.equal(cnt.log[2].status, 200);
	assert.ok(cnt.log[2].t_ms >= cnt.log[0].t_ms);
	agent.destroy();

	/* close_after_response: one connection per request; the agent's
	 * session cache resumes the TLS session on the next ones. */
	await gw.reset();
	await gw.behaviour({ close_after_response: true });
	const a2 = new https.Agent({ keepAlive: true, maxSockets: 1,
	    rejectUnauthorized: false });
	for (let i = 0; i < 3; i++) {
		const r = await gwReq('/portfolio/accounts', { agent: a2 });
		assert.equal(r.headers.connection, 'close');
	}
	cnt = await gw.counters();
	assert.equal(cnt.connections, 3);
	assert.equal(cnt.handshakes, 3);
	assert.equal(cnt.resumed, 2);
	assert.equal(cnt.full, 1);
	assert.equal(new Set(cnt.log.map((e) => e.conn)).size, 3);
	a2.destroy();
});

/* Resume a TLS 1.2 session by hand, as mbedTLS does, and see it counted. */
async function resumeTwice(port) {
	const connect = (session) => new Promise((resolve, reject) => {
		const s = tls.connect({ port, host: '127.0.0.1',
		    rejectUnauthorized: false, maxVersion: 'TLSv1.2', session },
		    () => {
			const r = { reused: s.isSessionReused(),
			    session: s.getSession() };
			s.end();
			resolve(r);
		});
		s.on('error', reject);
	});
	const a = await connect();
	const b = await connect(a.session);
	return [a.reused, b.reused];
}

test('TLS 1.2 resumption by ticket and, with --no-tickets, by session id',
    async () => {
	assert.deepEqual(await resumeTwice(gw.port), [false, true]);
	let cnt = await gw.counters();
	assert.equal(cnt.handshakes, 2);
	assert.equal(cnt.resumed, 1);
	const g2 = await startGwsim({ tickets: false });
	try {
		assert.deepEqual(await resumeTwice(g2.port), [false, true]);
		cnt = await g2.counters();
		assert.equal(cnt.resumed, 1);
	} finally {
		await g2.stop();
	}
});

test('reset restores defaults and clears counters', async () => {
	await gw.state({ authenticated: false, competing: true });
	await gw.behaviour({ delay_ms: 5 });
	await gwReq('/portfolio/accounts');
	const r = await gw.reset();
	assert.equal(r.state.authenticated, true);
	assert.equal(r.state.competing, false);
	assert.equal(r.behaviour.delay_ms, 0);
	assert.equal(r.behaviour.rate_per_s, 10);
	assert.equal(r.behaviour.endpoint_limits, false);
	const cnt = await gw.counters();
	assert.equal(cnt.total, 0);
	assert.deepEqual(cnt.log, []);
});

test('expired mode: certificate dated 2019-02-10 to 2019-05-11', async () => {
	const g = await startGwsim({ certMode: 'expired' });
	try {
		const out = execFileSync('openssl', ['x509', '-in', g.cert,
		    '-noout', '-startdate', '-enddate']).toString();
		assert.match(out, /notBefore=Feb 10 00:00:00 2019 GMT/);
		assert.match(out, /notAfter=May 11 00:00:00 2019 GMT/);
		const err = await request({ https: true, port: g.port,
		    path: '/v1/api/tickle', ca: fs.readFileSync(g.cert) }).then(
		    () => null, (e) => e);
		assert.equal(err && err.code, 'CERT_HAS_EXPIRED');
		/* pinning still reaches it */
		const r = await request({ https: true, port: g.port,
		    path: '/v1/api/iserver/auth/status' });
		assert.equal(r.status, 200);
	} finally {
		await g.stop();
	}
});

test('ca mode: the leaf verifies with ca_file for 127.0.0.1 and localhost',
    async () => {
	const g = await startGwsim({ certMode: 'ca' });
	try {
		assert.ok(g.ca_file && fs.existsSync(g.ca_file));
		const ca = fs.readFileSync(g.ca_file);
		const check = (servername) => new Promise((resolve) => {
			const s = tls.connect({ port: g.port, host: '127.0.0.1',
			    ca: fs.readFileSync(g.ca_file), servername,
			    rejectUnauthorized: false }, () => {
				const v = { ok: s.authorized,
				    err: s.authorizationError,
				    id: tls.checkServerIdentity(servername ||
				    '127.0.0.1', s.getPeerCertificate()) };
				s.destroy();
				resolve(v);
			});
		});
		const ip = await check(undefined);
		assert.equal(ip.ok, true, String(ip.err));
		assert.equal(ip.id, undefined);
		const dns = await check('localhost');
		assert.equal(dns.ok, true);
		assert.equal(dns.id, undefined);
		const r = await request({ https: true, port: g.port, ca,
		    path: '/v1/api/iserver/auth/status' });
		assert.equal(r.status, 200);
		/* and without the CA it does not verify */
		const err = await request({ https: true, port: g.port,
		    ca: fs.readFileSync(gw.cert),
		    path: '/v1/api/tickle' }).then(() => null, (e) => e);
		assert.ok(err && /certificate/i.test(err.code + err.message));
	} finally {
		await g.stop();
	}
});

test('--san sets the subjectAltName', async () => {
	const g = await startGwsim({ certMode: 'ca',
	    san: 'IP:127.0.0.1,DNS:localhost,DNS:127.0.0.1' });
	try {
		const out = execFileSync('openssl', ['x509', '-in', g.cert,
		    '-noout', '-ext', 'subjectAltName']).toString();
		assert.match(out, /IP Address:127\.0\.0\.1, DNS:localhost, DNS:127\.0\.0\.1/);
	} finally {
		await g.stop();
	}
});

/* The SHA-256 of the certificate a live server presents. */
function liveFingerprint(port) {
	return new Promise((resolve, reject) => {
		const s = tls.connect({ port, host: '127.0.0.1',
		    rejectUnauthorized: false }, () => {
			resolve(s.getPeerCertificate().fingerprint256);
			s.end();
		});
		s.on('error', reject);
	});
}

test('--cert-dir keeps the certificate across restarts; a new one differs',
    async () => {
	const d = fs.mkdtempSync(`${os.tmpdir()}/gwsim-keep-`);
	try {
		const a = await startGwsim({ certDir: `${d}/certs` });
		const fa = await liveFingerprint(a.port);
		assert.equal(fa, a.fingerprint);
		assert.equal(a.cert, `${d}/certs/cert.pem`);
		assert.equal((await a.stop()).code, 0);
		assert.ok(fs.existsSync(`${d}/certs/key.pem`), 'key kept');
		const b = await startGwsim({ certDir: `${d}/certs` });
		try {
			assert.equal(b.fingerprint, fa);
			assert.equal(await liveFingerprint(b.port), fa);
		} finally {
			await b.stop();
		}
		const c = await startGwsim({ certDir: `${d}/other` });
		try {
			assert.notEqual(c.fingerprint, fa);
			assert.equal(await liveFingerprint(c.port), c.fingerprint);
		} finally {
			await c.stop();
		}
	} finally {
		fs.rmSync(d, { recursive: true, force: true });
	}
});

/* All a server sends on one request until it closes or waitMs passes. */
function rawAll(port, bytes, waitMs) {
	return new Promise((resolve, reject) => {
		const s = tls.connect({ port, host: '127.0.0.1',
		    rejectUnauthorized: false }, () => s.write(bytes));
		const chunks = [];
		let closed = false;
		s.on('data', (c) => chunks.push(c));
		s.on('error', reject);
		s.on('end', () => { closed = true; });
		const t = setTimeout(() => s.destroy(), waitMs);
		s.on('close', () => {
			clearTimeout(t);
			resolve({ text: Buffer.concat(chunks).toString(),
			    closed });
		});
	});
}

test('raw: hostile answers byte for byte, only on the chosen paths',
    async () => {
	const get = 'GET /v1/api/hostile/x HTTP/1.1\r\nHost: x\r\n\r\n';
	const want = {
		cl_te: [/Content-Length: 5\r\nTransfer-Encoding: chunked\r\n/,
		    false],
		short_body: [/Content-Length: 100\r\n\r\n\{"raw":true\}$/, true],
		interim: [/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 103 /,
		    false],
		close_delimited: [/json\r\n\r\n\{"raw":true\}$/, true],
		no_colon: [/\r\nX-Broken header line\r\n/, false],
	};
	for (const [name, [re, closes]] of Object.entries(want)) {
		await gw.behaviour({ raw: name, paths: ['/hostile/'] });
		const r = await rawAll(gw.port, get, 700);
		assert.match(r.text, re, name);
		assert.equal(r.closed, closes, `${name}: closed`);
	}
	await gw.behaviour({ raw: 'huge_header' });
	const big = await rawAll(gw.port, get, 3000);
	assert.ok(big.text.length > 10 * 1024 * 1024, `${big.text.length}`);
	assert.match(big.text, /^HTTP\/1\.1 200 OK\r\n.*\r\nX-Big: aaaa/s);
	const log = (await gw.counters()).log;
	assert.equal(log[log.length - 1].status, 'raw huge_header');
	/* another path answers normally */
	const ok = await gwReq('/iserver/accounts');
	assert.equal(ok.status, 200);
	await assert.rejects(gw.behaviour({ raw: 'nonsense' }), /raw must be/);
});

test('SIGTERM: exits 0 and removes its own temp dir', async () => {
	const g = await startGwsim();
	const dir = g.cert.replace(/\/cert\.pem$/, '');
	assert.ok(fs.existsSync(dir));
	const r = await g.stop();
	assert.equal(r.code, 0);
	assert.equal(fs.existsSync(dir), false);
});

/* ---------- the harness itself ---------- */

/*
 * A stand-in for build/brokerd with the same start-up contract (config on
 * -c, ready line on stderr, Unix socket + TCP), so the harness is checked
 * whether or not the daemon is built yet.  It answers with what it saw.
 */
const FAKE_BROKERD = `#!/usr/bin/env node
const fs = require('fs'), http = require('http');
const file = process.argv[process.argv.indexOf('-c') + 1];
const cfg = fs.readFileSync(file, 'utf8');
if (/fail: yes/.test(cfg)) {
	process.stderr.write('brokerd: ' + file + ':1:1: bad config\\n');
	process.exit(1);
}
const sock = /path: "([^"]+)"/.exec(cfg)[1];
const h = (q, s) => {
	s.setHeader('content-type', 'application/json');
	s.end(JSON.stringify({ status: 'ok', path: q.url,
	    key: q.headers['x-bridge-key'] || null,
	    env: process.env.IBKR_GATEWAY_URL || null }));
};
const u = http.createServer(h), t = http.createServer(h);
u.listen(sock, () => t.listen(0, '127.0.0.1', () => process.stderr.write(
    'listening on unix ' + sock + '\\nlistening on tcp 127.0.0.1:' +
    t.address().port + '\\nbrokerd: ready\\n')));
process.on('SIGHUP', () => process.stderr.write('configuration reloaded\\n'));
process.on('SIGTERM', () => { fs.rmSync(sock, { force: true });
    process.exit(0); });
`;

function fakeBrokerd() {
	const d = fs.mkdtempSync(`${os.tmpdir()}/fakebd-`);
	const bin = `${d}/brokerd.cjs`;
	fs.writeFileSync(bin, FAKE_BROKERD, { mode: 0o755 });
	return { bin, dir: d, rm: () => fs.rmSync(d, { recursive: true,
	    force: true }) };
}

test('harness.mjs startBrokerd: config, ready line, ports, key, stop',
    async () => {
	const fake = fakeBrokerd();
	process.env.IBKR_GATEWAY_URL = 'https://example.invalid';
	try {
		const bd = await startBrokerd({ gwsim: gw, bin: fake.bin,
		    config: { session: { tickle_interval_s: 5 },
		    limits: { gateway_rate: 'off' } } });
		const cfg = fs.readFileSync(bd.configFile, 'utf8');
		assert.equal(fs.statSync(bd.configFile).mode & 0o777, 0o600);
		assert.match(cfg, new RegExp(`url: "https://127.0.0.1:${gw.port}"`));
		assert.ok(cfg.includes(`pin_sha256: "${gw.fingerprint}"`));
		assert.ok(cfg.includes(`key: "${bd.key}"`));
		assert.match(cfg, /tickle_interval_s: 5\n/);
		assert.match(cfg, /check_interval_s: 1\n/);
		assert.match(cfg, /gateway_rate: "off"\n/);
		assert.match(cfg, /scopes: \["read", "trade", "admin"\]/);
		assert.match(bd.key, /^[0-9a-f]{32}$/);
		assert.ok(bd.tcpPort > 0);
		const r = await bd.request({ path: '/health' });
		assert.equal(r.json().key, bd.key);
		assert.equal(r.json().env, null, 'IBKR_* must not leak in');
		const t = await bd.request({ tcp: true, path: '/x', key: false });
		assert.equal(t.json().key, null);
		assert.equal(t.json().path, '/x');
		await bd.reload(/reloaded/);
		assert.match(bd.log(), /brokerd: ready/);
		const st = await bd.stop();
		assert.equal(st.code, 0);
		assert.equal(fs.existsSync(bd.dir), false);

		const txt = await startBrokerd({ gwsim: gw, bin: fake.bin,
		    config: 'session:\n  status_file: "/nonexistent/s"\n' });
		const c2 = fs.readFileSync(txt.configFile, 'utf8');
		assert.equal(c2.match(/^session:/gm).length, 1);
		assert.match(c2, /status_file: "\/nonexistent\/s"/);
		await txt.stop();

		await assert.rejects(startBrokerd({ gwsim: gw, bin: fake.bin,
		    config: 'fail: yes\n' }), /bad config/);
		const f = await startBrokerd({ gwsim: gw, bin: fake.bin,
		    config: 'fail: yes\n', expectFail: true });
		assert.equal(f.code, 1);
		assert.match(f.log(), /bad config/);
	} finally {
		delete process.env.IBKR_GATEWAY_URL;
		fake.rm();
	}
});

test('harness.sh: gwsim_start, control helpers, brokerd_start, cleanup',
    () => {
	const fake = fakeBrokerd();
	const script = `set -eu
. tests/lib/harness.sh
trap cleanup EXIT
gwsim_start
echo "tmp=$HARNESS_TMP"
echo "port=$GWSIM_PORT fp=$GWSIM_FINGERPRINT ca=[$GWSIM_CA_FILE]"
gwsim_state '{"authenticated":false}' | json_get authenticated
gwsim_gw GET /v1/api/iserver/accounts | json_get error
gwsim_counters | json_get by_route "GET /v1/api/iserver/accounts"
brokerd_start
echo "bdport=$BROKERD_PORT"
bd_curl "$(bd_url /health)" | json_get key
grep -c "$GWSIM_FINGERPRINT" "$BROKERD_CONFIG"
echo "key=$BROKERD_KEY"
brokerd_stop
echo "exit=$BROKERD_EXIT"
`;
	try {
		const out = execFileSync('sh', ['-c', script], { cwd: ROOT,
		    env: { ...process.env, BROKERD_BIN: fake.bin },
		    encoding: 'utf8' });
		const tmp = /tmp=(\S+)/.exec(out)[1];
		assert.match(out,
		    /port=\d+ fp=([0-9A-F]{2}:){31}[0-9A-F]{2} ca=\[\]/);
		const lines = out.split('\n');
		assert.equal(lines[2], 'false');
		assert.equal(lines[3], 'Bad Request: no bridge');
		assert.equal(lines[4], '1');
		assert.match(lines[5], /^bdport=\d+$/);
		const key = /key=([0-9a-f]{32})/.exec(out)[1];
		assert.equal(lines[6], key);
		assert.equal(lines[7], '1');
		assert.match(out, /exit=0/);
		assert.equal(fs.existsSync(tmp), false, 'cleanup removes it');
	} finally {
		fake.rm();
	}
});

test('startBrokerd with the real build/brokerd', { skip: !brokerdBuilt() &&
    'build/brokerd is not built yet' }, async () => {
	const bd = await startBrokerd({ gwsim: gw });
	try {
		const h = await bd.request({ path: '/health', key: false });
		assert.equal(h.status, 200);
		assert.equal(h.json().status, 'ok');
		assert.ok(bd.tcpPort > 0);
		const t = await bd.request({ tcp: true, path: '/health',
		    key: false });
		assert.equal(t.status, 200);
		await waitFor(async () => (await gw.counters()).by_route[
		    'GET /v1/api/iserver/auth/status'] ||
		    (await gw.counters()).by_route[
		    'POST /v1/api/iserver/auth/status'], { what: 'a status check' });
	} finally {
		const st = await bd.stop();
		assert.equal(st.code, 0);
	}
});

/* ---------- WebSocket (/v1/api/ws), with the npm ws client ---------- */

const wsClients = new Set();
afterEach(() => {
	for (const c of wsClients)
		c.ws.terminate();
	wsClients.clear();
});

/*
 * A WebSocket client to the simulator that keeps every message; next(pred)
 * takes the first message after the last one taken that matches.
 */
async function wsOpen({ cookie } = {}) {
	const ws = new WebSocket(gw.wsUrl, {
	    rejectUnauthorized: false, headers: cookie ? { cookie } : {} });
	const c = { ws, msgs: [], at: 0, closed: null, wake: () => {} };
	wsClients.add(c);
	ws.on('message', (d) => {
		c.msgs.push(JSON.parse(d.toString()));
		c.wake();
	});
	ws.on('close', (code, reason) => {
		c.closed = { code, reason: reason.toString() };
		c.wake();
	});
	await new Promise((resolve, reject) => {
		ws.once('open', resolve);
		ws.once('error', reject);
		ws.once('unexpected-response', (req, res) => reject(
		    Object.assign(new Error(`status ${res.statusCode}`),
		    { status: res.statusCode })));
	});
	ws.on('error', () => {});
	c.send = (m) => ws.send(typeof m === 'string' ? m : JSON.stringify(m));
	c.next = (pred = () => true, ms = 5000) => new Promise((resolve,
	    reject) => {
		const look = () => {
			for (let i = c.at; i < c.msgs.length; i++)
				if (pred(c.msgs[i])) {
					c.at = i + 1;
					c.wake = () => {};
					clearTimeout(timer);
					return resolve(c.msgs[i]);
				}
			return null;
		};
		const timer = setTimeout(() => reject(new Error('no such ' +
		    `message in ${ms} ms; got ${JSON.stringify(
		    c.msgs.slice(c.at))}`)), ms);
		c.wake = look;
		look();
	});
	c.closedP = () => new Promise((resolve) => {
		if (c.closed)
			return resolve(c.closed);
		ws.once('close', (code, reason) => resolve({ code,
		    reason: reason.toString() }));
	});
	return c;
}

/* The session id and the x-sess-uuid cookie, from /tickle. */
async function wsSession() {
	const t = await gwReq('/tickle');
	const cookie = t.headers['set-cookie'][0].split(';')[0];
	return { id: t.json().session, cookie };
}

/* A client past authentication (the jar's cookie), system and sts read. */
async function wsReady() {
	const { cookie } = await wsSession();
	const c = await wsOpen({ cookie });
	await c.next((m) => m.topic === 'sts');
	return c;
}

const isTopic = (t) => (m) => m.topic === t;

test('ws: the jar cookie authenticates: system success, then sts',
    async () => {
	const { cookie } = await wsSession();
	const c = await wsOpen({ cookie });
	const sys = await c.next();
	assert.deepEqual(sys, { topic: 'system', success: 'gwsim1',
	    isFT: false, isPaper: true });
	const sts = await c.next();
	assert.equal(sts.topic, 'sts');
	assert.equal(sts.args.authenticated, true);
	assert.equal(sts.args.username, 'gwsim1');
	const n = await gw.counters();
	assert.equal(n.ws_connections, 1);
	assert.equal(n.by_route['GET /v1/api/ws'], 1);
	assert.equal(n.log.at(-1).status, 101);
});

test('ws: api={"session":...} cookie authenticates (IBind), a wrong one not',
    async () => {
	const { id } = await wsSession();
	const c = await wsOpen({ cookie: `api=${JSON.stringify({ session:
	    id })}` });
	assert.equal((await c.next()).success, 'gwsim1');
	const bad = await wsOpen({ cookie: 'api={"session":"0000"}' });
	assert.deepEqual(await bad.next(), { message: 'waiting for session' });
});

test('ws: without cookies it waits for {"session":<id from /tickle>}',
    async () => {
	const { id } = await wsSession();
	const c = await wsOpen();
	assert.deepEqual(await c.next(), { message: 'waiting for session' });
	c.send('smd+265598+{"fields":["31"]}');
	assert.deepEqual(await c.next(), { message: 'waiting for session' });
	c.send({ session: 'f'.repeat(32) });
	assert.deepEqual(await c.next(), { message: 'waiting for session' });
	c.send({ session: id });
	assert.equal((await c.next()).success, 'gwsim1');
	assert.equal((await c.next()).topic, 'sts');
	const n = await gw.counters();
	assert.equal(Object.keys(n.ws_smd_active).length, 0,
	    'an smd before the session is not served');
	assert.deepEqual(n.ws_subscriptions.map((x) => x.msg), [
	    'smd+265598+{"fields":["31"]}', `{"session":"${'f'.repeat(32)}"}`,
	    `{"session":"${id}"}`]);
	assert.ok(n.ws_subscriptions.every((x) => typeof x.t_ms === 'number'));
});

test('ws: the upgrade is 401 without the read-only session, 101 with it; ' +
    'another path 404',
    async () => {
	await gw.state({ session: false });
	await assert.rejects(wsOpen(), { status: 401 });
	await gw.state({ session: true });
	const { cookie } = await wsSession();
	assert.equal((await (await wsOpen({ cookie })).next()).success,
	    'gwsim1', 'and with the session, the upgrade goes through');
	const ws = new WebSocket(`wss://127.0.0.1:${gw.port}/v1/api/wsx`,
	    { rejectUnauthorized: false });
	const st = await new Promise((resolve) => {
		ws.on('unexpected-response', (req, res) => resolve(
		    res.statusCode));
		ws.on('error', () => resolve('error'));
	});
	assert.equal(st, 404);
});

test('ws: system hb every ws_hb_ms', async () => {
	await gw.behaviour({ ws_hb_ms: 50 });
	const c = await wsReady();
	const a = await c.next((m) => m.topic === 'system' && 'hb' in m);
	const b = await c.next((m) => m.topic === 'system' && 'hb' in m);
	assert.ok(b.hb >= a.hb && a.hb > 1.6e12, 'epoch ms');
});

test('ws: smd: all fields first, then only changed ones; a second smd ' +
    'adds fields; umd ends it', async () => {
	await gw.behaviour({ ws_tick_ms: 30 });
	const c = await wsReady();
	const smd = isTopic('smd+265598');
	c.send('smd+265598+{"fields":["31","55","84"]}');
	const first = await c.next(smd);
	assert.equal(first.conid, 265598);
	assert.equal(first.server_id, 'q0');
	assert.deepEqual(Object.keys(first).sort(), ['31', '55', '84',
	    '_updated', 'conid', 'server_id', 'topic']);
	assert.equal(typeof first._updated, 'number');
	assert.equal(first['55'], 'AAPL');
	assert.match(first['31'], /^\d+\.\d\d$/);
	assert.equal(first['84'], (Number(first['31']) - 0.01).toFixed(2));
	const tick = await c.next(smd);
	assert.ok(!('55' in tick), 'the symbol does not change');
	assert.notEqual(tick['31'], first['31']);
	c.send('smd+265598+{"fields":["86"]}');
	const more = await c.next((m) => smd(m) && '86' in m);
	assert.ok(!('55' in more));
	assert.deepEqual((await gw.counters()).ws_smd_active,
	    { 265598: ['31', '55', '84', '86'] });
	c.send('smd+8314+{"fields":["31"]}');
	assert.equal((await c.next(isTopic('smd+8314')))['31'],
	    snapshotLast(8314));
	c.send('umd+265598+{}');
	await waitFor(async () => !((await gw.counters()).ws_smd_active[
	    265598]), { what: 'umd' });
	const after = c.msgs.length;
	await c.next(isTopic('smd+8314'));
	await c.next(isTopic('smd+8314'));
	assert.ok(!c.msgs.slice(after + 1).some(smd), 'no tick after umd');
});

/* The first tick's last price: the snapshot's, moved by -0.25. */
function snapshotLast(conid) {
	return (50 + (conid % 400) + (conid % 97) / 100 - 0.25).toFixed(2);
}

test('ws: field 9999 carries the send time; ws_tick_ms 0 stops ticks',
    async () => {
	await gw.behaviour({ ws_tick_ms: 0 });
	const c = await wsReady();
	const before = performance.timeOrigin + performance.now();
	c.send('smd+272093+{"fields":["31","9999"]}');
	const m = await c.next(isTopic('smd+272093'));
	const t = Number(m['9999']);
	assert.ok(t >= before - 5 && t <= performance.timeOrigin +
	    performance.now() + 5, `${t} within the exchange`);
	await sleep(300);
	assert.equal(c.msgs.filter(isTopic('smd+272093')).length, 1);
});

test('ws: ws_tick_slices spreads a period\'s ticks over it', async () => {
	/* 4 conids every 200 ms: in one burst, or one conid each 50 ms */
	const gaps = async (slices) => {
		await gw.behaviour({ ws_tick_ms: 0 });
		const c = await wsReady();
		for (const id of [265598, 8314, 272093, 4815747])
			c.send(`smd+${id}+{"fields":["31"]}`);
		await c.next(isTopic('smd+4815747'));
		const at = [];
		c.ws.on('message', (d) => {
			if (d.toString().includes('"topic":"smd+'))
				at.push(performance.now());
		});
		await gw.behaviour({ ws_tick_ms: 200, ws_tick_slices: slices });
		await sleep(1300);
		await gw.behaviour({ ws_tick_ms: 0, ws_tick_slices: 1 });
		c.ws.terminate();
		const g = at.slice(1).map((t, i) => t - at[i]).sort((a, b) =>
		    a - b);
		assert.ok(at.length >= 12, `${at.length} ticks in 1.3 s`);
		return g[g.length >> 1];
	};
	const burst = await gaps(1);
	assert.ok(burst < 10, `burst: median gap ${burst} ms`);
	const spread = await gaps(4);
	assert.ok(spread > 20, `spread: median gap ${spread} ms`);
});

test('ws: tic and ech+hb answered; unknown topics and bad JSON are errors',
    async () => {
	const c = await wsReady();
	c.send('tic');
	const tic = await c.next(isTopic('tic'));
	assert.ok(tic.lastAccessed > 1.6e12);
	c.send('ech+hb');
	assert.deepEqual(await c.next(isTopic('ech+hb')),
	    { topic: 'ech+hb', alive: true });
	c.send('xyz+{}');
	assert.match((await c.next(isTopic('system'))).error, /unknown topic/);
	c.send('smd+1+{bad');
	assert.match((await c.next(isTopic('system'))).error, /malformed/);
});

test('ws: sor: orders pushed when placed, cancelled, modified; ' +
    'sor_after_force; filters pause it until force=true', async () => {
	await gw.behaviour({ rate_per_s: 0 });
	await gw.state({ questions: 0 });
	const c = await wsReady();
	assert.equal((await gwReq('/iserver/account/orders?force=true'))
	    .status, 200);
	c.send('sor+{}');
	c.send('sor+{}');
	await waitFor(async () => (await gw.counters()).sor_after_force
	    .length === 2, { what: 'two sor' });
	assert.deepEqual((await gw.counters()).sor_after_force, [true, false]);

	const placedR = await gwReq('/iserver/account/DU123456/orders',
	    { method: 'POST', body: { orders: [{ ...ORDER, cOID: 'w-1' }] } });
	const id = placedR.json()[0].order_id;
	const sor = await c.next(isTopic('sor'));
	assert.equal(sor.args.length, 1);
	assert.equal(sor.args[0].orderId, Number(id));
	assert.equal(sor.args[0].status, 'Submitted');
	assert.equal(sor.args[0].order_ref, 'w-1');
	await gwReq(`/iserver/account/DU123456/order/${id}`,
	    { method: 'POST', body: { price: 1.6 } });
	const mod = await c.next(isTopic('sor'));
	assert.equal(mod.args[0].status, 'PreSubmitted');
	assert.equal(mod.args[0].price, 1.6);
	await gwReq(`/iserver/account/DU123456/order/${id}`,
	    { method: 'DELETE' });
	assert.equal((await c.next(isTopic('sor'))).args[0].status,
	    'Cancelled');

	/* IBKR.md: a read with filters stops sor until force=true */
	await gwReq('/iserver/account/orders?filters=Submitted');
	await gwReq('/iserver/account/DU123456/orders',
	    { method: 'POST', body: { orders: [{ ...ORDER, cOID: 'w-2' }] } });
	await sleep(200);
	assert.equal(c.msgs.slice(c.at).filter(isTopic('sor')).length, 0);
	await gwReq('/iserver/account/orders?force=true');
	await gwReq('/iserver/account/DU123456/orders',
	    { method: 'POST', body: { orders: [{ ...ORDER, cOID: 'w-3' }] } });
	assert.equal((await c.next(isTopic('sor'))).args[0].order_ref, 'w-3');

	/* a new sor subscriber gets the live orders at once */
	const d = await wsReady();
	d.send('sor+{}');
	assert.equal((await d.next(isTopic('sor'))).args.length, 3);
	c.send('uor+{}');
	await gwReq('/iserver/account/orders?force=true');
	await gwReq('/iserver/account/DU123456/orders',
	    { method: 'POST', body: { orders: [{ ...ORDER, cOID: 'w-4' }] } });
	await d.next((m) => m.topic === 'sor' && m.args[0].order_ref === 'w-4');
	assert.equal(c.msgs.slice(c.at).filter(isTopic('sor')).length, 0,
	    'no sor after uor');
});

test('ws: str, spl about once a second, ssd/usd and sld/uld replies',
    async () => {
	const c = await wsReady();
	c.send('str+{}');
	assert.equal((await c.next(isTopic('str'))).args[0].conid, 265598);
	c.send('spl+{}');
	const p1 = await c.next(isTopic('spl'));
	assert.equal(typeof p1.args['DU123456.Core'].dpl, 'number');
	await c.next(isTopic('spl'), 3000);
	c.send('upl+{}');
	c.send('ssd+DU123456+{}');
	assert.equal((await c.next(isTopic('ssd+DU123456'))).result[0].key,
	    'NetLiquidation');
	c.send('usd+DU123456');
	assert.deepEqual(await c.next(isTopic('usd+DU123456')), { topic:
	    'usd+DU123456', result: 'unsubscribed from summary' });
	c.send('sld+DU123456+{}');
	assert.equal((await c.next(isTopic('sld+DU123456'))).result[0]
	    .acctCode, 'DU123456');
	c.send('uld+DU123456');
	assert.equal((await c.next(isTopic('uld+DU123456'))).result,
	    'unsubscribed from ledger');
	c.send('ssd+U999+{}');
	assert.match((await c.next(isTopic('ssd+U999'))).error, /not found/);
});

test('ws: smh gives server ids, at most 5 at once; umh frees one',
    async () => {
	const c = await wsReady();
	const ids = [];
	for (let i = 0; i < 5; i++) {
		c.send('smh+265598+{"period":"1h","bar":"5min"}');
		const h = await c.next((m) => m.topic === 'smh+265598' &&
		    m.points > 1);
		assert.equal(h.data.length, 12);
		ids.push(h.serverId);
	}
	assert.equal(new Set(ids).size, 5);
	c.send('smh+8314+{}');
	assert.match((await c.next((m) => m.topic === 'smh+8314')).error,
	    /at most 5/);
	c.send(`umh+${ids[0]}`);
	c.send('smh+8314+{}');
	const h = await c.next((m) => m.topic === 'smh+8314' && m.serverId);
	assert.ok(!ids.includes(h.serverId));
	c.send('umh+1');
	assert.match((await c.next(isTopic('umh+1'))).error, /no such/);
});

test('ws: ws_silent: upgraded, then nothing at all', async () => {
	await gw.behaviour({ ws_silent: true, ws_hb_ms: 50, ws_tick_ms: 20 });
	const { id } = await wsSession();
	const c = await wsOpen();
	c.send({ session: id });
	c.send('smd+265598+{"fields":["31"]}');
	c.send('tic');
	await sleep(400);
	assert.deepEqual(c.msgs, []);
	const n = await gw.counters();
	assert.equal(n.ws_connections, 1);
	assert.equal(n.ws_subscriptions.length, 3, 'received and logged');
	assert.deepEqual(n.ws_smd_active, {});
	/* a socket opened while silent stays silent (no route to IBKR) */
	await gw.behaviour({ ws_silent: false });
	c.send('tic');
	await sleep(200);
	assert.deepEqual(c.msgs, []);
});

test('ws: ws_silent silences a live socket: no hb, no ticks', async () => {
	await gw.behaviour({ ws_hb_ms: 50, ws_tick_ms: 20 });
	const c = await wsReady();
	c.send('smd+265598+{"fields":["31"]}');
	await c.next(isTopic('smd+265598'));
	await gw.behaviour({ ws_silent: true });
	const n = c.msgs.length;
	await sleep(300);
	assert.ok(c.msgs.length <= n + 1, 'at most one in flight');
});

test('ws: ws_drop ends every socket now; "close" with a close frame',
    async () => {
	const a = await wsReady();
	const b = await wsReady();
	await gw.behaviour({ ws_drop: true });
	assert.equal((await a.closedP()).code, 1006);
	assert.equal((await b.closedP()).code, 1006);
	assert.equal((await gw.behaviour()).ws_drop, false, 'an action');
	const c = await wsReady();
	await gw.behaviour({ ws_drop: 'close' });
	assert.equal((await c.closedP()).code, 1011);
	assert.equal((await gw.counters()).ws_open, 0);
});

test('ws: ws_stall holds every message, then sends them in order',
    async () => {
	const c = await wsReady();
	await gw.behaviour({ ws_stall: 600 });
	c.send('tic');
	c.send('ech+hb');
	await sleep(300);
	assert.equal(c.msgs.length, c.at, 'nothing while stalled');
	assert.equal((await c.next()).topic, 'tic');
	assert.equal((await c.next()).topic, 'ech+hb');
	assert.equal((await gw.behaviour()).ws_stall, 0);
});

test('ws: smd ends after ws_smd_expire_ms; a resubscription renews it',
    async () => {
	await gw.behaviour({ ws_tick_ms: 20, ws_smd_expire_ms: 1500 });
	const c = await wsReady();
	c.send('smd+265598+{"fields":["31"]}');
	c.send('smd+8314+{"fields":["31"]}');
	await c.next(isTopic('smd+8314'));
	await sleep(500);
	c.send('smd+265598+{"fields":["31"]}');
	await waitFor(async () => (await gw.counters()).ws_smd_expired === 1,
	    { what: 'the first expiry' });
	assert.deepEqual(Object.keys((await gw.counters()).ws_smd_active),
	    ['265598'], 'the renewed one lives on');
	await waitFor(async () => (await gw.counters()).ws_smd_expired === 2,
	    { what: 'the renewed expiry' });
	assert.deepEqual((await gw.counters()).ws_smd_active, {});
	const n = c.msgs.length;
	await sleep(200);
	assert.equal(c.msgs.length, n, 'no ticks after expiry');
});

test('ws: sts on lost authentication (subscriptions gone); the return is ' +
    'silent unless ws_sts_return', async () => {
	await gw.behaviour({ ws_tick_ms: 20 });
	const c = await wsReady();
	c.send('smd+265598+{"fields":["31"]}');
	await c.next(isTopic('smd+265598'));
	await gw.state({ authenticated: false });
	const lost = await c.next(isTopic('sts'));
	assert.equal(lost.args.authenticated, false);
	assert.deepEqual((await gw.counters()).ws_smd_active, {});
	await gw.state({ authenticated: true });
	await sleep(200);
	assert.equal(c.msgs.slice(c.at).filter((m) => m.topic === 'sts' ||
	    m.topic === 'smd+265598').length, 0);
	await gw.behaviour({ ws_sts_return: true });
	await gw.state({ authenticated: false });
	await gw.state({ authenticated: true });
	assert.equal((await c.next(isTopic('sts'))).args.authenticated, false);
	assert.equal((await c.next(isTopic('sts'))).args.authenticated, true);
});

test('ws: counters: ws_messages_out counts what was sent', async () => {
	await gw.behaviour({ ws_tick_ms: 0, ws_hb_ms: 0 });
	const c = await wsReady();
	c.send('tic');
	await c.next(isTopic('tic'));
	assert.equal((await gw.counters()).ws_messages_out, 3);
	await gw.resetCounters();
	const n = await gw.counters();
	assert.equal(n.ws_messages_out, 0);
	assert.equal(n.ws_open, 1, 'the socket outlives a counters reset');
});
