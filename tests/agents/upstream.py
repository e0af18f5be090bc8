#!/usr/bin/python3
"""A test upstream for the agents tests and benchmarks: a real HTTP or HTTPS server.

usage: upstream.py ADDR PORT NAME LOG [CERT KEY]

Every request is answered 200 with "hello from NAME <METHOD> <PATH>\n" and recorded in LOG as
one JSON line {"name","method","path","headers":{...},"body_len","body_sha256"}. GET /bulk/N answers N bytes;
POST /v1/messages answers a canned "model" reply ({"edit": "..."}), for the agent stand-in.
Prints "ready" on stdout once listening.
"""
import http.server
import hashlib
import json
import socketserver
import ssl
import sys
import threading

addr, port, name, log = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with lock, open(log, "a") as f:
            f.write(json.dumps({"name": name, "method": self.command, "path": self.path,
                                "headers": {k.lower(): v for k, v in self.headers.items()},
                                "body_len": len(body),
                                "body_sha256": hashlib.sha256(body).hexdigest()}) + "\n")
        if self.path.startswith("/bulk/"):
            size = int(self.path[6:])
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            chunk = b"x" * 65536
            while size > 0:
                k = min(size, len(chunk))
                self.wfile.write(chunk[:k])
                size -= k
            return
        if self.path == "/v1/messages" and self.command == "POST":
            out = json.dumps({"edit": "fixed by the model"}).encode() + b"\n"
        else:
            out = ("hello from %s %s %s\n" % (name, self.command, self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


srv = Server((addr, port), Handler)
if len(sys.argv) > 6:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[5], sys.argv[6])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
