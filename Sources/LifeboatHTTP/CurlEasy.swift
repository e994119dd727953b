import CCurl
import Glibc
import LifeboatCore

/// The result of `curl_global_init`, which must run once per process before any other libcurl
/// call and is not safe to run twice at the same time. A global's initializer runs exactly
/// once, under `swift_once`, however many threads ask for it first; so does ignoring SIGPIPE
/// (see `HTTPClient`). `curl_global_cleanup` is never called: the handles may live as long as
/// the process.
private let curlGlobalInitCode: UInt32 = {
    // With CURLOPT_NOSIGNAL (needed for threads), libcurl no longer ignores SIGPIPE around its
    // own writes; a peer that closes a connection must give EPIPE, not kill the process.
    // (LifeboatIO's ChildProcess does the same, for pipes to children.)
    signal(SIGPIPE, SIG_IGN)
    return curl_global_init(Int(CURL_GLOBAL_DEFAULT)).rawValue
}()

/// Initializes libcurl for the process (once) or throws why it could not.
func initializeCurlOnce() throws {
    let code = CURLcode(rawValue: curlGlobalInitCode)
    guard code != CURLE_OK else { return }
    throw LifeboatError(
        .internalError,
        "unable to initialize libcurl: \(String(cString: curl_easy_strerror(code))) (\(String(cString: lifeboat_curl_code_name(code))))",
        hint: "libcurl or its TLS library could not start; check that libcurl4 and OpenSSL are installed correctly.")
}

/// One libcurl easy handle and its error buffer, freed together in `deinit`.
///
/// The handle keeps its connections (and DNS and TLS session caches) across requests: the
/// pool in `HTTPClient` reuses handles so that requests reuse connections.
///
/// `@unchecked Sendable` because the pool moves a handle between threads: it is checked out
/// under the pool's lock by one request, used only by the thread running that request, and
/// checked back in when the request is over, so no two threads ever use it at once. libcurl
/// allows an easy handle to be used from different threads one after the other.
final class EasyHandle: @unchecked Sendable {
    private let raw: UnsafeMutableRawPointer
    /// CURLOPT_ERRORBUFFER: libcurl writes a failure's text here; read at once after a failure.
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private static let errorBufferSize = Int(CURL_ERROR_SIZE)
    /// The request header list libcurl points to (CURLOPT_HTTPHEADER), kept alive until the
    /// handle is reset.
    private var headerList: CurlHeaderList?

    init() throws {
        guard let raw = curl_easy_init() else {
            throw LifeboatError(.internalError, "unable to create a libcurl easy handle",
                                hint: "libcurl could not allocate one; the machine may be out of memory.")
        }
        self.raw = raw
        errorBuffer = .allocate(capacity: Self.errorBufferSize)
        errorBuffer.initialize(repeating: 0, count: Self.errorBufferSize)
    }

    deinit {
        curl_easy_cleanup(raw)  // closes the handle's connections; may still use the buffer
        errorBuffer.deallocate()
    }

    /// Every libcurl call on this handle goes through here: clears the error buffer, makes the
    /// call and, when it fails, reads the buffer at once (the next call may change it).
    func call(_ body: (UnsafeMutableRawPointer) -> CURLcode) throws(CurlFailure) {
        errorBuffer[0] = 0
        let code = body(raw)
        guard code != CURLE_OK else { return }
        var text = String(cString: errorBuffer).trimmingTrailingWhitespace
        if text.isEmpty { text = String(cString: curl_easy_strerror(code)) }
        throw CurlFailure(code: code, text: text)
    }

    /// Runs the transfer set up by the options; blocks the calling thread until it is over.
    func perform() throws(CurlFailure) {
        try call { curl_easy_perform($0) }
    }

    /// Forgets every option (our callbacks, context pointers and header list with them) but
    /// keeps the connections, so the next request can reuse them.
    func reset() {
        curl_easy_reset(raw)
        headerList = nil
    }

    // MARK: Options

    func set(_ option: CURLoption, _ value: Int) throws {
        try setting(option) { lifeboat_curl_easy_setopt_long($0, option, value) }
    }

    func set(_ option: CURLoption, _ value: Bool) throws {
        try set(option, value ? 1 : 0)
    }

    func set(_ option: CURLoption, offset value: Int64) throws {
        try setting(option) { lifeboat_curl_easy_setopt_off_t($0, option, curl_off_t(value)) }
    }

    /// A string option; libcurl copies the string.
    func set(_ option: CURLoption, _ value: String) throws {
        try value.withCString { text in
            try setting(option) { lifeboat_curl_easy_setopt_string($0, option, text) }
        }
    }

    func set(_ option: CURLoption, pointer value: UnsafeMutableRawPointer?) throws {
        try setting(option) { lifeboat_curl_easy_setopt_ptr($0, option, value) }
    }

    func set(_ option: CURLoption, callback: lifeboat_curl_io_callback) throws {
        try setting(option) { lifeboat_curl_easy_setopt_io_callback($0, option, callback) }
    }

    func set(_ option: CURLoption, seekCallback: curl_seek_callback) throws {
        try setting(option) { lifeboat_curl_easy_setopt_seek_callback($0, option, seekCallback) }
    }

    /// Sets CURLOPT_ERRORBUFFER to this handle's buffer (after every reset).
    func setErrorBuffer() throws {
        try set(CURLOPT_ERRORBUFFER, pointer: UnsafeMutableRawPointer(errorBuffer))
    }

    /// Sets CURLOPT_HTTPHEADER and keeps the list alive until the next reset.
    func setHeaders(_ list: CurlHeaderList) throws {
        try setting(CURLOPT_HTTPHEADER) { lifeboat_curl_easy_setopt_slist($0, CURLOPT_HTTPHEADER, list.raw) }
        headerList = list
    }

    /// A long-valued CURLINFO.
    func info(_ info: CURLINFO) throws -> Int {
        var value = 0
        do {
            try call { lifeboat_curl_easy_getinfo_long($0, info, &value) }
        } catch {
            throw LifeboatError(.internalError, "unable to read libcurl transfer information \(info.rawValue): \(error.text) (\(error.name))")
        }
        return value
    }

    /// A failure to set an option is Lifeboat's bug or a libcurl without a needed feature.
    private func setting(_ option: CURLoption, _ body: (UnsafeMutableRawPointer) -> CURLcode) throws {
        do {
            try call(body)
        } catch {
            let name = curl_easy_option_by_id(option).map { String(cString: $0.pointee.name) } ?? "\(option.rawValue)"
            throw LifeboatError(
                .internalError, "unable to set libcurl option CURLOPT_\(name): \(error.text) (\(error.name))",
                hint: "This libcurl may be too old or built without a feature Lifeboat needs (libcurl 7.85 or newer, with HTTP and TLS).")
        }
    }
}

/// A libcurl `curl_slist` of request header lines, freed in `deinit`.
final class CurlHeaderList {
    private(set) var raw: UnsafeMutablePointer<curl_slist>?

    init() { raw = nil }

    deinit { curl_slist_free_all(raw) }

    /// Appends one line (libcurl copies it).
    func append(_ line: String) throws {
        guard let appended = curl_slist_append(raw, line) else {
            throw LifeboatError(.internalError, "unable to add a header line to a libcurl list",
                                hint: "libcurl could not allocate memory; the machine may be out of memory.")
        }
        raw = appended
    }
}

extension String {
    var trimmingTrailingWhitespace: String {
        var text = Substring(self)
        while let last = text.last, last.isWhitespace { text = text.dropLast() }
        return String(text)
    }
}
