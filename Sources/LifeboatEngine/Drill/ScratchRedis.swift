import Foundation
import Glibc
import LifeboatCore
import LifeboatIO

/// A throwaway `redis-server` on a free loopback port loading a restored RDB file, for a
/// drill: daemonized (its pid in its directory), no persistence of its own, stopped with
/// `SIGKILL` (nothing it holds is worth saving).
public struct ScratchRedis: Sendable {
    public let directory: String
    public let port: Int
    public let pid: Int32

    /// Starts the server on `directory/rdbFile` and waits until it has loaded it and accepts
    /// connections (or it stopped: then fails with its log).
    public static func start(directory: String, rdbFile: String, context: RunContext) throws -> ScratchRedis {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        let candidates: [String] = path.split(separator: ":").map { "\($0)/redis-server" }
        guard let program = candidates.first(where: { access($0, X_OK) == 0 }) else {
            throw LifeboatError(.notFound, "redis-server was not found in PATH",
                                hint: "A drill loads the restored RDB file into a scratch Redis: install redis-server (apt-get install redis-server).")
        }
        let port = try LoopbackPort.free()
        let pidFile = directory + "/redis-drill.pid"
        let log = directory + "/redis-drill.log"
        let result = try ChildProcess.run(program, [
            "--port", "\(port)", "--bind", "127.0.0.1", "--dir", directory, "--dbfilename", rdbFile, "--save", "",
            "--appendonly", "no", "--daemonize", "yes", "--pidfile", pidFile, "--logfile", log, "--protected-mode", "yes",
        ])
        guard result.status.isSuccess else {
            throw LifeboatError(.process, "the scratch redis-server did not start: \(result.stdout)\(result.stderr)")
        }
        let deadline = context.clock().addingTimeInterval(600)
        while true {
            try context.cancellation.checkCancelled()
            let text = (try? readTextFile(log)) ?? ""
            let pid = (try? readTextFile(pidFile)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            if let pid, text.contains("Ready to accept connections") {
                return ScratchRedis(directory: directory, port: port, pid: pid)
            }
            if text.contains("# Fatal") || text.contains("Short read") || text.contains("Bad file format") || context.clock() > deadline {
                if let pid { stop(pid: pid, start: nil) }
                throw LifeboatError(.integrity, "the scratch redis-server could not load the restored RDB file: \(String(text.suffix(1500)))")
            }
            context.sleep(0.1)
        }
    }

    /// The process's start ticks, so that a later cleanup does not kill a recycled pid.
    public var processStart: UInt64? { ProcessProbe.startTicks(of: pid) }

    /// Kills the server (only a `redis-server` process with that pid and start).
    static func stop(pid: Int32, start: UInt64?) {
        guard ProcessProbe.runs(pid: pid, start: start),
              let command = try? readTextFile("/proc/\(pid)/cmdline"), command.contains("redis-server")
        else { return }
        kill(pid, SIGKILL)
        for _ in 0..<100 where ProcessProbe.runs(pid: pid, start: nil) { usleep(20_000) }
    }
}
