import Foundation
import Yams

/// A whole configuration directory: `lifeboat.yaml`, `policies/*.yaml`, `runbooks/*.yaml`.
public struct Configuration: Sendable {
    /// Absolute path of the configuration directory; relative paths in it resolve against it.
    public var directory: String
    public var repositories: [RepositoryConfig]
    public var defaultRepository: String
    public var stateDirectory: String?
    public var listen: String?
    public var policies: [Policy]
    public var runbooks: [Runbook]

    /// Name of the repository used when a policy names none and `lifeboat.yaml` sets no
    /// `default_repository`: `./.lifeboat/repository` in the configuration directory.
    public static let builtinRepositoryName = "default"
    public static let builtinRepositoryPath = ".lifeboat/repository"

    public func policy(named name: String) throws -> Policy {
        if let policy = policies.first(where: { $0.name == name }) { return policy }
        var message = "no policy named '\(name)' in \(directory)/policies"
        if let suggestion = closestMatch(to: name, among: policies.map(\.name)) {
            message += " (did you mean '\(suggestion)'?)"
        }
        let known = policies.isEmpty ? "none are defined" : "defined: \(policies.map(\.name).joined(separator: ", "))"
        throw LifeboatError(.notFound, message, hint: "Run 'lifeboat list' or 'lifeboat check' to see the policies (\(known)).")
    }

    public func repository(named name: String) throws -> RepositoryConfig {
        guard let repository = repositories.first(where: { $0.name == name }) else {
            throw LifeboatError(.notFound, "no repository named '\(name)' in \(directory)/lifeboat.yaml")
        }
        return repository
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
    /// `sha256` (x-amz-checksum-sha256) or `md5` (Content-MD5, for older S3-compatibles).
    public var checksum: String
    /// Parts uploaded (and ranges read ahead) at once.
    public var concurrency: Int

    public init(endpoint: String, region: String, bucket: String, prefix: String, accessKeyID: String?,
                secretAccessKey: String?, sessionToken: String?, profile: String?, pathStyle: Bool, caBundle: String?,
                checksum: String = "sha256", concurrency: Int = S3RepositoryConfig.defaultConcurrency) {
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
}

public struct Policy: Sendable {
    public var name: String
    /// The file it was read from, relative to the configuration directory.
    public var file: String
    public var source: SourceConfig
    public var schedule: Schedule?
    /// The repository's name; nil means the configuration's default repository.
    public var repository: String?
    public var retention: Retention
    public var compression: Compression
    public var compressionLevel: Int
}

public enum SourceConfig: Sendable {
    case postgres(PostgresSourceConfig)
    case files(FilesSourceConfig)

    public var kind: String {
        switch self {
        case .postgres: return "postgres"
        case .files: return "files"
        }
    }
}

public struct PostgresSourceConfig: Sendable {
    public enum Mode: String, Sendable { case logical, physical }
    /// libpq conninfo. May hold a password (after `${VAR}` interpolation): never print it.
    public var conninfo: String
    public var mode: Mode
    /// Databases to dump; nil means every database that is not a template.
    public var databases: [String]?
    /// Whether to dump roles and tablespaces (`pg_dumpall --globals-only`).
    public var globals: Bool
    /// Where pg_dump, pg_restore, … are; nil finds the ones matching the server's version.
    public var binDir: String?
}

public struct FilesSourceConfig: Sendable {
    /// Absolute path of the directory tree to back up.
    public var path: String
    /// Paths (relative to `path`) left out of the backup.
    public var exclude: PathPatterns
}

public struct Schedule: Sendable {
    public var cron: CronExpression
    public var timezone: String
    public var jitter: ConfigDuration?
}

public struct Retention: Sendable, Equatable {
    /// PostgreSQL point-in-time recovery window.
    public var recoveryWindow: ConfigDuration?
    /// Keep every backup younger than this.
    public var keepWithin: ConfigDuration?
    /// Keep at least this many of the newest backups.
    public var keepLast: Int?

    public init(recoveryWindow: ConfigDuration? = nil, keepWithin: ConfigDuration? = nil, keepLast: Int? = nil) {
        self.recoveryWindow = recoveryWindow
        self.keepWithin = keepWithin
        self.keepLast = keepLast
    }
}

public struct Runbook: Sendable {
    public var name: String
    public var file: String
    public var objectives: Objectives?
    public var steps: [RunbookStep]
}

public struct Objectives: Sendable, Equatable {
    public var rto: ConfigDuration?
    public var rpo: ConfigDuration?
}

public enum RunbookStep: Sendable {
    case restore(policy: String, target: RestoreTarget)
    case run(command: [String])
    case health(checks: [HealthCheck], within: ConfigDuration?)
    case manual(String)
}

public struct RestoreTarget: Sendable {
    public var conninfo: String?
    public var path: String?
    public var dataDirectory: String?
    public var time: String?
}

public enum HealthCheck: Sendable {
    case http(url: String, status: Int, json: [String: String])
    case postgres(conninfo: String, query: String)
}

// MARK: - Loading

/// One configuration file's text, and its name relative to the configuration directory
/// (used in every message about it).
public struct ConfigFile: Sendable {
    public var name: String
    public var text: String
    public init(name: String, text: String) {
        self.name = name
        self.text = text
    }
}

public enum ConfigurationParser {
    /// Parses a configuration directory's files (read by the caller). Reports every error
    /// found, each with `file:line:column`, by throwing `LifeboatErrors`.
    ///
    /// - Parameters:
    ///   - directory: absolute path of the configuration directory.
    ///   - main: `lifeboat.yaml`, or nil when the directory has none (defaults apply).
    ///   - policies, runbooks: the files of `policies/` and `runbooks/`.
    ///   - environment: for `${VAR}` interpolation.
    public static func parse(
        directory: String, main: ConfigFile?, policies: [ConfigFile], runbooks: [ConfigFile],
        environment: [String: String]
    ) throws(LifeboatErrors) -> Configuration {
        let diagnostics = ConfigDiagnostics()
        var configuration = Configuration(
            directory: directory, repositories: [], defaultRepository: Configuration.builtinRepositoryName,
            stateDirectory: nil, listen: nil, policies: [], runbooks: [])
        var defaultRepositoryNode: ConfigNode?

        if let main, let root = document(main, diagnostics, environment),
           let map = root.mapping(allowed: ["repositories", "default_repository", "state_dir", "listen"]) {
            if let repositories = map["repositories"], let repoMap = repositories.mapping(allowed: repositories.keysOfMapping) {
                for entry in repoMap.entries {
                    guard isValidName(entry.key) else {
                        diagnostics.error(main.name, entry.keyMark, "'\(entry.key)' is not a valid repository name",
                                          hint: "Use letters, digits, '.', '_' and '-', starting with a letter or digit.")
                        continue
                    }
                    if let repository = parseRepository(entry.key, entry.value, directory: directory) {
                        configuration.repositories.append(repository)
                    }
                }
            }
            if let node = map["default_repository"] {
                defaultRepositoryNode = node
                if let name = node.name() { configuration.defaultRepository = name }
            }
            configuration.stateDirectory = map["state_dir"]?.string().map { absolute($0, in: directory) }
            configuration.listen = map["listen"]?.string()
        }
        if !configuration.repositories.contains(where: { $0.name == Configuration.builtinRepositoryName }) {
            configuration.repositories.append(RepositoryConfig(
                name: Configuration.builtinRepositoryName,
                kind: .local(path: absolute(Configuration.builtinRepositoryPath, in: directory))))
        }
        let repositoryNames = configuration.repositories.map(\.name)
        if let node = defaultRepositoryNode, !repositoryNames.contains(configuration.defaultRepository) {
            node.error(unknownRepositoryMessage(configuration.defaultRepository, repositoryNames))
        }

        var policyFiles: [String: String] = [:]
        for file in policies {
            guard let root = document(file, diagnostics, environment),
                  let (policy, nameNode, repositoryNode) = parsePolicy(root, file: file.name, directory: directory)
            else { continue }
            if let previous = policyFiles[policy.name] {
                nameNode.error("policy '\(policy.name)' is already defined in \(previous)")
                continue
            }
            if let repository = policy.repository, !repositoryNames.contains(repository) {
                repositoryNode?.error(unknownRepositoryMessage(repository, repositoryNames))
            }
            policyFiles[policy.name] = file.name
            configuration.policies.append(policy)
        }
        configuration.policies.sort { $0.name < $1.name }

        var runbookFiles: [String: String] = [:]
        for file in runbooks {
            guard let root = document(file, diagnostics, environment),
                  let (runbook, nameNode) = parseRunbook(root, file: file.name, directory: directory,
                                                         policies: Set(policyFiles.keys))
            else { continue }
            if let previous = runbookFiles[runbook.name] {
                nameNode.error("runbook '\(runbook.name)' is already defined in \(previous)")
                continue
            }
            runbookFiles[runbook.name] = file.name
            configuration.runbooks.append(runbook)
        }
        configuration.runbooks.sort { $0.name < $1.name }

        if !diagnostics.errors.isEmpty { throw LifeboatErrors(diagnostics.errors) }
        return configuration
    }

    static func unknownRepositoryMessage(_ name: String, _ known: [String]) -> String {
        var message = "unknown repository '\(name)'"
        if let suggestion = closestMatch(to: name, among: known) {
            message += " (did you mean '\(suggestion)'?)"
        } else {
            message += " (defined in lifeboat.yaml: \(known.joined(separator: ", ")))"
        }
        return message
    }

    static func document(_ file: ConfigFile, _ diagnostics: ConfigDiagnostics, _ environment: [String: String]) -> ConfigNode? {
        do {
            guard let node = try Yams.compose(yaml: file.text) else {
                diagnostics.error(file.name, nil, "the file is empty")
                return nil
            }
            return ConfigNode(node: node, file: file.name, path: "", diagnostics: diagnostics, environment: environment)
        } catch let error as YamlError {
            switch error {
            case .scanner(let context, let problem, let mark, _),
                 .parser(let context, let problem, let mark, _),
                 .composer(let context, let problem, let mark, _):
                var message = "malformed YAML: \(problem)"
                if let context { message += " (\(context.text) at line \(context.mark.line), column \(context.mark.column))" }
                diagnostics.error(file.name, mark, message)
            case .duplicatedKeysInMapping(let duplicates, let context):
                diagnostics.error(file.name, context.mark, "duplicate keys: \(duplicates.joined(separator: ", "))")
            case .reader(let problem, _, _, _):
                diagnostics.error(file.name, nil, "cannot read the file as YAML: \(problem)")
            default:
                diagnostics.error(file.name, nil, "malformed YAML: \(error)")
            }
            return nil
        } catch {
            diagnostics.error(file.name, nil, "malformed YAML: \(error)")
            return nil
        }
    }

    static func absolute(_ path: String, in directory: String) -> String {
        let expanded = path.hasPrefix("~/") ? NSString(string: path).expandingTildeInPath : path
        if expanded.hasPrefix("/") { return expanded }
        return URL(fileURLWithPath: directory).appendingPathComponent(expanded).standardizedFileURL.path
    }

    static func parseRepository(_ name: String, _ node: ConfigNode, directory: String) -> RepositoryConfig? {
        guard let map = node.mapping(allowed: ["path", "s3"]),
              let (kind, value) = map.exactlyOne(of: ["path", "s3"], what: "repository '\(name)'")
        else { return nil }
        switch kind {
        case "path":
            guard let path = value.string() else { return nil }
            return RepositoryConfig(name: name, kind: .local(path: absolute(path, in: directory)))
        default:
            guard let s3 = value.mapping(allowed: [
                "endpoint", "region", "bucket", "prefix", "access_key_id", "secret_access_key",
                "session_token", "profile", "path_style", "ca_bundle", "checksum", "concurrency",
            ]) else { return nil }
            let endpoint = s3.required("endpoint")?.string()
            if let endpoint, !(endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://")) {
                s3["endpoint"]?.error("endpoint '\(endpoint)' must start with http:// or https://")
                return nil
            }
            let bucket = s3.required("bucket")?.string()
            guard let endpoint, let bucket else { return nil }
            var prefix = s3["prefix"]?.string() ?? ""
            if !prefix.isEmpty, !prefix.hasSuffix("/") { prefix += "/" }
            return RepositoryConfig(name: name, kind: .s3(S3RepositoryConfig(
                endpoint: endpoint, region: s3["region"]?.string() ?? "us-east-1", bucket: bucket, prefix: prefix,
                accessKeyID: s3["access_key_id"]?.string(), secretAccessKey: s3["secret_access_key"]?.string(),
                sessionToken: s3["session_token"]?.string(), profile: s3["profile"]?.string(),
                pathStyle: s3["path_style"]?.bool() ?? true, caBundle: s3["ca_bundle"]?.string(),
                checksum: s3["checksum"]?.oneOf(["sha256", "md5"]) ?? "sha256",
                concurrency: s3["concurrency"]?.int(in: 1...64) ?? S3RepositoryConfig.defaultConcurrency)))
        }
    }

    static func parsePolicy(_ root: ConfigNode, file: String, directory: String) -> (Policy, ConfigNode, ConfigNode?)? {
        guard let map = root.mapping(allowed: ["policy", "source", "schedule", "repository", "retention", "compression"])
        else { return nil }
        let nameNode = map.required("policy")
        let name = nameNode?.name()
        let source = map.required("source").flatMap { parseSource($0, directory: directory) }
        let schedule = map["schedule"].flatMap(parseSchedule)
        let repository = map["repository"]?.name()
        let retention = map["retention"].flatMap(parseRetention) ?? Retention()
        var compression = Compression.zstd
        var level = 3
        if let node = map["compression"] {
            if let c = node.mapping(allowed: ["algorithm", "level"]) {
                if let algorithm = c["algorithm"]?.oneOf(Compression.allCases.map(\.rawValue)) {
                    compression = Compression(rawValue: algorithm) ?? .zstd
                }
                if let l = c["level"]?.int(in: 1...19) { level = l }
            }
        }
        guard let name, let nameNode, let source else { return nil }
        return (Policy(name: name, file: file, source: source, schedule: schedule, repository: repository,
                       retention: retention, compression: compression, compressionLevel: level),
                nameNode, map["repository"])
    }

    static func parseSource(_ node: ConfigNode, directory: String) -> SourceConfig? {
        guard let map = node.mapping(allowed: ["postgres", "files"]),
              let (kind, value) = map.exactlyOne(of: ["postgres", "files"], what: "'source'")
        else { return nil }
        switch kind {
        case "postgres":
            guard let pg = value.mapping(allowed: ["conninfo", "mode", "databases", "globals", "bin_dir"]) else { return nil }
            let conninfo = pg.required("conninfo")?.string()
            var mode = PostgresSourceConfig.Mode.logical
            if let modeNode = pg["mode"], let text = modeNode.oneOf(["logical", "physical"]) {
                mode = PostgresSourceConfig.Mode(rawValue: text) ?? .logical
                if mode == .physical {
                    modeNode.error("mode 'physical' (base backups and WAL archiving) is not available in this version",
                                   hint: "Use 'mode: logical' for pg_dump backups.")
                    return nil
                }
            }
            let databases = pg["databases"]?.stringList()
            if let databases, databases.isEmpty {
                pg["databases"]?.error("'databases' is empty; leave it out to back up every database")
            }
            let globals = pg["globals"]?.bool() ?? true
            let binDir = pg["bin_dir"]?.string().map { absolute($0, in: directory) }
            guard let conninfo else { return nil }
            return .postgres(PostgresSourceConfig(conninfo: conninfo, mode: mode, databases: databases,
                                                  globals: globals, binDir: binDir))
        default:
            guard let files = value.mapping(allowed: ["path", "exclude"]) else { return nil }
            let exclude = files["exclude"]?.stringList() ?? []
            guard let path = files.required("path")?.string() else { return nil }
            return .files(FilesSourceConfig(path: absolute(path, in: directory), exclude: PathPatterns(exclude)))
        }
    }

    static func parseSchedule(_ node: ConfigNode) -> Schedule? {
        guard let map = node.mapping(allowed: ["cron", "timezone", "jitter"]) else { return nil }
        var cron: CronExpression?
        if let cronNode = map.required("cron"), let text = cronNode.string() {
            do {
                cron = try CronExpression(parsing: text)
            } catch {
                cronNode.error("invalid cron expression: \(error.description)")
            }
        }
        let timezone = map["timezone"]?.string() ?? "UTC"
        if TimeZone(identifier: timezone) == nil {
            map["timezone"]?.error("unknown time zone '\(timezone)'", hint: "Use an IANA name such as UTC or Europe/Berlin.")
            return nil
        }
        let jitter = map["jitter"]?.duration()
        guard let cron else { return nil }
        return Schedule(cron: cron, timezone: timezone, jitter: jitter)
    }

    static func parseRetention(_ node: ConfigNode) -> Retention? {
        guard let map = node.mapping(allowed: ["recovery_window", "keep_within", "keep_last"]) else { return nil }
        return Retention(recoveryWindow: map["recovery_window"]?.duration(),
                         keepWithin: map["keep_within"]?.duration(),
                         keepLast: map["keep_last"]?.int(in: 1...100_000))
    }

    static func parseRunbook(_ root: ConfigNode, file: String, directory: String, policies: Set<String>) -> (Runbook, ConfigNode)? {
        guard let map = root.mapping(allowed: ["runbook", "objectives", "steps"]) else { return nil }
        let nameNode = map.required("runbook")
        let name = nameNode?.name()
        var objectives: Objectives?
        if let o = map["objectives"]?.mapping(allowed: ["rto", "rpo"]) {
            objectives = Objectives(rto: o["rto"]?.duration(), rpo: o["rpo"]?.duration())
        }
        var steps: [RunbookStep] = []
        if let stepsNode = map.required("steps"), let items = stepsNode.list() {
            if items.isEmpty { stepsNode.error("a runbook needs at least one step") }
            for item in items {
                if let step = parseStep(item, directory: directory, policies: policies) { steps.append(step) }
            }
        }
        guard let name, let nameNode else { return nil }
        return (Runbook(name: name, file: file, objectives: objectives, steps: steps), nameNode)
    }

    static func parseStep(_ node: ConfigNode, directory: String, policies: Set<String>) -> RunbookStep? {
        guard let map = node.mapping(allowed: ["restore", "target", "run", "health", "within", "manual"]),
              let (kind, value) = map.exactlyOne(of: ["restore", "run", "health", "manual"], what: "a runbook step")
        else { return nil }
        for key in ["target"] where kind != "restore" && map[key] != nil {
            map[key]?.error("'\(key)' belongs to a 'restore' step")
        }
        if kind != "health", let within = map["within"] { within.error("'within' belongs to a 'health' step") }
        switch kind {
        case "restore":
            guard let policy = value.name() else { return nil }
            if !policies.contains(policy) {
                var message = "runbook step restores unknown policy '\(policy)'"
                if let suggestion = closestMatch(to: policy, among: Array(policies)) { message += " (did you mean '\(suggestion)'?)" }
                value.error(message)
            }
            var target = RestoreTarget()
            if let t = map.required("target")?.mapping(allowed: ["conninfo", "path", "data_dir", "time"]) {
                target.conninfo = t["conninfo"]?.string()
                target.path = t["path"]?.string().map { absolute($0, in: directory) }
                target.dataDirectory = t["data_dir"]?.string().map { absolute($0, in: directory) }
                target.time = t["time"]?.string()
                if target.conninfo == nil, target.path == nil, target.dataDirectory == nil {
                    t.owner.error("a restore target needs one of: conninfo, path, data_dir")
                }
            }
            return .restore(policy: policy, target: target)
        case "run":
            guard let command = value.stringList() else { return nil }
            if command.isEmpty {
                value.error("'run' needs a command: a list of the program and its arguments")
                return nil
            }
            return .run(command: command)
        case "health":
            guard let items = value.list() else { return nil }
            var checks: [HealthCheck] = []
            for item in items {
                guard let c = item.mapping(allowed: ["http", "postgres"]),
                      let (checkKind, body) = c.exactlyOne(of: ["http", "postgres"], what: "a health check")
                else { continue }
                if checkKind == "http" {
                    guard let h = body.mapping(allowed: ["url", "status", "json"]),
                          let url = h.required("url")?.string() else { continue }
                    var json: [String: String] = [:]
                    if let j = h["json"], let jm = j.mapping(allowed: j.keysOfMapping) {
                        for entry in jm.entries { json[entry.key] = entry.value.string() }
                    }
                    checks.append(.http(url: url, status: h["status"]?.int(in: 100...599) ?? 200, json: json))
                } else {
                    guard let p = body.mapping(allowed: ["conninfo", "query"]),
                          let conninfo = p.required("conninfo")?.string() else { continue }
                    checks.append(.postgres(conninfo: conninfo, query: p["query"]?.string() ?? "select 1"))
                }
            }
            return .health(checks: checks, within: map["within"]?.duration())
        default:
            guard let text = value.string() else { return nil }
            return .manual(text)
        }
    }
}

extension ConfigNode {
    /// The keys of a mapping node as written (for maps whose keys are names, not a schema).
    var keysOfMapping: [String] {
        guard case .mapping(let mapping) = node else { return [] }
        return mapping.keys.compactMap { if case .scalar(let s) = $0 { return s.string } else { return nil } }
    }
}
