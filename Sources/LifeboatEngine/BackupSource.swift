import Foundation
import LifeboatArchive
import LifeboatCore
import Logging

/// Something that can be backed up. A source checks itself, then writes its artifacts through
/// the sink it is given, and describes what it backed up.
public protocol BackupSource {
    /// Writes every artifact; returns the record stored in the manifest. Throwing at any point
    /// leaves no committed backup.
    func run(into sink: ArtifactSink, logger: Logger) throws -> SourceRecord
}

/// Hands out artifacts of one backup: `data/0000.tar.zst`, `data/0001.tar.zst`, …, each
/// written through libarchive and committed to the store when complete.
public final class ArtifactSink {
    let repository: Repository
    let policy: Policy
    let backupID: String
    let logger: Logger
    let progress: any ProgressReporter
    public private(set) var artifacts: [ArtifactRecord] = []
    /// Keys written so far, for cleanup when the backup fails.
    private(set) var writtenKeys: [String] = []

    init(repository: Repository, policy: Policy, backupID: String, logger: Logger, progress: any ProgressReporter) {
        self.repository = repository
        self.policy = policy
        self.backupID = backupID
        self.logger = logger
        self.progress = progress
    }

    /// Writes one artifact: `body` adds its entries. The artifact is committed to the store
    /// (durable, under its final key) before this returns.
    @discardableResult
    public func artifact(role: String, database: String? = nil, _ body: (ArtifactWriter) throws -> Void) throws -> ArtifactRecord {
        let path = String(format: "data/%04d", artifacts.count) + policy.compression.artifactSuffix
        let key = Repository.artifactKey(policy: policy.name, id: backupID, path: path)
        let object = ProgressWriter(try repository.store.openWriter(key: key),
                                    what: "backup \(path)\(database.map { " (\($0))" } ?? "")", progress: progress)
        let started = Date()
        do {
            let writer = try ArtifactWriter(sink: object, compression: policy.compression, level: policy.compressionLevel)
            do {
                try body(writer)
            } catch {
                writer.abort()
                throw error
            }
            let result = try writer.finish()
            writtenKeys.append(key)
            try object.commit()
            let record = ArtifactRecord(path: path, role: role, database: database, size: result.size,
                                        sha256: result.sha256, compression: policy.compression, entries: result.entries)
            artifacts.append(record)
            let seconds = Date().timeIntervalSince(started)
            logger.info("artifact written", metadata: [
                "artifact.path": "\(path)", "artifact.role": "\(role)",
                "artifact.bytes": "\(result.size)", "artifact.source_bytes": "\(record.entries.reduce(0) { $0 + $1.size })",
                "artifact.seconds": "\(String(format: "%.1f", seconds))",
            ])
            return record
        } catch {
            object.abort()
            throw error
        }
    }
}
