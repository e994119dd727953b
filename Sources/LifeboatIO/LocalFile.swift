import Glibc
import LifeboatCore
import Synchronization

/// A plain file opened with `open(2)`, for the commands that PostgreSQL runs once per WAL
/// file: read from start to end (and at an offset), or created under a temporary name,
/// synced, and renamed into place. Use it from one thread; `close()` (or deinit) closes it.
public final class LocalFile {
    public let path: String
    private var fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    deinit { close() }

    /// Opens a file for reading; `.notFound` when it does not exist.
    public static func openForReading(_ path: String) throws -> LocalFile {
        var fd: Int32
        repeat { fd = open(path, O_RDONLY | O_CLOEXEC) } while fd < 0 && errno == EINTR
        if fd < 0 {
            let saved = errno
            throw LifeboatError(saved == ENOENT ? .notFound : .io, "unable to open file '\(path)' for read: \(errnoText(saved))",
                                hint: hintFor(errno: saved))
        }
        return LocalFile(path: path, fd: fd)
    }

    /// Creates a new file (mode 0600), failing when the name exists.
    public static func createNew(_ path: String, mode: mode_t = 0o600) throws -> LocalFile {
        let fd = try syscall("unable to create file '\(path)'") { open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode) }
        return LocalFile(path: path, fd: fd)
    }

    /// Reads into `buffer`; 0 at the end of the file.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try syscall("unable to read file '\(path)'") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// Up to `count` bytes from `offset` (fewer at the end of the file).
    public func read(at offset: Int64, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = try bytes.withUnsafeMutableBytes { buffer in
                try syscall("unable to read file '\(path)'") { pread(fd, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            }
            if n == 0 { break }
            done += n
        }
        return Array(bytes[0..<done])
    }

    /// The file's size and modification time (seconds since 1970) now.
    public func sizeAndModificationTime() throws -> (size: Int64, modified: Int64) {
        var st = stat()
        try syscall("unable to stat file '\(path)'") { fstat(fd, &st) }
        return (Int64(st.st_size), Int64(st.st_mtim.tv_sec))
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            offset += try syscall("unable to write file '\(path)'") { Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset) }
        }
    }

    public func sync() throws {
        try syscall("unable to sync file '\(path)'") { fsync(fd) }
    }

    public func close() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
    }

    // MARK: Paths

    /// `rename(2)`: replaces `destination` atomically.
    public static func rename(_ source: String, to destination: String) throws {
        try syscall("unable to rename '\(source)' to '\(destination)'") { Glibc.rename(source, destination) }
    }

    /// Removes a file; false when it was not there.
    @discardableResult
    public static func remove(_ path: String) throws -> Bool {
        if unlink(path) == 0 { return true }
        let saved = errno
        if saved == ENOENT { return false }
        throw LifeboatError(.io, "unable to remove file '\(path)': \(errnoText(saved))", hint: hintFor(errno: saved))
    }

    /// A whole small file (at most `limit` bytes are read), or nil when it does not exist.
    public static func contents(of path: String, limit: Int = 1 << 20) throws -> [UInt8]? {
        let file: LocalFile
        do {
            file = try openForReading(path)
        } catch let error as LifeboatError where error.code == .notFound {
            return nil
        }
        return try file.read(at: 0, count: limit)
    }

    /// Writes a small file under a temporary name beside `path` and renames it into place, so
    /// that a reader sees the old file or the new one, never a part. With `sync`, the bytes are
    /// on disk before the rename.
    public static func replace(_ path: String, with bytes: [UInt8], sync: Bool) throws {
        let temporary = temporaryName(beside: path)
        let file = try createNew(temporary)
        do {
            try bytes.withUnsafeBytes { try file.write($0) }
            if sync { try file.sync() }
            file.close()
            try rename(temporary, to: path)
        } catch {
            file.close()
            _ = try? remove(temporary)  // cleanup on a path that already failed; the cause is thrown
            throw error
        }
    }

    /// A name in the same directory as `path` that no other process picks: `.<name>.<pid>.<n>.tmp`.
    public static func temporaryName(beside path: String) -> String {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let n = temporaryCounter.add(1)
        return "\(directory).\(name).\(getpid()).\(n).tmp"
    }

    /// Removes the temporary files beside `path` (see `temporaryName(beside:)`) whose process
    /// is gone — what a run killed with SIGKILL left — and returns their names. Files of a
    /// process that still runs (or that this user may not signal) are left alone. Errors are
    /// ignored: this is cleanup, and a file that stays is only a file that stays.
    @discardableResult
    public static func removeStaleTemporaries(beside path: String) -> [String] {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let prefix = ".\(name)."
        guard let entries = try? directoryEntries(directory.isEmpty ? "/" : directory) else { return [] }
        var removed: [String] = []
        for entry in entries where entry.hasPrefix(prefix) && entry.hasSuffix(".tmp") {
            let fields = entry.dropFirst(prefix.count).dropLast(".tmp".count).split(separator: ".")
            guard fields.count == 2, let pid = pid_t(fields[0]), pid > 0, UInt64(fields[1]) != nil else { continue }
            guard kill(pid, 0) != 0, errno == ESRCH else { continue }
            if unlink(directory + "/" + entry) == 0 { removed.append(entry) }
        }
        return removed
    }
}

private let temporaryCounter = AtomicCounter()

/// A counter shared by threads (temporary names of files written at once).
private final class AtomicCounter: Sendable {
    private let value = Mutex<Int>(0)
    func add(_ n: Int) -> Int { value.withLock { $0 += n; return $0 } }
}

/// Appends one line to a private record file (run history, audit log, drill history): opened
/// with `O_APPEND` (so appenders never interleave within a line) and created 0600 — set
/// exactly, not left to the umask — then synced. A crash leaves at most a torn last line,
/// which the readers of these files skip (and the next append ends it first).
///
/// - Parameter what: the file, for messages (`the run history '…'`).
public func appendLine(_ line: [UInt8], toFile path: String, what: String, hint: String) throws {
    // Read as well as write: the last byte tells whether a crash left a torn line.
    let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
        let saved = errno
        throw LifeboatError(.io, "unable to open \(what): \(errnoText(saved))", hint: hint)
    }
    defer { close(fd) }
    _ = fchmod(fd, 0o600)
    try appendLine(line, fd: fd, what: what, hint: hint)
}

/// A line feed when the file open on `fd` (readable) ends in a line without one — the torn
/// last line of a write a crash cut short — so that a line appended after it stays readable;
/// otherwise nothing.
public func tornLineBreak(_ fd: Int32) -> [UInt8] {
    var info = stat()
    guard fstat(fd, &info) == 0, info.st_size > 0 else { return [] }
    var last: UInt8 = 0
    return pread(fd, &last, 1, info.st_size - 1) == 1 && last != UInt8(ascii: "\n") ? [UInt8(ascii: "\n")] : []
}

/// Writes `line` whole to `fd` (opened with `O_APPEND` and for reading), retrying short writes
/// and `EINTR`, then syncs it. When the file does not end in a newline — a crash tore its last
/// line — a newline goes first, so that the torn line stays alone (its readers skip it) and
/// does not swallow this one.
public func appendLine(_ line: [UInt8], fd: Int32, what: String, hint: String) throws {
    let line = tornLineBreak(fd) + line
    var written = 0
    while written < line.count {
        let n = line[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            let saved = errno
            if saved == EINTR { continue }
            throw LifeboatError(.io, "unable to append to \(what): \(errnoText(saved))", hint: hint)
        }
        written += n
    }
    _ = fsync(fd)
}
