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
            Exit status: 0 done; 1 the operation failed; 2 bad input (arguments, configuration, \
            an unusable restore target).
            """,
        version: LifeboatVersion.current,
        subcommands: [Check.self, Backup.self, List.self, Verify.self, Restore.self]
    )
}

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Configuration directory (lifeboat.yaml, policies/, runbooks/). Default: $LIFEBOAT_CONFIG, else the current directory.", valueName: "dir"))
    var config: String?

    @Flag(name: .long, help: "Log debug detail.")
    var verbose = false

    func loadConfiguration() throws -> Configuration {
        let environment = ProcessInfo.processInfo.environment
        LifeboatLogHandler.bootstrap(environment: environment, verbose: verbose)
        let directory = ConfigurationLoader.directory(option: config, environment: environment)
        return try ConfigurationLoader.load(directory: directory, environment: environment)
    }

    var logger: Logger { Logger(label: "lifeboat") }

    /// A progress line on a terminal; nothing otherwise (the log lines say the same).
    var progress: any ProgressReporter { TerminalProgress.isTerminal ? TerminalProgress() : NoProgress() }
}

/// Writes a value as JSON on standard output.
func printJSON<T: Encodable>(_ value: T) throws {
    print(String(decoding: try JSON.encode(value), as: UTF8.self))
}
