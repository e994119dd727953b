import Foundation
import Glibc
import LifeboatCore
import Synchronization
import Testing

/// A failure in the test harness itself (a server that would not start, a tool that failed).
struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Facts about where the tests run.
enum TestEnvironment {
    /// True on a continuous-integration runner (`CI` set to anything but "", "0", "false").
    static var isCI: Bool {
        guard let value = ProcessInfo.processInfo.environment["CI"]?.lowercased() else { return false }
        return !value.isEmpty && value != "0" && value != "false"
    }

    /// The first executable `name` on PATH, or nil.
    static func program(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// The program, or an error that fails the test saying how to install it.
    static func requireProgram(_ name: String, package: String) throws -> String {
        guard let path = program(name) else {
            throw HarnessError("required program '\(name)' is not on PATH; install \(package) and run the tests again")
        }
        return path
    }

    /// Whether tests that need `name` run: when it is installed, and always on CI (where a
    /// missing program then fails the test instead of skipping it).
    static func canRun(needing names: String...) -> Bool {
        isCI || names.allSatisfy { program($0) != nil }
    }
}

/// Runs blocking work on a thread of its own (never on the cooperative pool, which the
/// client's blocking calls must not hold) and returns its result.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.start()
    }
}

/// A scratch directory under /tmp, removed by `remove()`.
final class ScratchDirectory: Sendable {
    let path: String

    init() throws {
        var template = Array("/tmp/lifeboat-http-test-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw HarnessError("mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        path = String(cString: created)
    }

    func remove() {
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            Issue.record("unable to remove the scratch directory \(path): \(error)")
        }
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }
}

/// A real HTTP/1.1 server on 127.0.0.1 (Python's `ThreadingHTTPServer`, keep-alive on), in a
/// child process, for one test. `stop()` ends it.
///
/// Endpoints (any method; a request body is always read, and hashed):
/// - `/echo`: JSON `{method, path, headers: [[name, value]], length, sha256}` of the request.
/// - `/bytes/N`: N bytes of the test pattern (byte i is i % 251), with Content-Length.
/// - `/pattern-sha256/N`: the hex SHA-256 of the first N bytes of the pattern.
/// - `/status/N`: status N with an S3-style XML error body (3xx with a Location).
/// - `/headers`: a response with a repeated header.
/// - `/slow/S`: headers and 10 of 1,000,000 bytes, then nothing for S seconds.
/// - `/reset`: the connection is reset (RST) without a response.
/// - `/close`: the connection is closed (FIN) without a response.
/// - `/connections`: how many TCP connections the server has accepted.
final class TestHTTPServer: Sendable {
    static let script = #"""
    import hashlib, json, os, signal, socket, ssl, struct, sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    PERIOD = 251
    BLOCK = bytes(i % PERIOD for i in range(PERIOD * 256))  # a whole number of periods

    def pattern_chunks(n):
        while n > 0:
            chunk = BLOCK[:min(n, len(BLOCK))]
            n -= len(chunk)
            yield chunk

    lock = threading.Lock()
    connections = 0

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            global connections
            with lock:
                connections += 1
            super().setup()

        def log_message(self, *args):
            pass

        def read_body(self):
            digest = hashlib.sha256()
            remaining = int(self.headers.get("Content-Length") or 0)
            total = 0
            while remaining > 0:
                data = self.rfile.read(min(remaining, 1 << 20))
                if not data:
                    break
                digest.update(data)
                remaining -= len(data)
                total += len(data)
            return total, digest.hexdigest()

        def reply(self, status, body, content_type="application/octet-stream", extra=()):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in extra:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def handle_any(self):
            path = self.path.partition("?")[0]
            parts = path.strip("/").split("/")
            length, sha = self.read_body()
            if parts[0] == "echo":
                body = json.dumps({
                    "method": self.command, "path": self.path,
                    "headers": [[k, v] for k, v in self.headers.items()],
                    "length": length, "sha256": sha,
                }).encode()
                self.reply(200, body, "application/json")
            elif parts[0] == "bytes":
                n = int(parts[1])
                self.send_response(200)
                self.send_header("Content-Length", str(n))
                self.end_headers()
                if self.command != "HEAD":
                    for chunk in pattern_chunks(n):
                        self.wfile.write(chunk)
            elif parts[0] == "pattern-sha256":
                digest = hashlib.sha256()
                for chunk in pattern_chunks(int(parts[1])):
                    digest.update(chunk)
                self.reply(200, digest.hexdigest().encode(), "text/plain")
            elif parts[0] == "status":
                code = int(parts[1])
                body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>Status%d</Code>"
                        "<Message>status %d as asked</Message></Error>" % (code, code)).encode()
                extra = [("Location", "/echo")] if 300 <= code < 400 else []
                self.reply(code, body, "application/xml", extra)
            elif parts[0] == "headers":
                self.reply(200, b"ok", "text/plain",
                           [("X-Multi", "one"), ("X-Multi", "two"), ("x-amz-request-id", "R1")])
            elif parts[0] == "slow":
                self.send_response(200)
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                self.wfile.write(b"x" * 10)
                self.wfile.flush()
                time.sleep(float(parts[1]))
                self.close_connection = True
            elif parts[0] == "reset":
                # SO_LINGER 0 then close: the peer gets a TCP RST and no response.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                os.close(self.connection.detach())
            elif parts[0] == "close":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif parts[0] == "connections":
                with lock:
                    count = connections
                self.reply(200, str(count).encode(), "text/plain")
            else:
                self.reply(404, b"no such endpoint", "text/plain")

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = handle_any

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # connections the tests break on purpose

    def exit_when_stdin_closes():
        # The test process holds the other end: when it stops the server, or dies, we go too.
        sys.stdin.buffer.read()
        os._exit(0)

    def main():
        # A child may inherit blocked signals from the thread that started it.
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
        server = Server(("127.0.0.1", 0), Handler)
        if len(sys.argv) == 3:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(sys.argv[1], sys.argv[2])
            server.socket = context.wrap_socket(server.socket, server_side=True)
        print(server.server_address[1], flush=True)
        server.serve_forever()

    main()
    """#

    let port: Int
    let scheme: String
    private let process: Process
    /// The server's standard input: closing it stops the server (see the script).
    private let input: Pipe
    private let directory: ScratchDirectory

    /// Starts a server; with `tls` (certificate and key PEM files) it speaks HTTPS.
    init(tls: (certificate: String, key: String)? = nil) throws {
        let python = try TestEnvironment.requireProgram("python3", package: "Python 3")
        directory = try ScratchDirectory()
        let scriptPath = directory.file("server.py")
        try Data(Self.script.utf8).write(to: URL(fileURLWithPath: scriptPath))
        let logPath = directory.file("server.log")
        guard FileManager.default.createFile(atPath: logPath, contents: nil) else {
            throw HarnessError("unable to create \(logPath)")
        }

        process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [scriptPath] + (tls.map { [$0.certificate, $0.key] } ?? [])
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        input = Pipe()
        process.standardInput = input
        try process.run()
        scheme = tls == nil ? "http" : "https"

        // The first line of output is the port.
        var output = Data()
        while !output.contains(UInt8(ascii: "\n")) {
            let data = stdout.fileHandleForReading.availableData
            if data.isEmpty { break }
            output.append(data)
        }
        let line = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let port = Int(line) else {
            Self.end(process, input: input)
            let log: String
            do { log = try String(contentsOfFile: logPath, encoding: .utf8) } catch { log = "(its log is unreadable: \(error))" }
            directory.remove()
            throw HarnessError("the test HTTP server did not start (it printed '\(line)'): \(log)")
        }
        self.port = port
    }

    /// `http://127.0.0.1:PORT` + path.
    func url(_ path: String) -> String { "\(scheme)://127.0.0.1:\(port)\(path)" }

    func stop() {
        Self.end(process, input: input)
        directory.remove()
    }

    /// Closes the server's standard input, which makes it exit; kills it if it has not
    /// within 5 seconds. (Not SIGTERM: a child may have inherited it blocked.)
    private static func end(_ process: Process, input: Pipe) {
        do {
            try input.fileHandleForWriting.close()
        } catch {
            Issue.record("unable to close the test server's standard input: \(error)")
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while process.isRunning, ContinuousClock.now < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// A SHA-256 computed by a separate process (`python3`, hashlib) from bytes written to it as
/// they come: memory stays bounded, and the test target needs no crypto library.
final class StreamingSHA256 {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()

    init() throws {
        let python = try TestEnvironment.requireProgram("python3", package: "Python 3")
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", """
            import hashlib, sys
            h = hashlib.sha256()
            for block in iter(lambda: sys.stdin.buffer.read(1 << 20), b""):
                h.update(block)
            print(h.hexdigest())
            """]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
    }

    func update(_ bytes: UnsafeRawBufferPointer) throws {
        try input.fileHandleForWriting.write(contentsOf: Data(bytes))
    }

    /// The hex digest of everything written.
    func finish() throws -> String {
        try input.fileHandleForWriting.close()
        let data = try output.fileHandleForReading.readToEnd() ?? Data()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw HarnessError("the SHA-256 helper exited with status \(process.terminationStatus)")
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// A self-signed certificate for 127.0.0.1 (and its key), made with `openssl`.
struct SelfSignedCertificate {
    let certificate: String
    let key: String

    init(in directory: ScratchDirectory) throws {
        let openssl = try TestEnvironment.requireProgram("openssl", package: "OpenSSL (the openssl package)")
        certificate = directory.file("cert.pem")
        key = directory.file("key.pem")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: openssl)
        process.arguments = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", certificate,
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw HarnessError("openssl req exited with status \(process.terminationStatus)")
        }
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound to port 0, read, closed).
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = in_addr_t(0x7f00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let result = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length) == 0 ? getsockname(fd, pointer, &length) : -1
        }
    }
    guard result == 0 else { throw HarnessError("bind/getsockname: \(String(cString: strerror(errno)))") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// The test pattern: byte i of a body is i % 251 (the server's `/bytes/N` sends the same).
enum Pattern {
    static let period = 251
    /// One period more than the largest buffer libcurl hands out, so any window fits.
    static let block: [UInt8] = (0..<(period + (2 << 20))).map { UInt8($0 % period) }

    /// Writes the pattern bytes starting at `offset` into `buffer`.
    static func fill(_ buffer: UnsafeMutableRawBufferPointer, offset: Int64) -> Int {
        let count = min(buffer.count, block.count - period)
        let start = Int(offset % Int64(period))
        block.withUnsafeBytes { source in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[start..<(start + count)]))
        }
        return count
    }
}

/// The JSON the server's `/echo` returns.
struct Echo: Decodable {
    let method: String
    let path: String
    let headers: [[String]]
    let length: Int
    let sha256: String

    func values(_ name: String) -> [String] {
        headers.filter { $0.first?.lowercased() == name.lowercased() }.compactMap { $0.last }
    }
}
