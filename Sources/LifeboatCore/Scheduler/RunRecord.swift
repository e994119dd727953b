import Foundation

/// One run the scheduler started, as one JSON line of the run history
/// (`<state_dir>/history.jsonl`). No secrets: the error message is redacted.
public struct RunRecord: Codable, Sendable, Equatable {
    public enum Outcome: String, Codable, Sendable, CaseIterable {
        /// Committed (a backup), or done (another job).
        case succeeded
        /// Committed, but some entries could not be backed up.
        case incomplete
        case failed
        /// Cancelled by the daemon's stop (SIGTERM/SIGINT after `stop_timeout`).
        case cancelled
        /// Cancelled after `run_timeout`.
        case timedOut = "timed-out"
    }

    public var policy: String
    /// What ran: `backup`, or `prune` (policy `*`: every policy).
    public var job: String
    /// The firing it ran for (cron time plus jitter); a catch-up run carries the missed one.
    public var scheduled: Date
    public var started: Date
    public var ended: Date
    public var outcome: Outcome
    public var backupID: String?
    /// Bytes stored in the repository.
    public var bytes: Int64?
    public var error: String?

    public init(policy: String, job: String, scheduled: Date, started: Date, ended: Date, outcome: Outcome,
                backupID: String? = nil, bytes: Int64? = nil, error: String? = nil) {
        self.policy = policy
        self.job = job
        self.scheduled = scheduled
        self.started = started
        self.ended = ended
        self.outcome = outcome
        self.backupID = backupID
        self.bytes = bytes
        self.error = error.map(Secrets.redact)
    }

    /// The record as one line (no newline inside; keys sorted; dates ISO 8601, whole seconds
    /// are enough for a schedule of minutes).
    public func line() throws -> String { try JSON.line(self) }

    /// Reads a run history: one record a line. A line that does not parse — the torn last line
    /// of a write cut short by a crash, or a damaged one — is skipped and counted.
    public static func parseHistory(_ data: Data) -> (records: [RunRecord], unreadable: Int) {
        JSON.decodeLines(RunRecord.self, from: data)
    }
}
