import Foundation
import Testing
@testable import LifeboatCore

@Suite struct ValueParsing {
    @Test(arguments: [
        ("30d", 30 * 86400), ("10m", 600), ("1h30m", 5400), ("90s", 90), ("2w", 14 * 86400),
        ("1d12h", 129_600), ("0s", 0),
    ] as [(String, Int64)])
    func durationsParse(text: String, seconds: Int64) {
        #expect(ConfigDuration(parsing: text)?.seconds == seconds)
    }

    @Test(arguments: ["", "30", "d", "30 d", "1m1h", "1h1h", "-5m", "1.5h", "99999999999999999999d"])
    func invalidDurationsAreRejected(text: String) {
        #expect(ConfigDuration(parsing: text) == nil)
    }

    @Test(arguments: ["30d", "1h30m", "0s", "1d12h", "45s"])
    func durationsPrintInTheirShortestForm(text: String) {
        #expect(ConfigDuration(parsing: text)?.description == text)
    }

    @Test(arguments: [
        ("plain", [:], "plain"),
        ("${A}", ["A": "1"], "1"),
        ("x=${A} y=${B}", ["A": "1", "B": "two"], "x=1 y=two"),
        ("${A:-fallback}", [:], "fallback"),
        ("${A:-fallback}", ["A": ""], "fallback"),
        ("${A:-fallback}", ["A": "set"], "set"),
        ("cost: $$5", [:], "cost: $5"),
        ("$HOME stays", [:], "$HOME stays"),
    ] as [(String, [String: String], String)])
    func interpolationExpands(text: String, environment: [String: String], expected: String) throws {
        #expect(try Interpolation.expand(text, environment: environment) == expected)
    }

    @Test func interpolationFailures() {
        #expect(throws: Interpolation.Failure.undefined("NOPE")) { try Interpolation.expand("${NOPE}", environment: [:]) }
        #expect(throws: Interpolation.Failure.unterminated) { try Interpolation.expand("${OPEN", environment: [:]) }
        #expect(throws: Interpolation.Failure.invalidName("1X")) { try Interpolation.expand("${1X}", environment: [:]) }
    }

    @Test(arguments: [
        ("0 2 * * *", Set([0]), Set([2]), 31, 7),
        ("*/15 * * * *", Set([0, 15, 30, 45]), Set(0...23), 31, 7),
        ("30 2 1,15 * mon-fri", Set([30]), Set([2]), 2, 5),
        ("@daily", Set([0]), Set([0]), 31, 7),
        ("0 0 * jan,jul sun", Set([0]), Set([0]), 31, 1),
    ])
    func cronExpressionsParse(text: String, minutes: Set<Int>, hours: Set<Int>, days: Int, weekdays: Int) throws {
        let cron = try CronExpression(parsing: text)
        #expect(cron.minutes == minutes)
        #expect(cron.hours == hours)
        #expect(cron.daysOfMonth.count == days)
        #expect(cron.daysOfWeek.count == weekdays)
    }

    @Test(arguments: ["0 2 * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * funday", "*/0 * * * *", "5-1 * * * *"])
    func invalidCronExpressionsAreRejected(text: String) {
        #expect(throws: CronExpression.ParseError.self) { try CronExpression(parsing: text) }
    }

    @Test func backupIDsSortInTimeOrderAndAvoidCollisions() {
        let date = Date(timeIntervalSince1970: 1_794_967_200)  // 2026-11-18T02:00:00Z
        #expect(BackupID.format(date) == "20261118T020000Z")
        #expect(BackupID.make(startedAt: date) { 0 } == "20261118T020000Z-000000")
        #expect(BackupID.make(startedAt: date) { UInt64.max } == "20261118T020000Z-00vvvv")
        // Within one second, the millisecond orders them, whatever the random bits.
        let later = BackupID.make(startedAt: date.addingTimeInterval(0.002)) { 0 }
        let earlier = BackupID.make(startedAt: date.addingTimeInterval(0.001)) { UInt64.max }
        #expect(earlier < later)
        #expect(BackupID.make(startedAt: date.addingTimeInterval(0.999)) { 0 }.hasPrefix("20261118T020000Z-v"))
        // Written by earlier versions: still valid.
        #expect(BackupID.isValid("20261118T020000Z"))
        #expect(BackupID.isValid("20261118T020000Z-2"))
        #expect(BackupID.isValid(BackupID.make(startedAt: date) { UInt64.random(in: 0...UInt64.max) }))
        #expect(!BackupID.isValid("20261118T020000Z-../x"))
        #expect(!BackupID.isValid("../etc"))
        #expect(!BackupID.isValid("latest"))
    }

    @Test(arguments: [("shedule", "schedule"), ("retension", "retention"), ("databse", "databases"), ("shcedule", "schedule"), ("soruce", "source")])
    func typosFindTheirKey(typo: String, key: String) {
        #expect(closestMatch(to: typo, among: ["policy", "source", "schedule", "repository", "retention", "databases"]) == key)
    }

    @Test func unrelatedWordsGetNoSuggestion() {
        #expect(closestMatch(to: "banana", among: ["policy", "source", "schedule"]) == nil)
    }

    @Test func secretsAreRedacted() {
        Secrets.register("s3cr3t-password")
        #expect(Secrets.redact("FATAL: password s3cr3t-password rejected") == "FATAL: password ******** rejected")
    }
}

@Suite struct ExclusionPatterns {
    @Test(arguments: [
        (".git", ".git", true), (".git", "src/.git/config", true), (".git", "src/.gitignore", false),
        (".build*", ".build-archive/x", true), ("*.tmp", "a/b/c.tmp", true), ("*.tmp", "a/b/c.tmpl", false),
        ("logs/*.gz", "logs/a.gz", true), ("logs/*.gz", "x/logs/a.gz", false), ("logs", "logs/a.gz", true),
        ("/data/cache", "data/cache/blob", true), ("a?c", "abc", true), ("a?c", "abbc", false),
    ])
    func patternsMatchComponentsOrRootedPaths(pattern: String, path: String, excluded: Bool) {
        #expect(PathPatterns([pattern]).excludes(path) == excluded)
    }
}

@Suite struct GlobalsScriptPlanning {
    /// What pg_dumpall 15 writes for roles, memberships, settings, comments and tablespaces.
    let script = """
        --
        -- PostgreSQL database cluster dump
        --

        \\restrict MVJmZOlk

        SET default_transaction_read_only = off;

        --
        -- Roles
        --

        CREATE ROLE "Backup User";
        ALTER ROLE "Backup User" WITH NOSUPERUSER INHERIT LOGIN PASSWORD 'SCRAM-SHA-256$4096:c';
        CREATE ROLE hub_app;
        ALTER ROLE hub_app WITH NOSUPERUSER INHERIT CREATEDB LOGIN PASSWORD 'SCRAM-SHA-256$4096:a;b';
        COMMENT ON ROLE hub_app IS 'the app; with a
        newline';
        CREATE ROLE postgres;
        ALTER ROLE postgres WITH SUPERUSER INHERIT LOGIN PASSWORD 'SCRAM-SHA-256$4096:b';
        ALTER ROLE hub_app SET search_path TO 'public';

        --
        -- Tablespaces
        --

        CREATE TABLESPACE fast OWNER postgres LOCATION '/srv/fast';

        --
        -- Role memberships
        --

        GRANT hub_app TO "Backup User" GRANTED BY postgres;
        GRANT "Backup User" TO postgres GRANTED BY postgres;

        \\unrestrict MVJmZOlk
        """

    @Test func rolesThatExistOnTheTargetAreLeftExactlyAsTheyAre() {
        let plan = GlobalsScript.plan(script, existingRoles: ["postgres", "hub_app"], existingTablespaces: ["pg_default"])
        #expect(plan.keptRoles == ["hub_app", "postgres"])
        #expect(plan.createdRoles == ["Backup User"])
        // Nothing about hub_app or postgres: no password, attribute, comment, setting or membership.
        #expect(!plan.script.contains("ALTER ROLE hub_app"))
        #expect(!plan.script.contains("COMMENT ON ROLE hub_app"))
        #expect(!plan.script.contains("ALTER ROLE postgres"))
        #expect(!plan.script.contains("TO postgres GRANTED"))
        // The new role is created whole, with its membership in an existing role.
        #expect(plan.script.contains("CREATE ROLE \"Backup User\";"))
        #expect(plan.script.contains("ALTER ROLE \"Backup User\" WITH"))
        #expect(plan.script.contains("GRANT hub_app TO \"Backup User\" GRANTED BY postgres;"))
        #expect(plan.createdTablespaces == ["fast"])
        #expect(plan.script.contains("CREATE TABLESPACE fast"))
        #expect(plan.script.contains("\\restrict MVJmZOlk"))
        #expect(plan.script.contains("SET default_transaction_read_only = off;"))
    }

    @Test func onAnEmptyServerEverythingButTheTargetsOwnRolesIsCreated() {
        let plan = GlobalsScript.plan(script, existingRoles: ["postgres"], existingTablespaces: [])
        #expect(plan.createdRoles == ["Backup User", "hub_app"])
        #expect(plan.keptRoles == ["postgres"])
        #expect(plan.script.contains("COMMENT ON ROLE hub_app IS 'the app; with a\nnewline';"))
    }

    @Test func existingTablespacesAreKept() {
        let plan = GlobalsScript.plan(script, existingRoles: ["postgres"], existingTablespaces: ["fast"])
        #expect(plan.keptTablespaces == ["fast"])
        #expect(!plan.script.contains("CREATE TABLESPACE"))
    }

    @Test func statementsSplitOutsideQuotesOnlyAndLoseNothing() {
        let statements = GlobalsScript.split(script)
        #expect(statements.joined() == script)
        #expect(statements.contains { $0.hasSuffix("'the app; with a\nnewline';") })
    }
}

@Suite struct RetriesAndCredentialFiles {
    @Test(arguments: [(1, 0.25), (2, 0.5), (3, 1.0), (6, 8.0), (7, 16.0), (8, 20.0), (40, 20.0)])
    func backoffDoublesUpToTheCap(attempt: Int, ceiling: Double) {
        let policy = RetryPolicy(maxAttempts: 5, baseDelay: 0.25, maxDelay: 20)
        #expect(policy.delayCeiling(afterAttempt: attempt) == ceiling)
        // Full jitter: the delay is drawn from zero to the ceiling.
        #expect(policy.delay(afterAttempt: attempt) { $0.upperBound } == ceiling)
        #expect(policy.delay(afterAttempt: attempt) { $0.lowerBound } == 0)
    }

    @Test func sharedCredentialsFilesAreParsed() {
        let text = """
            # comment
            [default]
            aws_access_key_id = AKIADEFAULT
            aws_secret_access_key=secret/with+chars=
            [profile backup]
            aws_access_key_id = AKIABACKUP
            ; another comment
            aws_session_token = token
            """
        let profiles = AWSSharedConfigFile.parse(text)
        #expect(profiles["default"]?["aws_access_key_id"] == "AKIADEFAULT")
        #expect(profiles["default"]?["aws_secret_access_key"] == "secret/with+chars=")
        #expect(profiles["backup"]?["aws_session_token"] == "token")
    }
}

@Suite struct ByteCounts {
    @Test(arguments: [(Int64(0), "0 B"), (812, "812 B"), (1024, "1.0 KiB"), (9_728, "9.5 KiB"), (1_288_490_189, "1.2 GiB"),
                      (1023 * 1024, "1023.0 KiB"), (1_048_575, "1024.0 KiB")] as [(Int64, String)])
    func bytesReadAsPeopleReadThem(count: Int64, text: String) {
        #expect(formatBytes(count) == text)
    }

    @Test(arguments: [("0", Int64(0)), ("4096", 4096), ("512B", 512), ("64KiB", 65_536), ("128MiB", 134_217_728),
                      ("128 MiB", 134_217_728), ("1G", 1_073_741_824), ("2GiB", 2_147_483_648), ("500MB", 500_000_000),
                      ("1TB", 1_000_000_000_000), ("3T", 3 << 40)] as [(String, Int64)])
    func sizesAsConfigurationWritesThem(text: String, count: Int64) {
        #expect(parseByteCount(text) == count)
    }

    @Test(arguments: ["", "MiB", "-1MiB", "1.5GiB", "12 parsecs", "1mib", "9223372036854775807K", "1 2MiB", "0x10"])
    func whatIsNotASizeIsRefused(text: String) {
        #expect(parseByteCount(text) == nil)
    }
}
