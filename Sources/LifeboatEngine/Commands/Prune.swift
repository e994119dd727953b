import Foundation
import LifeboatCore
import LifeboatIO
import Logging

/// `lifeboat prune`: deletes the backups a policy's retention rules no longer keep, the
/// leftovers of crashed runs, and what only the deleted backups needed (a source kind's
/// `pruneDependencies`: archived WAL).
///
/// Everything is planned before anything is deleted, under the exclusive lock of every
/// repository involved (a dry run takes shared locks and deletes nothing): so `--max-delete`
/// refuses before the first deletion, and no backup, verify or restore runs meanwhile (every
/// writer of a backup directory — backup, scheduled run, S3 mirror — holds a shared lock;
/// restore and verify only read). Each
/// backup goes manifest first (the commit point), then its artifacts, then its reservation
/// (`Repository.deleteBackup`), so a prune killed at any point leaves only uncommitted
/// leftovers, which `list` and `restore` ignore and the next prune deletes. The first error
/// stops the whole prune: nothing more is deleted.
///
/// What killed writers left (`ObjectStore.discardIncompleteWrites`: temporary files, multipart
/// uploads) goes too: in the policy's backup directories all of it, whatever its age (nothing
/// live can write there under the exclusive lock), directories holding only a reservation's
/// temporary file included; under the prefixes its kind writes without a lock (the WAL
/// archive), only what is older than `incompleteWriteGrace`.
public struct PruneCommand {
    public let configuration: Configuration
    public let context: RunContext
    public var lockWait: TimeInterval
    public var timings: ClaimTimings

    public init(configuration: Configuration, context: RunContext, lockWait: TimeInterval = 600, timings: ClaimTimings = .standard) {
        self.configuration = configuration
        self.context = context
        self.lockWait = lockWait
        self.timings = timings
    }

    /// How old an incomplete write under a lock-free prefix (`SourceKind.lockFreeWritePrefixes`:
    /// the WAL archive) must be before prune discards it: the staleness of a claim's heartbeat
    /// (30 minutes by default), after which Lifeboat takes any run for dead. A push writes one
    /// segment and takes seconds; a live one is never that old, and a killed one's leftovers
    /// are billed (S3) or take space only that long.
    public var incompleteWriteGrace: TimeInterval { timings.staleAfter }

    public struct Options: Sendable {
        /// Decide and report, delete nothing.
        public var dryRun: Bool
        /// Refuse, before deleting anything, when more committed backups than this would go
        /// (counted over every policy of the run; crashed runs' leftovers are not backups and do
        /// not count). Nil: no limit.
        public var maxDelete: Int?

        public init(dryRun: Bool = false, maxDelete: Int? = nil) {
            self.dryRun = dryRun
            self.maxDelete = maxDelete
        }
    }

    /// What a prune decided and did. Field names are stable (`--json`).
    public struct Report: Sendable, Encodable {
        /// False when `--max-delete` refused the prune.
        public var ok: Bool
        public var dryRun: Bool
        public var policies: [PolicyReport]
        /// Committed backups deleted (in a dry run: that would be deleted).
        public var deletedBackups: Int
        /// Leftovers of crashed runs deleted (or that would be).
        public var deletedLeftovers: Int
        /// Incomplete writes of killed runs (temporary files, multipart uploads) discarded, or
        /// that would be.
        public var discardedIncompleteWrites: Int = 0
        /// Set when `--max-delete` refused the prune: nothing was deleted, and this says why.
        public var refused: String?
    }

    public struct PolicyReport: Sendable, Encodable {
        public var policy: String
        public var repository: String
        /// The policy's rules as configuration writes them (`keep_daily: 7`); empty when it has
        /// none, and then every backup is kept.
        public var rules: [String]
        /// The time zone the rules' periods are taken in (`schedule.timezone`, default UTC).
        public var timeZone: String
        public var now: Date
        /// Every backup directory of the policy, oldest first.
        public var backups: [BackupDecision]
        /// What the source kind deleted outside the backups (archived WAL); nil when it keeps
        /// nothing there or was not asked (`notes` says why).
        public var dependencies: DependencyPruneReport?
        /// Incomplete writes of killed runs discarded (in a dry run: that would be), in its
        /// backup directories and its WAL archive.
        public var discardedIncompleteWrites: Int = 0
        public var notes: [String]
    }

    public struct BackupDecision: Sendable, Encodable {
        public enum Action: String, Sendable, Encodable { case keep, delete }

        public var id: String
        /// `committed`, `damaged` (its manifest does not read), `in-progress` or `interrupted`,
        /// as `lifeboat list --all` says.
        public var state: ListCommand.State
        public var startedAt: Date?
        public var action: Action
        /// Every rule that keeps it (`keep_daily`, `recovery_window`, `newest`, `no_rules`,
        /// `damaged`, `in_progress`, `unreadable_reservation`), or why it goes (`expired`,
        /// `interrupted`).
        public var reasons: [RetentionReason]
        /// True once deleted (never in a dry run).
        public var deleted: Bool
        /// Objects and bytes in its directory.
        public var objects: Int
        public var bytes: Int64
    }

    /// A policy and its plan, before anything is deleted.
    struct Plan {
        var policy: Policy
        var repository: Repository
        var report: PolicyReport
        /// Committed manifests that stay, oldest first.
        var kept: [Manifest]
        /// Whether the kind may delete what it keeps outside the backups (the report's notes
        /// say why not).
        var dependenciesAllowed: Bool
        /// Committed backups whose reservation is still there and stale: their run was killed
        /// between its commit and removing the reservation.
        var staleReservations: [String] = []
    }

    /// Prunes one policy, or every policy of the configuration when `name` is nil.
    public func run(policy name: String?, options: Options = Options()) throws -> Report {
        let policies = try selectPolicies(name)
        // One lock per repository, taken in name order, all held until the end.
        var byRepository = try configuration.byRepository(policies)
        byRepository.sort { $0.0.name < $1.0.name }
        var repositories: [(Repository, [Policy])] = []
        var empty: [PolicyReport] = []
        for (config, policies) in byRepository {
            let repository = try Repository.open(config, context: context)
            guard try repository.format() != nil else {
                // No repository there yet: nothing to lock, nothing to prune.
                empty += policies.map { policy in
                    PolicyReport(policy: policy.name, repository: config.name, rules: policy.retention.rules,
                                 timeZone: policy.schedule?.timezone ?? "UTC", now: context.clock(), backups: [], dependencies: nil,
                                 notes: ["repository '\(config.name)' (\(repository.store.location)) holds no backups yet"])
                }
                continue
            }
            repositories.append((repository, policies))
        }
        let pairs = repositories.flatMap { entry in entry.1.map { ($0, entry.0) } }
        var report = try locked(repositories[...], dryRun: options.dryRun) { try prune(pairs, options: options) }
        report.policies += empty
        report.policies.sort { $0.policy < $1.policy }
        return report
    }

    func selectPolicies(_ name: String?) throws -> [Policy] {
        if let name { return [try configuration.policyForCommand(named: name, context: context)] }
        return try configuration.usablePoliciesForCommand("pruned", context: context)
    }

    /// Runs `body` holding a lock on every repository: exclusive to delete, shared for a dry run.
    func locked<T>(_ repositories: ArraySlice<(Repository, [Policy])>, dryRun: Bool, _ body: () throws -> T) throws -> T {
        guard let first = repositories.first else { return try body() }
        let (repository, policies) = first
        let command = "prune" + (policies.count == 1 ? " \(policies[0].name)" : "")
        let rest = repositories.dropFirst()
        if dryRun {
            return try repository.withSharedLock(command: command + " --dry-run", wait: lockWait, timings: timings, context: context) {
                try locked(rest, dryRun: dryRun, body)
            }
        }
        return try repository.withExclusiveLock(command: command, wait: lockWait, timings: timings, context: context) {
            try locked(rest, dryRun: dryRun, body)
        }
    }

    func prune(_ policies: [(Policy, Repository)], options: Options) throws -> Report {
        var plans: [Plan] = []
        for (policy, repository) in policies {
            try context.cancellation.checkCancelled()
            plans.append(try plan(policy, in: repository))
        }
        var report = Report(ok: true, dryRun: options.dryRun, policies: plans.map(\.report), deletedBackups: 0, deletedLeftovers: 0)
        for plan in plans {
            for backup in plan.report.backups where backup.action == .delete {
                if backup.state == .committed { report.deletedBackups += 1 } else { report.deletedLeftovers += 1 }
            }
        }
        if let limit = options.maxDelete, report.deletedBackups > limit {
            let counts = plans.compactMap { plan -> String? in
                let n = plan.report.backups.filter { $0.action == .delete && $0.state == .committed }.count
                return n == 0 ? nil : "\(plan.policy.name): \(n)"
            }
            report.ok = false
            report.refused = "prune would delete \(report.deletedBackups) backup\(report.deletedBackups == 1 ? "" : "s") (\(counts.joined(separator: ", "))), more than --max-delete \(limit); nothing was deleted"
            context.logger.error("\(report.refused ?? "")")
            return report
        }
        var deletedSoFar = 0
        for (index, plan) in plans.enumerated() {
            let context = self.context.with(metadata: "policy.name", plan.policy.name)
            if !options.dryRun {
                for id in plan.staleReservations where plan.report.backups.contains(where: { $0.id == id && $0.action == .keep }) {
                    let key = Repository.reservationKey(policy: plan.policy.name, id: id)
                    do {
                        try context.cancellation.checkCancelled()
                        try plan.repository.store.delete(keys: [key])
                    } catch let error as LifeboatError {
                        throw stopped(error, at: "the stale reservation of committed backup \(id) of policy '\(plan.policy.name)'", deletedSoFar: deletedSoFar)
                    }
                    context.logger.info("stale reservation of a committed backup deleted", metadata: ["backup.id": "\(id)"])
                }
                for (entry, backup) in plan.report.backups.enumerated() where backup.action == .delete {
                    do {
                        try context.cancellation.checkCancelled()
                        _ = try plan.repository.deleteBackup(policy: plan.policy.name, id: backup.id, context: context)
                    } catch let error as LifeboatError {
                        throw stopped(error, at: "backup \(backup.id) of policy '\(plan.policy.name)'", deletedSoFar: deletedSoFar)
                    }
                    deletedSoFar += 1
                    report.policies[index].backups[entry].deleted = true
                    context.logger.info("\(backup.state == .committed ? "backup deleted" : "leftovers of an interrupted backup deleted")", metadata: [
                        "backup.id": "\(backup.id)", "backup.objects": "\(backup.objects)", "backup.bytes": "\(backup.bytes)",
                        "prune.reasons": "\(backup.reasons.map(\.description).joined(separator: "; "))",
                    ])
                }
            }
            do {
                try context.cancellation.checkCancelled()
                let discarded = try discardIncompleteWrites(of: plan, dryRun: options.dryRun, context: context)
                report.policies[index].discardedIncompleteWrites = discarded
                report.discardedIncompleteWrites += discarded
            } catch let error as LifeboatError {
                throw stopped(error, at: "the incomplete writes of killed runs of policy '\(plan.policy.name)'", deletedSoFar: deletedSoFar)
            }
            guard plan.dependenciesAllowed else { continue }
            let kind = try SourceKinds.named(plan.policy.source.kind, for: "policy '\(plan.policy.name)'")
            do {
                try context.cancellation.checkCancelled()
                report.policies[index].dependencies = try kind.pruneDependencies(policy: plan.policy.name, kept: plan.kept, in: plan.repository,
                                                                                 dryRun: options.dryRun, context: context)
            } catch let error as LifeboatError {
                throw stopped(error, at: "what policy '\(plan.policy.name)' keeps outside its backups", deletedSoFar: deletedSoFar)
            }
        }
        return report
    }

    /// Discards (with `dryRun`: finds) what killed writers left for a policy: in its backup
    /// directories all of it, under its kind's lock-free prefixes only what is older than
    /// `incompleteWriteGrace`. Returns how many. A dry run holds only a shared lock, so it
    /// leaves out what backups in progress are writing.
    func discardIncompleteWrites(of plan: Plan, dryRun: Bool, context: RunContext) throws -> Int {
        let policy = plan.policy.name
        let store = plan.repository.store
        var discarded: [IncompleteWrite] = []
        // Under the exclusive lock no backup can be in progress (its owner's lock is live);
        // should one be, its directory is left alone, as the plan's notes say.
        let inProgress = plan.report.backups.filter { $0.state == .inProgress }
        if dryRun {
            // Left out: what backups in progress write, and what deleting a backup discards
            // (counted with the backup).
            let skipped = plan.report.backups.filter { $0.state == .inProgress || $0.action == .delete }
                .map { Repository.backupDirectory(policy: policy, id: $0.id) }
            discarded = try store.discardIncompleteWrites(prefix: Repository.backupPrefix(policy: policy), olderThan: nil, dryRun: true)
                .filter { write in !skipped.contains { write.key.hasPrefix($0) } }
        } else if inProgress.isEmpty {
            discarded = try store.discardIncompleteWrites(prefix: Repository.backupPrefix(policy: policy), olderThan: nil, dryRun: false)
        }
        let inBackups = discarded.count
        let cutoff = context.clock().addingTimeInterval(-incompleteWriteGrace)
        let kind = try? SourceKinds.named(plan.policy.source.kind, for: "policy '\(policy)'")
        for prefix in kind?.lockFreeWritePrefixes(policy: policy) ?? [] {
            try context.cancellation.checkCancelled()
            discarded += try store.discardIncompleteWrites(prefix: prefix, olderThan: cutoff, dryRun: dryRun)
        }
        for write in discarded {
            context.logger.debug("\(dryRun ? "incomplete write would be discarded" : "incomplete write discarded")", metadata: [
                "object": "\(plan.repository.locate(write.key))", "incomplete.location": "\(write.location)",
                "incomplete.modified": "\(write.modified)", "incomplete.bytes": "\(write.bytes.map(String.init) ?? "unknown")",
            ])
        }
        if !discarded.isEmpty {
            context.logger.info("\(dryRun ? "incomplete writes of killed runs would be discarded" : "incomplete writes of killed runs discarded")", metadata: [
                "incomplete.backups": "\(inBackups)", "incomplete.lock_free": "\(discarded.count - inBackups)",
                "incomplete.grace_seconds": "\(Int(incompleteWriteGrace))",
            ])
        }
        return discarded.count
    }

    /// The error that ends a prune: what failed, where, and that nothing more was deleted.
    func stopped(_ error: LifeboatError, at what: String, deletedSoFar: Int) -> LifeboatError {
        if error.code == .cancelled {
            return LifeboatError(.cancelled, "prune was cancelled (\(context.cancellation.reason ?? error.message)) while deleting \(what); \(deletedSoFar) backups or leftovers were deleted before it",
                                 hint: "Run 'lifeboat prune' again: it finishes what this one began.")
        }
        var stopped = error.prefixed("prune stopped at \(what) (\(deletedSoFar) backups or leftovers deleted before it, nothing after)")
        stopped.hint = (error.hint.map { $0 + " " } ?? "")
            + "Then run 'lifeboat prune' again: it finishes what this one began (a backup whose manifest is already gone shows as interrupted in 'lifeboat list --all' until then)."
        return stopped
    }

    /// Reads a policy's backups and decides each one.
    func plan(_ policy: Policy, in repository: Repository) throws -> Plan {
        let timeZoneName = policy.schedule?.timezone ?? "UTC"
        let timeZone = TimeZone(identifier: timeZoneName) ?? TimeZone(secondsFromGMT: 0) ?? .current
        let now = context.clock()
        var report = PolicyReport(policy: policy.name, repository: repository.name, rules: policy.retention.rules, timeZone: timeZoneName,
                                  now: now, backups: [], dependencies: nil, notes: [])
        var manifests: [String: Manifest] = [:]
        var candidates: [RetentionCandidate] = []
        var allowed = true
        var staleReservations: [String] = []
        func block(_ reason: String) {
            allowed = false
            report.notes.append(reason)
        }

        for listing in try repository.listBackups(policy: policy.name) {
            try context.cancellation.checkCancelled()
            var decision = BackupDecision(id: listing.id, state: .committed, startedAt: nil, action: .keep, reasons: [], deleted: false,
                                          objects: listing.objectCount, bytes: listing.bytes)
            if listing.committed {
                switch try repository.committedManifest(policy: policy.name, id: listing.id) {
                case .readable(let manifest):
                    if listing.hasReservation,
                       case .interrupted = try repository.classify(uncommitted: listing, policy: policy.name, timings: timings, context: context) {
                        staleReservations.append(listing.id)
                    }
                    manifests[manifest.id] = manifest
                    decision.startedAt = manifest.startedAt
                    let kind = try? SourceKinds.named(manifest.source.kind, for: "backup \(manifest.id)")
                    candidates.append(RetentionCandidate(id: manifest.id, time: manifest.startedAt,
                                                         consistentAt: kind?.consistentPoint(of: manifest) ?? manifest.finishedAt))
                case .damaged(let error):
                    decision.state = .damaged
                    decision.reasons = [RetentionReason(rule: "damaged", detail: "its manifest cannot be read, so prune leaves it alone: \(error.message)")]
                    block("backup \(listing.id) has a manifest that cannot be read, so what the policy's backups need outside their directories is not known; it is left as it is")
                }
            } else {
                let state = try repository.classify(uncommitted: listing, policy: policy.name, timings: timings, context: context)
                switch state {
                case .inProgress(let reservation):
                    decision.state = .inProgress
                    decision.startedAt = reservation.started
                    decision.reasons = [RetentionReason(rule: "in_progress", detail: "a backup being written (\(state.detail))")]
                    block("backup \(listing.id) is being written (\(state.detail)), so what the policy keeps outside its backups is left for the next prune")
                case .interrupted(let reservation, _):
                    decision.state = .interrupted
                    decision.startedAt = reservation.started
                    decision.action = .delete
                    decision.reasons = [RetentionReason(rule: "interrupted", detail: "leftovers of a run that never committed (\(state.detail))")]
                case .unreserved:
                    decision.state = .interrupted
                    decision.action = .delete
                    decision.reasons = [RetentionReason(rule: "interrupted", detail: "leftovers without a manifest (\(state.detail))")]
                case .unreadable:
                    decision.state = .interrupted
                    decision.reasons = [RetentionReason(rule: "unreadable_reservation", detail: "its reservation cannot be read, so whose it is cannot be told; it is left alone (\(state.detail))")]
                    block("backup \(listing.id) has a reservation that cannot be read, so what the policy keeps outside its backups is left as it is")
                }
            }
            report.backups.append(decision)
        }

        let decisions = RetentionPlanner.plan(candidates, rules: policy.retention, timeZone: timeZone, now: now)
        var byID: [String: RetentionDecision] = [:]
        for decision in decisions { byID[decision.id] = decision }
        for index in report.backups.indices where report.backups[index].state == .committed {
            guard let decision = byID[report.backups[index].id] else { continue }
            report.backups[index].action = decision.keep ? .keep : .delete
            report.backups[index].reasons = decision.reasons
        }
        // The planner always keeps the newest committed backup; this is the last line of defence.
        if let newest = candidates.max(by: { a, b in a.time != b.time ? a.time < b.time : KeyOrder.precedes(a.id, b.id) })?.id,
           report.backups.contains(where: { $0.id == newest && $0.action == .delete }) {
            throw LifeboatError(.internalError, "prune planned to delete backup \(newest), the newest of policy '\(policy.name)'; nothing was deleted",
                                hint: "Report this as a bug in Lifeboat.")
        }
        if policy.retention.isEmpty {
            block("the policy has no retention rules: every backup is kept, and so is what the policy keeps outside its backups; only leftovers of crashed runs are deleted")
        }
        let kept = report.backups.filter { $0.state == .committed && $0.action == .keep }.compactMap { manifests[$0.id] }
        return Plan(policy: policy, repository: repository, report: report, kept: kept, dependenciesAllowed: allowed,
                    staleReservations: staleReservations)
    }
}

extension PruneCommand.Report {
    /// What was deleted, per policy and kind: `backup` (backup directories, leftovers of
    /// interrupted runs included), `wal` (archived WAL files), `blob` (S3 mirror blobs).
    public var deletedCounts: [String: [String: Int]] {
        var counts: [String: [String: Int]] = [:]
        for policy in policies {
            var kinds = ["backup": policy.backups.filter(\.deleted).count]
            if let dependencies = policy.dependencies, !dryRun {
                let kind = dependencies.what.hasPrefix("WAL") ? "wal" : dependencies.what.hasPrefix("blob") ? "blob" : dependencies.what
                kinds[kind] = dependencies.deletedObjects
            }
            counts[policy.policy] = kinds
        }
        return counts
    }
}
