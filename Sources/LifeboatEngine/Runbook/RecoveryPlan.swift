import Foundation
import Glibc
import LifeboatCore
import LifeboatIO

/// What `recover` will do, resolved before it starts: every step in order — for a restore,
/// the backup (or the point-in-time range) and the point it reaches, the data loss that
/// implies, the target; a command's words; a health step's checks — and the preflight checks.
public struct RecoveryPlan: Encodable, Sendable {
    public struct Restore: Encodable, Sendable {
        public var policy: String
        /// `latest` or the time asked for.
        public var requested: String
        public var backup: String?
        public var backupTime: Date?
        /// The backup's size in the repository.
        public var backupBytes: Int64?
        /// Point-in-time restores: the range the repository can reach.
        public var recoverableFrom: Date?
        public var recoverableTo: Date?
        /// The point the restore reaches, and now minus it.
        public var point: Date?
        public var dataLossSeconds: Double?
        public var target: String
    }

    public struct Step: Encodable, Sendable {
        public var number: Int
        public var id: String
        public var kind: String
        public var summary: String
        public var critical: Bool
        /// Already done (a resumed recovery does not run it again).
        public var done: Bool
        public var restore: Restore?
        /// A `run` step's command, secrets redacted.
        public var command: String?
        public var checks: [String]?
        public var instruction: String?
        public var steps: [Step]?
    }

    /// One preflight check; a failed one stops `recover` unless `--force`.
    public struct Preflight: Encodable, Sendable {
        public var check: String
        public var passed: Bool
        public var detail: String
        public var hint: String?
    }

    public var runbook: String
    public var description: String?
    public var mode: RunbookMode
    public var digest: String
    public var generatedAt: Date
    public var recoveryTargetTime: String
    public var steps: [Step]
    public var preflight: [Preflight]

    public var ready: Bool { preflight.allSatisfy(\.passed) }

    /// The points the restore steps will reach, by step id.
    public var restorePoints: [String: Date] {
        var points: [String: Date] = [:]
        func add(_ steps: [Step]) {
            for step in steps {
                if let point = step.restore?.point { points[step.id] = point }
                add(step.steps ?? [])
            }
        }
        add(steps)
        return points
    }
}

/// Builds a `RecoveryPlan`: reads each restore step's repository (which also proves it is
/// reachable and the credentials valid), chooses the backup as the restore will, and looks at
/// each target.
public struct RunbookPlanner: Sendable {
    public let runbook: Runbook
    public let mode: RunbookMode
    public let source: RepositorySource
    public let context: RunContext
    public var digest: String
    /// Steps already done (`--resume`): shown, not checked.
    public var done: Set<String> = []
    public var targetFor: @Sendable (RestoreStep, RestoreTarget) throws -> RestoreTarget = { $1 }

    public init(runbook: Runbook, mode: RunbookMode, source: RepositorySource, context: RunContext, digest: String) {
        self.runbook = runbook
        self.mode = mode
        self.source = source
        self.context = context
        self.digest = digest
    }

    public func plan(variables: RunbookVariables) -> RecoveryPlan {
        var variables = variables
        var preflight: [RecoveryPlan.Preflight] = []
        var reached: Set<String> = []
        let now = context.clock()
        func plan(_ step: RunbookStep, number: Int) -> RecoveryPlan.Step {
            let isDone = done.contains(step.id)
            var planned = RecoveryPlan.Step(number: number, id: step.id, kind: step.kindName, summary: RunbookRunner.summary(of: step),
                                            critical: step.critical, done: isDone)
            func text(_ template: RunbookTemplate) -> String { Secrets.redact((try? variables.resolve(template)) ?? template.text) }
            switch step.kind {
            case .restore(let restore):
                let result = self.restore(restore, variables: variables, now: now, checkTarget: !isDone, reached: &reached)
                planned.restore = result.restore
                preflight += result.preflight
                if let point = result.restore.point { variables.restored(step: step.id, at: point) }
            case .run(let spec):
                switch spec.program {
                case .argv(let words): planned.command = words.map { RecoveryOptions.shellQuoted(text($0)) }.joined(separator: " ")
                case .shell(let script): planned.command = "sh -c " + RecoveryOptions.shellQuoted(text(script))
                }
            case .health(let health):
                let runner = HealthCheckRunner(context: context, variables: variables)
                planned.checks = health.checks.map { "\($0.kindName) \(runner.target(of: $0))" }
            case .manual(let instruction):
                planned.instruction = text(instruction)
            case .wait:
                break
            case .parallel(let children):
                planned.steps = children.filter { $0.runs(in: mode) }.map { plan($0, number: number) }
            }
            return planned
        }
        let steps = runbook.steps.filter { $0.runs(in: mode) }.enumerated().map { plan($0.element, number: $0.offset + 1) }
        return RecoveryPlan(runbook: runbook.name, description: runbook.description, mode: mode, digest: digest, generatedAt: now,
                            recoveryTargetTime: variables.values[RunbookVariables.recoveryTargetTime] ?? "latest",
                            steps: steps, preflight: preflight)
    }

    func restore(_ restore: RestoreStep, variables: RunbookVariables, now: Date, checkTarget: Bool,
                 reached: inout Set<String>) -> (restore: RecoveryPlan.Restore, preflight: [RecoveryPlan.Preflight]) {
        var planned = RecoveryPlan.Restore(policy: restore.policy, requested: "latest", target: "\(restore.target.target.location)")
        var preflight: [RecoveryPlan.Preflight] = []
        do {
            let (resolved, point) = try restore.target.resolved(with: variables)
            let target = try targetFor(restore, resolved)
            planned.target = "\(target.location)"
            if case .time(let date) = point { planned.requested = RunbookVariables.format(date) }
            let context = self.context.with(metadata: "policy.name", restore.policy)
            let (repository, _) = try source.repository(forPolicy: restore.policy, context: context)
            let manifest: Manifest
            if case .time(let date) = point, !target.location.isDataDirectory {
                manifest = try repository.resolve(policy: restore.policy, at: date)
            } else {
                manifest = try repository.resolve(policy: restore.policy, selector: "latest")
            }
            if !reached.contains(restore.policy) {
                reached.insert(restore.policy)
                preflight.append(.init(check: "repository of policy '\(restore.policy)'", passed: true,
                                       detail: "reachable, newest backup \(manifest.id)"))
            }
            planned.backup = manifest.id
            planned.backupTime = manifest.startedAt
            planned.backupBytes = manifest.storedBytes
            planned.point = manifest.startedAt
            if target.location.isDataDirectory {
                let kind = try SourceKinds.named(manifest.source.kind, for: "backup \(manifest.id) of policy '\(restore.policy)'")
                if let intervals = try kind.recoverability(policy: restore.policy, repository: repository, context: context)?.intervals,
                   let last = intervals.max(by: { $0.toTime < $1.toTime }) {
                    planned.recoverableFrom = intervals.map(\.fromTime).min()
                    planned.recoverableTo = last.toTime
                    if case .time(let date) = point {
                        planned.point = date
                        if let covering = intervals.first(where: { $0.fromTime <= date && date <= $0.toTime }) {
                            planned.backup = covering.backups.last { id in (BackupID.startTime(of: id) ?? .distantPast) <= date } ?? planned.backup
                        } else {
                            preflight.append(.init(check: "point-in-time range of policy '\(restore.policy)'", passed: false,
                                                   detail: "\(RunbookVariables.format(date)) is outside every recoverable range",
                                                   hint: "Choose --at between \(RunbookVariables.format(planned.recoverableFrom ?? date)) and \(RunbookVariables.format(last.toTime))."))
                        }
                    } else {
                        planned.point = last.toTime
                    }
                }
            }
            planned.dataLossSeconds = planned.point.map { now.timeIntervalSince($0) }
            if checkTarget { preflight += targetChecks(target, manifest: manifest, policy: restore.policy) }
        } catch let error as LifeboatError {
            preflight.append(.init(check: "repository of policy '\(restore.policy)'", passed: false, detail: error.message,
                                   hint: error.hint ?? "Check the repository's address and credentials ('lifeboat check', 'lifeboat list \(restore.policy)')."))
        } catch let errors as LifeboatErrors {
            preflight.append(.init(check: "policy '\(restore.policy)'", passed: false,
                                   detail: errors.errors.map(\.message).joined(separator: "; "), hint: "Run 'lifeboat check'."))
        } catch {
            preflight.append(.init(check: "repository of policy '\(restore.policy)'", passed: false, detail: "\(error)", hint: nil))
        }
        return (planned, preflight)
    }

    /// A directory target must be empty (or absent, under a writable parent) and have room
    /// for the backup's data.
    func targetChecks(_ target: RestoreTarget, manifest: Manifest, policy: String) -> [RecoveryPlan.Preflight] {
        let path: String
        switch target.location {
        case .directory(let p): path = p
        case .dataDirectory(let p):
            if target.recovery?.delta == true { return [] }
            path = p
        case .postgresServer, .s3: return []
        }
        var checks: [RecoveryPlan.Preflight] = []
        let name = "target \(target.location)"
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: path) {
            if entries.isEmpty {
                checks.append(.init(check: name, passed: access(path, W_OK) == 0, detail: access(path, W_OK) == 0 ? "empty and writable" : "empty but not writable",
                                    hint: access(path, W_OK) == 0 ? nil : "Give this user write access to \(path)."))
            } else {
                checks.append(.init(check: name, passed: false, detail: "not empty (\(entries.count) entr\(entries.count == 1 ? "y" : "ies"))",
                                    hint: "The restore never overwrites: empty \(path), or point the runbook's target elsewhere."))
            }
        } else {
            var parent = (path as NSString).deletingLastPathComponent
            while !parent.isEmpty, parent != "/", !FileManager.default.fileExists(atPath: parent) {
                parent = (parent as NSString).deletingLastPathComponent
            }
            let writable = access(parent.isEmpty ? "/" : parent, W_OK) == 0
            checks.append(.init(check: name, passed: writable, detail: writable ? "will be created under \(parent)" : "\(parent) is not writable",
                                hint: writable ? nil : "Create \(path) for this user, or give it write access to \(parent)."))
        }
        var probe = path
        while !FileManager.default.fileExists(atPath: probe), probe != "/" { probe = (probe as NSString).deletingLastPathComponent }
        var info = statvfs()
        if statvfs(probe, &info) == 0 {
            let free = Int64(info.f_bavail) * Int64(info.f_frsize)
            let needed = manifest.sourceBytes
            checks.append(.init(check: "free space for \(target.location)", passed: free >= needed,
                                detail: "\(formatBytes(free)) free, the backup holds \(formatBytes(needed))",
                                hint: free >= needed ? nil : "Free space on the file system of \(probe), or restore elsewhere."))
        }
        return checks
    }
}
