import Foundation

/// `/readyz`: whether the scheduler does its job, from what it knows (never probing anything
/// during the request).
///
/// Each check is `"ok"` or a short reason. The status:
/// - `unhealthy` (HTTP 503): the scheduler is stopping (or not running), or every repository failed its
///   newest check;
/// - `degraded` (HTTP 200): a repository failed its newest check or was not checked yet, a
///   policy's newest backup is older than its threshold (stale), or its newest run failed;
/// - `healthy` (HTTP 200): every check is ok.
/// Degraded answers 200: the daemon still runs backups; alerts, not a load balancer, act on it.
public enum Readiness {
    public enum Status: String, Sendable, Encodable {
        case healthy, degraded, unhealthy
    }

    public enum SchedulerState: Sendable, Equatable {
        /// `notRunning`: its loop has not started yet, or has ended.
        case running, stopping, notRunning
    }

    public enum RepositoryState: Sendable, Equatable {
        case notChecked
        case reachable
        case unreachable(String)
    }

    public enum PolicyState: Sendable, Equatable {
        case ok
        /// The newest backup (nil: none yet, counted from `since`) is older than `maxAge`.
        case stale(newest: Date?, since: Date, maxAge: TimeInterval)
        /// The newest run failed (or timed out), with its error.
        case failing(String)
    }

    public struct Report: Sendable, Encodable, Equatable {
        public var status: Status
        public var checks: [String: String]

        public init(status: Status, checks: [String: String]) {
            self.status = status
            self.checks = checks
        }

        /// 200 for healthy and degraded, 503 for unhealthy.
        public var httpStatus: Int { status == .unhealthy ? 503 : 200 }

        /// `{"status": …, "checks": {…}}`, keys sorted.
        public func json() -> String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
        }
    }

    public static func evaluate(scheduler: SchedulerState, repositories: [String: RepositoryState],
                                policies: [String: PolicyState]) -> Report {
        var checks: [String: String] = ["scheduler": scheduler == .running ? "ok" : scheduler == .stopping ? "stopping" : "not running"]
        var degraded = false
        for (name, state) in repositories {
            switch state {
            case .reachable: checks["repository:\(name)"] = "ok"
            case .notChecked:
                checks["repository:\(name)"] = "not checked yet"
                degraded = true
            case .unreachable(let reason):
                checks["repository:\(name)"] = "unreachable: \(shorten(reason))"
                degraded = true
            }
        }
        for (name, state) in policies {
            switch state {
            case .ok: checks["policy:\(name)"] = "ok"
            case .stale(let newest, let since, let maxAge):
                let limit = ConfigDuration(seconds: Int64(maxAge)).description
                checks["policy:\(name)"] = newest.map { "stale: newest backup \(iso($0)), older than \(limit)" }
                    ?? "stale: no backup since \(iso(since)), more than \(limit) ago"
                degraded = true
            case .failing(let error):
                checks["policy:\(name)"] = "failing: last run failed: \(shorten(error))"
                degraded = true
            }
        }
        let allUnreachable = !repositories.isEmpty && repositories.values.allSatisfy {
            if case .unreachable = $0 { return true }
            return false
        }
        let status: Status = scheduler != .running || allUnreachable ? .unhealthy : degraded ? .degraded : .healthy
        return Report(status: status, checks: checks)
    }

    /// A policy's state from its newest backup, its threshold and its newest run.
    public static func policyState(newestBackup: Date?, since: Date, maxAge: TimeInterval?, lastRunError: String?, now: Date) -> PolicyState {
        if let lastRunError { return .failing(lastRunError) }
        if let maxAge, now.timeIntervalSince(newestBackup ?? since) > maxAge {
            return .stale(newest: newestBackup, since: since, maxAge: maxAge)
        }
        return .ok
    }

    /// The first line of a reason, at most 200 characters.
    static func shorten(_ text: String) -> String {
        let line = text.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? ""
        return line.count > 200 ? String(line.prefix(199)) + "…" : line
    }

    static func iso(_ date: Date) -> String { ISO8601DateFormatter().string(from: date) }
}
