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
