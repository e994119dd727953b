import Foundation
import LifeboatCore

/// A wait that a cancellation ends early.
public enum CancellableSleep {
    /// Waits `seconds`, or until `cancellation` is cancelled, whichever comes first.
    public static func sleep(seconds: Double, cancellation: Cancellation) {
        guard seconds > 0, !cancellation.isCancelled else { return }
        let wakeup = Wakeup()
        let id = cancellation.onCancel { wakeup.wake() }
        defer { cancellation.removeHandler(id) }
        wakeup.wait(until: Date(timeIntervalSinceNow: seconds))
    }
}

/// A one-shot wake-up: `wait(until:)` returns at the deadline or once `wake()` was called.
/// `@unchecked Sendable`: `woken` is read and written only with `condition` locked.
public final class Wakeup: @unchecked Sendable {
    private let condition = NSCondition()
    private var woken = false

    public init() {}

    public func wake() {
        condition.lock()
        woken = true
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until woken.
    public func wait() {
        condition.lock()
        defer { condition.unlock() }
        while !woken { condition.wait() }
    }

    /// Returns true when woken, false at the deadline.
    @discardableResult
    public func wait(until deadline: Date) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !woken {
            if !condition.wait(until: deadline) { return woken }
        }
        return true
    }
}
