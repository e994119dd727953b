import Foundation
import LifeboatCore
import LifeboatHTTP
@testable import LifeboatS3
import Logging
import Synchronization
import Testing
import TestSupport

/// Log events kept in memory (swift-log's `Logger(label:factory:)`), at every level.
final class LogCapture: Sendable {
    struct Event: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let captured = Mutex<[Event]>([])

    var logger: Logger {
        Logger(label: "test") { _ in Handler(capture: self) }
    }

    var events: [Event] { captured.withLock { $0 } }

    /// Every event as text: message and every field, for looking for what must not be there.
    var text: String {
        events.map { event in
            ([event.message] + event.metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }).joined(separator: " ")
        }.joined(separator: "\n")
    }

    struct Handler: LogHandler {
        let capture: LogCapture
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var merged = metadata
            if let extra = event.metadata { merged.merge(extra) { _, new in new } }
            let fields = merged.mapValues { "\($0)" }
            capture.captured.withLock { $0.append(Event(level: event.level, message: "\(event.message)", metadata: fields)) }
        }
    }
}

/// A cancelled run stops its S3 transfers at once, retries nothing, and still cleans up.
@Suite(.timeLimit(.minutes(10)))
struct S3Cancellation {
    /// How a cancelled writer ended, measured on its own thread.
    struct WriterOutcome: Sendable {
        var error: LifeboatError?
        var threwAt: ContinuousClock.Instant
        var abortedAt: ContinuousClock.Instant
    }

    @Test(arguments: [false, true])
    func cancellingAMultipartUploadEndsItWithinTwoSecondsAndLeavesNoUpload(stallBeforeBody: Bool) async throws {
        try await offThePool {
            let (s3, proxy) = try FaultProxy.startInFrontOfS3()
            defer { proxy.stop(); s3.stop() }
            let cancellation = Cancellation()
            let store = S3Store(client: try directClient(s3, endpoint: proxy.endpoint, cancellation: cancellation), prefix: "mp",
                                partSize: 5 << 20, concurrency: 2, logger: quietLogger)
            // Every part stalls (after its body was read, or while it is sent): the first two are
            // in flight, and the writer waits to hand over the third.
            try proxy.setRules([.stall(match: "partNumber=", beforeBody: stallBeforeBody)])
            let data = pseudoRandomBytes(22 << 20)
            let upload = Background { () throws -> WriterOutcome in
                let writer = try store.openWriter(key: "big.bin")
                do {
                    try data.withUnsafeBytes { try writer.write($0) }
                    try writer.commit()
                    return WriterOutcome(error: nil, threwAt: .now, abortedAt: .now)
                } catch {
                    let threwAt = ContinuousClock.now
                    writer.abort()
                    return WriterOutcome(error: error as? LifeboatError, threwAt: threwAt, abortedAt: .now)
                }
            }
            try proxy.waitFor("stall", match: "partNumber=", count: 2)
            let cancelledAt = ContinuousClock.now
            cancellation.cancel(reason: "SIGINT")
            let outcome = try upload.wait().get()

            #expect(outcome.error?.code == .cancelled, "\(String(describing: outcome.error))")
            #expect(outcome.threwAt - cancelledAt < .seconds(2), "the writer threw \(outcome.threwAt - cancelledAt) after the cancellation")
            #expect(outcome.abortedAt - cancelledAt < .seconds(2), "the upload was aborted \(outcome.abortedAt - cancelledAt) after the cancellation")
            let requests = try proxy.requests()
            #expect(requests.filter { $0.path.contains("partNumber=") }.count == 2, "no part retried, none started after: \(requests)")
            // AbortMultipartUpload went out, though the run is cancelled: nothing is left.
            #expect(requests.contains { $0.method == "DELETE" && $0.path.contains("uploadId=") && $0.outcome == "204" }, "\(requests)")
            #expect(try directClient(s3).listMultipartUploads(prefix: "mp/").isEmpty)
            #expect(try directClient(s3).headObject(key: "mp/big.bin") == nil)
        }
    }

    @Test func cancellingARequestToAStalledServerEndsItAtOnceAndNothingIsRetried() async throws {
        try await offThePool {
            let (s3, proxy) = try FaultProxy.startInFrontOfS3()
            defer { proxy.stop(); s3.stop() }
            let cancellation = Cancellation()
            let client = try directClient(s3, endpoint: proxy.endpoint, retry: RetryPolicy(maxAttempts: 5, baseDelay: 0.01, maxDelay: 0.05),
                                          cancellation: cancellation)
            try proxy.setRules([.stall(match: "PUT /lifeboat-test/stalled/")])
            let put = Background { try client.putObject(key: "stalled/x.bin", bytes: Array("payload".utf8)) }
            try proxy.waitFor("stall", match: "PUT /lifeboat-test/stalled/")
            let cancelledAt = ContinuousClock.now
            cancellation.cancel(reason: "SIGTERM")
            let (result, ended) = try #require(put.waitWithEnd())

            let error = #expect(throws: LifeboatError.self) { try result.get() }
            #expect(error?.code == .cancelled)
            #expect(error?.message == "cancelled (SIGTERM)")
            #expect(ended - cancelledAt < .milliseconds(1500), "the request ended \(ended - cancelledAt) after the cancellation")
            // A request after the cancellation fails without being sent.
            let later = #expect(throws: LifeboatError.self) { _ = try client.listObjects(prefix: "stalled/") }
            #expect(later?.code == .cancelled)
            #expect(try proxy.requests().map(\.outcome) == ["stall"], "one attempt, never retried")

            // The cleanup client still reaches the server, through the same proxy.
            try proxy.setRules([])
            let cleanup = client.forCleanup()
            #expect(!cleanup.cancellation.isCancelled)
            #expect(cleanup.configuration.retry.maxAttempts == 2)
            try cleanup.putObject(key: "stalled/y.bin", bytes: Array("cleanup".utf8))
            #expect(try cleanup.listObjects(prefix: "stalled/").map(\.key) == ["stalled/y.bin"])
            try cleanup.deleteObjects(keys: ["stalled/y.bin"])
            #expect(try directClient(s3).listObjects(prefix: "stalled/").isEmpty)
        }
    }

    @Test func cancellingAReadEndsItsRangeFetchesAtOnce() async throws {
        try await offThePool {
            let (s3, proxy) = try FaultProxy.startInFrontOfS3()
            defer { proxy.stop(); s3.stop() }
            try directClient(s3).putObject(key: "r/big.bin", bytes: pseudoRandomBytes(12 << 20))
            let cancellation = Cancellation()
            let store = S3Store(client: try directClient(s3, endpoint: proxy.endpoint, cancellation: cancellation), prefix: "r",
                                partSize: 5 << 20, readAhead: 2, logger: quietLogger)
            try proxy.setRules([.stall(match: "GET /lifeboat-test/r/big.bin")])  // ranged GETs; the HEAD goes through
            let read = Background { () throws -> ContinuousClock.Instant in
                let reader = try store.openReader(key: "big.bin")
                defer { reader.close() }  // waits for the other range fetch in flight
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                _ = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
                return .now
            }
            try proxy.waitFor("stall", match: "GET /lifeboat-test/r/big.bin", count: 2)
            let cancelledAt = ContinuousClock.now
            cancellation.cancel(reason: "SIGINT")
            let (result, ended) = try #require(read.waitWithEnd())

            let error = #expect(throws: LifeboatError.self) { _ = try result.get() }
            #expect(error?.code == .cancelled)
            #expect(ended - cancelledAt < .seconds(2), "the read and its fetches ended \(ended - cancelledAt) after the cancellation")
        }
    }

    @Test func aCancellationDuringTheBackoffStopsTheRetries() async throws {
        try await offThePool {
            // Nothing listens on the port: every attempt fails to connect, which is retried.
            let port = try freeLoopbackPort()
            let cancellation = Cancellation()
            let sleeps = Mutex(0)
            let log = LogCapture()
            let client = try S3Client(
                configuration: S3Client.Configuration(
                    endpoint: "http://127.0.0.1:\(port)", region: "us-east-1", bucket: "b", pathStyle: true,
                    credentials: AWSCredentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "secret-not-shown",
                                                sessionToken: "token-not-shown"),
                    retry: RetryPolicy(maxAttempts: 5, baseDelay: 10, maxDelay: 10)),
                http: try HTTPClient(cancellation: cancellation), logger: log.logger,
                sleep: { _ in
                    sleeps.withLock { $0 += 1 }
                    cancellation.cancel(reason: "SIGTERM")  // the run is cancelled while it waits
                })
            let error = #expect(throws: LifeboatError.self) { try client.putObject(key: "k", bytes: [1]) }
            #expect(error?.code == .cancelled)
            #expect(error?.message == "cancelled (SIGTERM)")
            #expect(sleeps.withLock { $0 } == 1)
            let attempts = log.events.filter { $0.message == "S3 request" }
            #expect(attempts.count == 1, "no attempt after the backoff")
            #expect(attempts.first?.level == .debug)
            #expect(attempts.first?.metadata["http.failure"] == "connect-failed")
            #expect(attempts.first?.metadata["http.curl_code"] == "CURLE_COULDNT_CONNECT")
            #expect(log.events.filter { $0.message == "S3 request failed; retrying" }.count == 1)
            #expect(!log.text.contains("secret-not-shown"))
            #expect(!log.text.contains("token-not-shown"))
        }
    }
}

/// `--verbose`: one debug line per attempt of an S3 request, with what an engineer needs and
/// no secret.
@Suite(.timeLimit(.minutes(10)))
struct S3RequestLogging {
    @Test func eachAttemptIsOneDebugLineWithWhatAnEngineerNeedsAndNoSecret() async throws {
        try await offThePool {
            let (s3, proxy) = try FaultProxy.startInFrontOfS3()
            defer { proxy.stop(); s3.stop() }
            try proxy.setRules([.status(503, code: "SlowDown", match: "PUT /lifeboat-test/log/", times: 1)])
            let log = LogCapture()
            let client = try directClient(s3, endpoint: proxy.endpoint, logger: log.logger, sleep: { _ in })
            try client.putObject(key: "log/x.bin", bytes: Array("hello".utf8))

            let attempts = log.events.filter { $0.message == "S3 request" }
            try #require(attempts.count == 2, "\(log.text)")
            for (index, attempt) in attempts.enumerated() {
                #expect(attempt.level == .debug)
                #expect(attempt.metadata["s3.action"] == "PutObject")
                #expect(attempt.metadata["http.method"] == "PUT")
                #expect(attempt.metadata["s3.object"] == "s3://lifeboat-test/log/x.bin")
                #expect(attempt.metadata["http.url"] == "\(proxy.endpoint)/lifeboat-test/log/x.bin")
                #expect(attempt.metadata["s3.attempt"] == "\(index + 1)")
                #expect(attempt.metadata["http.bytes_sent"] == "5")
                #expect(attempt.metadata["http.duration_ms"].flatMap { Int($0) } != nil)
            }
            #expect(attempts[0].metadata["http.status"] == "503")
            #expect(attempts[0].metadata["s3.error_code"] == "SlowDown")
            #expect(attempts[0].metadata["http.bytes_received"].flatMap { Int($0) }.map { $0 > 0 } == true)
            #expect(attempts[1].metadata["http.status"] == "200")
            #expect(attempts[1].metadata["s3.error_code"] == nil)
            #expect(log.events.contains { $0.level == .warning && $0.message == "S3 request failed; retrying" })

            let text = log.text
            #expect(!text.contains(s3.secretAccessKey))
            #expect(!text.contains(s3.accessKeyID))
            #expect(!text.lowercased().contains("authorization"))
            #expect(!text.contains("AWS4-HMAC-SHA256"))
            #expect(!text.lowercased().contains("signature"))
        }
    }

    @Test func aPresignedQueryIsRedactedInTheLogLine() throws {
        let client = try S3Client(
            configuration: S3Client.Configuration(
                endpoint: "https://s3.eu-central-1.amazonaws.com", region: "eu-central-1", bucket: "acme-dr", pathStyle: false,
                credentials: AWSCredentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "secret-not-shown")),
            http: try HTTPClient(), logger: quietLogger)
        let url = "https://acme-dr.s3.eu-central-1.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            + "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261121%2Feu-central-1%2Fs3%2Faws4_request"
            + "&X-Amz-Security-Token=token-not-shown&X-Amz-Signature=0123abcd"
        let metadata = client.attemptMetadata(
            S3Client.S3Call(action: "GetObject", method: .get, key: "k"), url: url, attempt: 1, duration: .milliseconds(12),
            outcome: .response(HTTPResponse(status: 200, headers: ["x-amz-request-id": "R1"], body: [], isBodyTruncated: false,
                                            bodyByteCount: 3)))
        #expect(metadata["http.url"] == "https://acme-dr.s3.eu-central-1.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=REDACTED&X-Amz-Security-Token=REDACTED&X-Amz-Signature=REDACTED")
        #expect(metadata["http.duration_ms"] == "12")
        #expect(metadata["s3.request_id"] == "R1")
        #expect(metadata["http.bytes_received"] == "3")
    }
}
