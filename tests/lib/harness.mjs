/*
 * Shared test harness (Node ESM, no dependencies): start the Gateway
 * simulator and brokerd as real processes, talk HTTP to them, stop them.
 *
 *   import { startGwsim, startBrokerd, request } from '../lib/harness.mjs';
 *   const gw = await startGwsim();
 *   const bd = await startBrokerd({ gwsim: gw });
 *   const r = await bd.request({ path: '/iserver/accounts' });
 *   await bd.stop(); await gw.stop();
 *
 * Every child is killed (SIGKILL, by PID) if the test process exits first.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '..', '..');
export const GWSIM = path.join(ROOT, 'tests', 'gwsim', 'gwsim.js');
export const BROKERD = process.env.BROKERD_BIN ||
    path.join(ROOT, 'build', 'brokerd');

/*
 * Children still running when the test process exits: gwsim gets SIGTERM
 * (it removes its own temp dir at once), brokerd SIGKILL; brokerd's temp
 * dirs are removed here.
 */
const children = new Set();
const tempDirs = new Set();
process.on('exit', () => {
	for (const c of children)
		try {
			process.kill(c.pid, c.gwsim ? 'SIGTERM' : 'SIGKILL');
		} catch { /* already gone */ }
	for (const d of tempDirs)
		try {
			fs.rmSync(d, { recursive: true, force: true });
		} catch { /* best effort */ }
});

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Poll fn() until it returns a truthy value; that value, or throw. */
export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 25,
    what = 'condition' } = {}) {
	const end = Date.now() + timeoutMs;
	for (;;) {
		const v = await fn();
		if (v)
			return v;
		if (Date.now() > end)
			throw new Error(`timed out after ${timeoutMs} ms waiting ` +
			    `for ${what}`);
		await sleep(intervalMs);
	}
}

export function brokerdBuilt() {
	try {
		fs.accessSync(BROKERD, fs.constants.X_OK);
		return true;
	} catch {
		return false;
	}
}

/*
 * Stop a child: signal, wait for exit, SIGKILL after killMs.
 * Resolves {code, signal}.
 */
function stopChild(child, signal = 'SIGTERM', killMs = 3000) {
	return new Promise((resolve) => {
		if (child.exitCode !== null || child.signalCode !== null) {
			children.delete(child);
			return resolve({ code: child.exitCode,
			    signal: child.signalCode });
		}
		const t = setTimeout(() => {
			try {
				process.kill(child.pid, 'SIGKILL');
			} catch { /* gone */ }
		}, killMs);
		child.once('exit', (code, sig) => {
			clearTimeout(t);
			children.delete(child);
			resolve({ code, signal: sig });
		});
		try {
			process.kill(child.pid, signal);
		} catch { /* gone */ }
	});
}

function track(child) {
	children.add(child);
	child.once('exit', () => children.delete(child));
	return child;
}

/*
 * One HTTP request with node:http (or node:https for `https: true`, which
 * then accepts any certificate unless `ca` is given).
 * opts: socketPath | port (+ host), method, path, headers, body
 * (Buffer | string | object sent as JSON), timeoutMs, agent.
 * Resolves {status, headers, body: Buffer, json(), text()}; rejects on
 * socket errors and on timeout (err.code 'ETIMEDOUT').
 */
export function request(opts) {
	const { socketPath, port, host = '127.0.0.1', method = 'GET',
	    path: p = '/', timeoutMs = 10000, agent = false } = opts;
	const headers = { ...(opts.headers || {}) };
	let body = opts.body;
	if (body !== undefined && body !== null && !Buffer.isBuffer(body) &&
	    typeof body !== 'string') {
		body = JSON.stringify(body);
		if (!Object.keys(headers).some((h) =>
		    h.toLowerCase() === 'content-type'))
			headers['content-type'] = 'application/json';
	}
	if (body !== undefined && body !== null && !Object.keys(headers).some(
	    (h) => ['content-length', 'transfer-encoding'].includes(
	    h.toLowerCase())))
		headers['content-length'] = String(Buffer.byteLength(body));
	const mod = opts.https ? https : http;
	return new Promise((resolve, reject) => {
		const req = mod.request({ socketPath, port, host, method,
		    path: p, headers, agent,
		    ...(opts.https ? { rejectUnauthorized: !!opts.ca,
		    ca: opts.ca, servername: opts.servername } : {}) },
		    (res) => {
			const chunks = [];
			res.on('data', (c) => chunks.push(c));
			res.on('error', () => { /* reported on 'close' */ });
			res.on('close', () => {
				const b = Buffer.concat(chunks);
				if (!res.complete) {
					const e = new Error('response cut short');
					e.code = 'ECONNRESET';
					e.partial = b;
					e.status = res.statusCode;
					e.headers = res.headers;
					return reject(e);
				}
				resolve({ status: res.statusCode,
				    headers: res.headers, rawHeaders: res.rawHeaders,
				    body: b, text: () => b.toString('utf8'),
				    json: () => JSON.parse(b.toString('utf8')) });
			});
		});
		req.setTimeout(timeoutMs, () => {
			const e = new Error(`request timed out after ${timeoutMs} ms`);
			e.code = 'ETIMEDOUT';
			req.destroy(e);
		});
		req.on('error', reject);
		if (body !== undefined && body !== null)
			req.write(body);
		req.end();
	});
}

/* Read the first line of a child's stdout; reject on exit or timeout. */
function firstLine(child, timeoutMs, errText) {
	return new Promise((resolve, reject) => {
		let buf = '';
		const t = setTimeout(() => done(new Error(
		    `no start-up line within ${timeoutMs} ms: ${errText()}`)),
		    timeoutMs);
		const onData = (d) => {
			buf += d;
			const i = buf.indexOf('\n');
			if (i >= 0)
				done(null, buf.slice(0, i));
		};
		const onExit = (code, sig) => done(new Error(
		    `exited (${code ?? sig}) before start-up: ${errText()}`));
		function done(err, line) {
			clearTimeout(t);
			child.stdout.off('data', onData);
			child.off('exit', onExit);
			if (err)
				reject(err);
			else
				resolve(line);
		}
		child.stdout.setEncoding('utf8');
		child.stdout.on('data', onData);
		child.once('exit', onExit);
	});
}

/*
 * Start tests/gwsim/gwsim.js.  opts: certMode ('self'|'expired'|'ca'),
 * port, controlPort, dir, tickets (false = --no-tickets), san (e.g.
 * 'IP:127.0.0.1,DNS:localhost,DNS:127.0.0.1'), args (extra).
 * Returns {port, control, pid, fingerprint, cert, ca_file, url, wsUrl, proc,
 * stop(), state(obj?), behaviour(obj?), counters(), resetCounters(),
 * reset(), log()}.  state/behaviour without an argument read; with one,
 * merge and return the new value (throw on a 400).
 */
export async function startGwsim(opts = {}) {
	const args = [GWSIM, '--exit-on-stdin-eof'];
	if (opts.certMode)
		args.push('--cert-mode', opts.certMode);
	if (opts.port !== undefined)
		args.push('--port', String(opts.port));
	if (opts.controlPort !== undefined)
		args.push('--control-port', String(opts.controlPort));
	if (opts.dir)
		args.push('--dir', opts.dir);
	if (opts.certDir)
		args.push('--cert-dir', opts.certDir);
	if (opts.tickets === false)
		args.push('--no-tickets');
	if (opts.san)
		args.push('--san', opts.san);
	args.push(...(opts.args || []));
	const proc = track(spawn(process.execPath, args,
	    { stdio: ['pipe', 'pipe', 'pipe'] }));
	proc.gwsim = true;
	let stderr = '';
	proc.stderr.setEncoding('utf8');
	proc.stderr.on('data', (d) => { stderr += d; });
	const line = await firstLine(proc, opts.timeoutMs || 15000,
	    () => stderr.trim());
	const info = JSON.parse(line);
	const ctl = async (method, p, body) => {
		const r = await request({ port: info.control, method, path: p,
		    body: body === undefined ? undefined : body });
		const v = r.json();
		if (r.status !== 200)
			throw new Error(`gwsim control ${method} ${p}: ` +
			    `${r.status} ${v.error}`);
		return v;
	};
	return {
		...info,
		url: `https://127.0.0.1:${info.port}`,
		wsUrl: `wss://127.0.0.1:${info.port}/v1/api/ws`,
		proc,
		log: () => stderr,
		stop: () => {
			proc.stdin.end();
			return stopChild(proc);
		},
		state: (o) => o === undefined ? ctl('GET', '/state') :
		    ctl('POST', '/state', o),
		behaviour: (o) => o === undefined ? ctl('GET', '/behaviour') :
		    ctl('POST', '/behaviour', o),
		counters: () => ctl('GET', '/counters'),
		resetCounters: () => ctl('POST', '/counters/reset', {}),
		reset: () => ctl('POST', '/reset', {}),
	};
}

/* ---------- brokerd ---------- */

function isPlainObject(v) {
	return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function deepMerge(a, b) {
	const out = { ...a };
	for (const [k, v] of Object.entries(b)) {
		if (isPlainObject(v) && isPlainObject(out[k]))
			out[k] = deepMerge(out[k], v);
		else
			out[k] = v;
	}
	return out;
}

function yamlScalar(v) {
	if (v === null || v === undefined)
		return 'null';
	if (typeof v === 'boolean' || typeof v === 'number')
		return String(v);
	return JSON.stringify(String(v));	/* YAML double-quoted */
}

/* A plain object -> block YAML (scalars quoted, lists of scalars in flow). */
export function toYaml(obj, indent = '') {
	let out = '';
	for (const [k, v] of Object.entries(obj)) {
		if (v === undefined)
			continue;
		if (isPlainObject(v)) {
			out += Object.keys(v).length === 0 ?
			    `${indent}${k}: {}\n` :
			    `${indent}${k}:\n${toYaml(v, indent + '  ')}`;
		} else if (Array.isArray(v)) {
			if (v.length === 0 || v.every((x) => !isPlainObject(x))) {
				out += `${indent}${k}: [${v.map(yamlScalar).join(', ')}]\n`;
			} else {
				out += `${indent}${k}:\n`;
				for (const item of v) {
					const y = toYaml(item, indent + '    ');
					out += `${indent}  - ${y.slice(indent.length + 4)}`;
				}
			}
		} else {
			out += `${indent}${k}: ${yamlScalar(v)}\n`;
		}
	}
	return out;
}

/*
 * Start build/brokerd -c FILE -f with a test configuration in a temp dir:
 * Unix socket, TCP 127.0.0.1:0, the simulator's URL and pin, a status file,
 * a halt file path, one random key with all scopes.
 * opts: gwsim (from startGwsim; without it gateway.url must come from config),
 * dir, config (object deep-merged into the base, or YAML text whose top-level
 * sections replace the base's), env (added to a cleaned environment),
 * args (extra command-line arguments), readyMs (default 5000), tcp (false =
 * no TCP listener), key.
 * Returns {socket, tcpPort, url, dir, configFile, statusFile, historyFile,
 * haltFile, key, pid, proc, log(), waitForLog(re, ms), request(opts),
 * reload(), stop(), signal(sig)}.
 */
export async function startBrokerd(opts = {}) {
	let ownDir = false;
	let dir = opts.dir;
	if (!dir) {
		dir = fs.mkdtempSync(path.join(os.tmpdir(), 'brokerd-'));
		ownDir = true;
		tempDirs.add(dir);
	}
	const key = opts.key || crypto.randomBytes(16).toString('hex');
	const socket = path.join(dir, 'brokerd.sock');
	const statusFile = path.join(dir, 'status');
	const historyFile = path.join(dir, 'history.jsonl');
	const haltFile = path.join(dir, 'halt');
	const gw = opts.gwsim;
	let base = {
		listen: {
			unix: { path: socket, mode: '0660', group: null },
			...(opts.tcp === false ? {} : { tcp: '127.0.0.1:0' }),
		},
		gateway: {
			url: gw ? `https://127.0.0.1:${gw.port}` :
			    'https://127.0.0.1:1',
			tls: gw ? { pin_sha256: gw.fingerprint } : { insecure: true },
		},
		session: {
			status_file: statusFile,
			history_file: historyFile,
			check_interval_s: 1,
			tickle_interval_s: 60,
		},
		keys: [{ name: 'test', key, scopes: ['read', 'trade', 'admin'] }],
		trading: { halt_file: haltFile },
	};
	let text;
	if (typeof opts.config === 'string') {
		const tops = new Set([...opts.config.matchAll(
		    /^([A-Za-z_][A-Za-z0-9_]*)\s*:/gm)].map((m) => m[1]));
		for (const t of tops)
			delete base[t];
		text = toYaml(base) + opts.config.replace(/\n?$/, '\n');
	} else {
		if (isPlainObject(opts.config))
			base = deepMerge(base, opts.config);
		text = toYaml(base);
	}
	const configFile = path.join(dir, 'brokerd.yaml');
	fs.writeFileSync(configFile, text, { mode: 0o600 });

	const env = {};
	for (const [k, v] of Object.entries(process.env))
		if (!/^(IBKR_|BROKERD_|NOTIFY_SOCKET$|LISTEN_)/.test(k))
			env[k] = v;
	Object.assign(env, opts.env || {});
	const proc = track(spawn(opts.bin || BROKERD,
	    ['-c', configFile, '-f', ...(opts.args || [])],
	    { env, stdio: ['ignore', 'ignore', 'pipe'] }));
	let stderr = '';
	const waiters = new Set();
	proc.stderr.setEncoding('utf8');
	proc.stderr.on('data', (d) => {
		stderr += d;
		for (const w of waiters)
			w();
	});
	const waitForLog = (re, ms = 5000, from = 0) => new Promise(
	    (resolve, reject) => {
		const check = () => {
			const m = stderr.slice(from).match(re);
			if (m) {
				fin();
				resolve(m);
			} else if (proc.exitCode !== null ||
			    proc.signalCode !== null) {
				fin();
				reject(new Error(`brokerd exited (${proc.exitCode ??
				    proc.signalCode}) while waiting for ${re}:\n` +
				    stderr));
			}
		};
		const t = setTimeout(() => {
			fin();
			reject(new Error(`no ${re} in brokerd's log within ` +
			    `${ms} ms:\n${stderr}`));
		}, ms);
		const fin = () => {
			clearTimeout(t);
			waiters.delete(check);
			proc.off('exit', check);
		};
		waiters.add(check);
		proc.on('exit', check);
		check();
	});
	const cleanup = () => {
		if (ownDir && !opts.keepDir) {
			fs.rmSync(dir, { recursive: true, force: true });
			tempDirs.delete(dir);
			ownDir = false;
		}
	};
	if (opts.expectFail) {
		const r = await new Promise((res) => proc.once('exit',
		    (code, sig) => res({ code, signal: sig })));
		cleanup();
		return { ...r, log: () => stderr, configFile };
	}
	try {
		await waitForLog(/brokerd: ready/, opts.readyMs || 5000);
	} catch (e) {
		await stopChild(proc, 'SIGKILL');
		cleanup();
		throw e;
	}
	const m = stderr.match(/listening on tcp 127\.0\.0\.1:(\d+)/);
	const tcpPort = m ? Number(m[1]) : null;
	const self = {
		socket, tcpPort, url: tcpPort ? `http://127.0.0.1:${tcpPort}` : null,
		dir, configFile, statusFile, historyFile, haltFile, key,
		pid: proc.pid, proc,
		log: () => stderr,
		waitForLog,
		/* request over the Unix socket (or {tcp: true}) with the key. */
		request: (o = {}) => {
			const h = { ...(o.headers || {}) };
			if (o.key !== false && !Object.keys(h).some((x) =>
			    x.toLowerCase() === 'x-bridge-key'))
				h['x-bridge-key'] = o.key || key;
			return request({ ...(o.tcp ? { port: tcpPort } :
			    { socketPath: socket }), ...o, headers: h });
		},
		signal: (sig) => process.kill(proc.pid, sig),
		/* SIGHUP; resolves after `wait` (a RegExp) shows up, if given. */
		reload: async (wait) => {
			const from = stderr.length;
			process.kill(proc.pid, 'SIGHUP');
			if (wait)
				return waitForLog(wait, 5000, from);
			return null;
		},
		stop: async () => {
			const r = await stopChild(proc, 'SIGTERM', 3000);
			cleanup();
			return r;
		},
	};
	return self;
}

/* Parse a brokerd status file (KEY=value, values possibly single-quoted). */
export function readStatus(file) {
	const out = {};
	let text;
	try {
		text = fs.readFileSync(file, 'utf8');
	} catch {
		return null;
	}
	for (const line of text.split('\n')) {
		const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
		if (!m)
			continue;
		let v = m[2];
		if (v.startsWith('\''))
			v = v.slice(1, -1).replace(/'\\''/g, '\'');
		out[m[1]] = v;
	}
	return out;
}
