import Foundation
import Glibc
import LifeboatCore
import LifeboatIO

/// A throwaway PostgreSQL server on a restored data directory, for a drill: started with
/// `pg_ctl` on a free loopback port (its unix socket in the scratch directory), with archiving,
/// SSL and the logging collector off whatever the restored configuration says (a scratch copy
/// must never push WAL into the production archive); it replays archived WAL to the recovery
/// target and is promoted. Stopped fast, then immediate, then `SIGKILL`.
///
/// When Lifeboat runs as root, the server's programs run as the owner of the data directory
/// (through `runuser`), as PostgreSQL refuses root.
public struct ScratchPostgres: Sendable {
    public let dataDirectory: String
    /// Holds the unix socket and the server log.
    public let directory: String
    public let binDir: String
    public let port: Int

    public var logPath: String { directory + "/postgres.log" }

    /// The server programs for the data directory's version: `binDir` when it has them, else
    /// `/usr/lib/postgresql/<PG_VERSION>/bin`, else `PATH`.
    public static func serverBinDir(dataDirectory: String, preferred: String?) throws -> String {
        let version = (try? readTextFile(dataDirectory + "/PG_VERSION"))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        var candidates: [String] = []
        if let preferred { candidates.append(preferred) }
        if !version.isEmpty { candidates.append("/usr/lib/postgresql/\(version)/bin") }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        candidates += path.split(separator: ":").map(String.init).filter { $0.hasPrefix("/") }
        guard let found = candidates.first(where: { dir in
            ["postgres", "pg_ctl", "pg_controldata"].allSatisfy { access("\(dir)/\($0)", X_OK) == 0 }
        }) else {
            throw LifeboatError(.postgres, "the PostgreSQL \(version) server programs (postgres, pg_ctl, pg_controldata) were not found in /usr/lib/postgresql/\(version)/bin nor in PATH",
                                hint: "A drill starts the restored data directory on a scratch server: install the PostgreSQL \(version) server (apt-get install postgresql-\(version)), or set the policy's bin_dir to where they are.")
        }
        return found
    }

    /// Starts the server and waits until `pg_ctl` sees it accept connections (a standby
    /// replaying WAL counts). `directory` holds the socket and log.
    public static func start(dataDirectory: String, directory: String, binDir: String, context: RunContext) throws -> ScratchPostgres {
        let owner = try FileOwnerName.of(dataDirectory)
        try makeDirectories(directory, mode: 0o700)
        try owner.give(directory)
        var lastError: (any Error)?
        for _ in 0..<3 {
            let port = try LoopbackPort.free()
            let server = ScratchPostgres(dataDirectory: dataDirectory, directory: directory, binDir: binDir, port: port)
            let options = [
                "-p \(port)", "-k \(directory)", "-c listen_addresses=127.0.0.1", "-c archive_mode=off", "-c ssl=off",
                "-c logging_collector=off", "-c log_destination=stderr", "-c hot_standby=on", "-c cluster_name=lifeboat-drill",
            ].joined(separator: " ")
            context.logger.info("starting a scratch PostgreSQL server", metadata: [
                "drill.data_dir": "\(dataDirectory)", "drill.port": "\(port)",
            ])
            let result = try server.asOwner(owner, "\(binDir)/pg_ctl",
                                            ["-D", dataDirectory, "-l", server.logPath, "-w", "-t", "600", "-o", options, "start"])
            if result.status.isSuccess { return server }
            let log = server.logTail()
            lastError = LifeboatError(.postgres, "the scratch PostgreSQL server on \(dataDirectory) did not start\(log.isEmpty ? ": \(result.stderr)" : "; its log says: \(log)")",
                                      hint: "Read the server log above: a restore_command that cannot fetch WAL, or a setting of the restored configuration this machine cannot honour.")
            if !log.contains("could not bind") && !log.contains("Address already in use") { break }
        }
        throw lastError ?? LifeboatError(.postgres, "the scratch PostgreSQL server on \(dataDirectory) did not start")
    }

    /// Waits until recovery has ended and the server was promoted (`pg_controldata`: "in
    /// production"), or the server stopped (then fails with its log), or the run is cancelled.
    public func waitForPromotion(context: RunContext) throws {
        while true {
            try context.cancellation.checkCancelled()
            let state = try? ChildProcess.run("\(binDir)/pg_controldata", ["-D", dataDirectory])
            if let state, state.stdout.contains("in production") { return }
            if Self.postmasterPID(dataDirectory) == nil {
                throw LifeboatError(.postgres, "the scratch PostgreSQL server on \(dataDirectory) stopped during recovery: \(logTail())",
                                    hint: "The restored backup or its WAL could not be replayed; the log names the cause.")
            }
            context.sleep(0.2)
        }
    }

    /// The last transaction replayed, from the server log ("last completed transaction was at
    /// log time …"); nil when recovery replayed none.
    public func lastReplayedCommit() -> Date? {
        guard let log = try? readTextFile(logPath) else { return nil }
        let marker = "last completed transaction was at log time "
        guard let range = log.range(of: marker, options: .backwards) else { return nil }
        let text = log[range.upperBound...].prefix { $0 != "\n" }
        return RecoveryTarget.parseTime(String(text), timeZone: TimeZone(identifier: "UTC")!)
    }

    /// What the server said went wrong: the FATAL, PANIC and ERROR lines (with their DETAIL
    /// and HINT) of the end of its log, else its last lines.
    func logTail() -> String {
        guard let log = try? readTextFile(logPath) else { return "" }
        let lines = log.split(separator: "\n").suffix(40)
        let serious = lines.filter { line in ["FATAL:", "PANIC:", "ERROR:", "DETAIL:", "HINT:"].contains { line.contains($0) } }
        return (serious.isEmpty ? Array(lines.suffix(3)) : Array(serious.suffix(6))).joined(separator: "\n")
    }

    func asOwner(_ owner: FileOwnerName, _ program: String, _ arguments: [String]) throws -> (status: ChildProcess.Termination, stdout: String, stderr: String) {
        try Self.asOwner(owner, program, arguments)
    }

    static func asOwner(_ owner: FileOwnerName, _ program: String, _ arguments: [String]) throws -> (status: ChildProcess.Termination, stdout: String, stderr: String) {
        if geteuid() == 0, owner.uid != 0 {
            let candidates: [String] = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser", "/bin/runuser"]
            let runuser = candidates.first { access($0, X_OK) == 0 }
            guard let runuser else {
                throw LifeboatError(.postgres, "runuser was not found: Lifeboat runs as root, and PostgreSQL refuses to",
                                    hint: "Install util-linux (it provides runuser), or run the drill as the PostgreSQL user.")
            }
            return try ChildProcess.run(runuser, ["-u", owner.name, "--", program] + arguments)
        }
        return try ChildProcess.run(program, arguments)
    }

    /// The postmaster's pid from `postmaster.pid`, when that process runs.
    static func postmasterPID(_ dataDirectory: String) -> Int32? {
        guard let text = try? readTextFile(dataDirectory + "/postmaster.pid"),
              let pid = Int32(text.prefix { $0 != "\n" }.trimmingCharacters(in: .whitespaces)), pid > 0,
              ProcessProbe.runs(pid: pid, start: nil)
        else { return nil }
        return pid
    }

    /// Stops whatever server runs on `dataDirectory`: `pg_ctl stop -m fast` (unless `quick`),
    /// then `-m immediate`, then `SIGKILL` to the postmaster and its children. Never throws;
    /// returns what went wrong.
    @discardableResult
    public static func stop(dataDirectory: String, binDir: String?, quick: Bool) -> String? {
        guard let pid = postmasterPID(dataDirectory) else { return nil }
        // Only a postgres process (a pid reused by another program is left alone).
        guard let command = try? readTextFile("/proc/\(pid)/cmdline"), command.contains("postgres") else { return nil }
        if let binDir, let owner = try? FileOwnerName.of(dataDirectory) {
            for mode in quick ? ["immediate"] : ["fast", "immediate"] {
                _ = try? asOwner(owner, "\(binDir)/pg_ctl", ["-D", dataDirectory, "-m", mode, "-w", "-t", "10", "stop"])
                if postmasterPID(dataDirectory) == nil || !ProcessProbe.runs(pid: pid, start: nil) { return nil }
            }
        }
        // The postmaster's children end with it; kill the group's members we can name too.
        let children = (try? directoryEntries("/proc"))?.compactMap(Int32.init).filter { child in
            guard let stat = try? readTextFile("/proc/\(child)/stat"), let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid
        } ?? []
        kill(pid, SIGKILL)
        for child in children { kill(child, SIGKILL) }
        for _ in 0..<100 where ProcessProbe.runs(pid: pid, start: nil) {
            var status: Int32 = 0
            _ = waitpid(pid, &status, WNOHANG)
            usleep(20_000)
        }
        return ProcessProbe.runs(pid: pid, start: nil) ? "the scratch PostgreSQL server (pid \(pid)) on \(dataDirectory) did not stop" : nil
    }
}

/// Who owns a file, by id and name: the user a scratch server runs as.
struct FileOwnerName: Sendable {
    let uid: uid_t
    let gid: gid_t
    let name: String

    static func of(_ path: String) throws -> FileOwnerName {
        var info = stat()
        guard stat(path, &info) == 0 else { throw LifeboatError(.io, "unable to stat '\(path)': \(errnoText())") }
        let name = getpwuid(info.st_uid).flatMap { $0.pointee.pw_name.map { String(cString: $0) } } ?? "\(info.st_uid)"
        return FileOwnerName(uid: info.st_uid, gid: info.st_gid, name: name)
    }

    /// Gives `path` to this owner (when we are root and it is someone else).
    func give(_ path: String) throws {
        guard geteuid() == 0, uid != 0 else { return }
        guard chown(path, uid, gid) == 0 else { throw LifeboatError(.io, "unable to give '\(path)' to user \(name): \(errnoText())") }
    }
}
