import Foundation
import LifeboatCore
import LifeboatIO
import Synchronization

/// A backup id claimed by this run: `reservation.json` in the backup's directory, created
/// with a conditional write before any artifact, refreshed by the run's heartbeat, removed
/// once the manifest is committed. Everything a failed or cancelled run deletes is under its
/// own reserved directory, so no run can delete another run's data.
public typealias BackupReservation = RepositoryClaim<ReservationRecord>

extension RepositoryClaim where Record == ReservationRecord {
    public var id: String { record.id }
    public var policy: String { record.policy }
    public var started: Date { record.started }
}

extension Repository {
    /// Reserves a backup id for `policy` (`preferred`, drawn by the caller, first): a
    /// conditional create of its reservation. Ids never collide; if one ever did, the create
    /// fails and another id is drawn.
    public func reserveBackup(policy: String, preferred: String? = nil, owner: ProcessIdentity, context: RunContext) throws -> BackupReservation {
        var lastError: LifeboatError?
        var id = preferred ?? BackupID.draw(at: context.clock())
        for _ in 0..<8 {
            let now = context.clock()
            let key = Self.reservationKey(policy: policy, id: id)
            let record = ReservationRecord(policy: policy, id: id, owner: owner, command: "backup", started: now, heartbeat: now)
            do {
                try store.put(key: key, bytes: Array(try JSON.encode(record)), ifAbsent: true)
                context.logger.debug("backup id reserved", metadata: ["backup.id": "\(id)", "reservation.key": "\(key)"])
                return BackupReservation(repository: self, key: key, record: record) { [id] in
                    LifeboatError(.integrity, "the reservation of backup \(id) of policy '\(policy)' was removed by another process",
                                  hint: "Another Lifeboat took this run for a crashed one (its heartbeat was missing for too long). Nothing was committed; run the backup again.")
                }
            } catch let error as LifeboatError where error.code == .alreadyExists {
                lastError = error
                id = BackupID.draw(at: context.clock())
            }
        }
        throw LifeboatError(.storage, "unable to reserve a backup id for policy '\(policy)' in \(store.location)",
                            hint: "Every id drawn was taken, which should not happen; report it.", underlying: lastError)
    }

    /// The reservation of a backup, or nil when it has none. A reservation that cannot be read
    /// (a crash while it was written cannot leave one: it is written atomically) is reported.
    public func reservation(policy: String, id: String) throws -> ReservationRecord? {
        let key = Self.reservationKey(policy: policy, id: id)
        return try readJSON(ReservationRecord.self, key: key, invalid: "reservation \(locate(key)) cannot be read",
                            hint: "The backup it belongs to is never listed as complete; 'lifeboat prune' removes it once it is stale.")
    }
}

/// What a backup directory without a committed manifest is, from its reservation.
public enum UncommittedBackup: Sendable, Equatable {
    /// Its reservation's owner still runs: a backup being written. Never touched.
    case inProgress(ReservationRecord)
    /// Its reservation's owner is gone (the reason says how that is known): what a crashed or
    /// killed run left. `prune` collects it.
    case interrupted(ReservationRecord, reason: String)
    /// No reservation at all: a run's cleanup, or a prune, was cut short after removing it.
    /// No run writes without a reservation, so nobody owns it: `prune` collects it.
    case unreserved
    /// The reservation exists and cannot be read (it is written atomically, so this is damage,
    /// not a crash): whose it is cannot be told, so `prune` leaves it alone.
    case unreadable(reason: String)

    /// Whether `prune` removes it.
    public var isCollectable: Bool {
        switch self {
        case .interrupted, .unreserved: return true
        case .inProgress, .unreadable: return false
        }
    }

    /// Why it is in this state, in words.
    public var detail: String {
        switch self {
        case .inProgress(let reservation): return "written by \(reservation.owner.description)"
        case .interrupted(_, let reason): return "stale reservation: \(reason)"
        case .unreserved: return "no reservation (written by an older Lifeboat, or its cleanup or a prune was cut short)"
        case .unreadable(let reason): return reason
        }
    }
}

extension Repository {
    /// What an uncommitted backup directory is (see `UncommittedBackup`): its reservation is
    /// read only when the listing has one, and its owner's liveness decided by `ClaimLiveness`.
    public func classify(uncommitted listing: BackupListing, policy: String, timings: ClaimTimings = .standard,
                         context: RunContext) throws -> UncommittedBackup {
        let record: ReservationRecord?
        do {
            record = listing.hasReservation ? try reservation(policy: policy, id: listing.id) : nil
        } catch let error as LifeboatError where error.code == .integrity {
            return .unreadable(reason: error.message)
        }
        guard let record else { return .unreserved }
        switch liveness(of: record.owner, heartbeat: record.heartbeat, timings: timings, context: context) {
        case .live: return .inProgress(record)
        case .stale(let reason): return .interrupted(record, reason: reason)
        }
    }
}
