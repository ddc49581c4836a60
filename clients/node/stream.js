// brokerd-client: the streaming client, BridgeStream, a WebSocket to
// brokerd's /ws written on node:http's upgrade (Bridge.stream() makes one).
import { randomBytes, createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import { BridgeError, decode, list } from "./common.js";

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
