import Foundation
import LifeboatArchive
import LifeboatCore
import LifeboatHTTP
import LifeboatIO
import LifeboatS3
import Synchronization

/// One snapshot of a policy's buckets. For each bucket, in turn:
///
/// 1. list it (ListObjectsV2, `encoding-type=url`) into sorted runs of at most
///    `SpilledRuns.listingRunLength` objects, spilled to temporary files and merged back in key order
///    (the order is checked, not assumed);
/// 2. merge-join that with the bucket's listing in the previous committed snapshot: an object
///    with the same key, size, ETag and time keeps its entry without a request; the same
///    content with another time costs one HEAD (its metadata may have changed); anything else
///    is copied;
/// 3. copy `parallel` objects at once: a GET pinned to the listed ETag (`If-Match`), the
///    bytes hashed as they arrive and stored once at their address
///    (`<policy>/blobs/<aa>/<sha256>`, created only if absent). Objects up to
///    `bufferedObjectLimit` are held in memory and written with a conditional create (which
///    is also the check that the blob exists); larger ones stream into a staging key under
///    the run's backup directory, then are copied to their address unless a `stat` finds it
///    there, and the staging key is deleted;
/// 4. write the entries, in key order, to a temporary file, then store it as the bucket's
///    listing artifact (`listing.jsonl` in `data/NNNN.tar.zst`).
///
/// An object replaced during its copy (412) is listed again and copied again, a few times;
/// one that never holds still is left out and reported (the backup is then incomplete). One
/// deleted meanwhile (404) is left out with a warning. Blobs written by a run that fails stay
/// (a later prune collects the unreferenced ones); its staging keys are deleted with the rest
/// of its backup directory.
struct S3MirrorBackup {
    let configuration: S3MirrorConfiguration
    let sink: ArtifactSink
    let context: RunContext

    /// Objects up to this size are copied through memory; larger ones through a staging key.
    static let bufferedObjectLimit: Int64 = 8 << 20
    /// Attempts at copying an object that keeps changing under us.
    static let copyAttempts = 3

    var policy: String { sink.policy.name }

    func run() throws -> BackupOutcome {
        let source = try S3Endpoint(configuration.connection, what: "the s3 source of policy '\(policy)'", context: context)
        let previous = try previousSnapshot()
        let scratch = try ScratchDirectory(context: context, label: "mirror")
        defer { scratch.remove() }
        let copier = try BlobCopier(repository: sink.repository, policy: policy, backupID: sink.backupID,
                                    largeAtOnce: max(1, configuration.parallel / 4), context: context)
        var buckets: [S3MirrorRecord.Bucket] = []
        var skipped: [SkippedEntry] = []
        do {
            for bucket in configuration.buckets {
                let (record, changed) = try mirror(bucket, source: try source.client(bucket: bucket.bucket), previous: previous,
                                                   copier: copier, scratch: scratch)
                buckets.append(record)
                skipped += changed.map { SkippedEntry(path: "s3://\(bucket.bucket)/\($0)", reason: .changedWhileCopied) }
            }
        } catch {
            sink.noteWritten(copier.leftoverStagingKeys)
            throw error
        }
        sink.noteWritten(copier.leftoverStagingKeys)
        let record = S3MirrorRecord(endpoint: configuration.connection.endpoint, region: configuration.connection.region,
                                    pathStyle: configuration.connection.pathStyle, blobScheme: copier.addressing.scheme,
                                    buckets: buckets, base: previous?.id)
        return BackupOutcome(record: try SourceRecord(kind: "s3", details: record), skipped: skipped)
    }

    /// The newest committed snapshot of this policy from the same endpoint, to compare with;
    /// nil when there is none (every object is then read).
    func previousSnapshot() throws -> Manifest? {
        let manifest: Manifest
        do {
            manifest = try sink.repository.resolve(policy: policy, selector: "latest") { context.logger.warning("\($0)") }
        } catch let error as LifeboatError where error.code == .notFound {
            return nil
        } catch let error as LifeboatError where error.code == .integrity {
            context.logger.warning("no readable earlier snapshot to compare with: every object is read", metadata: ["error": "\(error.message)"])
            return nil
        }
        guard manifest.source.kind == "s3", let record = try? manifest.source.details(as: S3MirrorRecord.self),
              record.endpoint == configuration.connection.endpoint, record.blobScheme == (try sink.repository.contentAddressing(forWriting: true)).scheme
        else {
            context.logger.info("no earlier snapshot of this endpoint to compare with: every object is read")
            return nil
        }
        return manifest
    }

    /// The previous snapshot's listing of `bucket`, when it has one.
    func previousListing(of bucket: S3MirrorConfiguration.Bucket, in manifest: Manifest?) throws -> SnapshotListingReader? {
        guard let manifest, let record = try? manifest.source.details(as: S3MirrorRecord.self),
              let entry = record.buckets.first(where: { $0.bucket == bucket.bucket && $0.prefix == bucket.prefix }),
              let artifact = manifest.artifacts.first(where: { $0.path == entry.artifact })
        else { return nil }
        return try SnapshotListingReader(artifact: artifact, of: manifest, in: sink.repository, purpose: "compare", context: context)
    }

    /// Snapshots one bucket: returns its record and the keys that kept changing.
    func mirror(_ bucket: S3MirrorConfiguration.Bucket, source: S3Client, previous: Manifest?, copier: BlobCopier,
                scratch: ScratchDirectory) throws -> (S3MirrorRecord.Bucket, [String]) {
        let location = "s3://\(bucket.bucket)/\(bucket.prefix)"
        let started = context.clock()
        var runs = SpilledRuns(listingIn: scratch)
        try S3Endpoint.forEachObject(in: source, prefix: bucket.prefix, context: context) { try runs.add($0) }
        context.logger.info("bucket listed", metadata: ["s3.bucket": "\(location)", "s3.objects": "\(runs.count)",
                                                        "listing.runs": "\(max(1, runs.files.count))"])
        var merged = try runs.merged(what: "the listing of \(location)", describe: \.keyText)
        let previousListing = try previousListing(of: bucket, in: previous)
        defer { previousListing?.close() }
        var diff = MirrorListingDiff(current: { try merged.next() }, previous: { try previousListing?.next() }, what: location)

        let listingPath = scratch.newPath("listing")
        let output = try LineFileWriter(path: listingPath)
        var record = S3MirrorRecord.Bucket(bucket: bucket.bucket, prefix: bucket.prefix, artifact: "", objects: 0, bytes: 0,
                                           copiedObjects: 0, copiedBytes: 0, vanished: 0, changedDuringCopy: nil)
        var changed: [String] = []
        var removed = 0
        let deliver: (ObjectOutcome) throws -> Void = { outcome in
            switch outcome {
            case .entry(let entry, let copied):
                try output.write(line: MirrorListingCodec.encode(entry))
                record.objects += 1
                record.bytes += entry.size
                if copied {
                    record.copiedObjects += 1
                    record.copiedBytes += entry.size
                }
            case .vanished(let key):
                record.vanished += 1
                context.logger.warning("object deleted while the snapshot was taken; it is not in the snapshot",
                                       metadata: ["s3.object": "s3://\(bucket.bucket)/\(key)"])
            case .changedWhileCopied(let key):
                changed.append(key)
                context.logger.warning("object kept changing while it was copied; it is not in the snapshot",
                                       metadata: ["s3.object": "s3://\(bucket.bucket)/\(key)"])
            }
        }
        let work = OrderedWork<ObjectOutcome>(width: configuration.parallel, window: 4096, name: "lifeboat-mirror")
        defer { work.stop() }
        while let change = try diff.next() {
            try context.cancellation.checkCancelled()
            switch change {
            case .unchanged(let entry):
                try work.submit(value: .entry(entry, copied: false), deliver: deliver)
            case .removed:
                removed += 1
            case .touched(let previous, let current):
                try work.submit({ try copier.refresh(previous, current: current, from: source) }, deliver: deliver)
            case .copy(let current, _):
                try work.submit({ try copier.copy(current, from: source) }, deliver: deliver)
            }
        }
        try work.finish(deliver: deliver)
        try output.close()
        try context.cancellation.checkCancelled()

        let listing = try LocalFile.openForReading(listingPath)
        defer { listing.close() }
        let artifact = try sink.artifact(role: .s3Listing) { writer in
            try writer.addFile(path: EntryPath(MirrorLayout.listingEntry), size: output.size, mode: 0o600,
                               modificationTime: Int64(started.timeIntervalSince1970)) { try listing.read(into: $0) }
        }
        record.artifact = artifact.path
        record.changedDuringCopy = changed.isEmpty ? nil : changed
        context.logger.info("bucket snapshot written", metadata: [
            "s3.bucket": "\(location)", "s3.objects": "\(record.objects)", "s3.bytes": "\(record.bytes)",
            "mirror.copied_objects": "\(record.copiedObjects)", "mirror.copied_bytes": "\(record.copiedBytes)",
            "mirror.removed_objects": "\(removed)", "mirror.vanished_objects": "\(record.vanished)",
            "mirror.seconds": "\(String(format: "%.1f", context.clock().timeIntervalSince(started)))",
        ])
        return (record, changed)
    }
}

/// What became of one object of a listing.
enum ObjectOutcome: Sendable {
    /// Its entry in the new snapshot; `copied` when its content was read in this run.
    case entry(MirrorEntry, copied: Bool)
    /// Deleted since it was listed.
    case vanished(String)
    /// Replaced again and again while it was copied.
    case changedWhileCopied(String)
}

extension SkippedEntry.Reason {
    /// An S3 object replaced again and again while it was copied.
    public static let changedWhileCopied = SkippedEntry.Reason(rawValue: "changedWhileCopied")
}

/// Copies objects' contents into a policy's blobs; shared by the copy threads of a run.
final class BlobCopier: Sendable {
    let store: any ObjectStore
    let policy: String
    let backupID: String
    let context: RunContext
    /// How blobs are addressed in this repository (keyed when it is encrypted).
    let addressing: ContentAddressing
    /// Large objects copied at once (each holds a multipart upload's parts in memory).
    private let largeSlots: Slots
    private let staging = Mutex<(next: Int, live: Set<String>)>((0, []))

    init(repository: Repository, policy: String, backupID: String, largeAtOnce: Int, context: RunContext) throws {
        self.store = repository.store
        self.addressing = try repository.contentAddressing(forWriting: true)
        self.policy = policy
        self.backupID = backupID
        self.context = context
        self.largeSlots = Slots(largeAtOnce)
    }

    /// Staging keys written and not (yet) deleted: for the run's cleanup.
    var leftoverStagingKeys: [String] { staging.withLock { Array($0.live) } }

    /// The entry of an object whose content did not change (same size and ETag) but which was
    /// written again: one HEAD for its metadata. Copied after all when it changed meanwhile.
    func refresh(_ previous: MirrorEntry, current: MirrorListedObject, from source: S3Client) throws -> ObjectOutcome {
        guard let (head, headers) = try source.headObjectWithHeaders(key: current.keyText) else {
            return .vanished(current.keyText)
        }
        guard head.etag == current.etag, head.size == current.size else { return try copy(current, from: source) }
        let description = MirrorEntry.description(fromResponseHeaders: headers.entries)
        return .entry(MirrorEntry(key: current.key, size: current.size, etag: current.etag, modified: current.modified,
                                  contentType: description.contentType, metadata: description.metadata,
                                  headers: description.headers, blob: previous.blob), copied: false)
    }

    /// Copies an object's content to its blob; lists the object again and retries when it
    /// was replaced during the copy.
    func copy(_ listed: MirrorListedObject, from source: S3Client) throws -> ObjectOutcome {
        var current = listed
        for attempt in 1...S3MirrorBackup.copyAttempts {
            try context.cancellation.checkCancelled()
            switch try transfer(current, from: source) {
            case .entry(let entry): return .entry(entry, copied: true)
            case .missing: return .vanished(listed.keyText)
            case .changed:
                context.logger.info("object replaced while it was copied; listing it again", metadata: [
                    "s3.object": "\(source.display(current.keyText))", "mirror.attempt": "\(attempt)",
                ])
                let page = try source.listObjectsV2(prefix: current.keyText, maxKeys: 1, urlEncodedKeys: true)
                guard let object = page.objects.first, Array(object.key.utf8) == current.key else { return .vanished(listed.keyText) }
                current = MirrorListedObject(key: current.key, size: object.size, etag: object.etag,
                                             modified: S3Endpoint.milliseconds(object.modified))
            }
        }
        return .changedWhileCopied(listed.keyText)
    }

    enum Transfer {
        case entry(MirrorEntry)
        case changed
        case missing
    }

    /// One attempt: the object's bytes as listed (`If-Match`), hashed and stored at their address.
    func transfer(_ object: MirrorListedObject, from source: S3Client) throws -> Transfer {
        if object.size <= S3MirrorBackup.bufferedObjectLimit {
            return try transferBuffered(object, from: source)
        }
        largeSlots.acquire()
        defer { largeSlots.release() }
        return try transferStaged(object, from: source)
    }

    func transferBuffered(_ object: MirrorListedObject, from source: S3Client) throws -> Transfer {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(object.size))
        let limit = Int(object.size)
        let outcome = try restartingBrokenTransfers(object, source: source, restart: { bytes.removeAll(keepingCapacity: true) }) {
            try source.download(key: object.keyText, ifMatch: object.etag) { chunk in
                guard bytes.count + chunk.count <= limit else {
                    throw LifeboatError(.source, "S3 GetObject \(source.display(object.keyText)) sent more than the \(limit) bytes listed")
                }
                bytes.append(contentsOf: chunk)
            }
        }
        let headers: HTTPHeaders
        switch outcome {
        case .complete(let fields): headers = fields
        case .changed: return .changed
        case .missing: return .missing
        }
        guard bytes.count == limit else { return .changed }
        var hasher = addressing.hasher()
        bytes.withUnsafeBytes { hasher.update($0) }
        let address = hasher.finalize()
        let key = try MirrorLayout.blobKey(policy: policy, address: address)
        // The conditional create is the existence check (one request, not a stat and a put):
        // a blob that is there already is never replaced, only checked for its size.
        do {
            try store.put(key: key, bytes: bytes, ifAbsent: true)
        } catch let error as LifeboatError where error.code == .alreadyExists {
            guard try exists(key, size: object.size, for: object, source: source) else { throw error }
        }
        return .entry(entry(for: object, headers: headers, blob: address))
    }

    func transferStaged(_ object: MirrorListedObject, from source: S3Client) throws -> Transfer {
        let index = staging.withLock { state -> Int in
            state.next += 1
            return state.next
        }
        let stagingKey = MirrorLayout.stagingKey(policy: policy, id: backupID, index: index)
        var writer: (any ObjectWriter)?
        var hasher = addressing.hasher()
        var received: Int64 = 0
        defer { writer?.abort() }
        let outcome = try restartingBrokenTransfers(object, source: source, restart: {
            writer?.abort()
            writer = nil
        }) {
            hasher = addressing.hasher()
            received = 0
            let output = try store.openWriter(key: stagingKey, ifAbsent: false)
            writer = output
            return try source.download(key: object.keyText, ifMatch: object.etag) { chunk in
                received += Int64(chunk.count)
                guard received <= object.size else {
                    throw LifeboatError(.source, "S3 GetObject \(source.display(object.keyText)) sent more than the \(object.size) bytes listed")
                }
                try context.cancellation.checkCancelled()
                hasher.update(chunk)
                try output.write(chunk)
                context.progress.update("copy \(object.keyText)", done: received, total: object.size)
            }
        }
        context.progress.finish("copy \(object.keyText)")
        let headers: HTTPHeaders
        switch outcome {
        case .complete(let fields): headers = fields
        case .changed: return .changed
        case .missing: return .missing
        }
        guard received == object.size, let output = writer else { return .changed }
        staging.withLock { _ = $0.live.insert(stagingKey) }  // before the commit: a commit cut short may leave it
        try output.commit()
        writer = nil
        let address = hasher.finalize()
        let key = try MirrorLayout.blobKey(policy: policy, address: address)
        if try !exists(key, size: object.size, for: object, source: source) {
            try place(staging: stagingKey, at: key)
        }
        do {
            try store.delete(keys: [stagingKey])
            staging.withLock { _ = $0.live.remove(stagingKey) }
        } catch let error as LifeboatError where error.code != .cancelled {
            context.logger.warning("could not delete a staging object; the run's cleanup or prune removes it",
                                   metadata: ["object": "\(stagingKey)", "error": "\(error.message)"])
        }
        return .entry(entry(for: object, headers: headers, blob: address))
    }

    /// Runs `download`, starting it over (after `restart`) when the transfer broke after some
    /// bytes had arrived — a retry at the HTTP level cannot resume a body half consumed.
    func restartingBrokenTransfers(_ object: MirrorListedObject, source: S3Client, restart: () -> Void,
                                   _ download: () throws -> S3Client.Download) throws -> S3Client.Download {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try download()
            } catch let error as LifeboatError where error.code == .network && attempt < context.retry.maxAttempts {
                restart()
                context.logger.warning("S3 GetObject broke off; starting the object again", metadata: [
                    "s3.object": "\(source.display(object.keyText))", "error": "\(error.message)", "mirror.attempt": "\(attempt)",
                ])
                context.sleep(context.retry.delay(afterAttempt: attempt) { Double.random(in: $0) })
                try context.cancellation.checkCancelled()
            }
        }
    }

    /// Whether the blob is stored already (one `stat`); one of another size is a damaged
    /// repository, never silently referenced.
    func exists(_ key: String, size: Int64, for object: MirrorListedObject, source: S3Client) throws -> Bool {
        guard let info = try store.stat(key: key) else { return false }
        guard info.size == size else {
            throw LifeboatError(.integrity, "blob \(key) in \(store.location) holds \(info.size) bytes, but the content of \(source.display(object.keyText)) with that SHA-256 has \(size)",
                                hint: "The repository is damaged: run 'lifeboat verify \(policy) latest --read-data', and remove the damaged blob before the next backup.")
        }
        return true
    }

    /// Copies a staged object to its address: inside the store when it can (S3's CopyObject),
    /// else through this process into a conditional create.
    func place(staging: String, at key: String) throws {
        if store.features.contains(.serverSideCopy) {
            try store.copy(from: staging, to: key)
            return
        }
        let reader = try store.openReader(key: staging)
        defer { reader.close() }
        let writer = try store.openWriter(key: key, ifAbsent: true)
        do {
            try reader.forEachPiece { try writer.write($0) }
            try writer.commit()
        } catch let error as LifeboatError where error.code == .alreadyExists {
            writer.abort()  // stored meanwhile by another run: the same content
        } catch {
            writer.abort()
            throw error
        }
    }

    func entry(for object: MirrorListedObject, headers: HTTPHeaders, blob: BlobAddress) -> MirrorEntry {
        let description = MirrorEntry.description(fromResponseHeaders: headers.entries)
        return MirrorEntry(key: object.key, size: object.size, etag: object.etag, modified: object.modified,
                           contentType: description.contentType, metadata: description.metadata,
                           headers: description.headers, blob: blob)
    }
}

/// A counting semaphore for threads of our own.
final class Slots: @unchecked Sendable {
    private let condition = NSCondition()
    private var free: Int

    init(_ count: Int) { free = max(1, count) }

    func acquire() {
        condition.lock()
        while free == 0 { condition.wait() }
        free -= 1
        condition.unlock()
    }

    func release() {
        condition.lock()
        free += 1
        condition.signal()
        condition.unlock()
    }
}
