import Foundation

/// What needs the whole runbook: step ids (given or derived), references between steps,
/// variables, and the restores of a parallel group.
extension RunbookParser {
    // MARK: ids and validation

    /// Reports every explicit id used twice — also of steps that could not be read otherwise,
    /// so that one mistake does not hide another. `items` are the nodes of `steps:`.
    static func reportRepeatedIDs(_ items: [ConfigNode]) -> Bool {
        var valid = true
        var taken: [String: ConfigNode] = [:]
        func visit(_ item: ConfigNode) {
            guard let id = item.scalarValue(of: "id"), isValidStepID(id.text) else { return }
            if let first = taken[id.text] {
                id.node.error("step id '\(id.text)' is already used at line \(first.line ?? 0)", hint: "Give every step an id of its own.")
                valid = false
            } else {
                taken[id.text] = id.node
            }
        }
        for item in items {
            visit(item)
            for child in item.sequenceValue(of: "parallel") { visit(child) }
        }
        return valid
    }

    /// Gives every step its id: the explicit one, or one derived from its kind
    /// (`restore-POLICY`, `run-1`, `health-1`, …) that no other step has.
    static func assignIDs(_ drafts: [Draft]) {
        let flat = drafts.flatMap { [$0] + $0.children }
        let taken = Set(flat.compactMap { $0.explicitID?.id })
        var used = taken
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
                        } else if let mode = RunbookMode.allCases.first(where: { draft.runs(in: $0, within: flat) && !referenced.runs(in: $0, within: flat) }) {
                            node.error("'${\(name)}' refers to step '\(target)', which does not run in '\(mode.rawValue)' mode, where this step runs",
                                       hint: "Give both steps the same 'when', or refer to a restore step that always runs.")
                            valid = false
                        }
                    } else if name == RunbookVariables.restoredPoint {
                        // In every mode this step runs in, some restore step before it runs too.
                        let restoreBefore = RunbookMode.allCases.allSatisfy { mode in
                            !draft.runs(in: mode, within: flat) || flat.contains { other in
                                if case .restore = other.step.kind { return runsBefore(other, draft) && other.runs(in: mode, within: flat) }
                                return false
                            }
                        }
                        if !restoreBefore && !hasFallback {
                            node.error("'${\(RunbookVariables.restoredPoint)}' is used before any restore step has run",
                                       hint: "Use it after a restore step, or write ${steps.ID.restored_point} for a specific one.")
                            valid = false
                        }
                    } else if !hasFallback, variables[name] == nil, environment[name] == nil,
                              let (target, _) = DrillTargetVariables.reference(name, restoreStepIDs: restoreIDs(flat)) {
                        // A drill's scratch target: set once that restore step has run, in drill mode only.
                        if draft.runs(in: .recover, within: flat) {
                            node.error("'${\(name)}' is set only in a drill (the scratch target of step '\(target)'), and this step also runs in 'recover' mode",
                                       hint: "Give the step 'when: drill', or write ${\(name):-default}.")
                            valid = false
                        } else if let referenced = byID[target], !runsBefore(referenced, draft) {
                            node.error("'${\(name)}' refers to the scratch target of step '\(target)', which has not run yet at this point",
                                       hint: "Refer only to restore steps that come before this one.")
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

    /// The ids of the restore steps.
    static func restoreIDs(_ flat: [Draft]) -> [String] {
        flat.filter { if case .restore = $0.step.kind { return true } else { return false } }.map(\.step.id)
    }

    /// Whether `a` has ended before `b` starts: an earlier top-level position (a group's steps
    /// end with their group).
    static func runsBefore(_ a: Draft, _ b: Draft) -> Bool {
        a.index < b.index
    }
}
