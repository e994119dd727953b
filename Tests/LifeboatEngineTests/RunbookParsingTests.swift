import Foundation
import Testing
@testable import LifeboatCore
@testable import LifeboatEngine

/// The policies the runbooks below restore: one of each kind of target.
let runbookPolicies = [
    "hub-postgres.yaml": "policy: hub-postgres\nsource: { postgres: { conninfo: host=db } }\n",
    "registry-db.yaml": "policy: registry-db\nsource: { postgres: { conninfo: host=db, mode: logical } }\n",
    "buckets.yaml": "policy: buckets\nsource: { s3: { endpoint: \"http://minio:9000\", buckets: [mcp-hub-sources] } }\n",
    "etc.yaml": "policy: etc\nsource: { files: { path: /etc/app } }\n",
]

/// The problems of one runbook, `r.yaml`, parsed beside `runbookPolicies`.
func runbookErrors(_ text: String, environment: [String: String] = [:]) -> [String] {
    errors(parse(policies: runbookPolicies, runbooks: ["r.yaml": text], environment: environment))
}

func parseRunbook(_ text: String, environment: [String: String] = [:]) throws -> Runbook {
    let configuration = try parse(policies: runbookPolicies, runbooks: ["r.yaml": text], environment: environment).get()
    return try #require(configuration.runbooks.first)
}

@Suite struct RunbookParsing {
    @Test func readsEveryKey() throws {
        let runbook = try parseRunbook("""
            runbook: r
            description: Full platform recovery.
            objectives: { rto: 30m, rpo: 1h }
            variables:
              PGDATA_DIR: "${PGDATA:-/var/lib/postgresql/15/main}"
              WEB: http://localhost:8080
            schedule: { cron: "30 3 * * *", timezone: Europe/Berlin, jitter: 5m }
            steps:
              - restore: hub-postgres
                target: { data_dir: "${PGDATA_DIR}", time: "${RECOVERY_TARGET_TIME}", delta: true, parallel: 2 }
                timeout: 20m
                retry: { attempts: 3, delay: 30s }
              - parallel:
                  - restore: buckets
                    id: restore-sources
                    target: { s3: "s3://mcp-hub-sources/restored", bucket: mcp-hub-sources, delete_extra: true, max_delete: 50, endpoint: "http://minio:9000" }
                  - restore: registry-db
                    target: { conninfo: "host=localhost dbname=postgres", at: "2026-11-29 17:30:00", databases: [mcp_registry], globals: false }
                    optional: true
                  - restore: etc
                    target: { path: restored/etc }
                    when: drill
              - run: [systemctl, restart, hub-web]
                retry: 2
                description: Start the web service.
              - run:
                  shell: "echo ${RESTORED_POINT} > /tmp/point"
                  env: { POINT: "${steps.restore-hub-postgres.restored_point}", MODE: "${RUNBOOK_MODE}" }
                  cwd: scripts
                critical: false
              - id: verify
                health:
                  - http: { url: "${WEB}/health", status: [200, 204], json: { status: healthy, checks.database: ok }, accept_degraded: true, ca_bundle: certs/ca.pem, timeout: 3s }
                  - postgres: { conninfo: "host=localhost dbname=mcphub", query: "select count(*) from jobs", expect: "42", timeout: 5s }
                  - redis: { host: localhost, port: 6380, user: default, password: "${REDIS_PASSWORD:-}", tls: true }
                  - redis: { url: "redis://cache.internal:6390" }
                  - s3: { endpoint: "http://minio:9000", bucket: mcp-hub-sources, prefix: restored, min_objects: 3, access_key_id: a, secret_access_key: secret-key-1 }
                  - tcp: "localhost:9000"
                  - tcp: { address: "[::1]:5432", timeout: 2s }
                  - command: [pg_isready, -h, localhost]
                  - command: { shell: "test -s /tmp/point", timeout: 1m }
                within: 5m
                interval: 10s
                when: always
              - wait: 30s
              - manual: "Re-submit the jobs that were in flight before ${RESTORED_POINT}."
                when: recover
            """, environment: ["USER": "root"])
        #expect(runbook.name == "r")
        #expect(runbook.file == "runbooks/r.yaml")
        #expect(runbook.description == "Full platform recovery.")
        #expect(runbook.objectives == Objectives(rto: ConfigDuration(seconds: 1800), rpo: ConfigDuration(seconds: 3600)))
        #expect(runbook.variables == ["PGDATA_DIR": "/var/lib/postgresql/15/main", "WEB": "http://localhost:8080"])
        #expect(runbook.schedule?.timezone == "Europe/Berlin")
        #expect(runbook.schedule?.jitter == ConfigDuration(seconds: 300))
        #expect(runbook.steps.map(\.id) == ["restore-hub-postgres", "parallel-1", "run-1", "run-2", "verify", "wait-1", "manual-1"])
        #expect(runbook.allSteps.map(\.id) == ["restore-hub-postgres", "parallel-1", "restore-sources", "restore-registry-db", "restore-etc",
                                               "run-1", "run-2", "verify", "wait-1", "manual-1"])

        let first = runbook.steps[0]
        #expect(first.timeout == ConfigDuration(seconds: 1200))
        #expect(first.retry == StepRetry(attempts: 3, delay: ConfigDuration(seconds: 30)))
        #expect(first.critical && first.when == .always)
        #expect(first.location == "runbooks/r.yaml:9:5")
        guard case .restore(let pg) = first.kind else { Issue.record("not a restore"); return }
        #expect(pg.policy == "hub-postgres")
        #expect(pg.target.target.location == .dataDirectory("/var/lib/postgresql/15/main"))
        #expect(pg.target.target.recovery?.delta == true)
        #expect(pg.target.target.parallel == 2)
        #expect(pg.target.time?.text == "${RECOVERY_TARGET_TIME}")

        guard case .parallel(let group) = runbook.steps[1].kind else { Issue.record("not a group"); return }
        guard case .restore(let s3) = group[0].kind, case .restore(let logical) = group[1].kind, case .restore(let files) = group[2].kind
        else { Issue.record("not restores"); return }
        #expect(s3.target.target.location == .s3(bucket: "mcp-hub-sources", prefix: "restored/"))
        #expect(s3.target.target.mirror == MirrorRestoreOptions(bucket: "mcp-hub-sources", deleteExtra: true, maxDelete: 50, endpoint: "http://minio:9000"))
        #expect(logical.target.target.location == .postgresServer(conninfo: "host=localhost dbname=postgres"))
        #expect(logical.target.target.databases == ["mcp_registry"] && logical.target.target.globals == false)
        #expect(logical.target.time?.text == "2026-11-29 17:30:00")
        #expect(!group[1].critical)
        #expect(files.target.target.location == .directory("/etc/lifeboat/restored/etc"))
        #expect(group[2].when == .drill && group[2].runs(in: .drill) && !group[2].runs(in: .recover))

        let run = runbook.steps[2]
        #expect(run.retry == StepRetry(attempts: 3))
        #expect(run.description == "Start the web service.")
        guard case .run(let systemctl) = run.kind, case .argv(let words) = systemctl.program else { Issue.record("not argv"); return }
        #expect(words.map(\.text) == ["systemctl", "restart", "hub-web"])
        guard case .run(let shell) = runbook.steps[3].kind, case .shell(let script) = shell.program else { Issue.record("not shell"); return }
        #expect(script.text == "echo ${RESTORED_POINT} > /tmp/point")
        #expect(shell.environment.mapValues(\.text) == ["POINT": "${steps.restore-hub-postgres.restored_point}", "MODE": "${RUNBOOK_MODE}"])
        #expect(shell.workingDirectory?.text == "scripts" && shell.baseDirectory == "/etc/lifeboat")
        #expect(!runbook.steps[3].critical)

        guard case .health(let health) = runbook.steps[4].kind else { Issue.record("not health"); return }
        #expect(health.within == ConfigDuration(seconds: 300) && health.interval == ConfigDuration(seconds: 10))
        #expect(health.checks.map(\.kindName) == ["http", "postgres", "redis", "redis", "s3", "tcp", "tcp", "command", "command"])
        guard case .http(let http) = health.checks[0].kind else { return }
        #expect(http.url.text == "${WEB}/health" && http.statuses == [200, 204] && http.acceptDegraded)
        #expect(http.caBundle == "/etc/lifeboat/certs/ca.pem")
        #expect(http.json.map(\.path) == ["status", "checks.database"] && http.json.map(\.expected.text) == ["healthy", "ok"])
        #expect(health.checks[0].timeout == ConfigDuration(seconds: 3))
        guard case .postgres(let postgres) = health.checks[1].kind else { return }
        #expect(postgres.query.text == "select count(*) from jobs" && postgres.expect?.text == "42")
        guard case .redis(let redis) = health.checks[2].kind, case .redis(let redisURL) = health.checks[3].kind else { return }
        #expect(redis.host.text == "localhost" && redis.port == 6380 && redis.user?.text == "default" && redis.tls == RedisHealthCheck.TLS())
        #expect(redisURL.host.text == "cache.internal" && redisURL.port == 6390 && redisURL.tls == nil)
        guard case .s3(let bucket) = health.checks[4].kind else { return }
        #expect(bucket.connection.bucket == "mcp-hub-sources" && bucket.connection.prefix == "restored/" && bucket.minObjects == 3)
        guard case .tcp(let tcp) = health.checks[6].kind else { return }
        #expect(tcp.text == "[::1]:5432" && health.checks[6].timeout == ConfigDuration(seconds: 2))
        #expect(health.checks[7].timeout == HealthStep.commandCheckTimeout)
        #expect(health.checks[8].timeout == ConfigDuration(seconds: 60))

        guard case .wait(let wait) = runbook.steps[5].kind, case .manual(let manual) = runbook.steps[6].kind else { return }
        #expect(wait == ConfigDuration(seconds: 30))
        #expect(manual.text == "Re-submit the jobs that were in flight before ${RESTORED_POINT}.")
        #expect(runbook.steps[6].when == .recover)
    }

    @Test func derivedIDsAvoidExplicitOnesAndRepeatedPolicies() throws {
        let runbook = try parseRunbook("""
            runbook: r
            steps:
              - { id: run-1, run: [true] }
              - run: [true]
              - restore: etc
                target: { path: /a }
              - restore: etc
                target: { path: /b }
              - { health: [ { tcp: "localhost:1" } ] }
            """)
        #expect(runbook.steps.map(\.id) == ["run-1", "run-2", "restore-etc", "restore-etc-2", "health-1"])
    }

    @Test func defaults() throws {
        let runbook = try parseRunbook("runbook: r\nsteps:\n  - health: [ { http: { url: \"http://x/health\" } } ]\n")
        let step = runbook.steps[0]
        #expect(step.critical && step.when == .always && step.timeout == nil && step.retry == StepRetry())
        guard case .health(let health) = step.kind, case .http(let http) = health.checks[0].kind else { return }
        #expect(health.within == HealthStep.defaultWithin && health.interval == HealthStep.defaultInterval)
        #expect(http.statuses == [200] && !http.acceptDegraded && http.json.isEmpty)
        #expect(health.checks[0].timeout == HealthCheck.defaultTimeout)
        #expect(runbook.objectives == nil && runbook.schedule == nil && runbook.variables.isEmpty)
    }

    /// Every error the parser reports, each at its line and column.
    @Test(arguments: [
        // top level
        ("runbook: r\nsteps: []\n", ["runbooks/r.yaml:2:8: a runbook needs at least one step"]),
        ("runbook: other\nsteps: [ { wait: 1s } ]\n",
         ["runbooks/r.yaml:1:10: runbook 'other' is in runbooks/r.yaml; a runbook's file is named after it"]),
        ("runbook: r\nobjectives: { rto: 0s, rpo: soon }\nsteps: [ { wait: 1s } ]\n",
         ["runbooks/r.yaml:2:20: 'objectives.rto' must be longer than 0s",
          "runbooks/r.yaml:2:29: 'soon' is not a valid duration for 'objectives.rpo'"]),
        ("runbook: r\nobjectives: { rtoo: 1h }\nsteps: [ { wait: 1s } ]\n",
         ["runbooks/r.yaml:2:15: unknown key 'rtoo' in 'objectives' (did you mean 'rto'?)",
          "runbooks/r.yaml:2:13: 'objectives' needs 'rto', 'rpo' or both"]),
        ("runbook: r\nvariables: { RESTORED_POINT: x, 9x: y }\nsteps: [ { wait: 1s } ]\n",
         ["runbooks/r.yaml:2:30: 'RESTORED_POINT' is a built-in variable; a runbook cannot set it",
          "runbooks/r.yaml:2:37: '9x' is not a valid variable name"]),
        ("runbook: r\nschedule: { cron: \"61 * * * *\" }\nsteps: [ { wait: 1s } ]\n",
         ["runbooks/r.yaml:2:19: invalid cron expression: 61 is out of range for the minute field (0-59)"]),
        ("runbook: r\nstep: []\n",
         ["runbooks/r.yaml:2:1: unknown key 'step' (did you mean 'steps'?)", "runbooks/r.yaml:1:1: missing required key 'steps'"]),
        // steps
        ("runbook: r\nsteps:\n  - { wait: 1s, run: [x] }\n", ["runbooks/r.yaml:3:5: a runbook step must have only one of: wait, run"]),
        ("runbook: r\nsteps:\n  - { description: x }\n",
         ["runbooks/r.yaml:3:5: a runbook step must have one of: restore, run, health, manual, wait, parallel"]),
        ("runbook: r\nsteps:\n  - { wait: 0s }\n  - { wait: 5 }\n",
         ["runbooks/r.yaml:3:13: 'steps.0.wait' must be longer than 0s", "runbooks/r.yaml:4:13: '5' is not a valid duration for 'steps.1.wait'"]),
        ("runbook: r\nsteps:\n  - { id: Restore_DB, wait: 1s }\n", ["runbooks/r.yaml:3:11: 'Restore_DB' is not a valid step id"]),
        ("runbook: r\nsteps:\n  - { id: a, wait: 1s }\n  - { id: a, wait: 2s }\n",
         ["runbooks/r.yaml:4:11: step id 'a' is already used at line 3"]),
        ("runbook: r\nsteps:\n  - { id: a, run: [x] }\n  - parallel:\n      - { id: a, wait: 0s }\n      - { wait: 1s }\n",
         ["runbooks/r.yaml:5:24: 'steps.1.parallel.0.wait' must be longer than 0s", "runbooks/r.yaml:5:15: step id 'a' is already used at line 3"]),
        ("runbook: r\nsteps:\n  - { wait: 1s, timeout: 1x, when: always2 }\n",
         ["runbooks/r.yaml:3:26: '1x' is not a valid duration for 'steps.0.timeout'",
          "runbooks/r.yaml:3:36: 'always2' is not a valid value for 'steps.0.when' (did you mean 'always'?)"]),
        ("runbook: r\nsteps:\n  - { run: [x], critical: true, optional: true }\n",
         ["runbooks/r.yaml:3:43: 'critical: true' and 'optional: true' contradict each other"]),
        ("runbook: r\nsteps:\n  - { run: [x], retry: { attempts: 0 } }\n  - { run: [x], retry: -1 }\n  - { wait: 1s, retry: 2 }\n",
         ["runbooks/r.yaml:3:36: 'steps.0.retry.attempts' must be between 1 and 100, not 0",
          "runbooks/r.yaml:4:24: 'steps.1.retry' must be between 0 and 99, not -1",
          "runbooks/r.yaml:5:24: 'retry' does not apply to a 'wait' step"]),
        ("runbook: r\nsteps:\n  - { manual: x, timeout: 1m }\n", ["runbooks/r.yaml:3:27: 'timeout' does not apply to a 'manual' step: it waits for the operator"]),
        ("runbook: r\nsteps:\n  - { run: [x], target: { path: /a }, within: 1m }\n",
         ["runbooks/r.yaml:3:25: 'target' belongs to a 'restore' step", "runbooks/r.yaml:3:47: 'within' belongs to a 'health' step"]),
        // run
        ("runbook: r\nsteps:\n  - run: systemctl restart web\n", ["runbooks/r.yaml:3:10: 'run' takes a list — the program and its arguments, run without a shell — not a string"]),
        ("runbook: r\nsteps:\n  - run: []\n", ["runbooks/r.yaml:3:10: 'run' needs a command: a list of the program and its arguments"]),
        ("runbook: r\nsteps:\n  - run: { command: [a], shell: b }\n", ["runbooks/r.yaml:3:10: 'run' must have only one of: command, shell"]),
        ("runbook: r\nsteps:\n  - run: { shell: \"x ${\", env: { 1A: b } }\n",
         ["runbooks/r.yaml:3:19: unterminated '${' in 'steps.0.run.shell'", "runbooks/r.yaml:3:38: '1A' is not a valid environment variable name"]),
        // restore
        ("runbook: r\nsteps:\n  - restore: etcc\n    target: { path: /a }\n",
         ["runbooks/r.yaml:3:14: runbook step restores unknown policy 'etcc' (did you mean 'etc'?)"]),
        ("runbook: r\nsteps:\n  - restore: etc\n", ["runbooks/r.yaml:3:5: missing required key 'target' in 'steps.0'"]),
        ("runbook: r\nsteps:\n  - restore: hub-postgres\n    target: { conninfo: host=x }\n",
         ["runbooks/r.yaml:4:13: policy 'hub-postgres' (postgres) cannot be restored to a target given as 'conninfo'"]),
        ("runbook: r\nsteps:\n  - restore: etc\n    target: { path: /a, data_dir: /b }\n",
         ["runbooks/r.yaml:4:13: a restore target must have only one of: path, data_dir"]),
        ("runbook: r\nsteps:\n  - restore: etc\n    target: { path: /a, time: yesterday }\n",
         ["runbooks/r.yaml:4:31: 'yesterday' is neither 'latest' nor a time"]),
        ("runbook: r\nsteps:\n  - restore: etc\n    target: { path: /a, time: latest, at: latest }\n",
         ["runbooks/r.yaml:4:43: give the restore point as 'time' or 'at', not both"]),
        ("runbook: r\nsteps:\n  - restore: buckets\n    target: { s3: \"s3://\" }\n", ["runbooks/r.yaml:4:19: 's3://' names no valid bucket"]),
        ("runbook: r\nsteps:\n  - restore: etc\n    target: { path: /a, delete_extra: true }\n",
         ["runbooks/r.yaml:4:13: 'bucket', 'prefix', 'key', 'delete_extra', 'max_delete', 'endpoint', 'region', 'path_style', 'ca_bundle' apply to an S3 mirror's restore, and policy 'etc' is files"]),
        ("runbook: r\nsteps:\n  - restore: hub-postgres\n    target: { data_dir: /a, databases: [x] }\n",
         ["runbooks/r.yaml:4:13: 'databases' and 'globals' apply to a logical PostgreSQL restore (a 'conninfo' target)"]),
        // health
        ("runbook: r\nsteps:\n  - health: []\n", ["runbooks/r.yaml:3:13: a 'health' step needs at least one check"]),
        ("runbook: r\nsteps:\n  - health: [ { ping: x } ]\n",
         ["runbooks/r.yaml:3:17: unknown key 'ping' in 'steps.0.health.0' (expected one of: http, postgres, redis, s3, tcp, command)",
          "runbooks/r.yaml:3:15: a health check must have one of: http, postgres, redis, s3, tcp, command"]),
        ("runbook: r\nsteps:\n  - health: [ { tcp: localhost } ]\n    within: 0s\n",
         ["runbooks/r.yaml:3:22: 'localhost' is not host:port", "runbooks/r.yaml:4:13: 'steps.0.within' must be longer than 0s"]),
        ("runbook: r\nsteps:\n  - health: [ { tcp: \"h:1\" } ]\n    within: 10s\n    interval: 1m\n",
         ["runbooks/r.yaml:5:15: 'interval' (1m) is longer than 'within' (10s): the checks would be tried once"]),
        ("runbook: r\nsteps:\n  - health:\n      - http: { url: \"ftp://x\", status: [600], accept_degraded: maybe }\n",
         ["runbooks/r.yaml:4:22: 'ftp://x' is not an http:// or https:// URL",
          "runbooks/r.yaml:4:42: 'steps.0.health.0.http.status.0' must be between 100 and 599, not 600",
          "runbooks/r.yaml:4:65: 'steps.0.health.0.http.accept_degraded' must be true or false, not 'maybe'"]),
        ("runbook: r\nsteps:\n  - health:\n      - postgres: { query: \"select 1\" }\n",
         ["runbooks/r.yaml:4:19: missing required key 'conninfo' in 'steps.0.health.0.postgres'"]),
        ("runbook: r\nsteps:\n  - health:\n      - redis: { url: \"http://x\" }\n      - redis: { port: 0 }\n",
         ["runbooks/r.yaml:4:23: 'http://x' is not a redis:// or rediss:// URL",
          "runbooks/r.yaml:5:24: 'steps.0.health.1.redis.port' must be between 1 and 65535, not 0"]),
        ("runbook: r\nsteps:\n  - health:\n      - s3: { endpoint: \"http://m\", bucket: \"a/b\", min_objects: -1 }\n",
         ["runbooks/r.yaml:4:65: 'steps.0.health.0.s3.min_objects' must be between 0 and 1000000000, not -1",
          "runbooks/r.yaml:4:45: 'a/b' is not a valid S3 bucket name"]),
        ("runbook: r\nsteps:\n  - health:\n      - command: { command: [x], timeout: 0s }\n",
         ["runbooks/r.yaml:4:43: 'steps.0.health.0.command.timeout' must be longer than 0s"]),
        // parallel
        ("runbook: r\nsteps:\n  - parallel:\n      - manual: Do it.\n      - wait: 1s\n",
         ["runbooks/r.yaml:4:17: a 'manual' step cannot be inside 'parallel': the operator confirms one step at a time"]),
        ("runbook: r\nsteps:\n  - parallel:\n      - parallel: [ { wait: 1s }, { wait: 1s } ]\n      - wait: 1s\n",
         ["runbooks/r.yaml:4:19: 'parallel' cannot be nested: a group's steps are single steps"]),
        ("runbook: r\nsteps:\n  - parallel: [ { wait: 1s } ]\n", ["runbooks/r.yaml:3:15: 'parallel' needs at least two steps"]),
        ("runbook: r\nsteps:\n  - parallel: [ { wait: 1s }, { wait: 1s } ]\n    retry: 2\n",
         ["runbooks/r.yaml:4:12: 'retry' does not apply to a 'parallel' step"]),
        ("runbook: r\nsteps:\n  - parallel:\n      - { restore: etc, target: { path: /a } }\n      - { restore: etc, target: { path: /a } }\n",
         ["runbooks/r.yaml:5:33: steps 'restore-etc' and 'restore-etc-2' of one 'parallel' group both restore policy 'etc' into directory '/a'"]),
        // variables and references
        ("runbook: r\nsteps:\n  - run: [echo, \"${NOPE}\"]\n",
         ["runbooks/r.yaml:3:17: variable 'NOPE' is not set: it is neither built in, nor in the runbook's 'variables', nor in the environment"]),
        ("runbook: r\nsteps:\n  - manual: \"Since ${RESTORED_POINT}\"\n",
         ["runbooks/r.yaml:3:13: '${RESTORED_POINT}' is used before any restore step has run"]),
        ("runbook: r\nsteps:\n  - run: [echo, \"${steps.restore-et.restored_point}\"]\n  - restore: etc\n    target: { path: /a }\n",
         ["runbooks/r.yaml:3:17: '${steps.restore-et.restored_point}' refers to step 'restore-et', which this runbook does not have (did you mean 'restore-etc'?)"]),
        ("runbook: r\nsteps:\n  - run: [echo, \"${steps.restore-etc.restored_point}\"]\n  - restore: etc\n    target: { path: /a }\n",
         ["runbooks/r.yaml:3:17: '${steps.restore-etc.restored_point}' refers to step 'restore-etc', which has not run yet at this point"]),
        ("runbook: r\nsteps:\n  - parallel:\n      - { restore: etc, target: { path: /a } }\n      - { run: [echo, \"${steps.restore-etc.restored_point}\"] }\n",
         ["runbooks/r.yaml:5:23: '${steps.restore-etc.restored_point}' refers to step 'restore-etc', which runs at the same time (same 'parallel' group)"]),
        ("runbook: r\nsteps:\n  - { id: w, wait: 1s }\n  - run: [echo, \"${steps.w.restored_point}\"]\n",
         ["runbooks/r.yaml:4:17: '${steps.w.restored_point}' refers to step 'w', which is a 'wait' step: only restore steps have a restored point"]),
        ("runbook: r\nsteps:\n  - { restore: etc, target: { path: /a }, when: drill }\n  - run: [echo, \"${steps.restore-etc.restored_point}\"]\n",
         ["runbooks/r.yaml:4:17: '${steps.restore-etc.restored_point}' refers to step 'restore-etc', which does not run in 'recover' mode, where this step runs"]),
        ("runbook: r\nsteps:\n  - { restore: etc, target: { path: /a }, when: drill }\n  - { manual: \"${RESTORED_POINT}\", when: recover }\n",
         ["runbooks/r.yaml:4:15: '${RESTORED_POINT}' is used before any restore step has run"]),
        ("runbook: r\nsteps:\n  - run: [echo, \"${steps.Bad.restored_point}\"]\n",
         ["runbooks/r.yaml:3:17: 'steps.Bad.restored_point' in 'steps.0.run.1' is not a valid variable name"]),
    ] as [(String, [String])])
    func errorsAreReportedAtTheirPlace(runbook: String, expected: [String]) {
        #expect(runbookErrors(runbook) == expected)
    }

    @Test func variablesWithDefaultsOrFromTheEnvironmentOrTheRunbookAreKnown() throws {
        let runbook = try parseRunbook("""
            runbook: r
            variables: { TARGET: /srv }
            steps:
              - run: [echo, "${HOME}", "${TARGET}", "${MISSING:-x}", "${RECOVERY_TARGET_TIME}", "${RUNBOOK}", "$${LITERAL}"]
            """, environment: ["HOME": "/root"])
        guard case .run(let spec) = runbook.steps[0].kind else { return }
        #expect(spec.templates.count == 7)
    }

    @Test func aDrillsScratchTargetVariablesAreKnownOnlyInDrillStepsAfterTheirRestore() throws {
        let runbook = try parseRunbook("""
            runbook: r
            steps:
              - restore: hub-postgres
                target: { data_dir: /var/lib/pg }
              - when: drill
                health:
                  - postgres: { conninfo: "host=${TARGET_RESTORE_HUB_POSTGRES_HOST} port=${TARGET_RESTORE_HUB_POSTGRES_PORT}" }
            """)
        #expect(runbook.steps.count == 2)
        #expect(runbookErrors("""
            runbook: r
            steps:
              - run: [echo, "${TARGET_RESTORE_ETC_DIR}"]
                when: drill
              - restore: etc
                target: { path: /a }
              - run: [ls, "${TARGET_RESTORE_ETC_DIR}"]
            """) == [
                "runbooks/r.yaml:3:17: '${TARGET_RESTORE_ETC_DIR}' refers to the scratch target of step 'restore-etc', which has not run yet at this point",
                "runbooks/r.yaml:7:15: '${TARGET_RESTORE_ETC_DIR}' is set only in a drill (the scratch target of step 'restore-etc'), and this step also runs in 'recover' mode",
            ])
    }

    @Test func aRunbookWithProblemsBlocksOnlyItself() {
        let configuration = load(policies: runbookPolicies, runbooks: ["r.yaml": "runbook: r\nsteps: [ { wait: 0s } ]\n",
                                                                      "ok.yaml": "runbook: ok\nsteps: [ { wait: 1s } ]\n"])
        #expect(configuration.runbooks.map(\.name) == ["ok"])
        #expect(configuration.problems.map(\.scope) == [.runbook("r")])
    }
}

@Suite struct RunbookVariableResolution {
    func runbook(variables: [String: String] = [:]) -> Runbook {
        Runbook(name: "platform", file: "runbooks/platform.yaml", variables: variables, steps: [])
    }

    @Test func builtInsRunbookVariablesAndTheEnvironmentResolveInThatOrder() throws {
        var variables = RunbookVariables(runbook: runbook(variables: ["HOST": "db.internal", "PORT": "5433"]), mode: .drill,
                                         environment: ["HOST": "env-host", "USER": "ops", "EMPTY": ""], recoveryTargetTime: nil)
        func resolve(_ text: String) throws -> String { try variables.resolve(RunbookTemplate(parsing: text)) }
        #expect(try resolve("${HOST}:${PORT} as ${USER}") == "db.internal:5433 as ops")
        #expect(try resolve("${RECOVERY_TARGET_TIME}") == "latest")
        #expect(try resolve("${RUNBOOK}/${RUNBOOK_MODE}") == "platform/drill")
        #expect(try resolve("${EMPTY:-fallback} ${EMPTY}|") == "fallback |")
        #expect(try resolve("$$HOME costs $5") == "$HOME costs $5")
        #expect(throws: LifeboatError.self) { try resolve("${RESTORED_POINT}") }

        variables.restored(step: "restore-db", at: Date(timeIntervalSince1970: 1_764_437_400.25))
        #expect(try resolve("${RESTORED_POINT}") == "2025-11-29T17:30:00.250Z")
        #expect(try resolve("${steps.restore-db.restored_point}") == "2025-11-29T17:30:00.250Z")
        variables.restored(step: "restore-files", at: Date(timeIntervalSince1970: 1_764_437_460))
        #expect(try resolve("${RESTORED_POINT}") == "2025-11-29T17:31:00.000Z")
        #expect(try resolve("${steps.restore-db.restored_point}") == "2025-11-29T17:30:00.250Z")
    }

    @Test func anUnsetVariableNamesItself() throws {
        let variables = RunbookVariables(runbook: runbook(), mode: .recover, environment: [:], recoveryTargetTime: nil)
        #expect {
            try variables.resolve(RunbookTemplate(parsing: "x ${NOPE}"))
        } throws: { error in
            (error as? LifeboatError)?.message == "'x ${NOPE}' refers to 'NOPE', which has no value"
        }
    }

    @Test func theRecoveryTargetTimeSetsARestoresPointAndAPhysicalRecoveryTarget() throws {
        let at = Date(timeIntervalSince1970: 1_764_437_400)
        let variables = RunbookVariables(runbook: runbook(), mode: .recover, environment: [:], recoveryTargetTime: at)
        let physical = RunbookRestoreTarget(target: RestoreTarget(location: .dataDirectory("/pg")),
                                            time: try RunbookTemplate(parsing: "${RECOVERY_TARGET_TIME}"))
        let (target, point) = try physical.resolved(with: variables)
        #expect(point == .time(at))
        #expect(target.recovery?.target == .time(at))
        #expect(target.time == "2025-11-29T17:30:00.000Z")

        let latest = RunbookRestoreTarget(target: RestoreTarget(location: .directory("/d")))
        let (plain, latestPoint) = try latest.resolved(with: variables)
        #expect(latestPoint == .latest && plain.time == "latest" && plain.recovery == nil)

        let bad = RunbookRestoreTarget(target: RestoreTarget(location: .directory("/d")), time: RunbookTemplate(literal: "soon"))
        #expect(throws: LifeboatError.self) { try bad.resolved(with: variables) }
    }
}
