import Foundation
import LifeboatCore
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
        /// Physical PostgreSQL: the recovery target, action, timeline, tablespace map, delta.
        public var recovery: RecoveryOptions?
        /// Artifacts extracted at once (`--parallel`); nil: one per core. S3 mirrors: objects written at once.
        public var parallel: Int?
        /// S3 mirrors: bucket, prefix or key, deletions, the target's endpoint.
        public var mirror: MirrorRestoreOptions?
        public var workingDirectory: String

        public init(to: String, databases: [String]? = nil, globals: Bool = true, recovery: RecoveryOptions? = nil,
                    parallel: Int? = nil, mirror: MirrorRestoreOptions? = nil,
                    workingDirectory: String = FileManager.default.currentDirectoryPath) {
            self.parallel = parallel
            self.mirror = mirror
            self.to = to
            self.databases = databases
            self.globals = globals
            self.recovery = recovery
            self.workingDirectory = workingDirectory
        }
    }

    /// Restores from the command line: the backup's kind reads `--to`.
    /// `at`: the newest backup started at or before that time (`--at`) instead of `selector`.
    public func run(policy name: String, selector: String, at: Date? = nil, request: Request) throws -> RestoreReport {
        // `--to` may be a conninfo with a password: hide it from everything printed, whatever
        // fails first. (Text that is not a conninfo, such as a path, holds no password.)
        Secrets.register((try? PostgresConnectionParameters(conninfo: request.to))?.password)
        return try run(policy: name, selector: selector, at: at) { manifest, kind in
            let target = RestoreTarget(location: try kind.restoreLocation(commandLine: request.to, workingDirectory: request.workingDirectory,
                                                                          manifest: manifest),
                                       databases: request.databases, globals: request.globals, recovery: request.recovery,
                                       parallel: request.parallel, mirror: request.mirror)
            if request.mirror != nil, manifest.source.kind != S3MirrorKind().name {
                throw LifeboatError(.usage, "--bucket, --prefix, --key, --delete-extra, --max-delete and --to-endpoint apply to S3 mirror backups, and backup \(manifest.id) of policy '\(name)' is a \(manifest.source.kind) backup",
                                    hint: "Leave these options out for this backup.")
            }
            return target
        }
    }

    /// Restores to a target made for the backup that was chosen (a runbook's, or the command line's).
    @discardableResult
    public func run(policy name: String, selector: String, at: Date? = nil,
                    target: (Manifest, any SourceKind) throws -> RestoreTarget) throws -> RestoreReport {
        try source.withBackup(policy: name, selector: selector, at: at, command: "restore", lockWait: lockWait, context: context) {
            repository, policy, selected, context in
            let kind = try SourceKinds.named(selected.source.kind, for: "backup \(selected.id) of policy '\(name)'")
            let target = try target(selected, kind)
            if let recovery = target.recovery, !recovery.isDefault, !target.location.isDataDirectory {
                throw LifeboatError(.usage, "--target-*, --tablespace-map and --delta apply to physical PostgreSQL backups, and backup \(selected.id) of policy '\(name)' is restored into \(target.location)",
                                    hint: "Leave these options out for this backup.")
            }
            let manifest = try kind.chooseBackup(selected: selected, explicit: selector != "latest" || at != nil, target: target,
                                                 repository: repository, context: context)
            let context = context.with(metadata: "backup.id", manifest.id)
            let started = context.clock()
            context.logger.info("restore started", metadata: ["restore.target": "\(target.location)"])
            var report: RestoreReport
            do {
                report = try kind.restore(manifest, from: repository, to: target, configuration: policy?.source, context: context)
            } catch let error as LifeboatError where error.code == .cancelled || context.cancellation.isCancelled {
                throw LifeboatError(.cancelled, "restore of backup \(manifest.id) of policy '\(name)' into \(target.location) was cancelled (\(context.cancellation.reason ?? error.message))",
                                    hint: kind.leftovers(of: target))
            }
            report.seconds = context.clock().timeIntervalSince(started)
            context.logger.info("restore finished", metadata: ["restore.target": "\(report.target)", "restore.seconds": "\(String(format: "%.1f", report.seconds))"])
            return report
        }
    }
}
