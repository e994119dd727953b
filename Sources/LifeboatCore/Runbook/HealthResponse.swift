import Foundation

/// Judges an HTTP health check's response (pure: the runner fetched it).
///
/// The platform's services answer `{"status": "healthy|degraded|unhealthy", "checks": {…}}`,
/// with 503 when degraded or unhealthy. A body of that form decides by its `status`: healthy
/// passes, degraded passes only with `accept_degraded` (and then its 503 too), anything else
/// fails, naming every entry of `checks` that is not ok. Any other body: the status code must
/// be one of `statuses`. Then every `json` expectation must hold.
public enum HealthResponse {
    /// - Parameter expectations: dotted path → expected text, already resolved.
    public static func evaluate(status: Int, body: [UInt8], statuses: [Int], acceptDegraded: Bool,
                                expectations: [(path: String, expected: String)]) -> CheckOutcome {
        let json = body.isEmpty ? nil : try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        let object = json as? [String: Any]
        var described = "HTTP \(status)"
        var failingText = ""
        if let health = object?["status"] as? String {
            described += ", status '\(health)'"
            let failing = notOK(object?["checks"])
            failingText = failing.isEmpty ? "" : "; not ok: " + failing.joined(separator: ", ")
            switch health {
            case "healthy", "ok", "pass":
                guard statuses.contains(status) else {
                    return .failed("\(described) (expected \(expected(statuses)))\(failingText)")
                }
            case "degraded" where acceptDegraded:
                guard statuses.contains(status) || status == 503 else {
                    return .failed("\(described) (expected \(expected(statuses)) or 503)\(failingText)")
                }
            default:
                return .failed("\(described)\(failingText.isEmpty ? " (no failing entry in 'checks')" : failingText)")
            }
        } else if !statuses.contains(status) {
            return .failed("\(described) (expected \(expected(statuses)))\(bodyExcerpt(body))")
        }
        for expectation in expectations {
            guard let json else {
                return .failed("\(described): the body is not JSON, so '\(expectation.path)' cannot be \(quoted(expectation.expected))\(bodyExcerpt(body))")
            }
            guard let value = value(at: expectation.path, in: json) else {
                return .failed("\(described): the body has no '\(expectation.path)' (expected \(quoted(expectation.expected)))")
            }
            guard value == expectation.expected else {
                return .failed("\(described): '\(expectation.path)' is \(quoted(value)), expected \(quoted(expectation.expected))\(failingText)")
            }
        }
        return .passed(described + failingText)
    }

    /// The entries of `checks` that are not ok, as `name (value)`. An entry is ok when it is
    /// the string `ok`/`healthy`/`pass`, `true`, or an object whose `status` is one of those.
    public static func notOK(_ checks: Any?) -> [String] {
        guard let checks = checks as? [String: Any] else { return [] }
        return checks.keys.sorted().compactMap { name in
            let entry = checks[name]!
            let state: String
            if let object = entry as? [String: Any] {
                state = (object["status"] as? String) ?? text(of: entry)
            } else {
                state = text(of: entry)
            }
            if ["ok", "healthy", "pass", "true", "up"].contains(state.lowercased()) { return nil }
            var shown = state
            if let object = entry as? [String: Any], let error = (object["error"] ?? object["message"]) as? String {
                shown += ": \(error)"
            }
            return "\(name) (\(shown))"
        }
    }

    /// The value at a dotted path (`checks.database`, `items.0.name`) as text: a string as
    /// itself, anything else as its JSON.
    public static func value(at path: String, in json: Any) -> String? {
        var current: Any = json
        for component in path.split(separator: ".", omittingEmptySubsequences: false).map(String.init) {
            if let object = current as? [String: Any], let next = object[component] {
                current = next
            } else if let array = current as? [Any], let index = Int(component), array.indices.contains(index) {
                current = array[index]
            } else {
                return nil
            }
        }
        return text(of: current)
    }

    static func text(of value: Any) -> String {
        if let string = value as? String { return string }
        if value is NSNull { return "null" }
        if let number = value as? NSNumber {
            // A JSON boolean is an NSNumber of type 'c' (char); 1 and 0 are integers.
            if String(cString: number.objCType) == "c" { return number.boolValue ? "true" : "false" }
            return number.stringValue
        }
        if let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]) {
            return String(decoding: data, as: UTF8.self)
        }
        return "\(value)"
    }

    static func expected(_ statuses: [Int]) -> String {
        statuses.map(String.init).joined(separator: " or ")
    }

    static func quoted(_ text: String) -> String { "'\(text)'" }

    static func bodyExcerpt(_ body: [UInt8]) -> String {
        guard !body.isEmpty else { return "" }
        let text = String(decoding: body.prefix(200), as: UTF8.self).replacingOccurrences(of: "\n", with: " ")
        return ": \(text)\(body.count > 200 ? "…" : "")"
    }
}
