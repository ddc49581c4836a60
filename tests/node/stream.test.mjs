/*
 * Streaming large Gateway answers to the client (forward.c, conn.c):
 * a non-GET or a no-cache GET answered 2xx goes out piece by piece, with
 * the Gateway's Content-Length, or chunked (HTTP/1.1) / close-delimited
 * (HTTP/1.0) when it gave none; a slow client pauses the Gateway instead of
 * growing brokerd; a body that breaks off closes the client's connection;
 * pipelining and coalesced GETs still work.  BROKERD_BIN overrides
 * build/brokerd.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { startGwsim, startBrokerd, brokerdBuilt, waitFor, sleep }
    from '../lib/harness.mjs';

const skip = brokerdBuilt() ? false : 'build/brokerd is not built';
const MiB = 1 << 20;
const blob = (n) => {
	const b = Buffer.alloc(n);
	for (let i = 0; i < n; i++)
		b[i] = i % 251;
	return b;
};
const NOCACHE = { 'cache-control': 'no-cache' };

/* VmRSS of a process, in bytes. */
function rss(pid) {
	const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`,
	    'utf8'));
	return Number(m[1]) * 1024;
}

/*
 * A GET over the Unix socket that records when the head and the first
 * body byte arrived.  Resolves {status, headers, body, tHead, tFirst,
 * tEnd, complete} (times in ms from the start).
 */
function timedGet(bd, path, headers = {}) {
	return new Promise((resolve, reject) => {
		const t0 = performance.now();
		const req = http.request({ socketPath: bd.socket, path,
		    headers: { 'x-bridge-key': bd.key, ...headers },
		    agent: false }, (res) => {
			const out = { status: res.statusCode, headers: res.headers,
			    tHead: performance.now() - t0, tFirst: null };
			const chunks = [];
			res.on('data', (c) => {
				if (out.tFirst === null)
					out.tFirst = performance.now() - t0;
				chunks.push(c);
			});
			res.on('error', () => {});
			res.on('close', () => {
				out.tEnd = performance.now() - t0;
				out.body = Buffer.concat(chunks);
				out.complete = res.complete;
				resolve(out);
			});
		});
		req.setTimeout(20000, () => req.destroy(new Error('timeout')));
		req.on('error', reject);
		req.end();
	});
}

/* Send raw bytes on a new Unix-socket connection; read until it closes. */
function raw(bd, text, { timeoutMs = 15000 } = {}) {
	return new Promise((resolve, reject) => {
		const s = net.createConnection(bd.socket);
		const chunks = [];
		const t = setTimeout(() => {
			s.destroy();
			reject(new Error('raw: no close in time'));
		}, timeoutMs);
		s.on('connect', () => s.write(text));
		s.on('data', (c) => chunks.push(c));
		s.on('error', () => {});
		s.on('close', () => {
			clearTimeout(t);
			resolve(Buffer.concat(chunks));
		});
	});
}

/*
 * Split raw HTTP/1.x answers: [{status, headers, body, framing}].  A body
 * without Content-Length or chunked runs to the end (close-delimited).
 */
function parseAnswers(buf) {
	const out = [];
	let off = 0;
	while (off < buf.length) {
		const end = buf.indexOf('\r\n\r\n', off);
		assert.ok(end > 0, 'a complete head');
		const lines = buf.subarray(off, end).toString('latin1')
		    .split('\r\n');
		const status = Number(lines[0].split(' ')[1]);
		const headers = {};
		for (const l of lines.slice(1)) {
			const i = l.indexOf(':');
			headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
		}
		off = end + 4;
		let body, framing;
		if (headers['transfer-encoding'] === 'chunked') {
			framing = 'chunked';
			const parts = [];
			for (;;) {
				const le = buf.indexOf('\r\n', off);
				assert.ok(le > 0, 'a chunk size line');
				const n = parseInt(buf.subarray(off, le).toString(), 16);
				off = le + 2;
				if (n === 0) {
					assert.equal(buf.subarray(off, off + 2)
					    .toString(), '\r\n', 'last chunk');
					off += 2;
					break;
				}
				assert.ok(off + n + 2 <= buf.length, 'a whole chunk');
				parts.push(buf.subarray(off, off + n));
				off += n;
				assert.equal(buf.subarray(off, off + 2).toString(),
				    '\r\n');
				off += 2;
			}
			body = Buffer.concat(parts);
		} else if (headers['content-length'] !== undefined) {
			framing = 'length';
			const n = Number(headers['content-length']);
			body = buf.subarray(off, off + n);
			assert.equal(body.length, n, 'the whole body');
			off += n;
		} else {
			framing = 'close';
			body = buf.subarray(off);
			off = buf.length;
		}
		out.push({ status, headers, body, framing });
	}
	return out;
}

describe('streamed answers', { skip }, () => {
	let gw, bd;

	before(async () => {
		gw = await startGwsim();
		await gw.behaviour({ rate_per_s: 0 });
		bd = await startBrokerd({ gwsim: gw, config: {
		    limits: { gateway_rate: 'off', queue_ms: 5000 },
		    gateway: { pool: 4, timeout_ms: 15000 } } });
		await waitFor(() => fs.existsSync(bd.statusFile) &&
		    /STATE=authenticated/.test(fs.readFileSync(bd.statusFile,
		    'utf8')), { what: 'authenticated' });
	});
	after(async () => {
		await bd?.stop();
		await gw?.stop();
	});

	test('a 4 MiB dripping answer reaches the client as it comes, exact',
	    async () => {
		/* 256 pieces of 16 KiB, 8 ms apart: about 2 s at the Gateway. */
		await gw.behaviour({ drip_ms: 8, paths: ['/trsrv/__blob'] });
		let r;
		try {
			r = await timedGet(bd, `/trsrv/__blob?bytes=${4 * MiB}`,
			    NOCACHE);
		} finally {
			await gw.behaviour({ drip_ms: 0, paths: null });
		}
		assert.equal(r.status, 200);
		assert.ok(r.complete);
		assert.equal(r.headers['content-length'], String(4 * MiB));
		assert.ok(r.body.equals(blob(4 * MiB)), 'byte-exact');
		assert.ok(r.tEnd > 1500, `the drip took ${r.tEnd} ms`);
		/* The last piece left the simulator just before tEnd. */
		assert.ok(r.tFirst < 500 && r.tFirst < r.tEnd - 1000,
		    `first body byte at ${r.tFirst} ms, end at ${r.tEnd} ms`);
		/* The request log and the metrics count the streamed bytes. */
		await waitFor(() => new RegExp(`GET /trsrv/__blob 200 ${4 * MiB} `)
		    .test(bd.log()), { what: 'request log line' });
		const m = await bd.request({ path: '/metrics' });
		assert.match(m.text(), /route="\/trsrv\/"[^\n]*status="200"[^\n]* [1-9]/);
	});

	test('a buffered GET (no no-cache) still comes whole', async () => {
		await gw.behaviour({ drip_ms: 8, paths: ['/trsrv/__blob'] });
		let r;
		try {
			r = await timedGet(bd, `/trsrv/__blob?bytes=${MiB}&x=buf`);
		} finally {
			await gw.behaviour({ drip_ms: 0, paths: null });
		}
		assert.equal(r.status, 200);
		assert.ok(r.body.equals(blob(MiB)));
		/* 64 pieces 8 ms apart: nothing before the last one. */
		assert.ok(r.tFirst > 400, `first byte at ${r.tFirst} ms`);
	});

	test('chunked from the Gateway: chunked to the client, exact',
	    async () => {
		for (const n of [0, 1, 300000]) {
			const r = await timedGet(bd,
			    `/trsrv/__blob?bytes=${n}&chunked=1`, NOCACHE);
			assert.equal(r.status, 200, `${n}`);
			assert.ok(r.complete);
			assert.equal(r.headers['transfer-encoding'], 'chunked');
			assert.equal(r.headers['content-length'], undefined);
			assert.ok(r.body.equals(blob(n)), `${n} bytes exact`);
		}
		/* The same connection serves the next request (keep-alive). */
		const a = parseAnswers(await raw(bd,
		    `GET /trsrv/__blob?bytes=70000&chunked=1 HTTP/1.1\r\n` +
		    `Host: localhost\r\nX-Bridge-Key: ${bd.key}\r\n` +
		    `Cache-Control: no-cache\r\n\r\nGET /health HTTP/1.1\r\n` +
		    `Host: localhost\r\nConnection: close\r\n\r\n`));
		assert.equal(a.length, 2);
		assert.equal(a[0].framing, 'chunked');
		assert.ok(a[0].body.equals(blob(70000)));
		assert.equal(a[1].status, 200);
	});

	test('a POST answer streams too (echo, Content-Length kept)',
	    async () => {
		const body = blob(3 * MiB / 4);
		const r = await bd.request({ method: 'POST',
		    path: '/iserver/__echo', body,
		    headers: { 'content-type': 'application/x-test' } });
		assert.equal(r.status, 200);
		assert.equal(r.headers['content-type'], 'application/x-test');
		assert.equal(r.headers['content-length'], String(body.length));
		assert.ok(r.body.equals(body));
	});

	test('HTTP/1.0 client: close-delimited without a length, exact',
	    async () => {
		let a = parseAnswers(await raw(bd,
		    `GET /trsrv/__blob?bytes=200000&chunked=1 HTTP/1.0\r\n` +
		    `X-Bridge-Key: ${bd.key}\r\nCache-Control: no-cache\r\n\r\n`));
		assert.equal(a.length, 1);
		assert.equal(a[0].status, 200);
		assert.equal(a[0].framing, 'close');
		assert.equal(a[0].headers.connection, 'close');
		assert.ok(a[0].body.equals(blob(200000)), 'exact');
		/* With the Gateway's Content-Length it keeps the length. */
		a = parseAnswers(await raw(bd,
		    `GET /trsrv/__blob?bytes=200000 HTTP/1.0\r\n` +
		    `X-Bridge-Key: ${bd.key}\r\nCache-Control: no-cache\r\n\r\n`));
		assert.equal(a.length, 1);
		assert.equal(a[0].framing, 'length');
		assert.ok(a[0].body.equals(blob(200000)), 'exact');
	});

	test('a slow client does not make brokerd buffer the answer',
	    async () => {
		const n = 12 * MiB;
		const before = rss(bd.pid);
		const s = net.createConnection(bd.socket);
		const chunks = [];
		let got = 0, peak = before;
		await new Promise((r) => s.on('connect', r));
		s.pause();
		s.write(`GET /trsrv/__blob?bytes=${n} HTTP/1.1\r\n` +
		    `Host: localhost\r\nX-Bridge-Key: ${bd.key}\r\n` +
		    `Cache-Control: no-cache\r\nConnection: close\r\n\r\n`);
		s.on('data', (c) => {
			chunks.push(c);
			got += c.length;
		});
		/* Not reading: a buffering brokerd would hold all 12 MiB. */
		for (let i = 0; i < 10; i++) {
			await sleep(100);
			peak = Math.max(peak, rss(bd.pid));
		}
		/* Then read slowly, a little at a time. */
		const done = new Promise((r) => s.on('close', r));
		while (!s.destroyed && got < n + 1000) {
			s.resume();
			await sleep(5);
			s.pause();
			await sleep(5);
			peak = Math.max(peak, rss(bd.pid));
			if (s.readableEnded)
				break;
		}
		s.resume();
		await done;
		const a = parseAnswers(Buffer.concat(chunks));
		assert.equal(a[0].status, 200);
		assert.ok(a[0].body.equals(blob(n)), 'exact');
		assert.ok(peak - before < 1.5 * MiB,
		    `brokerd grew by ${((peak - before) / MiB).toFixed(2)} MiB`);
	});

	test('reset mid-body after streaming began: a short, closed answer',
	    async () => {
		await gw.behaviour({ reset_mid_body: true,
		    paths: ['/trsrv/__blob'] });
		try {
			for (const q of ['bytes=1048576', 'bytes=1048576&chunked=1']) {
				const r = await timedGet(bd, `/trsrv/__blob?${q}`,
				    NOCACHE);
				assert.equal(r.status, 200, q);
				assert.equal(r.complete, false, `${q}: cut short`);
				assert.ok(r.body.length > 0 && r.body.length < MiB,
				    `${q}: ${r.body.length} bytes`);
				assert.ok(r.body.equals(blob(r.body.length)),
				    `${q}: what came is right`);
			}
		} finally {
			await gw.behaviour({ reset_mid_body: false, paths: null });
		}
		await waitFor(() => /broke off after \d+ streamed bytes/
		    .test(bd.log()), { what: 'the log says the answer broke off' });
		assert.equal((await bd.request({ path: '/health' })).status, 200);
		const r = await timedGet(bd, '/trsrv/__blob?bytes=100000', NOCACHE);
		assert.ok(r.complete && r.body.equals(blob(100000)), 'healthy');
	});

	test('a pipelined request behind a streamed one is answered after it',
	    async () => {
		await gw.behaviour({ drip_ms: 5, paths: ['/trsrv/__blob'] });
		let a;
		try {
			a = parseAnswers(await raw(bd,
			    `GET /trsrv/__blob?bytes=${MiB}&chunked=1 HTTP/1.1\r\n` +
			    `Host: localhost\r\n` +
			    `X-Bridge-Key: ${bd.key}\r\nCache-Control: no-cache\r\n` +
			    `\r\nGET /trsrv/__blob?bytes=5000 HTTP/1.1\r\n` +
			    `Host: localhost\r\n` +
			    `X-Bridge-Key: ${bd.key}\r\nCache-Control: no-cache\r\n` +
			    `\r\nPOST /iserver/__echo HTTP/1.1\r\nHost: localhost\r\n` +
			    `X-Bridge-Key: ${bd.key}\r\nContent-Length: 5\r\n` +
			    `Connection: close\r\n\r\nhello`));
		} finally {
			await gw.behaviour({ drip_ms: 0, paths: null });
		}
		assert.equal(a.length, 3);
		assert.equal(a[0].framing, 'chunked');
		assert.ok(a[0].body.equals(blob(MiB)), 'first exact');
		assert.equal(a[1].status, 200);
		assert.ok(a[1].body.equals(blob(5000)), 'second exact');
		assert.equal(a[2].body.toString(), 'hello', 'third');
	});

	test('coalesced GETs share one upstream request, identical answers',
	    async () => {
		const key = 'GET /v1/api/trsrv/__blob';
		const n0 = (await gw.counters()).by_route[key] ?? 0;
		await gw.behaviour({ drip_ms: 5, paths: ['/trsrv/__blob'] });
		let rs;
		try {
			rs = await Promise.all([1, 2, 3].map(() => timedGet(bd,
			    `/trsrv/__blob?bytes=${MiB}&x=coalesce`)));
		} finally {
			await gw.behaviour({ drip_ms: 0, paths: null });
		}
		for (const r of rs) {
			assert.equal(r.status, 200);
			assert.ok(r.body.equals(blob(MiB)));
		}
		assert.equal(((await gw.counters()).by_route[key] ?? 0) - n0, 1,
		    'one upstream request');
	});

	test('a declared length over max_response_bytes is a 502 before any '
	    + 'byte', async () => {
		const small = await startBrokerd({ gwsim: gw, config: {
		    limits: { gateway_rate: 'off', max_response_bytes: 100000 } } });
		try {
			let r = await timedGet(small, '/trsrv/__blob?bytes=100001',
			    NOCACHE);
			assert.equal(r.status, 502);
			assert.equal(JSON.parse(r.body).error, 'gateway_bad_response');
			/* Chunked: found out mid-way, the connection closes. */
			r = await timedGet(small,
			    '/trsrv/__blob?bytes=300000&chunked=1', NOCACHE);
			assert.ok(r.status === 502 || r.complete === false,
			    `status ${r.status}, complete ${r.complete}`);
			assert.ok(r.body.length <= 100000 + 1000);
			r = await timedGet(small, '/trsrv/__blob?bytes=100000',
			    NOCACHE);
			assert.ok(r.complete && r.body.equals(blob(100000)));
		} finally {
			await small.stop();
		}
	});
});
