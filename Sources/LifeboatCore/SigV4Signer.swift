import Crypto
import Foundation
import Synchronization

/// Signs requests with AWS Signature Version 4 for one set of credentials, region and service.
///
/// Every result is a function of the request, the credentials, region, service, options and the
/// `date` passed in: the signer never reads the clock. The only state is a cache of derived
/// signing keys, so that the requests of one day share one key derivation; copies of a signer
/// share the cache.
public struct SigV4Signer: Sendable {
    /// How a service wants its requests canonicalised.
    public struct Options: Sendable, Equatable {
        /// Remove `.`, `..` and empty segments from the path before encoding it. S3: no.
        public var normalizePath: Bool
        /// Encode the (once encoded) path a second time. S3: no.
        public var doubleEncodePath: Bool
        /// Add `x-amz-content-sha256: <payload hash>` when signing in headers. S3 requires it.
        public var addContentSHA256Header: Bool
        /// Presigned URLs declare `UNSIGNED-PAYLOAD`, whatever the request's payload. S3: yes.
        public var unsignedPayloadWhenPresigning: Bool

        public init(normalizePath: Bool, doubleEncodePath: Bool, addContentSHA256Header: Bool, unsignedPayloadWhenPresigning: Bool) {
            self.normalizePath = normalizePath
            self.doubleEncodePath = doubleEncodePath
            self.addContentSHA256Header = addContentSHA256Header
            self.unsignedPayloadWhenPresigning = unsignedPayloadWhenPresigning
        }

        /// S3 and S3-compatible stores: paths signed as written and encoded once, the payload
        /// hash sent in `x-amz-content-sha256`, presigned URLs unsigned-payload.
        public static let s3 = Options(normalizePath: false, doubleEncodePath: false, addContentSHA256Header: true, unsignedPayloadWhenPresigning: true)

        /// Every other service: normalised, double-encoded paths, no payload header.
        public static let generic = Options(normalizePath: true, doubleEncodePath: true, addContentSHA256Header: false, unsignedPayloadWhenPresigning: false)

        /// `.s3` for the service `s3`, `.generic` otherwise.
        public static func defaults(forService service: String) -> Options {
            service == "s3" ? .s3 : .generic
        }
    }

    public let credentials: AWSCredentials
    /// `us-east-1`, …
    public let region: String
    /// `s3`, …
    public let service: String
    public let options: Options
    private let keyCache: SigningKeyCache

    /// A signer; `options` defaults to `Options.defaults(forService: service)`.
    public init(credentials: AWSCredentials, region: String, service: String, options: Options? = nil) {
        self.credentials = credentials
        self.region = region
        self.service = service
        self.options = options ?? .defaults(forService: service)
        self.keyCache = SigningKeyCache()
    }

    // MARK: - Header signing

    /// Signs `request` in the `Authorization` header for the time `date`.
    ///
    /// Adds (replacing any already there) `X-Amz-Date`, `x-amz-content-sha256` when
    /// `options.addContentSHA256Header`, `X-Amz-Security-Token` when the credentials have a
    /// session token, and `Authorization`. All other headers are signed as given, except
    /// `SigV4.unsignedHeaderNames`.
    public func sign(_ request: SigV4Request, date: Date) -> SignedRequest {
        let amzDate = SigV4.amzDate(date)
        let scope = credentialScope(for: date)
        var signed = request
        signed.removeHeaders(named: ["authorization", "x-amz-date", "x-amz-security-token"])
        signed.headers.append(.init("X-Amz-Date", amzDate))
        if options.addContentSHA256Header {
            signed.removeHeaders(named: ["x-amz-content-sha256"])
            signed.headers.append(.init("x-amz-content-sha256", signed.payload.value))
        }
        if let token = credentials.sessionToken {
            signed.headers.append(.init("X-Amz-Security-Token", token))
        }
        let headers = SigV4.canonicalHeaders(signed.headers)
        let canonicalRequest = SigV4.canonicalRequest(
            method: signed.method, canonicalURI: canonicalURI(signed.path),
            canonicalQuery: SigV4.canonicalQuery(signed.query),
            canonicalHeaders: headers.canonical, signedHeaders: headers.signed, payloadHash: signed.payload.value
        )
        let stringToSign = SigV4.stringToSign(amzDate: amzDate, scope: scope, canonicalRequest: canonicalRequest)
        let signature = SigV4.signature(of: stringToSign, key: signingKey(for: date))
        let authorization = "\(SigV4.algorithm) Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(headers.signed), Signature=\(signature)"
        signed.headers.append(.init("Authorization", authorization))
        return SignedRequest(
            request: signed, date: date, amzDate: amzDate, credentialScope: scope,
            canonicalRequest: canonicalRequest, stringToSign: stringToSign,
            signedHeaders: headers.signed, signature: signature, authorization: authorization
        )
    }

    // MARK: - Query signing

    /// Signs `request` in its query string (a presigned URL) valid for `expires` seconds from
    /// `date`. The headers are signed too (at least `Host`), so the URL's user must send them.
    ///
    /// Throws when `expires` is outside 1…604800 (seven days), the range AWS accepts.
    public func presign(_ request: SigV4Request, date: Date, expires: Int) throws(LifeboatError) -> PresignedRequest {
        guard (1...SigV4.maximumPresignExpiry).contains(expires) else {
            throw LifeboatError(
                .usage, "a presigned URL cannot be valid for \(expires) seconds",
                hint: "Choose a validity between 1 second and 7 days (\(SigV4.maximumPresignExpiry) seconds)."
            )
        }
        let amzDate = SigV4.amzDate(date)
        let scope = credentialScope(for: date)
        var presigned = request
        presigned.removeHeaders(named: ["authorization"])
        presigned.query.removeAll { Self.presignParameterNames.contains($0.name) }
        if options.unsignedPayloadWhenPresigning { presigned.payload = .unsigned }
        let headers = SigV4.canonicalHeaders(presigned.headers)
        presigned.query += [
            .init("X-Amz-Algorithm", SigV4.algorithm),
            .init("X-Amz-Credential", "\(credentials.accessKeyID)/\(scope)"),
            .init("X-Amz-Date", amzDate),
            .init("X-Amz-Expires", String(expires)),
        ]
        if let token = credentials.sessionToken {
            presigned.query.append(.init("X-Amz-Security-Token", token))
        }
        presigned.query.append(.init("X-Amz-SignedHeaders", headers.signed))
        let canonicalRequest = SigV4.canonicalRequest(
            method: presigned.method, canonicalURI: canonicalURI(presigned.path),
            canonicalQuery: SigV4.canonicalQuery(presigned.query),
            canonicalHeaders: headers.canonical, signedHeaders: headers.signed, payloadHash: presigned.payload.value
        )
        let stringToSign = SigV4.stringToSign(amzDate: amzDate, scope: scope, canonicalRequest: canonicalRequest)
        let signature = SigV4.signature(of: stringToSign, key: signingKey(for: date))
        presigned.query.append(.init("X-Amz-Signature", signature))
        return PresignedRequest(
            request: presigned, date: date, expires: expires, canonicalRequest: canonicalRequest,
            stringToSign: stringToSign, signedHeaders: headers.signed, signature: signature
        )
    }

    // MARK: - Chunked uploads

    /// The string to sign for one chunk of an `aws-chunked` upload signed at `date` (the
    /// seed request's date), chained to the previous signature.
    public func chunkStringToSign(previousSignature: String, chunkSHA256: String, date: Date) -> String {
        SigV4.chunkStringToSign(
            amzDate: SigV4.amzDate(date), scope: credentialScope(for: date),
            previousSignature: previousSignature, chunkSHA256: chunkSHA256
        )
    }

    /// The signature of one chunk: `previous` is the seed signature (`SignedRequest.signature`)
    /// for the first chunk and the previous chunk's signature after that; the last chunk is
    /// empty. `date` is the seed request's date.
    public func chunkSignature(previous: String, chunk: UnsafeRawBufferPointer, date: Date) -> String {
        let stringToSign = chunkStringToSign(previousSignature: previous, chunkSHA256: SigV4.sha256Hex(chunk), date: date)
        return SigV4.signature(of: stringToSign, key: signingKey(for: date))
    }

    /// The signature of one chunk; see `chunkSignature(previous:chunk:date:)`.
    public func chunkSignature(previous: String, chunk: [UInt8], date: Date) -> String {
        chunk.withUnsafeBytes { chunkSignature(previous: previous, chunk: $0, date: date) }
    }

    // MARK: - Keys

    /// `YYYYMMDD/region/service/aws4_request` for the day of `date` (UTC).
    public func credentialScope(for date: Date) -> String {
        SigV4.credentialScope(dateStamp: SigV4.dateStamp(date), region: region, service: service)
    }

    /// The signing key for the day of `date` (UTC), derived once per day and then cached.
    public func signingKey(for date: Date) -> SymmetricKey {
        keyCache.key(for: .init(
            secretAccessKey: credentials.secretAccessKey, dateStamp: SigV4.dateStamp(date),
            region: region, service: service
        ))
    }

    /// How many times a signing key was derived (cache misses), for tests.
    var keyDerivations: Int { keyCache.derivations }

    private func canonicalURI(_ path: String) -> String {
        SigV4.canonicalURI(path: path, normalize: options.normalizePath, doubleEncode: options.doubleEncodePath)
    }

    /// Query parameters a presigned request sets itself; stale ones in the input are dropped.
    private static let presignParameterNames: Set<String> = [
        "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
        "X-Amz-Security-Token", "X-Amz-SignedHeaders", "X-Amz-Signature",
    ]
}

extension SigV4Signer: CustomStringConvertible, CustomReflectable {
    /// `SigV4Signer(s3/us-east-1, AWSCredentials(accessKeyID: AKIA…MPLE, …))`.
    public var description: String { "SigV4Signer(\(service)/\(region), \(credentials))" }

    /// Shows the service, region, options and masked credentials, never the key cache.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: ["credentials": credentials, "region": region, "service": service, "options": options] as KeyValuePairs<String, Any>,
            displayStyle: .struct
        )
    }
}

/// Frames an `aws-chunked` body chunk by chunk, chaining each chunk's signature to the previous
/// one, starting from the seed signature of the signed request.
public struct SigV4ChunkEncoder: Sendable {
    public let signer: SigV4Signer
    /// The seed request's date.
    public let date: Date
    /// The signature of the last chunk encoded (the seed signature before the first).
    public private(set) var previousSignature: String

    /// An encoder for the body of `seed`, which was signed by `signer` with the payload
    /// `.streaming`.
    public init(signer: SigV4Signer, seed: SignedRequest) {
        self.signer = signer
        self.date = seed.date
        self.previousSignature = seed.signature
    }

    /// Signs and frames one chunk (`hex(size);chunk-signature=SIG\r\n<data>\r\n`). Every
    /// chunk but the last must be at least 8 KiB; the last is empty.
    public mutating func encode(_ chunk: UnsafeRawBufferPointer) -> [UInt8] {
        let signature = signer.chunkSignature(previous: previousSignature, chunk: chunk, date: date)
        previousSignature = signature
        return SigV4.encodeChunk(chunk, signature: signature)
    }

    /// Signs and frames one chunk; see `encode(_:)`.
    public mutating func encode(_ chunk: [UInt8]) -> [UInt8] {
        chunk.withUnsafeBytes { encode($0) }
    }
}

/// Derived signing keys by (secret, day, region, service). Holds the last two days, so that
/// requests on either side of midnight UTC do not evict each other.
final class SigningKeyCache: Sendable, CustomReflectable {
    struct Scope: Equatable {
        let secretAccessKey: String
        let dateStamp: String
        let region: String
        let service: String
    }

    private struct Entry {
        let scope: Scope
        let key: SymmetricKey
    }

    private struct State {
        var entries: [Entry] = []
        var derivations = 0
    }

    private static let capacity = 2
    private let state = Mutex(State())

    /// The key for `scope`, derived (four HMACs) only when not cached.
    func key(for scope: Scope) -> SymmetricKey {
        state.withLock { state in
            if let entry = state.entries.first(where: { $0.scope == scope }) { return entry.key }
            let key = SigV4.deriveSigningKey(
                secretAccessKey: scope.secretAccessKey, dateStamp: scope.dateStamp,
                region: scope.region, service: scope.service
            )
            state.entries.append(Entry(scope: scope, key: key))
            if state.entries.count > Self.capacity { state.entries.removeFirst() }
            state.derivations += 1
            return key
        }
    }

    /// How many keys were derived (cache misses).
    var derivations: Int { state.withLock { $0.derivations } }

    /// No children: the cache holds the secret and derived keys.
    var customMirror: Mirror { Mirror(self, children: [:]) }
}
