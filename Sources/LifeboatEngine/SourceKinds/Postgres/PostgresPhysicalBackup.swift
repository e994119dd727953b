import Foundation
import LifeboatArchive
import LifeboatCore
import LifeboatPostgres

/// `mode: physical`: a base backup over the streaming replication protocol (`BASE_BACKUP`),
/// each of the server's tar archives re-written member by member into artifacts of its own
/// (parts of about `part_size` bytes; no copy on local disk), then the server's
/// `backup_manifest`; committed only once every
/// WAL segment the backup needs is in the policy's WAL archive.
///
/// Threads: the stream's reader thread receives CopyData messages into a bounded queue
/// (`BaseBackupStream.queueBytes`) while this thread parses the tar, hashes and compresses;
/// the server reads and sends on its own. Memory: the queue, libarchive's and zstd's buffers,
/// and the `backup_manifest`, which is kept in memory (its length is unknown until it ends,
/// and a tar header needs it; about 200 bytes per file of the cluster).
struct PostgresPhysicalBackup {
    let configuration: PostgresConfiguration

    /// The one entry of the `.postgresBackupManifest` artifact.
    static let manifestEntry = "backup_manifest"
    /// A cluster would need millions of files for its manifest to come near this.
    static let manifestLimit = 512 << 20
    static let progressLine = "base backup"

    func run(into sink: ArtifactSink, context: RunContext) throws -> SourceRecord {
        let logger = context.logger
        let parameters = try PostgresConnectionParameters(conninfo: configuration.conninfo)
        Secrets.register(parameters.password)
        let policy = sink.policy.name
        let store = sink.repository.store
        logger.debug("connecting to PostgreSQL", metadata: ["postgres.server": "\(parameters.safeDescription)"])

        // A normal connection: the server's identity, the segment size, the clock.
        let (info, segmentSize, databases, startTime) = try {
            let connection = try PostgresConnection.connect(parameters)
            let info = try connection.serverInfo()
            guard info.versionNumber >= PostgresReplicationConnection.minimumServerVersion else {
                throw LifeboatError(
                    .postgres, "PostgreSQL at \(parameters.endpoint) is version \(info.version); physical base backups need PostgreSQL 15 or newer",
                    hint: "Upgrade the server, or back it up with 'mode: logical' (pg_dump), which works with older versions.")
            }
            return (info, try Self.segmentSize(connection), try connection.listDatabases(), try Self.serverClock(connection))
        }()
        try checkArchiveIdentity(WALArchive(repository: sink.repository, policy: policy, context: context),
                                 systemIdentifier: info.systemIdentifier)

        let replication = try PostgresReplicationConnection.connect(parameters)
        let system = try replication.identifySystem()
        guard system.systemIdentifier == info.systemIdentifier else {
            throw LifeboatError(.postgres, "the replication connection to \(parameters.endpoint) reached cluster \(system.systemIdentifier), the normal one cluster \(info.systemIdentifier)",
                                hint: "The conninfo leads to different servers (a pooler or a load balancer?): point it at one server.")
        }
        logger.info("starting a base backup", metadata: [
            "postgres.server": "\(parameters.safeDescription)", "postgres.version": "\(info.version)",
            "postgres.system_identifier": "\(info.systemIdentifier)", "postgres.timeline": "\(system.timeline)",
            "postgres.checkpoint": "\(configuration.checkpoint.rawValue)",
        ])
        let options = BaseBackupOptions(label: "lifeboat \(policy) \(sink.backupID)", fastCheckpoint: configuration.checkpoint == .fast)
        let stream = try replication.startBaseBackup(options)
        let received: Received
        do {
            defer { stream.close() }
            received = try context.cancellation.whileRunning(onCancel: { stream.cancel() }) {
                do {
                    return try receive(stream, into: sink, context: context)
                } catch {
                    // A stream stopped by the cancellation reports the cancellation.
                    try context.cancellation.checkCancelled()
                    throw error
                }
            }
        }
        // After the end position arrived: every point from here on is recoverable.
        let stopTime = try Self.serverClock(try PostgresConnection.connect(parameters))
        guard received.stopTimeline == received.start.timeline else {
            throw LifeboatError(.postgres, "the base backup started on timeline \(received.start.timeline) and ended on timeline \(received.stopTimeline) (the server was promoted during the backup)",
                                hint: "Run the backup again.")
        }
        let physical = PhysicalBackupRecord(
            timeline: received.start.timeline, startLSN: received.start.position, stopLSN: received.stopPosition,
            startTime: startTime, stopTime: stopTime, segmentSize: segmentSize,
            checkpoint: configuration.checkpoint.rawValue, tablespaces: received.tablespaces)
        logger.info("base backup received", metadata: [
            "postgres.start_lsn": "\(physical.startLSN)", "postgres.stop_lsn": "\(physical.stopLSN)",
            "postgres.timeline": "\(physical.timeline)", "postgres.tablespaces": "\(physical.tablespaces.count)",
        ])
        try waitForWAL(physical, store: store, policy: policy, parameters: parameters, context: context)
        return try SourceRecord(kind: "postgres", details: PostgresRecord(
            mode: "physical", host: parameters.host, port: String(parameters.port), user: parameters.user,
            serverVersion: info.version, serverVersionNumber: info.versionNumber, systemIdentifier: info.systemIdentifier,
            databases: databases, dumpVersion: nil, physical: physical))
    }

    // MARK: The stream

    struct Received {
        var start: BaseBackupStart
        var stopPosition: LSN
        var stopTimeline: UInt32
        var tablespaces: [TablespaceRecord]
    }

    /// Reads the whole COPY stream: the artifacts of each archive, then the manifest's.
    func receive(_ stream: BaseBackupStream, into sink: ArtifactSink, context: RunContext) throws -> Received {
        let start = try stream.start()
        let total = start.tablespaces.compactMap(\.estimatedSize).reduce(0, +)
        let progress: (Int64) -> Void = { done in
            context.progress.update(Self.progressLine, done: done, total: total > 0 ? max(total, done) : nil)
        }
        defer { context.progress.finish(Self.progressLine) }
        context.logger.debug("base backup started", metadata: [
            "postgres.start_lsn": "\(start.position)", "postgres.estimated_bytes": "\(total)",
        ])
        var tablespaces: [TablespaceRecord] = []
        var manifest: [UInt8]?
        while let message = try stream.next() {
            try context.cancellation.checkCancelled()
            switch message {
            case .archive(let name, let location):
                let isBase = location.isEmpty
                let source = ServerArchive(stream: stream, progress: progress)
                let parts = try copy(archive: name, from: source, role: isBase ? .postgresBase : .postgresTablespace, into: sink)
                if !isBase {
                    guard let oid = start.tablespaces.first(where: { $0.location == location })?.oid else {
                        throw LifeboatError(.postgres, "the server sent archive '\(name)' for tablespace location '\(location)', which it had not listed",
                                            hint: "Run the backup again; report this as a bug if it persists.")
                    }
                    tablespaces.append(TablespaceRecord(oid: oid, location: location, artifacts: parts.map(\.path)))
                }
            case .progress(let done):
                progress(done)
            case .manifest:
                manifest = []
            case .data(let data):
                guard manifest != nil else {
                    throw LifeboatError(.postgres, "the server sent backup data outside of any archive",
                                        hint: "Run the backup again; report this as a bug if it persists.")
                }
                guard manifest!.count + data.bytes.count <= Self.manifestLimit else {
                    throw LifeboatError(.source, "the server's backup_manifest is larger than \(Self.manifestLimit >> 20) MiB",
                                        hint: "Report this to the Lifeboat developers with the number of files of the cluster.")
                }
                manifest!.append(contentsOf: data.bytes)
            }
        }
        let end = try stream.end()
        guard let manifest else {
            throw LifeboatError(.postgres, "the server ended the base backup without its backup_manifest",
                                hint: "Check that manifests are not disabled on the server; run the backup again.")
        }
        let now = Int64(context.clock().timeIntervalSince1970)
        try sink.artifact(role: .postgresBackupManifest) { writer in
            var offset = 0
            try writer.addFile(path: EntryPath(Self.manifestEntry), size: Int64(manifest.count), mode: 0o600, modificationTime: now) { buffer in
                let n = min(buffer.count, manifest.count - offset)
                manifest.withUnsafeBytes { bytes in
                    buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n]))
                }
                offset += n
                return n
            }
        }
        return Received(start: start, stopPosition: end.position, stopTimeline: end.timeline, tablespaces: tablespaces)
    }

    /// Re-adds every member of one of the server's tar archives, with its type, mode, owner
    /// and modification time, to artifacts of `role`: a new artifact starts once the files of
    /// the current one reach `partSize` bytes, so that a restore can extract several at once.
    /// Files are hashed on the way. Returns the artifacts, in order (at least one).
    func copy(archive name: String, from source: ServerArchive, role: ArtifactRole,
              into sink: ArtifactSink) throws -> [ArtifactRecord] {
        let reader = try ArtifactReader(blocks: source, name: "\(name) (from the server)")
        var next = try reader.nextEntry()
        var parts: [ArtifactRecord] = []
        repeat {
            parts.append(try sink.artifact(role: role) { writer in
                var bytes: Int64 = 0
                while let header = next, bytes < configuration.partSize {
                    try add(header, from: reader, archive: name, into: writer)
                    bytes += header.size
                    next = try reader.nextEntry()
                }
            })
        } while next != nil
        _ = try reader.drain()
        return parts
    }

    /// Adds the current member of `reader` (whose header is `header`) to `writer`.
    private func add(_ header: ArchiveEntryHeader, from reader: ArtifactReader, archive name: String,
                     into writer: ArtifactWriter) throws {
        switch header.kind {
        case .file where header.dataRegions == nil:
            try writer.addFile(path: header.rawPath, size: header.size, mode: header.mode,
                               modificationTime: header.modificationTime, owner: header.owner) { buffer in
                try reader.read(into: buffer)
            }
        case .directory:
            try writer.addDirectory(path: header.rawPath, mode: header.mode, modificationTime: header.modificationTime,
                                    owner: header.owner)
        case .symlink:
            // PostgreSQL names a tablespace's link `pg_tblspc/<oid>/`; stored without the slash.
            var path = header.rawPath.bytes
            while path.count > 1, path.last == UInt8(ascii: "/") { path.removeLast() }
            try writer.addSymlink(path: EntryPath(bytes: path), target: header.rawLinkTarget ?? EntryPath(bytes: []),
                                  modificationTime: header.modificationTime, owner: header.owner)
        default:
            throw LifeboatError(.postgres, "the server's archive '\(name)' holds '\(header.path)', a \(header.dataRegions != nil ? "sparse file" : header.kind.rawValue), which a base backup never holds",
                                hint: "Report this as a bug in Lifeboat, with the server's version.")
        }
    }

    // MARK: WAL

    /// Fails at once when the policy's WAL archive belongs to another cluster.
    func checkArchiveIdentity(_ archive: WALArchive, systemIdentifier: String) throws {
        guard let record = try archive.readRecord(), record.systemIdentifier != systemIdentifier else { return }
        throw LifeboatError(
            .source, "policy '\(archive.policy)' archives the WAL of cluster \(record.systemIdentifier), and this server is cluster \(systemIdentifier)",
            hint: "A policy holds one cluster's backups and WAL: point 'source.postgres.conninfo' back at that cluster, or back this one up under a policy of its own.")
    }

    /// Waits until every segment the backup needs is in the repository, polling with the
    /// run's (cancellable) sleep (0.1 s, doubling up to 1 s), for at most `wal.timeout`.
    func waitForWAL(_ record: PhysicalBackupRecord, store: any ObjectStore, policy: String,
                    parameters: PostgresConnectionParameters, context: RunContext) throws {
        var missing = record.requiredSegments[...]
        let deadline = context.clock().addingTimeInterval(configuration.wal.timeout)
        var announced = false
        // The last segment is archived moments after the backup ends: look again soon, then
        // less and less often.
        var interval = 0.1
        while let segment = missing.first {
            try context.cancellation.checkCancelled()
            if try store.stat(key: WALArchiveLayout.key(policy: policy, file: .segment(segment))) != nil {
                missing.removeFirst()
                continue
            }
            let remaining = deadline.timeIntervalSince(context.clock())
            guard remaining > 0 else {
                throw walTimeout(segment, missing: missing.count, store: store, policy: policy, parameters: parameters)
            }
            if !announced {
                announced = true
                context.logger.info("waiting for the backup's WAL to reach the repository", metadata: [
                    "postgres.wal_first": "\(segment)", "postgres.wal_last": "\(record.requiredSegments.last.map { "\($0)" } ?? "")",
                    "postgres.wal_timeout_s": "\(Int(configuration.wal.timeout))",
                ])
            }
            context.sleep(min(interval, remaining))
            interval = min(interval * 2, 1)
        }
        try context.cancellation.checkCancelled()
    }

    private func walTimeout(_ segment: WALSegment, missing: Int, store: any ObjectStore, policy: String,
                            parameters: PostgresConnectionParameters) -> LifeboatError {
        let key = WALArchiveLayout.key(policy: policy, file: .segment(segment))
        let more = missing > 1 ? " (and \(missing - 1) segment\(missing > 2 ? "s" : "") after it)" : ""
        let archiver: String
        do {
            archiver = try Self.archiverStatus(try PostgresConnection.connect(parameters), policy: policy)
        } catch {
            archiver = "the server's archiving status could not be read (\((error as? LifeboatError)?.message ?? "\(error)"))"
        }
        return LifeboatError(
            .source, "WAL segment \(segment)\(more), which the base backup needs, did not reach the repository within \(Self.seconds(configuration.wal.timeout)) (looked for \(store.location)/\(key))",
            hint: "A base backup is committed only with the WAL that makes it consistent, and nothing was committed. The server must archive into this policy: archive_mode = on and archive_command = 'lifeboat … wal-push \(policy) %p' in postgresql.conf. \(archiver) Raise 'source.postgres.wal.timeout' if archiving is merely slow.")
    }

    /// What the server's `archive_command` does, for a message, without printing it whole: a
    /// hand-written one may hold a credential (`AWS_SECRET_ACCESS_KEY=… aws s3 cp …`). Names
    /// the program it runs (environment assignments skipped, directory dropped) and, when it
    /// runs `wal-push`, the policy it names.
    static func describe(archiveCommand: String, policy: String) -> String {
        let words = archiveCommand.split(whereSeparator: \.isWhitespace).map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "'\"")) }
        guard let program = words.first(where: { !$0.contains("=") }) else { return "archive_command is empty" }
        let name = program.split(separator: "/").last.map(String.init) ?? program
        if let verb = words.firstIndex(of: "wal-push"), verb + 1 < words.count {
            let named = words[verb + 1]
            return named == policy ? "archive_command runs \(name) wal-push \(policy)"
                : "archive_command pushes WAL to policy '\(named)', not to '\(policy)'"
        }
        return "archive_command runs '\(name)', not 'lifeboat wal-push \(policy) %p'"
    }

    /// `archive_mode`, what `archive_command` runs, and `pg_stat_archiver`, as a sentence.
    static func archiverStatus(_ connection: PostgresConnection, policy: String) throws -> String {
        let rows = try connection.query("""
            select current_setting('archive_mode'), current_setting('archive_command'), archived_count, last_archived_wal,
                   failed_count, last_failed_wal, to_char(last_failed_time at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS"Z"')
            from pg_stat_archiver
            """)
        guard let row = rows.first, row.count == 7 else { return "pg_stat_archiver returned nothing." }
        var text = "The server has archive_mode = \(row[0] ?? "?"); \(describe(archiveCommand: row[1] ?? "", policy: policy)); pg_stat_archiver: \(row[2] ?? "0") archived"
        if let last = row[3] { text += " (last \(last))" }
        text += ", \(row[4] ?? "0") failed"
        if let failed = row[5] {
            text += " (last_failed_wal \(failed) at \(row[6] ?? "?"); the server log says why)"
        }
        return text + "."
    }

    // MARK: Server facts

    /// The server's clock (`clock_timestamp()`), to the microsecond.
    static func serverClock(_ connection: PostgresConnection) throws -> Date {
        let rows = try connection.query("select extract(epoch from clock_timestamp())::text")
        guard let text = rows.first?.first ?? nil, let seconds = Double(text) else {
            throw LifeboatError(.postgres, "unexpected answer from \(connection.parameters.safeDescription) when asking for its clock")
        }
        return Date(timeIntervalSince1970: seconds)
    }

    /// `wal_segment_size`, in bytes.
    static func segmentSize(_ connection: PostgresConnection) throws -> UInt64 {
        let rows = try connection.query("select setting, unit from pg_settings where name = 'wal_segment_size'")
        guard let row = rows.first, let text = row.first ?? nil, var size = UInt64(text) else {
            throw LifeboatError(.postgres, "unexpected answer from \(connection.parameters.safeDescription) when asking for wal_segment_size")
        }
        switch row.count > 1 ? row[1] : nil {
        case "kB": size *= 1024
        case "MB": size *= 1 << 20
        case "8kB": size *= 8192
        default: break
        }
        guard WALSegment.isValidSize(size) else {
            throw LifeboatError(.postgres, "\(connection.parameters.safeDescription) reports a WAL segment size of \(size) bytes, which is not one PostgreSQL uses")
        }
        return size
    }

    static func seconds(_ interval: TimeInterval) -> String {
        interval == interval.rounded() ? "\(Int(interval)) s" : String(format: "%.1f s", interval)
    }
}

/// One of the server's tar archives, as libarchive reads it: the `.data` messages of the
/// stream up to the next archive or the manifest (which it gives back to the stream).
/// Progress messages in between are reported on the way.
final class ServerArchive: ArchiveBlockSource {
    let stream: BaseBackupStream
    let progress: (Int64) -> Void
    /// The message whose bytes libarchive holds (valid until the next call).
    private var current: CopyData?
    private var ended = false

    init(stream: BaseBackupStream, progress: @escaping (Int64) -> Void) {
        self.stream = stream
        self.progress = progress
    }

    func nextBlock() throws -> UnsafeRawBufferPointer? {
        current = nil
        if ended { return nil }
        while let message = try stream.next() {
            switch message {
            case .data(let data):
                current = data
                return data.bytes
            case .progress(let done):
                progress(done)
            case .archive, .manifest:
                stream.putBack(message)
                ended = true
                return nil
            }
        }
        ended = true
        return nil
    }
}
