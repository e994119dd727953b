import Foundation
import Synchronization

/// Runs `body(0) … body(count - 1)` each on a thread of its own (not on the cooperative pool:
/// the engine blocks), released together once every thread has started, and waits for all of
/// them. Returns their results in order; a thread that threw gives its error.
public func together<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) throws -> T) -> [Result<T, any Error>] {
    let results = Mutex<[Int: Result<T, any Error>]>([:])
    let ready = DispatchGroup()
    let done = DispatchGroup()
    let start = DispatchSemaphore(value: 0)
    for index in 0..<count {
        ready.enter()
        done.enter()
        let thread = Thread {
            defer { done.leave() }
            ready.leave()
            start.wait()
            let result = Result { try body(index) }
            results.withLock { $0[index] = result }
        }
        thread.name = "lifeboat-test-together-\(index)"
        thread.start()
    }
    ready.wait()
    for _ in 0..<count { start.signal() }
    done.wait()
    return results.withLock { results in (0..<count).map { results[$0] ?? .failure(TestSupportError("thread \($0) gave no result")) } }
}

/// Work running on a thread of its own while the test goes on; `wait()` returns its result,
/// and `ended` when it ended (for "it stopped within 2 seconds of the cancellation").
public final class Background<T: Sendable>: Sendable {
    private let outcome = Mutex<(result: Result<T, any Error>, ended: ContinuousClock.Instant)?>(nil)
    private let done = DispatchSemaphore(value: 0)

    /// Starts `body` on a new thread (not on the cooperative pool: the engine blocks).
    public init(_ body: @escaping @Sendable () throws -> T) {
        let thread = Thread { [self] in
            let result = Result { try body() }
            outcome.withLock { $0 = (result, .now) }
            done.signal()
        }
        thread.name = "lifeboat-test-background"
        thread.start()
    }

    /// Waits for the work to end, at most `timeout` seconds (then it is reported as an error;
    /// the thread is left to finish on its own).
    public func wait(timeout: Double = 60) -> Result<T, any Error> {
        waitWithEnd(timeout: timeout).map(\.result) ?? .failure(TestSupportError("the background work did not end within \(timeout) s"))
    }

    /// The result and when the work ended; nil when it did not end within `timeout` seconds.
    public func waitWithEnd(timeout: Double = 60) -> (result: Result<T, any Error>, ended: ContinuousClock.Instant)? {
        guard done.wait(timeout: .now() + timeout) == .success else { return nil }
        done.signal()  // later calls return at once
        return outcome.withLock { $0 }
    }
}

/// Runs blocking work (processes to wait for, the engine) on a thread of its own, so that a
/// test does not hold one of the few threads of the cooperative pool that every other test
/// running beside it needs (on two cores, two). The work stays in the test's task, so its
/// expectations are recorded against the test as usual.
///
/// At most `BlockingTestSlots.count` such bodies run at once (a test waits for a slot without
/// holding a thread): the integration tests start real servers and child processes, and
/// starting all of them at once on two cores makes every timing in them miss. A test's time
/// limit counts its wait for a slot, so a suite that uses this takes the ten-minute limit.
public func offThePool<T>(_ body: () throws -> T) async throws -> T {
    await BlockingTestSlots.shared.acquire()
    do {
        let result = try await withTaskExecutorPreference(ThreadPerJobExecutor.shared) { try body() }
        await BlockingTestSlots.shared.release()
        return result
    } catch {
        await BlockingTestSlots.shared.release()
        throw error
    }
}

/// The slots of `offThePool`: three per core, at least four.
actor BlockingTestSlots {
    static let shared = BlockingTestSlots(count: max(4, 3 * ProcessInfo.processInfo.activeProcessorCount))

    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(count: Int) { free = count }

    func acquire() async {
        if free > 0 {
            free -= 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty {
            free += 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}

/// Runs every job it is given on a new thread: for blocking work, never for many small jobs.
final class ThreadPerJobExecutor: TaskExecutor {
    static let shared = ThreadPerJobExecutor()

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let thread = Thread { [self] in job.runSynchronously(on: asUnownedTaskExecutor()) }
        thread.name = "lifeboat-test"
        thread.start()
    }
}
