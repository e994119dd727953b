import Foundation

/// A `run:` step's (and a `command` check's) program: argv, or a shell only when asked for.
extension RunbookParser {
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
}
