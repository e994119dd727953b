import Foundation
import Glibc
import LifeboatCore
import LifeboatIO
import Testing
import TestSupport

/// A `lifeboat` process started in the background, to be interrupted.
struct RunningLifeboat {
    let child: ChildProcess

    static func start(_ arguments: [String], config: String, environment: [String: String]) throws -> RunningLifeboat {
        var env = ["LOG_LEVEL": "info"]
        env.merge(environment) { $1 }
        return RunningLifeboat(child: try ChildProcess.spawn(try LifeboatCLI.executable, arguments + ["--config", config],
                                                             environment: env, stdin: .null, stdout: .pipe))
    }

    /// Sends `signal` and waits for the process to end: its exit status and how long it took.
    func interrupt(with signal: Int32) throws -> (status: Int32, seconds: Double, stderr: String) {
        let sent = Date()
        kill(child.pid, signal)
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while case let n = try buffer.withUnsafeMutableBytes({ try child.readStdout(into: $0) }), n > 0 { output += buffer[0..<n] }
        let termination = try child.wait()
        let seconds = Date().timeIntervalSince(sent)
        switch termination {
        case .exited(let status): return (status, seconds, child.stderrText)
        case .signaled(let signal): return (128 + signal, seconds, child.stderrText)
        }
    }
}

/// Processes whose command line holds all of `words` (to find a client program left running).
func processes(matching words: [String]) -> [Int32] {
    (try? directoryEntries("/proc"))?.compactMap { Int32($0) }.filter { pid in
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }  // gone meanwhile
        let command = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
        return words.allSatisfy(command.contains)
    } ?? []
}

/// Polls `condition` (a state of a real server) until it holds, at most `timeout` seconds.
func eventually(timeout: Double = 30, _ condition: () throws -> Bool) throws -> Bool {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(50_000)
    }
    return try condition()
}

@Suite(.timeLimit(.minutes(10)))
struct SignalsCancelRuns {
    @Test(arguments: [SIGINT, SIGTERM])
    func aSignalDuringAPostgresBackupStopsPgDumpRemovesThePartialBackupAndExitsAtOnce(signal: Int32) async throws {
        try await offThePool {
            let server = try PostgresServer.start()
            defer { server.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try seedPlatformDatabases(server)
            try postgresConfig(dir, databases: ["mcp_registry", "mcphub"])
            // Another session holds a lock on a table: pg_dump of mcphub waits for it, connected
            // to the server, after mcp_registry's artifact is committed.
            let holder = try ChildProcess.spawn(server.binDir + "/psql", ["--no-psqlrc", "-q", "-d", server.conninfo(database: "mcphub")],
                                                stdin: .pipe, stdout: .null)
            try Array("begin; lock table servers in access exclusive mode;\n".utf8).withUnsafeBytes { try holder.writeStdin($0) }
            defer { holder.closeStdin(); _ = try? holder.wait() }

            let run = try RunningLifeboat.start(["backup", "pg"], config: dir.path, environment: ["PG_CONNINFO": server.conninfo()])
            #expect(try eventually {
                try server.psql("select count(*) from pg_stat_activity where application_name = 'pg_dump' and wait_event_type = 'Lock'") == "1"
            })
            #expect(processes(matching: ["pg_dump", "port='\(server.port)'"]).count == 1)
            let (status, seconds, stderr) = try run.interrupt(with: signal)
            #expect(status == 128 + signal, "\(stderr)")
            #expect(seconds < 2, "took \(seconds) s")
            let name = signal == SIGINT ? "SIGINT" : "SIGTERM"
            #expect(stderr.contains("of policy 'pg' was cancelled (\(name)); nothing was committed"))
            // No pg_dump left running, on this machine or on the server.
            #expect(processes(matching: ["pg_dump", "port='\(server.port)'"]).isEmpty)
            #expect(try eventually(timeout: 5) {
                try server.psql("select count(*) from pg_stat_activity where application_name = 'pg_dump'") == "0"
            })
            // Nothing listed, nothing left: not the committed first artifact, not the reservation, not the lock.
            let list = try LifeboatCLI.run(["list", "--all", "--json"], config: dir.path, environment: ["PG_CONNINFO": server.conninfo()])
            #expect((try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [Any])?.isEmpty == true, "\(list.stdout)")
            let leftovers = try FileManager.default.subpathsOfDirectory(atPath: dir.subpath("repo")).filter { !$0.hasSuffix("/") }
            #expect(leftovers.filter { !isDirectory(dir.subpath("repo/\($0)")) } == ["lifeboat.json"], "\(leftovers)")
            // The next backup runs as if nothing had happened.
            holder.closeStdin()
            #expect(try LifeboatCLI.run(["backup", "pg"], config: dir.path, environment: ["PG_CONNINFO": server.conninfo()]).status == 0)
        }
    }

    /// A configuration whose one policy backs up 256 MiB: enough that a backup or a restore
    /// is surely still writing when the signal comes.
    func bigFilesPolicy() throws -> TemporaryDirectory {
        let dir = try TemporaryDirectory()
        let big = dir.subpath("src/big.bin")
        try makeDirectories(dir.subpath("src"))
        #expect(FileManager.default.createFile(atPath: big, contents: nil))
        let handle = try #require(FileHandle(forWritingAtPath: big))
        for seed in 0..<64 { handle.write(Data(pseudoRandomBytes(4 << 20, seed: UInt64(seed) + 1))) }
        try handle.close()
        try dir.write("policies/big.yaml", "policy: big\nsource: { files: { path: src } }\n")
        return dir
    }

    @Test func aSignalDuringAFilesRestoreRemovesWhatItWrote() async throws {
        try await offThePool {
            let dir = try bigFilesPolicy()
            defer { dir.remove() }
            #expect(try LifeboatCLI.run(["backup", "big"], config: dir.path).status == 0)
            let target = dir.subpath("restored")
            let run = try RunningLifeboat.start(["restore", "big", "--to", target], config: dir.path, environment: [:])
            #expect(try eventually { FileManager.default.fileExists(atPath: target + "/big.bin") })
            let (status, seconds, stderr) = try run.interrupt(with: SIGTERM)
            #expect(status == 143, "\(stderr)")
            #expect(seconds < 2)
            #expect(stderr.contains("into directory '\(target)' was cancelled (SIGTERM)"))
            #expect(stderr.contains("HINT: What the restore had written into directory '\(target)' was removed"))
            // A half-restored file (its full size set at once, its data not yet) is never left to be taken for a whole one.
            #expect(!FileManager.default.fileExists(atPath: target))
        }
    }

    @Test func aSignalDuringAFilesBackupRemovesItsPartialArtifact() async throws {
        try await offThePool {
            let dir = try bigFilesPolicy()
            defer { dir.remove() }
            let run = try RunningLifeboat.start(["backup", "big"], config: dir.path, environment: [:])
            // Wait until the artifact is being written: its temporary file exists.
            #expect(try eventually {
                guard let ids = try? FileManager.default.contentsOfDirectory(atPath: dir.subpath(".lifeboat/repository/big/backups")) else { return false }
                return ids.contains { id in
                    ((try? FileManager.default.contentsOfDirectory(atPath: dir.subpath(".lifeboat/repository/big/backups/\(id)/data"))) ?? []).contains { $0.contains(".tmp-") }
                }
            })
            let (status, seconds, stderr) = try run.interrupt(with: SIGINT)
            #expect(status == 130, "\(stderr)")
            #expect(seconds < 2)
            let files = try FileManager.default.subpathsOfDirectory(atPath: dir.subpath(".lifeboat/repository"))
                .filter { !isDirectory(dir.subpath(".lifeboat/repository/\($0)")) }
            #expect(files == ["lifeboat.json"], "\(files)")
        }
    }
}

@Suite(.timeLimit(.minutes(10)))
struct SignalsCancelRunsOnS3 {
    /// The case: `SIGINT` in the middle of a PostgreSQL backup to S3, with an upload in
    /// flight (the server stalls it) and `pg_dump` still writing (held back by the upload).
    @Test func sigintDuringAPostgresBackupToS3AbortsTheUploadStopsPgDumpAndLeavesNothing() async throws {
        try await offThePool {
            let (s3, proxy) = try FaultProxy.startInFrontOfS3()
            defer { proxy.stop(); s3.stop() }
            let pg = try PostgresServer.start()
            defer { pg.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            let env = try bigLogicalBackupToS3(dir, pg: pg, s3: s3, proxy: proxy)
            try proxy.setRules([.stall(match: "partNumber=")])

            let run = try RunningLifeboat.start(["backup", "pg"], config: dir.path, environment: env)
            try proxy.waitFor("stall", match: "partNumber=")
            #expect(try directClient(s3).listMultipartUploads(prefix: "backups/lifeboat/").count == 1)
            #expect(processes(matching: ["pg_dump", "port='\(pg.port)'"]).count == 1)
            let (status, seconds, stderr) = try run.interrupt(with: SIGINT)
            #expect(status == 130, "\(stderr)")
            #expect(seconds < 2, "took \(seconds) s")
            #expect(stderr.contains("of policy 'pg' was cancelled (SIGINT); nothing was committed"))

            #expect(processes(matching: ["pg_dump", "port='\(pg.port)'"]).isEmpty)
            #expect(try eventually(timeout: 5) {
                try pg.psql("select count(*) from pg_stat_activity where application_name = 'pg_dump'") == "0"
            })
            // No multipart upload left on the server, no object of the backup, no lock.
            let client = try directClient(s3)
            #expect(try client.listMultipartUploads(prefix: "backups/lifeboat/").isEmpty)
            #expect(try client.listObjects(prefix: "backups/lifeboat/").map(\.key) == ["backups/lifeboat/lifeboat.json"])
            try proxy.setRules([])
            let list = try LifeboatCLI.run(["list", "--all", "--json"], config: dir.path, environment: env)
            #expect(list.status == 0)
            #expect((try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [Any])?.isEmpty == true, "\(list.stdout)")
        }
    }
}

/// A logical backup (policy `pg`) of an 80 MiB database that zstd cannot shrink — more than the
/// upload, the chunker and the pipe hold — into an S3 repository reached through `proxy`, one
/// part at a time: for killing or starving it half-way. Returns the commands' environment.
func bigLogicalBackupToS3(_ dir: TemporaryDirectory, pg: PostgresServer, s3: S3TestServer, proxy: FaultProxy) throws -> [String: String] {
    _ = try pg.psql("create database big")
    _ = try pg.psql("""
        create table noise (id int primary key, data bytea);
        insert into noise select g, decode(string_agg(md5(g::text || ':' || s::text), ''), 'hex')
          from generate_series(1, 5120) g, generate_series(1, 1024) s group by g;
        """, database: "big")
    try dir.write("lifeboat.yaml", """
        repositories:
          offsite:
            s3: { endpoint: "\(proxy.endpoint)", region: \(s3.region), bucket: lifeboat-test, prefix: backups/lifeboat,
                  access_key_id: "${TEST_S3_KEY}", secret_access_key: "${TEST_S3_SECRET}", concurrency: 1 }
        default_repository: offsite
        """)
    try dir.write("policies/pg.yaml", "policy: pg\nsource:\n  postgres: { mode: logical, conninfo: \"${PG_CONNINFO}\", databases: [big], globals: false }\n")
    return s3Environment(s3).merging(["PG_CONNINFO": pg.conninfo()]) { $1 }
}
