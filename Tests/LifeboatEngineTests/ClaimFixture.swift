import Foundation
import LifeboatArchive
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import Logging
import Synchronization
import Testing
import TestSupport

/// A configuration directory with one `files` policy, `etc`, and a local repository beside
/// it, for driving the engine in this process: its locks and reservations, and the store
/// behind them.
final class ClaimFixture: Sendable {
    static let policy = "etc"

    let directory: TemporaryDirectory
    let configuration: Configuration
    let repositoryConfig: RepositoryConfig
    let repository: Repository
    let host = ProcessInfo.processInfo.hostName
    /// This process, as a lock or a reservation names it.
    let owner: ProcessIdentity

    /// `policyExtra`: more of the policy's file (`retention: …`, `schedule: …`).
    init(policyExtra: String = "") throws {
        directory = try TemporaryDirectory("lifeboat-claims")
        try directory.write("lifeboat.yaml", "repositories:\n  local: { path: repository }\ndefault_repository: local\n")
        try directory.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n" + policyExtra)
        try directory.write("src/app.conf", "listen = 8080\n")
        configuration = try ConfigurationLoader.load(directory: directory.path, environment: [:])
        repositoryConfig = try configuration.repository(for: try configuration.policy(named: Self.policy))
        repository = try Repository.open(repositoryConfig, context: RunContext(logger: quietLogger))
        try repository.prepareForWriting(now: Date())
        owner = ProcessProbe.current(host: host)
    }

    func remove() { directory.remove() }

    var store: any ObjectStore { repository.store }
    var policy: Policy { get throws { try configuration.policy(named: Self.policy) } }

    /// Every key in the repository.
    func keys() throws -> [String] { try store.listAll(prefix: "").map(\.key) }

    /// The keys of the repository's locks.
    func lockKeys() throws -> [String] { try store.listAll(prefix: Repository.locksPrefix).map(\.key) }

    func backup(_ context: RunContext, lockWait: TimeInterval = 0, timings: ClaimTimings = .standard) -> BackupCommand {
        BackupCommand(configuration: configuration, context: context, lockWait: lockWait, timings: timings)
    }

    /// Takes a lock as this process, as another command would.
    func lock(_ kind: LockRecord.Kind, command: String) throws -> RepositoryLock {
        try repository.lock(kind, command: command, owner: owner, wait: 0, context: RunContext(logger: quietLogger))
    }
}

/// Log lines of the engine under test go nowhere; `RecordingLog` keeps them when a test
/// asserts what was logged.

/// Keeps every log line, for tests that check what a run said.
final class RecordingLog: Sendable {
    struct Line: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    let lines = Mutex<[Line]>([])

    var logger: Logger {
        Logger(label: "test") { [self] _ in Handler(log: self) }
    }

    func lines(_ message: String) -> [Line] { lines.withLock { $0.filter { $0.message == message } } }

    struct Handler: LogHandler {
        let log: RecordingLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { _, new in new }.mapValues { "\($0)" }
            log.lines.withLock { $0.append(Line(level: event.level, message: "\(event.message)", metadata: all)) }
        }
    }
}

/// A clock that moves only when the code under test sleeps on it: a wait of ten minutes
/// takes no time at all.
final class VirtualClock: Sendable {
    let start: Date
    private let current: Mutex<Date>

    init(_ start: Date = Date(timeIntervalSince1970: 1_795_000_000)) {
        self.start = start
        current = Mutex(start)
    }

    var now: Date { current.withLock { $0 } }
    var elapsed: TimeInterval { now.timeIntervalSince(start) }

    func context(logger: Logger = quietLogger) -> RunContext {
        RunContext(logger: logger, clock: { [self] in now }, sleep: { [self] seconds in current.withLock { $0 += seconds } })
    }
}

/// A source that writes one small artifact, so that a run has data of its own to clean up,
/// and then does `then` before returning.
func oneArtifact(then: @escaping (RunContext) throws -> Void) -> (ArtifactSink, RunContext) throws -> BackupOutcome {
    { sink, context in
        let data = Array("listen = 8080\n".utf8)
        try sink.artifact(role: .files) { writer in
            var offset = 0
            try writer.addFile(path: "app.conf", size: Int64(data.count), mode: 0o644, modificationTime: 0) { buffer in
                let n = min(buffer.count, data.count - offset)
                data.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<offset + n])) }
                offset += n
                return n
            }
        }
        try then(context)
        return BackupOutcome(record: SourceRecord(kind: "files"))
    }
}
