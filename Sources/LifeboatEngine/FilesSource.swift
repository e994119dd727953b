import Foundation
import LifeboatArchive
import LifeboatCore
import LifeboatIO
import Logging

/// A directory tree (configuration directories, as in an `/etc/...` tarball).
public struct FilesSource: BackupSource {
    public let config: FilesSourceConfig

    public init(config: FilesSourceConfig) { self.config = config }

    public func run(into sink: ArtifactSink, logger: Logger) throws -> SourceRecord {
        guard isDirectory(config.path) else {
            throw LifeboatError(.source, "directory '\(config.path)' to back up does not exist or is not a directory",
                                hint: "Check 'source.files.path' in the policy.")
        }
        var skipped: [SkippedEntry] = []
        try sink.artifact(role: "files") { writer in
            skipped = try archiveDirectory(root: config.path, into: writer, exclude: config.exclude).skipped
            for entry in skipped { logger.warning("\(entry)") }
        }
        // What was skipped is part of the record, so the summary and the exit status can say so.
        return SourceRecord(kind: "files", files: FilesSourceRecord(path: config.path, hostname: ProcessInfo.processInfo.hostName,
                                                                   skipped: skipped.isEmpty ? nil : skipped))
    }
}
