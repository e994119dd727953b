/// Where long operations report how far they are. The engine calls it; the command line
/// shows it on a terminal and ignores it otherwise (log lines carry the same facts).
public protocol ProgressReporter: Sendable {
    /// `what` moved on: `done` bytes of `total` (when known).
    func update(_ what: String, done: Int64, total: Int64?)
    /// `what` is over; its line can go.
    func finish(_ what: String)
}

/// Reports nothing: the default when not on a terminal, and in tests.
public struct NoProgress: ProgressReporter {
    public init() {}
    public func update(_ what: String, done: Int64, total: Int64?) {}
    public func finish(_ what: String) {}
}
