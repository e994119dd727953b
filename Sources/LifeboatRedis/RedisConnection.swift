import CCurl
import Glibc
import LifeboatCore

extension LifeboatError.Code {
    /// A Redis server refused or failed something: authentication, a command, a save, a
    /// transfer. Exit status 1.
    public static let redis = LifeboatError.Code("redis", badInput: false)
}

/// Where a Redis server listens, and how to reach it.
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// TLS settings; nil for a plain TCP connection.
    public var tls: RedisTLS?

    public init(host: String, port: Int, tls: RedisTLS? = nil) {
        self.host = host
        self.port = port
        self.tls = tls
    }

    /// `host:port` (`[::1]:6379` for an IPv6 address), for messages.
    public var description: String { "\(bracketedHost):\(port)" }

    private var bracketedHost: String { host.contains(":") ? "[\(host)]" : host }

    /// The URL libcurl connects to: `https://` does the TLS handshake, `http://` only the TCP
    /// connection (CURLOPT_CONNECT_ONLY: no HTTP request is ever sent).
    var curlURL: String { "\(tls == nil ? "http" : "https")://\(bracketedHost):\(port)" }
}

/// TLS to a Redis server (`tls-port`). The server's certificate is verified against
/// `caBundle` (else the system's trusted CAs) and the host name, unless `verify` is false.
/// Redis asks for a client certificate by default (`tls-auth-clients yes`): `certificate` and
/// `key` (PEM files, the key not encrypted) provide one.
public struct RedisTLS: Sendable, Equatable {
    public var caBundle: String?
    public var certificate: String?
    public var key: String?
    public var verify: Bool

    public init(caBundle: String? = nil, certificate: String? = nil, key: String? = nil, verify: Bool = true) {
        self.caBundle = caBundle
        self.certificate = certificate
        self.key = key
        self.verify = verify
    }
}

/// `curl_global_init` once per process. libcurl 7.84 and newer make it thread-safe
/// (CURL_VERSION_THREADSAFE), so this module's once and LifeboatHTTP's may race harmlessly.
/// SIGPIPE is ignored for the same reason LifeboatHTTP ignores it: with CURLOPT_NOSIGNAL,
/// writing to a connection the server closed must give EPIPE, not kill the process.
private let curlReady: UInt32 = {
    signal(SIGPIPE, SIG_IGN)
    return curl_global_init(Int(CURL_GLOBAL_DEFAULT)).rawValue
}()

/// Cancellation for libcurl's progress callback while it connects.
private final class ConnectContext {
    let cancellation: Cancellation
    init(cancellation: Cancellation) { self.cancellation = cancellation }
}

/// One connection to a Redis server speaking RESP2, over TCP or TLS.
///
/// libcurl makes the connection (CURLOPT_CONNECT_ONLY): TCP, and for `tls` the verified TLS
/// handshake, with the TLS library libcurl already brings for S3; `curl_easy_send` and
/// `curl_easy_recv` then move the bytes. Every wait is a `poll` of at most 100 ms that then
/// looks at the cancellation, so a cancelled run leaves a blocked read within 0.1 s, and at
/// the idle timeout, so a silent server cannot hold a run forever.
///
/// Blocking: use it from a thread of its own, never Swift's cooperative pool. One thread at
/// a time (`@unchecked Sendable`: a backup hands it to the thread that reads the RDB while
/// the caller waits for that thread, never both at once).
public final class RedisConnection: @unchecked Sendable {
    public let endpoint: RedisEndpoint
    private let cancellation: Cancellation
    /// How long a read or a write may wait for the server, in seconds.
    public var idleTimeout: Double
    private var handle: UnsafeMutableRawPointer?
    /// CURLOPT_ERRORBUFFER: libcurl writes a failure's text here, also on send and receive,
    /// so it lives as long as the handle.
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private let socket: Int32
    /// Bytes received and not consumed yet: `received[start...]`.
    private var received: [UInt8] = []
    private var start = 0
    private static let readSize = 64 << 10

    private init(endpoint: RedisEndpoint, handle: UnsafeMutableRawPointer, errorBuffer: UnsafeMutablePointer<CChar>, socket: Int32,
                 cancellation: Cancellation, idleTimeout: Double) {
        self.endpoint = endpoint
        self.handle = handle
        self.errorBuffer = errorBuffer
        self.socket = socket
        self.cancellation = cancellation
        self.idleTimeout = idleTimeout
    }

    deinit { close() }

    /// Connects (and for TLS, completes the handshake), within `connectTimeout` seconds.
    public static func connect(to endpoint: RedisEndpoint, cancellation: Cancellation, connectTimeout: Double = 10,
                               idleTimeout: Double = 120) throws -> RedisConnection {
        try cancellation.checkCancelled()
        let ready = CURLcode(rawValue: curlReady)
        guard ready == CURLE_OK else {
            throw LifeboatError(.internalError, "unable to initialize libcurl: \(String(cString: curl_easy_strerror(ready)))",
                                hint: "libcurl or its TLS library could not start; check that libcurl4 and OpenSSL are installed correctly.")
        }
        guard let handle = curl_easy_init() else {
            throw LifeboatError(.internalError, "unable to create a libcurl handle to connect to Redis at \(endpoint)",
                                hint: "libcurl could not allocate one; the machine may be out of memory.")
        }
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        var keep = false
        defer {
            if !keep {
                curl_easy_cleanup(handle)
                errorBuffer.deallocate()
            }
        }
        let context = ConnectContext(cancellation: cancellation)
        let code: CURLcode = withExtendedLifetime(context) {
            func set(_ option: CURLoption, _ value: Int) -> Bool { lifeboat_curl_easy_setopt_long(handle, option, value) == CURLE_OK }
            func set(_ option: CURLoption, text value: String) -> Bool { lifeboat_curl_easy_setopt_string(handle, option, value) == CURLE_OK }
            var ok = lifeboat_curl_easy_setopt_ptr(handle, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer)) == CURLE_OK
            ok = ok && set(CURLOPT_URL, text: endpoint.curlURL)
            ok = ok && set(CURLOPT_CONNECT_ONLY, 1)
            ok = ok && set(CURLOPT_NOSIGNAL, 1)
            ok = ok && set(CURLOPT_PROXY, text: "")  // a Redis connection never goes through an HTTP proxy
            ok = ok && set(CURLOPT_CONNECTTIMEOUT_MS, Int(connectTimeout * 1000))
            ok = ok && set(CURLOPT_TCP_KEEPALIVE, 1)
            if let tls = endpoint.tls {
                ok = ok && set(CURLOPT_SSL_ENABLE_ALPN, 0)
                ok = ok && set(CURLOPT_SSL_VERIFYPEER, tls.verify ? 1 : 0)
                ok = ok && set(CURLOPT_SSL_VERIFYHOST, tls.verify ? 2 : 0)
                if let caBundle = tls.caBundle { ok = ok && set(CURLOPT_CAINFO, text: caBundle) }
                if let certificate = tls.certificate { ok = ok && set(CURLOPT_SSLCERT, text: certificate) }
                if let key = tls.key { ok = ok && set(CURLOPT_SSLKEY, text: key) }
            }
            // libcurl calls the progress callback while it connects: a cancelled run stops there.
            ok = ok && set(CURLOPT_NOPROGRESS, 0)
            ok = ok && lifeboat_curl_easy_setopt_ptr(handle, CURLOPT_XFERINFODATA, Unmanaged.passUnretained(context).toOpaque()) == CURLE_OK
            ok = ok && lifeboat_curl_easy_setopt_xferinfo_callback(handle, CURLOPT_XFERINFOFUNCTION, { userdata, _, _, _, _ in
                guard let userdata else { return 1 }
                return Unmanaged<ConnectContext>.fromOpaque(userdata).takeUnretainedValue().cancellation.isCancelled ? 1 : 0
            }) == CURLE_OK
            guard ok else { return CURLE_FAILED_INIT }
            return curl_easy_perform(handle)
        }
        var text = String(cString: errorBuffer)
        if text.isEmpty { text = String(cString: curl_easy_strerror(code)) }
        guard code == CURLE_OK else {
            if code == CURLE_ABORTED_BY_CALLBACK, let reason = cancellation.reason { throw LifeboatError.cancelled(reason) }
            throw connectFailure(endpoint, code: code, text: text, timeout: connectTimeout)
        }
        // curl writes a curl_socket_t (an int) at the start of the storage it is given.
        var storage = -1
        let infoCode = withUnsafeMutablePointer(to: &storage) { lifeboat_curl_easy_getinfo_long(handle, CURLINFO_ACTIVESOCKET, $0) }
        let socket = withUnsafeBytes(of: &storage) { $0.load(as: Int32.self) }
        guard infoCode == CURLE_OK, socket >= 0 else {
            throw LifeboatError(.internalError, "libcurl connected to Redis at \(endpoint) but gave no socket",
                                hint: "Report this as a bug in Lifeboat.")
        }
        keep = true
        return RedisConnection(endpoint: endpoint, handle: handle, errorBuffer: errorBuffer, socket: socket, cancellation: cancellation,
                               idleTimeout: idleTimeout)
    }

    private static func connectFailure(_ endpoint: RedisEndpoint, code: CURLcode, text: String, timeout: Double) -> LifeboatError {
        let message = "unable to connect to Redis at \(endpoint)\(endpoint.tls == nil ? "" : " with TLS"): \(text)"
        switch code {
        case CURLE_PEER_FAILED_VERIFICATION:
            return LifeboatError(.redis, message, hint: "The server's certificate is not trusted for this host name: give the CA that signed it as 'tls.ca_bundle', and connect by a name (or address) the certificate holds.")
        case CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER, CURLE_SSL_ENGINE_NOTFOUND:
            return LifeboatError(.redis, message, hint: "Check the files named in 'source.redis.tls' (ca_bundle, cert, key): they must exist, be readable and hold PEM; the key must not be encrypted.")
        case CURLE_SSL_CONNECT_ERROR, CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING:
            return LifeboatError(.redis, message, hint: endpoint.tls == nil ? nil : "Check that this port is the server's tls-port, and whether it requires a client certificate (tls-auth-clients, the default): give 'tls.cert' and 'tls.key'.")
        case CURLE_OPERATION_TIMEDOUT:
            return LifeboatError(.redis, "unable to connect to Redis at \(endpoint) within \(Int(timeout)) s: \(text)",
                                 hint: "Check that the server is running and that nothing (a firewall) drops the connection.")
        default:
            return LifeboatError(.redis, message, hint: "Check 'source.redis.host' and 'port', and that the server is running and reachable from this machine.")
        }
    }

    /// Closes the connection. Calling it again does nothing.
    public func close() {
        guard let handle else { return }
        self.handle = nil
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    // MARK: Commands

    /// Sends a command. `shown` is what messages call it (never a password: AUTH is shown as
    /// `AUTH`).
    public func send(_ arguments: [String], shown: String? = nil) throws {
        let bytes = RESP.command(arguments)
        try bytes.withUnsafeBytes { try write($0, doing: "sending \(shown ?? arguments.joined(separator: " "))") }
    }

    /// Sends a command and reads its reply, whatever it is (an error reply included).
    public func command(_ arguments: [String], shown: String? = nil) throws -> RESPValue {
        try send(arguments, shown: shown)
        return try readReply(to: shown ?? arguments.joined(separator: " "))
    }

    /// Sends a command and reads its reply; an error reply throws, with a hint for the
    /// errors people meet (no password, not allowed for this ACL user, a renamed command).
    public func call(_ arguments: [String], shown: String? = nil) throws -> RESPValue {
        let name = shown ?? arguments.joined(separator: " ")
        let reply = try command(arguments, shown: shown)
        if let message = reply.errorMessage { throw refused(name, message) }
        return reply
    }

    /// The error for a command the server refused.
    public func refused(_ command: String, _ message: String) -> LifeboatError {
        let code = message.prefix { $0 != " " }
        let hint: String?
        switch code {
        case "NOAUTH":
            hint = "The server requires a password: set 'source.redis.password' (and 'user' for an ACL user) in the policy."
        case "NOPERM":
            hint = "Allow the command to the user (ACL SETUSER <user> +<command>); see the README for what a backup needs."
        case "ERR" where message.lowercased().hasPrefix("err unknown command"):
            hint = "The command is renamed or disabled on this server (rename-command)."
        default:
            hint = nil
        }
        return LifeboatError(.redis, "Redis at \(endpoint) refused \(command): \(message)", hint: hint)
    }

    /// Reads one reply.
    public func readReply(to command: String) throws -> RESPValue {
        while true {
            let decoded: (value: RESPValue, count: Int)?
            do {
                decoded = try received.withUnsafeBytes { try RESP.decode(UnsafeRawBufferPointer(rebasing: $0[start...])) }
            } catch {
                throw LifeboatError(.redis, "Redis at \(endpoint) answered \(command) with something that is not RESP: \(error)",
                                    hint: endpoint.tls == nil
                                        ? "If the server expects TLS on this port, set 'tls: true' in source.redis; otherwise check that 'source.redis.host' and 'port' name a Redis server."
                                        : "Check that 'source.redis.host' and 'port' name a Redis server.")
            }
            if let (value, count) = decoded {
                consume(count)
                return value
            }
            try fill(waitingFor: "the reply to \(command)")
        }
    }

    /// Reads one line (up to `\n`, which is not returned), waiting at most `deadline` in all
    /// and `idleTimeout` between bytes. For the replication handshake.
    public func readLine(waitingFor what: String, deadline: ContinuousClock.Instant? = nil) throws -> [UInt8] {
        while true {
            let end = try received.withUnsafeBytes { buffer -> Int? in
                do {
                    return try RESP.lineEnd(UnsafeRawBufferPointer(rebasing: buffer[start...]), from: 0)
                } catch {
                    throw LifeboatError(.redis, "Redis at \(endpoint) sent \(error) while Lifeboat waited for \(what)")
                }
            }
            if let end {
                let line = Array(received[start..<(start + end)])
                consume(end + 1)
                return line
            }
            try fill(waitingFor: what, deadline: deadline)
        }
    }

    /// Reads what is available, up to `buffer.count` bytes: bytes already received first,
    /// then from the connection. Returns 0 when the server closed the connection.
    public func readSome(into buffer: UnsafeMutableRawBufferPointer, waitingFor what: String) throws -> Int {
        guard !buffer.isEmpty else { return 0 }
        if start < received.count {
            let count = min(buffer.count, received.count - start)
            received.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[start..<(start + count)])) }
            consume(count)
            return count
        }
        return try receive(into: buffer, waitingFor: what, deadline: nil)
    }

    private func consume(_ count: Int) {
        start += count
        if start == received.count {
            received.removeAll(keepingCapacity: true)
            start = 0
        }
    }

    /// Appends what the connection has to `received`; throws when it is closed.
    private func fill(waitingFor what: String, deadline: ContinuousClock.Instant? = nil) throws {
        if start > 0 {
            received.removeFirst(start)
            start = 0
        }
        let old = received.count
        received += repeatElement(0, count: Self.readSize)
        let count = try received.withUnsafeMutableBytes {
            try receive(into: UnsafeMutableRawBufferPointer(rebasing: $0[old...]), waitingFor: what, deadline: deadline)
        }
        received.removeLast(Self.readSize - count)
        guard count > 0 else { throw closedFailure(waitingFor: what) }
    }

    /// The failure a closed connection means (also for callers that read with `readSome`).
    public func closedFailure(waitingFor what: String) -> LifeboatError {
        LifeboatError(.redis, "Redis at \(endpoint) closed the connection while Lifeboat waited for \(what)", hint: brokenConnectionHint)
    }

    /// What to look at when the server drops the connection: a TLS mismatch is the usual
    /// cause right after connecting.
    private var brokenConnectionHint: String {
        endpoint.tls == nil
            ? "If the server expects TLS on this port, set 'tls: true' in source.redis; otherwise look at the server's log (client output buffer limits, timeouts)."
            : "If the server requires a client certificate (tls-auth-clients, the default), give 'tls.cert' and 'tls.key' in source.redis; otherwise look at the server's log."
    }

    // MARK: Bytes

    private func receive(into buffer: UnsafeMutableRawBufferPointer, waitingFor what: String,
                         deadline: ContinuousClock.Instant?) throws -> Int {
        guard let handle else { throw closedFailure(waitingFor: what) }
        let idle = ContinuousClock.now.advanced(by: .milliseconds(Int(idleTimeout * 1000)))
        let limit = deadline.map { min($0, idle) } ?? idle
        while true {
            try cancellation.checkCancelled()
            var count = 0
            errorBuffer[0] = 0
            let code = curl_easy_recv(handle, buffer.baseAddress, buffer.count, &count)
            if code == CURLE_OK { return count }
            guard code == CURLE_AGAIN else { throw transportFailure(code, doing: "waiting for \(what)") }
            try wait(for: Int16(POLLIN), until: limit, doing: "waiting for \(what)", overall: deadline)
        }
    }

    private func write(_ bytes: UnsafeRawBufferPointer, doing what: String) throws {
        guard let handle else { throw closedFailure(waitingFor: what) }
        var offset = 0
        let limit = ContinuousClock.now.advanced(by: .milliseconds(Int(idleTimeout * 1000)))
        while offset < bytes.count {
            try cancellation.checkCancelled()
            var sent = 0
            errorBuffer[0] = 0
            let code = curl_easy_send(handle, bytes.baseAddress! + offset, bytes.count - offset, &sent)
            if code == CURLE_OK {
                offset += sent
                continue
            }
            guard code == CURLE_AGAIN else { throw transportFailure(code, doing: what) }
            try wait(for: Int16(POLLOUT), until: limit, doing: what, overall: nil)
        }
    }

    /// Waits until the socket is ready, in slices of at most 100 ms with a look at the
    /// cancellation after each.
    private func wait(for events: Int16, until limit: ContinuousClock.Instant, doing what: String,
                      overall: ContinuousClock.Instant?) throws {
        while true {
            try cancellation.checkCancelled()
            let now = ContinuousClock.now
            guard now < limit else {
                if let overall, overall <= limit {
                    throw LifeboatError(.redis, "Redis at \(endpoint) did not finish before the time allowed while Lifeboat was \(what)",
                                        hint: "Raise 'source.redis.save_timeout', or look at why the server is slow (its log, INFO persistence).")
                }
                throw LifeboatError(.redis, "Redis at \(endpoint) sent nothing for \(Int(idleTimeout)) s while Lifeboat was \(what)",
                                    hint: "Check the server's load and log, and the network between this machine and the server.")
            }
            let remaining = now.duration(to: limit)
            let milliseconds = min(100, max(1, Int32(remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000)))
            var descriptor = pollfd(fd: socket, events: events, revents: 0)
            let ready = poll(&descriptor, 1, milliseconds)
            if ready > 0 { return }
            if ready < 0, errno != EINTR {
                throw LifeboatError(.redis, "waiting for Redis at \(endpoint) failed: \(String(cString: strerror(errno)))")
            }
        }
    }

    private func transportFailure(_ code: CURLcode, doing what: String) -> LifeboatError {
        var text = String(cString: errorBuffer)
        if text.isEmpty { text = String(cString: curl_easy_strerror(code)) }
        return LifeboatError(.redis, "the connection to Redis at \(endpoint) failed while Lifeboat was \(what): \(text)",
                             hint: brokenConnectionHint)
    }
}
