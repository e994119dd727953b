import ArgumentParser
import Foundation
import LifeboatCore
import LifeboatEngine
import LifeboatIO

struct Recover: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Recover the platform by a runbook: print the plan and its preflight checks, then run the steps (asking before each on a terminal).",
        discussion: "Exit status: 0 every critical step passed; 1 a step failed, the operator aborted, or a preflight check failed; 2 bad input; 130 / 143 cancelled by SIGINT / SIGTERM.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var lock: LockOptions
    @Argument(help: "The runbook (runbooks/NAME.yaml).") var runbook: String
    @Flag(name: .long, help: "Print the plan and the preflight checks, and exit.") var plan = false
    @Flag(name: .long, help: "Run unattended: no questions; a manual step fails unless it is optional.") var yes = false
    @Option(name: .long, help: ArgumentHelp("Restore to this time (RECOVERY_TARGET_TIME), e.g. '2026-11-29 17:30:00+01'.", valueName: "time"))
    var at: String?
    @Flag(name: .long, help: "Start although a preflight check failed.") var force = false
    @Flag(name: .long, help: "Continue an interrupted recovery after its last completed step.") var resume = false
    @Option(name: .long, help: ArgumentHelp("Run this step again (it failed, or must be redone), then continue.", valueName: "step")) var retry: [String] = []
    @Option(name: .long, help: ArgumentHelp("Mark this step skipped, then continue.", valueName: "step")) var skip: [String] = []
    @Flag(name: .long, help: "Abandon the unfinished recovery's journal and start again.") var restart = false
    @Flag(name: .long, help: "Print the plan (and the outcome) as JSON.") var json = false

    struct Summary: Encodable {
        var ok: Bool
        var outcome: String
        var plan: RecoveryPlan
        var steps: [StepResult]
    }

    func run() throws {
        let configuration = try global.loadConfiguration()
        let book = try configuration.runbookForCommand(named: runbook)
        let context = global.context.temporaryFiles(of: configuration)
        let file = configuration.directory + "/" + book.file
        guard let bytes = FileManager.default.contents(atPath: file) else {
            throw LifeboatError(.notFound, "unable to read the runbook file '\(file)'")
        }
        let digest = RecoveryJournal.digest(of: Array(bytes))
        var targetTime: Date?
        if let at {
            guard let date = RecoveryTarget.parseTime(at) else {
                throw LifeboatError(.usage, "'\(at)' is not a time for --at",
                                    hint: "Write it as 2026-11-29 17:30:00, with fractions of a second and a zone if needed (2026-11-29T17:30:00.5+01:00, …Z).")
            }
            targetTime = date
        }
        let ids = Set(book.allSteps.map(\.id))
        for id in retry + skip where !ids.contains(id) {
            throw LifeboatError(.usage, "runbook '\(book.name)' has no step '\(id)'", hint: "Its steps: \(book.allSteps.map(\.id).joined(separator: ", ")).")
        }
        let source = RepositorySource.configuration(configuration)
        let state = configuration.resolvedStateDirectory
        let continuing = resume || !retry.isEmpty || !skip.isEmpty

        var done: [String: StepResult] = [:]
        var journal: RecoveryJournalFile?
        var previous = RecoveryJournal.State()
        if !plan {
            let file = try RecoveryJournalFile(stateDirectory: state, runbook: book.name)
            journal = file
            previous = try file.read()
            if previous.header != nil && !file.isEmpty {
                if restart {
                    let kept = try file.archive(time: context.clock(), label: "-abandoned")
                    report("the unfinished recovery's journal was kept as \(kept); starting again")
                    journal = try RecoveryJournalFile(stateDirectory: state, runbook: book.name)
                    previous = RecoveryJournal.State()
                } else if previous.header?.digest != digest {
                    throw LifeboatError(.usage, "the journal \(file.path) was written for another version of runbook '\(book.name)' (digest \(previous.header?.digest?.prefix(12) ?? "?") then, \(digest.prefix(12)) now): its steps may have changed since the recovery started",
                                        hint: "Finish with the runbook as it was, or start over with 'lifeboat recover \(book.name) --restart'.")
                } else if !continuing {
                    throw LifeboatError(.usage, "a recovery of runbook '\(book.name)' is unfinished (journal \(file.path); \(previous.ended.count) step(s) ended)",
                                        hint: "Continue it with --resume (or --retry STEP / --skip STEP), or start over with --restart.")
                } else {
                    done = previous.results.filter { $0.value.outcome == .passed || $0.value.outcome == .skipped }
                    if targetTime == nil { targetTime = previous.header?.recoveryTargetTime }
                }
            } else if continuing {
                throw LifeboatError(.usage, "there is no unfinished recovery of runbook '\(book.name)' to continue",
                                    hint: "Start it with 'lifeboat recover \(book.name)'.")
            }
        }

        var variables = RunbookVariables(runbook: book, mode: .recover, environment: global.environment, recoveryTargetTime: targetTime)
        for (step, point) in previous.restoredPoints where done[step] != nil { variables.restored(step: step, at: point) }

        var planner = RunbookPlanner(runbook: book, mode: .recover, source: source, context: context, digest: digest)
        planner.done = Set(done.keys).subtracting(retry)
        let thePlan = planner.plan(variables: variables)
        if plan {
            if json { try printJSON(thePlan) } else { RecoverOutput.print(thePlan) }
            return
        }
        if !json { RecoverOutput.print(thePlan) }
        if !thePlan.ready && !force {
            if json { try printJSON(Summary(ok: false, outcome: "refused", plan: thePlan, steps: [])) }
            throw LifeboatError(.source, "a preflight check failed: the recovery did not start",
                                hint: "Fix what the preflight checks name, or pass --force to start anyway.")
        }
        guard let journal else { return }

        let prompter: any Prompter
        if yes {
            prompter = UnattendedPrompter()
        } else if TerminalPrompter.isTerminal {
            prompter = TerminalPrompter()
        } else {
            throw LifeboatError(.usage, "recover asks before each step, and standard input or output is not a terminal",
                                hint: "Pass --yes to run it unattended.")
        }

        let now = context.clock()
        if previous.header == nil {
            try journal.append(JournalEntry(event: .header, time: now, runbook: book.name, digest: digest, mode: .recover,
                                            recoveryTargetTime: targetTime, restorePoints: thePlan.restorePoints))
        }
        let audit = AuditLog(stateDirectory: state)
        try audit.append(.init(time: now, event: "started", host: context.host, runbook: book.name, digest: digest, mode: .recover,
                               restorePoints: thePlan.restorePoints))

        var runner = RunbookRunner(runbook: book, mode: .recover, source: source, context: context, prompter: prompter)
        runner.lockWait = try lock.seconds
        runner.done = done
        runner.rerun = Set(retry)
        runner.skip = Set(skip)
        runner.observer = JournalObserver(journal: journal, clock: context.clock, quiet: json)
        // A base backup restored into a data directory recovers through this executable's wal-fetch.
        let walFetch = Drill.walFetch(configDirectory: configuration.directory)
        runner.targetFor = { _, manifest, target in
            guard target.location.isDataDirectory, target.recovery?.restoreCommand == nil else { return target }
            var target = target
            var recovery = target.recovery ?? RecoveryOptions()
            recovery.restoreCommand = walFetch(manifest.policy)
            target.recovery = recovery
            return target
        }
        let outcome = runner.run(variables: variables)

        let result = outcome.aborted ? "aborted" : outcome.failedStep != nil ? "failed" : "passed"
        var points: [String: Date] = [:]
        for step in outcome.results.flatMap({ [$0] + $0.steps }) { if let point = step.restoredPoint { points[step.id] = point } }
        let end = context.clock()
        try journal.append(JournalEntry(event: .finished, time: end, outcome: result))
        try audit.append(.init(time: end, event: "finished", host: context.host, runbook: book.name, digest: digest, mode: .recover,
                               restorePoints: points, steps: outcome.results, outcome: result))
        var kept: String?
        if outcome.passed { kept = try journal.archive(time: end) }
        if json {
            try printJSON(Summary(ok: outcome.passed, outcome: result, plan: thePlan, steps: outcome.results))
        } else {
            let elapsed = RecoverOutput.seconds(end.timeIntervalSince(now))
            switch result {
            case "passed": print("recovery by runbook \(book.name) done in \(elapsed)\(kept.map { "; journal kept as \($0)" } ?? "")")
            case "aborted": print("recovery by runbook \(book.name) aborted after \(elapsed); continue it with 'lifeboat recover \(book.name) --resume'")
            default: break
            }
        }
        if outcome.aborted {
            // Stopped by SIGINT or SIGTERM: exit 130 / 143, as every command does.
            let signal = context.cancellation.isCancelled ? Signals.signal : nil
            if json { throw ExitCode(signal.map(Signals.exitStatus(for:)) ?? 1) }
            throw LifeboatError(signal == nil ? .source : .cancelled,
                                "the recovery by runbook '\(book.name)' was \(signal == nil ? "aborted" : "cancelled (\(context.cancellation.reason ?? "signal"))")",
                                hint: "Continue it with 'lifeboat recover \(book.name) --resume', or start over with --restart.")
        }
        if let failed = outcome.failedStep {
            let detail = outcome.results.last { $0.id == failed }?.detail ?? "failed"
            if json { throw ExitCode(1) }
            throw LifeboatError(.source, "step '\(failed)' of runbook '\(book.name)' failed: \(detail)",
                                hint: "Fix the cause, then 'lifeboat recover \(book.name) --retry \(failed)' (or --skip \(failed)).")
        }
    }
}

/// Writes the journal's start and end lines, and the progress lines a person follows.
struct JournalObserver: RunbookObserver {
    let journal: RecoveryJournalFile
    let clock: @Sendable () -> Date
    let quiet: Bool

    func stepStarted(_ step: RunbookStep, number: Int, of total: Int) {
        do {
            try journal.append(JournalEntry(event: .start, time: clock(), step: step.id))
        } catch {
            report("warning: \(error)")
        }
        if !quiet { print("[\(number)/\(total)] \(step.id): \(RunbookRunner.summary(of: step)) …") }
        fflush(nil)
    }

    func stepEnded(_ result: StepResult, step: RunbookStep, number: Int, of total: Int) {
        do {
            try journal.append(JournalEntry(event: .end, time: clock(), step: step.id, result: result))
        } catch {
            report("warning: \(error)")
        }
        if !quiet {
            print("[\(number)/\(total)] \(step.id) \(result.outcome.rawValue) in \(RecoverOutput.seconds(result.seconds))\(result.detail.map { ": \($0)" } ?? "")")
        }
        fflush(nil)
    }
}

enum RecoverOutput {
    static func seconds(_ value: Double) -> String {
        value < 120 ? String(format: "%.1f s", value) : String(format: "%dm%02ds", Int(value) / 60, Int(value) % 60)
    }

    static func duration(_ value: Double) -> String {
        let s = Int(value.rounded())
        if s < 120 { return "\(s)s" }
        if s < 7200 { return "\(s / 60)m" }
        if s < 172_800 { return "\(s / 3600)h\(s % 3600 / 60 > 0 ? "\(s % 3600 / 60)m" : "")" }
        return "\(s / 86400)d"
    }

    static func print(_ plan: RecoveryPlan) {
        Swift.print("plan for runbook \(plan.runbook) (mode \(plan.mode.rawValue), restore to \(plan.recoveryTargetTime))\(plan.description.map { ": \($0)" } ?? "")")
        func show(_ step: RecoveryPlan.Step, indent: String) {
            Swift.print("\(indent)\(step.number). \(step.id) [\(step.kind)\(step.critical ? "" : ", optional")]\(step.done ? " (done)" : ""): \(step.summary)")
            if let restore = step.restore {
                if let backup = restore.backup {
                    var line = "\(indent)   backup \(backup)"
                    if let time = restore.backupTime { line += " of \(RunbookVariables.format(time))" }
                    if let bytes = restore.backupBytes { line += ", \(formatBytes(bytes))" }
                    Swift.print(line)
                }
                if let from = restore.recoverableFrom, let to = restore.recoverableTo {
                    Swift.print("\(indent)   point-in-time range \(RunbookVariables.format(from)) – \(RunbookVariables.format(to))")
                }
                if let point = restore.point, let loss = restore.dataLossSeconds {
                    Swift.print("\(indent)   restored point \(RunbookVariables.format(point)) (\(restore.requested)): data loss \(duration(loss))")
                }
                Swift.print("\(indent)   into \(restore.target)")
            }
            if let command = step.command { Swift.print("\(indent)   command: \(command)") }
            for check in step.checks ?? [] { Swift.print("\(indent)   check: \(check)") }
            if let instruction = step.instruction { Swift.print("\(indent)   instruction: \(instruction)") }
            for child in step.steps ?? [] { show(child, indent: indent + "   ") }
        }
        for step in plan.steps { show(step, indent: "  ") }
        Swift.print("preflight:")
        if plan.preflight.isEmpty { Swift.print("  (nothing to check)") }
        for check in plan.preflight {
            Swift.print("  \(check.passed ? "ok    " : "FAILED") \(check.check): \(check.detail)")
            if !check.passed, let hint = check.hint { Swift.print("         → \(hint)") }
        }
        fflush(nil)
    }
}
