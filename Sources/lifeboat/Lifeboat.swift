import ArgumentParser
import Foundation
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import Logging

/// The `lifeboat` command line: parses arguments, delegates to the engine, prints.
struct Lifeboat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lifeboat",
        abstract: "Backup, verification and restore of PostgreSQL and directory trees, into local and S3 repositories.",
        discussion: """
            Exit status: 0 done; 1 the operation failed (or a backup was committed without some \
            entries, which it lists); 2 bad input (arguments, configuration, an unusable restore \
            target); 130 / 143 cancelled by SIGINT / SIGTERM (nothing was committed). wal-fetch \
            exits 126 when it cannot deliver a file intact (see 'lifeboat help wal-fetch').
            """,
        version: LifeboatVersion.current,
        subcommands: [Check.self, Backup.self, List.self, Verify.self, Restore.self, Recover.self, Drill.self, Prune.self, ScheduleDaemonCommand.self, StatusReport.self, Unlock.self, KeyCommands.self, WALPush.self, WALFetch.self, Export.self]
    )
}

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Configuration directory (lifeboat.yaml, policies/, runbooks/). Default: $LIFEBOAT_CONFIG, else the current directory.", valueName: "dir"))
    var config: String?

    @Flag(name: .long, help: "Log debug detail (as LOG_LEVEL=debug).")
    var verbose = false

    var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// Sets up logging; every command calls it first.
    func bootstrap() {
        LifeboatLogHandler.bootstrap(environment: environment, verbose: verbose)
    }

    /// Loads the configuration directory. `policy` names the policy the command is about, for
    /// its log lines.
    func loadConfiguration(policy: String? = nil) throws -> Configuration {
        bootstrap()
        let directory = ConfigurationLoader.directory(option: config, environment: environment)
        let configuration = try ConfigurationLoader.load(directory: directory, environment: environment)
        var logger = Logger(label: "lifeboat")
        if let policy { logger[metadataKey: "policy.name"] = "\(policy)" }
        logger.debug("configuration loaded", metadata: [
            "config.directory": "\(directory)", "config.policies": "\(configuration.policyFiles.count)",
            "config.runbooks": "\(configuration.runbookFiles.count)", "config.problems": "\(configuration.problems.count)",
        ])
        return configuration
    }

    /// The run's context: the process's cancellation (SIGINT/SIGTERM), a progress line on a
    /// terminal, the environment.
    var context: RunContext {
        RunContext(logger: Logger(label: "lifeboat"), cancellation: Signals.cancellation,
                   progress: TerminalProgress.isTerminal ? TerminalProgress() : NoProgress(), environment: environment)
    }
}

/// `--repository` and what an S3 repository given that way needs: for a machine that has the
/// repository's address and credentials and nothing else.
struct RepositoryOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Work from this repository alone, without a configuration: a directory, or s3://BUCKET[/PREFIX].", valueName: "address"))
    var repository: String?

    @Option(name: .long, help: ArgumentHelp("With an s3:// --repository: the S3 endpoint (default $AWS_ENDPOINT_URL).", valueName: "url"))
    var endpoint: String?

    @Option(name: .long, help: ArgumentHelp("With an s3:// --repository: the region (default $AWS_REGION, else us-east-1).", valueName: "region"))
    var region: String?

    @Flag(name: .long, help: "With an s3:// --repository: address the bucket as a host name (bucket.endpoint) instead of in the path.")
    var virtualHosted = false

    @Option(name: .long, help: ArgumentHelp("With an s3:// --repository: CA certificates to trust for https.", valueName: "pem"))
    var caBundle: String?

    @Option(name: .long, help: ArgumentHelp("With --repository: the key file of an encrypted repository.", valueName: "path"))
    var keyFile: String?

    /// The configuration or the repository the command works from.
    /// `targetOptions`: without `--repository`, `--endpoint`, `--region`, `--virtual-hosted` and
    /// `--ca-bundle` name something else (an S3 mirror restore's target) and are let through.
    func source(_ global: GlobalOptions, policy: String? = nil, targetOptions: Bool = false) throws -> RepositorySource {
        if let repository {
            global.bootstrap()
            var config = try RepositoryAddress.parse(
                repository, s3: RepositoryAddress.S3Options(endpoint: endpoint, region: region, pathStyle: !virtualHosted, caBundle: caBundle),
                workingDirectory: FileManager.default.currentDirectoryPath, environment: global.environment)
            if let keyFile {
                config.encryption = EncryptionConfig(key: .file(absolutePath(keyFile)))
            }
            return .address(config)
        }
        if keyFile != nil {
            throw LifeboatError(.usage, "--key-file goes with --repository", hint: "A configured repository takes its key from encryption: in lifeboat.yaml.")
        }
        if !targetOptions, endpoint != nil || region != nil || caBundle != nil || virtualHosted {
            throw LifeboatError(.usage, "--endpoint, --region, --virtual-hosted and --ca-bundle go with --repository s3://…",
                                hint: "A configured repository takes these settings from lifeboat.yaml.")
        }
        return .configuration(try global.loadConfiguration(policy: policy))
    }
}

/// A shared lock is not a must for reading: `--no-lock` for credentials that may only read.
struct ReadLockOptions: ParsableArguments {
    @OptionGroup var lock: LockOptions

    @Flag(name: .long, help: "Take no lock on the repository (for read-only credentials; a prune running meanwhile could remove what is read).")
    var noLock = false

    /// The wait for a conflicting lock, or nil for no lock at all.
    var wait: TimeInterval? {
        get throws { noLock ? nil : try lock.seconds }
    }
}

/// How long to wait for a repository lock held by another run.
struct LockOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("How long to wait for another run's conflicting lock on the repository (e.g. 30s, 10m).", valueName: "duration"))
    var lockWait: String = "10m"

    var seconds: TimeInterval {
        get throws {
            guard let duration = ConfigDuration(parsing: lockWait) else {
                throw LifeboatError(.usage, "'\(lockWait)' is not a duration for --lock-wait", hint: "Write it as 30s, 10m, 1h.")
            }
            return TimeInterval(duration.seconds)
        }
    }
}

/// Writes a value as JSON on standard output.
func printJSON<T: Encodable>(_ value: T) throws {
    print(Secrets.redact(String(decoding: try JSON.encode(value), as: UTF8.self)))
}

func printTable(header: [String], rows: [[String]]) {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    for row in all {
        print(row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
            .joined(separator: "  ").trimmingCharacters(in: .whitespaces))
    }
}

func plural(_ count: Int, _ singular: String, _ plural: String? = nil) -> String {
    "\(count) \(count == 1 ? singular : (plural ?? singular + "s"))"
}
