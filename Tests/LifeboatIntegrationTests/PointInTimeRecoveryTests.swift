import Foundation
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import Testing
import TestSupport

/// A PostgreSQL cluster archiving its WAL with `lifeboat wal-push` into a repository, and the
/// configuration directory that says so. Everything the server's programs read is given to
/// the server's OS user; Lifeboat runs as that user too, as it would beside a real server.
struct ArchivingCluster {
    let dir: TemporaryDirectory
    let pg: PostgresServer
    let env: [String: String]

    /// `repository`: the lifeboat.yaml `repositories:` entry (nil: a local one in the directory);
    /// `policyExtra`: more of the policy's file (`retention: …`).
    init(repository: String? = nil, policyExtra: String = "") throws {
        dir = try TemporaryDirectory("lifeboat-pitr")
        let exe = try LifeboatCLI.executable
        try dir.write("lifeboat.yaml", "repositories:\n  main: \(repository ?? "{ path: repo }")\ndefault_repository: main\n")
        // The port comes from the environment of the command that needs it (backup); wal-push
        // and wal-fetch read the policy without it.
        try dir.write("policies/pg.yaml", """
            policy: pg
            source:
              postgres:
                conninfo: "host=127.0.0.1 port=${PG_PORT:-1} user=postgres dbname=postgres"
                checkpoint: fast
                wal: { timeout: 2m, prefetch: 4 }
                # Small parts: every restore here extracts several at once.
                part_size: 1MiB

            """ + policyExtra)
        try PostgresServer.giveToServerUser(dir.path)
        pg = try PostgresServer.start(settings: [
            "archive_mode": "on",
            "archive_command": "'\(exe) --config \(dir.path) wal-push pg %p'",
        ])
        env = ["PG_PORT": String(pg.port), "PGPASSWORD": pg.superuserPassword]
    }

    func lifeboat(_ arguments: [String], extra: [String: String] = [:]) throws -> LifeboatCLI.Output {
        try LifeboatCLI.run(arguments, config: dir.path, environment: env.merging(extra) { $1 }, user: "postgres")
    }

    /// Switches to a new WAL segment and waits (up to two minutes) until the one it closed is
    /// archived.
    func switchAndWaitForArchive(_ server: PostgresServer? = nil) throws {
        let server = server ?? pg
        // A segment with nothing written since the last switch is not switched away from.
        try server.psql("CREATE TABLE IF NOT EXISTS switches (at timestamptz DEFAULT clock_timestamp()); INSERT INTO switches DEFAULT VALUES")
        let closing = try server.psql("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
        try server.psql("SELECT pg_switch_wal()")
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let archived = try server.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
            if archived >= closing { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw TestSupportError("segment \(closing) was not archived within two minutes: \(try server.psql("SELECT * FROM pg_stat_archiver"))\n\(server.serverLog().suffix(3000))")
    }

    func stop() {
        pg.stop()
        dir.remove()
    }
}

/// Waits (up to two minutes) until a restored server has finished recovery and been promoted.
func waitForPromotion(_ server: PostgresServer) throws {
    let deadline = Date().addingTimeInterval(120)
    while Date() < deadline {
        if try server.psql("SELECT pg_is_in_recovery()") == "f" { return }
        Thread.sleep(forTimeInterval: 0.1)
    }
    throw TestSupportError("the restored server is still in recovery after two minutes:\n\(server.serverLog().suffix(4000))")
}

@Suite(.serialized) struct PointInTimeRecovery {
    /// Inserts a row stamped with the server's clock.
    func insert(_ server: PostgresServer, _ note: String) throws {
        try server.psql("INSERT INTO events (note) VALUES ('\(note)')")
    }

    enum RepositoryKind: String, CaseIterable, Sendable { case local, s3 }

    @Test(.timeLimit(.minutes(10)), arguments: RepositoryKind.allCases)
    func aTargetTimeRestoresExactlyTheRowsUpToIt(repository kind: RepositoryKind) async throws {
        try await offThePool {
            // The server's archive_command and restore_command see only the server's environment:
            // an S3 repository's keys are written in lifeboat.yaml for the test.
            let s3 = kind == .s3 ? try S3TestServer.start() : nil
            defer { s3?.stop() }
            let cluster = try ArchivingCluster(repository: s3.map {
                "{ s3: { endpoint: \"\($0.endpoint)\", region: \($0.region), bucket: lifeboat-test, prefix: pitr, access_key_id: \"\($0.accessKeyID)\", secret_access_key: \"\($0.secretAccessKey)\" } }"
            })
            defer { cluster.stop() }
            let pg = cluster.pg
            try pg.psql("CREATE TABLE events (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), note text)")
            try insert(pg, "before the backup")
            let backup = try cluster.lifeboat(["backup", "pg"])
            #expect(backup.status == 0, "\(backup.all)")

            var target = ""
            for i in 1...6 {
                try insert(pg, "row \(i)")
                if i == 3 { target = try pg.psql("SELECT clock_timestamp()") }
                try cluster.switchAndWaitForArchive()
            }
            let expected = try pg.psql("SELECT count(*) FROM events WHERE at <= '\(target)'")
            #expect(expected == "4")

            let list = try cluster.lifeboat(["list", "pg"])
            #expect(list.status == 0 && list.stdout.contains("point-in-time recovery of pg: from"), "\(list.all)")

            let restored = try PostgresServer.makeServerDirectory()
            let restore = try LifeboatCLI.run(["restore", "pg", "--to", restored + "/data", "--target-time", target],
                                              config: cluster.dir.path, environment: cluster.env)
            #expect(restore.status == 0, "\(restore.all)")
            // PostgreSQL's own verifier passes on the restored base backup before recovery starts.
            let verify = try ChildProcess.run(pg.binDir + "/pg_verifybackup", ["-n", restored + "/data"])
            #expect(verify.status.isSuccess, "\(verify.stdout)\(verify.stderr)")

            let server = try PostgresServer.start(existing: restored)
            defer { server.stop() }
            try waitForPromotion(server)
            #expect(try server.psql("SELECT count(*) FROM events") == "4", "\(server.serverLog().suffix(3000))")
            #expect(try server.psql("SELECT max(note) FROM events WHERE note LIKE 'row %'") == "row 3")
            #expect(try server.psql("SELECT pg_is_in_recovery()") == "f", "promoted at the target")
        }
    }

    @Test(.timeLimit(.minutes(10))) func aTargetOutsideTheRecoverableRangeIsRefusedAndTheRangeNamed() async throws {
        try await offThePool {
            let cluster = try ArchivingCluster()
            defer { cluster.stop() }
            let before = try cluster.pg.psql("SELECT clock_timestamp() - interval '1 hour'")
            #expect(try cluster.lifeboat(["backup", "pg"]).status == 0)
            try cluster.switchAndWaitForArchive()
            let restored = try PostgresServer.makeServerDirectory()
            for time in [before, "2099-01-01 00:00:00Z"] {
                let restore = try LifeboatCLI.run(["restore", "pg", "--to", restored + "/data", "--target-time", time],
                                                  config: cluster.dir.path, environment: cluster.env)
                #expect(restore.status == 2, "\(restore.all)")
                #expect(restore.stderr.contains("outside the recoverable range") && restore.stderr.contains("on timeline 1"), "\(restore.stderr)")
                #expect(try directoryEntries(restored).isEmpty, "nothing was written")
            }
        }
    }

    @Test(.timeLimit(.minutes(10))) func restoringToLatestAfterATimelineSwitchReachesTheNewestRow() async throws {
        try await offThePool {
            let cluster = try ArchivingCluster()
            defer { cluster.stop() }
            let pg = cluster.pg
            try pg.psql("CREATE TABLE events (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), note text)")
            #expect(try cluster.lifeboat(["backup", "pg"]).status == 0)
            try insert(pg, "on timeline 1")
            try cluster.switchAndWaitForArchive()

            // Restore and promote: the restored cluster archives its timeline 2 into the same policy.
            let first = try PostgresServer.makeServerDirectory()
            let restore = try LifeboatCLI.run(["restore", "pg", "--to", first + "/data"], config: cluster.dir.path, environment: cluster.env)
            #expect(restore.status == 0, "\(restore.all)")
            pg.stop()
            let promoted = try PostgresServer.start(existing: first)
            defer { promoted.stop() }
            try waitForPromotion(promoted)
            #expect(try promoted.psql("SELECT timeline_id FROM pg_control_checkpoint()") == "2")
            try insert(promoted, "on timeline 2")
            let backup = try LifeboatCLI.run(["backup", "pg"], config: cluster.dir.path,
                                             environment: cluster.env.merging(["PG_PORT": String(promoted.port)]) { $1 }, user: "postgres")
            #expect(backup.status == 0, "\(backup.all)")
            try insert(promoted, "newest")
            try cluster.switchAndWaitForArchive(promoted)

            let second = try PostgresServer.makeServerDirectory()
            let again = try LifeboatCLI.run(["restore", "pg", "--to", second + "/data"], config: cluster.dir.path, environment: cluster.env)
            #expect(again.status == 0, "\(again.all)")
            promoted.stop()
            let server = try PostgresServer.start(existing: second)
            defer { server.stop() }
            try waitForPromotion(server)
            #expect(try server.psql("SELECT string_agg(note, ',' ORDER BY id) FROM events") == "on timeline 1,on timeline 2,newest",
                    "\(server.serverLog().suffix(3000))")
        }
    }

    @Test(.timeLimit(.minutes(10))) func aMachineWithOnlyTheRepositoryRestoresAndReplays() async throws {
        try await offThePool {
            let cluster = try ArchivingCluster()
            defer { cluster.stop() }
            let pg = cluster.pg
            try pg.psql("CREATE TABLE events (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), note text)")
            #expect(try cluster.lifeboat(["backup", "pg"]).status == 0)
            try insert(pg, "after the backup")
            try cluster.switchAndWaitForArchive()

            // No configuration: the repository's address alone, and restore_command uses it too.
            let restored = try PostgresServer.makeServerDirectory()
            let restore = try LifeboatCLI.run(["restore", "pg", "--repository", cluster.dir.subpath("repo"), "--to", restored + "/data"])
            #expect(restore.status == 0, "\(restore.all)")
            let conf = try String(contentsOfFile: restored + "/data/postgresql.auto.conf", encoding: .utf8)
            let restoreCommand = conf.split(separator: "\n").last { $0.hasPrefix("restore_command") }.map(String.init) ?? ""
            #expect(restoreCommand.hasSuffix("wal-fetch --repository \(cluster.dir.subpath("repo")) pg %f %p'") && !restoreCommand.contains("--config"),
                    "\(restoreCommand)")
            pg.stop()
            let server = try PostgresServer.start(existing: restored)
            defer { server.stop() }
            try waitForPromotion(server)
            #expect(try server.psql("SELECT note FROM events") == "after the backup", "\(server.serverLog().suffix(3000))")
        }
    }

    @Test(.timeLimit(.minutes(10))) func aBaseBackupWhoseWALIsGoneFailsVerifyAndIsMarkedInTheList() async throws {
        try await offThePool {
            let cluster = try ArchivingCluster()
            defer { cluster.stop() }
            let backup = try cluster.lifeboat(["backup", "pg", "--json"])
            #expect(backup.status == 0, "\(backup.all)")
            let manifest = try JSON.decode(BackupSummary.self, from: Data(backup.stdout.utf8)).manifest
            let record = try #require(try manifest.source.details(as: PostgresRecordView.self).physical)
            #expect(try cluster.lifeboat(["verify", "pg", manifest.id]).status == 0)

            let segment = try #require(record.requiredSegments.first)
            let key = WALArchiveLayout.key(policy: "pg", file: .segment(segment))
            try FileManager.default.removeItem(atPath: cluster.dir.subpath("repo/\(key)"))
            let verify = try cluster.lifeboat(["verify", "pg", manifest.id])
            #expect(verify.status == 1, "\(verify.all)")
            #expect(verify.all.contains("WAL segment \(segment.name)") && verify.all.contains("not in the repository"), "\(verify.all)")
            let list = try cluster.lifeboat(["list", "pg"])
            #expect(list.stdout.contains("\(manifest.id): committed — cannot be recovered: segment \(segment.name) it needs is not archived"), "\(list.all)")
            let restored = try PostgresServer.makeServerDirectory()
            let restore = try LifeboatCLI.run(["restore", "pg", manifest.id, "--to", restored + "/data"], config: cluster.dir.path, environment: cluster.env)
            #expect(restore.status == 2 && restore.stderr.contains("cannot be recovered"), "\(restore.all)")
        }
    }

    /// A cluster whose table `events` holds one row, `note`, in a base backup whose WAL is archived.
    func clusterWithABackedUpRow(_ note: String) throws -> ArchivingCluster {
        let cluster = try ArchivingCluster()
        do {
            try cluster.pg.psql("CREATE TABLE events (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), note text)")
            try insert(cluster.pg, note)
            let backup = try cluster.lifeboat(["backup", "pg"])
            guard backup.status == 0 else { throw TestSupportError("the backup failed: \(backup.all)") }
            try cluster.switchAndWaitForArchive()
            return cluster
        } catch {
            cluster.stop()
            throw error
        }
    }

    @Test(.timeLimit(.minutes(10))) func aDeltaRestoreBringsAChangedDataDirectoryBack() async throws {
        try await offThePool {
            let cluster = try clusterWithABackedUpRow("kept")
            defer { cluster.stop() }

            let restored = try PostgresServer.makeServerDirectory()
            #expect(try LifeboatCLI.run(["restore", "pg", "--to", restored + "/data", "--target", "immediate"],
                                        config: cluster.dir.path, environment: cluster.env).status == 0)
            // The operator's copy drifts: a file changes, a stray file appears.
            try Data("stray".utf8).write(to: URL(fileURLWithPath: restored + "/data/base/stray-file"))
            let refused = try LifeboatCLI.run(["restore", "pg", "--to", restored + "/data"], config: cluster.dir.path, environment: cluster.env)
            #expect(refused.status == 2 && refused.stderr.contains("not empty"), "\(refused.all)")
            let delta = try LifeboatCLI.run(["restore", "pg", "--to", restored + "/data", "--target", "immediate", "--delta"],
                                            config: cluster.dir.path, environment: cluster.env)
            #expect(delta.status == 0, "\(delta.all)")
            #expect(delta.stdout.contains("already as in the backup"), "\(delta.stdout)")
            #expect(!pathExists(restored + "/data/base/stray-file"))
            let server = try PostgresServer.start(existing: restored)
            defer { server.stop() }
            #expect(try server.psql("SELECT note FROM events") == "kept")
        }
    }

    @Test(.timeLimit(.minutes(10))) func aRestoreKilledHalfWayCannotStartAndADeltaRestoreFinishesIt() async throws {
        try await offThePool {
            let cluster = try clusterWithABackedUpRow("kept")
            defer { cluster.stop() }
            let pg = cluster.pg

            // SIGKILL once the first part is in the directory: no cleanup runs.
            let restored = try PostgresServer.makeServerDirectory()
            let killed = try LifeboatCLI.run(["restore", "pg", "--to", restored + "/data", "--target", "immediate", "--parallel", "1"],
                                             config: cluster.dir.path, environment: cluster.env.merging([CrashPoint.variable: CrashPoint.restoringPart.rawValue]) { $1 })
            #expect(killed.status == 128 + SIGKILL, "killed by SIGKILL: \(killed.all)")
            #expect(!(try directoryEntries(restored + "/data")).isEmpty, "the first part was written")
            #expect(!pathExists(restored + "/data/recovery.signal"), "recovery is configured last")
            // PostgreSQL refuses the half-restored directory: no recovery.signal, and no WAL for backup_label.
            do {
                let started = try PostgresServer.start(existing: restored, timeout: 20)
                started.stop()
                Issue.record("a half-restored data directory started")
            } catch {}

            let refused = try LifeboatCLI.run(["restore", "pg", "--to", restored + "/data"], config: cluster.dir.path, environment: cluster.env)
            #expect(refused.status == 2 && refused.stderr.contains("not empty"), "\(refused.all)")
            let delta = try LifeboatCLI.run(["restore", "pg", "--to", restored + "/data", "--target", "immediate", "--delta"],
                                            config: cluster.dir.path, environment: cluster.env)
            #expect(delta.status == 0, "\(delta.all)")
            let verify = try ChildProcess.run(pg.binDir + "/pg_verifybackup", ["-n", restored + "/data"])
            #expect(verify.status.isSuccess, "\(verify.stdout)\(verify.stderr)")
            let server = try PostgresServer.start(existing: restored)
            defer { server.stop() }
            #expect(try server.psql("SELECT note FROM events") == "kept")
        }
    }
}

@Suite struct PointInTimeRecoveryOptions {
    @Test(arguments: [
        (["--target-time", "yesterday"], "'yesterday' is not a time for --target-time"),
        (["--target-time", "2026-11-29 10:00:00Z", "--target-lsn", "0/3000000"], "--target-time and --target-lsn cannot be given together"),
        (["--target-lsn", "3000000"], "'3000000' is not a WAL position for --target-lsn"),
        (["--target-xid", "abc"], "'abc' is not a transaction id for --target-xid"),
        (["--target", "soon"], "'soon' is not a value for --target"),
        (["--target-action", "pause"], "--target-action needs a recovery target"),
        (["--target", "immediate", "--target-action", "explode"], "'explode' is not a value for --target-action"),
        (["--target-timeline", "0"], "'0' is not a value for --target-timeline"),
        (["--tablespace-map", "relative=/new"], "'relative=/new' is not OLD=NEW for --tablespace-map"),
    ])
    func badRecoveryOptionsAreBadInput(options: [String], message: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try dir.write("policies/pg.yaml", "policy: pg\nsource:\n  postgres: { conninfo: \"host=127.0.0.1\" }\n")
        let result = try LifeboatCLI.run(["restore", "pg", "--to", dir.path + "/data"] + options, config: dir.path)
        #expect(result.status == 2, "\(result.all)")
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(!pathExists(dir.path + "/data"))
    }
}

/// What `backup --json` prints, as far as these tests read it.
struct BackupSummary: Decodable {
    var manifest: Manifest
}

/// A PostgreSQL manifest record's physical part.
struct PostgresRecordView: Decodable {
    var physical: PhysicalBackupRecord?
}
