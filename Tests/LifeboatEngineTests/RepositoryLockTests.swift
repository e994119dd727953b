import Foundation
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import Synchronization
import Testing
import TestSupport

/// Repository locks as runs meet them: who waits for whom, for how long, what the message
/// says, and what happens to locks whose owners are gone. The engine runs in this process, on
/// a local repository; this process holds the other locks, as another command would.
@Suite(.timeLimit(.minutes(10)))
struct RepositoryLocks {
    @Test func aLiveExclusiveLockMakesABackupFailAfterItsLockWaitNamingTheHolder() throws {
        let fixture = try ClaimFixture()
        defer { fixture.remove() }
        let exclusive = try fixture.lock(.exclusive, command: "prune")
        let clock = VirtualClock()

        let error = #expect(throws: LifeboatError.self) {
            try fixture.backup(clock.context(), lockWait: 600).run(policy: ClaimFixture.policy)
        }
        #expect(error?.code == .locked, "\(String(describing: error))")
        #expect(error?.exitStatus == 1)
        #expect(error?.message.contains("is locked: exclusive lock of 'prune' held by pid \(getpid()) on \(fixture.host) since") == true,
                "\(String(describing: error))")
        #expect(error?.hint?.contains("Waited 10m for it") == true, "\(String(describing: error?.hint))")
        // It waited the whole lock wait (on a clock that only moves while it waits) ...
        #expect(clock.elapsed >= 600)
        // ... withdrew its own lock, and reserved nothing.
        #expect(try fixture.lockKeys() == [exclusive.key])
        #expect(try fixture.repository.listBackups(policy: ClaimFixture.policy).isEmpty)
    }

    @Test func throughTheCommandLineALockedRepositoryFailsWithStatus1AfterTheLockWait() throws {
        let fixture = try ClaimFixture()
        defer { fixture.remove() }
        _ = try fixture.lock(.exclusive, command: "prune")

        let result = try LifeboatCLI.run(["backup", ClaimFixture.policy, "--lock-wait", "1s"], config: fixture.directory.path)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("error: backup") == false, "the run never started: \(result.stderr)")
        #expect(result.stderr.contains("error: repository 'local' (\(fixture.directory.subpath("repository"))) is locked: exclusive lock of 'prune' held by pid \(getpid()) on \(fixture.host) since"),
                "\(result.stderr)")
        #expect(result.stderr.contains("HINT: Waited 1s for it."), "\(result.stderr)")
        #expect(result.stderr.contains("waiting for the repository lock"), "\(result.stderr)")
    }

    @Test func releasingTheExclusiveLockLetsAWaitingBackupProceed() throws {
        let fixture = try ClaimFixture()
        defer { fixture.remove() }
        let exclusive = try fixture.lock(.exclusive, command: "prune")
        // The backup's wait for the lock: the test learns it is waiting, and lets it go on
        // once the lock is released, not after a time.
        let waiting = Wakeup(), released = Wakeup()
        let waits = Mutex(0)
        let context = RunContext(logger: quietLogger, sleep: { _ in
            waits.withLock { $0 += 1 }
            waiting.wake()
            released.wait(until: Date(timeIntervalSinceNow: 30))
        })

        let backup = Background { try fixture.backup(context, lockWait: 60).run(policy: ClaimFixture.policy).manifest }
        #expect(waiting.wait(until: Date(timeIntervalSinceNow: 30)), "the backup never waited for the lock")
        #expect(try fixture.repository.listBackups(policy: ClaimFixture.policy).isEmpty, "it went on while the lock was held")
        try exclusive.release()
        released.wake()

        let manifest = try backup.wait().get()
        #expect(waits.withLock { $0 } == 1)
        let listed = try fixture.repository.listBackups(policy: ClaimFixture.policy)
        #expect(listed.map(\.id) == [manifest.id])
        #expect(listed.first?.committed == true)
        #expect(try fixture.lockKeys().isEmpty)
    }

    @Test func sharedLocksCoexistAndAnExclusiveOneConflictsWithEach() throws {
        let fixture = try ClaimFixture()
        defer { fixture.remove() }
        let verify = try fixture.lock(.shared, command: "verify etc")
        let restore = try fixture.lock(.shared, command: "restore etc")
        #expect(verify.key != restore.key)
        let found = try fixture.repository.locks(context: RunContext(logger: quietLogger))
        #expect(Set(found.map(\.key)) == [verify.key, restore.key])
        #expect(found.allSatisfy { $0.liveness == .live })

        // A backup (shared) goes on beside them at once.
        #expect(throws: Never.self) { try fixture.backup(RunContext(logger: quietLogger)).run(policy: ClaimFixture.policy) }
        // An exclusive lock cannot be had while either is held; the message names both.
        let error = #expect(throws: LifeboatError.self) { try fixture.lock(.exclusive, command: "prune") }
        #expect(error?.code == .locked)
        #expect(error?.message.contains("shared lock of 'verify etc'") == true, "\(String(describing: error))")
        #expect(error?.message.contains("shared lock of 'restore etc'") == true, "\(String(describing: error))")
        try verify.release()
        #expect(throws: LifeboatError.self) { try fixture.lock(.exclusive, command: "prune") }
        try restore.release()
        #expect(throws: Never.self) { try fixture.lock(.exclusive, command: "prune") }
    }

    @Test func aStaleLockIsIgnoredByABackupAndRemovedByUnlock() throws {
        let fixture = try ClaimFixture()
        defer { fixture.remove() }
        // A pid that no longer exists here: a process this test started and reaped. (Its
        // start time is given as 1 tick after boot, so that even a reuse of the pid by
        // now would not make it count as running.)
        let gone = try ChildProcess.spawn("/usr/bin/true", [])
        #expect(try gone.wait() == .exited(0))
        let now = Date()
        let record = LockRecord(id: "20261118T110640Z-stale1", kind: .exclusive,
                                owner: ProcessIdentity(host: fixture.host, pid: gone.pid, processStart: 1, bootID: fixture.owner.bootID),
                                command: "prune", created: now, heartbeat: now)
        let key = Repository.locksPrefix + record.id + ".json"
        try fixture.store.put(key: key, bytes: Array(try JSON.encode(record)), ifAbsent: true)
        let reason = "pid \(gone.pid) on \(fixture.host) is no longer running"

        // Its heartbeat is fresh, but its process is gone: the backup does not wait for it.
        let log = RecordingLog()
        #expect(throws: Never.self) { try fixture.backup(RunContext(logger: log.logger)).run(policy: ClaimFixture.policy) }
        let warnings = log.lines("ignoring a stale lock")
        #expect(warnings.count == 1)
        #expect(warnings.first?.level == .warning)
        #expect(warnings.first?.metadata["lock.stale"] == "stale: \(reason)", "\(warnings)")
        #expect(warnings.first?.metadata["hint"] == "Run 'lifeboat unlock' to remove stale locks.")
        #expect(try fixture.lockKeys() == [key], "a backup never removes another's lock")

        let report = try UnlockCommand(context: RunContext(logger: quietLogger)).run(repository: fixture.repositoryConfig, removeAll: false)
        #expect(report.locks.count == 1)
        #expect(report.locks.first?.key == key)
        #expect(report.locks.first?.kind == "exclusive")
        #expect(report.locks.first?.command == "prune")
        #expect(report.locks.first?.holder == "pid \(gone.pid) on \(fixture.host)")
        #expect(report.locks.first?.state == "stale: \(reason)")
        #expect(report.locks.first?.removed == true)
        #expect(try fixture.lockKeys().isEmpty)
    }

    @Test func aLiveLockIsKeptByUnlockAndRemovedOnlyWithRemoveAll() throws {
        let fixture = try ClaimFixture()
        defer { fixture.remove() }
        let live = try fixture.lock(.shared, command: "verify etc")
        let unlock = UnlockCommand(context: RunContext(logger: quietLogger))

        let kept = try unlock.run(repository: fixture.repositoryConfig, removeAll: false)
        #expect(kept.locks.map(\.state) == ["live"])
        #expect(kept.locks.map(\.removed) == [false])
        #expect(try fixture.lockKeys() == [live.key])
        let removed = try unlock.run(repository: fixture.repositoryConfig, removeAll: true)
        #expect(removed.locks.map(\.removed) == [true])
        #expect(try fixture.lockKeys().isEmpty)
    }

    /// A run killed while writing its lock leaves the local store's temporary file in `locks/`,
    /// invisible to lock listings. Unlock discards it once older than the claims' staleness
    /// (a live writer's is seconds old), and every one with `removeAll`.
    @Test func unlockDiscardsTheTemporaryFileOfALockWriterKilledLongEnoughAgo() throws {
        let fixture = try ClaimFixture()
        defer { fixture.remove() }
        let locks = fixture.directory.subpath("repository/locks")
        try FileManager.default.createDirectory(atPath: locks, withIntermediateDirectories: true)
        let old = locks + "/.0a1b.json.tmp-99999999-aa"
        let young = locks + "/.0c1d.json.tmp-99999998-bb"
        try Data("{\"kind\": \"sha".utf8).write(to: URL(fileURLWithPath: old))
        try Data("{\"kind\": \"sha".utf8).write(to: URL(fileURLWithPath: young))
        let now = Date()
        let written = Int(now.timeIntervalSince1970) - Int(ClaimTimings.standard.staleAfter) - 60
        #expect(utimes(old, [timeval(tv_sec: written, tv_usec: 0), timeval(tv_sec: written, tv_usec: 0)]) == 0)
        let unlock = UnlockCommand(context: RunContext(logger: quietLogger, clock: { now }))

        let report = try unlock.run(repository: fixture.repositoryConfig, removeAll: false)
        #expect(report.discardedIncompleteWrites == 1)
        #expect(!FileManager.default.fileExists(atPath: old))
        #expect(FileManager.default.fileExists(atPath: young))
        let all = try unlock.run(repository: fixture.repositoryConfig, removeAll: true)
        #expect(all.discardedIncompleteWrites == 1)
        #expect(!FileManager.default.fileExists(atPath: young))
    }

    @Test func anUnreadableLockObjectIsReportedAndRemovedByUnlock() throws {
        let fixture = try ClaimFixture()
        defer { fixture.remove() }
        let key = Repository.locksPrefix + "broken.json"
        try fixture.store.put(key: key, bytes: Array("{\"kind\": \"exclu".utf8), ifAbsent: true)

        // It names no holder to wait for: a backup goes on.
        #expect(throws: Never.self) { try fixture.backup(RunContext(logger: quietLogger)).run(policy: ClaimFixture.policy) }
        let report = try UnlockCommand(context: RunContext(logger: quietLogger)).run(repository: fixture.repositoryConfig, removeAll: false)
        #expect(report.locks.count == 1)
        #expect(report.locks.first?.key == key)
        #expect(report.locks.first?.kind == nil)
        #expect(report.locks.first?.holder == nil)
        #expect(report.locks.first?.state == "stale: the lock object cannot be read")
        #expect(report.locks.first?.removed == true)
        #expect(try fixture.lockKeys().isEmpty)
    }

    /// `lifeboat unlock --remove-all` while a backup runs: the run's heartbeat finds its lock
    /// gone and cancels the run, which removes its data and commits nothing.
    @Test func aLockRemovedUnderARunningBackupCancelsItAndNothingIsCommitted() throws {
        let fixture = try ClaimFixture()
        defer { fixture.remove() }
        let context = RunContext(logger: quietLogger)
        let timings = ClaimTimings(refreshInterval: 0.05, staleAfter: 1800)

        let error = #expect(throws: LifeboatError.self) {
            try fixture.backup(context, timings: timings).run(policy: try fixture.policy, source: oneArtifact { context in
                let report = try UnlockCommand(context: RunContext(logger: quietLogger)).run(repository: fixture.repositoryConfig, removeAll: true)
                #expect(report.locks.map(\.command) == ["backup etc"])
                // The run goes on until its heartbeat notices (a source stops at a cancellation).
                let cancelled = Wakeup()
                context.cancellation.onCancel { cancelled.wake() }
                #expect(cancelled.wait(until: Date(timeIntervalSinceNow: 30)), "the run was not cancelled")
                try context.cancellation.checkCancelled()
            })
        }
        #expect(error?.code == .cancelled, "\(String(describing: error))")
        #expect(error?.message.contains("was cancelled (lost its claim on the repository: the shared lock \(fixture.directory.subpath("repository/locks/"))") == true,
                "\(String(describing: error))")
        #expect(error?.message.contains("of this run was removed by another process); nothing was committed, and its partial data was removed") == true,
                "\(String(describing: error))")
        #expect(try fixture.repository.listBackups(policy: ClaimFixture.policy).isEmpty)
        #expect(try fixture.keys() == [Repository.formatKey])
    }
}
