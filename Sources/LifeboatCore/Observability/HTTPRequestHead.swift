/// The head of an HTTP/1.x request, as the scheduler's listener reads it: the request line
/// and the `Authorization` header, nothing else it needs (every answer closes the
/// connection, no request has a body).
public struct HTTPRequestHead: Sendable, Equatable {
    public var method: String
    /// The path, without the query.
    public var path: String
    /// The `Authorization` header's value, if the request has one (the first, when repeated).
    public var authorization: String?

    public init(method: String, path: String, authorization: String? = nil) {
        self.method = method
        self.path = path
        self.authorization = authorization
    }

    /// Where the head ends (`\r\n\r\n`, or `\n\n` from a lax client) in `bytes`, if it does.
    public static func end(in bytes: [UInt8]) -> Int? {
        guard bytes.count >= 2 else { return nil }
        for index in 1..<bytes.count where bytes[index] == 0x0A {
            if bytes[index - 1] == 0x0A { return index + 1 }
            if index >= 3, bytes[index - 1] == 0x0D, bytes[index - 2] == 0x0A, bytes[index - 3] == 0x0D { return index + 1 }
        }
        return nil
    }

    /// Parses `METHOD SP target SP HTTP/1.x`; nil for anything else (an answer 400).
    public init?(_ bytes: [UInt8]) {
        let lineEnd = bytes.firstIndex(of: 0x0A) ?? bytes.count
        var line = bytes[..<lineEnd]
        if line.last == 0x0D { line = line.dropLast() }
        guard line.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return nil }
        let parts = String(decoding: line, as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[2] == "HTTP/1.1" || parts[2] == "HTTP/1.0",
              !parts[0].isEmpty, parts[0].allSatisfy({ $0.isUppercase }),
              parts[1].hasPrefix("/")
        else { return nil }
        method = String(parts[0])
        path = String(parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0])
        authorization = nil
        let headerLines = String(decoding: bytes[min(lineEnd + 1, bytes.count)...], as: UTF8.self).split(whereSeparator: \.isNewline)
        for line in headerLines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            if line[..<colon].lowercased() == "authorization" {
                authorization = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                break
            }
        }
    }
}
