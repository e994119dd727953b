import Foundation
import LifeboatCore
import LifeboatIO
import Logging

/// What every run carries through the engine: the logger, the clock, the cancellation, the
/// progress display, the retry policy and the environment. Tests inject each of them (a fixed
/// clock, a cancellation they trigger, retries that do not wait), so nothing in the engine
/// reads the wall clock, sleeps or looks at the process environment on its own.
public struct RunContext: Sendable {
    public var logger: Logger
    public var clock: @Sendable () -> Date
    public var cancellation: Cancellation
    public var progress: any ProgressReporter
    /// Retries of S3 requests (and later, of other remote calls).
    public var retry: RetryPolicy
    /// Waits between retries; returns early (and the caller checks the cancellation) when the
    /// run is cancelled.
    public var sleep: @Sendable (Double) -> Void
    /// For `${VAR}`, S3 credentials and CA bundles.
    public var environment: [String: String]
    /// A limit on each remote request as a whole (nil: none, only the transfer's own
    /// low-speed limit). Cleanup sets one, so that a stalled server cannot hold it up.
    public var requestTimeout: Duration?
    /// Who this process is, for reservations and locks.
    public var host: String
    public var pid: Int32
    /// Where temporary files go (the sorted runs of a bucket's listing): `<state_dir>/tmp` when
    /// the configuration sets `state_dir` (see `Configuration.temporaryFiles(of:)`),
    /// else `$TMPDIR`, else `/tmp`.
    public var temporaryDirectory: String

    public init(logger: Logger = Logger(label: "lifeboat"), clock: @escaping @Sendable () -> Date = { Date() },
                cancellation: Cancellation = Cancellation(), progress: any ProgressReporter = NoProgress(),
                retry: RetryPolicy = RetryPolicy(), sleep: (@Sendable (Double) -> Void)? = nil,
                environment: [String: String] = ProcessInfo.processInfo.environment,
                host: String = ProcessInfo.processInfo.hostName, pid: Int32 = ProcessInfo.processInfo.processIdentifier) {
        self.logger = logger
        self.clock = clock
        self.cancellation = cancellation
        self.progress = progress
        self.retry = retry
        self.sleep = sleep ?? { seconds in CancellableSleep.sleep(seconds: seconds, cancellation: cancellation) }
        self.environment = environment
        self.host = host
        self.pid = pid
        self.temporaryDirectory = environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    }

    /// A copy whose log lines carry `key = value` as well.
    public func with(metadata key: String, _ value: String) -> RunContext {
        var copy = self
        copy.logger[metadataKey: key] = "\(value)"
        return copy
    }

    /// A copy whose temporary files go under `configuration`'s `state_dir`, when it sets one.
    public func temporaryFiles(of configuration: Configuration) -> RunContext {
        var copy = self
        if let state = configuration.stateDirectory { copy.temporaryDirectory = state + "/tmp" }
        return copy
    }

    /// A copy for cleanup after a failure or a cancellation: not cancellable, and retrying
    /// little, so that cleanup finishes quickly even against a failing store.
    public var forCleanup: RunContext {
        var copy = self
        copy.cancellation = .never
        copy.retry = RetryPolicy(maxAttempts: 2, baseDelay: 0.1, maxDelay: 0.5)
        copy.requestTimeout = .seconds(5)
        let cancellation = Cancellation.never
        copy.sleep = { seconds in CancellableSleep.sleep(seconds: seconds, cancellation: cancellation) }
        return copy
    }
}
