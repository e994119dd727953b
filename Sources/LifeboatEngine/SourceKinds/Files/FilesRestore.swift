import Foundation
import LifeboatArchive
import LifeboatCore
import LifeboatIO

/// Restores a `files` backup into a new or empty directory; never overwrites.
struct FilesRestore {
    let manifest: Manifest
    let repository: Repository
    let context: RunContext

    func run(to target: RestoreTarget) throws -> RestoreReport {
        guard case .directory(let directory) = target.location else {
            throw LifeboatError(.usage, "a files backup is restored into a directory, not \(target.location)",
                                hint: "Give --to a directory path.")
        }
        if pathExists(directory) {
            guard isDirectory(directory) else {
                throw LifeboatError(.targetNotEmpty, "restore target '\(directory)' exists and is not a directory")
            }
        } else {
            // Only the owner may look into what is being restored; the restored entries get
            // the modes the backup recorded.
            try makeDirectories(directory, mode: 0o700)
        }
        // Another restore into the same directory would mix its files with ours: the first
        // one holds the directory (the lock goes with the process, even after a crash).
        guard let held = try DirectoryLock.tryExclusive(directory) else {
            throw LifeboatError(.targetNotEmpty, "another restore is writing into '\(directory)'",
                                hint: "Wait for it to finish, or restore into another directory.")
        }
        defer { held.release() }
        let contents = try directoryEntries(directory)
        guard contents.isEmpty else {
            throw LifeboatError(.targetNotEmpty, "restore target '\(directory)' is not empty (\(contents.count) entr\(contents.count == 1 ? "y" : "ies"), e.g. '\(contents[0])')",
                                hint: "Restore into a new or empty directory; Lifeboat never overwrites existing files.")
        }
        var entries = 0
        for artifact in manifest.artifacts {
            let source = try repository.openArtifact(artifact, of: manifest, context: context)
            defer { source.close() }
            try extractArtifact(artifact, source: source, to: directory)
            entries += artifact.entries.count
            context.logger.info("artifact restored", metadata: ["artifact.path": "\(artifact.path)", "artifact.entries": "\(artifact.entries.count)"])
        }
        return RestoreReport(policy: manifest.policy, backup: manifest.id, target: directory,
                             restored: ["\(entries) entr\(entries == 1 ? "y" : "ies")"])
    }
}
