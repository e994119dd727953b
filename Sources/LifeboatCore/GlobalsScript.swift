import Foundation

/// Edits to the SQL that `pg_dumpall --globals-only` writes, before it is applied on restore.
public enum GlobalsScript {
    /// Removes the statements that would create or alter `role`.
    ///
    /// A restore connects as some role (usually the target's superuser). Applying the source's
    /// `ALTER ROLE … PASSWORD …` for that same role would replace its password on the target
    /// with the source's — locking out whoever runs the restore. That role is left exactly as
    /// it is on the target; every other role is restored. pg_dumpall writes one statement per
    /// line for roles, with the name quoted as an identifier when it needs to be.
    public static func removingStatements(for role: String, from script: String) -> (script: String, removed: Int) {
        let names = Set([role, quotedIdentifier(role)])
        var removed = 0
        var kept: [Substring] = []
        for line in script.split(separator: "\n", omittingEmptySubsequences: false) {
            if names.contains(where: { line == "CREATE ROLE \($0);" || line.hasPrefix("ALTER ROLE \($0) ") }) {
                removed += 1
                continue
            }
            kept.append(line)
        }
        return (kept.joined(separator: "\n"), removed)
    }

    /// An identifier as PostgreSQL writes it: bare when it is lowercase letters, digits, `_`
    /// and `$` (not starting with a digit or `$`), otherwise in double quotes.
    public static func quotedIdentifier(_ name: String) -> String {
        let bare = name.unicodeScalars.enumerated().allSatisfy { index, c in
            ("a"..."z").contains(c) || c == "_" || (index > 0 && (("0"..."9").contains(c) || c == "$"))
        }
        if bare, !name.isEmpty { return name }
        return "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
