/*
 * brokerd-client's bridge.stream() against the real brokerd and the
 * Gateway simulator: two clients (Unix socket and TCP) on one conid share
 * one upstream smd; the simulator drops the Gateway socket, brokerd
 * reconnects and replays, and the clients, never dropped themselves, keep
 * receiving through the async iterator.  BROKERD_BIN overrides
 * build/brokerd.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { brokerdBuilt, waitFor } from '../lib/harness.mjs';
import { smdOut, startStreaming } from '../lib/ws.mjs';
import { Bridge } from '../../clients/node/index.js';

const skip = brokerdBuilt() ? false : 'build/brokerd is not built';
const smdUp = (c) => smdOut(c).filter((m) =>
    m.msg.startsWith('smd+265598+'));

/* Read the stream's iterator into an array until the stream ends. */
function consume(s) {
	const got = [];
	const done = (async () => {
		for await (const m of s)
			got.push(m);
	})();
	return { got, done };
}

describe('bridge.stream() against brokerd', { skip }, () => {
	test('ticks, an upstream drop, replay, ticks again', async (t) => {
		const { gw, bd } = await startStreaming(t);
		const bridges = [
			new Bridge({ socketPath: bd.socket, key: bd.key, env: {} }),
			new Bridge({ url: bd.url, key: bd.key, env: {} }),
		];
		const streams = bridges.map((b) => b.stream({ minDelayMs: 200 }));
		const reads = streams.map(consume);
		for (const s of streams)
			s.subscribe('smd', { conid: 265598, fields: ['31', '87'] });
		const ticks = (r) => r.got.filter((m) => m.topic === 'smd+265598');
		await waitFor(() => reads.every((r) => ticks(r).length >= 3),
		    { timeoutMs: 10000, what: 'ticks to both clients' });
		let c = await gw.counters();
		assert.equal(smdUp(c).length, 1, JSON.stringify(smdUp(c)));
		for (const r of reads)
			for (const m of ticks(r))
				for (const k of Object.keys(m))
					if (/^\d+$/.test(k))
						assert.ok(k === '31' || k === '87', k);

		const before = reads.map((r) => ticks(r).length);
		await gw.behaviour({ ws_drop: true });
		await waitFor(async () => {
			c = await gw.counters();
			return c.ws_connections === 2 && smdUp(c).length === 2;
		}, { timeoutMs: 10000, what: 'reconnect and replay' });
		await waitFor(() => reads.every((r, i) =>
		    ticks(r).length >= before[i] + 3),
		    { timeoutMs: 10000, what: 'ticks after the replay' });
		/* brokerd kept its subscribers: no client had to reconnect */
		for (const s of streams) {
			assert.equal(s.state, 'open');
			assert.equal(s.reconnects, 0);
		}
		for (const s of streams)
			await s.close();
		await Promise.all(reads.map((r) => r.done));
		for (const b of bridges)
			b.close();
	});
});
