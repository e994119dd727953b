import Foundation
import Glibc
import LifeboatCore
import LifeboatIO
import Testing
import TestSupport

/// `lifeboat schedule` as a real process: a `files` policy every minute; the last minute's
/// firing is missed at start-up and caught up at once, so no test waits for the clock.
@Suite(.timeLimit(.minutes(10)))
struct SchedulerDaemonProcess {
    func filesPolicy(_ dir: TemporaryDirectory, main: String) throws {
        try dir.write("lifeboat.yaml", main)
        try dir.write("src/a.txt", "alpha\n")
        try dir.write("policies/files.yaml", """
            policy: files
            source: { files: { path: src } }
            schedule: { cron: "* * * * *", timezone: Europe/Berlin }
            """)
    }

    func history(_ dir: TemporaryDirectory) -> [RunRecord] {
        guard let data = FileManager.default.contents(atPath: dir.subpath("state/history.jsonl")) else { return [] }
        return RunRecord.parseHistory(data).records
    }

    @Test func aCaughtUpRunIsCommittedRecordedAndShownAndASecondDaemonIsRefused() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try filesPolicy(dir, main: "state_dir: state\nscheduler: { catch_up: 1h, stop_timeout: 10s, prune: { cron: \"* * * * *\" } }\n")
            let daemon = try RunningLifeboat.start(["schedule", "--listen", "127.0.0.1:0"], config: dir.path, environment: [:])
            #expect(try eventually(timeout: 60) { history(dir).count >= 2 })
            let prune = try #require(history(dir).first { $0.job == "prune" })
            #expect(prune.outcome == .succeeded && prune.policy == "*", "\(prune)")
            let record = try #require(history(dir).first { $0.job == "backup" })
            #expect(record.outcome == .succeeded, "\(record)")
            #expect(record.policy == "files" && record.job == "backup")
            let id = try #require(record.backupID)
            #expect((record.bytes ?? 0) > 0)

            let list = try LifeboatCLI.run(["list", "files", "--json"], config: dir.path)
            #expect(list.status == 0, "\(list.all)")
            #expect(list.stdout.contains(id))

            let second = try LifeboatCLI.run(["schedule"], config: dir.path)
            #expect(second.status == 1, "\(second.all)")
            #expect(second.stderr.contains("another 'lifeboat schedule' (pid \(daemon.child.pid)) already runs"), "\(second.stderr)")

            let status = try LifeboatCLI.run(["status", "--json"], config: dir.path)
            #expect(status.status == 0, "\(status.all)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
            let policies = try #require(json["policies"] as? [[String: Any]])
            let files = try #require(policies.first { $0["policy"] as? String == "files" })
            let lastRun = try #require(files["lastRun"] as? [String: Any])
            #expect(lastRun["outcome"] as? String == "succeeded")
            #expect(lastRun["backupID"] as? String == id)
            #expect(files["nextRun"] as? String != nil)
            #expect(files["newestRestorable"] as? String != nil, "\(status.stdout)")
            #expect(files["newestBackup"] as? String == id)

            let (exit, seconds, stderr) = try daemon.interrupt(with: SIGTERM)
            #expect(exit == 0, "\(stderr)")
            #expect(seconds < 5)
            #expect(stderr.contains("scheduler stopped"), "\(stderr)")
        }
    }

    /// `scheduler.verify` verifies the newest backup of every policy: a damaged one fails the
    /// run, which names it; an intact one is verified; one with no backup yet is passed over.
    @Test func theScheduledVerifyFailsOnADamagedBackupAndNamesOnlyItsPolicy() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try dir.write("lifeboat.yaml", "state_dir: state\nscheduler: { verify: { cron: \"* * * * *\", read_data_parts: 3 } }\n")
            for name in ["damaged", "intact", "empty"] {
                try dir.write("src-\(name)/a.txt", String(repeating: "\(name) ", count: 50_000))
                try dir.write("policies/\(name).yaml", "policy: \(name)\nsource: { files: { path: src-\(name) } }\n")
            }
            for name in ["damaged", "intact"] {
                let backup = try LifeboatCLI.run(["backup", name], config: dir.path)
                #expect(backup.status == 0, "\(backup.all)")
            }
            // Flip bytes in the middle of the damaged policy's artifact.
            let root = dir.subpath(".lifeboat/repository")
            let artifacts = try #require(FileManager.default.enumerator(atPath: root)).compactMap { $0 as? String }
                .filter { $0.contains("damaged") && $0.hasSuffix(".tar.zst") }
            let artifact = try #require(artifacts.first, "no artifact among \(artifacts)")
            let handle = try #require(FileHandle(forUpdatingAtPath: root + "/" + artifact))
            let size = try handle.seekToEnd()
            try handle.seek(toOffset: size / 2)
            try handle.write(contentsOf: Data(repeating: 0x5A, count: 16))
            try handle.close()

            let daemon = try RunningLifeboat.start(["schedule"], config: dir.path, environment: [:])
            #expect(try eventually(timeout: 60) { history(dir).contains { $0.job == "verify" } })
            let (exit, _, stderr) = try daemon.interrupt(with: SIGTERM)
            #expect(exit == 0, "\(stderr)")
            let record = try #require(history(dir).first { $0.job == "verify" })
            #expect(record.outcome == .failed && record.policy == "*", "\(record)")
            let error = record.error ?? ""
            #expect(error.contains("damaged: backup") && error.contains("failed verification"), "\(error)")
            #expect(!error.contains("intact") && !error.contains("empty"), "\(error)")
            #expect(stderr.contains("backup verified") && stderr.contains("\"verify.read_data\":\"1/3\""), "\(stderr)")
            #expect(stderr.contains("nothing to verify"), "\(stderr)")
        }
    }

    @Test func sigtermDuringARunCancelsItAfterTheStopTimeoutAndCommitsNothing() async throws {
        try await offThePool {
            let (s3, proxy) = try FaultProxy.startInFrontOfS3()
            defer { proxy.stop(); s3.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try filesPolicy(dir, main: """
                repositories:
                  offsite:
                    s3: { endpoint: "\(proxy.endpoint)", region: \(s3.region), bucket: lifeboat-test, prefix: backups/lifeboat,
                          access_key_id: "${TEST_S3_KEY}", secret_access_key: "${TEST_S3_SECRET}" }
                default_repository: offsite
                state_dir: state
                scheduler: { stop_timeout: 1s }
                """)
            let env = s3Environment(s3)
            try proxy.setRules([.stall(match: ".tar.zst")])
            let daemon = try RunningLifeboat.start(["schedule", "--listen", "127.0.0.1:0"], config: dir.path, environment: env)
            try proxy.waitFor("stall", match: ".tar.zst")
            let (exit, seconds, stderr) = try daemon.interrupt(with: SIGTERM)
            #expect(exit == 0, "\(stderr)")
            #expect(seconds >= 1 && seconds < 10, "took \(seconds) s")
            #expect(history(dir).map(\.outcome) == [.cancelled], "\(stderr)")
            try proxy.setRules([])
            let list = try LifeboatCLI.run(["list", "--all", "--json"], config: dir.path, environment: env)
            #expect(list.status == 0, "\(list.all)")
            #expect((try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [Any])?.isEmpty == true, "\(list.stdout)")
        }
    }

    @Test func theListenerLogsItsBoundPortAndAnAddressInUseOrABadOneStopsTheDaemonBeforeAnyRun() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try filesPolicy(dir, main: "state_dir: state\n")
            let daemon = try RunningLifeboat.start(["schedule", "--listen", "127.0.0.1:0"], config: dir.path, environment: [:])
            #expect(try eventually(timeout: 30) { daemon.child.stderrText.contains("metrics listening") })
            let line = try #require(daemon.child.stderrText.split(separator: "\n").first { $0.contains("metrics listening") })
            let log = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let address = try #require(log["http.address"] as? String)
            let port = try #require(Int(address.split(separator: ":").last ?? ""))
            #expect(address == "127.0.0.1:\(port)" && port > 0)
            #expect(try RawHTTP.request(port: port, "/healthz").status == 200)

            // Another daemon (another state directory) on the same address: exit 1, no run.
            let other = try TemporaryDirectory()
            defer { other.remove() }
            try filesPolicy(other, main: "state_dir: state\nlisten: \"127.0.0.1:\(port)\"\n")
            let refused = try LifeboatCLI.run(["schedule"], config: other.path)
            #expect(refused.status == 1, "\(refused.all)")
            #expect(refused.stderr.contains("unable to listen on 127.0.0.1:\(port)"), "\(refused.stderr)")
            #expect(history(other).isEmpty)

            // A bad address in lifeboat.yaml: a configuration error where it is written, exit 2.
            try other.write("lifeboat.yaml", "state_dir: state\nlisten: nowhere\n")
            let bad = try LifeboatCLI.run(["schedule"], config: other.path)
            #expect(bad.status == 2, "\(bad.all)")
            #expect(bad.stderr.contains("lifeboat.yaml:2:9"), "\(bad.stderr)")
            let flag = try LifeboatCLI.run(["schedule", "--listen", "9187"], config: dir.path)
            #expect(flag.status == 2, "\(flag.all)")
            #expect(history(other).isEmpty)

            let (exit, _, stderr) = try daemon.interrupt(with: SIGTERM)
            #expect(exit == 0, "\(stderr)")
        }
    }
}
