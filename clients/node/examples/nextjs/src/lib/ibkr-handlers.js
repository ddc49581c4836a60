// @ts-check
// The App Router handlers of /api/ibkr/*, written against the Web `Request`
// and `Response` only, so that they run (and are tested) without Next.js.
// src/lib/ibkr.ts binds them to one Bridge; each route.ts exports them.

/**
 * @typedef {import("brokerd-client").Bridge} Bridge
 * @typedef {(request: Request) => Promise<Response>} Handler
 * @typedef {{ accountId?: string, allowMessageIds?: string[],
 *   streamTopics?: string[] }} HandlerOptions
 */

const NUMS = /^\d+(,\d+)*$/;
const STREAM_TOPICS = ["smd", "sor", "str", "spl", "ssd", "sld"];

/**
 * The browser's query for /api/ibkr/stream, checked word by word so that
 * nothing else reaches brokerd: smd=CONID:F,F (repeatable), sor=1, str=1,
 * spl=1, ssd=ACCT, sld=ACCT.
 * @param {URLSearchParams} q
 * @param {string[]} allowed
 * @returns {Record<string, string[]>}
 */
function streamQuery(q, allowed) {
	/** @type {Record<string, string[]>} */
	const out = {};
	for (const [k, v] of q) {
		if (!allowed.includes(k))
			throw new TypeError(`topic ${k} is not offered here`);
		let ok;
		if (k === "smd")
			ok = /^\d+:\d+(,\d+)*$/.test(v);
		else if (k === "ssd" || k === "sld")
			ok = /^[A-Za-z0-9._-]{1,32}$/.test(v);
		else
			ok = v === "1";
		if (!ok)
			throw new TypeError(`bad value for ${k}`);
		if (k !== "smd" && out[k])
			throw new TypeError(`${k} given twice`);
		(out[k] ??= []).push(v);
	}
	if (Object.keys(out).length === 0)
		throw new TypeError("no topic: e.g. ?smd=265598:31,84&sor=1");
	return out;
}

/**
 * @param {number} status
 * @param {unknown} obj
 * @returns {Response}
 */
function json(status, obj) {
	return new Response(JSON.stringify(obj), {
		status,
		headers: { "content-type": "application/json", "cache-control": "no-store" },
	});
}

/**
 * The browser's request was fine; what went wrong was behind us. A 401/403
 * from brokerd means this server's key is wrong, not the browser's.
 * @param {any} e
 * @returns {Response}
 */
function fail(e) {
	if (e instanceof TypeError)
		return json(400, { ok: false, error: "bad_request", message: e.message });
	if (!e || typeof e.code !== "string" || e.name !== "BridgeError")
		return json(500, { ok: false, error: "internal_error", message: "unexpected error" });
	const byCode = { timeout: 504, unreachable: 503, aborted: 499, bad_response: 502,
	    order_not_confirmed: 409, too_many_questions: 409, order_rejected: 422 };
	let status = byCode[/** @type {keyof typeof byCode} */ (e.code)] ?? e.status;
	if (!(status >= 400 && status <= 599) || status === 401 || status === 403)
		status = 502;
	/** @type {Record<string, unknown>} */
	const out = { ok: false, error: e.code, message: e.message };
	if (e.retryAfterS != null)
		out.retryAfterS = e.retryAfterS;
	if (e.question)
		out.question = { id: e.question.id, message: e.question.message,
		    messageIds: e.question.messageIds ?? [] };
	if (e.cOID)
		out.cOID = e.cOID;
	return json(status, out);
}

/**
 * @param {Bridge} bridge
 * @param {HandlerOptions} [opts]
 * @returns {{ status: Handler, trade: Handler, marketdata: Handler, positions: Handler,
 *   account: Handler, stream: Handler }}
 */
export function createHandlers(bridge, opts = {}) {
	/**
	 * @param {URL} url
	 * @param {AbortSignal} signal
	 * @returns {Promise<string>}
	 */
	async function accountOf(url, signal) {
		const given = url.searchParams.get("accountId") ?? opts.accountId;
		if (given)
			return given;
		// brokerd already called /iserver/accounts after the login (the
		// Gateway's prerequisite), so this is only for finding the default.
		const a = await bridge.accounts({ signal });
		const id = a?.selectedAccount ?? a?.accounts?.[0];
		if (!id)
			throw new TypeError("no account");
		return id;
	}

	return {
		// GET /api/ibkr/status -> {"ok":true,"gateway":{"authenticated":true}}
		async status(request) {
			let s;
			try {
				s = await bridge.authStatus({ signal: request.signal });
			} catch (e) {
				const code = /** @type {any} */ (e)?.code ?? "internal_error";
				return json(503, { ok: false, gateway: { authenticated: false }, error: code });
			}
			if (s.authenticated === true)
				return json(200, { ok: true, gateway: { authenticated: true } });
			return json(503, { ok: false, gateway: { authenticated: false, state: s.state } });
		},

		// POST {accountId?, order, accept?: [messageId or message text]} places
		// an order; a question not covered by `accept` comes back as 409 with
		// the question, for the user to accept and send again.
		// DELETE ?accountId=&orderId= cancels.
		async trade(request) {
			try {
				const url = new URL(request.url);
				if (request.method === "DELETE") {
					const orderId = url.searchParams.get("orderId");
					if (!orderId || !/^[\w-]+$/.test(orderId))
						throw new TypeError("orderId is required");
					const acct = await accountOf(url, request.signal);
					const result = await bridge.cancelOrder(acct, orderId, { signal: request.signal });
					return json(200, { ok: true, result });
				}
				if (request.method !== "POST")
					return json(405, { ok: false, error: "method_not_allowed" });
				/** @type {any} */
				let body;
				try {
					body = await request.json();
				} catch {
					throw new TypeError("body must be JSON");
				}
				const order = body?.order;
				if (!order || typeof order !== "object" || Array.isArray(order) ||
				    typeof order.side !== "string" || typeof order.orderType !== "string" ||
				    !(Number(order.quantity) > 0) || (order.conid === undefined && order.conidex === undefined))
					throw new TypeError("order needs side, orderType, quantity > 0 and conid");
				const accept = new Set([...(Array.isArray(body.accept) ? body.accept.map(String) : []),
				    ...(opts.allowMessageIds ?? [])]);
				const url2 = new URL(url);
				if (typeof body.accountId === "string")
					url2.searchParams.set("accountId", body.accountId);
				const acct = await accountOf(url2, request.signal);
				const result = await bridge.placeOrder(acct, order, {
					signal: request.signal,
					confirm: (messages, q) => {
						const ids = q.messageIds ?? [];
						return ids.length > 0 ? ids.every((id) => accept.has(id)) :
						    messages.every((m) => accept.has(m));
					},
				});
				return json(200, { ok: true, result });
			} catch (e) {
				return fail(e);
			}
		},

		// GET ?conids=265598,8314&fields=31,84 -> snapshot;
		// GET ?conid=265598&period=1d&bar=5min -> history.
		async marketdata(request) {
			try {
				const q = new URL(request.url).searchParams;
				const conid = q.get("conid");
				if (conid !== null) {
					if (!/^\d+$/.test(conid))
						throw new TypeError("conid must be a number");
					const data = await bridge.history(conid, { period: q.get("period") ?? "1d",
					    bar: q.get("bar") ?? "5min", signal: request.signal });
					return json(200, { ok: true, history: data });
				}
				const conids = q.get("conids") ?? "";
				const fields = q.get("fields") ?? "31,84,86";
				if (!NUMS.test(conids) || !NUMS.test(fields))
					throw new TypeError("conids and fields must be comma-separated numbers");
				const data = await bridge.snapshot(conids.split(","), fields.split(","),
				    { signal: request.signal });
				return json(200, { ok: true, snapshot: data });
			} catch (e) {
				return fail(e);
			}
		},

		// GET ?accountId=&page=0
		async positions(request) {
			try {
				const url = new URL(request.url);
				const page = url.searchParams.get("page") ?? "0";
				if (!/^\d+$/.test(page))
					throw new TypeError("page must be a number");
				const acct = await accountOf(url, request.signal);
				const positions = await bridge.positions(acct, Number(page), { signal: request.signal });
				return json(200, { ok: true, accountId: acct, page: Number(page), positions });
			} catch (e) {
				return fail(e);
			}
		},

		// GET ?smd=265598:31,84&sor=1 -> text/event-stream: brokerd's SSE
		// relayed as is (event: topic, data: the Gateway's JSON). The key
		// stays on this server; the browser's EventSource reconnects by
		// itself, and its leaving (request.signal) ends brokerd's stream.
		async stream(request) {
			try {
				const q = streamQuery(new URL(request.url).searchParams,
				    opts.streamTopics ?? STREAM_TOPICS);
				const body = await bridge.eventStream(q, { signal: request.signal });
				return new Response(body, {
					status: 200,
					headers: { "content-type": "text/event-stream; charset=utf-8",
					    "cache-control": "no-store, no-transform", "x-accel-buffering": "no" },
				});
			} catch (e) {
				return fail(e);
			}
		},

		// GET ?accountId= -> the accounts and one account's summary
		async account(request) {
			try {
				const url = new URL(request.url);
				const acct = await accountOf(url, request.signal);
				const summary = await bridge.summary(acct, { signal: request.signal });
				return json(200, { ok: true, accountId: acct, summary });
			} catch (e) {
				return fail(e);
			}
		},
	};
}
