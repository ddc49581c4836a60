/*
 * The system calls brokerd makes on a kept-alive Gateway connection
 * (conn.c), seen by strace attached to the real daemon: in the steady
 * state the socket's watcher is never re-armed (no epoll_ctl), mbedTLS
 * reads through the read-ahead buffer (every recv asks for 32 KiB, not
 * for a 5-byte record header), and the MSG_PEEK liveness check runs
 * before every POST (a Gateway close not yet read would otherwise make an
 * order "outcome unknown") and never before a GET.  The Gateway WebSocket
 * (streamup_sock.c) reads through the same read-ahead (tlsio.c).  Counts,
 * never times.  Skipped where strace is missing or may not attach.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startGwsim, startBrokerd, brokerdBuilt, waitFor, sleep }
    from '../lib/harness.mjs';
import { subscriber, startStreaming } from '../lib/ws.mjs';

const strace = spawnSync('strace', ['-V'], { encoding: 'utf8' });
const skip = !brokerdBuilt() ? 'build/brokerd is not built' :
    strace.status !== 0 ? 'strace is not installed' : false;
const NC = { 'cache-control': 'no-cache' };
const GET = '/trsrv/stocks?symbols=AAPL';

/* The fd numbers of pid's TCP sockets connected to port. */
function gatewayFds(pid, port) {
	const inodes = new Set();
	for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
		let text = '';
		try {
			text = fs.readFileSync(f, 'utf8');
		} catch {
			continue;
		}
		for (const line of text.split('\n').slice(1)) {
			const c = line.trim().split(/\s+/);
			if (c.length > 9 &&
			    parseInt(c[2].split(':')[1], 16) === port)
				inodes.add(c[9]);
		}
	}
	const fds = [];
	for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
		let l = '';
		try {
			l = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
		} catch {
			continue;
		}
		const m = l.match(/^socket:\[(\d+)\]$/);
		if (m && inodes.has(m[1]))
			fds.push(Number(fd));
	}
	return fds;
}

/* strace attached to pid while fn runs: the calls made on fd (or fds). */
async function traced(pid, fd, fn) {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'brokerd-strace-'));
	const out = path.join(dir, 'trace');
	const st = spawn('strace', ['-f', '-s', '0', '-e',
	    'trace=recvfrom,sendto,epoll_ctl', '-o', out, '-p', String(pid)],
	    { stdio: ['ignore', 'ignore', 'pipe'] });
	let err = '';
	st.stderr.setEncoding('utf8');
	st.stderr.on('data', (d) => { err += d; });
	try {
		await waitFor(() => {
			if (st.exitCode !== null)
				throw new Error(`strace: ${err}`);
			return /attached/.test(err);
		}, { what: 'strace attached' });
		await fn();
	} finally {
		st.kill('SIGINT');
		await new Promise((r) => st.exitCode !== null ? r() :
		    st.once('exit', r));
	}
	const fds = [].concat(fd).join('|');
	const calls = fs.readFileSync(out, 'utf8').split('\n').filter((l) =>
	    new RegExp(`(recvfrom|sendto)\\((${fds}),|epoll_ctl\\(\\d+, ` +
	    `EPOLL_CTL_\\w+, (${fds}),`).test(l));
	fs.rmSync(dir, { recursive: true, force: true });
	return calls;
}

describe('system calls on a kept-alive Gateway connection', { skip }, () => {
	let gw, bd, fd;

	before(async () => {
		gw = await startGwsim();
		await gw.behaviour({ rate_per_s: 0 });
		bd = await startBrokerd({ gwsim: gw, config: {
		    limits: { gateway_rate: 'off' }, gateway: { pool: 1 },
		    session: { check_interval_s: 60,
		    tickle_interval_s: 60 } } });
		await waitFor(() => fs.existsSync(bd.statusFile) &&
		    /STATE=authenticated/.test(fs.readFileSync(bd.statusFile,
		    'utf8')), { what: 'authenticated' });
		assert.equal((await bd.request({ path: GET, headers: NC }))
		    .status, 200);
		const fds = gatewayFds(bd.pid, gw.port);
		assert.equal(fds.length, 1, 'one pooled connection');
		fd = fds[0];
	});
	after(async () => {
		await bd?.stop();
		await gw?.stop();
	});

	test('GETs: no epoll_ctl, no peek, every read fills the read-ahead',
	    async () => {
		const n = 20;
		const calls = await traced(bd.pid, fd, async () => {
			for (let i = 0; i < n; i++) {
				const r = await bd.request({ path: GET,
				    headers: NC });
				assert.equal(r.status, 200);
			}
		});
		assert.deepEqual(gatewayFds(bd.pid, gw.port), [fd],
		    'the same connection served them all');
		const sends = calls.filter((l) => /sendto\(/.test(l));
		const reads = calls.filter((l) => /recvfrom\(/.test(l));
		assert.equal(sends.length, n, calls.join('\n'));
		assert.deepEqual(calls.filter((l) => /epoll_ctl/.test(l)), []);
		assert.deepEqual(reads.filter((l) => /MSG_PEEK/.test(l)), []);
		assert.ok(reads.length >= n, calls.join('\n'));
		for (const l of reads)
			assert.match(l, /recvfrom\(\d+, \S*, 32768, 0,/);
	});

	test('every POST peeks first, however short the idle', async () => {
		const post = () => bd.request({ method: 'POST',
		    path: '/iserver/__echo', body: '{}',
		    headers: { 'content-type': 'application/json' } });
		const calls = await traced(bd.pid, fd, async () => {
			assert.equal((await post()).status, 200);
			assert.equal((await post()).status, 200);
		});
		const peeks = calls.filter((l) => /MSG_PEEK/.test(l));
		assert.equal(peeks.length, 2, calls.join('\n'));
		assert.ok(calls.indexOf(peeks[0]) <
		    calls.findIndex((l) => /sendto/.test(l)),
		    'the peek comes before the first POST is written');
	});
});

describe('system calls on the Gateway WebSocket', { skip }, () => {
	test('ticks are read through the read-ahead: every recv asks 32 KiB',
	    async (t) => {
		const { gw, bd } = await startStreaming(t,
		    { behaviour: { ws_tick_ms: 20, rate_per_s: 0 } });
		const s = await subscriber(bd);
		t.after(() => s.ws.terminate());
		s.ws.send('smd+265598+{"fields":["31","84"]}');
		await waitFor(() => s.msgs.some((m) =>
		    m.topic === 'smd+265598'), { what: 'the first tick' });
		/* the WebSocket and the pool's connections (whose POSTs
		 * peek first: not a read) */
		const fds = gatewayFds(bd.pid, gw.port);
		const n = s.msgs.length;
		const calls = await traced(bd.pid, fds, () => sleep(1000));
		const reads = calls.filter((l) => /recvfrom\(/.test(l) &&
		    !/MSG_PEEK/.test(l));
		assert.ok(s.msgs.length - n >= 10, 'ticks came meanwhile');
		assert.ok(reads.length >= 10, calls.join('\n'));
		for (const l of reads)
			assert.match(l, /recvfrom\(\d+, \S*, 32768, 0,/);
	});
});
