import Glibc
import LifeboatCore

/// Named points where a test can make a run (a backup, a restore, a prune) die as a crash would: `LIFEBOAT_CRASH_AT=<point>`
/// in the environment of a `lifeboat` process makes it kill itself with `SIGKILL` when it
/// reaches that point — no cleanup, no message, exactly what `kill -9` or a power cut at that
/// moment leaves. The crash tests use it to prove that every listed backup still verifies and
/// the next run succeeds, whatever the point. Nothing else reads the variable.
public enum CrashPoint: String, Sendable, CaseIterable {
    /// The backup's id is reserved; nothing else is written.
    case reserved
    /// Part of the first artifact is written (its temporary object exists, uncommitted).
    case writingArtifact = "writing-artifact"
    /// Every artifact is committed; the manifest is not.
    case beforeCommit = "before-commit"
    /// The manifest is committed; the reservation and the lock are still there.
    case committed
    /// A restore of a base backup has extracted a part into the data directory.
    case restoringPart = "restoring-part"

    /// Prune: the manifest of the first backup it deletes is gone; its artifacts (and its
    /// reservation, if it had one) are not.
    case pruneManifestDeleted = "prune-manifest-deleted"
    /// Prune: the first backup it deletes has lost its manifest and its artifacts; its
    /// reservation (an interrupted run's), if it had one, is still there.
    case pruneDataDeleted = "prune-data-deleted"
    /// Prune: a source kind has deleted the first batch of what it keeps outside its backups
    /// (archived WAL), not the rest.
    case pruneDependencies = "prune-dependencies"

    /// The points of a backup run.
    public static let backup: [CrashPoint] = [.reserved, .writingArtifact, .beforeCommit, .committed]
    /// The points of a prune.
    public static let prune: [CrashPoint] = [.pruneManifestDeleted, .pruneDataDeleted, .pruneDependencies]

    public static let variable = "LIFEBOAT_CRASH_AT"

    /// Dies here when the context's environment names this point.
    public func reach(_ context: RunContext) {
        guard context.environment[Self.variable] == rawValue else { return }
        context.logger.debug("crash point reached: killing this process", metadata: ["crash.point": "\(rawValue)"])
        kill(getpid(), SIGKILL)
        while true { pause() }
    }
}
