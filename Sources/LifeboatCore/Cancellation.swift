import Synchronization

/// Cancellation of one run, shared by every thread working for it.
///
/// The command line cancels it when `SIGINT` or `SIGTERM` arrives; the engine checks it between
/// steps (`checkCancelled()`), and whatever blocks registers a handler that unblocks it:
/// a client program is asked to stop, an HTTP transfer is aborted, a wait ends early. Cleanup
/// after a cancellation (aborting an upload, deleting this run's partial data, releasing a
/// lock) must not itself be cancelled: it runs with `Cancellation.never` or checks nothing.
public final class Cancellation: Sendable {
    private struct State {
        var reason: String?
        var handlers: [Int: @Sendable () -> Void] = [:]
        var nextHandler = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// A cancellation that is never cancelled (cleanup work, tests).
    public static let never = Cancellation()

    /// Why the run was cancelled ("SIGINT"), or nil while it was not.
    public var reason: String? { state.withLock { $0.reason } }
    public var isCancelled: Bool { reason != nil }

    /// Cancels the run: runs every registered handler once, on this thread. Later calls do nothing.
    public func cancel(reason: String) {
        guard self !== Cancellation.never else { return }
        let handlers = state.withLock { state -> [@Sendable () -> Void] in
            guard state.reason == nil else { return [] }
            state.reason = reason
            defer { state.handlers.removeAll() }
            return state.handlers.sorted { $0.key < $1.key }.map(\.value)
        }
        for handler in handlers { handler() }
    }

    /// Registers `handler` to run when the run is cancelled (at once, if it already is).
    /// Remove it with `removeHandler` when the work it unblocks is over.
    @discardableResult
    public func onCancel(_ handler: @escaping @Sendable () -> Void) -> Int {
        let (id, runNow) = state.withLock { state -> (Int, Bool) in
            state.nextHandler += 1
            if state.reason != nil { return (state.nextHandler, true) }
            state.handlers[state.nextHandler] = handler
            return (state.nextHandler, false)
        }
        if runNow { handler() }
        return id
    }

    public func removeHandler(_ id: Int) {
        _ = state.withLock { $0.handlers.removeValue(forKey: id) }
    }

    /// Runs `body` with `handler` registered for its duration.
    public func whileRunning<T>(onCancel handler: @escaping @Sendable () -> Void, _ body: () throws -> T) rethrows -> T {
        let id = onCancel(handler)
        defer { removeHandler(id) }
        return try body()
    }

    /// Throws `LifeboatError(.cancelled)` once the run is cancelled.
    public func checkCancelled() throws {
        if let reason { throw LifeboatError.cancelled(reason) }
    }
}

extension LifeboatError {
    /// The error a cancelled run ends with.
    public static func cancelled(_ reason: String) -> LifeboatError {
        LifeboatError(.cancelled, "cancelled (\(reason))")
    }
}

extension LifeboatError.Code {
    /// The run was cancelled (SIGINT, SIGTERM). The command line exits with 130 or 143, as a
    /// shell reports a program ended by that signal.
    public static let cancelled = LifeboatError.Code("cancelled", badInput: false)
}
