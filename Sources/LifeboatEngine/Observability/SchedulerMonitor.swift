import Foundation
import LifeboatCore
import LifeboatIO
import Logging
import Synchronization

/// The scheduler daemon's metrics and health: a `SchedulerObserver` that keeps the
/// `MetricRegistry` and what `/readyz` needs, and a refresher thread that reads each scheduled
/// policy's repository — at start, after each run of the policy, and every
/// `scheduler.metrics_refresh`. A request only renders what is in memory; it never reads a
/// repository.
public final class SchedulerMonitor: SchedulerObserver, @unchecked Sendable {
    public let registry: MetricRegistry
    let configuration: Configuration
    /// The scheduled policies (not `prune:*`).
    let policies: [Policy]
    let state: StateDirectory
    let context: RunContext

    struct Known: Sendable {
        enum Loop { case notStarted, running, stopping, stopped }
        var loop = Loop.notStarted
        var startedAt: Date?
        var repositories: [String: Readiness.RepositoryState] = [:]
        /// Per policy: the newest committed backup's end, from the newest refresh.
        var newestBackup: [String: Date] = [:]
        var maxAge: [String: TimeInterval] = [:]
        /// Per policy: the error of its newest backup run, when it failed or timed out.
        var lastRunError: [String: String] = [:]
    }

    private let known = Mutex(Known())
    // Guarded by `condition`: policies to refresh, and whether the refresher should end.
    private let condition = NSCondition()
    private var requested: Set<String> = []
    private var ending = false
    private var refresherStarted = false
    private let refresherDone = Wakeup()
    private let refreshCancellation = Cancellation()

    /// - Parameters:
    ///   - context: the daemon's; its clock dates the checks, its logger logs the refresher.
    public init(configuration: Configuration, context: RunContext, registry: MetricRegistry = MetricRegistry()) {
        let policies = configuration.policies.filter { $0.schedule != nil }
        // The problems of other files were logged when the daemon started: the refresher's
        // listings, every few minutes, do not log them again.
        var quiet = configuration
        quiet.problems = configuration.problems(blocking: policies.reduce(into: Set()) { $0.formUnion(configuration.scopes(forPolicy: $1.name)) })
        self.configuration = quiet
        self.policies = policies
        self.state = StateDirectory(path: configuration.resolvedStateDirectory)
        var refresherContext = context.with(metadata: "component", "metrics-refresher")
        refresherContext.cancellation = refreshCancellation
        self.context = refresherContext
        self.registry = registry
        let repositories = Set(policies.map { $0.repository ?? configuration.defaultRepository })
        known.withLock { known in
            for name in repositories { known.repositories[name] = .notChecked }
        }
    }

    /// Sets a metric; a use the catalogue refuses is logged, never thrown at the daemon.
    private func record(_ body: () throws -> Void) {
        do {
            try body()
        } catch {
            context.logger.error("metric not recorded", metadata: ["error": "\(error)"])
        }
    }

    // MARK: SchedulerObserver

    public func schedulerStarted(history: [RunRecord]) {
        let now = context.clock()
        let jobs = policies.map { ($0.name, "backup") } + (configuration.scheduler.prune == nil ? [] : [("*", "prune")])
            + (configuration.scheduler.verify == nil ? [] : [("*", "verify")])
            + drilledRunbooks.map { ($0.name, "drill") }
        record {
            try registry.set(MetricCatalogue.buildInfo, [LifeboatVersion.current], 1)
            try registry.set(MetricCatalogue.schedulerUp, [], 1)
            for (policy, job) in jobs {
                for outcome in RunRecord.Outcome.allCases { try registry.increment(MetricCatalogue.runsTotal, [policy, job, outcome.rawValue], by: 0) }
            }
            for policy in policies {
                try registry.increment(MetricCatalogue.bytesWritten, [policy.name], by: 0)
                if configuration.scheduler.prune != nil {
                    for kind in ["backup", "wal", "blob"] { try registry.increment(MetricCatalogue.pruneDeleted, [policy.name, kind], by: 0) }
                }
            }
        }
        // The newest run of each job, from the history: the gauges say what the daemon did
        // before it was restarted.
        var newest: [String: RunRecord] = [:]
        for run in history { newest[run.policy + "\u{0}" + run.job] = run }
        for run in newest.values where jobs.contains(where: { $0 == (run.policy, run.job) }) {
            record {
                try registry.set(MetricCatalogue.lastRunSuccess, [run.policy, run.job], run.outcome == .succeeded ? 1 : 0)
                try registry.set(MetricCatalogue.lastRunTimestamp, [run.policy, run.job], run.ended.timeIntervalSince1970)
            }
        }
        known.withLock { known in
            known.loop = .running
            known.startedAt = now
            for run in newest.values where run.job == "backup" {
                if let error = Self.failure(of: run) { known.lastRunError[run.policy] = error }
            }
        }
        // The drill gauges say what the newest drill of each runbook found, from its history.
        for runbook in drilledRunbooks { recordDrill(runbook.name) }
        updateMaxAges(now: now)
        startRefresher()
    }

    /// The runbooks the daemon drills.
    var drilledRunbooks: [Runbook] { configuration.runbooks.filter { $0.schedule != nil } }

    /// Sets the `lifeboat_drill_*` gauges from the newest line of the runbook's drill history.
    func recordDrill(_ runbook: String) {
        let newest: DrillRecord?
        do {
            newest = try DrillHistory(stateDirectory: state.path, runbook: runbook).records(last: 1).last
        } catch {
            context.logger.error("the drill history could not be read", metadata: ["drill.runbook": "\(runbook)", "error": "\(error)"])
            return
        }
        guard let newest else { return }
        record {
            try registry.set(MetricCatalogue.drillLastSuccess, [runbook], newest.passed ? 1 : 0)
            try registry.set(MetricCatalogue.drillLastTimestamp, [runbook], newest.end.timeIntervalSince1970)
            if let rto = newest.rto { try registry.set(MetricCatalogue.drillRTO, [runbook], rto) } else { try registry.remove(MetricCatalogue.drillRTO, [runbook]) }
            if let rpo = newest.rpo { try registry.set(MetricCatalogue.drillRPO, [runbook], rpo) } else { try registry.remove(MetricCatalogue.drillRPO, [runbook]) }
            if let rto = newest.objectives.rto { try registry.set(MetricCatalogue.drillRTOObjective, [runbook], rto) }
            if let rpo = newest.objectives.rpo { try registry.set(MetricCatalogue.drillRPOObjective, [runbook], rpo) }
        }
    }

    public func runEnded(key: String, record run: RunRecord, result: SchedulerDaemon.JobResult?) {
        let labels = [run.policy, run.job]
        record {
            try registry.increment(MetricCatalogue.runsTotal, labels + [run.outcome.rawValue])
            try registry.set(MetricCatalogue.lastRunSuccess, labels, run.outcome == .succeeded ? 1 : 0)
            try registry.set(MetricCatalogue.lastRunTimestamp, labels, run.ended.timeIntervalSince1970)
            try registry.observe(MetricCatalogue.runDuration, labels, max(0, run.ended.timeIntervalSince(run.started)))
            if run.job == "backup", let bytes = run.bytes, run.outcome == .succeeded || run.outcome == .incomplete {
                try registry.increment(MetricCatalogue.bytesWritten, [run.policy], by: Double(bytes))
                try registry.set(MetricCatalogue.lastBackupBytes, [run.policy], Double(bytes))
            }
            for (policy, kinds) in result?.deleted ?? [:] {
                for (kind, count) in kinds { try registry.increment(MetricCatalogue.pruneDeleted, [policy, kind], by: Double(count)) }
            }
        }
        if run.job == "backup" {
            known.withLock { $0.lastRunError[run.policy] = Self.failure(of: run) }
        }
        if run.job == "drill" { recordDrill(run.policy) }
        // A backup changes its policy's repository, a prune every policy's; a verify only reads,
        // and re-listing every repository (and WAL archive) after it would change no metric.
        switch run.job {
        case "backup": requestRefresh([run.policy])
        case "prune": requestRefresh(Set(policies.map(\.name)))
        default: break
        }
    }

    public func schedulerStopping() {
        known.withLock { $0.loop = .stopping }
        record { try registry.set(MetricCatalogue.schedulerUp, [], 0) }
    }

    public func schedulerStopped() {
        known.withLock { $0.loop = .stopped }
    }

    /// The error of a run that failed or timed out; nil for any other outcome (a run cancelled
    /// by a stop is no failure of the policy).
    static func failure(of run: RunRecord) -> String? {
        run.outcome == .failed || run.outcome == .timedOut ? (run.error ?? run.outcome.rawValue) : nil
    }

    // MARK: The refresher

    private func startRefresher() {
        condition.lock()
        requested = Set(policies.map(\.name))
        refresherStarted = true
        condition.unlock()
        let thread = Thread { [self] in
            defer { refresherDone.wake() }
            refreshLoop()
        }
        thread.name = "lifeboat-metrics-refresher"
        thread.start()
    }

    /// Asks the refresher to read these policies' repositories soon.
    func requestRefresh(_ names: Set<String>) {
        condition.lock()
        requested.formUnion(names)
        condition.broadcast()
        condition.unlock()
    }

    /// Ends the refresher (a refresh under way is cancelled) and waits for it. Call once the
    /// daemon's `run()` has returned.
    public func stop() {
        condition.lock()
        let started = refresherStarted
        ending = true
        condition.broadcast()
        condition.unlock()
        refreshCancellation.cancel(reason: "scheduler stopped")
        if started { refresherDone.wait() }
    }

    private func refreshLoop() {
        let period = TimeInterval(configuration.scheduler.metricsRefresh.seconds)
        var nextPeriodic = context.clock().addingTimeInterval(period)
        while true {
            condition.lock()
            while requested.isEmpty, !ending, context.clock() < nextPeriodic {
                // At most a minute at a time: a clock set forward or back is noticed.
                let seconds = min(60, max(0, nextPeriodic.timeIntervalSince(context.clock())) + 0.001)
                _ = condition.wait(until: Date().addingTimeInterval(seconds))
            }
            if ending {
                condition.unlock()
                return
            }
            var names = requested
            requested = []
            condition.unlock()
            if context.clock() >= nextPeriodic {
                names = Set(policies.map(\.name))
                nextPeriodic = context.clock().addingTimeInterval(period)
            }
            refresh(names)
        }
    }

    /// Reads the repositories of `names` and sets their metrics (on the refresher's thread).
    func refresh(_ names: Set<String>) {
        let failures = state.walPushFailureCounts()
        for policy in policies where names.contains(policy.name) {
            if refreshCancellation.isCancelled { return }
            refresh(policy, walPushFailures: failures[policy.name] ?? 0)
        }
        updateMaxAges(now: context.clock())
    }

    private func refresh(_ policy: Policy, walPushFailures: Int) {
        let name = policy.name
        let repository = policy.repository ?? configuration.defaultRepository
        let checked = context.clock()
        var reachable: Readiness.RepositoryState
        do {
            let points = try RecoveryPoints.read(policy: name, configuration: configuration, context: context)
            reachable = points.problem.map { .unreachable($0) } ?? .reachable
            record {
                try registry.set(MetricCatalogue.backupsInRepository, [name], Double(points.committedBackups))
                try setOrRemove(MetricCatalogue.lastSuccessTimestamp, name, points.newestBackupEnd)
                try setOrRemove(MetricCatalogue.newestRecoverable, name, points.newest)
                try setOrRemove(MetricCatalogue.earliestRecoverable, name, points.earliest)
            }
            known.withLock { $0.newestBackup[name] = points.newestBackupEnd }
            if policy.source.kind == "postgres" {
                let pushed = try walLastPush(policy)
                record { try setOrRemove(MetricCatalogue.walLastPush, name, pushed) }
            }
        } catch {
            reachable = .unreachable(Secrets.redact("\(error)"))
            context.logger.warning("could not read the policy's repository for the metrics", metadata: [
                "policy.name": "\(name)", "repository.name": "\(repository)", "error": "\(Secrets.redact("\(error)"))",
            ])
        }
        if refreshCancellation.isCancelled { return }
        let up: Double
        if case .reachable = reachable { up = 1 } else { up = 0 }
        record {
            try registry.set(MetricCatalogue.repositoryUp, [name], up)
            try registry.set(MetricCatalogue.repositoryCheckTimestamp, [name], checked.timeIntervalSince1970)
            if policy.source.kind == "postgres" || walPushFailures > 0 {
                let old = registry.value(MetricCatalogue.walPushFailures, [name]) ?? 0
                // The older file was replaced: a counter reset, as Prometheus understands it.
                if Double(walPushFailures) < old { try registry.remove(MetricCatalogue.walPushFailures, [name]) }
                try registry.set(MetricCatalogue.walPushFailures, [name], Double(walPushFailures))
            }
        }
        known.withLock { $0.repositories[repository] = reachable }
    }

    private func setOrRemove(_ metric: MetricDescriptor, _ policy: String, _ date: Date?) throws(MetricRegistry.Misuse) {
        if let date { try registry.set(metric, [policy], date.timeIntervalSince1970) } else { try registry.remove(metric, [policy]) }
    }

    /// When the newest archived WAL file of the policy was stored (the objects' modification
    /// times: the repository keeps no other record of it); nil when nothing is archived.
    private func walLastPush(_ policy: Policy) throws -> Date? {
        let repository = try Repository.open(try configuration.repository(for: policy), context: context)
        var newest: Date?
        try WALArchive(repository: repository, policy: policy.name, context: context).forEachArchived { _, object in
            newest = max(newest ?? object.modified, object.modified)
            return true
        }
        return newest
    }

    /// `lifeboat_backup_max_age_seconds` from each policy's schedule, as of `now`.
    private func updateMaxAges(now: Date) {
        var ages: [String: TimeInterval] = [:]
        for policy in policies {
            guard let schedule = policy.schedule,
                  let age = StalenessThreshold.maxAge(of: schedule, runTimeout: configuration.scheduler.runTimeout, now: now)
            else { continue }
            ages[policy.name] = age
            record { try registry.set(MetricCatalogue.maxAge, [policy.name], age) }
        }
        known.withLock { $0.maxAge = ages }
    }

    // MARK: The endpoints

    /// The readiness report as of now, from memory.
    public func readiness() -> Readiness.Report {
        let now = context.clock()
        let known = known.withLock { $0 }
        var policyStates: [String: Readiness.PolicyState] = [:]
        for policy in policies {
            policyStates[policy.name] = Readiness.policyState(
                newestBackup: known.newestBackup[policy.name], since: known.startedAt ?? now, maxAge: known.maxAge[policy.name],
                lastRunError: known.lastRunError[policy.name], now: now)
        }
        let scheduler: Readiness.SchedulerState = switch known.loop {
        case .running: .running
        case .stopping: .stopping
        case .notStarted, .stopped: .notRunning
        }
        return Readiness.evaluate(scheduler: scheduler,
                                  repositories: known.repositories, policies: policyStates)
    }

    /// Answers `/metrics`, `/healthz` and `/readyz`; 404 for anything else. With a `token`,
    /// `/metrics` answers 401 to a request without `Authorization: Bearer <token>`; the health
    /// endpoints stay open (a kubelet's probes carry no token).
    public func respond(_ request: HTTPRequestHead, token: BearerToken? = nil) -> HTTPListener.Response {
        switch request.path {
        case "/metrics":
            if let token, !token.accepts(authorization: request.authorization) {
                return HTTPListener.Response(status: 401, body: "unauthorized: /metrics needs Authorization: Bearer <the token of listen_token_file>\n",
                                             headers: [("WWW-Authenticate", "Bearer realm=\"lifeboat\"")])
            }
            return HTTPListener.Response(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: registry.render())
        case "/healthz":
            // Liveness: the process answers and its loop has not ended. Starting up (the
            // listener binds before the loop's first tick) is alive — not yet ready (/readyz).
            let loop = known.withLock { $0.loop }
            let report = Readiness.Report(status: loop == .stopped ? .unhealthy : .healthy,
                                          checks: ["scheduler": loop == .stopped ? "stopped" : loop == .notStarted ? "starting" : "ok"])
            return HTTPListener.Response(status: report.httpStatus, contentType: "application/json", body: report.json() + "\n")
        case "/readyz":
            let report = readiness()
            return HTTPListener.Response(status: report.httpStatus, contentType: "application/json", body: report.json() + "\n")
        default:
            return HTTPListener.Response(status: 404, body: "not found: Lifeboat serves /metrics, /healthz and /readyz\n")
        }
    }

    /// Binds the listener for `address` and serves this monitor's endpoints, logging
    /// `"metrics listening"` with the bound address; nil when `address` is `off`. `token`
    /// protects `/metrics` (see `respond`).
    ///
    /// - Throws: `LifeboatError(.io)` naming the address when it cannot be bound.
    public func listen(on address: ListenAddress, token: BearerToken? = nil, logger: Logger) throws -> HTTPListener? {
        guard case .address(let host, let port) = address else {
            logger.info("metrics listener off")
            return nil
        }
        let listener = try HTTPListener(host: host, port: port)
        listener.start { [self] request in respond(request, token: token) }
        logger.info("metrics listening", metadata: ["http.address": "\(listener.address)", "http.metrics_token": "\(token == nil ? "none" : "required")"])
        return listener
    }
}
