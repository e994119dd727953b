import Foundation
import Glibc
import LifeboatCore
import LifeboatHTTP
import LifeboatS3
import Testing
import TestSupport

/// Storage that fails under Lifeboat: each fault ends in a clear error (or a successful
/// retry), never in a committed broken backup. What other suites already cover:
/// S3 503s and resets retried into a backup, and a server failing every attempt committing
/// nothing (S3RepositoryTests), stalled S3 requests and cancellation (S3CancellationTests),
/// a stalled Redis master (RedisBackupTests), damaged bytes at rest (VerifyTests).
@Suite(.timeLimit(.minutes(10)))
struct StorageFaults {
    /// A tmpfs of `size` mounted on a fresh directory; nil (after recording an issue under CI)
    /// when this process may not mount.
    static func smallFilesystem(_ dir: TemporaryDirectory, size: String) throws -> String? {
        let mountPoint = dir.subpath("small-fs")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        guard geteuid() == 0, mount("tmpfs", mountPoint, "tmpfs", 0, "size=\(size),mode=0700") == 0 else {
            let why = "mounting a tmpfs needs root (euid \(geteuid()), errno \(errno))"
            if TestEnvironment.isCI { Issue.record(Comment(rawValue: why)) }
            return nil
        }
        return mountPoint
    }

    @Test func aFullDiskFailsABackupAndARestoreNamingTheErrorAndLeavesNothing() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory("lifeboat-full")
            defer { dir.remove() }
            guard let small = try Self.smallFilesystem(dir, size: "2m") else { return }
            defer { umount2(small, Int32(MNT_DETACH)) }
            try dir.write("lifeboat.yaml", "repositories:\n  small: { path: \(small)/repo }\n  roomy: { path: roomy }\ndefault_repository: small\n")
            try dir.write("big/random.bin", bytes: pseudoRandomBytes(6 << 20))  // incompressible, 3 × the disk
            try dir.write("little/a.txt", "alpha\n")
            try dir.write("policies/big.yaml", "policy: big\nsource: { files: { path: big } }\n")
            try dir.write("policies/little.yaml", "policy: little\nsource: { files: { path: little } }\n")
            try dir.write("policies/roomy.yaml", "policy: roomy\nrepository: roomy\nsource: { files: { path: big } }\n")

            let full = try LifeboatCLI.run(["backup", "big"], config: dir.path)
            #expect(full.status == 1, "\(full.all)")
            #expect(full.stderr.contains("No space left on device"), "\(full.stderr)")
            let list = try LifeboatCLI.run(["list", "big", "--all", "--json"], config: dir.path)
            #expect(list.status == 0, "\(list.all)")
            let entries = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [Any]
            #expect(entries?.isEmpty == true, "nothing committed, nothing left: \(list.stdout)")
            // What the failed run wrote was removed: a small backup fits again.
            let little = try LifeboatCLI.run(["backup", "little"], config: dir.path)
            #expect(little.status == 0, "\(little.all)")
            #expect(try LifeboatCLI.run(["verify", "little", "latest"], config: dir.path).status == 0)

            // A restore that fills the disk fails the same way and removes what it wrote.
            #expect(try LifeboatCLI.run(["backup", "roomy"], config: dir.path).status == 0)
            let restore = try LifeboatCLI.run(["restore", "roomy", "latest", "--to", small + "/restored"], config: dir.path)
            #expect(restore.status == 1, "\(restore.all)")
            #expect(restore.stderr.contains("No space left on device"), "\(restore.stderr)")
            #expect(!FileManager.default.fileExists(atPath: small + "/restored/random.bin"))
        }
    }

    @Test func anS3ServerReturningOtherBytesThanItStoredFailsVerifyAndRestoreNamingTheObject() async throws {
        try await offThePool {
            let (s3, proxy) = try FaultProxy.startInFrontOfS3()
            defer { proxy.stop(); s3.stop() }
            let dir = try TemporaryDirectory("lifeboat-flip")
            defer { dir.remove() }
            try s3Config(dir, endpoint: proxy.endpoint, server: s3)
            try dir.write("src/random.bin", bytes: pseudoRandomBytes(300_000))
            try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n")
            let environment = s3Environment(s3)
            let backup = try LifeboatCLI.run(["backup", "etc"], config: dir.path, environment: environment)
            #expect(backup.status == 0, "\(backup.all)")
            #expect(try LifeboatCLI.run(["verify", "etc", "latest"], config: dir.path, environment: environment).status == 0)

            // Every GET of an artifact now comes back with one bit flipped.
            try proxy.setRules([.flip(match: "/data/")])
            let verify = try LifeboatCLI.run(["verify", "etc", "latest"], config: dir.path, environment: environment)
            #expect(verify.status == 1, "\(verify.all)")
            #expect(try proxy.requests().contains { $0.outcome == "flip" })
            #expect(verify.stderr.contains("data/0000.tar.zst: SHA-256 mismatch of the stored object"), "the damaged object is named: \(verify.all)")
            let restore = try LifeboatCLI.run(["restore", "etc", "latest", "--to", dir.subpath("restored")], config: dir.path,
                                              environment: environment)
            #expect(restore.status == 1, "\(restore.all)")
            #expect(restore.stderr.contains("artifact 'data/0000.tar.zst'"), "the damaged object is named: \(restore.all)")
            #expect(!FileManager.default.fileExists(atPath: dir.subpath("restored/random.bin")))
        }
    }

    @Test func anUnreachableS3EndpointFailsTheBackupNamingItAndCommitsNothing() async throws {
        try await offThePool {
            let s3 = try S3TestServer.start()
            defer { s3.stop() }
            let dir = try TemporaryDirectory("lifeboat-refused")
            defer { dir.remove() }
            let closed = "http://127.0.0.1:\(try freeLoopbackPort())"
            try s3Config(dir, endpoint: closed, server: s3)
            try dir.write("src/a.txt", "alpha\n")
            try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n")
            let backup = try LifeboatCLI.run(["backup", "etc"], config: dir.path, environment: s3Environment(s3))
            #expect(backup.status == 1, "\(backup.all)")
            #expect(backup.stderr.contains(closed) || backup.stderr.contains("127.0.0.1 port"), "\(backup.stderr)")
            #expect(backup.stderr.contains("connect"), "\(backup.stderr)")
            #expect(backup.stderr.contains("HINT"), "\(backup.stderr)")
        }
    }

    /// PostgreSQL shut down (fast: its backends end) while `pg_dump` is mid-stream — held back
    /// by an upload part the proxy keeps — fails the backup naming pg_dump, aborts the upload
    /// and commits nothing.
    @Test func postgresGoingAwayMidBackupFailsItAbortsTheUploadAndCommitsNothing() async throws {
        try await offThePool {
            let (s3, proxy) = try FaultProxy.startInFrontOfS3()
            defer { proxy.stop(); s3.stop() }
            let pg = try PostgresServer.start()
            defer { pg.stop() }
            let dir = try TemporaryDirectory("lifeboat-pg-gone")
            defer { dir.remove() }
            let env = try bigLogicalBackupToS3(dir, pg: pg, s3: s3, proxy: proxy)
            try proxy.setRules([.hold(match: "partNumber=", times: 1)])

            let run = try LifeboatCLI.start(["backup", "pg"], config: dir.path, environment: env)
            try proxy.waitFor("held", match: "partNumber=")
            pg.stop()
            try proxy.release()
            let output = try run.wait()
            #expect(output.status == 1, "\(output.all)")
            #expect(output.stderr.contains("pg_dump"), "\(output.stderr)")
            let client = try directClient(s3)
            #expect(try client.listMultipartUploads(prefix: "backups/lifeboat/").isEmpty)
            #expect(!(try client.listObjects(prefix: "backups/lifeboat/").contains { $0.key.hasSuffix("manifest.json") }))
            let list = try LifeboatCLI.run(["list", "--all", "--json"], config: dir.path, environment: env)
            #expect(list.status == 0, "\(list.all)")
            #expect((try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [Any])?.isEmpty == true, "\(list.stdout)")
        }
    }

    /// A GET whose answer never comes times out (curl's low-speed limit, 1 s here instead of
    /// 60) and is retried into a whole read; a server that stalls every attempt fails the read
    /// naming the object and the timeouts.
    @Test func aStalledResponseTimesOutAndIsRetriedAndOneThatAlwaysStallsFailsNamingTheObject() async throws {
        try await offThePool {
            let (s3, proxy) = try FaultProxy.startInFrontOfS3()
            defer { proxy.stop(); s3.stop() }
            let client = try S3Client(
                configuration: S3Client.Configuration(
                    endpoint: proxy.endpoint, region: s3.region, bucket: "lifeboat-test", pathStyle: true,
                    credentials: AWSCredentials(accessKeyID: s3.accessKeyID, secretAccessKey: s3.secretAccessKey),
                    retry: RetryPolicy(maxAttempts: 3, baseDelay: 0.01, maxDelay: 0.05)),
                http: try HTTPClient(configuration: HTTPClient.Configuration(lowSpeedTime: .seconds(1))), logger: quietLogger,
                sleep: { _ in })
            let store = S3Store(client: client, prefix: "stall", logger: quietLogger)
            let bytes = pseudoRandomBytes(100_000)
            try writeObject(store, "a.bin", bytes)

            try proxy.setRules([.stall(match: "GET /lifeboat-test/stall/a.bin", times: 1)])
            #expect(try store.readAll(key: "a.bin") == bytes)
            #expect(try proxy.requests().filter { $0.outcome == "stall" }.count == 1)

            try proxy.setRules([.stall(match: "GET /lifeboat-test/stall/a.bin")])
            let error = #expect(throws: LifeboatError.self) { try store.readAll(key: "a.bin") }
            #expect(error?.exitStatus == 1)
            #expect(error?.message.contains("stall/a.bin") == true, "\(String(describing: error))")
            #expect(error?.message.contains("after 3 attempts") == true, "\(String(describing: error))")
        }
    }
}
