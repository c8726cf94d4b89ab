#!/usr/bin/env python3
"""A counting HTTP proxy in front of one registry, for bench/cache.sh.

    countproxy.py UPSTREAM_PORT LISTEN_PORT LOG

Forwards every request to 127.0.0.1:UPSTREAM_PORT and appends one JSON line per request to
LOG: {"m": method, "p": path, "s": status, "up": request body bytes, "down": response body
bytes, "t": when the request line was read (Unix seconds), "ms": until the response was sent,
in milliseconds, proxy included}. The Host header is passed through, so the registry's Location headers name the proxy again.
"""

import http.client
import http.server
import json
import sys
import threading
import time

UPSTREAM = int(sys.argv[1])
LISTEN = int(sys.argv[2])
LOG = open(sys.argv[3], "a", buffering=1)
LOCK = threading.Lock()
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: a response's headers and body go out in separate writes, and with Nagle's
    # algorithm the body waits for the client's delayed ACK of the headers (about 40 ms per
    # request on Linux), which made a build of many small requests look slow.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def handle_one_request(self):
        # A TLS handshake (clients try HTTPS first): an HTTP answer, which Go clients such as
        # BuildKit's take as "plain HTTP here" and retry without TLS.
        if self.rfile.peek(1)[:1] == b"\x16":
            self.wfile.write(b"HTTP/1.0 400 Bad Request\r\n\r\nthis is plain HTTP\n")
            self.close_connection = True
            return
        super().handle_one_request()

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def forward(self):
        started = time.time()
        body = self.read_body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        if body or self.command in ("PUT", "POST", "PATCH"):
            headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=900)
        upstream.request(self.command, self.path, body=body, headers=headers)
        resp = upstream.getresponse()
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        down = 0
        if self.command == "HEAD" or resp.status in (204, 304) or resp.status < 200:
            length = resp.getheader("Content-Length")
            if length is not None:
                self.send_header("Content-Length", length)
            self.end_headers()
        elif resp.getheader("Content-Length") is not None:
            self.send_header("Content-Length", resp.getheader("Content-Length"))
            self.end_headers()
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                self.wfile.write(chunk)
                down += len(chunk)
        else:
            data = resp.read()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            down = len(data)
        upstream.close()
        with LOCK:
            LOG.write(json.dumps({
                "m": self.command, "p": self.path, "s": resp.status, "up": len(body), "down": down,
                "t": round(started, 4), "ms": round((time.time() - started) * 1000, 1),
            }) + "\n")

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = forward


http.server.ThreadingHTTPServer(("127.0.0.1", LISTEN), Handler).serve_forever()
