import Foundation

/// A `health:` step and its checks.
extension RunbookParser {
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
            guard let h = body.mapping(allowed: ["url", "status", "json", "accept_degraded", "ca_bundle", "insecure_skip_tls_verify", "timeout"]) else { return nil }
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
            let caBundle = h["ca_bundle"]?.absolutePath()
            if h["ca_bundle"] != nil && caBundle == nil { valid = false }
            let insecure = h["insecure_skip_tls_verify"]?.bool()
            if h["insecure_skip_tls_verify"] != nil && insecure == nil { valid = false }
            let timeout = checkTimeout(h, &valid)
            guard valid, let url else { return nil }
            var check = HTTPHealthCheck(url: url, statuses: statuses, json: json, acceptDegraded: acceptDegraded ?? false, caBundle: caBundle)
            check.insecureSkipTLSVerify = insecure ?? false
            return HealthCheck(kind: .http(check), timeout: timeout)
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
}
