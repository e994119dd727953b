import Foundation

/// What a drill (or a recovery) found, as the JSON, JUnit and HTML reports show it: the steps,
/// the measured RTO and RPO against the runbook's objectives, and the verdict. Made by the pure
/// `evaluate`; durations are in seconds.
public struct DrillReport: Codable, Sendable, Equatable {
    /// The runbook's objectives, in seconds (nil: none set).
    public struct Objectives: Codable, Sendable, Equatable {
        public var rto: Double?
        public var rpo: Double?

        public init(rto: Double? = nil, rpo: Double? = nil) {
            self.rto = rto
            self.rpo = rpo
        }

        public init(_ objectives: LifeboatCore.Objectives?) {
            rto = objectives?.rto.map { Double($0.seconds) }
            rpo = objectives?.rpo.map { Double($0.seconds) }
        }
    }

    /// What one restore step brought back: the store's point and how old it was at the start.
    public struct RestoredStore: Codable, Sendable, Equatable {
        /// The restore step.
        public var step: String
        public var policy: String
        public var backupID: String?
        /// The newest point actually restored (nil: nothing was restored).
        public var point: Date?
        /// The drill's start minus `point` (never below 0; nil when nothing was restored).
        public var rpo: Double?

        public init(step: String, policy: String, backupID: String? = nil, point: Date?, rpo: Double? = nil) {
            self.step = step
            self.policy = policy
            self.backupID = backupID
            self.point = point
            self.rpo = rpo
        }
    }

    public var runbook: String
    public var mode: RunbookMode
    public var start: Date
    public var end: Date
    public var objectives: Objectives
    public var steps: [StepResult]
    /// The ids of the critical steps (their failure fails the drill).
    public var criticalSteps: [String]
    public var stores: [RestoredStore]
    /// Start to the last required check passing (the latest `passedAt` of the checks of the
    /// critical health steps); nil when one of them never passed, or there is none.
    public var rto: Double?
    /// The worst store's RPO; nil when a store was not restored, or none was.
    public var rpo: Double?
    /// Every critical step passed and no objective was breached.
    public var passed: Bool
    /// Why the drill failed, one cause a line: the step and its detail, or the objective.
    public var failures: [String]
    /// Optional steps that failed (reported, not failing the drill).
    public var warnings: [String]

    public init(runbook: String, mode: RunbookMode, start: Date, end: Date, objectives: Objectives, steps: [StepResult],
                criticalSteps: [String], stores: [RestoredStore], rto: Double?, rpo: Double?, passed: Bool,
                failures: [String], warnings: [String]) {
        self.runbook = runbook
        self.mode = mode
        self.start = start
        self.end = end
        self.objectives = objectives
        self.steps = steps
        self.criticalSteps = criticalSteps
        self.stores = stores
        self.rto = rto
        self.rpo = rpo
        self.passed = passed
        self.failures = failures
        self.warnings = warnings
    }

    /// Every step, the steps of a parallel group after the group.
    public var allSteps: [StepResult] { Self.flatten(steps) }

    static func flatten(_ steps: [StepResult]) -> [StepResult] {
        steps.flatMap { [$0] + flatten($0.steps) }
    }

    public func isCritical(_ step: StepResult) -> Bool { criticalSteps.contains(step.id) }

    /// The report of a runbook run: `steps` as it ran under `mode`, `stores` what its restore
    /// steps restored.
    public static func evaluate(runbook: Runbook, mode: RunbookMode, start: Date, end: Date, steps: [StepResult],
                                stores: [RestoredStore]) -> DrillReport {
        var critical: [String] = []
        var requiredHealth: [String] = []
        func walk(_ steps: [RunbookStep], groupCritical: Bool) {
            for step in steps where step.runs(in: mode) {
                let isCritical = step.critical && groupCritical
                if isCritical { critical.append(step.id) }
                switch step.kind {
                case .health: if isCritical { requiredHealth.append(step.id) }
                case .parallel(let children): walk(children, groupCritical: isCritical)
                default: break
                }
            }
        }
        walk(runbook.steps, groupCritical: true)
        return evaluate(runbook: runbook.name, mode: mode, objectives: Objectives(runbook.objectives), start: start, end: end,
                        steps: steps, criticalSteps: critical, requiredHealthSteps: requiredHealth, stores: stores)
    }

    /// The report, from the facts alone: which steps are critical, and which health steps'
    /// checks must pass (the critical ones that run in this mode).
    public static func evaluate(runbook: String, mode: RunbookMode, objectives: Objectives, start: Date, end: Date,
                                steps: [StepResult], criticalSteps: [String], requiredHealthSteps: [String],
                                stores: [RestoredStore]) -> DrillReport {
        let all = flatten(steps)
        var failures: [String] = []
        var warnings: [String] = []
        for step in all where step.outcome != .passed && step.outcome != .skipped {
            let cause = "step '\(step.id)' (\(step.kind)) \(step.outcome.text)" + (step.detail.map { ": \($0)" } ?? "")
            if criticalSteps.contains(step.id) { failures.append(cause) } else { warnings.append("optional " + cause) }
        }

        // RTO: every check of every required health step passed; the latest pass ends it.
        var rto: Double? = nil
        var missing: String? = nil
        if requiredHealthSteps.isEmpty { missing = "the runbook has no critical health check" }
        var latest: Date? = nil
        for id in requiredHealthSteps where missing == nil {
            guard let step = all.first(where: { $0.id == id }), step.outcome != .skipped else {
                missing = "the health step '\(id)' did not run"
                break
            }
            if step.checks.isEmpty, step.outcome != .passed { missing = "the health step '\(id)' did not pass" }
            for check in step.checks {
                guard let passedAt = check.passedAt else {
                    missing = "the \(check.kind) check \(check.target) of '\(id)' never passed"
                    break
                }
                latest = max(latest ?? passedAt, passedAt)
            }
        }
        if missing == nil, let latest { rto = max(0, latest.timeIntervalSince(start)) }
        if let objective = objectives.rto {
            if let rto {
                if rto > objective {
                    failures.append("RTO \(duration(rto)) exceeds the objective \(duration(objective))")
                }
            } else {
                failures.append("RTO not measured (objective \(duration(objective))): \(missing ?? "no check passed")")
            }
        }

        // RPO: per store, the drill's start minus the newest point restored; the worst counts.
        let measured = stores.map { store -> RestoredStore in
            var store = store
            store.rpo = store.point.map { max(0, start.timeIntervalSince($0)) }
            return store
        }
        let unrestored = measured.filter { $0.point == nil }
        let worst = measured.filter { $0.rpo != nil }.max { $0.rpo! < $1.rpo! }
        let rpo = unrestored.isEmpty ? worst?.rpo : nil
        if let objective = objectives.rpo {
            for store in measured {
                if let value = store.rpo, let point = store.point, value > objective {
                    failures.append("RPO \(duration(value)) exceeds the objective \(duration(objective)) (\(store.policy) restored to \(timestamp(point)))")
                }
            }
            if measured.isEmpty {
                failures.append("RPO not measured (objective \(duration(objective))): no store was restored")
            }
            for store in unrestored {
                failures.append("RPO not measured (objective \(duration(objective))): \(store.policy) was not restored (step '\(store.step)')")
            }
        }
        return DrillReport(runbook: runbook, mode: mode, start: start, end: end, objectives: objectives, steps: steps,
                           criticalSteps: criticalSteps, stores: measured, rto: rto, rpo: rpo, passed: failures.isEmpty,
                           failures: failures, warnings: warnings)
    }

    /// Whether the measured RTO (RPO) is within its objective: nil when there is no objective.
    public var rtoMet: Bool? { objectives.rto.map { objective in rto.map { $0 <= objective } ?? false } }
    public var rpoMet: Bool? {
        objectives.rpo.map { objective in !stores.isEmpty && stores.allSatisfy { ($0.rpo).map { $0 <= objective } ?? false } }
    }

    /// A duration as people read it: `2h`, `1m30s`, `0.4s` (whole seconds from 10 s up).
    public static func duration(_ seconds: Double) -> String {
        if seconds < 10, seconds.rounded() != seconds {
            let tenths = Int((seconds * 10).rounded())
            return "\(tenths / 10).\(tenths % 10)s"
        }
        return ConfigDuration(seconds: Int64(seconds.rounded())).description
    }

    /// A time in UTC as ISO 8601, whole seconds: `2026-11-29T17:30:00Z`.
    public static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "UTC")!))
    }
}

extension StepResult.Outcome {
    /// `passed`, `failed`, `was skipped`, `timed out`, `was cancelled`: after a step's name.
    var text: String {
        switch self {
        case .passed: return "passed"
        case .failed: return "failed"
        case .skipped: return "was skipped"
        case .timedOut: return "timed out"
        case .cancelled: return "was cancelled"
        }
    }
}
