import Foundation

/// Finds every repeated key in the block mappings of a YAML text.
///
/// Yams stops at the first mapping with a repeated key and reports where that key first
/// appears, not the repetition. A person fixing a file wants every repetition at once, each
/// with its own line, so when Yams reports duplicates this scan finds them all. It reads
/// block-style YAML (what configuration files are written in) line by line: a key is the
/// first `key:` of a line after its indentation and any `- ` sequence markers, and belongs to
/// the mapping at its column until a line indented less, or a new sequence item, ends it.
/// Block scalars (`|`, `>`) are skipped. Flow mappings (`{a: 1, a: 2}`) are not looked into;
/// Yams' own report covers those.
enum DuplicateKeys {
    struct Duplicate: Equatable {
        var key: String
        /// 1-based, as Yams' marks.
        var line: Int
        var column: Int
        var firstLine: Int
    }

    static func find(in text: String) -> [Duplicate] {
        struct OpenMapping {
            var column: Int
            var keys: [String: Int]
        }
        var stack: [OpenMapping] = []
        var duplicates: [Duplicate] = []
        var blockScalarIndent: Int?  // inside a block scalar whose key sits at this column

        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = Array(rawLine.utf8)
            var column = 0
            while column < line.count, line[column] == UInt8(ascii: " ") { column += 1 }
            let isBlank = column == line.count || line[column] == UInt8(ascii: "#") || line[column] == UInt8(ascii: "\r")
            if let indent = blockScalarIndent {
                if isBlank || column > indent { continue }
                blockScalarIndent = nil
            }
            if isBlank { continue }
            if line[column...].starts(with: Array("---".utf8)) || line[column...].starts(with: Array("...".utf8)) {
                stack.removeAll()
                continue
            }
            // Sequence markers: each `- ` starts a new item, so a new mapping, further right.
            var startsItem = false
            while column + 1 < line.count, line[column] == UInt8(ascii: "-"), line[column + 1] == UInt8(ascii: " ") {
                stack.removeAll { $0.column >= column }
                startsItem = true
                column += 2
                while column < line.count, line[column] == UInt8(ascii: " ") { column += 1 }
            }
            if column < line.count, line[column] == UInt8(ascii: "-"), column + 1 == line.count {
                stack.removeAll { $0.column >= column }
                continue
            }
            guard let (key, afterColon) = keyAt(line, column) else {
                stack.removeAll { $0.column > column }
                continue
            }
            stack.removeAll { $0.column > column || (startsItem && $0.column >= column) }
            if stack.last?.column != column { stack.append(OpenMapping(column: column, keys: [:])) }
            if let first = stack[stack.count - 1].keys[key] {
                duplicates.append(Duplicate(key: key, line: index + 1, column: column + 1, firstLine: first))
            } else {
                stack[stack.count - 1].keys[key] = index + 1
            }
            if isBlockScalarIndicator(line[afterColon...]) { blockScalarIndent = column }
        }
        return duplicates
    }

    /// The key of a `key: value` (or `key:`) at `column`, and the index just after its colon.
    private static func keyAt(_ line: [UInt8], _ column: Int) -> (String, Int)? {
        guard column < line.count else { return nil }
        let first = line[column]
        if first == UInt8(ascii: "\"") || first == UInt8(ascii: "'") {
            var i = column + 1
            while i < line.count, line[i] != first { i += first == UInt8(ascii: "\"") && line[i] == UInt8(ascii: "\\") ? 2 : 1 }
            guard i < line.count else { return nil }
            let key = String(decoding: line[(column + 1)..<i], as: UTF8.self)
            var j = i + 1
            while j < line.count, line[j] == UInt8(ascii: " ") { j += 1 }
            guard j < line.count, line[j] == UInt8(ascii: ":"), j + 1 == line.count || line[j + 1] == UInt8(ascii: " ") else { return nil }
            return (key, j + 1)
        }
        if "{[#&*!|>%@`".utf8.contains(first) { return nil }
        var i = column
        while i < line.count {
            if line[i] == UInt8(ascii: ":"), i + 1 == line.count || line[i + 1] == UInt8(ascii: " ") || line[i + 1] == UInt8(ascii: "\r") {
                var end = i
                while end > column, line[end - 1] == UInt8(ascii: " ") { end -= 1 }
                return (String(decoding: line[column..<end], as: UTF8.self), i + 1)
            }
            if line[i] == UInt8(ascii: "#"), i > column, line[i - 1] == UInt8(ascii: " ") { return nil }
            i += 1
        }
        return nil
    }

    /// Whether a value starts a block scalar: `|`, `>`, with optional indicators, then a comment or nothing.
    private static func isBlockScalarIndicator(_ rest: ArraySlice<UInt8>) -> Bool {
        let text = String(decoding: rest, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        guard let first = text.first, first == "|" || first == ">" else { return false }
        let tail = text.dropFirst().prefix { $0 != "#" }.trimmingCharacters(in: .whitespaces)
        return tail.allSatisfy { $0 == "+" || $0 == "-" || $0.isNumber }
    }
}
