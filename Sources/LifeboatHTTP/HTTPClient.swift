import CCurl
import Glibc
import LifeboatCore
import Synchronization

/// An HTTP client over libcurl's easy API, for the S3 client: HTTP/1.1, or HTTP/2 over TLS
/// when the server offers it (libcurl's default).
///
/// **Threads.** Every request blocks the thread that calls `perform` until the response is
/// complete; run requests from threads of your own, never from Swift's cooperative pool.
/// Several threads may call `perform` on one client at the same time (multipart parts in
/// parallel): each request takes an easy handle from the client's pool for itself.
///
/// **Connections.** Each pooled easy handle keeps its connections open after a request
/// (keep-alive); the next request that takes the handle reuses a connection to the same host
/// when it is still alive (libcurl checks, and sends the request again on a fresh connection
/// when a kept-alive one turns out dead, which needs a replayable body). The most recently
/// returned handle is taken first, so sequential requests keep using one connection. At most
/// `Configuration.maxIdleHandles` idle handles are kept; more concurrent requests create more
/// handles, and the surplus is closed when they are returned.
///
/// **Responses and errors.** Any HTTP status is a response: `perform` throws only when no
/// complete response arrived (a `LifeboatError` with code `.network` whose `transportError`
/// says why and whether a retry may help), when a body closure threw (its error is
/// rethrown as it is), or when the client's cancellation was cancelled. Redirects are not
/// followed: a 3xx is returned as it is.
///
/// **Cancellation.** Every transfer watches the client's `cancellation`: libcurl's progress
/// callback (CURLOPT_XFERINFOFUNCTION), which it calls whenever it looks at a transfer, data
/// or not, aborts the transfer once the cancellation is cancelled, and a handler registered
/// for the transfer's duration wakes libcurl's wait at once (`EasyHandle.wakeup`), so even a
/// transfer stalled on a silent server ends within milliseconds. A request started after the
/// cancellation fails without being sent. Either way `perform` throws
/// `LifeboatError.cancelled(reason)` (code `.cancelled`, never `.network`), whose
/// `underlying` is an `HTTPTransportError` of kind `.cancelled`. Cleanup that must still
/// reach the server after a cancellation uses a client made by `with(cancellation: .never)`.
///
/// **Proxies.** libcurl uses the proxy named by the `http_proxy`, `https_proxy`/`HTTPS_PROXY`
/// and `all_proxy`/`ALL_PROXY` environment variables and skips it for hosts in
/// `no_proxy`/`NO_PROXY`; this client never sets a proxy itself, so that stays true.
/// (Upper-case `HTTP_PROXY` is ignored by libcurl on purpose, as in every CGI-safe client.)
///
/// **TLS.** Certificates are verified unless `verifyTLS` is false. The CA bundle is the
/// configuration's `caBundle`, else the first set of the environment variables
/// `AWS_CA_BUNDLE`, `CURL_CA_BUNDLE`, `SSL_CERT_FILE`, else libcurl's built-in default (the
/// system's CAs). It is applied to `https` URLs only: a plain `http` endpoint works whatever
/// bundle is configured, even one that does not exist.
///
/// **Signals.** libcurl runs with CURLOPT_NOSIGNAL (signals and threads do not mix), and
/// SIGPIPE is ignored process-wide once, so a closed connection is an error, not a crash.
///
/// `Sendable`: the configuration, CA bundle and cancellation are immutable (a `Cancellation`
/// is itself thread-safe), and the pool is behind a mutex.
public final class HTTPClient: Sendable {
    /// Settings for every request of a client.
    ///
    /// Durations are rounded up to whole milliseconds (`lowSpeedTime` to whole seconds); a
    /// zero or negative one counts as the smallest positive value, never as "no limit".
    public struct Configuration: Sendable {
        /// The limit on making the TCP connection and the TLS handshake. Default 10 s.
        public var connectTimeout: Duration
        /// With `lowSpeedTime`: a transfer slower than this many bytes per second for
        /// `lowSpeedTime` is aborted as a timeout. 0 turns the check off. Default 1 byte/s.
        public var lowSpeedLimit: Int
        /// See `lowSpeedLimit`; whole seconds (rounded up). Default 60 s.
        public var lowSpeedTime: Duration
        /// A limit on each whole request, or nil for none (the default: a large upload may
        /// take as long as it takes while it keeps moving). `HTTPRequest.timeout` overrides it.
        public var timeout: Duration?
        /// Verify the server's certificate and host name. Default true.
        public var verifyTLS: Bool
        /// A PEM file of CA certificates to trust for `https` URLs (the repository's
        /// `ca_bundle`). Nil looks at the environment; see `HTTPClient`.
        public var caBundle: String?
        /// The `User-Agent` header. Default `lifeboat/<version>`.
        public var userAgent: String
        /// How many idle easy handles (each with its kept-alive connections) the pool keeps.
        public var maxIdleHandles: Int

        public init(
            connectTimeout: Duration = .seconds(10), lowSpeedLimit: Int = 1, lowSpeedTime: Duration = .seconds(60),
            timeout: Duration? = nil, verifyTLS: Bool = true, caBundle: String? = nil,
            userAgent: String = "lifeboat/\(LifeboatVersion.current)", maxIdleHandles: Int = 16
        ) {
            self.connectTimeout = connectTimeout
            self.lowSpeedLimit = lowSpeedLimit
            self.lowSpeedTime = lowSpeedTime
            self.timeout = timeout
            self.verifyTLS = verifyTLS
            self.caBundle = caBundle
            self.userAgent = userAgent
            self.maxIdleHandles = maxIdleHandles
        }
    }

    /// A CA bundle in use and where it came from.
    public struct CABundle: Sendable, Equatable, CustomStringConvertible {
        /// The PEM file.
        public var path: String
        /// `"ca_bundle"` when it came from the configuration, else the environment variable's name.
        public var source: String

        public init(path: String, source: String) {
            self.path = path
            self.source = source
        }

        public var description: String { "'\(path)' (from \(source))" }
    }

    /// The environment variables that name a CA bundle, in order of precedence.
    public static let caBundleVariables = ["AWS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"]

    /// The default limit on a response body held in memory: 16 MiB.
    public static let defaultBodyLimit = 16 << 20
    /// The default limit on an error body kept while streaming: 1 MiB.
    public static let defaultErrorBodyLimit = 1 << 20

    public let configuration: Configuration
    /// The CA bundle applied to `https` requests, or nil for libcurl's default.
    public let caBundle: CABundle?
    /// Once cancelled, transfers in flight are aborted and new requests fail at once.
    public let cancellation: Cancellation

    private let pool: Mutex<[EasyHandle]>

    /// A client with its own pool of connections.
    ///
    /// - Parameters:
    ///   - environment: where to look up `AWS_CA_BUNDLE`, `CURL_CA_BUNDLE` and
    ///     `SSL_CERT_FILE` (read once, here); nil reads the process environment.
    ///   - cancellation: stops every request of this client once cancelled (the run's).
    /// - Throws: `LifeboatError(.internalError)` when libcurl cannot be initialized.
    public convenience init(configuration: Configuration = Configuration(), environment: [String: String]? = nil,
                cancellation: Cancellation = .never) throws {
        try initializeCurlOnce()
        self.init(configuration: configuration,
                  caBundle: Self.resolveCABundle(explicit: configuration.caBundle,
                                                 environment: environment ?? Self.processCABundleEnvironment()),
                  cancellation: cancellation)
    }

    private init(configuration: Configuration, caBundle: CABundle?, cancellation: Cancellation) {
        self.configuration = configuration
        self.caBundle = caBundle
        self.cancellation = cancellation
        self.pool = Mutex([])
    }

    /// A client with this one's configuration and CA bundle, a pool of connections of its
    /// own, and `cancellation` instead of this one's: `with(cancellation: .never)` is for
    /// cleanup that must reach the server after the run was cancelled. A `timeout` replaces
    /// the configuration's limit on each whole request.
    public func with(cancellation: Cancellation, timeout: Duration? = nil) -> HTTPClient {
        var configuration = configuration
        if let timeout { configuration.timeout = timeout }
        return HTTPClient(configuration: configuration, caBundle: caBundle, cancellation: cancellation)
    }

    /// The CA bundle the rules choose: `explicit`, else the first non-empty one of
    /// `caBundleVariables` in `environment`, else nil.
    public static func resolveCABundle(explicit: String?, environment: [String: String]) -> CABundle? {
        if let explicit, !explicit.isEmpty { return CABundle(path: explicit, source: "ca_bundle") }
        for name in caBundleVariables {
            if let value = environment[name], !value.isEmpty { return CABundle(path: value, source: name) }
        }
        return nil
    }

    private static func processCABundleEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        for name in caBundleVariables {
            if let value = getenv(name) { result[name] = String(cString: value) }
        }
        return result
    }

    // MARK: Requests

    /// Sends `request` and returns the response with its body in memory.
    ///
    /// - Parameter bodyLimit: the largest 2xx body accepted; a larger one fails the request
    ///   (kind `.responseTooLarge`). For small responses: XML errors, listings. The body of
    ///   any other status (an error document) is kept up to `defaultErrorBodyLimit` bytes
    ///   even when `bodyLimit` is smaller, and `isBodyTruncated` says when it was cut.
    /// - Throws: a `LifeboatError` with code `.network` when no complete response arrived,
    ///   the error a body stream's closure threw, or `.internalError` for a malformed request
    ///   (a header with a line break, a body on GET).
    @available(*, noasync, message: "perform blocks its thread; call it from a thread of your own")
    public func perform(_ request: HTTPRequest, bodyLimit: Int = HTTPClient.defaultBodyLimit) throws -> HTTPResponse {
        try execute(request, handling: .collect(limit: bodyLimit))
    }

    /// Sends `request` and gives a 2xx response's body to `sink` as it arrives, so that memory
    /// stays bounded however large the body is (GetObject).
    ///
    /// For any other status `sink` is not called: the body (an S3 XML error) is kept in the
    /// response's `body`, up to `errorBodyLimit` bytes (the rest is read and dropped, and
    /// `isBodyTruncated` is set).
    ///
    /// - Throws: as `perform(_:bodyLimit:)`; an error `sink` throws stops the transfer and is
    ///   rethrown as it is.
    @available(*, noasync, message: "perform blocks its thread; call it from a thread of your own")
    public func perform(
        _ request: HTTPRequest, errorBodyLimit: Int = HTTPClient.defaultErrorBodyLimit,
        sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> HTTPResponse {
        try withoutActuallyEscaping(sink) { sink in
            try execute(request, handling: .stream(sink: sink, errorBodyLimit: errorBodyLimit))
        }
    }

    private func execute(_ request: HTTPRequest, handling: ResponseBodyHandling) throws -> HTTPResponse {
        let displayURL = Self.redactedURL(request.url)
        let headerLines = try headerLines(for: request, displayURL: displayURL)
        if cancellation.isCancelled {
            throw cancelledError(request: request, displayURL: displayURL, detail: "not sent", bytesSent: 0, bytesReceived: 0)
        }
        let handle = try checkOut()
        defer { checkIn(handle) }
        let context = TransferContext(method: request.method, displayURL: displayURL, body: request.body, handling: handling,
                                      cancellation: cancellation)
        return try withExtendedLifetime(context) {
            // The handle points at the context, the header list and our callbacks until reset.
            defer { handle.reset() }
            try configure(handle, for: request, headerLines: headerLines, context: context)
            // The handler holds the handle, so a late call (after the transfer, even after the
            // handle went back to the pool) wakes a live multi handle: at worst a spurious wakeup.
            let failure = cancellation.whileRunning(onCancel: { handle.wakeup() }) { () -> CurlFailure? in
                do throws(CurlFailure) {
                    try handle.perform()
                    return nil
                } catch {
                    return error
                }
            }
            let bytesSent = handle.counter(CURLINFO_SIZE_UPLOAD_T)
            if context.wasCancelled || (failure != nil && cancellation.isCancelled) {
                // Aborted for the cancellation, or broken while it happened: either way the run
                // is over, and this is no network failure to retry.
                throw cancelledError(request: request, displayURL: displayURL, detail: "stopped",
                                     bytesSent: bytesSent, bytesReceived: context.bodyByteCount)
            }
            if let callbackError = context.callbackError { throw callbackError }
            if let failure {
                throw transportError(failure, request: request, displayURL: displayURL,
                                     bytesSent: bytesSent, bytesReceived: context.bodyByteCount)
            }
            let status = try handle.info(CURLINFO_RESPONSE_CODE)
            return HTTPResponse(
                status: status, headers: context.headers, body: context.collected,
                isBodyTruncated: context.isTruncated, bodyByteCount: context.bodyByteCount, bytesSent: bytesSent)
        }
    }

    // MARK: Pool

    private func checkOut() throws -> EasyHandle {
        if let idle = pool.withLock({ $0.popLast() }) { return idle }
        return try EasyHandle()
    }

    private func checkIn(_ handle: EasyHandle) {
        // A handle the pool does not keep is freed (its connections closed) here, after the
        // lock is released, when the caller's last reference goes.
        _ = pool.withLock { idle -> Bool in
            guard idle.count < configuration.maxIdleHandles else { return false }
            idle.append(handle)
            return true
        }
    }

    // MARK: Setting up a transfer

    /// The header lines for libcurl: the request's own (checked), then the ones that turn
    /// libcurl's defaults off.
    private func headerLines(for request: HTTPRequest, displayURL: String) throws -> [String] {
        var lines: [String] = []
        for (name, value) in request.headers {
            guard !name.isEmpty, name.utf8.allSatisfy(Self.isTokenByte) else {
                throw LifeboatError(.internalError, "\(request.method) \(displayURL): invalid header name '\(name)'")
            }
            guard !value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else {
                throw LifeboatError(.internalError, "\(request.method) \(displayURL): the value of header '\(name)' holds a line break or NUL")
            }
            // "Name:" would remove a header in libcurl; "Name;" sends it with an empty value.
            lines.append(value.isEmpty ? "\(name);" : "\(name): \(value)")
        }
        if !request.headers.contains("Expect") {
            lines.append(request.expectContinue ? "Expect: 100-continue" : "Expect:")
        }
        if request.method == .post || (request.method == .delete && isBodySent(request)),
           !request.headers.contains("Content-Type") {
            lines.append("Content-Type:")  // no application/x-www-form-urlencoded
        }
        return lines
    }

    private func isBodySent(_ request: HTTPRequest) -> Bool {
        if case .none = request.body { return false }
        return true
    }

    /// RFC 9110 token characters, the only ones allowed in a field name.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    private func configure(_ handle: EasyHandle, for request: HTTPRequest, headerLines: [String], context: TransferContext) throws {
        let config = configuration
        try handle.setErrorBuffer()
        try handle.set(CURLOPT_URL, request.url)
        try handle.set(CURLOPT_PROTOCOLS_STR, "http,https")
        try handle.set(CURLOPT_NOSIGNAL, true)  // required with threads; no SIGALRM for timeouts
        try handle.set(CURLOPT_FOLLOWLOCATION, false)
        // The path as given: S3 keys may hold `.` and `..` segments (`a/../b` is its own key),
        // which libcurl would otherwise squash into another key's path.
        try handle.set(CURLOPT_PATH_AS_IS, true)
        try handle.set(CURLOPT_USERAGENT, config.userAgent)
        try handle.set(CURLOPT_TCP_KEEPALIVE, true)
        // Larger upload pieces, fewer read callbacks. (Not CURLOPT_BUFFERSIZE for downloads:
        // libcurl 7.88 refuses to change it on a handle whose last transfer failed to resolve
        // the host name, which would make a reused handle fail every later request.)
        try handle.set(CURLOPT_UPLOAD_BUFFERSIZE, 256 << 10)

        // Timeouts. 0 means "none" to libcurl, so a positive duration is at least 1 ms.
        try handle.set(CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(config.connectTimeout))
        if config.lowSpeedLimit > 0 {
            try handle.set(CURLOPT_LOW_SPEED_LIMIT, config.lowSpeedLimit)
            try handle.set(CURLOPT_LOW_SPEED_TIME, Self.wholeSeconds(config.lowSpeedTime))
        }
        if let timeout = request.timeout ?? config.timeout {
            try handle.set(CURLOPT_TIMEOUT_MS, Self.milliseconds(timeout))
        }

        // TLS.
        try handle.set(CURLOPT_SSL_VERIFYPEER, config.verifyTLS)
        try handle.set(CURLOPT_SSL_VERIFYHOST, config.verifyTLS ? 2 : 0)
        if let caBundle, Self.isHTTPS(request.url) {
            try handle.set(CURLOPT_CAINFO, caBundle.path)
        }

        // Headers.
        let list = CurlHeaderList()
        for line in headerLines { try list.append(line) }
        try handle.setHeaders(list)

        // Method and body.
        let length = request.body.length
        guard length >= 0 else {
            throw LifeboatError(.internalError, "\(request.method) \(context.displayURL): the body length \(length) is negative")
        }
        switch request.method {
        case .get, .head:
            guard !isBodySent(request) else {
                throw LifeboatError(.internalError, "\(request.method) \(context.displayURL): a \(request.method) request cannot have a body")
            }
            if request.method == .head {
                try handle.set(CURLOPT_NOBODY, true)
            } else {
                try handle.set(CURLOPT_HTTPGET, true)
            }
        case .put:
            try handle.set(CURLOPT_UPLOAD, true)
            try handle.set(CURLOPT_INFILESIZE_LARGE, offset: length)
        case .post:
            try handle.set(CURLOPT_POST, true)
            try handle.set(CURLOPT_POSTFIELDSIZE_LARGE, offset: length)
        case .delete:
            if isBodySent(request) {
                try handle.set(CURLOPT_POST, true)
                try handle.set(CURLOPT_POSTFIELDSIZE_LARGE, offset: length)
            } else {
                try handle.set(CURLOPT_HTTPGET, true)
            }
            try handle.set(CURLOPT_CUSTOMREQUEST, "DELETE")
        }

        // Callbacks. Always our read function: libcurl's default one reads standard input.
        let opaque = context.opaque
        try handle.set(CURLOPT_READDATA, pointer: opaque)
        try handle.set(CURLOPT_READFUNCTION, callback: { buffer, size, count, userdata in
            guard let context = TransferContext.from(userdata), let buffer else { return Int(CURL_READFUNC_ABORT) }
            return context.read(into: UnsafeMutableRawBufferPointer(start: buffer, count: size * count))
        })
        try handle.set(CURLOPT_SEEKDATA, pointer: opaque)
        try handle.set(CURLOPT_SEEKFUNCTION, seekCallback: { userdata, offset, origin in
            guard let context = TransferContext.from(userdata) else { return CURL_SEEKFUNC_FAIL }
            return context.seek(to: Int64(offset), origin: origin)
        })
        try handle.set(CURLOPT_HEADERDATA, pointer: opaque)
        try handle.set(CURLOPT_HEADERFUNCTION, callback: { buffer, size, count, userdata in
            let total = size * count
            guard let context = TransferContext.from(userdata) else { return 0 }
            context.header(UnsafeRawBufferPointer(start: buffer, count: total))
            return total
        })
        try handle.set(CURLOPT_WRITEDATA, pointer: opaque)
        try handle.set(CURLOPT_WRITEFUNCTION, callback: { buffer, size, count, userdata in
            let total = size * count
            guard let context = TransferContext.from(userdata) else { return 0 }
            // Any count other than `total` makes libcurl stop with CURLE_WRITE_ERROR.
            return context.receive(UnsafeRawBufferPointer(start: buffer, count: total)) ? total : Int(CURL_WRITEFUNC_ERROR)
        })
        // Progress: how a cancellation aborts the transfer (any non-zero result does).
        try handle.set(CURLOPT_NOPROGRESS, false)
        try handle.set(CURLOPT_XFERINFODATA, pointer: opaque)
        try handle.set(CURLOPT_XFERINFOFUNCTION, xferinfoCallback: { userdata, _, _, _, _ in
            guard let context = TransferContext.from(userdata) else { return 1 }
            return context.shouldContinue() ? 0 : 1
        })
    }

    private static func isHTTPS(_ url: String) -> Bool {
        url.utf8.count >= 8 && url.prefix(8).lowercased() == "https://"
    }

    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, duration > .zero else { return 1 }
        let millis = seconds.multipliedReportingOverflow(by: 1000)
        guard !millis.overflow else { return Int.max }
        return max(1, Int(millis.partialValue) + Int((attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000))
    }

    static func wholeSeconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        guard duration > .zero else { return 1 }
        return max(1, Int(seconds) + (attoseconds > 0 ? 1 : 0))
    }

    // MARK: Errors

    /// `LifeboatError.cancelled(reason)`, with what the request had done as its underlying error.
    private func cancelledError(request: HTTPRequest, displayURL: String, detail: String,
                                bytesSent: Int64, bytesReceived: Int64) -> LifeboatError {
        let reason = cancellation.reason ?? "cancelled"
        var error = LifeboatError.cancelled(reason)
        error.underlying = HTTPTransportError(
            kind: .cancelled, curlCode: 0, curlCodeName: "none", method: request.method, url: displayURL,
            detail: "\(detail): the run was cancelled (\(reason))", bytesSent: bytesSent, bytesReceived: bytesReceived)
        return error
    }

    private func transportError(_ failure: CurlFailure, request: HTTPRequest, displayURL: String,
                                bytesSent: Int64, bytesReceived: Int64) -> LifeboatError {
        let kind = HTTPTransportError.kind(of: failure.code)
        let transport = HTTPTransportError(
            kind: kind, curlCode: failure.number, curlCodeName: failure.name,
            method: request.method, url: displayURL, detail: failure.text,
            bytesSent: bytesSent, bytesReceived: bytesReceived)
        let summary: String
        let hint: String?
        switch kind {
        case .connectFailed:
            summary = "unable to connect"
            hint = "Check that the endpoint's host and port are right, that the server is running, and the proxy settings (https_proxy, no_proxy)."
        case .dns:
            summary = "unable to resolve the host name"
            hint = "Check the endpoint's host name and this machine's DNS settings (and the proxy's name, if one is set)."
        case .timeout:
            summary = "timed out"
            hint = "The server or the network is too slow or not reachable; check connectivity and the proxy settings (https_proxy, no_proxy)."
        case .connectionReset:
            summary = "the connection broke"
            hint = "The server or something on the way closed the connection; the request can be retried."
        case .tlsHandshake:
            summary = "the TLS handshake failed"
            hint = "Check that the endpoint speaks TLS on this port (or use http:// for a plain endpoint)."
        case .tlsCertificate:
            summary = "the server's TLS certificate could not be verified"
            hint = tlsCertificateHint(failure.code)
        case .aborted:
            summary = "the transfer was stopped"
            hint = nil
        case .cancelled:  // not made here (see cancelledError), but named all the same
            summary = "the transfer was cancelled"
            hint = nil
        case .responseTooLarge, .other:
            summary = "the request failed"
            hint = failure.code == CURLE_URL_MALFORMAT || failure.code == CURLE_UNSUPPORTED_PROTOCOL
                ? "Check the endpoint: it must be an http:// or https:// URL." : nil
        }
        return LifeboatError(
            .network, "\(request.method) \(displayURL): \(summary): \(failure.text) (\(failure.name), curl code \(failure.number))",
            hint: hint, underlying: transport)
    }

    private func tlsCertificateHint(_ code: CURLcode) -> String {
        if code == CURLE_SSL_CACERT_BADFILE || code == CURLE_SSL_CRL_BADFILE {
            let which = caBundle.map { "The CA bundle \($0)" } ?? "The CA bundle"
            return "\(which) cannot be read as PEM certificates: fix the repository's ca_bundle or the AWS_CA_BUNDLE environment variable."
        }
        let inUse = caBundle.map { " (the CA bundle in use is \($0))" } ?? " (the system's CA certificates are in use)"
        return "The server's certificate is not signed by a trusted CA\(inUse): if the endpoint uses a private CA, set ca_bundle in the repository's configuration, or AWS_CA_BUNDLE, to a PEM file holding that CA's certificate (insecure_skip_tls_verify: true turns the check off, and every run warns of it)."
    }
}
