import Foundation
import Testing
@testable import LifeboatCore

/// A drill's facts at fixed times: it starts at `t0`; a restore, a health step with two checks,
/// an optional command.
enum DrillFixture {
    static let t0 = Date(timeIntervalSince1970: 1_764_000_000)  // whole seconds: JSON keeps them exactly
    static func at(_ seconds: Double) -> Date { t0.addingTimeInterval(seconds) }

    static func steps(healthOutcome: StepResult.Outcome = .passed, secondCheckPassesAt: Double? = 300,
                      optionalOutcome: StepResult.Outcome = .passed, restoreOutcome: StepResult.Outcome = .passed,
                      detail: String = "exited with status 0") -> [StepResult] {
        [
            StepResult(id: "restore-hub", kind: "restore", started: at(0), ended: at(120), outcome: restoreOutcome,
                       detail: "restored backup 20261124T150000Z-ab12"),
            StepResult(id: "app-healthy", kind: "health", started: at(120), ended: at(secondCheckPassesAt ?? 420), outcome: healthOutcome,
                       checks: [CheckResult(kind: "http", target: "http://127.0.0.1:8080/healthz", passed: true, detail: "HTTP 200",
                                            attempts: 2, passedAt: at(150)),
                                CheckResult(kind: "postgres", target: "127.0.0.1:5432", passed: secondCheckPassesAt != nil,
                                            detail: secondCheckPassesAt != nil ? "1" : "connection refused", attempts: 5,
                                            passedAt: secondCheckPassesAt.map(at))]),
            StepResult(id: "smoke", kind: "run", started: at(420), ended: at(430), outcome: optionalOutcome, detail: detail),
        ]
    }

    static func store(point: Double?) -> DrillReport.RestoredStore {
        DrillReport.RestoredStore(step: "restore-hub", policy: "hub-postgres", backupID: "20261124T150000Z-ab12",
                                  point: point.map(at))
    }

    static func report(objectives: DrillReport.Objectives = .init(rto: 600, rpo: 3600), steps: [StepResult] = steps(),
                       stores: [DrillReport.RestoredStore] = [store(point: -1800)]) -> DrillReport {
        DrillReport.evaluate(runbook: "restore-hub", mode: .drill, objectives: objectives, start: t0, end: at(430), steps: steps,
                             criticalSteps: ["restore-hub", "app-healthy"], requiredHealthSteps: ["app-healthy"], stores: stores)
    }
}

@Suite struct DrillReportEvaluation {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var objectives: DrillReport.Objectives
        var steps: [StepResult]
        var stores: [DrillReport.RestoredStore]
        var passed: Bool
        var rto: Double?
        var rpo: Double?
        var failures: [String]
        var warnings: Int = 0
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "everything within the objectives", objectives: .init(rto: 600, rpo: 3600), steps: DrillFixture.steps(),
             stores: [DrillFixture.store(point: -1800)], passed: true, rto: 300, rpo: 1800, failures: []),
        Case(name: "breached RTO", objectives: .init(rto: 240, rpo: 3600), steps: DrillFixture.steps(),
             stores: [DrillFixture.store(point: -1800)], passed: false, rto: 300, rpo: 1800,
             failures: ["RTO 5m exceeds the objective 4m"]),
        Case(name: "breached RPO", objectives: .init(rto: 600, rpo: 3600), steps: DrillFixture.steps(),
             stores: [DrillFixture.store(point: -7200)], passed: false, rto: 300, rpo: 7200,
             failures: ["RPO 2h exceeds the objective 1h (hub-postgres restored to 2025-11-24T14:00:00Z)"]),
        Case(name: "failed critical step", objectives: .init(rto: 600, rpo: 3600),
             steps: DrillFixture.steps(healthOutcome: .failed, secondCheckPassesAt: nil),
             stores: [DrillFixture.store(point: -1800)], passed: false, rto: nil, rpo: 1800,
             failures: ["step 'app-healthy' (health) failed",
                        "RTO not measured (objective 10m): the postgres check 127.0.0.1:5432 of 'app-healthy' never passed"]),
        Case(name: "optional failure does not fail the drill", objectives: .init(rto: 600, rpo: 3600),
             steps: DrillFixture.steps(optionalOutcome: .timedOut, detail: "timed out after 10s"),
             stores: [DrillFixture.store(point: -1800)], passed: true, rto: 300, rpo: 1800, failures: [], warnings: 1),
        Case(name: "no objectives", objectives: .init(), steps: DrillFixture.steps(),
             stores: [DrillFixture.store(point: -90000)], passed: true, rto: 300, rpo: 90000, failures: []),
        Case(name: "a store not restored", objectives: .init(rpo: 3600), steps: DrillFixture.steps(restoreOutcome: .failed),
             stores: [DrillFixture.store(point: nil)], passed: false, rto: 300, rpo: nil,
             failures: ["step 'restore-hub' (restore) failed: restored backup 20261124T150000Z-ab12",
                        "RPO not measured (objective 1h): hub-postgres was not restored (step 'restore-hub')"]),
    ]

    @Test(arguments: cases) func verdictRTOAndRPO(_ c: Case) {
        let report = DrillFixture.report(objectives: c.objectives, steps: c.steps, stores: c.stores)
        #expect(report.passed == c.passed)
        #expect(report.rto == c.rto)
        #expect(report.rpo == c.rpo)
        #expect(report.failures == c.failures)
        #expect(report.warnings.count == c.warnings, "\(report.warnings)")
    }

    @Test func theWorstStoreIsTheRPOAndEachBreachIsNamed() {
        let stores = [DrillFixture.store(point: -600),
                      DrillReport.RestoredStore(step: "restore-assets", policy: "assets", point: DrillFixture.at(-5400))]
        let report = DrillFixture.report(objectives: .init(rpo: 3600), stores: stores)
        #expect(report.rpo == 5400)
        #expect(report.stores.map(\.rpo) == [600, 5400])
        #expect(report.failures == ["RPO 1h30m exceeds the objective 1h (assets restored to 2025-11-24T14:30:00Z)"])
        #expect(report.rpoMet == false)
    }

    @Test func criticalStepsComeFromTheRunbookAndItsMode() {
        let runbook = Runbook(name: "hub", file: "runbooks/hub.yaml", objectives: Objectives(rto: ConfigDuration(seconds: 600)), steps: [
            RunbookStep(id: "app-healthy", kind: .health(HealthStep(checks: []))),
            RunbookStep(id: "group", kind: .parallel([
                RunbookStep(id: "smoke", kind: .wait(ConfigDuration(seconds: 1)), critical: false),
                RunbookStep(id: "prod-only", kind: .health(HealthStep(checks: [])), when: .recover),
            ])),
        ])
        let report = DrillReport.evaluate(runbook: runbook, mode: .drill, start: DrillFixture.t0, end: DrillFixture.at(430),
                                          steps: DrillFixture.steps(), stores: [])
        #expect(report.criticalSteps == ["app-healthy", "group"])
        #expect(report.objectives == .init(rto: 600))
        #expect(report.rto == 300)
        #expect(report.passed)
    }
}

@Suite struct DrillReportRenderers {
    @Test func jsonRoundTripsWithSortedKeysAndISODates() throws {
        let report = DrillFixture.report(stores: [DrillFixture.store(point: -7200)])
        let text = try DrillReportJSON.render(report)
        #expect(try DrillReportJSON.parse(text) == report)
        #expect(text.contains("\"start\" : \"2025-11-24T16:00:00Z\""))
        let keys = text.split(separator: "\n").filter { $0.hasPrefix("  \"") }.map { $0.split(separator: "\"")[1] }
        #expect(keys == keys.sorted() && keys.contains("failures") && keys.contains("rpo"))
    }

    @Test func junitIsWellFormedWithTheRightCounts() throws {
        var steps = DrillFixture.steps(optionalOutcome: .failed, detail: "exit 1 & <oops> \u{1}")
        steps.append(StepResult(id: "prod-only", kind: "manual", started: DrillFixture.at(430), ended: DrillFixture.at(430),
                                outcome: .skipped, detail: "when: recover"))
        let report = DrillFixture.report(objectives: .init(rto: 240), steps: steps)
        let xml = DrillReportJUnit.render(report)
        let root = try XMLNode.parse(xml)
        #expect(root.name == "testsuite")
        // 4 steps, 2 checks, 2 objectives; failed: smoke (optional) and objective rto; skipped: prod-only and objective rpo.
        let cases = root.all("testcase")
        #expect(cases.count == 8)
        #expect(xml.contains("<testsuite name=\"drill restore-hub\" tests=\"8\" failures=\"2\" errors=\"0\" skipped=\"2\""))
        #expect(cases.filter { $0.child("failure") != nil }.count == 2)
        #expect(cases.filter { $0.child("skipped") != nil }.count == 2)
        #expect(xml.contains("classname=\"app-healthy\" name=\"check http http://127.0.0.1:8080/healthz\" time=\"30.000\""))
        #expect(xml.contains("<failure message=\"RTO 5m exceeds the objective 4m\" type=\"objective\">"))
        #expect(xml.contains("message=\"optional step failed: exit 1 &amp; &lt;oops&gt; \u{FFFD}\" type=\"optional\""))
        #expect(!xml.contains("\u{1}"))
    }

    @Test func htmlIsSelfContainedAndEscapesHostileText() {
        let hostile = "<script>alert(1)</script><img src=\"https://evil.example/x.png\"> & 'quotes'"
        let steps = DrillFixture.steps(optionalOutcome: .failed, detail: hostile)
        let report = DrillFixture.report(steps: steps)
        let history = (0..<40).map { (i: Int) -> DrillRecord in
            let start: Date = DrillFixture.at(Double(i - 40) * 86400)
            let rto = Double(200 + 5 * i)
            let rpo = Double(1000 + 60 * i)
            return DrillRecord(runbook: "restore-hub", start: start, end: start.addingTimeInterval(400), passed: i % 7 != 0,
                               rto: rto, rpo: rpo, objectives: DrillReport.Objectives(rto: 600, rpo: 3600))
        }
        let html = DrillReportHTML.render(report, history: history)
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        for forbidden in ["<script", "<img", "src=\"", "href=\"", "url(", "@import", "<link", "<iframe", "<object"] {
            #expect(!html.lowercased().contains(forbidden), "\(forbidden)")
        }
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=&quot;https://evil.example/x.png&quot;&gt; &amp; &#39;quotes&#39;"))
        #expect(html.contains("<svg class=\"timeline\""))
        #expect(html.contains("<svg class=\"history\""))
        // The chart shows the last 30 drills, this one last: 30 points for RTO and 30 for RPO.
        #expect(html.components(separatedBy: "<circle ").count - 1 == 60)
        #expect(DrillReportHTML.chartRecords(report, history: history).last?.start == report.start)
        // Deterministic: the same report renders the same bytes.
        #expect(DrillReportHTML.render(report, history: history) == html)
    }

    @Test func historyLinesRoundTripAndATornLineIsSkipped() throws {
        let report = DrillFixture.report()
        let record = DrillRecord(report, reports: ["json": "/s/report.json"])
        let text = try record.line() + "{\"runbook\": \"restore-h"
        let parsed = DrillRecord.parseHistory(Data(text.utf8))
        #expect(parsed.records == [record])
        #expect(parsed.unreadable == 1)
        #expect(record.rto == 300 && record.rpo == 1800 && record.passed)
    }
}
