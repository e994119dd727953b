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
        #expect(BackupID.make(startedAt: date, existing: []) == "20261118T020000Z")
        #expect(BackupID.make(startedAt: date, existing: ["20261118T020000Z"]) == "20261118T020000Z-2")
        #expect(BackupID.make(startedAt: date, existing: ["20261118T020000Z", "20261118T020000Z-2"]) == "20261118T020000Z-3")
        #expect(BackupID.isValid("20261118T020000Z-2"))
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

@Suite struct GlobalsScriptEditing {
    let script = """
        --
        -- Roles
        --

        CREATE ROLE hub_app;
        ALTER ROLE hub_app WITH NOSUPERUSER INHERIT LOGIN PASSWORD 'SCRAM-SHA-256$4096:a';
        CREATE ROLE postgres;
        ALTER ROLE postgres WITH SUPERUSER INHERIT LOGIN PASSWORD 'SCRAM-SHA-256$4096:b';
        ALTER ROLE postgres SET search_path TO app;
        CREATE ROLE "Backup User";
        ALTER ROLE "Backup User" WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:c';
        GRANT hub_app TO postgres GRANTED BY postgres;
        """

    @Test func theConnectingRoleIsLeftAsItIsOnTheTarget() {
        let (edited, removed) = GlobalsScript.removingStatements(for: "postgres", from: script)
        #expect(removed == 3)
        #expect(!edited.contains("ALTER ROLE postgres"))
        #expect(!edited.contains("CREATE ROLE postgres;"))
        #expect(edited.contains("ALTER ROLE hub_app WITH"))
        #expect(edited.contains("GRANT hub_app TO postgres GRANTED BY postgres;"))
    }

    @Test func quotedRoleNamesAreMatched() {
        let (edited, removed) = GlobalsScript.removingStatements(for: "Backup User", from: script)
        #expect(removed == 2)
        #expect(!edited.contains("\"Backup User\""))
        #expect(edited.contains("ALTER ROLE postgres WITH"))
    }

    @Test(arguments: [("postgres", "postgres"), ("hub_app2", "hub_app2"), ("Backup", "\"Backup\""), ("a\"b", "\"a\"\"b\""), ("1x", "\"1x\"")])
    func identifiersAreQuotedAsPostgresQuotesThem(name: String, quoted: String) {
        #expect(GlobalsScript.quotedIdentifier(name) == quoted)
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
}
