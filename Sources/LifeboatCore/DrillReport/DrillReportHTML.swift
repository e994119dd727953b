import Foundation

/// The HTML report (`report.html`): one self-contained page — inline CSS and SVG, no script, no
/// external reference (its Content-Security-Policy forbids loading anything) — with the verdict,
/// RTO and RPO against the objectives, a timeline of the steps, the steps and checks in a
/// table, and the RTO/RPO history of the runbook's drills. Every text from the run is escaped.
public enum DrillReportHTML {
    /// Drills the history chart shows at most (this one included).
    public static let historyLength = 30

    /// `history`: the runbook's earlier drills, oldest first (this one is added if missing).
    public static func render(_ report: DrillReport, history: [DrillRecord]) -> String {
        let title = "\(report.mode.rawValue) \(report.runbook): \(report.passed ? "passed" : "FAILED")"
        var html = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(h(title))</title>
            <style>\(style)</style>
            </head>
            <body>

            """
        html += header(report)
        html += section("Timeline", timeline(report))
        html += section("Steps and checks", table(report))
        html += section("RTO and RPO history", historyChart(report, history: history))
        html += "<footer>Lifeboat \(h(report.mode.rawValue)) report, \(h(DrillReport.timestamp(report.start))) to \(h(DrillReport.timestamp(report.end))) (UTC)</footer>\n"
        html += "</body>\n</html>\n"
        return html
    }

    static let style = """
        body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1f2328;background:#fff}
        h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:28px 0 8px}
        .verdict{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:600}
        .passed{background:#2e7d32}.failed{background:#c62828}
        .figures{display:flex;gap:16px;margin:12px 0}.figure{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;min-width:200px}
        .figure b{display:block;font-size:20px}.ok{color:#2e7d32}.bad{color:#c62828}.none{color:#57606a}
        ul.failures li{color:#c62828}ul.warnings li{color:#9a6700}
        table{border-collapse:collapse;width:100%}th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
        th{background:#f6f8fa}td.detail{white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,monospace;font-size:12px}
        tr.check td:first-child{padding-left:24px}.o-passed{color:#2e7d32}.o-failed,.o-timed-out{color:#c62828}
        .rto{color:#0550ae}.o-skipped{color:#57606a}.o-cancelled{color:#6d4c41}svg{max-width:100%;height:auto}svg text{font:11px system-ui,sans-serif;fill:#1f2328}
        footer{margin-top:32px;color:#57606a;font-size:12px}
        """

    static func h(_ text: String) -> String { ReportText.escape(text) }
    static func a(_ text: String) -> String { ReportText.escape(text, attribute: true) }
    static func n(_ value: Double) -> String { ReportText.decimal(value, places: 1) }

    static func section(_ title: String, _ body: String) -> String { "<section>\n<h2>\(h(title))</h2>\n\(body)</section>\n" }

    static let colours: [StepResult.Outcome: String] = [
        .passed: "#2e7d32", .failed: "#c62828", .timedOut: "#ef6c00", .skipped: "#9e9e9e", .cancelled: "#6d4c41",
    ]

    // MARK: Header

    static func header(_ report: DrillReport) -> String {
        var html = "<header>\n<h1>\(h(report.mode.rawValue)) <code>\(h(report.runbook))</code> "
        html += "<span class=\"verdict \(report.passed ? "passed" : "failed")\">\(report.passed ? "PASSED" : "FAILED")</span></h1>\n"
        html += "<div>\(h(DrillReport.timestamp(report.start))) to \(h(DrillReport.timestamp(report.end))) UTC, "
        html += "\(h(DrillReport.duration(report.end.timeIntervalSince(report.start))))</div>\n"
        html += "<div class=\"figures\">\n"
        html += figure("RTO", measured: report.rto, objective: report.objectives.rto, met: report.rtoMet)
        var rpoNote = ""
        if let worst = report.stores.filter({ $0.rpo != nil }).max(by: { $0.rpo! < $1.rpo! }), let point = worst.point {
            rpoNote = "worst: \(worst.policy), restored to \(DrillReport.timestamp(point))"
        }
        html += figure("RPO", measured: report.rpo, objective: report.objectives.rpo, met: report.rpoMet, note: rpoNote)
        html += "</div>\n"
        if !report.failures.isEmpty {
            html += "<ul class=\"failures\">\n" + report.failures.map { "<li>\(h($0))</li>\n" }.joined() + "</ul>\n"
        }
        if !report.warnings.isEmpty {
            html += "<ul class=\"warnings\">\n" + report.warnings.map { "<li>\(h($0))</li>\n" }.joined() + "</ul>\n"
        }
        if !report.stores.isEmpty {
            html += "<table class=\"stores\">\n<tr><th>Restored</th><th>Step</th><th>Backup</th><th>Point (UTC)</th><th>RPO</th></tr>\n"
            for store in report.stores {
                html += "<tr><td>\(h(store.policy))</td><td>\(h(store.step))</td><td>\(h(store.backupID ?? "—"))</td>"
                html += "<td>\(h(store.point.map(DrillReport.timestamp) ?? "not restored"))</td>"
                html += "<td>\(h(store.rpo.map(DrillReport.duration) ?? "—"))</td></tr>\n"
            }
            html += "</table>\n"
        }
        return html + "</header>\n"
    }

    static func figure(_ name: String, measured: Double?, objective: Double?, met: Bool?, note: String = "") -> String {
        let value = measured.map(DrillReport.duration) ?? "not measured"
        let verdict: String
        switch met {
        case .some(true): verdict = "<span class=\"ok\">within the objective \(h(DrillReport.duration(objective ?? 0)))</span>"
        case .some(false): verdict = "<span class=\"bad\">objective \(h(DrillReport.duration(objective ?? 0))) breached</span>"
        case nil: verdict = "<span class=\"none\">no objective</span>"
        }
        let noteHTML = note.isEmpty ? "" : "<br><small>\(h(note))</small>"
        return "<div class=\"figure\">\(h(name))<b>\(h(value))</b>\(verdict)\(noteHTML)</div>\n"
    }

    // MARK: Timeline

    static func rows(_ steps: [StepResult], depth: Int = 0) -> [(step: StepResult, depth: Int)] {
        steps.flatMap { [($0, depth)] + rows($0.steps, depth: depth + 1) }
    }

    static func timeline(_ report: DrillReport) -> String {
        let rows = rows(report.steps)
        guard !rows.isEmpty else { return "<p>No step ran.</p>\n" }
        let start = report.start
        let span = max(1, ([report.end] + rows.map(\.step.ended)).map { $0.timeIntervalSince(start) }.max() ?? 1)
        let left = 220.0, width = 960.0, right = 20.0, top = 28.0, rowHeight = 26.0
        let plot = width - left - right
        let height = top + rowHeight * Double(rows.count) + 12
        func x(_ date: Date) -> Double { left + plot * min(1, max(0, date.timeIntervalSince(start) / span)) }
        func x(seconds: Double) -> Double { left + plot * min(1, max(0, seconds / span)) }

        var svg = "<svg class=\"timeline\" viewBox=\"0 0 \(n(width)) \(n(height))\" width=\"\(n(width))\" height=\"\(n(height))\" role=\"img\" aria-label=\"Timeline of the steps\">\n"
        for tick in 0...4 {
            let seconds = span * Double(tick) / 4
            let tx = x(seconds: seconds)
            svg += "<line x1=\"\(n(tx))\" y1=\"\(n(top - 6))\" x2=\"\(n(tx))\" y2=\"\(n(height - 8))\" stroke=\"#d0d7de\"/>"
            svg += "<text x=\"\(n(tx))\" y=\"\(n(top - 10))\" text-anchor=\"middle\">+\(h(DrillReport.duration(seconds)))</text>\n"
        }
        for (index, row) in rows.enumerated() {
            let y = top + rowHeight * Double(index)
            let step = row.step
            svg += "<text x=\"\(n(8 + 14 * Double(row.depth)))\" y=\"\(n(y + 16))\">\(h(step.id))</text>"
            let x0 = x(step.started), x1 = max(x(step.ended), x(step.started) + 2)
            let colour = colours[step.outcome] ?? "#9e9e9e"
            svg += "<rect x=\"\(n(x0))\" y=\"\(n(y + 5))\" width=\"\(n(x1 - x0))\" height=\"16\" rx=\"2\" fill=\"\(colour)\">"
            svg += "<title>\(h("\(step.id) (\(step.kind)): \(step.outcome.rawValue), \(DrillReport.duration(step.seconds))" + (step.detail.map { " — \($0)" } ?? "")))</title></rect>\n"
            for check in step.checks {
                guard let passedAt = check.passedAt else { continue }
                let cx = x(passedAt)
                svg += "<path d=\"M\(n(cx)) \(n(y + 3))l5 10l-5 10l-5 -10z\" fill=\"#fff\" stroke=\"#0b3d0f\" stroke-width=\"1.5\">"
                svg += "<title>\(h("\(check.kind) \(check.target) passed at +\(DrillReport.duration(passedAt.timeIntervalSince(start)))"))</title></path>\n"
            }
        }
        if let rto = report.rto {
            let rx = x(seconds: rto)
            svg += "<line x1=\"\(n(rx))\" y1=\"\(n(top - 4))\" x2=\"\(n(rx))\" y2=\"\(n(height - 8))\" stroke=\"#0550ae\" stroke-width=\"2\" stroke-dasharray=\"6 3\"><title>RTO \(h(DrillReport.duration(rto)))</title></line>\n"
        }
        if let objective = report.objectives.rto, objective <= span {
            let ox = x(seconds: objective)
            svg += "<line x1=\"\(n(ox))\" y1=\"\(n(top - 4))\" x2=\"\(n(ox))\" y2=\"\(n(height - 8))\" stroke=\"#c62828\" stroke-width=\"1.5\" stroke-dasharray=\"2 3\"><title>RTO objective \(h(DrillReport.duration(objective)))</title></line>\n"
        }
        svg += "</svg>\n"
        var legend = "<p class=\"legend\">"
        for outcome in StepResult.Outcome.allCases {
            legend += "<svg width=\"12\" height=\"12\" aria-hidden=\"true\"><rect width=\"12\" height=\"12\" fill=\"\(colours[outcome] ?? "#9e9e9e")\"/></svg> \(h(outcome.rawValue)) "
        }
        legend += "◇ a check passed · <span class=\"rto\">- - -</span> RTO"
        if report.objectives.rto != nil { legend += " · <span class=\"bad\">· · ·</span> RTO objective" }
        return svg + legend + "</p>\n"
    }

    // MARK: Table

    static func table(_ report: DrillReport) -> String {
        var html = "<table class=\"steps\">\n<tr><th>Step</th><th>Kind</th><th>Outcome</th><th>Started; a check: passed (UTC)</th><th>Duration; a check: to pass</th><th>Attempts</th><th>Detail</th></tr>\n"
        for row in rows(report.steps) {
            let step = row.step
            let indent = String(repeating: "↳ ", count: row.depth)
            html += "<tr class=\"step\"><td>\(h(indent + step.id))\(report.isCritical(step) ? "" : " <small>(optional)</small>")</td>"
            html += "<td>\(h(step.kind))</td><td class=\"o-\(a(step.outcome.rawValue))\">\(h(step.outcome.rawValue))</td>"
            html += "<td>\(h(DrillReport.timestamp(step.started)))</td><td>\(h(DrillReport.duration(step.seconds)))</td>"
            html += "<td>\(step.attempts)</td>"
            let detail = [step.detail ?? "", step.output.map { "output:\n\($0)" } ?? ""].filter { !$0.isEmpty }.joined(separator: "\n")
            html += "<td class=\"detail\">\(h(detail))</td></tr>\n"
            for check in step.checks {
                let outcome = check.passed ? "passed" : "failed"
                html += "<tr class=\"check\"><td>\(h("\(check.kind) \(check.target)"))</td><td>check</td>"
                html += "<td class=\"o-\(outcome)\">\(outcome)</td>"
                html += "<td>\(h(check.passedAt.map(DrillReport.timestamp) ?? "—"))</td>"
                html += "<td>\(h(check.passedAt.map { DrillReport.duration($0.timeIntervalSince(step.started)) } ?? "—"))</td>"
                html += "<td>\(check.attempts)</td><td class=\"detail\">\(h(check.detail))</td></tr>\n"
            }
        }
        return html + "</table>\n"
    }

    // MARK: History

    /// The drills the chart shows: the last ones of `history` and this one, oldest first.
    static func chartRecords(_ report: DrillReport, history: [DrillRecord]) -> [DrillRecord] {
        var records = history.filter { $0.start != report.start || $0.runbook != report.runbook }
        records.append(DrillRecord(report))
        return Array(records.suffix(historyLength))
    }

    static func historyChart(_ report: DrillReport, history: [DrillRecord]) -> String {
        let records = chartRecords(report, history: history)
        var html = "<p>The last \(records.count) drill\(records.count == 1 ? "" : "s") of this runbook, this one last; red points: failed drills; dashed: the objective.</p>\n"
        let width = 960.0, panelHeight = 200.0, gap = 36.0
        let height = 2 * panelHeight + gap + 30
        html += "<svg class=\"history\" viewBox=\"0 0 \(n(width)) \(n(height))\" width=\"\(n(width))\" height=\"\(n(height))\" role=\"img\" aria-label=\"RTO and RPO of the last drills\">\n"
        html += panel("RTO", records: records, value: \.rto, objective: report.objectives.rto, top: 20, width: width, height: panelHeight)
        html += panel("RPO", records: records, value: \.rpo, objective: report.objectives.rpo, top: 20 + panelHeight + gap,
                      width: width, height: panelHeight)
        html += "</svg>\n"
        return html
    }

    static func panel(_ name: String, records: [DrillRecord], value: KeyPath<DrillRecord, Double?>, objective: Double?,
                      top: Double, width: Double, height: Double) -> String {
        let left = 70.0, right = 20.0, bottom = 22.0
        let plotWidth = width - left - right, plotHeight = height - bottom
        let values = records.compactMap { $0[keyPath: value] }
        let maximum = max(1, ((values + [objective].compactMap { $0 }).max() ?? 1) * 1.1)
        func x(_ index: Int) -> Double {
            records.count <= 1 ? left + plotWidth / 2 : left + plotWidth * Double(index) / Double(records.count - 1)
        }
        func y(_ seconds: Double) -> Double { top + plotHeight * (1 - min(1, seconds / maximum)) }

        var svg = "<g class=\"panel\">\n<text x=\"\(n(left))\" y=\"\(n(top - 6))\" font-weight=\"600\">\(h(name))</text>\n"
        svg += "<rect x=\"\(n(left))\" y=\"\(n(top))\" width=\"\(n(plotWidth))\" height=\"\(n(plotHeight))\" fill=\"#fafbfc\" stroke=\"#d0d7de\"/>\n"
        for tick in 0...2 {
            let seconds = maximum * Double(tick) / 2
            svg += "<text x=\"\(n(left - 6))\" y=\"\(n(y(seconds) + 4))\" text-anchor=\"end\">\(h(DrillReport.duration(seconds)))</text>\n"
        }
        if let first = records.first, let last = records.last {
            svg += "<text x=\"\(n(left))\" y=\"\(n(top + height - 6))\">\(h(DrillReport.timestamp(first.start)))</text>\n"
            if records.count > 1 {
                svg += "<text x=\"\(n(left + plotWidth))\" y=\"\(n(top + height - 6))\" text-anchor=\"end\">\(h(DrillReport.timestamp(last.start)))</text>\n"
            }
        }
        if let objective {
            svg += "<line x1=\"\(n(left))\" y1=\"\(n(y(objective)))\" x2=\"\(n(left + plotWidth))\" y2=\"\(n(y(objective)))\" stroke=\"#c62828\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"><title>\(h("\(name) objective \(DrillReport.duration(objective))"))</title></line>\n"
        }
        let points = records.indices.compactMap { index in records[index][keyPath: value].map { (index, $0) } }
        if points.count > 1 {
            svg += "<polyline fill=\"none\" stroke=\"#0550ae\" stroke-width=\"2\" points=\"\(points.map { "\(n(x($0.0))),\(n(y($0.1)))" }.joined(separator: " "))\"/>\n"
        }
        for (index, seconds) in points {
            let record = records[index]
            svg += "<circle cx=\"\(n(x(index)))\" cy=\"\(n(y(seconds)))\" r=\"4\" fill=\"\(record.passed ? "#0550ae" : "#c62828")\">"
            svg += "<title>\(h("\(DrillReport.timestamp(record.start)): \(name) \(DrillReport.duration(seconds)), \(record.passed ? "passed" : "failed")"))</title></circle>\n"
        }
        if points.isEmpty {
            svg += "<text x=\"\(n(left + plotWidth / 2))\" y=\"\(n(top + plotHeight / 2))\" text-anchor=\"middle\">no \(h(name)) measured yet</text>\n"
        }
        return svg + "</g>\n"
    }
}
