import Foundation
import LifeboatCore
import Logging

/// Runs backups: source → archive → repository, then the manifest, last.
public struct BackupCommand {
    public let configuration: Configuration
    public let logger: Logger
    public let clock: @Sendable () -> Date
    public let progress: any ProgressReporter

    public init(configuration: Configuration, logger: Logger, clock: @escaping @Sendable () -> Date = { Date() },
                progress: any ProgressReporter = NoProgress()) {
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        self.progress = progress
    }

    /// Backs up a policy's configured source.
    public func run(policy name: String) throws -> Manifest {
        let policy = try configuration.policy(named: name)
        return try run(policy: policy, source: try makeSource(for: policy))
    }

    /// Backs up `source` under `policy`. The backup exists only once the manifest is committed;
    /// on any error the artifacts already written are deleted (best effort — a crash leaves
    /// them for `prune`), and the error is rethrown.
    public func run(policy: Policy, source: any BackupSource) throws -> Manifest {
        var logger = logger
        logger[metadataKey: "policy.name"] = "\(policy.name)"
        let repositoryConfig = try configuration.repository(for: policy)
        let started = clock()
        let id = try { () throws -> String in
            let repository = try Repository.open(repositoryConfig, logger: logger)
            try repository.prepareForWriting(now: started)
            return BackupID.make(startedAt: started, existing: Set(try repository.listBackups(policy: policy.name).map(\.id)))
        }()
        logger[metadataKey: "backup.id"] = "\(id)"
        // Opened again so that everything the store logs (S3 retries) carries the backup's id.
        let repository = try Repository.open(repositoryConfig, logger: logger)
        logger.info("backup started", metadata: [
            "source.kind": "\(policy.source.kind)", "repository.name": "\(repository.name)",
            "repository.location": "\(repository.store.location)",
        ])

        let sink = ArtifactSink(repository: repository, policy: policy, backupID: id, logger: logger, progress: progress)
        do {
            let record = try source.run(into: sink, logger: logger)
            let manifest = Manifest(policy: policy.name, id: id, source: record, startedAt: started, finishedAt: clock(),
                                    tool: ToolRecord(version: LifeboatVersion.current), artifacts: sink.artifacts)
            try repository.commit(manifest)
            logger.info("backup committed", metadata: [
                "backup.artifacts": "\(manifest.artifacts.count)", "backup.stored_bytes": "\(manifest.storedBytes)",
                "backup.source_bytes": "\(manifest.sourceBytes)",
                "backup.seconds": "\(String(format: "%.1f", manifest.finishedAt.timeIntervalSince(started)))",
            ])
            return manifest
        } catch {
            logger.error("backup failed; nothing was committed", metadata: ["error": "\(String(describing: error))"])
            do {
                try repository.store.delete(keys: sink.writtenKeys)
            } catch let cleanup {
                logger.warning("could not remove the failed backup's artifacts; they are never listed or restored, and may be deleted", metadata: [
                    "backup.directory": "\(repository.locate(Repository.backupDirectory(policy: policy.name, id: id)))",
                    "error": "\(String(describing: cleanup))",
                ])
            }
            if let error = error as? LifeboatError { throw error.prefixed("backup \(id) of policy '\(policy.name)' failed") }
            throw error
        }
    }

    func makeSource(for policy: Policy) throws -> any BackupSource {
        switch policy.source {
        case .postgres(let config):
            return PostgresLogicalSource(config: config)
        case .files(let config):
            return FilesSource(config: config)
        }
    }
}
