import Foundation
import Glibc
import LifeboatEngine
import Synchronization
import Testing
import TestSupport

/// One operation the crash harness kills again and again, on one repository: what to run,
/// how to prepare each attempt, what the next run of the same operation is, and what of the
/// repository a run must never leave behind once prune has run.
protocol CrashSubject: AnyObject {
    /// "files backup (local)": how the counts are printed.
    var label: String { get }
    var policy: String { get }
    var configDirectory: String { get }
    var environment: [String: String] { get }
    /// The OS user the commands run as (the server's, when PostgreSQL writes the repository too).
    var user: String? { get }
    /// `CrashAfterOperations.writesVariable`, or `.operationsVariable` for a read-only operation.
    var counter: String { get }

    /// Before each attempt (the learning run included): new source data, a fresh target, …
    func prepare() throws
    /// Starts the operation; `environment` holds the crash variable, if any.
    func start(environment: [String: String]) throws -> any CrashAttempt
    /// After a kill: what an operator does (per the README; nothing, mostly), then the same
    /// operation again, which must succeed.
    func runAgain() throws
    /// What the repository holds that no finished run may leave: reservations, locks, writers'
    /// temporary files, multipart uploads.
    func leftovers() throws -> [String]
    /// Before the prune that must collect a killed run's leftovers: makes what it left where
    /// writers take no lock (a `wal-push`'s temporary file) look as old as it will be once
    /// prune's grace has passed. A clock cannot be injected into the child processes, and
    /// prune rightly keeps a young incomplete write there (it may be a live push's); aging the
    /// file is what the passage of time does. Default: nothing (no lock-free writer).
    func ageLockFreeLeftovers() throws
    /// The local repository's directory; nil for an S3 repository.
    var localRepository: String? { get }
    func stop()
}

extension CrashSubject {
    func ageLockFreeLeftovers() throws {}
}

/// Sets the temporary files under `directory` whose writer (`.NAME.tmp-PID-…`) no longer runs
/// an hour back: what the passage of time does to a killed writer's file, for a command that
/// rightly keeps young ones (they may be a live writer's).
func ageDeadTemporaryFiles(under directory: String) throws {
    let hourAgo = Int(Date().timeIntervalSince1970) - 3600
    guard let names = try? FileManager.default.subpathsOfDirectory(atPath: directory) else { return }
    for path in names where path.contains(".tmp-") && !temporaryFileWriterRuns(path) {
        guard utimes(directory + "/" + path, [timeval(tv_sec: hourAgo, tv_usec: 0), timeval(tv_sec: hourAgo, tv_usec: 0)]) == 0 else {
            throw TestSupportError("utimes \(directory)/\(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// Whether the process that writes a local temporary file (`.NAME.tmp-PID-…`) runs.
func temporaryFileWriterRuns(_ path: String) -> Bool {
    guard let range = path.range(of: ".tmp-", options: .backwards),
          let pid = Int32(path[range.upperBound...].prefix { $0.isNumber }) else { return false }
    return kill(pid, 0) == 0 || errno == EPERM
}

/// A started operation: it ends by itself (`wait`), or the harness kills it.
protocol CrashAttempt {
    var pid: Int32 { get }
    /// Waits for the operation's end: its exit status (128 + 9 when killed), its output.
    func wait() throws -> LifeboatCLI.Output
}

extension LifeboatCLI.Running: CrashAttempt {}

extension CrashSubject {
    func lifeboat(_ arguments: [String], environment extra: [String: String] = [:]) throws -> LifeboatCLI.Output {
        try LifeboatCLI.run(arguments, config: configDirectory, environment: environment.merging(extra) { $1 }, user: user)
    }

    func startLifeboat(_ arguments: [String], environment extra: [String: String]) throws -> LifeboatCLI.Running {
        try LifeboatCLI.start(arguments, config: configDirectory, environment: environment.merging(extra) { $1 }, user: user)
    }
}

/// How many kill points a sweep tries: a short sweep in `swift test`, the full one (≥ 200
/// over every subject) with `LIFEBOAT_CRASH_SWEEP=full` (`Tests/crash-sweep.sh`).
struct CrashSweepSize: Sendable {
    /// Kills at the N-th counted store operation, N spread over the learning run's count.
    var byOperationCount: Int
    /// Kills after a delay spread over the learning run's duration.
    var byTime: Int

    static var current: CrashSweepSize {
        ProcessInfo.processInfo.environment["LIFEBOAT_CRASH_SWEEP"] == "full"
            ? CrashSweepSize(byOperationCount: 12, byTime: 8)
            : CrashSweepSize(byOperationCount: 2, byTime: 1)
    }
}

/// What one sweep tried.
struct CrashTally: Sendable {
    var byOperationCount = 0
    var byTime = 0
    /// Attempts that ended by themselves before the kill (a delay past the run's end).
    var missed = 0
    var killed: Int { byOperationCount + byTime }

    static let total = Mutex(0)
}

enum CrashSweep {
    /// Learns the operation (duration, counted operations) from an uncrashed run, then kills it
    /// at points spread over both, and after each kill checks the recovery. Returns the count.
    static func sweep(_ subject: some CrashSubject, size: CrashSweepSize = .current) throws -> CrashTally {
        try subject.prepare()
        let started = Date()
        let learning = try subject.start(environment: [subject.counter: "\(Int32.max)", "LOG_LEVEL": "debug"]).wait()
        let duration = Date().timeIntervalSince(started)
        try #require(learning.status == 0, "\(subject.label): the uncrashed run failed: \(learning.all.suffix(3000))")
        let operations = countedOperations(learning.stderr)
        try #require(operations > 0, "\(subject.label): no store operation counted: \(learning.stderr.suffix(2000))")
        try recovered(subject, killed: "nothing (the learning run)", runAgain: false)

        var tally = CrashTally()
        for n in spread(size.byOperationCount, over: 1...operations) {
            try subject.prepare()
            let output = try subject.start(environment: [subject.counter: "\(n)"]).wait()
            if output.status == 128 + SIGKILL {
                tally.byOperationCount += 1
                try recovered(subject, killed: "at store operation \(n) of \(operations)")
            } else {
                // This run counted fewer operations than the learning one (less to copy).
                #expect(output.status == 0, "\(subject.label): not killed at \(n) and failed: \(output.all.suffix(3000))")
                tally.missed += 1
            }
        }
        for step in 0..<size.byTime {
            // Spread over the first 90 % of the run: a kill after its end tries nothing.
            let delay = duration * 0.9 * (Double(step) + 0.5) / Double(max(size.byTime, 1))
            try subject.prepare()
            let attempt = try subject.start(environment: [:])
            // The child is reaped only by `wait()`, so its pid cannot have been reused here.
            usleep(UInt32(delay * 1_000_000))
            kill(attempt.pid, SIGKILL)
            let output = try attempt.wait()
            if output.status == 128 + SIGKILL {
                tally.byTime += 1
                try recovered(subject, killed: String(format: "after %.3f s of %.3f", delay, duration))
            } else {
                #expect(output.status == 0, "\(subject.label): ended before the kill and failed: \(output.all.suffix(3000))")
                tally.missed += 1
            }
        }
        let total = CrashTally.total.withLock { total in
            total += tally.killed
            return total
        }
        print("crash sweep: \(subject.label): \(tally.killed) kill points (\(tally.byOperationCount) by store operation count of \(operations), "
              + "\(tally.byTime) by time over \(String(format: "%.2f", duration)) s; \(tally.missed) ended before the kill), recovery checked after each; "
              + "\(total) kill points so far in this process")
        return tally
    }

    /// After a kill: every listed backup verifies, the next run of the operation succeeds (past
    /// the dead run's lock, which is stale), prune succeeds and leaves nothing of the killed
    /// run but its lock, and `unlock` removes that.
    static func recovered(_ subject: some CrashSubject, killed: String, runAgain: Bool = true) throws {
        let context = "\(subject.label), killed \(killed)"
        for id in try listed(subject) {
            let verify = try subject.lifeboat(["verify", subject.policy, id])
            #expect(verify.status == 0, "\(context): verify \(id): \(verify.all.suffix(3000))")
        }
        if runAgain { try subject.runAgain() }
        try subject.ageLockFreeLeftovers()
        let prune = try subject.lifeboat(["prune", subject.policy])
        #expect(prune.status == 0, "\(context): prune: \(prune.all.suffix(3000))")
        let afterPrune = try subject.leftovers().filter { !$0.hasPrefix("locks/") }
        #expect(afterPrune.isEmpty, "\(context): left after prune: \(afterPrune)")
        // A run killed while writing its lock leaves a temporary file in `locks/`, which
        // `unlock` discards once it is older than the claims' staleness.
        if let root = subject.localRepository { try ageDeadTemporaryFiles(under: root + "/locks") }
        let unlock = try subject.lifeboat(["unlock"])
        #expect(unlock.status == 0, "\(context): unlock: \(unlock.all.suffix(3000))")
        let left = try subject.leftovers()
        #expect(left.isEmpty, "\(context): left after prune and unlock: \(left)")
        for id in try listed(subject) {
            let verify = try subject.lifeboat(["verify", subject.policy, id])
            #expect(verify.status == 0, "\(context): verify \(id) after prune: \(verify.all.suffix(3000))")
        }
    }

    /// The committed backups `list` shows.
    static func listed(_ subject: some CrashSubject) throws -> [String] {
        let list = try subject.lifeboat(["list", subject.policy, "--json"])
        try #require(list.status == 0, "\(subject.label): list: \(list.all.suffix(3000))")
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        return entries.compactMap { $0["id"] as? String }
    }

    /// The highest `crash.operation` a debug log counted: the run's number of operations.
    static func countedOperations(_ stderr: String) -> Int {
        var highest = 0
        for line in stderr.split(separator: "\n") where line.contains("store operation counted") {
            guard let range = line.range(of: "\"crash.operation\":\"") else { continue }
            let digits = line[range.upperBound...].prefix { $0.isNumber }
            highest = max(highest, Int(digits) ?? 0)
        }
        return highest
    }

    /// `count` distinct values spread evenly over `range` (all of them when it is smaller).
    static func spread(_ count: Int, over range: ClosedRange<Int>) -> [Int] {
        guard count > 0 else { return [] }
        if range.count <= count { return Array(range) }
        let values = (0..<count).map { range.lowerBound + Int((Double($0) + 0.5) * Double(range.count) / Double(count)) }
        return Array(Set(values.map { min($0, range.upperBound) })).sorted()
    }
}
