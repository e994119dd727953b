import Foundation
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import LifeboatS3
import Testing
import TestSupport

/// `lifeboat prune` as users run it, on a local and an S3 repository: killed half-way with
/// `SIGKILL`, beside backups, with its guards; and on a PostgreSQL cluster archiving its WAL,
/// where the recovery window must keep every moment it promises restorable.
@Suite(.timeLimit(.minutes(10)), .serialized)
struct PruneRuns {
    struct Case: Sendable, CustomTestStringConvertible {
        var point: CrashPoint
        var kind: RepositoryKind
        var testDescription: String { "\(point.rawValue) (\(kind.rawValue))" }
    }

    static let crashCases = RepositoryKind.allCases.flatMap { kind in
        [CrashPoint.pruneManifestDeleted, .pruneDataDeleted].map { Case(point: $0, kind: kind) }
    }

    func committed(_ fixture: ConcurrencyFixture) throws -> [String] {
        try fixture.list(all: false).compactMap { $0["id"] as? String }
    }

    /// A prune killed after the first manifest it deletes, or after the first backup's data,
    /// leaves every backup `list` shows verifiable, the half-deleted one listed as interrupted;
    /// the next prune gets past the dead prune's lock and finishes.
    @Test(arguments: crashCases)
    func aPruneKilledHalfWayLeavesEveryListedBackupUsableAndTheNextOneFinishes(_ crash: Case) async throws {
        try await offThePool {
            let fixture = try ConcurrencyFixture(crash.kind, bigFileBytes: 64 << 10, policyExtra: "retention: { keep_last: 1 }\n")
            defer { fixture.remove() }
            // First the leftovers of a crashed backup (deleted first: its id is the oldest),
            // then three committed backups.
            let crashed = try fixture.run(["backup", ConcurrencyFixture.policy], environment: [CrashPoint.variable: CrashPoint.beforeCommit.rawValue])
            #expect(crashed.status == 128 + SIGKILL, "\(crashed.stderr)")
            #expect(try fixture.unlock().count == 1, "the crashed backup's lock")
            var ids: [String] = []
            for _ in 1...3 {
                let backup = try fixture.run(["backup", ConcurrencyFixture.policy])
                #expect(backup.status == 0, "\(backup.stderr)")
                ids.append(try #require(ConcurrencyFixture.committedID(backup), "\(backup.stdout)"))
            }
            #expect(try committed(fixture) == ids)

            let killed = try fixture.run(["prune"], environment: [CrashPoint.variable: crash.point.rawValue])
            #expect(killed.status == 128 + SIGKILL, "\(killed.all)")

            // Everything listed verifies; what was cut short is listed as interrupted.
            let listed = try committed(fixture)
            #expect(listed == (crash.point == .pruneManifestDeleted ? Array(ids[1...]) : ids), "\(listed)")
            for id in listed {
                let verify = try fixture.run(["verify", ConcurrencyFixture.policy, id])
                #expect(verify.status == 0, "\(id): \(verify.stderr)")
            }
            let interrupted = try fixture.list(all: true).filter { $0["state"] as? String == "interrupted" }
            #expect(interrupted.count == 1, "\(interrupted)")
            let restore = try fixture.run(["restore", ConcurrencyFixture.policy, try #require(interrupted.first?["id"] as? String),
                                           "--to", fixture.directory.subpath("restored")])
            #expect(restore.status == 2, "an interrupted backup is never restored: \(restore.all)")

            // The next prune ignores the dead prune's lock and finishes the work.
            let next = try fixture.run(["prune", "--json"])
            #expect(next.status == 0, "\(next.all)")
            #expect(next.stderr.contains("ignoring a stale lock"), "\(next.stderr)")
            #expect(try committed(fixture) == [ids[2]])
            #expect(try fixture.list(all: true).count == 1)
            let verify = try fixture.run(["verify", ConcurrencyFixture.policy, ids[2]])
            #expect(verify.status == 0, "\(verify.stderr)")
            // What is left is the killed prune's lock, which `unlock` removes.
            let leftovers = try fixture.leftovers()
            #expect(leftovers.count == 1 && leftovers.first?.hasPrefix("locks/") == true, "\(leftovers)")
            let locks = try fixture.unlock()
            #expect(locks.first?["command"] as? String == "prune etc" && locks.first?["removed"] as? Bool == true, "\(locks)")
            #expect(try fixture.leftovers().isEmpty)
        }
    }

    /// Backups started while a prune runs wait for its exclusive lock (or the prune for
    /// theirs): whatever the order, every backup that says it committed is there and verifies,
    /// and nothing is left behind.
    @Test(arguments: RepositoryKind.allCases)
    func backupsBesideAPruneLoseNothing(_ kind: RepositoryKind) async throws {
        try await offThePool {
            let fixture = try ConcurrencyFixture(kind, bigFileBytes: 1 << 20, policyExtra: "retention: { keep_last: 2 }\n")
            defer { fixture.remove() }
            for _ in 1...3 { #expect(try fixture.run(["backup", ConcurrencyFixture.policy]).status == 0) }
            let prune = try fixture.start(["prune", ConcurrencyFixture.policy])
            let backups = try (1...2).map { _ in try fixture.start(["backup", ConcurrencyFixture.policy]) }
            let pruned = try prune.wait()
            #expect(pruned.status == 0, "\(pruned.all)")
            var newIDs: [String] = []
            for backup in backups {
                let result = try backup.wait()
                #expect(result.status == 0, "\(result.all)")
                newIDs.append(try #require(ConcurrencyFixture.committedID(result), "\(result.stdout)"))
            }
            let listed = try committed(fixture)
            #expect(Set(newIDs).isSubset(of: listed), "\(listed) lacks one of \(newIDs)")
            for id in newIDs {
                #expect(try fixture.run(["verify", ConcurrencyFixture.policy, id]).status == 0)
            }
            #expect(try fixture.leftovers().isEmpty)
            // And a prune after them keeps exactly the two newest: the two that ran beside it.
            #expect(try fixture.run(["prune"]).status == 0)
            #expect(try committed(fixture) == newIDs.sorted())
        }
    }

    /// What killed writers leave and no listing shows: a backup directory holding nothing but
    /// an incomplete write (locally a reservation's temporary file, on S3 an artifact's
    /// multipart upload) goes whatever its age; under the WAL archive, which `wal-push` writes
    /// without a lock, an old push's incomplete write goes and a young one (a live push) stays.
    /// A dry run counts them and discards nothing. Locally the old one is aged with `utimes`;
    /// on S3 an upload's age is its initiation (the server's), so prune's clock is put between
    /// the two uploads' initiations plus the grace.
    @Test(arguments: RepositoryKind.allCases)
    func pruneCollectsWhatKilledWritersLeftAndKeepsALivePushs(_ kind: RepositoryKind) async throws {
        try await offThePool {
            let fixture = try ConcurrencyFixture(kind, bigFileBytes: 1000)
            defer { fixture.remove() }
            try fixture.directory.write("policies/pg.yaml", """
                policy: pg
                source: { postgres: { conninfo: "host=/nonexistent dbname=postgres", wal: { push_parallel: 1 } } }

                """)
            let backup = try fixture.run(["backup", ConcurrencyFixture.policy])
            try #require(backup.status == 0, "\(backup.all)")
            let invisible = "etc/backups/20261130T000000000Z-abcdef/"
            let oldPush = "pg/wal/0000000100000000/000000010000000000000001.tar.zst"
            let livePush = "pg/wal/0000000100000000/000000010000000000000002.tar.zst"
            let grace = PruneCommand(configuration: try ConfigurationLoader.load(directory: fixture.directory.path, environment: fixture.environment),
                                     context: RunContext(logger: quietLogger)).incompleteWriteGrace
            #expect(grace == 30 * 60)
            let now: Date
            let incomplete: () throws -> [String]
            switch kind {
            case .local:
                let root = fixture.directory.subpath("repository")
                try fixture.directory.write("repository/\(invisible).reservation.json.tmp-4242-res", "{\"partial")
                let old = try fixture.directory.write("repository/pg/wal/0000000100000000/.000000010000000000000001.tar.zst.tmp-4242-old", "partial")
                try fixture.directory.write("repository/pg/wal/0000000100000000/.000000010000000000000002.tar.zst.tmp-4243-new", "partial")
                let twoHoursAgo = Int(Date().timeIntervalSince1970) - 7200
                #expect(utimes(old, [timeval(tv_sec: twoHoursAgo, tv_usec: 0), timeval(tv_sec: twoHoursAgo, tv_usec: 0)]) == 0)
                now = Date()
                incomplete = { try filesUnder(root).filter { $0.contains(".tmp-") } }
            case .s3:
                let (server, prefix) = try #require(fixture.s3)
                let client = try directClient(server)
                for key in [invisible + "data/0000.tar.zst", oldPush, livePush] {
                    _ = try client.createMultipartUpload(key: "\(prefix)/\(key)")
                }
                let uploads = try client.listMultipartUploads(prefix: prefix + "/")
                let oldStart = try #require(uploads.first { $0.key.hasSuffix(oldPush) }?.initiated)
                let liveStart = try #require(uploads.first { $0.key.hasSuffix(livePush) }?.initiated)
                try #require(oldStart < liveStart, "\(uploads)")
                now = oldStart.addingTimeInterval(liveStart.timeIntervalSince(oldStart) / 2 + grace)
                incomplete = { try client.listMultipartUploads(prefix: prefix + "/").map { String($0.key.dropFirst(prefix.count + 1)) }.sorted() }
            }
            let before = try incomplete()
            #expect(before.count == 3, "\(before)")

            func prune(dryRun: Bool) throws -> PruneCommand.Report {
                let configuration = try ConfigurationLoader.load(directory: fixture.directory.path, environment: fixture.environment)
                let context = RunContext(logger: quietLogger, clock: { now }, environment: fixture.environment)
                return try PruneCommand(configuration: configuration, context: context, lockWait: 0).run(policy: nil, options: .init(dryRun: dryRun))
            }
            let dry = try prune(dryRun: true)
            #expect(dry.discardedIncompleteWrites == 2)
            #expect(dry.policies.map(\.discardedIncompleteWrites) == [1, 1], "\(dry.policies.map(\.policy))")
            #expect(try incomplete() == before)

            let done = try prune(dryRun: false)
            #expect(done.discardedIncompleteWrites == 2 && done.deletedBackups == 0 && done.deletedLeftovers == 0)
            #expect(done.policies.map(\.discardedIncompleteWrites) == [1, 1], "\(done.policies.map(\.policy))")
            let left = try incomplete()
            #expect(left.count == 1 && left.allSatisfy { $0.hasPrefix("pg/wal/0000000100000000/") && $0.contains("000000010000000000000002") }, "\(left)")
            if kind == .local {
                #expect(!FileManager.default.fileExists(atPath: fixture.directory.subpath("repository/" + invisible)))
            }
            // The backup is untouched.
            let listed = try committed(fixture)
            #expect(listed == [try #require(ConcurrencyFixture.committedID(backup))])
            #expect(try fixture.run(["verify", ConcurrencyFixture.policy, listed[0]]).status == 0)
        }
    }

    /// The command line: `--dry-run` prints every backup with its rules and deletes nothing;
    /// `--max-delete` refuses with status 1; a policy without rules says so.
    @Test func theCommandLinePrintsEveryDecisionAndHonoursItsGuards() async throws {
        try await offThePool {
            let fixture = try ConcurrencyFixture(.local, bigFileBytes: 16 << 10, policyExtra: "retention: { keep_last: 1, keep_within: 1h }\n")
            defer { fixture.remove() }
            try fixture.directory.write("policies/all.yaml", "policy: all\nsource: { files: { path: src } }\n")
            var ids: [String] = []
            for _ in 1...3 {
                let backup = try fixture.run(["backup", ConcurrencyFixture.policy])
                ids.append(try #require(ConcurrencyFixture.committedID(backup), "\(backup.all)"))
            }
            #expect(try fixture.run(["backup", "all"]).status == 0)

            // Within the hour everything stays: keep_within names each one.
            let dry = try fixture.run(["prune", "--dry-run"])
            #expect(dry.status == 0, "\(dry.all)")
            #expect(dry.stdout.contains("policy etc (repository local, time zone UTC): keep_last: 1, keep_within: 1h"), "\(dry.stdout)")
            #expect(dry.stdout.contains("policy all (repository local, time zone UTC): no retention rules"), "\(dry.stdout)")
            #expect(dry.stdout.contains("note: the policy has no retention rules: every backup is kept"), "\(dry.stdout)")
            for id in ids { #expect(dry.stdout.contains("keep   \(id)"), "\(dry.stdout)") }
            #expect(dry.stdout.contains("keep_within (started within 1h of the newest backup"), "\(dry.stdout)")
            #expect(dry.stdout.contains("dry run: 0 backups and 0 leftovers of interrupted runs would be deleted; nothing was deleted"), "\(dry.stdout)")

            // Only keep_last: two would go.
            try fixture.directory.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\nretention: { keep_last: 1 }\n")
            let json = try fixture.run(["prune", ConcurrencyFixture.policy, "--dry-run", "--json"])
            #expect(json.status == 0, "\(json.all)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            #expect(report["dryRun"] as? Bool == true && report["deletedBackups"] as? Int == 2 && report["ok"] as? Bool == true)
            let backups = try #require(((report["policies"] as? [[String: Any]])?.first?["backups"]) as? [[String: Any]])
            #expect(backups.map { $0["action"] as? String } == ["delete", "delete", "keep"])
            #expect(backups.map { $0["deleted"] as? Bool } == [false, false, false])
            let reasons = try #require(backups.last?["reasons"] as? [[String: Any]])
            #expect(reasons.map { $0["rule"] as? String } == ["keep_last", "newest"])
            #expect(try committed(fixture) == ids)

            let refused = try fixture.run(["prune", "--max-delete", "1"])
            #expect(refused.status == 1, "\(refused.all)")
            #expect(refused.stderr.contains("error: prune would delete 2 backups (etc: 2), more than --max-delete 1; nothing was deleted"), "\(refused.stderr)")
            #expect(refused.stdout.contains("prune refused: nothing was deleted"), "\(refused.stdout)")
            #expect(try committed(fixture) == ids)
            let bad = try fixture.run(["prune", "--max-delete", "-1"])
            #expect(bad.status == 2, "\(bad.all)")
            let unknown = try fixture.run(["prune", "etcc"])
            #expect(unknown.status == 2 && unknown.stderr.contains("did you mean 'etc'?"), "\(unknown.all)")

            let done = try fixture.run(["prune", "--max-delete", "2"])
            #expect(done.status == 0, "\(done.all)")
            #expect(done.stdout.contains("DELETED \(ids[0])") && done.stdout.contains("DELETED \(ids[1])"), "\(done.stdout)")
            #expect(done.stdout.contains("prune: 2 backups and 0 leftovers of interrupted runs deleted"), "\(done.stdout)")
            #expect(try committed(fixture) == [ids[2]])
        }
    }

    /// `recovery_window` on a cluster archiving with `wal-push`: three base backups; "now" is
    /// put so that the window starts between the second and the third. The first goes with
    /// the WAL before the second's start; a restore to a moment inside the window replays to
    /// exactly that moment.
    @Test func theRecoveryWindowKeepsEveryMomentInsideItRestorable() throws {
        let cluster = try ArchivingCluster(policyExtra: "retention: { recovery_window: 1d }\n")
        defer { cluster.stop() }
        let pg = cluster.pg
        try pg.psql("CREATE TABLE events (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), note text)")
        func baseBackup() throws -> (Manifest, PhysicalBackupRecord) {
            let backup = try cluster.lifeboat(["backup", "pg", "--json"])
            #expect(backup.status == 0, "\(backup.all)")
            let manifest = try JSON.decode(BackupSummary.self, from: Data(backup.stdout.utf8)).manifest
            return (manifest, try #require(try manifest.source.details(as: PostgresRecordView.self).physical))
        }
        try pg.psql("INSERT INTO events (note) VALUES ('before the first')")
        let (first, firstRecord) = try baseBackup()
        try pg.psql("INSERT INTO events (note) VALUES ('after the first')")
        try cluster.switchAndWaitForArchive()
        try cluster.switchAndWaitForArchive()
        let (second, secondRecord) = try baseBackup()
        try pg.psql("INSERT INTO events (note) VALUES ('inside the window')")
        let target = try pg.psql("SELECT clock_timestamp()")
        try pg.psql("INSERT INTO events (note) VALUES ('after the target')")
        try cluster.switchAndWaitForArchive()
        let (third, thirdRecord) = try baseBackup()
        try cluster.switchAndWaitForArchive()
        #expect(firstRecord.startLSN.value / firstRecord.segmentSize < secondRecord.startLSN.value / secondRecord.segmentSize)

        // The window (one day) starts halfway between the second and the third backup.
        let start = secondRecord.stopTime.addingTimeInterval(thirdRecord.stopTime.timeIntervalSince(secondRecord.stopTime) / 2)
        let now = start.addingTimeInterval(86_400)
        let configuration = try ConfigurationLoader.load(directory: cluster.dir.path, environment: cluster.env)
        let report = try PruneCommand(configuration: configuration, context: RunContext(logger: quietLogger, clock: { now }, environment: cluster.env))
            .run(policy: "pg")
        try PostgresServer.giveToServerUser(cluster.dir.path)
        let policy = try #require(report.policies.first)
        #expect(policy.backups.map(\.id) == [first.id, second.id, third.id])
        #expect(policy.backups.map(\.action) == [.delete, .keep, .keep])
        #expect(policy.backups[1].reasons.first?.rule == "recovery_window")
        let wal = try #require(policy.dependencies)
        #expect(wal.deletedObjects > 0, "\(wal)")

        // WAL before the second backup's start is gone; from it on, all is there.
        let repo = cluster.dir.subpath("repo")
        for segment in firstRecord.requiredSegments where segment.number < secondRecord.startLSN.value / secondRecord.segmentSize {
            #expect(!pathExists(repo + "/" + WALArchiveLayout.key(policy: "pg", file: .segment(segment))), "\(segment)")
        }
        for segment in secondRecord.requiredSegments + thirdRecord.requiredSegments {
            #expect(pathExists(repo + "/" + WALArchiveLayout.key(policy: "pg", file: .segment(segment))), "\(segment)")
        }
        let list = try cluster.lifeboat(["list", "pg", "--json"])
        #expect(list.status == 0, "\(list.all)")
        let verify = try cluster.lifeboat(["verify", "pg", second.id])
        #expect(verify.status == 0, "\(verify.all)")

        let restored = try PostgresServer.makeServerDirectory()
        let restore = try LifeboatCLI.run(["restore", "pg", "--to", restored + "/data", "--target-time", target],
                                          config: cluster.dir.path, environment: cluster.env)
        #expect(restore.status == 0, "\(restore.all)")
        #expect(restore.stdout.contains(second.id), "the window's backup is the one restored: \(restore.stdout)")
        pg.stop()
        let server = try PostgresServer.start(existing: restored)
        defer { server.stop() }
        try waitForPromotion(server)
        #expect(try server.psql("SELECT string_agg(note, ',' ORDER BY id) FROM events") == "before the first,after the first,inside the window",
                "\(server.serverLog().suffix(3000))")
    }
}
