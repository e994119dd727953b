import Foundation
import LifeboatArchive
import LifeboatCore
import LifeboatIO
import LifeboatPostgres

/// Restores a logical PostgreSQL backup into a server: the roles and tablespaces the target
/// lacks (existing ones are left exactly as they are, and reported), then each database with
/// `pg_restore --create`, fed only with chunks verified against the manifest.
struct PostgresLogicalRestore {
    let manifest: Manifest
    let repository: Repository
    /// The policy's `bin_dir`, when a configuration is at hand.
    let binDir: String?
    let context: RunContext

    func run(to target: RestoreTarget) throws -> RestoreReport {
        guard case .postgresServer(let conninfo) = target.location else {
            throw LifeboatError(.usage, "a logical PostgreSQL backup is restored into a server, not a \(target.location)",
                                hint: "Give --to a libpq connection string: \"host=… port=… user=… dbname=postgres\".")
        }
        let record = try manifest.source.details(as: PostgresRecord.self)
        let parameters = try PostgresConnectionParameters(conninfo: conninfo)
        Secrets.register(parameters.password)
        let databaseArtifacts = manifest.artifacts.filter { $0.role == .postgresDatabase }
        var selected = databaseArtifacts
        if let wanted = target.databases {
            let available = databaseArtifacts.compactMap(\.database)
            let missing = wanted.filter { !available.contains($0) }
            if !missing.isEmpty {
                throw LifeboatError(.usage, "backup \(manifest.id) has no database \(missing.map { "'\($0)'" }.joined(separator: ", "))",
                                    hint: "It holds: \(available.joined(separator: ", ")).")
            }
            selected = databaseArtifacts.filter { wanted.contains($0.database ?? "") }
        }

        // Look at the target before touching it: every database must be absent; existing roles
        // and tablespaces are kept as they are.
        context.logger.debug("connecting to the restore target", metadata: ["postgres.target": "\(parameters.safeDescription)"])
        let connection = try PostgresConnection.connect(parameters)
        let info = try connection.serverInfo()
        let existing = try selected.compactMap(\.database).filter { try connection.databaseExists($0) }
        let roles = try connection.listRoles()
        let tablespaces = try connection.listTablespaces()
        if !existing.isEmpty {
            throw LifeboatError(.targetNotEmpty, "database\(existing.count > 1 ? "s" : "") \(existing.map { "'\($0)'" }.joined(separator: ", ")) already exist\(existing.count > 1 ? "" : "s") on \(parameters.safeDescription)",
                                hint: "Lifeboat never overwrites a database: drop it first, or restore into another server (or choose databases with --database).")
        }
        // pg_restore must read the dump's archive format and write to the target: the newer of
        // the two majors. Without a configuration, this comes from the manifest alone.
        let programs = try PostgresClientPrograms(binDir: binDir, serverMajorVersion: max(info.majorVersion, record.serverMajorVersion))
        context.logger.debug("PostgreSQL client programs", metadata: ["postgres.bin_dir": "\(programs.binDir)"])

        var report = RestoreReport(policy: manifest.policy, backup: manifest.id, target: parameters.safeDescription)
        if target.globals, let globals = manifest.artifacts.first(where: { $0.role == .postgresGlobals }) {
            let plan = try restoreGlobals(globals, programs: programs, into: parameters, roles: roles, tablespaces: tablespaces)
            report.kept += plan.keptRoles.map { "role '\($0)' (it exists on the target; left as it is)" }
            report.kept += plan.keptTablespaces.map { "tablespace '\($0)' (it exists on the target; left as it is)" }
            report.restored += plan.createdRoles.map { "role '\($0)'" } + plan.createdTablespaces.map { "tablespace '\($0)'" }
        }
        for artifact in selected {
            try context.cancellation.checkCancelled()
            let database = artifact.database ?? "?"
            let source = try repository.openArtifact(artifact, of: manifest, context: context)
            defer { source.close() }
            try feed(try programs.startRestore(database: database, into: parameters), what: "pg_restore of database '\(database)'") { child in
                try readStream(artifact, source: source, stream: PostgresLogicalBackup.databaseStream) { try child.writeStdin($0) }
            }
            report.restored.append("database '\(database)'")
            context.logger.info("database restored", metadata: ["postgres.database": "\(database)", "postgres.target": "\(parameters.safeDescription)"])
        }
        return report
    }

    /// Creates the roles and tablespaces of the backup that the target lacks (see `GlobalsScript`).
    func restoreGlobals(_ artifact: ArtifactRecord, programs: PostgresClientPrograms, into parameters: PostgresConnectionParameters,
                        roles: Set<String>, tablespaces: Set<String>) throws -> GlobalsScript.Plan {
        let limit = 64 << 20
        var script: [UInt8] = []
        let source = try repository.openArtifact(artifact, of: manifest, context: context)
        defer { source.close() }
        try readStream(artifact, source: source, stream: PostgresLogicalBackup.globalsStream) { bytes in
            guard script.count + bytes.count <= limit else {
                throw LifeboatError(.integrity, "the roles and tablespaces script of backup \(manifest.id) is larger than \(limit >> 20) MiB")
            }
            script.append(contentsOf: bytes)
        }
        let plan = GlobalsScript.plan(String(decoding: script, as: UTF8.self), existingRoles: roles, existingTablespaces: tablespaces)
        if !plan.keptRoles.isEmpty || !plan.keptTablespaces.isEmpty {
            context.logger.info("roles and tablespaces that exist on the target are left as they are", metadata: [
                "postgres.roles_kept": "\(plan.keptRoles.joined(separator: ","))",
                "postgres.tablespaces_kept": "\(plan.keptTablespaces.joined(separator: ","))",
            ])
        }
        try feed(try programs.startRestoreGlobals(into: parameters), what: "psql creating roles and tablespaces") { child in
            try Array(plan.script.utf8).withUnsafeBytes { try child.writeStdin($0) }
        }
        context.logger.info("roles and tablespaces restored", metadata: [
            "postgres.target": "\(parameters.safeDescription)", "postgres.roles_created": "\(plan.createdRoles.joined(separator: ","))",
        ])
        return plan
    }

    /// Feeds a child's standard input with `write`, then requires a clean exit. An error of
    /// our own (a chunk that failed verification, the repository) stops the child, which has
    /// seen only verified bytes, and is reported with what was being restored.
    func feed(_ child: ChildProcess, what: String, write: (ChildProcess) throws -> Void) throws {
        let hint = "The target may hold a partial restore; drop what was created and run the restore again."
        context.logger.debug("started \(what)", metadata: ["process.command": "\(child.commandDescription)", "process.pid": "\(child.pid)"])
        do {
            try context.cancellation.whileRunning(onCancel: { child.stop() }) {
                try child.supervise(what, code: .process, hint: hint, write)
            }
        } catch var error as LifeboatError where error.code != .process && error.code != .cancelled {
            error = error.prefixed("\(what) stopped")
            error.hint = (error.hint.map { $0 + " " } ?? "") + hint
            throw error
        }
    }
}
