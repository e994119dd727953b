import Foundation

/// A span of time written in configuration as `30d`, `10m`, `1h30m`, `90s`, `2w`.
public struct ConfigDuration: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var seconds: Int64

    public init(seconds: Int64) { self.seconds = seconds }

    static let units: [(suffix: Character, seconds: Int64)] = [
        ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1),
    ]

    /// Parses `<number><unit>` groups, units in decreasing order (`1d12h`, `90m`).
    /// Returns nil for anything else, including a bare number (the unit is never implied).
    public init?(parsing text: String) {
        var total: Int64 = 0
        var number: Int64? = nil
        var lastUnitIndex = -1
        for ch in text {
            if let digit = ch.wholeNumberValue, ch.isASCII {
                let (m, o1) = (number ?? 0).multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(Int64(digit))
                if o1 || o2 { return nil }
                number = s
            } else if let index = Self.units.firstIndex(where: { $0.suffix == ch }) {
                guard let n = number, index > lastUnitIndex else { return nil }
                let (p, o1) = n.multipliedReportingOverflow(by: Self.units[index].seconds)
                let (s, o2) = total.addingReportingOverflow(p)
                if o1 || o2 { return nil }
                total = s
                number = nil
                lastUnitIndex = index
            } else {
                return nil
            }
        }
        guard number == nil, lastUnitIndex >= 0 else { return nil }
        seconds = total
    }

    /// The shortest form that parses back to the same value: `30d`, `1h30m`, `0s`.
    public var description: String {
        if seconds == 0 { return "0s" }
        var rest = seconds
        var text = ""
        for unit in Self.units where unit.suffix != "w" {
            let n = rest / unit.seconds
            if n > 0 {
                text += "\(n)\(unit.suffix)"
                rest -= n * unit.seconds
            }
        }
        return text
    }

    public static func < (lhs: ConfigDuration, rhs: ConfigDuration) -> Bool { lhs.seconds < rhs.seconds }
}
