/// Exclusion patterns for `files` sources, matched against paths relative to the source's root.
///
/// - A pattern without `/` matches any single path component: `.git` excludes every `.git`
///   directory and its contents, `*.tmp` every file ending in `.tmp`.
/// - A pattern with `/` matches the whole relative path from the root: `logs/*.gz`.
/// - `*` matches any run of characters except `/`, `?` any single character except `/`.
public struct PathPatterns: Sendable, Equatable {
    public let patterns: [String]

    public init(_ patterns: [String]) { self.patterns = patterns }

    /// Whether the relative path (`a/b/c`) is excluded, itself or through a parent.
    public func excludes(_ relativePath: String) -> Bool {
        guard !patterns.isEmpty else { return false }
        let components = relativePath.split(separator: "/").map(String.init)
        for pattern in patterns {
            if pattern.contains("/") {
                let trimmed = pattern.hasPrefix("/") ? String(pattern.dropFirst()) : pattern
                let patternComponents = trimmed.split(separator: "/").map(String.init)
                // A match of the pattern against a prefix of the path excludes the subtree.
                if patternComponents.count <= components.count,
                   zip(patternComponents, components).allSatisfy({ Self.glob($0, $1) }) {
                    return true
                }
            } else if components.contains(where: { Self.glob(pattern, $0) }) {
                return true
            }
        }
        return false
    }

    /// Matches one path component against a pattern with `*` and `?`.
    static func glob(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern.unicodeScalars), t = Array(text.unicodeScalars)
        var pi = 0, ti = 0
        var starP = -1, starT = 0
        while ti < t.count {
            if pi < p.count, p[pi] == "?" || p[pi] == t[ti] {
                pi += 1
                ti += 1
            } else if pi < p.count, p[pi] == "*" {
                starP = pi
                starT = ti
                pi += 1
            } else if starP >= 0 {
                pi = starP + 1
                starT += 1
                ti = starT
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
