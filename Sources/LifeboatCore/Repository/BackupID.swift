import Foundation

/// Backup identifiers: the UTC start time and a suffix, `20261121T020000Z-1k3f9q`.
///
/// They sort by start time to the millisecond, and two runs can never pick the same one: not
/// two processes started in the same second, not two machines. The suffix is 30 bits written
/// in base32hex (`0-9a-v`, whose letters sort as their values): the millisecond (10 bits),
/// then 20 random bits. A collision would still be caught, because a run creates its backup's
/// reservation with a conditional write before writing anything else, and picks another id
/// when it exists. Identifiers written by earlier versions (`20261121T020000Z`, `…Z-2`) stay
/// valid.
public enum BackupID {
    /// base32hex, lowercase: sorts as the values it encodes.
    static let alphabet = Array("0123456789abcdefghijklmnopqrstuv")
    public static let suffixLength = 6

    /// A new identifier for a backup started at `date`; `random` draws the random bits.
    public static func make(startedAt date: Date, random: () -> UInt64) -> String {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        let millisecond = UInt64(min(999, max(0, ((date.timeIntervalSince1970 - seconds) * 1000).rounded(.down))))
        let bits = millisecond << 20 | (random() & 0xF_FFFF)
        var suffix = ""
        for index in (0..<suffixLength).reversed() {
            suffix.append(alphabet[Int((bits >> (5 * UInt64(index))) & 31)])
        }
        return "\(format(date))-\(suffix)"
    }

    public static func format(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .gmt
        let v = [Calendar.Component.year, .month, .day, .hour, .minute, .second].map { calendar.component($0, from: date) }
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", v[0], v[1], v[2], v[3], v[4], v[5])
    }

    /// Whether a string has the shape of a backup identifier (guards repository paths).
    public static func isValid(_ text: String) -> Bool {
        text.wholeMatch(of: #/^\d{8}T\d{6}Z(-[0-9a-z]{1,16})?$/#) != nil
    }
}

/// Lifeboat's own version, recorded in manifests.
public enum LifeboatVersion {
    public static let current = "0.2.0"
}
