import Foundation
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import Testing
import TestSupport

/// Reservations: a backup id is claimed before anything is written under it, and a run
/// commits only while its claim stands.
@Suite(.timeLimit(.minutes(10)))
struct BackupReservations {
    /// What `prune` (or anyone) removing the reservation of a run it took for dead does to
    /// that run, if it was alive after all: it must not commit a backup whose data may be
    /// half collected.
    @Test func aBackupWhoseReservationWasRemovedBeforeItsCommitIsNotCommitted() throws {
        let fixture = try ClaimFixture()
        defer { fixture.remove() }

        let error = #expect(throws: LifeboatError.self) {
            try fixture.backup(RunContext(logger: quietLogger)).run(policy: try fixture.policy, source: oneArtifact { _ in
                let reservations = try fixture.store.listAll(prefix: Repository.backupPrefix(policy: ClaimFixture.policy))
                    .map(\.key).filter { $0.hasSuffix("/reservation.json") }
                #expect(reservations.count == 1)
                try fixture.store.delete(keys: reservations)
            })
        }
        #expect(error?.code == .integrity, "\(String(describing: error))")
        #expect(error?.message.contains("the reservation of backup") == true, "\(String(describing: error))")
        #expect(error?.message.contains("of policy 'etc' was removed by another process") == true, "\(String(describing: error))")
        #expect(error?.hint?.contains("Nothing was committed") == true)
        #expect(try fixture.repository.listBackups(policy: ClaimFixture.policy).isEmpty)
        // Its artifact and its lock are gone as well.
        #expect(try fixture.keys() == [Repository.formatKey])
    }

    /// The conditional create behind every id: an id that is taken (however it came to be
    /// drawn twice) is never handed out again; another is drawn, in the same second.
    @Test func anIDThatIsTakenIsNeverReservedAgain() throws {
        let fixture = try ClaimFixture()
        defer { fixture.remove() }
        let clock = VirtualClock()
        let context = clock.context()
        let first = try fixture.repository.reserveBackup(policy: ClaimFixture.policy, owner: fixture.owner, context: context)
        let before = try fixture.repository.reservation(policy: ClaimFixture.policy, id: first.id)

        let second = try fixture.repository.reserveBackup(policy: ClaimFixture.policy, preferred: first.id, owner: fixture.owner, context: context)
        #expect(second.id != first.id)
        #expect(second.id.prefix { $0 != "-" } == first.id.prefix { $0 != "-" })
        #expect(try fixture.repository.reservation(policy: ClaimFixture.policy, id: first.id) == before, "the first reservation is untouched")
        #expect(try fixture.repository.listBackups(policy: ClaimFixture.policy).map(\.id) == [first.id, second.id].sorted())
    }
}
