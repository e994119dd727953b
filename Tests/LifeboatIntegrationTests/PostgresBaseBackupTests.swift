import Crypto
import Foundation
import Glibc
import LifeboatArchive
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import LifeboatPostgres
import Synchronization
import Testing
import TestSupport

/// A configuration directory with one physical PostgreSQL policy `pg` and a local repository
/// in `repo/`.
func physicalConfig(_ dir: TemporaryDirectory, walTimeout: String = "2m", partSize: String? = nil) throws {
    try dir.write("lifeboat.yaml", "repositories:\n  local: { path: repo }\ndefault_repository: local\n")
    try dir.write("policies/pg.yaml", """
        policy: pg
        source:
          postgres:
            conninfo: "${PG_CONNINFO}"
            checkpoint: fast
            wal: { timeout: \(walTimeout) }
            \(partSize.map { "part_size: \($0)" } ?? "")

        """)
}

/// Gets the WAL a PostgreSQL test server archives into a policy's WAL archive.
///
/// The server copies each file it archives into a spool directory (`cp %p <spool>/%f`), and a
/// thread of this helper pushes it with `WALArchive` — the code `wal-push` runs — in the test's
/// process. These tests run the backup in-process too, so the repository stays the test's
/// own; `wal-push` run by the server itself (as its OS user) is covered by `WALArchiving` and
/// `PointInTimeRecovery`.
final class WALShipper: Sendable {
    let spool: String
    let settings: [String: String]
    private let stopped = Mutex(false)
    private let done = DispatchSemaphore(value: 0)

    /// The server settings to start the server with (`PostgresServer.start(settings:)`).
    init(directory: TemporaryDirectory) throws {
        spool = directory.subpath("wal-spool")
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
        // The server (the postgres OS user, when the tests run as root) must reach the spool.
        try PostgresServer.giveToServerUser(directory.path)
        settings = ["archive_mode": "on", "archive_command": "'cp %p \(spool)/%f'"]
    }

    /// Starts pushing what the server archives into `repository` (a local repository's root)
    /// for `policy`, every 100 ms, until `stop()`.
    func start(repository: String, policy: String = "pg", systemIdentifier: UInt64) throws {
        let repository = try Repository.open(RepositoryConfig(name: "local", kind: .local(path: repository)),
                                             context: RunContext(logger: quietLogger))
        let archive = WALArchive(repository: repository, policy: policy, context: RunContext(logger: quietLogger))
        let thread = Thread { [self] in
            defer { done.signal() }
            var shipped: Set<String> = []
            while !stopped.withLock({ $0 }) {
                for name in ((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []).sorted() where !shipped.contains(name) {
                    guard let file = WALFileName(name, segmentSize: WALSegment.defaultSize) else { continue }
                    do {
                        let record = try archive.record(forCluster: systemIdentifier, segmentSize: WALSegment.defaultSize)
                        _ = try archive.push(path: "\(spool)/\(name)", as: file, systemIdentifier: systemIdentifier, record: record)
                        shipped.insert(name)
                    } catch {
                        FileHandle.standardError.write(Data("WALShipper: \(name): \(error)\n".utf8))
                    }
                }
                usleep(100_000)
            }
        }
        thread.name = "test-wal-shipper"
        thread.start()
    }

    func stop() {
        stopped.withLock { $0 = true }
        done.wait()
    }
}

/// Runs a program and requires exit status 0; returns its standard output.
@discardableResult
func runProgram(_ program: String, _ arguments: [String]) throws -> String {
    let result = try ChildProcess.run(program, arguments)
    guard result.status.isSuccess else {
        throw TestSupportError("'\(([program] + arguments).joined(separator: " "))' \(result.status): \(result.stdout)\(result.stderr)")
    }
    return result.stdout
}

/// The repository path of an artifact of a committed backup of policy `pg`.
func artifactFile(_ dir: TemporaryDirectory, _ manifest: Manifest, _ artifact: ArtifactRecord) -> String {
    dir.subpath("repo/pg/backups/\(manifest.id)/\(artifact.path)")
}

/// Objects under the repository's backups of policy `pg` (none after a failed run).
func backupObjects(_ dir: TemporaryDirectory) -> [String] {
    let root = dir.subpath("repo/pg/backups")
    return ((try? FileManager.default.subpathsOfDirectory(atPath: root)) ?? []).filter { !isDirectory("\(root)/\($0)") }
}

/// Extracts a physical backup the way a person would with GNU tar: the base artifacts into
/// `target`, each tablespace's artifacts into `pg_tblspc/<oid>` (in place of the link to the
/// server's directory), and the backup_manifest.
func extractWithTar(_ dir: TemporaryDirectory, _ manifest: Manifest, into target: String) throws {
    let record = try #require(try manifest.source.details(as: PostgresRecord.self).physical)
    try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
    for artifact in manifest.artifacts where artifact.role != .postgresTablespace {
        try runProgram("/usr/bin/tar", ["--zstd", "-xf", artifactFile(dir, manifest, artifact), "-C", target])
    }
    for tablespace in record.tablespaces {
        let link = "\(target)/pg_tblspc/\(tablespace.oid)"
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == tablespace.location)
        try FileManager.default.removeItem(atPath: link)
        try FileManager.default.createDirectory(atPath: link, withIntermediateDirectories: false)
        for path in tablespace.artifacts {
            let artifact = try #require(manifest.artifacts.first { $0.path == path })
            try runProgram("/usr/bin/tar", ["--zstd", "-xf", artifactFile(dir, manifest, artifact), "-C", link])
        }
    }
}

func pgVerifyBackup(_ server: PostgresServer, _ directory: String) throws -> String {
    try runProgram("\(server.binDir)/pg_verifybackup", ["-n", directory])
}

/// A PostgreSQL server, and a configuration directory with a physical policy `pg` for it.
struct PhysicalFixture {
    let dir: TemporaryDirectory
    let server: PostgresServer
    /// Nil when the server does not archive WAL.
    let shipper: WALShipper?

    var environment: [String: String] { ["PG_CONNINFO": server.conninfo()] }

    /// Runs `body` with a fresh server (archiving its WAL unless `archiving` is false) and
    /// policy, then removes both.
    static func with(archiving: Bool = true, walTimeout: String = "2m", partSize: String? = nil,
                     _ body: (PhysicalFixture) throws -> Void) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let shipper = archiving ? try WALShipper(directory: dir) : nil
        let server = try PostgresServer.start(settings: shipper?.settings ?? [:])
        defer { server.stop() }
        try physicalConfig(dir, walTimeout: walTimeout, partSize: partSize)
        try body(PhysicalFixture(dir: dir, server: server, shipper: shipper))
    }

    /// Runs a backup of policy `pg` in this process while the shipper stores the WAL.
    func backup() throws -> Manifest {
        let shipper = try #require(shipper)
        let systemIdentifier = try #require(UInt64(try server.psql("SELECT system_identifier FROM pg_control_system()")))
        try shipper.start(repository: dir.subpath("repo"), systemIdentifier: systemIdentifier)
        defer { shipper.stop() }
        let configuration = try ConfigurationLoader.load(directory: dir.path, environment: environment)
        return try BackupCommand(configuration: configuration, context: RunContext(logger: quietLogger)).run(policy: "pg").manifest
    }
}

@Suite(.timeLimit(.minutes(10)))
struct PostgresBaseBackup {
    @Test func aBaseBackupCommitsAndRecordsItsPlaceInTheClustersHistory() async throws {
        try await offThePool {
            try PhysicalFixture.with { fixture in
                let (dir, server) = (fixture.dir, fixture.server)
                try seedPlatformDatabases(server)
                let before = Date()
                let manifest = try fixture.backup()
                let after = Date()

                let pg = try manifest.source.details(as: PostgresRecord.self)
                let physical = try #require(pg.physical)
                #expect(pg.mode == "physical")
                #expect(pg.systemIdentifier == (try server.psql("select system_identifier from pg_control_system()")))
                #expect(pg.serverVersionNumber / 10000 == 15)
                #expect(pg.databases == ["mcp_registry", "mcphub", "postgres"])
                #expect(physical.timeline == 1)
                #expect(physical.startLSN < physical.stopLSN)
                // The server's own record of the backup: its history file names the same start.
                let history = try server.psql("select name from pg_ls_dir('pg_wal') name where name like '%.backup'")
                #expect(history.hasPrefix(physical.requiredSegments[0].name), "\(history)")
                #expect(physical.segmentSize == 16 << 20)
                #expect(physical.checkpoint == "fast")
                #expect(physical.tablespaces.isEmpty)
                // The server's wall clock, read before and after. Under load in CI the second
                // reading once was not later than the first (values not recorded then): equal
                // readings are accepted, and the message carries the values should it recur.
                let times = "start \(physical.startTime.timeIntervalSince1970), stop \(physical.stopTime.timeIntervalSince1970), test \(before.timeIntervalSince1970)…\(after.timeIntervalSince1970)"
                #expect(before.addingTimeInterval(-1) < physical.startTime, "\(times)")
                #expect(physical.startTime <= physical.stopTime, "\(times)")
                #expect(physical.stopTime < after.addingTimeInterval(1), "\(times)")

                #expect(manifest.artifacts.map(\.role) == [.postgresBase, .postgresBackupManifest])
                let base = manifest.artifacts[0]
                let pgVersion = try #require(base.entries.first { $0.path == "PG_VERSION" })
                #expect(pgVersion.kind == .file && pgVersion.size == 3 && pgVersion.sha256.count == 64)
                #expect(pgVersion.mode == 0o600 && pgVersion.user == "postgres")
                #expect(base.entries.contains { $0.path == "global/pg_control" && $0.kind == .file })
                #expect(base.entries.contains { $0.path == "backup_label" && $0.kind == .file })
                #expect(base.entries.contains { $0.path == "base" && $0.kind == .directory && $0.mode == 0o700 })
                #expect(manifest.artifacts[1].entries.map(\.path) == ["backup_manifest"])

                // Listed and verified like any backup.
                let env = fixture.environment
                #expect(try LifeboatCLI.run(["list", "pg"], config: dir.path, environment: env).stdout.contains(manifest.id))
                let verify = try LifeboatCLI.run(["verify", "pg", "latest"], config: dir.path, environment: env)
                #expect(verify.status == 0, "\(verify.stderr)")
            }
        }
    }

    @Test func pgVerifybackupAcceptsTheArtifactsExtractedWithGNUTar() async throws {
        try await offThePool {
            try PhysicalFixture.with { fixture in
                let (dir, server) = (fixture.dir, fixture.server)
                try seedPlatformDatabases(server)
                let manifest = try fixture.backup()
                let target = dir.subpath("extracted")
                try extractWithTar(dir, manifest, into: target)
                #expect(FileManager.default.fileExists(atPath: "\(target)/backup_manifest"))
                let output = try pgVerifyBackup(server, target)
                #expect(output.contains("backup successfully verified"), "\(output)")

                // And the verifier is not a rubber stamp: one changed byte fails it.
                let file = "\(target)/PG_VERSION"
                try Data("14\n".utf8).write(to: URL(fileURLWithPath: file))
                #expect(throws: (any Error).self) { try pgVerifyBackup(server, target) }
            }
        }
    }

    @Test func aTablespaceLandsInArtifactsOfItsOwn() async throws {
        try await offThePool {
            try PhysicalFixture.with { fixture in
                let (dir, server) = (fixture.dir, fixture.server)
                let location = dir.subpath("tablespace")
                try FileManager.default.createDirectory(atPath: location, withIntermediateDirectories: true)
                try PostgresServer.giveToServerUser(dir.path)
                _ = try server.psql("create tablespace archive_space location '\(location)'")
                _ = try server.psql("create table cold (id int, note text) tablespace archive_space")
                _ = try server.psql("insert into cold select g, 'row ' || g from generate_series(1, 20000) g")
                let oid = try #require(UInt32(try server.psql("select oid from pg_tablespace where spcname = 'archive_space'")))
                let relation = try server.psql("select pg_relation_filepath('cold')")  // pg_tblspc/<oid>/PG_15_…/<db>/<file>
                let manifest = try fixture.backup()

                let physical = try #require(try manifest.source.details(as: PostgresRecord.self).physical)
                // PostgreSQL 15 sends the tablespaces first and the main data directory last.
                #expect(manifest.artifacts.map(\.role) == [.postgresTablespace, .postgresBase, .postgresBackupManifest])
                #expect(physical.tablespaces == [TablespaceRecord(oid: oid, location: location, artifacts: [manifest.artifacts[0].path])])
                let inTablespace = String(relation.dropFirst("pg_tblspc/\(oid)/".count))
                #expect(manifest.artifacts[0].entries.contains { $0.path == inTablespace && $0.kind == .file && $0.size > 0 },
                        "\(manifest.artifacts[0].entries.map(\.path))")
                // PostgreSQL names the link `pg_tblspc/<oid>/`: stored without the slash.
                let link = try #require(manifest.artifacts[1].entries.first { $0.path == "pg_tblspc/\(oid)" })
                #expect(link.kind == .symlink && link.linkTarget == location)
                #expect(!manifest.artifacts[1].entries.contains { $0.path == inTablespace })

                let target = dir.subpath("extracted")
                try extractWithTar(dir, manifest, into: target)
                let output = try pgVerifyBackup(server, target)
                #expect(output.contains("backup successfully verified"), "\(output)")
            }
        }
    }

    @Test func eachArchiveIsSplitIntoPartsOfAboutPartSize() async throws {
        try await offThePool {
            try PhysicalFixture.with(partSize: "1MiB") { fixture in
                let (dir, server) = (fixture.dir, fixture.server)
                let location = dir.subpath("tablespace")
                try FileManager.default.createDirectory(atPath: location, withIntermediateDirectories: true)
                try PostgresServer.giveToServerUser(dir.path)
                _ = try server.psql("create tablespace archive_space location '\(location)'")
                // Two tables of about 2.5 MiB each in the tablespace.
                for table in ["cold", "colder"] {
                    _ = try server.psql("create table \(table) (id int, note text) tablespace archive_space")
                    _ = try server.psql("insert into \(table) select g, repeat('x', 100) from generate_series(1, 20000) g")
                }
                let oid = try #require(UInt32(try server.psql("select oid from pg_tablespace where spcname = 'archive_space'")))
                let manifest = try fixture.backup()
                let physical = try #require(try manifest.source.details(as: PostgresRecord.self).physical)

                let tablespaceParts = manifest.artifacts.filter { $0.role == .postgresTablespace }
                let baseParts = manifest.artifacts.filter { $0.role == .postgresBase }
                #expect(physical.tablespaces.map(\.oid) == [oid])
                #expect(physical.tablespaces.first?.artifacts == tablespaceParts.map(\.path))
                #expect(tablespaceParts.count >= 2 && baseParts.count >= 10, "\(tablespaceParts.count) \(baseParts.count)")
                // A part ends with the file that reaches the size: all but its last file stay under it.
                for part in tablespaceParts + baseParts {
                    let sizes = part.entries.map(\.size)
                    #expect(sizes.dropLast().reduce(0, +) < 1 << 20, "\(part.path): \(sizes)")
                }
                // Every file once, across the parts.
                let paths = baseParts.flatMap { $0.entries.map(\.path) }
                #expect(Set(paths).count == paths.count)
                #expect(paths.contains("global/pg_control") && paths.contains("PG_VERSION"))

                let target = dir.subpath("extracted")
                try extractWithTar(dir, manifest, into: target)
                let output = try pgVerifyBackup(server, target)
                #expect(output.contains("backup successfully verified"), "\(output)")
            }
        }
    }

    @Test func aBackupWhoseWALNeverArrivesFailsNamingTheMissingSegment() async throws {
        try await offThePool {
            // archive_mode off: nothing ever arrives.
            try PhysicalFixture.with(archiving: false, walTimeout: "2s") { fixture in
                let (dir, server) = (fixture.dir, fixture.server)
                let env = fixture.environment
                let started = Date()
                let result = try LifeboatCLI.run(["backup", "pg"], config: dir.path, environment: env)
                #expect(result.status == 1)
                #expect(Date().timeIntervalSince(started) < 60)
                // The backup's own (fast) checkpoint is the server's last one: its redo point is where the backup starts.
                let firstSegment = try server.psql("select redo_wal_file from pg_control_checkpoint()")
                #expect(firstSegment.count == 24)
                #expect(result.stderr.contains("WAL segment \(firstSegment)"), "\(result.stderr)")
                #expect(result.stderr.contains("did not reach the repository within 2 s"))
                #expect(result.stderr.contains("archive_mode = off"))
                #expect(result.stderr.contains("wal-push pg %p"))
                #expect(!result.all.contains(server.superuserPassword))
                // Nothing listed, nothing left.
                #expect(try LifeboatCLI.run(["list", "pg"], config: dir.path, environment: env).stdout.contains("policy pg has no backups"))
                #expect(backupObjects(dir).isEmpty, "\(backupObjects(dir))")
            }
        }
    }

    @Test func aWALArchiveOfAnotherClusterFailsAtOnce() async throws {
        try await offThePool {
            try PhysicalFixture.with(archiving: false) { fixture in
                let (dir, server) = (fixture.dir, fixture.server)
                let record = WALArchiveRecord(systemIdentifier: "7000000000000000001", segmentSize: 16 << 20, created: Date())
                try LocalStore(root: dir.subpath("repo")).put(key: WALArchiveLayout.recordKey(policy: "pg"), bytes: Array(try JSON.encode(record)), ifAbsent: true)
                let result = try LifeboatCLI.run(["backup", "pg"], config: dir.path, environment: fixture.environment)
                #expect(result.status == 1)
                #expect(result.stderr.contains("policy 'pg' archives the WAL of cluster 7000000000000000001"), "\(result.stderr)")
                #expect(try server.psql("select count(*) from pg_stat_activity where backend_type = 'walsender'") == "0")
                #expect(backupObjects(dir).isEmpty)
            }
        }
    }

    @Test func aRoleWithoutReplicationIsToldWhatToGrant() async throws {
        try await offThePool {
            try PhysicalFixture.with(archiving: false) { fixture in
                let (dir, server) = (fixture.dir, fixture.server)
                _ = try server.psql("create role plain login password 'plain-Secret-9'")
                let conninfo = "host=127.0.0.1 port=\(server.port) user=plain dbname=postgres password=plain-Secret-9"
                let result = try LifeboatCLI.run(["backup", "pg"], config: dir.path, environment: ["PG_CONNINFO": conninfo])
                #expect(result.status == 1)
                #expect(result.stderr.contains("PostgreSQL role 'plain' at 127.0.0.1:\(server.port) may not open a replication connection"), "\(result.stderr)")
                #expect(result.stderr.contains("ALTER ROLE \"plain\" REPLICATION"))
                #expect(!result.all.contains("plain-Secret-9"))
                #expect(backupObjects(dir).isEmpty)
            }
        }
    }

    @Test func noReplicationLineInPgHbaIsToldWhatToAdd() async throws {
        try await offThePool {
            try PhysicalFixture.with(archiving: false) { fixture in
                let hba = fixture.server.directory + "/data/pg_hba.conf"
                let lines = try String(contentsOfFile: hba, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
                try lines.filter { !$0.contains("replication") }.joined(separator: "\n").write(toFile: hba, atomically: false, encoding: .utf8)
                _ = try fixture.server.psql("select pg_reload_conf()")
                #expect(try eventually(timeout: 10) {
                    try fixture.server.psql("select count(*) from pg_hba_file_rules where 'replication' = any(database)") == "0"
                })
                let result = try LifeboatCLI.run(["backup", "pg"], config: fixture.dir.path, environment: fixture.environment)
                #expect(result.status == 1)
                #expect(result.stderr.contains("PostgreSQL at 127.0.0.1:\(fixture.server.port) accepts no replication connection from here for user 'postgres'"), "\(result.stderr)")
                #expect(result.stderr.contains("'host replication postgres <this machine's address>/32 scram-sha-256'"))
            }
        }
    }

    @Test func noFreeWALSenderIsReportedAsSuch() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            let server = try PostgresServer.start(settings: ["max_wal_senders": "0"])
            defer { server.stop() }
            try physicalConfig(dir)
            let result = try LifeboatCLI.run(["backup", "pg"], config: dir.path, environment: ["PG_CONNINFO": server.conninfo()])
            #expect(result.status == 1)
            #expect(result.stderr.contains("PostgreSQL at 127.0.0.1:\(server.port) has no free WAL sender for a base backup"), "\(result.stderr)")
            #expect(result.stderr.contains("raise max_wal_senders"))
        }
    }

    @Test func sigtermHalfWayCommitsNothingAndLeavesNoWALSender() async throws {
        try await offThePool {
            try PhysicalFixture.with(archiving: false) { fixture in
                let (dir, server) = (fixture.dir, fixture.server)
                // 80 MiB that zstd cannot shrink, so that the base artifact is being written for a while.
                _ = try server.psql("""
                    create table noise (id int primary key, data bytea);
                    insert into noise select g, decode(string_agg(md5(g::text || ':' || s::text), ''), 'hex')
                      from generate_series(1, 5120) g, generate_series(1, 1024) s group by g;
                    """)
                let watcher = try PostgresConnection.connect(try server.parameters())
                func walSenders() throws -> [Int32] {
                    try watcher.query("select pid from pg_stat_activity where backend_type = 'walsender'").compactMap { $0.first.flatMap { $0.flatMap { Int32($0) } } }
                }
                let run = try RunningLifeboat.start(["backup", "pg"], config: dir.path, environment: fixture.environment)
                // Half-way: the base artifact is being written. Then the WAL sender is frozen, so that
                // the run cannot simply finish first, and cannot count on the server to answer.
                var sender: Int32?
                #expect(try eventually {
                    sender = try walSenders().first
                    return sender != nil && backupObjects(dir).contains { $0.contains(".tmp-") }
                })
                let pid = try #require(sender)
                kill(pid, SIGSTOP)
                let (status, seconds, stderr) = try run.interrupt(with: SIGTERM)
                kill(pid, SIGCONT)
                #expect(status == 143, "\(stderr)")
                #expect(seconds < 2, "took \(seconds) s")
                #expect(stderr.contains("of policy 'pg' was cancelled (SIGTERM); nothing was committed"))
                #expect(try eventually(timeout: 10) { try walSenders().isEmpty })
                #expect(backupObjects(dir).isEmpty, "\(backupObjects(dir))")
                let list = try LifeboatCLI.run(["list", "pg", "--all"], config: dir.path, environment: fixture.environment)
                #expect(list.stdout.contains("policy pg has no backups"), "\(list.stdout)")
            }
        }
    }
}
