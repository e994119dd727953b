import Foundation
import LifeboatCore
import LifeboatHTTP
@testable import LifeboatS3
import Logging
import Synchronization
import Testing
import TestSupport

/// Blocking work on a thread of its own, so that the test's thread can cancel it meanwhile;
/// `wait()` gives how it ended and when.
final class Background<T: Sendable>: Sendable {
    private let outcome = Mutex<(result: Result<T, any Error>, ended: ContinuousClock.Instant)?>(nil)
    private let done = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () throws -> T) {
        let thread = Thread { [self] in
            let result = Result { try body() }
            outcome.withLock { $0 = (result, .now) }
            done.signal()
        }
        thread.start()
    }

    func wait(timeout: Double = 60) throws -> (result: Result<T, any Error>, ended: ContinuousClock.Instant) {
        guard done.wait(timeout: .now() + timeout) == .success, let outcome = outcome.withLock({ $0 }) else {
            throw TestSupportError("the background work did not end within \(timeout) s")
        }
        return outcome
    }
}

/// A cancelled run stops its S3 transfers at once, retries nothing, and still cleans up.
@Suite(.timeLimit(.minutes(3)))
struct S3Cancellation {
    /// How a cancelled writer ended, measured on its own thread.
    struct WriterOutcome: Sendable {
        var error: LifeboatError?
        var threwAt: ContinuousClock.Instant
        var abortedAt: ContinuousClock.Instant
    }

    @Test(arguments: [false, true])
    func cancellingAMultipartUploadEndsItWithinTwoSecondsAndLeavesNoUpload(stallBeforeBody: Bool) throws {
        let s3 = try S3TestServer.start()
        defer { s3.stop() }
        let proxy = try FaultProxy.start(upstreamPort: s3.port)
        defer { proxy.stop() }
        let cancellation = Cancellation()
        let store = S3Store(client: try directClient(s3, endpoint: proxy.endpoint, cancellation: cancellation), prefix: "mp",
                            partSize: 5 << 20, concurrency: 2, logger: Logger(label: "test"))
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
        let outcome = try upload.wait().result.get()

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

    @Test func cancellingARequestToAStalledServerEndsItAtOnceAndNothingIsRetried() throws {
        let s3 = try S3TestServer.start()
        defer { s3.stop() }
        let proxy = try FaultProxy.start(upstreamPort: s3.port)
        defer { proxy.stop() }
        let cancellation = Cancellation()
        let client = try directClient(s3, endpoint: proxy.endpoint, retry: RetryPolicy(maxAttempts: 5, baseDelay: 0.01, maxDelay: 0.05),
                                      cancellation: cancellation)
        try proxy.setRules([.stall(match: "PUT /lifeboat-test/stalled/")])
        let put = Background { try client.putObject(key: "stalled/x.bin", bytes: Array("payload".utf8)) }
        try proxy.waitFor("stall", match: "PUT /lifeboat-test/stalled/")
        let cancelledAt = ContinuousClock.now
        cancellation.cancel(reason: "SIGTERM")
        let (result, ended) = try put.wait()

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

    @Test func cancellingAReadEndsItsRangeFetchesAtOnce() throws {
        let s3 = try S3TestServer.start()
        defer { s3.stop() }
        let proxy = try FaultProxy.start(upstreamPort: s3.port)
        defer { proxy.stop() }
        try directClient(s3).putObject(key: "r/big.bin", bytes: pseudoRandomBytes(12 << 20))
        let cancellation = Cancellation()
        let store = S3Store(client: try directClient(s3, endpoint: proxy.endpoint, cancellation: cancellation), prefix: "r",
                            partSize: 5 << 20, readAhead: 2, logger: Logger(label: "test"))
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
        let (result, ended) = try read.wait()

        let error = #expect(throws: LifeboatError.self) { _ = try result.get() }
        #expect(error?.code == .cancelled)
        #expect(ended - cancelledAt < .seconds(2), "the read and its fetches ended \(ended - cancelledAt) after the cancellation")
    }

    @Test func aCancellationDuringTheBackoffStopsTheRetries() throws {
        // Nothing listens on the port: every attempt fails to connect, which is retried.
        let port = try freeLoopbackPort()
        let cancellation = Cancellation()
        let sleeps = Mutex(0)
        let client = try S3Client(
            configuration: S3Client.Configuration(
                endpoint: "http://127.0.0.1:\(port)", region: "us-east-1", bucket: "b", pathStyle: true,
                credentials: AWSCredentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "secret-not-shown",
                                            sessionToken: "token-not-shown"),
                retry: RetryPolicy(maxAttempts: 5, baseDelay: 10, maxDelay: 10)),
            http: try HTTPClient(cancellation: cancellation), logger: Logger(label: "test"),
            sleep: { _ in
                sleeps.withLock { $0 += 1 }
                cancellation.cancel(reason: "SIGTERM")  // the run is cancelled while it waits
            })
        let error = #expect(throws: LifeboatError.self) { try client.putObject(key: "k", bytes: [1]) }
        #expect(error?.code == .cancelled)
        #expect(error?.message == "cancelled (SIGTERM)")
        #expect(sleeps.withLock { $0 } == 1)
    }
}
