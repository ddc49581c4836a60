/*
 * Helpers shared by the streaming tests (tests/node/ws-*.test.mjs): the
 * npm ws client, a keyed subscriber on brokerd's /ws that keeps what it
 * reads, masked client frames for raw sockets, the simulator's smd
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

/* A raw client's upgrade request for brokerd's /ws, with the key. */
export function upgradeRequest(bd, host = '127.0.0.1') {
	return (`GET /ws HTTP/1.1\r\nHost: ${host}\r\n` +
	    'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
	    `Sec-WebSocket-Key: ${crypto.randomBytes(16)
	    .toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
	    `X-Bridge-Key: ${bd.key}\r\n\r\n`);
}

/* One counter or gauge from brokerd's /metrics, NaN when absent. */
export async function metric(bd, name) {
	const t = (await bd.request({ path: '/metrics' })).text();
	const m = t.match(new RegExp(`^${name} (\\d+)$`, 'm'));
	return m ? Number(m[1]) : NaN;
}

/*
 * The head of the frame at the start of b (RFC 6455 5.2): { op, fin,
 * masked, len, off } (off: where the payload starts, no mask key, as a
 * server sends), or null until the whole head is there.
 */
export function frameHead(b) {
	if (b.length < 2)
		return (null);
	let len = b[1] & 127, off = 2;
	if (len === 126) {
		if (b.length < 4)
			return (null);
		len = b.readUInt16BE(2);
		off = 4;
	} else if (len === 127) {
		if (b.length < 10)
			return (null);
		len = Number(b.readBigUInt64BE(2));
		off = 10;
	}
	return ({ op: b[0] & 15, fin: !!(b[0] & 128), masked: !!(b[1] & 128),
	    len, off });
}

/* One client frame (RFC 6455 5.2): masked unless told otherwise. */
export function frame(opcode, payload, { mask = true, fin = true } = {}) {
	const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload ?? '');
	let head;
	if (p.length < 126) {
		head = Buffer.from([0, p.length]);
	} else if (p.length < 65536) {
		head = Buffer.alloc(4);
		head[1] = 126;
		head.writeUInt16BE(p.length, 2);
	} else {
		head = Buffer.alloc(10);
		head[1] = 127;
		head.writeBigUInt64BE(BigInt(p.length), 2);
	}
	head[0] = (fin ? 0x80 : 0) | opcode;
	if (!mask)
		return Buffer.concat([head, p]);
	head[1] |= 0x80;
	const m = crypto.randomBytes(4);
	const body = Buffer.from(p);
	for (let i = 0; i < body.length; i++)
		body[i] ^= m[i % 4];
	return Buffer.concat([head, m, body]);
}

/* A client close frame: the code, then the reason. */
export const closeFrame = (code, reason = '') => {
	const b = Buffer.alloc(2 + Buffer.byteLength(reason));
	b.writeUInt16BE(code, 0);
	b.write(reason, 2);
	return frame(8, b);
};

/* A masked client text frame. */
export const textFrame = (s) => frame(1, s);

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
	const gw = await startGwsim(extra.gwsim || {});
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
