import Foundation
import Glibc
import LifeboatArchive
import LifeboatCore
import LifeboatHTTP
import LifeboatIO
import LifeboatS3
import Synchronization

/// Restores an S3 mirror snapshot: into a bucket (the same or another endpoint), writing only
/// the objects that differ, or into a new or empty directory. Every blob's SHA-256 is checked
/// as it is read, before its last byte reaches the target.
struct S3MirrorRestore {
    let manifest: Manifest
    let repository: Repository
    /// The policy's source, when a configuration is at hand (its credentials serve a target on
    /// the same endpoint).
    let source: S3MirrorConfiguration?
    let context: RunContext

    func run(to target: RestoreTarget) throws -> RestoreReport {
        let record = try manifest.source.details(as: S3MirrorRecord.self)
        let options = target.mirror ?? MirrorRestoreOptions()
        if options.key != nil, options.prefix != nil {
            throw LifeboatError(.usage, "--key and --prefix cannot be given together", hint: "Give one of them.")
        }
        var buckets = record.buckets
        if let wanted = options.bucket {
            buckets = buckets.filter { $0.bucket == wanted }
            guard !buckets.isEmpty else {
                throw LifeboatError(.usage, "backup \(manifest.id) of policy '\(manifest.policy)' holds no bucket '\(wanted)'",
                                    hint: "It holds: \(record.buckets.map(\.bucket).joined(separator: ", ")).")
            }
        }
        let writers = max(1, min(target.parallel ?? S3MirrorConfiguration.defaultParallel, 64))
        switch target.location {
        case .directory(let path):
            if options.deleteExtra {
                throw LifeboatError(.usage, "--delete-extra applies to a restore into a bucket", hint: "A directory restore writes into a new or empty directory.")
            }
            return try restore(buckets, toDirectory: path, options: options, writers: writers)
        case .s3(let bucket, let prefix):
            guard buckets.count == 1, let only = buckets.first else {
                throw LifeboatError(.usage, "backup \(manifest.id) of policy '\(manifest.policy)' holds \(buckets.count) buckets (\(buckets.map(\.bucket).joined(separator: ", "))); a restore into a bucket takes one",
                                    hint: "Choose it with --bucket.")
            }
            return try restore(only, record: record, toBucket: bucket, prefix: prefix, options: options, writers: writers)
        default:
            throw LifeboatError(.usage, "an S3 mirror backup is restored into a bucket (--to s3://BUCKET[/PREFIX]) or a directory, not \(target.location)")
        }
    }

    /// The listing of one bucket of the snapshot, entry by entry (checked against its SHA-256).
    func listing(of bucket: S3MirrorRecord.Bucket) throws -> SnapshotListingReader {
        guard let artifact = manifest.artifacts.first(where: { $0.path == bucket.artifact }) else {
            throw LifeboatError(.integrity, "backup \(manifest.id) names artifact \(bucket.artifact) for bucket '\(bucket.bucket)', and its manifest has none",
                                hint: "The manifest is damaged: restore another backup.")
        }
        return try SnapshotListingReader(artifact: artifact, of: manifest, in: repository, purpose: "restore", context: context)
    }

    // MARK: Into a bucket

    func restore(_ bucket: S3MirrorRecord.Bucket, record: S3MirrorRecord, toBucket name: String, prefix targetPrefix: String,
                 options: MirrorRestoreOptions, writers: Int) throws -> RestoreReport {
        let endpoint = try targetEndpoint(record: record, options: options)
        let client = try endpoint.client(bucket: name)
        let location = "s3://\(name)/\(targetPrefix)"
        let what = "restore of \(location)"
        let blobs = BlobReader(repository: repository, policy: manifest.policy, context: context)
        // Deletions are counted first: past --max-delete nothing at all is written or deleted.
        if options.deleteExtra {
            var extras = 0
            try join(bucket, client: client, targetPrefix: targetPrefix, options: options, what: what) { change in
                if case .extra = change { extras += 1 }
            }
            guard extras <= options.maxDelete else {
                throw LifeboatError(.usage, "restoring into \(location) would delete \(extras) objects the snapshot does not have, more than --max-delete \(options.maxDelete); nothing was written or deleted",
                                    hint: "Check the target (and --prefix); if the deletions are meant, run again with --max-delete \(extras).")
            }
        }
        var written = 0, kept = 0, deleted = 0
        var bytes: Int64 = 0
        var extras: [String] = []
        func deleteExtras() throws {
            guard !extras.isEmpty else { return }
            guard deleted + extras.count <= options.maxDelete else {
                throw LifeboatError(.storage, "restoring into \(location) would delete more than --max-delete \(options.maxDelete) objects (the target changed during the restore); \(deleted) were deleted",
                                    hint: "Run the restore again.")
            }
            try client.deleteObjects(keys: extras)
            deleted += extras.count
            extras.removeAll()
        }
        let work = OrderedWork<Int64?>(width: writers, window: 4 * writers, name: "lifeboat-restore")
        defer { work.stop() }
        let deliver: (Int64?) throws -> Void = { size in
            if let size {
                written += 1
                bytes += size
            } else {
                kept += 1
            }
        }
        try join(bucket, client: client, targetPrefix: targetPrefix, options: options, what: what) { change in
            switch change {
            case .missing(let entry), .different(let entry, _):
                let key = targetPrefix + entry.keyText
                try work.submit({ try blobs.upload(entry, to: client, key: key) }, deliver: deliver)
            case .sameContent(let entry, _):
                let key = targetPrefix + entry.keyText
                try work.submit({ () throws -> Int64? in
                    // Same bytes; the metadata decides (one HEAD).
                    if let (_, headers) = try client.headObjectWithHeaders(key: key) {
                        let description = MirrorEntry.description(fromResponseHeaders: headers.entries)
                        if description.contentType == entry.contentType, description.metadata == entry.metadata,
                           description.headers == entry.headers {
                            return nil
                        }
                    }
                    return try blobs.upload(entry, to: client, key: key)
                }, deliver: deliver)
            case .extra(let object):
                guard options.deleteExtra else { return }
                extras.append(targetPrefix + object.keyText)
                if extras.count == 1000 { try deleteExtras() }
            }
        }
        try work.finish(deliver: deliver)
        try deleteExtras()
        var report = RestoreReport(policy: manifest.policy, backup: manifest.id, target: location,
                                   restored: ["\(written) object\(written == 1 ? "" : "s") written (\(formatBytes(bytes)))",
                                              "\(kept) already identical"])
        if options.deleteExtra { report.restored.append("\(deleted) deleted (not in the snapshot)") }
        context.logger.info("bucket restored", metadata: [
            "restore.target": "\(location)", "restore.written": "\(written)", "restore.identical": "\(kept)",
            "restore.deleted": "\(deleted)",
        ])
        return report
    }

    /// Walks the selected entries of `bucket`'s listing beside the target's listing.
    func join(_ bucket: S3MirrorRecord.Bucket, client: S3Client, targetPrefix: String, options: MirrorRestoreOptions,
              what: String, _ body: (MirrorTargetChange) throws -> Void) throws {
        let reader = try listing(of: bucket)
        defer { reader.close() }
        let pager = ListingPager(client: client, prefix: targetPrefix + options.scopePrefix, context: context)
        let prefixBytes = Array(targetPrefix.utf8)
        var diff = MirrorTargetDiff(
            snapshot: {
                while let entry = try reader.next() {
                    if options.selects(entry.key) { return entry }
                }
                return nil
            },
            target: {
                while let object = try pager.next() {
                    guard object.key.starts(with: prefixBytes) else { continue }
                    var relative = object
                    relative.key = Array(object.key.dropFirst(prefixBytes.count))
                    if options.selects(relative.key) { return relative }
                }
                return nil
            },
            what: what)
        while let change = try diff.next() {
            try context.cancellation.checkCancelled()
            try body(change)
        }
    }

    /// The target's endpoint: `--to-endpoint` (or `--endpoint` without `--repository`), else
    /// the snapshot's source. Credentials: the policy's source credentials when the endpoint is
    /// the policy's, else the environment (`AWS_ACCESS_KEY_ID`, …, or a profile).
    func targetEndpoint(record: S3MirrorRecord, options: MirrorRestoreOptions) throws -> S3Endpoint {
        let endpoint = options.endpoint ?? record.endpoint
        var connection: S3RepositoryConfig
        if let source, source.connection.endpoint == endpoint {
            connection = source.connection
        } else {
            connection = S3RepositoryConfig(endpoint: endpoint, region: record.region, bucket: "", prefix: "", accessKeyID: nil,
                                            secretAccessKey: nil, sessionToken: nil, profile: nil, pathStyle: record.pathStyle,
                                            caBundle: nil)
        }
        if let region = options.region { connection.region = region }
        if let pathStyle = options.pathStyle { connection.pathStyle = pathStyle }
        if let caBundle = options.caBundle { connection.caBundle = caBundle }
        return try S3Endpoint(connection, what: "the restore target \(endpoint)", context: context)
    }

    // MARK: Into a directory

    func restore(_ buckets: [S3MirrorRecord.Bucket], toDirectory path: String, options: MirrorRestoreOptions,
                 writers: Int) throws -> RestoreReport {
        let held = try RestoreDirectory.claim(path)
        defer { held.release() }
        let blobs = BlobReader(repository: repository, policy: manifest.policy, context: context)
        var objects = 0
        var bytes: Int64 = 0
        do {
            try makeDirectories(path + "/.lifeboat", mode: 0o700)
            for bucket in buckets {
                let root = path + "/" + bucket.bucket
                try makeDirectories(root, mode: 0o700)
                let metadata = try LineFileWriter(path: path + "/.lifeboat/\(bucket.bucket).jsonl")
                let reader = try listing(of: bucket)
                defer { reader.close() }
                let work = OrderedWork<Int64>(width: writers, window: 4 * writers, name: "lifeboat-restore")
                defer { work.stop() }
                let deliver: (Int64) throws -> Void = { size in
                    objects += 1
                    bytes += size
                }
                while let entry = try reader.next() {
                    try context.cancellation.checkCancelled()
                    guard options.selects(entry.key) else { continue }
                    let file: String
                    let directory: Bool
                    do {
                        let (components, isDirectory) = try MirrorKeyPath.components(of: entry.key, size: entry.size)
                        file = root + "/" + components.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
                        directory = isDirectory
                    } catch let refusal {
                        throw LifeboatError(.usage, "object '\(entry.keyText)' of bucket '\(bucket.bucket)' cannot be restored into a directory: \(refusal)",
                                            hint: "Restore it into a bucket (--to s3://…), or leave it out with --prefix or --key.")
                    }
                    try metadata.write(line: MirrorListingCodec.encode(entry))
                    if directory {
                        try makeDirectories(file, mode: 0o700)
                        try work.submit(value: 0, deliver: deliver)
                        continue
                    }
                    try work.submit({ try blobs.write(entry, toFile: file) }, deliver: deliver)
                }
                try work.finish(deliver: deliver)
                try metadata.close()
            }
            try syncFileSystem(of: path)
        } catch {
            held.removeWhatWasRestored(context: context)
            throw error
        }
        return RestoreReport(policy: manifest.policy, backup: manifest.id, target: path,
                             restored: ["\(objects) object\(objects == 1 ? "" : "s") (\(formatBytes(bytes))) in \(buckets.map { "\(path)/\($0.bucket)" }.joined(separator: ", ")); metadata in \(path)/.lifeboat/"])
    }
}

/// Reads blobs of a policy for a restore, into a bucket or a file.
struct BlobReader: Sendable {
    let repository: Repository
    let policy: String
    let context: RunContext

    /// Streams a blob to `body`, a piece at a time, checked (see `VerifiedBlob`).
    func read(_ entry: MirrorEntry, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let blob = try VerifiedBlob(entry, repository: repository, policy: policy, context: context)
        defer { blob.close() }
        try blob.forEachPiece(body)
    }

    /// Writes an object into a bucket with its content type, metadata and headers; returns its size.
    func upload(_ entry: MirrorEntry, to client: S3Client, key: String) throws -> Int64? {
        var headers: [(name: String, value: String)] = []
        if let type = entry.contentType { headers.append(("Content-Type", type)) }
        headers += entry.metadata.map { ("x-amz-meta-\($0.name)", $0.value) }
        headers += entry.headers.map { ($0.name, $0.value) }
        let blob = try VerifiedBlob(entry, repository: repository, policy: policy, context: context)
        defer { blob.close() }
        try client.uploadObject(key: key, size: entry.size, headers: headers) { try blob.read(into: $0) }
        return entry.size
    }

    /// Writes an object into a new file (0600), synced; returns its size.
    func write(_ entry: MirrorEntry, toFile path: String) throws -> Int64 {
        let parent = (path as NSString).deletingLastPathComponent
        try makeDirectories(parent, mode: 0o700)
        let file: LocalFile
        do {
            file = try LocalFile.createNew(path)
        } catch let error as LifeboatError {
            throw LifeboatError(.usage, "object '\(entry.keyText)' cannot be restored to '\(path)': \(error.message)",
                                hint: "Another key of the bucket is restored to the same path (a key that is also a folder of others); restore into a bucket instead.")
        }
        defer { file.close() }
        try read(entry) { try file.write($0) }
        try file.sync()
        return entry.size
    }
}

/// A blob opened for reading, its size and SHA-256 checked against the entry before the last
/// byte is handed over: a damaged blob fails the read (naming the key and the blob) before a
/// target has all of it, so an upload is aborted and never completes with wrong content.
final class VerifiedBlob: ObjectReader {
    let entry: MirrorEntry
    let key: String
    let policy: String
    let context: RunContext
    private let reader: any ObjectReader
    private let addressing: ContentAddressing
    private var hasher: BlobHasher
    private var total: Int64 = 0

    init(_ entry: MirrorEntry, repository: Repository, policy: String, context: RunContext) throws {
        self.entry = entry
        self.policy = policy
        self.context = context
        key = try MirrorLayout.blobKey(policy: policy, address: entry.blob)
        addressing = try repository.contentAddressing(scheme: entry.blob.scheme)
        hasher = addressing.hasher()
        do {
            reader = try repository.store.openReader(key: key)
        } catch let error as LifeboatError where error.code == .notFound {
            throw LifeboatError(.integrity, "the content of '\(entry.keyText)' (blob \(entry.blob)) is missing from the repository (\(repository.locate(key)))",
                                hint: "Run 'lifeboat verify \(policy) --read-data' on this backup; restore another backup.")
        }
    }

    func close() { reader.close() }

    func damaged(_ what: String) -> LifeboatError {
        LifeboatError(.integrity, "the content of '\(entry.keyText)' does not match its blob \(entry.blob): \(what)",
                      hint: "The repository is damaged: run 'lifeboat verify \(policy) --read-data', and restore this object from another backup.")
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try context.cancellation.checkCancelled()
        let room = Int(min(Int64(buffer.count), entry.size - total))
        let n = room > 0 ? try reader.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<room])) : 0
        if n == 0, total < entry.size { throw damaged("it ends after \(total) of \(entry.size) bytes") }
        hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        total += Int64(n)
        if total == entry.size {
            var probe = [UInt8](repeating: 0, count: 1)
            let extra = try probe.withUnsafeMutableBytes { try reader.read(into: $0) }
            if extra > 0 { throw damaged("it holds more than \(entry.size) bytes") }
            let digest = hasher.finalize()
            if digest != entry.blob { throw damaged("its bytes hash to \(digest)") }
            hasher = addressing.hasher()
            total += 1  // checked: further reads return 0
            return n
        }
        return total > entry.size ? 0 : n
    }
}
