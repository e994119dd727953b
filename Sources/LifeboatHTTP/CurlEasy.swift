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

/// One libcurl easy handle, the multi handle that runs its transfers, and its error buffer,
/// freed together in `deinit`.
///
/// Transfers run through a multi handle of the easy handle's own rather than
/// `curl_easy_perform` (which does the same with a multi handle it keeps hidden): the loop
/// waits in `curl_multi_poll`, which another thread can end at once with `wakeup()`, so a
/// cancelled transfer is looked at (and its progress callback aborts it) without waiting for
/// libcurl's next scheduled look, up to a second away on a stalled connection. The multi
/// handle keeps the connections (and DNS and TLS session caches) across requests: the pool
/// in `HTTPClient` reuses handles so that requests reuse connections.
///
/// `@unchecked Sendable` because the pool moves a handle between threads: it is checked out
/// under the pool's lock by one request, used only by the thread running that request, and
/// checked back in when the request is over, so no two threads ever use it at once. libcurl
/// allows an easy handle to be used from different threads one after the other. The one
/// exception is `wakeup()`, which libcurl allows from any thread at any time.
final class EasyHandle: @unchecked Sendable {
    private let raw: UnsafeMutableRawPointer
    /// The multi handle `perform` runs the transfer in; the easy handle is in it only while
    /// a transfer runs.
    private let multi: UnsafeMutableRawPointer
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
        guard let multi = curl_multi_init() else {
            curl_easy_cleanup(raw)
            throw LifeboatError(.internalError, "unable to create a libcurl multi handle",
                                hint: "libcurl could not allocate one; the machine may be out of memory.")
        }
        self.raw = raw
        self.multi = multi
        errorBuffer = .allocate(capacity: Self.errorBufferSize)
        errorBuffer.initialize(repeating: 0, count: Self.errorBufferSize)
    }

    deinit {
        curl_multi_cleanup(multi)  // closes the cached connections
        curl_easy_cleanup(raw)  // may still use the buffer
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

    /// The longest wait in `curl_multi_poll` when nothing happens; libcurl shortens it to its
    /// own next timeout, and `wakeup()` ends it. (`curl_easy_perform` waits a second too.)
    private static let pollMilliseconds: Int32 = 1000

    /// Runs the transfer set up by the options; blocks the calling thread until it is over.
    ///
    /// libcurl looks at the transfer whenever its socket is ready, a timeout of its own is
    /// due, a second has passed, or `wakeup()` was called, and calls the progress callback
    /// each time (which is how a cancelled transfer is aborted).
    func perform() throws(CurlFailure) {
        errorBuffer[0] = 0
        try multiCall("curl_multi_add_handle") { curl_multi_add_handle(multi, raw) }
        defer { curl_multi_remove_handle(multi, raw) }
        while true {
            var running: Int32 = 0
            try multiCall("curl_multi_perform") { curl_multi_perform(multi, &running) }
            if running == 0 { break }
            try multiCall("curl_multi_poll") { curl_multi_poll(multi, nil, 0, Self.pollMilliseconds, nil) }
        }
        var code = CURLE_OK
        var queued: Int32 = 0
        while let message = curl_multi_info_read(multi, &queued) {
            if message.pointee.msg == CURLMSG_DONE { code = message.pointee.data.result }
        }
        guard code != CURLE_OK else { return }
        var text = String(cString: errorBuffer).trimmingTrailingWhitespace
        if text.isEmpty { text = String(cString: curl_easy_strerror(code)) }
        throw CurlFailure(code: code, text: text)
    }

    /// Makes a `perform` running on another thread look at its transfer now. Callable from
    /// any thread (`curl_multi_wakeup` is made for that); one that comes when no transfer
    /// runs only makes the next transfer's first wait return early.
    func wakeup() {
        _ = curl_multi_wakeup(multi)
    }

    /// A failure of the multi interface itself (not of the transfer: that is in the message
    /// `curl_multi_info_read` returns) is an internal failure: out of memory, a bad handle.
    private func multiCall(_ name: String, _ body: () -> CURLMcode) throws(CurlFailure) {
        let code = body()
        guard code != CURLM_OK else { return }
        throw CurlFailure(code: CURLE_FAILED_INIT,
                          text: "\(name) failed: \(String(cString: curl_multi_strerror(code))) (CURLMcode \(code.rawValue))")
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

    func set(_ option: CURLoption, xferinfoCallback: curl_xferinfo_callback) throws {
        try setting(option) { lifeboat_curl_easy_setopt_xferinfo_callback($0, option, xferinfoCallback) }
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

    /// An off_t-valued CURLINFO counter (bytes sent), for logs and statistics: 0 when libcurl
    /// has no value, which is never a reason to fail a request that got its answer.
    func counter(_ info: CURLINFO) -> Int64 {
        var value: curl_off_t = 0
        guard lifeboat_curl_easy_getinfo_off_t(raw, info, &value) == CURLE_OK else { return 0 }
        return Int64(value)
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
