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
        var i = text.startIndex
        while i < text.endIndex {
            let ch = text[i]
            let next = text.index(after: i)
            guard ch == "$", next < text.endIndex else {
                out.append(ch)
                i = next
                continue
            }
            if text[next] == "$" {
                out.append("$")
                i = text.index(after: next)
            } else if text[next] == "{" {
                let start = text.index(after: next)
                guard let close = text[start...].firstIndex(of: "}") else { throw .unterminated }
                let body = text[start..<close]
                var name = Substring(body)
                var fallback: Substring? = nil
                if let sep = body.range(of: ":-") {
                    name = body[body.startIndex..<sep.lowerBound]
                    fallback = body[sep.upperBound...]
                }
                guard isValidName(name) else { throw .invalidName(String(name)) }
                if let value = environment[String(name)], !(fallback != nil && value.isEmpty) {
                    out += value
                } else if let fallback {
                    out += fallback
                } else {
                    throw .undefined(String(name))
                }
                i = text.index(after: close)
            } else {
                out.append(ch)
                i = next
            }
        }
        return out
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
        var found: [Reference] = []
        var i = text.startIndex
        while i < text.endIndex {
            let next = text.index(after: i)
            guard text[i] == "$", next < text.endIndex else {
                i = next
                continue
            }
            if text[next] == "$" {
                i = text.index(after: next)
            } else if text[next] == "{", let close = text[next...].firstIndex(of: "}") {
                let body = text[text.index(after: next)..<close]
                let separator = body.range(of: ":-")
                let name = separator.map { body[body.startIndex..<$0.lowerBound] } ?? body
                if isValidName(name) { found.append(Reference(name: String(name), hasDefault: separator != nil)) }
                i = text.index(after: close)
            } else {
                i = next
            }
        }
        return found
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
