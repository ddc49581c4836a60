/*
 * Forwarding through brokerd to the Gateway simulator (upstream.c): bodies
 * and headers both ways, pinning, expired and CA certificates, the pool,
 * TLS resumption, the cookie jar, timeouts, a killed Gateway, a reset in
 * the middle of an answer, a POST never sent twice, 200 clients at once.
 * BROKERD_BIN overrides build/brokerd.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { startGwsim, startBrokerd, brokerdBuilt, waitFor, sleep }
    from '../lib/harness.mjs';

const skip = brokerdBuilt() ? false : 'build/brokerd is not built';
const ACCT = 'DU123456';
const blob = (n) => Buffer.from(Array.from({ length: n }, (_, i) => i % 251));
const routeCount = async (gw, key) => (await gw.counters()).by_route[key] ?? 0;
/*
 * No pacing in the way: these tests are about the connection, not limits.
 * Elsewhere /trsrv/ is used: no per-route limit, no fail-fast on state.
 */
const FAST = { limits: { gateway_rate: 'off', queue_ms: 5000 } };

describe('forwarding to the Gateway (pinned, self-signed)', { skip }, () => {
	let gw, bd;

	before(async () => {
		gw = await startGwsim();
		await gw.behaviour({ rate_per_s: 0 });
		bd = await startBrokerd({ gwsim: gw, config: {
		    limits: { ...FAST.limits, max_response_bytes: 2097152 },
		    gateway: { pool: 4, timeout_ms: 1000 },
		    session: { tickle_interval_s: 1 } } });
		await waitFor(() => fs.existsSync(bd.statusFile) &&
		    /STATE=authenticated/.test(fs.readFileSync(bd.statusFile,
		    'utf8')), { what: 'authenticated' });
	});
	after(async () => {
		await bd?.stop();
		await gw?.stop();
	});

	test('binary bodies pass both ways, 0 B and 1 MiB, Content-Type kept',
	    async () => {
		for (const n of [0, 1, 4096, 1 << 20]) {
			const body = crypto.randomBytes(n);
			const r = await bd.request({ method: 'POST',
			    path: '/iserver/__echo', body,
			    headers: { 'content-type': 'application/x-test' } });
			assert.equal(r.status, 200, `${n} bytes`);
			assert.equal(r.headers['content-type'], 'application/x-test');
			assert.ok(r.body.equals(body), `${n} bytes echoed`);
		}
	});

	test('answers with Content-Length and chunked, 1 MiB', async () => {
		for (const q of ['bytes=1048576', 'bytes=1048576&chunked=1',
		    'bytes=0&chunked=1']) {
			const r = await bd.request({ path: `/iserver/__blob?${q}` });
			assert.equal(r.status, 200, q);
			const n = Number(/bytes=(\d+)/.exec(q)[1]);
			assert.ok(r.body.equals(blob(n)), `${q}: the bytes`);
		}
	});

	test('only brokerd\'s headers reach the Gateway', async () => {
		await bd.request({ method: 'POST', path: '/iserver/__echo',
		    body: 'x', headers: { cookie: 'evil=1', 'x-custom': 'no',
		    authorization: 'Bearer nope', 'content-type': 'text/plain' } });
		await bd.request({ method: 'POST', path: '/iserver/account/' +
		    `${ACCT}/orders/whatif`, body: '' });
		const log = (await gw.counters()).log;
		const echo = log.filter((l) => l.path === '/v1/api/iserver/__echo')
		    .at(-1);
		assert.ok(echo, 'the echo call reached the Gateway');
		const h = echo.headers;
		assert.equal(h['user-agent'], 'brokerd/0.1.0');
		assert.match(h.host, /^127\.0\.0\.1:\d+$/);
		assert.equal(h['x-bridge-key'], undefined);
		assert.equal(h.authorization, undefined);
		assert.equal(h['x-custom'], undefined);
		assert.doesNotMatch(h.cookie ?? '', /evil/);
		for (const l of log)
			assert.equal(l.headers['x-bridge-key'], undefined);
		/* An empty POST still says Content-Length: 0 (else 411). */
		const w = log.filter((l) => l.path.endsWith('/orders/whatif')).at(-1);
		assert.equal(w.headers['content-length'], '0');
		assert.notEqual(w.status, 411);
	});

	test('the cookie jar replays the /tickle cookie', async () => {
		const seen = await waitFor(async () => {
			await bd.request({ path: '/iserver/accounts' });
			const l = (await gw.counters()).log.filter((x) =>
			    x.path === '/v1/api/iserver/accounts').at(-1);
			return /x-sess-uuid=/.test(l?.headers.cookie ?? '') &&
			    l.headers.cookie;
		}, { timeoutMs: 5000, intervalMs: 200, what: 'the cookie' });
		assert.match(seen, /^x-sess-uuid=[^;\s]+$/);
	});

	test('kept-alive connections are reused, new ones resume TLS',
	    async () => {
		const before_ = await gw.counters();
		for (let i = 0; i < 30; i++)
			assert.equal((await bd.request({ path: '/iserver/accounts' }))
			    .status, 200);
		const mid = await gw.counters();
		assert.ok(mid.handshakes - before_.handshakes <= 1,
		    `30 calls, ${mid.handshakes - before_.handshakes} handshakes`);
		await gw.behaviour({ close_after_response: true,
		    paths: ['/iserver/accounts'] });
		/* Up to 4 idle connections go first, then each call needs a
		 * new one. */
		for (let i = 0; i < 10; i++)
			assert.equal((await bd.request({ path: '/iserver/accounts' }))
			    .status, 200);
		await gw.behaviour({ close_after_response: false, paths: null });
		const end = await gw.counters();
		assert.ok(end.handshakes - mid.handshakes >= 5, 'new connections');
		assert.ok(end.resumed - mid.resumed >= 5,
		    `resumed ${end.resumed - mid.resumed} of ` +
		    `${end.handshakes - mid.handshakes}`);
		const m = await bd.request({ path: '/metrics' });
		assert.match(m.text(), /handshakes/);
	});

	test('GETs survive the Gateway closing idle connections', async () => {
		await gw.behaviour({ keep_alive_ms: 40 });
		try {
			for (let i = 0; i < 20; i++) {
				const r = await bd.request({ path: '/iserver/accounts' });
				assert.equal(r.status, 200, `call ${i}`);
				await sleep(i % 2 ? 40 : 30);
			}
		} finally {
			await gw.behaviour({ keep_alive_ms: 30000 });
		}
	});

	test('silence: 504 gateway_timeout within timeout_ms + 10%', async () => {
		await gw.behaviour({ silent: true, paths: ['/iserver/__echo'] });
		try {
			const t0 = performance.now();
			const r = await bd.request({ method: 'POST',
			    path: '/iserver/__echo', body: 'x' });
			const ms = performance.now() - t0;
			assert.equal(r.status, 504);
			assert.equal(r.json().error, 'gateway_timeout');
			assert.ok(ms >= 950 && ms <= 1100, `${ms} ms`);
		} finally {
			await gw.behaviour({ silent: false, paths: null });
		}
		assert.equal((await bd.request({ path: '/iserver/accounts' })).status,
		    200, 'the pool recovers');
	});

	test('reset mid-body: 502 gateway_bad_response for a GET', async () => {
		await gw.behaviour({ reset_mid_body: true,
		    paths: ['/iserver/__blob'] });
		try {
			const r = await bd.request({
			    path: '/iserver/__blob?bytes=200000' });
			assert.equal(r.status, 502);
			assert.equal(r.json().error, 'gateway_bad_response');
		} finally {
			await gw.behaviour({ reset_mid_body: false, paths: null });
		}
		const r = await bd.request({ path: '/iserver/__blob?bytes=1000' });
		assert.ok(r.body.equals(blob(1000)));
	});

	test('a POST order lost after sending is never sent again', async () => {
		const key = `POST /v1/api/iserver/account/${ACCT}/orders`;
		const n0 = await routeCount(gw, key);
		await gw.behaviour({ reset_mid_body: true,
		    paths: [`/iserver/account/${ACCT}/orders`] });
		try {
			const r = await bd.request({ method: 'POST',
			    path: `/iserver/account/${ACCT}/orders`,
			    body: { orders: [{ conid: 265598, side: 'BUY',
			    orderType: 'MKT', quantity: 1, tif: 'DAY',
			    cOID: `t-${crypto.randomUUID()}` }] } });
			assert.equal(r.status, 502);
			assert.equal(r.json().error, 'gateway_outcome_unknown');
		} finally {
			await gw.behaviour({ reset_mid_body: false, paths: null });
		}
		await sleep(200);
		assert.equal(await routeCount(gw, key) - n0, 1, 'sent exactly once');
	});

	test('an answer over max_response_bytes: 502', async () => {
		const r = await bd.request({ path: '/iserver/__blob?bytes=2097152' });
		assert.equal(r.status, 200, 'exactly the cap');
		for (const q of ['bytes=2097153', 'bytes=2097153&chunked=1']) {
			const big = await bd.request({ path: `/iserver/__blob?${q}` });
			assert.equal(big.status, 502, q);
			assert.equal(big.json().error, 'gateway_bad_response', q);
		}
		assert.equal((await bd.request({ path: '/iserver/accounts' }))
		    .status, 200);
	});

	test('200 concurrent clients over 4 pooled connections', async () => {
		const c0 = await gw.counters();
		const bodies = Array.from({ length: 200 },
		    (_, i) => crypto.randomBytes(64 + i));
		const rs = await Promise.all(bodies.map((b) => bd.request({
		    method: 'POST', path: '/iserver/__echo', body: b,
		    timeoutMs: 15000 })));
		rs.forEach((r, i) => {
			assert.equal(r.status, 200, `client ${i}`);
			assert.ok(r.body.equals(bodies[i]), `client ${i} body`);
		});
		const c1 = await gw.counters();
		assert.ok(c1.connections - c0.connections <= 4,
		    `${c1.connections - c0.connections} new connections`);
		const ids = new Set(c1.log.filter((l) =>
		    l.path === '/v1/api/iserver/__echo').slice(-200)
		    .map((l) => l.conn));
		assert.ok(ids.size <= 4, `${ids.size} connections used`);
	});
});

describe('Gateway certificates', { skip }, () => {
	test('an expired pinned certificate is accepted', async () => {
		const gw = await startGwsim({ certMode: 'expired' });
		const bd = await startBrokerd({ gwsim: gw });
		try {
			const r = await bd.request({ path: '/iserver/accounts' });
			assert.equal(r.status, 200);
		} finally {
			await bd.stop();
			await gw.stop();
		}
	});

	test('a wrong pin is refused, with both fingerprints in the log',
	    async () => {
		const gw = await startGwsim();
		const wrong = Array.from(crypto.randomBytes(32), (b) =>
		    b.toString(16).padStart(2, '0').toUpperCase()).join(':');
		const bd = await startBrokerd({ gwsim: gw,
		    config: { gateway: { tls: { pin_sha256: wrong } } } });
		try {
			const r = await bd.request({ path: '/iserver/accounts' });
			assert.ok(r.status === 502 || r.status === 503,
			    `status ${r.status}`);
			if (r.status === 502) {
				assert.equal(r.json().error, 'gateway_certificate');
			}
			await bd.waitForLog(new RegExp(gw.fingerprint));
			assert.match(bd.log(), new RegExp(wrong));
			assert.equal((await gw.counters()).total, 0,
			    'no request reached the Gateway');
		} finally {
			await bd.stop();
			await gw.stop();
		}
	});

	test('ca_file: the right CA passes (IP host), a wrong CA is refused',
	    async () => {
		const gw = await startGwsim({ certMode: 'ca' });
		const other = await startGwsim({ certMode: 'ca' });
		const ok = await startBrokerd({ gwsim: gw, config: { gateway: {
		    tls: { pin_sha256: null, ca_file: gw.ca_file } } } });
		const bad = await startBrokerd({ gwsim: gw, config: { gateway: {
		    tls: { pin_sha256: null, ca_file: other.ca_file } } } });
		try {
			const r = await ok.request({ path: '/trsrv/stocks?symbols=AAPL' });
			assert.equal(r.status, 200);
			const b = await bad.request({ path: '/trsrv/stocks?symbols=AAPL' });
			assert.equal(b.status, 502);
			assert.equal(b.json().error, 'gateway_certificate');
			await bad.waitForLog(/not correctly signed|not trusted/i);
		} finally {
			await ok.stop();
			await bad.stop();
			await other.stop();
			await gw.stop();
		}
	});

	test('gateway-fingerprint prints the pin, or one error line',
	    async () => {
		const { spawnSync } = await import('node:child_process');
		const { BROKERD } = await import('../lib/harness.mjs');
		const gw = await startGwsim({ certMode: 'expired' });
		try {
			const ok = spawnSync(BROKERD, ['gateway-fingerprint', gw.url],
			    { encoding: 'utf8', timeout: 10000 });
			assert.equal(ok.status, 0, ok.stderr);
			assert.equal(ok.stdout, `${gw.fingerprint}\n`);
			assert.match(ok.stderr, /paste into gateway\.tls\.pin_sha256/);
		} finally {
			await gw.stop();
		}
		const bad = spawnSync(BROKERD, ['gateway-fingerprint',
		    `https://127.0.0.1:${gw.port}`], { encoding: 'utf8',
		    timeout: 10000 });
		assert.equal(bad.status, 1);
		assert.equal(bad.stdout, '');
		assert.equal(bad.stderr.trim().split('\n').length, 1);
		assert.match(bad.stderr, /refused/i);
	});

	test('gateway-fingerprint prints the suite: AES-128-GCM when ' +
	    'the client\'s order decides, ChaCha20-Poly1305 when the server ' +
	    'prefers it',
	    async () => {
		const { execFile } = await import('node:child_process');
		const tls = await import('node:tls');
		const { BROKERD } = await import('../lib/harness.mjs');
		/* Only the simulator's certificate and key are needed. */
		const gw = await startGwsim();
		const pair = { cert: fs.readFileSync(gw.cert),
		    key: fs.readFileSync(gw.cert.replace(/cert\.pem$/, 'key.pem')) };
		await gw.stop();
		const suite = async (opts) => {
			const srv = tls.createServer({ ...pair, ...opts },
			    (s) => s.end());
			await new Promise((r) => srv.listen(0, '127.0.0.1', r));
			try {
				/* Not spawnSync: this process is the server. */
				const r = await new Promise((res) => execFile(BROKERD,
				    ['gateway-fingerprint', 'https://127.0.0.1:' +
				    srv.address().port], { timeout: 10000 },
				    (err, stdout, stderr) => res({ err, stdout,
				    stderr })));
				assert.equal(r.err, null, r.stderr);
				assert.match(r.stdout, /^([0-9A-F]{2}:){31}[0-9A-F]{2}\n$/);
				return (r.stderr.match(/^negotiated (.*)$/m) || [])[1];
			} finally {
				srv.close();
			}
		};
		assert.equal(await suite({ honorCipherOrder: false }),
		    'TLSv1.2 TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256');
		assert.equal(await suite({ honorCipherOrder: true, ciphers:
		    'ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256' }),
		    'TLSv1.2 TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256');
	});

	test('no pin, CA or insecure: brokerd refuses to start', async () => {
		const gw = await startGwsim();
		try {
			const r = await startBrokerd({ gwsim: gw, expectFail: true,
			    config: { gateway: { tls: { pin_sha256: null } } } });
			assert.equal(r.code, 1);
			assert.match(r.log(), /gateway-fingerprint/);
			assert.match(r.log(), /pin_sha256/);
		} finally {
			await gw.stop();
		}
	});
});

describe('a Gateway that goes away', { skip }, () => {
	test('killed: 502 in under 100 ms, then recovery on its return',
	    async () => {
		let gw = await startGwsim();
		const port = gw.port;
		const bd = await startBrokerd({ gwsim: gw, config: {
		    gateway: { tls: { pin_sha256: null, insecure: true } } } });
		try {
			assert.equal((await bd.request({ path: '/iserver/accounts' }))
			    .status, 200);
			await gw.stop();
			gw = null;
			await sleep(50);
			const t0 = performance.now();
			const r = await bd.request({ path: '/trsrv/stocks?symbols=AAPL' });
			const ms = performance.now() - t0;
			assert.equal(r.status, 502);
			assert.equal(r.json().error, 'gateway_unreachable');
			assert.ok(ms < 100, `${ms} ms`);
			gw = await startGwsim({ port });
			const back = await waitFor(async () => (await bd.request({
			    path: '/trsrv/stocks?symbols=AAPL' })).status === 200,
			    { timeoutMs: 8000, intervalMs: 200,
			    what: 'a 200 after the Gateway came back' });
			assert.ok(back);
		} finally {
			await bd.stop();
			await gw?.stop();
		}
	});
});

/*
 * A Gateway that drops a kept-alive connection the moment a request for
 * a path ending in /drop arrives on it (not the first on the connection),
 * as one does that closed an idle connection just before brokerd reused it.
 */
async function startDropper({ key, cert }) {
	const https = await import('node:https');
	const seen = { drop: 0, conns: 0, methods: [] };
	const srv = https.createServer({ key, cert, keepAliveTimeout: 60000 },
	    (req, res) => {
		req.socket.n = (req.socket.n || 0) + 1;
		req.resume();
		req.on('end', () => {
			if (req.url.endsWith('/drop')) {
				seen.drop++;
				seen.methods.push(`${req.method} ${req.socket.n}`);
				if (req.socket.n > 1) {
					req.socket.destroy();
					return;
				}
			}
			const body = JSON.stringify({ authenticated: true,
			    connected: true, competing: false, message: '' });
			res.writeHead(200, { 'content-type': 'application/json',
			    'content-length': Buffer.byteLength(body) });
			res.end(body);
		});
	});
	srv.on('secureConnection', () => seen.conns++);
	await new Promise((r) => srv.listen(0, '127.0.0.1', r));
	return { port: srv.address().port, seen,
	    stop: () => { srv.closeAllConnections(); srv.close(); } };
}

describe('a kept-alive connection that turns out closed', { skip }, () => {
	test('a GET is sent once more on a new connection; a POST is not',
	    async () => {
		/* Only the simulator's certificate and key are needed. */
		const gw = await startGwsim();
		const pair = { cert: fs.readFileSync(gw.cert),
		    key: fs.readFileSync(gw.cert.replace(/cert\.pem$/, 'key.pem')) };
		await gw.stop();
		const drop = await startDropper(pair);
		const bd = await startBrokerd({ gwsim: { ...gw, port: drop.port },
		    config: { gateway: { pool: 1 } } });
		try {
			assert.equal((await bd.request({ path: '/trsrv/ok' })).status,
			    200);
			const c0 = drop.seen.conns;
			const r = await bd.request({ path: '/trsrv/drop' });
			assert.equal(r.status, 200, 'the GET was retried');
			/* Dropped on a reused connection, answered on a new one. */
			assert.equal(drop.seen.methods.length, 2);
			assert.match(drop.seen.methods[0], /^GET ([2-9]|\d\d+)$/);
			assert.equal(drop.seen.methods[1], 'GET 1');
			assert.equal(drop.seen.conns - c0, 1, 'on one new connection');
			await bd.waitForLog(/once more on a new connection/);

			assert.equal((await bd.request({ path: '/trsrv/ok' })).status,
			    200);
			const p = await bd.request({ method: 'POST',
			    path: '/iserver/drop', body: '{}' });
			assert.equal(p.status, 502);
			assert.equal(p.json().error, 'gateway_outcome_unknown');
			await sleep(100);
			assert.equal(drop.seen.methods.length, 3,
			    'the POST reached the Gateway once');
			assert.match(drop.seen.methods[2], /^POST ([2-9]|\d\d+)$/);
		} finally {
			await bd.stop();
			drop?.stop();
		}
	});
});

describe('reload (SIGHUP)', { skip }, () => {
	test('a route\'s new rate applies at once', async () => {
		const gw = await startGwsim();
		const bd = await startBrokerd({ gwsim: gw, config:
		    'limits:\n  queue_ms: 100\nroutes:\n' +
		    '  - { prefix: /trsrv/, to: /v1/api/trsrv/, ' +
		    'methods: { GET: read }, rate: 1/5s }\n' });
		const path = '/trsrv/stocks?symbols=AAPL';
		const nc = { 'cache-control': 'no-cache' };
		try {
			assert.equal((await bd.request({ path, headers: nc }))
			    .status, 200);
			assert.equal((await bd.request({ path, headers: nc }))
			    .status, 429, '1/5s');
			const text = fs.readFileSync(bd.configFile, 'utf8');
			fs.writeFileSync(bd.configFile,
			    text.replace('rate: 1/5s', 'rate: 10/s'));
			await bd.reload(/configuration reloaded/);
			assert.equal((await bd.request({ path, headers: nc }))
			    .status, 200, 'the route is 10/s now');
		} finally {
			await bd.stop();
			await gw.stop();
		}
	});

	test('a reload does not open a fresh window', async () => {
		const gw = await startGwsim();
		const bd = await startBrokerd({ gwsim: gw, config: {
		    limits: { gateway_rate: '5/10s', queue_ms: 0,
		    rate_slack_ms: 100 } } });
		const path = '/trsrv/stocks?symbols=AAPL';
		const nc = { 'cache-control': 'no-cache' };
		try {
			let n = 0;
			while ((await bd.request({ path, headers: nc })).status ===
			    200)
				assert.ok(++n <= 5, 'more than 5 in 10 s');
			const text = fs.readFileSync(bd.configFile, 'utf8');
			fs.writeFileSync(bd.configFile,
			    text.replace('rate_slack_ms: 100', 'rate_slack_ms: 50'));
			await bd.reload(/configuration reloaded/);
			assert.equal((await bd.request({ path, headers: nc }))
			    .status, 429, 'what was sent before the reload counts');
		} finally {
			await bd.stop();
			await gw.stop();
		}
	});

	test('new TLS settings apply to new connections, idle ones close',
	    async () => {
		const gw = await startGwsim();
		const bd = await startBrokerd({ gwsim: gw });
		const path = '/trsrv/stocks?symbols=AAPL';
		try {
			assert.equal((await bd.request({ path })).status, 200);
			const text = fs.readFileSync(bd.configFile, 'utf8');
			const wrong = '00:'.repeat(31) + '00';
			fs.writeFileSync(bd.configFile,
			    text.replace(gw.fingerprint, wrong));
			await bd.reload(/configuration reloaded/);
			const r = await bd.request({ path });
			assert.equal(r.status, 502, 'the idle connection closed, ' +
			    'the new one checks the new pin');
			fs.writeFileSync(bd.configFile, text.replace(gw.fingerprint,
			    'bad pin'));
			await bd.reload(/reload failed/);
			assert.equal((await bd.request({ path })).status, 502,
			    'an invalid file changes nothing');
			fs.writeFileSync(bd.configFile, text);
			await bd.reload(/configuration reloaded/);
			assert.equal((await bd.request({ path })).status, 200);
		} finally {
			await bd.stop();
			await gw.stop();
		}
	});
});

/*
 * A TCP relay that holds every new connection's bytes for delayMs, so
 * that brokerd's TLS handshake is still going when the test acts.
 */
async function startSlowRelay(port, delayMs) {
	const net = await import('node:net');
	const socks = new Set();
	const self = { delayMs };
	const srv = net.createServer((s) => {
		socks.add(s);
		s.pause();
		s.on('error', () => {});
		setTimeout(() => {
			const up = net.connect(port, '127.0.0.1');
			socks.add(up);
			up.on('error', () => s.destroy());
			s.on('close', () => up.destroy());
			up.on('close', () => s.destroy());
			s.pipe(up);
			up.pipe(s);
			s.resume();
		}, self.delayMs);
	});
	await new Promise((r) => srv.listen(0, '127.0.0.1', r));
	return Object.assign(self, { port: srv.address().port,
	    stop: () => { for (const s of socks) s.destroy(); srv.close(); } });
}

/* A client request that the test aborts when it wants. */
function abortable(bd, path) {
	const req = http.request({ socketPath: bd.socket, path,
	    headers: { 'x-bridge-key': bd.key, 'cache-control': 'no-cache' } });
	req.on('error', () => {});
	req.end();
	return req;
}

describe('review: connections left behind by a cancelled request', { skip },
    () => {
	test('one made under TLS settings a reload replaced does not stay ' +
	    'in the pool', async () => {
		const gw = await startGwsim();
		await gw.behaviour({ rate_per_s: 0, close_after_response: true });
		const slow = await startSlowRelay(gw.port, 700);
		const bd = await startBrokerd({ gwsim: { ...gw, port: slow.port },
		    config: { limits: { gateway_rate: 'off', queue_ms: 1500 },
		    gateway: { pool: 1, tls: { pin_sha256: null, insecure: true } },
		    session: { check_interval_s: 60 } } });
		try {
			await waitFor(() => /STATE=authenticated/.test(
			    fs.readFileSync(bd.statusFile, 'utf8')),
			    { what: 'authenticated' });
			await sleep(1600);	/* the bootstrap calls are done */
			const a = abortable(bd, '/trsrv/stocks?symbols=AAPL');
			await sleep(150);	/* its connection is handshaking */
			const text = fs.readFileSync(bd.configFile, 'utf8');
			fs.writeFileSync(bd.configFile, text
			    .replace('pin_sha256: null',
			    `pin_sha256: "${gw.fingerprint}"`)
			    .replace('insecure: true', 'insecure: false'));
			await bd.reload(/configuration reloaded/);
			a.destroy();
			await sleep(900);	/* that handshake has finished */
			await gw.behaviour({ close_after_response: false });
			const r = await bd.request({ path: '/trsrv/stocks?symbols=AAPL' });
			assert.equal(r.status, 200, r.text());
		} finally {
			await bd.stop();
			slow.stop();
			await gw.stop();
		}
	});

	test('a GET dropped on a pooled connection that served nothing yet ' +
	    'is sent once more', async () => {
		const gw = await startGwsim();
		const pair = { cert: fs.readFileSync(gw.cert),
		    key: fs.readFileSync(gw.cert.replace(/cert\.pem$/, 'key.pem')) };
		await gw.stop();
		/* Drops a /drop that comes first on a connection older than
		 * 400 ms (one that sat idle); closes after anything else. */
		const https = await import('node:https');
		const seen = [];
		const srv = https.createServer({ ...pair,
		    keepAliveTimeout: 60000 }, (req, res) => {
			const s = req.socket;
			s.n = (s.n || 0) + 1;
			req.resume();
			req.on('end', () => {
				if (req.url.endsWith('/drop')) {
					seen.push(`${s.n} ${Date.now() - s.born}`);
					if (s.n === 1 && Date.now() - s.born > 400) {
						s.destroy();
						return;
					}
				} else
					res.setHeader('connection', 'close');
				const body = JSON.stringify({ authenticated: true,
				    connected: true, competing: false, message: '' });
				res.writeHead(200, { 'content-type': 'application/json',
				    'content-length': Buffer.byteLength(body) });
				res.end(body);
			});
		});
		srv.on('secureConnection', (s) => { s.born = Date.now(); });
		await new Promise((r) => srv.listen(0, '127.0.0.1', r));
		const slow = await startSlowRelay(srv.address().port, 0);
		const bd = await startBrokerd({ gwsim: { ...gw, port: slow.port },
		    config: { limits: { gateway_rate: 'off' },
		    gateway: { pool: 1 }, session: { check_interval_s: 60 } } });
		try {
			await waitFor(() => /STATE=authenticated/.test(
			    fs.readFileSync(bd.statusFile, 'utf8')),
			    { what: 'authenticated' });
			await sleep(500);	/* the bootstrap calls are done */
			slow.delayMs = 700;
			const a = abortable(bd, '/trsrv/stocks?symbols=AAPL');
			await sleep(150);	/* its connection is handshaking */
			a.destroy();
			slow.delayMs = 0;
			await sleep(1300);	/* idle now, having served nothing */
			const r = await bd.request({ path: '/trsrv/drop' });
			assert.equal(seen.length, 2, seen.join(', '));
			assert.equal(r.status, 200, r.text());
		} finally {
			await bd.stop();
			slow.stop();
			srv.closeAllConnections();
			srv.close();
		}
	});
});
