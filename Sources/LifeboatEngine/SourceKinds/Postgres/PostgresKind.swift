import Foundation
import LifeboatCore
import LifeboatPostgres

/// `source: { postgres: { conninfo, mode, databases, globals, bin_dir } }`.
///
/// `mode: logical`: `pg_dumpall --globals-only` and `pg_dump --format=custom` of each database,
/// each streamed into an artifact of its own; restored into a server with `psql` and
/// `pg_restore --create`.
public struct PostgresKind: SourceKind {
    public init() {}

    public var name: String { "postgres" }

    public var parser: SourceKindParser {
        SourceKindParser(kind: name) { node in
            guard let map = node.mapping(allowed: ["conninfo", "mode", "databases", "globals", "bin_dir"]) else { return nil }
            let conninfo = map.required("conninfo")?.string()
            var mode = PostgresConfiguration.Mode.logical
            if let modeNode = map["mode"] {
                guard let text = modeNode.oneOf(PostgresConfiguration.Mode.allCases.map(\.rawValue)) else { return nil }
                mode = PostgresConfiguration.Mode(rawValue: text) ?? .logical
                if mode == .physical {
                    modeNode.error("mode 'physical' (base backups and WAL archiving) is not available in this version",
                                   hint: "Use 'mode: logical' for pg_dump backups.")
                    return nil
                }
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
            } catch {
                let reason = (error as? LifeboatError)?.message ?? "\(error)"
                map["conninfo"]?.error("'source.postgres.conninfo' is not a valid libpq connection string: \(reason)",
                                       hint: "Write it as 'host=… port=… user=… dbname=…' or a postgresql:// URI.")
                return nil
            }
            return PostgresConfiguration(conninfo: conninfo, mode: mode, databases: databases, globals: globals ?? true,
                                         binDir: binDir, password: password)
        }
    }

    public func backup(_ configuration: any SourceConfiguration, into sink: ArtifactSink, context: RunContext) throws -> BackupOutcome {
        let postgres = try PostgresConfiguration.of(configuration)
        return BackupOutcome(record: try PostgresLogicalBackup(configuration: postgres).run(into: sink, context: context))
    }

    public func restoreLocation(commandLine text: String, workingDirectory: String) throws -> RestoreTarget.Location {
        .postgresServer(conninfo: text)
    }

    public func restore(_ manifest: Manifest, from repository: Repository, to target: RestoreTarget,
                        configuration: (any SourceConfiguration)?, context: RunContext) throws -> RestoreReport {
        let binDir = (configuration as? PostgresConfiguration)?.binDir
        return try PostgresLogicalRestore(manifest: manifest, repository: repository, binDir: binDir, context: context).run(to: target)
    }

    public func leftovers(of target: RestoreTarget) -> String {
        "The server may hold the roles and databases the restore had created: drop those databases before restoring again."
    }
}

/// A `postgres` source's configuration.
public struct PostgresConfiguration: SourceConfiguration {
    public enum Mode: String, Sendable, CaseIterable { case logical, physical }
    /// libpq conninfo. May hold a password (after `${VAR}` interpolation): never print it.
    public var conninfo: String
    public var mode: Mode
    /// Databases to dump; nil means every database that is not a template.
    public var databases: [String]?
    /// Whether to dump roles and tablespaces (`pg_dumpall --globals-only`).
    public var globals: Bool
    /// Where pg_dump, pg_restore, … are; nil finds the ones matching the server's version.
    public var binDir: String?
    /// The conninfo's password, if it holds one.
    let password: String?

    public init(conninfo: String, mode: Mode = .logical, databases: [String]? = nil, globals: Bool = true,
                binDir: String? = nil, password: String? = nil) {
        self.conninfo = conninfo
        self.mode = mode
        self.databases = databases
        self.globals = globals
        self.binDir = binDir
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

    public init(mode: String, host: String, port: String, user: String, serverVersion: String,
                serverVersionNumber: Int, systemIdentifier: String, databases: [String], dumpVersion: String?) {
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
    /// `pg_dumpall --globals-only`: roles and tablespaces, as SQL.
    public static let postgresGlobals = ArtifactRole("postgres-globals")
    /// `pg_dump --format=custom` of one database (named in the artifact record).
    public static let postgresDatabase = ArtifactRole("postgres-database")
}
