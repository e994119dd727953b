import Foundation

/// A recovery runbook (`runbooks/NAME.yaml`): ordered steps that restore, run commands, check
/// health, ask the operator, wait, or do several of these at once. `lifeboat recover` walks an
/// operator through it; `lifeboat drill` runs it against scratch targets. `RunbookParser`
/// reads it; the README documents every key.
public struct Runbook: Sendable {
    public var name: String
    /// The file it was read from, relative to the configuration directory.
    public var file: String
    public var description: String?
    public var objectives: Objectives?
    /// `variables:`, with the environment already interpolated into their values.
    public var variables: [String: String]
    /// When `lifeboat schedule` runs the drill.
    public var schedule: Schedule?
    public var steps: [RunbookStep]

    public init(name: String, file: String, description: String? = nil, objectives: Objectives? = nil,
                variables: [String: String] = [:], schedule: Schedule? = nil, steps: [RunbookStep]) {
        self.name = name
        self.file = file
        self.description = description
        self.objectives = objectives
        self.variables = variables
        self.schedule = schedule
        self.steps = steps
    }

    /// Every step in order, the steps of a parallel group after the group itself.
    public var allSteps: [RunbookStep] {
        steps.flatMap { step -> [RunbookStep] in
            if case .parallel(let children) = step.kind { return [step] + children }
            return [step]
        }
    }

    public func step(id: String) -> RunbookStep? { allSteps.first { $0.id == id } }

    /// Every restore step, those in parallel groups included, in order.
    public var restoreSteps: [RestoreStep] {
        allSteps.compactMap { step in
            if case .restore(let restore) = step.kind { return restore }
            return nil
        }
    }
}

/// The objectives a drill is measured against.
public struct Objectives: Sendable, Equatable {
    /// Recovery time objective: start to the last required check passing.
    public var rto: ConfigDuration?
    /// Recovery point objective: the drill's start minus the newest point actually restored.
    public var rpo: ConfigDuration?

    public init(rto: ConfigDuration? = nil, rpo: ConfigDuration? = nil) {
        self.rto = rto
        self.rpo = rpo
    }
}

/// Which command runs a runbook.
public enum RunbookMode: String, Sendable, Codable, CaseIterable {
    case recover, drill
}

/// One step of a runbook.
public struct RunbookStep: Sendable {
    /// `when:` — in which mode the step runs.
    public enum When: String, Sendable, CaseIterable {
        case recover, drill, always
    }

    public enum Kind: Sendable {
        case restore(RestoreStep)
        case run(CommandSpec)
        case health(HealthStep)
        /// An instruction the operator confirms.
        case manual(RunbookTemplate)
        case wait(ConfigDuration)
        /// Steps started at once; the group ends when all of them have.
        case parallel([RunbookStep])
    }

    /// Given (`[a-z0-9-]+`) or derived (`restore-POLICY`, `run-1`, …); unique in the runbook.
    public var id: String
    public var kind: Kind
    public var description: String?
    /// A limit on one attempt of the step.
    public var timeout: ConfigDuration?
    public var retry: StepRetry
    /// A critical step that fails stops the runbook; an optional one is reported and passed over.
    public var critical: Bool
    public var when: When
    /// `file:line:column` of the step, for messages about it at run time.
    public var location: String

    public init(id: String, kind: Kind, description: String? = nil, timeout: ConfigDuration? = nil,
                retry: StepRetry = StepRetry(), critical: Bool = true, when: When = .always, location: String = "") {
        self.id = id
        self.kind = kind
        self.description = description
        self.timeout = timeout
        self.retry = retry
        self.critical = critical
        self.when = when
        self.location = location
    }

    /// `restore`, `run`, `health`, `manual`, `wait` or `parallel`: the step's key.
    public var kindName: String {
        switch kind {
        case .restore: return "restore"
        case .run: return "run"
        case .health: return "health"
        case .manual: return "manual"
        case .wait: return "wait"
        case .parallel: return "parallel"
        }
    }

    /// Whether the step runs under `mode`.
    public func runs(in mode: RunbookMode) -> Bool {
        switch when {
        case .always: return true
        case .recover: return mode == .recover
        case .drill: return mode == .drill
        }
    }
}

/// `retry:` — how often a failed step is tried again, and after how long.
public struct StepRetry: Sendable, Equatable {
    /// Attempts in all (1: no retry).
    public var attempts: Int
    public var delay: ConfigDuration

    public static let defaultDelay = ConfigDuration(seconds: 10)

    public init(attempts: Int = 1, delay: ConfigDuration = StepRetry.defaultDelay) {
        self.attempts = attempts
        self.delay = delay
    }
}

/// `restore: POLICY` with its `target:`.
public struct RestoreStep: Sendable {
    public var policy: String
    public var target: RunbookRestoreTarget

    public init(policy: String, target: RunbookRestoreTarget) {
        self.policy = policy
        self.target = target
    }
}

/// A restore step's `target:`: where (read when the configuration loads) and to which point
/// (`time:`, resolved when the step runs, since it may be `${RECOVERY_TARGET_TIME}`).
public struct RunbookRestoreTarget: Sendable {
    /// Location and options, as the restore command takes them; `time` is nil here.
    public var target: RestoreTarget
    /// `time:` / `at:` — `latest`, a time, or a template that resolves to one (nil: latest).
    public var time: RunbookTemplate?

    public init(target: RestoreTarget, time: RunbookTemplate? = nil) {
        self.target = target
        self.time = time
    }

    /// The restore target with its point resolved: `time` set, and for a PostgreSQL data
    /// directory the recovery target too.
    ///
    /// - Throws: `LifeboatError(.usage)` when the time is neither `latest` nor a time.
    public func resolved(with variables: RunbookVariables) throws -> (target: RestoreTarget, point: RunbookRestorePoint) {
        let text = try time.map { try variables.resolve($0) } ?? "latest"
        guard let point = RunbookRestorePoint(text) else {
            throw LifeboatError(.usage, "the restore time '\(text)' is neither 'latest' nor a time",
                                hint: "Write a time as 2026-11-29 17:30:00 (local) or 2026-11-29T17:30:00Z, or pass --at TIME.")
        }
        var resolved = target
        resolved.time = text
        if resolved.location.isDataDirectory, case .time(let date) = point {
            var recovery = resolved.recovery ?? RecoveryOptions()
            recovery.target = .time(date)
            resolved.recovery = recovery
        }
        return (resolved, point)
    }
}

/// The point a restore step restores to.
public enum RunbookRestorePoint: Sendable, Equatable {
    case latest
    case time(Date)

    /// `latest`, or a time as `RecoveryTarget.parseTime` reads it.
    public init?(_ text: String, timeZone: TimeZone = .current) {
        if text == "latest" {
            self = .latest
        } else if let date = RecoveryTarget.parseTime(text, timeZone: timeZone) {
            self = .time(date)
        } else {
            return nil
        }
    }
}

/// A `run:` step's (or a `command` check's) program.
public struct CommandSpec: Sendable {
    public enum Program: Sendable {
        /// The program and its arguments, no shell.
        case argv([RunbookTemplate])
        /// A string for `/bin/sh -c`, only when the runbook asked for a shell.
        case shell(RunbookTemplate)
    }

    public var program: Program
    /// Added to (or replacing entries of) Lifeboat's own environment.
    public var environment: [String: RunbookTemplate]
    /// The working directory; relative to the configuration directory. Nil: the configuration directory.
    public var workingDirectory: RunbookTemplate?
    /// The configuration directory (what a relative working directory is relative to).
    public var baseDirectory: String

    public init(program: Program, environment: [String: RunbookTemplate] = [:], workingDirectory: RunbookTemplate? = nil,
                baseDirectory: String) {
        self.program = program
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.baseDirectory = baseDirectory
    }

    /// Every template the command uses.
    public var templates: [RunbookTemplate] {
        var result: [RunbookTemplate]
        switch program {
        case .argv(let words): result = words
        case .shell(let text): result = [text]
        }
        result += environment.keys.sorted().compactMap { environment[$0] }
        if let workingDirectory { result.append(workingDirectory) }
        return result
    }
}

/// `health:` with `within:` and `interval:`.
public struct HealthStep: Sendable {
    public var checks: [HealthCheck]
    /// How long the checks have to pass.
    public var within: ConfigDuration
    /// How long to wait between rounds of the checks that have not passed yet.
    public var interval: ConfigDuration

    public static let defaultWithin = ConfigDuration(seconds: 60)
    public static let defaultInterval = ConfigDuration(seconds: 5)

    public init(checks: [HealthCheck], within: ConfigDuration = HealthStep.defaultWithin,
                interval: ConfigDuration = HealthStep.defaultInterval) {
        self.checks = checks
        self.within = within
        self.interval = interval
    }
}

/// One health check: what it probes, and how long one try may take.
public struct HealthCheck: Sendable {
    public enum Kind: Sendable {
        case http(HTTPHealthCheck)
        case postgres(PostgresHealthCheck)
        case redis(RedisHealthCheck)
        case s3(S3HealthCheck)
        /// `host:port` accepts a TCP connection.
        case tcp(RunbookTemplate)
        /// The program exits with status 0.
        case command(CommandSpec)
    }

    public var kind: Kind
    /// A limit on one try.
    public var timeout: ConfigDuration

    public static let defaultTimeout = ConfigDuration(seconds: 10)

    public init(kind: Kind, timeout: ConfigDuration = HealthCheck.defaultTimeout) {
        self.kind = kind
        self.timeout = timeout
    }

    public var kindName: String {
        switch kind {
        case .http: return "http"
        case .postgres: return "postgres"
        case .redis: return "redis"
        case .s3: return "s3"
        case .tcp: return "tcp"
        case .command: return "command"
        }
    }

    /// Every template the check uses.
    public var templates: [RunbookTemplate] {
        switch kind {
        case .http(let h): return [h.url] + h.json.map(\.expected)
        case .postgres(let p): return [p.conninfo, p.query] + (p.expect.map { [$0] } ?? [])
        case .redis(let r): return [r.host, r.password, r.user].compactMap { $0 }
        case .s3: return []
        case .tcp(let address): return [address]
        case .command(let spec): return spec.templates
        }
    }
}

/// `http: { url, status, json, accept_degraded, ca_bundle, insecure_skip_tls_verify }`.
public struct HTTPHealthCheck: Sendable {
    public var url: RunbookTemplate
    /// Acceptable status codes (default: 200).
    public var statuses: [Int]
    /// Expectations on the JSON body: a dotted path (`status`, `checks.database`) and the
    /// value it must have (compared as text).
    public var json: [(path: String, expected: RunbookTemplate)]
    /// Whether `{"status": "degraded"}` (with 503) passes.
    public var acceptDegraded: Bool
    /// CA certificates to trust for an `https` URL (nil: the system's, or `SSL_CERT_FILE` & co.).
    public var caBundle: String?
    /// `insecure_skip_tls_verify: true`: the certificate of an `https` URL is not checked
    /// (each run of the check warns of it). Default false.
    public var insecureSkipTLSVerify = false

    public init(url: RunbookTemplate, statuses: [Int] = [200], json: [(path: String, expected: RunbookTemplate)] = [],
                acceptDegraded: Bool = false, caBundle: String? = nil) {
        self.url = url
        self.statuses = statuses
        self.json = json
        self.acceptDegraded = acceptDegraded
        self.caBundle = caBundle
    }
}

/// `postgres: { conninfo, query, expect }`.
public struct PostgresHealthCheck: Sendable {
    public var conninfo: RunbookTemplate
    public var query: RunbookTemplate
    /// The text the first column of the first row must have (nil: any answer passes).
    public var expect: RunbookTemplate?

    public init(conninfo: RunbookTemplate, query: RunbookTemplate = RunbookTemplate(literal: "select 1"), expect: RunbookTemplate? = nil) {
        self.conninfo = conninfo
        self.query = query
        self.expect = expect
    }
}

/// `redis: { host, port, user, password, tls }`: `PING` answers `PONG`.
public struct RedisHealthCheck: Sendable {
    public struct TLS: Sendable, Equatable {
        public var caBundle: String?
        public var certificate: String?
        public var key: String?

        public init(caBundle: String? = nil, certificate: String? = nil, key: String? = nil) {
            self.caBundle = caBundle
            self.certificate = certificate
            self.key = key
        }
    }

    public var host: RunbookTemplate
    public var port: Int
    public var user: RunbookTemplate?
    public var password: RunbookTemplate?
    public var tls: TLS?

    public init(host: RunbookTemplate, port: Int = 6379, user: RunbookTemplate? = nil, password: RunbookTemplate? = nil, tls: TLS? = nil) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.tls = tls
    }
}

/// `s3: { endpoint, bucket, prefix, min_objects, … }`: the bucket answers a listing (with at
/// least `minObjects` objects under the prefix).
public struct S3HealthCheck: Sendable {
    /// Endpoint, region, addressing, credentials and CA; `bucket` and `prefix` set.
    public var connection: S3RepositoryConfig
    public var minObjects: Int?

    public init(connection: S3RepositoryConfig, minObjects: Int? = nil) {
        self.connection = connection
        self.minObjects = minObjects
    }
}

extension Runbook {
    /// One line for `lifeboat check`: the steps by kind, the objectives, the drill's schedule.
    /// `6 steps (1 restore, 2 run, 2 health, 1 manual); objectives: rto 30m, rpo 1h; drill: 30 3 * * * UTC`
    public var summary: String {
        let all = allSteps.filter { $0.kindName != "parallel" }
        var counts: [(String, Int)] = []
        for kind in ["restore", "run", "health", "manual", "wait"] {
            let n = all.filter { $0.kindName == kind }.count
            if n > 0 { counts.append((kind, n)) }
        }
        var text = "\(all.count) step\(all.count == 1 ? "" : "s") (" + counts.map { "\($0.1) \($0.0)" }.joined(separator: ", ") + ")"
        let groups = steps.filter { $0.kindName == "parallel" }.count
        if groups > 0 { text += ", \(groups) parallel group\(groups == 1 ? "" : "s")" }
        if let objectives {
            let parts = [objectives.rto.map { "rto \($0)" }, objectives.rpo.map { "rpo \($0)" }].compactMap { $0 }
            text += "; objectives: " + parts.joined(separator: ", ")
        }
        if let schedule { text += "; drill: \(schedule.cron) \(schedule.timezone)" }
        return text
    }
}
