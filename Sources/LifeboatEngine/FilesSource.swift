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
        try sink.artifact(role: "files") { writer in
            let warnings = try archiveDirectory(root: config.path, into: writer, exclude: config.exclude)
            for warning in warnings { logger.warning("\(warning)") }
        }
        return SourceRecord(kind: "files", files: FilesSourceRecord(path: config.path, hostname: ProcessInfo.processInfo.hostName))
    }
}
