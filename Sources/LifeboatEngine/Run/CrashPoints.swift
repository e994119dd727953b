import Glibc
import LifeboatCore

/// Named points where a test can make a run die as a crash would: `LIFEBOAT_CRASH_AT=<point>`
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
    /// A restore of a base backup has extracted its first part into the data directory.
    case restoringPart = "restoring-part"

    /// The points a backup passes.
    public static let backupPoints: [CrashPoint] = [.reserved, .writingArtifact, .beforeCommit, .committed]

    public static let variable = "LIFEBOAT_CRASH_AT"

    /// Dies here when the context's environment names this point.
    public func reach(_ context: RunContext) {
        guard context.environment[Self.variable] == rawValue else { return }
        context.logger.debug("crash point reached: killing this process", metadata: ["crash.point": "\(rawValue)"])
        kill(getpid(), SIGKILL)
        while true { pause() }
    }
}
