import Crypto
import Foundation
import LifeboatCore
import Testing
import TestSupport

/// A key file of 32 bytes (from `seed`) in base64, mode 0600.
func writeKeyFile(_ path: String, seed: UInt64) throws {
    let text = Data(pseudoRandomBytes(32, seed: seed | 1)).base64EncodedString() + "\n"
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
}

/// A configuration directory with a files policy `etc` backing up `src` into an encrypted
/// repository: a local directory, or a prefix of its own on the shared moto server.
struct EncryptedFilesFixture {
    let dir: TemporaryDirectory
    let kind: RepositoryKind
    let environment: [String: String]
    /// Where the repository's objects are, as `lifeboat` locates them (local only).
    var repositoryPath: String { dir.subpath("repository") }
    let prefix = "encrypted-\(UUID().uuidString)"

    init(_ kind: RepositoryKind) throws {
        self.kind = kind
        dir = try TemporaryDirectory("lifeboat-encryption")
        try writeKeyFile(dir.subpath("old.key"), seed: 11)
        try writeKeyFile(dir.subpath("new.key"), seed: 12)
        switch kind {
        case .local:
            environment = [:]
        case .s3:
            environment = s3Environment(try SharedS3Server.get())
        }
        try configure(key: "old.key")
        // Random (incompressible) and compressible files, one over several chunks.
        try dir.write("src/random.bin", bytes: pseudoRandomBytes(3 << 20, seed: 5))
        try dir.write("src/text/notes.txt", String(repeating: "the quick brown fox\n", count: 20_000))
        try dir.write("src/empty", "")
        try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n")
    }

    /// Points the repository at `key` (a key file in the directory).
    func configure(key: String) throws {
        switch kind {
        case .local:
            try dir.write("lifeboat.yaml", "repositories:\n  vault: { path: repository, encryption: { key_file: \(key) } }\ndefault_repository: vault\n")
        case .s3:
            let server = try SharedS3Server.get()
            try dir.write("lifeboat.yaml", """
                repositories:
                  vault:
                    s3: { endpoint: "\(server.endpoint)", region: \(server.region), bucket: lifeboat-test, prefix: \(prefix),
                          access_key_id: "${TEST_S3_KEY}", secret_access_key: "${TEST_S3_SECRET}" }
                    encryption: { key_file: \(key) }
                default_repository: vault
                """)
        }
    }

    func run(_ arguments: [String]) throws -> LifeboatCLI.Output {
        try LifeboatCLI.run(arguments, config: dir.path, environment: environment)
    }

    func backup() throws -> String {
        let result = try run(["backup", "etc", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        return try #require((try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])?["id"] as? String)
    }

    func file(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: dir.subpath(path))) }

    /// Restores `latest` to `target` and checks every file came back byte for byte.
    func restoreMatches(_ target: String) throws -> LifeboatCLI.Output {
        let result = try run(["restore", "etc", "latest", "--to", dir.subpath(target)])
        if result.status == 0 {
            for path in ["random.bin", "text/notes.txt", "empty"] {
                #expect(try file("\(target)/\(path)") == file("src/\(path)"), "\(path)")
            }
        }
        return result
    }
}

@Suite(.timeLimit(.minutes(10)))
struct EncryptedRepositories {
    @Test(arguments: RepositoryKind.allCases)
    func aFilesBackupIsListedVerifiedAndRestoredByteForByte(kind: RepositoryKind) async throws {
        try await offThePool {
            let fixture = try EncryptedFilesFixture(kind)
            defer { fixture.dir.remove() }
            let id = try fixture.backup()
            let list = try fixture.run(["list", "etc"])
            #expect(list.status == 0, "\(list.stderr)")
            #expect(list.stdout.contains(id))
            let verify = try fixture.run(["verify", "etc", "latest"])
            #expect(verify.status == 0, "\(verify.stderr)")
            let restore = try fixture.restoreMatches("restored")
            #expect(restore.status == 0, "\(restore.stderr)")
            let keys = try fixture.run(["key", "list"])
            #expect(keys.status == 0, "\(keys.stderr)")
            #expect(keys.stdout.contains("1 key"), "\(keys.stdout)")
            if kind == .local {
                // Nothing of the data or the manifest is readable in the repository.
                let manifest = try fixture.file("repository/etc/backups/\(id)/manifest.json")
                #expect(manifest.starts(with: Array("LBCRYPT".utf8)))
                #expect(String(decoding: manifest, as: UTF8.self).contains("random.bin") == false)
                #expect(FileManager.default.fileExists(atPath: fixture.dir.subpath("repository/lifeboat.json")))
            }
        }
    }

    @Test func verifyAndRestoreNameATamperedObject() async throws {
        try await offThePool {
            let fixture = try EncryptedFilesFixture(.local)
            defer { fixture.dir.remove() }
            let id = try fixture.backup()
            let data = try #require(try FileManager.default.contentsOfDirectory(atPath: fixture.dir.subpath("repository/etc/backups/\(id)/data")).first)
            let key = "etc/backups/\(id)/data/\(data)"
            try flipByte(fixture.dir.subpath("repository/\(key)"), at: 0.5)
            let verify = try fixture.run(["verify", "etc", "latest"])
            #expect(verify.status == 1)
            #expect(verify.stderr.contains("object '\(key)'"), "\(verify.stderr)")
            #expect(verify.stderr.contains("failed authentication: the object was modified or damaged"), "\(verify.stderr)")
            let restore = try fixture.run(["restore", "etc", "latest", "--to", fixture.dir.subpath("out")])
            #expect(restore.status == 1)
            #expect(restore.stderr.contains("object '\(key)'"), "\(restore.stderr)")
        }
    }

    @Test func aWrongKeyExitsOneAndSaysWrongKey() async throws {
        try await offThePool {
            let fixture = try EncryptedFilesFixture(.local)
            defer { fixture.dir.remove() }
            _ = try fixture.backup()
            try fixture.configure(key: "new.key")
            for command in [["list", "etc"], ["verify", "etc", "latest"], ["restore", "etc", "latest", "--to", fixture.dir.subpath("out")]] {
                let result = try fixture.run(command)
                #expect(result.status == 1, "\(command)")
                #expect(result.stderr.contains("the key in key file \(fixture.dir.subpath("new.key")) does not open repository 'vault'"), "\(result.stderr)")
                #expect(result.stderr.contains("wrong key"))
            }
        }
    }

    @Test(arguments: RepositoryKind.allCases)
    func aNewKeyReplacesTheOldWithoutRewritingData(kind: RepositoryKind) async throws {
        try await offThePool {
            let fixture = try EncryptedFilesFixture(kind)
            defer { fixture.dir.remove() }
            _ = try fixture.backup()
            let add = try fixture.run(["key", "add", "--new-key-file", fixture.dir.subpath("new.key")])
            #expect(add.status == 0, "\(add.stderr)")
            let listed = try fixture.run(["key", "list", "--json"])
            let report = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [String: Any])
            let keys = try #require(report["keys"] as? [[String: Any]])
            #expect(keys.count == 2)
            let old = try #require(keys.first { $0["current"] as? Bool == true }?["id"] as? String)
            try fixture.configure(key: "new.key")
            let remove = try fixture.run(["key", "remove", old])
            #expect(remove.status == 0, "\(remove.stderr)")
            let restore = try fixture.restoreMatches("with-new-key")
            #expect(restore.status == 0, "\(restore.stderr)")
            try fixture.configure(key: "old.key")
            let stale = try fixture.run(["restore", "etc", "latest", "--to", fixture.dir.subpath("with-old-key")])
            #expect(stale.status == 1)
            #expect(stale.stderr.contains("wrong key"), "\(stale.stderr)")
        }
    }

    @Test func encryptedAndUnencryptedRepositoriesAreNeverMixedUp() async throws {
        try await offThePool {
            let fixture = try EncryptedFilesFixture(.local)
            defer { fixture.dir.remove() }
            _ = try fixture.backup()
            // Encrypted, opened without a key.
            try fixture.dir.write("lifeboat.yaml", "repositories:\n  vault: { path: repository }\ndefault_repository: vault\n")
            let plain = try fixture.run(["list", "etc"])
            #expect(plain.status == 2)
            #expect(plain.stderr.contains("repository 'vault' (\(fixture.repositoryPath)) is encrypted, and lifeboat.yaml gives no key for it"), "\(plain.stderr)")
            // Unencrypted, opened with a key.
            try fixture.dir.write("lifeboat.yaml", "repositories:\n  plain: { path: plain }\ndefault_repository: plain\n")
            #expect(try fixture.run(["backup", "etc"]).status == 0)
            try fixture.dir.write("lifeboat.yaml", "repositories:\n  plain: { path: plain, encryption: { key_file: old.key } }\ndefault_repository: plain\n")
            let keyed = try fixture.run(["backup", "etc"])
            #expect(keyed.status == 2)
            #expect(keyed.stderr.contains("holds unencrypted backups; encryption cannot be turned on for it"), "\(keyed.stderr)")
        }
    }

    @Test func keysAreNeverInlineAndKeyFilesArePrivate() async throws {
        try await offThePool {
            let fixture = try EncryptedFilesFixture(.local)
            defer { fixture.dir.remove() }
            try fixture.dir.write("lifeboat.yaml", "repositories:\n  vault:\n    path: repository\n    encryption: { key: c2VjcmV0 }\ndefault_repository: vault\n")
            let inline = try fixture.run(["check"])
            #expect(inline.status == 2)
            #expect(inline.stderr.contains("lifeboat.yaml:4:"), "\(inline.stderr)")
            #expect(inline.stderr.contains("an encryption key is never written in the configuration"), "\(inline.stderr)")
            try fixture.configure(key: "old.key")
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: fixture.dir.subpath("old.key"))
            let open = try fixture.run(["backup", "etc"])
            #expect(open.status == 2)
            #expect(open.stderr.contains("can be read by others (mode 644)"), "\(open.stderr)")
            try fixture.configure(key: "missing.key")
            let missing = try fixture.run(["backup", "etc"])
            #expect(missing.status == 2)
            #expect(missing.stderr.contains("missing.key of repository 'vault' does not exist"), "\(missing.stderr)")
        }
    }
}

@Suite(.timeLimit(.minutes(10)))
struct EncryptedMirrors {
    /// An S3 mirror into an encrypted repository: blobs are addressed by HMAC (not by the
    /// SHA-256 anyone can compute), encrypted, and come back byte for byte.
    @Test(arguments: RepositoryKind.allCases)
    func aMirrorRoundTripsThroughAnEncryptedRepository(kind: RepositoryKind) async throws {
        try await offThePool { try mirrorRoundTrip(kind) }
    }

    func mirrorRoundTrip(_ kind: RepositoryKind) throws {
        let fixture = try MirrorFixture(kind, buckets: ["alpha", "restored"], sources: "[alpha]", encrypted: true)
        defer { fixture.stop() }
        let big = content(9 << 20, seed: 1)  // staged (> 8 MiB): placed by a copy that re-encrypts
        try fixture.put("alpha", "data/big.bin", big, metadata: ["kind": "large"])
        try fixture.put("alpha", "small.txt", Array("known content".utf8), type: "text/plain")
        try fixture.put("alpha", "empty", [], type: nil)
        let before = try fixture.contents("alpha")
        let id = try fixture.backup()
        #expect(try fixture.backup() != id)  // an unchanged second run compares with the first

        let list = try fixture.run(["list", MirrorFixture.policy])
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains("s3://alpha/: 3 objects"), "\(list.stdout)")
        let verify = try fixture.run(["verify", MirrorFixture.policy, id, "--read-data"])
        #expect(verify.status == 0, "\(verify.stderr)")
        let restore = try fixture.restore([id, "--bucket", "alpha", "--to", "s3://restored"])
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(try fixture.contents("restored") == before)

        if kind == .local {
            let blobs = fixture.directory.subpath("repository/\(MirrorFixture.policy)/blobs")
            let names = Set(try FileManager.default.subpathsOfDirectory(atPath: blobs).map { ($0 as NSString).lastPathComponent })
            #expect(!names.contains(sha256Hex(big)))
            #expect(!names.contains(sha256Hex(Array("known content".utf8))))
            #expect(names.count >= 3)
        }
    }

    /// The repository's blob keys (relative to the repository).
    func blobKeys(_ fixture: MirrorFixture) throws -> [String] {
        switch fixture.kind {
        case .local:
            let root = fixture.directory.subpath("repository")
            return (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []).filter { $0.contains("/blobs/") && $0.split(separator: "/").count == 4 }.sorted()
        case .s3:
            return try fixture.client(MirrorFixture.repositoryBucket).listObjects(prefix: "lifeboat/\(MirrorFixture.policy)/blobs/")
                .map { String($0.key.dropFirst("lifeboat/".count)) }.sorted()
        }
    }

    /// Prune reads keyed addresses back from blob keys: it deletes only the blobs no kept
    /// snapshot references, and what is kept still verifies and restores.
    @Test(arguments: RepositoryKind.allCases)
    func pruneKeepsExactlyTheKeyedBlobsOfKeptSnapshots(kind: RepositoryKind) async throws {
        try await offThePool {
            let fixture = try MirrorFixture(kind, buckets: ["alpha", "restored"], sources: "[alpha]", parallel: 2, encrypted: true)
            defer { fixture.stop() }
            try fixture.put("alpha", "kept.txt", Array("in both snapshots".utf8))
            try fixture.put("alpha", "changed.txt", Array("first".utf8))
            _ = try fixture.backup()
            try fixture.put("alpha", "changed.txt", Array("later".utf8))
            let state = try fixture.contents("alpha")
            let second = try fixture.backup()
            #expect(try blobKeys(fixture).count == 3)
            let policyFile = fixture.directory.subpath("policies/\(MirrorFixture.policy).yaml")
            try (try String(contentsOfFile: policyFile, encoding: .utf8) + "\nretention: { keep_last: 1 }\n")
                .write(toFile: policyFile, atomically: true, encoding: .utf8)
            let pruned = try fixture.run(["prune", MirrorFixture.policy])
            #expect(pruned.status == 0, "\(pruned.all)")
            #expect(try blobKeys(fixture).count == 2)
            let verify = try fixture.run(["verify", MirrorFixture.policy, second, "--read-data"])
            #expect(verify.status == 0, "\(verify.all)")
            let restore = try fixture.restore([second, "--to", "s3://restored"])
            #expect(restore.status == 0, "\(restore.all)")
            #expect(try fixture.contents("restored") == state)
        }
    }

    @Test func verifyReadDataNamesATamperedBlob() async throws {
        try await offThePool {
            let fixture = try MirrorFixture(.local, buckets: ["alpha"], sources: "[alpha]", parallel: 2, encrypted: true)
            defer { fixture.stop() }
            try fixture.put("alpha", "doc.txt", Array(String(repeating: "text ", count: 40_000).utf8))
            let id = try fixture.backup()
            let blob = try #require(try blobKeys(fixture).first)
            try flipByte(fixture.directory.subpath("repository/\(blob)"), at: 0.5)
            let verify = try fixture.run(["verify", MirrorFixture.policy, id, "--read-data"])
            #expect(verify.status == 1)
            #expect(verify.all.contains("object '\(blob)'"), "\(verify.all)")
            #expect(verify.all.contains("failed authentication"), "\(verify.all)")
        }
    }
}
