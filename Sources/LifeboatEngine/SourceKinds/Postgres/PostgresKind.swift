import Foundation
import LifeboatArchive
import LifeboatCore
import LifeboatPostgres

/// `source: { postgres: { conninfo, mode, databases, globals, bin_dir } }`.
///
/// `mode: logical`: `pg_dumpall --globals-only` and `pg_dump --format=custom` of each database,
/// each streamed into an artifact of its own; restored into a server with `psql` and
/// `pg_restore --create`.
///
/// `mode: physical` (the default): a base backup over the replication protocol, the files of
/// each tablespace and of the data directory in artifacts of about `part_size` bytes, plus
/// the server's `backup_manifest`;
/// committed once the WAL it needs is in the policy's WAL archive (`PostgresPhysicalBackup`).
public struct PostgresKind: SourceKind {
    public init() {}

    public var name: String { "postgres" }

    public var parser: SourceKindParser {
        SourceKindParser(kind: name) { node in
            guard let map = node.mapping(allowed: ["conninfo", "mode", "databases", "globals", "bin_dir", "checkpoint", "part_size", "wal"]) else { return nil }
            let conninfo = map.required("conninfo")?.string()
            var mode = PostgresConfiguration.Mode.physical
            if let modeNode = map["mode"] {
                guard let text = modeNode.oneOf(PostgresConfiguration.Mode.allCases.map(\.rawValue)) else { return nil }
                mode = PostgresConfiguration.Mode(rawValue: text) ?? .physical
            }
            // Keys of one mode only: a logical policy has no WAL, a physical one no database list.
            for (key, wanted) in [("databases", PostgresConfiguration.Mode.logical), ("globals", .logical),
                                  ("checkpoint", .physical), ("part_size", .physical), ("wal", .physical)] where mode != wanted {
                if let keyNode = map[key] {
                    keyNode.error("'\(key)' belongs to 'mode: \(wanted.rawValue)', and this policy's mode is '\(mode.rawValue)'",
                                  hint: mode == .physical && map["mode"] == nil
                                      ? "A postgres policy without 'mode' takes physical base backups; add 'mode: logical' for pg_dump backups."
                                      : "Remove '\(key)', or change the mode.")
                    return nil
                }
            }
            var checkpoint = PostgresConfiguration.Checkpoint.spread
            if let checkpointNode = map["checkpoint"] {
                guard let text = checkpointNode.oneOf(PostgresConfiguration.Checkpoint.allCases.map(\.rawValue)) else { return nil }
                checkpoint = PostgresConfiguration.Checkpoint(rawValue: text) ?? .spread
            }
            var partSize = PostgresConfiguration.defaultPartSize
            if let partNode = map["part_size"] {
                guard let size = partNode.byteCount(in: (1 << 20)...(64 << 30)) else { return nil }
                partSize = size
            }
            var wal = PostgresConfiguration.WALSettings()
            if let walNode = map["wal"] {
                guard let walMap = walNode.mapping(allowed: ["timeout", "push_parallel", "prefetch"]) else { return nil }
                let timeout = walMap["timeout"]?.positiveDuration()
                let parallel = walMap["push_parallel"]?.int(in: 1...64)
                let prefetch = walMap["prefetch"]?.int(in: 0...256)
                guard walMap["timeout"] == nil || timeout != nil, walMap["push_parallel"] == nil || parallel != nil,
                      walMap["prefetch"] == nil || prefetch != nil
                else { return nil }
                if let timeout { wal.timeout = TimeInterval(timeout.seconds) }
                if let parallel { wal.pushParallel = parallel }
                if let prefetch { wal.prefetch = prefetch }
            }
            let databases = map["databases"]?.stringList()
            if let databases, databases.isEmpty {
                map["databases"]?.error("'databases' is empty; leave it out to back up every database")
                return nil
            }
            let globals = map["globals"]?.bool()
            let binDir = map["bin_dir"]?.absolutePath()
            guard let conninfo, map["databases"] == nil || databases != nil, map["globals"] == nil || globals != nil,
                  map["bin_dir"] == nil || binDir != nil
            else { return nil }
            let password: String?
            do {
                password = try PostgresConnectionParameters(conninfo: conninfo).password
            } catch where conninfo.contains("${") {
                // Only `lifeboat export` leaves a reference unreplaced (`conninfo: "${PG_CONNINFO}"`,
                // read without the environment): the CronJob's pod has the value, the export
                // neither has nor needs it.
                password = nil
            } catch {
                let reason = (error as? LifeboatError)?.message ?? "\(error)"
                map["conninfo"]?.error("'source.postgres.conninfo' is not a valid libpq connection string: \(reason)",
                                       hint: "Write it as 'host=… port=… user=… dbname=…' or a postgresql:// URI.")
                return nil
            }
            return PostgresConfiguration(conninfo: conninfo, mode: mode, databases: databases, globals: globals ?? true,
                                         binDir: binDir, checkpoint: checkpoint, partSize: partSize, wal: wal, password: password)
        }
    }

    public func backup(_ configuration: any SourceConfiguration, into sink: ArtifactSink, context: RunContext) throws -> BackupOutcome {
        let postgres = try PostgresConfiguration.of(configuration)
        switch postgres.mode {
        case .logical:
            return BackupOutcome(record: try PostgresLogicalBackup(configuration: postgres).run(into: sink, context: context))
        case .physical:
            return BackupOutcome(record: try PostgresPhysicalBackup(configuration: postgres).run(into: sink, context: context))
        }
    }

    public func restoreLocation(commandLine text: String, workingDirectory: String, manifest: Manifest) throws -> RestoreTarget.Location {
        guard try Self.physicalRecord(of: manifest) != nil else { return .postgresServer(conninfo: text) }
        guard !text.isEmpty else { throw LifeboatError(.usage, "--to needs a data directory") }
        let path = text.hasPrefix("/") ? text : workingDirectory + "/" + text
        return .dataDirectory(URL(fileURLWithPath: path).standardizedFileURL.path)
    }

    public func chooseBackup(selected: Manifest, explicit: Bool, target: RestoreTarget, repository: Repository,
                             context: RunContext) throws -> Manifest {
        guard try Self.physicalRecord(of: selected) != nil else { return selected }
        return try PostgresPhysicalRestore.choose(selected: selected, explicit: explicit, target: target,
                                                  repository: repository, context: context).manifest
    }

    public func restore(_ manifest: Manifest, from repository: Repository, to target: RestoreTarget,
                        configuration: (any SourceConfiguration)?, context: RunContext) throws -> RestoreReport {
        if try Self.physicalRecord(of: manifest) != nil {
            return try PostgresPhysicalRestore(manifest: manifest, repository: repository, context: context).run(to: target)
        }
        let binDir = (configuration as? PostgresConfiguration)?.binDir
        return try PostgresLogicalRestore(manifest: manifest, repository: repository, binDir: binDir, context: context).run(to: target)
    }

    public func leftovers(of target: RestoreTarget) -> String {
        if case .dataDirectory(let path) = target.location {
            return "The data directory '\(path)' may hold part of the backup, and cannot be started: restore into it again with --delta, or empty it."
        }
        return "The server may hold the roles and databases the restore had created: drop those databases before restoring again."
    }

    public func recoverability(policy: String, repository: Repository, context: RunContext) throws -> Recoverability? {
        let inventory = try PhysicalRecoveryInventory.load(repository: repository, policy: policy, context: context)
        guard !inventory.backups.isEmpty else { return nil }
        var unusable: [String: String] = [:]
        for backup in inventory.backups {
            let (interval, missing) = RecoveryPlanner.interval(for: backup, timeline: .latest, wal: inventory.wal)
            if interval == nil { unusable[backup.id] = missing ?? "its WAL is incomplete" }
        }
        return Recoverability(intervals: RecoveryPlanner.intervals(backups: inventory.backups, wal: inventory.wal), unusable: unusable)
    }

    public func verifyDependencies(of manifest: Manifest, in repository: Repository, context: RunContext) throws -> [VerificationProblem] {
        guard let record = try Self.physicalRecord(of: manifest) else { return [] }
        var problems: [VerificationProblem] = []
        let archive = WALArchive(repository: repository, policy: manifest.policy, context: context)
        for segment in record.requiredSegments {
            try context.cancellation.checkCancelled()
            let what = "WAL segment \(segment.name)"
            do {
                try archive.verify(.segment(segment))
                context.logger.info("WAL segment verified", metadata: ["wal.segment": "\(segment.name)"])
            } catch let error as LifeboatError where error.code == .notFound {
                problems.append(VerificationProblem(artifact: what, entry: nil,
                                                    message: "the base backup needs it and it is not in the repository (\(repository.locate(archive.key(for: .segment(segment)))))"))
            } catch let error as LifeboatError where error.code == .cancelled {
                throw error
            } catch {
                problems.append(VerificationProblem(artifact: what, entry: nil, message: "\(error)"))
            }
        }
        return problems
    }

    /// A base backup is consistent at its stop point; a logical backup at its end.
    public func consistentPoint(of manifest: Manifest) -> Date {
        (try? Self.physicalRecord(of: manifest))?.stopTime ?? manifest.finishedAt
    }

    /// Deletes the archived WAL that no kept base backup needs (`WALArchive.prune`): WAL
    /// before the start of the oldest kept base backup. Nil for a policy without a WAL archive.
    public func pruneDependencies(policy: String, kept: [Manifest], in repository: Repository, dryRun: Bool,
                                  context: RunContext) throws -> DependencyPruneReport? {
        var backups: [PhysicalBackupInfo] = []
        for manifest in kept where manifest.source.kind == name {
            if let record = try Self.physicalRecord(of: manifest) { backups.append(PhysicalBackupInfo(id: manifest.id, record: record)) }
        }
        return try WALArchive(repository: repository, policy: policy, context: context).prune(keeping: backups, dryRun: dryRun)
    }

    /// The WAL archive: `wal-push` takes no lock (whatever the policy's mode now: a policy that
    /// was physical may still hold a killed push's leftovers).
    public func lockFreeWritePrefixes(policy: String) -> [String] { [WALArchiveLayout.prefix(policy: policy)] }

    /// A base backup's record, or nil for a logical backup.
    static func physicalRecord(of manifest: Manifest) throws -> PhysicalBackupRecord? {
        try manifest.source.details(as: PostgresRecord.self).physical
    }
}

/// A `postgres` source's configuration.
public struct PostgresConfiguration: SourceConfiguration {
    public enum Mode: String, Sendable, CaseIterable { case logical, physical }
    /// How a base backup starts: `fast` asks for an immediate checkpoint (I/O at once),
    /// `spread` waits for one spread over `checkpoint_completion_target` (PostgreSQL's default).
    public enum Checkpoint: String, Sendable, CaseIterable { case fast, spread }

    /// `source.postgres.wal`: continuous archiving (physical mode).
    public struct WALSettings: Sendable, Equatable {
        /// How long a base backup waits for the WAL it needs to reach the repository.
        public var timeout: TimeInterval = 600
        /// `wal-push`: segments pushed at once when PostgreSQL has several waiting (`.ready`).
        public var pushParallel: Int = 4
        /// `wal-fetch`: segments fetched ahead during recovery (0: none).
        public var prefetch: Int = 8

        public init() {}
    }
    /// libpq conninfo. May hold a password (after `${VAR}` interpolation): never print it.
    public var conninfo: String
    public var mode: Mode
    /// Databases to dump; nil means every database that is not a template.
    public var databases: [String]?
    /// Whether to dump roles and tablespaces (`pg_dumpall --globals-only`).
    public var globals: Bool
    /// Where pg_dump, pg_restore, … are; nil finds the ones matching the server's version.
    public var binDir: String?
    /// Physical mode: the checkpoint a base backup starts with.
    public var checkpoint: Checkpoint
    /// Physical mode: the server's tar of each tablespace is stored in artifacts of about
    /// this many bytes of files (a new one starts after the file that reaches it), so that a
    /// restore extracts several at once. `part_size`.
    public var partSize: Int64
    public static let defaultPartSize: Int64 = 128 << 20
    /// Physical mode: WAL archiving settings.
    public var wal: WALSettings
    /// The conninfo's password, if it holds one.
    let password: String?

    public init(conninfo: String, mode: Mode = .logical, databases: [String]? = nil, globals: Bool = true,
                binDir: String? = nil, checkpoint: Checkpoint = .spread, partSize: Int64 = Self.defaultPartSize,
                wal: WALSettings = WALSettings(), password: String? = nil) {
        self.partSize = partSize
        self.conninfo = conninfo
        self.mode = mode
        self.databases = databases
        self.globals = globals
        self.binDir = binDir
        self.checkpoint = checkpoint
        self.wal = wal
        self.password = password
    }

    public var kind: String { "postgres" }
    public var secrets: [String] { password.map { [$0] } ?? [] }
    public var restoreTargetKeys: [String] { mode == .logical ? ["conninfo"] : ["data_dir"] }

}

/// What a PostgreSQL backup records in its manifest (`source.postgres`): the server's identity
/// and the connection without secrets, so that a machine with only the repository knows what
/// it restores and which client programs it needs.
public struct PostgresRecord: Codable, Equatable, Sendable {
    public var mode: String
    /// Connection without secrets: host, port, user (never the password).
    public var host: String
    public var port: String
    public var user: String
    public var serverVersion: String
    public var serverVersionNumber: Int
    public var systemIdentifier: String
    public var databases: [String]
    public var dumpVersion: String?
    /// Physical mode: the base backup's position in the cluster's history.
    public var physical: PhysicalBackupRecord?

    public init(mode: String, host: String, port: String, user: String, serverVersion: String,
                serverVersionNumber: Int, systemIdentifier: String, databases: [String], dumpVersion: String?,
                physical: PhysicalBackupRecord? = nil) {
        self.physical = physical
        self.mode = mode
        self.host = host
        self.port = port
        self.user = user
        self.serverVersion = serverVersion
        self.serverVersionNumber = serverVersionNumber
        self.systemIdentifier = systemIdentifier
        self.databases = databases
        self.dumpVersion = dumpVersion
    }

    /// The major version of the server that was dumped (15 for 150008).
    public var serverMajorVersion: Int { serverVersionNumber / 10000 }
}

extension ArtifactRole {
    /// A base backup's main data directory, as the server's `base.tar` holds it.
    public static let postgresBase = ArtifactRole("postgres-base")
    /// One tablespace of a base backup (named by `PhysicalBackupRecord.tablespaces`).
    public static let postgresTablespace = ArtifactRole("postgres-tablespace")
    /// The server's own `backup_manifest` for a base backup.
    public static let postgresBackupManifest = ArtifactRole("postgres-backup-manifest")

    /// `pg_dumpall --globals-only`: roles and tablespaces, as SQL.
    public static let postgresGlobals = ArtifactRole("postgres-globals")
    /// `pg_dump --format=custom` of one database (named in the artifact record).
    public static let postgresDatabase = ArtifactRole("postgres-database")
}
