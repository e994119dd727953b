import CArchive
import Crypto
import LifeboatCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

/// Where the bytes of an archive that is not a stored object come from: a stream received
/// block by block (a PostgreSQL base backup's tar), handed to libarchive without a copy.
public protocol ArchiveBlockSource: AnyObject {
    /// The next bytes of the archive, valid until the next call; nil at its end.
    func nextBlock() throws -> UnsafeRawBufferPointer?
}

/// Read-callback state for an `ArchiveBlockSource`: counts the bytes, hashes nothing.
final class BlockReadContext: ArchiveCallbackContext {
    let source: any ArchiveBlockSource
    var byteCount: Int64 = 0
    var reachedEnd = false

    init(source: any ArchiveBlockSource) {
        self.source = source
    }

    func pull() throws -> UnsafeRawBufferPointer? {
        if reachedEnd { return nil }
        guard let block = try source.nextBlock() else {
            reachedEnd = true
            return nil
        }
        byteCount += Int64(block.count)
        return block
    }

    /// Pulls the rest of the archive (what follows the end-of-archive blocks) and returns how
    /// many bytes the source gave in all.
    func drain() throws -> Int64 {
        if let firstError { throw firstError }
        while try pull() != nil {}
        return byteCount
    }
}

/// libarchive's read callback for a block source; the client data is an unretained
/// `BlockReadContext`.
private func blockReadCallback(
    _ archive: OpaquePointer?, _ clientData: UnsafeMutableRawPointer?,
    _ output: UnsafeMutablePointer<UnsafeRawPointer?>?
) -> Int {
    guard let clientData, let output else { return -1 }
    let context = Unmanaged<BlockReadContext>.fromOpaque(clientData).takeUnretainedValue()
    if context.firstError != nil { return -1 }
    do {
        // An empty block would read as the end: skip them.
        while let block = try context.pull() {
            guard block.count > 0 else { continue }
            output.pointee = block.baseAddress
            return block.count
        }
        return 0
    } catch {
        context.record(error)
        return -1
    }
}

/// The header of an entry read from an artifact.
public struct ArchiveEntryHeader: Sendable, Equatable {
    /// Path inside the archive, exactly, without the trailing `/` tar adds to directories.
    public var rawPath: EntryPath
    /// The kind of entry (types Lifeboat does not write are refused by `nextEntry()`).
    public var kind: EntryRecord.Kind
    /// Size of the entry's data: a file's logical size (holes included), 0 for other kinds.
    public var size: Int64
    /// Permission bits (`0o7777`).
    public var mode: UInt32
    /// Seconds since 1970.
    public var modificationTime: Int64
    /// For a symbolic link its target; for a hard link the path of the entry it names.
    public var rawLinkTarget: EntryPath?
    /// Owner and group by id, with their names when the archive holds them.
    public var owner: EntryOwner
    /// For a character or block device: its number.
    public var device: DeviceNumber?
    /// For a sparse file: the regions that hold data (possibly none); nil when not sparse.
    public var dataRegions: [DataRegion]?

    public init(path: EntryPath, kind: EntryRecord.Kind, size: Int64, mode: UInt32, modificationTime: Int64,
                linkTarget: EntryPath? = nil, owner: EntryOwner = EntryOwner(uid: 0, gid: 0),
                device: DeviceNumber? = nil, dataRegions: [DataRegion]? = nil) {
        self.rawPath = path
        self.kind = kind
        self.size = size
        self.mode = mode
        self.modificationTime = modificationTime
        self.rawLinkTarget = linkTarget
        self.owner = owner
        self.device = device
        self.dataRegions = dataRegions
    }

    /// The path for messages (bytes that are not valid UTF-8 shown as U+FFFD).
    public var path: String { rawPath.description }
    /// The link target for messages.
    public var linkTarget: String? { rawLinkTarget?.description }
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
    /// A `ReadContext` (a stored object) or a `BlockReadContext` (a stream).
    private let context: ArchiveCallbackContext
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
        handle = try Self.open(context: context, artifactPath: artifactPath, hint:
            "The artifact may be damaged: run 'lifeboat verify' on this backup, and restore from another backup if it fails.")
    }

    /// Opens a tar archive (compressed with zstd or not) whose bytes come from `source`, such
    /// as an archive received over the network. Nothing is hashed but the entries' data.
    /// `name` names the archive in messages; call `drain()` at the end, not `finish()`.
    public init(blocks source: any ArchiveBlockSource, name: String) throws {
        artifactPath = name
        let context = BlockReadContext(source: source)
        self.context = context
        handle = try Self.open(context: context, artifactPath: name, hint:
            "The archive received was not a valid tar archive; run the backup again, and report this as a bug if it persists.")
    }

    private static func open(context: ArchiveCallbackContext, artifactPath: String,
                             hint: String) throws -> ArchiveHandle {
        let handle = try ArchiveHandle(kind: .read, hint: hint)
        handle.context = context
        let what = "artifact '\(artifactPath)': setting up the tar reader"
        try handle.call(what) { archive_read_support_filter_zstd($0) }
        try handle.call(what) { archive_read_support_filter_none($0) }
        try handle.call(what) { archive_read_support_format_tar($0) }
        let clientData = Unmanaged.passUnretained(context).toOpaque()
        try handle.call("artifact '\(artifactPath)': opening") {
            context is BlockReadContext
                ? archive_read_open2($0, clientData, nil, blockReadCallback, nil, nil)
                : archive_read_open2($0, clientData, nil, artifactReadCallback, nil, nil)
        }
        return handle
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
        guard let pathPointer = archive_entry_pathname(entry) else {
            throw LifeboatError(.archive, "artifact '\(artifactPath)': an entry \(position) has no readable path",
                                hint: handle.hint)
        }
        // Names come back as the bytes the archive holds (see `ArtifactWriter.writeHeader`).
        var pathBytes = Self.bytes(of: pathPointer)
        let path = EntryPath(bytes: pathBytes)
        let type = archive_entry_filetype(entry) & ArchiveFileType.mask
        let kind: EntryRecord.Kind
        var linkTarget: EntryPath?
        var device: DeviceNumber?
        if let hardlink = archive_entry_hardlink(entry) {
            // tar stores no file type for a hard link; libarchive gives a regular file's type
            // when the entry carries data (which Lifeboat's never do; extraction refuses it).
            kind = .hardlink
            linkTarget = EntryPath(bytes: Self.bytes(of: hardlink))
        } else {
            switch type {
            case ArchiveFileType.regular:
                kind = .file
            case ArchiveFileType.directory:
                kind = .directory
                while pathBytes.count > 1, pathBytes.last == UInt8(ascii: "/") { pathBytes.removeLast() }
            case ArchiveFileType.symlink:
                kind = .symlink
                linkTarget = EntryPath(bytes: archive_entry_symlink(entry).map { Self.bytes(of: $0) } ?? [])
            case ArchiveFileType.fifo:
                kind = .fifo
            case ArchiveFileType.characterDevice, ArchiveFileType.blockDevice:
                kind = type == ArchiveFileType.characterDevice ? .characterDevice : .blockDevice
                device = DeviceNumber(major: UInt32(truncatingIfNeeded: archive_entry_rdevmajor(entry)),
                                      minor: UInt32(truncatingIfNeeded: archive_entry_rdevminor(entry)))
            default:
                throw LifeboatError(
                    .archive,
                    "artifact '\(artifactPath)': entry '\(path)' has an unsupported type (mode \(String(type, radix: 8)))",
                    hint: handle.hint)
            }
        }
        let finalPath = EntryPath(bytes: pathBytes)
        guard let uid = UInt32(exactly: archive_entry_uid(entry)), let gid = UInt32(exactly: archive_entry_gid(entry)) else {
            throw LifeboatError(
                .archive,
                "artifact '\(artifactPath)': entry '\(finalPath)' has an owner id out of range (\(archive_entry_uid(entry)):\(archive_entry_gid(entry)))",
                hint: handle.hint)
        }
        let owner = EntryOwner(uid: uid, gid: gid, user: Self.name(archive_entry_uname(entry)),
                               group: Self.name(archive_entry_gname(entry)))
        var dataRegions: [DataRegion]?
        if kind == .file, archive_entry_sparse_reset(entry) > 0 {
            var regions: [DataRegion] = []
            var offset: la_int64_t = 0
            var length: la_int64_t = 0
            while archive_entry_sparse_next(entry, &offset, &length) == ARCHIVE_OK {
                // The writer ends the map with an empty region at the end of the file.
                if length > 0 { regions.append(DataRegion(offset: offset, length: length)) }
            }
            dataRegions = regions
        }
        currentEntry = entry
        currentPath = finalPath.description
        return ArchiveEntryHeader(
            path: finalPath, kind: kind, size: archive_entry_size(entry), mode: UInt32(archive_entry_perm(entry)),
            modificationTime: Int64(archive_entry_mtime(entry)), linkTarget: linkTarget, owner: owner,
            device: device, dataRegions: dataRegions)
    }

    /// The bytes of a C string.
    private static func bytes(of string: UnsafePointer<CChar>) -> [UInt8] {
        Array(UnsafeBufferPointer(start: string, count: strlen(string))).map { UInt8(bitPattern: $0) }
    }

    /// An owner or group name, nil when absent or empty.
    private static func name(_ string: UnsafePointer<CChar>?) -> String? {
        guard let string, string.pointee != 0 else { return nil }
        return String(decoding: bytes(of: string), as: UTF8.self)
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

    /// Reads the data of the current entry block by block, as libarchive has it: `body` gets
    /// each block and its offset in the file (past a hole of a sparse file, the offset jumps).
    /// The block is valid only during the call. Returns the SHA-256 (lowercase hex) of the
    /// entry's logical content, holes read as zeros, and its length (the offset libarchive
    /// reports at the end, or the end of the last block).
    ///
    /// Throws `.integrity` when a block starts before the end of the previous one.
    public func readLogicalContent(_ body: (UnsafeRawBufferPointer, Int64) throws -> Void) throws -> (size: Int64, sha256: String) {
        let name = currentPath.map { "entry '\($0)'" } ?? "no entry"
        let what = "artifact '\(artifactPath)': reading the data of \(name)"
        var hasher = SHA256()
        var position: Int64 = 0
        while true {
            var block: UnsafeRawPointer?
            var count = 0
            var offset: la_int64_t = 0
            let status = try handle.call(what, acceptWarning: false) {
                archive_read_data_block($0, &block, &count, &offset)
            }
            if status == ARCHIVE_EOF {
                // The offset of the end: past a trailing hole, the file's logical size.
                if offset > position {
                    hasher.updateWithZeros(offset - position)
                    position = offset
                }
                break
            }
            guard offset >= position else {
                throw LifeboatError(
                    .integrity, "\(what): a block at offset \(offset) overlaps the data before it (which ends at \(position))",
                    hint: handle.hint)
            }
            hasher.updateWithZeros(offset - position)
            position = offset
            guard count > 0, let block else { continue }
            let bytes = UnsafeRawBufferPointer(start: block, count: count)
            hasher.update(bufferPointer: bytes)
            try body(bytes, offset)
            position += Int64(count)
        }
        return (position, hasher.finalize().hex)
    }

    /// Reads the rest of the stored object (whatever libarchive did not need) so that the
    /// digest covers all of it, and returns its size and SHA-256 (lowercase hex). Errors of the
    /// source are rethrown.
    public func finish() throws -> (size: Int64, sha256: String) {
        guard let context = context as? ReadContext else {
            throw LifeboatError(.internalError, "archive '\(artifactPath)' is a stream, not a stored object: it has no digest",
                                hint: "Report this as a bug in Lifeboat.")
        }
        return try context.finish()
    }

    /// For an archive read from an `ArchiveBlockSource`: reads the rest of the source (what
    /// libarchive did not need) and returns the count of bytes it gave in all.
    public func drain() throws -> Int64 {
        guard let context = context as? BlockReadContext else {
            return try finish().size
        }
        return try context.drain()
    }
}
