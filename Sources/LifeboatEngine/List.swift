import Foundation
import LifeboatCore
import Logging

/// Lists the backups of one policy or of all of them, from the repository alone.
public struct ListCommand {
    public let configuration: Configuration

    public init(configuration: Configuration) { self.configuration = configuration }

    public struct Entry: Sendable, Encodable, Equatable {
        public var policy: String
        public var id: String
        /// False for an interrupted backup (no committed manifest), shown only with `all`.
        public var committed: Bool
        public var source: String?
        public var startedAt: Date?
        public var finishedAt: Date?
        public var artifacts: Int
        public var storedBytes: Int64
        public var sourceBytes: Int64?
        public var repository: String
    }

    public func run(policy name: String?, includeInterrupted: Bool = false) throws -> [Entry] {
        let policies = try name.map { [try configuration.policy(named: $0)] } ?? configuration.policies
        var entries: [Entry] = []
        var checked: Set<String> = []
        for policy in policies {
            let repository = try Repository.open(configuration.repository(for: policy))
            if !checked.contains(repository.name) {
                if try repository.store.stat(key: Repository.formatKey) == nil {
                    // No repository yet: nothing has been backed up there.
                    checked.insert(repository.name)
                    continue
                }
                try repository.checkFormat()
                checked.insert(repository.name)
            }
            for listing in try repository.listBackups(policy: policy.name) {
                if listing.committed {
                    let manifest = try repository.manifest(policy: policy.name, id: listing.id)
                    entries.append(Entry(policy: policy.name, id: listing.id, committed: true, source: manifest.source.kind,
                                         startedAt: manifest.startedAt, finishedAt: manifest.finishedAt,
                                         artifacts: manifest.artifacts.count, storedBytes: manifest.storedBytes,
                                         sourceBytes: manifest.sourceBytes, repository: repository.name))
                } else if includeInterrupted {
                    entries.append(Entry(policy: policy.name, id: listing.id, committed: false, source: nil, startedAt: nil,
                                         finishedAt: nil, artifacts: listing.objectCount, storedBytes: listing.bytes,
                                         sourceBytes: nil, repository: repository.name))
                }
            }
        }
        return entries
    }
}
