import Foundation
import Glibc
import LifeboatCore
import LifeboatIO

/// A bare HTTP/1.x exchange over a TCP socket to 127.0.0.1, for tests that need to send what
/// no proper client would (garbage, nothing at all) and to read an answer exactly as sent.
public enum RawHTTP {
    public struct Response: Sendable {
        public var status: Int
        /// Header names lowercased.
        public var headers: [String: String]
        public var body: String
    }

    /// A connected socket to 127.0.0.1:`port` (the caller closes it).
    public static func connect(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LifeboatError(.io, "socket: \(errnoText())") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = in_addr_t(0x7f00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            let saved = errno
            close(fd)
            throw LifeboatError(.io, "connect to 127.0.0.1:\(port): \(errnoText(saved))")
        }
        return fd
    }

    /// Sends `request` as is, reads until the server closes (or `timeout` passes: an error).
    public static func exchange(port: Int, _ request: [UInt8], timeout: Double = 5) throws -> Response {
        let fd = try connect(port: port)
        defer { close(fd) }
        var limit = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw LifeboatError(.io, "send: \(errnoText())") }
            sent += n
        }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0, errno == EINTR { continue }
            if n < 0 { throw LifeboatError(.io, "no answer from 127.0.0.1:\(port) within \(timeout) s: \(errnoText())") }
            if n == 0 { break }
            bytes += buffer[..<n]
        }
        return try parse(bytes)
    }

    /// `METHOD path HTTP/1.0` (a server answers it without chunks and closes).
    /// `headers` are sent as given, after `Host`.
    public static func request(port: Int, _ path: String, method: String = "GET", headers: [(String, String)] = [],
                               timeout: Double = 5) throws -> Response {
        let extra = headers.map { "\($0.0): \($0.1)\r\n" }.joined()
        return try exchange(port: port, Array("\(method) \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\(extra)Connection: close\r\n\r\n".utf8),
                            timeout: timeout)
    }

    static func parse(_ bytes: [UInt8]) throws -> Response {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw LifeboatError(.io, "not an HTTP answer: \(text.prefix(200))") }
        let head = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let statusLine = head[0].split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw LifeboatError(.io, "bad status line: \(head[0])") }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Response(status: status, headers: headers, body: String(text[split.upperBound...]))
    }
}
