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
    /// When the daemon verifies the newest backup of every policy (`verify:`); nil: never.
    public var verify: VerifySchedule?
    /// How often the daemon reads each policy's repository for its metrics and readiness
    /// (`metrics_refresh`, default 5m); also at start and after each run of the policy.
    public var metricsRefresh: ConfigDuration

    public init(catchUp: ConfigDuration = ConfigDuration(seconds: 3600), maxConcurrent: Int = 2,
                runTimeout: ConfigDuration = ConfigDuration(seconds: 6 * 3600), stopTimeout: ConfigDuration = ConfigDuration(seconds: 300),
                prune: Schedule? = nil, verify: VerifySchedule? = nil, metricsRefresh: ConfigDuration = ConfigDuration(seconds: 300)) {
        self.catchUp = catchUp
        self.maxConcurrent = maxConcurrent
        self.runTimeout = runTimeout
        self.stopTimeout = stopTimeout
        self.prune = prune
        self.verify = verify
        self.metricsRefresh = metricsRefresh
    }

    public static func == (a: SchedulerSettings, b: SchedulerSettings) -> Bool {
        (a.catchUp, a.maxConcurrent, a.runTimeout, a.stopTimeout, a.metricsRefresh) == (b.catchUp, b.maxConcurrent, b.runTimeout, b.stopTimeout, b.metricsRefresh)
            && a.prune?.cron == b.prune?.cron && a.prune?.timezone == b.prune?.timezone && a.prune?.jitter == b.prune?.jitter
            && a.verify?.schedule.cron == b.verify?.schedule.cron && a.verify?.schedule.timezone == b.verify?.schedule.timezone
            && a.verify?.schedule.jitter == b.verify?.schedule.jitter && a.verify?.readDataParts == b.verify?.readDataParts
    }

    static let keys = ["catch_up", "max_concurrent", "run_timeout", "stop_timeout", "prune", "verify", "metrics_refresh"]

    /// Reads `scheduler:`; every problem is reported on its node (file:line:column).
    static func parse(_ node: ConfigNode) -> SchedulerSettings {
        var settings = SchedulerSettings()
        guard let map = node.mapping(allowed: keys) else { return settings }
        if let value = map["catch_up"]?.duration() { settings.catchUp = value }
        if let value = map["max_concurrent"]?.int(in: 1...64) { settings.maxConcurrent = value }
        if let value = map["run_timeout"]?.positiveDuration() { settings.runTimeout = value }
        if let value = map["stop_timeout"]?.duration() { settings.stopTimeout = value }
        if let node = map["prune"] { settings.prune = ConfigurationParser.parseSchedule(node) }
        if let node = map["verify"] { settings.verify = VerifySchedule.parse(node) }
        if let value = map["metrics_refresh"]?.positiveDuration() { settings.metricsRefresh = value }
        return settings
    }
}

/// `scheduler.verify: { cron, timezone, jitter, read_data_parts }`: when the daemon verifies
/// the newest committed backup of every policy, and how much of the S3 mirrors' object
/// contents each run re-hashes.
public struct VerifySchedule: Sendable {
    public var schedule: Schedule
    /// S3 mirrors: each run re-reads one part of this many of the stored object contents and
    /// checks their SHA-256, the next part at each run, so that this many runs read them all
    /// (`read_data_parts`; 1: all at every run). Nil: each run checks only that every object's
    /// content exists, with its size. Artifacts (the other source kinds) are always re-read whole.
    public var readDataParts: Int?

    public init(schedule: Schedule, readDataParts: Int? = nil) {
        self.schedule = schedule
        self.readDataParts = readDataParts
    }

    /// The part of `readDataParts` the run after `previousRuns` verify runs reads (1-based,
    /// rotating), or nil when runs read no data.
    public func subset(afterRuns previousRuns: Int) -> (part: Int, of: Int)? {
        guard let parts = readDataParts else { return nil }
        return (previousRuns % parts + 1, parts)
    }

    static func parse(_ node: ConfigNode) -> VerifySchedule? {
        guard let map = node.mapping(allowed: ConfigurationParser.scheduleKeys + ["read_data_parts"]) else { return nil }
        let partsNode = map["read_data_parts"]
        let parts = partsNode?.int(in: 1...65536)
        let schedule = ConfigurationParser.parseSchedule(map)  // reports its own problems too
        guard let schedule, partsNode == nil || parts != nil else { return nil }
        return VerifySchedule(schedule: schedule, readDataParts: parts)
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
