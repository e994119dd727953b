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
                print("  runbook \(runbook.name) (\(runbook.file)): \(runbook.summary)")
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
            for entry in listing.backups where entry.state != .committed || entry.detail != nil {
                print("  \(entry.policy) \(entry.id): \(entry.state.rawValue)\(entry.detail.map { " — \($0)" } ?? "")")
            }
            for entry in listing.backups {
                for line in entry.contents ?? [] { print("  \(entry.policy) \(entry.id): \(line)") }
            }
            for ranges in listing.ranges {
                if ranges.intervals.isEmpty {
                    print("point-in-time recovery of \(ranges.policy): no backup has all the WAL it needs")
                }
                for interval in ranges.intervals {
                    print("point-in-time recovery of \(ranges.policy): from \(RecoveryTarget.format(interval.fromTime)) (\(interval.fromLSN)) to \(RecoveryTarget.format(interval.toTime)) (\(interval.toLSN)), timeline \(interval.timeline)")
                    if let gap = interval.gapAt { print("  then a gap: WAL segment \(gap) is missing from the repository") }
                }
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
    @Flag(name: .long, help: "S3 mirrors: read every blob the snapshot references and check its SHA-256 (else only that it exists, with its size).")
    var readData = false
    @Option(name: .long, help: ArgumentHelp("S3 mirrors: read part n of t of the blobs (a fixed split of the address space; 1/7 … 7/7 read each once).", valueName: "n/t"))
    var readDataSubset: String?
    @Flag(name: .long, help: "Print the report as JSON.") var json = false

    func run() throws {
        var options = VerifyOptions(readData: readData || readDataSubset != nil)
        if let readDataSubset {
            guard let subset = BlobSubset(parsing: readDataSubset) else {
                throw LifeboatError(.usage, "'\(readDataSubset)' is not a subset for --read-data-subset", hint: "Write it as n/t with 1 ≤ n ≤ t, e.g. 2/7.")
            }
            options.subset = subset
        }
        let source = try repository.source(global, policy: policy)
        let report = try VerifyCommand(source: source, context: global.context, lockWait: try lock.wait, options: options)
            .run(policy: policy, selector: backup)
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
        abstract: "Restore a backup: files into an empty directory, a logical PostgreSQL backup into a server, a base backup into a data directory (to any point in time).")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var repository: RepositoryOptions
    @OptionGroup var lock: ReadLockOptions
    @Argument(help: "The policy.") var policy: String
    @Argument(help: "A backup id, or 'latest'.") var backup: String = "latest"
    @Option(name: .long, help: ArgumentHelp("Where to restore: an empty directory (files), a libpq conninfo (logical PostgreSQL), a new or empty data directory (PostgreSQL base backups).", valueName: "target"))
    var to: String
    @Option(name: .long, help: ArgumentHelp("Logical PostgreSQL: restore only this database (repeatable).", valueName: "name"))
    var database: [String] = []
    @Flag(name: .long, help: "Logical PostgreSQL: do not create roles and tablespaces.") var noGlobals = false
    @OptionGroup var recovery: RecoveryTargetOptions
    @Option(name: .long, help: ArgumentHelp("Extract this many artifacts at once (default: one per core, at most 4); S3 mirrors: write this many objects at once (default 8).", valueName: "N"))
    var parallel: Int?
    @Option(name: .long, help: ArgumentHelp("Restore the newest backup started at or before this time, e.g. '2026-11-29 17:30:00+01' (no zone: this machine's).", valueName: "time"))
    var at: String?
    @OptionGroup var mirror: MirrorRestoreArguments
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    func validate() throws {
        if let parallel, !(1...64).contains(parallel) {
            throw ValidationError("--parallel must be between 1 and 64, not \(parallel)")
        }
    }

    func run() throws {
        let source = try repository.source(global, policy: policy, targetOptions: true)
        var options = try recovery.options()
        options.restoreCommand = try walFetchCommand()
        var time: Date?
        if let at {
            guard let date = RecoveryTarget.parseTime(at) else {
                throw LifeboatError(.usage, "'\(at)' is not a time for --at",
                                    hint: "Write it as 2026-11-29 17:30:00, with fractions of a second and a zone if needed (2026-11-29T17:30:00.5+01:00, …Z).")
            }
            guard backup == "latest" else {
                throw LifeboatError(.usage, "--at chooses the backup by time; it cannot be given with a backup id (\(backup))", hint: "Give one of them.")
            }
            guard options.isDefault else {
                throw LifeboatError(.usage, "--at cannot be given with --target-*, --tablespace-map or --delta",
                                    hint: "For point-in-time recovery of PostgreSQL, use --target-time.")
            }
            time = date
        }
        let request = RestoreCommand.Request(to: to, databases: database.isEmpty ? nil : database, globals: !noGlobals,
                                             recovery: options, parallel: parallel,
                                             mirror: try mirror.options(repository: repository))
        let result = try RestoreCommand(source: source, context: global.context, lockWait: try lock.wait)
            .run(policy: policy, selector: backup, at: time, request: request)
        if json {
            try printJSON(result)
        } else {
            if result.next.isEmpty {
                print("backup \(result.backup) of \(result.policy) restored to \(result.target) in \(String(format: "%.0f", result.seconds)) s\(result.restored.isEmpty ? "" : ": " + result.restored.joined(separator: ", "))")
            } else {
                print("backup \(result.backup) of \(result.policy) restored to \(result.target) in \(String(format: "%.0f", result.seconds)) s:")
                for line in result.restored { print("  \(line)") }
            }
            for kept in result.kept { print("  kept: \(kept)") }
            for warning in result.warnings { print("  warning: \(warning)") }
            for step in result.next { print("next: \(step)") }
        }
    }
}

extension Restore {
    /// The `restore_command` a restored cluster runs: this executable's `wal-fetch`, reading
    /// the same configuration directory or repository this restore read.
    func walFetchCommand() throws -> String {
        var words = [currentExecutablePath(), "wal-fetch"]
        if let address = repository.repository {
            words += ["--repository", address]
            if let endpoint = repository.endpoint { words += ["--endpoint", endpoint] }
            if let region = repository.region { words += ["--region", region] }
            if let caBundle = repository.caBundle { words += ["--ca-bundle", caBundle] }
            if repository.virtualHosted { words.append("--virtual-hosted") }
        } else {
            words += ["--config", ConfigurationLoader.directory(option: global.config, environment: global.environment)]
        }
        words.append(policy)
        return words.map(RecoveryOptions.shellQuoted).joined(separator: " ") + " %f %p"
    }
}

/// `restore`'s options for S3 mirrors.
struct MirrorRestoreArguments: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("S3 mirrors: the bucket of the snapshot to restore (needed when it holds several and --to is a bucket).", valueName: "bucket"))
    var bucket: String?
    @Option(name: .long, help: ArgumentHelp("S3 mirrors: restore only the keys starting with this.", valueName: "prefix"))
    var prefix: String?
    @Option(name: .long, help: ArgumentHelp("S3 mirrors: restore only this key.", valueName: "key"))
    var key: String?
    @Flag(name: .long, help: "S3 mirrors: delete objects of the target bucket (within the restored prefix) that the snapshot does not have.")
    var deleteExtra = false
    @Option(name: .long, help: ArgumentHelp("S3 mirrors: with --delete-extra, refuse (before writing or deleting anything) when more objects would be deleted (default 1000).", valueName: "N"))
    var maxDelete: Int?
    @Option(name: .long, help: ArgumentHelp("S3 mirrors: the target bucket's S3 endpoint (default: --endpoint when no --repository is given, else the snapshot's source endpoint).", valueName: "url"))
    var toEndpoint: String?

    /// The options, or nil when none was given (the target's endpoint options may come from
    /// `--endpoint`, `--region`, `--virtual-hosted`, `--ca-bundle` without `--repository`).
    func options(repository: RepositoryOptions) throws -> MirrorRestoreOptions? {
        let targetFromRepositoryOptions = repository.repository == nil
        let endpoint = toEndpoint ?? (targetFromRepositoryOptions ? repository.endpoint : nil)
        if let endpoint, !(endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://")) {
            throw LifeboatError(.usage, "S3 endpoint '\(endpoint)' must start with http:// or https://")
        }
        if let maxDelete, maxDelete < 0 {
            throw LifeboatError(.usage, "--max-delete must be 0 or more, not \(maxDelete)")
        }
        if maxDelete != nil, !deleteExtra {
            throw LifeboatError(.usage, "--max-delete goes with --delete-extra", hint: "Without --delete-extra nothing is deleted.")
        }
        let given = bucket != nil || prefix != nil || key != nil || deleteExtra || endpoint != nil
            || (targetFromRepositoryOptions && (repository.region != nil || repository.caBundle != nil || repository.virtualHosted))
        guard given else { return nil }
        return MirrorRestoreOptions(
            bucket: bucket, prefix: prefix, key: key, deleteExtra: deleteExtra, maxDelete: maxDelete ?? MirrorRestoreOptions.defaultMaxDelete,
            endpoint: endpoint, region: targetFromRepositoryOptions ? repository.region : nil,
            pathStyle: targetFromRepositoryOptions && repository.virtualHosted ? false : nil,
            caBundle: targetFromRepositoryOptions ? repository.caBundle.map { resolvePathArgument($0) } : nil)
    }
}

/// An absolute path for a path given on the command line.
func resolvePathArgument(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
}

/// `restore`'s point-in-time recovery options (base backups only).
struct RecoveryTargetOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Recover to this time, e.g. '2026-11-29 17:30:00+01' (no zone: this machine's).", valueName: "time"))
    var targetTime: String?
    @Option(name: .long, help: ArgumentHelp("Recover to this WAL position, e.g. 0/3000A28.", valueName: "lsn"))
    var targetLsn: String?
    @Option(name: .long, help: ArgumentHelp("Recover up to this transaction id.", valueName: "xid"))
    var targetXid: String?
    @Option(name: .long, help: ArgumentHelp("Recover to a restore point made with pg_create_restore_point.", valueName: "name"))
    var targetName: String?
    @Option(name: .long, help: ArgumentHelp("'immediate': stop as soon as the base backup is consistent; 'latest': replay all archived WAL (the default).", valueName: "immediate|latest"))
    var target: String?
    @Option(name: .long, help: ArgumentHelp("What the server does at the target: promote (default), pause or shutdown.", valueName: "action"))
    var targetAction: String?
    @Option(name: .long, help: ArgumentHelp("The timeline to recover along: latest (default), current, or a number.", valueName: "timeline"))
    var targetTimeline: String?
    @Option(name: .long, help: ArgumentHelp("Restore the tablespace at OLD into NEW (repeatable).", valueName: "OLD=NEW"))
    var tablespaceMap: [String] = []
    @Flag(name: .long, help: "Restore into a data directory that is not empty: write only the files that differ from the backup, remove those it does not have.")
    var delta = false

    func options() throws -> RecoveryOptions {
        var options = RecoveryOptions(delta: delta)
        let given = [("--target-time", targetTime), ("--target-lsn", targetLsn), ("--target-xid", targetXid),
                     ("--target-name", targetName), ("--target", target)].filter { $0.1 != nil }
        if given.count > 1 {
            throw LifeboatError(.usage, "\(given.map(\.0).joined(separator: " and ")) cannot be given together", hint: "Give one recovery target.")
        }
        if let targetTime {
            guard let date = RecoveryTarget.parseTime(targetTime) else {
                throw LifeboatError(.usage, "'\(targetTime)' is not a time for --target-time",
                                    hint: "Write it as 2026-11-29 17:30:00, with fractions of a second and a zone if needed (2026-11-29T17:30:00.5+01:00, …Z).")
            }
            options.target = .time(date)
        }
        if let targetLsn {
            guard let lsn = LSN(targetLsn) else { throw LifeboatError(.usage, "'\(targetLsn)' is not a WAL position for --target-lsn", hint: "Write it as PostgreSQL does: 0/3000A28.") }
            options.target = .lsn(lsn)
        }
        if let targetXid {
            guard let xid = UInt64(targetXid), xid >= 3 else { throw LifeboatError(.usage, "'\(targetXid)' is not a transaction id for --target-xid", hint: "Give a number, as txid_current() returns it.") }
            options.target = .xid(xid)
        }
        if let targetName {
            guard !targetName.isEmpty else { throw LifeboatError(.usage, "--target-name needs the name of a restore point") }
            options.target = .name(targetName)
        }
        switch target {
        case nil, "latest": break
        case "immediate": options.target = .immediate
        case let other?: throw LifeboatError(.usage, "'\(other)' is not a value for --target", hint: "Use 'immediate' or 'latest', or --target-time/--target-lsn/--target-xid/--target-name.")
        }
        if let targetAction {
            guard let action = RecoveryTargetAction(rawValue: targetAction) else {
                throw LifeboatError(.usage, "'\(targetAction)' is not a value for --target-action", hint: "Use promote, pause or shutdown.")
            }
            guard options.target != .latest else {
                throw LifeboatError(.usage, "--target-action needs a recovery target", hint: "Without one, recovery replays all archived WAL and the server is promoted.")
            }
            options.action = action
        }
        if let targetTimeline {
            guard let timeline = RecoveryTimeline(targetTimeline) else {
                throw LifeboatError(.usage, "'\(targetTimeline)' is not a value for --target-timeline", hint: "Use latest, current or a timeline number.")
            }
            options.timeline = timeline
        }
        for mapping in tablespaceMap {
            let parts = mapping.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, parts[0].hasPrefix("/"), parts[1].hasPrefix("/") else {
                throw LifeboatError(.usage, "'\(mapping)' is not OLD=NEW for --tablespace-map", hint: "Give two absolute paths: --tablespace-map /srv/ts1=/restore/ts1.")
            }
            guard options.tablespaceMap[parts[0]] == nil else { throw LifeboatError(.usage, "--tablespace-map names '\(parts[0])' twice") }
            options.tablespaceMap[parts[0]] = parts[1]
        }
        return options
    }
}

/// The absolute path of this executable (`restore_command` must find it from any directory).
func currentExecutablePath() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    if n > 0 { return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
    let first = CommandLine.arguments.first ?? "lifeboat"
    return first.hasPrefix("/") ? first : FileManager.default.currentDirectoryPath + "/" + first
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
            if report.discardedIncompleteWrites > 0 {
                print("  discarded \(plural(report.discardedIncompleteWrites, "temporary lock file")) of runs killed while writing their lock")
            }
        }
    }
}

