import Foundation
import Glibc
import LifeboatCore
import LifeboatIO

/// A recovery's journal on disk, `state_dir/recover/<runbook>.journal.jsonl` (0600, directory
/// 0700), held with `flock` while `recover` runs (a second `recover` of the runbook is
/// refused). Each entry is one `write(2)` of one line with `O_APPEND`, then `fsync`.
public final class RecoveryJournalFile: @unchecked Sendable {
    public let path: String
    private let fd: Int32
    private let lock = NSLock()

    public static func directory(stateDirectory: String) -> String { stateDirectory + "/recover" }

    public static func path(stateDirectory: String, runbook: String) -> String {
        directory(stateDirectory: stateDirectory) + "/\(runbook).journal.jsonl"
    }

    static let hint = "Check that this user owns the state directory (state_dir in lifeboat.yaml) and that its disk is not full."

    /// Opens (creating) and locks the journal.
    ///
    /// - Throws: `LifeboatError(.locked)` when another `recover` holds it.
    public init(stateDirectory: String, runbook: String) throws {
        let directory = Self.directory(stateDirectory: stateDirectory)
        do {
            try makeDirectories(directory, mode: 0o700)
        } catch let error as LifeboatError {
            throw LifeboatError(error.code, "unable to create '\(directory)': \(error.message)", hint: Self.hint)
        }
        _ = chmod(directory, 0o700)
        path = Self.path(stateDirectory: stateDirectory, runbook: runbook)
        while true {
            let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                let saved = errno
                throw LifeboatError(.io, "unable to open the recovery journal '\(path)': \(errnoText(saved))", hint: Self.hint)
            }
            _ = fchmod(fd, 0o600)
            if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                close(fd)
                throw LifeboatError(.locked, "another 'lifeboat recover \(runbook)' is running (it holds \(path))",
                                    hint: "Wait for it to end, or stop it; then 'lifeboat recover \(runbook) --resume' continues where it stopped.")
            }
            // The holder before us may have renamed the journal when it finished: lock the file at the path.
            var held = stat(), current = stat()
            if fstat(fd, &held) == 0, stat(path, &current) == 0, held.st_ino == current.st_ino, held.st_dev == current.st_dev {
                self.fd = fd
                return
            }
            close(fd)
        }
    }

    deinit { close(fd) }

    /// What the journal holds so far.
    public func read() throws -> RecoveryJournal.State {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return RecoveryJournal.State.read(String(decoding: data, as: UTF8.self))
    }

    public var isEmpty: Bool {
        var info = stat()
        return fstat(fd, &info) == 0 && info.st_size == 0
    }

    public func append(_ entry: JournalEntry) throws {
        try appendLine(Array(try entry.line().utf8), fd: fd, what: "the recovery journal '\(path)'", hint: Self.hint)
    }

    /// Empties the journal (a new recovery starts in it).
    public func truncate() throws {
        guard ftruncate(fd, 0) == 0 else {
            let saved = errno
            throw LifeboatError(.io, "unable to empty the recovery journal '\(path)': \(errnoText(saved))", hint: Self.hint)
        }
    }

    /// Keeps the journal beside, named with `time` (`<runbook>.<time>.journal.jsonl`) — a
    /// finished or abandoned recovery — and returns its new path. A journal kept under that
    /// name already (another recovery ended in the same second) is never replaced: this one
    /// takes the next free `_2`, `_3`, … (sorting after it). The lock stays held until this
    /// object goes.
    @discardableResult
    public func archive(time: Date, label: String = "") throws -> String {
        let suffix = ".journal.jsonl"
        let base = String(path.dropLast(suffix.count)) + "." + BackupID.format(time) + label
        var number = 1
        while true {
            let archived = base + (number == 1 ? "" : "_\(number)") + suffix
            // link(2), then unlink(2): unlike rename(2) it fails on a name that is taken.
            if link(path, archived) == 0 {
                guard unlink(path) == 0 else {
                    let saved = errno
                    throw LifeboatError(.io, "unable to remove the recovery journal '\(path)' after keeping it as '\(archived)': \(errnoText(saved))",
                                        hint: Self.hint)
                }
                return archived
            }
            let saved = errno
            guard saved == EEXIST else {
                throw LifeboatError(.io, "unable to keep the recovery journal '\(path)' as '\(archived)': \(errnoText(saved))", hint: Self.hint)
            }
            number += 1
        }
    }
}

/// `state_dir/audit.jsonl` (0600, append-only): who ran which runbook, when, with which
/// restore points, and how each step and check went. One `write(2)` per line, redacted.
public struct AuditLog: Sendable {
    public let path: String

    public init(stateDirectory: String) { path = stateDirectory + "/audit.jsonl" }

    public struct Record: Codable, Sendable {
        public struct Step: Codable, Sendable {
            public var id: String
            public var outcome: String
            public var detail: String?
            public var checks: [CheckResult]?
        }

        public var time: Date
        /// `started` or `finished`.
        public var event: String
        public var user: String
        public var uid: UInt32
        public var host: String
        public var runbook: String
        public var digest: String
        public var mode: RunbookMode
        public var restorePoints: [String: Date]
        public var steps: [Step]?
        /// finished: `passed`, `failed` or `aborted`.
        public var outcome: String?

        public init(time: Date, event: String, host: String, runbook: String, digest: String, mode: RunbookMode,
                    restorePoints: [String: Date], steps: [StepResult]? = nil, outcome: String? = nil) {
            self.time = time
            self.event = event
            let uid = getuid()
            self.uid = uid
            self.user = getpwuid(uid).flatMap { $0.pointee.pw_name.map { String(cString: $0) } } ?? "uid \(uid)"
            self.host = host
            self.runbook = runbook
            self.digest = digest
            self.mode = mode
            self.restorePoints = restorePoints
            self.steps = steps.map { results in
                results.flatMap { [$0] + $0.steps }.map {
                    Step(id: $0.id, outcome: $0.outcome.rawValue, detail: $0.detail, checks: $0.checks.isEmpty ? nil : $0.checks)
                }
            }
            self.outcome = outcome
        }
    }

    public func append(_ record: Record) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try makeDirectories(directory, mode: 0o700)
        let line = Secrets.redact(String(decoding: try RecoveryJournal.encoder.encode(record), as: UTF8.self)) + "\n"
        try appendLine(Array(line.utf8), toFile: path, what: "the audit log '\(path)'", hint: RecoveryJournalFile.hint)
    }
}
