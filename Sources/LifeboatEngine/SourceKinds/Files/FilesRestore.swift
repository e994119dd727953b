import Foundation
import LifeboatArchive
import LifeboatCore
import LifeboatIO

/// Restores a `files` backup into a new or empty directory; never overwrites. A restore that
/// fails or is cancelled removes what it wrote (the directory was empty, and held by this
/// restore alone), so a half-restored tree is never mistaken for a whole one.
struct FilesRestore {
    let manifest: Manifest
    let repository: Repository
    let context: RunContext

    func run(to target: RestoreTarget) throws -> RestoreReport {
        guard case .directory(let directory) = target.location else {
            throw LifeboatError(.usage, "a files backup is restored into a directory, not \(target.location)",
                                hint: "Give --to a directory path.")
        }
        let created = !pathExists(directory)
        if !created {
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
        do {
            for artifact in manifest.artifacts {
                let source = try repository.openArtifact(artifact, of: manifest, context: context)
                defer { source.close() }
                try extractArtifact(artifact, source: source, to: directory)
                entries += artifact.entries.count
                context.logger.info("artifact restored", metadata: ["artifact.path": "\(artifact.path)", "artifact.entries": "\(artifact.entries.count)"])
            }
        } catch {
            removeWhatWasRestored(in: directory, created: created)
            throw error
        }
        return RestoreReport(policy: manifest.policy, backup: manifest.id, target: directory,
                             restored: ["\(entries) entr\(entries == 1 ? "y" : "ies")"])
    }

    /// Empties the restore directory (and removes it when this restore created it).
    func removeWhatWasRestored(in directory: String, created: Bool) {
        do {
            if created {
                try FileManager.default.removeItem(atPath: directory)
            } else {
                for name in try directoryEntries(directory) {
                    try FileManager.default.removeItem(atPath: directory + "/" + name)
                }
            }
            context.logger.info("removed what the failed restore had written", metadata: ["restore.target": "\(directory)"])
        } catch {
            context.logger.warning("could not remove what the failed restore had written; remove it before restoring again",
                                   metadata: ["restore.target": "\(directory)", "error": "\(error)"])
        }
    }
}
