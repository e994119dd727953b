import Foundation

/// The scheduler's decisions, without threads, clocks or I/O. A job is named by its key: a
/// policy's name for its backup, `prune:*` for the prune of every policy (no policy name has
/// a colon). given the time, which runs start,
/// which are cancelled, and when to look again. `lifeboat schedule` drives it from a thread
/// with the wall clock; tests drive it with a virtual one.
///
/// Rules:
/// - a policy runs at each `Schedule.nextRun` (cron firing in its time zone, plus its jitter);
/// - never two runs of one policy at once: a firing that comes while the policy still runs is
///   skipped (logged), as cron would;
/// - at most `maxConcurrent` runs at once: a due run waits for a free slot, and runs once
///   however many of its firings pass meanwhile;
/// - a run going for `runTimeout` is cancelled;
/// - at start-up, a firing missed while the daemon was down runs once when it is at most
///   `catchUp` ago and later than the last firing the history records for the policy;
/// - after `stop`, nothing starts; runs still going at the stop deadline are cancelled.
public struct SchedulerPlan: Sendable {
    public struct Job: Sendable {
        public var policy: String
        public var schedule: Schedule
        /// The firing this job waits for (in the past: due now).
        public var due: Date?
        /// Whether `due` is a catch-up of a missed firing.
        public var catchUp: Bool
        public var running: Run?
    }

    public struct Run: Sendable, Equatable {
        public var scheduled: Date
        public var started: Date
        public var deadline: Date
        public var cancelled: Bool
    }

    public enum Action: Sendable, Equatable {
        case start(policy: String, scheduled: Date, catchUp: Bool)
        /// `timedOut`: cancelled by `run_timeout`, else by the stop deadline.
        case cancel(policy: String, timedOut: Bool)
        /// The firing came while the policy's previous run was still going.
        case skip(policy: String, scheduled: Date)
    }

    public private(set) var jobs: [Job]
    public let settings: SchedulerSettings
    public private(set) var stopDeadline: Date?

    /// - Parameters:
    ///   - policies: the policies that have a schedule.
    ///   - lastScheduled: per policy, the newest firing the run history records.
    ///   - now: the daemon's start.
    public init(policies: [(name: String, schedule: Schedule)], lastScheduled: [String: Date], settings: SchedulerSettings, now: Date) {
        self.settings = settings
        jobs = policies.sorted { $0.name < $1.name }.map { policy in
            let windowStart = now.addingTimeInterval(-TimeInterval(settings.catchUp.seconds))
            let reference = max(windowStart, lastScheduled[policy.name] ?? windowStart)
            // The newest firing in (reference, now]: the one run that catches them all up.
            var missed: Date?
            if settings.catchUp.seconds > 0 {
                var cursor = reference
                while let next = policy.schedule.nextRun(after: cursor, policy: policy.name), next <= now {
                    missed = next
                    cursor = next
                }
            }
            if let missed {
                return Job(policy: policy.name, schedule: policy.schedule, due: missed, catchUp: true, running: nil)
            }
            return Job(policy: policy.name, schedule: policy.schedule, due: policy.schedule.nextRun(after: now, policy: policy.name),
                       catchUp: false, running: nil)
        }
    }

    public var runningCount: Int { jobs.filter { $0.running != nil }.count }
    public var isStopping: Bool { stopDeadline != nil }
    /// Stopping, and nothing runs any more: the daemon may exit.
    public var isFinished: Bool { isStopping && runningCount == 0 }

    /// What to do at `now`. Call it again whenever the time it returned in `nextWake` comes,
    /// or when a run ends.
    public mutating func tick(now: Date) -> [Action] {
        var actions: [Action] = []
        for index in jobs.indices {
            guard var run = jobs[index].running, !run.cancelled else { continue }
            if let stopDeadline, now >= stopDeadline {
                run.cancelled = true
                actions.append(.cancel(policy: jobs[index].policy, timedOut: false))
            } else if now >= run.deadline {
                run.cancelled = true
                actions.append(.cancel(policy: jobs[index].policy, timedOut: true))
            }
            jobs[index].running = run
        }
        guard !isStopping else { return actions }
        // Firings that come while the policy runs are skipped.
        for index in jobs.indices where jobs[index].running != nil {
            while let due = jobs[index].due, due <= now {
                actions.append(.skip(policy: jobs[index].policy, scheduled: due))
                jobs[index].due = jobs[index].schedule.nextRun(after: due, policy: jobs[index].policy)
                jobs[index].catchUp = false
            }
        }
        // Due runs start, earliest firing first, while there is a free slot.
        let due = jobs.indices.filter { jobs[$0].running == nil && (jobs[$0].due.map { $0 <= now } ?? false) }
            .sorted { (jobs[$0].due!, jobs[$0].policy) < (jobs[$1].due!, jobs[$1].policy) }
        for index in due where runningCount < settings.maxConcurrent {
            let scheduled = jobs[index].due!
            actions.append(.start(policy: jobs[index].policy, scheduled: scheduled, catchUp: jobs[index].catchUp))
            jobs[index].running = Run(scheduled: scheduled, started: now,
                                      deadline: now.addingTimeInterval(TimeInterval(settings.runTimeout.seconds)), cancelled: false)
            // One run for every firing that passed while it waited.
            jobs[index].due = jobs[index].schedule.nextRun(after: max(now, scheduled), policy: jobs[index].policy)
            jobs[index].catchUp = false
        }
        return actions
    }

    /// A run of `policy` ended.
    public mutating func finished(policy: String) {
        if let index = jobs.firstIndex(where: { $0.policy == policy }) { jobs[index].running = nil }
    }

    /// SIGTERM/SIGINT: nothing starts any more; runs still going at `now + stopTimeout` are
    /// cancelled.
    public mutating func stop(now: Date) {
        guard stopDeadline == nil else { return }
        stopDeadline = now.addingTimeInterval(TimeInterval(settings.stopTimeout.seconds))
    }

    /// When `tick` has something to do next, without any run ending meanwhile (nil: nothing
    /// until a run ends).
    public func nextWake(now: Date) -> Date? {
        var times: [Date] = []
        for job in jobs {
            if let run = job.running, !run.cancelled {
                times.append(run.deadline)
                if let stopDeadline { times.append(stopDeadline) }
            }
            guard !isStopping, let due = job.due else { continue }
            // A due run waiting for a slot wakes nothing: the end of a run does.
            if due > now || (job.running == nil && runningCount < settings.maxConcurrent) || job.running != nil {
                times.append(due)
            }
        }
        return times.min()
    }

    /// The next firing each policy waits for.
    public func nextRun(of policy: String) -> Date? {
        jobs.first { $0.policy == policy }?.due
    }
}
