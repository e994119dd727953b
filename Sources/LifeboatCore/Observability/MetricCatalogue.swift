/// Every metric Lifeboat exports, in one place: the `/metrics` listener registers only these,
/// and the shipped alert rules and Grafana dashboard (`deploy/prometheus`, `deploy/grafana`)
/// may use only these — a test holds both to it. A metric's name, type and labels are an
/// interface that users' dashboards and alerts script against: add freely, rename never.
public struct MetricDescriptor: Sendable, Hashable {
    public enum Kind: String, Sendable {
        case counter, gauge, histogram
    }

    public let name: String
    public let kind: Kind
    public let help: String
    public let labels: [String]

    public init(_ name: String, _ kind: Kind, labels: [String], help: String) {
        self.name = name
        self.kind = kind
        self.help = help
        self.labels = labels
    }

    /// The series names Prometheus stores for this metric: a histogram's `_bucket`, `_sum`
    /// and `_count`; a counter or gauge's own name.
    public var seriesNames: [String] {
        kind == .histogram ? [name + "_bucket", name + "_sum", name + "_count"] : [name]
    }
}

public enum MetricCatalogue {
    // Runs, as the scheduler daemon starts them (operation: backup, prune, verify, drill; not
    // `job`, which Prometheus gives every series it scrapes).

    public static let runsTotal = MetricDescriptor(
        "lifeboat_runs_total", .counter, labels: ["policy", "operation", "outcome"],
        help: "Runs the scheduler ended, by outcome (succeeded, incomplete, failed, cancelled, timed-out).")
    public static let lastRunSuccess = MetricDescriptor(
        "lifeboat_last_run_success", .gauge, labels: ["policy", "operation"],
        help: "1 when the newest run of the operation ended successfully (succeeded), 0 otherwise.")
    public static let lastRunTimestamp = MetricDescriptor(
        "lifeboat_last_run_timestamp_seconds", .gauge, labels: ["policy", "operation"],
        help: "When the newest run of the operation ended (Unix time).")
    public static let runDuration = MetricDescriptor(
        "lifeboat_run_duration_seconds", .histogram, labels: ["policy", "operation"],
        help: "How long runs took, start to end.")

    // Backups.

    public static let lastSuccessTimestamp = MetricDescriptor(
        "lifeboat_backup_last_success_timestamp_seconds", .gauge, labels: ["policy"],
        help: "When the newest successful backup of the policy ended (Unix time), from the repository.")
    public static let maxAge = MetricDescriptor(
        "lifeboat_backup_max_age_seconds", .gauge, labels: ["policy"],
        help: "How old the newest successful backup may be before the policy is stale: twice the schedule's longest gap between firings, plus the run timeout.")
    public static let bytesWritten = MetricDescriptor(
        "lifeboat_backup_bytes_written_total", .counter, labels: ["policy"],
        help: "Bytes stored in the repository by the scheduler's backups since the daemon started.")
    public static let lastBackupBytes = MetricDescriptor(
        "lifeboat_backup_last_bytes", .gauge, labels: ["policy"],
        help: "Bytes stored by the newest successful backup the scheduler ran.")
    public static let backupsInRepository = MetricDescriptor(
        "lifeboat_repository_backups", .gauge, labels: ["policy"],
        help: "Committed backups of the policy in its repository.")
    public static let newestRecoverable = MetricDescriptor(
        "lifeboat_recovery_point_newest_timestamp_seconds", .gauge, labels: ["policy"],
        help: "The newest moment a restore of the policy can reach (Unix time).")
    public static let earliestRecoverable = MetricDescriptor(
        "lifeboat_recovery_point_earliest_timestamp_seconds", .gauge, labels: ["policy"],
        help: "The earliest moment a restore of the policy can reach (Unix time).")

    // Repositories.

    public static let repositoryUp = MetricDescriptor(
        "lifeboat_repository_up", .gauge, labels: ["policy"],
        help: "1 when the policy's repository answered the newest check, 0 when it did not.")
    public static let repositoryCheckTimestamp = MetricDescriptor(
        "lifeboat_repository_check_timestamp_seconds", .gauge, labels: ["policy"],
        help: "When the policy's repository was last read for these metrics (Unix time).")

    // WAL archiving (PostgreSQL policies with wal:).

    public static let walLastPush = MetricDescriptor(
        "lifeboat_wal_last_push_timestamp_seconds", .gauge, labels: ["policy"],
        help: "When the newest WAL segment of the policy was archived (Unix time), from the repository.")
    public static let walPushFailures = MetricDescriptor(
        "lifeboat_wal_push_failures_total", .counter, labels: ["policy"],
        help: "wal-push invocations that failed, as recorded in the state directory by wal-push on this machine.")

    // Prune.

    public static let pruneDeleted = MetricDescriptor(
        "lifeboat_prune_deleted_total", .counter, labels: ["policy", "kind"],
        help: "What the scheduler's prunes deleted (kind: backup, wal, blob).")

    // Restore drills.

    public static let drillLastSuccess = MetricDescriptor(
        "lifeboat_drill_last_success", .gauge, labels: ["runbook"],
        help: "1 when the newest drill of the runbook passed (every check, every objective), 0 otherwise.")
    public static let drillLastTimestamp = MetricDescriptor(
        "lifeboat_drill_last_timestamp_seconds", .gauge, labels: ["runbook"],
        help: "When the newest drill of the runbook ended (Unix time).")
    public static let drillRTO = MetricDescriptor(
        "lifeboat_drill_rto_seconds", .gauge, labels: ["runbook"],
        help: "The recovery time the newest drill measured.")
    public static let drillRPO = MetricDescriptor(
        "lifeboat_drill_rpo_seconds", .gauge, labels: ["runbook"],
        help: "The recovery point (data loss) the newest drill measured, the worst over its stores.")
    public static let drillRTOObjective = MetricDescriptor(
        "lifeboat_drill_rto_objective_seconds", .gauge, labels: ["runbook"],
        help: "The runbook's recovery time objective.")
    public static let drillRPOObjective = MetricDescriptor(
        "lifeboat_drill_rpo_objective_seconds", .gauge, labels: ["runbook"],
        help: "The runbook's recovery point objective.")

    // The daemon.

    public static let schedulerUp = MetricDescriptor(
        "lifeboat_scheduler_running", .gauge, labels: [],
        help: "1 while the scheduler starts runs, 0 once it is stopping.")
    public static let buildInfo = MetricDescriptor(
        "lifeboat_build_info", .gauge, labels: ["version"],
        help: "Always 1; the label names the Lifeboat version.")

    public static let all: [MetricDescriptor] = [
        runsTotal, lastRunSuccess, lastRunTimestamp, runDuration,
        lastSuccessTimestamp, maxAge, bytesWritten, lastBackupBytes, backupsInRepository, newestRecoverable, earliestRecoverable,
        repositoryUp, repositoryCheckTimestamp,
        walLastPush, walPushFailures,
        pruneDeleted,
        drillLastSuccess, drillLastTimestamp, drillRTO, drillRPO, drillRTOObjective, drillRPOObjective,
        schedulerUp, buildInfo,
    ]

    /// Every series name a query may use (a histogram's three).
    public static var seriesNames: Set<String> { Set(all.flatMap(\.seriesNames)) }

    /// The run-duration histogram's upper bounds, in seconds: a WAL-sized run to a day-long
    /// base backup.
    public static let durationBuckets: [Double] = [1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400]
}
