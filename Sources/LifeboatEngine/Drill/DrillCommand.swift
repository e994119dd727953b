import Foundation
import Glibc
import LifeboatCore
import LifeboatIO
import Synchronization

/// `lifeboat drill RUNBOOK`: runs a runbook in drill mode (its `drill` and `always` steps)
/// with every restore redirected to a scratch target Lifeboat creates — a directory, a
/// PostgreSQL server started on the restored data directory, a Redis server on the restored
/// RDB file, a prefix of the restore bucket — and always removes afterwards (`ScratchTargets`);
/// measures RTO and RPO, writes the reports and the history line (`DrillReportWriter`) and an
/// audit line. The steps after a restore reach its scratch target through
/// `${TARGET_<STEP>_<FIELD>}` (`DrillTargetVariables`); an `s3` check of a restored bucket
/// looks into its scratch prefix.
public struct DrillCommand {
    public let configuration: Configuration
    public let context: RunContext
    /// How long a restore waits for a conflicting repository lock.
    public var lockWait: TimeInterval? = 600
    /// `--at`: restore to this time (nil: latest).
    public var recoveryTargetTime: Date?
    /// `--report-dir` (nil: `<state_dir>/drills/<runbook>/<start>/`).
    public var reportDirectory: String?
    /// PostgreSQL's `restore_command` for a policy's WAL (`lifeboat wal-fetch --config DIR POLICY %f %p`).
    public var walFetchCommand: (@Sendable (String) -> String)?
    public var observer: (any RunbookObserver)?

    public init(configuration: Configuration, context: RunContext) {
        self.configuration = configuration
        self.context = context
    }

    public struct Result: Sendable {
        public var report: DrillReport
        public var written: DrillReportWriter.Written
        /// Scratch targets that could not be removed (the next drill tries again).
        public var leftovers: [String]
        /// Drills that had died, whose scratch targets this one removed first.
        public var cleanedUp: [String]
    }

    /// What a restore step was redirected to.
    struct Redirect: Sendable {
        var policy: String
        var backupID: String
        /// S3: the target's bucket and prefix as written, and the scratch prefix.
        var bucket: String?
        var prefix: String?
        var scratchPrefix: String?
    }

    final class Redirects: Sendable {
        let value = Mutex<[String: Redirect]>([:])
    }

    /// The prefix under which a drill restores S3 mirrors, in the step's target bucket.
    public static func scratchPrefix(drill id: String) -> String { "lifeboat-drill-\(id)/" }

    public func run(runbook name: String) throws -> Result {
        let book = try configuration.runbookForCommand(named: name)
        let state = configuration.resolvedStateDirectory
        let configuration = self.configuration
        let sources: @Sendable (String) -> (any SourceConfiguration)? = { policy in
            configuration.policies.first { $0.name == policy }?.source
        }
        let leftovers = ScratchTargets.removeLeftovers(stateDirectory: state, sources: sources, context: context)
        for problem in leftovers.problems { context.logger.warning("a dead drill's scratch target remains", metadata: ["error": "\(problem)"]) }

        let file = configuration.directory + "/" + book.file
        let digest = RecoveryJournal.digest(of: Array(FileManager.default.contents(atPath: file) ?? Data()))
        let start = context.clock()
        let id = DrillHistory.directoryName(start) + "-" + String(UInt32.random(in: 0..<UInt32.max), radix: 36)
        let scratch = try ScratchTargets(stateDirectory: state, runbook: book.name, id: id,
                                         temporaryDirectory: context.temporaryDirectory, context: context)
        let audit = AuditLog(stateDirectory: state)
        context.logger.info("drill started", metadata: ["drill.id": "\(id)", "drill.runbook": "\(book.name)", "drill.scratch": "\(scratch.root)"])

        let redirects = Redirects()
        var runner = RunbookRunner(runbook: book, mode: .drill, source: .configuration(configuration), context: context,
                                   prompter: UnattendedPrompter())
        runner.lockWait = lockWait
        runner.observer = observer
        let walFetch = walFetchCommand
        let prefix = Self.scratchPrefix(drill: id)
        runner.targetFor = { step, manifest, target in
            try Self.redirect(step: step, manifest: manifest, target: target, scratch: scratch, scratchPrefix: prefix,
                              walFetch: walFetch, redirects: redirects)
        }
        runner.afterRestore = { step, manifest, target, point, context in
            try Self.prepare(step: step, manifest: manifest, target: target, point: point, scratch: scratch,
                             source: sources(manifest.policy), context: context)
        }
        runner.checkFor = { check in
            guard case .s3(var s3) = check.kind else { return check }
            for redirect in redirects.value.withLock({ Array($0.values) }) {
                guard let bucket = redirect.bucket, let original = redirect.prefix, let scratchPrefix = redirect.scratchPrefix,
                      s3.connection.bucket == bucket, s3.connection.prefix.hasPrefix(original)
                else { continue }
                s3.connection.prefix = scratchPrefix + s3.connection.prefix.dropFirst(original.count)
                var changed = check
                changed.kind = .s3(s3)
                return changed
            }
            return check
        }

        var outcome: RunbookRunner.Outcome
        var end: Date
        var problems: [String]
        do {
            try audit.append(.init(time: start, event: "started", host: context.host, runbook: book.name, digest: digest, mode: .drill,
                                   restorePoints: [:]))
            let variables = RunbookVariables(runbook: book, mode: .drill, environment: context.environment,
                                             recoveryTargetTime: recoveryTargetTime)
            outcome = runner.run(variables: variables)
            end = context.clock()
        } catch {
            _ = scratch.removeAll(sources: sources, quick: true, context: context.forCleanup)
            throw error
        }
        // Always, whatever the outcome: the scratch targets go.
        let cancelled = context.cancellation.isCancelled
        problems = scratch.removeAll(sources: sources, quick: cancelled, context: context.forCleanup)
        for problem in problems { context.logger.error("a scratch target could not be removed", metadata: ["error": "\(problem)"]) }

        var points: [String: Date] = [:]
        for step in outcome.results.flatMap({ [$0] + $0.steps }) { if let point = step.restoredPoint { points[step.id] = point } }
        let result = cancelled ? "cancelled" : outcome.passed ? "passed" : "failed"
        if cancelled {
            try? audit.append(.init(time: end, event: "finished", host: context.host, runbook: book.name, digest: digest, mode: .drill,
                                    restorePoints: points, steps: outcome.results, outcome: result))
            throw LifeboatError(.cancelled, "the drill of runbook '\(book.name)' was cancelled (\(context.cancellation.reason ?? "signal")); its scratch targets were removed"
                                + (problems.isEmpty ? "" : ", but not all: " + problems.joined(separator: "; ")),
                                hint: problems.isEmpty ? nil : "The next 'lifeboat drill' removes what is left.")
        }

        let known = redirects.value.withLock { $0 }
        let stores = book.allSteps.filter { step in
            guard case .restore = step.kind else { return false }
            return step.runs(in: .drill) && Self.parentRuns(step, in: book)
        }.map { step -> DrillReport.RestoredStore in
            guard case .restore(let restore) = step.kind else { fatalError("filtered") }
            return DrillReport.RestoredStore(step: step.id, policy: restore.policy, backupID: known[step.id]?.backupID, point: points[step.id])
        }
        var report = DrillReport.evaluate(runbook: book, mode: .drill, start: start, end: end, steps: outcome.results, stores: stores)
        report.warnings += problems.map { "scratch target left behind: \($0)" }
        let (written, _) = try DrillReportWriter.record(report: report, stateDirectory: state, reportDirectory: reportDirectory)
        try audit.append(.init(time: context.clock(), event: "finished", host: context.host, runbook: book.name, digest: digest, mode: .drill,
                               restorePoints: points, steps: outcome.results, outcome: report.passed ? "passed" : "failed"))
        return Result(report: report, written: written, leftovers: problems, cleanedUp: leftovers.removed)
    }

    /// Whether the parallel group holding `step` (if any) runs in drill mode.
    static func parentRuns(_ step: RunbookStep, in book: Runbook) -> Bool {
        for top in book.steps {
            if case .parallel(let children) = top.kind, children.contains(where: { $0.id == step.id }) { return top.runs(in: .drill) }
        }
        return true
    }

    // MARK: Scratch targets

    /// The scratch target of a restore step, recorded in the marker before the restore writes.
    static func redirect(step: RunbookStep, manifest: Manifest, target: RestoreTarget, scratch: ScratchTargets, scratchPrefix: String,
                         walFetch: (@Sendable (String) -> String)?, redirects: Redirects) throws -> RestoreTarget {
        var redirected = target
        let directory = scratch.root + "/" + step.id
        var redirect = Redirect(policy: manifest.policy, backupID: manifest.id)
        switch target.location {
        case .directory:
            try scratch.record(.init(kind: .directory, step: step.id, path: directory))
            redirected.location = .directory(directory + "/restored")
        case .dataDirectory:
            guard let walFetch else {
                throw LifeboatError(.internalError, "no restore_command for the drill's PostgreSQL recovery", hint: "Report this as a bug in Lifeboat.")
            }
            try scratch.record(.init(kind: .postgres, step: step.id, path: directory + "/data"))
            redirected.location = .dataDirectory(directory + "/data")
            var recovery = target.recovery ?? RecoveryOptions()
            recovery.restoreCommand = walFetch(manifest.policy)
            recovery.delta = false
            recovery.tablespaceMap = [:]
            redirected.recovery = recovery
        case .s3(let bucket, let prefix):
            let place = try S3MirrorScratch.make(manifest: manifest, bucket: bucket, prefix: scratchPrefix + prefix, options: target.mirror)
            try scratch.record(.init(kind: .s3, step: step.id, s3: place))
            redirected.location = .s3(bucket: bucket, prefix: place.prefix)
            var mirror = target.mirror ?? MirrorRestoreOptions()
            mirror.deleteExtra = false
            redirected.mirror = mirror
            redirect.bucket = bucket
            redirect.prefix = prefix
            redirect.scratchPrefix = place.prefix
        case .postgresServer:
            throw LifeboatError(.usage, "a drill cannot yet redirect a logical PostgreSQL restore (a 'conninfo' target, step '\(step.id)') to a scratch server",
                                hint: "Give the step 'when: recover' and restore a base backup policy in the drill, or drill this policy with 'lifeboat restore' into a server of your own.")
        }
        redirects.value.withLock { $0[step.id] = redirect }
        return redirected
    }

    /// Once a restore step has restored: starts the server a store needs (PostgreSQL on the
    /// data directory, Redis on the RDB file) and returns the variables of the scratch target,
    /// and the point restored when the server knows it.
    static func prepare(step: RunbookStep, manifest: Manifest, target: RestoreTarget, point: Date, scratch: ScratchTargets,
                        source: (any SourceConfiguration)?, context: RunContext) throws -> (variables: [String: String], point: Date?) {
        func name(_ field: String) -> String { DrillTargetVariables.name(step: step.id, field: field) }
        switch target.location {
        case .dataDirectory(let data):
            let directory = (data as NSString).deletingLastPathComponent
            let binDir = try ScratchPostgres.serverBinDir(dataDirectory: data, preferred: (source as? PostgresConfiguration)?.binDir)
            try scratch.record(.init(kind: .postgres, step: step.id, path: data, binDir: binDir))
            // The server's user reaches the data directory through the scratch root (0711).
            let owner = try FileOwnerName.of(data)
            try owner.give(directory)
            chmod(scratch.root, 0o711)
            let server = try ScratchPostgres.start(dataDirectory: data, directory: directory + "/run", binDir: binDir, context: context)
            try server.waitForPromotion(context: context)
            let replayed = server.lastReplayedCommit()
            context.logger.info("scratch PostgreSQL server promoted", metadata: [
                "drill.port": "\(server.port)", "drill.last_replayed_commit": "\(replayed.map(RunbookVariables.format) ?? "none")",
            ])
            return ([name("HOST"): "127.0.0.1", name("PORT"): "\(server.port)", name("SOCKET"): server.directory, name("DIR"): data,
                     name("CONNINFO"): "host=127.0.0.1 port=\(server.port)"], replayed)
        case .directory(let path) where manifest.source.kind == RedisKind().name:
            let record = try manifest.source.details(as: RedisRecord.self)
            let server = try ScratchRedis.start(directory: path, rdbFile: record.rdbFile, context: context)
            try scratch.record(.init(kind: .redis, step: step.id, path: (path as NSString).deletingLastPathComponent, pid: server.pid,
                                     processStart: server.processStart))
            return ([name("HOST"): "127.0.0.1", name("PORT"): "\(server.port)", name("DIR"): path,
                     name("URL"): "redis://127.0.0.1:\(server.port)"], nil)
        case .directory(let path):
            return ([name("DIR"): path], nil)
        case .s3(let bucket, let prefix):
            let endpoint = (try? S3MirrorScratch.make(manifest: manifest, bucket: bucket, prefix: prefix, options: target.mirror))?.endpoint ?? ""
            return ([name("BUCKET"): bucket, name("PREFIX"): prefix, name("URL"): "s3://\(bucket)/\(prefix)", name("ENDPOINT"): endpoint], nil)
        case .postgresServer:
            return ([:], nil)
        }
    }
}
