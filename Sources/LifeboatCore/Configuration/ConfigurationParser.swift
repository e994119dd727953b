import Foundation
import Yams

/// One configuration file's text, and its name relative to the configuration directory
/// (used in every message about it).
public struct ConfigFile: Sendable {
    public var name: String
    public var text: String
    /// Why the file could not be read (it is a directory, it may not be read by this user),
    /// when it could not: a problem of that file's scope alone, like any other.
    public var unreadable: String?

    public init(name: String, text: String) {
        self.name = name
        self.text = text
    }

    public init(name: String, unreadable reason: String) {
        self.name = name
        self.text = ""
        self.unreadable = reason
    }

    /// The file's name without its directory and `.yaml`/`.yml`: the name its policy or
    /// runbook must have.
    public var baseName: String {
        var name = Substring(self.name)
        if let slash = name.lastIndex(of: "/") { name = name[name.index(after: slash)...] }
        for suffix in [".yaml", ".yml"] where name.hasSuffix(suffix) {
            name = name.dropLast(suffix.count)
            break
        }
        return String(name)
    }
}

public enum ConfigurationParser {
    /// Parses a configuration directory's files (read by the caller). Never throws: every
    /// problem found is in the result's `problems`, with `file:line:column` and the scope it
    /// blocks.
    ///
    /// - Parameters:
    ///   - directory: absolute path of the configuration directory.
    ///   - main: `lifeboat.yaml`, or nil when the directory has none (defaults apply).
    ///   - policies, runbooks: the files of `policies/` and `runbooks/`.
    ///   - sources: how each source kind reads `source: { <kind>: … }`.
    ///   - environment: for `${VAR}` interpolation.
    public static func parse(
        directory: String, main: ConfigFile?, policies: [ConfigFile], runbooks: [ConfigFile],
        sources: [SourceKindParser], environment: [String: String]
    ) -> Configuration {
        let diagnostics = ConfigDiagnostics()
        var configuration = Configuration(directory: directory)
        var defaultRepositoryNode: ConfigNode?
        var declaredRepositories: Set<String> = [Configuration.builtinRepositoryName]

        if let main, let root = document(main, diagnostics, environment, directory: directory),
           let map = root.mapping(allowed: ["repositories", "default_repository", "state_dir", "listen", "listen_token_file", "scheduler"]) {
            if let repositories = map["repositories"], let repoMap = repositories.mapping(allowed: repositories.keysOfMapping) {
                for entry in repoMap.entries {
                    declaredRepositories.insert(entry.key)
                    diagnostics.within(.repository(entry.key)) {
                        guard isValidName(entry.key) else {
                            diagnostics.error(main.name, entry.keyMark, "'\(entry.key)' is not a valid repository name",
                                              hint: "Use letters, digits, '.', '_' and '-', starting with a letter or digit.")
                            return
                        }
                        if let repository = parseRepository(entry.key, entry.value) {
                            configuration.repositories.append(repository)
                        }
                    }
                }
            }
            if let node = map["default_repository"] {
                defaultRepositoryNode = node
                if let name = node.name() { configuration.defaultRepository = name }
            }
            configuration.stateDirectory = map["state_dir"]?.absolutePath()
            if let node = map["listen"], let text = node.string() {
                do {
                    configuration.listen = try ListenAddress(parsing: text)
                } catch {
                    node.error(error.description, hint: "Write host:port (127.0.0.1:9187), [::1]:9187, :9187 for every interface, or off.")
                }
            }
            configuration.listenTokenFile = map["listen_token_file"]?.absolutePath()
            if let node = map["scheduler"] { configuration.scheduler = SchedulerSettings.parse(node) }
        }
        if !configuration.repositories.contains(where: { $0.name == Configuration.builtinRepositoryName }) {
            configuration.repositories.append(RepositoryConfig(
                name: Configuration.builtinRepositoryName,
                kind: .local(path: resolvePath(Configuration.builtinRepositoryPath, in: directory))))
        }
        let repositoryNames = declaredRepositories.sorted()
        if let node = defaultRepositoryNode, !declaredRepositories.contains(configuration.defaultRepository) {
            node.error(unknownRepositoryMessage(configuration.defaultRepository, repositoryNames))
        }

        for file in policies {
            let name = file.baseName
            if let previous = configuration.policyFiles[name] {
                diagnostics.within(.policy(name)) {
                    diagnostics.error(file.name, nil, "policy '\(name)' is already defined in \(previous)",
                                      hint: "Keep one file per policy: policies/\(name).yaml.")
                }
                continue
            }
            configuration.policyFiles[name] = file.name
            diagnostics.within(.policy(name)) {
                guard let root = document(file, diagnostics, environment, directory: directory),
                      let (policy, repositoryNode) = parsePolicy(root, file: file, sources: sources)
                else { return }
                if let repository = policy.repository, !declaredRepositories.contains(repository) {
                    repositoryNode?.error(unknownRepositoryMessage(repository, repositoryNames))
                    return
                }
                configuration.policies.append(policy)
            }
        }
        configuration.policies.sort { $0.name < $1.name }

        let policiesByName = Dictionary(configuration.policies.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for file in runbooks {
            let name = file.baseName
            if let previous = configuration.runbookFiles[name] {
                diagnostics.within(.runbook(name)) {
                    diagnostics.error(file.name, nil, "runbook '\(name)' is already defined in \(previous)",
                                      hint: "Keep one file per runbook: runbooks/\(name).yaml.")
                }
                continue
            }
            configuration.runbookFiles[name] = file.name
            diagnostics.within(.runbook(name)) {
                guard let root = document(file, diagnostics, environment, directory: directory),
                      let runbook = RunbookParser.parse(root, file: file, policies: policiesByName,
                                                 policyFiles: Set(configuration.policyFiles.keys))
                else { return }
                configuration.runbooks.append(runbook)
            }
        }
        configuration.runbooks.sort { $0.name < $1.name }
        configuration.problems = diagnostics.problems
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

    static func document(_ file: ConfigFile, _ diagnostics: ConfigDiagnostics, _ environment: [String: String],
                         directory: String) -> ConfigNode? {
        if let reason = file.unreadable {
            diagnostics.error(file.name, nil, "cannot read the file: \(reason)", hint: "Fix the file's type or permissions, or remove it.")
            return nil
        }
        do {
            guard let node = try Yams.compose(yaml: file.text) else {
                diagnostics.error(file.name, nil, "the file is empty")
                return nil
            }
            return ConfigNode(node: node, file: file.name, path: "", diagnostics: diagnostics, environment: environment,
                              directory: directory)
        } catch let error as YamlError {
            switch error {
            case .scanner(let context, let problem, let mark, _),
                 .parser(let context, let problem, let mark, _),
                 .composer(let context, let problem, let mark, _):
                var message = "malformed YAML: \(problem)"
                if let context { message += " (\(context.text) at line \(context.mark.line), column \(context.mark.column))" }
                diagnostics.error(file.name, mark, message)
            case .duplicatedKeysInMapping(let duplicates, let context):
                let found = DuplicateKeys.find(in: file.text)
                if found.isEmpty {
                    diagnostics.error(file.name, context.mark, "duplicate keys: \(duplicates.joined(separator: ", "))")
                }
                for duplicate in found {
                    diagnostics.error(file.name, line: duplicate.line, column: duplicate.column,
                                      "duplicate key '\(duplicate.key)' (first at line \(duplicate.firstLine))",
                                      hint: "Keep one of them: YAML does not merge repeated keys.")
                }
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

    // MARK: Repositories

    static func parseRepository(_ name: String, _ node: ConfigNode) -> RepositoryConfig? {
        guard let map = node.mapping(allowed: ["path", "s3", "encryption"]) else { return nil }
        var encryption: EncryptionConfig?
        if let node = map["encryption"] {
            guard let parsed = EncryptionConfig.parse(node) else { return nil }
            encryption = parsed
        }
        guard let (kind, value) = map.exactlyOne(of: ["path", "s3"], what: "repository '\(name)'") else { return nil }
        switch kind {
        case "path":
            guard let path = value.absolutePath() else { return nil }
            return RepositoryConfig(name: name, kind: .local(path: path), encryption: encryption)
        default:
            guard let s3 = value.mapping(allowed: S3Connection.keys + ["bucket", "prefix", "concurrency"]) else { return nil }
            let connection = S3Connection.parse(s3)
            let bucket = s3.required("bucket")?.string()
            let prefix = s3["prefix"]?.string()
            let concurrency = s3["concurrency"]?.int(in: 1...64)
            // A value that was given but could not be read is an error already reported:
            // do not fall back to a default for it.
            for (key, value) in [("prefix", prefix as Any?), ("concurrency", concurrency)]
                where s3[key] != nil && value == nil {
                return nil
            }
            guard var config = connection, let bucket else { return nil }
            config.bucket = bucket
            config.prefix = S3RepositoryConfig.normalizedPrefix(prefix ?? "")
            config.concurrency = concurrency ?? S3RepositoryConfig.defaultConcurrency
            return RepositoryConfig(name: name, kind: .s3(config), encryption: encryption)
        }
    }

    // MARK: Policies

    /// The names at the top of a repository that are not policies' (a policy's objects are
    /// under `<policy>/`): a policy named so would have its backups read as locks or key files.
    public static let reservedPolicyNames = ["keys", "lifeboat.json", "locks"]

    static let policyKeys = ["policy", "source", "schedule", "repository", "retention", "compression"]

    /// The policy, and the node of its `repository` key (to report an unknown repository at).
    static func parsePolicy(_ root: ConfigNode, file: ConfigFile, sources: [SourceKindParser]) -> (Policy, ConfigNode?)? {
        guard let map = root.mapping(allowed: policyKeys) else { return nil }
        let nameNode = map.required("policy")
        var name = nameNode?.name()
        if let given = name, given != file.baseName {
            nameNode?.error("policy '\(given)' is in \(file.name); a policy's file is named after it",
                            hint: "Rename the file to policies/\(given).yaml, or the policy to '\(file.baseName)'.")
            name = nil
        }
        if let given = name, reservedPolicyNames.contains(given) {
            nameNode?.error("'\(given)' cannot name a policy: the repository keeps its own \(given == "lifeboat.json" ? "format marker" : given) there",
                            hint: "Choose another name (and rename the file to match); \(reservedPolicyNames.map { "'\($0)'" }.joined(separator: ", ")) are reserved.")
            name = nil
        }
        let source = map.required("source").flatMap { parseSource($0, sources: sources) }
        let schedule = map["schedule"].flatMap(parseSchedule)
        let repositoryNode = map["repository"]
        let repository = repositoryNode?.name()
        let retention = map["retention"].flatMap(parseRetention)
        var compression = Compression.zstd
        var level = 3
        var threads = 0
        var compressionValid = true
        if let node = map["compression"] {
            compressionValid = false
            if let c = node.mapping(allowed: ["algorithm", "level", "threads"]) {
                let algorithm = c["algorithm"]?.oneOf(Compression.allCases.map(\.rawValue))
                let l = c["level"]?.int(in: 1...19)
                // 0 or absent: one zstd worker per online CPU (ArtifactWriter.compressionThreads).
                let t = c["threads"]?.int(in: 0...Compression.maximumThreads)
                compression = algorithm.flatMap(Compression.init(rawValue:)) ?? .zstd
                level = l ?? 3
                threads = t ?? 0
                compressionValid = (c["algorithm"] == nil || algorithm != nil) && (c["level"] == nil || l != nil)
                    && (c["threads"] == nil || t != nil)
            }
        }
        guard let name, let source, compressionValid,
              map["schedule"] == nil || schedule != nil, map["retention"] == nil || retention != nil,
              repositoryNode == nil || repository != nil
        else { return nil }
        for secret in source.secrets { Secrets.register(secret) }
        return (Policy(name: name, file: file.name, source: source, schedule: schedule, repository: repository,
                       retention: retention ?? Retention(), compression: compression, compressionLevel: level,
                       compressionThreads: threads),
                repositoryNode)
    }

    static func parseSource(_ node: ConfigNode, sources: [SourceKindParser]) -> (any SourceConfiguration)? {
        let kinds = sources.map(\.kind)
        guard let map = node.mapping(allowed: kinds),
              let (kind, value) = map.exactlyOne(of: kinds, what: "'source'"),
              let parser = sources.first(where: { $0.kind == kind })
        else { return nil }
        return parser.parse(value)
    }

    static let scheduleKeys = ["cron", "timezone", "jitter"]

    static func parseSchedule(_ node: ConfigNode) -> Schedule? {
        guard let map = node.mapping(allowed: scheduleKeys) else { return nil }
        return parseSchedule(map)
    }

    /// The schedule keys of a mapping that may hold others (`scheduler.verify`).
    static func parseSchedule(_ map: ConfigMapping) -> Schedule? {
        var cron: CronExpression?
        if let cronNode = map.required("cron"), let text = cronNode.string() {
            do {
                let expression = try CronExpression(parsing: text)
                if expression.firesOnSomeDay {
                    cron = expression
                } else {
                    cronNode.error("cron expression '\(text)' never fires: no month of '\(text)' has the days it names",
                                   hint: "Check the day-of-month and month fields (February has at most 29 days; April, June, September and November 30).")
                }
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
        guard let cron, map["jitter"] == nil || jitter != nil else { return nil }
        if let jitter, let interval = cron.shortestInterval, jitter.seconds >= interval {
            map["jitter"]?.error("jitter \(jitter) is not shorter than the shortest interval of '\(cron)' (\(ConfigDuration(seconds: interval))): a run could start after the next one is due",
                                 hint: "Use a jitter well below the interval between runs, e.g. a tenth of it.")
            return nil
        }
        return Schedule(cron: cron, timezone: timezone, jitter: jitter)
    }

    static let retentionCounts = ["keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"]
    static let retentionDurations = ["recovery_window", "keep_within", "keep_within_hourly", "keep_within_daily",
                                     "keep_within_weekly", "keep_within_monthly", "keep_within_yearly"]

    static func parseRetention(_ node: ConfigNode) -> Retention? {
        guard let map = node.mapping(allowed: retentionDurations + retentionCounts) else { return nil }
        var counts: [String: Int] = [:]
        var durations: [String: ConfigDuration] = [:]
        var valid = true
        for key in retentionCounts {
            guard let value = map[key] else { continue }
            if let count = value.int(in: 1...100_000) { counts[key] = count } else { valid = false }
        }
        for key in retentionDurations {
            guard let value = map[key] else { continue }
            if let duration = value.positiveDuration() { durations[key] = duration } else { valid = false }
        }
        guard valid else { return nil }
        return Retention(recoveryWindow: durations["recovery_window"], keepWithin: durations["keep_within"],
                         keepLast: counts["keep_last"], keepHourly: counts["keep_hourly"], keepDaily: counts["keep_daily"],
                         keepWeekly: counts["keep_weekly"], keepMonthly: counts["keep_monthly"], keepYearly: counts["keep_yearly"],
                         keepWithinHourly: durations["keep_within_hourly"], keepWithinDaily: durations["keep_within_daily"],
                         keepWithinWeekly: durations["keep_within_weekly"], keepWithinMonthly: durations["keep_within_monthly"],
                         keepWithinYearly: durations["keep_within_yearly"])
    }
}

/// A path resolved against the configuration directory (`~/` against the home directory).
func resolvePath(_ path: String, in directory: String) -> String {
    let expanded = path.hasPrefix("~/") ? NSString(string: path).expandingTildeInPath : path
    if expanded.hasPrefix("/") { return URL(fileURLWithPath: expanded).standardizedFileURL.path }
    return URL(fileURLWithPath: directory).appendingPathComponent(expanded).standardizedFileURL.path
}

extension ConfigNode {
    /// The keys of a mapping node as written (for maps whose keys are names, not a schema).
    var keysOfMapping: [String] {
        guard case .mapping(let mapping) = node else { return [] }
        return mapping.keys.compactMap { if case .scalar(let s) = $0 { return s.string } else { return nil } }
    }
}
