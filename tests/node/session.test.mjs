/*
 * The session watcher against the real brokerd and the Gateway simulator:
 * every state transition reaches the status file within one check interval
 * and /gateway/auth-status agrees; ssodh/init re-authenticates; the tickle
 * cadence; a forwarded 401 or "no bridge" triggers an immediate check;
 * BROKERD_STATE=stopped after SIGTERM.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startGwsim, startBrokerd, brokerdBuilt, readStatus, sleep,
    waitFor } from '../lib/harness.mjs';

const skip = brokerdBuilt() ? false : 'build/brokerd is not built';
const INTERVAL_MS = 1000;
/* one interval, plus the request and the file write */
const WITHIN_MS = INTERVAL_MS + 700;

async function authStatus(bd) {
	const r = await bd.request({ path: '/gateway/auth-status', key: false });
	assert.equal(r.status, 200);
	return r.json();
}

/*
 * Wait until the status file says `state`; return how long it took.  Then
 * check /gateway/auth-status tells the same.
 */
async function reaches(bd, state, extra = {}, timeoutMs = WITHIN_MS) {
	const t0 = Date.now();
	const st = await waitFor(() => {
		const s = readStatus(bd.statusFile);
		return s && s.BROKERD_STATE === state ? s : null;
	}, { timeoutMs, intervalMs: 20,
	    what: `BROKERD_STATE=${state} (now ${JSON.stringify(
	    readStatus(bd.statusFile))})` });
	const ms = Date.now() - t0;
	for (const [k, v] of Object.entries(extra))
		assert.equal(st[k], v, `${k} in state ${state}`);
	const a = await authStatus(bd);
	assert.equal(a.state, state, 'auth-status agrees with the file');
	assert.equal(a.authenticated, state === 'authenticated');
	assert.equal(a.connected, st.BROKERD_CONNECTED === '1');
	assert.equal(a.competing, st.BROKERD_COMPETING === '1');
	return { ms, st };
}

function routeCount(c, key) {
	return c.by_route[key] || 0;
}

function history(bd) {
	return fs.readFileSync(bd.historyFile, 'utf8').trim().split('\n')
	    .map((l) => JSON.parse(l));
}

describe('session watcher', { skip, timeout: 60000 }, () => {
	test('every transition reaches the status file within one interval',
	    async () => {
		let gw = await startGwsim();
		const port = gw.port;
		/* insecure: the restarted simulator has a new certificate */
		const bd = await startBrokerd({ gwsim: gw, config: {
		    gateway: { tls: { pin_sha256: null, insecure: true },
		    timeout_ms: 2000, connect_timeout_ms: 1000 },
		    session: { check_interval_s: 1, tickle_interval_s: 60,
		    reauthenticate: true } } });
		try {
			let r = await reaches(bd, 'authenticated', {
			    BROKERD_AUTHENTICATED: '1', BROKERD_CONNECTED: '1',
			    BROKERD_COMPETING: '0', BROKERD_PID: String(bd.pid),
			    BROKERD_CHECK_INTERVAL: '1' }, 3000);
			const seq0 = Number(r.st.BROKERD_SEQ);
			assert.ok(seq0 >= 1);
			/* the bootstrap calls after the transition */
			await waitFor(async () => {
				const c = await gw.counters();
				return routeCount(c, 'GET /v1/api/iserver/accounts') >= 1 &&
				    routeCount(c, 'GET /v1/api/portfolio/accounts') >= 1;
			}, { what: 'iserver/accounts and portfolio/accounts' });
			/* CHECKED moves with every check */
			const c0 = Number(r.st.BROKERD_CHECKED_UNIX);
			await waitFor(() => Number(readStatus(bd.statusFile)
			    .BROKERD_CHECKED_UNIX) > c0, { timeoutMs: 2500,
			    what: 'BROKERD_CHECKED to move' });

			/* connected, not authenticated, and ssodh/init fails */
			const msg = 'it\'s "not" authenticated $(touch PWNED) `id`';
			await gw.resetCounters();
			await gw.state({ authenticated: false, reauth_works: false,
			    message: msg });
			r = await reaches(bd, 'unauthenticated', {
			    BROKERD_AUTHENTICATED: '0', BROKERD_CONNECTED: '1',
			    BROKERD_MESSAGE: msg, BROKERD_SEQ: String(seq0 + 1) });
			assert.equal((await authStatus(bd)).message, msg);
			const init = await waitFor(async () => (await gw.counters())
			    .log.find((e) => e.path ===
			    '/v1/api/iserver/auth/ssodh/init'), {
			    what: 'an ssodh/init' });
			assert.equal(init.method, 'POST');
			assert.equal(init.body_len,
			    '{"publish":true,"compete":false}'.length);
			assert.match(init.headers['content-type'],
			    /^application\/json/);
			assert.ok(!fs.existsSync('PWNED'));

			/* POST /gateway/reauthenticate: ssodh/init now works */
			await gw.state({ reauth_works: true });
			await sleep(1100);	/* past the forced 1 s gap */
			const rr = await bd.request({ method: 'POST',
			    path: '/gateway/reauthenticate', body: '' });
			assert.ok(rr.status >= 200 && rr.status < 300,
			    `reauthenticate: ${rr.status} ${rr.text()}`);
			r = await reaches(bd, 'authenticated', {}, 2500);
			assert.ok(routeCount(await gw.counters(),
			    'POST /v1/api/iserver/auth/ssodh/init') >= 2);

			/* competing, and back */
			await gw.state({ competing: true, message: 'competing' });
			r = await reaches(bd, 'competing',
			    { BROKERD_COMPETING: '1' });
			await gw.state({ competing: false, message: '' });
			await reaches(bd, 'authenticated');

			/* the read-only session is gone, and back */
			await gw.state({ session: false });
			await reaches(bd, 'unauthenticated',
			    { BROKERD_CONNECTED: '0' });
			await gw.state({ session: true });
			await reaches(bd, 'authenticated');

			/* the Gateway is down, and back on the same port */
			await gw.stop();
			gw = null;
			r = await reaches(bd, 'gateway_down', {
			    BROKERD_AUTHENTICATED: '0', BROKERD_CONNECTED: '0' });
			assert.notEqual(r.st.BROKERD_MESSAGE, '',
			    'gateway_down says why');
			gw = await startGwsim({ port });
			await reaches(bd, 'authenticated', {}, 2500);

			/* one history line per transition, seq in step */
			const h = history(bd);
			const seq = Number(readStatus(bd.statusFile).BROKERD_SEQ);
			assert.equal(h.length, seq);
			assert.deepEqual(h.map((e) => e.to), ['authenticated',
			    'unauthenticated', 'authenticated', 'competing',
			    'authenticated', 'unauthenticated', 'authenticated',
			    'gateway_down', 'authenticated']);
			for (let i = 1; i < h.length; i++) {
				assert.equal(h[i].from, h[i - 1].to);
				assert.equal(h[i].seq, h[i - 1].seq + 1);
			}
			/* /gateway/status carries the same transitions */
			const gs = await bd.request({ path: '/gateway/status' });
			assert.equal(gs.status, 200);
			const tr = gs.json().transitions;
			assert.deepEqual(tr.map((e) => e.to), h.map((e) => e.to));
			assert.match(bd.log(), /info: gateway session: authenticated -> unauthenticated \(it's "not" authenticated/);
			assert.match(bd.log(), /info: gateway session: authenticated -> gateway_down/);
		} finally {
			await bd.stop();
			if (gw)
				await gw.stop();
		}
	});

	test('ssodh/init on its own when connected but not authenticated',
	    async () => {
		const gw = await startGwsim();
		const bd = await startBrokerd({ gwsim: gw });
		try {
			await reaches(bd, 'authenticated', {}, 3000);
			await gw.state({ authenticated: false });
			await reaches(bd, 'unauthenticated');
			/* the watcher's ssodh/init, then a check ~1 s later */
			await reaches(bd, 'authenticated', {}, 2500);
			const c = await gw.counters();
			assert.equal(routeCount(c,
			    'POST /v1/api/iserver/auth/ssodh/init'), 1);
			/* after the new brokerage session: bootstrap again */
			await waitFor(async () => routeCount(await gw.counters(),
			    'GET /v1/api/iserver/accounts') >= 2, {
			    what: 'a second iserver/accounts' });
			/* portfolio/accounts (1/5s) as well, once pacing allows */
			await waitFor(async () => routeCount(await gw.counters(),
			    'GET /v1/api/portfolio/accounts') >= 2, {
			    timeoutMs: 8000, intervalMs: 200,
			    what: 'a second portfolio/accounts' });
		} finally {
			await bd.stop();
			await gw.stop();
		}
	});

	test('tickle every tickle_interval_s (10 s at 1 s: 10 +/- 1)',
	    async () => {
		const gw = await startGwsim();
		const bd = await startBrokerd({ gwsim: gw, config: {
		    session: { check_interval_s: 5, tickle_interval_s: 1 } } });
		try {
			await reaches(bd, 'authenticated', {}, 3000);
			await gw.resetCounters();
			await sleep(10000);
			const c = await gw.counters();
			const n = routeCount(c, 'POST /v1/api/tickle');
			assert.ok(n >= 9 && n <= 11, `${n} tickles in 10 s`);
			const tk = c.log.find((e) => e.path === '/v1/api/tickle');
			assert.equal(tk.body_len, 0);
		} finally {
			await bd.stop();
			await gw.stop();
		}
	});

	test('a tickle answer counts as a check', async () => {
		const gw = await startGwsim();
		const bd = await startBrokerd({ gwsim: gw, config: {
		    session: { check_interval_s: 30, tickle_interval_s: 1 } } });
		try {
			await reaches(bd, 'authenticated', {}, 3000);
			await gw.state({ competing: true });
			await reaches(bd, 'competing', {}, WITHIN_MS);
			const c = await gw.counters();
			assert.equal(routeCount(c, 'GET /v1/api/iserver/auth/status'),
			    1, 'only the first check ran');
		} finally {
			await bd.stop();
			await gw.stop();
		}
	});

	test('a forwarded 401 triggers an immediate check, debounced',
	    async () => {
		const gw = await startGwsim();
		const bd = await startBrokerd({ gwsim: gw, config: {
		    session: { check_interval_s: 30, tickle_interval_s: 60 } } });
		try {
			await reaches(bd, 'authenticated', {}, 3000);
			await sleep(300);
			await gw.state({ session: false });
			await gw.resetCounters();
			const r = await bd.request({
			    path: '/trsrv/stocks?symbols=AAPL' });
			assert.equal(r.status, 401);
			await reaches(bd, 'unauthenticated',
			    { BROKERD_CONNECTED: '0' }, 1000);
			const log = (await gw.counters()).log;
			const fwd = log.find((e) => e.path === '/v1/api/trsrv/stocks');
			const chk = log.find((e) => e.path ===
			    '/v1/api/iserver/auth/status');
			assert.ok(fwd && chk, 'both calls reached the Gateway');
			assert.ok(chk.t_ms > fwd.t_ms && chk.t_ms - fwd.t_ms < 500,
			    `check ${chk.t_ms - fwd.t_ms} ms after the 401`);

			/* a burst of 401s: one check now, at most one more later */
			await gw.resetCounters();
			await Promise.all(Array.from({ length: 5 }, () =>
			    bd.request({ path: '/trsrv/stocks?symbols=MSFT' })));
			await sleep(1500);
			const n = routeCount(await gw.counters(),
			    'GET /v1/api/iserver/auth/status');
			assert.ok(n >= 1 && n <= 2, `${n} checks for 5 401s`);
		} finally {
			await bd.stop();
			await gw.stop();
		}
	});

	test('a forwarded 400 "no bridge" triggers an immediate check',
	    async () => {
		const gw = await startGwsim();
		const bd = await startBrokerd({ gwsim: gw, config: {
		    session: { check_interval_s: 30, tickle_interval_s: 60 } } });
		try {
			await reaches(bd, 'authenticated', {}, 3000);
			await sleep(300);
			await gw.state({ authenticated: false,
			    reauth_works: false });
			await gw.resetCounters();
			const r = await bd.request({ path: '/iserver/accounts',
			    headers: { 'cache-control': 'no-cache' } });
			assert.equal(r.status, 400);
			assert.match(r.text(), /no bridge/);
			await reaches(bd, 'unauthenticated',
			    { BROKERD_CONNECTED: '1' }, 1000);
			/* now known: /iserver fails fast without the Gateway */
			const r2 = await bd.request({ path: '/iserver/accounts' });
			assert.equal(r2.status, 503);
		} finally {
			await bd.stop();
			await gw.stop();
		}
	});

	test('BROKERD_STATE=stopped after SIGTERM', async () => {
		const gw = await startGwsim();
		const bd = await startBrokerd({ gwsim: gw, keepDir: true });
		try {
			await reaches(bd, 'authenticated', {}, 3000);
			const res = await bd.stop();
			assert.equal(res.code, 0);
			const st = readStatus(bd.statusFile);
			assert.equal(st.BROKERD_STATE, 'stopped');
			assert.equal(st.BROKERD_PID, String(bd.pid));
			const mode = fs.statSync(bd.statusFile).mode & 0o777;
			assert.equal(mode, 0o644);
			const h = history(bd);
			assert.equal(h.at(-1).from, 'authenticated');
			assert.equal(h.at(-1).to, 'stopped');
			/* no temporary files left in the folder */
			assert.deepEqual(fs.readdirSync(bd.dir).filter((f) =>
			    f.startsWith('status.')), []);
		} finally {
			fs.rmSync(bd.dir, { recursive: true, force: true });
			await gw.stop();
		}
	});
});
