/// How a Redis master sends the RDB file to a replica after `SYNC`, as `redis-cli --rdb`
/// reads it: first a line, then the payload.
///
/// - `$<length>\r\n` and exactly that many bytes: the file the master saved to disk
///   (`repl-diskless-sync no`).
/// - `$EOF:<40 random characters>\r\n`, then the RDB as the master's child writes it, then
///   the same 40 characters: a diskless transfer (`repl-diskless-sync yes`, the default since
///   Redis 7), whose length nobody knows in advance. The replica must have said
///   `REPLCONF capa eof`. Nothing follows the mark until the replica acknowledges (and, with
///   `REPLCONF rdb-only 1`, the master closes the connection), so the payload ends exactly
///   when the last 40 bytes received are the mark.
///
/// Before the line, while the master prepares the file, it sends a bare `\n` about once a
/// second to keep the connection alive.
public enum RDBTransferHeader: Sendable, Equatable, CustomStringConvertible {
    case length(Int64)
    case eofMark([UInt8])

    public static let markLength = 40

    /// What one line from the master (without its `\n`; a trailing `\r` is dropped) means.
    public enum Line: Sendable, Equatable {
        /// An empty line: the master is still preparing the file.
        case keepalive
        case header(RDBTransferHeader)
        /// `-ERR …`, `-NOPERM …`: the master refused.
        case error(String)
    }

    public static func parse(line raw: [UInt8]) throws -> Line {
        var line = raw[...]
        if line.last == 0x0d { line = line.dropLast() }
        if line.isEmpty { return .keepalive }
        let text = String(decoding: line, as: UTF8.self)
        if line.first == UInt8(ascii: "-") { return .error(String(text.dropFirst())) }
        let eofPrefix = Array("$EOF:".utf8)
        if line.starts(with: eofPrefix) {
            let mark = Array(line.dropFirst(eofPrefix.count))
            guard mark.count == markLength else {
                throw RESP.ProtocolError("a diskless transfer's end mark of \(mark.count) bytes, not \(markLength): \(RDBCheck.printable(Array(line.prefix(80))))")
            }
            return .header(.eofMark(mark))
        }
        if line.first == UInt8(ascii: "$"), line.count > 1, line.dropFirst().allSatisfy({ (0x30...0x39).contains($0) }),
           let length = Int64(String(text.dropFirst())) {
            return .header(.length(length))
        }
        throw RESP.ProtocolError("the master answered SYNC with \(RDBCheck.printable(Array(line.prefix(80)))), not '$<length>' or '$EOF:<mark>'")
    }

    public var description: String {
        switch self {
        case .length(let length): return "\(length) bytes announced"
        case .eofMark: return "diskless, ended by a mark"
        }
    }
}

/// Cuts the RDB out of the bytes that follow the transfer header: all of them up to the
/// announced length, or all but the end mark. Pure; the connection feeds it.
public struct RDBPayloadFramer: Sendable {
    public let header: RDBTransferHeader
    public private(set) var isComplete = false
    /// Payload bytes handed out so far.
    public private(set) var delivered: Int64 = 0
    /// Diskless form: the last bytes received (up to the mark's length), not handed out yet
    /// because they may be the mark.
    private var held: [UInt8] = []

    public init(header: RDBTransferHeader) {
        self.header = header
        if case .length(0) = header { isComplete = true }
    }

    /// How many bytes to read next, at most `capacity`: never past the announced length, so
    /// the connection is left exactly at the end of the payload.
    public func readLimit(_ capacity: Int) -> Int {
        guard case .length(let length) = header else { return capacity }
        return Int(min(Int64(capacity), length - delivered))
    }

    /// Takes bytes read from the connection and appends those that belong to the RDB to
    /// `output`. Bytes after the end are dropped (there are none when `readLimit` is obeyed).
    public mutating func feed(_ input: UnsafeRawBufferPointer, into output: inout [UInt8]) {
        guard !isComplete, !input.isEmpty else { return }
        switch header {
        case .length(let length):
            let take = Int(min(Int64(input.count), length - delivered))
            output += input[0..<take]
            delivered += Int64(take)
            isComplete = delivered == length
        case .eofMark(let mark):
            let markLength = mark.count
            let total = held.count + input.count
            guard total >= markLength else {
                held += input
                return
            }
            // The last `markLength` bytes of held + input stay held; everything before goes out.
            let tail: [UInt8]
            if input.count >= markLength {
                tail = Array(input[(input.count - markLength)...])
            } else {
                tail = Array(held[(held.count - (markLength - input.count))...]) + Array(input)
            }
            let outgoing = total - markLength
            let fromHeld = min(held.count, outgoing)
            output += held[0..<fromHeld]
            output += input[0..<(outgoing - fromHeld)]
            delivered += Int64(outgoing)
            held = tail
            if held == mark {
                held = []
                isComplete = true
            }
        }
    }

    public mutating func feed(_ input: [UInt8], into output: inout [UInt8]) {
        input.withUnsafeBytes { feed($0, into: &output) }
    }
}
