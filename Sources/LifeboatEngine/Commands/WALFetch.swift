import Foundation
import LifeboatCore
import LifeboatIO
import Logging

/// `wal-fetch POLICY %f %p`: PostgreSQL's `restore_command`. Fetches one archived file,
/// verified, into the path PostgreSQL gives; `.notArchived` when the archive does not hold it
/// (PostgreSQL asks for files that do not exist as a matter of course).
///
/// Prefetch: on fetching a segment, the next `wal.prefetch` segments of its timeline are
/// fetched at once, each on a thread, into `<dir of %p>/lifeboat/prefetch/` (verified like any
/// fetch), so that the calls for them are served from there and replay does not wait for one
/// round trip per segment. The spool is refilled when it runs below half.
public struct WALFetchCommand {
    /// The configuration (the policy's repository and `wal.prefetch`), or a repository given
    /// by its address alone — a restore made on a machine that has nothing but the
    /// repository configures `restore_command` that way.
    public let source: RepositorySource
    public let context: RunContext
    /// Segments fetched ahead when the repository is given by its address (no policy to say).
    public var prefetchWithoutConfiguration: Int

    public init(source: RepositorySource, context: RunContext, prefetch: Int = PostgresConfiguration.WALSettings().prefetch) {
        self.source = source
        self.context = context
        prefetchWithoutConfiguration = prefetch
    }

    public init(configuration: Configuration, context: RunContext) {
        self.init(source: .configuration(configuration), context: context)
    }

    public enum Outcome: Sendable, Equatable {
        case fetched(fromSpool: Bool)
        case notArchived
    }

    public func run(policy name: String, file fileName: String, destination: String) throws -> Outcome {
        let repositoryConfig: RepositoryConfig
        let prefetch: Int
        switch source {
        case .configuration(let configuration):
            let (policy, postgres) = try walPolicy(configuration, named: name, command: "wal-fetch")
            repositoryConfig = try configuration.repository(for: policy)
            prefetch = postgres.wal.prefetch
        case .address(let config):
            repositoryConfig = config
            prefetch = prefetchWithoutConfiguration
        }
        let context = self.context.with(metadata: "wal.file", fileName)
        guard !fileName.contains("/"), WALFileName(fileName, segmentSize: 1 << 20) != nil else {
            throw LifeboatError(.usage, "'\(fileName)' is not a WAL file name",
                                hint: "Use 'lifeboat wal-fetch \(name) %f %p' as restore_command: PostgreSQL replaces %f with the file's name and %p with where it goes.")
        }
        let isSegment = WALSegment(name: fileName, segmentSize: 1 << 20) != nil
        // A fetch killed half-way (SIGKILL) left its temporary file beside %p; PostgreSQL never
        // removes files it does not know in pg_wal.
        for stale in LocalFile.removeStaleTemporaries(beside: destination) {
            context.logger.info("removed the temporary file of a killed wal-fetch", metadata: ["path": "\(directoryName(of: destination))/\(stale)"])
        }
        let spool = PrefetchSpool(destinationDirectory: directoryName(of: destination))
        var cachedArchive: WALArchive?
        func openArchive() throws -> (WALArchive, WALArchiveRecord) {
            let opened = try cachedArchive ?? WALArchive(
                repository: try Repository.open(repositoryConfig, context: context),
                policy: name, context: context)
            cachedArchive = opened
            guard let record = try opened.readRecord() else {
                throw LifeboatError(.notFound, "policy '\(name)' has no WAL archive in \(opened.repository.locate(WALArchiveLayout.prefix(policy: name))): no WAL was ever archived for it",
                                    hint: "Check the policy named in restore_command, and that archive_command pushed WAL with 'lifeboat wal-push \(name) %p'.")
            }
            return (opened, record)
        }

        if isSegment, prefetch > 0 {
            spool.drop(before: fileName, logger: context.logger)
            if try spool.take(fileName, to: destination) {
                context.logger.debug("WAL file served from the prefetch spool")
                if spool.count() <= prefetch / 2 {
                    let (archive, record) = try openArchive()
                    if let segment = WALSegment(name: fileName, segmentSize: record.segmentSize) {
                        refill(after: segment, count: prefetch, archive: archive, spool: spool, logger: context.logger)
                    }
                }
                return .fetched(fromSpool: true)
            }
        }

        let (archive, record) = try openArchive()
        guard let file = WALFileName(fileName, segmentSize: record.segmentSize) else {
            throw LifeboatError(.usage, "'\(fileName)' is not a WAL file name for the archive's segments of \(record.segmentSize) bytes",
                                hint: "Check that restore_command names this cluster's policy.")
        }
        guard try archive.fetch(file, to: destination) else {
            context.logger.debug("WAL file is not archived")
            return .notArchived
        }
        context.logger.debug("WAL file fetched")
        if case .segment(let segment) = file, prefetch > 0 {
            refill(after: segment, count: prefetch, archive: archive, spool: spool, logger: context.logger)
        }
        return .fetched(fromSpool: false)
    }

    /// Fetches the `count` segments after `segment` that the spool lacks, eight at a time. A
    /// segment not archived (yet) is skipped; a failure is logged and left to the call that
    /// needs it, which fetches it directly and reports the error.
    func refill(after segment: WALSegment, count: Int, archive: WALArchive, spool: PrefetchSpool, logger: Logger) {
        var wanted: [WALSegment] = []
        var next = segment
        for _ in 0..<count {
            next = next.next
            if !spool.contains(next.name) { wanted.append(next) }
        }
        guard !wanted.isEmpty else { return }
        do {
            try makeDirectories(spool.directory, mode: 0o700)
        } catch {
            logger.warning("the prefetch spool cannot be created; fetching one segment at a time", metadata: ["error": "\(error)"])
            return
        }
        let results = ResultSlots<Result<Bool, any Error>>(count: wanted.count)
        Threads.run(wanted.enumerated().map { index, segment in
            { @Sendable in results.set(index, Result { try archive.fetch(.segment(segment), to: spool.path(segment.name)) }) }
        }, width: 8, name: "lifeboat-wal-prefetch")
        var fetched = 0
        for (index, result) in results.values.enumerated() {
            switch result {
            case .success(true): fetched += 1
            case .failure(let error):
                logger.warning("WAL segment could not be prefetched; it is fetched when PostgreSQL asks for it",
                               metadata: ["wal.prefetch_file": "\(wanted[index].name)", "error": "\(error)"])
            case .success(false), nil: break
            }
        }
        logger.debug("WAL segments prefetched", metadata: ["wal.prefetched": "\(fetched)", "wal.prefetch_wanted": "\(wanted.count)"])
    }
}

/// `<dir of %p>/lifeboat/prefetch/<segment>`: segments fetched (and verified) ahead of
/// PostgreSQL's calls for them.
struct PrefetchSpool: Sendable {
    let directory: String

    init(destinationDirectory: String) {
        directory = destinationDirectory + "/lifeboat/prefetch"
    }

    func path(_ name: String) -> String { directory + "/" + name }

    func contains(_ name: String) -> Bool { pathExists(path(name)) }

    /// The segments spooled.
    func count() -> Int {
        ((try? directoryEntries(directory)) ?? []).filter { !$0.hasPrefix(".") }.count
    }

    /// Moves a spooled segment onto `destination`; false when it is not spooled.
    func take(_ name: String, to destination: String) throws -> Bool {
        guard contains(name) else { return false }
        try LocalFile.rename(path(name), to: destination)
        return true
    }

    /// Removes the segments that sort before `name` (replay is past them) and temporary
    /// files a killed run left.
    func drop(before name: String, logger: Logger) {
        let entries: [String]
        do {
            entries = try directoryEntries(directory)
        } catch {
            logger.debug("the prefetch spool cannot be listed", metadata: ["error": "\(error)"])
            return
        }
        for entry in entries where entry.hasPrefix(".") || entry < name {
            do {
                try LocalFile.remove(path(entry))
            } catch {
                logger.debug("a spooled WAL file could not be removed", metadata: ["error": "\(error)"])
            }
        }
    }
}
