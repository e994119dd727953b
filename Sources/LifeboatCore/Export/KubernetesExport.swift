/// `lifeboat export kubernetes`: a ConfigMap holding the configuration directory's files as
/// they are, and a `batch/v1` CronJob per scheduled policy, for prune, and per scheduled
/// runbook (drills). Pure: the caller reads the files and parses the configuration with
/// `configMount` as its directory (so relative paths resolve where the pod sees them).
///
/// Secrets are never written: every `${VAR}` the files use becomes an environment variable
/// of the container taken from a Secret (`secretKeyRef`, key = the variable's name), and the
/// ConfigMap holds the files' text with the references intact.
public enum KubernetesExport {
    public struct Options: Sendable {
        public var namespace: String?
        public var image: String
        public var secretName: String
        public var configMapName: String

        public init(namespace: String? = nil, image: String = KubernetesExport.defaultImage, secretName: String = "lifeboat",
                    configMapName: String = "lifeboat") {
            self.namespace = namespace
            self.image = image
            self.secretName = secretName
            self.configMapName = configMapName
        }
    }

    public struct Result: Sendable {
        /// One file per object: `configmap-NAME.yaml`, `cronjob-NAME.yaml`.
        public var files: [ExportedFile]
        /// What the person exporting should know (jitter dropped, no state_dir).
        public var notes: [String]

        /// Every object as one multi-document YAML stream.
        public var stream: String { files.map { "---\n" + $0.text }.joined() }
    }

    /// Where the ConfigMap is mounted and what `--config` says in the pod.
    public static let configMount = "/etc/lifeboat"
    public static let defaultImage = "lifeboat:\(LifeboatVersion.current)"
    /// Prune's schedule when `scheduler.prune` sets none.
    public static let defaultPruneSchedule = "0 4 * * *"
    /// A CronJob's name may have at most 52 characters: its Jobs add 11 to it (and a Job's
    /// name becomes a label value, at most 63).
    public static let maximumCronJobName = 52
    /// A ConfigMap holds at most 1 MiB.
    public static let maximumConfigMapBytes = 1 << 20
    /// The non-root user and group the pods run as (as distroless's `nonroot`).
    public static let runAsUser: Int64 = 65532

    /// One job to schedule: a backup, prune, or a drill.
    struct Job {
        var component: String
        var subject: String?
        var schedule: Schedule
        var arguments: [String]
        /// Local repositories the job writes or reads.
        var repositories: [RepositoryConfig]
        /// Directories the job restores into (a drill's targets).
        var scratch: [String]
    }

    public static func generate(configuration: Configuration, files: [ConfigFile], options: Options) throws -> Result {
        let blocking = configuration.problems
        if !blocking.isEmpty { throw LifeboatErrors(blocking.map(\.error)) }
        for (what, name) in [("--secret", options.secretName), ("--namespace", options.namespace ?? "default"),
                             ("the ConfigMap name", options.configMapName)] where !isDNSLabel(name) {
            throw LifeboatError(.usage, "\(what) '\(name)' is not a valid Kubernetes name",
                                hint: "Use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit.")
        }
        if options.image.isEmpty || options.image.contains(where: { $0.isWhitespace }) {
            throw LifeboatError(.usage, "--image '\(options.image)' is not an image reference", hint: "Give it as REGISTRY/NAME:TAG.")
        }
        var notes: [String] = []
        let references = try secretReferences(files: files, configuration: configuration)
        let configMap = try configMapObject(files: files, options: options)

        var jobs: [(name: String, job: Job)] = []
        var owners: [String: String] = [:]
        // Every name that collides and every repository a pod cannot write is reported at once.
        var refused = RefusedObjects()
        func add(_ job: @autoclosure () throws -> Job, what: String) throws {
            try refused.collect {
                let job = try job()
                let name = cronJobName(component: job.component, subject: job.subject)
                if let other = owners[name] {
                    throw LifeboatError(.configuration, "\(other) and \(what) would both be the CronJob '\(name)'",
                                        hint: "Kubernetes names are lower-case letters, digits and '-' (at most \(maximumCronJobName) characters): rename one of them so that they differ there.")
                }
                owners[name] = what
                jobs.append((name, job))
            }
        }
        for policy in configuration.policies {
            guard let schedule = policy.schedule else { continue }
            if let jitter = schedule.jitter { notes.append("policy \(policy.name): jitter \(jitter) is not applied (a CronJob has no jitter; it starts at the cron time)") }
            try add(Job(component: "backup", subject: policy.name, schedule: schedule,
                        arguments: ["backup", policy.name], repositories: try localRepositories([policy], configuration),
                        scratch: []), what: "policy '\(policy.name)'")
        }
        let prune = configuration.scheduler.prune
            ?? Schedule(cron: try! CronExpression(parsing: defaultPruneSchedule), timezone: "UTC")  // a constant that parses
        if prune.jitter != nil { notes.append("scheduler.prune: jitter is not applied (a CronJob has no jitter)") }
        try add(Job(component: "prune", subject: nil, schedule: prune, arguments: ["prune"],
                    repositories: try localRepositories(configuration.policies, configuration), scratch: []), what: "prune")
        for runbook in configuration.runbooks {
            guard let schedule = runbook.schedule else { continue }
            if schedule.jitter != nil { notes.append("runbook \(runbook.name): jitter is not applied (a CronJob has no jitter)") }
            var restored: [Policy] = []
            var scratch: [String] = []
            for step in runbook.restoreSteps {
                if let policy = configuration.policies.first(where: { $0.name == step.policy }) { restored.append(policy) }
                switch step.target.target.location {
                case .directory(let path), .dataDirectory(let path): scratch.append(path)
                default: break
                }
            }
            try add(Job(component: "drill", subject: runbook.name, schedule: schedule, arguments: ["drill", runbook.name],
                        repositories: try localRepositories(restored, configuration), scratch: scratch),
                    what: "runbook '\(runbook.name)'")
        }
        try refused.throwIfAny()
        if configuration.stateDirectory == nil {
            notes.append("state_dir is not set: its default lies in the ConfigMap's read-only mount; backups do not need it, but set state_dir (e.g. /var/lib/lifeboat) for commands that record state")
        }
        let state = configuration.stateDirectory.flatMap { isInsideConfigMount($0) ? nil : $0 }
        var result = [ExportedFile(name: "configmap-\(options.configMapName).yaml", text: configMap.document())]
        for (name, job) in jobs {
            let object = cronJob(name: name, job: job, configuration: configuration, files: files, references: references,
                                 stateDirectory: state, options: options)
            result.append(ExportedFile(name: "cronjob-\(name).yaml", text: object.document()))
        }
        return Result(files: result, notes: notes)
    }

    // MARK: Names

    /// A DNS-1123 label made from `text`: lower case, every other character `-`, runs of `-`
    /// collapsed, none at either end; longer than `maximumLength`, it is cut and ends in `-`
    /// and six hex digits of the whole text's FNV-1a hash, so that long names stay distinct.
    public static func dnsLabel(_ text: String, maximumLength: Int) -> String {
        var label = ""
        for scalar in text.lowercased().unicodeScalars {
            let keep = ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar)
            if keep {
                label.unicodeScalars.append(scalar)
            } else if !label.isEmpty, !label.hasSuffix("-") {
                label += "-"
            }
        }
        while label.hasSuffix("-") { label.removeLast() }
        guard label.count > maximumLength else { return label }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let suffix = String(String(hash, radix: 16).suffix(6))
        var cut = String(label.prefix(maximumLength - suffix.count - 1))
        while cut.hasSuffix("-") { cut.removeLast() }
        return cut + "-" + suffix
    }

    /// `lifeboat-backup-POLICY`, `lifeboat-prune`, `lifeboat-drill-RUNBOOK`, at most 52 characters.
    static func cronJobName(component: String, subject: String?) -> String {
        let prefix = "lifeboat-\(component)"
        guard let subject else { return prefix }
        return prefix + "-" + dnsLabel(subject, maximumLength: maximumCronJobName - prefix.count - 1)
    }

    static func isDNSLabel(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 63 && dnsLabel(name, maximumLength: 63) == name
    }

    static func isInsideConfigMount(_ path: String) -> Bool {
        path == configMount || path.hasPrefix(configMount + "/")
    }

    // MARK: The ConfigMap

    /// A file's key in the ConfigMap: its path with `/` as `.` (`policies.db.yaml`); keys may
    /// not hold `/`. The mount's `items` put each back at its path.
    static func configMapKey(_ file: String) -> String {
        file.replacingOccurrences(of: "/", with: ".")
    }

    static func configMapObject(files: [ConfigFile], options: Options) throws -> YAMLValue {
        var data: [YAMLEntry] = []
        var bytes = 0
        for file in files.sorted(by: { $0.name < $1.name }) {
            if let reason = file.unreadable {
                throw LifeboatError(.configuration, "\(file.name): cannot read the file: \(reason)")
            }
            data.append(YAMLEntry(configMapKey(file.name), .block(file.text)))
            bytes += file.text.utf8.count
        }
        if bytes > maximumConfigMapBytes {
            throw LifeboatError(.configuration, "the configuration files hold \(bytes) bytes; a ConfigMap holds at most 1 MiB",
                                hint: "Move what is large out of the configuration directory.")
        }
        return yamlMap(
            ("apiVersion", .string("v1")),
            ("kind", .string("ConfigMap")),
            ("metadata", metadata(name: options.configMapName, component: "config", options: options, annotations: [])),
            ("data", .map(data)))
    }

    static func metadata(name: String, component: String, options: Options, annotations: [YAMLEntry]) -> YAMLValue {
        yamlMap(
            ("name", .string(name)),
            ("namespace", options.namespace.map(YAMLValue.string)),
            ("labels", labels(component: component)),
            ("annotations", annotations.isEmpty ? nil : .map(annotations)))
    }

    static let managedBy = "lifeboat-export"
    /// The label of every object, as written.
    public static let managedByLabel = "app.kubernetes.io/managed-by: \(managedBy)"

    static func labels(component: String) -> YAMLValue {
        yamlMap(
            ("app.kubernetes.io/name", .string("lifeboat")),
            ("app.kubernetes.io/component", .string(component)),
            ("app.kubernetes.io/managed-by", .string(managedBy)))
    }

    // MARK: Secrets

    /// Every variable the files refer to, by name; optional when every reference to it has a
    /// default (`${NAME:-default}`). S3 repositories without keys in the configuration read
    /// `AWS_ACCESS_KEY_ID` and friends from the environment: those are offered as optional.
    static func secretReferences(files: [ConfigFile], configuration: Configuration) throws -> [(name: String, optional: Bool)] {
        var optional: [String: Bool] = [:]
        for file in files {
            guard let references = Interpolation.references(inYAML: file.text) else {
                throw LifeboatError(.configuration, "\(file.name): the file is not valid YAML", hint: "Run 'lifeboat check'.")
            }
            for reference in references { optional[reference.name] = (optional[reference.name] ?? true) && reference.hasDefault }
        }
        let keyless = configuration.repositoriesInUse.contains {
            if case .s3(let s3) = $0.kind { return s3.accessKeyID == nil && s3.profile == nil }
            return false
        }
        if keyless {
            for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] where optional[name] == nil {
                optional[name] = true
            }
        }
        return optional.keys.sorted().map { ($0, optional[$0] ?? false) }
    }

    // MARK: CronJobs

    static func localRepositories(_ policies: [Policy], _ configuration: Configuration) throws -> [RepositoryConfig] {
        var seen: Set<String> = []
        var result: [RepositoryConfig] = []
        for policy in policies {
            let repository = try configuration.repository(for: policy)
            guard case .local(let path) = repository.kind, seen.insert(repository.name).inserted else { continue }
            if isInsideConfigMount(path) {
                throw LifeboatError(.configuration, "policy '\(policy.name)' writes to repository '\(repository.name)' at \(path), inside the configuration directory, which a pod mounts read-only from the ConfigMap",
                                    hint: "Give the policy an S3 repository, or a local one at a path outside the configuration directory (the export mounts the PersistentVolumeClaim lifeboat-repository-NAME there).")
            }
            result.append(repository)
        }
        return result
    }

    static func cronJob(name: String, job: Job, configuration: Configuration, files: [ConfigFile],
                        references: [(name: String, optional: Bool)], stateDirectory: String?, options: Options) -> YAMLValue {
        // HOME on the writable /tmp (unless the configuration takes HOME from the Secret).
        var env: [YAMLValue] = references.contains { $0.name == "HOME" } ? [] : [yamlMap(("name", .string("HOME")), ("value", .string("/tmp")))]
        for reference in references {
            env.append(yamlMap(
                ("name", .string(reference.name)),
                ("valueFrom", yamlMap(("secretKeyRef", yamlMap(
                    ("name", .string(options.secretName)),
                    ("key", .string(reference.name)),
                    ("optional", reference.optional ? .bool(true) : nil))))))
            )
        }
        let items: [YAMLValue] = files.map(\.name).sorted().map {
            yamlMap(("key", .string(configMapKey($0))), ("path", .string($0)))
        }
        var volumes: [YAMLValue] = [
            yamlMap(("name", .string("config")), ("configMap", yamlMap(("name", .string(options.configMapName)), ("items", .list(items))))),
            yamlMap(("name", .string("tmp")), ("emptyDir", .map([]))),
        ]
        var mounts: [YAMLValue] = [
            yamlMap(("name", .string("config")), ("mountPath", .string(configMount)), ("readOnly", .bool(true))),
            yamlMap(("name", .string("tmp")), ("mountPath", .string("/tmp"))),
        ]
        var mounted: Set<String> = [configMount, "/tmp"]
        if let stateDirectory, mounted.insert(stateDirectory).inserted {
            volumes.append(yamlMap(("name", .string("state")), ("emptyDir", .map([]))))
            mounts.append(yamlMap(("name", .string("state")), ("mountPath", .string(stateDirectory))))
        }
        for repository in job.repositories {
            guard case .local(let path) = repository.kind, mounted.insert(path).inserted else { continue }
            let volume = "repository-" + dnsLabel(repository.name, maximumLength: 52)
            volumes.append(yamlMap(("name", .string(volume)), ("persistentVolumeClaim", yamlMap(
                ("claimName", .string("lifeboat-repository-" + dnsLabel(repository.name, maximumLength: 40)))))))
            mounts.append(yamlMap(("name", .string(volume)), ("mountPath", .string(path))))
        }
        for (index, path) in job.scratch.enumerated() where mounted.insert(path).inserted {
            volumes.append(yamlMap(("name", .string("restore-\(index)")), ("emptyDir", .map([]))))
            mounts.append(yamlMap(("name", .string("restore-\(index)")), ("mountPath", .string(path))))
        }
        var annotations: [YAMLEntry] = []
        if let subject = job.subject { annotations.append(YAMLEntry("lifeboat/\(job.component == "drill" ? "runbook" : "policy")", .string(subject))) }
        if let jitter = job.schedule.jitter { annotations.append(YAMLEntry("lifeboat/jitter-not-applied", .string(jitter.description))) }

        let container = yamlMap(
            ("name", .string("lifeboat")),
            ("image", .string(options.image)),
            ("imagePullPolicy", .string("IfNotPresent")),
            ("args", .list((["--config", configMount] + job.arguments).map(YAMLValue.string))),
            ("env", .list(env)),
            ("securityContext", yamlMap(
                ("allowPrivilegeEscalation", .bool(false)),
                ("readOnlyRootFilesystem", .bool(true)),
                ("capabilities", yamlMap(("drop", .list([.string("ALL")])))))),
            ("volumeMounts", .list(mounts)))
        let pod = yamlMap(
            ("restartPolicy", .string("Never")),
            ("automountServiceAccountToken", .bool(false)),
            // SIGTERM, then this long before SIGKILL: a cancelled run cleans up within 2 s.
            ("terminationGracePeriodSeconds", .int(30)),
            ("securityContext", yamlMap(
                ("runAsNonRoot", .bool(true)),
                ("runAsUser", .int(runAsUser)),
                ("runAsGroup", .int(runAsUser)),
                ("fsGroup", .int(runAsUser)),
                ("seccompProfile", yamlMap(("type", .string("RuntimeDefault")))))),
            ("containers", .list([container])),
            ("volumes", .list(volumes)))
        let scheduler = configuration.scheduler
        return yamlMap(
            ("apiVersion", .string("batch/v1")),
            ("kind", .string("CronJob")),
            ("metadata", metadata(name: name, component: job.component, options: options, annotations: annotations)),
            ("spec", yamlMap(
                ("schedule", .string(job.schedule.cron.canonicalText)),
                ("timeZone", .string(job.schedule.timezone)),
                ("concurrencyPolicy", .string("Forbid")),
                // A firing missed by more than scheduler.catch_up is skipped, as the daemon
                // skips it; at least a minute, as the controller looks every 10 s.
                ("startingDeadlineSeconds", .int(max(scheduler.catchUp.seconds, 60))),
                ("successfulJobsHistoryLimit", .int(3)),
                ("failedJobsHistoryLimit", .int(3)),
                ("jobTemplate", yamlMap(
                    ("metadata", yamlMap(("labels", labels(component: job.component)))),
                    ("spec", yamlMap(
                        // One more pod when the first is lost (a node drained); a run that
                        // failed is reported and the next firing runs again.
                        ("backoffLimit", .int(1)),
                        ("activeDeadlineSeconds", .int(scheduler.runTimeout.seconds)),
                        ("template", yamlMap(
                            ("metadata", yamlMap(("labels", labels(component: job.component)))),
                            ("spec", pod))))))))))
    }
}

extension CronExpression {
    /// The expression in the five numeric fields every cron reads alike (Kubernetes' too):
    /// shorthands expanded, names as numbers, Sunday as 0, and `*` in a day field exactly when
    /// this expression leaves that day unrestricted — so that cron's rule for both day fields
    /// (either one matching) applies as here: `*/2` becomes `1,3,5,…`, which is restricted
    /// everywhere.
    public var canonicalText: String {
        func field(_ values: Set<Int>, _ range: ClosedRange<Int>, unrestricted: Bool) -> String {
            if unrestricted && values.count == range.count { return "*" }
            return Self.runs(values.sorted()).map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }
                .joined(separator: ",")
        }
        return [field(minutes, 0...59, unrestricted: true), field(hours, 0...23, unrestricted: true),
                field(daysOfMonth, 1...31, unrestricted: !dayOfMonthRestricted), field(months, 1...12, unrestricted: true),
                field(daysOfWeek, 0...6, unrestricted: !dayOfWeekRestricted)].joined(separator: " ")
    }

    /// Sorted values as runs of consecutive values.
    static func runs(_ sorted: [Int]) -> [ClosedRange<Int>] {
        var result: [ClosedRange<Int>] = []
        for value in sorted {
            if let last = result.last, last.upperBound + 1 == value {
                result[result.count - 1] = last.lowerBound...value
            } else {
                result.append(value...value)
            }
        }
        return result
    }
}
