import Foundation
import Testing
@testable import LifeboatCore

private func utc(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

@Suite struct MetricExposition {
    @Test func eachFamilyHasItsHelpAndTypeOnceAndSeriesAreOrdered() throws {
        let registry = MetricRegistry()
        try registry.increment(MetricCatalogue.runsTotal, ["web", "backup", "succeeded"])
        try registry.increment(MetricCatalogue.runsTotal, ["db", "backup", "failed"], by: 2)
        try registry.increment(MetricCatalogue.runsTotal, ["db", "backup", "failed"])
        try registry.set(MetricCatalogue.schedulerUp, [], 1)
        try registry.set(MetricCatalogue.lastRunTimestamp, ["db", "backup"], 1_764_460_800)
        let text = registry.render()
        for metric in MetricCatalogue.all {
            #expect(text.components(separatedBy: "# HELP \(metric.name) ").count == 2, "\(metric.name)")
            #expect(text.components(separatedBy: "# TYPE \(metric.name) \(metric.kind.rawValue)\n").count == 2, "\(metric.name)")
        }
        let lines = text.split(separator: "\n").filter { $0.hasPrefix("lifeboat_runs_total") }
        #expect(lines == [#"lifeboat_runs_total{policy="db",operation="backup",outcome="failed"} 3"#,
                          #"lifeboat_runs_total{policy="web",operation="backup",outcome="succeeded"} 1"#])
        #expect(text.contains("\nlifeboat_scheduler_running 1\n"))
        #expect(text.contains(#"lifeboat_last_run_timestamp_seconds{policy="db",operation="backup"} 1764460800"#))
        #expect(text.hasSuffix("\n"))
        // A metric without series (the drills, for now) has its HELP and TYPE and no sample.
        #expect(!text.contains("\nlifeboat_drill_rto_seconds{"))
    }

    /// README's metrics table lists every metric of the catalogue, with its type and labels.
    @Test func readmeListsEveryCatalogueMetric() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        for metric in MetricCatalogue.all {
            let labels = metric.labels.isEmpty ? "—" : metric.labels.joined(separator: ", ")
            #expect(readme.contains("| `\(metric.name)` | \(metric.kind.rawValue) | \(labels) | "), "\(metric.name) is missing from README's table")
        }
    }

    @Test func labelValuesAreEscaped() throws {
        let registry = MetricRegistry()
        try registry.set(MetricCatalogue.lastBackupBytes, ["a\\b\"c\nd"], 5)
        #expect(registry.render().contains(#"lifeboat_backup_last_bytes{policy="a\\b\"c\nd"} 5"#))
        #expect(MetricRegistry.escapeLabelValue("plain-name_1") == "plain-name_1")
    }

    @Test func histogramBucketsAreCumulativeWithInfSumAndCount() throws {
        let registry = MetricRegistry(buckets: [1, 5, 60])
        for value in [0.5, 3, 3, 61, 1] { try registry.observe(MetricCatalogue.runDuration, ["db", "backup"], value) }
        let lines = registry.render().split(separator: "\n").filter { $0.hasPrefix("lifeboat_run_duration_seconds") }
        #expect(lines == [
            #"lifeboat_run_duration_seconds_bucket{policy="db",operation="backup",le="1"} 2"#,
            #"lifeboat_run_duration_seconds_bucket{policy="db",operation="backup",le="5"} 4"#,
            #"lifeboat_run_duration_seconds_bucket{policy="db",operation="backup",le="60"} 4"#,
            #"lifeboat_run_duration_seconds_bucket{policy="db",operation="backup",le="+Inf"} 5"#,
            #"lifeboat_run_duration_seconds_sum{policy="db",operation="backup"} 68.5"#,
            #"lifeboat_run_duration_seconds_count{policy="db",operation="backup"} 5"#,
        ])
    }

    @Test func valuesAreFormattedSoPrometheusParsesThem() {
        #expect(MetricRegistry.format(3) == "3")
        #expect(MetricRegistry.format(-2) == "-2")
        #expect(MetricRegistry.format(0.25) == "0.25")
        #expect(MetricRegistry.format(1_764_460_800.5) == "1764460800.5")
        #expect(MetricRegistry.format(.infinity) == "+Inf")
        #expect(MetricRegistry.format(-.infinity) == "-Inf")
        #expect(MetricRegistry.format(.nan) == "NaN")
        #expect(Double(MetricRegistry.format(1e300)) == 1e300)
        #expect(Double(MetricRegistry.format(1e-7)) == 1e-7)
    }

    @Test func onlyCatalogueMetricsWithTheirLabelsAndKindAreAccepted() throws {
        let registry = MetricRegistry()
        let stranger = MetricDescriptor("lifeboat_made_up", .gauge, labels: [], help: "not in the catalogue")
        #expect(throws: MetricRegistry.Misuse.self) { try registry.set(stranger, [], 1) }
        #expect(throws: MetricRegistry.Misuse.self) { try registry.set(MetricCatalogue.lastRunSuccess, ["db"], 1) }
        #expect(throws: MetricRegistry.Misuse.self) { try registry.observe(MetricCatalogue.lastRunSuccess, ["db", "backup"], 1) }
        #expect(throws: MetricRegistry.Misuse.self) { try registry.increment(MetricCatalogue.lastRunSuccess, ["db", "backup"]) }
        #expect(throws: MetricRegistry.Misuse.self) { try registry.increment(MetricCatalogue.runsTotal, ["db", "backup", "failed"], by: -1) }
        try registry.set(MetricCatalogue.walPushFailures, ["db"], 4)
        #expect(throws: MetricRegistry.Misuse.self) { try registry.set(MetricCatalogue.walPushFailures, ["db"], 3) }
        #expect(!registry.render().contains("lifeboat_made_up"))
    }
}

@Suite struct StalenessThresholds {
    func maxAge(_ cron: String, timezone: String = "UTC", runTimeout: Int64 = 6 * 3600, now: String = "2026-06-10T12:34:00Z") -> TimeInterval? {
        StalenessThreshold.maxAge(of: Schedule(cron: try! CronExpression(parsing: cron), timezone: timezone),
                                  runTimeout: ConfigDuration(seconds: runTimeout), now: utc(now))
    }

    @Test func twiceTheLongestGapPlusTheRunTimeout() {
        #expect(maxAge("0 2 * * *") == TimeInterval(2 * 86400 + 6 * 3600))
        #expect(maxAge("0 * * * *") == TimeInterval(2 * 3600 + 6 * 3600))
        #expect(maxAge("*/15 * * * *", runTimeout: 600) == TimeInterval(2 * 900 + 600))
        // Weekdays only: the weekend is the longest gap (Friday to Monday, three days).
        #expect(maxAge("0 2 * * 1-5") == TimeInterval(2 * 3 * 86400 + 6 * 3600))
        // Weekly.
        #expect(maxAge("0 3 * * 0") == TimeInterval(2 * 7 * 86400 + 6 * 3600))
        // Twice a day, unevenly: the longer gap counts (02:00 → 20:00 is 18h).
        #expect(maxAge("0 2,20 * * *") == TimeInterval(2 * 18 * 3600 + 6 * 3600))
        // Monthly: followed beyond the horizon (June 1 → July 1 is 30 days, July → August 31).
        #expect(maxAge("0 2 1 * *", now: "2026-06-10T00:00:00Z") == TimeInterval(2 * 31 * 86400 + 6 * 3600))
    }

    @Test func aDaylightSavingChangeInTheHorizonLengthensTheGap() {
        // Europe/Berlin falls back on 2026-10-25: 02:00 CEST on the 24th to 02:00 CET on the 25th is 25 h.
        #expect(maxAge("0 2 * * *", timezone: "Europe/Berlin", now: "2026-10-20T12:00:00Z") == TimeInterval(2 * 25 * 3600 + 6 * 3600))
    }

    @Test func aScheduleThatNeverFiresTwiceHasNoThreshold() {
        #expect(maxAge("0 0 30 2 *") == nil)
    }
}

@Suite struct ReadinessMapping {
    let now = utc("2026-06-10T12:00:00Z")

    @Test func everythingOkIsHealthy() {
        let report = Readiness.evaluate(scheduler: .running, repositories: ["offsite": .reachable], policies: ["db": .ok])
        #expect(report.status == .healthy && report.httpStatus == 200)
        #expect(report.checks == ["scheduler": "ok", "repository:offsite": "ok", "policy:db": "ok"])
        #expect(report.json() == #"{"checks":{"policy:db":"ok","repository:offsite":"ok","scheduler":"ok"},"status":"healthy"}"#)
    }

    @Test func aStaleOrFailingPolicyOrAnUnreachableRepositoryDegrades() {
        let stale = Readiness.policyState(newestBackup: utc("2026-06-07T12:00:00Z"), since: utc("2026-06-01T00:00:00Z"),
                                          maxAge: 2 * 86400 + 6 * 3600, lastRunError: nil, now: now)
        var report = Readiness.evaluate(scheduler: .running, repositories: ["offsite": .reachable], policies: ["db": stale])
        #expect(report.status == .degraded && report.httpStatus == 200)
        #expect(report.checks["policy:db"] == "stale: newest backup 2026-06-07T12:00:00Z, older than 2d6h")

        let failing = Readiness.policyState(newestBackup: now, since: now, maxAge: 3600, lastRunError: "connection refused\nHINT: x", now: now)
        report = Readiness.evaluate(scheduler: .running, repositories: ["offsite": .reachable], policies: ["db": failing])
        #expect(report.status == .degraded)
        #expect(report.checks["policy:db"] == "failing: last run failed: connection refused")

        report = Readiness.evaluate(scheduler: .running, repositories: ["offsite": .unreachable("timed out"), "local": .reachable], policies: ["db": .ok])
        #expect(report.status == .degraded)
        #expect(report.checks["repository:offsite"] == "unreachable: timed out")

        report = Readiness.evaluate(scheduler: .running, repositories: ["offsite": .notChecked], policies: [:])
        #expect(report.status == .degraded)
    }

    @Test func noBackupYetIsStaleOnlyOnceTheThresholdHasPassedSinceTheStart() {
        #expect(Readiness.policyState(newestBackup: nil, since: now.addingTimeInterval(-3000), maxAge: 3600, lastRunError: nil, now: now) == .ok)
        let state = Readiness.policyState(newestBackup: nil, since: now.addingTimeInterval(-4000), maxAge: 3600, lastRunError: nil, now: now)
        #expect(state == .stale(newest: nil, since: now.addingTimeInterval(-4000), maxAge: 3600))
        #expect(Readiness.policyState(newestBackup: nil, since: .distantPast, maxAge: nil, lastRunError: nil, now: now) == .ok,
                "a policy without a threshold is never stale")
    }

    @Test func stoppingOrEveryRepositoryUnreachableIsUnhealthy() {
        var report = Readiness.evaluate(scheduler: .stopping, repositories: ["offsite": .reachable], policies: ["db": .ok])
        #expect(report.status == .unhealthy && report.httpStatus == 503)
        #expect(report.checks["scheduler"] == "stopping")
        report = Readiness.evaluate(scheduler: .running, repositories: ["a": .unreachable("x"), "b": .unreachable("y")], policies: [:])
        #expect(report.status == .unhealthy && report.httpStatus == 503)
    }
}

@Suite struct ListenAddresses {
    @Test(arguments: [
        ("127.0.0.1:9187", ListenAddress.address(host: "127.0.0.1", port: 9187)),
        ("[::1]:9187", .address(host: "::1", port: 9187)),
        (":9187", .address(host: "", port: 9187)),
        ("localhost:0", .address(host: "localhost", port: 0)),
        ("off", .off),
    ])
    func valid(_ text: String, _ address: ListenAddress) throws {
        #expect(try ListenAddress(parsing: text) == address)
        #expect(address.description == text)
    }

    @Test(arguments: ["9187", "::1:9187", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "[::1]9187", "[]:1", "a b:1", "on"])
    func invalid(_ text: String) {
        #expect(throws: ListenAddress.ParseError.self) { try ListenAddress(parsing: text) }
    }

    func parse(_ main: String) -> Configuration {
        ConfigurationParser.parse(directory: "/etc/lifeboat", main: ConfigFile(name: "lifeboat.yaml", text: main), policies: [], runbooks: [],
                                  sources: [], environment: [:])
    }

    @Test func listenAndMetricsRefreshAreReadFromLifeboatYAMLWithPositions() {
        let good = parse("listen: \"[::1]:9300\"\nscheduler: { metrics_refresh: 1m }\n")
        #expect(good.problems.isEmpty)
        #expect(good.listen == .address(host: "::1", port: 9300))
        #expect(good.scheduler.metricsRefresh == ConfigDuration(seconds: 60))
        #expect(parse("state_dir: /x\n").scheduler.metricsRefresh == ConfigDuration(seconds: 300))
        let bad = parse("state_dir: /x\nlisten: localhost\nscheduler:\n  metrics_refresh: 0s\n").problems.map { $0.error.description }
        #expect(bad.count == 2)
        #expect(bad.contains { $0.contains("lifeboat.yaml:2:9") && $0.contains("port is missing") }, "\(bad)")
        #expect(bad.contains { $0.contains("lifeboat.yaml:4:") && $0.contains("metrics_refresh") }, "\(bad)")
    }
}

@Suite struct HTTPRequestHeads {
    @Test func theRequestLineIsRead() {
        #expect(HTTPRequestHead(Array("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n".utf8)) == HTTPRequestHead(method: "GET", path: "/metrics"))
        #expect(HTTPRequestHead(Array("HEAD / HTTP/1.0\n\n".utf8))?.method == "HEAD")
        for garbage in ["\u{1}\u{2}\r\n\r\n", "GET /metrics\r\n\r\n", "get / HTTP/1.1\r\n\r\n", "GET metrics HTTP/1.1\r\n\r\n", "GET / HTTP/2\r\n\r\n"] {
            #expect(HTTPRequestHead(Array(garbage.utf8)) == nil, "\(garbage)")
        }
        #expect(HTTPRequestHead.end(in: Array("GET / HTTP/1.1\r\nHost: a\r\n".utf8)) == nil)
        #expect(HTTPRequestHead.end(in: Array("GET / HTTP/1.1\r\n\r\nrest".utf8)) == 18)
    }

    @Test func theAuthorizationHeaderIsReadWhateverItsCase() {
        #expect(HTTPRequestHead(Array("GET /metrics HTTP/1.1\r\nHost: a\r\nauthorization:  Bearer abc \r\n\r\n".utf8))?.authorization == "Bearer abc")
        #expect(HTTPRequestHead(Array("GET /metrics HTTP/1.1\nAUTHORIZATION: Basic x\n\n".utf8))?.authorization == "Basic x")
        #expect(HTTPRequestHead(Array("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n".utf8))?.authorization == nil)
    }
}

@Suite struct BearerTokens {
    @Test func onlyBearerWithTheExactTokenIsAccepted() throws {
        let token = try #require(BearerToken(fileText: "  s3cr3t-token\n"))
        #expect(token.accepts(authorization: "Bearer s3cr3t-token"))
        #expect(token.accepts(authorization: "bearer s3cr3t-token"))
        for wrong in [nil, "", "Bearer", "Bearer ", "Bearer s3cr3t-toke", "Bearer s3cr3t-token2", "Bearer S3CR3T-TOKEN",
                      "Basic s3cr3t-token", "s3cr3t-token", "Bearers3cr3t-token"] {
            #expect(!token.accepts(authorization: wrong), "\(String(describing: wrong))")
        }
        #expect(BearerToken(fileText: " \n\t") == nil)
    }
}
