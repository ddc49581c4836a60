// A small fake brokerd for the unit tests: node:http on a Unix socket in a
// temporary folder. Each test sets `fake.handler(req, body) -> [status, json]`
// (or writes the answer itself and returns undefined); every request is
// recorded in `fake.requests`.
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export const KEY = "0123456789abcdef0123456789abcdef";

export async function startFake(opts = {}) {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bdc-"));
	const socketPath = path.join(dir, "brokerd.sock");
	const fake = {
		dir,
		socketPath,
		requests: [],
		connections: 0,
		handler: null,
		async stop() {
			server.closeAllConnections?.();
			await new Promise((r) => server.close(r));
			fs.rmSync(dir, { recursive: true, force: true });
		},
	};
	const server = http.createServer(async (req, res) => {
		const chunks = [];
		for await (const c of req)
			chunks.push(c);
		const text = Buffer.concat(chunks).toString("utf8");
		let body = null;
		if (text.length > 0) {
			try {
				body = JSON.parse(text);
			} catch {
				body = text;
			}
		}
		const u = new URL(req.url, "http://x");
		const rec = { method: req.method, path: u.pathname, query: Object.fromEntries(u.searchParams),
		    headers: req.headers, body, raw: text };
		fake.requests.push(rec);
		if (u.pathname !== "/health" && u.pathname !== "/gateway/auth-status" &&
		    req.headers["x-bridge-key"] !== KEY) {
			send(res, 401, { error: "unauthorized", message: "missing or wrong key" });
			return;
		}
		const out = fake.handler ? await fake.handler(rec, req, res) : undefined;
		if (out === undefined)
			return;
		const [status, json, headers] = out;
		send(res, status, json, headers);
	});
	server.on("connection", () => fake.connections++);
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

export function send(res, status, json, headers = {}) {
	const b = Buffer.from(typeof json === "string" ? json : JSON.stringify(json));
	res.writeHead(status, { "content-type": "application/json", "content-length": b.length, ...headers });
	res.end(b);
}
