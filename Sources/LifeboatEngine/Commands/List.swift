import Foundation
import LifeboatCore
import LifeboatIO
import Logging

/// Lists the backups of one policy or of all of them, from the repository alone.
///
/// One unreadable manifest never hides the others: it is listed as damaged, with the reason.
public struct ListCommand {
    public let source: RepositorySource
    public let context: RunContext

    public init(source: RepositorySource, context: RunContext) {
        self.source = source
        self.context = context
    }

    public enum State: String, Sendable, Encodable {
        /// Its manifest is committed and reads: it can be verified and restored.
        case committed
        /// Its manifest exists but cannot be read.
        case damaged
        /// No manifest yet, and its reservation belongs to a run that still runs.
        case inProgress = "in-progress"
        /// No manifest, and no live run behind it: garbage for `prune`.
        case interrupted
    }

    public struct Entry: Sendable, Encodable, Equatable {
        public var policy: String
        public var id: String
        public var state: State
        /// Kept for scripts written against earlier versions: `state == committed`.
        public var committed: Bool
        public var source: String?
        public var startedAt: Date?
        public var finishedAt: Date?
        public var artifacts: Int
        public var storedBytes: Int64
        public var sourceBytes: Int64?
        public var repository: String
        /// Why it is damaged, or who runs it, or why it counts as interrupted; for a backup
        /// that cannot be restored (a base backup whose WAL is incomplete), why.
        public var detail: String?
        /// What the backup holds, for people (an S3 mirror: objects and bytes per bucket).
        public var contents: [String]?
        /// Point-in-time recovery (base backups): the interval of points this backup starts
        /// (merged with the backups it overlaps), or nil when it cannot be recovered.
        public var recoverable: RecoverableInterval?
    }

    /// A policy's recoverable intervals (point-in-time recovery), for the text listing.
    public struct PolicyRanges: Sendable, Encodable {
        public var policy: String
        public var intervals: [RecoverableInterval]
    }

    public struct Listing: Sendable, Encodable {
        public var backups: [Entry]
        public var ranges: [PolicyRanges] = []
        /// Policies or repositories that could not be listed, each with the reason.
        public var problems: [String]
    }

    public func run(policy name: String?, includeInterrupted: Bool = false) throws -> Listing {
        var listing = Listing(backups: [], problems: [])
        for (repositoryConfig, policies) in try plan(policy: name) {
            do {
                let repository = try Repository.open(repositoryConfig, context: context)
                guard try repository.format() != nil else {
                    if case .address = source {
                        throw LifeboatError(.notFound, "no Lifeboat repository at \(repository.store.location): \(Repository.formatKey) is missing",
                                            hint: "Check the path, or the bucket and prefix (and --endpoint).")
                    }
                    continue  // nothing has been backed up there yet
                }
                for policy in try policies ?? repository.policyNames() {
                    do {
                        var entries = try entries(of: policy, in: repository, includeInterrupted: includeInterrupted)
                        if let ranges = try recoverability(of: policy, entries: &entries, in: repository) { listing.ranges.append(ranges) }
                        listing.backups += entries
                    } catch let error as LifeboatError where error.code == .cancelled {
                        throw error
                    } catch {
                        listing.problems.append("policy '\(policy)' in repository '\(repository.name)': \(error)")
                        context.logger.error("could not list the backups of a policy", metadata: ["policy.name": "\(policy)", "error": "\(error)"])
                    }
                }
            } catch let error as LifeboatError where error.code == .cancelled || name != nil || source.isAddress {
                throw error
            } catch {
                listing.problems.append("repository '\(repositoryConfig.name)': \(error)")
                context.logger.error("could not list a repository", metadata: ["repository.name": "\(repositoryConfig.name)", "error": "\(error)"])
            }
        }
        return listing
    }

    /// Which repositories to look at, and which policies in each (nil: every policy found there).
    func plan(policy name: String?) throws -> [(RepositoryConfig, [String]?)] {
        switch source {
        case .address(let config):
            return [(config, name.map { [$0] })]
        case .configuration(let configuration):
            if let name {
                let policy = try configuration.policyForCommand(named: name, context: context)
                return [(try configuration.repository(for: policy), [name])]
            }
            return try configuration.byRepository(configuration.usablePoliciesForCommand("listed", context: context))
                .map { config, policies in (config, policies.map(\.name)) }
        }
    }

    /// Asks the policy's kind for its recoverable intervals, and notes on each backup the
    /// interval it starts or why it cannot be recovered.
    func recoverability(of policy: String, entries: inout [Entry], in repository: Repository) throws -> PolicyRanges? {
        guard let kindName = entries.last(where: { $0.state == .committed })?.source,
              let kind = try? SourceKinds.named(kindName, for: "policy '\(policy)'"),
              let recoverability = try kind.recoverability(policy: policy, repository: repository, context: context)
        else { return nil }
        for index in entries.indices where entries[index].state == .committed {
            let id = entries[index].id
            if let reason = recoverability.unusable[id] {
                entries[index].detail = "cannot be recovered: \(reason)"
            } else {
                entries[index].recoverable = recoverability.intervals.first { $0.backups.contains(id) }
            }
        }
        return PolicyRanges(policy: policy, intervals: recoverability.intervals)
    }

    func entries(of policy: String, in repository: Repository, includeInterrupted: Bool) throws -> [Entry] {
        var entries: [Entry] = []
        for backup in try repository.listBackups(policy: policy) {
            try context.cancellation.checkCancelled()
            var entry = Entry(policy: policy, id: backup.id, state: .committed, committed: false, source: nil, startedAt: nil,
                              finishedAt: nil, artifacts: backup.objectCount, storedBytes: backup.bytes, sourceBytes: nil,
                              repository: repository.name, detail: nil, contents: nil, recoverable: nil)
            if backup.committed {
                switch try repository.committedManifest(policy: policy, id: backup.id) {
                case .readable(let manifest):
                    entry.committed = true
                    entry.source = manifest.source.kind
                    entry.startedAt = manifest.startedAt
                    entry.finishedAt = manifest.finishedAt
                    entry.artifacts = manifest.artifacts.count
                    entry.storedBytes = manifest.storedBytes
                    entry.sourceBytes = manifest.sourceBytes
                    if let summary = (try? SourceKinds.named(manifest.source.kind, for: "backup \(backup.id)"))?.listSummary(of: manifest) {
                        entry.sourceBytes = summary.sourceBytes ?? manifest.sourceBytes
                        entry.contents = summary.lines
                    }
                case .damaged(let error):
                    entry.state = .damaged
                    entry.detail = error.message
                    context.logger.error("a backup's manifest cannot be read", metadata: ["backup.id": "\(backup.id)", "error": "\(error.message)"])
                }
                entries.append(entry)
                continue
            }
            guard includeInterrupted else { continue }
            let state = try repository.classify(uncommitted: backup, policy: policy, context: context)
            switch state {
            case .inProgress(let reservation):
                entry.state = .inProgress
                entry.startedAt = reservation.started
            case .interrupted(let reservation, _):
                entry.state = .interrupted
                entry.startedAt = reservation.started
            case .unreserved, .unreadable:
                // One unreadable object never hides the rest of the listing.
                entry.state = .interrupted
            }
            entry.detail = state.detail
            entries.append(entry)
        }
        return entries
    }
}
