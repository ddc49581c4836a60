/*
 * How a tick leaves for its subscribers (subscriber.c): straight to each
 * socket once the loop turn that read it from the Gateway is done, not by
 * arming a write watcher, waiting a turn of the loop and disarming it (an
 * epoll_ctl each way, per subscriber per tick: at 2,000 ticks/s to 100
 * subscribers, 400,000 system calls a second that move nothing).  Counted,
 * not timed: strace -c, attached to brokerd, counts its epoll_ctl and
 * sendto calls while ten subscribers take a ticking conid.  Skipped when
 * strace is missing or may not trace.  BROKERD_BIN overrides build/brokerd.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startGwsim, startBrokerd, brokerdBuilt, waitFor, sleep }
    from '../lib/harness.mjs';
import { subscriber } from '../lib/ws.mjs';

function straceWorks() {
	try {
		execFileSync('strace', ['-f', '-qq', '-o', '/dev/null', 'true'],
		    { stdio: 'ignore' });
		return true;
	} catch {
		return false;
	}
}

const skip = !brokerdBuilt() ? 'build/brokerd is not built' :
    !straceWorks() ? 'strace is missing or may not trace here' : false;

const NSUBS = 10;
const TICKS = 60;	/* per subscriber, one conid ticking every 20 ms */

/* Calls by name from strace -c's table. */
function calls(file) {
	const n = {};
	for (const l of fs.readFileSync(file, 'utf8').split('\n')) {
		const f = l.trim().split(/\s+/);
		if (f.length >= 5 && /^\d+$/.test(f[3]))
			n[f[f.length - 1]] = Number(f[3]);
	}
	return n;
}

test('a tick goes to each subscriber without a write watcher', { skip },
    async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-flush-'));
	t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
	const out = path.join(dir, 'strace.out');
	const gw = await startGwsim({});
	t.after(() => gw.stop());
	await gw.behaviour({ ws_tick_ms: 0 });
	const bd = await startBrokerd({ gwsim: gw,
	    config: { session: { tickle_interval_s: 1 } } });
	t.after(() => bd.stop());
	await bd.waitForLog(/-> authenticated/, 10000);
	const subs = [];
	for (let i = 0; i < NSUBS; i++)
		subs.push(await subscriber(bd));
	t.after(() => subs.forEach((s) => s.ws.terminate()));
	for (const s of subs)
		s.ws.send('smd+265598+{"fields":["31"]}');
	const ticks = (s) => s.msgs.filter((m) =>
	    m.topic === 'smd+265598').length;
	await waitFor(() => subs.every((s) => ticks(s) > 0),
	    { timeoutMs: 10000 });
	const before = subs.reduce((n, s) => n + ticks(s), 0);
	/* strace -c counts from here; SIGINT detaches it, table written */
	const st = spawn('strace', ['-qq', '-f', '-c', '-e',
	    'trace=epoll_ctl,sendto', '-o', out, '-p', String(bd.pid)],
	    { stdio: 'ignore' });
	const exited = new Promise((r) => st.once('exit', r));
	t.after(() => st.exitCode === null ? st.kill('SIGKILL') : null);
	await sleep(500);	/* attached: it stops brokerd to attach */
	await gw.behaviour({ ws_tick_ms: 20 });
	await waitFor(() => subs.every((s) => ticks(s) > TICKS),
	    { timeoutMs: 30000 });
	await gw.behaviour({ ws_tick_ms: 0 });
	await sleep(200);
	st.kill('SIGINT');
	await exited;
	const got = subs.reduce((n, s) => n + ticks(s), 0) - before;
	const n = calls(out);
	/* strace saw the ticks leave (a send may carry two) */
	assert.ok(n.sendto >= got / 2, `${n.sendto} sendto for ${got} ` +
	    'messages');
	/* a write watcher per tick took two per message delivered */
	assert.ok((n.epoll_ctl || 0) < got / 4,
	    `${n.epoll_ctl} epoll_ctl for ${got} messages delivered`);
});
