/*
 * brokerd's own TLS records after mbedTLS's handshake (tlsio.c, tlsrec.c:
 * aesgcm.c's AES-GCM, mbedTLS's ChaCha20-Poly1305), against the simulator's Node (OpenSSL)
 * TLS stack, once for each suite brokerd offers, the simulator choosing:
 * hundreds of requests on one kept-alive connection (the record numbers),
 * answers and bodies of many records each way, both answer framings, the
 * Gateway closing an idle connection (its close_notify), and the Gateway
 * WebSocket.  A wrong key, nonce or record number fails the peer's tag
 * check: the request fails, never passes with other bytes.
 * BROKERD_BIN overrides build/brokerd.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startGwsim, startBrokerd, brokerdBuilt, waitFor, sleep }
    from '../lib/harness.mjs';
import { subscriber, startStreaming } from '../lib/ws.mjs';

const skip = brokerdBuilt() ? false : 'build/brokerd is not built';
const blob = (n) => Buffer.from(Array.from({ length: n }, (_, i) => i % 251));
const SUITES = ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-RSA-CHACHA20-POLY1305'];

async function pair(t, suite, behaviour = {}) {
	const gw = await startGwsim({ args: ['--ciphers', suite] });
	t.after(() => gw.stop());
	await gw.behaviour({ rate_per_s: 0, ...behaviour });
	const bd = await startBrokerd({ gwsim: gw, config: {
	    limits: { gateway_rate: 'off', queue_ms: 5000,
	    max_response_bytes: 2097152 },
	    gateway: { pool: 1 } } });
	t.after(async () => {
		await bd.stop();
		assert.doesNotMatch(bd.log(), /Sanitizer|runtime error/);
	});
	await bd.waitForLog(/-> authenticated/);
	return { gw, bd };
}

describe('TLS records to the Gateway, each suite', { skip }, () => {
	for (const suite of SUITES) {
		test(`${suite}: 300 requests on one connection, large ` +
		    'bodies both ways', async (t) => {
			const { gw, bd } = await pair(t, suite);
			for (let i = 0; i < 300; i++) {
				const n = (i * 37) % 2000;
				const r = await bd.request({ path:
				    `/iserver/__blob?bytes=${n}`, headers:
				    { 'cache-control': 'no-cache' } });
				assert.equal(r.status, 200, `request ${i}`);
				assert.ok(r.body.equals(blob(n)), `request ${i}`);
			}
			/* 64 records and more: lengths across record edges */
			for (const q of ['bytes=1048576', 'bytes=16383',
			    'bytes=16384', 'bytes=16385',
			    'bytes=1048576&chunked=1']) {
				const r = await bd.request({ path:
				    `/iserver/__blob?${q}` });
				assert.equal(r.status, 200, q);
				const n = Number(/bytes=(\d+)/.exec(q)[1]);
				assert.ok(r.body.equals(blob(n)), q);
			}
			for (const n of [16384, 16385, 100000, 1 << 20]) {
				const body = crypto.randomBytes(n);
				const r = await bd.request({ method: 'POST',
				    path: '/iserver/__echo', body, headers:
				    { 'content-type': 'application/x-test' } });
				assert.equal(r.status, 200, `${n} bytes`);
				assert.ok(r.body.equals(body), `${n} bytes echoed`);
			}
			const c = await gw.counters();
			assert.equal(c.tls_errors, 0);
			assert.deepEqual(c.suites, { [suite]: c.handshakes });
			assert.ok(c.total >= 309, JSON.stringify(c.total));
		});
	}

	test('the Gateway ending idle connections (close_notify, FIN): seen ' +
	    'at once, the next request takes a new one without an error',
	    async (t) => {
		const { gw, bd } = await pair(t, SUITES[0]);
		let r = await bd.request({ path: '/iserver/__blob?bytes=10' });
		assert.equal(r.status, 200);
		const before = (await gw.counters()).connections;
		await gw.behaviour({ end_connections: true });
		await sleep(200);
		r = await bd.request({ path: '/iserver/__blob?bytes=10',
		    headers: { 'cache-control': 'no-cache' } });
		assert.equal(r.status, 200);
		assert.ok(r.body.equals(blob(10)));
		assert.ok((await gw.counters()).connections > before);
		const m = (await bd.request({ path: '/metrics' })).text();
		assert.match(m, /^brokerd_upstream_errors_total 0$/m,
		    'no request met the closed connection');
	});

	test('the Gateway WebSocket over AES-128-GCM records', async (t) => {
		const { gw, bd } = await startStreaming(t,
		    { gwsim: { args: ['--ciphers', SUITES[0]] } });
		const s = await subscriber(bd);
		s.ws.send('smd+265598+{"fields":["31","84"]}');
		await waitFor(() => s.msgs.filter((m) =>
		    m.topic === 'smd+265598').length >= 5, { timeoutMs: 10000,
		    what: 'five ticks' });
		const c = await gw.counters();
		assert.equal(c.ws_connections, 1);
		assert.deepEqual(c.suites, { [SUITES[0]]: c.handshakes });
		s.ws.close();
	});
});
