import Foundation
import LifeboatArchive
import LifeboatCore
import LifeboatIO
import LifeboatPostgres
import Logging

/// Restores a committed backup. Every chunk is verified against the manifest before any of
/// its bytes reach the target.
public struct RestoreCommand {
    public let configuration: Configuration
    public let logger: Logger
    public let progress: any ProgressReporter

    public init(configuration: Configuration, logger: Logger, progress: any ProgressReporter = NoProgress()) {
        self.configuration = configuration
        self.logger = logger
        self.progress = progress
    }

    public struct Options: Sendable {
        /// A directory (files) or a conninfo (PostgreSQL logical).
        public var target: String
        /// PostgreSQL: restore only these databases (nil: all of them).
        public var databases: [String]?
        /// PostgreSQL: whether to apply roles and tablespaces.
        public var globals: Bool

        public init(target: String, databases: [String]? = nil, globals: Bool = true) {
            self.target = target
            self.databases = databases
            self.globals = globals
        }
    }

    public struct Result: Sendable, Encodable {
        public var policy: String
        public var backup: String
        public var target: String
        public var restored: [String]
        public var warnings: [String]
        public var seconds: Double
    }

    public func run(policy name: String, selector: String, options: Options) throws -> Result {
        let policy = try configuration.policy(named: name)
        var logger = logger
        logger[metadataKey: "policy.name"] = "\(policy.name)"
        let repository = try Repository.open(configuration.repository(for: policy), logger: logger)
        try repository.checkFormat()
        let manifest = try repository.resolve(policy: policy.name, selector: selector)
        logger[metadataKey: "backup.id"] = "\(manifest.id)"
        let started = Date()
        var result: Result
        switch manifest.source.kind {
        case "files":
            result = try restoreFiles(manifest, repository: repository, to: options.target, logger: logger)
        case "postgres":
            var binDir: String?
            if case .postgres(let source) = policy.source { binDir = source.binDir }
            result = try restorePostgres(manifest, repository: repository, options: options, binDir: binDir, logger: logger)
        default:
            throw LifeboatError(.usage, "backup \(manifest.id) holds a '\(manifest.source.kind)' source, which this version cannot restore")
        }
        result.seconds = Date().timeIntervalSince(started)
        logger.info("restore finished", metadata: ["restore.target": "\(result.target)", "restore.seconds": "\(String(format: "%.1f", result.seconds))"])
        return result
    }

    func reader(_ repository: Repository, _ manifest: Manifest, _ artifact: ArtifactRecord) throws -> any ObjectReader {
        do {
            let key = Repository.artifactKey(policy: manifest.policy, id: manifest.id, path: artifact.path)
            return ProgressReader(try repository.store.openReader(key: key),
                                  what: "restore \(artifact.path)\(artifact.database.map { " (\($0))" } ?? "")",
                                  total: artifact.size, progress: progress)
        } catch let error as LifeboatError where error.code == .notFound {
            throw LifeboatError(.integrity, "artifact \(artifact.path) of backup \(manifest.id) is missing from the repository \(repository.store.location)",
                                hint: "Run 'lifeboat verify \(manifest.policy) \(manifest.id)', and restore another backup.")
        }
    }

    // MARK: Files

    func restoreFiles(_ manifest: Manifest, repository: Repository, to target: String, logger: Logger) throws -> Result {
        let directory = target.hasPrefix("/") ? target : FileManager.default.currentDirectoryPath + "/" + target
        if pathExists(directory) {
            guard isDirectory(directory) else {
                throw LifeboatError(.targetNotEmpty, "restore target '\(directory)' exists and is not a directory")
            }
            let contents = try directoryEntries(directory)
            guard contents.isEmpty else {
                throw LifeboatError(.targetNotEmpty, "restore target '\(directory)' is not empty (\(contents.count) entr\(contents.count == 1 ? "y" : "ies"), e.g. '\(contents[0])')",
                                    hint: "Restore into a new or empty directory; Lifeboat never overwrites existing files.")
            }
        } else {
            // 0700: nobody else can reach the files while they are restored; the entries
            // themselves get the modes the backup recorded.
            try makeDirectories(directory, mode: 0o700)
        }
        for artifact in manifest.artifacts {
            let source = try reader(repository, manifest, artifact)
            defer { source.close() }
            try extractArtifact(artifact, source: source, to: directory)
            logger.info("artifact restored", metadata: ["artifact.path": "\(artifact.path)", "artifact.entries": "\(artifact.entries.count)"])
        }
        return Result(policy: manifest.policy, backup: manifest.id, target: directory, restored: [], warnings: [], seconds: 0)
    }

    // MARK: PostgreSQL

    /// - Parameter binDir: the policy's `bin_dir`, where its PostgreSQL client programs are.
    func restorePostgres(_ manifest: Manifest, repository: Repository, options: Options, binDir: String?,
                         logger: Logger) throws -> Result {
        let parameters = try PostgresConnectionParameters(conninfo: options.target)
        Secrets.register(parameters.password)
        let databaseArtifacts = manifest.artifacts.filter { $0.role == "postgres-database" }
        var selected = databaseArtifacts
        if let wanted = options.databases {
            let available = databaseArtifacts.compactMap(\.database)
            let missing = wanted.filter { !available.contains($0) }
            if !missing.isEmpty {
                throw LifeboatError(.usage, "backup \(manifest.id) has no database \(missing.map { "'\($0)'" }.joined(separator: ", "))",
                                    hint: "It holds: \(available.joined(separator: ", ")).")
            }
            selected = databaseArtifacts.filter { wanted.contains($0.database ?? "") }
        }

        // Check the target before touching it: every database must be absent.
        let (info, existing) = try { () throws -> (PostgresServerInfo, [String]) in
            let connection = try PostgresConnection.connect(parameters)
            return (try connection.serverInfo(), try selected.compactMap(\.database).filter { try connection.databaseExists($0) })
        }()
        if !existing.isEmpty {
            throw LifeboatError(.targetNotEmpty, "database\(existing.count > 1 ? "s" : "") \(existing.map { "'\($0)'" }.joined(separator: ", ")) already exist\(existing.count > 1 ? "" : "s") on \(parameters.safeDescription)",
                                hint: "Lifeboat never overwrites a database: drop it first, or restore into another server (or choose databases with --database).")
        }
        let programs = try PostgresClientPrograms(binDir: binDir, serverMajorVersion: info.majorVersion)
        var warnings: [String] = []

        if options.globals, let globals = manifest.artifacts.first(where: { $0.role == "postgres-globals" }) {
            warnings += try restoreGlobals(globals, of: manifest, repository: repository, programs: programs,
                                           into: parameters, logger: logger)
        }
        for artifact in selected {
            let database = artifact.database ?? "?"
            let source = try reader(repository, manifest, artifact)
            defer { source.close() }
            try feed(try programs.startRestore(database: database, into: parameters), what: "pg_restore of database '\(database)'") { child in
                try readStream(artifact, source: source, stream: PostgresLogicalSource.databaseStream) { try child.writeStdin($0) }
            }
            logger.info("database restored", metadata: ["postgres.database": "\(database)", "postgres.target": "\(parameters.safeDescription)"])
        }
        return Result(policy: manifest.policy, backup: manifest.id, target: parameters.safeDescription,
                      restored: selected.compactMap(\.database), warnings: warnings, seconds: 0)
    }

    /// Applies roles and tablespaces with psql. The role the restore connects as is left as it
    /// is on the target (see `GlobalsScript`). psql goes on past errors (`ON_ERROR_STOP=0`):
    /// roles that exist already are expected; other errors are returned as warnings.
    func restoreGlobals(_ artifact: ArtifactRecord, of manifest: Manifest, repository: Repository,
                        programs: PostgresClientPrograms, into parameters: PostgresConnectionParameters,
                        logger: Logger) throws -> [String] {
        let limit = 64 << 20
        var script: [UInt8] = []
        let source = try reader(repository, manifest, artifact)
        defer { source.close() }
        try readStream(artifact, source: source, stream: PostgresLogicalSource.globalsStream) { bytes in
            guard script.count + bytes.count <= limit else {
                throw LifeboatError(.integrity, "the roles and tablespaces script of backup \(manifest.id) is larger than \(limit >> 20) MiB")
            }
            script.append(contentsOf: bytes)
        }
        let (edited, removed) = GlobalsScript.removingStatements(for: parameters.user, from: String(decoding: script, as: UTF8.self))
        if removed > 0 {
            logger.info("role '\(parameters.user)' (the role this restore connects as) is kept as it is on the target")
        }
        let child = try programs.startRestoreGlobals(into: parameters)
        try feed(child, what: "psql applying roles and tablespaces") { child in
            try Array(edited.utf8).withUnsafeBytes { try child.writeStdin($0) }
        }
        var warnings: [String] = []
        for line in child.stderrText.split(separator: "\n") where line.contains("ERROR:") && !line.contains("already exists") {
            warnings.append(String(line))
            logger.warning("restoring roles and tablespaces: \(line)")
        }
        logger.info("roles and tablespaces restored", metadata: ["postgres.target": "\(parameters.safeDescription)"])
        return warnings
    }

    /// Feeds a child's standard input with `write`, then requires a clean exit. An error of
    /// our own (a chunk that failed verification, the repository) stops the child, which has
    /// seen only verified bytes, and is reported with what was being restored.
    func feed(_ child: ChildProcess, what: String, write: (ChildProcess) throws -> Void) throws {
        let hint = "The target may hold a partial restore; drop what was created and run the restore again."
        do {
            try child.supervise(what, code: .process, hint: hint, write)
        } catch var error as LifeboatError where error.code != .process {
            error = error.prefixed("\(what) stopped")
            error.hint = (error.hint.map { $0 + " " } ?? "") + hint
            throw error
        }
    }
}
