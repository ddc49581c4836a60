/*
 * Conformance to SPEC sections 2-4, black box: the real brokerd and the
 * Gateway simulator, for what no other suite checks.  Command line and
 * environment (-t without -c, rates, non-loopback TCP, IBKR_* variables,
 * -v, JSON logs), listen.tcp_anonymous, SIGINT draining, 414, dot segments,
 * aliases sharing one Gateway-path bucket, the /v1/api/ form sharing the
 * cache, idle_timeout_ms, a chunked body over max_body_bytes.
 * BROKERD_BIN overrides build/brokerd.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startGwsim, startBrokerd, brokerdBuilt, waitFor, sleep, request,
    readStatus, BROKERD } from '../lib/harness.mjs';

const skip = brokerdBuilt() ? false : 'build/brokerd is not built';
const ENV_KEY = 'e'.repeat(24);
const RO_KEY = 'r'.repeat(32);

/* brokerd ARGS with only PATH (and `env`) in its environment. */
function run(args, env = {}) {
	const r = spawnSync(BROKERD, args, { encoding: 'utf8', timeout: 5000,
	    env: { PATH: process.env.PATH, ...env } });
	return { code: r.status, out: r.stdout, err: r.stderr };
}

function tmpdir() {
	return fs.mkdtempSync(path.join(os.tmpdir(), 'conformance-'));
}

/*
 * Send raw bytes on a new connection; resolve everything read until the
 * peer closes or `ms` pass, with `closed` telling which.
 */
function raw(where, data, ms = 2000) {
	return new Promise((resolve) => {
		const s = where.port ? net.connect(where.port, '127.0.0.1') :
		    net.connect(where.socketPath);
		let buf = '';
		let t = null;
		const done = (closed) => {
			clearTimeout(t);
			s.destroy();
			resolve({ text: buf, closed });
		};
		s.setEncoding('utf8');
		s.on('data', (d) => { buf += d; });
		s.on('error', () => {});
		s.on('close', () => done(true));
		t = setTimeout(() => done(false), ms);
		s.write(data);
	});
}

const statusLine = (text) => text.split('\r\n')[0];
const jsonBody = (text) => JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));

describe('command line and configuration check (SPEC 2, 3)', { skip }, () => {
	let dir;

	before(() => {
		dir = tmpdir();
	});
	after(() => fs.rmSync(dir, { recursive: true, force: true }));

	test('-t without -c and no default file: built-in defaults are ok',
	    { skip: fs.existsSync('/etc/brokerd/brokerd.yaml') ?
	    '/etc/brokerd/brokerd.yaml exists' : false }, () => {
		const r = run(['-t']);
		assert.equal(r.code, 0, r.err);
		assert.match(r.out, /^brokerd: configuration .* is ok\n$/);
	});

	test('-t: every rate form of SPEC 3 is accepted, anything else names ' +
	    'file:line:column', () => {
		const f = path.join(dir, 'rates.yaml');
		const good = 'gateway:\n  tls: { insecure: true }\n' +
		    'limits:\n  gateway_rate: 5/2s\nroutes:\n' +
		    '  - { prefix: /a/, to: /v1/api/a/, methods: { GET: read }, ' +
		    'rate: 3/min }\n' +
		    '  - { prefix: /b/, to: /v1/api/b/, methods: { GET: read }, ' +
		    'rate: 1/15min }\n' +
		    '  - { prefix: /c/, to: /v1/api/c/, methods: { GET: read }, ' +
		    'rate: 10/s }\n';
		fs.writeFileSync(f, good);
		let r = run(['-t', '-c', f]);
		assert.equal(r.code, 0, r.err);
		assert.equal(r.out, `brokerd: configuration ${f} is ok\n`);
		fs.writeFileSync(f, good.replace('10/s', '2/h'));
		r = run(['-t', '-c', f]);
		assert.equal(r.code, 1);
		assert.match(r.err, new RegExp(`${f}:8:\\d+: routes\\[2\\]\\.rate`));
	});

	test('-t: a non-loopback TCP address is refused with file:line:column',
	    () => {
		const f = path.join(dir, 'tcp.yaml');
		for (const a of ['10.0.0.1:8000', '0.0.0.0:8000', '[::]:8000']) {
			fs.writeFileSync(f, `listen:\n  tcp: "${a}"\n`);
			const r = run(['-t', '-c', f]);
			assert.equal(r.code, 1, `${a}: ${r.out}`);
			assert.match(r.err, new RegExp(`${f}:2:\\d+: listen\\.tcp`), a);
		}
	});

	test('-t warns when listen.tcp_anonymous is set', () => {
		const f = path.join(dir, 'anon.yaml');
		fs.writeFileSync(f, 'listen:\n  tcp: 127.0.0.1:0\n' +
		    '  tcp_anonymous: [read]\ngateway:\n  tls: { insecure: true }\n');
		const r = run(['-t', '-c', f]);
		assert.equal(r.code, 0, r.err);
		assert.match(r.err, /warn: listen\.tcp_anonymous grants \[read\]/);
	});
});

describe('environment, tcp_anonymous, -v and JSON logs (SPEC 2, 4)',
    { skip }, () => {
	let gw;

	before(async () => {
		gw = await startGwsim();
		await gw.behaviour({ rate_per_s: 0 });
	});
	after(async () => {
		await gw?.stop();
	});

	test('IBKR_BRIDGE_KEY (all scopes), IBKR_BRIDGE_URL (TCP) and ' +
	    'IBKR_GATEWAY_URL (wins over the file)', async () => {
		const bd = await startBrokerd({ gwsim: gw, tcp: false,
		    config: { gateway: { url: 'https://127.0.0.1:1' } },
		    env: { IBKR_BRIDGE_KEY: ENV_KEY,
		    IBKR_BRIDGE_URL: 'http://127.0.0.1:0',
		    IBKR_GATEWAY_URL: gw.url } });
		try {
			const m = bd.log().match(/listening on tcp 127\.0\.0\.1:(\d+)/);
			assert.ok(m, `no TCP listener from IBKR_BRIDGE_URL:\n${bd.log()}`);
			assert.match(bd.log(), new RegExp(`gateway ${gw.url}`));
			const h = { 'x-bridge-key': ENV_KEY };
			let r = await waitFor(async () => {
				const x = await request({ port: Number(m[1]),
				    path: '/iserver/accounts', headers: h });
				return x.status === 200 ? x : null;
			}, { what: 'a forwarded call with the env key over TCP' });
			assert.deepEqual(r.json().accounts, ['DU123456']);
			/* trade scope: not 403 (202, or 429 inside the 1 s spacing) */
			r = await request({ socketPath: bd.socket, method: 'POST',
			    path: '/gateway/reauthenticate', headers: h });
			assert.ok([202, 429].includes(r.status), r.text());
			/* admin scope: the kill switch reads its body, no 403 */
			r = await request({ socketPath: bd.socket, method: 'POST',
			    path: '/gateway/trading', headers: h,
			    body: { enabled: true } });
			assert.equal(r.status, 200, r.text());
			assert.match(bd.log(), /key:env\b/);
			assert.ok(!bd.log().includes(ENV_KEY), 'the key was logged');
		} finally {
			await bd.stop();
		}
	});

	test('listen.tcp_anonymous: keyless TCP gets those scopes only, the ' +
	    'Unix socket still needs a key, start warns', async () => {
		const bd = await startBrokerd({ gwsim: gw,
		    config: { listen: { tcp_anonymous: ['read'] } } });
		try {
			assert.match(bd.log(),
			    /warn: listen\.tcp_anonymous grants \[read\]/);
			let r = await waitFor(async () => {
				const x = await request({ port: bd.tcpPort,
				    path: '/iserver/accounts' });
				return x.status === 200 ? x : null;
			}, { what: 'a keyless read over TCP' });
			r = await request({ port: bd.tcpPort, method: 'POST',
			    path: '/iserver/account/DU123456/orders',
			    body: { orders: [] } });
			assert.equal(r.status, 403);
			assert.equal(r.json().error, 'forbidden');
			r = await request({ socketPath: bd.socket,
			    path: '/iserver/accounts' });
			assert.equal(r.status, 401);
			assert.equal(r.json().error, 'unauthorized');
			/* DNS rebinding still applies to anonymous requests */
			r = await request({ port: bd.tcpPort, path: '/iserver/accounts',
			    headers: { host: 'evil.example:80' } });
			assert.equal(r.status, 421);
			assert.equal(r.json().error, 'misdirected_request');
		} finally {
			await bd.stop();
		}
	});

	test('-v adds debug lines; log.format json gives one object per ' +
	    'line, request lines without the query or the key', async () => {
		const bd = await startBrokerd({ gwsim: gw, args: ['-v'],
		    config: { log: { format: 'json' } } });
		try {
			const r = await bd.request({
			    path: '/trsrv/stocks?symbols=SECRETQUERY' });
			assert.equal(r.status, 200, r.text());
			await bd.waitForLog(/"path":"\/trsrv\/stocks"/);
			const lines = bd.log().trim().split('\n').map((l) =>
			    JSON.parse(l));
			assert.ok(lines.some((l) => l.level === 'debug'),
			    'no debug line with -v');
			const req = lines.find((l) => l.path === '/trsrv/stocks');
			assert.equal(req.method, 'GET');
			assert.equal(req.status, 200);
			assert.equal(typeof req.ms, 'number');
			assert.equal(req.who, 'key:test');
			assert.ok(!bd.log().includes('SECRETQUERY'), 'query logged');
			assert.ok(!bd.log().includes(bd.key), 'key logged');
		} finally {
			await bd.stop();
		}
	});

	test('without -v no debug line', async () => {
		const bd = await startBrokerd({ gwsim: gw,
		    config: { log: { format: 'json' } } });
		try {
			await bd.request({ path: '/trsrv/stocks?symbols=A' });
			await bd.waitForLog(/"path":"\/trsrv\/stocks"/);
			assert.ok(!/"level":"debug"/.test(bd.log()), bd.log());
		} finally {
			await bd.stop();
		}
	});

	test('SIGINT: the request in flight finishes, socket removed, ' +
	    'BROKERD_STATE=stopped, exit 0', async () => {
		const bd = await startBrokerd({ gwsim: gw,
		    config: { limits: { drain_ms: 5000 } } });
		await gw.behaviour({ delay_ms: 800, paths: ['/trsrv/'] });
		try {
			const p = bd.request({ path: '/trsrv/stocks?symbols=A' });
			await sleep(200);
			const exited = new Promise((res) => bd.proc.once('exit',
			    (code, sig) => res({ code, sig })));
			bd.signal('SIGINT');
			const r = await p;
			assert.equal(r.status, 200, r.text());
			assert.deepEqual(await exited, { code: 0, sig: null });
			assert.ok(!fs.existsSync(bd.socket), 'socket left behind');
			assert.equal(readStatus(bd.statusFile).BROKERD_STATE,
			    'stopped');
		} finally {
			await gw.behaviour({ delay_ms: 0, paths: null });
			await bd.stop();
		}
	});
});

describe('HTTP API edges (SPEC 3, 4)', { skip }, () => {
	let gw, bd;

	before(async () => {
		gw = await startGwsim();
		await gw.behaviour({ rate_per_s: 0 });
		bd = await startBrokerd({ gwsim: gw, config: {
		    limits: { gateway_rate: 'off', queue_ms: 100,
		    idle_timeout_ms: 400, max_body_bytes: 1000 },
		    keys: [{ name: 'test', key: 'a'.repeat(32),
		    scopes: ['read', 'trade', 'admin'] },
		    { name: 'ro', key: RO_KEY, scopes: ['read'] }] },
		    key: 'a'.repeat(32) });
		await waitFor(() => readStatus(bd.statusFile)?.BROKERD_STATE ===
		    'authenticated', { what: 'authenticated' });
	});
	after(async () => {
		await bd?.stop();
		await gw?.stop();
	});

	test('414 uri_too_long, as JSON', async () => {
		const r = await bd.request({ path: '/trsrv/' + 'a'.repeat(20000) });
		assert.equal(r.status, 414);
		assert.equal(r.json().error, 'uri_too_long');
		assert.equal(typeof r.json().message, 'string');
	});

	test('dot segments never reach the Gateway under another route\'s ' +
	    'scope', async () => {
		await gw.resetCounters();
		for (const p of ['/portfolio/../iserver/account/DU123456/orders',
		    '/portfolio/%2e%2e/iserver/account/DU123456/orders',
		    '/portfolio/%2E%2E/iserver/account/DU123456/orders',
		    '/portfolio/./../iserver/account/DU123456/orders',
		    '/portfolio/..%2fiserver/account/DU123456/orders',
		    '/v1/api/portfolio/../iserver/account/DU123456/orders']) {
			const body = '{"orders":[]}';
			const { text } = await raw({ socketPath: bd.socket },
			    `POST ${p} HTTP/1.1\r\nHost: x\r\nX-Bridge-Key: ` +
			    `${RO_KEY}\r\nContent-Type: application/json\r\n` +
			    `Content-Length: ${body.length}\r\n` +
			    `Connection: close\r\n\r\n${body}`);
			assert.match(statusLine(text), /^HTTP\/1\.1 4\d\d /, p);
			assert.equal(typeof jsonBody(text).error, 'string', p);
		}
		const c = await gw.counters();
		assert.deepEqual(c.log.filter((l) => l.method === 'POST'), [],
		    'a read key reached the Gateway with a POST');
	});

	test('aliases share one bucket per Gateway path: /marketdata/snapshot, ' +
	    '/iserver/marketdata/snapshot and /v1/api/... (10/s)', async () => {
		await sleep(1100);
		await gw.resetCounters();
		const forms = ['/marketdata/snapshot', '/iserver/marketdata/snapshot',
		    '/v1/api/iserver/marketdata/snapshot'];
		const rs = await Promise.all(Array.from({ length: 15 }, (_, i) =>
		    bd.request({ path: `${forms[i % 3]}?conids=${265598 + i}` +
		    '&fields=31' })));
		const ok = rs.filter((r) => r.status === 200);
		const limited = rs.filter((r) => r.status === 429);
		assert.equal(ok.length, 10, rs.map((r) => r.status).join(' '));
		assert.equal(limited.length, 5);
		for (const r of limited) {
			assert.equal(r.json().error, 'rate_limited');
			assert.match(r.headers['retry-after'], /^\d+$/);
		}
		const c = await gw.counters();
		assert.equal(c.by_route['GET /v1/api/iserver/marketdata/snapshot'],
		    10);
		assert.deepEqual(c.pacing_violations, {});
	});

	test('the /v1/api/ form shares the short form\'s cache (Age)',
	    async () => {
		await sleep(5200);	/* the bootstrap's 1/5s call is behind us */
		await gw.resetCounters();
		const a = await bd.request({ path: '/portfolio/accounts' });
		assert.equal(a.status, 200, a.text());
		const b = await bd.request({ path: '/v1/api/portfolio/accounts' });
		assert.equal(b.status, 200, b.text());
		assert.match(b.headers.age ?? '', /^\d+$/, 'no Age on the copy');
		assert.deepEqual(b.json(), a.json());
		const c = await gw.counters();
		assert.equal(c.by_route['GET /v1/api/portfolio/accounts'] ?? 0,
		    a.headers.age === undefined ? 1 : 0);
	});

	test('idle_timeout_ms closes a kept-alive connection', async () => {
		const t0 = Date.now();
		const { text, closed } = await raw({ socketPath: bd.socket },
		    'GET /health HTTP/1.1\r\nHost: x\r\n\r\n', 3000);
		assert.match(statusLine(text), /^HTTP\/1\.1 200 /);
		assert.ok(closed, 'still open after 3 s');
		const ms = Date.now() - t0;
		assert.ok(ms >= 350 && ms < 1500, `closed after ${ms} ms`);
	});

	test('a chunked body over max_body_bytes is 413 and closes',
	    async () => {
		const chunk = `400\r\n${'x'.repeat(1024)}\r\n`;
		const { text, closed } = await raw({ socketPath: bd.socket },
		    'POST /iserver/__echo HTTP/1.1\r\nHost: x\r\n' +
		    `X-Bridge-Key: ${'a'.repeat(32)}\r\n` +
		    `Transfer-Encoding: chunked\r\n\r\n${chunk}${chunk}0\r\n\r\n`);
		assert.match(statusLine(text), /^HTTP\/1\.1 413 /);
		assert.equal(jsonBody(text).error, 'body_too_large');
		assert.ok(closed);
	});

	test('no CORS header, even for a preflight', async () => {
		for (const method of ['OPTIONS', 'GET']) {
			const r = await bd.request({ tcp: true, method,
			    path: '/iserver/accounts', headers: {
			    origin: 'http://evil.example',
			    'access-control-request-method': 'GET' } });
			for (const h of Object.keys(r.headers))
				assert.ok(!h.startsWith('access-control-'),
				    `${method}: ${h}`);
		}
	});
});
