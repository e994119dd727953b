import Foundation

/// What a restore does with the SQL that `pg_dumpall --globals-only` wrote: create the roles
/// and tablespaces the target lacks, and leave the ones it has exactly as they are.
///
/// A target server may be shared with live applications. Replaying the source's
/// `ALTER ROLE app WITH … PASSWORD '…'` on a role that already exists would replace its password
/// and attributes (and lock the application out); replaying `GRANT … TO app` would change its
/// memberships. So every statement about an existing role or tablespace is left out, and the
/// report names them. The role the restore connects as always exists, so it is never touched.
public enum GlobalsScript {
    public struct Plan: Equatable, Sendable {
        /// The SQL to run: everything but the statements about existing roles and tablespaces.
        public var script: String
        /// Roles the script creates (absent on the target).
        public var createdRoles: [String]
        /// Roles of the backup that already exist on the target, left as they are.
        public var keptRoles: [String]
        public var createdTablespaces: [String]
        public var keptTablespaces: [String]
    }

    /// Plans the restore of `script` on a server that has `existingRoles` and `existingTablespaces`.
    public static func plan(_ script: String, existingRoles: Set<String>, existingTablespaces: Set<String>) -> Plan {
        var kept: [Substring] = []
        var createdRoles: [String] = [], keptRoles: [String] = []
        var createdTablespaces: [String] = [], keptTablespaces: [String] = []
        for statement in split(script) {
            switch subject(of: statement) {
            case .role(let name, let creates):
                if existingRoles.contains(name) {
                    if creates { keptRoles.append(name) }
                    continue
                }
                if creates { createdRoles.append(name) }
            case .membership(let members):
                // A membership is the member's: an existing member keeps the memberships it has.
                if members.contains(where: existingRoles.contains) { continue }
            case .tablespace(let name, let creates):
                if existingTablespaces.contains(name) {
                    if creates { keptTablespaces.append(name) }
                    continue
                }
                if creates { createdTablespaces.append(name) }
            case .other:
                break
            }
            kept.append(statement)
        }
        return Plan(script: kept.joined(), createdRoles: createdRoles, keptRoles: keptRoles,
                    createdTablespaces: createdTablespaces, keptTablespaces: keptTablespaces)
    }

    // MARK: Statements

    /// Splits SQL into statements at `;` outside quotes (`'…'` with `''`, `"…"` with `""`,
    /// `$tag$…$tag$`) and comments, and psql meta-commands (`\restrict …`) at the end of
    /// their line. Each statement comes with the whitespace and comments before it, and its
    /// `;`: nothing is lost, the statements joined give the script back.
    static func split(_ script: String) -> [Substring] {
        let bytes = Array(script.utf8)
        var statements: [Substring] = []
        var start = 0
        var i = 0
        var atStatementStart = true
        func cut(_ end: Int) {
            let text = script.utf8[script.utf8.index(script.utf8.startIndex, offsetBy: start)..<script.utf8.index(script.utf8.startIndex, offsetBy: end)]
            statements.append(Substring(text))
            start = end
            atStatementStart = true
        }
        while i < bytes.count {
            let c = bytes[i]
            switch c {
            case UInt8(ascii: "'"), UInt8(ascii: "\""):
                atStatementStart = false
                i += 1
                while i < bytes.count {
                    if bytes[i] == c {
                        if i + 1 < bytes.count, bytes[i + 1] == c { i += 2; continue }
                        break
                    }
                    i += 1
                }
                i += 1
            case UInt8(ascii: "-") where i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "-"):
                while i < bytes.count, bytes[i] != UInt8(ascii: "\n") { i += 1 }
            case UInt8(ascii: "$"):
                atStatementStart = false
                var j = i + 1
                while j < bytes.count, bytes[j] == UInt8(ascii: "_") || (bytes[j] >= 0x30 && bytes[j] <= 0x39 && j > i + 1)
                    || (bytes[j] | 0x20 >= UInt8(ascii: "a") && bytes[j] | 0x20 <= UInt8(ascii: "z")) { j += 1 }
                if j < bytes.count, bytes[j] == UInt8(ascii: "$") {
                    let tag = bytes[i...j]
                    var k = j + 1
                    while k < bytes.count, !bytes[k...].starts(with: tag) { k += 1 }
                    i = min(bytes.count, k + tag.count)
                } else {
                    i += 1
                }
            case UInt8(ascii: "\\") where atStatementStart:
                while i < bytes.count, bytes[i] != UInt8(ascii: "\n") { i += 1 }
                cut(i)
            case UInt8(ascii: ";"):
                i += 1
                cut(i)
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                i += 1
            default:
                atStatementStart = false
                i += 1
            }
        }
        if start < bytes.count { cut(bytes.count) }
        return statements
    }

    enum Subject: Equatable {
        case role(String, creates: Bool)
        /// `GRANT role TO member, …`: the members.
        case membership([String])
        case tablespace(String, creates: Bool)
        case other
    }

    /// What a statement is about, from its leading words.
    static func subject(of statement: Substring) -> Subject {
        var tokens = Tokens(statement)
        guard let first = tokens.nextToken() else { return .other }
        switch first {
        case "CREATE":
            switch tokens.nextToken() {
            case "ROLE": return tokens.nextIdentifier().map { .role($0, creates: true) } ?? .other
            case "TABLESPACE": return tokens.nextIdentifier().map { .tablespace($0, creates: true) } ?? .other
            default: return .other
            }
        case "ALTER":
            switch tokens.nextToken() {
            case "ROLE", "USER": return tokens.nextIdentifier().map { .role($0, creates: false) } ?? .other
            case "TABLESPACE": return tokens.nextIdentifier().map { .tablespace($0, creates: false) } ?? .other
            default: return .other
            }
        case "COMMENT", "SECURITY":
            // COMMENT ON ROLE x IS …; SECURITY LABEL [FOR p] ON ROLE x IS …
            while let word = tokens.nextToken() {
                if word == "ON" {
                    switch tokens.nextToken() {
                    case "ROLE": return tokens.nextIdentifier().map { .role($0, creates: false) } ?? .other
                    case "TABLESPACE": return tokens.nextIdentifier().map { .tablespace($0, creates: false) } ?? .other
                    default: return .other
                    }
                }
            }
            return .other
        case "GRANT", "REVOKE":
            // GRANT … ON TABLESPACE x TO …: the tablespace's; GRANT a, b TO m, n …: the members'.
            var sawOn = false
            while let token = tokens.nextToken() {
                if token == "ON" { sawOn = true }
                if sawOn, token == "TABLESPACE" { return tokens.nextIdentifier().map { .tablespace($0, creates: false) } ?? .other }
                if !sawOn, token == "TO" || (first == "REVOKE" && token == "FROM") {
                    var members: [String] = []
                    while let member = tokens.nextIdentifier() {
                        members.append(member)
                        guard tokens.skip(",") else { break }
                    }
                    return .membership(members)
                }
            }
            return .other
        default:
            return .other
        }
    }

    /// A tiny SQL tokenizer over a statement: words (upper-cased), identifiers (bare names are
    /// folded to lower case as PostgreSQL does, quoted ones kept), punctuation.
    struct Tokens {
        let bytes: [UInt8]
        var i = 0

        init(_ text: Substring) { bytes = Array(text.utf8) }

        mutating func skipSpaceAndComments() {
            while i < bytes.count {
                if bytes[i] == UInt8(ascii: " ") || bytes[i] == UInt8(ascii: "\n") || bytes[i] == UInt8(ascii: "\t") || bytes[i] == UInt8(ascii: "\r") {
                    i += 1
                } else if bytes[i] == UInt8(ascii: "-"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "-") {
                    while i < bytes.count, bytes[i] != UInt8(ascii: "\n") { i += 1 }
                } else {
                    return
                }
            }
        }

        /// The next token as written (quoted identifiers and strings whole), nil at the end.
        mutating func nextToken() -> String? {
            skipSpaceAndComments()
            guard i < bytes.count else { return nil }
            let start = i
            let c = bytes[i]
            if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
                i += 1
                while i < bytes.count {
                    if bytes[i] == c {
                        if i + 1 < bytes.count, bytes[i + 1] == c { i += 2; continue }
                        i += 1
                        break
                    }
                    i += 1
                }
                return String(decoding: bytes[start..<i], as: UTF8.self)
            }
            if isWordByte(c) {
                while i < bytes.count, isWordByte(bytes[i]) { i += 1 }
                return String(decoding: bytes[start..<i], as: UTF8.self).uppercased()
            }
            i += 1
            return String(decoding: bytes[start..<i], as: UTF8.self)
        }

        /// The next identifier: `"Quoted ""Name"""` → `Quoted "Name"`, `bare` → `bare`.
        mutating func nextIdentifier() -> String? {
            skipSpaceAndComments()
            guard i < bytes.count else { return nil }
            if bytes[i] == UInt8(ascii: "\"") {
                guard let token = nextToken(), token.count >= 2 else { return nil }
                return String(token.dropFirst().dropLast()).replacingOccurrences(of: "\"\"", with: "\"")
            }
            guard isWordByte(bytes[i]) else { return nil }
            let start = i
            while i < bytes.count, isWordByte(bytes[i]) { i += 1 }
            return String(decoding: bytes[start..<i], as: UTF8.self).lowercased()
        }

        /// Skips `text` when it is next.
        mutating func skip(_ text: String) -> Bool {
            skipSpaceAndComments()
            let expected = Array(text.utf8)
            guard bytes[i...].starts(with: expected) else { return false }
            i += expected.count
            return true
        }

        func isWordByte(_ c: UInt8) -> Bool {
            c == UInt8(ascii: "_") || c == UInt8(ascii: "$") || (c >= 0x30 && c <= 0x39)
                || (c | 0x20 >= UInt8(ascii: "a") && c | 0x20 <= UInt8(ascii: "z")) || c >= 0x80
        }
    }
}
