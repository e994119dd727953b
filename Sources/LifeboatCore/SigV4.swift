import Crypto
import Foundation

/// AWS Signature Version 4: the pure building blocks (encoding, hashing, dates, the canonical
/// request) that `SigV4Signer` puts together.
///
/// Everything here is a function of its arguments: no I/O, and the time is always passed in.
/// The canonicalisation functions are public so that a `SignatureDoesNotMatch` reply, which
/// carries the server's canonical request, can be compared with ours.
public enum SigV4 {
    /// The algorithm name in the `Authorization` header, the string to sign and presigned URLs.
    public static let algorithm = "AWS4-HMAC-SHA256"
    /// The algorithm line of a chunk's string to sign in an `aws-chunked` upload.
    public static let chunkAlgorithm = "AWS4-HMAC-SHA256-PAYLOAD"
    /// Hex SHA-256 of no bytes at all.
    public static let emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    /// The payload hash that leaves the body unsigned (presigned URLs, TLS-protected uploads).
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    /// The payload hash of an `aws-chunked` upload whose chunks are signed one by one.
    public static let streamingPayload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    /// The longest validity AWS accepts for a presigned URL: seven days, in seconds.
    public static let maximumPresignExpiry = 604_800
    /// Header names (lowercase) that are never signed: `authorization` carries the signature,
    /// and the others are commonly added or rewritten by HTTP stacks and proxies after signing.
    public static let unsignedHeaderNames: Set<String> = ["authorization", "user-agent", "expect", "x-amzn-trace-id"]

    // MARK: - Encoding

    /// Percent-encodes `text` the SigV4 way: every UTF-8 byte except the RFC 3986 unreserved
    /// characters (`A–Z a–z 0–9 - . _ ~`) becomes `%XX` with upper-case hex. `/` is kept when
    /// `encodeSlash` is false (paths) and encoded when true (query names and values).
    /// A space is `%20`, never `+`.
    public static func uriEncode(_ text: String, encodeSlash: Bool = true) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if isUnreserved(byte) || (byte == UInt8(ascii: "/") && !encodeSlash) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(upperHexDigits[Int(byte >> 4)])
                out.append(upperHexDigits[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Lower-case hex of some bytes (digests, MACs, signatures).
    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(lowerHexDigits[Int(byte >> 4)])
            out.append(lowerHexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Lower-case hex SHA-256 of the bytes.
    public static func sha256Hex(_ bytes: UnsafeRawBufferPointer) -> String {
        var hasher = SHA256()
        hasher.update(bufferPointer: bytes)
        return hex(hasher.finalize())
    }

    /// Lower-case hex SHA-256 of the bytes.
    public static func sha256Hex(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { sha256Hex($0) }
    }

    /// Lower-case hex SHA-256 of the bytes.
    public static func sha256Hex(_ data: Data) -> String {
        data.withUnsafeBytes { sha256Hex($0) }
    }

    /// Lower-case hex SHA-256 of the UTF-8 bytes of `text`.
    public static func sha256Hex(_ text: String) -> String {
        sha256Hex(Array(text.utf8))
    }

    // MARK: - Dates

    /// `YYYYMMDD'T'HHMMSS'Z'` in UTC, as in `x-amz-date` and `X-Amz-Date`.
    /// Fractions of a second are dropped.
    public static func amzDate(_ date: Date) -> String {
        let parts = utcParts(date)
        return pad(parts.year, 4) + pad(parts.month, 2) + pad(parts.day, 2)
            + "T" + pad(parts.hour, 2) + pad(parts.minute, 2) + pad(parts.second, 2) + "Z"
    }

    /// `YYYYMMDD` in UTC: the day in the credential scope, and the day the signing key is for.
    public static func dateStamp(_ date: Date) -> String {
        let parts = utcParts(date)
        return pad(parts.year, 4) + pad(parts.month, 2) + pad(parts.day, 2)
    }

    /// `YYYYMMDD/region/service/aws4_request`.
    public static func credentialScope(dateStamp: String, region: String, service: String) -> String {
        "\(dateStamp)/\(region)/\(service)/aws4_request"
    }

    // MARK: - Canonical request

    /// The canonical URI of a raw (not percent-encoded) path.
    ///
    /// S3 (`normalize` and `doubleEncode` false): each segment is encoded once, `/` kept, and
    /// nothing else changes: `/a/../b`, `//` and `/./` are signed as written, because S3 object
    /// keys may contain them. Other services remove dot segments and empty segments first
    /// (`normalize`), and encode the already encoded path a second time (`doubleEncode`).
    public static func canonicalURI(path: String, normalize: Bool, doubleEncode: Bool) -> String {
        let absolute = path.hasPrefix("/") ? path : "/" + path
        let normalized = normalize ? normalizedPath(absolute) : absolute
        let once = uriEncode(normalized, encodeSlash: false)
        return doubleEncode ? uriEncode(once, encodeSlash: false) : once
    }

    /// Removes `.` and `..` segments and empty segments (`//`) from an absolute path, keeping a
    /// trailing `/` when the path ends with one (or with a dot segment) and is not the root.
    public static func normalizedPath(_ path: String) -> String {
        let rawSegments = path.split(separator: "/", omittingEmptySubsequences: false)
        var kept: [Substring] = []
        for segment in rawSegments {
            switch segment {
            case "", ".": continue
            case "..": _ = kept.popLast()
            default: kept.append(segment)
            }
        }
        guard !kept.isEmpty else { return "/" }
        let last = rawSegments.last ?? ""
        let trailingSlash = last.isEmpty || last == "." || last == ".."
        return "/" + kept.joined(separator: "/") + (trailingSlash ? "/" : "")
    }

    /// The canonical query string: names and values encoded with `uriEncode` (slash included),
    /// sorted by encoded name and then encoded value, joined as `name=value` with `&`.
    /// An item without a value (`?lifecycle`) is `lifecycle=`.
    public static func canonicalQuery(_ items: [SigV4Request.QueryItem]) -> String {
        let encoded: [(name: String, value: String)] = items.map { (uriEncode($0.name), uriEncode($0.value)) }
        let sorted = encoded.sorted { $0.name == $1.name ? $0.value < $1.value : $0.name < $1.name }
        return sorted.map { $0.name + "=" + $0.value }.joined(separator: "&")
    }

    /// The canonical headers block (each `name:value` followed by a newline) and the signed
    /// headers list (`a;b;c`).
    ///
    /// Names are lower-cased and sorted; headers of the same name are merged in the order given,
    /// their values joined with `,`; each value is trimmed and its runs of whitespace collapsed to
    /// one space. Names in `unsignedHeaderNames` are left out.
    public static func canonicalHeaders(_ headers: [SigV4Request.Header]) -> (canonical: String, signed: String) {
        var merged: [String: [String]] = [:]
        for header in headers {
            let name = header.name.lowercased()
            guard !unsignedHeaderNames.contains(name) else { continue }
            merged[name, default: []].append(canonicalHeaderValue(header.value))
        }
        let names = merged.keys.sorted()
        let canonical = names.map { "\($0):\(merged[$0, default: []].joined(separator: ","))\n" }.joined()
        return (canonical, names.joined(separator: ";"))
    }

    /// A header value as signed: leading and trailing whitespace removed, each inner run of
    /// spaces, tabs or line breaks (folded header lines) replaced by a single space.
    public static func canonicalHeaderValue(_ value: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(value.utf8.count)
        var pendingSpace = false
        for byte in value.utf8 {
            if isWhitespace(byte) {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(UInt8(ascii: " ")) }
                pendingSpace = false
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The canonical request: method, canonical URI, canonical query, canonical headers, a blank
    /// line, the signed headers and the payload hash, separated by newlines.
    public static func canonicalRequest(
        method: String, canonicalURI: String, canonicalQuery: String,
        canonicalHeaders: String, signedHeaders: String, payloadHash: String
    ) -> String {
        [method, canonicalURI, canonicalQuery, canonicalHeaders, signedHeaders, payloadHash]
            .joined(separator: "\n")
    }

    /// The string to sign for a request: algorithm, `x-amz-date`, credential scope and the hex
    /// SHA-256 of the canonical request.
    public static func stringToSign(amzDate: String, scope: String, canonicalRequest: String) -> String {
        [algorithm, amzDate, scope, sha256Hex(canonicalRequest)].joined(separator: "\n")
    }

    /// The string to sign for one chunk of an `aws-chunked` upload: the chunk algorithm,
    /// `x-amz-date`, credential scope, the previous signature (the seed signature for the first
    /// chunk), the hash of nothing, and the hex SHA-256 of the chunk's data.
    public static func chunkStringToSign(amzDate: String, scope: String, previousSignature: String, chunkSHA256: String) -> String {
        [chunkAlgorithm, amzDate, scope, previousSignature, emptySHA256, chunkSHA256].joined(separator: "\n")
    }

    // MARK: - Keys and signatures

    /// Derives the signing key: HMAC chain over the day, region, service and `aws4_request`,
    /// starting from `"AWS4" + secret`. Four HMACs; `SigV4Signer` caches the result per day.
    public static func deriveSigningKey(secretAccessKey: String, dateStamp: String, region: String, service: String) -> SymmetricKey {
        let secret = SymmetricKey(data: Data(("AWS4" + secretAccessKey).utf8))
        let dateKey = hmac(dateStamp, key: secret)
        let regionKey = hmac(region, key: dateKey)
        let serviceKey = hmac(service, key: regionKey)
        return hmac("aws4_request", key: serviceKey)
    }

    /// Lower-case hex HMAC-SHA256 of `stringToSign` under the signing key.
    public static func signature(of stringToSign: String, key: SymmetricKey) -> String {
        hex(HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: key))
    }

    // MARK: - aws-chunked framing

    /// The line that starts a chunk: `hex(size);chunk-signature=SIG\r\n`.
    public static func chunkHeader(size: Int, signature: String) -> String {
        String(size, radix: 16) + ";chunk-signature=" + signature + "\r\n"
    }

    /// One framed chunk: the chunk header, the data and `\r\n`. The final chunk has no data.
    public static func encodeChunk(_ data: UnsafeRawBufferPointer, signature: String) -> [UInt8] {
        var out = Array(chunkHeader(size: data.count, signature: signature).utf8)
        out.reserveCapacity(out.count + data.count + 2)
        out.append(contentsOf: data)
        out.append(contentsOf: [UInt8(ascii: "\r"), UInt8(ascii: "\n")])
        return out
    }

    /// The framed length of one chunk holding `size` bytes (a signature is 64 hex digits).
    public static func encodedChunkLength(size: Int) -> Int {
        String(size, radix: 16).utf8.count + ";chunk-signature=".utf8.count + 64 + 2 + size + 2
    }

    /// The `Content-Length` of an `aws-chunked` body carrying `payloadLength` bytes (the
    /// `x-amz-decoded-content-length`) in chunks of `chunkSize`, the last one shorter, followed
    /// by the final empty chunk. 66560 bytes in chunks of 65536 frame to 66824.
    public static func chunkedContentLength(payloadLength: Int, chunkSize: Int) -> Int {
        precondition(chunkSize > 0 && payloadLength >= 0, "chunk size must be positive and the payload length not negative")
        let fullChunks = payloadLength / chunkSize
        let remainder = payloadLength % chunkSize
        return fullChunks * encodedChunkLength(size: chunkSize)
            + (remainder > 0 ? encodedChunkLength(size: remainder) : 0)
            + encodedChunkLength(size: 0)
    }

    // MARK: - Private

    private static let upperHexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)
    private static let lowerHexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    private static let utcCalendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .gmt
        return calendar
    }()

    private static func utcParts(_ date: Date) -> (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        let parts = utcCalendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return (parts.year ?? 0, parts.month ?? 0, parts.day ?? 0, parts.hour ?? 0, parts.minute ?? 0, parts.second ?? 0)
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n")
    }

    private static func hmac(_ text: String, key: SymmetricKey) -> SymmetricKey {
        SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: key))
    }
}
