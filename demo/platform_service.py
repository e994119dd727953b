#!/usr/bin/env python3
"""The demo's stand-in for the platform's services: one small HTTP server whose health
endpoints answer from the real PostgreSQL, S3 server and Redis the demo started, as the hub,
the registry and MinIO do in production (runbooks/platform-recovery.yaml checks them).

    GET /health              the hub: {"status": "healthy|degraded|unhealthy", "checks": {...}}
                             200 when healthy, 503 otherwise. checks: postgres (the mcphub
                             database answers and holds its projects), s3 (every bucket lists
                             at least one object), redis (PING; a cache, so only 'degraded').
    GET /healthz             the registry: 200 when the mcp_registry database answers, else 503.
    GET /minio/health/live   MinIO's liveness URL, which the demo's S3 server (moto) does not
                             serve: 200 when the S3 endpoint answers a signed ListBuckets.

It keeps no state between requests, so SIGHUP (what the runbook's restart step sends in the
demo) only logs that it was restarted. It prints one JSON line, {"port": N}, once it listens,
writes its pid to --pidfile, and stops on SIGTERM or, with --stop-on-stdin-eof, when its
standard input closes (as the test fixtures do). Python's standard library, psql and boto3.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
from botocore.config import Config


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--pg", required=True,
                        help="libpq conninfo of the server without dbname (the password in PGPASSWORD)")
    parser.add_argument("--psql", default="psql", help="the psql program")
    parser.add_argument("--s3-endpoint", required=True)
    parser.add_argument("--s3-region", default="us-east-1")
    parser.add_argument("--bucket", action="append", default=[], help="a bucket the hub needs (repeatable)")
    parser.add_argument("--redis", default="127.0.0.1:6379", help="host:port")
    parser.add_argument("--pidfile")
    parser.add_argument("--stop-on-stdin-eof", action="store_true")
    return parser.parse_args()


class Platform:
    """The checks, each returning 'ok' or what is wrong."""

    def __init__(self, args):
        self.args = args
        # The key comes from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
        self.s3 = boto3.client("s3", endpoint_url=args.s3_endpoint, region_name=args.s3_region,
                               config=Config(retries={"max_attempts": 1}, connect_timeout=3, read_timeout=5))

    def query(self, database, sql):
        try:
            result = subprocess.run(
                [self.args.psql, "--no-psqlrc", "-At", "--no-password", "--set=ON_ERROR_STOP=1",
                 f"--dbname={self.args.pg} dbname={database} connect_timeout=3", "-c", sql],
                capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as error:
            return None, str(error)
        if result.returncode != 0:
            return None, (result.stderr.strip().splitlines() or ["psql failed"])[-1]
        return result.stdout.strip(), None

    def postgres(self):
        rows, error = self.query("mcphub", "select count(*) from projects")
        if error:
            return f"down ({error})"
        return "ok" if int(rows) > 0 else "empty (no projects)"

    def registry(self):
        _, error = self.query("mcp_registry", "select 1")
        return f"down ({error})" if error else "ok"

    def buckets(self):
        problems = []
        for bucket in self.args.bucket:
            try:
                if self.s3.list_objects_v2(Bucket=bucket, MaxKeys=1).get("KeyCount", 0) == 0:
                    problems.append(f"{bucket} is empty")
            except Exception as error:  # noqa: BLE001 - any failure is the check's answer
                problems.append(f"{bucket}: {error}")
        return "ok" if not problems else "; ".join(problems)

    def s3_live(self):
        try:
            self.s3.list_buckets()
            return "ok"
        except Exception as error:  # noqa: BLE001
            return f"down ({error})"

    def redis(self):
        host, _, port = self.args.redis.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=3) as connection:
                connection.sendall(b"PING\r\n")
                answer = connection.recv(64)
        except OSError as error:
            return f"down ({error.strerror or error})"
        return "ok" if answer.startswith(b"+PONG") else f"answered {answer!r}"


def make_handler(platform):
    class Handler(BaseHTTPRequestHandler):
        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - the name http.server calls
            if self.path == "/health":
                checks = {"postgres": platform.postgres(), "s3": platform.buckets(), "redis": platform.redis()}
                if checks["postgres"] != "ok" or checks["s3"] != "ok":
                    status = "unhealthy"
                elif checks["redis"] != "ok":
                    status = "degraded"
                else:
                    status = "healthy"
                self.answer(200 if status == "healthy" else 503, {"status": status, "checks": checks})
            elif self.path == "/healthz":
                registry = platform.registry()
                self.answer(200 if registry == "ok" else 503, {"status": "ok" if registry == "ok" else registry})
            elif self.path == "/minio/health/live":
                live = platform.s3_live()
                self.answer(200 if live == "ok" else 503, {"status": "ok" if live == "ok" else live})
            else:
                self.answer(404, {"error": f"no such path: {self.path}"})

        def log_message(self, format, *args):  # noqa: A002 - http.server's signature
            sys.stderr.write("platform-service: %s\n" % (format % args))

    return Handler


def main():
    args = parse_arguments()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(Platform(args)))
    server.daemon_threads = True

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, lambda *_: sys.stderr.write("platform-service: restarted (SIGHUP)\n"))
    if args.pidfile:
        with open(args.pidfile, "w") as file:
            file.write(f"{os.getpid()}\n")
    if args.stop_on_stdin_eof:
        threading.Thread(target=lambda: (sys.stdin.read(), stop()), daemon=True).start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
