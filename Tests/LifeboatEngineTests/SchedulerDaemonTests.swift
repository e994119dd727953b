import Foundation
import LifeboatCore
@testable import LifeboatEngine
import LifeboatIO
import Synchronization
import Testing
import TestSupport

/// The daemon's loop with a job of the test's own: a run that blocks until it is cancelled.
@Suite(.timeLimit(.minutes(10)))
struct SchedulerDaemonLoop {
    final class Started: Sendable {
        let count = Mutex(0)
        let first = Wakeup()
    }

    /// A job that counts its starts and blocks until its run is cancelled.
    func blockingJob(_ started: Started) -> SchedulerDaemon.Job {
        { _, context in
            started.count.withLock { $0 += 1 }
            started.first.wake()
            let cancelled = Wakeup()
            try context.cancellation.whileRunning(onCancel: { cancelled.wake() }) {
                cancelled.wait()
                try context.cancellation.checkCancelled()
            }
            return SchedulerDaemon.JobResult()
        }
    }

    func daemon(_ dir: TemporaryDirectory, settings: SchedulerSettings, job: @escaping SchedulerDaemon.Job) -> SchedulerDaemon {
        let schedule = Schedule(cron: try! CronExpression(parsing: "* * * * *"))
        return SchedulerDaemon(policies: [(name: "files", schedule: schedule)], settings: settings,
                               state: StateDirectory(path: dir.subpath("state")), context: RunContext(logger: quietLogger), job: job)
    }

    @Test func aRunPastItsTimeoutIsCancelledAndRecordedAsTimedOut() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let started = Started()
        let daemon = daemon(dir, settings: SchedulerSettings(runTimeout: ConfigDuration(seconds: 1)), job: blockingJob(started))
        let loop = Thread { try? daemon.run() }
        loop.start()
        started.first.wait()  // the catch-up of the last minute starts at once
        let state = StateDirectory(path: dir.subpath("state"))
        let deadline = Date(timeIntervalSinceNow: 10)
        while try state.history().records.isEmpty, Date() < deadline { usleep(20_000) }
        daemon.stop()
        let records = try state.history().records
        #expect(records.map(\.outcome) == [.timedOut])
        #expect(records.first?.error?.contains("run_timeout") == true, "\(records)")
        #expect(started.count.withLock { $0 } == 1, "one catch-up run, no second run of the policy meanwhile")
    }

    @Test func aStopLetsTheRunGoOnUntilTheStopTimeoutThenCancelsIt() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let started = Started()
        let daemon = daemon(dir, settings: SchedulerSettings(stopTimeout: ConfigDuration(seconds: 1)), job: blockingJob(started))
        let ended = Wakeup()
        let loop = Thread {
            try? daemon.run()
            ended.wake()
        }
        loop.start()
        started.first.wait()
        let stoppedAt = Date()
        daemon.stop()
        #expect(!ended.wait(until: Date(timeIntervalSinceNow: 0.5)), "the run still has its stop_timeout")
        #expect(ended.wait(until: Date(timeIntervalSinceNow: 10)))
        #expect(Date().timeIntervalSince(stoppedAt) >= 1)
        let records = try StateDirectory(path: dir.subpath("state")).history().records
        #expect(records.map(\.outcome) == [.cancelled])
    }

    @Test func theHistoryFileIsPrivateAndASecondDaemonIsRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let state = StateDirectory(path: dir.subpath("state"))
        let lock = try state.lockDaemon(pid: 4242)
        #expect(throws: LifeboatError.self) { _ = try state.lockDaemon(pid: 4343) }
        do {
            _ = try state.lockDaemon(pid: 4343)
        } catch let error as LifeboatError {
            #expect(error.message.contains("pid 4242"))
        }
        withExtendedLifetime(lock) {}
        try state.append(RunRecord(policy: "p", job: "backup", scheduled: Date(), started: Date(), ended: Date(), outcome: .failed,
                                   error: "secret_access_key=abc"))
        var info = stat()
        #expect(stat(state.historyPath, &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(stat(state.path, &info) == 0 && info.st_mode & 0o777 == 0o700)
    }

    /// A crash that tore the history's last line costs that line only: the next run's record
    /// starts on a line of its own.
    @Test func aRecordAppendedAfterATornLineIsRead() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let state = StateDirectory(path: dir.subpath("state"))
        try state.prepare()
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let record = RunRecord(policy: "p", job: "backup", scheduled: now, started: now, ended: now, outcome: .succeeded, backupID: "id-1")
        try state.append(record)
        try dir.write("state/history.jsonl", try record.line() + #"{"policy":"p","job":"back"#)
        try state.append(record)
        let history = try state.history()
        #expect(history.records == [record, record])
        #expect(history.unreadable == 1)
    }

    /// Past its limit the history becomes the previous generation; reading joins both, in
    /// order, and never more than two generations stay on disk. Appends from many threads at
    /// once lose no record across a rotation.
    @Test func theHistoryRotatesIntoOnePreviousGenerationAndLosesNoRecordWhileItDoes() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var state = StateDirectory(path: dir.subpath("state"))
        state.historyLimit = 4_000
        let base = Date(timeIntervalSince1970: 1_800_000_000)
        @Sendable func record(_ n: Int) -> RunRecord {
            RunRecord(policy: "p\(n % 3)", job: "backup", scheduled: base + Double(n), started: base + Double(n), ended: base + Double(n),
                      outcome: .succeeded, backupID: "id-\(n)")
        }
        let lineSize = try record(0).line().utf8.count
        let perThread = 40
        let threads = 4
        let appended = state
        for result in together(threads, { thread in
            for i in 0..<perThread { try appended.append(record(thread * perThread + i)) }
        }) { try result.get() }
        let total = perThread * threads
        #expect(total * lineSize > 3 * state.historyLimit, "enough records to rotate more than once")
        let history = try state.history()
        #expect(history.unreadable == 0)
        var size = stat()
        #expect(stat(state.historyPath, &size) == 0 && Int(size.st_size) <= state.historyLimit + lineSize)
        #expect(stat(state.previousHistoryPath, &size) == 0 && Int(size.st_size) <= state.historyLimit + lineSize)
        // What is kept is the newest records, each once; the oldest generations are gone.
        let ids = history.records.compactMap(\.backupID)
        #expect(Set(ids).count == ids.count)
        #expect(ids.count < total && ids.count * lineSize > state.historyLimit)
        // Each thread's kept records are the newest ones it appended, in its order, without a
        // gap: none was lost while another thread rotated the file. (A thread that finished
        // before the others may have all of its records in a generation dropped since.)
        for thread in 0..<threads {
            let mine = ids.compactMap { Int($0.dropFirst(3)) }.filter { $0 / perThread == thread }
            guard let first = mine.first else { continue }
            let newest = thread * perThread + perThread - 1
            #expect(mine == Array(first...newest), "thread \(thread): \(mine)")
        }
    }
}
