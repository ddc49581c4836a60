/*
 * Local subscribers (SPEC section 7, subscriber.c): /ws, /v1/api/ws and
 * /stream on both listeners, spoken to through raw sockets so that every
 * byte is the test's: the RFC 6455 edge cases, admission (Origin, keys,
 * peer uid, scopes), bad upgrades, SSE through curl, the exemption from
 * idle_timeout_ms, SIGHUP and SIGTERM, and the hub's refusals.  No Gateway
 * is needed: these never reach it.  BROKERD_BIN overrides build/brokerd.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { spawn } from 'node:child_process';
import { startBrokerd, brokerdBuilt, sleep } from '../lib/harness.mjs';
import { frame, frameHead, closeFrame } from '../lib/ws.mjs';

const skip = brokerdBuilt() ? false : 'build/brokerd is not built';

/*
 * Connect and send an upgrade (or any head): resolves {status, head,
 * sock, next(ms), frames, ended()} where next() waits for the next
 * server frame {op, fin, data, code, reason}.
 */
function open(bd, { path = '/ws', headers, tcp = true, key = bd.key,
    upgrade = true } = {}) {
	return new Promise((resolve, reject) => {
		const sock = tcp ? net.connect(bd.tcpPort, '127.0.0.1') :
		    net.connect(bd.socket);
		const h = { Host: tcp ? `127.0.0.1:${bd.tcpPort}` : 'localhost' };
		if (upgrade) {
			h.Upgrade = 'websocket';
			h.Connection = 'Upgrade';
			h['Sec-WebSocket-Key'] = 'dGhlIHNhbXBsZSBub25jZQ==';
			h['Sec-WebSocket-Version'] = '13';
		}
		if (key)
			h['X-Bridge-Key'] = key;
		Object.assign(h, headers || {});
		let buf = Buffer.alloc(0);
		let res = null;
		const frames = [];
		const waiters = [];
		let ended = false;
		const pump = () => {
			for (;;) {
				const h = frameHead(buf);
				if (h === null || buf.length < h.off + h.len)
					break;
				const { len, off } = h;
				const f = { op: h.op, fin: h.fin, masked: h.masked,
				    data: buf.subarray(off, off + len) };
				if (f.op === 8 && len >= 2) {
					f.code = f.data.readUInt16BE(0);
					f.reason = f.data.subarray(2).toString();
				}
				buf = buf.subarray(off + len);
				frames.push(f);
			}
			while (waiters.length && (frames.length || ended))
				waiters.shift()();
		};
		sock.on('data', (d) => {
			buf = Buffer.concat([buf, d]);
			if (!res) {
				const i = buf.indexOf('\r\n\r\n');
				if (i < 0)
					return;
				const head = buf.subarray(0, i).toString();
				buf = buf.subarray(i + 4);
				res = {
					status: Number(head.split(' ')[1]), head, sock,
					body: () => buf.toString(),
					frames,
					ended: () => ended,
					next: (ms = 3000) => new Promise((ok, ko) => {
						const t = setTimeout(() =>
						    ko(new Error('no frame in time')), ms);
						const take = () => {
							clearTimeout(t);
							if (frames.length)
								ok(frames.shift());
							else
								ok(null);	/* closed */
						};
						if (frames.length || ended)
							take();
						else
							waiters.push(take);
					}),
					closed: () => new Promise((ok) => {
						if (ended)
							ok();
						else
							sock.once('close', ok);
					}),
				};
				resolve(res);
				if (res.status !== 101)
					return;
			}
			if (res.status === 101)
				pump();
		});
		sock.on('close', () => {
			ended = true;
			while (waiters.length)
				waiters.shift()();
		});
		sock.on('error', (e) => { if (!res) reject(e); });
		sock.write(`GET ${path} HTTP/1.1\r\n` + Object.entries(h).map(
		    ([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n');
	});
}

/* Frames until a text one (pongs skipped), parsed. */
async function nextJson(ws, ms = 3000) {
	for (;;) {
		const f = await ws.next(ms);
		assert.ok(f, 'the socket closed');
		if (f.op === 1)
			return JSON.parse(f.data.toString());
	}
}

/* Text messages until an error one (brokerd's own notices skipped). */
async function nextError(ws, ms = 3000) {
	for (;;) {
		const m = await nextJson(ws, ms);
		if (m.error !== undefined)
			return m;
	}
}

/* Text messages until one not from brokerd ("waiting for session"...). */
async function nextReply(ws, ms = 3000) {
	for (;;) {
		const m = await nextJson(ws, ms);
		if (m.topic !== 'system')
			return m;
	}
}

/* Frames until the close frame. */
async function nextClose(ws, ms = 3000) {
	for (;;) {
		const f = await ws.next(ms);
		assert.ok(f, 'the socket ended without a close frame');
		if (f.op === 8)
			return f;
	}
}

describe('local WebSocket and SSE subscribers', { skip }, () => {
	let bd;
	const readKey = crypto.randomBytes(16).toString('hex');
	const tradeKey = crypto.randomBytes(16).toString('hex');
	const user = os.userInfo().username;

	before(async () => {
		bd = await startBrokerd({ config: {
			keys: [
				{ name: 'test', key: crypto.randomBytes(16)
				    .toString('hex'), scopes: ['read', 'trade'] },
				{ name: 'reader', key: readKey, scopes: ['read'] },
				{ name: 'trader', key: tradeKey,
				    scopes: ['trade'] },
			],
			peers: [{ user, scopes: ['read'] }],
			limits: { idle_timeout_ms: 300 },
			stream: { max_subscribers: 6, max_conids: 2,
			    max_message_bytes: 1024 },
		} });
		bd.key = readKey;
	});
	after(async () => { await bd?.stop(); });

	test('101 with the RFC accept key on /ws and /v1/api/ws, TCP and Unix',
	    async () => {
		for (const [path, tcp] of [['/ws', true], ['/v1/api/ws', true],
		    ['/ws', false], ['/v1/api/ws', false]]) {
			const ws = await open(bd, { path, tcp });
			assert.equal(ws.status, 101, ws.head);
			assert.match(ws.head, /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
			ws.sock.write(frame(1, 'tic'));
			const m = await nextReply(ws);
			assert.equal(m.topic, 'tic');
			ws.sock.destroy();
		}
	});

	test('Origin is refused 403 on /ws and /stream', async () => {
		for (const path of ['/ws', '/v1/api/ws', '/stream?sor=1']) {
			const r = await open(bd, { path, headers:
			    { Origin: 'http://127.0.0.1:3000' } });
			assert.equal(r.status, 403, path);
			r.sock.destroy();
		}
	});

	test('no key 401 on TCP; a peer uid on the Unix socket; read scope',
	    async () => {
		let r = await open(bd, { key: null });
		assert.equal(r.status, 401);
		r.sock.destroy();
		r = await open(bd, { key: tradeKey });
		assert.equal(r.status, 403);
		assert.match(r.body(), /read/);
		r.sock.destroy();
		r = await open(bd, { key: null, tcp: false });
		assert.equal(r.status, 101, 'the peer uid has read');
		r.sock.destroy();
		r = await open(bd, { path: '/stream?sor=1', key: tradeKey });
		assert.equal(r.status, 403);
		r.sock.destroy();
	});

	test('bad upgrades: 426 for another version, 400 otherwise',
	    async () => {
		let r = await open(bd, { headers:
		    { 'Sec-WebSocket-Version': '8' } });
		assert.equal(r.status, 426);
		assert.match(r.head, /Sec-WebSocket-Version: 13/i);
		r.sock.destroy();
		r = await open(bd, { headers: { 'Sec-WebSocket-Key': 'short' } });
		assert.equal(r.status, 400);
		r.sock.destroy();
		r = await open(bd, { upgrade: false });
		assert.ok(r.status === 400 || r.status === 426, r.head);
		r.sock.destroy();
		r = await open(bd, { path: '/stream?smd=abc:31' });
		assert.equal(r.status, 400);
		r.sock.destroy();
	});

	test('an unmasked client frame is a protocol error (1002)', async () => {
		const ws = await open(bd);
		ws.sock.write(frame(1, 'tic', { mask: false }));
		const c = await nextClose(ws);
		assert.equal(c.code, 1002);
		await ws.closed();
	});

	test('fragments reassembled, a ping between them answered',
	    async () => {
		const ws = await open(bd, { tcp: false });
		ws.sock.write(Buffer.concat([frame(1, 't', { fin: false }),
		    frame(9, 'hello'), frame(0, 'i', { fin: false }),
		    frame(0, 'c')]));
		const pong = await ws.next();
		assert.equal(pong.op, 10);
		assert.equal(pong.data.toString(), 'hello');
		assert.equal(pong.masked, false, 'the server does not mask');
		const m = await nextReply(ws);
		assert.equal(m.topic, 'tic');
		ws.sock.destroy();
	});

	test('close handshake: the code echoed, the socket ends', async () => {
		const ws = await open(bd);
		ws.sock.write(closeFrame(1000, 'bye'));
		const c = await nextClose(ws);
		assert.equal(c.code, 1000);
		ws.sock.end();
		await ws.closed();
	});

	test('an oversized message is refused 1009', async () => {
		const ws = await open(bd);
		ws.sock.write(frame(1, 'x'.repeat(4000)));
		const c = await nextClose(ws);
		assert.equal(c.code, 1009);
		await ws.closed();
	});

	test('text that is not UTF-8 is refused 1007', async () => {
		const ws = await open(bd, { tcp: false });
		ws.sock.write(frame(1, Buffer.from([0x74, 0xc3, 0x28])));
		const c = await nextClose(ws);
		assert.equal(c.code, 1007);
		await ws.closed();
	});

	test('unknown topics, malformed messages, limits and more than 20 '+
	    'a second: system errors', async () => {
		const ws = await open(bd);
		ws.sock.write(frame(1, 'zzz+{}'));
		let m = await nextError(ws);
		assert.equal(m.topic, 'system');
		assert.ok(m.error, JSON.stringify(m));
		ws.sock.write(frame(1, 'smd+notaconid+{"fields":["31"]}'));
		m = await nextError(ws);
		assert.equal(m.topic, 'system');
		assert.ok(m.error);
		/* max_conids 2 */
		for (const c of [1, 2, 3])
			ws.sock.write(frame(1, `smd+${c}+{"fields":["31"]}`));
		m = await nextError(ws);
		assert.equal(m.topic, 'system');
		assert.match(m.error, /conid|market data|max/i);
		for (let i = 0; i < 25; i++)
			ws.sock.write(frame(1, 'umd+1+{}'));
		let rate = null;
		for (let i = 0; i < 30 && !rate; i++) {
			m = await nextError(ws);
			if (/20/.test(m.error || ''))
				rate = m;
		}
		assert.ok(rate, 'the 21st message a second is refused');
		ws.sock.destroy();
	});

	/*
	 * A peer that sends pings and reads nothing: its pongs must not pile
	 * up in brokerd (400,000 pings would be some 80 MB of them).
	 */
	test('pings from a peer that reads nothing do not grow brokerd',
	    async () => {
		const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(
		    `/proc/${bd.pid}/status`, 'utf8'))[1]) * 1024;
		const ws = await open(bd, { tcp: false });
		ws.sock.pause();
		const before = rss();
		const ping = frame(9, 'p'.repeat(125));
		const batch = Buffer.concat(Array(1000).fill(ping));
		for (let i = 0; i < 400; i++)
			ws.sock.write(batch);
		for (let i = 0; i < 50 && ws.sock.writableLength > 0; i++)
			await sleep(100);
		const grown = rss() - before;
		ws.sock.destroy();
		assert.ok(grown < 16 << 20, `brokerd grew ${grown} bytes`);
	});

	test('streams outlive idle_timeout_ms (300 ms)', async () => {
		const ws = await open(bd);
		const sse = await open(bd, { path: '/stream?sor=1',
		    upgrade: false });
		assert.equal(sse.status, 200);
		assert.match(sse.head, /text\/event-stream/);
		await sleep(1000);
		assert.equal(ws.ended(), false);
		assert.equal(sse.ended(), false);
		ws.sock.write(frame(1, 'ech+hb'));
		const m = await nextReply(ws);
		assert.equal(m.topic, 'ech+hb');
		ws.sock.destroy();
		sse.sock.destroy();
	});

	test('SSE through curl -N', async () => {
		/* Three conids past max_conids 2: the third's error, as SSE. */
		const curl = spawn('curl', ['-siN', '-H', `X-Bridge-Key: ${readKey}`,
		    `http://127.0.0.1:${bd.tcpPort}/stream?smd=7:31,84&smd=8:31` +
		    '&smd=9:31'], { stdio: ['ignore', 'pipe', 'ignore'] });
		let out = '';
		curl.stdout.on('data', (d) => { out += d; });
		for (let i = 0; i < 60 && !/"error"/.test(out); i++)
			await sleep(50);
		curl.kill();
		assert.match(out, /content-type: text\/event-stream/i, out);
		assert.match(out, /^event: system\ndata: \{.*"error"/m, out);
	});

	test('/gateway/status and /metrics count subscribers', async () => {
		await sleep(200);	/* the curl before is gone */
		let st = (await bd.request({ path: '/gateway/status', key: readKey })).json();
		const n = st.stream.subscribers;
		const a = await open(bd);
		const b = await open(bd, { tcp: false });
		st = (await bd.request({ path: '/gateway/status', key: readKey })).json();
		assert.equal(st.stream.subscribers, n + 2, JSON.stringify(st.stream));
		assert.ok(st.stream.upstream, 'the upstream socket\'s state');
		const m = (await bd.request({ path: '/metrics', key: readKey })).text();
		assert.match(m, new RegExp(`^brokerd_stream_subscribers ${n + 2}$`, 'm'));
		assert.match(m, /^brokerd_stream_messages_out_total \d+$/m);
		a.sock.destroy();
		b.sock.destroy();
		await sleep(100);
		st = (await bd.request({ path: '/gateway/status', key: readKey })).json();
		assert.equal(st.stream.subscribers, n);
	});

	test('max_subscribers: a system error and 1013 past it', async () => {
		const held = [];
		for (let i = 0; i < 6; i++)
			held.push(await open(bd));
		const ws = await open(bd);
		assert.equal(ws.status, 101);
		const m = await nextJson(ws);
		assert.match(m.error, /max_subscribers/);
		const c = await nextClose(ws);
		assert.equal(c.code, 1013);
		for (const h of held)
			h.sock.destroy();
	});
});

describe('no Gateway socket open', { skip }, () => {
	/*
	 * With no session there is no Gateway socket: what subscribers join
	 * and leave must not pile up for it (a new socket replays what is
	 * active).  1,500 event streams of 124 accounts' topics each, opened
	 * and closed, would queue some 370,000 messages.
	 */
	test('subscriptions coming and going queue nothing for the Gateway',
	    async () => {
		/* under ASan, freed memory waits in quarantine: none here */
		const bd = await startBrokerd({ env: {
		    ASAN_OPTIONS: 'quarantine_size_mb=0' } });
		try {
			const rss = () => Number(/VmRSS:\s+(\d+)/.exec(
			    fs.readFileSync(`/proc/${bd.pid}/status`, 'utf8'))[1]) *
			    1024;
			/* accounts of its own: no topic shared with another */
			let n = 0;
			const one = async () => {
				const q = ['sor=1', 'str=1', 'spl=1'];
				for (let i = 0; i < 62; i++, n++)
					q.push(`ssd=A${n}`, `sld=A${n}`);
				const e = await open(bd, { path: '/stream?' +
				    q.join('&'), upgrade: false, key: bd.key });
				assert.equal(e.status, 200, e.head);
				e.sock.destroy();
				await e.closed();
			};
			await one();
			await sleep(200);
			const before = rss();
			for (let i = 0; i < 150; i++)
				await Promise.all(Array.from({ length: 10 }, one));
			await sleep(200);
			const grown = rss() - before;
			assert.ok(grown < 8 << 20, `brokerd grew ${grown} bytes`);
		} finally {
			await bd.stop();
		}
	});
});

describe('reload and stop close subscribers', { skip }, () => {
	test('SIGHUP removing a key closes its subscribers 1008; SIGTERM 1001',
	    async () => {
		const gone = crypto.randomBytes(16).toString('hex');
		const stays = crypto.randomBytes(16).toString('hex');
		const bd = await startBrokerd({ config: { keys: [
		    { name: 'gone', key: gone, scopes: ['read'] },
		    { name: 'stays', key: stays, scopes: ['read'] }] } });
		try {
			const a = await open(bd, { key: gone });
			const b = await open(bd, { key: stays, tcp: false });
			const e = await open(bd, { key: gone,
			    path: '/stream?sor=1', upgrade: false });
			assert.equal(a.status, 101);
			assert.equal(b.status, 101);
			assert.equal(e.status, 200);
			const text = fs.readFileSync(bd.configFile, 'utf8')
			    .split('\n').filter((l) => !l.includes(gone))
			    .join('\n');
			/* The key lines: "- name: gone" then "key: ..." */
			fs.writeFileSync(bd.configFile, text.replace(
			    /\n {2}- name: "gone"\n(?: {4}.*\n)*/, '\n'));
			await bd.reload(/configuration reloaded/);
			const c = await nextClose(a);
			assert.equal(c.code, 1008);
			/* an event stream has no close frame: a last event */
			await e.closed();
			const bye = 'event: system\ndata: {"topic":"system",' +
			    '"error":"key removed or its scope withdrawn",' +
			    '"code":1008}\n\n';
			assert.ok(e.body().endsWith(bye), e.body());
			b.sock.write(frame(1, 'tic'));
			assert.equal((await nextReply(b)).topic, 'tic');
			bd.signal('SIGTERM');
			const d = await nextClose(b);
			assert.equal(d.code, 1001);
			b.sock.write(closeFrame(1001));
			await b.closed();
		} finally {
			await bd.stop();
		}
	});
});
