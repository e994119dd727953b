import Foundation
import LifeboatCore
import LifeboatIO
import Testing
import TestSupport
import Yams

/// The repository's root, for the files under deploy/.
private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// A program the export tests run (promtool, kubernetes-validate, systemd-analyze): on PATH or
/// in the usual places. Missing, the test fails (on CI and off it), naming what to install.
private func tool(_ name: String, install: String) throws -> String {
    let path = ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map(String.init) ?? []
    return try requireProgram(name, in: path + ["/usr/local/bin", "/usr/bin", "/bin"], hint: install)
}

private func promtool() throws -> String {
    try tool("promtool", install: "Install the Debian package prometheus (apt-get install -y prometheus), which provides promtool.")
}

private func run(_ program: String, _ arguments: [String], environment: [String: String] = [:]) throws
    -> (status: ChildProcess.Termination, stdout: String, stderr: String) {
    try ChildProcess.run(program, arguments, environment: environment)
}

// MARK: Alert rules and dashboard

@Suite struct AlertRulesAndDashboard {
    static let rules = repositoryRoot + "/deploy/prometheus/lifeboat-rules.yml"
    static let ruleTests = repositoryRoot + "/deploy/prometheus/lifeboat-rules.test.yml"
    static let dashboard = repositoryRoot + "/deploy/grafana/lifeboat.json"

    @Test func promtoolChecksTheRulesAndTheirUnitTestsPass() throws {
        let check = try run(try promtool(), ["check", "rules", Self.rules])
        #expect(check.status.isSuccess, "\(check.stdout)\(check.stderr)")
        let test = try run(try promtool(), ["test", "rules", Self.ruleTests])
        #expect(test.status.isSuccess, "\(test.stdout)\(test.stderr)")
    }

    @Test func everyAlertOfTheIssueIsThereAndTestedFiringAndNot() throws {
        let alerts = try Self.ruleEntries().compactMap { $0["alert"] as? String }
        #expect(Set(alerts) == ["BackupStale", "LastRunFailed", "WALArchivingFailing", "WALArchivingLagging", "DrillFailed",
                                "DrillObjectiveBreached", "RepositoryUnreachable", "SchedulerDown"])
        for rule in try Self.ruleEntries() {
            let labels = rule["labels"] as? [String: Any]
            let annotations = rule["annotations"] as? [String: Any]
            #expect(labels?["severity"] != nil && annotations?["summary"] != nil && annotations?["description"] != nil, "\(rule)")
        }
        // The unit tests: each alert has an evaluation expecting it and one expecting nothing.
        let tests = try Yams.load(yaml: String(contentsOfFile: Self.ruleTests, encoding: .utf8)) as? [String: Any]
        let evaluations = (tests?["tests"] as? [[String: Any]] ?? []).flatMap { $0["alert_rule_test"] as? [[String: Any]] ?? [] }
        for alert in Set(alerts) {
            let mine = evaluations.filter { $0["alertname"] as? String == alert }
            #expect(mine.contains { ($0["exp_alerts"] as? [Any])?.isEmpty == false }, "\(alert) is never expected to fire")
            #expect(mine.contains { ($0["exp_alerts"] as? [Any])?.isEmpty == true }, "\(alert) is never expected to stay quiet")
        }
    }

    @Test func rulesAndDashboardUseOnlyTheCataloguesMetrics() throws {
        let allowed = MetricCatalogue.seriesNames.union(["up"])  // up: Prometheus's own, per scrape job
        var used: [String: String] = [:]
        for expression in try Self.ruleEntries().compactMap({ $0["expr"] as? String }) + (try Self.dashboardExpressions()) {
            for name in try PromQLNames.metrics(in: expression) { used[name] = expression }
        }
        #expect(used.count >= 20, "\(used.keys.sorted())")
        for (name, expression) in used.sorted(by: { $0.key < $1.key }) {
            #expect(allowed.contains(name), "'\(name)' in \(expression) is not in MetricCatalogue")
        }
    }

    /// promtool parses the dashboard's queries too, as recording rules.
    @Test func dashboardQueriesAreValidPromQL() throws {
        let expressions = try Self.dashboardExpressions().filter { !$0.hasPrefix("label_values(") }
        #expect(expressions.count >= 15)
        let directory = try TemporaryDirectory("lifeboat-dashboard")
        defer { directory.remove() }
        var text = "groups:\n  - name: dashboard\n    rules:\n"
        for (index, expression) in expressions.enumerated() {
            let quoted = "'" + expression.replacingOccurrences(of: "'", with: "''") + "'"
            text += "      - record: dashboard:query\(index)\n        expr: \(quoted)\n"
        }
        let file = try directory.write("queries.yml", text)
        let check = try run(try promtool(), ["check", "rules", file])
        #expect(check.status.isSuccess, "\(check.stdout)\(check.stderr)")
    }

    @Test func dashboardHasTheDataSourceInputAndThePolicyVariable() throws {
        let json = try Self.dashboardJSON()
        #expect((json["schemaVersion"] as? Int ?? 0) >= 39)
        let inputs = json["__inputs"] as? [[String: Any]] ?? []
        #expect(inputs.contains { $0["name"] as? String == "DS_PROMETHEUS" })
        let variables = (json["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
        let policy = variables.first { $0["name"] as? String == "policy" }
        #expect(policy?["definition"] as? String == "label_values(lifeboat_last_run_success, policy)")
        for panel in json["panels"] as? [[String: Any]] ?? [] where panel["type"] as? String != "row" {
            #expect((panel["datasource"] as? [String: Any])?["uid"] as? String == "${DS_PROMETHEUS}", "\(panel["title"] ?? "")")
        }
    }

    static func ruleEntries() throws -> [[String: Any]] {
        let document = try Yams.load(yaml: String(contentsOfFile: rules, encoding: .utf8)) as? [String: Any]
        let groups = document?["groups"] as? [[String: Any]] ?? []
        return groups.flatMap { $0["rules"] as? [[String: Any]] ?? [] }
    }

    static func dashboardJSON() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: dashboard))
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    /// Every panel target's `expr` and every query variable's query.
    static func dashboardExpressions() throws -> [String] {
        var found: [String] = []
        func walk(_ value: Any) {
            if let object = value as? [String: Any] {
                if let targets = object["targets"] as? [[String: Any]] { found += targets.compactMap { $0["expr"] as? String } }
                if object["type"] as? String == "query", let definition = object["definition"] as? String { found.append(definition) }
                object.values.forEach(walk)
            } else if let array = value as? [Any] {
                array.forEach(walk)
            }
        }
        walk(try dashboardJSON())
        return found
    }
}

/// The metric names a PromQL expression (or Grafana's `label_values(METRIC, LABEL)`) uses:
/// the identifiers left when strings, label matchers `{…}`, ranges `[…]`, numbers and
/// durations, Grafana variables (`$policy`), grouping label lists (`by (…)`, `on (…)`, …),
/// keywords and the names of functions and aggregations are taken out. An identifier followed
/// by `(` that is no PromQL function is an error, not a metric.
enum PromQLNames {
    static let functions: Set<String> = [
        "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "day_of_month",
        "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp", "floor", "histogram_avg",
        "histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev", "histogram_stdvar",
        "histogram_sum", "holt_winters", "double_exponential_smoothing", "hour", "idelta", "increase", "irate",
        "label_join", "label_replace", "ln", "log2", "log10", "minute", "month", "predict_linear", "rate", "resets",
        "round", "scalar", "sgn", "sort", "sort_desc", "sort_by_label", "sort_by_label_desc", "sqrt", "time",
        "timestamp", "vector", "year", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
        "count_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time",
        "present_over_time", "mad_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh", "cos", "cosh", "sin",
        "sinh", "tan", "tanh", "deg", "pi", "rad",
    ]
    static let aggregations: Set<String> = [
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile",
        "limitk", "limit_ratio",
    ]
    /// Followed by a parenthesised list of label names.
    static let grouping: Set<String> = ["by", "without", "on", "ignoring", "group_left", "group_right"]
    static let keywords: Set<String> = ["bool", "offset", "and", "or", "unless", "atan2", "inf", "nan"]

    struct UnknownFunction: Error, CustomStringConvertible {
        var description: String
    }

    static func metrics(in expression: String) throws -> [String] {
        // Grafana's template query, not PromQL: label_values(SELECTOR, LABEL).
        if expression.hasPrefix("label_values("), expression.hasSuffix(")"), let comma = expression.lastIndex(of: ",") {
            return try metrics(in: String(expression[expression.index(expression.startIndex, offsetBy: 13)..<comma]))
        }
        let text = Array(expression.unicodeScalars)
        var names: [String] = []
        var i = 0
        func isIdentifierStart(_ c: Unicode.Scalar) -> Bool { c == "_" || c == ":" || ("a"..."z").contains(c) || ("A"..."Z").contains(c) }
        func isIdentifier(_ c: Unicode.Scalar) -> Bool { isIdentifierStart(c) || ("0"..."9").contains(c) }
        func skipSpaces(from start: Int) -> Int {
            var j = start
            while j < text.count, text[j] == " " || text[j] == "\n" || text[j] == "\t" { j += 1 }
            return j
        }
        /// Past the bracket matching the one at `start`, skipping strings inside.
        func skipBracketed(from start: Int, close: Unicode.Scalar) -> Int {
            var j = start + 1
            while j < text.count, text[j] != close {
                j = ["\"", "'", "`"].contains(text[j]) ? skipString(from: j) : j + 1
            }
            return j + 1
        }
        func skipString(from start: Int) -> Int {
            let quote = text[start]
            var j = start + 1
            while j < text.count, text[j] != quote { j += text[j] == "\\" ? 2 : 1 }
            return j + 1
        }
        while i < text.count {
            let c = text[i]
            if ["\"", "'", "`"].contains(c) {
                i = skipString(from: i)
            } else if c == "{" {
                i = skipBracketed(from: i, close: "}")
            } else if c == "[" {
                i = skipBracketed(from: i, close: "]")
            } else if c == "#" {
                while i < text.count, text[i] != "\n" { i += 1 }
            } else if c == "$" {
                i += 1
                if i < text.count, text[i] == "{" { i = skipBracketed(from: i, close: "}") } else { while i < text.count, isIdentifier(text[i]) { i += 1 } }
            } else if ("0"..."9").contains(c) || (c == "." && i + 1 < text.count && ("0"..."9").contains(text[i + 1])) {
                while i < text.count, isIdentifier(text[i]) || text[i] == "." { i += 1 }  // 15, 0.95, 1e3, 5m, 0x1f
            } else if isIdentifierStart(c) {
                var j = i
                while j < text.count, isIdentifier(text[j]) { j += 1 }
                let word = String(String.UnicodeScalarView(text[i..<j]))
                let next = skipSpaces(from: j)
                let opensParenthesis = next < text.count && text[next] == "("
                if grouping.contains(word.lowercased()), opensParenthesis {
                    j = skipBracketed(from: next, close: ")")
                } else if keywords.contains(word.lowercased()) {
                    // an operator or modifier
                } else if aggregations.contains(word), opensParenthesis || startsGrouping(text, at: next) {
                    // an aggregation: sum(…), sum by (…) (…)
                } else if opensParenthesis {
                    guard functions.contains(word) else { throw UnknownFunction(description: "'\(word)(' in \(expression) is no PromQL function") }
                } else {
                    names.append(word)
                }
                i = j
            } else {
                i += 1
            }
        }
        return names
    }

    private static func startsGrouping(_ text: [Unicode.Scalar], at index: Int) -> Bool {
        let rest = String(String.UnicodeScalarView(text[index...])).lowercased()
        return rest.hasPrefix("by") || rest.hasPrefix("without")
    }
}

@Suite struct PromQLNameExtraction {
    @Test(arguments: [
        ("time() - lifeboat_backup_last_success_timestamp_seconds > lifeboat_backup_max_age_seconds",
         ["lifeboat_backup_last_success_timestamp_seconds", "lifeboat_backup_max_age_seconds"]),
        (#"up{job="lifeboat"} == 0 or absent(up{job="lifeboat"})"#, ["up", "up"]),
        (#"histogram_quantile(0.95, sum by (le, policy) (increase(lifeboat_run_duration_seconds_bucket{policy=~"$policy", job="backup"}[1d])))"#,
         ["lifeboat_run_duration_seconds_bucket"]),
        ("sum(rate(a_total[5m] offset 1h)) without (instance) / on (policy) group_left (kind) b:recorded", ["a_total", "b:recorded"]),
        ("increase(x_total[$__rate_interval]) > bool 1e3 and ${threshold} < y", ["x_total", "y"]),
        (#"label_replace(m, "dst", "$1", "src", "(.*)") # a comment naming not_a_metric"#, ["m"]),
        ("label_values(lifeboat_last_run_success, policy)", ["lifeboat_last_run_success"]),
    ])
    func metricNamesAreFound(expression: String, expected: [String]) throws {
        #expect(try PromQLNames.metrics(in: expression) == expected)
    }

    @Test func anUnknownFunctionIsAnError() {
        #expect(throws: PromQLNames.UnknownFunction.self) { try PromQLNames.metrics(in: "rates(x[5m])") }
    }
}
