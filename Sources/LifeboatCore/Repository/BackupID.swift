import Foundation

/// Backup identifiers: the UTC start time and a random suffix, `20261121T020000Z-k3f9q2`.
///
/// They sort by start time (to the second), and two runs can never pick the same one: not two
/// processes started in the same second, not two machines. The suffix is 30 random bits; a
/// collision would still be caught, because a run creates its backup's reservation with a
/// conditional write before writing anything else, and picks another id when it exists.
/// Identifiers written by earlier versions (`20261121T020000Z`, `…Z-2`) stay valid.
public enum BackupID {
    /// Letters of the random suffix: lowercase base32 (no 0, 1, 8, 9: never read as o, l, b, g).
    static let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567")
    public static let suffixLength = 6

    /// A new identifier for a backup started at `date`; `random` draws the suffix.
    public static func make(startedAt date: Date, random: () -> UInt64) -> String {
        var bits = random()
        var suffix = ""
        for _ in 0..<suffixLength {
            suffix.append(alphabet[Int(bits & 31)])
            bits >>= 5
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
