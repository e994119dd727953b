/// One value of the Redis protocol (RESP2), as a server replies.
public indirect enum RESPValue: Sendable, Equatable, CustomStringConvertible {
    /// `+OK`
    case simple(String)
    /// `-ERR message`: the first word is the error's code (`ERR`, `WRONGPASS`, `NOPERM`, …).
    case error(String)
    /// `:42`
    case integer(Int64)
    /// `$3\r\nabc` (nil: `$-1`, the null bulk string)
    case bulk([UInt8]?)
    /// `*2\r\n…` (nil: `*-1`, the null array)
    case array([RESPValue]?)

    /// The text of a simple or bulk string (bulk bytes as UTF-8, lossily).
    public var text: String? {
        switch self {
        case .simple(let text): return text
        case .bulk(let bytes?): return String(decoding: bytes, as: UTF8.self)
        default: return nil
        }
    }

    /// The error's message, for an error reply.
    public var errorMessage: String? {
        if case .error(let message) = self { return message }
        return nil
    }

    /// The error's code (its first word), for an error reply.
    public var errorCode: String? {
        errorMessage.map { String($0.prefix { $0 != " " }) }
    }

    /// For messages: the value as redis-cli shows it, shortened.
    public var description: String {
        switch self {
        case .simple(let text): return text
        case .error(let message): return "(error) \(message)"
        case .integer(let value): return "(integer) \(value)"
        case .bulk(nil), .array(nil): return "(nil)"
        case .bulk(let bytes?):
            let text = String(decoding: bytes.prefix(200), as: UTF8.self)
            return "\"\(text)\(bytes.count > 200 ? "…" : "")\""
        case .array(let values?): return "[" + values.prefix(10).map(\.description).joined(separator: ", ") + (values.count > 10 ? ", …]" : "]")
        }
    }
}

/// Encoding of commands and decoding of replies in RESP2, the protocol every Redis since 2.0
/// speaks (and the only one before `HELLO 3`). Pure: the connection feeds it bytes.
public enum RESP {
    /// A malformed reply: the connection cannot be used any further.
    public struct ProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    /// Limits on what a reply may hold, so that a hostile or confused peer cannot make us
    /// allocate without bound. Replies Lifeboat reads are small (INFO, CONFIG GET).
    public static let maximumBulkLength = 64 << 20
    public static let maximumArrayCount = 1 << 20
    public static let maximumDepth = 8
    public static let maximumLineLength = 64 << 10

    /// A command as an array of bulk strings: `*2\r\n$4\r\nINFO\r\n$11\r\npersistence\r\n`.
    public static func command(_ arguments: [String]) -> [UInt8] {
        command(arguments.map { Array($0.utf8) })
    }

    public static func command(_ arguments: [[UInt8]]) -> [UInt8] {
        var bytes = Array("*\(arguments.count)\r\n".utf8)
        for argument in arguments {
            bytes += Array("$\(argument.count)\r\n".utf8)
            bytes += argument
            bytes += [0x0d, 0x0a]
        }
        return bytes
    }

    /// Decodes one value from the start of `bytes`: the value and how many bytes it took, or
    /// nil when `bytes` holds only the beginning of one (read more and call again).
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> (value: RESPValue, count: Int)? {
        var position = 0
        guard let value = try decodeValue(bytes, &position, depth: 0) else { return nil }
        return (value, position)
    }

    public static func decode(_ bytes: [UInt8]) throws -> (value: RESPValue, count: Int)? {
        try bytes.withUnsafeBytes { try decode($0) }
    }

    /// The index of the `\n` ending the line that starts at `start`, or nil when it has not
    /// arrived yet.
    public static func lineEnd(_ bytes: UnsafeRawBufferPointer, from start: Int) throws -> Int? {
        var index = start
        while index < bytes.count {
            if bytes[index] == 0x0a { return index }
            index += 1
        }
        guard bytes.count - start <= maximumLineLength else {
            throw ProtocolError("a line of more than \(maximumLineLength) bytes without an end")
        }
        return nil
    }

    private static func decodeValue(_ bytes: UnsafeRawBufferPointer, _ position: inout Int, depth: Int) throws -> RESPValue? {
        guard depth <= maximumDepth else { throw ProtocolError("replies nested more than \(maximumDepth) deep") }
        guard position < bytes.count else { return nil }
        let type = bytes[position]
        guard let end = try lineEnd(bytes, from: position + 1) else { return nil }
        guard end > position + 1, bytes[end - 1] == 0x0d else {
            throw ProtocolError("a line not ended by CRLF: \(lineText(bytes, position, end))")
        }
        let line = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(position + 1)..<(end - 1)]), as: UTF8.self)
        var next = end + 1
        let value: RESPValue
        switch type {
        case UInt8(ascii: "+"):
            value = .simple(line)
        case UInt8(ascii: "-"):
            value = .error(line)
        case UInt8(ascii: ":"):
            guard let number = Int64(line) else { throw ProtocolError("an integer reply that is not a number: '\(line)'") }
            value = .integer(number)
        case UInt8(ascii: "$"):
            guard let length = Int(line), length >= -1 else { throw ProtocolError("a bulk string of length '\(line)'") }
            if length == -1 {
                value = .bulk(nil)
            } else {
                guard length <= maximumBulkLength else {
                    throw ProtocolError("a bulk string of \(length) bytes, more than the \(maximumBulkLength) Lifeboat accepts in a reply")
                }
                guard bytes.count - next >= length + 2 else { return nil }
                guard bytes[next + length] == 0x0d, bytes[next + length + 1] == 0x0a else {
                    throw ProtocolError("a bulk string of \(length) bytes not followed by CRLF")
                }
                value = .bulk(Array(bytes[next..<(next + length)]))
                next += length + 2
            }
        case UInt8(ascii: "*"):
            guard let count = Int(line), count >= -1 else { throw ProtocolError("an array of length '\(line)'") }
            if count == -1 {
                value = .array(nil)
            } else {
                guard count <= maximumArrayCount else {
                    throw ProtocolError("an array of \(count) elements, more than the \(maximumArrayCount) Lifeboat accepts in a reply")
                }
                var elements: [RESPValue] = []
                elements.reserveCapacity(min(count, 1024))
                for _ in 0..<count {
                    guard let element = try decodeValue(bytes, &next, depth: depth + 1) else { return nil }
                    elements.append(element)
                }
                value = .array(elements)
            }
        default:
            throw ProtocolError("a reply starting with \(lineText(bytes, position, end)), which is not RESP")
        }
        position = next
        return value
    }

    private static func lineText(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> String {
        RDBCheck.printable(Array(bytes[start..<min(end, start + 60)]))
    }
}

/// The text of `INFO`: `# Section` lines and `key:value` lines.
public enum RedisInfo {
    /// The `key:value` fields (section headers and blank lines left out).
    public static func fields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            guard !line.hasPrefix("#"), let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = String(line[line.index(after: colon)...])
        }
        return fields
    }
}
