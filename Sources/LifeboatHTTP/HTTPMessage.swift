/// An HTTP request method. Only the ones the S3 client needs.
public enum HTTPMethod: String, Sendable, Hashable, CustomStringConvertible {
    case get = "GET"
    case put = "PUT"
    case post = "POST"
    case head = "HEAD"
    case delete = "DELETE"

    public var description: String { rawValue }
}

/// HTTP header fields as ordered name/value pairs.
///
/// Order is kept and a name may occur several times (a response may repeat a header; a
/// request sends its headers in the order given). Lookups by name are ASCII
/// case-insensitive, as HTTP field names are.
public struct HTTPHeaders: Sendable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    public typealias Element = (name: String, value: String)

    /// The fields, in order.
    public private(set) var entries: [Element]

    /// No fields.
    public init() { entries = [] }

    /// The given fields, in order.
    public init(_ entries: [(String, String)]) {
        self.entries = entries.map { (name: $0.0, value: $0.1) }
    }

    /// `["x-amz-date": "…", "x-amz-content-sha256": "…"]`, in the literal's order.
    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }

    /// Adds a field after the others (keeping any earlier field of the same name).
    public mutating func append(_ name: String, _ value: String) {
        entries.append((name: name, value: value))
    }

    /// Replaces every field named `name` with one field holding `value`, at the position of
    /// the first one (or at the end).
    public mutating func set(_ name: String, _ value: String) {
        if let first = entries.firstIndex(where: { Self.sameName($0.name, name) }) {
            entries[first].value = value
            var index = entries.index(after: first)
            while index < entries.endIndex {
                if Self.sameName(entries[index].name, name) { entries.remove(at: index) } else { index += 1 }
            }
        } else {
            append(name, value)
        }
    }

    /// Removes every field named `name`.
    public mutating func remove(_ name: String) {
        entries.removeAll { Self.sameName($0.name, name) }
    }

    /// Appends a folded continuation line to the last field's value (response parsing).
    mutating func continueLastValue(_ text: String) {
        guard !entries.isEmpty else { return }
        entries[entries.count - 1].value += " " + text
    }

    /// The value of the first field named `name` (case-insensitive), or nil.
    public subscript(name: String) -> String? {
        entries.first { Self.sameName($0.name, name) }?.value
    }

    /// The values of every field named `name` (case-insensitive), in order.
    public func values(for name: String) -> [String] {
        entries.filter { Self.sameName($0.name, name) }.map(\.value)
    }

    /// Whether some field is named `name` (case-insensitive).
    public func contains(_ name: String) -> Bool {
        entries.contains { Self.sameName($0.name, name) }
    }

    /// The number of fields.
    public var count: Int { entries.count }

    public func makeIterator() -> IndexingIterator<[Element]> { entries.makeIterator() }

    /// `Name: value` lines, for diagnostics. Say which headers may hold secrets before logging.
    public var description: String {
        entries.map { "\($0.name): \($0.value)" }.joined(separator: "\n")
    }

    /// ASCII case-insensitive comparison of field names.
    static func sameName(_ a: String, _ b: String) -> Bool {
        let x = a.utf8, y = b.utf8
        guard x.count == y.count else { return false }
        return zip(x, y).allSatisfy { lowerASCII($0) == lowerASCII($1) }
    }

    private static func lowerASCII(_ byte: UInt8) -> UInt8 {
        (byte >= 0x41 && byte <= 0x5A) ? byte | 0x20 : byte
    }
}

/// A request body whose bytes are produced while the request is sent, so that a large body
/// (a multipart part, a whole object) never has to be in memory at once.
///
/// `read` fills as much of the buffer it is given as it likes (at least one byte) and returns
/// how many bytes it wrote; it is called until `length` bytes have been produced, each call
/// with a buffer no larger than what remains. Returning 0 before that is an error (the body
/// ended early); an error it throws aborts the transfer and is rethrown by `perform`.
///
/// `rewind` starts the body over from its first byte. libcurl needs it when it must send the
/// body again: a kept-alive connection that turns out to be dead when the request is sent on
/// it is retried on a fresh one. Without `rewind` such a request fails, and a caller must not
/// retry the request with the same (partly consumed) body either: see
/// `HTTPRequest.Body.isReplayable`.
///
/// Not `Sendable`: it is used on the thread that calls `perform`, and only there.
public struct HTTPBodyStream {
    /// The exact number of bytes `read` produces; sent as `Content-Length`.
    public var length: Int64
    /// Produces the next bytes; see the type's documentation.
    public var read: (UnsafeMutableRawBufferPointer) throws -> Int
    /// Starts over from the first byte, or nil when the source cannot do that.
    public var rewind: (() throws -> Void)?

    public init(
        length: Int64, rewind: (() throws -> Void)? = nil,
        read: @escaping (UnsafeMutableRawBufferPointer) throws -> Int
    ) {
        self.length = length
        self.read = read
        self.rewind = rewind
    }
}

/// One HTTP request: method, URL, headers and body.
///
/// libcurl adds `Host`, `Content-Length` (from the body), `User-Agent` (from the client's
/// configuration) and `Accept: */*`. A header given here replaces libcurl's own of the same
/// name; a header whose value is empty is sent with an empty value. `Expect: 100-continue` is
/// not sent unless `expectContinue` is set or the header is given; POST requests get no
/// default `Content-Type` (libcurl would send a form type) unless the header is given.
///
/// Not `Sendable` (a streamed body holds closures): build it on the thread that sends it.
public struct HTTPRequest {
    /// What is sent after the headers.
    public enum Body {
        /// No body. PUT and POST send `Content-Length: 0`.
        case none
        /// These bytes.
        case bytes([UInt8])
        /// Bytes produced while sending; see `HTTPBodyStream`.
        case stream(HTTPBodyStream)

        /// The number of bytes sent.
        public var length: Int64 {
            switch self {
            case .none: 0
            case .bytes(let bytes): Int64(bytes.count)
            case .stream(let stream): stream.length
            }
        }

        /// Whether the body can be sent again after a failed attempt: true for `.none` and
        /// `.bytes`, and for a stream that has a `rewind` closure. A retry layer must not
        /// resend a request whose body is not replayable.
        public var isReplayable: Bool {
            switch self {
            case .none, .bytes: true
            case .stream(let stream): stream.rewind != nil
            }
        }
    }

    public var method: HTTPMethod
    /// An absolute `http://` or `https://` URL, already percent-encoded as it is to be sent.
    public var url: String
    public var headers: HTTPHeaders
    /// Only PUT, POST and DELETE may have a body.
    public var body: Body
    /// A limit on the whole request, replacing the configuration's `timeout` when set.
    public var timeout: Duration?
    /// Send `Expect: 100-continue` and wait for the server's go-ahead before the body.
    public var expectContinue: Bool

    public init(
        _ method: HTTPMethod, _ url: String, headers: HTTPHeaders = HTTPHeaders(), body: Body = .none,
        timeout: Duration? = nil, expectContinue: Bool = false
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.expectContinue = expectContinue
    }
}

/// The response to an `HTTPRequest`, whatever its status: a 3xx, 4xx or 5xx is a response,
/// not an error (only transport failures throw).
public struct HTTPResponse: Sendable {
    /// The status code of the final response (after any `100 Continue`).
    public var status: Int
    /// The final response's header fields, in the order received.
    public var headers: HTTPHeaders
    /// The body held in memory: all of it when the body was collected; when it was streamed,
    /// empty for a 2xx (the sink had the bytes) and the error body otherwise.
    public var body: [UInt8]
    /// True when the body held in memory is only the first part of an error body that was
    /// longer than the limit (the rest was read and dropped).
    public var isBodyTruncated: Bool
    /// How many body bytes arrived in all: given to the sink, kept, or dropped.
    public var bodyByteCount: Int64
    /// How many bytes of the request body libcurl sent.
    public var bytesSent: Int64

    public init(status: Int, headers: HTTPHeaders, body: [UInt8], isBodyTruncated: Bool, bodyByteCount: Int64,
                bytesSent: Int64 = 0) {
        self.status = status
        self.headers = headers
        self.body = body
        self.isBodyTruncated = isBodyTruncated
        self.bodyByteCount = bodyByteCount
        self.bytesSent = bytesSent
    }

    /// Whether the status is 2xx.
    public var isSuccess: Bool { (200..<300).contains(status) }

    /// The body held in memory, decoded as UTF-8 (invalid bytes replaced).
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}
