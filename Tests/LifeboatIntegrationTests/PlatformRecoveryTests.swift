import Foundation
import LifeboatCore
import LifeboatIO
import Testing
import TestSupport

/// `scripts/demo` as a test: the project's own `lifeboat.yaml`, `policies/` and `runbooks/`,
/// with a site's variables pointing at real servers on loopback — PostgreSQL 15 archiving its
/// WAL through the built `lifeboat wal-push`, moto with the platform's three buckets, Redis —
/// and the demo's platform service (`demo/platform_service.py`) whose health endpoints answer
/// from them. The nightly backups, a disaster, `lifeboat recover platform-recovery --yes --at`
/// the moment before it, and then the data and the health checks as they were.
struct PlatformSite {
    static let buckets = ["mcp-hub-sources", "mcp-hub-analysis", "mcp-registry"]

    let config: TemporaryDirectory
    let pg: PostgresServer
    let s3: S3TestServer
    let redis: RedisServer
    let service: PythonFixture
    let servicePort: Int
    let environment: [String: String]

    init() throws {
        config = try TemporaryDirectory("lifeboat-platform")
        let project = PythonFixture.projectDirectory
        for item in ["lifeboat.yaml", "policies", "runbooks"] {
            try FileManager.default.copyItem(atPath: "\(project)/\(item)", toPath: config.subpath(item))
        }
        try PostgresServer.giveToServerUser(config.path)
        let exe = try LifeboatCLI.executable
        s3 = try S3TestServer.start(buckets: Self.buckets)
        redis = try RedisServer.start()
        pg = try PostgresServer.start(settings: [
            "archive_mode": "on",
            "archive_command": "'\(exe) --config \(config.path) wal-push hub-postgres %p'",
            // The policy's spread checkpoint then takes seconds.
            "checkpoint_timeout": "30",
        ])
        let credentials = ["AWS_ACCESS_KEY_ID": s3.accessKeyID, "AWS_SECRET_ACCESS_KEY": s3.secretAccessKey,
                           "PGPASSWORD": pg.superuserPassword]
        let (service, ready) = try PythonFixture.start(
            "\(project)/demo/platform_service.py",
            ["--pg", "host=127.0.0.1 port=\(pg.port) user=postgres", "--psql", "\(pg.binDir)/psql",
             "--s3-endpoint", s3.endpoint, "--redis", "127.0.0.1:\(redis.port)", "--stop-on-stdin-eof"]
                + Self.buckets.flatMap { ["--bucket", $0] },
            environment: credentials)
        self.service = service
        servicePort = ready["port"] as? Int ?? 0
        let url = "http://127.0.0.1:\(servicePort)"
        let data = "\(pg.directory)/data"
        // recover runs as us, as in scripts/demo; PostgreSQL refuses root.
        let asServerUser = geteuid() == 0 ? "runuser -u postgres -- " : ""
        // What a site sets (README, "The platform's configuration").
        var site = credentials
        site["HUB_PG_CONNINFO"] = "host=127.0.0.1 port=\(pg.port) user=postgres dbname=postgres"
        site["MINIO_ENDPOINT"] = s3.endpoint
        site["MINIO_ACCESS_KEY"] = s3.accessKeyID
        site["MINIO_SECRET_KEY"] = s3.secretAccessKey
        site["REDIS_HOST"] = "127.0.0.1"
        site["REDIS_PORT"] = String(redis.port)
        site["RECOVERY_PG_DATA"] = data
        site["RECOVERY_PG_CONNINFO"] = "host=127.0.0.1 port=\(pg.port) user=postgres dbname=mcphub"
        site["RECOVERY_HUB_URL"] = url
        site["RECOVERY_REGISTRY_URL"] = url
        site["RECOVERY_MINIO_URL"] = url
        site["RECOVERY_REDIS_HOST"] = "127.0.0.1"
        site["RECOVERY_REDIS_PORT"] = String(redis.port)
        site["RECOVERY_STOP_POSTGRES"] = "\(asServerUser)\(pg.binDir)/pg_ctl -D \(data) -m fast -w stop"
        // The options PostgresServer started it with: they are not in the data directory.
        site["RECOVERY_START_POSTGRES"] = "\(asServerUser)\(pg.binDir)/pg_ctl -D \(data) -o '-p \(pg.port) -k \(pg.directory) -c listen_addresses=127.0.0.1' -l \(pg.directory)/log -w -t 300 start"
        site["RECOVERY_RESTART_SERVICES"] = "kill -HUP \(service.pid)"
        environment = site
    }

    /// `lifeboat ARGS` as the server's OS user, as `wal-push` runs (both write the repository),
    /// or as us (`recover`, as `scripts/demo` runs it).
    func lifeboat(_ arguments: [String], asServerUser: Bool = true) throws -> LifeboatCLI.Output {
        try LifeboatCLI.run(arguments, config: config.path, environment: environment, user: asServerUser ? "postgres" : nil)
    }

    /// `demo/platform_data.py ACTION ARGS` against the S3 server.
    @discardableResult
    func data(_ action: String, _ arguments: [String]) throws -> String {
        let result = try ChildProcess.run("/usr/bin/env", ["python3", "\(PythonFixture.projectDirectory)/demo/platform_data.py",
                                                           "--endpoint", s3.endpoint, action] + arguments,
                                          environment: environment)
        guard result.status.isSuccess else { throw TestSupportError("platform_data.py \(action) \(result.status): \(result.stderr)") }
        return result.stdout
    }

    func health(_ path: String = "/health") throws -> RawHTTP.Response {
        try RawHTTP.request(port: servicePort, path, timeout: 60)
    }

    /// Every row of both databases, and every object's key, size and SHA-256.
    func fingerprint() throws -> String {
        func table(_ database: String, _ name: String) throws -> String {
            try pg.psql("SELECT '\(database).\(name)', count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM \(name) t", database: database)
        }
        return [try table("mcphub", "projects"), try table("mcphub", "jobs"), try table("mcp_registry", "servers"),
                try data("fingerprint", Self.buckets)].joined(separator: "\n")
    }

    /// Switches to a new WAL segment and waits until the one it closed is archived.
    func archiveCurrentSegment() throws {
        let closing = try pg.psql("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
        try pg.psql("SELECT pg_switch_wal()")
        let deadline = Date().addingTimeInterval(120)
        while try pg.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") < closing {
            guard Date() < deadline else { throw TestSupportError("\(closing) was not archived in two minutes:\n\(pg.serverLog().suffix(3000))") }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    func stop() {
        service.stop()
        pg.stop()
        redis.stop()
        s3.stop()
        config.remove()
    }
}

@Suite(.timeLimit(.minutes(10))) struct PlatformRecoveryDemo {
    @Test func theDemosDisasterIsRecoveredToTheMomentBeforeItAndEveryHealthCheckPassesAgain() async throws {
        try await offThePool {
            let site = try PlatformSite()
            defer { site.stop() }
            let pg = site.pg
            try pg.psql("CREATE DATABASE mcphub")
            try pg.psql("CREATE DATABASE mcp_registry")
            try pg.psql("""
                CREATE TABLE projects (id serial PRIMARY KEY, name text NOT NULL, created timestamptz DEFAULT now());
                INSERT INTO projects (name) SELECT 'project-' || i FROM generate_series(1, 300) i;
                CREATE TABLE jobs (id serial PRIMARY KEY, project int REFERENCES projects, state text);
                INSERT INTO jobs (project, state) SELECT 1 + i % 300, 'done' FROM generate_series(1, 2000) i
                """, database: "mcphub")
            try pg.psql("""
                CREATE TABLE servers (id serial PRIMARY KEY, name text UNIQUE, version text);
                INSERT INTO servers (name, version) SELECT 'server-' || i, '1.' || i FROM generate_series(1, 900) i
                """, database: "mcp_registry")
            try site.data("fill", PlatformSite.buckets)
            let healthy = try site.health()
            #expect(healthy.status == 200 && healthy.body.contains(#""status": "healthy""#), "\(healthy.body)")

            let check = try site.lifeboat(["check"])
            #expect(check.status == 0, "\(check.all)")
            // The nightly backups: every policy with a schedule; redis-cache is switched off.
            for policy in ["hub-postgres", "minio-buckets", "lifeboat-config"] {
                let backup = try site.lifeboat(["backup", policy])
                try #require(backup.status == 0, "backup \(policy): \(backup.all)")
            }

            // Writes after the backups reach the recovery through the archived WAL.
            try pg.psql("INSERT INTO projects (name) VALUES ('after the base backup')", database: "mcphub")
            let before = try site.fingerprint()
            let target = try pg.psql("SELECT clock_timestamp()")
            // A commit after the target, as a live platform has: recovery stops before it, so
            // before DROP DATABASE's mark of the database as invalid (written with no commit).
            try pg.psql("CREATE TABLE writes (at timestamptz); INSERT INTO writes VALUES (clock_timestamp())")

            // The disaster.
            try pg.psql("DROP DATABASE mcphub WITH (FORCE)")
            try pg.psql("DELETE FROM servers WHERE id % 3 = 0", database: "mcp_registry")
            try site.data("delete", ["mcp-hub-sources", "mcp-registry:2"])
            try site.archiveCurrentSegment()
            let broken = try site.health()
            #expect(broken.status == 503, "\(broken.body)")
            #expect(broken.body.contains(#""status": "unhealthy""#) && broken.body.contains("mcp-hub-sources is empty")
                    && broken.body.contains(#""postgres": "down"#), "\(broken.body)")

            let recover = try site.lifeboat(["recover", "platform-recovery", "--yes", "--at", target], asServerUser: false)
            #expect(recover.status == 0, "\(recover.all)\n\(pg.serverLog().suffix(3000))")
            #expect(recover.all.contains("resubmit-jobs"), "the manual step is reported: \(recover.all)")

            let recovered = try site.health()
            #expect(recovered.status == 200 && recovered.body.contains(#""status": "healthy""#), "\(recovered.body)")
            #expect(try site.health("/healthz").status == 200)
            #expect(try site.health("/minio/health/live").status == 200)
            #expect(try site.fingerprint() == before)
            #expect(try pg.psql("SELECT count(*) FROM projects WHERE name = 'after the base backup'", database: "mcphub") == "1")
        }
    }
}
