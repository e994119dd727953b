import Glibc
import LifeboatCore

/// Facts about processes on this machine, for telling whether a lock's or reservation's owner
/// still runs (see `ClaimLiveness`).
public enum ProcessProbe {
    /// This process: host name, pid, start time and boot id.
    public static func current(host: String) -> ProcessIdentity {
        ProcessIdentity(host: host, pid: getpid(), processStart: ownStart, bootID: bootID)
    }

    /// This process's start ticks, read once.
    private static let ownStart: UInt64? = startTicks(of: getpid())

    /// Whether a process with `pid` runs on this machine and, when `start` is given, started
    /// at that time (so a recycled pid is not taken for it).
    public static func runs(pid: Int32, start: UInt64?) -> Bool {
        guard pid > 0 else { return false }
        if kill(pid, 0) != 0 && errno == ESRCH { return false }
        guard let start else { return true }
        guard let actual = startTicks(of: pid) else { return false }  // ended meanwhile
        return actual == start
    }

    /// `/proc/sys/kernel/random/boot_id`: changes at every boot.
    public static let bootID: String? = {
        guard let text = try? readTextFile("/proc/sys/kernel/random/boot_id") else { return nil }  // not Linux: no boot id
        let trimmed = text.filter { !$0.isWhitespace }
        return trimmed.isEmpty ? nil : trimmed
    }()

    /// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot
    /// (for `runs(pid:start:)` later).
    public static func startTicks(of pid: Int32) -> UInt64? {
        guard let text = try? readTextFile("/proc/\(pid)/stat"),  // absent: the process is gone
              let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After "pid (comm)", fields start at field 3 (state): field 22 is index 19.
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }
}
