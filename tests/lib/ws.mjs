/*
 * Helpers shared by the streaming tests (tests/node/ws-*.test.mjs): the
 * npm ws client, a keyed subscriber on brokerd's /ws that keeps what it
 * reads, a masked client text frame for raw sockets, the simulator's smd
 * log, and a simulator + brokerd pair with ticks and an authenticated
 * session.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { startGwsim, startBrokerd, ROOT } from './harness.mjs';

const require = createRequire(path.join(ROOT, 'tests', 'package.json'));
export const WebSocket = require('ws');

/* A local subscriber on brokerd's /ws with the key: messages kept. */
export function subscriber(bd, { path: p = '/ws' } = {}) {
	return new Promise((resolve, reject) => {
		const ws = new WebSocket(`ws://127.0.0.1:${bd.tcpPort}${p}`,
		    { headers: { 'X-Bridge-Key': bd.key } });
		const s = { ws, msgs: [], closed: null };
		ws.on('message', (d) => {
			try {
				s.msgs.push(JSON.parse(d.toString()));
			} catch {
				s.msgs.push({ raw: d.toString() });
			}
		});
		ws.on('close', (code, reason) => {
			s.closed = { code, reason: reason.toString() };
		});
		ws.once('open', () => resolve(s));
		ws.once('error', reject);
	});
}

/* A masked client text frame (RFC 6455 5.3), up to 64 KiB. */
export function textFrame(s) {
	const p = Buffer.from(s);
	const head = p.length < 126 ? Buffer.from([0x81, 0x80 | p.length]) :
	    Buffer.from([0x81, 0x80 | 126, p.length >> 8, p.length & 255]);
	const m = crypto.randomBytes(4);
	for (let i = 0; i < p.length; i++)
		p[i] ^= m[i % 4];
	return Buffer.concat([head, m, p]);
}

/* The smd messages the simulator received, from its counters. */
export const smdOut = (c) => c.ws_subscriptions.filter((m) =>
    m.msg.startsWith('smd+'));

/*
 * A simulator ticking every 100 ms (extra.state, then extra.behaviour on
 * top) and brokerd (extra.env, extra.stream its stream: section), stopped
 * after the test; a sanitizer report in brokerd's log
 * (BROKERD_BIN=build/brokerd-asan) fails it.
 */
export async function startStreaming(t, extra = {}) {
	const gw = await startGwsim({});
	t.after(() => gw.stop());
	if (extra.state)
		await gw.state(extra.state);
	await gw.behaviour({ ws_tick_ms: 100, ...(extra.behaviour || {}) });
	const config = { session: { tickle_interval_s: 1 } };
	if (extra.stream)
		config.stream = extra.stream;
	const bd = await startBrokerd({ gwsim: gw, env: extra.env, config });
	t.after(async () => {
		await bd.stop();
		assert.doesNotMatch(bd.log(), /Sanitizer|runtime error/);
	});
	await bd.waitForLog(/-> authenticated/);
	return { gw, bd };
}
