import ArgumentParser
import Foundation
import LifeboatCore
import LifeboatEngine
import LifeboatIO

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a configuration directory (every error with file:line:column), then reach each repository and source in use.")

    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Only validate the configuration; do not contact the repositories or look at the sources.") var offline = false
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    struct Summary: Encodable {
        var ok: Bool
        var directory: String
        var repositories: [String]
        var policies: [String]
        var runbooks: [String]
        var errors: [String]
        /// Repositories and sources (the name kept from when only repositories were checked).
        var repositoryChecks: [RepositoryCheck.Result]
    }

    func run() throws {
        let directory = ConfigurationLoader.directory(option: global.config, environment: global.environment)
        let configuration = try global.loadConfiguration()
        // `check` is where every problem counts, whatever it blocks.
        if !configuration.problems.isEmpty {
            let errors = LifeboatErrors(configuration.problems.map(\.error))
            if json {
                try printJSON(Summary(ok: false, directory: directory, repositories: configuration.repositories.map(\.name),
                                      policies: configuration.policies.map(\.name), runbooks: configuration.runbooks.map(\.name),
                                      errors: errors.errors.map(\.description), repositoryChecks: []))
                throw ExitCode(errors.exitStatus)
            }
            throw errors
        }
        let checks = offline ? [] : RepositoryCheck(configuration: configuration, context: global.context).run()
        let failed = checks.filter { $0.state == "failed" }
        if json {
            try printJSON(Summary(ok: failed.isEmpty, directory: directory, repositories: configuration.repositories.map(\.name),
                                  policies: configuration.policies.map(\.name), runbooks: configuration.runbooks.map(\.name),
                                  errors: failed.map { "\($0.kind) '\($0.name)': \($0.detail)" }, repositoryChecks: checks))
        } else {
            print("configuration \(directory) is valid: \(plural(configuration.policies.count, "policy", "policies")), \(plural(configuration.runbooks.count, "runbook")), \(plural(configuration.repositories.count, "repository", "repositories"))")
            for policy in configuration.policies {
                let repository = policy.repository ?? configuration.defaultRepository
                print("  policy \(policy.name) (\(policy.file)): \(policy.source.kind) → repository \(repository)")
            }
            for runbook in configuration.runbooks {
                print("  runbook \(runbook.name) (\(runbook.file)): \(plural(runbook.steps.count, "step"))")
            }
            for check in checks where check.state != "failed" {
                print("  \(check.kind) \(check.name) (\(check.location)): \(check.detail)")
            }
            for check in failed {
                report("error: \(check.kind) '\(check.name)' (\(check.location)) cannot be used: \(check.detail)")
            }
        }
        if !failed.isEmpty { throw ExitCode(1) }
    }
}

struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Back up a policy's source now.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var lock: LockOptions
    @Argument(help: "The policy to back up.") var policy: String
    @Flag(name: .long, help: "Print the committed manifest's summary as JSON.") var json = false

    struct Summary: Encodable {
        var ok: Bool
        var policy: String
        var id: String
        var source: String
        var artifacts: Int
        var storedBytes: Int64
        var sourceBytes: Int64
        var seconds: Double
        /// False when entries were skipped (listed in `skipped`).
        var complete: Bool
        var skipped: [SkippedEntry]
        var manifest: Manifest
    }

    func run() throws {
        let configuration = try global.loadConfiguration(policy: policy)
        let result = try BackupCommand(configuration: configuration, context: global.context, lockWait: try lock.seconds).run(policy: policy)
        let manifest = result.manifest
        let seconds = manifest.finishedAt.timeIntervalSince(manifest.startedAt)
        if json {
            try printJSON(Summary(ok: result.skipped.isEmpty, policy: manifest.policy, id: manifest.id, source: manifest.source.kind,
                                  artifacts: manifest.artifacts.count, storedBytes: manifest.storedBytes,
                                  sourceBytes: manifest.sourceBytes, seconds: seconds, complete: result.skipped.isEmpty,
                                  skipped: result.skipped, manifest: manifest))
        } else {
            print("backup \(manifest.id) of \(manifest.policy) committed: \(plural(manifest.artifacts.count, "artifact")), \(formatBytes(manifest.sourceBytes)) stored as \(formatBytes(manifest.storedBytes)) in \(String(format: "%.0f", seconds)) s")
            if !result.skipped.isEmpty {
                print("  INCOMPLETE: \(plural(result.skipped.count, "entry", "entries")) could not be backed up:")
                for entry in result.skipped.prefix(20) { print("    \(entry)") }
                if result.skipped.count > 20 { print("    … and \(result.skipped.count - 20) more (--json lists them all)") }
            }
        }
        if !result.skipped.isEmpty {
            report("error: backup \(manifest.id) of \(manifest.policy) is committed but incomplete: \(plural(result.skipped.count, "entry", "entries")) skipped\nHINT: Exclude what cannot be backed up (sockets, files that come and go) in the policy's 'exclude', or fix the cause, and run the backup again.")
            throw ExitCode(1)
        }
    }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List backups, oldest first.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var repository: RepositoryOptions
    @Argument(help: "Only this policy's backups.") var policy: String?
    @Flag(name: .long, help: "Also list backups without a committed manifest (in progress or interrupted).") var all = false
    @Flag(name: .long, help: "Print the list as JSON.") var json = false

    func run() throws {
        let source = try repository.source(global)
        let listing = try ListCommand(source: source, context: global.context).run(policy: policy, includeInterrupted: all)
        if json {
            // An array of backups, as scripts have read it; problems go to standard error and
            // the exit status.
            try printJSON(listing.backups)
        } else if listing.backups.isEmpty {
            print(policy.map { "policy \($0) has no backups" } ?? "no backups")
        } else {
            let rows = listing.backups.map { entry -> [String] in
                let state: String
                switch entry.state {
                case .committed: state = entry.source ?? ""
                case .damaged: state = "DAMAGED"
                case .inProgress: state = "IN PROGRESS"
                case .interrupted: state = "INTERRUPTED"
                }
                return [entry.policy, entry.id, state, String(entry.artifacts), formatBytes(entry.storedBytes),
                        entry.sourceBytes.map(formatBytes) ?? "-", entry.repository]
            }
            printTable(header: ["POLICY", "ID", "SOURCE", "ARTIFACTS", "STORED", "SOURCE SIZE", "REPOSITORY"], rows: rows)
            for entry in listing.backups where entry.state != .committed {
                print("  \(entry.policy) \(entry.id): \(entry.state.rawValue)\(entry.detail.map { " — \($0)" } ?? "")")
            }
        }
        for problem in listing.problems { report("error: \(problem)") }
        if !listing.problems.isEmpty || listing.backups.contains(where: { $0.state == .damaged }) { throw ExitCode(1) }
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-read a backup's artifacts and check every SHA-256 against its manifest.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var repository: RepositoryOptions
    @OptionGroup var lock: ReadLockOptions
    @Argument(help: "The policy.") var policy: String
    @Argument(help: "A backup id, or 'latest'.") var backup: String = "latest"
    @Flag(name: .long, help: "Print the report as JSON.") var json = false

    func run() throws {
        let source = try repository.source(global, policy: policy)
        let report = try VerifyCommand(source: source, context: global.context, lockWait: try lock.wait).run(policy: policy, selector: backup)
        if json {
            try printJSON(report)
        } else if report.ok {
            print("backup \(report.backup) of \(report.policy) verified: \(plural(report.artifacts, "artifact")), \(plural(report.entries, "entry", "entries")), \(formatBytes(report.bytes)), every SHA-256 matches")
        } else {
            var text = "backup \(report.backup) of \(report.policy) FAILED verification (\(plural(report.problems.count, "problem"))):\n"
            for problem in report.problems {
                text += "  \(problem.artifact)\(problem.entry.map { " entry \($0)" } ?? ""): \(problem.message)\n"
            }
            FileHandle.standardError.write(Data(Secrets.redact(text).utf8))
        }
        if !report.ok { throw ExitCode(1) }
    }
}

struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore a backup: files into an empty directory, PostgreSQL into a server (creating the databases).")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var repository: RepositoryOptions
    @OptionGroup var lock: ReadLockOptions
    @Argument(help: "The policy.") var policy: String
    @Argument(help: "A backup id, or 'latest'.") var backup: String = "latest"
    @Option(name: .long, help: ArgumentHelp("Where to restore: an empty directory (files) or a libpq conninfo (PostgreSQL).", valueName: "target"))
    var to: String
    @Option(name: .long, help: ArgumentHelp("PostgreSQL: restore only this database (repeatable).", valueName: "name"))
    var database: [String] = []
    @Flag(name: .long, help: "PostgreSQL: do not create roles and tablespaces.") var noGlobals = false
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    func run() throws {
        let source = try repository.source(global, policy: policy)
        let request = RestoreCommand.Request(to: to, databases: database.isEmpty ? nil : database, globals: !noGlobals)
        let result = try RestoreCommand(source: source, context: global.context, lockWait: try lock.wait)
            .run(policy: policy, selector: backup, request: request)
        if json {
            try printJSON(result)
        } else {
            print("backup \(result.backup) of \(result.policy) restored to \(result.target) in \(String(format: "%.0f", result.seconds)) s\(result.restored.isEmpty ? "" : ": " + result.restored.joined(separator: ", "))")
            for kept in result.kept { print("  kept: \(kept)") }
            for warning in result.warnings { print("  warning: \(warning)") }
        }
    }
}

struct Unlock: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove stale locks (whose process is gone) from a repository; --remove-all removes every lock.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var repository: RepositoryOptions
    @Option(name: .customLong("name"), help: ArgumentHelp("The configured repository (default: every repository the policies use).", valueName: "repository"))
    var name: String?
    @Flag(name: .long, help: "Remove every lock, also those of runs that still run (only when you know they are gone).") var removeAll = false
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    func run() throws {
        let source = try repository.source(global)
        let configs: [RepositoryConfig]
        switch source {
        case .address(let config):
            configs = [config]
        case .configuration(let configuration):
            try configuration.requireMain()
            if let name {
                configs = [try configuration.repository(named: name)]
            } else {
                configs = configuration.repositoriesInUse
            }
        }
        let command = UnlockCommand(context: global.context)
        let reports = try configs.map { try command.run(repository: $0, removeAll: removeAll) }
        if json {
            try printJSON(reports)
            return
        }
        for report in reports {
            let removed = report.locks.filter(\.removed)
            print("repository \(report.repository) (\(report.location)): \(plural(report.locks.count, "lock")), \(removed.count) removed")
            for lock in report.locks {
                let what = lock.command.map { "\(lock.kind ?? "?") lock of '\($0)' by \(lock.holder ?? "?")" } ?? "unreadable lock object \(lock.key)"
                print("  \(lock.removed ? "removed" : "kept   ") \(what) — \(lock.state)")
            }
        }
    }
}

