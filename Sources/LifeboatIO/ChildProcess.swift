import CLifeboatSystem
import Foundation
import Glibc
import LifeboatCore
import Synchronization

/// A child process started with `posix_spawn`, with its standard streams wired to pipes.
///
/// - Standard input is `/dev/null` or a pipe written with `writeStdin(_:)`.
/// - Standard output is a pipe read with `readStdout(into:)`, `/dev/null`, or our own.
/// - Standard error is always captured: a dedicated thread drains it into a bounded buffer
///   (the last 64 KiB are kept), so the child never blocks on a full stderr pipe and
///   `stderrText` can explain a failure — or, with `stderrToStdout`, it goes into the stdout
///   pipe (a runbook's command, whose output is shown as a terminal would show it).
///
/// Every call blocks the calling thread; run children from threads of their own, never from
/// the cooperative pool. Our ends of the pipes are close-on-exec, so other children never
/// inherit them. `SIGPIPE` is ignored in this process (once, on the first spawn) so that a
/// child that stops reading makes `writeStdin` fail with `EPIPE` instead of killing us;
/// children get the default `SIGPIPE` disposition back.
///
/// Messages name the program and its arguments (or the redacted arguments the caller gave
/// as `displayArguments`), never the values of the environment, which can hold passwords.
///
/// A `ChildProcess` that is dropped before `wait()` kills the child (`SIGKILL`) and reaps
/// it, so that no zombie and no stray writer is left behind.
public final class ChildProcess: Sendable {
    /// Where the child's standard input comes from.
    public enum Input: Sendable {
        /// `/dev/null`: the child reads end of file at once.
        case null
        /// A pipe written with `writeStdin(_:)` and closed with `closeStdin()`.
        case pipe
    }

    /// Where the child's standard output goes.
    public enum Output: Sendable {
        /// A pipe read with `readStdout(into:)`.
        case pipe
        /// `/dev/null`.
        case null
        /// Our own standard output.
        case inherit
    }

    /// How a child ended.
    public enum Termination: Sendable, Hashable, CustomStringConvertible {
        /// The child exited with this status.
        case exited(Int32)
        /// The child was killed by this signal.
        case signaled(Int32)

        /// True when the child exited with status 0.
        public var isSuccess: Bool { self == .exited(0) }

        /// "exited with status 1", "was killed by signal 9".
        public var description: String {
            switch self {
            case .exited(let status): return "exited with status \(status)"
            case .signaled(let signal): return "was killed by signal \(signal)"
            }
        }
    }

    /// Bytes of standard error kept for messages (the tail).
    public static let stderrLimit = 64 * 1024

    /// The absolute path of the program.
    public let executable: String
    /// The process id of the child.
    public let pid: pid_t
    /// The program and its arguments for messages (redacted when the caller asked).
    public let commandDescription: String

    /// Our write end of the child's stdin, -1 once closed (or when stdin is /dev/null).
    /// The lock is held across a whole `writeStdin`, so a concurrent close waits for it.
    private let stdinFD: Mutex<Int32>
    /// Our read end of the child's stdout, -1 once closed (or when not piped).
    private let stdoutFD: Mutex<Int32>
    private let stderrDrain: StderrDrain
    private let state: Mutex<ProcessState>

    private struct ProcessState {
        /// Set once the child is reaped; after that, the pid may belong to someone else.
        var termination: Termination?
        /// The thread draining stderr; nil once joined.
        var drainThread: pthread_t?
    }

    private init(executable: String, pid: pid_t, commandDescription: String, stdinFD: Int32,
                 stdoutFD: Int32, stderrDrain: StderrDrain, drainThread: pthread_t) {
        self.executable = executable
        self.pid = pid
        self.commandDescription = commandDescription
        self.stdinFD = Mutex(stdinFD)
        self.stdoutFD = Mutex(stdoutFD)
        self.stderrDrain = stderrDrain
        self.state = Mutex(ProcessState(termination: nil, drainThread: drainThread))
    }

    deinit {
        closeStdin()
        closeStdout()
        state.withLock { state in
            guard state.termination == nil else { return }
            // Dropped without wait(): an error path of the caller. Do not leave the child
            // running (it could keep writing into a database) nor a zombie. There is no one
            // to report a failure of waitpid to (ECHILD: someone else reaped it).
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            state.termination = .signaled(SIGKILL)
        }
        joinDrainThread()
    }

    // MARK: Starting

    /// Starts `executable` (an absolute path) with `arguments`.
    ///
    /// - Parameters:
    ///   - environment: entries added to (or replacing those of) our own environment.
    ///     Their values never appear in messages.
    ///   - workingDirectory: the child's working directory; ours when nil.
    ///   - displayArguments: what to show instead of `arguments` in messages, when the
    ///     arguments hold something secret.
    ///   - stderrToStdout: the child's standard error goes into its stdout pipe (interleaved,
    ///     as a terminal shows them); `stderrText` is then empty. Needs `stdout: .pipe`.
    ///   - processGroup: the child leads a new process group (its id is the child's pid), so
    ///     that `kill(-pid, …)` reaches it and everything it started.
    /// - Throws: `LifeboatError(.process)` when the program cannot be started.
    public static func spawn(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        workingDirectory: String? = nil,
        stdin: Input = .null,
        stdout: Output = .pipe,
        displayArguments: [String]? = nil,
        stderrToStdout: Bool = false,
        processGroup: Bool = false
    ) throws -> ChildProcess {
        ChildProcess.ignoreSIGPIPE
        let description = ([executable] + (displayArguments ?? arguments)).joined(separator: " ")
        guard executable.hasPrefix("/") else {
            throw LifeboatError(
                .process, "unable to start '\(description)': the program is not an absolute path",
                hint: "Give the full path of the program.")
        }

        // Every descriptor opened here is closed on every path out of this function except
        // our own ends of the pipes, which the new ChildProcess then owns.
        var toClose: [Int32] = []
        defer { for fd in toClose { close(fd) } }

        var stdinPipe: (read: Int32, write: Int32)?
        if case .pipe = stdin {
            let ends = try makePipe(for: description)
            toClose += [ends.read, ends.write]
            stdinPipe = ends
        }
        var stdoutPipe: (read: Int32, write: Int32)?
        if case .pipe = stdout {
            let ends = try makePipe(for: description)
            toClose += [ends.read, ends.write]
            stdoutPipe = ends
        }
        let stderrPipe = try makePipe(for: description)
        toClose += [stderrPipe.read, stderrPipe.write]

        var actions = posix_spawn_file_actions_t()
        try check(posix_spawn_file_actions_init(&actions), "posix_spawn_file_actions_init", description)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 clears close-on-exec on the target; the pipe ends themselves stay
        // close-on-exec and disappear in the child at exec.
        if let stdinPipe {
            try check(posix_spawn_file_actions_adddup2(&actions, stdinPipe.read, 0), "posix_spawn_file_actions_adddup2", description)
        } else {
            try check(posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0), "posix_spawn_file_actions_addopen", description)
        }
        switch stdout {
        case .pipe:
            if let stdoutPipe {
                try check(posix_spawn_file_actions_adddup2(&actions, stdoutPipe.write, 1), "posix_spawn_file_actions_adddup2", description)
            }
        case .null:
            try check(posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0), "posix_spawn_file_actions_addopen", description)
        case .inherit:
            break
        }
        if stderrToStdout, let stdoutPipe {
            try check(posix_spawn_file_actions_adddup2(&actions, stdoutPipe.write, 2), "posix_spawn_file_actions_adddup2", description)
        } else {
            try check(posix_spawn_file_actions_adddup2(&actions, stderrPipe.write, 2), "posix_spawn_file_actions_adddup2", description)
        }
        // Whatever else this process has open (descriptors other libraries opened without
        // close-on-exec) is none of the child's business, and could keep a pipe from ending.
        try check(lifeboat_posix_spawn_file_actions_addclosefrom_np(&actions, 3),
                  "posix_spawn_file_actions_addclosefrom_np", description)
        if let workingDirectory {
            try check(workingDirectory.withCString { lifeboat_posix_spawn_file_actions_addchdir_np(&actions, $0) },
                      "posix_spawn_file_actions_addchdir_np", description)
        }

        var attributes = posix_spawnattr_t()
        try check(posix_spawnattr_init(&attributes), "posix_spawnattr_init", description)
        defer { posix_spawnattr_destroy(&attributes) }
        // We ignore SIGPIPE; ignored signals stay ignored across exec, so give the child the
        // default back. Also start the child with no signal blocked, whatever this thread has.
        var defaultSignals = sigset_t()
        sigemptyset(&defaultSignals)
        sigaddset(&defaultSignals, SIGPIPE)
        try check(posix_spawnattr_setsigdefault(&attributes, &defaultSignals), "posix_spawnattr_setsigdefault", description)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        try check(posix_spawnattr_setsigmask(&attributes, &noSignals), "posix_spawnattr_setsigmask", description)
        var flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK
        if processGroup {
            try check(posix_spawnattr_setpgroup(&attributes, 0), "posix_spawnattr_setpgroup", description)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        try check(posix_spawnattr_setflags(&attributes, Int16(flags)), "posix_spawnattr_setflags", description)

        let argv = [executable] + arguments
        let envp = mergedEnvironment(environment).map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let spawnResult = withCStringArray(argv) { argvPointer in
            withCStringArray(envp) { envpPointer in
                posix_spawn(&pid, executable, &actions, &attributes, argvPointer, envpPointer)
            }
        }
        if spawnResult != 0 {
            let reason = errnoText(spawnResult)
            let hint: String? = spawnResult == ENOENT
                ? "Check that the program is installed at \(executable)."
                : (spawnResult == EACCES ? "Check that \(executable) is executable by this user." : nil)
            throw LifeboatError(.process, "unable to start '\(description)': \(reason)", hint: hint)
        }

        // The child has its copies; close ours of the child's ends (the deferred close does
        // it), and keep our ends.
        var ourStdin: Int32 = -1
        if let stdinPipe {
            ourStdin = stdinPipe.write
            toClose.removeAll { $0 == stdinPipe.write }
        }
        var ourStdout: Int32 = -1
        if let stdoutPipe {
            ourStdout = stdoutPipe.read
            toClose.removeAll { $0 == stdoutPipe.read }
        }
        toClose.removeAll { $0 == stderrPipe.read }

        let drain = StderrDrain(fd: stderrPipe.read, limit: stderrLimit)
        let thread: pthread_t
        do {
            thread = try drain.start()
        } catch {
            // Without a drain the child could block on stderr forever: stop it now.
            close(stderrPipe.read)
            if ourStdin >= 0 { close(ourStdin) }
            if ourStdout >= 0 { close(ourStdout) }
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            throw LifeboatError(.process, "unable to start '\(description)': \(error)")
        }
        return ChildProcess(executable: executable, pid: pid, commandDescription: description,
                            stdinFD: ourStdin, stdoutFD: ourStdout, stderrDrain: drain,
                            drainThread: thread)
    }

    /// Runs a short program to its end with stdin from /dev/null, collecting all of its
    /// standard output. The exit status is returned, not checked.
    public static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        workingDirectory: String? = nil,
        displayArguments: [String]? = nil
    ) throws -> (status: Termination, stdout: String, stderr: String) {
        let child = try spawn(executable, arguments, environment: environment,
                              workingDirectory: workingDirectory, stdin: .null, stdout: .pipe,
                              displayArguments: displayArguments)
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = try chunk.withUnsafeMutableBytes { try child.readStdout(into: $0) }
            if count == 0 { break }
            output.append(contentsOf: chunk[0..<count])
        }
        let status = try child.wait()
        return (status, String(decoding: output, as: UTF8.self), child.stderrText)
    }

    // MARK: Streams

    /// Reads the next bytes of the child's standard output into `buffer`.
    /// Returns 0 at end of file (the child closed its stdout, usually by exiting).
    public func readStdout(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard buffer.count > 0 else { return 0 }
        return try stdoutFD.withLock { fd in
            guard fd >= 0 else {
                throw LifeboatError(.internalError, "reading the output of '\(commandDescription)': its standard output is not a pipe or was closed")
            }
            return try syscall("unable to read the output of '\(commandDescription)'", code: .process) {
                read(fd, buffer.baseAddress, buffer.count)
            }
        }
    }

    /// Writes all of `bytes` to the child's standard input.
    ///
    /// When the child has closed its standard input (usually because it failed and exited),
    /// throws `LifeboatError(.process)` whose message includes the tail of its stderr.
    public func writeStdin(_ bytes: UnsafeRawBufferPointer) throws {
        try stdinFD.withLock { fd in
            guard fd >= 0 else {
                throw LifeboatError(.internalError, "writing to '\(commandDescription)': its standard input is not a pipe or was closed")
            }
            var offset = 0
            while offset < bytes.count {
                let count = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if count >= 0 {
                    offset += count
                    continue
                }
                let code = errno
                if code == EINTR { continue }
                if code == EPIPE {
                    // The child stopped reading; it is most likely exiting. Give it a moment
                    // to finish writing its error so that the message can say why.
                    stderrDrain.waitForEnd(timeoutMilliseconds: 2000)
                    throw LifeboatError(
                        .process,
                        "'\(commandDescription)' stopped reading its input\(Self.stderrSuffix(stderrText))")
                }
                throw LifeboatError(.process, "unable to write to '\(commandDescription)': \(errnoText(code))")
            }
        }
    }

    /// Closes our end of the child's standard input: the child reads end of file.
    /// Does nothing when it is already closed.
    public func closeStdin() {
        stdinFD.withLock { fd in
            if fd >= 0 {
                close(fd)
                fd = -1
            }
        }
    }

    /// The last 64 KiB of what the child wrote to standard error so far (lossy UTF-8).
    public var stderrText: String { stderrDrain.text }

    // MARK: Ending

    /// Waits for the child to end and returns how it ended. Calling it again returns the
    /// same answer.
    ///
    /// Closes our end of stdin first (a child waiting for more input would never end) and,
    /// after the child ended, our end of stdout. Read stdout to its end before waiting: a
    /// child blocked writing to a full stdout pipe never ends.
    public func wait() throws -> Termination {
        closeStdin()
        if let done = state.withLock({ $0.termination }) { return done }

        // Block until the child has ended without reaping it, so that terminate() can never
        // signal a recycled pid: the zombie is only reaped under the state lock.
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 {
            let code = errno
            if code == EINTR { continue }
            if code == ECHILD { break }  // Reaped by another thread's wait(); reap() says how.
            throw LifeboatError(.process, "unable to wait for '\(commandDescription)': \(errnoText(code))")
        }
        let termination = try reap()
        closeStdout()
        joinDrainThread()
        return termination
    }

    /// Asks the child to stop (`SIGTERM`). Does nothing once the child has been reaped.
    /// Never throws: it is meant for error and cancellation paths. Call `wait()` afterwards.
    public func terminate() {
        state.withLock { state in
            if state.termination == nil {
                kill(pid, SIGTERM)
            }
        }
    }

    /// Stops the child from any thread without blocking: `SIGTERM` now (PostgreSQL's client
    /// programs then cancel their query on the server and exit), and `SIGKILL` if it has not
    /// ended `grace` seconds later. Whoever runs the child still calls `wait()`.
    public func stop(grace: Double = 1.0) {
        terminate()
        let thread = Thread { [self] in
            var waited = 0.0
            while waited < grace {
                if hasEnded { return }
                usleep(20_000)
                waited += 0.02
            }
            state.withLock { state in
                if state.termination == nil { kill(pid, SIGKILL) }
            }
        }
        thread.name = "lifeboat-child-stop"
        thread.start()
    }

    /// Whether the child has ended (without reaping it, so that `wait()` still can).
    private var hasEnded: Bool {
        state.withLock { state in
            if state.termination != nil { return true }
            var info = siginfo_t()
            return waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info._sifields._sigchld.si_pid == pid
        }
    }

    /// Reaps the child (blocking until it ended) and records how it ended.
    @discardableResult
    private func reap() throws -> Termination {
        try state.withLock { state in
            if let done = state.termination { return done }
            var status: Int32 = 0
            try syscall("unable to wait for '\(commandDescription)'", code: .process) { waitpid(pid, &status, 0) }
            let termination: Termination
            if status & 0x7f == 0 {
                termination = .exited((status >> 8) & 0xff)  // WIFEXITED / WEXITSTATUS
            } else {
                termination = .signaled(status & 0x7f)  // WTERMSIG
            }
            state.termination = termination
            return termination
        }
    }

    private func closeStdout() {
        stdoutFD.withLock { fd in
            if fd >= 0 {
                close(fd)
                fd = -1
            }
        }
    }

    /// Ends the stderr drain (the child has ended) and joins its thread, once.
    private func joinDrainThread() {
        stderrDrain.childEnded()
        let thread = state.withLock { state -> pthread_t? in
            defer { state.drainThread = nil }
            return state.drainThread
        }
        if let thread {
            pthread_join(thread, nil)
        }
    }

    // MARK: Helpers

    private static let ignoreSIGPIPE: Void = {
        signal(SIGPIPE, SIG_IGN)
    }()

    /// "": nothing on stderr; otherwise ": <stderr tail, trimmed>".
    static func stderrSuffix(_ text: String) -> String {
        let trimmed = text.trimmedOfWhitespace()
        return trimmed.isEmpty ? "" : ": \(trimmed)"
    }

    private static func makePipe(for description: String) throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        _ = try fds.withUnsafeMutableBufferPointer { fds in
            try syscall("unable to create a pipe for '\(description)'", code: .process) {
                lifeboat_pipe2(fds.baseAddress!, O_CLOEXEC)
            }
        }
        return (fds[0], fds[1])
    }

    /// Checks the result of a posix_spawn* call, which returns an error number.
    private static func check(_ result: Int32, _ call: String, _ description: String) throws {
        if result != 0 {
            throw LifeboatError(.process, "unable to start '\(description)': \(call): \(errnoText(result))")
        }
    }

    private static func mergedEnvironment(_ extra: [String: String]) -> [(key: String, value: String)] {
        var merged: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") {
                merged[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            entry += 1
        }
        for (key, value) in extra { merged[key] = value }
        return merged.sorted { $0.key < $1.key }
    }
}

/// Calls `body` with a NULL-terminated array of C strings that live for the call.
private func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

extension String {
    /// The string without leading and trailing spaces, tabs and newlines.
    fileprivate func trimmedOfWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let start = firstIndex(where: { !isSpace($0) }),
              let end = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[start...end])
    }
}

/// Drains a child's stderr pipe on a thread of its own into a bounded buffer.
///
/// The thread polls with a short timeout so that it also ends when the child has ended but
/// a grandchild still holds the pipe open (everything the child wrote is in the pipe by then).
private final class StderrDrain: Sendable {
    private struct Buffer {
        var bytes: [UInt8] = []
        var truncated = false
        var childEnded = false
        var finished = false
    }

    private let fd: Int32
    private let limit: Int
    private let buffer = Mutex(Buffer())

    init(fd: Int32, limit: Int) {
        self.fd = fd
        self.limit = limit
    }

    var text: String {
        buffer.withLock { buffer in
            let text = String(decoding: buffer.bytes, as: UTF8.self)
            return buffer.truncated ? "…" + text : text
        }
    }

    /// Tells the drain that the child has ended: once the pipe is empty, stop waiting for a
    /// grandchild to close it.
    func childEnded() {
        buffer.withLock { $0.childEnded = true }
    }

    /// Waits until the drain saw end of file, at most `timeoutMilliseconds`.
    func waitForEnd(timeoutMilliseconds: Int) {
        var waited = 0
        while waited < timeoutMilliseconds && !buffer.withLock({ $0.finished }) {
            usleep(10_000)
            waited += 10
        }
    }

    /// Starts the draining thread. It closes the descriptor when it ends.
    func start() throws -> pthread_t {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { raw in
            let drain = Unmanaged<StderrDrain>.fromOpaque(raw!).takeRetainedValue()
            drain.run()
            return nil
        }, context)
        if result != 0 {
            Unmanaged<StderrDrain>.fromOpaque(context).release()
            throw LifeboatError(.process, "unable to start a thread to read standard error: \(errnoText(result))")
        }
        return thread
    }

    private func run() {
        defer {
            close(fd)
            buffer.withLock { $0.finished = true }
        }
        var chunk = [UInt8](repeating: 0, count: 8192)
        while true {
            var pollFD = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pollFD, 1, 100)
            if ready < 0 {
                if errno == EINTR { continue }
                return
            }
            if ready == 0 {
                if buffer.withLock({ $0.childEnded }) { return }
                continue
            }
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return
            }
            if count == 0 { return }
            append(chunk[0..<count])
        }
    }

    private func append(_ bytes: ArraySlice<UInt8>) {
        buffer.withLock { buffer in
            buffer.bytes.append(contentsOf: bytes)
            if buffer.bytes.count > limit {
                buffer.bytes.removeFirst(buffer.bytes.count - limit)
                buffer.truncated = true
            }
        }
    }
}
