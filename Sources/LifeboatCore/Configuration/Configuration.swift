import Foundation

/// A whole configuration directory: `lifeboat.yaml`, `policies/*.yaml`, `runbooks/*.yaml`.
///
/// Loading never stops at the first problem, and never refuses the whole directory for a
/// problem in one part of it: every problem is kept in `problems` with the scope it blocks
/// (see `ConfigScope`). `policy(named:)` and friends refuse only what a command uses.
public struct Configuration: Sendable {
    /// Absolute path of the configuration directory; relative paths in it resolve against it.
    public var directory: String
    /// The repositories that were read without error (plus the built-in `default`).
    public var repositories: [RepositoryConfig]
    public var defaultRepository: String
    public var stateDirectory: String?
    /// `scheduler:` in lifeboat.yaml: how `lifeboat schedule` runs policies.
    public var scheduler = SchedulerSettings()
    /// `listen:` in lifeboat.yaml: where `lifeboat schedule` serves /metrics, /healthz and
    /// /readyz (nil: not set, `ListenAddress.default`).
    public var listen: ListenAddress?
    /// `listen_token_file:` in lifeboat.yaml (absolute): a file holding the bearer token
    /// `/metrics` requires; nil: `/metrics` is open to whoever reaches the listener.
    public var listenTokenFile: String?
    /// The policies that were read without error, by name.
    public var policies: [Policy]
    /// The runbooks that were read without error, by name.
    public var runbooks: [Runbook]
    /// Every problem found, in file order.
    public var problems: [ConfigProblem]
    /// Every policy file by policy name (its base name), whether it could be read or not.
    public var policyFiles: [String: String]
    /// Every runbook file by runbook name (its base name), whether it could be read or not.
    public var runbookFiles: [String: String]

    /// Name of the repository used when a policy names none and `lifeboat.yaml` sets no
    /// `default_repository`: `./.lifeboat/repository` in the configuration directory.
    public static let builtinRepositoryName = "default"
    public static let builtinRepositoryPath = ".lifeboat/repository"

    public init(directory: String, repositories: [RepositoryConfig] = [], defaultRepository: String = Configuration.builtinRepositoryName,
                stateDirectory: String? = nil, listen: ListenAddress? = nil, policies: [Policy] = [], runbooks: [Runbook] = [],
                problems: [ConfigProblem] = [], policyFiles: [String: String] = [:], runbookFiles: [String: String] = [:]) {
        self.directory = directory
        self.repositories = repositories
        self.defaultRepository = defaultRepository
        self.stateDirectory = stateDirectory
        self.listen = listen
        self.policies = policies
        self.runbooks = runbooks
        self.problems = problems
        self.policyFiles = policyFiles
        self.runbookFiles = runbookFiles
    }

    /// A policy ready to use: it, its repository and `lifeboat.yaml` have no problems.
    ///
    /// - Throws: `LifeboatErrors` with those problems (bad input), or `.notFound` (with a
    ///   suggestion) when there is no such policy file.
    public func policy(named name: String) throws -> Policy {
        let blocking = problems(blocking: scopes(forPolicy: name))
        if !blocking.isEmpty { throw LifeboatErrors(blocking.map(\.error)) }
        if let policy = policies.first(where: { $0.name == name }) { return policy }
        var message = "no policy named '\(name)' in \(directory)/policies"
        let names = policyFiles.keys.sorted()
        if let suggestion = closestMatch(to: name, among: names) {
            message += " (did you mean '\(suggestion)'?)"
        }
        let known = names.isEmpty ? "none are defined" : "defined: \(names.joined(separator: ", "))"
        throw LifeboatError(.notFound, message, hint: "Run 'lifeboat list' or 'lifeboat check' to see the policies (\(known)).")
    }

    /// The scopes a command about `policy` uses: `lifeboat.yaml`, the policy, its repository.
    public func scopes(forPolicy name: String) -> Set<ConfigScope> {
        var scopes: Set<ConfigScope> = [.main, .policy(name)]
        if let policy = policies.first(where: { $0.name == name }) {
            scopes.insert(.repository(policy.repository ?? defaultRepository))
        }
        return scopes
    }

    /// The problems in any of `scopes`.
    public func problems(blocking scopes: Set<ConfigScope>) -> [ConfigProblem] {
        problems.filter { scopes.contains($0.scope) }
    }

    /// The problems outside `scopes`: what a command that uses only `scopes` reports as warnings.
    public func problems(outside scopes: Set<ConfigScope>) -> [ConfigProblem] {
        problems.filter { !scopes.contains($0.scope) }
    }

    /// Throws the problems of `lifeboat.yaml` itself, which every command needs.
    public func requireMain() throws {
        let blocking = problems(blocking: [.main])
        if !blocking.isEmpty { throw LifeboatErrors(blocking.map(\.error)) }
    }

    /// The policies a command over "every policy" (`list`) can use: those without problems in
    /// their own file or their repository.
    public var usablePolicies: [Policy] {
        policies.filter { problems(blocking: [.policy($0.name), .repository($0.repository ?? defaultRepository)]).isEmpty }
    }

    public func repository(named name: String) throws -> RepositoryConfig {
        guard let repository = repositories.first(where: { $0.name == name }) else {
            let blocking = problems(blocking: [.repository(name)])
            if !blocking.isEmpty { throw LifeboatErrors(blocking.map(\.error)) }
            throw LifeboatError(.notFound, "no repository named '\(name)' in \(directory)/lifeboat.yaml")
        }
        return repository
    }

    /// The repositories the policies use, or the default one when there are no policies.
    public var repositoriesInUse: [RepositoryConfig] {
        var names = Set(policies.map { $0.repository ?? defaultRepository })
        if names.isEmpty { names.insert(defaultRepository) }
        return repositories.filter { names.contains($0.name) }
    }

    /// The repository a policy writes to.
    public func repository(for policy: Policy) throws -> RepositoryConfig {
        try repository(named: policy.repository ?? defaultRepository)
    }
}

public struct RepositoryConfig: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A directory; absolute after loading.
        case local(path: String)
        case s3(S3RepositoryConfig)
    }

    public var name: String
    public var kind: Kind
    /// Client-side encryption of everything written to the repository (`EncryptedStore`).
    public var encryption: EncryptionConfig?

    public init(name: String, kind: Kind, encryption: EncryptionConfig? = nil) {
        self.name = name
        self.kind = kind
        self.encryption = encryption
    }
}

/// `encryption:` of a repository: where its master key is. Never the key itself.
public struct EncryptionConfig: Sendable, Equatable {
    public enum KeySource: Sendable, Equatable {
        /// `key_file`: a file (mode 0600) holding the key; absolute after loading.
        case file(String)
        /// `key_env`: an environment variable holding the key.
        case environment(String)
    }

    public var key: KeySource

    public init(key: KeySource) {
        self.key = key
    }

    /// Where the key is, for messages: never its value.
    public var origin: String {
        switch key {
        case .file(let path): return "key file \(path)"
        case .environment(let name): return "environment variable \(name)"
        }
    }

    static func parse(_ node: ConfigNode) -> EncryptionConfig? {
        guard let map = node.mapping(allowed: ["key_file", "key_env", "key"]) else { return nil }
        if let inline = map["key"] {
            inline.error("an encryption key is never written in the configuration",
                         hint: "Put the key in a file only you can read (chmod 600) and give its path as key_file, or give the name of an environment variable holding it as key_env.")
            return nil
        }
        guard let (kind, value) = map.exactlyOne(of: ["key_file", "key_env"], what: "encryption") else { return nil }
        if kind == "key_file" {
            return value.absolutePath().map { EncryptionConfig(key: .file($0)) }
        }
        guard let name = value.string() else { return nil }
        guard !name.isEmpty, name.utf8.allSatisfy({ $0 == UInt8(ascii: "_") || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }) else {
            value.error("'\(name)' is not the name of an environment variable",
                        hint: "Give the variable's name (such as LIFEBOAT_KEY), not its value.")
            return nil
        }
        return EncryptionConfig(key: .environment(name))
    }
}

public struct S3RepositoryConfig: Sendable, Equatable {
    public var endpoint: String
    public var region: String
    public var bucket: String
    public var prefix: String
    public var accessKeyID: String?
    public var secretAccessKey: String?
    public var sessionToken: String?
    public var profile: String?
    public var pathStyle: Bool
    public var caBundle: String?
    /// `insecure_skip_tls_verify: true`: the server's certificate is not checked (every run
    /// that opens the repository warns of it). Default false.
    public var insecureSkipTLSVerify = false
    /// `crc32c` (x-amz-checksum-crc32c, the default), `sha256` (x-amz-checksum-sha256) or `md5`
    /// (Content-MD5, for older S3-compatibles).
    public var checksum: String
    /// Parts uploaded (and ranges read ahead) at once.
    public var concurrency: Int

    public init(endpoint: String, region: String, bucket: String, prefix: String, accessKeyID: String?,
                secretAccessKey: String?, sessionToken: String?, profile: String?, pathStyle: Bool, caBundle: String?,
                checksum: String = "crc32c", concurrency: Int = S3RepositoryConfig.defaultConcurrency) {
        self.endpoint = endpoint
        self.region = region
        self.bucket = bucket
        self.prefix = prefix
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.profile = profile
        self.pathStyle = pathStyle
        self.caBundle = caBundle
        self.checksum = checksum
        self.concurrency = concurrency
    }

    public static let defaultConcurrency = 6

    /// A key prefix as stored: empty, or ending in exactly one `/` and not starting with one.
    public static func normalizedPrefix(_ prefix: String) -> String {
        var trimmed = Substring(prefix)
        while trimmed.hasPrefix("/") { trimmed = trimmed.dropFirst() }
        while trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        return trimmed.isEmpty ? "" : trimmed + "/"
    }
}

public struct Policy: Sendable {
    public var name: String
    /// The file it was read from, relative to the configuration directory.
    public var file: String
    /// The source, as its kind reads it (see `SourceConfiguration`).
    public var source: any SourceConfiguration
    public var schedule: Schedule?
    /// The repository's name; nil means the configuration's default repository.
    public var repository: String?
    public var retention: Retention
    public var compression: Compression
    public var compressionLevel: Int
    /// zstd worker threads (`compression.threads`); 0 means automatic: one per online CPU.
    public var compressionThreads: Int

    public init(name: String, file: String, source: any SourceConfiguration, schedule: Schedule? = nil, repository: String? = nil,
                retention: Retention = Retention(), compression: Compression = .zstd, compressionLevel: Int = 3,
                compressionThreads: Int = 0) {
        self.name = name
        self.file = file
        self.source = source
        self.schedule = schedule
        self.repository = repository
        self.retention = retention
        self.compression = compression
        self.compressionLevel = compressionLevel
        self.compressionThreads = compressionThreads
    }
}

public struct Schedule: Sendable {
    public var cron: CronExpression
    public var timezone: String
    public var jitter: ConfigDuration?

    public init(cron: CronExpression, timezone: String = "UTC", jitter: ConfigDuration? = nil) {
        self.cron = cron
        self.timezone = timezone
        self.jitter = jitter
    }
}

/// A policy's `retention:` rules: what `lifeboat prune` keeps. Rules add up — a backup kept by
/// any rule is kept — and only committed backups count. `RetentionPlanner` applies them; the
/// README documents their meaning.
public struct Retention: Sendable, Equatable {
    /// Keep what restores any moment of the last `recoveryWindow` need: the newest backup
    /// consistent at or before the window's start, and every backup after it (for PostgreSQL
    /// base backups, with the WAL from that backup on).
    public var recoveryWindow: ConfigDuration?
    /// Keep every backup started within this span before the newest backup.
    public var keepWithin: ConfigDuration?
    /// Keep the newest `keepLast` backups.
    public var keepLast: Int?
    /// Keep the newest backup of each of the newest `n` hours / days / ISO weeks / months /
    /// years that have backups, in the policy's time zone.
    public var keepHourly: Int?
    public var keepDaily: Int?
    public var keepWeekly: Int?
    public var keepMonthly: Int?
    public var keepYearly: Int?
    /// Keep the newest backup of each hour / day / ISO week / month / year, for the periods
    /// within this span before the newest backup.
    public var keepWithinHourly: ConfigDuration?
    public var keepWithinDaily: ConfigDuration?
    public var keepWithinWeekly: ConfigDuration?
    public var keepWithinMonthly: ConfigDuration?
    public var keepWithinYearly: ConfigDuration?

    public init(recoveryWindow: ConfigDuration? = nil, keepWithin: ConfigDuration? = nil, keepLast: Int? = nil,
                keepHourly: Int? = nil, keepDaily: Int? = nil, keepWeekly: Int? = nil, keepMonthly: Int? = nil,
                keepYearly: Int? = nil, keepWithinHourly: ConfigDuration? = nil, keepWithinDaily: ConfigDuration? = nil,
                keepWithinWeekly: ConfigDuration? = nil, keepWithinMonthly: ConfigDuration? = nil,
                keepWithinYearly: ConfigDuration? = nil) {
        self.recoveryWindow = recoveryWindow
        self.keepWithin = keepWithin
        self.keepLast = keepLast
        self.keepHourly = keepHourly
        self.keepDaily = keepDaily
        self.keepWeekly = keepWeekly
        self.keepMonthly = keepMonthly
        self.keepYearly = keepYearly
        self.keepWithinHourly = keepWithinHourly
        self.keepWithinDaily = keepWithinDaily
        self.keepWithinWeekly = keepWithinWeekly
        self.keepWithinMonthly = keepWithinMonthly
        self.keepWithinYearly = keepWithinYearly
    }

    /// No rule at all: prune keeps everything.
    public var isEmpty: Bool { rules.isEmpty }

    /// The rules that are set, as configuration writes them (`keep_daily: 7`), in a fixed order.
    public var rules: [String] {
        var rules: [String] = []
        func add(_ key: String, _ value: (some CustomStringConvertible)?) {
            if let value { rules.append("\(key): \(value)") }
        }
        add("recovery_window", recoveryWindow)
        add("keep_last", keepLast)
        add("keep_hourly", keepHourly)
        add("keep_daily", keepDaily)
        add("keep_weekly", keepWeekly)
        add("keep_monthly", keepMonthly)
        add("keep_yearly", keepYearly)
        add("keep_within", keepWithin)
        add("keep_within_hourly", keepWithinHourly)
        add("keep_within_daily", keepWithinDaily)
        add("keep_within_weekly", keepWithinWeekly)
        add("keep_within_monthly", keepWithinMonthly)
        add("keep_within_yearly", keepWithinYearly)
        return rules
    }
}

extension Configuration {
    /// A runbook ready to run (`recover`, `drill`): it, `lifeboat.yaml`, and the policies it
    /// restores (with their repositories) have no problems.
    ///
    /// - Throws: `LifeboatErrors` with those problems (bad input, as `lifeboat check` reports
    ///   them), or `.notFound` (with a suggestion) when there is no such runbook file.
    public func runbookForCommand(named name: String) throws -> Runbook {
        var scopes: Set<ConfigScope> = [.main, .runbook(name)]
        if let runbook = runbooks.first(where: { $0.name == name }) {
            for restore in runbook.restoreSteps { scopes.formUnion(self.scopes(forPolicy: restore.policy)) }
        }
        let blocking = problems(blocking: scopes)
        if !blocking.isEmpty { throw LifeboatErrors(blocking.map(\.error)) }
        if let runbook = runbooks.first(where: { $0.name == name }) { return runbook }
        var message = "no runbook named '\(name)' in \(directory)/runbooks"
        let names = runbookFiles.keys.sorted()
        if let suggestion = closestMatch(to: name, among: names) { message += " (did you mean '\(suggestion)'?)" }
        let known = names.isEmpty ? "none are defined" : "defined: \(names.joined(separator: ", "))"
        throw LifeboatError(.notFound, message, hint: "Run 'lifeboat check' to see the runbooks (\(known)).")
    }
}
