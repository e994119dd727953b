import Foundation
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import LifeboatPostgres
import Logging
import Testing
import TestSupport

/// A configuration directory with one logical PostgreSQL policy and a local repository.
func postgresConfig(_ dir: TemporaryDirectory, databases: [String]? = nil) throws {
    try dir.write("lifeboat.yaml", "repositories:\n  local: { path: repo }\ndefault_repository: local\n")
    var policy = "policy: pg\nsource:\n  postgres:\n    mode: logical\n    conninfo: \"${PG_CONNINFO}\"\n"
    if let databases { policy += "    databases: [\(databases.joined(separator: ", "))]\n" }
    try dir.write("policies/pg.yaml", policy)
}

/// A fingerprint of every table's rows in a database, computed by the server.
func fingerprint(_ server: PostgresServer, database: String) throws -> [String: String] {
    let tables = try server.psql("select table_schema || '.' || table_name from information_schema.tables where table_schema not in ('pg_catalog','information_schema') and table_type = 'BASE TABLE' order by 1", database: database)
        .split(separator: "\n").map(String.init)
    var result: [String: String] = [:]
    for table in tables {
        result[table] = try server.psql("select count(*) || ':' || coalesce(md5(string_agg(t::text, '|' order by t::text)), '') from \(table) t", database: database)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
    return result
}

func seedPlatformDatabases(_ server: PostgresServer) throws {
    _ = try server.psql("create role hub_app login password 'app-pw-123'")
    _ = try server.psql("create database mcphub owner hub_app")
    _ = try server.psql("create database mcp_registry")
    _ = try server.psql("""
        create table servers (id serial primary key, name text not null unique, meta jsonb, created timestamptz default now());
        insert into servers (name, meta) select 'server-' || g, jsonb_build_object('n', g, 'tags', array['a','b'])
          from generate_series(1, 5000) g;
        create table blobs (id int primary key, data bytea, note text);
        insert into blobs select g, decode(md5(g::text) || md5((g*7)::text), 'hex'), case when g % 3 = 0 then null else 'ünïcødé ' || g end
          from generate_series(1, 2000) g;
        create index on blobs (note);
        grant select on servers to hub_app;
        """, database: "mcphub")
    _ = try server.psql("""
        create schema registry;
        create table registry.packages (name text primary key, version text, downloads bigint);
        insert into registry.packages select 'pkg-' || g, '1.' || (g % 10), g * 1000 from generate_series(1, 3000) g;
        create view registry.popular as select * from registry.packages where downloads > 100000;
        """, database: "mcp_registry")
}

@Suite(.timeLimit(.minutes(10)))
struct PostgresLogicalBackup {
    @Test func backupDropRestoreGivesIdenticalRows() async throws {
        try await offThePool {
            let server = try PostgresServer.start()
            defer { server.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try seedPlatformDatabases(server)
            let before = try ["mcphub", "mcp_registry"].map { try fingerprint(server, database: $0) }
            #expect(before[0].count == 2 && before[1].count == 1)

            try postgresConfig(dir)
            let env = ["PG_CONNINFO": server.conninfo()]
            let backup = try LifeboatCLI.run(["backup", "pg", "--json"], config: dir.path, environment: env)
            #expect(backup.status == 0, "\(backup.stderr)")
            let summary = try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any]
            // Globals, and every database that is not a template: postgres, mcphub, mcp_registry.
            #expect(summary?["artifacts"] as? Int == 4)

            _ = try server.psql("drop database mcphub")
            _ = try server.psql("drop database mcp_registry")
            _ = try server.psql("drop role hub_app")

            // `postgres` still exists on the target, so restore the two that were dropped.
            let restore = try LifeboatCLI.run(["restore", "pg", "latest", "--to", server.conninfo(),
                                               "--database", "mcphub", "--database", "mcp_registry"], config: dir.path, environment: env)
            #expect(restore.status == 0, "\(restore.stderr)")

            let after = try ["mcphub", "mcp_registry"].map { try fingerprint(server, database: $0) }
            #expect(after == before)
            // Roles come back with the globals, and ownership with them.
            #expect(try server.psql("select pg_get_userbyid(datdba) from pg_database where datname = 'mcphub'") == "hub_app")
            #expect(try server.psql("select count(*) from registry.popular", database: "mcp_registry") == "2900")
            // The password never appears in anything the commands printed.
            #expect(!backup.all.contains(server.superuserPassword))
            #expect(!restore.all.contains(server.superuserPassword))
        }
    }

    @Test func manifestRecordsTheServersIdentityAndEveryEntryChecksum() async throws {
        try await offThePool {
            let server = try PostgresServer.start()
            defer { server.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try seedPlatformDatabases(server)
            try postgresConfig(dir, databases: ["mcphub"])
            let configuration = try ConfigurationLoader.load(directory: dir.path, environment: ["PG_CONNINFO": server.conninfo()])
            let manifest = try BackupCommand(configuration: configuration, context: RunContext(logger: quietLogger)).run(policy: "pg").manifest

            let pg = try manifest.source.details(as: PostgresRecord.self)
            #expect(pg.databases == ["mcphub"])
            #expect(pg.serverVersionNumber / 10000 == 15)
            #expect(pg.systemIdentifier == (try server.psql("select system_identifier from pg_control_system()")))
            #expect(pg.user == "postgres")
            #expect(manifest.artifacts.map(\.role) == ["postgres-globals", "postgres-database"])
            #expect(manifest.artifacts.allSatisfy { $0.sha256.count == 64 && !$0.entries.isEmpty })
            #expect(manifest.artifacts[1].entries.allSatisfy { $0.stream == "database.dump" && $0.sha256.count == 64 })

            // The manifest on disk is the one returned, and it carries no secret.
            let onDisk = try String(contentsOfFile: dir.subpath("repo/pg/backups/\(manifest.id)/manifest.json"), encoding: .utf8)
            #expect(!onDisk.contains(server.superuserPassword))
            #expect(onDisk == String(decoding: try ManifestDocument.encode(manifest), as: UTF8.self))
        }
    }

    @Test func restoreRefusesToOverwriteAnExistingDatabase() async throws {
        try await offThePool {
            let server = try PostgresServer.start()
            defer { server.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try seedPlatformDatabases(server)
            try postgresConfig(dir, databases: ["mcp_registry"])
            let env = ["PG_CONNINFO": server.conninfo()]
            #expect(try LifeboatCLI.run(["backup", "pg"], config: dir.path, environment: env).status == 0)
            let restore = try LifeboatCLI.run(["restore", "pg", "--to", server.conninfo()], config: dir.path, environment: env)
            #expect(restore.status == 2)
            #expect(restore.stderr.contains("database 'mcp_registry' already exists on postgres@127.0.0.1:\(server.port)"))
            #expect(try server.psql("select count(*) from registry.packages", database: "mcp_registry") == "3000")
        }
    }

    @Test func restoreLeavesRolesThatExistOnTheTargetExactlyAsTheyAre() async throws {
        try await offThePool {
            let source = try PostgresServer.start()
            defer { source.stop() }
            let target = try PostgresServer.start()
            defer { target.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try seedPlatformDatabases(source)  // hub_app: login, password 'app-pw-123', no CREATEDB
            _ = try source.psql("create role auditor nologin; grant hub_app to auditor")
            // A live application on the target shares the role name, with its own password and rights.
            _ = try target.psql("create role hub_app login createdb password 'target-live-pw'")
            let rolesBefore = try target.psql("select rolname, rolcanlogin, rolcreatedb, rolpassword from pg_authid where rolname = 'hub_app'")
            try postgresConfig(dir)
            #expect(try LifeboatCLI.run(["backup", "pg"], config: dir.path, environment: ["PG_CONNINFO": source.conninfo()]).status == 0)

            // Even restoring one database (which the role owns), the role stays the target's.
            let restore = try LifeboatCLI.run(["restore", "pg", "--to", target.conninfo(), "--database", "mcphub", "--json"],
                                              config: dir.path, environment: ["PG_CONNINFO": source.conninfo()])
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(try target.psql("select rolname, rolcanlogin, rolcreatedb, rolpassword from pg_authid where rolname = 'hub_app'") == rolesBefore)
            let app = try PostgresConnectionParameters(conninfo: "host=127.0.0.1 port=\(target.port) user=hub_app dbname=mcphub password=target-live-pw")
            #expect(try PostgresConnection.connect(app).query("select count(*) from servers") == [["5000"]])
            // What it did to the roles is reported: kept, and created (a missing role is created,
            // with its membership in the existing one).
            let report = try #require(try JSONSerialization.jsonObject(with: Data(restore.stdout.utf8)) as? [String: Any])
            let kept = report["kept"] as? [String] ?? []
            #expect(kept.contains { $0.contains("role 'hub_app'") }, "\(kept)")
            #expect(kept.contains { $0.contains("role 'postgres'") })
            #expect((report["restored"] as? [String])?.contains("role 'auditor'") == true)
            #expect(try target.psql("select pg_has_role('auditor', 'hub_app', 'member')") == "t")
            let text = try LifeboatCLI.run(["restore", "pg", "--to", target.conninfo(), "--database", "mcp_registry"],
                                           config: dir.path, environment: ["PG_CONNINFO": source.conninfo()])
            #expect(text.stdout.contains("kept: role 'hub_app' (it exists on the target; left as it is)"))
        }
    }

    @Test func unreachableServerIsReportedWithHostAndPort() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            let port = try freeLoopbackPort()
            let conninfo = "host=127.0.0.1 port=\(port) user=postgres dbname=postgres connect_timeout=3"
            try postgresConfig(dir)
            let result = try LifeboatCLI.run(["backup", "pg"], config: dir.path, environment: ["PG_CONNINFO": conninfo])
            #expect(result.status == 1)
            #expect(result.stderr.contains("could not connect to PostgreSQL at 127.0.0.1:\(port)"))
            #expect(result.stderr.contains("HINT:"))
            #expect(try LifeboatCLI.run(["list", "pg"], config: dir.path, environment: ["PG_CONNINFO": conninfo]).stdout
                .contains("policy pg has no backups"))
        }
    }

    @Test func wrongPasswordNamesUserAndHostButNeverThePassword() async throws {
        try await offThePool {
            let server = try PostgresServer.start()
            defer { server.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            let wrong = "not-the-Password-42"
            let conninfo = server.conninfo(password: wrong)
            try postgresConfig(dir)
            let result = try LifeboatCLI.run(["backup", "pg"], config: dir.path, environment: ["PG_CONNINFO": conninfo])
            #expect(result.status == 1)
            #expect(result.stderr.contains("PostgreSQL authentication failed for user 'postgres' at 127.0.0.1:\(server.port)"))
            #expect(!result.all.contains(wrong))
            #expect(!result.all.contains(server.superuserPassword))
        }
    }
}
