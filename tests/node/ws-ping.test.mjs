/*
 * Pings and slow subscribers (subscriber.c): brokerd pings a WebSocket
 * subscriber every BROKERD_STREAM_PING_MS and closes it 1001 when nothing
 * was heard from it for an interval.  A subscriber reading a big backlog
 * slowly cannot answer: the ping waits behind the backlog.  It is alive
 * all the same, since it takes bytes; one that takes none is closed.
 * Raw sockets on the Unix listener, whose small fixed buffers make the
 * reading speed the test's, not the kernel's.  BROKERD_BIN overrides
 * build/brokerd.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { brokerdBuilt, waitFor, sleep } from '../lib/harness.mjs';
import { frame, frameHead, textFrame, startStreaming, upgradeRequest,
    metric } from '../lib/ws.mjs';
const skip = brokerdBuilt() ? false : 'build/brokerd is not built';

const PING_MS = 500;
/* one sor message, far more than a slow reader takes in SLOW_MS */
const BIG = 12 * 1024 * 1024;
const SLOW_MS = 3000;
const STEP_MS = 25;	/* the slow reader reads a chunk this often */

/* A frame kept whole: texts kept, pings answered, the close noted. */
function onFrame(s, op, data) {
	if (op === 1) {
		s.texts.push(data.toString());
	} else if (op === 9) {
		s.pings++;
		s.sock.write(frame(10, Buffer.from(data)));
	} else if (op === 8) {
		s.close = { code: data.length >= 2 ? data.readUInt16BE(0) :
		    null, reason: data.subarray(2).toString() };
	}
}

/*
 * The frames in s.buf; a big one (the message under test) is counted as
 * it passes, not kept: s.left is what of it is still to come.
 */
function parse(s) {
	while (s.left === 0) {
		const b = s.buf;
		const h = frameHead(b);
		if (h === null)
			return;
		const { len, off } = h;
		if (len > 65536) {
			s.big = len;
			s.left = Math.max(0, off + len - b.length);
			s.buf = b.subarray(Math.min(b.length, off + len));
			continue;
		}
		if (b.length < off + len)
			return;
		s.buf = b.subarray(off + len);
		onFrame(s, b[0] & 15, b.subarray(off, off + len));
	}
}

/*
 * A raw subscriber on the Unix socket.  With slow set, every chunk read
 * pauses the socket until the next step resumes it.
 */
function rawSubscriber(bd) {
	return new Promise((resolve, reject) => {
		const sock = net.connect(bd.socket);
		const s = { sock, bytes: 0, texts: [], big: 0, pings: 0,
		    close: null, ended: false, slow: false, bigDone: false,
		    buf: Buffer.alloc(0), left: 0 };
		let head = true;
		sock.on('error', () => { s.ended = true; });
		sock.on('close', () => { s.ended = true; });
		sock.on('data', (d) => {
			s.bytes += d.length;
			if (s.slow)
				sock.pause();
			if (s.left > 0) {
				const n = Math.min(s.left, d.length);
				s.left -= n;
				d = d.subarray(n);
			}
			s.buf = s.buf.length > 0 ? Buffer.concat([s.buf, d]) :
			    d;
			if (head) {
				const i = s.buf.indexOf('\r\n\r\n');
				if (i < 0)
					return;
				const status = s.buf.subarray(0, 12).toString();
				s.buf = s.buf.subarray(i + 4);
				head = false;
				if (!/ 101/.test(status))
					return reject(new Error(status));
				resolve(s);
			}
			parse(s);
			if (s.left === 0 && s.big > 0)
				s.bigDone = true;
		});
		sock.write(upgradeRequest(bd, 'localhost'));
		s.send = (t) => sock.write(textFrame(t));
	});
}

const closings = (bd) => (bd.log().match(/answered no ping/g) || []).length;

describe('subscriber pings', { skip }, () => {
	test('a slow reader of a big message stays, a stalled one is closed',
	    async (t) => {
		const { gw, bd } = await startStreaming(t, {
		    env: { BROKERD_STREAM_PING_MS: String(PING_MS) },
		    /* orders are never merged: the big one must fit */
		    stream: { max_buffer_bytes: 2 * BIG },
		    behaviour: { ws_tick_ms: 0 } });
		const slow = await rawSubscriber(bd);
		const stalled = await rawSubscriber(bd);
		slow.send('sor+{}');
		stalled.send('sor+{}');
		await waitFor(async () => (await gw.counters()).ws_subscriptions
		    .some((m) => m.msg.startsWith('sor')),
		    { timeoutMs: 5000, what: 'sor at the Gateway' });
		/*
		 * The slow one reads a chunk every STEP_MS (answering pings
		 * while there is no backlog), the stalled one nothing.
		 */
		slow.slow = true;
		const step = setInterval(() => slow.sock.resume(), STEP_MS);
		t.after(() => clearInterval(step));
		stalled.sock.pause();
		await gw.behaviour({ ws_big_sor: BIG });
		await waitFor(() => slow.big > 0, { timeoutMs: 10000,
		    what: 'the big message' });
		const pinged = slow.pings;
		const from = slow.bytes;
		await sleep(SLOW_MS);
		/*
		 * It took bytes all along, yet is still inside the message:
		 * every ping since waited behind it.
		 */
		assert.ok(slow.bytes - from > 1024 * 1024,
		    `${slow.bytes - from} bytes read in ${SLOW_MS} ms`);
		assert.ok(slow.bytes < BIG, `${slow.bytes} bytes read`);
		assert.equal(slow.pings, pinged);
		assert.equal(slow.ended, false, 'the slow one was closed');

		/*
		 * The stalled one took nothing: closed at the second ping
		 * (the slow one reads on meanwhile, its steps still running).
		 */
		await waitFor(() => closings(bd) >= 1,
		    { timeoutMs: 2000, what: 'the stalled one closed' });
		assert.equal(closings(bd), 1, 'the slow one was closed too');
		assert.equal(await metric(bd, 'brokerd_stream_subscribers'), 1);

		/* the slow one reads the rest, then pings, pongs, stays */
		clearInterval(step);
		slow.slow = false;
		slow.sock.resume();
		await waitFor(() => slow.bigDone && slow.pings > pinged,
		    { timeoutMs: 5000, what: 'the message and a ping' });
		const pings = slow.pings;
		await sleep(3 * PING_MS);
		assert.ok(slow.pings > pings, 'no more pings');
		assert.equal(slow.close, null);
		assert.equal(slow.ended, false);
		assert.equal(closings(bd), 1);
		assert.equal(await metric(bd, 'brokerd_stream_subscribers'), 1);

		stalled.sock.resume();
		await waitFor(() => stalled.ended, { timeoutMs: 5000,
		    what: 'the stalled one ended' });
		/* its close frame waited behind the message, if it came */
		if (stalled.close !== null)
			assert.equal(stalled.close.code, 1001);
		slow.sock.destroy();
	});
});
