#!/usr/bin/env python3
"""A Python 3 standard-library bridge in front of the Gateway, for the benchmark.

It is what brokerd replaces: http.server's ThreadingHTTPServer (one thread per
client connection) checks X-Bridge-Key and forwards GET requests with
http.client.HTTPSConnection and an unverified SSL context (the Gateway's
certificate is self-signed), one kept-alive Gateway connection per thread.

    bridge.py --upstream 127.0.0.1:5000 --key-file FILE [--port 0]

The key comes from a file, never from the command line.  When ready it prints
one line on stdout: {"port": N, "pid": P}.  SIGTERM/SIGINT stop it.
"""

import argparse
import hmac
import http.client
import http.server
import json
import os
import signal
import ssl
import sys
import threading

PREFIX = "/v1/api"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate",
              "proxy-authorization", "te", "trailer", "transfer-encoding",
              "upgrade", "set-cookie", "content-length"}


class Bridge(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive, as wrk expects
    server_version = "bridge.py"
    # Headers and body are two writes: without TCP_NODELAY a small answer
    # waits for the client's delayed ACK (40 ms), which would measure Linux.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # no access log: it would be the bottleneck
        pass

    def _error(self, status, code, message):
        body = json.dumps({"error": code, "message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _gateway(self):
        conn = getattr(self.server.local, "conn", None)
        if conn is None:
            host, port = self.server.upstream
            conn = http.client.HTTPSConnection(
                host, port, context=self.server.ssl_context, timeout=15)
            self.server.local.conn = conn
        return conn

    def _forward(self):
        headers = {"Host": "%s:%d" % self.server.upstream,
                   "User-Agent": "bridge.py"}
        for name in ("Accept", "Content-Type"):
            if self.headers.get(name):
                headers[name] = self.headers[name]
        for attempt in (0, 1):
            conn = self._gateway()
            try:
                conn.request("GET", PREFIX + self.path, headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.getheaders(), resp.read()
            except (OSError, http.client.HTTPException):
                # A kept-alive connection the Gateway closed: reconnect once.
                conn.close()
                self.server.local.conn = None
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    def do_GET(self):
        key = self.headers.get("X-Bridge-Key", "")
        if not hmac.compare_digest(key.encode(), self.server.key):
            self._error(401, "unauthorized", "missing or wrong X-Bridge-Key")
            return
        try:
            status, headers, body = self._forward()
        except (OSError, http.client.HTTPException) as e:
            self._error(502, "gateway_unreachable", str(e))
            return
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128            # the default 5 drops wrk's connects


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the Gateway")
    ap.add_argument("--key-file", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()

    host, _, port = args.upstream.rpartition(":")
    with open(args.key_file, "rb") as f:
        key = f.read().strip()
    if not key:
        sys.exit("bridge.py: empty key file")

    srv = Server(("127.0.0.1", args.port), Bridge)
    srv.upstream = (host, int(port))
    srv.key = key
    srv.local = threading.local()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    srv.ssl_context = ctx

    def stop(signum, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    print(json.dumps({"port": srv.server_address[1], "pid": os.getpid()}),
          flush=True)
    srv.serve_forever()
    srv.server_close()


if __name__ == "__main__":
    main()
