/*
 * Slow subscribers (SPEC section 7, stream_queue.c): a subscriber that
 * stops reading never slows the others.  Its market data is conflated
 * past stream.conflate_bytes (newest value per conid and field, never an
 * older one after a newer) while a fast subscriber gets every tick; a
 * stalled sor subscriber is closed 1008 past stream.max_buffer_bytes while
 * the others go on.  The stalled one is a raw socket that stops reading,
 * so the kernel's buffers fill first and brokerd's own queue after them.
 * BROKERD_BIN overrides build/brokerd.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { brokerdBuilt, waitFor, sleep, request } from '../lib/harness.mjs';
import { subscriber, frameHead, textFrame, startStreaming, upgradeRequest,
    metric } from '../lib/ws.mjs';
const skip = brokerdBuilt() ? false : 'build/brokerd is not built';

/* 40 conids ticking every 10 ms fill a stalled socket's buffers fast. */
const CONIDS = Array.from({ length: 40 }, (_, i) => 2000 + i);
const FIELDS = ['31', '84', '86', '87', '9999'];
/*
 * Above one tick of every conid (about 7 KiB), so that only a stalled
 * socket, not a burst, makes brokerd conflate.
 */
const CONFLATE = 32768;

/*
 * A raw WebSocket subscriber that can stop reading: pause() leaves the
 * bytes in the kernel.  Frames are parsed as they are read: texts kept
 * as JSON, a close frame's code and reason kept, EOF noted.
 */
function rawSubscriber(bd) {
	return new Promise((resolve, reject) => {
		const sock = net.connect(bd.tcpPort, '127.0.0.1');
		const s = { sock, msgs: [], close: null, ended: false,
		    bytes: 0 };
		let buf = Buffer.alloc(0);
		let head = true;
		sock.on('error', () => { s.ended = true; });
		sock.on('close', () => { s.ended = true; });
		sock.on('data', (d) => {
			s.bytes += d.length;
			buf = Buffer.concat([buf, d]);
			if (head) {
				const i = buf.indexOf('\r\n\r\n');
				if (i < 0)
					return;
				const status = buf.slice(0, 12).toString();
				buf = buf.slice(i + 4);
				head = false;
				if (!/ 101/.test(status))
					return reject(new Error(status));
				resolve(s);
			}
			for (;;) {
				const h = frameHead(buf);
				if (h === null)
					return;
				const { len, off, op } = h;
				if (buf.length < off + len)
					return;
				const data = buf.slice(off, off + len);
				buf = buf.slice(off + len);
				if (op === 1)
					s.msgs.push(JSON.parse(data.toString()));
				else if (op === 8)
					s.close = { code: data.length >= 2 ?
					    data.readUInt16BE(0) : null,
					    reason: data.slice(2).toString() };
			}
		});
		sock.write(upgradeRequest(bd));
		s.send = (t) => sock.write(textFrame(t));
	});
}

/* Ticks every 10 ms, unpaced, no questions to answer. */
const start = (t, stream) => startStreaming(t, { stream,
    state: { questions: 0 },
    behaviour: { ws_tick_ms: 10, rate_per_s: 0 } });

/*
 * The kernel's buffers take a few MiB first; then every tick of every
 * conid merges (4,000 a second), which a burst alone never reaches.
 */
async function stalled(bd) {
	await waitFor(async () => await metric(bd,
	    'brokerd_stream_conflated_total') > 2000,
	    { timeoutMs: 60000, intervalMs: 200, what: 'conflation' });
}

const smd = (c) => `smd+${c}+` + JSON.stringify({ fields: FIELDS });

/* Every conid, under brokerd's 20 subscriptions a second. */
async function subscribeAll(s) {
	for (let i = 0; i < CONIDS.length; i++) {
		if (i > 0 && i % 10 === 0)
			await sleep(1100);
		s.send(smd(CONIDS[i]));
	}
}

describe('slow subscribers', { skip }, () => {
	test('a stalled subscriber is conflated, a fast one gets every tick',
	    async (t) => {
		const { bd } = await start(t, { conflate_bytes: CONFLATE });
		const slow = await rawSubscriber(bd);
		const fast = await subscriber(bd);
		const all = subscribeAll(slow);
		fast.ws.send(smd(CONIDS[0]));
		/* it stops early, so that the kernel does not grow its buffer */
		await waitFor(() => slow.msgs.some((m) => m['87']),
		    { timeoutMs: 8000, what: 'the first ticks' });
		slow.sock.pause();
		await all;
		const stalledAt = fast.msgs.length;
		await stalled(bd);
		/* the fast one went on while the slow one was stalled */
		const n = fast.msgs.length;
		await waitFor(() => fast.msgs.length > n + 20,
		    { timeoutMs: 5000, what: 'ticks to the fast one' });
		assert.ok(fast.msgs.length > stalledAt + 20);
		/*
		 * The merged ticks wait in brokerd's queue behind what the
		 * kernel already holds (about 4 MiB, 26,000 unmerged ticks);
		 * beside CPU burners reading them took 0.5 to 1.3 s.  The
		 * slow one has read past them once it holds a newer volume of
		 * CONIDS[0] than the fast one had when the slow one resumed.
		 */
		const vol0 = (s) => s.msgs.reduce((v, m) => m.topic ===
		    `smd+${CONIDS[0]}` && m['87'] ? Number(m['87']) : v, -1);
		const live = vol0(fast);
		slow.sock.resume();
		await waitFor(() => vol0(slow) > live, { timeoutMs: 30000,
		    what: 'the slow one past the ticks it had missed' });

		/* volume (87) grows 100 a tick: every tick, in order */
		const vol = fast.msgs.filter((m) => m.topic ===
		    `smd+${CONIDS[0]}` && m['87']).map((m) => Number(m['87']));
		assert.ok(vol.length > 40, `${vol.length} ticks`);
		for (let i = 1; i < vol.length; i++)
			assert.equal(vol[i], vol[i - 1] + 100,
			    `fast: tick ${i}: ${vol[i - 1]} then ${vol[i]}`);
		for (const m of fast.msgs)
			if (m.topic.startsWith('smd'))
				assert.equal(m.topic, `smd+${CONIDS[0]}`);

		/* the slow one: never older after newer, some ticks merged */
		const last = new Map();
		let gaps = 0;
		for (const m of slow.msgs) {
			if (!m['87'])
				continue;
			const v = Number(m['87']);
			const prev = last.get(m.topic);
			if (prev !== undefined) {
				assert.ok(v > prev, `${m.topic}: ${prev} then ${v}`);
				if (v > prev + 100)
					gaps++;
			}
			last.set(m.topic, v);
		}
		assert.equal(last.size, CONIDS.length);
		assert.ok(gaps > 0, 'no tick was merged');
		assert.equal(await metric(bd, 'brokerd_stream_dropped_total'),
		    0);
		assert.equal(await metric(bd, 'brokerd_stream_refused_total'),
		    0);
		fast.ws.close();
		slow.sock.destroy();
	});

	test('a stalled sor subscriber is closed 1008, others go on',
	    async (t) => {
		const { gw, bd } = await start(t, { conflate_bytes: CONFLATE,
		    max_buffer_bytes: 2 * CONFLATE });
		const slow = await rawSubscriber(bd);
		const fast = await subscriber(bd);
		slow.send('sor+{}');
		fast.ws.send('sor+{}');
		fast.ws.send(smd(CONIDS[0]));
		/* market data fills the kernel's buffers, then conflates */
		const all = subscribeAll(slow);
		await waitFor(() => slow.msgs.some((m) => m['87']),
		    { timeoutMs: 8000, what: 'the first ticks' });
		slow.sock.pause();
		await all;
		await stalled(bd);
		assert.equal(await metric(bd, 'brokerd_stream_dropped_total'),
		    0);

		/*
		 * orders are never merged: they pile up to the limit (the
		 * merged market data stays under it: one message a conid)
		 */
		const ids = [];
		for (let i = 0; i < 200; i++) {
			const orders = [0, 1, 2, 3, 4].map((j) => ({
			    conid: 265598, side: 'BUY', orderType: 'LMT',
			    price: 100 + i, quantity: 1, tif: 'DAY',
			    cOID: `slow-${i}-${j}` }));
			const r = await request({ https: true, port: gw.port,
			    method: 'POST',
			    path: '/v1/api/iserver/account/DU123456/orders',
			    body: { orders } });
			assert.equal(r.status, 200, r.text());
			ids.push(...r.json().map((o) => o.order_id));
			if (await metric(bd, 'brokerd_stream_dropped_total') > 0)
				break;
		}
		assert.equal(await metric(bd, 'brokerd_stream_dropped_total'),
		    1);
		await bd.waitForLog(/\(1008\): subscriber too slow/);
		/* the stalled one, reading again, learns why it was closed */
		slow.sock.resume();
		await waitFor(() => slow.ended, { timeoutMs: 10000,
		    what: 'the slow one closed' });
		assert.notEqual(slow.close, null, 'no close frame');
		assert.equal(slow.close.code, 1008);
		assert.match(slow.close.reason, /too slow/);

		/* the fast one got every order and still streams */
		await waitFor(() => {
			const got = new Set(fast.msgs.filter((m) =>
			    m.topic === 'sor').flatMap((m) => m.args)
			    .map((o) => String(o.orderId)));
			return ids.every((id) => got.has(String(id)));
		}, { timeoutMs: 5000, what: 'every order to the fast one' });
		const n = fast.msgs.length;
		await waitFor(() => fast.msgs.length > n + 5);
		assert.equal(fast.closed, null);
		assert.equal(await metric(bd, 'brokerd_stream_subscribers'), 1);
		fast.ws.close();
	});
});
