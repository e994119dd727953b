import Foundation
import Glibc
import LifeboatCore
import Synchronization

/// A very small HTTP/1.1 server on blocking sockets, for the scheduler's `/metrics`,
/// `/healthz` and `/readyz`: GET and HEAD only, one request per connection
/// (`Connection: close`), answers computed by a handler that only reads memory.
///
/// One thread accepts; each connection gets a thread of its own (at most
/// `maxConnections` at once; more are answered 503 at once) with a read timeout and a limit
/// on the request head, so a client that sends nothing or sends garbage holds up no one.
public final class HTTPListener: Sendable {
    public struct Response: Sendable {
        public var status: Int
        public var contentType: String
        public var body: String
        public var headers: [(String, String)]

        public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: String, headers: [(String, String)] = []) {
            self.status = status
            self.contentType = contentType
            self.body = body
            self.headers = headers
        }
    }

    /// Answers a GET (a HEAD gets the same answer without its body).
    public typealias Handler = @Sendable (_ request: HTTPRequestHead) -> Response

    /// Where it listens, as bound: `127.0.0.1:9187`, `[::]:9187` (the port the kernel chose
    /// for port 0).
    public let address: String
    public let port: Int
    private let fd: Int32
    private let wakePipe: (read: Int32, write: Int32)
    private let active = Mutex(0)
    private let stopped = Mutex(false)
    private let started = Mutex(false)
    private let done = Wakeup()

    public static let maxConnections = 16
    /// The request head may take this long to arrive, and be this long.
    public static let readTimeout: TimeInterval = 5
    public static let maxRequestHead = 8192

    /// Binds and listens (nothing is accepted until `start`).
    ///
    /// - Throws: `LifeboatError(.io)` naming the address when it cannot be bound (in use,
    ///   not an address of this machine, a privileged port).
    public init(host: String, port: Int) throws {
        fd = try Self.openSocket(host: host, port: port)
        (address, self.port) = Self.boundAddress(fd)
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            let saved = errno
            close(fd)
            throw LifeboatError(.io, "unable to create a pipe: \(errnoText(saved))")
        }
        for end in fds { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        wakePipe = (fds[0], fds[1])
    }

    /// A listening socket: for an empty host, every interface (IPv6 and IPv4 on one socket,
    /// or IPv4 alone on a machine without IPv6).
    private static func openSocket(host: String, port: Int) throws -> Int32 {
        let shown = ListenAddress.address(host: host, port: port).description
        let badAddress = "Set listen in lifeboat.yaml or --listen to an address of this machine (127.0.0.1:9187), or off."
        let families: [Int32] = host.isEmpty ? [AF_INET6, AF_INET] : [AF_UNSPEC]
        for (index, family) in families.enumerated() {
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
            hints.ai_family = family
            var list: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &list)
            guard status == 0, let info = list?.pointee else {
                if index + 1 < families.count { continue }
                throw LifeboatError(.io, "unable to listen on \(shown): \(String(cString: gai_strerror(status)))", hint: badAddress)
            }
            defer { freeaddrinfo(list) }
            let fd = socket(info.ai_family, info.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), info.ai_protocol)
            guard fd >= 0 else {
                let saved = errno
                if index + 1 < families.count { continue }
                throw LifeboatError(.io, "unable to listen on \(shown): \(errnoText(saved))")
            }
            var on: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
            if info.ai_family == AF_INET6, host.isEmpty {
                var off: Int32 = 0
                _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, socklen_t(MemoryLayout<Int32>.size))
            }
            guard bind(fd, info.ai_addr, info.ai_addrlen) == 0, listen(fd, 64) == 0 else {
                let saved = errno
                close(fd)
                let hint = saved == EADDRINUSE
                    ? "Another program (another 'lifeboat schedule'?) listens there: stop it, or set listen in lifeboat.yaml or --listen to another port, or off."
                    : badAddress
                throw LifeboatError(.io, "unable to listen on \(shown): \(errnoText(saved))", hint: hint)
            }
            return fd
        }
        throw LifeboatError(.io, "unable to listen on \(shown)", hint: badAddress)
    }

    private static func boundAddress(_ fd: Int32) -> (String, Int) {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        _ = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &host, socklen_t(host.count), &service, socklen_t(service.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        func text(_ chars: [CChar]) -> String {
            String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let port = Int(text(service)) ?? 0
        return (ListenAddress.address(host: text(host), port: port).description, port)
    }

    /// Accepts connections on a thread of its own until `stop()`.
    public func start(_ handler: @escaping Handler) {
        started.withLock { $0 = true }
        let thread = Thread { [self] in
            defer { done.wake() }
            acceptLoop(handler)
        }
        thread.name = "lifeboat-http"
        thread.start()
    }

    /// Stops accepting and closes the socket; returns once the accept loop has ended.
    /// Connections being answered finish on their own threads.
    public func stop() {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        if started.withLock({ $0 }) {
            var byte: UInt8 = 1
            _ = write(wakePipe.write, &byte, 1)
            done.wait()
        }
        close(fd)
        close(wakePipe.read)
        close(wakePipe.write)
    }

    private func acceptLoop(_ handler: @escaping Handler) {
        while !stopped.withLock({ $0 }) {
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, 1000)
            if ready < 0, errno == EINTR { continue }
            if fds[1].revents != 0 { return }
            guard ready > 0, fds[0].revents & Int16(POLLIN) != 0 else { continue }
            let client = accept(fd, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            let admitted = active.withLock { count -> Bool in
                guard count < Self.maxConnections else { return false }
                count += 1
                return true
            }
            guard admitted else {
                Self.send(client, Response(status: 503, body: "too many connections\n"), head: false)
                close(client)
                continue
            }
            let thread = Thread { [self] in
                defer {
                    close(client)
                    active.withLock { $0 -= 1 }
                }
                Self.serve(client, handler)
            }
            thread.name = "lifeboat-http-connection"
            thread.start()
        }
    }

    /// Reads one request head (bounded in time and size) and answers it.
    static func serve(_ client: Int32, _ handler: Handler) {
        var timeout = timeval(tv_sec: Int(readTimeout), tv_usec: 0)
        _ = setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let deadline = Date(timeIntervalSinceNow: readTimeout)
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        var headEnd: Int?
        while headEnd == nil {
            guard bytes.count < maxRequestHead else {
                send(client, Response(status: 431, body: "request head too large\n"), head: false)
                drain(client)
                return
            }
            guard Date() < deadline else { return }
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return }  // closed, or nothing within the timeout
            bytes += buffer[..<n]
            headEnd = HTTPRequestHead.end(in: bytes)
        }
        guard let request = HTTPRequestHead(bytes) else {
            send(client, Response(status: 400, body: "bad request\n"), head: false)
            return
        }
        guard request.method == "GET" || request.method == "HEAD" else {
            send(client, Response(status: 405, body: "method not allowed\n", headers: [("Allow", "GET, HEAD")]), head: false)
            return
        }
        send(client, handler(request), head: request.method == "HEAD")
    }

    /// Reads what the client still sends (for at most 64 KiB and 200 ms), so that closing does
    /// not reset the connection before the client has read the answer.
    static func drain(_ client: Int32) {
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        _ = setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 8192)
        for _ in 0..<8 {
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return }
        }
    }

    static func send(_ client: Int32, _ response: Response, head: Bool) {
        let body = Array(response.body.utf8)
        var text = "HTTP/1.1 \(response.status) \(reason(response.status))\r\n"
        text += "Content-Type: \(response.contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n"
        for (name, value) in response.headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        let bytes = Array(text.utf8) + (head ? [] : body)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return }
            sent += n
        }
        _ = shutdown(client, Int32(SHUT_WR))
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 431: return "Request Header Fields Too Large"
        case 503: return "Service Unavailable"
        default: return "Status"
        }
    }
}
