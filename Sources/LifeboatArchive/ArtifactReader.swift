import CArchive
import Crypto
import LifeboatCore

/// Read-callback state: pulls stored bytes from the object store and hashes them.
final class ReadContext: ArchiveCallbackContext {
    let source: any ObjectReader
    let buffer: UnsafeMutableRawBufferPointer
    var hasher = SHA256()
    var byteCount: Int64 = 0
    var reachedEnd = false

    static let bufferSize = 1 << 20

    init(source: any ObjectReader) {
        self.source = source
        buffer = .allocate(byteCount: Self.bufferSize, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Reads the next stored bytes into `buffer`, hashing them; 0 at the end of the object.
    func pull() throws -> Int {
        if reachedEnd { return 0 }
        let n = try source.read(into: buffer)
        guard n >= 0, n <= buffer.count else {
            throw LifeboatError(
                .storage, "object '\(source.key)': read returned \(n) for a buffer of \(buffer.count) bytes",
                hint: "Report this as a bug in Lifeboat.")
        }
        if n == 0 {
            reachedEnd = true
            return 0
        }
        hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        byteCount += Int64(n)
        return n
    }

    /// Pulls the rest of the object and returns its size and SHA-256 (lowercase hex). An
    /// error the source threw earlier is rethrown.
    func finish() throws -> (size: Int64, sha256: String) {
        if let firstError { throw firstError }
        while try pull() > 0 {}
        return (byteCount, hasher.finalize().hex)
    }
}

/// libarchive's read callback; the client data is an unretained `ReadContext`.
private func artifactReadCallback(
    _ archive: OpaquePointer?, _ clientData: UnsafeMutableRawPointer?,
    _ output: UnsafeMutablePointer<UnsafeRawPointer?>?
) -> Int {
    guard let clientData, let output else { return -1 }
    let context = Unmanaged<ReadContext>.fromOpaque(clientData).takeUnretainedValue()
    if context.firstError != nil { return -1 }
    do {
        let n = try context.pull()
        output.pointee = UnsafeRawPointer(context.buffer.baseAddress)
        return n
    } catch {
        context.record(error)
        return -1
    }
}

/// The header of an entry read from an artifact.
public struct ArchiveEntryHeader: Sendable, Equatable {
    /// Path inside the archive, without the trailing `/` tar adds to directories.
    public var path: String
    /// File, directory or symbolic link (other types are refused by `nextEntry()`).
    public var kind: EntryRecord.Kind
    /// Size of the entry's data (0 for directories and symbolic links).
    public var size: Int64
    /// Permission bits (`0o7777`).
    public var mode: UInt32
    /// Seconds since 1970.
    public var modificationTime: Int64
    /// For a symbolic link: its target.
    public var linkTarget: String?

    public init(path: String, kind: EntryRecord.Kind, size: Int64, mode: UInt32, modificationTime: Int64,
                linkTarget: String? = nil) {
        self.path = path
        self.kind = kind
        self.size = size
        self.mode = mode
        self.modificationTime = modificationTime
        self.linkTarget = linkTarget
    }
}

/// Reads an artifact (a tar archive, compressed with zstd or not) from an `ObjectReader`,
/// hashing the stored bytes as they are pulled.
///
/// Call `nextEntry()` and `read(into:)` until `nextEntry()` returns nil, then `finish()` for the
/// stored object's size and digest. The caller closes the source. Use it from one thread.
public final class ArtifactReader {
    /// The artifact's path, for messages.
    public let artifactPath: String
    private let handle: ArchiveHandle
    private let context: ReadContext
    /// The libarchive entry of the current header; valid until the next `nextEntry()`.
    private(set) var currentEntry: OpaquePointer?
    /// Path of the current entry, for messages.
    public private(set) var currentPath: String?

    /// Opens the artifact. Reads the first stored bytes (to detect the compression).
    public convenience init(source: any ObjectReader, artifactPath: String) throws {
        try self.init(context: ReadContext(source: source), artifactPath: artifactPath)
    }

    /// Opens the artifact whose bytes `context` pulls; the caller may keep `context` to drain
    /// and hash the rest of the object when opening fails.
    init(context: ReadContext, artifactPath: String) throws {
        self.artifactPath = artifactPath
        self.context = context
        handle = try ArchiveHandle(
            kind: .read,
            hint: "The artifact may be damaged: run 'lifeboat verify' on this backup, and restore from another backup if it fails.")
        handle.context = context
        let what = "artifact '\(artifactPath)': setting up the tar reader"
        try handle.call(what) { archive_read_support_filter_zstd($0) }
        try handle.call(what) { archive_read_support_filter_none($0) }
        try handle.call(what) { archive_read_support_format_tar($0) }
        let clientData = Unmanaged.passUnretained(context).toOpaque()
        try handle.call("artifact '\(artifactPath)': opening") {
            archive_read_open2($0, clientData, nil, artifactReadCallback, nil, nil)
        }
    }

    /// True once libarchive met an error it cannot recover from: nothing more can be read.
    public var isBroken: Bool { handle.isFatal }

    /// Moves to the next entry and returns its header, or nil at the end of the archive. The
    /// data of the previous entry, if not read, is skipped (and still hashed).
    public func nextEntry() throws -> ArchiveEntryHeader? {
        currentEntry = nil
        let previous = currentPath
        currentPath = nil
        var entry: OpaquePointer?
        let position = previous.map { "after entry '\($0)'" } ?? "before the first entry"
        let status = try handle.call("artifact '\(artifactPath)': reading the next header \(position)") {
            archive_read_next_header($0, &entry)
        }
        if status == ARCHIVE_EOF { return nil }
        guard let entry else {
            throw LifeboatError(.archive, "artifact '\(artifactPath)': libarchive returned no header \(position)",
                                hint: handle.hint)
        }
        guard let rawPath = archive_entry_pathname(entry) else {
            throw LifeboatError(.archive, "artifact '\(artifactPath)': an entry \(position) has no readable path",
                                hint: handle.hint)
        }
        var path = String(cString: rawPath)
        let type = archive_entry_filetype(entry) & ArchiveFileType.mask
        let kind: EntryRecord.Kind
        var linkTarget: String?
        switch type {
        case ArchiveFileType.regular:
            kind = .file
        case ArchiveFileType.directory:
            kind = .directory
            while path.count > 1, path.hasSuffix("/") { path.removeLast() }
        case ArchiveFileType.symlink:
            kind = .symlink
            linkTarget = archive_entry_symlink(entry).map { String(cString: $0) } ?? ""
        default:
            if archive_entry_hardlink(entry) != nil {
                throw LifeboatError(.archive, "artifact '\(artifactPath)': entry '\(path)' is a hard link, which Lifeboat does not write",
                                    hint: handle.hint)
            }
            throw LifeboatError(
                .archive,
                "artifact '\(artifactPath)': entry '\(path)' has an unsupported type (mode \(String(type, radix: 8)))",
                hint: handle.hint)
        }
        currentEntry = entry
        currentPath = path
        return ArchiveEntryHeader(
            path: path, kind: kind, size: archive_entry_size(entry), mode: UInt32(archive_entry_perm(entry)),
            modificationTime: Int64(archive_entry_mtime(entry)), linkTarget: linkTarget)
    }

    /// Reads data of the current entry; returns 0 at its end.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let name = currentPath.map { "entry '\($0)'" } ?? "no entry"
        return try handle.call(
            "artifact '\(artifactPath)': reading the data of \(name)", acceptWarning: false
        ) {
            archive_read_data($0, base, buffer.count)
        }
    }

    /// Reads the rest of the stored object (whatever libarchive did not need) so that the
    /// digest covers all of it, and returns its size and SHA-256 (lowercase hex). Errors of the
    /// source are rethrown.
    public func finish() throws -> (size: Int64, sha256: String) {
        try context.finish()
    }
}
