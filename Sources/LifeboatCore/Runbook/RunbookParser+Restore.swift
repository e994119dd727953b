import Foundation

/// A restore step: its policy, and its `target:` (location and the restore command's options).
extension RunbookParser {
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
}
