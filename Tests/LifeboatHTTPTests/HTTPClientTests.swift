import Foundation
import LifeboatCore
import LifeboatHTTP
import Synchronization
import Testing

/// An error of the test's own, to see that the client gives back exactly what a body
/// closure threw.
struct Boom: Error, Equatable {
    let token: Int
}

/// Runs `body` on a thread of its own with a fresh loopback server, stopped afterwards.
func withServer<T: Sendable>(
    tls: SelfSignedCertificate? = nil, _ body: @escaping @Sendable (TestHTTPServer) throws -> T
) async throws -> T {
    try await onThread {
        let server = try TestHTTPServer(tls: tls.map { ($0.certificate, $0.key) })
        defer { server.stop() }
        return try body(server)
    }
}

/// The `LifeboatError` `body` throws, with its transport failure; records an issue otherwise.
func networkError(
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) -> (error: LifeboatError, transport: HTTPTransportError)? {
    do {
        try body()
        Issue.record("expected a network error, but the request succeeded", sourceLocation: sourceLocation)
    } catch let error as LifeboatError {
        guard let transport = error.transportError else {
            Issue.record("expected a network error, got \(error)", sourceLocation: sourceLocation)
            return nil
        }
        #expect(error.code == .network, sourceLocation: sourceLocation)
        return (error, transport)
    } catch {
        Issue.record("expected a LifeboatError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

func decodeEcho(_ response: HTTPResponse) throws -> Echo {
    try JSONDecoder().decode(Echo.self, from: Data(response.body))
}

extension HTTPBodyStream {
    /// `length` bytes of the test pattern; counts the calls to `read` and the largest buffer.
    static func pattern(length: Int64, stats: PatternStats, rewindable: Bool = true) -> HTTPBodyStream {
        HTTPBodyStream(length: length, rewind: rewindable ? { stats.rewind() } : nil) { buffer in
            let produced = Pattern.fill(buffer, offset: stats.offset)
            stats.record(produced: produced, bufferSize: buffer.count)
            return produced
        }
    }
}

/// What a pattern body source saw (used on one thread at a time; a class so closures share it).
final class PatternStats {
    private(set) var offset: Int64 = 0
    private(set) var calls = 0
    private(set) var largestBuffer = 0
    private(set) var rewinds = 0

    func record(produced: Int, bufferSize: Int) {
        offset += Int64(produced)
        calls += 1
        largestBuffer = max(largestBuffer, bufferSize)
    }

    func rewind() {
        offset = 0
        rewinds += 1
    }
}

@Suite(.enabled(if: TestEnvironment.canRun(needing: "python3"), "needs python3 for the loopback HTTP server"))
struct HTTPClientTests {
    @Test(.timeLimit(.minutes(10)))
    func getIntoMemory() async throws {
        try await withServer { server in
            let client = try HTTPClient()
            var headers: HTTPHeaders = ["X-Amz-Date": "20260101T000000Z", "x-custom": "a", "X-Empty": ""]
            headers.append("x-custom", "b")
            let response = try client.perform(HTTPRequest(.get, server.url("/echo?list-type=2"), headers: headers))
            #expect(response.status == 200)
            #expect(response.isSuccess)
            #expect(response.headers["content-type"] == "application/json")
            #expect(response.bodyByteCount == Int64(response.body.count))
            let echo = try decodeEcho(response)
            #expect(echo.method == "GET")
            #expect(echo.path == "/echo?list-type=2")
            #expect(echo.values("user-agent") == ["lifeboat/\(LifeboatVersion.current)"])
            #expect(echo.values("x-custom") == ["a", "b"])
            #expect(echo.values("x-empty") == [""])
            #expect(echo.values("expect").isEmpty)
            #expect(echo.length == 0)
            let names = echo.headers.compactMap { $0.first?.lowercased() }
            let date = try #require(names.firstIndex(of: "x-amz-date"))
            let custom = try #require(names.firstIndex(of: "x-custom"))
            #expect(date < custom, "headers are sent in the order given")
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func putStreamed50MB() async throws {
        try await withServer { server in
            let client = try HTTPClient()
            let size: Int64 = 50_000_000
            let stats = PatternStats()
            let response = try client.perform(HTTPRequest(
                .put, server.url("/echo"), headers: ["Content-Type": "application/octet-stream"],
                body: .stream(.pattern(length: size, stats: stats))))
            #expect(response.status == 200)
            let echo = try decodeEcho(response)
            let expected = try client.perform(HTTPRequest(.get, server.url("/pattern-sha256/\(size)"))).bodyText
            #expect(echo.method == "PUT")
            #expect(echo.length == Int(size))
            #expect(echo.sha256 == expected)
            #expect(echo.values("content-length") == ["\(size)"])
            #expect(echo.values("expect").isEmpty)
            #expect(echo.values("transfer-encoding").isEmpty)
            #expect(response.bytesSent == size)
            // Bounded: libcurl asked for the body piece by piece, in buffers of at most 2 MiB.
            #expect(stats.calls >= 20)
            #expect(stats.largestBuffer <= 2 << 20)
            #expect(stats.offset == size)
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func postAndDeleteBodies() async throws {
        try await withServer { server in
            let client = try HTTPClient()
            let helloSHA256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

            let post = try decodeEcho(client.perform(HTTPRequest(.post, server.url("/echo?delete"), body: .bytes(Array("hello".utf8)))))
            #expect(post.method == "POST")
            #expect(post.sha256 == helloSHA256)
            #expect(post.values("content-type").isEmpty, "no form content type is made up")

            let typed = try decodeEcho(client.perform(HTTPRequest(
                .post, server.url("/echo"), headers: ["Content-Type": "application/xml"], body: .bytes(Array("hello".utf8)))))
            #expect(typed.values("content-type") == ["application/xml"])

            let delete = try decodeEcho(client.perform(HTTPRequest(.delete, server.url("/echo/key"))))
            #expect(delete.method == "DELETE")
            #expect(delete.length == 0)

            let deleteWithBody = try decodeEcho(client.perform(HTTPRequest(.delete, server.url("/echo"), body: .bytes(Array("hello".utf8)))))
            #expect(deleteWithBody.method == "DELETE")
            #expect(deleteWithBody.sha256 == helloSHA256)

            let emptyPut = try decodeEcho(client.perform(HTTPRequest(.put, server.url("/echo"))))
            #expect(emptyPut.method == "PUT")
            #expect(emptyPut.values("content-length") == ["0"])
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func streamingGet50MB() async throws {
        try await withServer { server in
            let client = try HTTPClient()
            let size = 50_000_000
            let hasher = try StreamingSHA256()
            var chunks = 0
            var largest = 0
            let response = try client.perform(HTTPRequest(.get, server.url("/bytes/\(size)"))) { chunk in
                try hasher.update(chunk)
                chunks += 1
                largest = max(largest, chunk.count)
            }
            let digest = try hasher.finish()
            let expected = try client.perform(HTTPRequest(.get, server.url("/pattern-sha256/\(size)"))).bodyText
            #expect(response.status == 200)
            #expect(response.headers["Content-Length"] == "\(size)")
            #expect(response.body.isEmpty, "a streamed 2xx body is not kept")
            #expect(response.bodyByteCount == Int64(size))
            #expect(digest == expected)
            #expect(chunks >= 20)
            #expect(largest <= 1 << 20)
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func head() async throws {
        try await withServer { server in
            let client = try HTTPClient()
            let response = try client.perform(HTTPRequest(.head, server.url("/bytes/1000")))
            #expect(response.status == 200)
            #expect(response.headers["content-length"] == "1000")
            #expect(response.body.isEmpty)
            #expect(response.bodyByteCount == 0)
            // The connection is still good after a HEAD (no body was expected on it).
            #expect(try client.perform(HTTPRequest(.get, server.url("/connections"))).bodyText == "1")
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func errorStatusesAreResponsesWithTheirBodies() async throws {
        try await withServer { server in
            let client = try HTTPClient()
            let unavailable = try client.perform(HTTPRequest(.get, server.url("/status/503")))
            #expect(unavailable.status == 503)
            #expect(!unavailable.isSuccess)
            #expect(unavailable.headers["Content-Type"] == "application/xml")
            #expect(unavailable.bodyText.contains("<Code>Status503</Code>"))

            // Streaming: the sink is for 2xx bodies only; an error body is kept in memory.
            var sinkCalls = 0
            let missing = try client.perform(HTTPRequest(.get, server.url("/status/404"))) { _ in sinkCalls += 1 }
            #expect(missing.status == 404)
            #expect(sinkCalls == 0)
            #expect(missing.bodyText.contains("<Code>Status404</Code>"))
            #expect(!missing.isBodyTruncated)

            let truncated = try client.perform(HTTPRequest(.get, server.url("/status/500")), errorBodyLimit: 20) { _ in sinkCalls += 1 }
            #expect(truncated.status == 500)
            #expect(truncated.body.count == 20)
            #expect(truncated.isBodyTruncated)
            #expect(truncated.bodyByteCount > 20)
            #expect(sinkCalls == 0)

            // Redirects are not followed.
            let redirect = try client.perform(HTTPRequest(.get, server.url("/status/307")))
            #expect(redirect.status == 307)
            #expect(redirect.headers["location"] == "/echo")
            #expect(redirect.bodyText.contains("<Code>Status307</Code>"))
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func repeatedResponseHeadersAndCaseInsensitiveLookup() async throws {
        try await withServer { server in
            let client = try HTTPClient()
            let response = try client.perform(HTTPRequest(.get, server.url("/headers")))
            #expect(response.headers.values(for: "x-multi") == ["one", "two"])
            #expect(response.headers["X-MULTI"] == "one")
            #expect(response.headers["X-Amz-Request-Id"] == "R1")
            #expect(response.headers.contains("content-length"))
            #expect(!response.headers.contains("x-absent"))
        }
    }

    /// A body held in memory gets room for its Content-Length at once (a ranged GET of a
    /// part): no growing by doubling, which copies what arrived and briefly holds two buffers.
    @Test(.timeLimit(.minutes(10)))
    func aBodyInMemoryIsGivenItsContentLengthAtOnce() async throws {
        try await withServer { server in
            let client = try HTTPClient()
            let length = 3_000_001  // a doubling array would end with room for 4 MiB
            let response = try client.perform(HTTPRequest(.get, server.url("/bytes/\(length)")), bodyLimit: length + 1)
            #expect(response.body.count == length)
            #expect(response.body.capacity < length + (64 << 10), "capacity \(response.body.capacity)")
            #expect(response.body.enumerated().allSatisfy { Int($0.element) == $0.offset % Pattern.period })
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func bodyOverTheMemoryLimitFails() async throws {
        try await withServer { server in
            let client = try HTTPClient()
            let failure = networkError { _ = try client.perform(HTTPRequest(.get, server.url("/bytes/100000")), bodyLimit: 1000) }
            #expect(failure?.transport.kind == .responseTooLarge)
            #expect(failure?.transport.isRetryable == false)
            #expect(failure?.error.message.contains("/bytes/100000") == true)
            // The client goes on working.
            #expect(try client.perform(HTTPRequest(.get, server.url("/bytes/10"))).body.count == 10)
        }
    }

    /// The limit is for the body the caller expects: a ranged GET of 10 bytes expects 10, and
    /// the error document that answers it when the object is gone (404 NoSuchKey) is larger.
    /// The caller gets the status and the error document, to say what went wrong.
    @Test(.timeLimit(.minutes(10)))
    func anErrorResponseLargerThanTheBodyLimitIsReturnedWithItsStatus() async throws {
        try await withServer { server in
            let client = try HTTPClient()
            let response = try client.perform(HTTPRequest(.get, server.url("/status/404")), bodyLimit: 10)
            #expect(response.status == 404)
            #expect(response.bodyText.contains("<Code>Status404</Code>"), "\(response.bodyText)")
            #expect(!response.isBodyTruncated)
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func connectionRefusedIsRetryableAndNamesTheURLWithoutSecrets() async throws {
        try await onThread {
            let port = try freeLoopbackPort()
            let client = try HTTPClient()
            let url = "http://127.0.0.1:\(port)/bucket/key?partNumber=1&X-Amz-Signature=topsecret&X-Amz-Credential=AKIDEXAMPLE%2F20260101"
            let failure = networkError { _ = try client.perform(HTTPRequest(.put, url, body: .bytes([1, 2, 3]))) }
            let message = failure?.error.description ?? ""
            #expect(failure?.transport.kind == .connectFailed)
            #expect(failure?.transport.isRetryable == true)
            #expect(failure?.transport.curlCode == 7)
            #expect(failure?.transport.curlCodeName == "CURLE_COULDNT_CONNECT")
            #expect(message.contains("PUT http://127.0.0.1:\(port)/bucket/key?partNumber=1"))
            #expect(message.contains("CURLE_COULDNT_CONNECT"))
            #expect(!message.contains("topsecret"))
            #expect(!message.contains("AKIDEXAMPLE"))
            #expect(failure?.transport.url.contains("X-Amz-Signature=REDACTED") == true)
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func aHandleGoesOnWorkingAfterEveryKindOfFailure() async throws {
        try await withServer { server in
            // One idle handle, so every request below runs on the same easy handle.
            let client = try HTTPClient(configuration: .init(connectTimeout: .seconds(3), maxIdleHandles: 1))
            let port = try freeLoopbackPort()
            let failing = [
                "http://lifeboat-test-host.invalid/x",  // name resolution (or its timeout, offline)
                "http://127.0.0.1:\(port)/x", server.url("/reset"), server.url("/close"), "file:///etc/hostname",
            ]
            for url in failing {
                let failure = networkError { _ = try client.perform(HTTPRequest(.get, url)) }
                #expect(failure != nil, "\(url)")
                let response = try client.perform(HTTPRequest(.get, server.url("/echo")))
                #expect(response.status == 200, "after \(url)")
            }
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func resetAndClosedConnectionsAreRetryable() async throws {
        try await withServer { server in
            for path in ["/reset", "/close"] {
                // On a fresh connection, and on a kept-alive one.
                for warm in [false, true] {
                    let client = try HTTPClient()
                    if warm { _ = try client.perform(HTTPRequest(.get, server.url("/echo"))) }
                    let failure = networkError { _ = try client.perform(HTTPRequest(.get, server.url(path))) }
                    #expect(failure?.transport.kind == .connectionReset, "\(path) warm=\(warm): \(String(describing: failure?.error))")
                    #expect(failure?.transport.isRetryable == true)
                    // The handle goes on working on a new connection.
                    #expect(try client.perform(HTTPRequest(.get, server.url("/echo"))).status == 200)
                }
            }
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func uploadOnADeadKeptAliveConnectionIsRewound() async throws {
        try await withServer { server in
            // /close reads the whole body and closes without answering. On a reused connection
            // libcurl sends the request again on a new one, which needs the body rewound.
            let client = try HTTPClient()
            _ = try client.perform(HTTPRequest(.get, server.url("/echo")))
            let stats = PatternStats()
            let failure = networkError {
                _ = try client.perform(HTTPRequest(.put, server.url("/close"), body: .stream(.pattern(length: 100_000, stats: stats))))
            }
            #expect(failure?.transport.kind == .connectionReset)
            #expect(stats.rewinds == 1)

            let once = PatternStats()
            let body = HTTPRequest.Body.stream(.pattern(length: 100_000, stats: once, rewindable: false))
            #expect(!body.isReplayable)
            let failed = networkError { _ = try client.perform(HTTPRequest(.put, server.url("/close"), body: body)) }
            #expect(failed?.transport.kind == .connectionReset)
            #expect(once.rewinds == 0)
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func lowSpeedAndOverallTimeouts() async throws {
        try await withServer { server in
            let clock = ContinuousClock()
            let slow = try HTTPClient(configuration: .init(lowSpeedLimit: 1000, lowSpeedTime: .seconds(1)))
            var start = clock.now
            let lowSpeed = networkError { _ = try slow.perform(HTTPRequest(.get, server.url("/slow/10"))) }
            #expect(lowSpeed?.transport.kind == .timeout)
            #expect(lowSpeed?.transport.isRetryable == true)
            #expect(lowSpeed?.transport.curlCodeName == "CURLE_OPERATION_TIMEDOUT")
            #expect(clock.now - start < .seconds(5))

            let client = try HTTPClient(configuration: .init(timeout: .seconds(30)))
            start = clock.now
            let overall = networkError {
                _ = try client.perform(HTTPRequest(.get, server.url("/slow/10"), timeout: .milliseconds(500))) { _ in }
            }
            #expect(overall?.transport.kind == .timeout)
            #expect(overall?.transport.isRetryable == true)
            #expect(clock.now - start < .seconds(4))
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func aRequestAfterTheCancellationFailsWithoutBeingSent() async throws {
        try await withServer { server in
            let cancellation = Cancellation()
            let client = try HTTPClient(cancellation: cancellation)
            #expect(try client.perform(HTTPRequest(.get, server.url("/echo"))).status == 200)
            cancellation.cancel(reason: "SIGTERM")
            let error = #expect(throws: LifeboatError.self) {
                _ = try client.perform(HTTPRequest(.put, server.url("/echo"), body: .bytes([1, 2, 3])))
            }
            #expect(error?.code == .cancelled)
            #expect(error?.message == "cancelled (SIGTERM)")
            let underlying = error?.underlying as? HTTPTransportError
            #expect(underlying?.kind == .cancelled)
            #expect(underlying?.isRetryable == false)
            #expect(underlying?.bytesSent == 0)
            // The same configuration without the cancellation still reaches the server, which
            // saw one connection: the cancelled request never made one.
            let cleanup = client.with(cancellation: .never)
            #expect(cleanup.configuration.userAgent == client.configuration.userAgent)
            #expect(try cleanup.perform(HTTPRequest(.get, server.url("/connections"))).bodyText == "2")
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func cancellingAStalledDownloadEndsItAtOnce() async throws {
        try await withServer { server in
            let cancellation = Cancellation()
            // No low-speed limit: only the cancellation can end this transfer early.
            let client = try HTTPClient(configuration: .init(lowSpeedLimit: 0), cancellation: cancellation)
            let firstBytes = DispatchSemaphore(value: 0)
            let cancelledAt = Mutex<ContinuousClock.Instant?>(nil)
            let canceller = Thread {
                firstBytes.wait()
                cancelledAt.withLock { $0 = .now }
                cancellation.cancel(reason: "SIGINT")
            }
            canceller.start()
            var received = 0
            // /slow/30 sends 10 of its 1,000,000 bytes, then nothing for 30 seconds.
            let error = #expect(throws: LifeboatError.self) {
                _ = try client.perform(HTTPRequest(.get, server.url("/slow/30"))) { chunk in
                    if received == 0 { firstBytes.signal() }
                    received += chunk.count
                }
            }
            let ended = ContinuousClock.now
            #expect(error?.code == .cancelled)
            #expect((error?.underlying as? HTTPTransportError)?.bytesReceived == 10)
            let took = ended - (cancelledAt.withLock { $0 } ?? ended)
            #expect(took < .milliseconds(1500), "the transfer ended \(took) after the cancellation")
            // The same configuration without the cancellation goes on working.
            #expect(try client.with(cancellation: .never).perform(HTTPRequest(.get, server.url("/bytes/10"))).body.count == 10)
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func anErrorFromTheReadClosureAbortsAndComesBack() async throws {
        try await withServer { server in
            let client = try HTTPClient()
            var sent = 0
            let stream = HTTPBodyStream(length: 10_000_000) { buffer in
                if sent >= 1_000_000 { throw Boom(token: 42) }
                let produced = Pattern.fill(buffer, offset: Int64(sent))
                sent += produced
                return produced
            }
            let error = #expect(throws: Boom.self) {
                _ = try client.perform(HTTPRequest(.put, server.url("/echo"), body: .stream(stream)))
            }
            #expect(error == Boom(token: 42))
            #expect(sent < 10_000_000)

            // A source that ends before its declared length is an error too.
            var calls = 0
            let short = HTTPBodyStream(length: 1000) { buffer in
                calls += 1
                return calls == 1 ? Pattern.fill(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<500]), offset: 0) : 0
            }
            let shortError = #expect(throws: LifeboatError.self) {
                _ = try client.perform(HTTPRequest(.put, server.url("/echo"), body: .stream(short)))
            }
            #expect(shortError?.message.contains("ended after 500 of its 1000 bytes") == true)

            // The client goes on working.
            #expect(try decodeEcho(client.perform(HTTPRequest(.put, server.url("/echo"), body: .bytes([1])))).length == 1)
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func anErrorFromTheSinkAbortsAndComesBack() async throws {
        try await withServer { server in
            let client = try HTTPClient()
            var received = 0
            let error = #expect(throws: Boom.self) {
                _ = try client.perform(HTTPRequest(.get, server.url("/bytes/10000000"))) { chunk in
                    received += chunk.count
                    if received >= 100_000 { throw Boom(token: 7) }
                }
            }
            #expect(error == Boom(token: 7))
            #expect(received < 10_000_000)
            #expect(try client.perform(HTTPRequest(.get, server.url("/bytes/10"))).body.count == 10)
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func sequentialRequestsReuseOneConnection() async throws {
        try await withServer { server in
            let client = try HTTPClient()
            for index in 0..<20 {
                switch index % 5 {
                case 0: #expect(try client.perform(HTTPRequest(.get, server.url("/echo"))).status == 200)
                case 1: #expect(try client.perform(HTTPRequest(.put, server.url("/echo"), body: .bytes(Array(repeating: 1, count: 3000)))).status == 200)
                case 2: #expect(try client.perform(HTTPRequest(.head, server.url("/bytes/100"))).status == 200)
                case 3: #expect(try client.perform(HTTPRequest(.get, server.url("/bytes/300000"))) { _ in }.bodyByteCount == 300_000)
                default: #expect(try client.perform(HTTPRequest(.get, server.url("/status/404"))).status == 404)
                }
            }
            #expect(try client.perform(HTTPRequest(.get, server.url("/connections"))).bodyText == "1")
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func concurrentRequestsFromFourThreads() async throws {
        try await withServer { server in
            let client = try HTTPClient()
            let failures = Mutex<[String]>([])
            let done = Mutex(0)
            let finished = DispatchSemaphore(value: 0)
            let threads = (0..<4).map { thread in
                Thread {
                    defer { finished.signal() }
                    for index in 0..<10 {
                        let length = 10_000 * (thread + 1) + index
                        do {
                            let request = HTTPRequest(
                                .put, server.url("/echo/\(thread)/\(index)"), headers: ["X-Thread": "\(thread)"],
                                body: .bytes(Array(repeating: UInt8(thread), count: length)))
                            let echo = try decodeEcho(client.perform(request))
                            if echo.length != length || echo.values("x-thread") != ["\(thread)"] || echo.path != "/echo/\(thread)/\(index)" {
                                failures.withLock { $0.append("thread \(thread) request \(index): got \(echo)") }
                            }
                            done.withLock { $0 += 1 }
                        } catch {
                            failures.withLock { $0.append("thread \(thread) request \(index): \(error)") }
                        }
                    }
                }
            }
            threads.forEach { $0.start() }
            for _ in threads { finished.wait() }
            #expect(failures.withLock { $0 } == [])
            #expect(done.withLock { $0 } == 40)
            let connections = try #require(Int(client.perform(HTTPRequest(.get, server.url("/connections"))).bodyText))
            #expect((1...4).contains(connections), "one connection per pooled handle at most")
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func aCABundleInTheEnvironmentDoesNotBreakPlainHTTP() async throws {
        try await withServer { server in
            let client = try HTTPClient(environment: ["AWS_CA_BUNDLE": "/nonexistent/ca.pem", "SSL_CERT_FILE": "/also/missing.pem"])
            #expect(client.caBundle == HTTPClient.CABundle(path: "/nonexistent/ca.pem", source: "AWS_CA_BUNDLE"))
            #expect(try client.perform(HTTPRequest(.get, server.url("/echo"))).status == 200)
            let explicit = try HTTPClient(configuration: .init(caBundle: "/nonexistent/explicit.pem"), environment: [:])
            #expect(try explicit.perform(HTTPRequest(.get, server.url("/echo"))).status == 200)
        }
    }

    @Test(.timeLimit(.minutes(10)), .enabled(if: TestEnvironment.canRun(needing: "python3", "openssl"), "needs openssl"))
    func tlsVerificationAgainstASelfSignedServer() async throws {
        try await onThread {
            let directory = try ScratchDirectory()
            defer { directory.remove() }
            let certificate = try SelfSignedCertificate(in: directory)
            let server = try TestHTTPServer(tls: (certificate.certificate, certificate.key))
            defer { server.stop() }
            let url = server.url("/echo")
            #expect(url.hasPrefix("https://127.0.0.1:"))

            // Not trusted: a TLS certificate error with a hint about the CA bundle.
            let untrusting = try HTTPClient(environment: [:])
            let failure = networkError { _ = try untrusting.perform(HTTPRequest(.get, url)) }
            #expect(failure?.transport.kind == .tlsCertificate)
            #expect(failure?.transport.isRetryable == false)
            #expect(failure?.error.message.contains(url) == true)
            #expect(failure?.error.hint?.contains("ca_bundle") == true)
            #expect(failure?.error.hint?.contains("AWS_CA_BUNDLE") == true)

            // Trusted through the configuration or the environment.
            let configured = try HTTPClient(configuration: .init(caBundle: certificate.certificate), environment: [:])
            #expect(try decodeEcho(configured.perform(HTTPRequest(.get, url))).method == "GET")
            let fromEnvironment = try HTTPClient(environment: ["CURL_CA_BUNDLE": certificate.certificate, "SSL_CERT_FILE": "/missing.pem"])
            #expect(fromEnvironment.caBundle?.source == "CURL_CA_BUNDLE")
            #expect(try fromEnvironment.perform(HTTPRequest(.get, url)).status == 200)

            // A bundle that does not exist is named in the hint, with where it came from.
            let missingPath = directory.file("missing.pem")
            let missing = try HTTPClient(environment: ["AWS_CA_BUNDLE": missingPath])
            let missingFailure = networkError { _ = try missing.perform(HTTPRequest(.get, url)) }
            #expect(missingFailure?.transport.kind == .tlsCertificate)
            #expect(missingFailure?.error.hint?.contains(missingPath) == true)
            #expect(missingFailure?.error.hint?.contains("AWS_CA_BUNDLE") == true)

            // Verification off.
            let unverified = try HTTPClient(configuration: .init(verifyTLS: false), environment: [:])
            #expect(try unverified.perform(HTTPRequest(.get, url)).status == 200)
        }
    }
}

@Suite
struct HTTPClientUnitTests {
    @Test
    func caBundlePrecedence() {
        let all = ["AWS_CA_BUNDLE": "/a.pem", "CURL_CA_BUNDLE": "/c.pem", "SSL_CERT_FILE": "/s.pem"]
        #expect(HTTPClient.resolveCABundle(explicit: "/x.pem", environment: all) == .init(path: "/x.pem", source: "ca_bundle"))
        #expect(HTTPClient.resolveCABundle(explicit: nil, environment: all) == .init(path: "/a.pem", source: "AWS_CA_BUNDLE"))
        #expect(HTTPClient.resolveCABundle(explicit: nil, environment: ["CURL_CA_BUNDLE": "/c.pem", "SSL_CERT_FILE": "/s.pem"])?.source == "CURL_CA_BUNDLE")
        #expect(HTTPClient.resolveCABundle(explicit: nil, environment: ["AWS_CA_BUNDLE": "", "SSL_CERT_FILE": "/s.pem"])?.source == "SSL_CERT_FILE")
        #expect(HTTPClient.resolveCABundle(explicit: "", environment: [:]) == nil)
    }

    @Test
    func urlRedaction() {
        #expect(HTTPClient.redactedURL(
            "https://user:pw@host:9000/b/k?X-Amz-Signature=abc&x-amz-credential=AK%2F1&partNumber=2&X-Amz-Security-Token=tok#frag")
            == "https://REDACTED@host:9000/b/k?X-Amz-Signature=REDACTED&x-amz-credential=REDACTED&partNumber=2&X-Amz-Security-Token=REDACTED#frag")
        #expect(HTTPClient.redactedURL("http://host/b/k?uploads") == "http://host/b/k?uploads")
        #expect(HTTPClient.redactedURL("http://host/a@b") == "http://host/a@b")
    }

    @Test
    func malformedRequestsAreRejectedBeforeSending() throws {
        let client = try HTTPClient()
        // Port 9 (discard) is never contacted: the requests are refused before any connection.
        let injected = #expect(throws: LifeboatError.self) {
            _ = try client.perform(HTTPRequest(.get, "http://127.0.0.1:9/", headers: ["X-A": "1\r\nX-B: 2"]))
        }
        #expect(injected?.code == .internalError)
        let badName = #expect(throws: LifeboatError.self) {
            _ = try client.perform(HTTPRequest(.get, "http://127.0.0.1:9/", headers: ["X A": "1"]))
        }
        #expect(badName?.code == .internalError)
        let bodyOnGet = #expect(throws: LifeboatError.self) {
            _ = try client.perform(HTTPRequest(.get, "http://127.0.0.1:9/", body: .bytes([1])))
        }
        #expect(bodyOnGet?.code == .internalError)
        let badScheme = networkError { _ = try client.perform(HTTPRequest(.get, "file:///etc/passwd")) }
        #expect(badScheme?.transport.kind == .other)
        #expect(badScheme?.transport.isRetryable == false)
    }

    @Test
    func headersKeepOrderAndDuplicates() {
        var headers: HTTPHeaders = ["A": "1", "b": "2"]
        headers.append("a", "3")
        #expect(headers.values(for: "A") == ["1", "3"])
        headers.set("A", "4")
        #expect(headers.entries.map(\.name) == ["A", "b"])
        #expect(headers["a"] == "4")
        headers.remove("B")
        #expect(headers.count == 1)
    }
}
