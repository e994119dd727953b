import Foundation
import LifeboatArchive
import LifeboatCore
import LifeboatIO
import LifeboatPostgres

/// `mode: logical`: `pg_dumpall --globals-only`, then `pg_dump --format=custom` of each
/// database, each streamed into an artifact of its own.
struct PostgresLogicalBackup {
    let configuration: PostgresConfiguration

    /// Entry names inside the artifacts (the database's name is in the artifact record, so
    /// a name with any characters in it never becomes a path).
    static let globalsStream = "globals.sql"
    static let databaseStream = "database.dump"

    func run(into sink: ArtifactSink, context: RunContext) throws -> SourceRecord {
        let logger = context.logger
        let parameters = try PostgresConnectionParameters(conninfo: configuration.conninfo)
        Secrets.register(parameters.password)
        logger.debug("connecting to PostgreSQL", metadata: ["postgres.server": "\(parameters.safeDescription)"])
        let (info, databases) = try inspect(parameters)
        let programs = try PostgresClientPrograms(binDir: configuration.binDir, serverMajorVersion: info.majorVersion)
        let dumpVersion = try programs.version(.pgDump)
        logger.info("dumping PostgreSQL", metadata: [
            "postgres.server": "\(parameters.safeDescription)", "postgres.version": "\(info.version)",
            "postgres.databases": "\(databases.joined(separator: ","))", "postgres.bin_dir": "\(programs.binDir)",
        ])

        if configuration.globals {
            try sink.artifact(role: .postgresGlobals) { writer in
                try stream(try programs.startDumpGlobals(connection: parameters), named: Self.globalsStream,
                           into: writer, what: "pg_dumpall --globals-only", context: context)
            }
        }
        for database in databases {
            try sink.artifact(role: .postgresDatabase, database: database) { writer in
                try stream(try programs.startDump(database: database, connection: parameters), named: Self.databaseStream,
                           into: writer, what: "pg_dump of database '\(database)'", context: context)
            }
        }
        return try SourceRecord(kind: "postgres", details: PostgresRecord(
            mode: "logical", host: parameters.host, port: String(parameters.port), user: parameters.user,
            serverVersion: info.version, serverVersionNumber: info.versionNumber,
            systemIdentifier: info.systemIdentifier, databases: databases, dumpVersion: dumpVersion))
    }

    /// Checks the connection and finds the databases to dump (the configured ones must exist).
    /// The connection is closed when this returns; the dumps make their own.
    func inspect(_ parameters: PostgresConnectionParameters) throws -> (PostgresServerInfo, [String]) {
        let connection = try PostgresConnection.connect(parameters)
        let info = try connection.serverInfo()
        let available = try connection.listDatabases()
        guard let wanted = configuration.databases else { return (info, available) }
        let missing = wanted.filter { !available.contains($0) }
        if !missing.isEmpty {
            let names = missing.map { "'\($0)'" }.joined(separator: ", ")
            throw LifeboatError(.source, "database\(missing.count > 1 ? "s" : "") \(names) listed in the policy do\(missing.count > 1 ? "" : "es") not exist on \(parameters.safeDescription)",
                                hint: "The server has: \(available.joined(separator: ", ")). Fix 'source.postgres.databases', or leave it out to back up every database.")
        }
        return (info, wanted)
    }

    /// Streams a child's standard output into the artifact, then requires a clean exit. A
    /// cancellation stops the child (it cancels its query on the server and exits).
    func stream(_ child: ChildProcess, named name: String, into writer: ArtifactWriter, what: String, context: RunContext) throws {
        let started = context.clock()
        context.logger.debug("started \(what)", metadata: ["process.command": "\(child.commandDescription)", "process.pid": "\(child.pid)"])
        try context.cancellation.whileRunning(onCancel: { child.stop() }) {
            try child.supervise(what, code: .source,
                                hint: "The dump is incomplete and was not committed; fix the cause above and run the backup again.") { child in
                try writer.addStream(name: name) { buffer in try child.readStdout(into: buffer) }
            }
        }
        context.logger.debug("\(what) finished", metadata: [
            "process.pid": "\(child.pid)", "process.seconds": "\(String(format: "%.2f", context.clock().timeIntervalSince(started)))",
        ])
    }
}
