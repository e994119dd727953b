import Foundation
import LifeboatCore
import LifeboatIO
import Logging

/// Runs backups: source → archive → repository, then the manifest, last.
///
/// The order of writes makes any number of concurrent runs safe, and any interruption
/// harmless: a shared lock on the repository; a reservation of a fresh backup id (a
/// conditional create); the artifacts, under the reserved id; then the manifest (a conditional
/// create: the commit point); then the reservation goes. On an error or a cancellation the run
/// deletes what it wrote under its own reservation and nothing else; after a crash, the
/// reservation goes stale and `prune` collects the leftovers.
public struct BackupCommand {
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

    /// What a backup committed, and what it had to leave out.
    public struct Result: Sendable {
        public var manifest: Manifest
        public var skipped: [SkippedEntry]
    }

    /// Backs up a policy's configured source.
    public func run(policy name: String) throws -> Result {
        let policy = try configuration.policyForCommand(named: name, context: context)
        let kind = try SourceKinds.named(policy.source.kind, for: "policy '\(policy.name)'")
        return try run(policy: policy) { sink, context in try kind.backup(policy.source, into: sink, context: context) }
    }

    /// Backs up `policy` with `source` writing the artifacts. The backup exists only once the
    /// manifest is committed.
    public func run(policy: Policy, source: (ArtifactSink, RunContext) throws -> BackupOutcome) throws -> Result {
        // The id is drawn first, so that every line of the run carries it (reserving it may,
        // in theory, draw another).
        let preferredID = BackupID.draw(at: self.context.clock())
        var context = self.context.with(metadata: "policy.name", policy.name).with(metadata: "backup.id", preferredID)
            .temporaryFiles(of: configuration)
        let owner = ProcessProbe.current(host: context.host)
        let repository = try Repository.open(try configuration.repository(for: policy), context: context)
        try repository.prepareForWriting(now: context.clock())
        let lock = try repository.lock(.shared, command: "backup \(policy.name)", owner: owner, wait: lockWait,
                                       timings: timings, context: context)
        let reservation: BackupReservation
        do {
            reservation = try repository.reserveBackup(policy: policy.name, preferred: preferredID, owner: owner, context: context)
        } catch {
            lock.release(context: context)
            throw error
        }
        let id = reservation.id
        context = context.with(metadata: "backup.id", id)
        context.logger.info("backup started", metadata: [
            "source.kind": "\(policy.source.kind)", "repository.name": "\(repository.name)",
            "repository.location": "\(repository.store.location)",
        ])
        let heartbeat = Heartbeat(beats: [lock.refresh, reservation.refresh], timings: timings, context: context)
        heartbeat.start()
        CrashPoint.reserved.reach(context)

        let sink = ArtifactSink(repository: repository, policy: policy, backupID: id, context: context)
        do {
            let outcome = try source(sink, context)
            try context.cancellation.checkCancelled()
            try reservation.requirePresent()
            let manifest = Manifest(policy: policy.name, id: id, source: outcome.record, startedAt: reservation.started,
                                    finishedAt: context.clock(), tool: ToolRecord(version: LifeboatVersion.current),
                                    artifacts: sink.artifacts)
            CrashPoint.beforeCommit.reach(context)
            try repository.commit(manifest)
            CrashPoint.committed.reach(context)
            heartbeat.stop()
            // The manifest supersedes the reservation; one left behind is collected by prune.
            reservation.release(context: context)
            lock.release(context: context)
            context.logger.info("backup committed", metadata: [
                "backup.artifacts": "\(manifest.artifacts.count)", "backup.stored_bytes": "\(manifest.storedBytes)",
                "backup.source_bytes": "\(manifest.sourceBytes)", "backup.skipped": "\(outcome.skipped.count)",
                "backup.seconds": "\(String(format: "%.1f", manifest.finishedAt.timeIntervalSince(reservation.started)))",
            ])
            return Result(manifest: manifest, skipped: outcome.skipped)
        } catch {
            heartbeat.stop()
            let cancelled = context.cancellation.reason
            let cleanup = context.forCleanup
            // Only what this run wrote under its own reservation, never anything else.
            let cleanupRepository = repository.reopened(context: cleanup)
            var removed = true
            do {
                try cleanupRepository.store.delete(keys: sink.writtenKeys + [reservation.key])
                cleanup.logger.info("removed what the failed backup had written", metadata: ["backup.objects": "\(sink.writtenKeys.count + 1)"])
            } catch let cleanupError {
                removed = false
                cleanup.logger.warning("could not remove the failed backup's data; it is never listed or restored, and prune removes it once its reservation is stale", metadata: [
                    "backup.directory": "\(repository.locate(Repository.backupDirectory(policy: policy.name, id: id)))",
                    "error": "\(String(describing: cleanupError))",
                ])
            }
            lock.release(through: cleanupRepository, context: cleanup)
            if let cancelled {
                throw LifeboatError(.cancelled, "backup \(id) of policy '\(policy.name)' was cancelled (\(cancelled)); nothing was committed"
                                    + (removed ? ", and its partial data was removed" : "; its partial data is never listed, and prune removes it"))
            }
            cleanup.logger.error("backup failed; nothing was committed", metadata: ["error": "\(String(describing: error))"])
            if let error = error as? LifeboatError { throw error.prefixed("backup \(id) of policy '\(policy.name)' failed") }
            throw error
        }
    }
}
