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
            skipped = try archiveDirectory(root: configuration.path, into: writer, exclude: configuration.exclude).skipped
            for entry in skipped { context.logger.warning("\(entry)", metadata: ["entry.path": "\(entry.path)", "entry.reason": "\(entry.reason.rawValue)"]) }
        }
        // What was skipped is part of the record, so that the manifest says the backup is incomplete.
        let record = FilesRecord(path: configuration.path, hostname: context.host, skipped: skipped.isEmpty ? nil : skipped)
        return BackupOutcome(record: try SourceRecord(kind: "files", details: record), skipped: skipped)
    }
}
