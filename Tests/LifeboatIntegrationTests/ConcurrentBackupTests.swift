import Foundation
import LifeboatCore
import LifeboatEngine
import Logging
import Testing
import TestSupport

/// Many backups of one policy at the same moment — a Kubernetes CronJob that fires twice, a
/// retry on top of a run that is still going. Each must commit a backup of its own, and
/// nothing of theirs may be left in the repository but the backups.
@Suite(.timeLimit(.minutes(10)))
struct ConcurrentBackups {
    static let runs = 8

    /// Eight real `lifeboat backup` processes, all started before any is waited for. On S3 the
    /// big file is larger than one 8 MiB part, so every artifact is a multipart upload.
    @Test(arguments: RepositoryKind.allCases)
    func eightBackupsOfOnePolicyStartedTogetherAllCommitBackupsOfTheirOwn(kind: RepositoryKind) async throws {
        try await offThePool { try eightBackupsStartedTogether(kind) }
    }

    func eightBackupsStartedTogether(_ kind: RepositoryKind) throws {
        let fixture = try ConcurrencyFixture(kind, bigFileBytes: kind == .s3 ? 9 << 20 : 4 << 20)
        defer { fixture.remove() }

        let started = try (0..<Self.runs).map { _ in try fixture.start(["backup", ConcurrencyFixture.policy]) }
        let results = try started.map { try $0.wait() }
        for result in results {
            #expect(result.status == 0, "\(result.stderr)")
        }
        let ids = results.compactMap(ConcurrencyFixture.committedID)
        #expect(ids.count == Self.runs, "\(results.map(\.stdout))")
        #expect(Set(ids).count == Self.runs, "\(ids)")
        // The defect this guards against: ids were the start time alone, so runs started in
        // the same second collided. Eight runs started together span far fewer than eight
        // seconds, so at least two of these ids share their time.
        #expect(Set(ids.map(timePrefix)).count < ids.count, "\(ids)")

        let listed = try fixture.list(all: true)
        #expect(listed.count == Self.runs, "\(listed)")
        #expect(listed.allSatisfy { $0["state"] as? String == "committed" }, "\(listed)")
        #expect(Set(listed.compactMap { $0["id"] as? String }) == Set(ids))
        if kind == .s3 {
            // Larger than one part: each artifact went up as a multipart upload.
            #expect(listed.allSatisfy { (($0["storedBytes"] as? NSNumber)?.int64Value ?? 0) > 8 << 20 }, "\(listed)")
        }

        // Every backup verifies — checked by eight verifies that run together as well.
        let verifies = try ids.map { try fixture.start(["verify", ConcurrencyFixture.policy, $0]) }.map { try $0.wait() }
        for (id, verify) in zip(ids, verifies) {
            #expect(verify.status == 0, "\(id): \(verify.stderr)")
        }
        #expect(try fixture.leftovers() == [])
    }

    /// The same, in one process and on a clock that stands still: every run draws its id in
    /// the same second, and the ids still differ.
    @Test func backupsStartedInTheSameSecondGetDistinctIDs() async throws {
        try await offThePool { try backupsInTheSameSecond() }
    }

    func backupsInTheSameSecond() throws {
        let fixture = try ConcurrencyFixture(.local, bigFileBytes: 64 << 10)
        defer { fixture.remove() }
        let configuration = try ConfigurationLoader.load(directory: fixture.directory.path, environment: [:])
        let now = Date(timeIntervalSince1970: 1_795_000_000)
        let context = RunContext(logger: quietLogger, clock: { now })

        let results = together(Self.runs) { _ in
            try BackupCommand(configuration: configuration, context: context).run(policy: ConcurrencyFixture.policy).manifest.id
        }
        let ids = try results.map { try $0.get() }
        #expect(Set(ids).count == Self.runs, "\(ids)")
        #expect(ids.allSatisfy { timePrefix($0) == "20261118T110640Z" }, "\(ids)")
        let listed = try fixture.list(all: true)
        #expect(Set(listed.compactMap { $0["id"] as? String }) == Set(ids))
        #expect(listed.allSatisfy { $0["state"] as? String == "committed" }, "\(listed)")
        #expect(try fixture.leftovers() == [])
    }
}
