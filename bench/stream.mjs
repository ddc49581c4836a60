/*
 * bench/stream.mjs: brokerd's stream fan-out (SPEC section 7), measured.
 *
 * The Gateway simulator ticks 50 conids every 25 ms (2,000 ticks/s; its
 * field 9999 carries the send time, epoch ms, stamped as each message is
 * made) on the one upstream WebSocket, spread over each period
 * (ws_tick_slices: 2 ticks a millisecond, not 50 at once); 100 local
 * subscribers take every conid, first over /ws (WebSocket), then over
 * /stream (Server-Sent Events), both on the TCP listener, then /ws over
 * the Unix socket, then, with brokerd taken out, straight on the
 * simulator's own WebSocket (the bench's floor).
 *
 * The subscribers live in several receiver threads (worker_threads, each
 * its own event loop, so one busy loop does not stamp the others' messages
 * late), written to keep up: raw sockets, frames and events cut by hand,
 * only the send time read.  Each chunk read is stamped once, on arrival,
 * with the simulator's clock (performance.timeOrigin + performance.now():
 * the wall clock at start plus CLOCK_MONOTONIC since; the offsets of every
 * process to CLOCK_MONOTONIC are compared and printed).
 *
 * For each way in: messages received per second (conflated ones are merged
 * by brokerd, so they are not received and not counted), CPU (percent of
 * one core, utime + stime from /proc/PID/stat over the window) of brokerd,
 * the simulator and the receivers, p50/p99/p99.9 of the delay from the
 * simulator's send to the receipt, brokerd's RSS at the end and its peak.
 *
 * Prints a Markdown section on stdout.  Environment: BENCH_STREAM_SECONDS
 * (measured window, 10), BENCH_STREAM_WARMUP (seconds, 5),
 * BENCH_STREAM_SUBSCRIBERS (100), BENCH_STREAM_CONIDS (50),
 * BENCH_STREAM_TICK_MS (25), BENCH_STREAM_TICK_SLICES (25: a slice a
 * millisecond; 1 sends each period's ticks in one burst),
 * BENCH_STREAM_RECEIVERS (receiver threads, 4), BENCH_STREAM_DIRECT_CONNS
 * (simulator WebSockets per receiver thread for the floor, 1),
 * BENCH_STREAM_WAYS (WebSocket,SSE,WebSocket-unix,direct; SSE-unix too:
 * a -unix way connects to brokerd's Unix socket), BENCH_STREAM_SYSCALLS
 * (1: brokerd's system calls counted with perf stat; 0: not), BROKERD_BIN
 * (build/brokerd).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { execFileSync, spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { Worker, isMainThread, parentPort, workerData }
    from 'node:worker_threads';

const now = () => performance.timeOrigin + performance.now();
const monotonic = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Delays in 10 us buckets up to 1 s, and one past it. */
const BUCKET_MS = 0.01;
const NBUCKETS = 100000;

/* ---------- a receiver thread ---------- */

/* A masked client text frame (under 126 bytes). */
function textFrame(s) {
	const p = Buffer.from(s);
	const m = crypto.randomBytes(4);
	for (let i = 0; i < p.length; i++)
		p[i] ^= m[i % 4];
	return Buffer.concat([Buffer.from([0x81, 0x80 | p.length]), m, p]);
}

function receiver(w) {
	const TIME = Buffer.from('"9999":"');
	const SMD = Buffer.from('"topic":"smd+');
	const EVENT_SMD = Buffer.from('event: smd+');
	let hist = new Uint32Array(NBUCKETS + 1);
	let counting = false;
	let received = 0;
	let early = 0;		/* stamped before the send: clocks disagree */
	const socks = [];

	const record = (buf, start, end, at) => {
		if (!counting)
			return;
		received++;
		const i = buf.indexOf(TIME, start);
		if (i < 0 || i >= end)
			return;
		const sent = Number(buf.toString('latin1', i + TIME.length,
		    buf.indexOf(34, i + TIME.length)));
		const b = Math.floor((at - sent) / BUCKET_MS);
		if (b < 0)
			early++;
		hist[b < 0 ? 0 : b > NBUCKETS ? NBUCKETS : b]++;
	};

	/* Server frames: unmasked; returns what is left of buf. */
	const wsFrames = (buf, at) => {
		let off = 0;
		for (;;) {
			if (buf.length - off < 2)
				break;
			let len = buf[off + 1] & 127;
			let h = 2;
			if (len === 126) {
				if (buf.length - off < 4)
					break;
				len = buf.readUInt16BE(off + 2);
				h = 4;
			} else if (len === 127) {
				if (buf.length - off < 10)
					break;
				len = Number(buf.readBigUInt64BE(off + 2));
				h = 10;
			}
			if (buf.length - off < h + len)
				break;
			const s = off + h;
			if ((buf[off] & 15) === 1) {
				const i = buf.indexOf(SMD, s);
				if (i >= 0 && i < s + len)
					record(buf, s, s + len, at);
			}
			off += h + len;
		}
		return buf.subarray(off);
	};

	/* SSE: events end with an empty line. */
	const sseEvents = (buf, at) => {
		let off = 0;
		for (;;) {
			const e = buf.indexOf('\n\n', off);
			if (e < 0)
				break;
			if (buf.indexOf(EVENT_SMD, off) === off)
				record(buf, off, e, at);
			off = e + 2;
		}
		return buf.subarray(off);
	};

	/* One connection; the chunk's arrival stamps all it carries. */
	const connect = (head, cut) => new Promise((resolve, reject) => {
		const sock = w.way === 'direct' ?
		    tls.connect({ port: w.port, host: '127.0.0.1',
		    rejectUnauthorized: false }) : w.path ?
		    net.connect(w.path) : net.connect(w.port, '127.0.0.1');
		let buf = null;
		let started = false;
		sock.once('error', reject);
		sock.on('data', (d) => {
			const at = now();
			buf = buf === null || buf.length === 0 ? d :
			    Buffer.concat([buf, d]);
			if (started) {
				buf = cut(buf, at);
				return;
			}
			const i = buf.indexOf('\r\n\r\n');
			if (i < 0)
				return;
			const status = buf.toString('latin1', 0, 12);
			if (!/ (101|200)/.test(status))
				return reject(new Error(status));
			started = true;
			buf = cut(buf.subarray(i + 4), at);
			resolve(sock);
		});
		sock.setNoDelay(true);
		sock.write(head);
	});

	const subscribe = async () => {
		const fields = JSON.stringify({ fields: w.fields });
		const upgrade = (p, extra) => `GET ${p} HTTP/1.1\r\n` +
		    'Host: 127.0.0.1\r\nUpgrade: websocket\r\n' +
		    'Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n' +
		    `Sec-WebSocket-Key: ${crypto.randomBytes(16)
		    .toString('base64')}\r\n${extra}\r\n`;
		if (w.way === 'SSE') {
			const q = w.conids.map((c) =>
			    `smd=${c}:${w.fields.join(',')}`).join('&');
			for (let i = 0; i < w.n; i++)
				socks.push(await connect(`GET /stream?${q} ` +
				    'HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
				    'Accept: text/event-stream\r\n' +
				    `X-Bridge-Key: ${w.key}\r\n\r\n`, sseEvents));
			return;
		}
		const head = w.way === 'direct' ?
		    upgrade('/v1/api/ws', `Cookie: ${w.cookie}\r\n`) :
		    upgrade('/ws', `X-Bridge-Key: ${w.key}\r\n`);
		for (let i = 0; i < w.n; i++)
			socks.push(await connect(head, wsFrames));
		for (let i = 0; i < w.conids.length; i++) {
			/* brokerd takes 20 subscriptions a second from each */
			if (w.way !== 'direct' && i > 0 && i % 15 === 0)
				await sleep(1100);
			const f = textFrame(`smd+${w.conids[i]}+${fields}`);
			for (const s of socks)
				s.write(f);
		}
	};

	parentPort.on('message', (m) => {
		if (m === 'start') {
			hist = new Uint32Array(NBUCKETS + 1);
			received = 0;
			early = 0;
			counting = true;
		} else if (m === 'stop') {
			counting = false;
			parentPort.postMessage({ hist, received, early,
			    offset: now() - monotonic() }, [hist.buffer]);
		} else if (m === 'close') {
			for (const s of socks)
				s.destroy();
			parentPort.close();
		}
	});
	subscribe().then(() => parentPort.postMessage('ready'), (e) => {
		parentPort.postMessage({ error: e.message });
	});
}

/* ---------- the main thread ---------- */

function percentile(hist, p) {
	let total = 0;
	for (const n of hist)
		total += n;
	let want = Math.ceil(total * p);
	for (let i = 0; i <= NBUCKETS; i++) {
		want -= hist[i];
		if (want <= 0)
			return i >= NBUCKETS ? '> 1000' : (i * BUCKET_MS).toFixed(2);
	}
	return 'n/a';
}

function procStat(pid) {
	const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
	const r = f.slice(f.lastIndexOf(')') + 2).split(' ');
	return Number(r[11]) + Number(r[12]);	/* utime + stime */
}

function procKiB(pid, what) {
	const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
	    .match(new RegExp(`^${what}:\\s+(\\d+) kB`, 'm'));
	return m ? Number(m[1]) : NaN;
}

/*
 * brokerd's system calls over the window, by name, from perf's syscall
 * tracepoints (counted in the kernel: brokerd is not slowed the way strace
 * slows it); null without perf or its permission.
 */
const SYSCALLS = ['epoll_wait', 'epoll_ctl', 'recvfrom', 'sendto', 'read',
    'write', 'writev'];
function perfStat(pid, secs) {
	const ev = ['raw_syscalls:sys_enter',
	    ...SYSCALLS.map((n) => `syscalls:sys_enter_${n}`)].join(',');
	return new Promise((resolve) => {
		let err = '';
		let p;
		try {
			p = spawn('perf', ['stat', '-x', ',', '-e', ev, '-p',
			    String(pid), '--', 'sleep', String(secs)],
			    { stdio: ['ignore', 'ignore', 'pipe'] });
		} catch {
			return resolve(null);
		}
		p.on('error', () => resolve(null));
		p.stderr.on('data', (d) => { err += d; });
		p.on('close', (code) => {
			const n = {};
			for (const l of err.split('\n')) {
				const f = l.split(',');
				const m = /(?:sys_enter_|raw_syscalls:)(\w+)$/
				    .exec(f[2] || '');
				if (m && /^\d+$/.test(f[0]))
					n[m[1]] = Number(f[0]);
			}
			resolve(code === 0 && 'sys_enter' in n ? n : null);
		});
	});
}

/* Receiver threads sharing n connections; resolves once all subscribed. */
async function receivers(nthreads, n, data) {
	const ws = [];
	const ready = [];
	for (let i = 0; i < nthreads; i++) {
		const share = Math.floor(n / nthreads) +
		    (i < n % nthreads ? 1 : 0);
		if (share === 0)
			continue;
		const w = new Worker(new URL(import.meta.url),
		    { workerData: { ...data, n: share } });
		ws.push(w);
		ready.push(new Promise((resolve, reject) => {
			w.once('message', (m) => m === 'ready' ? resolve() :
			    reject(new Error(m.error)));
			w.once('error', reject);
		}));
	}
	await Promise.all(ready);
	return ws;
}

/* Every thread's figures, their histograms summed. */
function collect(ws) {
	return Promise.all(ws.map((w) => new Promise((resolve) => {
		w.once('message', resolve);
		w.postMessage('stop');
	}))).then((rs) => {
		const hist = new Uint32Array(NBUCKETS + 1);
		let received = 0;
		let early = 0;
		const offsets = [];
		for (const r of rs) {
			for (let i = 0; i <= NBUCKETS; i++)
				hist[i] += r.hist[i];
			received += r.received;
			early += r.early;
			offsets.push(r.offset);
		}
		return { hist, received, early, offsets };
	});
}

async function main() {
	const { startGwsim, startBrokerd, request, BROKERD } =
	    await import('../tests/lib/harness.mjs');
	const SECONDS = Number(process.env.BENCH_STREAM_SECONDS || 10);
	const WARMUP = Number(process.env.BENCH_STREAM_WARMUP || 5);
	const NSUBS = Number(process.env.BENCH_STREAM_SUBSCRIBERS || 100);
	const NCONIDS = Number(process.env.BENCH_STREAM_CONIDS || 50);
	const TICK_MS = Number(process.env.BENCH_STREAM_TICK_MS || 25);
	const SLICES = Number(process.env.BENCH_STREAM_TICK_SLICES || TICK_MS);
	const NRECV = Number(process.env.BENCH_STREAM_RECEIVERS || 4);
	const DIRECT = Number(process.env.BENCH_STREAM_DIRECT_CONNS || 1);
	const SYSCALLS_ON = process.env.BENCH_STREAM_SYSCALLS !== '0';
	const WAYS = (process.env.BENCH_STREAM_WAYS ||
	    'WebSocket,SSE,WebSocket-unix,direct')
	    .split(',');
	const CONIDS = Array.from({ length: NCONIDS }, (_, i) => 3000 + i);
	const FIELDS = ['31', '84', '86', '9999'];
	const HZ = Number(execFileSync('getconf', ['CLK_TCK']).toString()
	    .trim());

	const metric = async (bd, name) => {
		/* a saturated brokerd may answer late: the figure is left out */
		let t;
		try {
			t = (await bd.request({ path: '/metrics',
			    timeoutMs: 15000 })).text();
		} catch {
			return NaN;
		}
		const m = t.match(new RegExp(`^${name} (\\d+)$`, 'm'));
		return m ? Number(m[1]) : NaN;
	};

	/* A simulator (and a brokerd) of its own for each way in. */
	const measure = async (way) => {
		const gw = await startGwsim({});
		let bd = null;
		let ws = [];
		try {
			await gw.behaviour({ rate_per_s: 0, ws_tick_ms: 0 });
			/* "WebSocket-unix": over brokerd's Unix socket */
			const data = { way: way.replace(/-unix$/, ''),
			    conids: CONIDS, fields: FIELDS };
			let n = NSUBS;
			if (way === 'direct') {
				const t = await request({ port: gw.port,
				    path: '/v1/api/tickle', https: true });
				data.port = gw.port;
				data.cookie = t.headers['set-cookie'][0]
				    .split(';')[0];
				n = NRECV * DIRECT;
			} else {
				bd = await startBrokerd({ gwsim: gw, config: {
				    session: { tickle_interval_s: 1 },
				    stream: { max_subscribers: NSUBS + 10 } } });
				await bd.waitForLog(/-> authenticated/, 10000);
				data.port = bd.tcpPort;
				data.key = bd.key;
				if (way.endsWith('-unix'))
					data.path = bd.socket;
			}
			await gw.behaviour({ ws_tick_ms: TICK_MS,
			    ws_tick_slices: SLICES });
			ws = await receivers(NRECV, n, data);
			process.stderr.write(`bench: ${way}: ${n} subscribed\n`);
			await new Promise((r) => setTimeout(r, WARMUP * 1000));
			const conflated0 = bd ? await metric(bd,
			    'brokerd_stream_conflated_total') : 0;
			const up0 = (await gw.counters()).ws_messages_out;
			const cpu0 = bd ? procStat(bd.pid) : 0;
			const gcpu0 = procStat(gw.proc.pid);
			const rcpu0 = process.cpuUsage();
			const t0 = performance.now();
			for (const w of ws)
				w.postMessage('start');
			const sc = bd && SYSCALLS_ON ? perfStat(bd.pid,
			    SECONDS - 1) : null;
			const in0 = bd ? await metric(bd,
			    'brokerd_stream_messages_in_total') : 0;
			await new Promise((r) => setTimeout(r, SECONDS * 1000));
			const r = await collect(ws);
			const secs = (performance.now() - t0) / 1000;
			const calls = await sc;
			const in1 = bd ? await metric(bd,
			    'brokerd_stream_messages_in_total') : 0;
			const rc = process.cpuUsage(rcpu0);
			const c = await gw.counters();
			const gwOff = c.ws_clock.epoch_ms - c.ws_clock.monotonic_ms;
			const offs = [...r.offsets, now() - monotonic()]
			    .map((o) => Math.abs(o - gwOff) * 1000);
			process.stderr.write(`bench: ${way}: ${r.received} ` +
			    'received\n');
			return { way, n, rate: Math.round(r.received / secs),
			    up: Math.round((c.ws_messages_out - up0) / secs),
			    cpu: bd ? ((procStat(bd.pid) - cpu0) / HZ / secs *
			    100).toFixed(1) : '-',
			    gcpu: ((procStat(gw.proc.pid) - gcpu0) / HZ / secs *
			    100).toFixed(1),
			    rcpu: ((rc.user + rc.system) / 1e4 / secs).toFixed(1),
			    p50: percentile(r.hist, 0.5),
			    p99: percentile(r.hist, 0.99),
			    p999: percentile(r.hist, 0.999),
			    rss: bd ? `${procKiB(bd.pid, 'VmRSS')} ` +
			    `(${procKiB(bd.pid, 'VmHWM')})` : '-',
			    conflated: bd ? await metric(bd,
			    'brokerd_stream_conflated_total') - conflated0 : '-',
			    early: r.early, skew: Math.max(...offs).toFixed(0),
			    calls, upIn: (in1 - in0) * (SECONDS - 1) / secs };
		} finally {
			for (const w of ws)
				w.postMessage('close');
			if (bd)
				await bd.stop();
			await gw.stop();
		}
	};

	const na = (v) => Number.isNaN(v) ? 'n/a (no /metrics answer)' : v;
	const rows = [];
	for (const way of WAYS)
		rows.push(await measure(way));
	const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ')
	    .slice(0, 3).join(' ');
	const out = [];
	out.push('## Streaming fan-out: one Gateway WebSocket, ' +
	    `${NSUBS} local subscribers`);
	out.push('');
	out.push(`The simulator ticks ${NCONIDS} conids every ${TICK_MS} ms ` +
	    `(${Math.round(NCONIDS * 1000 / TICK_MS)} ticks/s, fields ` +
	    `${FIELDS.join(',')}; 9999 is its send time) on one upstream ` +
	    `socket, in ${SLICES} slice(s) a period ` +
	    `(${SLICES > 1 ? 'a trickle' : 'one burst'}); ${NSUBS} ` +
	    `subscribers take every conid, read by ${NRECV} receiver ` +
	    'threads (raw sockets, messages cut by hand, each chunk stamped ' +
	    `on arrival). "direct": ${NRECV * DIRECT} receiver WebSocket(s) ` +
	    'straight on the simulator, brokerd taken out (the floor). ' +
	    `Window: ${SECONDS} s after ${WARMUP} s of warm-up; load average ` +
	    `at the end: ${load}. brokerd: ${BROKERD}.`);
	out.push('');
	out.push('| way in | connections | messages received/s | upstream ' +
	    'messages/s | CPU % of one core: brokerd / simulator / ' +
	    'receivers | p50 ms | p99 ms | p99.9 ms | brokerd RSS KiB (peak) | ' +
	    'conflated |');
	out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
	for (const r of rows)
		out.push(`| ${r.way} | ${r.n} | ${r.rate} | ${r.up} | ` +
		    `${r.cpu} / ${r.gcpu} / ${r.rcpu} | ${r.p50} | ${r.p99} | ` +
		    `${r.p999} | ${r.rss} | ${na(r.conflated)} |`);
	const sc = rows.filter((r) => r.calls);
	if (sc.length > 0) {
		out.push('');
		out.push('brokerd\'s system calls (`perf stat` on its syscall ' +
		    `tracepoints over ${SECONDS - 1} s of the window), per ` +
		    'message from the Gateway (each goes to every subscriber):');
		out.push('');
		out.push(`| way in | all | ${SYSCALLS.join(' | ')} |`);
		out.push(`|---|${SYSCALLS.map(() => '---:|').join('')}---:|`);
		for (const r of sc) {
			const per = (n) => (n / r.upIn).toFixed(1);
			out.push(`| ${r.way} | ${per(r.calls.sys_enter)} | ` +
			    SYSCALLS.map((k) => per(r.calls[k] || 0))
			    .join(' | ') + ' |');
		}
	}
	out.push('');
	out.push('Delay: from the simulator\'s send (field 9999) to the ' +
	    'receipt, through the simulator\'s WebSocket, brokerd and ' +
	    'loopback; the simulator, brokerd and the receivers share the ' +
	    'same CPUs. Clocks: the largest gap between a receiver\'s and ' +
	    'the simulator\'s offset to CLOCK_MONOTONIC was ' +
	    `${rows.map((r) => `${r.skew} us (${r.way})`).join(', ')}; ` +
	    'messages stamped before their send time: ' +
	    `${rows.map((r) => r.early).join(', ')}. Target (issue 12): ` +
	    '200,000 messages/s with brokerd under 50% of one core and p99 ' +
	    'under 2 ms.');
	console.log(out.join('\n'));
}

if (isMainThread) {
	/* the harness kills its children on exit; a signal must reach exit */
	for (const sig of ['SIGINT', 'SIGTERM'])
		process.on(sig, () => process.exit(1));
	await main();
	process.exit(0);
} else {
	receiver(workerData);
}
