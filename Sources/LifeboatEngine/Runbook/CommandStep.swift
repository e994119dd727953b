import Foundation
import Glibc
import LifeboatCore
import LifeboatIO
import Logging
import Synchronization

/// Runs a runbook's `run:` step (and `command` checks): the program and its arguments with no
/// shell — or `/bin/sh -c` when the runbook asked for `shell:` —, with its environment and
/// working directory, under a timeout.
///
/// The child leads a process group of its own, so that a timeout or a cancellation reaches
/// everything it started: `SIGTERM` to the group, then `SIGKILL` to the group after `grace`
/// seconds. Standard output and error arrive through one pipe; each line goes to the log as it
/// comes (`step.id` in its metadata) and the last `outputLimit` bytes are kept for the report.
public struct CommandStep: Sendable {
    /// A command with every template resolved, ready to start.
    public struct Invocation: Sendable, Equatable {
        /// Absolute path of the program.
        public var executable: String
        public var arguments: [String]
        /// Added to (or replacing entries of) Lifeboat's environment.
        public var environment: [String: String]
        public var workingDirectory: String
        /// For messages: the program and arguments as written (`sh -c '…'` for a shell).
        public var display: String

        public init(executable: String, arguments: [String], environment: [String: String] = [:], workingDirectory: String,
                    display: String) {
            self.executable = executable
            self.arguments = arguments
            self.environment = environment
            self.workingDirectory = workingDirectory
            self.display = display
        }
    }

    /// How the command ended.
    public struct Result: Sendable {
        public var termination: ChildProcess.Termination
        /// The timeout ran out and the process group was stopped.
        public var timedOut: Bool
        /// The last `outputLimit` bytes of its output (stdout and stderr interleaved).
        public var output: String
        public var seconds: Double

        public var passed: Bool { !timedOut && termination.isSuccess }

        public var outcome: StepResult.Outcome {
            if timedOut { return .timedOut }
            return termination.isSuccess ? .passed : .failed
        }

        /// "exited with status 0", "timed out after 5 s (the process group was stopped)",
        /// with the output's last line when it failed.
        public var detail: String {
            var text = timedOut ? "timed out after \(String(format: "%.0f", seconds)) s (its process group was stopped)"
                : termination.description
            if !passed, let last = output.split(separator: "\n").last(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }) {
                text += ": \(last)"
            }
            return text
        }
    }

    public let context: RunContext
    /// Seconds between `SIGTERM` and `SIGKILL` when the command is stopped.
    public var grace: Double
    /// Bytes of output kept for the report.
    public var outputLimit: Int
    /// `step.id` in the log lines of the output.
    public var stepID: String

    public init(context: RunContext, stepID: String, grace: Double = 5, outputLimit: Int = 16 * 1024) {
        self.context = context
        self.stepID = stepID
        self.grace = grace
        self.outputLimit = outputLimit
    }

    /// Resolves `spec`'s templates with `variables`, finds the program (an absolute path, a
    /// path relative to the working directory, or a name looked up in `PATH`) and the working
    /// directory (relative to the configuration directory).
    ///
    /// - Throws: `LifeboatError(.usage)` for a variable without a value, `.notFound` for a
    ///   program that is not found.
    public static func invocation(_ spec: CommandSpec, variables: RunbookVariables, environment: [String: String]) throws -> Invocation {
        var workingDirectory = spec.baseDirectory
        if let cwd = spec.workingDirectory {
            let text = try variables.resolve(cwd)
            workingDirectory = text.hasPrefix("/") ? text : URL(fileURLWithPath: spec.baseDirectory).appendingPathComponent(text).standardizedFileURL.path
        }
        var childEnvironment: [String: String] = [:]
        for (name, template) in spec.environment { childEnvironment[name] = try variables.resolve(template) }
        let words: [String]
        let display: String
        switch spec.program {
        case .argv(let templates):
            words = try templates.map { try variables.resolve($0) }
            display = words.map(RecoveryOptions.shellQuoted).joined(separator: " ")
        case .shell(let template):
            let script = try variables.resolve(template)
            words = ["/bin/sh", "-c", script]
            display = "sh -c \(RecoveryOptions.shellQuoted(script))"
        }
        let path = childEnvironment["PATH"] ?? environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        let executable = try locate(words[0], workingDirectory: workingDirectory, path: path)
        return Invocation(executable: executable, arguments: Array(words.dropFirst()), environment: childEnvironment,
                          workingDirectory: workingDirectory, display: display)
    }

    static func locate(_ program: String, workingDirectory: String, path: String) throws -> String {
        if program.hasPrefix("/") { return program }
        if program.contains("/") {
            return URL(fileURLWithPath: workingDirectory).appendingPathComponent(program).standardizedFileURL.path
        }
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(program)"
            var info = stat()
            if stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 { return candidate }
        }
        throw LifeboatError(.notFound, "program '\(program)' not found in PATH (\(path))",
                            hint: "Install it, or give its absolute path in the runbook.")
    }

    /// Runs the command to its end, or until `timeout` seconds have passed.
    ///
    /// - Throws: `LifeboatError(.process)` when it cannot be started; `.cancelled` when the
    ///   run was cancelled (the process group is stopped first).
    public func run(_ invocation: Invocation, timeout: Double?) throws -> Result {
        try context.cancellation.checkCancelled()
        let started = Date()
        let child = try ChildProcess.spawn(invocation.executable, invocation.arguments, environment: invocation.environment,
                                           workingDirectory: invocation.workingDirectory, stdin: .null, stdout: .pipe,
                                           displayArguments: nil, stderrToStdout: true, processGroup: true)
        let guardian = GroupGuardian(group: child.pid, grace: grace)
        let deadline = timeout.map { started.addingTimeInterval($0) }
        guardian.start(deadline: deadline)
        let handler = context.cancellation.onCancel { guardian.trigger(.cancelled) }
        defer { context.cancellation.removeHandler(handler) }

        var tail: [UInt8] = []
        var line: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        let logger = context.with(metadata: "step.id", stepID).logger
        logger.info("command started", metadata: ["command": "\(Secrets.redact(invocation.display))", "pid": "\(child.pid)"])
        func emit(_ bytes: [UInt8]) {
            logger.info("\(Secrets.redact(String(decoding: bytes, as: UTF8.self)))")
        }
        var readError: (any Error)?
        while true {
            let count: Int
            do {
                count = try buffer.withUnsafeMutableBytes { try child.readStdout(into: $0) }
            } catch {
                readError = error
                guardian.trigger(.failed)
                break
            }
            if count == 0 { break }
            let chunk = buffer[0..<count]
            tail.append(contentsOf: chunk)
            if tail.count > 2 * outputLimit { tail.removeFirst(tail.count - outputLimit) }
            for byte in chunk {
                if byte == UInt8(ascii: "\n") {
                    emit(line)
                    line.removeAll(keepingCapacity: true)
                } else if line.count < 4096 {
                    line.append(byte)
                }
            }
        }
        if !line.isEmpty { emit(line) }
        // Wait for the leader's end without reaping it: until it is reaped its pid (the group's
        // id) cannot be reused, so the guardian's signals can only reach this group.
        var info = siginfo_t()
        while waitid(P_PID, id_t(child.pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
        let reason = guardian.finish()
        let termination = try child.wait()
        if let readError { throw readError }
        if tail.count > outputLimit { tail.removeFirst(tail.count - outputLimit) }
        let result = Result(termination: termination, timedOut: reason == .timeout, output: Secrets.redact(String(decoding: tail, as: UTF8.self)),
                            seconds: Date().timeIntervalSince(started))
        if reason == .cancelled {
            throw LifeboatError(.cancelled, "'\(invocation.display)' was stopped: the run was cancelled (\(context.cancellation.reason ?? "cancelled"))")
        }
        return result
    }
}

/// Stops a process group when its deadline passes or when asked, on a thread of its own:
/// `SIGTERM` to the group, `SIGKILL` to it after the grace period — never after `finish()`,
/// which the caller calls before reaping the group's leader.
public final class GroupGuardian: @unchecked Sendable {
    enum Reason: Sendable { case timeout, cancelled, failed }

    private let condition = NSCondition()
    private let group: pid_t
    private let grace: Double
    // Guarded by `condition`.
    private var finished = false
    private var reason: Reason?
    private let done = DispatchSemaphore(value: 0)

    init(group: pid_t, grace: Double) {
        self.group = group
        self.grace = grace
    }

    func start(deadline: Date?) {
        Self.running.withLock { _ = $0.insert(group) }
        let thread = Thread { [self] in
            defer { done.signal() }
            condition.lock()
            defer { condition.unlock() }
            while !finished && reason == nil {
                if let deadline {
                    if !condition.wait(until: deadline), !finished, reason == nil { reason = .timeout }
                } else {
                    condition.wait()
                }
            }
            guard !finished else { return }
            kill(-group, SIGTERM)
            let killAt = Date().addingTimeInterval(grace)
            while !finished {
                if !condition.wait(until: killAt) { break }
            }
            guard !finished else { return }
            kill(-group, SIGKILL)
        }
        thread.name = "lifeboat-command-guard"
        thread.start()
    }

    /// The groups of the commands running now (their leaders not yet reaped, so the ids are
    /// still theirs).
    private static let running = Mutex<Set<pid_t>>([])

    /// `SIGKILL` to the group of every command running now: for a process about to end at once
    /// (a second signal, or a cleanup past its deadline), so that no command outlives it
    /// unwatched — and none is still running when `recover --resume` starts its step again.
    public static func killRunningGroups() {
        for group in running.withLock({ $0 }) { kill(-group, SIGKILL) }
    }

    /// Stops the group now (the first reason given is kept).
    func trigger(_ why: Reason) {
        condition.lock()
        if reason == nil && !finished { reason = why }
        condition.broadcast()
        condition.unlock()
    }

    /// The leader has ended: no more signals. Returns why the group was stopped, if it was.
    func finish() -> Reason? {
        Self.running.withLock { _ = $0.remove(group) }
        condition.lock()
        finished = true
        let why = reason
        condition.broadcast()
        condition.unlock()
        done.wait()
        return why
    }
}
