import Testing
@testable import LifeboatCore
@testable import LifeboatEngine

/// Parses files given inline, with every source kind Lifeboat has.
func load(
    main: String? = nil, policies: [String: String] = [:], runbooks: [String: String] = [:],
    environment: [String: String] = [:]
) -> Configuration {
    ConfigurationParser.parse(
        directory: "/etc/lifeboat",
        main: main.map { ConfigFile(name: "lifeboat.yaml", text: $0) },
        policies: policies.sorted { $0.key < $1.key }.map { ConfigFile(name: "policies/\($0.key)", text: $0.value) },
        runbooks: runbooks.sorted { $0.key < $1.key }.map { ConfigFile(name: "runbooks/\($0.key)", text: $0.value) },
        sources: SourceKinds.parsers, environment: environment)
}

/// The configuration when it has no problem at all (as `check` requires), or every problem.
func parse(
    main: String? = nil, policies: [String: String] = [:], runbooks: [String: String] = [:],
    environment: [String: String] = [:]
) -> Result<Configuration, LifeboatErrors> {
    let configuration = load(main: main, policies: policies, runbooks: runbooks, environment: environment)
    if configuration.problems.isEmpty { return .success(configuration) }
    return .failure(LifeboatErrors(configuration.problems.map(\.error)))
}

func errors(_ result: Result<Configuration, LifeboatErrors>) -> [String] {
    switch result {
    case .success: return []
    case .failure(let e): return e.errors.map(\.message)
    }
}

let validPostgresPolicy = """
    policy: hub-postgres
    source:
      postgres:
        conninfo: "host=db port=5432 user=backup dbname=postgres password=${PGPASS}"
        mode: logical
        databases: [mcphub, mcp_registry]
    schedule: { cron: "0 2 * * *", timezone: UTC, jitter: 10m }
    repository: offsite
    retention: { recovery_window: 30d }
    """

let validMain = """
    repositories:
      local: { path: /var/backups/lifeboat }
      offsite:
        s3: { endpoint: "https://s3.eu-central-1.amazonaws.com", region: eu-central-1, bucket: acme-dr, prefix: lifeboat }
    state_dir: /var/lib/lifeboat
    listen: 127.0.0.1:9187
    """

@Suite struct ConfigurationParsing {
    /// `checksum` is a connection key: an S3 repository and a mirror's source take it alike
    /// (the mirror's restores into buckets on that endpoint use it), CRC-32C when absent.
    @Test func theUploadChecksumIsReadWhereverAnS3EndpointIsConfigured() throws {
        let main = """
            repositories:
              plain: { s3: { endpoint: "http://s3.internal:9000", bucket: a } }
              old: { s3: { endpoint: "http://ceph.internal:7480", bucket: b, checksum: md5 } }
            """
        let mirror = "policy: buckets\nsource:\n  s3:\n    endpoint: http://ceph.internal:7480\n    checksum: sha256\n    buckets: [x]\n"
        let configuration = try parse(main: main, policies: ["buckets.yaml": mirror]).get()
        let checksums = configuration.repositories.compactMap { repository -> String? in
            if case .s3(let s3) = repository.kind { return "\(repository.name)=\(s3.checksum)" }
            return nil
        }
        #expect(checksums == ["plain=crc32c", "old=md5"])
        let source = try #require(configuration.policies.first?.source as? S3MirrorConfiguration)
        #expect(source.connection.checksum == "sha256")

        let wrong = errors(parse(main: main, policies: ["buckets.yaml": mirror.replacingOccurrences(of: "sha256", with: "crc64")]))
        #expect(wrong == ["policies/buckets.yaml:5:15: 'crc64' is not a valid value for 'source.s3.checksum' (expected 'crc32c' or 'sha256' or 'md5')"], "\(wrong)")
    }

    @Test func parsesAWholeDirectory() throws {
        let configuration = try parse(
            main: validMain,
            policies: [
                "hub-postgres.yaml": validPostgresPolicy,
                "etc.yaml": "policy: etc\nsource: { files: { path: conf } }\ncompression: { algorithm: none }\n",
            ],
            runbooks: ["platform-recovery.yaml": """
                runbook: platform-recovery
                objectives: { rto: 30m, rpo: 1h }
                steps:
                  - restore: hub-postgres
                    target: { conninfo: "host=localhost dbname=postgres", time: latest }
                  - run: [systemctl, restart, hub-web]
                  - health:
                      - http: { url: "http://localhost:8080/health", status: 200, json: { status: healthy } }
                      - postgres: { conninfo: "host=localhost dbname=mcphub" }
                    within: 5m
                  - manual: Re-submit the jobs that were in flight.
                """],
            environment: ["PGPASS": "hunter22"]
        ).get()

        #expect(configuration.repositories.map(\.name) == ["local", "offsite", "default"])
        #expect(configuration.repositories[0].kind == .local(path: "/var/backups/lifeboat"))
        guard case .s3(let s3) = configuration.repositories[1].kind else {
            Issue.record("offsite is not an S3 repository")
            return
        }
        #expect(s3.bucket == "acme-dr")
        #expect(s3.prefix == "lifeboat/")
        #expect(configuration.repositories[2].kind == .local(path: "/etc/lifeboat/.lifeboat/repository"))

        #expect(configuration.policies.map(\.name) == ["etc", "hub-postgres"])
        let hub = try configuration.policy(named: "hub-postgres")
        let pg = try #require(hub.source as? PostgresConfiguration)
        #expect(pg.conninfo == "host=db port=5432 user=backup dbname=postgres password=hunter22")
        #expect(pg.databases == ["mcphub", "mcp_registry"])
        #expect(pg.globals)
        #expect(hub.schedule?.cron.hours == [2])
        #expect(hub.schedule?.jitter == ConfigDuration(seconds: 600))
        #expect(hub.retention.recoveryWindow == ConfigDuration(seconds: 30 * 86400))
        #expect(try configuration.repository(for: hub).name == "offsite")

        let etc = try configuration.policy(named: "etc")
        #expect(etc.compression == .none)
        let files = try #require(etc.source as? FilesConfiguration)
        #expect(files.path == "/etc/lifeboat/conf")
        #expect(try configuration.repository(for: etc).name == "default")

        let runbook = try #require(configuration.runbooks.first)
        #expect(runbook.name == "platform-recovery")
        #expect(runbook.objectives == Objectives(rto: ConfigDuration(seconds: 1800), rpo: ConfigDuration(seconds: 3600)))
        #expect(runbook.steps.count == 4)
    }

    @Test func aDirectoryWithoutLifeboatYamlUsesTheBuiltinRepository() throws {
        let configuration = try parse(policies: ["etc.yaml": "policy: etc\nsource: { files: { path: /etc/app } }\n"]).get()
        #expect(try configuration.repository(for: configuration.policy(named: "etc")).kind
            == .local(path: "/etc/lifeboat/.lifeboat/repository"))
    }

    @Test func malformedYamlNamesFileLineAndColumn() {
        let messages = errors(parse(policies: ["bad.yaml": "policy: x\nsource: { files: { path: /a }\nschedule: 1\n"]))
        #expect(messages.count == 1)
        #expect(messages.first?.hasPrefix("policies/bad.yaml:") == true)
        #expect(messages.first?.contains("malformed YAML") == true)
        // The location is line:column, both numbers.
        let location = messages.first?.split(separator: ":").dropFirst().prefix(2).map { Int($0) != nil }
        #expect(location == [true, true])
    }

    @Test func unknownKeyIsReportedWithASuggestion() {
        let policy = """
            policy: hub-postgres
            source:
              postgres: { mode: logical, conninfo: "host=db" }
            shedule: { cron: "0 2 * * *" }
            """
        #expect(errors(parse(policies: ["hub-postgres.yaml": policy]))
            == ["policies/hub-postgres.yaml:4:1: unknown key 'shedule' (did you mean 'schedule'?)"])
    }

    @Test func unknownNestedKeyNamesItsPath() {
        let policy = "policy: p\nsource:\n  postgres: { mode: logical, conninfo: \"host=db\", databse: [a] }\n"
        #expect(errors(parse(policies: ["p.yaml": policy]))
            == ["policies/p.yaml:3:51: unknown key 'databse' in 'source.postgres' (did you mean 'databases'?)"])
    }

    @Test(arguments: [
        ("policy: p\nsource: { postgres: { mode: logical, conninfo: host=db, databases: mcphub } }\n", "policies/p.yaml:2:68: 'source.postgres.databases' must be a list, not a scalar"),
        ("policy: p\nsource: [files]\n", "policies/p.yaml:2:9: 'source' must be a mapping (key: value), not a list"),
        ("policy: p\nsource: { files: { path: /a } }\ncompression: { level: high }\n", "policies/p.yaml:3:23: 'compression.level' must be an integer, not 'high'"),
        ("policy: p\nsource: { files: { path: /a } }\ncompression: { level: 40 }\n", "policies/p.yaml:3:23: 'compression.level' must be between 1 and 19, not 40"),
        ("policy: p\nsource: { files: { path: /a } }\ncompression: { threads: all }\n", "policies/p.yaml:3:25: 'compression.threads' must be an integer, not 'all'"),
        ("policy: p\nsource: { files: { path: /a } }\ncompression: { threads: -1 }\n", "policies/p.yaml:3:25: 'compression.threads' must be between 0 and 64, not -1"),
        ("policy: p\nsource: { files: { path: /a } }\ncompression: { level: 3, threads: 65 }\n", "policies/p.yaml:3:35: 'compression.threads' must be between 0 and 64, not 65"),
        ("policy: p\nsource: { postgres: { mode: logical, conninfo: host=db, globals: maybe } }\n", "policies/p.yaml:2:66: 'source.postgres.globals' must be true or false, not 'maybe'"),
    ])
    func wrongTypesAreReported(yaml: String, expected: String) {
        #expect(errors(parse(policies: ["p.yaml": yaml])) == [expected])
    }

    @Test func compressionThreadsAreParsed() throws {
        let configuration = try parse(policies: [
            "two.yaml": "policy: two\nsource: { files: { path: /a } }\ncompression: { algorithm: zstd, level: 5, threads: 2 }\n",
            "auto.yaml": "policy: auto\nsource: { files: { path: /a } }\ncompression: { threads: 0 }\n",
            "plain.yaml": "policy: plain\nsource: { files: { path: /a } }\n",
        ]).get()
        let two = try configuration.policy(named: "two")
        #expect(two.compression == .zstd)
        #expect(two.compressionLevel == 5)
        #expect(two.compressionThreads == 2)
        #expect(try configuration.policy(named: "auto").compressionThreads == 0)
        #expect(try configuration.policy(named: "plain").compressionThreads == 0)
    }

    @Test func everyRetentionRuleIsRead() throws {
        let policy = """
            policy: p
            source: { files: { path: /a } }
            retention:
              keep_last: 3
              keep_hourly: 24
              keep_daily: 7
              keep_weekly: 4
              keep_monthly: 12
              keep_yearly: 3
              keep_within: 2d
              keep_within_hourly: 1d
              keep_within_daily: 30d
              keep_within_weekly: 8w
              keep_within_monthly: 365d
              keep_within_yearly: 3650d
              recovery_window: 30d
            """
        let retention = try parse(policies: ["p.yaml": policy]).get().policy(named: "p").retention
        #expect(retention == Retention(
            recoveryWindow: ConfigDuration(parsing: "30d"), keepWithin: ConfigDuration(parsing: "2d"), keepLast: 3, keepHourly: 24,
            keepDaily: 7, keepWeekly: 4, keepMonthly: 12, keepYearly: 3, keepWithinHourly: ConfigDuration(parsing: "1d"),
            keepWithinDaily: ConfigDuration(parsing: "30d"), keepWithinWeekly: ConfigDuration(parsing: "8w"),
            keepWithinMonthly: ConfigDuration(parsing: "365d"), keepWithinYearly: ConfigDuration(parsing: "3650d")))
        #expect(retention.rules.first == "recovery_window: 30d" && retention.rules.count == 13)
        #expect(try parse(policies: ["q.yaml": "policy: q\nsource: { files: { path: /a } }\n"]).get().policy(named: "q").retention.isEmpty)
    }

    @Test func badDurationIsReported() {
        let policy = "policy: p\nsource: { files: { path: /a } }\nretention: { keep_within: 30 days }\n"
        let messages = errors(parse(policies: ["p.yaml": policy]))
        #expect(messages == ["policies/p.yaml:3:27: '30 days' is not a valid duration for 'retention.keep_within'"])
    }

    @Test func missingRequiredKeysAreReported() {
        let messages = errors(parse(policies: ["p.yaml": "policy: p\nretention: { keep_last: 3 }\n"]))
        #expect(messages == ["policies/p.yaml:1:1: missing required key 'source'"])
    }

    @Test func unknownRepositoryIsReported() {
        let policy = "policy: p\nsource: { files: { path: /a } }\nrepository: ofsite\n"
        let messages = errors(parse(main: validMain, policies: ["p.yaml": policy]))
        #expect(messages == ["policies/p.yaml:3:13: unknown repository 'ofsite' (did you mean 'offsite'?)"])
    }

    @Test func runbookRestoringAnUnknownPolicyIsReported() {
        let runbook = "runbook: r\nsteps:\n  - restore: hub-postgress\n    target: { conninfo: host=db }\n"
        let messages = errors(parse(policies: ["hub-postgres.yaml": validPostgresPolicy.replacingOccurrences(of: "repository: offsite\n", with: "")],
                                    runbooks: ["r.yaml": runbook], environment: ["PGPASS": "x"]))
        #expect(messages == ["runbooks/r.yaml:3:14: runbook step restores unknown policy 'hub-postgress' (did you mean 'hub-postgres'?)"])
    }

    @Test func everyErrorInEveryFileIsReported() {
        let messages = errors(parse(
            main: "repositories: { local: { path: /x, bucket: b } }\n",
            policies: [
                "a.yaml": "policy: a\nsource: { files: { path: /a } }\nschedule: { cron: \"61 * * * *\" }\n",
                "b.yaml": "policy: b\nsource: { files: {} }\nretention: { keep_within: soon }\n",
            ]))
        #expect(messages.count == 4)
        #expect(messages[0].hasPrefix("lifeboat.yaml:1:36: unknown key 'bucket' in 'repositories.local'"))
        #expect(messages[1].hasPrefix("policies/a.yaml:3:19: invalid cron expression: 61 is out of range"))
        #expect(messages[2] == "policies/b.yaml:2:18: missing required key 'path' in 'source.files'")
        #expect(messages[3].hasPrefix("policies/b.yaml:3:27: 'soon' is not a valid duration"))
    }

    @Test func undefinedEnvironmentVariableIsReportedWithoutOtherValues() throws {
        let result = parse(policies: ["hub-postgres.yaml": validPostgresPolicy.replacingOccurrences(of: "repository: offsite\n", with: "")])
        let error = try #require(result.failureErrors.first)
        #expect(error.message == "policies/hub-postgres.yaml:4:15: environment variable 'PGPASS' used in 'source.postgres.conninfo' is not set")
        #expect(error.hint?.contains("${PGPASS:-default}") == true)
    }

    @Test func aPolicyNamedOtherwiseThanItsFileIsReported() {
        let messages = errors(parse(policies: ["a.yaml": "policy: same\nsource: { files: { path: /a } }\n"]))
        #expect(messages == ["policies/a.yaml:1:9: policy 'same' is in policies/a.yaml; a policy's file is named after it"])
    }

    /// `locks/`, `keys/` and `lifeboat.json` are the repository's own: a policy of that name
    /// would have its manifests read as locks (and `unlock` remove them) or as key files.
    @Test func aPolicyNamedAfterTheRepositorysOwnObjectsIsRefused() {
        for name in ConfigurationParser.reservedPolicyNames {
            let messages = errors(parse(policies: ["\(name).yaml": "policy: \(name)\nsource: { files: { path: /a } }\n"]))
            #expect(messages.count == 1 && messages[0].hasPrefix("policies/\(name).yaml:1:9: '\(name)' cannot name a policy"), "\(messages)")
        }
        #expect(errors(parse(policies: ["Locks.yaml": "policy: Locks\nsource: { files: { path: /a } }\n"])).isEmpty)
    }

    @Test func twoFilesOfOnePolicyAreReported() {
        let messages = errors(parse(policies: [
            "same.yaml": "policy: same\nsource: { files: { path: /a } }\n",
            "same.yml": "policy: same\nsource: { files: { path: /b } }\n",
        ]))
        #expect(messages == ["policies/same.yml: policy 'same' is already defined in policies/same.yaml"])
    }

    @Test func everyDuplicateKeyIsReportedAtItsOwnLine() {
        let policy = "policy: p\nsource: { files: { path: /a } }\nschedule: { cron: \"0 2 * * *\" }\nretention: { keep_last: 2 }\nschedule: { cron: \"0 3 * * *\" }\nretention: { keep_last: 3 }\n"
        #expect(errors(parse(policies: ["p.yaml": policy])) == [
            "policies/p.yaml:5:1: duplicate key 'schedule' (first at line 3)",
            "policies/p.yaml:6:1: duplicate key 'retention' (first at line 4)",
        ])
    }

    @Test(arguments: [
        ("schedule: { cron: \"0 2 31 2 *\" }", "policies/p.yaml:3:19: cron expression '0 2 31 2 *' never fires"),
        ("retention: { keep_within: 0s }", "policies/p.yaml:3:27: 'retention.keep_within' must be longer than 0s"),
        ("retention: { recovery_window: 0d }", "policies/p.yaml:3:31: 'retention.recovery_window' must be longer than 0s"),
        ("retention: { keep_daily: 0 }", "policies/p.yaml:3:26: 'retention.keep_daily' must be between 1 and 100000, not 0"),
        ("retention: { keep_dayly: 7 }", "policies/p.yaml:3:14: unknown key 'keep_dayly' in 'retention'"),
        ("retention: { keep_within_daily: 0s }", "policies/p.yaml:3:33: 'retention.keep_within_daily' must be longer than 0s"),
        ("schedule: { cron: \"0 * * * *\", jitter: 2h }", "policies/p.yaml:3:40: jitter 2h is not shorter than the shortest interval of '0 * * * *' (1h)"),
    ])
    func schedulesAndRetentionsThatCannotWorkAreReported(line: String, expected: String) {
        let messages = errors(parse(policies: ["p.yaml": "policy: p\nsource: { files: { path: /a } }\n\(line)\n"]))
        #expect(messages.count == 1)
        #expect(messages.first?.hasPrefix(expected) == true, "\(messages)")
    }

    @Test func aProblemInOnePolicyDoesNotStopAnother() throws {
        let configuration = load(
            main: validMain.replacingOccurrences(of: "prefix: lifeboat }", with: "prefix: lifeboat, secret_access_key: \"${AWS_SECRET}\" }"),
            policies: [
                "hub-postgres.yaml": validPostgresPolicy,
                "etc.yaml": "policy: etc\nsource: { files: { path: conf } }\nrepository: local\n",
            ],
            runbooks: ["broken.yaml": "runbook: broken\nsteps: [ { restore: nope } ]\n"])
        // The unset ${PGPASS} blocks hub-postgres, the unset ${AWS_SECRET} its repository, and
        // the runbook is broken twice (an unknown policy, no target): none of it concerns etc.
        let etc = try configuration.policy(named: "etc")
        #expect(etc.name == "etc")
        #expect(configuration.usablePolicies.map(\.name) == ["etc"])
        #expect(configuration.problems(outside: configuration.scopes(forPolicy: "etc")).count == 4)
        #expect(throws: LifeboatErrors.self) { try configuration.policy(named: "hub-postgres") }
        #expect(configuration.problems(blocking: [.repository("offsite")]).count == 1)
    }

    @Test func aBrokenPolicyIsReportedWithItsErrorsNotAsMissing() {
        let configuration = load(policies: ["p.yaml": "policy: p\nsource: { files: { pth: /a } }\n"])
        #expect {
            try configuration.policy(named: "p")
        } throws: { error in
            (error as? LifeboatErrors)?.errors.first?.message.contains("unknown key 'pth'") == true
        }
    }

    @Test func problemsInLifeboatYamlStopEveryCommand() {
        let configuration = load(main: "repositories: { local: { path: /x } }\nlisten: [1]\n",
                                 policies: ["etc.yaml": "policy: etc\nsource: { files: { path: /a } }\n"])
        #expect(throws: LifeboatErrors.self) { try configuration.policy(named: "etc") }
    }

    @Test func aPostgresPolicyWithoutModeTakesPhysicalBaseBackups() throws {
        let configuration = try parse(policies: ["p.yaml": """
            policy: p
            source:
              postgres:
                conninfo: host=db
                checkpoint: fast
                part_size: 256MiB
                wal: { timeout: 2m, push_parallel: 8, prefetch: 0 }
            """]).get()
        let source = try #require(configuration.policies.first?.source as? PostgresConfiguration)
        #expect(source.mode == .physical)
        #expect(source.checkpoint == .fast)
        #expect(source.partSize == 256 << 20)
        #expect(source.wal.timeout == 120 && source.wal.pushParallel == 8 && source.wal.prefetch == 0)
        #expect(source.restoreTargetKeys == ["data_dir"])
    }

    @Test(arguments: [
        ("policy: p\nsource: { postgres: { conninfo: host=db, databases: [a] } }\n",
         "policies/p.yaml:2:53: 'databases' belongs to 'mode: logical', and this policy's mode is 'physical'"),
        ("policy: p\nsource: { postgres: { mode: logical, conninfo: host=db, checkpoint: fast } }\n",
         "policies/p.yaml:2:69: 'checkpoint' belongs to 'mode: physical', and this policy's mode is 'logical'"),
        ("policy: p\nsource: { postgres: { conninfo: host=db, checkpoint: slow } }\n",
         "policies/p.yaml:2:54: 'slow' is not a valid value for 'source.postgres.checkpoint' (expected 'fast' or 'spread')"),
        ("policy: p\nsource: { postgres: { conninfo: host=db, wal: { push_parallel: 0 } } }\n",
         "policies/p.yaml:2:64: 'source.postgres.wal.push_parallel' must be between 1 and 64, not 0"),
        ("policy: p\nsource: { postgres: { conninfo: host=db, part_size: 12 parsecs } }\n",
         "policies/p.yaml:2:53: '12 parsecs' is not a size for 'source.postgres.part_size'"),
        ("policy: p\nsource: { postgres: { conninfo: host=db, part_size: 4KiB } }\n",
         "policies/p.yaml:2:53: 'source.postgres.part_size' must be between 1.0 MiB and 64.0 GiB, not 4KiB"),
        ("policy: p\nsource: { postgres: { mode: logical, conninfo: host=db, part_size: 1GiB } }\n",
         "policies/p.yaml:2:68: 'part_size' belongs to 'mode: physical', and this policy's mode is 'logical'"),
    ])
    func keysOfTheOtherPostgresModeAreReported(yaml: String, expected: String) {
        #expect(errors(parse(policies: ["p.yaml": yaml])) == [expected])
    }

    @Test func missingPolicyIsANotFoundErrorWithSuggestion() throws {
        let configuration = try parse(policies: ["hub-postgres.yaml": "policy: hub-postgres\nsource: { files: { path: /a } }\n"]).get()
        #expect {
            try configuration.policy(named: "hub-postgre")
        } throws: { error in
            guard let error = error as? LifeboatError else { return false }
            return error.code == .notFound && error.exitStatus == 2
                && error.message.contains("no policy named 'hub-postgre'") && error.message.contains("did you mean 'hub-postgres'")
        }
    }
}

extension Result where Failure == LifeboatErrors {
    var failureErrors: [LifeboatError] {
        if case .failure(let e) = self { return e.errors }
        return []
    }
}

@Suite struct ArchiveCommandDescriptions {
    @Test(arguments: [
        ("", "archive_command is empty"),
        ("/usr/local/bin/lifeboat --config /etc/lifeboat wal-push pg %p", "archive_command runs lifeboat wal-push pg"),
        ("'/opt/lb/lifeboat' wal-push other %p", "archive_command pushes WAL to policy 'other', not to 'pg'"),
        ("AWS_SECRET_ACCESS_KEY=hunter2 aws s3 cp %p s3://b/%f", "archive_command runs 'aws', not 'lifeboat wal-push pg %p'"),
        ("cp %p /mnt/archive/%f", "archive_command runs 'cp', not 'lifeboat wal-push pg %p'"),
    ])
    func whatTheCommandRunsIsNamedAndNothingElseOfIt(command: String, expected: String) {
        let text = PostgresPhysicalBackup.describe(archiveCommand: command, policy: "pg")
        #expect(text == expected)
        #expect(!text.contains("hunter2") && !text.contains("/mnt/archive"))
    }
}
