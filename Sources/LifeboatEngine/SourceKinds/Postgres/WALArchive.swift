import Foundation
import LifeboatArchive
import LifeboatCore
import LifeboatIO
import Logging

/// A policy's WAL archive in its repository (`WALArchiveLayout`): what `wal-push` writes,
/// `wal-fetch` reads, and list, verify and prune walk.
///
/// Every object is immutable and written once with a conditional create, so nothing here
/// takes a repository lock, lists `locks/` or looks at the policy's backups: a push or a fetch
/// touches `archive.json` and its own object, nothing else. (A prune that removes WAL must
/// therefore never remove an object a push may still compare against: only segments older
/// than every backup it keeps.)
public struct WALArchive: Sendable {
    public let repository: Repository
    public let policy: String
    public let context: RunContext
    /// zstd level for pushed files (the policy's `compression.level`).
    public var compressionLevel: Int
    /// zstd worker threads for a push (nil: compress on the pushing thread). `wal-push` runs
    /// once per segment and waits for nothing but the disk, so its segment compresses on
    /// every core: `automaticCompressionThreads`.
    public var compressionThreads: Int?

    public init(repository: Repository, policy: String, context: RunContext, compressionLevel: Int = 3,
                compressionThreads: Int? = nil) {
        self.repository = repository
        self.policy = policy
        self.context = context
        self.compressionLevel = compressionLevel
        self.compressionThreads = compressionThreads
    }

    /// zstd worker threads for one file pushed alone: one per online CPU, at most 4 (a 16 MiB
    /// segment is 16 jobs of 1 MiB for zstd level 3); nil on one CPU, where a worker would
    /// only add a hand-off.
    public static var automaticCompressionThreads: Int? {
        let online = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        return online > 1 ? min(online, 4) : nil
    }

    /// What a push did.
    public enum PushResult: Sendable, Equatable {
        /// Stored now: the file's size and SHA-256, and the bytes stored.
        case archived(size: Int64, sha256: String, storedBytes: Int64)
        /// The archive already held this file with the same content; nothing was written.
        case alreadyArchived(size: Int64, sha256: String)

        public var sha256: String {
            switch self {
            case .archived(_, let sha256, _), .alreadyArchived(_, let sha256): return sha256
            }
        }

        public var size: Int64 {
            switch self {
            case .archived(let size, _, _), .alreadyArchived(let size, _): return size
            }
        }
    }

    public func key(for file: WALFileName) -> String { WALArchiveLayout.key(policy: policy, file: file) }

    var recordKey: String { WALArchiveLayout.recordKey(policy: policy) }

    // MARK: archive.json

    /// The archive's record, or nil when nothing was ever pushed for this policy.
    public func readRecord() throws -> WALArchiveRecord? {
        let hint = "Check that nothing but Lifeboat writes under '\(WALArchiveLayout.prefix(policy: policy))' in this repository."
        guard let record = try repository.readJSON(WALArchiveRecord.self, key: recordKey,
                                                   invalid: "\(repository.locate(recordKey)) is not a valid WAL archive record", hint: hint)
        else { return nil }
        guard record.format <= WALArchiveRecord.currentFormat else {
            throw LifeboatError(.usage, "\(repository.locate(recordKey)) has format \(record.format); this Lifeboat (\(LifeboatVersion.current)) reads format \(WALArchiveRecord.currentFormat)",
                                hint: "Upgrade Lifeboat on this server.")
        }
        guard WALSegment.isValidSize(record.segmentSize), UInt64(record.systemIdentifier) != nil else {
            throw LifeboatError(.integrity, "\(repository.locate(recordKey)) names segment size \(record.segmentSize) and system identifier '\(record.systemIdentifier)', which are not valid",
                                hint: hint)
        }
        return record
    }

    /// The record of the archive, created for this cluster when there is none (a conditional
    /// create: of two first pushes at once, the one that loses reads the winner's), and
    /// checked to name `systemIdentifier`.
    public func record(forCluster systemIdentifier: UInt64, segmentSize: UInt64) throws -> WALArchiveRecord {
        var record = try readRecord()
        if record == nil {
            // The first push of the policy: the repository's format marker too, as a backup
            // writes it (and the store must be able to create objects conditionally).
            try repository.prepareForWriting(now: context.clock())
            let created = WALArchiveRecord(systemIdentifier: String(systemIdentifier), segmentSize: segmentSize, created: context.clock())
            do {
                try repository.store.put(key: recordKey, bytes: Array(try JSON.encode(created)), ifAbsent: true)
                record = created
                context.logger.info("WAL archive created", metadata: [
                    "wal.archive": "\(repository.locate(recordKey))", "postgres.system_identifier": "\(systemIdentifier)",
                    "wal.segment_size": "\(segmentSize)",
                ])
            } catch let error as LifeboatError where error.code == .alreadyExists {
                record = try readRecord()
            }
        }
        guard let record else {
            throw LifeboatError(.storage, "\(repository.locate(recordKey)) was reported to exist and then could not be found",
                                hint: "Check that nothing else deletes objects in this repository, and try again.")
        }
        try checkCluster(record, systemIdentifier: systemIdentifier)
        return record
    }

    /// Refuses a cluster that is not the one whose WAL this archive holds.
    public func checkCluster(_ record: WALArchiveRecord, systemIdentifier: UInt64) throws {
        guard record.systemIdentifier == String(systemIdentifier) else {
            throw LifeboatError(
                .integrity,
                "this server's cluster has system identifier \(systemIdentifier) (global/pg_control), but policy '\(policy)' archives the WAL of the cluster with system identifier \(record.systemIdentifier) (\(repository.locate(recordKey))); nothing was archived",
                hint: "Each cluster needs a policy of its own: point this server's archive_command at another policy. If this cluster replaced the archived one for good (a new initdb, pg_upgrade), give it a new policy and take a new base backup; the old archive stays for the old backups.")
        }
    }

    // MARK: Push

    /// Pushes one local file. Segments and partial segments must carry `systemIdentifier` and
    /// the archive's segment size in their long page header, and start where their name says.
    /// A file already archived with the same content is success; with other content, an error
    /// (the archived object is never replaced).
    public func push(path: String, as file: WALFileName, systemIdentifier: UInt64, record: WALArchiveRecord) throws -> PushResult {
        try context.cancellation.checkCancelled()
        let key = key(for: file)
        let source: LocalFile
        do {
            source = try LocalFile.openForReading(path)
        } catch let error as LifeboatError where error.code == .notFound {
            throw LifeboatError(.io, "WAL file '\(path)' does not exist", hint: "archive_command must pass %p, the path PostgreSQL gives, relative to the data directory it runs in.")
        }
        defer { source.close() }
        let (size, modified) = try source.sizeAndModificationTime()
        switch file {
        case .segment(let segment), .partial(let segment):
            try checkSegmentHeader(try source.read(at: 0, count: WALSegmentHeader.size), of: segment, file: file, path: path,
                                   systemIdentifier: systemIdentifier, record: record)
            if case .segment = file, UInt64(size) != record.segmentSize {
                throw LifeboatError(.source, "WAL segment '\(path)' has \(size) bytes, not the cluster's segment size \(record.segmentSize); it was not archived",
                                    hint: "Only PostgreSQL's completed segments can be archived: check what wrote this file.")
            }
        case .history, .backupHistory:
            break
        }
        let writer = try repository.store.openWriter(key: key, ifAbsent: true)
        var sha256: String?
        do {
            // Nothing records the digest of a WAL object's stored bytes (it has no manifest
            // record; reading checks the file against its checksum entry): not computed.
            let artifact = try ArtifactWriter(sink: writer, compression: .zstd, level: compressionLevel,
                                              threads: compressionThreads, hashesStoredBytes: false)
            let stored: Int64
            do {
                let entry = try artifact.addFile(path: EntryPath(file.description), size: size, mode: 0o600, modificationTime: modified) {
                    try source.read(into: $0)
                }
                sha256 = entry.sha256
                try Self.addChecksumEntry(to: artifact, for: file, sha256: entry.sha256, modificationTime: modified)
                stored = try artifact.finish().size
            } catch {
                artifact.abort()
                throw error
            }
            try writer.commit()
            return .archived(size: size, sha256: sha256 ?? "", storedBytes: stored)
        } catch let error as LifeboatError where error.code == .alreadyExists && sha256 != nil {
            writer.abort()
            return try compareWithArchived(file, sha256: sha256 ?? "", size: size)
        } catch {
            writer.abort()
            throw error
        }
    }

    /// The second entry of every object: `<hex>  <name>\n`, as `sha256sum` writes it.
    static func addChecksumEntry(to artifact: ArtifactWriter, for file: WALFileName, sha256: String, modificationTime: Int64) throws {
        let line = Array("\(sha256)  \(file.description)\n".utf8)
        var offset = 0
        try artifact.addFile(path: EntryPath(WALArchiveLayout.checksumEntryName(for: file)), size: Int64(line.count),
                             mode: 0o600, modificationTime: modificationTime) { buffer in
            let n = min(buffer.count, line.count - offset)
            line[offset..<offset + n].withUnsafeBytes { buffer.copyMemory(from: $0) }
            offset += n
            return n
        }
    }

    func checkSegmentHeader(_ bytes: [UInt8], of segment: WALSegment, file: WALFileName, path: String,
                            systemIdentifier: UInt64, record: WALArchiveRecord) throws {
        guard let header = WALSegmentHeader(bytes) else {
            throw LifeboatError(.source, "'\(path)' does not start with a WAL long page header, so it is not a WAL segment; it was not archived",
                                hint: "Check what wrote this file into pg_wal.")
        }
        guard header.systemIdentifier == systemIdentifier else {
            throw LifeboatError(.integrity, "WAL segment '\(path)' belongs to the cluster with system identifier \(header.systemIdentifier) (its page header), not to this server's cluster \(systemIdentifier) (global/pg_control); it was not archived",
                                hint: "The file is not this cluster's WAL: check what copied it into pg_wal.")
        }
        guard UInt64(header.segmentSize) == record.segmentSize else {
            throw LifeboatError(.integrity, "WAL segment '\(path)' has segment size \(header.segmentSize) in its page header, but the WAL archive of policy '\(policy)' holds segments of \(record.segmentSize) bytes (\(repository.locate(recordKey))); it was not archived",
                                hint: "A cluster's segment size never changes: this archive belongs to another cluster setup. Give this cluster a policy of its own.")
        }
        guard header.pageAddress == segment.startLSN else {
            throw LifeboatError(.integrity, "WAL file '\(path)' (\(file)) starts at LSN \(header.pageAddress) by its page header, not at \(segment.startLSN) as its name says; it was not archived",
                                hint: "The file was renamed or damaged: check pg_wal.")
        }
    }

    /// The push of a file whose key was taken: the same content is success, other content an error.
    func compareWithArchived(_ file: WALFileName, sha256: String, size: Int64) throws -> PushResult {
        guard let stored = try read(file, into: nil) else {
            throw LifeboatError(.storage, "\(repository.locate(key(for: file))) was reported to exist and then could not be read",
                                hint: "Check that nothing else deletes objects in this repository, and run the push again.")
        }
        guard stored.sha256 == sha256 else {
            throw LifeboatError(
                .alreadyExists,
                "WAL file \(file) is already archived at \(repository.locate(key(for: file))) with other content: archived SHA-256 \(stored.sha256) (\(stored.size) bytes), local SHA-256 \(sha256) (\(size) bytes); the archived file was kept",
                hint: "Two clusters, or two timelines that reuse a name, are archiving into policy '\(policy)'. Check which server writes this WAL; a cluster needs a policy of its own.")
        }
        return .alreadyArchived(size: size, sha256: sha256)
    }
}

// MARK: Reading

extension WALArchive {
    /// Whether the archive holds `file` (one `stat`; the object is not read).
    public func isArchived(_ file: WALFileName) throws -> Bool {
        try repository.store.stat(key: key(for: file)) != nil
    }

    /// Fetches `file` into `path`: verified against its checksum entry while written to a
    /// temporary name beside `path`, synced, then renamed onto `path`. False (and nothing
    /// written) when the file is not archived.
    public func fetch(_ file: WALFileName, to path: String) throws -> Bool {
        guard let reader = try openObject(file) else { return false }
        defer { reader.close() }
        let temporary = LocalFile.temporaryName(beside: path)
        let output = try LocalFile.createNew(temporary)
        do {
            _ = try read(file, from: reader) { try output.write($0) }
            try output.sync()
            output.close()
            try LocalFile.rename(temporary, to: path)
            return true
        } catch {
            output.close()
            _ = try? LocalFile.remove(temporary)  // on a path that already failed; its cause is thrown
            throw error
        }
    }

    /// Re-reads `file` and checks it against its checksum entry; `.notFound` when it is not
    /// archived, `.integrity` naming the object when it does not match.
    public func verify(_ file: WALFileName) throws {
        guard try read(file, into: nil) != nil else {
            throw LifeboatError(.notFound, "WAL file \(file) is not archived for policy '\(policy)' (\(repository.locate(key(for: file))) does not exist)")
        }
    }

    /// Walks the archived files of the policy in key order (histories after segments), with
    /// each object's size and time, for list, verify and prune. Objects whose key is not one
    /// this layout writes are skipped. `body` returns false to stop.
    public func forEachArchived(_ body: (WALFileName, ObjectInfo) throws -> Bool) throws {
        guard let record = try readRecord() else { return }
        let prefix = WALArchiveLayout.prefix(policy: policy)
        try repository.store.forEachObject(prefix: prefix) { object in
            guard let file = Self.file(forKey: object.key, prefix: prefix, segmentSize: record.segmentSize),
                  key(for: file) == object.key
            else { return true }
            return try body(file, object)
        }
    }

    /// The file a key holds, by its last component; nil for anything else (`archive.json`).
    static func file(forKey key: String, prefix: String, segmentSize: UInt64) -> WALFileName? {
        guard key.hasPrefix(prefix), key.hasSuffix(WALArchiveLayout.suffix) else { return nil }
        let name = key.split(separator: "/").last.map { String($0.dropLast(WALArchiveLayout.suffix.count)) } ?? ""
        return WALFileName(name, segmentSize: segmentSize)
    }

    /// The object's reader, or nil when the file is not archived.
    func openObject(_ file: WALFileName) throws -> (any ObjectReader)? {
        do {
            return try repository.store.openReader(key: key(for: file))
        } catch let error as LifeboatError where error.code == .notFound {
            return nil
        }
    }

    /// Reads an archived file, handing its bytes to `body`, and checks them against the
    /// object's checksum entry. Nil when not archived.
    func read(_ file: WALFileName, into body: ((UnsafeRawBufferPointer) throws -> Void)?) throws -> (size: Int64, sha256: String)? {
        guard let reader = try openObject(file) else { return nil }
        defer { reader.close() }
        return try read(file, from: reader, into: body)
    }

    func read(_ file: WALFileName, from source: any ObjectReader,
              into body: ((UnsafeRawBufferPointer) throws -> Void)?) throws -> (size: Int64, sha256: String) {
        let location = repository.locate(key(for: file))
        func damaged(_ what: String) -> LifeboatError {
            LifeboatError(.integrity, "archived WAL file \(location) is damaged: \(what)",
                          hint: "The object was changed or damaged in the repository: check the repository's storage, and take a new base backup so that recovery no longer needs this file.")
        }
        let reader = try ArtifactReader(source: source, artifactPath: location)
        guard let first = try reader.nextEntry(), first.kind == .file, first.path == file.description, first.dataRegions == nil else {
            throw damaged("its first entry is not the file \(file)")
        }
        let content = try reader.readLogicalContent { bytes, _ in try body?(bytes) }
        let checksumName = WALArchiveLayout.checksumEntryName(for: file)
        guard let second = try reader.nextEntry(), second.kind == .file, second.path == checksumName, second.size <= 4096 else {
            throw damaged("its second entry is not \(checksumName)")
        }
        var line = [UInt8](repeating: 0, count: Int(second.size))
        var filled = 0
        while filled < line.count {
            let n = try line.withUnsafeMutableBytes { try reader.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[filled...])) }
            if n == 0 { break }
            filled += n
        }
        let text = String(decoding: line[0..<filled], as: UTF8.self)
        let expected = "  \(file.description)\n"
        guard text.hasSuffix(expected), text.count == 64 + expected.count else {
            throw damaged("\(checksumName) does not hold '<sha256>  \(file)'")
        }
        let recorded = String(text.prefix(64))
        guard recorded == content.sha256 else {
            throw damaged("the SHA-256 of \(file) is \(content.sha256), and \(checksumName) records \(recorded)")
        }
        guard try reader.nextEntry() == nil else { throw damaged("it holds more than \(file) and \(checksumName)") }
        _ = try reader.finish()
        return content
    }
}

// MARK: Pruning

extension WALArchive {
    /// Objects deleted per request (S3's DeleteObjects takes up to 1,000).
    static let pruneBatch = 500

    /// Deletes the archived WAL no base backup in `backups` needs (`WALRetention`): every
    /// segment, partial segment and backup history file before the segment where the oldest
    /// of them starts, on every timeline, oldest first, so that a prune killed half-way leaves
    /// an archive without gaps. Timeline history files stay. With no base backup, nothing is
    /// deleted. Nil when the policy has no WAL archive. With `dryRun`, only counts.
    public func prune(keeping backups: [PhysicalBackupInfo], dryRun: Bool) throws -> DependencyPruneReport? {
        guard let record = try readRecord() else { return nil }
        let what = "WAL files"
        var expired: [(file: WALFileName, object: ObjectInfo)] = []
        var kept = 0
        let first = WALRetention.firstNeededSegment(of: backups.map(\.record), segmentSize: record.segmentSize)
        try forEachArchived { file, object in
            if let first, WALRetention.isExpired(file, firstNeeded: first) {
                expired.append((file, object))
            } else {
                kept += 1
            }
            return true
        }
        guard let first, let oldest = backups.min(by: { $0.record.startLSN < $1.record.startLSN }) else {
            return DependencyPruneReport(what: what, deletedObjects: 0, deletedBytes: 0, keptObjects: kept,
                                         detail: "no base backup is kept, so the WAL archive is left as it is")
        }
        func number(_ file: WALFileName) -> (UInt64, UInt32) {
            switch file {
            case .segment(let s), .partial(let s), .backupHistory(let s, _): return (s.number, s.timeline)
            case .history(let timeline): return (0, timeline)
            }
        }
        expired.sort { a, b in
            let (na, ta) = number(a.file), (nb, tb) = number(b.file)
            return (na, ta, a.object.key) < (nb, tb, b.object.key)
        }
        let boundary = WALSegment(timeline: oldest.record.timeline, number: first, segmentSize: record.segmentSize)
        let report = DependencyPruneReport(
            what: what, deletedObjects: expired.count, deletedBytes: expired.reduce(0) { $0 + $1.object.size }, keptObjects: kept,
            detail: "WAL before segment \(boundary.name), where base backup \(oldest.id) (the oldest kept) starts at \(oldest.record.startLSN); timeline history files are kept")
        guard !dryRun, !expired.isEmpty else { return report }
        var deleted = 0
        for start in stride(from: 0, to: expired.count, by: Self.pruneBatch) {
            try context.cancellation.checkCancelled()
            let batch = expired[start..<min(start + Self.pruneBatch, expired.count)]
            do {
                try repository.store.delete(keys: batch.map(\.object.key))
            } catch let error as LifeboatError {
                throw error.prefixed("deleting the archived WAL of policy '\(policy)' failed at \(repository.locate(batch[batch.startIndex].object.key)) (\(deleted) of \(expired.count) files deleted before it)")
            }
            deleted += batch.count
            CrashPoint.pruneDependencies.reach(context)
        }
        context.logger.info("archived WAL deleted", metadata: [
            "wal.deleted": "\(deleted)", "wal.deleted_bytes": "\(report.deletedBytes)", "wal.kept": "\(kept)",
            "wal.first_kept_segment": "\(boundary.name)",
        ])
        return report
    }
}
