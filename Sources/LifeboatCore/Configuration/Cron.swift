import Foundation

/// A five-field cron expression (`minute hour day-of-month month day-of-week`), with lists,
/// ranges, steps, month and weekday names, and the `@hourly`/`@daily`/`@weekly`/`@monthly`/
/// `@yearly` shorthands. Parsing only; when it fires is the scheduler's concern.
public struct CronExpression: Hashable, Sendable, CustomStringConvertible {
    public let minutes: Set<Int>
    public let hours: Set<Int>
    public let daysOfMonth: Set<Int>
    public let months: Set<Int>
    /// 0 = Sunday … 6 = Saturday (7 is accepted for Sunday).
    public let daysOfWeek: Set<Int>
    /// Whether day-of-month / day-of-week were `*` (cron's rule: when both are restricted, a
    /// day matches if either matches).
    public let dayOfMonthRestricted: Bool
    public let dayOfWeekRestricted: Bool
    public let description: String

    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public let description: String
    }

    static let shorthands: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
    static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    public init(parsing text: String) throws(ParseError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let expanded = Self.shorthands[trimmed.lowercased()] ?? trimmed
        let fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw ParseError(description: "a cron expression has 5 fields (minute hour day-of-month month day-of-week), '\(text)' has \(fields.count)")
        }
        minutes = try Self.field(fields[0], name: "minute", range: 0...59, names: [])
        hours = try Self.field(fields[1], name: "hour", range: 0...23, names: [])
        daysOfMonth = try Self.field(fields[2], name: "day-of-month", range: 1...31, names: [])
        months = try Self.field(fields[3], name: "month", range: 1...12, names: Self.monthNames, nameBase: 1)
        let dow = try Self.field(fields[4], name: "day-of-week", range: 0...7, names: Self.dayNames)
        daysOfWeek = Set(dow.map { $0 == 7 ? 0 : $0 })
        dayOfMonthRestricted = fields[2] != "*"
        dayOfWeekRestricted = fields[4] != "*"
        description = trimmed
    }

    static func field(_ text: String, name: String, range: ClosedRange<Int>, names: [String], nameBase: Int = 0) throws(ParseError) -> Set<Int> {
        var values: Set<Int> = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            var rangePart = Substring(part)
            var step = 1
            if let slash = part.firstIndex(of: "/") {
                rangePart = part[part.startIndex..<slash]
                guard let s = Int(part[part.index(after: slash)...]), s > 0 else {
                    throw ParseError(description: "invalid step in \(name) field '\(text)'")
                }
                step = s
            }
            var low: Int, high: Int
            if rangePart == "*" {
                low = range.lowerBound
                high = range.upperBound
            } else if let dash = rangePart.firstIndex(of: "-") {
                low = try value(rangePart[rangePart.startIndex..<dash], name: name, field: text, range: range, names: names, nameBase: nameBase)
                high = try value(rangePart[rangePart.index(after: dash)...], name: name, field: text, range: range, names: names, nameBase: nameBase)
                guard low <= high else { throw ParseError(description: "range \(rangePart) in \(name) field runs backwards") }
            } else {
                low = try value(rangePart, name: name, field: text, range: range, names: names, nameBase: nameBase)
                high = part.contains("/") ? range.upperBound : low
            }
            values.formUnion(stride(from: low, through: high, by: step))
        }
        return values
    }

    static func value(_ text: Substring, name: String, field: String, range: ClosedRange<Int>, names: [String], nameBase: Int) throws(ParseError) -> Int {
        if let n = Int(text) {
            guard range.contains(n) else {
                throw ParseError(description: "\(n) is out of range for the \(name) field (\(range.lowerBound)-\(range.upperBound))")
            }
            return n
        }
        if let index = names.firstIndex(of: text.lowercased()) { return index + nameBase }
        throw ParseError(description: "'\(text)' is not a valid \(name) in '\(field)'")
    }
}

extension CronExpression {
    /// Whether the expression fires at all. `0 2 31 2 *` never does: no February has a 31st.
    /// (When the day of the week is also restricted, cron fires on either, so it always fires.)
    public var firesOnSomeDay: Bool {
        if !dayOfMonthRestricted || dayOfWeekRestricted { return true }
        return months.contains { month in daysOfMonth.contains { $0 <= CivilDate.maximumDays(inMonth: month) } }
    }

    /// The shortest time between two consecutive firings, in seconds, ignoring daylight-saving
    /// changes; nil when the expression never fires. Computed over 28 years of the calendar,
    /// in which every pairing of a date with a weekday occurs (outside century years).
    public var shortestInterval: Int64? {
        guard firesOnSomeDay else { return nil }
        let times = hours.sorted().flatMap { hour in minutes.sorted().map { hour * 60 + $0 } }
        guard let first = times.first, let last = times.last else { return nil }
        var shortest = Int64.max
        for (a, b) in zip(times, times.dropFirst()) { shortest = min(shortest, Int64(b - a) * 60) }
        // Between the last firing of one matching day and the first of the next matching day.
        let start = CivilDate.days(year: 2001, month: 1, day: 1)
        var previous: Int?
        var shortestDayGap = Int.max
        for day in start..<(start + 28 * 366) {
            let date = CivilDate(days: day)
            guard matches(date) else { continue }
            if let previous { shortestDayGap = min(shortestDayGap, day - previous) }
            previous = day
            if shortestDayGap == 1 { break }
        }
        if shortestDayGap != Int.max {
            shortest = min(shortest, Int64(shortestDayGap * 1440 - (last - first)) * 60)
        }
        return shortest == Int64.max ? nil : shortest
    }

    /// Whether the expression fires on a date (cron's rule: with both day fields restricted,
    /// either one matching is enough).
    func matches(_ date: CivilDate) -> Bool {
        guard months.contains(date.month) else { return false }
        let dom = daysOfMonth.contains(date.day)
        let dow = daysOfWeek.contains(date.weekday)
        switch (dayOfMonthRestricted, dayOfWeekRestricted) {
        case (true, true): return dom || dow
        case (true, false): return dom
        case (false, true): return dow
        case (false, false): return true
        }
    }
}

/// A date of the proleptic Gregorian calendar, from a count of days since 1970-01-01
/// (Howard Hinnant's civil-from-days), without Foundation's calendar.
struct CivilDate: Equatable {
    var year: Int
    var month: Int
    var day: Int
    /// 0 = Sunday … 6 = Saturday.
    var weekday: Int

    init(days: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        day = doy - (153 * mp + 2) / 5 + 1
        month = mp < 10 ? mp + 3 : mp - 9
        year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        weekday = ((days % 7) + 11) % 7  // 1970-01-01 was a Thursday (4)
    }

    static func days(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func maximumDays(inMonth month: Int) -> Int {
        switch month {
        case 2: return 29
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}
