import Foundation
import Glibc
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import Testing
import TestSupport

/// What a user who does the wrong thing, or meets a half-broken installation, gets: the
/// defects found by trying Lifeboat as a hostile user would, each as a test.
@Suite(.timeLimit(.minutes(10)))
struct HostileUser {
    /// A configuration with a good `files` policy and one that needs a variable that is not set.
    func configWithABrokenNeighbour() throws -> TemporaryDirectory {
        let dir = try TemporaryDirectory()
        try dir.write("src/app.conf", "listen = 8080\n")
        try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n")
        try dir.write("policies/hub.yaml", "policy: hub\nsource:\n  postgres: { mode: logical, conninfo: \"${HUB_PG_CONNINFO}\" }\n")
        try dir.write("runbooks/dr.yaml", "runbook: dr\nsteps:\n  - restore: nowhere\n    target: { path: /tmp/x }\n")
        return dir
    }

    @Test func anUnsetVariableInAnotherPolicyDoesNotStopListVerifyOrRestore() async throws {
        try await offThePool {
            let dir = try configWithABrokenNeighbour()
            defer { dir.remove() }
            let backup = try LifeboatCLI.run(["backup", "etc"], config: dir.path)
            #expect(backup.status == 0, "\(backup.stderr)")
            #expect(backup.stderr.contains("environment variable 'HUB_PG_CONNINFO' used in 'source.postgres.conninfo' is not set"))
            #expect(backup.stderr.contains(#""level":"warning""#))

            let list = try LifeboatCLI.run(["list", "--json"], config: dir.path)
            #expect(list.status == 0, "\(list.stderr)")
            #expect(list.stdout.contains(#""policy" : "etc""#))
            #expect(list.stderr.contains("policy 'hub' is not listed"))
            #expect(try LifeboatCLI.run(["verify", "etc"], config: dir.path).status == 0)
            let restore = try LifeboatCLI.run(["restore", "etc", "--to", dir.subpath("out")], config: dir.path)
            #expect(restore.status == 0, "\(restore.stderr)")

            // The broken policy itself is refused with its own error, as bad input.
            let broken = try LifeboatCLI.run(["backup", "hub"], config: dir.path)
            #expect(broken.status == 2)
            #expect(broken.stderr.contains("policies/hub.yaml:3:40: environment variable 'HUB_PG_CONNINFO'"))
            // And `check` reports every problem as an error.
            let check = try LifeboatCLI.run(["check", "--offline"], config: dir.path)
            #expect(check.status == 2)
            #expect(check.stderr.contains("HUB_PG_CONNINFO"))
            #expect(check.stderr.contains("runbooks/dr.yaml:3:14: runbook step restores unknown policy 'nowhere'"))
            #expect(check.stderr.contains("2 errors found"))
        }
    }

    @Test func anUnreadablePolicyFileBlocksOnlyItself() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try dir.write("src/app.conf", "listen = 8080\n")
            try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n")
            try makeDirectories(dir.subpath("policies/broken.yaml"))  // a directory where a file was expected
            let backup = try LifeboatCLI.run(["backup", "etc"], config: dir.path)
            #expect(backup.status == 0, "\(backup.stderr)")
            #expect(backup.stderr.contains("policies/broken.yaml: cannot read the file"))
            let check = try LifeboatCLI.run(["check", "--offline"], config: dir.path)
            #expect(check.status == 2)
            #expect(check.stderr.contains("error: policies/broken.yaml: cannot read the file: unable to read file"))
        }
    }

    @Test func twoRestoresIntoOneDirectoryAtOnceNeverMixTheirFiles() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            for index in 0..<40 { try dir.write("src/file\(index).bin", String(decoding: pseudoRandomBytes(256 << 10, seed: UInt64(index) + 1).map { $0 % 26 + 97 }, as: UTF8.self)) }
            try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n")
            #expect(try LifeboatCLI.run(["backup", "etc"], config: dir.path).status == 0)
            let target = dir.subpath("restored")
            let results = together(2) { _ in try LifeboatCLI.run(["restore", "etc", "--to", target], config: dir.path) }
            let outputs = try results.map { try $0.get() }
            // One restores; the other is refused before writing anything (the directory is held,
            // or already not empty): bad input, exit 2.
            #expect(outputs.map(\.status).sorted() == [0, 2], "\(outputs.map(\.stderr))")
            let refused = try #require(outputs.first { $0.status == 2 })
            #expect(refused.stderr.contains("another restore is writing into '\(target)'") || refused.stderr.contains("restore target '\(target)' is not empty"),
                    "\(refused.stderr)")
            for index in 0..<40 {
                #expect(FileManager.default.contentsEqual(atPath: dir.subpath("src/file\(index).bin"), andPath: "\(target)/file\(index).bin"))
            }
        }
    }

    @Test func oneDamagedManifestIsListedAsDamagedBesideTheGoodOnes() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try dir.write("src/app.conf", "listen = 8080\n")
            try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n")
            var ids: [String] = []
            for _ in 0..<3 {
                let backup = try LifeboatCLI.run(["backup", "etc", "--json"], config: dir.path)
                #expect(backup.status == 0)
                ids.append(try #require((try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any])?["id"] as? String))
            }
            // The newest manifest is cut short, as a disk error would leave it.
            let damaged = dir.subpath(".lifeboat/repository/etc/backups/\(ids[2])/manifest.json")
            let text = try String(contentsOfFile: damaged, encoding: .utf8)
            try String(text.prefix(text.count / 2)).write(toFile: damaged, atomically: false, encoding: .utf8)

            let list = try LifeboatCLI.run(["list", "etc", "--json"], config: dir.path)
            #expect(list.status == 1)  // something is wrong, and the list still shows everything
            let entries = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
            #expect(entries.map { $0["id"] as? String } == ids)
            #expect(entries.map { $0["state"] as? String } == ["committed", "committed", "damaged"])
            let detail = try #require(entries[2]["detail"] as? String)
            #expect(detail.contains("manifest \(damaged) is damaged and cannot be read"))
            let table = try LifeboatCLI.run(["list", "etc"], config: dir.path)
            #expect(table.stdout.contains("DAMAGED"))
            #expect(!table.stderr.contains("DecodingError"))

            // `latest` is the newest backup that can be restored, and the skipped one is named.
            let verify = try LifeboatCLI.run(["verify", "etc", "latest", "--json"], config: dir.path)
            #expect(verify.status == 0)
            #expect(verify.stdout.contains(ids[1]))
            #expect(verify.stderr.contains("skipping backup \(ids[2]) for 'latest'"))
            let direct = try LifeboatCLI.run(["verify", "etc", ids[2]], config: dir.path)
            #expect(direct.status == 1)
            #expect(direct.stderr.contains("is damaged and cannot be read"))
        }
    }

    /// One byte of a manifest changed so that it is still valid JSON, naming another artifact:
    /// verify and restore report a damaged manifest — not a missing artifact — and restore
    /// writes nothing.
    @Test func aManifestWithOneChangedByteIsReportedAsDamagedNotAsAMissingArtifact() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try dir.write("src/app.conf", "listen = 8080\n")
            try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n")
            let backup = try LifeboatCLI.run(["backup", "etc", "--json"], config: dir.path)
            #expect(backup.status == 0, "\(backup.stderr)")
            let id = try #require((try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any])?["id"] as? String)
            let path = dir.subpath(".lifeboat/repository/etc/backups/\(id)/manifest.json")
            var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            let artifact = Array("data/0".utf8)
            let at = try #require((0...(bytes.count - artifact.count)).first { Array(bytes[$0..<($0 + artifact.count)]) == artifact })
            bytes[at + artifact.count - 1] = UInt8(ascii: "7")  // "data/7…": another artifact's name
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            #expect(try JSONSerialization.jsonObject(with: Data(bytes)) is [String: Any])

            for arguments in [["verify", "etc", id], ["restore", "etc", id, "--to", dir.subpath("restored")]] {
                let output = try LifeboatCLI.run(arguments, config: dir.path)
                #expect(output.status == 1, "\(arguments[0]): \(output.all)")
                #expect(output.stderr.contains("manifest \(path) is damaged and cannot be read: its bytes have SHA-256"), "\(output.stderr)")
                #expect(output.stderr.contains("it changed after it was written"), "\(output.stderr)")
                #expect(!output.stderr.contains("missing") && !output.stderr.contains("not found"), "\(output.stderr)")
            }
            #expect(!pathExists(dir.subpath("restored/app.conf")))
        }
    }

    @Test func aFailingCommandWithJSONPrintsOneJSONDocumentWithTheError() async throws {
        try await offThePool {
            let dir = try configWithABrokenNeighbour()
            defer { dir.remove() }
            func document(_ output: LifeboatCLI.Output) throws -> [String: Any] {
                try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any], "stdout: \(output.stdout)")
            }
            let missing = try LifeboatCLI.run(["verify", "etcc", "--json"], config: dir.path)
            #expect(missing.status == 2)
            let missingJSON = try document(missing)
            #expect(missingJSON["ok"] as? Bool == false)
            #expect(missingJSON["exitStatus"] as? Int == 2)
            let error = try #require(missingJSON["error"] as? [String: Any])
            #expect(error["code"] as? String == "not-found")
            #expect((error["message"] as? String)?.contains("no policy named 'etcc'") == true)
            #expect((error["message"] as? String)?.contains("did you mean 'etc'") == true)
            #expect(error["hint"] is String)

            let broken = try document(try LifeboatCLI.run(["backup", "hub", "--json"], config: dir.path))
            #expect((broken["error"] as? [String: Any])?["code"] as? String == "configuration")
            #expect((broken["errors"] as? [Any])?.count == 1)

            let badArgument = try LifeboatCLI.run(["restore", "etc", "--json"], config: dir.path)  // --to is missing
            #expect(badArgument.status == 2)
            #expect((try document(badArgument)["error"] as? [String: Any])?["code"] as? String == "usage")

            let nothingThere = try LifeboatCLI.run(["list", "--json", "--repository", dir.subpath("no-such-repository")])
            #expect(nothingThere.status == 2)
            #expect((try document(nothingThere)["error"] as? [String: Any])?["code"] as? String == "not-found")
        }
    }

    @Test func debugLoggingShowsTheStepsChildProgramsAndTimingsWithoutSecrets() async throws {
        try await offThePool {
            let server = try PostgresServer.start()
            defer { server.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try postgresConfig(dir)
            let env = ["PG_CONNINFO": server.conninfo()]
            let quiet = try LifeboatCLI.run(["backup", "pg"], config: dir.path, environment: env)
            let verbose = try LifeboatCLI.run(["backup", "pg", "--verbose"], config: dir.path, environment: env)
            let debug = try LifeboatCLI.run(["backup", "pg"], config: dir.path, environment: env.merging(["LOG_LEVEL": "debug"]) { $1 })
            #expect(quiet.status == 0 && verbose.status == 0 && debug.status == 0, "\(verbose.stderr)")
            for output in [verbose, debug] {
                let lines = output.stderr.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                let debugLines = lines.filter { $0["level"] as? String == "debug" }
                #expect(debugLines.count >= 6, "\(output.stderr)")
                let messages = Set(debugLines.compactMap { $0["msg"] as? String })
                #expect(messages.isSuperset(of: ["configuration loaded", "repository locked", "backup id reserved", "connecting to PostgreSQL"]), "\(messages)")
                // Each client program, with its arguments (the password is never among them) and its time.
                let started = debugLines.filter { ($0["msg"] as? String)?.hasPrefix("started pg_dump of") == true }
                #expect(!started.isEmpty)
                #expect(started.allSatisfy { ($0["process.command"] as? String)?.contains("--format=custom") == true })
                #expect(debugLines.contains { ($0["msg"] as? String)?.hasSuffix("finished") == true && $0["process.seconds"] != nil })
                #expect(!output.all.contains(server.superuserPassword))
            }
            #expect(!quiet.stderr.contains(#""level":"debug""#))
        }
    }

    @Test func theRepositoryIsNotReadableByOtherUsers() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try dir.write("src/secret.conf", "password = hunter2\n")
            try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n")
            let previous = umask(0o022)
            defer { umask(previous) }
            #expect(try LifeboatCLI.run(["backup", "etc"], config: dir.path).status == 0)
            let root = dir.subpath(".lifeboat/repository")
            let enumerator = try #require(FileManager.default.enumerator(atPath: root))
            var checked = 0
            while let relative = enumerator.nextObject() as? String {
                var st = stat()
                #expect(lstat(root + "/" + relative, &st) == 0)
                let isDirectory = st.st_mode & S_IFMT == S_IFDIR
                #expect(st.st_mode & 0o077 == 0, "\(relative) has mode \(String(st.st_mode & 0o7777, radix: 8))")
                #expect(st.st_mode & 0o777 == (isDirectory ? 0o700 : 0o600), "\(relative)")
                checked += 1
            }
            #expect(checked >= 5)
        }
    }

    @Test func noLockReadsWithoutWritingALockEvenBesideAnExclusiveOne() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try dir.write("src/app.conf", "listen = 8080\n")
            try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n")
            #expect(try LifeboatCLI.run(["backup", "etc"], config: dir.path).status == 0)
            let repository = Repository(name: "default", store: LocalStore(root: dir.subpath(".lifeboat/repository")))
            let context = RunContext()
            let exclusive = try repository.lock(.exclusive, command: "prune", owner: ProcessProbe.current(host: context.host), wait: 0, context: context)
            defer { _ = try? exclusive.release() }  // the test's own lock; the repository is removed anyway

            let locked = try LifeboatCLI.run(["verify", "etc", "--lock-wait", "0s"], config: dir.path)
            #expect(locked.status == 1)
            #expect(locked.stderr.contains("exclusive lock of 'prune' held by pid \(getpid())"))
            let unlocked = try LifeboatCLI.run(["verify", "etc", "--no-lock"], config: dir.path)
            #expect(unlocked.status == 0, "\(unlocked.stderr)")
            #expect(unlocked.stderr.contains("without a lock (--no-lock)"))
            let restore = try LifeboatCLI.run(["restore", "etc", "--no-lock", "--to", dir.subpath("out")], config: dir.path)
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.subpath(".lifeboat/repository/locks")).count == 1)
        }
    }

    @Test func checkLooksAtWhetherAFilesSourceExists() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: /nonexistent/app } }\n")
            let check = try LifeboatCLI.run(["check"], config: dir.path)
            #expect(check.status == 1)
            #expect(check.stderr.contains("source 'etc' (/nonexistent/app) cannot be used: directory '/nonexistent/app' to back up does not exist"))
            #expect(try LifeboatCLI.run(["check", "--offline"], config: dir.path).status == 0)
        }
    }
}
