// The Next.js example handlers, called as plain functions with Request
// objects (no Next.js needed), against the fake brokerd.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { Bridge } from "../index.js";
import { createHandlers } from "../examples/nextjs/src/lib/ibkr-handlers.js";
import { startFake, KEY } from "./fake-brokerd.js";

let fake;
let bridge;
let h;

before(async () => {
	fake = await startFake();
	bridge = new Bridge({ socketPath: fake.socketPath, key: KEY, timeoutMs: 1000 });
	h = createHandlers(bridge);
});
after(async () => {
	bridge.close();
	await fake.stop();
});
beforeEach(() => {
	fake.requests = [];
	fake.handler = null;
});

const base = "http://localhost:3000/api/ibkr";
const post = (p, body) => new Request(base + p, { method: "POST", body: JSON.stringify(body),
    headers: { "content-type": "application/json" } });

test("status: authenticated gives the Python bridge's (bridge.py) answer", async () => {
	fake.handler = () => [200, { authenticated: true, connected: true, competing: false, state: "authenticated" }];
	const r = await h.status(new Request(base + "/status"));
	assert.equal(r.status, 200);
	assert.deepEqual(await r.json(), { ok: true, gateway: { authenticated: true } });
});

test("status: not authenticated or brokerd down is 503 ok:false", async () => {
	fake.handler = () => [200, { authenticated: false, connected: true, competing: false, state: "unauthenticated" }];
	let r = await h.status(new Request(base + "/status"));
	assert.equal(r.status, 503);
	assert.deepEqual(await r.json(), { ok: false, gateway: { authenticated: false, state: "unauthenticated" } });
	const down = createHandlers(new Bridge({ socketPath: fake.dir + "/none.sock", key: KEY }));
	r = await down.status(new Request(base + "/status"));
	assert.equal(r.status, 503);
	const j = await r.json();
	assert.equal(j.ok, false);
	assert.equal(j.gateway.authenticated, false);
	assert.equal(j.error, "unreachable");
});

test("trade: a question not accepted comes back as 409, accepted ids go through", async () => {
	fake.handler = (req) => {
		if (req.path === "/iserver/accounts")
			return [200, { accounts: ["DU7"], selectedAccount: "DU7" }];
		if (req.path === "/iserver/account/DU7/orders")
			return [200, [{ id: "q1", message: ["Price cap"], messageIds: ["o163"] }]];
		if (req.path === "/iserver/reply/q1")
			return [200, [{ order_id: "55", order_status: "Submitted" }]];
		return [404, { error: "no_route", message: req.path }];
	};
	const order = { conid: 265598, side: "BUY", orderType: "LMT", price: 1, quantity: 1 };
	let r = await h.trade(post("/trade", { order }));
	assert.equal(r.status, 409);
	let j = await r.json();
	assert.equal(j.error, "order_not_confirmed");
	assert.deepEqual(j.question, { id: "q1", message: ["Price cap"], messageIds: ["o163"] });
	assert.equal(fake.requests.filter((x) => x.path.startsWith("/iserver/reply/")).length, 0);

	fake.requests = [];
	r = await h.trade(post("/trade", { accountId: "DU7", order, accept: ["o163"] }));
	assert.equal(r.status, 200);
	j = await r.json();
	assert.deepEqual(j, { ok: true, result: [{ order_id: "55", order_status: "Submitted" }] });
	assert.deepEqual(fake.requests.map((x) => x.path), ["/iserver/account/DU7/orders", "/iserver/reply/q1"]);
	assert.ok(fake.requests[0].body.orders[0].cOID);
});

test("trade: bad input is 400 and nothing is sent", async () => {
	for (const body of [{}, { order: { side: "BUY" } }, { order: { conid: 1, side: "BUY", orderType: "MKT", quantity: 0 } }]) {
		const r = await h.trade(post("/trade", body));
		assert.equal(r.status, 400);
		assert.equal((await r.json()).error, "bad_request");
	}
	const r = await h.trade(new Request(base + "/trade", { method: "POST", body: "{nope" }));
	assert.equal(r.status, 400);
	assert.equal(fake.requests.length, 0);
});

test("trade: DELETE cancels", async () => {
	fake.handler = (req) => [200, { msg: "Request was submitted", order_id: req.path.split("/").pop() }];
	const r = await h.trade(new Request(base + "/trade?accountId=DU7&orderId=55", { method: "DELETE" }));
	assert.equal(r.status, 200);
	assert.equal((await r.json()).result.order_id, "55");
	assert.equal(fake.requests[0].method, "DELETE");
	assert.equal(fake.requests[0].path, "/iserver/account/DU7/order/55");
});

test("marketdata: snapshot with pre-flight, and history", async () => {
	let n = 0;
	fake.handler = (req) => {
		if (req.path === "/iserver/marketdata/history")
			return [200, { symbol: "AAPL", data: [{ o: 1, c: 2, t: 1 }], q: req.query }];
		return [200, [n++ === 0 ? { conid: 265598 } : { conid: 265598, 31: "190.1" }]];
	};
	let r = await h.marketdata(new Request(base + "/marketdata?conids=265598&fields=31"));
	assert.equal(r.status, 200);
	assert.deepEqual(await r.json(), { ok: true, snapshot: [{ conid: 265598, 31: "190.1" }] });
	r = await h.marketdata(new Request(base + "/marketdata?conid=265598&period=1w&bar=1h"));
	const j = await r.json();
	assert.deepEqual(j.history.q, { conid: "265598", period: "1w", bar: "1h" });
	r = await h.marketdata(new Request(base + "/marketdata?conids=1;rm"));
	assert.equal(r.status, 400);
});

test("positions and account use the selected account by default", async () => {
	fake.handler = (req) => {
		if (req.path === "/iserver/accounts")
			return [200, { accounts: ["DU1", "DU2"], selectedAccount: "DU2" }];
		if (req.path === "/portfolio/DU2/positions/1")
			return [200, [{ conid: 1, position: 10 }]];
		if (req.path === "/portfolio/DU9/summary")
			return [200, { netliquidation: { amount: 1000 } }];
		return [404, { error: "no_route", message: req.path }];
	};
	let r = await h.positions(new Request(base + "/positions?page=1"));
	assert.equal(r.status, 200);
	assert.deepEqual(await r.json(), { ok: true, accountId: "DU2", page: 1, positions: [{ conid: 1, position: 10 }] });
	r = await h.account(new Request(base + "/account?accountId=DU9"));
	assert.deepEqual(await r.json(), { ok: true, accountId: "DU9", summary: { netliquidation: { amount: 1000 } } });
	assert.ok(!fake.requests.slice(2).some((x) => x.path === "/iserver/accounts"), "an explicit account needs no lookup");
});

test("brokerd errors map to the browser: 429 passes with Retry-After, a bad key is 502", async () => {
	fake.handler = () => [429, { error: "rate_limited", message: "slow" }, { "retry-after": "3" }];
	let r = await h.positions(new Request(base + "/positions?accountId=DU1"));
	assert.equal(r.status, 429);
	let j = await r.json();
	assert.equal(j.error, "rate_limited");
	assert.equal(j.retryAfterS, 3);
	const badKey = createHandlers(new Bridge({ socketPath: fake.socketPath, key: "not-the-key-0000000000" }));
	r = await badKey.account(new Request(base + "/account?accountId=DU1"));
	assert.equal(r.status, 502);
	j = await r.json();
	assert.equal(j.error, "unauthorized");
	assert.ok(!JSON.stringify(j).includes("not-the-key"));
});

test("stream: brokerd's SSE relayed to the browser, the key kept back, the browser's leaving ends it", async () => {
	let upstream = null;
	let closed = false;
	fake.handler = (rec, req, res) => {
		upstream = req;
		res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
		res.write(": keep-alive\n\n");
		res.write('event: smd+265598\ndata: {"topic":"smd+265598","conid":265598,"31":"190.50"}\n\n');
		res.write('event: sor\ndata: {"topic":"sor","args":[]}\n\n');
		res.on("close", () => {
			closed = true;
		});
	};
	const ac = new AbortController();
	const r = await h.stream(new Request(base + "/stream?smd=265598:31,84&smd=8314:31&sor=1",
	    { signal: ac.signal, headers: { origin: "http://localhost:3000" } }));
	assert.equal(r.status, 200);
	assert.match(r.headers.get("content-type"), /^text\/event-stream/);
	assert.equal(r.headers.get("cache-control"), "no-store, no-transform");
	assert.equal(fake.requests.length, 1);
	assert.equal(fake.requests[0].path, "/stream");
	assert.equal(upstream.url, "/stream?smd=265598:31,84&smd=8314:31&sor=1");
	assert.equal(fake.requests[0].headers["x-bridge-key"], KEY);
	assert.equal(fake.requests[0].headers.origin, undefined, "brokerd refuses an Origin");
	for (const [, v] of r.headers)
		assert.ok(!v.includes(KEY));
	const reader = r.body.getReader();
	let text = "";
	while (!text.includes('"sor"')) {
		const { value, done } = await reader.read();
		assert.equal(done, false);
		text += new TextDecoder().decode(value);
	}
	assert.equal(text, ": keep-alive\n\n" +
	    'event: smd+265598\ndata: {"topic":"smd+265598","conid":265598,"31":"190.50"}\n\n' +
	    'event: sor\ndata: {"topic":"sor","args":[]}\n\n');
	ac.abort();
	for (let i = 0; i < 100 && !closed; i++)
		await new Promise((res) => setTimeout(res, 10));
	assert.ok(closed, "brokerd's stream still open after the browser left");
});

test("stream: a bad query is 400 and nothing is sent; brokerd's refusal maps like the others", async () => {
	for (const q of ["", "?smd=265598", "?smd=1:31;rm", "?sor=2", "?ssd=DU1%0A", "?xyz=1", "?smh=1", "?sor=1&sor=1"]) {
		const r = await h.stream(new Request(base + "/stream" + q));
		assert.equal(r.status, 400, q);
		assert.equal((await r.json()).error, "bad_request");
	}
	assert.equal(fake.requests.length, 0);
	const limited = createHandlers(bridge, { streamTopics: ["smd"] });
	let r = await limited.stream(new Request(base + "/stream?sor=1"));
	assert.equal(r.status, 400);
	fake.handler = () => [429, { error: "rate_limited", message: "too many subscribers" }, { "retry-after": "2" }];
	r = await h.stream(new Request(base + "/stream?sor=1"));
	assert.equal(r.status, 429);
	assert.equal((await r.json()).retryAfterS, 2);
	fake.handler = () => [403, { error: "forbidden", message: "scope" }];
	r = await h.stream(new Request(base + "/stream?sor=1"));
	assert.equal(r.status, 502);
	assert.equal((await r.json()).error, "forbidden");
});
