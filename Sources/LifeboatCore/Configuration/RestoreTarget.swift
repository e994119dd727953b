import Foundation

/// Where a restore goes: the one type the command line (`restore --to …`) and runbooks
/// (`target: { … }`) both produce, and every source kind's restore takes.
public struct RestoreTarget: Sendable, Equatable {
    /// The kinds of places a backup can be restored into. A source kind accepts some of them
    /// (files: a directory; a logical PostgreSQL backup: a server).
    public enum Location: Sendable, Equatable, CustomStringConvertible {
        /// A directory on this machine (absolute).
        case directory(String)
        /// A PostgreSQL server, given by a libpq conninfo (which may hold a password: never print it).
        case postgresServer(conninfo: String)
        /// A PostgreSQL data directory (absolute), for physical backups.
        case dataDirectory(String)
        /// An S3 bucket, and a key prefix in it (S3 mirrors).
        case s3(bucket: String, prefix: String)

        /// What to call it in messages (no secrets).
        public var description: String {
            switch self {
            case .directory(let path): return "directory '\(path)'"
            case .postgresServer: return "a PostgreSQL server"
            case .dataDirectory(let path): return "data directory '\(path)'"
            case .s3(let bucket, let prefix): return "s3://\(bucket)/\(prefix)"
            }
        }

        public var isDataDirectory: Bool {
            if case .dataDirectory = self { return true }
            return false
        }

        /// The key a runbook's `target:` uses for it.
        public var runbookKey: String {
            switch self {
            case .directory: return "path"
            case .postgresServer: return "conninfo"
            case .dataDirectory: return "data_dir"
            case .s3: return "s3"
            }
        }
    }

    public var location: Location
    /// PostgreSQL: only these databases (nil: every database in the backup).
    public var databases: [String]?
    /// PostgreSQL: whether to create the roles and tablespaces the backup holds.
    public var globals: Bool
    /// The point to restore to: `latest` or a time; nil means the chosen backup itself.
    public var time: String?
    /// Physical PostgreSQL: the recovery target and how to get there.
    public var recovery: RecoveryOptions?
    /// How many artifacts are extracted at once; nil: one per core (see `automaticParallelism`).
    /// S3 mirrors: objects written at once (nil: 8).
    public var parallel: Int?
    /// S3 mirrors: which objects, the target's endpoint, deletions.
    public var mirror: MirrorRestoreOptions?

    /// One artifact per core, at most 4 (beyond that the disk, not the CPU, is the limit).
    public static var automaticParallelism: Int { max(1, min(ProcessInfo.processInfo.activeProcessorCount, 4)) }

    public init(location: Location, databases: [String]? = nil, globals: Bool = true, time: String? = nil,
                recovery: RecoveryOptions? = nil, parallel: Int? = nil, mirror: MirrorRestoreOptions? = nil) {
        self.parallel = parallel
        self.mirror = mirror
        self.location = location
        self.databases = databases
        self.globals = globals
        self.time = time
        self.recovery = recovery
    }
}
