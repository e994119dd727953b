import Foundation

/// A committed base backup, as the planner sees it.
public struct PhysicalBackupInfo: Sendable, Equatable {
    public var id: String
    public var record: PhysicalBackupRecord

    public init(id: String, record: PhysicalBackupRecord) {
        self.id = id
        self.record = record
    }
}

/// The WAL a policy's repository holds: which segments of which timelines, when each was
/// archived, and the timeline histories.
public struct WALInventory: Sendable {
    public var segmentSize: UInt64
    /// Archive time of each segment, by timeline and segment number.
    public var segments: [UInt32: [UInt64: Date]]
    public var histories: [UInt32: TimelineHistory]

    public init(segmentSize: UInt64, segments: [UInt32: [UInt64: Date]] = [:], histories: [UInt32: TimelineHistory] = [:]) {
        self.segmentSize = segmentSize
        self.segments = segments
        self.histories = histories
    }

    public mutating func add(_ segment: WALSegment, archivedAt: Date) {
        segments[segment.timeline, default: [:]][segment.number] = archivedAt
    }

    /// Every timeline the repository knows of (from segments and history files).
    public var timelines: Set<UInt32> { Set(segments.keys).union(histories.keys) }
}

/// Points in the cluster's history that can be recovered to: from a base backup's end to the
/// last WAL segment that follows it without a gap.
public struct RecoverableInterval: Sendable, Equatable, Codable {
    /// The backups that start in this interval, oldest first.
    public var backups: [String]
    /// The timeline recovery ends on.
    public var timeline: UInt32
    public var fromLSN: LSN
    public var fromTime: Date
    /// The end of the last segment without a gap, and when it was archived (no commit in it
    /// is later than that).
    public var toLSN: LSN
    public var toTime: Date
    /// The first segment missing after the interval, when WAL after it exists (a gap).
    public var gapAt: String?

    public var description: String {
        "\(RecoveryTarget.format(fromTime)) (\(fromLSN)) to \(RecoveryTarget.format(toTime)) (\(toLSN)) on timeline \(timeline)"
            + (gapAt.map { ", then a gap: segment \($0) is missing" } ?? "")
    }
}

/// What a point-in-time restore will do: the base backup to restore and the interval its
/// target lies in.
public struct RecoveryChoice: Sendable, Equatable {
    public var backup: PhysicalBackupInfo
    public var interval: RecoverableInterval
    /// The timeline recovery follows, resolved (`latest` → a number).
    public var timeline: UInt32
}

/// Pure planning of point-in-time recovery: recoverable intervals and the choice of a base
/// backup for a target. Mirrors how PostgreSQL reads archived WAL: for each segment number,
/// the newest timeline of the target's history that had begun by then.
public enum RecoveryPlanner {
    /// One timeline of a history, and the WAL positions it covers: [begin, end).
    struct TimelineSpan: Equatable {
        var timeline: UInt32
        var begin: LSN
        var end: LSN?
    }

    /// The timelines recovery walks from a backup taken on `base` up to `target`, oldest first;
    /// nil when `target` does not descend from `base` after the backup's end.
    static func path(from base: UInt32, stop: LSN, to target: UInt32, wal: WALInventory) -> [TimelineSpan]? {
        if target == base { return [TimelineSpan(timeline: base, begin: LSN(0), end: nil)] }
        guard let history = wal.histories[target] else { return nil }
        var spans: [TimelineSpan] = []
        var begin = LSN(0)
        for entry in history.entries {
            spans.append(TimelineSpan(timeline: entry.timeline, begin: begin, end: entry.switchPoint))
            begin = entry.switchPoint
        }
        spans.append(TimelineSpan(timeline: target, begin: begin, end: nil))
        guard let index = spans.firstIndex(where: { $0.timeline == base }), let end = spans[index].end, stop <= end else { return nil }
        return Array(spans[index...])
    }

    /// The timeline recovery of `backup` follows for `requested`.
    static func targetTimeline(for backup: PhysicalBackupRecord, requested: RecoveryTimeline, wal: WALInventory) -> UInt32? {
        switch requested {
        case .current: return backup.timeline
        case .number(let n): return path(from: backup.timeline, stop: backup.stopLSN, to: n, wal: wal) == nil ? nil : n
        case .latest:
            return wal.timelines.union([backup.timeline]).sorted(by: >)
                .first { path(from: backup.timeline, stop: backup.stopLSN, to: $0, wal: wal) != nil }
        }
    }

    /// The recoverable interval starting at `backup`, or nil when the WAL the backup itself
    /// needs is not all there (the reason in `missing`).
    public static func interval(for backup: PhysicalBackupInfo, timeline requested: RecoveryTimeline, wal: WALInventory) -> (RecoverableInterval?, missing: String?) {
        let record = backup.record
        guard let target = targetTimeline(for: record, requested: requested, wal: wal),
              let spans = path(from: record.timeline, stop: record.stopLSN, to: target, wal: wal)
        else {
            return (nil, "timeline \(requested) does not follow from timeline \(record.timeline) after this backup")
        }
        let size = wal.segmentSize
        let firstNumber = record.startLSN.value / size
        let requiredLast = (max(record.stopLSN.value, 1) - 1) / size
        var number = firstNumber
        var lastTime: Date?
        while true {
            // The newest timeline that had begun by this segment, then older ones (the
            // segment holding a switch point exists on both).
            let candidates = spans.reversed().filter { span in
                span.begin.value / size <= number && (span.end.map { number <= (max($0.value, 1) - 1) / size } ?? true)
            }
            guard let time = candidates.lazy.compactMap({ wal.segments[$0.timeline]?[number] }).first else { break }
            lastTime = max(lastTime ?? time, time)
            number += 1
        }
        if number <= requiredLast {
            let timeline = spans.last(where: { $0.begin.value / size <= number })?.timeline ?? record.timeline
            return (nil, "segment \(WALSegment(timeline: timeline, number: number, segmentSize: size).name) it needs is not archived")
        }
        let missingTimeline = spans.last(where: { $0.begin.value / size <= number })?.timeline ?? target
        let later = spans.contains { span in (wal.segments[span.timeline] ?? [:]).keys.contains { $0 > number } }
        let interval = RecoverableInterval(
            backups: [backup.id], timeline: target, fromLSN: record.stopLSN, fromTime: record.stopTime,
            toLSN: LSN(number * size), toTime: max(lastTime ?? record.stopTime, record.stopTime),
            gapAt: later ? WALSegment(timeline: missingTimeline, number: number, segmentSize: size).name : nil)
        return (interval, nil)
    }

    /// Every recoverable interval, oldest first: backups whose intervals overlap are merged.
    public static func intervals(backups: [PhysicalBackupInfo], timeline: RecoveryTimeline = .latest, wal: WALInventory) -> [RecoverableInterval] {
        var result: [RecoverableInterval] = []
        for backup in backups.sorted(by: { $0.record.stopLSN < $1.record.stopLSN }) {
            guard let interval = interval(for: backup, timeline: timeline, wal: wal).0 else { continue }
            if var last = result.last, last.timeline == interval.timeline, interval.fromLSN <= last.toLSN {
                last.backups.append(backup.id)
                if interval.toLSN > last.toLSN {
                    last.toLSN = interval.toLSN
                    last.toTime = interval.toTime
                    last.gapAt = interval.gapAt
                }
                result[result.count - 1] = last
            } else {
                result.append(interval)
            }
        }
        return result
    }

    /// Chooses the base backup for `target`: the one `explicit` names, else the newest one
    /// that ends before the target (for a time or an LSN), the newest one (latest, immediate),
    /// or the oldest one of the last interval (a transaction id or a restore point, whose
    /// position the repository cannot know). A target outside every interval is refused with
    /// the intervals named.
    public static func choose(target: RecoveryTarget, timeline: RecoveryTimeline, backups: [PhysicalBackupInfo],
                              explicit: String?, wal: WALInventory) throws -> RecoveryChoice {
        let all = intervals(backups: backups, timeline: timeline, wal: wal)
        var candidates: [(PhysicalBackupInfo, RecoverableInterval)] = []
        for backup in backups.sorted(by: { $0.record.stopLSN < $1.record.stopLSN }) where explicit == nil || backup.id == explicit {
            let (interval, missing) = interval(for: backup, timeline: timeline, wal: wal)
            guard let interval else {
                if explicit != nil {
                    throw LifeboatError(.usage, "base backup \(backup.id) cannot be recovered: \(missing ?? "its WAL is incomplete")",
                                        hint: "Choose another backup (lifeboat list shows the recoverable range), or leave the backup out to let Lifeboat choose.")
                }
                continue
            }
            candidates.append((backup, interval))
        }
        if let explicit, candidates.isEmpty, !backups.contains(where: { $0.id == explicit }) {
            throw LifeboatError(.notFound, "no base backup \(explicit)", hint: "Run 'lifeboat list' to see the backups.")
        }
        guard !candidates.isEmpty else {
            throw LifeboatError(.usage, "no base backup can be recovered: none has all the WAL it needs in the repository",
                                hint: "Check that archive_command runs 'lifeboat wal-push' for this policy, then take a new base backup.")
        }
        let ranges = all.isEmpty ? "none" : all.map(\.description).joined(separator: "; ")
        func outside(_ what: String) -> LifeboatError {
            LifeboatError(.usage, "\(what) is outside the recoverable range: \(ranges)",
                          hint: "Choose a target inside the range (lifeboat list shows it); Lifeboat never restores to another point than the one asked for.")
        }
        func choice(_ pair: (PhysicalBackupInfo, RecoverableInterval)) -> RecoveryChoice {
            RecoveryChoice(backup: pair.0, interval: pair.1, timeline: pair.1.timeline)
        }
        switch target {
        case .time(let time):
            guard let pair = candidates.last(where: { $0.1.fromTime <= time && time <= $0.1.toTime }) else {
                throw outside("target time \(RecoveryTarget.format(time))")
            }
            return choice(pair)
        case .lsn(let lsn):
            guard let pair = candidates.last(where: { $0.1.fromLSN <= lsn && lsn <= $0.1.toLSN }) else {
                throw outside("target LSN \(lsn)")
            }
            return choice(pair)
        case .latest, .immediate:
            return choice(candidates.last!)
        case .xid, .name:
            if explicit != nil { return choice(candidates.last!) }
            guard let last = all.last, let first = candidates.first(where: { last.backups.contains($0.0.id) }) else {
                return choice(candidates.last!)
            }
            return choice(first)
        }
    }
}
