import Foundation
import LifeboatIO
import Synchronization

/// Runs the `lifeboat` executable built beside the test bundle, as a user would.
public enum LifeboatCLI {
    public struct Output: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        /// Everything the command printed, for "never prints the password" checks.
        public var all: String { stdout + stderr }
    }

    /// The executable: `.build/<config>/lifeboat`, beside the test bundle.
    public static var executable: String {
        get throws {
            let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            var directory = testBinary.deletingLastPathComponent()
            // The test binary may sit inside `LifeboatPackageTests.xctest/`.
            while directory.path != "/" {
                let candidate = directory.appendingPathComponent("lifeboat").path
                if FileManager.default.isExecutableFile(atPath: candidate), !isDirectory(candidate) { return candidate }
                directory = directory.deletingLastPathComponent()
            }
            throw TestSupportError("the lifeboat executable was not found beside \(testBinary.path); build it with 'swift build'")
        }
    }

    /// Runs `lifeboat ARGS --config DIR` with the given extra environment. `LOG_LEVEL` is
    /// `info` unless given, and standard error is a pipe, so logs are JSON lines.
    ///
    /// `user`: when the tests run as root, run it as that OS user (through `runuser`), as the
    /// programs a PostgreSQL server starts (`archive_command`) run as the server's user.
    public static func run(_ arguments: [String], config: String? = nil, environment: [String: String] = [:],
                           user: String? = nil) throws -> Output {
        try start(arguments, config: config, environment: environment, user: user).wait()
    }

    /// Starts `lifeboat ARGS --config DIR` and returns at once, so that several can run at
    /// the same time (as a CronJob firing twice would start them); `wait()` collects each.
    public static func start(_ arguments: [String], config: String? = nil, environment: [String: String] = [:],
                             user: String? = nil) throws -> Running {
        var args = arguments
        if let config { args += ["--config", config] }
        var env = ["LOG_LEVEL": "info"]
        env.merge(environment) { _, new in new }
        var program = try executable
        if let user, geteuid() == 0 {
            args = ["-u", user, "--", program] + args
            program = try requireProgram("runuser", in: ["/usr/sbin", "/sbin", "/usr/bin", "/bin"],
                                         hint: "Install util-linux (it provides runuser).")
        }
        return try Running(child: ChildProcess.spawn(program, args, environment: env, stdin: .null, stdout: .pipe))
    }

    /// A `lifeboat` process started by `start`. Its standard output is read on a thread of
    /// its own from the start, so that a child printing much never blocks on a full pipe.
    public final class Running: Sendable {
        let child: ChildProcess
        private let stdout = Mutex<(bytes: [UInt8], error: (any Error)?)>(([], nil))
        private let drained = Wakeup()

        /// The process id (gone, and possibly reused, once `wait()` has returned).
        public var pid: Int32 { child.pid }

        init(child: ChildProcess) {
            self.child = child
            let thread = Thread { [self] in
                defer { drained.wake() }
                var chunk = [UInt8](repeating: 0, count: 16 * 1024)
                do {
                    while true {
                        let count = try chunk.withUnsafeMutableBytes { try child.readStdout(into: $0) }
                        if count == 0 { break }
                        stdout.withLock { $0.bytes += chunk[0..<count] }
                    }
                } catch {
                    stdout.withLock { $0.error = error }
                }
            }
            thread.name = "lifeboat-cli-stdout"
            thread.start()
        }

        /// Waits for the process to end. A process killed by signal N has status 128 + N, as
        /// a shell reports it.
        public func wait() throws -> Output {
            drained.wait()
            let termination = try child.wait()
            let (bytes, error) = stdout.withLock { ($0.bytes, $0.error) }
            if let error { throw error }
            let status: Int32
            switch termination {
            case .exited(let code): status = code
            case .signaled(let signal): status = 128 + signal
            }
            return Output(status: status, stdout: String(decoding: bytes, as: UTF8.self), stderr: child.stderrText)
        }
    }
}

public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A directory under /tmp, removed by `remove()`.
public final class TemporaryDirectory: Sendable {
    public let path: String

    public init(_ label: String = "lifeboat-test") throws {
        let template = "/tmp/\(label)-XXXXXX"
        var bytes = Array(template.utf8CString)
        guard let created = mkdtemp(&bytes) else {
            throw TestSupportError("mkdtemp \(template) failed: \(String(cString: strerror(errno)))")
        }
        path = String(cString: created)
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)  // cleanup of a scratch directory; nothing to report
    }

    /// Writes a file (creating parent directories) and returns its path.
    @discardableResult
    public func write(_ relativePath: String, _ text: String) throws -> String {
        try write(relativePath, bytes: Array(text.utf8))
    }

    /// Writes bytes to a file (creating parent directories) and returns its path.
    @discardableResult
    public func write(_ relativePath: String, bytes: [UInt8]) throws -> String {
        let url = URL(fileURLWithPath: path).appendingPathComponent(relativePath)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: url)
        return url.path
    }

    /// The bytes of a file under the directory.
    public func read(_ relativePath: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: subpath(relativePath))))
    }

    public func subpath(_ relativePath: String) -> String { path + "/" + relativePath }
}
