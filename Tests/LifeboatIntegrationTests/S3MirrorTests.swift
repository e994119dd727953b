import Crypto
import Foundation
import LifeboatCore
import LifeboatHTTP
import LifeboatIO
import LifeboatS3
import Logging
import Testing
import TestSupport

/// An object as a test sees it in a bucket: content, type, user metadata, other headers.
struct BucketObject: Equatable, CustomStringConvertible {
    var bytes: [UInt8]
    var contentType: String?
    var metadata: [String: String]
    var cacheControl: String?

    var description: String { "\(bytes.count) bytes, \(contentType ?? "-"), \(metadata), \(cacheControl ?? "-")" }
}

/// A moto server with the buckets of a test, a fault proxy in front of it (the mirror's source
/// goes through it, so its requests are counted), a configuration with one `s3` policy, and a
/// repository that is local or in a bucket of the same server (reached directly).
final class MirrorFixture: Sendable {
    static let policy = "buckets"
    static let repositoryBucket = "lifeboat-repository"

    let s3: S3TestServer
    let proxy: FaultProxy
    let directory: TemporaryDirectory
    let environment: [String: String]
    let kind: RepositoryKind

    /// With `encrypted`, the repository is encrypted with a key in `repository.key` (0600).
    init(_ kind: RepositoryKind, buckets: [String], sources: String, parallel: Int = 4, encrypted: Bool = false) throws {
        self.kind = kind
        s3 = try S3TestServer.start(buckets: [Self.repositoryBucket] + buckets)
        do {
            proxy = try FaultProxy.start(upstreamPort: s3.port)
        } catch {
            s3.stop()
            throw error
        }
        directory = try TemporaryDirectory("lifeboat-mirror")
        environment = s3Environment(s3)
        var encryption = ""
        if encrypted {
            encryption = ", encryption: { key_file: repository.key }"
            try writeKeyFile(directory.subpath("repository.key"), seed: 1)
        }
        switch kind {
        case .local:
            try directory.write("lifeboat.yaml", "repositories:\n  local: { path: repository\(encryption) }\ndefault_repository: local\nstate_dir: state\n")
        case .s3:
            try directory.write("lifeboat.yaml", """
                repositories:
                  offsite:
                    s3: { endpoint: "\(s3.endpoint)", region: \(s3.region), bucket: \(Self.repositoryBucket), prefix: lifeboat,
                          access_key_id: "${TEST_S3_KEY}", secret_access_key: "${TEST_S3_SECRET}" }
                    \(encryption.dropFirst(2))
                default_repository: offsite
                """)
        }
        try directory.write("policies/\(Self.policy).yaml", """
            policy: \(Self.policy)
            source:
              s3:
                endpoint: "\(proxy.endpoint)"
                region: \(s3.region)
                access_key_id: "${TEST_S3_KEY}"
                secret_access_key: "${TEST_S3_SECRET}"
                buckets: \(sources)
                parallel: \(parallel)
            """)
    }

    func stop() {
        directory.remove()
        proxy.stop()
        s3.stop()
    }

    func client(_ bucket: String) throws -> S3Client {
        try S3Client(
            configuration: S3Client.Configuration(
                endpoint: s3.endpoint, region: s3.region, bucket: bucket, pathStyle: true,
                credentials: AWSCredentials(accessKeyID: s3.accessKeyID, secretAccessKey: s3.secretAccessKey),
                retry: RetryPolicy(maxAttempts: 3, baseDelay: 0.01, maxDelay: 0.05)),
            http: try HTTPClient(), logger: quietLogger)
    }

    func put(_ bucket: String, _ key: String, _ bytes: [UInt8], type: String? = "application/octet-stream",
             metadata: [String: String] = [:], cacheControl: String? = nil) throws {
        var headers: [(name: String, value: String)] = []
        if let type { headers.append(("Content-Type", type)) }
        headers += metadata.sorted { $0.key < $1.key }.map { ("x-amz-meta-\($0.key)", $0.value) }
        if let cacheControl { headers.append(("Cache-Control", cacheControl)) }
        try client(bucket).putObject(key: key, bytes: bytes, headers: headers)
    }

    func delete(_ bucket: String, _ keys: [String]) throws {
        try client(bucket).deleteObjects(keys: keys)
    }

    /// Every object of a bucket (under `prefix`), by key (as bytes: a `String` key would take
    /// the NFC and NFD spellings of one name for one key), as a restore must recreate it.
    func contents(_ bucket: String, prefix: String = "") throws -> [[UInt8]: BucketObject] {
        let client = try client(bucket)
        var result: [[UInt8]: BucketObject] = [:]
        var token: String?
        repeat {
            let page = try client.listObjectsV2(prefix: prefix, continuationToken: token, urlEncodedKeys: true)
            for object in page.objects {
                let bytes = object.size == 0 ? [] : try client.getObject(key: object.key, limit: 64 << 20)
                let (_, headers) = try #require(try client.headObjectWithHeaders(key: object.key))
                var metadata: [String: String] = [:]
                for (name, value) in headers where name.lowercased().hasPrefix("x-amz-meta-") {
                    metadata[String(name.lowercased().dropFirst("x-amz-meta-".count))] = value
                }
                result[Array(object.key.utf8)] = BucketObject(bytes: bytes, contentType: headers["Content-Type"], metadata: metadata,
                                                  cacheControl: headers["Cache-Control"])
            }
            token = page.nextContinuationToken
        } while token != nil
        return result
    }

    func run(_ arguments: [String]) throws -> LifeboatCLI.Output {
        try LifeboatCLI.run(arguments, config: directory.path, environment: environment)
    }

    func start(_ arguments: [String]) throws -> LifeboatCLI.Running {
        try LifeboatCLI.start(arguments, config: directory.path, environment: environment)
    }

    /// `lifeboat backup buckets --json`: the committed backup's id.
    func backup() throws -> String {
        let result = try run(["backup", Self.policy, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        return try Self.id(of: result)
    }

    static func id(of result: LifeboatCLI.Output) throws -> String {
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)\(result.stderr)")
        return try #require(summary["id"] as? String)
    }

    /// The proxy's count of object reads (GET that is not a listing, and HEAD) since `since`.
    func objectReads(since: Int) throws -> [String] {
        try proxy.requests().dropFirst(since).filter { request in
            request.outcome != "held" && (request.method == "HEAD" || (request.method == "GET" && !request.path.contains("list-type=2")))
        }.map { "\($0.method) \($0.path)" }
    }

    func restore(_ arguments: [String]) throws -> LifeboatCLI.Output {
        try run(["restore", Self.policy] + arguments)
    }
}

/// A key as `MirrorFixture.contents` has it.
func key(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Content of `count` bytes, different for each seed.
func content(_ count: Int, seed: UInt64) -> [UInt8] { pseudoRandomBytes(count, seed: seed | 1) }

@Suite(.timeLimit(.minutes(10)))
struct S3Mirrors {
    /// Issue 8's scenario: three buckets; run 1; add, change (same size), delete, and change
    /// only metadata; run 2; each snapshot restores into new buckets exactly as the buckets were
    /// at its run, `--at` between the runs gives snapshot 1, and a run over unchanged buckets
    /// reads no object (counted at the proxy).
    @Test(arguments: RepositoryKind.allCases)
    func threeBucketsComeBackAsTheyWereAtEachSnapshot(kind: RepositoryKind) async throws {
        try await offThePool { try threeBuckets(kind) }
    }

    func threeBuckets(_ kind: RepositoryKind) throws {
        let restored = ["r1-alpha", "r1-beta", "r1-gamma", "r2-alpha", "r2-beta", "r2-gamma", "at-alpha"]
        let fixture = try MirrorFixture(kind, buckets: ["alpha", "beta", "gamma"] + restored,
                                        sources: #"[alpha, { bucket: beta }, { bucket: gamma, prefix: "keep/" }]"#)
        defer { fixture.stop() }
        let shared = content(5000, seed: 7)
        try fixture.put("alpha", "index.html", Array("<h1>hello</h1>".utf8), type: "text/html", metadata: ["owner": "ann"],
                        cacheControl: "max-age=60")
        try fixture.put("alpha", "data/big.bin", content(9 << 20, seed: 1), metadata: ["kind": "large"])  // staged (> 8 MiB)
        try fixture.put("alpha", "data/same-size.bin", content(4096, seed: 2))
        try fixture.put("alpha", "data/doomed.txt", Array("delete me".utf8), type: "text/plain")
        try fixture.put("alpha", "empty", [], type: nil)
        try fixture.put("alpha", "shared.bin", shared)
        try fixture.put("alpha", "with space+plus%percent?q#h", Array("odd".utf8), metadata: ["note": "odd key"])
        try fixture.put("beta", "shared-copy.bin", shared)  // the same content: one blob
        try fixture.put("beta", "metadata-only.txt", Array("same bytes".utf8), type: "text/plain", metadata: ["v": "1"])
        try fixture.put("gamma", "keep/a.txt", Array("kept".utf8), type: "text/plain")
        try fixture.put("gamma", "skip/b.txt", Array("not mirrored".utf8))
        let state1 = try ["alpha": fixture.contents("alpha"), "beta": fixture.contents("beta"),
                          "gamma": fixture.contents("gamma", prefix: "keep/")]

        let id1 = try fixture.backup()
        Thread.sleep(forTimeInterval: 1.2)
        let between = Date()
        Thread.sleep(forTimeInterval: 1.2)

        try fixture.put("alpha", "added/new.txt", Array("new".utf8), type: "text/plain")
        try fixture.put("alpha", "data/same-size.bin", content(4096, seed: 3))  // same size, other bytes
        try fixture.delete("alpha", ["data/doomed.txt"])
        try fixture.put("beta", "metadata-only.txt", Array("same bytes".utf8), type: "text/markdown", metadata: ["v": "2"])
        try fixture.put("gamma", "keep/c.txt", Array("more".utf8))
        let state2 = try ["alpha": fixture.contents("alpha"), "beta": fixture.contents("beta"),
                          "gamma": fixture.contents("gamma", prefix: "keep/")]
        #expect(state1["alpha"]?[key("data/same-size.bin")]?.bytes.count == state2["alpha"]?[key("data/same-size.bin")]?.bytes.count)

        let before2 = try fixture.proxy.requests().count
        let id2 = try fixture.backup()
        // Run 2 read only what changed: the new, changed and re-written objects.
        let reads2 = try fixture.objectReads(since: before2)
        #expect(reads2.count == 4, "\(reads2)")  // GET new.txt, same-size.bin, keep/c.txt; HEAD metadata-only.txt

        for (id, state, prefix) in [(id1, state1, "r1"), (id2, state2, "r2")] {
            for bucket in ["alpha", "beta", "gamma"] {
                let result = try fixture.restore([id, "--bucket", bucket, "--to", "s3://\(prefix)-\(bucket)"])
                #expect(result.status == 0, "\(result.stderr)")
                let got = try fixture.contents("\(prefix)-\(bucket)")
                #expect(got == state[bucket], "snapshot \(id), bucket \(bucket): \(got) != \(state[bucket] ?? [:])")
            }
        }
        let at = try fixture.restore(["--at", ISO8601DateFormatter().string(from: between), "--bucket", "alpha", "--to", "s3://at-alpha"])
        #expect(at.status == 0, "\(at.stderr)")
        #expect(try fixture.contents("at-alpha") == state1["alpha"])

        // Run 3: nothing changed, so nothing is read — only listed.
        let before3 = try fixture.proxy.requests().count
        let id3 = try fixture.backup()
        #expect(try fixture.objectReads(since: before3) == [])
        #expect(id3 != id2)

        let verify = try fixture.run(["verify", MirrorFixture.policy, id1, "--read-data"])
        #expect(verify.status == 0, "\(verify.stderr)")
        let list = try fixture.run(["list", MirrorFixture.policy])
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains("s3://alpha/: 7 objects"), "\(list.stdout)")
        #expect(list.stdout.contains("s3://gamma/keep/: 2 objects"), "\(list.stdout)")
        let listJSON = try fixture.run(["list", MirrorFixture.policy, "--json"])
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(listJSON.stdout.utf8)) as? [[String: Any]])
        #expect(entries.map { $0["id"] as? String } == [id1, id2, id3])
        #expect(entries.allSatisfy { $0["source"] as? String == "s3" })
    }

    /// Objects in the target bucket that the snapshot lacks stay, unless `--delete-extra`; and
    /// never more than `--max-delete` go: past it nothing at all is written or deleted. A
    /// restore over an identical bucket writes nothing.
    @Test func extraObjectsAreDeletedOnlyWhenAskedAndWithinTheLimit() async throws {
        try await offThePool {
            let fixture = try MirrorFixture(.local, buckets: ["alpha", "target"], sources: "[alpha]")
            defer { fixture.stop() }
            for index in 0..<5 { try fixture.put("alpha", "k\(index)", Array("v\(index)".utf8)) }
            let state = try fixture.contents("alpha")
            let id = try fixture.backup()
            for index in 0..<3 { try fixture.put("target", "extra\(index)", Array("x".utf8)) }
            try fixture.put("target", "k0", Array("stale".utf8))

            let kept = try fixture.restore([id, "--to", "s3://target"])
            #expect(kept.status == 0, "\(kept.stderr)")
            #expect(try fixture.contents("target").count == 8)
            #expect(try fixture.contents("target")[key("k0")] == state[key("k0")])

            try fixture.put("target", "k1", Array("stale again".utf8))
            let refused = try fixture.restore([id, "--to", "s3://target", "--delete-extra", "--max-delete", "2"])
            #expect(refused.status == 2, "\(refused.stderr)")
            #expect(refused.stderr.contains("would delete 3 objects"), "\(refused.stderr)")
            let untouched = try fixture.contents("target")
            #expect(untouched.count == 8)
            #expect(untouched[key("k1")]?.bytes == Array("stale again".utf8))  // nothing was written either

            let deleted = try fixture.restore([id, "--to", "s3://target", "--delete-extra", "--max-delete", "3", "--json"])
            #expect(deleted.status == 0, "\(deleted.stderr)")
            #expect(try fixture.contents("target") == state)

            let before = try fixture.proxy.requests().count
            let again = try fixture.restore([id, "--to", "s3://target", "--delete-extra"])
            #expect(again.status == 0, "\(again.stderr)")
            let writes = try fixture.proxy.requests().dropFirst(before).filter { ["PUT", "POST", "DELETE"].contains($0.method) }
            #expect(writes.isEmpty, "\(writes.map(\.path))")
        }
    }

    /// `--to DIR`: keys become files under DIR/<bucket>/, metadata goes to DIR/.lifeboat/;
    /// a key that would leave the directory (`..`) is refused and nothing stays behind.
    @Test func aSnapshotRestoresIntoADirectoryAndHostileKeysAreRefused() async throws {
        try await offThePool {
            let fixture = try MirrorFixture(.local, buckets: ["alpha"], sources: "[alpha]")
            defer { fixture.stop() }
            try fixture.put("alpha", "safe/a.txt", Array("a".utf8), type: "text/plain", metadata: ["owner": "ann"])
            try fixture.put("alpha", "safe/sub/b.bin", content(9 << 20, seed: 4))
            try fixture.put("alpha", "safe/folder/", [])
            try fixture.put("alpha", "evil/../../escape.txt", Array("escape".utf8))
            let id = try fixture.backup()

            let target = fixture.directory.subpath("restored")
            let refused = try fixture.restore([id, "--to", target])
            #expect(refused.status == 2, "\(refused.stderr)")
            #expect(refused.stderr.contains("evil/../../escape.txt"), "\(refused.stderr)")
            #expect(!pathExists(target), "a failed restore removes the directory it created")
            #expect(!pathExists(fixture.directory.subpath("escape.txt")))

            let done = try fixture.restore([id, "--to", target, "--prefix", "safe/"])
            #expect(done.status == 0, "\(done.stderr)")
            #expect(try fixture.directory.read("restored/alpha/safe/a.txt") == Array("a".utf8))
            #expect(try fixture.directory.read("restored/alpha/safe/sub/b.bin") == content(9 << 20, seed: 4))
            #expect(isDirectory(fixture.directory.subpath("restored/alpha/safe/folder")))
            let metadata = String(decoding: try fixture.directory.read("restored/.lifeboat/alpha.jsonl"), as: UTF8.self)
            #expect(metadata.contains(#""key":"safe/a.txt""#) && metadata.contains(#""meta":{"owner":"ann"}"#), "\(metadata)")
            #expect(!metadata.contains("escape"))

            let notEmpty = try fixture.restore([id, "--to", target, "--prefix", "safe/"])
            #expect(notEmpty.status == 2, "\(notEmpty.stderr)")
        }
    }

    /// Keys with odd bytes — control characters, a leading `/`, `+`, `%`, `?`, `#`, the two
    /// Unicode spellings of "é", dot segments, double slashes — are mirrored and restored into
    /// a bucket byte for byte. A bucket name that could leave a directory is a configuration error.
    @Test func keysWithOddBytesSurviveAMirrorAndARestore() async throws {
        try await offThePool {
            let fixture = try MirrorFixture(.s3, buckets: ["odd", "odd-restored"], sources: "[odd]")
            defer { fixture.stop() }
            // Not a newline: moto's HTTP server answers 404 to a path holding one (AWS takes it);
            // the listing format's own tests cover it.
            let keys = ["tab\there", "cr\rx", "ctrl\u{1}\u{1F}\u{7F}", "/leading/slash", "plus+and space", "per%25cent", "q?x=1#frag",
                        "caf\u{E9}", "cafe\u{301}", "a/../b", "./dot", "double//slash", "trailing space ", "\u{1F600}/emoji",
                        "quote\"and'apos", "<xml>&amp;"]
            for (index, key) in keys.enumerated() {
                try fixture.put("odd", key, Array("content \(index)".utf8), type: "text/plain", metadata: ["index": "\(index)"])
            }
            let state = try fixture.contents("odd")
            #expect(state.count == keys.count, "\(state.keys.map { String(decoding: $0, as: UTF8.self) })")
            let id = try fixture.backup()
            let restore = try fixture.restore([id, "--to", "s3://odd-restored"])
            #expect(restore.status == 0, "\(restore.stderr)")
            let restored = try fixture.contents("odd-restored")
            #expect(Set(restored.keys) == Set(keys.map { Array($0.utf8) }))
            #expect(restored == state)
            let verify = try fixture.run(["verify", MirrorFixture.policy, "--read-data-subset", "1/2"])
            #expect(verify.status == 0, "\(verify.stderr)")

            try fixture.directory.write("policies/evil.yaml", "policy: evil\nsource:\n  s3:\n    endpoint: http://127.0.0.1:1\n    buckets: [ok, \"../evil\"]\n")
            let check = try fixture.run(["check", "--offline"])
            #expect(check.status == 2)
            #expect(check.stderr.contains("policies/evil.yaml:5:"), "\(check.stderr)")
            #expect(check.stderr.contains("'../evil' is not a valid S3 bucket name"), "\(check.stderr)")
        }
    }

    /// An object replaced between the listing and its GET is never stored under the entry of
    /// the bytes that were listed: `If-Match` refuses the old ETag, the object is listed again,
    /// and the snapshot holds the new bytes with the new ETag.
    @Test func anObjectReplacedDuringItsCopyIsStoredWithItsNewContent() async throws {
        try await offThePool {
            let fixture = try MirrorFixture(.s3, buckets: ["alpha", "restored"], sources: "[alpha]")
            defer { fixture.stop() }
            let old = content(2048, seed: 5), new = content(2048, seed: 6)
            try fixture.put("alpha", "changing.bin", old)
            try fixture.put("alpha", "stable.txt", Array("stable".utf8))
            try fixture.proxy.setRules([.hold(match: "GET /alpha/changing.bin", times: 1)])
            let running = try fixture.start(["backup", MirrorFixture.policy, "--json"])
            try fixture.proxy.waitFor("held", match: "GET /alpha/changing.bin", timeout: .seconds(120))
            try fixture.put("alpha", "changing.bin", new)
            try fixture.proxy.release()
            let result = try running.wait()
            #expect(result.status == 0, "\(result.stderr)")
            let id = try MirrorFixture.id(of: result)
            let statuses = try fixture.proxy.requests().filter { $0.path.hasPrefix("/alpha/changing.bin") && $0.outcome != "held" }.map(\.outcome)
            #expect(statuses.contains("412"), "\(statuses)")

            let restore = try fixture.restore([id, "--to", "s3://restored"])
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(try fixture.contents("restored")[key("changing.bin")]?.bytes == new)
            let verify = try fixture.run(["verify", MirrorFixture.policy, id, "--read-data"])
            #expect(verify.status == 0, "\(verify.stderr)")
        }
    }

    /// A run that fails half-way (the source refuses one object) commits nothing and leaves no
    /// staging object, reservation or lock behind; the next run, once the source is fixed,
    /// commits a complete snapshot.
    @Test(arguments: RepositoryKind.allCases)
    func aFailedRunLeavesNothingButBlobs(kind: RepositoryKind) async throws {
        try await offThePool {
            let fixture = try MirrorFixture(kind, buckets: ["alpha", "restored"], sources: "[alpha]", parallel: 2)
            defer { fixture.stop() }
            try fixture.put("alpha", "a-large.bin", content(9 << 20, seed: 11))
            try fixture.put("alpha", "b-small.txt", Array("small".utf8))
            try fixture.put("alpha", "z-refused.txt", Array("refused".utf8))
            try fixture.proxy.setRules([.status(403, code: "AccessDenied", match: "GET /alpha/z-refused.txt")])
            let failed = try fixture.run(["backup", MirrorFixture.policy])
            #expect(failed.status == 1, "\(failed.stderr)")
            #expect(failed.stderr.contains("z-refused.txt"), "\(failed.stderr)")
            let listed = try fixture.run(["list", MirrorFixture.policy, "--all", "--json"])
            let entries = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]]
            #expect(entries?.isEmpty == true, "\(listed.stdout)")
            #expect(try repositoryKeys(fixture).filter { !$0.contains("/blobs/") && $0 != "lifeboat.json" } == [])

            try fixture.proxy.setRules([])
            let state = try fixture.contents("alpha")
            let id = try fixture.backup()
            let restore = try fixture.restore([id, "--to", "s3://restored"])
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(try fixture.contents("restored") == state)
            #expect(try repositoryKeys(fixture).filter { $0.contains("/staging/") || $0.hasSuffix("reservation.json") || $0.hasPrefix("locks/") } == [])
        }
    }

    @Test(arguments: RepositoryKind.allCases)
    func pruneDeletesExpiredSnapshotsAndOnlyTheBlobsNoKeptSnapshotReferences(kind: RepositoryKind) async throws {
        try await offThePool {
            let fixture = try MirrorFixture(kind, buckets: ["alpha", "restored"], sources: "[alpha]", parallel: 2)
            defer { fixture.stop() }
            func blobNames() throws -> Set<String> {
                Set(try repositoryKeys(fixture).filter { $0.contains("/blobs/") }.map { String($0.split(separator: "/").last ?? "") })
            }
            func address(_ text: String) -> String { SHA256.hash(data: Array(text.utf8)).map { String(format: "%02x", $0) }.joined() }
            try fixture.put("alpha", "kept.txt", Array("in both snapshots".utf8))
            try fixture.put("alpha", "changed.txt", Array("first".utf8))
            try fixture.put("alpha", "deleted.txt", Array("only in the first".utf8))
            let first = try fixture.backup()
            try fixture.put("alpha", "changed.txt", Array("later".utf8))
            try fixture.delete("alpha", ["deleted.txt"])
            let state = try fixture.contents("alpha")
            let second = try fixture.backup()
            #expect(try blobNames() == Set(["in both snapshots", "first", "only in the first", "later"].map(address)))

            // Keep the newest snapshot only.
            let policyFile = fixture.directory.subpath("policies/\(MirrorFixture.policy).yaml")
            try (try String(contentsOfFile: policyFile, encoding: .utf8) + "\nretention: { keep_last: 1 }\n")
                .write(toFile: policyFile, atomically: true, encoding: .utf8)
            let dryRun = try fixture.run(["prune", MirrorFixture.policy, "--dry-run"])
            #expect(dryRun.status == 0, "\(dryRun.all)")
            #expect(try blobNames().count == 4, "a dry run deletes nothing")
            let pruned = try fixture.run(["prune", MirrorFixture.policy, "--json"])
            #expect(pruned.status == 0, "\(pruned.all)")
            #expect(pruned.stdout.contains("\"blobs\""), "\(pruned.stdout)")
            #expect(try blobNames() == Set(["in both snapshots", "later"].map(address)))

            let listed = try fixture.run(["list", MirrorFixture.policy])
            #expect(listed.stdout.contains(second) && !listed.stdout.contains(first), "\(listed.stdout)")
            let verify = try fixture.run(["verify", MirrorFixture.policy, second, "--read-data"])
            #expect(verify.status == 0, "\(verify.all)")
            let restore = try fixture.restore([second, "--to", "s3://restored"])
            #expect(restore.status == 0, "\(restore.all)")
            #expect(try fixture.contents("restored") == state)
            // A second prune finds nothing more to delete.
            let again = try fixture.run(["prune", MirrorFixture.policy])
            #expect(again.status == 0, "\(again.all)")
            #expect(try blobNames().count == 2)
        }
    }

    /// A prune started while a mirror run has placed a blob but not committed its snapshot
    /// waits for the run (the run's shared lock against prune's exclusive one), then keeps
    /// every blob of the new snapshot.
    @Test func aPruneBesideAMirrorRunLosesNothing() async throws {
        try await offThePool {
            let fixture = try MirrorFixture(.local, buckets: ["alpha", "restored"], sources: "[alpha]", parallel: 1)
            defer { fixture.stop() }
            try fixture.put("alpha", "old.txt", Array("from the first run".utf8))
            _ = try fixture.backup()
            let policyFile = fixture.directory.subpath("policies/\(MirrorFixture.policy).yaml")
            try (try String(contentsOfFile: policyFile, encoding: .utf8) + "\nretention: { keep_last: 1 }\n")
                .write(toFile: policyFile, atomically: true, encoding: .utf8)
            // The second run copies new-1 (its blob placed, unreferenced by any committed
            // snapshot), then is held on new-2.
            try fixture.put("alpha", "new-1.txt", Array("placed before the prune".utf8))
            try fixture.put("alpha", "new-2.txt", Array("held".utf8))
            try fixture.proxy.setRules([.hold(match: "GET /alpha/new-2.txt", times: 1)])
            let running = try fixture.start(["backup", MirrorFixture.policy, "--json"])
            try fixture.proxy.waitFor("held", match: "GET /alpha/new-2.txt", timeout: .seconds(120))
            let pruning = try fixture.start(["prune", MirrorFixture.policy, "--lock-wait", "2m"])
            Thread.sleep(forTimeInterval: 1)  // let the prune reach the lock (it must wait for the run)
            let state = try fixture.contents("alpha")
            try fixture.proxy.release()
            let backup = try running.wait()
            #expect(backup.status == 0, "\(backup.stderr)")
            let id = try MirrorFixture.id(of: backup)
            let pruned = try pruning.wait()
            #expect(pruned.status == 0, "\(pruned.all)")
            #expect(pruned.stderr.contains("waiting for the repository lock"), "the prune waited for the run: \(pruned.stderr)")

            let verify = try fixture.run(["verify", MirrorFixture.policy, id, "--read-data"])
            #expect(verify.status == 0, "\(verify.all)")
            let restore = try fixture.restore([id, "--to", "s3://restored"])
            #expect(restore.status == 0, "\(restore.all)")
            #expect(try fixture.contents("restored") == state)
        }
    }

    /// Every key of the fixture's repository.
    func repositoryKeys(_ fixture: MirrorFixture) throws -> [String] {
        switch fixture.kind {
        case .local:
            let root = fixture.directory.subpath("repository")
            return (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? [])
                .filter { !isDirectory(root + "/" + $0) }.sorted()
        case .s3:
            let client = try fixture.client(MirrorFixture.repositoryBucket)
            return try client.listObjects(prefix: "lifeboat/").map { String($0.key.dropFirst("lifeboat/".count)) }.sorted()
        }
    }

    /// Two mirror runs of one policy at once: both commit snapshots of their own, every blob
    /// either needs is there, and each restores the bucket.
    @Test(arguments: RepositoryKind.allCases)
    func twoMirrorRunsAtOnceBothCommitCompleteSnapshots(kind: RepositoryKind) async throws {
        try await offThePool {
            let fixture = try MirrorFixture(kind, buckets: ["alpha", "restored-1", "restored-2"], sources: "[alpha]")
            defer { fixture.stop() }
            for index in 0..<40 { try fixture.put("alpha", "object-\(index)", content(1000 + index, seed: UInt64(index))) }
            try fixture.put("alpha", "large.bin", content(9 << 20, seed: 99))
            let state = try fixture.contents("alpha")
            let runs = try (0..<2).map { _ in try fixture.start(["backup", MirrorFixture.policy, "--json"]) }.map { try $0.wait() }
            var ids: [String] = []
            for result in runs {
                #expect(result.status == 0, "\(result.stderr)")
                ids.append(try MirrorFixture.id(of: result))
            }
            #expect(Set(ids).count == 2)
            for (index, id) in ids.enumerated() {
                let verify = try fixture.run(["verify", MirrorFixture.policy, id, "--read-data"])
                #expect(verify.status == 0, "\(verify.stderr)")
                let restore = try fixture.restore([id, "--to", "s3://restored-\(index + 1)"])
                #expect(restore.status == 0, "\(restore.stderr)")
                #expect(try fixture.contents("restored-\(index + 1)") == state)
            }
            let list = try fixture.run(["list", MirrorFixture.policy, "--all", "--json"])
            let entries = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
            #expect(entries.count == 2 && entries.allSatisfy { $0["state"] as? String == "committed" }, "\(list.stdout)")
        }
    }
}
