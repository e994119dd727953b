import Foundation

/// The JUnit XML report (`report.xml`), for CI systems: one `<testsuite name="drill RUNBOOK">`
/// with a test case per step and per check (classname: the step's id), and `objective rto`,
/// `objective rpo`. A failed, timed-out or cancelled step or check is a `<failure>` (an optional
/// step's too, typed `optional`), a skipped one `<skipped/>`, an objective with no value set
/// is skipped, a breached or unmeasured one a failure.
public enum DrillReportJUnit {
    struct TestCase {
        var classname: String
        var name: String
        var seconds: Double
        enum Result { case passed, failed(message: String, type: String, text: String), skipped(message: String) }
        var result: Result
    }

    public static func render(_ report: DrillReport) -> String {
        let cases = testCases(report)
        let failures = cases.filter { if case .failed = $0.result { return true } else { return false } }.count
        let skipped = cases.filter { if case .skipped = $0.result { return true } else { return false } }.count
        let e = { (text: String) in ReportText.escape(text, attribute: true) }
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        xml += "<testsuite name=\"\(e("\(report.mode.rawValue) \(report.runbook)"))\" tests=\"\(cases.count)\" failures=\"\(failures)\""
        xml += " errors=\"0\" skipped=\"\(skipped)\" time=\"\(ReportText.decimal(report.end.timeIntervalSince(report.start), places: 3))\""
        xml += " timestamp=\"\(DrillReport.timestamp(report.start))\">\n"
        xml += "  <properties>\n"
        xml += "    <property name=\"verdict\" value=\"\(report.passed ? "passed" : "failed")\"/>\n"
        for (name, value) in [("rto", report.rto), ("rpo", report.rpo), ("objective.rto", report.objectives.rto),
                              ("objective.rpo", report.objectives.rpo)] {
            if let value { xml += "    <property name=\"\(name)\" value=\"\(ReportText.decimal(value, places: 3))\"/>\n" }
        }
        xml += "  </properties>\n"
        for test in cases {
            xml += "  <testcase classname=\"\(e(test.classname))\" name=\"\(e(test.name))\" time=\"\(ReportText.decimal(max(0, test.seconds), places: 3))\""
            switch test.result {
            case .passed:
                xml += "/>\n"
            case .skipped(let message):
                xml += ">\n    <skipped message=\"\(e(message))\"/>\n  </testcase>\n"
            case .failed(let message, let type, let text):
                xml += ">\n    <failure message=\"\(e(message))\" type=\"\(e(type))\">\(ReportText.escape(text))</failure>\n  </testcase>\n"
            }
        }
        xml += "</testsuite>\n"
        return xml
    }

    static func testCases(_ report: DrillReport) -> [TestCase] {
        var cases: [TestCase] = []
        for step in report.allSteps {
            let detail = step.detail ?? ""
            let result: TestCase.Result
            switch step.outcome {
            case .passed: result = .passed
            case .skipped: result = .skipped(message: detail.isEmpty ? "skipped" : detail)
            case .failed, .timedOut, .cancelled:
                let critical = report.isCritical(step)
                let message = "\(critical ? "" : "optional step ")\(step.outcome.text)" + (detail.isEmpty ? "" : ": \(detail)")
                result = .failed(message: message, type: critical ? step.outcome.rawValue : "optional",
                                 text: [detail, step.output ?? ""].filter { !$0.isEmpty }.joined(separator: "\n"))
            }
            cases.append(TestCase(classname: step.id, name: "\(step.kind) \(step.id)", seconds: step.seconds, result: result))
            for check in step.checks {
                let checkResult: TestCase.Result
                if check.passed {
                    checkResult = .passed
                } else if step.outcome == .skipped {
                    checkResult = .skipped(message: "the step was skipped")
                } else {
                    checkResult = .failed(message: check.detail, type: report.isCritical(step) ? "check" : "optional",
                                          text: "\(check.attempts) attempt\(check.attempts == 1 ? "" : "s"): \(check.detail)")
                }
                let seconds = (check.passedAt ?? step.ended).timeIntervalSince(step.started)
                cases.append(TestCase(classname: step.id, name: "check \(check.kind) \(check.target)", seconds: seconds,
                                      result: checkResult))
            }
        }
        cases.append(objective("rto", measured: report.rto, objective: report.objectives.rto, met: report.rtoMet, report: report))
        cases.append(objective("rpo", measured: report.rpo, objective: report.objectives.rpo, met: report.rpoMet, report: report))
        return cases
    }

    static func objective(_ name: String, measured: Double?, objective: Double?, met: Bool?, report: DrillReport) -> TestCase {
        let result: TestCase.Result
        if objective == nil || met == nil {
            result = .skipped(message: "no \(name) objective" + (measured.map { " (measured \(DrillReport.duration($0)))" } ?? ""))
        } else if met == true {
            result = .passed
        } else {
            let causes = report.failures.filter { $0.hasPrefix(name.uppercased() + " ") }
            let message = causes.first ?? "\(name.uppercased()) objective breached"
            result = .failed(message: message, type: "objective", text: causes.joined(separator: "\n"))
        }
        return TestCase(classname: "objectives", name: "objective \(name)", seconds: measured ?? 0, result: result)
    }
}
