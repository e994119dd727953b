import Foundation
import LifeboatCore
import LifeboatIO
import Synchronization

/// A backup id claimed by this run: `reservation.json` in the backup's directory, created
/// with a conditional write before any artifact, refreshed by the run's heartbeat, removed
/// once the manifest is committed. Everything a failed or cancelled run deletes is under its
/// own reserved directory, so no run can delete another run's data.
public final class BackupReservation: Sendable {
    public let repository: Repository
    public let policy: String
    public let id: String
    private let record: Mutex<ReservationRecord>

    init(repository: Repository, record: ReservationRecord) {
        self.repository = repository
        self.policy = record.policy
        self.id = record.id
        self.record = Mutex(record)
    }

    public var key: String { Repository.reservationKey(policy: policy, id: id) }
    public var started: Date { record.withLock { $0.started } }

    /// Writes the heartbeat. Throws when the reservation is gone (another process judged
    /// this run dead and collected it): the run must stop, its data may be gone.
    public func refresh(now: Date) throws {
        try requirePresent()
        let updated = record.withLock { record -> ReservationRecord in
            record.heartbeat = now
            return record
        }
        try repository.store.put(key: key, bytes: Array(try JSON.encode(updated)), ifAbsent: false)
    }

    /// Throws unless the reservation still exists.
    public func requirePresent() throws {
        guard try repository.store.stat(key: key) != nil else {
            throw LifeboatError(.integrity, "the reservation of backup \(id) of policy '\(policy)' was removed by another process",
                                hint: "Another Lifeboat took this run for a crashed one (its heartbeat was missing for too long). Nothing was committed; run the backup again.")
        }
    }

    /// Removes the reservation once the manifest is committed (the manifest supersedes it).
    public func release() throws {
        try repository.store.delete(keys: [key])
    }
}

extension Repository {
    /// Reserves a backup id for `policy` (`preferred`, drawn by the caller, first): a
    /// conditional create of its reservation. Ids never collide; if one ever did, the create
    /// fails and another id is drawn.
    public func reserveBackup(policy: String, preferred: String? = nil, owner: ProcessIdentity, context: RunContext) throws -> BackupReservation {
        var lastError: (any Error)?
        for attempt in 0..<8 {
            let now = context.clock()
            let id = attempt == 0 ? preferred ?? BackupID.make(startedAt: now, random: Self.randomBits) : BackupID.make(startedAt: now, random: Self.randomBits)
            let record = ReservationRecord(policy: policy, id: id, owner: owner, command: "backup", started: now, heartbeat: now)
            do {
                try store.put(key: Self.reservationKey(policy: policy, id: id), bytes: Array(try JSON.encode(record)), ifAbsent: true)
                context.logger.debug("backup id reserved", metadata: ["backup.id": "\(id)", "reservation.key": "\(Self.reservationKey(policy: policy, id: id))"])
                return BackupReservation(repository: self, record: record)
            } catch let error as LifeboatError where error.code == .alreadyExists {
                lastError = error
            }
        }
        throw LifeboatError(.storage, "unable to reserve a backup id for policy '\(policy)' in \(store.location)",
                            hint: "Every id drawn was taken, which should not happen; report it.", underlying: lastError as? LifeboatError)
    }

    static func randomBits() -> UInt64 { UInt64.random(in: 0...UInt64.max) }

    /// The reservation of a backup, or nil when it has none. A reservation that cannot be read
    /// (a crash while it was written cannot leave one: it is written atomically) is reported.
    public func reservation(policy: String, id: String) throws -> ReservationRecord? {
        let key = Self.reservationKey(policy: policy, id: id)
        let bytes: [UInt8]
        do {
            bytes = try store.readAll(key: key, limit: 1 << 20)
        } catch let error as LifeboatError where error.code == .notFound {
            return nil
        }
        do {
            return try JSON.decode(ReservationRecord.self, from: Data(bytes))
        } catch {
            throw LifeboatError(.integrity, "reservation \(locate(key)) cannot be read: \(Self.describe(decodingError: error))")
        }
    }
}
