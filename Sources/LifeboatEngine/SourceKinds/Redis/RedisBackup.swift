import Foundation
import Glibc
import LifeboatArchive
import LifeboatCore
import LifeboatIO
import LifeboatRedis
import Synchronization

/// Backs up a Redis server's data as one RDB file, streamed into one artifact and checked
/// (magic, version, CRC-64) on the way: a file that fails the check fails the backup before
/// its artifact is committed.
///
/// Local mode: `BGSAVE SCHEDULE` (or the save already running), polled in `INFO persistence`
/// until `rdb_bgsave_in_progress` is 0 and a save finished after the request
/// (`rdb_saves` grew, or on servers without that field `rdb_last_save_time`, LASTSAVE's
/// value, moved past the one before), which must have `rdb_last_bgsave_status:ok`; then the
/// file `CONFIG GET dir` + `dbfilename` names, read on this machine. A file older than that
/// save is another machine's: refused.
///
/// Replication mode: `SYNC` on the same connection (`RDBReplicationStream`). The master
/// makes a fresh snapshot for it — a save of its own, to disk or streamed — so no `BGSAVE`
/// comes first: it would only make the server save twice.
struct RedisBackup {
    let configuration: RedisConfiguration

    /// Where the server keeps its RDB file, from `CONFIG GET`.
    struct ServerFile {
        var directory: String
        var name: String
        var path: String { directory.hasSuffix("/") ? directory + name : directory + "/" + name }
    }

    func run(into sink: ArtifactSink, context: RunContext) throws -> BackupOutcome {
        let endpoint = configuration.endpoint
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int(configuration.saveTimeout * 1000)))
        let connection = try Self.connect(configuration, context: context)
        defer { connection.close() }
        let server = RedisInfo.fields(try Self.info(connection, "server"))
        let version = server["redis_version"] ?? "unknown"
        let persistence = RedisInfo.fields(try Self.info(connection, "persistence"))
        let aofEnabled = persistence["aof_enabled"].map { $0 == "1" }

        var mode = configuration.mode
        let file = try serverFile(connection, mode: mode, context: context)
        if mode == .auto {
            // Local only for a server on this machine: another machine may well have a
            // directory of the same name, holding another server's file.
            if let file, Self.isThisMachine(configuration.host), isDirectory(file.directory), access(file.directory, R_OK | X_OK) == 0 {
                mode = .local
            } else {
                if let file {
                    let why = Self.isThisMachine(configuration.host) ? "the server's directory is not readable here" : "the server is not on this machine"
                    context.logger.info("\(why): taking the RDB over the replication stream", metadata: ["redis.dir": "\(file.directory)"])
                }
                mode = .replication
            }
        }
        let rdbFile = Self.safeFileName(file?.name, context: context)
        context.logger.info("backing up Redis", metadata: [
            "redis.server": "\(endpoint)", "redis.version": "\(version)", "redis.mode": "\(mode.rawValue)",
            "redis.tls": "\(endpoint.tls != nil)",
        ])

        func record(_ summary: RDBCheck.Summary, mode: String, transfer: String, serverPath: String?) throws -> BackupOutcome {
            if summary.checksumDisabled {
                context.logger.warning("the RDB file holds no checksum (the server saves with rdbchecksum no): only its header and end were checked",
                                       metadata: ["redis.server": "\(endpoint)"])
            }
            return BackupOutcome(record: try SourceRecord(kind: "redis", details: RedisRecord(
                host: configuration.host, port: configuration.port, user: configuration.user, tls: configuration.tls != nil,
                mode: mode, transfer: transfer, serverVersion: version, rdbVersion: summary.version, rdbSize: summary.size,
                rdbFile: rdbFile, serverPath: serverPath, checksum: summary.checksumHex, aofEnabled: aofEnabled)))
        }

        if mode == .local, let file {
            try Self.save(connection, before: persistence, deadline: deadline, context: context)
            if let opened = try openSavedFile(file, connection: connection, fallback: configuration.mode == .auto, context: context) {
                let (local, savedAt) = opened
                defer { local.close() }
                context.logger.info("reading the RDB file the server saved", metadata: ["redis.file": "\(file.path)", "redis.saved_at": "\(savedAt)"])
                // Read by the artifact's stream thread while this one waits for it: one thread at a time.
                nonisolated(unsafe) let reader = local
                let summary = try store(name: rdbFile, what: "RDB file '\(file.path)' saved by Redis at \(endpoint)", into: sink, context: context) { buffer in
                    try context.cancellation.checkCancelled()
                    return try reader.read(into: buffer)
                }
                return try record(summary, mode: "local", transfer: "file", serverPath: file.path)
            }
        }

        let stream = try RDBReplicationStream.start(on: connection, deadline: deadline) { note in
            context.logger.info("\(note)", metadata: ["redis.server": "\(endpoint)"])
        }
        let transfer: String
        switch stream.header {
        case .length: transfer = "length"
        case .eofMark: transfer = "diskless"
        }
        context.logger.info("receiving the RDB over the replication stream", metadata: [
            "redis.server": "\(endpoint)", "redis.transfer": "\(transfer)", "redis.transfer_header": "\(stream.header)",
            "redis.rdb_only": "\(stream.rdbOnly)",
        ])
        let summary = try store(name: rdbFile, what: "RDB file '\(rdbFile)' received from Redis at \(endpoint)", into: sink, context: context) { buffer in
            try stream.read(into: buffer)
        }
        return try record(summary, mode: "replication", transfer: transfer, serverPath: nil)
    }

    /// Streams the RDB that `read` delivers into one artifact, checking it on the way; an RDB
    /// that fails the check throws before the artifact is committed.
    private func store(name: String, what: String, into sink: ArtifactSink, context: RunContext,
                       read: @escaping @Sendable (UnsafeMutableRawBufferPointer) throws -> Int) throws -> RDBCheck.Summary {
        let check = SharedRDBCheck(RDBCheck(what: what, hint: "Nothing was committed. Run the backup again; if it fails again, look at the server's disk and log (redis-check-rdb on its file)."))
        var summary: RDBCheck.Summary?
        try sink.artifact(role: .redisRDB) { writer in
            try writer.addStream(name: name) { buffer in
                let count = try read(buffer)
                try check.state.withLock { try $0.update(UnsafeRawBufferPointer(rebasing: buffer[0..<count])) }
                return count
            }
            summary = try check.state.withLock { try $0.finish() }
        }
        guard let summary else {
            throw LifeboatError(.internalError, "the RDB artifact was written without its check", hint: "Report this as a bug in Lifeboat.")
        }
        context.logger.info("RDB file checked", metadata: [
            "redis.rdb_version": "\(summary.version)", "redis.rdb_bytes": "\(summary.size)",
            "redis.rdb_checksum": "\(summary.checksumHex ?? "none")",
        ])
        return summary
    }

    // MARK: Connection

    /// Connects and logs in (`AUTH [user] password`).
    static func connect(_ configuration: RedisConfiguration, context: RunContext) throws -> RedisConnection {
        let endpoint = configuration.endpoint
        Secrets.register(configuration.password)
        context.logger.debug("connecting to Redis", metadata: ["redis.server": "\(endpoint)", "redis.tls": "\(endpoint.tls != nil)"])
        let connection = try RedisConnection.connect(to: endpoint, cancellation: context.cancellation)
        guard let password = configuration.password else { return connection }
        let arguments = configuration.user.map { ["AUTH", $0, password] } ?? ["AUTH", password]
        let reply = try connection.command(arguments, shown: "AUTH")
        guard let message = reply.errorMessage else { return connection }
        connection.close()
        let who = configuration.user.map { "user '\($0)'" } ?? "the default user"
        if message.hasPrefix("ERR") && message.contains("without any password configured") {
            throw LifeboatError(.redis, "Redis at \(endpoint) has no password set for \(who), and the policy gives one: \(message)",
                                hint: "Remove 'password' from source.redis, or set the password on the server (requirepass, or an ACL user).")
        }
        throw LifeboatError(.redis, "Redis authentication failed for \(who) at \(endpoint): \(message)",
                            hint: "Check source.redis.password\(configuration.user == nil ? " (and 'user' for an ACL user)" : " and user") in the policy, and the server's requirepass or ACL.")
    }

    static func info(_ connection: RedisConnection, _ section: String) throws -> String {
        let reply = try connection.call(["INFO", section])
        guard let text = reply.text else {
            throw LifeboatError(.redis, "Redis at \(connection.endpoint) answered INFO \(section) with \(reply), not text")
        }
        return text
    }

    /// Where the server writes its RDB file: `CONFIG GET dir` and `dbfilename`. Nil when the
    /// server refuses CONFIG (renamed, or not allowed to this ACL user) and the mode does not
    /// need it; an error for `mode: local`.
    private func serverFile(_ connection: RedisConnection, mode: RedisConfiguration.Mode, context: RunContext) throws -> ServerFile? {
        do {
            guard let directory = try Self.config(connection, "dir"), let name = try Self.config(connection, "dbfilename") else {
                throw LifeboatError(.redis, "Redis at \(connection.endpoint) answered CONFIG GET dir/dbfilename with nothing")
            }
            return ServerFile(directory: directory, name: name)
        } catch let error as LifeboatError where error.code == .redis {
            switch mode {
            case .local:
                throw LifeboatError(.redis, "\(error.message); 'mode: local' needs it to find the server's RDB file",
                                    hint: "Allow CONFIG GET to the backup user (ACL SETUSER <user> +config|get) or undo the rename-command of CONFIG, or set 'mode: replication'.")
            case .auto:
                context.logger.info("CONFIG GET is refused: taking the RDB over the replication stream, named dump.rdb",
                                    metadata: ["redis.server": "\(connection.endpoint)", "error": "\(error.message)"])
            case .replication:
                context.logger.debug("CONFIG GET is refused: the RDB is named dump.rdb", metadata: ["error": "\(error.message)"])
            }
            return nil
        }
    }

    /// One value of `CONFIG GET name`, or nil when the server has no such parameter.
    private static func config(_ connection: RedisConnection, _ name: String) throws -> String? {
        let reply = try connection.call(["CONFIG", "GET", name])
        guard case .array(let values?) = reply, values.count >= 2 else { return nil }
        return values[1].text
    }

    /// The file name the restore writes: the server's `dbfilename` when it is a plain name.
    static func safeFileName(_ name: String?, context: RunContext) -> String {
        guard let name else { return "dump.rdb" }
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/"), !name.contains("\0"), name.utf8.count <= 255 else {
            context.logger.warning("the server's dbfilename is not a plain file name: the RDB is stored as dump.rdb",
                                   metadata: ["redis.dbfilename": "\(name)"])
            return "dump.rdb"
        }
        return name
    }

    // MARK: Local mode

    /// Whether `host` is this machine: a loopback name or address, or a name or address of one
    /// of its network interfaces.
    static func isThisMachine(_ host: String) -> Bool {
        let addresses = numericAddresses(of: host)
        if addresses.contains(where: { $0.hasPrefix("127.") || $0 == "::1" }) { return true }
        var interfaces: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&interfaces) == 0 else { return false }
        defer { freeifaddrs(interfaces) }
        var local: Set<String> = []
        var entry = interfaces
        while let current = entry {
            if let address = current.pointee.ifa_addr, let text = numericHost(address) { local.insert(text) }
            entry = current.pointee.ifa_next
        }
        return !local.isDisjoint(with: addresses)
    }

    /// The addresses `host` resolves to, as numbers (`10.0.0.5`, `fe80::1`); none when it
    /// does not resolve.
    private static func numericAddresses(of host: String) -> Set<String> {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var results: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &results) == 0 else { return [] }
        defer { freeaddrinfo(results) }
        var addresses: Set<String> = []
        var entry = results
        while let current = entry {
            if let address = current.pointee.ai_addr, let text = numericHost(address) { addresses.insert(text) }
            entry = current.pointee.ai_next
        }
        return addresses
    }

    private static func numericHost(_ address: UnsafeMutablePointer<sockaddr>) -> String? {
        let family = Int32(address.pointee.sa_family)
        guard family == AF_INET || family == AF_INET6 else { return nil }
        let length = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
        var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        guard getnameinfo(address, length, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST) == 0 else { return nil }
        // A link-local IPv6 address carries its interface (`fe80::1%eth0`): compare the address.
        let bytes = text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self).split(separator: "%").first.map(String.init)
    }

    /// `BGSAVE SCHEDULE`, or the save already running, until it finished with
    /// `rdb_last_bgsave_status:ok`. `before` is `INFO persistence` from before the request.
    static func save(_ connection: RedisConnection, before: [String: String], deadline: ContinuousClock.Instant,
                     context: RunContext) throws {
        let endpoint = connection.endpoint
        let savesBefore = before["rdb_saves"].flatMap { Int($0) }
        let lastSaveBefore = before["rdb_last_save_time"].flatMap { Int64($0) } ?? 0
        if savesBefore == nil {
            // No save counter (Redis before 7.0): LASTSAVE counts seconds, so a save that ends
            // in the same second as the last one would not show. Start in a later second.
            while try serverTime(connection) <= lastSaveBefore {
                try pause(0.1, deadline: deadline, while: "waiting for the server's clock to pass its last save", endpoint: endpoint, context: context)
            }
        }
        let reply = try connection.command(["BGSAVE", "SCHEDULE"])
        // Whether a save is known to have run since the request: then the next time none runs,
        // it is over (a save that failed moves no LASTSAVE).
        var sawSave: Bool
        if let message = reply.errorMessage {
            guard message.contains("already in progress") else { throw connection.refused("BGSAVE SCHEDULE", message) }
            context.logger.info("a BGSAVE is already running on the server: waiting for it", metadata: ["redis.server": "\(endpoint)"])
            sawSave = true
        } else {
            // "Background saving started", or "…scheduled" while another child (an AOF rewrite) runs.
            context.logger.info("BGSAVE requested", metadata: ["redis.server": "\(endpoint)", "redis.reply": "\(reply.text ?? "\(reply)")"])
            sawSave = reply.text?.contains("started") == true
        }
        var interval = 0.05
        while true {
            try pause(interval, deadline: deadline, while: "waiting for BGSAVE to finish", endpoint: endpoint, context: context)
            interval = min(1, interval * 2)
            let now = RedisInfo.fields(try info(connection, "persistence"))
            guard now["rdb_bgsave_in_progress"] != "1" else {
                sawSave = true
                continue
            }
            // rdb_saves counts saves started (Redis 7.0+); LASTSAVE moves when one succeeds.
            let savesGrew = savesBefore.map { before in now["rdb_saves"].flatMap { Int($0) }.map { $0 > before } ?? false } ?? false
            let lastSaveMoved = (now["rdb_last_save_time"].flatMap { Int64($0) } ?? 0) > lastSaveBefore
            guard sawSave || savesGrew || lastSaveMoved else { continue }
            guard now["rdb_last_bgsave_status"] == "ok" else {
                throw LifeboatError(.redis, "BGSAVE on Redis at \(endpoint) failed (rdb_last_bgsave_status:\(now["rdb_last_bgsave_status"] ?? "?"))",
                                    hint: "Look at the Redis server's log: most often its disk is full or it cannot write into its dir. Nothing was committed.")
            }
            context.logger.info("BGSAVE finished", metadata: [
                "redis.server": "\(endpoint)", "redis.lastsave": "\(now["rdb_last_save_time"] ?? "?")",
                "redis.bgsave_seconds": "\(now["rdb_last_bgsave_time_sec"] ?? "?")",
            ])
            return
        }
    }

    private static func serverTime(_ connection: RedisConnection) throws -> Int64 {
        let reply = try connection.call(["TIME"])
        guard case .array(let values?) = reply, let first = values.first?.text, let seconds = Int64(first) else {
            throw LifeboatError(.redis, "Redis at \(connection.endpoint) answered TIME with \(reply)")
        }
        return seconds
    }

    /// Sleeps (cancellably) unless the deadline has passed, which fails the backup.
    private static func pause(_ seconds: Double, deadline: ContinuousClock.Instant, while what: String, endpoint: RedisEndpoint,
                              context: RunContext) throws {
        try context.cancellation.checkCancelled()
        guard ContinuousClock.now < deadline else {
            throw LifeboatError(.redis, "Redis at \(endpoint) did not finish in the time allowed (save_timeout) while Lifeboat was \(what)",
                                hint: "Raise 'source.redis.save_timeout', or look at why the server saves slowly (INFO persistence, its log). Nothing was committed.")
        }
        context.sleep(seconds)
        try context.cancellation.checkCancelled()
    }

    /// Opens the file the server just saved, with the server's LASTSAVE. Nil (auto mode) when
    /// it cannot be read here or is older than that save: this machine is not the server's.
    private func openSavedFile(_ file: ServerFile, connection: RedisConnection, fallback: Bool,
                               context: RunContext) throws -> (LocalFile, Int64)? {
        let endpoint = connection.endpoint
        let lastSave = RedisInfo.fields(try Self.info(connection, "persistence"))["rdb_last_save_time"].flatMap { Int64($0) } ?? 0
        let problem: String
        do {
            let local = try LocalFile.openForReading(file.path)
            let modified = try local.sizeAndModificationTime().modified
            // The server renames the new file into place as its save ends, and LASTSAVE is set
            // when it notices, a moment later: a file older than that is another server's.
            if modified + 2 >= lastSave { return (local, lastSave) }
            local.close()
            problem = "'\(file.path)' was last written at \(modified) (seconds since 1970), before the save Redis at \(endpoint) just finished (LASTSAVE \(lastSave)): it is another server's file"
        } catch let error as LifeboatError where error.code == .notFound || error.code == .io {
            problem = "the RDB file Redis at \(endpoint) saved cannot be read here: \(error.message)"
        }
        guard fallback else {
            throw LifeboatError(.source, problem,
                                hint: "'mode: local' reads the server's file on its machine: run Lifeboat there, as a user that can read the file (the redis user or its group), or set 'mode: replication'.")
        }
        context.logger.info("\(problem): taking the RDB over the replication stream instead", metadata: ["redis.server": "\(endpoint)"])
        return nil
    }
}

/// The check of an RDB as the artifact's stream thread reads it, read by the caller's thread
/// once the stream has ended.
final class SharedRDBCheck: Sendable {
    let state: Mutex<RDBCheck>

    init(_ check: RDBCheck) {
        state = Mutex(check)
    }
}
