#!/usr/bin/env python3
"""A loopback TLS front for Lifeboat's tests: accepts TLS connections with the given
certificate and key and relays the decrypted bytes to a plain upstream server.

Usage: tls_proxy.py CERT KEY UPSTREAM_HOST:PORT. Prints {"port": PORT} when listening and
exits when its stdin closes.
"""
import json
import socket
import ssl
import sys
import threading


def relay(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(listener, context, upstream):
    while True:
        try:
            raw, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=handle, args=(raw, context, upstream), daemon=True).start()


def handle(raw, context, upstream):
    try:
        conn = context.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError):
        raw.close()  # a client that refused the certificate
        return
    try:
        up = socket.create_connection(upstream)
    except OSError:
        conn.close()
        return
    threading.Thread(target=relay, args=(up, conn), daemon=True).start()
    relay(conn, up)


def main():
    cert, key, upstream = sys.argv[1], sys.argv[2], sys.argv[3]
    host, _, port = upstream.rpartition(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    threading.Thread(target=serve, args=(listener, context, (host, int(port))), daemon=True).start()
    print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
    for _ in sys.stdin:
        pass


if __name__ == "__main__":
    main()
