import CLifeboatSystem
import LifeboatCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What `archiveDirectory` added and what it left out.
public struct DirectoryArchiveReport: Sendable, Equatable {
    /// Entries added to the artifact (the root's own entry included when there is a prefix).
    public var entriesAdded: Int
    /// What was found but not stored, in the order of the walk.
    public var skipped: [SkippedEntry]

    public init(entriesAdded: Int = 0, skipped: [SkippedEntry] = []) {
        self.entriesAdded = entriesAdded
        self.skipped = skipped
    }
}

/// Adds a directory tree to an artifact, storing what GNU tar stores: directories, regular
/// files (sparse ones as sparse), symbolic links (not followed), hard links, FIFOs and
/// character and block devices, with their owners (ids, and names when they resolve), modes
/// and modification times. Entries come in sorted order (by the bytes of their names) so that
/// the same tree gives the same archive, and names are stored byte for byte, whether or not
/// they are valid UTF-8.
///
/// Entry paths are relative to `root`, joined with `/`, with `prefix` prepended; when `prefix`
/// is not empty, `root` itself is added as the directory `prefix`. A file with several links
/// in the tree is stored once, under the first path the walk meets; its other paths become
/// hard links to that one.
///
/// Paths matched by `exclude` (relative to `root`, matched on their display form, with each
/// byte that is not valid UTF-8 read as U+FFFD) are left out with everything below them.
///
/// Sockets, files deleted during the walk and files replaced by another kind of file during
/// the walk are not stored: the report lists them.
///
/// Throws when a directory or file cannot be read, and when a file changes size while it is
/// being read (the writer is then unusable).
public func archiveDirectory(
    root: String, into writer: ArtifactWriter, prefix: String = "", exclude: PathPatterns = PathPatterns([])
) throws -> DirectoryArchiveReport {
    var cleanPrefix = prefix
    while cleanPrefix.hasSuffix("/") { cleanPrefix.removeLast() }
    var rootStatus = stat()
    guard stat(root, &rootStatus) == 0 else {
        throw fileError(EntryPath(root), "unable to read directory", errno)
    }
    guard rootStatus.st_mode & S_IFMT == S_IFDIR else {
        throw LifeboatError(.source, "'\(root)' is not a directory",
                            hint: "Give the path of a directory to back up.")
    }
    let walker = DirectoryWalker(writer: writer, exclude: exclude)
    let prefixPath = EntryPath(cleanPrefix)
    if !cleanPrefix.isEmpty {
        try writer.addDirectory(path: prefixPath, mode: UInt32(rootStatus.st_mode) & 0o7777,
                                modificationTime: modificationSeconds(rootStatus), owner: walker.owner(of: rootStatus))
        walker.report.entriesAdded += 1
    }
    var rootPath = EntryPath(root)
    while rootPath.bytes.count > 1, rootPath.bytes.last == UInt8(ascii: "/") {
        rootPath = EntryPath(bytes: Array(rootPath.bytes.dropLast()))
    }
    guard let names = try walker.directoryNames(rootPath, isRoot: true) else {
        return walker.report
    }
    try walker.archiveContents(names, of: rootPath, entryPrefix: prefixPath, relativePrefix: EntryPath(bytes: []))
    return walker.report
}

private func modificationSeconds(_ status: stat) -> Int64 {
    #if canImport(Darwin)
    return Int64(status.st_mtimespec.tv_sec)
    #else
    return Int64(status.st_mtim.tv_sec)
    #endif
}

private func fileError(_ path: EntryPath, _ what: String, _ code: Int32) -> LifeboatError {
    let reason = String(cString: strerror(code))
    let hint = code == EACCES || code == EPERM
        ? "Run the backup as a user that can read '\(path)', or exclude it."
        : "Check the file system that holds '\(path)', then run the backup again."
    return LifeboatError(.source, "\(what) '\(path)': \(reason)", hint: hint)
}

/// A file's identity on this machine, to find the other paths of a file with several links.
private struct FileIdentity: Hashable {
    var device: UInt64
    var inode: UInt64

    init(_ status: stat) {
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
    }
}

/// The state of one walk: the writer, the report, the owner names looked up so far and the
/// files with several links stored so far.
private final class DirectoryWalker {
    let writer: ArtifactWriter
    let exclude: PathPatterns
    var report = DirectoryArchiveReport()
    /// The entry path under which each file with several links was stored.
    var linkedFiles: [FileIdentity: EntryPath] = [:]
    var userNames: [uid_t: String?] = [:]
    var groupNames: [gid_t: String?] = [:]

    init(writer: ArtifactWriter, exclude: PathPatterns) {
        self.writer = writer
        self.exclude = exclude
    }

    func skip(_ path: EntryPath, _ reason: SkippedEntry.Reason) {
        report.skipped.append(SkippedEntry(path: path.description, reason: reason))
    }

    // MARK: Owners

    func owner(of status: stat) -> EntryOwner {
        EntryOwner(uid: UInt32(status.st_uid), gid: UInt32(status.st_gid),
                   user: userName(status.st_uid), group: groupName(status.st_gid))
    }

    /// The name of a user id, looked up once (nil when the id has none).
    private func userName(_ uid: uid_t) -> String? {
        if let known = userNames[uid] { return known }
        let name = lookUpName { buffer, size in
            var entry = passwd()
            var result: UnsafeMutablePointer<passwd>?
            let status = getpwuid_r(uid, &entry, buffer, size, &result)
            return (status, result.flatMap { String(validatingCString: $0.pointee.pw_name) })
        }
        userNames[uid] = name
        return name
    }

    /// The name of a group id, looked up once (nil when the id has none).
    private func groupName(_ gid: gid_t) -> String? {
        if let known = groupNames[gid] { return known }
        let name = lookUpName { buffer, size in
            var entry = group()
            var result: UnsafeMutablePointer<group>?
            let status = getgrgid_r(gid, &entry, buffer, size, &result)
            return (status, result.flatMap { String(validatingCString: $0.pointee.gr_name) })
        }
        groupNames[gid] = name
        return name
    }

    /// Runs a `get*_r` lookup with a buffer that grows while the call says ERANGE. A failed
    /// lookup gives no name, as an id without one does: tar then stores the id alone.
    private func lookUpName(
        _ lookUp: (UnsafeMutablePointer<CChar>, Int) -> (status: Int32, name: String?)
    ) -> String? {
        var size = 1024
        while size <= 1 << 20 {
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let (status, name) = lookUp(buffer, size)
            if status == ERANGE {
                size *= 2
                continue
            }
            return status == 0 ? name : nil
        }
        return nil
    }

    // MARK: Walking

    /// Names in a directory (without `.` and `..`), sorted by their bytes; nil (with the
    /// directory reported as skipped) when it vanished or was replaced since it was listed.
    /// The directory is opened without following a symbolic link (except the root's).
    func directoryNames(_ path: EntryPath, isRoot: Bool = false) throws -> [[UInt8]]? {
        guard let cPath = path.cString else { throw fileError(path, "unable to read directory", EINVAL) }
        let flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (isRoot ? 0 : O_NOFOLLOW)
        let fd = open(cPath, flags)
        guard fd >= 0 else {
            let code = errno
            if !isRoot, code == ENOENT {
                skip(path, .vanished)
                return nil
            }
            if !isRoot, code == ENOTDIR || code == ELOOP {
                skip(path, .replaced)
                return nil
            }
            throw fileError(path, "unable to read directory", code)
        }
        guard let directory = fdopendir(fd) else {
            let code = errno
            close(fd)
            throw fileError(path, "unable to read directory", code)
        }
        defer { closedir(directory) }
        var names: [[UInt8]] = []
        while true {
            errno = 0
            guard let entry = readdir(directory) else {
                if errno != 0 { throw fileError(path, "unable to read directory", errno) }
                break
            }
            let name: [UInt8] = withUnsafeBytes(of: &entry.pointee.d_name) { raw in
                Array(raw.prefix { $0 != 0 })
            }
            if name == [UInt8(ascii: ".")] || name == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
            names.append(name)
        }
        return names.sorted { $0.lexicographicallyPrecedes($1) }
    }

    func archiveContents(
        _ names: [[UInt8]], of directory: EntryPath, entryPrefix: EntryPath, relativePrefix: EntryPath
    ) throws {
        for name in names {
            let relativePath = relativePrefix.appending(name)
            if exclude.excludes(relativePath.description) { continue }
            let path = directory.bytes.last == UInt8(ascii: "/")
                ? EntryPath(bytes: directory.bytes + name) : directory.appending(name)
            let entryPath = entryPrefix.appending(name)
            guard let cPath = path.cString else { throw fileError(path, "unable to read the status of", EINVAL) }
            var status = stat()
            guard lstat(cPath, &status) == 0 else {
                if errno == ENOENT {
                    skip(path, .vanished)
                    continue
                }
                throw fileError(path, "unable to read the status of", errno)
            }
            let mode = UInt32(status.st_mode) & 0o7777
            let modificationTime = modificationSeconds(status)
            switch status.st_mode & S_IFMT {
            case S_IFDIR:
                try writer.addDirectory(path: entryPath, mode: mode, modificationTime: modificationTime,
                                        owner: owner(of: status))
                report.entriesAdded += 1
                if let names = try directoryNames(path) {
                    try archiveContents(names, of: path, entryPrefix: entryPath, relativePrefix: relativePath)
                }
            case S_IFREG:
                if status.st_nlink > 1, let first = linkedFiles[FileIdentity(status)] {
                    try writer.addHardLink(path: entryPath, target: first, mode: mode, modificationTime: modificationTime,
                                           owner: owner(of: status))
                    report.entriesAdded += 1
                } else {
                    try archiveFile(path, cPath: cPath, entryPath: entryPath)
                }
            case S_IFLNK:
                guard let target = try readSymlink(path, cPath: cPath, size: Int(status.st_size)) else { continue }
                try writer.addSymlink(path: entryPath, target: target, modificationTime: modificationTime,
                                      owner: owner(of: status))
                report.entriesAdded += 1
            case S_IFIFO:
                try writer.addSpecialFile(path: entryPath, kind: .fifo, mode: mode, modificationTime: modificationTime,
                                          owner: owner(of: status))
                report.entriesAdded += 1
            case S_IFCHR, S_IFBLK:
                let device = DeviceNumber(major: lifeboat_dev_major(status.st_rdev), minor: lifeboat_dev_minor(status.st_rdev))
                try writer.addSpecialFile(
                    path: entryPath, kind: status.st_mode & S_IFMT == S_IFCHR ? .characterDevice : .blockDevice,
                    device: device, mode: mode, modificationTime: modificationTime, owner: owner(of: status))
                report.entriesAdded += 1
            case S_IFSOCK:
                skip(path, .socket)
            default:
                skip(path, .unknownType)
            }
        }
    }

    /// Adds a regular file (sparse when it has holes); skips it when it vanished or was
    /// replaced by something other than a file since `lstat`.
    private func archiveFile(_ path: EntryPath, cPath: [CChar], entryPath: EntryPath) throws {
        // O_NOFOLLOW: a file swapped for a symbolic link since `lstat` is not followed.
        // O_NONBLOCK: a file swapped for a FIFO does not block the open (no effect on files).
        let fd = open(cPath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            if errno == ENOENT {
                skip(path, .vanished)
                return
            }
            if errno == ELOOP {
                skip(path, .replaced)
                return
            }
            throw fileError(path, "unable to open file for reading", errno)
        }
        defer { close(fd) }
        // Size, mode and identity of the file actually opened (it may have been replaced).
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            throw fileError(path, "unable to read the status of", errno)
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            skip(path, .replaced)
            return
        }
        let size = Int64(status.st_size)
        let mode = UInt32(status.st_mode) & 0o7777
        let modificationTime = modificationSeconds(status)
        let read = { (buffer: UnsafeMutableRawBufferPointer, offset: Int64) throws -> Int in
            while true {
                let n = pread(fd, buffer.baseAddress, buffer.count, off_t(offset))
                if n >= 0 { return n }
                if errno == EINTR { continue }
                throw fileError(path, "unable to read file", errno)
            }
        }
        if let regions = try dataRegions(fd, status, path) {
            try writer.addSparseFile(path: entryPath, size: size, dataRegions: regions, mode: mode,
                                     modificationTime: modificationTime, owner: owner(of: status), read: read)
        } else {
            var offset: Int64 = 0
            try writer.addFile(path: entryPath, size: size, mode: mode, modificationTime: modificationTime,
                               owner: owner(of: status)) { buffer in
                let n = try read(buffer, offset)
                offset += Int64(n)
                return n
            }
        }
        report.entriesAdded += 1
        if status.st_nlink > 1 { linkedFiles[FileIdentity(status)] = entryPath }
    }

    /// The data regions of a file with holes (SEEK_DATA/SEEK_HOLE), or nil for a file without
    /// holes, or on a file system that cannot tell.
    private func dataRegions(_ fd: Int32, _ status: stat, _ path: EntryPath) throws -> [DataRegion]? {
        let size = Int64(status.st_size)
        // A file using as many blocks as its size needs has no holes (GNU tar's test); one
        // using fewer may be compressed or hold its data inline: SEEK_HOLE tells.
        guard size > 0, Int64(status.st_blocks) * 512 < size else { return nil }
        var regions: [DataRegion] = []
        var offset: Int64 = 0
        while offset < size {
            let data = Int64(lifeboat_lseek_data(fd, off_t(offset)))
            if data < 0 {
                if errno == ENXIO { break }  // nothing but a hole up to the end
                if errno == EINVAL || errno == EOPNOTSUPP { return nil }
                throw fileError(path, "unable to find the data regions of", errno)
            }
            if data >= size { break }
            let hole = Int64(lifeboat_lseek_hole(fd, off_t(data)))
            if hole < 0 { throw fileError(path, "unable to find the data regions of", errno) }
            let end = min(hole, size)
            regions.append(DataRegion(offset: data, length: end - data))
            offset = end
        }
        if regions.count == 1, regions[0].offset == 0, regions[0].length == size { return nil }
        return regions
    }

    /// The target of a symbolic link, as bytes; nil (with the link reported as skipped) when
    /// it vanished or was replaced by something that is not a link since `lstat`.
    private func readSymlink(_ path: EntryPath, cPath: [CChar], size: Int) throws -> EntryPath? {
        var capacity = max(size, 255) + 1
        while true {
            var buffer = [CChar](repeating: 0, count: capacity)
            let n = readlink(cPath, &buffer, capacity)
            if n < 0 {
                if errno == ENOENT {
                    skip(path, .vanished)
                    return nil
                }
                if errno == EINVAL {
                    skip(path, .replaced)
                    return nil
                }
                throw fileError(path, "unable to read symbolic link", errno)
            }
            if n < capacity {
                return EntryPath(bytes: buffer[0..<n].map { UInt8(bitPattern: $0) })
            }
            capacity *= 2
        }
    }
}
