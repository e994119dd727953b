import Foundation
import Glibc
import LifeboatCore
import LifeboatEngine
import LifeboatHTTP
import LifeboatIO
import LifeboatS3
import Synchronization
import Testing
import TestSupport

/// Processes whose command line names a drill's scratch directory (a scratch PostgreSQL or
/// Redis server left running).
func scratchProcesses() -> [String] {
    ((try? directoryEntries("/proc")) ?? []).compactMap { name -> String? in
        guard Int32(name) != nil, let bytes = FileManager.default.contents(atPath: "/proc/\(name)/cmdline") else { return nil }
        let command = String(decoding: bytes.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        return command.contains("lifeboat-drill-") ? "\(name): \(command)" : nil
    }
}

/// The scratch directories left under `tmp`.
func scratchDirectories(_ tmp: String) -> [String] {
    ((try? directoryEntries(tmp)) ?? []).filter { $0.hasPrefix("lifeboat-drill-") }
}

/// The drill's markers left in the state directory.
func scratchMarkers(_ state: String) -> [String] {
    (try? directoryEntries(state + "/drills/scratch")) ?? []
}

/// A base-backup policy archiving WAL (`ArchivingCluster`) and an S3 mirror policy of a moto
/// bucket, in one configuration, with runbooks written by each test.
final class DrillFixture: Sendable {
    let cluster: ArchivingCluster
    let s3: S3TestServer
    let tmp: String
    let state: String

    init() throws {
        s3 = try S3TestServer.start(buckets: ["assets", "restored"])
        do {
            cluster = try ArchivingCluster()
        } catch {
            s3.stop()
            throw error
        }
        let dir = cluster.dir
        tmp = dir.subpath("tmp")
        state = dir.subpath(".lifeboat/state")
        try makeDirectories(tmp, mode: 0o755)
        try dir.write("policies/assets.yaml", """
            policy: assets
            source:
              s3:
                endpoint: "\(s3.endpoint)"
                region: \(s3.region)
                access_key_id: "\(s3.accessKeyID)"
                secret_access_key: "\(s3.secretAccessKey)"
                buckets: [assets]
            """)
        try PostgresServer.giveToServerUser(dir.path)
        let assets = try client("assets")
        for i in 1...3 { _ = try assets.putObject(key: "img/\(i).png", bytes: Array("image \(i)".utf8)) }
    }

    var dir: TemporaryDirectory { cluster.dir }

    func client(_ bucket: String) throws -> S3Client {
        try S3Client(
            configuration: S3Client.Configuration(
                endpoint: s3.endpoint, region: s3.region, bucket: bucket, pathStyle: true,
                credentials: AWSCredentials(accessKeyID: s3.accessKeyID, secretAccessKey: s3.secretAccessKey),
                retry: RetryPolicy(maxAttempts: 3, baseDelay: 0.01, maxDelay: 0.05)),
            http: try HTTPClient(), logger: quietLogger)
    }

    /// Six events, a base backup after the fifth, the sixth in archived WAL only; a snapshot of
    /// the bucket.
    func backUp() throws {
        let pg = cluster.pg
        try pg.psql("CREATE TABLE events (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), note text)")
        for i in 1...5 { try pg.psql("INSERT INTO events (note) VALUES ('row \(i)')") }
        let backup = try cluster.lifeboat(["backup", "pg"])
        #expect(backup.status == 0, "\(backup.all)")
        try pg.psql("INSERT INTO events (note) VALUES ('row 6')")
        try cluster.switchAndWaitForArchive()
        let mirror = try LifeboatCLI.run(["backup", "assets"], config: dir.path)
        #expect(mirror.status == 0, "\(mirror.all)")
    }

    /// `lifeboat drill` as root (its scratch PostgreSQL runs as the data directory's owner).
    func drill(_ arguments: [String], extra: [String: String] = [:]) throws -> LifeboatCLI.Output {
        try LifeboatCLI.run(["drill"] + arguments, config: dir.path, environment: cluster.env.merging(["TMPDIR": tmp]) { $1 }.merging(extra) { $1 })
    }

    func writeRunbook(_ name: String, objectives: String = "{ rto: 10m, rpo: 1h }", extraSteps: String = "") throws {
        try dir.write("runbooks/\(name).yaml", """
            runbook: \(name)
            objectives: \(objectives)
            steps:
              - restore: pg
                target: { data_dir: /var/lib/postgresql/restored }
              - restore: assets
                target: { s3: "s3://restored/" }
            \(extraSteps)
              - id: check
                when: drill
                health:
                  - postgres: { conninfo: "host=${TARGET_RESTORE_PG_HOST} port=${TARGET_RESTORE_PG_PORT} user=postgres password=secret-pw-1 dbname=postgres", query: "select count(*) from events", expect: "6" }
                  - s3: { endpoint: "\(s3.endpoint)", region: \(s3.region), bucket: restored, access_key_id: "\(s3.accessKeyID)", secret_access_key: "\(s3.secretAccessKey)", min_objects: 3 }
                within: 1m
                interval: 1s
            """)
        try PostgresServer.giveToServerUser(dir.path)
    }

    /// Nothing of any drill is left: no server, no directory, no marker, no object.
    func expectNothingLeft(_ when: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(scratchProcesses().isEmpty, "\(when): \(scratchProcesses())", sourceLocation: sourceLocation)
        #expect(scratchDirectories(tmp).isEmpty, "\(when): \(scratchDirectories(tmp))", sourceLocation: sourceLocation)
        #expect(scratchMarkers(state).isEmpty, "\(when): \(scratchMarkers(state))", sourceLocation: sourceLocation)
        #expect(try client("restored").listObjects(prefix: "").isEmpty, "\(when): scratch objects left", sourceLocation: sourceLocation)
    }

    func stop() {
        cluster.stop()
        s3.stop()
    }
}

@Suite(.serialized, .timeLimit(.minutes(10)))
struct Drills {
    @Test func aDrillOfABaseBackupAndAMirrorPassesWritesReportsAndHistoryAndLeavesNothing() async throws {
        try await offThePool {
            let fixture = try DrillFixture()
            defer { fixture.stop() }
            try fixture.backUp()
            try fixture.writeRunbook("platform")
            let check = try LifeboatCLI.run(["check", "--offline"], config: fixture.dir.path, environment: fixture.cluster.env)
            #expect(check.status == 0, "\(check.all)")

            let drill = try fixture.drill(["platform"])
            #expect(drill.status == 0, "\(drill.all)")
            #expect(drill.stdout.contains("drill of runbook platform: PASSED"), "\(drill.stdout)")
            // Progress names the scratch target, never the step's own as the destination.
            #expect(drill.stdout.contains("restore-pg: restore policy 'pg' into a scratch target (not data directory '/var/lib/postgresql/restored') …"),
                    "\(drill.stdout)")
            try fixture.expectNothingLeft("after a passing drill")

            let directories = try directoryEntries(fixture.state + "/drills/platform")
            #expect(directories.count == 1)
            let reports = fixture.state + "/drills/platform/" + (directories.first ?? "")
            #expect(try directoryEntries(reports) == ["report.html", "report.json", "report.xml"])
            let report = try JSON.decode(DrillReport.self, from: Data(try readTextFile(reports + "/report.json").utf8))
            #expect(report.passed, "\(report.failures)")
            #expect(report.mode == .drill)
            let health = try #require(report.allSteps.first { $0.id == "check" })
            #expect(health.checks.count == 2 && health.checks.allSatisfy { $0.passed }, "\(health.checks)")
            #expect(health.checks.contains { $0.target.contains("lifeboat-drill-") }, "the s3 check looked into the scratch prefix: \(health.checks)")
            // RPO: per store, the drill's start minus the point restored (the last replayed commit
            // of the scratch server for the base backup); the worst counts.
            let pg = try #require(report.stores.first { $0.policy == "pg" })
            let pgPoint = try #require(pg.point)
            let sixth = try fixture.cluster.pg.psql("SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM events WHERE note = 'row 6'")
            let sixthTime = try #require(RecoveryTarget.parseTime(sixth))
            // (report.json keeps whole seconds.)
            #expect(pgPoint >= sixthTime.addingTimeInterval(-1), "restored through the sixth row: \(pgPoint) vs \(sixthTime)")
            for store in report.stores {
                let point = try #require(store.point)
                #expect(abs((store.rpo ?? -9) - max(0, report.start.timeIntervalSince(point))) < 1, "\(store) started \(report.start)")
                #expect((store.rpo ?? -1) >= 0)
            }
            #expect(report.rpo == report.stores.compactMap(\.rpo).max())
            let rto = try #require(report.rto)
            #expect(rto > 0 && rto <= report.end.timeIntervalSince(report.start) + 1, "RTO within the drill (whole seconds in report.json)")
            let history = try readTextFile(fixture.state + "/drills/platform.jsonl").split(separator: "\n")
            #expect(history.count == 1)
            let audit = try readTextFile(fixture.state + "/audit.jsonl")
            #expect(audit.contains("\"mode\":\"drill\"") || audit.contains("\"mode\" : \"drill\""), "\(audit)")
        }
    }

    @Test func aDrillWhoseBaseBackupIsDamagedFailsNamingTheStepAndTheCauseAndLeavesNothing() async throws {
        try await offThePool {
            let fixture = try DrillFixture()
            defer { fixture.stop() }
            try fixture.backUp()
            try fixture.writeRunbook("platform")
            let backups = fixture.dir.subpath("repo/pg/backups")
            let id = try #require(try directoryEntries(backups).first)
            let artifacts = try directoryEntries("\(backups)/\(id)/data").filter { $0.hasSuffix(".tar.zst") }
            let artifact = try #require(artifacts.first)
            try flipByte("\(backups)/\(id)/data/\(artifact)")

            let drill = try fixture.drill(["platform"])
            #expect(drill.status == 1, "\(drill.all)")
            #expect(drill.stdout.contains("FAILED"), "\(drill.stdout)")
            #expect(drill.stderr.contains("step 'restore-pg' (restore) failed"), "\(drill.stderr)")
            #expect(drill.stderr.contains("SHA-256") || drill.stderr.contains("checksum") || drill.stderr.contains("damaged") || drill.stderr.contains("zstd"),
                    "the cause is named: \(drill.stderr)")
            try fixture.expectNothingLeft("after a failed drill")
            let report = try readTextFile(fixture.state + "/drills/platform.jsonl")
            #expect(report.contains("\"passed\":false"), "\(report)")
        }
    }

    @Test func recoverRestoresABaseBackupIntoADataDirectoryThatRecoversThroughWalFetch() async throws {
        try await offThePool {
            let fixture = try DrillFixture()
            defer { fixture.stop() }
            try fixture.backUp()
            let target = fixture.dir.subpath("restored/data")
            try fixture.dir.write("runbooks/pg-only.yaml", """
                runbook: pg-only
                steps:
                  - restore: pg
                    target: { data_dir: \(target) }
                """)
            let recover = try LifeboatCLI.run(["recover", "pg-only", "--yes"], config: fixture.dir.path, environment: fixture.cluster.env)
            #expect(recover.status == 0, "\(recover.all)")
            let settings = try readTextFile(target + "/postgresql.auto.conf")
            #expect(settings.contains("wal-fetch") && settings.contains("'pg'") || settings.contains(" pg %f %p"), "\(settings)")
        }
    }

    @Test func aSigtermHalfWayRemovesEverythingAndAKilledDrillIsCleanedUpByTheNext() async throws {
        try await offThePool {
            let fixture = try DrillFixture()
            defer { fixture.stop() }
            try fixture.backUp()
            try fixture.writeRunbook("platform", extraSteps: """
                  - id: hold
                    when: drill
                    run: [sleep, "${DRILL_SLEEP:-0}"]
                """)
            func sleeper() -> Int32? {
                ((try? directoryEntries("/proc")) ?? []).compactMap(Int32.init).first { pid in
                    // The run step's command, as resolved in PATH (`/usr/bin/sleep 117.25`).
                    FileManager.default.contents(atPath: "/proc/\(pid)/cmdline").map { String(decoding: $0, as: UTF8.self) }?.hasSuffix("sleep\u{0}117.25\u{0}") == true
                }
            }
            func startHalfWay() throws -> LifeboatCLI.Running {
                let running = try LifeboatCLI.start(["drill", "platform"], config: fixture.dir.path,
                                                    environment: fixture.cluster.env.merging(["TMPDIR": fixture.tmp, "DRILL_SLEEP": "117.25"]) { $1 })
                let deadline = Date().addingTimeInterval(180)
                while sleeper() == nil && Date() < deadline { usleep(100_000) }
                #expect(sleeper() != nil, "the drill reached its 'hold' step")
                #expect(!scratchProcesses().isEmpty, "a scratch server runs half-way")
                #expect(try !fixture.client("restored").listObjects(prefix: "").isEmpty, "scratch objects exist half-way")
                return running
            }

            // SIGTERM: 143, and nothing left.
            let terminated = try startHalfWay()
            kill(terminated.pid, SIGTERM)
            let ended = try terminated.wait()
            #expect(ended.status == 143, "\(ended.all)")
            try fixture.expectNothingLeft("after SIGTERM")
            #expect(sleeper() == nil)

            // SIGKILL: the server, the directory, the objects and the marker stay ...
            let killed = try startHalfWay()
            kill(killed.pid, SIGKILL)
            _ = try killed.wait()
            if let pid = sleeper() { kill(pid, SIGKILL) }
            #expect(!scratchProcesses().isEmpty)
            #expect(scratchMarkers(fixture.state).count == 1)
            // ... until the next drill, which removes them first.
            let next = try fixture.drill(["platform"])
            #expect(next.status == 0, "\(next.all)")
            #expect(next.stdout.contains("removed the scratch targets of earlier drills that did not end"), "\(next.stdout)")
            try fixture.expectNothingLeft("after the drill following a SIGKILL")
        }
    }
}

/// Drills of a files policy, in this process, with a clock the test sets.
@Suite(.timeLimit(.minutes(10)))
struct DrillObjectives {
    func configuration(_ dir: TemporaryDirectory, rpo: String = "1s", schedule: String = "") throws -> Configuration {
        try dir.write("lifeboat.yaml", "repositories:\n  main: { path: repo }\ndefault_repository: main\nstate_dir: state\nscheduler: { catch_up: 1h }\n")
        try dir.write("src/a.txt", "alpha\n")
        try dir.write("policies/files.yaml", "policy: files\nsource: { files: { path: src } }\n")
        try dir.write("runbooks/files-drill.yaml", """
            runbook: files-drill
            objectives: { rto: 10m, rpo: \(rpo) }
            \(schedule)
            steps:
              - restore: files
                target: { path: /srv/files }
              - id: check
                when: drill
                health:
                  - command: [test, -f, "${TARGET_RESTORE_FILES_DIR}/a.txt"]
            """)
        let configuration = try ConfigurationLoader.load(directory: dir.path, environment: [:])
        #expect(configuration.problems.isEmpty, "\(configuration.problems.map(\.error))")
        return configuration
    }

    @Test func aDrillWhoseRPOExceedsTheObjectiveFailsAndLeavesNothing() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            let configuration = try configuration(dir)
            #expect(try BackupCommand(configuration: configuration, context: RunContext(logger: quietLogger)).run(policy: "files").manifest.id.isEmpty == false)
            // The drill runs two hours after the backup, by its clock.
            let later = Date().addingTimeInterval(7200)
            var context = RunContext(logger: quietLogger, clock: { later })
            context.temporaryDirectory = dir.subpath("tmp")
            let result = try DrillCommand(configuration: configuration, context: context).run(runbook: "files-drill")
            #expect(!result.report.passed)
            #expect(result.report.failures.count == 1 && result.report.failures[0].hasPrefix("RPO 2h"), "\(result.report.failures)")
            #expect(result.report.rtoMet == true)
            #expect(result.report.rpoMet == false)
            #expect(result.report.allSteps.allSatisfy { $0.outcome == .passed }, "\(result.report.allSteps)")
            #expect(scratchDirectories(dir.subpath("tmp")).isEmpty)
            #expect(scratchMarkers(dir.subpath("state")).isEmpty)
        }
    }

    @Test func theSchedulerRunsAScheduledDrillAndSetsTheDrillGauges() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            let configuration = try configuration(dir, rpo: "1h", schedule: "schedule: { cron: \"* * * * *\" }")
            #expect(try BackupCommand(configuration: configuration, context: RunContext(logger: quietLogger)).run(policy: "files").manifest.id.isEmpty == false)
            let clock = MonitoringEndToEnd.Clock()
            var context = RunContext(logger: quietLogger, clock: { clock.now() })
            context.temporaryDirectory = dir.subpath("tmp")
            let daemon = try SchedulerDaemon.backups(configuration: configuration, context: context, lockWait: 10)
            let monitor = SchedulerMonitor(configuration: configuration, context: context)
            daemon.observer = monitor
            let loop = Background { try daemon.run() }
            defer {
                daemon.stop()
                _ = loop.wait(timeout: 30)
                monitor.stop()
            }
            // The missed firing of the last minute runs at once (catch-up).
            let deadline = Date().addingTimeInterval(60)
            func metrics() -> String { monitor.registry.render() }
            while !metrics().contains("lifeboat_drill_last_success{runbook=\"files-drill\"}") && Date() < deadline { usleep(100_000) }
            let text = metrics()
            #expect(text.contains("lifeboat_drill_last_success{runbook=\"files-drill\"} 1"), "\(text)")
            #expect(text.contains("lifeboat_drill_rpo_objective_seconds{runbook=\"files-drill\"} 3600"), "\(text)")
            #expect(text.contains("lifeboat_drill_rto_objective_seconds{runbook=\"files-drill\"} 600"), "\(text)")
            #expect(text.contains("lifeboat_drill_rpo_seconds{runbook=\"files-drill\"}"), "\(text)")
            #expect(text.contains("lifeboat_last_run_success{policy=\"files-drill\",operation=\"drill\"} 1"), "\(text)")
            let history = try readTextFile(dir.subpath("state/history.jsonl"))
            #expect(history.contains("\"job\":\"drill\""), "\(history)")
            #expect(history.contains("\"policy\":\"files-drill\""), "\(history)")

            // A daemon started later seeds the gauges from the drill history.
            let seeded = SchedulerMonitor(configuration: configuration, context: context)
            seeded.schedulerStarted(history: [])
            defer { seeded.stop() }
            #expect(seeded.registry.render().contains("lifeboat_drill_last_success{runbook=\"files-drill\"} 1"))
        }
    }
}

/// A drill of a Redis backup: a scratch redis-server loads the restored RDB file.
@Suite(.timeLimit(.minutes(10)))
struct RedisDrills {
    @Test func aScratchRedisServesTheRestoredKeysAndIsStoppedAfterwards() async throws {
        try await offThePool {
            let server = try RedisServer.start()
            defer { server.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try seedRedis(server, bulk: 10)
            try redisConfig(dir, port: server.port, mode: "replication")
            #expect(try LifeboatCLI.run(["backup", "cache"], config: dir.path).status == 0)
            try dir.write("runbooks/cache-drill.yaml", """
                runbook: cache-drill
                steps:
                  - restore: cache
                    target: { path: /var/lib/redis }
                  - id: check
                    when: drill
                    health:
                      - tcp: "${TARGET_RESTORE_CACHE_HOST}:${TARGET_RESTORE_CACHE_PORT}"
                      - command: [sh, -c, "test \\"$(redis-cli -p ${TARGET_RESTORE_CACHE_PORT} dbsize)\\" -gt 10"]
                """)
            let tmp = dir.subpath("tmp")
            try makeDirectories(tmp, mode: 0o755)
            let drill = try LifeboatCLI.run(["drill", "cache-drill"], config: dir.path, environment: ["TMPDIR": tmp])
            #expect(drill.status == 0, "\(drill.all)")
            #expect(drill.stdout.contains("2 checks passed"), "\(drill.stdout)")
            // The scratch server (whose title redis rewrites to `redis-server 127.0.0.1:PORT`) is gone.
            let state = dir.subpath(".lifeboat/state/drills/cache-drill")
            let report = try JSON.decode(DrillReport.self, from: Data(try readTextFile("\(state)/\(try #require(try directoryEntries(state).first))/report.json").utf8))
            let address = try #require(report.allSteps.first { $0.id == "check" }?.checks.first { $0.kind == "tcp" }?.target)
            let titles = ((try? directoryEntries("/proc")) ?? []).compactMap { pid -> String? in
                guard Int32(pid) != nil, let bytes = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
                let text = String(decoding: bytes, as: UTF8.self)
                return text.contains("redis-server") && text.contains(address) ? text : nil
            }
            #expect(address.hasPrefix("127.0.0.1:") && titles.isEmpty, "\(address): \(titles)")
            #expect(scratchProcesses().isEmpty, "\(scratchProcesses())")
            #expect(scratchDirectories(tmp).isEmpty)
        }
    }
}
