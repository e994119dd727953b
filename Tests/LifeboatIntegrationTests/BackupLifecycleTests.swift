import Foundation
import LifeboatArchive
import LifeboatCore
import LifeboatEngine
import Logging
import Synchronization
import Testing
import TestSupport

/// A source that writes one good artifact, then part of a second, then fails — as a dump
/// whose server goes away half-way would.
struct FailingHalfWaySource {
    func run(into sink: ArtifactSink, context: RunContext) throws -> BackupOutcome {
        try sink.artifact(role: "files") { writer in
            let data = Array(repeating: UInt8(ascii: "x"), count: 100_000)
            var offset = 0
            try writer.addFile(path: "first.bin", size: Int64(data.count), mode: 0o644, modificationTime: 0) { buffer in
                let n = min(buffer.count, data.count - offset)
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: data.withUnsafeBytes { $0 }[offset..<offset + n]))
                offset += n
                return n
            }
        }
        try sink.artifact(role: "files") { writer in
            try writer.addStream(name: "endless", chunkSize: 4096) { buffer in
                throw LifeboatError(.source, "the source went away half-way")
            }
        }
        return BackupOutcome(record: SourceRecord(kind: "files"))
    }
}

/// Remembers every progress report.
final class RecordingProgress: ProgressReporter {
    let updates = Mutex<[(what: String, done: Int64, total: Int64?)]>([])
    let finished = Mutex<[String]>([])
    func update(_ what: String, done: Int64, total: Int64?) { updates.withLock { $0.append((what, done, total)) } }
    func finish(_ what: String) { finished.withLock { $0.append(what) } }
}

@Suite(.timeLimit(.minutes(10)))
struct BackupLifecycle {
    @Test func backupAndVerifyReportProgressUpToTheArtifactsSize() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try dir.write("src/data.txt", String(repeating: "progress ", count: 200_000))
            try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n")
            let configuration = try ConfigurationLoader.load(directory: dir.path, environment: [:])
            let progress = RecordingProgress()
            let context = RunContext(logger: quietLogger, progress: progress)
            let manifest = try BackupCommand(configuration: configuration, context: context).run(policy: "etc").manifest
            let size = try #require(manifest.artifacts.first?.size)
            let backupUpdates = progress.updates.withLock { $0 }.filter { $0.what == "backup data/0000.tar.zst" }
            #expect(backupUpdates.last?.done == size)
            #expect(zip(backupUpdates, backupUpdates.dropFirst()).allSatisfy { $0.done <= $1.done })
            #expect(progress.finished.withLock { $0 }.contains("backup data/0000.tar.zst"))

            let report = try VerifyCommand(source: .configuration(configuration), context: context).run(policy: "etc", selector: "latest")
            #expect(report.ok)
            let verifyUpdates = progress.updates.withLock { $0 }.filter { $0.what == "verify data/0000.tar.zst" }
            #expect(verifyUpdates.last?.done == size)
            #expect(verifyUpdates.allSatisfy { $0.total == size })
        }
    }

    @Test func aBackupThatFailsHalfWayLeavesNoListedBackupAndTheNextOneSucceeds() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try dir.write("src/file.txt", "hello")
            try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n")
            let configuration = try ConfigurationLoader.load(directory: dir.path, environment: [:])
            let policy = try configuration.policy(named: "etc")
            let context = RunContext(logger: quietLogger)
            let engine = BackupCommand(configuration: configuration, context: context)
            let list = ListCommand(source: .configuration(configuration), context: context)

            #expect(throws: LifeboatError.self) { try engine.run(policy: policy, source: FailingHalfWaySource().run) }
            #expect(try list.run(policy: "etc", includeInterrupted: true).backups.isEmpty)
            let verify = try LifeboatCLI.run(["verify", "etc", "latest"], config: dir.path)
            #expect(verify.status == 2)
            #expect(verify.stderr.contains("policy 'etc' has no committed backup"))

            let manifest = try engine.run(policy: "etc").manifest
            #expect(try list.run(policy: "etc", includeInterrupted: true).backups.map(\.id) == [manifest.id])
        }
    }

    @Test func aCrashBeforeTheManifestLeavesABackupThatIsNeverListedVerifiedOrRestored() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try dir.write("src/file.txt", "hello")
            try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n")
            #expect(try LifeboatCLI.run(["backup", "etc"], config: dir.path).status == 0)
            // What a crash between the artifacts and the manifest leaves behind: data, no manifest.
            let repo = dir.subpath(".lifeboat/repository/etc/backups")
            let committed = try #require(try FileManager.default.contentsOfDirectory(atPath: repo).first)
            let crashed = "29990101T000000Z"
            try FileManager.default.createDirectory(atPath: "\(repo)/\(crashed)/data", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: "\(repo)/\(committed)/data/0000.tar.zst", toPath: "\(repo)/\(crashed)/data/0000.tar.zst")

            let list = try LifeboatCLI.run(["list", "etc", "--json"], config: dir.path)
            #expect(!list.stdout.contains(crashed))
            let all = try LifeboatCLI.run(["list", "etc", "--all"], config: dir.path).stdout
            #expect(all.split(separator: "\n").contains { $0.contains(crashed) && $0.contains("INTERRUPTED") }, "\(all)")
            // `latest` is the newest committed backup, not the newer interrupted one.
            let latest = try LifeboatCLI.run(["verify", "etc", "latest", "--json"], config: dir.path)
            #expect(latest.status == 0)
            #expect(latest.stdout.contains(committed))
            let verify = try LifeboatCLI.run(["verify", "etc", crashed], config: dir.path)
            #expect(verify.status == 2)
            #expect(verify.stderr.contains("backup \(crashed) of policy 'etc' has no committed manifest"))
            let restore = try LifeboatCLI.run(["restore", "etc", crashed, "--to", dir.subpath("out")], config: dir.path)
            #expect(restore.status == 2)
            #expect(!FileManager.default.fileExists(atPath: dir.subpath("out")))
        }
    }

    @Test func everyLogLineOfABackupIsJSONWithThePolicyAndTheBackupID() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try dir.write("src/file.txt", "hello")
            try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n")
            let result = try LifeboatCLI.run(["backup", "etc", "--json"], config: dir.path, environment: ["LOG_LEVEL": "debug"])
            #expect(result.status == 0)
            let id = try #require((try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])?["id"] as? String)
            let lines = result.stderr.split(separator: "\n")
            #expect(lines.count >= 3)
            for line in lines {
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(object?["policy.name"] as? String == "etc", "\(line)")
                // The backup's id is known once the engine starts; only reading the configuration comes before.
                if object?["msg"] as? String != "configuration loaded" {
                    #expect(object?["backup.id"] as? String == id, "\(line)")
                }
                #expect(object?["level"] != nil && object?["msg"] != nil && object?["ts"] != nil, "\(line)")
            }
            // LOG_LEVEL=error silences the informational lines.
            let quiet = try LifeboatCLI.run(["backup", "etc"], config: dir.path, environment: ["LOG_LEVEL": "error"])
            #expect(quiet.status == 0)
            #expect(quiet.stderr.isEmpty)
        }
    }

    @Test func filesRoundTripThroughBackupAndRestore() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try dir.write("etc/app/app.conf", "listen = 8080\n")
            try dir.write("etc/app/conf.d/extra.conf", String(repeating: "option = value\n", count: 1000))
            try dir.write("etc/app/cache/skip.me", "excluded")
            try FileManager.default.createSymbolicLink(atPath: dir.subpath("etc/app/current"), withDestinationPath: "conf.d/extra.conf")
            try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: etc/app, exclude: [cache] } }\n")

            #expect(try LifeboatCLI.run(["backup", "etc"], config: dir.path).status == 0)
            let restore = try LifeboatCLI.run(["restore", "etc", "latest", "--to", dir.subpath("restored")], config: dir.path)
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(try String(contentsOfFile: dir.subpath("restored/app.conf"), encoding: .utf8) == "listen = 8080\n")
            #expect(try Data(contentsOf: URL(fileURLWithPath: dir.subpath("restored/conf.d/extra.conf")))
                == Data(contentsOf: URL(fileURLWithPath: dir.subpath("etc/app/conf.d/extra.conf"))))
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: dir.subpath("restored/current")) == "conf.d/extra.conf")
            #expect(!FileManager.default.fileExists(atPath: dir.subpath("restored/cache")))
            // The directory the restore created is private; what it holds has the recorded modes.
            let created = try FileManager.default.attributesOfItem(atPath: dir.subpath("restored"))
            #expect((created[.posixPermissions] as? NSNumber)?.intValue == 0o700)
        }
    }

    @Test func aFilesBackupRecordsWhatItSkipped() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try dir.write("src/app.conf", "listen = 8080\n")
            try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n")
            let socketPath = dir.subpath("src/control.sock")
            let fd = try bindUnixSocket(at: socketPath)
            defer { close(fd) }

            // The backup is committed, but incomplete: the summary lists what is missing, and the
            // exit status says the operation did not fully succeed.
            let result = try LifeboatCLI.run(["backup", "etc", "--json"], config: dir.path)
            #expect(result.status == 1, "\(result.stderr)")
            #expect(result.stderr.contains("skipped socket '\(socketPath)'"))
            #expect(result.stderr.contains("is committed but incomplete: 1 entry skipped"))
            let summary = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            #expect(summary["complete"] as? Bool == false)
            #expect((summary["skipped"] as? [[String: Any]])?.first?["reason"] as? String == "socket")
            let text = try LifeboatCLI.run(["backup", "etc"], config: dir.path)
            #expect(text.status == 1)
            #expect(text.stdout.contains("INCOMPLETE: 1 entry could not be backed up:"))
            #expect(text.stdout.contains("skipped socket '\(socketPath)'"))
            let manifest = try #require(summary["manifest"] as? [String: Any])
            let files = try #require((manifest["source"] as? [String: Any])?["files"] as? [String: Any])
            let skipped = try #require(files["skipped"] as? [[String: Any]])
            #expect(skipped.count == 1)
            #expect(skipped.first?["path"] as? String == socketPath)
            #expect(skipped.first?["reason"] as? String == "socket")
        }
    }

    @Test func restoreIntoANonEmptyDirectoryIsRefusedAndTouchesNothing() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try dir.write("src/app.conf", "new")
            try dir.write("target/app.conf", "precious")
            try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\n")
            #expect(try LifeboatCLI.run(["backup", "etc"], config: dir.path).status == 0)
            let result = try LifeboatCLI.run(["restore", "etc", "--to", dir.subpath("target")], config: dir.path)
            #expect(result.status == 2)
            #expect(result.stderr.contains("restore target '\(dir.subpath("target"))' is not empty"))
            #expect(result.stderr.contains("HINT: Restore into a new or empty directory"))
            #expect(try String(contentsOfFile: dir.subpath("target/app.conf"), encoding: .utf8) == "precious")
        }
    }
}
