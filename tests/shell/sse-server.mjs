// A tiny Server-Sent Events server for the ibkr-stream tests, in the format
// of brokerd's GET /stream (SPEC section 7): listens on the Unix socket given
// as argv[2] and on 127.0.0.1 (port chosen by the OS), prints one JSON line
// {"port":N,"socket":PATH} once both listen.  GET /stream answers
// text/event-stream: first a `system` event describing the request (query,
// key header, via), then for each smd conid a tick without "topic" in its
// data, a `sor` message split over two data lines with CRLF endings, keep-alive
// comments; then it ends, unless spl=1 is asked: then it stays open and
// sends a P&L message every 100 ms.  ssd=ERRNNN answers NNN with a
// brokerd-style JSON error instead, and ssd=RAW a 200 that is no stream.
import http from 'node:http';
import fs from 'node:fs';

const sock = process.argv[2];
try { fs.unlinkSync(sock); } catch {}

function handler(req, res) {
	const u = new URL(req.url, 'http://x');
	const via = req.socket.remotePort === undefined ? 'unix' : 'tcp';
	const m = /^ERR(\d{3})$/.exec(u.searchParams.get('ssd') ?? '');
	const status = m ? m[1] : null;
	if (u.searchParams.get('ssd') === 'RAW') {
		res.writeHead(200, { 'content-type': 'text/plain' });
		res.end('plain\n');
		return;
	}
	if (u.pathname !== '/stream' || status) {
		const code = Number(status ?? 404);
		res.writeHead(code, { 'content-type': 'application/json' });
		res.end(JSON.stringify({ error: 'forced_' + code, message: 'forced by test' }));
		return;
	}
	res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
	const sys = { topic: 'system', query: u.search, key: req.headers['x-bridge-key'] ?? null,
	    accept: req.headers.accept, via };
	res.write(': keep-alive\n\n');
	res.write(`event: system\ndata: ${JSON.stringify(sys)}\n\n`);
	for (const v of u.searchParams.getAll('smd')) {
		const [conid, fields] = v.split(':');
		const tick = { conid: Number(conid) };
		for (const f of fields.split(','))
			tick[f] = `${f}.5`;
		res.write(`event: smd+${conid}\ndata: ${JSON.stringify(tick)}\n\n`);
	}
	if (u.searchParams.get('sor') === '1')
		res.write('event: sor\r\ndata: {"topic":"sor",\r\ndata: "args":[{"orderId":7}]}\r\n\r\n');
	res.write(': keep-alive\n\n');
	if (u.searchParams.get('spl') === '1') {
		let n = 0;
		const t = setInterval(() => res.write(`event: spl\ndata: {"topic":"spl","args":{"U1.Core":{"dpl":${n++}}}}\n\n`), 100);
		res.on('close', () => clearInterval(t));
		return;
	}
	res.end();
}

const unix = http.createServer(handler);
const tcp = http.createServer(handler);
let ready = 0;
function up() {
	if (++ready === 2)
		process.stdout.write(JSON.stringify({ port: tcp.address().port, socket: sock }) + '\n');
}
unix.listen(sock, up);
tcp.listen(0, '127.0.0.1', up);
for (const sig of ['SIGTERM', 'SIGINT'])
	process.on(sig, () => { try { fs.unlinkSync(sock); } catch {} process.exit(0); });
