import Foundation
import LifeboatArchive
import LifeboatCore
import LifeboatIO

/// Backs up a directory tree into one artifact.
struct FilesBackup {
    let configuration: FilesConfiguration

    func run(into sink: ArtifactSink, context: RunContext) throws -> BackupOutcome {
        guard isDirectory(configuration.path) else {
            throw LifeboatError(.source, "directory '\(configuration.path)' to back up does not exist or is not a directory",
                                hint: "Check 'source.files.path' in the policy.")
        }
        var skipped: [SkippedEntry] = []
        try sink.artifact(role: .files) { writer in
            let warnings = try archiveDirectory(root: configuration.path, into: writer, exclude: configuration.exclude)
            for warning in warnings {
                context.logger.warning("\(warning)")
                skipped.append(SkippedEntry(path: configuration.path, reason: warning))
            }
        }
        let record = FilesRecord(path: configuration.path, hostname: context.host)
        return BackupOutcome(record: try SourceRecord(kind: "files", details: record), skipped: skipped)
    }
}
