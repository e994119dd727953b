import Foundation

/// An HTTP request as SigV4 sees it.
///
/// `path` and the query items are **raw, not percent-encoded**: the object key as the user
/// named it (`/bucket/my key$.txt`, `/bucket/100%.txt`). The signer encodes them exactly once
/// (RFC 3986 unreserved characters and `/` kept), which is also how they must go on the wire:
/// use `encodedPath` and `encodedQuery` to build the URL, so the request sent is the request
/// signed. Never pass an already encoded path, or `%` is encoded again (`%2520`).
///
/// Headers keep their order and their case; several headers may share a name. The request
/// must carry a `Host` header, since SigV4 signs it.
public struct SigV4Request: Sendable, Equatable {
    /// One header line. Duplicate names are allowed; SigV4 joins their values with `,`.
    public struct Header: Sendable, Equatable {
        public var name: String
        public var value: String

        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    /// One query parameter, raw (not encoded). `?lifecycle` is the item `lifecycle` with an
    /// empty value.
    public struct QueryItem: Sendable, Equatable {
        public var name: String
        public var value: String

        public init(_ name: String, _ value: String = "") {
            self.name = name
            self.value = value
        }
    }

    /// The last line of the canonical request: what the body is declared to be.
    public enum Payload: Sendable, Equatable {
        /// Lower-case hex SHA-256 of the whole body.
        case sha256(String)
        /// `UNSIGNED-PAYLOAD`: the body is not covered by the signature.
        case unsigned
        /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: an `aws-chunked` body, each chunk signed
        /// (see `SigV4ChunkEncoder`).
        case streaming

        /// The hash of an empty body.
        public static let empty = Payload.sha256(SigV4.emptySHA256)

        /// The payload of a body held in memory.
        public static func hashing(_ body: Data) -> Payload { .sha256(SigV4.sha256Hex(body)) }

        /// The payload of a body held in memory.
        public static func hashing(_ body: UnsafeRawBufferPointer) -> Payload { .sha256(SigV4.sha256Hex(body)) }

        /// The value in the canonical request and in `x-amz-content-sha256`.
        public var value: String {
            switch self {
            case .sha256(let hex): hex
            case .unsigned: SigV4.unsignedPayload
            case .streaming: SigV4.streamingPayload
            }
        }
    }

    /// The HTTP method, as sent (`GET`, `PUT`, …).
    public var method: String
    /// The raw, unencoded path, starting with `/` (`/bucket/my key$.txt`).
    public var path: String
    /// Raw query items, in wire order (the canonical form sorts them).
    public var query: [QueryItem]
    /// Header lines in order, names in any case.
    public var headers: [Header]
    /// The payload hash to sign.
    public var payload: Payload

    public init(method: String, path: String, query: [QueryItem] = [], headers: [Header] = [], payload: Payload = .empty) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.payload = payload
    }

    /// The values of every header called `name` (any case), in order.
    public func headerValues(named name: String) -> [String] {
        let wanted = name.lowercased()
        return headers.filter { $0.name.lowercased() == wanted }.map(\.value)
    }

    /// The value of the header called `name` (any case); several are joined with `,`.
    public func header(named name: String) -> String? {
        let values = headerValues(named: name)
        return values.isEmpty ? nil : values.joined(separator: ",")
    }

    /// Removes every header whose name (any case) is in `names` (lower case).
    public mutating func removeHeaders(named names: Set<String>) {
        headers.removeAll { names.contains($0.name.lowercased()) }
    }

    /// The path as it goes on the wire: each segment encoded once, `/` kept, nothing normalised.
    public var encodedPath: String {
        SigV4.uriEncode(path.hasPrefix("/") ? path : "/" + path, encodeSlash: false)
    }

    /// The query as it goes on the wire, in the order given: `name=value` pairs (an empty value
    /// gives `name=`) joined with `&`, each part encoded like the canonical query.
    public var encodedQuery: String {
        query.map { "\(SigV4.uriEncode($0.name))=\(SigV4.uriEncode($0.value))" }.joined(separator: "&")
    }
}

/// A request signed in the `Authorization` header, with the intermediate steps kept.
///
/// When S3 answers `SignatureDoesNotMatch` it sends its own canonical request and string to
/// sign: compare them with `canonicalRequest` and `stringToSign`.
public struct SignedRequest: Sendable, Equatable {
    /// The request to send: the input plus `X-Amz-Date`, `x-amz-content-sha256` (when the
    /// signer adds it), `X-Amz-Security-Token` (with a session token) and `Authorization`.
    public var request: SigV4Request
    /// The time the request was signed for.
    public var date: Date
    /// `YYYYMMDD'T'HHMMSS'Z'`.
    public var amzDate: String
    /// `YYYYMMDD/region/service/aws4_request`.
    public var credentialScope: String
    public var canonicalRequest: String
    public var stringToSign: String
    /// `host;x-amz-date;…`.
    public var signedHeaders: String
    /// Lower-case hex. For an `aws-chunked` upload this is the seed signature.
    public var signature: String
    /// The `Authorization` header value.
    public var authorization: String
}

/// A request signed in its query string (a presigned URL), with the intermediate steps kept.
public struct PresignedRequest: Sendable, Equatable {
    /// The request with `X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`,
    /// `X-Amz-Security-Token` (with a session token), `X-Amz-SignedHeaders` and, last,
    /// `X-Amz-Signature` appended to its query items.
    public var request: SigV4Request
    /// The time the URL was signed for; it is valid until `expires` seconds later.
    public var date: Date
    /// Validity in seconds.
    public var expires: Int
    public var canonicalRequest: String
    public var stringToSign: String
    public var signedHeaders: String
    /// Lower-case hex.
    public var signature: String

    /// All query items of the presigned request, the signature last.
    public var queryItems: [SigV4Request.QueryItem] { request.query }

    /// The presigned URL: `scheme://` + the `Host` header + encoded path + encoded query.
    /// Fails when the request has no `Host` header or the result is not a URL.
    public func url(scheme: String = "https") throws(LifeboatError) -> URL {
        guard let host = request.header(named: "host"), !host.isEmpty else {
            throw LifeboatError(.internalError, "cannot build a presigned URL for '\(request.path)': the request has no Host header")
        }
        let text = "\(scheme)://\(host)\(request.encodedPath)?\(request.encodedQuery)"
        guard let url = URL(string: text) else {
            throw LifeboatError(.internalError, "cannot build a presigned URL for '\(request.path)': '\(host)' does not form a valid URL")
        }
        return url
    }
}
