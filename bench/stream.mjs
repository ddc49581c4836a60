/*
 * bench/stream.mjs: brokerd's stream fan-out (SPEC section 7), measured.
 *
 * The Gateway simulator ticks 50 conids every 25 ms (2,000 ticks/s; its
 * field 9999 carries the send time, epoch ms) on the one upstream
 * WebSocket; 100 local subscribers take every conid, first over /ws
 * (WebSocket), then over /stream (Server-Sent Events).  The subscribers
 * live in this one process and are written to keep up: raw sockets, frames
 * and events cut by hand, only the send time read from each message.
 * For each way in: messages received per second (conflated ones are merged
 * by brokerd, so they are not received and not counted), brokerd's CPU
 * (percent of one core, utime + stime from /proc/PID/stat over the
 * window), p50/p99 of the delay from the simulator's send to the receipt
 * here, brokerd's RSS at the end and its peak (VmHWM).
 *
 * Prints a Markdown section on stdout.  Environment: BENCH_STREAM_SECONDS
 * (measured window, 10), BENCH_STREAM_WARMUP (seconds, 5),
 * BENCH_STREAM_SUBSCRIBERS (100), BENCH_STREAM_CONIDS (50),
 * BENCH_STREAM_TICK_MS (25), BROKERD_BIN (build/brokerd).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { startGwsim, startBrokerd, sleep, waitFor, BROKERD }
    from '../tests/lib/harness.mjs';

const SECONDS = Number(process.env.BENCH_STREAM_SECONDS || 10);
const WARMUP = Number(process.env.BENCH_STREAM_WARMUP || 5);
const NSUBS = Number(process.env.BENCH_STREAM_SUBSCRIBERS || 100);
const NCONIDS = Number(process.env.BENCH_STREAM_CONIDS || 50);
const TICK_MS = Number(process.env.BENCH_STREAM_TICK_MS || 25);
const CONIDS = Array.from({ length: NCONIDS }, (_, i) => 3000 + i);
const FIELDS = ['31', '84', '86', '9999'];
const TIME = Buffer.from('"9999":"');
const HZ = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

const now = () => performance.timeOrigin + performance.now();

/* Delays in 10 us buckets up to 1 s, and one past it. */
const BUCKET_MS = 0.01;
const NBUCKETS = 100000;
let hist = new Uint32Array(NBUCKETS + 1);
let counting = false;
let received = 0;

function record(buf, start, end) {
	if (!counting)
		return;
	received++;
	const i = buf.indexOf(TIME, start);
	if (i < 0 || i >= end)
		return;
	const sent = Number(buf.toString('latin1', i + TIME.length,
	    buf.indexOf(34, i + TIME.length)));
	const b = Math.floor((now() - sent) / BUCKET_MS);
	hist[b < 0 ? 0 : b > NBUCKETS ? NBUCKETS : b]++;
}

function percentile(p) {
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

/* A masked client text frame (under 126 bytes). */
function textFrame(s) {
	const p = Buffer.from(s);
	const m = crypto.randomBytes(4);
	for (let i = 0; i < p.length; i++)
		p[i] ^= m[i % 4];
	return Buffer.concat([Buffer.from([0x81, 0x80 | p.length]), m, p]);
}

/* One connection; onBody(buf) cuts messages out of what follows the head. */
function connect(bd, head, onBody) {
	return new Promise((resolve, reject) => {
		const sock = net.connect(bd.tcpPort, '127.0.0.1');
		let buf = null;
		sock.once('error', reject);
		sock.on('data', (d) => {
			buf = buf === null || buf.length === 0 ? d :
			    Buffer.concat([buf, d]);
			if (onBody.started) {
				buf = onBody(buf);
				return;
			}
			const i = buf.indexOf('\r\n\r\n');
			if (i < 0)
				return;
			const status = buf.toString('latin1', 0, 12);
			if (!/ (101|200)/.test(status))
				return reject(new Error(status));
			onBody.started = true;
			buf = onBody(buf.subarray(i + 4));
			resolve(sock);
		});
		sock.write(head);
	});
}

/* Server frames: unmasked; returns what is left of buf. */
function wsFrames(buf) {
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
		if ((buf[off] & 15) === 1)
			recordIfSmd(buf, off + h, off + h + len);
		off += h + len;
	}
	return buf.subarray(off);
}

const SMD = Buffer.from('"topic":"smd+');
function recordIfSmd(buf, start, end) {
	const i = buf.indexOf(SMD, start);
	if (i >= 0 && i < end)
		record(buf, start, end);
}

/* SSE: events end with an empty line. */
const EVENT_SMD = Buffer.from('event: smd+');
function sseEvents(buf) {
	let off = 0;
	for (;;) {
		const e = buf.indexOf('\n\n', off);
		if (e < 0)
			break;
		if (buf.indexOf(EVENT_SMD, off) === off)
			record(buf, off, e);
		off = e + 2;
	}
	return buf.subarray(off);
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

async function metric(bd, name) {
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
}

async function run(bd, gw, way) {
	const socks = [];
	const key = `X-Bridge-Key: ${bd.key}\r\n`;
	if (way === 'WebSocket') {
		for (let i = 0; i < NSUBS; i++) {
			const parse = (b) => wsFrames(b);
			socks.push(await connect(bd, 'GET /ws HTTP/1.1\r\n' +
			    'Host: 127.0.0.1\r\nUpgrade: websocket\r\n' +
			    'Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n' +
			    `Sec-WebSocket-Key: ${crypto.randomBytes(16)
			    .toString('base64')}\r\n${key}\r\n`, parse));
		}
		/* brokerd takes 20 subscriptions a second from each */
		for (let i = 0; i < CONIDS.length; i++) {
			if (i > 0 && i % 15 === 0)
				await sleep(1100);
			const f = textFrame(`smd+${CONIDS[i]}+` +
			    JSON.stringify({ fields: FIELDS }));
			for (const s of socks)
				s.write(f);
		}
	} else {
		const q = CONIDS.map((c) => `smd=${c}:${FIELDS.join(',')}`)
		    .join('&');
		for (let i = 0; i < NSUBS; i++)
			socks.push(await connect(bd, `GET /stream?${q} HTTP/1.1\r\n` +
			    `Host: 127.0.0.1\r\nAccept: text/event-stream\r\n${key}\r\n`,
			    (b) => sseEvents(b)));
	}
	process.stderr.write(`bench: ${way}: ${NSUBS} subscribed\n`);
	await sleep(WARMUP * 1000);
	process.stderr.write(`bench: ${way}: measuring; so far ${received}\n`);
	hist = new Uint32Array(NBUCKETS + 1);
	received = 0;
	const conflated0 = await metric(bd, 'brokerd_stream_conflated_total');
	const up0 = (await gw.counters()).ws_messages_out;
	const cpu0 = procStat(bd.pid);
	const t0 = performance.now();
	counting = true;
	await sleep(SECONDS * 1000);
	process.stderr.write(`bench: ${way}: ${received} received\n`);
	counting = false;
	const secs = (performance.now() - t0) / 1000;
	const cpu = (procStat(bd.pid) - cpu0) / HZ / secs * 100;
	const up = ((await gw.counters()).ws_messages_out - up0) / secs;
	const conflated = await metric(bd, 'brokerd_stream_conflated_total') -
	    conflated0;
	const row = { way, rate: Math.round(received / secs),
	    up: Math.round(up), cpu: cpu.toFixed(1), p50: percentile(0.5),
	    p99: percentile(0.99), rss: procKiB(bd.pid, 'VmRSS'),
	    hwm: procKiB(bd.pid, 'VmHWM'), conflated };
	for (const s of socks)
		s.destroy();
	return row;
}

const na = (v) => Number.isNaN(v) ? 'n/a (no /metrics answer in 15 s)' : v;

/* A simulator and a brokerd of its own for each way in. */
async function measure(way) {
	const gw = await startGwsim({});
	let bd;
	try {
		await gw.behaviour({ rate_per_s: 0, ws_tick_ms: 0 });
		bd = await startBrokerd({ gwsim: gw, config: {
		    session: { tickle_interval_s: 1 },
		    stream: { max_subscribers: NSUBS + 10 } } });
		await bd.waitForLog(/-> authenticated/, 10000);
		await gw.behaviour({ ws_tick_ms: TICK_MS });
		return await run(bd, gw, way);
	} finally {
		if (bd)
			await bd.stop();
		await gw.stop();
	}
}

/* the harness kills its children on exit; a signal must reach exit */
for (const sig of ['SIGINT', 'SIGTERM'])
	process.on(sig, () => process.exit(1));
{
	const rows = [await measure('WebSocket'), await measure('SSE')];
	const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ')
	    .slice(0, 3).join(' ');
	const out = [];
	out.push('## Streaming fan-out: one Gateway WebSocket, ' +
	    `${NSUBS} local subscribers`);
	out.push('');
	out.push(`The simulator ticks ${NCONIDS} conids every ${TICK_MS} ms ` +
	    `(${Math.round(NCONIDS * 1000 / TICK_MS)} ticks/s, fields ` +
	    `${FIELDS.join(',')}; 9999 is its send time) on one upstream ` +
	    `socket; ${NSUBS} subscribers take every conid, all in one Node ` +
	    'process (raw sockets, messages cut by hand, only the send time ' +
	    `read). Window: ${SECONDS} s after ${WARMUP} s of warm-up; ` +
	    `load average at the end: ${load}. brokerd: ${BROKERD}.`);
	out.push('');
	out.push('| way in | messages received/s | upstream messages/s | ' +
	    'brokerd CPU % of one core | p50 ms | p99 ms | brokerd RSS KiB ' +
	    '(peak) | conflated in the window |');
	out.push('|---|---:|---:|---:|---:|---:|---:|---:|');
	for (const r of rows)
		out.push(`| ${r.way} | ${r.rate} | ${r.up} | ${r.cpu} | ` +
		    `${r.p50} | ${r.p99} | ${r.rss} (${r.hwm}) | ${na(r.conflated)} |`);
	out.push('');
	out.push('Delay: from the simulator\'s send (field 9999) to the ' +
	    'receipt here, through gwsim\'s WebSocket, brokerd and loopback; ' +
	    'the simulator, brokerd and the receivers share the same CPUs. ' +
	    'Target (issue 12): 200,000 messages/s with brokerd under 50% ' +
	    'of one core and p99 under 2 ms.');
	console.log(out.join('\n'));
}
