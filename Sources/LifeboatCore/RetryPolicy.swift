import Foundation

/// Capped exponential backoff with full jitter, as AWS recommends: the delay before retry n
/// is a random value in `0 ... min(maxDelay, baseDelay × 2^(n-1))`.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included.
    public var maxAttempts: Int
    public var baseDelay: Double
    public var maxDelay: Double

    public init(maxAttempts: Int = 5, baseDelay: Double = 0.25, maxDelay: Double = 20) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// The upper bound of the delay after `attempt` (1-based) failed.
    public func delayCeiling(afterAttempt attempt: Int) -> Double {
        let exponent = Double(min(max(attempt - 1, 0), 30))
        return min(maxDelay, baseDelay * pow2(exponent))
    }

    /// The delay after `attempt` failed, drawing from `random` (given the range to draw from).
    public func delay(afterAttempt attempt: Int, random: (ClosedRange<Double>) -> Double) -> Double {
        random(0...delayCeiling(afterAttempt: attempt))
    }

    private func pow2(_ e: Double) -> Double {
        var result = 1.0
        for _ in 0..<Int(e) { result *= 2 }
        return result
    }
}

/// `~/.aws/credentials` (and `~/.aws/config`) files: INI sections of `key = value` pairs.
public enum AWSSharedConfigFile {
    /// Profiles by name. In `config` files sections are written `[profile NAME]` (except
    /// `[default]`); both spellings map to NAME. Comments start with `#` or `;`.
    public static func parse(_ text: String) -> [String: [String: String]] {
        var profiles: [String: [String: String]] = [:]
        var current: String?
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                var name = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                if name.hasPrefix("profile ") { name = String(name.dropFirst("profile ".count)).trimmingCharacters(in: .whitespaces) }
                current = name
                if profiles[name] == nil { profiles[name] = [:] }
                continue
            }
            guard let current, let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            profiles[current, default: [:]][key] = value
        }
        return profiles
    }
}
