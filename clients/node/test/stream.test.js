// bridge.stream(): the WebSocket client against a fake brokerd /ws
// (test/fake-ws.js) on a Unix socket, and once over TCP.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Bridge, BridgeError, BridgeStream } from "../index.js";
import { KEY } from "./fake-brokerd.js";
import { startWsFake, conns, frame, closeFrame, acceptOf } from "./fake-ws.js";

let fake;
let bridge;

before(async () => {
	fake = await startWsFake();
	bridge = new Bridge({ socketPath: fake.socketPath, key: KEY, timeoutMs: 2000 });
});
after(async () => {
	bridge.close();
	await fake.stop();
});

function fresh() {
	fake.conns.length = 0;
	fake.upgrades.length = 0;
	fake.refuse = 0;
}

// the fake may have answered 101 before the client read it
async function opened(s) {
	if (s.state !== "open")
		await new Promise((r) => s.once("open", r));
}

async function take(it, n) {
	const out = [];
	while (out.length < n) {
		const r = await it.next();
		assert.equal(r.done, false, "iterator ended early");
		out.push(r.value);
	}
	return out;
}

test("the fake's handshake is RFC 6455's own example", () => {
	// the client checks Sec-WebSocket-Accept: a fake with a wrong GUID
	// would let a wrong client pass
	assert.equal(acceptOf("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
});

test("the upgrade goes over the Unix socket to /ws with the key header", async () => {
	fresh();
	const s = bridge.stream();
	assert.ok(s instanceof BridgeStream);
	await conns(fake, 1);
	const u = fake.upgrades[0];
	assert.equal(u.url, "/ws");
	assert.equal(u.headers["x-bridge-key"], KEY);
	assert.equal(u.headers.upgrade.toLowerCase(), "websocket");
	assert.equal(u.headers["sec-websocket-version"], "13");
	assert.equal(Buffer.from(u.headers["sec-websocket-key"], "base64").length, 16);
	assert.equal(u.headers.origin, undefined, "brokerd refuses any Origin");
	await s.close();
	assert.equal(s.state, "closed");
});

test("subscribe and unsubscribe put the Gateway's syntax on the wire, masked", async () => {
	fresh();
	const s = bridge.stream();
	const c = await conns(fake, 1);
	await opened(s);
	s.subscribe("smd", { conid: 265598, fields: ["31", 84] });
	s.subscribe("smd", { conid: 265598, fields: ["86"] });
	s.subscribe("sor");
	s.subscribe("str", { realtimeUpdatesOnly: true });
	s.subscribe("spl");
	s.subscribe("ssd", { account: "DU123" });
	s.subscribe("sld", { account: "DU123" });
	s.subscribe("sbd", { account: "DU123", conid: 265598, exchange: "SMART" });
	s.subscribe("smh", { conid: 8314, period: "1d", bar: "5min" });
	s.unsubscribe("smd", { conid: 265598 });
	s.unsubscribe("sor");
	s.unsubscribe("str");
	s.unsubscribe("spl");
	s.unsubscribe("ssd", { account: "DU123" });
	s.unsubscribe("sld", { account: "DU123" });
	s.unsubscribe("sbd", { account: "DU123" });
	s.unsubscribe("smh", { serverId: "sv7" });
	s.send("tic");
	const want = [
		'smd+265598+{"fields":["31","84"]}',
		'smd+265598+{"fields":["31","84","86"]}',
		"sor+{}",
		'str+{"realtimeUpdatesOnly":true}',
		"spl+{}",
		"ssd+DU123+{}",
		"sld+DU123+{}",
		"sbd+DU123+265598+SMART",
		'smh+8314+{"period":"1d","bar":"5min"}',
		"umd+265598+{}",
		"uor+{}",
		"utr+{}",
		"upl+{}",
		"usd+DU123",
		"uld+DU123",
		"ubd+DU123",
		"umh+sv7",
		"tic",
	];
	await c.until((x) => x.texts.length >= want.length, "every message");
	assert.deepEqual(c.texts, want);
	assert.ok(c.frames.every((f) => f.masked), "a client frame was not masked");
	assert.deepEqual(s.subscriptions, ['smh+8314+{"period":"1d","bar":"5min"}']);
	assert.throws(() => s.subscribe("xyz"), TypeError);
	assert.throws(() => s.subscribe("smd", { conid: "1;rm" , fields: [1] }), TypeError);
	assert.throws(() => s.subscribe("smd", { conid: 1 }), TypeError);
	await s.close();
});

test("messages are iterated parsed, fragments joined; a server ping is answered", async () => {
	fresh();
	const s = bridge.stream();
	const c = await conns(fake, 1);
	const it = s[Symbol.asyncIterator]();
	c.sendJSON({ topic: "system", success: "u1" });
	c.raw(Buffer.concat([frame(0x1, '{"topic":"smd+265598",', false), frame(0x9, "hb?"),
	    frame(0x0, '"31":"190.5"', false), frame(0x0, "}")]));
	c.send("not json");
	const big = "x".repeat(70000);	// a 64-bit length
	c.sendJSON({ topic: "blt", message: big });
	const got = await take(it, 4);
	assert.deepEqual(got, [{ topic: "system", success: "u1" }, { topic: "smd+265598", 31: "190.5" }, "not json",
	    { topic: "blt", message: big }]);
	await c.until((x) => x.frames.some((f) => f.op === 0xa), "pong");
	const pong = c.frames.find((f) => f.op === 0xa);
	assert.equal(pong.text, "hb?");
	assert.ok(pong.masked);
	await s.close();
	assert.deepEqual(await it.next(), { value: undefined, done: true });
});

test("close() does the close handshake with 1000", async () => {
	fresh();
	const s = bridge.stream();
	const c = await conns(fake, 1);
	await opened(s);
	const closed = [];
	s.on("close", (code, reason) => closed.push([code, reason]));
	await s.close();
	const cf = c.frames.find((f) => f.op === 0x8);
	assert.ok(cf, "no close frame");
	assert.equal(cf.payload.readUInt16BE(0), 1000);
	assert.deepEqual(closed, [[1000, ""]]);
	assert.equal(fake.conns.length, 1, "no reconnect after close()");
});

test("close() cuts a long reason to 123 bytes, between characters", async () => {
	fresh();
	const s = bridge.stream();
	const c = await conns(fake, 1);
	await opened(s);
	await s.close(1000, "\u00e9".repeat(100));
	const cf = c.frames.find((f) => f.op === 0x8);
	assert.ok(cf, "no close frame");
	assert.equal(cf.payload.readUInt16BE(0), 1000);
	assert.equal(cf.payload.subarray(2).toString(), "\u00e9".repeat(61));
});

test("a drop reconnects with backoff and replays every active subscription", async () => {
	fresh();
	const s = bridge.stream({ minDelayMs: 20, maxDelayMs: 100 });
	const it = s[Symbol.asyncIterator]();
	const c1 = await conns(fake, 1);
	await opened(s);
	s.subscribe("smd", { conid: 265598, fields: ["31"] });
	s.subscribe("smd", { conid: 8314, fields: ["84"] });
	s.subscribe("sor");
	s.unsubscribe("smd", { conid: 8314 });
	await c1.until((x) => x.texts.length === 4, "4 messages");
	c1.sock.destroy();
	const c2 = await conns(fake, 2);
	await c2.until((x) => x.texts.length === 2, "the replay");
	assert.deepEqual(c2.texts, ['smd+265598+{"fields":["31"]}', "sor+{}"]);
	assert.equal(fake.upgrades[1].headers["x-bridge-key"], KEY);
	const [gap] = await take(it, 1);
	assert.deepEqual(gap, { topic: "system", client: "disconnected", code: 1006, reason: "" });
	c2.sendJSON({ topic: "sor", args: [] });
	assert.deepEqual(await take(it, 1), [{ topic: "sor", args: [] }]);
	assert.equal(s.reconnects, 1);
	await s.close();
});

test("a close 1008 with its reason is surfaced; with reconnect off the iterator throws it", async () => {
	fresh();
	const s = bridge.stream({ minDelayMs: 20 });
	const it = s[Symbol.asyncIterator]();
	const c1 = await conns(fake, 1);
	c1.raw(closeFrame(1008, "too slow for sor"));
	const [gap] = await take(it, 1);
	assert.deepEqual(gap, { topic: "system", client: "disconnected", code: 1008, reason: "too slow for sor" });
	// the client answered the close with the same code
	await c1.until((x) => x.frames.some((f) => f.op === 0x8), "close answer");
	assert.equal(c1.frames.find((f) => f.op === 0x8).payload.readUInt16BE(0), 1008);
	await conns(fake, 2);
	await s.close();

	fresh();
	const t = bridge.stream({ reconnect: false });
	const it2 = t[Symbol.asyncIterator]();
	const c = await conns(fake, 1);
	c.sendJSON({ topic: "system", hb: 1 });
	c.raw(closeFrame(1008, "key removed"));
	assert.deepEqual(await take(it2, 1), [{ topic: "system", hb: 1 }]);
	const e = await it2.next().catch((x) => x);
	assert.ok(e instanceof BridgeError, String(e));
	assert.equal(e.code, "closed");
	assert.equal(e.closeCode, 1008);
	assert.equal(e.closeReason, "key removed");
	assert.deepEqual(t.lastClose, { code: 1008, reason: "key removed" });
	assert.equal(fake.conns.length, 1);
});

// brokerd past stream.max_subscribers upgrades, then closes 1013 at once:
// the backoff must grow across such short-lived opens, not restart at
// minDelayMs on each (20, 40, 80, 160 ms...: a handful, not dozens)
test("opens closed at once back off, doubling, as failed connects do", async () => {
	fresh();
	fake.onConn = (c) => c.raw(closeFrame(1013, "too many subscribers"));
	const s = bridge.stream({ minDelayMs: 20, maxDelayMs: 5000 });
	await new Promise((r) => setTimeout(r, 700));
	const n = fake.conns.length;
	await s.close();
	// close() aborts an upgrade on its way; a socket the fake accepted
	// just before may still be closing: let it, before the next test
	// counts connections
	await new Promise((r) => setTimeout(r, 200));
	fake.onConn = null;
	assert.ok(n >= 2, `${n} connections`);
	assert.ok(n <= 7, `${n} connections in 700 ms: no backoff`);
});

// close() right after stream(): the upgrade is aborted before it leaves,
// and nothing reaches brokerd later
test("close() at once: no connection reaches brokerd", async () => {
	fresh();
	const s = bridge.stream({ minDelayMs: 10 });
	s.subscribe("sor");
	await s.close();
	assert.equal(s.state, "closed");
	await new Promise((r) => setTimeout(r, 300));
	assert.equal(fake.upgrades.length, 0, "an upgrade reached brokerd after close()");
	assert.equal(fake.conns.length, 0);
	assert.equal(s.state, "closed");
});

// close() while brokerd has not answered the upgrade yet: the request is
// aborted (its socket closed), not left to land or time out
test("close() during the upgrade aborts it", async () => {
	fresh();
	fake.hold = true;
	const b = new Bridge({ socketPath: fake.socketPath, key: KEY, timeoutMs: 60000 });
	const s = b.stream({ minDelayMs: 10 });
	try {
		while (fake.held.length === 0)
			await new Promise((r) => setTimeout(r, 10));
		const held = fake.held[0];
		// the client's end of it closing: "end" here (half-open)
		const gone = new Promise((r) => {
			held.once("end", r);
			held.once("close", r);
			held.resume();
		});
		await s.close();
		assert.equal(s.state, "closed");
		await Promise.race([gone, new Promise((_, rej) => setTimeout(() =>
		    rej(new Error("the upgrade's socket is still open after close()")), 5000))]);
		await new Promise((r) => setTimeout(r, 100));
		assert.equal(fake.held.length, 1, "another upgrade after close()");
		assert.equal(s.state, "closed");
	} finally {
		fake.hold = false;
		for (const h of fake.held.splice(0))
			h.destroy();
		b.close();
	}
});

test("a refused upgrade (wrong key) ends the stream with BridgeError 401, no retry", async () => {
	fresh();
	const b = new Bridge({ socketPath: fake.socketPath, key: "wrong-key-0000000000000000", timeoutMs: 2000 });
	const s = b.stream({ minDelayMs: 10 });
	const e = await s[Symbol.asyncIterator]().next().catch((x) => x);
	assert.ok(e instanceof BridgeError, String(e));
	assert.equal(e.status, 401);
	assert.equal(e.code, "unauthorized");
	assert.ok(!e.message.includes("wrong-key"));
	await new Promise((r) => setTimeout(r, 100));
	assert.equal(fake.upgrades.length, 1);
	b.close();
});

test("brokerd not there yet: retried until it is, then subscribed", async () => {
	const sock = fake.dir + "/later.sock";
	const b = new Bridge({ socketPath: sock, key: KEY });
	const s = b.stream({ minDelayMs: 20, maxDelayMs: 40 });
	s.subscribe("spl");
	await new Promise((r) => setTimeout(r, 100));
	assert.equal(s.state, "connecting");
	const later = await startWsFake({ socketPath: sock });
	const c = await conns(later, 1);
	await c.until((x) => x.texts.length === 1, "spl");
	assert.deepEqual(c.texts, ["spl+{}"]);
	assert.ok(s.reconnects >= 1);
	await s.close();
	assert.equal(s.state, "closed");
	b.close();
	await later.stop();
});

test("over TCP too, under the URL's base path", async () => {
	const tcp = await startWsFake({ tcp: true });
	const b = new Bridge({ url: tcp.url + "/base", key: KEY });
	const s = b.stream({ path: "/v1/api/ws" });
	s.subscribe("sor");
	const c = await conns(tcp, 1);
	await c.until((x) => x.texts.length === 1, "sor");
	assert.equal(tcp.upgrades[0].url, "/base/v1/api/ws");
	assert.equal(tcp.upgrades[0].headers.host, tcp.url.slice("http://".length));
	assert.deepEqual(c.texts, ["sor+{}"]);
	c.sendJSON({ topic: "sor", args: [{ orderId: 1 }] });
	const got = await new Promise((r) => s.once("message", r));
	assert.deepEqual(got, { topic: "sor", args: [{ orderId: 1 }] });
	await s.close();
	b.close();
	await tcp.stop();
});

test("an unmasked-frame rule the other way: a masked server frame is a protocol error", async () => {
	fresh();
	const s = bridge.stream({ reconnect: false });
	const c = await conns(fake, 1);
	const f = frame(0x1, "x");
	f[1] |= 0x80;
	c.raw(Buffer.concat([f, Buffer.alloc(4)]));
	const e = await s[Symbol.asyncIterator]().next().catch((x) => x);
	assert.equal(e.closeCode, 1002);
	await c.until((x) => x.frames.some((fr) => fr.op === 0x8), "close 1002");
	assert.equal(c.frames.find((fr) => fr.op === 0x8).payload.readUInt16BE(0), 1002);
});

test("a slow iterator pauses the socket; a program on the message event alone is never paused", async () => {
	fresh();
	const s = bridge.stream({ highWaterMark: 4 });
	const c = await conns(fake, 1);
	await opened(s);
	const seen = [];
	s.on("message", (m) => seen.push(m.n));
	// one write at a time, so that a pause would hold back the rest
	for (let n = 0; n < 20; n++) {
		c.sendJSON({ topic: "x", n });
		await new Promise((r) => setTimeout(r, 5));
	}
	for (let i = 0; i < 200 && seen.length < 20; i++)
		await new Promise((r) => setTimeout(r, 10));
	assert.equal(seen.length, 20);
	await s.close();

	fresh();
	const t = bridge.stream({ highWaterMark: 4 });
	const it = t[Symbol.asyncIterator]();
	const c2 = await conns(fake, 1);
	await opened(t);
	for (let n = 0; n < 20; n++) {
		c2.sendJSON({ topic: "x", n });
		await new Promise((r) => setTimeout(r, 5));
	}
	const got = await take(it, 20);
	assert.deepEqual(got.map((m) => m.n), [...Array(20).keys()]);
	await t.close();
});
