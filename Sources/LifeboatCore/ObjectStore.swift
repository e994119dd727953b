/// Storage of a repository: a flat namespace of `/`-separated keys holding byte streams,
/// the same shape on a local filesystem and on S3.
///
/// The protocol is synchronous on purpose: every implementation blocks (file descriptors,
/// libcurl), and every caller runs on a thread of its own (never the cooperative pool), so
/// that libarchive's synchronous callbacks can write straight into a store.
public protocol ObjectStore: Sendable {
    /// Where the store is, for messages: `/var/backups/lifeboat`, `s3://bucket/prefix/`.
    var location: String { get }

    /// Every object whose key starts with `prefix`, sorted by key. Incomplete writes
    /// (temporary objects of writers that have not committed) are not listed.
    func list(prefix: String) throws -> [ObjectInfo]

    /// Size of an object, or nil when there is none.
    func stat(key: String) throws -> ObjectInfo?

    /// Starts writing an object. Nothing appears under `key` until `commit()` succeeds.
    func openWriter(key: String) throws -> any ObjectWriter

    /// Opens an object for sequential reading. Throws `.notFound` when it does not exist.
    func openReader(key: String) throws -> any ObjectReader

    /// Writes a small object in one step, atomically: readers see the whole object or none.
    /// With `ifAbsent`, fails with `.storage` when the key already exists (the commit point of
    /// a backup must never replace another one).
    func put(key: String, bytes: [UInt8], ifAbsent: Bool) throws

    /// Deletes objects; keys that do not exist are ignored.
    func delete(keys: [String]) throws
}

public struct ObjectInfo: Hashable, Sendable {
    public var key: String
    public var size: Int64
    public init(key: String, size: Int64) {
        self.key = key
        self.size = size
    }
}

/// A sequential writer. Exactly one of `commit()` or `abort()` ends it.
public protocol ObjectWriter: AnyObject {
    var key: String { get }
    func write(_ bytes: UnsafeRawBufferPointer) throws
    /// Makes the object durable and visible under its key.
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

extension ObjectStore {
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
