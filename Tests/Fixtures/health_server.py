#!/usr/bin/env python3
"""A service's HTTP health endpoint for Lifeboat's runbook tests, on loopback.

It answers GET PATH with what the test set for PATH last: a status code and a body (JSON
when given as an object, as the platform's services answer: {"status": "healthy|degraded|
unhealthy", "checks": {...}}), 404 for a path never set. Everything else is a command on
standard input, one JSON object a line, answered with one line:

    {"set": "/health", "status": 503, "body": {...}}   -> {"ok": true}
    {"hits": "/health"}                                -> {"hits": N}   (GETs of the path so far)

It prints {"port": N} when ready and serves until its standard input closes.
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

routes = {}
hits = {}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        with lock:
            hits[self.path] = hits.get(self.path, 0) + 1
            route = routes.get(self.path)
        if route is None:
            status, body, kind = 404, b"not found", "text/plain"
        else:
            status, body = route["status"], route["body"]
            if isinstance(body, (dict, list)):
                body, kind = json.dumps(body).encode(), "application/json"
            else:
                body, kind = str(body).encode(), "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        with lock:
            if "set" in command:
                routes[command["set"]] = {"status": command.get("status", 200), "body": command.get("body", "")}
                answer = {"ok": True}
            elif "hits" in command:
                answer = {"hits": hits.get(command["hits"], 0)}
            else:
                answer = {"error": "unknown command"}
        print(json.dumps(answer), flush=True)
    server.shutdown()


if __name__ == "__main__":
    main()
