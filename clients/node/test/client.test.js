// Unit tests of brokerd-client against a fake brokerd on a Unix socket.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import util from "node:util";
import path from "node:path";
import { Bridge, BridgeError, makeCOID, DEFAULT_SOCKET } from "../index.js";
import { startFake, send, KEY } from "./fake-brokerd.js";

let fake;
let bridge;

before(async () => {
	fake = await startFake();
	bridge = new Bridge({ socketPath: fake.socketPath, key: KEY, timeoutMs: 2000 });
});
after(async () => {
	bridge.close();
	await fake.stop();
});
beforeEach(() => {
	fake.requests = [];
	fake.handler = null;
});

const question = (id, text, mid) => [{ id, message: [text], isSuppressed: false, messageIds: [mid] }];

test("defaults come from the environment; a socket wins over a URL", () => {
	const env = { BROKERD_SOCKET: "/tmp/a.sock", IBKR_BRIDGE_URL: "http://127.0.0.1:8000", IBKR_BRIDGE_KEY: "k" };
	const b1 = new Bridge({ env });
	assert.equal(b1.socketPath, "/tmp/a.sock");
	assert.equal(b1.url, null);
	const b2 = new Bridge({ env: { IBKR_BRIDGE_URL: "http://127.0.0.1:8000" } });
	assert.equal(b2.socketPath, null);
	assert.equal(b2.url, "http://127.0.0.1:8000");
	const b3 = new Bridge({ env: {} });
	assert.equal(b3.socketPath, DEFAULT_SOCKET);
	const b4 = new Bridge({ socketPath: "/tmp/b.sock", url: "http://127.0.0.1:1", env: {} });
	assert.equal(b4.socketPath, "/tmp/b.sock");
	const b5 = new Bridge({ url: "http://127.0.0.1:9", env });
	assert.equal(b5.url, "http://127.0.0.1:9");
	assert.equal(b5.socketPath, null);
	for (const b of [b1, b2, b3, b4, b5])
		b.close();
});

test("the key is sent as X-Bridge-Key and never shows when the client is printed", async () => {
	fake.handler = () => [200, { accounts: ["DU1"] }];
	const b = new Bridge({ env: { BROKERD_SOCKET: fake.socketPath, IBKR_BRIDGE_KEY: KEY } });
	assert.deepEqual(await b.accounts(), { accounts: ["DU1"] });
	assert.equal(fake.requests[0].headers["x-bridge-key"], KEY);
	assert.ok(!util.inspect(b, { depth: 5 }).includes(KEY));
	assert.ok(!JSON.stringify({ ...b, _agent: undefined, _mod: undefined }).includes(KEY));
	b.close();
});

test("a wrong key gives BridgeError unauthorized without the key in it", async () => {
	const b = new Bridge({ socketPath: fake.socketPath, key: "wrong-key-value-1234567890" });
	const e = await b.orders().catch((x) => x);
	assert.ok(e instanceof BridgeError);
	assert.equal(e.status, 401);
	assert.equal(e.code, "unauthorized");
	const all = e.message + e.stack + util.inspect(e, { depth: 5 }) + JSON.stringify(e);
	assert.ok(!all.includes("wrong-key-value-1234567890"));
	b.close();
});

test("health and authStatus", async () => {
	fake.handler = (r) => r.path === "/health" ? [200, { status: "ok", bridge: "running" }] :
	    [200, { authenticated: true, connected: true, competing: false, state: "authenticated" }];
	assert.deepEqual(await bridge.health(), { status: "ok", bridge: "running" });
	const s = await bridge.authStatus();
	assert.equal(s.state, "authenticated");
	assert.deepEqual(fake.requests.map((r) => `${r.method} ${r.path}`),
	    ["GET /health", "GET /gateway/auth-status"]);
});

test("requests share one kept-alive connection", async () => {
	fake.handler = () => [200, { ok: 1 }];
	const b = new Bridge({ socketPath: fake.socketPath, key: KEY });
	const before = fake.connections;
	for (let i = 0; i < 5; i++)
		await b.orders();
	assert.equal(fake.connections - before, 1);
	b.close();
});

test("read methods call the documented paths", async () => {
	fake.handler = (r) => [200, { path: r.path, query: r.query }];
	await bridge.accounts();
	await bridge.positions("DU 1");
	await bridge.positions("DU1", 2);
	await bridge.summary("DU1");
	await bridge.orders();
	await bridge.history(265598, { period: "1w", bar: "1h" });
	assert.deepEqual(fake.requests.map((r) => `${r.method} ${r.path}`), [
		"GET /iserver/accounts",
		"GET /portfolio/DU%201/positions/0",
		"GET /portfolio/DU1/positions/2",
		"GET /portfolio/DU1/summary",
		"GET /iserver/account/orders",
		"GET /iserver/marketdata/history",
	]);
	assert.deepEqual(fake.requests[5].query, { conid: "265598", period: "1w", bar: "1h" });
});

test("cancelOrder sends DELETE to /iserver/account/{acct}/order/{id}", async () => {
	fake.handler = (r) => [200, { msg: "Request was submitted", order_id: r.path.split("/").pop() }];
	const a = await bridge.cancelOrder("DU1", 123);
	assert.equal(a.order_id, "123");
	assert.equal(fake.requests[0].method, "DELETE");
	assert.equal(fake.requests[0].path, "/iserver/account/DU1/order/123");
});

test("request passes query, JSON body and extra headers", async () => {
	fake.handler = (r) => [200, { got: r.body }];
	const a = await bridge.request("post", "/iserver/x", { query: { a: 1, b: [2, 3], c: undefined },
	    body: { z: true }, headers: { "Cache-Control": "no-cache" } });
	assert.deepEqual(a, { got: { z: true } });
	const r = fake.requests[0];
	assert.equal(r.method, "POST");
	assert.deepEqual(r.query, { a: "1", b: "2,3" });
	assert.equal(r.headers["content-type"], "application/json");
	assert.equal(r.headers["cache-control"], "no-cache");
	assert.equal(r.headers["content-length"], String(r.raw.length));
});

test("a POST without body still sends Content-Length: 0", async () => {
	fake.handler = () => [200, {}];
	await bridge.request("POST", "/iserver/y");
	assert.equal(fake.requests[0].headers["content-length"], "0");
});

test("non-JSON answers come back as text, empty ones as null", async () => {
	fake.handler = (r, req, res) => {
		if (r.path === "/t") {
			res.writeHead(200, { "content-type": "text/plain" });
			res.end("# HELP x\n");
		} else {
			res.writeHead(200);
			res.end();
		}
	};
	assert.equal(await bridge.request("GET", "/t"), "# HELP x\n");
	assert.equal(await bridge.request("GET", "/e"), null);
});

test("placeOrder follows the reply chain while confirm says true", async () => {
	let replies = 0;
	fake.handler = (r) => {
		if (r.path === "/iserver/account/DU1/orders")
			return [200, question("q1", "Price exceeds the cap", "o163")];
		if (r.path === "/iserver/reply/q1")
			return [200, question("q2", "Market closed", "o354")];
		if (r.path === "/iserver/reply/q2")
			return [200, [{ order_id: "1001", order_status: "Submitted", encrypt_message: "1" }]];
		return [404, { error: "no_route", message: "?" }];
	};
	const seen = [];
	const res = await bridge.placeOrder("DU1", { conid: 265598, side: "BUY", orderType: "LMT", price: 1, quantity: 1 },
	    { confirm: async (messages, q) => { seen.push([messages, q.id]); replies++; return true; } });
	assert.deepEqual(res, [{ order_id: "1001", order_status: "Submitted", encrypt_message: "1" }]);
	assert.deepEqual(seen, [[["Price exceeds the cap"], "q1"], [["Market closed"], "q2"]]);
	assert.equal(replies, 2);
	const [place, r1, r2] = fake.requests;
	assert.equal(place.method, "POST");
	assert.equal(place.body.orders.length, 1);
	assert.equal(place.body.orders[0].conid, 265598);
	assert.deepEqual(r1.body, { confirmed: true });
	assert.deepEqual(r2.body, { confirmed: true });
});

test("placeOrder stops at a refused question and confirms nothing", async () => {
	fake.handler = (r) => r.path.endsWith("/orders") ? [200, question("q9", "Are you sure?", "o1")] :
	    [200, [{ order_id: "x", order_status: "Submitted" }]];
	const order = { conid: 1, side: "SELL", orderType: "MKT", quantity: 1 };
	for (const confirm of [() => false, async () => "yes", undefined]) {
		fake.requests = [];
		const e = await bridge.placeOrder("DU1", order, { confirm }).catch((x) => x);
		assert.ok(e instanceof BridgeError);
		assert.equal(e.code, "order_not_confirmed");
		assert.equal(e.question.id, "q9");
		assert.deepEqual(e.question.message, ["Are you sure?"]);
		assert.match(e.cOID, /^.{1,40}$/);
		assert.equal(fake.requests.length, 1, "no reply was sent");
	}
	assert.equal(order.cOID, undefined, "the caller's object is not changed");
});

test("placeOrder sets a unique cOID when absent and keeps one given", async () => {
	fake.handler = () => [200, [{ order_id: "1", order_status: "Submitted" }]];
	const order = { conid: 1, side: "BUY", orderType: "MKT", quantity: 1 };
	await bridge.placeOrder("DU1", order);
	await bridge.placeOrder("DU1", order);
	await bridge.placeOrder("DU1", { ...order, cOID: "mine-1" });
	const ids = fake.requests.map((r) => r.body.orders[0].cOID);
	assert.equal(ids.length, 3);
	assert.notEqual(ids[0], ids[1]);
	for (const id of ids.slice(0, 2))
		assert.ok(typeof id === "string" && id.length > 0 && id.length <= 40, id);
	assert.equal(ids[2], "mine-1");
	const many = new Set(Array.from({ length: 1000 }, makeCOID));
	assert.equal(many.size, 1000);
});

test("placeOrder gives up after 20 questions", async () => {
	let n = 0;
	fake.handler = () => [200, question(`q${n++}`, "again", "o1")];
	const e = await bridge.placeOrder("DU1", { conid: 1, side: "BUY", orderType: "MKT", quantity: 1 },
	    { confirm: () => true }).catch((x) => x);
	assert.equal(e.code, "too_many_questions");
	assert.equal(fake.requests.length, 21);
});

test("placeOrder: Gateway errors keep their text, 200 {error} is order_rejected", async () => {
	fake.handler = () => [400, { error: "Order couldn't be submitted: Local order ID=abc is already registered." }];
	let e = await bridge.placeOrder("DU1", { conid: 1, side: "BUY", orderType: "MKT", quantity: 1, cOID: "abc" })
	    .catch((x) => x);
	assert.equal(e.status, 400);
	assert.equal(e.code, "gateway_error");
	assert.match(e.message, /already registered/);
	assert.equal(e.cOID, "abc");
	fake.handler = () => [200, { error: "We cannot accept an order at the limit price you selected." }];
	e = await bridge.placeOrder("DU1", { conid: 1, side: "BUY", orderType: "LMT", price: 1, quantity: 1 })
	    .catch((x) => x);
	assert.equal(e.code, "order_rejected");
});

test("snapshot repeats the pre-flight until fields arrive", async () => {
	let calls = 0;
	fake.handler = (r) => {
		calls++;
		const ids = r.query.conids.split(",");
		return [200, ids.map((c) => calls < 3 ? { conid: Number(c), conidEx: c } :
		    { conid: Number(c), conidEx: c, 31: "123.45", 84: "123.40" })];
	};
	const a = await bridge.snapshot([265598, 8314], ["31", 84], { delayMs: 10 });
	assert.equal(calls, 3);
	assert.equal(a[0]["31"], "123.45");
	assert.deepEqual(fake.requests[0].query, { conids: "265598,8314", fields: "31,84" });
});

test("snapshot is bounded when fields never come", async () => {
	fake.handler = () => [200, [{ conid: 1, conidEx: "1" }]];
	const t0 = Date.now();
	const a = await bridge.snapshot(1, 31, { delayMs: 20 });
	assert.equal(fake.requests.length, 5);
	assert.deepEqual(a, [{ conid: 1, conidEx: "1" }]);
	assert.ok(Date.now() - t0 < 2000);
	fake.requests = [];
	await bridge.snapshot(1, 31, { delayMs: 100, tries: 50, maxMs: 250 });
	assert.ok(fake.requests.length >= 2 && fake.requests.length <= 4, String(fake.requests.length));
});

test("brokerd's error JSON gives the code; 429 carries Retry-After", async () => {
	fake.handler = () => [429, { error: "rate_limited", message: "slow down" }, { "retry-after": "7" }];
	let e = await bridge.orders().catch((x) => x);
	assert.equal(e.status, 429);
	assert.equal(e.code, "rate_limited");
	assert.equal(e.retryAfterS, 7);
	assert.deepEqual(e.body, { error: "rate_limited", message: "slow down" });
	fake.handler = () => [503, { error: "not_authenticated", message: "gateway not authenticated" }];
	e = await bridge.accounts().catch((x) => x);
	assert.equal(e.code, "not_authenticated");
	assert.equal(e.status, 503);
	fake.handler = (r, req, res) => {
		res.writeHead(502, { "content-type": "text/html" });
		res.end("<html>bad</html>");
	};
	e = await bridge.accounts().catch((x) => x);
	assert.equal(e.code, "http_502");
	assert.equal(e.body, "<html>bad</html>");
	fake.handler = (r, req, res) => {
		res.writeHead(200, { "content-type": "application/json" });
		res.end("{not json");
	};
	e = await bridge.accounts().catch((x) => x);
	assert.equal(e.code, "bad_response");
});

test("no answer within timeoutMs is code timeout", async () => {
	fake.handler = () => new Promise(() => {});
	const t0 = Date.now();
	const e = await bridge.orders({ timeoutMs: 150 }).catch((x) => x);
	assert.ok(e instanceof BridgeError);
	assert.equal(e.code, "timeout");
	assert.equal(e.status, 0);
	assert.ok(Date.now() - t0 < 1500);
	const b = new Bridge({ socketPath: fake.socketPath, key: KEY, timeoutMs: 100 });
	assert.equal((await b.accounts().catch((x) => x)).code, "timeout");
	b.close();
});

test("an AbortSignal aborts any call with code aborted", async () => {
	fake.handler = () => new Promise(() => {});
	const ac = new AbortController();
	setTimeout(() => ac.abort(), 50);
	let e = await bridge.orders({ signal: ac.signal }).catch((x) => x);
	assert.equal(e.code, "aborted");
	e = await bridge.health({ signal: AbortSignal.abort() }).catch((x) => x);
	assert.equal(e.code, "aborted");
	e = await bridge.snapshot([1], [31], { signal: AbortSignal.timeout(50) }).catch((x) => x);
	assert.equal(e.code, "aborted");
	e = await bridge.waitForAuth({ signal: AbortSignal.timeout(50), timeoutMs: 5000 }).catch((x) => x);
	assert.equal(e.code, "aborted");
	const ac2 = new AbortController();
	fake.handler = () => [200, question("q1", "sure?", "o1")];
	e = await bridge.placeOrder("DU1", { conid: 1, side: "BUY", orderType: "MKT", quantity: 1 },
	    { signal: ac2.signal, confirm: () => { ac2.abort(); return true; } }).catch((x) => x);
	assert.equal(e.code, "aborted");
	assert.equal(fake.requests.filter((r) => r.path.startsWith("/iserver/reply/")).length, 0);
});

test("a missing socket is code unreachable", async () => {
	const b = new Bridge({ socketPath: path.join(fake.dir, "nope.sock"), key: KEY });
	const e = await b.health().catch((x) => x);
	assert.ok(e instanceof BridgeError);
	assert.equal(e.code, "unreachable");
	assert.equal(e.status, 0);
	b.close();
});

test("waitForAuth polls until authenticated, and times out otherwise", async () => {
	let n = 0;
	fake.handler = () => {
		n++;
		return [200, { authenticated: n >= 3, connected: true, competing: false,
		    state: n >= 3 ? "authenticated" : "unauthenticated" }];
	};
	const s = await bridge.waitForAuth({ timeoutMs: 3000, intervalMs: 20 });
	assert.equal(s.authenticated, true);
	assert.equal(n, 3);
	fake.handler = () => [200, { authenticated: false, connected: false, competing: false, state: "gateway_down" }];
	const t0 = Date.now();
	const e = await bridge.waitForAuth({ timeoutMs: 200, intervalMs: 30 }).catch((x) => x);
	assert.equal(e.code, "timeout");
	assert.equal(e.body.state, "gateway_down");
	assert.ok(Date.now() - t0 < 1500);
});

test("waitForAuth waits out a brokerd that is not there yet", async () => {
	const b = new Bridge({ socketPath: path.join(fake.dir, "later.sock"), key: KEY });
	const e = await b.waitForAuth({ timeoutMs: 150, intervalMs: 20 }).catch((x) => x);
	assert.equal(e.code, "timeout");
	b.close();
});

test("the URL form talks TCP with a Host header", async () => {
	const tcp = await startFake({ tcp: true });
	try {
		tcp.handler = () => [200, { accounts: ["DU9"] }];
		const b = new Bridge({ env: { IBKR_BRIDGE_URL: tcp.url, IBKR_BRIDGE_KEY: KEY } });
		assert.deepEqual(await b.accounts(), { accounts: ["DU9"] });
		assert.equal(tcp.requests[0].headers.host, new URL(tcp.url).host);
		assert.equal(tcp.requests[0].headers["x-bridge-key"], KEY);
		b.close();
	} finally {
		await tcp.stop();
	}
});

test("a call with bad arguments throws before sending", async () => {
	await assert.rejects(() => bridge.positions(""), TypeError);
	await assert.rejects(() => bridge.placeOrder("DU1", null), TypeError);
	await assert.rejects(() => bridge.snapshot([], [31]), TypeError);
	await assert.rejects(() => bridge.request("GET", "no-slash"), TypeError);
	assert.equal(fake.requests.length, 0);
});

test("an answer cut mid-body is unreachable, not a truncated value", async () => {
	fake.handler = (r, req, res) => {
		res.writeHead(200, { "content-type": "application/json", "content-length": "100" });
		res.write("{\"a\":");
		setTimeout(() => res.destroy(), 20);
	};
	const e = await bridge.orders().catch((x) => x);
	assert.equal(e.code, "unreachable");
});

void send;

test("a kept-alive socket closed before the answer: GET goes again once, POST never", async () => {
	const seen = new WeakMap();
	fake.handler = (r, req) => {
		const n = (seen.get(req.socket) ?? 0) + 1;
		seen.set(req.socket, n);
		if (n === 2) {
			req.socket.destroy();	// the idle connection brokerd closed
			return undefined;
		}
		return [200, { n }];
	};
	const b = new Bridge({ socketPath: fake.socketPath, key: KEY });
	assert.deepEqual(await b.orders(), { n: 1 });
	assert.deepEqual(await b.orders(), { n: 1 }, "answered on a new connection");
	assert.equal(fake.requests.length, 3);
	fake.requests = [];
	const e = await b.request("POST", "/iserver/account/DU1/orders", { body: { orders: [] } }).catch((x) => x);
	assert.equal(e.code, "unreachable");
	assert.equal(fake.requests.length, 1, "a POST is sent once");
	b.close();
});
