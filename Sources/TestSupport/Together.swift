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
