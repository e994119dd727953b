import Foundation

/// Storage of a repository: a flat namespace of `/`-separated keys holding byte streams,
/// the same shape on a local filesystem, on S3 and in memory (contract version 2).
///
/// The protocol is synchronous on purpose: every implementation blocks (file descriptors,
/// libcurl), and every caller runs on a thread of its own (never the cooperative pool), so
/// that libarchive's synchronous callbacks can write straight into a store.
///
/// Every store behaves the same way, checked by one conformance suite
/// (`Tests/LifeboatIntegrationTests/StoreConformanceTests.swift`): listings in byte order of
/// UTF-8 with S3's prefix, delimiter and start-after semantics, objects invisible until
/// committed, conditional writes that fail with `.alreadyExists`. What differs is declared in
/// `features`; callers ask before they rely on one.
public protocol ObjectStore: Sendable {
    /// Where the store is, for messages: `/var/backups/lifeboat`, `s3://bucket/prefix/`.
    var location: String { get }

    /// What this store can do beyond the common contract.
    var features: StoreFeatures { get }

    /// One page of a listing. Incomplete writes (temporary objects of writers that have not
    /// committed) are never listed. Pages hold at most `request.pageSize` entries; follow
    /// `nextCursor` until it is nil, or use `forEachEntry` / `forEachObject`.
    func listPage(_ request: ListRequest) throws -> ListPage

    /// Size, ETag and modification time of an object, or nil when there is none.
    func stat(key: String) throws -> ObjectInfo?

    /// Starts writing an object. Nothing appears under `key` until `commit()` succeeds.
    /// With `ifAbsent`, `commit()` throws `LifeboatError(.alreadyExists)` when the key exists
    /// by then, and never replaces it.
    func openWriter(key: String, ifAbsent: Bool) throws -> any ObjectWriter

    /// Opens an object for sequential reading. Throws `.notFound` when it does not exist.
    func openReader(key: String) throws -> any ObjectReader

    /// Writes a small object in one step, atomically: readers see the whole object or none.
    /// With `ifAbsent`, throws `LifeboatError(.alreadyExists)` when the key exists (the commit
    /// point of a backup must never replace another one).
    func put(key: String, bytes: [UInt8], ifAbsent: Bool) throws

    /// Copies an object, replacing the destination. Throws `.notFound` when the source does
    /// not exist. Inside the store when `features` has `.serverSideCopy`; otherwise the bytes
    /// pass through this process.
    func copy(from source: String, to destination: String) throws

    /// Deletes objects; keys that do not exist are ignored.
    func delete(keys: [String]) throws

    /// Finds, and unless `dryRun` discards, what writers that never committed nor aborted
    /// (their process was killed) left under `prefix` (a directory's key ending in `/`, or ""
    /// for the whole store): a local writer's temporary files, S3's multipart uploads in
    /// progress. With `olderThan`, only those last active before it (a temporary file's
    /// modification time, an upload's initiation); without, all of them. Returns what it found,
    /// in no particular order. A local store also removes the directories that leaves empty
    /// (one holding nothing but a killed writer's temporary file is invisible to listings),
    /// up to, never including, its root.
    ///
    /// A live writer's bytes are lost too: without `olderThan`, only for a prefix nobody
    /// writes to any more (what prune reaches under its exclusive lock); where writers take no
    /// lock (`wal-push`), only with a cut-off far older than any write takes. Nothing here is
    /// listed, so `delete(keys:)` cannot reach it. Default: nothing (a store whose writers
    /// leave nothing behind, as `MemoryStore`'s buffers).
    func discardIncompleteWrites(prefix: String, olderThan cutoff: Date?, dryRun: Bool) throws -> [IncompleteWrite]
}

/// What a store can do beyond the common contract, so callers can ask before relying on it.
public struct StoreFeatures: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// `put(ifAbsent: true)` and writers opened with `ifAbsent` commit atomically only if the
    /// key is absent.
    public static let conditionalWrite = StoreFeatures(rawValue: 1 << 0)
    /// `copy(from:to:)` happens inside the store, without the bytes passing through this process.
    public static let serverSideCopy = StoreFeatures(rawValue: 1 << 1)
}

public struct ObjectInfo: Hashable, Sendable {
    public var key: String
    public var size: Int64
    /// Changes whenever the object is replaced: S3's ETag (as the server sends it), locally a
    /// tag derived from inode, size and modification time in nanoseconds, in memory a
    /// generation number.
    public var etag: String
    public var modified: Date

    public init(key: String, size: Int64, etag: String, modified: Date) {
        self.key = key
        self.size = size
        self.etag = etag
        self.modified = modified
    }
}

/// The continuation cursors a paged listing has followed. A cursor handed out twice means a
/// page asked for twice: a store (an S3 service) whose listing goes round in a circle would
/// have the walk go on forever, so that is an error. Every loop over listing pages follows
/// its cursors through one of these.
public struct ListingCursors: Sendable {
    /// What is listed, for the message: `'prefix/'`, `s3://bucket/prefix/`.
    public let listing: String
    private var followed: Set<String> = []

    public init(listing: String) {
        self.listing = listing
    }

    public mutating func follow(_ cursor: String) throws {
        guard followed.insert(cursor).inserted else {
            throw LifeboatError(.storage, "the listing of \(listing) came back to a page it had already listed (its continuation \(followed.count > 1 ? "tokens go round in a circle" : "token repeats")): it would never end",
                                hint: "The storage service's listing is broken; report it to its operator. Nothing was changed.")
        }
    }
}

/// One page of a listing to fetch.
public struct ListRequest: Sendable, Equatable {
    public static let maximumPageSize = 1000

    public var prefix: String
    /// When set, keys whose rest after `prefix` contains it are rolled up into `commonPrefixes`
    /// (S3 semantics: prefix + rest up to and including the first delimiter).
    public var delimiter: String?
    /// Only keys (and common prefixes) sorting strictly after this.
    public var startAfter: String?
    /// Where the previous page stopped (opaque: an S3 continuation token, or a store's own cursor).
    public var cursor: String?
    /// At most this many objects + common prefixes per page (1...1000, default 1000).
    public var pageSize: Int

    public init(prefix: String = "", delimiter: String? = nil, startAfter: String? = nil, cursor: String? = nil,
                pageSize: Int = ListRequest.maximumPageSize) {
        self.prefix = prefix
        self.delimiter = delimiter
        self.startAfter = startAfter
        self.cursor = cursor
        self.pageSize = pageSize
    }

    /// Throws when the request cannot be served (a page size out of range, an empty
    /// delimiter): a programming error, reported rather than silently adjusted.
    public func validate(in location: String) throws {
        guard (1...Self.maximumPageSize).contains(pageSize) else {
            throw LifeboatError(.internalError, "listing \(location): page size \(pageSize) is not within 1...\(Self.maximumPageSize)")
        }
        if let delimiter, delimiter.isEmpty {
            throw LifeboatError(.internalError, "listing \(location): the delimiter is empty")
        }
    }
}

public struct ListPage: Sendable, Equatable {
    /// Sorted by key (byte order of UTF-8).
    public var objects: [ObjectInfo]
    /// Sorted (byte order of UTF-8).
    public var commonPrefixes: [String]
    /// The cursor for the next page; nil when this is the last one.
    public var nextCursor: String?

    public init(objects: [ObjectInfo] = [], commonPrefixes: [String] = [], nextCursor: String? = nil) {
        self.objects = objects
        self.commonPrefixes = commonPrefixes
        self.nextCursor = nextCursor
    }
}

/// One entry of a listing, in key order: an object, or a common prefix that stands for every
/// object under it (only with a delimiter).
public enum ListEntry: Sendable, Hashable {
    case object(ObjectInfo)
    case prefix(String)

    /// The object's key, or the common prefix.
    public var key: String {
        switch self {
        case .object(let info): return info.key
        case .prefix(let prefix): return prefix
        }
    }
}

/// A sequential writer. Exactly one of `commit()` or `abort()` ends it.
public protocol ObjectWriter: AnyObject {
    var key: String { get }
    func write(_ bytes: UnsafeRawBufferPointer) throws
    /// Makes the object durable and visible under its key. A writer opened with `ifAbsent`
    /// throws `LifeboatError(.alreadyExists)` when the key exists by then.
    func commit() throws
    /// Discards what was written. Never throws: it is called on error paths.
    func abort()
}

/// A sequential reader.
public protocol ObjectReader: AnyObject {
    var key: String { get }
    /// Reads up to `buffer.count` bytes; returns 0 at the end of the object.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    func close()
}

extension ObjectReader {
    /// Hands what is left of the object to `body`, a piece of at most `bufferSize` bytes at a
    /// time, through one buffer.
    public func forEachPiece(bufferSize: Int = 1 << 20, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        var buffer = [UInt8](repeating: 0, count: bufferSize)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try read(into: $0) }
            if n == 0 { return }
            try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }
}

/// What a writer that never committed nor aborted left in a store (`discardIncompleteWrites`).
public struct IncompleteWrite: Sendable, Hashable {
    /// The key it was writing.
    public var key: String
    /// Where it is, for messages: the temporary file's path, the upload's key and id.
    public var location: String
    /// When it was last active: a temporary file's modification time, an S3 multipart
    /// upload's initiation (S3 lists no later time).
    public var modified: Date
    /// The bytes it holds, when the store knows without asking more (a temporary file's size).
    public var bytes: Int64?

    public init(key: String, location: String, modified: Date, bytes: Int64? = nil) {
        self.key = key
        self.location = location
        self.modified = modified
        self.bytes = bytes
    }
}

extension ObjectStore {
    public func discardIncompleteWrites(prefix: String, olderThan cutoff: Date?, dryRun: Bool) throws -> [IncompleteWrite] { [] }

    /// Discards every incomplete write under `prefix`, whatever its age: for a directory
    /// nobody writes to any more (an interrupted backup's, which prune deletes).
    public func discardIncompleteWrites(prefix: String) throws {
        _ = try discardIncompleteWrites(prefix: prefix, olderThan: nil, dryRun: false)
    }

    /// Starts writing an object that replaces any object under `key` when committed.
    public func openWriter(key: String) throws -> any ObjectWriter {
        try openWriter(key: key, ifAbsent: false)
    }

    /// Walks a listing in key order, page after page, holding one page at a time: objects
    /// and (with a delimiter) common prefixes, merged in byte order. `body` returns false to
    /// stop early.
    public func forEachEntry(
        prefix: String = "", delimiter: String? = nil, startAfter: String? = nil,
        pageSize: Int = ListRequest.maximumPageSize, _ body: (ListEntry) throws -> Bool
    ) throws {
        let request = ListRequest(prefix: prefix, delimiter: delimiter, startAfter: startAfter, pageSize: pageSize)
        try Self.walkPages(from: request, fetch: listPage, body)
    }

    /// `forEachEntry`'s loop over pages (see `ListingCursors`).
    static func walkPages(from first: ListRequest, fetch: (ListRequest) throws -> ListPage,
                          _ body: (ListEntry) throws -> Bool) throws {
        var request = first
        var cursors = ListingCursors(listing: "'\(first.prefix)'")
        while true {
            let page = try fetch(request)
            var objects = page.objects[...], prefixes = page.commonPrefixes[...]
            while let entry = nextEntry(&objects, &prefixes) {
                guard try body(entry) else { return }
            }
            guard let cursor = page.nextCursor else { return }
            try cursors.follow(cursor)
            request.cursor = cursor
        }
    }

    /// The smaller (in key order) of the next object and the next common prefix.
    private static func nextEntry(_ objects: inout ArraySlice<ObjectInfo>, _ prefixes: inout ArraySlice<String>) -> ListEntry? {
        switch (objects.first, prefixes.first) {
        case (let object?, let prefix?):
            if KeyOrder.precedes(prefix, object.key) {
                prefixes.removeFirst()
                return .prefix(prefix)
            }
            objects.removeFirst()
            return .object(object)
        case (let object?, nil):
            objects.removeFirst()
            return .object(object)
        case (nil, let prefix?):
            prefixes.removeFirst()
            return .prefix(prefix)
        case (nil, nil):
            return nil
        }
    }

    /// Walks the objects of a listing in key order, one page in memory at a time; with a
    /// delimiter, only the objects not rolled up into a common prefix. `body` returns false
    /// to stop early.
    public func forEachObject(
        prefix: String = "", delimiter: String? = nil, startAfter: String? = nil,
        _ body: (ObjectInfo) throws -> Bool
    ) throws {
        try forEachEntry(prefix: prefix, delimiter: delimiter, startAfter: startAfter) { entry in
            guard case .object(let info) = entry else { return true }
            return try body(info)
        }
    }

    /// Every object under `prefix`, in key order, collected into memory. Only for prefixes
    /// known to hold few objects (a backup's directory); walk anything larger with
    /// `forEachObject`.
    public func listAll(prefix: String) throws -> [ObjectInfo] {
        var result: [ObjectInfo] = []
        try forEachObject(prefix: prefix) { info in
            result.append(info)
            return true
        }
        return result
    }

    /// Reads a whole (small) object, such as a manifest.
    public func readAll(key: String, limit: Int = 256 << 20) throws -> [UInt8] {
        let reader = try openReader(key: key)
        defer { reader.close() }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = try chunk.withUnsafeMutableBytes { buffer in
                try reader.read(into: buffer)
            }
            if n == 0 { return result }
            result.append(contentsOf: chunk[0..<n])
            if result.count > limit {
                throw LifeboatError(.storage, "object '\(key)' in \(location) is larger than \(limit) bytes")
            }
        }
    }
}

/// The order of keys in listings: byte order of their UTF-8, as S3 sorts them. (Swift's `<`
/// on `String` compares canonical equivalents, which is neither S3's nor a filesystem's order.)
public enum KeyOrder {
    public static func precedes(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }
}
