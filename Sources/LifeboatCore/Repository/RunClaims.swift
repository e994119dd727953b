import Foundation

/// Who a Lifeboat process is, so that others can tell whether it still runs.
///
/// On the same machine the process is checked directly: it runs when a process with `pid`
/// exists, started at the same `processStart` (clock ticks since boot, so a recycled pid is not
/// mistaken for it), in the same boot (`bootID`). On another machine only the heartbeat tells.
public struct ProcessIdentity: Codable, Equatable, Sendable {
    public var host: String
    public var pid: Int32
    /// `/proc/<pid>/stat` field 22, when known.
    public var processStart: UInt64?
    /// `/proc/sys/kernel/random/boot_id`, when known.
    public var bootID: String?

    public init(host: String, pid: Int32, processStart: UInt64? = nil, bootID: String? = nil) {
        self.host = host
        self.pid = pid
        self.processStart = processStart
        self.bootID = bootID
    }

    /// "pid 4242 on db-1".
    public var description: String { "pid \(pid) on \(host)" }
}

/// Timings of reservations and locks. Documented in the README: a run refreshes its claims
/// every `refreshInterval`; a claim whose heartbeat is older than `staleAfter` belongs to a
/// run that is gone (or cut off from the repository, which then stops itself).
public struct ClaimTimings: Sendable, Equatable {
    public var refreshInterval: TimeInterval
    public var staleAfter: TimeInterval

    public init(refreshInterval: TimeInterval = 5 * 60, staleAfter: TimeInterval = 30 * 60) {
        self.refreshInterval = refreshInterval
        self.staleAfter = staleAfter
    }

    public static let standard = ClaimTimings()
}

/// Whether the process behind a claim still runs.
public enum Liveness: Equatable, Sendable, CustomStringConvertible {
    /// Known to run (same machine, the process exists), or its heartbeat is recent.
    case live
    /// Known to be gone, with the reason ("pid 4242 on db-1 is no longer running").
    case stale(String)

    public var isStale: Bool { if case .stale = self { return true } else { return false } }

    public var description: String {
        switch self {
        case .live: return "live"
        case .stale(let reason): return "stale: \(reason)"
        }
    }
}

public enum ClaimLiveness {
    /// Whether the process that wrote a claim still runs.
    ///
    /// - Parameters:
    ///   - owner: who wrote the claim; `heartbeat` when it last refreshed it.
    ///   - local: this process's identity (its host and boot decide whether `owner` can be
    ///     checked directly).
    ///   - processRuns: on this machine, whether a process with this pid and start time runs.
    public static func evaluate(owner: ProcessIdentity, heartbeat: Date, now: Date, timings: ClaimTimings,
                                local: ProcessIdentity, processRuns: (Int32, UInt64?) -> Bool) -> Liveness {
        if owner.host == local.host {
            if let ownerBoot = owner.bootID, let localBoot = local.bootID {
                if ownerBoot != localBoot { return .stale("\(owner.description) ran before \(local.host) restarted") }
                // Same machine, same boot: the process table is the truth, whatever the heartbeat.
                return processRuns(owner.pid, owner.processStart) ? .live : .stale("\(owner.description) is no longer running")
            }
            if !processRuns(owner.pid, nil) { return .stale("\(owner.description) is no longer running") }
        }
        let age = now.timeIntervalSince(heartbeat)
        if age > timings.staleAfter {
            return .stale("its heartbeat is \(Int(age / 60)) minutes old (stale after \(Int(timings.staleAfter / 60)))")
        }
        return .live
    }
}

/// `<policy>/backups/<id>/reservation.json`: written first (a conditional create), before any
/// artifact of the backup. It claims the id, says who writes the backup, and is refreshed by
/// the run's heartbeat. Once the manifest is committed the reservation is removed. A
/// reservation without a manifest is a backup in progress — or, once stale, the leftovers of
/// a crashed run that `prune` may collect.
public struct ReservationRecord: Codable, Equatable, Sendable {
    public static let currentFormat = 1

    public var format: Int
    public var policy: String
    public var id: String
    public var owner: ProcessIdentity
    /// What the run is: "backup".
    public var command: String
    public var started: Date
    public var heartbeat: Date
    public var tool: ToolRecord

    public init(policy: String, id: String, owner: ProcessIdentity, command: String, started: Date, heartbeat: Date) {
        self.format = Self.currentFormat
        self.policy = policy
        self.id = id
        self.owner = owner
        self.command = command
        self.started = started
        self.heartbeat = heartbeat
        self.tool = ToolRecord(version: LifeboatVersion.current)
    }
}

/// `locks/<id>.json`: a repository lock, as restic has them. Backups, verifies and restores
/// hold shared locks; destructive work (prune) an exclusive one. Each is refreshed by its
/// run's heartbeat.
public struct LockRecord: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable {
        case shared, exclusive
    }

    public static let currentFormat = 1

    public var format: Int
    public var id: String
    public var kind: Kind
    public var owner: ProcessIdentity
    /// What holds it: "backup hub-postgres", "prune".
    public var command: String
    public var created: Date
    public var heartbeat: Date
    public var tool: ToolRecord

    public init(id: String, kind: Kind, owner: ProcessIdentity, command: String, created: Date, heartbeat: Date) {
        self.format = Self.currentFormat
        self.id = id
        self.kind = kind
        self.owner = owner
        self.command = command
        self.created = created
        self.heartbeat = heartbeat
        self.tool = ToolRecord(version: LifeboatVersion.current)
    }

    /// Whether a lock of kind `wanted` can be held beside this one: shared locks go together;
    /// an exclusive lock goes with nothing.
    public func conflicts(with wanted: Kind) -> Bool {
        kind == .exclusive || wanted == .exclusive
    }

    /// "exclusive lock of 'prune' held by pid 4242 on db-1 since 2026-11-29T02:00:00Z".
    public var description: String {
        "\(kind.rawValue) lock of '\(command)' held by \(owner.description) since \(ISO8601DateFormatter().string(from: created))"
    }
}

extension LifeboatError.Code {
    /// Another run holds a lock this run needs, longer than this run would wait (or this run's
    /// own lock was removed).
    public static let locked = LifeboatError.Code("locked", badInput: false)
}
