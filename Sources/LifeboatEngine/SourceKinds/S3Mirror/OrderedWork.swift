import Foundation

/// Jobs done in parallel whose results are consumed in the order they were submitted: the
/// objects of a listing are copied `width` at a time, and their entries written to the new
/// snapshot in key order.
///
/// Memory is bounded by `window`: `submit` waits (draining results in order) while that many
/// results are outstanding, so a slow object at the head holds back at most `window` small
/// results. The first job that throws stops the rest (jobs not started are skipped) and its
/// error is what `submit` or `drain` throws next.
///
/// `@unchecked Sendable`: every mutable property is read and written under `condition`; the
/// worker threads share nothing else.
final class OrderedWork<Value: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [(Int, @Sendable () throws -> Value)] = []
    private var queueStart = 0
    private var results: [Int: Value] = [:]
    private var failure: (any Error)?
    private var closed = false
    private var running = 0
    private var threads: [Thread] = []
    private var nextSequence = 0
    private var nextToDeliver = 0
    let window: Int

    init(width: Int, window: Int, name: String) {
        self.window = max(window, width)
        running = max(1, width)
        for index in 0..<running {
            let thread = Thread { [self] in work() }
            thread.name = "\(name)-\(index)"
            threads.append(thread)
            thread.start()
        }
    }

    /// The first error a job threw, if one did.
    var firstFailure: (any Error)? {
        condition.lock()
        defer { condition.unlock() }
        return failure
    }

    private func work() {
        while true {
            condition.lock()
            while queueStart == queue.count && !closed { condition.wait() }
            if queueStart == queue.count {
                running -= 1
                condition.broadcast()
                condition.unlock()
                return
            }
            let (sequence, job) = queue[queueStart]
            queueStart += 1
            if queueStart > 1024, queueStart * 2 > queue.count {
                queue.removeFirst(queueStart)
                queueStart = 0
            }
            let skip = failure != nil
            condition.unlock()
            if skip { continue }
            do {
                let value = try job()
                condition.lock()
                results[sequence] = value
            } catch {
                condition.lock()
                if failure == nil { failure = error }
            }
            condition.broadcast()
            condition.unlock()
        }
    }

    /// A result known at once (an unchanged object), delivered in its turn.
    func submit(value: Value, deliver: (Value) throws -> Void) throws {
        condition.lock()
        results[nextSequence] = value
        nextSequence += 1
        condition.unlock()
        try drain(waitingBelow: window, deliver: deliver)
    }

    /// A job run on one of the threads; its result is delivered in its turn.
    func submit(_ job: @escaping @Sendable () throws -> Value, deliver: (Value) throws -> Void) throws {
        condition.lock()
        queue.append((nextSequence, job))
        nextSequence += 1
        condition.broadcast()
        condition.unlock()
        try drain(waitingBelow: window, deliver: deliver)
    }

    /// Delivers the results that are ready, in order; waits while `outstanding` or more are
    /// not yet delivered. Throws the first job's failure.
    func drain(waitingBelow outstanding: Int = 1, deliver: (Value) throws -> Void) throws {
        while true {
            condition.lock()
            if let failure {
                condition.unlock()
                throw failure
            }
            if let value = results.removeValue(forKey: nextToDeliver) {
                nextToDeliver += 1
                condition.unlock()
                try deliver(value)
                continue
            }
            if nextSequence - nextToDeliver < outstanding || nextToDeliver == nextSequence {
                condition.unlock()
                return
            }
            condition.wait()
            condition.unlock()
        }
    }

    /// Delivers every result (waiting for all jobs), then stops the threads.
    func finish(deliver: (Value) throws -> Void) throws {
        defer { stop() }
        try drain(waitingBelow: 1, deliver: deliver)
    }

    /// Skips the jobs not started, waits for those running, and ends the threads. Idempotent.
    func stop() {
        condition.lock()
        if failure == nil, nextToDeliver < nextSequence { failure = CancellationError() }
        closed = true
        condition.broadcast()
        while running > 0 { condition.wait() }
        condition.unlock()
    }

    deinit { stop() }
}
