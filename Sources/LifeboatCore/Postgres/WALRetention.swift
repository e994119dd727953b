import Foundation

/// Which archived WAL a policy still needs, given the base backups it keeps. Pure.
///
/// Recovery from a base backup reads WAL from the segment of its start LSN (its checkpoint's
/// redo point) on, along its timeline and the timelines that descend from it; so every kept
/// backup needs nothing before the segment of the oldest kept backup's start, on any
/// timeline. Everything before that segment number goes — segments, partial segments and
/// backup history files of every timeline; from it on everything stays, and so do the
/// timeline history files (small, and what recovery follows timelines by). Deleting only a
/// prefix of the archive also keeps `wal-push` safe: PostgreSQL never archives a segment that
/// old again, so no push can be comparing against an object being deleted.
public enum WALRetention {
    /// The first segment number a kept base backup needs; nil when no base backup is kept
    /// (then nothing is deleted).
    public static func firstNeededSegment(of backups: [PhysicalBackupRecord], segmentSize: UInt64) -> UInt64? {
        backups.map { $0.startLSN.value / segmentSize }.min()
    }

    /// Whether an archived file lies wholly before `firstNeeded` and may be deleted.
    public static func isExpired(_ file: WALFileName, firstNeeded: UInt64) -> Bool {
        switch file {
        case .segment(let segment), .partial(let segment), .backupHistory(let segment, _):
            return segment.number < firstNeeded
        case .history:
            return false
        }
    }
}
