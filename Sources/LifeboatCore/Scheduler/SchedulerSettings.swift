import Foundation

/// `scheduler:` in lifeboat.yaml: how `lifeboat schedule` runs the policies.
public struct SchedulerSettings: Sendable, Equatable {
    /// A run missed while the daemon was down runs once at start-up when its scheduled time is
    /// at most this long ago (`catch_up`, default 1h; `0s` turns catching up off).
    public var catchUp: ConfigDuration
    /// At most this many runs at once, over all policies (`max_concurrent`, default 2).
    public var maxConcurrent: Int
    /// A run still going after this long is cancelled (`run_timeout`, default 6h).
    public var runTimeout: ConfigDuration
    /// On SIGTERM/SIGINT, running runs get this long to finish before they are cancelled
    /// (`stop_timeout`, default 5m).
    public var stopTimeout: ConfigDuration
    /// When the daemon runs `prune` over every policy (`prune: { cron, timezone, jitter }`);
    /// nil: never.
    public var prune: Schedule?
    /// How often the daemon reads each policy's repository for its metrics and readiness
    /// (`metrics_refresh`, default 5m); also at start and after each run of the policy.
    public var metricsRefresh: ConfigDuration

    public init(catchUp: ConfigDuration = ConfigDuration(seconds: 3600), maxConcurrent: Int = 2,
                runTimeout: ConfigDuration = ConfigDuration(seconds: 6 * 3600), stopTimeout: ConfigDuration = ConfigDuration(seconds: 300),
                prune: Schedule? = nil, metricsRefresh: ConfigDuration = ConfigDuration(seconds: 300)) {
        self.catchUp = catchUp
        self.maxConcurrent = maxConcurrent
        self.runTimeout = runTimeout
        self.stopTimeout = stopTimeout
        self.prune = prune
        self.metricsRefresh = metricsRefresh
    }

    public static func == (a: SchedulerSettings, b: SchedulerSettings) -> Bool {
        (a.catchUp, a.maxConcurrent, a.runTimeout, a.stopTimeout, a.metricsRefresh) == (b.catchUp, b.maxConcurrent, b.runTimeout, b.stopTimeout, b.metricsRefresh)
            && a.prune?.cron == b.prune?.cron && a.prune?.timezone == b.prune?.timezone && a.prune?.jitter == b.prune?.jitter
    }

    static let keys = ["catch_up", "max_concurrent", "run_timeout", "stop_timeout", "prune", "metrics_refresh"]

    /// Reads `scheduler:`; every problem is reported on its node (file:line:column).
    static func parse(_ node: ConfigNode) -> SchedulerSettings {
        var settings = SchedulerSettings()
        guard let map = node.mapping(allowed: keys) else { return settings }
        if let value = map["catch_up"]?.duration() { settings.catchUp = value }
        if let value = map["max_concurrent"]?.int(in: 1...64) { settings.maxConcurrent = value }
        if let value = map["run_timeout"]?.positiveDuration() { settings.runTimeout = value }
        if let value = map["stop_timeout"]?.duration() { settings.stopTimeout = value }
        if let node = map["prune"] { settings.prune = ConfigurationParser.parseSchedule(node) }
        if let value = map["metrics_refresh"]?.positiveDuration() { settings.metricsRefresh = value }
        return settings
    }
}

extension Configuration {
    /// Where `state_dir` is when lifeboat.yaml does not set it: `.lifeboat/state` in the
    /// configuration directory.
    public static let builtinStateDirectory = ".lifeboat/state"

    /// The state directory in use: `state_dir`, else `.lifeboat/state` in the configuration
    /// directory.
    public var resolvedStateDirectory: String {
        stateDirectory ?? resolvePath(Configuration.builtinStateDirectory, in: directory)
    }
}
