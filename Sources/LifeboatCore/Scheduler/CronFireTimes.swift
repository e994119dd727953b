import Foundation

/// When a cron expression fires, in a time zone, across daylight-saving changes.
///
/// Cron fields name local wall-clock times. Each matching local time is mapped to one instant:
/// - a local time that occurs once maps to that instant;
/// - a local time that occurs twice (clocks set back, e.g. 02:30 on the last Sunday of October
///   in Europe/Berlin) maps to its first occurrence only, so it runs once;
/// - a local time that does not exist (clocks set forward, e.g. 02:30 on the last Sunday of
///   March in Europe/Berlin) maps to the first valid instant after it — the moment of the
///   change (03:00 local) — so it runs once, as cronie and systemd do. Several skipped times
///   (02:00, 02:15, 02:30 …) and 03:00 itself all map to that one instant: one run.
/// The mapping never goes backwards, so the next firing is the first matching local time whose
/// instant lies after the given one.
extension CronExpression {
    /// The first firing strictly after `instant`, or nil when the expression never fires.
    public func nextFire(after instant: Date, in timeZone: TimeZone) -> Date? {
        guard firesOnSomeDay else { return nil }
        let after = Int64(instant.timeIntervalSince1970.rounded(.down))
        let startLocal = after + Int64(timeZone.secondsFromGMT(for: instant))
        // A day earlier than the local date of `instant`: a skipped time there may map later.
        var day = Int(floorDiv(startLocal, 86400)) - 1
        let times = hours.sorted().flatMap { hour in minutes.sorted().map { Int64(hour * 3600 + $0 * 60) } }
        // 28 years contain every pairing of a date and a weekday (e.g. Feb 29 on a Monday).
        let lastDay = day + 28 * 366 + 2
        while day <= lastDay {
            defer { day += 1 }
            guard matches(CivilDate(days: day)) else { continue }
            for time in times {
                let local = Int64(day) * 86400 + time
                let fire = Self.instant(forLocal: local, in: timeZone)
                if fire > after { return Date(timeIntervalSince1970: TimeInterval(fire)) }
            }
        }
        return nil
    }

    /// The instants of the firings in `(start, end]`, in order, at most `limit` of them.
    public func fires(after start: Date, through end: Date, in timeZone: TimeZone, limit: Int = 10_000) -> [Date] {
        var result: [Date] = []
        var cursor = start
        while result.count < limit, let next = nextFire(after: cursor, in: timeZone), next <= end {
            result.append(next)
            cursor = next
        }
        return result
    }

    /// The instant of a local wall-clock time (seconds since 1970-01-01T00:00 local): its first
    /// occurrence, or, when it does not exist, the first instant after it.
    static func instant(forLocal local: Int64, in timeZone: TimeZone) -> Int64 {
        let probes = [local - 86400, local, local + 86400].map {
            Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval($0))))
        }
        let offsets = Set(probes)
        let solutions = offsets.map { local - $0 }.filter { offset(at: $0, timeZone) == local - $0 }
        if let first = solutions.min() { return first }
        // A gap: the first instant whose local time is at or after `local`.
        var low = local - (offsets.max() ?? 0) - 1  // local time before `local`
        var high = local - (offsets.min() ?? 0)      // local time at or after `local`
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if middle + offset(at: middle, timeZone) >= local { high = middle } else { low = middle }
        }
        return high
    }

    private static func offset(at instant: Int64, _ timeZone: TimeZone) -> Int64 {
        Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(instant))))
    }

    private func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        a >= 0 ? a / b : -((-a + b - 1) / b)
    }
}

/// A policy's stable jitter: the same offset every time for the same policy name (FNV-1a of
/// the name, not Swift's per-process randomly seeded `Hasher`), in `[0, jitter)`, whole seconds.
public enum ScheduleJitter {
    public static func offset(policy: String, jitter: ConfigDuration?) -> Int64 {
        guard let jitter, jitter.seconds > 0 else { return 0 }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in policy.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return Int64(hash % UInt64(jitter.seconds))
    }
}

extension Schedule {
    /// The policy's time zone (UTC when the name is unknown; the parser refuses unknown names).
    public var timeZone: TimeZone { TimeZone(identifier: timezone) ?? TimeZone(secondsFromGMT: 0)! }

    /// The next run of `policy` strictly after `instant`: the next cron firing plus the policy's
    /// stable jitter.
    public func nextRun(after instant: Date, policy: String) -> Date? {
        let jitter = TimeInterval(ScheduleJitter.offset(policy: policy, jitter: self.jitter))
        return cron.nextFire(after: instant.addingTimeInterval(-jitter), in: timeZone).map { $0.addingTimeInterval(jitter) }
    }
}
