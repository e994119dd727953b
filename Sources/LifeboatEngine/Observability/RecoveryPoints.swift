import Foundation
import LifeboatCore

/// What a policy's repository says about where a restore can go: `lifeboat status` and the
/// scheduler's metrics read it alike, through `ListCommand`.
public struct RecoveryPoints: Sendable {
    /// Committed backups of the policy.
    public var committedBackups = 0
    /// The newest committed backup, and when it ended.
    public var newestBackup: String?
    public var newestBackupEnd: Date?
    /// The newest point a restore reaches: for point-in-time recovery, the end of the newest
    /// recoverable interval; otherwise the newest committed backup's end.
    public var newest: Date?
    /// The earliest: the start of the oldest recoverable interval, otherwise the oldest
    /// committed backup's end.
    public var earliest: Date?
    /// Whether `newest` and `earliest` come from point-in-time recovery intervals.
    public var pointInTime = false
    /// Why the listing was partial (a policy's backups could not be listed), if it was.
    public var problem: String?

    /// Lists the policy's backups in its repository.
    ///
    /// - Throws: when the repository cannot be read at all (unreachable, no credentials).
    public static func read(policy: String, configuration: Configuration, context: RunContext) throws -> RecoveryPoints {
        let listing = try ListCommand(source: .configuration(configuration), context: context).run(policy: policy)
        var points = RecoveryPoints()
        let committed = listing.backups.filter { $0.state == .committed && $0.policy == policy }
        points.committedBackups = committed.count
        let ended = committed.compactMap { entry in entry.finishedAt.map { (entry.id, $0) } }
        if let newest = ended.max(by: { $0.1 < $1.1 }) { (points.newestBackup, points.newestBackupEnd) = (newest.0, newest.1) }
        let intervals = listing.ranges.filter { $0.policy == policy }.flatMap(\.intervals)
        points.pointInTime = !intervals.isEmpty
        points.newest = intervals.map(\.toTime).max() ?? points.newestBackupEnd
        points.earliest = intervals.map(\.fromTime).min() ?? ended.map(\.1).min()
        points.problem = listing.problems.first
        return points
    }
}
