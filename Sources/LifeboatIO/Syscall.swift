import CLifeboatSystem
import Glibc
import LifeboatCore

/// The text of an errno value, read at once (the next call may change errno).
public func errnoText(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}

/// Runs a system call, retrying on EINTR, and turns a -1 into a `LifeboatError` whose message
/// says what was being done to which object ("unable to open file '/x' for write: …").
@discardableResult
func syscall<T: BinaryInteger>(
    _ what: @autoclosure () -> String, code: LifeboatError.Code = .io, hint: String? = nil, _ body: () -> T
) throws -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let saved = errno
        if saved == EINTR { continue }
        throw LifeboatError(code, "\(what()): \(errnoText(saved))", hint: hint ?? hintFor(errno: saved))
    }
}

func hintFor(errno code: Int32) -> String? {
    switch code {
    case EACCES, EPERM: return "Check the permissions of the path and the user Lifeboat runs as."
    case ENOSPC: return "The filesystem is full: free space or choose another repository path."
    case EROFS: return "The filesystem is mounted read-only."
    default: return nil
    }
}

/// Creates a directory and its parents (like `mkdir -p`).
public func makeDirectories(_ path: String, mode: mode_t = 0o755) throws {
    var current = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/") {
        current += "/" + component
        if mkdir(current, mode) == 0 { continue }
        let saved = errno
        if saved == EEXIST {
            var st = stat()
            if stat(current, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR { continue }
            throw LifeboatError(.io, "unable to create directory '\(current)': a file is in the way")
        }
        throw LifeboatError(.io, "unable to create directory '\(current)': \(errnoText(saved))", hint: hintFor(errno: saved))
    }
}

/// fsync of a directory, so that a rename or a new entry in it survives a crash.
func syncDirectory(_ path: String) throws {
    let fd = try syscall("unable to open directory '\(path)' to sync it") { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
    defer { close(fd) }
    try syscall("unable to sync directory '\(path)'") { fsync(fd) }
}

/// `syncDirectory`, but false instead of an error when the directory does not exist (anymore).
func syncDirectory(ifPresent path: String) throws -> Bool {
    var fd: Int32
    repeat {
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    } while fd < 0 && errno == EINTR
    if fd < 0 {
        let saved = errno
        if saved == ENOENT { return false }
        throw LifeboatError(.io, "unable to open directory '\(path)' to sync it: \(errnoText(saved))", hint: hintFor(errno: saved))
    }
    defer { close(fd) }
    try syscall("unable to sync directory '\(path)'") { fsync(fd) }
    return true
}

/// `lstat` of a path: nil when it does not exist, an error for anything else.
func fileStatus(_ path: String, followLinks: Bool = false) throws -> stat? {
    var st = stat()
    if (followLinks ? stat(path, &st) : lstat(path, &st)) == 0 { return st }
    let saved = errno
    if saved == ENOENT || saved == ENOTDIR { return nil }
    throw LifeboatError(.io, "unable to stat '\(path)': \(errnoText(saved))", hint: hintFor(errno: saved))
}

public func isDirectory(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
}

/// The permission bits of a file (after following links); nil when there is none.
public func filePermissions(_ path: String) throws -> UInt32? {
    try fileStatus(path, followLinks: true).map { UInt32($0.st_mode) & 0o7777 }
}

public func pathExists(_ path: String) -> Bool {
    var st = stat()
    return lstat(path, &st) == 0
}

/// Names in a directory (without `.` and `..`), sorted; empty when the directory does not exist.
public func directoryEntries(_ path: String) throws -> [String] {
    guard let dir = opendir(path) else {
        let saved = errno
        if saved == ENOENT || saved == ENOTDIR { return [] }
        throw LifeboatError(.io, "unable to list directory '\(path)': \(errnoText(saved))", hint: hintFor(errno: saved))
    }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafePointer(to: entry.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}

/// Reads a whole (small) file as UTF-8.
public func readTextFile(_ path: String) throws -> String {
    let fd = try syscall("unable to open file '\(path)' for read") { open(path, O_RDONLY | O_CLOEXEC) }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 64 << 10)
    while true {
        let n = try buffer.withUnsafeMutableBytes { b in
            try syscall("unable to read file '\(path)'") { read(fd, b.baseAddress, b.count) }
        }
        if n == 0 { break }
        bytes.append(contentsOf: buffer[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// An exclusive `flock(2)` on a directory, held until `release()` (or the process ends: the
/// kernel drops it with the descriptor, so a crash leaves nothing behind).
/// Writes every dirty page of the file system holding `directory` to disk (`syncfs(2)`): one
/// call where a restore would otherwise `fsync` each of thousands of files and directories.
public func syncFileSystem(of directory: String) throws {
    let fd = try syscall("unable to open '\(directory)' to sync it") { open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
    defer { close(fd) }
    guard lifeboat_syncfs(fd) == 0 else {
        let saved = errno
        throw LifeboatError(.io, "unable to sync the file system of '\(directory)' to disk: \(errnoText(saved))",
                            hint: "What was written may not be durable: check the disk, and run the command again.")
    }
}

public final class DirectoryLock {
    private var fd: Int32

    /// Locks `path` without waiting; nil when another process holds the lock.
    public static func tryExclusive(_ path: String) throws -> DirectoryLock? {
        let fd = try syscall("unable to open directory '\(path)'") { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let saved = errno
            if saved == EINTR { continue }
            close(fd)
            if saved == EWOULDBLOCK { return nil }
            throw LifeboatError(.io, "unable to lock directory '\(path)': \(errnoText(saved))", hint: hintFor(errno: saved))
        }
        return DirectoryLock(fd: fd)
    }

    private init(fd: Int32) { self.fd = fd }

    deinit { release() }

    public func release() {
        if fd >= 0 {
            close(fd)
            fd = -1
        }
    }
}
