/*
 * A Gateway that pings without end and reads nothing (gwsim's
 * ws_ping_flood; SPEC section 7, streamup_sock.c).  wslay answers every
 * ping with a pong queued for sending; nobody reading them, brokerd used
 * to keep them all and grow until it died (some 200 MB a second here).
 * Past a bound queued it stops reading the Gateway, so it stays small and
 * keeps answering.  The Gateway's heartbeats then go unread too: the
 * heartbeat timer (BROKERD_STREAM_HB_MS, shortened here) closes the
 * socket and opens another.  A flood that ends before that leaves the
 * same socket, read again once its pongs have left.  Empty pings count
 * too: each pong is a message wslay keeps.  BROKERD_BIN
 * overrides build/brokerd.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { brokerdBuilt, waitFor, sleep } from '../lib/harness.mjs';
import { subscriber, startStreaming } from '../lib/ws.mjs';

const skip = brokerdBuilt() ? false : 'build/brokerd is not built';

const GROWN_MAX = 4 << 20;	/* some 256 KiB of pongs, buffers, noise */
const ANSWER_MS = 1000;		/* a stuck loop, not speed */

const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(
    `/proc/${pid}/status`, 'utf8'))[1]) * 1024;
const ticks = (s, from = 0) => s.msgs.slice(from).some((m) =>
    m.topic === 'smd+265598' && m['31'] !== undefined);

/* Ticks flowing to a subscriber, then the flood for ms: brokerd checked. */
async function flood(gw, bd, ms) {
	const a = await subscriber(bd);
	a.ws.send('smd+265598+{"fields":["31"]}');
	await waitFor(() => ticks(a), { timeoutMs: 8000 });
	const before = rss(bd.pid);
	await gw.behaviour({ ws_ping_flood: true });
	for (const end = Date.now() + ms; Date.now() < end;) {
		await sleep(250);
		/* fail early: unbounded, it would take the machine */
		const grown = rss(bd.pid) - before;
		assert.ok(grown < GROWN_MAX, `brokerd grew ${grown} bytes ` +
		    'under the flood');
		const t0 = Date.now();
		const r = await bd.request({ path: '/health',
		    timeoutMs: ANSWER_MS });
		assert.equal(r.status, 200);
		assert.ok(Date.now() - t0 < ANSWER_MS);
	}
	const c = await gw.counters();
	/* more than the kernel's buffers and gwsim's own hold */
	assert.ok(c.ws_pings_out > 5000, `${c.ws_pings_out} pings`);
	return a;
}

describe('ping flood from the Gateway', { skip }, () => {
	/* under ASan, freed pongs wait in quarantine: none */
	const asan = { ASAN_OPTIONS: 'quarantine_size_mb=0' };

	test('brokerd stays bounded and answers; the held socket is dropped',
	    async (t) => {
		const { gw, bd } = await startStreaming(t, {
			behaviour: { ws_hb_ms: 300 },
			env: { BROKERD_STREAM_HB_MS: '2000', ...asan } });
		const a = await flood(gw, bd, 5000);
		/* the held socket's heartbeats went unread: dropped, reopened */
		const c = await gw.counters();
		assert.ok(c.ws_connections >= 2, `${c.ws_connections} sockets`);
		assert.match(bd.log(), /the Gateway reads nothing/);
		await gw.behaviour({ ws_ping_flood: false });
		const n = a.msgs.length;
		await waitFor(() => ticks(a, n), { timeoutMs: 8000,
		    what: 'ticks after the flood' });
	});

	test('empty pings: their pongs count though they carry nothing',
	    async (t) => {
		const { gw, bd } = await startStreaming(t, {
			behaviour: { ws_hb_ms: 300, ws_ping_bytes: 0 },
			env: { BROKERD_STREAM_HB_MS: '2000', ...asan } });
		await flood(gw, bd, 3000);
		assert.match(bd.log(), /the Gateway reads nothing/);
	});

	test('a flood that ends: the same socket is read again', async (t) => {
		const { gw, bd } = await startStreaming(t, {
			behaviour: { ws_hb_ms: 300 }, env: asan });
		const a = await flood(gw, bd, 1000);
		/* held: nothing read, no tick passed on */
		const n = a.msgs.length;
		await sleep(1000);
		assert.equal(a.msgs.length, n, 'ticks read while held');
		await gw.behaviour({ ws_ping_flood: false });
		await waitFor(() => ticks(a, n), { timeoutMs: 5000,
		    what: 'ticks after the flood' });
		const c = await gw.counters();
		assert.equal(c.ws_connections, 1);
		assert.doesNotMatch(bd.log(), /closed \(/);
	});
});
