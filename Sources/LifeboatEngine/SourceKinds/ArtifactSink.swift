import Foundation
import LifeboatArchive
import LifeboatCore
import Logging

/// Hands out the artifacts of one backup: `data/0000.tar.zst`, `data/0001.tar.zst`, …, each
/// written through libarchive and committed to the store when complete.
public final class ArtifactSink {
    let repository: Repository
    let policy: Policy
    let backupID: String
    let context: RunContext
    public private(set) var artifacts: [ArtifactRecord] = []
    /// Keys written so far, for cleanup when the backup fails: only this run's own objects.
    private(set) var writtenKeys: [String] = []

    init(repository: Repository, policy: Policy, backupID: String, context: RunContext) {
        self.repository = repository
        self.policy = policy
        self.backupID = backupID
        self.context = context
    }

    /// Counts keys a source wrote under this backup's directory by other means (an S3 mirror's
    /// staging objects) among what a failed run deletes.
    func noteWritten(_ keys: [String]) {
        writtenKeys += keys
    }

    /// Writes one artifact: `body` adds its entries. The artifact is committed to the store
    /// (durable, under its final key) before this returns. Stops with a cancellation error as
    /// soon as the run is cancelled.
    @discardableResult
    public func artifact(role: ArtifactRole, database: String? = nil, _ body: (ArtifactWriter) throws -> Void) throws -> ArtifactRecord {
        try context.cancellation.checkCancelled()
        let path = String(format: "data/%04d", artifacts.count) + policy.compression.artifactSuffix
        let key = Repository.artifactKey(policy: policy.name, id: backupID, path: path)
        let object = ProgressWriter(try repository.store.openWriter(key: key, ifAbsent: true),
                                    what: "backup \(path)\(database.map { " (\($0))" } ?? "")", context: context)
        let started = context.clock()
        do {
            let writer = try ArtifactWriter(sink: object, compression: policy.compression, level: policy.compressionLevel,
                                            threads: ArtifactWriter.compressionThreads(policy.compressionThreads))
            do {
                try body(writer)
            } catch {
                writer.abort()
                throw error
            }
            let result = try writer.finish()
            guard let sha256 = result.sha256 else {
                throw LifeboatError(.internalError, "artifact '\(path)' was written without the SHA-256 of its stored bytes",
                                    hint: "Report this as a bug in Lifeboat.")
            }
            // Recorded before the commit: a commit that fails half-way may still have left the object.
            writtenKeys.append(key)
            try object.commit()
            let record = ArtifactRecord(path: path, role: role, database: database, size: result.size,
                                        sha256: sha256, compression: policy.compression, entries: result.entries)
            artifacts.append(record)
            context.logger.info("artifact written", metadata: [
                "artifact.path": "\(path)", "artifact.role": "\(role)",
                "artifact.bytes": "\(result.size)", "artifact.source_bytes": "\(record.entries.reduce(0) { $0 + $1.size })",
                "artifact.seconds": "\(String(format: "%.1f", context.clock().timeIntervalSince(started)))",
            ])
            return record
        } catch {
            object.abort()
            throw error
        }
    }
}
