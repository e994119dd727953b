import Foundation

/// What a base backup records besides its files (`source.postgres.physical`): everything a
/// point-in-time restore needs to choose it and to know which WAL it needs.
public struct PhysicalBackupRecord: Codable, Equatable, Sendable {
    /// The timeline the backup was taken on.
    public var timeline: UInt32
    /// Where replay starts (the backup's checkpoint redo point).
    public var startLSN: LSN
    /// Where the backup becomes consistent: the earliest point it can be recovered to.
    public var stopLSN: LSN
    /// The server's clock when the backup started and when it had stopped: every point in
    /// time from `stopTime` on can be recovered to with this backup and the WAL after it.
    public var startTime: Date
    public var stopTime: Date
    /// The cluster's WAL segment size, in bytes.
    public var segmentSize: UInt64
    public var checkpoint: String
    /// The tablespaces besides the main data directory, each in artifacts of its own.
    public var tablespaces: [TablespaceRecord]

    public init(timeline: UInt32, startLSN: LSN, stopLSN: LSN, startTime: Date, stopTime: Date, segmentSize: UInt64,
                checkpoint: String, tablespaces: [TablespaceRecord]) {
        self.timeline = timeline
        self.startLSN = startLSN
        self.stopLSN = stopLSN
        self.startTime = startTime
        self.stopTime = stopTime
        self.segmentSize = segmentSize
        self.checkpoint = checkpoint
        self.tablespaces = tablespaces
    }

    /// The WAL segments replay needs to make this backup consistent.
    public var requiredSegments: [WALSegment] {
        WALSegment.range(from: startLSN, to: stopLSN, timeline: timeline, segmentSize: segmentSize)
    }
}

/// A tablespace of a base backup: its OID (the name of its link in `pg_tblspc/`), where it
/// was on the server, and the artifacts holding its files (parts of the server's tar, in
/// order; see `PostgresConfiguration.partSize`).
public struct TablespaceRecord: Codable, Equatable, Sendable {
    public var oid: UInt32
    public var location: String
    public var artifacts: [String]

    public init(oid: UInt32, location: String, artifacts: [String]) {
        self.oid = oid
        self.location = location
        self.artifacts = artifacts
    }

    enum CodingKeys: String, CodingKey { case oid, location, artifacts, artifact }

    /// Also reads the records of backups taken before tablespaces were split into parts,
    /// which name one `artifact`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        oid = try container.decode(UInt32.self, forKey: .oid)
        location = try container.decode(String.self, forKey: .location)
        if let artifacts = try container.decodeIfPresent([String].self, forKey: .artifacts) {
            self.artifacts = artifacts
        } else {
            artifacts = [try container.decode(String.self, forKey: .artifact)]
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(oid, forKey: .oid)
        try container.encode(location, forKey: .location)
        try container.encode(artifacts, forKey: .artifacts)
    }
}
