import Glibc
import LifeboatCore

/// A repository on a local (or mounted) filesystem: each key is a file under `root`.
///
/// Objects appear atomically: a writer writes a temporary file beside the final name
/// (`.NAME.tmp-PID-RANDOM`), fsyncs it, renames it into place and fsyncs the directory.
/// Temporary files are never listed; a crash leaves them for `prune` to collect.
public struct LocalStore: ObjectStore {
    public let root: String

    public init(root: String) {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    public var location: String { root }

    static let temporaryMarker = ".tmp-"

    func path(_ key: String) throws -> String {
        let components = key.split(separator: "/", omittingEmptySubsequences: false)
        guard !key.isEmpty, !key.hasPrefix("/"), !components.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw LifeboatError(.internalError, "invalid object key '\(key)'")
        }
        return root + "/" + key
    }

    public func list(prefix: String) throws -> [ObjectInfo] {
        // Walk from the deepest directory the prefix names, then filter by the full prefix.
        let directoryPart = prefix.split(separator: "/", omittingEmptySubsequences: true)
            .dropLast(prefix.hasSuffix("/") || prefix.isEmpty ? 0 : 1).joined(separator: "/")
        var results: [ObjectInfo] = []
        try walk(directoryKey: directoryPart, into: &results)
        return results.filter { $0.key.hasPrefix(prefix) }.sorted { $0.key < $1.key }
    }

    private func walk(directoryKey: String, into results: inout [ObjectInfo]) throws {
        let directory = directoryKey.isEmpty ? root : root + "/" + directoryKey
        for name in try directoryEntries(directory) {
            if name.hasPrefix("."), name.contains(Self.temporaryMarker) { continue }
            let key = directoryKey.isEmpty ? name : directoryKey + "/" + name
            guard let st = try fileStatus(root + "/" + key) else { continue }  // deleted while listing
            switch st.st_mode & S_IFMT {
            case S_IFDIR: try walk(directoryKey: key, into: &results)
            case S_IFREG: results.append(ObjectInfo(key: key, size: Int64(st.st_size)))
            default: continue
            }
        }
    }

    public func stat(key: String) throws -> ObjectInfo? {
        guard let st = try fileStatus(try path(key), followLinks: true) else { return nil }
        return ObjectInfo(key: key, size: Int64(st.st_size))
    }

    public func openWriter(key: String) throws -> any ObjectWriter {
        let path = try path(key)
        let (directory, name) = split(path)
        try makeDirectories(directory)
        return try LocalObjectWriter(key: key, directory: directory, name: name)
    }

    public func openReader(key: String) throws -> any ObjectReader {
        let path = try path(key)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let saved = errno
            if saved == ENOENT || saved == ENOTDIR {
                throw LifeboatError(.notFound, "object '\(key)' does not exist in repository \(root)")
            }
            throw LifeboatError(.storage, "unable to open file '\(path)' for read: \(errnoText(saved))", hint: hintFor(errno: saved))
        }
        return LocalObjectReader(key: key, path: path, fd: fd)
    }

    public func put(key: String, bytes: [UInt8], ifAbsent: Bool) throws {
        let path = try path(key)
        let (directory, name) = split(path)
        try makeDirectories(directory)
        let writer = try LocalObjectWriter(key: key, directory: directory, name: name)
        do {
            try bytes.withUnsafeBytes { try writer.write($0) }
            try writer.commit(replacing: !ifAbsent)
        } catch {
            writer.abort()
            throw error
        }
    }

    public func delete(keys: [String]) throws {
        var directories: Set<String> = []
        for key in keys {
            let path = try path(key)
            if unlink(path) != 0 {
                let saved = errno
                if saved == ENOENT { continue }
                throw LifeboatError(.storage, "unable to delete '\(path)': \(errnoText(saved))", hint: hintFor(errno: saved))
            }
            directories.insert(split(path).directory)
        }
        // Remove directories the deletions left empty, deepest first, never the root.
        for directory in directories.sorted(by: { $0.count > $1.count }) {
            var current = directory
            while current.count > root.count, current.hasPrefix(root + "/"), rmdir(current) == 0 {
                current = split(current).directory
            }
        }
    }

    func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = String(path[..<slash])
        return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
    }
}

/// Writes to a temporary file; `commit` makes it durable and gives it its name.
final class LocalObjectWriter: ObjectWriter {
    let key: String
    let directory: String
    let finalPath: String
    let temporaryPath: String
    private var fd: Int32

    init(key: String, directory: String, name: String) throws {
        self.key = key
        self.directory = directory
        self.finalPath = directory + "/" + name
        let random = UInt64.random(in: 0...UInt64.max)
        self.temporaryPath = "\(directory)/.\(name)\(LocalStore.temporaryMarker)\(getpid())-\(String(random, radix: 36))"
        let temporaryPath = self.temporaryPath
        fd = try syscall("unable to create file '\(temporaryPath)'", code: .storage) {
            open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        }
    }

    deinit { abort() }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard fd >= 0 else { throw LifeboatError(.internalError, "write to '\(finalPath)' after it was closed") }
        var offset = 0
        while offset < bytes.count {
            let n = try syscall("unable to write file '\(temporaryPath)'", code: .storage) {
                Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            }
            offset += n
        }
    }

    func commit() throws { try commit(replacing: true) }

    /// Makes the data durable, then gives it its final name: rename (replacing) or link
    /// (failing when the name exists, which makes a commit point that cannot be overwritten).
    func commit(replacing: Bool) throws {
        guard fd >= 0 else { throw LifeboatError(.internalError, "commit of '\(finalPath)' after it was closed") }
        let temporaryPath = temporaryPath, finalPath = finalPath
        try syscall("unable to sync file '\(temporaryPath)'", code: .storage) { fsync(fd) }
        close(fd)
        fd = -1
        if replacing {
            try syscall("unable to rename '\(temporaryPath)' to '\(finalPath)'", code: .storage) { rename(temporaryPath, finalPath) }
        } else {
            if link(temporaryPath, finalPath) != 0 {
                let saved = errno
                unlink(temporaryPath)
                if saved == EEXIST {
                    throw LifeboatError(.storage, "'\(finalPath)' already exists; it is never overwritten",
                                        hint: "Another Lifeboat process may be writing the same backup; run it again.")
                }
                throw LifeboatError(.storage, "unable to link '\(finalPath)': \(errnoText(saved))", hint: hintFor(errno: saved))
            }
            unlink(temporaryPath)
        }
        try syncDirectory(directory)
    }

    func abort() {
        if fd >= 0 {
            close(fd)
            fd = -1
            unlink(temporaryPath)
        }
    }
}

final class LocalObjectReader: ObjectReader {
    let key: String
    let path: String
    private var fd: Int32

    init(key: String, path: String, fd: Int32) {
        self.key = key
        self.path = path
        self.fd = fd
    }

    deinit { close() }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard fd >= 0 else { return 0 }
        return try syscall("unable to read file '\(path)'", code: .storage) { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    func close() {
        if fd >= 0 {
            _ = Glibc.close(fd)
            fd = -1
        }
    }
}
