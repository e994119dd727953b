import Foundation
import LifeboatCore
import LifeboatIO

/// Writes a drill's reports — `report.json`, `report.xml` (JUnit), `report.html` — and records
/// the drill in the runbook's history. The renderers are `LifeboatCore`'s; this only writes.
public enum DrillReportWriter {
    /// The report files, by format.
    public struct Written: Sendable, Equatable {
        public var json: String
        public var junit: String
        public var html: String

        public var byFormat: [String: String] { ["json": json, "junit": junit, "html": html] }
    }

    /// Writes the three reports into `directory` (created, 0700; files 0600, each written under
    /// a temporary name and renamed into place). `history`: earlier drills, for the HTML chart.
    @discardableResult
    public static func write(report: DrillReport, history: [DrillRecord], to directory: String) throws -> Written {
        try makeDirectories(directory, mode: 0o700)
        let written = Written(json: directory + "/report.json", junit: directory + "/report.xml", html: directory + "/report.html")
        try LocalFile.replace(written.json, with: Array(try DrillReportJSON.render(report).utf8), sync: true)
        try LocalFile.replace(written.junit, with: Array(DrillReportJUnit.render(report).utf8), sync: true)
        try LocalFile.replace(written.html, with: Array(DrillReportHTML.render(report, history: history).utf8), sync: true)
        return written
    }

    /// What `lifeboat drill` does once the runbook has run: reads the history, writes the
    /// reports (into `reportDirectory`, or a new `<state_dir>/drills/<runbook>/<start>/`, with
    /// `_2`, `_3`, … for drills that started in the same second), then
    /// appends the drill to the history with the reports' paths.
    @discardableResult
    public static func record(report: DrillReport, stateDirectory: String, reportDirectory: String? = nil) throws -> (written: Written, record: DrillRecord) {
        let history = DrillHistory(stateDirectory: stateDirectory, runbook: report.runbook)
        let earlier = try history.records(last: DrillReportHTML.historyLength)
        let written = try write(report: report, history: earlier,
                                to: try reportDirectory ?? history.claimReportDirectory(start: report.start))
        let record = DrillRecord(report, reports: written.byFormat)
        try history.append(record)
        return (written, record)
    }
}
