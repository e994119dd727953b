import Foundation
import Glibc
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import Synchronization
import Testing
import TestSupport

/// The scheduler's metrics and readiness as Prometheus sees them: a real PostgreSQL, a real S3
/// server (moto), the daemon in this process with a clock the test moves on (cron is minute
/// granular), its listener and a real Prometheus scraping it every second on real time.
@Suite(.timeLimit(.minutes(10)))
struct MonitoringEndToEnd {
    /// The daemon's clock: stopped at the test's start, moved on by the test alone (so that a
    /// minute turning meanwhile starts no run of its own).
    final class Clock: Sendable {
        let start = Date()
        let offset = Mutex<TimeInterval>(0)
        func now() -> Date { start.addingTimeInterval(offset.withLock { $0 }) }
        func advance(_ seconds: TimeInterval) { offset.withLock { $0 += seconds } }
    }

    func wait(_ what: String, timeout: Double = 30, diagnose: () -> String = { "" }, _ condition: () throws -> Bool) throws {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            if (try? condition()) == true { return }
            usleep(100_000)
        }
        if try condition() { return }
        Issue.record("timed out waiting for \(what)\n\(diagnose())")
        throw TestSupportError("timed out waiting for \(what)")
    }

    func readiness(_ port: Int) throws -> (code: Int, status: String, checks: [String: String]) {
        let response = try RawHTTP.request(port: port, "/readyz")
        let json = try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any] ?? [:]
        return (response.status, json["status"] as? String ?? "", json["checks"] as? [String: String] ?? [:])
    }

    @Test func prometheusSeesBothPoliciesSucceedThenAFailureWhenPostgreSQLStops() async throws {
        try await offThePool {
            let s3 = try S3TestServer.start()
            defer { s3.stop() }
            let pg = try PostgresServer.start()
            defer { pg.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try dir.write("lifeboat.yaml", """
                repositories:
                  offsite:
                    s3: { endpoint: "\(s3.endpoint)", region: \(s3.region), bucket: lifeboat-test, prefix: backups/lifeboat,
                          access_key_id: "${TEST_S3_KEY}", secret_access_key: "${TEST_S3_SECRET}" }
                default_repository: offsite
                state_dir: state
                scheduler: { catch_up: 1h, stop_timeout: 10s, metrics_refresh: 1h }
                """)
            try dir.write("src/a.txt", "alpha\n")
            try dir.write("policies/files.yaml", "policy: files\nsource: { files: { path: src } }\nschedule: { cron: \"* * * * *\" }\n")
            try dir.write("policies/pg.yaml", """
                policy: pg
                source:
                  postgres: { mode: logical, conninfo: "${PG_CONNINFO}", databases: [postgres] }
                schedule: { cron: "* * * * *" }
                """)
            let environment = ["TEST_S3_KEY": s3.accessKeyID, "TEST_S3_SECRET": s3.secretAccessKey, "PG_CONNINFO": pg.conninfo()]
            let configuration = try ConfigurationLoader.load(directory: dir.path, environment: environment)
            #expect(configuration.problems.isEmpty, "\(configuration.problems.map(\.error))")

            let clock = Clock()
            let context = RunContext(logger: quietLogger, clock: { clock.now() }, environment: environment)
            let daemon = try SchedulerDaemon.backups(configuration: configuration, context: context, lockWait: 10)
            let monitor = SchedulerMonitor(configuration: configuration, context: context)
            daemon.observer = monitor
            let listener = try #require(try monitor.listen(on: .address(host: "127.0.0.1", port: 0), logger: quietLogger))
            let prometheus = try PrometheusServer.start(scraping: [listener.address])
            defer { prometheus.stop() }
            let loop = Background { try daemon.run() }
            defer {
                daemon.stop()
                _ = loop.wait(timeout: 30)
                listener.stop()
                monitor.stop()
            }

            // The missed firing of the last minute runs at once for both policies (catch-up).
            let diagnose = {
                let metrics = (try? RawHTTP.request(port: listener.port, "/metrics").body) ?? "no answer"
                let targets = (try? RawHTTP.request(port: prometheus.port, "/api/v1/targets").body) ?? "no answer"
                let history = (try? String(contentsOfFile: dir.subpath("state/history.jsonl"), encoding: .utf8)) ?? "no history"
                return "metrics:\n\(metrics.split(separator: "\n").filter { !$0.hasPrefix("#") }.joined(separator: "\n"))\ntargets: \(targets)\nhistory: \(history)"
            }
            try wait("lifeboat_last_run_success 1 for both policies in Prometheus", timeout: 40, diagnose: diagnose) {
                // The run's label is `operation`: Prometheus's own `job` (the scrape job) stays
                // untouched, and nothing is renamed `exported_job`.
                let samples = try prometheus.query("lifeboat_last_run_success{operation=\"backup\"}")
                #expect(samples.allSatisfy { $0.labels["exported_job"] == nil && $0.labels["job"] == "lifeboat" }, "\(samples)")
                return Set(samples.filter { $0.value == 1 }.compactMap { $0.labels["policy"] }) == ["files", "pg"]
            }
            try wait("the repository metrics after the runs") {
                try prometheus.query("lifeboat_repository_backups").filter { $0.value == 1 }.count == 2
            }
            let up = try prometheus.query("lifeboat_repository_up")
            #expect(up.count == 2 && up.allSatisfy { $0.value == 1 }, "\(up)")
            #expect(try prometheus.query("lifeboat_backup_max_age_seconds{policy=\"pg\"}").first?.value == 2 * 60 + 6 * 3600)
            #expect(try prometheus.query("lifeboat_backup_last_bytes{policy=\"files\"} > 0").count == 1)
            #expect(try prometheus.query("lifeboat_run_duration_seconds_count{policy=\"pg\"}").first?.value == 1)
            try wait("a healthy readiness") { try readiness(listener.port).status == "healthy" }

            // PostgreSQL goes away: the next run of pg fails, files still succeeds.
            pg.stop()
            clock.advance(60)
            daemon.wake()
            try wait("lifeboat_runs_total{outcome=\"failed\"} of pg in Prometheus", timeout: 40) {
                try prometheus.query("lifeboat_runs_total{policy=\"pg\",outcome=\"failed\"}").first?.value == 1
            }
            #expect(try prometheus.query("lifeboat_last_run_success{policy=\"pg\"}").first?.value == 0)
            #expect(try prometheus.query("lifeboat_runs_total{policy=\"pg\",outcome=\"succeeded\"}").first?.value == 1)
            try wait("files' second success") {
                try prometheus.query("lifeboat_runs_total{policy=\"files\",outcome=\"succeeded\"}").first?.value == 2
            }
            let ready = try readiness(listener.port)
            #expect(ready.code == 200)
            #expect(ready.status == "degraded")
            #expect(ready.checks["policy:pg"]?.hasPrefix("failing: last run failed: ") == true, "\(ready.checks)")
            #expect(ready.checks["policy:files"] == "ok")
            #expect(ready.checks["repository:offsite"] == "ok")

            // Stopping: not ready any more (503) until the loop has ended. (SIGTERM during a run of
            // the real process, committing nothing and exiting 0, is
            // SchedulerDaemonProcess.sigtermDuringARunCancelsItAfterTheStopTimeoutAndCommitsNothing.)
            daemon.stop()
            if case .failure(let error) = loop.wait(timeout: 30) { Issue.record("the daemon failed: \(error)") }
            let stopped = try readiness(listener.port)
            #expect(stopped.code == 503 && stopped.status == "unhealthy", "\(stopped)")
            try wait("lifeboat_scheduler_running 0 in Prometheus") {
                try prometheus.query("lifeboat_scheduler_running").first?.value == 0
            }
        }
    }
}

/// `listen_token_file:`: a real Prometheus scrapes the protected `/metrics` with
/// `authorization: { credentials_file: … }`.
@Suite(.timeLimit(.minutes(5)))
struct MetricsTokenScrape {
    @Test func prometheusWithTheTokensCredentialsFileScrapesAProtectedMetricsEndpoint() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try dir.write("lifeboat.yaml", "state_dir: state\nlisten_token_file: metrics-token\n")
            try dir.write("src/a.txt", "alpha\n")
            try dir.write("policies/files.yaml", "policy: files\nsource: { files: { path: src } }\nschedule: { cron: \"0 2 * * *\" }\n")
            let tokenFile = try dir.write("metrics-token", "prometheus-bearer-7f3c9a\n")
            chmod(tokenFile, 0o600)
            let configuration = try ConfigurationLoader.load(directory: dir.path, environment: [:])
            #expect(configuration.listenTokenFile == tokenFile)
            let monitor = SchedulerMonitor(configuration: configuration, context: RunContext(logger: quietLogger))
            let token = try MetricsToken.read(try #require(configuration.listenTokenFile))
            let listener = try #require(try monitor.listen(on: .address(host: "127.0.0.1", port: 0), token: token, logger: quietLogger))
            defer {
                listener.stop()
                monitor.stop()
            }
            monitor.schedulerStarted(history: [])
            #expect(try RawHTTP.request(port: listener.port, "/metrics").status == 401)
            let prometheus = try PrometheusServer.start(scraping: [listener.address], credentialsFile: tokenFile)
            defer { prometheus.stop() }
            let deadline = Date(timeIntervalSinceNow: 30)
            var seen: [PrometheusServer.Sample] = []
            while Date() < deadline {
                seen = (try? prometheus.query("lifeboat_build_info")) ?? []
                if !seen.isEmpty { break }
                usleep(200_000)
            }
            #expect(seen.first?.value == 1, "Prometheus did not scrape /metrics with the token")
            #expect(try prometheus.query("up{job=\"lifeboat\"}").first?.value == 1)
        }
    }
}

@Suite struct WALPushFailureRecords {
    @Test func aFailedWALPushLeavesALineTheDaemonCounts() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try dir.write("lifeboat.yaml", "state_dir: state\n")
            try dir.write("policies/pg.yaml", "policy: pg\nsource:\n  postgres: { conninfo: \"host=127.0.0.1 password=hunter2-secret\" }\n")
            let state = StateDirectory(path: dir.subpath("state"))
            try state.prepare()  // the daemon's (wal-push never creates it)
            let push = try LifeboatCLI.run(["wal-push", "pg", dir.subpath("pg_wal/000000010000000000000001"), "--pg-data", dir.path], config: dir.path)
            #expect(push.status != 0, "\(push.all)")
            #expect(state.walPushFailureCounts() == ["pg": 1])
            let line = try readTextFile(state.walPushFailuresPath)
            #expect(line.contains("\"policy\":\"pg\""))
            #expect(!line.contains("hunter2-secret"))
        }
    }
}
