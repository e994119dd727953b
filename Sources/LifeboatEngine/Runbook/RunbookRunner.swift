import Foundation
import LifeboatCore
import LifeboatIO
import Synchronization

/// Sees the steps of a runbook start and end: `recover` writes its journal and progress lines
/// from it, `drill` its report.
public protocol RunbookObserver: Sendable {
    /// `number` of `total` counts the top-level steps that run in this mode.
    func stepStarted(_ step: RunbookStep, number: Int, of total: Int)
    func stepEnded(_ result: StepResult, step: RunbookStep, number: Int, of total: Int)
}

/// The one place a runbook is executed, for `recover` and `drill` alike: the steps of the
/// mode in order (a `parallel` group's steps at once, each on a thread of its own), with
/// `timeout` (a child `Cancellation` per attempt), `retry`, `critical`, and the operator's
/// answers through a `Prompter`. Restores go through `RestoreCommand`; what they restored
/// goes into the variables, for `${steps.ID.restored_point}`.
public struct RunbookRunner: Sendable {
    public struct Outcome: Sendable {
        public var results: [StepResult]
        /// The operator aborted.
        public var aborted: Bool
        /// The critical step that failed (and stopped the run).
        public var failedStep: String?
        public var variables: RunbookVariables

        /// Every critical step passed (or was skipped by the operator).
        public var passed: Bool { !aborted && failedStep == nil }
    }

    public let runbook: Runbook
    public let mode: RunbookMode
    public let source: RepositorySource
    public let context: RunContext
    public var prompter: any Prompter
    public var observer: (any RunbookObserver)?
    /// How long a restore waits for a conflicting repository lock.
    public var lockWait: TimeInterval? = 600
    /// `drill`: substitutes a scratch target for each restore's own (the step, the backup
    /// chosen, the step's target with its point resolved).
    public var targetFor: @Sendable (RunbookStep, Manifest, RestoreTarget) throws -> RestoreTarget = { $2 }
    /// `drill`: called once a restore step has restored (the step, the backup, the target it
    /// restored into, the point the runner computed); returns variables to set for the steps
    /// after it, and the point restored when it knows better (a scratch server's last replayed
    /// commit).
    public var afterRestore: @Sendable (RunbookStep, Manifest, RestoreTarget, Date, RunContext) throws
        -> (variables: [String: String], point: Date?) = { _, _, _, _, _ in ([:], nil) }
    /// `drill`: the check a health step runs instead of the one written (an `s3` check of a
    /// bucket restored to a scratch prefix looks there).
    public var checkFor: @Sendable (HealthCheck) -> HealthCheck = { $0 }
    /// Waits (`wait` steps, retry delays), ending early when the cancellation is cancelled.
    public var sleep: @Sendable (Double, Cancellation) -> Void = { seconds, cancellation in
        CancellableSleep.sleep(seconds: seconds, cancellation: cancellation)
    }
    /// Steps not run again (`--resume`: those that passed or were skipped), with their results.
    public var done: [String: StepResult] = [:]
    /// Steps the operator asked to skip (`--skip`).
    public var skip: Set<String> = []
    /// Steps run again although `done` has them (`--retry`).
    public var rerun: Set<String> = []

    public init(runbook: Runbook, mode: RunbookMode, source: RepositorySource, context: RunContext, prompter: any Prompter) {
        self.runbook = runbook
        self.mode = mode
        self.source = source
        self.context = context
        self.prompter = prompter
    }

    /// The top-level steps that run in this mode.
    public var steps: [RunbookStep] { runbook.steps.filter { $0.runs(in: mode) } }

    /// Runs the runbook. `variables` holds `--at` and, on a resume, the points restored before.
    public func run(variables: RunbookVariables) -> Outcome {
        var outcome = Outcome(results: [], aborted: false, failedStep: nil, variables: variables)
        let steps = self.steps
        for (index, step) in steps.enumerated() {
            let number = index + 1
            if let previous = done[step.id], !rerun.contains(step.id) {
                outcome.results.append(previous)
                continue
            }
            if context.cancellation.isCancelled {
                outcome.aborted = true
                break
            }
            let started = context.clock()
            if skip.contains(step.id) {
                let result = StepResult(id: step.id, kind: step.kindName, started: started, ended: started, outcome: .skipped,
                                        detail: "skipped (--skip)", attempts: 0)
                observer?.stepEnded(result, step: step, number: number, of: steps.count)
                outcome.results.append(result)
                continue
            }
            switch prompter.beforeStep(step, number: number, of: steps.count, summary: Self.summary(of: step, mode: mode)) {
            case .proceed: break
            case .skip:
                let result = StepResult(id: step.id, kind: step.kindName, started: started, ended: context.clock(), outcome: .skipped,
                                        detail: "skipped by the operator", attempts: 0)
                observer?.stepEnded(result, step: step, number: number, of: steps.count)
                outcome.results.append(result)
                continue
            case .abort:
                let result = StepResult(id: step.id, kind: step.kindName, started: started, ended: context.clock(), outcome: .cancelled,
                                        detail: "aborted by the operator", attempts: 0)
                observer?.stepEnded(result, step: step, number: number, of: steps.count)
                outcome.results.append(result)
                outcome.aborted = true
                return outcome
            }
            observer?.stepStarted(step, number: number, of: steps.count)
            let shared = SharedVariables(outcome.variables)
            let result = execute(step, variables: shared)
            outcome.variables = shared.value.withLock { $0 }
            observer?.stepEnded(result, step: step, number: number, of: steps.count)
            outcome.results.append(result)
            if result.detail == Self.abortedByOperator {
                outcome.aborted = true
                return outcome
            }
            if result.outcome == .cancelled && context.cancellation.isCancelled {
                outcome.aborted = true
                return outcome
            }
            if result.outcome != .passed && result.outcome != .skipped && step.critical {
                outcome.failedStep = step.id
                return outcome
            }
        }
        return outcome
    }

    static let abortedByOperator = "aborted by the operator"

    /// One line on what a step does, for prompts and progress. A drill's restores go to
    /// scratch targets, never to the one the step names.
    public static func summary(of step: RunbookStep, mode: RunbookMode = .recover) -> String {
        if let description = step.description { return description }
        switch step.kind {
        case .restore(let restore) where mode == .drill:
            return "restore policy '\(restore.policy)' into a scratch target (not \(restore.target.target.location))"
        case .restore(let restore): return "restore policy '\(restore.policy)' into \(restore.target.target.location)"
        case .run(let spec):
            switch spec.program {
            case .argv(let words): return "run " + Secrets.redact(words.map(\.text).joined(separator: " "))
            case .shell(let script): return "run sh -c " + Secrets.redact(RecoveryOptions.shellQuoted(script.text))
            }
        case .health(let health): return "check health (\(health.checks.map(\.kindName).joined(separator: ", ")), within \(health.within))"
        case .manual(let text): return "manual: \(text.text)"
        case .wait(let duration): return "wait \(duration)"
        case .parallel(let steps): return "at once: " + steps.map(\.id).joined(separator: ", ")
        }
    }

    // MARK: One step

    /// Runs one step with its retries; a parallel group runs its steps on threads of their own.
    func execute(_ step: RunbookStep, variables: SharedVariables) -> StepResult {
        let started = context.clock()
        if case .parallel(let children) = step.kind {
            let running = children.filter { $0.runs(in: mode) }
            let slots = ResultSlots<StepResult>(count: running.count)
            let jobs: [@Sendable () -> Void] = running.enumerated().map { index, child in
                { @Sendable in
                    let result = self.execute(child, variables: variables)
                    slots.set(index, result)
                }
            }
            Threads.run(jobs, width: jobs.count, name: "lifeboat-step")
            let results: [StepResult] = slots.values.compactMap { $0 }
            let failed = results.filter { (result: StepResult) -> Bool in
                result.outcome != .passed && result.outcome != .skipped && isCritical(result.id, in: running)
            }
            let outcome: StepResult.Outcome = failed.isEmpty ? .passed : (failed.contains { $0.outcome == .cancelled } ? .cancelled : .failed)
            return StepResult(id: step.id, kind: step.kindName, started: started, ended: context.clock(), outcome: outcome,
                              detail: failed.isEmpty ? "\(results.count) steps ended" : "failed: " + failed.map { "\($0.id) (\($0.detail ?? $0.outcome.rawValue))" }.joined(separator: "; "),
                              steps: results)
        }
        if case .manual(let instruction) = step.kind {
            let text = (try? variables.value.withLock { try $0.resolve(instruction) }) ?? instruction.text
            guard prompter.attended else {
                return StepResult(id: step.id, kind: step.kindName, started: started, ended: context.clock(),
                                  outcome: step.critical ? .failed : .skipped,
                                  detail: step.critical ? "a manual step needs an operator to confirm it: run without --yes (\(text))"
                                      : "nobody to confirm it (--yes): \(text)", attempts: 0)
            }
            let decision = prompter.manual(step, instruction: text)
            let outcome: StepResult.Outcome = decision == .proceed ? .passed : decision == .skip ? .skipped : .cancelled
            let detail = decision == .proceed ? "confirmed by the operator" : decision == .skip ? "skipped by the operator" : Self.abortedByOperator
            return StepResult(id: step.id, kind: step.kindName, started: started, ended: context.clock(), outcome: outcome, detail: detail)
        }
        var attempt = 0
        var result: StepResult
        repeat {
            attempt += 1
            if attempt > 1 {
                context.logger.info("retrying step", metadata: ["step.id": "\(step.id)", "step.attempt": "\(attempt)"])
                sleep(Double(step.retry.delay.seconds), context.cancellation)
            }
            result = attemptOnce(step, variables: variables)
            result.started = started
            result.attempts = attempt
        } while result.outcome != .passed && result.outcome != .cancelled && attempt < step.retry.attempts && !context.cancellation.isCancelled
        return result
    }

    private func isCritical(_ id: String, in steps: [RunbookStep]) -> Bool {
        steps.first { $0.id == id }?.critical ?? true
    }

    /// One attempt, under the step's timeout: a child cancellation that the run's cancellation
    /// and the deadline both cancel.
    func attemptOnce(_ step: RunbookStep, variables: SharedVariables) -> StepResult {
        let started = context.clock()
        let child = Cancellation()
        let parent = context.cancellation
        let link = parent.onCancel { child.cancel(reason: parent.reason ?? "cancelled") }
        defer { parent.removeHandler(link) }
        let timeout = step.timeout.map { Double($0.seconds) }
        let timer = timeout.map { seconds in StepTimer(seconds: seconds, cancellation: child) }
        defer { timer?.stop() }
        var context = self.context.with(metadata: "step.id", step.id)
        context.cancellation = child
        let sleep = self.sleep
        context.sleep = { seconds in sleep(seconds, child) }

        func ended(_ outcome: StepResult.Outcome, _ detail: String, checks: [CheckResult] = [], output: String? = nil,
                   restoredPoint: Date? = nil) -> StepResult {
            var outcome = outcome
            var detail = detail
            if timer?.fired == true, !parent.isCancelled {
                outcome = .timedOut
                detail = "timed out after \(step.timeout.map { "\($0)" } ?? "?"): \(detail)"
            } else if parent.isCancelled {
                outcome = .cancelled
            }
            return StepResult(id: step.id, kind: step.kindName, started: started, ended: self.context.clock(), outcome: outcome,
                              detail: Secrets.redact(detail), checks: checks, output: output, restoredPoint: restoredPoint)
        }

        do {
            switch step.kind {
            case .restore(let restore):
                let current = variables.value.withLock { $0 }
                let restored = try self.restore(restore, step: step, variables: current, context: context)
                variables.value.withLock {
                    $0.restored(step: step.id, at: restored.point)
                    $0.setScratch(restored.variables)
                }
                return ended(.passed, restored.detail, restoredPoint: restored.point)
            case .run(let spec):
                let current = variables.value.withLock { $0 }
                let invocation = try CommandStep.invocation(spec, variables: current, environment: context.environment)
                let result = try CommandStep(context: context, stepID: step.id).run(invocation, timeout: timeout)
                return ended(result.outcome, result.detail, output: result.output)
            case .health(let health):
                let current = variables.value.withLock { $0 }
                var health = health
                health.checks = health.checks.map(checkFor)
                let checks = try HealthCheckRunner(context: context, variables: current).waitUntilPassing(health)
                let failing = checks.filter { !$0.passed }
                return ended(failing.isEmpty ? .passed : .failed,
                             failing.isEmpty ? "\(checks.count) check\(checks.count == 1 ? "" : "s") passed"
                                 : "not passing after \(health.within): " + failing.map { "\($0.kind) \($0.target): \($0.detail)" }.joined(separator: "; "),
                             checks: checks)
            case .wait(let duration):
                context.sleep(Double(duration.seconds))
                try child.checkCancelled()
                return ended(.passed, "waited \(duration)")
            case .manual, .parallel:
                return ended(.failed, "not executed here")
            }
        } catch let error as LifeboatError {
            return ended(error.code == .cancelled ? .cancelled : .failed, error.hint.map { "\(error.message) (\($0))" } ?? error.message)
        } catch {
            return ended(.failed, "\(error)")
        }
    }

    /// Restores the step's policy through the restore engine, to the point its `time:`
    /// resolves to; returns the point restored (the backup's start, or the recovery target).
    func restore(_ restore: RestoreStep, step: RunbookStep, variables: RunbookVariables,
                 context: RunContext) throws -> (point: Date, detail: String, variables: [String: String]) {
        let (resolved, point) = try restore.target.resolved(with: variables)
        let isDataDirectory = resolved.location.isDataDirectory
        var at: Date?
        if case .time(let date) = point, !isDataDirectory { at = date }
        let chosen = Mutex<Manifest?>(nil)
        let targetFor = self.targetFor
        let used = Mutex<RestoreTarget?>(nil)
        let report = try RestoreCommand(source: source, context: context, lockWait: lockWait)
            .run(policy: restore.policy, selector: "latest", at: at) { manifest, _ in
                chosen.withLock { $0 = manifest }
                let target = try targetFor(step, manifest, resolved)
                used.withLock { $0 = target }
                return target
            }
        var restoredPoint: Date
        switch point {
        case .time(let date) where isDataDirectory:
            restoredPoint = date
        case .latest where isDataDirectory:
            let manifest = chosen.withLock { $0 }
            restoredPoint = try manifest.flatMap { try latestRecoverablePoint(policy: restore.policy, kind: $0.source.kind, context: context) }
                ?? manifest?.finishedAt ?? context.clock()
        default:
            restoredPoint = chosen.withLock { $0 }?.startedAt ?? context.clock()
        }
        var scratch: [String: String] = [:]
        if let manifest = chosen.withLock({ $0 }), let target = used.withLock({ $0 }) {
            let after = try afterRestore(step, manifest, target, restoredPoint, context)
            scratch = after.variables
            if let point = after.point { restoredPoint = point }
        }
        return (restoredPoint, "restored backup \(report.backup) of \(report.policy) to \(report.target) (point \(RunbookVariables.format(restoredPoint)))",
                scratch)
    }

    /// The end of the newest interval a point-in-time restore reaches.
    func latestRecoverablePoint(policy: String, kind name: String, context: RunContext) throws -> Date? {
        let kind = try SourceKinds.named(name, for: "policy '\(policy)'")
        let (repository, _) = try source.repository(forPolicy: policy, context: context)
        return try kind.recoverability(policy: policy, repository: repository, context: context)?.intervals.map(\.toTime).max()
    }
}

/// The variables a step (and a parallel group's steps, at once) read and extend.
final class SharedVariables: Sendable {
    let value: Mutex<RunbookVariables>
    init(_ variables: RunbookVariables) { value = Mutex(variables) }
}

/// Cancels a step's child cancellation when its timeout runs out, on a thread of its own.
final class StepTimer: Sendable {
    private let wakeup = Wakeup()
    private let state = Mutex((fired: false, stopped: false))

    init(seconds: Double, cancellation: Cancellation) {
        let deadline = Date().addingTimeInterval(seconds)
        let thread = Thread { [self] in
            wakeup.wait(until: deadline)
            let fire = state.withLock { state -> Bool in
                guard !state.stopped else { return false }
                state.fired = true
                return true
            }
            if fire { cancellation.cancel(reason: "the step's timeout of \(Int(seconds)) s ran out") }
        }
        thread.name = "lifeboat-step-timeout"
        thread.start()
    }

    var fired: Bool { state.withLock { $0.fired } }

    func stop() {
        state.withLock { $0.stopped = true }
        wakeup.wake()
    }
}
