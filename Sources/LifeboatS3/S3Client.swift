import Crypto
import Foundation
import LifeboatCore
import LifeboatHTTP
import Logging
import Synchronization

/// How uploads ask the server to check their bytes. Whatever the choice, every request's
/// body is also signed with its SHA-256 (`x-amz-content-sha256`), which the server checks.
public enum S3Checksum: String, Sendable, CaseIterable {
    /// `x-amz-checksum-crc32c`, the default: CRC-32C, computed with the processor's CRC32
    /// instruction. A multipart upload declares it, so the server re-hashes each part with it
    /// at completion for the object's composite checksum — the cheapest algorithm for it to
    /// re-hash (moto completes 1 GiB in 3.1–3.3 s with CRC-32 against 3.8–5.1 s with SHA-256),
    /// and what the AWS SDKs also send (CRC-32 there). AWS S3 and MinIO check it.
    case crc32c
    /// `x-amz-checksum-sha256`: the SHA-256 that also signs the payload, so one pass over the
    /// bytes serves both. AWS S3 and MinIO check it.
    case sha256
    /// `Content-MD5`, for older S3-compatible services: a second pass over the bytes.
    case md5

    /// The header that carries it.
    var headerName: String {
        switch self {
        case .crc32c: "x-amz-checksum-crc32c"
        case .sha256: "x-amz-checksum-sha256"
        case .md5: "Content-MD5"
        }
    }

    /// What a multipart upload declares at its creation (`x-amz-checksum-algorithm`), so that
    /// every part carries it and the completion lists it; nil: nothing is declared.
    var declaredAlgorithm: String? {
        switch self {
        case .crc32c: "CRC32C"
        case .sha256: "SHA256"
        case .md5: nil
        }
    }

    /// The element of CompleteMultipartUpload that lists a part's checksum.
    var completionElement: String? { declaredAlgorithm.map { "Checksum\($0)" } }
}

/// An S3 client of our own: SigV4 from the core, HTTP over libcurl, retries with capped
/// exponential backoff and jitter, and errors a person can act on.
///
/// Every call blocks its thread (callers run on threads of their own). The client is shared
/// by the threads of a multipart upload.
///
/// **Cancellation** is its `HTTPClient`'s: once it is cancelled, requests in flight end at
/// once, no request is sent and no attempt retried, and every call throws
/// `LifeboatError.cancelled(reason)`. Cleanup after a cancellation (aborting a multipart
/// upload, deleting partial data) goes through `forCleanup()`.
///
/// **Logs.** Each attempt of a request is one debug line ("S3 request") with the action,
/// method, object, URL (presigned query values redacted), attempt, HTTP status or the
/// transport failure's kind, the S3 error code and request id when there are, bytes sent and
/// received, and duration; a retry is one warning. No header, signature or credential is
/// ever logged.
public final class S3Client: Sendable {
    public struct Configuration: Sendable {
        /// `http(s)://host[:port]`, without the bucket.
        public var endpoint: String
        public var region: String
        public var bucket: String
        /// Path-style (`endpoint/bucket/key`, MinIO and most S3-compatibles) or virtual-hosted
        /// (`bucket.host/key`, AWS).
        public var pathStyle: Bool
        public var credentials: AWSCredentials
        public var retry: RetryPolicy
        /// How the server is asked to check the bytes of each upload.
        public var checksum: S3Checksum

        public init(endpoint: String, region: String, bucket: String, pathStyle: Bool, credentials: AWSCredentials,
                    retry: RetryPolicy = RetryPolicy(), checksum: S3Checksum = .crc32c) {
            self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
            self.region = region
            self.bucket = bucket
            self.pathStyle = pathStyle
            self.credentials = credentials
            self.retry = retry
            self.checksum = checksum
        }
    }

    public let configuration: Configuration
    let http: HTTPClient
    let signer: SigV4Signer
    let clock: @Sendable () -> Date
    let sleep: @Sendable (Double) -> Void
    let logger: Logger
    let scheme: String
    let authority: String

    /// - Parameters:
    ///   - http: the transport; its `cancellation` is this client's (see `cancellation`).
    ///   - clock: the time requests are signed with.
    ///   - sleep: waits between retries (injected so tests can count instead of wait); one
    ///     that returns early when the run is cancelled (`CancellableSleep`) lets a cancelled
    ///     run end without waiting out a backoff.
    public convenience init(configuration: Configuration, http: HTTPClient, logger: Logger,
                            clock: @escaping @Sendable () -> Date = { Date() },
                            sleep: @escaping @Sendable (Double) -> Void = { seconds in Thread.sleep(forTimeInterval: seconds) }) throws {
        guard let url = URL(string: configuration.endpoint), let scheme = url.scheme, scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty
        else {
            throw LifeboatError(.configuration, "S3 endpoint '\(configuration.endpoint)' is not an http:// or https:// URL")
        }
        self.init(configuration: configuration, http: http, logger: logger, clock: clock, sleep: sleep,
                  scheme: scheme, authority: url.port.map { "\(host):\($0)" } ?? host)
    }

    private init(configuration: Configuration, http: HTTPClient, logger: Logger, clock: @escaping @Sendable () -> Date,
                 sleep: @escaping @Sendable (Double) -> Void, scheme: String, authority: String) {
        self.configuration = configuration
        self.http = http
        self.signer = SigV4Signer(credentials: configuration.credentials, region: configuration.region, service: "s3")
        self.clock = clock
        self.sleep = sleep
        self.logger = logger
        self.scheme = scheme
        self.authority = authority
        Secrets.register(configuration.credentials.secretAccessKey)
        Secrets.register(configuration.credentials.sessionToken)
    }

    /// The run's cancellation, which is the `HTTPClient`'s: once cancelled, no request is sent
    /// or retried and those in flight are aborted.
    public var cancellation: Cancellation { http.cancellation }

    /// Retries of a cleanup client: one more attempt, after at most half a second.
    public static let cleanupRetry = RetryPolicy(maxAttempts: 2, baseDelay: 0.1, maxDelay: 0.5)
    /// The limit on each whole request of a cleanup client (which no cancellation stops):
    /// cleanup requests are small, and a stalled server must not hold a cancelled run for long.
    public static let cleanupRequestTimeout: Duration = .seconds(5)

    /// A client for cleanup after a failure or a cancellation (AbortMultipartUpload, deleting
    /// partial data): the same configuration, credentials, logger and clock, but a new
    /// `HTTPClient` (a pool of its own) that no cancellation stops, each request limited to
    /// `cleanupRequestTimeout`, retries by `cleanupRetry`, and waits between them that no
    /// cancellation shortens.
    public func forCleanup() -> S3Client {
        var cleanup = configuration
        cleanup.retry = Self.cleanupRetry
        return S3Client(configuration: cleanup, http: http.with(cancellation: .never, timeout: Self.cleanupRequestTimeout),
                        logger: logger, clock: clock, sleep: { seconds in Thread.sleep(forTimeInterval: seconds) },
                        scheme: scheme, authority: authority)
    }

    /// `s3://bucket/key`, for messages.
    public func display(_ key: String?) -> String {
        "s3://\(configuration.bucket)/\(key ?? "")"
    }

    // MARK: Operations

    /// PutObject of bytes held in memory, with `Content-MD5` so the server checks them.
    /// With `ifAbsent`, sends `If-None-Match: *`: the server refuses to replace an object.
    @discardableResult
    public func putObject(key: String, bytes: [UInt8], ifAbsent: Bool = false) throws -> String {
        let (payload, checksum) = integrity(of: bytes)
        var headers = [checksum]
        if ifAbsent { headers.append(SigV4Request.Header("If-None-Match", "*")) }
        let response = try send(S3Call(action: "PutObject", method: .put, key: key, headers: headers,
                                       body: .bytes(bytes), payload: payload))
        return response.headers["ETag"] ?? ""
    }

    /// The payload hash that signs a body, and the header that has the server check it:
    /// `x-amz-checksum-crc32c`, `x-amz-checksum-sha256` (the same SHA-256, so one pass over the
    /// bytes) or `Content-MD5`.
    func integrity(of bytes: [UInt8]) -> (payload: SigV4Request.Payload, header: SigV4Request.Header) {
        let digest = Array(SHA256.hash(data: bytes))
        let payload = SigV4Request.Payload.sha256(SigV4.hex(digest))
        let value: String
        switch configuration.checksum {
        case .crc32c:
            var crc = CRC32C()
            bytes.withUnsafeBytes { crc.update($0) }
            value = crc.base64
        case .sha256:
            value = Data(digest).base64EncodedString()
        case .md5:
            value = Self.md5Base64(bytes)
        }
        return (payload, SigV4Request.Header(configuration.checksum.headerName, value))
    }

    /// - Parameters:
    ///   - headers: the object's own (`Content-Type`, `x-amz-meta-…`), when it has any.
    ///   - declareChecksum: announce the part checksums (uploads of bytes we send; not a copy,
    ///     whose parts the server reads itself).
    public func createMultipartUpload(key: String, headers: [SigV4Request.Header] = [], declareChecksum: Bool = true) throws -> String {
        var headers = headers
        if declareChecksum, let algorithm = configuration.checksum.declaredAlgorithm {
            headers.append(SigV4Request.Header("x-amz-checksum-algorithm", algorithm))
        }
        let response = try send(S3Call(action: "CreateMultipartUpload", method: .post, key: key,
                                       query: [.init("uploads")], headers: headers))
        guard let uploadID = try xml(response, for: "CreateMultipartUpload", key: key)["UploadId"], !uploadID.isEmpty else {
            throw LifeboatError(.storage, "S3 CreateMultipartUpload \(display(key)) answered without an UploadId")
        }
        return uploadID
    }

    /// One uploaded part: what CompleteMultipartUpload names it by.
    public struct UploadedPart: Sendable, Equatable {
        public var number: Int
        public var etag: String
        /// The checksum the part was sent with, when the upload declared an algorithm
        /// (`x-amz-checksum-crc32c` → `ChecksumCRC32C`, and so on), for the completion to list.
        public var checksum: SigV4Request.Header?

        public init(number: Int, etag: String, checksum: SigV4Request.Header? = nil) {
            self.number = number
            self.etag = etag
            self.checksum = checksum
        }

        /// The element of CompleteMultipartUpload that lists the part's checksum.
        var checksumElement: (name: String, value: String)? {
            guard let checksum,
                  let element = S3Checksum.allCases.first(where: { $0.headerName == checksum.name })?.completionElement else { return nil }
            return (element, checksum.value)
        }
    }

    /// UploadPart.
    public func uploadPart(key: String, uploadID: String, partNumber: Int, bytes: [UInt8]) throws -> UploadedPart {
        let (payload, checksum) = integrity(of: bytes)
        let response = try send(S3Call(
            action: "UploadPart", method: .put, key: key,
            query: [.init("partNumber", String(partNumber)), .init("uploadId", uploadID)],
            headers: [checksum], body: .bytes(bytes), payload: payload))
        guard let etag = response.headers["ETag"] else {
            throw LifeboatError(.storage, "S3 UploadPart \(partNumber) of \(display(key)) answered without an ETag")
        }
        return UploadedPart(number: partNumber, etag: etag, checksum: configuration.checksum.declaredAlgorithm == nil ? nil : checksum)
    }

    /// CompleteMultipartUpload. With `ifAbsent`, sends `If-None-Match: *`: the server refuses
    /// to complete the upload over an existing object (the upload stays, to be aborted).
    public func completeMultipartUpload(key: String, uploadID: String, parts: [UploadedPart], ifAbsent: Bool = false) throws {
        var body = "<CompleteMultipartUpload>"
        for part in parts.sorted(by: { $0.number < $1.number }) {
            body += "<Part><PartNumber>\(part.number)</PartNumber><ETag>\(XMLNode.escape(part.etag))</ETag>"
            if let checksum = part.checksumElement { body += "<\(checksum.name)>\(checksum.value)</\(checksum.name)>" }
            body += "</Part>"
        }
        body += "</CompleteMultipartUpload>"
        let bytes = Array(body.utf8)
        let response = try send(S3Call(action: "CompleteMultipartUpload", method: .post, key: key,
                                       query: [.init("uploadId", uploadID)],
                                       headers: ifAbsent ? [SigV4Request.Header("If-None-Match", "*")] : [],
                                       body: .bytes(bytes), payload: .sha256(SigV4.sha256Hex(bytes))))
        // S3 may answer 200 and still fail: the error is then in the body.
        let root = try xml(response, for: "CompleteMultipartUpload", key: key)
        if root.name == "Error" {
            throw mapError(action: "CompleteMultipartUpload", method: .post, key: key, status: 200, error: root, headers: response.headers)
        }
    }

    public func abortMultipartUpload(key: String, uploadID: String) throws {
        try send(S3Call(action: "AbortMultipartUpload", method: .delete, key: key, query: [.init("uploadId", uploadID)],
                        acceptNotFound: true))
    }

    /// A multipart upload in progress, as ListMultipartUploads lists it.
    public struct MultipartUpload: Sendable, Equatable {
        public var key: String
        public var uploadID: String
        /// When it was created (nil when the server sent no date it could be read as).
        public var initiated: Date?
    }

    /// Every multipart upload in progress under a prefix, following the listing's markers
    /// (for cleaning up, and tests).
    public func listMultipartUploads(prefix: String) throws -> [MultipartUpload] {
        var uploads: [MultipartUpload] = []
        var markers: (key: String, uploadID: String)?
        while true {
            var query = [SigV4Request.QueryItem("uploads"), .init("prefix", prefix)]
            if let markers { query += [.init("key-marker", markers.key), .init("upload-id-marker", markers.uploadID)] }
            let response = try send(S3Call(action: "ListMultipartUploads", method: .get, key: nil, query: query))
            let root = try xml(response, for: "ListMultipartUploads", key: nil)
            uploads += root.all("Upload").map {
                MultipartUpload(key: $0["Key"] ?? "", uploadID: $0["UploadId"] ?? "", initiated: $0["Initiated"].flatMap(Self.parseTime))
            }
            guard root["IsTruncated"] == "true" else { return uploads }
            let next = (key: root["NextKeyMarker"] ?? "", uploadID: root["NextUploadIdMarker"] ?? "")
            guard !next.key.isEmpty, next.key != markers?.key || next.uploadID != markers?.uploadID else {
                throw LifeboatError(.storage, "S3 ListMultipartUploads \(display(prefix)) answered a truncated page without new markers")
            }
            markers = next
        }
    }

    /// GetObject of a byte range (`offset ..< offset + length`), into memory. With `ifMatch`
    /// (an ETag), the server refuses when the object was replaced since (412).
    public func getObject(key: String, offset: Int64, length: Int, ifMatch: String? = nil) throws -> [UInt8] {
        var headers = [SigV4Request.Header("Range", "bytes=\(offset)-\(offset + Int64(length) - 1)")]
        if let ifMatch, !ifMatch.isEmpty { headers.append(SigV4Request.Header("If-Match", ifMatch)) }
        let response = try send(S3Call(action: "GetObject", method: .get, key: key, headers: headers, bodyLimit: length + 1))
        return response.body
    }

    /// GetObject of a whole (small) object, into memory.
    public func getObject(key: String, limit: Int = 64 << 20) throws -> [UInt8] {
        try send(S3Call(action: "GetObject", method: .get, key: key, bodyLimit: limit)).body
    }

    /// What HeadObject says of an object.
    public struct Head: Sendable, Equatable {
        public var size: Int64
        /// As the server sends it, quotes included.
        public var etag: String
        public var modified: Date
    }

    /// HeadObject: the object's size, ETag and modification time, or nil when there is no
    /// such object.
    public func headObject(key: String) throws -> Head? {
        let response = try send(S3Call(action: "HeadObject", method: .head, key: key, acceptNotFound: true))
        if response.status == 404 { return nil }
        let lastModified = response.headers["Last-Modified"] ?? ""
        guard let modified = Self.parseHTTPDate(lastModified) else {
            throw LifeboatError(.storage, "S3 HeadObject \(display(key)) answered with a Last-Modified that is not a date: '\(lastModified)'")
        }
        return Head(size: try contentLength(of: response, key: key), etag: response.headers["ETag"] ?? "", modified: modified)
    }

    /// A HEAD answer's Content-Length: the object's size. Without one, the object would be
    /// read as empty, so an answer that lacks it (or garbles it) is an error.
    func contentLength(of response: HTTPResponse, key: String) throws -> Int64 {
        let text = response.headers["Content-Length"] ?? ""
        guard let size = Int64(text), size >= 0 else {
            throw LifeboatError(.storage, "S3 HeadObject \(display(key)) answered \(text.isEmpty ? "without a Content-Length" : "with a Content-Length that is not a size: '\(text)'"), so the object's size is unknown",
                                hint: "Something between here and the server (a proxy) may drop the header; nothing was read.")
        }
        return size
    }

    /// An object in a listing.
    public struct ListedObject: Sendable, Equatable {
        public var key: String
        public var size: Int64
        /// As the server sends it, quotes included.
        public var etag: String
        public var modified: Date
    }

    /// One page of ListObjectsV2.
    public struct ListResult: Sendable, Equatable {
        public var objects: [ListedObject]
        public var commonPrefixes: [String]
        /// The token for the next page; nil when this page is the last.
        public var nextContinuationToken: String?
    }

    /// One ListObjectsV2 request: at most `maxKeys` objects and common prefixes, in byte order.
    /// With `urlEncodedKeys`, asks for `encoding-type=url` (keys with characters XML cannot
    /// carry, such as control characters, arrive intact) and decodes the keys.
    public func listObjectsV2(prefix: String, delimiter: String? = nil, startAfter: String? = nil,
                              continuationToken: String? = nil, maxKeys: Int = 1000, urlEncodedKeys: Bool = false) throws -> ListResult {
        var query = [SigV4Request.QueryItem("list-type", "2"), .init("prefix", prefix), .init("max-keys", String(maxKeys))]
        if urlEncodedKeys { query.append(.init("encoding-type", "url")) }
        if let delimiter { query.append(.init("delimiter", delimiter)) }
        if let startAfter, !startAfter.isEmpty { query.append(.init("start-after", startAfter)) }
        if let continuationToken { query.append(.init("continuation-token", continuationToken)) }
        let response = try send(S3Call(action: "ListObjectsV2", method: .get, key: nil, query: query))
        let root = try xml(response, for: "ListObjectsV2", key: prefix)
        var objects: [ListedObject] = []
        for item in root.all("Contents") {
            let key = try urlEncodedKeys ? decodeListedKey(item["Key"] ?? "", listing: prefix) : item["Key"] ?? ""
            let lastModified = item["LastModified"] ?? ""
            guard let modified = Self.parseTime(lastModified) else {
                throw LifeboatError(.storage, "S3 ListObjectsV2 \(display(prefix)) listed \(display(key)) with a LastModified that is not a date: '\(lastModified)'")
            }
            objects.append(ListedObject(key: key, size: Int64(item["Size"] ?? "") ?? 0, etag: item["ETag"] ?? "", modified: modified))
        }
        let commonPrefixes = try root.all("CommonPrefixes").compactMap { $0["Prefix"] }
            .map { urlEncodedKeys ? try decodeListedKey($0, listing: prefix) : $0 }
        var token: String?
        if root["IsTruncated"] == "true" {
            guard let next = root["NextContinuationToken"], !next.isEmpty else {
                throw LifeboatError(.storage, "S3 ListObjectsV2 \(display(prefix)) answered a truncated page without a NextContinuationToken")
            }
            // A server that hands back the token it was sent would have every caller list the
            // same page forever (a known defect class of S3-compatible servers).
            guard next != continuationToken else {
                throw LifeboatError(.storage, "S3 ListObjectsV2 \(display(prefix)) answered a truncated page whose NextContinuationToken is the one it was sent: the listing would never end",
                                    hint: "The S3 service's listing is broken; report it to its operator. Nothing was changed.")
            }
            token = next
        }
        return ListResult(objects: objects, commonPrefixes: commonPrefixes, nextContinuationToken: token)
    }

    /// ListObjectsV2, following continuation tokens until the end (for tests and tools; the
    /// store pages).
    public func listObjects(prefix: String) throws -> [ListedObject] {
        var results: [ListedObject] = []
        var token: String?
        var cursors = ListingCursors(listing: display(prefix))
        repeat {
            let page = try listObjectsV2(prefix: prefix, continuationToken: token)
            results += page.objects
            token = page.nextContinuationToken
            if let token { try cursors.follow(token) }
        } while token != nil
        return results
    }

    /// DeleteObjects in batches of 1,000 (the API's limit). Keys that do not exist are fine.
    public func deleteObjects(keys: [String]) throws {
        var start = 0
        while start < keys.count {
            let batch = keys[start..<min(start + 1000, keys.count)]
            start += batch.count
            var body = "<Delete><Quiet>true</Quiet>"
            for key in batch { body += "<Object><Key>\(XMLNode.escape(key))</Key></Object>" }
            body += "</Delete>"
            let bytes = Array(body.utf8)
            let response = try send(S3Call(
                action: "DeleteObjects", method: .post, key: nil, query: [.init("delete")],
                headers: [SigV4Request.Header("Content-MD5", Self.md5Base64(bytes))],
                body: .bytes(bytes), payload: .sha256(SigV4.sha256Hex(bytes))))
            let failures = try xml(response, for: "DeleteObjects", key: nil).all("Error")
            if let first = failures.first {
                throw LifeboatError(.storage, "S3 DeleteObjects in \(display(nil)) failed for \(failures.count) of \(batch.count) keys, first \(display(first["Key"])): \(first["Code"] ?? "") \(first["Message"] ?? "")")
            }
        }
    }

    /// The `x-amz-copy-source` of an object of this bucket.
    func copySource(_ key: String) -> SigV4Request.Header {
        SigV4Request.Header("x-amz-copy-source",
                            "/" + SigV4.uriEncode(configuration.bucket, encodeSlash: true) + "/" + SigV4.uriEncode(key, encodeSlash: false))
    }

    /// UploadPartCopy: part `partNumber` of an upload is the bytes `range` of `source`, copied
    /// by the server. Pass the source's ETag as `ifMatch` so that a source replaced meanwhile
    /// fails the part rather than splicing two objects.
    public func uploadPartCopy(key: String, uploadID: String, partNumber: Int, source: String, range: ClosedRange<Int64>,
                               ifMatch: String?) throws -> UploadedPart {
        var headers = [copySource(source), SigV4Request.Header("x-amz-copy-source-range", "bytes=\(range.lowerBound)-\(range.upperBound)")]
        if let ifMatch { headers.append(SigV4Request.Header("x-amz-copy-source-if-match", ifMatch)) }
        let response = try send(S3Call(action: "UploadPartCopy", method: .put, key: key,
                                       query: [.init("partNumber", String(partNumber)), .init("uploadId", uploadID)], headers: headers))
        let root = try xml(response, for: "UploadPartCopy", key: key)
        if root.name == "Error" {
            throw mapError(action: "UploadPartCopy", method: .put, key: key, status: 200, error: root, headers: response.headers)
        }
        guard let etag = root["ETag"], !etag.isEmpty else {
            throw LifeboatError(.storage, "S3 UploadPartCopy \(partNumber) of \(display(key)) answered without an ETag")
        }
        return UploadedPart(number: partNumber, etag: etag)
    }

    /// CopyObject within the bucket (S3 copies objects of up to 5 GiB this way; `S3Store.copy`
    /// copies larger ones in parts).
    public func copyObject(from source: String, to key: String) throws {
        let response = try send(S3Call(action: "CopyObject", method: .put, key: key, headers: [copySource(source)]))
        let root = try xml(response, for: "CopyObject", key: key)
        if root.name == "Error" {
            throw mapError(action: "CopyObject", method: .put, key: key, status: 200, error: root, headers: response.headers)
        }
    }

    // MARK: Requests

    struct S3Call {
        var action: String
        var method: HTTPMethod
        var key: String?
        var query: [SigV4Request.QueryItem] = []
        var headers: [SigV4Request.Header] = []
        var body: HTTPRequest.Body = .none
        var payload: SigV4Request.Payload = .empty
        var bodyLimit: Int = HTTPClient.defaultBodyLimit
        /// A 404 is an answer (HeadObject, AbortMultipartUpload), not an error.
        var acceptNotFound = false
    }

    /// The path of a request, raw (SigV4 encodes it), and the host it goes to.
    func target(key: String?) -> (path: String, host: String) {
        if configuration.pathStyle {
            return ("/" + configuration.bucket + (key.map { "/" + $0 } ?? ""), authority)
        }
        return ("/" + (key ?? ""), configuration.bucket + "." + authority)
    }

    /// Signs and sends a call, retrying what is worth retrying; maps failures to errors.
    /// Checks the cancellation before each attempt (so after each retry's wait too): a
    /// cancelled run sends nothing more and throws `LifeboatError.cancelled`.
    @discardableResult
    func send(_ call: S3Call) throws -> HTTPResponse {
        var attempts: [String] = []
        var attempt = 0
        while true {
            attempt += 1
            try cancellation.checkCancelled()
            let outcome: String
            do {
                let response = try performOnce(call, attempt: attempt)
                if (200..<300).contains(response.status) || (call.acceptNotFound && response.status == 404) {
                    if attempt > 1 {
                        logger.info("S3 request succeeded after retries", metadata: [
                            "s3.action": "\(call.action)", "s3.object": "\(display(call.key))", "s3.attempts": "\(attempt)",
                        ])
                    }
                    return response
                }
                // An error body that is not XML (a proxy's HTML page) still has a status to report.
                let errorDocument = try? XMLNode.parse(response.body)
                let code = errorDocument?["Code"] ?? ""
                if !(Self.isRetryable(status: response.status, code: code) && call.body.isReplayable) {
                    throw mapError(action: call.action, method: call.method, key: call.key, status: response.status,
                                   error: errorDocument ?? diagnose(call, status: response.status), headers: response.headers)
                }
                outcome = "\(response.status) \(code.isEmpty ? HTTPStatus.reason(response.status) : code)"
            } catch let error as LifeboatError where error.code == .network {
                guard let transport = error.transportError, transport.isRetryable, call.body.isReplayable else {
                    throw transportFailure(error, call: call, attempts: attempts)
                }
                outcome = "\(transport.kind): \(transport.detail)"
            }
            attempts.append(outcome)
            guard attempt < configuration.retry.maxAttempts else {
                throw LifeboatError(
                    .storage,
                    "S3 \(call.action) \(display(call.key)) failed after \(attempt) attempt\(attempt == 1 ? "" : "s"): "
                        + attempts.enumerated().map { "\($0.offset + 1)) \($0.element)" }.joined(separator: "; "),
                    hint: "The endpoint \(configuration.endpoint) kept failing; check that the S3 service is up and reachable, then run the command again.")
            }
            try cancellation.checkCancelled()  // no "retrying" for a run that is over
            let delay = configuration.retry.delay(afterAttempt: attempt) { Double.random(in: $0) }
            logger.warning("S3 request failed; retrying", metadata: [
                "s3.action": "\(call.action)", "s3.object": "\(display(call.key))", "s3.attempt": "\(attempt)",
                "s3.outcome": "\(outcome)", "retry.delay_seconds": "\(String(format: "%.2f", delay))",
            ])
            sleep(delay)
        }
    }

    /// The signed HTTP request of a call, with the current time.
    func signedRequest(_ call: S3Call) -> HTTPRequest {
        let (path, host) = target(key: call.key)
        var request = SigV4Request(method: call.method.rawValue, path: path, query: call.query,
                                   headers: [SigV4Request.Header("Host", host)] + call.headers, payload: call.payload)
        if call.method == .put || call.method == .post, case .none = call.body {
            request.headers.append(.init("Content-Length", "0"))
        }
        let signed = signer.sign(request, date: clock())
        var headers = HTTPHeaders()
        for header in signed.request.headers where header.name.lowercased() != "host" {
            headers.append(header.name, header.value)
        }
        let query = signed.request.encodedQuery
        let url = "\(scheme)://\(host)\(signed.request.encodedPath)\(query.isEmpty ? "" : "?" + query)"
        return HTTPRequest(call.method, url, headers: headers, body: call.body)
    }

    /// Signs a call with the current time and sends it once; logs the attempt (debug).
    func performOnce(_ call: S3Call, attempt: Int) throws -> HTTPResponse {
        let request = signedRequest(call)
        let started = ContinuousClock.now
        do {
            let response = try http.perform(request, bodyLimit: call.bodyLimit)
            logger.debug("S3 request", metadata: attemptMetadata(
                call, url: request.url, attempt: attempt, duration: .now - started, outcome: .response(response)))
            return response
        } catch {
            logger.debug("S3 request", metadata: attemptMetadata(
                call, url: request.url, attempt: attempt, duration: .now - started, outcome: .failure(error)))
            throw error
        }
    }

    /// How an attempt ended, for its log line.
    enum AttemptOutcome {
        case response(HTTPResponse)
        case failure(any Error)
    }

    /// The fields of an attempt's debug line. Only what is safe to show: no header (the
    /// `Authorization` header holds the signature), the URL with presigned secrets redacted.
    func attemptMetadata(_ call: S3Call, url: String, attempt: Int, duration: Duration, outcome: AttemptOutcome) -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            "s3.action": "\(call.action)", "http.method": "\(call.method)", "s3.object": "\(display(call.key))",
            "http.url": "\(HTTPClient.redactedURL(url))", "s3.attempt": "\(attempt)",
            "http.duration_ms": "\(Self.milliseconds(duration))",
        ]
        switch outcome {
        case .response(let response):
            metadata["http.status"] = "\(response.status)"
            metadata["http.bytes_sent"] = "\(response.bytesSent)"
            metadata["http.bytes_received"] = "\(response.bodyByteCount)"
            if let requestID = response.headers["x-amz-request-id"] { metadata["s3.request_id"] = "\(requestID)" }
            if !response.isSuccess, let code = (try? XMLNode.parse(response.body))?["Code"], !code.isEmpty {
                metadata["s3.error_code"] = "\(code)"  // best effort: an error body need not be XML
            }
        case .failure(let error):
            let transport = (error as? LifeboatError)?.underlying as? HTTPTransportError
            metadata["http.failure"] = "\(transport.map { "\($0.kind)" } ?? "error")"
            metadata["http.bytes_sent"] = "\(transport?.bytesSent ?? 0)"
            metadata["http.bytes_received"] = "\(transport?.bytesReceived ?? 0)"
            if let transport, transport.kind != .cancelled { metadata["http.curl_code"] = "\(transport.curlCodeName)" }
        }
        return metadata
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// A HEAD response has no body, so a refused HEAD does not say why. The same request as a
    /// one-byte GET does: its error document is what the person needs (a wrong secret is
    /// not a missing permission).
    func diagnose(_ call: S3Call, status: Int) -> XMLNode? {
        guard call.method == .head, status == 400 || status == 403 else { return nil }
        var probe = call
        probe.method = .get
        probe.headers.append(SigV4Request.Header("Range", "bytes=0-0"))
        probe.bodyLimit = 1 << 20
        guard let response = try? performOnce(probe, attempt: 1), !response.isSuccess else { return nil }  // a diagnosis, best effort
        return try? XMLNode.parse(response.body)
    }

    /// 5xx, 429 and 408 are worth another try, and the codes S3 uses for "slow down".
    static func isRetryable(status: Int, code: String) -> Bool {
        if status >= 500 || status == 429 || status == 408 { return true }
        return ["RequestTimeout", "SlowDown", "InternalError", "ServiceUnavailable", "Throttling"].contains(code)
    }

    func transportFailure(_ error: LifeboatError, call: S3Call, attempts: [String]) -> LifeboatError {
        var failure = LifeboatError(.storage, "S3 \(call.action) \(display(call.key)) failed: \(error.message)",
                                    hint: error.hint, underlying: error)
        if !attempts.isEmpty {
            failure.message += " (after \(attempts.count) failed attempt\(attempts.count == 1 ? "" : "s"): \(attempts.joined(separator: "; ")))"
        }
        return failure
    }

    func xml(_ response: HTTPResponse, for action: String, key: String?) throws -> XMLNode {
        do {
            return try XMLNode.parse(response.body)
        } catch {
            throw LifeboatError(.storage, "S3 \(action) \(display(key)) answered with a body that is not valid XML: \(error.description)",
                                hint: "Check that \(configuration.endpoint) is an S3-compatible endpoint.")
        }
    }

    // MARK: Errors

    /// An S3 error response as a person needs it: what failed, on which object, and what to do.
    func mapError(action: String, method: HTTPMethod, key: String?, status: Int, error: XMLNode?, headers: HTTPHeaders) -> LifeboatError {
        let code = error?["Code"] ?? ""
        let message = error?["Message"] ?? ""
        let object = display(key)
        let accessKey = AWSCredentials.mask(configuration.credentials.accessKeyID)
        let prefix = "S3 \(method) \(object) failed: \(status) \(code.isEmpty ? HTTPStatus.reason(status) : code)"
        switch code {
        case "SignatureDoesNotMatch":
            return LifeboatError(.storage, "\(prefix) — the secret key for access key \(accessKey) does not match",
                                 hint: "Check AWS_SECRET_ACCESS_KEY (or secret_access_key for this repository in lifeboat.yaml): it must be the secret of access key \(accessKey).")
        case "InvalidAccessKeyId":
            return LifeboatError(.storage, "\(prefix) — access key \(accessKey) does not exist at \(configuration.endpoint)",
                                 hint: "Check AWS_ACCESS_KEY_ID (or access_key_id for this repository in lifeboat.yaml) and that the key is active.")
        case "AccessDenied":
            return LifeboatError(.storage, "\(prefix) — access key \(accessKey) may not \(action) on \(object)",
                                 hint: "Grant s3:\(action) on arn:aws:s3:::\(configuration.bucket)/\(key ?? "*") to the user or role of access key \(accessKey).")
        case "NoSuchBucket":
            return LifeboatError(.storage, "\(prefix) — bucket '\(configuration.bucket)' does not exist at \(configuration.endpoint)",
                                 hint: "Create the bucket, or fix 'bucket' (and 'endpoint', 'region') for this repository in lifeboat.yaml.")
        case "RequestTimeTooSkewed":
            var skew = ""
            if let requestTime = error?["RequestTime"], let serverTime = error?["ServerTime"] {
                skew = " (this machine: \(requestTime), the server: \(serverTime)"
                if let a = Self.parseTime(requestTime), let b = Self.parseTime(serverTime) {
                    skew += ", \(Int(abs(a.timeIntervalSince(b)))) s apart"
                }
                skew += ")"
            }
            return LifeboatError(.storage, "\(prefix) — this machine's clock differs too much from the server's\(skew)",
                                 hint: "Synchronise the clock (NTP, e.g. 'timedatectl set-ntp true'); S3 refuses requests more than 15 minutes off.")
        case "PreconditionFailed" where action == "GetObject":
            return LifeboatError(.storage, "\(prefix) — \(object) was replaced while it was read",
                                 hint: "Another process wrote the object meanwhile; run the command again.")
        case "PreconditionFailed", "ConditionalRequestConflict":
            // If-None-Match: * (PutObject, CompleteMultipartUpload) found the key taken, or
            // another conditional write to it in progress (409).
            return LifeboatError(.alreadyExists, "\(prefix) — \(object) already exists and is never overwritten")
        case "NoSuchKey" where action == "CopyObject":
            return LifeboatError(.notFound, "\(prefix) — the source of the copy does not exist")
        case "NoSuchKey" where action == "GetObject":
            // Found by a listing or a HEAD, deleted before it was read (another run's lock,
            // released meanwhile): gone, as an absent key is.
            return LifeboatError(.notFound, "\(prefix) — \(object) was deleted before it could be read")
        case "BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch":
            return LifeboatError(.storage, "\(prefix) — the bytes the server received do not match the checksum they were sent with\(message.isEmpty ? "" : " (\(message))")",
                                 hint: "Something between here and the server (a proxy, a faulty network card) changed them; run again. If every run fails so, the service may compute \(configuration.checksum.headerName) wrongly: set 'checksum' to another of crc32c, sha256, md5 in lifeboat.yaml.")
        default:
            if Self.uploadActions.contains(action), status == 400 || status == 501, message.lowercased().contains("checksum") {
                return LifeboatError(.storage, "\(prefix): \(message)",
                                     hint: "The service refused the upload's \(configuration.checksum.headerName); if it does not support that checksum, set 'checksum: sha256' or 'checksum: md5' in lifeboat.yaml where this endpoint is configured (an S3 repository, or a mirror policy's source.s3).")
            }
            if method == .head, status == 403 {
                return LifeboatError(.storage, "\(prefix) — access denied for access key \(accessKey) (the server gave no reason: a wrong secret, an inactive key or a missing permission)",
                                     hint: "Check AWS_SECRET_ACCESS_KEY for access key \(accessKey), and that its user or role may s3:GetObject and s3:ListBucket on arn:aws:s3:::\(configuration.bucket).")
            }
            return LifeboatError(.storage, "\(prefix)\(message.isEmpty ? "" : ": \(message)")")
        }
    }

    /// The requests that carry an upload's checksum.
    static let uploadActions: Set<String> = ["PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"]

    static func parseTime(_ text: String) -> Date? {
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        if let date = try? Date.ISO8601FormatStyle().parse(text) { return date }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        formatter.timeZone = .gmt
        return formatter.date(from: text)
    }

    /// An HTTP date (`Last-Modified: Wed, 21 Oct 2026 07:28:00 GMT`, RFC 9110's IMF-fixdate).
    static func parseHTTPDate(_ text: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "EEE',' dd MMM yyyy HH':'mm':'ss 'GMT'"
        formatter.timeZone = .gmt
        return formatter.date(from: text)
    }

    static func md5Base64(_ bytes: [UInt8]) -> String {
        Data(Insecure.MD5.hash(data: bytes)).base64EncodedString()
    }
}

enum HTTPStatus {
    static func reason(_ status: Int) -> String {
        switch status {
        case 400: return "Bad Request"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 412: return "Precondition Failed"
        case 429: return "Too Many Requests"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        default: return "HTTP \(status)"
        }
    }
}
