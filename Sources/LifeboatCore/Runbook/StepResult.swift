import Foundation

/// What one try of one health check found.
public struct CheckOutcome: Codable, Sendable, Equatable {
    public var passed: Bool
    /// What it got: the status code and the failing `checks` entry, the query's value, PING's
    /// answer, the connection error.
    public var detail: String

    public init(passed: Bool, detail: String) {
        self.passed = passed
        self.detail = detail
    }

    public static func passed(_ detail: String) -> CheckOutcome { CheckOutcome(passed: true, detail: detail) }
    public static func failed(_ detail: String) -> CheckOutcome { CheckOutcome(passed: false, detail: detail) }
}

/// A health check's result over a whole `health` step: its last outcome and how many tries it took.
public struct CheckResult: Codable, Sendable, Equatable {
    /// `http`, `postgres`, `redis`, `s3`, `tcp`, `command`.
    public var kind: String
    /// What it probes, without secrets: the URL, `host:port`, the bucket, the command.
    public var target: String
    public var passed: Bool
    public var detail: String
    public var attempts: Int
    /// When it passed (nil: it never did).
    public var passedAt: Date?

    public init(kind: String, target: String, passed: Bool, detail: String, attempts: Int, passedAt: Date? = nil) {
        self.kind = kind
        self.target = target
        self.passed = passed
        self.detail = detail
        self.attempts = attempts
        self.passedAt = passedAt
    }
}

/// How one step of a runbook went: what the journal records and the JSON, JUnit and HTML
/// reports show.
public struct StepResult: Codable, Sendable, Equatable {
    public enum Outcome: String, Codable, Sendable, CaseIterable {
        case passed, failed, skipped
        case timedOut = "timed-out"
        case cancelled
    }

    public var id: String
    /// `restore`, `run`, `health`, `manual`, `wait`, `parallel`.
    public var kind: String
    public var started: Date
    public var ended: Date
    public var outcome: Outcome
    /// Why it failed or was skipped, or what it did ("exited with status 0", "restored backup …").
    public var detail: String?
    /// Attempts made (`retry`).
    public var attempts: Int
    /// A health step's checks.
    public var checks: [CheckResult]
    /// A run step's output, its last lines.
    public var output: String?
    /// A restore step's restored point (for `${steps.ID.restored_point}` and the RPO).
    public var restoredPoint: Date?
    /// A parallel group's steps.
    public var steps: [StepResult]

    public init(id: String, kind: String, started: Date, ended: Date, outcome: Outcome, detail: String? = nil,
                attempts: Int = 1, checks: [CheckResult] = [], output: String? = nil, restoredPoint: Date? = nil,
                steps: [StepResult] = []) {
        self.id = id
        self.kind = kind
        self.started = started
        self.ended = ended
        self.outcome = outcome
        self.detail = detail
        self.attempts = attempts
        self.checks = checks
        self.output = output
        self.restoredPoint = restoredPoint
        self.steps = steps
    }

    public var seconds: Double { ended.timeIntervalSince(started) }
}
