import CArchive
import Crypto
import LifeboatCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private let damagedHint = "The backup is damaged: restore from another backup, and run 'lifeboat verify' on the others."

/// Maps exact paths to their records (the first record when a path is listed twice).
private func recordsByPath(_ record: ArtifactRecord) -> [EntryPath: EntryRecord] {
    var result: [EntryPath: EntryRecord] = [:]
    for entry in record.entries {
        let path = EntryPath(recordedPathOf: entry)
        if result[path] == nil { result[path] = entry }
    }
    return result
}

/// Finishes reading and compares the stored object's size and digest with the record.
private func checkStoredObject(_ reader: ArtifactReader, _ record: ArtifactRecord) throws {
    let stored = try reader.finish()
    guard stored.size == record.size, stored.sha256 == record.sha256 else {
        throw LifeboatError(
            .integrity,
            "artifact '\(record.path)': the stored object (\(stored.size) bytes, SHA-256 \(stored.sha256)) does not match its record (\(record.size) bytes, SHA-256 \(record.sha256))",
            hint: damagedHint)
    }
}

/// Extracts every entry of an artifact under `directory` (which must exist): files (sparse
/// ones with their holes), directories, symbolic and hard links, FIFOs and devices, with
/// their names byte for byte, modes and modification times, and, when running as root, their
/// owners (by name when the name exists here, else by id, as GNU tar does). Checks each entry
/// against the record as it is written.
///
/// Refuses entries with absolute paths, `..` components, or paths through a symbolic link
/// (`ARCHIVE_EXTRACT_SECURE_*`), and hard links whose target is not a contained path
/// extracted before them as a file, or that carry data. Refuses, before writing anything, an
/// artifact holding devices when not running as root. Throws `.integrity` naming the artifact
/// and the entry when an entry's metadata, size or SHA-256 differs from the record, when an
/// entry is not in the record, when a recorded entry is missing, or when the stored object's
/// digest differs. Files written before the error stay on disk: the caller discards the
/// restore directory. The caller closes `source`.
public func extractArtifact(_ record: ArtifactRecord, source: any ObjectReader, to directory: String,
                            options: ExtractionOptions = ExtractionOptions()) throws {
    let artifact = "artifact '\(record.path)'"
    let isRoot = geteuid() == 0
    let devices = record.entries.filter { $0.kind == .characterDevice || $0.kind == .blockDevice }
    if !isRoot, !devices.isEmpty {
        let list = devices.prefix(3).map { "'\($0.path)'" }.joined(separator: ", ")
        throw LifeboatError(
            .usage, "\(artifact) holds \(devices.count) device\(devices.count == 1 ? "" : "s") (\(list)\(devices.count > 3 ? ", …" : "")), which only root can create",
            hint: "Run the restore as root.")
    }
    // Resolved so that the path holds no symbolic link, which ARCHIVE_EXTRACT_SECURE_SYMLINKS
    // would refuse (e.g. a restore directory under a symlinked /var).
    guard let resolved = realpath(directory, nil) else {
        let reason = String(cString: strerror(errno))
        throw LifeboatError(.io, "unable to use restore directory '\(directory)': \(reason)",
                            hint: "Create the directory (or fix its permissions) and run the restore again.")
    }
    let base = String(cString: resolved)
    free(resolved)
    let prefix = Array((base.hasSuffix("/") ? base : base + "/").utf8)
    /// The C string of an archive path rewritten under `base` (nil when it holds a NUL).
    func underBase(_ path: EntryPath) -> [CChar]? { EntryPath(bytes: prefix + path.bytes).cString }

    let reader = try ArtifactReader(source: source, artifactPath: record.path)
    let disk = try ArchiveHandle(
        kind: .writeDisk,
        hint: "Check that the restore directory '\(base)' is writable and has free space, then run the restore again.")
    // ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS is not set: the rewritten paths are absolute
    // (under `base`); the archive's own paths are checked by `isContainedRelativePath` instead.
    var flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_NODOTDOT
        | ARCHIVE_EXTRACT_SECURE_SYMLINKS
    if isRoot { flags |= ARCHIVE_EXTRACT_OWNER }
    try disk.call("restore into '\(base)': setting up the extraction") {
        archive_write_disk_set_options($0, flags)
    }
    if isRoot {
        // Owners by name first, then by id (names are looked up with getpwnam/getgrnam).
        try disk.call("restore into '\(base)': setting up the extraction") {
            archive_write_disk_set_standard_lookup($0)
        }
    }

    let expected = recordsByPath(record)
    var seen: Set<EntryPath> = []
    /// Files extracted so far: the only entries a hard link may name.
    var files: Set<EntryPath> = []
    let refusedHint = "The artifact was not written by Lifeboat or was tampered with: restore from another backup."

    while let header = try reader.nextEntry() {
        let path = header.path
        guard header.rawPath.isContainedRelativePath else {
            throw LifeboatError(
                .integrity, "\(artifact): refusing to extract entry '\(path)': its path leaves the restore directory",
                hint: refusedHint)
        }
        guard let recorded = expected[header.rawPath] else {
            throw LifeboatError(.integrity, "\(artifact): entry '\(path)' is not in the record", hint: damagedHint)
        }
        guard seen.insert(header.rawPath).inserted else {
            throw LifeboatError(.integrity, "\(artifact): entry '\(path)' appears more than once", hint: damagedHint)
        }
        if let difference = headerDifferences(header, recorded).first {
            throw LifeboatError(.integrity, "\(artifact): entry '\(path)' \(difference)", hint: damagedHint)
        }
        guard let entry = reader.currentEntry else {
            throw LifeboatError(.internalError, "\(artifact): entry '\(path)' has no libarchive entry",
                                hint: "Report this as a bug in Lifeboat.")
        }
        if header.kind == .hardlink {
            // A hard link names a file extracted before it, by a contained path, and carries
            // no data: libarchive would otherwise link to any file it can reach and write the
            // entry's data into it.
            guard let target = header.rawLinkTarget, target.isContainedRelativePath, files.contains(target),
                  header.size == 0 else {
                throw LifeboatError(
                    .integrity,
                    "\(artifact): refusing to extract hard link '\(path)' to '\(header.linkTarget ?? "")': a hard link must name a file extracted before it, inside the restore directory, and carry no data",
                    hint: refusedHint)
            }
            guard let rewritten = underBase(target) else {
                throw LifeboatError(.integrity, "\(artifact): hard link '\(path)' names a target holding a NUL byte",
                                    hint: refusedHint)
            }
            archive_entry_copy_hardlink(entry, rewritten)
        }
        guard let rewrittenPath = underBase(header.rawPath) else {
            throw LifeboatError(.integrity, "\(artifact): entry '\(path)' has a path holding a NUL byte", hint: refusedHint)
        }
        archive_entry_copy_pathname(entry, rewrittenPath)
        if header.kind == .symlink, let newTarget = options.symlinkTargets[header.rawPath] {
            // Checked against the record as stored above; only the disk gets the new target.
            guard let target = newTarget.cString else {
                throw LifeboatError(.usage, "\(artifact): the new target of symbolic link '\(path)' holds a NUL byte")
            }
            archive_entry_copy_symlink(entry, target)
        }
        let what = "\(artifact): extracting entry '\(path)' into '\(base)'"
        // An entry already on disk with the recorded content is read and checked, not written.
        let writes = !options.unchanged.contains(header.rawPath)
        if writes {
            try disk.call(
                what,
                hint: "If the message names a symbolic link or an unsafe path, the artifact is not trustworthy: restore from another backup; otherwise check that '\(base)' is writable and has free space."
            ) { archive_write_header($0, entry) }
        }

        // Blocks are written at their offsets, so the holes of a sparse file stay holes.
        let data = try reader.readLogicalContent { block, offset in
            guard writes, let blockBase = block.baseAddress else { return }
            try disk.call(what, acceptWarning: false) {
                archive_write_data_block($0, blockBase, block.count, offset)
            }
        }
        if writes { try disk.call(what) { archive_write_finish_entry($0) } }

        let digest = recordedDigest(header, dataDigest: data.sha256)
        guard data.size == recorded.size, digest == recorded.sha256 else {
            throw LifeboatError(
                .integrity,
                "\(artifact): entry '\(path)' does not match its record: \(data.size) bytes with SHA-256 \(digest), expected \(recorded.size) bytes with SHA-256 \(recorded.sha256)",
                hint: damagedHint)
        }
        if header.kind == .file { files.insert(header.rawPath) }
    }
    // Sets the modes and times of directories, deferred until their contents are written.
    try disk.call("restore into '\(base)': finishing the extraction") { archive_write_close($0) }

    let missing = record.entries.filter { !seen.contains(EntryPath(recordedPathOf: $0)) }.map(\.path)
    guard missing.isEmpty else {
        let list = missing.prefix(5).map { "'\($0)'" }.joined(separator: ", ")
        let more = missing.count > 5 ? " and \(missing.count - 5) more" : ""
        throw LifeboatError(
            .integrity, "\(artifact): \(missing.count) recorded entries are missing from the archive: \(list)\(more)",
            hint: damagedHint)
    }
    try checkStoredObject(reader, record)
}

/// How `extractArtifact` departs from writing every entry as stored.
public struct ExtractionOptions: Sendable {
    /// New targets for symbolic links, by entry path (a tablespace restored elsewhere). The
    /// stored target is still checked against the record.
    public var symlinkTargets: [EntryPath: EntryPath]
    /// Entries already on disk with the recorded content (a delta restore): read and checked
    /// like every other, but not written.
    public var unchanged: Set<EntryPath>

    public init(symlinkTargets: [EntryPath: EntryPath] = [:], unchanged: Set<EntryPath> = []) {
        self.symlinkTargets = symlinkTargets
        self.unchanged = unchanged
    }
}

/// Reads the stream `stream` of an artifact (see `ArtifactWriter.addStream`) and hands its
/// bytes to `consume`, one chunk at a time, in order.
///
/// Each chunk is buffered whole and its SHA-256 checked against the record before any of its
/// bytes reach `consume`, so corrupt data is never passed on. Throws `.integrity` when a chunk
/// is out of order, missing, not in the record or damaged, and, once every chunk has been
/// consumed, when the stored object's digest differs from the record. Errors of `consume` are
/// rethrown. The caller closes `source`.
public func readStream(
    _ record: ArtifactRecord, source: any ObjectReader, stream: String,
    consume: (UnsafeRawBufferPointer) throws -> Void
) throws {
    let artifact = "artifact '\(record.path)'"
    let chunks = record.entries.filter { $0.stream == stream }
    guard !chunks.isEmpty else {
        throw LifeboatError(.integrity, "\(artifact): its record lists no stream named '\(stream)'",
                            hint: "Check the name of the stream to restore; the manifest lists the streams of each artifact.")
    }
    guard chunks.map({ $0.chunk ?? -1 }).sorted() == Array(0..<chunks.count) else {
        throw LifeboatError(.integrity, "\(artifact): the record's chunks of stream '\(stream)' are not numbered 0 to \(chunks.count - 1)",
                            hint: damagedHint)
    }
    let maximumChunk: Int64 = 1 << 30
    let expected = recordsByPath(record)
    let reader = try ArtifactReader(source: source, artifactPath: record.path)
    var nextChunk = 0
    var probe = [UInt8](repeating: 0, count: 4096)
    var block = [UInt8](repeating: 0, count: 1 << 20)

    while let header = try reader.nextEntry() {
        let path = header.path
        guard let recorded = expected[header.rawPath] else {
            throw LifeboatError(.integrity, "\(artifact): entry '\(path)' is not in the record", hint: damagedHint)
        }
        guard recorded.stream == stream else { continue }
        guard recorded.chunk == nextChunk else {
            let found = recorded.chunk.map(String.init) ?? "without a number"
            throw LifeboatError(
                .integrity,
                "\(artifact): entry '\(path)' is chunk \(found) of stream '\(stream)' but chunk \(nextChunk) was expected next",
                hint: damagedHint)
        }
        guard header.kind == .file, header.size == recorded.size, recorded.size >= 0, recorded.size <= maximumChunk else {
            throw LifeboatError(
                .integrity,
                "\(artifact): entry '\(path)' is a \(header.kind.rawValue) of \(header.size) bytes but the record says a file of \(recorded.size) bytes",
                hint: damagedHint)
        }
        // Grown as the bytes arrive, never allocated up front from the declared size: a
        // header and record declaring a gibibyte over a few bytes cost those few bytes.
        var data: [UInt8] = []
        while data.count < Int(recorded.size) {
            let wanted = min(block.count, Int(recorded.size) - data.count)
            let n = try block.withUnsafeMutableBytes { try reader.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<wanted])) }
            if n == 0 { break }
            data += block[0..<n]
        }
        let extra = try probe.withUnsafeMutableBytes { try reader.read(into: $0) }
        let digest = SHA256.hash(data: data).hex
        guard data.count == Int(recorded.size), extra == 0, digest == recorded.sha256 else {
            throw LifeboatError(
                .integrity,
                "\(artifact): entry '\(path)' (chunk \(nextChunk) of stream '\(stream)') does not match its record: SHA-256 \(digest), expected \(recorded.sha256)",
                hint: damagedHint)
        }
        try data.withUnsafeBytes { try consume($0) }
        nextChunk += 1
    }
    guard nextChunk == chunks.count else {
        throw LifeboatError(
            .integrity,
            "\(artifact): stream '\(stream)' ends after \(nextChunk) chunks but the record lists \(chunks.count)",
            hint: damagedHint)
    }
    try checkStoredObject(reader, record)
}
