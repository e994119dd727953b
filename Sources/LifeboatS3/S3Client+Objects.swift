import Foundation
import LifeboatCore
import LifeboatHTTP
import Logging

/// What S3 mirrors need besides a repository's requests: whole objects streamed with their
/// headers (content type, user metadata) and pinned to a listed ETag, and objects written
/// with headers of their own.
extension S3Client {
    /// How a conditional download ended.
    public enum Download: Sendable {
        /// The whole body went to the sink; these are the response's headers.
        case complete(HTTPHeaders)
        /// `If-Match` failed (412): the object was replaced since it was listed.
        case changed
        /// No such key (404): the object was deleted since it was listed.
        case missing
    }

    /// GetObject of a whole object, its body handed to `sink` as it arrives (memory stays
    /// bounded whatever the size). With `ifMatch` (the listed ETag) the server refuses to send
    /// another version of the object (`.changed`).
    ///
    /// Failures worth another try are retried as `send` retries them while no byte has reached
    /// `sink`; a transfer that breaks after that throws the transport's `.network` error as it
    /// is, so that the caller starts the object over (its sink has seen part of it).
    public func download(key: String, ifMatch: String?, sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Download {
        var headers: [SigV4Request.Header] = []
        if let ifMatch, !ifMatch.isEmpty { headers.append(SigV4Request.Header("If-Match", ifMatch)) }
        let call = S3Call(action: "GetObject", method: .get, key: key, headers: headers, acceptNotFound: true)
        var attempts: [String] = []
        var attempt = 0
        while true {
            attempt += 1
            try cancellation.checkCancelled()
            let request = signedRequest(call)
            let started = ContinuousClock.now
            var delivered = false
            let outcome: String
            do {
                let response = try http.perform(request) { bytes in
                    delivered = true
                    try sink(bytes)
                }
                logger.debug("S3 request", metadata: attemptMetadata(
                    call, url: request.url, attempt: attempt, duration: .now - started, outcome: .response(response)))
                let document = response.isSuccess ? nil : try? XMLNode.parse(response.body)
                let code = document?["Code"] ?? ""
                switch response.status {
                case 200..<300: return .complete(response.headers)
                case 404 where code != "NoSuchBucket": return .missing
                case 412: return .changed
                default: break
                }
                guard Self.isRetryable(status: response.status, code: code) else {
                    throw mapError(action: "GetObject", method: .get, key: key, status: response.status,
                                   error: document ?? diagnose(call, status: response.status), headers: response.headers)
                }
                outcome = "\(response.status) \(code.isEmpty ? HTTPStatus.reason(response.status) : code)"
            } catch let error as LifeboatError where error.code == .network {
                logger.debug("S3 request", metadata: attemptMetadata(
                    call, url: request.url, attempt: attempt, duration: .now - started, outcome: .failure(error)))
                if delivered { throw error }
                guard let transport = error.transportError, transport.isRetryable else {
                    throw transportFailure(error, call: call, attempts: attempts)
                }
                outcome = "\(transport.kind): \(transport.detail)"
            }
            attempts.append(outcome)
            guard attempt < configuration.retry.maxAttempts else {
                throw LifeboatError(
                    .storage, "S3 GetObject \(display(key)) failed after \(attempt) attempts: "
                        + attempts.enumerated().map { "\($0.offset + 1)) \($0.element)" }.joined(separator: "; "),
                    hint: "The endpoint \(configuration.endpoint) kept failing; check that the S3 service is up and reachable, then run the command again.")
            }
            try cancellation.checkCancelled()
            let delay = configuration.retry.delay(afterAttempt: attempt) { Double.random(in: $0) }
            logger.warning("S3 request failed; retrying", metadata: [
                "s3.action": "GetObject", "s3.object": "\(display(key))", "s3.attempt": "\(attempt)",
                "s3.outcome": "\(outcome)", "retry.delay_seconds": "\(String(format: "%.2f", delay))",
            ])
            sleep(delay)
        }
    }

    /// HeadObject with every response header (content type, user metadata), or nil when there
    /// is no such object.
    public func headObjectWithHeaders(key: String) throws -> (head: Head, headers: HTTPHeaders)? {
        let response = try send(S3Call(action: "HeadObject", method: .head, key: key, acceptNotFound: true))
        if response.status == 404 { return nil }
        let lastModified = response.headers["Last-Modified"] ?? ""
        let modified = Self.parseHTTPDate(lastModified) ?? Date(timeIntervalSince1970: 0)
        return (Head(size: try contentLength(of: response, key: key), etag: response.headers["ETag"] ?? "",
                     modified: modified), response.headers)
    }

    /// PutObject with headers of the caller's (`Content-Type`, `x-amz-meta-…`, `Cache-Control`,
    /// …) besides the checksum. Returns the new object's ETag.
    @discardableResult
    public func putObject(key: String, bytes: [UInt8], headers: [(name: String, value: String)]) throws -> String {
        let (payload, checksum) = integrity(of: bytes)
        let response = try send(S3Call(action: "PutObject", method: .put, key: key,
                                       headers: [checksum] + headers.map { SigV4Request.Header($0.name, $0.value) },
                                       body: .bytes(bytes), payload: payload))
        return response.headers["ETag"] ?? ""
    }

    /// Writes an object of `size` bytes read from `read` (which fills the buffer it is given
    /// and returns the count, 0 at the end), with headers of the caller's: one PutObject up to
    /// `partSize`, else a multipart upload whose parts go up one after the other (memory: one
    /// part). A failed multipart upload is aborted.
    public func uploadObject(key: String, size: Int64, headers: [(name: String, value: String)], partSize: Int = 8 << 20,
                             read: (UnsafeMutableRawBufferPointer) throws -> Int) throws {
        func fill(_ count: Int) throws -> [UInt8] {
            var part = [UInt8](repeating: 0, count: count)
            var filled = 0
            while filled < count {
                let n = try part.withUnsafeMutableBytes { try read(UnsafeMutableRawBufferPointer(rebasing: $0[filled...])) }
                guard n > 0 else {
                    throw LifeboatError(.integrity, "the content for \(display(key)) ended after \(filled) of \(count) bytes")
                }
                filled += n
            }
            return part
        }
        if size <= Int64(partSize) {
            try putObject(key: key, bytes: try fill(Int(size)), headers: headers)
            return
        }
        let uploadID = try createMultipartUpload(key: key, headers: headers.map { SigV4Request.Header($0.name, $0.value) })
        do {
            var parts: [UploadedPart] = []
            var offset: Int64 = 0
            while offset < size {
                let number = parts.count + 1
                let length = Int(min(Int64(S3Store.partSize(number: number, base: partSize)), size - offset))
                parts.append(try uploadPart(key: key, uploadID: uploadID, partNumber: number, bytes: try fill(length)))
                offset += Int64(length)
            }
            try completeMultipartUpload(key: key, uploadID: uploadID, parts: parts)
        } catch {
            do {
                try forCleanup().abortMultipartUpload(key: key, uploadID: uploadID)
            } catch let abortError {
                logger.warning("could not abort the multipart upload; its parts stay until it is aborted", metadata: [
                    "s3.object": "\(display(key))", "s3.upload_id": "\(uploadID)", "error": "\(String(describing: abortError))",
                ])
            }
            throw error
        }
    }

    /// A key of a listing asked for with `encoding-type=url`: percent-escapes decoded, and `+`
    /// as a space (how AWS writes it). S3 keys are UTF-8; anything else is refused.
    func decodeListedKey(_ encoded: String, listing prefix: String) throws -> String {
        var bytes: [UInt8] = []
        var iterator = Array(encoded.utf8).makeIterator()
        func hexValue(_ byte: UInt8?) -> UInt8? {
            guard let byte else { return nil }
            switch byte {
            case 0x30...0x39: return byte - 0x30
            case 0x41...0x46: return byte - 0x41 + 10
            case 0x61...0x66: return byte - 0x61 + 10
            default: return nil
            }
        }
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"):
                bytes.append(0x20)
            case UInt8(ascii: "%"):
                guard let high = hexValue(iterator.next()), let low = hexValue(iterator.next()) else {
                    throw LifeboatError(.storage, "S3 ListObjectsV2 \(display(prefix)) listed a key with a malformed escape: '\(encoded)'")
                }
                bytes.append(high << 4 | low)
            default:
                bytes.append(byte)
            }
        }
        guard let key = String(validating: bytes, as: UTF8.self) else {
            throw LifeboatError(.storage, "S3 ListObjectsV2 \(display(prefix)) listed a key that is not UTF-8: '\(encoded)'",
                                hint: "S3 keys are UTF-8; check that \(configuration.endpoint) is an S3-compatible service.")
        }
        return key
    }
}
