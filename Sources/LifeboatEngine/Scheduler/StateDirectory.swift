import Foundation
import Glibc
import LifeboatCore
import LifeboatIO
import Synchronization

/// The scheduler's state directory (`state_dir`, default `.lifeboat/state` in the configuration
/// directory; mode 0700): the run history and the daemon's lock.
public struct StateDirectory: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    static let hint = "Check that this user owns the state directory (state_dir in lifeboat.yaml) and that its disk is not full."

    public var historyPath: String { path + "/history.jsonl" }
    /// The previous generation of the run history (see `append`).
    public var previousHistoryPath: String { path + "/history.1.jsonl" }

    /// Once the run history is larger than this, it becomes the previous generation and a new
    /// one starts: at most about twice this on disk, and the newest record of every job is
    /// kept as long as the job ran at least once in the last generation (4 MiB: some 13,000
    /// runs).
    public var historyLimit = 4 << 20

    /// Appends and rotations of this process, one at a time (the daemon's run threads append
    /// at once; only one daemon uses a state directory).
    private static let appending = Mutex<Void>(())
    public var lockPath: String { path + "/scheduler.lock" }

    /// Creates the directory (0700) when it is missing.
    public func prepare() throws {
        do {
            try makeDirectories(path, mode: 0o700)
        } catch let error as LifeboatError {
            throw LifeboatError(error.code, "unable to create the state directory '\(path)': \(error.message)",
                                hint: "Set state_dir in lifeboat.yaml to a directory this user may write, or create it (mode 0700).")
        }
    }

    /// Appends one record to the run history: one `write(2)` of the whole line to a file opened
    /// with `O_APPEND` (0600), then `fsync`. A crash can leave a torn last line at most; reading
    /// skips it. When the history has grown past `historyLimit`, it is renamed to
    /// `history.1.jsonl` (replacing the generation before) and the next record starts a new one.
    public func append(_ record: RunRecord) throws {
        try prepare()
        let line = Array(try record.line().utf8)
        try Self.appending.withLock { _ in
            try write(line)
            var status = stat()
            if stat(historyPath, &status) == 0, Int(status.st_size) > historyLimit, rename(historyPath, previousHistoryPath) != 0 {
                let saved = errno
                throw LifeboatError(.io, "unable to rotate the run history '\(historyPath)' to '\(previousHistoryPath)': \(errnoText(saved))", hint: StateDirectory.hint)
            }
        }
    }

    private func write(_ line: [UInt8]) throws {
        try appendLine(line, toFile: historyPath, what: "the run history '\(historyPath)'", hint: StateDirectory.hint)
    }

    /// The run history, oldest first (the previous generation, then the current one); empty
    /// when there is none yet.
    public func history() throws -> (records: [RunRecord], unreadable: Int) {
        var records: [RunRecord] = []
        var unreadable = 0
        for file in [previousHistoryPath, historyPath] where pathExists(file) {
            let parsed = RunRecord.parseHistory(Data(try readTextFile(file).utf8))
            records += parsed.records
            unreadable += parsed.unreadable
        }
        return (records, unreadable)
    }

    /// Takes the daemon's lock (an `flock` on `scheduler.lock`, which then holds this process's
    /// id). The kernel drops it when the process ends, however it ends.
    ///
    /// - Throws: when another daemon holds it, naming that daemon's pid.
    public func lockDaemon(pid: Int32) throws -> DaemonLock {
        try prepare()
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let saved = errno
            throw LifeboatError(.io, "unable to open the scheduler lock '\(lockPath)': \(errnoText(saved))", hint: StateDirectory.hint)
        }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let saved = errno
            if saved == EINTR { continue }
            close(fd)
            if saved == EWOULDBLOCK {
                let holder = (try? readTextFile(lockPath))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
                throw LifeboatError(.alreadyExists, "another 'lifeboat schedule' (pid \(holder.isEmpty ? "unknown" : holder)) already runs with the state directory '\(path)'",
                                    hint: "Run one scheduler per state directory: stop that one first (kill -TERM \(holder.isEmpty ? "<pid>" : holder)), or give this one another state_dir.")
            }
            throw LifeboatError(.io, "unable to lock '\(lockPath)': \(errnoText(saved))", hint: StateDirectory.hint)
        }
        let text = Array("\(pid)\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return DaemonLock(fd: fd)
    }
}

/// The running daemon's hold on its state directory.
public final class DaemonLock: Sendable {
    private let fd: Int32

    init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }
}
