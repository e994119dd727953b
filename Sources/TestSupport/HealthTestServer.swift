import Foundation

/// `Tests/Fixtures/health_server.py`: a service's HTTP health endpoint on loopback, answering
/// each path with the status and body a test set (the platform's JSON health format, or text).
public final class HealthTestServer: Sendable {
    public let port: Int
    let fixture: PythonFixture

    public static func start() throws -> HealthTestServer {
        let (fixture, ready) = try PythonFixture.start("health_server.py")
        guard let port = ready["port"] as? Int else { throw TestSupportError("health_server.py answered \(ready)") }
        return HealthTestServer(port: port, fixture: fixture)
    }

    init(port: Int, fixture: PythonFixture) {
        self.port = port
        self.fixture = fixture
    }

    /// `http://127.0.0.1:PORT` + `path`.
    public func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    /// Makes GET `path` answer `status` with `body` (a JSON object, or text).
    public func set(_ path: String, status: Int, body: Any) throws {
        try fixture.send(["set": path, "status": status, "body": body])
    }

    /// How many GETs of `path` arrived.
    public func hits(_ path: String) throws -> Int {
        try fixture.send(["hits": path])["hits"] as? Int ?? -1
    }

    public func stop() { fixture.stop() }
}
