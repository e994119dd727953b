import Foundation
import LifeboatCore
import Testing
import TestSupport

/// Where the concurrency and crash tests keep their backups.
enum RepositoryKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    /// A directory beside the configuration.
    case local
    /// The shared moto server, under a prefix of the test's own.
    case s3

    var testDescription: String { rawValue }
}

/// A configuration directory with one `files` policy, `etc`, whose source holds one file of
/// `bigFileBytes` random bytes (random: zstd cannot shrink it, so the stored artifact is as
/// large) and a few small ones; its repository is local or on S3. Runs the real `lifeboat`.
final class ConcurrencyFixture: Sendable {
    static let policy = "etc"

    let kind: RepositoryKind
    let directory: TemporaryDirectory
    let environment: [String: String]
    /// On S3: the server and the prefix of this fixture's repository.
    let s3: (server: S3TestServer, prefix: String)?

    /// `policyExtra`: more of the policy's file (`retention: …`).
    init(_ kind: RepositoryKind, bigFileBytes: Int, policyExtra: String = "") throws {
        self.kind = kind
        directory = try TemporaryDirectory("lifeboat-concurrency")
        switch kind {
        case .local:
            s3 = nil
            environment = [:]
            try directory.write("lifeboat.yaml", "repositories:\n  local: { path: repository }\ndefault_repository: local\n")
        case .s3:
            let server = try SharedS3Server.get()
            let prefix = "concurrency-\(UUID().uuidString.lowercased())"
            s3 = (server, prefix)
            environment = s3Environment(server)
            try directory.write("lifeboat.yaml", """
                repositories:
                  offsite:
                    s3: { endpoint: "\(server.endpoint)", region: \(server.region), bucket: lifeboat-test, prefix: \(prefix),
                          access_key_id: "${TEST_S3_KEY}", secret_access_key: "${TEST_S3_SECRET}" }
                default_repository: offsite
                """)
        }
        try directory.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n" + policyExtra)
        for name in ["a.conf", "b.conf", "c/d.conf"] {
            try directory.write("src/\(name)", String(repeating: "\(name) = value\n", count: 100))
        }
        let random = try #require(FileHandle(forReadingAtPath: "/dev/urandom")).readData(ofLength: bigFileBytes)
        try random.write(to: URL(fileURLWithPath: directory.subpath("src/big.bin")))
    }

    func remove() { directory.remove() }

    /// Runs `lifeboat ARGS` on this configuration to its end.
    func run(_ arguments: [String], environment extra: [String: String] = [:]) throws -> LifeboatCLI.Output {
        try start(arguments, environment: extra).wait()
    }

    /// Starts `lifeboat ARGS` on this configuration and returns at once.
    func start(_ arguments: [String], environment extra: [String: String] = [:]) throws -> LifeboatCLI.Running {
        try LifeboatCLI.start(arguments, config: directory.path, environment: environment.merging(extra) { _, new in new })
    }

    /// `lifeboat list etc --json` (with `--all`: also what is not committed), as objects.
    func list(all: Bool) throws -> [[String: Any]] {
        let result = try run(["list", Self.policy, "--json"] + (all ? ["--all"] : []))
        #expect(result.status == 0, "\(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]], "\(result.stdout)")
    }

    /// `lifeboat unlock --json`: every lock the repository held, each as `unlock` reported it.
    func unlock() throws -> [[String: Any]] {
        let result = try run(["unlock", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let reports = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]], "\(result.stdout)")
        #expect(reports.count == 1, "\(result.stdout)")
        return reports.flatMap { $0["locks"] as? [[String: Any]] ?? [] }
    }

    /// What a run must never leave behind once it has ended, whether it committed or failed:
    /// reservations, locks, writers' temporary files (local) and unfinished multipart uploads
    /// (S3). Each is named by its place in the repository.
    /// The local repository's directory; nil for an S3 repository.
    var localRepository: String? { kind == .local ? directory.subpath("repository") : nil }

    func leftovers() throws -> [String] {
        func isLeftover(_ key: String) -> Bool {
            key.hasSuffix("/reservation.json") || key.hasPrefix("locks/") || key.contains(".tmp-")
        }
        switch kind {
        case .local:
            let root = directory.subpath("repository")
            let enumerator = try #require(FileManager.default.enumerator(atPath: root))
            var found: [String] = []
            while let path = enumerator.nextObject() as? String {
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: root + "/" + path, isDirectory: &isDirectory), !isDirectory.boolValue,
                   isLeftover(path) {
                    found.append(path)
                }
            }
            return found.sorted()
        case .s3:
            let (server, prefix) = try #require(s3)
            let client = try directClient(server)
            let keys = try client.listObjects(prefix: prefix + "/").map { String($0.key.dropFirst(prefix.count + 1)) }
            let uploads = try client.listMultipartUploads(prefix: prefix + "/").map { "multipart upload of \($0.key)" }
            return keys.filter(isLeftover).sorted() + uploads
        }
    }

    /// The id a successful `lifeboat backup` printed: "backup <id> of etc committed: …".
    static func committedID(_ output: LifeboatCLI.Output) -> String? {
        let words = output.stdout.split(separator: " ")
        guard words.count > 4, words[0] == "backup", words[2] == "of", words[4].hasPrefix("committed") else { return nil }
        return String(words[1])
    }
}

/// The time part of a backup id: `20261121T020000Z` of `20261121T020000Z-k3f9q2`.
func timePrefix(_ id: String) -> Substring { id.prefix { $0 != "-" } }
