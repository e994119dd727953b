import ArgumentParser
import Foundation
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import Logging

/// The context of a WAL command: no progress line (PostgreSQL collects standard error into
/// its log), the policy on every log line.
private func walContext(_ global: GlobalOptions, policy: String) -> RunContext {
    var logger = Logger(label: "lifeboat")
    logger[metadataKey: "policy.name"] = "\(policy)"
    return RunContext(logger: logger, cancellation: Signals.cancellation, progress: NoProgress(), environment: global.environment)
}

/// `lifeboat.yaml` and the one policy's file: nothing else can stop WAL archiving.
private func walConfiguration(_ global: GlobalOptions, policy: String) throws -> Configuration {
    global.bootstrap()
    let directory = ConfigurationLoader.directory(option: global.config, environment: global.environment)
    return try ConfigurationLoader.load(directory: directory, environment: global.environment, onlyPolicy: policy)
}

struct WALPush: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal-push",
        abstract: "Archive one WAL file into the policy's repository (PostgreSQL's archive_command: wal-push POLICY %p).",
        discussion: """
            Exit status: 0 archived (or archived before with the same content); 1 not archived \
            (PostgreSQL keeps the file and asks again); 2 bad input (not a physical PostgreSQL \
            policy, not a WAL file name).
            """)

    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("pg-data"), help: ArgumentHelp("The cluster's data directory (default: the current directory, where archive_command runs).", valueName: "dir"))
    var pgData: String?
    @Argument(help: "The cluster's physical PostgreSQL policy.") var policy: String
    @Argument(help: "The WAL file's path (%p).") var path: String

    func run() throws {
        let configuration = try walConfiguration(global, policy: policy)
        let context = walContext(global, policy: policy)
        do {
            _ = try WALPushCommand(configuration: configuration, context: context, dataDirectory: pgData ?? FileManager.default.currentDirectoryPath)
                .run(policy: policy, path: path)
        } catch let error as LifeboatError where error.code == .cancelled {
            throw error  // stopped by a signal (PostgreSQL shutting down): not a failure to push
        } catch {
            // For lifeboat_wal_push_failures_total (the scheduler daemon counts these lines).
            StateDirectory(path: configuration.resolvedStateDirectory).recordWALPushFailure(policy: policy, time: context.clock(), error: "\(error)")
            throw error
        }
    }
}

struct WALFetch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal-fetch",
        abstract: "Fetch one archived WAL file, verified (PostgreSQL's restore_command: wal-fetch POLICY %f %p).",
        discussion: """
            Exit status: 0 fetched; 1 not archived (said on standard error only with --verbose); \
            126 the file cannot be told apart from a missing one or cannot be delivered intact \
            (repository unreachable, checksum mismatch, broken configuration): PostgreSQL then \
            stops recovery instead of ending it early.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var repository: RepositoryOptions
    @Option(name: .long, help: ArgumentHelp("With --repository: segments to fetch ahead (default 8; with a configuration, the policy's wal.prefetch).", valueName: "n"))
    var prefetch: Int?
    @Argument(help: "The cluster's physical PostgreSQL policy.") var policy: String
    @Argument(help: "The WAL file's name (%f).") var name: String
    @Argument(help: "Where to write it (%p).") var destination: String

    /// What PostgreSQL takes as fatal for restore_command (above 125): recovery stops.
    static let cannotDeliver: Int32 = 126

    func run() throws {
        do {
            let command: WALFetchCommand
            if self.repository.repository != nil {
                if let prefetch, !(0...256).contains(prefetch) {
                    throw LifeboatError(.usage, "--prefetch must be between 0 and 256, not \(prefetch)")
                }
                command = WALFetchCommand(source: try self.repository.source(global), context: walContext(global, policy: policy),
                                          prefetch: prefetch ?? PostgresConfiguration.WALSettings().prefetch)
            } else {
                if prefetch != nil {
                    throw LifeboatError(.usage, "--prefetch goes with --repository", hint: "With a configuration, set the policy's wal.prefetch.")
                }
                command = WALFetchCommand(configuration: try walConfiguration(global, policy: policy), context: walContext(global, policy: policy))
            }
            let outcome = try command.run(policy: policy, file: name, destination: destination)
            if outcome == .notArchived { throw ExitCode(1) }
        } catch let exit as ExitCode {
            throw exit
        } catch let error as LifeboatError where error.code == .cancelled {
            throw error
        } catch let error as LifeboatError {
            report("error: \(error)")
            throw ExitCode(Self.cannotDeliver)
        } catch let errors as LifeboatErrors {
            for error in errors.errors { report("error: \(error)") }
            throw ExitCode(Self.cannotDeliver)
        } catch {
            report("error: \(error)")
            throw ExitCode(Self.cannotDeliver)
        }
    }
}
