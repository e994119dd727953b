import Glibc
import LifeboatCore
import LifeboatIO
import LifeboatPostgres
import Testing
import TestSupport

/// The PostgreSQL layer against real servers on loopback, and the child processes it runs.
@Suite struct PostgresLayerTests {
    // MARK: Connections

    @Test(.timeLimit(.minutes(10)))
    func connectsAndDescribesTheServer() async throws {
        try await offThePool {
            let server = try PostgresServer.start()
            defer { server.stop() }
            let connection = try PostgresConnection.connect(server.parameters())

            let info = try connection.serverInfo()
            #expect(info.majorVersion == server.majorVersion)
            #expect(info.majorVersion == 15)
            #expect(info.version.hasPrefix("\(server.majorVersion)."))
            #expect(!info.systemIdentifier.isEmpty)
            #expect(UInt64(info.systemIdentifier) != nil)
            #expect(info.systemIdentifier == (try server.psql("select system_identifier from pg_control_system()")))

            try server.psql("create database alpha")
            try server.psql("create database \"beta gamma\"")
            try server.psql("create database tmpl is_template true")
            try server.psql("create database closed allow_connections false")
            #expect(try connection.listDatabases() == ["alpha", "beta gamma", "postgres"])
            #expect(try connection.databaseExists("alpha"))
            #expect(try connection.databaseExists("tmpl"))
            #expect(try !connection.databaseExists("nope"))

            let rows = try connection.query("select $1::text, null::text, 42, $2::text", ["it's", nil])
            #expect(rows == [["it's", nil, "42", nil]])
            #expect(try connection.query("create table t (x int)").isEmpty)
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func queryErrorsCarryTheSQLState() async throws {
        try await offThePool {
            let server = try PostgresServer.start()
            defer { server.stop() }
            let connection = try PostgresConnection.connect(server.parameters())
            let error = #expect(throws: LifeboatError.self) {
                try connection.query("select * from no_such_table")
            }
            #expect(error?.code == .postgres)
            #expect(error?.message.contains("42P01") == true)
            #expect(error?.message.contains("relation \"no_such_table\" does not exist") == true)
            #expect(error?.message.contains("postgres@127.0.0.1:\(server.port)/postgres") == true)
            #expect((error?.underlying as? PostgresServerError)?.sqlState == "42P01")
            // The connection is still usable after a failed statement.
            #expect(try connection.query("select 1") == [["1"]])
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func wrongPasswordSaysAuthenticationFailedWithoutThePassword() async throws {
        try await offThePool {
            let server = try PostgresServer.start()
            defer { server.stop() }
            let wrong = "wrong-pw-XYZ-123"
            let error = #expect(throws: LifeboatError.self) {
                try PostgresConnection.connect(server.parameters(password: wrong))
            }
            let text = error?.description ?? ""
            #expect(error?.code == .postgres)
            #expect(error?.message == "PostgreSQL authentication failed for user 'postgres' at 127.0.0.1:\(server.port)")
            #expect(error?.hint?.contains("pg_hba.conf") == true)
            #expect(!text.contains(wrong))
            #expect(!text.contains(server.superuserPassword))
            #expect(!"\(String(describing: error))".contains(wrong))

            // No password at all: the same diagnosis.
            let noPassword = try PostgresConnectionParameters(
                conninfo: "host=127.0.0.1 port=\(server.port) user=postgres dbname=postgres passfile=/nonexistent")
            let missing = #expect(throws: LifeboatError.self) {
                try PostgresConnection.connect(noPassword)
            }
            #expect(missing?.message.contains("authentication failed for user 'postgres'") == true)
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func unreachableServerSaysCouldNotConnect() async throws {
        try await offThePool {
            let port = try freeLoopbackPort()
            let parameters = try PostgresConnectionParameters(
                conninfo: "host=127.0.0.1 port=\(port) user=postgres password=secret-pw-9")
            let error = #expect(throws: LifeboatError.self) {
                try PostgresConnection.connect(parameters)
            }
            #expect(error?.code == .postgres)
            #expect(error?.message.hasPrefix("could not connect to PostgreSQL at 127.0.0.1:\(port): ") == true)
            #expect(error?.message.contains("Connection refused") == true)
            #expect(error?.hint?.contains("running") == true)
            #expect(error?.description.contains("secret-pw-9") == false)
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func missingDatabaseIsNamed() async throws {
        try await offThePool {
            let server = try PostgresServer.start()
            defer { server.stop() }
            let error = #expect(throws: LifeboatError.self) {
                try PostgresConnection.connect(server.parameters(database: "nope"))
            }
            #expect(error?.message == "PostgreSQL database 'nope' does not exist at 127.0.0.1:\(server.port)")
        }
    }

    // MARK: Parameters (no server)

    @Test func invalidConninfoIsAConfigurationErrorThatDoesNotEchoIt() async throws {
        try await offThePool {
            for conninfo in ["host=db password=hunter2 stray", "bogus_option=1", "postgresql://u:hunter2@[::1", "dbname='unterminated"] {
                let error = #expect(throws: LifeboatError.self) {
                    try PostgresConnectionParameters(conninfo: conninfo)
                }
                #expect(error?.code == .configuration)
                #expect(error?.message.hasPrefix("invalid PostgreSQL conninfo: ") == true)
                #expect(error?.description.contains("hunter2") == false)
                #expect(error?.description.contains("stray") == false)
            }
        }
    }

    @Test func parametersQuoteValuesAndKeepThePasswordOut() async throws {
        try await offThePool {
            let parameters = try PostgresConnectionParameters(
                conninfo: #"host=db.example.com port=5433 user='o\'brien' dbname='my db' password='p@ss w\'rd' options='-c search_path=a\\b'"#)
            #expect(parameters.user == "o'brien")
            #expect(parameters.dbname == "my db")
            #expect(parameters.host == "db.example.com")
            #expect(parameters.port == 5433)
            #expect(parameters.password == "p@ss w'rd")
            #expect(parameters.safeDescription == "o'brien@db.example.com:5433/my db")
            #expect("\(parameters)" == parameters.safeDescription)
            #expect(!String(reflecting: parameters).contains("p@ss"))
            #expect(!"\(parameters.settings)".contains("p@ss"))
            var dumped = ""
            dump(parameters, to: &dumped)
            #expect(!dumped.contains("p@ss"))
            #expect(parameters.clientEnvironment() == ["PGPASSWORD": "p@ss w'rd"])

            let conninfo = parameters.conninfoWithoutPassword()
            #expect(conninfo == #"user='o\'brien' dbname='my db' host='db.example.com' port='5433' options='-c search_path=a\\b'"#)
            #expect(!conninfo.contains("p@ss"))
            // What we write, libpq reads back to the same values.
            let reparsed = try PostgresConnectionParameters(conninfo: conninfo)
            #expect(reparsed.settings == parameters.settings.filter { $0.keyword != "password" })
            #expect(reparsed.password == nil)

            let other = parameters.with(database: "shop")
            #expect(other.dbname == "shop")
            #expect(other.password == "p@ss w'rd")
            #expect(parameters.dbname == "my db")
        }
    }

    @Test func parametersFromAURIAndAPasswordOverride() async throws {
        try await offThePool {
            let uri = try PostgresConnectionParameters(conninfo: "postgresql://backup:pw%20x@db.internal:6000/app?sslmode=disable")
            #expect(uri.user == "backup")
            #expect(uri.password == "pw x")
            #expect(uri.host == "db.internal")
            #expect(uri.port == 6000)
            #expect(uri.dbname == "app")
            #expect(uri.value(for: "sslmode") == "disable")
            #expect(!uri.conninfoWithoutPassword().contains("pw"))

            let overridden = try PostgresConnectionParameters(conninfo: "host=h user=u", passwordOverride: "from-env")
            #expect(overridden.password == "from-env")
            #expect(overridden.clientEnvironment() == ["PGPASSWORD": "from-env"])
            #expect(overridden.conninfoWithoutPassword() == "user='u' host='h'")
            let inConninfo = try PostgresConnectionParameters(conninfo: "host=h user=u password=given", passwordOverride: "from-env")
            #expect(inConninfo.password == "given")
            let none = try PostgresConnectionParameters(conninfo: "host=h user=u")
            #expect(none.password == nil)
            #expect(none.clientEnvironment().isEmpty)
            if getenv("PGPORT") == nil {
                #expect(none.port == 5432)
            }
        }
    }

    // MARK: Client programs

    @Test(.timeLimit(.minutes(10)))
    func dumpAndRestoreRoundTrip() async throws {
        try await offThePool {
            let server = try PostgresServer.start()
            defer { server.stop() }
            try server.psql("create database shop")
            try server.psql("""
                create table items (id int primary key, name text not null, note text);
                insert into items select i, 'item ' || i, case when i % 3 = 0 then null else 'it''s "quoted" é' end
                  from generate_series(1, 5000) i;
                create view cheap as select id from items where id < 10;
                """, database: "shop")
            let parameters = try server.parameters()
            let before: [[String?]]
            do {
                // Closed at the end of the block: DROP DATABASE needs no session on it.
                let shop = try PostgresConnection.connect(parameters.with(database: "shop"))
                before = try shop.query("select id, name, note from items order by id")
            }
            #expect(before.count == 5000)

            let connection = try PostgresConnection.connect(parameters)
            let programs = try PostgresClientPrograms(binDir: nil, serverMajorVersion: try connection.serverInfo().majorVersion)
            #expect(try programs.version(.pgDump).contains("(PostgreSQL) \(server.majorVersion)"))

            // Dump: the archive comes out of pg_dump's stdout.
            let dump = try programs.startDump(database: "shop", connection: parameters)
            #expect(!dump.commandDescription.contains(server.superuserPassword))
            var archive: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let count = try chunk.withUnsafeMutableBytes { try dump.readStdout(into: $0) }
                if count == 0 { break }
                archive += chunk[0..<count]
            }
            let dumpStatus = try dump.wait()
            #expect(dumpStatus.isSuccess, "pg_dump \(dumpStatus): \(dump.stderrText)")
            #expect(archive.starts(with: Array("PGDMP".utf8)))

            try server.psql("drop database shop")
            #expect(try !connection.databaseExists("shop"))

            // Restore: the archive goes into pg_restore's stdin, which creates the database.
            let restore = try programs.startRestore(database: "shop", into: parameters)
            var offset = 0
            while offset < archive.count {
                let end = min(offset + 50_000, archive.count)
                try archive[offset..<end].withUnsafeBytes { try restore.writeStdin($0) }
                offset = end
            }
            restore.closeStdin()
            let restoreStatus = try restore.wait()
            #expect(restoreStatus.isSuccess, "pg_restore \(restoreStatus): \(restore.stderrText)")

            let restored = try PostgresConnection.connect(parameters.with(database: "shop"))
            #expect(try restored.query("select id, name, note from items order by id") == before)
            #expect(try restored.query("select count(*) from cheap") == [["9"]])
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func restoringIntoAnExistingDatabaseFailsWithPgRestoreMessage() async throws {
        try await offThePool {
            let server = try PostgresServer.start()
            defer { server.stop() }
            try server.psql("create database shop")
            let parameters = try server.parameters()
            let programs = try PostgresClientPrograms(binDir: nil, serverMajorVersion: server.majorVersion)
            let dump = try programs.startDump(database: "shop", connection: parameters)
            var archive: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            while case let count = try chunk.withUnsafeMutableBytes({ try dump.readStdout(into: $0) }), count > 0 {
                archive += chunk[0..<count]
            }
            #expect(try dump.wait().isSuccess)

            let restore = try programs.startRestore(database: "shop", into: parameters)
            do {
                try archive.withUnsafeBytes { try restore.writeStdin($0) }
            } catch let error as LifeboatError {
                // pg_restore may stop reading before the end; then the error quotes its stderr.
                #expect(error.message.contains("already exists"))
            }
            restore.closeStdin()
            let status = try restore.wait()
            #expect(status == .exited(1))
            #expect(restore.stderrText.contains("database \"shop\" already exists"))
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func globalsGoFromOneServerToAnother() async throws {
        try await offThePool {
            let source = try PostgresServer.start()
            defer { source.stop() }
            let target = try PostgresServer.start()
            defer { target.stop() }
            try source.psql("create role app_owner login password 'app-pw-1'")
            let programs = try PostgresClientPrograms(binDir: nil, serverMajorVersion: source.majorVersion)

            let dump = try programs.startDumpGlobals(connection: try source.parameters())
            var sql: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 16 * 1024)
            while case let count = try chunk.withUnsafeMutableBytes({ try dump.readStdout(into: $0) }), count > 0 {
                sql += chunk[0..<count]
            }
            #expect(try dump.wait().isSuccess, "pg_dumpall: \(dump.stderrText)")
            #expect(String(decoding: sql, as: UTF8.self).contains("CREATE ROLE app_owner;"))

            // The superuser exists on both sides: planned out, it is left as it is on the target.
            let targetConnection = try PostgresConnection.connect(try target.parameters())
            let plan = GlobalsScript.plan(String(decoding: sql, as: UTF8.self), existingRoles: try targetConnection.listRoles(),
                                          existingTablespaces: try targetConnection.listTablespaces())
            #expect(plan.keptRoles == ["postgres"])
            #expect(plan.createdRoles == ["app_owner"])
            let restore = try programs.startRestoreGlobals(into: try target.parameters())
            try Array(plan.script.utf8).withUnsafeBytes { try restore.writeStdin($0) }
            restore.closeStdin()
            #expect(try restore.wait().isSuccess, "psql: \(restore.stderrText)")
            #expect(try target.psql("select rolname from pg_roles where rolname = 'app_owner'") == "app_owner")
            // The role's password came along.
            let appParameters = try PostgresConnectionParameters(
                conninfo: "host=127.0.0.1 port=\(target.port) user=app_owner dbname=postgres password=app-pw-1")
            #expect(try PostgresConnection.connect(appParameters).query("select current_user") == [["app_owner"]])
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func clientProgramsAreCheckedAgainstTheServer() async throws {
        try await offThePool {
            let missing = #expect(throws: LifeboatError.self) {
                try PostgresClientPrograms(binDir: "/nonexistent/bin", serverMajorVersion: 15)
            }
            #expect(missing?.code == .configuration)
            #expect(missing?.message.contains("'pg_dump'") == true)
            #expect(missing?.message.contains("/nonexistent/bin") == true)

            let binDir = "/usr/lib/postgresql/15/bin"
            let tooOld = #expect(throws: LifeboatError.self) {
                try PostgresClientPrograms(binDir: binDir, serverMajorVersion: 99)
            }
            #expect(tooOld?.code == .postgres)
            #expect(tooOld?.message.contains("older than the PostgreSQL server (version 99)") == true)
            #expect(tooOld?.hint?.contains("postgresql-client-99") == true)

            let programs = try PostgresClientPrograms(binDir: binDir, serverMajorVersion: 15)
            #expect(programs.pgDumpMajorVersion == 15)
            #expect(programs.path(.pgRestore) == "\(binDir)/pg_restore")
            #expect(try programs.version(.psql).hasPrefix("psql (PostgreSQL) 15."))
        }
    }

    // MARK: Child processes

    @Test(.timeLimit(.minutes(10)))
    func childExitStatusAndStreams() async throws {
        try await offThePool {
            let failed = try ChildProcess.run("/bin/sh", ["-c", "echo out; echo 'it broke' >&2; exit 3"])
            #expect(failed.status == .exited(3))
            #expect(failed.status.description == "exited with status 3")
            #expect(!failed.status.isSuccess)
            #expect(failed.stdout == "out\n")
            #expect(failed.stderr == "it broke\n")

            let env = try ChildProcess.run("/bin/sh", ["-c", "echo \"$LIFEBOAT_TEST_VALUE\"; pwd"],
                                           environment: ["LIFEBOAT_TEST_VALUE": "v 1"], workingDirectory: "/tmp")
            #expect(env.status.isSuccess)
            #expect(env.stdout == "v 1\n/tmp\n")

            // Children get the default SIGPIPE back: `yes` dies quietly when `head` has enough.
            let pipeline = try ChildProcess.run("/bin/sh", ["-c", "yes | head -c 6"])
            #expect(pipeline.status.isSuccess)
            #expect(pipeline.stdout == "y\ny\ny\n")
            #expect(pipeline.stderr == "")

            let cat = try ChildProcess.spawn("/bin/cat", [], stdin: .pipe, stdout: .pipe)
            try Array("hello through a pipe".utf8).withUnsafeBytes { try cat.writeStdin($0) }
            cat.closeStdin()
            var echoed: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 1024)
            while case let count = try chunk.withUnsafeMutableBytes({ try cat.readStdout(into: $0) }), count > 0 {
                echoed += chunk[0..<count]
            }
            #expect(String(decoding: echoed, as: UTF8.self) == "hello through a pipe")
            #expect(try cat.wait() == .exited(0))
            #expect(try cat.wait() == .exited(0))
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func childSignalsAndStartFailures() async throws {
        try await offThePool {
            let sleeper = try ChildProcess.spawn("/bin/sleep", ["30"], stdout: .null)
            sleeper.terminate()
            let status = try sleeper.wait()
            #expect(status == .signaled(SIGTERM))
            #expect(status.description == "was killed by signal 15")
            sleeper.terminate()  // after reaping: does nothing

            let killed = try ChildProcess.run("/bin/sh", ["-c", "kill -9 $$"])
            #expect(killed.status == .signaled(9))
            #expect(killed.status.description == "was killed by signal 9")

            let missing = #expect(throws: LifeboatError.self) {
                try ChildProcess.spawn("/nonexistent/program", ["--flag"], displayArguments: ["--redacted"])
            }
            #expect(missing?.code == .process)
            #expect(missing?.message.contains("'/nonexistent/program --redacted'") == true)
            #expect(missing?.message.contains("--flag") == false)
            #expect(missing?.message.contains("No such file or directory") == true)

            let relative = #expect(throws: LifeboatError.self) {
                try ChildProcess.spawn("sh", ["-c", "true"])
            }
            #expect(relative?.message.contains("absolute path") == true)
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func childStderrIsBoundedAndExplainsABrokenPipe() async throws {
        try await offThePool {
            // 2000 lines of about 45 bytes: more than the 64 KiB kept; the child never blocks.
            let noisy = try ChildProcess.run("/bin/sh", ["-c", "i=0; while [ $i -lt 2000 ]; do echo \"noise line $i .......................\" >&2; i=$((i+1)); done"])
            #expect(noisy.status.isSuccess)
            #expect(noisy.stderr.utf8.count <= ChildProcess.stderrLimit + 3)
            #expect(noisy.stderr.utf8.count > ChildProcess.stderrLimit - 100)
            #expect(noisy.stderr.hasPrefix("…"))
            #expect(noisy.stderr.hasSuffix("noise line 1999 .......................\n"))

            // A child that exits without reading its input: writing fails with its stderr.
            let quitter = try ChildProcess.spawn("/bin/sh", ["-c", "echo 'cannot read that input' >&2; exit 2"], stdin: .pipe, stdout: .null)
            let bytes = [UInt8](repeating: 0x41, count: 1 << 20)
            let error = #expect(throws: LifeboatError.self) {
                try bytes.withUnsafeBytes { try quitter.writeStdin($0) }
            }
            #expect(error?.code == .process)
            #expect(error?.message.contains("stopped reading its input") == true)
            #expect(error?.message.contains("cannot read that input") == true)
            #expect(try quitter.wait() == .exited(2))
        }
    }
}
