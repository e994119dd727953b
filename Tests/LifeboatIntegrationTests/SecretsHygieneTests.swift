import Foundation
import Glibc
import LifeboatCore
import LifeboatHTTP
import LifeboatIO
import LifeboatS3
import Synchronization
import Testing
import TestSupport

/// Secrets never leave Lifeboat: every command at `LOG_LEVEL=debug` with known secrets — a
/// PostgreSQL password (conninfo `password=` and a `postgresql://u:PASSWORD@` URL), an S3
/// secret key and session token (moto accepts a session token only with an assumed role's
/// key, so the token goes to an unreachable repository and a bad configuration), a Redis `requirepass`, an encryption key, a wrong password —
/// and then every byte printed, every file written (configuration directory, state directory,
/// local repository, restore targets, exports) and every object in the S3 bucket is searched
/// for each secret raw, URL-encoded and base64. Meanwhile `/proc/*/cmdline` of every process
/// is sampled, so a secret on a child program's command line is caught too.
@Suite(.timeLimit(.minutes(10)))
struct SecretsHygiene {
    /// The secret in the forms it could leak in.
    static func forms(_ secret: String) -> [String] {
        // Percent-encoded as a URL carries it (RFC 3986's unreserved characters kept), and with
        // every non-alphanumeric character encoded.
        let unreserved = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        let encoded = secret.addingPercentEncoding(withAllowedCharacters: unreserved) ?? secret
        let allEncoded = secret.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? secret
        let base64 = Data(secret.utf8).base64EncodedString()
        return Array(Set([secret, encoded, allEncoded, base64]))
    }

    /// Polls `/proc/*/cmdline` on a thread of its own until `stop()`, recording any
    /// command line that holds one of `secrets`.
    final class CommandLineSampler: Sendable {
        let secrets: [String]
        let lifeboat: String
        let hits = Mutex<[String]>([])
        let samples = Mutex(0)
        let stopped = Mutex(false)
        let done = Wakeup()

        init(secrets: [String], lifeboat: String) {
            self.secrets = secrets
            self.lifeboat = lifeboat
            let thread = Thread { [self] in
                defer { done.wake() }
                while !stopped.withLock({ $0 }) {
                    sample()
                    usleep(2_000)
                }
            }
            thread.start()
        }

        func sample() {
            let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            for pid in pids where pid.allSatisfy(\.isNumber) {
                guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else { continue }
                let line = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
                // A `lifeboat` command line is the test's own (restore --to with a password is
                // the operator's choice); what is looked for is what Lifeboat starts.
                if line.hasPrefix(lifeboat) { continue }
                for secret in secrets where line.contains(secret) {
                    hits.withLock { $0.append("pid \(pid): \(line)") }
                }
            }
            samples.withLock { $0 += 1 }
        }

        func stop() -> [String] {
            stopped.withLock { $0 = true }
            done.wait()
            return hits.withLock { $0 }
        }
    }

    /// Every regular file under `root`, with its bytes.
    static func files(under root: String) -> [(path: String, bytes: [UInt8])] {
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        var result: [(String, [UInt8])] = []
        while let relative = walker.nextObject() as? String {
            let path = root + "/" + relative
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
            if let data = FileManager.default.contents(atPath: path) { result.append((path, Array(data))) }
        }
        return result
    }

    /// Files others can read or write, and directories others can enter, under `root`.
    static func looseModes(under root: String) -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        var loose: [String] = []
        var paths = [root]
        while let relative = walker.nextObject() as? String { paths.append(root + "/" + relative) }
        for path in paths {
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            let kind = info.st_mode & S_IFMT
            guard kind == S_IFREG || kind == S_IFDIR else { continue }
            if info.st_mode & 0o077 != 0 { loose.append("\(path) \(String(info.st_mode & 0o777, radix: 8))") }
        }
        return loose
    }

    static func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
        let n = Array(needle.utf8)
        guard !n.isEmpty, haystack.count >= n.count else { return false }
        let first = n[0]
        var index = 0
        while index <= haystack.count - n.count {
            if haystack[index] == first, haystack[index..<(index + n.count)].elementsEqual(n) { return true }
            index += 1
        }
        return false
    }

    @Test func everyCommandAtDebugKeepsEverySecretOutOfOutputFilesObjectsAndCommandLines() async throws {
        try await offThePool {
            let pgPassword = "Pg-S3cret/Quartz+42"
            let wrongPassword = "Wr0ng-Pg/Password"
            let redisPassword = "Redis-S3cret-Quokka"
            let sessionToken = "FQoGZXIvYXdzESessionToken/Kiwi+9="
            let pg = try PostgresServer.start(superuserPassword: pgPassword)
            defer { pg.stop() }
            let redis = try RedisServer.start(password: redisPassword)
            defer { redis.stop() }
            let s3 = try S3TestServer.start()
            defer { s3.stop() }
            let dir = try TemporaryDirectory("lifeboat-secrets")
            defer { dir.remove() }
            let vaultDir = try TemporaryDirectory("lifeboat-secrets-vault")
            defer { vaultDir.remove() }
            let keyText = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
            let keyFile = try dir.write("keys/vault.key", keyText + "\n")
            chmod(keyFile, 0o600)
            let secrets = [pgPassword, wrongPassword, redisPassword, sessionToken, s3.secretAccessKey, keyText]
            let sampler = CommandLineSampler(secrets: secrets.flatMap(Self.forms), lifeboat: try LifeboatCLI.executable)

            _ = try pg.psql("create database shop")
            _ = try pg.psql("create table items (id int primary key, name text); insert into items values (1, 'anchor'), (2, 'buoy')", database: "shop")
            try dir.write("lifeboat.yaml", """
                state_dir: state
                default_repository: offsite
                repositories:
                  offsite:
                    s3: { endpoint: "\(s3.endpoint)", region: \(s3.region), bucket: lifeboat-test, prefix: hygiene,
                          access_key_id: "${S3_KEY}", secret_access_key: "${S3_SECRET}" }
                  vault:
                    path: \(vaultDir.subpath("vault"))
                    encryption: { key_file: keys/vault.key }
                """)
            try dir.write("policies/pg.yaml", """
                policy: pg
                source: { postgres: { mode: logical, conninfo: "${PG_CONNINFO}", databases: [shop] } }
                schedule: { cron: "0 2 * * *" }
                retention: { keep_last: 5 }
                """)
            try dir.write("policies/pgurl.yaml", """
                policy: pgurl
                repository: vault
                source: { postgres: { mode: logical, conninfo: "${PG_URL}", databases: [shop] } }
                """)
            try dir.write("policies/cache.yaml", """
                policy: cache
                repository: vault
                source: { redis: { host: 127.0.0.1, port: \(redis.port), password: "${REDIS_PASSWORD}", mode: replication } }
                schedule: { cron: "30 2 * * *" }
                """)
            try dir.write("policies/wrongpw.yaml", """
                policy: wrongpw
                source: { postgres: { mode: logical, conninfo: "${PG_WRONG}", databases: [shop] } }
                """)
            try dir.write("runbooks/small.yaml", """
                runbook: small
                variables: { DB: "${PG_CONNINFO}" }
                steps:
                  - id: db-up
                    health:
                      - postgres: { conninfo: "${DB}", query: "select count(*) from pg_database where datname = 'shop'", expect: "1" }
                      - redis: { host: 127.0.0.1, port: \(redis.port), password: "${REDIS_PASSWORD}" }
                    within: 30s
                  - id: done
                    run: [true]
                """)
            let encodedPassword = pgPassword.addingPercentEncoding(withAllowedCharacters: CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? pgPassword
            let environment = [
                "LOG_LEVEL": "debug",
                "S3_KEY": s3.accessKeyID, "S3_SECRET": s3.secretAccessKey, "S3_TOKEN": sessionToken,
                "PG_CONNINFO": pg.conninfo(),
                "PG_URL": "postgresql://postgres:\(encodedPassword)@127.0.0.1:\(pg.port)/postgres",
                "PG_WRONG": pg.conninfo(password: wrongPassword),
                "REDIS_PASSWORD": redisPassword,
            ]
            var outputs: [(command: String, output: LifeboatCLI.Output)] = []
            @discardableResult
            func run(_ arguments: [String], config: String? = dir.path, expect status: Int32? = 0) throws -> LifeboatCLI.Output {
                let output = try LifeboatCLI.run(arguments, config: config, environment: environment)
                outputs.append((arguments.joined(separator: " "), output))
                if let status { #expect(output.status == status, "lifeboat \(arguments.joined(separator: " ")): \(output.all)") }
                return output
            }

            try run(["check"], expect: nil)  // `nowhere` is unreachable: 1, and says so
            try run(["check", "--json"], expect: nil)
            try run(["backup", "pg"])
            try run(["backup", "pgurl"])
            try run(["backup", "cache"])
            try run(["backup", "pg", "--json"])
            try run(["list", "--json"])
            try run(["list", "--all"])
            try run(["verify", "pg", "latest"])
            try run(["verify", "cache", "latest", "--json"])
            try run(["verify", "pgurl", "latest"])
            _ = try pg.psql("drop database shop")
            try run(["restore", "pg", "latest", "--to", pg.conninfo(), "--no-globals"])
            _ = try pg.psql("drop database shop")
            try run(["restore", "pgurl", "latest", "--to", environment["PG_URL"]!, "--no-globals", "--json"])
            try run(["restore", "cache", "latest", "--to", dir.subpath("restored-redis")])
            try run(["prune", "--dry-run"])
            try run(["prune", "pg"])
            try run(["status", "--json"])
            try run(["status"])
            try run(["recover", "small", "--plan"])
            try run(["recover", "small", "--yes"])
            try run(["recover", "small", "--yes", "--json"])
            try run(["export", "kubernetes", "--output", dir.subpath("export-k8s")])
            try run(["export", "systemd", "--output", dir.subpath("export-systemd")])
            try run(["key", "list", "--name", "vault"])
            try run(["key", "list", "--name", "vault", "--json"])
            try run(["unlock"])
            try run(["list", "--repository", vaultDir.subpath("vault"), "--key-file", keyFile])
            // Error paths: a wrong password, an unreachable S3, WAL commands a logical policy
            // refuses, a bad argument, a bad configuration holding a secret inline.
            try run(["backup", "wrongpw"], expect: 1)
            try run(["backup", "wrongpw", "--json"], expect: 1)
            // An unreachable S3 repository (with a session token), in a configuration of its own.
            let unreachable = try TemporaryDirectory("lifeboat-secrets-unreachable")
            defer { unreachable.remove() }
            try unreachable.write("lifeboat.yaml", """
                default_repository: nowhere
                repositories:
                  nowhere:
                    s3: { endpoint: "http://127.0.0.1:\(try freeLoopbackPort())", bucket: gone,
                          access_key_id: "${S3_KEY}", secret_access_key: "${S3_SECRET}", session_token: "${S3_TOKEN}" }
                """)
            try unreachable.write("src/a.txt", "alpha\n")
            try unreachable.write("policies/lost.yaml", "policy: lost\nsource: { files: { path: src } }\n")
            try run(["backup", "lost"], config: unreachable.path, expect: 1)
            try run(["list", "lost", "--json"], config: unreachable.path, expect: 1)
            try run(["check"], config: unreachable.path, expect: 1)
            try run(["wal-push", "pg", dir.subpath("pg_wal/000000010000000000000001")], expect: nil)
            try run(["wal-fetch", "pg", "000000010000000000000001", dir.subpath("wal-out")], expect: nil)
            try run(["restore", "pg", "latest", "--to", "host=127.0.0.1 port=\(pg.port) user=postgres password='\(wrongPassword)' dbname=postgres"], expect: 1)
            try run(["restore", "pg", "latest", "--to", "postgresql://postgres:\(wrongPassword.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)@127.0.0.1:\(pg.port)/postgres"], expect: 1)
            let bad = try TemporaryDirectory("lifeboat-secrets-bad")
            defer { bad.remove() }
            try bad.write("lifeboat.yaml", """
                repositories:
                  offsite:
                    s3: { endpint: "\(s3.endpoint)", bucket: b, access_key_id: AKIAEXAMPLE, secret_access_key: "\(s3.secretAccessKey)",
                          session_token: "\(sessionToken)" }
                """)
            try run(["check"], config: bad.path, expect: 2)
            try run(["list", "--json"], config: bad.path, expect: nil)
            try run(["--help"], config: nil, expect: nil)
            // The daemon: up until its health endpoint answers, then SIGTERM (exit 0).
            let port = try freeLoopbackPort()
            let daemon = try LifeboatCLI.start(["schedule", "--listen", "127.0.0.1:\(port)"], config: dir.path, environment: environment)
            let deadline = Date(timeIntervalSinceNow: 30)
            while Date() < deadline, (try? RawHTTP.request(port: port, "/healthz", timeout: 1))?.status != 200 { usleep(50_000) }
            kill(daemon.pid, SIGTERM)
            let scheduled = try daemon.wait()
            outputs.append(("schedule", scheduled))
            #expect(scheduled.status == 0, "\(scheduled.all)")
            let leakedOnCommandLines = sampler.stop()
            #expect(sampler.samples.withLock { $0 } > 10)

            // The search itself finds a secret where one is.
            #expect(Self.contains(try dir.read("keys/vault.key"), keyText))
            #expect(Self.forms(pgPassword).contains("Pg-S3cret%2FQuartz%2B42"))
            // Everything printed.
            for (command, output) in outputs {
                for secret in secrets {
                    for form in Self.forms(secret) where output.all.contains(form) {
                        Issue.record("lifeboat \(command) printed a secret (\(form)):\n\(output.all)")
                    }
                }
            }
            // Every file written, and every object in the bucket (the S3 repository is not encrypted).
            var written = (Self.files(under: dir.path) + Self.files(under: vaultDir.path)).filter { $0.path != keyFile }
            #expect(written.contains { $0.path.hasPrefix(vaultDir.subpath("vault/cache")) })
            let client = try S3Client(
                configuration: S3Client.Configuration(endpoint: s3.endpoint, region: s3.region, bucket: "lifeboat-test", pathStyle: true,
                                                      credentials: AWSCredentials(accessKeyID: s3.accessKeyID, secretAccessKey: s3.secretAccessKey)),
                http: try HTTPClient(), logger: quietLogger)
            let store = S3Store(client: client, prefix: "", logger: quietLogger)
            let objects = try store.listAll(prefix: "hygiene/")
            #expect(objects.count > 5)
            for object in objects { written.append(("s3://lifeboat-test/\(object.key)", try store.readAll(key: object.key))) }
            #expect(written.contains { $0.path.hasPrefix(dir.subpath("export-k8s")) })
            #expect(written.contains { $0.path.hasPrefix(dir.subpath("state")) })
            for (path, bytes) in written {
                for secret in secrets {
                    for form in Self.forms(secret) where Self.contains(bytes, form) {
                        Issue.record("\(path) holds a secret (\(form))")
                    }
                }
            }
            #expect(leakedOnCommandLines.isEmpty, "\(leakedOnCommandLines)")
            // What Lifeboat keeps locally is its owner's alone.
            #expect(Self.looseModes(under: dir.subpath("state")).isEmpty, "\(Self.looseModes(under: dir.subpath("state")))")
            #expect(Self.looseModes(under: vaultDir.subpath("vault")).isEmpty, "\(Self.looseModes(under: vaultDir.subpath("vault")))")
            #expect(Self.looseModes(under: dir.subpath("restored-redis")).isEmpty)
        }
    }
}
