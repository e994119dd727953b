import Foundation

/// The record of one committed backup, stored as `<policy>/backups/<id>/manifest.json`.
///
/// It is written last: a backup exists only once its manifest does. It describes the backup
/// completely, so that a machine with nothing but the repository can verify and restore it.
public struct Manifest: Codable, Equatable, Sendable {
    /// Version of the manifest format. Readers refuse versions newer than they know.
    /// 2: entries with owners, hard links, devices, FIFOs, sparse maps and raw byte names;
    /// source records kept as each kind's JSON; skipped entries.
    /// 3: the document is sealed by its own SHA-256 (`ManifestDocument`).
    public static let currentFormat = 3

    public var format: Int
    public var policy: String
    public var id: String
    public var source: SourceRecord
    public var startedAt: Date
    public var finishedAt: Date
    public var tool: ToolRecord
    public var artifacts: [ArtifactRecord]

    public init(
        format: Int = Manifest.currentFormat, policy: String, id: String, source: SourceRecord,
        startedAt: Date, finishedAt: Date, tool: ToolRecord, artifacts: [ArtifactRecord]
    ) {
        self.format = format
        self.policy = policy
        self.id = id
        self.source = source
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.tool = tool
        self.artifacts = artifacts
    }

    /// Total bytes stored in the repository for this backup (compressed artifacts).
    public var storedBytes: Int64 { artifacts.reduce(0) { $0 + $1.size } }
    /// Total bytes of the entries before compression.
    public var sourceBytes: Int64 { artifacts.reduce(0) { $0 + $1.entries.reduce(0) { $0 + $1.size } } }
}

public struct ToolRecord: Codable, Equatable, Sendable {
    public var name: String
    public var version: String
    public init(name: String = "lifeboat", version: String) {
        self.name = name
        self.version = version
    }
}

/// What was backed up, and the identity of the source, so a restore can tell what it holds.
///
/// Stored as `{"kind": "postgres", "postgres": {…}}`: the kind, and under the kind's own name
/// the record that kind writes (its folder in the engine defines it). The core keeps the
/// record as JSON, so that a manifest of a kind this version does not know still reads,
/// lists and verifies.
public struct SourceRecord: Codable, Equatable, Sendable {
    public var kind: String
    public var details: JSONValue

    public init(kind: String, details: JSONValue = .object([:])) {
        self.kind = kind
        self.details = details
    }

    /// A record holding a kind's typed details.
    public init<Details: Encodable>(kind: String, details: Details) throws {
        self.kind = kind
        self.details = try JSONValue(encoding: details)
    }

    /// The kind's typed details.
    public func details<Details: Decodable>(as type: Details.Type) throws -> Details {
        try details.decode(type)
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        kind = try container.decode(String.self, forKey: Key(stringValue: "kind"))
        details = try container.decodeIfPresent(JSONValue.self, forKey: Key(stringValue: kind)) ?? .object([:])
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(kind, forKey: Key(stringValue: "kind"))
        try container.encode(details, forKey: Key(stringValue: kind))
    }
}

/// What an artifact holds, for restore (`postgres-globals`, `postgres-database`, `files`).
/// Each source kind declares its roles as constants in its own folder; in manifests a role
/// is its name.
public struct ArtifactRole: RawRepresentable, Codable, Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// Something a backup found but did not store, and why (a `files` backup: a socket, a file
/// deleted or replaced while it ran).
public struct SkippedEntry: Codable, Equatable, Sendable, CustomStringConvertible {
    /// Why an entry was skipped. Extensible: a reader meets reasons it does not know as
    /// plain strings.
    public struct Reason: RawRepresentable, Codable, Hashable, Sendable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// A socket: tar stores none (it cannot be restored as one).
        public static let socket = Reason(rawValue: "socket")
        /// Deleted between being listed and being read.
        public static let vanished = Reason(rawValue: "vanished")
        /// Replaced by something of another type between being listed and being read.
        public static let replaced = Reason(rawValue: "replaced")
        /// A file type Lifeboat does not know.
        public static let unknownType = Reason(rawValue: "unknownType")
    }

    /// The path on the backed-up machine; bytes that are not valid UTF-8 are shown as U+FFFD.
    public var path: String
    public var reason: Reason

    public init(path: String, reason: Reason) {
        self.path = path
        self.reason = reason
    }

    public var description: String {
        switch reason {
        case .socket: return "skipped socket '\(path)'"
        case .vanished: return "skipped '\(path)': it was deleted during the backup"
        case .replaced: return "skipped '\(path)': it was replaced by another kind of file during the backup"
        case .unknownType: return "skipped '\(path)': unknown file type"
        default: return "skipped '\(path)' (\(reason.rawValue))"
        }
    }
}

/// One artifact: a tar archive in the repository.
public struct ArtifactRecord: Codable, Equatable, Sendable {
    /// Key relative to the backup's directory, e.g. `data/0001.tar.zst`.
    public var path: String
    /// What this artifact holds, for restore.
    public var role: ArtifactRole
    /// For `postgres-database`: the database's name.
    public var database: String?
    /// Size in bytes of the stored object.
    public var size: Int64
    /// SHA-256 (lowercase hex) of the stored object's bytes.
    public var sha256: String
    public var compression: Compression
    public var encryption: String
    public var entries: [EntryRecord]

    public init(
        path: String, role: ArtifactRole, database: String? = nil, size: Int64, sha256: String,
        compression: Compression, encryption: String = "none", entries: [EntryRecord]
    ) {
        self.path = path
        self.role = role
        self.database = database
        self.size = size
        self.sha256 = sha256
        self.compression = compression
        self.encryption = encryption
        self.entries = entries
    }
}

public enum Compression: String, Codable, Equatable, Sendable, CaseIterable {
    case zstd
    case none

    /// File name suffix of an artifact compressed this way.
    public var artifactSuffix: String {
        switch self {
        case .zstd: return ".tar.zst"
        case .none: return ".tar"
        }
    }

    /// The most zstd worker threads a policy (`compression.threads`) or an `ArtifactWriter`
    /// may ask for.
    public static let maximumThreads = 64
}

/// A byte range of a sparse file that holds data; the rest of the file reads as zeros.
public struct DataRegion: Codable, Equatable, Sendable {
    public var offset: Int64
    public var length: Int64

    public init(offset: Int64, length: Int64) {
        self.offset = offset
        self.length = length
    }
}

/// One entry inside an artifact.
///
/// Fields added after the first format are optional, so that manifests written before them
/// still decode (and mean what they meant: no owner recorded, not sparse, a UTF-8 path).
public struct EntryRecord: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable {
        case file, directory, symlink
        /// Another name of a file stored earlier in the same artifact (`linkTarget`); no data.
        case hardlink
        case fifo
        case characterDevice
        case blockDevice
    }

    /// The path inside the artifact. When its bytes are not valid UTF-8 this is a display
    /// form (each invalid byte shown as U+FFFD) and `pathBytes` holds the exact bytes.
    public var path: String
    /// The exact bytes of the path, base64, present only when they are not valid UTF-8.
    public var pathBytes: String?
    public var kind: Kind
    /// Size of the entry's data: for a file its logical size (holes included); 0 for every
    /// other kind.
    public var size: Int64
    /// SHA-256 (lowercase hex) of the entry's data: for a file of its full logical content
    /// (holes read as zeros, as `sha256sum` reads it); for a symbolic or hard link, of its
    /// target's bytes; for other kinds, of no bytes.
    public var sha256: String
    public var mode: UInt32?
    public var modificationTime: Int64?
    /// For a symbolic link its target; for a hard link the path of the entry it names. A
    /// display form when its bytes are not valid UTF-8, as for `path`.
    public var linkTarget: String?
    /// The exact bytes of `linkTarget`, base64, present only when they are not valid UTF-8.
    public var linkTargetBytes: String?
    /// Owner and group by id, and by name when the name was known on the backed-up machine.
    public var uid: UInt32?
    public var gid: UInt32?
    public var user: String?
    public var group: String?
    /// For a character or block device: its device number.
    public var deviceMajor: UInt32?
    public var deviceMinor: UInt32?
    /// For a sparse file: the regions that hold data, in order (possibly none); everything
    /// else reads as zeros. Absent for a file that is not sparse.
    public var sparseMap: [DataRegion]?
    /// When a stream of unknown length was cut into fixed-size entries: the name of the
    /// stream and the entry's position in it (0, 1, …). Restore joins them in that order.
    public var stream: String?
    public var chunk: Int?

    public init(
        path: String, pathBytes: String? = nil, kind: Kind, size: Int64, sha256: String, mode: UInt32? = nil,
        modificationTime: Int64? = nil, linkTarget: String? = nil, linkTargetBytes: String? = nil,
        uid: UInt32? = nil, gid: UInt32? = nil, user: String? = nil, group: String? = nil,
        deviceMajor: UInt32? = nil, deviceMinor: UInt32? = nil, sparseMap: [DataRegion]? = nil,
        stream: String? = nil, chunk: Int? = nil
    ) {
        self.path = path
        self.pathBytes = pathBytes
        self.kind = kind
        self.size = size
        self.sha256 = sha256
        self.mode = mode
        self.modificationTime = modificationTime
        self.linkTarget = linkTarget
        self.linkTargetBytes = linkTargetBytes
        self.uid = uid
        self.gid = gid
        self.user = user
        self.group = group
        self.deviceMajor = deviceMajor
        self.deviceMinor = deviceMinor
        self.sparseMap = sparseMap
        self.stream = stream
        self.chunk = chunk
    }

    /// The exact bytes of `path` (from `pathBytes` when present).
    public var rawPath: [UInt8] { RecordedName.bytes(display: path, base64: pathBytes) }

    /// The exact bytes of `linkTarget`, when there is one.
    public var rawLinkTarget: [UInt8]? {
        linkTarget.map { RecordedName.bytes(display: $0, base64: linkTargetBytes) }
    }
}

/// How a name (a path, a link target), which on Linux is bytes, is written in a manifest:
/// as a string, plus base64 of the exact bytes when they are not valid UTF-8.
public enum RecordedName {
    /// The display string (U+FFFD for each invalid byte) and, when the bytes are not valid
    /// UTF-8, their base64.
    public static func encode(_ bytes: [UInt8]) -> (display: String, base64: String?) {
        if let valid = String(validating: bytes, as: UTF8.self) { return (valid, nil) }
        return (String(decoding: bytes, as: UTF8.self), Data(bytes).base64EncodedString())
    }

    /// The exact bytes: decoded from `base64` when present and well formed, otherwise the
    /// display string's UTF-8 (a damaged field then names an entry the archive does not
    /// hold, which extraction and verification report).
    public static func bytes(display: String, base64: String?) -> [UInt8] {
        if let base64, let data = Data(base64Encoded: base64) { return [UInt8](data) }
        return Array(display.utf8)
    }
}
