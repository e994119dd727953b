import Foundation
import Glibc
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import Testing
import TestSupport

/// A configuration directory whose one policy, `cache`, backs up the Redis server on `port`;
/// `lines` are more keys of `source.redis`.
func redisConfig(_ dir: TemporaryDirectory, port: Int, mode: String, lines: [String] = []) throws {
    try dir.write("lifeboat.yaml", "repositories:\n  local: { path: repo }\ndefault_repository: local\n")
    var policy = "policy: cache\nsource:\n  redis:\n    host: 127.0.0.1\n    port: \(port)\n    mode: \(mode)\n"
    for line in lines { policy += "    \(line)\n" }
    try dir.write("policies/cache.yaml", policy)
}

/// Keys of every type, one with a time to live, and `bulk` more of 100 bytes each (so that the
/// RDB comes in many pieces).
func seedRedis(_ server: RedisServer, bulk: Int = 20000) throws {
    try server.cli(["SET", "greeting", "hello, lifeboat"])
    try server.cli(["SET", "counter", "42"])
    try server.cli(["RPUSH", "queue", "a", "b", "c"])
    try server.cli(["HSET", "user:1", "name", "Ada", "lang", "en"])
    try server.cli(["SADD", "tags", "x", "y", "z"])
    try server.cli(["ZADD", "scores", "1", "one", "2.5", "two"])
    try server.cli(["XADD", "events", "1-1", "kind", "login"])
    try server.cli(["SET", "session", "token-1", "EX", "3600"])
    try server.cli(["EVAL", "for i = 1, \(bulk) do redis.call('SET', 'k:' .. i, string.rep(string.char(65 + i % 26), 100)) end return 1", "0"])
}

/// What the seeded keys hold, read with Redis's own client.
func redisFingerprint(_ server: RedisServer) throws -> [String: String] {
    [
        "dbsize": try server.cli(["DBSIZE"]),
        "types": try server.cli(["EVAL", "local t = {} for _, k in ipairs(KEYS) do t[#t + 1] = redis.call('TYPE', k)['ok'] end return table.concat(t, ',')",
                                 "8", "greeting", "counter", "queue", "user:1", "tags", "scores", "events", "session"]),
        "greeting": try server.cli(["GET", "greeting"]),
        "counter": try server.cli(["INCRBY", "counter", "0"]),
        "queue": try server.cli(["LRANGE", "queue", "0", "-1"]),
        "user:1": try server.cli(["HMGET", "user:1", "name", "lang"]),
        "tags": try server.cli(["SMEMBERS", "tags"]).split(separator: "\n").sorted().joined(separator: ","),
        "scores": try server.cli(["ZRANGE", "scores", "0", "-1", "WITHSCORES"]),
        "events": try server.cli(["XRANGE", "events", "-", "+"]),
        "session": try server.cli(["GET", "session"]),
        "bulk": try server.cli(["EVAL", "local t = {} for i = 1, 20000 do t[#t + 1] = redis.call('GET', 'k:' .. i) or '-' end return redis.sha1hex(table.concat(t))", "0"]),
    ]
}

/// The one committed backup's manifest.
func onlyManifest(_ dir: TemporaryDirectory, policy: String = "cache") throws -> (Manifest, String) {
    let backups = dir.subpath("repo/\(policy)/backups")
    let ids = try FileManager.default.contentsOfDirectory(atPath: backups).filter { pathExists("\(backups)/\($0)/manifest.json") }
    guard ids.count == 1 else { throw TestFailure("expected one committed backup in \(backups), found \(ids)") }
    let path = "\(backups)/\(ids[0])/manifest.json"
    return (try JSON.decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: path))), path)
}

/// The RDB inside the backup's artifact, extracted by GNU tar (not Lifeboat) into `path`.
func extractRDB(_ dir: TemporaryDirectory, _ manifest: Manifest, to path: String) throws {
    let artifact = dir.subpath("repo/\(manifest.policy)/backups/\(manifest.id)/\(manifest.artifacts[0].path)")
    let result = try ChildProcess.run("/bin/sh", ["-c", "tar --zstd -xOf \"$0\" > \"$1\"", artifact, path])
    guard result.status.isSuccess else { throw TestFailure("tar --zstd -xOf \(artifact): \(result.stderr)") }
}

/// `redis-check-rdb`'s verdict on a file.
func redisCheckRDB(_ path: String) throws -> (ok: Bool, output: String) {
    let program = try requireProgram("redis-check-rdb", in: ["/usr/bin", "/usr/local/bin"], hint: "Install redis-tools.")
    let result = try ChildProcess.run(program, [path])
    return (result.status.isSuccess && result.stdout.contains("RDB looks OK"), result.stdout + result.stderr)
}

/// Nothing committed, nothing left: `list --all` shows no backup, and the repository holds only
/// its format marker.
func expectNothingCommitted(_ dir: TemporaryDirectory, environment: [String: String] = [:], sourceLocation: SourceLocation = #_sourceLocation) throws {
    let list = try LifeboatCLI.run(["list", "--all", "--json"], config: dir.path, environment: environment)
    #expect((try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [Any])?.isEmpty == true, "\(list.all)",
            sourceLocation: sourceLocation)
    let files = (try? FileManager.default.subpathsOfDirectory(atPath: dir.subpath("repo"))) ?? []
    #expect(files.filter { !isDirectory(dir.subpath("repo/\($0)")) }.allSatisfy { $0 == "lifeboat.json" }, "\(files)",
            sourceLocation: sourceLocation)
}

@Suite(.timeLimit(.minutes(10)))
struct RedisBackups {
    /// How the RDB reaches Lifeboat: the server's file, or SYNC with the file saved to disk
    /// (`$<length>`), or streamed by a diskless child (`$EOF:<mark>`).
    enum Way: String, CaseIterable, Sendable {
        case local, replicationFromDisk, replicationDiskless
    }

    @Test(arguments: Way.allCases)
    func backupFlushRestoreAndRestartGiveEveryKeyBack(way: Way) async throws {
        try await offThePool {
            let settings = way == .replicationDiskless
                ? ["repl-diskless-sync yes", "repl-diskless-sync-delay 0", "rdbcompression no"] : ["repl-diskless-sync no"]
            let server = try RedisServer.start(password: "redis-pw-1", settings: settings)
            defer { server.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            // Diskless, enough keys (not compressed) for an RDB of more than one 16 MiB chunk.
            let bulk = way == .replicationDiskless ? 200_000 : 20_000
            try seedRedis(server, bulk: bulk)
            let before = try redisFingerprint(server)
            #expect(before["dbsize"] == "\(bulk + 8)" && before["types"] == "string,string,list,hash,set,zset,stream,string")

            try redisConfig(dir, port: server.port, mode: way == .local ? "local" : "replication", lines: ["password: \"${REDIS_PASSWORD}\""])
            let environment = ["REDIS_PASSWORD": "redis-pw-1"]
            let backup = try LifeboatCLI.run(["backup", "cache"], config: dir.path, environment: environment)
            #expect(backup.status == 0, "\(backup.all)")

            let (manifest, manifestPath) = try onlyManifest(dir)
            let record = try manifest.source.details(as: RedisRecord.self)
            #expect(record.mode == (way == .local ? "local" : "replication"))
            #expect(record.transfer == [Way.local: "file", .replicationFromDisk: "length", .replicationDiskless: "diskless"][way])
            #expect(record.serverVersion == (try RedisServer.version()))
            #expect(record.rdbVersion >= 10 && record.rdbFile == "dump.rdb" && record.checksum?.count == 16)
            #expect(record.host == "127.0.0.1" && record.port == server.port && record.user == nil && !record.tls && record.aofEnabled == false)
            #expect(record.serverPath == (way == .local ? server.rdbPath : nil))
            #expect(manifest.artifacts.map(\.role) == [.redisRDB] && manifest.artifacts[0].entries.allSatisfy { $0.stream == "dump.rdb" })
            #expect(manifest.artifacts[0].entries.count == Int((record.rdbSize + (16 << 20) - 1) / (16 << 20)))
            if way == .replicationDiskless { #expect(record.rdbSize > 16 << 20) }
            // The password appears nowhere: not in the manifest, not in anything printed.
            #expect(!(try String(contentsOfFile: manifestPath, encoding: .utf8)).contains("redis-pw-1"))
            #expect(!backup.all.contains("redis-pw-1"))

            // The artifact is a plain tar: GNU tar gets the RDB out, and Redis's own checker accepts it.
            let extracted = dir.subpath("extracted.rdb")
            try extractRDB(dir, manifest, to: extracted)
            let checked = try redisCheckRDB(extracted)
            #expect(checked.ok, "\(checked.output)")
            #expect(Int64(try dir.read("extracted.rdb").count) == record.rdbSize)
            #expect(try LifeboatCLI.run(["verify", "cache", "latest"], config: dir.path, environment: environment).status == 0)

            try server.cli(["FLUSHALL"])
            #expect(try server.cli(["DBSIZE"]) == "0")
            let target = dir.subpath("restored")
            let restore = try LifeboatCLI.run(["restore", "cache", "latest", "--to", target], config: dir.path, environment: environment)
            #expect(restore.status == 0, "\(restore.all)")
            #expect(restore.stdout.contains("next: Stop the Redis server, then copy \(target)/dump.rdb into its dir"), "\(restore.stdout)")
            #expect(try directoryEntries(target) == ["dump.rdb"])
            let restoredCheck = try redisCheckRDB(target + "/dump.rdb")
            #expect(restoredCheck.ok, "\(restoredCheck.output)")

            let restarted = try RedisServer.start(rdb: target + "/dump.rdb")
            defer { restarted.stop() }
            #expect(try redisFingerprint(restarted) == before)
            let ttl = Int(try restarted.cli(["TTL", "session"])) ?? -2
            #expect(ttl > 0 && ttl <= 3600, "TTL \(ttl)")
        }
    }

    @Test func autoModeReadsTheServersFileHereAndFallsBackToReplicationWithoutConfig() async throws {
        try await offThePool {
            let server = try RedisServer.start()
            defer { server.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try seedRedis(server, bulk: 10)
            try redisConfig(dir, port: server.port, mode: "auto")
            let local = try LifeboatCLI.run(["backup", "cache"], config: dir.path)
            #expect(local.status == 0, "\(local.all)")
            #expect(try onlyManifest(dir).0.source.details(as: RedisRecord.self).mode == "local")

            // CONFIG renamed away: auto takes the replication stream, local mode says what it needs.
            let hidden = try RedisServer.start(settings: ["rename-command CONFIG \"\""])
            defer { hidden.stop() }
            try seedRedis(hidden, bulk: 10)
            let other = try TemporaryDirectory()
            defer { other.remove() }
            try redisConfig(other, port: hidden.port, mode: "auto")
            let auto = try LifeboatCLI.run(["backup", "cache"], config: other.path)
            #expect(auto.status == 0, "\(auto.all)")
            #expect(auto.stderr.contains("CONFIG GET is refused: taking the RDB over the replication stream"))
            #expect(try onlyManifest(other).0.source.details(as: RedisRecord.self).mode == "replication")
            try redisConfig(other, port: hidden.port, mode: "local")
            let refused = try LifeboatCLI.run(["backup", "cache"], config: other.path)
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("refused CONFIG GET dir: ERR unknown command 'CONFIG'"), "\(refused.stderr)")
            #expect(refused.stderr.contains("'mode: local' needs it to find the server's RDB file"))
        }
    }

    @Test func aSaveAlreadyRunningIsWaitedForAndAFailedSaveFailsTheBackup() async throws {
        try await offThePool {
            let data = try TemporaryDirectory("lifeboat-redis-data")
            defer { data.remove() }
            let server = try RedisServer.start(settings: ["dir \(data.path)"])
            defer { server.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try seedRedis(server, bulk: 2000)
            // A save of about 2 s that someone else started.
            try server.cli(["CONFIG", "SET", "rdb-key-save-delay", "1000"])
            try server.cli(["BGSAVE"])
            try redisConfig(dir, port: server.port, mode: "local")
            let backup = try LifeboatCLI.run(["backup", "cache"], config: dir.path)
            #expect(backup.status == 0, "\(backup.all)")
            #expect(backup.stderr.contains("a BGSAVE is already running on the server: waiting for it"), "\(backup.stderr)")
            #expect(try onlyManifest(dir).0.source.details(as: RedisRecord.self).serverPath == data.path + "/dump.rdb")

            // The server cannot write its file any more: the save fails, and so does the backup.
            try server.cli(["CONFIG", "SET", "rdb-key-save-delay", "0"])
            data.remove()
            let failed = try LifeboatCLI.run(["backup", "cache"], config: dir.path)
            #expect(failed.status == 1)
            #expect(failed.stderr.contains("BGSAVE on Redis at 127.0.0.1:\(server.port) failed (rdb_last_bgsave_status:err)"), "\(failed.stderr)")
        }
    }

    @Test func anACLUserAllowedOnlyWhatABackupNeedsBacksUpBothWaysAndWrongCredentialsAreNamed() async throws {
        try await offThePool {
            let server = try RedisServer.start(password: "admin-pw-1", settings: [
                "user backup on >backup-pw-1 +info +bgsave +config|get +replconf +sync", "repl-diskless-sync-delay 0",
            ])
            defer { server.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try seedRedis(server, bulk: 10)
            let credentials = ["user: backup", "password: \"${REDIS_PASSWORD}\""]
            for mode in ["local", "replication"] {
                try redisConfig(dir, port: server.port, mode: mode, lines: credentials)
                let backup = try LifeboatCLI.run(["backup", "cache"], config: dir.path, environment: ["REDIS_PASSWORD": "backup-pw-1"])
                #expect(backup.status == 0, "\(mode): \(backup.all)")
            }

            let wrong = try LifeboatCLI.run(["backup", "cache"], config: dir.path, environment: ["REDIS_PASSWORD": "wrong-pw-2"])
            #expect(wrong.status == 1)
            #expect(wrong.stderr.contains("Redis authentication failed for user 'backup' at 127.0.0.1:\(server.port): WRONGPASS"), "\(wrong.stderr)")
            #expect(!wrong.all.contains("wrong-pw-2"))

            try redisConfig(dir, port: server.port, mode: "local", lines: ["password: \"${REDIS_PASSWORD}\""])
            let wrongDefault = try LifeboatCLI.run(["backup", "cache"], config: dir.path, environment: ["REDIS_PASSWORD": "nope-pw-3"])
            #expect(wrongDefault.status == 1)
            #expect(wrongDefault.stderr.contains("Redis authentication failed for the default user at 127.0.0.1:\(server.port)"), "\(wrongDefault.stderr)")

            try redisConfig(dir, port: server.port, mode: "local")
            let none = try LifeboatCLI.run(["backup", "cache"], config: dir.path)
            #expect(none.status == 1)
            #expect(none.stderr.contains("refused INFO server: NOAUTH Authentication required"), "\(none.stderr)")
            #expect(none.stderr.contains("set 'source.redis.password'"))

            // The same user without SYNC: the replication mode says which command it lacks.
            try server.cli(["ACL", "SETUSER", "backup", "-sync"])
            try redisConfig(dir, port: server.port, mode: "replication", lines: credentials)
            let noSync = try LifeboatCLI.run(["backup", "cache"], config: dir.path, environment: ["REDIS_PASSWORD": "backup-pw-1"])
            #expect(noSync.status == 1)
            #expect(noSync.stderr.contains("refused SYNC: NOPERM"), "\(noSync.stderr)")
            #expect(noSync.stderr.contains("ACL SETUSER"))

            // Bad configuration is bad input; an unreachable server an operation that failed.
            try redisConfig(dir, port: server.port, mode: "local", lines: ["user: backup"])
            let badConfig = try LifeboatCLI.run(["backup", "cache"], config: dir.path)
            #expect(badConfig.status == 2)
            #expect(badConfig.stderr.contains("policies/cache.yaml:7:11: 'source.redis.user' needs 'password'"), "\(badConfig.stderr)")
            let nobody = try freeLoopbackPort()
            try redisConfig(dir, port: nobody, mode: "auto")
            let unreachable = try LifeboatCLI.run(["backup", "cache"], config: dir.path)
            #expect(unreachable.status == 1)
            #expect(unreachable.stderr.contains("unable to connect to Redis at 127.0.0.1:\(nobody)"), "\(unreachable.stderr)")
        }
    }

    @Test func aDamagedOrShortRDBFailsTheBackupAndNothingIsCommitted() async throws {
        try await offThePool {
            // A real RDB, from a real server's SAVE.
            let server = try RedisServer.start()
            defer { server.stop() }
            try seedRedis(server, bulk: 2000)
            try server.cli(["SAVE"])
            let rdb = Array(try Data(contentsOf: URL(fileURLWithPath: server.rdbPath)))
            var damaged = rdb
            damaged[rdb.count / 2] ^= 0x01

            for transfer in [FakeRedis.Transfer.whole, .cut(rdb.count / 3)] {
                let fake = try FakeRedis(rdb: transfer.isWhole ? damaged : rdb, transfer: transfer)
                defer { fake.stop() }
                let dir = try TemporaryDirectory()
                defer { dir.remove() }
                try redisConfig(dir, port: fake.port, mode: "replication")
                let backup = try LifeboatCLI.run(["backup", "cache"], config: dir.path)
                #expect(backup.status == 1, "\(backup.all)")
                if transfer.isWhole {
                    #expect(backup.stderr.contains("RDB file 'dump.rdb' received from Redis at 127.0.0.1:\(fake.port) fails its CRC-64 check"), "\(backup.stderr)")
                } else {
                    #expect(backup.stderr.contains("closed the connection after \(rdb.count / 3) bytes of the RDB of \(rdb.count) announced"), "\(backup.stderr)")
                }
                try expectNothingCommitted(dir)
            }

            // Local mode: the server's file is damaged on its disk.
            let files = try TemporaryDirectory()
            defer { files.remove() }
            try files.write("dump.rdb", bytes: damaged)
            let fake = try FakeRedis(rdb: rdb, directory: files.path)
            defer { fake.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try redisConfig(dir, port: fake.port, mode: "local")
            let backup = try LifeboatCLI.run(["backup", "cache"], config: dir.path)
            #expect(backup.status == 1)
            #expect(backup.stderr.contains("RDB file '\(files.path)/dump.rdb' saved by Redis at 127.0.0.1:\(fake.port) fails its CRC-64 check"), "\(backup.stderr)")
            try expectNothingCommitted(dir)
        }
    }

    @Test func restoreNeverOverwritesAndRefusesADamagedArtifactLeavingNothing() async throws {
        try await offThePool {
            let server = try RedisServer.start()
            defer { server.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try seedRedis(server, bulk: 5000)
            try redisConfig(dir, port: server.port, mode: "replication")
            #expect(try LifeboatCLI.run(["backup", "cache"], config: dir.path).status == 0)

            let target = dir.subpath("restored")
            try makeDirectories(target)
            try dir.write("restored/dump.rdb", "the server's current file")
            let refused = try LifeboatCLI.run(["restore", "cache", "--to", target], config: dir.path)
            #expect(refused.status == 2)
            #expect(refused.stderr.contains("'\(target)/dump.rdb' already exists; Lifeboat never overwrites a file"), "\(refused.stderr)")
            #expect(try String(contentsOfFile: target + "/dump.rdb", encoding: .utf8) == "the server's current file")

            // One byte of the stored artifact flipped: refused, and nothing is left in the target.
            let (manifest, _) = try onlyManifest(dir)
            let artifact = dir.subpath("repo/cache/backups/\(manifest.id)/\(manifest.artifacts[0].path)")
            var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: artifact)))
            bytes[bytes.count / 2] ^= 0x01
            try Data(bytes).write(to: URL(fileURLWithPath: artifact))
            let other = dir.subpath("restored-2")
            let damaged = try LifeboatCLI.run(["restore", "cache", "--to", other], config: dir.path)
            #expect(damaged.status == 1, "\(damaged.all)")
            #expect(try directoryEntries(other).isEmpty)
        }
    }

    @Test func tlsWithAClientCertificateInBothModes() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try makeDirectories(dir.subpath("certs"))
            try makeDirectories(dir.subpath("other"))
            let certificates = try TestCertificates.make(in: dir.subpath("certs"))
            _ = try TestCertificates.make(in: dir.subpath("other"), caName: "another-ca")
            let server = try RedisServer.start(password: "tls-pw-1", settings: ["repl-diskless-sync-delay 0"], tls: certificates)
            defer { server.stop() }
            try seedRedis(server)
            let before = try redisFingerprint(server)
            let environment = ["REDIS_PASSWORD": "tls-pw-1"]
            let password = "password: \"${REDIS_PASSWORD}\""
            for mode in ["local", "replication"] {
                try dir.remove(subpath: "repo")
                try redisConfig(dir, port: server.port, mode: mode,
                                lines: [password, "tls: { ca_bundle: certs/ca.crt, cert: certs/client.crt, key: certs/client.key }"])
                let backup = try LifeboatCLI.run(["backup", "cache"], config: dir.path, environment: environment)
                #expect(backup.status == 0, "\(mode): \(backup.all)")
                let record = try onlyManifest(dir).0.source.details(as: RedisRecord.self)
                #expect(record.tls && record.mode == mode)
            }
            let target = dir.subpath("restored")
            #expect(try LifeboatCLI.run(["restore", "cache", "--to", target], config: dir.path, environment: environment).status == 0)
            let restarted = try RedisServer.start(rdb: target + "/dump.rdb")
            defer { restarted.stop() }
            #expect(try redisFingerprint(restarted) == before)

            // A CA that did not sign the server's certificate, no client certificate, no TLS at all.
            let failures: [(String, String)] = [
                ("tls: { ca_bundle: other/ca.crt, cert: certs/client.crt, key: certs/client.key }", "SSL certificate problem"),
                ("tls: { ca_bundle: certs/ca.crt }", "give 'tls.cert' and 'tls.key'"),
                ("tls: false", "If the server expects TLS on this port, set 'tls: true'"),
            ]
            for (line, expected) in failures {
                try redisConfig(dir, port: server.port, mode: "replication", lines: [password, line])
                let backup = try LifeboatCLI.run(["backup", "cache"], config: dir.path, environment: environment)
                #expect(backup.status == 1, "\(line): \(backup.all)")
                #expect(backup.stderr.contains(expected), "\(line): \(backup.stderr)")
            }
        }
    }
}

/// SIGTERM while the server saves, and while the RDB streams in: the run ends at once and
/// commits nothing.
@Suite(.timeLimit(.minutes(10)))
struct RedisBackupCancellation {
    @Test(arguments: ["local", "replication"])
    func sigtermWhileTheServerSavesOrTheRDBStreamsCommitsNothing(mode: String) async throws {
        try await offThePool {
            let server = try RedisServer.start(settings: ["repl-diskless-sync yes", "repl-diskless-sync-delay 0"])
            defer { server.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try seedRedis(server, bulk: 3000)
            // 10 ms per key: a save of about 30 s, streamed as it goes in diskless replication.
            try server.cli(["CONFIG", "SET", "rdb-key-save-delay", "10000"])
            try redisConfig(dir, port: server.port, mode: mode)
            let run = try RunningLifeboat.start(["backup", "cache"], config: dir.path, environment: [:])
            let waitingFor = mode == "local" ? "BGSAVE requested" : "receiving the RDB over the replication stream"
            #expect(try eventually { run.child.stderrText.contains(waitingFor) }, "\(run.child.stderrText)")
            #expect(try server.info("persistence")["rdb_bgsave_in_progress"] == "1")
            usleep(500_000)
            let (status, seconds, stderr) = try run.interrupt(with: SIGTERM)
            #expect(status == 143, "\(stderr)")
            #expect(seconds < 2, "took \(seconds) s")
            #expect(stderr.contains("of policy 'cache' was cancelled (SIGTERM); nothing was committed"), "\(stderr)")
            try expectNothingCommitted(dir)
            if mode == "replication" {
                // The master saw its replica go.
                #expect(try eventually(timeout: 10) { try server.info("replication")["connected_slaves"] == "0" })
            }
        }
    }

    @Test func sigtermWhileAStalledMasterHoldsTheTransferCommitsNothing() async throws {
        try await offThePool {
            let server = try RedisServer.start()
            defer { server.stop() }
            try seedRedis(server, bulk: 2000)
            try server.cli(["SAVE"])
            let rdb = Array(try Data(contentsOf: URL(fileURLWithPath: server.rdbPath)))
            let fake = try FakeRedis(rdb: rdb, transfer: .stall(rdb.count / 2))
            defer { fake.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try redisConfig(dir, port: fake.port, mode: "replication")
            let run = try RunningLifeboat.start(["backup", "cache"], config: dir.path, environment: [:])
            #expect(try eventually { run.child.stderrText.contains("receiving the RDB over the replication stream") })
            usleep(300_000)
            let (status, seconds, stderr) = try run.interrupt(with: SIGTERM)
            #expect(status == 143, "\(stderr)")
            #expect(seconds < 2, "took \(seconds) s")
            try expectNothingCommitted(dir)
        }
    }
}

extension FakeRedis.Transfer {
    var isWhole: Bool {
        if case .whole = self { return true }
        return false
    }
}

extension TemporaryDirectory {
    /// Removes a file or directory under it (nothing when absent).
    func remove(subpath: String) throws {
        let path = self.subpath(subpath)
        if pathExists(path) { try FileManager.default.removeItem(atPath: path) }
    }
}
