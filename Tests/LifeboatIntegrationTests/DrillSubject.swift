import Foundation
import LifeboatCore
import LifeboatEngine
import LifeboatHTTP
import LifeboatS3
import Testing
import TestSupport

/// `lifeboat drill` of a runbook that restores the `files` policy (`ConcurrencyFixture`) into
/// a scratch directory and compares it with the source (a `command` check, `diff -r`); on an
/// S3 repository it also restores an S3 mirror (a moto server of its own, bucket `assets`,
/// one object above a part) into the scratch prefix `lifeboat-drill-<id>/` of bucket
/// `restored`, which an `s3` check counts. A drill mostly reads: killed by the operations
/// counter. After each kill (and a torn history line, as a kill while appending it leaves) the
/// next drill must pass, its history must gain one readable line, and it must remove the dead
/// drill's marker, scratch directory and scratch objects, which `leftovers()` reports (with
/// the repository's) for `CrashSweep.recovered` to assert.
final class DrillSubject: CrashSubject {
    static let runbook = "crash"
    static let mirrorPolicy = "assets"
    static let restoreBucket = "restored"

    let fixture: ConcurrencyFixture
    /// S3 only: the mirror's source and restore buckets.
    let mirror: S3TestServer?

    init(_ kind: RepositoryKind) throws {
        fixture = try ConcurrencyFixture(kind, bigFileBytes: 3 << 20)
        do {
            mirror = kind == .s3 ? try S3TestServer.start(buckets: [Self.mirrorPolicy, Self.restoreBucket]) : nil
        } catch {
            fixture.remove()
            throw error
        }
        do {
            try setUp()
        } catch {
            stop()
            throw error
        }
    }

    /// The configuration, the runbook and a backup of each policy.
    private func setUp() throws {
        let main = try String(contentsOfFile: fixture.directory.subpath("lifeboat.yaml"), encoding: .utf8)
        try fixture.directory.write("lifeboat.yaml", main + "\nstate_dir: state\n")
        var steps = """
            runbook: \(Self.runbook)
            steps:
              - restore: \(ConcurrencyFixture.policy)
                target: { path: restored-etc }

            """
        var checks = """
                  - command: [diff, -r, "${TARGET_RESTORE_ETC_DIR}", "\(fixture.directory.subpath("src"))"]

            """
        if let mirror {
            let connection = """
                endpoint: "\(mirror.endpoint)", region: \(mirror.region), access_key_id: "\(mirror.accessKeyID)", secret_access_key: "\(mirror.secretAccessKey)"
                """
            try fixture.directory.write("policies/\(Self.mirrorPolicy).yaml", """
                policy: \(Self.mirrorPolicy)
                source:
                  s3: { \(connection), buckets: [\(Self.mirrorPolicy)], parallel: 2 }

                """)
            let client = try mirrorClient(Self.mirrorPolicy)
            for index in 0..<4 {
                _ = try client.putObject(key: "small/\(index)", bytes: pseudoRandomBytes(24 << 10, seed: UInt64(index + 1)))
            }
            _ = try client.putObject(key: "large", bytes: pseudoRandomBytes(9 << 20, seed: 99))
            steps += """
                  - restore: \(Self.mirrorPolicy)
                    target: { s3: "s3://\(Self.restoreBucket)/" }

                """
            checks += """
                      - s3: { \(connection), bucket: \(Self.restoreBucket), min_objects: 5 }

                """
        }
        try fixture.directory.write("runbooks/\(Self.runbook).yaml", steps + """
              - id: check
                when: drill
                health:
            \(checks)    within: 10s
                interval: 1s

            """)
        for policy in [ConcurrencyFixture.policy] + (mirror == nil ? [] : [Self.mirrorPolicy]) {
            let backup = try fixture.run(["backup", policy])
            try #require(backup.status == 0, "\(backup.all)")
        }
    }

    var label: String { "drill (\(fixture.kind.rawValue))" }
    var policy: String { ConcurrencyFixture.policy }
    var configDirectory: String { fixture.directory.path }
    var environment: [String: String] { fixture.environment }
    var user: String? { nil }
    var counter: String { CrashAfterOperations.operationsVariable }

    var state: String { fixture.directory.subpath("state") }
    var history: String { state + "/drills/\(Self.runbook).jsonl" }

    /// A drill killed while appending its history line leaves a torn line (a time kill rarely
    /// lands in that one `write`, so each attempt starts with one): the next drill's line must
    /// stay readable after it.
    func prepare() throws {
        guard let data = FileManager.default.contents(atPath: history), let last = data.split(separator: UInt8(ascii: "\n")).last else { return }
        let handle = try #require(FileHandle(forWritingAtPath: history))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: last.prefix(last.count / 2))
    }

    func start(environment: [String: String]) throws -> any CrashAttempt {
        try startLifeboat(["drill", Self.runbook], environment: environment)
    }

    /// The next drill passes, removes what the dead one left (`leftovers()`, asserted by the
    /// harness after prune) and adds one readable line to the history: a torn line of the
    /// killed drill is skipped, never merged with it.
    func runAgain() throws {
        let before = try historyRecords()
        let again = try lifeboat(["drill", Self.runbook])
        #expect(again.status == 0, "\(label): the next drill failed: \(again.all.suffix(3000))")
        #expect(again.stdout.contains("drill of runbook \(Self.runbook): PASSED"), "\(label): \(again.stdout.suffix(2000))")
        let after = try historyRecords()
        #expect(after.count == before.count + 1 && after.last?.passed == true,
                "\(label): the history had \(before.count) readable lines and has \(after.count) after the next drill")
    }

    func historyRecords() throws -> [DrillRecord] {
        guard let data = FileManager.default.contents(atPath: history) else { return [] }
        return DrillRecord.parseHistory(data).records
    }

    /// The repository's leftovers, and any drill's: markers, scratch directories, objects and
    /// multipart uploads in the restore bucket (every key there is a drill's scratch object).
    var localRepository: String? { fixture.localRepository }

    func leftovers() throws -> [String] {
        var found = try fixture.leftovers()
        found += scratchMarkers(state).map { "drill marker \($0)" }
        found += scratchDirectories(state + "/tmp").map { "scratch directory \($0)" }
        if mirror != nil {
            let client = try mirrorClient(Self.restoreBucket)
            found += try client.listObjects(prefix: "").map { "scratch object s3://\(Self.restoreBucket)/\($0.key)" }
            found += try client.listMultipartUploads(prefix: "").map { "multipart upload of s3://\(Self.restoreBucket)/\($0.key)" }
        }
        return found
    }

    func mirrorClient(_ bucket: String) throws -> S3Client {
        let server = try #require(mirror)
        return try S3Client(
            configuration: S3Client.Configuration(
                endpoint: server.endpoint, region: server.region, bucket: bucket, pathStyle: true,
                credentials: AWSCredentials(accessKeyID: server.accessKeyID, secretAccessKey: server.secretAccessKey),
                retry: RetryPolicy(maxAttempts: 3, baseDelay: 0.01, maxDelay: 0.05)),
            http: try HTTPClient(), logger: quietLogger)
    }

    func stop() {
        fixture.remove()
        mirror?.stop()
    }
}
