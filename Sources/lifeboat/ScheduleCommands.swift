import ArgumentParser
import Foundation
import LifeboatCore
import LifeboatEngine

struct ScheduleDaemonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule",
        abstract: "Run every policy's backup and every runbook's drill by its schedule, until SIGTERM or SIGINT (the scheduler daemon).",
        discussion: """
            One daemon per state directory (state_dir in lifeboat.yaml): a second one refuses to \
            start and names the first one's pid. On SIGTERM or SIGINT nothing new starts, running \
            backups get scheduler.stop_timeout to finish and are then cancelled (a cancelled backup \
            is never committed); a second signal ends the process at once. Exit status: 0 stopped \
            by a signal; 1 it could not run (another daemon holds the state directory, the state \
            directory cannot be written); 2 bad input (configuration).
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var lock: LockOptions
    @Option(name: .long, help: ArgumentHelp("Serve /metrics, /healthz and /readyz here: host:port, [::1]:port, :port (every interface), or off. Default: listen in lifeboat.yaml, else 127.0.0.1:9187.", valueName: "address"))
    var listen: String?

    func run() throws {
        var address: ListenAddress?
        if let listen {
            do {
                address = try ListenAddress(parsing: listen)
            } catch {
                throw LifeboatError(.usage, "--listen: \(error.description)", hint: "Write host:port (127.0.0.1:9187), [::1]:9187, :9187 for every interface, or off.")
            }
        }
        let configuration = try global.loadConfiguration()
        let blocking = configuration.problems(blocking: [.main])
        if !blocking.isEmpty { throw LifeboatErrors(blocking.map(\.error)) }
        let context = global.context
        for problem in configuration.problems {
            context.logger.warning("configuration problem: its policy is not scheduled ('lifeboat check' lists them all): \(problem.error.message)")
        }
        let daemon = try SchedulerDaemon.backups(configuration: configuration, context: daemonContext(context), lockWait: try lock.seconds,
                                                  walFetchCommand: Drill.walFetch(configDirectory: configuration.directory))
        let state = StateDirectory(path: configuration.resolvedStateDirectory)
        let held = try state.lockDaemon(pid: context.pid)
        let monitor = SchedulerMonitor(configuration: configuration, context: daemonContext(context))
        daemon.observer = monitor
        // Bound before any run starts: an address in use stops the daemon here (exit 1).
        let token = try configuration.listenTokenFile.map(MetricsToken.read)
        let listener = try monitor.listen(on: address ?? configuration.listen ?? .default, token: token, logger: context.logger)
        Signals.onFirstSignal { _ in daemon.stop() }
        context.logger.info("scheduler started", metadata: ["state.directory": "\(state.path)", "scheduler.pid": "\(context.pid)"])
        defer {
            listener?.stop()
            monitor.stop()
        }
        try withExtendedLifetime(held) { try daemon.run() }
    }

    /// The daemon's context: its runs are cancelled by the daemon (each has a cancellation of
    /// its own), not directly by the process's signal; no progress line.
    func daemonContext(_ base: RunContext) -> RunContext {
        var context = base
        context.cancellation = Cancellation()
        context.progress = NoProgress()
        return context
    }
}

struct StatusReport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show, per policy, the last scheduled run and its outcome, the next run, and the newest restorable point.",
        discussion: "Exit status: 0 (also when runs failed: their outcome is shown); 1 the state directory cannot be read; 2 bad input.")

    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Print the status as JSON.") var json = false

    func run() throws {
        let configuration = try global.loadConfiguration()
        let status = try StatusCommand(configuration: configuration, context: global.context).run()
        if json {
            try printJSON(status)
            return
        }
        let formatter = ISO8601DateFormatter()
        let rows = status.policies.map { policy -> [String] in
            let last = policy.lastRun.map { "\(formatter.string(from: $0.started)) \($0.outcome.rawValue)" } ?? "never"
            let restorable = policy.newestRestorable.map(formatter.string(from:)) ?? (policy.restorableError == nil ? "none" : "unknown")
            return [policy.policy, policy.schedule ?? "-", last, policy.nextRun.map(formatter.string(from:)) ?? "-", restorable]
        }
        printTable(header: ["POLICY", "SCHEDULE", "LAST RUN", "NEXT RUN", "NEWEST RESTORABLE"], rows: rows)
        for policy in status.policies {
            if let error = policy.lastRun?.error, policy.lastRun?.outcome != .succeeded { print("  \(policy.policy): last run: \(error)") }
            if let error = policy.restorableError { report("warning: \(policy.policy): the repository could not be read: \(error)") }
        }
    }
}
