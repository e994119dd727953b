import Foundation
import LifeboatCore
@testable import LifeboatEngine
import LifeboatIO
import Testing
import TestSupport

/// `prune` in this process on a local repository, with backups taken at times the test
/// chooses and "now" given: what goes, what stays and why, the guards, leftovers of crashed
/// runs, locks, and a store that fails half-way.
@Suite(.timeLimit(.minutes(10)))
struct Pruning {
    static let day0 = Date(timeIntervalSince1970: 1_795_000_000)  // 2026-11-18T08:26:40Z

    static func day(_ n: Double) -> Date { day0.addingTimeInterval(n * 86_400) }

    /// A backup of the fixture's policy taken at `date`.
    @discardableResult
    func backup(_ fixture: ClaimFixture, at date: Date) throws -> Manifest {
        try fixture.backup(RunContext(logger: quietLogger, clock: { date })).run(policy: try fixture.policy, source: oneArtifact { _ in }).manifest
    }

    func prune(_ fixture: ClaimFixture, now: Date = Pruning.day(30), _ options: PruneCommand.Options = .init()) throws -> PruneCommand.Report {
        try PruneCommand(configuration: fixture.configuration, context: RunContext(logger: quietLogger, clock: { now }), lockWait: 0)
            .run(policy: ClaimFixture.policy, options: options)
    }

    func ids(_ fixture: ClaimFixture) throws -> [String] { try fixture.repository.listBackups(policy: ClaimFixture.policy).map(\.id) }

    func entry(_ id: String, _ report: PruneCommand.Report) throws -> PruneCommand.BackupDecision {
        try #require(report.policies.first?.backups.first { $0.id == id })
    }

    /// Leftovers as a crashed run leaves them: a reservation (of a process that is gone, or of
    /// this one) and part of an artifact.
    func leftover(_ fixture: ClaimFixture, at date: Date, owner: ProcessIdentity?) throws -> String {
        let id = BackupID.make(startedAt: date) { 7 }
        if let owner {
            let record = ReservationRecord(policy: ClaimFixture.policy, id: id, owner: owner, command: "backup", started: date, heartbeat: date)
            try fixture.store.put(key: Repository.reservationKey(policy: ClaimFixture.policy, id: id), bytes: Array(try JSON.encode(record)), ifAbsent: true)
        }
        try fixture.store.put(key: Repository.artifactKey(policy: ClaimFixture.policy, id: id, path: "data/0000.tar.zst"), bytes: [1, 2, 3], ifAbsent: true)
        return id
    }

    /// A process on this machine that is not running.
    func gone(_ fixture: ClaimFixture) -> ProcessIdentity {
        var owner = fixture.owner
        owner.pid = Int32.max
        return owner
    }

    @Test func expiredBackupsAreDeletedAndTheNewestKept() throws {
        let fixture = try ClaimFixture(policyExtra: "retention: { keep_last: 2 }\n")
        defer { fixture.remove() }
        let manifests = try (1...5).map { try backup(fixture, at: Self.day(Double($0))) }

        let report = try prune(fixture)
        #expect(report.ok && !report.dryRun && report.deletedBackups == 3 && report.deletedLeftovers == 0)
        #expect(try ids(fixture) == manifests.suffix(2).map(\.id))
        for manifest in manifests.prefix(3) {
            #expect(try fixture.store.listAll(prefix: Repository.backupDirectory(policy: ClaimFixture.policy, id: manifest.id)).isEmpty)
            let decision = try entry(manifest.id, report)
            #expect(decision.action == .delete && decision.deleted && decision.reasons.map(\.rule) == ["expired"])
        }
        let newest = try entry(manifests[4].id, report)
        #expect(newest.action == .keep && !newest.deleted && newest.reasons.map(\.rule) == ["keep_last", "newest"])
        #expect(report.policies.first?.rules == ["keep_last: 2"])
        #expect(report.policies.first?.dependencies == nil, "a files policy keeps nothing outside its backups")
        // What stays still verifies, and the lock is gone.
        for manifest in manifests.suffix(2) {
            #expect(try VerifyCommand(source: .configuration(fixture.configuration), context: RunContext(logger: quietLogger))
                .run(policy: ClaimFixture.policy, selector: manifest.id).ok)
        }
        #expect(try fixture.lockKeys().isEmpty)
        // Nothing more to do the second time.
        #expect(try prune(fixture).deletedBackups == 0)
    }

    @Test func aDryRunDeletesNothingAndNamesTheRuleForEveryBackup() throws {
        let fixture = try ClaimFixture(policyExtra: "retention: { keep_daily: 2, keep_within: 1d }\nschedule: { cron: \"0 2 * * *\", timezone: Europe/Berlin }\n")
        defer { fixture.remove() }
        // Berlin times: 19 Nov 09:26, 20 Nov 09:26 and 11:50, 21 Nov 09:26 and 14:14.
        let manifests = try [1, 2, 2.1, 3, 3.2].map { try backup(fixture, at: Self.day($0)) }
        let before = try fixture.keys()

        let report = try prune(fixture, .init(dryRun: true))
        #expect(try fixture.keys() == before, "a dry run deletes nothing")
        #expect(report.dryRun && report.deletedBackups == 2)
        let policy = try #require(report.policies.first)
        #expect(policy.timeZone == "Europe/Berlin" && policy.rules == ["keep_daily: 2", "keep_within: 1d"])
        #expect(policy.backups.map(\.action) == [.delete, .delete, .keep, .keep, .keep])
        #expect(policy.backups.allSatisfy { !$0.deleted })
        #expect(try entry(manifests[4].id, report).reasons.map(\.rule) == ["keep_within", "keep_daily", "newest"])
        #expect(try entry(manifests[3].id, report).reasons.map(\.rule) == ["keep_within"])
        #expect(try entry(manifests[2].id, report).reasons.map(\.description) == ["keep_daily (newest of day 2026-11-20 (2 of 2))"])
        #expect(try entry(manifests[1].id, report).reasons.map(\.description) == ["expired (no retention rule keeps it)"])
        // The JSON names are the documented ones.
        let json = String(decoding: try JSON.encode(report), as: UTF8.self)
        for field in ["\"dryRun\"", "\"deletedBackups\"", "\"deletedLeftovers\"", "\"policies\"", "\"backups\"", "\"action\"", "\"reasons\"",
                      "\"rule\"", "\"detail\"", "\"timeZone\"", "\"rules\"", "\"state\"", "\"deleted\""] {
            #expect(json.contains(field), "\(field)")
        }
    }

    @Test func maxDeleteRefusesBeforeDeletingAnything() throws {
        let fixture = try ClaimFixture(policyExtra: "retention: { keep_last: 1 }\n")
        defer { fixture.remove() }
        for n in 1...4 { try backup(fixture, at: Self.day(Double(n))) }
        let stale = try leftover(fixture, at: Self.day(2.5), owner: gone(fixture))
        let before = try fixture.keys()

        let refused = try prune(fixture, .init(maxDelete: 2))
        #expect(!refused.ok)
        #expect(refused.refused == "prune would delete 3 backups (etc: 3), more than --max-delete 2; nothing was deleted")
        #expect(try fixture.keys() == before, "nothing, not even the leftovers")
        #expect(try fixture.lockKeys().isEmpty)

        let zero = try prune(fixture, .init(maxDelete: 0))
        #expect(zero.refused != nil)
        let done = try prune(fixture, .init(maxDelete: 3))
        #expect(done.ok && done.refused == nil && done.deletedBackups == 3 && done.deletedLeftovers == 1)
        #expect(try ids(fixture).count == 1)
        #expect(try !ids(fixture).contains(stale))
    }

    @Test func aPolicyWithoutRulesKeepsEveryBackupButNotCrashedRunsLeftovers() throws {
        let fixture = try ClaimFixture()
        defer { fixture.remove() }
        let manifests = try (1...3).map { try backup(fixture, at: Self.day(Double($0))) }
        let stale = try leftover(fixture, at: Self.day(1.5), owner: gone(fixture))

        let report = try prune(fixture)
        let policy = try #require(report.policies.first)
        #expect(policy.rules.isEmpty)
        #expect(policy.notes.contains { $0.hasPrefix("the policy has no retention rules: every backup is kept") }, "\(policy.notes)")
        #expect(try ids(fixture) == manifests.map(\.id))
        #expect(policy.backups.filter { $0.state == .committed }.allSatisfy { $0.action == .keep && $0.reasons.first?.rule == "no_rules" })
        let collected = try entry(stale, report)
        #expect(collected.state == .interrupted && collected.deleted)
        #expect(collected.reasons.first?.detail.contains("stale reservation: pid \(Int32.max) on \(fixture.host) is no longer running") == true,
                "\(collected.reasons)")
    }

    /// Reservations decide: a run that is gone left garbage; a run that still runs (here: this
    /// process) is never touched, and while it runs nothing outside the backups is collected.
    @Test func staleReservationsAreCollectedAndLiveOnesNever() throws {
        let fixture = try ClaimFixture(policyExtra: "retention: { keep_last: 1 }\n")
        defer { fixture.remove() }
        try backup(fixture, at: Self.day(1))
        let newest = try backup(fixture, at: Self.day(2))
        let stale = try leftover(fixture, at: Self.day(1.5), owner: gone(fixture))
        let unreserved = try leftover(fixture, at: Self.day(1.6), owner: nil)
        let live = try leftover(fixture, at: Self.day(3), owner: fixture.owner)
        var elsewhere = fixture.owner
        elsewhere.host = "another-host"
        let recentElsewhere = try leftover(fixture, at: Self.day(3.1), owner: elsewhere)

        // On another host only the heartbeat tells: recent is live, older than 30 minutes stale.
        let report = try prune(fixture, now: Self.day(3.1).addingTimeInterval(60))
        #expect(report.deletedBackups == 1 && report.deletedLeftovers == 2)
        #expect(try ids(fixture) == [newest.id, live, recentElsewhere])
        #expect(try entry(live, report).reasons.first?.rule == "in_progress")
        #expect(try entry(live, report).state == .inProgress)
        #expect(try entry(unreserved, report).reasons.first?.detail.contains("no reservation") == true)
        #expect(report.policies.first?.notes.contains { $0.contains("is being written") } == true)

        let later = try prune(fixture, now: Self.day(3.1).addingTimeInterval(3600))
        #expect(try entry(recentElsewhere, later).deleted)
        #expect(try ids(fixture) == [newest.id, live])
        _ = stale
    }

    @Test func aDamagedManifestIsKeptAndNamed() throws {
        let fixture = try ClaimFixture(policyExtra: "retention: { keep_last: 1 }\n")
        defer { fixture.remove() }
        let old = try backup(fixture, at: Self.day(1))
        try backup(fixture, at: Self.day(2))
        let key = Repository.manifestKey(policy: ClaimFixture.policy, id: old.id)
        try fixture.store.delete(keys: [key])
        try fixture.store.put(key: key, bytes: Array("{ not json".utf8), ifAbsent: true)

        let report = try prune(fixture)
        let damaged = try entry(old.id, report)
        #expect(damaged.state == .damaged && damaged.action == .keep && damaged.reasons.first?.rule == "damaged")
        #expect(report.deletedBackups == 0)
        #expect(try ids(fixture).count == 2)
    }

    /// A backup holds the repository's shared lock while it writes: prune waits for it (on a
    /// clock that moves only while it waits), gives up naming it, and deletes nothing; the
    /// backup commits, and the next prune runs.
    @Test func aPruneWaitsForARunningBackupAndDeletesNothing() throws {
        let fixture = try ClaimFixture(policyExtra: "retention: { keep_last: 1 }\n")
        defer { fixture.remove() }
        try backup(fixture, at: Self.day(1))
        try backup(fixture, at: Self.day(2))
        let clock = VirtualClock(Self.day(3))
        let before = try fixture.keys()
        let result = try fixture.backup(RunContext(logger: quietLogger, clock: { Self.day(3) })).run(policy: try fixture.policy, source: oneArtifact { _ in
            let error = #expect(throws: LifeboatError.self) {
                try PruneCommand(configuration: fixture.configuration, context: clock.context(), lockWait: 600).run(policy: nil)
            }
            #expect(error?.code == .locked, "\(String(describing: error))")
            #expect(error?.message.contains("shared lock of 'backup etc'") == true, "\(String(describing: error))")
            #expect(clock.elapsed >= 600)
            let running = "/backups/" + BackupID.format(Self.day(3))
            let remaining = try fixture.keys().filter { !$0.hasPrefix(Repository.locksPrefix) && !$0.contains(running) }
            #expect(remaining == before, "nothing deleted")
        })
        let report = try prune(fixture)
        #expect(report.deletedBackups == 2)
        #expect(try ids(fixture) == [result.manifest.id])
    }

    /// The first error stops the prune: the backup it was deleting keeps its artifacts
    /// (without a manifest: never listed as committed), the backups after it are untouched, and
    /// the next prune finishes the work.
    @Test func anErrorStopsThePruneAndTheNextOneFinishes() throws {
        let fixture = try ClaimFixture(policyExtra: "retention: { keep_last: 1 }\n")
        defer { fixture.remove() }
        let manifests = try (1...4).map { try backup(fixture, at: Self.day(Double($0))) }
        let failing = Repository.artifactKey(policy: ClaimFixture.policy, id: manifests[1].id, path: manifests[1].artifacts[0].path)
        let repository = Repository(name: "local", store: FailingDeletes(base: fixture.store, failing: failing))
        let command = PruneCommand(configuration: fixture.configuration, context: RunContext(logger: quietLogger, clock: { Self.day(30) }))

        let error = #expect(throws: LifeboatError.self) {
            try command.prune([(try fixture.policy, repository)], options: .init())
        }
        #expect(error?.code == .storage)
        #expect(error?.message.hasPrefix("prune stopped at backup \(manifests[1].id) of policy 'etc' (1 backups or leftovers deleted before it, nothing after): unable to delete") == true,
                "\(String(describing: error))")
        #expect(error?.hint?.contains("run 'lifeboat prune' again") == true)
        let listings = try fixture.repository.listBackups(policy: ClaimFixture.policy)
        #expect(listings.map(\.id) == manifests[1...].map(\.id))
        #expect(listings.map(\.committed) == [false, true, true], "the failed one lost its manifest first; the next is untouched")

        let finished = try prune(fixture)
        #expect(finished.deletedBackups == 1 && finished.deletedLeftovers == 1)
        #expect(try ids(fixture) == [manifests[3].id])
    }

    /// A PostgreSQL physical policy with `recovery_window: 1d`: the base backups before the
    /// one the window starts from go, and with them the WAL before that backup's start, on
    /// every timeline; timeline history files stay.
    @Test func theRecoveryWindowKeepsTheBaseBackupBeforeItAndTheWALFromIt() throws {
        let store = MemoryStore(clock: { Self.day0 })
        let repository = Repository(name: "mem", store: store)
        try repository.prepareForWriting(now: Self.day0)
        let size: UInt64 = 1 << 20
        let systemIdentifier: UInt64 = 7_301_234_567_890_123_456
        let context = RunContext(logger: quietLogger, clock: { Self.day(10) })
        let wal = WALArchive(repository: repository, policy: "pg", context: context)
        let record = try wal.record(forCluster: systemIdentifier, segmentSize: size)
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        func push(_ file: WALFileName, bytes: [UInt8]) throws {
            let path = try scratch.write("pg_wal/\(file)", bytes: bytes)
            _ = try wal.push(path: path, as: file, systemIdentifier: systemIdentifier, record: record)
        }
        func segment(_ timeline: UInt32, _ number: UInt64) -> WALSegment { WALSegment(timeline: timeline, number: number, segmentSize: size) }
        for n in UInt64(1)...9 { try push(.segment(segment(1, n)), bytes: fakeSegment(segment(1, n), systemIdentifier: systemIdentifier)) }
        for n in UInt64(6)...10 { try push(.segment(segment(2, n)), bytes: fakeSegment(segment(2, n), systemIdentifier: systemIdentifier)) }
        try push(.partial(segment(1, 6)), bytes: fakeSegment(segment(1, 6), systemIdentifier: systemIdentifier))
        try push(.backupHistory(segment(1, 2), offset: 0x28), bytes: Array("START WAL LOCATION: 0/200028\n".utf8))
        try push(.history(timeline: 2), bytes: Array("1\t0/600000\tno recovery target specified\n".utf8))

        // Base backups starting in segments 2, 4 and 7 (timeline 2), consistent a minute later.
        func base(_ n: Double, timeline: UInt32, start: UInt64) throws -> Manifest {
            let physical = PhysicalBackupRecord(timeline: timeline, startLSN: LSN(start * size + 0x28), stopLSN: LSN(start * size + 0x2000),
                                                startTime: Self.day(n), stopTime: Self.day(n).addingTimeInterval(60), segmentSize: size,
                                                checkpoint: "fast", tablespaces: [])
            let source = try SourceRecord(kind: "postgres", details: PostgresRecord(
                mode: "physical", host: "db", port: "5432", user: "backup", serverVersion: "15.8", serverVersionNumber: 150008,
                systemIdentifier: String(systemIdentifier), databases: [], dumpVersion: nil, physical: physical))
            let manifest = Manifest(policy: "pg", id: BackupID.make(startedAt: Self.day(n)) { 1 }, source: source, startedAt: Self.day(n),
                                    finishedAt: Self.day(n).addingTimeInterval(90), tool: ToolRecord(version: "test"), artifacts: [])
            try store.put(key: Repository.artifactKey(policy: "pg", id: manifest.id, path: "data/0000.tar.zst"), bytes: [0], ifAbsent: true)
            try repository.commit(manifest)
            return manifest
        }
        let first = try base(1, timeline: 1, start: 2)
        let second = try base(5, timeline: 1, start: 4)
        let third = try base(8, timeline: 2, start: 7)
        let policy = Policy(name: "pg", file: "policies/pg.yaml", source: PostgresConfiguration(conninfo: "host=db", mode: .physical),
                            retention: Retention(recoveryWindow: ConfigDuration(parsing: "4d")!))
        let command = PruneCommand(configuration: Configuration(directory: "/etc/lifeboat"), context: context)
        let walKeys = { try store.listAll(prefix: "pg/wal/").map(\.key) }
        let walBefore = try walKeys()

        // Now is day 10: the window starts on day 6; `second` (day 5) is where it starts from.
        let dry = try command.prune([(policy, repository)], options: .init(dryRun: true))
        let planned = try #require(dry.policies.first)
        #expect(planned.backups.map(\.action) == [.delete, .keep, .keep])
        #expect(planned.backups[1].reasons.first?.rule == "recovery_window")
        let dependencies = try #require(planned.dependencies)
        // Before segment 4: timeline 1's 1, 2, 3 and the backup history file of segment 2.
        #expect(dependencies.what == "WAL files" && dependencies.deletedObjects == 4)
        #expect(dependencies.detail.hasPrefix("WAL before segment 000000010000000000000004, where base backup \(second.id) (the oldest kept) starts"))
        #expect(try walKeys() == walBefore)

        let report = try command.prune([(policy, repository)], options: .init())
        #expect(report.deletedBackups == 1 && report.policies.first?.dependencies?.deletedObjects == 4)
        #expect(try repository.listBackups(policy: "pg").map(\.id) == [second.id, third.id])
        let remaining = try walKeys()
        for n in UInt64(1)...3 { #expect(!remaining.contains(wal.key(for: .segment(segment(1, n))))) }
        #expect(!remaining.contains(wal.key(for: .backupHistory(segment(1, 2), offset: 0x28))))
        for n in UInt64(4)...9 { #expect(remaining.contains(wal.key(for: .segment(segment(1, n))))) }
        for n in UInt64(6)...10 { #expect(remaining.contains(wal.key(for: .segment(segment(2, n))))) }
        #expect(remaining.contains(wal.key(for: .partial(segment(1, 6)))))
        #expect(remaining.contains(wal.key(for: .history(timeline: 2))))
        #expect(remaining.contains(WALArchiveLayout.recordKey(policy: "pg")))
        // Every kept backup can still be recovered.
        let recoverability = try #require(try PostgresKind().recoverability(policy: "pg", repository: repository, context: context))
        #expect(recoverability.unusable.isEmpty, "\(recoverability.unusable)")
        _ = first
    }
}

/// A store whose `delete` fails for one key (and deletes nothing of that call), as a store
/// that refuses a request would.
final class FailingDeletes: ObjectStore {
    let base: any ObjectStore
    let failing: String

    init(base: any ObjectStore, failing: String) {
        self.base = base
        self.failing = failing
    }

    var location: String { base.location }
    var features: StoreFeatures { base.features }
    func listPage(_ request: ListRequest) throws -> ListPage { try base.listPage(request) }
    func stat(key: String) throws -> ObjectInfo? { try base.stat(key: key) }
    func openWriter(key: String, ifAbsent: Bool) throws -> any ObjectWriter { try base.openWriter(key: key, ifAbsent: ifAbsent) }
    func openReader(key: String) throws -> any ObjectReader { try base.openReader(key: key) }
    func put(key: String, bytes: [UInt8], ifAbsent: Bool) throws { try base.put(key: key, bytes: bytes, ifAbsent: ifAbsent) }
    func copy(from source: String, to destination: String) throws { try base.copy(from: source, to: destination) }
    func delete(keys: [String]) throws {
        if keys.contains(failing) {
            throw LifeboatError(.storage, "unable to delete '\(base.location)/\(failing)': injected failure")
        }
        try base.delete(keys: keys)
    }
}
