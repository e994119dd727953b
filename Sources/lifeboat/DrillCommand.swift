import ArgumentParser
import Foundation
import LifeboatCore
import LifeboatEngine
import LifeboatIO

struct Drill: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a runbook as a restore drill: its restores go to scratch targets Lifeboat creates and removes; measures RTO and RPO and writes the reports.",
        discussion: "Exit status: 0 the drill passed; 1 a critical step failed or an objective was breached; 2 bad input; 130 / 143 cancelled by SIGINT / SIGTERM (the scratch targets are removed).")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var lock: LockOptions
    @Argument(help: "The runbook (runbooks/NAME.yaml).") var runbook: String
    @Option(name: .long, help: ArgumentHelp("Restore to this time (RECOVERY_TARGET_TIME), e.g. '2026-11-29 17:30:00+01'.", valueName: "time"))
    var at: String?
    @Option(name: .long, help: ArgumentHelp("Write the reports here instead of state_dir/drills/RUNBOOK/START/.", valueName: "dir"))
    var reportDir: String?
    @Flag(name: .long, help: "Print the report as JSON.") var json = false

    func run() throws {
        let configuration = try global.loadConfiguration()
        var targetTime: Date?
        if let at {
            guard let date = RecoveryTarget.parseTime(at) else {
                throw LifeboatError(.usage, "'\(at)' is not a time for --at",
                                    hint: "Write it as 2026-11-29 17:30:00, with fractions of a second and a zone if needed (2026-11-29T17:30:00.5+01:00, …Z).")
            }
            targetTime = date
        }
        // Stopping scratch servers and deleting scratch objects takes longer than a backup's cleanup.
        Signals.cleanupDeadline = 15
        var command = DrillCommand(configuration: configuration, context: global.context.temporaryFiles(of: configuration))
        command.lockWait = try lock.seconds
        command.recoveryTargetTime = targetTime
        command.reportDirectory = reportDir.map(absolutePath)
        command.walFetchCommand = Self.walFetch(configDirectory: configuration.directory)
        command.observer = json ? nil : DrillProgress()
        let result = try command.run(runbook: runbook)
        let report = result.report
        if json {
            struct Summary: Encodable {
                var ok: Bool
                var reports: [String: String]
                var leftovers: [String]
                var report: DrillReport
            }
            try printJSON(Summary(ok: report.passed, reports: result.written.byFormat, leftovers: result.leftovers, report: report))
            if !report.passed { throw ExitCode(1) }
            return
        }
        print(Self.summary(result))
        if !report.passed {
            throw LifeboatError(.source, "the drill of runbook '\(report.runbook)' failed: " + report.failures.joined(separator: "; "),
                                hint: "The reports say more: \(result.written.html)")
        }
    }

    /// `restore_command` for a scratch server: this executable's `wal-fetch`.
    static func walFetch(configDirectory: String) -> @Sendable (String) -> String {
        let executable = currentExecutablePath()
        return { policy in
            [executable, "--config", configDirectory, "wal-fetch", policy].map(RecoveryOptions.shellQuoted).joined(separator: " ") + " %f %p"
        }
    }

    static func summary(_ result: DrillCommand.Result) -> String {
        let report = result.report
        func measured(_ name: String, _ value: Double?, _ objective: Double?) -> String {
            let text = value.map(DrillReport.duration) ?? "not measured"
            guard let objective else { return "\(name) \(text) (no objective)" }
            let met = value.map { $0 <= objective } ?? false
            return "\(name) \(text) (objective \(DrillReport.duration(objective)): \(met ? "met" : "BREACHED"))"
        }
        var lines = ["drill of runbook \(report.runbook): \(report.passed ? "PASSED" : "FAILED")",
                     "  " + measured("RTO", report.rto, report.objectives.rto),
                     "  " + measured("RPO", report.rpo, report.objectives.rpo)]
        for store in report.stores {
            lines.append("  \(store.step): \(store.policy) \(store.backupID ?? "-") restored to \(store.point.map(DrillReport.timestamp) ?? "nothing")")
        }
        lines += report.failures.map { "  failure: \($0)" }
        lines += report.warnings.map { "  warning: \($0)" }
        if !result.cleanedUp.isEmpty { lines.append("  removed the scratch targets of earlier drills that did not end: \(result.cleanedUp.joined(separator: ", "))") }
        lines.append("  reports: \(result.written.json), \(result.written.junit), \(result.written.html)")
        return lines.joined(separator: "\n")
    }
}

/// Progress lines, as `recover` prints them.
struct DrillProgress: RunbookObserver {
    func stepStarted(_ step: RunbookStep, number: Int, of total: Int) {
        print("[\(number)/\(total)] \(step.id): \(RunbookRunner.summary(of: step, mode: .drill)) …")
        fflush(nil)
    }

    func stepEnded(_ result: StepResult, step: RunbookStep, number: Int, of total: Int) {
        print("[\(number)/\(total)] \(step.id) \(result.outcome.rawValue) in \(RecoverOutput.seconds(result.seconds))\(result.detail.map { ": \($0)" } ?? "")")
        fflush(nil)
    }
}
