import Glibc
import LifeboatCore
import LifeboatIO
import LifeboatPostgres
import Synchronization

/// Facts about where the tests run.
public enum TestEnvironment {
    /// True on a continuous-integration runner (`CI` set to anything but "", "0", "false").
    public static var isCI: Bool {
        guard let pointer = getenv("CI") else { return false }
        let value = String(cString: pointer).lowercased()
        return !value.isEmpty && value != "0" && value != "false"
    }
}

/// The path of the first executable `name` in `dirs`.
///
/// - Throws: `LifeboatError(.notFound)` naming the program and the directories searched,
///   with `hint` (or a generic one) saying how to install it.
public func requireProgram(_ name: String, in dirs: [String], hint: String? = nil) throws -> String {
    for dir in dirs {
        let path = dir.hasSuffix("/") ? "\(dir)\(name)" : "\(dir)/\(name)"
        var info = stat()
        if stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, access(path, X_OK) == 0 {
            return path
        }
    }
    throw LifeboatError(
        .notFound, "required program '\(name)' not found in \(dirs.joined(separator: ", "))",
        hint: hint ?? "Install the package that provides '\(name)' and run the tests again.")
}

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago (`LoopbackPort.free`).
public func freeLoopbackPort() throws -> Int {
    try LoopbackPort.free()
}

/// A real PostgreSQL server on 127.0.0.1 for one test, in a temporary directory of its own.
///
/// `initdb` runs once per test process, into a template directory that every server copies,
/// so that starting a server takes a fraction of a second. Run as root, every server
/// program runs as the `postgres` OS user (initdb and postgres refuse root), through
/// `runuser`. Authentication is `scram-sha-256` everywhere, with the superuser `postgres`.
///
/// `stop()` shuts the server down and removes its directory; it also runs when the object
/// goes away. Missing PostgreSQL programs are an error, never a silent skip.
public final class PostgresServer: Sendable {
    /// The TCP port on 127.0.0.1.
    public let port: Int
    /// The password of the superuser `postgres`.
    public let superuserPassword: String
    /// The server's temporary directory (data in `data/`, log in `log`, socket in it).
    public let directory: String
    /// Where initdb, pg_ctl, postgres and psql are.
    public let binDir: String
    /// The major version of the server programs (from `postgres --version`).
    public let majorVersion: Int
    /// Set once the server was stopped.
    private let stopped = Mutex(false)

    private init(port: Int, superuserPassword: String, directory: String, binDir: String, majorVersion: Int) {
        self.port = port
        self.superuserPassword = superuserPassword
        self.directory = directory
        self.binDir = binDir
        self.majorVersion = majorVersion
    }

    deinit {
        stop()
    }

    /// Starts a new server whose superuser `postgres` has `superuserPassword`.
    ///
    /// - Throws: when a PostgreSQL program is missing (the message names it and says how to
    ///   install it), or when initdb or the server fails (with its output).
    ///
    /// `settings` are appended to the copy's `postgresql.auto.conf` before it starts (values
    /// as PostgreSQL's configuration files write them: strings in single quotes), e.g.
    /// `["archive_mode": "on", "archive_command": "'…'"]`.
    public static func start(superuserPassword: String = "secret-pw-1", settings: [String: String] = [:]) throws -> PostgresServer {
        let binDir = try serverBinDir()
        let majorVersion = try serverMajorVersion(binDir: binDir)
        let template = try templateDirectory(binDir: binDir, password: superuserPassword)
        let owner = try postgresOwner()

        let directory = try makeTemporaryDirectory(prefix: "lifeboat-pg", owner: owner)
        do {
            try runChecked("/bin/cp", ["-a", "\(template)/data", "\(directory)/data"])
            if !settings.isEmpty {
                let lines = settings.keys.sorted().map { "\($0) = \(settings[$0]!)\n" }.joined()
                try appendFile("\(directory)/data/postgresql.auto.conf", lines)
            }
            return try launch(directory: directory, superuserPassword: superuserPassword, binDir: binDir, majorVersion: majorVersion)
        } catch {
            removeDirectory(directory)
            throw error
        }
    }

    /// A new directory for a server whose data directory the test makes itself (a restore
    /// writes `data/` in it), given to the server's user; start it with `start(existing:)`.
    public static func makeServerDirectory() throws -> String {
        try makeTemporaryDirectory(prefix: "lifeboat-pg", owner: try postgresOwner())
    }

    /// Starts a server on `directory/data` (made by the test, e.g. restored by Lifeboat; owned
    /// by the server's user). A data directory set up for recovery replays first; this returns
    /// once the server accepts connections (`timeout` seconds at most). The server and the
    /// directory go away with `stop()`.
    public static func start(existing directory: String, superuserPassword: String = "secret-pw-1",
                             timeout: Int = 300) throws -> PostgresServer {
        let binDir = try serverBinDir()
        let majorVersion = try serverMajorVersion(binDir: binDir)
        return try launch(directory: directory, superuserPassword: superuserPassword, binDir: binDir,
                          majorVersion: majorVersion, timeout: timeout)
    }

    /// `pg_ctl start` on a free port (another one if the port was taken in between).
    private static func launch(directory: String, superuserPassword: String, binDir: String, majorVersion: Int,
                               timeout: Int = 60) throws -> PostgresServer {
        var lastError: (any Error)?
        for _ in 0..<3 {
            let port = try freeLoopbackPort()
            let options = "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off"
                + " -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=32MB"
            do {
                try runAsPostgres("\(binDir)/pg_ctl",
                                  ["-D", "\(directory)/data", "-o", options, "-l", "\(directory)/log", "-t", "\(timeout)", "-w", "start"],
                                  in: directory)
                return PostgresServer(port: port, superuserPassword: superuserPassword, directory: directory,
                                      binDir: binDir, majorVersion: majorVersion)
            } catch {
                // Most likely the port was taken in between; try another one.
                lastError = error
                if pathExists("\(directory)/data/postmaster.pid") { break }
            }
        }
        let log = readFile("\(directory)/log")
        throw LifeboatError(
            .process, "unable to start the PostgreSQL test server in \(directory): \(lastError.map { "\($0)" } ?? "unknown error")\nserver log:\n\(log)")
    }

    /// A conninfo for this server as `postgres`: host, port, user, dbname and password
    /// (the superuser password unless `password` is given).
    public func conninfo(database: String = "postgres", password: String? = nil) -> String {
        "host=127.0.0.1 port=\(port) user=postgres dbname=\(Self.quoted(database)) password=\(Self.quoted(password ?? superuserPassword))"
    }

    /// The parameters of `conninfo(database:password:)`.
    public func parameters(database: String = "postgres", password: String? = nil) throws -> PostgresConnectionParameters {
        try PostgresConnectionParameters(conninfo: conninfo(database: database, password: password))
    }

    /// Runs SQL with `psql -At` as the superuser and returns its output without the final
    /// newline (one line per row, columns separated by `|`).
    ///
    /// - Throws: `LifeboatError(.process)` with psql's standard error when it fails.
    @discardableResult
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        let result = try ChildProcess.run(
            "\(binDir)/psql",
            ["--no-psqlrc", "-At", "--no-password", "--set=ON_ERROR_STOP=1",
             "--dbname=host=127.0.0.1 port=\(port) user=postgres dbname=\(Self.quoted(database))", "-c", sql],
            environment: ["PGPASSWORD": superuserPassword])
        guard result.status.isSuccess else {
            throw LifeboatError(.process, "psql on the test server at 127.0.0.1:\(port)/\(database) \(result.status): \(result.stderr)")
        }
        var output = result.stdout
        if output.hasSuffix("\n") { output.removeLast() }
        return output
    }

    /// What the server wrote to its log so far.
    public func serverLog() -> String {
        Self.readFile("\(directory)/log")
    }

    /// Stops the server (`pg_ctl stop -m fast`) and removes its directory. Does nothing the
    /// second time. Failures are written to standard error: there is nothing else to do
    /// about them at the end of a test.
    public func stop() {
        let alreadyStopped = stopped.withLock { stopped in
            defer { stopped = true }
            return stopped
        }
        if alreadyStopped { return }
        do {
            try Self.runAsPostgres("\(binDir)/pg_ctl", ["-D", "\(directory)/data", "-m", "fast", "-w", "stop"], in: directory)
        } catch {
            Self.warn("stopping the PostgreSQL test server on port \(port) failed, stopping it at once: \(error)")
            do {
                try Self.runAsPostgres("\(binDir)/pg_ctl", ["-D", "\(directory)/data", "-m", "immediate", "-w", "stop"], in: directory)
            } catch {
                Self.warn("stopping the PostgreSQL test server on port \(port) at once failed too: \(error)")
            }
        }
        Self.removeDirectory(directory)
    }

    // MARK: One initdb per process

    /// Template data directories by superuser password, removed when the process exits.
    private static let templates = Mutex<[String: String]>([:])

    private static let removeTemplatesAtExit: Void = {
        atexit {
            let directories = PostgresServer.templates.withLock { templates in
                defer { templates = [:] }
                return Array(templates.values)
            }
            for directory in directories { PostgresServer.removeDirectory(directory) }
        }
    }()

    /// The template directory (with `data/` inside) for a superuser password, made by
    /// initdb the first time. The lock is held during initdb so that concurrent tests wait
    /// for the one initdb rather than each running their own.
    private static func templateDirectory(binDir: String, password: String) throws -> String {
        try templates.withLock { templates in
            if let existing = templates[password] { return existing }
            removeTemplatesAtExit
            let owner = try postgresOwner()
            let directory = try makeTemporaryDirectory(prefix: "lifeboat-pg-template", owner: owner)
            do {
                let passwordFile = "\(directory)/pwfile"
                try writeFile(passwordFile, password + "\n", owner: owner)
                try runAsPostgres(
                    "\(binDir)/initdb",
                    ["-U", "postgres", "--auth=scram-sha-256", "--pwfile=\(passwordFile)", "--encoding=UTF8",
                     "--locale=C", "--no-sync", "-D", "\(directory)/data"],
                    in: directory)
                if unlink(passwordFile) != 0 {
                    throw LifeboatError(.io, "unable to remove '\(passwordFile)': \(errnoText())")
                }
            } catch {
                removeDirectory(directory)
                throw error
            }
            templates[password] = directory
            return directory
        }
    }

    // MARK: Programs

    /// The directory holding initdb, pg_ctl, postgres and psql: `LIFEBOAT_PG_BIN_DIR`, else
    /// `/usr/lib/postgresql/15/bin`, else the newest `/usr/lib/postgresql/<major>/bin`.
    private static func serverBinDir() throws -> String {
        var dirs: [String] = []
        if let pointer = getenv("LIFEBOAT_PG_BIN_DIR"), pointer.pointee != 0 {
            dirs.append(String(cString: pointer))
        }
        dirs.append("/usr/lib/postgresql/15/bin")
        dirs += (10...30).reversed().filter { $0 != 15 }.map { "/usr/lib/postgresql/\($0)/bin" }
        let hint = "Install the PostgreSQL server programs (apt-get install postgresql-15), or set LIFEBOAT_PG_BIN_DIR to the directory holding initdb, pg_ctl, postgres and psql."
        let initdb = try requireProgram("initdb", in: dirs, hint: hint)
        let binDir = String(initdb.dropLast("/initdb".count))
        for program in ["pg_ctl", "postgres", "psql", "pg_dump", "pg_restore"] {
            _ = try requireProgram(program, in: [binDir], hint: hint)
        }
        return binDir
    }

    private static func serverMajorVersion(binDir: String) throws -> Int {
        let result = try ChildProcess.run("\(binDir)/postgres", ["--version"])
        guard result.status.isSuccess else {
            throw LifeboatError(.process, "'\(binDir)/postgres --version' \(result.status): \(result.stderr)")
        }
        // "postgres (PostgreSQL) 15.8 (Debian 15.8-1)"
        let words = result.stdout.split(separator: " ")
        guard let index = words.firstIndex(of: "(PostgreSQL)"), index + 1 < words.count,
              let major = Int(words[index + 1].prefix { $0.isASCII && $0.isNumber }) else {
            throw LifeboatError(.process, "unable to read the version of '\(binDir)/postgres' from '\(result.stdout)'")
        }
        return major
    }

    /// Runs a server program as the `postgres` OS user when we are root (initdb and postgres
    /// refuse root), as ourselves otherwise; throws with its output when it fails.
    private static func runAsPostgres(_ program: String, _ arguments: [String], in directory: String) throws {
        if geteuid() == 0 {
            let runuser = try requireProgram("runuser", in: ["/usr/sbin", "/sbin", "/usr/bin", "/bin"],
                                             hint: "Install util-linux (it provides runuser), or run the tests as a user other than root.")
            try runChecked(runuser, ["-u", "postgres", "--", program] + arguments, in: directory)
        } else {
            try runChecked(program, arguments, in: directory)
        }
    }

    private static func runChecked(_ program: String, _ arguments: [String], in directory: String? = nil) throws {
        let result = try ChildProcess.run(program, arguments, workingDirectory: directory)
        guard result.status.isSuccess else {
            let output = (result.stdout + result.stderr).trimmingSpaces()
            throw LifeboatError(.process, "'\(([program] + arguments).joined(separator: " "))' \(result.status): \(output)")
        }
    }

    // MARK: Files

    /// The uid and gid of the `postgres` OS user when we are root; nil otherwise (files
    /// then stay ours, and the programs run as us).
    private static func postgresOwner() throws -> (uid: uid_t, gid: gid_t)? {
        guard geteuid() == 0 else { return nil }
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        let status = getpwnam_r("postgres", &entry, &buffer, buffer.count, &result)
        guard status == 0, let found = result else {
            throw LifeboatError(
                .notFound, "the OS user 'postgres' does not exist (the tests run as root, and initdb and postgres refuse to run as root)",
                hint: "Install the PostgreSQL server package (it creates the user), or run the tests as a user other than root.")
        }
        return (found.pointee.pw_uid, found.pointee.pw_gid)
    }

    private static func makeTemporaryDirectory(prefix: String, owner: (uid: uid_t, gid: gid_t)?) throws -> String {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw LifeboatError(.io, "unable to create a temporary directory under /tmp: \(errnoText())")
        }
        let directory = String(cString: made)
        if let owner, chown(directory, owner.uid, owner.gid) != 0 {
            let reason = errnoText()
            removeDirectory(directory)
            throw LifeboatError(.io, "unable to give '\(directory)' to the postgres user: \(reason)")
        }
        return directory
    }

    private static func writeFile(_ path: String, _ text: String, owner: (uid: uid_t, gid: gid_t)?) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw LifeboatError(.io, "unable to create file '\(path)': \(errnoText())") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            throw LifeboatError(.io, "unable to write file '\(path)': \(errnoText())")
        }
        if let owner, fchown(fd, owner.uid, owner.gid) != 0 {
            throw LifeboatError(.io, "unable to give '\(path)' to the postgres user: \(errnoText())")
        }
    }

    private static func appendFile(_ path: String, _ text: String) throws {
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw LifeboatError(.io, "unable to open '\(path)' to append to it: \(errnoText())") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw LifeboatError(.io, "unable to append to '\(path)': \(errnoText())") }
    }

    /// Gives `path` and everything under it to the `postgres` OS user when the tests run as
    /// root, so that programs the server runs (`archive_command`) can use it. Does nothing
    /// for another user (the server runs as that user already).
    public static func giveToServerUser(_ path: String) throws {
        guard let owner = try postgresOwner() else { return }
        try runChecked("/bin/chown", ["-R", "\(owner.uid):\(owner.gid)", path])
    }

    /// The text of a small file, or a note saying why there is none.
    private static func readFile(_ path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "(unable to read '\(path)': \(errnoText()))" }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            bytes += chunk[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func removeDirectory(_ directory: String) {
        // Only ever our own temporary directories.
        guard directory.hasPrefix("/tmp/lifeboat-pg") else { return }
        do {
            try runChecked("/bin/rm", ["-rf", "--", directory])
        } catch {
            warn("unable to remove the test directory '\(directory)': \(error)")
        }
    }

    private static func warn(_ message: String) {
        let bytes = Array("warning: \(message)\n".utf8)
        _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }

    /// A conninfo value in single quotes, `\` and `'` escaped.
    private static func quoted(_ value: String) -> String {
        "'" + value.replacingBackslashesAndQuotes() + "'"
    }
}

extension String {
    fileprivate func replacingBackslashesAndQuotes() -> String {
        var result = ""
        for character in self {
            if character == "\\" || character == "'" { result.append("\\") }
            result.append(character)
        }
        return result
    }

    fileprivate func trimmingSpaces() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let start = firstIndex(where: { !isSpace($0) }),
              let end = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[start...end])
    }
}
