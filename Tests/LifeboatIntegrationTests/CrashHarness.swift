import Foundation
import Glibc
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import Testing
import TestSupport

/// The crash harness (issue 11): each operation, on a local and an S3 repository, killed with
/// `SIGKILL` at points chosen by store operation count (`CrashAfterOperations`) and by time,
/// after a first uncrashed run measured both. After each kill every listed backup verifies,
/// the next run of the operation succeeds, prune collects the leftovers, and `unlock` removes
/// the dead run's lock (`CrashSweep.recovered`). Each case prints how many kill points it
/// tried; `swift test` runs a short sweep, `Benchmarks/crash-sweep.sh` the full one (≥ 200).
/// Drills are `DrillSubject` (DrillSubject.swift).
@Suite(.timeLimit(.minutes(10)), .serialized)
struct CrashHarness {
    enum Operation: String, CaseIterable, Sendable {
        case filesBackup = "files backup"
        case prune
        case restore = "files restore"
        case scheduledRun = "scheduled run"
        case mirror = "s3 mirror"
        case walPush = "wal-push"
        case baseBackup = "base backup"
        case deltaRestore = "delta restore"
        case drill
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var operation: Operation
        var kind: RepositoryKind
        var testDescription: String { "\(operation.rawValue) (\(kind.rawValue))" }
    }

    static let cases = Operation.allCases.flatMap { operation in RepositoryKind.allCases.map { Case(operation: operation, kind: $0) } }

    /// `LIFEBOAT_CRASH_ONLY="s3 mirror"` (an operation's name, or several separated by commas)
    /// sweeps only those operations: for rerunning the full sweep of one of them.
    static let only = ProcessInfo.processInfo.environment["LIFEBOAT_CRASH_ONLY"].map { $0.split(separator: ",").map(String.init) }

    @Test(arguments: cases)
    func everyKillPointRecovers(_ crash: Case) async throws {
        if let only = Self.only, !only.contains(crash.operation.rawValue) {
            print("crash sweep: \(crash.testDescription): skipped (LIFEBOAT_CRASH_ONLY)")
            return
        }
        try await offThePool {
            let subject: any CrashSubject = try {
                switch crash.operation {
                case .filesBackup: return try FilesSubject(crash.kind, operation: .backup)
                case .prune: return try FilesSubject(crash.kind, operation: .prune)
                case .restore: return try FilesSubject(crash.kind, operation: .restore)
                case .scheduledRun: return try ScheduleSubject(crash.kind)
                case .mirror: return try MirrorSubject(crash.kind)
                case .walPush: return try PostgresSubject(crash.kind, operation: .walPush)
                case .baseBackup: return try PostgresSubject(crash.kind, operation: .baseBackup)
                case .deltaRestore: return try PostgresSubject(crash.kind, operation: .deltaRestore)
                case .drill: return try DrillSubject(crash.kind)
                }
            }()
            defer { subject.stop() }
            let tally = try CrashSweep.sweep(subject)
            #expect(tally.killed > 0, "\(subject.label): no attempt was killed")
        }
    }
}

// MARK: Files: backup, prune, restore

/// A `files` policy (`ConcurrencyFixture`) backed up, pruned (`keep_last: 1`, two new backups
/// before each attempt) or restored into a directory.
final class FilesSubject: CrashSubject {
    enum Operation: String { case backup, prune, restore }

    let fixture: ConcurrencyFixture
    let operation: Operation
    private var attempt = 0

    init(_ kind: RepositoryKind, operation: Operation) throws {
        // Above two stream steps of `CrashAfterOperations`, and above one part on S3.
        fixture = try ConcurrencyFixture(kind, bigFileBytes: kind == .s3 ? 9 << 20 : 3 << 20,
                                         policyExtra: "retention: { keep_last: \(operation == .prune ? 1 : 2) }\n")
        self.operation = operation
        if operation == .restore {
            let backup = try fixture.run(["backup", policy])
            try #require(backup.status == 0, "\(backup.all)")
        }
    }

    var label: String { "files \(operation.rawValue) (\(fixture.kind.rawValue))" }
    var policy: String { ConcurrencyFixture.policy }
    var configDirectory: String { fixture.directory.path }
    var environment: [String: String] { fixture.environment }
    var user: String? { nil }
    var counter: String { operation == .restore ? CrashAfterOperations.operationsVariable : CrashAfterOperations.writesVariable }

    var target: String { fixture.directory.subpath("restored-\(attempt)") }

    func prepare() throws {
        attempt += 1
        switch operation {
        case .backup:
            try fixture.directory.write("src/a.conf", "attempt = \(attempt)\n")
        case .prune:
            for _ in 0..<2 {
                let backup = try lifeboat(["backup", policy])
                try #require(backup.status == 0, "\(backup.all)")
            }
        case .restore:
            break
        }
    }

    var arguments: [String] {
        switch operation {
        case .backup: return ["backup", policy]
        case .prune: return ["prune", policy]
        case .restore: return ["restore", policy, "latest", "--to", target]
        }
    }

    func start(environment: [String: String]) throws -> any CrashAttempt {
        try startLifeboat(arguments, environment: environment)
    }

    func runAgain() throws {
        if operation == .restore {
            // The README: the target directory must be new or empty. A restore killed half-way
            // leaves part of the files: the operator empties the directory and restores again.
            try? FileManager.default.removeItem(atPath: target)  // absent when killed before it was made
        }
        let again = try lifeboat(arguments)
        #expect(again.status == 0, "\(label): the next run failed: \(again.all.suffix(3000))")
        if operation == .restore {
            let restored = FileManager.default.contents(atPath: target + "/big.bin")
            #expect(restored == FileManager.default.contents(atPath: fixture.directory.subpath("src/big.bin")), "\(label): big.bin differs")
        }
    }

    func leftovers() throws -> [String] { try fixture.leftovers() }
    var localRepository: String? { fixture.localRepository }
    func stop() { fixture.remove() }
}

// MARK: A scheduled run

/// `lifeboat schedule` with a `files` policy due at once (its firing a minute ago is caught
/// up), killed while it runs the backup. The history is removed before each attempt, so that
/// every daemon has a run to catch up.
final class ScheduleSubject: CrashSubject {
    let fixture: ConcurrencyFixture

    init(_ kind: RepositoryKind) throws {
        fixture = try ConcurrencyFixture(kind, bigFileBytes: kind == .s3 ? 9 << 20 : 3 << 20,
                                         policyExtra: "retention: { keep_last: 2 }\nschedule: { cron: \"* * * * *\" }\n")
        let main = try String(contentsOfFile: fixture.directory.subpath("lifeboat.yaml"), encoding: .utf8)
        try fixture.directory.write("lifeboat.yaml", main + "\nstate_dir: state\nscheduler: { catch_up: 1h, stop_timeout: 10s }\n")
    }

    var label: String { "scheduled run (\(fixture.kind.rawValue))" }
    var policy: String { ConcurrencyFixture.policy }
    var configDirectory: String { fixture.directory.path }
    var environment: [String: String] { fixture.environment }
    var user: String? { nil }
    var counter: String { CrashAfterOperations.writesVariable }
    var history: String { fixture.directory.subpath("state/history.jsonl") }

    func prepare() throws {
        try? FileManager.default.removeItem(atPath: history)  // absent before the first run
    }

    func start(environment: [String: String]) throws -> any CrashAttempt {
        DaemonAttempt(running: try startLifeboat(["schedule", "--listen", "off"], environment: environment), history: history)
    }

    func runAgain() throws {
        try prepare()
        let output = try DaemonAttempt(running: try startLifeboat(["schedule", "--listen", "off"], environment: [:]), history: history).wait()
        #expect(output.status == 0, "\(label): the next daemon's run failed: \(output.all.suffix(3000))")
    }

    func leftovers() throws -> [String] { try fixture.leftovers() }
    var localRepository: String? { fixture.localRepository }
    func stop() { fixture.remove() }
}

/// A daemon that ends by itself only when killed: `wait()` returns once it died, or once its
/// first run is in the history (then it is stopped with `SIGTERM`; status 1 if the run failed).
struct DaemonAttempt: CrashAttempt {
    let running: LifeboatCLI.Running
    let history: String
    var pid: Int32 { running.pid }

    func wait() throws -> LifeboatCLI.Output {
        let deadline = Date(timeIntervalSinceNow: 120)
        while Date() < deadline {
            // Ended (a zombie until `wait` reaps it: its pid is still ours).
            if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
               let state = stat.split(separator: ")").last?.split(separator: " ").first, state == "Z" {
                return try running.wait()
            }
            if let data = FileManager.default.contents(atPath: history), let record = RunRecord.parseHistory(data).records.first {
                kill(pid, SIGTERM)
                var output = try running.wait()
                if record.outcome != .succeeded || output.status != 0 {
                    output.status = output.status == 0 ? 1 : output.status
                    output.stderr += "\nthe scheduled run: \(record)"
                }
                return output
            }
            usleep(20_000)
        }
        kill(pid, SIGKILL)
        var output = try running.wait()
        output.status = 1
        output.stderr += "\nno run recorded within 120 s"
        return output
    }
}

// MARK: An S3 mirror run

/// A mirror of one moto bucket (`MirrorFixture`); before each attempt three objects change
/// (one of them above a part), so every run copies.
final class MirrorSubject: CrashSubject {
    let fixture: MirrorFixture
    private var attempt = 0

    init(_ kind: RepositoryKind) throws {
        fixture = try MirrorFixture(kind, buckets: ["source"], sources: "[source]", parallel: 2)
        let policyFile = fixture.directory.subpath("policies/\(MirrorFixture.policy).yaml")
        let text = try String(contentsOfFile: policyFile, encoding: .utf8)
        try fixture.directory.write("policies/\(MirrorFixture.policy).yaml", text + "\nretention: { keep_last: 2 }\n")
        for index in 0..<6 {
            try fixture.put("source", "kept/\(index)", pseudoRandomBytes(32 << 10, seed: UInt64(index + 1)))
        }
    }

    var label: String { "s3 mirror (\(fixture.kind.rawValue))" }
    var policy: String { MirrorFixture.policy }
    var configDirectory: String { fixture.directory.path }
    var environment: [String: String] { fixture.environment }
    var user: String? { nil }
    var counter: String { CrashAfterOperations.writesVariable }

    func prepare() throws {
        attempt += 1
        let seed = UInt64(attempt) << 16
        try fixture.put("source", "changing/small-a", pseudoRandomBytes(16 << 10, seed: seed + 1))
        try fixture.put("source", "changing/small-b", pseudoRandomBytes(48 << 10, seed: seed + 2))
        try fixture.put("source", "changing/large", pseudoRandomBytes(9 << 20, seed: seed + 3))
    }

    func start(environment: [String: String]) throws -> any CrashAttempt {
        try startLifeboat(["backup", policy], environment: environment)
    }

    func runAgain() throws {
        let again = try lifeboat(["backup", policy])
        #expect(again.status == 0, "\(label): the next run failed: \(again.all.suffix(3000))")
    }

    var localRepository: String? { fixture.kind == .local ? fixture.directory.subpath("repository") : nil }

    func leftovers() throws -> [String] {
        func isLeftover(_ key: String) -> Bool {
            key.hasSuffix("/reservation.json") || key.hasPrefix("locks/") || key.contains(".tmp-") || key.contains("/staging/")
        }
        switch fixture.kind {
        case .local:
            return try filesUnder(fixture.directory.subpath("repository")).filter(isLeftover)
        case .s3:
            let client = try fixture.client(MirrorFixture.repositoryBucket)
            let keys = try client.listObjects(prefix: "lifeboat/").map { String($0.key.dropFirst("lifeboat/".count)) }
            let uploads = try client.listMultipartUploads(prefix: "lifeboat/").map { "multipart upload of \($0.key)" }
            return keys.filter(isLeftover).sorted() + uploads
        }
    }

    func stop() { fixture.stop() }
}

/// Every regular file under a directory (temporary files included), relative to it.
func filesUnder(_ root: String) throws -> [String] {
    guard let enumerator = FileManager.default.enumerator(atPath: root) else { return [] }
    var found: [String] = []
    while let path = enumerator.nextObject() as? String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: root + "/" + path, isDirectory: &isDirectory), !isDirectory.boolValue {
            found.append(path)
        }
    }
    return found.sorted()
}

// MARK: PostgreSQL: wal-push, base backups

/// A PostgreSQL server of its own and a configuration with two physical policies of its
/// cluster: `pg`, whose WAL the server archives itself (`archive_command` = `lifeboat
/// wal-push pg %p`, as its OS user), for base backups; and `walpush`, into which the harness
/// pushes completed segments (the server also copies each into a spool: `cp %p spool/%f`)
/// as archive_command would. Every command runs as the server's OS user, who owns the
/// configuration and a local repository.
///
/// `restore --delta`: a base backup of `pg` restored once into `restored/data`, which before
/// each attempt drifts (`base/` removed, a file changed, a stray file added), then restored
/// again with `--delta`; after a kill the next delta restore must bring it back exactly
/// (`pg_verifybackup -n` against the backup's own `backup_manifest`: every file's checksum,
/// nothing missing, nothing extra).
final class PostgresSubject: CrashSubject {
    enum Operation: String { case walPush = "wal-push", baseBackup = "base backup", deltaRestore = "delta restore" }

    let operation: Operation
    let kind: RepositoryKind
    let directory: TemporaryDirectory
    let server: PostgresServer
    let s3: S3TestServer?
    let prefix = "crash-\(UUID().uuidString.lowercased())"
    private var segment = ""

    init(_ kind: RepositoryKind, operation: Operation) throws {
        self.kind = kind
        self.operation = operation
        directory = try TemporaryDirectory("lifeboat-crash-pg")
        s3 = kind == .s3 ? try SharedS3Server.get() : nil
        let spool = directory.subpath("spool")
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
        try directory.write("fetched/.keep", "")
        // The configuration is written once the port is known; archive_command fails (and is
        // retried by the server) until then.
        let push = "\(try LifeboatCLI.executable) --config \(directory.path) wal-push pg %p"
        try PostgresServer.giveToServerUser(directory.path)
        server = try PostgresServer.start(settings: ["archive_mode": "on", "archive_command": "'cp %p \(spool)/%f && \(push)'"])
        let repository: String
        if let s3 {
            repository = """
                repositories:
                  offsite:
                    s3: { endpoint: "\(s3.endpoint)", region: \(s3.region), bucket: lifeboat-test, prefix: \(prefix),
                          access_key_id: "\(s3.accessKeyID)", secret_access_key: "\(s3.secretAccessKey)" }
                default_repository: offsite

                """
        } else {
            repository = "repositories:\n  local: { path: \(directory.path)/repo }\ndefault_repository: local\n"
        }
        try directory.write("lifeboat.yaml", repository)
        for name in ["pg", "walpush"] {
            try directory.write("policies/\(name).yaml", """
                policy: \(name)
                source:
                  postgres:
                    conninfo: "\(server.conninfo())"
                    checkpoint: fast
                    wal: { push_parallel: 1, timeout: 2m }
                retention: { keep_last: 2 }

                """)
        }
        try PostgresServer.giveToServerUser(directory.path)
        try server.psql("create table t (id int, v text)")
        if operation == .deltaRestore {
            try server.psql("insert into t select g, md5(g::text) from generate_series(1, 20000) g")
            let backup = try lifeboat(["backup", "pg"])
            try #require(backup.status == 0, "\(backup.all)")
            let restore = try lifeboat(["restore", "pg", "--to", target, "--target", "immediate"])
            try #require(restore.status == 0, "\(restore.all)")
        }
    }

    /// `restore --delta`: the data directory restored into again and again.
    var target: String { directory.subpath("restored/data") }
    private var attempt = 0

    var label: String { "\(operation.rawValue) (\(kind.rawValue))" }
    var policy: String { operation == .walPush ? "walpush" : "pg" }
    var configDirectory: String { directory.path }
    var environment: [String: String] { [:] }
    var user: String? { geteuid() == 0 ? "postgres" : nil }
    var counter: String { operation == .deltaRestore ? CrashAfterOperations.operationsVariable : CrashAfterOperations.writesVariable }

    func prepare() throws {
        attempt += 1
        switch operation {
        case .walPush:
            segment = try server.completeSegment(rows: 5000)
            try server.waitUntilArchived(segment)
        case .baseBackup:
            try server.psql("insert into t select g, md5(g::text) from generate_series(1, 2000) g")
        case .deltaRestore:
            // The operator's copy drifted (or a killed restore left it half-written).
            try? FileManager.default.removeItem(atPath: target + "/base")  // absent when a kill came before it was restored
            try "# drifted \(attempt)\n".write(toFile: target + "/postgresql.conf", atomically: false, encoding: .utf8)
            try "stray \(attempt)\n".write(toFile: target + "/stray-\(attempt)", atomically: false, encoding: .utf8)
        }
    }

    var arguments: [String] {
        switch operation {
        case .walPush: return ["wal-push", "walpush", directory.subpath("spool/\(segment)"), "--pg-data", server.dataDirectory]
        case .baseBackup: return ["backup", "pg"]
        case .deltaRestore: return ["restore", "pg", "--to", target, "--target", "immediate", "--delta"]
        }
    }

    func start(environment: [String: String]) throws -> any CrashAttempt {
        try startLifeboat(arguments, environment: environment)
    }

    func runAgain() throws {
        let again = try lifeboat(arguments)
        #expect(again.status == 0, "\(label): the next run failed: \(again.all.suffix(3000))")
        if operation == .walPush {
            // The segment comes back as it was pushed.
            let fetched = directory.subpath("fetched/\(segment)")
            let fetch = try lifeboat(["wal-fetch", "walpush", segment, fetched])
            #expect(fetch.status == 0, "\(label): wal-fetch \(segment): \(fetch.all.suffix(3000))")
            #expect(FileManager.default.contents(atPath: fetched) == FileManager.default.contents(atPath: directory.subpath("spool/\(segment)")),
                    "\(label): \(segment) came back different")
            try? FileManager.default.removeItem(atPath: fetched)  // the next check fetches another
        }
        if operation == .deltaRestore {
            let verify = try ChildProcess.run(server.binDir + "/pg_verifybackup", ["-n", target])
            #expect(verify.status.isSuccess, "\(label): pg_verifybackup -n: \(verify.stdout)\(verify.stderr)")
            #expect(pathExists(target + "/recovery.signal"), "\(label): no recovery.signal")
            #expect(!pathExists(target + "/stray-\(attempt)"), "\(label): the stray file stayed")
        }
    }

    /// The killed push's temporary files under the policy's WAL archive (local; their writer's
    /// pid is gone), an hour old: past prune's grace (`PruneCommand.incompleteWriteGrace`). On
    /// S3 a killed push leaves an upload only for a stored segment larger than a part (8 MiB);
    /// these segments compress to far less, so there is nothing to age (an upload's initiation
    /// could not be changed anyway).
    func ageLockFreeLeftovers() throws {
        guard s3 == nil else { return }
        try ageDeadTemporaryFiles(under: directory.subpath("repo/\(policy)/wal"))
    }

    /// The server's own `archive_command` pushes into policy `pg` at any time: a temporary
    /// file whose writer runs is no leftover.
    var localRepository: String? { s3 == nil ? directory.subpath("repo") : nil }

    func leftovers() throws -> [String] {
        func isLeftover(_ key: String) -> Bool {
            key.hasSuffix("/reservation.json") || key.hasPrefix("locks/") || (key.contains(".tmp-") && !temporaryFileWriterRuns(key))
        }
        if let s3 {
            let client = try directClient(s3)
            let keys = try client.listObjects(prefix: prefix + "/").map { String($0.key.dropFirst(prefix.count + 1)) }
            let uploads = try client.listMultipartUploads(prefix: prefix + "/").map { "multipart upload of \($0.key)" }
            return keys.filter(isLeftover).sorted() + uploads
        }
        return try filesUnder(directory.subpath("repo")).filter(isLeftover)
    }

    func stop() {
        server.stop()
        directory.remove()
    }
}
