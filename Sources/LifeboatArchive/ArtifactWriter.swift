import CArchive
import Crypto
import Glibc
import LifeboatCore

/// Write-callback state: counts the stored (compressed) bytes, hashes them unless told not
/// to, and hands them to the object store.
final class WriteContext: ArchiveCallbackContext {
    let sink: any ObjectWriter
    /// Nil when nothing needs the digest of the stored bytes.
    var hasher: SHA256?
    var byteCount: Int64 = 0
    /// Set when the archive is abandoned: nothing more reaches the sink (or the digest).
    var discardsOutput = false

    init(sink: any ObjectWriter, hashesOutput: Bool) {
        self.sink = sink
        hasher = hashesOutput ? SHA256() : nil
    }
}

/// libarchive's write callback; the client data is an unretained `WriteContext`.
private func artifactWriteCallback(
    _ archive: OpaquePointer?, _ clientData: UnsafeMutableRawPointer?,
    _ buffer: UnsafeRawPointer?, _ length: Int
) -> Int {
    guard let clientData else { return -1 }
    let context = Unmanaged<WriteContext>.fromOpaque(clientData).takeUnretainedValue()
    // A discarded archive is closed only to release libarchive's buffers: swallow its output.
    if context.discardsOutput { return length }
    guard length > 0 else { return 0 }
    guard let buffer else { return -1 }
    let bytes = UnsafeRawBufferPointer(start: buffer, count: length)
    context.hasher?.update(bufferPointer: bytes)
    context.byteCount += Int64(length)
    do {
        try context.sink.write(bytes)
    } catch {
        context.record(error)
        return -1
    }
    return length
}

/// Writes one artifact: a tar archive (pax restricted, readable as ustar), compressed with
/// zstd or not, streamed into an `ObjectWriter`, with the SHA-256 of every entry and of the
/// stored bytes.
///
/// Use it from one thread (never the cooperative pool: the sink blocks). Add entries, then
/// call `finish()` and commit the sink, or call `abort()` and abort the sink. After any error
/// the writer is unusable (a tar entry cannot be left half written): abort it.
///
/// Entry paths are stored as given; extraction refuses absolute paths and `..`.
public final class ArtifactWriter {
    private enum State {
        case open, failed, finished, aborted
    }

    /// The key of the object being written, for messages.
    public let artifactKey: String
    private var handle: ArchiveHandle?
    private let context: WriteContext
    private var state = State.open
    private var entries: [EntryRecord] = []
    /// Paths of the files added so far: the entries a hard link may name.
    private var fileEntries: Set<EntryPath> = []
    /// Whether `archive_write_close` was called (it must not be called twice).
    private var closeCalled = false
    /// Buffer for `addFile`; allocated once per writer.
    private let fileBuffer: UnsafeMutableRawBufferPointer

    static let fileBufferSize = 256 << 10
    static let blockSize = 1 << 20

    /// The most zstd worker threads the automatic setting starts.
    public static let automaticCompressionThreadLimit = 2

    /// The zstd worker threads for a policy's `compression.threads`: the number given, or for 0 (automatic) one
    /// per online CPU (`sysconf(_SC_NPROCESSORS_ONLN)`), at most
    /// `automaticCompressionThreadLimit`: each worker costs about 15 MiB of job buffers, and
    /// a dump arrives from one `pg_dump` no faster than a few workers compress it.
    public static func compressionThreads(_ threads: Int) -> Int {
        if threads > 0 { return threads }
        let online = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        return Int(max(1, min(online, automaticCompressionThreadLimit)))
    }

    /// Starts an artifact written into `sink`.
    /// - Parameters:
    ///   - compression: `.zstd` adds a zstd filter; `.none` writes a plain tar.
    ///   - level: zstd compression level (1–22); ignored without compression.
    ///   - threads: zstd worker threads (libarchive's `threads` option, `ZSTD_c_nbWorkers`),
    ///     which compress while the calling thread reads, tars, hashes and writes; nil (the
    ///     default) compresses on the calling thread. Ignored without compression.
    ///   - hashesStoredBytes: whether `finish()` reports the SHA-256 of the stored bytes (an
    ///     artifact's manifest record holds it). False saves a pass over the output where
    ///     nothing records that digest (a WAL object); `finish()` then reports nil.
    public init(sink: any ObjectWriter, compression: Compression, level: Int = 3, threads: Int? = nil,
                hashesStoredBytes: Bool = true) throws {
        let key = sink.key
        artifactKey = key
        context = WriteContext(sink: sink, hashesOutput: hashesStoredBytes)
        let handle = try ArchiveHandle(
            kind: .write,
            hint: "Check that the repository is reachable and has free space, then run the backup again.")
        handle.context = context
        let what = "artifact '\(key)': setting up the tar writer"
        try handle.call(what) { archive_write_set_format_pax_restricted($0) }
        switch compression {
        case .zstd:
            guard (1...22).contains(level) else {
                throw LifeboatError(
                    .configuration, "artifact '\(key)': zstd compression level \(level) is out of range",
                    hint: "Use a compression level from 1 to 22 (3 is a good default).")
            }
            try handle.call(what) { archive_write_add_filter_zstd($0) }
            try handle.call(what) { archive_write_set_filter_option($0, "zstd", "compression-level", "\(level)") }
            if let threads {
                guard (1...Compression.maximumThreads).contains(threads) else {
                    throw LifeboatError(
                        .internalError, "artifact '\(key)': \(threads) zstd worker threads is out of range",
                        hint: "Report this as a bug in Lifeboat.")
                }
                try handle.call(what) { archive_write_set_filter_option($0, "zstd", "threads", "\(threads)") }
            }
        case .none:
            break
        }
        try handle.call(what) { archive_write_set_bytes_per_block($0, Int32(Self.blockSize)) }
        try handle.call(what) { archive_write_set_bytes_in_last_block($0, 1) }
        let clientData = Unmanaged.passUnretained(context).toOpaque()
        try handle.call("artifact '\(key)': opening the tar writer") {
            archive_write_open2($0, clientData, nil, artifactWriteCallback, nil, nil)
        }
        self.handle = handle
        fileBuffer = .allocate(byteCount: Self.fileBufferSize, alignment: 16)
    }

    deinit {
        if state != .finished { discard() }
        handle = nil
        fileBuffer.deallocate()
    }

    /// Adds a regular file of `size` bytes, pulling its data from `read` (which fills the
    /// buffer it is given and returns the count, 0 at the end).
    ///
    /// Throws when `read` does not deliver exactly `size` bytes (the file changed while being
    /// backed up); the writer is then unusable. Returns the entry's record (its SHA-256).
    @discardableResult
    public func addFile(
        path: EntryPath, size: Int64, mode: UInt32, modificationTime: Int64, owner: EntryOwner? = nil,
        read: (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws -> EntryRecord {
        try perform { handle in
            try checkSize(size, path)
            try writeHeader(handle, Header(path: path, type: ArchiveFileType.regular, mode: mode, size: size,
                                           modificationTime: modificationTime, owner: owner))
            var hasher = SHA256()
            var total: Int64 = 0
            while true {
                let n = try read(fileBuffer)
                try checkReadCount(n, limit: fileBuffer.count, path)
                if n == 0 { break }
                let accepted = Int(min(Int64(n), size - total))
                if accepted > 0 {
                    let bytes = UnsafeRawBufferPointer(rebasing: fileBuffer[0..<accepted])
                    hasher.update(bufferPointer: bytes)
                    try writeData(handle, bytes, path: path)
                }
                total += Int64(n)
                if total > size { break }
            }
            guard total == size else { throw changedSize(path, expected: size, read: total) }
            fileEntries.insert(path)
            entries.append(record(path, kind: .file, size: size, sha256: hasher.finalize().hex, mode: mode,
                                  modificationTime: modificationTime, owner: owner))
        }
        return entries[entries.count - 1]
    }

    /// Adds a sparse file of logical size `size` whose data lies in `dataRegions` (sorted, not
    /// overlapping, inside the file); everything else is a hole, stored as such (GNU sparse
    /// format 1.0, which GNU tar reads) and restored as a hole.
    ///
    /// `read` fills the buffer with the file's bytes from the offset it is given and returns
    /// the count (0 at the end of the file); it is called only inside the data regions, and
    /// once at `size` to check that the file did not grow. The record's SHA-256 is that of
    /// the full logical content, holes read as zeros. When the regions cover the whole file,
    /// it is stored as a plain file.
    ///
    /// Throws when the file is shorter or longer than `size` (it changed while being backed
    /// up); the writer is then unusable.
    public func addSparseFile(
        path: EntryPath, size: Int64, dataRegions: [DataRegion], mode: UInt32, modificationTime: Int64,
        owner: EntryOwner? = nil, read: (UnsafeMutableRawBufferPointer, Int64) throws -> Int
    ) throws {
        try perform { handle in
            try checkSize(size, path)
            let regions = try normalizedRegions(dataRegions, size: size, path: path)
            let isSparse = !(regions.count == 1 && regions[0].offset == 0 && regions[0].length == size) && size > 0
            try writeHeader(handle, Header(path: path, type: ArchiveFileType.regular, mode: mode, size: size,
                                           modificationTime: modificationTime, owner: owner,
                                           dataRegions: isSparse ? regions : nil))
            var hasher = SHA256()
            var position: Int64 = 0
            for region in regions {
                try writeZeros(region.offset - position, handle, &hasher, path: path)
                var done: Int64 = 0
                while done < region.length {
                    let wanted = Int(min(Int64(fileBuffer.count), region.length - done))
                    let n = try read(UnsafeMutableRawBufferPointer(rebasing: fileBuffer[0..<wanted]), region.offset + done)
                    try checkReadCount(n, limit: wanted, path)
                    if n == 0 { throw changedSize(path, expected: size, read: region.offset + done) }
                    let bytes = UnsafeRawBufferPointer(rebasing: fileBuffer[0..<n])
                    hasher.update(bufferPointer: bytes)
                    try writeData(handle, bytes, path: path)
                    done += Int64(n)
                }
                position = region.offset + region.length
            }
            try writeZeros(size - position, handle, &hasher, path: path)
            let beyond = try read(UnsafeMutableRawBufferPointer(rebasing: fileBuffer[0..<1]), size)
            try checkReadCount(beyond, limit: 1, path)
            guard beyond == 0 else { throw changedSize(path, expected: size, read: size + Int64(beyond)) }
            fileEntries.insert(path)
            entries.append(record(path, kind: .file, size: size, sha256: hasher.finalize().hex, mode: mode,
                                  modificationTime: modificationTime, owner: owner,
                                  sparseMap: isSparse ? regions : nil))
        }
    }

    /// Adds a directory entry.
    public func addDirectory(path: EntryPath, mode: UInt32, modificationTime: Int64, owner: EntryOwner? = nil) throws {
        try perform { handle in
            try writeHeader(handle, Header(path: path, type: ArchiveFileType.directory, mode: mode, size: 0,
                                           modificationTime: modificationTime, owner: owner))
            entries.append(record(path, kind: .directory, size: 0, sha256: emptySHA256, mode: mode,
                                  modificationTime: modificationTime, owner: owner))
        }
    }

    /// Adds a symbolic link (not followed). Its record holds the SHA-256 of `target`'s bytes.
    public func addSymlink(path: EntryPath, target: EntryPath, modificationTime: Int64, owner: EntryOwner? = nil) throws {
        try perform { handle in
            try writeHeader(handle, Header(path: path, type: ArchiveFileType.symlink, mode: 0o777, size: 0,
                                           modificationTime: modificationTime, owner: owner, symlink: target))
            entries.append(record(path, kind: .symlink, size: 0, sha256: sha256Hex(of: target), mode: nil,
                                  modificationTime: modificationTime, owner: owner, linkTarget: target))
        }
    }

    /// Adds a hard link: `path` is another name of the file `target`, which must have been
    /// added to this artifact before, as a file (so that the archive holds its data once, in
    /// the entry that comes first). Its record holds the SHA-256 of `target`'s bytes.
    public func addHardLink(
        path: EntryPath, target: EntryPath, mode: UInt32, modificationTime: Int64, owner: EntryOwner? = nil
    ) throws {
        try perform { handle in
            guard fileEntries.contains(target) else {
                throw LifeboatError(
                    .internalError,
                    "artifact '\(artifactKey)': hard link '\(path)' names '\(target)', which is not a file added before it",
                    hint: "Report this as a bug in Lifeboat.")
            }
            try writeHeader(handle, Header(path: path, type: ArchiveFileType.regular, mode: mode, size: 0,
                                           modificationTime: modificationTime, owner: owner, hardlink: target))
            entries.append(record(path, kind: .hardlink, size: 0, sha256: sha256Hex(of: target), mode: mode,
                                  modificationTime: modificationTime, owner: owner, linkTarget: target))
        }
    }

    /// Adds a FIFO, or a character or block device with its device number.
    public func addSpecialFile(
        path: EntryPath, kind: EntryRecord.Kind, device: DeviceNumber? = nil, mode: UInt32, modificationTime: Int64,
        owner: EntryOwner? = nil
    ) throws {
        try perform { handle in
            let type: UInt32
            switch kind {
            case .fifo: type = ArchiveFileType.fifo
            case .characterDevice: type = ArchiveFileType.characterDevice
            case .blockDevice: type = ArchiveFileType.blockDevice
            default:
                throw LifeboatError(.internalError, "artifact '\(artifactKey)': entry '\(path)' is a \(kind.rawValue), not a special file",
                                    hint: "Report this as a bug in Lifeboat.")
            }
            guard (kind == .fifo) == (device == nil) else {
                throw LifeboatError(.internalError, "artifact '\(artifactKey)': entry '\(path)': a device needs a device number, a FIFO has none",
                                    hint: "Report this as a bug in Lifeboat.")
            }
            try writeHeader(handle, Header(path: path, type: type, mode: mode, size: 0,
                                           modificationTime: modificationTime, owner: owner, device: device))
            entries.append(record(path, kind: kind, size: 0, sha256: emptySHA256, mode: mode,
                                  modificationTime: modificationTime, owner: owner, device: device))
        }
    }

    /// Adds a stream of unknown length (such as the output of `pg_dump`), cut into entries of
    /// `chunkSize` bytes named `<name>.000000`, `<name>.000001`, …, recorded with `stream`
    /// and `chunk`. An empty stream still gets one empty entry.
    ///
    /// A tar header needs the entry's size, so each chunk is buffered: `read` is called on a
    /// thread of its own that fills (and hashes) the next chunk while this one writes the
    /// current one (at most two chunks in memory). Errors thrown by `read` are rethrown here.
    /// When this throws, it first waits for a `read` in progress to return.
    public func addStream(
        name: String, chunkSize: Int = 16 << 20,
        read: @escaping @Sendable (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws {
        try perform { handle in
            guard chunkSize > 0, chunkSize <= 1 << 30 else {
                throw LifeboatError(
                    .configuration, "stream '\(name)': chunk size \(chunkSize) is out of range",
                    hint: "Use a chunk size from 1 byte to 1 GiB.")
            }
            let chunker = StreamChunker(name: name, chunkSize: chunkSize)
            chunker.start(read: read)
            defer { chunker.cancelAndWait() }
            var index = 0
            while true {
                let chunk = chunker.takeFilled()
                if let error = chunk.error { throw error }
                if chunk.count > 0 || index == 0 {
                    let path = Self.chunkPath(stream: name, index: index)
                    let entryPath = EntryPath(path)
                    let bytes = UnsafeRawBufferPointer(rebasing: chunk.buffer[0..<chunk.count])
                    try writeHeader(handle, Header(path: entryPath, type: ArchiveFileType.regular, mode: 0o600,
                                                   size: Int64(chunk.count), modificationTime: 0))
                    try writeData(handle, bytes, path: entryPath)
                    fileEntries.insert(entryPath)
                    entries.append(EntryRecord(
                        path: path, kind: .file, size: Int64(chunk.count),
                        sha256: chunk.sha256, mode: 0o600, modificationTime: 0,
                        stream: name, chunk: index))
                }
                chunker.recycle(chunk.buffer)
                if chunk.isLast { return }
                index += 1
            }
        }
    }

    /// The entry path of chunk `index` of a stream: `<stream>.000042`.
    public static func chunkPath(stream: String, index: Int) -> String {
        let digits = String(index)
        return "\(stream)." + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    /// Ends the archive and returns the stored object's size, its SHA-256 (lowercase hex; nil
    /// when made with `hashesStoredBytes: false`) and the records of the entries, in order.
    /// Does not commit the sink: the caller does.
    public func finish() throws -> (size: Int64, sha256: String?, entries: [EntryRecord]) {
        try perform { handle in
            closeCalled = true
            try handle.call("artifact '\(artifactKey)': finishing the archive") { archive_write_close($0) }
        }
        state = .finished
        return (context.byteCount, context.hasher?.finalize().hex, entries)
    }

    /// Frees libarchive's state without writing anything more. Never throws. The caller aborts
    /// the sink.
    public func abort() {
        if state != .finished {
            state = .aborted
            discard()
        }
        handle = nil
    }

    /// Abandons the archive without sending anything more to the sink: marks it failed (so
    /// that closing does not pad the current entry) and closes it with the output swallowed.
    /// Closing matters: libarchive 3.6 frees its output block buffer only when closing, and
    /// `archive_write_free` does not close a failed archive.
    private func discard() {
        context.discardsOutput = true
        guard let handle, !closeCalled else { return }
        closeCalled = true
        handle.fail()
        do {
            try handle.call("artifact '\(artifactKey)': discarding the archive") { archive_write_close($0) }
        } catch {
            // Deliberately ignored: the archive is being thrown away, and this runs on error
            // paths (and in `deinit`) that must not throw; the caller already has the cause.
        }
    }

    // MARK: - Internals

    /// Runs `body` if the writer is usable; any error makes it unusable.
    private func perform(_ body: (ArchiveHandle) throws -> Void) throws {
        guard state == .open, let handle else {
            let why: String
            switch state {
            case .finished: why = "it is already finished"
            case .aborted: why = "it was aborted"
            case .open, .failed: why = "of an earlier error"
            }
            throw LifeboatError(
                .internalError, "artifact '\(artifactKey)' cannot be written to because \(why)",
                hint: "Report this as a bug in Lifeboat.")
        }
        do {
            try body(handle)
        } catch {
            state = .failed
            discard()
            throw error
        }
    }

    /// What goes into one tar header.
    private struct Header {
        var path: EntryPath
        var type: UInt32
        var mode: UInt32
        var size: Int64
        var modificationTime: Int64
        var owner: EntryOwner?
        var symlink: EntryPath?
        var hardlink: EntryPath?
        var device: DeviceNumber?
        /// For a sparse file: its data regions (an empty list for a file that is all hole).
        var dataRegions: [DataRegion]?
    }

    /// The C string of a name, refusing the empty name and names holding a NUL (libarchive
    /// would store them cut short).
    private func cName(_ name: EntryPath, of path: EntryPath) throws -> [CChar] {
        guard !name.bytes.isEmpty, let cString = name.cString else {
            throw LifeboatError(.internalError, "artifact '\(artifactKey)': entry '\(path)' has an empty name or one holding a NUL byte",
                                hint: "Report this as a bug in Lifeboat.")
        }
        return cString
    }

    private func writeHeader(_ handle: ArchiveHandle, _ header: Header) throws {
        let entry = try ArchiveEntryHandle()
        let pointer = entry.pointer
        // Names are handed over as bytes. The pax writer stores a name that is not ASCII in a
        // `path`/`linkpath` record, converted from the locale's character set to UTF-8; in the
        // C locale (Lifeboat never calls setlocale) that conversion fails for every byte above
        // 0x7f and libarchive stores the name's bytes as they are, marking the header
        // `hdrcharset=BINARY` (it returns ARCHIVE_WARN, which `call` accepts). Its reader
        // then copies the bytes back unchanged.
        archive_entry_copy_pathname(pointer, try cName(header.path, of: header.path))
        archive_entry_set_filetype(pointer, header.type)
        archive_entry_set_perm(pointer, header.mode & 0o7777)
        // The size first: libarchive ignores sparse regions that end beyond it.
        archive_entry_set_size(pointer, header.size)
        archive_entry_set_mtime(pointer, time_t(header.modificationTime), 0)
        if let owner = header.owner {
            archive_entry_set_uid(pointer, la_int64_t(owner.uid))
            archive_entry_set_gid(pointer, la_int64_t(owner.gid))
            if let user = owner.user { archive_entry_copy_uname(pointer, user) }
            if let group = owner.group { archive_entry_copy_gname(pointer, group) }
        }
        if let symlink = header.symlink {
            archive_entry_copy_symlink(pointer, try cName(symlink, of: header.path))
        }
        if let hardlink = header.hardlink {
            archive_entry_copy_hardlink(pointer, try cName(hardlink, of: header.path))
        }
        if let device = header.device {
            archive_entry_set_rdevmajor(pointer, dev_t(device.major))
            archive_entry_set_rdevminor(pointer, dev_t(device.minor))
        }
        if let regions = header.dataRegions {
            for region in regions {
                archive_entry_sparse_add_entry(pointer, region.offset, region.length)
            }
            // A file that is all hole still needs one (empty) region to be stored as sparse.
            if regions.isEmpty { archive_entry_sparse_add_entry(pointer, header.size, 0) }
        }
        try handle.call("artifact '\(artifactKey)': writing the header of entry '\(header.path)'") {
            archive_write_header($0, pointer)
        }
    }

    /// The record of an entry just written.
    private func record(
        _ path: EntryPath, kind: EntryRecord.Kind, size: Int64, sha256: String, mode: UInt32?, modificationTime: Int64,
        owner: EntryOwner?, linkTarget: EntryPath? = nil, device: DeviceNumber? = nil, sparseMap: [DataRegion]? = nil
    ) -> EntryRecord {
        let name = path.recorded
        let target = linkTarget?.recorded
        return EntryRecord(
            path: name.display, pathBytes: name.base64, kind: kind, size: size, sha256: sha256,
            mode: mode.map { $0 & 0o7777 }, modificationTime: modificationTime,
            linkTarget: target?.display, linkTargetBytes: target?.base64,
            uid: owner?.uid, gid: owner?.gid, user: owner?.user, group: owner?.group,
            deviceMajor: device?.major, deviceMinor: device?.minor, sparseMap: sparseMap)
    }

    private func checkSize(_ size: Int64, _ path: EntryPath) throws {
        guard size >= 0 else {
            throw LifeboatError(.internalError, "artifact '\(artifactKey)': entry '\(path)' has a negative size",
                                hint: "Report this as a bug in Lifeboat.")
        }
    }

    private func checkReadCount(_ n: Int, limit: Int, _ path: EntryPath) throws {
        guard n >= 0, n <= limit else {
            throw LifeboatError(
                .internalError, "file '\(path)': read returned \(n) for a buffer of \(limit) bytes",
                hint: "Report this as a bug in Lifeboat.")
        }
    }

    private func changedSize(_ path: EntryPath, expected: Int64, read: Int64) -> LifeboatError {
        LifeboatError(
            .source, "file '\(path)' changed size while being backed up: expected \(expected) bytes, read \(read)",
            hint: "Stop whatever writes to this file during backups (or exclude it), then run the backup again.")
    }

    /// The regions sorted, checked (positive lengths, inside the file, not overlapping) and
    /// with adjacent ones joined, as libarchive joins them.
    private func normalizedRegions(_ regions: [DataRegion], size: Int64, path: EntryPath) throws -> [DataRegion] {
        var result: [DataRegion] = []
        for region in regions.sorted(by: { $0.offset < $1.offset }) where region.length != 0 {
            let end = result.last.map { $0.offset + $0.length } ?? 0
            guard region.offset >= end, region.length > 0, region.offset <= size - region.length else {
                throw LifeboatError(
                    .internalError,
                    "artifact '\(artifactKey)': sparse file '\(path)' of \(size) bytes has an invalid data region (offset \(region.offset), length \(region.length))",
                    hint: "Report this as a bug in Lifeboat.")
            }
            if !result.isEmpty, region.offset == end {
                result[result.count - 1].length += region.length
            } else {
                result.append(region)
            }
        }
        return result
    }

    /// Hashes `count` zeros and hands them to libarchive, which stores no data for a hole of
    /// a sparse entry (its pax writer takes the whole logical content and skips the holes).
    private func writeZeros(_ count: Int64, _ handle: ArchiveHandle, _ hasher: inout SHA256, path: EntryPath) throws {
        var remaining = count
        try zeroBlock.withUnsafeBytes { zeros in
            while remaining > 0 {
                let n = Int(min(Int64(zeros.count), remaining))
                let bytes = UnsafeRawBufferPointer(rebasing: zeros[0..<n])
                hasher.update(bufferPointer: bytes)
                try writeData(handle, bytes, path: path)
                remaining -= Int64(n)
            }
        }
    }

    private func writeData(_ handle: ArchiveHandle, _ bytes: UnsafeRawBufferPointer, path: EntryPath) throws {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let written = try handle.call(
                "artifact '\(artifactKey)': writing the data of entry '\(path)'", acceptWarning: false
            ) {
                archive_write_data($0, base + offset, bytes.count - offset)
            }
            guard written > 0 else {
                throw LifeboatError(
                    .archive, "artifact '\(artifactKey)': libarchive accepted no data for entry '\(path)'",
                    hint: "Report this as a bug in Lifeboat.")
            }
            offset += written
        }
    }
}
