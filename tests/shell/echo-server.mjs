// A tiny HTTP server for the ibkr-call tests: listens on the Unix socket
// given as argv[2] and on 127.0.0.1 (port chosen by the OS), prints one JSON
// line {"port":N,"socket":PATH} once both listen, and answers every request
// with JSON describing it.  /status/NNN answers NNN with a brokerd-style error
// body; /slow/MS waits MS milliseconds first; /raw/TEXT answers TEXT as is.
import http from 'node:http';
import fs from 'node:fs';

const sock = process.argv[2];
try { fs.unlinkSync(sock); } catch {}

function handler(req, res) {
	const chunks = [];
	req.on('data', (c) => chunks.push(c));
	req.on('end', () => {
		const body = Buffer.concat(chunks).toString('utf8');
		const via = req.socket.remotePort === undefined ? 'unix' : 'tcp';
		const m = req.url.match(/^\/status\/(\d{3})/);
		if (m) {
			res.writeHead(Number(m[1]), { 'content-type': 'application/json' });
			res.end(JSON.stringify({ error: 'forced_' + m[1], message: 'forced by test' }));
			return;
		}
		const raw = req.url.match(/^\/raw\/(.*)$/);
		if (raw) {
			res.writeHead(200, { 'content-type': 'text/plain' });
			res.end(decodeURIComponent(raw[1]));
			return;
		}
		const slow = req.url.match(/^\/slow\/(\d+)/);
		const delay = slow ? Number(slow[1]) : 0;
		setTimeout(() => {
			res.writeHead(200, { 'content-type': 'application/json' });
			res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body, via }) + '\n');
		}, delay);
	});
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
