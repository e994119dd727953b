import Foundation

/// The record of one committed backup, stored as `<policy>/backups/<id>/manifest.json`.
///
/// It is written last: a backup exists only once its manifest does. It describes the backup
/// completely, so that a machine with nothing but the repository can verify and restore it.
public struct Manifest: Codable, Equatable, Sendable {
    /// Version of the manifest format. Readers refuse versions newer than they know.
    public static let currentFormat = 1

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
}

/// One entry inside an artifact.
public struct EntryRecord: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable {
        case file, directory, symlink
    }

    public var path: String
    public var kind: Kind
    /// Size of the entry's data (0 for directories and symbolic links).
    public var size: Int64
    /// SHA-256 (lowercase hex) of the entry's data; for a symbolic link, of its target.
    public var sha256: String
    public var mode: UInt32?
    public var modificationTime: Int64?
    public var linkTarget: String?
    /// When a stream of unknown length was cut into fixed-size entries: the name of the
    /// stream and the entry's position in it (0, 1, …). Restore joins them in that order.
    public var stream: String?
    public var chunk: Int?

    public init(
        path: String, kind: Kind, size: Int64, sha256: String, mode: UInt32? = nil,
        modificationTime: Int64? = nil, linkTarget: String? = nil, stream: String? = nil, chunk: Int? = nil
    ) {
        self.path = path
        self.kind = kind
        self.size = size
        self.sha256 = sha256
        self.mode = mode
        self.modificationTime = modificationTime
        self.linkTarget = linkTarget
        self.stream = stream
        self.chunk = chunk
    }
}
