import CArchive
import Crypto
import LifeboatCore

/// Write-callback state: hashes and counts the stored (compressed) bytes and hands them to
/// the object store.
final class WriteContext: ArchiveCallbackContext {
    let sink: any ObjectWriter
    var hasher = SHA256()
    var byteCount: Int64 = 0
    /// Set when the archive is abandoned: nothing more reaches the sink (or the digest).
    var discardsOutput = false

    init(sink: any ObjectWriter) {
        self.sink = sink
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
    context.hasher.update(bufferPointer: bytes)
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
    /// Whether `archive_write_close` was called (it must not be called twice).
    private var closeCalled = false
    /// Buffer for `addFile`; allocated once per writer.
    private let fileBuffer: UnsafeMutableRawBufferPointer

    static let fileBufferSize = 256 << 10
    static let blockSize = 1 << 20

    /// Starts an artifact written into `sink`.
    /// - Parameters:
    ///   - compression: `.zstd` adds a zstd filter; `.none` writes a plain tar.
    ///   - level: zstd compression level (1–22); ignored without compression.
    public init(sink: any ObjectWriter, compression: Compression, level: Int = 3) throws {
        let key = sink.key
        artifactKey = key
        context = WriteContext(sink: sink)
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
    /// backed up); the writer is then unusable.
    public func addFile(
        path: String, size: Int64, mode: UInt32, modificationTime: Int64,
        read: (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws {
        try perform { handle in
            guard size >= 0 else {
                throw LifeboatError(.internalError, "artifact '\(artifactKey)': entry '\(path)' has a negative size",
                                    hint: "Report this as a bug in Lifeboat.")
            }
            try writeHeader(handle, path: path, type: ArchiveFileType.regular, mode: mode, size: size,
                            modificationTime: modificationTime)
            var hasher = SHA256()
            var total: Int64 = 0
            while true {
                let n = try read(fileBuffer)
                guard n >= 0, n <= fileBuffer.count else {
                    throw LifeboatError(
                        .internalError,
                        "file '\(path)': read returned \(n) for a buffer of \(fileBuffer.count) bytes",
                        hint: "Report this as a bug in Lifeboat.")
                }
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
            guard total == size else {
                throw LifeboatError(
                    .source,
                    "file '\(path)' changed size while being backed up: expected \(size) bytes, read \(total)",
                    hint: "Stop whatever writes to this file during backups (or exclude it), then run the backup again.")
            }
            entries.append(EntryRecord(
                path: path, kind: .file, size: size, sha256: hasher.finalize().hex,
                mode: mode & 0o7777, modificationTime: modificationTime))
        }
    }

    /// Adds a directory entry.
    public func addDirectory(path: String, mode: UInt32, modificationTime: Int64) throws {
        try perform { handle in
            try writeHeader(handle, path: path, type: ArchiveFileType.directory, mode: mode, size: 0,
                            modificationTime: modificationTime)
            entries.append(EntryRecord(
                path: path, kind: .directory, size: 0, sha256: emptySHA256,
                mode: mode & 0o7777, modificationTime: modificationTime))
        }
    }

    /// Adds a symbolic link (not followed). Its record holds the SHA-256 of `target`'s UTF-8 bytes.
    public func addSymlink(path: String, target: String, modificationTime: Int64) throws {
        try perform { handle in
            try writeHeader(handle, path: path, type: ArchiveFileType.symlink, mode: 0o777, size: 0,
                            modificationTime: modificationTime, symlinkTarget: target)
            entries.append(EntryRecord(
                path: path, kind: .symlink, size: 0, sha256: sha256Hex(of: target),
                modificationTime: modificationTime, linkTarget: target))
        }
    }

    /// Adds a stream of unknown length (such as the output of `pg_dump`), cut into entries of
    /// `chunkSize` bytes named `<name>.000000`, `<name>.000001`, …, recorded with `stream`
    /// and `chunk`. An empty stream still gets one empty entry.
    ///
    /// A tar header needs the entry's size, so each chunk is buffered: `read` is called on a
    /// thread of its own that fills the next chunk while this one compresses the current one
    /// (at most two chunks in memory). Errors thrown by `read` are rethrown here. When this
    /// throws, it first waits for a `read` in progress to return.
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
                    let bytes = UnsafeRawBufferPointer(rebasing: chunk.buffer[0..<chunk.count])
                    try writeHeader(handle, path: path, type: ArchiveFileType.regular, mode: 0o600,
                                    size: Int64(chunk.count), modificationTime: 0)
                    try writeData(handle, bytes, path: path)
                    entries.append(EntryRecord(
                        path: path, kind: .file, size: Int64(chunk.count),
                        sha256: SHA256.hash(data: bytes).hex, mode: 0o600, modificationTime: 0,
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

    /// Ends the archive and returns the stored object's size, its SHA-256 (lowercase hex) and
    /// the records of the entries, in order. Does not commit the sink: the caller does.
    public func finish() throws -> (size: Int64, sha256: String, entries: [EntryRecord]) {
        try perform { handle in
            closeCalled = true
            try handle.call("artifact '\(artifactKey)': finishing the archive") { archive_write_close($0) }
        }
        state = .finished
        return (context.byteCount, context.hasher.finalize().hex, entries)
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

    private func writeHeader(
        _ handle: ArchiveHandle, path: String, type: UInt32, mode: UInt32, size: Int64,
        modificationTime: Int64, symlinkTarget: String? = nil
    ) throws {
        let entry = try ArchiveEntryHandle()
        archive_entry_set_pathname(entry.pointer, path)
        archive_entry_set_filetype(entry.pointer, type)
        archive_entry_set_perm(entry.pointer, mode & 0o7777)
        archive_entry_set_size(entry.pointer, size)
        archive_entry_set_mtime(entry.pointer, time_t(modificationTime), 0)
        if let symlinkTarget {
            archive_entry_set_symlink(entry.pointer, symlinkTarget)
        }
        try handle.call("artifact '\(artifactKey)': writing the header of entry '\(path)'") {
            archive_write_header($0, entry.pointer)
        }
    }

    private func writeData(_ handle: ArchiveHandle, _ bytes: UnsafeRawBufferPointer, path: String) throws {
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
