import CCurl
import LifeboatCore

extension LifeboatError.Code {
    /// The network failed under an HTTP request: no connection, no (complete) response.
    /// An HTTP error status is not this: it is a response, judged by the caller.
    public static let network = LifeboatError.Code("network", badInput: false)
}

/// Why an HTTP request got no (complete) response, in terms retry logic can switch on.
///
/// It travels as the `underlying` error of a `LifeboatError` with code `.network`; read it
/// with `LifeboatError.transportError`. A transfer stopped because the run was cancelled is
/// a `LifeboatError` with code `.cancelled` instead, whose `underlying` is one of these of
/// kind `.cancelled` (what the request had moved when it was stopped).
public struct HTTPTransportError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public enum Kind: String, Sendable, Hashable, CustomStringConvertible {
        /// The TCP connection could not be made (refused, unreachable).
        case connectFailed = "connect-failed"
        /// The host (or proxy) name did not resolve.
        case dns
        /// A timeout: connecting, the transfer slower than the low-speed limit for too long,
        /// or the overall limit.
        case timeout
        /// The connection broke: reset, a send or receive error, nothing or only part of a
        /// response arrived.
        case connectionReset = "connection-reset"
        /// The TLS handshake failed (other than by the certificate check).
        case tlsHandshake = "tls-handshake"
        /// The server's certificate is not trusted, or the CA bundle cannot be read.
        case tlsCertificate = "tls-certificate"
        /// A body callback stopped the transfer without an error of its own.
        case aborted
        /// The client's `Cancellation` was cancelled: the transfer was stopped, or never
        /// started. Never retried.
        case cancelled
        /// The response body is larger than the caller's limit for a body held in memory.
        case responseTooLarge = "response-too-large"
        /// Anything else (a malformed URL, an unsupported protocol, a protocol error).
        case other

        public var description: String { rawValue }
    }

    public let kind: Kind
    /// The CURLcode number (0 when the failure is Lifeboat's own, like `.responseTooLarge`).
    public let curlCode: Int
    /// The CURLcode's name ("CURLE_COULDNT_CONNECT"), or "none".
    public let curlCodeName: String
    public let method: HTTPMethod
    /// The request URL with credentials and signatures removed (see `HTTPClient.redactedURL`).
    public let url: String
    /// libcurl's own text for the failure (its error buffer), read as soon as it failed.
    public let detail: String
    /// Bytes of the request body sent before the failure.
    public let bytesSent: Int64
    /// Bytes of the response body received before the failure.
    public let bytesReceived: Int64

    public init(kind: Kind, curlCode: Int, curlCodeName: String, method: HTTPMethod, url: String, detail: String,
                bytesSent: Int64 = 0, bytesReceived: Int64 = 0) {
        self.kind = kind
        self.curlCode = curlCode
        self.curlCodeName = curlCodeName
        self.method = method
        self.url = url
        self.detail = detail
        self.bytesSent = bytesSent
        self.bytesReceived = bytesReceived
    }

    /// Whether sending the request again may succeed: connection failures (including a
    /// name that did not resolve, often a passing resolver failure), broken connections,
    /// timeouts and a failed TLS handshake. Not a certificate that is not trusted, not a
    /// transfer stopped by Lifeboat's own callbacks or by a cancellation, not a response over
    /// the size limit.
    ///
    /// A retry also needs a body that can be sent again: `HTTPRequest.Body.isReplayable`.
    public var isRetryable: Bool {
        switch kind {
        case .connectFailed, .dns, .timeout, .connectionReset, .tlsHandshake: true
        case .tlsCertificate, .aborted, .cancelled, .responseTooLarge, .other: false
        }
    }

    public var description: String {
        "\(method) \(url): \(kind) (\(curlCodeName), curl code \(curlCode)): \(detail)"
    }

    /// The kind of a libcurl failure code.
    static func kind(of code: CURLcode) -> Kind {
        switch code {
        case CURLE_COULDNT_CONNECT: .connectFailed
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: .dns
        case CURLE_OPERATION_TIMEDOUT: .timeout
        case CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_HTTP2,
             CURLE_HTTP2_STREAM, CURLE_SEND_FAIL_REWIND:
            .connectionReset
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR,
             CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CRL_BADFILE:
            .tlsCertificate
        case CURLE_SSL_CONNECT_ERROR: .tlsHandshake
        case CURLE_ABORTED_BY_CALLBACK, CURLE_READ_ERROR, CURLE_WRITE_ERROR: .aborted
        default: .other
        }
    }
}

extension LifeboatError {
    /// The transport failure behind this error, when it is one (code `.network`).
    public var transportError: HTTPTransportError? {
        underlying as? HTTPTransportError
    }
}

extension HTTPClient {
    /// Query parameters whose values are secrets (presigned URLs carry them).
    static let secretQueryParameters: Set<String> = ["x-amz-signature", "x-amz-credential", "x-amz-security-token"]

    /// `url` fit for messages and logs: the values of the `X-Amz-Signature`,
    /// `X-Amz-Credential` and `X-Amz-Security-Token` query parameters (any case) and any
    /// `user:password@` part are replaced by `REDACTED`; everything else is kept.
    public static func redactedURL(_ url: String) -> String {
        var rest = Substring(url)
        var fragment: Substring = ""
        if let hash = rest.firstIndex(of: "#") {
            fragment = rest[hash...]
            rest = rest[..<hash]
        }
        var query: Substring?
        if let question = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: question)...]
            rest = rest[..<question]
        }
        var result = String(rest)
        // user:password@ in the authority.
        if let schemeEnd = result.range(of: "://") {
            let authorityStart = schemeEnd.upperBound
            let authorityEnd = result[authorityStart...].firstIndex(of: "/") ?? result.endIndex
            if let at = result[authorityStart..<authorityEnd].lastIndex(of: "@") {
                result.replaceSubrange(authorityStart..<at, with: "REDACTED")
            }
        }
        if let query {
            let parameters = query.split(separator: "&", omittingEmptySubsequences: false).map { parameter in
                let name = parameter.prefix { $0 != "=" }
                guard secretQueryParameters.contains(name.lowercased()) else { return String(parameter) }
                return "\(name)=REDACTED"
            }
            result += "?" + parameters.joined(separator: "&")
        }
        return result + fragment
    }
}

/// A failed libcurl call: its code and the error text read from the handle's error buffer
/// at once (curl's generic text for the code when the buffer was empty).
struct CurlFailure: Error {
    let code: CURLcode
    let text: String

    var name: String { String(cString: lifeboat_curl_code_name(code)) }
    var number: Int { Int(code.rawValue) }
}
