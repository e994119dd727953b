import Foundation

/// One drill in the drill history (`<state_dir>/drills/<runbook>.jsonl`, one JSON line each):
/// enough to draw the RTO/RPO history chart and find the drill's reports.
public struct DrillRecord: Codable, Sendable, Equatable {
    public var runbook: String
    public var start: Date
    public var end: Date
    public var passed: Bool
    /// Seconds (nil: not measured).
    public var rto: Double?
    public var rpo: Double?
    public var objectives: DrillReport.Objectives
    /// The report files written, by format (`json`, `junit`, `html`).
    public var reports: [String: String]

    public init(runbook: String, start: Date, end: Date, passed: Bool, rto: Double?, rpo: Double?,
                objectives: DrillReport.Objectives, reports: [String: String] = [:]) {
        self.runbook = runbook
        self.start = start
        self.end = end
        self.passed = passed
        self.rto = rto
        self.rpo = rpo
        self.objectives = objectives
        self.reports = reports
    }

    public init(_ report: DrillReport, reports: [String: String] = [:]) {
        self.init(runbook: report.runbook, start: report.start, end: report.end, passed: report.passed, rto: report.rto,
                  rpo: report.rpo, objectives: report.objectives, reports: reports)
    }

    /// The record as one line, newline included (keys sorted, dates ISO 8601).
    public func line() throws -> String { try JSON.line(self) }

    /// Reads a drill history, oldest first. A line that does not parse (a torn last line) is
    /// skipped and counted.
    public static func parseHistory(_ data: Data) -> (records: [DrillRecord], unreadable: Int) {
        JSON.decodeLines(DrillRecord.self, from: data)
    }
}
