import Foundation
import LifeboatCore
import LifeboatIO
import Logging
import Synchronization

/// A repository on S3: the local store's layout under a bucket and prefix.
///
/// Writers stream: an object smaller than one part is sent with a single PutObject; a larger
/// one becomes a multipart upload whose parts go up in parallel (`concurrency` at a time,
/// memory bounded by `concurrency + 1` parts), and which is aborted when the writer is. The
/// part size grows every 1,000 parts so that an object of any size fits in S3's 10,000.
/// Readers fetch ranges of `partSize` bytes, `readAhead` of them ahead of the caller, each
/// with `If-Match` so an object replaced mid-read is detected rather than spliced.
///
/// When the client's cancellation is cancelled, transfers in flight (parts, ranges) end at
/// once with `LifeboatError.cancelled`; aborting a writer then still reaches the server,
/// through the client's `forCleanup()`.
public struct S3Store: ObjectStore {
    public let client: S3Client
    /// Key prefix of the repository inside the bucket: empty or ending in `/`.
    public let prefix: String
    public let partSize: Int
    public let concurrency: Int
    public let readAhead: Int
    /// The part buffers every writer of this store (and of its copies) holds at once; see
    /// `PartMemory`.
    public let partMemory: PartMemory
    let logger: Logger

    /// - Parameter partMemoryLimit: the bytes of part buffers all writers may hold at once
    ///   (default: 64 MiB, or one upload's `concurrency + 1` parts when that is more).
    public init(client: S3Client, prefix: String, partSize: Int = 8 << 20, concurrency: Int = 6, readAhead: Int = 4,
                partMemoryLimit: Int? = nil, logger: Logger) {
        self.client = client
        self.prefix = prefix.isEmpty || prefix.hasSuffix("/") ? prefix : prefix + "/"
        self.partSize = max(partSize, 5 << 20)  // S3's minimum part size
        self.concurrency = max(1, concurrency)
        self.readAhead = max(1, readAhead)
        self.partMemory = PartMemory(limit: partMemoryLimit ?? max(64 << 20, (self.concurrency + 1) * self.partSize))
        self.logger = logger
    }

    public var location: String { "s3://\(client.configuration.bucket)/\(prefix)" }

    /// The size of part `number` (1-based): `partSize`, doubled after every 1,000 parts,
    /// at most 5 GiB. 10,000 parts of 8 MiB doubling reach 8 TiB, beyond S3's 5 TiB objects.
    public static func partSize(number: Int, base: Int) -> Int {
        let doublings = min((number - 1) / 1000, 20)
        return min(base << doublings, 5 << 30)
    }

    /// Conditional writes through `If-None-Match: *` (PutObject and CompleteMultipartUpload);
    /// copies through CopyObject.
    public var features: StoreFeatures { [.conditionalWrite, .serverSideCopy] }

    /// One ListObjectsV2 request; the cursor is S3's continuation token.
    public func listPage(_ request: ListRequest) throws -> ListPage {
        try request.validate(in: location)
        let result = try client.listObjectsV2(
            prefix: prefix + request.prefix, delimiter: request.delimiter,
            startAfter: request.startAfter.map { prefix + $0 }, continuationToken: request.cursor, maxKeys: request.pageSize)
        func relative(_ key: String) -> String { String(decoding: key.utf8.dropFirst(prefix.utf8.count), as: UTF8.self) }
        return ListPage(
            // An object named the prefix itself (a "folder" made in a console) is no key of the store.
            objects: result.objects.filter { $0.key.utf8.count > prefix.utf8.count }.map {
                ObjectInfo(key: relative($0.key), size: $0.size, etag: $0.etag, modified: $0.modified)
            },
            commonPrefixes: result.commonPrefixes.map(relative),
            nextCursor: result.nextContinuationToken)
    }

    public func stat(key: String) throws -> ObjectInfo? {
        try client.headObject(key: prefix + key).map { ObjectInfo(key: key, size: $0.size, etag: $0.etag, modified: $0.modified) }
    }

    public func openWriter(key: String, ifAbsent: Bool) throws -> any ObjectWriter {
        S3ObjectWriter(store: self, key: key, ifAbsent: ifAbsent)
    }

    public func openReader(key: String) throws -> any ObjectReader {
        guard let head = try client.headObject(key: prefix + key) else {
            throw LifeboatError(.notFound, "object '\(key)' does not exist in repository \(location)")
        }
        return S3ObjectReader(store: self, key: key, size: head.size, etag: head.etag)
    }

    public func put(key: String, bytes: [UInt8], ifAbsent: Bool) throws {
        try client.putObject(key: prefix + key, bytes: bytes, ifAbsent: ifAbsent)
    }

    /// Objects up to this size are copied with one CopyObject (S3's limit); larger ones in
    /// parts of `copyPartSize` with UploadPartCopy.
    public var copyLimit: Int64 = 5 << 30
    public var copyPartSize: Int64 = 1 << 30

    /// A copy inside the bucket: the bytes never leave the server. CopyObject up to
    /// `copyLimit`; beyond, a multipart upload whose parts the server copies (`concurrency` at
    /// a time), each on the condition that the source still has the ETag it had at the start;
    /// on any failure the upload is aborted and nothing is left behind.
    public func copy(from source: String, to destination: String) throws {
        do {
            guard let head = try client.headObject(key: prefix + source) else {
                throw LifeboatError(.notFound, "object '\(source)' has no HEAD in repository \(location)")
            }
            if head.size <= copyLimit {
                try client.copyObject(from: prefix + source, to: prefix + destination)
            } else {
                try copyInParts(from: prefix + source, size: head.size, etag: head.etag, to: prefix + destination)
            }
        } catch let error as LifeboatError where error.code == .notFound {
            throw LifeboatError(.notFound, "object '\(source)' does not exist in repository \(location); it cannot be copied",
                                underlying: error)
        }
    }

    private func copyInParts(from source: String, size: Int64, etag: String?, to destination: String) throws {
        let partSize = max(copyPartSize, (size + 9_999) / 10_000, 5 << 20)
        let ranges = stride(from: Int64(0), to: size, by: Int(partSize)).map { $0...(min($0 + partSize, size) - 1) }
        let uploadID = try client.createMultipartUpload(key: destination, declareChecksum: false)
        let state = Mutex<(parts: [S3Client.UploadedPart], error: (any Error)?)>(([], nil))
        let jobs: [@Sendable () -> Void] = ranges.indices.map { [client] index in
            {
                guard state.withLock({ $0.error == nil }) else { return }  // after a failure no new part starts
                do {
                    let part = try client.uploadPartCopy(key: destination, uploadID: uploadID, partNumber: index + 1, source: source,
                                                         range: ranges[index], ifMatch: etag)
                    state.withLock { $0.parts.append(part) }
                } catch {
                    state.withLock { if $0.error == nil { $0.error = error } }
                }
            }
        }
        Threads.run(jobs, width: concurrency, name: "lifeboat-s3-copy-part")
        let (parts, failure) = state.withLock { ($0.parts, $0.error) }
        do {
            if let failure { throw failure }
            try client.completeMultipartUpload(key: destination, uploadID: uploadID, parts: parts)
        } catch {
            do {
                try client.forCleanup().abortMultipartUpload(key: destination, uploadID: uploadID)
            } catch {
                logger.warning("could not abort a multipart copy; a lifecycle rule for incomplete uploads removes it", metadata: [
                    "s3.object": "\(client.display(destination))", "s3.upload_id": "\(uploadID)", "error": "\(error)",
                ])
            }
            throw error
        }
    }

    public func delete(keys: [String]) throws {
        try client.deleteObjects(keys: keys.map { prefix + $0 })
    }

    /// The multipart uploads in progress under the prefix (a killed writer's parts, which S3
    /// keeps, and bills, until they are aborted) initiated before `cutoff`; unless `dryRun`,
    /// aborts them. An upload's age is its initiation: a writer that has been sending parts
    /// for longer than the cut-off would lose its upload (see the README on prune's grace).
    public func discardIncompleteWrites(prefix directory: String, olderThan cutoff: Date?, dryRun: Bool) throws -> [IncompleteWrite] {
        var found: [IncompleteWrite] = []
        for upload in try client.listMultipartUploads(prefix: prefix + directory) {
            // Without a readable date, an upload counts as new: never abort what may be live.
            let initiated = upload.initiated ?? .distantFuture
            if let cutoff, initiated >= cutoff { continue }
            if !dryRun { try client.abortMultipartUpload(key: upload.key, uploadID: upload.uploadID) }
            found.append(IncompleteWrite(key: String(decoding: upload.key.utf8.dropFirst(prefix.utf8.count), as: UTF8.self),
                                         location: "\(client.display(upload.key)) (upload \(upload.uploadID))", modified: initiated))
        }
        return found
    }
}

/// Fills a part buffer, then hands it to `PartUploads`, whose workers send it; see `S3Store`.
///
/// `@unchecked Sendable` is not claimed: the writer is used by one thread; the workers share
/// only `PartUploads`, which is locked, and the buffers it hands over.
final class S3ObjectWriter: ObjectWriter {
    let store: S3Store
    let key: String
    /// Commit with `If-None-Match: *`.
    let ifAbsent: Bool
    /// The part being filled; nil between a full part sent and the next write (which takes a
    /// buffer from `uploads`). Before a multipart upload exists, it is the whole object.
    private var buffer: PartBuffer?
    private var nextPart = 1
    private var uploads: PartUploads?
    /// CreateMultipartUpload failed after it may have reached the server (a cancellation or a
    /// broken connection while waiting for its answer): an upload may exist whose id we never
    /// learnt.
    private var creationInterrupted = false
    private var finished = false

    init(store: S3Store, key: String, ifAbsent: Bool) {
        self.store = store
        self.key = key
        self.ifAbsent = ifAbsent
    }

    deinit { abort() }

    var fullKey: String { store.prefix + key }

    /// What the multipart upload used (buffers made, worker threads started), for tests; nil
    /// when the object went up in one PutObject.
    var partStatistics: (buffers: Int, workers: Int)? { uploads?.statistics }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard !finished else { throw LifeboatError(.internalError, "write to \(store.client.display(fullKey)) after it was closed") }
        var offset = 0
        while offset < bytes.count {
            let size = S3Store.partSize(number: nextPart, base: store.partSize)
            let part = try currentBuffer(capacity: size)
            let n = min(size - part.bytes.count, bytes.count - offset)
            part.bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)]))
            offset += n
            if part.bytes.count == size { try sendPart() }
        }
    }

    /// The buffer being filled: the first part's (made here: a small object never needs
    /// more), or one `uploads` gives back once its part was sent (waiting for one when
    /// `concurrency + 1` are in use).
    private func currentBuffer(capacity: Int) throws -> PartBuffer {
        if let buffer { return buffer }
        let part: PartBuffer
        if let uploads {
            part = try uploads.takeBuffer(capacity: capacity)
        } else {
            store.partMemory.acquire(capacity)  // the writer's first buffer: waits for room
            firstReserved = capacity
            part = PartBuffer(capacity: capacity)
        }
        buffer = part
        return part
    }

    /// The part memory of the first buffer until a multipart upload starts (which then
    /// accounts for every buffer), given back to the store once the writer is done.
    private var firstReserved = 0

    private func releaseMemory() {
        store.partMemory.release(firstReserved + (uploads?.takeReserved() ?? 0))
        firstReserved = 0
    }

    private func sendPart() throws {
        if uploads == nil {
            let uploadID: String
            do {
                uploadID = try store.client.createMultipartUpload(key: fullKey)
            } catch {
                creationInterrupted = true
                throw error
            }
            uploads = PartUploads(client: store.client, key: fullKey, uploadID: uploadID, concurrency: store.concurrency,
                                  memory: store.partMemory, reserved: firstReserved)
            firstReserved = 0
        }
        guard let uploads, let part = buffer else { return }
        guard nextPart <= 10_000 else {
            throw LifeboatError(.storage, "\(store.client.display(fullKey)) would need more than 10,000 parts")
        }
        buffer = nil
        try uploads.submit(number: nextPart, buffer: part)
        nextPart += 1
    }

    func commit() throws {
        guard !finished else { throw LifeboatError(.internalError, "commit of \(store.client.display(fullKey)) after it was closed") }
        if let uploads {
            if let buffer, !buffer.bytes.isEmpty { try sendPart() }
            let parts = try uploads.waitForAll()
            do {
                try store.client.completeMultipartUpload(key: fullKey, uploadID: uploads.uploadID, parts: parts, ifAbsent: ifAbsent)
            } catch let error as LifeboatError where error.code == .alreadyExists {
                abort()  // the upload can never complete: its parts would stay, billed and invisible
                throw error
            }
        } else {
            try store.client.putObject(key: fullKey, bytes: buffer?.bytes ?? [], ifAbsent: ifAbsent)
        }
        finished = true
        buffer = nil
        releaseMemory()
    }

    /// Aborts the multipart upload (so no parts are left behind, billed and invisible): parts
    /// not started are dropped, those in flight end (at once when the run was cancelled), and
    /// AbortMultipartUpload goes out through a cleanup client, which the run's cancellation
    /// does not stop.
    func abort() {
        guard !finished else { return }
        finished = true
        buffer = nil
        if let uploads {
            uploads.cancelAndWait()
            releaseMemory()
            abortUpload(uploads.uploadID, client: store.client.forCleanup())
        } else {
            releaseMemory()
            if creationInterrupted { abortUploadsOfUnknownID() }
        }
    }

    private func abortUpload(_ uploadID: String, client: S3Client) {
        do {
            try client.abortMultipartUpload(key: fullKey, uploadID: uploadID)
        } catch {
            store.logger.warning("could not abort the multipart upload; its parts stay until it is aborted", metadata: [
                "s3.object": "\(store.client.display(fullKey))", "s3.upload_id": "\(uploadID)",
                "error": "\(String(describing: error))",
            ])
        }
    }

    /// The CreateMultipartUpload of this writer may have created an upload whose answer never
    /// came: every upload in progress for exactly this key is aborted. (A repository's keys
    /// are written by one run, so they are this writer's.)
    private func abortUploadsOfUnknownID() {
        let client = store.client.forCleanup()
        let found: [S3Client.MultipartUpload]
        do {
            found = try client.listMultipartUploads(prefix: fullKey)
        } catch {
            store.logger.warning("could not look for a multipart upload whose creation was interrupted; if it exists, its parts stay until it is aborted", metadata: [
                "s3.object": "\(store.client.display(fullKey))", "error": "\(String(describing: error))",
            ])
            return
        }
        for upload in found where upload.key == fullKey {
            abortUpload(upload.uploadID, client: client)
        }
    }
}

/// The bytes of one part: filled by the writer, sent by a worker, then filled again with a
/// later part. Only this box refers to its array (and, while a worker sends it, the request),
/// so filling it again appends in place: no allocation, no page faults, no copy.
///
/// `@unchecked Sendable`: one thread uses it at a time — the writer while it fills it, a worker
/// while it sends it — and it changes hands under `PartUploads`' lock.
final class PartBuffer: @unchecked Sendable {
    var bytes: [UInt8] = []
    /// The part memory held for it (`PartMemory`).
    var reservation: Int

    init(capacity: Int) {
        bytes.reserveCapacity(capacity)
        reservation = capacity
    }
}

/// The bytes of part buffers that the writers of one store hold at once: a writer waits for
/// room before its first buffer, and makes further ones only while there is room (else it
/// refills those it has, as their parts are sent). A mirror copying many large objects side by
/// side then holds at most `limit` of parts, not `parallel × (concurrency + 1)` of them.
/// Counted by the buffers' capacity. A request larger than the limit is granted when nothing
/// else is held, so that one part of any size can always go.
///
/// Holders never wait for one another: a writer that has a buffer goes on with it. The one
/// wait — for a first buffer — ends when another writer commits, aborts, or sends a part; so a
/// thread must not hold a writer open while it waits for another writer of the same store to
/// get its first buffer (no caller does: each writes one object at a time per thread).
public final class PartMemory: @unchecked Sendable {
    public let limit: Int
    private let condition = NSCondition()
    private var used = 0
    private var highest = 0
    private var waiting = 0

    init(limit: Int) { self.limit = max(1, limit) }

    /// What is held now (for tests).
    public var inUse: Int {
        condition.lock()
        defer { condition.unlock() }
        return used
    }

    /// The most held at once so far (for tests).
    public var peak: Int {
        condition.lock()
        defer { condition.unlock() }
        return highest
    }

    /// Waits until `bytes` fit (or nothing is held); with `force`, takes them at once.
    func acquire(_ bytes: Int, force: Bool = false) {
        condition.lock()
        waiting += 1
        while !force && used > 0 && used + bytes > limit { condition.wait() }
        waiting -= 1
        used += bytes
        highest = max(highest, used)
        condition.unlock()
    }

    /// Whether a writer waits for room for its first buffer: uploads then give back buffers
    /// beyond their first as their parts are sent, rather than keep them.
    var hasWaiters: Bool {
        condition.lock()
        defer { condition.unlock() }
        return waiting > 0
    }

    /// Takes `bytes` when they fit now.
    func tryAcquire(_ bytes: Int) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard used + bytes <= limit else { return false }
        used += bytes
        highest = max(highest, used)
        return true
    }

    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        condition.lock()
        used -= bytes
        condition.broadcast()
        condition.unlock()
    }
}

/// The parts of one multipart upload: at most `concurrency` worker threads send them, each
/// part as soon as a worker is free, and every buffer goes back to the writer once its part
/// is sent. At most `concurrency + 1` buffers ever exist (`bufferLimit`): one being filled,
/// the others sent or waiting for a worker; the writer waits for one when all are in use.
///
/// `@unchecked Sendable`: every mutable property is read and written only while `condition`
/// is locked.
final class PartUploads: @unchecked Sendable {
    let client: S3Client
    let key: String
    let uploadID: String
    let concurrency: Int
    /// The most part buffers this upload uses, the writer's first one included.
    let bufferLimit: Int
    private let condition = NSCondition()
    /// Parts submitted and not yet taken by a worker, oldest first.
    private var queue: [(number: Int, buffer: PartBuffer)] = []
    /// Buffers whose parts were sent (or dropped), for the writer to fill again.
    private var free: [PartBuffer] = []
    /// Buffers made so far: the writer's first one, then those `takeBuffer` made.
    private var buffersMade = 1
    private var workers = 0
    private var workersStarted = 0
    private var idleWorkers = 0
    /// Parts a worker is sending.
    private var inFlight = 0
    private var parts: [Int: S3Client.UploadedPart] = [:]
    private var failure: (any Error)?
    /// Aborted: parts not started are dropped.
    private var cancelled = false
    /// No part will come: idle workers end.
    private var closing = false

    let memory: PartMemory
    /// The part memory of the buffers `takeBuffer` made.
    private var reserved = 0

    /// - Parameter reserved: the part memory of the writer's first buffer.
    init(client: S3Client, key: String, uploadID: String, concurrency: Int, memory: PartMemory, reserved: Int) {
        self.client = client
        self.key = key
        self.uploadID = uploadID
        self.concurrency = concurrency
        self.bufferLimit = concurrency + 1
        self.memory = memory
        self.reserved = reserved
    }

    /// A buffer whose part was sent, back for the writer; dropped instead (its memory given
    /// back) while another writer waits for room and this upload has others. Called with
    /// `condition` locked.
    private func giveBack(_ buffer: PartBuffer) {
        if buffersMade > 1, memory.hasWaiters {
            buffersMade -= 1
            reserved -= buffer.reservation
            memory.release(buffer.reservation)
        } else {
            free.append(buffer)
        }
    }

    /// The part memory reserved for this upload's buffers, handed to the caller to release
    /// (once the workers have ended: after `waitForAll` or `cancelAndWait`).
    func takeReserved() -> Int {
        condition.lock()
        defer { condition.unlock() }
        let bytes = reserved
        reserved = 0
        return bytes
    }

    /// What the upload used, for tests: buffers made, worker threads started.
    var statistics: (buffers: Int, workers: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (buffersMade, workersStarted)
    }

    /// An empty buffer with room for `capacity` bytes, for the next part: one whose part was
    /// sent, or a new one while fewer than `bufferLimit` exist; otherwise waits for a part to
    /// be sent. Throws the first failure of a part (`.cancelled` once the run is).
    ///
    /// A new buffer also needs room in the store's `PartMemory`; when other uploads hold it,
    /// this one goes on with the buffers it has (it always has one: the writer's first), so
    /// that uploads side by side never wait for each other's memory in a circle.
    func takeBuffer(capacity: Int) throws -> PartBuffer {
        condition.lock()
        while true {
            if let failure {
                condition.unlock()
                throw failure
            }
            if let reused = free.popLast() {
                let growth = capacity - reused.reservation
                if growth > 0 {  // the part size doubled
                    memory.acquire(growth, force: true)
                    reserved += growth
                    reused.reservation = capacity
                }
                condition.unlock()
                reused.bytes.removeAll(keepingCapacity: true)
                if reused.bytes.capacity < capacity { reused.bytes.reserveCapacity(capacity) }
                return reused
            }
            if cancelled || (buffersMade < bufferLimit && memory.tryAcquire(capacity)) {
                if cancelled { memory.acquire(capacity, force: true) }
                buffersMade += 1
                reserved += capacity
                condition.unlock()
                return PartBuffer(capacity: capacity)
            }
            condition.wait()
        }
    }

    /// Queues a full part for the next free worker (starting one while fewer than
    /// `concurrency` run and none is idle). Throws the first failure of an earlier part.
    func submit(number: Int, buffer: PartBuffer) throws {
        condition.lock()
        defer { condition.unlock() }
        if let failure { throw failure }
        queue.append((number, buffer))
        if queue.count > idleWorkers && workers < concurrency {
            workers += 1
            workersStarted += 1
            let thread = Thread { [self] in self.work() }
            thread.name = "lifeboat-s3-part"
            thread.start()
        }
        condition.broadcast()
    }

    /// A worker: sends queued parts until the upload is closed or aborted. A part that has
    /// not started when the upload is aborted, or after a part failed (which fails the
    /// upload), is dropped.
    private func work() {
        condition.lock()
        while true {
            if queue.isEmpty {
                if closing || cancelled { break }
                idleWorkers += 1
                condition.wait()
                idleWorkers -= 1
                continue
            }
            let (number, buffer) = queue.removeFirst()
            if cancelled || failure != nil {
                free.append(buffer)
                condition.broadcast()
                continue
            }
            inFlight += 1
            condition.unlock()
            var part: S3Client.UploadedPart?
            var error: (any Error)?
            do {
                part = try client.uploadPart(key: key, uploadID: uploadID, partNumber: number, bytes: buffer.bytes)
            } catch let e {
                error = e
            }
            condition.lock()
            inFlight -= 1
            if let part { parts[number] = part }
            if let error, failure == nil { failure = error }
            giveBack(buffer)
            condition.broadcast()
        }
        workers -= 1
        condition.broadcast()
        condition.unlock()
    }

    /// Waits for every part; returns them in order, or throws the first failure. The
    /// workers end and the buffers are released.
    func waitForAll() throws -> [S3Client.UploadedPart] {
        condition.lock()
        defer { condition.unlock() }
        while !queue.isEmpty || inFlight > 0 { condition.wait() }
        close()
        if let failure { throw failure }
        return parts.values.sorted { $0.number < $1.number }
    }

    /// Drops the parts not started, and waits for those in flight (which end at once when
    /// the client's cancellation is cancelled; otherwise they run to their end).
    func cancelAndWait() {
        condition.lock()
        defer { condition.unlock() }
        cancelled = true
        queue.removeAll()
        close()
    }

    /// Ends the workers (once the queue is empty) and waits for them; releases the buffers.
    /// Called with `condition` locked.
    private func close() {
        closing = true
        condition.broadcast()
        while workers > 0 { condition.wait() }
        free.removeAll()
    }
}

/// Reads an object in ranges, `readAhead` ranges fetched ahead on threads of their own.
final class S3ObjectReader: ObjectReader {
    let store: S3Store
    let key: String
    let size: Int64
    let etag: String
    private var current: [UInt8] = []
    private var currentOffset = 0
    private var nextRange: Int64 = 0
    private let pending: RangeFetches

    init(store: S3Store, key: String, size: Int64, etag: String) {
        self.store = store
        self.key = key
        self.size = size
        self.etag = etag
        self.pending = RangeFetches()
    }

    deinit { close() }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if currentOffset == current.count {
            fillWindow()
            guard let next = try pending.takeNext() else { return 0 }
            current = next
            currentOffset = 0
            fillWindow()
        }
        let n = min(buffer.count, current.count - currentOffset)
        current.withUnsafeBytes { bytes in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[currentOffset..<(currentOffset + n)]))
        }
        currentOffset += n
        return n
    }

    /// Starts range fetches until `readAhead` are queued or the object is covered.
    private func fillWindow() {
        while pending.count < store.readAhead, nextRange < size {
            let offset = nextRange
            let length = Int(min(Int64(store.partSize), size - offset))
            nextRange += Int64(length)
            let client = store.client, fullKey = store.prefix + key, etag = etag
            pending.start {
                let bytes = try client.getObject(key: fullKey, offset: offset, length: length, ifMatch: etag)
                guard bytes.count == length else {
                    throw LifeboatError(.storage, "S3 GetObject \(client.display(fullKey)) returned \(bytes.count) bytes for a range of \(length) at offset \(offset)",
                                        hint: "The object may have changed while it was read; run the command again.")
                }
                return bytes
            }
        }
    }

    func close() {
        pending.cancelAndWait()
        current = []
    }
}

/// Range fetches in order of their offsets, each on a thread of its own.
/// `@unchecked Sendable`: every mutable property is read and written under `condition`.
final class RangeFetches: @unchecked Sendable {
    /// Written by its fetch thread and read by the reader, both under `condition`.
    private final class Slot: @unchecked Sendable {
        var result: Result<[UInt8], any Error>?
    }

    private let condition = NSCondition()
    private var slots: [Slot] = []
    private var running = 0

    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return slots.count
    }

    func start(_ fetch: @escaping @Sendable () throws -> [UInt8]) {
        let slot = Slot()
        condition.lock()
        slots.append(slot)
        running += 1
        condition.unlock()
        let thread = Thread { [self] in
            let result = Result { try fetch() }
            self.condition.lock()
            slot.result = result
            self.running -= 1
            self.condition.broadcast()
            self.condition.unlock()
        }
        thread.name = "lifeboat-s3-range"
        thread.start()
    }

    /// The oldest fetch's bytes (waiting for it), or nil when none is queued.
    func takeNext() throws -> [UInt8]? {
        condition.lock()
        defer { condition.unlock() }
        guard let slot = slots.first else { return nil }
        while slot.result == nil { condition.wait() }
        slots.removeFirst()
        return try slot.result?.get()
    }

    func cancelAndWait() {
        condition.lock()
        slots.removeAll()
        while running > 0 { condition.wait() }
        condition.unlock()
    }
}
