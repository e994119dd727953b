import Foundation
import LifeboatArchive
import LifeboatCore
import LifeboatIO
import Logging

/// `wal-push POLICY %p`: PostgreSQL's `archive_command`. Runs once per WAL file, for years:
/// it reads `lifeboat.yaml` and its policy's file only, takes no lock, lists nothing in the
/// repository, and writes each file with one conditional create.
///
/// When PostgreSQL has more files waiting (`archive_status/*.ready`), it pushes up to
/// `wal.push_parallel` of them at once, the requested one included, and leaves a marker for
/// each other one it pushed (`<pg_wal>/lifeboat/pushed/<name>`: SHA-256 and size), so that
/// PostgreSQL's call for that file returns at once. PostgreSQL's own `.ready`/`.done` files
/// are never touched.
public struct WALPushCommand {
    public let configuration: Configuration
    public let context: RunContext
    /// The cluster's data directory (where `archive_command` runs): `global/pg_control` is read
    /// from it, and a relative path is relative to the current directory, as PostgreSQL gives it.
    public var dataDirectory: String

    public init(configuration: Configuration, context: RunContext, dataDirectory: String) {
        self.configuration = configuration
        self.context = context
        self.dataDirectory = dataDirectory
    }

    public struct Outcome: Sendable {
        /// The requested file's name.
        public var file: String
        /// What the push did; nil when a marker of an earlier push answered.
        public var result: WALArchive.PushResult?
        /// Other waiting files pushed by this run (and marked), and those that failed.
        public var alsoPushed: [String]
        public var alsoFailed: [String]
    }

    public func run(policy name: String, path: String) throws -> Outcome {
        let (policy, postgres) = try walPolicy(configuration, named: name, command: "wal-push")
        let context = self.context.with(metadata: "wal.file", fileName(of: path))
        let name = fileName(of: path)
        guard WALFileName(name, segmentSize: 1 << 20) != nil else {
            throw LifeboatError(.usage, "'\(path)' is not a WAL file: its name is neither a segment, a partial segment, a timeline history nor a backup history file",
                                hint: "Use 'lifeboat wal-push \(policy.name) %p' as archive_command: PostgreSQL replaces %p with the file's path.")
        }
        let walDirectory = directoryName(of: path)
        let markers = PushMarkers(walDirectory: walDirectory)

        // An earlier run pushed this file beside the one it was asked for.
        if let marker = try markers.read(name) {
            let local = try Self.digest(of: path)
            try markers.remove(name)
            if marker == local {
                context.logger.debug("WAL file was archived by an earlier run", metadata: ["wal.sha256": "\(local.sha256)"])
                return Outcome(file: name, result: nil, alsoPushed: [], alsoFailed: [])
            }
            context.logger.warning("WAL file differs from what an earlier run archived; pushing it again",
                                   metadata: ["wal.sha256": "\(local.sha256)", "wal.marker_sha256": "\(marker.sha256)"])
        }

        let systemIdentifier = try ClusterControl.systemIdentifier(dataDirectory: dataDirectory)
        let repository = try Repository.open(try configuration.repository(for: policy), context: context)
        let archive = WALArchive(repository: repository, policy: policy.name, context: context,
                                 compressionLevel: policy.compression == .zstd ? policy.compressionLevel : 3)
        let existing = try archive.readRecord()
        let segmentSize = try existing?.segmentSize ?? ClusterControl.segmentSize(near: path, walDirectory: walDirectory)
        guard let file = WALFileName(name, segmentSize: segmentSize) else {
            throw LifeboatError(.usage, "'\(name)' is not a WAL file name for segments of \(segmentSize) bytes",
                                hint: "Check that policy '\(policy.name)' archives this cluster.")
        }
        let record: WALArchiveRecord
        if let existing {
            try archive.checkCluster(existing, systemIdentifier: systemIdentifier)
            record = existing
        } else {
            record = try archive.record(forCluster: systemIdentifier, segmentSize: segmentSize)
        }

        var files: [(name: String, file: WALFileName)] = [(name, file)]
        if postgres.wal.pushParallel > 1 {
            files += try markers.waitingFiles(besides: name, in: walDirectory, segmentSize: record.segmentSize,
                                              limit: postgres.wal.pushParallel - 1, logger: context.logger)
        }
        // One file: its compression takes every core. Several: each compresses on its own thread.
        let pushing = WALArchive(repository: repository, policy: policy.name, context: context, compressionLevel: archive.compressionLevel,
                                 compressionThreads: files.count == 1 ? WALArchive.automaticCompressionThreads : nil)
        let results = ResultSlots<Result<WALArchive.PushResult, any Error>>(count: files.count)
        let started = context.clock()
        Threads.run(files.enumerated().map { index, item in
            let path = index == 0 ? path : walDirectory + "/" + item.name
            return { @Sendable in
                results.set(index, Result { try pushing.push(path: path, as: item.file, systemIdentifier: systemIdentifier, record: record) })
            }
        }, width: files.count, name: "lifeboat-wal-push")
        let milliseconds = Int(context.clock().timeIntervalSince(started) * 1000)

        var outcome = Outcome(file: name, result: nil, alsoPushed: [], alsoFailed: [])
        for (index, result) in results.values.enumerated() {
            let item = files[index]
            let logger = self.context.with(metadata: "wal.file", item.name).logger
            switch result {
            case .success(let pushed):
                logPushed(pushed, logger: logger, milliseconds: milliseconds, ahead: index > 0)
                if index == 0 {
                    outcome.result = pushed
                } else {
                    do {
                        try markers.write(item.name, PushMarkers.Marker(sha256: pushed.sha256, size: pushed.size))
                        outcome.alsoPushed.append(item.name)
                    } catch {
                        logger.warning("WAL file archived, but its marker could not be written; PostgreSQL's call for it will compare it again",
                                       metadata: ["error": "\(error)"])
                        outcome.alsoPushed.append(item.name)
                    }
                }
            case .failure(let error):
                if index == 0 { throw error }
                logger.warning("WAL file waiting beside the requested one could not be archived; it is pushed again when PostgreSQL asks for it",
                               metadata: ["error": "\(error)"])
                outcome.alsoFailed.append(item.name)
            case nil:
                throw LifeboatError(.internalError, "the push of WAL file \(item.name) did not report a result", hint: "Report this as a bug in Lifeboat.")
            }
        }
        if case .segment = file { PrefetchSpool(destinationDirectory: walDirectory).drop(before: name, logger: context.logger) }
        return outcome
    }

    private func logPushed(_ result: WALArchive.PushResult, logger: Logger, milliseconds: Int, ahead: Bool) {
        switch result {
        case .archived(let size, _, let stored):
            logger.info("WAL file archived", metadata: [
                "wal.bytes": "\(size)", "wal.stored_bytes": "\(stored)", "wal.ms": "\(milliseconds)",
                "wal.ahead": "\(ahead)",
            ])
        case .alreadyArchived(let size, let sha256):
            logger.info("WAL file was already archived with the same content; nothing written", metadata: [
                "wal.bytes": "\(size)", "wal.sha256": "\(sha256)", "wal.ahead": "\(ahead)",
            ])
        }
    }

    /// SHA-256 and size of a local file.
    static func digest(of path: String) throws -> PushMarkers.Marker {
        let file = try LocalFile.openForReading(path)
        defer { file.close() }
        var hasher = ContentHasher()
        var size: Int64 = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = try file.read(into: buffer)
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            size += Int64(n)
        }
        return PushMarkers.Marker(sha256: hasher.finalize(), size: size)
    }
}

/// The policy a WAL command serves: a postgres policy in physical mode.
func walPolicy(_ configuration: Configuration, named name: String, command: String) throws -> (Policy, PostgresConfiguration) {
    let policy = try configuration.policy(named: name)
    guard let postgres = policy.source as? PostgresConfiguration else {
        throw LifeboatError(.usage, "policy '\(name)' (\(policy.file)) backs up a '\(policy.source.kind)' source; \(command) serves PostgreSQL policies in physical mode",
                            hint: "Name the cluster's physical PostgreSQL policy in archive_command and restore_command.")
    }
    guard postgres.mode == .physical else {
        throw LifeboatError(.usage, "policy '\(name)' (\(policy.file)) is in mode '\(postgres.mode.rawValue)'; \(command) serves PostgreSQL policies in physical mode",
                            hint: "WAL archiving goes with physical base backups: use a policy with 'mode: physical' (or no mode) for this cluster.")
    }
    return (policy, postgres)
}

func fileName(of path: String) -> String {
    path.split(separator: "/", omittingEmptySubsequences: true).last.map(String.init) ?? path
}

func directoryName(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

/// What PostgreSQL's control file and WAL directory say about the cluster.
enum ClusterControl {
    /// `system_identifier`: the first 8 bytes of `global/pg_control`, little-endian.
    static func systemIdentifier(dataDirectory: String) throws -> UInt64 {
        let path = dataDirectory + "/global/pg_control"
        let bytes: [UInt8]?
        do {
            bytes = try LocalFile.contents(of: path, limit: 8)
        } catch let error as LifeboatError {
            throw LifeboatError(.io, "unable to read the cluster's control file: \(error.message)", hint: error.hint)
        }
        guard let bytes else {
            throw LifeboatError(.io, "'\(path)' does not exist, so the cluster's system identifier is unknown",
                                hint: "wal-push runs as PostgreSQL's archive_command, in the data directory; elsewhere, pass --pg-data with the data directory.")
        }
        guard bytes.count == 8 else {
            throw LifeboatError(.io, "'\(path)' is too short to be a PostgreSQL control file", hint: "Check the data directory.")
        }
        return (0..<8).reduce(0) { $0 | UInt64(bytes[$1]) << (8 * $1) }
    }

    /// The segment size, before the archive records one: from the file's own page header when
    /// it is a segment, else from a segment beside it (PostgreSQL always has one in pg_wal).
    static func segmentSize(near path: String, walDirectory: String) throws -> UInt64 {
        var candidates = [path]
        candidates += try directoryEntries(walDirectory)
            .filter { WALSegment(name: $0, segmentSize: 1 << 20) != nil }
            .map { walDirectory + "/" + $0 }
        for candidate in candidates {
            let header: [UInt8]
            do {
                let file = try LocalFile.openForReading(candidate)
                defer { file.close() }
                header = try file.read(at: 0, count: WALSegmentHeader.size)
            } catch {
                continue
            }
            if let parsed = WALSegmentHeader(header) { return UInt64(parsed.segmentSize) }
        }
        throw LifeboatError(.io, "the WAL segment size cannot be read: neither '\(path)' nor a segment in '\(walDirectory)' has a WAL page header",
                            hint: "Run wal-push as PostgreSQL's archive_command, with %p.")
    }
}

/// `<pg_wal>/lifeboat/pushed/<name>`: a file `wal-push` archived beside the one it was asked
/// for, with its SHA-256 and size (`<hex> <size>`), until PostgreSQL asks for it.
struct PushMarkers {
    struct Marker: Equatable {
        var sha256: String
        var size: Int64
    }

    let directory: String

    init(walDirectory: String) {
        directory = walDirectory + "/lifeboat/pushed"
    }

    func read(_ name: String) throws -> Marker? {
        guard let bytes = try LocalFile.contents(of: directory + "/" + name, limit: 256) else { return nil }
        let fields = String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count == 2, fields[0].count == 64, let size = Int64(fields[1]) else { return Marker(sha256: "", size: -1) }
        return Marker(sha256: String(fields[0]), size: size)
    }

    func write(_ name: String, _ marker: Marker) throws {
        try makeDirectories(directory, mode: 0o700)
        try LocalFile.replace(directory + "/" + name, with: Array("\(marker.sha256) \(marker.size)\n".utf8), sync: false)
    }

    func remove(_ name: String) throws {
        try LocalFile.remove(directory + "/" + name)
    }

    /// Files PostgreSQL has waiting (`archive_status/<name>.ready`) besides `name`, not marked
    /// already: history files first, then the rest in name order, at most `limit`. Markers of
    /// files no longer waiting are removed (PostgreSQL archived them, or they are gone).
    func waitingFiles(besides name: String, in walDirectory: String, segmentSize: UInt64, limit: Int,
                      logger: Logger) throws -> [(name: String, file: WALFileName)] {
        let ready = Set(try directoryEntries(walDirectory + "/archive_status")
            .filter { $0.hasSuffix(".ready") }
            .map { String($0.dropLast(".ready".count)) })
        var marked = Set<String>()
        for marker in try directoryEntries(directory) where !marker.hasPrefix(".") {
            if ready.contains(marker) {
                marked.insert(marker)
            } else {
                do {
                    try remove(marker)
                } catch {
                    logger.debug("a marker of a file no longer waiting could not be removed", metadata: ["error": "\(error)"])
                }
            }
        }
        let waiting = ready.subtracting(marked).subtracting([name])
            .compactMap { candidate in WALFileName(candidate, segmentSize: segmentSize).map { (name: candidate, file: $0) } }
            .sorted { a, b in
                let aHistory = a.name.hasSuffix(".history"), bHistory = b.name.hasSuffix(".history")
                return aHistory != bHistory ? aHistory : a.name < b.name
            }
        return Array(waiting.prefix(limit))
    }
}
