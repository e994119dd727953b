import Yams

/// One file an export writes: its name (no directory) and its text.
public struct ExportedFile: Sendable, Equatable {
    public var name: String
    public var text: String

    public init(name: String, text: String) {
        self.name = name
        self.text = text
    }
}

/// A YAML value as the exports write it: strings are quoted unless YAML would read them back
/// as the same string, so that `"0 3 * * *"`, `"true"` or `"1.0"` stay strings.
public indirect enum YAMLValue: Sendable, Equatable {
    case string(String)
    /// A multi-line string written as a literal block (`|`): a configuration file's text.
    case block(String)
    case int(Int64)
    case bool(Bool)
    case list([YAMLValue])
    case map([YAMLEntry])

    /// One document's text, ending in a newline.
    public func document() -> String {
        // The nodes are built here, with scalars YAML can always write: serializing cannot fail.
        (try? Yams.serialize(node: node, indent: 2, width: -1, allowUnicode: true)) ?? ""
    }

    var node: Node {
        switch self {
        case .string(let text):
            return Node(text, .implicit, Self.isPlainSafe(text) ? .plain : .doubleQuoted)
        case .block(let text):
            return Node(text, .implicit, text.contains("\n") ? .literal : .doubleQuoted)
        case .int(let value): return Node(String(value), .implicit, .plain)
        case .bool(let value): return Node(value ? "true" : "false", .implicit, .plain)
        case .list(let items): return Node(items.map(\.node))
        case .map(let entries): return Node(entries.map { (Node($0.key, .implicit, .plain), $0.value.node) })
        }
    }

    /// Whether a plain scalar reads back as this string: a word of letters, digits and
    /// `-./_` that starts with a letter or `/` and is none of YAML's booleans or nulls.
    static func isPlainSafe(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, first.isLetterASCII || first == "/" else { return false }
        if ["y", "n", "yes", "no", "on", "off", "true", "false", "null"].contains(text.lowercased()) { return false }
        return text.unicodeScalars.allSatisfy { $0.isLetterASCII || ("0"..."9").contains($0) || "-./_".unicodeScalars.contains($0) }

    }
}

public struct YAMLEntry: Sendable, Equatable {
    public var key: String
    public var value: YAMLValue

    public init(_ key: String, _ value: YAMLValue) {
        self.key = key
        self.value = value
    }
}

extension Unicode.Scalar {
    fileprivate var isLetterASCII: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
}

/// Builds a mapping from pairs, leaving out those whose value is nil.
func yamlMap(_ entries: (String, YAMLValue?)...) -> YAMLValue {
    .map(entries.compactMap { key, value in value.map { YAMLEntry(key, $0) } })
}

/// What an export refuses, gathered so that one run reports every problem (as
/// `lifeboat check` does), each once: the prune job sees again what a policy's job saw.
struct RefusedObjects {
    private(set) var errors: [LifeboatError] = []

    /// Runs `body`, keeping a `LifeboatError` it throws (any other error is thrown on).
    mutating func collect(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as LifeboatError {
            refuse(error)
        }
    }

    mutating func refuse(_ error: LifeboatError) {
        if !errors.contains(where: { $0.description == error.description }) { errors.append(error) }
    }

    /// Throws the one error as it is, several as `LifeboatErrors`.
    func throwIfAny() throws {
        if errors.count == 1 { throw errors[0] }
        if !errors.isEmpty { throw LifeboatErrors(errors) }
    }
}
