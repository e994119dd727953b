import Foundation

/// Byte counts as people read them: `812 B`, `9.5 KiB`, `1.2 GiB`.
public func formatBytes(_ count: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(count)
    var unit = 0
    while value >= 1024, unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
}

/// A byte count as configuration writes it: a whole number and an optional unit, `B`, binary
/// `KiB`/`MiB`/`GiB`/`TiB` (also written `K`, `M`, `G`, `T`, as rclone and restic do), or decimal
/// `KB`/`MB`/`GB`/`TB`; a space between them is allowed. Nil when the text is not one, or the
/// count does not fit in 63 bits.
public func parseByteCount(_ text: String) -> Int64? {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
    guard !digits.isEmpty, let number = Int64(digits) else { return nil }
    let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
    let multipliers: [String: Int64] = [
        "": 1, "B": 1,
        "K": 1 << 10, "KiB": 1 << 10, "M": 1 << 20, "MiB": 1 << 20, "G": 1 << 30, "GiB": 1 << 30, "T": 1 << 40, "TiB": 1 << 40,
        "KB": 1_000, "MB": 1_000_000, "GB": 1_000_000_000, "TB": 1_000_000_000_000,
    ]
    guard let multiplier = multipliers[unit] else { return nil }
    let (product, overflow) = number.multipliedReportingOverflow(by: multiplier)
    return overflow ? nil : product
}
