// brokerd-client: talk to brokerd over its Unix socket (or loopback TCP) as
// easily as with fetch. Zero runtime dependencies; Node >= 18.
import http from "node:http";
import https from "node:https";
import { randomUUID } from "node:crypto";
import { BridgeError, abortError, decode, list, sleep } from "./common.js";
import { BridgeStream } from "./stream.js";

export { BridgeError } from "./common.js";
export { BridgeStream } from "./stream.js";

/** Default Unix socket of a packaged brokerd (SPEC §3 listen.unix.path). */
export const DEFAULT_SOCKET = "/run/brokerd/brokerd.sock";

const DEFAULT_TIMEOUT_MS = 20000;
const MAX_REPLIES = 20;

/**
 * A client order id: unique, at most 40 characters, so that IBKR refuses a
 * resent order ("Local order ID=... is already registered") instead of
 * placing it twice.
 * @returns {string}
 */
export function makeCOID() {
	return "bd-" + randomUUID().replace(/-/g, "");
}

function isQuestion(x) {
	return x !== null && typeof x === "object" && typeof x.id === "string" &&
	    Array.isArray(x.message) && x.order_id === undefined;
}

function seg(v, what) {
	if (v === undefined || v === null || String(v) === "")
		throw new TypeError(`${what} is required`);
	return encodeURIComponent(String(v));
}

/**
 * A brokerd client. Options default to the environment: `BROKERD_SOCKET`,
 * `IBKR_BRIDGE_URL`, `IBKR_BRIDGE_KEY`. An explicit option wins over the
 * environment; a Unix socket wins over a URL given at the same level.
 */
export class Bridge {
	/**
	 * @param {{socketPath?: string, url?: string, key?: string,
	 *   timeoutMs?: number, env?: Record<string, string|undefined>}} [opts]
	 */
	constructor(opts = {}) {
		const env = opts.env ?? process.env;
		let socketPath = null;
		let url = null;
		if (opts.socketPath)
			socketPath = opts.socketPath;
		else if (opts.url)
			url = opts.url;
		else if (env.BROKERD_SOCKET)
			socketPath = env.BROKERD_SOCKET;
		else if (env.IBKR_BRIDGE_URL)
			url = env.IBKR_BRIDGE_URL;
		else
			socketPath = DEFAULT_SOCKET;

		/** @type {string|null} */
		this.socketPath = socketPath;
		/** @type {string|null} */
		this.url = null;
		this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
		// The key is kept out of enumerable properties so that logging or
		// JSON-serialising the client never prints it.
		Object.defineProperty(this, "_key", {
			value: opts.key ?? env.IBKR_BRIDGE_KEY ?? null,
			enumerable: false,
		});
		let mod = http;
		if (url !== null) {
			const u = new URL(url);
			if (u.protocol !== "http:" && u.protocol !== "https:")
				throw new TypeError(`unsupported URL protocol ${u.protocol}`);
			mod = u.protocol === "https:" ? https : http;
			this._host = u.hostname.replace(/^\[|\]$/g, "");
			this._port = u.port ? Number(u.port) : (u.protocol === "https:" ? 443 : 80);
			this._base = u.pathname.replace(/\/+$/, "");
			this._hostHeader = u.host;
			this.url = u.origin + this._base;
		} else {
			this._base = "";
			this._hostHeader = "localhost";
		}
		this._mod = mod;
		// brokerd's idle_timeout_ms defaults to 60 s: drop idle sockets first.
		this._agent = new mod.Agent({ keepAlive: true, timeout: 30000 });
	}

	/** Close the kept-alive connections. */
	close() {
		this._agent.destroy();
	}

	/**
	 * One request through brokerd. Resolves with the parsed JSON body (text
	 * when the answer is not JSON, null when empty); rejects with BridgeError
	 * on HTTP >= 400 and on any failure.
	 * @param {string} method
	 * @param {string} path
	 * @param {{query?: Record<string, unknown>, body?: unknown,
	 *   signal?: AbortSignal, headers?: Record<string, string>,
	 *   timeoutMs?: number}} [opts]
	 */
	async request(method, path, opts = {}) {
		const res = await this._send(method, path, opts);
		return res.body;
	}

	async _send(method, path, opts) {
		method = String(method).toUpperCase();
		if (typeof path !== "string" || !path.startsWith("/"))
			throw new TypeError("path must start with /");
		let full = this._base + path;
		if (opts.query) {
			const q = new URLSearchParams();
			for (const [k, v] of Object.entries(opts.query)) {
				if (v === undefined || v === null)
					continue;
				q.append(k, Array.isArray(v) ? v.join(",") : String(v));
			}
			const s = q.toString();
			if (s)
				full += (full.includes("?") ? "&" : "?") + s;
		}
		const headers = { accept: "application/json", host: this._hostHeader };
		let payload = null;
		if (opts.body !== undefined && opts.body !== null) {
			if (typeof opts.body === "string") {
				payload = Buffer.from(opts.body);
				headers["content-type"] = "application/json";
			} else if (opts.body instanceof Uint8Array) {
				payload = Buffer.from(opts.body.buffer, opts.body.byteOffset, opts.body.byteLength);
				headers["content-type"] = "application/octet-stream";
			} else {
				payload = Buffer.from(JSON.stringify(opts.body));
				headers["content-type"] = "application/json";
			}
		} else if (method !== "GET" && method !== "HEAD" && method !== "DELETE") {
			payload = Buffer.alloc(0);
		}
		if (payload !== null)
			headers["content-length"] = String(payload.length);
		// Framing is the client's job: a caller's length or Host could
		// desynchronise the kept-alive connection.
		for (const [k, v] of Object.entries(opts.headers ?? {})) {
			const lk = k.toLowerCase();
			if (lk !== "content-length" && lk !== "transfer-encoding" && lk !== "host" &&
			    lk !== "connection")
				headers[lk] = v;
		}
		if (this._key)
			headers["x-bridge-key"] = this._key;

		const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
		const idempotent = method === "GET" || method === "HEAD";
		try {
			return await this._once(method, full, headers, payload, opts.signal, timeoutMs);
		} catch (e) {
			// A kept-alive socket that brokerd closed while idle fails at
			// once; a GET may go again, anything else was possibly sent.
			if (idempotent && e instanceof BridgeError && e._retryable)
				return await this._once(method, full, headers, payload, opts.signal, timeoutMs);
			throw e;
		}
	}

	_once(method, path, headers, payload, signal, timeoutMs) {
		return new Promise((resolve, reject) => {
			if (signal?.aborted) {
				reject(abortError());
				return;
			}
			let done = false;
			let gotResponse = false;
			let timer = null;
			const req = this._mod.request(this._target({ method, path, headers, agent: this._agent }));
			const finish = (err, val) => {
				if (done)
					return;
				done = true;
				clearTimeout(timer);
				signal?.removeEventListener("abort", onAbort);
				if (err)
					reject(err);
				else
					resolve(val);
			};
			function onAbort() {
				finish(abortError());
				req.destroy();
			}
			signal?.addEventListener("abort", onAbort, { once: true });
			timer = setTimeout(() => {
				finish(new BridgeError(`${method} ${path}: no answer within ${timeoutMs} ms`,
				    { code: "timeout" }));
				req.destroy();
			}, timeoutMs);
			req.on("error", (err) => {
				const be = new BridgeError(`${method} ${path}: brokerd unreachable (${err.code ?? err.message})`,
				    { code: "unreachable", cause: err });
				Object.defineProperty(be, "_retryable", {
					value: req.reusedSocket && !gotResponse &&
					    (err.code === "ECONNRESET" || err.code === "EPIPE"),
				});
				finish(be);
			});
			req.on("response", (res) => {
				gotResponse = true;
				const chunks = [];
				res.on("data", (c) => chunks.push(c));
				res.on("error", (err) => finish(new BridgeError(`${method} ${path}: answer cut short`,
				    { code: "unreachable", cause: err })));
				res.on("aborted", () => finish(new BridgeError(`${method} ${path}: answer cut short`,
				    { code: "unreachable" })));
				res.on("end", () => {
					if (!res.complete) {
						finish(new BridgeError(`${method} ${path}: answer cut short`,
						    { code: "unreachable" }));
						return;
					}
					try {
						finish(null, decode(method, path, res, Buffer.concat(chunks)));
					} catch (e) {
						finish(e);
					}
				});
			});
			req.end(payload ?? undefined);
		});
	}

	/** GET /health: brokerd itself, no key needed. */
	async health(opts = {}) {
		return this.request("GET", "/health", opts);
	}

	/** GET /gateway/auth-status: the watcher's last check, no Gateway call. */
	async authStatus(opts = {}) {
		return this.request("GET", "/gateway/auth-status", opts);
	}

	/**
	 * Poll /gateway/auth-status until `authenticated` is true. Errors while
	 * brokerd starts (unreachable, 5xx) are waited out; a 401/403 is thrown at
	 * once. On the deadline throws BridgeError code `timeout` with the last
	 * status as body.
	 * @param {{timeoutMs?: number, intervalMs?: number, signal?: AbortSignal}} [opts]
	 */
	async waitForAuth(opts = {}) {
		const timeoutMs = opts.timeoutMs ?? 60000;
		const intervalMs = opts.intervalMs ?? 500;
		const deadline = Date.now() + timeoutMs;
		let last = null;
		for (;;) {
			const left = deadline - Date.now();
			try {
				last = await this.authStatus({ signal: opts.signal,
				    timeoutMs: Math.max(1, Math.min(this.timeoutMs, left)) });
				if (last && last.authenticated === true)
					return last;
			} catch (e) {
				if (!(e instanceof BridgeError) || e.code === "aborted" ||
				    e.status === 401 || e.status === 403)
					throw e;
				last = last ?? { error: e.code };
			}
			const wait = Math.min(intervalMs, deadline - Date.now());
			if (wait <= 0)
				break;
			await sleep(wait, opts.signal);
		}
		throw new BridgeError(`gateway not authenticated within ${timeoutMs} ms`,
		    { code: "timeout", body: last });
	}

	/** GET /iserver/accounts (call it first in a session). */
	async accounts(opts = {}) {
		return this.request("GET", "/iserver/accounts", opts);
	}

	/** GET /portfolio/{accountId}/positions/{page} */
	async positions(accountId, page = 0, opts = {}) {
		return this.request("GET", `/portfolio/${seg(accountId, "accountId")}/positions/${seg(page, "page")}`, opts);
	}

	/** GET /portfolio/{accountId}/summary */
	async summary(accountId, opts = {}) {
		return this.request("GET", `/portfolio/${seg(accountId, "accountId")}/summary`, opts);
	}

	/** GET /iserver/account/orders */
	async orders(opts = {}) {
		return this.request("GET", "/iserver/account/orders", opts);
	}

	/**
	 * Place one order and follow the Gateway's questions. Each question goes
	 * to `confirm(messages, question)`; only a resolved `true` answers it with
	 * {"confirmed":true}. Anything else stops with BridgeError
	 * `order_not_confirmed` (the question in `.question`). Sets a unique
	 * `cOID` when the order has none; every BridgeError thrown from here
	 * carries the `cOID` so that the caller can reconcile after a timeout.
	 * @param {string} accountId
	 * @param {Record<string, unknown>} order
	 * @param {{confirm?: (messages: string[], question: object) => boolean|Promise<boolean>,
	 *   signal?: AbortSignal, timeoutMs?: number}} [opts]
	 */
	async placeOrder(accountId, order, opts = {}) {
		if (order === null || typeof order !== "object" || Array.isArray(order))
			throw new TypeError("order must be an object");
		const acct = seg(accountId, "accountId");
		const o = { ...order };
		if (o.cOID === undefined || o.cOID === null || o.cOID === "")
			o.cOID = makeCOID();
		const cOID = String(o.cOID);
		const ro = { signal: opts.signal, timeoutMs: opts.timeoutMs };
		try {
			let ans = await this.request("POST", `/iserver/account/${acct}/orders`,
			    { ...ro, body: { orders: [o] } });
			for (let n = 0; ; n++) {
				rejected(ans);
				const q = Array.isArray(ans) ? ans.find(isQuestion) : (isQuestion(ans) ? ans : undefined);
				if (q === undefined)
					return ans;
				if (n >= MAX_REPLIES)
					throw new BridgeError(`more than ${MAX_REPLIES} questions for one order`,
					    { code: "too_many_questions", body: ans, question: q });
				const messages = q.message.map(String);
				let ok = false;
				if (typeof opts.confirm === "function")
					ok = (await opts.confirm(messages, q)) === true;
				if (opts.signal?.aborted)
					throw abortError();
				if (!ok)
					throw new BridgeError(`order not confirmed: ${messages.join(" ")}`,
					    { status: 0, code: "order_not_confirmed", body: ans, question: q });
				ans = await this.request("POST", `/iserver/reply/${seg(q.id, "reply id")}`,
				    { ...ro, body: { confirmed: true } });
			}
		} catch (e) {
			if (e instanceof BridgeError && e.cOID === undefined)
				e.cOID = cOID;
			throw e;
		}
	}

	/** DELETE /iserver/account/{accountId}/order/{orderId} */
	async cancelOrder(accountId, orderId, opts = {}) {
		return this.request("DELETE",
		    `/iserver/account/${seg(accountId, "accountId")}/order/${seg(orderId, "orderId")}`, opts);
	}

	/**
	 * GET /iserver/marketdata/snapshot. The Gateway answers the first call
	 * for a conid without fields (its pre-flight): repeat, a few times and
	 * briefly, until every conid has at least one requested field.
	 * @param {Array<string|number>|string|number} conids
	 * @param {Array<string|number>|string|number} fields
	 * @param {{tries?: number, delayMs?: number, maxMs?: number,
	 *   signal?: AbortSignal, timeoutMs?: number}} [opts]
	 */
	async snapshot(conids, fields, opts = {}) {
		const c = list(conids);
		const f = list(fields);
		if (c.length === 0 || f.length === 0)
			throw new TypeError("conids and fields are required");
		const tries = opts.tries ?? 5;
		const delayMs = opts.delayMs ?? 300;
		const deadline = Date.now() + (opts.maxMs ?? 5000);
		const ro = { signal: opts.signal, timeoutMs: opts.timeoutMs,
		    query: { conids: c.join(","), fields: f.join(",") } };
		let ans;
		for (let n = 1; ; n++) {
			ans = await this.request("GET", "/iserver/marketdata/snapshot", ro);
			if (snapshotReady(ans, c, f) || n >= tries || Date.now() + delayMs > deadline)
				return ans;
			await sleep(delayMs, opts.signal);
		}
	}

	/**
	 * GET /iserver/marketdata/history?conid=&period=&bar=
	 * @param {string|number} conid
	 * @param {{period?: string, bar?: string, exchange?: string,
	 *   outsideRth?: boolean, startTime?: string, signal?: AbortSignal,
	 *   timeoutMs?: number}} [opts]
	 */
	async history(conid, opts = {}) {
		const { period, bar, exchange, outsideRth, startTime, ...ro } = opts;
		seg(conid, "conid");
		return this.request("GET", "/iserver/marketdata/history", { ...ro,
		    query: { conid: String(conid), period: period ?? "1d",
		    bar: bar ?? "5min", exchange, outsideRth, startTime } });
	}

	/**
	 * A WebSocket to brokerd's `/ws` (SPEC §7), over the same Unix socket or
	 * TCP address and with the same key as the requests. Subscriptions are
	 * kept and sent again after every reconnect. See BridgeStream.
	 * @param {StreamOptions} [opts]
	 * @returns {BridgeStream}
	 */
	stream(opts = {}) {
		return new BridgeStream(this, opts);
	}

	/**
	 * GET /stream?... (Server-Sent Events) as a Web ReadableStream of
	 * brokerd's bytes, for a server that relays them (the Next.js route).
	 * Resolves once brokerd answered 200; rejects with BridgeError on an
	 * HTTP status >= 400. Aborting `signal` ends the stream.
	 * @param {Record<string, string|number|Array<string|number>>} query
	 *   e.g. {smd: ["265598:31,84"], sor: 1}
	 * @param {{signal?: AbortSignal, timeoutMs?: number}} [opts]
	 * @returns {Promise<ReadableStream<Uint8Array>>}
	 */
	eventStream(query, opts = {}) {
		// `smd=265598:31,84` as SPEC §7 writes it: ':' and ',' are legal in
		// a query (RFC 3986) and stay readable in brokerd's log.
		const enc = (x) => encodeURIComponent(String(x)).replace(/%3A/gi, ":").replace(/%2C/gi, ",");
		const parts = [];
		for (const [k, v] of Object.entries(query ?? {}))
			for (const one of Array.isArray(v) ? v : [v])
				parts.push(enc(k) + "=" + enc(one));
		const s = parts.join("&");
		const path = this._base + "/stream" + (s ? "?" + s : "");
		const headers = { accept: "text/event-stream", host: this._hostHeader };
		if (this._key)
			headers["x-bridge-key"] = this._key;
		const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
		const signal = opts.signal;
		return new Promise((resolve, reject) => {
			if (signal?.aborted) {
				reject(abortError());
				return;
			}
			const req = this._mod.request(this._target({ method: "GET", path, headers, agent: false }));
			let settled = false;
			const timer = setTimeout(() => {
				fail(new BridgeError(`GET ${path}: no answer within ${timeoutMs} ms`, { code: "timeout" }));
				req.destroy();
			}, timeoutMs);
			const onAbort = () => {
				fail(abortError());
				req.destroy();
			};
			signal?.addEventListener("abort", onAbort, { once: true });
			function fail(e) {
				if (settled)
					return;
				settled = true;
				clearTimeout(timer);
				signal?.removeEventListener("abort", onAbort);
				reject(e);
			}
			req.on("error", (err) => fail(new BridgeError(`GET ${path}: brokerd unreachable (${err.code ?? err.message})`,
			    { code: "unreachable", cause: err })));
			req.on("response", (res) => {
				clearTimeout(timer);
				if (res.statusCode !== 200) {
					const chunks = [];
					res.on("data", (c) => chunks.push(c));
					res.on("end", () => {
						try {
							decode("GET", path, res, Buffer.concat(chunks));
							fail(new BridgeError(`GET ${path}: HTTP ${res.statusCode}, not a stream`,
							    { status: res.statusCode, code: "bad_response" }));
						} catch (e) {
							fail(e);
						}
					});
					res.on("error", (err) => fail(new BridgeError(`GET ${path}: answer cut short`,
					    { code: "unreachable", cause: err })));
					return;
				}
				settled = true;
				// The signal now ends the stream instead of the request.
				signal?.removeEventListener("abort", onAbort);
				let ctl = null;
				const end = () => {
					signal?.removeEventListener("abort", end);
					res.destroy();
					try {
						ctl?.close();
					} catch {
						// already closed or errored
					}
				};
				signal?.addEventListener("abort", end, { once: true });
				resolve(new ReadableStream({
					start(c) {
						ctl = c;
						res.on("data", (chunk) => {
							c.enqueue(new Uint8Array(chunk));
							if (c.desiredSize !== null && c.desiredSize <= 0)
								res.pause();
						});
						res.on("end", end);
						res.on("close", end);
						res.on("error", end);
					},
					pull() {
						res.resume();
					},
					cancel() {
						end();
					},
				}, { highWaterMark: 64 }));
			});
			req.end();
		});
	}

	_target(o) {
		if (this.socketPath !== null)
			o.socketPath = this.socketPath;
		else {
			o.host = this._host;
			o.port = this._port;
		}
		return o;
	}
}

function snapshotReady(ans, conids, fields) {
	if (!Array.isArray(ans))
		return true;
	for (const c of conids) {
		const row = ans.find((r) => r && String(r.conid) === c);
		if (!row || !fields.some((f) => row[f] !== undefined))
			return false;
	}
	return true;
}

// The Gateway sometimes refuses an order with 200 {"error": "..."}.
function rejected(ans) {
	const first = Array.isArray(ans) ? ans[0] : ans;
	if (first && typeof first === "object" && typeof first.error === "string")
		throw new BridgeError(`order rejected: ${first.error}`,
		    { status: 200, code: "order_rejected", body: ans });
}

export default Bridge;
