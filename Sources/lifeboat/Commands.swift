import ArgumentParser
import Foundation
import LifeboatCore
import LifeboatEngine
import LifeboatIO

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a configuration directory (every error with file:line:column), then reach each repository in use.")

    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Only validate the configuration; do not contact the repositories.") var offline = false
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    struct Summary: Encodable {
        var ok: Bool
        var directory: String
        var repositories: [String]
        var policies: [String]
        var runbooks: [String]
        var errors: [String]
        var repositoryChecks: [RepositoryCheck.Result]
    }

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        let directory = ConfigurationLoader.directory(option: global.config, environment: environment)
        do {
            let configuration = try global.loadConfiguration()
            let checks = offline ? [] : RepositoryCheck(configuration: configuration, logger: global.logger).run()
            let failed = checks.filter { $0.state == "failed" }
            if json {
                try printJSON(Summary(ok: failed.isEmpty, directory: directory, repositories: configuration.repositories.map(\.name),
                                      policies: configuration.policies.map(\.name), runbooks: configuration.runbooks.map(\.name),
                                      errors: failed.map { "repository '\($0.repository)': \($0.detail)" }, repositoryChecks: checks))
            } else {
                print("configuration \(directory) is valid: \(configuration.policies.count) polic\(configuration.policies.count == 1 ? "y" : "ies"), \(configuration.runbooks.count) runbook\(configuration.runbooks.count == 1 ? "" : "s"), \(configuration.repositories.count) repositor\(configuration.repositories.count == 1 ? "y" : "ies")")
                for policy in configuration.policies {
                    let repository = policy.repository ?? configuration.defaultRepository
                    print("  policy \(policy.name) (\(policy.file)): \(policy.source.kind) → repository \(repository)")
                }
                for runbook in configuration.runbooks {
                    print("  runbook \(runbook.name) (\(runbook.file)): \(runbook.steps.count) step\(runbook.steps.count == 1 ? "" : "s")")
                }
                for check in checks where check.state != "failed" {
                    print("  repository \(check.repository) (\(check.location)): \(check.detail)")
                }
                for check in failed {
                    report("error: repository '\(check.repository)' (\(check.location)) cannot be used: \(check.detail)")
                }
            }
            if !failed.isEmpty { throw ExitCode(1) }
        } catch let errors as LifeboatErrors where json {
            try printJSON(Summary(ok: false, directory: directory, repositories: [], policies: [], runbooks: [],
                                  errors: errors.errors.map(\.description), repositoryChecks: []))
            throw ExitCode(errors.exitStatus)
        }
    }
}

struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Back up a policy's source now.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The policy to back up.") var policy: String
    @Flag(name: .long, help: "Print the committed manifest's summary as JSON.") var json = false

    struct Summary: Encodable {
        var policy: String
        var id: String
        var source: String
        var artifacts: Int
        var storedBytes: Int64
        var sourceBytes: Int64
        var seconds: Double
        var manifest: Manifest
    }

    func run() throws {
        let configuration = try global.loadConfiguration()
        let manifest = try BackupCommand(configuration: configuration, logger: global.logger, progress: global.progress).run(policy: policy)
        let seconds = manifest.finishedAt.timeIntervalSince(manifest.startedAt)
        if json {
            try printJSON(Summary(policy: manifest.policy, id: manifest.id, source: manifest.source.kind,
                                  artifacts: manifest.artifacts.count, storedBytes: manifest.storedBytes,
                                  sourceBytes: manifest.sourceBytes, seconds: seconds, manifest: manifest))
        } else {
            print("backup \(manifest.id) of \(manifest.policy) committed: \(manifest.artifacts.count) artifact\(manifest.artifacts.count == 1 ? "" : "s"), \(formatBytes(manifest.sourceBytes)) stored as \(formatBytes(manifest.storedBytes)) in \(String(format: "%.0f", seconds)) s")
        }
    }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List committed backups, newest last.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Only this policy's backups.") var policy: String?
    @Flag(name: .long, help: "Also list interrupted backups (no committed manifest).") var all = false
    @Flag(name: .long, help: "Print the list as JSON.") var json = false

    func run() throws {
        let configuration = try global.loadConfiguration()
        let entries = try ListCommand(configuration: configuration).run(policy: policy, includeInterrupted: all)
        if json {
            try printJSON(entries)
            return
        }
        if entries.isEmpty {
            print(policy.map { "policy \($0) has no backups" } ?? "no backups")
            return
        }
        let rows = entries.map { entry -> [String] in
            [entry.policy, entry.id, entry.committed ? (entry.source ?? "") : "INTERRUPTED",
             String(entry.artifacts), formatBytes(entry.storedBytes), entry.sourceBytes.map(formatBytes) ?? "-", entry.repository]
        }
        printTable(header: ["POLICY", "ID", "SOURCE", "ARTIFACTS", "STORED", "SOURCE SIZE", "REPOSITORY"], rows: rows)
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-read a backup's artifacts and check every SHA-256 against its manifest.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The policy.") var policy: String
    @Argument(help: "A backup id, or 'latest'.") var backup: String = "latest"
    @Flag(name: .long, help: "Print the report as JSON.") var json = false

    func run() throws {
        let configuration = try global.loadConfiguration()
        let report = try VerifyCommand(configuration: configuration, logger: global.logger, progress: global.progress).run(policy: policy, selector: backup)
        if json {
            try printJSON(report)
        } else if report.ok {
            print("backup \(report.backup) of \(report.policy) verified: \(report.artifacts) artifact\(report.artifacts == 1 ? "" : "s"), \(report.entries) entr\(report.entries == 1 ? "y" : "ies"), \(formatBytes(report.bytes)), every SHA-256 matches")
        } else {
            var text = "backup \(report.backup) of \(report.policy) FAILED verification (\(report.problems.count) problem\(report.problems.count == 1 ? "" : "s")):\n"
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
    @Argument(help: "The policy.") var policy: String
    @Argument(help: "A backup id, or 'latest'.") var backup: String = "latest"
    @Option(name: .long, help: ArgumentHelp("Where to restore: an empty directory (files) or a libpq conninfo (PostgreSQL).", valueName: "target"))
    var to: String
    @Option(name: .long, help: ArgumentHelp("PostgreSQL: restore only this database (repeatable).", valueName: "name"))
    var database: [String] = []
    @Flag(name: .long, help: "PostgreSQL: do not apply roles and tablespaces.") var noGlobals = false
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    func run() throws {
        let configuration = try global.loadConfiguration()
        let options = RestoreCommand.Options(target: to, databases: database.isEmpty ? nil : database, globals: !noGlobals)
        let result = try RestoreCommand(configuration: configuration, logger: global.logger, progress: global.progress)
            .run(policy: policy, selector: backup, options: options)
        if json {
            try printJSON(result)
        } else {
            print("backup \(result.backup) of \(result.policy) restored to \(result.target) in \(String(format: "%.0f", result.seconds)) s\(result.restored.isEmpty ? "" : ": " + result.restored.joined(separator: ", "))")
            for warning in result.warnings { print("  warning: \(warning)") }
        }
    }
}

func printTable(header: [String], rows: [[String]]) {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    for row in all {
        print(row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
            .joined(separator: "  ").trimmingCharacters(in: .whitespaces))
    }
}
