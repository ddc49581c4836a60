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
import { brokerdBuilt, waitFor, sleep } from '../lib/harness.mjs';
import { WebSocket, subscriber, smdOut, startStreaming }
    from '../lib/ws.mjs';

const skip = brokerdBuilt() ? false : 'build/brokerd is not built';

const said = (s, what) => s.msgs.some((m) => m.brokerd === what);
const ticks = (s, from = 0) => s.msgs.slice(from).some((m) =>
    m.topic === 'smd+265598' && m['31'] !== undefined);

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
		const { gw, bd } = await startStreaming(t, {
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
		const { gw, bd } = await startStreaming(t, {
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

	/*
	 * History streams left before the Gateway named them (their answer
	 * held by ws_stall) end with the idle close: they no longer show
	 * among the active ones, nor hold places of the five.
	 */
	test('idle close frees history streams left before their server id',
	    async (t) => {
		const { gw, bd } = await startStreaming(t, {
			env: { BROKERD_STREAM_IDLE_MS: '500' } });
		const a = await flowing(gw, bd);
		await gw.behaviour({ ws_stall: 30000 });
		a.ws.send('smh+265598+{"period":"1d","bar":"1h"}');
		a.ws.send('smh+8314+{"period":"1d","bar":"1h"}');
		await waitFor(async () => (await gw.counters()).ws_subscriptions
		    .filter((m) => m.msg.startsWith('smh+')).length === 2,
		    { timeoutMs: 5000 });
		a.ws.close();
		await waitFor(async () => (await gw.counters()).ws_open === 0,
		    { timeoutMs: 5000 });
		const st = (await bd.request({ path: '/gateway/status' })).json();
		assert.equal(st.stream.upstream.state, 'closed');
		assert.deepEqual(st.stream.active, []);
	});

	test('sts authentication lost: waiting for session, back on the ' +
	    'watcher\'s word, replayed', async (t) => {
		const { gw, bd } = await startStreaming(t);
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
		const { gw, bd } = await startStreaming(t);
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

	/*
	 * The call is slow (7 s) and the drop comes once IBKR's 1 per 5 s
	 * for orders would let a second call go: the reopened socket's sor
	 * must wait for the first answer, not resubmit the request that is
	 * still on its connection.
	 */
	test('a drop while orders?force=true is in flight: the replayed ' +
	    'sor waits for that call, not a second one', async (t) => {
		const orders = (c) => c.by_route['GET /v1/api/iserver/account/' +
		    'orders'] || 0;
		const { gw, bd } = await startStreaming(t, {
			behaviour: { delay_ms: 7000,
			    paths: ['/iserver/account/orders'] } });
		const a = await subscriber(bd);
		a.ws.send('sor+{}');
		await waitFor(async () => orders(await gw.counters()) === 1,
		    { timeoutMs: 8000 });
		await sleep(5300);
		await gw.behaviour({ ws_drop: true });
		await waitFor(async () => {
			const c = await gw.counters();
			return c.ws_connections === 2 &&
			    c.sor_after_force.length === 1;
		}, { timeoutMs: 8000 });
		await sleep(500);
		const c = await gw.counters();
		assert.deepEqual(c.sor_after_force, [true]);
		assert.equal(orders(c), 1);
		assert.doesNotMatch(bd.log(), /orders\?force=true failed/);
		a.ws.close();
	});

	test('a subscriber joining while waiting for a session is told',
	    async (t) => {
		const { gw, bd } = await startStreaming(t);
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
