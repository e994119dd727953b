import Foundation
import Glibc
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import Testing
import TestSupport

@Suite struct DrillReportFiles {
    static let t0 = Date(timeIntervalSince1970: 1_764_000_000)

    static func report(start: Date, passed: Bool = true) -> DrillReport {
        let steps = [StepResult(id: "ok", kind: "health", started: start, ended: start.addingTimeInterval(90), outcome: passed ? .passed : .failed,
                                checks: [CheckResult(kind: "tcp", target: "127.0.0.1:1", passed: passed, detail: "", attempts: 1,
                                                     passedAt: passed ? start.addingTimeInterval(60) : nil)])]
        return DrillReport.evaluate(runbook: "restore-hub", mode: .drill, objectives: .init(rto: 300), start: start,
                                    end: start.addingTimeInterval(90), steps: steps, criticalSteps: ["ok"],
                                    requiredHealthSteps: ["ok"], stores: [])
    }

    static func mode(_ path: String) -> mode_t {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode & 0o777 : 0
    }

    @Test func recordWritesTheThreeReportsUnderTheStateDirectoryAndAppendsTheHistory() throws {
        let state = try TemporaryDirectory("lifeboat-drills")
        defer { state.remove() }
        let first = try DrillReportWriter.record(report: Self.report(start: Self.t0), stateDirectory: state.path)
        let directory = state.path + "/drills/restore-hub/20251124T160000Z"
        #expect(first.written.json == directory + "/report.json")
        #expect(first.written.junit == directory + "/report.xml")
        #expect(first.written.html == directory + "/report.html")
        for file in [first.written.json, first.written.junit, first.written.html] {
            #expect(Self.mode(file) == 0o600, "\(file)")
        }
        #expect(Self.mode(state.path + "/drills") == 0o700)
        #expect(Self.mode(directory) == 0o700)
        #expect(try DrillReportJSON.parse(readTextFile(first.written.json)) == Self.report(start: Self.t0))

        let history = DrillHistory(stateDirectory: state.path, runbook: "restore-hub")
        #expect(history.path == state.path + "/drills/restore-hub.jsonl")
        #expect(Self.mode(history.path) == 0o600)
        #expect(try history.records() == [first.record])
        #expect(first.record.reports == ["json": first.written.json, "junit": first.written.junit, "html": first.written.html])
        #expect(first.record.rto == 60 && first.record.passed)

        // --report-dir: the reports go there; the history still records them.
        let elsewhere = state.path + "/ci-reports"
        let second = try DrillReportWriter.record(report: Self.report(start: Self.t0.addingTimeInterval(86400), passed: false),
                                                  stateDirectory: state.path, reportDirectory: elsewhere)
        #expect(second.written.html == elsewhere + "/report.html")
        #expect(try history.records().map(\.passed) == [true, false])
        #expect(try history.records().last?.reports["html"] == elsewhere + "/report.html")
    }

    /// Drills that ran at once and started in the same second each keep their own reports.
    @Test func drillsStartedInTheSameSecondKeepReportsOfTheirOwn() throws {
        let state = try TemporaryDirectory("lifeboat-drills")
        defer { state.remove() }
        let directory = state.path + "/drills/restore-hub/20251124T160000Z"
        let first = try DrillReportWriter.record(report: Self.report(start: Self.t0), stateDirectory: state.path)
        let second = try DrillReportWriter.record(report: Self.report(start: Self.t0, passed: false), stateDirectory: state.path)
        let third = try DrillReportWriter.record(report: Self.report(start: Self.t0), stateDirectory: state.path)
        #expect([first, second, third].map(\.written.json) == [directory, directory + "_2", directory + "_3"].map { $0 + "/report.json" })
        #expect(try DrillReportJSON.parse(readTextFile(first.written.json)).passed)
        #expect(try !DrillReportJSON.parse(readTextFile(second.written.json)).passed)
        #expect(Self.mode(directory + "_2") == 0o700)
        let history = DrillHistory(stateDirectory: state.path, runbook: "restore-hub")
        #expect(Set(try history.records().compactMap { $0.reports["json"] }).count == 3)
    }

    @Test func theChartReadsTheLastThirtyDrillsOldestFirst() throws {
        let state = try TemporaryDirectory("lifeboat-drills")
        defer { state.remove() }
        let history = DrillHistory(stateDirectory: state.path, runbook: "restore-hub")
        for day in 0..<35 {
            try history.append(DrillRecord(Self.report(start: Self.t0.addingTimeInterval(Double(day) * 86400))))
        }
        let records = try history.records()
        #expect(records.count == 30)
        #expect(records.first?.start == Self.t0.addingTimeInterval(5 * 86400))
        #expect(records.last?.start == Self.t0.addingTimeInterval(34 * 86400))
    }
}
