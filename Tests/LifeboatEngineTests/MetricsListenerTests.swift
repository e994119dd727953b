import Foundation
import Glibc
import LifeboatCore
@testable import LifeboatEngine
import LifeboatIO
import Testing
import TestSupport

/// The scheduler's HTTP endpoints on a real socket (port 0), fed by a `SchedulerMonitor` that
/// the test tells of the daemon's events; the refresher reads a real local repository.
@Suite(.timeLimit(.minutes(10)))
struct MetricsListener {
    func monitor(_ dir: TemporaryDirectory) throws -> SchedulerMonitor {
        try dir.write("lifeboat.yaml", "state_dir: state\nrepositories:\n  local: { path: repo }\ndefault_repository: local\n")
        try dir.write("src/a.txt", "alpha\n")
        try dir.write("policies/files.yaml", "policy: files\nsource: { files: { path: src } }\nschedule: { cron: \"0 2 * * *\" }\n")
        let configuration = try ConfigurationLoader.load(directory: dir.path, environment: [:])
        return SchedulerMonitor(configuration: configuration, context: RunContext(logger: quietLogger))
    }

    func json(_ response: RawHTTP.Response) throws -> (status: String, checks: [String: String]) {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any], "\(response.body)")
        return (object["status"] as? String ?? "", object["checks"] as? [String: String] ?? [:])
    }

    func waitForRefresh(_ monitor: SchedulerMonitor) -> Bool {
        let deadline = Date(timeIntervalSinceNow: 10)
        while monitor.registry.value(MetricCatalogue.repositoryCheckTimestamp, ["files"]) == nil, Date() < deadline { usleep(10_000) }
        return monitor.registry.value(MetricCatalogue.repositoryCheckTimestamp, ["files"]) != nil
    }

    @Test func metricsHealthzAndReadyzAnswerWithTheirContentAndStatus() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let monitor = try monitor(dir)
        let listener = try #require(try monitor.listen(on: .address(host: "127.0.0.1", port: 0), logger: quietLogger))
        defer {
            listener.stop()
            monitor.stop()
        }
        #expect(listener.port > 0 && listener.address == "127.0.0.1:\(listener.port)")
        let port = listener.port

        // Before the loop's first tick: alive (starting), not ready.
        let early = try RawHTTP.request(port: port, "/healthz")
        #expect(early.status == 200 && early.body.contains("starting"), "\(early.body)")
        #expect(try RawHTTP.request(port: port, "/readyz").status == 503)

        monitor.schedulerStarted(history: [])
        #expect(waitForRefresh(monitor))

        let metrics = try RawHTTP.request(port: port, "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        #expect(metrics.headers["connection"] == "close")
        #expect(metrics.headers["content-length"] == String(metrics.body.utf8.count))
        #expect(metrics.body.contains("lifeboat_build_info{version=\"\(LifeboatVersion.current)\"} 1\n"))
        #expect(metrics.body.contains("\nlifeboat_scheduler_running 1\n"))
        #expect(metrics.body.contains("lifeboat_repository_up{policy=\"files\"} 1\n"), "\(metrics.body)")
        #expect(metrics.body.contains("lifeboat_repository_backups{policy=\"files\"} 0\n"))
        #expect(metrics.body.contains("lifeboat_backup_max_age_seconds{policy=\"files\"} 194400\n"))
        #expect(metrics.body.contains("lifeboat_runs_total{policy=\"files\",operation=\"backup\",outcome=\"failed\"} 0\n"))

        let health = try RawHTTP.request(port: port, "/healthz")
        #expect(health.status == 200)
        #expect(try json(health).status == "healthy")
        #expect(try json(health).checks == ["scheduler": "ok"])

        var ready = try RawHTTP.request(port: port, "/readyz")
        #expect(ready.status == 200)
        #expect(ready.headers["content-type"] == "application/json")
        #expect(try json(ready).status == "healthy", "\(ready.body)")
        #expect(try json(ready).checks == ["scheduler": "ok", "repository:local": "ok", "policy:files": "ok"])

        // A failed run: the policy check says so, readiness degrades, still 200.
        let now = Date()
        let failed = RunRecord(policy: "files", job: "backup", scheduled: now, started: now, ended: now.addingTimeInterval(2),
                               outcome: .failed, error: "source unreadable")
        monitor.runEnded(key: "files", record: failed, result: nil)
        ready = try RawHTTP.request(port: port, "/readyz")
        #expect(ready.status == 200)
        #expect(try json(ready).status == "degraded")
        #expect(try json(ready).checks["policy:files"] == "failing: last run failed: source unreadable")
        let after = try RawHTTP.request(port: port, "/metrics").body
        #expect(after.contains("lifeboat_runs_total{policy=\"files\",operation=\"backup\",outcome=\"failed\"} 1\n"))
        #expect(after.contains("lifeboat_last_run_success{policy=\"files\",operation=\"backup\"} 0\n"))
        #expect(after.contains("lifeboat_run_duration_seconds_bucket{policy=\"files\",operation=\"backup\",le=\"5\"} 1\n"))

        // Stopping: unhealthy, 503; still alive.
        monitor.schedulerStopping()
        ready = try RawHTTP.request(port: port, "/readyz")
        #expect(ready.status == 503)
        #expect(try json(ready).status == "unhealthy")
        #expect(try json(ready).checks["scheduler"] == "stopping")
        #expect(try RawHTTP.request(port: port, "/healthz").status == 200)
        #expect(try RawHTTP.request(port: port, "/metrics").body.contains("\nlifeboat_scheduler_running 0\n"))

        // Stopped: no longer alive.
        monitor.schedulerStopped()
        let dead = try RawHTTP.request(port: port, "/healthz")
        #expect(dead.status == 503 && dead.body.contains("stopped"), "\(dead.body)")
    }

    @Test func aTokenFileProtectsMetricsWith401WhileHealthzAndReadyzStayOpen() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let monitor = try monitor(dir)
        let tokenFile = try dir.write("metrics-token", "s3cr3t-metrics-token-0123\n")
        chmod(tokenFile, 0o644)
        #expect(throws: LifeboatError.self) { try MetricsToken.read(tokenFile) }  // others can read it: refused
        chmod(tokenFile, 0o600)
        let token = try MetricsToken.read(tokenFile)
        let listener = try #require(try monitor.listen(on: .address(host: "127.0.0.1", port: 0), token: token, logger: quietLogger))
        defer {
            listener.stop()
            monitor.stop()
        }
        let port = listener.port
        let none = try RawHTTP.request(port: port, "/metrics")
        #expect(none.status == 401)
        #expect(none.headers["www-authenticate"] == "Bearer realm=\"lifeboat\"")
        #expect(!none.body.contains("lifeboat_"))
        for wrong in ["Bearer s3cr3t-metrics-token-012", "Bearer s3cr3t-metrics-token-01234", "Bearer S3CR3T-METRICS-TOKEN-0123",
                      "Basic czNjcjN0", "s3cr3t-metrics-token-0123", "Bearer "] {
            #expect(try RawHTTP.request(port: port, "/metrics", headers: [("Authorization", wrong)]).status == 401, "\(wrong)")
        }
        #expect(try RawHTTP.request(port: port, "/metrics", method: "HEAD").status == 401)
        let good = try RawHTTP.request(port: port, "/metrics", headers: [("Authorization", "Bearer s3cr3t-metrics-token-0123")])
        #expect(good.status == 200)
        #expect(good.body.contains("lifeboat_build_info"))
        #expect(try RawHTTP.request(port: port, "/metrics", headers: [("authorization", "bearer s3cr3t-metrics-token-0123")]).status == 200)
        #expect(try RawHTTP.request(port: port, "/healthz").status == 200)
        #expect([200, 503].contains(try RawHTTP.request(port: port, "/readyz").status))  // answered, not 401
    }

    @Test func theListenerBindsLoopbackByDefault() {
        #expect(ListenAddress.default == .address(host: "127.0.0.1", port: 9187))
    }

    @Test func otherPathsAre404HeadHasNoBodyOtherMethodsAre405() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let monitor = try monitor(dir)
        let listener = try #require(try monitor.listen(on: .address(host: "127.0.0.1", port: 0), logger: quietLogger))
        defer { listener.stop() }
        #expect(try RawHTTP.request(port: listener.port, "/nope").status == 404)
        let head = try RawHTTP.request(port: listener.port, "/metrics", method: "HEAD")
        #expect(head.status == 200)
        #expect(head.body.isEmpty)
        #expect(Int(head.headers["content-length"] ?? "") ?? 0 > 0)
        let post = try RawHTTP.request(port: listener.port, "/metrics", method: "POST")
        #expect(post.status == 405)
        #expect(post.headers["allow"] == "GET, HEAD")
    }

    @Test func garbageAnOversizedHeadAndASilentClientDoNotWedgeIt() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let monitor = try monitor(dir)
        let listener = try #require(try monitor.listen(on: .address(host: "127.0.0.1", port: 0), logger: quietLogger))
        defer { listener.stop() }
        let port = listener.port
        // Silent clients: connected, never sending a byte.
        let silent = try (0..<3).map { _ in try RawHTTP.connect(port: port) }
        defer { for fd in silent { close(fd) } }
        let garbage = try RawHTTP.exchange(port: port, [0x16, 0x03, 0x01, 0x00, 0xff, 0x0d, 0x0a, 0x0d, 0x0a])
        #expect(garbage.status == 400)
        let huge = try RawHTTP.exchange(port: port, Array(("GET /" + String(repeating: "a", count: 20000)).utf8))
        #expect(huge.status == 431)
        let started = Date()
        let next = try RawHTTP.request(port: port, "/metrics", timeout: 1)
        #expect(next.status == 200)
        #expect(Date().timeIntervalSince(started) < 1)
        // A client that connects and hangs up at once.
        close(try RawHTTP.connect(port: port))
        #expect(try RawHTTP.request(port: port, "/healthz", timeout: 1).status == 200)  // answered, within a second
    }

    @Test func aPortInUseIsAnErrorNamingTheAddress() throws {
        let first = try HTTPListener(host: "127.0.0.1", port: 0)
        defer { first.stop() }
        #expect {
            _ = try HTTPListener(host: "127.0.0.1", port: first.port)
        } throws: { error in
            let error = error as? LifeboatError
            return error?.exitStatus == 1 && error?.message.contains("127.0.0.1:\(first.port)") == true
                && error?.message.contains("in use") == true
        }
    }
}

@Suite struct WALPushFailureLog {
    @Test func failuresAreCountedPerPolicyAcrossARotation() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let state = StateDirectory(path: dir.subpath("state"))
        try state.prepare()
        let time = Date(timeIntervalSince1970: 1_764_460_800)
        state.recordWALPushFailure(policy: "pg", time: time, error: "connection refused")
        state.recordWALPushFailure(policy: "pg", time: time, error: "timed out")
        state.recordWALPushFailure(policy: "other", time: time, error: "x")
        #expect(state.walPushFailureCounts() == ["pg": 2, "other": 1])
        // Past 1 MiB the file moves aside; both files are counted.
        let long = String(repeating: "e", count: 600 << 10)
        state.recordWALPushFailure(policy: "pg", time: time, error: long)
        state.recordWALPushFailure(policy: "pg", time: time, error: long)
        state.recordWALPushFailure(policy: "pg", time: time, error: "after the rotation")
        #expect(pathExists(state.rotatedWALPushFailuresPath))
        #expect(state.walPushFailureCounts() == ["pg": 5, "other": 1])
        let current = try readTextFile(state.walPushFailuresPath)
        #expect(current.split(separator: "\n").count == 1 && current.contains("after the rotation"))
    }

    /// A line torn by a crash, and garbage, beside good lines: neither is counted, and the
    /// failure recorded after the torn line is not lost with it.
    @Test func aTornLastLineCostsOnlyItself() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let state = StateDirectory(path: dir.subpath("state"))
        try state.prepare()
        let time = Date(timeIntervalSince1970: 1_764_460_800)
        state.recordWALPushFailure(policy: "pg", time: time, error: "first")
        let fd = open(state.walPushFailuresPath, O_WRONLY | O_APPEND)
        _ = Array("not json\n{\"policy\":\"pg\",\"ti".utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        state.recordWALPushFailure(policy: "pg", time: time, error: "after the crash")
        #expect(state.walPushFailureCounts() == ["pg": 2])
    }

    @Test func aStateDirectoryThatCannotBeWrittenIsNoError() {
        let state = StateDirectory(path: "/nonexistent/lifeboat-state")
        state.recordWALPushFailure(policy: "pg", time: Date(), error: "x")
        #expect(state.walPushFailureCounts().isEmpty)
    }
}

@Suite struct PruneCounts {
    @Test func whatAPruneDeletedIsCountedPerPolicyAndKind() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let registry = MetricRegistry()
        try dir.write("lifeboat.yaml", "state_dir: state\nscheduler: { prune: { cron: \"0 4 * * *\" } }\n")
        try dir.write("policies/files.yaml", "policy: files\nsource: { files: { path: src } }\nschedule: { cron: \"0 2 * * *\" }\n")
        let configuration = try ConfigurationLoader.load(directory: dir.path, environment: [:])
        let monitor = SchedulerMonitor(configuration: configuration, context: RunContext(logger: quietLogger), registry: registry)
        let now = Date()
        let run = RunRecord(policy: "*", job: "prune", scheduled: now, started: now, ended: now, outcome: .succeeded)
        monitor.runEnded(key: SchedulerDaemon.pruneKey, record: run, result: SchedulerDaemon.JobResult(deleted: ["files": ["backup": 3, "wal": 40]]))
        monitor.runEnded(key: SchedulerDaemon.pruneKey, record: run, result: SchedulerDaemon.JobResult(deleted: ["files": ["backup": 1]]))
        #expect(registry.value(MetricCatalogue.pruneDeleted, ["files", "backup"]) == 4)
        #expect(registry.value(MetricCatalogue.pruneDeleted, ["files", "wal"]) == 40)
        #expect(registry.value(MetricCatalogue.runsTotal, ["*", "prune", "succeeded"]) == 2)
        #expect(registry.value(MetricCatalogue.lastRunSuccess, ["*", "prune"]) == 1)
    }
}

@Suite struct RestartedDaemon {
    /// The run gauges come back from the history for every job the daemon schedules: a
    /// restart must not resolve the alert on a failed scheduled verify (a damaged backup).
    @Test func theNewestRunOfEachScheduledJobIsReadBackFromTheHistory() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try dir.write("lifeboat.yaml", "state_dir: state\nscheduler: { prune: { cron: \"0 4 * * *\" }, verify: { cron: \"0 5 * * 0\" } }\n")
        try dir.write("policies/files.yaml", "policy: files\nsource: { files: { path: src } }\nschedule: { cron: \"0 2 * * *\" }\n")
        let configuration = try ConfigurationLoader.load(directory: dir.path, environment: [:])
        let monitor = SchedulerMonitor(configuration: configuration, context: RunContext(logger: quietLogger))
        defer { monitor.stop() }
        let then = Date(timeIntervalSince1970: 1_764_460_800)
        func run(_ policy: String, _ job: String, _ outcome: RunRecord.Outcome) -> RunRecord {
            RunRecord(policy: policy, job: job, scheduled: then, started: then, ended: then, outcome: outcome, error: outcome == .failed ? "x" : nil)
        }
        monitor.schedulerStarted(history: [run("files", "backup", .succeeded), run("*", "prune", .succeeded), run("*", "verify", .failed)])
        #expect(monitor.registry.value(MetricCatalogue.lastRunSuccess, ["files", "backup"]) == 1)
        #expect(monitor.registry.value(MetricCatalogue.lastRunSuccess, ["*", "prune"]) == 1)
        #expect(monitor.registry.value(MetricCatalogue.lastRunSuccess, ["*", "verify"]) == 0)
        #expect(monitor.registry.value(MetricCatalogue.lastRunTimestamp, ["*", "verify"]) == then.timeIntervalSince1970)
        #expect(monitor.registry.value(MetricCatalogue.runsTotal, ["*", "verify", "succeeded"]) == 0)
    }
}

@Suite struct WALLastPush {
    @Test func theNewestArchivedWALFileDatesTheLastPush() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try dir.write("lifeboat.yaml", "state_dir: state\nrepositories:\n  local: { path: repo }\ndefault_repository: local\n")
        try dir.write("policies/pg.yaml", "policy: pg\nsource:\n  postgres: { conninfo: \"host=127.0.0.1\" }\nschedule: { cron: \"0 2 * * *\" }\n")
        let configuration = try ConfigurationLoader.load(directory: dir.path, environment: [:])
        let context = RunContext(logger: quietLogger)
        let monitor = SchedulerMonitor(configuration: configuration, context: context)

        monitor.refresh(["pg"])
        #expect(monitor.registry.value(MetricCatalogue.walLastPush, ["pg"]) == nil, "nothing archived: no series")
        #expect(monitor.registry.value(MetricCatalogue.walPushFailures, ["pg"]) == 0)

        let repository = try Repository.open(try configuration.repository(for: configuration.policy(named: "pg")), context: context)
        let archive = WALArchive(repository: repository, policy: "pg", context: context)
        let systemIdentifier: UInt64 = 7_301_234_567_890_123_456
        let record = try archive.record(forCluster: systemIdentifier, segmentSize: 1 << 20)
        let before = Date().addingTimeInterval(-2)
        for number in [3, 4] as [UInt64] {
            let segment = WALSegment(timeline: 1, number: number, segmentSize: 1 << 20)
            let path = try dir.write("pg_wal/" + segment.name, bytes: fakeSegment(segment, systemIdentifier: systemIdentifier))
            _ = try archive.push(path: path, as: .segment(segment), systemIdentifier: systemIdentifier, record: record)
        }
        monitor.refresh(["pg"])
        let pushed = try #require(monitor.registry.value(MetricCatalogue.walLastPush, ["pg"]))
        #expect(pushed >= before.timeIntervalSince1970 && pushed <= Date().timeIntervalSince1970 + 2)
        #expect(monitor.registry.value(MetricCatalogue.repositoryUp, ["pg"]) == 1)
        #expect(monitor.registry.value(MetricCatalogue.backupsInRepository, ["pg"]) == 0)
    }
}
