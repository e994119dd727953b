import LifeboatCore

extension Repository {
    /// Opens an artifact of a committed backup for reading, with progress and cancellation.
    /// A missing artifact is a damaged backup, reported as such.
    public func openArtifact(_ artifact: ArtifactRecord, of manifest: Manifest, context: RunContext,
                             purpose: String = "restore") throws -> any ObjectReader {
        let key = Repository.artifactKey(policy: manifest.policy, id: manifest.id, path: artifact.path)
        do {
            return ProgressReader(try store.openReader(key: key),
                                  what: "\(purpose) \(artifact.path)\(artifact.database.map { " (\($0))" } ?? "")",
                                  total: artifact.size, context: context)
        } catch let error as LifeboatError where error.code == .notFound {
            throw LifeboatError(.integrity, "artifact \(artifact.path) of backup \(manifest.id) is missing from the repository \(store.location)",
                                hint: "Run 'lifeboat verify \(manifest.policy) \(manifest.id)', and restore another backup.")
        }
    }
}
