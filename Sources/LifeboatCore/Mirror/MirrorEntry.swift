import Foundation

/// One object of an S3 bucket as a mirror snapshot records it: one line of a bucket's
/// listing artifact (`listing.jsonl`), in key order.
///
/// Keys are compared and sorted as bytes (`MirrorKeyOrder`), never as Swift strings: two keys
/// that differ only in Unicode normalisation (`é` precomposed or not) are two objects to S3,
/// and `String`'s `==` would call them one.
public struct MirrorEntry: Sendable, Equatable {
    /// The object's key, as the exact bytes S3 listed (S3 keys are UTF-8).
    public var key: [UInt8]
    public var size: Int64
    /// The ETag as the source sent it, quotes included.
    public var etag: String
    /// Last-Modified, in milliseconds since 1970 (what ListObjectsV2 gives).
    public var modified: Int64
    /// `Content-Type`, when the object had one.
    public var contentType: String?
    /// User metadata (`x-amz-meta-NAME`), names in lower case without the prefix, sorted by name.
    public var metadata: [MirrorHeader]
    /// The other headers a restore sets again (`MirrorEntry.restoredHeaders`), sorted by name.
    public var headers: [MirrorHeader]
    /// Where the content is in the repository.
    public var blob: BlobAddress

    /// The headers besides `Content-Type` and user metadata that describe an object and are
    /// set again on restore.
    public static let restoredHeaders = ["cache-control", "content-disposition", "content-encoding", "content-language"]

    public init(key: [UInt8], size: Int64, etag: String, modified: Int64, contentType: String? = nil,
                metadata: [MirrorHeader] = [], headers: [MirrorHeader] = [], blob: BlobAddress) {
        self.key = key
        self.size = size
        self.etag = etag
        self.modified = modified
        self.contentType = contentType
        self.metadata = metadata.sorted { MirrorKeyOrder.precedes(Array($0.name.utf8), Array($1.name.utf8)) }
        self.headers = headers.sorted { MirrorKeyOrder.precedes(Array($0.name.utf8), Array($1.name.utf8)) }
        self.blob = blob
    }

    /// The key for messages and S3 requests (S3 keys are UTF-8; other bytes show as U+FFFD).
    public var keyText: String { String(decoding: key, as: UTF8.self) }

    /// Content type, user metadata and headers taken from an object's response headers
    /// (a GET's or a HEAD's), as a restore sets them again.
    public static func description(fromResponseHeaders fields: [(name: String, value: String)])
        -> (contentType: String?, metadata: [MirrorHeader], headers: [MirrorHeader]) {
        var contentType: String?
        var metadata: [MirrorHeader] = []
        var headers: [MirrorHeader] = []
        for (name, value) in fields {
            let lower = name.lowercased()
            if lower == "content-type" {
                contentType = value
            } else if lower.hasPrefix("x-amz-meta-"), lower.count > "x-amz-meta-".count {
                metadata.append(MirrorHeader(String(lower.dropFirst("x-amz-meta-".count)), value))
            } else if restoredHeaders.contains(lower) {
                headers.append(MirrorHeader(lower, value))
            }
        }
        return (contentType, metadata, headers)
    }

    /// Whether two entries describe the same object as a restore writes it: content, content
    /// type, metadata and headers (not the ETag or time, which the target assigns).
    public func describesSameObject(as other: MirrorEntry) -> Bool {
        key == other.key && size == other.size && blob == other.blob && contentType == other.contentType
            && metadata == other.metadata && headers == other.headers
    }
}

/// A header name and value (user metadata, `Cache-Control`, …).
public struct MirrorHeader: Sendable, Equatable, Hashable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// An object as a listing names it (key, size, ETag, time): what an incremental run compares
/// with the previous snapshot before deciding to copy anything.
public struct MirrorListedObject: Sendable, Equatable {
    public var key: [UInt8]
    public var size: Int64
    public var etag: String
    /// Milliseconds since 1970.
    public var modified: Int64

    public init(key: [UInt8], size: Int64, etag: String, modified: Int64) {
        self.key = key
        self.size = size
        self.etag = etag
        self.modified = modified
    }

    public var keyText: String { String(decoding: key, as: UTF8.self) }
}

/// The order of keys in listings and snapshots: byte order (S3 sorts keys by their UTF-8 bytes).
public enum MirrorKeyOrder {
    public static func precedes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.lexicographicallyPrecedes(b)
    }
}
