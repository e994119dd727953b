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

    @Test func promtoolChecksTheRulesAndTheirUnitTestsPass() async throws {
        try await offThePool {
            let check = try run(try promtool(), ["check", "rules", Self.rules])
            #expect(check.status.isSuccess, "\(check.stdout)\(check.stderr)")
            let test = try run(try promtool(), ["test", "rules", Self.ruleTests])
            #expect(test.status.isSuccess, "\(test.stdout)\(test.stderr)")
        }
    }

    @Test func everyAlertOfTheIssueIsThereAndTestedFiringAndNot() async throws {
        try await offThePool {
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
    }

    @Test func rulesAndDashboardUseOnlyTheCataloguesMetrics() async throws {
        try await offThePool {
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
    }

    /// promtool parses the dashboard's queries too, as recording rules.
    @Test func dashboardQueriesAreValidPromQL() async throws {
        try await offThePool {
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
    }

    @Test func dashboardHasTheDataSourceInputAndThePolicyVariable() async throws {
        try await offThePool {
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
        (#"histogram_quantile(0.95, sum by (le, policy) (increase(lifeboat_run_duration_seconds_bucket{policy=~"$policy", operation="backup"}[1d])))"#,
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

// MARK: lifeboat export

/// A configuration with a PostgreSQL policy (WAL archiving), an S3 mirror, a files policy on a
/// local repository and a scheduled runbook; the S3 repository's secret and the database
/// password are `${VAR}` references.
private func exportFixture() throws -> TemporaryDirectory {
    let directory = try TemporaryDirectory("lifeboat-export")
    try directory.write("lifeboat.yaml", """
        state_dir: /var/lib/lifeboat
        default_repository: offsite
        repositories:
          offsite:
            s3:
              endpoint: https://s3.example.com
              bucket: backups
              access_key_id: ${S3_KEY}
              secret_access_key: ${S3_SECRET}
          disk:
            path: /srv/lifeboat
        scheduler:
          run_timeout: 2h
          stop_timeout: 1m
          prune: { cron: "30 4 * * *", timezone: Europe/Berlin }

        """)
    try directory.write("policies/hub-postgres.yaml", """
        policy: hub-postgres
        source:
          postgres:
            conninfo: "host=db user=backup password=${PG_PASSWORD}"
            mode: physical
            wal: { timeout: 5m }
        schedule: { cron: "0 2 * * 1-5", timezone: Europe/Berlin, jitter: 10m }

        """)
    try directory.write("policies/assets.yaml", """
        policy: assets
        source:
          s3:
            endpoint: https://s3.example.com
            buckets: [assets]
            access_key_id: ${ASSETS_KEY:-anonymous}
            secret_access_key: ${ASSETS_SECRET:-none}
        schedule: { cron: "@daily", timezone: America/New_York }

        """)
    try directory.write("policies/etc_files.yaml", """
        policy: etc_files
        repository: disk
        source: { files: { path: /etc } }
        schedule: { cron: "*/15 9-17 1,15 * mon" }

        """)
    try directory.write("runbooks/restore-hub.yaml", """
        runbook: restore-hub
        schedule: { cron: "0 6 * * 0", timezone: UTC }
        objectives: { rto: 30m, rpo: 1h }
        steps:
          - restore: etc_files
            target: { path: /restore/etc }
          - manual: check the restored files

        """)
    return directory
}

@Suite struct ExportCommands {
    static let secretMarker = "s3cr3t-MARKER-7f3a"

    @Test func kubernetesManifestsValidateAndHoldNoSecret() async throws {
        try await offThePool {
            let validate = try tool("kubernetes-validate", install: "pip install kubernetes-validate")
            let config = try exportFixture()
            defer { config.remove() }
            let output = config.path + "/manifests"
            // Secrets set in the environment, as on an operator's machine: none may be written.
            let environment = ["S3_SECRET": Self.secretMarker, "PG_PASSWORD": Self.secretMarker, "S3_KEY": "AKIA-MARKER"]
            let written = try LifeboatCLI.run(["export", "kubernetes", "--namespace", "backup", "--secret", "lifeboat-env", "--output", output],
                                              config: config.path, environment: environment)
            #expect(written.status == 0, "\(written.stderr)")
            let streamed = try LifeboatCLI.run(["export", "kubernetes", "--namespace", "backup", "--secret", "lifeboat-env"],
                                               config: config.path, environment: environment)
            #expect(streamed.status == 0, "\(streamed.stderr)")

            let files = try FileManager.default.contentsOfDirectory(atPath: output).sorted()
            #expect(files == ["configmap-lifeboat.yaml", "cronjob-lifeboat-backup-assets.yaml", "cronjob-lifeboat-backup-etc-files.yaml",
                              "cronjob-lifeboat-backup-hub-postgres.yaml", "cronjob-lifeboat-drill-restore-hub.yaml", "cronjob-lifeboat-prune.yaml"])
            var texts: [String] = []
            for file in files {
                let path = output + "/" + file
                texts.append(try String(contentsOfFile: path, encoding: .utf8))
                let check = try run(validate, ["--strict", path])
                #expect(check.status.isSuccess, "\(file): \(check.stdout)\(check.stderr)")
            }
            // Standard output holds the same documents (in the order they were made).
            #expect(streamed.stdout.components(separatedBy: "---\n").filter { !$0.isEmpty }.sorted() == texts.sorted())
            let stream = config.path + "/all.yaml"
            try streamed.stdout.write(toFile: stream, atomically: true, encoding: .utf8)
            let checkStream = try run(validate, ["--strict", stream])
            #expect(checkStream.status.isSuccess, "\(checkStream.stdout)\(checkStream.stderr)")

            for text in texts + [written.all, streamed.all] {
                #expect(!text.contains(Self.secretMarker))
                #expect(!text.contains("AKIA-MARKER"))
            }
            // The ConfigMap holds the files as written, references intact.
            #expect(texts[0].contains("secret_access_key: ${S3_SECRET}"))
            // Every CronJob takes every variable from the Secret.
            for text in texts.dropFirst() {
                for name in ["S3_SECRET", "S3_KEY", "PG_PASSWORD"] {
                    #expect(text.contains("- name: \(name)\n              valueFrom:\n                secretKeyRef:\n                  name: lifeboat-env\n                  key: \(name)\n"), "\(name)")
                }
                #expect(text.contains("key: ASSETS_SECRET\n                  optional: true\n"))
                #expect(text.contains("concurrencyPolicy: Forbid\n") && text.contains("restartPolicy: Never\n"))
                #expect(text.contains("runAsNonRoot: true\n") && text.contains("readOnlyRootFilesystem: true\n"))
                #expect(text.contains("activeDeadlineSeconds: 7200\n"))
            }
            let backup = texts[3]
            #expect(backup.contains("schedule: \"0 2 * * 1-5\"\n  timeZone: Europe/Berlin\n"))
            #expect(backup.contains("- \"--config\"\n            - /etc/lifeboat\n            - backup\n            - hub-postgres\n"))
            let drill = texts[4]
            #expect(drill.contains("- drill\n            - restore-hub\n"))
            #expect(drill.contains("claimName: lifeboat-repository-disk\n") && drill.contains("mountPath: /restore/etc\n"))
            #expect(written.stderr.contains("jitter 10m is not applied"))
        }
    }

    @Test func policiesWhoseNamesCollideInKubernetesAreRefusedWithStatus2() async throws {
        try await offThePool {
            let config = try TemporaryDirectory("lifeboat-export")
            defer { config.remove() }
            try config.write("lifeboat.yaml", "state_dir: /var/lib/lifeboat\nrepositories: { disk: { path: /srv/lifeboat } }\ndefault_repository: disk\n")
            try config.write("policies/db.main.yaml", "policy: db.main\nsource: { files: { path: /etc } }\nschedule: { cron: '0 1 * * *' }\n")
            try config.write("policies/db_main.yaml", "policy: db_main\nsource: { files: { path: /etc } }\nschedule: { cron: '0 2 * * *' }\n")
            let result = try LifeboatCLI.run(["export", "kubernetes"], config: config.path)
            #expect(result.status == 2)
            #expect(result.stderr.contains("policy 'db.main' and policy 'db_main' would both be the CronJob 'lifeboat-backup-db-main'"), "\(result.stderr)")
            #expect(result.stdout.isEmpty)
            // --config before the command, as in archive_command, reaches the subcommand too.
            let leading = try LifeboatCLI.run(["--config", config.path, "export", "kubernetes"])
            #expect(leading.status == 2 && leading.stderr.contains("would both be the CronJob"), "\(leading.stderr)")
        }
    }

    @Test func aDirectoryWithoutConfigurationIsRefusedAsEveryCommandRefusesIt() async throws {
        try await offThePool {
            let empty = try TemporaryDirectory("lifeboat-export-empty")
            defer { empty.remove() }
            for command in [["systemd", "--binary", "/usr/bin/lifeboat"], ["kubernetes"]] {
                let result = try LifeboatCLI.run(["export"] + command, config: empty.path)
                #expect(result.status == 2, "\(result.stderr)")
                #expect(result.stderr.contains("holds no Lifeboat configuration (no lifeboat.yaml, policies/ or runbooks/)"), "\(result.stderr)")
                #expect(result.stdout.isEmpty)
            }
        }
    }

    @Test func filesOfARemovedPolicyLeftInTheOutputDirectoryAreNamed() async throws {
        try await offThePool {
            let config = try exportFixture()
            defer { config.remove() }
            for (command, stale) in [(["systemd", "--binary", "/usr/bin/lifeboat"], "lifeboat-backup-assets.service, lifeboat-backup-assets.timer"),
                                     (["kubernetes"], "cronjob-lifeboat-backup-assets.yaml")] {
                let output = config.path + "/out-" + command[0]
                let first = try LifeboatCLI.run(["export"] + command + ["--output", output], config: config.path)
                #expect(first.status == 0, "\(first.stderr)")
                #expect(!first.stderr.contains("still holds"), "\(first.stderr)")
                // A file of the operator's own is not named.
                try "keep".write(toFile: output + "/lifeboat-mine.service", atomically: true, encoding: .utf8)
                try FileManager.default.moveItem(atPath: config.path + "/policies/assets.yaml", toPath: config.path + "/assets.yaml.removed")
                defer { try? FileManager.default.moveItem(atPath: config.path + "/assets.yaml.removed", toPath: config.path + "/policies/assets.yaml") }
                let second = try LifeboatCLI.run(["export"] + command + ["--output", output], config: config.path)
                #expect(second.status == 0, "\(second.stderr)")
                #expect(second.stderr.contains("note: \(output) still holds \(stale) from an earlier export"), "\(second.stderr)")
                #expect(!second.stderr.contains("lifeboat-mine"), "\(second.stderr)")
            }
        }
    }

    @Test func systemdUnitsPassSystemdAnalyzeVerify() async throws {
        try await offThePool {
            let analyze = try tool("systemd-analyze", install: "Install the Debian package systemd.")
            let config = try exportFixture()
            defer { config.remove() }
            let output = config.path + "/units"
            let binary = try LifeboatCLI.executable
            let written = try LifeboatCLI.run(["export", "systemd", "--binary", binary, "--output", output], config: config.path,
                                              environment: ["S3_SECRET": Self.secretMarker])
            #expect(written.status == 0, "\(written.stderr)")
            let files = try FileManager.default.contentsOfDirectory(atPath: output).sorted()
            #expect(files == ["lifeboat-backup-assets.service", "lifeboat-backup-assets.timer", "lifeboat-backup-etc_files.service",
                              "lifeboat-backup-etc_files.timer", "lifeboat-backup-hub\\x2dpostgres.service", "lifeboat-backup-hub\\x2dpostgres.timer",
                              "lifeboat-drill-restore\\x2dhub.service", "lifeboat-drill-restore\\x2dhub.timer", "lifeboat-prune.service",
                              "lifeboat-prune.timer", "lifeboat-scheduler.service"])
            // Works in a container without systemd as PID 1: verify loads the units itself.
            let verify = try run(analyze, ["verify", "--man=no"] + files.map { output + "/" + $0 })
            #expect(verify.status.isSuccess, "\(verify.stdout)\(verify.stderr)")
            #expect(!verify.stderr.contains("lifeboat"), "\(verify.stderr)")
            for file in files {
                #expect(!(try String(contentsOfFile: output + "/" + file, encoding: .utf8)).contains(Self.secretMarker))
            }
            let scheduler = try String(contentsOfFile: output + "/lifeboat-scheduler.service", encoding: .utf8)
            #expect(scheduler.contains("ExecStart=\(binary) --config \(config.path) schedule\n"))
            #expect(scheduler.contains("TimeoutStopSec=90s\n"))
            let timer = try String(contentsOfFile: output + "/lifeboat-backup-etc_files.timer", encoding: .utf8)
            #expect(timer.contains("OnCalendar=Mon *-*-* 09..17:00/15:00 UTC\nOnCalendar=*-*-01,15 09..17:00/15:00 UTC\n"))
        }
    }
}

// MARK: OnCalendar against systemd

/// Our conversion of each expression, run through `systemd-analyze calendar`, fires when our
/// own `CronExpression.nextFire` does — around the daylight-saving changes of Berlin and New
/// York, and in UTC. The one difference is known and checked: a local time that does not
/// occur (clocks set forward) is skipped by systemd, where we fire at the change.
@Suite struct OnCalendarAgainstSystemd {
    /// (expression, time zone, from, firings at a change for a local time that does not occur)
    static let cases: [(String, String, String, Int)] = [
        ("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", 1),
        ("30 2 * * *", "Europe/Berlin", "2026-10-23T12:00:00Z", 0),
        ("0 * * * *", "Europe/Berlin", "2026-03-28T20:00:00Z", 0),
        ("0 * * * *", "Europe/Berlin", "2026-10-24T20:00:00Z", 0),
        ("*/15 1-3 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 0),
        ("*/15 1-3 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 0),
        ("30 2 * * *", "America/New_York", "2026-03-06T12:00:00Z", 1),
        ("30 1 * * *", "America/New_York", "2026-10-30T12:00:00Z", 0),
        ("*/20 0-3 * * sun", "America/New_York", "2026-03-01T12:00:00Z", 0),
        ("*/20 0-3 * * sun", "America/New_York", "2026-10-25T12:00:00Z", 0),
        ("0 0 13 * 5", "Europe/Berlin", "2026-01-01T00:00:00Z", 0),
        ("15 4 * * mon-fri", "America/New_York", "2026-02-20T00:00:00Z", 0),
        ("5-59/20 */6 1,15 * *", "UTC", "2026-01-01T00:00:00Z", 0),
        ("0 12 * jan,jul sun", "UTC", "2026-01-01T00:00:00Z", 0),
        ("@daily", "Europe/Berlin", "2026-03-20T00:00:00Z", 0),
        ("@weekly", "America/New_York", "2026-10-01T00:00:00Z", 0),
        ("0 0 31 * *", "UTC", "2026-01-01T00:00:00Z", 0),
    ]
    static let iterations = 40

    @Test(arguments: cases)
    func systemdFiresWhenWeDo(expression: String, timeZone: String, base: String, skippedBySystemd: Int) async throws {
        try await offThePool {
            let analyze = try tool("systemd-analyze", install: "Install the Debian package systemd.")
            let cron = try CronExpression(parsing: expression)
            let zone = try #require(TimeZone(identifier: timeZone))
            let start = try #require(ISO8601DateFormatter().date(from: base))
            let lines = cron.onCalendar(timeZone: timeZone)
            let result = try run(analyze, ["calendar", "--base-time=@\(Int(start.timeIntervalSince1970))", "--iterations=\(Self.iterations)"] + lines,
                                 environment: ["TZ": "UTC", "LC_ALL": "C"])
            #expect(result.status.isSuccess, "\(result.stdout)\(result.stderr)")
            let theirs = Array(Set(try Self.elapses(result.stdout)).sorted().prefix(Self.iterations))
            #expect(theirs.count == Self.iterations, "\(result.stdout)")
            var ours: [Date] = []
            var cursor = start
            while ours.count < Self.iterations + 4, let next = cron.nextFire(after: cursor, in: zone) {
                ours.append(next)
                cursor = next
            }
            // Compare up to the last firing both lists reach.
            guard let horizon = [theirs.last, ours.last].compactMap({ $0 }).min() else { return }
            let theirSet = Set(theirs.filter { $0 <= horizon })
            let ourSet = Set(ours.filter { $0 <= horizon })
            #expect(theirSet.subtracting(ourSet).isEmpty, "systemd only: \(theirSet.subtracting(ourSet).sorted())")
            #expect(ourSet.subtracting(theirSet).count == skippedBySystemd, "ours only: \(ourSet.subtracting(theirSet).sorted())")
            for extra in ourSet.subtracting(theirSet) {
                // Ours only: a firing at a daylight-saving change for a local time that did not
                // occur — its own local time is not one the expression names.
                #expect(!Self.names(cron, extra, zone), "\(expression) \(timeZone): we fire at \(extra), systemd does not")
            }
        }
    }

    /// Whether the local wall time of `instant` is one the expression names.
    static func names(_ cron: CronExpression, _ instant: Date, _ zone: TimeZone) -> Bool {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let c = calendar.dateComponents([.month, .day, .hour, .minute, .weekday], from: instant)
        guard let month = c.month, let day = c.day, let hour = c.hour, let minute = c.minute, let weekday = c.weekday else { return false }
        guard cron.minutes.contains(minute), cron.hours.contains(hour), cron.months.contains(month) else { return false }
        let dom = cron.daysOfMonth.contains(day), dow = cron.daysOfWeek.contains(weekday - 1)
        switch (cron.dayOfMonthRestricted, cron.dayOfWeekRestricted) {
        case (true, true): return dom || dow
        case (true, false): return dom
        case (false, true): return dow
        case (false, false): return true
        }
    }

    /// The instants of `Next elapse:` and `Iter. #n:` lines (`Mon 2026-03-30 00:30:00 UTC`).
    static func elapses(_ output: String) throws -> [Date] {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE yyyy-MM-dd HH:mm:ss 'UTC'"
        return try output.split(separator: "\n").compactMap { line -> Date? in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("Next elapse:") || trimmed.hasPrefix("Iter. #"), let colon = trimmed.firstIndex(of: ":") else { return nil }
            let value = trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            let date: Date? = formatter.date(from: value)
            guard let date else { throw TestSupportError("systemd-analyze printed an unreadable time: \(line)") }
            return date
        }
    }
}

@Suite struct UnitNamesAgainstSystemdEscape {
    @Test(arguments: ["hub-postgres", "etc_files", "db.main", "a b", "x/y", ".hidden", "ümlaut", "A-Z:0_9.x", "tab\there"])
    func escapingMatchesSystemdEscape(name: String) async throws {
        try await offThePool {
            let escape = try tool("systemd-escape", install: "Install the Debian package systemd.")
            let result = try run(escape, ["--", name])
            #expect(result.status.isSuccess, "\(result.stderr)")
            #expect(SystemdExport.escapeUnitName(name) == result.stdout.trimmingCharacters(in: .newlines))
        }
    }
}
