import Foundation
import Glibc
import LifeboatCore
import LifeboatIO
import Synchronization

/// A real `redis-server` on 127.0.0.1 for one test, in a temporary directory of its own (its
/// `dir`, holding `redis.conf`, `log` and the RDB file `dump.rdb`), on a free port, with no
/// automatic saves (`save ""`).
///
/// `cli` runs `redis-cli` against it (as the default user, with the password, over TLS when
/// the server has it), so the tests check the data with Redis's own client, not Lifeboat's.
/// `stop()` shuts it down and removes its directory; it also runs when the object goes away.
/// A missing `redis-server` or `redis-cli` is an error, never a silent skip.
public final class RedisServer: Sendable {
    /// The port: the TLS port when the server has TLS (it then has no plain port).
    public let port: Int
    public let directory: String
    /// The default user's password (`requirepass`), if any.
    public let password: String?
    /// The server's TLS files, when it listens with TLS only.
    public let tls: TestCertificates?
    private let child: ChildProcess
    private let stopped = Mutex(false)

    private init(port: Int, directory: String, password: String?, tls: TestCertificates?, child: ChildProcess) {
        self.port = port
        self.directory = directory
        self.password = password
        self.tls = tls
        self.child = child
    }

    deinit { stop() }

    /// The file the server saves into.
    public var rdbPath: String { directory + "/dump.rdb" }

    /// Starts a server. `settings` are redis.conf lines (`"repl-diskless-sync no"`, `"user
    /// backup on >pw ~* +info"`); `rdb` is copied in as `dump.rdb` first, for the server to
    /// load; `tls` makes it listen with TLS only, asking clients for a certificate.
    public static func start(password: String? = nil, settings: [String] = [], rdb: String? = nil,
                             tls: TestCertificates? = nil) throws -> RedisServer {
        let server = try requireProgram("redis-server", in: programDirectories, hint: installHint)
        _ = try requireProgram("redis-cli", in: programDirectories, hint: installHint)
        let directory = try TemporaryDirectory("lifeboat-redis").path
        do {
            if let rdb { try FileManager.default.copyItem(atPath: rdb, toPath: directory + "/dump.rdb") }
            var lastLog = ""
            for _ in 0..<3 {
                let port = try freeLoopbackPort()
                var lines = [
                    "bind 127.0.0.1", "dir \(directory)", "dbfilename dump.rdb", "save \"\"", "appendonly no",
                    "daemonize no", "logfile \(directory)/log", "loglevel notice", "protected-mode no",
                ]
                if let tls {
                    lines += ["port 0", "tls-port \(port)", "tls-cert-file \(tls.serverCertificate)", "tls-key-file \(tls.serverKey)",
                              "tls-ca-cert-file \(tls.caCertificate)", "tls-auth-clients yes"]
                } else {
                    lines.append("port \(port)")
                }
                if let password { lines.append("requirepass \(password)") }
                lines += settings
                let config = directory + "/redis.conf"
                try (lines.joined(separator: "\n") + "\n").write(toFile: config, atomically: true, encoding: .utf8)
                _ = unlink(directory + "/log")
                let child = try ChildProcess.spawn(server, [config], stdin: .null, stdout: .null)
                let deadline = Date(timeIntervalSinceNow: 30)
                while Date() < deadline {
                    let log = (try? String(contentsOfFile: directory + "/log", encoding: .utf8)) ?? ""
                    if log.contains("Ready to accept connections") {
                        return RedisServer(port: port, directory: directory, password: password, tls: tls, child: child)
                    }
                    if log.contains("# ") && (log.contains("Address already in use") || log.contains("Failed listening")) { break }
                    lastLog = log
                    usleep(20_000)
                }
                child.terminate()
                _ = try? child.wait()
                lastLog = ((try? String(contentsOfFile: directory + "/log", encoding: .utf8)) ?? lastLog) + child.stderrText
            }
            throw LifeboatError(.process, "unable to start the Redis test server in \(directory); its log:\n\(lastLog)")
        } catch {
            try? FileManager.default.removeItem(atPath: directory)  // the test's own scratch directory; the cause is thrown
            throw error
        }
    }

    static let programDirectories = ["/usr/bin", "/usr/local/bin", "/usr/sbin"]
    static let installHint = "Install Redis (apt-get install redis-server; it brings redis-tools) and run the tests again."

    /// `redis-server --version`'s version ("7.0.15").
    public static func version() throws -> String {
        let server = try requireProgram("redis-server", in: programDirectories, hint: installHint)
        let output = try ChildProcess.run(server, ["--version"]).stdout
        guard let range = output.range(of: "v=") else { return output }
        return String(output[range.upperBound...].prefix { $0 != " " })
    }

    /// Runs `redis-cli` with the arguments against this server and returns its output (raw,
    /// one line per value) without the final newline. `user`/`password` log in as another
    /// user; by default the default user with the server's password.
    @discardableResult
    public func cli(_ arguments: [String], user: String? = nil, password: String? = nil) throws -> String {
        let program = try requireProgram("redis-cli", in: Self.programDirectories, hint: Self.installHint)
        var options = ["-h", "127.0.0.1", "-p", "\(port)", "--no-auth-warning"]
        if let user { options += ["--user", user] }
        if let secret = password ?? self.password { options += ["-a", secret] }
        if let tls {
            options += ["--tls", "--cacert", tls.caCertificate, "--cert", tls.clientCertificate, "--key", tls.clientKey]
        }
        let result = try ChildProcess.run(program, options + arguments)
        guard result.status.isSuccess, !result.stdout.hasPrefix("ERR"), !result.stdout.hasPrefix("WRONGPASS"), !result.stdout.hasPrefix("NOAUTH") else {
            throw LifeboatError(.process, "redis-cli \(arguments.joined(separator: " ")) on port \(port) \(result.status): \(result.stdout)\(result.stderr)")
        }
        var output = result.stdout
        if output.hasSuffix("\n") { output.removeLast() }
        return output
    }

    /// What the server wrote to its log so far.
    public func log() -> String {
        (try? String(contentsOfFile: directory + "/log", encoding: .utf8)) ?? ""
    }

    /// `INFO persistence` (or another section) as fields.
    public func info(_ section: String) throws -> [String: String] {
        RedisInfo.fields(try cli(["INFO", section]))
    }

    /// Stops the server (SIGTERM: with `save ""` it exits without saving) and removes its
    /// directory. Does nothing the second time.
    public func stop() {
        let alreadyStopped = stopped.withLock { stopped in
            defer { stopped = true }
            return stopped
        }
        if alreadyStopped { return }
        child.stop(grace: 5)
        _ = try? child.wait()  // at the end of a test: nothing to do about a failure
        guard directory.hasPrefix("/tmp/lifeboat-redis") else { return }
        try? FileManager.default.removeItem(atPath: directory)  // the test's own scratch directory
    }
}

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, made with
/// `openssl` (P-256 keys) in a directory of their own.
public struct TestCertificates: Sendable {
    public let directory: String
    public var caCertificate: String { directory + "/ca.crt" }
    public var serverCertificate: String { directory + "/server.crt" }
    public var serverKey: String { directory + "/server.key" }
    public var clientCertificate: String { directory + "/client.crt" }
    public var clientKey: String { directory + "/client.key" }

    /// Makes them in `directory` (which must exist). `caName` tells two CAs apart.
    public static func make(in directory: String, caName: String = "lifeboat-test-ca") throws -> TestCertificates {
        let openssl = try requireProgram("openssl", in: ["/usr/bin", "/usr/local/bin"],
                                         hint: "Install OpenSSL (apt-get install openssl) and run the tests again.")
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        func run(_ arguments: [String]) throws {
            let result = try ChildProcess.run(openssl, arguments, workingDirectory: directory)
            guard result.status.isSuccess else {
                throw LifeboatError(.process, "openssl \(arguments.joined(separator: " ")) \(result.status): \(result.stderr)")
            }
        }
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(toFile: directory + "/server.ext", atomically: true, encoding: .utf8)
        try "extendedKeyUsage=clientAuth\n".write(toFile: directory + "/client.ext", atomically: true, encoding: .utf8)
        try run(["req", "-x509"] + key + ["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=\(caName)"])
        for name in ["server", "client"] {
            try run(["req"] + key + ["-keyout", "\(name).key", "-out", "\(name).csr", "-subj", "/CN=\(name == "server" ? "localhost" : "lifeboat-backup")"])
            try run(["x509", "-req", "-in", "\(name).csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                     "-out", "\(name).crt", "-days", "2", "-extfile", "\(name).ext"])
        }
        return TestCertificates(directory: directory)
    }
}
