import Yams

/// A YAML node with the file it came from and where it sits in the document, read into
/// typed values. Every accessor records an error and returns nil on a mismatch, so a single
/// pass reports all the problems of a file instead of stopping at the first.
public struct ConfigNode {
    let node: Node
    /// The file it came from, relative to the configuration directory.
    public let file: String
    /// Dotted key path for messages: `source.postgres.conninfo`.
    public let path: String
    let diagnostics: ConfigDiagnostics
    let environment: [String: String]
    /// The configuration directory, against which relative paths resolve.
    public let directory: String

    var mark: Mark? { node.mark }

    /// Records an error at this node's position: `file:line:column: message`.
    public func error(_ message: String, hint: String? = nil) {
        diagnostics.error(file, mark, message, hint: hint)
    }

    /// Whether the node is a scalar (for values that may be written short or as a mapping).
    public var isScalar: Bool {
        if case .scalar = node { return true }
        return false
    }

    private var what: String { path.isEmpty ? "the document" : "'\(path)'" }

    private var kindName: String {
        switch node {
        case .scalar: return "a scalar"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    func child(_ node: Node, key: String) -> ConfigNode {
        ConfigNode(node: node, file: file, path: path.isEmpty ? key : "\(path).\(key)",
                   diagnostics: diagnostics, environment: environment, directory: directory)
    }

    /// A mapping whose keys must all be among `allowed`. Unknown keys are reported with a
    /// suggestion when one is close.
    public func mapping(allowed: [String]) -> ConfigMapping? {
        guard case .mapping(let mapping) = node else {
            error("\(what) must be a mapping (key: value), not \(kindName)")
            return nil
        }
        var entries: [(key: String, keyMark: Mark?, value: ConfigNode)] = []
        var seen: Set<String> = []
        for (keyNode, valueNode) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                diagnostics.error(file, keyNode.mark, "keys of \(what) must be plain strings")
                continue
            }
            let key = scalar.string
            if !allowed.contains(key) {
                let prefix = path.isEmpty ? "" : " in '\(path)'"
                var message = "unknown key '\(key)'\(prefix)"
                if let suggestion = closestMatch(to: key, among: allowed) {
                    message += " (did you mean '\(suggestion)'?)"
                } else {
                    message += " (expected one of: \(allowed.joined(separator: ", ")))"
                }
                diagnostics.error(file, keyNode.mark, message)
                continue
            }
            if !seen.insert(key).inserted {
                diagnostics.error(file, keyNode.mark, "duplicate key '\(key)'")
                continue
            }
            entries.append((key, keyNode.mark, child(valueNode, key: key)))
        }
        return ConfigMapping(owner: self, entries: entries)
    }

    /// A scalar string with `${VAR}` interpolated.
    public func string() -> String? {
        guard case .scalar(let scalar) = node else {
            error("\(what) must be a string, not \(kindName)")
            return nil
        }
        if scalar.style == .plain, ["", "~", "null", "Null", "NULL"].contains(scalar.string) {
            error("\(what) must be a string, but it is empty")
            return nil
        }
        do {
            return try Interpolation.expand(scalar.string, environment: environment)
        } catch {
            switch error {
            case .undefined(let name):
                self.error("environment variable '\(name)' used in \(what) is not set",
                           hint: "Set \(name), or write ${\(name):-default} to give a default.")
            case .unterminated:
                self.error("unterminated '${' in \(what)", hint: "Close it with '}', or write '$$' for a literal '$'.")
            case .invalidName(let name):
                self.error("'\(name)' in \(what) is not a valid environment variable name")
            }
            return nil
        }
    }

    /// A non-empty string that is a valid name (policy, repository, runbook): letters, digits,
    /// `.`, `_` and `-`, starting with a letter or digit. Names become repository paths.
    public func name() -> String? {
        guard let text = string() else { return nil }
        guard isValidName(text) else {
            error("'\(text)' is not a valid name for \(what)",
                  hint: "Use letters, digits, '.', '_' and '-', starting with a letter or digit.")
            return nil
        }
        return text
    }

    public func int(in range: ClosedRange<Int>? = nil) -> Int? {
        guard let text = string() else { return nil }
        guard let value = Int(text) else {
            error("\(what) must be an integer, not '\(text)'")
            return nil
        }
        if let range, !range.contains(value) {
            error("\(what) must be between \(range.lowerBound) and \(range.upperBound), not \(value)")
            return nil
        }
        return value
    }

    /// A byte count (`128MiB`, `1G`, `500MB`; see `parseByteCount`) within `range`.
    public func byteCount(in range: ClosedRange<Int64>) -> Int64? {
        guard let text = string() else { return nil }
        guard let value = parseByteCount(text) else {
            error("'\(text)' is not a size for \(what)", hint: "Write a number and a unit: 64MiB, 1GiB, 500MB (K, M, G are KiB, MiB, GiB).")
            return nil
        }
        guard range.contains(value) else {
            error("\(what) must be between \(formatBytes(range.lowerBound)) and \(formatBytes(range.upperBound)), not \(text)")
            return nil
        }
        return value
    }

    public func bool() -> Bool? {
        guard let text = string() else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            error("\(what) must be true or false, not '\(text)'")
            return nil
        }
    }

    public func duration() -> ConfigDuration? {
        guard let text = string() else { return nil }
        guard let duration = ConfigDuration(parsing: text) else {
            error("'\(text)' is not a valid duration for \(what)",
                  hint: "Write a number and a unit, largest unit first: 90s, 10m, 1h30m, 30d, 2w.")
            return nil
        }
        return duration
    }

    /// A duration longer than zero (a retention of `0s` keeps nothing, a timeout of `0s` never
    /// lets anything run).
    public func positiveDuration() -> ConfigDuration? {
        guard let duration = duration() else { return nil }
        guard duration.seconds > 0 else {
            error("\(what) must be longer than 0s")
            return nil
        }
        return duration
    }

    /// A path; a relative one is taken relative to the configuration directory, `~/` to the
    /// home directory.
    public func absolutePath() -> String? {
        string().map { resolvePath($0, in: directory) }
    }

    /// One of a fixed set of words.
    public func oneOf(_ choices: [String]) -> String? {
        guard let text = string() else { return nil }
        guard choices.contains(text) else {
            var message = "'\(text)' is not a valid value for \(what) (expected \(choices.map { "'\($0)'" }.joined(separator: " or ")))"
            if let suggestion = closestMatch(to: text, among: choices) {
                message = "'\(text)' is not a valid value for \(what) (did you mean '\(suggestion)'?)"
            }
            error(message)
            return nil
        }
        return text
    }

    public func list() -> [ConfigNode]? {
        guard case .sequence(let sequence) = node else {
            error("\(what) must be a list, not \(kindName)")
            return nil
        }
        return sequence.enumerated().map { child($0.element, key: "\($0.offset)") }
    }

    public func stringList() -> [String]? {
        guard let items = list() else { return nil }
        let strings = items.compactMap { $0.string() }
        return strings.count == items.count ? strings : nil
    }
}

/// The entries of a mapping, with the keys a reader takes.
public struct ConfigMapping {
    public let owner: ConfigNode
    public let entries: [(key: String, keyMark: Mark?, value: ConfigNode)]

    public subscript(key: String) -> ConfigNode? {
        entries.first { $0.key == key }?.value
    }

    public func required(_ key: String) -> ConfigNode? {
        if let value = self[key] { return value }
        let within = owner.path.isEmpty ? "" : " in '\(owner.path)'"
        owner.error("missing required key '\(key)'\(within)")
        return nil
    }

    /// Exactly one of `keys` must be present (a tagged union such as `source: { postgres: … }`).
    public func exactlyOne(of choices: [String], what: String) -> (String, ConfigNode)? {
        let present = entries.filter { choices.contains($0.key) }
        if present.count == 1 { return (present[0].key, present[0].value) }
        if present.isEmpty {
            owner.error("\(what) must have one of: \(choices.joined(separator: ", "))")
        } else {
            owner.error("\(what) must have only one of: \(present.map(\.key).joined(separator: ", "))")
        }
        return nil
    }
}

/// Whether `text` may name a policy, repository or runbook: letters, digits, `.`, `_` and `-`,
/// starting with a letter or digit, at most 100 characters (so it is safe in a path or a key).
public func isValidName(_ text: String) -> Bool {
    func isAlphanumeric(_ c: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c)
    }
    guard let first = text.unicodeScalars.first, isAlphanumeric(first), text.count <= 100 else { return false }
    return text.unicodeScalars.allSatisfy { isAlphanumeric($0) || $0 == "." || $0 == "_" || $0 == "-" }
}

/// The candidate closest to `word` by edit distance, when it is close enough to be a typo.
public func closestMatch(to word: String, among candidates: [String]) -> String? {
    let scored = candidates.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }
    guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    let threshold = max(1, min(3, best.0.count / 3))
    return best.1 <= threshold ? best.0 : nil
}

/// Edit distance counting an insertion, a deletion, a substitution or a transposition of two
/// neighbouring characters as one edit (optimal string alignment): typos are mostly these.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { d[i][0] = i }
    for j in 0...b.count { d[0][j] = j }
    for i in 1...a.count {
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
            }
        }
    }
    return d[a.count][b.count]
}
