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
public typealias RepositoryLock = RepositoryClaim<LockRecord>

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
        var reportedStale: Set<String> = []  // each stale lock is named once, not at every try
        while true {
            attempt += 1
            if let reason = context.cancellation.reason {
                throw LifeboatError(.cancelled, "\(command) was cancelled (\(reason)) before it had the repository lock; nothing was written")
            }
            let now = context.clock()
            let id = BackupID.draw(at: now)
            let key = Self.locksPrefix + id + ".json"
            let record = LockRecord(id: id, kind: kind, owner: owner, command: command, created: now, heartbeat: now)
            try store.put(key: key, bytes: Array(try JSON.encode(record)), ifAbsent: true)
            let conflicts: [FoundLock]
            do {
                conflicts = try locks(context: context, timings: timings).filter { found in
                    guard found.key != key else { return false }
                    guard let other = found.record else { return false }  // unreadable: reported by `unlock`
                    if found.liveness.isStale {
                        guard reportedStale.insert(found.key).inserted else { return false }
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
                return RepositoryLock(repository: self, key: key, record: record) { [location = locate(key)] in
                    LifeboatError(.locked, "the \(kind.rawValue) lock \(location) of this run was removed by another process",
                                  hint: "Someone ran 'lifeboat unlock --remove-all', or took this run for a crashed one. Run the command again.")
                }
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
    public func locks(context: RunContext, timings: ClaimTimings = .standard) throws -> [FoundLock] {
        var found: [FoundLock] = []
        for object in try store.listAll(prefix: Self.locksPrefix) where object.key.hasSuffix(".json") {
            let bytes: [UInt8]
            do {
                bytes = try store.readAll(key: object.key, limit: 1 << 20)
            } catch let error as LifeboatError where error.code == .notFound {
                continue  // released while we listed
            }
            let record: LockRecord
            do {
                record = try JSON.decode(LockRecord.self, from: Data(bytes))
            } catch {
                // Locks are written whole: this one is damaged, holds nobody, and `unlock` removes it.
                context.logger.warning("a lock object cannot be read", metadata: [
                    "lock.key": "\(locate(object.key))", "error": "\(Self.describe(decodingError: error))",
                ])
                found.append(FoundLock(key: object.key, record: nil, liveness: .stale("the lock object cannot be read")))
                continue
            }
            found.append(FoundLock(key: object.key, record: record,
                                   liveness: liveness(of: record.owner, heartbeat: record.heartbeat, timings: timings, context: context)))
        }
        return found
    }
}

extension Repository {
    /// Runs `body` holding a shared lock on the repository (refreshed while it runs), and
    /// releases the lock afterwards, whatever happens. With no `wait`, takes no lock: for
    /// credentials that may only read (the reader then has no protection from a prune).
    public func withSharedLock<T>(command: String, wait: TimeInterval?, timings: ClaimTimings = .standard,
                                  context: RunContext, _ body: () throws -> T) throws -> T {
        guard let wait else {
            context.logger.warning("reading the repository without a lock (--no-lock): a prune running meanwhile could remove what is being read")
            return try body()
        }
        let lock: RepositoryLock
        do {
            lock = try self.lock(.shared, command: command, owner: ProcessProbe.current(host: context.host), wait: wait,
                                 timings: timings, context: context)
        } catch var error as LifeboatError where error.code == .storage {
            error.hint = (error.hint.map { $0 + " " } ?? "") + "If these credentials may only read the repository, pass --no-lock."
            throw error
        }
        return try holding(lock, timings: timings, context: context, body)
    }

    /// Runs `body` holding an exclusive lock on the repository (refreshed while it runs): no
    /// other Lifeboat command works on the repository meanwhile, except `wal-push` and
    /// `wal-fetch`, which take no lock. The lock is released afterwards, whatever happens.
    public func withExclusiveLock<T>(command: String, wait: TimeInterval, timings: ClaimTimings = .standard,
                                     context: RunContext, _ body: () throws -> T) throws -> T {
        let lock = try self.lock(.exclusive, command: command, owner: ProcessProbe.current(host: context.host), wait: wait,
                                 timings: timings, context: context)
        return try holding(lock, timings: timings, context: context, body)
    }

    /// Runs `body` while a heartbeat refreshes `lock` (a lost lock cancels the run), then
    /// releases it through a connection no cancellation stops.
    private func holding<T>(_ lock: RepositoryLock, timings: ClaimTimings, context: RunContext, _ body: () throws -> T) throws -> T {
        let heartbeat = Heartbeat(beats: [lock.refresh], timings: timings, context: context)
        heartbeat.start()
        defer {
            heartbeat.stop()
            lock.release(through: reopened(context: context.forCleanup), context: context)
        }
        return try body()
    }
}
