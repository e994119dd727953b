import Foundation
import LifeboatArchive
import LifeboatCore
import LifeboatIO

/// What `verify` checks of an S3 mirror snapshot besides its listing artifacts (which the
/// generic verify re-reads, SHA-256 of every byte): that every blob the listings reference is
/// in the repository with the size recorded, and with `--read-data` (or a subset) that its
/// content still hashes to its address.
///
/// The references are sorted by address through temporary runs (a snapshot of millions of
/// objects never has them all in memory), de-duplicated, and merge-joined with one listing of
/// `<policy>/blobs/` — one LIST per 1,000 blobs instead of a HEAD per object.
struct S3MirrorVerify {
    let manifest: Manifest
    let repository: Repository
    let options: VerifyOptions
    let context: RunContext

    /// A blob as a snapshot references it: address, size, and the first key naming it (for messages).
    typealias Reference = MirrorEntry

    func run() throws -> [VerificationProblem] {
        let record = try manifest.source.details(as: S3MirrorRecord.self)
        let scratch = try ScratchDirectory(context: context, label: "verify")
        defer { scratch.remove() }
        var problems: [VerificationProblem] = []
        var references = SpilledRuns<Reference>(
            scratch: scratch, runLength: 100_000, precedes: { $0.blob < $1.blob },
            encode: MirrorListingCodec.encode, decode: { try MirrorListingCodec.decode($0) })
        for bucket in record.buckets {
            guard let artifact = manifest.artifacts.first(where: { $0.path == bucket.artifact }) else {
                problems.append(VerificationProblem(artifact: bucket.artifact, entry: nil,
                                                    message: "the manifest names it for bucket '\(bucket.bucket)' but has no such artifact"))
                continue
            }
            do {
                let reader = try SnapshotListingReader(artifact: artifact, of: manifest, in: repository, purpose: "verify", context: context)
                defer { reader.close() }
                while let entry = try reader.next() {
                    try context.cancellation.checkCancelled()
                    try references.add(MirrorEntry(key: Array("s3://\(bucket.bucket)/".utf8) + entry.key, size: entry.size,
                                                   etag: "", modified: 0, blob: entry.blob))
                }
            } catch let error as LifeboatError where error.code == .cancelled {
                throw error
            } catch {
                problems.append(VerificationProblem(artifact: artifact.path, entry: MirrorLayout.listingEntry, message: "\(error)"))
            }
        }
        var merged = try references.merged(what: "the blobs of backup \(manifest.id)", unique: false) { $0.blob.description }
        var next = try merged.next()
        var checked = 0
        var toRead: [Reference] = []
        func problem(_ reference: Reference, _ message: String) {
            problems.append(VerificationProblem(artifact: "blob \(reference.blob)", entry: reference.keyText, message: message))
        }
        /// The next reference of another blob than `current` (one check per blob).
        func advance(past current: Reference) throws {
            while let following = try merged.next() {
                if following.blob != current.blob {
                    next = following
                    return
                }
                if following.size != current.size {
                    problem(following, "it is referenced with \(following.size) bytes here and \(current.size) bytes by '\(current.keyText)'")
                }
            }
            next = nil
        }
        let policy = manifest.policy
        let scheme = try repository.contentAddressing().scheme
        try repository.store.forEachObject(prefix: MirrorLayout.blobPrefix(policy: policy)) { info in
            guard let address = MirrorLayout.address(ofBlobKey: info.key, policy: policy, scheme: scheme) else { return true }
            while let reference = next, reference.blob < address {
                problem(reference, "it is missing from the repository (\(repository.locate(try MirrorLayout.blobKey(policy: policy, address: reference.blob))))")
                try advance(past: reference)
            }
            guard let reference = next, reference.blob == address else { return true }
            checked += 1
            if info.size != reference.size {
                problem(reference, "it holds \(info.size) bytes, not \(reference.size)")
            } else if options.readData, options.subset?.contains(address) ?? true {
                toRead.append(reference)
                if toRead.count >= 256 {
                    problems += try read(toRead)
                    toRead.removeAll()
                }
            }
            try advance(past: reference)
            return true
        }
        while let reference = next {
            problem(reference, "it is missing from the repository (\(repository.locate(try MirrorLayout.blobKey(policy: policy, address: reference.blob))))")
            try advance(past: reference)
        }
        problems += try read(toRead)
        context.logger.info("blobs verified", metadata: [
            "mirror.blobs": "\(checked)", "mirror.read_data": "\(options.readData)",
            "mirror.read_data_subset": "\(options.subset?.description ?? "all")",
        ])
        return problems
    }

    /// Reads blobs again (four at a time) and checks their SHA-256.
    func read(_ references: [Reference]) throws -> [VerificationProblem] {
        guard !references.isEmpty else { return [] }
        var problems: [VerificationProblem] = []
        let blobs = BlobReader(repository: repository, policy: manifest.policy, context: context)
        let work = OrderedWork<VerificationProblem?>(width: 4, window: 16, name: "lifeboat-verify")
        defer { work.stop() }
        let deliver: (VerificationProblem?) throws -> Void = { problem in
            if let problem { problems.append(problem) }
        }
        for reference in references {
            try work.submit({ () throws -> VerificationProblem? in
                do {
                    try blobs.read(reference) { _ in }
                    return nil
                } catch let error as LifeboatError where error.code == .integrity {
                    return VerificationProblem(artifact: "blob \(reference.blob)", entry: reference.keyText, message: error.message)
                }
            }, deliver: deliver)
        }
        try work.finish(deliver: deliver)
        return problems
    }
}
