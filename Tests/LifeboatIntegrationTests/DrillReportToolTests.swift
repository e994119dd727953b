import Foundation
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import Testing
import TestSupport

/// The repository's root (the screenshot goes under its .build/test-artifacts).
private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

private func program(_ name: String, install: String) throws -> String {
    let path = ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map(String.init) ?? []
    return try requireProgram(name, in: path + ["/usr/local/bin", "/usr/bin", "/bin"], hint: install)
}

/// A drill with known results: 1 passed and 1 failed optional step, 1 skipped step, 2 checks
/// (1 passed, 1 failed), a breached RTO and a met RPO.
private func knownReport() -> DrillReport {
    let t0 = Date(timeIntervalSince1970: 1_764_000_000)
    func at(_ s: Double) -> Date { t0.addingTimeInterval(s) }
    let steps = [
        StepResult(id: "restore-hub", kind: "restore", started: at(0), ended: at(95), outcome: .passed,
                   detail: "restored backup 20261124T150000Z-ab12", restoredPoint: at(-1200)),
        StepResult(id: "app-healthy", kind: "health", started: at(95), ended: at(400), outcome: .failed, detail: "a check never passed",
                   checks: [CheckResult(kind: "http", target: "http://127.0.0.1:8080/healthz", passed: true, detail: "HTTP 200",
                                        attempts: 3, passedAt: at(130)),
                            CheckResult(kind: "redis", target: "127.0.0.1:6379", passed: false,
                                        detail: "<script>alert('x')</script> connection refused", attempts: 20)]),
        StepResult(id: "smoke", kind: "run", started: at(400), ended: at(412), outcome: .failed, detail: "exited with status 3",
                   output: "FAIL: <b>orders</b> & \"carts\""),
        StepResult(id: "prod-dns", kind: "manual", started: at(412), ended: at(412), outcome: .skipped, detail: "when: recover"),
    ]
    return DrillReport.evaluate(runbook: "restore-hub", mode: .drill, objectives: .init(rto: 120, rpo: 3600), start: t0, end: at(412),
                                steps: steps, criticalSteps: ["restore-hub", "app-healthy"], requiredHealthSteps: ["app-healthy"],
                                stores: [.init(step: "restore-hub", policy: "hub-postgres", backupID: "20261124T150000Z-ab12", point: at(-1200))])
}

private func history(_ count: Int) -> [DrillRecord] {
    (0..<count).map { (i: Int) -> DrillRecord in
        let start = Date(timeIntervalSince1970: 1_764_000_000 - Double(count - i) * 86400)
        let rto = Double(60 + (i * 37) % 120)
        let rpo = Double(600 + (i * 311) % 3600)
        return DrillRecord(runbook: "restore-hub", start: start, end: start.addingTimeInterval(300), passed: i % 5 != 0,
                           rto: rto, rpo: rpo, objectives: DrillReport.Objectives(rto: 120, rpo: 3600))
    }
}

@Suite struct DrillReportsInRealTools {
    /// junitparser (PyPI) reads the JUnit report back: the counts it finds are the report's.
    @Test func junitparserReadsTheCountsBack() async throws {
        try await offThePool {
            let python = try program("python3", install: "Install Python 3 and 'pip install junitparser'.")
            let directory = try TemporaryDirectory("lifeboat-junit")
            defer { directory.remove() }
            let written = try DrillReportWriter.write(report: knownReport(), history: [], to: directory.path)
            let script = """
                import json, sys
                from junitparser import JUnitXml, TestSuite, Failure, Skipped
                xml = JUnitXml.fromfile(sys.argv[1])
                suites = [xml] if isinstance(xml, TestSuite) else list(xml)
                cases = [case for suite in suites for case in suite]
                def has(case, kind): return any(isinstance(r, kind) for r in case.result)
                print(json.dumps({"name": suites[0].name, "tests": suites[0].tests, "failures": suites[0].failures,
                                  "skipped": suites[0].skipped, "errors": suites[0].errors,
                                  "cases": len(cases), "failed": sum(has(c, Failure) for c in cases),
                                  "skippedCases": sum(has(c, Skipped) for c in cases),
                                  "passed": sum(c.is_passed for c in cases)}))
                """
            let run = try ChildProcess.run(python, ["-c", script, written.junit])
            #expect(run.status.isSuccess, "junitparser failed (pip install junitparser): \(run.stderr)")
            let counts = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any] ?? [:]
            // 4 steps + 2 checks + 2 objectives; failed: app-healthy, the redis check, smoke, objective rto;
            // skipped: prod-dns; passed: restore-hub, the http check, objective rpo.
            #expect(counts["name"] as? String == "drill restore-hub")
            #expect(counts["tests"] as? Int == 8 && counts["cases"] as? Int == 8, "\(counts)")
            #expect(counts["failures"] as? Int == 4 && counts["failed"] as? Int == 4, "\(counts)")
            #expect(counts["skipped"] as? Int == 1 && counts["skippedCases"] as? Int == 1, "\(counts)")
            #expect(counts["errors"] as? Int == 0)
            #expect(counts["passed"] as? Int == 3, "\(counts)")
        }
    }

    /// Headless Chromium loads the HTML report: it exits 0, its screenshot is a real PNG, and
    /// nothing reached its console (the page's CSP would report any load it blocked there).
    @Test func chromiumRendersTheHTMLReportWithoutAConsoleMessage() async throws {
        try await offThePool {
            let chromium = try program("chromium", install: "Install the Debian package chromium (apt-get install -y chromium).")
            let directory = try TemporaryDirectory("lifeboat-html")
            defer { directory.remove() }
            let written = try DrillReportWriter.write(report: knownReport(), history: history(35), to: directory.path + "/report")
            let artifacts = repositoryRoot + "/.build/test-artifacts"
            try makeDirectories(artifacts)
            let screenshot = artifacts + "/drill-report.png"
            _ = try? LocalFile.remove(screenshot)  // a previous run's; the test must make its own
            let common = ["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(directory.path)/profile",
                          "--enable-logging=stderr", "--v=0", "--window-size=1280,2000"]
            let shot = try ChildProcess.run(chromium, common + ["--screenshot=\(screenshot)", "file://\(written.html)"])
            print("drill report screenshot: \(screenshot)")
            #expect(shot.status.isSuccess, "\(shot.stderr)")
            let png = try LocalFile.contents(of: screenshot, limit: 8 << 20) ?? []
            #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), "not a PNG: \(screenshot)")
            #expect(png.count > 20_000, "a near-empty screenshot (\(png.count) bytes): \(screenshot)")
            let dump = try ChildProcess.run(chromium, common + ["--dump-dom", "file://\(written.html)"])
            #expect(dump.status.isSuccess, "\(dump.stderr)")
            #expect(dump.stdout.contains("<svg class=\"timeline\"") && dump.stdout.contains("<svg class=\"history\""))
            #expect(!dump.stdout.contains("<script"), "the hostile check detail became an element")
            for output in [shot.stderr, dump.stderr] {
                let console = output.split(separator: "\n").filter { $0.contains(":CONSOLE") }
                #expect(console.isEmpty, "\(console)")
            }
        }
    }
}
