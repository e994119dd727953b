import Foundation
import Glibc
import LifeboatCore
import LifeboatIO

/// `wal-push` failures on this machine, for `lifeboat_wal_push_failures_total`: `wal-push`
/// appends one line per failed invocation to `state_dir/wal-push-failures.jsonl`; the daemon
/// counts the lines per policy. Past 1 MiB the file moves to `wal-push-failures.1.jsonl`
/// (replacing the one before), so both files together hold the newest failures; when the
/// older one is replaced the count goes down, which Prometheus reads as a counter reset.
extension StateDirectory {
    public var walPushFailuresPath: String { path + "/wal-push-failures.jsonl" }
    public var rotatedWALPushFailuresPath: String { path + "/wal-push-failures.1.jsonl" }
    static let walPushFailuresLimit = 1 << 20

    struct WALPushFailure: Codable {
        var policy: String
        var time: Date
        var error: String
    }

    /// Records a failed `wal-push`. Best effort: never throws, never blocks for long (the
    /// state directory may not exist or not be writable by the server's user).
    public func recordWALPushFailure(policy: String, time: Date, error: String) {
        guard let line = try? JSON.line(WALPushFailure(policy: policy, time: time, error: Secrets.redact(error))) else { return }
        var info = stat()
        if stat(walPushFailuresPath, &info) == 0, Int(info.st_size) > Self.walPushFailuresLimit {
            _ = rename(walPushFailuresPath, rotatedWALPushFailuresPath)
        }
        let fd = open(walPushFailuresPath, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = (tornLineBreak(fd) + Array(line.utf8)).withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    }

    /// Failed `wal-push` invocations per policy, in both files (a torn or damaged line is not
    /// counted).
    public func walPushFailureCounts() -> [String: Int] {
        var counts: [String: Int] = [:]
        for path in [rotatedWALPushFailuresPath, walPushFailuresPath] {
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            for failure in JSON.decodeLines(WALPushFailure.self, from: data).records { counts[failure.policy, default: 0] += 1 }
        }
        return counts
    }
}
