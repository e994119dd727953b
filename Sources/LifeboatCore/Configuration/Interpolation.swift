import Yams

/// `${VAR}` interpolation of configuration values from the environment.
///
/// - `${NAME}` is replaced by the variable's value; an unset variable is an error.
/// - `${NAME:-default}` uses `default` when the variable is unset or empty.
/// - `$$` is a literal `$`. A `$` followed by anything else is left as it is.
public enum Interpolation {
    public enum Failure: Error, Equatable, Sendable {
        case undefined(String)
        case unterminated
        case invalidName(String)
    }

    public static func expand(_ text: String, environment: [String: String]) throws(Failure) -> String {
        guard text.contains("$") else { return text }
        var out = ""
        for segment in segments(of: text) {
            switch segment {
            case .literal(let literal):
                out += literal
            case .reference(let name, let fallback):
                guard let value = value(of: name, fallback: fallback, in: environment) else { throw .undefined(name) }
                out += value
            case .malformed(let failure):
                throw failure
            }
        }
        return out
    }

    /// A piece of a text with references, as `segments(of:)` reads it.
    enum Segment: Equatable {
        /// Text as it is, with each `$$` read as `$`.
        case literal(String)
        /// `${NAME}` (no fallback) or `${NAME:-fallback}`.
        case reference(String, fallback: String?)
        /// A reference `isName` refuses (`invalidName`), or a `${` without its `}`
        /// (`unterminated`: the last segment).
        case malformed(Failure)
    }

    /// `text` read as literal text and references, in order, adjacent literal text joined:
    /// the one reading of the syntax `expand`, `references(in:)` and runbook templates share.
    /// - Parameter isName: which names a reference may have (runbooks allow `steps.ID.…`).
    static func segments(of text: String, isName: (Substring) -> Bool = isValidName) -> [Segment] {
        var segments: [Segment] = []
        var literal = ""
        func flush() {
            if !literal.isEmpty { segments.append(.literal(literal)) }
            literal = ""
        }
        var i = text.startIndex
        while i < text.endIndex {
            let ch = text[i]
            let next = text.index(after: i)
            guard ch == "$", next < text.endIndex, text[next] == "$" || text[next] == "{" else {
                literal.append(ch)
                i = next
                continue
            }
            if text[next] == "$" {
                literal.append("$")
                i = text.index(after: next)
                continue
            }
            flush()
            let start = text.index(after: next)
            guard let close = text[start...].firstIndex(of: "}") else {
                segments.append(.malformed(.unterminated))
                return segments
            }
            let body = text[start..<close]
            var name = body
            var fallback: String?
            if let separator = body.range(of: ":-") {
                name = body[body.startIndex..<separator.lowerBound]
                fallback = String(body[separator.upperBound...])
            }
            segments.append(isName(name) ? .reference(String(name), fallback: fallback) : .malformed(.invalidName(String(name))))
            i = text.index(after: close)
        }
        flush()
        return segments
    }

    /// A reference's value: the variable's, or its fallback when it is unset or (with a
    /// fallback) empty; nil when it has neither.
    static func value(of name: String, fallback: String?, in values: [String: String]) -> String? {
        if let value = values[name], !(fallback != nil && value.isEmpty) { return value }
        return fallback
    }

    static func isValidName(_ name: Substring) -> Bool {
        guard let first = name.first, first == "_" || (first.isASCII && first.isLetter) else { return false }
        return name.allSatisfy { $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }
    }
}

extension Interpolation {
    /// A `${NAME}` or `${NAME:-default}` a configuration value refers to.
    public struct Reference: Hashable, Sendable {
        public var name: String
        /// Written `${NAME:-default}`: the value may be left unset.
        public var hasDefault: Bool

        public init(name: String, hasDefault: Bool) {
            self.name = name
            self.hasDefault = hasDefault
        }
    }

    /// The variables `text` refers to, in order, by the rules of `expand` (`$$` is no
    /// reference); a malformed reference is skipped (the parser reports it).
    public static func references(in text: String) -> [Reference] {
        segments(of: text).compactMap { segment in
            guard case .reference(let name, let fallback) = segment else { return nil }
            return Reference(name: name, hasDefault: fallback != nil)
        }
    }

    /// The variables a YAML configuration file's values refer to (scalars only: comments and
    /// keys are never interpolated). Nil when the text is not YAML.
    public static func references(inYAML text: String) -> [Reference]? {
        let document: Node?
        do { document = try Yams.compose(yaml: text) } catch { return nil }
        guard let root = document else { return [] }
        var found: [Reference] = []
        func walk(_ node: Node) {
            switch node {
            case .scalar(let scalar): found += references(in: scalar.string)
            case .mapping(let mapping): for (_, value) in mapping { walk(value) }
            case .sequence(let sequence): sequence.forEach(walk)
            case .alias: break
            }
        }
        walk(root)
        return found
    }
}
