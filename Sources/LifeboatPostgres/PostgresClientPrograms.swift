import Glibc
import LifeboatCore
import LifeboatIO

/// The PostgreSQL client programs Lifeboat runs (`pg_dump`, `pg_dumpall`, `pg_restore`,
/// `psql`), found once, and the streaming commands built on them.
///
/// The password is only ever passed through the environment (`PGPASSWORD`), never on a
/// command line, and every program runs with `--no-password` so that it fails instead of
/// waiting for a prompt.
public struct PostgresClientPrograms: Sendable {
    /// A client program.
    public enum Program: String, Sendable, CaseIterable {
        case pgDump = "pg_dump"
        case pgDumpAll = "pg_dumpall"
        case pgRestore = "pg_restore"
        case psql = "psql"
    }

    /// The directory the programs were taken from.
    public let binDir: String
    /// The major version of `pg_dump` (from `pg_dump --version`).
    public let pgDumpMajorVersion: Int

    /// Finds the client programs for a server of major version `serverMajorVersion`.
    ///
    /// With `binDir`, the programs must all be there. Without it, the first directory that
    /// holds them all among `/usr/lib/postgresql/<major>/bin`, then the same for newer
    /// majors, then the directories of `PATH`.
    ///
    /// - Throws: `LifeboatError(.configuration)` when a program is missing from `binDir`;
    ///   `LifeboatError(.postgres)` when none is found, or when `pg_dump` is older than the
    ///   server (an older pg_dump refuses to dump a newer server).
    public init(binDir: String?, serverMajorVersion: Int) throws {
        let installHint = "Install the client programs of PostgreSQL \(serverMajorVersion) or newer (apt-get install postgresql-client-\(serverMajorVersion)), or set bin_dir to the directory holding pg_dump, pg_dumpall, pg_restore and psql."
        let directory: String
        if let binDir {
            let missing = Program.allCases.filter { !Self.isExecutableFile("\(binDir)/\($0.rawValue)") }
            if !missing.isEmpty {
                throw LifeboatError(
                    .configuration,
                    "PostgreSQL client program\(missing.count > 1 ? "s" : "") \(missing.map { "'\($0.rawValue)'" }.joined(separator: ", ")) not found in bin_dir '\(binDir)'",
                    hint: installHint)
            }
            directory = binDir
        } else {
            var candidates = (serverMajorVersion...(serverMajorVersion + 10)).map { "/usr/lib/postgresql/\($0)/bin" }
            let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
            candidates += path.split(separator: ":").map(String.init).filter { $0.hasPrefix("/") }
            guard let found = candidates.first(where: { candidate in
                Program.allCases.allSatisfy { Self.isExecutableFile("\(candidate)/\($0.rawValue)") }
            }) else {
                throw LifeboatError(
                    .postgres, "PostgreSQL client programs (pg_dump, pg_dumpall, pg_restore, psql) not found in /usr/lib/postgresql/\(serverMajorVersion)/bin nor in PATH",
                    hint: installHint)
            }
            directory = found
        }
        self.binDir = directory

        let pgDump = "\(directory)/\(Program.pgDump.rawValue)"
        let versionText = try Self.version(of: pgDump)
        guard let major = Self.majorVersion(fromVersionOutput: versionText) else {
            throw LifeboatError(.postgres, "unable to read the version of '\(pgDump)' from its output '\(versionText)'",
                                hint: "Check that \(pgDump) is PostgreSQL's pg_dump; set bin_dir otherwise.")
        }
        if major < serverMajorVersion {
            throw LifeboatError(
                .postgres, "pg_dump at '\(pgDump)' is version \(major), older than the PostgreSQL server (version \(serverMajorVersion))",
                hint: "An older pg_dump cannot dump a newer server. \(installHint)")
        }
        self.pgDumpMajorVersion = major
    }

    /// The absolute path of a program.
    public func path(_ program: Program) -> String {
        "\(binDir)/\(program.rawValue)"
    }

    /// The first line of `<program> --version`, e.g. "pg_dump (PostgreSQL) 15.8".
    public func version(_ program: Program) throws -> String {
        try Self.version(of: path(program))
    }

    // MARK: Streaming commands

    /// Starts `pg_dump --format=custom --compress=0` of one database, its archive on the
    /// child's stdout (read it with `readStdout`). Lifeboat compresses the stream itself,
    /// so pg_dump does not compress it first.
    public func startDump(database: String, connection parameters: PostgresConnectionParameters) throws -> ChildProcess {
        let target = parameters.with(database: database)
        return try ChildProcess.spawn(
            path(.pgDump),
            ["--format=custom", "--compress=0", "--no-password", "--dbname=\(target.conninfoWithoutPassword())"],
            environment: target.clientEnvironment(), stdin: .null, stdout: .pipe)
    }

    /// Starts `pg_dumpall --globals-only` (roles and tablespaces as SQL), on stdout.
    ///
    /// pg_dumpall ignores the database of `--dbname`; it first connects to the database of
    /// the parameters (`postgres` when they name none), given with `--database`.
    /// With `noRolePasswords`, role passwords are left out (needed when the user is not a
    /// superuser, who alone can read them).
    public func startDumpGlobals(connection parameters: PostgresConnectionParameters, noRolePasswords: Bool = false) throws -> ChildProcess {
        let maintenance = parameters.value(for: "dbname") ?? "postgres"
        var arguments = ["--globals-only", "--no-password", "--database=\(maintenance)",
                         "--dbname=\(parameters.conninfoWithoutPassword())"]
        if noRolePasswords { arguments.append("--no-role-passwords") }
        return try ChildProcess.spawn(path(.pgDumpAll), arguments,
                                      environment: parameters.clientEnvironment(), stdin: .null, stdout: .pipe)
    }

    /// Starts `pg_restore --create --exit-on-error` reading a custom-format archive of
    /// `database` from its stdin (write it with `writeStdin`, then `closeStdin`).
    ///
    /// With `--create`, pg_restore connects to a maintenance database and creates the
    /// database named in the archive, which must not exist yet. The maintenance database
    /// is the one of the parameters, unless that is `database` itself or none is given,
    /// then `postgres`.
    public func startRestore(database: String, into parameters: PostgresConnectionParameters) throws -> ChildProcess {
        let maintenance = parameters.value(for: "dbname").flatMap { $0 == database ? nil : $0 } ?? "postgres"
        let target = parameters.with(database: maintenance)
        return try ChildProcess.spawn(
            path(.pgRestore),
            ["--create", "--exit-on-error", "--no-password", "--dbname=\(target.conninfoWithoutPassword())"],
            environment: target.clientEnvironment(), stdin: .pipe, stdout: .null)
    }

    /// Starts `psql` to run the SQL of `startDumpGlobals` from its stdin, stopping at the first
    /// error (`ON_ERROR_STOP=1`): the caller has removed the statements about roles and
    /// tablespaces that exist on the target, so an error is a real one.
    /// The database is the one of the parameters, `postgres` when they name none.
    public func startRestoreGlobals(into parameters: PostgresConnectionParameters) throws -> ChildProcess {
        let target = parameters.value(for: "dbname") == nil ? parameters.with(database: "postgres") : parameters
        return try ChildProcess.spawn(
            path(.psql),
            ["--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1",
             "--dbname=\(target.conninfoWithoutPassword())"],
            environment: target.clientEnvironment(), stdin: .pipe, stdout: .null)
    }

    // MARK: Helpers

    private static func version(of program: String) throws -> String {
        let result = try ChildProcess.run(program, ["--version"])
        guard result.status.isSuccess else {
            throw LifeboatError(.process, "'\(program) --version' \(result.status): \(result.stderr.trimmedOfWhitespace())",
                                hint: "Check the PostgreSQL client installation, or set bin_dir to another one.")
        }
        return result.stdout.split(separator: "\n").first.map { String($0).trimmedOfWhitespace() } ?? ""
    }

    /// 15 from "pg_dump (PostgreSQL) 15.8 (Debian 15.8-1)"; 9 from "… 9.6.24".
    static func majorVersion(fromVersionOutput text: String) -> Int? {
        let afterName: Substring
        if let range = text.firstRange(of: "(PostgreSQL) ") {
            afterName = text[range.upperBound...]
        } else if let lastSpace = text.lastIndex(of: " ") {
            afterName = text[text.index(after: lastSpace)...]
        } else {
            afterName = Substring(text)
        }
        return Int(afterName.prefix { $0.isASCII && $0.isNumber })
    }

    private static func isExecutableFile(_ path: String) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return false }
        return access(path, X_OK) == 0
    }
}
