#!/usr/bin/env python3
"""A loopback HTTP proxy that injects faults, for Lifeboat's tests.

It forwards each request to the upstream server (one request per connection: it answers
with `Connection: close`), unless a rule says to fail it. It prints one JSON line on stdout,
{"port": PORT}, then reads commands from stdin, one JSON object per line, answering each
with one JSON line:

    {"rules": [RULE, ...]}   replace the rules          → {"ok": true}
    {"stats": true}          requests seen so far       → {"requests": [[METHOD, PATH, STATUS], ...]}
    {"release": true}        lets every request held by a "hold" rule go on → {"ok": true}
    {"await": {"outcome": "stall", "match": "...", "count": N, "timeout": S}}
                             waits until N requests whose 'METHOD /path?query' holds "match"
                             have that outcome → {"ok": true}, or {"ok": false} after S seconds

A RULE: {"match": "substring of 'METHOD /path?query'" (default: every request),
         "times": N (how many matching requests it applies to; default: all),
         "action": "status" | "reset" | "stall" | "hold" | "flip" | "answer",
         "status": 503 (for "status"), "code": "SlowDown" (the S3 error code in the body),
         "body": "<…/>" (for "answer"), "headers": {"ETag": "…"} (for "answer": more header
         lines), "no_length": true (for "answer": no Content-Length header),
         "before_body": true (for "stall": stall before reading the request body)}

"status" answers with that status and an S3 error document (after reading the request
body); "reset" closes the connection with a TCP reset after reading the request head;
"stall" sends nothing for 30 s, after reading the request body (or before, with
"before_body", so that an upload stalls while it is sent). "hold" records the request as
"held" and keeps it until a "release" command (at most 60 s), then forwards it: a test changes
the server's state while a request is on its way. "flip" forwards the request and flips one
bit in the middle of a 2xx answer's body (recorded as "flip"): a server that returns other
bytes than it stored. "answer" answers 200 with "body" (XML) without asking the server: a
server whose answers are wrong in a way moto's never are. The proxy exits when its stdin
closes.
"""
import json
import socket
import struct
import sys
import threading
import time

lock = threading.Lock()
changed = threading.Condition(lock)
rules = []
seen = []
releases = [0]


def read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def read_body(conn, headers, rest):
    """Reads the request body that follows the head (Content-Length or chunked)."""
    length = headers.get("content-length")
    if length is not None:
        body = rest
        while len(body) < int(length):
            chunk = conn.recv(min(1 << 20, int(length) - len(body)))
            if not chunk:
                break
            body += chunk
        return body
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = rest
        while not body.endswith(b"0\r\n\r\n"):
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            body += chunk
        return body
    return rest


def parse_headers(head):
    lines = head.split(b"\r\n")
    request_line = lines[0].decode("latin-1")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return request_line, headers


def pick_rule(target):
    with lock:
        for rule in rules:
            if rule.get("match", "") in target and rule.get("times", 1 << 30) > 0:
                rule["times"] = rule.get("times", 1 << 30) - 1
                return dict(rule)
    return None


def record(method, path, status):
    with lock:
        seen.append([method, path, status])
        changed.notify_all()


def await_outcome(outcome, match, count, timeout):
    def enough():
        return sum(1 for method, path, status in seen
                   if str(status) == outcome and match in f"{method} {path}") >= count
    with lock:
        return changed.wait_for(enough, timeout)


def handle(conn, upstream):
    try:
        head, rest = read_head(conn)
        if head is None:
            return
        request_line, headers = parse_headers(head)
        method, path, _ = request_line.split(" ", 2)
        rule = pick_rule(f"{method} {path}")
        if rule and rule["action"] == "reset":
            record(method, path, "reset")
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if rule and rule["action"] == "stall" and rule.get("before_body"):
            record(method, path, "stall")
            time.sleep(30)
            return
        body = read_body(conn, headers, rest)
        if rule and rule["action"] == "hold":
            with lock:
                generation = releases[0]
                seen.append([method, path, "held"])
                changed.notify_all()
                changed.wait_for(lambda: releases[0] > generation, 60)
        if rule and rule["action"] == "stall":
            record(method, path, "stall")
            time.sleep(30)
            return
        if rule and rule["action"] == "answer":
            document = rule.get("body", "").encode()
            record(method, path, "answer")
            lines = ["HTTP/1.1 200 OK", "Content-Type: application/xml", "Connection: close"]
            lines += [f"{name}: {value}" for name, value in rule.get("headers", {}).items()]
            if not rule.get("no_length"):
                lines.append(f"Content-Length: {len(document)}")
            conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if method == "HEAD" else document))
            return
        if rule and rule["action"] == "status":
            status = int(rule.get("status", 503))
            code = rule.get("code", "InternalError" if status == 500 else "SlowDown")
            document = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>"
                        f"<Message>injected by the test proxy</Message></Error>").encode()
            record(method, path, status)
            conn.sendall(f"HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\n"
                         f"Content-Length: {len(document)}\r\nConnection: close\r\n\r\n".encode()
                         + (b"" if method == "HEAD" else document))
            return
        # Forward: the request as it came, but with Connection: close both ways.
        lines = head.split(b"\r\n")
        kept = [line for line in lines[1:] if not line.lower().startswith((b"connection:", b"keep-alive:"))]
        forwarded = b"\r\n".join([lines[0]] + kept + [b"Connection: close"]) + b"\r\n\r\n" + body
        if rule and rule["action"] == "flip":
            with socket.create_connection(upstream) as up:
                up.sendall(forwarded)
                response = b""
                while True:
                    chunk = up.recv(1 << 20)
                    if not chunk:
                        break
                    response += chunk
            answer_head, _, answer_body = response.partition(b"\r\n\r\n")
            status = int(answer_head.split(b" ", 2)[1])
            if 200 <= status < 300 and answer_body:
                flipped = bytearray(answer_body)
                flipped[len(flipped) // 2] ^= 0x01
                answer_body = bytes(flipped)
                record(method, path, "flip")
            else:
                record(method, path, status)
            conn.sendall(answer_head + b"\r\n\r\n" + answer_body)
            return
        with socket.create_connection(upstream) as up:
            up.sendall(forwarded)
            response = b""
            while True:
                chunk = up.recv(1 << 20)
                if not chunk:
                    break
                if not response:
                    status_line = chunk.split(b"\r\n", 1)[0].decode("latin-1")
                    record(method, path, int(status_line.split(" ")[1]))
                response += chunk if len(response) < 65536 else b""
                conn.sendall(chunk)
    except OSError:
        pass
    finally:
        conn.close()


def serve(listener, upstream):
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn, upstream), daemon=True).start()


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    upstream = (host, int(port))
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    threading.Thread(target=serve, args=(listener, upstream), daemon=True).start()
    print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if "rules" in command:
            with lock:
                rules[:] = command["rules"]
            print(json.dumps({"ok": True}), flush=True)
        elif "release" in command:
            with lock:
                releases[0] += 1
                changed.notify_all()
            print(json.dumps({"ok": True}), flush=True)
        elif "stats" in command:
            with lock:
                print(json.dumps({"requests": seen}), flush=True)
        elif "await" in command:
            wanted = command["await"]
            ok = await_outcome(str(wanted["outcome"]), wanted.get("match", ""), int(wanted.get("count", 1)),
                               float(wanted.get("timeout", 30)))
            print(json.dumps({"ok": ok}), flush=True)


if __name__ == "__main__":
    main()
