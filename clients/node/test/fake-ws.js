// A fake brokerd WebSocket endpoint for the stream tests: node:http's
// "upgrade" on a Unix socket (or 127.0.0.1 port 0) in a temporary folder,
// with just enough RFC 6455 for a server: it checks the handshake and that
// every client frame is masked, records each frame, and lets the test send
// text, fragments, pings and close frames. Each accepted socket is a `conn`
// in `fake.conns`; `fake.onConn(conn)` runs for each new one.
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createHash } from "node:crypto";
import { KEY } from "./fake-brokerd.js";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2)
export function acceptOf(key) {
	return createHash("sha1").update(key + GUID).digest("base64");
}

export function frame(op, payload, fin = true) {
	const p = Buffer.from(payload);
	const len = p.length;
	let h;
	if (len < 126) {
		h = Buffer.from([0, len]);
	} else if (len < 65536) {
		h = Buffer.from([0, 126, len >> 8, len & 255]);
	} else {
		h = Buffer.alloc(10);
		h[1] = 127;
		h.writeUInt32BE(len, 6);
	}
	h[0] = (fin ? 0x80 : 0) | op;
	return Buffer.concat([h, p]);
}

export function closeFrame(code, reason = "") {
	const r = Buffer.from(reason);
	const p = Buffer.alloc(2 + r.length);
	p.writeUInt16BE(code, 0);
	r.copy(p, 2);
	return frame(0x8, p);
}

export async function startWsFake(opts = {}) {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bdc-ws-"));
	const socketPath = opts.socketPath ?? path.join(dir, "brokerd.sock");
	const fake = {
		dir,
		socketPath,
		upgrades: [],	// request heads of every upgrade attempt
		conns: [],
		onConn: null,
		// status to refuse the next upgrades with, e.g. 401
		refuse: 0,
		// true: leave the next upgrades unanswered, their sockets here
		hold: false,
		held: [],
		async stop() {
			for (const c of fake.conns)
				c.sock.destroy();
			for (const h of fake.held)
				h.destroy();
			server.closeAllConnections?.();
			await new Promise((r) => server.close(r));
			fs.rmSync(dir, { recursive: true, force: true });
		},
	};
	const server = http.createServer((req, res) => {
		res.writeHead(404, { "content-type": "application/json" });
		res.end(JSON.stringify({ error: "no_route", message: "only /ws here" }));
	});
	server.on("upgrade", (req, sock) => {
		fake.upgrades.push({ url: req.url, headers: req.headers });
		if (fake.hold) {
			fake.held.push(sock);
			return;
		}
		const refuse = req.headers["x-bridge-key"] !== KEY ? 401 : fake.refuse;
		if (refuse) {
			const body = JSON.stringify({ error: refuse === 401 ? "unauthorized" : "forbidden",
			    message: "refused by the test" });
			sock.end(`HTTP/1.1 ${refuse} Refused\r\ncontent-type: application/json\r\n` +
			    `content-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
			return;
		}
		const accept = acceptOf(req.headers["sec-websocket-key"]);
		sock.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		    `Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
		const conn = {
			sock,
			frames: [],	// {op, text, masked}
			texts: [],
			closed: false,
			waiters: [],
			send(text) {
				sock.write(frame(0x1, text));
			},
			sendJSON(obj) {
				sock.write(frame(0x1, JSON.stringify(obj)));
			},
			raw(buf) {
				sock.write(buf);
			},
			// resolves when pred(conn) holds, checked on every frame
			until(pred, what = "condition") {
				if (pred(conn))
					return Promise.resolve();
				return new Promise((resolve, reject) => {
					const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}: ` +
					    JSON.stringify(conn.texts))), 5000);
					conn.waiters.push(() => {
						if (!pred(conn))
							return false;
						clearTimeout(t);
						resolve();
						return true;
					});
				});
			},
		};
		let buf = Buffer.alloc(0);
		sock.on("data", (d) => {
			buf = Buffer.concat([buf, d]);
			for (;;) {
				if (buf.length < 2)
					break;
				const op = buf[0] & 0x0f;
				const masked = (buf[1] & 0x80) !== 0;
				let len = buf[1] & 0x7f;
				let off = 2;
				if (len === 126) {
					if (buf.length < 4)
						break;
					len = buf.readUInt16BE(2);
					off = 4;
				}
				const need = off + (masked ? 4 : 0) + len;
				if (buf.length < need)
					break;
				let p = Buffer.from(buf.subarray(off + (masked ? 4 : 0), need));
				if (masked) {
					const m = buf.subarray(off, off + 4);
					for (let i = 0; i < p.length; i++)
						p[i] ^= m[i & 3];
				}
				buf = buf.subarray(need);
				const f = { op, masked, payload: p, text: p.toString("utf8") };
				conn.frames.push(f);
				if (op === 0x1)
					conn.texts.push(f.text);
				if (op === 0x8 && !conn.closed) {
					conn.closed = true;
					sock.end(frame(0x8, p.subarray(0, 2)));
				}
			}
			conn.waiters = conn.waiters.filter((w) => !w());
		});
		sock.on("error", () => {});
		sock.on("close", () => {
			conn.gone = true;
			conn.waiters = conn.waiters.filter((w) => !w());
		});
		fake.conns.push(conn);
		fake.onConn?.(conn);
	});
	await new Promise((resolve, reject) => {
		server.once("error", reject);
		if (opts.tcp)
			server.listen(0, "127.0.0.1", resolve);
		else
			server.listen(socketPath, resolve);
	});
	if (opts.tcp)
		fake.url = `http://127.0.0.1:${server.address().port}`;
	return fake;
}

// resolves once fake.conns has n sockets
export async function conns(fake, n) {
	for (let i = 0; i < 500 && fake.conns.length < n; i++)
		await new Promise((r) => setTimeout(r, 10));
	if (fake.conns.length < n)
		throw new Error(`only ${fake.conns.length} connections, wanted ${n}`);
	return fake.conns[n - 1];
}
