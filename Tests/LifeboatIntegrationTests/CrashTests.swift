import Foundation
import LifeboatEngine
import Testing
import TestSupport

/// A run killed outright (`kill -9`, the OOM killer, a node that goes away) at each point of
/// the commit protocol, while another backup of the same policy runs beside it. Whatever the
/// point, the other run commits, every listed backup verifies, the next run succeeds, and what
/// the killed run left is named for what it is and can be cleaned up.
///
/// Kill points tried: 8 — each of the 4 crash points (`reserved`, `writing-artifact`,
/// `before-commit`, `committed`) on a local repository and on S3.
/// One case at a time (each runs several `lifeboat` processes), off the cooperative pool.
@Suite(.timeLimit(.minutes(10)), .serialized)
struct Crashes {
    struct Case: Sendable, CustomTestStringConvertible {
        var point: CrashPoint
        var kind: RepositoryKind
        var testDescription: String { "\(point.rawValue) (\(kind.rawValue))" }
    }

    static let cases = RepositoryKind.allCases.flatMap { kind in CrashPoint.backup.map { Case(point: $0, kind: kind) } }

    @Test(arguments: cases)
    func aRunKilledBesideAnotherLeavesEveryListedBackupUsableAndItsLeftoversNamed(_ crash: Case) async throws {
        try await offThePool { try killBesideAnother(crash) }
    }

    func killBesideAnother(_ crash: Case) throws {
        // On S3 above one part: artifacts go up as multipart uploads, as large ones do.
        let fixture = try ConcurrencyFixture(crash.kind, bigFileBytes: crash.kind == .s3 ? 9 << 20 : 2 << 20)
        defer { fixture.remove() }
        let host = ProcessInfo.processInfo.hostName

        let crashing = try fixture.start(["backup", ConcurrencyFixture.policy], environment: [CrashPoint.variable: crash.point.rawValue])
        let other = try fixture.start(["backup", ConcurrencyFixture.policy])
        let crashingPID = crashing.pid
        let crashed = try crashing.wait()
        let finished = try other.wait()
        #expect(crashed.status == 128 + SIGKILL, "the run did not die by SIGKILL: \(crashed.stderr)")
        #expect(finished.status == 0, "\(finished.stderr)")
        let otherID = try #require(ConcurrencyFixture.committedID(finished), "\(finished.stdout)")

        // Every backup `list` shows verifies: the other run's, and the killed one's if it got
        // as far as its commit.
        let listed = try fixture.list(all: false).compactMap { $0["id"] as? String }
        #expect(listed.contains(otherID))
        #expect(listed.count == (crash.point == .committed ? 2 : 1), "\(listed)")
        for id in listed {
            let verify = try fixture.run(["verify", ConcurrencyFixture.policy, id])
            #expect(verify.status == 0, "\(id): \(verify.stderr)")
        }

        // The next run succeeds, past the killed run's lock.
        let next = try fixture.run(["backup", ConcurrencyFixture.policy])
        #expect(next.status == 0, "\(next.stderr)")
        #expect(next.stderr.contains("ignoring a stale lock"), "\(next.stderr)")
        let nextID = try #require(ConcurrencyFixture.committedID(next), "\(next.stdout)")

        let all = try fixture.list(all: true)
        let committed = all.filter { $0["state"] as? String == "committed" }.compactMap { $0["id"] as? String }
        let uncommitted = all.filter { $0["state"] as? String != "committed" }
        #expect(Set([otherID, nextID]).isSubset(of: committed), "\(all)")
        let crashedID: String
        if crash.point == .committed {
            // Killed after its commit: a backup like any other, only its reservation is left.
            #expect(committed.count == 3, "\(all)")
            #expect(uncommitted.isEmpty, "\(all)")
            crashedID = try #require(committed.first { $0 != otherID && $0 != nextID })
        } else {
            #expect(committed.count == 2, "\(all)")
            #expect(uncommitted.count == 1, "\(all)")
            let leftover = try #require(uncommitted.first)
            #expect(leftover["state"] as? String == "interrupted", "\(leftover)")
            #expect(leftover["detail"] as? String == "stale reservation: pid \(crashingPID) on \(host) is no longer running", "\(leftover)")
            crashedID = try #require(leftover["id"] as? String)
            let verify = try fixture.run(["verify", ConcurrencyFixture.policy, crashedID])
            #expect(verify.status == 2, "an interrupted backup is never verified as if it were one: \(verify.stderr)")
        }

        // The killed run's lock is stale: `unlock` says so and removes it; then there is none.
        let locks = try fixture.unlock()
        #expect(locks.count == 1, "\(locks)")
        let lock = try #require(locks.first)
        #expect(lock["holder"] as? String == "pid \(crashingPID) on \(host)", "\(lock)")
        #expect(lock["command"] as? String == "backup \(ConcurrencyFixture.policy)", "\(lock)")
        #expect(lock["state"] as? String == "stale: pid \(crashingPID) on \(host) is no longer running", "\(lock)")
        #expect(lock["removed"] as? Bool == true, "\(lock)")
        #expect(try fixture.unlock().isEmpty)

        // What is left of the killed run is its reservation (which `prune` collects) and, on a
        // filesystem, the temporary file of the artifact it was writing; nothing of the others.
        let directory = Repository.backupDirectory(policy: ConcurrencyFixture.policy, id: crashedID)
        let leftovers = try fixture.leftovers()
        let reservation = directory + "reservation.json"
        if crash.point == .writingArtifact && crash.kind == .local {
            #expect(leftovers.count == 2, "\(leftovers)")
            #expect(leftovers.contains(reservation), "\(leftovers)")
            #expect(leftovers.contains { $0.hasPrefix(directory + "data/.0000.tar.zst.tmp-\(crashingPID)-") }, "\(leftovers)")
        } else {
            #expect(leftovers == [reservation])
        }
    }
}
