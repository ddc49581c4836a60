// Compiled by `npm run typecheck` (tsc --noEmit): the types in index.d.ts
// must accept the documented uses and reject the wrong ones.
import Bridge, { Bridge as NamedBridge, BridgeError, BridgeStream, makeCOID, type AuthStatus,
    type OrderResult } from "brokerd-client";

async function main(): Promise<void> {
	const b = new Bridge({ socketPath: "/run/brokerd/brokerd.sock", key: "k", timeoutMs: 5000 });
	const b2: NamedBridge = new NamedBridge({ url: "http://127.0.0.1:8000" });
	const ac = new AbortController();

	const h = await b.health();
	const hs: string = h.status;
	const s: AuthStatus = await b.waitForAuth({ timeoutMs: 30000 });
	const authed: boolean = s.authenticated;
	const acc = await b.accounts({ signal: ac.signal });
	const first: string | undefined = acc.accounts[0];
	const pos = await b.positions("DU1");
	const pos2 = await b.positions("DU1", 1, { timeoutMs: 100 });
	const n: number = pos[0].position + pos2.length;
	await b.summary("DU1");
	await b.orders();
	const placed: OrderResult[] = await b.placeOrder("DU1",
	    { conid: 265598, side: "BUY", orderType: "LMT", price: 1.5, quantity: 1, tif: "DAY" },
	    { confirm: async (messages: string[]) => messages.length < 3, signal: ac.signal });
	const oid: string = placed[0].order_id;
	await b.cancelOrder("DU1", oid);
	await b.cancelOrder("DU1", 42);
	const snap = await b.snapshot([265598, "8314"], ["31", 84], { tries: 3, delayMs: 200 });
	const conid: number | string = snap[0].conid;
	await b.history(265598, { period: "1w", bar: "1h" });
	const raw = await b.request<{ x: number }>("POST", "/iserver/x", { query: { a: 1, b: [1, 2] }, body: { y: 1 },
	    headers: { "Cache-Control": "no-cache" } });
	const x: number = raw.x;
	const c: string = makeCOID();

	try {
		await b.orders();
	} catch (e) {
		if (e instanceof BridgeError) {
			const st: number = e.status;
			const code: string = e.code;
			const ra: number | null = e.retryAfterS;
			const q = e.question?.message;
			void [st, code, ra, q, e.body, e.cOID];
		}
	}
	b.close();
	b2.close();
	void [hs, authed, first, n, conid, x, c];

	// @ts-expect-error positions needs an account id
	await b.positions();
	// @ts-expect-error an order needs side, orderType, quantity
	await b.placeOrder("DU1", { conid: 1 });
	// @ts-expect-error confirm returns a boolean
	await b.placeOrder("DU1", { side: "BUY", orderType: "MKT", quantity: 1 }, { confirm: () => "yes" });
	// @ts-expect-error unknown option
	new Bridge({ socket: "/x" });
}

void main;

async function streams(): Promise<void> {
	const b = new Bridge({ socketPath: "/run/brokerd/brokerd.sock", key: "k" });
	const s: BridgeStream = b.stream({ minDelayMs: 500, maxDelayMs: 10000 });
	s.subscribe("smd", { conid: 265598, fields: ["31", 84] });
	s.subscribe("sor");
	s.subscribe("ssd", { account: "DU1" });
	s.unsubscribe("smd", { conid: 265598 });
	s.unsubscribe("smh", { serverId: "sv1" });
	s.on("close", (code: number, reason: string) => void [code, reason]);
	for await (const m of s) {
		if (typeof m !== "string" && m.topic === "system" && "client" in m)
			break;
	}
	await s.close(1000, "bye");
	const body: ReadableStream<Uint8Array> = await b.eventStream({ smd: ["265598:31,84"], sor: 1 });
	void body;
	// @ts-expect-error smd needs a conid and fields
	s.subscribe("smd");
	// @ts-expect-error unknown topic
	s.subscribe("xyz");
	// @ts-expect-error ssd needs an account
	s.subscribe("ssd", {});
}

void streams;
