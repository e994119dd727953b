import CCurl
import Glibc
import LifeboatCore

/// What to do with a response body.
enum ResponseBodyHandling {
    /// Keep it in memory; a 2xx body of more than `limit` bytes fails the request. Any other
    /// status's body is kept up to `max(limit, HTTPClient.defaultErrorBodyLimit)` bytes (the
    /// rest is read and dropped).
    case collect(limit: Int)
    /// Give a 2xx body to `sink` as it arrives; keep any other status's body in memory up to
    /// `errorBodyLimit` bytes (the rest is read and dropped).
    case stream(sink: (UnsafeRawBufferPointer) throws -> Void, errorBodyLimit: Int)
}

/// The state of one transfer, shared with libcurl's callbacks through an unretained
/// `Unmanaged` pointer (CURLOPT_READDATA, WRITEDATA, HEADERDATA, SEEKDATA, XFERINFODATA). It
/// lives on the stack of `HTTPClient.perform` until libcurl is done with it and is only
/// touched by the thread running the transfer (libcurl calls the callbacks from inside
/// `EasyHandle.perform`).
final class TransferContext {
    let method: HTTPMethod
    let displayURL: String
    /// Looked at by the progress callback: once cancelled, the transfer is aborted.
    let cancellation: Cancellation
    /// True once the progress callback aborted the transfer for the cancellation.
    private(set) var wasCancelled = false

    // Request body.
    private let body: HTTPRequest.Body
    private let bodyLength: Int64
    /// Bytes of the body given to libcurl so far (since the last rewind).
    private var bodyOffset: Int64 = 0

    // Response.
    private let handling: ResponseBodyHandling
    /// The status of the latest status line (a `100 Continue` is followed by the final one).
    private(set) var status = 0
    private(set) var headers = HTTPHeaders()
    private(set) var collected: [UInt8] = []
    private(set) var isTruncated = false
    private(set) var bodyByteCount: Int64 = 0

    /// The error that made a callback stop the transfer; `perform` rethrows it as it is.
    private(set) var callbackError: (any Error)?

    init(method: HTTPMethod, displayURL: String, body: HTTPRequest.Body, handling: ResponseBodyHandling,
         cancellation: Cancellation) {
        self.method = method
        self.displayURL = displayURL
        self.cancellation = cancellation
        self.body = body
        self.bodyLength = body.length
        self.handling = handling
    }

    var opaque: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    static func from(_ pointer: UnsafeMutableRawPointer?) -> TransferContext? {
        pointer.map { Unmanaged<TransferContext>.fromOpaque($0).takeUnretainedValue() }
    }

    // MARK: Request body (CURLOPT_READFUNCTION, CURLOPT_SEEKFUNCTION)

    /// Fills `buffer` with the next body bytes; returns how many, 0 at the end, or
    /// CURL_READFUNC_ABORT after recording why.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let remaining = bodyLength - bodyOffset
        guard remaining > 0, buffer.count > 0 else { return 0 }
        let wanted = Int(min(Int64(buffer.count), remaining))
        let target = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<wanted])
        let produced: Int
        switch body {
        case .none:
            produced = 0
        case .bytes(let bytes):
            bytes.withUnsafeBytes { source in
                let start = Int(bodyOffset)
                target.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[start..<(start + wanted)]))
            }
            produced = wanted
        case .stream(let stream):
            do {
                produced = try stream.read(target)
            } catch {
                return abort(with: error)
            }
        }
        guard produced > 0, produced <= wanted else {
            let problem = produced <= 0
                ? "the body source ended after \(bodyOffset) of its \(bodyLength) bytes"
                : "the body source wrote \(produced) bytes into a buffer of \(wanted)"
            return abort(with: LifeboatError(.internalError, "\(method) \(displayURL): \(problem)",
                                             hint: "A streamed request body must produce exactly the length it declares."))
        }
        bodyOffset += Int64(produced)
        return produced
    }

    private func abort(with error: any Error) -> Int {
        callbackError = error
        return Int(CURL_READFUNC_ABORT)
    }

    /// Moves the body back to `offset` (libcurl asks for 0 to send the body again).
    func seek(to offset: Int64, origin: Int32) -> Int32 {
        guard origin == SEEK_SET, offset >= 0, offset <= bodyLength else { return CURL_SEEKFUNC_CANTSEEK }
        switch body {
        case .none, .bytes:
            bodyOffset = offset
            return CURL_SEEKFUNC_OK
        case .stream(let stream):
            guard offset == 0, let rewind = stream.rewind else { return CURL_SEEKFUNC_CANTSEEK }
            do {
                try rewind()
            } catch {
                callbackError = error
                return CURL_SEEKFUNC_FAIL
            }
            bodyOffset = 0
            return CURL_SEEKFUNC_OK
        }
    }

    // MARK: Progress (CURLOPT_XFERINFOFUNCTION)

    /// Whether the transfer goes on; false (remembered in `wasCancelled`) once the run is
    /// cancelled. libcurl calls this whenever it looks at the transfer, data or not.
    func shouldContinue() -> Bool {
        guard cancellation.isCancelled else { return true }
        wasCancelled = true
        return false
    }

    // MARK: Response (CURLOPT_HEADERFUNCTION, CURLOPT_WRITEFUNCTION)

    /// One header line as libcurl delivers it, with its CRLF.
    func header(_ line: UnsafeRawBufferPointer) {
        var text = Substring(String(decoding: line, as: UTF8.self))
        while let last = text.last, last == "\r\n" || last == "\n" || last == "\r" { text = text.dropLast() }
        if text.hasPrefix("HTTP/") {
            // A new status line starts a new header block (after 100 Continue, or a proxy's
            // CONNECT response): only the last block describes the response.
            let fields = text.split(separator: " ", maxSplits: 2)
            status = fields.count >= 2 ? Int(fields[1]) ?? 0 : 0
            headers = HTTPHeaders()
        } else if text.isEmpty {
            return
        } else if let first = text.first, first == " " || first == "\t" {
            // An obsolete folded continuation line: part of the previous field's value.
            headers.continueLastValue(text.trimmed(of: " \t"))
        } else if let colon = text.firstIndex(of: ":") {
            let name = text[..<colon].trimmed(of: " \t")
            let value = text[text.index(after: colon)...].trimmed(of: " \t")
            headers.append(name, value)
        }
    }

    /// One piece of the body; false stops the transfer (after recording why).
    func receive(_ chunk: UnsafeRawBufferPointer) -> Bool {
        bodyByteCount += Int64(chunk.count)
        switch handling {
        case .stream(let sink, let errorBodyLimit):
            if (200..<300).contains(status) {
                do {
                    try sink(chunk)
                } catch {
                    callbackError = error
                    return false
                }
                return true
            }
            keep(chunk, limit: errorBodyLimit)
            return true
        case .collect(let limit):
            // The limit bounds the body the caller asked for. Any other status's body is an
            // error document (S3's answer to a ranged GET of a deleted object is larger than
            // the range): kept like a streamed request's, so the caller learns what happened.
            guard (200..<300).contains(status) else {
                keep(chunk, limit: max(limit, HTTPClient.defaultErrorBodyLimit))
                return true
            }
            guard collected.count + chunk.count <= limit else {
                callbackError = LifeboatError(
                    .network, "\(method) \(displayURL): the response body is larger than the limit of \(limit) bytes",
                    hint: "The server sent a larger response than expected; check the endpoint is an S3 service.",
                    underlying: HTTPTransportError(kind: .responseTooLarge, curlCode: 0, curlCodeName: "none",
                                                   method: method, url: displayURL,
                                                   detail: "more than \(limit) bytes"))
                return false
            }
            if collected.isEmpty, let length = Int(headers["Content-Length"] ?? ""), length > chunk.count, length <= limit {
                // Room for the whole body at once (a range of 8 MiB): no growing by doubling, so
                // no copying what arrived so far and no second buffer while it is made.
                collected.reserveCapacity(length)
            }
            collected.append(contentsOf: chunk)
            return true
        }
    }

    private func keep(_ chunk: UnsafeRawBufferPointer, limit: Int) {
        let room = max(0, limit - collected.count)
        if chunk.count > room { isTruncated = true }
        collected.append(contentsOf: chunk.prefix(room))
    }
}

extension StringProtocol {
    func trimmed(of set: String) -> String {
        var text = Substring(self)
        while let first = text.first, set.contains(first) { text = text.dropFirst() }
        while let last = text.last, set.contains(last) { text = text.dropLast() }
        return String(text)
    }
}
