import Foundation
import Glibc
import LifeboatCore

/// A repository on a local (or mounted) filesystem: each key is a file under `root`.
///
/// Objects appear atomically: a writer writes a temporary file beside the final name
/// (`.NAME.tmp-PID-RANDOM`), fsyncs it, renames it into place (or links it, for a conditional
/// write: `link(2)` fails when the name exists) and fsyncs the directory. Temporary files are
/// never listed; a crash leaves them for `prune` to collect.
///
/// What Lifeboat creates here is for its own user only: objects 0600, directories 0700, set
/// explicitly whatever the umask.
///
/// Listing walks the tree lazily in byte order of keys: each directory's entries sorted by
/// name, a directory compared as `name/` (so `a-c` comes before `a/b`), subtrees wholly before
/// the page skipped unread, and a directory that becomes a common prefix not descended into.
/// Only the entries of the directories on the current path are in memory, never the tree.
public struct LocalStore: ObjectStore {
    public let root: String

    public init(root: String) {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    public var location: String { root }

    /// Conditional writes through `link(2)`; a copy passes the bytes through this process.
    public var features: StoreFeatures { [.conditionalWrite] }

    static let temporaryMarker = ".tmp-"
    static let objectMode: mode_t = 0o600
    static let directoryMode: mode_t = 0o700

    func path(_ key: String) throws -> String {
        let components = key.split(separator: "/", omittingEmptySubsequences: false)
        guard !key.isEmpty, !components.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw LifeboatError(.internalError, "invalid object key '\(key)'")
        }
        return root + "/" + key
    }

    // MARK: Listing

    public func listPage(_ request: ListRequest) throws -> ListPage {
        try request.validate(in: location)
        var builder = ListPageBuilder(request)
        // Start in the deepest directory the prefix names whole ("pg/backups/2026" → "pg/backups/").
        let prefix = Array(request.prefix.utf8)
        let directoryKey = Array(prefix[..<((prefix.lastIndex(of: UInt8(ascii: "/")) ?? -1) + 1)])
        if !directoryKey.isEmpty {
            let components = directoryKey.dropLast().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
            // No key has an empty, `.` or `..` segment: such a prefix matches nothing.
            if components.contains(where: { $0.isEmpty || $0.elementsEqual([0x2E]) || $0.elementsEqual([0x2E, 0x2E]) }) {
                return builder.page
            }
        }
        _ = try walk(directoryKey: directoryKey, &builder)
        return builder.page
    }

    /// Offers the objects of one directory (whose key, empty or ending in `/`, is
    /// `directoryKey`) in key order. Returns false when the page is full.
    private func walk(directoryKey: [UInt8], _ builder: inout ListPageBuilder) throws -> Bool {
        for entry in try entries(of: directoryKey).sorted(by: { KeyOrder.precedes($0.sortKey, $1.sortKey) }) {
            if entry.isDirectory {
                let subtree = directoryKey + entry.name + [UInt8(ascii: "/")]
                switch builder.decide(subtree: subtree) {
                case .skip:
                    continue
                case .descend:
                    guard try walk(directoryKey: subtree, &builder) else { return false }
                case .rollUp(let commonPrefix):
                    guard try containsObject(directoryKey: subtree) else { continue }
                    guard builder.offer(commonPrefix: commonPrefix) else { return false }
                }
            } else {
                let key = directoryKey + entry.name
                guard try builder.offer(key: key, info: { try info(key: key) }) else { return false }
            }
        }
        return true
    }

    /// Whether a directory holds an object anywhere below it (a directory holding only the
    /// temporary files of writers is no common prefix).
    private func containsObject(directoryKey: [UInt8]) throws -> Bool {
        for entry in try entries(of: directoryKey) {
            if !entry.isDirectory { return true }
            if try containsObject(directoryKey: directoryKey + entry.name + [UInt8(ascii: "/")]) { return true }
        }
        return false
    }

    struct DirectoryEntry {
        var name: [UInt8]
        var isDirectory: Bool
        /// What the entry sorts by among its siblings: a directory as `name/`, the start of
        /// every key in it.
        var sortKey: [UInt8] { isDirectory ? name + [UInt8(ascii: "/")] : name }
    }

    /// The directories and regular files of a directory, unsorted, without writers'
    /// temporary files (nor symbolic links and other kinds of files). Empty when the directory
    /// does not exist.
    private func entries(of directoryKey: [UInt8]) throws -> [DirectoryEntry] {
        let directory = directoryKey.isEmpty ? root : root + "/" + String(decoding: directoryKey.dropLast(), as: UTF8.self)
        guard let stream = opendir(directory) else {
            let saved = errno
            if saved == ENOENT || saved == ENOTDIR { return [] }
            throw LifeboatError(.storage, "unable to list directory '\(directory)': \(errnoText(saved))", hint: hintFor(errno: saved))
        }
        defer { closedir(stream) }
        var result: [DirectoryEntry] = []
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                let saved = errno
                if saved != 0 {
                    throw LifeboatError(.storage, "unable to list directory '\(directory)': \(errnoText(saved))", hint: hintFor(errno: saved))
                }
                return result
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                Array(raw.prefix { $0 != 0 })
            }
            if name == [0x2E] || name == [0x2E, 0x2E] || Self.isTemporary(name) { continue }
            var type = entry.pointee.d_type
            if type == UInt8(DT_UNKNOWN) {  // filesystems that do not fill d_type
                guard let st = try fileStatus(directory + "/" + String(decoding: name, as: UTF8.self)) else { continue }
                type = (st.st_mode & S_IFMT) == S_IFDIR ? UInt8(DT_DIR) : (st.st_mode & S_IFMT) == S_IFREG ? UInt8(DT_REG) : UInt8(DT_UNKNOWN)
            }
            if type == UInt8(DT_DIR) || type == UInt8(DT_REG) {
                result.append(DirectoryEntry(name: name, isDirectory: type == UInt8(DT_DIR)))
            }
        }
    }

    /// `.NAME.tmp-…`: a writer's temporary file.
    static func isTemporary(_ name: [UInt8]) -> Bool {
        let marker = Array(temporaryMarker.utf8)
        guard name.first == UInt8(ascii: "."), name.count > marker.count else { return false }
        return (0...(name.count - marker.count)).contains { name[$0..<($0 + marker.count)].elementsEqual(marker) }
    }

    /// The object a listing found, or nil when it vanished meanwhile (or is no longer a file).
    private func info(key: [UInt8]) throws -> ObjectInfo? {
        let key = String(decoding: key, as: UTF8.self)
        guard let st = try fileStatus(root + "/" + key), (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Self.info(key: key, st)
    }

    static func info(key: String, _ st: stat) -> ObjectInfo {
        let nanoseconds = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        // A replaced object is a new file (a new inode); size and time catch the rest.
        let etag = "\(String(st.st_ino, radix: 16))-\(String(st.st_size, radix: 16))-\(String(nanoseconds, radix: 16))"
        let modified = Date(timeIntervalSince1970: Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9)
        return ObjectInfo(key: key, size: Int64(st.st_size), etag: etag, modified: modified)
    }

    // MARK: Objects

    public func stat(key: String) throws -> ObjectInfo? {
        guard let st = try fileStatus(try path(key), followLinks: true), (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Self.info(key: key, st)
    }

    /// A `delete` removes the directories it empties, so a directory this store creates for a
    /// writer can be removed by another process (another run releasing its lock) before the
    /// writer's temporary file is in it: then it is created again, this many times at most.
    static let vanishingDirectoryAttempts = 100

    public func openWriter(key: String, ifAbsent: Bool) throws -> any ObjectWriter {
        let path = try path(key)
        let (directory, name) = split(path)
        for attempt in 0..<Self.vanishingDirectoryAttempts {
            // Retried at once, a writer and a deleter can keep meeting in the same order (CI saw
            // a hundred in a row); from the third attempt a pause growing by 0.1 ms breaks the
            // step (at most about half a second in all).
            if attempt >= 2 { usleep(useconds_t(100 * attempt)) }
            guard try makeDirectoriesOnce(directory) else { continue }
            // Once the temporary file is in the directory, no delete can remove the directory.
            if let writer = try LocalObjectWriter(key: key, directory: directory, name: name, ifAbsent: ifAbsent, location: root) {
                return writer
            }
        }
        throw vanishing(directory)
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
        let writer = try openWriter(key: key, ifAbsent: ifAbsent)
        do {
            try bytes.withUnsafeBytes { try writer.write($0) }
            try writer.commit()
        } catch {
            writer.abort()
            throw error
        }
    }

    /// A real copy (not a hard link, which would share later changes and the inode's ETag):
    /// the bytes go through a writer, so temporary file, fsync, rename, fsync of the directory.
    public func copy(from source: String, to destination: String) throws {
        let reader = try openReader(key: source)
        defer { reader.close() }
        let writer = try openWriter(key: destination, ifAbsent: false)
        do {
            try reader.forEachPiece { try writer.write($0) }
            try writer.commit()
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
                if saved == ENOENT || saved == ENOTDIR { continue }
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

    /// Writers' temporary files (`.NAME.tmp-…`) anywhere under the directory, last modified
    /// before `cutoff` (all without one); unless `dryRun`, removes them and then the
    /// directories under it that are left empty, and their parents that this empties, up to,
    /// never including, the root. A writer whose directory is removed under it makes it again
    /// (`openWriter`), so this is safe beside live writers of other keys.
    public func discardIncompleteWrites(prefix: String, olderThan cutoff: Date?, dryRun: Bool) throws -> [IncompleteWrite] {
        let directoryKey = prefix.isEmpty || prefix.hasSuffix("/") ? prefix : prefix + "/"
        let top = directoryKey.isEmpty ? root : try path(String(directoryKey.dropLast()))
        var found: [IncompleteWrite] = []
        var directories: [String] = []
        func visit(_ directory: String, key directoryKey: String) throws {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }  // gone: nothing there
            directories.append(directory)
            for name in names {
                let path = directory + "/" + name
                guard let st = try fileStatus(path) else { continue }
                if (st.st_mode & S_IFMT) == S_IFDIR {
                    try visit(path, key: directoryKey + name + "/")
                    continue
                }
                guard (st.st_mode & S_IFMT) == S_IFREG, let objectName = Self.objectName(ofTemporary: name) else { continue }
                let modified = Self.info(key: name, st).modified
                if let cutoff, modified >= cutoff { continue }
                if !dryRun, unlink(path) != 0 {
                    let saved = errno
                    if saved == ENOENT { continue }  // its writer committed or aborted meanwhile
                    throw LifeboatError(.storage, "unable to delete '\(path)': \(errnoText(saved))", hint: hintFor(errno: saved))
                }
                found.append(IncompleteWrite(key: directoryKey + objectName, location: path, modified: modified, bytes: Int64(st.st_size)))
            }
        }
        try visit(top, key: directoryKey)
        guard !dryRun else { return found }
        for directory in directories.sorted(by: { $0.count > $1.count }) {
            var current = directory
            while current.count > root.count, current.hasPrefix(root + "/"), rmdir(current) == 0 {
                current = split(current).directory
            }
        }
        return found
    }

    /// `NAME` of a writer's temporary file `.NAME.tmp-PID-RANDOM`; nil for any other name.
    static func objectName(ofTemporary name: String) -> String? {
        guard isTemporary(Array(name.utf8)), let marker = name.range(of: temporaryMarker, options: .backwards),
              marker.lowerBound > name.startIndex else { return nil }
        return String(name[name.index(after: name.startIndex)..<marker.lowerBound])
    }

    /// Creates a directory and its missing parents with mode 0700 (set exactly: `mkdir`'s mode
    /// passes through the umask), syncing each parent so the new entry survives a crash.
    /// Returns false when a parent it found or made was removed before it could make the next
    /// directory in it (a concurrent `delete` emptied it): the caller tries again.
    private func makeDirectoriesOnce(_ path: String) throws -> Bool {
        if isDirectory(path) { return true }
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            let parent = current.isEmpty ? "/" : current
            current += "/" + component
            if mkdir(current, Self.directoryMode) == 0 {
                // The new directory is empty: a concurrent delete may remove it (and the parents
                // it empties) at once.
                if chmod(current, Self.directoryMode) != 0 {
                    let saved = errno
                    if saved == ENOENT { return false }
                    throw LifeboatError(.storage, "unable to set the mode of directory '\(current)': \(errnoText(saved))", hint: hintFor(errno: saved))
                }
                guard try syncDirectory(ifPresent: parent) else { return false }
                continue
            }
            let saved = errno
            if saved == EEXIST {
                if isDirectory(current) { continue }
                throw LifeboatError(.storage, "unable to create directory '\(current)': a file is in the way")
            }
            if saved == ENOENT, current.count > root.count { return false }  // its parent was just removed
            throw LifeboatError(.storage, "unable to create directory '\(current)': \(errnoText(saved))", hint: hintFor(errno: saved))
        }
        return true
    }

    private func vanishing(_ directory: String) -> LifeboatError {
        LifeboatError(.storage, "unable to create directory '\(directory)': it was removed again \(Self.vanishingDirectoryAttempts) times as soon as it was created",
                      hint: "Another process keeps deleting in this repository; check what else writes to \(root).")
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
    /// Commit with `link(2)`, which fails when the name exists, rather than `rename(2)`.
    let ifAbsent: Bool
    let location: String
    private var fd: Int32

    /// Creates the temporary file in `directory`; nil when the directory does not exist (it
    /// was removed after the caller made it).
    init?(key: String, directory: String, name: String, ifAbsent: Bool, location: String) throws {
        self.key = key
        self.directory = directory
        self.finalPath = directory + "/" + name
        self.ifAbsent = ifAbsent
        self.location = location
        let random = UInt64.random(in: 0...UInt64.max)
        self.temporaryPath = "\(directory)/.\(name)\(LocalStore.temporaryMarker)\(getpid())-\(String(random, radix: 36))"
        let temporaryPath = self.temporaryPath
        var created: Int32
        repeat {
            created = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, LocalStore.objectMode)
        } while created < 0 && errno == EINTR
        if created < 0 {
            let saved = errno
            if saved == ENOENT { return nil }
            throw LifeboatError(.storage, "unable to create file '\(temporaryPath)': \(errnoText(saved))", hint: hintFor(errno: saved))
        }
        fd = created
        // The mode given to open(2) passes through the umask; set it exactly.
        let fd = fd
        do {
            try syscall("unable to set the mode of file '\(temporaryPath)'", code: .storage) { fchmod(fd, LocalStore.objectMode) }
        } catch {
            abort()
            throw error
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

    /// Makes the data durable, then gives it its final name: rename (replacing) or link
    /// (failing when the name exists, which makes a commit point that cannot be overwritten).
    func commit() throws {
        guard fd >= 0 else { throw LifeboatError(.internalError, "commit of '\(finalPath)' after it was closed") }
        let temporaryPath = temporaryPath, finalPath = finalPath
        try syscall("unable to sync file '\(temporaryPath)'", code: .storage) { fsync(fd) }
        close(fd)
        fd = -1
        if !ifAbsent {
            try syscall("unable to rename '\(temporaryPath)' to '\(finalPath)'", code: .storage) { rename(temporaryPath, finalPath) }
        } else {
            if link(temporaryPath, finalPath) != 0 {
                let saved = errno
                unlink(temporaryPath)
                if saved == EEXIST {
                    throw LifeboatError(.alreadyExists, "object '\(key)' already exists in repository \(location) ('\(finalPath)'); it is never replaced")
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
