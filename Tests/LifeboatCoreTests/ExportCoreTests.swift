import Foundation
import Testing
@testable import LifeboatCore

private func cron(_ text: String) -> CronExpression {
    try! CronExpression(parsing: text)
}

@Suite struct CronAsOnCalendar {
    @Test(arguments: [
        ("0 2 * * *", "UTC", ["*-*-* 02:00:00 UTC"]),
        ("30 4 * * *", "Europe/Berlin", ["*-*-* 04:30:00 Europe/Berlin"]),
        // Steps: start/step when they run to the end of the field, else a list.
        ("*/15 * * * *", "UTC", ["*-*-* *:00/15:00 UTC"]),
        ("5-59/20 */6 * * *", "UTC", ["*-*-* 00/6:05/20:00 UTC"]),
        ("0-30/10 * * * *", "UTC", ["*-*-* *:00,10,20,30:00 UTC"]),
        // Lists and ranges.
        ("0,30 9-17 * * *", "UTC", ["*-*-* 09..17:00,30:00 UTC"]),
        ("0 8,9,10,20 1-3,15 * *", "UTC", ["*-*-01..03,15 08..10,20:00:00 UTC"]),
        // Names, weekday ranges (systemd's week starts on Monday), Sunday as 0 or 7.
        ("0 3 * jan,jul sun", "UTC", ["Sun *-01,07-* 03:00:00 UTC"]),
        ("0 2 * * mon-fri", "America/New_York", ["Mon..Fri *-*-* 02:00:00 America/New_York"]),
        ("0 2 * * 0,6", "UTC", ["Sat,Sun *-*-* 02:00:00 UTC"]),
        ("0 2 * * 5-7", "UTC", ["Fri..Sun *-*-* 02:00:00 UTC"]),
        ("0 0 1 */3 *", "UTC", ["*-01/3-01 00:00:00 UTC"]),
        // Shorthands.
        ("@daily", "UTC", ["*-*-* 00:00:00 UTC"]),
        ("@hourly", "Europe/Berlin", ["*-*-* *:00:00 Europe/Berlin"]),
        ("@weekly", "UTC", ["Sun *-*-* 00:00:00 UTC"]),
        ("@monthly", "UTC", ["*-*-01 00:00:00 UTC"]),
        ("@yearly", "UTC", ["*-01-01 00:00:00 UTC"]),
        // Both day fields restricted: cron fires on either, so two lines (systemd needs both
        // in one line).
        ("0 0 13 * 5", "UTC", ["Fri *-*-* 00:00:00 UTC", "*-*-13 00:00:00 UTC"]),
        ("*/15 9-17 1,15 * mon", "America/New_York",
         ["Mon *-*-* 09..17:00/15:00 America/New_York", "*-*-01,15 09..17:00/15:00 America/New_York"]),
    ] as [(String, String, [String])])
    func cronBecomesTheseLines(expression: String, timeZone: String, expected: [String]) {
        #expect(cron(expression).onCalendar(timeZone: timeZone) == expected)
    }
}

@Suite struct SystemdUnitNames {
    @Test(arguments: [
        ("hub-postgres", "hub\\x2dpostgres"),
        ("etc_files", "etc_files"),
        ("db.main", "db.main"),
        ("a b", "a\\x20b"),
        ("x/y", "x-y"),
        (".hidden", "\\x2ehidden"),
        ("ümlaut", "\\xc3\\xbcmlaut"),
    ])
    func namesAreEscapedAsSystemdEscapeDoes(name: String, escaped: String) {
        #expect(SystemdExport.escapeUnitName(name) == escaped)
    }

    @Test func execStartArgumentsAreQuotedWhenTheyAreNotPlain() {
        #expect(SystemdExport.commandLine(["/usr/bin/lifeboat", "--config", "/etc/life boat", "backup", "50%$x"])
            == #"/usr/bin/lifeboat --config "/etc/life boat" backup 50%%$$x"#)
        #expect(SystemdExport.quoteArgument(#"a"b\c"#) == #""a\"b\\c""#)
    }

    @Test func exportWritesTheDaemonAndATimerPerScheduledPolicy() throws {
        let configuration = exportConfiguration(
            main: "scheduler: { stop_timeout: 2m, run_timeout: 1h }\n",
            policies: ["hub-postgres.yaml": "policy: hub-postgres\nsource: { test: {} }\nschedule: { cron: '0 0 13 * 5', timezone: Europe/Berlin, jitter: 10m }\n",
                       "adhoc.yaml": "policy: adhoc\nsource: { test: {} }\n"],
            directory: "/etc/lifeboat")
        let result = try SystemdExport.generate(configuration: configuration, options: .init(binary: "/usr/bin/lifeboat", user: "lifeboat"))
        #expect(result.files.map(\.name) == ["lifeboat-scheduler.service", "lifeboat-backup-hub\\x2dpostgres.service",
                                             "lifeboat-backup-hub\\x2dpostgres.timer", "lifeboat-prune.service", "lifeboat-prune.timer"])
        let scheduler = result.files[0].text
        #expect(scheduler.contains("ExecStart=/usr/bin/lifeboat --config /etc/lifeboat schedule\n"))
        #expect(scheduler.contains("TimeoutStopSec=150s\n"))  // stop_timeout 2m + 30 s
        #expect(scheduler.contains("Type=simple\n") && scheduler.contains("KillSignal=SIGTERM\n") && scheduler.contains("Restart=on-failure\n"))
        #expect(scheduler.contains("User=lifeboat\n"))
        #expect(scheduler.contains("ReadWritePaths=-/etc/lifeboat/.lifeboat/state\n"))
        let service = result.files[1].text
        #expect(service.contains("Type=oneshot\n") && service.contains("ExecStart=/usr/bin/lifeboat --config /etc/lifeboat backup hub-postgres\n"))
        #expect(service.contains("TimeoutStartSec=3600s\n"))
        let timer = result.files[2].text
        #expect(timer.contains("OnCalendar=Fri *-*-* 00:00:00 Europe/Berlin\nOnCalendar=*-*-13 00:00:00 Europe/Berlin\n"))
        #expect(timer.contains("Persistent=true\n") && timer.contains("RandomizedDelaySec=600s\n") && timer.contains("FixedRandomDelay=true\n"))
        #expect(result.files[4].text.contains("OnCalendar=*-*-* 04:00:00 UTC\n"))
    }

    @Test func everyUnitNameTooLongIsReportedAtOnce() {
        let long = { (first: String) in first + String(repeating: "-", count: 99) }
        let configuration = exportConfiguration(
            main: "state_dir: /var/lib/lifeboat\n",
            policies: ["\(long("a")).yaml": "policy: \(long("a"))\nsource: { test: {} }\nschedule: { cron: '0 1 * * *' }\n",
                       "\(long("b")).yaml": "policy: \(long("b"))\nsource: { test: {} }\nschedule: { cron: '0 2 * * *' }\n"],
            directory: "/etc/lifeboat")
        #expect(configuration.problems.isEmpty, "\(configuration.problems.map(\.error))")
        let errors = #expect(throws: LifeboatErrors.self) {
            try SystemdExport.generate(configuration: configuration, options: .init(binary: "/usr/bin/lifeboat"))
        }
        let messages = errors?.errors.map(\.message) ?? []
        #expect(messages.count == 2 && messages.allSatisfy { $0.contains("longer than systemd's 255 characters") }, "\(messages)")
    }

    @Test func pathsWithSpacesPercentAndDollarAreWrittenSoSystemdReadsThemBack() throws {
        let configuration = exportConfiguration(
            main: "state_dir: '/var/lib/life boat/50%$x'\n",
            policies: ["db.yaml": "policy: db\nsource: { test: {} }\nschedule: { cron: '0 1 * * *' }\n"],
            directory: "/etc/life boat%")
        let result = try SystemdExport.generate(configuration: configuration, options: .init(binary: "/opt/bin/lifeboat"))
        let scheduler = result.files[0].text
        #expect(scheduler.contains("Description=Lifeboat scheduler: backups by their schedules (/etc/life boat%%)\n"))
        #expect(scheduler.contains("ExecStart=/opt/bin/lifeboat --config \"/etc/life boat%%\" schedule\n"))
        #expect(scheduler.contains("ReadWritePaths=-\"/var/lib/life boat/50%%$x\"\n"))
        #expect(!scheduler.contains("User="))
    }
}

@Suite struct KubernetesManifests {
    @Test(arguments: [
        ("hub-postgres", 40, "hub-postgres"),
        ("DB.Main_2", 40, "db-main-2"),
        ("-x--y-", 40, "x-y"),
    ])
    func namesBecomeDNSLabels(name: String, maximum: Int, expected: String) {
        #expect(KubernetesExport.dnsLabel(name, maximumLength: maximum) == expected)
    }

    @Test func longNamesAreCutWithAHashAndStayDistinct() {
        let a = KubernetesExport.dnsLabel(String(repeating: "a", count: 60) + "1", maximumLength: 36)
        let b = KubernetesExport.dnsLabel(String(repeating: "a", count: 60) + "2", maximumLength: 36)
        #expect(a.count == 36 && b.count == 36 && a != b)
        #expect(KubernetesExport.cronJobName(component: "backup", subject: String(repeating: "x", count: 100)).count == 52)
    }

    @Test(arguments: [
        ("0 2 * * *", "0 2 * * *"),
        ("@daily", "0 0 * * *"),
        ("*/20 9-17 * jan,jul mon-fri", "0,20,40 9-17 * 1,7 1-5"),
        // A step in a day field restricts it: written out, so every cron reads it so.
        ("0 0 */2 * *", "0 0 1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31 * *"),
        ("0 0 * * 7", "0 0 * * 0"),
        ("0 0 13 * */1", "0 0 13 * 0-6"),
    ])
    func cronIsWrittenInNumericFields(expression: String, expected: String) {
        #expect(cron(expression).canonicalText == expected)
    }

    @Test func collidingNamesAreRefused() throws {
        let configuration = exportConfiguration(
            main: "default_repository: offsite\nrepositories: { offsite: { s3: { endpoint: 'https://s3', bucket: b } } }\n",
            policies: ["db.main.yaml": "policy: db.main\nsource: { test: {} }\nschedule: { cron: '0 1 * * *' }\n",
                       "db_main.yaml": "policy: db_main\nsource: { test: {} }\nschedule: { cron: '0 2 * * *' }\n"])
        #expect(configuration.problems.isEmpty, "\(configuration.problems.map(\.error))")
        let error = #expect(throws: LifeboatError.self) {
            try KubernetesExport.generate(configuration: configuration, files: [], options: .init())
        }
        #expect(error?.exitStatus == 2)
        #expect(error?.message.contains("'lifeboat-backup-db-main'") == true)
    }

    @Test func everyCollisionAndUnwritableRepositoryIsReportedAtOnce() {
        let configuration = exportConfiguration(
            main: "default_repository: offsite\nrepositories: { offsite: { s3: { endpoint: 'https://s3', bucket: b } }, inside: { path: /etc/lifeboat/repo } }\n",
            policies: ["db.main.yaml": "policy: db.main\nsource: { test: {} }\nschedule: { cron: '0 1 * * *' }\n",
                       "db_main.yaml": "policy: db_main\nsource: { test: {} }\nschedule: { cron: '0 2 * * *' }\n",
                       "web.a.yaml": "policy: web.a\nsource: { test: {} }\nschedule: { cron: '0 3 * * *' }\n",
                       "web_a.yaml": "policy: web_a\nsource: { test: {} }\nschedule: { cron: '0 4 * * *' }\n",
                       "local.yaml": "policy: local\nrepository: inside\nsource: { test: {} }\nschedule: { cron: '0 5 * * *' }\n"])
        #expect(configuration.problems.isEmpty, "\(configuration.problems.map(\.error))")
        let errors = #expect(throws: LifeboatErrors.self) {
            try KubernetesExport.generate(configuration: configuration, files: [], options: .init())
        }
        let messages = errors?.errors.map(\.message) ?? []
        // Each once: prune, which writes every policy's repository, repeats no policy's error.
        #expect(messages.count == 3, "\(messages)")
        #expect(messages.contains { $0.contains("'lifeboat-backup-db-main'") })
        #expect(messages.contains { $0.contains("'lifeboat-backup-web-a'") })
        #expect(messages.contains { $0.contains("policy 'local' writes to repository 'inside'") })
        #expect(errors?.exitStatus == 2)
    }

    @Test func aLocalRepositoryInsideTheConfigMountIsRefused() {
        let configuration = exportConfiguration(
            main: "state_dir: /var/lib/lifeboat\n",
            policies: ["db.yaml": "policy: db\nsource: { test: {} }\nschedule: { cron: '0 1 * * *' }\n"])
        let error = #expect(throws: LifeboatError.self) {
            try KubernetesExport.generate(configuration: configuration, files: [], options: .init())
        }
        #expect(error?.exitStatus == 2)
        #expect(error?.message.contains("/etc/lifeboat/.lifeboat/repository") == true)
    }

    @Test func secretsStayReferencesAndComeFromTheSecret() throws {
        let main = """
            state_dir: /var/lib/lifeboat
            default_repository: offsite
            repositories:
              offsite:
                s3:
                  endpoint: https://s3.example.com
                  bucket: backups
                  access_key_id: ${S3_KEY}
                  secret_access_key: ${S3_SECRET}   # ${NOT_A_REFERENCE} in a comment
            scheduler: { run_timeout: 2h, catch_up: 30m }

            """
        let policy = "policy: db\nsource: { test: { note: '${DB_NOTE:-none} costs $$5' } }\nschedule: { cron: '30 2 * * 1-5', timezone: Europe/Berlin, jitter: 5m }\n"
        let files = [ConfigFile(name: "lifeboat.yaml", text: main), ConfigFile(name: "policies/db.yaml", text: policy)]
        let configuration = ExportConfiguration.parse(directory: KubernetesExport.configMount, main: files[0], policies: [files[1]],
                                                      runbooks: [], sources: [TestSourceParser()])
        let result = try KubernetesExport.generate(configuration: configuration, files: files,
                                                   options: .init(namespace: "backup", image: "registry/lifeboat:1", secretName: "lifeboat-env"))
        #expect(result.files.map(\.name) == ["configmap-lifeboat.yaml", "cronjob-lifeboat-backup-db.yaml", "cronjob-lifeboat-prune.yaml"])
        let configMap = result.files[0].text
        #expect(configMap.contains("  policies.db.yaml: |\n"))
        #expect(configMap.contains("secret_access_key: ${S3_SECRET}"))
        let cronJob = result.files[1].text
        #expect(cronJob.contains("schedule: \"30 2 * * 1-5\"\n  timeZone: Europe/Berlin\n  concurrencyPolicy: Forbid\n  startingDeadlineSeconds: 1800\n"))
        #expect(cronJob.contains("activeDeadlineSeconds: 7200\n"))
        #expect(cronJob.contains("- name: S3_SECRET\n              valueFrom:\n                secretKeyRef:\n                  name: lifeboat-env\n                  key: S3_SECRET\n"))
        #expect(cronJob.contains("key: DB_NOTE\n                  optional: true\n"))
        #expect(!cronJob.contains("NOT_A_REFERENCE"))
        #expect(cronJob.contains("- \"--config\"\n            - /etc/lifeboat\n            - backup\n            - db\n"))
        #expect(cronJob.contains("- key: policies.db.yaml\n                path: policies/db.yaml\n"))
        #expect(cronJob.contains("lifeboat/jitter-not-applied: \"5m\""))
        #expect(result.notes.contains { $0.contains("jitter") })
    }
}

@Suite struct RunbookSchedule {
    @Test func aRunbookMayHaveASchedule() {
        let configuration = exportConfiguration(
            main: "state_dir: /var/lib/lifeboat\n", policies: [:],
            runbooks: ["drill.yaml": "runbook: drill\nschedule: { cron: '0 6 * * 0', timezone: Europe/Berlin }\nsteps: [ { manual: look } ]\n"])
        #expect(configuration.problems.isEmpty)
        #expect(configuration.runbooks.first?.schedule?.cron == cron("0 6 * * 0"))
        #expect(configuration.runbooks.first?.schedule?.timezone == "Europe/Berlin")
    }

    @Test func aBadRunbookScheduleIsReportedWhereItIs() {
        let configuration = exportConfiguration(
            main: "state_dir: /var/lib/lifeboat\n", policies: [:],
            runbooks: ["drill.yaml": "runbook: drill\nsteps: [ { manual: look } ]\nschedule:\n  cron: '0 6 * *'\n"])
        #expect(configuration.runbooks.isEmpty)
        let messages = configuration.problems.map(\.error.message)
        #expect(messages.count == 1 && messages[0].hasPrefix("runbooks/drill.yaml:4:9: invalid cron expression"), "\(messages)")
        #expect(configuration.problems.first?.scope == .runbook("drill"))
    }
}

@Suite struct ExportReadsNoEnvironment {
    @Test func aReferenceWhereAValueMustBeReadSaysWhyAndWhatToWrite() {
        let configuration = exportConfiguration(
            main: "state_dir: /var/lib/lifeboat\nscheduler:\n  run_timeout: ${RT}\n",
            policies: ["db.yaml": "policy: db\nsource: { test: { note: '${NOTE}' } }\nschedule: { cron: '0 1 * * *' }\n"])
        let errors = configuration.problems.map(\.error)
        #expect(errors.count == 1, "\(errors)")
        #expect(errors.first?.message.hasPrefix("lifeboat.yaml:3:16: '${RT}' is not a valid duration") == true, "\(errors)")
        #expect(errors.first?.hint?.hasPrefix("lifeboat export reads no environment variable, so ${RT} is read as that text") == true, "\(errors)")
        #expect(errors.first?.hint?.contains("${RT:-VALUE} (the export uses VALUE)") == true)
    }
}

@Suite struct InterpolationReferences {
    @Test func referencesAreFoundAsExpandReadsThem() {
        let found = Interpolation.references(in: "a ${ONE} $${NOT} ${TWO:-x} ${bad-name} $THREE ${FOUR}")
        #expect(found == [.init(name: "ONE", hasDefault: false), .init(name: "TWO", hasDefault: true), .init(name: "FOUR", hasDefault: false)])
        #expect(Interpolation.references(inYAML: "# ${COMMENT}\nkey: ${VALUE}\n${KEY}: x\n") == [.init(name: "VALUE", hasDefault: false)])
        #expect(Interpolation.references(inYAML: "a: [") == nil)
    }
}

/// A source kind for configuration tests: `test: { note }`.
private func TestSourceParser() -> SourceKindParser {
    SourceKindParser(kind: "test") { node in
        guard let map = node.mapping(allowed: ["note"]) else { return nil }
        _ = map["note"]?.string()
        return TestSource()
    }
}

private struct TestSource: SourceConfiguration {
    var kind: String { "test" }
    var restoreTargetKeys: [String] { ["path"] }
}

private func exportConfiguration(main: String, policies: [String: String], runbooks: [String: String] = [:],
                         directory: String = KubernetesExport.configMount) -> Configuration {
    ExportConfiguration.parse(
        directory: directory, main: ConfigFile(name: "lifeboat.yaml", text: main),
        policies: policies.sorted { $0.key < $1.key }.map { ConfigFile(name: "policies/\($0.key)", text: $0.value) },
        runbooks: runbooks.sorted { $0.key < $1.key }.map { ConfigFile(name: "runbooks/\($0.key)", text: $0.value) },
        sources: [TestSourceParser()])
}
