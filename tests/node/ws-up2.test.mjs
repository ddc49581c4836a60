/*
 * The upstream WebSocket's other timers and events (SPEC section 7,
 * streamup.c), counted at the simulator: no heartbeat, the idle close,
 * authentication lost and back, new TLS settings on SIGHUP, and a
 * subscriber that joins while the upstream waits for a session.  The
 * long timers are shortened with brokerd(8)'s ENVIRONMENT hooks.
 * BROKERD_BIN overrides build/brokerd.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { startGwsim, startBrokerd, brokerdBuilt, waitFor, sleep, ROOT }
    from '../lib/harness.mjs';

const require = createRequire(path.join(ROOT, 'tests', 'package.json'));
const WebSocket = require('ws');
const skip = brokerdBuilt() ? false : 'build/brokerd is not built';

/* A local subscriber on brokerd's /ws with the key: messages kept. */
function subscriber(bd) {
	return new Promise((resolve, reject) => {
		const ws = new WebSocket(`ws://127.0.0.1:${bd.tcpPort}/ws`,
		    { headers: { 'X-Bridge-Key': bd.key } });
		const s = { ws, msgs: [] };
		ws.on('message', (d) => {
			try {
				s.msgs.push(JSON.parse(d.toString()));
			} catch {
				s.msgs.push({ raw: d.toString() });
			}
		});
		ws.once('open', () => resolve(s));
		ws.once('error', reject);
	});
}

const smdOut = (c) => c.ws_subscriptions.filter((m) =>
    m.msg.startsWith('smd+'));
const said = (s, what) => s.msgs.some((m) => m.brokerd === what);
const ticks = (s, from = 0) => s.msgs.slice(from).some((m) =>
    m.topic === 'smd+265598' && m['31'] !== undefined);

async function start(t, extra = {}) {
	const gw = await startGwsim({});
	t.after(() => gw.stop());
	await gw.behaviour({ ws_tick_ms: 100, ...(extra.behaviour || {}) });
	const bd = await startBrokerd({ gwsim: gw, env: extra.env,
	    config: { session: { tickle_interval_s: 1 } } });
	t.after(async () => {
		await bd.stop();
		/* build/brokerd-asan through BROKERD_BIN: its reports fail */
		assert.doesNotMatch(bd.log(), /Sanitizer|runtime error/);
	});
	await bd.waitForLog(/-> authenticated/);
	return { gw, bd };
}

/* One subscriber on 265598 with ticks flowing through one socket. */
async function flowing(gw, bd) {
	const a = await subscriber(bd);
	a.ws.send('smd+265598+{"fields":["31"]}');
	await waitFor(() => ticks(a), { timeoutMs: 8000 });
	assert.equal((await gw.counters()).ws_connections, 1);
	return a;
}

describe('upstream WebSocket, more', { skip }, () => {
	test('no heartbeat: gateway silent, reopened, replayed',
	    async (t) => {
		const { gw, bd } = await start(t, {
			behaviour: { ws_hb_ms: 0 },
			env: { BROKERD_STREAM_HB_MS: '800' } });
		const a = await flowing(gw, bd);
		await waitFor(() => said(a, 'gateway silent'),
		    { timeoutMs: 5000 });
		await waitFor(async () => {
			const c = await gw.counters();
			return c.ws_connections >= 2 && smdOut(c).length >= 2;
		}, { timeoutMs: 5000 });
		const n = a.msgs.length;
		await waitFor(() => ticks(a, n), { timeoutMs: 5000 });
	});

	test('idle close after the last subscriber; reopened for a new one',
	    async (t) => {
		const { gw, bd } = await start(t, {
			env: { BROKERD_STREAM_IDLE_MS: '500' } });
		const a = await flowing(gw, bd);
		a.ws.close();
		await waitFor(async () => (await gw.counters()).ws_open === 0,
		    { timeoutMs: 5000 });
		const b = await subscriber(bd);
		b.ws.send('smd+265598+{"fields":["31"]}');
		await waitFor(() => ticks(b), { timeoutMs: 8000 });
		const c = await gw.counters();
		assert.equal(c.ws_connections, 2);
		assert.equal(c.ws_open, 1);
	});

	test('sts authentication lost: waiting for session, back on the ' +
	    'watcher\'s word, replayed', async (t) => {
		const { gw, bd } = await start(t);
		const a = await flowing(gw, bd);
		await gw.state({ authenticated: false });
		await waitFor(() => said(a, 'waiting for session'),
		    { timeoutMs: 5000 });
		await waitFor(async () => (await gw.counters()).ws_open === 0,
		    { timeoutMs: 5000 });
		await gw.state({ authenticated: true });
		const n = a.msgs.length;
		await waitFor(() => ticks(a, n), { timeoutMs: 8000 });
		const c = await gw.counters();
		assert.equal(c.ws_connections, 2);
		assert.equal(smdOut(c).length, 2);
	});

	test('SIGHUP with new TLS settings reopens and replays',
	    async (t) => {
		const { gw, bd } = await start(t);
		const a = await flowing(gw, bd);
		const text = fs.readFileSync(bd.configFile, 'utf8');
		/* new TLS settings: the pin traded for no check at all */
		const next = text.replace(/pin_sha256: .*/,
		    'pin_sha256: null\n    insecure: true');
		assert.notEqual(next, text);
		fs.writeFileSync(bd.configFile, next);
		await bd.reload(/configuration reloaded/);
		await waitFor(async () => {
			const c = await gw.counters();
			return c.ws_connections === 2 && smdOut(c).length === 2;
		}, { timeoutMs: 5000 });
		const n = a.msgs.length;
		await waitFor(() => ticks(a, n), { timeoutMs: 5000 });
		assert.equal((await gw.counters()).ws_open, 1);
	});

	test('a subscriber joining while waiting for a session is told',
	    async (t) => {
		const { gw, bd } = await start(t);
		const a = await flowing(gw, bd);
		await gw.state({ authenticated: false });
		await waitFor(() => said(a, 'waiting for session'),
		    { timeoutMs: 5000 });
		const b = await subscriber(bd);
		await waitFor(() => said(b, 'waiting for session'),
		    { timeoutMs: 2000 });
		b.ws.send('smd+8314+{"fields":["31"]}');
		const c = await subscriber(bd);
		c.ws.send('smd+8314+{"fields":["31"]}');
		await waitFor(() => said(c, 'waiting for session'),
		    { timeoutMs: 2000 });
	});
});
