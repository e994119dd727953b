import ArgumentParser
import Foundation
import LifeboatCore
import LifeboatIO

// A main of our own instead of `@main`, so that every failure maps to Lifeboat's exit
// statuses: 0 done, 1 the operation failed, 2 bad input, 128 + N cancelled by signal N.
// (ArgumentParser's own usage errors would otherwise exit with 64.) With `--json`, a failure
// is also one JSON document on standard output, so that a script never reads an empty one.
func report(_ text: String) {
    FileHandle.standardError.write(Data((Secrets.redact(text) + "\n").utf8))
}

/// The failure as a JSON document on standard output, when `--json` was asked for.
func reportJSON(_ errors: [LifeboatError], status: Int32) {
    guard CommandLine.arguments.contains("--json") else { return }
    struct Failure: Encodable {
        struct Item: Encodable {
            var code: String
            var message: String
            var hint: String?
        }
        var ok = false
        var exitStatus: Int32
        var error: Item
        var errors: [Item]
    }
    let items = errors.map { Failure.Item(code: $0.code.name, message: $0.message, hint: $0.hint) }
    guard let first = items.first else { return }
    do {
        try printJSON(Failure(exitStatus: status, error: first, errors: items))
    } catch {
        print(#"{"ok": false, "error": {"code": "internal", "message": "the error could not be written as JSON"}}"#)
    }
}

/// `lifeboat --config DIR wal-push …`, as archive_command is usually written: the options
/// every command takes may come before the command's name, where ArgumentParser does not
/// look for them; they are moved behind it.
func movingGlobalOptions(_ arguments: [String]) -> [String] {
    var leading: [String] = []
    var rest = arguments[...]
    while let first = rest.first {
        if first == "--verbose" || first.hasPrefix("--config=") {
            leading.append(first)
            rest = rest.dropFirst()
        } else if first == "--config", rest.count >= 2 {
            leading += rest.prefix(2)
            rest = rest.dropFirst(2)
        } else {
            break
        }
    }
    guard !leading.isEmpty, let command = rest.first, !command.hasPrefix("-") else { return arguments }
    // `export kubernetes|systemd`: the options go behind the subcommand, which declares them.
    let afterCommand = rest.dropFirst()
    if command == "export", let subcommand = afterCommand.first, !subcommand.hasPrefix("-") {
        return [command, subcommand] + leading + afterCommand.dropFirst()
    }
    return [command] + leading + afterCommand
}

ProcessMemory.configure()  // before any other thread: see ProcessMemory
Signals.install()
do {
    var command = try Lifeboat.parseAsRoot(movingGlobalOptions(Array(CommandLine.arguments.dropFirst())))
    try command.run()
    exit(0)
} catch let error as LifeboatError {
    // Cancelled by a signal: 128 + its number, and the one line says so. Cancelled for
    // another reason (the run lost its lock): a failed operation.
    let signal = error.code == .cancelled ? Signals.signal : nil
    let status = signal.map(Signals.exitStatus(for:)) ?? error.exitStatus
    reportJSON([error], status: status)
    report("\(signal == nil ? "error: " : "")\(error)")
    exit(status)
} catch let errors as LifeboatErrors {
    reportJSON(errors.errors, status: errors.exitStatus)
    for error in errors.errors { report("error: \(error)") }
    report("\(errors.errors.count) error\(errors.errors.count == 1 ? "" : "s") found")
    exit(errors.exitStatus)
} catch let code as ExitCode {
    exit(code.rawValue)
} catch {
    let code = Lifeboat.exitCode(for: error)
    if code == .success {
        print(Lifeboat.fullMessage(for: error))
        exit(0)
    }
    // ArgumentParser reports bad arguments as EX_USAGE (64): that is bad input, status 2 —
    // except for wal-fetch, whose every failure but "not archived" must stop recovery (126).
    var status = code == .validationFailure ? 2 : code.rawValue
    if CommandLine.arguments.contains("wal-fetch") { status = WALFetch.cannotDeliver }
    reportJSON([LifeboatError(.usage, Lifeboat.message(for: error), hint: "Run 'lifeboat help' for the commands and their options.")], status: status)
    report(Lifeboat.fullMessage(for: error))
    exit(status)
}
