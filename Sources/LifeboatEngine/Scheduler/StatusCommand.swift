import Foundation
import LifeboatCore
import LifeboatIO

/// `lifeboat status`: per policy, the last scheduled run and its outcome (from the run
/// history), the next scheduled run, and the newest point a restore can reach (from the
/// repository).
public struct StatusCommand {
    public let configuration: Configuration
    public let context: RunContext

    public init(configuration: Configuration, context: RunContext) {
        self.configuration = configuration
        self.context = context
    }

    public struct PolicyStatus: Sendable, Encodable {
        public var policy: String
        /// The cron expression, or nil when the policy has no schedule.
        public var schedule: String?
        public var timezone: String?
        /// The newest run in the history, if any.
        public var lastRun: RunRecord?
        /// The next scheduled run (cron firing plus jitter), nil without a schedule.
        public var nextRun: Date?
        /// The newest point a restore reaches: for point-in-time recovery, the end of the newest
        /// recoverable interval; otherwise the newest committed backup's end.
        public var newestRestorable: Date?
        /// The backup that point belongs to (nil for a recoverable interval's end).
        public var newestBackup: String?
        /// Why the repository could not tell (it is unreachable, say).
        public var restorableError: String?
    }

    public struct Status: Sendable, Encodable {
        public var stateDirectory: String
        public var policies: [PolicyStatus]
        /// Lines of the run history that could not be read (a torn last line after a crash).
        public var unreadableHistoryLines: Int
    }

    public func run() throws -> Status {
        let state = StateDirectory(path: configuration.resolvedStateDirectory)
        let history = try state.history()
        let now = context.clock()
        var statuses: [PolicyStatus] = []
        for policy in configuration.policies.sorted(by: { $0.name < $1.name }) {
            var status = PolicyStatus(policy: policy.name, schedule: policy.schedule?.cron.description, timezone: policy.schedule?.timezone,
                                      lastRun: history.records.last { $0.policy == policy.name },
                                      nextRun: policy.schedule?.nextRun(after: now, policy: policy.name))
            do {
                let points = try RecoveryPoints.read(policy: policy.name, configuration: configuration, context: context)
                status.newestRestorable = points.newest
                if !points.pointInTime { status.newestBackup = points.newestBackup }
                if points.newest == nil, let problem = points.problem { status.restorableError = problem }
            } catch {
                status.restorableError = Secrets.redact("\(error)")
            }
            statuses.append(status)
        }
        return Status(stateDirectory: state.path, policies: statuses, unreadableHistoryLines: history.unreadable)
    }
}
