import Foundation

/// How old a policy's newest backup may be before the policy counts as stale
/// (`lifeboat_backup_max_age_seconds`, and the `/readyz` policy check).
public enum StalenessThreshold {
    /// How far ahead the schedule's gaps are measured: a week and a day, so that a weekly
    /// pattern and a daylight-saving change within it are seen.
    public static let horizon: TimeInterval = 8 * 86400

    /// Twice the longest gap between consecutive runs of the schedule over the `horizon` after
    /// `now` (one missed run is tolerated, a second is not), plus `run_timeout` (a run may take
    /// that long before its backup exists). Nil when the schedule never fires twice.
    public static func maxAge(of schedule: Schedule, runTimeout: ConfigDuration, now: Date) -> TimeInterval? {
        longestGap(of: schedule.cron, in: schedule.timeZone, after: now).map { 2 * $0 + TimeInterval(runTimeout.seconds) }
    }

    /// The longest gap between consecutive firings from `start` until the first firing after
    /// `start + horizon` (jitter moves every firing of a policy alike, so it changes no gap).
    /// A schedule firing less than twice in that window is followed for up to a year.
    public static func longestGap(of cron: CronExpression, in timeZone: TimeZone, after start: Date) -> TimeInterval? {
        var fires = firings(of: cron, in: timeZone, after: start)
        if fires.count < 2 {
            // Sparse (monthly, yearly): firing by firing.
            fires = []
            var cursor = start
            while fires.count < 13, let next = cron.nextFire(after: cursor, in: timeZone) {
                fires.append(next)
                cursor = next
            }
        }
        guard fires.count >= 2 else { return nil }
        return zip(fires, fires.dropFirst()).map { $1.timeIntervalSince($0) }.max()
    }

    /// The firings after `start` through the first one after `start + horizon`, computed day by
    /// day from the local times (one instant per local time, as `nextFire` maps them; several
    /// skipped times fall on one instant and count once).
    static func firings(of cron: CronExpression, in timeZone: TimeZone, after start: Date) -> [Date] {
        guard cron.firesOnSomeDay else { return [] }
        let after = Int64(start.timeIntervalSince1970.rounded(.down))
        let end = after + Int64(horizon)
        let startLocal = after + Int64(timeZone.secondsFromGMT(for: start))
        let firstDay = Int(startLocal >= 0 ? startLocal / 86400 : -((-startLocal + 86399) / 86400)) - 1
        let times = cron.hours.sorted().flatMap { hour in cron.minutes.sorted().map { Int64(hour * 3600 + $0 * 60) } }
        var fires: [Int64] = []
        for day in firstDay...(firstDay + Int(horizon / 86400) + 3) {
            guard cron.matches(CivilDate(days: day)) else { continue }
            for time in times {
                let fire = CronExpression.instant(forLocal: Int64(day) * 86400 + time, in: timeZone)
                guard fire > after, fire > (fires.last ?? Int64.min) else { continue }
                fires.append(fire)
                if fire > end { return fires.map { Date(timeIntervalSince1970: TimeInterval($0)) } }
            }
        }
        return fires.map { Date(timeIntervalSince1970: TimeInterval($0)) }
    }
}
