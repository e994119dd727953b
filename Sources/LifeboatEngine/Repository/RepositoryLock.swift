import Foundation
import LifeboatCore
import LifeboatIO
import Synchronization

/// A lock on a repository, held by this run: `locks/<id>.json`, as restic has them.
///
/// Taking one: write our lock object, then read every other lock. A conflicting lock (any
/// exclusive lock, or any lock when we want an exclusive one) whose owner still runs means
/// we withdraw ours and try again after a while, until `wait` runs out. Two runs that write
/// at the same moment both see each other and both withdraw; the random wait before the next
/// try lets one of them win. Locks whose owners are gone (see `ClaimLiveness`) are ignored,
/// with a warning naming `lifeboat unlock`.
public final class RepositoryLock: Sendable {
    public let repository: Repository
    public let key: String
    private let record: Mutex<LockRecord>

    init(repository: Repository, key: String, record: LockRecord) {
        self.repository = repository
        self.key = key
        self.record = Mutex(record)
    }

    public var kind: LockRecord.Kind { record.withLock { $0.kind } }

    /// Writes the heartbeat. Throws when the lock is gone (`lifeboat unlock --remove-all`, or
    /// another process judged this one dead): the run must stop.
    public func refresh(now: Date) throws {
        guard try repository.store.stat(key: key) != nil else {
            throw LifeboatError(.locked, "the \(kind.rawValue) lock \(repository.locate(key)) of this run was removed by another process",
                                hint: "Someone ran 'lifeboat unlock --remove-all', or took this run for a crashed one. Run the command again.")
        }
        let updated = record.withLock { record -> LockRecord in
            record.heartbeat = now
            return record
        }
        try repository.store.put(key: key, bytes: Array(try JSON.encode(updated)), ifAbsent: false)
    }

    /// Removes the lock.
    public func release() throws {
        try repository.store.delete(keys: [key])
    }
}

/// A lock object found in a repository, read or not.
public struct FoundLock: Sendable {
    public var key: String
    /// Nil when the object could not be read as a lock.
    public var record: LockRecord?
    public var liveness: Liveness
}

extension Repository {
    /// Takes a lock of `kind`, waiting up to `wait` seconds for conflicting locks to go.
    ///
    /// - Throws: `LifeboatError(.locked)` naming who holds the lock when the wait runs out;
    ///   `.cancelled` when the run is cancelled while waiting.
    public func lock(_ kind: LockRecord.Kind, command: String, owner: ProcessIdentity, wait: TimeInterval,
                     timings: ClaimTimings = .standard, context: RunContext) throws -> RepositoryLock {
        let deadline = context.clock().addingTimeInterval(wait)
        var attempt = 0
        while true {
            attempt += 1
            try context.cancellation.checkCancelled()
            let now = context.clock()
            let id = BackupID.make(startedAt: now) { UInt64.random(in: 0...UInt64.max) }
            let key = Self.locksPrefix + id + ".json"
            let record = LockRecord(id: id, kind: kind, owner: owner, command: command, created: now, heartbeat: now)
            try store.put(key: key, bytes: Array(try JSON.encode(record)), ifAbsent: true)
            let conflicts: [FoundLock]
            do {
                conflicts = try locks(context: context, owner: owner, timings: timings).filter { found in
                    guard found.key != key else { return false }
                    guard let other = found.record else { return false }  // unreadable: reported by `unlock`
                    if found.liveness.isStale {
                        context.logger.warning("ignoring a stale lock", metadata: [
                            "lock.key": "\(locate(found.key))", "lock.holder": "\(other.description)",
                            "lock.stale": "\(found.liveness)", "hint": "Run 'lifeboat unlock' to remove stale locks.",
                        ])
                        return false
                    }
                    return other.conflicts(with: kind)
                }
            } catch {
                try? store.delete(keys: [key])  // withdrawing after a failure that is already on its way
                throw error
            }
            if conflicts.isEmpty {
                context.logger.debug("repository locked", metadata: ["lock.key": "\(locate(key))", "lock.kind": "\(kind.rawValue)"])
                return RepositoryLock(repository: self, key: key, record: record)
            }
            try store.delete(keys: [key])
            let holders = conflicts.compactMap(\.record).map(\.description)
            if context.clock() >= deadline {
                throw LifeboatError(.locked, "repository '\(name)' (\(store.location)) is locked: \(holders.joined(separator: "; "))",
                                    hint: wait > 0 ? "Waited \(ConfigDuration(seconds: Int64(wait))) for it. If that process is gone, run 'lifeboat unlock'; otherwise wait for it to finish, or pass a longer --lock-wait."
                                        : "If that process is gone, run 'lifeboat unlock'; otherwise wait for it to finish, or pass --lock-wait.")
            }
            if attempt == 1 {
                context.logger.info("waiting for the repository lock", metadata: [
                    "lock.holders": "\(holders.joined(separator: "; "))", "lock.wait_seconds": "\(Int(wait))",
                ])
            }
            let remaining = deadline.timeIntervalSince(context.clock())
            context.sleep(min(remaining, Double.random(in: 0.2...min(5, 0.2 * Double(attempt) + 0.5))))
        }
    }

    /// Every lock in the repository, with whether its owner still runs.
    public func locks(context: RunContext, owner: ProcessIdentity, timings: ClaimTimings = .standard) throws -> [FoundLock] {
        let now = context.clock()
        var found: [FoundLock] = []
        for object in try store.listAll(prefix: Self.locksPrefix) where object.key.hasSuffix(".json") {
            let bytes: [UInt8]
            do {
                bytes = try store.readAll(key: object.key, limit: 1 << 20)
            } catch let error as LifeboatError where error.code == .notFound {
                continue  // released while we listed
            }
            guard let record = try? JSON.decode(LockRecord.self, from: Data(bytes)) else {  // reported as unreadable, below
                found.append(FoundLock(key: object.key, record: nil, liveness: .stale("the lock object cannot be read")))
                continue
            }
            let liveness = ClaimLiveness.evaluate(owner: record.owner, heartbeat: record.heartbeat, now: now, timings: timings,
                                                  local: owner, processRuns: ProcessProbe.runs)
            found.append(FoundLock(key: object.key, record: record, liveness: liveness))
        }
        return found
    }
}
