import Foundation
import LifeboatCore
@testable import LifeboatEngine
import LifeboatIO
import Synchronization
import Testing
import TestSupport

/// The daemon's loop with a job of the test's own: a run that blocks until it is cancelled.
@Suite(.timeLimit(.minutes(2)))
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
}
