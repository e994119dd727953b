import Foundation
import LifeboatCore
import LifeboatIO

/// A Python helper from `Tests/Fixtures/` run as a child process that talks JSON lines: it
/// prints one line when ready, takes commands on stdin, and exits when stdin closes — so it
/// never outlives the test process.
public final class PythonFixture: Sendable {
    let child: ChildProcess
    let name: String

    /// The project's `Tests/Fixtures` directory, found from this source file's location.
    public static var fixturesDirectory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Tests/Fixtures").path
    }

    /// The project's top directory.
    public static var projectDirectory: String {
        URL(fileURLWithPath: fixturesDirectory).deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// Starts `Tests/Fixtures/<script>` (or the script at the absolute path `script`) with
    /// python3 and waits for its first line (a JSON object).
    public static func start(_ script: String, _ arguments: [String] = [], environment: [String: String] = [:]) throws -> (PythonFixture, [String: Any]) {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
        let python = try requireProgram("python3", in: path, hint: "Install Python 3 (and, for the S3 server, 'pip install \"moto[server]\" boto3').")
        let child = try ChildProcess.spawn(python, [script.hasPrefix("/") ? script : "\(fixturesDirectory)/\(script)"] + arguments,
                                           environment: environment, stdin: .pipe, stdout: .pipe)
        let fixture = PythonFixture(child: child, name: script)
        do {
            return (fixture, try fixture.readObject())
        } catch {
            fixture.stop()
            throw error
        }
    }

    init(child: ChildProcess, name: String) {
        self.child = child
        self.name = name
    }

    /// The fixture's process id.
    public var pid: Int32 { child.pid }

    deinit { stop() }

    /// Sends one command and returns the fixture's one-line answer.
    @discardableResult
    public func send(_ command: [String: Any]) throws -> [String: Any] {
        var line = try JSONSerialization.data(withJSONObject: command)
        line.append(UInt8(ascii: "\n"))
        try line.withUnsafeBytes { try child.writeStdin($0) }
        return try readObject()
    }

    func readObject() throws -> [String: Any] {
        var line: [UInt8] = []
        var byte = [UInt8](repeating: 0, count: 1)
        while true {
            let n = try byte.withUnsafeMutableBytes { try child.readStdout(into: $0) }
            if n == 0 {
                throw TestSupportError("\(name) ended before answering: \(child.stderrText)")
            }
            if byte[0] == UInt8(ascii: "\n") { break }
            line.append(byte[0])
        }
        guard let object = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
            throw TestSupportError("\(name) printed something that is not a JSON object: \(String(decoding: line, as: UTF8.self))")
        }
        return object
    }

    /// Closes the fixture's stdin (it exits), and waits for it.
    public func stop() {
        child.closeStdin()
        child.terminate()
        _ = try? child.wait()  // a fixture that is going away; its status says nothing about the test
    }
}

/// moto's S3 server on a free loopback port, with SigV4 checking switched on: every request
/// must be signed with `credentials`' key (an IAM user's, made by `Tests/Fixtures/s3_server.py`).
public final class S3TestServer: Sendable {
    public let endpoint: String
    public let region: String
    public let accessKeyID: String
    public let secretAccessKey: String
    /// A key whose user may only read (s3:Get*, s3:List*).
    public let readerCredentials: (accessKeyID: String, secretAccessKey: String)
    let fixture: PythonFixture

    public static func start(buckets: [String] = ["lifeboat-test"]) throws -> S3TestServer {
        let (fixture, ready) = try PythonFixture.start("s3_server.py", buckets.flatMap { ["--bucket", $0] })
        guard let endpoint = ready["endpoint"] as? String, let region = ready["region"] as? String,
              let key = ready["access_key_id"] as? String, let secret = ready["secret_access_key"] as? String,
              let readerKey = ready["reader_access_key_id"] as? String, let readerSecret = ready["reader_secret_access_key"] as? String
        else { throw TestSupportError("s3_server.py answered \(ready)") }
        return S3TestServer(endpoint: endpoint, region: region, accessKeyID: key, secretAccessKey: secret,
                            readerCredentials: (readerKey, readerSecret), fixture: fixture)
    }

    init(endpoint: String, region: String, accessKeyID: String, secretAccessKey: String,
         readerCredentials: (accessKeyID: String, secretAccessKey: String), fixture: PythonFixture) {
        self.endpoint = endpoint
        self.region = region
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.readerCredentials = readerCredentials
        self.fixture = fixture
    }

    public var port: Int { Int(endpoint.split(separator: ":").last ?? "") ?? 0 }

    public func stop() { fixture.stop() }
}

/// `Tests/Fixtures/fault_proxy.py`: a loopback proxy in front of a server that fails requests
/// on command (status codes, resets, stalls) and counts what it saw.
public final class FaultProxy: Sendable {
    public let port: Int
    let fixture: PythonFixture

    public struct Rule: Sendable {
        public var match: String
        public var times: Int?
        public var action: String
        public var status: Int?
        public var code: String?
        public var beforeBody = false
        public var body: String?
        public var headers: [String: String] = [:]
        public var noLength = false

        /// Answers matching requests with an HTTP status and an S3 error document.
        public static func status(_ status: Int, code: String? = nil, match: String = "", times: Int? = nil) -> Rule {
            Rule(match: match, times: times, action: "status", status: status, code: code)
        }

        /// Resets the connection of matching requests after reading their head.
        public static func reset(match: String = "", times: Int? = nil) -> Rule {
            Rule(match: match, times: times, action: "reset", status: nil, code: nil)
        }

        /// Answers matching requests with nothing for 30 seconds (a stalled server), after
        /// reading their body, or before it with `beforeBody` (an upload stalls while sent).
        public static func stall(match: String = "", times: Int? = nil, beforeBody: Bool = false) -> Rule {
            Rule(match: match, times: times, action: "stall", status: nil, code: nil, beforeBody: beforeBody)
        }

        /// Forwards matching requests and flips one bit in the middle of a 2xx answer's body
        /// (recorded as "flip"): a server returning other bytes than it stored.
        public static func flip(match: String = "", times: Int? = nil) -> Rule {
            Rule(match: match, times: times, action: "flip", status: nil, code: nil)
        }

        /// Keeps matching requests (recorded as "held") until `release()`, then forwards them.
        public static func hold(match: String = "", times: Int? = nil) -> Rule {
            Rule(match: match, times: times, action: "hold", status: nil, code: nil)
        }

        /// Answers matching requests with 200 and `body`, without asking the server: a server
        /// whose answers are wrong in ways the test server's never are.
        /// `headers` are added; `noLength` leaves out Content-Length.
        public static func answer(_ body: String, headers: [String: String] = [:], noLength: Bool = false,
                                  match: String = "", times: Int? = nil) -> Rule {
            Rule(match: match, times: times, action: "answer", status: nil, code: nil, body: body, headers: headers, noLength: noLength)
        }

        var json: [String: Any] {
            var object: [String: Any] = ["match": match, "action": action]
            if let times { object["times"] = times }
            if let status { object["status"] = status }
            if let code { object["code"] = code }
            if beforeBody { object["before_body"] = true }
            if let body { object["body"] = body }
            if !headers.isEmpty { object["headers"] = headers }
            if noLength { object["no_length"] = true }
            return object
        }
    }

    /// An S3 test server and a fault proxy in front of it: stop both when done.
    public static func startInFrontOfS3() throws -> (s3: S3TestServer, proxy: FaultProxy) {
        let s3 = try S3TestServer.start()
        do {
            return (s3, try start(upstreamPort: s3.port))
        } catch {
            s3.stop()
            throw error
        }
    }

    public static func start(upstreamPort: Int) throws -> FaultProxy {
        let (fixture, ready) = try PythonFixture.start("fault_proxy.py", ["127.0.0.1:\(upstreamPort)"])
        guard let port = ready["port"] as? Int else { throw TestSupportError("fault_proxy.py answered \(ready)") }
        return FaultProxy(port: port, fixture: fixture)
    }

    init(port: Int, fixture: PythonFixture) {
        self.port = port
        self.fixture = fixture
    }

    public var endpoint: String { "http://127.0.0.1:\(port)" }

    public func setRules(_ rules: [Rule]) throws {
        try fixture.send(["rules": rules.map(\.json)])
    }

    /// Waits until `count` requests matching `match` (a substring of "METHOD /path?query") had
    /// `outcome` ("stall", "reset", or a status such as "503"); throws after `timeout`.
    public func waitFor(_ outcome: String, match: String = "", count: Int = 1, timeout: Duration = .seconds(30)) throws {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let answer = try fixture.send(["await": ["outcome": outcome, "match": match, "count": count, "timeout": seconds]])
        guard answer["ok"] as? Bool == true else {
            throw TestSupportError("fault_proxy.py saw fewer than \(count) requests matching '\(match)' with outcome '\(outcome)' within \(timeout)")
        }
    }

    /// Lets every request held by a `hold` rule go on.
    public func release() throws {
        try fixture.send(["release": true])
    }

    /// Requests seen so far: method, path with query, and status (or "reset", "stall", "held").
    public func requests() throws -> [(method: String, path: String, outcome: String)] {
        let answer = try fixture.send(["stats": true])
        return (answer["requests"] as? [[Any]] ?? []).map { ($0[0] as? String ?? "", $0[1] as? String ?? "", "\($0[2])") }
    }

    public func stop() { fixture.stop() }
}

/// `Tests/Fixtures/tls_proxy.py`: TLS on a loopback port, with a certificate the caller
/// made, in front of a plain server (an S3 server, for https endpoints).
public final class TLSProxy: Sendable {
    public let port: Int
    private let fixture: PythonFixture

    public static func start(certificate: String, key: String, upstreamPort: Int) throws -> TLSProxy {
        let (fixture, ready) = try PythonFixture.start("tls_proxy.py", [certificate, key, "127.0.0.1:\(upstreamPort)"])
        guard let port = ready["port"] as? Int else { throw TestSupportError("tls_proxy.py answered \(ready)") }
        return TLSProxy(port: port, fixture: fixture)
    }

    init(port: Int, fixture: PythonFixture) {
        self.port = port
        self.fixture = fixture
    }

    public var endpoint: String { "https://127.0.0.1:\(port)" }

    public func stop() { fixture.stop() }
}
