/*
 * A tick flood (SPEC section 7, streamup_sock.c): the Gateway socket is
 * read a bounded number of messages per loop turn, so that while ticks
 * pour in faster than dozens of subscribers take them, the subscribers'
 * writes and plain HTTP requests still get their turn.  The bound below
 * is against starvation (brokerd used to read the Gateway dry before
 * writing anything: /health never answered), not a speed figure.
 * BROKERD_BIN overrides build/brokerd.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { brokerdBuilt, waitFor, sleep } from '../lib/harness.mjs';
import { textFrame, startStreaming } from '../lib/ws.mjs';

const skip = brokerdBuilt() ? false : 'build/brokerd is not built';

const CONIDS = Array.from({ length: 30 }, (_, i) => 4000 + i);
const FIELDS = ['31', '84', '86', '87', '9999'];
const NSUBS = 40;		/* three in four stop reading */
const ANSWER_MS = 1000;		/* starvation, not speed */

/* A raw subscriber that counts the bytes it reads and can stop reading. */
function subscriber(bd) {
	return new Promise((resolve, reject) => {
		const sock = net.connect(bd.tcpPort, '127.0.0.1');
		const s = { sock, bytes: 0 };
		let head = Buffer.alloc(0);
		sock.once('error', reject);
		sock.on('data', (d) => {
			s.bytes += d.length;
			if (head === null)
				return;
			head = Buffer.concat([head, d]);
			const i = head.indexOf('\r\n\r\n');
			if (i < 0)
				return;
			const status = head.toString('latin1', 0, 12);
			head = null;
			if (!/ 101/.test(status))
				return reject(new Error(status));
			sock.removeAllListeners('error');
			sock.on('error', () => {});
			resolve(s);
		});
		sock.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
		    'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
		    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ' +
		    `${crypto.randomBytes(16).toString('base64')}\r\n` +
		    `X-Bridge-Key: ${bd.key}\r\n\r\n`);
	});
}

describe('tick flood', { skip }, () => {
	test('plain requests answer while ticks flood many subscribers',
	    async (t) => {
		const { bd } = await startStreaming(t, {
		    state: { questions: 0 },
		    behaviour: { ws_tick_ms: 5, rate_per_s: 0 },
		    stream: { conflate_bytes: 16384 } });
		const subs = [];
		for (let i = 0; i < NSUBS; i++)
			subs.push(await subscriber(bd));
		t.after(() => subs.forEach((s) => s.sock.destroy()));
		/* 20 subscriptions a second from each */
		for (let i = 0; i < CONIDS.length; i++) {
			if (i > 0 && i % 15 === 0)
				await sleep(1100);
			const f = textFrame(`smd+${CONIDS[i]}+` +
			    JSON.stringify({ fields: FIELDS }));
			for (const s of subs)
				s.sock.write(f);
		}
		await waitFor(() => subs.every((s) => s.bytes > 4096),
		    { timeoutMs: 10000, what: 'the first ticks' });
		subs.forEach((s, i) => { if (i % 4 !== 0) s.sock.pause(); });
		await sleep(2000);	/* the stalled ones' buffers fill */

		for (let i = 0; i < 5; i++) {
			const t0 = Date.now();
			const r = await bd.request({ path: '/health',
			    timeoutMs: ANSWER_MS });
			assert.equal(r.status, 200);
			assert.ok(Date.now() - t0 < ANSWER_MS);
			await sleep(300);
		}
		/* the readers still read */
		const before = subs.filter((s, i) => i % 4 === 0)
		    .map((s) => s.bytes);
		await sleep(1000);
		subs.filter((s, i) => i % 4 === 0).forEach((s, i) =>
		    assert.ok(s.bytes > before[i], `reader ${i} starved`));
	});
});
