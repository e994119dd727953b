import Foundation
import LifeboatCore
import LifeboatIO
import Synchronization

/// A record a run keeps in the repository while it works, refreshed by its heartbeat: a lock,
/// a backup's reservation.
public protocol ClaimRecord: Codable, Sendable {
    var owner: ProcessIdentity { get }
    var heartbeat: Date { get set }
}

extension LockRecord: ClaimRecord {}
extension ReservationRecord: ClaimRecord {}

/// A claim this run holds: its key, its record, and what it means when another process
/// removed it. `refresh` (the heartbeat) and `requirePresent` throw that error: the run can no
/// longer be sure nobody collects what it writes, and must stop.
public final class RepositoryClaim<Record: ClaimRecord>: Sendable {
    public let repository: Repository
    public let key: String
    private let state: Mutex<Record>
    private let removed: @Sendable () -> LifeboatError

    init(repository: Repository, key: String, record: Record, removed: @escaping @Sendable () -> LifeboatError) {
        self.repository = repository
        self.key = key
        self.state = Mutex(record)
        self.removed = removed
    }

    public var record: Record { state.withLock { $0 } }

    /// Writes the heartbeat.
    public func refresh(now: Date) throws {
        try requirePresent()
        let updated = state.withLock { record -> Record in
            record.heartbeat = now
            return record
        }
        try repository.store.put(key: key, bytes: Array(try JSON.encode(updated)), ifAbsent: false)
    }

    /// Throws unless the claim is still in the repository.
    public func requirePresent() throws {
        guard try repository.store.stat(key: key) != nil else { throw removed() }
    }

    /// Removes the claim.
    public func release() throws {
        try repository.store.delete(keys: [key])
    }

    /// Removes the claim through `repository` (by default its own), logging instead of
    /// throwing: this runs on the way out, whatever happened before, and a claim left behind
    /// goes stale on its own.
    func release(through repository: Repository? = nil, context: RunContext) {
        do {
            try (repository ?? self.repository).store.delete(keys: [key])
        } catch {
            context.logger.warning("could not remove \(self.repository.locate(key)); it goes stale, and 'lifeboat unlock' or prune removes it",
                                   metadata: ["claim.key": "\(key)", "error": "\(error)"])
        }
    }
}

/// Whether the process behind a claim still runs, looked at from this process.
func liveness(of owner: ProcessIdentity, heartbeat: Date, timings: ClaimTimings, context: RunContext) -> Liveness {
    ClaimLiveness.evaluate(owner: owner, heartbeat: heartbeat, now: context.clock(), timings: timings,
                           local: ProcessProbe.current(host: context.host), processRuns: ProcessProbe.runs)
}

extension BackupID {
    /// A new identifier (for a backup or a lock) with fresh random bits.
    static func draw(at date: Date) -> String {
        make(startedAt: date) { UInt64.random(in: 0...UInt64.max) }
    }
}
