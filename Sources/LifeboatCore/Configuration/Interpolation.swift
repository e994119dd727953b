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
