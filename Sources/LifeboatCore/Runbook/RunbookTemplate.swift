import Foundation

/// A runbook value with `${…}` references resolved when the step runs, not when the
/// configuration loads: `${RECOVERY_TARGET_TIME}`, `${RESTORED_POINT}`,
/// `${steps.ID.restored_point}`, the runbook's `variables`, and the environment.
///
/// The syntax is `Interpolation`'s: `${NAME}`, `${NAME:-default}` (the default when the
/// variable is unset or empty), `$$` for a literal `$`; any other `$` is itself.
public struct RunbookTemplate: Sendable, Equatable, CustomStringConvertible {
    public enum Part: Sendable, Equatable {
        case literal(String)
        case variable(String, fallback: String?)
    }

    /// The text as written.
    public let text: String
    public let parts: [Part]

    /// A value with no references (and no `$` to interpret).
    public init(literal: String) {
        text = literal
        parts = literal.isEmpty ? [] : [.literal(literal)]
    }

    public init(parsing text: String) throws(Interpolation.Failure) {
        self.text = text
        var parts: [Part] = []
        for segment in Interpolation.segments(of: text, isName: Self.isVariableName) {
            switch segment {
            case .literal(let literal): parts.append(.literal(literal))
            case .reference(let name, let fallback): parts.append(.variable(name, fallback: fallback))
            case .malformed(let failure): throw failure
            }
        }
        self.parts = parts
    }

    /// An environment-style name (`[A-Za-z_][A-Za-z0-9_]*`), or `steps.ID.restored_point`.
    static func isVariableName(_ name: Substring) -> Bool {
        if name.hasPrefix("steps.") { return RunbookVariables.stepReference(String(name)) != nil }
        return Interpolation.isValidName(name)
    }

    /// The variables it refers to, with whether each has a default.
    public var references: [(name: String, hasFallback: Bool)] {
        parts.compactMap { part in
            if case .variable(let name, let fallback) = part { return (name, fallback != nil) }
            return nil
        }
    }

    public var isLiteral: Bool { references.isEmpty }

    public var description: String { text }

    /// The text with every reference replaced by its value in `values`.
    ///
    /// - Throws: `Interpolation.Failure.undefined` for a variable without a value or default.
    public func resolve(_ values: [String: String]) throws(Interpolation.Failure) -> String {
        var out = ""
        for part in parts {
            switch part {
            case .literal(let text):
                out += text
            case .variable(let name, let fallback):
                guard let value = Interpolation.value(of: name, fallback: fallback, in: values) else { throw .undefined(name) }
                out += value
            }
        }
        return out
    }

    public static func == (lhs: RunbookTemplate, rhs: RunbookTemplate) -> Bool { lhs.text == rhs.text }
}

/// The values a runbook's templates resolve against while it runs.
///
/// Looked up in this order: the built-in variables (`RECOVERY_TARGET_TIME`, `RESTORED_POINT`,
/// `RUNBOOK`, `RUNBOOK_MODE`, `steps.ID.restored_point`), the runbook's `variables`, the
/// environment. `recover` and `drill` call `restored(step:at:)` after each restore step.
public struct RunbookVariables: Sendable {
    public static let recoveryTargetTime = "RECOVERY_TARGET_TIME"
    public static let restoredPoint = "RESTORED_POINT"
    public static let runbookName = "RUNBOOK"
    public static let mode = "RUNBOOK_MODE"
    /// Names a runbook's `variables` may not take.
    public static let builtins: Set<String> = [recoveryTargetTime, restoredPoint, runbookName, mode]

    public private(set) var values: [String: String]

    /// - Parameter recoveryTargetTime: `--at`; nil resolves `${RECOVERY_TARGET_TIME}` to `latest`.
    public init(runbook: Runbook, mode: RunbookMode, environment: [String: String], recoveryTargetTime: Date?) {
        var values = environment
        for (name, value) in runbook.variables { values[name] = value }
        values[Self.recoveryTargetTime] = recoveryTargetTime.map(Self.format) ?? "latest"
        values[Self.runbookName] = runbook.name
        values[Self.mode] = mode.rawValue
        self.values = values
    }

    /// Records the point a restore step restored: `${RESTORED_POINT}` (the newest restore
    /// step's) and `${steps.ID.restored_point}`.
    public mutating func restored(step id: String, at point: Date) {
        let text = Self.format(point)
        values[Self.restoredPoint] = text
        values["steps.\(id).restored_point"] = text
    }

    /// Sets the variables of a drill's scratch target (`DrillTargetVariables`).
    public mutating func setScratch(_ scratch: [String: String]) {
        for (name, value) in scratch { values[name] = value }
    }

    /// - Throws: `LifeboatError(.usage)` naming the variable that has no value.
    public func resolve(_ template: RunbookTemplate) throws -> String {
        do {
            return try template.resolve(values)
        } catch {
            guard case .undefined(let name) = error else { throw LifeboatError(.usage, "cannot resolve '\(template.text)'") }
            throw LifeboatError(.usage, "'\(template.text)' refers to '\(name)', which has no value",
                                hint: "Set \(name) in the environment or in the runbook's 'variables', or write ${\(name):-default}.")
        }
    }

    /// UTC, with milliseconds: `2026-11-29T17:30:00.250Z` (what `RecoveryTarget.parseTime` reads back).
    public static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    /// The step id of `steps.ID.restored_point`, or nil when `name` is not such a reference.
    public static func stepReference(_ name: String) -> String? {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "steps", parts[2] == "restored_point", RunbookParser.isValidStepID(String(parts[1]))
        else { return nil }
        return String(parts[1])
    }
}
