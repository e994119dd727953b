import Foundation

/// A committed backup, as retention sees it.
public struct RetentionCandidate: Sendable, Equatable {
    public var id: String
    /// When the backup started (its manifest's `startedAt`): the time the keep rules look at —
    /// its hour, day, week, month and year, and its age.
    public var time: Date
    /// The earliest moment a restore of this backup reaches (a base backup's consistent
    /// point; otherwise the backup's end): what `recovery_window` looks at.
    public var consistentAt: Date

    public init(id: String, time: Date, consistentAt: Date? = nil) {
        self.id = id
        self.time = time
        self.consistentAt = consistentAt ?? time
    }
}

/// One rule that kept a backup (or the reason one goes), for people and for `--json`.
public struct RetentionReason: Sendable, Equatable, Codable, CustomStringConvertible {
    /// The rule as configuration names it (`keep_daily`, `recovery_window`), or one of the
    /// fixed reasons: `newest` (the newest committed backup is never deleted), `no_rules` (the
    /// policy has none: everything is kept), `expired` (no rule keeps it).
    public var rule: String
    /// What it means for this backup, in words: "newest of day 2026-11-29".
    public var detail: String

    public init(rule: String, detail: String) {
        self.rule = rule
        self.detail = detail
    }

    public var description: String { "\(rule) (\(detail))" }
}

/// What retention decides for one backup.
public struct RetentionDecision: Sendable, Equatable {
    public var id: String
    public var time: Date
    public var keep: Bool
    /// Every rule that keeps it; for a backup that goes, why.
    public var reasons: [RetentionReason]
}

/// Applies a policy's `retention:` rules to its committed backups. Pure: the time zone and
/// "now" are given, nothing is read.
///
/// The rules are restic's (`restic forget --keep-*`):
///
/// - Backups are walked newest first (by start time; equal times by id, the larger first).
/// - `keep_last n` keeps the `n` newest.
/// - `keep_hourly/daily/weekly/monthly/yearly n` keep, for each of the newest `n` periods that
///   have backups, that period's newest backup. Periods are the policy's time zone's: a day
///   is a calendar day there (23 or 25 hours on the days clocks change), a week an ISO 8601
///   week (Monday to Sunday; the week of 29 December may belong to the next year), an hour
///   an hour of the clock — on the night clocks go back, the repeated hour counts twice, once
///   for each UTC offset. When a rule still has room after the newest backup of every period
///   with backups, the oldest backup is kept as well (restic 0.17 does the same: it keeps
///   the longest history the counts allow).
/// - `keep_within d` keeps every backup that started after the newest backup's start minus
///   `d`; `keep_within_daily d` (and hourly, …) keeps the newest backup of each period
///   within that span. The span is measured from the newest backup that is not in the
///   future, not from now, so a policy whose backups stopped keeps its history; whole days
///   of `d` are calendar days in the time zone, the rest exact hours, minutes and seconds.
/// - `recovery_window d` keeps what restoring any moment of the last `d` (before now) needs:
///   the newest backup consistent at or before the window's start, and every backup
///   consistent after it (all of them when none is that old).
/// - Rules add up: a backup any rule keeps is kept, and every rule that keeps it is named.
///   The newest backup is always kept (`newest`); a policy without rules keeps everything
///   (`no_rules`).
public enum RetentionPlanner {
    /// The decisions for `backups`, oldest first (the order of `lifeboat list`).
    public static func plan(_ backups: [RetentionCandidate], rules: Retention, timeZone: TimeZone, now: Date) -> [RetentionDecision] {
        let newestFirst = backups.sorted { a, b in
            a.time != b.time ? a.time > b.time : KeyOrder.precedes(b.id, a.id)
        }
        guard !newestFirst.isEmpty else { return [] }
        var reasons = [[RetentionReason]](repeating: [], count: newestFirst.count)
        let periods = Periods(timeZone: timeZone)

        if rules.isEmpty {
            for index in newestFirst.indices {
                reasons[index].append(RetentionReason(rule: "no_rules", detail: "the policy has no retention rules: everything is kept"))
            }
        }

        // The reference point of the `keep_within` rules: the newest backup that did not start
        // after now (a backup dated in the future, by a clock running ahead, does not move it).
        let latest = newestFirst.first { $0.time <= now }?.time ?? now
        if let within = rules.keepWithin {
            let cutoff = periods.subtract(within, from: latest)
            for (index, backup) in newestFirst.enumerated() where backup.time > cutoff {
                reasons[index].append(RetentionReason(rule: "keep_within", detail: "started within \(within) of the newest backup (after \(periods.format(cutoff)))"))
            }
        }

        if let last = rules.keepLast {
            for index in newestFirst.indices.prefix(last) {
                reasons[index].append(RetentionReason(rule: "keep_last", detail: "number \(index + 1) of the \(last) newest"))
            }
        }

        for period in Period.allCases {
            guard let count = rules.count(for: period) else { continue }
            var left = count
            var previous: PeriodKey?
            for (index, backup) in newestFirst.enumerated() where left > 0 {
                let key = periods.key(period, of: backup.time)
                let isOldest = index == newestFirst.count - 1
                guard key != previous || isOldest else { continue }
                let detail = key != previous
                    ? "newest of \(period.noun) \(key.label) (\(count - left + 1) of \(count))"
                    : "the oldest backup, kept because \(period.rule) has room left (\(count - left + 1) of \(count))"
                reasons[index].append(RetentionReason(rule: period.rule, detail: detail))
                previous = key
                left -= 1
            }
        }

        for period in Period.allCases {
            guard let within = rules.within(for: period) else { continue }
            let cutoff = periods.subtract(within, from: latest)
            var previous: PeriodKey?
            for (index, backup) in newestFirst.enumerated() where backup.time > cutoff {
                let key = periods.key(period, of: backup.time)
                guard key != previous else { continue }
                reasons[index].append(RetentionReason(rule: period.withinRule,
                                                      detail: "newest of \(period.noun) \(key.label), within \(within) of the newest backup"))
                previous = key
            }
        }

        if let window = rules.recoveryWindow {
            let start = periods.subtract(window, from: now)
            // Newest first: the first backup consistent by the window's start is the one every
            // moment of the window is reached from; those consistent later follow it.
            let anchor = newestFirst.indices
                .filter { newestFirst[$0].consistentAt <= start }
                .max { newestFirst[$0].consistentAt < newestFirst[$1].consistentAt }
            for (index, backup) in newestFirst.enumerated() {
                if index == anchor {
                    reasons[index].append(RetentionReason(
                        rule: "recovery_window",
                        detail: "the newest backup consistent before the \(window) window starts (\(periods.format(start))): restores of its first moments start from it"))
                } else if backup.consistentAt > start {
                    reasons[index].append(RetentionReason(
                        rule: "recovery_window", detail: "consistent at \(periods.format(backup.consistentAt)), inside the \(window) window"))
                }
            }
        }

        reasons[0].append(RetentionReason(rule: "newest", detail: "the newest committed backup is never deleted"))

        var decisions: [RetentionDecision] = []
        for (index, backup) in newestFirst.enumerated().reversed() {
            let kept = !reasons[index].isEmpty
            decisions.append(RetentionDecision(
                id: backup.id, time: backup.time, keep: kept,
                reasons: kept ? reasons[index] : [RetentionReason(rule: "expired", detail: "no retention rule keeps it")]))
        }
        return decisions
    }

    /// "2026-11-29 02:00:00+01:00": `date` as `timeZone` shows it, as prune prints times.
    public static func format(_ date: Date, in timeZone: TimeZone) -> String {
        Periods(timeZone: timeZone).format(date)
    }

    /// The periods of the keep rules.
    public enum Period: CaseIterable, Sendable {
        case hour, day, week, month, year

        var rule: String { "keep_" + adjective }
        var withinRule: String { "keep_within_" + adjective }
        var adjective: String {
            switch self {
            case .hour: return "hourly"
            case .day: return "daily"
            case .week: return "weekly"
            case .month: return "monthly"
            case .year: return "yearly"
            }
        }
        var noun: String {
            switch self {
            case .hour: return "hour"
            case .day: return "day"
            case .week: return "week"
            case .month: return "month"
            case .year: return "year"
            }
        }
    }

    /// Which period a time falls in: equal keys, same period.
    struct PeriodKey: Equatable {
        var parts: [Int]
        var label: String
        static func == (a: PeriodKey, b: PeriodKey) -> Bool { a.parts == b.parts }
    }

    /// Calendar arithmetic in one time zone.
    struct Periods {
        let calendar: Calendar
        let timeZone: TimeZone

        init(timeZone: TimeZone) {
            // ISO 8601 weeks: Monday first, and week 1 is the one with the year's first Thursday.
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = timeZone
            calendar.firstWeekday = 2
            calendar.minimumDaysInFirstWeek = 4
            self.calendar = calendar
            self.timeZone = timeZone
        }

        func key(_ period: Period, of date: Date) -> PeriodKey {
            let c = calendar.dateComponents([.year, .month, .day, .hour, .weekOfYear, .yearForWeekOfYear], from: date)
            let year = c.year ?? 0, month = c.month ?? 0, day = c.day ?? 0, hour = c.hour ?? 0
            switch period {
            case .hour:
                // The UTC offset too: the hour repeated when clocks go back is two hours.
                let offset = timeZone.secondsFromGMT(for: date)
                return PeriodKey(parts: [year, month, day, hour, offset],
                                 label: String(format: "%04d-%02d-%02d %02d:00", year, month, day, hour) + Self.offsetText(offset))
            case .day:
                return PeriodKey(parts: [year, month, day], label: String(format: "%04d-%02d-%02d", year, month, day))
            case .week:
                let weekYear = c.yearForWeekOfYear ?? year, week = c.weekOfYear ?? 0
                return PeriodKey(parts: [weekYear, week], label: String(format: "%04d-W%02d", weekYear, week))
            case .month:
                return PeriodKey(parts: [year, month], label: String(format: "%04d-%02d", year, month))
            case .year:
                return PeriodKey(parts: [year], label: String(format: "%04d", year))
            }
        }

        /// `date` minus `duration`: its whole days as calendar days in the time zone (the same
        /// clock time that many days before), the rest as exact seconds.
        func subtract(_ duration: ConfigDuration, from date: Date) -> Date {
            let days = Int(duration.seconds / 86_400)
            let rest = TimeInterval(duration.seconds % 86_400)
            let shifted = days == 0 ? date : (calendar.date(byAdding: .day, value: -days, to: date)
                ?? date.addingTimeInterval(-TimeInterval(days) * 86_400))
            return shifted.addingTimeInterval(-rest)
        }

        /// "2026-11-29 02:00:00+01:00": a time as the policy's zone shows it.
        func format(_ date: Date) -> String {
            let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
            return String(format: "%04d-%02d-%02d %02d:%02d:%02d", c.year ?? 0, c.month ?? 0, c.day ?? 0, c.hour ?? 0, c.minute ?? 0, c.second ?? 0)
                + Self.offsetText(timeZone.secondsFromGMT(for: date))
        }

        static func offsetText(_ seconds: Int) -> String {
            let magnitude = abs(seconds)
            return (seconds < 0 ? "-" : "+") + String(format: "%02d:%02d", magnitude / 3600, magnitude % 3600 / 60)
        }
    }
}

extension Retention {
    func count(for period: RetentionPlanner.Period) -> Int? {
        switch period {
        case .hour: return keepHourly
        case .day: return keepDaily
        case .week: return keepWeekly
        case .month: return keepMonthly
        case .year: return keepYearly
        }
    }

    func within(for period: RetentionPlanner.Period) -> ConfigDuration? {
        switch period {
        case .hour: return keepWithinHourly
        case .day: return keepWithinDaily
        case .week: return keepWithinWeekly
        case .month: return keepWithinMonthly
        case .year: return keepWithinYearly
        }
    }
}

extension LifeboatError.Code {
    /// A command refused to do what it was asked, to protect data (`prune --max-delete`).
    /// The operation did not happen: exit status 1.
    public static let refused = LifeboatError.Code("refused", badInput: false)
}
