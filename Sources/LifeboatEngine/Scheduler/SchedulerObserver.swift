import LifeboatCore

/// What the scheduler daemon tells whoever watches it (its metrics and readiness,
/// `SchedulerMonitor`). Called on the daemon's threads: an observer returns quickly, and never
/// calls back into the daemon.
public protocol SchedulerObserver: AnyObject, Sendable {
    /// The loop starts (before any run), with the run history read at start.
    func schedulerStarted(history: [RunRecord])
    /// A run ended and is in the history; `result` is what the job reported when it did not
    /// throw.
    func runEnded(key: String, record: RunRecord, result: SchedulerDaemon.JobResult?)
    /// A stop was asked for: nothing new starts.
    func schedulerStopping()
    /// Every run has ended; the loop returns.
    func schedulerStopped()
}
