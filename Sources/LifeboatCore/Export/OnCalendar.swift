/// A cron expression as systemd `OnCalendar=` lines (systemd.time(7)): the same local times,
/// in the same time zone.
///
/// Each field becomes a systemd list — `*`, `start/step` when the values are every step from
/// start to the field's end, else values and `a..b` ranges — so every expression cron reads
/// (lists, ranges, steps, names, `@daily` and friends) converts exactly. One thing does not
/// fit one line: with both day fields restricted, cron fires on a day matching either, while
/// systemd requires both; that is two lines, one per day field (a timer fires at the union of
/// its `OnCalendar=` lines).
///
/// Daylight-saving changes: a local time that occurs twice fires once, at its first
/// occurrence, in systemd as in the daemon. A local time that does not occur (clocks set
/// forward) is skipped by systemd, where the daemon runs it at the change.
extension CronExpression {
    public func onCalendar(timeZone: String) -> [String] {
        let time = "\(Self.systemdField(hours, 0...23)):\(Self.systemdField(minutes, 0...59)):00 \(timeZone)"
        let month = Self.systemdField(months, 1...12)
        let byDayOfMonth = "*-\(month)-\(Self.systemdField(daysOfMonth, 1...31)) \(time)"
        let byDayOfWeek = "\(Self.systemdWeekdays(daysOfWeek)) *-\(month)-* \(time)"
        switch (dayOfMonthRestricted, dayOfWeekRestricted) {
        case (false, false): return ["*-\(month)-* \(time)"]
        case (true, false): return [byDayOfMonth]
        case (false, true): return [byDayOfWeek]
        case (true, true): return [byDayOfWeek, byDayOfMonth]
        }
    }

    /// One field's values in systemd's syntax, two digits each.
    static func systemdField(_ values: Set<Int>, _ range: ClosedRange<Int>) -> String {
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let sorted = values.sorted()
        if sorted.count == range.count { return "*" }
        // `start/step`: start, start + step, … up to the end of the field.
        if sorted.count >= 3, let first = sorted.first {
            let step = sorted[1] - first
            if step > 1, sorted == Array(stride(from: first, through: range.upperBound, by: step)) {
                return "\(two(first))/\(step)"
            }
        }
        return runs(sorted).map { run in
            switch run.count {
            case 1: return two(run.lowerBound)
            case 2: return "\(two(run.lowerBound)),\(two(run.upperBound))"
            default: return "\(two(run.lowerBound))..\(two(run.upperBound))"
            }
        }.joined(separator: ",")
    }

    /// Weekdays (0 = Sunday) as systemd names, Monday first, consecutive days as ranges.
    static func systemdWeekdays(_ days: Set<Int>) -> String {
        let names = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        // systemd's week runs Monday (1) … Sunday (7).
        let ordered = days.map { $0 == 0 ? 7 : $0 }.sorted()
        return runs(ordered).map { run in
            let first = names[run.lowerBound % 7], last = names[run.upperBound % 7]
            switch run.count {
            case 1: return first
            case 2: return "\(first),\(last)"
            default: return "\(first)..\(last)"
            }
        }.joined(separator: ",")
    }
}
