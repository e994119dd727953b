import Foundation
import Yams

/// Reads `runbooks/NAME.yaml` into a `Runbook`. Like the rest of the configuration parser it
/// never stops at the first problem: every one is recorded with `file:line:column`, and the
/// runbook is returned only when there was none.
///
/// Values that may hold run-time variables (`${RECOVERY_TARGET_TIME}`, `${RESTORED_POINT}`,
/// `${steps.ID.restored_point}`) are kept as `RunbookTemplate`s and checked here: every
/// variable must be a built-in one, a runbook variable, set in the environment, or have a
/// default; a step reference must name an earlier restore step. Restore target locations and
/// `s3` checks are read when the configuration loads (environment and runbook variables).
public enum RunbookParser {
    static let topKeys = ["runbook", "description", "objectives", "variables", "schedule", "steps"]
    static let kindKeys = ["restore", "run", "health", "manual", "wait", "parallel"]
    static let commonKeys = ["id", "description", "timeout", "retry", "critical", "optional", "when"]
    /// Keys that belong to one kind of step.
    static let kindSpecificKeys = ["target": "restore", "within": "health", "interval": "health"]

    /// Whether `id` may be a step's id: `[a-z0-9-]+`, starting with a letter or digit, at most 64 characters.
    public static func isValidStepID(_ id: String) -> Bool {
        guard let first = id.unicodeScalars.first, first != "-", id.count <= 64 else { return false }
        return id.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
    }

    /// What the parser knows besides the file.
    struct Context {
        var policies: [String: Policy]
        var policyFiles: Set<String>
    }

    /// One parsed step before ids are final, with what validation needs of it.
    final class Draft {
        let node: ConfigNode
        let map: ConfigMapping
        var step: RunbookStep
        let explicitID: (id: String, node: ConfigNode)?
        /// Position: top-level index, and index within a parallel group.
        let index: Int
        let childIndex: Int?
        var children: [Draft] = []
        /// Templates with the node they were written at.
        var templates: [(template: RunbookTemplate, node: ConfigNode)] = []
        /// restore: the target's node (for the parallel check).
        var targetNode: ConfigNode?

        init(node: ConfigNode, map: ConfigMapping, step: RunbookStep, explicitID: (id: String, node: ConfigNode)?, index: Int,
             childIndex: Int?) {
            self.node = node
            self.map = map
            self.step = step
            self.explicitID = explicitID
            self.index = index
            self.childIndex = childIndex
        }
    }

    static func parse(_ root: ConfigNode, file: ConfigFile, policies: [String: Policy], policyFiles: Set<String>) -> Runbook? {
        guard let map = root.mapping(allowed: topKeys) else { return nil }
        var valid = true
        let nameNode = map.required("runbook")
        var name = nameNode?.name()
        if let given = name, given != file.baseName {
            nameNode?.error("runbook '\(given)' is in \(file.name); a runbook's file is named after it",
                            hint: "Rename the file to runbooks/\(given).yaml, or the runbook to '\(file.baseName)'.")
            name = nil
        }
        let description = map["description"]?.string()
        if map["description"] != nil && description == nil { valid = false }

        var objectives: Objectives?
        if let node = map["objectives"] {
            if let o = node.mapping(allowed: ["rto", "rpo"]) {
                let rto = o["rto"]?.positiveDuration()
                let rpo = o["rpo"]?.positiveDuration()
                if (o["rto"] != nil && rto == nil) || (o["rpo"] != nil && rpo == nil) { valid = false }
                if o["rto"] == nil && o["rpo"] == nil {
                    node.error("'objectives' needs 'rto', 'rpo' or both")
                    valid = false
                }
                objectives = Objectives(rto: rto, rpo: rpo)
            } else {
                valid = false
            }
        }

        var variables: [String: String] = [:]
        if let node = map["variables"] {
            if let v = node.mapping(allowed: node.keysOfMapping) {
                for entry in v.entries {
                    if RunbookVariables.builtins.contains(entry.key) {
                        entry.value.error("'\(entry.key)' is a built-in variable; a runbook cannot set it",
                                          hint: "Give the variable another name.")
                        valid = false
                    } else if !Interpolation.isValidName(Substring(entry.key)) {
                        entry.value.error("'\(entry.key)' is not a valid variable name",
                                          hint: "Use letters, digits and '_', starting with a letter or '_'.")
                        valid = false
                    } else if let value = entry.value.string() {
                        variables[entry.key] = value
                    } else {
                        valid = false
                    }
                }
            } else {
                valid = false
            }
        }

        let schedule = map["schedule"].flatMap(ConfigurationParser.parseSchedule)
        if map["schedule"] != nil && schedule == nil { valid = false }

        // Everything inside the steps sees the runbook's variables as if they were in the
        // environment (static values), and keeps run-time references as templates.
        var drafts: [Draft] = []
        let context = Context(policies: policies, policyFiles: policyFiles)
        if let stepsNode = map.required("steps") {
            let stepsNode = stepsNode.adding(environment: variables)
            if let items = stepsNode.list() {
                if items.isEmpty {
                    stepsNode.error("a runbook needs at least one step")
                    valid = false
                }
                for (index, item) in items.enumerated() {
                    if let draft = parseStep(item, context: context, index: index, childIndex: nil) {
                        drafts.append(draft)
                    } else {
                        valid = false
                    }
                }
            } else {
                valid = false
            }
        } else {
            valid = false
        }
        if !assignIDs(drafts) { valid = false }
        if !validate(drafts, variables: variables, environment: root.environment) { valid = false }
        guard let name, valid else { return nil }
        return Runbook(name: name, file: file.name, description: description, objectives: objectives, variables: variables,
                       schedule: schedule, steps: drafts.map(\.step))
    }

    // MARK: Steps

    static func parseStep(_ node: ConfigNode, context: Context, index: Int, childIndex: Int?) -> Draft? {
        let allowed = kindKeys + commonKeys + Array(kindSpecificKeys.keys).sorted()
        guard let map = node.mapping(allowed: allowed) else { return nil }
        guard let (kind, value) = map.exactlyOne(of: kindKeys, what: "a runbook step") else { return nil }
        var valid = true
        for (key, owner) in kindSpecificKeys.sorted(by: { $0.key < $1.key }) where owner != kind {
            if let misplaced = map[key] {
                misplaced.error("'\(key)' belongs to a '\(owner)' step")
                valid = false
            }
        }

        var explicitID: (String, ConfigNode)?
        if let idNode = map["id"], let id = idNode.string() {
            if isValidStepID(id) {
                explicitID = (id, idNode)
            } else {
                idNode.error("'\(id)' is not a valid step id", hint: "Use lower-case letters, digits and '-' (restore-db, start-web).")
                valid = false
            }
        } else if map["id"] != nil {
            valid = false
        }
        let description = map["description"]?.string()
        let timeout = map["timeout"]?.positiveDuration()
        let when = map["when"]?.oneOf(RunbookStep.When.allCases.map(\.rawValue)).flatMap(RunbookStep.When.init(rawValue:))
        for key in ["description", "timeout", "when"] where map[key] != nil {
            if (key == "description" && description == nil) || (key == "timeout" && timeout == nil) || (key == "when" && when == nil) {
                valid = false
            }
        }
        var critical = true
        let criticalValue = map["critical"]?.bool()
        let optionalValue = map["optional"]?.bool()
        if (map["critical"] != nil && criticalValue == nil) || (map["optional"] != nil && optionalValue == nil) { valid = false }
        if let criticalValue, let optionalValue, criticalValue == optionalValue {
            map["optional"]?.error("'critical: \(criticalValue)' and 'optional: \(optionalValue)' contradict each other",
                                   hint: "Give one of them.")
            valid = false
        }
        if let criticalValue { critical = criticalValue }
        if let optionalValue { critical = !optionalValue }

        var retry = StepRetry()
        if let retryNode = map["retry"] {
            if ["manual", "wait", "parallel"].contains(kind) {
                retryNode.error("'retry' does not apply to a '\(kind)' step",
                                hint: kind == "parallel" ? "Give 'retry' to the steps inside the group." : nil)
                valid = false
            } else if let parsed = parseRetry(retryNode) {
                retry = parsed
            } else {
                valid = false
            }
        }
        if kind == "manual", let timeoutNode = map["timeout"] {
            timeoutNode.error("'timeout' does not apply to a 'manual' step: it waits for the operator")
            valid = false
        }

        var templates: [(RunbookTemplate, ConfigNode)] = []
        var targetNode: ConfigNode?
        var children: [Draft] = []
        let stepKind: RunbookStep.Kind?
        switch kind {
        case "restore":
            let parsed = parseRestore(value, map: map, context: context, templates: &templates)
            targetNode = map["target"]
            stepKind = parsed.map(RunbookStep.Kind.restore)
        case "run":
            stepKind = parseCommand(value, what: "'run'", templates: &templates).map(RunbookStep.Kind.run)
        case "health":
            stepKind = parseHealth(value, map: map, templates: &templates).map(RunbookStep.Kind.health)
        case "manual":
            if childIndex != nil {
                value.error("a 'manual' step cannot be inside 'parallel': the operator confirms one step at a time",
                            hint: "Put the manual step before or after the group.")
                stepKind = nil
            } else {
                stepKind = value.template(into: &templates).map(RunbookStep.Kind.manual)
            }
        case "wait":
            stepKind = value.positiveDuration().map(RunbookStep.Kind.wait)
        default:
            if childIndex != nil {
                value.error("'parallel' cannot be nested: a group's steps are single steps",
                            hint: "Put these steps in the outer group.")
                stepKind = nil
            } else if let items = value.list() {
                if items.count < 2 {
                    value.error("'parallel' needs at least two steps")
                }
                for (i, item) in items.enumerated() {
                    if let child = parseStep(item, context: context, index: index, childIndex: i) {
                        children.append(child)
                    } else {
                        valid = false
                    }
                }
                stepKind = items.count >= 2 && children.count == items.count ? .parallel(children.map(\.step)) : nil
            } else {
                stepKind = nil
            }
        }
        guard valid, let stepKind else { return nil }
        let location = node.location
        let step = RunbookStep(id: "", kind: stepKind, description: description, timeout: timeout, retry: retry, critical: critical,
                               when: when ?? .always, location: location)
        let draft = Draft(node: node, map: map, step: step, explicitID: explicitID, index: index, childIndex: childIndex)
        draft.children = children
        draft.templates = templates
        draft.targetNode = targetNode
        return draft
    }

    static func parseRetry(_ node: ConfigNode) -> StepRetry? {
        if node.isScalar {
            // `retry: N`: N more tries after the first.
            guard let retries = node.int(in: 0...99) else { return nil }
            return StepRetry(attempts: retries + 1)
        }
        guard let map = node.mapping(allowed: ["attempts", "delay"]) else { return nil }
        let attempts = map.required("attempts")?.int(in: 1...100)
        let delay = map["delay"]?.duration()
        guard let attempts, map["delay"] == nil || delay != nil else { return nil }
        return StepRetry(attempts: attempts, delay: delay ?? StepRetry.defaultDelay)
    }

    // MARK: restore

    static let targetLocationKeys = ["path", "data_dir", "conninfo", "s3"]
    static let targetOptionKeys = ["time", "at", "databases", "globals", "parallel", "delta", "bucket", "prefix", "key",
                                   "delete_extra", "max_delete", "endpoint", "region", "path_style", "ca_bundle"]
    static let mirrorOptionKeys = ["bucket", "prefix", "key", "delete_extra", "max_delete", "endpoint", "region", "path_style", "ca_bundle"]

    static func parseRestore(_ value: ConfigNode, map: ConfigMapping, context: Context,
                             templates: inout [(RunbookTemplate, ConfigNode)]) -> RestoreStep? {
        let policyName = value.name()
        var valid = policyName != nil
        if let policyName, !context.policyFiles.contains(policyName) {
            var message = "runbook step restores unknown policy '\(policyName)'"
            if let suggestion = closestMatch(to: policyName, among: Array(context.policyFiles)) {
                message += " (did you mean '\(suggestion)'?)"
            } else if !context.policyFiles.isEmpty {
                message += " (policies: \(context.policyFiles.sorted().joined(separator: ", ")))"
            }
            value.error(message)
            valid = false
        }
        guard let targetNode = map.required("target"), let target = parseRestoreTarget(targetNode, templates: &templates),
              valid, let policyName
        else { return nil }
        // A policy that could not be read has its own errors; its targets cannot be checked.
        if let policy = context.policies[policyName] {
            let key = target.target.location.runbookKey
            if !policy.source.restoreTargetKeys.contains(key) {
                let accepted = policy.source.restoreTargetKeys.map { "'\($0)'" }.joined(separator: " or ")
                targetNode.error("policy '\(policyName)' (\(policy.source.kind)) cannot be restored to a target given as '\(key)'",
                                 hint: "Give its target as \(accepted).")
                return nil
            }
            if target.target.databases != nil || target.target.globals == false, key != "conninfo" {
                targetNode.error("'databases' and 'globals' apply to a logical PostgreSQL restore (a 'conninfo' target)")
                return nil
            }
            if target.target.recovery?.delta == true, key != "data_dir" {
                targetNode.error("'delta' applies to a physical PostgreSQL restore (a 'data_dir' target)")
                return nil
            }
            if target.target.mirror != nil, policy.source.kind != "s3" {
                targetNode.error("'\(mirrorOptionKeys.joined(separator: "', '"))' apply to an S3 mirror's restore, and policy '\(policyName)' is \(policy.source.kind)")
                return nil
            }
        }
        return RestoreStep(policy: policyName, target: target)
    }

    /// A restore step's `target:` — one location key (`path`, `data_dir`, `conninfo`, `s3`)
    /// and the restore command's options.
    static func parseRestoreTarget(_ node: ConfigNode, templates: inout [(RunbookTemplate, ConfigNode)]) -> RunbookRestoreTarget? {
        guard let map = node.mapping(allowed: targetLocationKeys + targetOptionKeys),
              let (key, value) = map.exactlyOne(of: targetLocationKeys, what: "a restore target")
        else { return nil }
        var valid = true
        let location: RestoreTarget.Location?
        switch key {
        case "path": location = value.absolutePath().map(RestoreTarget.Location.directory)
        case "data_dir": location = value.absolutePath().map(RestoreTarget.Location.dataDirectory)
        case "conninfo":
            location = value.string().map { RestoreTarget.Location.postgresServer(conninfo: $0) }
        default:
            if let text = value.string() {
                let rest = text.hasPrefix("s3://") ? text.dropFirst(5) : Substring(text)
                let bucket = String(rest.prefix { $0 != "/" })
                if bucket.isEmpty || !isValidBucket(bucket) {
                    value.error("'\(text)' names no valid bucket", hint: "Write the target as s3://BUCKET[/PREFIX].")
                    location = nil
                } else {
                    location = .s3(bucket: bucket, prefix: S3RepositoryConfig.normalizedPrefix(String(rest.dropFirst(bucket.count))))
                }
            } else {
                location = nil
            }
        }
        if location == nil { valid = false }

        var time: RunbookTemplate?
        if map["time"] != nil && map["at"] != nil {
            map["at"]?.error("give the restore point as 'time' or 'at', not both")
            valid = false
        } else if let timeNode = map["time"] ?? map["at"] {
            time = timeNode.template(into: &templates)
            if let time, time.isLiteral, RunbookRestorePoint(time.text) == nil {
                timeNode.error("'\(time.text)' is neither 'latest' nor a time",
                               hint: "Write latest, a time (2026-11-29 17:30:00, 2026-11-29T17:30:00Z) or ${RECOVERY_TARGET_TIME}.")
                valid = false
            }
            if time == nil { valid = false }
        }
        let databases = map["databases"]?.stringList()
        let globals = map["globals"]?.bool()
        let parallel = map["parallel"]?.int(in: 1...64)
        let delta = map["delta"]?.bool()
        for (k, parsed) in [("databases", databases as Any?), ("globals", globals), ("parallel", parallel), ("delta", delta)]
            where map[k] != nil && parsed == nil {
            valid = false
        }
        var mirror: MirrorRestoreOptions?
        if mirrorOptionKeys.contains(where: { map[$0] != nil }) {
            var options = MirrorRestoreOptions()
            func text(_ k: String) -> String? {
                guard let node = map[k] else { return nil }
                let value = node.string()
                if value == nil { valid = false }
                return value
            }
            options.bucket = text("bucket")
            options.prefix = text("prefix")
            options.key = text("key")
            options.endpoint = text("endpoint")
            options.region = text("region")
            options.caBundle = map["ca_bundle"]?.absolutePath()
            if let node = map["delete_extra"] { if let b = node.bool() { options.deleteExtra = b } else { valid = false } }
            if let node = map["max_delete"] { if let n = node.int(in: 0...10_000_000) { options.maxDelete = n } else { valid = false } }
            if let node = map["path_style"] { if let b = node.bool() { options.pathStyle = b } else { valid = false } }
            if let endpoint = options.endpoint, !(endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://")) {
                map["endpoint"]?.error("endpoint '\(endpoint)' must start with http:// or https://")
                valid = false
            }
            mirror = options
        }
        guard valid, let location else { return nil }
        if case .postgresServer(let conninfo) = location { Secrets.register(passwordInConninfo(conninfo)) }
        let recovery = delta == true ? RecoveryOptions(delta: true) : nil
        return RunbookRestoreTarget(
            target: RestoreTarget(location: location, databases: databases, globals: globals ?? true, recovery: recovery,
                                  parallel: parallel, mirror: mirror),
            time: time)
    }

    static func isValidBucket(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.utf8.count <= 255 else { return false }
        func isAlphanumeric(_ c: Unicode.Scalar) -> Bool { ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) }
        return isAlphanumeric(first) && name.unicodeScalars.allSatisfy { isAlphanumeric($0) || $0 == "." || $0 == "_" || $0 == "-" }
    }

    /// The value of `password=` in a key=value conninfo, or of the password in a URI (for `Secrets`).
    static func passwordInConninfo(_ conninfo: String) -> String? {
        if conninfo.hasPrefix("postgres://") || conninfo.hasPrefix("postgresql://"),
           let components = URLComponents(string: conninfo) {
            return components.password
        }
        guard let range = conninfo.range(of: "password=") else { return nil }
        let rest = conninfo[range.upperBound...]
        if rest.hasPrefix("'") {
            return String(rest.dropFirst().prefix { $0 != "'" })
        }
        return String(rest.prefix { $0 != " " })
    }

    // MARK: run / command

    /// `[argv…]`, or `{ command: [argv…] | shell: "…", env: {…}, cwd: DIR }`.
    static func parseCommand(_ node: ConfigNode, what: String, extraKeys: [String] = [],
                             templates: inout [(RunbookTemplate, ConfigNode)],
                             extra: (ConfigMapping) -> Void = { _ in }) -> CommandSpec? {
        if node.isScalar {
            node.error("\(what) takes a list — the program and its arguments, run without a shell — not a string",
                       hint: "Write [systemctl, restart, web], or { shell: \"…\" } when a shell is really needed.")
            return nil
        }
        if case .sequence = node.node {
            guard let argv = argvTemplates(node, what: what, templates: &templates) else { return nil }
            return CommandSpec(program: .argv(argv), baseDirectory: node.directory)
        }
        guard let map = node.mapping(allowed: ["command", "shell", "env", "cwd"] + extraKeys) else { return nil }
        extra(map)
        guard let (key, value) = map.exactlyOne(of: ["command", "shell"], what: what) else { return nil }
        var valid = true
        let program: CommandSpec.Program?
        if key == "command" {
            program = argvTemplates(value, what: what, templates: &templates).map(CommandSpec.Program.argv)
        } else {
            program = value.template(into: &templates).map(CommandSpec.Program.shell)
        }
        var environment: [String: RunbookTemplate] = [:]
        if let envNode = map["env"] {
            if let env = envNode.mapping(allowed: envNode.keysOfMapping) {
                for entry in env.entries {
                    guard Interpolation.isValidName(Substring(entry.key)) else {
                        entry.value.error("'\(entry.key)' is not a valid environment variable name")
                        valid = false
                        continue
                    }
                    if let template = entry.value.template(into: &templates) { environment[entry.key] = template } else { valid = false }
                }
            } else {
                valid = false
            }
        }
        let cwd = map["cwd"]?.template(into: &templates)
        if map["cwd"] != nil && cwd == nil { valid = false }
        guard valid, let program else { return nil }
        return CommandSpec(program: program, environment: environment, workingDirectory: cwd, baseDirectory: node.directory)
    }

    static func argvTemplates(_ node: ConfigNode, what: String, templates: inout [(RunbookTemplate, ConfigNode)]) -> [RunbookTemplate]? {
        guard let items = node.list() else { return nil }
        if items.isEmpty {
            node.error("\(what) needs a command: a list of the program and its arguments")
            return nil
        }
        let words = items.compactMap { $0.template(into: &templates, allowEmpty: true) }
        return words.count == items.count ? words : nil
    }

    // MARK: health

    static let checkKinds = ["http", "postgres", "redis", "s3", "tcp", "command"]

    static func parseHealth(_ value: ConfigNode, map: ConfigMapping, templates: inout [(RunbookTemplate, ConfigNode)]) -> HealthStep? {
        guard let items = value.list() else { return nil }
        var valid = true
        if items.isEmpty {
            value.error("a 'health' step needs at least one check",
                        hint: "List checks: http, postgres, redis, s3, tcp or command.")
            valid = false
        }
        var checks: [HealthCheck] = []
        for item in items {
            if let check = parseCheck(item, templates: &templates) { checks.append(check) } else { valid = false }
        }
        let within = map["within"]?.positiveDuration()
        let interval = map["interval"]?.positiveDuration()
        if (map["within"] != nil && within == nil) || (map["interval"] != nil && interval == nil) { valid = false }
        let step = HealthStep(checks: checks, within: within ?? HealthStep.defaultWithin, interval: interval ?? HealthStep.defaultInterval)
        if let intervalNode = map["interval"], step.interval > step.within {
            intervalNode.error("'interval' (\(step.interval)) is longer than 'within' (\(step.within)): the checks would be tried once",
                               hint: "Use an interval shorter than 'within'.")
            valid = false
        }
        return valid ? step : nil
    }

    static func parseCheck(_ node: ConfigNode, templates: inout [(RunbookTemplate, ConfigNode)]) -> HealthCheck? {
        guard let map = node.mapping(allowed: checkKinds),
              let (kind, body) = map.exactlyOne(of: checkKinds, what: "a health check")
        else { return nil }
        switch kind {
        case "http":
            guard let h = body.mapping(allowed: ["url", "status", "json", "accept_degraded", "timeout"]) else { return nil }
            var valid = true
            let url = h.required("url")?.template(into: &templates)
            if let url, url.isLiteral, !(url.text.hasPrefix("http://") || url.text.hasPrefix("https://")) {
                h["url"]?.error("'\(url.text)' is not an http:// or https:// URL")
                valid = false
            }
            var statuses = [200]
            if let statusNode = h["status"] {
                if statusNode.isScalar {
                    if let status = statusNode.int(in: 100...599) { statuses = [status] } else { valid = false }
                } else if let list = statusNode.list() {
                    let parsed = list.compactMap { $0.int(in: 100...599) }
                    if parsed.count == list.count && !parsed.isEmpty { statuses = parsed } else {
                        if list.isEmpty { statusNode.error("'status' needs at least one status code") }
                        valid = false
                    }
                } else {
                    valid = false
                }
            }
            var json: [(path: String, expected: RunbookTemplate)] = []
            if let jsonNode = h["json"] {
                if let j = jsonNode.mapping(allowed: jsonNode.keysOfMapping) {
                    for entry in j.entries {
                        if let expected = entry.value.template(into: &templates, allowEmpty: true) {
                            json.append((entry.key, expected))
                        } else {
                            valid = false
                        }
                    }
                } else {
                    valid = false
                }
            }
            let acceptDegraded = h["accept_degraded"]?.bool()
            if h["accept_degraded"] != nil && acceptDegraded == nil { valid = false }
            let timeout = checkTimeout(h, &valid)
            guard valid, let url else { return nil }
            return HealthCheck(kind: .http(HTTPHealthCheck(url: url, statuses: statuses, json: json, acceptDegraded: acceptDegraded ?? false)),
                               timeout: timeout)
        case "postgres":
            guard let p = body.mapping(allowed: ["conninfo", "query", "expect", "timeout"]) else { return nil }
            var valid = true
            let conninfo = p.required("conninfo")?.template(into: &templates)
            let query = p["query"]?.template(into: &templates)
            let expect = p["expect"]?.template(into: &templates, allowEmpty: true)
            if (p["query"] != nil && query == nil) || (p["expect"] != nil && expect == nil) { valid = false }
            if let conninfo, conninfo.isLiteral { Secrets.register(passwordInConninfo(conninfo.text)) }
            let timeout = checkTimeout(p, &valid)
            guard valid, let conninfo else { return nil }
            return HealthCheck(kind: .postgres(PostgresHealthCheck(conninfo: conninfo, query: query ?? RunbookTemplate(literal: "select 1"),
                                                                   expect: expect)),
                               timeout: timeout)
        case "redis":
            return parseRedisCheck(body, templates: &templates)
        case "s3":
            guard let s = body.mapping(allowed: S3Connection.keys + ["bucket", "prefix", "min_objects", "timeout"]) else { return nil }
            var valid = true
            let connection = S3Connection.parse(s)
            let bucket = s.required("bucket")?.string()
            let prefix = s["prefix"]?.string()
            let minObjects = s["min_objects"]?.int(in: 0...1_000_000_000)
            if (s["prefix"] != nil && prefix == nil) || (s["min_objects"] != nil && minObjects == nil) { valid = false }
            if let bucket, !isValidBucket(bucket) {
                s["bucket"]?.error("'\(bucket)' is not a valid S3 bucket name")
                valid = false
            }
            let timeout = checkTimeout(s, &valid)
            guard valid, var config = connection, let bucket else { return nil }
            config.bucket = bucket
            config.prefix = S3RepositoryConfig.normalizedPrefix(prefix ?? "")
            return HealthCheck(kind: .s3(S3HealthCheck(connection: config, minObjects: minObjects)), timeout: timeout)
        case "tcp":
            var valid = true
            var timeout = HealthCheck.defaultTimeout
            let addressNode: ConfigNode?
            if body.isScalar {
                addressNode = body
            } else if let t = body.mapping(allowed: ["address", "timeout"]) {
                addressNode = t.required("address")
                timeout = checkTimeout(t, &valid)
            } else {
                return nil
            }
            guard let addressNode, let address = addressNode.template(into: &templates) else { return nil }
            if address.isLiteral, splitHostPort(address.text) == nil {
                addressNode.error("'\(address.text)' is not host:port", hint: "Write the address as host:port, [::1]:port for IPv6.")
                valid = false
            }
            return valid ? HealthCheck(kind: .tcp(address), timeout: timeout) : nil
        default:
            var valid = true
            var timeout = HealthStep.commandCheckTimeout
            let spec = parseCommand(body, what: "a 'command' check", extraKeys: ["timeout"], templates: &templates) { m in
                if let node = m["timeout"] {
                    if let t = node.positiveDuration() { timeout = t } else { valid = false }
                }
            }
            guard valid, let spec else { return nil }
            return HealthCheck(kind: .command(spec), timeout: timeout)
        }
    }

    static func checkTimeout(_ map: ConfigMapping, _ valid: inout Bool) -> ConfigDuration {
        guard let node = map["timeout"] else { return HealthCheck.defaultTimeout }
        guard let timeout = node.positiveDuration() else {
            valid = false
            return HealthCheck.defaultTimeout
        }
        return timeout
    }

    /// `redis: { host, port, user, password, tls }` or `redis: { url: redis://[user:password@]host:port }`
    /// (`rediss://` for TLS).
    static func parseRedisCheck(_ body: ConfigNode, templates: inout [(RunbookTemplate, ConfigNode)]) -> HealthCheck? {
        guard let r = body.mapping(allowed: ["url", "host", "port", "user", "password", "tls", "timeout"]) else { return nil }
        var valid = true
        var host: RunbookTemplate?
        var port = 6379
        var user: RunbookTemplate?
        var password: RunbookTemplate?
        var tls: RedisHealthCheck.TLS?
        if let urlNode = r["url"] {
            if r["host"] != nil || r["port"] != nil {
                urlNode.error("give Redis as 'url' or as 'host' and 'port', not both")
                return nil
            }
            guard let text = urlNode.string() else { return nil }
            guard let components = URLComponents(string: text), ["redis", "rediss"].contains(components.scheme ?? ""),
                  let h = components.host, !h.isEmpty
            else {
                urlNode.error("'\(text)' is not a redis:// or rediss:// URL", hint: "Write redis://[user:password@]host[:port].")
                return nil
            }
            host = RunbookTemplate(literal: h)
            port = components.port ?? 6379
            if let u = components.user, !u.isEmpty { user = RunbookTemplate(literal: u) }
            if let p = components.password, !p.isEmpty {
                Secrets.register(p)
                password = RunbookTemplate(literal: p)
            }
            if components.scheme == "rediss" { tls = RedisHealthCheck.TLS() }
        } else {
            host = r["host"]?.template(into: &templates) ?? RunbookTemplate(literal: "127.0.0.1")
            if r["host"] != nil && host == nil { valid = false }
            if let node = r["port"] { if let p = node.int(in: 1...65535) { port = p } else { valid = false } }
        }
        if let node = r["user"] { user = node.template(into: &templates); if user == nil { valid = false } }
        if let node = r["password"] {
            password = node.template(into: &templates)
            if let password, password.isLiteral { Secrets.register(password.text) }
            if password == nil { valid = false }
        }
        if let node = r["tls"] {
            if node.isScalar {
                if let on = node.bool() { tls = on ? (tls ?? RedisHealthCheck.TLS()) : nil } else { valid = false }
            } else if let t = node.mapping(allowed: ["ca_bundle", "cert", "key"]) {
                tls = RedisHealthCheck.TLS(caBundle: t["ca_bundle"]?.absolutePath(), certificate: t["cert"]?.absolutePath(),
                                           key: t["key"]?.absolutePath())
                for k in ["ca_bundle", "cert", "key"] where t[k] != nil {
                    if (k == "ca_bundle" && tls?.caBundle == nil) || (k == "cert" && tls?.certificate == nil) || (k == "key" && tls?.key == nil) {
                        valid = false
                    }
                }
            } else {
                valid = false
            }
        }
        let timeout = checkTimeout(r, &valid)
        guard valid, let host else { return nil }
        return HealthCheck(kind: .redis(RedisHealthCheck(host: host, port: port, user: user, password: password, tls: tls)), timeout: timeout)
    }

    /// `host:port` or `[v6]:port` → (host, port), or nil.
    public static func splitHostPort(_ text: String) -> (host: String, port: Int)? {
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil }
        }
        guard !host.isEmpty, let port = Int(portText), (1...65535).contains(port) else { return nil }
        return (String(host), port)
    }

    // MARK: ids and validation

    /// Gives every step its id: the explicit one, or one derived from its kind
    /// (`restore-POLICY`, `run-1`, `health-1`, …) that no other step has. Reports repeated
    /// explicit ids.
    static func assignIDs(_ drafts: [Draft]) -> Bool {
        var valid = true
        let flat = drafts.flatMap { [$0] + $0.children }
        var taken: [String: ConfigNode] = [:]
        for draft in flat {
            guard let (id, node) = draft.explicitID else { continue }
            if let first = taken[id] {
                node.error("step id '\(id)' is already used at line \(first.line ?? 0)", hint: "Give every step an id of its own.")
                valid = false
            } else {
                taken[id] = node
            }
        }
        var used = Set(taken.keys)
        var counters: [String: Int] = [:]
        for draft in flat where draft.explicitID == nil {
            let base: String
            let numbered: Bool
            if case .restore(let restore) = draft.step.kind {
                base = "restore-" + restore.policy.lowercased().map { ("a"..."z").contains($0) || ("0"..."9").contains($0) ? String($0) : "-" }.joined()
                numbered = false
            } else {
                base = draft.step.kindName
                numbered = true
            }
            var candidate: String
            if numbered {
                repeat {
                    counters[base, default: 0] += 1
                    candidate = "\(base)-\(counters[base]!)"
                } while used.contains(candidate)
            } else {
                candidate = base
                var n = 1
                while used.contains(candidate) {
                    n += 1
                    candidate = "\(base)-\(n)"
                }
            }
            used.insert(candidate)
            draft.step.id = candidate
        }
        for draft in flat {
            if let (id, _) = draft.explicitID { draft.step.id = id }
        }
        for draft in drafts where !draft.children.isEmpty {
            draft.step.kind = .parallel(draft.children.map(\.step))
        }
        return valid
    }

    /// Checks what needs the whole runbook: references between steps, variables, and the
    /// restores of a parallel group.
    static func validate(_ drafts: [Draft], variables: [String: String], environment: [String: String]) -> Bool {
        var valid = true
        let flat = drafts.flatMap { [$0] + $0.children }
        let byID = Dictionary(flat.map { ($0.step.id, $0) }, uniquingKeysWith: { first, _ in first })
        for draft in flat {
            for (template, node) in draft.templates {
                for (name, hasFallback) in template.references {
                    if let target = RunbookVariables.stepReference(name) {
                        guard let referenced = byID[target] else {
                            var message = "'${\(name)}' refers to step '\(target)', which this runbook does not have"
                            let restoreIDs = flat.filter { if case .restore = $0.step.kind { return true } else { return false } }.map(\.step.id)
                            if let suggestion = closestMatch(to: target, among: restoreIDs) { message += " (did you mean '\(suggestion)'?)" }
                            node.error(message)
                            valid = false
                            continue
                        }
                        guard case .restore = referenced.step.kind else {
                            node.error("'${\(name)}' refers to step '\(target)', which is a '\(referenced.step.kindName)' step: only restore steps have a restored point")
                            valid = false
                            continue
                        }
                        if !runsBefore(referenced, draft) {
                            let why = referenced.index == draft.index && referenced.childIndex != nil && draft.childIndex != nil
                                ? "runs at the same time (same 'parallel' group)" : "has not run yet at this point"
                            node.error("'${\(name)}' refers to step '\(target)', which \(why)",
                                       hint: "Refer only to restore steps that come before this one.")
                            valid = false
                        }
                    } else if name == RunbookVariables.restoredPoint {
                        let restoreBefore = flat.contains { other in
                            if case .restore = other.step.kind { return runsBefore(other, draft) }
                            return false
                        }
                        if !restoreBefore && !hasFallback {
                            node.error("'${\(RunbookVariables.restoredPoint)}' is used before any restore step has run",
                                       hint: "Use it after a restore step, or write ${steps.ID.restored_point} for a specific one.")
                            valid = false
                        }
                    } else if !hasFallback, !RunbookVariables.builtins.contains(name), variables[name] == nil, environment[name] == nil {
                        node.error("variable '\(name)' is not set: it is neither built in, nor in the runbook's 'variables', nor in the environment",
                                   hint: "Set \(name), add it to 'variables', or write ${\(name):-default}.")
                        valid = false
                    }
                }
            }
        }
        for group in drafts where !group.children.isEmpty {
            var seen: [String: Draft] = [:]
            for child in group.children {
                guard case .restore(let restore) = child.step.kind else { continue }
                let key = "\(restore.policy)\u{0}\(restore.target.target.location)"
                if let first = seen[key] {
                    (child.targetNode ?? child.node).error(
                        "steps '\(first.step.id)' and '\(child.step.id)' of one 'parallel' group both restore policy '\(restore.policy)' into \(restore.target.target.location)",
                        hint: "Restore it once, or into different targets.")
                    valid = false
                } else {
                    seen[key] = child
                }
            }
        }
        return valid
    }

    /// Whether `a` has ended before `b` starts: an earlier top-level position (a group's steps
    /// end with their group).
    static func runsBefore(_ a: Draft, _ b: Draft) -> Bool {
        a.index < b.index
    }
}

extension HealthStep {
    /// A `command` check's default limit on one try.
    public static let commandCheckTimeout = ConfigDuration(seconds: 30)
}

extension ConfigNode {
    /// A scalar kept as a `RunbookTemplate` (resolved when the step runs), with its syntax
    /// checked; recorded in `templates` with this node for the runbook-wide checks.
    func template(into templates: inout [(RunbookTemplate, ConfigNode)], allowEmpty: Bool = false) -> RunbookTemplate? {
        guard case .scalar(let scalar) = node else {
            error("'\(path)' must be a string, not \(isScalar ? "a scalar" : "a mapping or list")")
            return nil
        }
        if !allowEmpty, scalar.style == .plain, ["", "~", "null", "Null", "NULL"].contains(scalar.string) {
            error("'\(path)' must be a string, but it is empty")
            return nil
        }
        do {
            let template = try RunbookTemplate(parsing: scalar.string)
            templates.append((template, self))
            return template
        } catch {
            switch error {
            case .unterminated:
                self.error("unterminated '${' in '\(path)'", hint: "Close it with '}', or write '$$' for a literal '$'.")
            case .invalidName(let name):
                self.error("'\(name)' in '\(path)' is not a valid variable name",
                           hint: "Use an environment-style name (RECOVERY_TARGET_TIME) or steps.ID.restored_point.")
            case .undefined:
                break
            }
            return nil
        }
    }

    /// This node, whose `${VAR}` interpolation also sees `extra` (a runbook's variables).
    func adding(environment extra: [String: String]) -> ConfigNode {
        guard !extra.isEmpty else { return self }
        var merged = environment
        for (key, value) in extra { merged[key] = value }
        return ConfigNode(node: node, file: file, path: path, diagnostics: diagnostics, environment: merged, directory: directory)
    }

    /// The node's line (1-based), when known.
    var line: Int? { mark?.line }

    /// `file:line:column` of the node.
    var location: String {
        guard let mark else { return file }
        return "\(file):\(mark.line):\(mark.column)"
    }
}
