import LifeboatCore

/// Takes a server's RDB over the replication protocol, as `redis-cli --rdb` does:
/// `REPLCONF capa eof` (so that a diskless master may stream it), `REPLCONF rdb-only 1`
/// (Redis 7 and newer: the master sends the RDB only, then closes; older servers refuse the
/// option and would go on with the replication stream, which this reader never reads),
/// `SYNC`, then the `$<length>` or `$EOF:<mark>` payload (`RDBTransferHeader`).
///
/// The connection is used up: close it once the payload has been read.
public final class RDBReplicationStream: @unchecked Sendable {
    public let connection: RedisConnection
    public let header: RDBTransferHeader
    /// Whether the server accepted `REPLCONF rdb-only 1`.
    public let rdbOnly: Bool
    private var framer: RDBPayloadFramer
    /// Payload bytes framed and not handed out yet: `pending[pendingStart...]`.
    private var pending: [UInt8] = []
    private var pendingStart = 0
    private var scratch = [UInt8](repeating: 0, count: 256 << 10)

    private init(connection: RedisConnection, header: RDBTransferHeader, rdbOnly: Bool) {
        self.connection = connection
        self.header = header
        self.rdbOnly = rdbOnly
        framer = RDBPayloadFramer(header: header)
    }

    /// Asks for the RDB and waits for the master's transfer header, at most until `deadline`
    /// (the master first saves the file, or waits `repl-diskless-sync-delay`). `note` is told
    /// what happened that a log should show (an old server without `rdb-only`).
    public static func start(on connection: RedisConnection, deadline: ContinuousClock.Instant,
                             note: (String) -> Void) throws -> RDBReplicationStream {
        _ = try connection.call(["REPLCONF", "capa", "eof"])
        let rdbOnly: Bool
        let reply = try connection.command(["REPLCONF", "rdb-only", "1"])
        if let message = reply.errorMessage {
            guard message.contains("rdb-only") else { throw connection.refused("REPLCONF rdb-only 1", message) }
            note("the server does not know REPLCONF rdb-only (Redis before 7.0): \(message)")
            rdbOnly = false
        } else {
            rdbOnly = true
        }
        try connection.send(["SYNC"])
        while true {
            let line = try connection.readLine(waitingFor: "the RDB after SYNC", deadline: deadline)
            let parsed: RDBTransferHeader.Line
            do {
                parsed = try RDBTransferHeader.parse(line: line)
            } catch {
                throw LifeboatError(.redis, "Redis at \(connection.endpoint): \(error)",
                                    hint: "Check that 'source.redis.host' and 'port' name a Redis server.")
            }
            switch parsed {
            case .keepalive: continue
            case .error(let message): throw connection.refused("SYNC", message)
            case .header(let header): return RDBReplicationStream(connection: connection, header: header, rdbOnly: rdbOnly)
            }
        }
    }

    /// RDB bytes handed out so far.
    public var delivered: Int64 { framer.delivered - Int64(pending.count - pendingStart) }

    /// Fills `buffer` with the next bytes of the RDB; 0 once it is complete. Throws when the
    /// connection ends before the payload does.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while pendingStart == pending.count {
            if framer.isComplete { return 0 }
            pending.removeAll(keepingCapacity: true)
            pendingStart = 0
            let limit = framer.readLimit(scratch.count)
            let count = try scratch.withUnsafeMutableBytes {
                try connection.readSome(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<limit]), waitingFor: "the RDB")
            }
            guard count > 0 else {
                let expected: String
                switch header {
                case .length(let length): expected = " of \(length) announced"
                case .eofMark: expected = ", before the diskless transfer's end mark"
                }
                throw LifeboatError(.redis, "Redis at \(connection.endpoint) closed the connection after \(framer.delivered) bytes of the RDB\(expected)",
                                    hint: "Look at the server's log (client-output-buffer-limit replica, repl-timeout, a failed save), then run the backup again.")
            }
            scratch.withUnsafeBytes { framer.feed(UnsafeRawBufferPointer(rebasing: $0[0..<count]), into: &pending) }
        }
        let count = min(buffer.count, pending.count - pendingStart)
        pending.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[pendingStart..<(pendingStart + count)])) }
        pendingStart += count
        return count
    }
}
