import LifeboatCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Adds a directory tree to an artifact: directories, regular files and symbolic links (not
/// followed), in sorted order (by the bytes of their names) so that the same tree gives the
/// same archive.
///
/// Entry paths are relative to `root`, joined with `/`, with `prefix` prepended; when `prefix`
/// is not empty, `root` itself is added as the directory `prefix`. Sockets, FIFOs and devices
/// are skipped, as are entries whose names are not valid UTF-8 and files deleted during the
/// walk: each gives a warning naming the path, and the warnings are returned.
///
/// Paths matched by `exclude` (relative to `root`) are left out with everything below them.
///
/// Throws when a directory or file cannot be read, and when a file changes size while it is
/// being read (the writer is then unusable).
public func archiveDirectory(
    root: String, into writer: ArtifactWriter, prefix: String = "", exclude: PathPatterns = PathPatterns([])
) throws -> [String] {
    var cleanPrefix = prefix
    while cleanPrefix.hasSuffix("/") { cleanPrefix.removeLast() }
    var rootStatus = stat()
    guard stat(root, &rootStatus) == 0 else {
        throw fileError(root, "unable to read directory", errno)
    }
    guard rootStatus.st_mode & S_IFMT == S_IFDIR else {
        throw LifeboatError(.source, "'\(root)' is not a directory",
                            hint: "Give the path of a directory to back up.")
    }
    if !cleanPrefix.isEmpty {
        try writer.addDirectory(path: cleanPrefix, mode: UInt32(rootStatus.st_mode) & 0o7777,
                                modificationTime: modificationSeconds(rootStatus))
    }
    var warnings: [String] = []
    try archiveContents(of: root, entryPrefix: cleanPrefix, relativePrefix: "", exclude: exclude,
                        writer: writer, warnings: &warnings)
    return warnings
}

private func modificationSeconds(_ status: stat) -> Int64 {
    #if canImport(Darwin)
    return Int64(status.st_mtimespec.tv_sec)
    #else
    return Int64(status.st_mtim.tv_sec)
    #endif
}

private func fileError(_ path: String, _ what: String, _ code: Int32) -> LifeboatError {
    let reason = String(cString: strerror(code))
    let hint = code == EACCES || code == EPERM
        ? "Run the backup as a user that can read '\(path)', or exclude it."
        : "Check the file system that holds '\(path)', then run the backup again."
    return LifeboatError(.source, "\(what) '\(path)': \(reason)", hint: hint)
}

/// Names in a directory (without `.` and `..`), sorted by their bytes.
private func directoryNames(_ path: String, warnings: inout [String]) throws -> [String] {
    guard let directory = opendir(path) else {
        throw fileError(path, "unable to read directory", errno)
    }
    defer { closedir(directory) }
    var names: [String] = []
    while true {
        errno = 0
        guard let entry = readdir(directory) else {
            if errno != 0 { throw fileError(path, "unable to read directory", errno) }
            break
        }
        let name: String? = withUnsafePointer(to: &entry.pointee.d_name) { tuple in
            tuple.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: tuple.pointee)) {
                String(validatingCString: $0)
            }
        }
        guard let name else {
            warnings.append("skipped an entry of '\(path)' whose name is not valid UTF-8")
            continue
        }
        if name == "." || name == ".." { continue }
        names.append(name)
    }
    return names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
}

private func archiveContents(
    of directory: String, entryPrefix: String, relativePrefix: String, exclude: PathPatterns,
    writer: ArtifactWriter, warnings: inout [String]
) throws {
    for name in try directoryNames(directory, warnings: &warnings) {
        let relativePath = relativePrefix.isEmpty ? name : relativePrefix + "/" + name
        if exclude.excludes(relativePath) { continue }
        let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
        let entryPath = entryPrefix.isEmpty ? name : entryPrefix + "/" + name
        var status = stat()
        guard lstat(path, &status) == 0 else {
            if errno == ENOENT {
                warnings.append("skipped '\(path)': it was deleted during the backup")
                continue
            }
            throw fileError(path, "unable to read the status of", errno)
        }
        let mode = UInt32(status.st_mode) & 0o7777
        let modificationTime = modificationSeconds(status)
        switch status.st_mode & S_IFMT {
        case S_IFDIR:
            try writer.addDirectory(path: entryPath, mode: mode, modificationTime: modificationTime)
            try archiveContents(of: path, entryPrefix: entryPath, relativePrefix: relativePath, exclude: exclude,
                                writer: writer, warnings: &warnings)
        case S_IFREG:
            try archiveFile(path: path, entryPath: entryPath, writer: writer, warnings: &warnings)
        case S_IFLNK:
            guard let target = try readSymlink(path, size: Int(status.st_size)) else {
                warnings.append("skipped '\(path)': it was deleted during the backup")
                continue
            }
            try writer.addSymlink(path: entryPath, target: target, modificationTime: modificationTime)
        case S_IFSOCK:
            warnings.append("skipped socket '\(path)'")
        case S_IFIFO:
            warnings.append("skipped FIFO '\(path)'")
        case S_IFCHR:
            warnings.append("skipped character device '\(path)'")
        case S_IFBLK:
            warnings.append("skipped block device '\(path)'")
        default:
            warnings.append("skipped '\(path)': unknown file type")
        }
    }
}

private func archiveFile(path: String, entryPath: String, writer: ArtifactWriter, warnings: inout [String]) throws {
    // O_NOFOLLOW: a file swapped for a symbolic link since `lstat` is not followed.
    // O_NONBLOCK: a file swapped for a FIFO does not block the open (no effect on files).
    let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
    guard fd >= 0 else {
        if errno == ENOENT {
            warnings.append("skipped '\(path)': it was deleted during the backup")
            return
        }
        if errno == ELOOP {
            warnings.append("skipped '\(path)': it was replaced by a symbolic link during the backup")
            return
        }
        throw fileError(path, "unable to open file for reading", errno)
    }
    defer { close(fd) }
    // Size and mode of the file actually opened (it may have been replaced since `lstat`).
    var status = stat()
    guard fstat(fd, &status) == 0 else {
        throw fileError(path, "unable to read the status of", errno)
    }
    guard status.st_mode & S_IFMT == S_IFREG else {
        warnings.append("skipped '\(path)': it was replaced by something other than a file during the backup")
        return
    }
    try writer.addFile(
        path: entryPath, size: Int64(status.st_size), mode: UInt32(status.st_mode) & 0o7777,
        modificationTime: modificationSeconds(status)
    ) { buffer in
        while true {
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw fileError(path, "unable to read file", errno)
        }
    }
}

/// The target of a symbolic link, or nil when it no longer exists.
private func readSymlink(_ path: String, size: Int) throws -> String? {
    var capacity = max(size, 255) + 1
    while true {
        var buffer = [CChar](repeating: 0, count: capacity)
        let n = readlink(path, &buffer, capacity)
        if n < 0 {
            if errno == ENOENT { return nil }
            throw fileError(path, "unable to read symbolic link", errno)
        }
        if n < capacity {
            return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        capacity *= 2
    }
}
