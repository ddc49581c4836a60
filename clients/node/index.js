// brokerd-client: talk to brokerd over its Unix socket (or loopback TCP) as
// easily as with fetch. Zero runtime dependencies; Node >= 18.
import http from "node:http";
import https from "node:https";
import { randomUUID, randomBytes, createHash } from "node:crypto";
import { EventEmitter } from "node:events";

/** Default Unix socket of a packaged brokerd (SPEC §3 listen.unix.path). */
export const DEFAULT_SOCKET = "/run/brokerd/brokerd.sock";

const DEFAULT_TIMEOUT_MS = 20000;
const MAX_REPLIES = 20;

/**
 * Every failure of this client. `status` is the HTTP status, or 0 when no
 * answer came (codes `timeout`, `unreachable`, `aborted`). `code` is
 * brokerd's error code (`rate_limited`, `not_authenticated`, ...), or
 * `gateway_error` when the Gateway's own error came through, or one of the
 * client's codes (`timeout`, `unreachable`, `aborted`, `bad_response`,
 * `order_not_confirmed`, `order_rejected`, `too_many_questions`).
 */
export class BridgeError extends Error {
	/**
	 * @param {string} message
	 * @param {{status?: number, code: string, body?: unknown,
	 *   retryAfterS?: number|null, question?: object, cOID?: string,
	 *   cause?: unknown}} info
	 */
	constructor(message, info) {
		super(message, info.cause === undefined ? undefined : { cause: info.cause });
		this.name = "BridgeError";
		/** @type {number} */
		this.status = info.status ?? 0;
		/** @type {string} */
		this.code = info.code;
		/** @type {unknown} */
		this.body = info.body ?? null;
		/** @type {number|null} seconds from Retry-After, on 429 */
		this.retryAfterS = info.retryAfterS ?? null;
		if (info.question !== undefined)
			this.question = info.question;
		if (info.cOID !== undefined)
			this.cOID = info.cOID;
	}
}

/**
 * A client order id: unique, at most 40 characters, so that IBKR refuses a
 * resent order ("Local order ID=... is already registered") instead of
 * placing it twice.
 * @returns {string}
 */
export function makeCOID() {
	return "bd-" + randomUUID().replace(/-/g, "");
}

function sleep(ms, signal) {
	return new Promise((resolve, reject) => {
		if (signal?.aborted) {
			reject(abortError());
			return;
		}
		const t = setTimeout(() => {
			signal?.removeEventListener("abort", onAbort);
			resolve();
		}, ms);
		function onAbort() {
			clearTimeout(t);
			reject(abortError());
		}
		signal?.addEventListener("abort", onAbort, { once: true });
	});
}

function abortError() {
	return new BridgeError("request aborted", { code: "aborted" });
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

function list(v) {
	return Array.isArray(v) ? v.map(String) : String(v).split(",").map((s) => s.trim()).filter(Boolean);
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

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const OP_CONT = 0x0, OP_TEXT = 0x1, OP_BIN = 0x2, OP_CLOSE = 0x8, OP_PING = 0x9, OP_PONG = 0xa;

/**
 * A close frame's payload: the code, then the reason cut to 123 bytes (a
 * control frame carries at most 125) and never inside a UTF-8 character.
 * @param {number} code
 * @param {string} reason
 * @returns {Buffer}
 */
function closePayload(code, reason) {
	const all = Buffer.from(String(reason));
	let n = Math.min(all.length, 123);
	while (n < all.length && n > 0 && (all[n] & 0xc0) === 0x80)
		n--;
	const p = Buffer.alloc(2 + n);
	p.writeUInt16BE(code, 0);
	all.copy(p, 2, 0, n);
	return p;
}

/**
 * The Gateway's message for one subscription (IBKR.md "WebSocket"), and the
 * key under which it is kept for the replay after a reconnect.
 * @param {string} topic
 * @param {Record<string, any>} a
 * @param {boolean} on
 * @returns {{key: string, text: string}}
 */
function wsMessage(topic, a, on) {
	const json = (o) => JSON.stringify(o);
	const id = (v, what) => {
		const s = String(v ?? "");
		if (!/^[A-Za-z0-9@._-]+$/.test(s))
			throw new TypeError(`${topic}: ${what} is required (letters, digits, @ . _ -)`);
		return s;
	};
	const rest = (drop) => {
		const o = { ...a };
		for (const k of drop)
			delete o[k];
		return o;
	};
	switch (topic) {
	case "smd": {
		const conid = id(a.conid, "conid");
		if (!on)
			return { key: "smd+" + conid, text: `umd+${conid}+{}` };
		const fields = list(a.fields ?? []);
		if (fields.length === 0)
			throw new TypeError("smd: fields are required");
		return { key: "smd+" + conid, text: `smd+${conid}+${json({ ...rest(["conid", "fields"]), fields })}` };
	}
	case "sor":
	case "str":
	case "spl": {
		const off = { sor: "uor", str: "utr", spl: "upl" }[topic];
		return { key: topic, text: on ? `${topic}+${json(a)}` : `${off}+{}` };
	}
	case "ssd":
	case "sld": {
		const acct = id(a.account ?? a.accountId, "account");
		const o = rest(["account", "accountId"]);
		const off = topic === "ssd" ? "usd" : "uld";
		return { key: `${topic}+${acct}`, text: on ? `${topic}+${acct}+${json(o)}` : `${off}+${acct}` };
	}
	case "sbd": {
		const acct = id(a.account ?? a.accountId, "account");
		if (!on)
			return { key: "sbd+" + acct, text: `ubd+${acct}` };
		return { key: "sbd+" + acct, text: `sbd+${acct}+${id(a.conid, "conid")}+${id(a.exchange, "exchange")}` };
	}
	case "smh": {
		if (!on)
			return { key: a.conid !== undefined ? "smh+" + id(a.conid, "conid") : "",
			    text: `umh+${id(a.serverId, "serverId")}` };
		const conid = id(a.conid, "conid");
		return { key: "smh+" + conid, text: `smh+${conid}+${json(rest(["conid"]))}` };
	}
	default:
		throw new TypeError(`unknown topic ${topic}`);
	}
}

/**
 * One WebSocket to brokerd, written on node:http's upgrade (no
 * dependency): RFC 6455 client frames (masked), ping answered with pong,
 * the close handshake, reconnection with backoff (1 s doubling to 30 s by
 * default) that sends every active subscription again. Messages are the
 * Gateway's JSON, parsed; iterate them with `for await`, or listen to the
 * "message" event. Events: "open", "message", "close" (code, reason),
 * "error" (err).
 *
 * While the socket is down the iterator yields one
 * `{topic: "system", client: "disconnected", code, reason}` so that a
 * reader of orders knows to reread them by REST. The iterator ends after
 * close(); it throws BridgeError when the stream ends otherwise (brokerd
 * refused the upgrade with 401/403/404, or the socket closed with
 * `reconnect: false`), with `closeCode` and `closeReason` when a close
 * frame said why (1008: a key removed, or too slow for `sor`/`str`).
 */
export class BridgeStream extends EventEmitter {
	/**
	 * @param {Bridge} bridge
	 * @param {StreamOptions} opts
	 */
	constructor(bridge, opts = {}) {
		super();
		this._bridge = bridge;
		this.path = opts.path ?? "/ws";
		this.reconnect = opts.reconnect ?? true;
		this.minDelayMs = opts.minDelayMs ?? 1000;
		this.maxDelayMs = opts.maxDelayMs ?? 30000;
		this.pingIntervalMs = opts.pingIntervalMs ?? 30000;
		this.maxMessageBytes = opts.maxMessageBytes ?? 16 << 20;
		this.highWaterMark = opts.highWaterMark ?? 1000;
		/** @type {"connecting"|"open"|"closing"|"closed"} */
		this.state = "connecting";
		/** @type {{code: number, reason: string}|null} */
		this.lastClose = null;
		/** Reconnections so far. */
		this.reconnects = 0;
		this._subs = new Map();
		this._smh = new Map();
		this._queue = [];
		this._iterating = false;
		this._waiters = [];
		this._error = null;
		this._sock = null;
		this._req = null;
		this._timer = null;
		this._fails = 0;
		this._closing = null;
		// An "error" event with no listener would throw: errors reach the
		// iterator instead.
		this.on("error", () => {});
		this._connect();
	}

	/**
	 * Subscribe. `smd` {conid, fields}; `sor` {filters?}; `str`
	 * {realtimeUpdatesOnly?, days?}; `spl`; `ssd`/`sld` {account};
	 * `sbd` {account, conid, exchange}; `smh` {conid, period, bar, ...}.
	 * A second `smd` of a conid adds its fields, as on the Gateway.
	 * @param {string} topic
	 * @param {Record<string, unknown>} [args]
	 */
	subscribe(topic, args = {}) {
		const m = wsMessage(topic, args, true);
		if (topic === "smd") {
			const had = this._subs.get(m.key);
			if (had) {
				const fields = [...new Set([...had.fields, ...list(args.fields ?? [])])];
				m.text = `smd+${args.conid}+${JSON.stringify({ ...had.args, ...args, conid: undefined, fields })}`;
				args = { ...had.args, ...args, fields };
			}
			this._subs.set(m.key, { text: m.text, args, fields: list(args.fields ?? []) });
		} else {
			this._subs.set(m.key, { text: m.text, args });
		}
		this._sendText(m.text);
	}

	/**
	 * Unsubscribe (`umd+CONID+{}`, `uor+{}`, `usd+ACCT`, ...). `smh` takes
	 * {serverId} (and its conid, when known).
	 * @param {string} topic
	 * @param {Record<string, unknown>} [args]
	 */
	unsubscribe(topic, args = {}) {
		if (topic === "smh" && args.conid === undefined && args.serverId !== undefined) {
			for (const [conid, sid] of this._smh)
				if (String(sid) === String(args.serverId))
					args = { ...args, conid };
		}
		const m = wsMessage(topic, args, false);
		if (m.key)
			this._subs.delete(m.key);
		this._sendText(m.text);
	}

	/** Active subscriptions, as the messages that replay them. */
	get subscriptions() {
		return [...this._subs.values()].map((s) => s.text);
	}

	/**
	 * Send a raw text message (`tic`, `ech+hb`, ...); not replayed.
	 * @param {string} text
	 */
	send(text) {
		this._sendText(String(text));
	}

	/**
	 * Close with `code` (default 1000) and wait for brokerd's close frame
	 * (at most 2 s); an upgrade still on its way is aborted. No
	 * reconnection follows; the iterator ends.
	 * @param {number} [code]
	 * @param {string} [reason]
	 * @returns {Promise<void>}
	 */
	close(code = 1000, reason = "") {
		if (this._closing)
			return this._closing;
		this.reconnect = false;
		clearTimeout(this._timer);
		this._closing = new Promise((resolve) => {
			const sock = this._sock;
			if (!sock || this.state !== "open") {
				// An upgrade on its way is aborted: nothing may reach
				// brokerd after close().
				this._abortUpgrade();
				if (sock)
					sock.destroy();
				this._finish(null);
				resolve();
				return;
			}
			this.state = "closing";
			const t = setTimeout(() => sock.destroy(), 2000);
			sock.once("close", () => {
				clearTimeout(t);
				resolve();
			});
			this._frame(OP_CLOSE, closePayload(code, reason));
		});
		return this._closing;
	}

	[Symbol.asyncIterator]() {
		this._iterating = true;
		return {
			next: () => {
				if (this._queue.length > 0) {
					const value = this._queue.shift();
					if (this._queue.length < this.highWaterMark / 2)
						this._sock?.resume();
					return Promise.resolve({ value, done: false });
				}
				if (this._error)
					return Promise.reject(this._error);
				if (this.state === "closed")
					return Promise.resolve({ value: undefined, done: true });
				return new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
			},
			return: async () => {
				await this.close();
				return { value: undefined, done: true };
			},
			[Symbol.asyncIterator]() {
				return this;
			},
		};
	}

	_push(msg) {
		this.emit("message", msg);
		// Only an iterator reads the queue: a program that listens to
		// "message" alone must not be paused by it.
		if (!this._iterating)
			return;
		const w = this._waiters.shift();
		if (w) {
			w.resolve({ value: msg, done: false });
			return;
		}
		this._queue.push(msg);
		// A reader that does not keep up slows the socket, so brokerd
		// conflates its market data instead of this process growing.
		if (this._queue.length >= this.highWaterMark)
			this._sock?.pause();
	}

	_finish(err) {
		this.state = "closed";
		clearTimeout(this._timer);
		if (err && !this._error)
			this._error = err;
		for (const w of this._waiters.splice(0)) {
			if (this._queue.length > 0)
				w.resolve({ value: this._queue.shift(), done: false });
			else if (this._error)
				w.reject(this._error);
			else
				w.resolve({ value: undefined, done: true });
		}
	}

	_abortUpgrade() {
		const req = this._req;

		this._req = null;
		if (req) {
			req.removeAllListeners("upgrade");
			req.removeAllListeners("response");
			req.destroy();
		}
	}

	_connect() {
		const b = this._bridge;
		const key = randomBytes(16).toString("base64");
		const headers = { host: b._hostHeader, connection: "Upgrade", upgrade: "websocket",
		    "sec-websocket-version": "13", "sec-websocket-key": key };
		if (b._key)
			headers["x-bridge-key"] = b._key;
		const path = b._base + this.path;
		this.state = "connecting";
		const req = b._mod.request(b._target({ method: "GET", path, headers, agent: false }));
		this._req = req;
		const connectTimer = setTimeout(() => req.destroy(new Error("no answer to the upgrade")),
		    Math.max(b.timeoutMs, 1000));
		req.on("error", (err) => {
			clearTimeout(connectTimer);
			if (this._req === req)
				this._req = null;
			this._dropped(1006, "", new BridgeError(`GET ${path}: brokerd unreachable (${err.code ?? err.message})`,
			    { code: "unreachable", cause: err }));
		});
		req.on("response", (res) => {
			clearTimeout(connectTimer);
			if (this._req === req)
				this._req = null;
			const chunks = [];
			res.on("data", (c) => chunks.push(c));
			res.on("end", () => {
				let err;
				try {
					decode("GET", path, res, Buffer.concat(chunks));
					err = new BridgeError(`GET ${path}: HTTP ${res.statusCode} instead of an upgrade`,
					    { status: res.statusCode, code: "bad_response" });
				} catch (e) {
					err = e;
				}
				// 429 and 5xx pass; a wrong key, scope or path does not.
				const fatal = res.statusCode < 500 && res.statusCode !== 429;
				this._dropped(1006, "", err, fatal);
			});
		});
		req.on("upgrade", (res, sock, head) => {
			clearTimeout(connectTimer);
			if (this._req === req)
				this._req = null;
			const want = createHash("sha1").update(key + WS_GUID).digest("base64");
			if (res.headers["sec-websocket-accept"] !== want) {
				sock.destroy();
				this._dropped(1006, "", new BridgeError(`GET ${path}: bad Sec-WebSocket-Accept`,
				    { status: 101, code: "bad_response" }), true);
				return;
			}
			this._open(sock, head);
		});
		req.end();
	}

	_open(sock, head) {
		this._sock = sock;
		this._buf = head && head.length ? Buffer.from(head) : Buffer.alloc(0);
		this._frags = null;
		this._fragOp = 0;
		this._gotClose = false;
		this._seen = true;
		if (this._closing) {
			sock.destroy();
			return;
		}
		sock.setNoDelay(true);
		this.state = "open";
		// The backoff restarts only once a connection has lasted (see
		// _dropped): one closed at once (1013, too many subscribers)
		// must not be retried every minDelayMs.
		this._openedAt = Date.now();
		this.emit("open");
		for (const s of this._subs.values())
			this._frame(OP_TEXT, Buffer.from(s.text));
		sock.on("data", (d) => {
			this._seen = true;
			this._buf = this._buf.length ? Buffer.concat([this._buf, d]) : d;
			this._parse();
		});
		sock.on("error", () => {});
		sock.on("close", () => {
			clearInterval(this._ping);
			if (this._sock === sock)
				this._sock = null;
			const lc = this.lastClose && this._gotClose ? this.lastClose : { code: 1006, reason: "" };
			this._dropped(lc.code, lc.reason, null);
		});
		this._ping = setInterval(() => {
			// Nothing at all since the last ping: the peer is gone.
			if (!this._seen) {
				sock.destroy();
				return;
			}
			this._seen = false;
			this._frame(OP_PING, Buffer.alloc(0));
		}, this.pingIntervalMs);
		this._ping.unref?.();
		if (this._buf.length)
			this._parse();
	}

	_parse() {
		for (;;) {
			// Nothing counts after a close frame (RFC 6455 §5.5.1).
			if (this._gotClose)
				return;
			const b = this._buf;
			if (b.length < 2)
				return;
			const fin = (b[0] & 0x80) !== 0;
			const op = b[0] & 0x0f;
			const masked = (b[1] & 0x80) !== 0;
			let len = b[1] & 0x7f;
			let off = 2;
			if (len === 126) {
				if (b.length < 4)
					return;
				len = b.readUInt16BE(2);
				off = 4;
			} else if (len === 127) {
				if (b.length < 10)
					return;
				const hi = b.readUInt32BE(2);
				len = hi * 2 ** 32 + b.readUInt32BE(6);
				off = 10;
			}
			if ((b[0] & 0x70) !== 0 || masked)
				return this._fail(1002, "protocol error");
			if (op >= 0x8 && (len > 125 || !fin))
				return this._fail(1002, "bad control frame");
			if (len > this.maxMessageBytes)
				return this._fail(1009, "message too big");
			if (b.length < off + len)
				return;
			const payload = b.subarray(off, off + len);
			this._buf = b.subarray(off + len);
			if (op === OP_PING) {
				this._frame(OP_PONG, payload);
			} else if (op === OP_PONG) {
				// _seen is enough
			} else if (op === OP_CLOSE) {
				const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
				const reason = payload.length > 2 ? payload.subarray(2).toString("utf8") : "";
				this.lastClose = { code, reason };
				this._gotClose = true;
				if (this.state !== "closing")
					this._frame(OP_CLOSE, payload.subarray(0, 2));
				this.state = "closing";
				this._sock?.end();
				return;
			} else if (op === OP_TEXT || op === OP_BIN || op === OP_CONT) {
				if (op === OP_CONT && this._frags === null)
					return this._fail(1002, "continuation without a start");
				if (op !== OP_CONT && this._frags !== null)
					return this._fail(1002, "new message inside a fragmented one");
				if (op !== OP_CONT) {
					this._frags = [];
					this._fragLen = 0;
					this._fragOp = op;
				}
				this._frags.push(Buffer.from(payload));
				this._fragLen += payload.length;
				if (this._fragLen > this.maxMessageBytes)
					return this._fail(1009, "message too big");
				if (fin) {
					const data = Buffer.concat(this._frags);
					const isText = this._fragOp === OP_TEXT;
					this._frags = null;
					if (isText)
						this._message(data);
					if (this._sock === null)
						return;
				}
			} else {
				return this._fail(1002, "unknown opcode");
			}
		}
	}

	_message(data) {
		let text;
		try {
			text = new TextDecoder("utf-8", { fatal: true }).decode(data);
		} catch {
			this._fail(1007, "invalid UTF-8");
			return;
		}
		let msg = text;
		try {
			msg = JSON.parse(text);
		} catch {
			// not JSON: given as the text
		}
		if (msg && typeof msg === "object" && typeof msg.topic === "string" &&
		    msg.topic.startsWith("smh+") && msg.serverId !== undefined)
			this._smh.set(msg.topic.slice(4), msg.serverId);
		this._push(msg);
	}

	_fail(code, reason) {
		this.lastClose = { code, reason };
		this._gotClose = true;
		this._frame(OP_CLOSE, closePayload(code, reason));
		this._sock?.end();
		this._sock?.destroySoon?.();
		const s = this._sock;
		setTimeout(() => s?.destroy(), 1000).unref?.();
		this._buf = Buffer.alloc(0);
	}

	_frame(op, payload) {
		const sock = this._sock;
		if (!sock || sock.destroyed || !sock.writable)
			return false;
		const len = payload.length;
		const hlen = len < 126 ? 2 : (len < 65536 ? 4 : 10);
		const f = Buffer.allocUnsafe(hlen + 4 + len);
		f[0] = 0x80 | op;
		if (len < 126) {
			f[1] = 0x80 | len;
		} else if (len < 65536) {
			f[1] = 0x80 | 126;
			f.writeUInt16BE(len, 2);
		} else {
			f[1] = 0x80 | 127;
			f.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
			f.writeUInt32BE(len >>> 0, 6);
		}
		// RFC 6455 §5.3: every client frame is masked with a fresh key.
		const mask = randomBytes(4);
		mask.copy(f, hlen);
		for (let i = 0; i < len; i++)
			f[hlen + 4 + i] = payload[i] ^ mask[i & 3];
		sock.write(f);
		return true;
	}

	_sendText(text) {
		if (this.state === "open")
			this._frame(OP_TEXT, Buffer.from(text));
		// Otherwise the subscription goes with the replay on open.
	}

	_dropped(code, reason, err, fatal = false) {
		if (this.state === "closed")
			return;
		const wasOpen = this._sock !== null || this.state === "open" || this.state === "closing";
		this._sock = null;
		clearInterval(this._ping);
		if (wasOpen || code !== 1006)
			this.lastClose = { code, reason };
		this.emit("close", code, reason);
		if (err)
			this.emit("error", err);
		if (this._closing) {
			this._finish(null);
			return;
		}
		if (!this.reconnect || fatal) {
			if (!err) {
				err = new BridgeError(`stream closed by brokerd: ${code}${reason ? " " + reason : ""}`,
				    { code: "closed" });
			}
			err.closeCode = code;
			err.closeReason = reason;
			this._finish(err);
			return;
		}
		if (wasOpen)
			this._push({ topic: "system", client: "disconnected", code, reason });
		if (wasOpen && Date.now() - this._openedAt >= this.maxDelayMs)
			this._fails = 0;
		const delay = Math.min(this.maxDelayMs, this.minDelayMs * 2 ** Math.min(this._fails, 30));
		this._fails++;
		this.state = "connecting";
		this._timer = setTimeout(() => {
			this.reconnects++;
			this._connect();
		}, delay);
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

function decode(method, path, res, buf) {
	const ctype = String(res.headers["content-type"] ?? "");
	let body = null;
	if (buf.length > 0) {
		const text = buf.toString("utf8");
		if (/\bjson\b/i.test(ctype)) {
			try {
				body = JSON.parse(text);
			} catch (e) {
				if (res.statusCode < 400)
					throw new BridgeError(`${method} ${path}: answer is not valid JSON`,
					    { status: res.statusCode, code: "bad_response", body: text, cause: e });
				body = text;
			}
		} else {
			body = text;
		}
	}
	if (res.statusCode >= 400) {
		let code = `http_${res.statusCode}`;
		let message = `${method} ${path}: HTTP ${res.statusCode}`;
		if (body && typeof body === "object" && typeof body.error === "string") {
			// brokerd's own errors are {"error":"<code>","message":"..."};
			// a Gateway error passed through is {"error":"<free text>"}.
			if (/^[a-z][a-z0-9_]*$/.test(body.error) && typeof body.message === "string") {
				code = body.error;
				message += ` ${code}: ${body.message}`;
			} else {
				code = "gateway_error";
				message += `: ${body.error}`;
			}
		}
		const ra = Number.parseInt(String(res.headers["retry-after"] ?? ""), 10);
		throw new BridgeError(message, { status: res.statusCode, code, body,
		    retryAfterS: Number.isFinite(ra) ? ra : null });
	}
	return { status: res.statusCode, headers: res.headers, body };
}

export default Bridge;
