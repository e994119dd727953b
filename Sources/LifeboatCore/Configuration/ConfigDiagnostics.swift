import Yams

/// What a configuration problem stops from working.
///
/// A problem blocks only what it belongs to: an unset `${VAR}` in one policy must not stop an
/// operator from listing or restoring another policy on a fresh machine in a disaster, and a
/// typo in a runbook must not stop WAL archiving. `lifeboat check` reports every problem as an
/// error; every other command refuses only when a problem is in a scope it uses, and logs the
/// others as warnings.
public enum ConfigScope: Hashable, Sendable, CustomStringConvertible {
    /// `lifeboat.yaml`'s own settings (and its YAML as a whole): every command uses them.
    case main
    /// One entry of `repositories:` in `lifeboat.yaml`.
    case repository(String)
    /// One policy file; the name is the file's base name (which must be the policy's name).
    case policy(String)
    /// One runbook file; the name is the file's base name.
    case runbook(String)

    public var description: String {
        switch self {
        case .main: return "lifeboat.yaml"
        case .repository(let name): return "repository '\(name)'"
        case .policy(let name): return "policy '\(name)'"
        case .runbook(let name): return "runbook '\(name)'"
        }
    }
}

/// One configuration error and what it blocks.
public struct ConfigProblem: Sendable {
    public var scope: ConfigScope
    public var error: LifeboatError

    public init(scope: ConfigScope, error: LifeboatError) {
        self.scope = scope
        self.error = error
    }
}

/// Collects every configuration error found in one pass, each with `file:line:column` and the
/// scope that was being read when it was found.
public final class ConfigDiagnostics {
    public private(set) var problems: [ConfigProblem] = []
    /// The scope errors are attributed to; the parser sets it before reading each part.
    public var scope: ConfigScope = .main

    public init() {}

    public var errors: [LifeboatError] { problems.map(\.error) }

    func error(_ file: String, _ mark: Mark?, _ message: String, hint: String? = nil) {
        error(file, line: mark?.line, column: mark?.column, message, hint: hint)
    }

    /// Records an error at `file:line:column` (or just `file` when the position is unknown).
    public func error(_ file: String, line: Int?, column: Int?, _ message: String, hint: String? = nil) {
        var location = file
        if let line, let column { location += ":\(line):\(column)" }
        problems.append(ConfigProblem(scope: scope, error: LifeboatError(.configuration, "\(location): \(message)", hint: hint)))
    }

    /// Runs `body` with errors attributed to `scope`, then restores the previous scope.
    public func within<T>(_ scope: ConfigScope, _ body: () -> T) -> T {
        let previous = self.scope
        self.scope = scope
        defer { self.scope = previous }
        return body()
    }
}
