import Foundation
import LifeboatCore
import LifeboatIO

/// `lifeboat unlock`: removes the locks whose owners are gone (all of them with `removeAll`),
/// and reports every lock it saw. It also discards what a run killed while writing its lock
/// left under `locks/` (a local store's temporary file): those older than the claims'
/// staleness — a lock is written in one short put, so a live writer's is seconds old — or,
/// with `removeAll`, all of them.
public struct UnlockCommand {
    public let context: RunContext
    public var timings: ClaimTimings

    public init(context: RunContext, timings: ClaimTimings = .standard) {
        self.context = context
        self.timings = timings
    }

    public struct Report: Sendable, Encodable {
        public var repository: String
        public var location: String
        public var locks: [Lock]
        /// Incomplete writes of locks discarded (temporary files of runs killed while writing one).
        public var discardedIncompleteWrites = 0

        public struct Lock: Sendable, Encodable {
            public var key: String
            public var kind: String?
            public var command: String?
            public var holder: String?
            public var created: Date?
            public var heartbeat: Date?
            /// "live" or "stale: <why>".
            public var state: String
            public var removed: Bool
        }
    }

    public func run(repository config: RepositoryConfig, removeAll: Bool) throws -> Report {
        let repository = try Repository.open(config, context: context)
        guard try repository.format() != nil else {
            return Report(repository: repository.name, location: repository.store.location, locks: [])
        }
        var report = Report(repository: repository.name, location: repository.store.location, locks: [])
        for found in try repository.locks(context: context, timings: timings) {
            let remove = removeAll || found.liveness.isStale
            if remove {
                try repository.store.delete(keys: [found.key])
                context.logger.info("lock removed", metadata: [
                    "lock.key": "\(repository.locate(found.key))", "lock.state": "\(found.liveness)",
                    "lock.holder": "\(found.record?.description ?? "unreadable lock object")",
                ])
            }
            report.locks.append(Report.Lock(key: found.key, kind: found.record?.kind.rawValue, command: found.record?.command,
                                            holder: found.record?.owner.description, created: found.record?.created,
                                            heartbeat: found.record?.heartbeat, state: found.liveness.description, removed: remove))
        }
        let cutoff = removeAll ? nil : context.clock().addingTimeInterval(-timings.staleAfter)
        for write in try repository.store.discardIncompleteWrites(prefix: Repository.locksPrefix, olderThan: cutoff, dryRun: false) {
            context.logger.info("incomplete lock write discarded", metadata: [
                "object": "\(write.location)", "modified": "\(write.modified)",
            ])
            report.discardedIncompleteWrites += 1
        }
        return report
    }
}
