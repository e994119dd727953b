import Foundation
import Synchronization

/// The values of Lifeboat's metrics, and their Prometheus text exposition (format 0.0.4).
///
/// Thread-safe: the daemon's threads set values, a scrape renders them; one lock, held only to
/// copy or change a value. Only the catalogue's metrics are accepted (`MetricCatalogue`), each
/// with exactly its labels, so that no name reaches a dashboard that the catalogue does not
/// list. A series exists from its first value on; a metric without any is still rendered with
/// its `# HELP` and `# TYPE` lines.
public final class MetricRegistry: Sendable {
    /// A use the catalogue does not allow: a programming error, reported instead of exported.
    public struct Misuse: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    struct Histogram: Sendable {
        /// Observations per bucket (not cumulative), one more than `durationBuckets` (+Inf).
        var counts: [UInt64]
        var sum: Double = 0
        var count: UInt64 = 0
    }

    enum Value: Sendable {
        case number(Double)
        case histogram(Histogram)
    }

    private let descriptors: [MetricDescriptor]
    private let buckets: [Double]
    private let series = Mutex<[String: [[String]: Value]]>([:])

    public init(catalogue: [MetricDescriptor] = MetricCatalogue.all, buckets: [Double] = MetricCatalogue.durationBuckets) {
        self.descriptors = catalogue
        self.buckets = buckets
    }

    private func check(_ metric: MetricDescriptor, _ labels: [String], _ kinds: Set<MetricDescriptor.Kind>) throws(Misuse) {
        guard descriptors.contains(metric) else { throw Misuse(description: "metric \(metric.name) is not in the catalogue") }
        guard kinds.contains(metric.kind) else { throw Misuse(description: "metric \(metric.name) is a \(metric.kind.rawValue)") }
        guard labels.count == metric.labels.count else {
            throw Misuse(description: "metric \(metric.name) takes \(metric.labels.count) label values (\(metric.labels.joined(separator: ", "))), not \(labels.count)")
        }
    }

    /// Adds `amount` (at least 0) to a counter.
    public func increment(_ metric: MetricDescriptor, _ labels: [String] = [], by amount: Double = 1) throws(Misuse) {
        try check(metric, labels, [.counter])
        guard amount >= 0 else { throw Misuse(description: "counter \(metric.name) cannot go down (\(amount))") }
        series.withLock { series in
            guard case .number(let old)? = series[metric.name]?[labels] else {
                series[metric.name, default: [:]][labels] = .number(amount)
                return
            }
            series[metric.name]![labels] = .number(old + amount)
        }
    }

    /// Sets a gauge; or a counter to a total counted elsewhere (lines of a file), which must not
    /// go down.
    public func set(_ metric: MetricDescriptor, _ labels: [String] = [], _ value: Double) throws(Misuse) {
        try check(metric, labels, [.gauge, .counter])
        try series.withLock { series throws(Misuse) in
            if metric.kind == .counter, case .number(let old)? = series[metric.name]?[labels], value < old {
                throw Misuse(description: "counter \(metric.name) cannot go down (\(old) to \(value))")
            }
            series[metric.name, default: [:]][labels] = .number(value)
        }
    }

    /// Removes a series (a gauge whose value is no longer known).
    public func remove(_ metric: MetricDescriptor, _ labels: [String] = []) throws(Misuse) {
        try check(metric, labels, [.gauge, .counter, .histogram])
        series.withLock { _ = $0[metric.name]?.removeValue(forKey: labels) }
    }

    /// Records one observation of a histogram.
    public func observe(_ metric: MetricDescriptor, _ labels: [String] = [], _ value: Double) throws(Misuse) {
        try check(metric, labels, [.histogram])
        let bucket = buckets.firstIndex { value <= $0 } ?? buckets.count
        series.withLock { series in
            var histogram = Histogram(counts: Array(repeating: 0, count: buckets.count + 1))
            if case .histogram(let old)? = series[metric.name]?[labels] { histogram = old }
            histogram.counts[bucket] += 1
            histogram.sum += value
            histogram.count += 1
            series[metric.name, default: [:]][labels] = .histogram(histogram)
        }
    }

    /// A counter's or gauge's value, nil when the series does not exist.
    public func value(_ metric: MetricDescriptor, _ labels: [String] = []) -> Double? {
        series.withLock { series in
            if case .number(let value)? = series[metric.name]?[labels] { return value }
            return nil
        }
    }

    /// The text exposition format 0.0.4: each metric's `# HELP` and `# TYPE` once, then its
    /// series ordered by label values; a histogram's buckets cumulative, `+Inf` last, then
    /// `_sum` and `_count`.
    public func render() -> String {
        let snapshot = series.withLock { $0 }
        var text = ""
        for metric in descriptors {
            text += "# HELP \(metric.name) \(Self.escapeHelp(metric.help))\n"
            text += "# TYPE \(metric.name) \(metric.kind.rawValue)\n"
            let entries = (snapshot[metric.name] ?? [:]).sorted { $0.key.lexicographicallyPrecedes($1.key) }
            for (labels, value) in entries {
                let pairs = Array(zip(metric.labels, labels))
                switch value {
                case .number(let number):
                    text += "\(metric.name)\(Self.labelSet(pairs)) \(Self.format(number))\n"
                case .histogram(let histogram):
                    var cumulative: UInt64 = 0
                    for (index, bound) in (buckets + [.infinity]).enumerated() {
                        cumulative += histogram.counts[index]
                        text += "\(metric.name)_bucket\(Self.labelSet(pairs + [("le", Self.format(bound))])) \(cumulative)\n"
                    }
                    text += "\(metric.name)_sum\(Self.labelSet(pairs)) \(Self.format(histogram.sum))\n"
                    text += "\(metric.name)_count\(Self.labelSet(pairs)) \(histogram.count)\n"
                }
            }
        }
        return text
    }

    static func labelSet(_ pairs: [(String, String)]) -> String {
        pairs.isEmpty ? "" : "{" + pairs.map { "\($0.0)=\"\(escapeLabelValue($0.1))\"" }.joined(separator: ",") + "}"
    }

    /// A label value: `\`, `"` and line feeds escaped.
    public static func escapeLabelValue(_ value: String) -> String {
        var out = ""
        for character in value.unicodeScalars {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    /// Help text: `\` and line feeds escaped (quotes stay).
    static func escapeHelp(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// A sample value as Prometheus (Go's `ParseFloat`) reads it: whole numbers without a
    /// fraction, `+Inf`, `-Inf`, `NaN`, otherwise the shortest representation that reads back.
    public static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}
