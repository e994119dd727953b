import Foundation
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import Testing
import TestSupport

/// Where a WAL test archives.
enum WALRepositoryKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case local, s3
    var testDescription: String { rawValue }
}

/// A configuration directory whose physical policy `pg` archives into a local or an S3
/// repository, with a broken policy and a broken runbook beside it (which must not matter),
/// all handed to the server's OS user, who runs archive_command.
final class WALSetup {
    let dir: TemporaryDirectory
    let s3: S3TestServer?
    let kind: WALRepositoryKind

    init(_ kind: WALRepositoryKind, pushParallel: Int = 4, prefetch: Int = 4) throws {
        self.kind = kind
        dir = try TemporaryDirectory("lifeboat-wal")
        switch kind {
        case .local:
            s3 = nil
            try dir.write("lifeboat.yaml", "repositories:\n  local: { path: \(dir.path)/repo }\ndefault_repository: local\n")
        case .s3:
            let server = try S3TestServer.start()
            s3 = server
            // archive_command runs in the server's environment: the key is written out here.
            try dir.write("lifeboat.yaml", """
                repositories:
                  offsite:
                    s3: { endpoint: "\(server.endpoint)", region: \(server.region), bucket: lifeboat-test, prefix: wal-tests,
                          access_key_id: "\(server.accessKeyID)", secret_access_key: "\(server.secretAccessKey)" }
                default_repository: offsite
                """)
        }
        try dir.write("policies/pg.yaml", """
            policy: pg
            source:
              postgres:
                conninfo: "host=127.0.0.1"
                wal: { push_parallel: \(pushParallel), prefetch: \(prefetch) }
            """)
        try dir.write("policies/other.yaml", "policy: other\nsource: { files: { path: [unclosed\n")
        try dir.write("runbooks/drill.yaml", "runbook: drill\nsteps:\n  - restore: nowhere\n    target: {{\n")
        try PostgresServer.giveToServerUser(dir.path)
    }

    var archiveCommand: String {
        get throws { "'\(try LifeboatCLI.executable) --config \(dir.path) wal-push pg %p'" }
    }

    /// A server archiving with `wal-push` into this setup.
    func archivingServer(superuserPassword: String = "secret-pw-1", extra: [String: String] = [:]) throws -> PostgresServer {
        try PostgresServer.start(superuserPassword: superuserPassword,
                                 settings: ["archive_mode": "on", "archive_command": try archiveCommand].merging(extra) { $1 })
    }

    /// The policy's WAL archive, opened as the commands open it.
    func archive() throws -> WALArchive {
        let configuration = try ConfigurationLoader.load(directory: dir.path, environment: [:], onlyPolicy: "pg")
        let repository = try Repository.open(try configuration.repository(for: try configuration.policy(named: "pg")),
                                             context: RunContext(logger: quietLogger))
        return WALArchive(repository: repository, policy: "pg", context: RunContext(logger: quietLogger))
    }

    func stop() {
        dir.remove()
        s3?.stop()
    }
}

extension PostgresServer {
    var dataDirectory: String { directory + "/data" }

    /// Writes rows, then switches to a new segment; returns the segment that was completed.
    func completeSegment(rows: Int = 20000) throws -> String {
        try psql("create table if not exists t (id int, v text); insert into t select g, md5(g::text) from generate_series(1, \(rows)) g")
        let name = try psql("select pg_walfile_name(pg_current_wal_lsn())")
        try psql("select pg_switch_wal()")
        return name
    }

    /// Waits until PostgreSQL reports `name` (or a later file) archived.
    func waitUntilArchived(_ name: String, seconds: Double = 120) throws {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while true {
            let state = try psql("select coalesce(last_archived_wal, '') || '|' || failed_count || '|' || coalesce(last_failed_wal, '') from pg_stat_archiver")
            let last = String(state.split(separator: "|", omittingEmptySubsequences: false)[0])
            if !last.isEmpty, last >= name { return }
            if Date() > deadline {
                throw TestSupportError("\(name) was not archived within \(Int(seconds)) s (pg_stat_archiver: \(state)); server log:\n\(serverLog().suffix(4000))")
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    /// The `.ready` files in pg_wal/archive_status.
    func readyFiles() throws -> [String] {
        try directoryEntries(dataDirectory + "/pg_wal/archive_status").filter { $0.hasSuffix(".ready") }
    }
}

@Suite(.timeLimit(.minutes(10)))
struct WALArchiving {
    @Test(arguments: WALRepositoryKind.allCases)
    func segmentsArriveAndComeBackByteIdenticalWithPrefetch(kind: WALRepositoryKind) async throws {
        try await offThePool {
            let setup = try WALSetup(kind, prefetch: 4)
            defer { setup.stop() }
            // The neighbours really are broken: the whole directory does not check.
            let check = try LifeboatCLI.run(["check", "--offline"], config: setup.dir.path)
            #expect(check.status == 2, "\(check.all)")

            let server = try setup.archivingServer()
            defer { server.stop() }
            let names = try (0..<3).map { _ in try server.completeSegment() }
            try server.waitUntilArchived(names[2])

            let archive = try setup.archive()
            let record = try #require(try archive.readRecord())
            #expect(record.systemIdentifier == (try server.psql("select system_identifier from pg_control_system()")))
            #expect(record.segmentSize == 16 << 20)
            #expect(try server.psql("select failed_count from pg_stat_archiver") == "0")

            // Recovery's side: wal-fetch into a pg_wal of its own.
            let target = try TemporaryDirectory("lifeboat-wal-target")
            defer { target.remove() }
            try makeDirectories(target.subpath("pg_wal"))
            let destination = target.subpath("pg_wal/RECOVERYXLOG")
            let first = try LifeboatCLI.run(["wal-fetch", "pg", names[0], destination], config: setup.dir.path)
            #expect(first.status == 0, "\(first.all)")
            #expect(try target.read("pg_wal/RECOVERYXLOG") == Array(try Data(contentsOf: URL(fileURLWithPath: server.dataDirectory + "/pg_wal/" + names[0]))))
            // The next segments were prefetched, verified, into the spool.
            for name in names.dropFirst() {
                #expect(pathExists(target.subpath("pg_wal/lifeboat/prefetch/" + name)), "\(name) was not prefetched")
            }
            // Served from the spool: even with the archived object gone.
            let file = try #require(WALFileName(names[1], segmentSize: record.segmentSize))
            try archive.repository.store.delete(keys: [archive.key(for: file)])
            let second = try LifeboatCLI.run(["wal-fetch", "pg", names[1], destination], config: setup.dir.path)
            #expect(second.status == 0, "\(second.all)")
            #expect(try target.read("pg_wal/RECOVERYXLOG") == Array(try Data(contentsOf: URL(fileURLWithPath: server.dataDirectory + "/pg_wal/" + names[1]))))
            #expect(!pathExists(target.subpath("pg_wal/lifeboat/prefetch/" + names[1])))

            // Not archived (any more, and never): status 1, and not a word on standard error.
            for missing in [names[1], "0000000100000000000000F0", "00000005.history"] {
                let absent = try LifeboatCLI.run(["wal-fetch", "pg", missing, target.subpath("pg_wal/RECOVERYXLOG")], config: setup.dir.path)
                #expect(absent.status == 1, "\(missing): \(absent.all)")
                #expect(absent.stderr.isEmpty, "\(missing): \(absent.stderr)")
            }

            // A timeline history file makes the round trip too (pushed by hand, beside the cluster's pg_control).
            let history = "1\t0/\(String(UInt64(16 << 20) * 3, radix: 16, uppercase: true))\tno recovery target specified\n"
            let historyPath = try target.write("source/pg_wal/00000002.history", history)
            let push = try LifeboatCLI.run(["wal-push", "pg", historyPath, "--pg-data", server.dataDirectory], config: setup.dir.path)
            #expect(push.status == 0, "\(push.all)")
            let fetched = try LifeboatCLI.run(["wal-fetch", "pg", "00000002.history", target.subpath("fetched.history")], config: setup.dir.path)
            #expect(fetched.status == 0, "\(fetched.all)")
            #expect(try target.read("fetched.history") == Array(history.utf8))
            // The repository's secret never reaches the server's log through what wal-push printed.
            if let s3 = setup.s3 { #expect(!server.serverLog().contains(s3.secretAccessKey)) }
        }
    }

    @Test(arguments: WALRepositoryKind.allCases)
    func aSecondPushComparesContentAndNeverOverwrites(kind: WALRepositoryKind) async throws {
        try await offThePool {
            let setup = try WALSetup(kind)
            defer { setup.stop() }
            let server = try setup.archivingServer()
            defer { server.stop() }
            let name = try server.completeSegment()
            try server.waitUntilArchived(name)
            let original = Array(try Data(contentsOf: URL(fileURLWithPath: server.dataDirectory + "/pg_wal/" + name)))

            let copy = try TemporaryDirectory("lifeboat-wal-copy")
            defer { copy.remove() }
            let path = try copy.write("pg_wal/" + name, bytes: original)
            let same = try LifeboatCLI.run(["wal-push", "pg", path, "--pg-data", server.dataDirectory], config: setup.dir.path)
            #expect(same.status == 0, "\(same.all)")
            #expect(same.stderr.contains("already archived with the same content"), "\(same.stderr)")

            var changed = original
            changed[100_000] ^= 0xFF
            try copy.write("pg_wal/" + name, bytes: changed)
            let other = try LifeboatCLI.run(["wal-push", "pg", path, "--pg-data", server.dataDirectory], config: setup.dir.path)
            #expect(other.status == 1, "\(other.all)")
            #expect(other.stderr.contains("0000000100000000/\(name).tar.zst"), "\(other.stderr)")
            #expect(other.stderr.contains(sha256Hex(original)) && other.stderr.contains(sha256Hex(changed)), "\(other.stderr)")

            let fetched = try LifeboatCLI.run(["wal-fetch", "pg", name, copy.subpath("fetched")], config: setup.dir.path)
            #expect(fetched.status == 0, "\(fetched.all)")
            #expect(try copy.read("fetched") == original)

            // A name that is no WAL file is bad input.
            let bad = try copy.write("pg_wal/not-a-segment", "x")
            let refused = try LifeboatCLI.run(["wal-push", "pg", bad, "--pg-data", server.dataDirectory], config: setup.dir.path)
            #expect(refused.status == 2, "\(refused.all)")
        }
    }

    @Test func anotherClusterPushingIntoThePolicyIsRefused() async throws {
        try await offThePool {
            let setup = try WALSetup(.local)
            defer { setup.stop() }
            let first = try setup.archivingServer()
            defer { first.stop() }
            let name = try first.completeSegment()
            try first.waitUntilArchived(name)

            // Its own initdb: another system identifier.
            let second = try setup.archivingServer(superuserPassword: "another")
            defer { second.stop() }
            let firstID = try first.psql("select system_identifier from pg_control_system()")
            let secondID = try second.psql("select system_identifier from pg_control_system()")
            #expect(firstID != secondID)
            let secondName = try second.completeSegment()
            let deadline = Date(timeIntervalSinceNow: 120)
            while try second.psql("select failed_count from pg_stat_archiver") == "0", Date() < deadline {
                Thread.sleep(forTimeInterval: 0.1)
            }
            #expect(try second.psql("select coalesce(last_failed_wal, '') from pg_stat_archiver") == secondName)
            #expect(try second.psql("select coalesce(last_archived_wal, '') from pg_stat_archiver") == "")
            let log = second.serverLog()
            #expect(log.contains(firstID) && log.contains(secondID), "\(log.suffix(3000))")

            // By hand: the message names both identifiers and what to do; status 1.
            let copy = try TemporaryDirectory("lifeboat-wal-copy")
            defer { copy.remove() }
            let path = try copy.write("pg_wal/" + secondName,
                                      bytes: Array(try Data(contentsOf: URL(fileURLWithPath: second.dataDirectory + "/pg_wal/" + secondName))))
            let refused = try LifeboatCLI.run(["wal-push", "pg", path, "--pg-data", second.dataDirectory], config: setup.dir.path)
            #expect(refused.status == 1, "\(refused.all)")
            #expect(refused.stderr.contains(firstID) && refused.stderr.contains(secondID) && refused.stderr.contains("HINT"), "\(refused.stderr)")
            // And a segment of the first cluster, offered with the second one's pg_control.
            let foreign = try copy.write("pg_wal/" + name,
                                         bytes: Array(try Data(contentsOf: URL(fileURLWithPath: first.dataDirectory + "/pg_wal/" + name))))
            let mismatch = try LifeboatCLI.run(["wal-push", "pg", foreign, "--pg-data", second.dataDirectory], config: setup.dir.path)
            #expect(mismatch.status == 1, "\(mismatch.all)")
            // Whatever the archive holds under that name is the first cluster's (both start at segment 1).
            let archive = try setup.archive()
            let secondFile = try #require(WALFileName(secondName, segmentSize: 16 << 20))
            if secondName == name {
                #expect(try archive.fetch(secondFile, to: copy.subpath("archived")))
                #expect(try copy.read("archived") == Array(try Data(contentsOf: URL(fileURLWithPath: first.dataDirectory + "/pg_wal/" + name))))
            } else {
                #expect(try !archive.isArchived(secondFile))
            }
        }
    }

    @Test func oneRunPushesTheWaitingFilesAndMarksThem() async throws {
        try await offThePool {
            let setup = try WALSetup(.local, pushParallel: 4)
            defer { setup.stop() }
            // Archiving fails: the .ready files pile up, as under a load archiving cannot follow.
            let server = try setup.archivingServer(extra: ["archive_command": "'false'"])
            defer { server.stop() }
            let made = try (0..<6).map { _ in try server.completeSegment(rows: 5000) }
            // Every file made is waiting; files from before them (the cluster's first segments)
            // may be waiting too, and come first: the queue is what PostgreSQL has waiting.
            func waiting() throws -> [String] { try server.readyFiles().map { String($0.dropLast(6)) }.sorted() }
            let deadline = Date(timeIntervalSinceNow: 60)
            while try !Set(made).isSubset(of: waiting()), Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
            let names = try waiting()
            #expect(names.count >= 6 && Set(made).isSubset(of: names), "\(names)")

            let walDirectory = server.dataDirectory + "/pg_wal"
            let run = try LifeboatCLI.run(["wal-push", "pg", walDirectory + "/" + names[0], "--pg-data", server.dataDirectory],
                                          config: setup.dir.path)
            #expect(run.status == 0, "\(run.all)")
            // Four at once: the requested one and the next three, each marked; PostgreSQL's
            // status files untouched.
            let archive = try setup.archive()
            for name in names.prefix(4) {
                #expect(try archive.isArchived(#require(WALFileName(name, segmentSize: 16 << 20))), "\(name)")
            }
            #expect(try !archive.isArchived(#require(WALFileName(names[4], segmentSize: 16 << 20))))
            #expect(try directoryEntries(walDirectory + "/lifeboat/pushed") == Array(names[1...3]))
            #expect(try waiting() == names)

            // PostgreSQL's call for a marked file: answered from the marker, without the
            // repository (its object is gone, and stays gone), and the marker is removed.
            let marked = try #require(WALFileName(names[1], segmentSize: 16 << 20))
            try archive.repository.store.delete(keys: [archive.key(for: marked)])
            let fromMarker = try LifeboatCLI.run(["wal-push", "pg", walDirectory + "/" + names[1], "--pg-data", server.dataDirectory],
                                                 config: setup.dir.path)
            #expect(fromMarker.status == 0, "\(fromMarker.all)")
            #expect(try !archive.isArchived(marked))
            #expect(!pathExists(walDirectory + "/lifeboat/pushed/" + names[1]))

            // Archiving with wal-push from now on: everything left goes, markers are used up.
            // (What this root test process wrote goes to the server's user first.)
            try PostgresServer.giveToServerUser(walDirectory + "/lifeboat")
            try PostgresServer.giveToServerUser(setup.dir.path)
            try server.psql("alter system set archive_command = \(try setup.archiveCommand)")
            try server.psql("select pg_reload_conf()")
            try server.waitUntilArchived(names[names.count - 1])
            #expect(try directoryEntries(walDirectory + "/lifeboat/pushed").isEmpty)
            #expect(try server.readyFiles().isEmpty)
        }
    }

    @Test func underPgbenchLoadTheReadyFilesStayFew() async throws {
        try await offThePool {
            let setup = try WALSetup(.local, pushParallel: 4)
            defer { setup.stop() }
            let server = try setup.archivingServer(extra: ["archive_timeout": "0", "max_wal_size": "'4GB'"])
            defer { server.stop() }
            let pgbench = try requireProgram("pgbench", in: [server.binDir])
            let connection = ["-h", "127.0.0.1", "-p", "\(server.port)", "-U", "postgres"]
            let environment = ["PGPASSWORD": server.superuserPassword]
            let initialize = try ChildProcess.run(pgbench, ["-i", "-s", "20", "-q"] + connection + ["postgres"], environment: environment)
            #expect(initialize.status.isSuccess, "\(initialize.stderr)")

            let load = Background {
                try ChildProcess.run(pgbench, ["-c", "4", "-j", "2", "-T", "30", "-n"] + connection + ["postgres"], environment: environment)
            }
            var peak = 0
            let end = Date(timeIntervalSinceNow: 30)
            while Date() < end {
                peak = max(peak, try server.readyFiles().count)
                Thread.sleep(forTimeInterval: 0.2)
            }
            let result = try load.wait(timeout: 120).get()
            #expect(result.status.isSuccess, "\(result.stderr)")
            let last = try server.completeSegment(rows: 10)
            try server.waitUntilArchived(last)
            let archived = try server.psql("select archived_count from pg_stat_archiver")
            print("pgbench load: \(archived) WAL files archived, peak of .ready files waiting: \(peak)")
            #expect(try server.psql("select failed_count from pg_stat_archiver") == "0")
            #expect(peak <= 16, "archiving fell behind: \(peak) files were waiting at once")
        }
    }
}
