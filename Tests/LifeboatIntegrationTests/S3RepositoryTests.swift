import Crypto
import Foundation
import LifeboatCore
import LifeboatEngine
import LifeboatHTTP
import LifeboatS3
import Logging
import Synchronization
import Testing
import TestSupport

/// A configuration whose default repository is the test server's bucket (through `endpoint`,
/// which may be the fault proxy in front of it).
func s3Config(_ dir: TemporaryDirectory, endpoint: String, server: S3TestServer, bucket: String = "lifeboat-test") throws {
    try dir.write("lifeboat.yaml", """
        repositories:
          offsite:
            s3: { endpoint: "\(endpoint)", region: \(server.region), bucket: \(bucket), prefix: backups/lifeboat,
                  access_key_id: "${TEST_S3_KEY}", secret_access_key: "${TEST_S3_SECRET}" }
        default_repository: offsite
        """)
}

func s3Environment(_ server: S3TestServer, secret: String? = nil) -> [String: String] {
    ["TEST_S3_KEY": server.accessKeyID, "TEST_S3_SECRET": secret ?? server.secretAccessKey]
}

/// A client straight to the server, for looking behind Lifeboat's back (or, with `endpoint`,
/// through the fault proxy).
func directClient(_ server: S3TestServer, endpoint: String? = nil, retry: RetryPolicy = RetryPolicy(maxAttempts: 5, baseDelay: 0.01, maxDelay: 0.05),
                  checksum: S3Checksum = .crc32c, cancellation: Cancellation = .never, logger: Logger = quietLogger,
                  sleep: @escaping @Sendable (Double) -> Void = { Thread.sleep(forTimeInterval: $0) }) throws -> S3Client {
    try S3Client(
        configuration: S3Client.Configuration(
            endpoint: endpoint ?? server.endpoint, region: server.region, bucket: "lifeboat-test", pathStyle: true,
            credentials: AWSCredentials(accessKeyID: server.accessKeyID, secretAccessKey: server.secretAccessKey), retry: retry,
            checksum: checksum),
        http: try HTTPClient(cancellation: cancellation), logger: logger, sleep: sleep)
}

func sha256Hex(_ bytes: [UInt8]) -> String {
    SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
}

/// Deterministic pseudo-random bytes (xorshift), so a failure can be reproduced.
func pseudoRandomBytes(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
    var state = seed
    var bytes = [UInt8](repeating: 0, count: count)
    for i in 0..<count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        bytes[i] = UInt8(truncatingIfNeeded: state)
    }
    return bytes
}

/// A seeded PostgreSQL server, an S3 server, and a configuration with one policy backing up
/// `mcphub` into the S3 repository.
struct PostgresToS3 {
    let s3: S3TestServer
    let pg: PostgresServer
    let dir: TemporaryDirectory
    /// `mcphub`'s rows before anything happened.
    let before: [String: String]
    /// What `lifeboat` needs in its environment: the S3 key and `PG_CONNINFO`.
    let env: [String: String]

    init(policy: String) throws {
        s3 = try S3TestServer.start()
        pg = try PostgresServer.start()
        dir = try TemporaryDirectory()
        try seedPlatformDatabases(pg)
        before = try fingerprint(pg, database: "mcphub")
        try s3Config(dir, endpoint: s3.endpoint, server: s3)
        try dir.write("policies/\(policy).yaml", "policy: \(policy)\nsource:\n  postgres: { mode: logical, conninfo: \"${PG_CONNINFO}\", databases: [mcphub] }\n")
        env = s3Environment(s3).merging(["PG_CONNINFO": pg.conninfo()]) { $1 }
    }

    func stop() {
        dir.remove()
        pg.stop()
        s3.stop()
    }
}

@Suite(.timeLimit(.minutes(10)))
struct S3Repository {
    /// The disaster case: the machine with the configuration is gone. With nothing but the
    /// repository's address and credentials, an operator lists, verifies and restores.
    @Test func aPostgresBackupIsListedVerifiedAndRestoredFromTheRepositoryAlone() async throws {
        try await offThePool {
            let setup = try PostgresToS3(policy: "hub-postgres")
            defer { setup.stop() }
            let (s3, pg, dir, before, env) = (setup.s3, setup.pg, setup.dir, setup.before, setup.env)
            let backup = try LifeboatCLI.run(["backup", "hub-postgres", "--json"], config: dir.path, environment: env)
            #expect(backup.status == 0, "\(backup.stderr)")
            let id = try #require((try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any])?["id"] as? String)
            _ = try pg.psql("drop database mcphub")
            _ = try pg.psql("drop role hub_app")

            // A fresh machine: an empty configuration directory, the address, the usual AWS variables.
            let empty = try TemporaryDirectory()
            defer { empty.remove() }
            let fresh = ["AWS_ACCESS_KEY_ID": s3.accessKeyID, "AWS_SECRET_ACCESS_KEY": s3.secretAccessKey, "LIFEBOAT_CONFIG": empty.path]
            let address = ["--repository", "s3://lifeboat-test/backups/lifeboat", "--endpoint", s3.endpoint, "--region", s3.region]
            let list = try LifeboatCLI.run(["list", "--json"] + address, environment: fresh)
            #expect(list.status == 0, "\(list.stderr)")
            let entries = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]] ?? []
            #expect(entries.map { $0["policy"] as? String } == ["hub-postgres"])
            #expect(entries.first?["id"] as? String == id)
            #expect(entries.first?["source"] as? String == "postgres")

            let verify = try LifeboatCLI.run(["verify", "hub-postgres", "latest"] + address, environment: fresh)
            #expect(verify.status == 0, "\(verify.stderr)")
            #expect(verify.stdout.contains("backup \(id) of hub-postgres verified"))

            let restore = try LifeboatCLI.run(["restore", "hub-postgres", "latest", "--to", pg.conninfo()] + address, environment: fresh)
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(try fingerprint(pg, database: "mcphub") == before)
            #expect(try pg.psql("select rolname from pg_roles where rolname = 'hub_app'") == "hub_app")
            for output in [list, verify, restore] {
                #expect(!output.all.contains(s3.secretAccessKey))
                #expect(!output.all.contains(pg.superuserPassword))
            }
            // Without credentials, the error says where they are looked for.
            let anonymous = try LifeboatCLI.run(["list"] + address, environment: ["LIFEBOAT_CONFIG": empty.path, "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"])
            #expect(anonymous.status == 2, "\(anonymous.stderr)")
            #expect(anonymous.stderr.contains("AWS_ACCESS_KEY_ID"))
        }
    }

    @Test func postgresBackupListVerifyRestoreThroughAnS3Repository() async throws {
        try await offThePool {
            let setup = try PostgresToS3(policy: "pg")
            defer { setup.stop() }
            let (s3, pg, dir, before, env) = (setup.s3, setup.pg, setup.dir, setup.before, setup.env)

            let backup = try LifeboatCLI.run(["backup", "pg", "--json"], config: dir.path, environment: env)
            #expect(backup.status == 0, "\(backup.stderr)")
            let list = try LifeboatCLI.run(["list", "pg", "--json"], config: dir.path, environment: env)
            #expect(list.status == 0, "\(list.stderr)")
            let entries = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]] ?? []
            #expect(entries.count == 1)
            #expect(entries.first?["repository"] as? String == "offsite")

            // The objects are where the layout says, under the prefix.
            let keys = try directClient(s3).listObjects(prefix: "backups/lifeboat/").map(\.key)
            #expect(keys.contains("backups/lifeboat/lifeboat.json"))
            #expect(keys.contains { $0.hasPrefix("backups/lifeboat/pg/backups/") && $0.hasSuffix("/manifest.json") })

            let verify = try LifeboatCLI.run(["verify", "pg", "latest"], config: dir.path, environment: env)
            #expect(verify.status == 0, "\(verify.stderr)")
            let check = try LifeboatCLI.run(["check", "--json"], config: dir.path, environment: env)
            #expect(check.status == 0, "\(check.stderr)")
            let checks = (try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [String: Any])?["repositoryChecks"] as? [[String: Any]]
            #expect(checks?.first?["state"] as? String == "ok")
            #expect(checks?.first?["location"] as? String == "s3://lifeboat-test/backups/lifeboat/")

            _ = try pg.psql("drop database mcphub")
            let restore = try LifeboatCLI.run(["restore", "pg", "latest", "--to", pg.conninfo()], config: dir.path, environment: env)
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(try fingerprint(pg, database: "mcphub") == before)
            for output in [backup, list, verify, restore] {
                #expect(!output.all.contains(s3.secretAccessKey))
                #expect(!output.all.contains(pg.superuserPassword))
            }
        }
    }

    @Test(arguments: S3Checksum.allCases)
    func aMultipartUploadOfSeveralPartsReadsBackByteIdentical(checksum: S3Checksum) async throws {
        try await offThePool {
            let s3 = try S3TestServer.start()
            defer { s3.stop() }
            let store = S3Store(client: try directClient(s3, checksum: checksum), prefix: "mp", partSize: 5 << 20, concurrency: 3,
                                readAhead: 2, logger: quietLogger)
            let data = pseudoRandomBytes(17 << 20)  // 4 parts: 5 + 5 + 5 + 2 MiB
            let writer = try store.openWriter(key: "big.bin")
            var offset = 0
            while offset < data.count {  // in uneven pieces, as libarchive writes
                let n = min(777_777, data.count - offset)
                try data.withUnsafeBytes { try writer.write(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + n)])) }
                offset += n
            }
            try writer.commit()
            #expect(try store.stat(key: "big.bin")?.size == Int64(data.count))
            // A multipart object's ETag is "<md5 of the part md5s>-<parts>".
            let etag = try #require(try store.client.headObject(key: "mp/big.bin")?.etag)
            #expect(etag.hasSuffix("-4\""), "\(etag)")

            let reader = try store.openReader(key: "big.bin")
            defer { reader.close() }
            var read: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 300_000)
            while true {
                let n = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
                if n == 0 { break }
                read += buffer[0..<n]
            }
            #expect(read.count == data.count)
            #expect(sha256Hex(read) == sha256Hex(data))
        }
    }

    @Test func listingAPrefixOfMoreThanAThousandKeysFollowsContinuationTokens() async throws {
        try await offThePool {
            let s3 = try S3TestServer.start()
            defer { s3.stop() }
            let client = try directClient(s3)
            let keys = (0..<1_050).map { String(format: "many/key-%05d", $0) }
            // Eight threads of PUTs, each a real signed request.
            DispatchQueue.concurrentPerform(iterations: 8) { worker in
                for key in keys.enumerated() where key.offset % 8 == worker {
                    do { try client.putObject(key: key.element, bytes: Array(key.element.utf8)) } catch { Issue.record(error) }
                }
            }
            let store = S3Store(client: client, prefix: "", logger: quietLogger)
            let listed = try store.listAll(prefix: "many/")
            #expect(listed.map(\.key) == keys)
            try store.delete(keys: keys)  // DeleteObjects in batches of 1,000
            #expect(try store.listAll(prefix: "many/").isEmpty)
        }
    }

    @Test func aWrongSecretKeyIsRejectedByTheServerAndReportedWithTheAccessKey() async throws {
        try await offThePool {
            let s3 = try S3TestServer.start()
            defer { s3.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try s3Config(dir, endpoint: s3.endpoint, server: s3)
            try dir.write("src/a.txt", "a")
            try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n")
            let wrong = "Wrong/Secret+Key0123456789abcdefghijklmn"
            let result = try LifeboatCLI.run(["backup", "etc"], config: dir.path, environment: s3Environment(s3, secret: wrong))
            #expect(result.status == 1)
            let masked = AWSCredentials.mask(s3.accessKeyID)
            #expect(result.stderr.contains("403 SignatureDoesNotMatch — the secret key for access key \(masked) does not match"), "\(result.stderr)")
            #expect(result.stderr.contains("HINT: Check AWS_SECRET_ACCESS_KEY"))
            #expect(!result.all.contains(wrong))
            #expect(!result.all.contains(s3.accessKeyID))  // only the masked form

            let check = try LifeboatCLI.run(["check"], config: dir.path, environment: s3Environment(s3, secret: wrong))
            #expect(check.status == 1)
            #expect(check.stderr.contains("error: repository 'offsite' (s3://lifeboat-test/backups/lifeboat/) cannot be used"), "\(check.stderr)")
            #expect(check.stderr.contains("SignatureDoesNotMatch"))
            #expect(try LifeboatCLI.run(["check", "--offline"], config: dir.path, environment: s3Environment(s3, secret: wrong)).status == 0)
        }
    }

    @Test func anUnknownBucketIsReportedWithTheEndpoint() async throws {
        try await offThePool {
            let s3 = try S3TestServer.start()
            defer { s3.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try s3Config(dir, endpoint: s3.endpoint, server: s3, bucket: "no-such-bucket")
            try dir.write("src/a.txt", "a")
            try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n")
            let result = try LifeboatCLI.run(["backup", "etc"], config: dir.path, environment: s3Environment(s3))
            #expect(result.status == 1)
            #expect(result.stderr.contains("bucket 'no-such-bucket' does not exist at \(s3.endpoint)"), "\(result.stderr)")
        }
    }
}

@Suite(.timeLimit(.minutes(10)))
struct S3FaultInjection {
    func filesPolicy(_ dir: TemporaryDirectory, bytes: Int = 1000) throws {
        try dir.write("src/data.bin", String(decoding: pseudoRandomBytes(bytes).map { $0 % 26 + 97 }, as: UTF8.self))
        try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n")
    }

    /// A run whose retries are recorded instead of slept: the test takes no longer for the
    /// backoff, and checks it.
    final class Sleeps: Sendable {
        let recorded = Mutex<[Double]>([])
        func append(_ seconds: Double) { recorded.withLock { $0.append(seconds) } }
        var all: [Double] { recorded.withLock { $0 } }
    }

    func run(_ dir: TemporaryDirectory, _ s3: S3TestServer, sleeps: Sleeps) throws -> (BackupCommand, RunContext) {
        let configuration = try ConfigurationLoader.load(directory: dir.path, environment: s3Environment(s3))
        let context = RunContext(logger: quietLogger, retry: RetryPolicy(maxAttempts: 5, baseDelay: 0.25, maxDelay: 20),
                                 sleep: { seconds in sleeps.append(seconds) })
        return (BackupCommand(configuration: configuration, context: context), context)
    }

    @Test func theFirstRequestsFailingWith503AndResetsStillGiveABackup() async throws {
        try await offThePool {
            let (s3, proxy) = try FaultProxy.startInFrontOfS3()
            defer { proxy.stop(); s3.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try s3Config(dir, endpoint: proxy.endpoint, server: s3)
            try filesPolicy(dir)
            try proxy.setRules([.status(503, code: "SlowDown", times: 2), .reset(times: 1), .status(500, times: 1)])

            let sleeps = Sleeps()
            let (backup, _) = try run(dir, s3, sleeps: sleeps)
            let result = try backup.run(policy: "etc")
            let outcomes = try proxy.requests().map(\.outcome)
            #expect(Array(outcomes.prefix(4)) == ["503", "503", "reset", "500"])
            // Four retries, each waiting at most the policy's ceiling for its attempt (full jitter).
            let waited = sleeps.all
            #expect(waited.count == 4)
            for (attempt, delay) in waited.enumerated() {
                #expect(delay >= 0 && delay <= RetryPolicy(maxAttempts: 5, baseDelay: 0.25, maxDelay: 20).delayCeiling(afterAttempt: attempt + 1))
            }
            #expect(try LifeboatCLI.run(["verify", "etc", result.manifest.id], config: dir.path, environment: s3Environment(s3)).status == 0)
        }
    }

    @Test func aServerThatKeepsFailingFailsTheBackupWithEveryAttemptAndCommitsNothing() async throws {
        try await offThePool {
            let (s3, proxy) = try FaultProxy.startInFrontOfS3()
            defer { proxy.stop(); s3.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try s3Config(dir, endpoint: proxy.endpoint, server: s3)
            try filesPolicy(dir)
            // The repository marker goes through; every later PUT under the policy fails.
            try proxy.setRules([.status(503, code: "ServiceUnavailable", match: "PUT /lifeboat-test/backups/lifeboat/etc/")])

            let sleeps = Sleeps()
            let (backup, _) = try run(dir, s3, sleeps: sleeps)
            let error = #expect(throws: LifeboatError.self) { try backup.run(policy: "etc") }
            #expect(error?.exitStatus == 1)
            #expect(error?.message.contains("failed after 5 attempts: 1) 503 ServiceUnavailable; 2) 503 ServiceUnavailable; 3) 503 ServiceUnavailable; 4) 503 ServiceUnavailable; 5) 503 ServiceUnavailable") == true,
                    "\(String(describing: error))")
            #expect(sleeps.all.count == 4)
            let keys = try directClient(s3).listObjects(prefix: "backups/lifeboat/etc/").map(\.key)
            #expect(!keys.contains { $0.hasSuffix("manifest.json") }, "\(keys)")
            let list = try LifeboatCLI.run(["list", "etc", "--all"], config: dir.path, environment: s3Environment(s3))
            #expect(list.stdout.contains("policy etc has no backups"), "\(list.stdout)")
        }
    }

    @Test func aPartThatKeepsFailingAbortsTheMultipartUpload() async throws {
        try await offThePool {
            let (s3, proxy) = try FaultProxy.startInFrontOfS3()
            defer { proxy.stop(); s3.stop() }
            let client = try directClient(s3, endpoint: proxy.endpoint)
            let store = S3Store(client: client, prefix: "mp", partSize: 5 << 20, concurrency: 2, logger: quietLogger)
            try proxy.setRules([.status(500, code: "InternalError", match: "partNumber=3&")])

            let writer = try store.openWriter(key: "doomed.bin")
            let data = pseudoRandomBytes(22 << 20)
            #expect(throws: LifeboatError.self) {
                try data.withUnsafeBytes { try writer.write($0) }
                try writer.commit()
            }
            writer.abort()
            // Part 3 was tried five times, the others once; then the upload was aborted.
            let requests = try proxy.requests()
            #expect(requests.filter { $0.path.contains("partNumber=3&") }.count == 5)
            #expect(requests.contains { $0.method == "DELETE" && $0.path.contains("uploadId=") })
            #expect(try directClient(s3).listMultipartUploads(prefix: "mp/").isEmpty)
            #expect(try store.stat(key: "doomed.bin") == nil)
        }
    }
}
