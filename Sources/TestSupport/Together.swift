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

/// Work running on a thread of its own while the test goes on; `wait()` returns its result.
public final class Background<T: Sendable>: Sendable {
    private let result = Mutex<Result<T, any Error>?>(nil)
    private let done = DispatchSemaphore(value: 0)

    /// Starts `body` on a new thread (not on the cooperative pool: the engine blocks).
    public init(_ body: @escaping @Sendable () throws -> T) {
        let thread = Thread { [self] in
            let outcome = Result { try body() }
            result.withLock { $0 = outcome }
            done.signal()
        }
        thread.name = "lifeboat-test-background"
        thread.start()
    }

    /// Waits for the work to end, at most `timeout` seconds (then it is reported as an error;
    /// the thread is left to finish on its own).
    public func wait(timeout: Double = 60) -> Result<T, any Error> {
        guard done.wait(timeout: .now() + timeout) == .success else {
            return .failure(TestSupportError("the background work did not end within \(timeout) s"))
        }
        done.signal()  // later calls return at once
        return result.withLock { $0 } ?? .failure(TestSupportError("the background work gave no result"))
    }
}
