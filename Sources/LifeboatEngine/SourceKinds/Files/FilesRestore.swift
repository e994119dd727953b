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
        let held = try RestoreDirectory.claim(directory)
        defer { held.release() }
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
            held.removeWhatWasRestored(context: context)
            throw error
        }
        return RestoreReport(policy: manifest.policy, backup: manifest.id, target: directory,
                             restored: ["\(entries) entr\(entries == 1 ? "y" : "ies")"])
    }
}
