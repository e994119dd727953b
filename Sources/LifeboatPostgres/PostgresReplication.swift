import CLibPQ
import Foundation
import Glibc
import LifeboatCore

/// What `IDENTIFY_SYSTEM` answers: which cluster, on which timeline, and how far its WAL goes.
public struct ReplicationSystem: Sendable, Equatable {
    /// The cluster's system identifier, in decimal.
    public var systemIdentifier: String
    public var timeline: UInt32
    /// The current WAL flush position.
    public var position: LSN
}

/// The options of one `BASE_BACKUP` (PostgreSQL 15's syntax). The backup never waits for WAL
/// archiving (`WAIT false`: the caller waits for its repository instead), always asks for a
/// manifest with SHA-256 checksums and for progress, and sends no `tablespace_map` (the
/// `pg_tblspc` links come in the main archive).
public struct BaseBackupOptions: Sendable {
    public var label: String
    /// `CHECKPOINT 'fast'` (an immediate checkpoint) or `'spread'`.
    public var fastCheckpoint: Bool

    public init(label: String, fastCheckpoint: Bool) {
        self.label = label
        self.fastCheckpoint = fastCheckpoint
    }

    /// The command, with the label quoted as a string literal.
    var command: String {
        let label = "'" + self.label.replacingAll("'", with: "''") + "'"
        return "BASE_BACKUP (LABEL \(label), PROGRESS, CHECKPOINT '\(fastCheckpoint ? "fast" : "spread")', "
            + "WAIT false, MANIFEST 'yes', MANIFEST_CHECKSUMS 'SHA256')"
    }
}

/// A tablespace as `BASE_BACKUP` lists it; the main data directory has no OID and no location.
public struct BaseBackupTablespace: Sendable, Equatable {
    public var oid: UInt32?
    public var location: String?
    /// The server's estimate, in bytes (PostgreSQL sends kilobytes), when it made one.
    public var estimatedSize: Int64?
}

/// Where a base backup started: the checkpoint's redo point, its timeline, and the tablespaces.
public struct BaseBackupStart: Sendable {
    public var position: LSN
    public var timeline: UInt32
    public var tablespaces: [BaseBackupTablespace]
}

/// The payload of one CopyData message, as libpq allocated it (freed when this goes away).
/// Handed from the reader thread to the consumer and touched by one of them at a time.
public final class CopyData: @unchecked Sendable {
    private let pointer: UnsafeMutablePointer<CChar>
    private let count: Int

    init(pointer: UnsafeMutablePointer<CChar>, count: Int) {
        self.pointer = pointer
        self.count = count
    }

    deinit { PQfreemem(pointer) }

    /// The message's type byte.
    var type: UInt8 { UInt8(bitPattern: pointer[0]) }

    /// The bytes after the message's type byte.
    public var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: UnsafeRawPointer(pointer) + 1, count: count - 1)
    }
}

/// One message of a base backup's COPY stream.
public enum BaseBackupMessage: Sendable {
    /// A new archive (a tar) begins: its name (`base.tar`, `16385.tar`) and the tablespace's
    /// location ("" for the main data directory).
    case archive(name: String, location: String)
    /// Bytes of the current archive, or of the manifest once `.manifest` was seen.
    case data(CopyData)
    /// Bytes the server has sent so far.
    case progress(Int64)
    /// The `backup_manifest` follows, as `.data` messages up to the end of the stream.
    case manifest
}

/// A replication connection (`replication=true`) to a PostgreSQL 15 or newer server, for
/// `IDENTIFY_SYSTEM` and `BASE_BACKUP`.
///
/// Calls block the calling thread. `startBaseBackup` hands the connection to a reader thread
/// of its own until the backup stream is closed.
public final class PostgresReplicationConnection {
    public let parameters: PostgresConnectionParameters
    private let handle: OpaquePointer
    /// `server_version_num` as the server reported it when connecting.
    public let serverVersion: Int
    private var stream: BaseBackupStream?

    /// The oldest server whose `BASE_BACKUP` syntax and COPY stream this speaks.
    public static let minimumServerVersion = 150000

    private init(parameters: PostgresConnectionParameters, handle: OpaquePointer, serverVersion: Int) {
        self.parameters = parameters
        self.handle = handle
        self.serverVersion = serverVersion
    }

    deinit {
        stream?.close()
        PQfinish(handle)
    }

    /// Connects as a physical replication client. The password goes in the keyword arrays,
    /// never in a message.
    ///
    /// - Throws: `LifeboatError(.postgres)` saying what to change when the role lacks the
    ///   `REPLICATION` attribute, `pg_hba.conf` has no `replication` entry for it, the server
    ///   has no free WAL sender, or it is older than PostgreSQL 15.
    public static func connect(_ parameters: PostgresConnectionParameters) throws -> PostgresReplicationConnection {
        let handle = try PostgresConnection.openHandle(
            parameters, extra: [PostgresConnectionParameters.Setting(keyword: "replication", value: "true")],
            failure: { replicationConnectionError($0, parameters) })
        let version = Int(PQserverVersion(handle))
        guard version >= minimumServerVersion else {
            PQfinish(handle)
            throw LifeboatError(
                .postgres, "PostgreSQL at \(parameters.endpoint) is version \(version / 10000) (server_version_num \(version)); physical base backups need PostgreSQL 15 or newer",
                hint: "Upgrade the server, or back it up with 'mode: logical' (pg_dump), which works with older versions.")
        }
        return PostgresReplicationConnection(parameters: parameters, handle: handle, serverVersion: version)
    }

    /// Turns libpq's failure to open a replication connection into an error a person can act on.
    static func replicationConnectionError(_ libpqMessage: String, _ parameters: PostgresConnectionParameters) -> LifeboatError {
        let lower = libpqMessage.lowercased()
        let user = parameters.user
        let endpoint = parameters.endpoint
        let reason = PostgresConnection.redacted(PostgresConnection.firstReason(libpqMessage), parameters)
        if lower.contains("must be superuser or replication role") || lower.contains("permission denied to start wal sender")
            || lower.contains("must have the replication attribute") {
            return LifeboatError(
                .postgres, "PostgreSQL role '\(user)' at \(endpoint) may not open a replication connection: \(reason)",
                hint: "Base backups stream over the replication protocol: give the role the REPLICATION attribute (ALTER ROLE \(quotedIdentifier(user)) REPLICATION;), or use a role that has it.")
        }
        if lower.contains("no pg_hba.conf entry for replication connection") {
            return LifeboatError(
                .postgres, "PostgreSQL at \(endpoint) accepts no replication connection from here for user '\(user)': \(reason)",
                hint: "Add a line such as 'host replication \(user) <this machine's address>/32 scram-sha-256' to the server's pg_hba.conf (replication connections match only the 'replication' keyword, not 'all'), then reload the server (SELECT pg_reload_conf()).")
        }
        if lower.contains("exceeds max_wal_senders") || lower.contains("max_wal_senders") {
            return LifeboatError(
                .postgres, "PostgreSQL at \(endpoint) has no free WAL sender for a base backup: \(reason)",
                hint: "Every replica, pg_receivewal and base backup holds a WAL sender: raise max_wal_senders (a restart is needed), or run the backup when fewer replication clients are connected.")
        }
        if lower.contains("wal_level") {
            return LifeboatError(
                .postgres, "PostgreSQL at \(endpoint) does not allow replication connections: \(reason)",
                hint: "Set wal_level = replica (or logical) and max_wal_senders above 0, then restart the server.")
        }
        return PostgresConnection.connectionError(libpqMessage, parameters)
    }

    /// A SQL identifier in double quotes.
    private static func quotedIdentifier(_ name: String) -> String {
        "\"" + name.replacingAll("\"", with: "\"\"") + "\""
    }

    /// `IDENTIFY_SYSTEM`.
    public func identifySystem() throws -> ReplicationSystem {
        try checkIdle()
        guard let result = PQexec(handle, "IDENTIFY_SYSTEM") else {
            throw LifeboatError(.postgres, "IDENTIFY_SYSTEM failed on \(parameters.safeDescription): \(PostgresConnection.errorMessage(handle))")
        }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_TUPLES_OK else {
            let error = PostgresConnection.serverError(result, handle)
            throw LifeboatError(.postgres, "IDENTIFY_SYSTEM failed on \(parameters.safeDescription): \(error)", underlying: error)
        }
        guard PQntuples(result) == 1, PQnfields(result) >= 3,
              let identifier = Self.text(result, 0, 0), let timelineText = Self.text(result, 0, 1),
              let timeline = UInt32(timelineText), let positionText = Self.text(result, 0, 2), let position = LSN(positionText)
        else {
            throw LifeboatError(.postgres, "unexpected answer to IDENTIFY_SYSTEM from \(parameters.safeDescription)")
        }
        return ReplicationSystem(systemIdentifier: identifier, timeline: timeline, position: position)
    }

    /// Sends `BASE_BACKUP` and starts the reader thread that receives it. The caller reads
    /// the stream's messages, then its end, and closes it; the connection can run nothing
    /// else meanwhile.
    public func startBaseBackup(_ options: BaseBackupOptions) throws -> BaseBackupStream {
        try checkIdle()
        guard let cancel = PQgetCancel(handle) else {
            throw LifeboatError(.postgres, "could not prepare to cancel a base backup on \(parameters.safeDescription) (out of memory)")
        }
        guard PQsendQuery(handle, options.command) == 1 else {
            PQfreeCancel(cancel)
            throw LifeboatError(.postgres, "could not send BASE_BACKUP to \(parameters.safeDescription): \(PostgresConnection.errorMessage(handle))")
        }
        let stream = BaseBackupStream(handle: handle, cancel: cancel, parameters: parameters)
        self.stream = stream
        stream.startReader()
        return stream
    }

    private func checkIdle() throws {
        if let stream, !stream.isClosed {
            throw LifeboatError(.internalError, "the replication connection to \(parameters.safeDescription) is busy with a base backup",
                                hint: "Report this as a bug in Lifeboat.")
        }
    }

    static func text(_ result: OpaquePointer, _ row: Int32, _ column: Int32) -> String? {
        guard PQgetisnull(result, row, column) == 0, let value = PQgetvalue(result, row, column) else { return nil }
        return String(cString: value)
    }
}

/// A base backup in progress: a reader thread receives the server's results and COPY stream
/// and queues them (at most `queueBytes` of data), the caller takes them with `next()`.
///
/// `@unchecked Sendable`: shared with the reader thread. The `PGconn` is used only by the
/// reader thread from `startReader()` until it exits (`close()` waits for that); `PQcancel`
/// works from any thread by design. Every other mutable property is guarded by `condition`.
public final class BaseBackupStream: @unchecked Sendable {
    private enum Event {
        case started(BaseBackupStart)
        case message(BaseBackupMessage, bytes: Int)
        case finished(position: LSN, timeline: UInt32)
        case failed(any Error)
    }

    private let handle: OpaquePointer
    private let cancelHandle: OpaquePointer
    private let parameters: PostgresConnectionParameters
    private let condition = NSCondition()
    private var events: [Event] = []
    private var queuedBytes = 0
    private var stopped = false
    private var readerRunning = false
    private var closed = false
    private var returned: BaseBackupMessage?
    private var ended: (position: LSN, timeline: UInt32)?

    /// The most data queued ahead of the consumer (CopyData messages are ~32 KiB each).
    static let queueBytes = 8 << 20

    init(handle: OpaquePointer, cancel: OpaquePointer, parameters: PostgresConnectionParameters) {
        self.handle = handle
        self.cancelHandle = cancel
        self.parameters = parameters
    }

    deinit {
        close()
        PQfreeCancel(cancelHandle)
    }

    var isClosed: Bool {
        condition.lock()
        defer { condition.unlock() }
        return closed
    }

    func startReader() {
        condition.lock()
        readerRunning = true
        condition.unlock()
        let thread = Thread { [self] in
            let outcome: Event
            do {
                outcome = try receive()
            } catch is Stopped {
                outcome = .failed(LifeboatError(.postgres, "the base backup from \(parameters.endpoint) was stopped"))
            } catch {
                outcome = .failed(error)
            }
            condition.lock()
            events.append(outcome)
            readerRunning = false
            condition.broadcast()
            condition.unlock()
        }
        thread.name = "lifeboat-base-backup-reader"
        thread.start()
    }

    // MARK: Consumer side

    /// Waits for the start position and the list of tablespaces.
    public func start() throws -> BaseBackupStart {
        switch try take() {
        case .started(let start): return start
        case .finished, .message:
            throw LifeboatError(.postgres, "PostgreSQL at \(parameters.endpoint) answered BASE_BACKUP out of order")
        case .failed(let error): throw error
        }
    }

    /// The next message of the COPY stream, or nil once it ended (then `end()` has the stop
    /// position). Throws the reader's error (a server error, a lost connection).
    public func next() throws -> BaseBackupMessage? {
        condition.lock()
        if let message = returned {
            returned = nil
            condition.unlock()
            return message
        }
        if ended != nil {
            condition.unlock()
            return nil
        }
        condition.unlock()
        switch try take() {
        case .message(let message, _): return message
        case .finished(let position, let timeline):
            condition.lock()
            ended = (position, timeline)
            condition.unlock()
            return nil
        case .started:
            throw LifeboatError(.postgres, "PostgreSQL at \(parameters.endpoint) started BASE_BACKUP twice")
        case .failed(let error): throw error
        }
    }

    /// Gives a message back: the next `next()` returns it again.
    public func putBack(_ message: BaseBackupMessage) {
        condition.lock()
        returned = message
        condition.unlock()
    }

    /// Where the backup ended (the position replay must reach for it to be consistent) and on
    /// which timeline; after `next()` returned nil.
    public func end() throws -> (position: LSN, timeline: UInt32) {
        condition.lock()
        defer { condition.unlock() }
        guard let ended else {
            throw LifeboatError(.internalError, "the base backup's end was asked for before its stream ended",
                                hint: "Report this as a bug in Lifeboat.")
        }
        return ended
    }

    /// Asks the server to cancel the backup (`PQcancel`) and ends the reader's waits. Safe to
    /// call from any thread, at any time (a cancellation handler).
    public func cancel() {
        condition.lock()
        let needed = readerRunning && !stopped
        stopped = true
        condition.broadcast()
        condition.unlock()
        guard needed else { return }
        var errorBuffer = [CChar](repeating: 0, count: 256)
        // Best effort: when the request cannot be sent, closing the connection still ends the
        // WAL sender (its next write fails).
        _ = PQcancel(cancelHandle, &errorBuffer, Int32(errorBuffer.count))
    }

    /// Stops the reader (cancelling the backup on the server when it still runs) and waits
    /// until it no longer uses the connection. The reader never blocks for more than 100 ms
    /// without looking at the stop flag.
    public func close() {
        condition.lock()
        let running = readerRunning && ended == nil
        condition.unlock()
        if running { cancel() }
        condition.lock()
        stopped = true
        condition.broadcast()
        while readerRunning { condition.wait() }
        events.removeAll()
        queuedBytes = 0
        returned = nil
        closed = true
        condition.unlock()
    }

    private func take() throws -> Event {
        condition.lock()
        defer { condition.unlock() }
        while events.isEmpty {
            // The reader's last event (its end or its error) was taken already.
            if !readerRunning {
                throw LifeboatError(.postgres, "the base backup from \(parameters.endpoint) was stopped")
            }
            condition.wait()
        }
        let event = events.removeFirst()
        if case .message(_, let bytes) = event {
            queuedBytes -= bytes
            condition.broadcast()
        }
        return event
    }

    // MARK: Reader side

    private struct Stopped: Error {}

    private var isStopped: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopped
    }

    /// Queues an event; waits while the queue holds `queueBytes` or more.
    private func post(_ event: Event, bytes: Int = 0) throws {
        condition.lock()
        defer { condition.unlock() }
        while queuedBytes >= Self.queueBytes && !stopped { condition.wait() }
        if stopped { throw Stopped() }
        events.append(event)
        queuedBytes += bytes
        condition.broadcast()
    }

    /// The whole protocol, on the reader thread: start position, tablespaces, COPY stream,
    /// stop position. Returns the last event.
    private func receive() throws -> Event {
        let start = try startResult()
        try post(.started(start))
        let copy = try nextResult(what: "starting the COPY stream")
        let status = copy.map { PQresultStatus($0) }
        defer { if let copy { PQclear(copy) } }
        guard status == PGRES_COPY_OUT else {
            throw failure(copy, what: "starting the COPY stream")
        }
        try receiveCopy()
        var stop: (LSN, UInt32)?
        while let result = try nextResult(what: "ending the backup") {
            defer { PQclear(result) }
            switch PQresultStatus(result) {
            case PGRES_COMMAND_OK:
                continue
            case PGRES_TUPLES_OK where PQnfields(result) == 2 && PQntuples(result) == 1:
                stop = try position(result, what: "the backup's end position")
            default:
                throw failure(result, what: "ending the backup")
            }
        }
        guard let stop else {
            throw LifeboatError(.postgres, "PostgreSQL at \(parameters.endpoint) ended the base backup without its end position",
                                hint: "Check the server log; the backup was not committed.")
        }
        return .finished(position: stop.0, timeline: stop.1)
    }

    private func startResult() throws -> BaseBackupStart {
        guard let first = try nextResult(what: "starting the backup") else { throw failure(nil, what: "starting the backup") }
        defer { PQclear(first) }
        guard PQresultStatus(first) == PGRES_TUPLES_OK else { throw failure(first, what: "starting the backup") }
        let (position, timeline) = try position(first, what: "the backup's start position")
        guard let list = try nextResult(what: "listing tablespaces") else {
            throw failure(nil, what: "listing tablespaces")
        }
        defer { PQclear(list) }
        guard PQresultStatus(list) == PGRES_TUPLES_OK, PQnfields(list) >= 3 else {
            throw failure(list, what: "listing tablespaces")
        }
        var tablespaces: [BaseBackupTablespace] = []
        for row in 0..<PQntuples(list) {
            let oid = PostgresReplicationConnection.text(list, row, 0).flatMap { UInt32($0) }
            let location = PostgresReplicationConnection.text(list, row, 1)
            let size = PostgresReplicationConnection.text(list, row, 2).flatMap { Int64($0) }.map { $0 * 1024 }
            tablespaces.append(BaseBackupTablespace(oid: oid, location: location, estimatedSize: size))
        }
        return BaseBackupStart(position: position, timeline: timeline, tablespaces: tablespaces)
    }

    private func position(_ result: OpaquePointer, what: String) throws -> (LSN, UInt32) {
        guard PQntuples(result) == 1, PQnfields(result) >= 2,
              let text = PostgresReplicationConnection.text(result, 0, 0), let lsn = LSN(text),
              let timelineText = PostgresReplicationConnection.text(result, 0, 1), let timeline = UInt32(timelineText)
        else {
            throw LifeboatError(.postgres, "PostgreSQL at \(parameters.endpoint) sent an unreadable \(what)")
        }
        return (lsn, timeline)
    }

    private func receiveCopy() throws {
        while true {
            var buffer: UnsafeMutablePointer<CChar>?
            let n = PQgetCopyData(handle, &buffer, 1)
            if n > 0, let buffer {
                let data = CopyData(pointer: buffer, count: Int(n))
                try post(.message(try message(data), bytes: Int(n)), bytes: Int(n))
            } else if n == 0 {
                try waitReadable()
                guard PQconsumeInput(handle) == 1 else { throw connectionLost("receiving the backup") }
            } else if n == -1 {
                return
            } else {
                throw connectionLost("receiving the backup")
            }
        }
    }

    private func message(_ data: CopyData) throws -> BaseBackupMessage {
        let bytes = data.bytes
        let type = data.type
        switch type {
        case UInt8(ascii: "d"):
            return .data(data)
        case UInt8(ascii: "n"):
            let fields = bytes.split(separator: 0, omittingEmptySubsequences: false)
            guard fields.count >= 2 else { throw unexpected("a new-archive message without its name and location") }
            return .archive(name: String(decoding: fields[0], as: UTF8.self), location: String(decoding: fields[1], as: UTF8.self))
        case UInt8(ascii: "p"):
            guard bytes.count >= 8 else { throw unexpected("a progress message of \(bytes.count) bytes") }
            let done = bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            return .progress(Int64(bitPattern: done))
        case UInt8(ascii: "m"):
            return .manifest
        default:
            throw unexpected("a message of unknown type '\(Character(Unicode.Scalar(type)))'")
        }
    }

    /// The next result, without blocking for more than 100 ms at a time; nil at the end.
    private func nextResult(what: String) throws -> OpaquePointer? {
        while PQisBusy(handle) != 0 {
            try waitReadable()
            guard PQconsumeInput(handle) == 1 else { throw connectionLost(what) }
        }
        return PQgetResult(handle)
    }

    /// Waits until the socket has data, looking at the stop flag every 100 ms.
    private func waitReadable() throws {
        let socket = PQsocket(handle)
        guard socket >= 0 else { throw connectionLost("waiting for the server") }
        while true {
            if isStopped { throw Stopped() }
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, 100)
            if ready > 0 { return }
            if ready < 0 && errno != EINTR { throw connectionLost("waiting for the server") }
        }
    }

    /// The error of a result that is not what the protocol says comes next: the server's own
    /// error when it sent one.
    private func failure(_ result: OpaquePointer?, what: String) -> LifeboatError {
        if isStopped {
            return LifeboatError(.postgres, "the base backup from \(parameters.endpoint) was stopped")
        }
        guard let result, PQresultStatus(result) == PGRES_FATAL_ERROR || PQresultStatus(result) == PGRES_NONFATAL_ERROR else {
            if result == nil, PQstatus(handle) == CONNECTION_BAD { return connectionLost(what) }
            let status = result.map { String(cString: PQresStatus(PQresultStatus($0))) } ?? "no result"
            return unexpected("\(status) while \(what)")
        }
        let error = PostgresConnection.serverError(result, handle)
        return LifeboatError(.postgres, "base backup from \(parameters.safeDescription) failed while \(what): \(error)",
                             hint: Self.hint(for: error), underlying: error)
    }

    private static func hint(for error: PostgresServerError) -> String {
        let lower = error.message.lowercased()
        if lower.contains("wal_level") || lower.contains("archive") {
            return "Check wal_level (replica or logical) and the server's archiving settings."
        }
        if lower.contains("another") && lower.contains("backup") {
            return "Wait for the other base backup to finish, then run this one again."
        }
        return "Check the server log; the backup was not committed."
    }

    private func connectionLost(_ what: String) -> LifeboatError {
        if isStopped { return LifeboatError(.postgres, "the base backup from \(parameters.endpoint) was stopped") }
        return LifeboatError(.postgres, "the replication connection to \(parameters.endpoint) failed while \(what): \(PostgresConnection.redacted(PostgresConnection.errorMessage(handle), parameters))",
                             hint: "Check that the server is still running (and its log); the backup was not committed.")
    }

    private func unexpected(_ what: String) -> LifeboatError {
        LifeboatError(.postgres, "PostgreSQL at \(parameters.endpoint) sent \(what) during BASE_BACKUP",
                      hint: "Report this as a bug in Lifeboat, with the server's version.")
    }
}
