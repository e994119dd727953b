import Foundation

/// Backup identifiers: the UTC start time, `20261121T020000Z`, which sorts in time order.
/// Two backups of one policy started in the same second get `-2`, `-3`, … appended.
public enum BackupID {
    public static func make(startedAt date: Date, existing: Set<String>) -> String {
        let base = format(date)
        if !existing.contains(base) { return base }
        var n = 2
        while existing.contains("\(base)-\(n)") { n += 1 }
        return "\(base)-\(n)"
    }

    public static func format(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .gmt
        let v = [Calendar.Component.year, .month, .day, .hour, .minute, .second].map { calendar.component($0, from: date) }
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", v[0], v[1], v[2], v[3], v[4], v[5])
    }

    /// Whether a string has the shape of a backup identifier (guards repository paths).
    public static func isValid(_ text: String) -> Bool {
        let pattern = #/^\d{8}T\d{6}Z(-\d+)?$/#
        return text.wholeMatch(of: pattern) != nil
    }
}

/// Lifeboat's own version, recorded in manifests.
public enum LifeboatVersion {
    public static let current = "0.1.0"
}
