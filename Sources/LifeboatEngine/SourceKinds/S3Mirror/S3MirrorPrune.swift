import Foundation
import LifeboatArchive
import LifeboatCore
import LifeboatIO

/// What `prune` removes of an S3 mirror policy besides its expired snapshots: the blobs no
/// kept snapshot references (`SourceKind.pruneDependencies`).
///
/// Safety rests on the hook's contract: prune holds the repository's exclusive lock and calls
/// this only when no run of the policy is in progress (a mirror run holds a shared lock from
/// before its first blob to after its commit, so no uncommitted run can be writing a blob
/// this sees), and every committed manifest of the policy was readable. The references of
/// every kept snapshot are collected first — a listing that cannot be read stops the prune
/// before anything is deleted — sorted by address through temporary runs (millions of
/// objects never in memory at once), and merge-joined with one listing of
/// `<policy>/blobs/`. A key that is not a blob address this version knows is kept. Deletions
/// go in batches of 1,000; a kill between two batches leaves only unreferenced blobs, which
/// the next prune deletes. Then what killed runs' blob writers left uncommitted is discarded
/// (`ObjectStore.discardIncompleteWrites`).
struct S3MirrorPrune {
    let policy: String
    let kept: [Manifest]
    let repository: Repository
    let dryRun: Bool
    let context: RunContext

    static let batchSize = 1000

    func run() throws -> DependencyPruneReport {
        let scratch = try ScratchDirectory(context: context, label: "prune")
        defer { scratch.remove() }
        var references = SpilledRuns<MirrorEntry>(
            scratch: scratch, runLength: 100_000, precedes: { $0.blob < $1.blob },
            encode: MirrorListingCodec.encode, decode: { try MirrorListingCodec.decode($0) })
        for manifest in kept where manifest.source.kind == S3MirrorKind().name {
            let record = try manifest.source.details(as: S3MirrorRecord.self)
            for bucket in record.buckets {
                guard let artifact = manifest.artifacts.first(where: { $0.path == bucket.artifact }) else {
                    throw LifeboatError(.integrity, "backup \(manifest.id) of policy '\(policy)' names artifact \(bucket.artifact) for bucket '\(bucket.bucket)' and does not have it",
                                        hint: "No blob was deleted. Run 'lifeboat verify \(policy) \(manifest.id)'; prune collects blobs again once every kept snapshot reads.")
                }
                let reader = try SnapshotListingReader(artifact: artifact, of: manifest, in: repository, purpose: "prune", context: context)
                defer { reader.close() }
                while let entry = try reader.next() {
                    try context.cancellation.checkCancelled()
                    try references.add(MirrorEntry(key: entry.key, size: entry.size, etag: "", modified: 0, blob: entry.blob))
                }
            }
        }
        var merged = try references.merged(what: "the blobs the kept snapshots of policy '\(policy)' reference", unique: false) { $0.blob.description }
        var next = try merged.next()
        var deleted = 0, kept = 0
        var deletedBytes: Int64 = 0
        var batch: [String] = []
        func flush() throws {
            guard !batch.isEmpty else { return }
            try context.cancellation.checkCancelled()
            if !dryRun {
                try repository.store.delete(keys: batch)
                CrashPoint.pruneDependencies.reach(context)
            }
            batch.removeAll()
        }
        let scheme = try repository.contentAddressing().scheme
        try repository.store.forEachObject(prefix: MirrorLayout.blobPrefix(policy: policy)) { info in
            guard let address = MirrorLayout.address(ofBlobKey: info.key, policy: policy, scheme: scheme) else {
                kept += 1  // not an address this version knows: never deleted
                return true
            }
            while let reference = next, reference.blob < address { next = try merged.next() }
            if let reference = next, reference.blob == address {
                kept += 1
                return true
            }
            deleted += 1
            deletedBytes += info.size
            batch.append(info.key)
            if batch.count >= Self.batchSize { try flush() }
            return true
        }
        try flush()
        if !dryRun {
            // No mirror run writes a blob now (see above): what the blob writers of a killed run
            // left uncommitted (local temporary files, multipart uploads) goes too.
            try repository.store.discardIncompleteWrites(prefix: MirrorLayout.blobPrefix(policy: policy))
        }
        context.logger.info(dryRun ? "blobs no kept snapshot references (dry run: none deleted)" : "blobs no kept snapshot references deleted", metadata: [
            "policy.name": "\(policy)", "mirror.blobs_deleted": "\(deleted)", "mirror.blobs_kept": "\(kept)",
        ])
        return DependencyPruneReport(what: "blobs", deletedObjects: deleted, deletedBytes: deletedBytes, keptObjects: kept,
                                     detail: "blobs that none of the \(self.kept.count) kept snapshot\(self.kept.count == 1 ? "" : "s") references")
    }
}
