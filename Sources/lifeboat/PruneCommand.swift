import ArgumentParser
import Foundation
import LifeboatCore
import LifeboatEngine

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete the backups a policy's retention rules no longer keep (every policy when none is named), crashed runs' leftovers, and what only deleted backups needed (archived WAL).",
        discussion: """
            Never deletes the newest committed backup of a policy; a policy without retention \
            rules keeps every backup. Exit status: 0 done; 1 failed (nothing is deleted after \
            the first error) or refused by --max-delete (nothing was deleted); 2 bad input.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var lock: LockOptions
    @Argument(help: "The policy to prune (default: every policy).") var policy: String?
    @Flag(name: .long, help: "Print what would be kept and deleted, and why; delete nothing.") var dryRun = false
    @Option(name: .long, help: ArgumentHelp("Refuse, before deleting anything, when more than N backups would be deleted (default: no limit).", valueName: "N"))
    var maxDelete: Int?
    @Flag(name: .long, help: "Print the report as JSON.") var json = false

    func validate() throws {
        if let maxDelete, maxDelete < 0 {
            throw ValidationError("--max-delete must be 0 or more, not \(maxDelete)")
        }
    }

    func run() throws {
        let configuration = try global.loadConfiguration(policy: policy)
        let result = try PruneCommand(configuration: configuration, context: global.context, lockWait: try lock.seconds)
            .run(policy: policy, options: PruneCommand.Options(dryRun: dryRun, maxDelete: maxDelete))
        if json {
            try printJSON(result)
        } else {
            printText(result)
        }
        if let refused = result.refused {
            report("error: \(refused)\nHINT: Check the policies' retention rules ('lifeboat prune --dry-run' shows what each keeps and why); if the deletions are right, pass a larger --max-delete.")
            throw ExitCode(1)
        }
    }

    func printText(_ report: PruneCommand.Report) {
        for policy in report.policies {
            let zone = TimeZone(identifier: policy.timeZone) ?? TimeZone(secondsFromGMT: 0) ?? .current
            let rules = policy.rules.isEmpty ? "no retention rules" : policy.rules.joined(separator: ", ")
            print("policy \(policy.policy) (repository \(policy.repository), time zone \(policy.timeZone)): \(rules)")
            if policy.backups.isEmpty { print("  no backups") }
            for backup in policy.backups {
                let action = backup.action == .keep ? "keep  " : (backup.deleted ? "DELETED" : "delete")
                let when = backup.startedAt.map { RetentionPlanner.format($0, in: zone) } ?? "-"
                let state = backup.state == .committed ? "" : " \(backup.state.rawValue.uppercased())"
                print("  \(action) \(backup.id)  \(when)\(state)  \(backup.reasons.map(\.description).joined(separator: "; "))")
            }
            if let dependencies = policy.dependencies {
                let verb = report.dryRun ? "would be deleted" : "deleted"
                print("  \(dependencies.what): \(dependencies.deletedObjects) \(verb) (\(formatBytes(dependencies.deletedBytes))), \(dependencies.keptObjects) kept — \(dependencies.detail)")
            }
            if policy.discardedIncompleteWrites > 0 {
                print("  incomplete writes of killed runs (temporary files, multipart uploads): \(policy.discardedIncompleteWrites) \(report.dryRun ? "would be discarded" : "discarded")")
            }
            for note in policy.notes { print("  note: \(note)") }
        }
        var counts = "\(plural(report.deletedBackups, "backup")) and \(plural(report.deletedLeftovers, "leftover")) of interrupted runs"
        if report.discardedIncompleteWrites > 0 {
            counts = "\(plural(report.deletedBackups, "backup")), \(plural(report.deletedLeftovers, "leftover")) of interrupted runs and \(plural(report.discardedIncompleteWrites, "incomplete write")) of killed runs"
        }
        if report.refused != nil {
            print("prune refused: nothing was deleted")
        } else if report.dryRun {
            print("dry run: \(counts) would be deleted; nothing was deleted")
        } else {
            print("prune: \(counts) deleted")
        }
    }
}
