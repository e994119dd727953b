import Foundation
import LifeboatCore
import LifeboatHTTP
import LifeboatIO
import LifeboatPostgres
import LifeboatRedis
import LifeboatS3
import Logging

/// Runs a runbook's health checks: one check once (`check(_:)` → `CheckOutcome`), or a whole
/// `health` step — every check tried, those that failed tried again every `interval`, until all
/// passed or `within` ran out (`waitUntilPassing(_:)`). Times come from the context's clock and
/// waits go through its sleep, so tests drive the loop without waiting; a cancellation ends it.
///
/// Each check uses the project's own client for its service: libcurl (`HTTPClient`) for
/// `http`, libpq for `postgres`, `RedisConnection` for `redis`, `S3Client` for `s3`. A check
/// never throws: whatever went wrong (a refused connection, a variable without a value) is a
/// failed outcome whose detail says what it got.
public struct HealthCheckRunner: Sendable {
    public let context: RunContext
    public var variables: RunbookVariables

    public init(context: RunContext, variables: RunbookVariables) {
        self.context = context
        self.variables = variables
    }

    // MARK: The loop

    /// Tries the checks until every one has passed or `step.within` has run out.
    ///
    /// - Returns: every check's last outcome, attempts and the time it passed.
    /// - Throws: `LifeboatError(.cancelled)` when the run is cancelled.
    public func waitUntilPassing(_ step: HealthStep) throws -> [CheckResult] {
        let start = context.clock()
        let deadline = start.addingTimeInterval(Double(step.within.seconds))
        var results = step.checks.map { CheckResult(kind: $0.kindName, target: target(of: $0), passed: false, detail: "not tried", attempts: 0) }
        while true {
            try context.cancellation.checkCancelled()
            for (index, check) in step.checks.enumerated() where !results[index].passed {
                let outcome = self.check(check)
                try context.cancellation.checkCancelled()
                results[index].attempts += 1
                results[index].detail = outcome.detail
                if outcome.passed {
                    results[index].passed = true
                    results[index].passedAt = context.clock()
                    context.logger.info("health check passed", metadata: ["check": "\(check.kindName) \(results[index].target)",
                                                                          "check.detail": "\(outcome.detail)"])
                } else {
                    context.logger.info("health check failed", metadata: ["check": "\(check.kindName) \(results[index].target)",
                                                                          "check.detail": "\(outcome.detail)"])
                }
            }
            if results.allSatisfy(\.passed) { return results }
            let now = context.clock()
            let left = deadline.timeIntervalSince(now)
            if left <= 0 { return results }
            context.sleep(min(Double(step.interval.seconds), left))
        }
    }

    // MARK: One check

    /// What the check probes, for reports: the URL, `user@host:port/db`, `host:port`, the
    /// bucket, the command — never a password.
    public func target(of check: HealthCheck) -> String {
        func text(_ template: RunbookTemplate) -> String { (try? variables.resolve(template)) ?? template.text }
        switch check.kind {
        case .http(let h): return Secrets.redact(HTTPClient.redactedURL(text(h.url)))
        case .postgres(let p):
            let conninfo = text(p.conninfo)
            return (try? PostgresConnectionParameters(conninfo: conninfo).safeDescription) ?? "(invalid conninfo)"
        case .redis(let r): return "\(text(r.host)):\(r.port)"
        case .s3(let s):
            return "\(s.connection.endpoint)/\(s.connection.bucket)/\(s.connection.prefix)"
        case .tcp(let address): return text(address)
        case .command(let spec):
            switch spec.program {
            case .argv(let words): return Secrets.redact(words.map { RecoveryOptions.shellQuoted(text($0)) }.joined(separator: " "))
            case .shell(let script): return Secrets.redact("sh -c \(RecoveryOptions.shellQuoted(text(script)))")
            }
        }
    }

    /// Tries the check once.
    public func check(_ check: HealthCheck) -> CheckOutcome {
        let timeout = Double(check.timeout.seconds)
        do {
            switch check.kind {
            case .http(let h): return try http(h, timeout: timeout)
            case .postgres(let p): return try postgres(p, timeout: timeout)
            case .redis(let r): return try redis(r, timeout: timeout)
            case .s3(let s): return try s3(s, timeout: timeout)
            case .tcp(let address):
                let text = try variables.resolve(address)
                guard let (host, port) = RunbookParser.splitHostPort(text) else { return .failed("'\(text)' is not host:port") }
                return TCPProbe.connect(host: host, port: port, timeout: timeout, cancellation: context.cancellation)
            case .command(let spec):
                let invocation = try CommandStep.invocation(spec, variables: variables, environment: context.environment)
                let result = try CommandStep(context: context, stepID: "check", grace: 2).run(invocation, timeout: timeout)
                return CheckOutcome(passed: result.passed, detail: result.detail)
            }
        } catch let error as LifeboatError {
            return .failed(Secrets.redact(error.message))
        } catch {
            return .failed(Secrets.redact("\(error)"))
        }
    }

    func http(_ check: HTTPHealthCheck, timeout: Double) throws -> CheckOutcome {
        let url = try variables.resolve(check.url)
        let expectations = try check.json.map { (path: $0.path, expected: try variables.resolve($0.expected)) }
        let limit = Duration.milliseconds(Int64(timeout * 1000))
        if check.insecureSkipTLSVerify {
            context.logger.warning("TLS certificate verification is off for the http check of \(HTTPClient.redactedURL(url)) (insecure_skip_tls_verify: true)")
        }
        let client = try HTTPClient(configuration: HTTPClient.Configuration(connectTimeout: min(limit, .seconds(10)), timeout: limit,
                                                                            verifyTLS: !check.insecureSkipTLSVerify, caBundle: check.caBundle),
                                    environment: context.environment, cancellation: context.cancellation)
        let response: HTTPResponse
        do {
            response = try client.perform(HTTPRequest(.get, url), bodyLimit: 1 << 20)
        } catch let error as LifeboatError {
            if let transport = error.underlying as? HTTPTransportError {
                return .failed("GET \(HTTPClient.redactedURL(url)): \(transport.kind): \(transport.detail)")
            }
            throw error
        }
        return HealthResponse.evaluate(status: response.status, body: response.body, statuses: check.statuses,
                                       acceptDegraded: check.acceptDegraded, expectations: expectations)
    }

    func postgres(_ check: PostgresHealthCheck, timeout: Double) throws -> CheckOutcome {
        let parameters = try PostgresConnectionParameters(conninfo: try variables.resolve(check.conninfo))
        Secrets.register(parameters.password)
        let query = try variables.resolve(check.query)
        let expected = try check.expect.map { try variables.resolve($0) }
        let connection = try PostgresConnection.connect(parameters)
        // The check's time limit holds on the server too.
        _ = try connection.query("select set_config('statement_timeout', $1, false)", ["\(Int(timeout * 1000))"])
        let rows = try connection.query(query)
        let value: String?
        if let row = rows.first, let first = row.first {
            value = first ?? "NULL"
        } else {
            value = nil
        }
        let got = value.map { "'\($0)'" } ?? "no rows"
        guard let expected else { return .passed("\(parameters.safeDescription): the query returned \(got)") }
        guard value == expected else {
            return .failed("\(parameters.safeDescription): the query returned \(got), expected '\(expected)'")
        }
        return .passed("\(parameters.safeDescription): the query returned \(got)")
    }

    func redis(_ check: RedisHealthCheck, timeout: Double) throws -> CheckOutcome {
        let host = try variables.resolve(check.host)
        let tls = check.tls.map { RedisTLS(caBundle: $0.caBundle, certificate: $0.certificate, key: $0.key) }
        let endpoint = RedisEndpoint(host: host, port: check.port, tls: tls)
        let connection = try RedisConnection.connect(to: endpoint, cancellation: context.cancellation, connectTimeout: timeout,
                                                     idleTimeout: timeout)
        defer { connection.close() }
        if let password = try check.password.map({ try variables.resolve($0) }) {
            Secrets.register(password)
            let user = try check.user.map { try variables.resolve($0) }
            _ = try connection.call(["AUTH"] + (user.map { [$0] } ?? []) + [password], shown: "AUTH")
        }
        let reply = try connection.command(["PING"])
        guard reply == .simple("PONG") else { return .failed("\(endpoint): PING answered \(reply)") }
        return .passed("\(endpoint): PING answered PONG")
    }

    func s3(_ check: S3HealthCheck, timeout: Double) throws -> CheckOutcome {
        let connection = check.connection
        let credentials = try S3Credentials.resolve(repository: "the s3 health check", config: connection, environment: context.environment) {
            pathExists($0) ? try readTextFile($0) : nil
        }
        let http = try connection.httpClient(timeout: .milliseconds(Int64(timeout * 1000)), what: "the s3 health check", context: context)
        let client = try S3Client(
            configuration: S3Client.Configuration(endpoint: connection.endpoint, region: connection.region, bucket: connection.bucket,
                                                  pathStyle: connection.pathStyle, credentials: credentials,
                                                  retry: RetryPolicy(maxAttempts: 1), checksum: .sha256),
            http: http, logger: context.logger, sleep: context.sleep)
        let wanted = check.minObjects ?? 0
        var count = 0
        var token: String?
        let place = "s3://\(connection.bucket)/\(connection.prefix)"
        var cursors = ListingCursors(listing: place)
        repeat {
            let page = try client.listObjectsV2(prefix: connection.prefix, continuationToken: token, maxKeys: min(1000, max(1, wanted - count)))
            count += page.objects.count
            token = page.nextContinuationToken
            if let token { try cursors.follow(token) }
        } while token != nil && count < wanted
        let counted = (token == nil ? "" : "at least ") + "\(count) object\(count == 1 ? "" : "s")"
        guard count >= wanted else { return .failed("\(place): \(counted), expected at least \(wanted)") }
        return .passed("\(place) answers: \(counted)")
    }
}
