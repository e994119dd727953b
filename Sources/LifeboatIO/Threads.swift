import Foundation
import Synchronization

/// Runs blocking jobs on threads Lifeboat starts for them (never Swift's cooperative pool):
/// at most `width` threads, each taking the next job until none is left. Returns when every
/// job has ended. Jobs report their results themselves.
public enum Threads {
    public static func run(_ jobs: [@Sendable () -> Void], width: Int, name: String) {
        guard !jobs.isEmpty else { return }
        let next = JobCounter()
        let finished = (0..<max(1, min(width, jobs.count))).map { index in
            let done = Wakeup()
            let thread = Thread {
                defer { done.wake() }
                while let job = next.take(below: jobs.count) { jobs[job]() }
            }
            thread.name = "\(name)-\(index)"
            thread.start()
            return done
        }
        for done in finished { done.wait() }
    }
}

/// Hands out job indexes to the threads of `Threads.run`.
private final class JobCounter: Sendable {
    private let next = Mutex(0)

    func take(below count: Int) -> Int? {
        next.withLock { next in
            guard next < count else { return nil }
            defer { next += 1 }
            return next
        }
    }
}
