import Foundation
import LifeboatCore
import LifeboatIO
import LifeboatPostgres
import Logging

/// Restores a committed backup, through the backup's source kind. Every chunk is verified
/// against the manifest before any of its bytes reach the target.
public struct RestoreCommand {
    public let source: RepositorySource
    public let context: RunContext
    /// How long to wait for a conflicting lock; nil takes no lock at all (read-only
    /// credentials, which cannot write one).
    public var lockWait: TimeInterval?

    public init(source: RepositorySource, context: RunContext, lockWait: TimeInterval? = 600) {
        self.source = source
        self.context = context
        self.lockWait = lockWait
    }

    /// What the command line gave: `--to` as written, and the options that go with it.
    public struct Request: Sendable {
        public var to: String
        public var databases: [String]?
        public var globals: Bool
        public var workingDirectory: String

        public init(to: String, databases: [String]? = nil, globals: Bool = true,
                    workingDirectory: String = FileManager.default.currentDirectoryPath) {
            self.to = to
            self.databases = databases
            self.globals = globals
            self.workingDirectory = workingDirectory
        }
    }

    /// Restores from the command line: the backup's kind reads `--to`.
    public func run(policy name: String, selector: String, request: Request) throws -> RestoreReport {
        // `--to` may be a conninfo with a password: hide it from everything printed, whatever
        // fails first. (Text that is not a conninfo, such as a path, holds no password.)
        Secrets.register((try? PostgresConnectionParameters(conninfo: request.to))?.password)
        return try run(policy: name, selector: selector) { manifest, kind in
            RestoreTarget(location: try kind.restoreLocation(commandLine: request.to, workingDirectory: request.workingDirectory),
                          databases: request.databases, globals: request.globals)
        }
    }

    /// Restores to a target made for the backup that was chosen (a runbook's, or the command line's).
    @discardableResult
    public func run(policy name: String, selector: String,
                    target: (Manifest, any SourceKind) throws -> RestoreTarget) throws -> RestoreReport {
        let context = self.context.with(metadata: "policy.name", name)
        let (repository, policy) = try source.repository(forPolicy: name, context: context)
        try repository.requireFormat()
        return try repository.withSharedLock(command: "restore \(name)", wait: lockWait, context: context) {
            let manifest = try repository.resolve(policy: name, selector: selector) { context.logger.warning("\($0)") }
            let context = context.with(metadata: "backup.id", manifest.id)
            let kind = try SourceKinds.named(manifest.source.kind, for: "backup \(manifest.id) of policy '\(name)'")
            let target = try target(manifest, kind)
            let started = context.clock()
            context.logger.info("restore started", metadata: ["restore.target": "\(target.location)"])
            var report: RestoreReport
            do {
                report = try kind.restore(manifest, from: repository, to: target, configuration: policy?.source, context: context)
            } catch let error as LifeboatError where error.code == .cancelled || context.cancellation.isCancelled {
                throw LifeboatError(.cancelled, "restore of backup \(manifest.id) of policy '\(name)' into \(target.location) was cancelled (\(context.cancellation.reason ?? error.message))",
                                    hint: "The target may hold a partial restore: remove it (or drop what was created) before restoring again.")
            }
            report.seconds = context.clock().timeIntervalSince(started)
            context.logger.info("restore finished", metadata: ["restore.target": "\(report.target)", "restore.seconds": "\(String(format: "%.1f", report.seconds))"])
            return report
        }
    }
}

extension Repository {
    /// Runs `body` holding a shared lock on the repository (refreshed while it runs), and
    /// releases the lock afterwards, whatever happens. With no `wait`, takes no lock: for
    /// credentials that may only read (the reader then has no protection from a prune).
    public func withSharedLock<T>(command: String, wait: TimeInterval?, timings: ClaimTimings = .standard,
                                  context: RunContext, _ body: () throws -> T) throws -> T {
        guard let wait else {
            context.logger.warning("reading the repository without a lock (--no-lock): a prune running meanwhile could remove what is being read")
            return try body()
        }
        let owner = ProcessProbe.current(host: context.host)
        let lock: RepositoryLock
        do {
            lock = try self.lock(.shared, command: command, owner: owner, wait: wait, timings: timings, context: context)
        } catch var error as LifeboatError where error.code == .storage {
            error.hint = (error.hint.map { $0 + " " } ?? "") + "If these credentials may only read the repository, pass --no-lock."
            throw error
        }
        let heartbeat = Heartbeat(beats: [lock.refresh], timings: timings, context: context)
        heartbeat.start()
        defer {
            heartbeat.stop()
            do {
                try reopened(context: context.forCleanup).store.delete(keys: [lock.key])
            } catch {
                context.logger.warning("could not release the repository lock; it goes stale and 'lifeboat unlock' removes it",
                                       metadata: ["lock.key": "\(lock.key)", "error": "\(error)"])
            }
        }
        return try body()
    }
}
