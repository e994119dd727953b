import Foundation
import Glibc
import LifeboatCore
import LifeboatIO

/// A runbook's drill history, `<state_dir>/drills/<runbook>.jsonl` (0600, in a 0700
/// directory): one `DrillRecord` a line, appended after each drill; the HTML report's history
/// chart reads its last lines.
public struct DrillHistory: Sendable {
    /// `<state_dir>/drills`.
    public let directory: String
    public let runbook: String

    public init(stateDirectory: String, runbook: String) {
        directory = stateDirectory + "/drills"
        self.runbook = runbook
    }

    public var path: String { "\(directory)/\(runbook).jsonl" }

    /// Creates (0700) and returns a report directory of its own for a drill that started at
    /// `start`: `defaultReportDirectory(start:)`, or with `_2`, `_3`, … when drills that
    /// started in the same second took it first (they ran at once; each keeps its reports).
    public func claimReportDirectory(start: Date) throws -> String {
        let base = defaultReportDirectory(start: start)
        try makeDirectories(directory + "/" + runbook, mode: 0o700)
        var candidate = base
        var taken = 1
        while mkdir(candidate, 0o700) != 0 {
            let saved = errno
            guard saved == EEXIST else {
                throw LifeboatError(.io, "unable to create the drill report directory '\(candidate)': \(errnoText(saved))",
                                    hint: "Check that the state directory is writable by this user, or pass --report-dir DIR.")
            }
            taken += 1
            candidate = base + "_\(taken)"
        }
        _ = chmod(candidate, 0o700)  // exactly, whatever the umask
        return candidate
    }

    /// Where a drill's reports go unless `--report-dir` says otherwise:
    /// `<state_dir>/drills/<runbook>/<start, as 20261129T173000Z>`.
    public func defaultReportDirectory(start: Date) -> String {
        "\(directory)/\(runbook)/\(Self.directoryName(start))"
    }

    /// A time as a directory name: `20261129T173000Z` (UTC, sorts by time).
    public static func directoryName(_ date: Date) -> String {
        let c = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: date)
        func two(_ n: Int?) -> String { n.map { $0 < 10 ? "0\($0)" : "\($0)" } ?? "00" }
        return "\(c.year ?? 0)\(two(c.month))\(two(c.day))T\(two(c.hour))\(two(c.minute))\(two(c.second))Z"
    }

    static let hint = "Check that this user owns the state directory (state_dir in lifeboat.yaml) and that its disk is not full."

    /// Appends one record: one `write(2)` of the whole line with `O_APPEND`, then `fsync`; a
    /// crash leaves at most a torn last line, which reading skips.
    public func append(_ record: DrillRecord) throws {
        try makeDirectories(directory, mode: 0o700)
        let line = Array(try record.line().utf8)
        try appendLine(line, toFile: path, what: "the drill history '\(path)'", hint: Self.hint)
    }

    /// The last `limit` drills, oldest first; empty when there is no history yet.
    public func records(last limit: Int = DrillReportHTML.historyLength) throws -> [DrillRecord] {
        guard pathExists(path) else { return [] }
        return Array(DrillRecord.parseHistory(Data(try readTextFile(path).utf8)).records.suffix(limit))
    }
}
