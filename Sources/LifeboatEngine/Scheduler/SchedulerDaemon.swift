import Foundation
import LifeboatCore
import LifeboatIO
import Logging

/// `lifeboat schedule`: runs each policy's backup by its schedule until stopped.
///
/// One loop on the thread that calls `run()` (never Swift's cooperative pool) asks
/// `SchedulerPlan` what to do, starts each run on a thread of its own, and sleeps on a
/// condition until the plan's next wake-up, the end of a run, or `stop()`. Every run has a
/// `Cancellation` of its own: `run_timeout` and the stop deadline cancel it, and the backup
/// engine then commits nothing. Each run ends with one line in the run history.
public final class SchedulerDaemon: @unchecked Sendable {
    /// What a job reports when it succeeds.
    public struct JobResult: Sendable {
        public var backupID: String?
        public var bytes: Int64?
        /// Committed without some entries.
        public var incomplete: Bool
        /// What a prune deleted: per policy, per kind (`backup`, `wal`, `blob`), how many.
        public var deleted: [String: [String: Int]]

        public init(backupID: String? = nil, bytes: Int64? = nil, incomplete: Bool = false, deleted: [String: [String: Int]] = [:]) {
            self.backupID = backupID
            self.bytes = bytes
            self.incomplete = incomplete
            self.deleted = deleted
        }
    }

    /// Runs one job (by its key: a policy's name, or `SchedulerDaemon.pruneKey`) with the
    /// run's context (its own cancellation), blocking.
    public typealias Job = @Sendable (_ key: String, _ context: RunContext) throws -> JobResult

    /// The key of the prune of every policy (`scheduler.prune`). A job other than a policy's
    /// backup has a key `JOB:POLICY` (`*`: every policy); no policy name has a colon.
    public static let pruneKey = "prune:*"
    /// The key of the verify of every policy (`scheduler.verify`).
    public static let verifyKey = "verify:*"

    /// What a key's run is called in the history: its job and its policy (`*`: every policy).
    static func describe(_ key: String) -> (job: String, policy: String) {
        guard let colon = key.firstIndex(of: ":") else { return ("backup", key) }
        return (String(key[..<colon]), String(key[key.index(after: colon)...]))
    }

    /// The key a history record belongs to.
    static func key(of record: RunRecord) -> String {
        record.job == "backup" ? record.policy : "\(record.job):\(record.policy)"
    }

    let policies: [(name: String, schedule: Schedule)]
    let settings: SchedulerSettings
    let state: StateDirectory
    let context: RunContext
    let job: Job
    /// Told of the loop's start and stop and of every run's end (set before `run()`).
    public var observer: (any SchedulerObserver)?

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var plan: SchedulerPlan?
    private var stopRequested = false
    private var pending = false
    private var cancellations: [String: Cancellation] = [:]
    private var timedOut: Set<String> = []
    private var threads: [String: Wakeup] = [:]

    /// - Parameters:
    ///   - context: the daemon's; its clock drives the schedule, its logger logs.
    ///   - job: what a run does (the backup of the policy; tests pass their own).
    public init(policies: [(name: String, schedule: Schedule)], settings: SchedulerSettings, state: StateDirectory,
                context: RunContext, job: @escaping Job) {
        self.policies = policies
        self.settings = settings
        self.state = state
        self.context = context
        self.job = job
    }

    /// The key of a runbook's scheduled drill.
    public static func drillKey(_ runbook: String) -> String { "drill:\(runbook)" }

    /// The daemon for a configuration: every policy with a `schedule`, backed up by
    /// `BackupCommand`; `scheduler.prune`, by `PruneCommand` over every policy;
    /// `scheduler.verify`, by `ScheduledVerify`; and every runbook with a `schedule`, drilled
    /// by `DrillCommand` (`walFetchCommand`: its scratch PostgreSQL servers' `restore_command`).
    public static func backups(configuration: Configuration, context: RunContext, lockWait: TimeInterval,
                               walFetchCommand: (@Sendable (String) -> String)? = nil) throws -> SchedulerDaemon {
        var scheduled = configuration.policies.compactMap { policy in policy.schedule.map { (name: policy.name, schedule: $0) } }
        if let prune = configuration.scheduler.prune { scheduled.append((name: pruneKey, schedule: prune)) }
        if let verify = configuration.scheduler.verify { scheduled.append((name: verifyKey, schedule: verify.schedule)) }
        for runbook in configuration.runbooks {
            if let schedule = runbook.schedule { scheduled.append((name: drillKey(runbook.name), schedule: schedule)) }
        }
        guard !scheduled.isEmpty else {
            throw LifeboatError(.configuration, "no policy in \(configuration.directory)/policies has a schedule, no runbook has one, nor has lifeboat.yaml a scheduler.prune or scheduler.verify: the scheduler has nothing to run",
                                hint: "Add 'schedule: { cron: \"0 2 * * *\", timezone: Europe/Berlin }' to the policies to run on a schedule.")
        }
        let state = StateDirectory(path: configuration.resolvedStateDirectory)
        return SchedulerDaemon(policies: scheduled, settings: configuration.scheduler, state: state, context: context) { policy, context in
            if policy.hasPrefix("drill:") {
                var drill = DrillCommand(configuration: configuration, context: context.temporaryFiles(of: configuration))
                drill.lockWait = lockWait
                drill.walFetchCommand = walFetchCommand
                let result = try drill.run(runbook: describe(policy).policy)
                guard result.report.passed else {
                    throw LifeboatError(.source, "the drill failed: " + result.report.failures.joined(separator: "; "),
                                        hint: "Its reports: \(result.written.html)")
                }
                return JobResult()
            }
            if policy == verifyKey, let verify = configuration.scheduler.verify {
                let previous = try state.history().records.count { $0.job == "verify" }
                return try ScheduledVerify(configuration: configuration, context: context, lockWait: lockWait)
                    .run(subset: verify.subset(afterRuns: previous))
            }
            if policy == pruneKey {
                let report = try PruneCommand(configuration: configuration, context: context, lockWait: lockWait).run(policy: nil, options: .init())
                if let refused = report.refused { throw LifeboatError(.io, refused) }
                return JobResult(deleted: report.deletedCounts)
            }
            let result = try BackupCommand(configuration: configuration, context: context, lockWait: lockWait).run(policy: policy)
            return JobResult(backupID: result.manifest.id, bytes: result.manifest.storedBytes, incomplete: !result.skipped.isEmpty)
        }
    }

    /// Asks the daemon to stop: nothing new starts; runs get `stop_timeout` to finish, then
    /// are cancelled. Safe from any thread.
    public func stop() {
        condition.lock()
        stopRequested = true
        pending = true
        condition.broadcast()
        condition.unlock()
    }

    /// Wakes the loop to read its clock again at once (the clock was set, or a test moved its
    /// own clock on). Safe from any thread.
    public func wake() {
        condition.lock()
        pending = true
        condition.broadcast()
        condition.unlock()
    }

    /// Runs until stopped and every run has ended. Blocks the calling thread.
    public func run() throws {
        let history = try state.history()
        if history.unreadable > 0 {
            context.logger.warning("run history has unreadable lines; they are skipped", metadata: [
                "history.path": "\(state.historyPath)", "history.unreadable": "\(history.unreadable)",
            ])
        }
        var lastScheduled: [String: Date] = [:]
        for record in history.records {
            let key = Self.key(of: record)
            lastScheduled[key] = max(lastScheduled[key] ?? record.scheduled, record.scheduled)
        }
        let start = context.clock()
        observer?.schedulerStarted(history: history.records)
        condition.lock()
        plan = SchedulerPlan(policies: policies, lastScheduled: lastScheduled, settings: settings, now: start)
        for policy in policies {
            context.logger.info("policy scheduled", metadata: [
                "policy.name": "\(Self.describe(policy.name).policy)", "run.job": "\(Self.describe(policy.name).job)",
                "schedule.cron": "\(policy.schedule.cron)", "schedule.timezone": "\(policy.schedule.timezone)",
                "schedule.next": "\(plan?.nextRun(of: policy.name).map(iso) ?? "never")",
            ])
        }
        while true {
            let now = context.clock()
            if stopRequested, plan?.isStopping == false {
                plan?.stop(now: now)
                observer?.schedulerStopping()
                context.logger.info("scheduler stopping: no new runs", metadata: [
                    "scheduler.running": "\(plan?.runningCount ?? 0)", "scheduler.stop_timeout": "\(settings.stopTimeout)",
                ])
            }
            let actions = plan?.tick(now: now) ?? []
            var cancels: [(Cancellation, String)] = []
            for action in actions {
                if let cancel = perform(action, now: now) { cancels.append(cancel) }
            }
            if !cancels.isEmpty {
                // Cancellation handlers (stopping a client program, aborting a transfer) run
                // without the daemon's lock.
                condition.unlock()
                for (cancellation, reason) in cancels { cancellation.cancel(reason: reason) }
                condition.lock()
            }
            if plan?.isFinished == true { break }
            let wake = plan?.nextWake(now: now)
            if !pending {
                if let wake {
                    // At most a minute at a time: a wall clock set forward or back (NTP, a
                    // suspended machine) is noticed within a minute.
                    let seconds = min(60, max(0, wake.timeIntervalSince(context.clock())) + 0.001)
                    _ = condition.wait(until: Date().addingTimeInterval(seconds))
                } else {
                    condition.wait()
                }
            }
            pending = false
        }
        let waits = Array(threads.values)
        condition.unlock()
        for done in waits { done.wait() }
        observer?.schedulerStopped()
        context.logger.info("scheduler stopped")
    }

    /// Called with `condition` locked; returns the cancellation to trigger once it is unlocked.
    private func perform(_ action: SchedulerPlan.Action, now: Date) -> (Cancellation, String)? {
        switch action {
        case .start(let policy, let scheduled, let catchUp):
            let cancellation = Cancellation()
            cancellations[policy] = cancellation
            timedOut.remove(policy)
            let done = Wakeup()
            threads[policy] = done
            var context = context.with(metadata: "policy.name", Self.describe(policy).policy)
            context.cancellation = cancellation
            let runContext = context
            let thread = Thread { [self] in
                defer { done.wake() }
                execute(policy: policy, scheduled: scheduled, catchUp: catchUp, context: runContext)
            }
            thread.name = "lifeboat-run-\(policy)"
            thread.start()
            return nil
        case .cancel(let policy, let isTimeout):
            if isTimeout { timedOut.insert(policy) }
            let reason = isTimeout ? "run_timeout \(settings.runTimeout) reached" : "scheduler stopping, stop_timeout \(settings.stopTimeout) reached"
            context.logger.warning("cancelling run", metadata: ["policy.name": "\(policy)", "reason": "\(reason)"])
            return cancellations[policy].map { ($0, reason) }
        case .skip(let policy, let scheduled):
            context.logger.warning("run skipped: the policy's previous run is still going", metadata: [
                "policy.name": "\(policy)", "run.scheduled": "\(iso(scheduled))",
            ])
            return nil
        }
    }

    /// One run, on its own thread.
    private func execute(policy key: String, scheduled: Date, catchUp: Bool, context: RunContext) {
        let started = context.clock()
        let (jobName, policy) = Self.describe(key)
        context.logger.info("run started", metadata: [
            "run.job": "\(jobName)", "run.scheduled": "\(iso(scheduled))", "run.catch_up": "\(catchUp)",
        ])
        var record: RunRecord
        var result: JobResult?
        do {
            let ended = try job(key, context)
            result = ended
            record = RunRecord(policy: policy, job: jobName, scheduled: scheduled, started: started, ended: context.clock(),
                               outcome: ended.incomplete ? .incomplete : .succeeded, backupID: ended.backupID, bytes: ended.bytes,
                               error: ended.incomplete ? "committed without some entries (see 'lifeboat list')" : nil)
        } catch {
            condition.lock()
            let wasTimeout = timedOut.contains(key)
            condition.unlock()
            let cancelled = (error as? LifeboatError)?.code == .cancelled || context.cancellation.isCancelled
            record = RunRecord(policy: policy, job: jobName, scheduled: scheduled, started: started, ended: context.clock(),
                               outcome: cancelled ? (wasTimeout ? .timedOut : .cancelled) : .failed, error: "\(error)")
        }
        do {
            try state.append(record)
        } catch {
            context.logger.error("could not record the run in the history", metadata: ["error": "\(error)"])
        }
        let seconds = record.ended.timeIntervalSince(record.started)
        var metadata: Logger.Metadata = [
            "run.job": "\(jobName)", "run.outcome": "\(record.outcome.rawValue)", "run.seconds": "\(String(format: "%.1f", seconds))",
        ]
        if let id = record.backupID { metadata["backup.id"] = "\(id)" }
        if let bytes = record.bytes { metadata["backup.stored_bytes"] = "\(bytes)" }
        if let error = record.error { metadata["error"] = "\(error)" }
        if record.outcome == .succeeded { context.logger.info("run ended", metadata: metadata) } else { context.logger.error("run ended", metadata: metadata) }
        observer?.runEnded(key: key, record: record, result: result)
        condition.lock()
        plan?.finished(policy: key)
        cancellations[key] = nil
        threads[key] = nil
        pending = true
        condition.broadcast()
        condition.unlock()
    }
}

private func iso(_ date: Date) -> String {
    ISO8601DateFormatter().string(from: date)
}
