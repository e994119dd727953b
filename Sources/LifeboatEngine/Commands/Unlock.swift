import Foundation
import LifeboatCore
import LifeboatIO

/// `lifeboat unlock`: removes the locks whose owners are gone (all of them with `removeAll`),
/// and reports every lock it saw.
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
        return report
    }
}
