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

        /// Whether the step runs in `mode`: its own `when`, and its group's.
        func runs(in mode: RunbookMode, within all: [Draft]) -> Bool {
            guard step.runs(in: mode) else { return false }
            guard childIndex != nil, let group = all.first(where: { $0.index == index && $0.childIndex == nil }) else { return true }
            return group.step.runs(in: mode)
        }

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
                if !reportRepeatedIDs(items) { valid = false }
            } else {
                valid = false
            }
        } else {
            valid = false
        }
        assignIDs(drafts)
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

    /// The string at `key` of a mapping node, and its node, without reporting anything (for
    /// checks that look at steps whatever else is wrong with them).
    func scalarValue(of key: String) -> (text: String, node: ConfigNode)? {
        guard case .mapping(let mapping) = node else { return nil }
        for (k, v) in mapping {
            if case .scalar(let name) = k, name.string == key, case .scalar(let value) = v { return (value.string, child(v, key: key)) }
        }
        return nil
    }

    /// The items of the list at `key` of a mapping node, without reporting anything.
    func sequenceValue(of key: String) -> [ConfigNode] {
        guard case .mapping(let mapping) = node else { return [] }
        for (k, v) in mapping {
            if case .scalar(let name) = k, name.string == key, case .sequence(let items) = v {
                let list = child(v, key: key)
                return items.enumerated().map { list.child($0.element, key: "\($0.offset)") }
            }
        }
        return []
    }

    /// The node's line (1-based), when known.
    var line: Int? { mark?.line }

    /// `file:line:column` of the node.
    var location: String {
        guard let mark else { return file }
        return "\(file):\(mark.line):\(mark.column)"
    }
}
