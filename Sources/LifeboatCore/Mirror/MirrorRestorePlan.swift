/// What an S3 mirror restore takes besides where it goes (`restore --bucket --prefix --key
/// --delete-extra --max-delete --to-endpoint`).
public struct MirrorRestoreOptions: Sendable, Equatable {
    /// The bucket of the snapshot to restore (needed when it holds several and the target is a bucket).
    public var bucket: String?
    /// Only keys starting with this.
    public var prefix: String?
    /// Only this key.
    public var key: String?
    /// Delete objects of the target (within the restored prefix) that the snapshot does not have.
    public var deleteExtra: Bool
    /// Refuse, before deleting anything, when more objects than this would be deleted.
    public var maxDelete: Int
    /// The target's S3 endpoint, region, addressing and CA bundle, when given on the command
    /// line (nil: the snapshot's source endpoint, with the policy's settings when it has them).
    public var endpoint: String?
    public var region: String?
    public var pathStyle: Bool?
    public var caBundle: String?

    public static let defaultMaxDelete = 1000

    public init(bucket: String? = nil, prefix: String? = nil, key: String? = nil, deleteExtra: Bool = false,
                maxDelete: Int = Self.defaultMaxDelete, endpoint: String? = nil, region: String? = nil, pathStyle: Bool? = nil,
                caBundle: String? = nil) {
        self.bucket = bucket
        self.prefix = prefix
        self.key = key
        self.deleteExtra = deleteExtra
        self.maxDelete = maxDelete
        self.endpoint = endpoint
        self.region = region
        self.pathStyle = pathStyle
        self.caBundle = caBundle
    }

    /// Whether a key of the snapshot is restored (`--key`, `--prefix`, or every key).
    public func selects(_ key: [UInt8]) -> Bool {
        if let only = self.key { return key == Array(only.utf8) }
        if let prefix { return key.starts(with: prefix.utf8) }
        return true
    }

    /// The prefix every selected key starts with (for listing the target).
    public var scopePrefix: String { key ?? prefix ?? "" }
}

/// The relative path an object's key is restored to in a directory, or why it cannot be.
///
/// A key is a path of `/`-separated components, each a file or directory name: no empty
/// component (`a//b`), no `.` or `..`, no leading `/`, no NUL byte. A key ending in `/` is a
/// folder marker, restored as a directory. Anything else is refused, never rewritten into
/// another name (two keys must never land on one file).
public enum MirrorKeyPath {
    public enum Refusal: Error, Equatable, CustomStringConvertible {
        case empty, absolute, emptyComponent, dotComponent, nul, markerWithContent

        public var description: String {
            switch self {
            case .empty: return "the key is empty"
            case .absolute: return "it starts with '/'"
            case .emptyComponent: return "it has an empty path component ('//')"
            case .dotComponent: return "it has a '.' or '..' path component"
            case .nul: return "it holds a NUL byte"
            case .markerWithContent: return "it ends with '/' (a folder's name) but has content"
            }
        }
    }

    /// The components of the path, and whether the key is a folder marker (a directory).
    public static func components(of key: [UInt8], size: Int64) throws(Refusal) -> (components: [[UInt8]], directory: Bool) {
        guard !key.isEmpty else { throw .empty }
        guard !key.contains(0) else { throw .nul }
        guard key.first != UInt8(ascii: "/") else { throw .absolute }
        var body = key[...]
        let directory = key.last == UInt8(ascii: "/")
        if directory {
            guard size == 0 else { throw .markerWithContent }
            body = body.dropLast()
        }
        let parts = body.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        var components: [[UInt8]] = []
        for part in parts {
            guard !part.isEmpty else { throw .emptyComponent }
            guard !part.elementsEqual(".".utf8), !part.elementsEqual("..".utf8) else { throw .dotComponent }
            components.append(Array(part))
        }
        return (components, directory)
    }
}

/// How a selected object of a snapshot compares with the restore target, both listings in key
/// order (the target's keys with the target prefix taken off).
public enum MirrorTargetChange: Sendable, Equatable {
    /// Not in the target: written.
    case missing(MirrorEntry)
    /// In the target with the same size and ETag: its metadata is compared before anything is written.
    case sameContent(MirrorEntry, target: MirrorListedObject)
    /// In the target with other content: written.
    case different(MirrorEntry, target: MirrorListedObject)
    /// In the target only.
    case extra(MirrorListedObject)
}

/// The merge-join of a snapshot's (selected) entries with the target's listing.
public struct MirrorTargetDiff {
    private var diff: MirrorListingDiff

    public init(snapshot: @escaping () throws -> MirrorEntry?, target: @escaping () throws -> MirrorListedObject?, what: String) {
        // The same join as a backup's, the snapshot in the role of the previous listing.
        diff = MirrorListingDiff(current: target, previous: snapshot, what: what)
    }

    public mutating func next() throws -> MirrorTargetChange? {
        switch try diff.next() {
        case nil: return nil
        case .removed(let entry): return .missing(entry)
        case .copy(let object, previous: nil): return .extra(object)
        case .copy(let object, previous: let entry?): return .different(entry, target: object)
        case .unchanged(let entry):
            return .sameContent(entry, target: MirrorListedObject(key: entry.key, size: entry.size, etag: entry.etag, modified: entry.modified))
        case .touched(let entry, let object): return .sameContent(entry, target: object)
        }
    }
}
