import Foundation

/// Where point-in-time recovery stops (`recovery_target_*`).
public enum RecoveryTarget: Sendable, Equatable, CustomStringConvertible {
    /// Replay all the WAL there is (no recovery target).
    case latest
    /// Stop as soon as the base backup is consistent.
    case immediate
    case time(Date)
    case lsn(LSN)
    case xid(UInt64)
    /// A restore point made with `pg_create_restore_point`.
    case name(String)

    public var description: String {
        switch self {
        case .latest: return "the end of the archived WAL"
        case .immediate: return "the end of the base backup"
        case .time(let date): return "time \(RecoveryTarget.format(date))"
        case .lsn(let lsn): return "LSN \(lsn)"
        case .xid(let xid): return "transaction \(xid)"
        case .name(let name): return "restore point '\(name)'"
        }
    }

    /// A time as PostgreSQL reads it, in UTC with microseconds: `2026-11-29 17:30:00.123456+00`.
    public static func format(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        let micros = Int(((date.timeIntervalSince1970 - seconds) * 1_000_000).rounded())
        let components = Calendar.utc.dateComponents([.year, .month, .day, .hour, .minute, .second], from: Date(timeIntervalSince1970: seconds))
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d.%06d+00", components.year!, components.month!, components.day!,
                      components.hour!, components.minute!, components.second!, min(micros, 999_999))
    }

    /// Parses a time as an operator writes it: `2026-11-29 17:30:00`, `2026-11-29T17:30:00.25Z`,
    /// `2026-11-29 18:30:00+01:00`, `…+01`, or as PostgreSQL prints one (`… 17:30:00.123456+00`).
    /// A time without a zone is in `timeZone` (the machine's).
    public static func parseTime(_ text: String, timeZone: TimeZone = .current) -> Date? {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        func number(_ digits: Int) -> Int? {
            let part = rest.prefix(digits)
            guard part.count == digits, part.allSatisfy(\.isASCII), part.allSatisfy(\.isNumber) else { return nil }
            rest = rest.dropFirst(digits)
            return Int(part)
        }
        func literal(_ characters: String) -> Bool {
            guard let first = rest.first, characters.contains(first) else { return false }
            rest = rest.dropFirst()
            return true
        }
        guard let year = number(4), literal("-"), let month = number(2), literal("-"), let day = number(2),
              literal("T "), let hour = number(2), literal(":"), let minute = number(2), literal(":"), let second = number(2)
        else { return nil }
        var fraction = 0.0
        if literal(".") {
            let digits = rest.prefix(while: { $0.isASCII && $0.isNumber })
            guard !digits.isEmpty, digits.count <= 9 else { return nil }
            fraction = Double("0." + digits) ?? 0
            rest = rest.dropFirst(digits.count)
        }
        var zone = timeZone
        if literal("Z") {
            zone = TimeZone(identifier: "UTC")!
        } else if let sign = rest.first, sign == "+" || sign == "-" {
            rest = rest.dropFirst()
            guard let hours = number(2) else { return nil }
            var minutes = 0
            if !rest.isEmpty {
                _ = literal(":")
                guard let m = number(2) else { return nil }
                minutes = m
            }
            guard hours <= 15, minutes < 60 else { return nil }
            zone = TimeZone(secondsFromGMT: (sign == "+" ? 1 : -1) * (hours * 3600 + minutes * 60))!
        }
        guard rest.isEmpty, (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let components = DateComponents(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
        guard let date = calendar.date(from: components),
              calendar.dateComponents([.year, .month, .day], from: date) == DateComponents(year: year, month: month, day: day)
        else { return nil }
        return date.addingTimeInterval(fraction)
    }
}

/// What recovery does once it reaches the target (`recovery_target_action`).
public enum RecoveryTargetAction: String, Sendable, CaseIterable {
    case promote, pause, shutdown
}

/// Which timeline recovery follows (`recovery_target_timeline`).
public enum RecoveryTimeline: Sendable, Equatable, CustomStringConvertible {
    case latest
    case current
    case number(UInt32)

    public init?(_ text: String) {
        switch text {
        case "latest": self = .latest
        case "current": self = .current
        default:
            guard let n = UInt32(text), n > 0 else { return nil }
            self = .number(n)
        }
    }

    public var description: String {
        switch self {
        case .latest: return "latest"
        case .current: return "current"
        case .number(let n): return String(n)
        }
    }
}

/// Everything a physical PostgreSQL restore is asked for besides the backup and the data directory.
public struct RecoveryOptions: Sendable, Equatable {
    public var target: RecoveryTarget
    public var action: RecoveryTargetAction
    public var timeline: RecoveryTimeline
    /// Tablespace locations to restore elsewhere: old location → new location.
    public var tablespaceMap: [String: String]
    /// The shell command PostgreSQL runs to fetch archived WAL (`%f`, `%p` in it): this
    /// Lifeboat's `wal-fetch` with the configuration or repository the restore used.
    public var restoreCommand: String?
    /// Restore into a non-empty data directory, writing only files that differ and removing
    /// those the backup does not have.
    public var delta: Bool

    public init(target: RecoveryTarget = .latest, action: RecoveryTargetAction = .promote, timeline: RecoveryTimeline = .latest,
                tablespaceMap: [String: String] = [:], delta: Bool = false, restoreCommand: String? = nil) {
        self.restoreCommand = restoreCommand
        self.target = target
        self.action = action
        self.timeline = timeline
        self.tablespaceMap = tablespaceMap
        self.delta = delta
    }

    /// Whether nothing was asked for beyond the defaults (any backup kind accepts that).
    public var isDefault: Bool {
        target == .latest && action == .promote && timeline == .latest && tablespaceMap.isEmpty && !delta
    }

    /// Quotes a word for `/bin/sh` (which PostgreSQL runs `restore_command` with).
    public static func shellQuoted(_ word: String) -> String {
        if !word.isEmpty, word.utf8.allSatisfy({ c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || "/._-=:+,@".utf8.contains(c)
        }) {
            return word
        }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The settings recovery needs, as `postgresql.auto.conf` lines (each value quoted as
    /// PostgreSQL's configuration files quote strings). `restoreCommand` is the shell command
    /// with `%f` and `%p` in it.
    public func settings(restoreCommand: String) -> [(key: String, value: String)] {
        var result: [(String, String)] = [("restore_command", restoreCommand)]
        switch target {
        case .latest: break
        case .immediate: result.append(("recovery_target", "immediate"))
        case .time(let date): result.append(("recovery_target_time", RecoveryTarget.format(date)))
        case .lsn(let lsn): result.append(("recovery_target_lsn", lsn.description))
        case .xid(let xid): result.append(("recovery_target_xid", String(xid)))
        case .name(let name): result.append(("recovery_target_name", name))
        }
        if target != .latest { result.append(("recovery_target_action", action.rawValue)) }
        result.append(("recovery_target_timeline", timeline.description))
        return result.map { (key: $0.0, value: Self.quoted($0.1)) }
    }

    /// A string value in PostgreSQL's configuration-file syntax: single quotes, doubled inside.
    public static func quoted(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "'", with: "''") + "'"
    }
}

extension Calendar {
    static let utc: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()
}
