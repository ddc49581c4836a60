/*
 * The upstream WebSocket (SPEC section 7, streamup.c): one Gateway socket
 * shared by local subscribers, counted at the simulator.  Fan-out to 100
 * subscribers on 10 conids, umd when the last leaves, cached values for a
 * late subscriber, drop -> reconnect -> replay, smd renewal, orders?force
 * before sor, an upgraded-but-silent Gateway, and Gateway client code on
 * the npm ws package pointed at brokerd.  BROKERD_BIN overrides
 * build/brokerd.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { brokerdBuilt, waitFor, sleep } from '../lib/harness.mjs';
import { WebSocket, subscriber, smdOut, startStreaming }
    from '../lib/ws.mjs';

const skip = brokerdBuilt() ? false : 'build/brokerd is not built';

const gwUp = async (gw) => {
	await waitFor(async () => (await gw.counters()).ws_open === 1,
	    { timeoutMs: 8000 });
};

describe('upstream WebSocket', { skip }, () => {
	test('100 subscribers on 10 conids: 10 smd upstream, each its own',
	    async (t) => {
		const { gw, bd } = await startStreaming(t);
		const subs = [];
		for (let i = 0; i < 100; i++) {
			const s = await subscriber(bd);
			s.conid = String(1000 + (i % 10));
			/* odd ones ask 31 only, even ones 84 too: union 31,84 */
			s.fields = i % 20 < 10 ? ['31', '84'] : ['31'];
			subs.push(s);
		}
		/* the wider ones first, so the union never grows */
		for (const s of subs.filter((x) => x.fields.length === 2))
			s.ws.send(`smd+${s.conid}+` +
			    JSON.stringify({ fields: s.fields }));
		await sleep(300);
		for (const s of subs.filter((x) => x.fields.length === 1))
			s.ws.send(`smd+${s.conid}+` +
			    JSON.stringify({ fields: s.fields }));
		await gwUp(gw);
		await waitFor(() => subs.every((s) => s.msgs.filter((m) =>
		    m.topic === `smd+${s.conid}`).length >= 5),
		    { timeoutMs: 10000 });
		const c = await gw.counters();
		const smd = smdOut(c);
		assert.equal(smd.length, 10, JSON.stringify(smd));
		assert.equal(new Set(smd.map((m) => m.msg.split('+')[1])).size,
		    10);
		assert.equal(c.ws_connections, 1);
		assert.equal(c.ws_api_cookie, 1, 'api={"session":id} sent');
		for (const s of subs) {
			const mine = s.msgs.filter((m) => m.topic?.startsWith('smd+'));
			for (const m of mine) {
				assert.equal(m.topic, `smd+${s.conid}`);
				for (const k of Object.keys(m))
					if (/^\d+$/.test(k))
						assert.ok(s.fields.includes(k),
						    `field ${k} for ${s.fields}`);
			}
		}
		/*
		 * every tick of its conid: two subscribers of one conid see
		 * the same run of last prices (no gap), past the first value
		 */
		const a = subs[0].msgs.filter((m) => m['31'] !== undefined)
		    .map((m) => m['31']).slice(1);
		const b = subs[10].msgs.filter((m) => m['31'] !== undefined)
		    .map((m) => m['31']).slice(1);
		const i = a.indexOf(b[0]);
		assert.ok(i >= 0, `${a} / ${b}`);
		const n = Math.min(a.length - i, b.length);
		assert.ok(n >= 3);
		assert.deepEqual(a.slice(i, i + n), b.slice(0, n));
		for (const s of subs)
			s.ws.close();
	});

	test('the last one leaving sends umd; a late one gets cached values',
	    async (t) => {
		const { gw, bd } = await startStreaming(t);
		const a = await subscriber(bd);
		const b = await subscriber(bd);
		a.ws.send('smd+265598+{"fields":["31","55"]}');
		b.ws.send('smd+265598+{"fields":["31","55"]}');
		await gwUp(gw);
		await waitFor(() => a.msgs.some((m) => m['55'] !== undefined));
		/* 55 (symbol) never changes: only the cache can give it now */
		await sleep(300);
		const late = await subscriber(bd);
		late.ws.send('smd+265598+{"fields":["55"]}');
		await waitFor(() => late.msgs.some((m) => m['55'] !== undefined));
		const first = late.msgs.find((m) => m.topic === 'smd+265598');
		assert.notEqual(first['55'], undefined, JSON.stringify(first));
		a.ws.close();
		late.ws.close();
		await sleep(300);
		let c = await gw.counters();
		assert.equal(c.ws_subscriptions.filter((m) =>
		    m.msg.startsWith('umd+')).length, 0);
		b.ws.close();
		await waitFor(async () => (await gw.counters()).ws_subscriptions
		    .some((m) => m.msg.startsWith('umd+265598')));
		c = await gw.counters();
		assert.equal(c.ws_subscriptions.filter((m) =>
		    m.msg.startsWith('umd+')).length, 1);
	});

	/*
	 * An smd that picks an exchange: the Gateway tags its ticks with the
	 * same CONID@EXCH (the simulator does), and they still reach the
	 * subscriber, a late one getting the cached values too.
	 */
	test('smd+CONID@EXCH: ticks tagged CONID@EXCH reach subscribers',
	    async (t) => {
		const { gw, bd } = await startStreaming(t);
		const a = await subscriber(bd);
		a.ws.send('smd+265598@SMART+{"fields":["31"]}');
		await gwUp(gw);
		await waitFor(() => a.msgs.filter((m) =>
		    m.topic?.startsWith('smd+265598') &&
		    m['31'] !== undefined).length >= 3, { timeoutMs: 8000 });
		const b = await subscriber(bd);
		b.ws.send('smd+265598@SMART+{"fields":["31"]}');
		await waitFor(() => b.msgs.some((m) => m['31'] !== undefined),
		    { timeoutMs: 8000 });
		/* the cached values first, tagged as the live ticks are */
		const first = b.msgs.find((m) => m['31'] !== undefined);
		const live = a.msgs.find((m) => m['31'] !== undefined);
		assert.equal(first.topic, live.topic);
		const c = await gw.counters();
		assert.equal(smdOut(c).length, 1);
		a.ws.close();
		b.ws.close();
	});

	test('drop -> reconnect -> replay; sor after orders?force=true',
	    async (t) => {
		const { gw, bd } = await startStreaming(t);
		const a = await subscriber(bd);
		a.ws.send('smd+265598+{"fields":["31"]}');
		a.ws.send('sor+{}');
		await gwUp(gw);
		await waitFor(async () => (await gw.counters()).sor_after_force
		    .length === 1);
		await gw.behaviour({ ws_drop: true });
		await waitFor(async () => {
			const c = await gw.counters();
			return c.ws_connections === 2 &&
			    smdOut(c).length === 2 && c.sor_after_force.length === 2;
		}, { timeoutMs: 8000 });
		const c = await gw.counters();
		assert.deepEqual(c.sor_after_force, [true, true]);
		const n = a.msgs.length;
		await waitFor(() => a.msgs.slice(n).some((m) =>
		    m.topic === 'smd+265598'));
		const st = (await bd.request({ path: '/gateway/status' })).json();
		assert.equal(st.stream.upstream.state, 'connected');
		assert.equal(st.stream.upstream.reconnects, 1);
	});

	test('smd renewed before the Gateway expires it', async (t) => {
		const { gw, bd } = await startStreaming(t, {
			behaviour: { ws_smd_expire_ms: 1500 },
			env: { BROKERD_STREAM_RENEW_MS: '600' } });
		const a = await subscriber(bd);
		a.ws.send('smd+265598+{"fields":["31"]}');
		await gwUp(gw);
		await sleep(4000);
		const c = await gw.counters();
		assert.equal(c.ws_smd_expired, 0);
		assert.ok(smdOut(c).length >= 3, JSON.stringify(smdOut(c)));
		const n = a.msgs.length;
		await sleep(500);
		assert.ok(a.msgs.length > n);
	});

	test('upgraded but silent: subscribers told, retried', async (t) => {
		const { gw, bd } = await startStreaming(t, {
			behaviour: { ws_silent: true },
			env: { BROKERD_STREAM_SILENT_MS: '700' } });
		const a = await subscriber(bd);
		a.ws.send('smd+265598+{"fields":["31"]}');
		await waitFor(() => a.msgs.some((m) =>
		    m.brokerd === 'gateway silent'), { timeoutMs: 5000 });
		const st = (await bd.request({ path: '/gateway/status' })).json();
		assert.match(st.stream.upstream.state, /^(silent|connecting)$/);
		await gw.behaviour({ ws_silent: false });
		await waitFor(() => a.msgs.some((m) => m.topic === 'smd+265598'),
		    { timeoutMs: 8000 });
		assert.ok((await gw.counters()).ws_connections >= 2);
	});

	test('Gateway client code works with only its URL changed',
	    async (t) => {
		const { gw, bd } = await startStreaming(t);
		/* what an IBind-style client does against the Gateway */
		const client = async (url, headers) => {
			const ws = new WebSocket(url, { headers,
			    rejectUnauthorized: false });
			const got = [];
			await new Promise((res, rej) => {
				ws.on('message', (d) => {
					const m = JSON.parse(d.toString());
					got.push(m);
					if (m.topic === 'smd+265598' && m['31'])
						res();
				});
				ws.on('open', () => ws.send(
				    'smd+265598+{"fields":["31","84"]}'));
				ws.on('error', rej);
			});
			ws.close();
			return got;
		};
		const got = await client(`ws://127.0.0.1:${bd.tcpPort}/v1/api/ws`,
		    { 'X-Bridge-Key': bd.key });
		assert.ok(got.some((m) => m.topic === 'smd+265598' && m['31']));
		await gwUp(gw);
	});
});
